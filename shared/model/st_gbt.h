/* st_gbt.h - gradient-boosted regression trees through xgboost's C API (libxgboost 1.7): training
 * on dense float rows with early stopping on validation rows, one-row prediction, the model file
 * (xgboost's UBJSON model inside the st_model container) and per-feature gain importances.
 *
 * L1 is boosted on sign gradients with unit hessians (steps of at most eta), not xgboost 1.7's
 * reg:absoluteerror, which ignores eta. Missing values are NAN in the rows (xgboost learns a
 * default direction for them). Training is deterministic for the same rows, config and thread count
 * (tree_method hist, seeded). */
#ifndef ST_GBT_H
#define ST_GBT_H

#include <stddef.h>
#include <stdint.h>

#include "st_model.h"
#include "st_nn.h"

#define ST_MODEL_KIND_GBT ST_MODEL_FOURCC('G', 'B', 'T', 'R')
#define ST_GBT_MAX_COLS   4096

typedef enum { ST_GBT_LOSS_L1 = 0, ST_GBT_LOSS_L2 = 1, ST_GBT_LOSS_HUBER = 2 } st_gbt_loss_t;

typedef struct {
    int rounds;   /* boosting rounds at most (trees) */
    int depth;    /* max_depth */
    double eta;   /* learning rate */
    int patience; /* stop after this many rounds without a better validation loss; 0: never */
    int threads;  /* nthread, >= 1 */
    st_gbt_loss_t loss;
    uint64_t seed;
    /* called every 10 rounds and after the last; non-zero stops (same shape as st_nn's) */
    int (*progress)(void *user, int round, int rounds, double loss, double val_loss,
                    double elapsed_s, double eta_s);
    void *progress_user;
} st_gbt_cfg_t;

typedef struct st_gbt st_gbt_t;

/* Defaults: 500 rounds, depth 6, eta 0.05, patience 50, 1 thread, L1, seed 1. */
void st_gbt_default(st_gbt_cfg_t *cfg);

/* Trains on n_tr rows of cols floats (x_tr row-major, y_tr targets); with n_va > 0 validation
 * rows, the model keeps the rounds up to the best validation loss. hist (may be NULL) receives
 * the per-round train and validation losses (L1: mean |error|, L2: mean squared error, huber:
 * xgboost's mphe) and the kept round; free it with st_nn_history_free. Returns a new model
 * (caller owns; st_gbt_destroy) or NULL with errstr (xgboost's message). */
st_gbt_t *st_gbt_train(const float *x_tr, const float *y_tr, size_t n_tr, const float *x_va,
                       const float *y_va, size_t n_va, int cols, const st_gbt_cfg_t *cfg,
                       st_nn_history_t *hist, char *errstr, size_t errstr_size);
void st_gbt_destroy(st_gbt_t *g);

/* Columns the model reads. */
int st_gbt_cols(const st_gbt_t *g);
/* Boosting rounds the model holds. */
int st_gbt_rounds(const st_gbt_t *g);

/* Predicts one row of st_gbt_cols floats into *out. Returns 0, or -1 when xgboost fails. Not
 * safe to call from two threads at once on the same model. */
int st_gbt_predict(st_gbt_t *g, const float *row, float *out);

/* Writes the model to path (st_model container, kind GBTR: u32 cols, u64 length, the UBJSON
 * model bytes). Returns 0 or -1 with errstr. */
int st_gbt_save(const st_gbt_t *g, const char *path, char *errstr, size_t errstr_size);
/* Loads a model written by st_gbt_save (caller owns). NULL with errstr naming the failed check
 * (container, layout, or xgboost's refusal of the model bytes). */
st_gbt_t *st_gbt_load(const char *path, char *errstr, size_t errstr_size);

/* Total gain of the splits on each column into gain[cols] (0 for a column never split on).
 * Returns 0 or -1 with errstr. */
int st_gbt_gain(const st_gbt_t *g, double *gain, char *errstr, size_t errstr_size);

#endif
