/* Unit tests of st_sessionizer: reorder buffer order and late records, idle close by stream time
 * and by wall clock, commit points, and property tests on generated data (seeded): the streaming
 * core equals a straightforward offline reference, also across simulated crashes that lose the
 * reorder buffer and an unfinished batch and replay input from the last commit. */
#include "st_session.h"
#include "st_sessionizer.h"
#include "st_test.h"

#define S      1000LL
#define NPARTS 3

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int64_t urange(int64_t lo, int64_t hi) /* inclusive */
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

typedef struct {
    char user[16];
    int64_t t_ms;
    int64_t duration_ms; /* 0 unknown */
    uint64_t identity_hash;
    int32_t partition;
    int64_t arrival_key; /* time + jitter within the grace */
    int64_t offset;
} lis_t;

typedef struct {
    lis_t *v;
    size_t n, cap;
} lisvec_t;

static void lis_push(lisvec_t *lv, const lis_t *l)
{
    if (lv->n == lv->cap) {
        lv->cap = lv->cap ? lv->cap * 2 : 1024;
        lv->v = realloc(lv->v, lv->cap * sizeof *lv->v);
    }
    lv->v[lv->n++] = *l;
}

/* Generates listens with in-session gaps, idle gaps, gaps exactly at and one second past the
 * boundary, unknown durations, exact duplicates and same-second different tracks. */
static void generate(lisvec_t *lv, int n_users, int per_user, const st_session_rule_t *rule)
{
    for (int u = 0; u < n_users; u++) {
        char user[16];
        snprintf(user, sizeof user, "user_%06d", u);
        int32_t part = (int32_t)(st_hash64(user, strlen(user), 0) % NPARTS);
        int64_t t = 1200000000000LL + urange(0, 86400) * S;
        int64_t d = 0;
        for (int i = 0; i < per_user; i++) {
            lis_t l;
            memset(&l, 0, sizeof l);
            memcpy(l.user, user, sizeof user);
            l.partition = part;
            if (i > 0) {
                uint64_t c = rnd() % 100;
                if (c < 5 && lv->n > 0) {          /* exact duplicate of the previous listen */
                    lis_t prev = lv->v[lv->n - 1]; /* a copy: the push may move v */
                    lis_push(lv, &prev);
                    continue;
                }
                int64_t ref_d = rule->ref == ST_SESSION_REF_END ? d : 0;
                if (c < 8)
                    t += 0; /* same second, another track */
                else if (c < 12)
                    t += ref_d + rule->gap_ms;
                else if (c < 16)
                    t += ref_d + rule->gap_ms + S;
                else if (c < 26)
                    t += ref_d + rule->gap_ms + urange(1, 50000) * S;
                else
                    t += urange(0, 400) * S + urange(0, 999);
            }
            /* The duration is a property of the track (the enricher's catalogue), so exact
             * duplicates carry the same one; every fifth track's is unknown. */
            char track[16];
            int track_no = (int)(rnd() % 40);
            snprintf(track, sizeof track, "track%d", track_no);
            l.identity_hash = st_session_identity_hash("artist", 6, track, strlen(track));
            d = track_no % 5 == 0 ? 0 : 30 * S + (int64_t)(l.identity_hash % (570 * S));
            l.t_ms = t;
            l.duration_ms = d;
            lis_push(lv, &l);
        }
    }
}

/* The offline reference: one straightforward loop per user over sorted, de-duplicated listens. */
typedef struct {
    char user[16];
    int64_t start_ms, length_ms;
    uint32_t track_count, unknown;
    uint32_t index;
    double prev_s, mean_s, gap_s;
} ref_session_t;

static int cmp_user_time(const void *a, const void *b)
{
    const lis_t *x = a, *y = b;
    int c = strcmp(x->user, y->user);
    if (c)
        return c;
    if (x->t_ms != y->t_ms)
        return x->t_ms < y->t_ms ? -1 : 1;
    if (x->identity_hash != y->identity_hash)
        return x->identity_hash < y->identity_hash ? -1 : 1;
    return 0;
}

static size_t reference(const lisvec_t *in, const st_session_rule_t *rule, ref_session_t **out)
{
    lis_t *v = malloc(in->n * sizeof *v);
    memcpy(v, in->v, in->n * sizeof *v);
    qsort(v, in->n, sizeof *v, cmp_user_time);
    ref_session_t *r = calloc(in->n + 1, sizeof *r);
    size_t n = 0;
    size_t i = 0;
    while (i < in->n) {
        size_t j = i; /* one user's listens: v[i..j) */
        while (j < in->n && strcmp(v[j].user, v[i].user) == 0)
            j++;
        int64_t sum_ms = 0, prev_end = 0, prev_len = 0;
        uint32_t count = 0;
        size_t k = i;
        while (k < j) {
            ref_session_t s;
            memset(&s, 0, sizeof s);
            memcpy(s.user, v[k].user, sizeof s.user);
            s.start_ms = v[k].t_ms;
            s.index = count;
            if (count > 0) {
                s.prev_s = prev_len / 1000.0;
                s.mean_s = sum_ms / 1000.0 / count;
                s.gap_s = (s.start_ms - prev_end) / 1000.0;
            }
            size_t last = k;
            s.track_count = 1;
            s.unknown = v[k].duration_ms <= 0;
            size_t m = k + 1;
            for (; m < j; m++) {
                if (v[m].t_ms == v[last].t_ms && v[m].identity_hash == v[last].identity_hash)
                    continue; /* duplicate */
                int64_t gap = v[m].t_ms - v[last].t_ms;
                int64_t dprev = v[last].duration_ms;
                bool same = rule->ref == ST_SESSION_REF_START || dprev <= 0
                                ? gap <= rule->gap_ms
                                : (gap <= dprev || gap - dprev <= rule->gap_ms);
                if (!same)
                    break;
                last = m;
                s.track_count++;
                s.unknown += v[m].duration_ms <= 0;
            }
            int64_t dl = v[last].duration_ms > 0 ? v[last].duration_ms : 0;
            s.length_ms = v[last].t_ms - s.start_ms + dl;
            r[n++] = s;
            sum_ms += s.length_ms;
            prev_len = s.length_ms;
            prev_end = v[last].t_ms + dl;
            count++;
            k = m;
        }
        i = j;
    }
    free(v);
    *out = r;
    return n;
}

/* Topic: per partition, arrival order = time + a jitter of at most the grace (never late). */
static int cmp_arrival(const void *a, const void *b)
{
    const lis_t *x = a, *y = b;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    if (x->arrival_key != y->arrival_key)
        return x->arrival_key < y->arrival_key ? -1 : 1;
    return 0;
}

typedef struct {
    lis_t *v[NPARTS];
    size_t n[NPARTS];
} topic_t;

/* The topic of lv in the arrival order its arrival keys give. */
static void build_topic_as_keyed(lisvec_t *lv, topic_t *tp)
{
    qsort(lv->v, lv->n, sizeof *lv->v, cmp_arrival);
    memset(tp, 0, sizeof *tp);
    for (size_t i = 0; i < lv->n; i++) {
        int32_t p = lv->v[i].partition;
        if (!tp->v[p])
            tp->v[p] = &lv->v[i];
        lv->v[i].offset = (int64_t)tp->n[p]++;
    }
}

static void build_topic(lisvec_t *lv, int64_t jitter_ms, topic_t *tp)
{
    for (size_t i = 0; i < lv->n; i++)
        lv->v[i].arrival_key = lv->v[i].t_ms + (jitter_ms ? urange(0, jitter_ms) : 0);
    build_topic_as_keyed(lv, tp);
}

typedef struct {
    st_session_event_t *v;
    size_t n, cap;
} evlog_t;

static void deliver(st_sessionizer_t *sz, evlog_t *log)
{
    size_t n;
    const st_session_event_t *ev = st_sessionizer_events(sz, &n);
    for (size_t i = 0; i < n; i++) {
        if (log->n == log->cap) {
            log->cap = log->cap ? log->cap * 2 : 1024;
            log->v = realloc(log->v, log->cap * sizeof *log->v);
        }
        log->v[log->n++] = ev[i];
    }
}

static st_sessionizer_record_t record_of(const lis_t *l)
{
    st_sessionizer_record_t r = {l->partition, l->offset,      l->user,         strlen(l->user),
                                 l->t_ms,      l->duration_ms, l->identity_hash};
    return r;
}

typedef struct {
    int crashes;
    uint64_t late;
    int64_t *late_keys; /* partition * 2^40 + offset of every LATE answer, replays included */
    size_t n_late_keys, cap_late_keys;
    uint64_t replay_skips;
    uint64_t duplicates;
    uint64_t ahead; /* AHEAD answers, replays included */
} run_info_t;

/* Streams the topic through the sessionizer in random batches; with crash_pct > 0, crashes at
 * random stages (before delivery, after delivery, in the middle of the state writes, after the
 * writes but before the commit) and restarts from the committed offsets and stream times. */
static void run_stream(const st_sessionizer_config_t *cfg, const topic_t *tp, int crash_pct,
                       st_sessionizer_store_t *store, evlog_t *log, run_info_t *info)
{
    char errstr[256];
    int64_t committed[NPARTS] = {0};
    /* the clock committed with each offset, through its text form as the service stores it */
    char committed_clock[NPARTS][ST_SESSIONIZER_CLOCK_TEXT_MAX] = {{0}};
    size_t cursor[NPARTS] = {0};
    int64_t *keys = info->late_keys;
    size_t cap_keys = info->cap_late_keys;
    memset(info, 0, sizeof *info);
    info->late_keys = keys;
    info->cap_late_keys = cap_keys;
    st_sessionizer_t *sz = NULL;
    bool restart = true;
    for (;;) {
        if (restart) {
            if (sz) {
                st_sessionizer_stats_t stats;
                st_sessionizer_stats(sz, &stats);
                info->late += stats.late;
                info->replay_skips += stats.replay_skips;
                info->duplicates += stats.duplicates;
            }
            st_sessionizer_destroy(sz);
            sz = st_sessionizer_new(cfg, store, errstr, sizeof errstr);
            if (!sz) {
                ST_FAIL_AT("st_sessionizer_new: %s", errstr);
                return;
            }
            for (int p = 0; p < NPARTS; p++) {
                st_err_t err = {0};
                st_sessionizer_clock_t clock;
                if (st_sessionizer_clock_parse(committed_clock[p], strlen(committed_clock[p]),
                                               &clock) != 0)
                    ST_FAIL_AT("clock text \"%s\" does not parse", committed_clock[p]);
                if (st_sessionizer_assign_clock(sz, p, &clock, &err))
                    ST_FAIL_AT("assign: %s", err.text);
                cursor[p] = (size_t)committed[p];
            }
            restart = false;
        }
        size_t left = 0;
        for (int p = 0; p < NPARTS; p++)
            left += tp->n[p] - cursor[p];
        bool flush = left == 0;
        int batch = (int)urange(1, 60);
        for (int i = 0; i < batch && left > 0; i++) {
            int p = (int)(rnd() % NPARTS);
            while (cursor[p] == tp->n[p])
                p = (p + 1) % NPARTS;
            st_sessionizer_record_t rec = record_of(&tp->v[p][cursor[p]++]);
            left--;
            st_err_t err = {0};
            int rc = st_sessionizer_push(sz, &rec, &err);
            if (rc < 0)
                ST_FAIL_AT("push: %s", err.text);
            if (rc == ST_SESSIONIZER_AHEAD)
                info->ahead++;
            if (rc == ST_SESSIONIZER_LATE) {
                if (info->n_late_keys == info->cap_late_keys) {
                    info->cap_late_keys = info->cap_late_keys ? info->cap_late_keys * 2 : 256;
                    info->late_keys =
                        realloc(info->late_keys, info->cap_late_keys * sizeof *info->late_keys);
                }
                info->late_keys[info->n_late_keys++] = ((int64_t)p << 40) + rec.offset;
            }
        }
        st_err_t err = {0};
        if (st_sessionizer_prepare(sz, flush, &err) != 0) {
            ST_FAIL_AT("prepare: %s", err.text);
            break;
        }
        int c = crash_pct ? (int)(rnd() % 100) : 100;
        if (c < crash_pct) { /* crash before the events were delivered */
            info->crashes++;
            restart = true;
            continue;
        }
        deliver(sz, log);
        if (c < 2 * crash_pct) { /* crash after delivery, before the state writes */
            info->crashes++;
            restart = true;
            continue;
        }
        if (c < 3 * crash_pct) { /* crash in the middle of the state writes */
            size_t nw;
            st_sessionizer_writes(sz, &nw);
            st_sessionizer_memstore_fail_after(store, (long)(rnd() % (nw + 1)));
            if (st_sessionizer_finish(sz, &err) == 0)
                st_sessionizer_memstore_fail_after(store, -1); /* nothing to write: no fault */
            info->crashes++;
            restart = true;
            continue;
        }
        if (st_sessionizer_finish(sz, &err) != 0) {
            ST_FAIL_AT("finish: %s", err.text);
            break;
        }
        if (c < 4 * crash_pct) { /* crash after the writes, before the commit */
            info->crashes++;
            restart = true;
            continue;
        }
        for (int p = 0; p < NPARTS; p++) {
            int64_t off;
            st_sessionizer_clock_t clock;
            if (st_sessionizer_commit_clock(sz, p, &off, &clock) == 0) {
                if (off < committed[p])
                    ST_FAIL_AT("commit point went back: %lld < %lld", (long long)off,
                               (long long)committed[p]);
                committed[p] = off;
                st_sessionizer_clock_format(&clock, committed_clock[p], sizeof committed_clock[p]);
            }
        }
        if (flush)
            break;
    }
    st_sessionizer_stats_t stats;
    st_sessionizer_stats(sz, &stats);
    info->late += stats.late;
    info->replay_skips += stats.replay_skips;
    info->duplicates += stats.duplicates;
    ST_EQ_INT(stats.buffered, 0);
    ST_EQ_INT(stats.open_sessions, 0);
    st_sessionizer_destroy(sz);
}

static int cmp_event(const void *a, const void *b)
{
    const st_session_event_t *x = a, *y = b;
    int c = strcmp(x->user_id, y->user_id);
    if (c)
        return c;
    if (x->start_ms != y->start_ms)
        return x->start_ms < y->start_ms ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return 0;
}

/* Sorts and de-duplicates the log (duplicates must be byte-identical); returns duplicates. */
static size_t dedup_log(evlog_t *log)
{
    qsort(log->v, log->n, sizeof *log->v, cmp_event);
    size_t w = 0, dups = 0;
    for (size_t i = 0; i < log->n; i++) {
        if (w > 0 && cmp_event(&log->v[w - 1], &log->v[i]) == 0) {
            if (memcmp(&log->v[w - 1], &log->v[i], sizeof log->v[i]) != 0)
                ST_FAIL_AT("replayed event %s (kind %d) differs from the first one",
                           log->v[i].session_id, (int)log->v[i].kind);
            dups++;
            continue;
        }
        log->v[w++] = log->v[i];
    }
    log->n = w;
    return dups;
}

/* Compares the de-duplicated log with the reference: every session OPENED and CLOSED once, with
 * the reference's length, counts and features. Returns the number of mismatches. */
static int compare_with_reference(const evlog_t *log, const ref_session_t *ref, size_t n_ref)
{
    int bad = 0;
    if (log->n != 2 * n_ref) {
        ST_FAIL_AT("%zu events for %zu reference sessions (want OPENED + CLOSED each)", log->n,
                   n_ref);
        return 1;
    }
    for (size_t i = 0; i < n_ref && bad < 5; i++) {
        const st_session_event_t *o = &log->v[2 * i], *c = &log->v[2 * i + 1];
        const ref_session_t *r = &ref[i];
        if (o->kind != ST_SESSION_EVENT_OPENED || c->kind != ST_SESSION_EVENT_CLOSED ||
            strcmp(c->user_id, r->user) != 0 || c->start_ms != r->start_ms ||
            o->start_ms != r->start_ms) {
            ST_FAIL_AT("session %zu: got %s kinds %d/%d, want %s:%lld", i, c->session_id,
                       (int)o->kind, (int)c->kind, r->user, (long long)r->start_ms);
            bad++;
            continue;
        }
        if (c->summary.length_ms != r->length_ms || c->summary.track_count != r->track_count ||
            c->summary.unknown_duration_count != r->unknown || c->session_index != r->index) {
            ST_FAIL_AT("session %s: length %lld tracks %u unknown %u index %u, want %lld %u %u %u",
                       c->session_id, (long long)c->summary.length_ms, c->summary.track_count,
                       c->summary.unknown_duration_count, c->session_index, (long long)r->length_ms,
                       r->track_count, r->unknown, r->index);
            bad++;
        }
        const st_session_features_t *f = &o->features;
        if (f->session_index != r->index || fabs(f->prev_session_length_s - r->prev_s) > 1e-6 ||
            fabs(f->mean_session_length_s - r->mean_s) > 1e-6 ||
            fabs(f->gap_since_prev_s - r->gap_s) > 1e-6) {
            ST_FAIL_AT("session %s: features index %u prev %.3f mean %.3f gap %.3f, want %u %.3f "
                       "%.3f %.3f",
                       o->session_id, f->session_index, f->prev_session_length_s,
                       f->mean_session_length_s, f->gap_since_prev_s, r->index, r->prev_s,
                       r->mean_s, r->gap_s);
            bad++;
        }
    }
    return bad;
}

/* One seeded run over generated data: the reference sessions and what the stream delivered. */
typedef struct {
    lisvec_t lv;
    ref_session_t *ref_s;
    size_t n_ref;
    st_sessionizer_store_t *store;
    evlog_t log;
    run_info_t info;
} genrun_t;

static void genrun(genrun_t *g, uint64_t seed, st_session_ref_t ref, int64_t jitter_ms,
                   int crash_pct, bool announce)
{
    memset(g, 0, sizeof *g);
    rng_state = seed;
    st_sessionizer_config_t cfg;
    st_sessionizer_config_default(&cfg);
    cfg.rule.ref = ref;
    cfg.recent_n = 4;
    cfg.announce = announce;
    generate(&g->lv, 24, 150, &cfg.rule);
    g->n_ref = reference(&g->lv, &cfg.rule, &g->ref_s);
    topic_t tp;
    build_topic(&g->lv, jitter_ms, &tp);
    g->store = st_sessionizer_memstore_new();
    run_stream(&cfg, &tp, crash_pct, g->store, &g->log, &g->info);
    free(g->info.late_keys);
    g->info.late_keys = NULL;
}

static void genrun_free(genrun_t *g)
{
    st_sessionizer_memstore_destroy(g->store);
    free(g->log.v);
    free(g->ref_s);
    free(g->lv.v);
}

static void property_run(uint64_t seed, st_session_ref_t ref, int64_t jitter_ms, int crash_pct,
                         size_t *total_dups, int *total_crashes)
{
    genrun_t g;
    genrun(&g, seed, ref, jitter_ms, crash_pct, false);
    size_t dups = dedup_log(&g.log);
    if (compare_with_reference(&g.log, g.ref_s, g.n_ref))
        ST_FAIL_AT("seed %llu ref %s jitter %lld crash %d%%: differs from the reference",
                   (unsigned long long)seed, st_session_ref_name(ref), (long long)jitter_ms,
                   crash_pct);
    ST_EQ_INT(g.info.late, 0);
    if (crash_pct == 0) {
        ST_EQ_INT(dups, 0);
        ST_EQ_INT(g.info.replay_skips, 0);
    }
    ST_CHECK(g.info.duplicates > 0); /* the generator made some; each counted once */
    *total_dups += dups;
    *total_crashes += g.info.crashes;
    genrun_free(&g);
}

static void test_stream_equals_reference(void)
{
    size_t dups = 0;
    int crashes = 0;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        property_run(seed, seed % 2 ? ST_SESSION_REF_END : ST_SESSION_REF_START, 0, 0, &dups,
                     &crashes);
        property_run(seed + 100, seed % 2 ? ST_SESSION_REF_START : ST_SESSION_REF_END,
                     ST_SESSIONIZER_GRACE_MS_DEFAULT, 0, &dups, &crashes);
    }
}

static void test_crash_replay(void)
{
    size_t dups = 0;
    int crashes = 0;
    for (uint64_t seed = 1; seed <= 8; seed++)
        property_run(seed * 7919, seed % 2 ? ST_SESSION_REF_END : ST_SESSION_REF_START,
                     ST_SESSIONIZER_GRACE_MS_DEFAULT, 4, &dups, &crashes);
    printf("     crash replay: %d crashes, %zu byte-identical duplicate events\n", crashes, dups);
    ST_CHECK(crashes >= 20);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static size_t sort_unique(int64_t *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_i64);
    size_t w = 1;
    for (size_t i = 1; i < n; i++)
        if (v[i] != v[w - 1])
            v[w++] = v[i];
    return w;
}

/* Shuffles beyond the grace make late records. Without crashes: the result equals the reference
 * over the non-late listens. With crashes: the same records are late (the clock is restored from
 * the commit) and the result is the same; under clock quorums 1 and 3. */
static void test_late_records_across_crashes(void)
{
    size_t total_late = 0;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        rng_state = seed * 104729;
        st_sessionizer_config_t cfg;
        st_sessionizer_config_default(&cfg);
        cfg.clock_quorum = seed % 2 ? 3 : 1; /* the clock's users are restored too */
        lisvec_t lv = {0};
        generate(&lv, 16, 150, &cfg.rule);
        topic_t tp;
        build_topic(&lv, 4 * cfg.grace_ms, &tp);
        st_sessionizer_store_t *store = st_sessionizer_memstore_new();
        evlog_t log = {0};
        run_info_t info = {0};
        run_stream(&cfg, &tp, 0, store, &log, &info);
        st_sessionizer_memstore_destroy(store);
        size_t n_late = sort_unique(info.late_keys, info.n_late_keys);
        total_late += n_late;
        ST_EQ_INT(n_late, info.n_late_keys);
        lisvec_t kept = {0};
        for (size_t i = 0; i < lv.n; i++) {
            int64_t key = ((int64_t)lv.v[i].partition << 40) + lv.v[i].offset;
            if (n_late == 0 || !bsearch(&key, info.late_keys, n_late, sizeof key, cmp_i64))
                lis_push(&kept, &lv.v[i]);
        }
        ref_session_t *ref_s;
        size_t n_ref = reference(&kept, &cfg.rule, &ref_s);
        dedup_log(&log);
        if (compare_with_reference(&log, ref_s, n_ref))
            ST_FAIL_AT("seed %llu: without crashes, differs from the reference without the "
                       "%zu late listens",
                       (unsigned long long)seed, n_late);

        store = st_sessionizer_memstore_new();
        evlog_t log2 = {0};
        run_info_t info2 = {0};
        run_stream(&cfg, &tp, 4, store, &log2, &info2);
        st_sessionizer_memstore_destroy(store);
        size_t n_late2 = sort_unique(info2.late_keys, info2.n_late_keys);
        ST_EQ_INT(n_late2, n_late);
        if (n_late2 == n_late && n_late > 0 &&
            memcmp(info.late_keys, info2.late_keys, n_late * sizeof *info.late_keys) != 0)
            ST_FAIL_AT("seed %llu: other records late after crashes", (unsigned long long)seed);
        dedup_log(&log2);
        if (compare_with_reference(&log2, ref_s, n_ref))
            ST_FAIL_AT("seed %llu: with %d crashes, differs from the reference",
                       (unsigned long long)seed, info2.crashes);
        ST_CHECK(info2.crashes > 0);
        free(ref_s);
        free(kept.v);
        free(lv.v);
        free(log.v);
        free(log2.v);
        free(info.late_keys);
        free(info2.late_keys);
    }
    printf("     late across crashes: %zu late listens over 4 seeds\n", total_late);
    ST_CHECK(total_late > 0);
}

/* Two instances share the store (Redis) with disjoint partitions; mid-run instance 0 stops after
 * delivering a batch it never finished, and instance 1 takes its partitions from their commits
 * (a consumer-group rebalance). The result equals the reference. */
static void test_two_instances_one_stops(void)
{
    for (uint64_t seed = 1; seed <= 4; seed++) {
        rng_state = seed * 31337;
        st_sessionizer_config_t cfg;
        st_sessionizer_config_default(&cfg);
        lisvec_t lv = {0};
        generate(&lv, 24, 120, &cfg.rule);
        ref_session_t *ref_s;
        size_t n_ref = reference(&lv, &cfg.rule, &ref_s);
        topic_t tp;
        build_topic(&lv, cfg.grace_ms, &tp);
        st_sessionizer_store_t *store = st_sessionizer_memstore_new();
        char errstr[128];
        st_sessionizer_t *inst[2] = {st_sessionizer_new(&cfg, store, errstr, sizeof errstr),
                                     st_sessionizer_new(&cfg, store, errstr, sizeof errstr)};
        int owner[NPARTS] = {0, 0, 1};
        int64_t committed[NPARTS] = {0};
        st_sessionizer_clock_t committed_clock[NPARTS];
        memset(committed_clock, 0, sizeof committed_clock);
        size_t cursor[NPARTS] = {0};
        evlog_t log = {0};
        st_err_t err = {0};
        for (int p = 0; p < NPARTS; p++)
            st_sessionizer_assign(inst[owner[p]], p, false, 0, &err);
        int stop_at = (int)urange(5, 40), batch_no = 0;
        bool done[2] = {false, false};
        while (!done[0] || !done[1]) {
            int i = inst[0] && !done[0] && (done[1] || rnd() % 2) ? 0 : 1;
            size_t left = 0;
            for (int p = 0; p < NPARTS; p++)
                if (owner[p] == i)
                    left += tp.n[p] - cursor[p];
            bool flush = left == 0;
            for (int k = (int)urange(1, 40); k > 0 && left > 0; k--) {
                int p = (int)(rnd() % NPARTS);
                while (owner[p] != i || cursor[p] == tp.n[p])
                    p = (p + 1) % NPARTS;
                st_sessionizer_record_t rec = record_of(&tp.v[p][cursor[p]++]);
                left--;
                if (st_sessionizer_push(inst[i], &rec, &err) != ST_SESSIONIZER_BUFFERED)
                    ST_FAIL_AT("push: not buffered (%s)", err.text);
            }
            if (st_sessionizer_prepare(inst[i], flush, &err) != 0)
                ST_FAIL_AT("prepare: %s", err.text);
            deliver(inst[i], &log);
            if (i == 0 && ++batch_no == stop_at) {
                st_sessionizer_destroy(inst[0]);
                inst[0] = NULL;
                done[0] = true;
                for (int p = 0; p < NPARTS; p++) {
                    if (owner[p] != 0)
                        continue;
                    owner[p] = 1;
                    cursor[p] = (size_t)committed[p];
                    st_sessionizer_assign_clock(inst[1], p, &committed_clock[p], &err);
                }
                done[1] = false;
                continue;
            }
            if (st_sessionizer_finish(inst[i], &err) != 0)
                ST_FAIL_AT("finish: %s", err.text);
            for (int p = 0; p < NPARTS; p++)
                if (owner[p] == i)
                    st_sessionizer_commit_clock(inst[i], p, &committed[p], &committed_clock[p]);
            if (flush)
                done[i] = true;
        }
        dedup_log(&log);
        if (compare_with_reference(&log, ref_s, n_ref))
            ST_FAIL_AT("seed %llu: two instances differ from the reference",
                       (unsigned long long)seed);
        st_sessionizer_destroy(inst[0]);
        st_sessionizer_destroy(inst[1]);
        st_sessionizer_memstore_destroy(store);
        free(log.v);
        free(ref_s);
        free(lv.v);
    }
}

static int cmp_time_only(const void *a, const void *b)
{
    const lis_t *x = a, *y = b;
    if (x->t_ms != y->t_ms)
        return x->t_ms < y->t_ms ? -1 : 1;
    return x->arrival_key < y->arrival_key ? -1 : x->arrival_key > y->arrival_key;
}

/* The offline builder's two ways of calling the core: (a) time-ordered input (ties in any order)
 * on one partition with grace 0; (b) maximal grace and one partition per user, listens newest
 * first (the Last.fm 1K file order). Both equal the reference. */
static void test_offline_modes(void)
{
    for (uint64_t seed = 1; seed <= 3; seed++) {
        rng_state = seed * 7777;
        st_sessionizer_config_t cfg;
        st_sessionizer_config_default(&cfg);
        cfg.grace_ms = 0;
        lisvec_t lv = {0};
        generate(&lv, 20, 150, &cfg.rule);
        ref_session_t *ref_s;
        size_t n_ref = reference(&lv, &cfg.rule, &ref_s);
        for (size_t i = 0; i < lv.n; i++)
            lv.v[i].arrival_key = (int64_t)(rnd() >> 1); /* random order among equal times */
        char errstr[128];
        st_err_t err = {0};
        for (int mode = 0; mode < 2; mode++) {
            if (mode == 0) {
                qsort(lv.v, lv.n, sizeof *lv.v, cmp_time_only);
            } else {
                qsort(lv.v, lv.n, sizeof *lv.v, cmp_user_time);
                for (size_t i = 0; i < lv.n / 2; i++) { /* newest first */
                    lis_t t = lv.v[i];
                    lv.v[i] = lv.v[lv.n - 1 - i];
                    lv.v[lv.n - 1 - i] = t;
                }
            }
            cfg.grace_ms = mode == 0 ? 0 : ST_SESSIONIZER_GRACE_MS_MAX;
            st_sessionizer_store_t *store = st_sessionizer_memstore_new();
            st_sessionizer_t *sz = st_sessionizer_new(&cfg, store, errstr, sizeof errstr);
            evlog_t log = {0};
            int32_t part = 0;
            int64_t offset = 0;
            for (size_t i = 0; i < lv.n; i++) {
                lis_t l = lv.v[i];
                if (mode == 1 && i > 0 && strcmp(l.user, lv.v[i - 1].user) != 0) {
                    st_sessionizer_prepare(sz, true, &err);
                    deliver(sz, &log);
                    st_sessionizer_finish(sz, &err);
                    st_sessionizer_revoke(sz, part);
                    part++;
                    offset = 0;
                }
                l.partition = part;
                l.offset = offset++;
                st_sessionizer_record_t rec = record_of(&l);
                if (st_sessionizer_push(sz, &rec, &err) != ST_SESSIONIZER_BUFFERED)
                    ST_FAIL_AT("mode %d: push of listen %zu not buffered (%s)", mode, i, err.text);
                if (mode == 0 && i % 1000 == 999) {
                    st_sessionizer_prepare(sz, false, &err);
                    deliver(sz, &log);
                    st_sessionizer_finish(sz, &err);
                }
            }
            st_sessionizer_prepare(sz, true, &err);
            deliver(sz, &log);
            st_sessionizer_finish(sz, &err);
            ST_EQ_INT(dedup_log(&log), 0);
            if (compare_with_reference(&log, ref_s, n_ref))
                ST_FAIL_AT("seed %llu: offline mode %d differs from the reference",
                           (unsigned long long)seed, mode);
            st_sessionizer_destroy(sz);
            st_sessionizer_memstore_destroy(store);
            free(log.v);
        }
        free(ref_s);
        free(lv.v);
    }
}

/* A consumer of the sessions topic following the documented rules: the highest OPENED revision
 * per session id, retracted ids dropped, a CLOSED voids the user's announcements within [start,
 * last start] and is final (later copies ignored), an OPENED at or before the last listen of the
 * user's latest CLOSED is ignored. */
typedef struct {
    char user[16];
    int64_t start_ms;
    uint32_t revision;
    bool closed;
    st_session_features_t features; /* of the latest OPENED seen while open */
    bool announced;
} cons_t;

typedef struct {
    cons_t *v;
    size_t n, cap;
    size_t retracted, voided_by_closed, copies, closed_unannounced, replaced;
    struct {
        char user[16];
        int64_t last_start_ms;
    } closed_last[64]; /* per user: the last listen of the latest CLOSED */
    size_t n_closed_last;
} consumer_t;

static int64_t *cons_closed_last(consumer_t *c, const char *user)
{
    for (size_t i = 0; i < c->n_closed_last; i++)
        if (strcmp(c->closed_last[i].user, user) == 0)
            return &c->closed_last[i].last_start_ms;
    if (c->n_closed_last == sizeof c->closed_last / sizeof c->closed_last[0])
        return NULL;
    snprintf(c->closed_last[c->n_closed_last].user, 16, "%s", user);
    c->closed_last[c->n_closed_last].last_start_ms = INT64_MIN;
    return &c->closed_last[c->n_closed_last++].last_start_ms;
}

static cons_t *cons_find(consumer_t *c, const char *user, int64_t start_ms)
{
    for (size_t i = c->n; i-- > 0;)
        if (c->v[i].start_ms == start_ms && strcmp(c->v[i].user, user) == 0)
            return &c->v[i];
    return NULL;
}

static cons_t *cons_add(consumer_t *c, const char *user, int64_t start_ms)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->v = realloc(c->v, c->cap * sizeof *c->v);
    }
    cons_t *x = &c->v[c->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->user, sizeof x->user, "%s", user);
    x->start_ms = start_ms;
    return x;
}

static void cons_drop(consumer_t *c, cons_t *x)
{
    *x = c->v[--c->n];
}

static void consume(consumer_t *c, const evlog_t *log)
{
    for (size_t i = 0; i < log->n; i++) {
        const st_session_event_t *e = &log->v[i];
        cons_t *x = cons_find(c, e->user_id, e->start_ms);
        if (e->kind == ST_SESSION_EVENT_OPENED) {
            for (uint32_t k = 0; k < e->n_retracted; k++) {
                cons_t *r = cons_find(c, e->user_id, e->retracted_start_ms[k]);
                if (r && !r->closed) {
                    cons_drop(c, r);
                    c->retracted++;
                }
            }
            x = cons_find(c, e->user_id, e->start_ms);
            const int64_t *cl = cons_closed_last(c, e->user_id);
            if ((x && (x->closed || (x->announced && e->revision <= x->revision))) ||
                (!x && cl && e->start_ms <= *cl)) {
                c->copies++;
                continue;
            }
            if (x && x->announced)
                c->replaced++;
            if (!x)
                x = cons_add(c, e->user_id, e->start_ms);
            x->announced = true;
            x->revision = e->revision;
            x->features = e->features;
            continue;
        }
        if (x && x->closed) {
            c->copies++;
            continue;
        }
        if (!x || !x->announced) {
            c->closed_unannounced++;
            if (!x)
                x = cons_add(c, e->user_id, e->start_ms);
        }
        x->closed = true;
        int64_t *cl = cons_closed_last(c, e->user_id);
        if (cl && e->summary.last_start_ms > *cl)
            *cl = e->summary.last_start_ms;
        for (size_t k = 0; k < c->n;) {
            cons_t *o = &c->v[k];
            if (!o->closed && strcmp(o->user, e->user_id) == 0 && o->start_ms >= e->start_ms &&
                o->start_ms <= e->summary.last_start_ms) {
                cons_drop(c, o);
                c->voided_by_closed++;
                continue;
            }
            k++;
        }
    }
}

static int cmp_cons(const void *a, const void *b)
{
    const cons_t *x = a, *y = b;
    int c = strcmp(x->user, y->user);
    if (c)
        return c;
    return x->start_ms < y->start_ms ? -1 : x->start_ms > y->start_ms;
}

/* Early OPENED on generated data with out-of-order arrival within the grace, with and without
 * crashes: the CLOSED events equal the reference exactly (as before), and a consumer applying the
 * rules ends with exactly the reference sessions, each announced before its CLOSED with the
 * reference features, and nothing announced left open. */
static void early_run(uint64_t seed, st_session_ref_t ref, int crash_pct, uint64_t *retractions,
                      uint64_t *corrections, uint64_t *announced)
{
    genrun_t g;
    genrun(&g, seed, ref, ST_SESSIONIZER_GRACE_MS_DEFAULT, crash_pct, true);
    const evlog_t log = g.log;
    const ref_session_t *ref_s = g.ref_s;
    size_t n_ref = g.n_ref;
    ST_EQ_INT(g.info.late, 0);
    consumer_t c = {0};
    consume(&c, &log);
    /* CLOSED events alone: byte-identical copies, equal to the reference. */
    evlog_t closed = {0};
    for (size_t i = 0; i < log.n; i++) {
        if (log.v[i].kind != ST_SESSION_EVENT_CLOSED)
            continue;
        if (closed.n == closed.cap) {
            closed.cap = closed.cap ? closed.cap * 2 : 1024;
            closed.v = realloc(closed.v, closed.cap * sizeof *closed.v);
        }
        closed.v[closed.n++] = log.v[i];
    }
    dedup_log(&closed);
    ST_EQ_INT(closed.n, n_ref);
    ST_EQ_INT(c.closed_unannounced, 0);
    ST_EQ_INT(c.n, n_ref); /* every open announcement was retracted, voided or closed */
    qsort(c.v, c.n, sizeof *c.v, cmp_cons);
    int bad = 0;
    for (size_t i = 0; i < n_ref && i < c.n && i < closed.n && bad < 5; i++) {
        const ref_session_t *r = &ref_s[i];
        const cons_t *x = &c.v[i];
        const st_session_event_t *ce = &closed.v[i];
        const st_session_features_t *f = &x->features;
        if (strcmp(x->user, r->user) != 0 || x->start_ms != r->start_ms || !x->closed ||
            ce->start_ms != r->start_ms || ce->summary.length_ms != r->length_ms ||
            ce->summary.track_count != r->track_count || f->session_index != r->index ||
            fabs(f->prev_session_length_s - r->prev_s) > 1e-6 ||
            fabs(f->mean_session_length_s - r->mean_s) > 1e-6 ||
            fabs(f->gap_since_prev_s - r->gap_s) > 1e-6) {
            ST_FAIL_AT("seed %llu crash %d%%: session %zu %s:%lld (closed %d, length %lld, index "
                       "%u, prev %.3f, gap %.3f), want %s:%lld (length %lld, index %u, prev %.3f, "
                       "gap %.3f)",
                       (unsigned long long)seed, crash_pct, i, x->user, (long long)x->start_ms,
                       (int)x->closed, (long long)ce->summary.length_ms, f->session_index,
                       f->prev_session_length_s, f->gap_since_prev_s, r->user,
                       (long long)r->start_ms, (long long)r->length_ms, r->index, r->prev_s,
                       r->gap_s);
            bad++;
        }
        /* The recent details describe the previous sessions (checked on the newest one). */
        if (r->index > 0 && f->n_recent_detail > 0 &&
            (f->recent_start_ms[f->n_recent_detail - 1] != ref_s[i - 1].start_ms ||
             f->recent_track_count[f->n_recent_detail - 1] != ref_s[i - 1].track_count)) {
            ST_FAIL_AT("session %s:%lld: newest recent detail start %lld tracks %u, want %lld %u",
                       x->user, (long long)x->start_ms,
                       (long long)f->recent_start_ms[f->n_recent_detail - 1],
                       f->recent_track_count[f->n_recent_detail - 1],
                       (long long)ref_s[i - 1].start_ms, ref_s[i - 1].track_count);
            bad++;
        }
    }
    /* Voided by a CLOSED rather than retracted: a listen pushed and released in one batch. */
    *retractions += c.retracted + c.voided_by_closed;
    *corrections += c.replaced;
    for (size_t i = 0; i < log.n; i++)
        *announced += log.v[i].kind == ST_SESSION_EVENT_OPENED;
    free(c.v);
    free(closed.v);
    genrun_free(&g);
}

static void test_early_opened_property(void)
{
    uint64_t retractions = 0, corrections = 0, announced = 0;
    for (uint64_t seed = 1; seed <= 6; seed++)
        early_run(seed * 31, seed % 2 ? ST_SESSION_REF_END : ST_SESSION_REF_START, 0, &retractions,
                  &corrections, &announced);
    /* The jitter makes listens arrive out of order within the grace: corrections happened. */
    ST_CHECK(retractions > 0);
    ST_CHECK(corrections > 0);
    printf("     early OPENED: %llu OPENED events, %llu corrections, %llu retracted or voided\n",
           (unsigned long long)announced, (unsigned long long)corrections,
           (unsigned long long)retractions);
    for (uint64_t seed = 1; seed <= 40; seed++)
        early_run(seed * 7907, seed % 2 ? ST_SESSION_REF_START : ST_SESSION_REF_END, 8,
                  &retractions, &corrections, &announced);
}

/* Helpers for the hand-written scenarios below: one partition, one store. */
typedef struct {
    st_sessionizer_store_t *store;
    st_sessionizer_t *sz;
    evlog_t log;
    int64_t next_offset;
} fx_t;

static void fx_init(fx_t *fx, const st_sessionizer_config_t *cfg)
{
    char errstr[256];
    memset(fx, 0, sizeof *fx);
    fx->store = st_sessionizer_memstore_new();
    fx->sz = st_sessionizer_new(cfg, fx->store, errstr, sizeof errstr);
}

static int fx_push(fx_t *fx, const char *user, int64_t t_ms, int64_t d_ms, uint64_t h)
{
    st_sessionizer_record_t r = {0, fx->next_offset++, user, strlen(user), t_ms, d_ms, h};
    st_err_t err = {0};
    int rc = st_sessionizer_push(fx->sz, &r, &err);
    if (rc < 0)
        ST_FAIL_AT("push: %s", err.text);
    return rc;
}

static void fx_batch(fx_t *fx, bool flush)
{
    st_err_t err = {0};
    if (st_sessionizer_prepare(fx->sz, flush, &err) != 0)
        ST_FAIL_AT("prepare: %s", err.text);
    deliver(fx->sz, &fx->log);
    if (st_sessionizer_finish(fx->sz, &err) != 0)
        ST_FAIL_AT("finish: %s", err.text);
}

static void fx_free(fx_t *fx)
{
    st_sessionizer_destroy(fx->sz);
    st_sessionizer_memstore_destroy(fx->store);
    free(fx->log.v);
}

static void expect_event(const evlog_t *log, size_t i, st_session_event_kind_t kind,
                         int64_t start_ms, uint32_t revision, int64_t retracted_ms)
{
    if (i >= log->n) {
        ST_FAIL_AT("event %zu missing (%zu events)", i, log->n);
        return;
    }
    const st_session_event_t *e = &log->v[i];
    if (e->kind != kind || e->start_ms != start_ms || e->revision != revision ||
        e->n_retracted != (retracted_ms >= 0) ||
        (retracted_ms >= 0 && e->retracted_start_ms[0] != retracted_ms))
        ST_FAIL_AT("event %zu: kind %d start %lld revision %u retracted %u (%lld), want kind %d "
                   "start %lld revision %u retracted %lld",
                   i, (int)e->kind, (long long)e->start_ms, e->revision, e->n_retracted,
                   (long long)(e->n_retracted ? e->retracted_start_ms[0] : -1), (int)kind,
                   (long long)start_ms, revision, (long long)retracted_ms);
}

/* Hand-written early OPENED cases: announced at the first listen, a session that starts earlier,
 * a session absorbed by the one before it, and changed features. */
static void test_early_opened(void)
{
    const int64_t T = 1241478537000LL, MIN = 60 * S;
    const st_session_event_kind_t O = ST_SESSION_EVENT_OPENED, C = ST_SESSION_EVENT_CLOSED;
    st_sessionizer_config_t cfg;
    st_sessionizer_config_default(&cfg);
    cfg.announce = true;
    fx_t fx;

    /* Starts earlier: B opens a session; L (within the grace, before B) starts it instead. */
    fx_init(&fx, &cfg);
    fx_push(&fx, "u", T, 0, 1);
    fx_batch(&fx, false);
    ST_EQ_INT(fx.log.n, 1); /* at once, not after the grace */
    expect_event(&fx.log, 0, O, T, 0, -1);
    fx_push(&fx, "u", T + 30 * MIN + 30 * S, 0, 2); /* B */
    fx_batch(&fx, false);
    expect_event(&fx.log, 1, O, T + 30 * MIN + 30 * S, 0, -1);
    ST_EQ_INT(fx.log.v[1].features.session_index, 1);
    fx_push(&fx, "u", T + 30 * MIN + 10 * S, 0, 3); /* L */
    fx_batch(&fx, false);
    expect_event(&fx.log, 2, O, T + 30 * MIN + 10 * S, 0, T + 30 * MIN + 30 * S);
    fx_batch(&fx, true);
    ST_EQ_INT(fx.log.n, 5); /* the authoritative OPENED events equal the announced ones */
    expect_event(&fx.log, 3, C, T, 0, -1);
    expect_event(&fx.log, 4, C, T + 30 * MIN + 10 * S, 0, -1);
    ST_EQ_INT(fx.log.v[4].summary.last_start_ms, T + 30 * MIN + 30 * S);
    st_sessionizer_stats_t stats;
    st_sessionizer_stats(fx.sz, &stats);
    ST_EQ_INT(stats.announced, 3);
    ST_EQ_INT(stats.retractions, 1);
    fx_free(&fx);

    /* Absorbed: with a 20 min grace, L fills the gap between A and B: A is re-sent retracting B. */
    cfg.grace_ms = 20 * MIN;
    fx_init(&fx, &cfg);
    fx_push(&fx, "u", T, 0, 1);
    fx_push(&fx, "u", T + 30 * MIN + 30 * S, 0, 2);
    fx_batch(&fx, false);
    /* A revision is how far past the session's first record the partition had been read (at
     * least one more than the last): A's view saw offsets 0..1, the correction's 0..2. */
    expect_event(&fx.log, 0, O, T, 1, -1);
    expect_event(&fx.log, 1, O, T + 30 * MIN + 30 * S, 0, -1);
    fx_push(&fx, "u", T + 15 * MIN, 0, 3);
    fx_batch(&fx, false);
    ST_EQ_INT(fx.log.n, 3);
    expect_event(&fx.log, 2, O, T, 2, T + 30 * MIN + 30 * S);
    fx_batch(&fx, true);
    ST_EQ_INT(fx.log.n, 4);
    expect_event(&fx.log, 3, C, T, 0, -1);
    ST_EQ_INT(fx.log.v[3].summary.track_count, 3);
    fx_free(&fx);

    /* Features: gap 5 min, grace 10 min. B opens with the previous session 0 s long; L extends
     * that session to 4 min, so B is re-sent with revision 1 and the new previous length. */
    cfg.rule.gap_ms = 5 * MIN;
    cfg.grace_ms = 10 * MIN;
    fx_init(&fx, &cfg);
    fx_push(&fx, "u", T, 0, 1);
    fx_push(&fx, "u", T + 10 * MIN, 0, 2);
    fx_batch(&fx, false);
    expect_event(&fx.log, 1, O, T + 10 * MIN, 0, -1);
    ST_NEAR(fx.log.v[1].features.prev_session_length_s, 0, 1e-9);
    fx_push(&fx, "u", T + 4 * MIN, 0, 3);
    fx_batch(&fx, false);
    ST_EQ_INT(fx.log.n, 3);
    expect_event(&fx.log, 2, O, T + 10 * MIN, 1, -1);
    ST_NEAR(fx.log.v[2].features.prev_session_length_s, 240, 1e-9);
    ST_EQ_INT(fx.log.v[2].features.n_recent_detail, 1);
    ST_EQ_INT(fx.log.v[2].features.recent_start_ms[0], T);
    ST_EQ_INT(fx.log.v[2].features.recent_track_count[0], 2);
    /* A crash replay of an older view changes nothing: a second sessionizer on the same store
     * that sees only the first two records announces nothing. */
    char errstr[256];
    st_sessionizer_t *again = st_sessionizer_new(&cfg, fx.store, errstr, sizeof errstr);
    ST_REQUIRE(again != NULL);
    st_err_t err = {0};
    for (int64_t off = 0; off < 2; off++) {
        st_sessionizer_record_t r = {0, off, "u", 1, off ? T + 10 * MIN : T, 0, (uint64_t)off + 1};
        ST_EQ_INT(st_sessionizer_push(again, &r, &err), ST_SESSIONIZER_BUFFERED);
    }
    ST_EQ_INT(st_sessionizer_prepare(again, false, &err), 0);
    size_t n;
    st_sessionizer_events(again, &n);
    ST_EQ_INT(n, 0);
    ST_EQ_INT(st_sessionizer_finish(again, &err), 0);
    st_sessionizer_destroy(again);
    fx_batch(&fx, true);
    expect_event(&fx.log, 3, C, T, 0, -1);
    expect_event(&fx.log, 4, C, T + 10 * MIN, 0, -1);
    ST_EQ_INT(fx.log.n, 5);
    fx_free(&fx);
}

static void test_release_order_and_late(void)
{
    /* Gap 0 from the start: every distinct timestamp is its own session, so OPENED events show
     * the release order. */
    st_sessionizer_config_t cfg;
    st_sessionizer_config_default(&cfg);
    cfg.rule.gap_ms = 0;
    cfg.rule.ref = ST_SESSION_REF_START;
    fx_t fx;
    fx_init(&fx, &cfg);
    ST_REQUIRE(fx.sz != NULL);
    int64_t t0 = 1200000000000LL;
    int64_t times_s[] = {10, 5, 40, 0, 70, 65, 20, 130, 90, 200};
    for (size_t i = 0; i < sizeof times_s / sizeof times_s[0]; i++) {
        ST_EQ_INT(fx_push(&fx, "u", t0 + times_s[i] * S, 0, 1), ST_SESSIONIZER_BUFFERED);
        fx_batch(&fx, false);
    }
    /* Stream time 200 s, watermark 140 s: released 0..130 in order, 200 still buffered. */
    size_t opened = 0;
    int64_t last = -1;
    for (size_t i = 0; i < fx.log.n; i++) {
        if (fx.log.v[i].kind != ST_SESSION_EVENT_OPENED)
            continue;
        if (fx.log.v[i].start_ms <= last)
            ST_FAIL_AT("released out of order: %lld after %lld", (long long)fx.log.v[i].start_ms,
                       (long long)last);
        last = fx.log.v[i].start_ms;
        opened++;
    }
    ST_EQ_INT(opened, 9);
    ST_EQ_INT(last, t0 + 130 * S);
    ST_EQ_INT(st_sessionizer_lowest_unreleased_offset(fx.sz, 0), 9);

    /* Late: below stream time - grace (140 s) on arrival. 140 s itself is not late. */
    ST_EQ_INT(fx_push(&fx, "u", t0 + 139 * S, 0, 1), ST_SESSIONIZER_LATE);
    ST_EQ_INT(fx_push(&fx, "v", t0 + 100 * S, 0, 1), ST_SESSIONIZER_LATE);
    ST_EQ_INT(fx_push(&fx, "u", t0 + 140 * S, 0, 1), ST_SESSIONIZER_BUFFERED);
    st_sessionizer_stats_t stats;
    st_sessionizer_stats(fx.sz, &stats);
    ST_EQ_INT(stats.late, 2);
    ST_EQ_INT(stats.buffered, 2);
    fx_batch(&fx, true);
    st_sessionizer_stats(fx.sz, &stats);
    ST_EQ_INT(stats.opened, 11); /* the late ones changed nothing */
    ST_EQ_INT(stats.closed, 11);
    ST_EQ_INT(st_sessionizer_lowest_unreleased_offset(fx.sz, 0), 13);

    /* Offsets must grow; bad user ids are rejected with a reason. */
    st_sessionizer_record_t r = {0, 5, "u", 1, t0 + 500 * S, 0, 1};
    st_err_t err = {0};
    ST_EQ_INT(st_sessionizer_push(fx.sz, &r, &err), -1);
    ST_EQ_INT(err.code, ST_ERR_INVALID);
    r.offset = 100;
    r.user_id_len = 0;
    st_err_clear(&err);
    ST_EQ_INT(st_sessionizer_push(fx.sz, &r, &err), -1);
    ST_CHECK(strstr(err.text, "user id") != NULL);
    ST_EQ_INT(st_sessionizer_lowest_unreleased_offset(fx.sz, 0), 101); /* the DLQ takes it */
    fx_free(&fx);
}

/* lv plus one listen of its user_000003 dated ahead_ms after the middle listen of that user's
 * partition, arriving right after it (a client with a wrong clock, mid-replay). */
static void with_one_listen_ahead(const lisvec_t *lv, int64_t ahead_ms, lisvec_t *out)
{
    memset(out, 0, sizeof *out);
    int32_t part = -1;
    for (size_t i = 0; i < lv->n; i++) {
        lis_push(out, &lv->v[i]);
        if (strcmp(lv->v[i].user, "user_000003") == 0)
            part = lv->v[i].partition;
    }
    /* the middle listen of the partition in arrival order */
    qsort(out->v, out->n, sizeof *out->v, cmp_arrival);
    size_t n_part = 0, seen = 0;
    for (size_t i = 0; i < out->n; i++)
        n_part += out->v[i].partition == part;
    for (size_t i = 0; i < out->n; i++) {
        if (out->v[i].partition != part || ++seen != n_part / 2)
            continue;
        lis_t l = out->v[i];
        snprintf(l.user, sizeof l.user, "user_000003");
        l.t_ms = out->v[i].t_ms + ahead_ms;
        l.arrival_key = out->v[i].arrival_key; /* arrives with it: ties keep this order */
        l.identity_hash = 0x5eedULL;
        l.duration_ms = 200 * S;
        lis_push(out, &l);
        break;
    }
}

/* One listen dated a day ahead, mid-stream: with the quorum clock no other listen is late and
 * every session (the early listen's own user's included) is what offline gives for the same
 * listens, with and without crashes; under the earlier rule (quorum 1) the same stream makes other
 * users' listens late, so the check can fail. */
static void test_clock_one_listen_ahead(void)
{
    rng_state = 4242;
    st_sessionizer_config_t cfg;
    st_sessionizer_config_default(&cfg);
    cfg.clock_quorum = 3;
    lisvec_t lv = {0}, all;
    generate(&lv, 16, 150, &cfg.rule);
    for (size_t i = 0; i < lv.n; i++)
        lv.v[i].arrival_key = lv.v[i].t_ms;
    with_one_listen_ahead(&lv, 86400 * S, &all);
    topic_t tp;
    build_topic_as_keyed(&all, &tp);
    ref_session_t *ref_s;
    size_t n_ref = reference(&all, &cfg.rule, &ref_s);
    for (int crash_pct = 0; crash_pct <= 4; crash_pct += 4) {
        st_sessionizer_store_t *store = st_sessionizer_memstore_new();
        evlog_t log = {0};
        run_info_t info = {0};
        run_stream(&cfg, &tp, crash_pct, store, &log, &info);
        st_sessionizer_memstore_destroy(store);
        printf("     one listen a day ahead, %d crashes: %llu late, %llu ahead\n", info.crashes,
               (unsigned long long)info.late, (unsigned long long)info.ahead);
        ST_EQ_INT(info.late, 0);
        ST_EQ_INT(info.ahead, 0);
        dedup_log(&log);
        if (compare_with_reference(&log, ref_s, n_ref))
            ST_FAIL_AT("%d crashes: sessions differ from offline", info.crashes);
        free(log.v);
        free(info.late_keys);
    }
    /* The earlier rule: the listen moves its partition's clock a day ahead. */
    st_sessionizer_config_t one = cfg;
    one.clock_quorum = 1;
    st_sessionizer_store_t *store = st_sessionizer_memstore_new();
    evlog_t log = {0};
    run_info_t info = {0};
    run_stream(&one, &tp, 0, store, &log, &info);
    st_sessionizer_memstore_destroy(store);
    printf("     the same under quorum 1: %llu other listens late\n",
           (unsigned long long)info.late);
    ST_CHECK(info.late > 10);
    free(log.v);
    free(info.late_keys);
    free(ref_s);
    free(all.v);
    free(lv.v);
}

/* Past ahead_max_ms the listen is refused (AHEAD), counted in the clock but not kept; everyone
 * else's sessions are offline's without it. */
static void test_clock_ahead_bound(void)
{
    st_sessionizer_config_t cfg;
    st_sessionizer_config_default(&cfg);
    cfg.clock_quorum = 3;
    cfg.ahead_max_ms = 12 * 3600 * S;
    /* A busy partition: 5 users of each partition listening every 3 minutes for 4 hours, in two
     * sessions (a 40 minute break after 2 hours), and every user's listens on one partition. */
    lisvec_t lv = {0}, all;
    for (int u = 0; u < 3 * 5; u++) {
        for (int i = 0; i < 80; i++) {
            lis_t l = {0};
            snprintf(l.user, sizeof l.user, "user_%06d", u);
            l.partition = u % NPARTS;
            l.t_ms = 1200000000000LL + u * 7 * S + i * 180 * S + (i >= 40 ? 2400 * S : 0);
            l.duration_ms = i % 7 == 0 ? 0 : 170 * S;
            l.identity_hash = st_hash64(&i, sizeof i, (uint64_t)u);
            l.arrival_key = l.t_ms;
            lis_push(&lv, &l);
        }
    }
    with_one_listen_ahead(&lv, 86400 * S, &all);
    topic_t tp;
    build_topic_as_keyed(&all, &tp);
    ref_session_t *ref_s;
    size_t n_ref = reference(&lv, &cfg.rule, &ref_s); /* without the refused listen */
    st_sessionizer_store_t *store = st_sessionizer_memstore_new();
    evlog_t log = {0};
    run_info_t info = {0};
    run_stream(&cfg, &tp, 0, store, &log, &info);
    st_sessionizer_memstore_destroy(store);
    ST_EQ_INT(info.ahead, 1);
    ST_EQ_INT(info.late, 0);
    dedup_log(&log);
    if (compare_with_reference(&log, ref_s, n_ref))
        ST_FAIL_AT("sessions differ from offline without the refused listen");
    free(log.v);
    free(info.late_keys);
    free(ref_s);
    free(all.v);
    free(lv.v);
}

/* The clock's text form (stored with commit points) round-trips; malformed text is refused. */
static void test_clock_text(void)
{
    st_sessionizer_clock_t c = {.has_time = true, .stream_time_ms = 1200000000000LL, .n = 2};
    c.slot[0] = (st_sessionizer_clock_slot_t){0xfedcba9876543210ULL, 1200000000000LL, 7};
    c.slot[1] = (st_sessionizer_clock_slot_t){0x1ULL, 1200000100000LL, 12};
    char text[ST_SESSIONIZER_CLOCK_TEXT_MAX];
    st_sessionizer_clock_format(&c, text, sizeof text);
    ST_EQ_STR(text, "1200000000000,fedcba9876543210/1200000000000/7,0000000000000001/"
                    "1200000100000/12");
    st_sessionizer_clock_t back;
    ST_EQ_INT(st_sessionizer_clock_parse(text, strlen(text), &back), 0);
    ST_CHECK(memcmp(&back, &c, sizeof c) == 0);
    ST_EQ_INT(st_sessionizer_clock_parse("1200000000000", 13, &back), 0); /* the earlier form */
    ST_CHECK(back.has_time && back.stream_time_ms == 1200000000000LL && back.n == 0);
    ST_EQ_INT(st_sessionizer_clock_parse("", 0, &back), 0);
    ST_CHECK(!back.has_time);
    static const char *const bad[] = {"x",
                                      "12,zz/1/2",
                                      "12,1/2",
                                      "12,1/2/3,",
                                      "12 ",
                                      "12,1/2/-3",
                                      "12,1/2/3,1/2/3,1/2/3,1/2/3,1/2/3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (st_sessionizer_clock_parse(bad[i], strlen(bad[i]), &back) != -1)
            ST_FAIL_AT("\"%s\" parsed", bad[i]);
}

static void test_idle_close_stream_time(void)
{
    st_sessionizer_config_t cfg;
    st_sessionizer_config_default(&cfg);
    cfg.clock_quorum = 1; /* b's listens alone move the clock (the quorum: test_clock_*) */
    fx_t fx;
    fx_init(&fx, &cfg);
    int64_t t0 = 1200000000000LL;
    /* a: one 200 s track at t0; deadline t0 + 2000 s; closes when stream time > deadline + 60 s. */
    fx_push(&fx, "a", t0, 200 * S, 1);
    fx_push(&fx, "b", t0 + 2060 * S, 100 * S, 2);
    fx_batch(&fx, false);
    st_sessionizer_stats_t stats;
    st_sessionizer_stats(fx.sz, &stats);
    ST_EQ_INT(stats.closed, 0);
    ST_EQ_INT(stats.open_sessions, 1);
    fx_push(&fx, "b", t0 + 2060 * S + 1, 100 * S, 3);
    fx_batch(&fx, false);
    st_sessionizer_stats(fx.sz, &stats);
    ST_EQ_INT(stats.closed, 1);
    ST_EQ_INT(stats.idle_closed, 1);
    const st_session_event_t *c = &fx.log.v[fx.log.n - 1];
    ST_EQ_INT(c->kind, ST_SESSION_EVENT_CLOSED);
    ST_EQ_STR(c->session_id, "a:1200000000000");
    ST_EQ_INT(c->summary.length_ms, 200 * S);
    /* The closed state is stored with no deadline and the history holds the session. */
    st_sessionizer_state_t st;
    ST_EQ_INT(st_sessionizer_memstore_read(fx.store, "a", &st), 0);
    ST_CHECK(!st.open.active);
    ST_EQ_INT(st.history.session_count, 1);
    ST_EQ_INT(st.pos.closed, 1);
    fx_free(&fx);
}

/* Stores what a write refused by the compare-and-set leaves in Redis: user's state with no
 * open session (its position at pos_ms, closed), yet an entry in the deadline set. */
static void put_closed_with_deadline(st_sessionizer_store_t *store, const char *user,
                                     int64_t pos_ms, int64_t deadline_ms)
{
    st_sessionizer_state_t st;
    memset(&st, 0, sizeof st);
    st.has_pos = true;
    st.pos = (st_sessionizer_pos_t){pos_ms, 0, 0, 1, -1};
    st_buf_t blob = ST_BUF_INIT;
    ST_EQ_INT(st_sessionizer_state_encode(&st, &blob), 0);
    st_sessionizer_write_t w;
    memset(&w, 0, sizeof w);
    w.user = (st_sessionizer_user_t){user, strlen(user)};
    st_sessionizer_pos_format(&st.pos, w.pos_text, sizeof w.pos_text);
    w.blob = blob.data;
    w.blob_len = blob.len;
    w.has_deadline = true;
    w.deadline_ms = deadline_ms;
    st_err_t err = {0};
    ST_EQ_INT(store->put_states(store->ctx, &w, 1, &err), 0);
    st_buf_free(&blob);
}

/* Appends "user=deadline " to the st_buf_t arg. */
static int list_deadline(void *arg, const char *user, size_t len, int64_t deadline_ms)
{
    char one[128];
    int n = snprintf(one, sizeof one, "%.*s=%" PRId64 " ", (int)len, user, deadline_ms);
    return st_buf_append(arg, one, (size_t)n);
}

/* A stored deadline that fires for a user with no open session closes nothing and is removed,
 * unless the user's stored deadline has changed since it was loaded (another instance set it). */
static void test_stale_deadline_dropped(void)
{
    st_sessionizer_config_t cfg;
    st_sessionizer_config_default(&cfg);
    cfg.clock_quorum = 1;
    fx_t fx;
    fx_init(&fx, &cfg);
    int64_t t0 = 1200000000000LL;
    put_closed_with_deadline(fx.store, "z", t0, t0 + 100 * S);
    put_closed_with_deadline(fx.store, "y", t0, t0 + 100 * S);
    fx_push(&fx, "b", t0 + 10 * S, 100 * S, 1); /* assigns partition 0: both deadlines loaded */
    fx_batch(&fx, false);
    /* y's stored deadline moves on after the load (a write of another instance). */
    put_closed_with_deadline(fx.store, "y", t0 + 1, t0 + 5000 * S);
    fx_push(&fx, "b", t0 + 1000 * S, 100 * S, 2); /* stream time past both deadlines + grace */
    fx_batch(&fx, false);
    st_sessionizer_stats_t stats;
    st_sessionizer_stats(fx.sz, &stats);
    ST_EQ_INT(stats.stale_deadlines, 2);
    ST_EQ_INT(stats.closed, 0);
    /* b's open session and y's newer deadline stay; z's entry is gone. */
    st_buf_t got = ST_BUF_INIT;
    st_err_t err = {0};
    ST_EQ_INT(fx.store->load_deadlines(fx.store->ctx, 0, list_deadline, &got, &err), 0);
    ST_CHECK(got.data && strstr(got.data, "z=") == NULL);
    ST_CHECK(got.data && strstr(got.data, "y=1200005000000 ") != NULL);
    ST_CHECK(got.data && strstr(got.data, "b=") != NULL);
    st_buf_free(&got);
    fx_free(&fx);
}

static void test_idle_close_wall_clock(void)
{
    st_sessionizer_config_t cfg;
    st_sessionizer_config_default(&cfg);
    fx_t fx;
    fx_init(&fx, &cfg);
    int64_t t0 = 1200000000000LL;
    fx_push(&fx, "a", t0, 0, 1); /* unknown duration: deadline t0 + 1800 s */
    fx_batch(&fx, false);
    st_sessionizer_advance_time(fx.sz, 0, t0 + 1860 * S);
    fx_batch(&fx, false);
    st_sessionizer_stats_t stats;
    st_sessionizer_stats(fx.sz, &stats);
    ST_EQ_INT(stats.opened, 1);
    ST_EQ_INT(stats.closed, 0);
    st_sessionizer_advance_time(fx.sz, -1, t0 + 1860 * S + 1);
    fx_batch(&fx, false);
    st_sessionizer_stats(fx.sz, &stats);
    ST_EQ_INT(stats.closed, 1);
    /* After the flush a listen older than now - grace is late, not a silent new session. */
    ST_EQ_INT(fx_push(&fx, "a", t0 + 1000 * S, 0, 2), ST_SESSIONIZER_LATE);
    fx_free(&fx);
}

static void test_commit_point_and_resume(void)
{
    st_sessionizer_config_t cfg;
    st_sessionizer_config_default(&cfg);
    cfg.clock_quorum = 1; /* stream time = the largest time accepted (the quorum: test_clock_*) */
    fx_t fx;
    fx_init(&fx, &cfg);
    int64_t t0 = 1200000000000LL;
    int64_t off, st_ms;
    bool has;
    ST_EQ_INT(st_sessionizer_commit_point(fx.sz, 0, &off, &st_ms, &has), -1);
    fx_push(&fx, "a", t0, 0, 1);            /* offset 0 */
    fx_push(&fx, "a", t0 + 100 * S, 0, 2);  /* offset 1 */
    fx_push(&fx, "b", t0 + 50 * S, 0, 3);   /* offset 2 */
    fx_push(&fx, "b", t0 + 1000 * S, 0, 4); /* offset 3: releases offsets 0..2 */
    fx_batch(&fx, false);
    ST_EQ_INT(st_sessionizer_commit_point(fx.sz, 0, &off, &st_ms, &has), 0);
    ST_EQ_INT(off, 3);
    ST_CHECK(has);
    ST_EQ_INT(st_ms, t0 + 100 * S); /* the stream time before offset 3 was read */
    /* Records released but not finished hold the commit point back. */
    fx_push(&fx, "c", t0 + 2000 * S, 0, 5); /* offset 4: releases offset 3 */
    st_err_t err = {0};
    ST_EQ_INT(st_sessionizer_prepare(fx.sz, false, &err), 0);
    ST_EQ_INT(st_sessionizer_lowest_unreleased_offset(fx.sz, 0), 3);
    ST_EQ_INT(st_sessionizer_finish(fx.sz, &err), 0);
    ST_EQ_INT(st_sessionizer_lowest_unreleased_offset(fx.sz, 0), 4);
    /* A failed write keeps the batch: finish can be retried, nothing is committed meanwhile. */
    fx_push(&fx, "c", t0 + 3000 * S, 0, 6); /* offset 5: releases offset 4 */
    ST_EQ_INT(st_sessionizer_prepare(fx.sz, false, &err), 0);
    st_sessionizer_memstore_fail_after(fx.store, 0);
    ST_EQ_INT(st_sessionizer_finish(fx.sz, &err), -1);
    ST_EQ_INT(st_sessionizer_lowest_unreleased_offset(fx.sz, 0), 4);
    ST_EQ_INT(st_sessionizer_finish(fx.sz, &err), 0);
    ST_EQ_INT(st_sessionizer_lowest_unreleased_offset(fx.sz, 0), 5);
    fx_free(&fx);
}

/* Without wall-clock advances the replayed records alone rebuild the stream time (the record with
 * the largest time is never released before a larger one arrives). After an idle flush by wall
 * clock they do not: the committed stream time must be restored, or a late record slips in. */
static void test_resume_after_wall_clock_flush(void)
{
    st_sessionizer_config_t cfg;
    st_sessionizer_config_default(&cfg);
    fx_t fx;
    fx_init(&fx, &cfg);
    int64_t t0 = 1200000000000LL, now = t0 + 10000 * S;
    fx_push(&fx, "a", t0, 0, 1);
    st_sessionizer_advance_time(fx.sz, 0, now);
    fx_batch(&fx, false);
    int64_t off, st_ms;
    bool has;
    ST_EQ_INT(st_sessionizer_commit_point(fx.sz, 0, &off, &st_ms, &has), 0);
    ST_EQ_INT(off, 1);
    ST_CHECK(has);
    ST_EQ_INT(st_ms, now);
    st_sessionizer_destroy(fx.sz);
    char errstr[128];
    fx.sz = st_sessionizer_new(&cfg, fx.store, errstr, sizeof errstr);
    st_err_t err = {0};
    ST_EQ_INT(st_sessionizer_assign(fx.sz, 0, has, st_ms, &err), 0);
    ST_EQ_INT(fx_push(&fx, "a", t0 + 100 * S, 0, 2), ST_SESSIONIZER_LATE);
    /* Without the stream time the same record would open a session. */
    ST_EQ_INT(st_sessionizer_assign(fx.sz, 0, false, 0, &err), 0);
    fx.next_offset = 1;
    ST_EQ_INT(fx_push(&fx, "a", t0 + 100 * S, 0, 2), ST_SESSIONIZER_BUFFERED);
    fx_free(&fx);
}

static void test_bad_config(void)
{
    st_sessionizer_config_t cfg;
    st_sessionizer_config_default(&cfg);
    st_sessionizer_store_t *store = st_sessionizer_memstore_new();
    char errstr[256] = "";
    cfg.recent_n = 0;
    ST_CHECK(st_sessionizer_new(&cfg, store, errstr, sizeof errstr) == NULL);
    ST_CHECK(strstr(errstr, "recent_n") != NULL);
    st_sessionizer_config_default(&cfg);
    cfg.grace_ms = -1;
    ST_CHECK(st_sessionizer_new(&cfg, store, errstr, sizeof errstr) == NULL);
    ST_CHECK(strstr(errstr, "grace_ms") != NULL);
    st_sessionizer_destroy(NULL);
    st_sessionizer_memstore_destroy(store);
    st_sessionizer_memstore_destroy(NULL);
}

int main(void)
{
    ST_RUN(test_release_order_and_late);
    ST_RUN(test_idle_close_stream_time);
    ST_RUN(test_stale_deadline_dropped);
    ST_RUN(test_idle_close_wall_clock);
    ST_RUN(test_commit_point_and_resume);
    ST_RUN(test_clock_one_listen_ahead);
    ST_RUN(test_clock_ahead_bound);
    ST_RUN(test_clock_text);
    ST_RUN(test_resume_after_wall_clock_flush);
    ST_RUN(test_bad_config);
    ST_RUN(test_stream_equals_reference);
    ST_RUN(test_crash_replay);
    ST_RUN(test_late_records_across_crashes);
    ST_RUN(test_two_instances_one_stops);
    ST_RUN(test_offline_modes);
    ST_RUN(test_early_opened);
    ST_RUN(test_early_opened_property);
    return st_test_summary();
}
