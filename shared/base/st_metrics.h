/* st_metrics.h - process metrics (counters, gauges, histograms) rendered in the Prometheus text
 * exposition format. Updates are lock-free atomics, safe from any thread; metrics are registered
 * once at start-up and live until st_metrics_reset (tests) or process exit. */
#ifndef ST_METRICS_H
#define ST_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "st_buf.h"

typedef struct st_metric_s st_metric_t;

/* Registers (or returns the existing) metric. name follows Prometheus rules (e.g.
 * "stint_records_in_total"); labels is NULL or a fixed label set like `topic="listens"`, and a
 * metric name may be registered with several label sets. Never returns NULL (aborts on ENOMEM). */
st_metric_t *st_metrics_counter(const char *name, const char *labels, const char *help);
st_metric_t *st_metrics_gauge(const char *name, const char *labels, const char *help);
/* bounds: ascending upper bounds of the buckets (+Inf is implicit), copied. */
st_metric_t *st_metrics_histogram(const char *name, const char *labels, const char *help,
                                  const double *bounds, size_t nbounds);

void st_metric_inc(st_metric_t *m, uint64_t by);
void st_metric_set(st_metric_t *m, double value);
void st_metric_add(st_metric_t *m, double delta);
void st_metric_observe(st_metric_t *m, double value);
/* Current value of a counter or gauge (tests, and services that read their own gauges). */
double st_metric_value(const st_metric_t *m);

/* Appends the text exposition of every metric to out. Returns 0 or -1 (ENOMEM). */
int st_metrics_render(st_buf_t *out);
/* Frees every metric (tests only: pointers handed out become invalid). */
void st_metrics_reset(void);

/* Common bucket sets. */
extern const double st_metrics_latency_ms_buckets[];
extern const size_t st_metrics_latency_ms_nbuckets;

#endif
