/* pred_mae.h - the live MAE of the predictor's answers and of the baseline, over a rolling window
 * of the last N outcomes and over every outcome since start, kept apart for outcomes of MODEL
 * predictions and of BASELINE ones (made without a bundle, or where the model failed), published
 * as Prometheus gauges: the online twin of the evaluation table. Used by one thread. */
#ifndef PRED_MAE_H
#define PRED_MAE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pred_mae pred_mae_t;

/* A window of window_n outcomes (>= 1) per predictor; registers the gauges
 * stint_predictor_mae_seconds (labels predictor="MODEL"|"BASELINE", window="rolling"|"all",
 * series="predicted"|"baseline") and stint_predictor_mae_outcomes (predictor, window).
 * Returns NULL on no memory. Caller owns (pred_mae_destroy). */
pred_mae_t *pred_mae_new(size_t window_n);
void pred_mae_destroy(pred_mae_t *m);

/* Adds one outcome's absolute errors (seconds) to the series of its prediction's predictor
 * (model: MODEL, else BASELINE) and updates that predictor's gauges. */
void pred_mae_add(pred_mae_t *m, bool model, double abs_error_s, double baseline_abs_error_s);

/* Current values of one predictor's series: MAE of the predictions and of the baseline, rolling
 * and cumulative (0 with no outcomes), and the count of outcomes in each. */
typedef struct {
    double rolling_mae_s, rolling_baseline_mae_s;
    double all_mae_s, all_baseline_mae_s;
    size_t rolling_n;
    uint64_t all_n;
} pred_mae_stats_t;
void pred_mae_stats(const pred_mae_t *m, bool model, pred_mae_stats_t *out);

#endif
