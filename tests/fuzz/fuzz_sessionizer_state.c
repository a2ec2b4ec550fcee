/* fuzz_sessionizer_state.c - libFuzzer harness for what the sessionizer reads back from Redis: the
 * per-user state blob (st_sessionizer_state_decode) and the position text of the compare-and-set
 * (st_sessionizer_pos_parse). Accepted blobs must re-encode canonically (encode, decode, encode
 * gives the same bytes) and satisfy the state's bounds; rejected ones leave *out zeroed. A blob
 * that decodes is also what a sessionizer continues from: it goes into the in-memory store and
 * four listens after its last start are applied (prepare, finish) without a sanitizer report and
 * without the state counting as corrupt. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "st_log.h"
#include "st_sessionizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
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
    if (st->open.active &&
        (st->open.track_count == 0 || st->open.unknown_duration_count > st->open.track_count))
        abort();
    if (!st->open.active && (st->open.track_count != 0 || st->open.first_start_ms != 0))
        abort();
    if (!st->has_pos && (st->pos.closed != 0 || st->pos.listened_at_ms != 0))
        abort();
}

/* A state that decodes is one the sessionizer continues from: store it, apply listens after it. */
static void continue_from(const uint8_t *data, size_t size, const st_sessionizer_state_t *st)
{
    char errstr[256];
    st_err_t err = {0};
    st_sessionizer_store_t *store = st_sessionizer_memstore_new();
    st_sessionizer_config_t cfg;
    st_sessionizer_config_default(&cfg);
    cfg.announce = size & 1;
    st_sessionizer_t *sz = st_sessionizer_new(&cfg, store, errstr, sizeof errstr);
    if (!store || !sz)
        abort();
    st_sessionizer_write_t w = {.user = {"u", 1}, .blob = (const char *)data, .blob_len = size};
    st_sessionizer_pos_t none = {ST_SESSIONIZER_POS_NONE_MS, 0, -1, 0, -1};
    st_sessionizer_pos_format(&none, w.pos_text, sizeof w.pos_text);
    if (store->put_states(store->ctx, &w, 1, &err) != 0)
        abort();
    int64_t t = st->open.active ? st->open.last_start_ms : st->history.last_end_ms;
    if (t > (INT64_C(1) << 49) || t < -(INT64_C(1) << 49))
        t = 0;
    static const int64_t after[4] = {0, 240000, 600000, 4 * 3600000};
    for (int i = 0; i < 4; i++) {
        st_sessionizer_record_t rec = {0, i, "u", 1, t + after[i], 200000, (uint64_t)i};
        if (st_sessionizer_push(sz, &rec, &err) < 0)
            abort();
    }
    if (st_sessionizer_prepare(sz, true, &err) != 0 || st_sessionizer_finish(sz, &err) != 0)
        abort();
    st_sessionizer_stats_t stats;
    st_sessionizer_stats(sz, &stats);
    if (stats.corrupt_states != 0)
        abort();
    st_sessionizer_destroy(sz);
    st_sessionizer_memstore_destroy(store);
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
    continue_from(data, size, &st);
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

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    st_log_set_level(ST_LOG_ERROR); /* odd states make the sessionizer warn */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_state(data, size);
    check_pos(data, size);
    return 0;
}
