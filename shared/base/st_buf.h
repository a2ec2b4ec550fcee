/* st_buf.h - a growable byte buffer (always NUL-terminated for convenience) and a 64-bit hash. */
#ifndef ST_BUF_H
#define ST_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
} st_buf_t;

#define ST_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Ensures room for extra more bytes (plus the terminating NUL). Returns 0 or -1 (ENOMEM). */
int st_buf_reserve(st_buf_t *b, size_t extra);
int st_buf_append(st_buf_t *b, const void *data, size_t len);
int st_buf_append_str(st_buf_t *b, const char *s);
int st_buf_printf(st_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empties the buffer, keeping its memory. */
void st_buf_reset(st_buf_t *b);
/* Frees the memory; the buffer may be reused afterwards. */
void st_buf_free(st_buf_t *b);

/* A fast, deterministic 64-bit hash (FNV-1a with a murmur3 finaliser); seed 0 for ids. */
uint64_t st_hash64(const void *data, size_t len, uint64_t seed);

#endif
