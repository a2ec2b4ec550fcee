/* st_log.c - one-line structured logging to stderr, text or JSON. */
#include "st_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

st_log_level_t st_log_min_level = ST_LOG_INFO;
static bool log_json;
static char log_component[64] = "stint";

static const char *level_names[] = {"debug", "info", "warn", "error", "fatal"};

int st_log_parse_level(const char *s, st_log_level_t *out)
{
    for (int i = 0; i <= ST_LOG_FATAL; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (st_log_level_t)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = ST_LOG_WARN;
        return 0;
    }
    return -1;
}

void st_log_init(const char *component)
{
    const char *v;
    if (component)
        snprintf(log_component, sizeof log_component, "%s", component);
    if ((v = getenv("STINT_LOG_LEVEL")) && *v)
        st_log_parse_level(v, &st_log_min_level);
    if ((v = getenv("STINT_LOG_FORMAT")) && *v)
        log_json = strcasecmp(v, "json") == 0;
}

void st_log_set_level(st_log_level_t level)
{
    st_log_min_level = level;
}

void st_log_set_json(bool json)
{
    log_json = json;
}

const char *st_log_url_redacted(const char *url, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    /* Up to the last '@' at all: a password may hold an unencoded '/', '?' or '#' (libcurl then
     * refuses the URL, and the message must not show it). An '@' in a path or a query is
     * redacted too, the safe side. */
    const char *at = strrchr(auth, '@');
    if (at)
        snprintf(buf, size, "%.*s***%s", (int)(auth - url), url, at);
    else
        snprintf(buf, size, "%s", url);
    return buf;
}

const char *st_log_quote(const char *s, char *buf, size_t size)
{
    size_t o = 0;
    if (size < 3) {
        if (size)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (; s && *s && o + 3 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20) {
            buf[o++] = ' ';
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static void json_string(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static bool is_number(const char *s, size_t n)
{
    char tmp[64], *end;
    if (n == 0 || n >= sizeof tmp)
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (!((tmp[0] >= '0' && tmp[0] <= '9') || tmp[0] == '-'))
        return false;
    strtod(tmp, &end);
    return *end == '\0';
}

/* Writes the "k=v k2="v 2"" message as JSON members; text that is not key=value goes to "msg". */
static void json_members(FILE *f, const char *msg)
{
    const char *p = msg;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ')
            p++;
        if (*p != '=') {
            fputs(",\"msg\":", f);
            json_string(f, k, strlen(k));
            return;
        }
        size_t klen = (size_t)(p - k);
        p++;
        fputc(',', f);
        json_string(f, k, klen);
        fputc(':', f);
        if (*p == '"') {
            /* Unescape \" and \\ written by st_log_quote. */
            char val[1024];
            size_t o = 0;
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                if (o + 1 < sizeof val)
                    val[o++] = *p;
                p++;
            }
            if (*p == '"')
                p++;
            json_string(f, val, o);
        } else {
            const char *v = p;
            while (*p && *p != ' ')
                p++;
            if (is_number(v, (size_t)(p - v)))
                fwrite(v, 1, (size_t)(p - v), f);
            else
                json_string(f, v, (size_t)(p - v));
        }
    }
}

void st_log_write(st_log_level_t level, const char *file, int line, const char *event,
                  const char *fmt, ...)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    char msg[2048], ts[64];
    struct timespec now;
    struct tm tm;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;

    pthread_mutex_lock(&lock);
    if (log_json) {
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", ts, level_names[level]);
        json_string(stderr, log_component, strlen(log_component));
        fputs(",\"event\":", stderr);
        json_string(stderr, event, strlen(event));
        json_members(stderr, msg);
        fprintf(stderr, ",\"src\":\"%s:%d\"}\n", base, line);
    } else {
        fprintf(stderr, "%s %-5s %s %s %s src=%s:%d\n", ts, level_names[level], log_component,
                event, msg, base, line);
    }
    fflush(stderr);
    pthread_mutex_unlock(&lock);
}
