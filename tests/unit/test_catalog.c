/* Unit tests of the one rule for a track key that a catalog names more than once
 * (st_catalog_later_wins, st_catalog_offer, ST_CATALOG_RULE "first-with-duration"): the rule's
 * table, the offer results and the duplicate counters, st_catalog_load on a file whose duplicates
 * differ in duration (and in the spelling the key normalises away), the bad lines' numbers in the
 * reader's stats, and a property test: for random files, the map equals a reference winner
 * computed from the rule's wording, and writing every ADDED or REPLACED entry in order (what
 * `stint catalog import` sends to Redis, the last write of a key staying) ends with the same
 * entry per key as the map. */
#include <sys/stat.h>
#include <unistd.h>

#include "st_catalog.h"
#include "st_log.h"
#include "st_rng.h"
#include "st_test.h"

static char tmp_dir[256];

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    if (!fp || fputs(text, fp) < 0 || fclose(fp) != 0)
        ST_FAIL_AT("cannot write %s", path);
}

static void test_rule(void)
{
    ST_EQ_STR(ST_CATALOG_RULE, "first-with-duration");
    static const struct {
        int64_t kept, later;
        bool wins;
    } t[] = {
        {1000, 2000, false},                                       /* both known: the first stays */
        {2000, 1000, false}, {1000, 1000, false}, {0, 2000, true}, /* a duration beats none */
        {-1, 2000, true},    {1000, 0, false},    {1000, -1, false}, /* none never beats one */
        {0, 0, false},       {-1, -1, false},     {0, -1, false},    /* both unknown: the first */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (st_catalog_later_wins(t[i].kept, t[i].later) != t[i].wins)
            ST_FAIL_AT("later_wins(%lld, %lld) should be %d", (long long)t[i].kept,
                       (long long)t[i].later, t[i].wins);
}

static void test_offer(void)
{
    st_catalog_t *c = st_catalog_new();
    ST_REQUIRE(c != NULL);
    int64_t d = -7;
    ST_EQ_INT(st_catalog_offer(c, "a\tx", 3, 1000), ST_CATALOG_ADDED);
    ST_EQ_INT(st_catalog_offer(c, "a\tx", 3, 2000), ST_CATALOG_KEPT);
    ST_EQ_INT(st_catalog_offer(c, "a\tx", 3, -1), ST_CATALOG_KEPT);
    ST_CHECK(st_catalog_lookup_key(c, "a\tx", 3, &d));
    ST_EQ_INT(d, 1000);

    ST_EQ_INT(st_catalog_offer(c, "b\ty", 3, -1), ST_CATALOG_ADDED);
    ST_CHECK(st_catalog_lookup_key(c, "b\ty", 3, &d));
    ST_EQ_INT(d, 0); /* unknown is stored as 0 */
    ST_EQ_INT(st_catalog_offer(c, "b\ty", 3, 0), ST_CATALOG_KEPT);
    ST_EQ_INT(st_catalog_offer(c, "b\ty", 3, 3000), ST_CATALOG_REPLACED);
    ST_EQ_INT(st_catalog_offer(c, "b\ty", 3, 4000), ST_CATALOG_KEPT);
    ST_CHECK(st_catalog_lookup_key(c, "b\ty", 3, &d));
    ST_EQ_INT(d, 3000);

    ST_EQ_INT(st_catalog_offer(c, "c\tz", 3, 0), ST_CATALOG_ADDED);
    ST_EQ_INT(st_catalog_size(c), 3);
    ST_EQ_U64(st_catalog_duplicate_keys(c), 2); /* a and b; c once */
    ST_EQ_U64(st_catalog_duplicates(c), 5);     /* 2 more lines of a, 3 of b */
    st_catalog_destroy(c);
}

static void test_load_duplicates(void)
{
    char path[400], errstr[256];
    snprintf(path, sizeof path, "%s/dups.jsonl", tmp_dir);
    write_file(path, "{\"artist\":\"Air\",\"track\":\"Playground Love\",\"duration_ms\":210000}\n"
                     "{\"artist\":\"AIR \",\"track\":\"playground love\",\"duration_ms\":199000}\n"
                     "{\"artist\":\"Blur\",\"track\":\"Song 2\",\"duration_ms\":0}\n"
                     "not json\n"
                     "{\"artist\":\"blur\",\"track\":\"song 2\",\"duration_ms\":122000}\n"
                     "{\"artist\":\"Blur\",\"track\":\"Song 2\",\"duration_ms\":130000}\n"
                     "{\"artist\":\"Can\",\"track\":\"Vitamin C\",\"duration_ms\":215000}\n"
                     "{\"artist\":\"Can\",\"track\":\"Vitamin C\"}\n"
                     "{\"artist\":\"Dido\",\"track\":\"none\",\"duration_ms\":null}\n"
                     "{\"artist\":\"dido\",\"track\":\"NONE\",\"duration_ms\":0}\n"
                     "[1]\n"
                     "{\"artist\":\"Eno\",\"track\":\"1/1\",\"duration_ms\":1000}\n");
    st_catalog_stats_t cs;
    st_catalog_t *c = st_catalog_load(path, &cs, errstr, sizeof errstr);
    ST_REQUIRE(c != NULL);
    ST_EQ_INT(st_catalog_size(c), 5);
    ST_EQ_U64(st_catalog_duplicate_keys(c), 4);
    ST_EQ_U64(st_catalog_duplicates(c), 5);
    ST_EQ_U64(cs.good, 10);
    ST_EQ_U64(cs.bad, 2);
    ST_EQ_U64(cs.bad_line_no[0], 4);
    ST_EQ_U64(cs.bad_line_no[1], 11);
    int64_t d = -7;
    ST_CHECK(st_catalog_lookup(c, "air", 3, "PLAYGROUND LOVE", 15, &d));
    ST_EQ_INT(d, 210000); /* both known: the first */
    ST_CHECK(st_catalog_lookup(c, "Blur", 4, "Song 2", 6, &d));
    ST_EQ_INT(d, 122000); /* the first with a duration, not the first line, nor the last */
    ST_CHECK(st_catalog_lookup(c, "Can", 3, "Vitamin C", 9, &d));
    ST_EQ_INT(d, 215000); /* a later line without one changes nothing */
    ST_CHECK(st_catalog_lookup(c, "Dido", 4, "none", 4, &d));
    ST_EQ_INT(d, 0);
    ST_CHECK(st_catalog_lookup(c, "Eno", 3, "1/1", 3, &d));
    ST_EQ_INT(d, 1000);
    st_catalog_destroy(c);
}

/* More than ST_CATALOG_BAD_LISTED bad lines: the first ones are listed, all counted. */
static void test_bad_line_numbers(void)
{
    char path[400], errstr[256];
    snprintf(path, sizeof path, "%s/bad.jsonl", tmp_dir);
    FILE *fp = fopen(path, "w");
    ST_REQUIRE(fp != NULL);
    for (int i = 1; i <= 30; i++)
        fputs(i % 3 == 0 ? "{\"artist\":\"a\",\"track\":\"t\",\"duration_ms\":5}\n" : "bad\n", fp);
    fclose(fp);
    st_catalog_stats_t cs;
    st_catalog_t *c = st_catalog_load(path, &cs, errstr, sizeof errstr);
    ST_REQUIRE(c != NULL);
    ST_EQ_U64(cs.bad, 20);
    ST_EQ_U64(cs.good, 10);
    ST_EQ_U64(cs.bad_line_no[0], 1);
    ST_EQ_U64(cs.bad_line_no[1], 2);
    ST_EQ_U64(cs.bad_line_no[2], 4);
    ST_EQ_U64(cs.bad_line_no[19], 29);
    ST_EQ_U64(st_catalog_duplicate_keys(c), 1);
    ST_EQ_U64(st_catalog_duplicates(c), 9);
    st_catalog_destroy(c);
}

#define PROP_KEYS  40
#define PROP_LINES 200

/* Random files over a few keys, durations known or not: the map holds the reference winner
 * (the first line of the key with a duration, else the key's first line), and the writes an
 * import makes (each ADDED or REPLACED entry, in order) end with that entry for every key. */
static void test_property(void)
{
    st_rng_t rng;
    st_rng_seed(&rng, 24);
    for (int round = 0; round < 300; round++) {
        int key[PROP_LINES];
        int64_t dur[PROP_LINES];
        int n = 1 + (int)st_rng_below(&rng, PROP_LINES);
        int nkeys = 1 + (int)st_rng_below(&rng, PROP_KEYS);
        for (int i = 0; i < n; i++) {
            key[i] = (int)st_rng_below(&rng, (uint64_t)nkeys);
            dur[i] = st_rng_below(&rng, 3) == 0 ? -1 : 1000 + (int64_t)st_rng_below(&rng, 5);
        }
        st_catalog_t *c = st_catalog_new();
        ST_REQUIRE(c != NULL);
        int64_t written[PROP_KEYS] = {0};
        int writes[PROP_KEYS] = {0}, lines[PROP_KEYS] = {0};
        uint64_t dup_lines = 0;
        for (int i = 0; i < n; i++) {
            char k[16];
            int kl = snprintf(k, sizeof k, "k\t%d", key[i]);
            int o = st_catalog_offer(c, k, (size_t)kl, dur[i]);
            ST_REQUIRE(o >= 0);
            if (lines[key[i]]++ > 0)
                dup_lines++;
            if (o != ST_CATALOG_KEPT) {
                written[key[i]] = dur[i];
                writes[key[i]]++;
            }
        }
        uint64_t dup_keys = 0;
        size_t distinct = 0;
        for (int k = 0; k < nkeys; k++) {
            if (lines[k] == 0)
                continue;
            distinct++;
            dup_keys += lines[k] > 1;
            int64_t want = -1; /* the rule's wording: the first line with a duration, else first */
            for (int i = 0; i < n && want < 0; i++)
                if (key[i] == k && dur[i] > 0)
                    want = dur[i];
            char ks[16];
            int kl = snprintf(ks, sizeof ks, "k\t%d", k);
            int64_t got = -7;
            ST_CHECK(st_catalog_lookup_key(c, ks, (size_t)kl, &got));
            if (got != (want > 0 ? want : 0) || (written[k] > 0 ? written[k] : 0) != got ||
                writes[k] < 1 || writes[k] > 2) {
                ST_FAIL_AT("round %d key %d: map %lld, reference %lld, last write %lld, %d writes",
                           round, k, (long long)got, (long long)want, (long long)written[k],
                           writes[k]);
                break;
            }
        }
        ST_EQ_INT(st_catalog_size(c), distinct);
        ST_EQ_U64(st_catalog_duplicate_keys(c), dup_keys);
        ST_EQ_U64(st_catalog_duplicates(c), dup_lines);
        st_catalog_destroy(c);
    }
}

int main(void)
{
    st_log_init("test_catalog");
    st_log_set_level(ST_LOG_ERROR);
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/stint-catalog-%d", (int)getpid());
    if (mkdir(tmp_dir, 0777) != 0) {
        perror(tmp_dir);
        return 1;
    }
    ST_RUN(test_rule);
    ST_RUN(test_offer);
    ST_RUN(test_load_duplicates);
    ST_RUN(test_bad_line_numbers);
    ST_RUN(test_property);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
    if (system(cmd) != 0)
        printf("could not remove %s\n", tmp_dir);
    return st_test_summary();
}
