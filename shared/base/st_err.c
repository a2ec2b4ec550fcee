/* st_err.c - the st_err_t error record and the errstr convention of setup calls. */
#include "st_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void st_err_set(st_err_t *err, st_err_code_t code, st_err_disp_t disp, const char *fmt, ...)
{
    va_list ap;
    if (!err || err->code != ST_ERR_NONE)
        return;
    err->code = code;
    err->retriable = disp == ST_DISP_RETRY;
    err->fatal = disp == ST_DISP_FATAL;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
}

st_err_disp_t st_err_disp(const st_err_t *err)
{
    return err->fatal ? ST_DISP_FATAL : err->retriable ? ST_DISP_RETRY : ST_DISP_PERMANENT;
}

void st_err_nomem(st_err_t *err)
{
    st_err_set(err, ST_ERR_NOMEM, ST_DISP_FATAL, "out of memory");
}

void st_oom_abort(const char *what)
{
    fprintf(stderr, "stint: out of memory (%s)\n", what);
    abort();
}

void st_err_clear(st_err_t *err)
{
    if (err)
        memset(err, 0, sizeof *err);
}

const char *st_err_code_name(st_err_code_t code)
{
    switch (code) {
    case ST_ERR_NONE:
        return "none";
    case ST_ERR_INVALID:
        return "invalid";
    case ST_ERR_CONFIG:
        return "config";
    case ST_ERR_IO:
        return "io";
    case ST_ERR_NOMEM:
        return "nomem";
    case ST_ERR_KAFKA:
        return "kafka";
    case ST_ERR_REDIS:
        return "redis";
    case ST_ERR_AVRO:
        return "avro";
    case ST_ERR_HTTP:
        return "http";
    case ST_ERR_TIMEOUT:
        return "timeout";
    case ST_ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}

int st_errstr(char *errstr, size_t errstr_size, const char *fmt, ...)
{
    va_list ap;
    if (errstr && errstr_size > 0) {
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return -1;
}
