/* st_log.h - levelled logging to stderr, one line per event: "key=value" text or JSON
 * (STINT_LOG_FORMAT=json). The macros skip evaluating their arguments below the current level.
 *
 *   st_log_info("batch_done", "records=%d elapsed_ms=%.1f", n, ms);
 *
 * The message is a list of key=value pairs; a value with spaces is written in double quotes
 * (use st_log_quote for text that may hold spaces or quotes). */
#ifndef ST_LOG_H
#define ST_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    ST_LOG_DEBUG = 0,
    ST_LOG_INFO,
    ST_LOG_WARN,
    ST_LOG_ERROR,
    ST_LOG_FATAL
} st_log_level_t;

extern st_log_level_t st_log_min_level;

/* Sets the component name printed with every line, and reads STINT_LOG_LEVEL
 * (debug|info|warn|error) and STINT_LOG_FORMAT (text|json) from the environment. */
void st_log_init(const char *component);
/* Parses "debug", "info", "warn", "error"; returns 0 or -1. */
int st_log_parse_level(const char *s, st_log_level_t *out);
void st_log_set_level(st_log_level_t level);
void st_log_set_json(bool json);

void st_log_write(st_log_level_t level, const char *file, int line, const char *event,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Writes s into buf as a double-quoted, escaped value (truncated to fit). Returns buf. */
const char *st_log_quote(const char *s, char *buf, size_t size);
/* Writes url into buf with everything between "://" (or its start) and its last '@' - the user
 * information, "user:password@" - shown as "***@" (truncated to fit), for messages and
 * --dump-config. Text without '@' is copied. Returns buf. */
const char *st_log_url_redacted(const char *url, char *buf, size_t size);

#define ST_LOG_AT(level, event, ...)                                                               \
    do {                                                                                           \
        if ((level) >= st_log_min_level)                                                           \
            st_log_write((level), __FILE__, __LINE__, (event), __VA_ARGS__);                       \
    } while (0)

#define st_log_debug(event, ...) ST_LOG_AT(ST_LOG_DEBUG, event, __VA_ARGS__)
#define st_log_info(event, ...)  ST_LOG_AT(ST_LOG_INFO, event, __VA_ARGS__)
#define st_log_warn(event, ...)  ST_LOG_AT(ST_LOG_WARN, event, __VA_ARGS__)
#define st_log_error(event, ...) ST_LOG_AT(ST_LOG_ERROR, event, __VA_ARGS__)
#define st_log_fatal(event, ...) ST_LOG_AT(ST_LOG_FATAL, event, __VA_ARGS__)

#endif
