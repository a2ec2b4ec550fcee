/* http_sample.c - serves st_http with a sample of every metric kind for tests: prints the port,
 * then keeps serving until stdin closes. "health" on stdin flips Kafka and Redis to ok. */
#include <stdio.h>
#include <string.h>

#include "st_http.h"
#include "st_metrics.h"

int main(void)
{
    char errstr[256], line[64];
    static const double bounds[] = {0.1, 1, 2.5};
    /* Registered interleaved, the way services register label sets: the exposition must still
     * group each family. */
    st_metric_inc(
        st_metrics_counter("stint_sample_records_total", "topic=\"listens\"", "Records seen."), 41);
    st_metric_set(st_metrics_gauge("stint_sample_queue_depth", NULL, "Queue depth.\nSecond line."),
                  7.5);
    st_metric_t *h =
        st_metrics_histogram("stint_sample_latency_seconds", NULL, "Latency.", bounds, 3);
    st_metric_inc(
        st_metrics_counter("stint_sample_records_total", "topic=\"sessions\"", "Records seen."), 2);
    st_metric_observe(h, 0.0625);
    st_metric_observe(h, 0.5);
    st_metric_observe(h, 0.5);
    st_metric_observe(h, 4);
    st_http_t *http = st_http_start("127.0.0.1", 0, errstr, sizeof errstr);
    if (!http) {
        fprintf(stderr, "%s\n", errstr);
        return 1;
    }
    st_http_set_ready(http, true, "sample");
    printf("%d\n", st_http_port(http));
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "health", 6) == 0) {
            st_http_set_kafka_ok(http, true);
            st_http_set_redis_ok(http, true);
            printf("ok\n");
            fflush(stdout);
        }
    }
    st_http_stop(http);
    st_metrics_reset();
    return 0;
}
