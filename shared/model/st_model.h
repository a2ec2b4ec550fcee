/* st_model.h - the container of every stint model file (networks, scalers, cluster models):
 * a versioned little-endian header, a typed payload and a CRC-32 trailer, plus bounds-checked
 * little-endian writers and readers for the payload.
 *
 * Layout (all integers little-endian):
 *   0  8 bytes  magic "STINTMDL"
 *   8  u32      container format version (ST_MODEL_FORMAT_VERSION)
 *  12  u32      kind (a four-character code, e.g. ST_MODEL_KIND_NN)
 *  16  u32      kind version (the payload layout's own version)
 *  20  u32      reserved, 0
 *  24  u64      payload length in bytes
 *  32  payload
 *  32+len u32   CRC-32 (IEEE) of every byte before it
 * Loading checks size, magic, versions, kind, length and checksum, in that order, and says which
 * check failed ("truncated", "checksum mismatch (corrupted)", ...). */
#ifndef ST_MODEL_H
#define ST_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "st_buf.h"

#define ST_MODEL_FORMAT_VERSION 1u
#define ST_MODEL_FOURCC(a, b, c, d)                                                                \
    ((uint32_t)(a) | ((uint32_t)(b) << 8) | ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))
#define ST_MODEL_KIND_NN      ST_MODEL_FOURCC('N', 'N', 'E', 'T')
#define ST_MODEL_KIND_CLUSTER ST_MODEL_FOURCC('C', 'L', 'S', 'T')
#define ST_MODEL_KIND_SCALER  ST_MODEL_FOURCC('S', 'C', 'A', 'L')

/* Little-endian appenders to a payload buffer; each returns 0 or -1 (out of memory). */
int st_model_put_u32(st_buf_t *b, uint32_t v);
int st_model_put_u64(st_buf_t *b, uint64_t v);
int st_model_put_f32(st_buf_t *b, float v);
int st_model_put_f32s(st_buf_t *b, const float *v, size_t n);
int st_model_put_f64s(st_buf_t *b, const double *v, size_t n);

/* A bounds-checked reader over a payload (borrowed bytes). After the first failure every get
 * returns -1 and err holds the reason. */
typedef struct {
    const unsigned char *data;
    size_t len;
    size_t pos;
    char err[160];
} st_model_reader_t;

void st_model_reader_init(st_model_reader_t *r, const void *data, size_t len);
int st_model_get_u32(st_model_reader_t *r, uint32_t *v);
int st_model_get_u64(st_model_reader_t *r, uint64_t *v);
int st_model_get_f32(st_model_reader_t *r, float *v);
int st_model_get_f32s(st_model_reader_t *r, float *v, size_t n);
int st_model_get_f64s(st_model_reader_t *r, double *v, size_t n);
/* Fails unless the whole payload was consumed (trailing bytes mean a layout mismatch). */
int st_model_reader_done(st_model_reader_t *r);

/* CRC-32 (IEEE 802.3, as zlib) of n bytes. */
uint32_t st_model_crc32(const void *data, size_t n);

/* Writes header + payload + checksum to path atomically (path.tmp then rename).
 * Returns 0, or -1 with errstr filled. */
int st_model_save(const char *path, uint32_t kind, uint32_t kind_version, const st_buf_t *payload,
                  char *errstr, size_t errstr_size);

/* Reads and verifies path; on success *payload receives a new malloc'd copy of the payload
 * (caller frees), *payload_len its length, *kind_version the payload version. Returns 0, or -1
 * with errstr saying which check failed. */
int st_model_load(const char *path, uint32_t kind, void **payload, size_t *payload_len,
                  uint32_t *kind_version, char *errstr, size_t errstr_size);

#endif
