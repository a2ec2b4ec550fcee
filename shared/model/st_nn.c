/* st_nn.c - embeddings, LSTM/GRU layers, dense layers, losses, Adam/SGD and BPTT on float32
 * minibatches; time-major workspaces so each layer's input projections and weight gradients are
 * one cblas_sgemm over all time steps and only the recurrent product runs per step. */
#include "st_nn.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "st_err.h"
#include "st_model.h"
#include "st_nn_act.h"
#include "st_rng.h"

#define NN_KIND_VERSION 1u
#define PREDICT_CHUNK   256

/* The gate loops compiled for AVX-512 (x86-64-v4), AVX2 (x86-64-v3) and baseline x86-64, the
 * loader picking one per CPU (target_clones, a glibc ifunc): the nonlinearities of st_nn_act.h run
 * 16 lanes wide in one, two or four registers. CMake builds this file with -ffp-contract=off, so
 * no clone fuses a multiply-add the baseline rounds twice: the three give the same floats. */
#if defined(ST_NN_CLONES) && defined(__x86_64__)
#define ST_NN_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ST_NN_HOT
#endif

typedef struct {
    int in, units, gates; /* gates: 4 (LSTM) or 3 (GRU) */
    size_t w, u, b, b2;   /* offsets of kernel (in x G), recurrent kernel (H x G), biases */
} rnn_layer_t;

typedef struct {
    int in, out;
    size_t w, b; /* kernel (in x out), bias */
    st_nn_act_t act;
} dense_layer_t;

/* Buffers for one batch size; time-major ([T][B][width]) so all steps are one matrix. */
typedef struct {
    int batch, steps, t0, training_buffers;
    float *xin;                  /* [T][B][in_width], padding rows zeroed */
    unsigned char *valid;        /* [T][B] */
    float *lin[ST_NN_MAX_RNN];   /* layer inputs after dropout */
    float *dmask[ST_NN_MAX_RNN]; /* [B][in] dropout masks */
    float *h[ST_NN_MAX_RNN];     /* [T+1][B][H], h[t+1] is the output of step t */
    float *c[ST_NN_MAX_RNN];     /* [T+1][B][H], LSTM cell state */
    float *act[ST_NN_MAX_RNN];   /* [T][B][G*H] gate activations */
    float *aux[ST_NN_MAX_RNN];   /* [T][B][H] LSTM tanh(c), GRU recurrent candidate part */
    float *dz[ST_NN_MAX_RNN];    /* [T][B][G*H] input-side pre-activation gradients */
    float *dz2[ST_NN_MAX_RNN];   /* [T][B][G*H] GRU recurrent-side gradients */
    float *dlin[ST_NN_MAX_RNN];  /* [T][B][in] */
    float *dout[ST_NN_MAX_RNN];  /* [T][B][H] gradient arriving from the layer above */
    float *dh, *dc, *tmp;        /* [B][max width] scratch */
    float *tmpg;                 /* [B][max G*H] */
    float *dense_out[ST_NN_MAX_DENSE + 1];
    float *dcur, *dprev; /* [B][max dense width] */
} ws_t;

struct st_nn {
    st_nn_arch_t arch;
    int in_width; /* first layer's input width after embedding */
    size_t emb[ST_NN_MAX_EMBED];
    rnn_layer_t rnn[ST_NN_MAX_RNN];
    dense_layer_t dense[ST_NN_MAX_DENSE + 1];
    int n_dense; /* hidden layers + head */
    size_t n_params;
    float *params;
    float *grads;
    ws_t *ws;
};

struct st_nn_ctx {
    const st_nn_t *nn;
    ws_t *ws;
};

/* C = alpha * op(A) op(B) + beta * C, row-major; a one-row product goes to sgemv, which is much
 * cheaper than sgemm at batch 1. */
static void mm(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b,
               int ldb, float beta, float *c, int ldc)
{
    if (m == 1 && !ta) {
        if (tb)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, b, ldb, a, 1, beta, c, 1);
        else
            cblas_sgemv(CblasRowMajor, CblasTrans, k, n, 1.0f, b, ldb, a, 1, beta, c, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
                k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

static void colsum_add(const float *a, size_t rows, int cols, float *out)
{
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++)
            out[j] += a[r * (size_t)cols + (size_t)j];
}

void st_nn_arch_default(st_nn_arch_t *arch)
{
    memset(arch, 0, sizeof *arch);
    arch->steps = 1;
    arch->features = 1;
    arch->outputs = 1;
    arch->cell = ST_NN_CELL_LSTM;
    arch->rnn_layers = 1;
    arch->rnn_units[0] = 32;
    arch->rnn_units[1] = 32;
    arch->dense_units[0] = 16;
    arch->dense_units[1] = 16;
    arch->dense_act = ST_NN_ACT_RELU;
    arch->seed = 1;
}

void st_nn_train_default(st_nn_train_cfg_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->loss = ST_NN_LOSS_L1;
    cfg->huber_delta = 1.0f;
    cfg->opt = ST_NN_OPT_ADAM;
    cfg->lr = 1e-3f;
    cfg->beta1 = 0.9f;
    cfg->beta2 = 0.999f;
    cfg->eps = 1e-7f;
    cfg->batch = 32;
    cfg->epochs = 10;
    cfg->shuffle = 1;
    cfg->seed = 1;
}

static int arch_check(const st_nn_arch_t *a, char *errstr, size_t errstr_size)
{
    if (a->steps < 1 || a->steps > 4096)
        return st_errstr(errstr, errstr_size, "nn: steps %d outside 1..4096", a->steps);
    if (a->features < 1 || a->features > 4096)
        return st_errstr(errstr, errstr_size, "nn: features %d outside 1..4096", a->features);
    if (a->outputs < 1 || a->outputs > 1024)
        return st_errstr(errstr, errstr_size, "nn: outputs %d outside 1..1024", a->outputs);
    if (a->n_embed < 0 || a->n_embed > ST_NN_MAX_EMBED || a->n_embed > a->features)
        return st_errstr(errstr, errstr_size, "nn: n_embed %d outside 0..%d (and <= features)",
                         a->n_embed, ST_NN_MAX_EMBED);
    for (int k = 0; k < a->n_embed; k++)
        if (a->embed_vocab[k] < 1 || a->embed_vocab[k] > 10000000 || a->embed_dim[k] < 1 ||
            a->embed_dim[k] > 1024)
            return st_errstr(errstr, errstr_size, "nn: embedding %d: vocab %d or dim %d invalid", k,
                             a->embed_vocab[k], a->embed_dim[k]);
    if (a->cell != ST_NN_CELL_LSTM && a->cell != ST_NN_CELL_GRU)
        return st_errstr(errstr, errstr_size, "nn: unknown cell type %d", (int)a->cell);
    if (a->rnn_layers < 0 || a->rnn_layers > ST_NN_MAX_RNN)
        return st_errstr(errstr, errstr_size, "nn: rnn_layers %d outside 0..%d", a->rnn_layers,
                         ST_NN_MAX_RNN);
    for (int l = 0; l < a->rnn_layers; l++)
        if (a->rnn_units[l] < 1 || a->rnn_units[l] > 4096)
            return st_errstr(errstr, errstr_size, "nn: rnn_units[%d] = %d outside 1..4096", l,
                             a->rnn_units[l]);
    if (!(a->dropout >= 0.0f && a->dropout < 1.0f))
        return st_errstr(errstr, errstr_size, "nn: dropout %g outside [0, 1)", a->dropout);
    if (a->dense_layers < 0 || a->dense_layers > ST_NN_MAX_DENSE)
        return st_errstr(errstr, errstr_size, "nn: dense_layers %d outside 0..%d", a->dense_layers,
                         ST_NN_MAX_DENSE);
    for (int l = 0; l < a->dense_layers; l++)
        if (a->dense_units[l] < 1 || a->dense_units[l] > 4096)
            return st_errstr(errstr, errstr_size, "nn: dense_units[%d] = %d outside 1..4096", l,
                             a->dense_units[l]);
    if (a->dense_act != ST_NN_ACT_LINEAR && a->dense_act != ST_NN_ACT_RELU &&
        a->dense_act != ST_NN_ACT_TANH)
        return st_errstr(errstr, errstr_size, "nn: unknown dense activation %d", (int)a->dense_act);
    return 0;
}

/* Lays out the parameter vector and allocates it (zeroed), unless it needs more than max_params
 * (a loaded file's parameter count: refused before allocating what its header claims). */
static st_nn_t *nn_alloc(const st_nn_arch_t *arch, size_t max_params, char *errstr,
                         size_t errstr_size)
{
    if (arch_check(arch, errstr, errstr_size) != 0)
        return NULL;
    st_nn_t *nn = calloc(1, sizeof *nn);
    if (!nn) {
        st_errstr(errstr, errstr_size, "nn: out of memory");
        return NULL;
    }
    nn->arch = *arch;
    size_t off = 0;
    int width = arch->features - arch->n_embed;
    for (int k = 0; k < arch->n_embed; k++) {
        nn->emb[k] = off;
        off += (size_t)arch->embed_vocab[k] * (size_t)arch->embed_dim[k];
        width += arch->embed_dim[k];
    }
    nn->in_width = width;
    for (int l = 0; l < arch->rnn_layers; l++) {
        rnn_layer_t *r = &nn->rnn[l];
        r->in = width;
        r->units = arch->rnn_units[l];
        r->gates = arch->cell == ST_NN_CELL_LSTM ? 4 : 3;
        size_t g = (size_t)r->gates * (size_t)r->units;
        r->w = off;
        off += (size_t)r->in * g;
        r->u = off;
        off += (size_t)r->units * g;
        r->b = off;
        off += g;
        r->b2 = off;
        if (arch->cell == ST_NN_CELL_GRU)
            off += g;
        width = r->units;
    }
    nn->n_dense = arch->dense_layers + 1;
    for (int k = 0; k < nn->n_dense; k++) {
        dense_layer_t *d = &nn->dense[k];
        d->in = width;
        d->out = k < arch->dense_layers ? arch->dense_units[k] : arch->outputs;
        d->act = k < arch->dense_layers ? arch->dense_act : ST_NN_ACT_LINEAR;
        d->w = off;
        off += (size_t)d->in * (size_t)d->out;
        d->b = off;
        off += (size_t)d->out;
        width = d->out;
    }
    nn->n_params = off;
    if (off > max_params) {
        st_nn_destroy(nn);
        st_errstr(errstr, errstr_size, "nn: the architecture needs %zu parameters, %zu given", off,
                  max_params);
        return NULL;
    }
    nn->params = calloc(off, sizeof(float));
    nn->grads = calloc(off, sizeof(float));
    if (!nn->params || !nn->grads) {
        st_nn_destroy(nn);
        st_errstr(errstr, errstr_size, "nn: out of memory for %zu parameters", off);
        return NULL;
    }
    return nn;
}

static void glorot_uniform(st_rng_t *rng, float *w, int fan_in, int fan_out)
{
    double limit = sqrt(6.0 / (double)(fan_in + fan_out));
    size_t n = (size_t)fan_in * (size_t)fan_out;
    for (size_t i = 0; i < n; i++)
        w[i] = (float)((2.0 * st_rng_uniform(rng) - 1.0) * limit);
}

/* Orthogonal init of a rows x cols matrix (rows <= cols here: H x G*H): Gram-Schmidt on normal
 * rows in double gives orthonormal rows, the same distribution as Keras' QR-based initializer. */
static int orthogonal(st_rng_t *rng, float *w, int rows, int cols)
{
    int n_vec = rows < cols ? rows : cols;
    int len = rows < cols ? cols : rows;
    double *q = malloc((size_t)n_vec * (size_t)len * sizeof(double));
    if (!q)
        return -1;
    for (int i = 0; i < n_vec; i++) {
        double *v = q + (size_t)i * (size_t)len;
        double norm;
        do {
            for (int j = 0; j < len; j++)
                v[j] = st_rng_normal(rng);
            for (int pass = 0; pass < 2; pass++)
                for (int p = 0; p < i; p++) {
                    const double *u = q + (size_t)p * (size_t)len;
                    double dot = 0.0;
                    for (int j = 0; j < len; j++)
                        dot += u[j] * v[j];
                    for (int j = 0; j < len; j++)
                        v[j] -= dot * u[j];
                }
            norm = 0.0;
            for (int j = 0; j < len; j++)
                norm += v[j] * v[j];
            norm = sqrt(norm);
        } while (norm < 1e-6);
        for (int j = 0; j < len; j++)
            v[j] /= norm;
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            w[(size_t)r * (size_t)cols + (size_t)c] =
                (float)(rows <= cols ? q[(size_t)r * (size_t)len + (size_t)c]
                                     : q[(size_t)c * (size_t)len + (size_t)r]);
    free(q);
    return 0;
}

st_nn_t *st_nn_new(const st_nn_arch_t *arch, char *errstr, size_t errstr_size)
{
    st_nn_t *nn = nn_alloc(arch, SIZE_MAX, errstr, errstr_size);
    if (!nn)
        return NULL;
    st_rng_t rng;
    st_rng_seed(&rng, arch->seed);
    float *p = nn->params;
    for (int k = 0; k < arch->n_embed; k++) {
        size_t n = (size_t)arch->embed_vocab[k] * (size_t)arch->embed_dim[k];
        for (size_t i = 0; i < n; i++)
            p[nn->emb[k] + i] = (float)((2.0 * st_rng_uniform(&rng) - 1.0) * 0.05);
    }
    for (int l = 0; l < arch->rnn_layers; l++) {
        const rnn_layer_t *r = &nn->rnn[l];
        int g = r->gates * r->units;
        glorot_uniform(&rng, p + r->w, r->in, g);
        if (orthogonal(&rng, p + r->u, r->units, g) != 0) {
            st_nn_destroy(nn);
            st_errstr(errstr, errstr_size, "nn: out of memory");
            return NULL;
        }
        if (arch->cell == ST_NN_CELL_LSTM)
            for (int j = 0; j < r->units; j++)
                p[r->b + (size_t)r->units + (size_t)j] = 1.0f;
    }
    for (int k = 0; k < nn->n_dense; k++)
        glorot_uniform(&rng, p + nn->dense[k].w, nn->dense[k].in, nn->dense[k].out);
    return nn;
}

static void ws_free(ws_t *ws)
{
    if (!ws)
        return;
    free(ws->xin);
    free(ws->valid);
    for (int l = 0; l < ST_NN_MAX_RNN; l++) {
        free(ws->lin[l]);
        free(ws->dmask[l]);
        free(ws->h[l]);
        free(ws->c[l]);
        free(ws->act[l]);
        free(ws->aux[l]);
        free(ws->dz[l]);
        free(ws->dz2[l]);
        free(ws->dlin[l]);
        free(ws->dout[l]);
    }
    free(ws->dh);
    free(ws->dc);
    free(ws->tmp);
    free(ws->tmpg);
    for (int k = 0; k <= ST_NN_MAX_DENSE; k++)
        free(ws->dense_out[k]);
    free(ws->dcur);
    free(ws->dprev);
    free(ws);
}

static float *fbuf(size_t n, int *fail)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p)
        *fail = 1;
    return p;
}

static ws_t *ws_new(const st_nn_t *nn, int batch, int training)
{
    ws_t *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    int fail = 0;
    size_t b = (size_t)batch, t = (size_t)nn->arch.steps;
    ws->batch = batch;
    ws->steps = nn->arch.steps;
    ws->training_buffers = training;
    ws->xin = fbuf(t * b * (size_t)nn->in_width, &fail);
    ws->valid = calloc(t * b, 1);
    fail |= ws->valid == NULL;
    size_t maxw = (size_t)nn->in_width, maxg = 1;
    for (int l = 0; l < nn->arch.rnn_layers; l++) {
        const rnn_layer_t *r = &nn->rnn[l];
        size_t h = (size_t)r->units, g = (size_t)r->gates * h, in = (size_t)r->in;
        maxw = maxw > h ? maxw : h;
        maxg = maxg > g ? maxg : g;
        ws->lin[l] = fbuf(t * b * in, &fail);
        ws->dmask[l] = fbuf(b * in, &fail);
        ws->h[l] = fbuf((t + 1) * b * h, &fail);
        ws->c[l] = fbuf((t + 1) * b * h, &fail);
        ws->act[l] = fbuf(t * b * g, &fail);
        ws->aux[l] = fbuf(t * b * h, &fail);
        if (training) {
            ws->dz[l] = fbuf(t * b * g, &fail);
            if (nn->arch.cell == ST_NN_CELL_GRU)
                ws->dz2[l] = fbuf(t * b * g, &fail);
            ws->dlin[l] = fbuf(t * b * in, &fail);
            ws->dout[l] = fbuf(t * b * h, &fail);
        }
    }
    for (int k = 0; k < nn->n_dense; k++) {
        size_t w = (size_t)nn->dense[k].out;
        maxw = maxw > w ? maxw : w;
        ws->dense_out[k] = fbuf(b * w, &fail);
    }
    ws->dh = fbuf(b * maxw, &fail);
    ws->dc = fbuf(b * maxw, &fail);
    ws->tmp = fbuf(b * maxw, &fail);
    ws->tmpg = fbuf(b * maxg, &fail);
    ws->dcur = fbuf(b * maxw, &fail);
    ws->dprev = fbuf(b * maxw, &fail);
    if (fail) {
        ws_free(ws);
        return NULL;
    }
    return ws;
}

/* Makes nn->ws hold at least batch rows. */
static int ws_ensure(st_nn_t *nn, int batch, char *errstr, size_t errstr_size)
{
    if (nn->ws && nn->ws->batch >= batch)
        return 0;
    ws_free(nn->ws);
    nn->ws = ws_new(nn, batch, 1);
    if (!nn->ws)
        return st_errstr(errstr, errstr_size, "nn: out of memory for a batch of %d", batch);
    return 0;
}

void st_nn_destroy(st_nn_t *nn)
{
    if (!nn)
        return;
    free(nn->params);
    free(nn->grads);
    ws_free(nn->ws);
    free(nn);
}

const st_nn_arch_t *st_nn_arch(const st_nn_t *nn)
{
    return &nn->arch;
}

static int data_check(const st_nn_t *nn, const st_nn_data_t *d, int need_y, const char *what,
                      char *errstr, size_t errstr_size)
{
    if (!d || !d->x || d->n == 0)
        return st_errstr(errstr, errstr_size, "nn: %s data is empty", what);
    if (d->steps != nn->arch.steps || d->features != nn->arch.features)
        return st_errstr(errstr, errstr_size,
                         "nn: %s data has %d steps x %d features, the network expects %d x %d",
                         what, d->steps, d->features, nn->arch.steps, nn->arch.features);
    if (need_y && !d->y)
        return st_errstr(errstr, errstr_size, "nn: %s data has no targets", what);
    if (d->n > (size_t)1 << 31)
        return st_errstr(errstr, errstr_size, "nn: %s data too large (%zu rows)", what, d->n);
    return 0;
}

/* Writes one sample's sequence into row b of the time-major input (embedding lookups, padding
 * zeroed); returns its clamped length. */
static int gather_row(const st_nn_t *nn, ws_t *ws, int b, int B, const float *x, int length)
{
    const st_nn_arch_t *a = &nn->arch;
    int T = a->steps, F = a->features, W = nn->in_width;
    int len = length < 1 ? 1 : (length > T ? T : length);
    for (int t = 0; t < T; t++) {
        float *dst = ws->xin + ((size_t)t * (size_t)B + (size_t)b) * (size_t)W;
        int valid = t >= T - len;
        ws->valid[(size_t)t * (size_t)B + (size_t)b] = (unsigned char)valid;
        if (!valid) {
            memset(dst, 0, (size_t)W * sizeof(float));
            continue;
        }
        const float *src = x + (size_t)t * (size_t)F;
        int pos = 0;
        for (int k = 0; k < a->n_embed; k++) {
            float v = src[k];
            int id = (v >= 0.0f && v < (float)a->embed_vocab[k]) ? (int)v : 0;
            memcpy(dst + pos, nn->params + nn->emb[k] + (size_t)id * (size_t)a->embed_dim[k],
                   (size_t)a->embed_dim[k] * sizeof(float));
            pos += a->embed_dim[k];
        }
        memcpy(dst + pos, src + a->n_embed, (size_t)(F - a->n_embed) * sizeof(float));
    }
    return len;
}

/* Fills the workspace input from rows idx[0..count) (or start.. when idx is NULL). */
static void gather(const st_nn_t *nn, ws_t *ws, const st_nn_data_t *d, const int *idx, size_t start,
                   int count)
{
    int T = nn->arch.steps, F = nn->arch.features, maxlen = 1;
    for (int b = 0; b < count; b++) {
        size_t i = idx ? (size_t)idx[b] : start + (size_t)b;
        int length = d->lengths ? d->lengths[i] : T;
        int len = gather_row(nn, ws, b, count, d->x + i * (size_t)T * (size_t)F, length);
        maxlen = len > maxlen ? len : maxlen;
    }
    ws->t0 = T - maxlen;
}

ST_NN_HOT static void lstm_forward(const st_nn_t *nn, const rnn_layer_t *r, ws_t *ws, int l, int B)
{
    const float *p = nn->params;
    int T = ws->steps, t0 = ws->t0, H = r->units, G = r->gates * H;
    size_t bh = (size_t)B * (size_t)H, bg = (size_t)B * (size_t)G;
    float *act = ws->act[l], *h = ws->h[l], *c = ws->c[l];
    size_t rows = (size_t)(T - t0) * (size_t)B;
    for (size_t i = 0; i < rows; i++)
        memcpy(act + (size_t)t0 * bg + i * (size_t)G, p + r->b, (size_t)G * sizeof(float));
    mm(0, 0, (int)rows, G, r->in, ws->lin[l] + (size_t)t0 * (size_t)B * (size_t)r->in, r->in,
       p + r->w, G, 1.0f, act + (size_t)t0 * bg, G);
    memset(h + (size_t)t0 * bh, 0, bh * sizeof(float));
    memset(c + (size_t)t0 * bh, 0, bh * sizeof(float));
    for (int t = t0; t < T; t++) {
        float *z = act + (size_t)t * bg;
        const float *hp = h + (size_t)t * bh, *cp = c + (size_t)t * bh;
        float *hn = h + (size_t)(t + 1) * bh, *cn = c + (size_t)(t + 1) * bh;
        float *tanh_c = ws->aux[l] + (size_t)t * bh;
        if (t > t0)
            mm(0, 0, B, G, H, hp, H, p + r->u, G, 1.0f, z, G);
        for (int b = 0; b < B; b++) {
            size_t o = (size_t)b * (size_t)H;
            if (!ws->valid[(size_t)t * (size_t)B + (size_t)b]) {
                memcpy(hn + o, hp + o, (size_t)H * sizeof(float));
                memcpy(cn + o, cp + o, (size_t)H * sizeof(float));
                continue;
            }
            float *zb = z + (size_t)b * (size_t)G;
            st_nn__sigmoid_vec(zb, 2 * H);
            st_nn__tanh_vec(zb + 2 * H, H);
            st_nn__sigmoid_vec(zb + 3 * H, H);
            float *cb = cn + o, *tb = tanh_c + o;
            for (int j = 0; j < H; j++) {
                float cc = zb[H + j] * cp[o + (size_t)j] + zb[j] * zb[2 * H + j];
                cb[j] = cc;
                tb[j] = cc;
            }
            st_nn__tanh_vec(tb, H);
            for (int j = 0; j < H; j++)
                hn[o + (size_t)j] = zb[3 * H + j] * tb[j];
        }
    }
}

ST_NN_HOT static void gru_forward(const st_nn_t *nn, const rnn_layer_t *r, ws_t *ws, int l, int B)
{
    const float *p = nn->params;
    int T = ws->steps, t0 = ws->t0, H = r->units, G = r->gates * H;
    size_t bh = (size_t)B * (size_t)H, bg = (size_t)B * (size_t)G;
    float *act = ws->act[l], *h = ws->h[l], *rp = ws->tmpg;
    size_t rows = (size_t)(T - t0) * (size_t)B;
    for (size_t i = 0; i < rows; i++)
        memcpy(act + (size_t)t0 * bg + i * (size_t)G, p + r->b, (size_t)G * sizeof(float));
    mm(0, 0, (int)rows, G, r->in, ws->lin[l] + (size_t)t0 * (size_t)B * (size_t)r->in, r->in,
       p + r->w, G, 1.0f, act + (size_t)t0 * bg, G);
    memset(h + (size_t)t0 * bh, 0, bh * sizeof(float));
    for (int t = t0; t < T; t++) {
        float *x = act + (size_t)t * bg;
        const float *hp = h + (size_t)t * bh;
        float *hn = h + (size_t)(t + 1) * bh, *rh_out = ws->aux[l] + (size_t)t * bh;
        for (int b = 0; b < B; b++)
            memcpy(rp + (size_t)b * (size_t)G, p + r->b2, (size_t)G * sizeof(float));
        if (t > t0)
            mm(0, 0, B, G, H, hp, H, p + r->u, G, 1.0f, rp, G);
        for (int b = 0; b < B; b++) {
            size_t o = (size_t)b * (size_t)H;
            if (!ws->valid[(size_t)t * (size_t)B + (size_t)b]) {
                memcpy(hn + o, hp + o, (size_t)H * sizeof(float));
                continue;
            }
            float *xb = x + (size_t)b * (size_t)G;
            const float *rb = rp + (size_t)b * (size_t)G;
            for (int j = 0; j < 2 * H; j++)
                xb[j] += rb[j];
            st_nn__sigmoid_vec(xb, 2 * H);
            for (int j = 0; j < H; j++) {
                float rh = rb[2 * H + j];
                rh_out[o + (size_t)j] = rh;
                xb[2 * H + j] += xb[H + j] * rh;
            }
            st_nn__tanh_vec(xb + 2 * H, H);
            for (int j = 0; j < H; j++) {
                float zg = xb[j], hh = xb[2 * H + j];
                hn[o + (size_t)j] = zg * hp[o + (size_t)j] + (1.0f - zg) * hh;
            }
        }
    }
}

ST_NN_HOT static void apply_act(st_nn_act_t act, float *v, size_t n)
{
    if (act == ST_NN_ACT_RELU) {
        for (size_t i = 0; i < n; i++)
            v[i] = v[i] > 0.0f ? v[i] : 0.0f;
    } else if (act == ST_NN_ACT_TANH) {
        st_nn__tanh_vec(v, (int)n);
    }
}

/* The dense stack's input: the last recurrent layer's final state, or the last input step. */
static const float *dense_input(const st_nn_t *nn, const ws_t *ws, int B)
{
    int L = nn->arch.rnn_layers, T = ws->steps;
    if (L == 0)
        return ws->xin + (size_t)(T - 1) * (size_t)B * (size_t)nn->in_width;
    return ws->h[L - 1] + (size_t)T * (size_t)B * (size_t)nn->rnn[L - 1].units;
}

/* Forward pass over the B gathered rows; dropout masks drawn from rng when training. The result
 * is ws->dense_out[n_dense - 1]. */
static void forward(const st_nn_t *nn, ws_t *ws, int B, st_rng_t *drop_rng)
{
    int T = ws->steps, t0 = ws->t0;
    float rate = nn->arch.dropout;
    for (int l = 0; l < nn->arch.rnn_layers; l++) {
        const rnn_layer_t *r = &nn->rnn[l];
        size_t in = (size_t)r->in, bin = (size_t)B * in;
        const float *src = l == 0 ? ws->xin : ws->h[l - 1] + (size_t)B * in;
        float *dst = ws->lin[l];
        if (drop_rng && rate > 0.0f) {
            float keep_scale = 1.0f / (1.0f - rate);
            for (size_t i = 0; i < bin; i++)
                ws->dmask[l][i] = st_rng_uniform(drop_rng) >= rate ? keep_scale : 0.0f;
            for (int t = t0; t < T; t++)
                for (size_t i = 0; i < bin; i++)
                    dst[(size_t)t * bin + i] = src[(size_t)t * bin + i] * ws->dmask[l][i];
        } else {
            if (drop_rng)
                for (size_t i = 0; i < bin; i++)
                    ws->dmask[l][i] = 1.0f;
            memcpy(dst + (size_t)t0 * bin, src + (size_t)t0 * bin,
                   (size_t)(T - t0) * bin * sizeof(float));
        }
        if (nn->arch.cell == ST_NN_CELL_LSTM)
            lstm_forward(nn, r, ws, l, B);
        else
            gru_forward(nn, r, ws, l, B);
    }
    const float *in = dense_input(nn, ws, B);
    for (int k = 0; k < nn->n_dense; k++) {
        const dense_layer_t *d = &nn->dense[k];
        float *out = ws->dense_out[k];
        for (int b = 0; b < B; b++)
            memcpy(out + (size_t)b * (size_t)d->out, nn->params + d->b,
                   (size_t)d->out * sizeof(float));
        mm(0, 0, B, d->out, d->in, in, d->in, nn->params + d->w, d->out, 1.0f, out, d->out);
        apply_act(d->act, out, (size_t)B * (size_t)d->out);
        in = out;
    }
}

ST_NN_HOT static void lstm_backward(const st_nn_t *nn, const rnn_layer_t *r, ws_t *ws, float *g,
                                    int l, int B, int need_dlin)
{
    const float *p = nn->params;
    int T = ws->steps, t0 = ws->t0, H = r->units, G = r->gates * H;
    size_t bh = (size_t)B * (size_t)H, bg = (size_t)B * (size_t)G;
    float *dh = ws->dh, *dc = ws->dc;
    memset(dh, 0, bh * sizeof(float));
    memset(dc, 0, bh * sizeof(float));
    for (int t = T - 1; t >= t0; t--) {
        const float *dout = ws->dout[l] + (size_t)t * bh;
        for (size_t i = 0; i < bh; i++)
            dh[i] += dout[i];
        const float *a = ws->act[l] + (size_t)t * bg;
        const float *cp = ws->c[l] + (size_t)t * bh, *tanh_c = ws->aux[l] + (size_t)t * bh;
        float *dz = ws->dz[l] + (size_t)t * bg;
        for (int b = 0; b < B; b++) {
            size_t o = (size_t)b * (size_t)H;
            float *dzb = dz + (size_t)b * (size_t)G;
            if (!ws->valid[(size_t)t * (size_t)B + (size_t)b]) {
                memset(dzb, 0, (size_t)G * sizeof(float));
                continue;
            }
            const float *ab = a + (size_t)b * (size_t)G;
            for (int j = 0; j < H; j++) {
                float ig = ab[j], fg = ab[H + j], gg = ab[2 * H + j], og = ab[3 * H + j];
                float tc = tanh_c[o + (size_t)j];
                float dhj = dh[o + (size_t)j];
                float dcj = dc[o + (size_t)j] + dhj * og * (1.0f - tc * tc);
                dzb[j] = dcj * gg * ig * (1.0f - ig);
                dzb[H + j] = dcj * cp[o + (size_t)j] * fg * (1.0f - fg);
                dzb[2 * H + j] = dcj * ig * (1.0f - gg * gg);
                dzb[3 * H + j] = dhj * tc * og * (1.0f - og);
                dc[o + (size_t)j] = dcj * fg;
            }
        }
        if (t > t0) {
            mm(0, 1, B, H, G, dz, G, p + r->u, G, 0.0f, ws->tmp, H);
            for (int b = 0; b < B; b++)
                if (ws->valid[(size_t)t * (size_t)B + (size_t)b])
                    memcpy(dh + (size_t)b * (size_t)H, ws->tmp + (size_t)b * (size_t)H,
                           (size_t)H * sizeof(float));
        }
    }
    int rows = (T - t0) * B;
    const float *dz_all = ws->dz[l] + (size_t)t0 * bg;
    const float *lin = ws->lin[l] + (size_t)t0 * (size_t)B * (size_t)r->in;
    mm(1, 0, r->in, G, rows, lin, r->in, dz_all, G, 1.0f, g + r->w, G);
    if (T - t0 > 1)
        mm(1, 0, H, G, rows - B, ws->h[l] + (size_t)(t0 + 1) * bh, H, dz_all + bg, G, 1.0f,
           g + r->u, G);
    colsum_add(dz_all, (size_t)rows, G, g + r->b);
    if (need_dlin)
        mm(0, 1, rows, r->in, G, dz_all, G, p + r->w, G, 0.0f,
           ws->dlin[l] + (size_t)t0 * (size_t)B * (size_t)r->in, r->in);
}

ST_NN_HOT static void gru_backward(const st_nn_t *nn, const rnn_layer_t *r, ws_t *ws, float *g,
                                   int l, int B, int need_dlin)
{
    const float *p = nn->params;
    int T = ws->steps, t0 = ws->t0, H = r->units, G = r->gates * H;
    size_t bh = (size_t)B * (size_t)H, bg = (size_t)B * (size_t)G;
    float *dh = ws->dh;
    memset(dh, 0, bh * sizeof(float));
    for (int t = T - 1; t >= t0; t--) {
        const float *dout = ws->dout[l] + (size_t)t * bh;
        for (size_t i = 0; i < bh; i++)
            dh[i] += dout[i];
        const float *a = ws->act[l] + (size_t)t * bg;
        const float *hp = ws->h[l] + (size_t)t * bh, *rh = ws->aux[l] + (size_t)t * bh;
        float *dx = ws->dz[l] + (size_t)t * bg, *dr = ws->dz2[l] + (size_t)t * bg;
        for (int b = 0; b < B; b++) {
            size_t o = (size_t)b * (size_t)H;
            float *dxb = dx + (size_t)b * (size_t)G, *drb = dr + (size_t)b * (size_t)G;
            if (!ws->valid[(size_t)t * (size_t)B + (size_t)b]) {
                memset(dxb, 0, (size_t)G * sizeof(float));
                memset(drb, 0, (size_t)G * sizeof(float));
                continue;
            }
            const float *ab = a + (size_t)b * (size_t)G;
            for (int j = 0; j < H; j++) {
                float zg = ab[j], rg = ab[H + j], hh = ab[2 * H + j];
                float dhj = dh[o + (size_t)j];
                float dzp = dhj * (hp[o + (size_t)j] - hh) * zg * (1.0f - zg);
                float dhhp = dhj * (1.0f - zg) * (1.0f - hh * hh);
                float drp = dhhp * rh[o + (size_t)j] * rg * (1.0f - rg);
                dxb[j] = dzp;
                dxb[H + j] = drp;
                dxb[2 * H + j] = dhhp;
                drb[j] = dzp;
                drb[H + j] = drp;
                drb[2 * H + j] = dhhp * rg;
                dh[o + (size_t)j] = dhj * zg;
            }
        }
        if (t > t0) {
            mm(0, 1, B, H, G, dr, G, p + r->u, G, 0.0f, ws->tmp, H);
            for (int b = 0; b < B; b++)
                if (ws->valid[(size_t)t * (size_t)B + (size_t)b])
                    for (int j = 0; j < H; j++)
                        dh[(size_t)b * (size_t)H + (size_t)j] +=
                            ws->tmp[(size_t)b * (size_t)H + (size_t)j];
        }
    }
    int rows = (T - t0) * B;
    const float *dx_all = ws->dz[l] + (size_t)t0 * bg, *dr_all = ws->dz2[l] + (size_t)t0 * bg;
    const float *lin = ws->lin[l] + (size_t)t0 * (size_t)B * (size_t)r->in;
    mm(1, 0, r->in, G, rows, lin, r->in, dx_all, G, 1.0f, g + r->w, G);
    if (T - t0 > 1)
        mm(1, 0, H, G, rows - B, ws->h[l] + (size_t)(t0 + 1) * bh, H, dr_all + bg, G, 1.0f,
           g + r->u, G);
    colsum_add(dx_all, (size_t)rows, G, g + r->b);
    colsum_add(dr_all, (size_t)rows, G, g + r->b2);
    if (need_dlin)
        mm(0, 1, rows, r->in, G, dx_all, G, p + r->w, G, 0.0f,
           ws->dlin[l] + (size_t)t0 * (size_t)B * (size_t)r->in, r->in);
}

/* Adds d(loss)/d(embedding rows) from dxin, the gradient of the first layer's input for steps
 * t_from..T-1 ([T - t_from][B][in_width]). */
static void embed_backward(const st_nn_t *nn, const ws_t *ws, float *grads, const float *dxin,
                           int t_from, int B, const st_nn_data_t *d, const int *idx, size_t start)
{
    const st_nn_arch_t *a = &nn->arch;
    int T = a->steps, F = a->features, W = nn->in_width;
    for (int t = t_from; t < T; t++)
        for (int b = 0; b < B; b++) {
            if (!ws->valid[(size_t)t * (size_t)B + (size_t)b])
                continue;
            size_t i = idx ? (size_t)idx[b] : start + (size_t)b;
            const float *src = d->x + (i * (size_t)T + (size_t)t) * (size_t)F;
            const float *g = dxin + ((size_t)(t - t_from) * (size_t)B + (size_t)b) * (size_t)W;
            int pos = 0;
            for (int k = 0; k < a->n_embed; k++) {
                float v = src[k];
                int id = (v >= 0.0f && v < (float)a->embed_vocab[k]) ? (int)v : 0;
                float *row = grads + nn->emb[k] + (size_t)id * (size_t)a->embed_dim[k];
                for (int j = 0; j < a->embed_dim[k]; j++)
                    row[j] += g[pos + j];
                pos += a->embed_dim[k];
            }
        }
}

/* Backward pass from dL/d(output) in ws->dcur; accumulates into grads (n_params floats). */
static void backward(const st_nn_t *nn, ws_t *ws, float *grads, int B, const st_nn_data_t *d,
                     const int *idx, size_t start)
{
    int L = nn->arch.rnn_layers, T = ws->steps, embed = nn->arch.n_embed > 0;
    float *dcur = ws->dcur, *dprev = ws->dprev;
    const float *dense_in0 = dense_input(nn, ws, B);
    for (int k = nn->n_dense - 1; k >= 0; k--) {
        const dense_layer_t *dl = &nn->dense[k];
        const float *out = ws->dense_out[k];
        size_t n = (size_t)B * (size_t)dl->out;
        if (dl->act == ST_NN_ACT_RELU) {
            for (size_t i = 0; i < n; i++)
                if (out[i] <= 0.0f)
                    dcur[i] = 0.0f;
        } else if (dl->act == ST_NN_ACT_TANH) {
            for (size_t i = 0; i < n; i++)
                dcur[i] *= 1.0f - out[i] * out[i];
        }
        const float *in = k > 0 ? ws->dense_out[k - 1] : dense_in0;
        mm(1, 0, dl->in, dl->out, B, in, dl->in, dcur, dl->out, 1.0f, grads + dl->w, dl->out);
        colsum_add(dcur, (size_t)B, dl->out, grads + dl->b);
        if (k > 0 || L > 0 || embed) {
            mm(0, 1, B, dl->in, dl->out, dcur, dl->out, nn->params + dl->w, dl->out, 0.0f, dprev,
               dl->in);
            float *swap = dcur;
            dcur = dprev;
            dprev = swap;
        }
    }
    if (L == 0) {
        if (embed) /* dcur = d(last input step) */
            embed_backward(nn, ws, grads, dcur, T - 1, B, d, idx, start);
        return;
    }
    size_t top_bh = (size_t)B * (size_t)nn->rnn[L - 1].units;
    memset(ws->dout[L - 1], 0, (size_t)T * top_bh * sizeof(float));
    memcpy(ws->dout[L - 1] + (size_t)(T - 1) * top_bh, dcur, top_bh * sizeof(float));
    for (int l = L - 1; l >= 0; l--) {
        const rnn_layer_t *r = &nn->rnn[l];
        int need_dlin = l > 0 || embed;
        if (nn->arch.cell == ST_NN_CELL_LSTM)
            lstm_backward(nn, r, ws, grads, l, B, need_dlin);
        else
            gru_backward(nn, r, ws, grads, l, B, need_dlin);
        if (!need_dlin)
            continue;
        size_t bin = (size_t)B * (size_t)r->in;
        float *dlin = ws->dlin[l];
        float *dst = l > 0 ? ws->dout[l - 1] : dlin;
        if (l > 0)
            memset(dst, 0, (size_t)ws->t0 * bin * sizeof(float));
        for (int t = ws->t0; t < T; t++)
            for (size_t i = 0; i < bin; i++)
                dst[(size_t)t * bin + i] = dlin[(size_t)t * bin + i] * ws->dmask[l][i];
        if (l == 0)
            embed_backward(nn, ws, grads, dlin + (size_t)ws->t0 * bin, ws->t0, B, d, idx, start);
    }
}

/* Loss of the B rows (mean over rows and outputs) and, with want_grad, its gradient into ws->dcur:
 * that of the mean over grad_rows rows (B, or the whole batch when these rows are a part of it). */
static double loss_grad(const st_nn_t *nn, ws_t *ws, int B, const st_nn_data_t *d, const int *idx,
                        size_t start, st_nn_loss_t loss, float delta, int want_grad, int grad_rows)
{
    int O = nn->arch.outputs;
    const float *pred = ws->dense_out[nn->n_dense - 1];
    double total = 0.0;
    float scale = 1.0f / (float)((size_t)grad_rows * (size_t)O);
    for (int b = 0; b < B; b++) {
        size_t i = idx ? (size_t)idx[b] : start + (size_t)b;
        for (int k = 0; k < O; k++) {
            float e = pred[(size_t)b * (size_t)O + (size_t)k] - d->y[i * (size_t)O + (size_t)k];
            float g;
            if (loss == ST_NN_LOSS_L1) {
                total += fabs((double)e);
                g = e > 0.0f ? 1.0f : (e < 0.0f ? -1.0f : 0.0f);
            } else if (loss == ST_NN_LOSS_L2) {
                total += (double)e * (double)e;
                g = 2.0f * e;
            } else {
                float ae = fabsf(e);
                if (ae <= delta) {
                    total += 0.5 * (double)e * (double)e;
                    g = e;
                } else {
                    total += (double)delta * ((double)ae - 0.5 * (double)delta);
                    g = e > 0.0f ? delta : -delta;
                }
            }
            if (want_grad)
                ws->dcur[(size_t)b * (size_t)O + (size_t)k] = g * scale;
        }
    }
    return total / (double)((size_t)B * (size_t)O);
}

int st_nn_loss_grad(st_nn_t *nn, const st_nn_data_t *data, const int *idx, int count,
                    st_nn_loss_t loss, float huber_delta, double *loss_value, char *errstr,
                    size_t errstr_size)
{
    if (data_check(nn, data, 1, "gradient", errstr, errstr_size) != 0)
        return -1;
    if (count < 1)
        return st_errstr(errstr, errstr_size, "nn: empty batch");
    for (int b = 0; b < count; b++)
        if (idx[b] < 0 || (size_t)idx[b] >= data->n)
            return st_errstr(errstr, errstr_size, "nn: row index %d out of range", idx[b]);
    if (ws_ensure(nn, count, errstr, errstr_size) != 0)
        return -1;
    gather(nn, nn->ws, data, idx, 0, count);
    forward(nn, nn->ws, count, NULL);
    for (int l = 0; l < nn->arch.rnn_layers; l++)
        for (size_t i = 0; i < (size_t)count * (size_t)nn->rnn[l].in; i++)
            nn->ws->dmask[l][i] = 1.0f;
    *loss_value = loss_grad(nn, nn->ws, count, data, idx, 0, loss, huber_delta, 1, count);
    memset(nn->grads, 0, nn->n_params * sizeof(float));
    backward(nn, nn->ws, nn->grads, count, data, idx, 0);
    return 0;
}

float *st_nn_params(st_nn_t *nn, size_t *n)
{
    if (n)
        *n = nn->n_params;
    return nn->params;
}

const float *st_nn_grads(const st_nn_t *nn)
{
    return nn->grads;
}

int st_nn_evaluate(st_nn_t *nn, const st_nn_data_t *data, st_nn_loss_t loss, float huber_delta,
                   double *mean_loss, char *errstr, size_t errstr_size)
{
    if (data_check(nn, data, 1, "evaluation", errstr, errstr_size) != 0)
        return -1;
    int chunk = nn->ws && nn->ws->batch > PREDICT_CHUNK ? nn->ws->batch : PREDICT_CHUNK;
    if ((size_t)chunk > data->n)
        chunk = (int)data->n;
    if (ws_ensure(nn, chunk, errstr, errstr_size) != 0)
        return -1;
    double total = 0.0;
    for (size_t start = 0; start < data->n; start += (size_t)chunk) {
        int count = (int)(data->n - start < (size_t)chunk ? data->n - start : (size_t)chunk);
        gather(nn, nn->ws, data, NULL, start, count);
        forward(nn, nn->ws, count, NULL);
        total +=
            loss_grad(nn, nn->ws, count, data, NULL, start, loss, huber_delta, 0, count) * count;
    }
    *mean_loss = total / (double)data->n;
    return 0;
}

int st_nn_predict(st_nn_t *nn, const st_nn_data_t *data, float *out, char *errstr,
                  size_t errstr_size)
{
    if (data_check(nn, data, 0, "prediction", errstr, errstr_size) != 0)
        return -1;
    int chunk = nn->ws && nn->ws->batch > PREDICT_CHUNK ? nn->ws->batch : PREDICT_CHUNK;
    if ((size_t)chunk > data->n)
        chunk = (int)data->n;
    if (ws_ensure(nn, chunk, errstr, errstr_size) != 0)
        return -1;
    size_t O = (size_t)nn->arch.outputs;
    for (size_t start = 0; start < data->n; start += (size_t)chunk) {
        int count = (int)(data->n - start < (size_t)chunk ? data->n - start : (size_t)chunk);
        gather(nn, nn->ws, data, NULL, start, count);
        forward(nn, nn->ws, count, NULL);
        memcpy(out + start * O, nn->ws->dense_out[nn->n_dense - 1],
               (size_t)count * O * sizeof(float));
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cfg_check(const st_nn_train_cfg_t *c, char *errstr, size_t errstr_size)
{
    if (c->loss != ST_NN_LOSS_L1 && c->loss != ST_NN_LOSS_L2 && c->loss != ST_NN_LOSS_HUBER)
        return st_errstr(errstr, errstr_size, "nn: unknown loss %d", (int)c->loss);
    if (c->loss == ST_NN_LOSS_HUBER && !(c->huber_delta > 0.0f))
        return st_errstr(errstr, errstr_size, "nn: huber_delta must be > 0");
    if (c->opt != ST_NN_OPT_ADAM && c->opt != ST_NN_OPT_SGD)
        return st_errstr(errstr, errstr_size, "nn: unknown optimiser %d", (int)c->opt);
    if (!(c->lr > 0.0f) || !isfinite(c->lr))
        return st_errstr(errstr, errstr_size, "nn: learning rate %g must be > 0", c->lr);
    if (c->opt == ST_NN_OPT_ADAM && !(c->beta1 >= 0.0f && c->beta1 < 1.0f && c->beta2 >= 0.0f &&
                                      c->beta2 < 1.0f && c->eps > 0.0f))
        return st_errstr(errstr, errstr_size, "nn: Adam needs 0 <= beta < 1 and eps > 0");
    if (c->batch < 1 || c->batch > 1000000)
        return st_errstr(errstr, errstr_size, "nn: batch %d outside 1..1000000", c->batch);
    if (c->epochs < 1)
        return st_errstr(errstr, errstr_size, "nn: epochs %d must be >= 1", c->epochs);
    if (c->threads < 0 || c->threads > ST_NN_MAX_THREADS)
        return st_errstr(errstr, errstr_size, "nn: threads %d outside 1..%d", c->threads,
                         ST_NN_MAX_THREADS);
    return 0;
}

static void clip_grads(float *g, size_t n, float clip_norm)
{
    if (!(clip_norm > 0.0f))
        return;
    double sq = 0.0;
    for (size_t i = 0; i < n; i++)
        sq += (double)g[i] * (double)g[i];
    double norm = sqrt(sq);
    if (norm > (double)clip_norm) {
        float s = (float)((double)clip_norm / norm);
        for (size_t i = 0; i < n; i++)
            g[i] *= s;
    }
}

/* Data-parallel training. A step's rows are split into contiguous parts, one per thread; each
 * part runs forward and backward on buffers of its own (part 0: nn->ws, nn->grads) with the
 * gradient scaled to the mean over the whole step, and the parts' gradients are then added in
 * part order, so a run is reproducible for a given thread count. A part has at least
 * PART_MIN_ROWS rows: smaller products cost more in waiting than they save. With one part (one
 * thread, or a small last batch) the step is exactly the single-threaded one, dropout included;
 * with several, each part draws its dropout masks from a stream of its own, seeded from a
 * generator apart from the shuffling one, so the order of the rows is the same for every count. */
#define PART_MIN_ROWS 16

typedef struct team team_t;

typedef struct {
    team_t *team;
    int k; /* the part's index, its thread's too */
    ws_t *ws;
    float *grads;
    st_rng_t rng;
    const int *idx;
    int count;
    double loss_sum;
} part_t;

struct team {
    st_nn_t *nn;
    const st_nn_data_t *data;
    const st_nn_train_cfg_t *cfg;
    int threads, active, step_rows;
    st_rng_t part_seeds; /* the parts' dropout streams, step after step */
    part_t part[ST_NN_MAX_THREADS];
    pthread_t th[ST_NN_MAX_THREADS];
    int started; /* worker threads running (parts 1..started) */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen;
    int pending, stop;
};

static void part_run(team_t *tm, part_t *pt, st_rng_t *drop_rng)
{
    st_nn_t *nn = tm->nn;
    const st_nn_train_cfg_t *c = tm->cfg;
    gather(nn, pt->ws, tm->data, pt->idx, 0, pt->count);
    forward(nn, pt->ws, pt->count, drop_rng);
    pt->loss_sum = loss_grad(nn, pt->ws, pt->count, tm->data, pt->idx, 0, c->loss, c->huber_delta,
                             1, tm->step_rows) *
                   pt->count;
    memset(pt->grads, 0, nn->n_params * sizeof(float));
    backward(nn, pt->ws, pt->grads, pt->count, tm->data, pt->idx, 0);
}

static void *team_worker(void *arg)
{
    part_t *pt = arg;
    team_t *tm = pt->team;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&tm->mu);
        while (tm->gen == seen && !tm->stop)
            pthread_cond_wait(&tm->go, &tm->mu);
        if (tm->stop) {
            pthread_mutex_unlock(&tm->mu);
            return NULL;
        }
        seen = tm->gen;
        int mine = pt->k < tm->active;
        pthread_mutex_unlock(&tm->mu);
        if (mine)
            part_run(tm, pt, &pt->rng);
        pthread_mutex_lock(&tm->mu);
        if (--tm->pending == 0)
            pthread_cond_signal(&tm->done);
        pthread_mutex_unlock(&tm->mu);
    }
}

static void team_stop(team_t *tm)
{
    if (tm->started > 0) {
        pthread_mutex_lock(&tm->mu);
        tm->stop = 1;
        pthread_cond_broadcast(&tm->go);
        pthread_mutex_unlock(&tm->mu);
        for (int k = 1; k <= tm->started; k++)
            pthread_join(tm->th[k], NULL);
    }
    for (int k = 1; k < tm->threads; k++) {
        ws_free(tm->part[k].ws);
        free(tm->part[k].grads);
    }
    if (tm->threads > 1) {
        pthread_mutex_destroy(&tm->mu);
        pthread_cond_destroy(&tm->go);
        pthread_cond_destroy(&tm->done);
    }
}

/* Buffers and threads for threads parts of at most batch rows in all; fewer threads when the
 * batch cannot give each PART_MIN_ROWS rows. */
static int team_start(team_t *tm, st_nn_t *nn, const st_nn_data_t *data,
                      const st_nn_train_cfg_t *cfg, int batch, char *errstr, size_t errstr_size)
{
    memset(tm, 0, sizeof *tm);
    tm->nn = nn;
    tm->data = data;
    tm->cfg = cfg;
    int threads = cfg->threads > 1 ? cfg->threads : 1;
    if (threads > batch / PART_MIN_ROWS)
        threads = batch / PART_MIN_ROWS > 1 ? batch / PART_MIN_ROWS : 1;
    tm->threads = threads;
    tm->part[0].grads = nn->grads;
    st_rng_seed(&tm->part_seeds, cfg->seed ^ 0x9e3779b97f4a7c15ull);
    if (threads == 1)
        return 0;
    pthread_mutex_init(&tm->mu, NULL);
    pthread_cond_init(&tm->go, NULL);
    pthread_cond_init(&tm->done, NULL);
    /* parts of a full batch, or of a smaller one split in fewer parts (then < 2 x PART_MIN_ROWS) */
    int part_rows = (batch + threads - 1) / threads;
    if (part_rows < 2 * PART_MIN_ROWS)
        part_rows = 2 * PART_MIN_ROWS;
    for (int k = 1; k < threads; k++) {
        tm->part[k].ws = ws_new(nn, part_rows, 1);
        tm->part[k].grads = malloc(nn->n_params * sizeof(float));
        if (!tm->part[k].ws || !tm->part[k].grads)
            goto fail;
    }
    for (int k = 1; k < threads; k++) {
        tm->part[k].team = tm;
        tm->part[k].k = k;
        if (pthread_create(&tm->th[k], NULL, team_worker, &tm->part[k]) != 0)
            goto fail;
        tm->started = k;
    }
    return 0;
fail:
    team_stop(tm);
    return st_errstr(errstr, errstr_size, "nn: out of memory or threads for %d training threads",
                     threads);
}

/* One step over count rows of idx: the loss summed over the rows, the mean gradient in
 * nn->grads. rng is the training generator, which draws the dropout masks of a one-part step. */
static double team_step(team_t *tm, const int *idx, int count, st_rng_t *rng)
{
    st_nn_t *nn = tm->nn;
    int parts = count / PART_MIN_ROWS < tm->threads ? count / PART_MIN_ROWS : tm->threads;
    tm->step_rows = count;
    tm->part[0].ws = nn->ws; /* validation between epochs may have grown (replaced) it */
    if (parts <= 1) {
        part_t *pt = &tm->part[0];
        pt->idx = idx;
        pt->count = count;
        part_run(tm, pt, rng);
        return pt->loss_sum;
    }
    for (int k = 0, off = 0; k < parts; k++) {
        part_t *pt = &tm->part[k];
        pt->idx = idx + off;
        pt->count = count / parts + (k < count % parts);
        off += pt->count;
        st_rng_seed(&pt->rng, st_rng_next(&tm->part_seeds));
    }
    pthread_mutex_lock(&tm->mu);
    tm->active = parts;
    tm->pending = tm->started;
    tm->gen++;
    pthread_cond_broadcast(&tm->go);
    pthread_mutex_unlock(&tm->mu);
    part_run(tm, &tm->part[0], &tm->part[0].rng);
    pthread_mutex_lock(&tm->mu);
    while (tm->pending > 0)
        pthread_cond_wait(&tm->done, &tm->mu);
    pthread_mutex_unlock(&tm->mu);
    double loss = tm->part[0].loss_sum;
    size_t np = nn->n_params;
    for (int k = 1; k < parts; k++) {
        const float *g = tm->part[k].grads;
        for (size_t i = 0; i < np; i++)
            nn->grads[i] += g[i];
        loss += tm->part[k].loss_sum;
    }
    return loss;
}

int st_nn_train(st_nn_t *nn, const st_nn_data_t *train, const st_nn_data_t *val,
                const st_nn_train_cfg_t *cfg, st_nn_history_t *hist, char *errstr,
                size_t errstr_size)
{
    if (cfg_check(cfg, errstr, errstr_size) != 0 ||
        data_check(nn, train, 1, "training", errstr, errstr_size) != 0 ||
        (val && data_check(nn, val, 1, "validation", errstr, errstr_size) != 0))
        return -1;
    size_t n = train->n, np = nn->n_params;
    int B = (size_t)cfg->batch < n ? cfg->batch : (int)n;
    if (ws_ensure(nn, B, errstr, errstr_size) != 0)
        return -1;
    int *idx = malloc(n * sizeof(int));
    float *m = calloc(np, sizeof(float)), *v = calloc(np, sizeof(float));
    float *best = val ? malloc(np * sizeof(float)) : NULL;
    double *loss_hist = calloc((size_t)cfg->epochs, sizeof(double));
    double *val_hist = calloc((size_t)cfg->epochs, sizeof(double));
    int rc = -1;
    team_t *tm = calloc(1, sizeof *tm);
    int team_up = 0;
    if (!idx || !m || !v || (val && !best) || !loss_hist || !val_hist || !tm) {
        st_errstr(errstr, errstr_size, "nn: out of memory for training state");
        goto out;
    }
    if (team_start(tm, nn, train, cfg, B, errstr, errstr_size) != 0)
        goto out;
    team_up = 1;
    for (size_t i = 0; i < n; i++)
        idx[i] = (int)i;
    st_rng_t rng;
    st_rng_seed(&rng, cfg->seed);
    double best_val = INFINITY, t_start = now_s();
    int best_epoch = 0, wait = 0, epochs_run = 0, stopped_early = 0;
    long step = 0;
    size_t per_epoch = cfg->epoch_rows > 0 && cfg->epoch_rows < n ? cfg->epoch_rows : n;
    size_t pos = n; /* next row of idx; n: the order is used up */
    for (int epoch = 1; epoch <= cfg->epochs; epoch++) {
        double sum = 0.0;
        for (size_t done = 0; done < per_epoch;) {
            if (pos == n) {
                if (cfg->shuffle)
                    st_rng_shuffle(&rng, idx, n);
                pos = 0;
            }
            size_t want = per_epoch - done < (size_t)B ? per_epoch - done : (size_t)B;
            int count = (int)(n - pos < want ? n - pos : want);
            const int *bidx = idx + pos;
            pos += (size_t)count;
            done += (size_t)count;
            sum += team_step(tm, bidx, count, &rng);
            clip_grads(nn->grads, np, cfg->clip_norm);
            step++;
            float *w = nn->params;
            const float *g = nn->grads;
            if (cfg->opt == ST_NN_OPT_ADAM) {
                float b1 = cfg->beta1, b2 = cfg->beta2;
                double lr_t = (double)cfg->lr * sqrt(1.0 - pow((double)b2, (double)step)) /
                              (1.0 - pow((double)b1, (double)step));
                float lr = (float)lr_t;
                for (size_t i = 0; i < np; i++) {
                    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
                    v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
                    w[i] -= lr * m[i] / (sqrtf(v[i]) + cfg->eps);
                }
            } else {
                for (size_t i = 0; i < np; i++) {
                    m[i] = cfg->momentum * m[i] - cfg->lr * g[i];
                    w[i] += m[i];
                }
            }
        }
        double loss = sum / (double)per_epoch, val_loss = NAN;
        epochs_run = epoch;
        loss_hist[epoch - 1] = loss;
        if (!isfinite(loss)) {
            st_errstr(errstr, errstr_size,
                      "nn: training loss is not finite at epoch %d (scale the inputs, lower lr or "
                      "set clip_norm)",
                      epoch);
            goto out;
        }
        if (val) {
            if (st_nn_evaluate(nn, val, cfg->loss, cfg->huber_delta, &val_loss, errstr,
                               errstr_size) != 0)
                goto out;
            if (val_loss < best_val - (double)cfg->min_delta) {
                best_val = val_loss;
                best_epoch = epoch;
                wait = 0;
                memcpy(best, nn->params, np * sizeof(float));
            } else {
                wait++;
            }
        }
        val_hist[epoch - 1] = val_loss;
        double elapsed = now_s() - t_start;
        double eta = elapsed / epoch * (cfg->epochs - epoch);
        if (cfg->progress &&
            cfg->progress(cfg->progress_user, epoch, cfg->epochs, loss, val_loss, elapsed, eta))
            break;
        if (val && cfg->patience > 0 && wait >= cfg->patience) {
            stopped_early = 1;
            break;
        }
    }
    if (val && best_epoch > 0)
        memcpy(nn->params, best, np * sizeof(float));
    if (hist) {
        hist->epochs = epochs_run;
        hist->loss = loss_hist;
        hist->val_loss = val_hist;
        hist->best_epoch = best_epoch;
        hist->best_val_loss = val ? best_val : NAN;
        hist->stopped_early = stopped_early;
        loss_hist = val_hist = NULL;
    }
    rc = 0;
out:
    if (team_up)
        team_stop(tm);
    free(tm);
    free(idx);
    free(m);
    free(v);
    free(best);
    free(loss_hist);
    free(val_hist);
    return rc;
}

void st_nn_history_free(st_nn_history_t *hist)
{
    if (!hist)
        return;
    free(hist->loss);
    free(hist->val_loss);
    hist->loss = hist->val_loss = NULL;
    hist->epochs = 0;
}

st_nn_ctx_t *st_nn_ctx_new(const st_nn_t *nn, char *errstr, size_t errstr_size)
{
    st_nn_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (ctx)
        ctx->ws = ws_new(nn, 1, 0);
    if (!ctx || !ctx->ws) {
        st_nn_ctx_destroy(ctx);
        st_errstr(errstr, errstr_size, "nn: out of memory for a prediction context");
        return NULL;
    }
    ctx->nn = nn;
    return ctx;
}

void st_nn_ctx_destroy(st_nn_ctx_t *ctx)
{
    if (!ctx)
        return;
    ws_free(ctx->ws);
    free(ctx);
}

int st_nn_ctx_predict(st_nn_ctx_t *ctx, const float *x, int length, float *out)
{
    const st_nn_t *nn = ctx->nn;
    int len = gather_row(nn, ctx->ws, 0, 1, x, length);
    ctx->ws->t0 = nn->arch.steps - len;
    forward(nn, ctx->ws, 1, NULL);
    memcpy(out, ctx->ws->dense_out[nn->n_dense - 1], (size_t)nn->arch.outputs * sizeof(float));
    return 0;
}

int st_nn_save(const st_nn_t *nn, const char *path, char *errstr, size_t errstr_size)
{
    const st_nn_arch_t *a = &nn->arch;
    st_buf_t b = ST_BUF_INIT;
    int fail = 0;
    fail |= st_model_put_u32(&b, (uint32_t)a->steps);
    fail |= st_model_put_u32(&b, (uint32_t)a->features);
    fail |= st_model_put_u32(&b, (uint32_t)a->outputs);
    fail |= st_model_put_u32(&b, (uint32_t)a->n_embed);
    for (int k = 0; k < ST_NN_MAX_EMBED; k++) {
        fail |= st_model_put_u32(&b, (uint32_t)a->embed_vocab[k]);
        fail |= st_model_put_u32(&b, (uint32_t)a->embed_dim[k]);
    }
    fail |= st_model_put_u32(&b, (uint32_t)a->cell);
    fail |= st_model_put_u32(&b, (uint32_t)a->rnn_layers);
    for (int l = 0; l < ST_NN_MAX_RNN; l++)
        fail |= st_model_put_u32(&b, (uint32_t)a->rnn_units[l]);
    fail |= st_model_put_f32(&b, a->dropout);
    fail |= st_model_put_u32(&b, (uint32_t)a->dense_layers);
    for (int l = 0; l < ST_NN_MAX_DENSE; l++)
        fail |= st_model_put_u32(&b, (uint32_t)a->dense_units[l]);
    fail |= st_model_put_u32(&b, (uint32_t)a->dense_act);
    fail |= st_model_put_u64(&b, a->seed);
    fail |= st_model_put_u64(&b, (uint64_t)nn->n_params);
    fail |= st_model_put_f32s(&b, nn->params, nn->n_params);
    int rc = fail ? st_errstr(errstr, errstr_size, "%s: out of memory", path)
                  : st_model_save(path, ST_MODEL_KIND_NN, NN_KIND_VERSION, &b, errstr, errstr_size);
    st_buf_free(&b);
    return rc;
}

static int get_int(st_model_reader_t *r, int *v)
{
    uint32_t u;
    if (st_model_get_u32(r, &u) != 0)
        return -1;
    *v = (int)u;
    return 0;
}

st_nn_t *st_nn_load(const char *path, char *errstr, size_t errstr_size)
{
    void *payload = NULL;
    size_t len = 0;
    uint32_t version = 0;
    if (st_model_load(path, ST_MODEL_KIND_NN, &payload, &len, &version, errstr, errstr_size) != 0)
        return NULL;
    st_nn_t *nn = NULL;
    if (version != NN_KIND_VERSION) {
        st_errstr(errstr, errstr_size, "%s: unsupported network layout version %u", path, version);
        goto out;
    }
    st_model_reader_t r;
    st_model_reader_init(&r, payload, len);
    st_nn_arch_t a;
    memset(&a, 0, sizeof a);
    int cell = 0, act = 0;
    uint64_t n_params = 0;
    get_int(&r, &a.steps);
    get_int(&r, &a.features);
    get_int(&r, &a.outputs);
    get_int(&r, &a.n_embed);
    for (int k = 0; k < ST_NN_MAX_EMBED; k++) {
        get_int(&r, &a.embed_vocab[k]);
        get_int(&r, &a.embed_dim[k]);
    }
    get_int(&r, &cell);
    get_int(&r, &a.rnn_layers);
    for (int l = 0; l < ST_NN_MAX_RNN; l++)
        get_int(&r, &a.rnn_units[l]);
    st_model_get_f32(&r, &a.dropout);
    get_int(&r, &a.dense_layers);
    for (int l = 0; l < ST_NN_MAX_DENSE; l++)
        get_int(&r, &a.dense_units[l]);
    get_int(&r, &act);
    st_model_get_u64(&r, &a.seed);
    if (st_model_get_u64(&r, &n_params) != 0) {
        st_errstr(errstr, errstr_size, "%s: bad network payload: %s", path, r.err);
        goto out;
    }
    if (n_params > (len - r.pos) / 4 || n_params * 4 != len - r.pos) {
        st_errstr(errstr, errstr_size,
                  "%s: bad network payload: %llu parameters announced, %zu bytes left", path,
                  (unsigned long long)n_params, len - r.pos);
        goto out;
    }
    a.cell = (st_nn_cell_t)cell;
    a.dense_act = (st_nn_act_t)act;
    char why[200];
    nn = nn_alloc(&a, (size_t)n_params, why, sizeof why);
    if (!nn) {
        st_errstr(errstr, errstr_size, "%s: bad network: %s", path, why);
        goto out;
    }
    if (n_params != nn->n_params || st_model_get_f32s(&r, nn->params, nn->n_params) != 0 ||
        st_model_reader_done(&r) != 0) {
        st_errstr(errstr, errstr_size, "%s: bad network payload: %s", path,
                  r.err[0] ? r.err : "parameter count does not match the architecture");
        st_nn_destroy(nn);
        nn = NULL;
    }
out:
    free(payload);
    return nn;
}
