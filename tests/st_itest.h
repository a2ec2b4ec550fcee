/* st_itest.h - helpers for integration tests against the local Kafka + Redis: unique names,
 * child processes, producing and reading back whole topics. Header-only, test code only. */
#ifndef ST_ITEST_H
#define ST_ITEST_H

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "st_avro.h"
#include "st_buf.h"
#include "st_kafka.h"
#include "st_redis.h"
#include "st_time.h"

/* build/bin, from the CTest environment. */
static inline const char *itest_bin_dir(void)
{
    const char *d = getenv("STINT_BIN_DIR");
    if (!d || !*d) {
        fprintf(stderr, "STINT_BIN_DIR is not set: run this test through ctest (make test)\n");
        exit(1);
    }
    return d;
}

static inline const char *itest_brokers(void)
{
    const char *b = getenv("STINT_KAFKA_BROKERS");
    static char buf[64];
    if (b && *b)
        return b;
    const char *port = getenv("STINT_KAFKA_PORT");
    snprintf(buf, sizeof buf, "127.0.0.1:%s", port && *port ? port : "19092");
    return buf;
}

static inline int itest_redis_port(void)
{
    const char *p = getenv("STINT_REDIS_PORT");
    return p && *p ? atoi(p) : 16379;
}

/* The schema registry the tests use, as the services they start do: STINT_SCHEMA_REGISTRY_URL
 * when set (empty = the static ids of schemas/ids.conf), else the local stack's registry. */
static inline const char *itest_registry_url(void)
{
    const char *u = getenv("STINT_SCHEMA_REGISTRY_URL");
    return u ? u : ST_SCHEMA_REGISTRY_URL_DEFAULT;
}

static inline st_kafka_opts_t itest_kafka(void)
{
    st_kafka_opts_t o = {itest_brokers(), "stint-test", NULL, 0};
    return o;
}

/* Every name itest_unique gave, so the topics among them are deleted when the program exits
 * (set STINT_KEEP_TEST_TOPICS=1 to keep them for a look). Only the process that made the names
 * deletes: a forked child exiting never removes its parent's topics. */
#define ITEST_NAMES_MAX 64
static char itest_names[ITEST_NAMES_MAX][160];
static size_t itest_nnames;
static pid_t itest_names_pid;

static void itest_delete_topics(void)
{
    if (getpid() != itest_names_pid || getenv("STINT_KEEP_TEST_TOPICS"))
        return;
    const char *names[ITEST_NAMES_MAX];
    char errstr[512];
    for (size_t i = 0; i < itest_nnames; i++)
        names[i] = itest_names[i];
    st_kafka_opts_t ko = itest_kafka();
    if (st_kafka_delete_topics(&ko, names, itest_nnames, errstr, sizeof errstr) < 0)
        fprintf(stderr, "itest: deleting the test's topics: %s\n", errstr);
}

/* "<base>-<pid>-<time>" so reruns never collide. */
static inline void itest_unique(char *buf, size_t size, const char *base)
{
    snprintf(buf, size, "%s-%d-%lld", base, (int)getpid(),
             (long long)st_time_wall_ms() % 100000000);
    if (itest_nnames == 0) {
        itest_names_pid = getpid();
        atexit(itest_delete_topics);
    }
    if (itest_nnames < ITEST_NAMES_MAX && strlen(buf) < sizeof itest_names[0])
        snprintf(itest_names[itest_nnames++], sizeof itest_names[0], "%s", buf);
}

/* itest_unique of before + tag + after ("it.", "crash", ".in" -> "it.crash.in-<pid>-<time>"). */
static inline void itest_unique_tag(char *buf, size_t size, const char *before, const char *tag,
                                    const char *after)
{
    char base[80];
    snprintf(base, sizeof base, "%s%s%s", before, tag, after);
    itest_unique(buf, size, base);
}

static inline redisContext *itest_redis(void)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", itest_redis_port(), tv);
    if (!c || c->err) {
        fprintf(stderr, "cannot connect to Redis on %d: %s\n", itest_redis_port(),
                c ? c->errstr : "alloc");
        exit(1);
    }
    return c;
}

/* GET key as an integer (-1 when missing or on error; reconnects after a Redis restart). */
static inline long long itest_redis_get_int(redisContext **c, const char *key)
{
    redisReply *r = redisCommand(*c, "GET %s", key);
    if (!r) {
        redisFree(*c);
        struct timeval tv = {1, 0};
        *c = redisConnectWithTimeout("127.0.0.1", itest_redis_port(), tv);
        return -1;
    }
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
}

/* Starts argv[0] (a path) with argv; stdout/stderr appended to logpath. Returns the pid. */
static inline pid_t itest_spawn(char *const argv[], const char *logpath)
{
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = fopen(logpath, "a");
        if (f) {
            dup2(fileno(f), 1);
            dup2(fileno(f), 2);
        }
        execv(argv[0], argv);
        perror("execv");
        _exit(127);
    }
    return pid;
}

/* Waits for pid up to timeout_ms; returns its exit status, 128+signal, or -1 on timeout. */
static inline int itest_wait(pid_t pid, int timeout_ms)
{
    int64_t deadline = st_time_mono_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (st_time_mono_ms() > deadline)
            return -1;
        usleep(20000);
    }
}

/* Whether any line of the file at path contains what. */
static inline bool itest_log_has(const char *path, const char *what)
{
    FILE *fp = fopen(path, "r");
    char line[4096];
    bool found = false;
    while (fp && !found && fgets(line, sizeof line, fp))
        found = strstr(line, what) != NULL;
    if (fp)
        fclose(fp);
    return found;
}

static inline void itest_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A port on 127.0.0.1 free now, for a server the test starts, taken outside the kernel's
 * ephemeral range (tests/support/ports.py says why: inside it, any outgoing connection can take
 * the port before the server binds it). -1 if none is found. */
static inline int itest_free_port(void)
{
    int first = 32768, last = 60999;
    FILE *fp = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (fp) {
        if (fscanf(fp, "%d %d", &first, &last) != 2)
            first = 32768, last = 60999;
        fclose(fp);
    }
    int below = first > 10000 ? first - 10000 : 0; /* 10000 .. first-1 */
    int above = last < 65535 ? 65535 - last : 0;   /* last+1 .. 65535 */
    unsigned seed = (unsigned)getpid() ^ (unsigned)st_time_mono_us();
    for (int tries = 0; tries < 500; tries++) {
        int port;
        if (below + above == 0)
            port = 10000 + (int)(rand_r(&seed) % 55536u);
        else {
            int k = (int)(rand_r(&seed) % (unsigned)(below + above));
            port = k < below ? 10000 + k : last + 1 + (k - below);
        }
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0)
            return -1;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = bind(s, (struct sockaddr *)&a, sizeof a) == 0;
        close(s);
        if (ok)
            return port;
    }
    return -1;
}

/* A pass-through pipeline test (tests/support/passthrough.c): its topics <tag>.in/.out/.dlq, group
 * and Redis counter, all unique per run, and where the binary and the log are. */
typedef struct {
    char in[128], out[128], dlq[128], group[128], counter[128], bin[512], log[512];
} itest_pt_t;

static inline void itest_pt_init(itest_pt_t *t, const char *tag)
{
    itest_unique_tag(t->in, sizeof t->in, "it.", tag, ".in");
    itest_unique_tag(t->out, sizeof t->out, "it.", tag, ".out");
    itest_unique_tag(t->dlq, sizeof t->dlq, "it.", tag, ".dlq");
    itest_unique_tag(t->group, sizeof t->group, "it-", tag, "");
    itest_unique_tag(t->counter, sizeof t->counter, "it:", tag, ":count");
    snprintf(t->bin, sizeof t->bin, "%s/stint-passthrough", itest_bin_dir());
    snprintf(t->log, sizeof t->log, "%s/it-%s.log", itest_bin_dir(), tag);
    remove(t->log); /* a fresh log: tests look for lines in it */
}

/* Starts stint-passthrough on t's names with up to 16 extra arguments (NULL-terminated). */
static inline pid_t itest_pt_spawn(itest_pt_t *t, char *const *extra)
{
    char *argv[32] = {t->bin, "--in.topic",    t->in,      "--out.topic", t->out,  "--dlq.topic",
                      t->dlq, "--counter.key", t->counter, "-G",          t->group};
    int n = 11;
    for (int i = 0; extra && extra[i] && i < 16; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return itest_spawn(argv, t->log);
}

/* Deletes t's counter and its idempotency markers. */
static inline void itest_pt_redis_cleanup(const itest_pt_t *t)
{
    redisContext *rc = itest_redis();
    if (rc)
        freeReplyObject(redisCommand(rc, "DEL %s %s:applied", t->counter, t->counter));
    redisFree(rc);
}

/* Unlinks every Redis key under "<prefix>:" (SCAN, so a big keyspace is not blocked). Returns
 * the number removed. */
/* A command's reply, which must not be an error (caller frees); exits on an error. */
static inline redisReply *itest_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "%s: %s\n", fmt, r ? r->str : c->errstr);
        exit(1);
    }
    return r;
}

/* EXISTS <prefix>:u:{<user>}:<what>. */
static inline long long itest_user_key_exists(redisContext *c, const char *prefix, const char *user,
                                              const char *what)
{
    redisReply *r = itest_cmd(c, "EXISTS %s:u:{%s}:%s", prefix, user, what);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* A stint Redis client (st_redis) connected to the local Redis; exits when it cannot connect. */
static inline st_redis_t *itest_st_redis(void)
{
    st_redis_opts_t o = {.host = "127.0.0.1", .port = itest_redis_port(), .timeout_ms = 5000};
    st_redis_t *r = st_redis_new(&o);
    st_err_t err = {0};
    if (!r || st_redis_ensure(r, 10000, &err) != 0) {
        fprintf(stderr, "cannot connect to Redis on %d: %s\n", itest_redis_port(), err.text);
        exit(1);
    }
    return r;
}

static inline long itest_redis_unlink_prefix(const char *prefix)
{
    redisContext *rc = itest_redis();
    char cursor[32] = "0", pattern[200];
    snprintf(pattern, sizeof pattern, "%s:*", prefix);
    long removed = 0;
    do {
        redisReply *rep =
            rc ? redisCommand(rc, "SCAN %s MATCH %s COUNT 1000", cursor, pattern) : NULL;
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            if (rep)
                freeReplyObject(rep);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++) {
            redisReply *d = redisCommand(rc, "UNLINK %b", rep->element[1]->element[i]->str,
                                         rep->element[1]->element[i]->len);
            if (d)
                freeReplyObject(d);
            removed++;
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    if (rc)
        redisFree(rc);
    return removed;
}

/* Produces records from..to-1 to topic: key "user-<i % nkeys>", value "rec-<i, 7 digits>-<tag>",
 * and waits for every acknowledgement. Returns 0, or -1 on any failure. */
static inline int itest_produce_numbered(const char *topic, int from, int to, int nkeys,
                                         const char *tag)
{
    char errstr[256];
    st_kafka_opts_t ko = itest_kafka();
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    int rc = prod ? 0 : -1;
    for (int i = from; i < to && rc == 0; i++) {
        char key[32], val[96];
        int klen = snprintf(key, sizeof key, "user-%04d", i % nkeys);
        int vlen = snprintf(val, sizeof val, "rec-%07d-%s", i, tag);
        rc = st_producer_send(prod, topic, -1, key, (size_t)klen, val, (size_t)vlen, NULL);
    }
    if (prod && st_producer_wait(prod, 60000, NULL) != 0)
        rc = -1;
    st_producer_destroy(prod);
    return rc;
}

/* Calls cb for every record of topic (all partitions, from the beginning to the end offsets
 * seen at the start). Returns the number of records read, or -1. */
typedef void (*itest_record_cb)(void *arg, int32_t partition, const void *key, size_t klen,
                                const void *val, size_t vlen);
static inline long long itest_read_topic(const char *topic, itest_record_cb cb, void *arg)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    const char *const defaults[][2] = {{"group.id", "stint-itest-reader"},
                                       {"enable.auto.commit", "false"}};
    rd_kafka_conf_t *conf = st_kafka_conf_new(&ko, defaults, 2, errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk)
        return -1;
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != 0 || md->topic_cnt != 1) {
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        return -1;
    }
    int nparts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
    int64_t *high = calloc((size_t)nparts, sizeof *high);
    int64_t remaining = 0;
    for (int i = 0; i < nparts; i++) {
        int64_t lo;
        rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &high[i], 10000);
        remaining += high[i] - lo;
        rd_kafka_topic_partition_list_add(l, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    long long n = 0;
    int64_t deadline = st_time_mono_ms() + 120000;
    while (remaining > 0 && st_time_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (!m)
            continue;
        if (!m->err && m->offset < high[m->partition]) {
            cb(arg, m->partition, m->key, m->key_len, m->payload, m->len);
            n++;
            remaining--;
        }
        rd_kafka_message_destroy(m);
    }
    free(high);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return remaining == 0 ? n : -1;
}

#endif
