/* pred_mae.c - rolling and cumulative MAE gauges of the predictor (see pred_mae.h). */
#include "pred_mae.h"

#include <stdio.h>
#include <stdlib.h>

#include "st_metrics.h"

/* The outcomes of one predictor (MODEL or BASELINE). */
typedef struct {
    size_t n, next;
    double *err, *base_err;
    /* The rolling sums are recomputed from the ring now and then so float drift cannot build up. */
    double sum, base_sum;
    uint64_t adds_since_resum;
    long double all_sum, all_base_sum;
    uint64_t all_n;
    st_metric_t *g_roll, *g_roll_base, *g_all, *g_all_base, *g_roll_n, *g_all_n;
} series_t;

struct pred_mae {
    size_t window_n;
    series_t s[2]; /* [1] MODEL, [0] BASELINE */
};

static int series_init(series_t *s, size_t window_n, const char *predictor)
{
    s->err = calloc(window_n, sizeof *s->err);
    s->base_err = calloc(window_n, sizeof *s->base_err);
    if (!s->err || !s->base_err)
        return -1;
    static const char help[] =
        "mean absolute error in seconds of the predictions and of the baseline, over the last N "
        "outcomes (rolling) or every outcome since start (all), of the predictions made by the "
        "model or by the baseline (predictor)";
    static const char help_n[] = "outcomes behind the MAE gauges";
    char l[160];
#define GAUGE(name, fmt, h)                                                                        \
    (snprintf(l, sizeof l, "predictor=\"%s\"," fmt, predictor), st_metrics_gauge(name, l, h))
    s->g_roll =
        GAUGE("stint_predictor_mae_seconds", "window=\"rolling\",series=\"predicted\"", help);
    s->g_roll_base =
        GAUGE("stint_predictor_mae_seconds", "window=\"rolling\",series=\"baseline\"", help);
    s->g_all = GAUGE("stint_predictor_mae_seconds", "window=\"all\",series=\"predicted\"", help);
    s->g_all_base =
        GAUGE("stint_predictor_mae_seconds", "window=\"all\",series=\"baseline\"", help);
    s->g_roll_n = GAUGE("stint_predictor_mae_outcomes", "window=\"rolling\"", help_n);
    s->g_all_n = GAUGE("stint_predictor_mae_outcomes", "window=\"all\"", help_n);
#undef GAUGE
    return 0;
}

pred_mae_t *pred_mae_new(size_t window_n)
{
    pred_mae_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->window_n = window_n ? window_n : 1;
    if (series_init(&m->s[1], m->window_n, "MODEL") != 0 ||
        series_init(&m->s[0], m->window_n, "BASELINE") != 0) {
        pred_mae_destroy(m);
        return NULL;
    }
    return m;
}

void pred_mae_destroy(pred_mae_t *m)
{
    if (!m)
        return;
    for (int i = 0; i < 2; i++) {
        free(m->s[i].err);
        free(m->s[i].base_err);
    }
    free(m);
}

void pred_mae_add(pred_mae_t *m, bool model, double abs_error_s, double baseline_abs_error_s)
{
    series_t *s = &m->s[model ? 1 : 0];
    /* An error leaving the window that made up most of a sum would leave the difference with
     * its rounding (1e300 once in the window: nothing left of the rest), so then the window
     * is summed again; otherwise every 16 windows. */
    bool resum = false;
    if (s->n == m->window_n) {
        resum = s->err[s->next] > 0.5 * s->sum || s->base_err[s->next] > 0.5 * s->base_sum;
        s->sum -= s->err[s->next];
        s->base_sum -= s->base_err[s->next];
    } else {
        s->n++;
    }
    s->err[s->next] = abs_error_s;
    s->base_err[s->next] = baseline_abs_error_s;
    s->sum += abs_error_s;
    s->base_sum += baseline_abs_error_s;
    s->next = (s->next + 1) % m->window_n;
    if (++s->adds_since_resum >= 16 * m->window_n || resum) {
        s->sum = s->base_sum = 0;
        for (size_t i = 0; i < s->n; i++) {
            s->sum += s->err[i];
            s->base_sum += s->base_err[i];
        }
        s->adds_since_resum = 0;
    }
    s->all_sum += abs_error_s;
    s->all_base_sum += baseline_abs_error_s;
    s->all_n++;
    pred_mae_stats_t st;
    pred_mae_stats(m, model, &st);
    st_metric_set(s->g_roll, st.rolling_mae_s);
    st_metric_set(s->g_roll_base, st.rolling_baseline_mae_s);
    st_metric_set(s->g_all, st.all_mae_s);
    st_metric_set(s->g_all_base, st.all_baseline_mae_s);
    st_metric_set(s->g_roll_n, (double)st.rolling_n);
    st_metric_set(s->g_all_n, (double)st.all_n);
}

void pred_mae_stats(const pred_mae_t *m, bool model, pred_mae_stats_t *out)
{
    const series_t *s = &m->s[model ? 1 : 0];
    out->rolling_n = s->n;
    out->all_n = s->all_n;
    out->rolling_mae_s = s->n ? s->sum / (double)s->n : 0;
    out->rolling_baseline_mae_s = s->n ? s->base_sum / (double)s->n : 0;
    out->all_mae_s = s->all_n ? (double)(s->all_sum / s->all_n) : 0;
    out->all_baseline_mae_s = s->all_n ? (double)(s->all_base_sum / s->all_n) : 0;
}
