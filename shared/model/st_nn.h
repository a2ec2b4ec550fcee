/* st_nn.h - recurrent regression networks on OpenBLAS (float32): optional embeddings of
 * categorical inputs, 0-2 stacked LSTM or GRU layers, 0-2 hidden dense layers and a linear dense
 * head; training by BPTT over minibatches with Adam or SGD, and inference (batch or one sample).
 *
 * Data layout. A data set holds n sequences of `steps` time steps with `features` floats each,
 * sample-major: x[(i * steps + t) * features + f]. Sequences are RIGHT-ALIGNED: a sequence of
 * length L occupies steps steps-L .. steps-1 (newest last); the steps before it are padding,
 * masked as in Keras (state carried unchanged, no gradient) and never read, so their values do
 * not matter. lengths == NULL means every sequence is full. Lengths are clamped to [1, steps]
 * (an empty history still runs one step, so pad it as one step of zeros).
 * The first arch.n_embed features of every step are categorical ids (stored as floats) that go
 * through their embedding; an id outside [0, vocab) maps to row 0, which callers should reserve
 * for "unknown". The other features enter the first layer as they are (scale them first, see
 * st_scaler.h). With no recurrent layer the network is an MLP on the last step only.
 *
 * Keras equivalence: LSTM gate order i, f, c, o with sigmoid recurrent activation and tanh
 * activation; GRU with reset_after = true (separate input and recurrent biases), gate order
 * z, r, h; `dropout` = Keras' `dropout` argument of each recurrent layer: one inverted-dropout mask
 * per sequence on the layer's inputs, shared by all time steps and gates. Init: Glorot uniform
 * kernels, orthogonal recurrent kernels, zero biases except LSTM forget gate 1, embeddings
 * U(-0.05, 0.05). Adam defaults lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-7 (Keras' update rule).
 * Gradient clipping rescales the whole gradient when its global L2 norm exceeds clip_norm.
 *
 * Typical use (errors omitted):
 *   st_nn_arch_t a;  st_nn_arch_default(&a);
 *   a.steps = 16; a.features = 9; a.rnn_units[0] = 64;
 *   st_nn_t *nn = st_nn_new(&a, err, sizeof err);
 *   st_nn_train_cfg_t c;  st_nn_train_default(&c);
 *   c.batch = 400; c.epochs = 50; c.patience = 5; c.clip_norm = 1.0f; c.seed = 42;
 *   st_nn_data_t tr = {n, 16, 9, x, lengths, y}, va = {...};
 *   st_nn_history_t h;
 *   st_nn_train(nn, &tr, &va, &c, &h, err, sizeof err);   (best validation weights kept)
 *   st_nn_save(nn, "model.stm", err, sizeof err);
 *   st_nn_ctx_t *ctx = st_nn_ctx_new(nn, err, sizeof err);  (one per predicting thread)
 *   st_nn_ctx_predict(ctx, one_x, length, &y_hat);
 * Inputs are used as given: scale them (st_scaler.h) and invert the target's scaling on the
 * outputs; a non-finite value in a valid step gives a non-finite prediction.
 *
 * Threads: an st_nn_t is used by one thread at a time for training and st_nn_predict; any number
 * of st_nn_ctx_t may predict concurrently from one trained (unchanging) network. */
#ifndef ST_NN_H
#define ST_NN_H

#include <stddef.h>
#include <stdint.h>

#define ST_NN_MAX_RNN     2
#define ST_NN_MAX_THREADS 64
#define ST_NN_MAX_DENSE   2
#define ST_NN_MAX_EMBED   4

typedef enum { ST_NN_CELL_LSTM = 0, ST_NN_CELL_GRU = 1 } st_nn_cell_t;
typedef enum { ST_NN_ACT_LINEAR = 0, ST_NN_ACT_RELU = 1, ST_NN_ACT_TANH = 2 } st_nn_act_t;
typedef enum { ST_NN_LOSS_L1 = 0, ST_NN_LOSS_L2 = 1, ST_NN_LOSS_HUBER = 2 } st_nn_loss_t;
typedef enum { ST_NN_OPT_ADAM = 0, ST_NN_OPT_SGD = 1 } st_nn_opt_t;

/* The shape of a network; fixed at st_nn_new and stored in the model file. */
typedef struct {
    int steps;    /* time steps T of every input sequence, >= 1 */
    int features; /* floats per step F (categorical ids first), >= 1 */
    int outputs;  /* regression outputs, >= 1 */
    int n_embed;  /* categorical inputs, 0..ST_NN_MAX_EMBED */
    int embed_vocab[ST_NN_MAX_EMBED];
    int embed_dim[ST_NN_MAX_EMBED];
    st_nn_cell_t cell;
    int rnn_layers; /* 0 (MLP on the last step), 1 or 2 */
    int rnn_units[ST_NN_MAX_RNN];
    float dropout;    /* input dropout of each recurrent layer, [0, 1) */
    int dense_layers; /* hidden dense layers before the linear head, 0..ST_NN_MAX_DENSE */
    int dense_units[ST_NN_MAX_DENSE];
    st_nn_act_t dense_act;
    uint64_t seed; /* weight initialisation */
} st_nn_arch_t;

/* Training settings. */
typedef struct {
    st_nn_loss_t loss;
    float huber_delta; /* ST_NN_LOSS_HUBER only */
    st_nn_opt_t opt;
    float lr;
    float beta1, beta2, eps; /* Adam */
    float momentum;          /* SGD */
    float clip_norm;         /* <= 0: no clipping */
    int batch;
    int epochs;
    int patience;    /* early stopping on the validation loss; <= 0: run all epochs */
    float min_delta; /* an improvement must exceed this */
    int shuffle;     /* reshuffle training rows every epoch (seeded) */
    /* Rows per epoch: 0 (or >= the training rows) is every row once; fewer makes an epoch that
     * many rows taken on from where the last epoch stopped, the order reshuffled each time the
     * rows run out, so early stopping and progress come at this many rows however large the
     * data. */
    size_t epoch_rows;
    uint64_t seed; /* shuffling and dropout */
    /* Threads a step's batch is split over (data parallel, parts of at least 16 rows; 0 or 1:
     * the calling thread only). The result depends on it: reproducible for the same seed and
     * threads. Run OpenBLAS at one thread beside it (openblas_set_num_threads(1)). */
    int threads;
    /* Called after every epoch (epoch counts from 1; val_loss is NAN without validation data);
     * return non-zero to stop training (e.g. on SIGINT). May be NULL. */
    int (*progress)(void *user, int epoch, int epochs, double loss, double val_loss,
                    double elapsed_s, double eta_s);
    void *progress_user;
} st_nn_train_cfg_t;

/* A borrowed view of a data set (see the layout above). y has n * outputs floats, may be NULL
 * for prediction. */
typedef struct {
    size_t n;
    int steps;
    int features;
    const float *x;
    const int *lengths;
    const float *y;
} st_nn_data_t;

/* Per-epoch losses; filled by a successful st_nn_train (the arrays are then owned by the
 * history: free with st_nn_history_free). */
typedef struct {
    int epochs; /* epochs run */
    double *loss;
    double *val_loss;
    int best_epoch; /* epoch (from 1) whose weights were kept; 0 without validation */
    double best_val_loss;
    int stopped_early;
} st_nn_history_t;

typedef struct st_nn st_nn_t;
typedef struct st_nn_ctx st_nn_ctx_t;

/* Fills defaults: 1 step, 1 feature, 1 output, one LSTM(32) layer, no dropout, no hidden dense,
 * seed 1. */
void st_nn_arch_default(st_nn_arch_t *arch);
/* Fills Keras-like defaults: L1 loss, Adam(1e-3, 0.9, 0.999, 1e-7), no clipping, batch 32,
 * 10 epochs, no early stopping, shuffle on, seed 1, no callback. */
void st_nn_train_default(st_nn_train_cfg_t *cfg);

/* A new network with seeded initial weights (caller owns; st_nn_destroy). NULL with errstr on a
 * bad architecture or no memory. */
st_nn_t *st_nn_new(const st_nn_arch_t *arch, char *errstr, size_t errstr_size);
void st_nn_destroy(st_nn_t *nn);
/* The architecture (borrowed, valid while nn lives). */
const st_nn_arch_t *st_nn_arch(const st_nn_t *nn);

/* Trains nn in place. val may be NULL (then no early stopping). With validation data the weights
 * of the best validation epoch are kept. hist may be NULL. Returns 0, or -1 with errstr (bad
 * shapes or settings, non-finite loss, no memory); a callback stop still returns 0. */
int st_nn_train(st_nn_t *nn, const st_nn_data_t *train, const st_nn_data_t *val,
                const st_nn_train_cfg_t *cfg, st_nn_history_t *hist, char *errstr,
                size_t errstr_size);
void st_nn_history_free(st_nn_history_t *hist);

/* Batch inference: out receives data->n * outputs floats (caller-owned). Returns 0 or -1. */
int st_nn_predict(st_nn_t *nn, const st_nn_data_t *data, float *out, char *errstr,
                  size_t errstr_size);

/* Mean loss of the network on data (no dropout). Returns 0 or -1. */
int st_nn_evaluate(st_nn_t *nn, const st_nn_data_t *data, st_nn_loss_t loss, float huber_delta,
                   double *mean_loss, char *errstr, size_t errstr_size);

/* The single-sample path: a context holds its own buffers (allocated once here), so
 * st_nn_ctx_predict allocates nothing. nn is borrowed and must outlive the context. */
st_nn_ctx_t *st_nn_ctx_new(const st_nn_t *nn, char *errstr, size_t errstr_size);
void st_nn_ctx_destroy(st_nn_ctx_t *ctx);
/* x: steps * features floats of one right-aligned sequence of `length` steps; out: outputs
 * floats. Returns 0. */
int st_nn_ctx_predict(st_nn_ctx_t *ctx, const float *x, int length, float *out);

/* Saves nn to path (st_model container, kind NNET). Returns 0 or -1 with errstr. */
int st_nn_save(const st_nn_t *nn, const char *path, char *errstr, size_t errstr_size);
/* Loads a network (caller owns); NULL with errstr naming the failed check. */
st_nn_t *st_nn_load(const char *path, char *errstr, size_t errstr_size);

/* For gradient checks and tools: the flat parameter and gradient vectors (borrowed, n floats).
 * Layout, row-major, in Keras' get_weights() order (so Keras weights can be copied in): each
 * embedding (vocab x dim); each recurrent layer's kernel (in x G*H), recurrent kernel
 * (H x G*H), bias (G*H) and, for GRU, the recurrent bias (G*H, Keras' second bias row), with
 * G = 4 (LSTM: i f c o) or 3 (GRU: z r h); each dense layer's kernel (in x out) and bias. */
float *st_nn_params(st_nn_t *nn, size_t *n);
const float *st_nn_grads(const st_nn_t *nn);
/* Loss (no dropout) of rows idx[0..count) of data, and its gradient into st_nn_grads().
 * Returns 0 or -1. */
int st_nn_loss_grad(st_nn_t *nn, const st_nn_data_t *data, const int *idx, int count,
                    st_nn_loss_t loss, float huber_delta, double *loss_value, char *errstr,
                    size_t errstr_size);

#endif
