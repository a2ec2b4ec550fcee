/* pred_core.c - the predictor's batch logic (see pred_core.h). */
#include "pred_core.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pred_open.h"
#include "pred_store.h"
#include "st_applied.h"
#include "st_buf.h"
#include "st_log.h"
#include "st_metrics.h"
#include "st_records.h"
#include "st_time.h"

#define PC_USER_MAX   128
#define PC_SID_MAX    PRED_OPEN_SID_MAX
#define PC_RECENT_MAX ST_SESSION_RECENT_MAX

enum { KIND_OPENED = 0, KIND_CLOSED = 1 };
enum { RECENT_NONE = -1, RECENT_EVENT = 0, RECENT_LENGTHS = 1 };

/* One of the recent sessions an OPENED carries (recent_lengths_s and the details aligned with
 * it); the batch keeps them in one pool. */
typedef struct {
    double length_s;
    int64_t start_ms;
    int track_count;
    double unknown_share;
} pc_recent_t;

typedef struct {
    char id[PC_USER_MAX + 1];
    st_applied_t applied; /* markers of the batch's partitions and lc: as read, then moved */
    int cluster;          /* clusterer's assignment, -1 none */
    bool cluster_cold;
    char cluster_version[ST_BWATCH_VERSION_MAX];
    /* The open predictions and retracted ids, as read and then as the batch's records leave
     * them (kept allocated across batches). */
    pred_open_t *open;
    bool open_changed;
    size_t open_text_off;  /* apply: the text of open in pc->open_text */
    int first_ev, last_ev; /* the user's records to apply, in order (pc_event_t.next_ev) */
} pc_user_t;

typedef struct {
    bool skip; /* applied before (at or below the partition's marker): nothing to do */
    bool dup;  /* a copy, at a new offset, of an event already applied: only the marker moves */
    int kind;
    int user;
    int32_t partition;
    int64_t offset;
    char session_id[PC_SID_MAX + 1];
    int64_t start_ms;
    int32_t session_index;
    int32_t revision;      /* OPENED: orders the session's announcements (higher wins) */
    bool corrected;        /* OPENED: replaced an open prediction of the same session */
    int64_t last_start_ms; /* CLOSED: start of its last listen (start_ms when not given) */
    bool has_mean, has_median, has_gap;
    double mean_s, median_s, gap_s;
    int n_recent; /* recent sessions in pc->recent from recent_off, oldest first */
    size_t recent_off;
    bool detail;     /* their start, tracks and unknown share are known (else lengths only) */
    int n_retracted; /* OPENED: retracted_session_ids, NUL-separated in pc->ids from ids_off */
    size_t ids_off;
    char gender;
    int age;
    char country[64];
    int64_t registered_ms;
    double length_s;
    int track_count;
    double unknown_share;
    bool model;     /* OPENED: the model answered (else the baseline) */
    int recent_src; /* OPENED: where the model's recent sessions came from (RECENT_*) */
    int next_ev;    /* the user's next record to apply, -1 none */
    /* What the record published, counted once the batch is applied. */
    int retractions_out; /* retracted Predictions */
    int dropped;         /* open predictions dropped beyond PRED_OPEN_MAX */
    bool has_outcome, outcome_model;
    double abs_error_s, baseline_abs_error_s;
} pc_event_t;

struct pc {
    pc_config_t cfg;
    pred_store_t *store;
    st_bwatch_t *model;
    pred_mae_t *mae;
    st_avro_codec_t *in_codec, *pred_codec, *outcome_codec;
    st_rec_session_event_t ev_rec;        /* the decoded SessionEvent (reused) */
    unsigned long long incomplete_inputs; /* OPENEDs a sequence model could not be shown */
    pc_input_hook_fn input_hook;
    void *input_hook_arg;
    st_buf_t enc;
    pc_event_t *ev;
    size_t n_ev, cap_ev;
    pc_recent_t *recent; /* the batch's OPENED recent sessions */
    size_t n_recent, cap_recent;
    st_buf_t ids;             /* the batch's retracted session ids */
    st_buf_t open_text;       /* apply: the users' open-prediction texts, NUL-terminated */
    pred_store_user_t *reads; /* the read round's per-user requests */
    pred_store_write_t *writes;
    size_t cap_io;
    uint64_t batch_overflow; /* records of this batch refused by st_applied's limit */
    pc_user_t *users;
    int n_users, cap_users;
    int *slots; /* open addressing: user index + 1, 0 empty */
    size_t n_slots;
    bool pending_apply;
    bool batch_open; /* a batch went to pc_process and was not applied yet: its retries keep the
                        bundle it started with */
    char loaded_version[ST_BWATCH_VERSION_MAX];
    st_metric_t *m_pred_model, *m_pred_base, *m_outcomes, *m_unmatched, *m_replayed, *m_copies,
        *m_swaps, *m_model_fail, *m_model_info, *m_corrections, *m_retractions, *m_dropped,
        *m_recent_event, *m_recent_lengths, *m_overflow;
};

pc_t *pc_new(const pc_config_t *cfg, pred_store_t *store, st_avro_registry_t *reg,
             st_bwatch_t *model, pred_mae_t *mae, char *errstr, size_t errstr_size)
{
    pc_t *pc = calloc(1, sizeof *pc);
    if (!pc) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pc->cfg = *cfg;
    pc->store = store;
    pc->model = model;
    pc->mae = mae;
    if (!(pc->in_codec = st_avro_codec_new(reg, "SessionEvent", NULL, errstr, errstr_size)) ||
        !(pc->pred_codec =
              st_avro_codec_new(reg, "Prediction", cfg->predictions_topic, errstr, errstr_size)) ||
        !(pc->outcome_codec = st_avro_codec_new(reg, "PredictionOutcome", cfg->outcomes_topic,
                                                errstr, errstr_size))) {
        pc_destroy(pc);
        return NULL;
    }
    pc->m_pred_model =
        st_metrics_counter("stint_predictor_predictions_total", "predictor=\"MODEL\"",
                           "predictions published, by predictor");
    pc->m_pred_base =
        st_metrics_counter("stint_predictor_predictions_total", "predictor=\"BASELINE\"",
                           "predictions published, by predictor");
    pc->m_outcomes = st_metrics_counter("stint_predictor_outcomes_total", NULL,
                                        "outcomes published (CLOSED joined with its prediction)");
    pc->m_unmatched =
        st_metrics_counter("stint_predictor_closed_unmatched_total", NULL,
                           "CLOSED sessions without a stored prediction (no outcome)");
    pc->m_replayed = st_metrics_counter("stint_predictor_replayed_total", NULL,
                                        "records skipped because they were applied before");
    pc->m_copies = st_metrics_counter("stint_predictor_copies_total", NULL,
                                      "re-emitted copies of events already applied (skipped)");
    pc->m_swaps = st_metrics_counter("stint_predictor_model_swaps_total", NULL,
                                     "model bundles swapped in while running");
    pc->m_model_fail = st_metrics_counter("stint_predictor_model_failures_total", NULL,
                                          "predictions where the model gave no finite answer");
    pc->m_corrections =
        st_metrics_counter("stint_predictor_corrections_total", NULL,
                           "sessions predicted again: their OPENED was re-sent with a higher "
                           "revision (other features, or sessions it absorbed)");
    pc->m_retractions =
        st_metrics_counter("stint_predictor_retractions_total", NULL,
                           "retracted predictions published (the session was not one)");
    pc->m_dropped = st_metrics_counter(
        "stint_predictor_open_dropped_total", NULL,
        "open predictions dropped because the user had more than 8 open sessions");
    static const char recent_help[] =
        "predictions of a sequence model by the recent sessions the OPENED carried: all the "
        "model needs with their details (event), or fewer or lengths only (lengths: the baseline "
        "answered)";
    pc->m_recent_event =
        st_metrics_counter("stint_predictor_recent_source_total", "source=\"event\"", recent_help);
    pc->m_recent_lengths = st_metrics_counter("stint_predictor_recent_source_total",
                                              "source=\"lengths\"", recent_help);
    pc->m_overflow = st_metrics_counter(
        "stint_predictor_applied_overflow_total", NULL,
        "records dead-lettered because one user's records spanned more partitions in one batch "
        "than ST_APPLIED_PARTS_MAX");
    snprintf(pc->loaded_version, sizeof pc->loaded_version, "%s", st_bwatch_version(model));
    char labels[160];
    snprintf(labels, sizeof labels, "model_version=\"%s\"", pc->loaded_version);
    pc->m_model_info =
        st_metrics_gauge("stint_predictor_model_info", labels, "1 for the model version in use");
    st_metric_set(pc->m_model_info, 1);
    return pc;
}

void pc_destroy(pc_t *pc)
{
    if (!pc)
        return;
    st_avro_codec_destroy(pc->in_codec);
    st_avro_codec_destroy(pc->pred_codec);
    st_avro_codec_destroy(pc->outcome_codec);
    st_buf_free(&pc->enc);
    st_buf_free(&pc->ids);
    st_buf_free(&pc->open_text);
    free(pc->recent);
    free(pc->reads);
    free(pc->writes);
    for (int i = 0; i < pc->cap_users; i++)
        free(pc->users[i].open);
    free(pc->users);
    free(pc->ev);
    free(pc->slots);
    free(pc);
}

void pc_set_input_hook(pc_t *pc, pc_input_hook_fn fn, void *arg)
{
    pc->input_hook = fn;
    pc->input_hook_arg = arg;
}

static void note_swap(pc_t *pc)
{
    if (!st_bwatch_swap(pc->model))
        return;
    st_metric_inc(pc->m_swaps, 1);
    st_metric_set(pc->m_model_info, 0);
    char labels[160];
    snprintf(pc->loaded_version, sizeof pc->loaded_version, "%s", st_bwatch_version(pc->model));
    snprintf(labels, sizeof labels, "model_version=\"%s\"", pc->loaded_version);
    pc->m_model_info =
        st_metrics_gauge("stint_predictor_model_info", labels, "1 for the model version in use");
    st_metric_set(pc->m_model_info, 1);
}

/* The index of user id in the batch's table, added when new; -1 on no memory. */
static int user_index(pc_t *pc, const char *id, size_t len)
{
    if ((size_t)pc->n_users * 2 >= pc->n_slots) {
        size_t ns = pc->n_slots ? pc->n_slots * 2 : 1024;
        int *s = calloc(ns, sizeof *s);
        if (!s)
            return -1;
        for (int u = 0; u < pc->n_users; u++) {
            size_t h = st_hash64(pc->users[u].id, strlen(pc->users[u].id), 0) & (ns - 1);
            while (s[h])
                h = (h + 1) & (ns - 1);
            s[h] = u + 1;
        }
        free(pc->slots);
        pc->slots = s;
        pc->n_slots = ns;
    }
    size_t h = st_hash64(id, len, 0) & (pc->n_slots - 1);
    while (pc->slots[h]) {
        pc_user_t *u = &pc->users[pc->slots[h] - 1];
        if (strlen(u->id) == len && memcmp(u->id, id, len) == 0)
            return pc->slots[h] - 1;
        h = (h + 1) & (pc->n_slots - 1);
    }
    if (pc->n_users == pc->cap_users) {
        int nc = pc->cap_users ? pc->cap_users * 2 : 256;
        pc_user_t *p = realloc(pc->users, (size_t)nc * sizeof *p);
        if (!p)
            return -1;
        memset(p + pc->cap_users, 0, (size_t)(nc - pc->cap_users) * sizeof *p);
        pc->users = p;
        pc->cap_users = nc;
    }
    pc_user_t *u = &pc->users[pc->n_users];
    pred_open_t *keep_open = u->open;
    memset(u, 0, sizeof *u);
    if (!keep_open && !(keep_open = malloc(sizeof *keep_open)))
        return -1;
    u->open = keep_open;
    pred_open_reset(u->open);
    memcpy(u->id, id, len);
    u->id[len] = 0;
    st_applied_reset(&u->applied);
    u->cluster = -1;
    u->first_ev = u->last_ev = -1;
    pc->slots[h] = pc->n_users + 1;
    return pc->n_users++;
}

static int grow_recent(pc_t *pc, size_t extra)
{
    if (pc->n_recent + extra <= pc->cap_recent)
        return 0;
    size_t nc = pc->cap_recent ? pc->cap_recent : 4096;
    while (nc < pc->n_recent + extra)
        nc *= 2;
    pc_recent_t *p = realloc(pc->recent, nc * sizeof *p);
    if (!p)
        return -1;
    pc->recent = p;
    pc->cap_recent = nc;
    return 0;
}

/* Copies the fields of one decoded SessionEvent into e (its recent sessions and retracted ids
 * into the batch's pools). Returns 0, or -2 (no memory). */
static int read_event(pc_t *pc, const st_rec_session_event_t *v, pc_event_t *e)
{
    memcpy(e->session_id, v->session_id.ptr, v->session_id.len);
    e->session_id[v->session_id.len] = 0;
    e->kind = v->kind == ST_SESSION_EVENT_CLOSED ? KIND_CLOSED : KIND_OPENED;
    e->start_ms = v->start_ms;
    e->session_index = v->session_index;
    e->mean_s = v->mean_session_length_s.v;
    e->has_mean = v->mean_session_length_s.set && isfinite(e->mean_s);
    e->median_s = v->median_session_length_s.v;
    e->has_median = v->median_session_length_s.set && isfinite(e->median_s);
    e->gap_s = v->gap_since_prev_s.v;
    e->has_gap = v->gap_since_prev_s.set && isfinite(e->gap_s);
    e->revision = v->revision;
    uint32_t nr = v->n_recent_lengths;
    /* The details count only when each array is aligned with recent_lengths_s. */
    e->detail = nr > 0 && v->n_recent_starts == nr && v->n_recent_track_counts == nr &&
                v->n_recent_unknown_shares == nr;
    if (grow_recent(pc, nr) != 0)
        return -2;
    e->recent_off = pc->n_recent;
    e->n_recent = 0;
    for (uint32_t i = 0; i < nr; i++) {
        pc_recent_t *r = &pc->recent[pc->n_recent + (size_t)e->n_recent++];
        double d = v->recent_lengths_s[i];
        r->length_s = isfinite(d) && d > 0 ? d : 0;
        r->start_ms = 0;
        r->track_count = 0;
        r->unknown_share = 0;
        if (e->detail) {
            double us = v->recent_unknown_shares[i];
            if (!isfinite(us))
                e->detail = false;
            r->start_ms = v->recent_starts_ms[i];
            r->track_count = v->recent_track_counts[i] > 0 ? v->recent_track_counts[i] : 0;
            r->unknown_share = isfinite(us) ? us : 0;
        }
    }
    for (int i = 1; e->detail && i < e->n_recent; i++)
        if (pc->recent[pc->n_recent + (size_t)i].start_ms <=
            pc->recent[pc->n_recent + (size_t)i - 1].start_ms)
            e->detail = false; /* not a sequence of sessions: lengths only */
    pc->n_recent += (size_t)e->n_recent;
    e->ids_off = pc->ids.len;
    e->n_retracted = 0;
    for (uint32_t i = 0; i < v->n_retracted; i++) {
        st_str_t id = v->retracted_session_ids[i];
        if (id.len == 0 || id.len > PC_SID_MAX || memchr(id.ptr, 0, id.len))
            continue; /* not an id this predictor can have stored */
        if (st_buf_append(&pc->ids, id.ptr, id.len) != 0 || st_buf_append(&pc->ids, "", 1) != 0)
            return -2;
        e->n_retracted++;
    }
    e->gender = 0;
    if (v->gender.ptr && v->gender.len == 1 && (v->gender.ptr[0] == 'm' || v->gender.ptr[0] == 'f'))
        e->gender = v->gender.ptr[0];
    e->age = v->age.set && v->age.v >= 0 ? v->age.v : -1;
    e->country[0] = 0;
    if (v->country.ptr) {
        size_t len =
            v->country.len < sizeof e->country - 1 ? v->country.len : sizeof e->country - 1;
        memcpy(e->country, v->country.ptr, len);
        e->country[len] = 0;
    }
    e->registered_ms = v->registered_ms.set ? v->registered_ms.v : 0;
    if (e->kind == KIND_CLOSED) {
        e->length_s = v->length_s.v; /* the codec checked: finite, >= 0 */
        e->track_count = v->track_count > 0 ? v->track_count : 0;
        e->unknown_share = v->unknown_duration_share.set && isfinite(v->unknown_duration_share.v)
                               ? v->unknown_duration_share.v
                               : 0;
        e->last_start_ms = v->last_start_ms.set && v->last_start_ms.v > e->start_ms
                               ? v->last_start_ms.v
                               : e->start_ms;
    }
    return 0;
}

static int grow_events(pc_t *pc, size_t n)
{
    if (n <= pc->cap_ev)
        return 0;
    pc_event_t *p = realloc(pc->ev, n * sizeof *p);
    if (!p)
        return -1;
    pc->ev = p;
    pc->cap_ev = n;
    return 0;
}

/* A stored prediction's fields (the payload text on_opened writes). */
typedef struct {
    double predicted_s, baseline_s;
    int cluster;
    char kind;
    char version[ST_BWATCH_VERSION_MAX];
} pc_stored_t;

static bool parse_stored(const char *s, pc_stored_t *p)
{
    _Static_assert(ST_BWATCH_VERSION_MAX == 80, "the width below is ST_BWATCH_VERSION_MAX - 1");
    return sscanf(s, "%lf %lf %d %c %79s", &p->predicted_s, &p->baseline_s, &p->cluster, &p->kind,
                  p->version) == 5;
}

/* Publishes one Prediction (key user). */
static int emit_prediction(pc_t *pc, const char *user, const char *sid, int64_t start_ms,
                           const pc_stored_t *p, int32_t revision, bool retracted, st_out_t *out,
                           st_err_t *err)
{
    st_rec_prediction_t rec = {
        .session_id = st_str(sid),
        .user_id = st_str(user),
        .session_start_ms = start_ms,
        .predicted_length_s = p->predicted_s,
        .baseline_length_s = p->baseline_s,
        .cluster = {p->cluster >= 0, p->cluster},
        .model_version = st_str(p->version),
        .predictor = p->kind == 'M' ? ST_REC_PREDICTOR_MODEL : ST_REC_PREDICTOR_BASELINE,
        .revision = revision,
        .retracted = retracted,
        .made_at_ms = st_time_wall_ms(),
    };
    if (st_rec_prediction_encode(pc->pred_codec, &rec, &pc->enc, err) != 0)
        return -1;
    if (st_out_produce(out, pc->cfg.predictions_topic, user, strlen(user), pc->enc.data,
                       pc->enc.len) != 0) {
        st_err_nomem(err);
        return -1;
    }
    return 0;
}

/* Publishes the retraction of open prediction x: its fields again, revision one above it,
 * retracted. */
static int emit_retraction(pc_t *pc, pc_event_t *e, const pred_open_entry_t *x, st_out_t *out,
                           st_err_t *err)
{
    pc_stored_t p;
    if (!parse_stored(x->payload, &p)) {
        memset(&p, 0, sizeof p);
        p.cluster = -1;
        p.kind = 'B';
        snprintf(p.version, sizeof p.version, "none");
    }
    e->retractions_out++;
    return emit_prediction(pc, pc->users[e->user].id, x->sid, x->start_ms, &p, x->revision + 1,
                           true, out, err);
}

/* The recent sessions of the model's input: the newest want of the OPENED's sessions when it
 * carries that many with their details (RECENT_EVENT), as training's rows have them; else its
 * lengths (RECENT_LENGTHS: a sequence model is not shown such an input, see on_opened). Fills
 * the arrays (PC_RECENT_MAX entries) and in's recent fields. */
static int recent_input(const pc_t *pc, const pc_event_t *e, int want, double *lengths,
                        int64_t *starts, int *tracks, double *unknown, st_bundle_input_t *in)
{
    const pc_recent_t *r = pc->recent + e->recent_off;
    int nr = e->n_recent;
    if (e->detail && nr >= want) {
        for (int j = 0; j < want; j++) {
            const pc_recent_t *x = &r[nr - want + j];
            lengths[j] = x->length_s;
            starts[j] = x->start_ms / 1000;
            tracks[j] = x->track_count;
            unknown[j] = x->unknown_share;
        }
        in->starts_s = starts;
        in->track_counts = tracks;
        in->unknown_shares = unknown;
        in->n_recent = want;
        return RECENT_EVENT;
    }
    int n = nr < want ? nr : want;
    for (int j = 0; j < n; j++)
        lengths[j] = r[nr - n + j].length_s;
    in->n_recent = n;
    return RECENT_LENGTHS;
}

/* An OPENED (a new session, or a correction of one already predicted): first the sessions it
 * retracts, then its prediction, stored as the session's open prediction. */
static int on_opened(pc_t *pc, pc_event_t *e, st_out_t *out, st_err_t *err)
{
    pc_user_t *u = &pc->users[e->user];
    pred_open_t *o = u->open;
    const char *rid = pc->ids.data ? (const char *)pc->ids.data + e->ids_off : NULL;
    for (int k = 0; k < e->n_retracted; k++, rid += strlen(rid) + 1) {
        if (strcmp(rid, e->session_id) == 0)
            continue;
        int i = pred_open_find(o, rid);
        int64_t start_ms = pred_open_sid_start_ms(rid);
        if (i >= 0) {
            pred_open_entry_t x;
            pred_open_remove(o, i, &x);
            start_ms = x.start_ms;
            if (emit_retraction(pc, e, &x, out, err) != 0)
                return -1;
        }
        /* Remembered even when never predicted here: a copy of its OPENED may still come. */
        pred_open_retract(o, rid, start_ms);
        u->open_changed = true;
    }
    pc_stored_t p;
    p.baseline_s = e->session_index > 0 && e->has_mean
                       ? e->mean_s
                       : st_bwatch_global_baseline_s(pc->model, pc->cfg.baseline_default_s);
    p.predicted_s = p.baseline_s;
    p.cluster = -1;
    bool model = false;
    e->recent_src = RECENT_NONE;
    st_bundle_t *b = st_bwatch_bundle(pc->model);
    if (b) {
        double lengths[PC_RECENT_MAX], unknown[PC_RECENT_MAX];
        int64_t starts[PC_RECENT_MAX];
        int tracks[PC_RECENT_MAX];
        int need = st_bwatch_history_needed(pc->model); /* <= ST_SESSION_RECENT_MAX */
        int want = e->session_index < need ? e->session_index : need;
        st_bundle_input_t in;
        memset(&in, 0, sizeof in);
        int src = recent_input(pc, e, want, lengths, starts, tracks, unknown, &in);
        e->recent_src = want > 0 ? src : RECENT_NONE;
        in.lengths_s = lengths;
        in.n_sessions = e->session_index;
        in.mean_length_s = e->session_index > 0 ? (e->has_mean ? e->mean_s : NAN) : 0;
        in.median_length_s = e->session_index > 0 ? (e->has_median ? e->median_s : NAN) : 0;
        in.start_s = e->start_ms / 1000;
        in.gap_s = e->has_gap ? e->gap_s : -1;
        in.gender = e->gender;
        in.age = e->age;
        in.country = e->country;
        in.registered_s = e->registered_ms / 1000;
        int cluster = st_bundle_user_cluster(b, u->id);
        if (cluster < 0 && u->cluster >= 0 && !u->cluster_cold &&
            strcmp(u->cluster_version, pc->loaded_version) == 0 && u->cluster < st_bundle_k(b))
            cluster = u->cluster;
        in.cluster = cluster;
        p.cluster = cluster;
        double v;
        /* A sequence or gbt model trained on full rows (the last W + 1 sessions with their
         * details) is not shown an input it never saw: without the details, or with fewer
         * sessions than the user has, the baseline answers (counted as source="lengths"). A
         * parity model reads the last length and the mean only. */
        bool incomplete =
            want > 0 && src == RECENT_LENGTHS && st_bundle_spec(b)->kind != ST_BUNDLE_PARITY;
        /* Nor without the history's mean, or a sequence or gbt model without its median (an
         * OPENED of an older sessionizer may lack them): training always has them, over all
         * earlier sessions and the last ST_SESSION_MEDIAN_WINDOW, which the recent lengths here
         * cannot give back. */
        bool no_stats =
            e->session_index > 0 &&
            (!e->has_mean || (!e->has_median && st_bundle_spec(b)->kind != ST_BUNDLE_PARITY));
        if (no_stats) {
            if (++pc->incomplete_inputs <= 10 || pc->incomplete_inputs % 10000 == 0)
                st_log_warn("model_input_incomplete",
                            "user=%s session_id=%s mean=%s median=%s total=%llu "
                            "hint=\"baseline served; the OPENED event has no history mean or "
                            "median\"",
                            u->id, e->session_id, e->has_mean ? "yes" : "no",
                            e->has_median ? "yes" : "no",
                            (unsigned long long)pc->incomplete_inputs);
        } else if (incomplete) {
            if (++pc->incomplete_inputs <= 10 || pc->incomplete_inputs % 10000 == 0)
                st_log_warn("model_input_incomplete",
                            "user=%s session_id=%s want=%d have=%d details=%s total=%llu "
                            "hint=\"baseline served; the sessionizer's session.recent_n must be at "
                            "least %d\"",
                            u->id, e->session_id, want, e->n_recent, e->detail ? "yes" : "no",
                            (unsigned long long)pc->incomplete_inputs,
                            st_bwatch_history_needed(pc->model));
        } else {
            if (pc->input_hook)
                pc->input_hook(pc->input_hook_arg, e->session_id, b, &in);
            if (st_bundle_predict(b, &in, &v) == 0 && isfinite(v)) {
                p.predicted_s = v;
                model = true;
            } else {
                st_metric_inc(pc->m_model_fail, 1);
            }
        }
    }
    e->model = model;
    p.kind = model ? 'M' : 'B';
    snprintf(p.version, sizeof p.version, "%s", pc->loaded_version);
    pred_open_entry_t x, dropped;
    e->corrected = pred_open_find(o, e->session_id) >= 0;
    snprintf(x.sid, sizeof x.sid, "%s", e->session_id);
    x.start_ms = e->start_ms;
    x.revision = e->revision;
    x.made_s = st_time_wall_ms() / 1000;
    snprintf(x.payload, sizeof x.payload, "%.17g %.17g %d %c %s", p.predicted_s, p.baseline_s,
             p.cluster, p.kind, p.version);
    if (pred_open_put(o, &x, &dropped) == 1) {
        e->dropped++;
        st_log_warn("open_dropped", "user=%s session_id=%s", u->id, dropped.sid);
    }
    u->open_changed = true;
    return emit_prediction(pc, u->id, e->session_id, e->start_ms, &p, e->revision, false, out, err);
}

/* A CLOSED: joins the session's open prediction (its latest revision) into an outcome, and
 * retracts every other open prediction that starts within the session (its listens belong to
 * this session). */
static int on_closed(pc_t *pc, pc_event_t *e, st_out_t *out, st_err_t *err)
{
    pc_user_t *u = &pc->users[e->user];
    pred_open_t *o = u->open;
    st_applied_closed(&u->applied, e->start_ms);
    /* The prediction: this session's open one when it is not older than the TTL. */
    pred_open_entry_t joined;
    bool found = false;
    int i = pred_open_find(o, e->session_id);
    if (i >= 0) {
        pred_open_remove(o, i, &joined);
        found = st_time_wall_ms() / 1000 - joined.made_s <= pc->cfg.prediction_ttl_s;
    }
    for (i = 0; i < o->n;) {
        if (o->e[i].start_ms >= e->start_ms && o->e[i].start_ms <= e->last_start_ms) {
            pred_open_entry_t x;
            pred_open_remove(o, i, &x);
            if (emit_retraction(pc, e, &x, out, err) != 0)
                return -1;
        } else {
            i++;
        }
    }
    if (e->last_start_ms > o->closed_last_ms)
        o->closed_last_ms = e->last_start_ms;
    u->open_changed = true;
    pc_stored_t p;
    if (!found || !parse_stored(joined.payload, &p)) {
        st_metric_inc(pc->m_unmatched, 1);
        return 0;
    }
    e->has_outcome = true;
    e->outcome_model = p.kind == 'M';
    e->abs_error_s = fabs(p.predicted_s - e->length_s);
    e->baseline_abs_error_s = fabs(p.baseline_s - e->length_s);
    st_rec_outcome_t rec = {
        .session_id = st_str(e->session_id),
        .user_id = st_str(u->id),
        .session_start_ms = e->start_ms,
        .predicted_length_s = p.predicted_s,
        .baseline_length_s = p.baseline_s,
        .actual_length_s = e->length_s,
        .abs_error_s = e->abs_error_s,
        .baseline_abs_error_s = e->baseline_abs_error_s,
        .cluster = {p.cluster >= 0, p.cluster},
        .model_version = st_str(p.version),
        .predictor = p.kind == 'M' ? ST_REC_PREDICTOR_MODEL : ST_REC_PREDICTOR_BASELINE,
    };
    if (st_rec_outcome_encode(pc->outcome_codec, &rec, &pc->enc, err) != 0)
        return -1;
    if (st_out_produce(out, pc->cfg.outcomes_topic, u->id, strlen(u->id), pc->enc.data,
                       pc->enc.len) != 0) {
        st_err_nomem(err);
        return -1;
    }
    return 0;
}

/* Whether e repeats an event already applied (a re-emitted copy at a new offset). A user's
 * sessions close in start order, and no session starts at or before the last listen of a
 * closed one: an event for such a start is a copy. An OPENED is a copy when its session was
 * retracted, or when the revision stored for it is at least its own. */
static bool is_copy(const pc_user_t *u, const pc_event_t *e)
{
    const pred_open_t *o = u->open;
    if (st_applied_is_copy(&u->applied, e->start_ms) || e->start_ms <= o->closed_last_ms)
        return true;
    if (e->kind != KIND_OPENED)
        return false;
    if (pred_open_is_retracted(o, e->session_id))
        return true;
    int i = pred_open_find(o, e->session_id);
    return i >= 0 && o->e[i].revision >= e->revision;
}

static int grow_io(pc_t *pc, size_t n)
{
    if (n <= pc->cap_io)
        return 0;
    pred_store_user_t *r = realloc(pc->reads, n * sizeof *r);
    if (r)
        pc->reads = r;
    pred_store_write_t *w = realloc(pc->writes, n * sizeof *w);
    if (w)
        pc->writes = w;
    if (!r || !w)
        return -1;
    pc->cap_io = n;
    return 0;
}

/* Reads the batch's users from the store in one round (the clusterer's assignment only when the
 * bundle has per-cluster networks). */
static int read_users(pc_t *pc, st_err_t *err)
{
    size_t n = (size_t)pc->n_users;
    if (n == 0)
        return 0;
    if (grow_io(pc, n) != 0) {
        st_err_nomem(err);
        return -1;
    }
    st_bundle_t *b = st_bwatch_bundle(pc->model);
    bool want_cluster = b && st_bundle_k(b) > 0;
    for (size_t i = 0; i < n; i++)
        pc->reads[i] = (pred_store_user_t){
            .user = pc->users[i].id, .applied = &pc->users[i].applied, .open = pc->users[i].open};
    if (pc->store->read(pc->store->ctx, pc->reads, n, want_cluster, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        pc_user_t *u = &pc->users[i];
        u->cluster = pc->reads[i].cluster;
        u->cluster_cold = pc->reads[i].cluster_cold;
        snprintf(u->cluster_version, sizeof u->cluster_version, "%s", pc->reads[i].cluster_version);
    }
    return 0;
}

int pc_process(void *ctx, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err)
{
    pc_t *pc = ctx;
    /* A new bundle only between batches: a batch processed again (its produce, its store read
     * or its write failed) must give the outputs it gave the first time, so it keeps the
     * version it started with until it is applied. */
    if (!pc->batch_open)
        note_swap(pc);
    pc->batch_open = n > 0;
    pc->n_ev = 0;
    pc->n_users = 0;
    pc->n_recent = 0;
    pc->batch_overflow = 0;
    st_buf_reset(&pc->ids);
    if (pc->slots)
        memset(pc->slots, 0, pc->n_slots * sizeof *pc->slots);
    pc->pending_apply = false;
    if (n == 0)
        return 0;
    if (grow_events(pc, n) != 0) {
        st_err_nomem(err);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const st_msg_t *m = &msgs[i];
        pc_event_t *e = &pc->ev[pc->n_ev];
        st_rec_session_event_t *v = &pc->ev_rec;
        st_err_t derr = {0};
        const char *why = NULL;
        if (st_rec_session_event_decode(pc->in_codec, m->value, m->value_len, v, &derr) != 0) {
            if (derr.retriable) {
                *err = derr;
                return -1;
            }
            why = derr.text;
        } else if (!st_rec_session_event_time_ok(v, m->timestamp_ms)) {
            why = ST_REC_SESSION_TIME_TEXT;
        } else if (read_event(pc, v, e) == -2) {
            st_err_nomem(err);
            return -1;
        }
        if (why) {
            if (st_out_dead_letter(out, m, "invalid", why) != 0) {
                st_err_nomem(err);
                return -1;
            }
            continue;
        }
        e->user = user_index(pc, v->user_id.ptr, v->user_id.len);
        if (e->user < 0) {
            st_err_nomem(err);
            return -1;
        }
        if (st_applied_slot(&pc->users[e->user].applied, m->partition, true) < 0) {
            pc->batch_overflow++;
            if (st_out_dead_letter(out, m, ST_APPLIED_OVERFLOW_CODE, ST_APPLIED_OVERFLOW_TEXT) !=
                0) {
                st_err_nomem(err);
                return -1;
            }
            continue;
        }
        e->partition = m->partition;
        e->offset = m->offset;
        e->skip = e->dup = e->corrected = false;
        e->has_outcome = e->outcome_model = false;
        e->retractions_out = e->dropped = 0;
        pc->n_ev++;
    }
    if (read_users(pc, err) != 0)
        return -1;
    for (size_t i = 0; i < pc->n_ev; i++) {
        pc_event_t *e = &pc->ev[i];
        pc_user_t *u = &pc->users[e->user];
        int slot = st_applied_slot(&u->applied, e->partition, false);
        if (st_applied_done(&u->applied, slot, e->offset)) {
            e->skip = true;
            st_metric_inc(pc->m_replayed, 1);
            continue;
        }
        int rc = 0;
        e->dup = is_copy(u, e);
        if (e->dup)
            st_metric_inc(pc->m_copies, 1);
        else if (e->kind == KIND_OPENED)
            rc = on_opened(pc, e, out, err);
        else
            rc = on_closed(pc, e, out, err);
        if (rc != 0)
            return -1;
        st_applied_advance(&u->applied, slot, e->offset);
        e->next_ev = -1;
        if (u->last_ev >= 0)
            pc->ev[u->last_ev].next_ev = (int)i;
        else
            u->first_ev = (int)i;
        u->last_ev = (int)i;
        pc->pending_apply = true;
    }
    return 0;
}

int pc_apply(void *ctx, st_err_t *err)
{
    pc_t *pc = ctx;
    if (!pc->pending_apply) {
        pc->batch_open = false;
        return 0;
    }
    /* The users' open-prediction texts first: the buffer moves while it grows. */
    st_buf_reset(&pc->open_text);
    for (int ui = 0; ui < pc->n_users; ui++) {
        pc_user_t *u = &pc->users[ui];
        if (u->first_ev < 0 || !u->open_changed)
            continue;
        u->open_text_off = pc->open_text.len;
        if (pred_open_format(u->open, &pc->open_text) != 0 ||
            st_buf_append(&pc->open_text, "", 1) != 0) {
            st_err_nomem(err);
            return -1;
        }
    }
    size_t nw = 0;
    if (grow_io(pc, (size_t)pc->n_users) != 0) {
        st_err_nomem(err);
        return -1;
    }
    for (int ui = 0; ui < pc->n_users; ui++) {
        const pc_user_t *u = &pc->users[ui];
        if (u->first_ev < 0)
            continue;
        pc->writes[nw++] = (pred_store_write_t){
            .user = u->id,
            .applied = &u->applied,
            .open_text =
                u->open_changed ? (const char *)pc->open_text.data + u->open_text_off : NULL};
    }
    if (pc->store->write(pc->store->ctx, pc->writes, nw, err) != 0)
        return -1;
    for (size_t i = 0; i < pc->n_ev; i++) {
        const pc_event_t *e = &pc->ev[i];
        if (e->skip || e->dup)
            continue;
        if (e->kind == KIND_OPENED) {
            st_metric_inc(e->model ? pc->m_pred_model : pc->m_pred_base, 1);
            if (e->corrected)
                st_metric_inc(pc->m_corrections, 1);
            if (e->recent_src == RECENT_EVENT)
                st_metric_inc(pc->m_recent_event, 1);
            else if (e->recent_src == RECENT_LENGTHS)
                st_metric_inc(pc->m_recent_lengths, 1);
        }
        if (e->retractions_out)
            st_metric_inc(pc->m_retractions, e->retractions_out);
        if (e->dropped)
            st_metric_inc(pc->m_dropped, e->dropped);
        if (e->has_outcome) {
            pred_mae_add(pc->mae, e->outcome_model, e->abs_error_s, e->baseline_abs_error_s);
            st_metric_inc(pc->m_outcomes, 1);
        }
    }
    st_metric_inc(pc->m_overflow, pc->batch_overflow);
    pc->pending_apply = false;
    pc->batch_open = false;
    return 0;
}
