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
    _Atomic uint64_t bits;  /* gauge value, histogram sum, or a counter's st_metric_add part,
                               as double bits */
    double *bounds;
    size_t nbounds;
    _Atomic uint64_t *buckets; /* nbounds + 1, non-cumulative */
    st_metric_t *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static st_metric_t *registry_head, *registry_tail;

const double st_metrics_latency_seconds_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                     0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                     1,      2.5,     5,      10};
const size_t st_metrics_latency_seconds_nbuckets =
    sizeof st_metrics_latency_seconds_buckets / sizeof(double);

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

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

static bool valid_name(const char *name)
{
    if (!*name || (*name >= '0' && *name <= '9'))
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == ':'))
            return false;
    return true;
}

/* A name that is not a Prometheus name, or one family registered as two kinds, would make the
 * whole exposition unreadable to a scraper: a bug of the caller, stopped at registration (mostly
 * at start-up; the predictor also registers a label set at each hot swap). */
static st_metric_t *reg(kind_t kind, const char *name, const char *labels, const char *help,
                        const double *bounds, size_t nbounds)
{
    if (!valid_name(name)) {
        fprintf(stderr, "st_metrics: \"%s\" is not a valid Prometheus metric name\n", name);
        abort();
    }
    pthread_mutex_lock(&registry_lock);
    for (st_metric_t *m = registry_head; m; m = m->next) {
        if (strcmp(m->name, name) != 0)
            continue;
        if (m->kind != kind) {
            fprintf(stderr, "st_metrics: metric \"%s\" registered as a %s and as a %s\n", name,
                    kind_names[m->kind], kind_names[kind]);
            abort();
        }
        if (strcmp(m->labels, labels ? labels : "") == 0) {
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
    double v = bitsd(atomic_load_explicit(&m->bits, memory_order_relaxed));
    if (m->kind == KIND_GAUGE)
        return v;
    return (double)atomic_load_explicit(&m->count, memory_order_relaxed) +
           (m->kind == KIND_COUNTER ? v : 0);
}

/* The shortest "%g" form that strtod reads back as the same double: 0.1 is "0.1", not
 * "0.10000000000000001" (what "%.17g" prints); NaN and the infinities as Prometheus spells them. */
void st_metrics_format_double(char *s, size_t size, double v)
{
    if (isnan(v)) {
        snprintf(s, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(s, size, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(s, size, "%.*g", prec, v);
        if (strtod(s, NULL) == v)
            break;
    }
    /* "%g" switches to an exponent once the exponent reaches the precision: 10 at precision 1 is
     * "1e+01". Below 1e17 write the digits out ("10", "123456789012"), as Python's repr does;
     * more digits still read back as v. */
    const char *e = strchr(s, 'e');
    int exp10 = e ? atoi(e + 1) : -1;
    if (exp10 >= 0 && exp10 < 17)
        snprintf(s, size, "%.*g", exp10 + 1, v);
}

static int append_double(st_buf_t *out, double v)
{
    char s[32];
    st_metrics_format_double(s, sizeof s, v);
    return st_buf_append_str(out, s);
}

static int escape_help(st_buf_t *out, const char *help)
{
    int rc = 0;
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            rc |= st_buf_append_str(out, "\\\\");
        else if (*p == '\n')
            rc |= st_buf_append_str(out, "\\n");
        else
            rc |= st_buf_append(out, p, 1);
    }
    return rc;
}

/* Writes "name{labels[,extra]} " */
static int series(st_buf_t *out, const char *name, const char *suffix, const char *labels,
                  const char *extra)
{
    int rc = st_buf_printf(out, "%s%s", name, suffix);
    if (*labels || (extra && *extra)) {
        rc |= st_buf_printf(out, "{%s%s%s}", labels, *labels && extra && *extra ? "," : "",
                            extra ? extra : "");
    }
    return rc | st_buf_append_str(out, " ");
}

/* The sample lines of one registration. */
static int render_samples(st_buf_t *out, const st_metric_t *m)
{
    int rc = 0;
    if (m->kind == KIND_COUNTER) {
        uint64_t count = atomic_load(&m->count);
        double added = bitsd(atomic_load(&m->bits));
        rc |= series(out, m->name, "", m->labels, NULL);
        if (added == 0)
            rc |= st_buf_printf(out, "%llu\n", (unsigned long long)count);
        else {
            rc |= append_double(out, (double)count + added);
            rc |= st_buf_append_str(out, "\n");
        }
    } else if (m->kind == KIND_GAUGE) {
        rc |= series(out, m->name, "", m->labels, NULL);
        rc |= append_double(out, bitsd(atomic_load(&m->bits)));
        rc |= st_buf_append_str(out, "\n");
    } else {
        /* _count is the +Inf bucket, so the two always agree within one scrape. */
        uint64_t cum = 0;
        char bound[32], le[48];
        for (size_t i = 0; i <= m->nbounds; i++) {
            cum += atomic_load(&m->buckets[i]);
            st_metrics_format_double(bound, sizeof bound, i < m->nbounds ? m->bounds[i] : INFINITY);
            snprintf(le, sizeof le, "le=\"%s\"", bound);
            rc |= series(out, m->name, "_bucket", m->labels, le);
            rc |= st_buf_printf(out, "%llu\n", (unsigned long long)cum);
        }
        rc |= series(out, m->name, "_sum", m->labels, NULL);
        rc |= append_double(out, bitsd(atomic_load(&m->bits)));
        rc |= st_buf_append_str(out, "\n");
        rc |= series(out, m->name, "_count", m->labels, NULL);
        rc |= st_buf_printf(out, "%llu\n", (unsigned long long)cum);
    }
    return rc;
}

int st_metrics_render(st_buf_t *out)
{
    int rc = 0;
    pthread_mutex_lock(&registry_lock);
    /* One block per family (metric name), in the order of the family's first registration: its
     * # HELP and # TYPE (from that first registration), then every label set registered under
     * the name, in registration order, whatever else was registered in between. A family split
     * in two is read by scrapers as two families, or refused. */
    for (st_metric_t *m = registry_head; m; m = m->next) {
        bool seen = false;
        for (st_metric_t *p = registry_head; p != m && !seen; p = p->next)
            seen = strcmp(p->name, m->name) == 0;
        if (seen)
            continue;
        rc |= st_buf_printf(out, "# HELP %s ", m->name);
        rc |= escape_help(out, m->help);
        rc |= st_buf_printf(out, "\n# TYPE %s %s\n", m->name, kind_names[m->kind]);
        for (st_metric_t *q = m; q; q = q->next)
            if (strcmp(q->name, m->name) == 0)
                rc |= render_samples(out, q);
    }
    pthread_mutex_unlock(&registry_lock);
    return rc ? -1 : 0;
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
