/* ingest.c - parse, encode and deduplicate one batch of listens.raw messages. */
#include "ingest.h"

#include "st_metrics.h"
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
        r->listened_at_ms = b->listen.timestamp_ms;
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

struct ingest {
    ingest_batch_t *batch;
    ingest_store_t *store;
    char *out_topic;
    int64_t dedup_ttl_s;
    ingest_bounds_t bounds;
    /* The batch's valid (read) or new (write) records as store arguments, the owners found for
     * them, and the mark of each record for ingest_batch_decide. */
    ingest_mark_t *args;
    const char **found, **marks;
    size_t cap;
    /* Counts of the batch, added to the metrics once its outputs are acknowledged (apply). */
    uint64_t n_valid, n_dup, n_invalid[ST_LISTEN_REASON_COUNT];
    st_metric_t *m_valid, *m_dup, *m_invalid[ST_LISTEN_REASON_COUNT];
};

ingest_t *ingest_new(st_avro_codec_t *listen_codec, ingest_store_t *store, const ingest_opts_t *o)
{
    ingest_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->store = store;
    g->dedup_ttl_s = o->dedup_ttl_s;
    g->bounds = (ingest_bounds_t){.window_ms = o->dedup_window_s * 1000,
                                  .ttl_s = o->dedup_ttl_s,
                                  .max_per_user = o->dedup_max_per_user};
    if (!(g->batch = ingest_batch_new(listen_codec)) || !(g->out_topic = strdup(o->out_topic))) {
        ingest_destroy(g);
        return NULL;
    }
    g->m_valid = st_metrics_counter("stint_ingest_valid_total", NULL,
                                    "Valid listens produced to the output topic.");
    g->m_dup = st_metrics_counter("stint_ingest_duplicates_total", NULL,
                                  "Exact duplicates dropped (same event_id within the window).");
    for (int k = 1; k < ST_LISTEN_REASON_COUNT; k++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"",
                 st_listen_reason_name((st_listen_reason_t)k));
        g->m_invalid[k] = st_metrics_counter("stint_ingest_invalid_total", labels,
                                             "Invalid messages sent to the dead-letter topic.");
    }
    return g;
}

void ingest_destroy(ingest_t *g)
{
    if (!g)
        return;
    ingest_batch_destroy(g->batch);
    free(g->out_topic);
    free(g->args);
    free(g->marks);
    free(g->found);
    free(g);
}

static int reserve(ingest_t *g, size_t n)
{
    if (n <= g->cap)
        return 0;
    ingest_mark_t *args = realloc(g->args, n * sizeof *args);
    if (!args)
        return -1;
    g->args = args;
    const char **marks = realloc(g->marks, n * sizeof *marks);
    if (!marks)
        return -1;
    g->marks = marks;
    const char **found = realloc(g->found, n * sizeof *found);
    if (!found)
        return -1;
    g->found = found;
    g->cap = n;
    return 0;
}

/* The store's view of a valid record. */
static ingest_mark_t mark_of(const ingest_t *g, const ingest_record_t *r)
{
    return (ingest_mark_t){.user = ingest_batch_data(g->batch) + r->key_off,
                           .user_len = r->key_len,
                           .event_id = r->event_id,
                           .owner = r->owner,
                           .listened_at_ms = r->listened_at_ms};
}

static void clear_counts(ingest_t *g)
{
    g->n_valid = g->n_dup = 0;
    memset(g->n_invalid, 0, sizeof g->n_invalid);
}

int ingest_process(ingest_t *g, const st_msg_t *msgs, size_t n, int64_t now_ms, st_out_t *out,
                   st_err_t *err)
{
    clear_counts(g);
    if (reserve(g, n) != 0) {
        st_err_nomem(err);
        return -1;
    }
    if (ingest_batch_parse(g->batch, msgs, n, now_ms, err) != 0)
        return -1;
    /* The marks of the valid records, read in one round; decide wants one per record. */
    size_t nv = 0;
    for (size_t i = 0; i < n; i++) {
        const ingest_record_t *r = ingest_batch_record(g->batch, i);
        if (r->verdict != INGEST_INVALID)
            g->args[nv++] = mark_of(g, r);
    }
    bool dedup = g->dedup_ttl_s > 0;
    if (dedup && nv > 0 && g->store->read(g->store->ctx, g->args, nv, g->found, err) != 0)
        return -1;
    for (size_t i = 0, j = 0; i < n; i++) {
        bool valid = ingest_batch_record(g->batch, i)->verdict != INGEST_INVALID;
        g->marks[i] = dedup && valid ? g->found[j] : NULL;
        j += valid;
    }
    if (ingest_batch_decide(g->batch, dedup ? g->marks : NULL) != 0) {
        st_err_nomem(err);
        return -1;
    }
    const char *data = ingest_batch_data(g->batch);
    for (size_t i = 0; i < n; i++) {
        const ingest_record_t *r = ingest_batch_record(g->batch, i);
        int rc = 0;
        switch (r->verdict) {
        case INGEST_INVALID:
            g->n_invalid[r->reason]++;
            rc = st_out_dead_letter(out, &msgs[i], st_listen_reason_name(r->reason), r->error);
            break;
        case INGEST_NEW:
            g->n_valid++;
            rc = st_out_produce(out, g->out_topic, data + r->key_off, r->key_len,
                                data + r->value_off, r->value_len);
            break;
        case INGEST_DUPLICATE:
            g->n_dup++;
            break;
        }
        if (rc != 0) {
            st_err_nomem(err);
            return -1;
        }
    }
    return 0;
}

int ingest_apply(ingest_t *g, st_err_t *err)
{
    size_t n = ingest_batch_size(g->batch), nw = 0;
    for (size_t i = 0; i < n && g->dedup_ttl_s > 0; i++) {
        const ingest_record_t *r = ingest_batch_record(g->batch, i);
        if (r->verdict != INGEST_NEW)
            continue;
        g->args[nw++] = mark_of(g, r);
    }
    if (nw > 0 && g->store->write(g->store->ctx, g->args, nw, &g->bounds, err) != 0)
        return -1;
    st_metric_inc(g->m_valid, g->n_valid);
    st_metric_inc(g->m_dup, g->n_dup);
    for (int k = 1; k < ST_LISTEN_REASON_COUNT; k++)
        st_metric_inc(g->m_invalid[k], g->n_invalid[k]);
    clear_counts(g);
    return 0;
}
