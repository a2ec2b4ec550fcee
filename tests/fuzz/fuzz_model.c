/* fuzz_model.c - libFuzzer harness for the model file loaders: the container (st_model_load:
 * header, versions, kind, length, CRC-32) and the three payload parsers behind it (st_nn_load,
 * st_scaler_load, st_cluster_load). The input is one model file, read from a memfd. Unless bit 0
 * of the reserved header word (byte 20, ignored by the loader) is set, the harness first writes
 * the right CRC-32 into the last four bytes, so that mutations reach the payload parsers instead
 * of stopping at the checksum. A model that loads must be usable (a prediction, a transform and
 * its inverse, a cluster assignment in 0..k-1) and save back to exactly the payload it was read
 * from. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "st_cluster.h"
#include "st_model.h"
#include "st_nn.h"
#include "st_scaler.h"

#define HEADER_BYTES 32 /* st_model.h's layout: magic, 4 x u32, u64 payload length */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char saved[512];

/* The model saved (save_rc is what the save returned), and the saved file's payload equals the
 * input's (both read back through st_model_load). */
static void check_saved(int save_rc, const char *path, uint32_t kind)
{
    void *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    char errstr[512];
    if (save_rc != 0 || st_model_load(path, kind, &a, &alen, NULL, errstr, sizeof errstr) != 0 ||
        st_model_load(saved, kind, &b, &blen, NULL, errstr, sizeof errstr) != 0)
        abort();
    if (alen != blen || memcmp(a, b, alen) != 0)
        abort();
    free(a);
    free(b);
}

static void check_nn(const char *path)
{
    char errstr[512];
    st_nn_t *nn = st_nn_load(path, errstr, sizeof errstr);
    if (!nn)
        return;
    const st_nn_arch_t *a = st_nn_arch(nn);
    st_nn_ctx_t *ctx = st_nn_ctx_new(nn, errstr, sizeof errstr);
    float *x = calloc((size_t)a->steps * (size_t)a->features, sizeof *x);
    float *out = calloc((size_t)a->outputs, sizeof *out);
    if (!ctx || !x || !out || st_nn_ctx_predict(ctx, x, a->steps, out) != 0)
        abort();
    free(x);
    free(out);
    st_nn_ctx_destroy(ctx);
    check_saved(st_nn_save(nn, saved, errstr, sizeof errstr), path, ST_MODEL_KIND_NN);
    st_nn_destroy(nn);
}

static void check_scaler(const char *path)
{
    char errstr[512];
    st_scaler_t *s = st_scaler_load(path, errstr, sizeof errstr);
    if (!s)
        return;
    float *row = calloc((size_t)st_scaler_dim(s), sizeof *row);
    if (!row)
        abort();
    st_scaler_transform(s, row, 1);
    st_scaler_inverse(s, row, 1);
    free(row);
    check_saved(st_scaler_save(s, saved, errstr, sizeof errstr), path, ST_MODEL_KIND_SCALER);
    st_scaler_destroy(s);
}

static void check_cluster(const char *path)
{
    char errstr[512];
    st_cluster_t *c = st_cluster_load(path, errstr, sizeof errstr);
    if (!c)
        return;
    double *origin = calloc((size_t)c->dim, sizeof *origin);
    if (!origin)
        abort();
    int label = st_cluster_assign(c, origin);
    free(origin);
    if (label < 0 || label >= c->k)
        abort();
    check_saved(st_cluster_save(c, saved, errstr, sizeof errstr), path, ST_MODEL_KIND_CLUSTER);
    st_cluster_destroy(c);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(saved, sizeof saved, "%s/saved.stm", fuzz_scratch_dir());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *file = data;
    uint8_t *fixed = NULL;
    if (size >= HEADER_BYTES + 4 && !(data[20] & 1)) {
        fixed = malloc(size);
        memcpy(fixed, data, size);
        uint32_t crc = st_model_crc32(fixed, size - 4);
        for (int i = 0; i < 4; i++)
            fixed[size - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
        file = fixed;
    }
    const char *path = fuzz_input_path(file, size);
    free(fixed);
    check_nn(path);
    check_scaler(path);
    check_cluster(path);
    return 0;
}
