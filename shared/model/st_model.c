/* st_model.c - the model file container: little-endian header, payload, CRC-32 trailer, and the
 * payload writers/readers shared by the network, scaler and cluster model files. */
#include "st_model.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_err.h"

#define HEADER_BYTES 32
#define MAGIC        "STINTMDL"

static void le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

int st_model_put_u32(st_buf_t *b, uint32_t v)
{
    unsigned char p[4];
    le32(p, v);
    return st_buf_append(b, p, 4);
}

int st_model_put_u64(st_buf_t *b, uint64_t v)
{
    unsigned char p[8];
    le64(p, v);
    return st_buf_append(b, p, 8);
}

int st_model_put_f32(st_buf_t *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return st_model_put_u32(b, u);
}

int st_model_put_f32s(st_buf_t *b, const float *v, size_t n)
{
    if (st_buf_reserve(b, n * 4) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (st_model_put_f32(b, v[i]) != 0)
            return -1;
    return 0;
}

int st_model_put_f64s(st_buf_t *b, const double *v, size_t n)
{
    if (st_buf_reserve(b, n * 8) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &v[i], 8);
        if (st_model_put_u64(b, u) != 0)
            return -1;
    }
    return 0;
}

void st_model_reader_init(st_model_reader_t *r, const void *data, size_t len)
{
    r->data = data;
    r->len = len;
    r->pos = 0;
    r->err[0] = '\0';
}

static int need(st_model_reader_t *r, size_t n)
{
    if (r->err[0])
        return -1;
    if (n > r->len - r->pos) {
        snprintf(r->err, sizeof r->err,
                 "payload ends early: need %zu bytes at offset %zu, payload has %zu", n, r->pos,
                 r->len);
        return -1;
    }
    return 0;
}

int st_model_get_u32(st_model_reader_t *r, uint32_t *v)
{
    if (need(r, 4) != 0)
        return -1;
    *v = rd32(r->data + r->pos);
    r->pos += 4;
    return 0;
}

int st_model_get_u64(st_model_reader_t *r, uint64_t *v)
{
    if (need(r, 8) != 0)
        return -1;
    *v = rd64(r->data + r->pos);
    r->pos += 8;
    return 0;
}

int st_model_get_f32(st_model_reader_t *r, float *v)
{
    uint32_t u;
    if (st_model_get_u32(r, &u) != 0)
        return -1;
    memcpy(v, &u, 4);
    return 0;
}

int st_model_get_f32s(st_model_reader_t *r, float *v, size_t n)
{
    if (n > SIZE_MAX / 4 || need(r, n * 4) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = rd32(r->data + r->pos + 4 * i);
        memcpy(&v[i], &u, 4);
    }
    r->pos += n * 4;
    return 0;
}

int st_model_get_f64s(st_model_reader_t *r, double *v, size_t n)
{
    if (n > SIZE_MAX / 8 || need(r, n * 8) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint64_t u = rd64(r->data + r->pos + 8 * i);
        memcpy(&v[i], &u, 8);
    }
    r->pos += n * 8;
    return 0;
}

int st_model_reader_done(st_model_reader_t *r)
{
    if (r->err[0])
        return -1;
    if (r->pos != r->len) {
        snprintf(r->err, sizeof r->err, "%zu unexpected trailing payload bytes", r->len - r->pos);
        return -1;
    }
    return 0;
}

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t st_model_crc32(const void *data, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const uint32_t *table = crc_table;
    const unsigned char *p = data;
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc ^ 0xffffffffu;
}

static void kind_text(uint32_t kind, char out[5])
{
    for (int i = 0; i < 4; i++) {
        unsigned char c = (unsigned char)(kind >> (8 * i));
        out[i] = (c >= 32 && c < 127) ? (char)c : '?';
    }
    out[4] = '\0';
}

int st_model_save(const char *path, uint32_t kind, uint32_t kind_version, const st_buf_t *payload,
                  char *errstr, size_t errstr_size)
{
    size_t len = payload ? payload->len : 0;
    unsigned char *file = malloc(HEADER_BYTES + len + 4);
    if (!file)
        return st_errstr(errstr, errstr_size, "%s: out of memory", path);
    memcpy(file, MAGIC, 8);
    le32(file + 8, ST_MODEL_FORMAT_VERSION);
    le32(file + 12, kind);
    le32(file + 16, kind_version);
    le32(file + 20, 0);
    le64(file + 24, len);
    if (len)
        memcpy(file + HEADER_BYTES, payload->data, len);
    le32(file + HEADER_BYTES + len, st_model_crc32(file, HEADER_BYTES + len));

    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(file);
        return st_errstr(errstr, errstr_size, "%s: path too long", path);
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        free(file);
        return st_errstr(errstr, errstr_size, "%s: cannot create: %s", tmp, strerror(e));
    }
    size_t total = HEADER_BYTES + len + 4;
    int ok = fwrite(file, 1, total, f) == total;
    ok = (fclose(f) == 0) && ok;
    free(file);
    if (!ok) {
        remove(tmp);
        return st_errstr(errstr, errstr_size, "%s: write failed", tmp);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return st_errstr(errstr, errstr_size, "%s: rename failed: %s", path, strerror(e));
    }
    return 0;
}

int st_model_load(const char *path, uint32_t kind, void **payload, size_t *payload_len,
                  uint32_t *kind_version, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return st_errstr(errstr, errstr_size, "%s: cannot open: %s", path, strerror(errno));
    st_buf_t b = ST_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (st_buf_append(&b, chunk, n) != 0) {
            fclose(f);
            st_buf_free(&b);
            return st_errstr(errstr, errstr_size, "%s: out of memory", path);
        }
    }
    int read_err = ferror(f);
    fclose(f);
    const unsigned char *p = (const unsigned char *)b.data;
    int rc = -1;
    char want[5], got[5];
    if (read_err) {
        st_errstr(errstr, errstr_size, "%s: read error", path);
    } else if (b.len < HEADER_BYTES + 4) {
        st_errstr(errstr, errstr_size,
                  "%s: truncated model file: %zu bytes, a header and checksum need %d", path, b.len,
                  HEADER_BYTES + 4);
    } else if (memcmp(p, MAGIC, 8) != 0) {
        st_errstr(errstr, errstr_size, "%s: not a stint model file (bad magic)", path);
    } else if (rd32(p + 8) != ST_MODEL_FORMAT_VERSION) {
        st_errstr(errstr, errstr_size, "%s: unsupported model file format version %u (want %u)",
                  path, rd32(p + 8), ST_MODEL_FORMAT_VERSION);
    } else if (rd32(p + 12) != kind) {
        kind_text(kind, want);
        kind_text(rd32(p + 12), got);
        st_errstr(errstr, errstr_size, "%s: wrong model kind '%s' (want '%s')", path, got, want);
    } else if (rd64(p + 24) > b.len - HEADER_BYTES - 4) {
        st_errstr(errstr, errstr_size,
                  "%s: truncated model file: header announces %llu payload bytes, file holds %zu",
                  path, (unsigned long long)rd64(p + 24), b.len - HEADER_BYTES - 4);
    } else if (rd64(p + 24) < b.len - HEADER_BYTES - 4) {
        st_errstr(errstr, errstr_size, "%s: %zu trailing bytes after the checksum (corrupted)",
                  path, (size_t)(b.len - HEADER_BYTES - 4 - rd64(p + 24)));
    } else {
        size_t len = (size_t)rd64(p + 24);
        uint32_t stored = rd32(p + HEADER_BYTES + len);
        uint32_t actual = st_model_crc32(p, HEADER_BYTES + len);
        if (stored != actual) {
            st_errstr(errstr, errstr_size,
                      "%s: checksum mismatch (corrupted): stored %08x, computed %08x", path, stored,
                      actual);
        } else {
            void *out = malloc(len ? len : 1);
            if (!out) {
                st_errstr(errstr, errstr_size, "%s: out of memory", path);
            } else {
                memcpy(out, p + HEADER_BYTES, len);
                *payload = out;
                *payload_len = len;
                if (kind_version)
                    *kind_version = rd32(p + 16);
                rc = 0;
            }
        }
    }
    st_buf_free(&b);
    return rc;
}
