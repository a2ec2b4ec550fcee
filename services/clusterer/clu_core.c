/* clu_core.c - the clusterer's batch logic (see clu_core.h). */
#include "clu_core.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clu_recent.h"
#include "ml/st_cluster.h"
#include "ml/st_kmeans.h"
#include "st_buf.h"
#include "st_log.h"
#include "st_metrics.h"
#include "st_records.h"
#include "st_time.h"

#define CLU_USER_MAX 128
#define CLU_MED_MAX  1024
#define CLU_PF_MAX   ST_BUNDLE_MAX_PROFILE_FEATS

typedef struct {
    double n, sum_s, max_s, tracks;
    int64_t last_start_ms; /* start of the last CLOSED counted (field ls), -1 none */
    char gender;
    int age;
    char country[64];
    int64_t registered_s;
    double *lens; /* last median_window lengths, oldest first */
    int n_lens;
} clu_prof_t;

typedef struct {
    char id[CLU_USER_MAX + 1];
    int64_t applied_s[8], applied_p[8]; /* sessions / profiles topic: partition -> offset */
    int32_t part_s[8], part_p[8];
    int n_s, n_p;
    clu_prof_t prof;
    int cluster; /* current assignment (-2 none) */
    bool cold;
    char version[ST_BWATCH_VERSION_MAX];
    int first_reply;
} clu_user_t;

typedef struct {
    int user;
    bool is_profile, skip, assign;
    int32_t partition;
    int64_t offset;
    char op; /* S (closed session), P (profile), - (only the marker moves) */
    double length_s;
    int tracks;
    char gender;
    int age;
    char country[64];
    int64_t registered_s;
    int64_t start_ms;
    int cluster;
    bool cold;
} clu_event_t;

struct clu {
    clu_config_t cfg;
    st_redis_t *redis;
    st_redis_script_t *script;
    st_bwatch_t *model;
    st_avro_codec_t *sess_codec, *prof_codec, *out_codec;
    st_rec_session_event_t ev_rec; /* the decoded SessionEvent (reused) */
    st_buf_t enc;
    clu_user_t *users;
    int n_users, cap_users;
    clu_event_t *ev;
    size_t n_ev, cap_ev;
    bool pending;
    clu_recent_t *recent; /* profiles of recently active users, for re-fits */
    int64_t next_refit_ms;
    int refits;
    st_metric_t *m_changes, *m_cold, *m_refits, *m_refit_inertia, *m_refit_users, *m_replayed,
        *m_copies;
};

/* KEYS: applied, prof, len, cluster, profile. ARGV: partition, offset, op (S|P|-), then for S:
 * length_s, tracks, median_window, start_ms; for P: gender, age, country, registered_s; then
 * assign (0/1), cluster, cold, version. A session at or before the profile's ls (the start of
 * the last one counted) is not counted again: the sessionizer re-emits its events at new offsets
 * after a crash. A profile also replaces <prefix>:u:{user}:profile, the hash the
 * sessionizer joins into OPENED events: gender (m|f), age, country, registered_ms, known fields
 * only. */
static const char apply_lua[] =
    "local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')\n"
    "if tonumber(ARGV[2]) <= last then return 0 end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "local a = 4\n"
    "if ARGV[3] == 'S' then\n"
    "  local len = tonumber(ARGV[4])\n"
    "  local ls = tonumber(redis.call('HGET', KEYS[2], 'ls') or '-1')\n"
    "  if tonumber(ARGV[7]) > ls then\n"
    "    redis.call('HINCRBY', KEYS[2], 'n', 1)\n"
    "    redis.call('HINCRBYFLOAT', KEYS[2], 'sum_s', ARGV[4])\n"
    "    redis.call('HINCRBY', KEYS[2], 'tracks', ARGV[5])\n"
    "    local mx = tonumber(redis.call('HGET', KEYS[2], 'max_s') or '0')\n"
    "    if len > mx then redis.call('HSET', KEYS[2], 'max_s', ARGV[4]) end\n"
    "    redis.call('HSET', KEYS[2], 'ls', ARGV[7])\n"
    "    redis.call('RPUSH', KEYS[3], ARGV[4])\n"
    "    redis.call('LTRIM', KEYS[3], -tonumber(ARGV[6]), -1)\n"
    "  end\n"
    "  a = 8\n"
    "elseif ARGV[3] == 'P' then\n"
    "  redis.call('HSET', KEYS[2], 'gender', ARGV[4], 'age', ARGV[5], 'country', ARGV[6],\n"
    "             'registered_s', ARGV[7])\n"
    "  local pf = {}\n"
    "  if ARGV[4] == 'm' or ARGV[4] == 'f' then pf[#pf + 1] = 'gender'; pf[#pf + 1] = ARGV[4] end\n"
    "  if tonumber(ARGV[5]) >= 0 then pf[#pf + 1] = 'age'; pf[#pf + 1] = ARGV[5] end\n"
    "  if ARGV[6] ~= '' then pf[#pf + 1] = 'country'; pf[#pf + 1] = ARGV[6] end\n"
    "  if tonumber(ARGV[7]) > 0 then\n"
    "    pf[#pf + 1] = 'registered_ms'; pf[#pf + 1] = tostring(tonumber(ARGV[7]) * 1000)\n"
    "  end\n"
    "  redis.call('DEL', KEYS[5])\n"
    "  if #pf > 0 then redis.call('HSET', KEYS[5], unpack(pf)) end\n"
    "  a = 8\n"
    "end\n"
    "if ARGV[a] == '1' then\n"
    "  redis.call('HSET', KEYS[4], 'cluster', ARGV[a + 1], 'cold', ARGV[a + 2], 'version',\n"
    "             ARGV[a + 3])\n"
    "end\n"
    "return 1\n";

clu_t *clu_new(const clu_config_t *cfg, st_redis_t *redis, st_avro_registry_t *reg,
               st_bwatch_t *model, char *errstr, size_t errstr_size)
{
    clu_t *c = calloc(1, sizeof *c);
    if (!c) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    c->redis = redis;
    c->model = model;
    c->script = st_redis_script(redis, apply_lua);
    if (!(c->sess_codec = st_avro_codec_new(reg, "SessionEvent", NULL, errstr, errstr_size)) ||
        !(c->prof_codec = st_avro_codec_new(reg, "UserProfile", NULL, errstr, errstr_size)) ||
        !(c->out_codec = st_avro_codec_new(reg, "ClusterAssignment", cfg->clusters_topic, errstr,
                                           errstr_size)) ||
        !(c->recent = clu_recent_new(cfg->refit_max_users))) {
        clu_destroy(c);
        return NULL;
    }
    c->next_refit_ms = st_time_mono_ms() + (int64_t)cfg->refit_interval_s * 1000;
    c->m_changes = st_metrics_counter("stint_clusterer_assignments_changed_total", NULL,
                                      "assignments published to users.clusters");
    c->m_cold = st_metrics_counter("stint_clusterer_cold_assignments_total", NULL,
                                   "assignments to the cold cluster");
    c->m_replayed = st_metrics_counter("stint_clusterer_replayed_total", NULL,
                                       "records skipped because they were applied before");
    c->m_copies = st_metrics_counter("stint_clusterer_copies_total", NULL,
                                     "re-emitted copies of sessions already counted (skipped)");
    c->m_refits = st_metrics_counter("stint_clusterer_refits_total", NULL,
                                     "k-means re-fits published (informational versions)");
    c->m_refit_inertia =
        st_metrics_gauge("stint_clusterer_refit_inertia", NULL, "inertia of the last re-fit");
    c->m_refit_users =
        st_metrics_gauge("stint_clusterer_refit_users", NULL, "users in the last re-fit");
    return c;
}

void clu_destroy(clu_t *c)
{
    if (!c)
        return;
    st_avro_codec_destroy(c->sess_codec);
    st_avro_codec_destroy(c->prof_codec);
    st_avro_codec_destroy(c->out_codec);
    st_buf_free(&c->enc);
    for (int i = 0; i < c->cap_users; i++)
        free(c->users[i].prof.lens);
    free(c->users);
    free(c->ev);
    clu_recent_destroy(c->recent);
    free(c);
}

static int user_index(clu_t *c, const char *id, size_t len)
{
    /* Batches are a few thousand records: a linear scan of the batch's users is cheap enough
     * next to the Redis round, and keeps this simple. */
    for (int i = c->n_users; i-- > 0;)
        if (strlen(c->users[i].id) == len && memcmp(c->users[i].id, id, len) == 0)
            return i;
    if (c->n_users == c->cap_users) {
        int nc = c->cap_users ? c->cap_users * 2 : 256;
        clu_user_t *p = realloc(c->users, (size_t)nc * sizeof *p);
        if (!p)
            return -1;
        memset(p + c->cap_users, 0, (size_t)(nc - c->cap_users) * sizeof *p);
        c->users = p;
        c->cap_users = nc;
    }
    clu_user_t *u = &c->users[c->n_users];
    double *lens = u->prof.lens;
    memset(u, 0, sizeof *u);
    u->prof.lens = lens ? lens : malloc((size_t)c->cfg.median_window * sizeof *lens);
    if (!u->prof.lens)
        return -1;
    memcpy(u->id, id, len);
    u->prof.age = -1;
    u->prof.last_start_ms = -1;
    u->cluster = -2;
    return c->n_users++;
}

static void key_of(char *buf, size_t size, const char *prefix, const char *user, const char *what)
{
    snprintf(buf, size, "%s:u:{%s}:%s", prefix, user, what);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The raw profile vector in the bundle's feature order; returns its length. */
static int profile_vector(st_bundle_t *b, const clu_prof_t *p, double *x)
{
    int nf = 0;
    const char *const *names = st_bundle_profile_feature_names(b, &nf);
    double med = 0;
    if (p->n_lens > 0) {
        double v[CLU_MED_MAX];
        memcpy(v, p->lens, (size_t)p->n_lens * sizeof *v);
        qsort(v, (size_t)p->n_lens, sizeof *v, cmp_dbl);
        med = p->n_lens % 2 ? v[p->n_lens / 2] : 0.5 * (v[p->n_lens / 2 - 1] + v[p->n_lens / 2]);
    }
    for (int f = 0; f < nf && f < CLU_PF_MAX; f++) {
        const char *n = names[f];
        double val = 0;
        if (strcmp(n, "mean") == 0)
            val = p->n > 0 ? p->sum_s / p->n : 0;
        else if (strcmp(n, "median") == 0)
            val = med;
        else if (strcmp(n, "max") == 0)
            val = p->max_s;
        else if (strcmp(n, "sessions") == 0)
            val = p->n;
        else if (strcmp(n, "tracks") == 0)
            val = p->tracks;
        else if (strcmp(n, "gender") == 0)
            val = p->gender == 'm' ? 1 : p->gender == 'f' ? 0 : -1;
        else if (strcmp(n, "age") == 0)
            val = p->age > 0 ? p->age : 0;
        else if (strcmp(n, "country") == 0)
            val = st_bundle_country_id(b, p->country);
        else if (strcmp(n, "registered") == 0)
            val = (double)p->registered_s;
        x[f] = val;
    }
    return nf < CLU_PF_MAX ? nf : CLU_PF_MAX;
}

/* Assigns u under the current bundle; true when there is an assignment to make. */
static bool assign(clu_t *c, clu_user_t *u, int *cluster, bool *cold)
{
    st_bundle_t *b = st_bwatch_bundle(c->model);
    if (!b || st_bundle_k(b) == 0)
        return false;
    int k = st_bundle_k(b);
    double x[CLU_PF_MAX] = {0};
    profile_vector(b, &u->prof, x);
    if (c->cfg.refit_interval_s > 0)
        clu_recent_remember(c->recent, u->id, x);
    *cold = false;
    *cluster = st_bundle_user_cluster(b, u->id);
    if (*cluster >= 0)
        return true;
    if (u->prof.n < c->cfg.cold_min_sessions) {
        *cluster = k;
        *cold = true;
        return true;
    }
    *cluster = st_bundle_assign_cluster(b, x);
    if (*cluster < 0) {
        *cluster = k;
        *cold = true;
    }
    return true;
}

static int grow_events(clu_t *c, size_t n)
{
    if (n <= c->cap_ev)
        return 0;
    clu_event_t *p = realloc(c->ev, n * sizeof *p);
    if (!p)
        return -1;
    c->ev = p;
    c->cap_ev = n;
    return 0;
}

static int64_t applied_of(const int32_t *part, const int64_t *off, int n, int32_t partition)
{
    for (int i = 0; i < n; i++)
        if (part[i] == partition)
            return off[i];
    return -1;
}

static int read_state(clu_t *c, st_err_t *err)
{
    char key[1024], what[300];
    st_redis_pipe_reset(c->redis);
    for (int i = 0; i < c->n_users; i++) {
        clu_user_t *u = &c->users[i];
        snprintf(what, sizeof what, "clu:applied:%s", c->cfg.sessions_topic);
        key_of(key, sizeof key, c->cfg.redis_prefix, u->id, what);
        st_redis_pipe(c->redis, "HGETALL %s", key);
        snprintf(what, sizeof what, "clu:applied:%s", c->cfg.profiles_topic);
        key_of(key, sizeof key, c->cfg.redis_prefix, u->id, what);
        st_redis_pipe(c->redis, "HGETALL %s", key);
        key_of(key, sizeof key, c->cfg.redis_prefix, u->id, "clu:prof");
        st_redis_pipe(c->redis, "HMGET %s n sum_s max_s tracks gender age country registered_s ls",
                      key);
        key_of(key, sizeof key, c->cfg.redis_prefix, u->id, "clu:len");
        st_redis_pipe(c->redis, "LRANGE %s %d -1", key, -c->cfg.median_window);
        key_of(key, sizeof key, c->cfg.redis_prefix, u->id, "cluster");
        st_redis_pipe(c->redis, "HMGET %s cluster cold version", key);
    }
    redisReply **r;
    size_t nr;
    if (st_redis_exec(c->redis, &r, &nr, err) != 0)
        return -1;
    if (nr != (size_t)c->n_users * 5) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "read round: %zu replies", nr);
        return -1;
    }
    for (int i = 0; i < c->n_users; i++) {
        clu_user_t *u = &c->users[i];
        redisReply **ur = r + (size_t)i * 5;
        for (int t = 0; t < 2; t++) {
            redisReply *ap = ur[t];
            if (ap->type == REDIS_REPLY_ERROR) {
                st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "read round: %s", ap->str);
                return -1;
            }
            for (size_t j = 0; ap->type == REDIS_REPLY_ARRAY && j + 1 < ap->elements; j += 2) {
                int32_t *part = t == 0 ? u->part_s : u->part_p;
                int64_t *off = t == 0 ? u->applied_s : u->applied_p;
                int *n = t == 0 ? &u->n_s : &u->n_p;
                if (*n < 8) {
                    part[*n] = (int32_t)atoi(ap->element[j]->str);
                    off[(*n)++] = atoll(ap->element[j + 1]->str);
                }
            }
        }
        redisReply *pr = ur[2];
        if (pr->type == REDIS_REPLY_ARRAY && pr->elements == 9) {
            const char *v[9];
            for (int f = 0; f < 9; f++)
                v[f] = pr->element[f]->type == REDIS_REPLY_STRING ? pr->element[f]->str : NULL;
            u->prof.n = v[0] ? atof(v[0]) : 0;
            u->prof.sum_s = v[1] ? atof(v[1]) : 0;
            u->prof.max_s = v[2] ? atof(v[2]) : 0;
            u->prof.tracks = v[3] ? atof(v[3]) : 0;
            u->prof.gender = v[4] && (v[4][0] == 'm' || v[4][0] == 'f') ? v[4][0] : 0;
            u->prof.age = v[5] ? atoi(v[5]) : -1;
            snprintf(u->prof.country, sizeof u->prof.country, "%s", v[6] ? v[6] : "");
            u->prof.registered_s = v[7] ? atoll(v[7]) : 0;
            u->prof.last_start_ms = v[8] ? atoll(v[8]) : -1;
        }
        redisReply *lr = ur[3];
        for (size_t j = 0; lr->type == REDIS_REPLY_ARRAY && j < lr->elements &&
                           u->prof.n_lens < c->cfg.median_window;
             j++)
            u->prof.lens[u->prof.n_lens++] = atof(lr->element[j]->str);
        redisReply *cr = ur[4];
        if (cr->type == REDIS_REPLY_ARRAY && cr->elements == 3 &&
            cr->element[0]->type == REDIS_REPLY_STRING &&
            cr->element[2]->type == REDIS_REPLY_STRING) {
            u->cluster = atoi(cr->element[0]->str);
            u->cold = cr->element[1]->type == REDIS_REPLY_STRING && atoi(cr->element[1]->str);
            snprintf(u->version, sizeof u->version, "%s", cr->element[2]->str);
        }
    }
    return 0;
}

static int publish(clu_t *c, const clu_user_t *u, st_out_t *out, st_err_t *err)
{
    st_rec_cluster_t rec = {.user_id = st_str(u->id),
                            .cluster = u->cluster,
                            .cold = u->cold,
                            .clustering_version = st_str(u->version)};
    if (st_rec_cluster_encode(c->out_codec, &rec, &c->enc, err) != 0)
        return -1;
    if (st_out_produce(out, c->cfg.clusters_topic, u->id, strlen(u->id), c->enc.data, c->enc.len) !=
        0) {
        st_err_nomem(err);
        return -1;
    }
    return 0;
}

/* Re-fits k-means on the remembered profiles (z-scored here) and publishes the version. */
static void refit(clu_t *c)
{
    st_bundle_t *b = st_bwatch_bundle(c->model);
    size_t n = clu_recent_count(c->recent);
    if (!b || st_bundle_k(b) == 0 || n < (size_t)c->cfg.refit_min_users)
        return;
    int dim = 0;
    const char *const *names = st_bundle_profile_feature_names(b, &dim);
    double *x = malloc(n * (size_t)dim * sizeof *x), mean[CLU_PF_MAX] = {0}, sd[CLU_PF_MAX] = {0};
    if (!x)
        return;
    for (size_t i = 0; i < n; i++) {
        const double *v = clu_recent_vector(c->recent, i);
        for (int f = 0; f < dim; f++)
            mean[f] += v[f] / (double)n;
    }
    for (size_t i = 0; i < n; i++) {
        const double *v = clu_recent_vector(c->recent, i);
        for (int f = 0; f < dim; f++)
            sd[f] += pow(v[f] - mean[f], 2) / (double)n;
    }
    for (int f = 0; f < dim; f++)
        sd[f] = sd[f] > 0 ? sqrt(sd[f]) : 1;
    for (size_t i = 0; i < n; i++) {
        const double *v = clu_recent_vector(c->recent, i);
        for (int f = 0; f < dim; f++)
            x[i * (size_t)dim + (size_t)f] = (v[f] - mean[f]) / sd[f];
    }
    st_kmeans_cfg_t kc;
    st_kmeans_default(&kc);
    kc.k = st_bundle_k(b);
    char errstr[256];
    st_cluster_t *m = st_kmeans_fit(x, n, dim, &kc, NULL, errstr, sizeof errstr);
    free(x);
    if (!m) {
        st_log_warn("refit_failed", "error=\"%s\"", errstr);
        return;
    }
    c->refits++;
    char version[ST_BWATCH_VERSION_MAX + 32];
    snprintf(version, sizeof version, "%s+refit-%d", st_bwatch_version(c->model), c->refits);
    json_t *feats = json_array(), *cents = json_array(), *js = json_array(), *jm = json_array();
    for (int f = 0; f < dim; f++) {
        json_array_append_new(feats, json_string(names[f]));
        json_array_append_new(jm, json_real(mean[f]));
        json_array_append_new(js, json_real(sd[f]));
    }
    for (int k = 0; k < m->k; k++) {
        json_t *row = json_array();
        for (int f = 0; f < dim; f++)
            json_array_append_new(row, json_real(m->centroids[k * dim + f]));
        json_array_append_new(cents, row);
    }
    json_t *doc =
        json_pack("{s:s, s:s, s:i, s:I, s:f, s:o, s:o, s:o, s:o, s:I}", "version", version,
                  "based_on", st_bwatch_version(c->model), "k", m->k, "users", (json_int_t)n,
                  "inertia", m->inertia, "features", feats, "mean", jm, "scale", js, "centroids_z",
                  cents, "made_at_ms", (json_int_t)st_time_wall_ms());
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    char key[512];
    snprintf(key, sizeof key, "%s:clustering:refit", c->cfg.redis_prefix);
    st_err_t err = {0};
    redisReply *r = text ? st_redis_command(c->redis, &err, "SET %s %s", key, text) : NULL;
    if (r)
        freeReplyObject(r);
    st_metric_inc(c->m_refits, 1);
    st_metric_set(c->m_refit_inertia, m->inertia);
    st_metric_set(c->m_refit_users, (double)n);
    st_log_info("refit_published", "version=%s users=%zu k=%d inertia=%.3f stored=%s", version, n,
                m->k, m->inertia, r ? "yes" : "no");
    free(text);
    json_decref(doc);
    st_cluster_destroy(m);
}

int clu_process(void *ctx, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err)
{
    clu_t *c = ctx;
    /* A new bundle only between batches: a batch processed again (its produce failed) keeps
     * the version it started with, so its outputs are the same. */
    if (!c->pending && st_bwatch_swap(c->model))
        clu_recent_clear(c->recent);
    if (c->cfg.refit_interval_s > 0 && st_time_mono_ms() >= c->next_refit_ms) {
        refit(c);
        c->next_refit_ms = st_time_mono_ms() + (int64_t)c->cfg.refit_interval_s * 1000;
    }
    c->n_users = 0;
    c->n_ev = 0;
    c->pending = false;
    if (n == 0)
        return 0;
    if (grow_events(c, n) != 0) {
        st_err_nomem(err);
        return -1;
    }
    /* Decoded values are borrowed until the next decode: keep what is needed per record. */
    typedef struct {
        double length_s;
        int64_t start_ms;
        int tracks;
        bool closed;
        char gender;
        int age;
        char country[64];
        int64_t registered_s;
    } rec_t;
    rec_t *recs = calloc(n, sizeof *recs);
    if (!recs) {
        st_err_nomem(err);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const st_msg_t *m = &msgs[i];
        clu_event_t *e = &c->ev[c->n_ev];
        rec_t *rc = &recs[c->n_ev];
        bool is_profile = strcmp(m->topic, c->cfg.profiles_topic) == 0;
        st_err_t derr = {0};
        const char *why = NULL;
        st_str_t user = {0};
        int drc;
        if (is_profile) {
            st_rec_profile_t p;
            if ((drc = st_rec_profile_decode(c->prof_codec, m->value, m->value_len, &p, &derr)) ==
                0) {
                user = p.user_id;
                rc->gender = p.gender.ptr && p.gender.len == 1 ? p.gender.ptr[0] : 0;
                rc->age = p.age.set ? p.age.v : -1;
                if (p.country.ptr)
                    snprintf(rc->country, sizeof rc->country, "%.*s", (int)p.country.len,
                             p.country.ptr);
                if (p.registered_ms.set)
                    rc->registered_s = p.registered_ms.v / 1000;
            }
        } else {
            st_rec_session_event_t *ev = &c->ev_rec;
            if ((drc = st_rec_session_event_decode(c->sess_codec, m->value, m->value_len, ev,
                                                   &derr)) == 0) {
                user = ev->user_id;
                rc->start_ms = ev->start_ms;
                rc->closed = ev->kind == ST_SESSION_EVENT_CLOSED;
                rc->tracks = ev->track_count > 0 ? ev->track_count : 0;
                rc->length_s = ev->length_s.v;
            }
        }
        if (drc != 0) {
            if (derr.retriable) {
                free(recs);
                *err = derr;
                return -1;
            }
            why = derr.text;
        } else if (user.len > CLU_USER_MAX) {
            why = "user_id longer than 128 bytes";
        }
        if (why) {
            if (st_out_dead_letter(out, m, "invalid", why) != 0) {
                free(recs);
                st_err_nomem(err);
                return -1;
            }
            continue;
        }
        memset(e, 0, sizeof *e);
        e->user = user_index(c, user.ptr, user.len);
        if (e->user < 0) {
            free(recs);
            st_err_nomem(err);
            return -1;
        }
        e->is_profile = is_profile;
        e->partition = m->partition;
        e->offset = m->offset;
        c->n_ev++;
    }
    if (c->n_ev > 0 && read_state(c, err) != 0) {
        free(recs);
        return -1;
    }
    for (size_t i = 0; i < c->n_ev; i++) {
        clu_event_t *e = &c->ev[i];
        clu_user_t *u = &c->users[e->user];
        const rec_t *rc = &recs[i];
        int64_t last = e->is_profile ? applied_of(u->part_p, u->applied_p, u->n_p, e->partition)
                                     : applied_of(u->part_s, u->applied_s, u->n_s, e->partition);
        if (e->offset <= last) {
            e->skip = true;
            st_metric_inc(c->m_replayed, 1);
            continue;
        }
        if (e->is_profile) {
            u->prof.gender = rc->gender == 'm' || rc->gender == 'f' ? rc->gender : 0;
            u->prof.age = rc->age;
            snprintf(u->prof.country, sizeof u->prof.country, "%s", rc->country);
            u->prof.registered_s = rc->registered_s;
            e->op = 'P';
            e->gender = u->prof.gender;
            e->age = u->prof.age;
            snprintf(e->country, sizeof e->country, "%s", u->prof.country);
            e->registered_s = u->prof.registered_s;
        } else if (rc->closed && rc->start_ms <= u->prof.last_start_ms) {
            /* A re-emitted copy of a session already counted: only the marker moves. */
            e->op = '-';
            st_metric_inc(c->m_copies, 1);
            c->pending = true;
            continue;
        } else if (rc->closed) {
            u->prof.last_start_ms = rc->start_ms;
            u->prof.n += 1;
            u->prof.sum_s += rc->length_s;
            u->prof.tracks += rc->tracks;
            if (rc->length_s > u->prof.max_s)
                u->prof.max_s = rc->length_s;
            if (u->prof.n_lens == c->cfg.median_window) {
                memmove(u->prof.lens, u->prof.lens + 1,
                        (size_t)(u->prof.n_lens - 1) * sizeof *u->prof.lens);
                u->prof.n_lens--;
            }
            u->prof.lens[u->prof.n_lens++] = rc->length_s;
            e->op = 'S';
            e->length_s = rc->length_s;
            e->start_ms = rc->start_ms;
            e->tracks = rc->tracks;
        } else {
            /* OPENED: nothing to learn; the marker still moves. */
            e->op = '-';
            c->pending = true;
            continue;
        }
        int cluster;
        bool cold;
        if (assign(c, u, &cluster, &cold)) {
            const char *version = st_bwatch_version(c->model);
            if (cluster != u->cluster || cold != u->cold || strcmp(version, u->version) != 0) {
                u->cluster = cluster;
                u->cold = cold;
                snprintf(u->version, sizeof u->version, "%s", version);
                if (publish(c, u, out, err) != 0) {
                    free(recs);
                    return -1;
                }
                e->assign = true;
                e->cluster = cluster;
                e->cold = cold;
            }
        }
        c->pending = true;
    }
    free(recs);
    return 0;
}

int clu_apply(void *ctx, st_err_t *err)
{
    clu_t *c = ctx;
    if (!c->pending)
        return 0;
    char k_app[1024], k_prof[512], k_len[512], k_clu[512], k_pub[512], what[300], part[16], off[32],
        mw[16], cl[16], a1[40], a2[40], a3[40], g[2] = {0, 0};
    snprintf(mw, sizeof mw, "%d", c->cfg.median_window);
    st_redis_pipe_reset(c->redis);
    size_t queued = 0;
    for (size_t i = 0; i < c->n_ev; i++) {
        const clu_event_t *e = &c->ev[i];
        if (e->skip)
            continue;
        const char *user = c->users[e->user].id;
        snprintf(what, sizeof what, "clu:applied:%s",
                 e->is_profile ? c->cfg.profiles_topic : c->cfg.sessions_topic);
        key_of(k_app, sizeof k_app, c->cfg.redis_prefix, user, what);
        key_of(k_prof, sizeof k_prof, c->cfg.redis_prefix, user, "clu:prof");
        key_of(k_len, sizeof k_len, c->cfg.redis_prefix, user, "clu:len");
        key_of(k_clu, sizeof k_clu, c->cfg.redis_prefix, user, "cluster");
        key_of(k_pub, sizeof k_pub, c->cfg.redis_prefix, user, "profile");
        snprintf(part, sizeof part, "%d", (int)e->partition);
        snprintf(off, sizeof off, "%lld", (long long)e->offset);
        snprintf(cl, sizeof cl, "%d", e->cluster);
        const char *argv[24] = {k_app, k_prof, k_len, k_clu, k_pub, part, off};
        int argc = 7;
        if (e->op == 'S') {
            snprintf(a1, sizeof a1, "%.17g", e->length_s);
            snprintf(a2, sizeof a2, "%d", e->tracks);
            snprintf(a3, sizeof a3, "%lld", (long long)e->start_ms);
            argv[argc++] = "S";
            argv[argc++] = a1;
            argv[argc++] = a2;
            argv[argc++] = mw;
            argv[argc++] = a3;
        } else if (e->op == 'P') {
            g[0] = e->gender;
            snprintf(a1, sizeof a1, "%d", e->age);
            snprintf(a3, sizeof a3, "%lld", (long long)e->registered_s);
            argv[argc++] = "P";
            argv[argc++] = g;
            argv[argc++] = a1;
            argv[argc++] = e->country;
            argv[argc++] = a3;
        } else {
            argv[argc++] = "-";
        }
        argv[argc++] = e->assign ? "1" : "0";
        argv[argc++] = cl;
        argv[argc++] = e->cold ? "1" : "0";
        argv[argc++] = c->users[e->user].version;
        st_redis_pipe_evalsha(c->redis, c->script, 5, argc - 5, argv, NULL);
        queued++;
    }
    if (queued == 0)
        return 0;
    redisReply **r;
    size_t nr;
    if (st_redis_exec(c->redis, &r, &nr, err) != 0)
        return -1;
    for (size_t i = 0; i < nr; i++)
        if (r[i]->type == REDIS_REPLY_ERROR) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "apply script: %s", r[i]->str);
            return -1;
        }
    for (size_t i = 0; i < c->n_ev; i++)
        if (!c->ev[i].skip && c->ev[i].assign) {
            st_metric_inc(c->m_changes, 1);
            if (c->ev[i].cold)
                st_metric_inc(c->m_cold, 1);
        }
    c->pending = false;
    return 0;
}
