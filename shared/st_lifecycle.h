/* st_lifecycle.h - process lifecycle: SIGTERM/SIGINT set a stop flag that every loop checks; a
 * second signal exits at once. One clean-stop path: loops finish their batch and return. */
#ifndef ST_LIFECYCLE_H
#define ST_LIFECYCLE_H

#include <stdbool.h>

/* Installs the SIGTERM/SIGINT handlers and ignores SIGPIPE. */
void st_lifecycle_install(void);
/* True once a stop was requested (by a signal or st_lifecycle_request_stop). */
bool st_lifecycle_stopping(void);
/* Requests a clean stop from code (e.g. after a fatal error). */
void st_lifecycle_request_stop(void);
/* Sleeps up to ms milliseconds, returning early (true) when a stop is requested. */
bool st_lifecycle_sleep_ms(int ms);

#endif
