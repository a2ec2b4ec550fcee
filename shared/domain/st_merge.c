/* st_merge.c - time-ordered reading of a Last.fm listens file whose users' lines are newest-first
 * (the Last.fm 1K) or oldest-first: an index of user blocks, chunked cursors over each block
 * (backward or forward, pread on one descriptor), a binary heap. */
#include "st_merge.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_buf.h"
#include "st_log.h"

#define DEFAULT_CHUNK_BYTES (32u * 1024)
#define MIN_CHUNK_BYTES     16
/* The longest line that can be valid: 6 fields at the limit, 5 tabs, a '\r'. Longer lines are
 * skipped by the cursors without being buffered whole. */
#define LINE_MAX_BYTES (6 * ST_LASTFM_FIELD_MAX + 6)

typedef struct {
    size_t user_off; /* user id in m->names */
    uint32_t user_len;
    uint32_t user_rank; /* position of the user id in bytewise order */
    uint32_t up, down;  /* valid lines newer / older than the block's previous one */
    uint64_t lo, hi;    /* bytes [lo, hi): first line's start to the end of the last (no '\n') */
    uint64_t first_line_no, last_line_no;
} block_t;

/* A block read from its first line on: most of its lines are newer than the one before. */
static bool block_forward(const block_t *b)
{
    return b->up > b->down;
}

typedef struct {
    char *buf; /* NULL until the first read, freed when the block is exhausted */
    size_t cap;
    uint64_t buf_lo; /* file offset of buf[0] */
    /* Backward: buf[0..tail) not yet consumed; it may begin with a partial line. Forward:
     * buf[head..tail) not yet consumed; it may end with a partial line. */
    size_t head, tail;
    uint64_t line_no; /* backward: the line that ends at tail; forward: the one at head */
    bool started;
    bool done; /* no lines left */
    st_lastfm_listen_t cur;
} cursor_t;

typedef enum { MODE_NONE = 0, MODE_GLOBAL, MODE_USER } merge_mode_t;

struct st_merge {
    int fd;
    char *path;
    st_merge_opts_t opts;
    st_buf_t names;
    block_t *blocks;
    size_t n_blocks, cap_blocks;
    uint32_t *by_user; /* block indices sorted by (user id, first line) */
    cursor_t *cursors;
    uint32_t *heap;
    size_t heap_n;
    long pending; /* cursor popped last time, advanced on the next call; -1 none */
    merge_mode_t mode;
    size_t user_pos;  /* per-user mode: next index into by_user */
    size_t user_from; /* the current user's blocks: by_user[user_from..user_pos) */
    bool has_user;
    st_merge_stats_t stats;
};

/* The last '\n' in s[0..n), or NULL (memrchr is a GNU extension). */
static const char *last_newline(const char *s, size_t n)
{
    while (n > 0) {
        if (s[--n] == '\n')
            return s + n;
    }
    return NULL;
}

static const char *block_user(const st_merge_t *m, const block_t *b)
{
    return m->names.data + b->user_off;
}

static int add_block(st_merge_t *m, const st_lastfm_listen_t *rec)
{
    if (m->n_blocks == m->cap_blocks) {
        size_t cap = m->cap_blocks ? m->cap_blocks * 2 : 1024;
        block_t *nb = realloc(m->blocks, cap * sizeof *nb);
        if (!nb)
            return -1;
        m->blocks = nb;
        m->cap_blocks = cap;
    }
    block_t *b = &m->blocks[m->n_blocks++];
    b->user_off = m->names.len;
    b->user_len = (uint32_t)rec->user_id.len;
    b->up = b->down = 0;
    if (st_buf_append(&m->names, rec->user_id.ptr, rec->user_id.len) != 0 ||
        st_buf_append(&m->names, "", 1) != 0)
        return -1;
    b->lo = rec->offset;
    b->hi = rec->offset + rec->raw.len;
    b->first_line_no = b->last_line_no = rec->line_no;
    return 0;
}

/* qsort has no context argument in C11; the index pass is the only user and runs to completion. */
static const st_merge_t *sort_ctx;

static int cmp_by_user(const void *a, const void *b)
{
    const block_t *x = &sort_ctx->blocks[*(const uint32_t *)a];
    const block_t *y = &sort_ctx->blocks[*(const uint32_t *)b];
    int c = strcmp(block_user(sort_ctx, x), block_user(sort_ctx, y));
    if (c != 0)
        return c;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Reads the file once: blocks, bad lines (reported), inversions. */
static int index_pass(st_merge_t *m, char *errstr, size_t errstr_size)
{
    st_lastfm_reader_t *r = st_lastfm_reader_open(m->path, ST_LASTFM_LISTENS, errstr, errstr_size);
    if (!r)
        return -1;
    st_lastfm_reader_yield_bad(r, true);
    st_lastfm_reader_set_log_limit(r, m->opts.quiet ? 0 : m->opts.log_max);
    st_lastfm_listen_t rec;
    st_err_t err = {0};
    int rc;
    int64_t prev_ts = 0;
    while ((rc = st_lastfm_reader_next_listen(r, &rec, &err)) == 1) {
        if (rec.reason != ST_LASTFM_OK) {
            if (m->opts.on_bad)
                m->opts.on_bad(m->opts.on_bad_ctx, &rec);
            continue;
        }
        block_t *b = m->n_blocks ? &m->blocks[m->n_blocks - 1] : NULL;
        if (b && b->user_len == rec.user_id.len &&
            memcmp(block_user(m, b), rec.user_id.ptr, rec.user_id.len) == 0) {
            b->hi = rec.offset + rec.raw.len;
            b->last_line_no = rec.line_no;
            if (rec.ts_ms > prev_ts && b->up < UINT32_MAX)
                b->up++;
            else if (rec.ts_ms < prev_ts && b->down < UINT32_MAX)
                b->down++;
        } else if (add_block(m, &rec) != 0) {
            st_lastfm_reader_destroy(r);
            return st_errstr(errstr, errstr_size, "out of memory indexing %s", m->path);
        }
        prev_ts = rec.ts_ms;
    }
    m->stats.lines = *st_lastfm_reader_stats(r);
    st_lastfm_reader_destroy(r);
    if (rc < 0)
        return st_errstr(errstr, errstr_size, "%s", err.text);
    m->stats.blocks = m->n_blocks;
    for (size_t i = 0; i < m->n_blocks; i++) /* lines against their block's direction */
        m->stats.inversions += block_forward(&m->blocks[i]) ? m->blocks[i].down : m->blocks[i].up;

    m->by_user = malloc((m->n_blocks ? m->n_blocks : 1) * sizeof *m->by_user);
    m->cursors = calloc(m->n_blocks ? m->n_blocks : 1, sizeof *m->cursors);
    m->heap = malloc((m->n_blocks ? m->n_blocks : 1) * sizeof *m->heap);
    if (!m->by_user || !m->cursors || !m->heap)
        return st_errstr(errstr, errstr_size, "out of memory indexing %s", m->path);
    for (size_t i = 0; i < m->n_blocks; i++)
        m->by_user[i] = (uint32_t)i;
    sort_ctx = m;
    qsort(m->by_user, m->n_blocks, sizeof *m->by_user, cmp_by_user);
    sort_ctx = NULL;
    uint32_t rank = 0;
    for (size_t i = 0; i < m->n_blocks; i++) {
        block_t *b = &m->blocks[m->by_user[i]];
        if (i > 0 && strcmp(block_user(m, b), block_user(m, &m->blocks[m->by_user[i - 1]])) != 0)
            rank++;
        b->user_rank = rank;
    }
    m->stats.users = m->n_blocks ? rank + 1 : 0;
    return 0;
}

st_merge_t *st_merge_open(const char *path, const st_merge_opts_t *opts, char *errstr,
                          size_t errstr_size)
{
    char full[4096];
    if (st_lastfm_path(path, ST_LASTFM_LISTENS_FILE, full, sizeof full) != 0) {
        st_errstr(errstr, errstr_size, "path too long: %s", path);
        return NULL;
    }
    st_merge_t *m = calloc(1, sizeof *m);
    if (!m) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    m->fd = -1;
    m->pending = -1;
    if (opts)
        m->opts = *opts;
    if (m->opts.chunk_bytes == 0)
        m->opts.chunk_bytes = DEFAULT_CHUNK_BYTES;
    if (m->opts.chunk_bytes < MIN_CHUNK_BYTES)
        m->opts.chunk_bytes = MIN_CHUNK_BYTES;
    if (m->opts.log_max == 0)
        m->opts.log_max = 20;
    m->path = strdup(full);
    if (!m->path) {
        st_errstr(errstr, errstr_size, "out of memory");
        st_merge_destroy(m);
        return NULL;
    }
    if (index_pass(m, errstr, errstr_size) != 0) {
        st_merge_destroy(m);
        return NULL;
    }
    m->fd = open(full, O_RDONLY);
    if (m->fd < 0) {
        st_errstr(errstr, errstr_size, "cannot open %s: %s", full, strerror(errno));
        st_merge_destroy(m);
        return NULL;
    }
    return m;
}

const st_merge_stats_t *st_merge_stats(const st_merge_t *m)
{
    return &m->stats;
}

static void cursor_release(st_merge_t *m, cursor_t *c)
{
    if (c->buf) {
        m->stats.buffer_bytes -= c->cap;
        free(c->buf);
        c->buf = NULL;
    }
}

void st_merge_destroy(st_merge_t *m)
{
    if (!m)
        return;
    if (m->cursors)
        for (size_t i = 0; i < m->n_blocks; i++)
            cursor_release(m, &m->cursors[i]);
    if (m->fd >= 0)
        close(m->fd);
    free(m->cursors);
    free(m->heap);
    free(m->by_user);
    free(m->blocks);
    st_buf_free(&m->names);
    free(m->path);
    free(m);
}

/* Reads exactly n bytes at off. Returns 0 or -1. */
static int read_at(st_merge_t *m, char *dst, size_t n, uint64_t off, st_err_t *err)
{
    while (n > 0) {
        ssize_t got = pread(m->fd, dst, n, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            st_err_set(err, ST_ERR_IO, ST_DISP_FATAL, "read %s: %s", m->path,
                       got < 0 ? strerror(errno) : "file shrank since it was indexed");
            return -1;
        }
        dst += got, n -= (size_t)got, off += (uint64_t)got;
    }
    return 0;
}

/* Prepends up to chunk_bytes of the block's unread bytes to buf[0..tail). */
static int cursor_load(st_merge_t *m, const block_t *b, cursor_t *c, st_err_t *err)
{
    uint64_t left = c->buf_lo - b->lo;
    size_t k = left < m->opts.chunk_bytes ? (size_t)left : m->opts.chunk_bytes;
    memmove(c->buf + k, c->buf, c->tail);
    if (read_at(m, c->buf, k, c->buf_lo - k, err) != 0)
        return -1;
    c->buf_lo -= k;
    c->tail += k;
    return 0;
}

/* Drops the rest of an over-long line (the bytes before buf_lo up to the previous '\n'). */
static int cursor_skip_long(st_merge_t *m, const block_t *b, cursor_t *c, st_err_t *err)
{
    for (;;) {
        c->tail = 0;
        if (c->buf_lo == b->lo) {
            c->done = true;
            return 0;
        }
        if (cursor_load(m, b, c, err) != 0)
            return -1;
        const char *nl = last_newline(c->buf, c->tail);
        if (nl) {
            c->tail = (size_t)(nl - c->buf);
            return 0;
        }
    }
}

/* The cursor's buffer, at the block's end (backward) or start (forward). */
static int cursor_start(st_merge_t *m, const block_t *b, cursor_t *c, st_err_t *err)
{
    uint64_t size = b->hi - b->lo;
    size_t want = m->opts.chunk_bytes + LINE_MAX_BYTES;
    c->cap = size + 1 < want ? (size_t)size + 1 : want;
    c->buf = malloc(c->cap);
    if (!c->buf) {
        st_err_set(err, ST_ERR_NOMEM, ST_DISP_FATAL, "out of memory reading %s", m->path);
        return -1;
    }
    m->stats.buffer_bytes += c->cap;
    if (m->stats.buffer_bytes > m->stats.buffer_bytes_peak)
        m->stats.buffer_bytes_peak = m->stats.buffer_bytes;
    bool forward = block_forward(b);
    c->buf_lo = forward ? b->lo : b->hi;
    c->head = c->tail = 0;
    c->line_no = forward ? b->first_line_no : b->last_line_no;
    c->started = true;
    return 0;
}

/* The previous line of the block. Returns 1 with *line and *len (len 0 and line NULL for a line too
 * long to be valid), 0 when the block is exhausted, -1 on error. */
static int cursor_prev_line(st_merge_t *m, const block_t *b, cursor_t *c, const char **line,
                            size_t *len, st_err_t *err)
{
    for (;;) {
        if (c->done)
            return 0;
        const char *nl = c->tail ? last_newline(c->buf, c->tail) : NULL;
        if (nl) {
            *line = nl + 1;
            *len = c->tail - (size_t)(nl + 1 - c->buf);
            c->tail = (size_t)(nl - c->buf);
            return 1;
        }
        if (c->buf_lo == b->lo) {
            *line = c->buf;
            *len = c->tail;
            c->tail = 0;
            c->done = true;
            return 1;
        }
        if (c->tail > LINE_MAX_BYTES) {
            if (cursor_skip_long(m, b, c, err) != 0)
                return -1;
            *line = NULL;
            *len = 0;
            return 1;
        }
        if (cursor_load(m, b, c, err) != 0)
            return -1;
    }
}

/* Forward: appends up to chunk_bytes of the block's unread bytes to buf[head..tail), moved to the
 * front first. */
static int cursor_load_forward(st_merge_t *m, const block_t *b, cursor_t *c, st_err_t *err)
{
    memmove(c->buf, c->buf + c->head, c->tail - c->head);
    c->buf_lo += c->head;
    c->tail -= c->head;
    c->head = 0;
    uint64_t left = b->hi - (c->buf_lo + c->tail);
    size_t room = c->cap - c->tail;
    size_t k = left < m->opts.chunk_bytes ? (size_t)left : m->opts.chunk_bytes;
    if (k > room)
        k = room;
    if (read_at(m, c->buf + c->tail, k, c->buf_lo + c->tail, err) != 0)
        return -1;
    c->tail += k;
    return 0;
}

/* The next line of a forward block, as cursor_prev_line (a line too long to be valid: len 0,
 * line NULL, its bytes skipped without being buffered whole). */
static int cursor_next_line(st_merge_t *m, const block_t *b, cursor_t *c, const char **line,
                            size_t *len, st_err_t *err)
{
    bool skipping = false; /* inside a too-long line: drop bytes up to its '\n' */
    for (;;) {
        if (c->done)
            return 0;
        const char *p = c->buf + c->head;
        size_t avail = c->tail - c->head;
        const char *nl = avail ? memchr(p, '\n', avail) : NULL;
        bool at_end = c->buf_lo + c->tail == b->hi;
        if (skipping) {
            c->head = nl ? (size_t)(nl + 1 - c->buf) : c->tail;
            if (nl || at_end) {
                c->done = !nl || c->buf_lo + c->head == b->hi;
                *line = NULL;
                *len = 0;
                return 1;
            }
        } else if (nl) {
            *line = p;
            *len = (size_t)(nl - p);
            c->head += *len + 1;
            if (c->buf_lo + c->head >= b->hi) /* a block ends without its '\n' */
                c->done = true;
            return 1;
        } else if (at_end) {
            *line = p;
            *len = avail;
            c->head = c->tail;
            c->done = true;
            return 1;
        } else if (avail > LINE_MAX_BYTES) {
            skipping = true;
            continue;
        }
        if (cursor_load_forward(m, b, c, err) != 0)
            return -1;
    }
}

/* Moves the cursor to its block's next valid line in time (the previous one in the file for a
 * newest-first block, the next for an oldest-first one). Returns 1, 0 (exhausted) or -1. */
static int cursor_advance(st_merge_t *m, uint32_t idx, st_err_t *err)
{
    const block_t *b = &m->blocks[idx];
    cursor_t *c = &m->cursors[idx];
    for (;;) {
        const char *line;
        size_t len;
        bool forward = block_forward(b);
        if (!c->started && cursor_start(m, b, c, err) != 0)
            return -1;
        int rc = forward ? cursor_next_line(m, b, c, &line, &len, err)
                         : cursor_prev_line(m, b, c, &line, &len, err);
        if (rc <= 0) {
            c->done = true;
            cursor_release(m, c);
            return rc;
        }
        uint64_t line_no = forward ? c->line_no++ : c->line_no--;
        if (line && st_lastfm_parse_listen(line, len, &c->cur) == ST_LASTFM_OK) {
            c->cur.line_no = line_no;
            c->cur.offset = c->buf_lo + (uint64_t)(line - c->buf);
            c->cur.reason = ST_LASTFM_OK;
            return 1;
        }
    }
}

static bool heap_less(const st_merge_t *m, uint32_t a, uint32_t b)
{
    const st_lastfm_listen_t *x = &m->cursors[a].cur, *y = &m->cursors[b].cur;
    if (x->ts_ms != y->ts_ms)
        return x->ts_ms < y->ts_ms;
    uint32_t ra = m->blocks[a].user_rank, rb = m->blocks[b].user_rank;
    if (ra != rb)
        return ra < rb;
    return x->line_no < y->line_no;
}

static void heap_push(st_merge_t *m, uint32_t idx)
{
    size_t i = m->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(m, idx, m->heap[parent]))
            break;
        m->heap[i] = m->heap[parent];
        i = parent;
    }
    m->heap[i] = idx;
}

static uint32_t heap_pop(st_merge_t *m)
{
    uint32_t top = m->heap[0];
    uint32_t last = m->heap[--m->heap_n];
    size_t i = 0, n = m->heap_n;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && heap_less(m, m->heap[child + 1], m->heap[child]))
            child++;
        if (!heap_less(m, m->heap[child], last))
            break;
        m->heap[i] = m->heap[child];
        i = child;
    }
    if (n > 0)
        m->heap[i] = last;
    return top;
}

/* Starts a cursor and, if it has a line, puts it on the heap. */
static int start_cursor(st_merge_t *m, uint32_t idx, st_err_t *err)
{
    int rc = cursor_advance(m, idx, err);
    if (rc == 1)
        heap_push(m, idx);
    return rc < 0 ? -1 : 0;
}

/* Pops the smallest head; the cursor advances on the next call (its view must survive until
 * then). */
static int heap_next(st_merge_t *m, st_lastfm_listen_t *out, st_err_t *err)
{
    if (m->pending >= 0) {
        uint32_t idx = (uint32_t)m->pending;
        m->pending = -1;
        if (start_cursor(m, idx, err) != 0)
            return -1;
    }
    if (m->heap_n == 0)
        return 0;
    uint32_t idx = heap_pop(m);
    *out = m->cursors[idx].cur;
    m->pending = idx;
    m->stats.yielded++;
    return 1;
}

int st_merge_next(st_merge_t *m, st_lastfm_listen_t *out, st_err_t *err)
{
    if (m->mode == MODE_USER) {
        st_err_set(err, ST_ERR_INTERNAL, ST_DISP_PERMANENT, "merge is in per-user mode");
        return -1;
    }
    if (m->mode == MODE_NONE) {
        m->mode = MODE_GLOBAL;
        for (size_t i = 0; i < m->n_blocks; i++)
            if (start_cursor(m, (uint32_t)i, err) != 0)
                return -1;
    }
    return heap_next(m, out, err);
}

int st_merge_next_user(st_merge_t *m, const char **user_id, st_err_t *err)
{
    if (m->mode == MODE_GLOBAL) {
        st_err_set(err, ST_ERR_INTERNAL, ST_DISP_PERMANENT, "merge is in global mode");
        return -1;
    }
    m->mode = MODE_USER;
    /* Drop what is left of the previous user. */
    for (size_t i = m->user_from; i < m->user_pos; i++)
        cursor_release(m, &m->cursors[m->by_user[i]]);
    m->heap_n = 0;
    m->pending = -1;
    m->has_user = false;
    if (m->user_pos >= m->n_blocks)
        return 0;
    m->user_from = m->user_pos;
    uint32_t rank = m->blocks[m->by_user[m->user_from]].user_rank;
    while (m->user_pos < m->n_blocks && m->blocks[m->by_user[m->user_pos]].user_rank == rank) {
        if (start_cursor(m, m->by_user[m->user_pos], err) != 0)
            return -1;
        m->user_pos++;
    }
    m->has_user = true;
    *user_id = block_user(m, &m->blocks[m->by_user[m->user_from]]);
    return 1;
}

int st_merge_next_in_user(st_merge_t *m, st_lastfm_listen_t *out, st_err_t *err)
{
    if (m->mode != MODE_USER || !m->has_user) {
        st_err_set(err, ST_ERR_INTERNAL, ST_DISP_PERMANENT,
                   "no current user (call st_merge_next_user)");
        return -1;
    }
    return heap_next(m, out, err);
}
