/* train_data.c - the session source (sessions TSV, a Last.fm directory sessionized in-process, or
 * the sessions topic) and the split of `stint train` / `stint evaluate`. */
#include "train_data.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "st_avro.h"
#include "st_catalog.h"
#include "st_dataset_topic.h"
#include "st_err.h"
#include "st_log.h"
#include "st_sessions_offline.h"
#include "st_time.h"

#define OFF(f) offsetof(train_data_opts_t, f)
const st_config_entry_t train_data_table[] = {
    {"sessions", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(sessions), false, 0,
     "source: sessions TSV from `stint sessions` (user_id, start_ts, length_s, track_count[, "
     "unknown_share])"},
    {"data", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(data), false, 0,
     "source: Last.fm-format directory, sessionized in-process exactly as `stint sessions` "
     "(profiles from DIR/userid-profile.tsv unless --profiles)"},
    {"catalog", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(catalog), false, 0,
     "with --data: JSONL track catalog (artist, track, duration_ms); without it every duration "
     "is unknown"},
    {"from-topic", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(from_topic), false, 0,
     "source: the CLOSED SessionEvents of this topic (e.g. sessions), from the beginning to the "
     "end offsets at the start"},
    {"kafka.brokers", ST_CFG_STRING, "127.0.0.1:19092", ST_CFG_NOBOUNDS, OFF(brokers), false, 'b',
     "Kafka bootstrap servers (--from-topic)"},
    {"schemas.dir", ST_CFG_STRING, STINT_SOURCE_DIR "/schemas", ST_CFG_NOBOUNDS, OFF(schemas_dir),
     false, 0, "directory of the .avsc files and ids.conf (--from-topic)"},
    {"schema.registry.url", ST_CFG_STRING, ST_SCHEMA_REGISTRY_URL_DEFAULT, ST_CFG_NOBOUNDS,
     OFF(registry_url), false, 0, "(--from-topic) " ST_SCHEMA_REGISTRY_URL_HELP},
    {"profiles", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(profiles), false, 0,
     "userid-profile.tsv (file or Last.fm directory); optional"},
    {"until", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(until), false, 0,
     "only sessions that started before this time (ISO-8601 or YYYY-MM-DD, UTC; exclusive)"},
    {"split", ST_CFG_STRING, "user", ST_CFG_NOBOUNDS, OFF(split), false, 0,
     "user (10% test / 10% validation users cut at U(0.5,1), as the seed) or date (global date "
     "cut)"},
    {"test-frac", ST_CFG_DOUBLE, "0.1", 0.0, 0.9, OFF(test_frac), false, 0,
     "share of test users (user split) or of rows (date split)"},
    {"val-frac", ST_CFG_DOUBLE, "0.1", 0.0, 0.9, OFF(val_frac), false, 0,
     "share of validation users / rows"},
    {"seed", ST_CFG_INT, "1", 0, 9007199254740991.0, OFF(seed), false, 0,
     "seed of the split and of every model"},
    {NULL, ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, 0, false, 0, NULL},
};

/* --until as epoch ms: a full ISO-8601 time, or a date meaning its 00:00 UTC. */
static int parse_until(const char *s, int64_t *until_ms)
{
    char full[32];
    if (strlen(s) == 10) {
        snprintf(full, sizeof full, "%sT00:00:00Z", s);
        s = full;
    }
    return st_time_parse_iso8601(s, strlen(s), until_ms);
}

int train_data_check(const train_data_opts_t *o, char *errstr, size_t errstr_size)
{
    int n_sources = (o->sessions != NULL) + (o->data != NULL) + (o->from_topic != NULL);
    if (n_sources != 1)
        return st_errstr(errstr, errstr_size,
                         "give exactly one session source: --sessions FILE, --data DIR "
                         "[--catalog FILE] or --from-topic TOPIC");
    if (o->catalog && !o->data)
        return st_errstr(errstr, errstr_size, "--catalog goes with --data DIR");
    if (strcmp(o->split, "user") != 0 && strcmp(o->split, "date") != 0)
        return st_errstr(errstr, errstr_size, "--split must be user or date, not \"%s\"", o->split);
    int64_t until_ms;
    if (o->until && parse_until(o->until, &until_ms) != 0)
        return st_errstr(errstr, errstr_size,
                         "--until: \"%s\" is not an ISO-8601 time (2009-03-01T00:00:00Z) or date",
                         o->until);
    return 0;
}

static int add_offline_session(void *arg, const char *user_id, const st_session_summary_t *s)
{
    char err[256];
    if (s->length_ms > (int64_t)1e12) {
        /* Over the data set's bound (1e9 s: a track duration past any real one in the catalog):
         * skipped, as a --sessions TSV line with it is a bad line and the sessions topic's
         * consumers dead-letter it, so every source gives the same data set. */
        st_log_warn("dataset_session_skipped",
                    "user=%s start_ms=%lld length_ms=%lld "
                    "reason=\"length over 1e9 s\"",
                    user_id, (long long)s->start_ms, (long long)s->length_ms);
        return 0;
    }
    /* length_ms / 1000 is what `stint sessions` prints; the data set keeps the TSV's precision */
    if (st_dataset_add_session_ms(arg, user_id, s->start_ms, (double)s->length_ms / 1000.0,
                                  (int)s->track_count, s->unknown_duration_share, err,
                                  sizeof err) != 0) {
        st_log_error("dataset_add_failed", "user=%s error=\"%s\"", user_id, err);
        return -1;
    }
    return 0;
}

/* --data [--catalog]: st_sessions_offline straight into the data set. */
static int load_offline(st_dataset_t *ds, const train_data_opts_t *o, char *src, size_t src_size,
                        char *errstr, size_t errstr_size)
{
    st_sessions_offline_opts_t so;
    st_sessions_offline_opts_default(&so);
    so.data_path = o->data;
    so.quiet = true;
    st_catalog_stats_t cstats = {0};
    st_catalog_t *catalog = NULL;
    if (o->catalog) {
        catalog = st_catalog_load(o->catalog, &cstats, errstr, errstr_size);
        if (!catalog)
            return -1;
        so.catalog = catalog;
    } else {
        st_log_warn("dataset_no_catalog",
                    "data=%s detail=\"every track duration unknown: lengths end at the last "
                    "track's start\"",
                    o->data);
    }
    st_sessions_offline_stats_t st;
    int rc = st_sessions_offline_run(&so, add_offline_session, ds, &st, errstr, errstr_size);
    if (rc == 0)
        snprintf(src, src_size,
                 "data=%s listens=%llu duplicates=%llu malformed=%llu rejected=%llu "
                 "unknown_duration=%llu catalog_tracks=%zu catalog_duplicate_keys=%llu "
                 "catalog_rule=%s",
                 o->data, (unsigned long long)st.listens, (unsigned long long)st.duplicates,
                 (unsigned long long)st.malformed, (unsigned long long)st.rejected,
                 (unsigned long long)st.unknown_duration, catalog ? st_catalog_size(catalog) : 0,
                 (unsigned long long)(catalog ? st_catalog_duplicate_keys(catalog) : 0),
                 catalog ? ST_CATALOG_RULE : "-");
    st_catalog_destroy(catalog);
    return rc;
}

static int load_topic(st_dataset_t *ds, const train_data_opts_t *o, char *src, size_t src_size,
                      char *errstr, size_t errstr_size)
{
    st_dataset_topic_opts_t to;
    st_dataset_topic_opts_default(&to);
    to.brokers = o->brokers;
    to.topic = o->from_topic;
    to.schemas_dir = o->schemas_dir;
    to.registry_url = o->registry_url;
    to.props = o->kafka_props;
    to.nprops = o->n_kafka_props;
    st_dataset_topic_stats_t st;
    if (st_dataset_topic_load(ds, &to, &st, errstr, errstr_size) != 0)
        return -1;
    snprintf(src, src_size,
             "topic=%s records=%llu closed=%llu duplicates=%llu conflicts=%llu invalid=%llu",
             o->from_topic, (unsigned long long)st.records, (unsigned long long)st.closed,
             (unsigned long long)st.duplicates, (unsigned long long)st.conflicts,
             (unsigned long long)st.invalid);
    return 0;
}

/* The profile file: --profiles, else with --data the directory's userid-profile.tsv if present. */
static const char *profile_path(const train_data_opts_t *o, char *buf, size_t size)
{
    if (o->profiles)
        return o->profiles;
    struct stat sb;
    if (o->data && stat(o->data, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(buf, size, "%s/userid-profile.tsv", o->data);
        if (stat(buf, &sb) == 0)
            return o->data;
    }
    st_log_warn("dataset_no_profiles", "detail=\"no profile file: every profile unknown\"");
    return NULL;
}

int train_data_split(st_dataset_t *ds, const train_data_opts_t *o, uint64_t seed, char *errstr,
                     size_t errstr_size)
{
    st_dataset_split_cfg_t sc;
    st_dataset_split_default(&sc);
    sc.kind = strcmp(o->split, "date") == 0 ? ST_DATASET_SPLIT_DATE : ST_DATASET_SPLIT_USER_CUT;
    sc.test_frac = o->test_frac;
    sc.val_frac = o->val_frac;
    sc.seed = seed;
    return st_dataset_split(ds, &sc, errstr, errstr_size);
}

st_dataset_t *train_data_load(const train_data_opts_t *o, char *errstr, size_t errstr_size)
{
    if (train_data_check(o, errstr, errstr_size) != 0)
        return NULL;
    st_dataset_t *ds = st_dataset_new();
    if (!ds) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    int64_t until_ms = INT64_MAX;
    if (o->until)
        parse_until(o->until, &until_ms);
    st_dataset_set_until_ms(ds, until_ms);
    size_t bad_sessions = 0, bad_profiles = 0;
    char src[512] = "", pbuf[4096];
    int rc;
    if (o->sessions) {
        rc = st_dataset_load_sessions(ds, o->sessions, &bad_sessions, errstr, errstr_size);
        snprintf(src, sizeof src, "sessions=%s bad_session_lines=%zu", o->sessions, bad_sessions);
    } else if (o->data) {
        rc = load_offline(ds, o, src, sizeof src, errstr, errstr_size);
    } else {
        rc = load_topic(ds, o, src, sizeof src, errstr, errstr_size);
    }
    if (rc != 0)
        goto fail;
    const char *profiles = profile_path(o, pbuf, sizeof pbuf);
    if (profiles && st_dataset_load_profiles(ds, profiles, &bad_profiles, errstr, errstr_size) != 0)
        goto fail;
    if (st_dataset_finalize(ds, errstr, errstr_size) != 0 ||
        train_data_split(ds, o, (uint64_t)o->seed, errstr, errstr_size) != 0)
        goto fail;
    st_log_info("dataset_loaded",
                "%s profiles=%s bad_profile_lines=%zu sessions=%zu users=%d after_until=%zu "
                "train=%zu val=%zu test=%zu hash=%016llx",
                src, profiles ? profiles : "-", bad_profiles, st_dataset_n_rows(ds),
                st_dataset_n_users(ds), st_dataset_n_after_until(ds),
                st_dataset_count(ds, ST_DATASET_TRAIN), st_dataset_count(ds, ST_DATASET_VAL),
                st_dataset_count(ds, ST_DATASET_TEST), (unsigned long long)st_dataset_hash(ds));
    return ds;
fail:
    st_dataset_destroy(ds);
    return NULL;
}

size_t train_predict_rows(st_bundle_t *b, const st_dataset_t *ds, st_dataset_role_t role,
                          double *pred)
{
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    double rl[ST_BUNDLE_MAX_WINDOW + 1], ru[ST_BUNDLE_MAX_WINDOW + 1];
    int64_t rs[ST_BUNDLE_MAX_WINDOW + 1];
    int rt[ST_BUNDLE_MAX_WINDOW + 1];
    size_t j = 0, bad = 0;
    for (size_t i = 0; i < st_dataset_n_rows(ds); i++) {
        if (rows[i].role != role)
            continue;
        st_bundle_input_t in;
        st_bundle_input_from_row(b, ds, i, &in, rl, rs, rt, ru);
        if (st_bundle_predict(b, &in, &pred[j]) != 0) {
            st_dataset_baselines_t bl;
            st_dataset_baselines(ds, i, &bl);
            pred[j] = bl.global_median_s;
            bad++;
        }
        j++;
    }
    return bad;
}

int train_progress(void *user, const char *net, int epoch, int epochs, double loss, double val_loss,
                   double elapsed_s, double eta_s)
{
    fprintf(stderr,
            "train model=%s net=\"%s\" epoch=%d/%d loss=%.5f val_loss=%.5f elapsed_s=%.1f "
            "eta_s=%.1f\n",
            (const char *)user, net, epoch, epochs, loss, val_loss, elapsed_s, eta_s);
    return 0;
}
