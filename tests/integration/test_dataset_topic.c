/* test_dataset_topic.c - the data set from the sessions topic (st_dataset_topic, and
 * `stint train --from-topic`) equals the offline path's (`stint sessions` TSV + profiles): CLOSED
 * SessionEvents of a generated dataset produced to a unique 3-partition topic, each user's
 * sessions scattered over the partitions in reverse order, plus OPENED events, byte-identical
 * replays, one conflicting replay and one undecodable record. Real Kafka at 127.0.0.1:19092. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_avro.h"
#include "st_catalog.h"
#include "st_dataset.h"
#include "st_dataset_topic.h"
#include "st_itest.h"
#include "st_records.h"
#include "st_session.h"
#include "st_sessions_offline.h"
#include "st_test.h"

#define PARTITIONS 3
#define N_DUPS     7

typedef struct {
    char user_id[ST_SESSION_USER_ID_MAX + 1];
    st_session_summary_t s;
    uint32_t index; /* earlier sessions of the user */
} sess_t;

typedef struct {
    sess_t *v;
    size_t n, cap;
} sessions_t;

static char g_dir[256];  /* scratch directory */
static char g_data[300]; /* the generated dataset */

static int collect(void *arg, const char *user_id, const st_session_summary_t *s)
{
    sessions_t *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        sess_t *v = realloc(l->v, l->cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
    }
    sess_t *e = &l->v[l->n];
    snprintf(e->user_id, sizeof e->user_id, "%s", user_id);
    e->s = *s;
    e->index =
        l->n > 0 && strcmp(l->v[l->n - 1].user_id, user_id) == 0 ? l->v[l->n - 1].index + 1 : 0;
    l->n++;
    return 0;
}

/* One SessionEvent of session e (CLOSED, or OPENED when opened) into out. */
static int encode(st_avro_codec_t *c, const sess_t *e, bool opened, st_buf_t *out)
{
    char sid[ST_SESSION_ID_MAX];
    st_session_id_format(e->user_id, strlen(e->user_id), e->s.start_ms, sid, sizeof sid);
    int hour, weekday;
    st_session_hour_weekday(e->s.start_ms, &hour, &weekday);
    st_rec_session_event_t rec = {
        .session_id = st_str(sid),
        .user_id = st_str(e->user_id),
        .kind = opened ? ST_SESSION_EVENT_OPENED : ST_SESSION_EVENT_CLOSED,
        .start_ms = e->s.start_ms,
        .session_index = (int32_t)e->index,
        .start_hour_utc = hour,
        .start_weekday = weekday,
    };
    if (!opened) {
        rec.end_ms = (st_opt_i64_t){true, e->s.end_ms};
        rec.length_s = (st_opt_f64_t){true, e->s.length_s};
        rec.track_count = (int32_t)e->s.track_count;
        rec.unknown_duration_share = (st_opt_f64_t){true, e->s.unknown_duration_share};
    }
    st_err_t err = {0};
    if (st_rec_session_event_encode(c, &rec, out, &err) != 0) {
        fprintf(stderr, "encode: %s\n", err.text);
        return -1;
    }
    return 0;
}

static int produce(st_producer_t *p, const char *topic, int32_t partition, const char *key,
                   const st_buf_t *b)
{
    st_err_t err = {0};
    if (st_producer_send(p, topic, partition, key, strlen(key), b->data, b->len, &err) != 0) {
        fprintf(stderr, "send: %s\n", err.text);
        return -1;
    }
    return 0;
}

/* The reference: `stint sessions` TSV + profiles, the path of --sessions FILE --profiles DIR. */
static st_dataset_t *offline_dataset(const char *tsv, int64_t until_ms)
{
    char err[512];
    st_dataset_t *ds = st_dataset_new();
    st_dataset_set_until_ms(ds, until_ms);
    if (st_dataset_load_sessions(ds, tsv, NULL, err, sizeof err) != 0 ||
        st_dataset_load_profiles(ds, g_data, NULL, err, sizeof err) != 0 ||
        st_dataset_finalize(ds, err, sizeof err) != 0) {
        fprintf(stderr, "offline dataset: %s\n", err);
        st_dataset_destroy(ds);
        return NULL;
    }
    return ds;
}

static st_dataset_t *topic_dataset(const char *topic, int64_t until_ms,
                                   st_dataset_topic_stats_t *st)
{
    char err[512];
    st_dataset_topic_opts_t o;
    st_dataset_topic_opts_default(&o);
    o.brokers = itest_brokers();
    o.topic = topic;
    o.schemas_dir = STINT_SOURCE_DIR "/schemas";
    o.registry_url = itest_registry_url();
    st_dataset_t *ds = st_dataset_new();
    st_dataset_set_until_ms(ds, until_ms);
    if (st_dataset_topic_load(ds, &o, st, err, sizeof err) != 0 ||
        st_dataset_load_profiles(ds, g_data, NULL, err, sizeof err) != 0 ||
        st_dataset_finalize(ds, err, sizeof err) != 0) {
        fprintf(stderr, "topic dataset: %s\n", err);
        st_dataset_destroy(ds);
        return NULL;
    }
    return ds;
}

/* The hash `stint train` logs in its dataset_loaded line, or "" */
static void logged_hash(const char *log, char *out, size_t size)
{
    out[0] = 0;
    FILE *fp = fopen(log, "r");
    char line[4096];
    while (fp && fgets(line, sizeof line, fp)) {
        const char *h = strstr(line, "dataset_loaded");
        h = h ? strstr(h, " hash=") : NULL;
        if (h)
            snprintf(out, size, "%.16s", h + 6);
    }
    if (fp)
        fclose(fp);
}

static void test_topic_equals_offline(void)
{
    char err[512], path[512], tsv[512], log[512], cat[512];
    char bin[512];
    snprintf(bin, sizeof bin, "%s/stint", itest_bin_dir());
    snprintf(log, sizeof log, "%s/log.txt", g_dir);
    snprintf(tsv, sizeof tsv, "%s/sessions.tsv", g_dir);
    snprintf(cat, sizeof cat, "%s/tracks.jsonl", g_data);
    char *gen[] = {bin,      "gen", "--users", "20",   "--days", "30",
                   "--seed", "11",  "--out",   g_data, NULL};
    ST_REQUIRE(itest_wait(itest_spawn(gen, log), 120000) == 0);
    char *sess[] = {bin, "sessions", "--data", g_data,    "--catalog",
                    cat, "--out",    tsv,      "--quiet", NULL};
    ST_REQUIRE(itest_wait(itest_spawn(sess, log), 120000) == 0);
    /* the sessions, as the streaming sessionizer would close them */
    st_catalog_t *catalog = st_catalog_load(cat, NULL, err, sizeof err);
    ST_REQUIRE(catalog != NULL);
    st_sessions_offline_opts_t so;
    st_sessions_offline_opts_default(&so);
    so.data_path = g_data;
    so.catalog = catalog;
    so.quiet = true;
    sessions_t l = {0};
    int rc = st_sessions_offline_run(&so, collect, &l, NULL, err, sizeof err);
    st_catalog_destroy(catalog);
    ST_REQUIRE(rc == 0 && l.n > 100);

    char topic[128];
    itest_unique(topic, sizeof topic, "stint-test-dataset-sessions");
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {topic};
    ST_REQUIRE(st_kafka_create_topics(&ko, topics, 1, PARTITIONS, err, sizeof err) == 0);
    st_avro_registry_t *reg =
        st_avro_registry_new(STINT_SOURCE_DIR "/schemas", itest_registry_url(), err, sizeof err);
    ST_REQUIRE(reg != NULL);
    st_avro_codec_t *codec = st_avro_codec_new(reg, "SessionEvent", topic, err, sizeof err);
    st_producer_t *p = st_producer_new(&ko, err, sizeof err);
    st_buf_t b = {0};
    int bad = codec == NULL || p == NULL;
    /* newest first, partitions round-robin: a user's sessions arrive out of order everywhere */
    size_t opened = 0;
    for (size_t k = l.n; k-- > 0 && !bad;) {
        int32_t part = (int32_t)(k % PARTITIONS);
        if (k % 5 == 0) {
            bad |= encode(codec, &l.v[k], true, &b) != 0 ||
                   produce(p, topic, part, l.v[k].user_id, &b) != 0;
            opened++;
        }
        bad |= encode(codec, &l.v[k], false, &b) != 0 ||
               produce(p, topic, part, l.v[k].user_id, &b) != 0;
    }
    /* byte-identical replays (on another partition too), one conflict after its original, junk */
    for (size_t d = 0; d < N_DUPS && !bad; d++) {
        size_t k = (d * 131) % l.n;
        bad |= encode(codec, &l.v[k], false, &b) != 0 ||
               produce(p, topic, (int32_t)((k + d) % PARTITIONS), l.v[k].user_id, &b) != 0;
    }
    if (!bad) {
        sess_t changed = l.v[l.n / 2];
        changed.s.length_s += 100;
        bad |= encode(codec, &changed, false, &b) != 0 ||
               produce(p, topic, (int32_t)((l.n / 2) % PARTITIONS), changed.user_id, &b) != 0;
        st_buf_t junk = {0};
        st_buf_append_str(&junk, "not avro at all");
        bad |= produce(p, topic, 1, "junk", &junk) != 0;
        st_buf_free(&junk);
    }
    st_err_t perr = {0};
    if (!bad && st_producer_wait(p, 60000, &perr) != 0) {
        fprintf(stderr, "produce: %s\n", perr.text);
        bad = 1;
    }
    st_producer_destroy(p);
    st_buf_free(&b);
    st_avro_codec_destroy(codec);
    st_avro_registry_destroy(reg);
    ST_REQUIRE(!bad);

    st_dataset_t *ref = offline_dataset(tsv, INT64_MAX);
    st_dataset_topic_stats_t st;
    st_dataset_t *ds = topic_dataset(topic, INT64_MAX, &st);
    ST_REQUIRE(ref != NULL && ds != NULL);
    ST_EQ_INT(st.partitions, PARTITIONS);
    ST_EQ_U64(st.records, l.n + opened + N_DUPS + 2);
    ST_EQ_U64(st.opened, opened);
    ST_EQ_U64(st.closed, l.n + N_DUPS + 1);
    ST_EQ_U64(st.duplicates, N_DUPS);
    ST_EQ_U64(st.conflicts, 1);
    ST_EQ_U64(st.invalid, 1);
    ST_EQ_U64(st.sessions, l.n);
    ST_EQ_INT(st_dataset_n_rows(ds), st_dataset_n_rows(ref));
    ST_EQ_U64(st_dataset_hash(ds), st_dataset_hash(ref));
    if (st_dataset_n_rows(ds) == st_dataset_n_rows(ref)) {
        const st_dataset_row_t *a = st_dataset_rows(ds), *r = st_dataset_rows(ref);
        size_t diff = 0;
        for (size_t i = 0; i < st_dataset_n_rows(ds); i++)
            diff += a[i].start_s != r[i].start_s || a[i].length_s != r[i].length_s ||
                    a[i].track_count != r[i].track_count ||
                    a[i].unknown_share != r[i].unknown_share || a[i].gap_s != r[i].gap_s;
        ST_EQ_INT(diff, 0);
    }
    st_dataset_destroy(ds);

    /* --until: the same cut on both paths */
    int64_t until_ms = l.v[l.n / 3].s.start_ms;
    st_dataset_t *ref_u = offline_dataset(tsv, until_ms);
    st_dataset_t *ds_u = topic_dataset(topic, until_ms, &st);
    ST_REQUIRE(ref_u != NULL && ds_u != NULL);
    ST_CHECK(st_dataset_n_rows(ds_u) < st_dataset_n_rows(ref));
    ST_CHECK(st_dataset_n_after_until(ds_u) > 0);
    ST_EQ_INT(st_dataset_n_rows(ds_u), st_dataset_n_rows(ref_u));
    ST_EQ_U64(st_dataset_hash(ds_u), st_dataset_hash(ref_u));
    st_dataset_destroy(ds_u);
    st_dataset_destroy(ref_u);

    /* the CLI: stint train --from-topic logs the same hash as --sessions */
    char out1[512], out2[512], log1[512], log2[512], h1[32], h2[32];
    snprintf(out1, sizeof out1, "%s/b1", g_dir);
    snprintf(out2, sizeof out2, "%s/b2", g_dir);
    snprintf(log1, sizeof log1, "%s/train1.log", g_dir);
    snprintf(log2, sizeof log2, "%s/train2.log", g_dir);
    char *a1[] = {bin,          "train", "--from-topic", topic, "-b",    (char *)itest_brokers(),
                  "--profiles", g_data,  "--epochs",     "1",   "--out", out1,
                  NULL};
    char *a2[] = {bin,        "train", "--sessions", tsv,  "--profiles", g_data,
                  "--epochs", "1",     "--out",      out2, NULL};
    ST_EQ_INT(itest_wait(itest_spawn(a1, log1), 300000), 0);
    ST_EQ_INT(itest_wait(itest_spawn(a2, log2), 300000), 0);
    logged_hash(log1, h1, sizeof h1);
    logged_hash(log2, h2, sizeof h2);
    ST_CHECK(h1[0] != 0);
    ST_EQ_STR(h1, h2);
    snprintf(path, sizeof path, "%016llx", (unsigned long long)st_dataset_hash(ref));
    ST_EQ_STR(h2, path);
    st_dataset_destroy(ref);
    free(l.v);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/stint-dataset-topic-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_data, sizeof g_data, "%s/data", g_dir);
    ST_RUN(test_topic_equals_offline);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
    return st_test_summary();
}
