/* test_gbt.c - the gbt bundle kind (xgboost trees, st_gbt): trained on generated sessions it beats
 * the per-user mean on the VAL rows, is deterministic, saves and loads back to identical
 * predictions, sees the seq model's features flattened (the serving path), L1 boosting steps
 * follow eta, and damaged or foreign model bytes are refused with a message naming the check. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "st_buf.h"
#include "st_bundle.h"
#include "st_dataset.h"
#include "st_gbt.h"
#include "st_log.h"
#include "st_model.h"
#include "st_rng.h"
#include "st_test.h"

#define N_USERS   50
#define N_PER     50
#define WINDOW    8
#define GBT_TREES 300

/* Users with their own typical length; evening sessions run longer and a long session tends to
 * follow a long one, so the history and the hour both carry signal. */
static st_dataset_t *generated(void)
{
    char err[256];
    st_rng_t rng;
    st_rng_seed(&rng, 11);
    st_dataset_t *ds = st_dataset_new();
    for (int u = 0; u < N_USERS; u++) {
        char id[32];
        snprintf(id, sizeof id, "u%03d", u);
        double level = log(900.0) + 0.9 * st_rng_normal(&rng), last = level;
        int64_t at = 1230768000 + (int64_t)u * 3001;
        for (int k = 0; k < N_PER; k++) {
            int hour = (int)((at % 86400) / 3600);
            double lg = level + (hour >= 18 ? 0.6 : 0.0) + 0.4 * (last - level) +
                        0.45 * st_rng_normal(&rng);
            double len = floor(exp(lg));
            last = lg;
            if (st_dataset_add_session(ds, id, at, len, 1 + (int)(len / 200), 0.0, err,
                                       sizeof err) != 0)
                ST_FAIL_AT("add: %s", err);
            at += (int64_t)len + 1800 + (int64_t)(st_rng_uniform(&rng) * 100000);
        }
        st_dataset_profile_t p = {0};
        p.gender = u % 2 ? 'f' : 'm';
        p.age = 20 + u % 25;
        snprintf(p.country, sizeof p.country, "%s", u % 3 ? "Sweden" : "Chile");
        st_dataset_add_profile(ds, id, &p, err, sizeof err);
    }
    if (st_dataset_finalize(ds, err, sizeof err) != 0)
        ST_FAIL_AT("finalize: %s", err);
    st_dataset_split_cfg_t sc;
    st_dataset_split_default(&sc);
    sc.test_frac = 0.2;
    sc.val_frac = 0.2;
    sc.seed = 5;
    if (st_dataset_split(ds, &sc, err, sizeof err) != 0)
        ST_FAIL_AT("split: %s", err);
    return ds;
}

static void gbt_spec(st_bundle_spec_t *s)
{
    st_bundle_spec_gbt(s);
    s->window = WINDOW;
    s->trees = GBT_TREES;
    s->depth = 4;
    s->eta = 0.1f;
    s->patience = 30;
    s->seed = 9;
}

/* Predictions of b for every row of role (caller frees). */
static double *predict_role(st_bundle_t *b, const st_dataset_t *ds, st_dataset_role_t role,
                            size_t *n)
{
    double *out = malloc((st_dataset_count(ds, role) + 1) * sizeof *out);
    double rl[WINDOW + 2], ru[WINDOW + 2];
    int64_t rs[WINDOW + 2];
    int rt[WINDOW + 2];
    *n = 0;
    for (size_t i = 0; out && i < st_dataset_n_rows(ds); i++) {
        if (st_dataset_rows(ds)[i].role != role)
            continue;
        st_bundle_input_t in;
        st_bundle_input_from_row(b, ds, i, &in, rl, rs, rt, ru);
        if (st_bundle_predict(b, &in, &out[*n]) != 0)
            ST_FAIL_AT("row %zu: no prediction", i);
        (*n)++;
    }
    return out;
}

static char g_dir[256];

static void rm_bundle(const char *dir)
{
    static const char *const files[] = {"metadata.json", "countries.txt", "gbt.stm"};
    char path[512];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void test_beats_the_user_mean_and_round_trips(void)
{
    char err[512];
    st_dataset_t *ds = generated();
    st_bundle_spec_t spec;
    gbt_spec(&spec);
    st_bundle_t *b = st_bundle_train(ds, &spec, NULL, NULL, err, sizeof err);
    if (!b)
        ST_FAIL_AT("train: %s", err);
    ST_REQUIRE(b != NULL);
    ST_EQ_INT(st_bundle_gbt_cols(b), WINDOW + 15);
    const st_nn_history_t *h = st_bundle_history(b, 0);
    ST_REQUIRE(h != NULL);
    ST_CHECK(h->best_epoch >= 1 && h->best_epoch <= h->epochs && h->epochs <= GBT_TREES);
    ST_CHECK(isfinite(h->best_val_loss));
    /* VAL: the trees against the per-user mean of the TRAIN rows */
    size_t n_val = 0;
    double *pv = predict_role(b, ds, ST_DATASET_VAL, &n_val);
    ST_REQUIRE(pv != NULL && n_val > 100);
    double mae = 0, mae_mean = 0;
    size_t j = 0;
    for (size_t i = 0; i < st_dataset_n_rows(ds); i++) {
        const st_dataset_row_t *r = &st_dataset_rows(ds)[i];
        if (r->role != ST_DATASET_VAL)
            continue;
        st_dataset_baselines_t bl;
        st_dataset_baselines(ds, i, &bl);
        mae += fabs(pv[j++] - r->length_s);
        mae_mean += fabs(bl.user_mean_s - r->length_s);
    }
    printf("# gbt val MAE %.1f s, per-user mean %.1f s, %d rounds kept of %d\n",
           mae / (double)n_val, mae_mean / (double)n_val, h->best_epoch, h->epochs);
    ST_CHECK(mae < 0.95 * mae_mean);
    /* save, load: the same predictions to the bit */
    snprintf(g_dir, sizeof g_dir, "/tmp/stint-test-gbt-%d", (int)getpid());
    ST_REQUIRE(st_bundle_save(b, g_dir, NULL, err, sizeof err) == 0);
    st_bundle_t *l = st_bundle_load(g_dir, err, sizeof err);
    if (!l)
        ST_FAIL_AT("load: %s", err);
    ST_REQUIRE(l != NULL);
    ST_EQ_INT(st_bundle_spec(l)->kind, ST_BUNDLE_GBT);
    ST_EQ_INT(st_bundle_spec(l)->trees, GBT_TREES);
    size_t n_t = 0, n_l = 0;
    double *pt = predict_role(b, ds, ST_DATASET_TEST, &n_t);
    double *pl = predict_role(l, ds, ST_DATASET_TEST, &n_l);
    ST_EQ_INT(n_t, n_l);
    size_t differ = 0;
    for (size_t i = 0; i < n_t; i++)
        differ += pt[i] != pl[i];
    ST_EQ_INT(differ, 0);
    /* the same spec and rows train the same trees */
    st_bundle_t *again = st_bundle_train(ds, &spec, NULL, NULL, err, sizeof err);
    ST_REQUIRE(again != NULL);
    double *pa = predict_role(again, ds, ST_DATASET_TEST, &n_l);
    differ = 0;
    for (size_t i = 0; i < n_t; i++)
        differ += pt[i] != pa[i];
    ST_EQ_INT(differ, 0);
    /* the importances name real columns and the lengths' history matters */
    double gain[WINDOW + 15];
    ST_EQ_INT(st_bundle_gbt_gain(l, gain, err, sizeof err), 0);
    double total = 0;
    for (int c = 0; c < WINDOW + 15; c++)
        total += gain[c];
    ST_CHECK(total > 0);
    free(pv);
    free(pt);
    free(pl);
    free(pa);
    st_bundle_destroy(again);
    st_bundle_destroy(l);
    st_bundle_destroy(b);
    st_dataset_destroy(ds);
}

/* The row is the seq input flattened: the lags are the earlier lengths, missing ones NAN. */
static void test_row_is_the_seq_input(void)
{
    char err[512];
    st_dataset_t *ds = generated();
    st_bundle_spec_t spec;
    gbt_spec(&spec);
    spec.trees = 2;
    st_bundle_t *b = st_bundle_train(ds, &spec, NULL, NULL, err, sizeof err);
    ST_REQUIRE(b != NULL);
    double rl[WINDOW + 2], ru[WINDOW + 2];
    int64_t rs[WINDOW + 2];
    int rt[WINDOW + 2];
    float row[WINDOW + 15], x[(WINDOW + 1) * 16];
    char name[64];
    size_t first = st_dataset_user_first(ds, 4);
    const st_dataset_row_t *r = st_dataset_rows(ds);
    for (int k = 0; k < 12; k++) {
        st_bundle_input_t in;
        st_bundle_input_from_row(b, ds, first + (size_t)k, &in, rl, rs, rt, ru);
        ST_EQ_INT(st_bundle_gbt_row(b, &in, row), WINDOW + 15);
        int steps = 0;
        ST_EQ_INT(st_bundle_features(b, &in, x, sizeof x / sizeof x[0], &steps), (WINDOW + 1) * 16);
        for (int lag = 1; lag <= WINDOW; lag++) {
            float v = row[WINDOW - lag];
            if (lag > k)
                ST_CHECK(isnan(v));
            else
                ST_NEAR(v, log1p(r[first + (size_t)k - (size_t)lag].length_s), 1e-4);
        }
        /* the tail repeats the predicted session's step */
        ST_EQ_INT(st_bundle_gbt_feature_name(b, WINDOW + 4, name, sizeof name), 0);
        ST_EQ_STR(name, "hour_sin");
        ST_NEAR(row[WINDOW + 4], x[WINDOW * 16 + 5], 0);
        ST_NEAR(row[WINDOW + 14], x[WINDOW * 16 + 15], 0);
    }
    ST_EQ_INT(st_bundle_gbt_feature_name(b, 0, name, sizeof name), 0);
    ST_EQ_STR(name, "log1p_length_s_lag8");
    ST_EQ_INT(st_bundle_gbt_feature_name(b, WINDOW + 15, name, sizeof name), -1);
    st_bundle_destroy(b);
    st_dataset_destroy(ds);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    ST_REQUIRE(fp != NULL);
    ST_REQUIRE(fwrite(p, 1, n, fp) == n);
    fclose(fp);
}

/* Damaged gbt.stm files: each refused with the reason (the saved bundle of the first test). */
static void test_bad_model_bytes(void)
{
    char err[512], path[512];
    snprintf(path, sizeof path, "%s/gbt.stm", g_dir);
    FILE *fp = fopen(path, "rb");
    ST_REQUIRE(fp != NULL);
    static unsigned char good[1 << 22];
    size_t n = fread(good, 1, sizeof good, fp);
    fclose(fp);
    ST_REQUIRE(n > 64 && n < sizeof good);
    static unsigned char bad[1 << 22];
    /* a flipped byte in the trees */
    memcpy(bad, good, n);
    bad[n / 2] ^= 0x40;
    write_bytes(path, bad, n);
    ST_CHECK(st_bundle_load(g_dir, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "checksum") != NULL);
    /* cut short */
    write_bytes(path, good, n - 9);
    ST_CHECK(st_bundle_load(g_dir, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "gbt.stm") != NULL);
    /* a sound container around bytes xgboost cannot read */
    st_buf_t p = {0};
    ST_REQUIRE(st_model_put_u32(&p, WINDOW + 15) == 0 && st_model_put_u64(&p, 10) == 0);
    ST_REQUIRE(st_buf_append(&p, "{not trees", 10) == 0);
    ST_REQUIRE(st_model_save(path, ST_MODEL_KIND_GBT, 1, &p, err, sizeof err) == 0);
    st_buf_free(&p);
    ST_CHECK(st_bundle_load(g_dir, err, sizeof err) == NULL);
    if (!strstr(err, "xgboost refused the model"))
        ST_FAIL_AT("message: %s", err);
    /* the right bytes again load */
    write_bytes(path, good, n);
    st_bundle_t *b = st_bundle_load(g_dir, err, sizeof err);
    ST_CHECK(b != NULL);
    st_bundle_destroy(b);
    /* gone */
    unlink(path);
    ST_CHECK(st_bundle_load(g_dir, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "gbt.stm") != NULL);
    rm_bundle(g_dir);
}

/* L1 boosting takes steps of at most eta (sign gradients, unit hessians): after one round no
 * prediction is more than eta from the training targets' median, and a larger eta goes further.
 * (xgboost 1.7's reg:absoluteerror ignored eta and refit every leaf at full step.) */
static void test_l1_steps_follow_eta(void)
{
    enum { ROWS = 200, COLS = 3 };
    static float x[ROWS * COLS], y[ROWS];
    char err[256];
    for (int i = 0; i < ROWS; i++) {
        for (int c = 0; c < COLS; c++)
            x[i * COLS + c] = (float)((i * (c + 3)) % 17);
        y[i] = (float)(x[i * COLS] > 8 ? 10 : 2) + (float)(i % 3); /* median 4 */
    }
    double moved[2];
    for (int k = 0; k < 2; k++) {
        st_gbt_cfg_t c;
        st_gbt_default(&c);
        c.rounds = 1;
        c.eta = k ? 0.5 : 0.05;
        st_gbt_t *g = st_gbt_train(x, y, ROWS, NULL, NULL, 0, COLS, &c, NULL, err, sizeof err);
        ST_REQUIRE(g != NULL);
        moved[k] = 0;
        for (int i = 0; i < ROWS; i++) {
            float p;
            ST_REQUIRE(st_gbt_predict(g, x + i * COLS, &p) == 0);
            moved[k] = fmax(moved[k], fabs(p - 4.0));
        }
        st_gbt_destroy(g);
    }
    ST_CHECK(moved[0] > 0 && moved[0] <= 0.05 + 1e-6);
    ST_CHECK(moved[1] > 5 * moved[0] && moved[1] <= 0.5 + 1e-6);
}

static void test_spec(void)
{
    char err[512];
    st_bundle_spec_t s;
    st_bundle_spec_default(&s);
    ST_EQ_INT(st_bundle_spec_set(&s, "kind", "gbt", err, sizeof err), 0);
    ST_EQ_INT(st_bundle_spec_set(&s, "trees", "0", err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: trees=\"0\" is not an integer from 1 to 100000");
    ST_EQ_INT(st_bundle_spec_set(&s, "eta", "0", err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: eta=\"0\" is not a number > 0 and <= 1");
    /* trees have no clusters */
    st_dataset_t *ds = generated();
    st_bundle_spec_gbt(&s);
    s.cluster = ST_BUNDLE_CLUSTER_KMEANS;
    ST_CHECK(st_bundle_train(ds, &s, NULL, NULL, err, sizeof err) == NULL);
    ST_EQ_STR(err, "bundle spec: kind=gbt takes no clustering (cluster=none)");
    st_dataset_destroy(ds);
}

int main(void)
{
    st_log_set_level(ST_LOG_ERROR);
    ST_RUN(test_beats_the_user_mean_and_round_trips);
    ST_RUN(test_row_is_the_seq_input);
    ST_RUN(test_bad_model_bytes);
    ST_RUN(test_l1_steps_follow_eta);
    ST_RUN(test_spec);
    return st_test_summary();
}
