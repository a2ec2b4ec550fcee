/* Unit tests of the model files: network and scaler round trips, and clear failures on
 * truncated, corrupted, foreign and wrong-kind files. Also the scaler's statistics. */
#include <unistd.h>

#include "st_model.h"
#include "st_nn.h"
#include "st_scaler.h"
#include "st_test.h"

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "/tmp/stint_test_model_%d_%s", (int)getpid(), name);
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)n);
    *len = fread(p, 1, (size_t)n, f);
    fclose(f);
    return p;
}

static void write_all(const char *path, const unsigned char *p, size_t len)
{
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, len, f);
    fclose(f);
}

static st_nn_t *trained_net(void)
{
    char err[256];
    st_nn_arch_t a;
    st_nn_arch_default(&a);
    a.steps = 3;
    a.features = 4;
    a.n_embed = 1;
    a.embed_vocab[0] = 5;
    a.embed_dim[0] = 2;
    a.cell = ST_NN_CELL_GRU;
    a.rnn_layers = 2;
    a.rnn_units[0] = 6;
    a.rnn_units[1] = 5;
    a.dense_layers = 1;
    a.dense_units[0] = 4;
    st_nn_t *nn = st_nn_new(&a, err, sizeof err);
    float x[8 * 12], y[8];
    for (int i = 0; i < 96; i++)
        x[i] = (i % 4 == 0) ? (float)(i % 5) : (float)((i * 37) % 11) / 11.0f;
    for (int i = 0; i < 8; i++)
        y[i] = (float)i / 8.0f;
    st_nn_data_t d = {8, 3, 4, x, NULL, y};
    st_nn_train_cfg_t c;
    st_nn_train_default(&c);
    c.epochs = 2;
    c.batch = 4;
    st_nn_train(nn, &d, NULL, &c, NULL, err, sizeof err);
    return nn;
}

static void test_nn_round_trip(void)
{
    char err[256], path[256];
    tmp_path(path, sizeof path, "net.stm");
    st_nn_t *nn = trained_net();
    ST_REQUIRE(nn != NULL);
    ST_REQUIRE(st_nn_save(nn, path, err, sizeof err) == 0);
    st_nn_t *back = st_nn_load(path, err, sizeof err);
    if (!back)
        fprintf(stderr, "%s\n", err);
    ST_REQUIRE(back != NULL);
    size_t n1, n2;
    float *w1 = st_nn_params(nn, &n1), *w2 = st_nn_params(back, &n2);
    ST_EQ_INT(n1, n2);
    ST_EQ_INT(memcmp(w1, w2, n1 * sizeof(float)), 0);
    ST_EQ_INT(st_nn_arch(back)->cell, ST_NN_CELL_GRU);
    ST_EQ_INT(st_nn_arch(back)->embed_vocab[0], 5);
    float x[12] = {1, 0.1f, 0.2f, 0.3f, 4, 0.5f, 0.6f, 0.7f, 2, 0.8f, 0.9f, 1.0f}, p1, p2;
    int len = 2;
    st_nn_data_t d = {1, 3, 4, x, &len, NULL};
    st_nn_predict(nn, &d, &p1, err, sizeof err);
    st_nn_predict(back, &d, &p2, err, sizeof err);
    ST_EQ_INT(memcmp(&p1, &p2, sizeof p1), 0);
    remove(path);
    st_nn_destroy(nn);
    st_nn_destroy(back);
}

static void test_nn_damaged_files(void)
{
    char err[256], path[256], bad[256];
    tmp_path(path, sizeof path, "good.stm");
    tmp_path(bad, sizeof bad, "bad.stm");
    st_nn_t *nn = trained_net();
    ST_REQUIRE(st_nn_save(nn, path, err, sizeof err) == 0);
    size_t len;
    unsigned char *file = read_all(path, &len);
    ST_REQUIRE(file != NULL && len > 100);
    /* every truncation fails, naming truncation */
    size_t cuts[] = {0, 7, 31, 35, 36, 100, len / 2, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_all(bad, file, cuts[i]);
        err[0] = '\0';
        ST_CHECK(st_nn_load(bad, err, sizeof err) == NULL);
        if (!strstr(err, "truncated"))
            fprintf(stderr, "  cut at %zu: \"%s\"\n", cuts[i], err);
        ST_CHECK(strstr(err, "truncated") != NULL);
    }
    /* a flipped byte anywhere in the payload or checksum fails the checksum */
    size_t flips[] = {40, len / 2, len - 5, len - 1};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        file[flips[i]] ^= 0x10;
        write_all(bad, file, len);
        file[flips[i]] ^= 0x10;
        ST_CHECK(st_nn_load(bad, err, sizeof err) == NULL);
        ST_CHECK(strstr(err, "checksum mismatch (corrupted)") != NULL);
    }
    file[0] = 'X';
    write_all(bad, file, len);
    ST_CHECK(st_nn_load(bad, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "bad magic") != NULL);
    file[0] = 'S';
    file[8] = 9; /* format version */
    write_all(bad, file, len);
    ST_CHECK(st_nn_load(bad, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "format version 9") != NULL);
    file[8] = 1;
    write_all(bad, file, len); /* intact again */
    st_nn_t *ok = st_nn_load(bad, err, sizeof err);
    ST_CHECK(ok != NULL);
    st_nn_destroy(ok);
    ST_CHECK(st_scaler_load(bad, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "wrong model kind 'NNET' (want 'SCAL')") != NULL);
    ST_CHECK(st_nn_load("/nonexistent/dir/x.stm", err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "cannot open") != NULL);
    free(file);
    remove(path);
    remove(bad);
    st_nn_destroy(nn);
}

/* A payload whose checksum is right but whose layout is wrong is rejected too. */
static void test_nn_bad_payload(void)
{
    char err[256], path[256];
    tmp_path(path, sizeof path, "payload.stm");
    st_buf_t b = ST_BUF_INIT;
    st_model_put_u32(&b, 1);
    st_model_put_u32(&b, 1);
    ST_REQUIRE(st_model_save(path, ST_MODEL_KIND_NN, 1, &b, err, sizeof err) == 0);
    ST_CHECK(st_nn_load(path, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "payload ends early") != NULL);
    st_buf_free(&b);
    remove(path);
}

/* Found with tests/fuzz/fuzz_model: an architecture that needs far more parameters than the file
 * holds (here a 10^7 x 1024 embedding, 40 GB, and 4 parameters) is refused before anything that
 * size is allocated. */
static void test_nn_oversized_arch(void)
{
    char err[256], path[256];
    tmp_path(path, sizeof path, "oversized.stm");
    st_buf_t b = ST_BUF_INIT;
    /* steps, features, outputs, n_embed; embeddings 0 (vocab, dim) to 3; cell, rnn_layers and
     * rnn_units; dropout; dense_layers, dense_units and dense_act */
    static const uint32_t head[] = {3, 16, 1, 1, 10000000, 1024, 0, 0, 0, 0, 0, 0, 0, 1, 4, 0};
    static const uint32_t dense[] = {0, 0, 0, 0};
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        st_model_put_u32(&b, head[i]);
    st_model_put_f32(&b, 0.0f);
    for (size_t i = 0; i < sizeof dense / sizeof dense[0]; i++)
        st_model_put_u32(&b, dense[i]);
    st_model_put_u64(&b, 1); /* seed */
    st_model_put_u64(&b, 4); /* n_params */
    float params[4] = {0};
    st_model_put_f32s(&b, params, 4);
    ST_REQUIRE(st_model_save(path, ST_MODEL_KIND_NN, 1, &b, err, sizeof err) == 0);
    ST_CHECK(st_nn_load(path, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "parameters, 4 given") != NULL);
    st_buf_free(&b);
    remove(path);
}

static void test_scaler(void)
{
    char err[256], path[256];
    /* 2 sequences x 3 steps x 2 features; the first has length 2, its padding is garbage */
    float x[12] = {1e9f, -1e9f, 1, 10, 3, 30, 5, 50, 7, 70, NAN, 90};
    int lengths[2] = {2, 3};
    unsigned char cols[2] = {1, 1};
    st_scaler_t *s = st_scaler_new(2, err, sizeof err);
    ST_REQUIRE(s != NULL);
    size_t skipped = st_scaler_fit_seq(s, x, 2, 3, lengths, cols);
    ST_EQ_INT(skipped, 1);
    ST_NEAR(st_scaler_mean(s, 0), 4.0, 1e-12); /* 1 3 5 7 */
    ST_NEAR(st_scaler_scale(s, 0), sqrt(5.0), 1e-12);
    ST_NEAR(st_scaler_mean(s, 1), 50.0, 1e-12); /* 10 30 50 70 90 */
    ST_NEAR(st_scaler_scale(s, 1), sqrt(800.0), 1e-12);
    float row[4] = {4, 50, 4 + 2 * sqrtf(5.0f), 50 - sqrtf(800.0f)};
    st_scaler_transform(s, row, 2);
    ST_NEAR(row[0], 0.0, 1e-6);
    ST_NEAR(row[1], 0.0, 1e-6);
    ST_NEAR(row[2], 2.0, 1e-6);
    ST_NEAR(row[3], -1.0, 1e-6);
    st_scaler_inverse(s, row, 2);
    ST_NEAR(row[2], 4 + 2 * sqrt(5.0), 1e-5);
    ST_NEAR(row[3], 50 - sqrt(800.0), 1e-4);
    /* a constant column and a pass-through column keep scale 1 */
    float c[6] = {2, 7, 2, 8, 2, 9};
    unsigned char only_first[2] = {1, 0};
    st_scaler_fit(s, c, 3, only_first);
    ST_NEAR(st_scaler_scale(s, 0), 1.0, 0.0);
    ST_NEAR(st_scaler_mean(s, 0), 2.0, 1e-12);
    ST_NEAR(st_scaler_mean(s, 1), 0.0, 0.0);
    tmp_path(path, sizeof path, "scaler.stm");
    st_scaler_fit_seq(s, x, 2, 3, lengths, NULL);
    ST_REQUIRE(st_scaler_save(s, path, err, sizeof err) == 0);
    st_scaler_t *back = st_scaler_load(path, err, sizeof err);
    ST_REQUIRE(back != NULL);
    ST_EQ_INT(st_scaler_dim(back), 2);
    ST_NEAR(st_scaler_mean(back, 1), st_scaler_mean(s, 1), 0.0);
    ST_NEAR(st_scaler_scale(back, 0), st_scaler_scale(s, 0), 0.0);
    remove(path);
    st_scaler_destroy(back);
    st_scaler_destroy(s);
    st_scaler_destroy(NULL);
    ST_CHECK(st_scaler_new(0, err, sizeof err) == NULL);
}

int main(void)
{
    ST_RUN(test_nn_round_trip);
    ST_RUN(test_nn_damaged_files);
    ST_RUN(test_nn_bad_payload);
    ST_RUN(test_nn_oversized_arch);
    ST_RUN(test_scaler);
    return st_test_summary();
}
