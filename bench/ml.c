/* bench/ml.c - figures for the ML core: training samples/s of the seed's model (LSTM(250), one
 * step, batch 400, Dense(1), L1, Adam), of LSTM(64) over 16 steps at batch 400 and of the networks
 * `stint evaluate`'s default preset trains (W16, 16 features with a country embedding, batch 64,
 * clip 1); inference latency at batch 1 (st_nn_ctx_predict) and throughput at batch 256
 * (st_nn_predict). Each training figure runs for about BENCH_SECONDS. Run with
 * OPENBLAS_NUM_THREADS=1 for one-core figures (unset, the benchmark sets one thread itself).
 * `bench-ml -t [name substring]` prints the training figures only (of the matching rows); -j N
 * trains on N threads (st_nn_train_cfg_t.threads: the batch split over them). `bench-ml -p` prints
 * one core's float32 multiply-add peak (AVX-512 or AVX2, as the CPU has), the ceiling the training
 * figures are measured against in docs/training.md. Per CPU
 * second: samples over the process's CPU time, the figure to compare at one thread on a busy
 * machine. The header names the kernels OpenBLAS chose for this CPU (OPENBLAS_CORETYPE overrides
 * the choice: compare figures only on the same kernels). */
#include <cblas.h>
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "st_nn.h"
#include "st_rng.h"

#define BENCH_SECONDS 2.0

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

typedef struct {
    size_t n;
    int steps, features;
    float *x, *y;
    int *lengths;
} set_t;

static set_t make_set(size_t n, int steps, int features, int embed)
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
        if (embed)
            for (int t = 0; t < steps; t++)
                s.x[(i * (size_t)steps + (size_t)t) * (size_t)features] =
                    (float)st_rng_below(&rng, 32);
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

typedef struct {
    const char *name;
    st_nn_cell_t cell;
    int layers, units, steps, features, embed; /* embed: a country id (vocab 32, dim 4) first */
    float dropout, clip_norm;
    int batch;
    size_t n_train;
} cfg_t;

static st_nn_t *make_net(const cfg_t *k)
{
    char err[256];
    st_nn_arch_t a;
    st_nn_arch_default(&a);
    a.steps = k->steps;
    a.features = k->features;
    a.cell = k->cell;
    a.rnn_layers = k->layers;
    a.rnn_units[0] = a.rnn_units[1] = k->units;
    a.dropout = k->dropout;
    if (k->embed) {
        a.n_embed = 1;
        a.embed_vocab[0] = 32;
        a.embed_dim[0] = 4;
    }
    st_nn_t *nn = st_nn_new(&a, err, sizeof err);
    if (!nn) {
        fprintf(stderr, "bench: %s\n", err);
        exit(1);
    }
    return nn;
}

static int train_threads = 1; /* -j */

/* FLOP/s of 12 independent chains of fused multiply-adds, 16 (AVX-512) or 8 (AVX2) lanes each:
 * enough chains to cover the FMA units' latency, so the figure is their throughput. */
#define PEAK_ITERS 100000000L
#define FMA_PEAK(name, target_name, vec_t, set1, fmadd)                                            \
    __attribute__((target(target_name))) static double name(void)                                  \
    {                                                                                              \
        vec_t acc[12], m = set1(0.999999f), c = set1(1e-7f);                                       \
        for (int i = 0; i < 12; i++)                                                               \
            acc[i] = set1((float)i);                                                               \
        double t0 = now_s();                                                                       \
        for (long k = 0; k < PEAK_ITERS; k++) {                                                    \
            _Pragma("GCC unroll 12") /* the chains in registers */                                 \
                for (int i = 0; i < 12; i++) acc[i] = fmadd(acc[i], m, c);                         \
        }                                                                                          \
        double t = now_s() - t0;                                                                   \
        float lanes[sizeof(vec_t) / sizeof(float)], sum = 0.0f;                                    \
        for (int i = 0; i < 12; i++) {                                                             \
            memcpy(lanes, &acc[i], sizeof lanes);                                                  \
            for (size_t j = 0; j < sizeof lanes / sizeof lanes[0]; j++)                            \
                sum += lanes[j];                                                                   \
        }                                                                                          \
        /* the sum keeps the chains alive */                                                       \
        return sum == sum ? (double)PEAK_ITERS * 12 * (double)sizeof lanes / 2 / t                 \
                          : 0.0; /* 2 FLOP/lane */                                                 \
    }
FMA_PEAK(fma_peak_avx512, "avx512f", __m512, _mm512_set1_ps, _mm512_fmadd_ps)
FMA_PEAK(fma_peak_avx2, "avx2,fma", __m256, _mm256_set1_ps, _mm256_fmadd_ps)
#undef FMA_PEAK

static int print_peak(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        printf("bench-ml: one core's float32 FMA peak, AVX-512: %.1f GFLOP/s\n",
               fma_peak_avx512() / 1e9);
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        printf("bench-ml: one core's float32 FMA peak, AVX2: %.1f GFLOP/s\n",
               fma_peak_avx2() / 1e9);
    } else {
        printf("bench-ml: no AVX2 FMA on this CPU: no peak figure\n");
    }
    return 0;
}

static void bench_model(const cfg_t *k, int train_only)
{
    char err[256];
    const char *name = k->name;
    int steps = k->steps, F = k->features;
    st_nn_t *nn = make_net(k);
    set_t s = make_set(k->n_train, steps, F, k->embed);
    st_nn_data_t d = {s.n, steps, F, s.x, s.lengths, s.y};
    st_nn_train_cfg_t c;
    st_nn_train_default(&c);
    c.loss = ST_NN_LOSS_L1;
    c.batch = k->batch;
    c.clip_norm = k->clip_norm;
    c.epochs = 1;
    c.threads = train_threads;
    double t0 = now_s(), cpu0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), elapsed;
    size_t samples = 0;
    do {
        if (st_nn_train(nn, &d, NULL, &c, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "bench: %s\n", err);
            exit(1);
        }
        samples += s.n;
        elapsed = now_s() - t0;
    } while (elapsed < BENCH_SECONDS);
    double cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    printf("%-40s train  %10.0f samples/s  (%.0f per CPU s; batch %d, %zu samples in %.2f s)\n",
           name, (double)samples / elapsed, (double)samples / cpu, k->batch, samples, elapsed);
    if (train_only) {
        st_nn_destroy(nn);
        free_set(&s);
        return;
    }

    st_nn_ctx_t *ctx = st_nn_ctx_new(nn, err, sizeof err);
    float out;
    long calls = 0;
    t0 = now_s();
    do {
        for (int i = 0; i < 1000; i++, calls++) {
            size_t row = (size_t)calls % s.n;
            st_nn_ctx_predict(ctx, s.x + row * (size_t)steps * (size_t)F, s.lengths[row], &out);
        }
        elapsed = now_s() - t0;
    } while (elapsed < BENCH_SECONDS / 2);
    printf("%-40s batch1 %10.2f us/prediction  (%ld calls)\n", name, elapsed / calls * 1e6, calls);

    float *pred = malloc(256 * sizeof(float));
    st_nn_data_t chunk = {256, steps, F, NULL, NULL, NULL};
    samples = 0;
    t0 = now_s();
    do {
        size_t start = (samples % (s.n - 256 + 1));
        chunk.x = s.x + start * (size_t)steps * (size_t)F;
        chunk.lengths = s.lengths + start;
        st_nn_predict(nn, &chunk, pred, err, sizeof err);
        samples += 256;
        elapsed = now_s() - t0;
    } while (elapsed < BENCH_SECONDS / 2);
    printf("%-40s b256   %10.0f predictions/s (%.2f us/prediction)\n", name,
           (double)samples / elapsed, elapsed / (double)samples * 1e6);
    free(pred);
    st_nn_ctx_destroy(ctx);
    st_nn_destroy(nn);
    free_set(&s);
}

static const cfg_t configs[] = {
    {"seed LSTM(250) 1 step x 9 feat", ST_NN_CELL_LSTM, 1, 250, 1, 9, 0, 0, 0, 400, 40000},
    {"LSTM(64) 16 steps x 9 feat", ST_NN_CELL_LSTM, 1, 64, 16, 9, 0, 0, 0, 400, 8000},
    {"eval seq LSTM(32) W16 b64", ST_NN_CELL_LSTM, 1, 32, 16, 16, 1, 0, 1, 64, 8000},
    {"eval seq GRU(32) W16 b64", ST_NN_CELL_GRU, 1, 32, 16, 16, 1, 0, 1, 64, 8000},
    {"eval seq LSTM(64)x2 W16 drop0.1 b64", ST_NN_CELL_LSTM, 2, 64, 16, 16, 1, 0.1f, 1, 64, 4000},
    {"eval parity LSTM(250) 1 step x 6 feat", ST_NN_CELL_LSTM, 1, 250, 1, 6, 0, 0, 0, 400, 40000},
};

int main(int argc, char **argv)
{
    int train_only = 0;
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-p") == 0) {
            return print_peak();
        } else if (strcmp(argv[i], "-t") == 0) {
            train_only = 1;
        } else if (strcmp(argv[i], "-j") == 0 && i + 1 < argc) {
            train_threads = atoi(argv[++i]);
            if (train_threads < 1 || train_threads > ST_NN_MAX_THREADS) {
                fprintf(stderr, "bench-ml: -j takes 1..%d\n", ST_NN_MAX_THREADS);
                return 2;
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench-ml [-t] [-j THREADS] [NAME-SUBSTRING] | bench-ml -p\n");
            return 2;
        } else {
            filter = argv[i];
        }
    }
    const char *threads = getenv("OPENBLAS_NUM_THREADS");
    if (!threads)
        openblas_set_num_threads(1);
    printf("bench-ml: OpenBLAS kernels %s, OPENBLAS_NUM_THREADS=%s, training threads %d, float32, "
           "%.0f s per training figure\n",
           openblas_get_corename(), threads ? threads : "1 (set by the benchmark)", train_threads,
           BENCH_SECONDS);
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
        if (!filter || strstr(configs[i].name, filter))
            bench_model(&configs[i], train_only);
    return 0;
}
