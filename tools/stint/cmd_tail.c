/* cmd_tail.c - `stint tail <topic> [--follow]`: prints a topic's records as JSON lines (Avro
 * decoded with the writer's schema; JSON passed through; anything else as a string), jq-friendly.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "st_avro.h"
#include "st_config.h"
#include "st_kafka.h"
#include "st_lifecycle.h"
#include "st_log.h"
#include "st_time.h"

typedef struct {
    char *brokers;
    char *schemas_dir;
    char *registry_url;
    bool follow;
    bool meta;
    bool from_end;
    int64_t max;
    char *log_level;
} tail_config_t;

#define OFF(f) offsetof(tail_config_t, f)
static const st_config_entry_t tail_table[] = {
    {"kafka.brokers", ST_CFG_STRING, "127.0.0.1:19092", ST_CFG_NOBOUNDS, OFF(brokers), false, 'b',
     "Kafka bootstrap servers"},
    {"schemas.dir", ST_CFG_STRING, STINT_SOURCE_DIR "/schemas", ST_CFG_NOBOUNDS, OFF(schemas_dir),
     false, 0, "directory of the .avsc files and ids.conf"},
    {"schema.registry.url", ST_CFG_STRING, ST_SCHEMA_REGISTRY_URL_DEFAULT, ST_CFG_NOBOUNDS,
     OFF(registry_url), false, 0, ST_SCHEMA_REGISTRY_URL_HELP},
    {"follow", ST_CFG_BOOL, "false", ST_CFG_NOBOUNDS, OFF(follow), false, 'f',
     "keep waiting for new records instead of stopping at the end"},
    {"meta", ST_CFG_BOOL, "false", ST_CFG_NOBOUNDS, OFF(meta), false, 0,
     "wrap each record as {topic, partition, offset, key, value}"},
    {"from-end", ST_CFG_BOOL, "false", ST_CFG_NOBOUNDS, OFF(from_end), false, 0,
     "start at the end of the topic (with --follow: new records only)"},
    {"max", ST_CFG_INT, "0", 0, 1e15, OFF(max), false, 'n',
     "stop after this many records (0 = no limit)"},
    {"log.level", ST_CFG_STRING, "warn", ST_CFG_NOBOUNDS, OFF(log_level), false, 0, "log level"},
    {NULL, 0, NULL, 0, 0, 0, false, 0, NULL},
};

static json_t *decode_value(st_avro_registry_t *reg, const rd_kafka_message_t *m, st_err_t *err)
{
    const unsigned char *p = m->payload;
    if (!p) /* a tombstone (a compacted topic's deletion) */
        return json_null();
    if (m->len >= ST_AVRO_HEADER_SIZE && p[0] == 0)
        return st_avro_registry_decode_json(reg, m->payload, m->len, err);
    json_error_t jerr;
    json_t *j = json_loadb(m->payload, m->len, JSON_DECODE_ANY, &jerr);
    if (j)
        return j;
    return json_stringn_nocheck(m->payload, m->len);
}

int cmd_tail(int argc, char **argv)
{
    tail_config_t c;
    char errstr[512];
    int npos = 0, rc = 0;
    st_log_level_t level;

    memset(&c, 0, sizeof c);
    st_config_t *cfg = st_config_new("stint tail", "Prints a topic's records as JSON lines.");
    st_config_add_table(cfg, tail_table, &c, errstr, sizeof errstr);
    st_config_set_positional(cfg, "<topic>");
    switch (st_config_load(cfg, argc, argv, &npos, errstr, sizeof errstr)) {
    case ST_CONFIG_EXIT:
        st_config_destroy(cfg);
        return 0;
    case ST_CONFIG_USAGE:
        fprintf(stderr, "stint tail: %s\n\n", errstr);
        st_config_usage(cfg, stderr);
        st_config_destroy(cfg);
        return 2;
    case ST_CONFIG_OK:
        break;
    }
    if (npos != 1) {
        fprintf(stderr, "stint tail: name one topic\n\n");
        st_config_usage(cfg, stderr);
        st_config_destroy(cfg);
        return 2;
    }
    if (st_log_parse_level(c.log_level, &level) == 0)
        st_log_set_level(level);
    const char *topic = argv[1];
    st_lifecycle_install();

    st_avro_registry_t *reg =
        st_avro_registry_new(c.schemas_dir, c.registry_url, errstr, sizeof errstr);
    if (!reg) {
        fprintf(stderr, "stint tail: %s\n", errstr);
        st_config_destroy(cfg);
        return 1;
    }
    st_kafka_opts_t ko = {c.brokers, "stint-tail", NULL, 0};
    ko.props = st_config_kafka_props(cfg, &ko.nprops);
    const char *const defaults[][2] = {{"group.id", "stint-tail"},
                                       {"enable.auto.commit", "false"},
                                       {"enable.partition.eof", "true"}};
    rd_kafka_conf_t *conf = st_kafka_conf_new(&ko, defaults, 3, errstr, sizeof errstr);
    rd_kafka_t *rk = conf ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr) : NULL;
    if (!rk) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        fprintf(stderr, "stint tail: %s\n", errstr);
        st_avro_registry_destroy(reg);
        st_config_destroy(cfg);
        return 1;
    }

    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (e || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "stint tail: topic %s: %s\n", topic,
                e ? rd_kafka_err2str(e) : rd_kafka_err2str(md->topics[0].err));
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_destroy(rk);
        st_avro_registry_destroy(reg);
        st_config_destroy(cfg);
        return 1;
    }
    int nparts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);

    /* Without --follow it stops once every partition is read up to its end as it was at the
     * start: at a record at or past that end, or at the partition's end-of-file event (offsets
     * are not records: a compacted topic or one retention has trimmed has gaps). */
    int64_t *high = calloc((size_t)nparts, sizeof *high);
    bool *done = calloc((size_t)nparts, sizeof *done);
    int pending = 0; /* partitions not read to their end yet */
    if (!high || !done) {
        fprintf(stderr, "stint tail: out of memory\n");
        free(high);
        free(done);
        rd_kafka_destroy(rk);
        st_avro_registry_destroy(reg);
        st_config_destroy(cfg);
        return 1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
    for (int i = 0; i < nparts; i++) {
        int64_t lo = 0;
        rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &high[i], 10000);
        done[i] = c.from_end || high[i] <= lo;
        pending += !done[i];
        rd_kafka_topic_partition_list_add(l, topic, i)->offset =
            c.from_end ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);

    int64_t printed = 0, bad = 0;
    while (!st_lifecycle_stopping() && (c.follow || pending > 0) &&
           (c.max == 0 || printed < c.max)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        bool part_ok = m->partition >= 0 && m->partition < nparts;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "stint tail: %s\n", rd_kafka_message_errstr(m));
            else if (part_ok && !done[m->partition])
                done[m->partition] = true, pending--;
            rd_kafka_message_destroy(m);
            continue;
        }
        if (part_ok && !done[m->partition] && m->offset + 1 >= high[m->partition])
            done[m->partition] = true, pending--;
        st_err_t err = {0};
        json_t *v = decode_value(reg, m, &err);
        if (!v) {
            bad++;
            fprintf(stderr, "stint tail: %s [%d] offset %lld: %s\n", topic, (int)m->partition,
                    (long long)m->offset, err.text);
            rd_kafka_message_destroy(m);
            continue;
        }
        json_t *out = v;
        if (c.meta) {
            out =
                json_pack("{s:s, s:i, s:I, s:s%, s:o}", "topic", topic, "partition",
                          (int)m->partition, "offset", (json_int_t)m->offset, "key",
                          m->key ? (const char *)m->key : "", m->key ? m->key_len : 0, "value", v);
        }
        char *line = out ? json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (!line) { /* bytes that are not UTF-8 (what ingest dead-letters as invalid_utf8) */
            bad++;
            fprintf(stderr, "stint tail: %s [%d] offset %lld: not printable as JSON (not UTF-8)\n",
                    topic, (int)m->partition, (long long)m->offset);
            json_decref(out);
            rd_kafka_message_destroy(m);
            continue;
        }
        if (puts(line) == EOF && errno == EPIPE) {
            free(line);
            json_decref(out);
            rd_kafka_message_destroy(m);
            break;
        }
        free(line);
        json_decref(out);
        printed++;
        if (c.follow)
            fflush(stdout);
        rd_kafka_message_destroy(m);
    }
    fflush(stdout);
    if (bad)
        rc = 1;
    free(high);
    free(done);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    st_avro_registry_destroy(reg);
    st_config_destroy(cfg);
    return rc;
}
