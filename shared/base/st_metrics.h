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
 * "stint_records_in_total"; histograms in seconds, named *_seconds); labels is NULL or a fixed
 * label set like `topic="listens"`, and a metric name may be registered with several label sets,
 * in any order relative to other metrics, but always as the same kind. Never returns NULL (aborts
 * on ENOMEM, on a name that is not a Prometheus name and on a name registered as two kinds). */
st_metric_t *st_metrics_counter(const char *name, const char *labels, const char *help);
st_metric_t *st_metrics_gauge(const char *name, const char *labels, const char *help);
/* bounds: ascending upper bounds of the buckets (+Inf is implicit), copied. */
st_metric_t *st_metrics_histogram(const char *name, const char *labels, const char *help,
                                  const double *bounds, size_t nbounds);

void st_metric_inc(st_metric_t *m, uint64_t by);
void st_metric_set(st_metric_t *m, double value);
/* Gauges; also counters of fractional amounts such as seconds (delta >= 0), whose value is then
 * what st_metric_inc counted plus what this added. */
void st_metric_add(st_metric_t *m, double delta);
void st_metric_observe(st_metric_t *m, double value);
/* Current value of a counter or gauge (tests, and services that read their own gauges). */
double st_metric_value(const st_metric_t *m);

/* Appends the text exposition of every metric to out: one block per metric name (family), in
 * the order names were first registered, with one # HELP and one # TYPE and then every label set
 * of that name in registration order; histogram buckets cumulative, ending in le="+Inf"; numbers
 * in the shortest form that reads back as the same double. Returns 0 or -1 (ENOMEM). */
int st_metrics_render(st_buf_t *out);
/* Appends the standard process_* families, read from /proc/self at the time of the call:
 * process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_start_time_seconds, process_open_fds, process_max_fds. A family whose source cannot be
 * read (not Linux, say) is left out. Returns 0 or -1 (ENOMEM). */
int st_metrics_render_process(st_buf_t *out);
/* Writes v as the exposition prints it: the shortest "%g" form that reads back as v ("0.1"),
 * "NaN", "+Inf", "-Inf". size 32 is enough for any double. */
void st_metrics_format_double(char *s, size_t size, double v);
/* Frees every metric (tests only: pointers handed out become invalid). */
void st_metrics_reset(void);

/* Common bucket sets: latencies in seconds, 100 us to 10 s. */
extern const double st_metrics_latency_seconds_buckets[];
extern const size_t st_metrics_latency_seconds_nbuckets;

#endif
