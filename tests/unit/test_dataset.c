/* test_dataset.c - st_dataset and st_bundle: past-only features, the split, baselines, the TSV
 * loader, the leak test (test-period sessions change no training artefact), determinism and the
 * bundle's save/load round trip. Sessions are generated directly (no sessionizer needed). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "st_bundle.h"
#include "st_dataset.h"
#include "st_rng.h"
#include "st_session.h"
#include "st_test.h"

#define USERS 40
#define PER   60

typedef struct {
    char user[32];
    int64_t start_s;
    double length_s;
    int tracks;
    double share;
} sess_t;

static sess_t g_sess[USERS * PER];

static void make_sessions(uint64_t seed)
{
    st_rng_t rng;
    st_rng_seed(&rng, seed);
    for (int u = 0; u < USERS; u++) {
        double mu = log(1500.0) + 0.8 * st_rng_normal(&rng);
        int64_t t = 1230000000 + (int64_t)u * 977;
        double prev = 0;
        for (int k = 0; k < PER; k++) {
            sess_t *s = &g_sess[u * PER + k];
            snprintf(s->user, sizeof s->user, "user_%06d", u);
            double len = exp(mu + 0.3 * (prev - mu) + 0.5 * st_rng_normal(&rng));
            prev = log(len);
            s->start_s = t;
            s->length_s = floor(len);
            s->tracks = 1 + (int)(len / 240);
            s->share = floor(st_rng_uniform(&rng) * 30) / 100;
            t += (int64_t)len + 2000 + (int64_t)(st_rng_uniform(&rng) * 86400);
        }
    }
}

static const char *const countries[] = {"Sweden", "Japan", "United States", "Poland", ""};

/* A finalized dataset of g_sess; sessions are added in reverse order on purpose. */
static st_dataset_t *build(void)
{
    char err[256];
    st_dataset_t *ds = st_dataset_new();
    for (int i = USERS * PER - 1; i >= 0; i--) {
        const sess_t *s = &g_sess[i];
        if (st_dataset_add_session(ds, s->user, s->start_s, s->length_s, s->tracks, s->share, err,
                                   sizeof err) != 0)
            fprintf(stderr, "add: %s\n", err);
    }
    for (int u = 0; u < USERS; u++) {
        st_dataset_profile_t p = {0};
        char id[32];
        snprintf(id, sizeof id, "user_%06d", u);
        p.gender = u % 3 == 0 ? 'm' : u % 3 == 1 ? 'f' : 0;
        p.age = u % 4 == 0 ? -1 : 18 + u % 30;
        snprintf(p.country, sizeof p.country, "%s", countries[u % 5]);
        p.registered_s = u % 5 == 0 ? 0 : 1100000000 + (int64_t)u * 86400;
        st_dataset_add_profile(ds, id, &p, err, sizeof err);
    }
    if (st_dataset_finalize(ds, err, sizeof err) != 0)
        fprintf(stderr, "finalize: %s\n", err);
    return ds;
}

static void split(st_dataset_t *ds)
{
    char err[256];
    st_dataset_split_cfg_t sc;
    st_dataset_split_default(&sc);
    sc.test_frac = 0.2;
    sc.val_frac = 0.1;
    sc.seed = 7;
    if (st_dataset_split(ds, &sc, err, sizeof err) != 0)
        fprintf(stderr, "split: %s\n", err);
}

/* make_sessions(seed), then its dataset built and split. */
static st_dataset_t *split_sessions(uint64_t seed)
{
    make_sessions(seed);
    st_dataset_t *ds = build();
    split(ds);
    return ds;
}

/* Removes a test's temporary directory. */
static void rm_tree(const char *dir)
{
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ST_EQ_INT(system(cmd), 0);
}

static void small_spec(st_bundle_spec_t *s, st_bundle_cluster_t cluster)
{
    st_bundle_spec_default(s);
    s->window = 6;
    s->units[0] = 8;
    s->epochs = 3;
    s->patience = 0;
    s->cluster = cluster;
    s->k = 3;
    s->min_cluster_users = 5;
    s->seed = 3;
}

static void test_rows_ordered_and_past(void)
{
    make_sessions(11);
    st_dataset_t *ds = build();
    ST_EQ_INT(st_dataset_n_rows(ds), USERS * PER);
    ST_EQ_INT(st_dataset_n_users(ds), USERS);
    const st_dataset_row_t *r = st_dataset_rows(ds);
    ST_EQ_STR(st_dataset_user_id(ds, 0), "user_000000");
    /* user 3, session 5: the fields are those of sessions 0..4 */
    size_t i = st_dataset_user_first(ds, 3) + 5;
    const sess_t *s = &g_sess[3 * PER];
    double sum = 0, v[5];
    for (int k = 0; k < 5; k++) {
        sum += s[k].length_s;
        v[k] = s[k].length_s;
    }
    ST_EQ_INT(r[i].index, 5);
    ST_EQ_INT(r[i].start_s, s[5].start_s);
    ST_NEAR(r[i].prev_length_s, s[4].length_s, 1e-9);
    ST_NEAR(r[i].avg_length_s, sum / 5, 1e-9);
    ST_NEAR(r[i].median_length_s, st_dataset_median(v, 5), 1e-9);
    ST_NEAR(r[i].gap_s, (double)(s[5].start_s - s[4].start_s) - s[4].length_s, 1e-9);
    ST_EQ_INT(r[i].prev_track_count, s[4].tracks);
    ST_NEAR(r[i].gap_s, (double)(s[5].start_s - s[4].start_s) - s[4].length_s, 1e-9);
    ST_NEAR(r[st_dataset_user_first(ds, 3)].gap_s, -1, 0);
    /* session 40: the median is over the last ST_SESSION_MEDIAN_WINDOW earlier ones (24..39), as
     * the sessionizer computes it, not over all 40 */
    double w[ST_SESSION_MEDIAN_WINDOW];
    for (int k = 0; k < ST_SESSION_MEDIAN_WINDOW; k++)
        w[k] = s[40 - ST_SESSION_MEDIAN_WINDOW + k].length_s;
    ST_NEAR(r[i + 35].median_length_s, st_dataset_median(w, ST_SESSION_MEDIAN_WINDOW), 1e-9);
    st_dataset_destroy(ds);
}

/* Perturbing a session's own length/tracks and every later session of its user changes neither
 * its dataset fields nor the bundle's prediction for it (features see the past only). */
static void test_features_use_only_the_past(void)
{
    char err[256];
    make_sessions(12);
    st_dataset_t *a = build();
    split(a);
    st_bundle_spec_t spec;
    small_spec(&spec, ST_BUNDLE_CLUSTER_NONE);
    st_bundle_t *b = st_bundle_train(a, &spec, NULL, NULL, err, sizeof err);
    ST_REQUIRE(b != NULL);
    int u = 5, k = 30;
    for (int j = k; j < PER; j++) {
        g_sess[u * PER + j].length_s *= 3.7;
        g_sess[u * PER + j].tracks += 9;
        g_sess[u * PER + j].share = 0.9;
    }
    st_dataset_t *c = build();
    split(c);
    size_t row = st_dataset_user_first(a, u) + (size_t)k;
    const st_dataset_row_t *ra = &st_dataset_rows(a)[row], *rc = &st_dataset_rows(c)[row];
    ST_CHECK(ra->length_s != rc->length_s); /* the perturbation happened */
    ST_EQ_INT(ra->index, rc->index);
    ST_NEAR(ra->prev_length_s, rc->prev_length_s, 0);
    ST_NEAR(ra->avg_length_s, rc->avg_length_s, 0);
    ST_NEAR(ra->median_length_s, rc->median_length_s, 0);
    ST_NEAR(ra->gap_s, rc->gap_s, 0);
    ST_EQ_INT(ra->prev_track_count, rc->prev_track_count);
    ST_NEAR(ra->prev_unknown_share, rc->prev_unknown_share, 0);
    double rl[ST_BUNDLE_MAX_WINDOW + 1], ru[ST_BUNDLE_MAX_WINDOW + 1];
    int64_t rs[ST_BUNDLE_MAX_WINDOW + 1];
    int rt[ST_BUNDLE_MAX_WINDOW + 1];
    st_bundle_input_t in;
    double pa = -1, pc = -2, pnext_a = -1, pnext_c = -2;
    st_bundle_input_from_row(b, a, row, &in, rl, rs, rt, ru);
    ST_EQ_INT(st_bundle_predict(b, &in, &pa), 0);
    st_bundle_input_from_row(b, c, row, &in, rl, rs, rt, ru);
    ST_EQ_INT(st_bundle_predict(b, &in, &pc), 0);
    ST_NEAR(pa, pc, 0);
    /* the next session's prediction does see the perturbed one (the check can fail) */
    st_bundle_input_from_row(b, a, row + 1, &in, rl, rs, rt, ru);
    st_bundle_predict(b, &in, &pnext_a);
    st_bundle_input_from_row(b, c, row + 1, &in, rl, rs, rt, ru);
    st_bundle_predict(b, &in, &pnext_c);
    ST_CHECK(pnext_a != pnext_c);
    st_bundle_destroy(b);
    st_dataset_destroy(a);
    st_dataset_destroy(c);
}

static void test_user_cut_split(void)
{
    st_dataset_t *ds = split_sessions(13);
    const st_dataset_row_t *r = st_dataset_rows(ds);
    int test_users = 0, val_users = 0;
    for (int u = 0; u < USERS; u++) {
        size_t f = st_dataset_user_first(ds, u), n = st_dataset_user_rows(ds, u), cut = n;
        for (size_t k = 0; k < n; k++)
            if (r[f + k].role != ST_DATASET_TRAIN && cut == n)
                cut = k;
        for (size_t k = cut; k < n; k++)
            ST_CHECK(r[f + k].role == r[f + cut].role); /* contiguous tail */
        if (cut < n) {
            ST_CHECK(cut >= n / 2);
            test_users += r[f + cut].role == ST_DATASET_TEST;
            val_users += r[f + cut].role == ST_DATASET_VAL;
        }
    }
    ST_EQ_INT(test_users, 8); /* 20 % of 40 */
    ST_EQ_INT(val_users, 4);
    /* baselines: per-user mean of TRAIN rows */
    size_t f = st_dataset_user_first(ds, 0);
    double sum = 0;
    int m = 0;
    for (size_t k = 0; k < PER; k++)
        if (r[f + k].role == ST_DATASET_TRAIN) {
            sum += r[f + k].length_s;
            m++;
        }
    st_dataset_baselines_t bl;
    st_dataset_baselines(ds, f + 3, &bl);
    ST_NEAR(bl.user_mean_s, sum / m, 1e-6);
    ST_NEAR(bl.last_s, r[f + 2].length_s, 0);
    /* date split */
    char err[256];
    st_dataset_split_cfg_t sc;
    st_dataset_split_default(&sc);
    sc.kind = ST_DATASET_SPLIT_DATE;
    ST_EQ_INT(st_dataset_split(ds, &sc, err, sizeof err), 0);
    size_t nt = st_dataset_count(ds, ST_DATASET_TEST);
    ST_CHECK(nt >= USERS * PER / 10 - 5 && nt <= USERS * PER / 10 + 5);
    int64_t max_train = 0, min_test = INT64_MAX;
    for (size_t i = 0; i < st_dataset_n_rows(ds); i++) {
        if (r[i].role == ST_DATASET_TRAIN && r[i].start_s > max_train)
            max_train = r[i].start_s;
        if (r[i].role == ST_DATASET_TEST && r[i].start_s < min_test)
            min_test = r[i].start_s;
    }
    ST_CHECK(max_train < min_test);
    st_dataset_destroy(ds);
}

static void test_sessions_tsv(void)
{
    char path[] = "/tmp/stint_test_sessions_XXXXXX";
    int fd = mkstemp(path);
    ST_REQUIRE(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    fputs("u1\t1000\t60\t2\t0.5\nu1\t500\t30\t1\n"
          "bad line\nu2\tx\t1\t1\nu2\t100\t-5\t1\nu2\t100\t5\t1\t0.25\n"
          /* out of bounds: a start before 1970 or after 9999 (INT64_MIN's negation overflowed in
           * the features), a length over 1e9 s */
          "u3\t-1\t5\t1\nu3\t-9223372036854775808\t5\t1\nu3\t253402300800\t5\t1\n"
          "u3\t100\t1e10\t1\n",
          fp);
    /* A line over the 4 KB buffer whose end would read as a session of its own: one bad line. */
    for (int i = 0; i < 4100; i++)
        fputc('x', fp);
    fputs("\t1241124544\t5.0\t3\n", fp);
    fclose(fp);
    char err[256];
    size_t bad = 99;
    st_dataset_t *ds = st_dataset_new();
    ST_EQ_INT(st_dataset_load_sessions(ds, path, &bad, err, sizeof err), 0);
    ST_EQ_INT(bad, 8);
    ST_EQ_INT(st_dataset_finalize(ds, err, sizeof err), 0);
    ST_EQ_INT(st_dataset_n_rows(ds), 3);
    const st_dataset_row_t *r = st_dataset_rows(ds);
    ST_EQ_INT(r[0].start_s, 500);
    ST_NEAR(r[1].gap_s, 1000 - 500 - 30, 0);
    ST_NEAR(r[1].prev_unknown_share, 0, 0);
    ST_NEAR(r[2].unknown_share, 0.25, 1e-12);
    st_dataset_destroy(ds);
    unlink(path);
    st_dataset_t *none = st_dataset_new();
    ST_EQ_INT(st_dataset_load_sessions(none, "/nonexistent/x", NULL, err, sizeof err), -1);
    ST_CHECK(strstr(err, "/nonexistent/x") != NULL);
    st_dataset_destroy(none);
}

/* Every source stores the TSV's precision; --until in ms (exclusive) and in whole seconds. */
static void test_precision_and_until(void)
{
    char err[256];
    st_dataset_t *ds = st_dataset_new();
    ST_REQUIRE(ds != NULL);
    ST_EQ_INT(st_dataset_start_s_of_ms(1999), 1);
    ST_EQ_INT(st_dataset_start_s_of_ms(-1), -1);
    ST_EQ_INT(st_dataset_start_s_of_ms(-1000), -1);
    ST_EQ_INT(st_dataset_start_s_of_ms(-1001), -2);
    st_dataset_set_until_ms(ds, 5500);
    /* ms: 5499 kept (second 5), 5500 skipped */
    ST_EQ_INT(st_dataset_add_session_ms(ds, "a", 5499, 1.23456, 3, 1.0 / 3, err, sizeof err), 0);
    ST_EQ_INT(st_dataset_add_session_ms(ds, "a", 5500, 7, 1, 0, err, sizeof err), 0);
    /* seconds: start_s * 1000 < 5500 is kept (5), 6 is not */
    ST_EQ_INT(st_dataset_add_session(ds, "b", 5, 2.0004999, 1, 0.66666, err, sizeof err), 0);
    ST_EQ_INT(st_dataset_add_session(ds, "b", 6, 9, 1, 0, err, sizeof err), 0);
    ST_EQ_INT(st_dataset_add_session(ds, "b", 3, 9, 1, 0, err, sizeof err), 0);
    ST_EQ_INT(st_dataset_add_session(ds, "c", 4, 1e9, 1, 0, err, sizeof err), 0);
    ST_EQ_INT(st_dataset_n_after_until(ds), 2);
    /* out of the bounds every session source has: errors (a bad line of a TSV) */
    ST_EQ_INT(st_dataset_add_session(ds, "b", -3, 9, 1, 0, err, sizeof err), -1);
    ST_EQ_INT(st_dataset_add_session(ds, "c", 4, 1e300, 1, 0, err, sizeof err), -1);
    ST_EQ_INT(st_dataset_add_session(ds, "c", INT64_MIN, 1, 1, 0, err, sizeof err), -1);
    /* bad values are still errors */
    ST_EQ_INT(st_dataset_add_session_ms(ds, "", 1000, 1, 1, 0, err, sizeof err), -1);
    ST_EQ_INT(st_dataset_add_session_ms(ds, "c", 1000, NAN, 1, 0, err, sizeof err), -1);
    ST_EQ_INT(st_dataset_finalize(ds, err, sizeof err), 0);
    ST_EQ_INT(st_dataset_n_rows(ds), 4);
    const st_dataset_row_t *r = st_dataset_rows(ds);
    ST_EQ_INT(r[0].start_s, 5);
    ST_NEAR(r[0].length_s, strtod("1.235", NULL), 0);
    ST_NEAR(r[0].unknown_share, strtod("0.3333", NULL), 0);
    ST_EQ_INT(r[1].start_s, 3);
    ST_EQ_INT(r[2].start_s, 5);
    ST_NEAR(r[2].length_s, strtod("2.000", NULL), 0);
    ST_NEAR(r[2].unknown_share, strtod("0.6667", NULL), 0);
    ST_EQ_INT(r[3].start_s, 4);
    ST_CHECK(r[3].length_s == 1e9);
    st_dataset_destroy(ds);
}

/* Reads a file into a malloc'd buffer. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, fp);
    fclose(fp);
    return buf;
}

/* Compares every training artefact (all bundle files except metadata.json) of two bundles;
 * returns the number of files that differ or are missing. */
static int diff_bundles(const char *a, const char *b, int k)
{
    const char *fixed[] = {"countries.txt", "clusters.stm", "profile.scal", "user_clusters.tsv"};
    int diffs = 0;
    char pa[512], pb[512];
    for (int i = 0; i < 4 + 3 * (k + 1); i++) {
        char name[64];
        if (i < 4)
            snprintf(name, sizeof name, "%s", fixed[i]);
        else
            snprintf(name, sizeof name, "net_%d%s", (i - 4) / 3,
                     (i - 4) % 3 == 0   ? ".stm"
                     : (i - 4) % 3 == 1 ? "_x.scal"
                                        : "_y.scal");
        snprintf(pa, sizeof pa, "%s/%s", a, name);
        snprintf(pb, sizeof pb, "%s/%s", b, name);
        size_t na = 0, nb = 0;
        unsigned char *x = slurp(pa, &na), *y = slurp(pb, &nb);
        if (!x && !y)
            continue; /* a cluster without a network of its own */
        if (!x || !y || na != nb || memcmp(x, y, na) != 0) {
            fprintf(stderr, "  differs: %s\n", name);
            diffs++;
        }
        free(x);
        free(y);
    }
    return diffs;
}

static int train_save(const char *dir, st_bundle_cluster_t cluster)
{
    char err[256];
    st_dataset_t *ds = build();
    split(ds);
    st_bundle_spec_t spec;
    small_spec(&spec, cluster);
    st_bundle_t *b = st_bundle_train(ds, &spec, NULL, NULL, err, sizeof err);
    int rc = b ? st_bundle_save(b, dir, NULL, err, sizeof err) : -1;
    if (rc != 0)
        fprintf(stderr, "train_save: %s\n", err);
    st_bundle_destroy(b);
    st_dataset_destroy(ds);
    return rc;
}

static void test_leak_and_determinism(void)
{
    char base[] = "/tmp/stint_test_bundle_XXXXXX";
    ST_REQUIRE(mkdtemp(base) != NULL);
    char d1[600], d2[600], d3[600], d4[600];
    snprintf(d1, sizeof d1, "%s/a", base);
    snprintf(d2, sizeof d2, "%s/b", base);
    snprintf(d3, sizeof d3, "%s/c", base);
    snprintf(d4, sizeof d4, "%s/d", base);
    make_sessions(21);
    ST_REQUIRE(train_save(d1, ST_BUNDLE_CLUSTER_KMEANS) == 0);
    ST_REQUIRE(train_save(d2, ST_BUNDLE_CLUSTER_KMEANS) == 0);
    ST_EQ_INT(diff_bundles(d1, d2, 3), 0); /* same seed, same data: same bytes */

    /* change every TEST row (the test users' test period): lengths, tracks, shares */
    st_dataset_t *ds = build();
    split(ds);
    const st_dataset_row_t *r = st_dataset_rows(ds);
    int changed = 0;
    for (size_t i = 0; i < st_dataset_n_rows(ds); i++) {
        if (r[i].role != ST_DATASET_TEST)
            continue;
        for (int j = 0; j < USERS * PER; j++) {
            if (g_sess[j].start_s == r[i].start_s &&
                strcmp(g_sess[j].user, st_dataset_user_id(ds, r[i].user)) == 0) {
                g_sess[j].length_s = g_sess[j].length_s * 5 + 100;
                g_sess[j].tracks += 20;
                g_sess[j].share = 0.75;
                changed++;
            }
        }
    }
    st_dataset_destroy(ds);
    ST_CHECK(changed > 50);
    ST_REQUIRE(train_save(d3, ST_BUNDLE_CLUSTER_KMEANS) == 0);
    ST_EQ_INT(diff_bundles(d1, d3, 3), 0);

    /* a TRAIN row changed does change artefacts: the comparison can fail */
    g_sess[0].length_s += 5000;
    ST_REQUIRE(train_save(d4, ST_BUNDLE_CLUSTER_KMEANS) == 0);
    ST_CHECK(diff_bundles(d1, d4, 3) > 0);

    rm_tree(base);
}

/* A loaded bundle predicts exactly what the trained one did, through the public input struct. */
static void test_save_load_predict(void)
{
    char err[256];
    char dir[] = "/tmp/stint_test_bundle_XXXXXX";
    ST_REQUIRE(mkdtemp(dir) != NULL);
    st_dataset_t *ds = split_sessions(31);
    st_bundle_spec_t spec;
    small_spec(&spec, ST_BUNDLE_CLUSTER_SPECTRAL);
    spec.cell = ST_NN_CELL_GRU;
    st_bundle_t *b = st_bundle_train(ds, &spec, NULL, NULL, err, sizeof err);
    ST_REQUIRE(b != NULL);
    ST_EQ_INT(st_bundle_save(b, dir, "{\"x\":1}", err, sizeof err), 0);
    st_bundle_t *l = st_bundle_load(dir, err, sizeof err);
    if (!l)
        fprintf(stderr, "load: %s\n", err);
    ST_REQUIRE(l != NULL);
    ST_EQ_INT(st_bundle_k(l), 3);
    ST_EQ_INT(st_bundle_spec(l)->cell, ST_NN_CELL_GRU);
    double rl[ST_BUNDLE_MAX_WINDOW + 1], ru[ST_BUNDLE_MAX_WINDOW + 1];
    int64_t rs[ST_BUNDLE_MAX_WINDOW + 1];
    int rt[ST_BUNDLE_MAX_WINDOW + 1];
    int same = 0, n = 0, clustered = 0;
    for (size_t i = 0; i < st_dataset_n_rows(ds); i += 37) {
        st_bundle_input_t in;
        double p1 = -1, p2 = -2;
        st_bundle_input_from_row(b, ds, i, &in, rl, rs, rt, ru);
        clustered += in.cluster >= 0;
        st_bundle_predict(b, &in, &p1);
        st_bundle_input_from_row(l, ds, i, &in, rl, rs, rt, ru);
        st_bundle_predict(l, &in, &p2);
        same += p1 == p2 && p1 >= 0;
        n++;
    }
    ST_EQ_INT(same, n);
    ST_CHECK(clustered > 0);
    /* minimal input: lengths only */
    double lens[3] = {600, 1200, 900};
    st_bundle_input_t in = {0};
    in.lengths_s = lens;
    in.n_recent = 3;
    in.n_sessions = 3;
    in.mean_length_s = NAN;
    in.median_length_s = NAN;
    in.start_s = 1240000000;
    in.gap_s = -1;
    in.age = -1;
    in.cluster = -1;
    double p = -1;
    ST_EQ_INT(st_bundle_predict(l, &in, &p), 0);
    ST_CHECK(p > 0 && isfinite(p));
    /* Found by tests/fuzz/fuzz_bundle: a network listed twice in metadata.json is refused (the
     * first copy loaded used to leak). */
    char meta[700];
    snprintf(meta, sizeof meta, "%s/metadata.json", dir);
    json_t *m = json_load_file(meta, 0, NULL);
    ST_REQUIRE(m != NULL);
    json_t *nets = json_object_get(m, "nets");
    json_array_append_new(nets, json_integer(0));
    ST_REQUIRE(json_dump_file(m, meta, JSON_INDENT(2)) == 0);
    ST_CHECK(st_bundle_load(dir, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "network 0 listed twice") != NULL);
    json_array_remove(nets, json_array_size(nets) - 1);
    ST_REQUIRE(json_dump_file(m, meta, JSON_INDENT(2)) == 0);
    json_decref(m);
    /* a corrupted network file is refused with a reason */
    char path[700];
    snprintf(path, sizeof path, "%s/net_0.stm", dir);
    FILE *fp = fopen(path, "r+b");
    fseek(fp, 100, SEEK_SET);
    fputc(0x5a, fp);
    fclose(fp);
    st_bundle_t *bad = st_bundle_load(dir, err, sizeof err);
    ST_CHECK(bad == NULL);
    ST_CHECK(strstr(err, "net_0.stm") != NULL);
    st_bundle_destroy(l);
    st_bundle_destroy(b);
    st_dataset_destroy(ds);
    rm_tree(dir);
}

/* spec.members: member m is the network a members-1 bundle trains with the seed
 * spec.seed + m * ST_BUNDLE_MEMBER_SEED_STEP (the model seeds of stint evaluate), a prediction is
 * the members' mean in the target's scale (log target: the geometric mean of length + 1, less 1),
 * per cluster too; saved and loaded as it was; a missing member file, a gbt with members and a
 * count out of range are refused. */
static void test_members(void)
{
    char err[256];
    char dir[] = "/tmp/stint_test_members_XXXXXX";
    ST_REQUIRE(mkdtemp(dir) != NULL);
    st_dataset_t *ds = split_sessions(53);
    st_bundle_spec_t spec, one;
    small_spec(&spec, ST_BUNDLE_CLUSTER_KMEANS);
    spec.log_target = 1;
    spec.members = 3;
    st_bundle_t *b = st_bundle_train(ds, &spec, NULL, NULL, err, sizeof err);
    ST_REQUIRE(b != NULL);
    st_bundle_t *m[3];
    for (int k = 0; k < 3; k++) {
        one = spec;
        one.members = 1;
        one.seed = spec.seed + (uint64_t)k * ST_BUNDLE_MEMBER_SEED_STEP;
        ST_REQUIRE((m[k] = st_bundle_train(ds, &one, NULL, NULL, err, sizeof err)) != NULL);
    }
    ST_EQ_INT(st_bundle_save(b, dir, "{}", err, sizeof err), 0);
    st_bundle_t *l = st_bundle_load(dir, err, sizeof err);
    if (!l)
        fprintf(stderr, "load: %s\n", err);
    ST_REQUIRE(l != NULL);
    ST_EQ_INT(st_bundle_spec(l)->members, 3);
    double rl[ST_BUNDLE_MAX_WINDOW + 1], ru[ST_BUNDLE_MAX_WINDOW + 1];
    int64_t rs[ST_BUNDLE_MAX_WINDOW + 1];
    int rt[ST_BUNDLE_MAX_WINDOW + 1];
    int n = 0, mean_ok = 0, loaded_same = 0, members_differ = 0, clustered = 0;
    for (size_t i = 0; i < st_dataset_n_rows(ds); i += 29) {
        st_bundle_input_t in;
        double p = -1, pl = -2, pk[3], logs = 0;
        st_bundle_input_from_row(b, ds, i, &in, rl, rs, rt, ru);
        clustered += in.cluster >= 0;
        ST_REQUIRE(st_bundle_predict(b, &in, &p) == 0);
        for (int k = 0; k < 3; k++) {
            ST_REQUIRE(st_bundle_predict(m[k], &in, &pk[k]) == 0);
            logs += log1p(pk[k]);
        }
        double want = expm1(logs / 3);
        mean_ok += fabs(p - want) <= 1e-3 * (1 + want); /* float outputs, double mean */
        members_differ += pk[0] != pk[1] && pk[1] != pk[2];
        st_bundle_input_from_row(l, ds, i, &in, rl, rs, rt, ru);
        ST_REQUIRE(st_bundle_predict(l, &in, &pl) == 0);
        loaded_same += p == pl;
        n++;
    }
    ST_EQ_INT(mean_ok, n);
    ST_EQ_INT(loaded_same, n);
    ST_CHECK(members_differ > n / 2);
    ST_CHECK(clustered > 0);
    /* a member's file missing: refused, naming it */
    char path[700];
    snprintf(path, sizeof path, "%s/net_0_m2.stm", dir);
    ST_EQ_INT(unlink(path), 0);
    ST_CHECK(st_bundle_load(dir, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "net_0_m2.stm") != NULL);
    /* a bundle written before the key (no "members" in its spec) loads as one network */
    char meta[700];
    snprintf(meta, sizeof meta, "%s/metadata.json", dir);
    json_t *mj = json_load_file(meta, 0, NULL);
    ST_REQUIRE(mj != NULL);
    ST_EQ_INT(json_object_del(json_object_get(mj, "spec"), "members"), 0);
    ST_REQUIRE(json_dump_file(mj, meta, JSON_INDENT(2)) == 0);
    json_decref(mj);
    st_bundle_t *old = st_bundle_load(dir, err, sizeof err);
    ST_REQUIRE(old != NULL);
    ST_EQ_INT(st_bundle_spec(old)->members, 1);
    st_bundle_destroy(old);
    /* a gbt bundle is one model; the count is bounded */
    st_bundle_spec_gbt(&one);
    ST_EQ_INT(st_bundle_spec_set(&one, "members", "2", err, sizeof err), 0);
    ST_EQ_INT(st_bundle_spec_check(&one, err, sizeof err), -1);
    ST_CHECK(strstr(err, "members=2") != NULL && strstr(err, "gbt") != NULL);
    ST_CHECK(st_bundle_train(ds, &one, NULL, NULL, err, sizeof err) == NULL);
    st_bundle_spec_default(&one);
    ST_EQ_INT(st_bundle_spec_set(&one, "members", "9", err, sizeof err), -1);
    ST_CHECK(strstr(err, "members") != NULL);
    for (int k = 0; k < 3; k++)
        st_bundle_destroy(m[k]);
    st_bundle_destroy(l);
    st_bundle_destroy(b);
    st_dataset_destroy(ds);
    rm_tree(dir);
}

/* Scaling is inverted before a prediction comes out: on near-constant lengths (~1000 s) every
 * configuration predicts ~1000 s, not z-units or log units (the seed scored z-units as seconds). */
static void test_scaling_inverted(void)
{
    char err[256];
    make_sessions(41);
    for (int i = 0; i < USERS * PER; i++)
        g_sess[i].length_s = 1000 + i % 7;
    st_dataset_t *ds = build();
    split(ds);
    const st_bundle_scale_t scales[] = {ST_BUNDLE_SCALE_ALL, ST_BUNDLE_SCALE_MIXED,
                                        ST_BUNDLE_SCALE_ALL};
    const st_bundle_kind_t kinds[] = {ST_BUNDLE_PARITY, ST_BUNDLE_PARITY, ST_BUNDLE_SEQ};
    for (int c = 0; c < 3; c++) {
        st_bundle_spec_t spec;
        small_spec(&spec, c == 1 ? ST_BUNDLE_CLUSTER_KMEANS : ST_BUNDLE_CLUSTER_NONE);
        spec.kind = kinds[c];
        spec.log_target = kinds[c] == ST_BUNDLE_SEQ;
        spec.scaling = scales[c];
        spec.epochs = 2;
        st_bundle_t *b = st_bundle_train(ds, &spec, NULL, NULL, err, sizeof err);
        ST_REQUIRE(b != NULL);
        double rl[ST_BUNDLE_MAX_WINDOW + 1], ru[ST_BUNDLE_MAX_WINDOW + 1];
        int64_t rs[ST_BUNDLE_MAX_WINDOW + 1];
        int rt[ST_BUNDLE_MAX_WINDOW + 1];
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < st_dataset_n_rows(ds); i += 13) {
            st_bundle_input_t in;
            double p = NAN;
            st_bundle_input_from_row(b, ds, i, &in, rl, rs, rt, ru);
            st_bundle_predict(b, &in, &p);
            lo = p < lo ? p : lo;
            hi = p > hi ? p : hi;
        }
        if (!(lo > 800 && hi < 1200))
            fprintf(stderr, "  configuration %d: predictions in [%g, %g]\n", c, lo, hi);
        ST_CHECK(lo > 800 && hi < 1200);
        st_bundle_destroy(b);
    }
    st_dataset_destroy(ds);
}

static void test_spec_text(void)
{
    char err[256];
    st_bundle_spec_t s, t;
    st_bundle_spec_seed(&s);
    ST_EQ_INT(st_bundle_spec_set(&s, "cell", "gru", err, sizeof err), 0);
    ST_EQ_INT(st_bundle_spec_set(&s, "dropout", "0.2", err, sizeof err), 0);
    ST_EQ_INT(st_bundle_spec_set(&s, "cell", "rnn", err, sizeof err), -1);
    ST_CHECK(strstr(err, "cell") != NULL);
    ST_EQ_INT(st_bundle_spec_set(&s, "layers", "3", err, sizeof err), -1);
    char *json = st_bundle_spec_json(&s);
    ST_REQUIRE(json != NULL);
    st_bundle_spec_default(&t);
    ST_EQ_INT(st_bundle_spec_from_json(&t, json, err, sizeof err), 0);
    free(json);
    ST_EQ_INT(t.kind, ST_BUNDLE_PARITY);
    ST_EQ_INT(t.cell, ST_NN_CELL_GRU);
    ST_EQ_INT(t.units[0], 250);
    ST_EQ_INT(t.scaling, ST_BUNDLE_SCALE_MIXED);
    ST_NEAR(t.dropout, 0.2, 1e-6);
    ST_EQ_INT(st_bundle_spec_from_json(&t, "{\"nope\": 1}", err, sizeof err), -1);
}

int main(void)
{
    ST_RUN(test_rows_ordered_and_past);
    ST_RUN(test_features_use_only_the_past);
    ST_RUN(test_user_cut_split);
    ST_RUN(test_sessions_tsv);
    ST_RUN(test_precision_and_until);
    ST_RUN(test_leak_and_determinism);
    ST_RUN(test_save_load_predict);
    ST_RUN(test_members);
    ST_RUN(test_scaling_inverted);
    ST_RUN(test_spec_text);
    return st_test_summary();
}
