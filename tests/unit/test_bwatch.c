/* Unit: st_bwatch - no bundle means baseline mode; versions are content hashes (or metadata's
 * model_version); a bundle repointed behind a symlink is loaded by the watcher and swapped in
 * only by st_bwatch_swap; an unchanged bundle is never swapped; a bundle that failed to load
 * (copied metadata.json first) is loaded once its files are complete. */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "st_bundle.h"
#include "st_bwatch.h"
#include "st_dataset.h"
#include "st_test.h"
#include "st_time.h"

static char base[256];

/* Sets metadata.json's model_version. */
static void set_version(const char *meta, const char *version)
{
    json_t *j = json_load_file(meta, 0, NULL);
    ST_REQUIRE(j != NULL);
    json_object_set_new(j, "model_version", json_string(version));
    ST_REQUIRE(json_dump_file(j, meta, JSON_INDENT(2)) == 0);
    json_decref(j);
}

static int train_to(const char *dir, uint64_t seed, int window)
{
    char err[512];
    st_dataset_t *ds = st_dataset_new();
    for (int u = 0; u < 20; u++) {
        char uid[32];
        snprintf(uid, sizeof uid, "u%03d", u);
        for (int r = 0; r < 12; r++)
            st_dataset_add_session(ds, uid, 1200000000 + r * 86400 + u,
                                   300.0 + 97.0 * ((u * r) % 13), 4, 0, err, sizeof err);
    }
    st_dataset_split_cfg_t sc;
    st_dataset_split_default(&sc);
    st_bundle_spec_t spec;
    st_bundle_spec_default(&spec);
    spec.epochs = 1;
    spec.window = window;
    spec.units[0] = 4;
    spec.seed = seed;
    st_bundle_t *b = NULL;
    int rc = -1;
    if (st_dataset_finalize(ds, err, sizeof err) == 0 &&
        st_dataset_split(ds, &sc, err, sizeof err) == 0 &&
        (b = st_bundle_train(ds, &spec, NULL, NULL, err, sizeof err)) &&
        st_bundle_save(b, dir, "{\"global_median_s\":1234.5}", err, sizeof err) == 0)
        rc = 0;
    if (rc != 0)
        fprintf(stderr, "train: %s\n", err);
    st_bundle_destroy(b);
    st_dataset_destroy(ds);
    return rc;
}

/* Polls st_bwatch_swap for up to 10 s; whether a bundle was swapped in. */
static bool wait_swap(st_bwatch_t *w)
{
    int64_t deadline = st_time_mono_ms() + 10000;
    while (st_time_mono_ms() < deadline) {
        usleep(20000);
        if (st_bwatch_swap(w))
            return true;
    }
    return false;
}

static void test_missing(void)
{
    char errstr[256], dir[300];
    snprintf(dir, sizeof dir, "%s/none", base);
    st_bwatch_t *w = st_bwatch_new(dir, 0, errstr, sizeof errstr);
    ST_REQUIRE(w != NULL);
    ST_CHECK(st_bwatch_bundle(w) == NULL);
    ST_EQ_STR(st_bwatch_version(w), "none");
    ST_EQ_INT(st_bwatch_history_needed(w), 0);
    ST_NEAR(st_bwatch_global_baseline_s(w, 99.0), 99.0, 1e-12);
    ST_CHECK(!st_bwatch_swap(w));
    st_bwatch_destroy(w);
}

static void test_versions(void)
{
    char a[300], b[300], va[ST_BWATCH_VERSION_MAX], va2[ST_BWATCH_VERSION_MAX],
        vb[ST_BWATCH_VERSION_MAX], errstr[256];
    double gm;
    snprintf(a, sizeof a, "%s/a", base);
    snprintf(b, sizeof b, "%s/b", base);
    st_bundle_t *x = st_bwatch_load_dir(a, va, &gm, errstr, sizeof errstr);
    ST_REQUIRE(x != NULL);
    ST_NEAR(gm, 1234.5, 1e-9);
    st_bundle_destroy(x);
    x = st_bwatch_load_dir(a, va2, &gm, errstr, sizeof errstr);
    st_bundle_destroy(x);
    x = st_bwatch_load_dir(b, vb, &gm, errstr, sizeof errstr);
    st_bundle_destroy(x);
    ST_CHECK(strncmp(va, "b-", 2) == 0);
    ST_EQ_STR(va, va2);
    ST_CHECK(strcmp(va, vb) != 0);

    /* An explicit model_version in metadata.json wins. */
    char meta[320];
    snprintf(meta, sizeof meta, "%s/metadata.json", b);
    set_version(meta, "v-test-7");
    x = st_bwatch_load_dir(b, vb, &gm, errstr, sizeof errstr);
    ST_REQUIRE(x != NULL);
    ST_EQ_STR(vb, "v-test-7");
    st_bundle_destroy(x);
    /* One that could not label a metric or be stored whole is refused, with the reason. */
    static const char *const bad[] = {"release 42", "v\"1", "a\nb",
                                      "0123456789012345678901234567890123456789"
                                      "0123456789012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        set_version(meta, bad[i]);
        errstr[0] = '\0';
        ST_CHECK(st_bwatch_load_dir(b, vb, &gm, errstr, sizeof errstr) == NULL);
        ST_CHECK(strstr(errstr, "model_version") != NULL);
    }
    set_version(meta, "v-test-7"); /* as it was, for the tests below */
}

static void test_swap_behind_symlink(void)
{
    char a[300], b[300], link[300], tmp[310], errstr[256];
    snprintf(a, sizeof a, "%s/a", base);
    snprintf(b, sizeof b, "%s/b", base);
    snprintf(link, sizeof link, "%s/model", base);
    snprintf(tmp, sizeof tmp, "%s.new", link);
    ST_REQUIRE(symlink(a, link) == 0);
    st_bwatch_t *w = st_bwatch_new(link, 20, errstr, sizeof errstr);
    ST_REQUIRE(w != NULL);
    ST_REQUIRE(st_bwatch_bundle(w) != NULL);
    char v1[ST_BWATCH_VERSION_MAX];
    snprintf(v1, sizeof v1, "%s", st_bwatch_version(w));
    ST_EQ_INT(st_bwatch_history_needed(w), 4); /* window 3 + 1 */
    ST_NEAR(st_bwatch_global_baseline_s(w, 99.0), 1234.5, 1e-9);
    usleep(100000);
    ST_CHECK(!st_bwatch_swap(w)); /* nothing changed on disk */
    ST_EQ_STR(st_bwatch_version(w), v1);

    ST_REQUIRE(symlink(b, tmp) == 0);
    ST_REQUIRE(rename(tmp, link) == 0);
    ST_CHECK(wait_swap(w));
    ST_EQ_STR(st_bwatch_version(w), "v-test-7");
    ST_EQ_INT(st_bwatch_history_needed(w), 6); /* b has window 5 */
    ST_CHECK(!st_bwatch_swap(w));
    st_bwatch_destroy(w);
}

/* A bundle copied file by file with metadata.json first: the first load fails, and the watcher
 * must try again (it did not, until metadata.json changed) once the other files are there. */
static void test_incomplete_copy_is_retried(void)
{
    char a[300], c[300], cmd[1000], errstr[256];
    snprintf(a, sizeof a, "%s/a", base);
    snprintf(c, sizeof c, "%s/c", base);
    snprintf(cmd, sizeof cmd, "mkdir '%s' && cp -p '%s/metadata.json' '%s/'", c, a, c);
    ST_REQUIRE(system(cmd) == 0);
    st_bwatch_t *w = st_bwatch_new(c, 20, errstr, sizeof errstr);
    ST_REQUIRE(w != NULL);
    ST_CHECK(st_bwatch_bundle(w) == NULL);
    usleep(100000);
    ST_CHECK(!st_bwatch_swap(w));
    snprintf(cmd, sizeof cmd, "cp -n '%s'/* '%s/'", a, c);
    ST_REQUIRE(system(cmd) == 0);
    ST_CHECK(wait_swap(w));
    ST_CHECK(st_bwatch_bundle(w) != NULL);
    st_bwatch_destroy(w);
}

static bool ready;

static void test_setup(void)
{
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/a", base);
    snprintf(b, sizeof b, "%s/b", base);
    ST_REQUIRE(mkdir(base, 0777) == 0);
    ST_REQUIRE(train_to(a, 1, 3) == 0);
    ST_REQUIRE(train_to(b, 2, 5) == 0);
    ready = true;
}

int main(void)
{
    snprintf(base, sizeof base, "/tmp/stint-test-bwatch-%d", (int)getpid());
    ST_RUN(test_setup);
    if (ready) {
        ST_RUN(test_missing);
        ST_RUN(test_versions);
        ST_RUN(test_swap_behind_symlink);
        ST_RUN(test_incomplete_copy_is_retried);
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", base);
    return st_test_summary();
}
