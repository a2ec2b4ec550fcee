/* fuzz_lastfm_api.c - libFuzzer harness for st_lastfm_api_parse_track_info, the parser of Last.fm's
 * track.getInfo JSON answer (the enricher feeds it whatever the network returned). Checks: the
 * result is consistent with its status (OK: no error code, duration -1 or >= 1, 0..5 non-empty
 * tags that are NUL-terminated, valid UTF-8 and cut at a character boundary; otherwise no tags,
 * no duration and a reason), and an error code maps to its status through
 * st_lastfm_api_classify_error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "st_lastfm_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* True when s[0..n) is well-formed UTF-8 (jansson only hands out well-formed strings). */
static int utf8_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k = c < 0x80             ? 0
                   : (c & 0xE0) == 0xC0 ? 1
                   : (c & 0xF0) == 0xE0 ? 2
                   : (c & 0xF8) == 0xF0 ? 3
                                        : 4;
        if (k == 4 || k >= n - i)
            return 0;
        for (size_t j = 1; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
        i += k + 1;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static st_lastfm_api_result_t r;
    /* A copy of exactly the body's size (it need not be NUL-terminated). */
    char *body = malloc(size ? size : 1);
    memcpy(body, data, size);
    st_lastfm_api_parse_track_info(body, size, &r);
    free(body);
    if (r.status > ST_LASTFM_API_OTHER || r.http_status != 0)
        abort();
    if (memchr(r.reason, '\0', sizeof r.reason) == NULL)
        abort();
    if (r.status == ST_LASTFM_API_OK) {
        if (r.lastfm_error != 0 || r.rate_limited || r.reason[0] != '\0')
            abort();
        if (r.duration_ms != -1 && r.duration_ms < 1)
            abort();
        if (r.n_tags < 0 || r.n_tags > ST_LASTFM_API_MAX_TAGS)
            abort();
        for (int i = 0; i < r.n_tags; i++) {
            const char *t = r.tags[i];
            size_t n = strnlen(t, ST_LASTFM_API_TAG_SIZE);
            if (n == 0 || n == ST_LASTFM_API_TAG_SIZE || !utf8_ok((const unsigned char *)t, n))
                abort();
        }
        return 0;
    }
    if (r.n_tags != 0 || r.duration_ms != -1 || r.reason[0] == '\0')
        abort();
    if (r.lastfm_error != 0 && (r.status != st_lastfm_api_classify_error(r.lastfm_error) ||
                                r.rate_limited != (r.lastfm_error == 29)))
        abort();
    if (r.lastfm_error == 0 && (r.status != ST_LASTFM_API_OTHER || r.rate_limited))
        abort();
    return 0;
}
