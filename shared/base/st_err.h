/* st_err.h - the error record of the data path: a code, whether retrying may help, whether the
 * process cannot safely continue, and a message. The first error recorded wins. */
#ifndef ST_ERR_H
#define ST_ERR_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    ST_ERR_NONE = 0,
    ST_ERR_INVALID, /* bad input data: goes to a DLQ, processing continues */
    ST_ERR_CONFIG,  /* bad configuration */
    ST_ERR_IO,      /* file or socket I/O */
    ST_ERR_NOMEM,
    ST_ERR_KAFKA,
    ST_ERR_REDIS,
    ST_ERR_AVRO,
    ST_ERR_HTTP,
    ST_ERR_TIMEOUT,
    ST_ERR_INTERNAL
} st_err_code_t;

/* What the caller may do about an error. */
typedef enum {
    ST_DISP_PERMANENT = 0, /* retrying gives the same answer; the process may go on (e.g. the
                              record goes to a dead letter, the command fails) */
    ST_DISP_RETRY,         /* retrying may help: a server away or busy, a timeout */
    ST_DISP_FATAL          /* the process cannot safely continue (it exits without committing,
                              so the batch is redone after a restart) */
} st_err_disp_t;

typedef struct {
    st_err_code_t code;
    bool retriable; /* disposition ST_DISP_RETRY */
    bool fatal;     /* disposition ST_DISP_FATAL */
    char text[512];
} st_err_t;

/* Records an error in err unless err is NULL or already holds one (the first error wins). */
void st_err_set(st_err_t *err, st_err_code_t code, st_err_disp_t disp, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The disposition recorded in err. */
st_err_disp_t st_err_disp(const st_err_t *err);

/* Out of memory, one policy: on the data path the error is recorded as ST_ERR_NOMEM, fatal (the
 * service exits without committing the batch; it is redone after the restart). Where no error
 * record exists (constructors, registration of config keys and metrics, at setup) st_oom_abort
 * prints what failed and aborts. */
void st_err_nomem(st_err_t *err);
_Noreturn void st_oom_abort(const char *what);

/* Clears err (no-op for NULL). */
void st_err_clear(st_err_t *err);

/* A constant name for a code, e.g. "invalid". */
const char *st_err_code_name(st_err_code_t code);

/* Fills errstr (if non-NULL and errstr_size > 0) for the setup-call convention; returns -1. */
int st_errstr(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
