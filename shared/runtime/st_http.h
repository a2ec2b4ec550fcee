/* st_http.h - the small HTTP endpoint every service runs (libmicrohttpd, own thread):
 * /metrics (Prometheus text), /healthz (200 only while Kafka and Redis are reachable), /readyz
 * (200 while Kafka and Redis are reachable and the service says it is ready: for the consumer
 * loop, assigned by its group and caught up, see st_pipeline.h; the body says why not). */
#ifndef ST_HTTP_H
#define ST_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_http_s st_http_t;

/* Starts serving on bind_addr:port (port 0 picks a free one; see st_http_port). Returns NULL
 * and fills errstr on failure. */
st_http_t *st_http_start(const char *bind_addr, int port, char *errstr, size_t errstr_size);
void st_http_stop(st_http_t *h);
int st_http_port(const st_http_t *h);

/* Health inputs, set by the service loop from any thread. */
void st_http_set_kafka_ok(st_http_t *h, bool ok);
void st_http_set_redis_ok(st_http_t *h, bool ok);
/* detail (copied, truncated at 255 bytes): what /readyz prints after "ready " or
 * "not ready: ". */
void st_http_set_ready(st_http_t *h, bool ready, const char *detail);

#endif
