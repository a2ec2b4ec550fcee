/* st_bundle_train.c - training a model bundle: the country vocabulary, clustering of the training
 * users' profiles (k-means or spectral) and the networks. Not linked by the predictor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_bundle_impl.h"
#include "st_err.h"
#include "st_kmeans.h"
#include "st_log.h"
#include "st_scaler.h"
#include "st_spectral.h"

/* The training target of a length (the inverse of length_of in st_bundle.c). */
static double target_of(const st_bundle_t *b, double length_s)
{
    return b->spec.log_target ? log1p(length_s) : length_s;
}

/* Country vocabulary: countries of TRAIN rows by row count (desc), then name. */
typedef struct {
    const char *name;
    size_t count;
} country_count_t;

static int cmp_country(const void *a, const void *b)
{
    const country_count_t *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int fit_countries(st_bundle_t *b, const st_dataset_t *ds)
{
    int nu = st_dataset_n_users(ds);
    country_count_t *cc = calloc((size_t)nu + 1, sizeof *cc);
    b->countries = calloc((size_t)nu + 1, sizeof *b->countries);
    if (!cc || !b->countries) {
        free(cc);
        return -1;
    }
    int n = 0;
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    for (int u = 0; u < nu; u++) {
        const char *c = st_dataset_profile(ds, u)->country;
        size_t cnt = 0, first = st_dataset_user_first(ds, u);
        for (size_t i = 0; i < st_dataset_user_rows(ds, u); i++)
            cnt += rows[first + i].role == ST_DATASET_TRAIN;
        if (!*c || cnt == 0)
            continue;
        int j = 0;
        while (j < n && strcmp(cc[j].name, c) != 0)
            j++;
        if (j == n)
            cc[n++].name = c;
        cc[j].count += cnt;
    }
    qsort(cc, (size_t)n, sizeof *cc, cmp_country);
    for (int i = 0; i < n; i++)
        snprintf(b->countries[i], ST_BUNDLE__COUNTRY_NAME, "%s", cc[i].name);
    b->n_countries = n;
    free(cc);
    return 0;
}

/* Profiles of users with TRAIN rows (filters applied), clustered; fills prof_* and clusters. */
static int fit_clusters(st_bundle_t *b, const st_dataset_t *ds, char *errstr, size_t errstr_size)
{
    int nu = st_dataset_n_users(ds);
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    b->prof_users = calloc((size_t)nu, sizeof *b->prof_users);
    b->prof_x = calloc((size_t)nu * (size_t)b->n_pf, sizeof *b->prof_x);
    b->prof_labels = calloc((size_t)nu, sizeof *b->prof_labels);
    double *v = malloc((st_dataset_n_rows(ds) + 1) * sizeof *v);
    if (!b->prof_users || !b->prof_x || !b->prof_labels || !v) {
        free(v);
        st_errstr(errstr, errstr_size, "bundle: out of memory");
        return -1;
    }
    size_t n = 0;
    for (int u = 0; u < nu; u++) {
        size_t first = st_dataset_user_first(ds, u), m = 0;
        double sum = 0, mx = 0, tracks = 0;
        for (size_t i = 0; i < st_dataset_user_rows(ds, u); i++) {
            const st_dataset_row_t *r = &rows[first + i];
            if (r->role != ST_DATASET_TRAIN)
                continue;
            v[m++] = r->length_s;
            sum += r->length_s;
            mx = r->length_s > mx ? r->length_s : mx;
            tracks += r->track_count;
        }
        if (m == 0)
            continue;
        double mean = sum / (double)m;
        if (b->spec.seed_filters && !(tracks > 500 && m > 30 && mean < 20000))
            continue;
        const st_dataset_profile_t *p = st_dataset_profile(ds, u);
        double med = st_dataset_median(v, m);
        for (int f = 0; f < b->n_pf; f++) {
            double val = 0;
            switch ((st_bundle__profile_feat_t)b->pf[f]) {
            case ST_BUNDLE__PF_MEAN:
                val = mean;
                break;
            case ST_BUNDLE__PF_MEDIAN:
                val = med;
                break;
            case ST_BUNDLE__PF_MAX:
                val = mx;
                break;
            case ST_BUNDLE__PF_SESSIONS:
                val = (double)m;
                break;
            case ST_BUNDLE__PF_TRACKS:
                val = tracks;
                break;
            case ST_BUNDLE__PF_GENDER:
                val = st_bundle__gender_value(p->gender);
                break;
            case ST_BUNDLE__PF_AGE:
                val = p->age > 0 ? p->age : 0;
                break;
            case ST_BUNDLE__PF_COUNTRY:
                val = st_bundle_country_id(b, p->country);
                break;
            case ST_BUNDLE__PF_REGISTERED:
                val = (double)p->registered_s;
                break;
            case ST_BUNDLE__PF_COUNT:
                break;
            }
            b->prof_x[n * (size_t)b->n_pf + (size_t)f] = val;
        }
        b->prof_users[n] = strdup(st_dataset_user_id(ds, u));
        if (!b->prof_users[n]) {
            free(v);
            st_errstr(errstr, errstr_size, "bundle: out of memory");
            return -1;
        }
        n++;
    }
    free(v);
    b->n_prof = n; /* users are in id order already (dataset order) */
    if ((int)n < b->spec.k || (b->spec.cluster == ST_BUNDLE_CLUSTER_SPECTRAL && n < 3)) {
        /* too few users to cluster: every user falls back to the global network */
        st_log_warn("bundle_no_clusters", "model=\"%s\" users=%zu k=%d", b->spec.name, n,
                    b->spec.k);
        for (size_t i = 0; i < n; i++)
            free(b->prof_users[i]);
        b->n_prof = 0;
        return 0;
    }
    b->profile_scaler = st_scaler_new(b->n_pf, errstr, errstr_size);
    if (!b->profile_scaler)
        return -1;
    float *xf = malloc(n * (size_t)b->n_pf * sizeof *xf);
    double *z = malloc(n * (size_t)b->n_pf * sizeof *z);
    if (!xf || !z) {
        free(xf);
        free(z);
        st_errstr(errstr, errstr_size, "bundle: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n * (size_t)b->n_pf; i++)
        xf[i] = (float)b->prof_x[i];
    st_scaler_fit(b->profile_scaler, xf, n, NULL);
    for (size_t i = 0; i < n; i++)
        for (int f = 0; f < b->n_pf; f++)
            z[i * (size_t)b->n_pf + (size_t)f] = (b->prof_x[i * (size_t)b->n_pf + (size_t)f] -
                                                  st_scaler_mean(b->profile_scaler, f)) /
                                                 st_scaler_scale(b->profile_scaler, f);
    free(xf);
    if (b->spec.cluster == ST_BUNDLE_CLUSTER_KMEANS) {
        st_kmeans_cfg_t kc;
        st_kmeans_default(&kc);
        kc.k = b->spec.k;
        kc.seed = b->spec.seed;
        b->clusters = st_kmeans_fit(z, n, b->n_pf, &kc, b->prof_labels, errstr, errstr_size);
    } else {
        st_spectral_cfg_t sc;
        st_spectral_default(&sc);
        sc.k = b->spec.k;
        sc.seed = b->spec.seed;
        if (sc.n_neighbors > (int)n - 1)
            sc.n_neighbors = (int)n - 1;
        b->clusters = st_spectral_fit(z, n, b->n_pf, &sc, b->prof_labels, errstr, errstr_size);
    }
    free(z);
    if (!b->clusters)
        return -1;
    b->k = b->spec.k;
    return 0;
}

typedef struct {
    st_bundle_progress_fn fn;
    void *user;
    const char *net;
} progress_ctx_t;

static int on_epoch(void *user, int epoch, int epochs, double loss, double val_loss,
                    double elapsed_s, double eta_s)
{
    progress_ctx_t *p = user;
    return p->fn ? p->fn(p->user, p->net, epoch, epochs, loss, val_loss, elapsed_s, eta_s) : 0;
}

/* The model inputs (per floats each: the network input, or a gbt bundle's flattened row; len[k]
 * its valid steps, len may be NULL for gbt) and targets of the TRAIN rows (from 0) and VAL rows
 * (from n_tr) of the member users (member NULL: every user). */
static void fill_rows(st_bundle_t *b, const st_dataset_t *ds, const unsigned char *member,
                      size_t n_tr, float *x, size_t per, int *len, float *y)
{
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    double rl[ST_BUNDLE__MAX_STEPS + 1], ru[ST_BUNDLE__MAX_STEPS + 1];
    int64_t rs[ST_BUNDLE__MAX_STEPS + 1];
    int rt[ST_BUNDLE__MAX_STEPS + 1];
    size_t it = 0, iv = n_tr;
    for (size_t i = 0; i < st_dataset_n_rows(ds); i++) {
        if ((member && !member[rows[i].user]) || rows[i].role == ST_DATASET_TEST)
            continue;
        size_t k = rows[i].role == ST_DATASET_TRAIN ? it++ : iv++;
        st_bundle_input_t in;
        st_bundle_input_from_row(b, ds, i, &in, rl, rs, rt, ru);
        if (b->spec.kind == ST_BUNDLE_GBT)
            st_bundle_gbt_row(b, &in, x + k * per);
        else
            st_bundle__fill_x(b, &in, x + k * per, &len[k]);
        y[k] = (float)target_of(b, rows[i].length_s);
    }
}

/* Builds the rows of one network (cluster < 0: all users) and trains its spec.members members into
 * b->nn[net], member m from the seed spec.seed + m * ST_BUNDLE_MEMBER_SEED_STEP. */
static int train_net(st_bundle_t *b, const st_dataset_t *ds, int cluster,
                     st_bundle_progress_fn progress, void *progress_user, char *errstr,
                     size_t errstr_size)
{
    int net = cluster + 1;
    size_t nr = st_dataset_n_rows(ds);
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    int nu = st_dataset_n_users(ds);
    /* which users belong to this network */
    unsigned char *member = calloc((size_t)nu, 1);
    if (!member)
        goto oom0;
    int users = 0;
    for (int u = 0; u < nu; u++) {
        int c = st_bundle_user_cluster(b, st_dataset_user_id(ds, u));
        int has_train = 0;
        size_t first = st_dataset_user_first(ds, u);
        for (size_t i = 0; i < st_dataset_user_rows(ds, u) && !has_train; i++)
            has_train = rows[first + i].role == ST_DATASET_TRAIN;
        member[u] = cluster < 0 || c == cluster;
        users += member[u] && has_train;
    }
    b->net_users[net] = users;
    size_t n_tr = 0, n_va = 0;
    for (size_t i = 0; i < nr; i++) {
        if (!member[rows[i].user])
            continue;
        n_tr += rows[i].role == ST_DATASET_TRAIN;
        n_va += rows[i].role == ST_DATASET_VAL;
    }
    size_t per = (size_t)b->steps * (size_t)b->features;
    float *x = malloc((n_tr + n_va + 1) * per * sizeof *x);
    float *y = malloc((n_tr + n_va + 1) * sizeof *y);
    int *len = malloc((n_tr + n_va + 1) * sizeof *len);
    if (!x || !y || !len) {
        free(x);
        free(y);
        free(len);
        free(member);
        goto oom0;
    }
    fill_rows(b, ds, member, n_tr, x, per, len, y);
    free(member);
    /* scalers, fit on TRAIN rows only */
    int scale = b->spec.scaling == ST_BUNDLE_SCALE_ALL ||
                (b->spec.scaling == ST_BUNDLE_SCALE_MIXED && users <= b->spec.mixed_max_users);
    unsigned char cols[ST_BUNDLE_SEQ_FEATURES];
    for (int f = 0; f < b->features; f++) {
        if (b->spec.kind == ST_BUNDLE_SEQ)
            cols[f] = f != 0; /* the country id is embedded */
        else
            cols[f] = b->spec.scaling == ST_BUNDLE_SCALE_ALL || f >= 4; /* seed: prev, avg only */
    }
    b->xs[net] = st_scaler_new(b->features, errstr, errstr_size);
    b->ys[net] = st_scaler_new(1, errstr, errstr_size);
    int rc = -1;
    if (!b->xs[net] || !b->ys[net])
        goto out;
    if (scale && n_tr > 0) {
        st_scaler_fit_seq(b->xs[net], x, n_tr, b->steps, len, cols);
        st_scaler_fit(b->ys[net], y, n_tr, NULL);
        st_scaler_transform(b->xs[net], x, (n_tr + n_va) * (size_t)b->steps);
        st_scaler_transform(b->ys[net], y, n_tr + n_va);
    }
    st_nn_arch_t a;
    st_nn_arch_default(&a);
    a.steps = b->steps;
    a.features = b->features;
    if (b->spec.kind == ST_BUNDLE_SEQ) {
        a.n_embed = 1;
        a.embed_vocab[0] = ST_BUNDLE_COUNTRY_VOCAB;
        a.embed_dim[0] = 4;
    }
    a.cell = b->spec.cell;
    a.rnn_layers = b->spec.layers;
    a.rnn_units[0] = b->spec.units[0];
    a.rnn_units[1] = b->spec.units[1];
    a.dropout = b->spec.dropout;
    st_nn_train_cfg_t tc;
    st_nn_train_default(&tc);
    tc.loss = b->spec.loss;
    tc.lr = b->spec.lr;
    tc.clip_norm = b->spec.clip_norm;
    tc.batch = b->spec.batch;
    tc.epochs = b->spec.epochs;
    tc.patience = b->spec.patience;
    tc.epoch_rows = (size_t)b->spec.epoch_rows;
    tc.threads = b->spec.threads < ST_NN_MAX_THREADS ? b->spec.threads : ST_NN_MAX_THREADS;
    char net_name[48];
    progress_ctx_t pc = {progress, progress_user, net_name};
    tc.progress = on_epoch;
    tc.progress_user = &pc;
    st_nn_data_t tr = {n_tr, b->steps, b->features, x, len, y};
    st_nn_data_t va = {n_va, b->steps, b->features, x + n_tr * per, len + n_tr, y + n_tr};
    int n = cluster < 0 ? snprintf(net_name, sizeof net_name, "global")
                        : snprintf(net_name, sizeof net_name, "cluster %d", cluster);
    if (n_tr == 0) {
        st_errstr(errstr, errstr_size, "bundle: network %s has no training rows", net_name);
        goto out;
    }
    for (int m = 0; m < b->spec.members; m++) {
        /* the seeds of `stint evaluate --model-seeds`' model seed m + 1 */
        uint64_t seed = b->spec.seed + (uint64_t)m * ST_BUNDLE_MEMBER_SEED_STEP;
        if (b->spec.members > 1) /* the progress lines name the member */
            snprintf(net_name + n, sizeof net_name - (size_t)n, " member %d/%d", m + 1,
                     b->spec.members);
        a.seed = seed * 1000003u + (uint64_t)net;
        tc.seed = seed * 7919u + (uint64_t)net;
        if (!(b->nn[net][m] = st_nn_new(&a, errstr, errstr_size)))
            goto out;
        /* the history (the report's loss chart) is member 0's */
        if (st_nn_train(b->nn[net][m], &tr, n_va > 0 ? &va : NULL, &tc,
                        m == 0 ? &b->hist[net] : NULL, errstr, errstr_size) != 0)
            goto out;
        b->has_hist[net] = 1;
        if (!(b->ctx[net][m] = st_nn_ctx_new(b->nn[net][m], errstr, errstr_size)))
            goto out;
    }
    rc = 0;
out:
    free(x);
    free(y);
    free(len);
    return rc;
oom0:
    st_errstr(errstr, errstr_size, "bundle: out of memory");
    return -1;
}

/* Trains the trees of a gbt bundle on the flattened rows of every user (TRAIN; VAL for early
 * stopping), through the same input path as serving (st_bundle_input_from_row, fill_x). */
static int train_gbt(st_bundle_t *b, const st_dataset_t *ds, st_bundle_progress_fn progress,
                     void *progress_user, char *errstr, size_t errstr_size)
{
    size_t n_tr = st_dataset_count(ds, ST_DATASET_TRAIN);
    size_t n_va = st_dataset_count(ds, ST_DATASET_VAL), cols = (size_t)b->gbt_cols;
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    float *x = malloc((n_tr + n_va + 1) * cols * sizeof *x);
    float *y = malloc((n_tr + n_va + 1) * sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        st_errstr(errstr, errstr_size, "bundle: out of memory");
        return -1;
    }
    fill_rows(b, ds, NULL, n_tr, x, cols, NULL, y);
    st_gbt_cfg_t gc;
    st_gbt_default(&gc);
    gc.rounds = b->spec.trees;
    gc.depth = b->spec.depth;
    gc.eta = b->spec.eta;
    gc.patience = b->spec.patience;
    gc.threads = b->spec.threads;
    gc.loss = b->spec.loss == ST_NN_LOSS_L2      ? ST_GBT_LOSS_L2
              : b->spec.loss == ST_NN_LOSS_HUBER ? ST_GBT_LOSS_HUBER
                                                 : ST_GBT_LOSS_L1;
    gc.seed = b->spec.seed;
    progress_ctx_t pc = {progress, progress_user, "global"};
    gc.progress = on_epoch;
    gc.progress_user = &pc;
    b->net_users[0] = 0;
    for (int u = 0; u < st_dataset_n_users(ds); u++) {
        size_t first = st_dataset_user_first(ds, u), has_train = 0;
        for (size_t i = 0; i < st_dataset_user_rows(ds, u) && !has_train; i++)
            has_train = rows[first + i].role == ST_DATASET_TRAIN;
        b->net_users[0] += has_train > 0;
    }
    b->gbt = st_gbt_train(x, y, n_tr, x + n_tr * cols, y + n_tr, n_va, b->gbt_cols, &gc,
                          &b->hist[0], errstr, errstr_size);
    b->has_hist[0] = b->gbt != NULL;
    if (b->gbt)
        st_log_info("gbt_trained",
                    "model=\"%s\" rounds=%d kept=%d best_val_loss=%.5f rows=%zu cols=%d",
                    b->spec.name, b->hist[0].epochs, st_gbt_rounds(b->gbt),
                    b->hist[0].best_val_loss, n_tr, b->gbt_cols);
    free(x);
    free(y);
    return b->gbt ? 0 : -1;
}

st_bundle_t *st_bundle_train(const st_dataset_t *ds, const st_bundle_spec_t *spec,
                             st_bundle_progress_fn progress, void *progress_user, char *errstr,
                             size_t errstr_size)
{
    st_bundle_t *b = st_bundle__alloc(spec, errstr, errstr_size);
    if (!b)
        return NULL;
    b->data_hash = st_dataset_hash(ds);
    if (fit_countries(b, ds) != 0) {
        st_errstr(errstr, errstr_size, "bundle: out of memory");
        goto fail;
    }
    if (spec->kind == ST_BUNDLE_GBT) {
        if (train_gbt(b, ds, progress, progress_user, errstr, errstr_size) != 0)
            goto fail;
        return b;
    }
    if (spec->cluster != ST_BUNDLE_CLUSTER_NONE && fit_clusters(b, ds, errstr, errstr_size) != 0)
        goto fail;
    if (train_net(b, ds, -1, progress, progress_user, errstr, errstr_size) != 0)
        goto fail;
    for (int c = 0; c < b->k; c++) {
        int users = 0;
        for (size_t i = 0; i < b->n_prof; i++)
            users += b->prof_labels[i] == c;
        if (users < spec->min_cluster_users)
            continue;
        if (train_net(b, ds, c, progress, progress_user, errstr, errstr_size) != 0)
            goto fail;
    }
    return b;
fail:
    st_bundle_destroy(b);
    return NULL;
}
