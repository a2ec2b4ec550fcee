/* st_bundle_file.c - a bundle's spec as JSON and key/value words, and the bundle directory
 * (st_bundle_save, st_bundle_load; layout in st_bundle.h). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "st_bundle_impl.h"
#include "st_cluster.h"
#include "st_err.h"
#include "st_scaler.h"

/* The feature names metadata.json lists, in st_bundle__fill_x's order. */
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

/* The spec's keys: one table of every key, its field, its type and the values it allows.
 * st_bundle_spec_set and st_bundle_spec_check check against it, every error message quotes it
 * (st_bundle_spec_allowed), and st_bundle_spec_json writes the spec from it. */
typedef enum { K_TEXT, K_LIST, K_WORD, K_BOOL, K_INT, K_REAL, K_U64 } key_type_t;

typedef struct {
    const char *key;
    key_type_t type;
    size_t off;
    double min, max; /* K_INT, K_REAL, K_U64: the allowed range (K_INT max INT_MAX_D, K_REAL max
                      * INFINITY: no upper bound but the type's); K_LIST: the item count's */
    unsigned char min_open, max_open; /* K_REAL: 1 = the bound itself is not allowed */
    const char *const *words;         /* K_WORD: word i is enum value i; K_LIST: the items */
    int n_words;                      /* K_WORD, K_LIST */
    size_t cap;                       /* K_TEXT, K_LIST: the field's size (text < cap bytes) */
    const char *why;                  /* NULL, or why the bound is what it is */
} spec_key_t;

static const char *const kind_words[] = {"seq", "parity", "gbt"};
static const char *const cell_words[] = {"lstm", "gru"};
static const char *const loss_words[] = {"l1", "l2", "huber"};
static const char *const cluster_words[] = {"none", "kmeans", "spectral"};
static const char *const scale_words[] = {"none", "all", "mixed"};

/* enum fields are read and written as int */
_Static_assert(sizeof(st_bundle_kind_t) == sizeof(int) && sizeof(st_nn_cell_t) == sizeof(int) &&
                   sizeof(st_nn_loss_t) == sizeof(int) &&
                   sizeof(st_bundle_cluster_t) == sizeof(int) &&
                   sizeof(st_bundle_scale_t) == sizeof(int),
               "spec enums are int-sized");

#define OFF(f)    offsetof(st_bundle_spec_t, f)
#define STR_(x)   #x
#define STR(x)    STR_(x)
#define INT_MAX_D 2147483647.0       /* an INT key without an upper bound */
#define U53_MAX   9007199254740991.0 /* 2^53 - 1: every integer up to it is exact in JSON */
#define TEXT(k, f)                                                                                 \
    {                                                                                              \
        k, K_TEXT, OFF(f), 0, 0, 0, 0, NULL, 0, sizeof(((st_bundle_spec_t *)0)->f), NULL           \
    }
#define WORD(k, f, w)                                                                              \
    {                                                                                              \
        k, K_WORD, OFF(f), 0, 0, 0, 0, w, (int)(sizeof w / sizeof w[0]), 0, NULL                   \
    }
#define BOOL(k, f)                                                                                 \
    {                                                                                              \
        k, K_BOOL, OFF(f), 0, 1, 0, 0, NULL, 0, 0, NULL                                            \
    }
#define INT(k, f, lo, hi, why)                                                                     \
    {                                                                                              \
        k, K_INT, OFF(f), lo, hi, 0, 0, NULL, 0, 0, why                                            \
    }
#define REAL(k, f, lo, lo_open, hi, hi_open)                                                       \
    {                                                                                              \
        k, K_REAL, OFF(f), lo, hi, lo_open, hi_open, NULL, 0, 0, NULL                              \
    }

static const spec_key_t spec_keys[] = {
    TEXT("name", name),
    WORD("kind", kind, kind_words),
    INT("window", window, 1, ST_BUNDLE_MAX_WINDOW,
        "an OPENED carries at most " STR(ST_SESSION_RECENT_MAX) " sessions, the W + 1 the model "
                                                                "reads"),
    WORD("cell", cell, cell_words),
    INT("layers", layers, 1, 2, NULL),
    INT("units", units[0], 1, 4096, NULL),
    INT("units2", units[1], 1, 4096, NULL),
    REAL("dropout", dropout, 0, 0, 1, 1),
    BOOL("log_target", log_target),
    WORD("loss", loss, loss_words),
    INT("epochs", epochs, 1, 100000, NULL),
    INT("batch", batch, 1, 1000000, NULL),
    INT("patience", patience, 0, 100000, NULL),
    INT("epoch_rows", epoch_rows, 0, INT_MAX_D, NULL),
    REAL("lr", lr, 0, 1, 10, 1),
    REAL("clip_norm", clip_norm, 0, 0, INFINITY, 0),
    WORD("cluster", cluster, cluster_words),
    INT("k", k, 1, ST_BUNDLE_MAX_CLUSTERS, NULL),
    {"profile_features", K_LIST, OFF(profile_features), 1, ST_BUNDLE_MAX_PROFILE_FEATS, 0, 0,
     st_bundle__pf_names, ST_BUNDLE__PF_COUNT, sizeof(((st_bundle_spec_t *)0)->profile_features),
     NULL},
    BOOL("seed_filters", seed_filters),
    INT("min_cluster_users", min_cluster_users, 1, INT_MAX_D, NULL),
    WORD("scaling", scaling, scale_words),
    INT("mixed_max_users", mixed_max_users, 0, INT_MAX_D, NULL),
    INT("trees", trees, 1, 100000, NULL),
    INT("depth", depth, 1, 20, NULL),
    REAL("eta", eta, 0, 1, 1, 0),
    INT("threads", threads, 1, 256, NULL),
    INT("members", members, 1, ST_BUNDLE_MAX_MEMBERS, NULL),
    {"seed", K_U64, OFF(seed), 0, U53_MAX, 0, 0, NULL, 0, 0, "2^53 - 1, exact in JSON"},
};
#define N_KEYS ((int)(sizeof spec_keys / sizeof spec_keys[0]))

int st_bundle_spec_n_keys(void)
{
    return N_KEYS;
}

const char *st_bundle_spec_key(int i)
{
    return i >= 0 && i < N_KEYS ? spec_keys[i].key : NULL;
}

static const spec_key_t *find_key(const char *key)
{
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(spec_keys[i].key, key) == 0)
            return &spec_keys[i];
    return NULL;
}

/* A bound as text: integers without a fraction, others as %g. */
static void bound(char *buf, size_t size, double v)
{
    if (v == floor(v) && fabs(v) <= U53_MAX)
        snprintf(buf, size, "%.0f", v);
    else
        snprintf(buf, size, "%g", v);
}

/* The words joined: "a, b or c". */
static void join_words(char *buf, size_t size, const char *const *w, int n, const char *last)
{
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < n && len < size; i++) {
        const char *sep = i == 0 ? "" : i == n - 1 ? last : ", ";
        int m = snprintf(buf + len, size - len, "%s%s", sep, w[i]);
        if (m < 0)
            break;
        len += (size_t)m;
    }
}

static void allowed_of(const spec_key_t *k, char *buf, size_t size)
{
    char lo[32], hi[32], words[256];
    bound(lo, sizeof lo, k->min);
    bound(hi, sizeof hi, k->max);
    switch (k->type) {
    case K_TEXT:
        snprintf(buf, size, "text of at most %zu bytes", k->cap - 1);
        break;
    case K_LIST:
        join_words(words, sizeof words, k->words, k->n_words, ", ");
        snprintf(buf, size, "a comma-separated list of %s to %s of: %s", lo, hi, words);
        break;
    case K_WORD:
        join_words(words, sizeof words, k->words, k->n_words, " or ");
        snprintf(buf, size, "%s", words);
        break;
    case K_BOOL:
        snprintf(buf, size, "true or false (or a number: 0 false, else true)");
        break;
    case K_INT:
    case K_U64:
        if (k->max == INT_MAX_D)
            snprintf(buf, size, "an integer >= %s", lo);
        else
            snprintf(buf, size, "an integer from %s to %s%s%s%s", lo, hi, k->why ? " (" : "",
                     k->why ? k->why : "", k->why ? ")" : "");
        break;
    case K_REAL:
        if (isinf(k->max))
            snprintf(buf, size, "a number %s %s", k->min_open ? ">" : ">=", lo);
        else
            snprintf(buf, size, "a number %s %s and %s %s", k->min_open ? ">" : ">=", lo,
                     k->max_open ? "<" : "<=", hi);
        break;
    }
}

int st_bundle_spec_allowed(const char *key, char *buf, size_t size)
{
    const spec_key_t *k = find_key(key);
    if (!k)
        return -1;
    allowed_of(k, buf, size);
    return 0;
}

/* The list's items, each one of k->words, at most k->max of them; the count or -1. */
static int list_items(const spec_key_t *k, const char *value)
{
    char buf[256];
    if (strlen(value) >= sizeof buf)
        return -1;
    snprintf(buf, sizeof buf, "%s", value);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
        int found = 0;
        for (int i = 0; i < k->n_words && !found; i++)
            found = strcmp(tok, k->words[i]) == 0;
        if (!found || ++n > k->max)
            return -1;
    }
    return n;
}

/* Checks value against k; on success *num holds the number (K_INT, K_REAL, K_U64, K_BOOL 0/1)
 * or the word's index (K_WORD). */
static int parse_value(const spec_key_t *k, const char *value, double *num)
{
    char *end;
    double d = strtod(value, &end);
    int numeric = *value && *end == 0 && isfinite(d);
    switch (k->type) {
    case K_TEXT:
        return strlen(value) < k->cap ? 0 : -1;
    case K_LIST:
        return strlen(value) < k->cap && list_items(k, value) >= k->min ? 0 : -1;
    case K_WORD:
        for (int i = 0; i < k->n_words; i++)
            if (strcmp(value, k->words[i]) == 0) {
                *num = i;
                return 0;
            }
        return -1;
    case K_BOOL:
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0 && !numeric)
            return -1;
        *num = strcmp(value, "true") == 0 || (numeric && d != 0);
        return 0;
    case K_INT:
    case K_U64:
        if (!numeric || d != floor(d) || d < k->min || d > k->max)
            return -1;
        *num = d;
        return 0;
    case K_REAL:
        d = (double)(float)d; /* the value the float field will hold */
        if (!numeric || !isfinite(d) || (k->min_open ? d <= k->min : d < k->min) ||
            (k->max_open ? d >= k->max : d > k->max))
            return -1;
        *num = d;
        return 0;
    }
    return -1;
}

/* The message about a refused value (quoted: text as given; unquoted: a JSON value). */
static int refused(const spec_key_t *k, const char *value, int quote, char *errstr,
                   size_t errstr_size)
{
    char allowed[512];
    allowed_of(k, allowed, sizeof allowed);
    return st_errstr(errstr, errstr_size, "bundle spec: %s=%s%s%s is not %s", k->key,
                     quote ? "\"" : "", value, quote ? "\"" : "", allowed);
}

static int bad_value(const spec_key_t *k, const char *value, char *errstr, size_t errstr_size)
{
    return refused(k, value, 1, errstr, errstr_size);
}

static int unknown_key(const char *key, char *errstr, size_t errstr_size)
{
    char keys[512];
    const char *names[N_KEYS];
    for (int i = 0; i < N_KEYS; i++)
        names[i] = spec_keys[i].key;
    join_words(keys, sizeof keys, names, N_KEYS, ", ");
    return st_errstr(errstr, errstr_size, "bundle spec: unknown key \"%s\" (keys: %s)", key, keys);
}

int st_bundle_spec_set(st_bundle_spec_t *s, const char *key, const char *value, char *errstr,
                       size_t errstr_size)
{
    const spec_key_t *k = find_key(key);
    if (!k)
        return unknown_key(key, errstr, errstr_size);
    double num = 0;
    if (parse_value(k, value, &num) != 0)
        return bad_value(k, value, errstr, errstr_size);
    char *field = (char *)s + k->off;
    switch (k->type) {
    case K_TEXT:
    case K_LIST:
        snprintf(field, k->cap, "%s", value);
        break;
    case K_WORD:
    case K_BOOL:
    case K_INT: {
        int v = (int)num;
        memcpy(field, &v, sizeof v);
        break;
    }
    case K_REAL: {
        float v = (float)num;
        memcpy(field, &v, sizeof v);
        break;
    }
    case K_U64: {
        uint64_t v = (uint64_t)num;
        memcpy(field, &v, sizeof v);
        break;
    }
    }
    return 0;
}

/* A field's value as the text st_bundle_spec_set takes (an enum out of range as its number). */
static void field_text(const st_bundle_spec_t *s, const spec_key_t *k, char *buf, size_t size)
{
    const char *field = (const char *)s + k->off;
    int i;
    float f;
    uint64_t u;
    switch (k->type) {
    case K_TEXT:
    case K_LIST:
        snprintf(buf, size, "%.*s", (int)strnlen(field, k->cap), field);
        break;
    case K_WORD:
        memcpy(&i, field, sizeof i);
        if (i >= 0 && i < k->n_words)
            snprintf(buf, size, "%s", k->words[i]);
        else
            snprintf(buf, size, "%d", i);
        break;
    case K_BOOL:
    case K_INT:
        memcpy(&i, field, sizeof i);
        snprintf(buf, size, "%d", i);
        break;
    case K_REAL:
        memcpy(&f, field, sizeof f);
        snprintf(buf, size, "%.9g", (double)f);
        break;
    case K_U64:
        memcpy(&u, field, sizeof u);
        snprintf(buf, size, "%llu", (unsigned long long)u);
        break;
    }
}

int st_bundle_spec_check(const st_bundle_spec_t *s, char *errstr, size_t errstr_size)
{
    for (int i = 0; i < N_KEYS; i++) {
        char text[256];
        double num;
        field_text(s, &spec_keys[i], text, sizeof text);
        if (parse_value(&spec_keys[i], text, &num) != 0)
            return bad_value(&spec_keys[i], text, errstr, errstr_size);
    }
    if (s->kind == ST_BUNDLE_GBT && s->members > 1)
        return st_errstr(errstr, errstr_size,
                         "bundle spec: members=%d needs networks (kind seq or parity); a gbt "
                         "bundle is one model",
                         s->members);
    return 0;
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
    json_t *o = json_object();
    int ok = o != NULL;
    for (int i = 0; ok && i < N_KEYS; i++) {
        const spec_key_t *k = &spec_keys[i];
        const char *field = (const char *)s + k->off;
        int v;
        float f;
        uint64_t u;
        json_t *j = NULL;
        switch (k->type) {
        case K_TEXT:
        case K_LIST:
            j = json_stringn(field, strnlen(field, k->cap));
            break;
        case K_WORD:
            memcpy(&v, field, sizeof v);
            j = v >= 0 && v < k->n_words ? json_string(k->words[v]) : json_integer(v);
            break;
        case K_BOOL:
            memcpy(&v, field, sizeof v);
            j = json_boolean(v);
            break;
        case K_INT:
            memcpy(&v, field, sizeof v);
            j = json_integer(v);
            break;
        case K_REAL:
            memcpy(&f, field, sizeof f);
            j = json_real(f2d(f));
            break;
        case K_U64:
            memcpy(&u, field, sizeof u);
            j = json_integer((json_int_t)u);
            break;
        }
        ok = j && json_object_set_new(o, k->key, j) == 0;
    }
    char *text = ok ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(o);
    return text;
}

int st_bundle_spec_from_json(st_bundle_spec_t *s, const char *json_text, char *errstr,
                             size_t errstr_size)
{
    json_error_t je;
    json_t *o = json_loads(json_text, JSON_REJECT_DUPLICATES, &je);
    if (!o || !json_is_object(o)) {
        if (o)
            st_errstr(errstr, errstr_size, "bundle spec: not a JSON object of spec keys");
        else
            st_errstr(errstr, errstr_size, "bundle spec: JSON line %d column %d: %s", je.line,
                      je.column, je.text);
        json_decref(o);
        return -1;
    }
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(o, key, v)
    {
        char buf[512];
        if (json_is_string(v))
            snprintf(buf, sizeof buf, "%s", json_string_value(v));
        else if (json_is_integer(v))
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
            snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
        else if (json_is_boolean(v))
            snprintf(buf, sizeof buf, "%s", json_is_true(v) ? "true" : "false");
        else {
            /* null, an array or an object: no key takes one */
            const spec_key_t *k = find_key(key);
            char *dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            if (!k)
                unknown_key(key, errstr, errstr_size);
            else
                refused(k, dump ? dump : "?", 0, errstr, errstr_size);
            free(dump);
            rc = -1;
            break;
        }
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

/* The file of network net's member m: net_N.stm for the first (as before members), then
 * net_N_mM.stm. */
static void member_file(char *name, size_t size, int net, int m)
{
    if (m == 0)
        snprintf(name, size, "net_%d.stm", net);
    else
        snprintf(name, size, "net_%d_m%d.stm", net, m);
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
    if (b->gbt) {
        path_in(path, sizeof path, dir, "gbt.stm");
        if (st_gbt_save(b->gbt, path, errstr, errstr_size) != 0)
            goto fail;
    }
    for (int i = 0; i < ST_BUNDLE__MAX_NETS; i++) {
        if (!b->nn[i][0])
            continue;
        json_array_append_new(nets, json_integer(i));
        for (int m = 0; m < b->spec.members; m++) {
            member_file(name, sizeof name, i, m);
            path_in(path, sizeof path, dir, name);
            if (st_nn_save(b->nn[i][m], path, errstr, errstr_size) != 0)
                goto fail;
        }
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
    int nf = b->gbt ? b->gbt_cols : b->features;
    for (int f = 0; f < nf; f++) {
        char fname[64];
        if (b->gbt)
            st_bundle_gbt_feature_name(b, f, fname, sizeof fname);
        else
            snprintf(fname, sizeof fname, "%s",
                     b->spec.kind == ST_BUNDLE_SEQ ? seq_feature_names[f]
                                                   : parity_feature_names[f]);
        json_array_append_new(feats, json_string(fname));
    }
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
                  b->steps, "window", b->spec.kind != ST_BUNDLE_PARITY ? b->spec.window : 1,
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
    b = st_bundle__alloc(&s, errstr, errstr_size);
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
        size_t clen =
            strlen(line) < ST_BUNDLE__COUNTRY_NAME - 1 ? strlen(line) : ST_BUNDLE__COUNTRY_NAME - 1;
        memcpy(b->countries[b->n_countries], line, clen);
        b->countries[b->n_countries++][clen] = 0;
    }
    fclose(fp);
    size_t i;
    json_t *v;
    json_array_foreach(nets, i, v)
    {
        int net = (int)json_integer_value(v);
        if (net < 0 || net >= ST_BUNDLE__MAX_NETS) {
            st_errstr(errstr, errstr_size, "%s/metadata.json: bad network index %d", dir, net);
            goto fail;
        }
        if (b->nn[net][0]) {
            st_errstr(errstr, errstr_size, "%s/metadata.json: network %d listed twice", dir, net);
            goto fail;
        }
        for (int m = 0; m < b->spec.members; m++) {
            member_file(name, sizeof name, net, m);
            path_in(path, sizeof path, dir, name);
            if (!(b->nn[net][m] = st_nn_load(path, errstr, errstr_size)))
                goto fail;
            const st_nn_arch_t *a = st_nn_arch(b->nn[net][m]);
            if (a->steps != b->steps || a->features != b->features || a->outputs != 1) {
                st_errstr(errstr, errstr_size, "%s: shape %dx%d does not match the metadata", path,
                          a->steps, a->features);
                goto fail;
            }
            if (!(b->ctx[net][m] = st_nn_ctx_new(b->nn[net][m], errstr, errstr_size)))
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
    }
    if (b->spec.kind == ST_BUNDLE_GBT) {
        if (json_array_size(nets) > 0 || json_integer_value(json_object_get(meta, "k")) != 0) {
            st_errstr(errstr, errstr_size,
                      "%s/metadata.json: a gbt bundle has no networks or clusters", dir);
            goto fail;
        }
        path_in(path, sizeof path, dir, "gbt.stm");
        if (!(b->gbt = st_gbt_load(path, errstr, errstr_size)))
            goto fail;
        if (st_gbt_cols(b->gbt) != b->gbt_cols) {
            st_errstr(errstr, errstr_size, "%s: %d columns, window %d needs %d", path,
                      st_gbt_cols(b->gbt), b->spec.window, b->gbt_cols);
            goto fail;
        }
    } else if (!b->nn[0][0]) {
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
