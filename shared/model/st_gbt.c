/* st_gbt.c - gradient-boosted trees on xgboost's C API: training with early stopping, one-row
 * prediction, the GBTR model file and gain importances (see st_gbt.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

#include "st_buf.h"
#include "st_err.h"
#include "st_gbt.h"
#include "st_time.h"

#define GBT_PAYLOAD_VERSION 1u

struct st_gbt {
    BoosterHandle booster;
    int cols;
    int rounds;
    char data_json[160]; /* the one-row array interface, pointing at row */
    float *row;          /* cols floats: the row predicted (its address is in data_json) */
};

void st_gbt_default(st_gbt_cfg_t *c)
{
    memset(c, 0, sizeof *c);
    c->rounds = 500;
    c->depth = 6;
    c->eta = 0.05;
    c->patience = 50;
    c->threads = 1;
    c->loss = ST_GBT_LOSS_L1;
    c->seed = 1;
}

/* xgboost's last error as ours, prefixed with what failed. */
static int xgb_error(char *errstr, size_t errstr_size, const char *what)
{
    return st_errstr(errstr, errstr_size, "gbt: %s: %s", what, XGBGetLastError());
}

void st_gbt_destroy(st_gbt_t *g)
{
    if (!g)
        return;
    if (g->booster)
        XGBoosterFree(g->booster);
    free(g->row);
    free(g);
}

/* A model around booster (taken: freed on failure too) with its prediction row. */
static st_gbt_t *wrap(BoosterHandle booster, int cols, char *errstr, size_t errstr_size)
{
    st_gbt_t *g = calloc(1, sizeof *g);
    if (!g || !(g->row = calloc((size_t)cols, sizeof *g->row))) {
        free(g);
        XGBoosterFree(booster);
        st_errstr(errstr, errstr_size, "gbt: out of memory");
        return NULL;
    }
    g->booster = booster;
    g->cols = cols;
    /* serving predicts one row at a time on one thread; nthread is not part of a saved model */
    if (XGBoosterSetParam(booster, "nthread", "1") != 0 ||
        XGBoosterBoostedRounds(booster, &g->rounds) != 0) {
        xgb_error(errstr, errstr_size, "booster");
        st_gbt_destroy(g);
        return NULL;
    }
    snprintf(g->data_json, sizeof g->data_json,
             "{\"data\": [%llu, true], \"shape\": [1, %d], \"typestr\": \"<f4\", \"version\": 3}",
             (unsigned long long)(uintptr_t)g->row, cols);
    return g;
}

int st_gbt_cols(const st_gbt_t *g)
{
    return g->cols;
}

int st_gbt_rounds(const st_gbt_t *g)
{
    return g->rounds;
}

/* L1 is boosted with our own gradients (l1_round): xgboost 1.7's reg:absoluteerror refits each
 * leaf to its residuals' median at full step, ignoring eta (on the default generated data the
 * validation loss was lowest after 3 rounds whatever eta was). The objective set for it only
 * leaves predictions untransformed. */
static const char *objective_of(st_gbt_loss_t loss)
{
    return loss == ST_GBT_LOSS_HUBER ? "reg:pseudohubererror" : "reg:squarederror";
}

/* One round of L1 boosting: the gradient of |prediction - y| (its sign, 0 at 0) and a unit
 * hessian, so each leaf moves by eta x the mean sign of its rows (regularised by lambda). */
static int l1_round(BoosterHandle h, DMatrixHandle dtrain, const float *y, size_t n, float *grad,
                    float *hess)
{
    static const char config[] = "{\"type\": 0, \"training\": true, \"iteration_begin\": 0, "
                                 "\"iteration_end\": 0, \"strict_shape\": false}";
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *pred = NULL;
    if (XGBoosterPredictFromDMatrix(h, dtrain, config, &shape, &dim, &pred) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        grad[i] = pred[i] > y[i] ? 1.0f : pred[i] < y[i] ? -1.0f : 0.0f;
        hess[i] = 1.0f;
    }
    return XGBoosterBoostOneIter(h, dtrain, grad, hess, (bst_ulong)n);
}

static const char *metric_of(st_gbt_loss_t loss)
{
    return loss == ST_GBT_LOSS_L2 ? "rmse" : loss == ST_GBT_LOSS_HUBER ? "mphe" : "mae";
}

/* The value after "<name>-<metric>:" in an eval line ("[3]\ttrain-mae:0.5\tval-mae:0.6"), as the
 * loss the history keeps (squared for rmse: the networks' L2 loss is the mean squared error). */
static double eval_value(const char *line, const char *name, st_gbt_loss_t loss)
{
    char key[32];
    snprintf(key, sizeof key, "\t%s-%s:", name, metric_of(loss));
    const char *p = strstr(line, key);
    if (!p)
        return NAN;
    double v = strtod(p + strlen(key), NULL);
    return loss == ST_GBT_LOSS_L2 ? v * v : v;
}

static DMatrixHandle matrix(const float *x, const float *y, size_t n, int cols)
{
    DMatrixHandle m = NULL;
    if (XGDMatrixCreateFromMat(x, (bst_ulong)n, (bst_ulong)cols, NAN, &m) != 0)
        return NULL;
    if (XGDMatrixSetFloatInfo(m, "label", y, (bst_ulong)n) != 0) {
        XGDMatrixFree(m);
        return NULL;
    }
    return m;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* The first guess the trees correct: the training targets' median (L1, huber) or mean (L2);
 * xgboost 1.7 starts from 0.5 otherwise, far from a log1p length. NAN on no memory. */
static double base_score(const float *y, size_t n, st_gbt_loss_t loss)
{
    if (loss == ST_GBT_LOSS_L2) {
        double s = 0;
        for (size_t i = 0; i < n; i++)
            s += y[i];
        return s / (double)n;
    }
    float *v = malloc(n * sizeof *v);
    if (!v)
        return NAN;
    memcpy(v, y, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp_float);
    double m = n % 2 ? v[n / 2] : 0.5 * ((double)v[n / 2 - 1] + v[n / 2]);
    free(v);
    return m;
}

static int set_params(BoosterHandle h, const st_gbt_cfg_t *c, double base)
{
    char depth[16], eta[32], threads[16], seed[32], base_s[32];
    snprintf(base_s, sizeof base_s, "%.9g", base);
    snprintf(depth, sizeof depth, "%d", c->depth);
    snprintf(eta, sizeof eta, "%.17g", c->eta);
    snprintf(threads, sizeof threads, "%d", c->threads);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)(c->seed & 0x7fffffffu));
    const char *kv[][2] = {{"verbosity", "0"},
                           {"tree_method", "hist"},
                           {"objective", objective_of(c->loss)},
                           {"eval_metric", metric_of(c->loss)},
                           {"max_depth", depth},
                           {"eta", eta},
                           {"nthread", threads},
                           {"seed", seed},
                           {"base_score", base_s}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (XGBoosterSetParam(h, kv[i][0], kv[i][1]) != 0)
            return -1;
    return 0;
}

st_gbt_t *st_gbt_train(const float *x_tr, const float *y_tr, size_t n_tr, const float *x_va,
                       const float *y_va, size_t n_va, int cols, const st_gbt_cfg_t *cfg,
                       st_nn_history_t *hist, char *errstr, size_t errstr_size)
{
    if (n_tr == 0 || cols < 1 || cols > ST_GBT_MAX_COLS || cfg->rounds < 1 || cfg->threads < 1) {
        st_errstr(errstr, errstr_size, "gbt: %zu training rows, %d columns, %d rounds, %d threads",
                  n_tr, cols, cfg->rounds, cfg->threads);
        return NULL;
    }
    st_nn_history_t h = {0, NULL, NULL, 0, NAN, 0};
    h.loss = calloc((size_t)cfg->rounds, sizeof *h.loss);
    h.val_loss = calloc((size_t)cfg->rounds, sizeof *h.val_loss);
    float *grad = cfg->loss == ST_GBT_LOSS_L1 ? malloc(2 * n_tr * sizeof *grad) : NULL;
    DMatrixHandle dm[2] = {NULL, NULL};
    BoosterHandle booster = NULL, kept = NULL;
    st_gbt_t *g = NULL;
    if (!h.loss || !h.val_loss || (cfg->loss == ST_GBT_LOSS_L1 && !grad)) {
        st_errstr(errstr, errstr_size, "gbt: out of memory");
        goto out;
    }
    dm[0] = matrix(x_tr, y_tr, n_tr, cols);
    if (n_va > 0 && dm[0])
        dm[1] = matrix(x_va, y_va, n_va, cols);
    if (!dm[0] || (n_va > 0 && !dm[1])) {
        xgb_error(errstr, errstr_size, "rows");
        goto out;
    }
    int n_dm = n_va > 0 ? 2 : 1;
    const char *names[2] = {"train", "val"};
    double base = base_score(y_tr, n_tr, cfg->loss);
    if (!isfinite(base)) {
        st_errstr(errstr, errstr_size, "gbt: out of memory or non-finite targets");
        goto out;
    }
    if (XGBoosterCreate(dm, (bst_ulong)n_dm, &booster) != 0 ||
        set_params(booster, cfg, base) != 0) {
        xgb_error(errstr, errstr_size, "booster");
        goto out;
    }
    int64_t t0 = st_time_mono_ms();
    int since_best = 0;
    for (int r = 0; r < cfg->rounds; r++) {
        const char *line = NULL;
        int step = cfg->loss == ST_GBT_LOSS_L1
                       ? l1_round(booster, dm[0], y_tr, n_tr, grad, grad + n_tr)
                       : XGBoosterUpdateOneIter(booster, r, dm[0]);
        if (step != 0 || XGBoosterEvalOneIter(booster, r, dm, names, (bst_ulong)n_dm, &line) != 0) {
            xgb_error(errstr, errstr_size, "round");
            goto out;
        }
        h.loss[r] = eval_value(line, "train", cfg->loss);
        h.val_loss[r] = n_va > 0 ? eval_value(line, "val", cfg->loss) : NAN;
        h.epochs = r + 1;
        if (n_va > 0 && isfinite(h.val_loss[r]) &&
            (h.best_epoch == 0 || h.val_loss[r] < h.best_val_loss)) {
            h.best_epoch = r + 1;
            h.best_val_loss = h.val_loss[r];
            since_best = 0;
        } else {
            since_best++;
        }
        int stop = n_va > 0 && cfg->patience > 0 && since_best >= cfg->patience;
        double el = (double)(st_time_mono_ms() - t0) / 1000.0;
        if (cfg->progress && ((r + 1) % 10 == 0 || r + 1 == cfg->rounds || stop) &&
            cfg->progress(cfg->progress_user, r + 1, cfg->rounds, h.loss[r], h.val_loss[r], el,
                          el / (r + 1) * (cfg->rounds - r - 1)) != 0)
            stop = 1;
        if (stop) {
            h.stopped_early = r + 1 < cfg->rounds;
            break;
        }
    }
    /* keep the rounds up to the best validation loss */
    if (h.best_epoch > 0 && h.best_epoch < h.epochs) {
        if (XGBoosterSlice(booster, 0, h.best_epoch, 1, &kept) != 0) {
            xgb_error(errstr, errstr_size, "slice");
            goto out;
        }
        XGBoosterFree(booster);
        booster = kept;
    }
    g = wrap(booster, cols, errstr, errstr_size);
    booster = NULL; /* wrap took it */
out:
    free(grad);
    XGDMatrixFree(dm[0]);
    XGDMatrixFree(dm[1]);
    if (booster)
        XGBoosterFree(booster);
    if (g && hist) {
        *hist = h;
    } else {
        free(h.loss);
        free(h.val_loss);
    }
    return g;
}

int st_gbt_predict(st_gbt_t *g, const float *row, float *out)
{
    static const char config[] =
        "{\"cache_id\": 0, \"type\": 0, \"training\": false, \"iteration_begin\": 0, "
        "\"iteration_end\": 0, \"strict_shape\": false, \"missing\": NaN}";
    memcpy(g->row, row, (size_t)g->cols * sizeof *row);
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *res = NULL;
    if (XGBoosterPredictFromDense(g->booster, g->data_json, config, NULL, &shape, &dim, &res) !=
            0 ||
        !res)
        return -1;
    *out = res[0];
    return 0;
}

int st_gbt_save(const st_gbt_t *g, const char *path, char *errstr, size_t errstr_size)
{
    bst_ulong len = 0;
    const char *bytes = NULL;
    if (XGBoosterSaveModelToBuffer(g->booster, "{\"format\": \"ubj\"}", &len, &bytes) != 0)
        return xgb_error(errstr, errstr_size, "save");
    st_buf_t p = {0};
    int rc = -1;
    if (st_model_put_u32(&p, (uint32_t)g->cols) != 0 || st_model_put_u64(&p, (uint64_t)len) != 0 ||
        st_buf_append(&p, bytes, (size_t)len) != 0)
        st_errstr(errstr, errstr_size, "gbt: out of memory");
    else
        rc = st_model_save(path, ST_MODEL_KIND_GBT, GBT_PAYLOAD_VERSION, &p, errstr, errstr_size);
    st_buf_free(&p);
    return rc;
}

st_gbt_t *st_gbt_load(const char *path, char *errstr, size_t errstr_size)
{
    void *payload = NULL;
    size_t plen = 0;
    uint32_t version = 0, cols = 0;
    uint64_t len = 0;
    if (st_model_load(path, ST_MODEL_KIND_GBT, &payload, &plen, &version, errstr, errstr_size) != 0)
        return NULL;
    st_model_reader_t r;
    st_model_reader_init(&r, payload, plen);
    BoosterHandle booster = NULL;
    st_gbt_t *g = NULL;
    if (version != GBT_PAYLOAD_VERSION) {
        st_errstr(errstr, errstr_size, "%s: gbt payload version %u, this build reads %u", path,
                  version, GBT_PAYLOAD_VERSION);
        goto out;
    }
    if (st_model_get_u32(&r, &cols) != 0 || st_model_get_u64(&r, &len) != 0 ||
        len != plen - r.pos || cols < 1 || cols > ST_GBT_MAX_COLS || len == 0) {
        st_errstr(errstr, errstr_size, "%s: not a gbt model (columns %u, model bytes %llu of %zu)",
                  path, cols, (unsigned long long)len, plen > r.pos ? plen - r.pos : 0);
        goto out;
    }
    if (XGBoosterCreate(NULL, 0, &booster) != 0 ||
        XGBoosterLoadModelFromBuffer(booster, (const char *)payload + r.pos, (bst_ulong)len) != 0) {
        st_errstr(errstr, errstr_size, "%s: xgboost refused the model: %s", path,
                  XGBGetLastError());
        goto out;
    }
    bst_ulong nf = 0;
    if (XGBoosterGetNumFeature(booster, &nf) != 0 || nf != cols) {
        st_errstr(errstr, errstr_size, "%s: the model reads %llu columns, the file says %u", path,
                  (unsigned long long)nf, cols);
        goto out;
    }
    g = wrap(booster, (int)cols, errstr, errstr_size);
    booster = NULL;
out:
    if (booster)
        XGBoosterFree(booster);
    free(payload);
    return g;
}

int st_gbt_gain(const st_gbt_t *g, double *gain, char *errstr, size_t errstr_size)
{
    bst_ulong n = 0, dim = 0;
    const char **names = NULL;
    const bst_ulong *shape = NULL;
    const float *scores = NULL;
    for (int c = 0; c < g->cols; c++)
        gain[c] = 0;
    if (XGBoosterFeatureScore(g->booster, "{\"importance_type\": \"total_gain\"}", &n, &names, &dim,
                              &shape, &scores) != 0)
        return xgb_error(errstr, errstr_size, "importance");
    /* features without names are called f0, f1, ...; only the ones split on are listed */
    for (bst_ulong i = 0; i < n; i++) {
        int c = -1;
        if (names[i][0] == 'f' && sscanf(names[i] + 1, "%d", &c) == 1 && c >= 0 && c < g->cols)
            gain[c] = scores[i];
    }
    return 0;
}
