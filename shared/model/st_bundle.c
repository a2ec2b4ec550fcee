/* st_bundle.c - serving a model bundle: spec defaults, the bundle's lifetime, the network input of
 * a session (shared with training), prediction and cluster lookup (see st_bundle.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_bundle_impl.h"
#include "st_cluster.h"
#include "st_err.h"
#include "st_scaler.h"

#define YEAR_S 31556952.0 /* 365.2425 days */
#define ST_PI  3.14159265358979323846

const char *const st_bundle__pf_names[ST_BUNDLE__PF_COUNT] = {
    "mean", "median", "max", "sessions", "tracks", "gender", "age", "country", "registered"};

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
    s->epoch_rows = 262144;
    s->lr = 2e-3f;
    s->clip_norm = 1.0f;
    s->cluster = ST_BUNDLE_CLUSTER_NONE;
    s->k = 5;
    snprintf(s->profile_features, sizeof s->profile_features, "mean,median,sessions");
    s->min_cluster_users = 10;
    s->scaling = ST_BUNDLE_SCALE_ALL;
    s->mixed_max_users = 200;
    s->trees = 1000;
    s->depth = 6;
    s->eta = 0.05f;
    s->threads = 1;
    s->members = 1;
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
    s->epoch_rows = 0; /* the seed's epochs: every row */
    s->lr = 1e-3f;
    s->clip_norm = 0;
    s->epochs = 30;
    s->cluster = ST_BUNDLE_CLUSTER_KMEANS;
    s->seed_filters = 1;
    s->min_cluster_users = 31; /* the seed: one model per cluster with > 30 users */
    s->scaling = ST_BUNDLE_SCALE_MIXED;
}

void st_bundle_spec_gbt(st_bundle_spec_t *s)
{
    st_bundle_spec_default(s);
    snprintf(s->name, sizeof s->name, "gbt");
    s->kind = ST_BUNDLE_GBT;
    s->patience = 50;
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
    for (int i = 0; i < ST_BUNDLE__MAX_NETS; i++) {
        for (int m = 0; m < ST_BUNDLE_MAX_MEMBERS; m++) {
            st_nn_ctx_destroy(b->ctx[i][m]);
            st_nn_destroy(b->nn[i][m]);
        }
        st_scaler_destroy(b->xs[i]);
        st_scaler_destroy(b->ys[i]);
        if (b->has_hist[i])
            st_nn_history_free(&b->hist[i]);
    }
    st_gbt_destroy(b->gbt);
    free(b->gbt_row);
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
        for (int i = 0; i < ST_BUNDLE__PF_COUNT; i++)
            if (strcmp(tok, st_bundle__pf_names[i]) == 0)
                f = i;
        if (f < 0 || b->n_pf == ST_BUNDLE_MAX_PROFILE_FEATS) {
            st_errstr(errstr, errstr_size, "bundle: unknown profile feature \"%s\" (use %s)", tok,
                      "mean, median, max, sessions, tracks, gender, age, country, registered");
            return -1;
        }
        b->pf_name[b->n_pf] = st_bundle__pf_names[f];
        b->pf[b->n_pf++] = f;
    }
    if (b->n_pf == 0) {
        st_errstr(errstr, errstr_size, "bundle: no profile features");
        return -1;
    }
    return 0;
}

st_bundle_t *st_bundle__alloc(const st_bundle_spec_t *spec, char *errstr, size_t errstr_size)
{
    if (st_bundle_spec_check(spec, errstr, errstr_size) != 0)
        return NULL;
    st_bundle_t *b = calloc(1, sizeof *b);
    if (!b) {
        st_errstr(errstr, errstr_size, "bundle: out of memory");
        return NULL;
    }
    b->spec = *spec;
    int parity = spec->kind == ST_BUNDLE_PARITY;
    b->steps = parity ? 1 : spec->window + 1;
    b->features = parity ? ST_BUNDLE_PARITY_FEATURES : ST_BUNDLE_SEQ_FEATURES;
    b->xbuf = malloc((size_t)b->steps * (size_t)b->features * sizeof *b->xbuf);
    if (spec->kind == ST_BUNDLE_GBT) {
        b->gbt_cols = spec->window + ST_BUNDLE__GBT_TAIL;
        b->gbt_row = malloc((size_t)b->gbt_cols * sizeof *b->gbt_row);
    }
    if (!b->xbuf || (b->gbt_cols && !b->gbt_row)) {
        st_errstr(errstr, errstr_size, "bundle: out of memory");
        st_bundle_destroy(b);
        return NULL;
    }
    if (spec->kind == ST_BUNDLE_GBT && spec->cluster != ST_BUNDLE_CLUSTER_NONE) {
        st_errstr(errstr, errstr_size, "bundle spec: kind=gbt takes no clustering (cluster=none)");
        st_bundle_destroy(b);
        return NULL;
    }
    if (parse_profile_features(b, errstr, errstr_size) != 0) {
        st_bundle_destroy(b);
        return NULL;
    }
    return b;
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

double st_bundle__gender_value(char g)
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

/* Mean and median of the user's earlier sessions: given (training's row and the predictor always
 * give both: it serves the baseline for an event without them), or else approximated from the
 * last <= ST_BUNDLE__MAX_STEPS recent, which is not what training computed. */
static void history_stats(const st_bundle_input_t *in, double *mean, double *median)
{
    *mean = in->mean_length_s;
    *median = in->median_length_s;
    if (isfinite(*mean) && isfinite(*median))
        return;
    double v[ST_BUNDLE__MAX_STEPS];
    int n = in->n_recent < ST_BUNDLE__MAX_STEPS ? in->n_recent : ST_BUNDLE__MAX_STEPS;
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
void st_bundle__fill_x(const st_bundle_t *b, const st_bundle_input_t *in, float *x, int *length)
{
    int F = b->features;
    memset(x, 0, (size_t)b->steps * (size_t)F * sizeof *x);
    double mean, median;
    history_stats(in, &mean, &median);
    int cid = st_bundle_country_id(b, in->country);
    if (b->spec.kind == ST_BUNDLE_PARITY) {
        x[0] = (float)st_bundle__gender_value(in->gender);
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
    ctxv[1] = (float)st_bundle__gender_value(in->gender);
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
            /* The gap as training's row has it, from whole-second starts (the earlier steps'
             * formula); in->gap_s, from millisecond times at serving, only without starts. */
            int last = in->n_recent - 1;
            double gap = in->starts_s && last >= 0
                             ? (double)(in->start_s - in->starts_s[last]) - in->lengths_s[last]
                             : in->gap_s;
            s[4] = (float)lpos(gap);
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
    st_bundle__fill_x(b, in, x, steps);
    return (int)n;
}

void st_bundle_input_from_row(const st_bundle_t *b, const st_dataset_t *ds, size_t row,
                              st_bundle_input_t *in, double *recent_lengths_s,
                              int64_t *recent_starts_s, int *recent_tracks, double *recent_unknown)
{
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    const st_dataset_row_t *r = &rows[row];
    const st_dataset_profile_t *p = st_dataset_profile(ds, r->user);
    /* W + 1 for the oldest step's gap */
    int want = b->spec.kind != ST_BUNDLE_PARITY ? b->steps : 1;
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

static double length_of(const st_bundle_t *b, double y)
{
    double v = b->spec.log_target ? expm1(y) : y;
    return v > 0 ? v : 0;
}

/* The gbt row's columns after the W lags: (step, feature) of the SEQ input, step -1 the newest
 * earlier session, 0 the predicted one. */
static const struct {
    int step, feature;
    const char *name;
} gbt_tail[ST_BUNDLE__GBT_TAIL] = {{-1, 2, "prev_log1p_track_count"},
                                   {-1, 3, "prev_unknown_share"},
                                   {-1, 4, "prev_log1p_gap_s"},
                                   {0, 4, "log1p_gap_s"},
                                   {0, 5, "hour_sin"},
                                   {0, 6, "hour_cos"},
                                   {0, 7, "weekday_sin"},
                                   {0, 8, "weekday_cos"},
                                   {0, 0, "country_id"},
                                   {0, 10, "gender"},
                                   {0, 11, "age"},
                                   {0, 12, "account_age_years"},
                                   {0, 13, "log1p_median_length_s"},
                                   {0, 14, "log1p_mean_length_s"},
                                   {0, 15, "log1p_sessions"}};

void st_bundle__gbt_flatten(const st_bundle_t *b, const float *x, int len, float *row)
{
    int F = b->features, W = b->steps - 1, first = b->steps - len; /* first valid step */
    for (int t = 0; t < W; t++)
        row[t] = t >= first ? x[(size_t)t * (size_t)F + 1] : NAN;
    for (int c = 0; c < ST_BUNDLE__GBT_TAIL; c++) {
        int t = W + gbt_tail[c].step;
        row[W + c] = t >= first ? x[(size_t)t * (size_t)F + (size_t)gbt_tail[c].feature] : NAN;
    }
}

int st_bundle_gbt_cols(const st_bundle_t *b)
{
    return b->gbt_cols;
}

int st_bundle_gbt_feature_name(const st_bundle_t *b, int c, char *buf, size_t size)
{
    int W = b->steps - 1;
    if (c < 0 || c >= b->gbt_cols)
        return -1;
    if (c < W)
        snprintf(buf, size, "log1p_length_s_lag%d", W - c);
    else
        snprintf(buf, size, "%s", gbt_tail[c - W].name);
    return 0;
}

int st_bundle_gbt_row(st_bundle_t *b, const st_bundle_input_t *in, float *row)
{
    if (b->spec.kind != ST_BUNDLE_GBT)
        return -1;
    int len;
    st_bundle__fill_x(b, in, b->xbuf, &len);
    st_bundle__gbt_flatten(b, b->xbuf, len, row);
    return b->gbt_cols;
}

int st_bundle_gbt_gain(const st_bundle_t *b, double *gain, char *errstr, size_t errstr_size)
{
    if (!b->gbt)
        return st_errstr(errstr, errstr_size, "bundle: not a gbt bundle");
    return st_gbt_gain(b->gbt, gain, errstr, errstr_size);
}

int st_bundle_predict(st_bundle_t *b, const st_bundle_input_t *in, double *length_s)
{
    if (b->gbt) {
        float y;
        st_bundle_gbt_row(b, in, b->gbt_row);
        if (st_gbt_predict(b->gbt, b->gbt_row, &y) != 0 || !isfinite(y))
            return -1;
        *length_s = length_of(b, y);
        return 0;
    }
    int net =
        (in->cluster >= 0 && in->cluster < b->k && b->nn[in->cluster + 1][0]) ? in->cluster + 1 : 0;
    int len;
    st_bundle__fill_x(b, in, b->xbuf, &len);
    st_scaler_transform(b->xs[net], b->xbuf, (size_t)b->steps);
    /* the members' mean in the scaled target, summed in member order */
    double sum = 0;
    for (int m = 0; m < b->spec.members; m++) {
        float o;
        st_nn_ctx_predict(b->ctx[net][m], b->xbuf, len, &o);
        sum += o;
    }
    float out = (float)(sum / b->spec.members);
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
    return (net >= 0 && net < ST_BUNDLE__MAX_NETS && b->has_hist[net]) ? &b->hist[net] : NULL;
}

double st_bundle_target_scale(const st_bundle_t *b, int net)
{
    if (net < 0 || net >= ST_BUNDLE__MAX_NETS || !b->ys[net])
        return NAN;
    return st_scaler_scale(b->ys[net], 0);
}

int st_bundle_net_users(const st_bundle_t *b, int cluster)
{
    int net = cluster + 1;
    int trained = net >= 0 && net < ST_BUNDLE__MAX_NETS && (b->nn[net][0] || (net == 0 && b->gbt));
    return trained ? b->net_users[net] : 0;
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
