/* st_pipeline.c - the batch loop: poll, process, produce and wait, apply, store offsets. */
#include "st_pipeline.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_lifecycle.h"
#include "st_log.h"
#include "st_metrics.h"
#include "st_time.h"

typedef struct {
    size_t topic_off, key_off, key_len, value_off, value_len;
} out_rec_t;

struct st_out_s {
    st_buf_t data;
    out_rec_t *recs;
    size_t n, cap;
    size_t dead_letters; /* of this attempt at the batch (counted once the batch is done) */
    struct st_pipeline_s *p;
    /* Standalone (st_out_new, p NULL): its dead-letter topic and encoding buffer. */
    char *own_dlq_topic;
    st_buf_t own_dlq_buf;
};

typedef struct {
    char *topic;
    int32_t partition;
    int64_t consumed_next; /* offset after the last record handed to process(), -1 = none yet */
    int64_t stored;        /* last offset stored, -1 = none */
    int64_t hold;          /* hold set in the current batch, -1 = none */
    st_metric_t *m_lag;    /* stint_consumer_lag_records{topic,partition} */
    int64_t committed;     /* the group's commit when assigned (-1 none), once asked */
    int64_t start;         /* the offset the assignment started at when set explicitly (a
                              partition regained after a lost assignment), else -1 */
    int64_t committed_asked_ms; /* when it was last asked (monotonic), 0 = not yet */
    int64_t lag;                /* as last computed by update_lag, -1 = not known yet */
} part_t;

struct st_pipeline_s {
    st_pipeline_handler_t h;
    char retry_text[sizeof(((st_err_t *)0)->text)]; /* the error of the last retry logged */
    rd_kafka_t *consumer;
    rd_kafka_topic_partition_list_t *subs; /* the subscription, for a restarted consumer */
    bool from_beginning;
    bool reset_earliest;      /* the consumer's auto.offset.reset, as set (-X may override) */
    int64_t kafka_failing_ms; /* since when every probe of the consumer failed (monotonic), 0 =
                                 the last probe answered, or records or acknowledgements came */
    st_producer_t *producer;
    st_kafka_opts_t kafka; /* the caller's, valid until destroy: for the commit at close */
    char *group_id;
    /* Offsets stored for partitions taken away before they could be committed (the group session
     * expired, say during a broker outage): where to resume if they come back, and committed from
     * outside the group at close if they do not. */
    rd_kafka_topic_partition_list_t *unsent;
    char *dlq_topic;
    st_dlq_encode_fn dlq_encode;
    void *dlq_ctx;
    int batch_max;
    int batch_timeout_ms;
    int tick_ms;
    st_http_t *http;
    rd_kafka_message_t **msgs;
    size_t nmsgs;
    st_msg_t *views;
    part_t *parts;
    size_t nparts;
    st_out_t out;
    st_buf_t dlq_buf;
    int64_t last_process_ms;
    int64_t lag_updated_ms; /* last update_lag (monotonic) */
    int64_t ready_lag_max;  /* /readyz: caught up = total lag at most this */
    bool assigned;          /* the group has given this member its partitions (possibly none) */
    bool running;           /* inside st_pipeline_run: readiness is reported */
    st_redis_t *redis;      /* PINGed for /healthz (may be NULL) */
    int64_t kafka_seen_ms, redis_seen_ms; /* last time each was shown reachable (monotonic) */
    uint64_t dead_letters;
    char **denied_out; /* output topics the principal may not write (asked again in probes) */
    size_t ndenied_out;
    st_metric_t *m_in, *m_out, *m_dlq, *m_batches, *m_retries, *m_batch_s;
    st_metric_t *m_phase[4]; /* stint_loop_seconds_total{phase}: see phase_names */
};

/* Where the consumer loop's wall time goes: waiting for and collecting records, process(),
 * producing and waiting for the acknowledgements, apply() (retries included). */
enum { PHASE_POLL, PHASE_PROCESS, PHASE_PRODUCE, PHASE_APPLY };
static const char *const phase_names[4] = {"poll", "process", "produce", "apply"};

static void phase_add(st_pipeline_t *p, int phase, int64_t since_us)
{
    st_metric_add(p->m_phase[phase], (double)(st_time_mono_us() - since_us) / 1e6);
}

/* Access shown to topic (records read from it, or written): its refusal of kind ("read:",
 * "write:") is over. */
static void topic_allowed(const char *kind, const char *topic)
{
    char key[300];
    if (!st_kafka_denied())
        return;
    snprintf(key, sizeof key, "%s%s", kind, topic);
    st_kafka_allowed(key);
}

/* Kafka's part of /healthz: reachable, and nothing refused (st_kafka_denied: a login, a topic
 * or the group). */
static void set_kafka_ok(st_pipeline_t *p, bool ok)
{
    st_http_set_kafka_ok(p->http, ok && !st_kafka_denied());
}

int st_out_produce(st_out_t *out, const char *topic, const void *key, size_t key_len,
                   const void *value, size_t value_len)
{
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 1024;
        out_rec_t *r = realloc(out->recs, cap * sizeof *r);
        if (!r)
            return -1;
        out->recs = r;
        out->cap = cap;
    }
    out_rec_t *r = &out->recs[out->n];
    r->topic_off = out->data.len;
    if (st_buf_append(&out->data, topic, strlen(topic) + 1) != 0)
        return -1;
    r->key_off = out->data.len;
    r->key_len = key_len;
    if (st_buf_append(&out->data, key, key_len) != 0)
        return -1;
    r->value_off = out->data.len;
    r->value_len = value_len;
    if (st_buf_append(&out->data, value, value_len) != 0)
        return -1;
    out->n++;
    return 0;
}

static int dlq_json(void *ctx, const st_msg_t *msg, const char *code, const char *text,
                    st_buf_t *out)
{
    (void)ctx;
    static const char hex[] = "0123456789abcdef";
    st_buf_t h = ST_BUF_INIT;
    for (size_t i = 0; i < msg->value_len; i++) {
        unsigned char c = ((const unsigned char *)msg->value)[i];
        st_buf_append(&h, &hex[c >> 4], 1);
        st_buf_append(&h, &hex[c & 15], 1);
    }
    json_t *o =
        json_pack("{s:s, s:i, s:I, s:s, s:s, s:s, s:I}", "source_topic", msg->topic,
                  "source_partition", (int)msg->partition, "source_offset", (json_int_t)msg->offset,
                  "error_code", code, "error", text, "original_value_hex", h.data ? h.data : "",
                  "failed_at_ms", (json_int_t)st_time_wall_ms());
    st_buf_free(&h);
    if (!o)
        return -1;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return -1;
    int rc = st_buf_append_str(out, s);
    free(s);
    return rc;
}

int st_out_dead_letter(st_out_t *out, const st_msg_t *msg, const char *code, const char *text)
{
    struct st_pipeline_s *p = out->p;
    const char *dlq_topic = p ? p->dlq_topic : out->own_dlq_topic;
    char q[600];
    uint64_t nth = (p ? p->dead_letters : 0) + ++out->dead_letters;
    if (nth <= 20 || nth % 1000 == 0)
        st_log_warn("dead_letter", "topic=%s partition=%d offset=%lld code=%s error=%s total=%llu",
                    msg->topic, (int)msg->partition, (long long)msg->offset, code,
                    st_log_quote(text, q, sizeof q), (unsigned long long)nth);
    if (!dlq_topic)
        return 0;
    st_msg_t kept = *msg;
    char why[1024];
    if (msg->value_len > ST_DLQ_VALUE_MAX || msg->key_len > ST_DLQ_KEY_MAX) {
        kept.value_len = msg->value_len > ST_DLQ_VALUE_MAX ? ST_DLQ_VALUE_MAX : msg->value_len;
        kept.key_len = msg->key_len > ST_DLQ_KEY_MAX ? ST_DLQ_KEY_MAX : msg->key_len;
        snprintf(why, sizeof why,
                 "%s (original key %zu bytes, value %zu bytes: the first %zu and %zu kept)", text,
                 msg->key_len, msg->value_len, kept.key_len, kept.value_len);
        text = why;
    }
    st_buf_t *buf = p ? &p->dlq_buf : &out->own_dlq_buf;
    st_buf_reset(buf);
    st_dlq_encode_fn enc = p && p->dlq_encode ? p->dlq_encode : dlq_json;
    if (enc(p ? p->dlq_ctx : NULL, &kept, code, text, buf) != 0)
        return -1;
    return st_out_produce(out, dlq_topic, kept.key, kept.key_len, buf->data, buf->len);
}

st_out_t *st_out_new(const char *dlq_topic)
{
    st_out_t *out = calloc(1, sizeof *out);
    if (out && dlq_topic && !(out->own_dlq_topic = strdup(dlq_topic))) {
        free(out);
        return NULL;
    }
    return out;
}

void st_out_destroy(st_out_t *out)
{
    if (!out)
        return;
    st_buf_free(&out->data);
    st_buf_free(&out->own_dlq_buf);
    free(out->recs);
    free(out->own_dlq_topic);
    free(out);
}

void st_out_reset(st_out_t *out)
{
    st_buf_reset(&out->data);
    out->n = 0;
    out->dead_letters = 0;
}

size_t st_out_count(const st_out_t *out)
{
    return out->n;
}

st_out_rec_t st_out_record(const st_out_t *out, size_t i)
{
    const out_rec_t *r = &out->recs[i];
    const char *d = out->data.data;
    return (st_out_rec_t){d + r->topic_off, d + r->key_off, r->key_len, d + r->value_off,
                          r->value_len};
}

static void update_ready(st_pipeline_t *p);

static part_t *find_part(st_pipeline_t *p, const char *topic, int32_t partition, bool create)
{
    for (size_t i = 0; i < p->nparts; i++)
        if (p->parts[i].partition == partition && strcmp(p->parts[i].topic, topic) == 0)
            return &p->parts[i];
    if (!create)
        return NULL;
    part_t *a = realloc(p->parts, (p->nparts + 1) * sizeof *a);
    if (!a)
        st_oom_abort("pipeline partitions");
    p->parts = a;
    part_t *pt = &p->parts[p->nparts++];
    pt->topic = strdup(topic);
    pt->partition = partition;
    pt->consumed_next = pt->stored = pt->hold = pt->committed = pt->lag = pt->start = -1;
    pt->committed_asked_ms = 0;
    /* Topic names are [a-zA-Z0-9._-]: nothing to escape in the label value. */
    char labels[320];
    snprintf(labels, sizeof labels, "topic=\"%s\",partition=\"%d\"", topic, (int)partition);
    pt->m_lag = st_metrics_gauge("stint_consumer_lag_records", labels,
                                 "Records of the partition not yet processed: its end offset (high "
                                 "watermark of the last fetch) less the offset after the last "
                                 "record processed; NaN until known, 0 once the partition is no "
                                 "longer assigned.");
    st_metric_set(pt->m_lag, NAN);
    return pt;
}

void st_out_hold(st_out_t *out, const char *topic, int32_t partition, int64_t offset)
{
    part_t *pt = find_part(out->p, topic, partition, false);
    if (pt && (pt->hold < 0 || offset < pt->hold))
        pt->hold = offset;
}

static int64_t position_or_start(st_pipeline_t *p, part_t *pt, int64_t lo, int64_t hi);
static int64_t start_offset(st_pipeline_t *p, part_t *pt, int64_t lo, int64_t hi);

/* The next offset of topic/partition that process() will see and the high watermark of the last
 * fetch response (no broker round trip): after this batch's records, else after the last one
 * handed to process(), else the consumer's fetch position, else where consumption starts. 0, or
 * -1 when either is not known yet. */
static int next_and_end(st_out_t *out, const char *topic, int32_t partition, int64_t *next,
                        int64_t *hi)
{
    st_pipeline_t *p = out->p;
    part_t *pt = find_part(p, topic, partition, false);
    int64_t n = pt ? pt->consumed_next : -1, lo;
    for (size_t i = 0; i < p->nmsgs; i++)
        if (p->views[i].partition == partition && p->views[i].offset + 1 > n &&
            strcmp(p->views[i].topic, topic) == 0)
            n = p->views[i].offset + 1;
    if (rd_kafka_get_watermark_offsets(p->consumer, topic, partition, &lo, hi) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        *hi < 0)
        return -1;
    if (n < 0 && pt)
        n = position_or_start(p, pt, lo, *hi);
    if (n < 0)
        return -1;
    *next = n;
    return 0;
}

int st_out_lag(st_out_t *out, const char *topic, int32_t partition, int64_t *lag)
{
    int64_t next, hi;
    if (next_and_end(out, topic, partition, &next, &hi) != 0)
        return -1;
    *lag = hi > next ? hi - next : 0;
    return 0;
}

int st_out_resume_commit(st_out_t *out, const char *topic, int32_t partition, int64_t *offset)
{
    st_pipeline_t *p = out->p;
    part_t *pt = find_part(p, topic, partition, false);
    int64_t lo, hi;
    if (!pt || pt->consumed_next >= 0 ||
        rd_kafka_get_watermark_offsets(p->consumer, topic, partition, &lo, &hi) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        hi < 0)
        return -1;
    for (size_t i = 0; i < p->nmsgs; i++)
        if (p->views[i].partition == partition && strcmp(p->views[i].topic, topic) == 0)
            return -1;    /* records of it in this batch */
    if (pt->start >= 0) { /* regained: it starts where this consumer had got to */
        if (pt->start != hi)
            return -1;
        *offset = pt->start;
        return 0;
    }
    if (start_offset(p, pt, lo, hi) < 0 || pt->committed < 0 || pt->committed == INT64_MAX ||
        pt->committed != hi)
        return -1; /* no commit, or one that is not the end (records to come, or a reset) */
    *offset = pt->committed;
    return 0;
}

static void drop_parts(st_pipeline_t *p, const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        for (size_t j = 0; j < p->nparts; j++) {
            if (p->parts[j].partition == parts->elems[i].partition &&
                strcmp(p->parts[j].topic, parts->elems[i].topic) == 0) {
                st_metric_set(p->parts[j].m_lag, 0); /* another member reports it now */
                free(p->parts[j].topic);
                p->parts[j] = p->parts[--p->nparts];
                break;
            }
        }
    }
}

static bool in_list(const rd_kafka_topic_partition_list_t *parts, const char *topic, int32_t part)
{
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition == part && strcmp(parts->elems[i].topic, topic) == 0)
            return true;
    return false;
}

/* Remembers the stored offsets of revoked partitions whose commit failed. */
static void keep_unsent(st_pipeline_t *p, const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        part_t *pt = find_part(p, parts->elems[i].topic, parts->elems[i].partition, false);
        if (!pt || pt->stored < 0)
            continue;
        rd_kafka_topic_partition_t *u =
            rd_kafka_topic_partition_list_find(p->unsent, pt->topic, pt->partition);
        if (!u)
            u = rd_kafka_topic_partition_list_add(p->unsent, pt->topic, pt->partition);
        u->offset = pt->stored;
    }
}

/* Partitions coming back after an uncommitted loss start from where this consumer had got to,
 * unless the group's commit is already further (another member went on). Both are safe starts:
 * everything before either has been applied and acknowledged. Sets the start offsets in parts
 * and returns the partitions to store again (NULL if none); they leave the unsent list once
 * stored. */
static rd_kafka_topic_partition_list_t *resume_from_unsent(st_pipeline_t *p, rd_kafka_t *rk,
                                                           rd_kafka_topic_partition_list_t *parts)
{
    if (st_lifecycle_stopping()) /* assigned while closing: nothing more is consumed */
        return NULL;
    rd_kafka_topic_partition_list_t *back = rd_kafka_topic_partition_list_new(parts->cnt);
    rd_kafka_topic_partition_list_t *resumed = NULL;
    for (int i = 0; i < parts->cnt; i++)
        if (rd_kafka_topic_partition_list_find(p->unsent, parts->elems[i].topic,
                                               parts->elems[i].partition))
            rd_kafka_topic_partition_list_add(back, parts->elems[i].topic,
                                              parts->elems[i].partition);
    if (back->cnt == 0) {
        rd_kafka_topic_partition_list_destroy(back);
        return NULL;
    }
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, back, 5000);
    for (int i = 0; i < back->cnt; i++) {
        rd_kafka_topic_partition_t *b = &back->elems[i];
        rd_kafka_topic_partition_t *u =
            rd_kafka_topic_partition_list_find(p->unsent, b->topic, b->partition);
        bool known = !e && !b->err;
        int64_t committed = known ? b->offset : -1;
        if (u->offset > committed) {
            rd_kafka_topic_partition_list_find(parts, b->topic, b->partition)->offset = u->offset;
            /* Stored (to be committed) only over a commit known to be older: an unknown one may
             * be another member's, further on, and must not be moved back. */
            if (known) {
                if (!resumed)
                    resumed = rd_kafka_topic_partition_list_new(back->cnt);
                rd_kafka_topic_partition_list_add(resumed, b->topic, b->partition)->offset =
                    u->offset;
            }
            st_log_info("partition_resumed", "topic=%s partition=%d offset=%lld committed=%lld",
                        b->topic, (int)b->partition, (long long)u->offset, (long long)committed);
        } else {
            rd_kafka_topic_partition_list_del(p->unsent, b->topic, b->partition);
        }
    }
    rd_kafka_topic_partition_list_destroy(back);
    return resumed;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    st_pipeline_t *p = opaque;
    /* consumer_start refuses an incremental protocol; should the group still run one, its
     * calls are made (so that close can complete) and the service stops, saying why. */
    const char *proto = rd_kafka_rebalance_protocol(rk);
    if (proto && strcmp(proto, "COOPERATIVE") == 0) {
        st_log_error("kafka_rebalance_protocol",
                     "protocol=%s error=\"stint assigns whole "
                     "assignments (eager)\"",
                     proto);
        st_lifecycle_request_failed_stop();
        rd_kafka_topic_partition_list_t *none = rd_kafka_topic_partition_list_new(0);
        rd_kafka_error_t *e = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
                                  ? rd_kafka_incremental_assign(rk, none)
                                  : rd_kafka_incremental_unassign(rk, parts);
        rd_kafka_topic_partition_list_destroy(none);
        if (e)
            rd_kafka_error_destroy(e);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        st_log_info("partitions_assigned", "count=%d", parts->cnt);
        p->kafka_failing_ms = 0; /* the group coordinator answered */
        rd_kafka_topic_partition_list_t *resumed = resume_from_unsent(p, rk, parts);
        rd_kafka_resp_err_t aerr = rd_kafka_assign(rk, parts);
        if (aerr) {
            st_log_error("kafka_assign", "error=%s", rd_kafka_err2str(aerr));
            st_lifecycle_request_failed_stop();
        }
        for (int i = 0; i < parts->cnt; i++) {
            part_t *pt = find_part(p, parts->elems[i].topic, parts->elems[i].partition, true);
            if (pt)
                pt->start = parts->elems[i].offset >= 0 ? parts->elems[i].offset : -1;
        }
        if (resumed) {
            /* Stored again so that the group's commit catches up with where we resume. */
            for (int i = 0; i < resumed->cnt; i++)
                find_part(p, resumed->elems[i].topic, resumed->elems[i].partition, true)->stored =
                    resumed->elems[i].offset;
            rd_kafka_resp_err_t e = rd_kafka_offsets_store(rk, resumed);
            if (e) /* closing already: they stay unsent, for the commit at close */
                st_log_warn("offset_store", "error=%s (resumed partitions)", rd_kafka_err2name(e));
            for (int i = 0; !e && i < resumed->cnt; i++)
                rd_kafka_topic_partition_list_del(p->unsent, resumed->elems[i].topic,
                                                  resumed->elems[i].partition);
            rd_kafka_topic_partition_list_destroy(resumed);
        }
        if (p->h.on_assign)
            p->h.on_assign(p->h.ctx, parts);
        p->assigned = true;
        /* The group let this member in: its Read on the group and these topics is granted. */
        st_kafka_allowed("group");
        for (int i = 0; i < parts->cnt; i++)
            topic_allowed("read:", parts->elems[i].topic);
        update_ready(p);
        return;
    }
    /* Revoke happens inside the poll that collects a batch, so no batch is between process and
     * offset store: records collected from revoked partitions are dropped (the new owner reads
     * them again), stored offsets are committed synchronously, then the partitions go. */
    size_t kept = 0;
    for (size_t i = 0; i < p->nmsgs; i++) {
        rd_kafka_message_t *m = p->msgs[i];
        if (in_list(parts, rd_kafka_topic_name(m->rkt), m->partition))
            rd_kafka_message_destroy(m);
        else
            p->msgs[kept++] = m;
    }
    p->nmsgs = kept;
    /* A lost assignment (session expired) cannot be committed: the group has moved on. */
    bool lost = rd_kafka_assignment_lost(rk);
    rd_kafka_resp_err_t cerr =
        lost ? RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST : rd_kafka_commit(rk, NULL, 0);
    st_log_info("partitions_revoked", "count=%d commit=%s", parts->cnt,
                cerr == RD_KAFKA_RESP_ERR__NO_OFFSET ? "nothing-new" : rd_kafka_err2name(cerr));
    if (cerr != RD_KAFKA_RESP_ERR_NO_ERROR && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
        keep_unsent(p, parts);
    if (p->h.on_revoke)
        p->h.on_revoke(p->h.ctx, parts);
    drop_parts(p, parts);
    rd_kafka_resp_err_t aerr = rd_kafka_assign(rk, NULL);
    if (aerr) {
        st_log_error("kafka_unassign", "error=%s", rd_kafka_err2str(aerr));
        st_lifecycle_request_failed_stop();
    }
    p->assigned = false;
    update_ready(p);
}

/* Looks up the output topics before the first batch: their first records are then not held
 * for a metadata round, and a missing topic is reported now rather than as delivery timeouts.
 * Not fatal: the brokers may be down at start (the batches retry) or create topics on use. */
static void prepare_outputs(st_pipeline_t *p, const st_pipeline_opts_t *opts)
{
    int64_t deadline = st_time_mono_ms() + 10000;
    for (size_t i = 0; i <= opts->nout_topics; i++) {
        const char *topic = i < opts->nout_topics ? opts->out_topics[i] : opts->dlq_topic;
        char err[512], q[600];
        int64_t left = deadline - st_time_mono_ms();
        if (!topic || !*topic)
            continue;
        rd_kafka_resp_err_t e = st_producer_prepare_topic(
            p->producer, topic, left > 1000 ? (int)left : 1000, err, sizeof err);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        if (e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
            char **d = realloc(p->denied_out, (p->ndenied_out + 1) * sizeof *d);
            if (d && (d[p->ndenied_out] = strdup(topic)) != NULL) {
                p->denied_out = d;
                p->ndenied_out++;
                st_kafka_deny_write(topic, err);
                continue;
            }
            if (d)
                p->denied_out = d;
        }
        st_log_error("output_topic", "topic=%s error=%s", topic, st_log_quote(err, q, sizeof q));
    }
}

/* Output topics refused at start: asked again, each success ends its refusal. */
static void probe_denied_outputs(st_pipeline_t *p)
{
    for (size_t i = 0; i < p->ndenied_out;) {
        char err[512];
        if (st_producer_prepare_topic(p->producer, p->denied_out[i], 1000, err, sizeof err) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            i++;
            continue;
        }
        topic_allowed("write:", p->denied_out[i]);
        free(p->denied_out[i]);
        p->denied_out[i] = p->denied_out[--p->ndenied_out];
    }
}

/* Creates the group consumer (p->consumer), subscribed to p->subs, its rebalances handled by
 * rebalance_cb. 0, or -1 with errstr (p->consumer may then be set: destroy frees it). */
static int consumer_start(st_pipeline_t *p, char *errstr, size_t errstr_size)
{
    char buf[512];
    /* With fetch.queue.backoff.ms (librdkafka >= 2.2) the fetcher waits 20 ms, not ~1 s, when
     * the queue is full, so a small queue no longer starves the loop; see the prefetch below. */
    bool short_backoff = st_kafka_conf_known("fetch.queue.backoff.ms");
    const char *const defaults[][2] = {
        {"enable.auto.offset.store", "false"},
        {"enable.auto.commit", "true"},
        {"auto.commit.interval.ms", "1000"},
        {"enable.partition.eof", "false"},
        {"session.timeout.ms", "10000"},
        {"heartbeat.interval.ms", "1000"},
        {"auto.offset.reset", p->from_beginning ? "earliest" : "latest"},
        {"group.id", p->group_id},
        /* The prefetch queue. librdkafka 2.0 (Debian 12) backs a partition's fetcher off for
         * ~1 s whenever its queue is over either threshold (fetch.queue.backoff.ms exists only from
         * 2.2), so a queue that holds less than a second of consumption starves the loop: at 4 MB
         * ingest spent half its time in poll (27,700 listens/s end to end). The default (64 MB per
         * partition) is fast but costs ~560 MB of RSS while a service catches up. Measured with
         * bench/full_pipeline --users 400 --days 300 (listens/s, peak RSS of ingest):
         * 4 MB: 27,700, 47 MB; unlimited: 45,800, 558 MB; 12 MB: 52,000, 73 MB;
         * 12 MB with 256 KB fetches per partition: 54,700, 63 MB (kept). The message count is
         * bounded too: a queued message costs librdkafka ~400 B of op besides its bytes
         * (heaptrack), so for small records (the sessionizer's and the enricher's Avro, ~120 B) the
         * op count, not the bytes, is the memory. On the 18.7 M run (--users 1000 --days 1500) a
         * count bound of 1,000,000 left the sessionizer at 73 MB peak RSS (306 s); 50,000 gives 63
         * MB (and ingest 60 MB) at 358 s, one run each. A deployment that wants the speed back sets
         * queued.min.messages (-X / STINT_RDKAFKA_*) and gives the memory.
         * Built against librdkafka 2.12.1 (the source of the rdkafka-sys 4.10.0 crate), the same
         * bench (--users 400 --days 300, 2026-12-06, interleaved): these settings 49,759 and 51,190
         * listens/s (2.0.2), 52,490 and 51,222 (2.12.1); with fetch.queue.backoff.ms 20 85,566 and
         * 72,512 but ingest 66-67 MB and the sessionizer 70-71 MB; with that and 4 MB queues 74,395
         * (one run, another job starting) and every service <= 54 MB. So with the short backoff
         * the queue is 4 MB. */
        {"queued.max.messages.kbytes", short_backoff ? "4096" : "12288"},
        {"queued.min.messages", "50000"},
        {"max.partition.fetch.bytes", "262144"},
        {"fetch.queue.backoff.ms", "20"}, /* last: left out where librdkafka lacks it */
    };
    size_t ndefaults = sizeof defaults / sizeof defaults[0] - (short_backoff ? 0 : 1);
    rd_kafka_conf_t *conf = st_kafka_conf_new(&p->kafka, defaults, ndefaults, errstr, errstr_size);
    if (!conf)
        return -1;
    /* This loop takes and gives up whole assignments (eager). An incremental protocol would
     * refuse its rd_kafka_assign and leave the member fetching nothing: refused here. */
    char strategy[256] = "", protocol[64] = "";
    size_t ssz = sizeof strategy, psz = sizeof protocol;
    rd_kafka_conf_get(conf, "partition.assignment.strategy", strategy, &ssz);
    if (rd_kafka_conf_get(conf, "group.protocol", protocol, &psz) != RD_KAFKA_CONF_OK)
        protocol[0] = '\0';
    if (strstr(strategy, "cooperative") || strcmp(protocol, "consumer") == 0) {
        rd_kafka_conf_destroy(conf);
        return st_errstr(errstr, errstr_size,
                         "partition.assignment.strategy=%s group.protocol=%s: an incremental "
                         "rebalance protocol, which stint does not support (it assigns whole "
                         "assignments); remove the setting",
                         strategy, protocol[0] ? protocol : "classic");
    }
    char reset[32] = "";
    size_t rsz = sizeof reset;
    rd_kafka_conf_get(conf, "auto.offset.reset", reset, &rsz);
    p->reset_earliest = strcmp(reset, "earliest") == 0 || strcmp(reset, "smallest") == 0 ||
                        strcmp(reset, "beginning") == 0;
    char qkb[32] = "?", backoff[32] = "none (librdkafka < 2.2: ~1 s)";
    size_t sz = sizeof qkb;
    rd_kafka_conf_get(conf, "queued.max.messages.kbytes", qkb, &sz);
    sz = sizeof backoff;
    if (short_backoff)
        rd_kafka_conf_get(conf, "fetch.queue.backoff.ms", backoff, &sz);
    st_log_info("kafka_consumer",
                "librdkafka=%s queued_max_kbytes=%s fetch_queue_backoff_ms=\"%s\"",
                rd_kafka_version_str(), qkb, backoff);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, p);
    p->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, buf, sizeof buf);
    if (!p->consumer) {
        rd_kafka_conf_destroy(conf);
        return st_errstr(errstr, errstr_size, "cannot create consumer: %s", buf);
    }
    rd_kafka_poll_set_consumer(p->consumer);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(p->consumer, p->subs);
    if (e)
        return st_errstr(errstr, errstr_size, "subscribe: %s", rd_kafka_err2str(e));
    return 0;
}

st_pipeline_t *st_pipeline_new(const st_pipeline_opts_t *opts, const st_pipeline_handler_t *h,
                               char *errstr, size_t errstr_size)
{
    st_pipeline_t *p = calloc(1, sizeof *p);
    if (!p) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    p->h = *h;
    p->out.p = p;
    p->group_id = opts->group_id ? strdup(opts->group_id) : NULL;
    p->unsent = rd_kafka_topic_partition_list_new(8);
    p->dlq_topic = opts->dlq_topic ? strdup(opts->dlq_topic) : NULL;
    p->dlq_encode = opts->dlq_encode;
    p->dlq_ctx = opts->dlq_ctx;
    p->batch_max = opts->batch_max > 0 ? opts->batch_max : 5000;
    p->batch_timeout_ms = opts->batch_timeout_ms > 0 ? opts->batch_timeout_ms : 100;
    p->tick_ms = opts->tick_ms;
    p->ready_lag_max = opts->ready_lag_max;
    p->http = opts->http;
    p->redis = opts->redis;
    p->msgs = calloc((size_t)p->batch_max, sizeof *p->msgs);
    p->views = calloc((size_t)p->batch_max, sizeof *p->views);
    if (!p->msgs || !p->views) {
        st_errstr(errstr, errstr_size, "out of memory");
        goto fail;
    }

    p->kafka = opts->kafka;
    p->from_beginning = opts->from_beginning;
    p->subs = rd_kafka_topic_partition_list_new((int)opts->ntopics);
    for (size_t i = 0; i < opts->ntopics; i++)
        rd_kafka_topic_partition_list_add(p->subs, opts->topics[i], RD_KAFKA_PARTITION_UA);
    if (consumer_start(p, errstr, errstr_size) != 0)
        goto fail;
    p->producer = st_producer_new(&opts->kafka, errstr, errstr_size);
    if (!p->producer)
        goto fail;
    prepare_outputs(p, opts);

    p->m_in = st_metrics_counter("stint_records_in_total", NULL, "Records consumed.");
    p->m_out =
        st_metrics_counter("stint_records_out_total", NULL, "Records produced (acknowledged).");
    p->m_dlq = st_metrics_counter("stint_dead_letters_total", NULL,
                                  "Records sent to the dead-letter topic.");
    p->m_batches = st_metrics_counter("stint_batches_total", NULL, "Batches completed.");
    for (int i = 0; i < 4; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "phase=\"%s\"", phase_names[i]);
        p->m_phase[i] = st_metrics_counter(
            "stint_loop_seconds_total", labels,
            "Wall time of the consumer loop by phase: poll (waiting for and collecting records), "
            "process, produce (sending the outputs and waiting for their acknowledgements), apply "
            "(the Redis writes after the acknowledgements); retries count in their phase.");
    }
    p->m_retries = st_metrics_counter("stint_batch_retries_total", NULL,
                                      "Batch steps retried after a retriable error.");
    p->m_batch_s = st_metrics_histogram("stint_batch_duration_seconds", NULL,
                                        "Time from the end of polling to the offsets stored, in "
                                        "seconds.",
                                        st_metrics_latency_seconds_buckets,
                                        st_metrics_latency_seconds_nbuckets);
    return p;
fail:
    st_pipeline_destroy(p);
    return NULL;
}

st_producer_t *st_pipeline_producer(st_pipeline_t *p)
{
    return p->producer;
}

void st_pipeline_set_redis_ok(st_pipeline_t *p, bool ok)
{
    if (ok)
        p->redis_seen_ms = st_time_mono_ms();
    st_http_set_redis_ok(p->http, ok);
}

/* A consumer that has reached no broker for ST_PIPELINE_CONSUMER_RESTART_MS while the group
 * holds none of its partitions is replaced by a new one. librdkafka (seen on 2.12.1, in CI's
 * test_healthz) can lose its way back after a broker restart: the group coordinator answered
 * NOT_COORDINATOR while shutting down, the session expired, and for the next 60 s, with the
 * broker up again and the other service of the test long reconnected, the consumer neither
 * rejoined its group nor answered a metadata request. A new handle starts from the bootstrap
 * servers. Nothing is lost: with no partitions there are no records in hand, the offsets stored
 * for partitions taken away are kept in p->unsent (resumed from or committed at close, as after
 * any lost assignment), and the old handle is destroyed without a consumer close (no commit, no
 * leave: its member is gone from the group already). While the brokers are really down this
 * repeats every ST_PIPELINE_CONSUMER_RESTART_MS, which costs a handle and a log line; the
 * destroy waits for librdkafka's threads, bounded by its request timeouts. */
static void consumer_restart(st_pipeline_t *p)
{
    if (p->nparts > 0 || p->nmsgs > 0)
        return; /* a member with partitions waits for the session to expire first (an empty
                   assignment, a standby's, is no reason to wait) */
    char err[512], q[600];
    st_log_warn("kafka_consumer_restart",
                "reason=\"no broker answered the consumer for %d s, no partitions held\"",
                (int)((st_time_mono_ms() - p->kafka_failing_ms) / 1000));
    rd_kafka_destroy_flags(p->consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    p->consumer = NULL;
    p->kafka_failing_ms = 0;
    p->assigned = false; /* /readyz waits for the new member's assignment */
    update_ready(p);
    if (consumer_start(p, err, sizeof err) != 0) {
        /* Not fatal for the loop, which needs a handle: the service stops, and its supervisor
         * restarts it (a configuration that worked at start fails only on ENOMEM). */
        st_log_error("kafka_consumer_restart", "error=%s", st_log_quote(err, q, sizeof q));
        st_lifecycle_request_failed_stop();
    }
}

/* Keeps /healthz true: Kafka and Redis are asked when nothing has shown them reachable for
 * ST_PIPELINE_PROBE_MS (records and successful batches count), so a stopped server is reported
 * within about two of those, busy or idle, with or without timer ticks. */
static void probe_health(st_pipeline_t *p, int64_t now)
{
    if (now - p->kafka_seen_ms >= ST_PIPELINE_PROBE_MS) {
        const struct rd_kafka_metadata *md;
        bool ok = rd_kafka_metadata(p->consumer, 0, NULL, &md, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR;
        if (ok) {
            rd_kafka_metadata_destroy(md);
            st_kafka_mark_reachable();
        }
        if (ok && p->ndenied_out > 0)
            probe_denied_outputs(p);
        set_kafka_ok(p, ok);
        p->kafka_seen_ms = st_time_mono_ms(); /* the next probe in PROBE_MS either way */
        if (ok)
            p->kafka_failing_ms = 0;
        else if (p->kafka_failing_ms == 0)
            p->kafka_failing_ms = p->kafka_seen_ms;
        else if (p->kafka_seen_ms - p->kafka_failing_ms >= ST_PIPELINE_CONSUMER_RESTART_MS)
            consumer_restart(p);
    }
    if (p->redis && now - p->redis_seen_ms >= ST_PIPELINE_PROBE_MS) {
        st_err_t err = {0};
        const char *argv[] = {"PING"};
        redisReply *r = st_redis_commandargv(p->redis, &err, 1, argv, NULL);
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        st_http_set_redis_ok(p->http, ok);
        p->redis_seen_ms = st_time_mono_ms();
    }
}

static void out_reset(st_out_t *out)
{
    st_buf_reset(&out->data);
    out->n = 0;
    out->dead_letters = 0;
}

static void destroy_msgs(st_pipeline_t *p)
{
    for (size_t i = 0; i < p->nmsgs; i++)
        rd_kafka_message_destroy(p->msgs[i]);
    p->nmsgs = 0;
}

/* The group or an input topic refused to this service's principal: one line naming what to
 * grant or fix (st_kafka_deny), /healthz unhealthy until the group assigns partitions. */
static void consume_denied(st_pipeline_t *p, const rd_kafka_message_t *m)
{
    char q[600], key[300];
    const char *detail = st_log_quote(rd_kafka_message_errstr(m), q, sizeof q);
    if (m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) {
        const char *g = p->group_id ? p->group_id : "";
        st_kafka_deny("group", "kafka_group_denied",
                      "group=%s error=%s detail=%s (this service's Kafka principal, the identity "
                      "of ssl.certificate.location or sasl.username, may not use consumer group "
                      "%s: grant it Read on the group, or fix kafka.group)",
                      g, rd_kafka_err2name(m->err), detail, g);
        return;
    }
    const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "?";
    snprintf(key, sizeof key, "read:%s", topic);
    st_kafka_deny(key, "kafka_read_denied",
                  "topic=%s error=%s detail=%s (this service's Kafka principal, the identity of "
                  "ssl.certificate.location or sasl.username, may not read topic %s: grant it "
                  "Read and Describe on the topic, or fix the input topic setting)",
                  topic, rd_kafka_err2name(m->err), detail, topic);
}

/* Polls up to batch_max records: waits up to batch_timeout_ms for the first one, then takes what
 * the client has already fetched and returns. A batch never waits for more records to arrive:
 * under load the fetched queue fills whole batches anyway, and a live trickle goes through at
 * once instead of after the timeout at every hop. */
static void collect(st_pipeline_t *p)
{
    int64_t deadline = st_time_mono_ms() + p->batch_timeout_ms;
    while (p->nmsgs < (size_t)p->batch_max && !st_lifecycle_stopping()) {
        int64_t left = deadline - st_time_mono_ms();
        if (left < 0)
            break;
        int wait_ms = p->nmsgs > 0 ? 0 : (int)(left > 100 ? 100 : left);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(p->consumer, wait_ms);
        if (!m) {
            if (p->nmsgs > 0)
                break;
            continue;
        }
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
                m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
                consume_denied(p, m);
            else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                st_log_warn("consume_error", "error=%s detail=\"%s\"", rd_kafka_err2name(m->err),
                            rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        p->msgs[p->nmsgs++] = m;
    }
}

/* /readyz: ready once the group has assigned this member its partitions (none is a valid
 * assignment: a standby member of a group with more members than partitions is ready) and the
 * total lag over them, as last computed (at most a second old), is at most ready_lag_max. The
 * lag counts records not yet processed, so a sessionizer's held records do not count. */
static void update_ready(st_pipeline_t *p)
{
    if (!p->running)
        return;
    if (!p->assigned) {
        st_http_set_ready(p->http, false, "waiting for the group to assign partitions");
        return;
    }
    char d[256];
    int64_t total = 0;
    const part_t *worst = NULL;
    for (size_t i = 0; i < p->nparts; i++) {
        const part_t *pt = &p->parts[i];
        if (pt->lag < 0) {
            snprintf(d, sizeof d, "lag of %s[%d] not known yet", pt->topic, (int)pt->partition);
            st_http_set_ready(p->http, false, d);
            return;
        }
        total += pt->lag;
        if (!worst || pt->lag > worst->lag)
            worst = pt;
    }
    if (total > p->ready_lag_max) {
        snprintf(d, sizeof d, "lag=%lld > http.ready_lag_max=%lld (most behind: %s[%d] lag=%lld)",
                 (long long)total, (long long)p->ready_lag_max, worst->topic, (int)worst->partition,
                 (long long)worst->lag);
        st_http_set_ready(p->http, false, d);
        return;
    }
    snprintf(d, sizeof d, "partitions=%zu lag=%lld", p->nparts, (long long)total);
    st_http_set_ready(p->http, true, d);
}

/* Where consumption of pt starts when nothing has been read since the assignment: the group's
 * committed offset, asked once per assignment (one broker round trip of at most 1 s), else where
 * auto.offset.reset puts a group without one: the start of the partition (lo) when it is
 * earliest, else its end (hi). -1 when unknown (the broker did not answer:
 * asked again COMMITTED_RETRY_MS later; or lo not known yet). */
#define COMMITTED_RETRY_MS 5000
static int64_t start_offset(st_pipeline_t *p, part_t *pt, int64_t lo, int64_t hi)
{
    int64_t now = st_time_mono_ms();
    if (pt->committed_asked_ms == 0 ||
        (pt->committed < 0 && now - pt->committed_asked_ms >= COMMITTED_RETRY_MS)) {
        pt->committed_asked_ms = now;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, pt->topic, pt->partition);
        if (rd_kafka_committed(p->consumer, l, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            !l->elems[0].err)
            pt->committed = l->elems[0].offset >= 0 ? l->elems[0].offset : INT64_MAX;
        rd_kafka_topic_partition_list_destroy(l);
    }
    if (pt->committed < 0) /* the broker did not answer: unknown until a record is read */
        return -1;
    if (pt->committed != INT64_MAX)
        return pt->committed;
    return p->reset_earliest ? (lo >= 0 ? lo : -1) : hi;
}

/* The lag gauges: per assigned partition, the high watermark of the last fetch response (no
 * broker round trip) less the next offset to process: after the last record processed, else the
 * fetch position, else where consumption starts (start_offset). A partition with neither end nor
 * start known is left as it is. */
/* Where pt's consumption stands with no record handed to process() since the assignment: the
 * consumer's fetch position, else start_offset. -1 when unknown. */
static int64_t position_or_start(st_pipeline_t *p, part_t *pt, int64_t lo, int64_t hi)
{
    int64_t next = -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, pt->topic, pt->partition);
    if (rd_kafka_position(p->consumer, l) == RD_KAFKA_RESP_ERR_NO_ERROR && l->elems[0].offset >= 0)
        next = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return next >= 0 ? next : start_offset(p, pt, lo, hi);
}

static void update_lag(st_pipeline_t *p)
{
    for (size_t i = 0; i < p->nparts; i++) {
        part_t *pt = &p->parts[i];
        int64_t next = pt->consumed_next, lo, hi;
        if (rd_kafka_get_watermark_offsets(p->consumer, pt->topic, pt->partition, &lo, &hi) !=
                RD_KAFKA_RESP_ERR_NO_ERROR ||
            hi < 0)
            continue;
        if (next < 0)
            next = position_or_start(p, pt, lo, hi);
        if (next < 0)
            continue;
        pt->lag = hi > next ? hi - next : 0;
        st_metric_set(pt->m_lag, (double)pt->lag);
    }
    update_ready(p);
}

static void backoff(int *ms)
{
    st_lifecycle_sleep_ms(*ms);
    *ms = *ms * 2 > 5000 ? 5000 : *ms * 2;
}

/* Between two attempts at a batch step: the lag gauges stay current while the batch waits for
 * Kafka or Redis to come back. */
static void retry_wait(st_pipeline_t *p, int *ms)
{
    update_lag(p);
    backoff(ms);
}

static void note_error(st_pipeline_t *p, const char *step, const st_err_t *err)
{
    char q[600];
    if (err->code == ST_ERR_REDIS)
        st_http_set_redis_ok(p->http, false);
    if (err->code == ST_ERR_KAFKA || err->code == ST_ERR_TIMEOUT)
        st_http_set_kafka_ok(p->http, false);
    /* One line per distinct failure: a batch retried every 5 s for as long as a server refuses
     * (an ACL that forbids a command) repeats itself at debug level only. */
    if (strcmp(p->retry_text, err->text) != 0)
        st_log_warn("batch_retry", "step=%s code=%s retriable=%d error=%s", step,
                    st_err_code_name(err->code), err->retriable,
                    st_log_quote(err->text, q, sizeof q));
    else
        st_log_debug("batch_retry", "step=%s code=%s retriable=%d error=%s repeated=1", step,
                     st_err_code_name(err->code), err->retriable,
                     st_log_quote(err->text, q, sizeof q));
    snprintf(p->retry_text, sizeof p->retry_text, "%s", err->text);
    st_metric_inc(p->m_retries, 1);
}

/* Produces the batch's outputs and waits for the acknowledgements. */
static int produce_outputs(st_pipeline_t *p, st_err_t *err)
{
    for (size_t i = 0; i < p->out.n; i++) {
        const out_rec_t *r = &p->out.recs[i];
        if (st_producer_send(p->producer, p->out.data.data + r->topic_off, -1,
                             p->out.data.data + r->key_off, r->key_len,
                             p->out.data.data + r->value_off, r->value_len, err) != 0)
            return -1;
    }
    int64_t stop_seen_ms = -1;
    for (;;) {
        st_err_t e = {0};
        if (st_producer_wait(p->producer, 1000, &e) == 0)
            break;
        if (e.code != ST_ERR_TIMEOUT) {
            *err = e;
            return -1;
        }
        /* Waiting out an outage: /healthz says so (librdkafka's all-brokers-down), as the idle
         * loop's probes would; the acknowledgements, when they come, say ok again. */
        if (!st_kafka_reachable())
            set_kafka_ok(p, false);
        /* A broker outage: librdkafka keeps retrying until message.timeout.ms. When asked to
         * stop, give it 30 s more, then leave without storing offsets (the batch is replayed). */
        if (st_lifecycle_stopping()) {
            if (stop_seen_ms < 0)
                stop_seen_ms = st_time_mono_ms();
            else if (st_time_mono_ms() - stop_seen_ms > 30000) {
                *err = e;
                err->fatal = true;
                return -1;
            }
        }
    }
    st_metric_inc(p->m_out, p->out.n);
    if (p->out.n > 0) { /* acknowledged records prove the brokers reachable; none proves nothing */
        st_kafka_mark_reachable();
        /* every topic of the batch took its records (records of one topic mostly adjoin) */
        for (size_t i = 0; i < p->out.n && st_kafka_denied(); i++)
            if (i == 0 || strcmp(p->out.data.data + p->out.recs[i].topic_off,
                                 p->out.data.data + p->out.recs[i - 1].topic_off) != 0)
                topic_allowed("write:", p->out.data.data + p->out.recs[i].topic_off);
        set_kafka_ok(p, true);
        p->kafka_seen_ms = st_time_mono_ms();
        p->kafka_failing_ms = 0;
    }
    return 0;
}

/* Stores the offsets of every partition that advanced, honouring holds. */
static void store_offsets(st_pipeline_t *p)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)p->nparts);
    for (size_t i = 0; i < p->nparts; i++) {
        part_t *pt = &p->parts[i];
        int64_t off = pt->consumed_next;
        if (pt->hold >= 0 && (off < 0 || pt->hold < off))
            off = pt->hold;
        pt->hold = -1;
        if (off < 0 || off <= pt->stored)
            continue;
        rd_kafka_topic_partition_list_add(l, pt->topic, pt->partition)->offset = off;
        pt->stored = off;
    }
    if (l->cnt > 0) {
        rd_kafka_resp_err_t e = rd_kafka_offsets_store(p->consumer, l);
        if (e)
            st_log_warn("offset_store", "error=%s (partitions may have been revoked)",
                        rd_kafka_err2name(e));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Runs one batch to completion (or to a stop). Returns 0, or -1 on a fatal error. */
static int run_batch(st_pipeline_t *p)
{
    int64_t t0_us = st_time_mono_us();
    size_t n = p->nmsgs;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = p->msgs[i];
        st_msg_t *v = &p->views[i];
        rd_kafka_timestamp_type_t tt;
        v->topic = rd_kafka_topic_name(m->rkt);
        v->partition = m->partition;
        v->offset = m->offset;
        v->timestamp_ms = rd_kafka_message_timestamp(m, &tt);
        v->key = m->key;
        v->key_len = m->key_len;
        v->value = m->payload;
        v->value_len = m->len;
    }
    if (n > 0)
        st_metric_inc(p->m_in, n);

    int wait_ms = 100;
    for (;;) {
        st_err_t err = {0};
        out_reset(&p->out);
        for (size_t i = 0; i < p->nparts; i++)
            p->parts[i].hold = -1;
        int64_t t_us = st_time_mono_us();
        int prc = p->h.process(p->h.ctx, p->views, n, &p->out, &err);
        phase_add(p, PHASE_PROCESS, t_us);
        if (prc != 0) {
            if (!err.retriable || err.fatal) {
                st_log_error("batch_failed", "step=process error=\"%s\"", err.text);
                return -1;
            }
            note_error(p, "process", &err);
            if (st_lifecycle_stopping())
                return 0; /* offsets not stored: the batch is replayed after restart */
            retry_wait(p, &wait_ms);
            continue;
        }
        if (n > 0) /* a timer tick with no records may not have asked Redis anything */
            st_pipeline_set_redis_ok(p, true);
        t_us = st_time_mono_us();
        prc = produce_outputs(p, &err);
        phase_add(p, PHASE_PRODUCE, t_us);
        if (prc != 0) {
            if (err.fatal || !err.retriable) {
                st_log_error("batch_failed", "step=produce error=\"%s\"", err.text);
                return -1;
            }
            note_error(p, "produce", &err);
            if (st_lifecycle_stopping())
                return 0;
            retry_wait(p, &wait_ms);
            continue; /* reprocess: same Redis state, same outputs (byte-identical duplicates) */
        }
        break;
    }
    if (p->h.apply) {
        wait_ms = 100;
        for (;;) {
            st_err_t err = {0};
            int64_t t_us = st_time_mono_us();
            int arc = p->h.apply(p->h.ctx, &err);
            phase_add(p, PHASE_APPLY, t_us);
            if (arc == 0)
                break;
            if (!err.retriable || err.fatal) {
                st_log_error("batch_failed", "step=apply error=\"%s\"", err.text);
                return -1;
            }
            note_error(p, "apply", &err);
            if (st_lifecycle_stopping())
                return 0;
            retry_wait(p, &wait_ms);
        }
        if (n > 0)
            st_pipeline_set_redis_ok(p, true);
    }
    for (size_t i = 0; i < n; i++) {
        part_t *pt = find_part(p, p->views[i].topic, p->views[i].partition, false);
        if (pt && p->views[i].offset + 1 > pt->consumed_next)
            pt->consumed_next = p->views[i].offset + 1;
    }
    store_offsets(p);
    /* Counted once per batch, whatever the attempts it took. */
    p->dead_letters += p->out.dead_letters;
    st_metric_inc(p->m_dlq, p->out.dead_letters);
    st_metric_inc(p->m_batches, 1);
    p->retry_text[0] = '\0'; /* a batch went through: the next failure is news */
    st_metric_observe(p->m_batch_s, (double)(st_time_mono_us() - t0_us) / 1e6);
    return 0;
}

int st_pipeline_run(st_pipeline_t *p)
{
    p->running = true;
    update_ready(p);
    set_kafka_ok(p, true);
    p->last_process_ms = st_time_mono_ms();
    while (!st_lifecycle_stopping()) {
        int64_t t_us = st_time_mono_us();
        collect(p);
        phase_add(p, PHASE_POLL, t_us);
        int64_t now = st_time_mono_ms();
        bool tick = p->tick_ms > 0 && now - p->last_process_ms >= p->tick_ms;
        if (p->nmsgs > 0) {
            st_kafka_mark_reachable();
            for (size_t i = 0; i < p->nmsgs && st_kafka_denied(); i++)
                topic_allowed("read:", rd_kafka_topic_name(p->msgs[i]->rkt));
            set_kafka_ok(p, true);
            p->kafka_seen_ms = now;
            p->kafka_failing_ms = 0;
        }
        probe_health(p, now);
        if (!p->consumer)
            break; /* its restart failed: a failed stop is requested */
        if (now - p->lag_updated_ms >= 1000) {
            update_lag(p);
            p->lag_updated_ms = now;
        }
        if (p->nmsgs == 0 && !tick)
            continue;
        int rc = run_batch(p);
        p->last_process_ms = st_time_mono_ms();
        destroy_msgs(p);
        if (rc != 0) {
            p->running = false;
            st_http_set_ready(p->http, false, "stopped by a fatal error");
            return -1;
        }
    }
    p->running = false;
    st_http_set_ready(p->http, false, "stopping");
    return 0;
}

/* At close, offsets of partitions lost and never regained are committed from outside the group.
 * The broker accepts that only once the group is empty: right after a broker restart this
 * process's old member stays registered until its session times out, so the commit is retried
 * for up to UNSENT_WAIT_MS. While another member consumes the partitions it is refused throughout
 * (that member resumes from the group's commit and replays, which the idempotent applies
 * absorb). */
#define UNSENT_WAIT_MS 20000

static void commit_unsent(st_pipeline_t *p)
{
    char err[512], q[600];
    int64_t deadline = st_time_mono_ms() + UNSENT_WAIT_MS;
    int tries = 0;
    for (;;) {
        tries++;
        if (st_kafka_commit_outside_group(&p->kafka, p->group_id, p->unsent, err, sizeof err) ==
            0) {
            st_log_info("offsets_committed", "count=%d how=outside-group tries=%d", p->unsent->cnt,
                        tries);
            return;
        }
        if (st_time_mono_ms() >= deadline)
            break;
        if (tries == 1)
            st_log_info("offsets_commit_waiting", "count=%d error=%s wait_ms=%d", p->unsent->cnt,
                        st_log_quote(err, q, sizeof q), UNSENT_WAIT_MS);
        usleep(500 * 1000);
    }
    st_log_warn("offsets_not_committed", "count=%d tries=%d error=%s (the next owner replays them)",
                p->unsent->cnt, tries, st_log_quote(err, q, sizeof q));
}

void st_pipeline_destroy(st_pipeline_t *p)
{
    if (!p)
        return;
    destroy_msgs(p);
    if (p->consumer) {
        /* Commits the stored offsets and leaves the group (revoke callback runs). */
        rd_kafka_resp_err_t e = rd_kafka_consumer_close(p->consumer);
        if (e)
            st_log_warn("consumer_close", "error=%s", rd_kafka_err2name(e));
        rd_kafka_destroy(p->consumer);
    }
    if (p->unsent && p->unsent->cnt > 0 && p->group_id)
        commit_unsent(p);
    if (p->unsent)
        rd_kafka_topic_partition_list_destroy(p->unsent);
    if (p->subs)
        rd_kafka_topic_partition_list_destroy(p->subs);
    free(p->group_id);
    for (size_t i = 0; i < p->ndenied_out; i++)
        free(p->denied_out[i]);
    free(p->denied_out);
    st_producer_destroy(p->producer);
    for (size_t i = 0; i < p->nparts; i++)
        free(p->parts[i].topic);
    free(p->parts);
    free(p->msgs);
    free(p->views);
    free(p->out.recs);
    st_buf_free(&p->out.data);
    st_buf_free(&p->dlq_buf);
    free(p->dlq_topic);
    free(p);
}
