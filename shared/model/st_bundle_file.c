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
    } else if (numeric && strcmp(key, "window") == 0 && d >= 1 && d < ST_BUNDLE__MAX_STEPS)
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
    for (int i = 0; i < ST_BUNDLE__MAX_NETS; i++) {
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
