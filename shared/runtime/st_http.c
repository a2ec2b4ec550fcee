/* st_http.c - /metrics, /healthz and /readyz over libmicrohttpd. */
#include "st_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_buf.h"
#include "st_err.h"
#include "st_metrics.h"

struct st_http_s {
    struct MHD_Daemon *daemon;
    int port;
    atomic_bool kafka_ok;
    atomic_bool redis_ok;
    pthread_mutex_t mu; /* guards ready and ready_detail */
    bool ready;
    char ready_detail[256];
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type,
                             char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    st_http_t *h = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(conn, 405, "text/plain", (char *)"method not allowed\n", 19,
                     MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/metrics") == 0) {
        st_buf_t b = ST_BUF_INIT;
        if (st_metrics_render(&b) != 0 || st_metrics_render_process(&b) != 0 ||
            st_buf_reserve(&b, 0) != 0) {
            st_buf_free(&b);
            return reply(conn, 500, "text/plain", (char *)"out of memory\n", 14,
                         MHD_RESPMEM_PERSISTENT);
        }
        /* MHD frees the buffer with free() once sent. */
        return reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len,
                     MHD_RESPMEM_MUST_FREE);
    }
    if (strcmp(url, "/healthz") == 0) {
        bool k = atomic_load(&h->kafka_ok), r = atomic_load(&h->redis_ok);
        char body[128];
        int n = snprintf(body, sizeof body, "%s kafka=%s redis=%s\n", k && r ? "ok" : "unhealthy",
                         k ? "ok" : "down", r ? "ok" : "down");
        return reply(conn, k && r ? 200 : 503, "text/plain", body, (size_t)n,
                     MHD_RESPMEM_MUST_COPY);
    }
    if (strcmp(url, "/readyz") == 0) {
        bool k = atomic_load(&h->kafka_ok), r = atomic_load(&h->redis_ok);
        char body[320];
        pthread_mutex_lock(&h->mu);
        bool ok = h->ready && k && r;
        int n;
        if (ok)
            n = snprintf(body, sizeof body, "ready %s\n", h->ready_detail);
        else if (!k || !r)
            n = snprintf(body, sizeof body, "not ready: kafka=%s redis=%s\n", k ? "ok" : "down",
                         r ? "ok" : "down");
        else
            n = snprintf(body, sizeof body, "not ready: %s\n", h->ready_detail);
        pthread_mutex_unlock(&h->mu);
        if (n >= (int)sizeof body)
            n = (int)sizeof body - 1;
        return reply(conn, ok ? 200 : 503, "text/plain", body, (size_t)n, MHD_RESPMEM_MUST_COPY);
    }
    return reply(conn, 404, "text/plain", (char *)"not found\n", 10, MHD_RESPMEM_PERSISTENT);
}

st_http_t *st_http_start(const char *bind_addr, int port, char *errstr, size_t errstr_size)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, bind_addr, &addr.sin_addr) != 1) {
        st_errstr(errstr, errstr_size, "http.bind: \"%s\" is not an IPv4 address", bind_addr);
        return NULL;
    }
    st_http_t *h = calloc(1, sizeof *h);
    if (!h) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    atomic_init(&h->kafka_ok, false);
    atomic_init(&h->redis_ok, false);
    pthread_mutex_init(&h->mu, NULL);
    snprintf(h->ready_detail, sizeof h->ready_detail, "starting");
    h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                                 handle, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!h->daemon) {
        st_errstr(errstr, errstr_size, "cannot listen on %s:%d (port in use?)", bind_addr, port);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : port;
    return h;
}

void st_http_stop(st_http_t *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

int st_http_port(const st_http_t *h)
{
    return h->port;
}

void st_http_set_kafka_ok(st_http_t *h, bool ok)
{
    if (h)
        atomic_store(&h->kafka_ok, ok);
}

void st_http_set_redis_ok(st_http_t *h, bool ok)
{
    if (h)
        atomic_store(&h->redis_ok, ok);
}

void st_http_set_ready(st_http_t *h, bool ready, const char *detail)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->ready = ready;
    snprintf(h->ready_detail, sizeof h->ready_detail, "%s", detail ? detail : "");
    pthread_mutex_unlock(&h->mu);
}
