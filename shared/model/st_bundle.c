/* st_bundle.c - training, saving, loading and per-session prediction of a model bundle (see
 * st_bundle.h for the directory layout and the feature definitions). */
#include "st_bundle.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "st_cluster.h"
#include "st_err.h"
#include "st_kmeans.h"
#include "st_log.h"
#include "st_scaler.h"
#include "st_spectral.h"
#include "st_time.h"

#define MAX_NETS     (ST_BUNDLE_MAX_CLUSTERS + 1)
#define YEAR_S       31556952.0 /* 365.2425 days */
#define MAX_WINDOW   (ST_BUNDLE_MAX_WINDOW + 1)
#define COUNTRY_NAME 64
#define ST_PI        3.14159265358979323846

static const char *const seq_feature_names[ST_BUNDLE_SEQ_FEATURES] = {"country_id",
                                                                      "log1p_length_s",
                                                                      "log1p_track_count",
                                                                      "unknown_share",
                                                                      "log1p_gap_s",
                                                                      "hour_sin",
                                                                      "hour_cos",
                                                                      "weekday_sin",
                                                                      "weekday_cos",
                                                                      "is_current",
                                                                      "gender",
                                                                      "age",
                                                                      "account_age_years",
                                                                      "log1p_median_length_s",
                                                                      "log1p_mean_length_s",
                                                                      "log1p_sessions"};
static const char *const parity_feature_names[ST_BUNDLE_PARITY_FEATURES] = {
    "gender", "age", "country_id", "registered_s", "prev_length_s", "avg_length_s"};

typedef enum {
    PF_MEAN,
    PF_MEDIAN,
    PF_MAX,
    PF_SESSIONS,
    PF_TRACKS,
    PF_GENDER,
    PF_AGE,
    PF_COUNTRY,
    PF_REGISTERED,
    PF_COUNT
} profile_feat_t;
static const char *const pf_names[PF_COUNT] = {"mean",   "median", "max",     "sessions",  "tracks",
                                               "gender", "age",    "country", "registered"};

struct st_bundle {
    st_bundle_spec_t spec;
    int steps, features;
    uint64_t data_hash;
    char (*countries)[COUNTRY_NAME];
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
    /* networks: 0 global, c + 1 cluster c */
    st_nn_t *nn[MAX_NETS];
    st_nn_ctx_t *ctx[MAX_NETS];
    st_scaler_t *xs[MAX_NETS], *ys[MAX_NETS];
    int net_users[MAX_NETS];
    st_nn_history_t hist[MAX_NETS];
    int has_hist[MAX_NETS];
    float *xbuf;
};

void st_bundle_spec_default(st_bundle_spec_t *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "seq-lstm");
    s->kind = ST_BUNDLE_SEQ;
    s->window = 16;
    s->cell = ST_NN_CELL_LSTM;
    s->layers = 1;
    s->units[0] = 32;
    s->units[1] = 32;
    s->log_target = 1;
    s->loss = ST_NN_LOSS_L1;
    s->epochs = 40;
    s->batch = 64;
    s->patience = 8;
    s->lr = 2e-3f;
    s->clip_norm = 1.0f;
    s->cluster = ST_BUNDLE_CLUSTER_NONE;
    s->k = 5;
    snprintf(s->profile_features, sizeof s->profile_features, "mean,median,sessions");
    s->min_cluster_users = 10;
    s->scaling = ST_BUNDLE_SCALE_ALL;
    s->mixed_max_users = 200;
    s->seed = 1;
}

void st_bundle_spec_seed(st_bundle_spec_t *s)
{
    st_bundle_spec_default(s);
    snprintf(s->name, sizeof s->name, "seed-parity");
    s->kind = ST_BUNDLE_PARITY;
    s->window = 1;
    s->units[0] = 250;
    s->units[1] = 250;
    s->log_target = 0;
    s->batch = 400;
    s->patience = 4;
    s->lr = 1e-3f;
    s->clip_norm = 0;
    s->epochs = 30;
    s->cluster = ST_BUNDLE_CLUSTER_KMEANS;
    s->seed_filters = 1;
    s->min_cluster_users = 31; /* the seed: one model per cluster with > 30 users */
    s->scaling = ST_BUNDLE_SCALE_MIXED;
}

const st_bundle_spec_t *st_bundle_spec(const st_bundle_t *b)
{
    return &b->spec;
}

int st_bundle_k(const st_bundle_t *b)
{
    return b->k;
}

void st_bundle_destroy(st_bundle_t *b)
{
    if (!b)
        return;
    for (int i = 0; i < MAX_NETS; i++) {
        st_nn_ctx_destroy(b->ctx[i]);
        st_nn_destroy(b->nn[i]);
        st_scaler_destroy(b->xs[i]);
        st_scaler_destroy(b->ys[i]);
        if (b->has_hist[i])
            st_nn_history_free(&b->hist[i]);
    }
    st_cluster_destroy(b->clusters);
    st_scaler_destroy(b->profile_scaler);
    for (size_t i = 0; i < b->n_prof; i++)
        free(b->prof_users[i]);
    free(b->prof_users);
    free(b->prof_x);
    free(b->prof_labels);
    free(b->countries);
    free(b->xbuf);
    free(b);
}

/* Parses spec->profile_features into b->pf. */
static int parse_profile_features(st_bundle_t *b, char *errstr, size_t errstr_size)
{
    char buf[sizeof b->spec.profile_features];
    snprintf(buf, sizeof buf, "%s", b->spec.profile_features);
    b->n_pf = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
        int f = -1;
        for (int i = 0; i < PF_COUNT; i++)
            if (strcmp(tok, pf_names[i]) == 0)
                f = i;
        if (f < 0 || b->n_pf == ST_BUNDLE_MAX_PROFILE_FEATS) {
            st_errstr(errstr, errstr_size, "bundle: unknown profile feature \"%s\" (use %s)", tok,
                      "mean, median, max, sessions, tracks, gender, age, country, registered");
            return -1;
        }
        b->pf_name[b->n_pf] = pf_names[f];
        b->pf[b->n_pf++] = f;
    }
    if (b->n_pf == 0) {
        st_errstr(errstr, errstr_size, "bundle: no profile features");
        return -1;
    }
    return 0;
}

int st_bundle_country_id(const st_bundle_t *b, const char *country)
{
    if (!country || !*country)
        return 0;
    for (int i = 0; i < b->n_countries; i++)
        if (strcmp(b->countries[i], country) == 0)
            return i + 1;
    return 0;
}

static double age_at(const st_bundle_input_t *in)
{
    if (in->age < 0)
        return 0;
    if (in->registered_s <= 0)
        return in->age;
    return in->age +
           (floor((double)in->start_s / YEAR_S) - floor((double)in->registered_s / YEAR_S));
}

static double gender_value(char g)
{
    return g == 'm' ? 1.0 : g == 'f' ? 0.0 : -1.0;
}

static double lpos(double v)
{
    return v > 0 ? log1p(v) : 0.0;
}

static void time_features(int64_t start_s, float *out)
{
    int64_t day = start_s >= 0 ? start_s / 86400 : -((-start_s + 86399) / 86400);
    double sec = (double)(start_s - day * 86400);
    double wd = (double)(((day + 3) % 7 + 7) % 7); /* 1970-01-01 was a Thursday; Monday = 0 */
    double ah = 2 * ST_PI * sec / 86400.0, aw = 2 * ST_PI * wd / 7.0;
    out[0] = (float)sin(ah);
    out[1] = (float)cos(ah);
    out[2] = (float)sin(aw);
    out[3] = (float)cos(aw);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Mean and median of the user's earlier sessions: given, or from the last <= MAX_WINDOW recent. */
static void history_stats(const st_bundle_input_t *in, double *mean, double *median)
{
    *mean = in->mean_length_s;
    *median = in->median_length_s;
    if (isfinite(*mean) && isfinite(*median))
        return;
    double v[MAX_WINDOW];
    int n = in->n_recent < MAX_WINDOW ? in->n_recent : MAX_WINDOW;
    double s = 0;
    for (int i = 0; i < n; i++) {
        v[i] = in->lengths_s[in->n_recent - n + i];
        s += v[i];
    }
    if (!isfinite(*mean))
        *mean = n ? s / n : 0;
    if (!isfinite(*median)) {
        qsort(v, (size_t)n, sizeof *v, cmp_dbl);
        *median = n == 0 ? 0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    }
}

/* Writes the unscaled network input of in into x (steps x features) and its valid length. */
static void fill_x(const st_bundle_t *b, const st_bundle_input_t *in, float *x, int *length)
{
    int F = b->features;
    memset(x, 0, (size_t)b->steps * (size_t)F * sizeof *x);
    double mean, median;
    history_stats(in, &mean, &median);
    int cid = st_bundle_country_id(b, in->country);
    if (b->spec.kind == ST_BUNDLE_PARITY) {
        x[0] = (float)gender_value(in->gender);
        x[1] = (float)age_at(in);
        x[2] = (float)cid;
        x[3] = (float)in->registered_s;
        x[4] = in->n_recent > 0 ? (float)in->lengths_s[in->n_recent - 1] : 0.0f;
        x[5] = (float)mean;
        *length = 1;
        return;
    }
    int W = b->steps - 1;
    int used = in->n_recent < W ? in->n_recent : W;
    int first = in->n_recent - used;
    float ctxv[7];
    ctxv[0] = (float)(cid < ST_BUNDLE_COUNTRY_VOCAB ? cid : 0);
    ctxv[1] = (float)gender_value(in->gender);
    ctxv[2] = (float)age_at(in);
    ctxv[3] = in->registered_s > 0 ? (float)((double)(in->start_s - in->registered_s) / YEAR_S) : 0;
    ctxv[4] = (float)lpos(median);
    ctxv[5] = (float)lpos(mean);
    ctxv[6] = (float)lpos((double)in->n_sessions);
    int t0 = b->steps - (used + 1);
    for (int j = 0; j <= used; j++) {
        float *s = x + (size_t)(t0 + j) * (size_t)F;
        s[0] = ctxv[0];
        if (j < used) {
            int i = first + j;
            s[1] = (float)lpos(in->lengths_s[i]);
            s[2] = in->track_counts ? (float)lpos(in->track_counts[i]) : 0.0f;
            s[3] = in->unknown_shares ? (float)in->unknown_shares[i] : 0.0f;
            if (in->starts_s) {
                if (i > 0)
                    s[4] = (float)lpos((double)(in->starts_s[i] - in->starts_s[i - 1]) -
                                       in->lengths_s[i - 1]);
                time_features(in->starts_s[i], s + 5);
            }
        } else {
            s[4] = (float)lpos(in->gap_s);
            time_features(in->start_s, s + 5);
            s[9] = 1.0f;
        }
        s[10] = ctxv[1];
        s[11] = ctxv[2];
        s[12] = ctxv[3];
        s[13] = ctxv[4];
        s[14] = ctxv[5];
        s[15] = ctxv[6];
    }
    *length = used + 1;
}

int st_bundle_features(const st_bundle_t *b, const st_bundle_input_t *in, float *x, size_t cap,
                       int *steps)
{
    size_t n = (size_t)b->steps * (size_t)b->features;
    if (cap < n)
        return -1;
    fill_x(b, in, x, steps);
    return (int)n;
}

void st_bundle_input_from_row(const st_bundle_t *b, const st_dataset_t *ds, size_t row,
                              st_bundle_input_t *in, double *recent_lengths_s,
                              int64_t *recent_starts_s, int *recent_tracks, double *recent_unknown)
{
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    const st_dataset_row_t *r = &rows[row];
    const st_dataset_profile_t *p = st_dataset_profile(ds, r->user);
    int want = b->spec.kind == ST_BUNDLE_SEQ ? b->steps : 1; /* W + 1 for the oldest step's gap */
    int n = r->index < want ? r->index : want;
    for (int j = 0; j < n; j++) {
        const st_dataset_row_t *h = &rows[row - (size_t)n + (size_t)j];
        recent_lengths_s[j] = h->length_s;
        recent_starts_s[j] = h->start_s;
        recent_tracks[j] = h->track_count;
        recent_unknown[j] = h->unknown_share;
    }
    memset(in, 0, sizeof *in);
    in->lengths_s = recent_lengths_s;
    in->starts_s = recent_starts_s;
    in->track_counts = recent_tracks;
    in->unknown_shares = recent_unknown;
    in->n_recent = n;
    in->n_sessions = r->index;
    in->mean_length_s = r->index > 0 ? r->avg_length_s : 0;
    in->median_length_s = r->index > 0 ? r->median_length_s : 0;
    in->start_s = r->start_s;
    in->gap_s = r->gap_s;
    in->gender = p->gender;
    in->age = p->age;
    in->country = p->country;
    in->registered_s = p->registered_s;
    in->cluster = st_bundle_user_cluster(b, st_dataset_user_id(ds, r->user));
}

static double target_of(const st_bundle_t *b, double length_s)
{
    return b->spec.log_target ? log1p(length_s) : length_s;
}

static double length_of(const st_bundle_t *b, double y)
{
    double v = b->spec.log_target ? expm1(y) : y;
    return v > 0 ? v : 0;
}

int st_bundle_predict(st_bundle_t *b, const st_bundle_input_t *in, double *length_s)
{
    int net =
        (in->cluster >= 0 && in->cluster < b->k && b->nn[in->cluster + 1]) ? in->cluster + 1 : 0;
    int len;
    fill_x(b, in, b->xbuf, &len);
    st_scaler_transform(b->xs[net], b->xbuf, (size_t)b->steps);
    float out;
    st_nn_ctx_predict(b->ctx[net], b->xbuf, len, &out);
    st_scaler_inverse(b->ys[net], &out, 1);
    if (!isfinite(out))
        return -1;
    *length_s = length_of(b, out);
    return 0;
}

int st_bundle_user_cluster(const st_bundle_t *b, const char *user_id)
{
    if (b->n_prof == 0)
        return -1;
    size_t lo = 0, hi = b->n_prof;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(b->prof_users[mid], user_id);
        if (c == 0)
            return b->prof_labels[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int st_bundle_assign_cluster(const st_bundle_t *b, const double *profile)
{
    if (!b->clusters)
        return -1;
    double z[ST_BUNDLE_MAX_PROFILE_FEATS];
    for (int i = 0; i < b->n_pf; i++) {
        if (!isfinite(profile[i]))
            return -1;
        z[i] = (profile[i] - st_scaler_mean(b->profile_scaler, i)) /
               st_scaler_scale(b->profile_scaler, i);
    }
    return st_cluster_assign(b->clusters, z);
}

const st_nn_history_t *st_bundle_history(const st_bundle_t *b, int net)
{
    return (net >= 0 && net < MAX_NETS && b->has_hist[net]) ? &b->hist[net] : NULL;
}

int st_bundle_net_users(const st_bundle_t *b, int cluster)
{
    int net = cluster + 1;
    return (net >= 0 && net < MAX_NETS && b->nn[net]) ? b->net_users[net] : 0;
}

size_t st_bundle_profiles(const st_bundle_t *b, const double **x, const int **labels, int *dim)
{
    *x = b->prof_x;
    *labels = b->prof_labels;
    *dim = b->n_pf;
    return b->n_prof;
}

const char *const *st_bundle_profile_feature_names(const st_bundle_t *b, int *n)
{
    *n = b->n_pf;
    return b->pf_name;
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
        snprintf(b->countries[i], COUNTRY_NAME, "%s", cc[i].name);
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
            switch ((profile_feat_t)b->pf[f]) {
            case PF_MEAN:
                val = mean;
                break;
            case PF_MEDIAN:
                val = med;
                break;
            case PF_MAX:
                val = mx;
                break;
            case PF_SESSIONS:
                val = (double)m;
                break;
            case PF_TRACKS:
                val = tracks;
                break;
            case PF_GENDER:
                val = gender_value(p->gender);
                break;
            case PF_AGE:
                val = p->age > 0 ? p->age : 0;
                break;
            case PF_COUNTRY:
                val = st_bundle_country_id(b, p->country);
                break;
            case PF_REGISTERED:
                val = (double)p->registered_s;
                break;
            case PF_COUNT:
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

/* Builds the rows of one network (cluster < 0: all users) and trains it into b->nn[net]. */
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
    double rl[MAX_WINDOW + 1], ru[MAX_WINDOW + 1];
    int64_t rs[MAX_WINDOW + 1];
    int rt[MAX_WINDOW + 1];
    size_t it = 0, iv = n_tr;
    for (size_t i = 0; i < nr; i++) {
        if (!member[rows[i].user] || rows[i].role == ST_DATASET_TEST)
            continue;
        size_t k = rows[i].role == ST_DATASET_TRAIN ? it++ : iv++;
        st_bundle_input_t in;
        st_bundle_input_from_row(b, ds, i, &in, rl, rs, rt, ru);
        fill_x(b, &in, x + k * per, &len[k]);
        y[k] = (float)target_of(b, rows[i].length_s);
    }
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
    a.seed = b->spec.seed * 1000003u + (uint64_t)net;
    b->nn[net] = st_nn_new(&a, errstr, errstr_size);
    if (!b->nn[net])
        goto out;
    st_nn_train_cfg_t tc;
    st_nn_train_default(&tc);
    tc.loss = b->spec.loss;
    tc.lr = b->spec.lr;
    tc.clip_norm = b->spec.clip_norm;
    tc.batch = b->spec.batch;
    tc.epochs = b->spec.epochs;
    tc.patience = b->spec.patience;
    tc.seed = b->spec.seed * 7919u + (uint64_t)net;
    char net_name[32];
    if (cluster < 0)
        snprintf(net_name, sizeof net_name, "global");
    else
        snprintf(net_name, sizeof net_name, "cluster %d", cluster);
    progress_ctx_t pc = {progress, progress_user, net_name};
    tc.progress = on_epoch;
    tc.progress_user = &pc;
    st_nn_data_t tr = {n_tr, b->steps, b->features, x, len, y};
    st_nn_data_t va = {n_va, b->steps, b->features, x + n_tr * per, len + n_tr, y + n_tr};
    if (n_tr == 0) {
        st_errstr(errstr, errstr_size, "bundle: network %s has no training rows", net_name);
        goto out;
    }
    if (st_nn_train(b->nn[net], &tr, n_va > 0 ? &va : NULL, &tc, &b->hist[net], errstr,
                    errstr_size) != 0)
        goto out;
    b->has_hist[net] = 1;
    b->ctx[net] = st_nn_ctx_new(b->nn[net], errstr, errstr_size);
    rc = b->ctx[net] ? 0 : -1;
out:
    free(x);
    free(y);
    free(len);
    return rc;
oom0:
    st_errstr(errstr, errstr_size, "bundle: out of memory");
    return -1;
}

static int check_spec(const st_bundle_spec_t *s, char *errstr, size_t errstr_size)
{
    if (s->kind == ST_BUNDLE_SEQ && (s->window < 1 || s->window > MAX_WINDOW - 1))
        return st_errstr(errstr, errstr_size,
                         "bundle: window %d outside 1..%d (an OPENED carries at most %d sessions, "
                         "the W + 1 the model reads)",
                         s->window, MAX_WINDOW - 1, ST_SESSION_RECENT_MAX),
               -1;
    if (s->layers < 1 || s->layers > 2)
        return st_errstr(errstr, errstr_size, "bundle: layers %d outside 1..2", s->layers), -1;
    if (s->cluster != ST_BUNDLE_CLUSTER_NONE && (s->k < 1 || s->k > ST_BUNDLE_MAX_CLUSTERS))
        return st_errstr(errstr, errstr_size, "bundle: k %d outside 1..%d", s->k,
                         ST_BUNDLE_MAX_CLUSTERS),
               -1;
    return 0;
}

static st_bundle_t *bundle_alloc(const st_bundle_spec_t *spec, char *errstr, size_t errstr_size)
{
    if (check_spec(spec, errstr, errstr_size) != 0)
        return NULL;
    st_bundle_t *b = calloc(1, sizeof *b);
    if (!b) {
        st_errstr(errstr, errstr_size, "bundle: out of memory");
        return NULL;
    }
    b->spec = *spec;
    b->steps = spec->kind == ST_BUNDLE_SEQ ? spec->window + 1 : 1;
    b->features = spec->kind == ST_BUNDLE_SEQ ? ST_BUNDLE_SEQ_FEATURES : ST_BUNDLE_PARITY_FEATURES;
    b->xbuf = malloc((size_t)b->steps * (size_t)b->features * sizeof *b->xbuf);
    if (!b->xbuf || parse_profile_features(b, errstr, errstr_size) != 0) {
        if (!b->xbuf)
            st_errstr(errstr, errstr_size, "bundle: out of memory");
        st_bundle_destroy(b);
        return NULL;
    }
    return b;
}

st_bundle_t *st_bundle_train(const st_dataset_t *ds, const st_bundle_spec_t *spec,
                             st_bundle_progress_fn progress, void *progress_user, char *errstr,
                             size_t errstr_size)
{
    st_bundle_t *b = bundle_alloc(spec, errstr, errstr_size);
    if (!b)
        return NULL;
    b->data_hash = st_dataset_hash(ds);
    if (fit_countries(b, ds) != 0) {
        st_errstr(errstr, errstr_size, "bundle: out of memory");
        goto fail;
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

static const char *cell_name(st_nn_cell_t c)
{
    return c == ST_NN_CELL_GRU ? "gru" : "lstm";
}

static const char *cluster_name(st_bundle_cluster_t c)
{
    return c == ST_BUNDLE_CLUSTER_KMEANS     ? "kmeans"
           : c == ST_BUNDLE_CLUSTER_SPECTRAL ? "spectral"
                                             : "none";
}

static const char *scale_name(st_bundle_scale_t s)
{
    return s == ST_BUNDLE_SCALE_ALL ? "all" : s == ST_BUNDLE_SCALE_MIXED ? "mixed" : "none";
}

static const char *loss_name(st_nn_loss_t l)
{
    return l == ST_NN_LOSS_L2 ? "l2" : l == ST_NN_LOSS_HUBER ? "huber" : "l1";
}

/* A float as the shortest double that prints like it (0.002f -> 0.002, not 0.00200000009). */
static double f2d(float v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)v);
    return strtod(buf, NULL);
}

char *st_bundle_spec_json(const st_bundle_spec_t *s)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:i, s:s, s:i, s:i, s:i, s:f, s:b, s:s, s:i, s:i, s:i, s:f, s:f, s:s, s:i, "
        "s:s, s:b, s:i, s:s, s:i, s:I}",
        "name", s->name, "kind", s->kind == ST_BUNDLE_SEQ ? "seq" : "parity", "window", s->window,
        "cell", cell_name(s->cell), "layers", s->layers, "units", s->units[0], "units2",
        s->units[1], "dropout", f2d(s->dropout), "log_target", s->log_target, "loss",
        loss_name(s->loss), "epochs", s->epochs, "batch", s->batch, "patience", s->patience, "lr",
        f2d(s->lr), "clip_norm", f2d(s->clip_norm), "cluster", cluster_name(s->cluster), "k", s->k,
        "profile_features", s->profile_features, "seed_filters", s->seed_filters,
        "min_cluster_users", s->min_cluster_users, "scaling", scale_name(s->scaling),
        "mixed_max_users", s->mixed_max_users, "seed", (json_int_t)s->seed);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(o);
    return text;
}

/* Parses an enum word; -1 when unknown. */
static int word(const char *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    return -1;
}

int st_bundle_spec_set(st_bundle_spec_t *s, const char *key, const char *value, char *errstr,
                       size_t errstr_size)
{
    static const char *const kinds[] = {"seq", "parity"};
    static const char *const cells[] = {"lstm", "gru"};
    static const char *const losses[] = {"l1", "l2", "huber"};
    static const char *const clusters[] = {"none", "kmeans", "spectral"};
    static const char *const scales[] = {"none", "all", "mixed"};
    char *end;
    double d = strtod(value, &end);
    int numeric = *value && *end == 0 && isfinite(d);
    int w;
    if (strcmp(key, "name") == 0) {
        snprintf(s->name, sizeof s->name, "%s", value);
        return 0;
    }
    if (strcmp(key, "profile_features") == 0) {
        snprintf(s->profile_features, sizeof s->profile_features, "%s", value);
        return 0;
    }
    if (strcmp(key, "kind") == 0 && (w = word(value, kinds, 2)) >= 0)
        s->kind = (st_bundle_kind_t)w;
    else if (strcmp(key, "cell") == 0 && (w = word(value, cells, 2)) >= 0)
        s->cell = (st_nn_cell_t)w;
    else if (strcmp(key, "loss") == 0 && (w = word(value, losses, 3)) >= 0)
        s->loss = (st_nn_loss_t)w;
    else if (strcmp(key, "cluster") == 0 && (w = word(value, clusters, 3)) >= 0)
        s->cluster = (st_bundle_cluster_t)w;
    else if (strcmp(key, "scaling") == 0 && (w = word(value, scales, 3)) >= 0)
        s->scaling = (st_bundle_scale_t)w;
    else if ((strcmp(key, "log_target") == 0 || strcmp(key, "seed_filters") == 0) &&
             (strcmp(value, "true") == 0 || strcmp(value, "false") == 0 || numeric)) {
        int v = strcmp(value, "true") == 0 || (numeric && d != 0);
        *(strcmp(key, "log_target") == 0 ? &s->log_target : &s->seed_filters) = v;
    } else if (numeric && strcmp(key, "window") == 0 && d >= 1 && d < MAX_WINDOW)
        s->window = (int)d;
    else if (numeric && strcmp(key, "layers") == 0 && (d == 1 || d == 2))
        s->layers = (int)d;
    else if (numeric && strcmp(key, "units") == 0 && d >= 1 && d <= 4096)
        s->units[0] = (int)d;
    else if (numeric && strcmp(key, "units2") == 0 && d >= 1 && d <= 4096)
        s->units[1] = (int)d;
    else if (numeric && strcmp(key, "dropout") == 0 && d >= 0 && d < 1)
        s->dropout = (float)d;
    else if (numeric && strcmp(key, "epochs") == 0 && d >= 1 && d <= 100000)
        s->epochs = (int)d;
    else if (numeric && strcmp(key, "batch") == 0 && d >= 1 && d <= 1000000)
        s->batch = (int)d;
    else if (numeric && strcmp(key, "patience") == 0 && d >= 0 && d <= 100000)
        s->patience = (int)d;
    else if (numeric && strcmp(key, "lr") == 0 && d > 0 && d < 10)
        s->lr = (float)d;
    else if (numeric && strcmp(key, "clip_norm") == 0 && d >= 0)
        s->clip_norm = (float)d;
    else if (numeric && strcmp(key, "k") == 0 && d >= 1 && d <= ST_BUNDLE_MAX_CLUSTERS)
        s->k = (int)d;
    else if (numeric && strcmp(key, "min_cluster_users") == 0 && d >= 1)
        s->min_cluster_users = (int)d;
    else if (numeric && strcmp(key, "mixed_max_users") == 0 && d >= 0)
        s->mixed_max_users = (int)d;
    else if (numeric && strcmp(key, "seed") == 0 && d >= 0)
        s->seed = (uint64_t)d;
    else {
        st_errstr(errstr, errstr_size, "bundle spec: bad key or value %s=\"%s\"", key, value);
        return -1;
    }
    return 0;
}

int st_bundle_spec_from_json(st_bundle_spec_t *s, const char *json_text, char *errstr,
                             size_t errstr_size)
{
    json_error_t je;
    json_t *o = json_loads(json_text, 0, &je);
    if (!o || !json_is_object(o)) {
        st_errstr(errstr, errstr_size, "bundle spec: JSON line %d: %s", je.line,
                  o ? "not an object" : je.text);
        json_decref(o);
        return -1;
    }
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(o, key, v)
    {
        char buf[160];
        if (json_is_string(v))
            snprintf(buf, sizeof buf, "%s", json_string_value(v));
        else if (json_is_integer(v))
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
            snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
        else if (json_is_boolean(v))
            snprintf(buf, sizeof buf, "%s", json_is_true(v) ? "true" : "false");
        else
            snprintf(buf, sizeof buf, "?");
        if (st_bundle_spec_set(s, key, buf, errstr, errstr_size) != 0) {
            rc = -1;
            break;
        }
    }
    json_decref(o);
    return rc;
}

static int path_in(char *buf, size_t size, const char *dir, const char *name)
{
    return snprintf(buf, size, "%s/%s", dir, name) >= (int)size ? -1 : 0;
}

int st_bundle_save(const st_bundle_t *b, const char *dir, const char *metrics_json, char *errstr,
                   size_t errstr_size)
{
    char path[4096], name[64];
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        st_errstr(errstr, errstr_size, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (path_in(path, sizeof path, dir, "countries.txt") != 0)
        return st_errstr(errstr, errstr_size, "bundle: path too long"), -1;
    FILE *fp = fopen(path, "w");
    if (!fp)
        return st_errstr(errstr, errstr_size, "%s: %s", path, strerror(errno)), -1;
    for (int i = 0; i < b->n_countries; i++)
        fprintf(fp, "%s\n", b->countries[i]);
    if (fclose(fp) != 0)
        return st_errstr(errstr, errstr_size, "%s: write failed", path), -1;
    json_t *nets = json_array();
    for (int i = 0; i < MAX_NETS; i++) {
        if (!b->nn[i])
            continue;
        json_array_append_new(nets, json_integer(i));
        snprintf(name, sizeof name, "net_%d.stm", i);
        path_in(path, sizeof path, dir, name);
        if (st_nn_save(b->nn[i], path, errstr, errstr_size) != 0)
            goto fail;
        snprintf(name, sizeof name, "net_%d_x.scal", i);
        path_in(path, sizeof path, dir, name);
        if (st_scaler_save(b->xs[i], path, errstr, errstr_size) != 0)
            goto fail;
        snprintf(name, sizeof name, "net_%d_y.scal", i);
        path_in(path, sizeof path, dir, name);
        if (st_scaler_save(b->ys[i], path, errstr, errstr_size) != 0)
            goto fail;
    }
    if (b->clusters) {
        path_in(path, sizeof path, dir, "clusters.stm");
        if (st_cluster_save(b->clusters, path, errstr, errstr_size) != 0)
            goto fail;
        path_in(path, sizeof path, dir, "profile.scal");
        if (st_scaler_save(b->profile_scaler, path, errstr, errstr_size) != 0)
            goto fail;
        path_in(path, sizeof path, dir, "user_clusters.tsv");
        fp = fopen(path, "w");
        if (!fp) {
            st_errstr(errstr, errstr_size, "%s: %s", path, strerror(errno));
            goto fail;
        }
        for (size_t i = 0; i < b->n_prof; i++) {
            fprintf(fp, "%s\t%d", b->prof_users[i], b->prof_labels[i]);
            for (int f = 0; f < b->n_pf; f++)
                fprintf(fp, "\t%.17g", b->prof_x[i * (size_t)b->n_pf + (size_t)f]);
            fputc('\n', fp);
        }
        if (fclose(fp) != 0) {
            st_errstr(errstr, errstr_size, "%s: write failed", path);
            goto fail;
        }
    }
    char *spec_text = st_bundle_spec_json(&b->spec);
    json_t *spec = spec_text ? json_loads(spec_text, 0, NULL) : NULL;
    free(spec_text);
    json_t *feats = json_array();
    int nf = b->features;
    for (int f = 0; f < nf; f++)
        json_array_append_new(feats,
                              json_string(b->spec.kind == ST_BUNDLE_SEQ ? seq_feature_names[f]
                                                                        : parity_feature_names[f]));
    json_t *pfs = json_array();
    for (int f = 0; f < b->n_pf; f++)
        json_array_append_new(pfs, json_string(b->pf_name[f]));
    json_t *metrics = metrics_json ? json_loads(metrics_json, 0, NULL) : NULL;
    char hash[20];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)b->data_hash);
    json_t *meta =
        json_pack("{s:i, s:s, s:o, s:s, s:o, s:i, s:i, s:i, s:s, s:o, s:i, s:o, s:o}", "version",
                  ST_BUNDLE_VERSION, "stint_version", STINT_VERSION, "spec",
                  spec ? spec : json_null(), "data_hash", hash, "features", feats, "steps",
                  b->steps, "window", b->spec.kind == ST_BUNDLE_SEQ ? b->spec.window : 1,
                  "country_vocab", ST_BUNDLE_COUNTRY_VOCAB, "target_transform",
                  b->spec.log_target ? "log1p" : "identity", "nets", nets, "k", b->k,
                  "profile_features", pfs, "metrics", metrics ? metrics : json_object());
    path_in(path, sizeof path, dir, "metadata.json");
    if (!meta || json_dump_file(meta, path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
        json_decref(meta);
        st_errstr(errstr, errstr_size, "%s: write failed", path);
        return -1;
    }
    json_decref(meta);
    return 0;
fail:
    json_decref(nets);
    return -1;
}

st_bundle_t *st_bundle_load(const char *dir, char *errstr, size_t errstr_size)
{
    char path[4096], name[64];
    if (path_in(path, sizeof path, dir, "metadata.json") != 0) {
        st_errstr(errstr, errstr_size, "bundle: path too long");
        return NULL;
    }
    json_error_t je;
    json_t *meta = json_load_file(path, 0, &je);
    if (!meta) {
        st_errstr(errstr, errstr_size, "%s: %s", path, je.text);
        return NULL;
    }
    st_bundle_t *b = NULL;
    json_t *spec = json_object_get(meta, "spec");
    json_t *nets = json_object_get(meta, "nets");
    if (json_integer_value(json_object_get(meta, "version")) != ST_BUNDLE_VERSION ||
        !json_is_object(spec) || !json_is_array(nets)) {
        st_errstr(errstr, errstr_size, "%s: not a version %d bundle", path, ST_BUNDLE_VERSION);
        goto fail;
    }
    st_bundle_spec_t s;
    st_bundle_spec_default(&s);
    char *spec_text = json_dumps(spec, JSON_COMPACT);
    int rc = spec_text ? st_bundle_spec_from_json(&s, spec_text, errstr, errstr_size) : -1;
    free(spec_text);
    if (rc != 0)
        goto fail;
    b = bundle_alloc(&s, errstr, errstr_size);
    if (!b)
        goto fail;
    b->data_hash = strtoull(json_string_value(json_object_get(meta, "data_hash"))
                                ? json_string_value(json_object_get(meta, "data_hash"))
                                : "0",
                            NULL, 16);
    path_in(path, sizeof path, dir, "countries.txt");
    FILE *fp = fopen(path, "r");
    if (!fp) {
        st_errstr(errstr, errstr_size, "%s: %s", path, strerror(errno));
        goto fail;
    }
    char line[256];
    int cap = 0;
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\r\n")] = 0;
        if (b->n_countries == cap) {
            cap = cap ? cap * 2 : 64;
            void *p = realloc(b->countries, (size_t)cap * sizeof *b->countries);
            if (!p) {
                fclose(fp);
                st_errstr(errstr, errstr_size, "bundle: out of memory");
                goto fail;
            }
            b->countries = p;
        }
        size_t clen = strlen(line) < COUNTRY_NAME - 1 ? strlen(line) : COUNTRY_NAME - 1;
        memcpy(b->countries[b->n_countries], line, clen);
        b->countries[b->n_countries++][clen] = 0;
    }
    fclose(fp);
    size_t i;
    json_t *v;
    json_array_foreach(nets, i, v)
    {
        int net = (int)json_integer_value(v);
        if (net < 0 || net >= MAX_NETS) {
            st_errstr(errstr, errstr_size, "%s/metadata.json: bad network index %d", dir, net);
            goto fail;
        }
        if (b->nn[net]) {
            st_errstr(errstr, errstr_size, "%s/metadata.json: network %d listed twice", dir, net);
            goto fail;
        }
        snprintf(name, sizeof name, "net_%d.stm", net);
        path_in(path, sizeof path, dir, name);
        if (!(b->nn[net] = st_nn_load(path, errstr, errstr_size)))
            goto fail;
        const st_nn_arch_t *a = st_nn_arch(b->nn[net]);
        if (a->steps != b->steps || a->features != b->features || a->outputs != 1) {
            st_errstr(errstr, errstr_size, "%s: shape %dx%d does not match the metadata", path,
                      a->steps, a->features);
            goto fail;
        }
        snprintf(name, sizeof name, "net_%d_x.scal", net);
        path_in(path, sizeof path, dir, name);
        if (!(b->xs[net] = st_scaler_load(path, errstr, errstr_size)))
            goto fail;
        snprintf(name, sizeof name, "net_%d_y.scal", net);
        path_in(path, sizeof path, dir, name);
        if (!(b->ys[net] = st_scaler_load(path, errstr, errstr_size)))
            goto fail;
        if (st_scaler_dim(b->xs[net]) != b->features || st_scaler_dim(b->ys[net]) != 1) {
            st_errstr(errstr, errstr_size, "%s/net_%d: scaler dimensions do not match", dir, net);
            goto fail;
        }
        if (!(b->ctx[net] = st_nn_ctx_new(b->nn[net], errstr, errstr_size)))
            goto fail;
    }
    if (!b->nn[0]) {
        st_errstr(errstr, errstr_size, "%s: no global network (net_0)", dir);
        goto fail;
    }
    if (json_integer_value(json_object_get(meta, "k")) > 0) {
        path_in(path, sizeof path, dir, "clusters.stm");
        if (!(b->clusters = st_cluster_load(path, errstr, errstr_size)))
            goto fail;
        path_in(path, sizeof path, dir, "profile.scal");
        if (!(b->profile_scaler = st_scaler_load(path, errstr, errstr_size)))
            goto fail;
        if (b->clusters->dim != b->n_pf || st_scaler_dim(b->profile_scaler) != b->n_pf ||
            b->clusters->k > ST_BUNDLE_MAX_CLUSTERS) {
            st_errstr(errstr, errstr_size, "%s: cluster model does not match the metadata", dir);
            goto fail;
        }
        b->k = b->clusters->k;
        path_in(path, sizeof path, dir, "user_clusters.tsv");
        fp = fopen(path, "r");
        if (!fp) {
            st_errstr(errstr, errstr_size, "%s: %s", path, strerror(errno));
            goto fail;
        }
        size_t pcap = 0;
        char big[4096];
        while (fgets(big, sizeof big, fp)) {
            big[strcspn(big, "\r\n")] = 0;
            if (b->n_prof == pcap) {
                pcap = pcap ? pcap * 2 : 256;
                char **u = realloc(b->prof_users, pcap * sizeof *u);
                if (u)
                    b->prof_users = u;
                double *x = realloc(b->prof_x, pcap * (size_t)b->n_pf * sizeof *x);
                if (x)
                    b->prof_x = x;
                int *l = realloc(b->prof_labels, pcap * sizeof *l);
                if (l)
                    b->prof_labels = l;
                if (!u || !x || !l) {
                    fclose(fp);
                    st_errstr(errstr, errstr_size, "bundle: out of memory");
                    goto fail;
                }
            }
            char *save = NULL, *tok = strtok_r(big, "\t", &save);
            char *lab = strtok_r(NULL, "\t", &save);
            if (!tok || !lab)
                continue;
            size_t n = b->n_prof;
            b->prof_labels[n] = atoi(lab);
            for (int f = 0; f < b->n_pf; f++) {
                char *t = strtok_r(NULL, "\t", &save);
                b->prof_x[n * (size_t)b->n_pf + (size_t)f] = t ? strtod(t, NULL) : NAN;
            }
            if (!(b->prof_users[n] = strdup(tok))) {
                fclose(fp);
                st_errstr(errstr, errstr_size, "bundle: out of memory");
                goto fail;
            }
            b->n_prof++;
        }
        fclose(fp);
        for (size_t k = 1; k < b->n_prof; k++) {
            if (strcmp(b->prof_users[k - 1], b->prof_users[k]) >= 0) {
                st_errstr(errstr, errstr_size, "%s: user ids not in ascending order", path);
                goto fail;
            }
        }
    }
    json_decref(meta);
    return b;
fail:
    json_decref(meta);
    st_bundle_destroy(b);
    return NULL;
}
