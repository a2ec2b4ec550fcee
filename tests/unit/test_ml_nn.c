/* Unit tests of st_nn: the error bounds of its exp / sigmoid / tanh approximations (st_nn_act.h),
 * finite-difference gradient checks (dense, embedding, LSTM, GRU, stacked), masking of
 * right-aligned sequences, batch vs single-sample inference, determinism, a sequence task an MLP
 * cannot learn (LSTM and GRU), early stopping and input validation. */
#include <float.h>

#include "st_nn.h"
#include "st_nn_act.h"
#include "st_rng.h"
#include "st_test.h"

/* Central differences on float32 weights with step GC_EPS; a gradient passes when
 * |numeric - analytic| <= GC_ABS + GC_REL * max(|numeric|, |analytic|). */
#define GC_EPS 2e-3
#define GC_ABS 2e-4
#define GC_REL 2e-2

typedef struct {
    int n, steps, features, outputs;
    float *x, *y;
    int *lengths;
} set_t;

static void set_free(set_t *s)
{
    free(s->x);
    free(s->y);
    free(s->lengths);
}

/* Random inputs in [-1, 1] (categorical columns: ids in [0, vocab)) and targets in [-1, 1]. */
static set_t random_set(int n, int steps, int features, int outputs, int n_cat, int vocab,
                        uint64_t seed)
{
    set_t s = {n, steps, features, outputs, NULL, NULL, NULL};
    st_rng_t rng;
    st_rng_seed(&rng, seed);
    s.x = malloc(sizeof(float) * (size_t)(n * steps * features));
    s.y = malloc(sizeof(float) * (size_t)(n * outputs));
    s.lengths = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n * steps * features; i++)
        s.x[i] = (i % features) < n_cat ? (float)st_rng_below(&rng, (uint64_t)vocab)
                                        : (float)(2.0 * st_rng_uniform(&rng) - 1.0);
    for (int i = 0; i < n * outputs; i++)
        s.y[i] = (float)(2.0 * st_rng_uniform(&rng) - 1.0);
    for (int i = 0; i < n; i++)
        s.lengths[i] = 1 + (i * 7 + 3) % steps;
    return s;
}

static st_nn_data_t view(const set_t *s)
{
    st_nn_data_t d = {(size_t)s->n, s->steps, s->features, s->x, s->lengths, s->y};
    return d;
}

/* Checks every parameter (or an evenly spread subset of max_checks) of a fresh network. */
static void grad_check(const st_nn_arch_t *arch, int n_cat, int vocab, st_nn_loss_t loss)
{
    char err[256] = "";
    st_nn_t *nn = st_nn_new(arch, err, sizeof err);
    if (!nn)
        fprintf(stderr, "st_nn_new: %s\n", err);
    ST_REQUIRE(nn != NULL);
    set_t s = random_set(5, arch->steps, arch->features, arch->outputs, n_cat, vocab, 99);
    st_nn_data_t d = view(&s);
    int idx[5] = {0, 1, 2, 3, 4};
    size_t np;
    float *w = st_nn_params(nn, &np);
    double l0;
    ST_REQUIRE(st_nn_loss_grad(nn, &d, idx, 5, loss, 0.5f, &l0, err, sizeof err) == 0);
    float *ana = malloc(np * sizeof(float));
    memcpy(ana, st_nn_grads(nn), np * sizeof(float));
    size_t stride = np > 400 ? np / 400 : 1, checked = 0, bad = 0, nonzero = 0;
    double worst = 0.0;
    for (size_t i = 0; i < np; i += stride) {
        float keep = w[i];
        double lp, lm;
        w[i] = keep + (float)GC_EPS;
        double hp = (double)w[i] - (double)keep;
        st_nn_loss_grad(nn, &d, idx, 5, loss, 0.5f, &lp, err, sizeof err);
        w[i] = keep - (float)GC_EPS;
        double hm = (double)keep - (double)w[i];
        st_nn_loss_grad(nn, &d, idx, 5, loss, 0.5f, &lm, err, sizeof err);
        w[i] = keep;
        double num = (lp - lm) / (hp + hm);
        double a = ana[i];
        double diff = fabs(num - a);
        double tol = GC_ABS + GC_REL * fmax(fabs(num), fabs(a));
        if (fabs(a) > 1e-4)
            nonzero++;
        if (diff > tol) {
            if (bad < 5)
                fprintf(stderr, "  param %zu: numeric %.6g analytic %.6g\n", i, num, a);
            bad++;
        }
        worst = fmax(worst, diff - tol);
        checked++;
    }
    ST_EQ_INT(bad, 0);
    ST_CHECK(nonzero > checked / 4);
    free(ana);
    set_free(&s);
    st_nn_destroy(nn);
}

static st_nn_arch_t small_arch(st_nn_cell_t cell, int layers)
{
    st_nn_arch_t a;
    st_nn_arch_default(&a);
    a.steps = 4;
    a.features = 3;
    a.outputs = 2;
    a.cell = cell;
    a.rnn_layers = layers;
    a.rnn_units[0] = 5;
    a.rnn_units[1] = 4;
    a.seed = 7;
    return a;
}

/* Inputs of the activation checks besides a dense grid over [-100, 100] (step 2^-10) and random
 * tiny and denormal values: the exponent clamps (-87, 88, their neighbours), tanh's branch point
 * 0.625 and saturation at 10, signed zeros, FLT_MIN, denormals, FLT_MAX and the infinities. */
static const float act_edges[] = {
    0.0f,   -0.0f,   1e-30f,  -1e-30f,    1e-40f, -1e-40f,   FLT_MIN,  -FLT_MIN,    1e-8f,
    -1e-8f, 1e-4f,   -1e-4f,  0.6249999f, 0.625f, 0.625001f, -0.625f,  -0.6249999f, 9.999f,
    10.0f,  10.001f, -10.0f,  17.0f,      -17.0f, 86.9f,     87.0f,    87.1f,       87.5f,
    88.0f,  88.1f,   88.7f,   89.0f,      -86.9f, -87.0f,    -87.1f,   -88.0f,      -88.7f,
    -89.0f, 100.0f,  -100.0f, 1e6f,       -1e6f,  FLT_MAX,   -FLT_MAX, INFINITY,    -INFINITY};

typedef struct {
    double exp_rel, sig_abs, sig_rel, tanh_abs, tanh_rel;
} act_err_t;

static void act_error_at(float x, act_err_t *e)
{
    double d = (double)x;
    if (d >= -87.0 && d <= 88.0) { /* inside the clamp: relative error of exp */
        double ref = exp(d), got = (double)st_nn__exp(x);
        double rel = fabs(got - ref) / ref;
        e->exp_rel = rel > e->exp_rel ? rel : e->exp_rel;
    }
    double s_ref = 1.0 / (1.0 + exp(-d)), s = (double)st_nn__sigmoid(x);
    double t_ref = tanh(d), t = (double)st_nn__tanh(x);
    double sa = fabs(s - s_ref), ta = fabs(t - t_ref);
    e->sig_abs = sa > e->sig_abs ? sa : e->sig_abs;
    e->tanh_abs = ta > e->tanh_abs ? ta : e->tanh_abs;
    if (s_ref > 1e-30) { /* relative error where the result is a normal float */
        double sr = sa / s_ref;
        e->sig_rel = sr > e->sig_rel ? sr : e->sig_rel;
    }
    if (fabs(t_ref) > 1e-30) {
        double tr = ta / fabs(t_ref);
        e->tanh_rel = tr > e->tanh_rel ? tr : e->tanh_rel;
    }
    /* ranges and symmetry hold exactly */
    if (!(s >= 0.0 && s <= 1.0) || !(t >= -1.0 && t <= 1.0) || st_nn__tanh(-x) != -st_nn__tanh(x))
        e->sig_abs = e->tanh_abs = INFINITY;
}

/* The approximations against double precision: exp within 1.2e-7 relative, sigmoid and tanh
 * within 1.2e-7 absolute and 2e-7 relative (where the result is above 1e-30); saturation is exact;
 * a NaN stays NaN; the vector forms equal the scalar ones (a length not a multiple of the lanes).
 */
static void test_activation_errors(void)
{
    act_err_t e = {0, 0, 0, 0, 0};
    for (int i = -100 * 1024; i <= 100 * 1024; i++)
        act_error_at((float)i / 1024.0f, &e);
    st_rng_t rng;
    st_rng_seed(&rng, 7);
    for (int i = 0; i < 200000; i++) { /* random floats in [-20, 20] and log-uniform tiny ones */
        act_error_at((float)(40.0 * st_rng_uniform(&rng) - 20.0), &e);
        float tiny = (float)exp(-90.0 * st_rng_uniform(&rng));
        act_error_at(i & 1 ? tiny : -tiny, &e);
    }
    for (size_t i = 0; i < sizeof act_edges / sizeof act_edges[0]; i++)
        act_error_at(act_edges[i], &e);
    printf("     max error: exp %.3g rel, sigmoid %.3g abs %.3g rel, tanh %.3g abs %.3g rel\n",
           e.exp_rel, e.sig_abs, e.sig_rel, e.tanh_abs, e.tanh_rel);
    ST_CHECK(e.exp_rel <= 1.2e-7);
    ST_CHECK(e.sig_abs <= 1.2e-7);
    ST_CHECK(e.sig_rel <= 2e-7);
    ST_CHECK(e.tanh_abs <= 1.2e-7);
    ST_CHECK(e.tanh_rel <= 2e-7);
    ST_CHECK(st_nn__sigmoid(100.0f) == 1.0f && st_nn__sigmoid(-100.0f) < 1e-37f);
    ST_CHECK(st_nn__tanh(100.0f) == 1.0f && st_nn__tanh(-100.0f) == -1.0f);
    ST_CHECK(st_nn__tanh(1e-40f) == 1e-40f && st_nn__tanh(0.0f) == 0.0f);
    ST_CHECK(st_nn__sigmoid(0.0f) == 0.5f);
    ST_CHECK(isnan(st_nn__exp(NAN)) && isnan(st_nn__sigmoid(NAN)) && isnan(st_nn__tanh(NAN)));
    ST_CHECK(isnan(st_nn__sigmoid(-NAN)) && isnan(st_nn__tanh(-NAN)));

    enum { N = sizeof act_edges / sizeof act_edges[0] + 1 }; /* the edges, then a NaN */
    float v[N], s[N], t[N];
    for (int i = 0; i < N; i++)
        v[i] = i < N - 1 ? act_edges[i] * (i % 3 == 0 ? 1.0f : 1e-3f) : NAN;
    memcpy(s, v, sizeof v);
    memcpy(t, v, sizeof v);
    st_nn__sigmoid_vec(s, N);
    st_nn__tanh_vec(t, N);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        float ws = st_nn__sigmoid(v[i]), wt = st_nn__tanh(v[i]);
        bad += isnan(ws) ? !isnan(s[i]) : s[i] != ws;
        bad += isnan(wt) ? !isnan(t[i]) : t[i] != wt;
    }
    ST_EQ_INT(bad, 0);
    ST_CHECK(isnan(s[N - 1]) && isnan(t[N - 1]));
}

/* st_nn.c's gate loops are compiled for AVX-512 and AVX2 too (ST_NN_HOT, with -ffp-contract=off,
 * as this file): the same nonlinearities built for those targets give the baseline's floats bit
 * for bit, over the activation grid, random inputs and the edges, on each target this CPU has. */
#if defined(__x86_64__) && defined(__GNUC__)
#define ACT_CLONE(target_name, fn)                                                                 \
    __attribute__((target(target_name))) static void fn(float *s, float *t, int n)                 \
    {                                                                                              \
        st_nn__sigmoid_vec(s, n);                                                                  \
        st_nn__tanh_vec(t, n);                                                                     \
    }
ACT_CLONE("arch=x86-64-v4", act_v4)
ACT_CLONE("arch=x86-64-v3", act_v3)
#undef ACT_CLONE

static void test_activation_clones(void)
{
    enum { GRID = 200 * 1024 + 1, RANDOM = 100003, EDGES = sizeof act_edges / sizeof act_edges[0] };
    int n = GRID + RANDOM + EDGES + 1;
    float *v = malloc((size_t)n * sizeof(float)), *base = malloc(2 * (size_t)n * sizeof(float)),
          *got = malloc(2 * (size_t)n * sizeof(float));
    ST_REQUIRE(v && base && got);
    st_rng_t rng;
    st_rng_seed(&rng, 11);
    for (int i = 0; i < n; i++)
        v[i] = i < GRID                    ? (float)(i - 100 * 1024) / 1024.0f
               : i < GRID + RANDOM         ? (float)(60.0 * st_rng_uniform(&rng) - 30.0)
               : i < GRID + RANDOM + EDGES ? act_edges[i - GRID - RANDOM]
                                           : NAN;
    memcpy(base, v, (size_t)n * sizeof(float));
    memcpy(base + n, v, (size_t)n * sizeof(float));
    st_nn__sigmoid_vec(base, n);
    st_nn__tanh_vec(base + n, n);
    __builtin_cpu_init();
    int checked = 0;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
        memcpy(got, v, (size_t)n * sizeof(float));
        memcpy(got + n, v, (size_t)n * sizeof(float));
        act_v4(got, got + n, n);
        ST_EQ_INT(memcmp(got, base, 2 * (size_t)n * sizeof(float)), 0);
        checked++;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        memcpy(got, v, (size_t)n * sizeof(float));
        memcpy(got + n, v, (size_t)n * sizeof(float));
        act_v3(got, got + n, n);
        ST_EQ_INT(memcmp(got, base, 2 * (size_t)n * sizeof(float)), 0);
        checked++;
    }
    printf("     %d of the 2 clone targets checked on this CPU\n", checked);
    free(v);
    free(base);
    free(got);
}
#else
static void test_activation_clones(void)
{
    printf("     not an x86-64 GCC/clang build: no clones\n");
}
#endif

static void test_grad_dense(void)
{
    st_nn_arch_t a = small_arch(ST_NN_CELL_LSTM, 0);
    a.dense_layers = 2;
    a.dense_units[0] = 6;
    a.dense_units[1] = 5;
    a.dense_act = ST_NN_ACT_TANH;
    grad_check(&a, 0, 0, ST_NN_LOSS_L2);
}

static void test_grad_embedding(void)
{
    st_nn_arch_t a = small_arch(ST_NN_CELL_LSTM, 0);
    a.n_embed = 1;
    a.embed_vocab[0] = 4;
    a.embed_dim[0] = 3;
    a.dense_layers = 1;
    a.dense_units[0] = 4;
    a.dense_act = ST_NN_ACT_TANH;
    grad_check(&a, 1, 4, ST_NN_LOSS_L2);
    a.rnn_layers = 1; /* embedding under a recurrent layer, through time */
    a.n_embed = 2;
    a.embed_vocab[1] = 3;
    a.embed_dim[1] = 2;
    grad_check(&a, 2, 3, ST_NN_LOSS_L2);
}

static void test_grad_lstm(void)
{
    st_nn_arch_t a = small_arch(ST_NN_CELL_LSTM, 1);
    grad_check(&a, 0, 0, ST_NN_LOSS_L2);
    grad_check(&a, 0, 0, ST_NN_LOSS_HUBER);
}

static void test_grad_gru(void)
{
    st_nn_arch_t a = small_arch(ST_NN_CELL_GRU, 1);
    grad_check(&a, 0, 0, ST_NN_LOSS_L2);
}

static void test_grad_stacked(void)
{
    st_nn_arch_t a = small_arch(ST_NN_CELL_LSTM, 2);
    a.dense_layers = 1;
    a.dense_units[0] = 3;
    a.dense_act = ST_NN_ACT_TANH;
    grad_check(&a, 0, 0, ST_NN_LOSS_L2);
    a.cell = ST_NN_CELL_GRU;
    grad_check(&a, 0, 0, ST_NN_LOSS_L2);
}

/* A sequence of length 3 right-aligned in 6 steps with NaN padding predicts exactly what the
 * same weights predict for it with 3 steps; the one-sample path agrees with the batch path. */
static void test_masking(void)
{
    char err[256];
    for (int cell = 0; cell < 2; cell++) {
        st_nn_arch_t a = small_arch((st_nn_cell_t)cell, 2);
        a.steps = 6;
        st_nn_t *long_nn = st_nn_new(&a, err, sizeof err);
        a.steps = 3;
        st_nn_t *short_nn = st_nn_new(&a, err, sizeof err);
        ST_REQUIRE(long_nn && short_nn);
        float xl[6 * 3], xs[3 * 3];
        for (int i = 0; i < 9; i++)
            xl[i] = NAN;
        for (int i = 0; i < 9; i++)
            xl[9 + i] = xs[i] = (float)(i % 4) * 0.3f - 0.4f;
        int len_l = 3, len_s = 3;
        st_nn_data_t dl = {1, 6, 3, xl, &len_l, NULL}, ds = {1, 3, 3, xs, &len_s, NULL};
        float pl[2], ps[2], pc[2];
        ST_REQUIRE(st_nn_predict(long_nn, &dl, pl, err, sizeof err) == 0);
        ST_REQUIRE(st_nn_predict(short_nn, &ds, ps, err, sizeof err) == 0);
        st_nn_ctx_t *ctx = st_nn_ctx_new(long_nn, err, sizeof err);
        ST_REQUIRE(ctx != NULL);
        st_nn_ctx_predict(ctx, xl, 3, pc);
        for (int k = 0; k < 2; k++) {
            ST_CHECK(isfinite(pl[k]));
            ST_NEAR(pl[k], ps[k], 1e-6);
            ST_NEAR(pc[k], pl[k], 1e-5);
        }
        /* a mixed batch: each row as if alone */
        float xb[2 * 18];
        memcpy(xb, xl, sizeof xl);
        for (int i = 0; i < 18; i++)
            xb[18 + i] = (float)i * 0.05f;
        int lens[2] = {3, 6};
        st_nn_data_t db = {2, 6, 3, xb, lens, NULL};
        float pb[4], p2[2];
        ST_REQUIRE(st_nn_predict(long_nn, &db, pb, err, sizeof err) == 0);
        st_nn_ctx_predict(ctx, xb + 18, 6, p2);
        ST_NEAR(pb[0], pl[0], 1e-5);
        ST_NEAR(pb[2], p2[0], 1e-5);
        ST_NEAR(pb[3], p2[1], 1e-5);
        st_nn_ctx_destroy(ctx);
        st_nn_destroy(long_nn);
        st_nn_destroy(short_nn);
    }
}

/* y = sum of a variable-length sequence of U(0, 1) values, divided by 4. */
static set_t sum_set(int n, int steps, uint64_t seed)
{
    set_t s = {n, steps, 1, 1, NULL, NULL, NULL};
    st_rng_t rng;
    st_rng_seed(&rng, seed);
    s.x = calloc((size_t)(n * steps), sizeof(float));
    s.y = calloc((size_t)n, sizeof(float));
    s.lengths = calloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++) {
        int len = 1 + (int)st_rng_below(&rng, (uint64_t)steps);
        s.lengths[i] = len;
        double sum = 0.0;
        for (int t = steps - len; t < steps; t++) {
            float v = (float)st_rng_uniform(&rng);
            s.x[i * steps + t] = v;
            sum += v;
        }
        s.y[i] = (float)(sum / 4.0);
    }
    return s;
}

static double train_sum_task(st_nn_cell_t cell, int rnn_layers, double *val_mae)
{
    char err[256];
    set_t tr = sum_set(2000, 8, 11), va = sum_set(500, 8, 12);
    st_nn_arch_t a;
    st_nn_arch_default(&a);
    a.steps = 8;
    a.features = 1;
    a.cell = cell;
    a.rnn_layers = rnn_layers;
    a.rnn_units[0] = 16;
    a.dense_layers = rnn_layers ? 0 : 1;
    a.dense_units[0] = 16;
    a.seed = 5;
    st_nn_t *nn = st_nn_new(&a, err, sizeof err);
    st_nn_train_cfg_t c;
    st_nn_train_default(&c);
    c.loss = ST_NN_LOSS_L1;
    c.lr = 1e-2f;
    c.batch = 32;
    c.epochs = 25;
    c.seed = 3;
    st_nn_data_t dt = view(&tr), dv = view(&va);
    int rc = st_nn_train(nn, &dt, &dv, &c, NULL, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "train: %s\n", err);
    *val_mae = NAN;
    if (rc == 0)
        st_nn_evaluate(nn, &dv, ST_NN_LOSS_L1, 1.0f, val_mae, err, sizeof err);
    st_nn_destroy(nn);
    set_free(&tr);
    set_free(&va);
    return rc;
}

/* Training converges with the approximated gate nonlinearities, for both cells. */
static void test_lstm_learns_sum(void)
{
    double lstm_mae, gru_mae, mlp_mae;
    ST_REQUIRE(train_sum_task(ST_NN_CELL_LSTM, 1, &lstm_mae) == 0);
    ST_REQUIRE(train_sum_task(ST_NN_CELL_GRU, 1, &gru_mae) == 0);
    ST_REQUIRE(train_sum_task(ST_NN_CELL_LSTM, 0, &mlp_mae) == 0);
    printf("     sum task validation MAE: LSTM %.4f, GRU %.4f, MLP on the last step %.4f\n",
           lstm_mae, gru_mae, mlp_mae);
    ST_CHECK(lstm_mae < 0.25 * mlp_mae);
    ST_CHECK(lstm_mae < 0.05);
    ST_CHECK(gru_mae < 0.25 * mlp_mae);
    ST_CHECK(gru_mae < 0.05);
}

static void train_once(uint64_t seed, float **params_out, size_t *np, float *pred)
{
    char err[256];
    st_nn_arch_t a = small_arch(ST_NN_CELL_LSTM, 2);
    a.dropout = 0.2f;
    a.seed = seed;
    set_t s = random_set(60, 4, 3, 2, 0, 0, 5);
    st_nn_data_t d = view(&s);
    st_nn_t *nn = st_nn_new(&a, err, sizeof err);
    st_nn_train_cfg_t c;
    st_nn_train_default(&c);
    c.batch = 16;
    c.epochs = 3;
    c.seed = seed;
    c.clip_norm = 1.0f;
    st_nn_train(nn, &d, NULL, &c, NULL, err, sizeof err);
    float *w = st_nn_params(nn, np);
    *params_out = malloc(*np * sizeof(float));
    memcpy(*params_out, w, *np * sizeof(float));
    st_nn_predict(nn, &d, pred, err, sizeof err);
    st_nn_destroy(nn);
    set_free(&s);
}

static void test_determinism(void)
{
    float *w1, *w2, *w3, p1[120], p2[120], p3[120];
    size_t n1, n2, n3;
    train_once(42, &w1, &n1, p1);
    train_once(42, &w2, &n2, p2);
    train_once(43, &w3, &n3, p3);
    ST_EQ_INT(n1, n2);
    ST_EQ_INT(memcmp(w1, w2, n1 * sizeof(float)), 0);
    ST_EQ_INT(memcmp(p1, p2, sizeof p1), 0);
    ST_CHECK(memcmp(w1, w3, n1 * sizeof(float)) != 0);
    free(w1);
    free(w2);
    free(w3);
}

/* A copy of nn's parameters (np: their count); destroys nn and frees its training set. */
static float *take_params(st_nn_t *nn, set_t *s, size_t *np)
{
    float *w = st_nn_params(nn, np), *out = malloc(*np * sizeof(float));
    memcpy(out, w, *np * sizeof(float));
    st_nn_destroy(nn);
    set_free(s);
    return out;
}

/* Trains a 2-layer LSTM (or a GRU) with a country-like embedding on 200 rows (validated on
 * them too) over this many threads; returns its parameters. */
static float *train_threads(st_nn_cell_t cell, int threads, float dropout, int batch, int epochs,
                            size_t *np)
{
    char err[256];
    st_nn_arch_t a = small_arch(cell, cell == ST_NN_CELL_LSTM ? 2 : 1);
    a.n_embed = 1;
    a.embed_vocab[0] = 6;
    a.embed_dim[0] = 2;
    a.dropout = dropout;
    set_t s = random_set(200, 4, 3, 2, 1, 6, 21);
    st_nn_data_t d = view(&s);
    st_nn_t *nn = st_nn_new(&a, err, sizeof err);
    st_nn_train_cfg_t c;
    st_nn_train_default(&c);
    c.batch = batch;
    c.epochs = epochs;
    c.clip_norm = 1.0f;
    c.seed = 9;
    c.threads = threads;
    /* validation after each epoch regrows the network's batch buffers (256 rows), which part 0
     * trains in */
    ST_CHECK(st_nn_train(nn, &d, &d, &c, NULL, err, sizeof err) == 0);
    return take_params(nn, &s, np);
}

static float max_abs_diff(const float *a, const float *b, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++)
        m = fabsf(a[i] - b[i]) > m ? fabsf(a[i] - b[i]) : m;
    return m;
}

/* Data-parallel training: without dropout, 2 and 3 threads reach the single thread's weights but
 * for the order of the gradient sums (parts of 32, or of 21-22 rows); with dropout a thread count
 * is reproducible bit for bit; a batch too small to split (16 rows) is the single-threaded step
 * exactly, dropout included; an out-of-range count is refused. */
static void test_threads(void)
{
    for (int cell = 0; cell < 2; cell++) {
        size_t n1, n2, n3;
        float *w1 = train_threads((st_nn_cell_t)cell, 1, 0.0f, 64, 3, &n1);
        float *w2 = train_threads((st_nn_cell_t)cell, 2, 0.0f, 64, 3, &n2);
        float *w3 = train_threads((st_nn_cell_t)cell, 3, 0.0f, 64, 3, &n3);
        ST_EQ_INT(n1, n2);
        ST_EQ_INT(n1, n3);
        float d2 = max_abs_diff(w1, w2, n1), d3 = max_abs_diff(w1, w3, n1);
        printf("     %s: max |w(1 thread) - w(2)| %.2g, - w(3) %.2g\n", cell ? "GRU" : "LSTMx2",
               (double)d2, (double)d3);
        ST_CHECK(d2 < 1e-5f);
        ST_CHECK(d3 < 1e-5f);
        float *w0 = train_threads((st_nn_cell_t)cell, 1, 0.0f, 64, 1, &n1);
        ST_CHECK(max_abs_diff(w0, w1, n1) > 1e-3f); /* the epochs moved the weights */
        free(w0);
        free(w1);
        free(w2);
        free(w3);
    }
    size_t n;
    float *a = train_threads(ST_NN_CELL_LSTM, 2, 0.2f, 64, 2, &n);
    float *b = train_threads(ST_NN_CELL_LSTM, 2, 0.2f, 64, 2, &n);
    float *one = train_threads(ST_NN_CELL_LSTM, 1, 0.2f, 64, 2, &n);
    ST_EQ_INT(memcmp(a, b, n * sizeof(float)), 0);
    ST_CHECK(memcmp(a, one, n * sizeof(float)) != 0); /* other dropout masks */
    free(a);
    free(b);
    free(one);
    a = train_threads(ST_NN_CELL_LSTM, 2, 0.2f, 16, 2, &n);
    b = train_threads(ST_NN_CELL_LSTM, 1, 0.2f, 16, 2, &n);
    ST_EQ_INT(memcmp(a, b, n * sizeof(float)), 0);
    free(a);
    free(b);

    char err[256];
    st_nn_arch_t arch = small_arch(ST_NN_CELL_LSTM, 1);
    set_t s = random_set(40, 4, 3, 2, 0, 0, 5);
    st_nn_data_t d = view(&s);
    st_nn_t *nn = st_nn_new(&arch, err, sizeof err);
    st_nn_train_cfg_t c;
    st_nn_train_default(&c);
    c.threads = ST_NN_MAX_THREADS + 1;
    ST_CHECK(st_nn_train(nn, &d, NULL, &c, NULL, err, sizeof err) != 0);
    ST_CHECK(strstr(err, "threads") != NULL);
    st_nn_destroy(nn);
    set_free(&s);
}

/* Trains the train_once network with this epoch size and count; returns its parameters. */
static float *train_epochs(size_t epoch_rows, int epochs, int batch, size_t *np, int *hist_epochs)
{
    char err[256];
    st_nn_arch_t a = small_arch(ST_NN_CELL_LSTM, 2);
    a.dropout = 0.2f; /* the RNG is used between shuffles too */
    a.seed = 7;
    set_t s = random_set(60, 4, 3, 2, 0, 0, 5);
    st_nn_data_t d = view(&s);
    st_nn_t *nn = st_nn_new(&a, err, sizeof err);
    st_nn_train_cfg_t c;
    st_nn_train_default(&c);
    c.batch = batch;
    c.epochs = epochs;
    c.epoch_rows = epoch_rows;
    c.seed = 7;
    st_nn_history_t h = {0};
    ST_CHECK(st_nn_train(nn, &d, NULL, &c, &h, err, sizeof err) == 0);
    *hist_epochs = h.epochs;
    for (int e = 0; e < h.epochs; e++)
        ST_CHECK(isfinite(h.loss[e]));
    st_nn_history_free(&h);
    return take_params(nn, &s, np);
}

/* epoch_rows: 0, the row count or more is the plain epoch (bit for bit); a quarter of the rows
 * makes four epochs walk exactly the batches of one (the order reshuffled only when the rows run
 * out), so 12 quarter epochs end at the weights of 3 whole ones. */
static void test_epoch_rows(void)
{
    size_t n0, n1, n2, n3, n4, n5;
    int e0, e1, e2, e3, e4, e5;
    float *all = train_epochs(0, 3, 15, &n0, &e0);
    float *exact = train_epochs(60, 3, 15, &n1, &e1);
    float *more = train_epochs(1000, 3, 15, &n2, &e2);
    float *quarter = train_epochs(15, 12, 15, &n3, &e3);
    float *short_run = train_epochs(15, 3, 15, &n4, &e4);
    float *uneven = train_epochs(20, 9, 16, &n5, &e5); /* batches of 16 + 4 */
    ST_EQ_INT(e0, 3);
    ST_EQ_INT(e3, 12);
    ST_EQ_INT(e5, 9);
    ST_EQ_INT(memcmp(all, exact, n0 * sizeof(float)), 0);
    ST_EQ_INT(memcmp(all, more, n0 * sizeof(float)), 0);
    ST_EQ_INT(memcmp(all, quarter, n0 * sizeof(float)), 0);
    ST_CHECK(memcmp(all, short_run, n0 * sizeof(float)) != 0); /* 3 quarters: not 3 epochs */
    ST_CHECK(memcmp(all, uneven, n0 * sizeof(float)) != 0);
    free(all);
    free(exact);
    free(more);
    free(quarter);
    free(short_run);
    free(uneven);
}

static int count_epochs(void *user, int epoch, int epochs, double loss, double val_loss,
                        double elapsed_s, double eta_s)
{
    (void)epochs;
    (void)elapsed_s;
    ST_CHECK(isfinite(loss));
    ST_CHECK(isfinite(val_loss));
    ST_CHECK(eta_s >= 0.0);
    *(int *)user = epoch;
    return 0;
}

/* Noise targets: validation loss stops improving, training stops early, best weights kept. */
static void test_early_stopping(void)
{
    char err[256];
    st_nn_arch_t a = small_arch(ST_NN_CELL_GRU, 1);
    a.rnn_units[0] = 32;
    set_t tr = random_set(64, 4, 3, 2, 0, 0, 1), va = random_set(64, 4, 3, 2, 0, 0, 2);
    st_nn_data_t dt = view(&tr), dv = view(&va);
    st_nn_t *nn = st_nn_new(&a, err, sizeof err);
    st_nn_train_cfg_t c;
    st_nn_train_default(&c);
    c.loss = ST_NN_LOSS_L2;
    c.lr = 3e-2f;
    c.batch = 8;
    c.epochs = 200;
    c.patience = 3;
    int last = 0;
    c.progress = count_epochs;
    c.progress_user = &last;
    st_nn_history_t h;
    ST_REQUIRE(st_nn_train(nn, &dt, &dv, &c, &h, err, sizeof err) == 0);
    ST_CHECK(h.stopped_early);
    ST_CHECK(h.epochs < 200);
    ST_EQ_INT(last, h.epochs);
    ST_EQ_INT(h.epochs, h.best_epoch + 3);
    double v;
    st_nn_evaluate(nn, &dv, ST_NN_LOSS_L2, 1.0f, &v, err, sizeof err);
    ST_NEAR(v, h.best_val_loss, 1e-9);
    for (int e = 0; e < h.epochs; e++)
        ST_CHECK(h.val_loss[e] >= h.best_val_loss);
    st_nn_history_free(&h);
    st_nn_destroy(nn);
    set_free(&tr);
    set_free(&va);
}

static void test_bad_input(void)
{
    char err[256] = "";
    st_nn_arch_t a = small_arch(ST_NN_CELL_LSTM, 3);
    ST_CHECK(st_nn_new(&a, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "rnn_layers") != NULL);
    a = small_arch(ST_NN_CELL_LSTM, 1);
    a.dropout = 1.0f;
    ST_CHECK(st_nn_new(&a, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "dropout") != NULL);
    a.dropout = 0.0f;
    st_nn_t *nn = st_nn_new(&a, err, sizeof err);
    ST_REQUIRE(nn != NULL);
    set_t s = random_set(4, 5, 3, 2, 0, 0, 1);
    st_nn_data_t d = view(&s);
    st_nn_train_cfg_t c;
    st_nn_train_default(&c);
    ST_CHECK(st_nn_train(nn, &d, NULL, &c, NULL, err, sizeof err) == -1);
    ST_CHECK(strstr(err, "expects 4 x 3") != NULL);
    set_free(&s);
    /* huge inputs: the loss overflows and training says so instead of returning NaN weights */
    s = random_set(8, 4, 3, 2, 0, 0, 1);
    for (int i = 0; i < 8 * 2; i++)
        s.y[i] = 3e38f;
    d = view(&s);
    c.loss = ST_NN_LOSS_L2;
    ST_CHECK(st_nn_train(nn, &d, NULL, &c, NULL, err, sizeof err) == -1);
    ST_CHECK(strstr(err, "not finite") != NULL);
    set_free(&s);
    st_nn_destroy(nn);
    st_nn_destroy(NULL);
}

/* A linear model pred = w * x + b (no hidden layer) makes losses and updates checkable by hand. */
static st_nn_t *linear_net(float w, float b)
{
    char err[256];
    st_nn_arch_t a;
    st_nn_arch_default(&a);
    a.rnn_layers = 0;
    st_nn_t *nn = st_nn_new(&a, err, sizeof err);
    size_t np;
    float *p = st_nn_params(nn, &np);
    if (np == 2) {
        p[0] = w;
        p[1] = b;
    }
    return nn;
}

static void test_losses(void)
{
    char err[256];
    st_nn_t *nn = linear_net(1.0f, 0.0f);
    float x[3] = {0, 1, 3}, y[3] = {0, 0, 0};
    st_nn_data_t d = {3, 1, 1, x, NULL, y};
    double l1, l2, hub;
    ST_REQUIRE(st_nn_evaluate(nn, &d, ST_NN_LOSS_L1, 1.0f, &l1, err, sizeof err) == 0);
    st_nn_evaluate(nn, &d, ST_NN_LOSS_L2, 1.0f, &l2, err, sizeof err);
    st_nn_evaluate(nn, &d, ST_NN_LOSS_HUBER, 1.0f, &hub, err, sizeof err);
    ST_NEAR(l1, 4.0 / 3.0, 1e-12);
    ST_NEAR(l2, 10.0 / 3.0, 1e-12);
    ST_NEAR(hub, (0.0 + 0.5 + 2.5) / 3.0,
            1e-12); /* 0.5 e^2 inside delta, delta (|e| - delta / 2) out */
    st_nn_destroy(nn);
}

/* One step from w = 1, b = 0.5 on x = 2, y = 0 with L2 loss: g_w = 2 (2w + b) 2 = 10, g_b = 5. */
static void test_optimizers(void)
{
    char err[256];
    float x = 2.0f, y = 0.0f;
    st_nn_data_t d = {1, 1, 1, &x, NULL, &y};
    st_nn_train_cfg_t c;
    st_nn_train_default(&c);
    c.loss = ST_NN_LOSS_L2;
    c.epochs = 1;
    c.batch = 1;

    st_nn_t *nn = linear_net(1.0f, 0.5f);
    c.opt = ST_NN_OPT_SGD;
    c.lr = 0.01f;
    ST_REQUIRE(st_nn_train(nn, &d, NULL, &c, NULL, err, sizeof err) == 0);
    float *p = st_nn_params(nn, NULL);
    ST_NEAR(p[0], 1.0 - 0.01 * 10.0, 1e-6);
    ST_NEAR(p[1], 0.5 - 0.01 * 5.0, 1e-6);
    st_nn_destroy(nn);

    /* clipping to global norm 1: the gradient (10, 5) becomes (10, 5) / sqrt(125) */
    nn = linear_net(1.0f, 0.5f);
    c.clip_norm = 1.0f;
    st_nn_train(nn, &d, NULL, &c, NULL, err, sizeof err);
    p = st_nn_params(nn, NULL);
    ST_NEAR(p[0], 1.0 - 0.01 * 10.0 / sqrt(125.0), 1e-6);
    ST_NEAR(p[1], 0.5 - 0.01 * 5.0 / sqrt(125.0), 1e-6);
    st_nn_destroy(nn);

    /* Adam, Keras rule: lr_t = lr sqrt(1 - b2) / (1 - b1), step = lr_t m / (sqrt(v) + eps) */
    nn = linear_net(1.0f, 0.5f);
    st_nn_train_default(&c);
    c.loss = ST_NN_LOSS_L2;
    c.epochs = 1;
    c.batch = 1;
    ST_EQ_INT(c.opt, ST_NN_OPT_ADAM);
    ST_NEAR(c.lr, 1e-3, 1e-9);
    ST_NEAR(c.eps, 1e-7, 1e-13);
    st_nn_train(nn, &d, NULL, &c, NULL, err, sizeof err);
    p = st_nn_params(nn, NULL);
    double lr_t = 1e-3 * sqrt(1.0 - 0.999) / (1.0 - 0.9);
    double step_w = lr_t * (0.1 * 10.0) / (sqrt(0.001 * 100.0) + 1e-7);
    double step_b = lr_t * (0.1 * 5.0) / (sqrt(0.001 * 25.0) + 1e-7);
    ST_NEAR(p[0], 1.0 - step_w, 1e-6);
    ST_NEAR(p[1], 0.5 - step_b, 1e-6);
    st_nn_destroy(nn);
}

/* Dropout changes training, never inference: two predictions agree exactly. */
static void test_dropout(void)
{
    char err[256];
    set_t s = random_set(64, 4, 3, 2, 0, 0, 8);
    st_nn_data_t d = view(&s);
    float w_plain[400], p1[128], p2[128];
    size_t np = 0;
    for (int with = 0; with < 2; with++) {
        st_nn_arch_t a = small_arch(ST_NN_CELL_LSTM, 2);
        a.dropout = with ? 0.5f : 0.0f;
        st_nn_t *nn = st_nn_new(&a, err, sizeof err);
        st_nn_train_cfg_t c;
        st_nn_train_default(&c);
        c.epochs = 2;
        st_nn_train(nn, &d, NULL, &c, NULL, err, sizeof err);
        float *w = st_nn_params(nn, &np);
        ST_REQUIRE(np <= 400);
        if (!with) {
            memcpy(w_plain, w, np * sizeof(float));
        } else {
            ST_CHECK(memcmp(w_plain, w, np * sizeof(float)) != 0);
            st_nn_predict(nn, &d, p1, err, sizeof err);
            st_nn_predict(nn, &d, p2, err, sizeof err);
            ST_EQ_INT(memcmp(p1, p2, sizeof p1), 0);
        }
        st_nn_destroy(nn);
    }
    set_free(&s);
}

static double sig(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* One unit, one feature, two steps, weights set by hand in the documented (Keras) layout: the
 * output equals Keras' LSTM / GRU(reset_after) equations evaluated here in double. */
static void test_keras_equations(void)
{
    char err[256];
    const double x[2] = {0.7, -1.3};
    for (int cell = 0; cell < 2; cell++) {
        st_nn_arch_t a;
        st_nn_arch_default(&a);
        a.steps = 2;
        a.cell = (st_nn_cell_t)cell;
        a.rnn_units[0] = 1;
        st_nn_t *nn = st_nn_new(&a, err, sizeof err);
        size_t np;
        float *p = st_nn_params(nn, &np);
        int g = cell == 0 ? 4 : 3;
        ST_REQUIRE(np == (size_t)(cell == 0 ? 3 * 4 + 2 : 4 * 3 + 2));
        const double w[4] = {0.5, -0.4, 0.9, 0.3}, u[4] = {-0.6, 0.8, 0.2, -0.7};
        const double b[4] = {0.1, 1.0, -0.2, 0.05}, b2[3] = {-0.3, 0.25, 0.15};
        for (int k = 0; k < g; k++) {
            p[k] = (float)w[k];
            p[g + k] = (float)u[k];
            p[2 * g + k] = (float)b[k];
            if (cell == 1)
                p[3 * g + k] = (float)b2[k];
        }
        p[np - 2] = 1.0f; /* dense head: y = h */
        p[np - 1] = 0.0f;
        double h = 0.0, c = 0.0;
        for (int t = 0; t < 2; t++) {
            if (cell == 0) {
                double i = sig(x[t] * w[0] + h * u[0] + b[0]);
                double f = sig(x[t] * w[1] + h * u[1] + b[1]);
                double cc = tanh(x[t] * w[2] + h * u[2] + b[2]);
                double o = sig(x[t] * w[3] + h * u[3] + b[3]);
                c = f * c + i * cc;
                h = o * tanh(c);
            } else {
                double z = sig(x[t] * w[0] + b[0] + h * u[0] + b2[0]);
                double r = sig(x[t] * w[1] + b[1] + h * u[1] + b2[1]);
                double hh = tanh(x[t] * w[2] + b[2] + r * (h * u[2] + b2[2]));
                h = z * h + (1.0 - z) * hh;
            }
        }
        float xf[2] = {(float)x[0], (float)x[1]}, out;
        st_nn_data_t d = {1, 2, 1, xf, NULL, NULL};
        ST_REQUIRE(st_nn_predict(nn, &d, &out, err, sizeof err) == 0);
        ST_NEAR(out, h, 1e-6);
        st_nn_destroy(nn);
    }
}

/* st_nn_predict over several chunks (600 rows, 2 outputs) agrees row by row with the
 * single-sample path, for both cells with an embedding and two layers. */
static void test_batch_vs_single(void)
{
    char err[256];
    for (int cell = 0; cell < 2; cell++) {
        st_nn_arch_t a = small_arch((st_nn_cell_t)cell, 2);
        a.steps = 5;
        a.n_embed = 1;
        a.embed_vocab[0] = 6;
        a.embed_dim[0] = 2;
        st_nn_t *nn = st_nn_new(&a, err, sizeof err);
        ST_REQUIRE(nn != NULL);
        set_t s = random_set(600, 5, 3, 2, 1, 6, 21);
        s.x[0] = 99.0f; /* out-of-range id: row 0 */
        s.x[3] = -5.0f;
        st_nn_data_t d = view(&s);
        float *out = malloc(600 * 2 * sizeof(float));
        ST_REQUIRE(st_nn_predict(nn, &d, out, err, sizeof err) == 0);
        st_nn_ctx_t *ctx = st_nn_ctx_new(nn, err, sizeof err);
        int bad = 0;
        for (int i = 0; i < 600; i++) {
            float one[2];
            st_nn_ctx_predict(ctx, s.x + i * 15, s.lengths[i], one);
            bad += fabsf(one[0] - out[2 * i]) > 1e-5f || fabsf(one[1] - out[2 * i + 1]) > 1e-5f ||
                   !isfinite(one[0]);
        }
        ST_EQ_INT(bad, 0);
        st_nn_ctx_destroy(ctx);
        free(out);
        set_free(&s);
        st_nn_destroy(nn);
    }
}

int main(void)
{
    ST_RUN(test_activation_errors);
    ST_RUN(test_activation_clones);
    ST_RUN(test_grad_dense);
    ST_RUN(test_grad_embedding);
    ST_RUN(test_grad_lstm);
    ST_RUN(test_grad_gru);
    ST_RUN(test_grad_stacked);
    ST_RUN(test_keras_equations);
    ST_RUN(test_masking);
    ST_RUN(test_batch_vs_single);
    ST_RUN(test_losses);
    ST_RUN(test_optimizers);
    ST_RUN(test_dropout);
    ST_RUN(test_determinism);
    ST_RUN(test_threads);
    ST_RUN(test_epoch_rows);
    ST_RUN(test_early_stopping);
    ST_RUN(test_lstm_learns_sum);
    ST_RUN(test_bad_input);
    return st_test_summary();
}
