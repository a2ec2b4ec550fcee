/* pred_mae.c - rolling and cumulative MAE gauges of the predictor (see pred_mae.h). */
#include "pred_mae.h"

#include <stdlib.h>

#include "st_metrics.h"

struct pred_mae {
    size_t window_n, n, next;
    double *err, *base_err;
    /* The rolling sums are recomputed from the ring now and then so float drift cannot build up. */
    double sum, base_sum;
    uint64_t adds_since_resum;
    long double all_sum, all_base_sum;
    uint64_t all_n;
    st_metric_t *g_roll, *g_roll_base, *g_all, *g_all_base, *g_roll_n, *g_all_n;
};

pred_mae_t *pred_mae_new(size_t window_n)
{
    pred_mae_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->window_n = window_n ? window_n : 1;
    m->err = calloc(m->window_n, sizeof *m->err);
    m->base_err = calloc(m->window_n, sizeof *m->base_err);
    if (!m->err || !m->base_err) {
        pred_mae_destroy(m);
        return NULL;
    }
    static const char help[] =
        "mean absolute error in seconds of the predictions and of the baseline, over the last N "
        "outcomes (rolling) or every outcome since start (all)";
    m->g_roll = st_metrics_gauge("stint_predictor_mae_seconds",
                                 "window=\"rolling\",series=\"predicted\"", help);
    m->g_roll_base = st_metrics_gauge("stint_predictor_mae_seconds",
                                      "window=\"rolling\",series=\"baseline\"", help);
    m->g_all = st_metrics_gauge("stint_predictor_mae_seconds",
                                "window=\"all\",series=\"predicted\"", help);
    m->g_all_base =
        st_metrics_gauge("stint_predictor_mae_seconds", "window=\"all\",series=\"baseline\"", help);
    m->g_roll_n = st_metrics_gauge("stint_predictor_mae_outcomes", "window=\"rolling\"",
                                   "outcomes behind the MAE gauges");
    m->g_all_n = st_metrics_gauge("stint_predictor_mae_outcomes", "window=\"all\"",
                                  "outcomes behind the MAE gauges");
    return m;
}

void pred_mae_destroy(pred_mae_t *m)
{
    if (!m)
        return;
    free(m->err);
    free(m->base_err);
    free(m);
}

void pred_mae_add(pred_mae_t *m, double abs_error_s, double baseline_abs_error_s)
{
    if (m->n == m->window_n) {
        m->sum -= m->err[m->next];
        m->base_sum -= m->base_err[m->next];
    } else {
        m->n++;
    }
    m->err[m->next] = abs_error_s;
    m->base_err[m->next] = baseline_abs_error_s;
    m->sum += abs_error_s;
    m->base_sum += baseline_abs_error_s;
    m->next = (m->next + 1) % m->window_n;
    if (++m->adds_since_resum >= 16 * m->window_n) {
        m->sum = m->base_sum = 0;
        for (size_t i = 0; i < m->n; i++) {
            m->sum += m->err[i];
            m->base_sum += m->base_err[i];
        }
        m->adds_since_resum = 0;
    }
    m->all_sum += abs_error_s;
    m->all_base_sum += baseline_abs_error_s;
    m->all_n++;
    pred_mae_stats_t s;
    pred_mae_stats(m, &s);
    st_metric_set(m->g_roll, s.rolling_mae_s);
    st_metric_set(m->g_roll_base, s.rolling_baseline_mae_s);
    st_metric_set(m->g_all, s.all_mae_s);
    st_metric_set(m->g_all_base, s.all_baseline_mae_s);
    st_metric_set(m->g_roll_n, (double)s.rolling_n);
    st_metric_set(m->g_all_n, (double)s.all_n);
}

void pred_mae_stats(const pred_mae_t *m, pred_mae_stats_t *out)
{
    out->rolling_n = m->n;
    out->all_n = m->all_n;
    out->rolling_mae_s = m->n ? m->sum / (double)m->n : 0;
    out->rolling_baseline_mae_s = m->n ? m->base_sum / (double)m->n : 0;
    out->all_mae_s = m->all_n ? (double)(m->all_sum / m->all_n) : 0;
    out->all_baseline_mae_s = m->all_n ? (double)(m->all_base_sum / m->all_n) : 0;
}
