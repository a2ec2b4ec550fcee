/* fuzz_sessionizer_state.c - libFuzzer harness for what the sessionizer reads back from Redis: the
 * per-user state blob (st_sessionizer_state_decode) and the position text of the compare-and-set
 * (st_sessionizer_pos_parse). Accepted blobs must re-encode canonically (encode, decode, encode
 * gives the same bytes) and satisfy the state's bounds; rejected ones leave *out zeroed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "st_sessionizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_bounds(const st_sessionizer_state_t *st)
{
    const st_session_history_t *h = &st->history;
    if (h->n_recent > ST_SESSION_RECENT_MAX || h->n_recent > h->session_count ||
        h->n_detail > h->n_recent || st->n_ann > ST_SESSIONIZER_ANN_MAX)
        abort();
    for (uint32_t i = h->n_recent - h->n_detail; i < h->n_recent; i++)
        if (h->recent_unknown_count[i] > h->recent_track_count[i])
            abort();
    if (st->open.active && (st->open.track_count == 0 ||
                            st->open.unknown_duration_count > st->open.track_count))
        abort();
    if (!st->open.active && (st->open.track_count != 0 || st->open.first_start_ms != 0))
        abort();
    if (!st->has_pos && (st->pos.closed != 0 || st->pos.listened_at_ms != 0))
        abort();
}

static void check_state(const uint8_t *data, size_t size)
{
    static st_sessionizer_state_t st, again;
    static const st_sessionizer_state_t zero;
    st_err_t err = {0};
    if (st_sessionizer_state_decode(data, size, &st, &err) != 0) {
        if (err.code != ST_ERR_INVALID || err.text[0] == '\0' || memcmp(&st, &zero, sizeof st))
            abort();
        return;
    }
    check_bounds(&st);
    st_buf_t a = ST_BUF_INIT, b = ST_BUF_INIT;
    if (st_sessionizer_state_encode(&st, &a) != 0 ||
        st_sessionizer_state_decode(a.data, a.len, &again, &err) != 0 ||
        st_sessionizer_state_encode(&again, &b) != 0)
        abort();
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
        abort();
    st_buf_free(&a);
    st_buf_free(&b);
}

static void check_pos(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    st_sessionizer_pos_t pos, again;
    if (st_sessionizer_pos_parse(text, &pos) == 0) {
        char fmt[128];
        st_sessionizer_pos_format(&pos, fmt, sizeof fmt);
        if (st_sessionizer_pos_parse(fmt, &again) != 0 || st_sessionizer_pos_cmp(&pos, &again) != 0)
            abort();
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_state(data, size);
    check_pos(data, size);
    return 0;
}
