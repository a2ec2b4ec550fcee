/* fuzz_bundle.c - libFuzzer harness for st_bundle_load, the predictor's model bundle loader, on
 * its text files. Input: metadata.json, countries.txt and user_clusters.tsv separated by NUL bytes
 * (missing parts are empty files). The binary files (networks, scalers, the cluster model; their
 * parsers have fuzz_model) come from a template written once per process with the current writers:
 * a seq bundle (window 2, 16 features) or, when the metadata mentions "parity", a parity bundle
 * (1 step, 6 features); both with 3 networks and k-means k = 2 over 3 profile features; when it
 * mentions "gbt", a gbt bundle (window 2: trees over 17 columns in gbt.stm). A bundle
 * that loads must answer every query (cluster of a user, country ids, cluster of a profile in
 * -1..k-1, a prediction that is -1 or >= 0 s), save, and load back with the same answers. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "st_bundle.h"
#include "st_cluster.h"
#include "st_gbt.h"
#include "st_log.h"
#include "st_nn.h"
#include "st_scaler.h"

#define N_NETS 3
#define N_PF   3

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char seq_dir[512], parity_dir[512], gbt_dir[512], resaved[512];

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

static void write_template(char *dir, size_t dir_size, const char *name, int steps, int features,
                           int n_embed)
{
    char path[600], errstr[256];
    snprintf(dir, dir_size, "%s/%s", fuzz_scratch_dir(), name);
    if (mkdir(dir, 0700) != 0)
        abort();
    for (int i = 0; i < N_NETS; i++) {
        st_nn_arch_t a;
        st_nn_arch_default(&a);
        a.steps = steps;
        a.features = features;
        a.n_embed = n_embed;
        a.embed_vocab[0] = ST_BUNDLE_COUNTRY_VOCAB;
        a.embed_dim[0] = 4;
        a.rnn_units[0] = 4;
        a.seed = 1000003u + (uint64_t)i;
        st_nn_t *nn = st_nn_new(&a, errstr, sizeof errstr);
        st_scaler_t *x = st_scaler_new(features, errstr, sizeof errstr);
        st_scaler_t *y = st_scaler_new(1, errstr, sizeof errstr);
        char name_buf[64];
        snprintf(name_buf, sizeof name_buf, "net_%d.stm", i);
        path_in(path, sizeof path, dir, name_buf);
        if (!nn || !x || !y || st_nn_save(nn, path, errstr, sizeof errstr) != 0)
            abort();
        snprintf(name_buf, sizeof name_buf, "net_%d_x.scal", i);
        path_in(path, sizeof path, dir, name_buf);
        if (st_scaler_save(x, path, errstr, sizeof errstr) != 0)
            abort();
        snprintf(name_buf, sizeof name_buf, "net_%d_y.scal", i);
        path_in(path, sizeof path, dir, name_buf);
        if (st_scaler_save(y, path, errstr, sizeof errstr) != 0)
            abort();
        st_nn_destroy(nn);
        st_scaler_destroy(x);
        st_scaler_destroy(y);
    }
    st_cluster_t *c = st_cluster_alloc(ST_CLUSTER_KMEANS, 2, N_PF);
    st_scaler_t *p = st_scaler_new(N_PF, errstr, sizeof errstr);
    if (!c || !p)
        abort();
    for (int j = 0; j < N_PF; j++)
        c->centroids[N_PF + j] = 1.0;
    path_in(path, sizeof path, dir, "clusters.stm");
    if (st_cluster_save(c, path, errstr, sizeof errstr) != 0)
        abort();
    path_in(path, sizeof path, dir, "profile.scal");
    if (st_scaler_save(p, path, errstr, sizeof errstr) != 0)
        abort();
    st_cluster_destroy(c);
    st_scaler_destroy(p);
}

/* A gbt bundle's trees: a few rounds on rows of the window-2 layout (2 + 15 columns). */
static void write_gbt_template(void)
{
    enum { ROWS = 64, COLS = 2 + 15 };
    static float x[ROWS * COLS], y[ROWS];
    char path[600], errstr[256];
    snprintf(gbt_dir, sizeof gbt_dir, "%s/gbt", fuzz_scratch_dir());
    if (mkdir(gbt_dir, 0700) != 0)
        abort();
    for (int i = 0; i < ROWS; i++) {
        for (int c = 0; c < COLS; c++)
            x[i * COLS + c] = (float)((i * 7 + c * 3) % 11);
        y[i] = 5.0f + (float)(i % 5);
    }
    st_gbt_cfg_t gc;
    st_gbt_default(&gc);
    gc.rounds = 4;
    gc.depth = 2;
    st_gbt_t *g = st_gbt_train(x, y, ROWS, NULL, NULL, 0, COLS, &gc, NULL, errstr, sizeof errstr);
    path_in(path, sizeof path, gbt_dir, "gbt.stm");
    if (!g || st_gbt_save(g, path, errstr, sizeof errstr) != 0)
        abort();
    st_gbt_destroy(g);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    st_log_set_level(ST_LOG_ERROR);
    write_template(seq_dir, sizeof seq_dir, "seq", 3, ST_BUNDLE_SEQ_FEATURES, 1);
    write_template(parity_dir, sizeof parity_dir, "parity", 1, ST_BUNDLE_PARITY_FEATURES, 0);
    write_gbt_template();
    snprintf(resaved, sizeof resaved, "%s/resaved", fuzz_scratch_dir());
    return 0;
}

/* The answers a loaded bundle gives; two loads of the same bundle must agree. */
typedef struct {
    int k, cluster_a, cluster_b, country_a, country_b, assigned, rc;
    double length_s;
} answers_t;

static void ask(st_bundle_t *b, answers_t *out)
{
    static const double lengths[4] = {600.0, 1800.5, 30.0, 4000.0};
    static const int64_t starts[4] = {1240000000, 1240100000, 1240200000, 1240300000};
    static const int tracks[4] = {3, 9, 1, 20};
    static const double unknown[4] = {0.0, 0.5, 1.0, 0.25};
    static const double profile[N_PF] = {1500.0, 1200.0, 40.0};
    memset(out, 0, sizeof *out);
    out->k = st_bundle_k(b);
    out->cluster_a = st_bundle_user_cluster(b, "user_000001");
    out->cluster_b = st_bundle_user_cluster(b, "user_000003");
    out->country_a = st_bundle_country_id(b, "United States");
    out->country_b = st_bundle_country_id(b, "Japan");
    int n_pf = 0;
    st_bundle_profile_feature_names(b, &n_pf);
    double wide[ST_BUNDLE_MAX_PROFILE_FEATS];
    for (int i = 0; i < ST_BUNDLE_MAX_PROFILE_FEATS; i++)
        wide[i] = profile[i % N_PF];
    out->assigned = st_bundle_assign_cluster(b, wide);
    if (out->k < 0 || out->k > ST_BUNDLE_MAX_CLUSTERS || out->assigned < -1 ||
        out->assigned >= (out->k > 0 ? out->k : 1) || n_pf < 1 ||
        n_pf > ST_BUNDLE_MAX_PROFILE_FEATS || out->country_a < 0 || out->country_b < 0)
        abort();
    st_bundle_input_t in = {.lengths_s = lengths,
                            .starts_s = starts,
                            .track_counts = tracks,
                            .unknown_shares = unknown,
                            .n_recent = 4,
                            .n_sessions = 12,
                            .mean_length_s = NAN,
                            .median_length_s = NAN,
                            .start_s = 1240400000,
                            .gap_s = 3600.0,
                            .gender = 'f',
                            .age = 25,
                            .country = "Japan",
                            .registered_s = 1150000000,
                            .cluster = out->cluster_a};
    out->rc = st_bundle_predict(b, &in, &out->length_s);
    if (out->rc != 0 && out->rc != -1)
        abort();
    if (out->rc == 0 && !(out->length_s >= 0.0))
        abort();
    if (out->rc != 0)
        out->length_s = 0.0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Split at NUL bytes: metadata.json, countries.txt, user_clusters.tsv. */
    static const char *const names[3] = {"metadata.json", "countries.txt", "user_clusters.tsv"};
    const uint8_t *part[3] = {data, data + size, data + size};
    size_t len[3] = {size, 0, 0};
    for (int i = 0; i < 2; i++) {
        const uint8_t *nul = memchr(part[i], '\0', len[i]);
        if (!nul)
            break;
        part[i + 1] = nul + 1;
        len[i + 1] = (size_t)(part[i] + len[i] - part[i + 1]);
        len[i] = (size_t)(nul - part[i]);
    }
    static const char parity[] = "\"parity\"", gbt[] = "\"gbt\"";
    const char *dir = seq_dir;
    for (size_t i = 0; i + sizeof parity - 1 <= len[0]; i++)
        if (memcmp(part[0] + i, parity, sizeof parity - 1) == 0)
            dir = parity_dir;
    for (size_t i = 0; dir == seq_dir && i + sizeof gbt - 1 <= len[0]; i++)
        if (memcmp(part[0] + i, gbt, sizeof gbt - 1) == 0)
            dir = gbt_dir;
    char path[600], errstr[512];
    for (int i = 0; i < 3; i++) {
        path_in(path, sizeof path, dir, names[i]);
        fuzz_write_file(path, part[i], len[i]);
    }
    st_bundle_t *b = st_bundle_load(dir, errstr, sizeof errstr);
    if (!b)
        return 0;
    answers_t first, second;
    ask(b, &first);
    if (st_bundle_save(b, resaved, NULL, errstr, sizeof errstr) != 0) {
        fprintf(stderr, "fuzz_bundle: save: %s\n", errstr);
        abort();
    }
    st_bundle_destroy(b);
    b = st_bundle_load(resaved, errstr, sizeof errstr);
    if (!b) {
        fprintf(stderr, "fuzz_bundle: a saved bundle does not load: %s\n", errstr);
        abort();
    }
    ask(b, &second);
    st_bundle_destroy(b);
    if (memcmp(&first, &second, sizeof first) != 0) {
        fprintf(stderr, "fuzz_bundle: the saved bundle answers differently\n");
        abort();
    }
    return 0;
}
