/* Unit tests of `stint gen`: same seed -> identical bytes; the files parse with st_lastfm with
 * exactly the planted malformed lines; the planted sessions come back under the session rule;
 * the catalog and the summary agree. cmd_gen runs in-process (stint-cli-core). */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_gen.h"
#include "commands.h"

#include <jansson.h>
#include <unistd.h>

#include "st_log.h"
#include "st_merge.h"
#include "st_test.h"

static char tmp_dir[256];

static int run_gen(const char *sub, const char *seed)
{
    char out[512];
    snprintf(out, sizeof out, "%s/%s", tmp_dir, sub);
    char *argv[] = {"gen",    "--users",    "12",    "--days", "40",
                    "--seed", (char *)seed, "--out", out,      NULL};
    return cmd_gen(9, argv);
}

static bool same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb)
            same = false;
        if (ca == EOF || cb == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

static void path_of(char *buf, size_t size, const char *sub, const char *file)
{
    snprintf(buf, size, "%s/%s/%s", tmp_dir, sub, file);
}

/* The four files every run writes are byte-identical in the runs sub_a and sub_b. */
static void expect_same_outputs(const char *sub_a, const char *sub_b, const char *why)
{
    static const char *const files[] = {ST_LASTFM_LISTENS_FILE, ST_LASTFM_PROFILES_FILE,
                                        GEN_CATALOG_FILE, GEN_SUMMARY_FILE};
    for (size_t i = 0; i < 4; i++) {
        char pa[600], pb[600];
        path_of(pa, sizeof pa, sub_a, files[i]);
        path_of(pb, sizeof pb, sub_b, files[i]);
        if (!same_file(pa, pb))
            ST_FAIL_AT("%s differs %s", files[i], why);
    }
}

static void test_same_seed_same_bytes(void)
{
    ST_REQUIRE(run_gen("a", "5") == 0);
    ST_REQUIRE(run_gen("b", "5") == 0);
    ST_REQUIRE(run_gen("c", "6") == 0);
    expect_same_outputs("a", "b", "between two runs with the same seed");
    char pa[600], pc[600];
    path_of(pa, sizeof pa, "a", ST_LASTFM_LISTENS_FILE);
    path_of(pc, sizeof pc, "c", ST_LASTFM_LISTENS_FILE);
    ST_CHECK(!same_file(pa, pc));
}

static json_t *summary(void)
{
    char p[600];
    path_of(p, sizeof p, "a", GEN_SUMMARY_FILE);
    return json_load_file(p, 0, NULL);
}

static long long jint(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static void test_parses_with_planted_malformed(void)
{
    json_t *s = summary();
    ST_REQUIRE(s != NULL);
    char dir[600], err[256];
    snprintf(dir, sizeof dir, "%s/a", tmp_dir);
    st_lastfm_reader_t *r = st_lastfm_reader_open(dir, ST_LASTFM_LISTENS, err, sizeof err);
    ST_REQUIRE(r != NULL);
    st_lastfm_reader_set_log_limit(r, 0);
    st_lastfm_listen_t l;
    uint64_t empty_artist_mbid = 0;
    while (st_lastfm_reader_next_listen(r, &l, NULL) == 1)
        empty_artist_mbid += l.artist_mbid.len == 0;
    const st_lastfm_stats_t *st = st_lastfm_reader_stats(r);
    ST_EQ_INT(st->good, jint(s, "listens"));
    ST_EQ_INT(st->bad, jint(s, "malformed_listen_lines"));
    ST_EQ_INT(st->bad, 5 * (1 + 12 / 100));
    json_t *by = json_object_get(s, "malformed_listen_by_reason");
    for (int k = 1; k < ST_LASTFM_REASON_COUNT; k++)
        ST_EQ_INT(st->by_reason[k], jint(by, st_lastfm_reason_name((st_lastfm_reason_t)k)));
    ST_CHECK(empty_artist_mbid > 0);
    ST_CHECK(jint(s, "duplicates") > 0);
    st_lastfm_reader_destroy(r);

    r = st_lastfm_reader_open(dir, ST_LASTFM_PROFILES, err, sizeof err);
    ST_REQUIRE(r != NULL);
    st_lastfm_reader_set_log_limit(r, 0);
    st_lastfm_profile_t p;
    int no_age = 0;
    while (st_lastfm_reader_next_profile(r, &p, NULL) == 1)
        no_age += p.age < 0;
    ST_EQ_INT(st_lastfm_reader_stats(r)->good, 12);
    ST_EQ_INT(st_lastfm_reader_stats(r)->bad, jint(s, "malformed_profile_lines"));
    ST_CHECK(no_age > 0);
    st_lastfm_reader_destroy(r);
    json_decref(s);
}

/* Per user in ascending time, a start-to-start gap over 1800 s starts a session: by construction
 * (in-session steps stay under it, sessions are separated by more than 1800 s after the last
 * track's end) this recovers exactly the planted sessions. */
static void test_planted_sessions_recovered(void)
{
    json_t *s = summary();
    ST_REQUIRE(s != NULL);
    char dir[600], err[256];
    snprintf(dir, sizeof dir, "%s/a", tmp_dir);
    st_merge_opts_t opts = {.quiet = true};
    st_merge_t *m = st_merge_open(dir, &opts, err, sizeof err);
    ST_REQUIRE(m != NULL);
    const char *user;
    st_lastfm_listen_t l;
    long long sessions = 0, listens = 0, backwards = 0;
    while (st_merge_next_user(m, &user, NULL) == 1) {
        int64_t prev = INT64_MIN;
        while (st_merge_next_in_user(m, &l, NULL) == 1) {
            if (prev == INT64_MIN || l.ts_ms - prev > GEN_SESSION_GAP_S * 1000LL)
                sessions++;
            backwards += prev != INT64_MIN && l.ts_ms < prev;
            prev = l.ts_ms;
            listens++;
        }
    }
    ST_EQ_INT(sessions, jint(s, "sessions"));
    ST_EQ_INT(listens, jint(s, "listens"));
    ST_EQ_INT(backwards, 0);
    ST_EQ_INT(st_merge_stats(m)->users, 12);
    ST_EQ_INT(st_merge_stats(m)->inversions, 0);
    st_merge_destroy(m);
    json_decref(s);
}

/* Lower-cased "artist\ttrack" (the track key) of a catalog entry or a listen. */
static void track_key(char *buf, size_t size, const char *artist, size_t artist_len,
                      const char *track, size_t track_len)
{
    snprintf(buf, size, "%.*s\t%.*s", (int)artist_len, artist, (int)track_len, track);
    for (char *p = buf; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
}

/* The sessions test_design_rule_with_catalog found in "a": "user\tstart_s\tlength_ms\n" each,
 * for test_truth. */
static char *rule_sessions;
static size_t rule_sessions_len;

/* The session rule of DESIGN.md with the catalog's durations (unknown when missing or 0): the
 * same planted sessions come back. */
static void test_design_rule_with_catalog(void)
{
    json_t *s = summary(), *durations = json_object();
    ST_REQUIRE(s != NULL);
    char p[600], key[4200], line[8192], err[256];
    path_of(p, sizeof p, "a", GEN_CATALOG_FILE);
    FILE *fp = fopen(p, "rb");
    ST_REQUIRE(fp != NULL);
    while (fgets(line, sizeof line, fp)) {
        json_t *o = json_loads(line, 0, NULL);
        const char *artist = json_string_value(json_object_get(o, "artist"));
        const char *track = json_string_value(json_object_get(o, "track"));
        if (artist && track) {
            track_key(key, sizeof key, artist, strlen(artist), track, strlen(track));
            json_object_set(durations, key, json_object_get(o, "duration_ms"));
        }
        json_decref(o);
    }
    fclose(fp);
    snprintf(p, sizeof p, "%s/a", tmp_dir);
    st_merge_opts_t opts = {.quiet = true};
    st_merge_t *m = st_merge_open(p, &opts, err, sizeof err);
    ST_REQUIRE(m != NULL);
    const char *user;
    st_lastfm_listen_t l;
    long long sessions = 0, unknown = 0, listens = 0;
    FILE *found = open_memstream(&rule_sessions, &rule_sessions_len);
    ST_REQUIRE(found != NULL);
    while (st_merge_next_user(m, &user, NULL) == 1) {
        int64_t prev_ms = INT64_MIN, prev_d_ms = 0, first_ms = 0;
        while (st_merge_next_in_user(m, &l, NULL) == 1) {
            track_key(key, sizeof key, l.artist_name.ptr, l.artist_name.len, l.track_name.ptr,
                      l.track_name.len);
            int64_t d_ms = json_integer_value(json_object_get(durations, key));
            unknown += d_ms == 0;
            listens++;
            /* The gap only after a first listen (INT64_MIN - x overflows: UBSan). */
            int64_t gap_ms = prev_ms != INT64_MIN ? l.ts_ms - prev_ms : 0;
            bool same = prev_ms != INT64_MIN &&
                        (prev_d_ms > 0 ? gap_ms <= prev_d_ms || gap_ms - prev_d_ms <= 1800000
                                       : gap_ms <= 1800000);
            sessions += !same;
            if (!same && prev_ms != INT64_MIN)
                fprintf(found, "%s\t%lld\t%lld\n", user, (long long)(first_ms / 1000),
                        (long long)(prev_ms - first_ms + prev_d_ms));
            if (!same)
                first_ms = l.ts_ms;
            prev_ms = l.ts_ms;
            prev_d_ms = d_ms;
        }
        if (prev_ms != INT64_MIN)
            fprintf(found, "%s\t%lld\t%lld\n", user, (long long)(first_ms / 1000),
                    (long long)(prev_ms - first_ms + prev_d_ms));
    }
    ST_REQUIRE(fclose(found) == 0);
    ST_EQ_INT(sessions, jint(s, "sessions"));
    ST_EQ_INT(unknown, jint(s, "unknown_duration"));
    ST_EQ_INT(listens, jint(s, "listens"));
    st_merge_destroy(m);
    json_decref(durations);
    json_decref(s);
}

static void test_catalog_and_unknown_durations(void)
{
    json_t *s = summary();
    ST_REQUIRE(s != NULL);
    char p[600];
    path_of(p, sizeof p, "a", GEN_CATALOG_FILE);
    FILE *fp = fopen(p, "rb");
    ST_REQUIRE(fp != NULL);
    char line[8192];
    long long n = 0, zero = 0, no_tags = 0, bad = 0;
    while (fgets(line, sizeof line, fp)) {
        json_t *o = json_loads(line, 0, NULL);
        if (!o || !json_is_string(json_object_get(o, "artist")) ||
            !json_is_string(json_object_get(o, "track")) ||
            !json_is_integer(json_object_get(o, "duration_ms")) ||
            !json_is_array(json_object_get(o, "tags"))) {
            bad++;
        } else {
            zero += json_integer_value(json_object_get(o, "duration_ms")) == 0;
            no_tags += json_array_size(json_object_get(o, "tags")) == 0;
        }
        json_decref(o);
        n++;
    }
    fclose(fp);
    ST_EQ_INT(bad, 0);
    ST_EQ_INT(n, jint(s, "catalog_tracks"));
    ST_CHECK(n < jint(s, "tracks")); /* some tracks are left out */
    ST_CHECK(zero > 0);
    ST_CHECK(no_tags > 0);
    double unknown = (double)jint(s, "unknown_duration") / (double)jint(s, "listens");
    ST_CHECK(unknown > 0.12 && unknown < 0.28);
    json_decref(s);
}

/* --truth adds GEN_TRUTH_FILE and changes nothing else: a line per planted session, in the
 * users' order and time order, whose start and length are what the session rule measures on the
 * listens, each mood the AR(1) chain's next step after the one before. */
static void test_truth(void)
{
    char out[512];
    snprintf(out, sizeof out, "%s/t", tmp_dir);
    char *argv[] = {"gen", "--users", "12",    "--days", "40", "--seed",
                    "5",   "--truth", "--out", out,      NULL};
    ST_REQUIRE(cmd_gen(10, argv) == 0);
    expect_same_outputs("a", "t", "with --truth");
    ST_REQUIRE(rule_sessions != NULL);
    char p[600], line[1024], prev_user[64] = "";
    path_of(p, sizeof p, "t", GEN_TRUTH_FILE);
    FILE *fp = fopen(p, "rb");
    ST_REQUIRE(fp != NULL);
    ST_REQUIRE(fgets(line, sizeof line, fp) != NULL);
    static const char head[] = "user\tsession_start\tlength_s\t";
    ST_CHECK(strncmp(line, head, sizeof head - 1) == 0);
    const char *want = rule_sessions;
    long long n = 0, tails = 0, chain_breaks = 0, bad = 0;
    double prev_mood_out = 0;
    while (fgets(line, sizeof line, fp)) {
        char user[64];
        long long start;
        double length_s, target_s, level, hour_eff, mu, type_mu, mood_in, mood_out, phi, mood_sd,
            noise_sd, p_tail;
        int tail;
        if (sscanf(line, "%63s %lld %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %d", user,
                   &start, &length_s, &target_s, &level, &hour_eff, &mu, &type_mu, &mood_in,
                   &mood_out, &phi, &mood_sd, &noise_sd, &p_tail, &tail) != 15) {
            bad++;
            continue;
        }
        char expect[128];
        snprintf(expect, sizeof expect, "%s\t%lld\t%lld\n", user, start,
                 (long long)(length_s * 1000 + 0.5));
        if (strncmp(want, expect, strlen(expect)) != 0) {
            ST_FAIL_AT("truth line %lld (%.*s) is not the rule's session %.*s", n + 1,
                       (int)strcspn(expect, "\n"), expect, (int)strcspn(want, "\n"), want);
            break;
        }
        want += strlen(expect);
        /* Each session's mood before is the previous session's after, within a user. */
        chain_breaks += !strcmp(user, prev_user) && mood_in != prev_mood_out;
        /* the level is the base, the hour effect and the gap term (within 0.12 x log1p(gap)) */
        bad += !(fabs(level - mu - hour_eff) < 2 && fabs(hour_eff) <= 0.6);
        bad += !(target_s > 0 && phi >= 0.45 && phi <= 0.8 && noise_sd >= 0.55 && noise_sd <= 0.8 &&
                 p_tail >= 0.02 && p_tail <= 0.05 && (tail == 0 || tail == 1));
        tails += tail;
        snprintf(prev_user, sizeof prev_user, "%s", user);
        prev_mood_out = mood_out;
        n++;
    }
    fclose(fp);
    json_t *s = summary();
    ST_REQUIRE(s != NULL);
    ST_EQ_INT(n, jint(s, "sessions"));
    ST_CHECK(*want == '\0');
    ST_EQ_INT(bad, 0);
    ST_EQ_INT(chain_breaks, 0);
    ST_CHECK(tails < n / 5);
    json_decref(s);
}

static void test_usage_errors(void)
{
    char *no_out[] = {"gen", "--users", "3", NULL};
    char *zero_users[] = {"gen", "--users", "0", "--out", "/tmp/x", NULL};
    char *unknown[] = {"gen", "--colour", "red", NULL};
    char *help[] = {"gen", "-h", NULL};
    ST_EQ_INT(cmd_gen(3, no_out), 2);
    ST_EQ_INT(cmd_gen(5, zero_users), 2);
    ST_EQ_INT(cmd_gen(3, unknown), 2);
    ST_EQ_INT(cmd_gen(2, help), 0);
}

static void remove_dir(const char *sub)
{
    static const char *const files[] = {ST_LASTFM_LISTENS_FILE, ST_LASTFM_PROFILES_FILE,
                                        GEN_CATALOG_FILE, GEN_SUMMARY_FILE, GEN_TRUTH_FILE};
    char p[600];
    for (size_t i = 0; i < 5; i++) {
        path_of(p, sizeof p, sub, files[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/%s", tmp_dir, sub);
    rmdir(p);
}

int main(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "%s/stint-gen-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    st_log_set_level(ST_LOG_ERROR);
    ST_RUN(test_same_seed_same_bytes);
    ST_RUN(test_parses_with_planted_malformed);
    ST_RUN(test_planted_sessions_recovered);
    ST_RUN(test_design_rule_with_catalog);
    ST_RUN(test_catalog_and_unknown_durations);
    ST_RUN(test_truth);
    ST_RUN(test_usage_errors);
    free(rule_sessions);
    remove_dir("a");
    remove_dir("b");
    remove_dir("c");
    remove_dir("t");
    rmdir(tmp_dir);
    return st_test_summary();
}
