/* cmd_lag.c - `stint lag -G group [topic...]`: a consumer group's committed offsets, log end
 * offsets, lag and owning member per partition (kafka-consumer-groups --describe), as a table,
 * JSON (--json) or the total alone (--total); --wait blocks until the group has caught up.
 * --sessionizer counts the records a stint-sessionizer holds in its reorder buffer as read: its
 * committed offset trails by design, its read position is in Redis (sz_store.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "lag_view.h"
#include "st_buf.h"
#include "st_config.h"
#include "st_kafka.h"
#include "st_lifecycle.h"
#include "st_log.h"
#include "st_redis.h"
#include "st_rkey.h"
#include "st_time.h"

/* Exit codes a script can tell apart (also in the usage text). */
enum { LAG_OK = 0, LAG_BEHIND = 1, LAG_UNKNOWN = 2, LAG_UNREACHABLE = 3 };

typedef struct {
    char *brokers;
    char *group;
    bool wait;
    int64_t timeout_s;
    bool total;
    bool json;
    bool sessionizer;
    char *redis_host;
    int64_t redis_port;
    char *redis_username;
    char *redis_password;
    int64_t redis_db;
    bool redis_cluster;
    char *redis_prefix;
} lag_config_t;

#define OFF(f) offsetof(lag_config_t, f)
static const st_config_entry_t lag_table[] = {
    {"kafka.brokers", ST_CFG_STRING, "127.0.0.1:19092", ST_CFG_NOBOUNDS, OFF(brokers), false, 'b',
     "Kafka bootstrap servers"},
    {"kafka.group", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(group), false, 'G',
     "consumer group (required)"},
    {"wait", ST_CFG_BOOL, "false", ST_CFG_NOBOUNDS, OFF(wait), false, 'w',
     "wait until the group has caught up (no unread record on any partition shown); exit 1 at "
     "--timeout"},
    {"timeout", ST_CFG_INT, "600", 1, 86400, OFF(timeout_s), false, 0,
     "give up waiting after this many seconds (exit 1)"},
    {"total", ST_CFG_BOOL, "false", ST_CFG_NOBOUNDS, OFF(total), false, 0,
     "print only the total: the lag summed over the partitions (the unread records with "
     "--sessionizer)"},
    {"json", ST_CFG_BOOL, "false", ST_CFG_NOBOUNDS, OFF(json), false, 0,
     "print one JSON document (group, state, members, partitions, totals, caught_up)"},
    {"sessionizer", ST_CFG_BOOL, "false", ST_CFG_NOBOUNDS, OFF(sessionizer), false, 0,
     "the group is a stint-sessionizer: a partition is caught up when it has read it to the end "
     "(its read position in Redis, <redis.prefix>:rd:{p<N>}), though its committed offset stays "
     "behind at the oldest record of its reorder buffer"},
    {"redis.host", ST_CFG_STRING, "127.0.0.1", ST_CFG_NOBOUNDS, OFF(redis_host), false, 0,
     "Redis host (--sessionizer)"},
    {"redis.port", ST_CFG_INT, "16379", 1, 65535, OFF(redis_port), false, 0,
     "Redis port (--sessionizer)"},
    {"redis.username", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(redis_username), false, 0,
     "Redis ACL user (--sessionizer; unset = the default user)"},
    {"redis.password", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(redis_password), true, 0,
     "Redis AUTH password (--sessionizer)"},
    {"redis.db", ST_CFG_INT, "0", 0, 15, OFF(redis_db), false, 0,
     "Redis database number (--sessionizer)"},
    {"redis.cluster", ST_CFG_BOOL, "false", ST_CFG_NOBOUNDS, OFF(redis_cluster), false, 0,
     "Redis Cluster: redis.host:redis.port is a seed node (--sessionizer)"},
    {"redis.prefix", ST_CFG_STRING, "stint", ST_CFG_NOBOUNDS, OFF(redis_prefix), false, 0,
     "the sessionizer's redis.prefix (--sessionizer)"},
    {NULL, 0, NULL, 0, 0, 0, false, 0, NULL},
};

static const char lag_about[] =
    "A consumer group's offsets per partition: TOPIC PARTITION CURRENT-OFFSET (committed) "
    "LOG-END-OFFSET LAG MEMBER, then a TOTAL line ending with the total. Without topics: the "
    "topics the group has committed offsets for or is assigned. Caught up (--wait, caught_up in "
    "--json) = no partition has a record the group has not read: its committed offset is at "
    "the log end, or, with --sessionizer, its read position is (READ-OFFSET and UNREAD columns). "
    "Exit: 0 (with --wait: caught up), 1 --wait timed out, 2 usage error, unknown group (no "
    "committed offsets and no members) or unknown topic, 3 Kafka or Redis unreachable.";

typedef struct {
    lag_config_t c;
    st_kafka_opts_t ko;
    st_redis_t *redis;
    st_kafka_group_t g;
    lag_row_t *rows;
    lag_view_t view;
} lag_t;

/* The sessionizer's read position of each row (HGET <p>:rd:{p<N>} topic). 0, or -1 with errstr. */
static int read_positions(lag_t *l, char *errstr, size_t errstr_size)
{
    st_buf_t key = {0};
    st_err_t err = {0};
    int rc = 0;
    if (!l->redis) {
        st_redis_opts_t ro = {.host = l->c.redis_host,
                              .port = (int)l->c.redis_port,
                              .username = l->c.redis_username,
                              .password = l->c.redis_password,
                              .db = (int)l->c.redis_db,
                              .timeout_ms = 5000,
                              .cluster = l->c.redis_cluster};
        l->redis = st_redis_new(&ro);
        if (!l->redis || st_redis_ensure(l->redis, 5000, &err) != 0) {
            st_errstr(errstr, errstr_size, "cannot connect to Redis at %s:%d: %s", l->c.redis_host,
                      (int)l->c.redis_port, l->redis ? err.text : "out of memory");
            return -1;
        }
    }
    st_redis_pipe_reset(l->redis);
    for (size_t i = 0; i < l->view.nrows && rc == 0; i++) {
        st_buf_reset(&key);
        if (st_rkey_partition(&key, l->c.redis_prefix, ST_RKEY_READ, l->rows[i].partition) != 0 ||
            st_redis_pipe(l->redis, "HGET %s %s", key.data, l->rows[i].topic) != 0)
            rc = st_errstr(errstr, errstr_size, "out of memory");
    }
    st_buf_free(&key);
    redisReply **rep;
    size_t n;
    if (rc == 0 && l->view.nrows > 0 && st_redis_exec(l->redis, &rep, &n, &err) != 0)
        rc = st_errstr(errstr, errstr_size, "Redis: %s", err.text);
    for (size_t i = 0; rc == 0 && i < l->view.nrows && i < n; i++)
        if (rep[i]->type == REDIS_REPLY_STRING)
            l->rows[i].read = strtoll(rep[i]->str, NULL, 10);
    return rc;
}

/* Describes the group into l->view. Returns an exit code (LAG_OK when described). */
static int describe(lag_t *l, char **topics, int ntopics, char *errstr, size_t errstr_size)
{
    st_kafka_group_clear(&l->g);
    int rc = st_kafka_group_describe(&l->ko, l->c.group, (const char *const *)topics,
                                     (size_t)ntopics, &l->g, errstr, errstr_size);
    if (rc == ST_KAFKA_E_NO_TOPIC)
        return LAG_UNKNOWN;
    if (rc != 0)
        return LAG_UNREACHABLE;
    if (!l->g.has_commits && l->g.members == 0) {
        st_errstr(errstr, errstr_size,
                  "unknown group %s: it has no committed offsets and no members", l->c.group);
        return LAG_UNKNOWN;
    }
    free(l->rows);
    l->rows = calloc(l->g.nparts ? l->g.nparts : 1, sizeof *l->rows);
    if (!l->rows) {
        st_errstr(errstr, errstr_size, "out of memory");
        return LAG_UNREACHABLE;
    }
    for (size_t i = 0; i < l->g.nparts; i++) {
        const st_kafka_group_part_t *p = &l->g.parts[i];
        l->rows[i] = (lag_row_t){p->topic,     p->partition, p->committed, -1,
                                 p->log_start, p->log_end,   p->member};
    }
    l->view =
        (lag_view_t){l->c.group, l->g.state, l->g.members, l->c.sessionizer, l->rows, l->g.nparts};
    if (l->c.sessionizer && read_positions(l, errstr, errstr_size) != 0)
        return LAG_UNREACHABLE;
    return LAG_OK;
}

int cmd_lag(int argc, char **argv)
{
    lag_t l;
    char errstr[512];
    int npos = 0;
    memset(&l, 0, sizeof l);
    st_config_t *cfg = st_config_new("stint lag", lag_about);
    st_config_add_table(cfg, lag_table, &l.c, errstr, sizeof errstr);
    st_config_set_positional(cfg, "[<topic>...]");
    st_config_result_t r = st_config_load(cfg, argc, argv, &npos, errstr, sizeof errstr);
    if (r == ST_CONFIG_OK && (!l.c.group || !*l.c.group)) {
        snprintf(errstr, sizeof errstr, "need -G group");
        r = ST_CONFIG_USAGE;
    }
    if (r == ST_CONFIG_OK && l.c.json && l.c.total) {
        snprintf(errstr, sizeof errstr, "--json and --total exclude each other");
        r = ST_CONFIG_USAGE;
    }
    if (r != ST_CONFIG_OK) {
        if (r == ST_CONFIG_USAGE) {
            fprintf(stderr, "stint lag: %s\n\n", errstr);
            st_config_usage(cfg, stderr);
        }
        st_config_destroy(cfg);
        return r == ST_CONFIG_EXIT ? 0 : 2;
    }
    st_log_set_level(ST_LOG_ERROR);
    st_lifecycle_install();
    l.ko = (st_kafka_opts_t){l.c.brokers, "stint-lag", NULL, 0};
    l.ko.props = st_config_kafka_props(cfg, &l.ko.nprops);

    int rc = describe(&l, argv + 1, npos, errstr, sizeof errstr);
    int64_t deadline = st_time_mono_ms() + l.c.timeout_s * 1000;
    while (rc == LAG_OK && l.c.wait && !lag_view_caught_up(&l.view)) {
        if (st_lifecycle_stopping() || st_time_mono_ms() >= deadline) {
            rc = LAG_BEHIND;
            break;
        }
        st_lifecycle_sleep_ms(500);
        rc = describe(&l, argv + 1, npos, errstr, sizeof errstr);
    }
    if (rc == LAG_OK || rc == LAG_BEHIND) {
        if (l.c.json) {
            if (lag_view_json(&l.view, stdout) != 0)
                rc = LAG_UNREACHABLE;
        } else if (l.c.total) {
            printf("%lld\n", (long long)(l.c.sessionizer ? lag_view_total_unread(&l.view)
                                                         : lag_view_total_lag(&l.view)));
        } else {
            lag_view_table(&l.view, stdout);
        }
        if (rc == LAG_BEHIND)
            fprintf(stderr, "stint lag: group %s not caught up after %lld s\n", l.c.group,
                    (long long)l.c.timeout_s);
    } else {
        fprintf(stderr, "stint lag: %s\n", errstr);
    }
    st_redis_destroy(l.redis);
    st_kafka_group_clear(&l.g);
    free(l.rows);
    st_config_destroy(cfg);
    return rc;
}
