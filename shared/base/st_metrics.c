/* st_metrics.c - a small Prometheus registry: atomic updates, text-format rendering. */
#include "st_metrics.h"

#include "st_err.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

struct st_metric_s {
    kind_t kind;
    char *name;
    char *labels; /* "" when none */
    char *help;
    _Atomic uint64_t count; /* counter value, or histogram observation count */
    _Atomic uint64_t bits;  /* gauge value, or histogram sum, as double bits */
    double *bounds;
    size_t nbounds;
    _Atomic uint64_t *buckets; /* nbounds + 1, non-cumulative */
    st_metric_t *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static st_metric_t *registry_head, *registry_tail;

const double st_metrics_latency_ms_buckets[] = {0.1, 0.25, 0.5, 1,   2.5,  5,    10,   25,
                                                50,  100,  250, 500, 1000, 2500, 5000, 10000};
const size_t st_metrics_latency_ms_nbuckets = sizeof st_metrics_latency_ms_buckets / sizeof(double);

static uint64_t dbits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double bitsd(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static st_metric_t *reg(kind_t kind, const char *name, const char *labels, const char *help,
                        const double *bounds, size_t nbounds)
{
    pthread_mutex_lock(&registry_lock);
    for (st_metric_t *m = registry_head; m; m = m->next) {
        if (strcmp(m->name, name) == 0 && strcmp(m->labels, labels ? labels : "") == 0) {
            pthread_mutex_unlock(&registry_lock);
            return m;
        }
    }
    st_metric_t *m = calloc(1, sizeof *m);
    if (!m)
        st_oom_abort("metric");
    m->kind = kind;
    m->name = strdup(name);
    m->labels = strdup(labels ? labels : "");
    m->help = strdup(help ? help : "");
    atomic_init(&m->bits, dbits(0.0));
    if (kind == KIND_HISTOGRAM) {
        m->nbounds = nbounds;
        m->bounds = malloc(nbounds * sizeof(double));
        m->buckets = calloc(nbounds + 1, sizeof *m->buckets);
        if (!m->bounds || !m->buckets)
            st_oom_abort("histogram buckets");
        memcpy(m->bounds, bounds, nbounds * sizeof(double));
    }
    if (registry_tail)
        registry_tail->next = m;
    else
        registry_head = m;
    registry_tail = m;
    pthread_mutex_unlock(&registry_lock);
    return m;
}

st_metric_t *st_metrics_counter(const char *name, const char *labels, const char *help)
{
    return reg(KIND_COUNTER, name, labels, help, NULL, 0);
}

st_metric_t *st_metrics_gauge(const char *name, const char *labels, const char *help)
{
    return reg(KIND_GAUGE, name, labels, help, NULL, 0);
}

st_metric_t *st_metrics_histogram(const char *name, const char *labels, const char *help,
                                  const double *bounds, size_t nbounds)
{
    return reg(KIND_HISTOGRAM, name, labels, help, bounds, nbounds);
}

void st_metric_inc(st_metric_t *m, uint64_t by)
{
    atomic_fetch_add_explicit(&m->count, by, memory_order_relaxed);
}

void st_metric_set(st_metric_t *m, double value)
{
    atomic_store_explicit(&m->bits, dbits(value), memory_order_relaxed);
}

static void add_double(_Atomic uint64_t *bits, double delta)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old, dbits(bitsd(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void st_metric_add(st_metric_t *m, double delta)
{
    add_double(&m->bits, delta);
}

void st_metric_observe(st_metric_t *m, double value)
{
    size_t i = 0;
    while (i < m->nbounds && value > m->bounds[i])
        i++;
    atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
    add_double(&m->bits, value);
}

double st_metric_value(const st_metric_t *m)
{
    if (m->kind == KIND_GAUGE)
        return bitsd(atomic_load_explicit(&m->bits, memory_order_relaxed));
    return (double)atomic_load_explicit(&m->count, memory_order_relaxed);
}

static void fmt_double(st_buf_t *out, double v)
{
    if (isnan(v))
        st_buf_append_str(out, "NaN");
    else if (isinf(v))
        st_buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
    else
        st_buf_printf(out, "%.17g", v);
}

static void escape_help(st_buf_t *out, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            st_buf_append_str(out, "\\\\");
        else if (*p == '\n')
            st_buf_append_str(out, "\\n");
        else
            st_buf_append(out, p, 1);
    }
}

/* Writes name{labels[,extra]} */
static void series(st_buf_t *out, const char *name, const char *suffix, const char *labels,
                   const char *extra)
{
    st_buf_printf(out, "%s%s", name, suffix);
    if (*labels || (extra && *extra)) {
        st_buf_printf(out, "{%s%s%s}", labels, *labels && extra && *extra ? "," : "",
                      extra ? extra : "");
    }
    st_buf_append_str(out, " ");
}

int st_metrics_render(st_buf_t *out)
{
    static const char *types[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&registry_lock);
    for (st_metric_t *m = registry_head; m; m = m->next) {
        /* HELP/TYPE once per name: the first registration of a name carries them. */
        bool first = true;
        for (st_metric_t *p = registry_head; p != m; p = p->next)
            if (strcmp(p->name, m->name) == 0)
                first = false;
        if (first) {
            st_buf_printf(out, "# HELP %s ", m->name);
            escape_help(out, m->help);
            st_buf_printf(out, "\n# TYPE %s %s\n", m->name, types[m->kind]);
        }
        if (m->kind == KIND_COUNTER) {
            series(out, m->name, "", m->labels, NULL);
            st_buf_printf(out, "%llu\n", (unsigned long long)atomic_load(&m->count));
        } else if (m->kind == KIND_GAUGE) {
            series(out, m->name, "", m->labels, NULL);
            fmt_double(out, bitsd(atomic_load(&m->bits)));
            st_buf_append_str(out, "\n");
        } else {
            uint64_t cum = 0;
            char le[64];
            for (size_t i = 0; i <= m->nbounds; i++) {
                cum += atomic_load(&m->buckets[i]);
                if (i < m->nbounds)
                    snprintf(le, sizeof le, "le=\"%.17g\"", m->bounds[i]);
                else
                    snprintf(le, sizeof le, "le=\"+Inf\"");
                series(out, m->name, "_bucket", m->labels, le);
                st_buf_printf(out, "%llu\n", (unsigned long long)cum);
            }
            series(out, m->name, "_sum", m->labels, NULL);
            fmt_double(out, bitsd(atomic_load(&m->bits)));
            st_buf_append_str(out, "\n");
            series(out, m->name, "_count", m->labels, NULL);
            st_buf_printf(out, "%llu\n", (unsigned long long)cum);
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return out->data || out->len == 0 ? 0 : -1;
}

void st_metrics_reset(void)
{
    pthread_mutex_lock(&registry_lock);
    st_metric_t *m = registry_head;
    while (m) {
        st_metric_t *next = m->next;
        free(m->name);
        free(m->labels);
        free(m->help);
        free(m->bounds);
        free((void *)m->buckets);
        free(m);
        m = next;
    }
    registry_head = registry_tail = NULL;
    pthread_mutex_unlock(&registry_lock);
}
