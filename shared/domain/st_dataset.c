/* st_dataset.c - sessions + profiles -> one past-only row per session, seeded splits and the
 * report's baselines (see st_dataset.h). */
#include "st_dataset.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_buf.h"
#include "st_err.h"
#include "st_lastfm.h"
#include "st_log.h"
#include "st_rng.h"
#include "st_session.h"

typedef struct {
    int user;
    int64_t start_s;
    double length_s;
    int track_count;
    double unknown_share;
    size_t seq; /* insertion order, so duplicates keep the first added */
} raw_session_t;

struct st_dataset {
    char **user_ids;
    st_dataset_profile_t *profiles;
    int n_users, cap_users;
    int *slots; /* open addressing over user ids: index + 1, 0 = empty */
    size_t n_slots;
    raw_session_t *raw;
    size_t n_raw, cap_raw;
    st_dataset_row_t *rows;
    size_t n_rows;
    size_t *user_first, *user_count;
    int finalized;
    int64_t until_ms;     /* sessions starting at or after are skipped */
    size_t n_after_until; /* ... and counted */
    /* baselines of the last split */
    double *user_mean_s, *user_median_s;
    double global_mean_s, global_median_s;
};

st_dataset_t *st_dataset_new(void)
{
    st_dataset_t *ds = calloc(1, sizeof(st_dataset_t));
    if (ds)
        ds->until_ms = INT64_MAX;
    return ds;
}

void st_dataset_set_until_ms(st_dataset_t *ds, int64_t until_ms)
{
    ds->until_ms = until_ms;
}

size_t st_dataset_n_after_until(const st_dataset_t *ds)
{
    return ds->n_after_until;
}

int64_t st_dataset_start_s_of_ms(int64_t start_ms)
{
    return start_ms >= 0 ? start_ms / 1000 : -((999 - start_ms) / 1000);
}

void st_dataset_destroy(st_dataset_t *ds)
{
    if (!ds)
        return;
    for (int u = 0; u < ds->n_users; u++)
        free(ds->user_ids[u]);
    free(ds->user_ids);
    free(ds->profiles);
    free(ds->slots);
    free(ds->raw);
    free(ds->rows);
    free(ds->user_first);
    free(ds->user_count);
    free(ds->user_mean_s);
    free(ds->user_median_s);
    free(ds);
}

static int rehash(st_dataset_t *ds, size_t n_slots)
{
    int *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return -1;
    for (int u = 0; u < ds->n_users; u++) {
        size_t h = (size_t)st_hash64(ds->user_ids[u], strlen(ds->user_ids[u]), 0) & (n_slots - 1);
        while (slots[h])
            h = (h + 1) & (n_slots - 1);
        slots[h] = u + 1;
    }
    free(ds->slots);
    ds->slots = slots;
    ds->n_slots = n_slots;
    return 0;
}

/* The index of user_id, added when new; -1 on no memory. */
static int user_index(st_dataset_t *ds, const char *user_id)
{
    if (ds->n_slots == 0 && rehash(ds, 1024) != 0)
        return -1;
    size_t h = (size_t)st_hash64(user_id, strlen(user_id), 0) & (ds->n_slots - 1);
    while (ds->slots[h]) {
        int u = ds->slots[h] - 1;
        if (strcmp(ds->user_ids[u], user_id) == 0)
            return u;
        h = (h + 1) & (ds->n_slots - 1);
    }
    if (ds->n_users == ds->cap_users) {
        int cap = ds->cap_users ? ds->cap_users * 2 : 256;
        char **ids = realloc(ds->user_ids, (size_t)cap * sizeof *ids);
        if (!ids)
            return -1;
        ds->user_ids = ids;
        st_dataset_profile_t *p = realloc(ds->profiles, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        ds->profiles = p;
        ds->cap_users = cap;
    }
    char *copy = strdup(user_id);
    if (!copy)
        return -1;
    int u = ds->n_users++;
    ds->user_ids[u] = copy;
    memset(&ds->profiles[u], 0, sizeof ds->profiles[u]);
    ds->profiles[u].age = -1;
    ds->slots[h] = u + 1;
    if ((size_t)ds->n_users * 2 > ds->n_slots && rehash(ds, ds->n_slots * 2) != 0)
        return -1;
    return u;
}

/* Adds a session whose start passed the until check. */
static int add_session(st_dataset_t *ds, const char *user_id, int64_t start_s, double length_s,
                       int track_count, double unknown_share, char *errstr, size_t errstr_size)
{
    /* The bounds a SessionEvent has on the topic path (start >= 0, length <= 1e9 s), and a start
     * before the year 10000 (the last ISO 8601 time a listen can have), so that the features'
     * time arithmetic cannot overflow. */
    if (!user_id || !*user_id || !isfinite(length_s) || length_s < 0 || length_s > 1e9 ||
        track_count < 0 || start_s < 0 || start_s > ST_DATASET_START_S_MAX) {
        st_errstr(errstr, errstr_size,
                  "dataset: bad session (user \"%s\", start %lld s, length %g, tracks %d)",
                  user_id ? user_id : "", (long long)start_s, length_s, track_count);
        return -1;
    }
    int u = user_index(ds, user_id);
    if (u < 0)
        goto oom;
    if (ds->n_raw == ds->cap_raw) {
        size_t cap = ds->cap_raw ? ds->cap_raw * 2 : 4096;
        raw_session_t *r = realloc(ds->raw, cap * sizeof *r);
        if (!r)
            goto oom;
        ds->raw = r;
        ds->cap_raw = cap;
    }
    raw_session_t *s = &ds->raw[ds->n_raw];
    s->user = u;
    s->start_s = start_s;
    s->length_s = st_session_tsv_precision(length_s, ST_SESSION_LENGTH_DECIMALS);
    s->track_count = track_count;
    s->unknown_share = (isfinite(unknown_share) && unknown_share >= 0)
                           ? st_session_tsv_precision(unknown_share, ST_SESSION_SHARE_DECIMALS)
                           : 0.0;
    s->seq = ds->n_raw++;
    return 0;
oom:
    st_errstr(errstr, errstr_size, "dataset: out of memory");
    return -1;
}

int st_dataset_add_session(st_dataset_t *ds, const char *user_id, int64_t start_s, double length_s,
                           int track_count, double unknown_share, char *errstr, size_t errstr_size)
{
    if (ds->finalized) {
        st_errstr(errstr, errstr_size, "dataset: add_session after finalize");
        return -1;
    }
    /* start_s * 1000 >= until_ms, without overflow */
    bool after = ds->until_ms != INT64_MAX &&
                 (start_s >= INT64_MAX / 1000 ||
                  (start_s > INT64_MIN / 1000 && start_s * 1000 >= ds->until_ms));
    if (after) {
        ds->n_after_until++;
        return 0;
    }
    return add_session(ds, user_id, start_s, length_s, track_count, unknown_share, errstr,
                       errstr_size);
}

int st_dataset_add_session_ms(st_dataset_t *ds, const char *user_id, int64_t start_ms,
                              double length_s, int track_count, double unknown_share, char *errstr,
                              size_t errstr_size)
{
    if (ds->finalized) {
        st_errstr(errstr, errstr_size, "dataset: add_session after finalize");
        return -1;
    }
    if (start_ms >= ds->until_ms) {
        ds->n_after_until++;
        return 0;
    }
    return add_session(ds, user_id, st_dataset_start_s_of_ms(start_ms), length_s, track_count,
                       unknown_share, errstr, errstr_size);
}

int st_dataset_add_profile(st_dataset_t *ds, const char *user_id, const st_dataset_profile_t *p,
                           char *errstr, size_t errstr_size)
{
    if (ds->finalized) {
        st_errstr(errstr, errstr_size, "dataset: add_profile after finalize");
        return -1;
    }
    int u = user_index(ds, user_id);
    if (u < 0) {
        st_errstr(errstr, errstr_size, "dataset: out of memory");
        return -1;
    }
    ds->profiles[u] = *p;
    ds->profiles[u].country[sizeof ds->profiles[u].country - 1] = 0;
    return 0;
}

/* Splits line at tabs into at most max fields (in place); returns the count. */
static int split_tabs(char *line, char **f, int max)
{
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p; p++) {
        if (*p == '\t') {
            *p = 0;
            if (n == max)
                return max + 1;
            f[n++] = p + 1;
        }
    }
    return n;
}

int st_dataset_load_sessions(st_dataset_t *ds, const char *path, size_t *bad_lines, char *errstr,
                             size_t errstr_size)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        st_errstr(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096], err[256];
    size_t bad = 0, line_no = 0;
    while (fgets(line, sizeof line, fp)) {
        line_no++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') { /* too long: one bad line, */
            int c;                                             /* not its pieces */
            while ((c = getc(fp)) != EOF && c != '\n')
                ;
            if (bad++ < 20)
                st_log_warn("dataset_bad_line", "file=%s line=%zu reason=too_long", path, line_no);
            continue;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0 || line[0] == '#')
            continue;
        char *f[6], *end;
        int n = split_tabs(line, f, 5);
        int ok = (n == 4 || n == 5) && *f[0];
        int64_t start_s = 0;
        double length_s = 0, share = NAN;
        long tracks = 0;
        if (ok) {
            errno = 0;
            start_s = strtoll(f[1], &end, 10);
            ok = !errno && *end == 0 && end != f[1];
        }
        if (ok) {
            length_s = strtod(f[2], &end);
            ok = *end == 0 && end != f[2];
        }
        if (ok) {
            tracks = strtol(f[3], &end, 10);
            ok = *end == 0 && end != f[3] && tracks >= 0 && tracks < 1000000000L;
        }
        if (ok && n == 5) {
            share = strtod(f[4], &end);
            ok = *end == 0 && end != f[4];
        }
        if (ok)
            ok = st_dataset_add_session(ds, f[0], start_s, length_s, (int)tracks, share, err,
                                        sizeof err) == 0;
        if (!ok) {
            if (ds->finalized) {
                fclose(fp);
                st_errstr(errstr, errstr_size, "dataset: add_session after finalize");
                return -1;
            }
            if (bad++ < 20)
                st_log_warn("dataset_bad_line", "file=%s line=%zu", path, line_no);
        }
    }
    int rd_err = ferror(fp);
    fclose(fp);
    if (rd_err) {
        st_errstr(errstr, errstr_size, "%s: read error", path);
        return -1;
    }
    if (bad_lines)
        *bad_lines = bad;
    return 0;
}

int st_dataset_load_profiles(st_dataset_t *ds, const char *path, size_t *bad_lines, char *errstr,
                             size_t errstr_size)
{
    st_lastfm_reader_t *r = st_lastfm_reader_open(path, ST_LASTFM_PROFILES, errstr, errstr_size);
    if (!r)
        return -1;
    st_lastfm_profile_t p;
    st_err_t err = {0};
    int rc;
    char user[ST_LASTFM_FIELD_MAX + 1];
    while ((rc = st_lastfm_reader_next_profile(r, &p, &err)) == 1) {
        st_dataset_profile_t dp = {0};
        dp.gender = p.gender;
        dp.age = p.age;
        size_t clen = p.country.len < sizeof dp.country - 1 ? p.country.len : sizeof dp.country - 1;
        memcpy(dp.country, p.country.ptr, clen);
        dp.registered_s = p.registered_s;
        memcpy(user, p.user_id.ptr, p.user_id.len);
        user[p.user_id.len] = 0;
        if (st_dataset_add_profile(ds, user, &dp, errstr, errstr_size) != 0) {
            st_lastfm_reader_destroy(r);
            return -1;
        }
    }
    if (bad_lines)
        *bad_lines = (size_t)st_lastfm_reader_stats(r)->bad;
    st_lastfm_reader_destroy(r);
    if (rc < 0) {
        st_errstr(errstr, errstr_size, "%s: %s", path, err.text);
        return -1;
    }
    return 0;
}

typedef struct {
    const char *id;
    int index;
} user_key_t;

static int cmp_user(const void *a, const void *b)
{
    return strcmp(((const user_key_t *)a)->id, ((const user_key_t *)b)->id);
}

static int cmp_raw(const void *a, const void *b)
{
    const raw_session_t *x = a, *y = b;
    if (x->user != y->user)
        return x->user < y->user ? -1 : 1;
    if (x->start_s != y->start_s)
        return x->start_s < y->start_s ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double st_dataset_median(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int st_dataset_finalize(st_dataset_t *ds, char *errstr, size_t errstr_size)
{
    if (ds->finalized)
        return 0;
    if (ds->n_raw == 0) {
        st_errstr(errstr, errstr_size, "dataset: no sessions");
        return -1;
    }
    int nu = ds->n_users;
    int *order = malloc((size_t)nu * sizeof *order);
    int *rank = malloc((size_t)nu * sizeof *rank);
    char **ids = malloc((size_t)nu * sizeof *ids);
    st_dataset_profile_t *profiles = malloc((size_t)nu * sizeof *profiles);
    ds->rows = malloc(ds->n_raw * sizeof *ds->rows);
    ds->user_first = calloc((size_t)nu, sizeof *ds->user_first);
    ds->user_count = calloc((size_t)nu, sizeof *ds->user_count);
    if (!order || !rank || !ids || !profiles || !ds->rows || !ds->user_first || !ds->user_count) {
        free(order);
        free(rank);
        free(ids);
        free(profiles);
        st_errstr(errstr, errstr_size, "dataset: out of memory");
        return -1;
    }
    user_key_t *keys = malloc(((size_t)nu + 1) * sizeof *keys);
    if (!keys) {
        free(order);
        free(rank);
        free(ids);
        free(profiles);
        st_errstr(errstr, errstr_size, "dataset: out of memory");
        return -1;
    }
    for (int u = 0; u < nu; u++)
        keys[u] = (user_key_t){ds->user_ids[u], u};
    qsort(keys, (size_t)nu, sizeof *keys, cmp_user);
    for (int u = 0; u < nu; u++)
        order[u] = keys[u].index;
    free(keys);
    for (int i = 0; i < nu; i++) {
        rank[order[i]] = i;
        ids[i] = ds->user_ids[order[i]];
        profiles[i] = ds->profiles[order[i]];
    }
    free(ds->user_ids);
    free(ds->profiles);
    ds->user_ids = ids;
    ds->profiles = profiles;
    rehash(ds, ds->n_slots);
    for (size_t i = 0; i < ds->n_raw; i++)
        ds->raw[i].user = rank[ds->raw[i].user];
    free(order);
    free(rank);
    qsort(ds->raw, ds->n_raw, sizeof *ds->raw, cmp_raw);

    size_t n = 0, n_earlier = 0;
    double sum = 0;
    for (size_t i = 0; i < ds->n_raw; i++) {
        const raw_session_t *s = &ds->raw[i];
        int first = n == 0 || ds->rows[n - 1].user != s->user;
        if (!first && ds->rows[n - 1].start_s == s->start_s)
            continue; /* duplicate (user, start): the first added wins */
        st_dataset_row_t *r = &ds->rows[n];
        memset(r, 0, sizeof *r);
        r->user = s->user;
        r->start_s = s->start_s;
        r->length_s = s->length_s;
        r->track_count = s->track_count;
        r->unknown_share = s->unknown_share;
        if (first) {
            ds->user_first[s->user] = n;
            n_earlier = 0;
            sum = 0;
            r->gap_s = -1;
        } else {
            const st_dataset_row_t *p = &ds->rows[n - 1];
            r->index = p->index + 1;
            r->prev_length_s = p->length_s;
            r->prev_track_count = p->track_count;
            r->prev_unknown_share = p->unknown_share;
            r->gap_s = (double)(r->start_s - p->start_s) - p->length_s;
            n_earlier++;
            sum += p->length_s;
            r->avg_length_s = sum / (double)n_earlier;
            /* The median of the last ST_SESSION_MEDIAN_WINDOW earlier sessions, the user's rows
             * just before this one (what the sessionizer's OPENED carries). */
            double window[ST_SESSION_MEDIAN_WINDOW];
            size_t m = n_earlier < ST_SESSION_MEDIAN_WINDOW ? n_earlier : ST_SESSION_MEDIAN_WINDOW;
            for (size_t k = 0; k < m; k++) {
                double v = ds->rows[n - m + k].length_s;
                size_t j = k;
                while (j > 0 && window[j - 1] > v) {
                    window[j] = window[j - 1];
                    j--;
                }
                window[j] = v;
            }
            r->median_length_s = m % 2 ? window[m / 2] : 0.5 * (window[m / 2 - 1] + window[m / 2]);
        }
        ds->user_count[s->user]++;
        n++;
    }
    ds->n_rows = n;
    free(ds->raw);
    ds->raw = NULL;
    ds->n_raw = ds->cap_raw = 0;
    ds->finalized = 1;
    return 0;
}

size_t st_dataset_n_rows(const st_dataset_t *ds)
{
    return ds->n_rows;
}

const st_dataset_row_t *st_dataset_rows(const st_dataset_t *ds)
{
    return ds->rows;
}

int st_dataset_n_users(const st_dataset_t *ds)
{
    return ds->n_users;
}

const char *st_dataset_user_id(const st_dataset_t *ds, int user)
{
    return ds->user_ids[user];
}

const st_dataset_profile_t *st_dataset_profile(const st_dataset_t *ds, int user)
{
    return &ds->profiles[user];
}

size_t st_dataset_user_first(const st_dataset_t *ds, int user)
{
    return ds->user_first[user];
}

size_t st_dataset_user_rows(const st_dataset_t *ds, int user)
{
    return ds->user_count[user];
}

uint64_t st_dataset_hash(const st_dataset_t *ds)
{
    uint64_t h = 0x5354494e54ULL;
    for (int u = 0; u < ds->n_users; u++) {
        const st_dataset_profile_t *p = &ds->profiles[u];
        h = st_hash64(ds->user_ids[u], strlen(ds->user_ids[u]), h);
        int64_t v[3] = {p->gender, p->age, p->registered_s};
        h = st_hash64(v, sizeof v, h);
        h = st_hash64(p->country, strlen(p->country), h);
    }
    for (size_t i = 0; i < ds->n_rows; i++) {
        const st_dataset_row_t *r = &ds->rows[i];
        int64_t v[3] = {r->user, r->start_s, r->track_count};
        double d[2] = {r->length_s, r->unknown_share};
        h = st_hash64(v, sizeof v, h);
        h = st_hash64(d, sizeof d, h);
    }
    return h;
}

void st_dataset_split_default(st_dataset_split_cfg_t *cfg)
{
    cfg->kind = ST_DATASET_SPLIT_USER_CUT;
    cfg->test_frac = 0.1;
    cfg->val_frac = 0.1;
    cfg->seed = 1;
}

static int fit_baselines(st_dataset_t *ds)
{
    free(ds->user_mean_s);
    free(ds->user_median_s);
    ds->user_mean_s = calloc((size_t)ds->n_users, sizeof(double));
    ds->user_median_s = calloc((size_t)ds->n_users, sizeof(double));
    double *v = malloc(ds->n_rows * sizeof *v);
    if (!ds->user_mean_s || !ds->user_median_s || !v) {
        free(v);
        return -1;
    }
    size_t nv = 0;
    double sum = 0;
    for (size_t i = 0; i < ds->n_rows; i++) {
        if (ds->rows[i].role == ST_DATASET_TRAIN) {
            v[nv++] = ds->rows[i].length_s;
            sum += ds->rows[i].length_s;
        }
    }
    ds->global_mean_s = nv ? sum / (double)nv : 0;
    ds->global_median_s = nv ? st_dataset_median(v, nv) : 0;
    for (int u = 0; u < ds->n_users; u++) {
        size_t m = 0;
        double s = 0;
        for (size_t i = ds->user_first[u]; i < ds->user_first[u] + ds->user_count[u]; i++) {
            if (ds->rows[i].role == ST_DATASET_TRAIN) {
                v[m++] = ds->rows[i].length_s;
                s += ds->rows[i].length_s;
            }
        }
        ds->user_mean_s[u] = m ? s / (double)m : ds->global_mean_s;
        ds->user_median_s[u] = m ? st_dataset_median(v, m) : ds->global_median_s;
    }
    free(v);
    return 0;
}

int st_dataset_split(st_dataset_t *ds, const st_dataset_split_cfg_t *cfg, char *errstr,
                     size_t errstr_size)
{
    if (!ds->finalized) {
        st_errstr(errstr, errstr_size, "dataset: split before finalize");
        return -1;
    }
    if (!(cfg->test_frac >= 0 && cfg->val_frac >= 0 && cfg->test_frac + cfg->val_frac < 1)) {
        st_errstr(errstr, errstr_size, "dataset: bad split fractions test %g val %g",
                  cfg->test_frac, cfg->val_frac);
        return -1;
    }
    for (size_t i = 0; i < ds->n_rows; i++)
        ds->rows[i].role = ST_DATASET_TRAIN;
    st_rng_t rng;
    st_rng_seed(&rng, cfg->seed);
    if (cfg->kind == ST_DATASET_SPLIT_USER_CUT) {
        int n_active = 0;
        int *users = malloc((size_t)ds->n_users * sizeof *users);
        if (!users)
            goto oom;
        for (int u = 0; u < ds->n_users; u++)
            if (ds->user_count[u] > 0)
                users[n_active++] = u;
        st_rng_shuffle(&rng, users, (size_t)n_active);
        int n_test = (int)floor(cfg->test_frac * n_active + 0.5);
        int n_val = (int)floor(cfg->val_frac * n_active + 0.5);
        for (int i = 0; i < n_test + n_val && i < n_active; i++) {
            int u = users[i];
            size_t cut =
                (size_t)floor((0.5 + 0.5 * st_rng_uniform(&rng)) * (double)ds->user_count[u]);
            st_dataset_role_t role = i < n_test ? ST_DATASET_TEST : ST_DATASET_VAL;
            for (size_t k = cut; k < ds->user_count[u]; k++)
                ds->rows[ds->user_first[u] + k].role = role;
        }
        free(users);
    } else {
        double *starts = malloc(ds->n_rows * sizeof *starts);
        if (!starts)
            goto oom;
        for (size_t i = 0; i < ds->n_rows; i++)
            starts[i] = (double)ds->rows[i].start_s;
        qsort(starts, ds->n_rows, sizeof *starts, cmp_double);
        size_t it = (size_t)floor((1 - cfg->test_frac) * (double)ds->n_rows);
        size_t iv = (size_t)floor((1 - cfg->test_frac - cfg->val_frac) * (double)ds->n_rows);
        double t_test = it < ds->n_rows ? starts[it] : INFINITY;
        double t_val = iv < ds->n_rows ? starts[iv] : INFINITY;
        free(starts);
        for (size_t i = 0; i < ds->n_rows; i++) {
            double s = (double)ds->rows[i].start_s;
            ds->rows[i].role = s >= t_test  ? ST_DATASET_TEST
                               : s >= t_val ? ST_DATASET_VAL
                                            : ST_DATASET_TRAIN;
        }
    }
    if (fit_baselines(ds) != 0)
        goto oom;
    return 0;
oom:
    st_errstr(errstr, errstr_size, "dataset: out of memory");
    return -1;
}

size_t st_dataset_count(const st_dataset_t *ds, st_dataset_role_t role)
{
    size_t n = 0;
    for (size_t i = 0; i < ds->n_rows; i++)
        n += ds->rows[i].role == role;
    return n;
}

void st_dataset_baselines(const st_dataset_t *ds, size_t row, st_dataset_baselines_t *out)
{
    const st_dataset_row_t *r = &ds->rows[row];
    out->user_mean_s = ds->user_mean_s ? ds->user_mean_s[r->user] : NAN;
    out->user_median_s = ds->user_median_s ? ds->user_median_s[r->user] : NAN;
    out->global_median_s = ds->global_median_s;
    out->last_s = r->index > 0 ? r->prev_length_s : ds->global_median_s;
}
