/* st_dataset_topic.c - the data set from the `sessions` topic: CLOSED SessionEvents up to the end
 * offsets at the start, deduplicated by session_id (see st_dataset_topic.h). */
#include "st_dataset_topic.h"

#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_avro.h"
#include "st_buf.h"
#include "st_err.h"
#include "st_kafka.h"
#include "st_lifecycle.h"
#include "st_log.h"
#include "st_records.h"
#include "st_time.h"

#define LOG_FIRST_N 20

/* One CLOSED event as read; the strings live in the reader's arena. */
typedef struct {
    size_t session_id_off, user_id_off; /* NUL-terminated, in the arena */
    const char *session_id;             /* set from the offset once the arena stops growing */
    int64_t start_ms;
    double length_s;
    int32_t track_count;
    double unknown_share; /* NAN when null */
    int32_t partition;
    int64_t offset;
    uint64_t bytes_hash; /* of the whole message value */
    size_t bytes_len;
} closed_t;

typedef struct {
    st_buf_t arena;
    closed_t *v;
    size_t n, cap;
    st_dataset_topic_stats_t stats;
    const char *topic;
    st_rec_session_event_t event; /* the decoded record (reused) */
} reader_t;

void st_dataset_topic_opts_default(st_dataset_topic_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->idle_timeout_ms = 30000;
}

static void invalid(reader_t *r, const rd_kafka_message_t *m, const char *why)
{
    if (r->stats.invalid++ < LOG_FIRST_N)
        st_log_warn("dataset_topic_invalid", "topic=%s partition=%d offset=%lld reason=\"%s\"",
                    r->topic, (int)m->partition, (long long)m->offset, why);
}

/* Decodes one record and keeps it when it is a valid CLOSED event. Returns 0, or -1 with errstr
 * when going on makes no sense (out of memory, the schema registry unreachable). */
static int take(reader_t *r, st_avro_codec_t *codec, const rd_kafka_message_t *m, char *errstr,
                size_t errstr_size)
{
    r->stats.records++;
    st_rec_session_event_t *v = &r->event;
    st_err_t err = {0};
    int rc;
    /* A schema id the registry does not know yet is a retriable ST_ERR_INVALID for a while (a
     * replica that has not caught up): asked again until it is found or given up on (then one
     * invalid record, as any other). An unreachable registry stops the load. */
    while ((rc = st_rec_session_event_decode(codec, m->payload, m->len, v, &err)) != 0 &&
           err.retriable && err.code == ST_ERR_INVALID && !st_lifecycle_stopping()) {
        st_lifecycle_sleep_ms(1000);
        err = (st_err_t){0};
    }
    if (rc != 0) {
        if (err.retriable)
            return st_errstr(errstr, errstr_size, "topic %s: %s", r->topic, err.text);
        invalid(r, m, err.text);
        return 0;
    }
    if (v->kind != ST_SESSION_EVENT_CLOSED) {
        r->stats.opened++;
        return 0;
    }
    r->stats.closed++;
    const char *session_id = v->session_id.ptr, *user_id = v->user_id.ptr;
    size_t sid_len = v->session_id.len, uid_len = v->user_id.len;
    closed_t c = {0};
    c.start_ms = v->start_ms;
    c.length_s = v->length_s.v; /* the codec checked: a CLOSED has a finite length >= 0 */
    c.track_count = v->track_count;
    c.unknown_share = v->unknown_duration_share.set ? v->unknown_duration_share.v : NAN;
    if (c.track_count < 0) {
        invalid(r, m, "CLOSED event with a negative track count");
        return 0;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4096;
        closed_t *nv = realloc(r->v, cap * sizeof *nv);
        if (!nv)
            return st_errstr(errstr, errstr_size, "topic %s: out of memory", r->topic);
        r->v = nv;
        r->cap = cap;
    }
    c.session_id_off = r->arena.len;
    if (st_buf_append(&r->arena, session_id, sid_len + 1) != 0)
        return st_errstr(errstr, errstr_size, "topic %s: out of memory", r->topic);
    c.user_id_off = r->arena.len;
    if (st_buf_append(&r->arena, user_id, uid_len + 1) != 0)
        return st_errstr(errstr, errstr_size, "topic %s: out of memory", r->topic);
    c.partition = m->partition;
    c.offset = m->offset;
    c.bytes_hash = st_hash64(m->payload, m->len, 0);
    c.bytes_len = m->len;
    r->v[r->n++] = c;
    return 0;
}

static int cmp_closed(const void *a, const void *b)
{
    const closed_t *x = a, *y = b;
    int c = strcmp(x->session_id, y->session_id);
    if (c)
        return c;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Sorts by (session_id, partition, offset), keeps the first of each session_id and adds it. */
static int add_all(reader_t *r, st_dataset_t *ds, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < r->n; i++)
        r->v[i].session_id = r->arena.data + r->v[i].session_id_off;
    if (r->n)
        qsort(r->v, r->n, sizeof *r->v, cmp_closed);
    const closed_t *kept = NULL;
    for (size_t i = 0; i < r->n; i++) {
        const closed_t *c = &r->v[i];
        const char *sid = c->session_id;
        if (kept && strcmp(sid, kept->session_id) == 0) {
            if (c->bytes_hash == kept->bytes_hash && c->bytes_len == kept->bytes_len) {
                r->stats.duplicates++;
            } else if (r->stats.conflicts++ < LOG_FIRST_N) {
                st_log_warn("dataset_topic_conflict",
                            "topic=%s session_id=%s kept=%d:%lld dropped=%d:%lld", r->topic, sid,
                            (int)kept->partition, (long long)kept->offset, (int)c->partition,
                            (long long)c->offset);
            }
            continue;
        }
        kept = c;
        if (st_dataset_add_session_ms(ds, r->arena.data + c->user_id_off, c->start_ms, c->length_s,
                                      c->track_count, c->unknown_share, errstr, errstr_size) != 0)
            return -1;
        r->stats.sessions++;
    }
    return 0;
}

/* The partition count of topic, or -1 with errstr. */
static int partition_count(rd_kafka_t *rk, const char *topic, char *errstr, size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt)
        return st_errstr(errstr, errstr_size, "topic %s: %s", topic,
                         rd_kafka_err2str(rd_kafka_last_error()));
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    int n = -1;
    if (e)
        st_errstr(errstr, errstr_size, "topic %s: metadata: %s", topic, rd_kafka_err2str(e));
    else if (md->topic_cnt != 1 || md->topics[0].err)
        st_errstr(errstr, errstr_size, "topic %s: %s", topic,
                  md->topic_cnt != 1 ? "not found" : rd_kafka_err2str(md->topics[0].err));
    else if (md->topics[0].partition_cnt <= 0)
        st_errstr(errstr, errstr_size, "topic %s: no partitions", topic);
    else
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    return n;
}

/* Consumes every partition from its low to its high watermark at the start. */
static int consume(reader_t *r, rd_kafka_t *rk, st_avro_codec_t *codec,
                   const st_dataset_topic_opts_t *o, char *errstr, size_t errstr_size)
{
    int np = partition_count(rk, o->topic, errstr, errstr_size);
    if (np < 0)
        return -1;
    r->stats.partitions = np;
    int64_t *high = calloc((size_t)np, sizeof *high);
    bool *done = calloc((size_t)np, sizeof *done);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    int rc = -1, left = 0;
    if (!high || !done || !l) {
        st_errstr(errstr, errstr_size, "topic %s: out of memory", o->topic);
        goto out;
    }
    for (int p = 0; p < np; p++) {
        int64_t lo = 0;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, o->topic, p, &lo, &high[p], 10000);
        if (e) {
            st_errstr(errstr, errstr_size, "topic %s [%d]: watermarks: %s", o->topic, p,
                      rd_kafka_err2str(e));
            goto out;
        }
        done[p] = high[p] <= lo;
        if (!done[p]) {
            left++;
            rd_kafka_topic_partition_list_add(l, o->topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
        }
    }
    if (left == 0) {
        rc = 0;
        goto out;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    if (e) {
        st_errstr(errstr, errstr_size, "topic %s: assign: %s", o->topic, rd_kafka_err2str(e));
        goto out;
    }
    int64_t last_progress_ms = st_time_mono_ms();
    while (left > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) {
            if (st_time_mono_ms() - last_progress_ms > o->idle_timeout_ms) {
                st_errstr(errstr, errstr_size,
                          "topic %s: no record for %d ms with %d partition(s) not read to their "
                          "end",
                          o->topic, o->idle_timeout_ms, left);
                goto out;
            }
            continue;
        }
        int32_t p = m->partition;
        bool ours =
            m->rkt && strcmp(rd_kafka_topic_name(m->rkt), o->topic) == 0 && p >= 0 && p < np;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* m->offset is the next offset: the end as of now, >= the end at the start */
            if (ours && !done[p]) {
                done[p] = true;
                left--;
            }
        } else if (m->err) {
            st_log_warn("dataset_topic_consume_error", "topic=%s error=\"%s\"", o->topic,
                        rd_kafka_message_errstr(m));
            if (m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
                st_errstr(errstr, errstr_size, "topic %s: %s", o->topic,
                          rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                goto out;
            }
        } else if (ours && !done[p]) {
            last_progress_ms = st_time_mono_ms();
            if (m->offset < high[p] && take(r, codec, m, errstr, errstr_size) != 0) {
                rd_kafka_message_destroy(m);
                goto out;
            }
            if (m->offset >= high[p] - 1) {
                done[p] = true;
                left--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rc = 0;
out:
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    free(high);
    free(done);
    return rc;
}

int st_dataset_topic_load(st_dataset_t *ds, const st_dataset_topic_opts_t *o,
                          st_dataset_topic_stats_t *stats, char *errstr, size_t errstr_size)
{
    if (!o->brokers || !o->topic || !o->schemas_dir)
        return st_errstr(errstr, errstr_size,
                         "dataset topic: brokers, topic and schemas dir "
                         "are required");
    reader_t r;
    memset(&r, 0, sizeof r);
    r.topic = o->topic;
    int rc = -1;
    rd_kafka_t *rk = NULL;
    st_avro_codec_t *codec = NULL;
    st_avro_registry_t *reg =
        st_avro_registry_new(o->schemas_dir, o->registry_url, errstr, errstr_size);
    if (!reg)
        goto out;
    codec = st_avro_codec_new(reg, "SessionEvent", NULL, errstr, errstr_size);
    if (!codec)
        goto out;
    st_kafka_opts_t ko = {o->brokers, "stint-dataset", o->props, o->nprops};
    const char *const defaults[][2] = {{"group.id", "stint-dataset"},
                                       {"enable.auto.commit", "false"},
                                       {"enable.auto.offset.store", "false"},
                                       {"enable.partition.eof", "true"},
                                       {"auto.offset.reset", "earliest"}};
    rd_kafka_conf_t *conf =
        st_kafka_conf_new(&ko, defaults, sizeof defaults / sizeof defaults[0], errstr, errstr_size);
    if (!conf)
        goto out;
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    int64_t t0 = st_time_mono_ms();
    if (consume(&r, rk, codec, o, errstr, errstr_size) != 0 ||
        add_all(&r, ds, errstr, errstr_size) != 0)
        goto out;
    st_log_info("dataset_topic_read",
                "topic=%s partitions=%d records=%llu opened=%llu closed=%llu duplicates=%llu "
                "conflicts=%llu invalid=%llu sessions=%llu elapsed_s=%.1f",
                o->topic, r.stats.partitions, (unsigned long long)r.stats.records,
                (unsigned long long)r.stats.opened, (unsigned long long)r.stats.closed,
                (unsigned long long)r.stats.duplicates, (unsigned long long)r.stats.conflicts,
                (unsigned long long)r.stats.invalid, (unsigned long long)r.stats.sessions,
                (double)(st_time_mono_ms() - t0) / 1000.0);
    rc = 0;
out:
    if (stats)
        *stats = r.stats;
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    st_avro_codec_destroy(codec);
    st_avro_registry_destroy(reg);
    st_buf_free(&r.arena);
    free(r.v);
    return rc;
}
