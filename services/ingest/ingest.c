/* ingest.c - parse, encode and deduplicate one batch of listens.raw messages. */
#include "ingest.h"

#include "st_records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ingest_batch_s {
    st_avro_codec_t *codec;
    st_listen_t listen; /* ~7 KB, reused */
    ingest_record_t *recs;
    size_t n, cap;
    st_buf_t data;
    st_buf_t enc;
    uint64_t *seen; /* open-addressing set of event ids (0 = empty slot) */
    size_t seen_cap;
};

ingest_batch_t *ingest_batch_new(st_avro_codec_t *listen_codec)
{
    ingest_batch_t *b = calloc(1, sizeof *b);
    if (b)
        b->codec = listen_codec;
    return b;
}

void ingest_batch_destroy(ingest_batch_t *b)
{
    if (!b)
        return;
    free(b->recs);
    free(b->seen);
    st_buf_free(&b->data);
    st_buf_free(&b->enc);
    free(b);
}

size_t ingest_batch_size(const ingest_batch_t *b)
{
    return b->n;
}

const ingest_record_t *ingest_batch_record(const ingest_batch_t *b, size_t i)
{
    return &b->recs[i];
}

const char *ingest_batch_data(const ingest_batch_t *b)
{
    return b->data.data;
}

static int encode_listen(ingest_batch_t *b, const st_listen_t *l, st_err_t *err)
{
    st_rec_listen_t r = st_rec_listen_from(l);
    return st_rec_listen_encode(b->codec, &r, &b->enc, err);
}

int ingest_batch_parse(ingest_batch_t *b, const st_msg_t *msgs, size_t n, int64_t now_ms,
                       st_err_t *err)
{
    if (n > b->cap) {
        ingest_record_t *r = realloc(b->recs, n * sizeof *r);
        if (!r) {
            st_err_nomem(err);
            return -1;
        }
        b->recs = r;
        b->cap = n;
    }
    b->n = 0;
    st_buf_reset(&b->data);
    for (size_t i = 0; i < n; i++) {
        ingest_record_t *r = &b->recs[b->n++];
        st_err_t perr = {0};
        memset(r, 0, sizeof *r);
        snprintf(r->owner, sizeof r->owner, "%d:%lld", (int)msgs[i].partition,
                 (long long)msgs[i].offset);
        int64_t rec_now = msgs[i].timestamp_ms > 0 ? msgs[i].timestamp_ms : now_ms;
        r->reason = st_listen_parse(msgs[i].value ? msgs[i].value : "", msgs[i].value_len, rec_now,
                                    &b->listen, &perr);
        if (r->reason != ST_LISTEN_OK) {
            r->verdict = INGEST_INVALID;
            memcpy(r->error, perr.text, sizeof r->error);
            continue;
        }
        r->verdict = INGEST_NEW;
        memcpy(r->event_id, b->listen.event_id, sizeof r->event_id);
        if (encode_listen(b, &b->listen, err) != 0)
            return -1;
        r->key_len = strlen(b->listen.user_id);
        r->key_off = b->data.len;
        if (st_buf_append(&b->data, b->listen.user_id, r->key_len) != 0)
            goto nomem;
        r->value_off = b->data.len;
        r->value_len = b->enc.len;
        if (st_buf_append(&b->data, b->enc.data, b->enc.len) != 0)
            goto nomem;
    }
    return 0;
nomem:
    st_err_nomem(err);
    return -1;
}

/* Inserts id into the set; returns true when it was already there. */
static bool seen_insert(ingest_batch_t *b, uint64_t id)
{
    size_t mask = b->seen_cap - 1, i = (size_t)(id * 0x9e3779b97f4a7c15ULL) & mask;
    while (b->seen[i] != 0) {
        if (b->seen[i] == id)
            return true;
        i = (i + 1) & mask;
    }
    b->seen[i] = id;
    return false;
}

int ingest_batch_decide(ingest_batch_t *b, const char *const *marks)
{
    size_t cap = 16;
    while (cap < 2 * b->n)
        cap *= 2;
    if (cap > b->seen_cap) {
        uint64_t *s = realloc(b->seen, cap * sizeof *s);
        if (!s)
            return -1;
        b->seen = s;
        b->seen_cap = cap;
    }
    memset(b->seen, 0, b->seen_cap * sizeof *b->seen);
    for (size_t i = 0; i < b->n; i++) {
        ingest_record_t *r = &b->recs[i];
        if (r->verdict == INGEST_INVALID)
            continue;
        /* 0 marks an empty slot, so the id 0 is stored as 1 (it then collides with id 1 only). */
        uint64_t id = strtoull(r->event_id, NULL, 16);
        bool in_batch = seen_insert(b, id ? id : 1);
        const char *mark = marks ? marks[i] : NULL;
        if (in_batch || (mark && strcmp(mark, r->owner) != 0))
            r->verdict = INGEST_DUPLICATE;
        else
            r->verdict = INGEST_NEW;
    }
    return 0;
}
