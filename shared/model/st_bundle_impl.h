/* st_bundle_impl.h - private to st_bundle.c (serving), st_bundle_train.c (training) and
 * st_bundle_file.c (spec text, save/load): the bundle struct and the few functions they share. */
#ifndef ST_BUNDLE_IMPL_H
#define ST_BUNDLE_IMPL_H

#include <stdint.h>

#include "st_bundle.h"
#include "st_cluster.h"
#include "st_gbt.h"
#include "st_nn.h"
#include "st_scaler.h"

#define ST_BUNDLE__MAX_NETS     (ST_BUNDLE_MAX_CLUSTERS + 1)
#define ST_BUNDLE__MAX_STEPS    (ST_BUNDLE_MAX_WINDOW + 1) /* W + 1 */
#define ST_BUNDLE__COUNTRY_NAME 64
#define ST_BUNDLE__GBT_TAIL     15 /* gbt row columns after the W lags */

typedef enum {
    ST_BUNDLE__PF_MEAN,
    ST_BUNDLE__PF_MEDIAN,
    ST_BUNDLE__PF_MAX,
    ST_BUNDLE__PF_SESSIONS,
    ST_BUNDLE__PF_TRACKS,
    ST_BUNDLE__PF_GENDER,
    ST_BUNDLE__PF_AGE,
    ST_BUNDLE__PF_COUNTRY,
    ST_BUNDLE__PF_REGISTERED,
    ST_BUNDLE__PF_COUNT
} st_bundle__profile_feat_t;

/* The profile features' names, in st_bundle__profile_feat_t order. */
extern const char *const st_bundle__pf_names[ST_BUNDLE__PF_COUNT];

struct st_bundle {
    st_bundle_spec_t spec;
    int steps, features;
    uint64_t data_hash;
    char (*countries)[ST_BUNDLE__COUNTRY_NAME];
    int n_countries;
    /* clustering */
    int k;
    st_cluster_t *clusters;
    st_scaler_t *profile_scaler;
    int n_pf;
    int pf[ST_BUNDLE_MAX_PROFILE_FEATS];
    const char *pf_name[ST_BUNDLE_MAX_PROFILE_FEATS];
    size_t n_prof; /* clustered users, sorted by id */
    char **prof_users;
    double *prof_x;
    int *prof_labels;
    /* networks: 0 global, c + 1 cluster c; [net][m] member m (spec.members of them), sharing the
     * net's scalers; the history is member 0's */
    st_nn_t *nn[ST_BUNDLE__MAX_NETS][ST_BUNDLE_MAX_MEMBERS];
    st_nn_ctx_t *ctx[ST_BUNDLE__MAX_NETS][ST_BUNDLE_MAX_MEMBERS];
    st_scaler_t *xs[ST_BUNDLE__MAX_NETS], *ys[ST_BUNDLE__MAX_NETS];
    int net_users[ST_BUNDLE__MAX_NETS];
    st_nn_history_t hist[ST_BUNDLE__MAX_NETS];
    int has_hist[ST_BUNDLE__MAX_NETS];
    float *xbuf;
    /* gbt: the trees (instead of the networks) and the flattened row */
    st_gbt_t *gbt;
    int gbt_cols;
    float *gbt_row;
};

/* A bundle of spec with its scratch buffer and profile features, nothing fitted or loaded yet
 * (st_bundle_destroy frees it). NULL with errstr on a bad spec or no memory. */
st_bundle_t *st_bundle__alloc(const st_bundle_spec_t *spec, char *errstr, size_t errstr_size);
/* Writes the unscaled network input of in into x (steps x features) and its valid length. */
void st_bundle__fill_x(const st_bundle_t *b, const st_bundle_input_t *in, float *x, int *length);
/* Flattens fill_x's output x (valid length len) into the gbt row (b->gbt_cols floats). */
void st_bundle__gbt_flatten(const st_bundle_t *b, const float *x, int len, float *row);
/* The gender feature: m 1, f 0, else -1. */
double st_bundle__gender_value(char g);

#endif
