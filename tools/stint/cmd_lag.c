/* cmd_lag.c - `stint lag -G group topic...`: how far a consumer group is behind (end offsets
 * minus committed offsets, summed over partitions); with --wait, blocks until the group has caught
 * up or its lag has stopped moving (a service holding records, e.g. the sessionizer's reorder
 * buffer, never reaches 0 at the end of a finite stream). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "st_config.h"
#include "st_kafka.h"
#include "st_lifecycle.h"
#include "st_log.h"
#include "st_time.h"

typedef struct {
    char *brokers;
    char *group;
    bool wait;
    int64_t settle_s;
    int64_t timeout_s;
} lag_config_t;

#define OFF(f) offsetof(lag_config_t, f)
static const st_config_entry_t lag_table[] = {
    {"kafka.brokers", ST_CFG_STRING, "127.0.0.1:19092", ST_CFG_NOBOUNDS, OFF(brokers), false, 'b',
     "Kafka bootstrap servers"},
    {"kafka.group", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(group), false, 'G',
     "consumer group (required)"},
    {"wait", ST_CFG_BOOL, "false", ST_CFG_NOBOUNDS, OFF(wait), false, 'w',
     "wait until the lag is 0 or has not changed for --settle seconds"},
    {"settle", ST_CFG_INT, "5", 1, 3600, OFF(settle_s), false, 0,
     "seconds without change that count as settled"},
    {"timeout", ST_CFG_INT, "600", 1, 86400, OFF(timeout_s), false, 0,
     "give up waiting after this many seconds (exit 1)"},
    {NULL, 0, NULL, 0, 0, 0, false, 0, NULL},
};

/* Lag summed over the topics, or -1 with errstr. */
static int64_t total_lag(const st_kafka_opts_t *ko, const char *group, char **topics, int n,
                         char *errstr, size_t errstr_size)
{
    int64_t lag = 0;
    for (int i = 0; i < n; i++) {
        int64_t end = st_kafka_topic_end_offsets(ko, topics[i], errstr, errstr_size);
        int64_t done =
            end < 0 ? -1 : st_kafka_group_committed(ko, group, topics[i], errstr, errstr_size);
        if (end < 0 || done < 0)
            return -1;
        lag += end - done;
    }
    return lag;
}

int cmd_lag(int argc, char **argv)
{
    lag_config_t c;
    char errstr[512];
    int npos = 0;
    memset(&c, 0, sizeof c);
    st_config_t *cfg = st_config_new("stint lag", "How far a consumer group is behind on topics.");
    st_config_add_table(cfg, lag_table, &c, errstr, sizeof errstr);
    st_config_set_positional(cfg, "<topic>...");
    st_config_result_t r = st_config_load(cfg, argc, argv, &npos, errstr, sizeof errstr);
    if (r == ST_CONFIG_OK && (npos < 1 || !c.group || !*c.group)) {
        snprintf(errstr, sizeof errstr, "need -G group and at least one topic");
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
    st_kafka_opts_t ko = {c.brokers, "stint-lag", NULL, 0};
    ko.props = st_config_kafka_props(cfg, &ko.nprops);

    int rc = 0;
    int64_t lag = total_lag(&ko, c.group, argv + 1, npos, errstr, sizeof errstr);
    if (c.wait) {
        int64_t deadline = st_time_mono_ms() + c.timeout_s * 1000, changed = st_time_mono_ms();
        int64_t last = lag;
        while (lag != 0 && !st_lifecycle_stopping()) {
            int64_t now = st_time_mono_ms();
            if (lag > 0 && now - changed >= c.settle_s * 1000)
                break;
            if (now >= deadline) {
                rc = 1;
                break;
            }
            st_lifecycle_sleep_ms(500);
            lag = total_lag(&ko, c.group, argv + 1, npos, errstr, sizeof errstr);
            if (lag != last) {
                last = lag;
                changed = st_time_mono_ms();
            }
        }
    }
    if (lag < 0) {
        fprintf(stderr, "stint lag: %s\n", errstr);
        rc = 1;
    } else {
        printf("%lld\n", (long long)lag);
    }
    st_config_destroy(cfg);
    return rc;
}
