/* bench/ml.c - figures for the ML core: training samples/s of the seed's model (LSTM(250), one
 * step, 9 features, batch 400, Dense(1), L1, Adam) and of LSTM(64) over 16 steps; inference
 * latency at batch 1 (st_nn_ctx_predict) and throughput at batch 256 (st_nn_predict). Each
 * figure runs for about BENCH_SECONDS. Run with OPENBLAS_NUM_THREADS=1 for one-core figures
 * (unset, the benchmark sets one thread itself). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "st_nn.h"
#include "st_rng.h"

#define BENCH_SECONDS 2.0

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    size_t n;
    int steps, features;
    float *x, *y;
    int *lengths;
} set_t;

static set_t make_set(size_t n, int steps, int features)
{
    set_t s = {n, steps, features, NULL, NULL, NULL};
    st_rng_t rng;
    st_rng_seed(&rng, 2024);
    s.x = malloc(n * (size_t)steps * (size_t)features * sizeof(float));
    s.y = malloc(n * sizeof(float));
    s.lengths = malloc(n * sizeof(int));
    for (size_t i = 0; i < n * (size_t)steps * (size_t)features; i++)
        s.x[i] = (float)st_rng_normal(&rng);
    for (size_t i = 0; i < n; i++) {
        s.lengths[i] = 1 + (int)st_rng_below(&rng, (uint64_t)steps);
        s.y[i] = s.x[i * (size_t)steps * (size_t)features] * 0.5f + 0.1f;
    }
    return s;
}

static void free_set(set_t *s)
{
    free(s->x);
    free(s->y);
    free(s->lengths);
}

static st_nn_t *make_net(int steps, int units)
{
    char err[256];
    st_nn_arch_t a;
    st_nn_arch_default(&a);
    a.steps = steps;
    a.features = 9;
    a.rnn_units[0] = units;
    st_nn_t *nn = st_nn_new(&a, err, sizeof err);
    if (!nn) {
        fprintf(stderr, "bench: %s\n", err);
        exit(1);
    }
    return nn;
}

static void bench_model(const char *name, int steps, int units, size_t n_train)
{
    char err[256];
    st_nn_t *nn = make_net(steps, units);
    set_t s = make_set(n_train, steps, 9);
    st_nn_data_t d = {s.n, steps, 9, s.x, s.lengths, s.y};
    st_nn_train_cfg_t c;
    st_nn_train_default(&c);
    c.loss = ST_NN_LOSS_L1;
    c.batch = 400;
    c.epochs = 1;
    double t0 = now_s(), elapsed;
    size_t samples = 0;
    do {
        if (st_nn_train(nn, &d, NULL, &c, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "bench: %s\n", err);
            exit(1);
        }
        samples += s.n;
        elapsed = now_s() - t0;
    } while (elapsed < BENCH_SECONDS);
    printf("%-34s train  %10.0f samples/s  (batch 400, %zu samples in %.2f s)\n", name,
           (double)samples / elapsed, samples, elapsed);

    st_nn_ctx_t *ctx = st_nn_ctx_new(nn, err, sizeof err);
    float out;
    long calls = 0;
    t0 = now_s();
    do {
        for (int i = 0; i < 1000; i++, calls++) {
            size_t row = (size_t)calls % s.n;
            st_nn_ctx_predict(ctx, s.x + row * (size_t)steps * 9, s.lengths[row], &out);
        }
        elapsed = now_s() - t0;
    } while (elapsed < BENCH_SECONDS / 2);
    printf("%-34s batch1 %10.2f us/prediction  (%ld calls)\n", name, elapsed / calls * 1e6, calls);

    float *pred = malloc(256 * sizeof(float));
    st_nn_data_t chunk = {256, steps, 9, NULL, NULL, NULL};
    samples = 0;
    t0 = now_s();
    do {
        size_t start = (samples % (s.n - 256 + 1));
        chunk.x = s.x + start * (size_t)steps * 9;
        chunk.lengths = s.lengths + start;
        st_nn_predict(nn, &chunk, pred, err, sizeof err);
        samples += 256;
        elapsed = now_s() - t0;
    } while (elapsed < BENCH_SECONDS / 2);
    printf("%-34s b256   %10.0f predictions/s (%.2f us/prediction)\n", name,
           (double)samples / elapsed, elapsed / (double)samples * 1e6);
    free(pred);
    st_nn_ctx_destroy(ctx);
    st_nn_destroy(nn);
    free_set(&s);
}

int main(void)
{
    const char *threads = getenv("OPENBLAS_NUM_THREADS");
    if (!threads)
        openblas_set_num_threads(1);
    printf("bench-ml: OPENBLAS_NUM_THREADS=%s, float32, %.0f s per training figure\n",
           threads ? threads : "1 (set by the benchmark)", BENCH_SECONDS);
    bench_model("seed LSTM(250) 1 step x 9 feat", 1, 250, 40000);
    bench_model("LSTM(64) 16 steps x 9 feat", 16, 64, 8000);
    return 0;
}
