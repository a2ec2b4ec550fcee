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
#include "st_applied.h"
#include "st_buf.h"
#include "st_cluster.h"
#include "st_kmeans.h"
#include "st_log.h"
#include "st_metrics.h"
#include "st_records.h"
#include "st_time.h"

#define CLU_USER_MAX 128
#define CLU_MED_MAX  1024
#define CLU_PF_MAX   ST_BUNDLE_MAX_PROFILE_FEATS

/* A user of the batch: its state as read, then as the batch leaves it. */
typedef struct {
    char id[CLU_USER_MAX + 1];
    st_applied_t applied_s, applied_p; /* the batch's partitions of sessions (and lc) / profiles */
    clu_store_prof_t prof;
    clu_store_cluster_t cluster;
    bool moved;                 /* some record was applied: the user has a write */
    bool demo_changed;          /* a profile was applied */
    bool cluster_changed;       /* the assignment changed (and was published) */
    size_t n_closed, closed_at; /* the user's CLOSED to count: c->closed[closed_at..] (apply) */
} clu_user_t;

/* A record of the batch: what the batch needs of it, copied out of the decoded record. */
typedef struct {
    int user;
    bool is_profile;
    int32_t partition;
    int64_t offset;
    bool closed;  /* a CLOSED SessionEvent (else an OPENED one, or a profile) */
    bool counted; /* a CLOSED this batch counts */
    int64_t start_ms;
    double length_s;
    int tracks;
    clu_store_demo_t demo; /* a profile's */
} clu_event_t;

struct clu {
    clu_config_t cfg;
    clu_store_t *store;
    st_bwatch_t *model;
    st_avro_codec_t *sess_codec, *prof_codec, *out_codec;
    st_rec_session_event_t ev_rec; /* the decoded SessionEvent (reused) */
    st_buf_t enc;
    clu_user_t *users;
    int n_users, cap_users;
    clu_event_t *ev;
    clu_store_closed_t *closed; /* apply: the CLOSED to count, grouped by user (cap_ev) */
    size_t n_ev, cap_ev;
    clu_store_user_t *reads;
    clu_store_write_t *writes;
    size_t cap_io;
    bool pending;
    bool batch_open; /* a batch went to clu_process and was not applied yet: its retries keep the
                        bundle and the clustering it started with */
    /* The batch's counts, added to the metrics once it is applied (whatever the attempts). */
    uint64_t n_replayed, n_copies, n_overflow, n_changes, n_cold;
    clu_recent_t *recent; /* profiles of recently active users, for re-fits */
    int64_t next_refit_ms;
    st_metric_t *m_changes, *m_cold, *m_refits, *m_refit_inertia, *m_refit_users, *m_replayed,
        *m_copies, *m_overflow;
};

clu_t *clu_new(const clu_config_t *cfg, clu_store_t *store, st_avro_registry_t *reg,
               st_bwatch_t *model, char *errstr, size_t errstr_size)
{
    clu_t *c = calloc(1, sizeof *c);
    if (!c) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    c->store = store;
    c->model = model;
    if (!(c->sess_codec = st_avro_codec_new(reg, "SessionEvent", NULL, errstr, errstr_size)) ||
        !(c->prof_codec = st_avro_codec_new(reg, "UserProfile", NULL, errstr, errstr_size)) ||
        !(c->out_codec = st_avro_codec_new(reg, "ClusterAssignment", cfg->clusters_topic, errstr,
                                           errstr_size))) {
        clu_destroy(c);
        return NULL;
    }
    if (!(c->recent = clu_recent_new(cfg->refit_max_users))) {
        st_errstr(errstr, errstr_size, "out of memory");
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
    c->m_overflow = st_metrics_counter(
        "stint_clusterer_applied_overflow_total", NULL,
        "records dead-lettered: the user's records of a topic span more partitions in one batch "
        "than st_applied allows");
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
    free(c->closed);
    free(c->reads);
    free(c->writes);
    clu_recent_destroy(c->recent);
    free(c);
}

static int user_index(clu_t *c, const char *id, size_t len)
{
    /* Batches are a few thousand records: a linear scan of the batch's users is cheap enough
     * next to the store's round, and keeps this simple. */
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
    st_applied_reset(&u->applied_s);
    st_applied_reset(&u->applied_p);
    return c->n_users++;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The raw profile vector in the bundle's feature order; returns its length. */
static int profile_vector(st_bundle_t *b, const clu_store_prof_t *p, double *x)
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
            val = p->demo.gender == 'm' ? 1 : p->demo.gender == 'f' ? 0 : -1;
        else if (strcmp(n, "age") == 0)
            val = p->demo.age > 0 ? p->demo.age : 0;
        else if (strcmp(n, "country") == 0)
            val = st_bundle_country_id(b, p->demo.country);
        else if (strcmp(n, "registered") == 0)
            val = (double)p->demo.registered_s;
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

static int publish(clu_t *c, const clu_user_t *u, st_out_t *out, st_err_t *err)
{
    st_rec_cluster_t rec = {.user_id = st_str(u->id),
                            .cluster = u->cluster.cluster,
                            .cold = u->cluster.cold,
                            .clustering_version = st_str(u->cluster.version)};
    if (st_rec_cluster_encode(c->out_codec, &rec, &c->enc, err) != 0)
        return -1;
    if (st_out_produce(out, c->cfg.clusters_topic, u->id, strlen(u->id), c->enc.data, c->enc.len) !=
        0) {
        st_err_nomem(err);
        return -1;
    }
    return 0;
}

/* Assigns u again after a change of its profile; publishes the assignment when it changed. */
static int reassign(clu_t *c, clu_user_t *u, st_out_t *out, st_err_t *err)
{
    int cluster;
    bool cold;
    if (!assign(c, u, &cluster, &cold))
        return 0;
    const char *version = st_bwatch_version(c->model);
    if (cluster == u->cluster.cluster && cold == u->cluster.cold &&
        strcmp(version, u->cluster.version) == 0)
        return 0;
    u->cluster.cluster = cluster;
    u->cluster.cold = cold;
    snprintf(u->cluster.version, sizeof u->cluster.version, "%s", version);
    u->cluster_changed = true;
    c->n_changes++;
    c->n_cold += cold;
    return publish(c, u, out, err);
}

static int grow_events(clu_t *c, size_t n)
{
    if (n <= c->cap_ev)
        return 0;
    clu_event_t *e = realloc(c->ev, n * sizeof *e);
    if (!e)
        return -1;
    c->ev = e;
    clu_store_closed_t *cl = realloc(c->closed, n * sizeof *cl);
    if (!cl)
        return -1;
    c->closed = cl;
    c->cap_ev = n;
    return 0;
}

static int grow_io(clu_t *c, size_t n)
{
    if (n <= c->cap_io)
        return 0;
    clu_store_user_t *r = realloc(c->reads, n * sizeof *r);
    if (!r)
        return -1;
    c->reads = r;
    clu_store_write_t *w = realloc(c->writes, n * sizeof *w);
    if (!w)
        return -1;
    c->writes = w;
    c->cap_io = n;
    return 0;
}

/* Reads the batch's users from the store (one round). */
static int read_users(clu_t *c, st_err_t *err)
{
    if (grow_io(c, (size_t)c->n_users) != 0) {
        st_err_nomem(err);
        return -1;
    }
    for (int i = 0; i < c->n_users; i++) {
        clu_user_t *u = &c->users[i];
        c->reads[i] = (clu_store_user_t){.user = u->id,
                                         .sessions = &u->applied_s,
                                         .profiles = &u->applied_p,
                                         .prof = &u->prof,
                                         .cluster = &u->cluster};
    }
    return c->store->read(c->store->ctx, c->reads, (size_t)c->n_users, err);
}

/* Decodes m into e, and the record's user id into *user (borrowed until the next decode).
 * Returns 0, or -1 with err: retriable (the schema registry away) or the record is invalid. */
static int decode(clu_t *c, const st_msg_t *m, clu_event_t *e, st_str_t *user, st_err_t *err)
{
    memset(e, 0, sizeof *e);
    e->is_profile = strcmp(m->topic, c->cfg.profiles_topic) == 0;
    e->partition = m->partition;
    e->offset = m->offset;
    if (e->is_profile) {
        st_rec_profile_t p;
        if (st_rec_profile_decode(c->prof_codec, m->value, m->value_len, &p, err) != 0)
            return -1;
        *user = p.user_id;
        if (p.gender.ptr && p.gender.len == 1 && (p.gender.ptr[0] == 'm' || p.gender.ptr[0] == 'f'))
            e->demo.gender = p.gender.ptr[0];
        e->demo.age = p.age.set ? p.age.v : -1;
        if (p.country.ptr)
            snprintf(e->demo.country, sizeof e->demo.country, "%.*s", (int)p.country.len,
                     p.country.ptr);
        if (p.registered_ms.set)
            e->demo.registered_s = p.registered_ms.v / 1000;
        return 0;
    }
    st_rec_session_event_t *ev = &c->ev_rec;
    if (st_rec_session_event_decode(c->sess_codec, m->value, m->value_len, ev, err) != 0)
        return -1;
    *user = ev->user_id;
    e->closed = ev->kind == ST_SESSION_EVENT_CLOSED;
    e->start_ms = ev->start_ms;
    e->length_s = ev->length_s.v;
    e->tracks = ev->track_count > 0 ? ev->track_count : 0;
    return 0;
}

/* Takes msgs into c->ev: invalid records and those beyond st_applied's partitions per user go to
 * the dead-letter topic. */
static int take_records(clu_t *c, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err)
{
    for (size_t i = 0; i < n; i++) {
        const st_msg_t *m = &msgs[i];
        clu_event_t *e = &c->ev[c->n_ev];
        st_err_t derr = {0};
        st_str_t user = {0};
        const char *code = "invalid", *why = NULL;
        if (decode(c, m, e, &user, &derr) != 0) {
            if (derr.retriable) {
                *err = derr;
                return -1;
            }
            why = derr.text;
        } else if (user.len > CLU_USER_MAX) {
            why = "user_id longer than 128 bytes";
        } else if (!e->is_profile && !st_rec_session_event_time_ok(&c->ev_rec, m->timestamp_ms)) {
            why = ST_REC_SESSION_TIME_TEXT;
        } else {
            if ((e->user = user_index(c, user.ptr, user.len)) < 0) {
                st_err_nomem(err);
                return -1;
            }
            clu_user_t *u = &c->users[e->user];
            if (st_applied_slot(e->is_profile ? &u->applied_p : &u->applied_s, e->partition, true) <
                0) {
                c->n_overflow++;
                code = ST_APPLIED_OVERFLOW_CODE;
                why = ST_APPLIED_OVERFLOW_TEXT;
            }
        }
        if (why) {
            if (st_out_dead_letter(out, m, code, why) != 0) {
                st_err_nomem(err);
                return -1;
            }
            continue;
        }
        c->n_ev++;
    }
    return 0;
}

/* Counts a CLOSED into u's profile. */
static void count_closed(clu_t *c, clu_user_t *u, const clu_event_t *e)
{
    clu_store_prof_t *p = &u->prof;
    p->n += 1;
    p->sum_s += e->length_s;
    p->tracks += e->tracks;
    if (e->length_s > p->max_s)
        p->max_s = e->length_s;
    if (p->n_lens == c->cfg.median_window) {
        memmove(p->lens, p->lens + 1, (size_t)(p->n_lens - 1) * sizeof *p->lens);
        p->n_lens--;
    }
    p->lens[p->n_lens++] = e->length_s;
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
    st_metric_inc(c->m_refits, 1);
    st_metric_set(c->m_refit_inertia, m->inertia);
    st_metric_set(c->m_refit_users, (double)n);
    /* N from the store's counter: a restarted instance, or another one, never reuses a version. */
    int64_t seq = 0;
    st_err_t err = {0};
    if (c->store->next_refit_seq(c->store->ctx, &seq, &err) != 0) {
        st_log_warn("refit_not_stored", "users=%zu k=%d inertia=%.3f error=\"%s\"", n, m->k,
                    m->inertia, err.text);
        st_cluster_destroy(m);
        return;
    }
    char version[ST_BWATCH_VERSION_MAX + 32];
    snprintf(version, sizeof version, "%s+refit-%lld", st_bwatch_version(c->model), (long long)seq);
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
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:i, s:I, s:f, s:o, s:o, s:o, s:o, s:I}", "version", version, "based_on",
        st_bwatch_version(c->model), "instance", c->cfg.instance ? c->cfg.instance : "", "k", m->k,
        "users", (json_int_t)n, "inertia", m->inertia, "features", feats, "mean", jm, "scale", js,
        "centroids_z", cents, "made_at_ms", (json_int_t)st_time_wall_ms());
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    bool stored = text && c->store->put_refit(c->store->ctx, text, &err) == 0;
    if (!stored)
        st_log_warn("refit_not_stored", "version=%s error=\"%s\"", version,
                    text ? err.text : "out of memory");
    st_log_info("refit_published", "version=%s users=%zu k=%d inertia=%.3f stored=%s", version, n,
                m->k, m->inertia, stored ? "yes" : "no");
    free(text);
    json_decref(doc);
    st_cluster_destroy(m);
}

int clu_process(void *ctx, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err)
{
    clu_t *c = ctx;
    /* A new bundle or clustering only between batches: a batch processed again (its produce,
     * its store read or its write failed) keeps the version it started with until it is
     * applied, so its outputs are the same. */
    if (!c->batch_open) {
        if (st_bwatch_swap(c->model))
            clu_recent_clear(c->recent);
        if (c->cfg.refit_interval_s > 0 && st_time_mono_ms() >= c->next_refit_ms) {
            refit(c);
            c->next_refit_ms = st_time_mono_ms() + (int64_t)c->cfg.refit_interval_s * 1000;
        }
    }
    c->batch_open = n > 0;
    c->n_users = 0;
    c->n_ev = 0;
    c->pending = false;
    c->n_replayed = c->n_copies = c->n_overflow = c->n_changes = c->n_cold = 0;
    if (n == 0)
        return 0;
    if (grow_events(c, n) != 0) {
        st_err_nomem(err);
        return -1;
    }
    if (take_records(c, msgs, n, out, err) != 0 || (c->n_ev > 0 && read_users(c, err) != 0))
        return -1;
    for (size_t i = 0; i < c->n_ev; i++) {
        clu_event_t *e = &c->ev[i];
        clu_user_t *u = &c->users[e->user];
        st_applied_t *a = e->is_profile ? &u->applied_p : &u->applied_s;
        int slot = st_applied_slot(a, e->partition, false);
        if (st_applied_done(a, slot, e->offset)) {
            c->n_replayed++;
            continue;
        }
        st_applied_advance(a, slot, e->offset);
        u->moved = true;
        c->pending = true;
        if (e->is_profile) {
            u->prof.demo = e->demo;
            u->demo_changed = true;
        } else if (!e->closed) {
            continue; /* OPENED: nothing to learn; only the marker moves */
        } else if (st_applied_is_copy(a, e->start_ms)) {
            c->n_copies++; /* a re-emitted copy of a session already counted: the same */
            continue;
        } else {
            st_applied_closed(a, e->start_ms);
            e->counted = true;
            count_closed(c, u, e);
        }
        if (reassign(c, u, out, err) != 0)
            return -1;
    }
    return 0;
}

/* Writes the batch's users that have changes (one round). */
static int write_users(clu_t *c, st_err_t *err)
{
    if (grow_io(c, (size_t)c->n_users) != 0) {
        st_err_nomem(err);
        return -1;
    }
    /* Each user's counted CLOSED, in batch order, grouped by user. */
    for (int i = 0; i < c->n_users; i++)
        c->users[i].n_closed = 0;
    for (size_t i = 0; i < c->n_ev; i++)
        c->users[c->ev[i].user].n_closed += c->ev[i].counted;
    size_t at = 0;
    for (int i = 0; i < c->n_users; i++) {
        c->users[i].closed_at = at;
        at += c->users[i].n_closed;
        c->users[i].n_closed = 0;
    }
    for (size_t i = 0; i < c->n_ev; i++) {
        const clu_event_t *e = &c->ev[i];
        clu_user_t *u = &c->users[e->user];
        if (e->counted)
            c->closed[u->closed_at + u->n_closed++] = (clu_store_closed_t){
                .start_ms = e->start_ms, .length_s = e->length_s, .tracks = e->tracks};
    }
    size_t nw = 0;
    for (int i = 0; i < c->n_users; i++) {
        const clu_user_t *u = &c->users[i];
        if (!u->moved)
            continue;
        c->writes[nw++] = (clu_store_write_t){.user = u->id,
                                              .sessions = &u->applied_s,
                                              .profiles = &u->applied_p,
                                              .closed = c->closed + u->closed_at,
                                              .n_closed = u->n_closed,
                                              .demo = u->demo_changed ? &u->prof.demo : NULL,
                                              .cluster = u->cluster_changed ? &u->cluster : NULL};
    }
    return c->store->write(c->store->ctx, c->writes, nw, err);
}

int clu_apply(void *ctx, st_err_t *err)
{
    clu_t *c = ctx;
    if (c->pending && write_users(c, err) != 0)
        return -1;
    c->pending = false;
    c->batch_open = false;
    st_metric_inc(c->m_replayed, c->n_replayed);
    st_metric_inc(c->m_copies, c->n_copies);
    st_metric_inc(c->m_overflow, c->n_overflow);
    st_metric_inc(c->m_changes, c->n_changes);
    st_metric_inc(c->m_cold, c->n_cold);
    c->n_replayed = c->n_copies = c->n_overflow = c->n_changes = c->n_cold = 0;
    return 0;
}
