/* st_sessionizer_apply.c - the sessionizer's rule step for one user: released records and a due
 * deadline applied to the state (authoritative OPENED/CLOSED), and the speculative view of early
 * OPENED (announcements, corrections, retractions, revisions). */
#include <inttypes.h>
#include <string.h>

#include "st_log.h"
#include "st_sessionizer.h"
#include "st_sessionizer_impl.h"

static st_session_event_t *event_add(st_sessionizer_t *sz, st_session_event_kind_t kind,
                                     const st_sz_work_t *w, int64_t start_ms,
                                     uint32_t session_index)
{
    if (st_sz_grow((void **)&sz->events, &sz->cap_events, sz->n_events + 1, sizeof *sz->events) !=
        0)
        return NULL;
    st_session_event_t *e = &sz->events[sz->n_events++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    memcpy(e->user_id, w->key.s, w->key.len);
    st_session_id_format(w->key.s, w->key.len, start_ms, e->session_id, sizeof e->session_id);
    e->start_ms = start_ms;
    e->session_index = session_index;
    e->partition = w->partition;
    return e;
}

static uint64_t features_hash(const st_session_features_t *f)
{
    /* st_session_features zeroes the struct first, so padding and unused slots are zero. */
    return st_hash64(f, sizeof *f, 0x0bed);
}

/* A revision is a function of the input (how far past the session's first record the partition
 * had been read), not only a counter kept in the state: a crash between delivering an OPENED and
 * writing the state that counts it must not let the replay reuse its number with other features. */
static uint32_t rev_next(const st_sessionizer_ann_t *a, int64_t seen, int64_t start_offset)
{
    int64_t r = seen - start_offset;
    if (r > INT32_MAX - 1)
        r = INT32_MAX - 1;
    if (a && r <= (int64_t)a->revision)
        r = a->revision < INT32_MAX - 1 ? (int64_t)a->revision + 1 : INT32_MAX - 1;
    return r < 0 ? 0 : (uint32_t)r;
}

static st_sessionizer_ann_t *ann_find(st_sessionizer_state_t *st, int64_t start_ms)
{
    for (uint32_t i = 0; i < st->n_ann; i++)
        if (st->ann[i].start_ms == start_ms)
            return &st->ann[i];
    return NULL;
}

/* Adds an announcement in start order; when full, the oldest one is forgotten (at worst the
 * session is announced again, with a higher revision, or a retraction is missed: the CLOSED that
 * covers it voids it). */
static void ann_insert(st_sessionizer_state_t *st, const st_sessionizer_ann_t *a)
{
    if (st->n_ann == ST_SESSIONIZER_ANN_MAX) {
        memmove(st->ann, st->ann + 1, (st->n_ann - 1) * sizeof st->ann[0]);
        st->n_ann--;
    }
    uint32_t i = st->n_ann;
    while (i > 0 && st->ann[i - 1].start_ms > a->start_ms)
        i--;
    memmove(st->ann + i + 1, st->ann + i, (st->n_ann - i) * sizeof st->ann[0]);
    st->ann[i] = *a;
    st->n_ann++;
}

/* resend: the session was announced before (a correction). */
static st_session_event_t *emit_opened(st_sessionizer_t *sz, const st_sz_work_t *w,
                                       const st_session_features_t *f, uint32_t revision,
                                       bool resend)
{
    st_session_event_t *e =
        event_add(sz, ST_SESSION_EVENT_OPENED, w, f->start_ms, f->session_index);
    if (!e)
        return NULL;
    e->features = *f;
    e->revision = revision;
    sz->stats.opened++;
    if (resend)
        sz->stats.corrections++;
    return e;
}

/* The authoritative OPENED of the state's open session: not sent again when it was announced
 * with these features, re-sent with the next revision when the features differ. */
static int auth_opened(st_sessionizer_t *sz, const st_sz_work_t *w, st_sessionizer_state_t *st,
                       int64_t offset)
{
    st_session_features_t f;
    st_session_features(&st->history, st->open.first_start_ms, &f);
    uint32_t revision = 0;
    bool resend = false;
    if (sz->config.announce) {
        uint64_t h = features_hash(&f);
        st_sessionizer_ann_t *a = ann_find(st, f.start_ms);
        if (a && a->features_hash == h)
            return 0;
        revision = rev_next(a, w->view_seen, a ? a->offset : offset);
        if (a) {
            a->revision = revision;
            a->features_hash = h;
            resend = true;
        } else {
            ann_insert(st, &(st_sessionizer_ann_t){f.start_ms, h, revision, offset});
        }
    }
    return emit_opened(sz, w, &f, revision, resend) ? 0 : -1;
}

/* CLOSED of s; announcements at or before its last listen end here: its own is done, any other
 * is void, which the CLOSED itself says (consumers void every announcement of the user that
 * starts within [start_ms, last_start_ms] of a CLOSED). Nothing of them goes into the event: it
 * must stay a function of the input alone, and the announcements are not. */
static int emit_closed(st_sessionizer_t *sz, const st_sz_work_t *w, st_sessionizer_state_t *st,
                       const st_session_summary_t *s)
{
    st_session_event_t *e =
        event_add(sz, ST_SESSION_EVENT_CLOSED, w, s->start_ms, st->history.session_count);
    if (!e)
        return -1;
    e->summary = *s;
    uint32_t keep = 0;
    for (uint32_t i = 0; i < st->n_ann; i++) {
        const st_sessionizer_ann_t *a = &st->ann[i];
        if (a->start_ms > s->last_start_ms)
            st->ann[keep++] = *a;
        else if (a->start_ms != s->start_ms)
            sz->stats.retractions++;
    }
    st->n_ann = keep;
    st_session_history_add(&st->history, s, sz->config.recent_n);
    sz->stats.closed++;
    return 0;
}

/* The position of a record, below any state position with the same record (closed, seen). */
static st_sessionizer_pos_t rec_pos(int64_t t_ms, uint64_t identity_hash, int64_t offset)
{
    return (st_sessionizer_pos_t){t_ms, identity_hash, offset, 0, INT64_MIN};
}

/* Applies one user's released records and a due deadline to its state. Sets *changed. */
int st_sz_apply_work(st_sessionizer_t *sz, const st_sz_work_t *w, st_sessionizer_state_t *st,
                     bool *changed)
{
    const st_session_rule_t *rule = &sz->config.rule;
    *changed = false;
    for (size_t i = w->first_rec; i != SIZE_MAX; i = sz->rec_next[i]) {
        const st_sz_brec_t *r = &sz->recs[i];
        st_sessionizer_pos_t pos = rec_pos(r->t_ms, r->identity_hash, r->offset);
        sz->stats.released++;
        if (st->has_pos && st_sessionizer_pos_cmp(&pos, &st->pos) <= 0) {
            sz->stats.replay_skips++;
            continue;
        }
        st_session_listen_t l = {r->t_ms, r->duration_ms, r->identity_hash};
        st_session_summary_t closed;
        switch (st_session_step(rule, &st->open, &l, &closed)) {
        case ST_SESSION_STARTED:
            if (auth_opened(sz, w, st, r->offset) != 0)
                return -1;
            break;
        case ST_SESSION_SPLIT:
            if (emit_closed(sz, w, st, &closed) != 0 || auth_opened(sz, w, st, r->offset) != 0)
                return -1;
            break;
        case ST_SESSION_DUPLICATE:
            sz->stats.duplicates++;
            break;
        case ST_SESSION_CONTINUED:
            break;
        }
        pos.seen = st->has_pos ? st->pos.seen : -1;
        st->has_pos = true;
        st->pos = pos;
        sz->stats.applied++;
        *changed = true;
    }
    if (st->open.active &&
        (w->flush || (w->has_wm && st_session_deadline_ms(rule, &st->open) < w->wm_ms))) {
        st_session_summary_t closed;
        st_session_close(&st->open, &closed);
        if (emit_closed(sz, w, st, &closed) != 0)
            return -1;
        st->pos.closed = 1;
        sz->stats.idle_closed++;
        *changed = true;
    }
    return 0;
}

/* Index of the view holding start_ms (start <= t <= last start), else of the last view starting
 * at or before it, else 0. n > 0. */
static uint32_t view_for(const st_sz_view_t *v, uint32_t n, int64_t t_ms)
{
    uint32_t best = 0;
    for (uint32_t i = 0; i < n; i++)
        if (v[i].start_ms <= t_ms)
            best = i;
    return best;
}

/* Early OPENED: the user's speculative view (state + buffered records) against the stored
 * announcements; emits what differs and updates the announcements. Sets *changed when the state
 * must be written. */
int st_sz_apply_view(st_sessionizer_t *sz, const st_sz_work_t *w, const st_sz_pend_t *pend,
                     st_sessionizer_state_t *st, bool *changed)
{
    *changed = false;
    if (!sz->config.announce || (st->has_pos && w->view_seen <= st->pos.seen))
        return 0; /* an older view than the stored one (a replay) decides nothing */
    st_sz_view_t *v = sz->views;
    uint32_t nv = 0;
    st_session_open_t open = st->open;
    st_session_history_t hist = st->history;
    bool truncated = false;
    if (open.active) {
        v[0].start_ms = open.first_start_ms;
        v[0].last_start_ms = open.last_start_ms;
        v[0].offset = w->view_seen;
        st_session_features(&hist, open.first_start_ms, &v[0].features);
        nv = 1;
    }
    for (uint32_t i = 0; pend && i < pend->n; i++) {
        const st_sz_prec_t *b = &pend->v[i];
        st_sessionizer_pos_t pos = rec_pos(b->t_ms, b->identity_hash, b->offset);
        if (st->has_pos && st_sessionizer_pos_cmp(&pos, &st->pos) <= 0)
            continue;
        st_session_listen_t l = {b->t_ms, b->duration_ms, b->identity_hash};
        st_session_summary_t closed;
        st_session_step_t step = st_session_step(&sz->config.rule, &open, &l, &closed);
        if (step == ST_SESSION_CONTINUED) {
            v[nv - 1].last_start_ms = b->t_ms;
            continue;
        }
        if (step == ST_SESSION_DUPLICATE)
            continue;
        if (step == ST_SESSION_SPLIT)
            st_session_history_add(&hist, &closed, sz->config.recent_n);
        if (nv == ST_SESSIONIZER_ANN_MAX) {
            truncated = true; /* announced once the earlier ones close */
            break;
        }
        v[nv].start_ms = v[nv].last_start_ms = b->t_ms;
        v[nv].offset = b->offset;
        st_session_features(&hist, b->t_ms, &v[nv].features);
        nv++;
    }
    for (uint32_t i = 0; i < nv; i++) {
        v[i].hash = features_hash(&v[i].features);
        v[i].ann = -1;
        v[i].emit = false;
        v[i].n_retract = 0;
    }
    /* Match the stored announcements with the view. */
    st_sessionizer_ann_t kept[ST_SESSIONIZER_ANN_MAX];
    uint32_t nk = 0;
    for (uint32_t k = 0; k < st->n_ann; k++) {
        const st_sessionizer_ann_t *a = &st->ann[k];
        uint32_t i = nv ? view_for(v, nv, a->start_ms) : 0;
        /* Beyond a truncated view nothing is known about it: neither confirmed nor retracted. */
        bool beyond = truncated && a->start_ms > v[nv - 1].start_ms;
        if (a->offset > w->view_seen || beyond ||
            (nv > 0 && v[i].start_ms == a->start_ms && v[i].ann < 0)) {
            if (nv > 0 && a->offset <= w->view_seen && !beyond) {
                v[i].ann = (int)nk;
                v[i].emit = a->features_hash != v[i].hash;
            }
            kept[nk++] = *a;
            continue;
        }
        *changed = true;
        sz->stats.retractions++;
        if (nv == 0) {
            char q[ST_SESSION_USER_ID_MAX + 8];
            st_log_warn("session_retraction_lost", "user=%s start_ms=%" PRId64,
                        st_log_quote(w->key.s, q, sizeof q), a->start_ms);
            continue;
        }
        if (v[i].n_retract < ST_SESSION_RETRACT_MAX)
            v[i].retract[v[i].n_retract++] = a->start_ms;
        v[i].emit = true;
    }
    /* Emit new and changed sessions in start order; the announcements follow the view. */
    st->n_ann = 0;
    for (uint32_t k = 0; k < nk; k++)
        ann_insert(st, &kept[k]);
    for (uint32_t i = 0; i < nv; i++) {
        uint32_t revision = 0;
        if (v[i].ann >= 0) {
            if (!v[i].emit)
                continue;
            st_sessionizer_ann_t *a = ann_find(st, v[i].start_ms);
            revision = rev_next(a, w->view_seen, a ? a->offset : v[i].offset);
            if (a) {
                a->revision = revision;
                a->features_hash = v[i].hash;
            }
        } else {
            revision = rev_next(NULL, w->view_seen, v[i].offset);
            ann_insert(st,
                       &(st_sessionizer_ann_t){v[i].start_ms, v[i].hash, revision, v[i].offset});
            sz->stats.announced++;
        }
        st_session_event_t *e = emit_opened(sz, w, &v[i].features, revision, v[i].ann >= 0);
        if (!e)
            return -1;
        e->n_retracted = v[i].n_retract;
        memcpy(e->retracted_start_ms, v[i].retract, v[i].n_retract * sizeof v[i].retract[0]);
        *changed = true;
    }
    if (*changed) {
        if (!st->has_pos) {
            st->has_pos = true;
            st->pos = rec_pos(ST_SESSIONIZER_POS_NONE_MS, 0, -1);
        }
        st->pos.seen = w->view_seen;
    }
    return 0;
}
