/* Unit tests of the offline session builder: catalog keys = Listen.track_key, the catalog reader
 * and map (st_catalog), st_sessions_offline on a hand-written dataset (the worked example of the
 * length, gap - 1 s / gap / gap + 1 s with known and unknown durations, exact duplicates, malformed
 * lines) and the exact TSV of `stint sessions` (cmd_sessions runs in-process, stint-cli-core). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "commands.h"
#include "st_catalog.h"
#include "st_listen.h"
#include "st_log.h"
#include "st_sessions_offline.h"
#include "st_test.h"
#include "st_time.h"

static char tmp_dir[256];

/* pread of this test binary (it takes precedence over libc's for the code linked in): the
 * fail_pread_at-th call since it was set fails with EIO, as a disk error would; 0 never fails. */
static int fail_pread_at, pread_calls;

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    if (fail_pread_at > 0 && ++pread_calls == fail_pread_at) {
        errno = EIO;
        return -1;
    }
    return (ssize_t)syscall(SYS_pread64, fd, buf, n, off);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    if (!fp || fputs(text, fp) < 0 || fclose(fp) != 0)
        ST_FAIL_AT("cannot write %s", path);
}

/* The catalog's keys are the track keys st_listen puts in Listen.track_key. */
static void test_track_key(void)
{
    char path[400], errstr[256];
    snprintf(path, sizeof path, "%s/keys.jsonl", tmp_dir);
    write_file(path, "{\"artist\":\" Sigur R\xc3\xb3s \",\"track\":\"Hopp\xc3\xadpolla\","
                     "\"duration_ms\":300000}\n");
    static st_listen_t l;
    const char *json =
        "{\"user_id\":\"u\",\"timestamp\":\"2009-01-01T00:00:00Z\","
        "\"artist_name\":\"SIGUR R\xc3\xb3s\",\"track_name\":\" hopp\xc3\xadpolla\"}";
    ST_REQUIRE(st_listen_parse(json, strlen(json), st_time_wall_ms(), &l, NULL) == ST_LISTEN_OK);
    st_catalog_reader_t *r = st_catalog_reader_open(path, errstr, sizeof errstr);
    ST_REQUIRE(r != NULL);
    st_catalog_entry_t e;
    ST_REQUIRE(st_catalog_reader_next(r, &e, NULL) == 1);
    ST_EQ_STR(e.key, l.track_key);
    ST_EQ_INT(e.key_len, strlen(l.track_key));
    st_catalog_reader_destroy(r);
    st_catalog_t *c = st_catalog_load(path, NULL, errstr, sizeof errstr);
    ST_REQUIRE(c != NULL);
    int64_t d = 0;
    ST_CHECK(st_catalog_lookup_key(c, l.track_key, strlen(l.track_key), &d));
    ST_EQ_INT(d, 300000);
    st_catalog_destroy(c);
}

static void test_catalog(void)
{
    char path[400], errstr[256];
    snprintf(path, sizeof path, "%s/cat.jsonl", tmp_dir);
    write_file(path,
               "{\"artist\":\"ABBA\",\"track\":\"SOS\",\"duration_ms\":200000,\"tags\":[\"pop\","
               "\"70s\"]}\n"
               "\n"
               "not json\n"
               "{\"track\":\"no artist\",\"duration_ms\":1}\n"
               "{\"artist\":\"a\",\"track\":\"neg\",\"duration_ms\":-5}\n"
               "{\"artist\":\"a\",\"track\":\"tags\",\"duration_ms\":5,\"tags\":\"rock\"}\n"
               "[1,2]\n"
               "{\"artist\":\" abba \",\"track\":\"sos\",\"duration_ms\":1}\n"
               "{\"artist\":\"Nobody\",\"track\":\"Zero\",\"duration_ms\":0,\"tags\":[]}\n"
               "{\"artist\":\"Nobody\",\"track\":\"Null\",\"duration_ms\":null}\n"
               "{\"artist\":\"Last\",\"track\":\"Line\",\"duration_ms\":7}");
    st_catalog_reader_t *r = st_catalog_reader_open(path, errstr, sizeof errstr);
    ST_REQUIRE(r != NULL);
    st_catalog_entry_t e;
    ST_EQ_INT(st_catalog_reader_next(r, &e, NULL), 1);
    ST_EQ_STR(e.key, "abba\tsos");
    ST_EQ_INT(e.meta.duration_ms, 200000);
    ST_EQ_INT(e.meta.ntags, 2);
    if (e.meta.ntags == 2)
        ST_EQ_STR(e.meta.tags[1], "70s");
    ST_EQ_INT(e.line_no, 1);
    int good = 1;
    while (st_catalog_reader_next(r, &e, NULL) == 1)
        good++;
    ST_EQ_INT(good, 5);
    ST_EQ_INT(st_catalog_reader_stats(r)->bad, 5);
    ST_EQ_INT(st_catalog_reader_stats(r)->blank, 1);
    ST_EQ_INT(st_catalog_reader_stats(r)->lines, 11);
    st_catalog_reader_destroy(r);

    st_catalog_stats_t cs;
    st_catalog_t *c = st_catalog_load(path, &cs, errstr, sizeof errstr);
    ST_REQUIRE(c != NULL);
    ST_EQ_INT(st_catalog_size(c), 4);
    ST_EQ_INT(st_catalog_duplicates(c), 1);
    ST_EQ_INT(cs.good, 5);
    int64_t d = -1;
    ST_CHECK(st_catalog_lookup(c, "abba", 4, " SOS", 4, &d));
    ST_EQ_INT(d, 200000); /* the first line wins */
    ST_CHECK(st_catalog_lookup_key(c, "abba\tsos", 8, &d));
    ST_CHECK(st_catalog_lookup(c, "Nobody", 6, "Zero", 4, &d));
    ST_EQ_INT(d, 0);
    ST_CHECK(st_catalog_lookup(c, "NOBODY", 6, "null", 4, &d));
    ST_EQ_INT(d, 0);
    ST_CHECK(st_catalog_lookup(c, "last", 4, "line", 4, &d));
    ST_EQ_INT(d, 7);
    ST_CHECK(!st_catalog_lookup(c, "ABBA", 4, "Waterloo", 8, &d));
    ST_CHECK(!st_catalog_lookup_key(c, "abba\tsos ", 9, &d));
    st_catalog_destroy(c);
    st_catalog_destroy(NULL);
    st_catalog_reader_destroy(NULL);
    ST_CHECK(st_catalog_load("/nonexistent/cat.jsonl", NULL, errstr, sizeof errstr) == NULL);
    ST_CHECK(strstr(errstr, "/nonexistent/cat.jsonl") != NULL);
}

/* A dataset with one scenario per user. Base time 2009-01-01T00:00:00Z = 1230768000. Catalog:
 * "K - 100" lasts 100 s, "K - 200" 200 s, "K - 180" 180 s, "K - 300" 300 s; "U - x" is unknown.
 * Listens file lines are newest first within a user, as in the Last.fm 1K files. */
static const char listens_tsv[] =
    /* a: worked example: 0 (200 s), +250 (180 s), +400 (300 s): length 400 + 300 = 700 s. */
    "a\t2009-01-01T00:06:40Z\t\tK\t\t300\n"
    "a\t2009-01-01T00:04:10Z\t\tK\t\t180\n"
    "a\t2009-01-01T00:00:00Z\t\tK\t\t200\n"
    /* b: known 100 s, next start at 100 + 1800 - 1 = 1899 s: same session (length 1899). */
    "b\t2009-01-01T00:31:39Z\t\tU\t\tx\n"
    "b\t2009-01-01T00:00:00Z\t\tK\t\t100\n"
    /* c: at exactly 100 + 1800 = 1900 s: same session (length 1900). */
    "c\t2009-01-01T00:31:40Z\t\tU\t\tx\n"
    "c\t2009-01-01T00:00:00Z\t\tK\t\t100\n"
    /* d: at 1901 s: a new session; two sessions of length 100 and 0. */
    "d\t2009-01-01T00:31:41Z\t\tU\t\tx\n"
    "d\t2009-01-01T00:00:00Z\t\tK\t\t100\n"
    /* e: unknown duration, next at 1799 s and then 1800 s later: one session (3599 s). */
    "e\t2009-01-01T00:59:59Z\t\tU\t\tx\n"
    "e\t2009-01-01T00:29:59Z\t\tU\t\tx\n"
    "e\t2009-01-01T00:00:00Z\t\tU\t\ty\n"
    /* f: unknown duration, next at 1801 s: two sessions of length 0. */
    "f\t2009-01-01T00:30:01Z\t\tU\t\tx\n"
    "f\t2009-01-01T00:00:00Z\t\tU\t\ty\n"
    /* g: an exact duplicate row (counted once) and a malformed line. */
    "g\t2009-01-01T00:05:00Z\t\tK\t\t100\n"
    "g\tnot a row\n"
    "g\t2009-01-01T00:00:00Z\t\tK\t\t300\n"
    "g\t2009-01-01T00:00:00Z\t\tK\t\t300\n";

static const char catalog_jsonl[] = "{\"artist\":\"K\",\"track\":\"100\",\"duration_ms\":100000}\n"
                                    "{\"artist\":\"K\",\"track\":\"180\",\"duration_ms\":180000}\n"
                                    "{\"artist\":\"k\",\"track\":\"200\",\"duration_ms\":200000}\n"
                                    "{\"artist\":\"K\",\"track\":\"300\",\"duration_ms\":300000}\n";

static const char expected_tsv[] = "a\t1230768000\t700.000\t3\t0.0000\n"
                                   "b\t1230768000\t1899.000\t2\t0.5000\n"
                                   "c\t1230768000\t1900.000\t2\t0.5000\n"
                                   "d\t1230768000\t100.000\t1\t0.0000\n"
                                   "d\t1230769901\t0.000\t1\t1.0000\n"
                                   "e\t1230768000\t3599.000\t3\t1.0000\n"
                                   "f\t1230768000\t0.000\t1\t1.0000\n"
                                   "f\t1230769801\t0.000\t1\t1.0000\n"
                                   "g\t1230768000\t400.000\t2\t0.0000\n";

typedef struct {
    int n;
    char users[16][8];
    st_session_summary_t s[16];
} collected_t;

static int collect(void *arg, const char *user_id, const st_session_summary_t *s)
{
    collected_t *c = arg;
    if (c->n < 16) {
        snprintf(c->users[c->n], sizeof c->users[c->n], "%s", user_id);
        c->s[c->n] = *s;
    }
    c->n++;
    return 0;
}

static int stop_early(void *arg, const char *user_id, const st_session_summary_t *s)
{
    (void)user_id;
    (void)s;
    return ++*(int *)arg >= 2;
}

static void test_offline_rule(void)
{
    char data[400], cat_path[400], errstr[256];
    snprintf(data, sizeof data, "%s/data", tmp_dir);
    mkdir(data, 0777);
    char listens[500];
    snprintf(listens, sizeof listens, "%s/%s", data, ST_LASTFM_LISTENS_FILE);
    write_file(listens, listens_tsv);
    snprintf(cat_path, sizeof cat_path, "%s/tracks.jsonl", tmp_dir);
    write_file(cat_path, catalog_jsonl);
    st_catalog_t *cat = st_catalog_load(cat_path, NULL, errstr, sizeof errstr);
    ST_REQUIRE(cat != NULL);

    st_sessions_offline_opts_t o;
    st_sessions_offline_opts_default(&o);
    o.data_path = data;
    o.catalog = cat;
    o.quiet = true;
    collected_t c = {0};
    st_sessions_offline_stats_t st;
    ST_REQUIRE(st_sessions_offline_run(&o, collect, &c, &st, errstr, sizeof errstr) == 0);
    ST_EQ_INT(c.n, 9);
    ST_EQ_INT(st.sessions, 9);
    ST_EQ_INT(st.users, 7);
    ST_EQ_INT(st.listens, 17);
    ST_EQ_INT(st.duplicates, 1);
    ST_EQ_INT(st.malformed, 1);
    ST_EQ_INT(st.rejected, 0);
    ST_EQ_INT(st.unknown_duration, 8);
    /* The worked example, field by field. */
    ST_EQ_STR(c.users[0], "a");
    ST_EQ_INT(c.s[0].start_ms, 1230768000000LL);
    ST_EQ_INT(c.s[0].last_start_ms, 1230768400000LL);
    ST_EQ_INT(c.s[0].end_ms, 1230768700000LL);
    ST_EQ_INT(c.s[0].length_ms, 700000);
    ST_EQ_INT(c.s[0].track_count, 3);
    ST_EQ_INT(c.s[0].unknown_duration_count, 0);

    /* Reference point "start": d's gap is measured from the track's start, 1901 s > 1800 s, as
     * before; but b (1899 s) and c (1900 s) now split too. */
    o.rule.ref = ST_SESSION_REF_START;
    collected_t c2 = {0};
    ST_REQUIRE(st_sessions_offline_run(&o, collect, &c2, NULL, errstr, sizeof errstr) == 0);
    ST_EQ_INT(c2.n, 11);

    /* Without a catalog every duration is unknown: a's three listens stay one session of 400 s. */
    st_sessions_offline_opts_default(&o);
    o.data_path = data;
    o.quiet = true;
    collected_t c3 = {0};
    ST_REQUIRE(st_sessions_offline_run(&o, collect, &c3, &st, errstr, sizeof errstr) == 0);
    ST_EQ_INT(c3.s[0].length_ms, 400000);
    ST_CHECK(c3.s[0].unknown_duration_share == 1.0);
    ST_EQ_INT(st.unknown_duration, st.listens);

    int calls = 0;
    ST_EQ_INT(st_sessions_offline_run(&o, stop_early, &calls, NULL, errstr, sizeof errstr), -1);
    ST_EQ_INT(calls, 2);
    o.data_path = "/nonexistent";
    ST_EQ_INT(st_sessions_offline_run(&o, collect, &c3, NULL, errstr, sizeof errstr), -1);
    st_catalog_destroy(cat);
}

/* A read error anywhere in a user's listens, at its first chunk or in the middle (a user of
 * ~150 KB is read in 32 KiB chunks), fails the run with the error; it never ends as a shorter
 * success. */
static void test_read_error(void)
{
    char data[400], listens[500], errstr[256];
    snprintf(data, sizeof data, "%s/big", tmp_dir);
    mkdir(data, 0777);
    snprintf(listens, sizeof listens, "%s/%s", data, ST_LASTFM_LISTENS_FILE);
    FILE *fp = fopen(listens, "w");
    ST_REQUIRE(fp != NULL);
    for (int i = 3000; i > 0; i--) /* newest first, as the Last.fm 1K file; ~50 bytes a line */
        fprintf(fp, "u\t2009-01-%02dT%02d:%02d:00Z\t\tArtist\t\tTrack %d\n", 1 + i / 1440,
                i / 60 % 24, i % 60, i);
    ST_REQUIRE(fclose(fp) == 0);
    st_sessions_offline_opts_t o;
    st_sessions_offline_opts_default(&o);
    o.data_path = data;
    o.quiet = true;
    int failed_runs = 0;
    for (int at = 1;; at++) {
        fail_pread_at = at;
        pread_calls = 0;
        collected_t c = {0};
        errstr[0] = '\0';
        int rc = st_sessions_offline_run(&o, collect, &c, NULL, errstr, sizeof errstr);
        int calls = pread_calls;
        fail_pread_at = 0;
        if (calls < at) { /* no failure injected: the whole file was read */
            ST_EQ_INT(rc, 0);
            ST_EQ_INT(c.n, 1);
            break;
        }
        ST_EQ_INT(rc, -1);
        ST_CHECK(strstr(errstr, "Input/output error") != NULL);
        failed_runs++;
    }
    ST_CHECK(failed_runs >= 3); /* at least one read in the middle of the user */
}

static void test_cmd_sessions_tsv(void)
{
    char data[400], cat_path[400], out[400];
    snprintf(data, sizeof data, "%s/data", tmp_dir);
    snprintf(cat_path, sizeof cat_path, "%s/tracks.jsonl", tmp_dir);
    snprintf(out, sizeof out, "%s/sessions.tsv", tmp_dir);
    char *argv[] = {"sessions", "--data", data,      "--catalog", cat_path,
                    "--out",    out,      "--quiet", NULL};
    ST_EQ_INT(cmd_sessions(8, argv), 0);
    FILE *fp = fopen(out, "r");
    ST_REQUIRE(fp != NULL);
    char got[2048] = "";
    size_t n = fread(got, 1, sizeof got - 1, fp);
    got[n] = '\0';
    fclose(fp);
    ST_EQ_STR(got, expected_tsv);

    char *bad_ref[] = {"sessions", "--data", data, "--out", out, "--ref", "middle", NULL};
    ST_EQ_INT(cmd_sessions(7, bad_ref), 2);
    char *no_out[] = {"sessions", "--data", data, NULL};
    ST_EQ_INT(cmd_sessions(3, no_out), 2);
    char *bad_cat[] = {"sessions", "--data", data, "--catalog", "/nonexistent", "--out", out, NULL};
    ST_EQ_INT(cmd_sessions(7, bad_cat), 1);

    /* A run that fails leaves nothing at --out (not a truncated TSV) and no temporary file. */
    char failed_out[400];
    snprintf(failed_out, sizeof failed_out, "%s/failed.tsv", tmp_dir);
    char *fails[] = {"sessions", "--data", data, "--out", failed_out, "--quiet", NULL};
    fail_pread_at = 1;
    pread_calls = 0;
    ST_EQ_INT(cmd_sessions(6, fails), 1);
    fail_pread_at = 0;
    ST_CHECK(access(failed_out, F_OK) != 0);
    char ls[600];
    snprintf(ls, sizeof ls, "ls %s | grep -q tmp-", tmp_dir);
    ST_CHECK(system(ls) != 0);
    /* A device is written in place; its error is named. */
    char *full[] = {"sessions", "--data", data, "--out", "/dev/full", "--quiet", NULL};
    ST_EQ_INT(cmd_sessions(6, full), 1);
}

int main(void)
{
    st_log_init("test_sessions_offline");
    st_log_set_level(ST_LOG_ERROR);
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/stint-sessions-offline-%d", (int)getpid());
    if (mkdir(tmp_dir, 0777) != 0) {
        perror(tmp_dir);
        return 1;
    }
    ST_RUN(test_track_key);
    ST_RUN(test_catalog);
    ST_RUN(test_offline_rule);
    ST_RUN(test_read_error);
    ST_RUN(test_cmd_sessions_tsv);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
    if (system(cmd) != 0)
        printf("could not remove %s\n", tmp_dir);
    return st_test_summary();
}
