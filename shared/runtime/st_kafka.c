/* st_kafka.c - librdkafka configuration, idempotent producer, admin and offset helpers. */
#include "st_kafka.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_lifecycle.h"
#include "st_log.h"
#include "st_time.h"

static atomic_bool kafka_reachable = true;

bool st_kafka_reachable(void)
{
    return atomic_load(&kafka_reachable);
}

/* The refusals in force (st_kafka_deny): each one's key, and when it was last logged. */
#define DENIED_MAX      16
#define DENIED_RELOG_MS (10 * 60 * 1000)
static pthread_mutex_t denied_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char key[256];
    int64_t logged_ms;
} denied[DENIED_MAX];
static atomic_int ndenied;
/* When a refusal found the table full (logged, untracked: /healthz is failing anyway), 0: never. */
static int64_t overflow_logged_ms;

void st_kafka_deny(const char *key, const char *event, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    int64_t now = st_time_mono_ms();
    bool log = false;
    pthread_mutex_lock(&denied_mu);
    int n = atomic_load(&ndenied), i = 0;
    while (i < n && strcmp(denied[i].key, key) != 0)
        i++;
    if (i == n && n < DENIED_MAX) {
        snprintf(denied[i].key, sizeof denied[i].key, "%s", key);
        denied[i].logged_ms = now;
        atomic_store(&ndenied, n + 1);
        log = true;
    } else if (i < n && now - denied[i].logged_ms >= DENIED_RELOG_MS) {
        denied[i].logged_ms = now;
        log = true;
    }
    bool overflow = i == n && n == DENIED_MAX &&
                    (overflow_logged_ms == 0 || now - overflow_logged_ms >= DENIED_RELOG_MS);
    if (overflow)
        overflow_logged_ms = now;
    pthread_mutex_unlock(&denied_mu);
    if (log)
        st_log_error(event, "%s", text);
    else if (overflow)
        st_log_error(event, "%s (and more: over %d refusals in force, the rest not listed)", text,
                     DENIED_MAX);
}

bool st_kafka_denied(void)
{
    return atomic_load(&ndenied) > 0;
}

void st_kafka_allowed(const char *key)
{
    if (atomic_load(&ndenied) == 0)
        return;
    size_t klen = key ? strlen(key) : 0;
    bool prefix = klen == 0 || key[klen - 1] == ':';
    pthread_mutex_lock(&denied_mu);
    int n = atomic_load(&ndenied), kept = 0;
    for (int i = 0; i < n; i++) {
        if (prefix ? strncmp(denied[i].key, key ? key : "", klen) == 0
                   : strcmp(denied[i].key, key) == 0) {
            st_log_info("kafka_allowed", "refusal=%s state=gone", denied[i].key);
            continue;
        }
        if (kept != i)
            denied[kept] = denied[i];
        kept++;
    }
    atomic_store(&ndenied, kept);
    pthread_mutex_unlock(&denied_mu);
}

void st_kafka_mark_reachable(void)
{
    if (!atomic_exchange(&kafka_reachable, true))
        st_log_info("kafka_reachable", "state=up");
    st_kafka_allowed("auth"); /* a broker answered: the client's login is accepted */
}

/* A connection the broker closed because it refuses the client's TLS certificate or SASL
 * login: librdkafka 2.0 reports most as _TRANSPORT ("sslv3 alert certificate unknown" when the
 * broker does not trust the certificate), some as _SSL or _AUTHENTICATION. */
static bool login_refused(int err, const char *reason)
{
    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL)
        return true;
    if (err != RD_KAFKA_RESP_ERR__TRANSPORT || !reason)
        return false;
    return strstr(reason, "alert") || strstr(reason, "certificate") ||
           strstr(reason, "handshake") || strstr(reason, "SASL") || strstr(reason, "uthentication");
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    char q[600];
    st_log_level_t l = level <= 3   ? ST_LOG_ERROR
                       : level == 4 ? ST_LOG_WARN
                       : level <= 6 ? ST_LOG_INFO
                                    : ST_LOG_DEBUG;
    /* A refused login comes to error_cb too, which says once what to fix: librdkafka's own
     * line, at every reconnect, is debug. */
    if (strcmp(fac, "FAIL") == 0 && login_refused(RD_KAFKA_RESP_ERR__TRANSPORT, buf))
        l = ST_LOG_DEBUG;
    ST_LOG_AT(l, "rdkafka", "client=%s facility=%s msg=%s", rd_kafka_name(rk), fac,
              st_log_quote(buf, q, sizeof q));
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    char q[600];
    (void)opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
        st_log_fatal("kafka_fatal", "client=%s error=%s reason=%s", rd_kafka_name(rk),
                     rd_kafka_err2name(orig), st_log_quote(fatal, q, sizeof q));
        st_lifecycle_request_failed_stop();
        return;
    }
    if (login_refused(err, reason)) {
        st_kafka_deny("auth", "kafka_login_refused",
                      "client=%s error=%s reason=%s (the brokers refuse this client's TLS "
                      "certificate or SASL login: check ssl.certificate.location, ssl.key.location "
                      "and ssl.ca.location, or sasl.username and sasl.password "
                      "(STINT_RDKAFKA_SSL_*, STINT_RDKAFKA_SASL_*), and security.protocol)",
                      rd_kafka_name(rk), rd_kafka_err2name((rd_kafka_resp_err_t)err),
                      st_log_quote(reason, q, sizeof q));
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        if (atomic_exchange(&kafka_reachable, false))
            st_log_error("kafka_unreachable", "client=%s reason=%s", rd_kafka_name(rk),
                         st_log_quote(reason, q, sizeof q));
        return;
    }
    st_log_warn("kafka_error", "client=%s error=%s reason=%s", rd_kafka_name(rk),
                rd_kafka_err2name((rd_kafka_resp_err_t)err), st_log_quote(reason, q, sizeof q));
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                    size_t errstr_size)
{
    char buf[512];
    if (rd_kafka_conf_set(conf, name, value, buf, sizeof buf) != RD_KAFKA_CONF_OK)
        return st_errstr(errstr, errstr_size, "kafka property %s=%s: %s", name, value, buf);
    return 0;
}

bool st_kafka_conf_known(const char *name)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Only "unknown" matters: a value the property refuses still means it exists. */
    bool known = rd_kafka_conf_set(conf, name, "1", err, sizeof err) != RD_KAFKA_CONF_UNKNOWN;
    rd_kafka_conf_destroy(conf);
    return known;
}

rd_kafka_conf_t *st_kafka_conf_new(const st_kafka_opts_t *opts, const char *const (*defaults)[2],
                                   size_t ndefaults, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", opts->brokers ? opts->brokers : "127.0.0.1:19092",
                 errstr, errstr_size) != 0 ||
        conf_set(conf, "client.id", opts->client_id ? opts->client_id : "stint", errstr,
                 errstr_size) != 0)
        goto fail;
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    for (size_t i = 0; i < ndefaults; i++)
        if (conf_set(conf, defaults[i][0], defaults[i][1], errstr, errstr_size) != 0)
            goto fail;
    for (size_t i = 0; i < opts->nprops; i++)
        if (conf_set(conf, opts->props[i].name, opts->props[i].value, errstr, errstr_size) != 0)
            goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

struct st_producer_s {
    rd_kafka_t *rk;
    _Atomic uint64_t sent;
    _Atomic uint64_t acked;
    _Atomic uint64_t failed;
    _Atomic uint64_t purged; /* dropped from the local queue on purpose (not failures) */
    uint64_t failed_seen;    /* failures already reported by st_producer_wait */
    _Atomic bool permanent;  /* a failure no retry can fix, since the last st_producer_wait */
    char first_error[256];
    rd_kafka_topic_t **topics; /* prepared topics, kept for the producer's life */
    size_t ntopics;
};

/* Delivery errors that the same record meets again on every retry: the broker refuses it (too
 * large for the topic, malformed) or the client may not write the topic. */
static bool permanent_error(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
           e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE || e == RD_KAFKA_RESP_ERR_INVALID_RECORD;
}

/* The client may not write the topic: an ACL, which can be granted while the service waits, so
 * the batch is retried (with backoff, unhealthy meanwhile: st_kafka_denied) rather than fatal. */
static bool write_denied(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
           e == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED ||
           e == RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
}

void st_kafka_deny_write(const char *topic, const char *detail)
{
    char key[300];
    snprintf(key, sizeof key, "write:%s", topic);
    st_kafka_deny(key, "kafka_write_denied",
                  "topic=%s error=\"%s\" (this service's Kafka principal, the identity of "
                  "ssl.certificate.location or sasl.username, may not write topic %s: grant it "
                  "Write and Describe on the topic, or fix the output topic setting)",
                  topic, detail, topic);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    st_producer_t *p = opaque;
    (void)rk;
    if (m->err && write_denied(m->err))
        st_kafka_deny_write(rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE) {
        atomic_fetch_add(&p->purged, 1);
    } else if (m->err) {
        bool first = atomic_fetch_add(&p->failed, 1) == p->failed_seen;
        bool first_permanent = permanent_error(m->err) && !atomic_exchange(&p->permanent, true);
        /* The error reported: the first permanent one, else the first one. */
        if (first_permanent || (first && !atomic_load(&p->permanent)))
            snprintf(p->first_error, sizeof p->first_error, "delivery to %s [%d] failed: %s",
                     rd_kafka_topic_name(m->rkt), (int)m->partition, rd_kafka_err2str(m->err));
    } else {
        st_kafka_mark_reachable();
    }
    atomic_fetch_add(&p->acked, 1);
}

st_producer_t *st_producer_new(const st_kafka_opts_t *opts, char *errstr, size_t errstr_size)
{
    static const char *const defaults[][2] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", "5"},
        {"batch.num.messages", "10000"},
        {"queue.buffering.max.messages", "500000"},
        {"queue.buffering.max.kbytes", "1048576"},
        {"partitioner", "murmur2_random"}, /* the Java client's partitioner */
    };
    char buf[512];
    st_producer_t *p = calloc(1, sizeof *p);
    if (!p) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    rd_kafka_conf_t *conf = st_kafka_conf_new(opts, defaults, sizeof defaults / sizeof defaults[0],
                                              errstr, errstr_size);
    if (!conf) {
        free(p);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, buf, sizeof buf);
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        free(p);
        st_errstr(errstr, errstr_size, "cannot create producer: %s", buf);
        return NULL;
    }
    return p; /* conf is owned by p->rk now */
}

void st_producer_destroy(st_producer_t *p)
{
    if (!p)
        return;
    rd_kafka_flush(p->rk, 30000);
    int left = rd_kafka_outq_len(p->rk);
    if (left > 0)
        st_log_error("producer_unflushed", "client=%s records_left=%d", rd_kafka_name(p->rk), left);
    for (size_t i = 0; i < p->ntopics; i++)
        rd_kafka_topic_destroy(p->topics[i]);
    free(p->topics);
    rd_kafka_destroy(p->rk);
    free(p);
}

rd_kafka_t *st_producer_handle(st_producer_t *p)
{
    return p->rk;
}

int st_producer_send(st_producer_t *p, const char *topic, int32_t partition, const void *key,
                     size_t key_len, const void *value, size_t value_len, st_err_t *err)
{
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY((void *)key, key_len),
            RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            atomic_fetch_add(&p->sent, 1);
            return 0;
        }
        if (write_denied(e)) { /* known from the topic's metadata: retried, as in dr_cb */
            st_kafka_deny_write(topic, rd_kafka_err2str(e));
            st_err_set(err, ST_ERR_KAFKA, ST_DISP_RETRY, "produce to %s: %s", topic,
                       rd_kafka_err2str(e));
            return -1;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            st_err_set(err, ST_ERR_KAFKA, ST_DISP_FATAL, "produce to %s: %s", topic,
                       rd_kafka_err2str(e));
            return -1;
        }
        /* Local queue full: serve delivery reports until there is room (or a stop: the batch
         * then ends unacknowledged and its offsets unstored). */
        if (st_lifecycle_stopping()) {
            st_err_set(err, ST_ERR_KAFKA, ST_DISP_RETRY,
                       "produce to %s: local queue full while stopping", topic);
            return -1;
        }
        rd_kafka_poll(p->rk, 100);
    }
}

/* The partition count of rkt's topic from a metadata request, or -1 with errstr and, when
 * whyp is not NULL, *whyp (no answer in timeout_ms, the topic does not exist, or its metadata is
 * refused: RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED). */
static int topic_partitions(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int timeout_ms,
                            rd_kafka_resp_err_t *whyp, char *errstr, size_t errstr_size)
{
    const char *topic = rd_kafka_topic_name(rkt);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    if (whyp)
        *whyp = e;
    if (e)
        return st_errstr(errstr, errstr_size, "metadata for %s: %s", topic, rd_kafka_err2str(e));
    int n = -1;
    if (md->topic_cnt == 1 && !md->topics[0].err) {
        n = md->topics[0].partition_cnt;
    } else {
        e = md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (whyp)
            *whyp = e;
        st_errstr(errstr, errstr_size, "topic %s: %s", topic,
                  md->topic_cnt ? rd_kafka_err2str(e) : "not found");
    }
    rd_kafka_metadata_destroy(md);
    return n;
}

rd_kafka_resp_err_t st_producer_prepare_topic(st_producer_t *p, const char *topic, int timeout_ms,
                                              char *errstr, size_t errstr_size)
{
    rd_kafka_topic_t *rkt = NULL;
    for (size_t i = 0; i < p->ntopics && !rkt; i++)
        if (strcmp(rd_kafka_topic_name(p->topics[i]), topic) == 0)
            rkt = p->topics[i];
    if (!rkt) {
        rd_kafka_topic_t **t = realloc(p->topics, (p->ntopics + 1) * sizeof *t);
        if (!t) {
            st_errstr(errstr, errstr_size, "out of memory");
            return RD_KAFKA_RESP_ERR__FAIL;
        }
        p->topics = t;
        if (!(rkt = rd_kafka_topic_new(p->rk, topic, NULL))) {
            rd_kafka_resp_err_t e = rd_kafka_last_error();
            st_errstr(errstr, errstr_size, "topic %s: %s", topic, rd_kafka_err2str(e));
            return e ? e : RD_KAFKA_RESP_ERR__FAIL;
        }
        p->topics[p->ntopics++] = rkt;
    }
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__FAIL;
    return topic_partitions(p->rk, rkt, timeout_ms, &e, errstr, errstr_size) < 0
               ? (e ? e : RD_KAFKA_RESP_ERR__FAIL)
               : RD_KAFKA_RESP_ERR_NO_ERROR;
}

uint64_t st_producer_in_flight(const st_producer_t *p)
{
    return atomic_load(&p->sent) - atomic_load(&p->acked);
}

uint64_t st_producer_failed(st_producer_t *p)
{
    return atomic_load(&p->failed);
}

uint64_t st_producer_purged(st_producer_t *p)
{
    return atomic_load(&p->purged);
}

int st_producer_wait(st_producer_t *p, int timeout_ms, st_err_t *err)
{
    int64_t deadline = st_time_mono_ms() + timeout_ms;
    while (st_producer_in_flight(p) > 0) {
        rd_kafka_poll(p->rk, 10);
        if (timeout_ms >= 0 && st_time_mono_ms() >= deadline) {
            st_err_set(err, ST_ERR_TIMEOUT, ST_DISP_RETRY,
                       "%llu records not acknowledged after %d ms",
                       (unsigned long long)st_producer_in_flight(p), timeout_ms);
            return -1;
        }
    }
    uint64_t failed = atomic_load(&p->failed);
    if (failed != p->failed_seen) {
        /* A permanent failure is fatal: retrying would re-send the batch's other records again
         * and again and never get this one through. */
        bool perm = atomic_exchange(&p->permanent, false);
        st_err_set(err, ST_ERR_KAFKA, perm ? ST_DISP_FATAL : ST_DISP_RETRY,
                   "%llu deliveries failed; %s: %s", (unsigned long long)(failed - p->failed_seen),
                   perm ? "permanently" : "first", p->first_error);
        p->failed_seen = failed;
        return -1;
    }
    return 0;
}

static rd_kafka_t *admin_client(const st_kafka_opts_t *opts, char *errstr, size_t errstr_size)
{
    char buf[512];
    rd_kafka_conf_t *conf = st_kafka_conf_new(opts, NULL, 0, errstr, errstr_size);
    if (!conf)
        return NULL;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, buf, sizeof buf);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        st_errstr(errstr, errstr_size, "cannot create admin client: %s", buf);
    }
    return rk;
}

static bool authorization_failed(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
           e == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED;
}

/* Whether topic exists (a metadata request: needs Describe on it, not Create). */
static bool topic_exists(rd_kafka_t *rk, const char *topic)
{
    char buf[256];
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt)
        return false;
    int n = topic_partitions(rk, rkt, 10000, NULL, buf, sizeof buf);
    rd_kafka_topic_destroy(rkt);
    return n > 0;
}

/* A principal without Create permission gets an authorization error for every topic, existing or
 * not (a secured broker, deploy/local/secure-stack): an existing one counts as present. */
int st_kafka_create_topics(const st_kafka_opts_t *opts, const char *const *topics, size_t ntopics,
                           int partitions, char *errstr, size_t errstr_size)
{
    char buf[512];
    int rc = 0;
    rd_kafka_t *rk = admin_client(opts, errstr, errstr_size);
    if (!rk)
        return -1;
    rd_kafka_NewTopic_t **nt = calloc(ntopics, sizeof *nt);
    for (size_t i = 0; nt && i < ntopics; i++) {
        /* "name:compact" (as in deploy/topics.conf): a compacted topic. The replication factor
         * is the broker's default.replication.factor (-1), not 1. */
        char name[256];
        const char *colon = strrchr(topics[i], ':');
        bool compact = colon && strcmp(colon, ":compact") == 0;
        snprintf(name, sizeof name, "%.*s",
                 (int)(compact ? (size_t)(colon - topics[i]) : strlen(topics[i])), topics[i]);
        nt[i] = rd_kafka_NewTopic_new(name, partitions, -1, buf, sizeof buf);
        if (nt[i] && compact &&
            rd_kafka_NewTopic_set_config(nt[i], "cleanup.policy", "compact") != 0) {
            rc = st_errstr(errstr, errstr_size, "topic %s: cannot set cleanup.policy", name);
            goto done;
        }
        if (!nt[i]) {
            rc = st_errstr(errstr, errstr_size, "topic %s: %s", name, buf);
            goto done;
        }
    }
    if (!nt) {
        rd_kafka_destroy(rk);
        return st_errstr(errstr, errstr_size, "out of memory");
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, 15000, buf, sizeof buf);
    rd_kafka_CreateTopics(rk, nt, ntopics, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev) {
        rc = st_errstr(errstr, errstr_size, "create topics: no answer from the broker in 30 s");
    } else if (rd_kafka_event_error(ev)) {
        rc = st_errstr(errstr, errstr_size, "create topics: %s", rd_kafka_event_error_string(ev));
    } else {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS &&
                !(authorization_failed(e) &&
                  topic_exists(rk, rd_kafka_topic_result_name(res[i])))) {
                rc = st_errstr(errstr, errstr_size, "topic %s: %s",
                               rd_kafka_topic_result_name(res[i]),
                               rd_kafka_topic_result_error_string(res[i]));
                break;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
done:
    for (size_t i = 0; i < ntopics; i++)
        if (nt[i])
            rd_kafka_NewTopic_destroy(nt[i]);
    free(nt);
    rd_kafka_destroy(rk);
    return rc;
}

int st_kafka_delete_topics(const st_kafka_opts_t *opts, const char *const *topics, size_t ntopics,
                           char *errstr, size_t errstr_size)
{
    char buf[512];
    if (ntopics == 0)
        return 0;
    rd_kafka_t *rk = admin_client(opts, errstr, errstr_size);
    if (!rk)
        return -1;
    int rc = 0;
    rd_kafka_DeleteTopic_t **dt = calloc(ntopics, sizeof *dt);
    if (!dt) {
        rd_kafka_destroy(rk);
        return st_errstr(errstr, errstr_size, "out of memory");
    }
    for (size_t i = 0; i < ntopics; i++)
        dt[i] = rd_kafka_DeleteTopic_new(topics[i]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, 15000, buf, sizeof buf);
    rd_kafka_DeleteTopics(rk, dt, ntopics, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev) {
        rc = st_errstr(errstr, errstr_size, "delete topics: no answer from the broker in 30 s");
    } else if (rd_kafka_event_error(ev)) {
        rc = st_errstr(errstr, errstr_size, "delete topics: %s", rd_kafka_event_error_string(ev));
    } else {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
        for (size_t i = 0; i < n && rc >= 0; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
            if (!e)
                rc++;
            else if (e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                rc = st_errstr(errstr, errstr_size, "topic %s: %s",
                               rd_kafka_topic_result_name(res[i]),
                               rd_kafka_topic_result_error_string(res[i]));
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteTopic_destroy_array(dt, ntopics);
    free(dt);
    rd_kafka_destroy(rk);
    return rc;
}

/* A consumer of group that never joins it (no subscribe), for reading and committing the group's
 * offsets from outside; free with rd_kafka_destroy. NULL with errstr. */
static rd_kafka_t *group_client(const st_kafka_opts_t *opts, const char *group, char *errstr,
                                size_t errstr_size)
{
    char buf[512];
    const char *const defaults[][2] = {{"group.id", group}, {"enable.auto.commit", "false"}};
    rd_kafka_conf_t *conf = st_kafka_conf_new(opts, defaults, 2, errstr, errstr_size);
    if (!conf)
        return NULL;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, buf, sizeof buf);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        st_errstr(errstr, errstr_size, "consumer: %s", buf);
    }
    return rk;
}

/* Through a consumer that never joins the group rather than the Admin API's
 * List/AlterConsumerGroupOffsets: on a client without a consumer group of its own, librdkafka
 * 2.0.2 (not re-checked on the 2.12.1 stint now builds) crashes when the coordinator answers
 * NOT_COORDINATOR, as it does right after a broker restart (a consumer-group op on a NULL group;
 * seen as a SIGSEGV at close in test_pipeline_restarts). Such a consumer's commit carries no
 * member id and no generation, which the broker accepts only while the group has no members: the
 * guarantee wanted here. */
int st_kafka_commit_outside_group(const st_kafka_opts_t *opts, const char *group,
                                  const rd_kafka_topic_partition_list_t *offsets, char *errstr,
                                  size_t errstr_size)
{
    rd_kafka_t *rk = group_client(opts, group, errstr, errstr_size);
    if (!rk)
        return -1;
    int rc = 0;
    rd_kafka_topic_partition_list_t *now = rd_kafka_topic_partition_list_copy(offsets);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, now, 10000);
    if (e) {
        rc = st_errstr(errstr, errstr_size, "committed offsets of %s: %s", group,
                       rd_kafka_err2str(e));
        goto out;
    }
    /* Only partitions the group has not already committed at or past the given offset. */
    rd_kafka_topic_partition_list_t *ahead = rd_kafka_topic_partition_list_new(offsets->cnt);
    for (int i = 0; i < offsets->cnt; i++) {
        const rd_kafka_topic_partition_t *o = &offsets->elems[i];
        const rd_kafka_topic_partition_t *c =
            rd_kafka_topic_partition_list_find(now, o->topic, o->partition);
        if (!c || c->err || c->offset < o->offset)
            rd_kafka_topic_partition_list_add(ahead, o->topic, o->partition)->offset = o->offset;
    }
    if (ahead->cnt > 0) {
        e = rd_kafka_commit(rk, ahead, 0);
        for (int i = 0; !e && i < ahead->cnt; i++)
            e = ahead->elems[i].err;
        if (e)
            rc = st_errstr(errstr, errstr_size, "commit for %s: %s", group, rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(ahead);
out:
    rd_kafka_topic_partition_list_destroy(now);
    rd_kafka_destroy(rk);
    return rc;
}

static int partition_count(rd_kafka_t *rk, const char *topic, char *errstr, size_t errstr_size)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt)
        return st_errstr(errstr, errstr_size, "topic %s: %s", topic,
                         rd_kafka_err2str(rd_kafka_last_error()));
    int n = topic_partitions(rk, rkt, 10000, NULL, errstr, errstr_size);
    rd_kafka_topic_destroy(rkt);
    return n;
}

int64_t st_kafka_topic_end_offsets(const st_kafka_opts_t *opts, const char *topic, char *errstr,
                                   size_t errstr_size)
{
    rd_kafka_t *rk = admin_client(opts, errstr, errstr_size);
    if (!rk)
        return -1;
    int n = partition_count(rk, topic, errstr, errstr_size);
    int64_t total = n < 0 ? -1 : 0;
    for (int i = 0; i < n; i++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi, 10000);
        if (e) {
            total = st_errstr(errstr, errstr_size, "watermarks %s [%d]: %s", topic, i,
                              rd_kafka_err2str(e));
            break;
        }
        total += hi;
    }
    rd_kafka_destroy(rk);
    return total;
}

int64_t st_kafka_group_committed(const st_kafka_opts_t *opts, const char *group, const char *topic,
                                 char *errstr, size_t errstr_size)
{
    rd_kafka_t *rk = group_client(opts, group, errstr, errstr_size);
    if (!rk)
        return -1;
    int64_t total = -1;
    int n = partition_count(rk, topic, errstr, errstr_size);
    if (n >= 0) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
        for (int i = 0; i < n; i++)
            rd_kafka_topic_partition_list_add(l, topic, i);
        rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, 10000);
        if (e) {
            st_errstr(errstr, errstr_size, "committed offsets of %s: %s", group,
                      rd_kafka_err2str(e));
        } else {
            total = 0;
            for (int i = 0; i < l->cnt; i++)
                if (l->elems[i].offset >= 0)
                    total += l->elems[i].offset;
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
    rd_kafka_destroy(rk);
    return total;
}

static bool unreachable(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR__TRANSPORT || e == RD_KAFKA_RESP_ERR__TIMED_OUT ||
           e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || e == RD_KAFKA_RESP_ERR__RESOLVE;
}

static int kafka_fail(rd_kafka_resp_err_t e, char *errstr, size_t errstr_size, const char *what,
                      const char *name)
{
    st_errstr(errstr, errstr_size, "%s %s: %s", what, name, rd_kafka_err2str(e));
    return unreachable(e) ? ST_KAFKA_E_UNREACHABLE : -1;
}

/* Members of group and what they own: owned gets every assigned partition, its offset field the
 * index of the member's "<consumer id>/<host>" in *names (caller frees both). */
static int group_members(rd_kafka_t *rk, const char *group, st_kafka_group_t *g,
                         rd_kafka_topic_partition_list_t *owned, char ***names, char *errstr,
                         size_t errstr_size)
{
    char buf[512];
    int rc = 0;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
    rd_kafka_AdminOptions_set_request_timeout(ao, 10000, buf, sizeof buf);
    const char *groups[1] = {group};
    rd_kafka_DescribeConsumerGroups(rk, groups, 1, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    if (!ev) {
        rc = kafka_fail(RD_KAFKA_RESP_ERR__TIMED_OUT, errstr, errstr_size, "describe group", group);
    } else if (rd_kafka_event_error(ev)) {
        rc = kafka_fail(rd_kafka_event_error(ev), errstr, errstr_size, "describe group", group);
    } else {
        size_t n = 0;
        const rd_kafka_ConsumerGroupDescription_t **d =
            rd_kafka_DescribeConsumerGroups_result_groups(
                rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
        const rd_kafka_error_t *ge = n == 1 ? rd_kafka_ConsumerGroupDescription_error(d[0]) : NULL;
        if (n != 1) {
            rc = st_errstr(errstr, errstr_size, "describe group %s: no answer for it", group);
        } else if (ge && rd_kafka_error_code(ge) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
            snprintf(g->state, sizeof g->state, "Dead");
        } else if (ge) {
            rc = kafka_fail(rd_kafka_error_code(ge), errstr, errstr_size, "describe group", group);
        } else {
            snprintf(
                g->state, sizeof g->state, "%s",
                rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(d[0])));
            size_t nm = rd_kafka_ConsumerGroupDescription_member_count(d[0]);
            *names = calloc(nm ? nm : 1, sizeof **names);
            for (size_t i = 0; *names && i < nm; i++) {
                const rd_kafka_MemberDescription_t *m =
                    rd_kafka_ConsumerGroupDescription_member(d[0], i);
                const char *id = rd_kafka_MemberDescription_consumer_id(m);
                const char *host = rd_kafka_MemberDescription_host(m);
                size_t len = strlen(id) + strlen(host) + 2;
                if (!((*names)[i] = malloc(len)))
                    break;
                snprintf((*names)[i], len, "%s/%s", id, host);
                g->members++;
                const rd_kafka_topic_partition_list_t *a =
                    rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m));
                for (int k = 0; a && k < a->cnt; k++)
                    rd_kafka_topic_partition_list_add(owned, a->elems[k].topic,
                                                      a->elems[k].partition)
                        ->offset = (int64_t)i;
            }
            if (!*names || g->members != (int)nm)
                rc = st_errstr(errstr, errstr_size, "out of memory");
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    return rc;
}

static int part_cmp(const void *a, const void *b)
{
    const st_kafka_group_part_t *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

static bool topic_selected(const struct rd_kafka_metadata_topic *t, const char *const *topics,
                           size_t ntopics, const rd_kafka_topic_partition_list_t *committed,
                           const rd_kafka_topic_partition_list_t *owned)
{
    for (size_t i = 0; i < ntopics; i++)
        if (strcmp(topics[i], t->topic) == 0)
            return true;
    if (ntopics > 0)
        return false;
    for (int i = 0; i < committed->cnt; i++)
        if (committed->elems[i].offset >= 0 && strcmp(committed->elems[i].topic, t->topic) == 0)
            return true;
    for (int i = 0; i < owned->cnt; i++)
        if (strcmp(owned->elems[i].topic, t->topic) == 0)
            return true;
    return false;
}

/* Builds the rows of the selected topics. */
static int group_rows(rd_kafka_t *rk, const struct rd_kafka_metadata *md, const char *const *topics,
                      size_t ntopics, const rd_kafka_topic_partition_list_t *committed,
                      const rd_kafka_topic_partition_list_t *owned, char **names,
                      st_kafka_group_t *g, char *errstr, size_t errstr_size)
{
    size_t cap = 0;
    for (int t = 0; t < md->topic_cnt; t++)
        if (topic_selected(&md->topics[t], topics, ntopics, committed, owned))
            cap += (size_t)md->topics[t].partition_cnt;
    if (cap == 0)
        return 0;
    if (!(g->parts = calloc(cap, sizeof *g->parts)))
        return st_errstr(errstr, errstr_size, "out of memory");
    for (int t = 0; t < md->topic_cnt; t++) {
        const struct rd_kafka_metadata_topic *mt = &md->topics[t];
        if (!topic_selected(mt, topics, ntopics, committed, owned))
            continue;
        for (int i = 0; i < mt->partition_cnt; i++) {
            st_kafka_group_part_t *p = &g->parts[g->nparts];
            int32_t id = mt->partitions[i].id;
            rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
                rk, mt->topic, id, &p->log_start, &p->log_end, 10000);
            if (e)
                return kafka_fail(e, errstr, errstr_size, "watermarks of", mt->topic);
            const rd_kafka_topic_partition_t *c =
                rd_kafka_topic_partition_list_find(committed, mt->topic, id);
            const rd_kafka_topic_partition_t *o =
                rd_kafka_topic_partition_list_find(owned, mt->topic, id);
            p->partition = id;
            p->committed = c && !c->err && c->offset >= 0 ? c->offset : -1;
            p->topic = strdup(mt->topic);
            p->member = o ? strdup(names[o->offset]) : NULL;
            g->nparts++;
            if (!p->topic || (o && !p->member))
                return st_errstr(errstr, errstr_size, "out of memory");
        }
    }
    qsort(g->parts, g->nparts, sizeof *g->parts, part_cmp);
    return 0;
}

/* Every partition of every topic but Kafka's own (__consumer_offsets, ...), for one OffsetFetch
 * of the group: its committed topics are not known otherwise without the Admin API's
 * ListConsumerGroupOffsets (see st_kafka_commit_outside_group for why not). */
int st_kafka_group_describe(const st_kafka_opts_t *opts, const char *group,
                            const char *const *topics, size_t ntopics, st_kafka_group_t *out,
                            char *errstr, size_t errstr_size)
{
    memset(out, 0, sizeof *out);
    snprintf(out->state, sizeof out->state, "Unknown");
    rd_kafka_t *rk = group_client(opts, group, errstr, errstr_size);
    if (!rk)
        return -1;
    int rc = 0, nnames;
    char **names = NULL;
    rd_kafka_topic_partition_list_t *all = rd_kafka_topic_partition_list_new(64);
    rd_kafka_topic_partition_list_t *owned = rd_kafka_topic_partition_list_new(16);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, 10000);
    if (e) {
        md = NULL;
        rc = kafka_fail(e, errstr, errstr_size, "metadata from", opts->brokers);
        goto out;
    }
    for (size_t i = 0; i < ntopics; i++) {
        int found = -1;
        for (int t = 0; t < md->topic_cnt && found < 0; t++)
            if (strcmp(md->topics[t].topic, topics[i]) == 0 && !md->topics[t].err)
                found = t;
        if (found < 0) {
            rc = ST_KAFKA_E_NO_TOPIC;
            st_errstr(errstr, errstr_size, "unknown topic %s", topics[i]);
            goto out;
        }
    }
    for (int t = 0; t < md->topic_cnt; t++)
        if (!md->topics[t].err && strncmp(md->topics[t].topic, "__", 2) != 0)
            for (int i = 0; i < md->topics[t].partition_cnt; i++)
                rd_kafka_topic_partition_list_add(all, md->topics[t].topic,
                                                  md->topics[t].partitions[i].id);
    if (all->cnt > 0 && (e = rd_kafka_committed(rk, all, 10000)) != 0) {
        rc = kafka_fail(e, errstr, errstr_size, "committed offsets of", group);
        goto out;
    }
    for (int i = 0; i < all->cnt && !out->has_commits; i++)
        out->has_commits = !all->elems[i].err && all->elems[i].offset >= 0;
    if ((rc = group_members(rk, group, out, owned, &names, errstr, errstr_size)) != 0)
        goto out;
    rc = group_rows(rk, md, topics, ntopics, all, owned, names, out, errstr, errstr_size);
out:
    nnames = out->members;
    if (rc != 0) {
        st_kafka_group_clear(out);
        if (rc != -1 && rc != ST_KAFKA_E_UNREACHABLE && rc != ST_KAFKA_E_NO_TOPIC)
            rc = -1;
    }
    for (int i = 0; names && i < nnames; i++)
        free(names[i]);
    free(names);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_partition_list_destroy(all);
    rd_kafka_topic_partition_list_destroy(owned);
    rd_kafka_destroy(rk);
    return rc;
}

void st_kafka_group_clear(st_kafka_group_t *g)
{
    for (size_t i = 0; i < g->nparts; i++) {
        free(g->parts[i].topic);
        free(g->parts[i].member);
    }
    free(g->parts);
    memset(g, 0, sizeof *g);
}
