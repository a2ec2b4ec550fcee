/* st_bundle.h - a trained session-length model bundle: training from an st_dataset (global network
 * plus optional per-cluster networks, scalers, clustering of training-period user profiles),
 * saving to / loading from a directory, and the cheap per-session prediction the predictor calls.
 *
 * Bundle directory layout (written by st_bundle_save, read by st_bundle_load):
 *   metadata.json      version, spec (the training config), data_hash, feature list in order,
 *                      steps/window W, target transform ("log1p" or "identity"), nets present,
 *                      profile feature list, metrics (whatever the caller passed)
 *   countries.txt      the country vocabulary, one name per line by training-row frequency rank
 *                      (line 1 = id 1; anything else is id 0 = unknown)
 *   net_0.stm          the global network (st_nn file); net_<c+1>.stm the network of cluster c
 *   net_<i>_m<m>.stm member m (1 .. members - 1) of network i, with spec.members > 1
 *                      (absent when the cluster had too few users: its users use the global one)
 *   net_<i>_x.scal     input scaler of network i (identity where a feature is not scaled)
 *   net_<i>_y.scal     target scaler of network i (1 column, in the transformed target space)
 *   clusters.stm       the cluster model (st_cluster file), only with clustering
 *   profile.scal       z-score scaler of the profile features the clusters were fit on
 *   user_clusters.tsv  user_id, cluster, then the profile features (training rows only) of every
 *                      clustered training user
 * Every file except metadata.json depends on training data only (the leak test checks this).
 *
 * Features. SEQ networks see steps = W + 1 right-aligned steps: the user's last <= W sessions
 * (oldest first) and, as the last step, the session being predicted (its length/tracks 0 and an
 * is_current flag 1). Every step carries ST_BUNDLE_SEQ_FEATURES values, in this order:
 *   country_id (categorical, embedded), log1p_length_s, log1p_track_count, unknown_share,
 *   log1p_gap_s (gap from the previous session's end to this start; 0 unknown), hour_sin,
 *   hour_cos, weekday_sin, weekday_cos (UTC, of this step's start), is_current, gender (m 1, f 0,
 *   else -1), age (at event time, 0 unknown), account_age_years (0 unknown),
 *   log1p_median_length_s (of the last ST_SESSION_MEDIAN_WINDOW earlier sessions) and
 *   log1p_mean_length_s (of all earlier sessions), log1p_sessions
 *   (earlier sessions). The last six are the predicted session's and repeat on every step.
 * PARITY (the seed's model) has one step of ST_BUNDLE_PARITY_FEATURES raw values: gender, age,
 * country_id (numeric, as the seed), registered_s, prev_length_s, avg_length_s. The seed's other
 * three columns (start, user id, session id) are identifiers and are never features.
 * GBT (gradient-boosted trees, st_gbt) computes the SEQ input of W + 1 steps (the same
 * st_bundle__fill_x) and flattens it into one row of W + 15 columns (st_bundle_gbt_feature_name):
 * log1p_length_s of the W earlier sessions (lag W .. lag 1, missing = NAN when the user has fewer),
 * the previous session's log1p_track_count, unknown_share and log1p_gap_s, then the predicted
 * session's log1p_gap_s, hour and weekday sin/cos, country_id, gender, age, account_age_years,
 * log1p_median_length_s, log1p_mean_length_s, log1p_sessions. Unscaled; the target is log1p(length)
 * with log_target. Its bundle holds gbt.stm (st_gbt file) instead of the networks and scalers.
 * Age as the seed computed it: profile age + (event year - registration year) (years of
 * 365.2425 days); the profile age alone when the registration is unknown.
 *
 * Threads: a bundle predicts from one thread at a time (it owns one scratch buffer); load one
 * bundle per thread for more. */
#ifndef ST_BUNDLE_H
#define ST_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "st_dataset.h"
#include "st_nn.h"
#include "st_session.h"

#define ST_BUNDLE_VERSION           1
#define ST_BUNDLE_SEQ_FEATURES      16
#define ST_BUNDLE_PARITY_FEATURES   6
#define ST_BUNDLE_MAX_CLUSTERS      16
#define ST_BUNDLE_MAX_PROFILE_FEATS 9
#define ST_BUNDLE_MAX_MEMBERS       8
/* Member m of a network is trained with the seed spec.seed + m * ST_BUNDLE_MEMBER_SEED_STEP: the
 * network `stint evaluate --model-seeds` trains as model seed m + 1 (with no clustering). */
#define ST_BUNDLE_MEMBER_SEED_STEP 1000003u
/* W + 1 sessions must fit in an OPENED (st_session.h): the predictor serves from the event alone */
#define ST_BUNDLE_MAX_WINDOW    (ST_SESSION_RECENT_MAX - 1)
#define ST_BUNDLE_COUNTRY_VOCAB 32 /* embedding rows: id 0 unknown, ids 1..31 */

typedef enum { ST_BUNDLE_SEQ = 0, ST_BUNDLE_PARITY = 1, ST_BUNDLE_GBT = 2 } st_bundle_kind_t;
typedef enum {
    ST_BUNDLE_CLUSTER_NONE = 0,
    ST_BUNDLE_CLUSTER_KMEANS = 1,
    ST_BUNDLE_CLUSTER_SPECTRAL = 2
} st_bundle_cluster_t;
/* mixed = scale inputs and target only in networks trained on <= mixed_max_users users (the
 * seed's "clusters of <= 200 users"); parity scales prev/avg/target only (as the seed), seq every
 * numeric feature and the target. Scaling is always inverted before a prediction is returned. */
typedef enum {
    ST_BUNDLE_SCALE_NONE = 0,
    ST_BUNDLE_SCALE_ALL = 1,
    ST_BUNDLE_SCALE_MIXED = 2
} st_bundle_scale_t;

/* What to train. */
typedef struct {
    char name[64];
    st_bundle_kind_t kind;
    int window; /* W, seq only (1..ST_BUNDLE_MAX_WINDOW) */
    st_nn_cell_t cell;
    int layers;   /* 1 or 2 */
    int units[2]; /* units[0] first layer */
    float dropout;
    int log_target; /* train on log1p(length_s) */
    st_nn_loss_t loss;
    int epochs, batch, patience;
    int epoch_rows; /* training rows per epoch (st_nn_train_cfg_t.epoch_rows), 0: all */
    float lr, clip_norm;
    st_bundle_cluster_t cluster;
    int k;
    /* comma-separated from: mean, median, max, sessions, tracks, gender, age, country,
     * registered (per user, TRAIN rows only) */
    char profile_features[128];
    int seed_filters;      /* keep users with > 500 listens, > 30 sessions, mean < 20000 s */
    int min_cluster_users; /* a cluster with fewer users gets no network of its own */
    st_bundle_scale_t scaling;
    int mixed_max_users;
    /* gbt only: boosting rounds at most (early stopping on VAL after `patience` rounds without a
     * better validation loss), tree depth, learning rate */
    int trees, depth;
    float eta;
    /* training threads: a network's batches split over them (st_nn_train_cfg_t.threads),
     * xgboost's nthread; a result is reproducible for the same spec, threads included */
    int threads;
    /* networks per network slot (global, each cluster), trained alike from different seeds; a
     * prediction is the mean of their outputs in the target's scale (with log_target: the
     * geometric mean of the lengths); seq and parity only */
    int members;
    uint64_t seed;
} st_bundle_spec_t;

/* Defaults: the improved model. seq, W 16, LSTM 1 x 32, dropout 0, log target, L1, 40 epochs of
 * at most 262,144 rows (2^18; all rows below that, so only data larger than ~200 users x 2 years
 * see it), batch 64, patience 8 (chosen on validation MAE over split seeds 1-3), lr 2e-3, clip 1,
 * no clustering (k 5, features "mean,median,sessions", no filters, min users 10), scaling all,
 * mixed_max_users 200, seed 1. */
void st_bundle_spec_default(st_bundle_spec_t *spec);
/* The seed-parity model: parity, LSTM(250), no log target, L1 (MAE), Adam 1e-3, batch 400,
 * 30 epochs of every row (patience 4), k-means 5, seed filters, mixed scaling, a network for
 * clusters of > 30 users (as the seed). */
void st_bundle_spec_seed(st_bundle_spec_t *spec);
/* Gradient-boosted trees (xgboost) on the seq model's features flattened into one row: gbt, W 16,
 * log target, L1 (st_gbt's sign gradients), at most 1000 trees of depth 6, eta 0.05, patience 50,
 * 1 thread, no clustering. */
void st_bundle_spec_gbt(st_bundle_spec_t *spec);

/* The spec as compact JSON text (keys sorted; caller frees), NULL on no memory. Keys: those of
 * the table below (name, kind, window, cell, layers, units, units2, dropout, log_target, loss,
 * epochs, batch, patience, epoch_rows, lr, clip_norm, cluster, k, profile_features, seed_filters,
 * min_cluster_users, scaling, mixed_max_users, trees, depth, eta, threads, members, seed;
 * docs/training.md lists what each allows). */
char *st_bundle_spec_json(const st_bundle_spec_t *spec);
/* The spec's keys live in one table (st_bundle_file.c): each key's field, type and allowed
 * values. Setting a key, checking a whole spec and every error message about a key use it. */
int st_bundle_spec_n_keys(void);
/* The name of key i (0 .. st_bundle_spec_n_keys() - 1), NULL out of range. */
const char *st_bundle_spec_key(int i);
/* What key allows, as the error messages say it ("an integer from 1 to 4096", "lstm or gru",
 * "a number >= 0 and < 1", ...), into buf. Returns 0, or -1 for an unknown key. */
int st_bundle_spec_allowed(const char *key, char *buf, size_t size);
/* Sets one key of the spec from text (flags, config files). Returns 0, or -1 with errstr naming
 * the key, the value and what the key allows (`bundle spec: units="0" is not an integer from 1 to
 * 4096`), or the keys there are for an unknown key. */
int st_bundle_spec_set(st_bundle_spec_t *spec, const char *key, const char *value, char *errstr,
                       size_t errstr_size);
/* Applies every key of a JSON object text to spec (unknown and duplicate keys are errors).
 * Returns 0 or -1 with errstr as st_bundle_spec_set's, or with the JSON error's line and column. */
int st_bundle_spec_from_json(st_bundle_spec_t *spec, const char *json_text, char *errstr,
                             size_t errstr_size);
/* Checks every field of spec against the table (a spec built in code; st_bundle_train and
 * st_bundle_load call it). Returns 0, or -1 with errstr as st_bundle_spec_set's. */
int st_bundle_spec_check(const st_bundle_spec_t *spec, char *errstr, size_t errstr_size);

/* Per-epoch progress of training: net is "global" or "cluster N". Return non-zero to stop. */
typedef int (*st_bundle_progress_fn)(void *user, const char *net, int epoch, int epochs,
                                     double loss, double val_loss, double elapsed_s, double eta_s);

typedef struct st_bundle st_bundle_t;

/* Trains a bundle on ds's TRAIN rows (VAL rows for early stopping; TEST rows never read), after
 * st_dataset_split. progress may be NULL. Returns a new bundle (caller owns; st_bundle_destroy)
 * or NULL with errstr. */
st_bundle_t *st_bundle_train(const st_dataset_t *ds, const st_bundle_spec_t *spec,
                             st_bundle_progress_fn progress, void *progress_user, char *errstr,
                             size_t errstr_size);
void st_bundle_destroy(st_bundle_t *b);

/* Writes the bundle into dir (created if missing). metrics_json: a JSON object text stored as
 * "metrics" in metadata.json, may be NULL. Returns 0 or -1 with errstr. */
int st_bundle_save(const st_bundle_t *b, const char *dir, const char *metrics_json, char *errstr,
                   size_t errstr_size);
/* Loads a bundle directory (caller owns). NULL with errstr naming the file and the failed check. */
st_bundle_t *st_bundle_load(const char *dir, char *errstr, size_t errstr_size);

const st_bundle_spec_t *st_bundle_spec(const st_bundle_t *b);
/* Number of clusters (0 without clustering). */
int st_bundle_k(const st_bundle_t *b);

/* What the predictor knows at a session's start. */
typedef struct {
    const double *lengths_s;      /* recent closed sessions, oldest first, newest last */
    const int64_t *starts_s;      /* their starts (NULL: unknown) */
    const int *track_counts;      /* NULL: unknown (0) */
    const double *unknown_shares; /* NULL: unknown (0) */
    int n_recent;                 /* pass >= W + 1 for full features (gap of the oldest step) */
    int n_sessions;               /* all earlier sessions of the user (>= n_recent) */
    double mean_length_s;         /* of all earlier sessions; NAN: computed from the recent ones */
    double median_length_s;       /* same */
    int64_t start_s;              /* the new session's start, epoch s */
    double gap_s;                 /* since the previous session's end; < 0 none/unknown */
    char gender;                  /* 'm', 'f' or 0 */
    int age;                      /* profile age, < 0 unknown */
    const char *country;          /* NULL or "" unknown */
    int64_t registered_s;         /* 0 unknown */
    int cluster;                  /* the user's cluster, < 0 or >= k: the global network */
} st_bundle_input_t;

/* Predicts the session's length in seconds (>= 0) into *length_s. Allocates nothing (a gbt
 * bundle: nothing of ours; xgboost's prediction allocates inside). Returns 0, or -1 when the inputs
 * give a non-finite prediction (or xgboost fails). */
int st_bundle_predict(st_bundle_t *b, const st_bundle_input_t *in, double *length_s);

/* The network input of in, unscaled: steps x features floats into x (cap of them at least),
 * *steps the valid length. What training (st_bundle_input_from_row) and serving (the predictor)
 * must agree on, compared by the tests. Returns the number of floats written, or -1 when cap is
 * too small. */
int st_bundle_features(const st_bundle_t *b, const st_bundle_input_t *in, float *x, size_t cap,
                       int *steps);

/* Columns of a gbt bundle's row (W + 15), 0 for the other kinds. */
int st_bundle_gbt_cols(const st_bundle_t *b);
/* The name of column c of a gbt bundle's row into buf ("log1p_length_s_lag3", "hour_sin", ...).
 * Returns 0, or -1 when c is out of range. */
int st_bundle_gbt_feature_name(const st_bundle_t *b, int c, char *buf, size_t size);
/* The flattened row of in (st_bundle_gbt_cols floats into row): what the trees see, for
 * training, serving and the tests alike. Returns the column count, or -1 for another kind. */
int st_bundle_gbt_row(st_bundle_t *b, const st_bundle_input_t *in, float *row);
/* Total split gain per column of a gbt bundle's trees into gain[st_bundle_gbt_cols]. Returns 0,
 * or -1 with errstr (not a gbt bundle, or xgboost failed). */
int st_bundle_gbt_gain(const st_bundle_t *b, double *gain, char *errstr, size_t errstr_size);

/* The cluster of a training user by id (from user_clusters.tsv), -1 if not clustered. */
int st_bundle_user_cluster(const st_bundle_t *b, const char *user_id);
/* The id of country in the bundle's vocabulary (countries.txt: 1 = most frequent in training),
 * or 0 for an unknown, empty or NULL country. */
int st_bundle_country_id(const st_bundle_t *b, const char *country);
/* The cluster of a user from its profile features (the order of the bundle's profile feature
 * list, raw values), -1 without clustering or on non-finite values. */
int st_bundle_assign_cluster(const st_bundle_t *b, const double *profile);

/* Fills in from dataset row `row` (its past only); recent_* are caller buffers of >= W + 1
 * entries that in points into. The cluster is the user's training cluster. Used by training and
 * evaluation so both go through st_bundle_predict's exact feature path. */
void st_bundle_input_from_row(const st_bundle_t *b, const st_dataset_t *ds, size_t row,
                              st_bundle_input_t *in, double *recent_lengths_s,
                              int64_t *recent_starts_s, int *recent_tracks, double *recent_unknown);

/* Training diagnostics of network i (0 global, c + 1 cluster c): NULL when absent or loaded
 * from disk. Borrowed. */
const st_nn_history_t *st_bundle_history(const st_bundle_t *b, int net);
/* The scale of network net's target scaler (its losses times this are in target units: seconds,
 * or log1p seconds with log_target); 1 when the target is not scaled, NAN when net is absent. */
double st_bundle_target_scale(const st_bundle_t *b, int net);
/* Users the network of cluster c was trained on (0 if it has none); for net -1 all users. */
int st_bundle_net_users(const st_bundle_t *b, int cluster);
/* The clustered training users' profile matrix (raw values, n x dim) and labels (borrowed). */
size_t st_bundle_profiles(const st_bundle_t *b, const double **x, const int **labels, int *dim);
/* Names of the profile features in use (borrowed) and their count. */
const char *const *st_bundle_profile_feature_names(const st_bundle_t *b, int *n);

#endif
