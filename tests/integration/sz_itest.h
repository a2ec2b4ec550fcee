/* sz_itest.h - helpers of the sessionizer integration tests: generate a dataset (`stint gen`),
 * build the offline reference (`stint sessions`), produce the dataset as EnrichedListen records
 * (normalised like ingest, durations from the catalog like the enricher), run stint-sessionizer,
 * and read the CLOSED sessions back in the offline TSV format. Header-only, test code only.
 *
 * End of stream: the service closes a user's last session only when its partition's stream time
 * passes the deadline + grace. The tests end every partition with SZT_SENTINELS sentinel listens
 * (users "~end-p<N>-<k>", produced to partition N) SZT_SENTINEL_AFTER_MS after the dataset's last
 * listen: as many users as the partition clock's largest quorum (clock.quorum), so they move its
 * stream time there and close every real session by deadline; the sentinels' own sessions stay
 * open and are ignored. (The wall-clock idle flush cannot be used: the generated data is from 2009,
 * so the wall clock would make all of it late.) */
#ifndef SZ_ITEST_H
#define SZ_ITEST_H

#include "st_avro.h"
#include "st_catalog.h"
#include "st_itest.h"
#include "st_listen.h"
#include "st_merge.h"
#include "st_records.h"
#include "st_session.h"
#include "st_sessionizer.h"
#include "st_test.h"
#include "st_trackmeta.h"

#include <sys/stat.h>

#define SZT_SENTINEL_AFTER_MS (2LL * 86400 * 1000) /* within clock.ahead_max_s */
#define SZT_SENTINELS         ST_SESSIONIZER_CLOCK_MAX
#define SZT_SENTINEL_PREFIX   "~end-p"

static inline int szt_run(char *const argv[], const char *logpath)
{
    pid_t pid = itest_spawn(argv, logpath);
    return itest_wait(pid, 600000);
}

/* `stint gen --users U --days D --seed S --out dir` */
static inline int szt_gen(const char *dir, int users, int days, int seed, const char *logpath)
{
    char bin[512], u[16], d[16], s[16];
    snprintf(bin, sizeof bin, "%s/stint", itest_bin_dir());
    snprintf(u, sizeof u, "%d", users);
    snprintf(d, sizeof d, "%d", days);
    snprintf(s, sizeof s, "%d", seed);
    char *argv[] = {bin, "gen", "--users", u, "--days", d, "--seed", s, "--out", (char *)dir, NULL};
    return szt_run(argv, logpath);
}

/* `stint sessions --data dir --catalog dir/tracks.jsonl --out tsv --quiet` */
static inline int szt_offline(const char *dir, const char *tsv, const char *logpath)
{
    char bin[512], cat[600];
    snprintf(bin, sizeof bin, "%s/stint", itest_bin_dir());
    snprintf(cat, sizeof cat, "%s/tracks.jsonl", dir);
    char *argv[] = {bin, "sessions", "--data",    (char *)dir, "--catalog",
                    cat, "--out",    (char *)tsv, "--quiet",   NULL};
    return szt_run(argv, logpath);
}

typedef struct {
    char **v;
    size_t n, cap;
} szt_lines_t;

static inline void szt_lines_add(szt_lines_t *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = strdup(s);
}

static inline int szt_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static inline void szt_lines_free(szt_lines_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Reads a TSV file's lines (without '\n'), sorted. */
static inline int szt_load_lines(const char *path, szt_lines_t *out)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, fp)) > 0) {
        if (line[n - 1] == '\n')
            line[n - 1] = '\0';
        szt_lines_add(out, line);
    }
    free(line);
    fclose(fp);
    qsort(out->v, out->n, sizeof *out->v, szt_cmp_str);
    return 0;
}

/* The offline TSV line of a closed session (the format of tools/stint/cmd_sessions.c). */
static inline void szt_format(char *buf, size_t size, const char *user, int64_t start_ms,
                              double length_s, int track_count, double unknown_share)
{
    long long start_s = start_ms >= 0 ? start_ms / 1000 : -((999 - start_ms) / 1000);
    snprintf(buf, size, "%s\t%lld\t%.3f\t%d\t%.4f", user, start_s, length_s, track_count,
             unknown_share);
}

typedef struct {
    uint64_t key;                    /* hash of session_id and kind */
    uint64_t hash;                   /* hash of the value bytes */
    char *line;                      /* CLOSED only */
    uint64_t sid, user;              /* hashes of session_id and user_id */
    int64_t start_ms, last_start_ms; /* last_start_ms: CLOSED only */
} szt_event_t;

typedef struct {
    st_avro_codec_t *codec;
    szt_event_t *v;
    size_t n, cap;
    uint64_t *retracted; /* session_id hashes named in retracted_session_ids */
    size_t n_retracted, cap_retracted;
    long long undecodable, opened, closed_raw;
    st_rec_session_event_t event; /* the decoded record (reused) */
} szt_readback_t;

static inline void szt_on_event(void *arg, int32_t partition, const void *key, size_t klen,
                                const void *val, size_t vlen)
{
    szt_readback_t *rb = arg;
    (void)partition;
    (void)key;
    (void)klen;
    st_rec_session_event_t *v = &rb->event;
    st_err_t err = {0};
    if (st_rec_session_event_decode(rb->codec, val, vlen, v, &err) != 0) {
        rb->undecodable++;
        return;
    }
    const char *sid = v->session_id.ptr, *user = v->user_id.ptr;
    int64_t start_ms = v->start_ms;
    if (strncmp(user, SZT_SENTINEL_PREFIX, strlen(SZT_SENTINEL_PREFIX)) == 0)
        return;
    bool closed = v->kind == ST_SESSION_EVENT_CLOSED;
    for (uint32_t i = 0; i < v->n_retracted; i++) {
        if (rb->n_retracted == rb->cap_retracted) {
            rb->cap_retracted = rb->cap_retracted ? rb->cap_retracted * 2 : 256;
            rb->retracted = realloc(rb->retracted, rb->cap_retracted * sizeof *rb->retracted);
        }
        rb->retracted[rb->n_retracted++] =
            st_hash64(v->retracted_session_ids[i].ptr, v->retracted_session_ids[i].len, 0);
    }
    if (rb->n == rb->cap) {
        rb->cap = rb->cap ? rb->cap * 2 : 4096;
        rb->v = realloc(rb->v, rb->cap * sizeof *rb->v);
    }
    szt_event_t *e = &rb->v[rb->n++];
    e->key = st_hash64(sid, strlen(sid), closed ? 2 : 1);
    e->hash = st_hash64(val, vlen, 0);
    e->line = NULL;
    e->sid = st_hash64(sid, strlen(sid), 0);
    e->user = st_hash64(user, strlen(user), 0);
    e->start_ms = start_ms;
    e->last_start_ms = closed && v->last_start_ms.set ? v->last_start_ms.v : start_ms;
    if (!closed) {
        rb->opened++;
        return;
    }
    rb->closed_raw++;
    double length_s = v->length_s.set ? v->length_s.v : -1;
    double share = v->unknown_duration_share.set ? v->unknown_duration_share.v : -1;
    int32_t tc = v->track_count;
    char line[512];
    szt_format(line, sizeof line, user, start_ms, length_s, tc, share);
    e->line = strdup(line);
}

static inline int szt_cmp_event(const void *a, const void *b)
{
    const szt_event_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return 0;
}

typedef struct {
    long long events, duplicates, mismatched, undecodable;
    long long opened;     /* distinct OPENED session ids that were CLOSED too */
    long long revised;    /* OPENED copies that differ: corrections, or early OPENED replayed */
    long long voided;     /* OPENED session ids retracted, or covered by a CLOSED of the user */
    long long unresolved; /* OPENED session ids neither closed, retracted nor covered */
    szt_lines_t closed;   /* one line per distinct CLOSED session, sorted */
} szt_result_t;

static inline int szt_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static inline int szt_cmp_user_start(const void *a, const void *b)
{
    const szt_event_t *x = *(const szt_event_t *const *)a, *y = *(const szt_event_t *const *)b;
    if (x->user != y->user)
        return x->user < y->user ? -1 : 1;
    return x->start_ms < y->start_ms ? -1 : x->start_ms > y->start_ms;
}

/* Reads the whole sessions topic and de-duplicates it by (session_id, kind): CLOSED duplicates
 * must be byte-identical (counted in duplicates; others in mismatched); OPENED ones may be
 * corrections (revised). Every announced session must end CLOSED, retracted, or covered by a
 * CLOSED of its user ([start_ms, last_start_ms]), as a consumer applies the rules. */
static inline int szt_read_sessions(st_avro_registry_t *reg, const char *topic, szt_result_t *res)
{
    char errstr[256];
    memset(res, 0, sizeof *res);
    szt_readback_t rb = {0};
    rb.codec = st_avro_codec_new(reg, "SessionEvent", NULL, errstr, sizeof errstr);
    if (!rb.codec)
        return -1;
    long long n = itest_read_topic(topic, szt_on_event, &rb);
    st_avro_codec_destroy(rb.codec);
    if (n < 0)
        return -1;
    res->events = n;
    res->undecodable = rb.undecodable;
    qsort(rb.v, rb.n, sizeof *rb.v, szt_cmp_event);
    /* The distinct CLOSED sessions by (user, start), for the coverage look-up. */
    const szt_event_t **cl = malloc((rb.n + 1) * sizeof *cl);
    size_t ncl = 0;
    for (size_t i = 0; i < rb.n; i++)
        if (rb.v[i].line && (i == 0 || rb.v[i].key != rb.v[i - 1].key))
            cl[ncl++] = &rb.v[i];
    qsort(cl, ncl, sizeof *cl, szt_cmp_user_start);
    qsort(rb.retracted, rb.n_retracted, sizeof *rb.retracted, szt_cmp_u64);
    for (size_t i = 0; i < rb.n; i++) {
        const szt_event_t *e = &rb.v[i];
        if (i > 0 && e->key == rb.v[i - 1].key) {
            res->duplicates++;
            if (e->hash != rb.v[i - 1].hash) {
                if (e->line)
                    res->mismatched++;
                else
                    res->revised++;
            }
            continue;
        }
        if (e->line) {
            szt_lines_add(&res->closed, e->line);
            continue;
        }
        /* The last CLOSED of the user starting at or before it: its own, or one covering it. */
        size_t lo = 0, hi = ncl;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            const szt_event_t *c = cl[mid];
            if (c->user < e->user || (c->user == e->user && c->start_ms <= e->start_ms))
                lo = mid + 1;
            else
                hi = mid;
        }
        const szt_event_t *c = lo > 0 && cl[lo - 1]->user == e->user ? cl[lo - 1] : NULL;
        if (c && c->start_ms == e->start_ms)
            res->opened++;
        else if (bsearch(&e->sid, rb.retracted, rb.n_retracted, sizeof *rb.retracted,
                         szt_cmp_u64) ||
                 (c && e->start_ms <= c->last_start_ms))
            res->voided++;
        else
            res->unresolved++;
    }
    for (size_t i = 0; i < rb.n; i++)
        free(rb.v[i].line);
    free(cl);
    free(rb.retracted);
    free(rb.v);
    qsort(res->closed.v, res->closed.n, sizeof *res->closed.v, szt_cmp_str);
    return 0;
}

/* Compares the offline reference with the streamed CLOSED sessions; prints the first
 * differences. Returns the number of differing lines (0 = equal). */
static inline long long szt_compare(const szt_lines_t *ref, const szt_lines_t *got)
{
    size_t i = 0, j = 0;
    long long diffs = 0;
    while (i < ref->n || j < got->n) {
        int c = i == ref->n ? 1 : j == got->n ? -1 : strcmp(ref->v[i], got->v[j]);
        if (c == 0) {
            i++, j++;
            continue;
        }
        if (diffs++ < 5)
            printf("     %s %s\n",
                   c < 0 ? "missing:   " : "unexpected:", c < 0 ? ref->v[i] : got->v[j]);
        if (c < 0)
            i++;
        else
            j++;
    }
    return diffs;
}

/* One record to produce. */
typedef struct {
    int64_t sort_key;
    char *key;
    size_t key_len;
    void *value;
    size_t value_len;
} szt_rec_t;

static inline int szt_cmp_rec(const void *a, const void *b)
{
    const szt_rec_t *x = a, *y = b;
    return x->sort_key < y->sort_key ? -1 : x->sort_key > y->sort_key;
}

static inline uint64_t szt_rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Encodes one EnrichedListen. */
static inline int szt_encode(st_avro_codec_t *codec, const st_listen_t *l, int64_t duration_ms,
                             st_buf_t *out)
{
    st_rec_enriched_t rec = {.listen = st_rec_listen_from(l),
                             .duration_ms = {duration_ms > 0, duration_ms},
                             .metadata_source =
                                 duration_ms > 0 ? ST_REC_SOURCE_CATALOG : ST_REC_SOURCE_UNKNOWN};
    st_err_t err = {0};
    if (st_rec_enriched_encode(codec, &rec, out, &err) != 0)
        return -1;
    return 0;
}

/* One extra listen produced mid-stream (a client with a wrong clock): user's listen of
 * listened_at_ms ("Early Artist" - "Early Track", unknown duration), sent just before the first
 * dataset record at or after at_ms (in time order, jitter 0 only). */
typedef struct {
    const char *user;
    int64_t at_ms, listened_at_ms;
} szt_inject_t;

/* Produces the dataset in dir to topic as EnrichedListen records keyed by user id: in time order
 * (jitter_ms 0, streamed without buffering) or ordered by time + U[0, jitter_ms) (shuffled
 * within the grace when jitter_ms <= grace), with inj (may be NULL), then SZT_SENTINELS
 * sentinels per partition. Returns the number of records produced (sentinels and inj included),
 * or -1. */
static inline long long szt_produce_inject(st_avro_registry_t *reg, const char *dir,
                                           const char *topic, int partitions, int64_t jitter_ms,
                                           uint64_t seed, const szt_inject_t *inj)
{
    char errstr[512], path[600];
    snprintf(path, sizeof path, "%s/tracks.jsonl", dir);
    st_catalog_t *cat = st_catalog_load(path, NULL, errstr, sizeof errstr);
    st_avro_codec_t *codec = st_avro_codec_new(reg, "EnrichedListen", topic, errstr, sizeof errstr);
    st_merge_opts_t mo = {.quiet = true};
    st_merge_t *m = st_merge_open(dir, &mo, errstr, sizeof errstr);
    st_kafka_opts_t ko = itest_kafka();
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    st_listen_t *l = malloc(sizeof *l);
    if (!cat || !codec || !m || !prod || !l) {
        printf("     produce setup: %s\n", errstr);
        return -1;
    }
    st_buf_t enc = ST_BUF_INIT;
    szt_rec_t *recs = NULL;
    size_t n = 0, cap = 0;
    long long produced = 0;
    int64_t max_ts = 0, now_ms = st_time_wall_ms();
    st_lastfm_listen_t rec;
    while (st_merge_next(m, &rec, NULL) == 1) {
        if (st_listen_from_record(&rec, now_ms, l, NULL) != ST_LISTEN_OK)
            continue;
        int64_t d = 0;
        if (!st_catalog_lookup_key(cat, l->track_key, strlen(l->track_key), &d) || d < 0)
            d = 0;
        if (szt_encode(codec, l, d, &enc) != 0)
            return -1;
        if (l->timestamp_ms > max_ts)
            max_ts = l->timestamp_ms;
        size_t klen = strlen(l->user_id);
        if (inj && l->timestamp_ms >= inj->at_ms) {
            static st_listen_t e; /* ~7 KB */
            memset(&e, 0, sizeof e);
            snprintf(e.user_id, sizeof e.user_id, "%s", inj->user);
            e.timestamp_ms = inj->listened_at_ms;
            strcpy(e.artist_name, "Early Artist");
            strcpy(e.track_name, "Early Track");
            st_trackmeta_key(e.artist_name, strlen(e.artist_name), e.track_name,
                             strlen(e.track_name), e.track_key, sizeof e.track_key);
            st_listen_event_id(e.user_id, e.timestamp_ms, e.artist_name, e.track_name, e.event_id);
            st_buf_t ee = ST_BUF_INIT;
            if (szt_encode(codec, &e, 0, &ee) != 0 ||
                st_producer_send(prod, topic, -1, e.user_id, strlen(e.user_id), ee.data, ee.len,
                                 NULL) != 0)
                return -1;
            st_buf_free(&ee);
            produced++;
            inj = NULL;
        }
        if (jitter_ms == 0) {
            if (st_producer_send(prod, topic, -1, l->user_id, klen, enc.data, enc.len, NULL) != 0)
                return -1;
            produced++;
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            recs = realloc(recs, cap * sizeof *recs);
        }
        szt_rec_t *r = &recs[n++];
        r->sort_key = l->timestamp_ms + (int64_t)(szt_rnd(&seed) % (uint64_t)jitter_ms);
        r->key = strdup(l->user_id);
        r->key_len = klen;
        r->value = malloc(enc.len);
        memcpy(r->value, enc.data, enc.len);
        r->value_len = enc.len;
    }
    if (n > 0)
        qsort(recs, n, sizeof *recs, szt_cmp_rec);
    for (size_t i = 0; i < n; i++) {
        if (st_producer_send(prod, topic, -1, recs[i].key, recs[i].key_len, recs[i].value,
                             recs[i].value_len, NULL) != 0)
            return -1;
        produced++;
        free(recs[i].key);
        free(recs[i].value);
    }
    free(recs);
    for (int i = 0; i < partitions * SZT_SENTINELS; i++) {
        int p = i / SZT_SENTINELS;
        memset(l, 0, sizeof *l);
        snprintf(l->user_id, sizeof l->user_id, SZT_SENTINEL_PREFIX "%d-%d", p, i % SZT_SENTINELS);
        l->timestamp_ms = max_ts + SZT_SENTINEL_AFTER_MS;
        strcpy(l->artist_name, "end");
        strcpy(l->track_name, "end");
        strcpy(l->track_key, "end\tend");
        strcpy(l->event_id, "0000000000000000");
        if (szt_encode(codec, l, 0, &enc) != 0 ||
            st_producer_send(prod, topic, p, l->user_id, strlen(l->user_id), enc.data, enc.len,
                             NULL) != 0)
            return -1;
        produced++;
    }
    int rc = st_producer_wait(prod, 120000, NULL);
    st_producer_destroy(prod);
    st_buf_free(&enc);
    free(l);
    st_merge_destroy(m);
    st_avro_codec_destroy(codec);
    st_catalog_destroy(cat);
    return rc == 0 ? produced : -1;
}

static inline long long szt_produce(st_avro_registry_t *reg, const char *dir, const char *topic,
                                    int partitions, int64_t jitter_ms, uint64_t seed)
{
    return szt_produce_inject(reg, dir, topic, partitions, jitter_ms, seed, NULL);
}

typedef struct {
    char in[128], out[128], late[128], dlq[128], group[128], prefix[128];
    char bin[512], logpath[512];
} szt_names_t;

static inline void szt_names(szt_names_t *nm, const char *base)
{
    itest_unique_tag(nm->in, sizeof nm->in, "it.sz.", base, ".in");
    itest_unique_tag(nm->out, sizeof nm->out, "it.sz.", base, ".out");
    itest_unique_tag(nm->late, sizeof nm->late, "it.sz.", base, ".late");
    itest_unique_tag(nm->dlq, sizeof nm->dlq, "it.sz.", base, ".dlq");
    itest_unique_tag(nm->group, sizeof nm->group, "it-sz-", base, "");
    itest_unique_tag(nm->prefix, sizeof nm->prefix, "it:sz:", base, "");
    snprintf(nm->bin, sizeof nm->bin, "%s/stint-sessionizer", itest_bin_dir());
    snprintf(nm->logpath, sizeof nm->logpath, "%s/it-sz-%s.log", itest_bin_dir(), base);
}

static inline int szt_create_topics(const szt_names_t *nm, int partitions)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {nm->in, nm->out, nm->late, nm->dlq};
    if (st_kafka_create_topics(&ko, topics, 4, partitions, errstr, sizeof errstr) != 0) {
        printf("     create topics: %s\n", errstr);
        return -1;
    }
    return 0;
}

/* Starts stint-sessionizer on nm; clock_quorum NULL: the default. */
static inline pid_t szt_start_opts(const szt_names_t *nm, const char *batch_max,
                                   const char *kill_before_apply, const char *clock_quorum)
{
    char *argv[] = {(char *)nm->bin,
                    "--in.topic",
                    (char *)nm->in,
                    "--out.topic",
                    (char *)nm->out,
                    "--late.topic",
                    (char *)nm->late,
                    "--dlq.topic",
                    (char *)nm->dlq,
                    "-G",
                    (char *)nm->group,
                    "--redis.prefix",
                    (char *)nm->prefix,
                    "--redis.port",
                    (char *)(getenv("STINT_REDIS_PORT") ? getenv("STINT_REDIS_PORT") : "16379"),
                    "-b",
                    (char *)itest_brokers(),
                    "--batch.max",
                    (char *)batch_max,
                    "-X",
                    "session.timeout.ms=6000",
                    "--fault.kill_before_apply",
                    (char *)kill_before_apply,
                    clock_quorum ? "--clock.quorum" : NULL,
                    (char *)clock_quorum,
                    NULL};
    return itest_spawn(argv, nm->logpath);
}

static inline pid_t szt_start_fault(const szt_names_t *nm, const char *batch_max,
                                    const char *kill_before_apply)
{
    return szt_start_opts(nm, batch_max, kill_before_apply, NULL);
}

static inline pid_t szt_start(const szt_names_t *nm, const char *batch_max)
{
    return szt_start_fault(nm, batch_max, "0");
}

/* Committed offsets of the group on the input topic (sum over partitions), -1 on error. */
static inline long long szt_committed(const szt_names_t *nm)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    return st_kafka_group_committed(&ko, nm->group, nm->in, errstr, sizeof errstr);
}

/* Waits until the group committed all but `held` records (the sentinels stay buffered: they are
 * their partitions' latest records). Returns 0, or -1 on timeout. */
static inline int szt_wait_committed(const szt_names_t *nm, long long produced, long long held,
                                     int timeout_ms)
{
    int64_t deadline = st_time_mono_ms() + timeout_ms;
    while (st_time_mono_ms() < deadline) {
        if (szt_committed(nm) >= produced - held)
            return 0;
        itest_sleep_ms(300);
    }
    return -1;
}

/* The same after szt_produce: all but the SZT_SENTINELS sentinels of each partition. */
static inline int szt_wait_done(const szt_names_t *nm, long long produced, int partitions,
                                int timeout_ms)
{
    return szt_wait_committed(nm, produced, (long long)partitions * SZT_SENTINELS, timeout_ms);
}

/* Lines of a log file that contain needle. */
static inline int szt_log_count(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    char line[2048];
    int n = 0;
    while (fp && fgets(line, sizeof line, fp))
        n += strstr(line, needle) != NULL;
    if (fp)
        fclose(fp);
    return n;
}

/* Deletes every Redis key under prefix. */
static inline void szt_redis_cleanup(const char *prefix)
{
    itest_redis_unlink_prefix(prefix);
}

static inline st_avro_registry_t *szt_registry(void)
{
    char dir[600], errstr[512];
    const char *src = getenv("STINT_SOURCE_DIR");
    snprintf(dir, sizeof dir, "%s/schemas", src ? src : ".");
    st_avro_registry_t *reg =
        st_avro_registry_new(dir, itest_registry_url(), errstr, sizeof errstr);
    if (!reg)
        printf("registry: %s\n", errstr);
    return reg;
}

/* A test program's setup: a fresh temporary directory /tmp/stint-it-<name>-<pid> and the schema
 * registry. Returns 0, or -1 after printing why. */
static inline int szt_setup(const char *name, char *tmp_dir, size_t size, st_avro_registry_t **reg)
{
    snprintf(tmp_dir, size, "/tmp/stint-it-%s-%d", name, (int)getpid());
    if (mkdir(tmp_dir, 0777) != 0) {
        perror(tmp_dir);
        return -1;
    }
    *reg = szt_registry();
    return *reg ? 0 : -1;
}

/* Undoes szt_setup. */
static inline void szt_teardown(const char *tmp_dir, st_avro_registry_t *reg)
{
    char cmd[300];
    st_avro_registry_destroy(reg);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
    if (system(cmd) != 0)
        printf("could not remove %s\n", tmp_dir);
}

#endif
