/* st_lifecycle.h - process lifecycle: SIGTERM/SIGINT set a stop flag that every loop checks; a
 * second signal exits at once. One clean-stop path: loops finish their batch and return. */
#ifndef ST_LIFECYCLE_H
#define ST_LIFECYCLE_H

#include <stdbool.h>

/* Installs the SIGTERM/SIGINT handlers and ignores SIGPIPE. */
void st_lifecycle_install(void);
/* True once a stop was requested (by a signal or st_lifecycle_request_stop). */
bool st_lifecycle_stopping(void);
/* Requests a clean stop from code. */
void st_lifecycle_request_stop(void);
/* Requests a clean stop after an unrecoverable error elsewhere (e.g. a fatal librdkafka error in
 * its own thread): the process must then exit non-zero, so that supervisors restart it. */
void st_lifecycle_request_failed_stop(void);
/* True once st_lifecycle_request_failed_stop was called. */
bool st_lifecycle_failed(void);
/* Sleeps up to ms milliseconds, returning early (true) when a stop is requested. */
bool st_lifecycle_sleep_ms(int ms);

#endif
