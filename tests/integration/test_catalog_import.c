/* Integration: `stint catalog import` applies the catalog's one rule for a key named more than
 * once (ST_CATALOG_RULE, the rule of st_catalog_load): after the import, the Redis track cache
 * holds for every key of the file the entry the offline map keeps (duration, and the winner's
 * tags), and the summary reports the duplicated keys and the rule. A re-import of the same file
 * changes nothing; the file replaces what the cache held for its keys (a Last.fm entry, an
 * earlier import) and leaves other keys alone; standard input ("-") reads the same. Real Redis;
 * a unique prefix, removed at the end. */
#include <hiredis/hiredis.h>
#include <sys/stat.h>

#include "st_catalog.h"
#include "st_itest.h"
#include "st_log.h"
#include "st_test.h"
#include "st_trackmeta.h"

static char prefix[160], dir[300];

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    if (!fp || fputs(text, fp) < 0 || fclose(fp) != 0)
        ST_FAIL_AT("cannot write %s", path);
}

/* Runs `stint catalog import` on path (stdin_path: `... -` with that file on standard input);
 * the summary line into out. Returns the exit code. */
static int run_import(const char *path, bool stdin_path, char *out, size_t out_size)
{
    char cmd[2048], line[2048];
    if (stdin_path)
        snprintf(cmd, sizeof cmd,
                 "%s/stint catalog import --redis.port %d --redis.prefix %s - < %s",
                 itest_bin_dir(), itest_redis_port(), prefix, path);
    else
        snprintf(cmd, sizeof cmd, "%s/stint catalog import --redis.port %d --redis.prefix %s %s",
                 itest_bin_dir(), itest_redis_port(), prefix, path);
    FILE *p = popen(cmd, "r");
    out[0] = '\0';
    while (p && fgets(line, sizeof line, p))
        if (strncmp(line, "catalog import:", 15) == 0)
            snprintf(out, out_size, "%s", line);
    int rc = p ? pclose(p) : -1;
    printf("     %s", out);
    return rc;
}

/* The cache entry of (artist, track): 1 found, 0 none, -1 error. */
static int cache_get(redisContext *rc, const char *artist, const char *track, st_trackmeta_t *m)
{
    char key[256], rkey[ST_TRACKMETA_REDIS_KEY_SIZE];
    int klen = st_trackmeta_key(artist, strlen(artist), track, strlen(track), key, sizeof key);
    if (klen < 0 || st_trackmeta_redis_key(prefix, key, (size_t)klen, rkey, sizeof rkey) < 0)
        return -1;
    redisReply *r =
        redisCommand(rc, "HMGET %s track_key source duration_ms tags expires_at_ms", rkey);
    int got = st_trackmeta_parse_lookup(r, key, (size_t)klen, st_time_wall_ms(), m);
    if (r)
        freeReplyObject(r);
    return got;
}

/* A Last.fm entry, as the enricher's fetcher writes one. */
static void put_lastfm(redisContext *rc, const char *artist, const char *track, int64_t d)
{
    char key[256], rkey[ST_TRACKMETA_REDIS_KEY_SIZE];
    int klen = st_trackmeta_key(artist, strlen(artist), track, strlen(track), key, sizeof key);
    st_trackmeta_redis_key(prefix, key, (size_t)klen, rkey, sizeof rkey);
    redisReply *r = redisCommand(rc, "HSET %s track_key %b source LASTFM duration_ms %lld tags x",
                                 rkey, key, (size_t)klen, (long long)d);
    if (r)
        freeReplyObject(r);
}

/* Every key of the file: the cache holds the duration the offline map (st_catalog_load) holds,
 * from a CATALOG entry. Returns the number of keys compared. */
static int check_cache_equals_offline(redisContext *rc, const char *path)
{
    char errstr[256];
    st_catalog_t *c = st_catalog_load(path, NULL, errstr, sizeof errstr);
    st_catalog_reader_t *r = st_catalog_reader_open(path, errstr, sizeof errstr);
    if (!c || !r) {
        ST_FAIL_AT("loading %s: %s", path, errstr);
        st_catalog_destroy(c);
        st_catalog_reader_destroy(r);
        return 0;
    }
    st_catalog_entry_t e;
    int n = 0;
    while (st_catalog_reader_next(r, &e, NULL) == 1) {
        char rkey[ST_TRACKMETA_REDIS_KEY_SIZE];
        st_trackmeta_redis_key(prefix, e.key, e.key_len, rkey, sizeof rkey);
        redisReply *rep =
            redisCommand(rc, "HMGET %s track_key source duration_ms tags expires_at_ms", rkey);
        st_trackmeta_t m;
        int got = st_trackmeta_parse_lookup(rep, e.key, e.key_len, st_time_wall_ms(), &m);
        if (rep)
            freeReplyObject(rep);
        int64_t want = -1;
        st_catalog_lookup_key(c, e.key, e.key_len, &want);
        if (got != 1 || m.source != ST_TRACKMETA_CATALOG ||
            (m.duration_ms > 0 ? m.duration_ms : 0) != want)
            ST_FAIL_AT("line %llu: cache %d source %d duration %lld, offline %lld",
                       (unsigned long long)e.line_no, got, (int)m.source, (long long)m.duration_ms,
                       (long long)want);
        n++;
    }
    st_catalog_reader_destroy(r);
    st_catalog_destroy(c);
    return n;
}

static const char catalog_a[] =
    "{\"artist\":\"Air\",\"track\":\"Playground Love\",\"duration_ms\":210000,\"tags\":[\"a1\"]}\n"
    "{\"artist\":\"AIR \",\"track\":\"playground love\",\"duration_ms\":199000,\"tags\":[\"a2\"]}\n"
    "{\"artist\":\"Blur\",\"track\":\"Song 2\",\"duration_ms\":0,\"tags\":[\"b1\"]}\n"
    "not json\n"
    "{\"artist\":\"blur\",\"track\":\"song 2\",\"duration_ms\":122000,\"tags\":[\"b2\",\"b3\"]}\n"
    "{\"artist\":\"Blur\",\"track\":\"Song 2\",\"duration_ms\":130000,\"tags\":[\"b4\"]}\n"
    "{\"artist\":\"Can\",\"track\":\"Vitamin C\",\"duration_ms\":215000}\n"
    "{\"artist\":\"Can\",\"track\":\"Vitamin C\",\"tags\":[\"c2\"]}\n"
    "{\"artist\":\"Dido\",\"track\":\"none\",\"duration_ms\":null,\"tags\":[\"d1\"]}\n"
    "{\"artist\":\"dido\",\"track\":\"NONE\",\"duration_ms\":0,\"tags\":[\"d2\"]}\n"
    "{\"artist\":\"Eno\",\"track\":\"1/1\",\"duration_ms\":1000}\n";

#define SUMMARY_A                                                                                  \
    "tracks=5 bad_lines=1 bad_line_numbers=4 duplicate_keys=4 duplicate_lines=5 "                  \
    "rule=first-with-duration writes=6 "

static void test_import_rule(void)
{
    char path[400], out[2048];
    snprintf(path, sizeof path, "%s/a.jsonl", dir);
    write_file(path, catalog_a);
    redisContext *rc = itest_redis();
    put_lastfm(rc, "Blur", "Song 2", 999000); /* in the file: the file's entry replaces it */
    put_lastfm(rc, "Zappa", "Peaches", 5000); /* not in the file: left alone */

    ST_EQ_INT(run_import(path, false, out, sizeof out), 0);
    ST_CHECK(strstr(out, SUMMARY_A) != NULL);
    ST_EQ_INT(check_cache_equals_offline(rc, path), 10);
    st_trackmeta_t m;
    ST_EQ_INT(cache_get(rc, "Air", "Playground Love", &m), 1);
    ST_EQ_INT(m.duration_ms, 210000);
    ST_EQ_INT(m.ntags, 1);
    ST_EQ_STR(m.tags[0], "a1");
    ST_EQ_INT(cache_get(rc, "Blur", "Song 2", &m), 1); /* the whole winning entry, its tags too */
    ST_EQ_INT(m.source, ST_TRACKMETA_CATALOG);
    ST_EQ_INT(m.duration_ms, 122000);
    ST_EQ_INT(m.ntags, 2);
    ST_EQ_STR(m.tags[1], "b3");
    ST_EQ_INT(cache_get(rc, "Can", "Vitamin C", &m), 1);
    ST_EQ_INT(m.duration_ms, 215000);
    ST_EQ_INT(m.ntags, 0);
    ST_EQ_INT(cache_get(rc, "Dido", "None", &m), 1);
    ST_EQ_INT(m.duration_ms, -1);
    ST_EQ_STR(m.tags[0], "d1");
    ST_EQ_INT(cache_get(rc, "Zappa", "Peaches", &m), 1);
    ST_EQ_INT(m.source, ST_TRACKMETA_LASTFM);
    ST_EQ_INT(m.duration_ms, 5000);

    /* Again, and from standard input: the same writes, the same cache. */
    ST_EQ_INT(run_import(path, false, out, sizeof out), 0);
    ST_CHECK(strstr(out, SUMMARY_A) != NULL);
    ST_EQ_INT(check_cache_equals_offline(rc, path), 10);
    ST_EQ_INT(run_import(path, true, out, sizeof out), 0);
    ST_CHECK(strstr(out, "file=- " SUMMARY_A) != NULL);
    ST_EQ_INT(check_cache_equals_offline(rc, path), 10);

    /* Another file naming Air without a duration: it is the file's entry now (the cache is not
     * merged with what an earlier import left); the other keys keep the first file's entries. */
    char path_b[400];
    snprintf(path_b, sizeof path_b, "%s/b.jsonl", dir);
    write_file(path_b, "{\"artist\":\"air\",\"track\":\"Playground Love\"}\n");
    ST_EQ_INT(run_import(path_b, false, out, sizeof out), 0);
    ST_CHECK(strstr(out, "tracks=1 bad_lines=0 duplicate_keys=0 duplicate_lines=0 "
                         "rule=first-with-duration writes=1 ") != NULL);
    ST_EQ_INT(check_cache_equals_offline(rc, path_b), 1);
    ST_EQ_INT(cache_get(rc, "Air", "Playground Love", &m), 1);
    ST_EQ_INT(m.duration_ms, -1);
    ST_EQ_INT(cache_get(rc, "Blur", "Song 2", &m), 1);
    ST_EQ_INT(m.duration_ms, 122000);
    redisFree(rc);
}

int main(void)
{
    st_log_init("test_catalog_import");
    itest_unique(prefix, sizeof prefix, "it:catimport");
    snprintf(dir, sizeof dir, "/tmp/stint-catimport-%d", (int)getpid());
    if (mkdir(dir, 0777) != 0) {
        perror(dir);
        return 1;
    }
    ST_RUN(test_import_rule);
    itest_redis_unlink_prefix(prefix);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        printf("could not remove %s\n", dir);
    return st_test_summary();
}
