/* Unit tests of st_merge: global order and tie-breaks, several blocks per user, inversions, bad
 * lines inside blocks, per-user iteration, chunk-boundary robustness against a brute-force sort,
 * and bounded buffers (no whole-file load). */
#include <stdbool.h>
#include <unistd.h>

#include "st_buf.h"
#include "st_lastfm.h"
#include "st_log.h"
#include "st_merge.h"
#include "st_test.h"
#include "st_time.h"

static char tmp_dir[256];
static char tmp_path[512];

static const char *write_file(const char *name, const char *data, size_t len)
{
    snprintf(tmp_path, sizeof tmp_path, "%s/%s", tmp_dir, name);
    FILE *fp = fopen(tmp_path, "wb");
    if (!fp)
        return NULL;
    fwrite(data, 1, len, fp);
    fclose(fp);
    return tmp_path;
}

/* Collects the line numbers of the global stream. */
static size_t merge_lines(const char *path, size_t chunk, uint64_t *out, size_t max,
                          st_merge_stats_t *stats_out)
{
    st_merge_opts_t opts = {.chunk_bytes = chunk, .quiet = true};
    char err[256];
    st_merge_t *m = st_merge_open(path, &opts, err, sizeof err);
    if (!m) {
        fprintf(stderr, "st_merge_open: %s\n", err);
        return 0;
    }
    st_lastfm_listen_t l;
    size_t n = 0;
    while (st_merge_next(m, &l, NULL) == 1) {
        if (n < max)
            out[n] = l.line_no;
        n++;
    }
    if (stats_out)
        *stats_out = *st_merge_stats(m);
    st_merge_destroy(m);
    return n;
}

#define LINE(user, ts, track) user "\t2009-01-01T00:00:" ts "Z\t\tArtist\t\t" track "\n"

static void test_global_order_and_ties(void)
{
    static const char data[] = LINE("b", "05", "b5") LINE("b", "01", "b1") LINE("a", "05", "a5")
        LINE("a", "03", "a3") LINE("a", "01", "a1") LINE("c", "04", "c4");
    const char *path = write_file("order.tsv", data, sizeof data - 1);
    ST_REQUIRE(path != NULL);
    uint64_t got[16];
    static const uint64_t want[] = {5, 2, 4, 6, 3, 1};
    st_merge_stats_t st;
    size_t n = merge_lines(path, 0, got, 16, &st);
    ST_EQ_INT(n, 6);
    for (size_t i = 0; i < 6 && i < n; i++)
        ST_EQ_INT(got[i], want[i]);
    ST_EQ_INT(st.blocks, 3);
    ST_EQ_INT(st.users, 3);
    ST_EQ_INT(st.yielded, 6);
    ST_EQ_INT(st.buffer_bytes, 0);
}

static int bad_seen;
static uint64_t bad_line_no;

static void on_bad(void *ctx, const st_lastfm_listen_t *bad)
{
    (void)ctx;
    bad_seen++;
    bad_line_no = bad->line_no;
}

static const char blocks_data[] =
    LINE("u1", "10", "t10") LINE("u1", "08", "t8") LINE("u2", "09", "t9")
        LINE("u1", "07", "t7") "u1\t2009-01-01T00:00:06Z\tbroken line\n" LINE("u1", "03", "t3")
            LINE("u1", "05", "t5") LINE("u1", "01", "t1");

static void test_multiple_blocks_inversion_bad_line(void)
{
    const char *path = write_file("blocks.tsv", blocks_data, sizeof blocks_data - 1);
    ST_REQUIRE(path != NULL);
    st_merge_opts_t opts = {.on_bad = on_bad, .quiet = true};
    char err[256];
    bad_seen = 0;
    st_merge_t *m = st_merge_open(path, &opts, err, sizeof err);
    ST_REQUIRE(m != NULL);
    static const uint64_t want[] = {8, 7, 6, 4, 2, 3, 1};
    static const char *const want_track[] = {"t1", "t5", "t3", "t7", "t8", "t9", "t10"};
    st_lastfm_listen_t l;
    size_t n = 0;
    while (st_merge_next(m, &l, NULL) == 1) {
        if (n < 7) {
            ST_EQ_INT(l.line_no, want[n]);
            ST_CHECK(l.track_name.len == strlen(want_track[n]) &&
                     memcmp(l.track_name.ptr, want_track[n], l.track_name.len) == 0);
        }
        n++;
    }
    ST_EQ_INT(n, 7);
    const st_merge_stats_t *st = st_merge_stats(m);
    ST_EQ_INT(st->blocks, 3);
    ST_EQ_INT(st->users, 2);
    ST_EQ_INT(st->inversions, 1);
    ST_EQ_INT(st->lines.bad, 1);
    ST_EQ_INT(st->lines.by_reason[ST_LASTFM_FIELD_COUNT], 1);
    ST_EQ_INT(bad_seen, 1);
    ST_EQ_INT(bad_line_no, 5);
    const char *user;
    st_err_t e = {0};
    ST_EQ_INT(st_merge_next_user(m, &user, &e), -1); /* already in global mode */
    ST_EQ_INT(e.code, ST_ERR_INTERNAL);
    st_merge_destroy(m);
}

static void test_per_user(void)
{
    const char *path = write_file("blocks.tsv", blocks_data, sizeof blocks_data - 1);
    ST_REQUIRE(path != NULL);
    st_merge_opts_t opts = {.quiet = true, .chunk_bytes = 16};
    char err[256];
    st_merge_t *m = st_merge_open(path, &opts, err, sizeof err);
    ST_REQUIRE(m != NULL);
    const char *user;
    st_lastfm_listen_t l;
    ST_EQ_INT(st_merge_next_in_user(m, &l, NULL), -1); /* no current user yet */
    ST_EQ_INT(st_merge_next_user(m, &user, NULL), 1);
    ST_EQ_STR(user, "u1");
    static const uint64_t want_u1[] = {8, 7, 6, 4, 2, 1};
    size_t n = 0;
    while (st_merge_next_in_user(m, &l, NULL) == 1) {
        if (n < 6)
            ST_EQ_INT(l.line_no, want_u1[n]);
        n++;
    }
    ST_EQ_INT(n, 6);
    ST_EQ_INT(st_merge_next_user(m, &user, NULL), 1);
    ST_EQ_STR(user, "u2");
    ST_EQ_INT(st_merge_next_in_user(m, &l, NULL), 1);
    ST_EQ_INT(l.line_no, 3);
    ST_EQ_INT(st_merge_next_in_user(m, &l, NULL), 0);
    ST_EQ_INT(st_merge_next_user(m, &user, NULL), 0);
    ST_EQ_INT(st_merge_stats(m)->buffer_bytes, 0);
    ST_EQ_INT(st_merge_next(m, &l, NULL), -1); /* per-user mode */
    st_merge_destroy(m);
}

/* A synthetic file: 7 users, interleaved blocks, varying line lengths, bad lines and one line
 * longer than any valid line inside a block. */
typedef struct {
    uint64_t line_no;
    int64_t ts_ms;
    char user[8];
} ref_t;

static int cmp_ref(const void *a, const void *b)
{
    const ref_t *x = a, *y = b;
    if (x->ts_ms != y->ts_ms)
        return x->ts_ms < y->ts_ms ? -1 : 1;
    int c = strcmp(x->user, y->user);
    if (c)
        return c;
    return x->line_no < y->line_no ? -1 : x->line_no > y->line_no;
}

static void test_chunk_boundaries_match_sort(void)
{
    st_buf_t b = ST_BUF_INIT;
    uint32_t x = 12345;
    for (int blk = 0; blk < 12; blk++) {
        int user = blk % 7;
        int64_t ts = 1240000000 - blk * 1000; /* each block strictly newest first, ... */
        st_buf_t blk_lines = ST_BUF_INIT;
        st_buf_t *out = &b;
        if (blk % 3 == 1) /* ... or oldest first: its lines written in reverse below */
            out = &blk_lines;
        for (int i = 0; i < 300; i++) {
            x = x * 1103515245u + 12345u;
            char iso[40];
            ts -= 2 + (int64_t)(x >> 30);
            st_time_format_iso8601(ts * 1000, iso, sizeof iso);
            if (i == 150 && (blk == 3 || blk == 4)) {
                st_buf_printf(out, "user%d\t%s\t\t", user, iso);
                for (int k = 0; k < 7000; k++)
                    st_buf_append(out, "z", 1);
                st_buf_append_str(out, "\n");
            }
            if (i == 77)
                st_buf_printf(out, "user%d\tnot a time\t\tA\t\tT\n", user);
            st_buf_printf(out, "user%d\t%s\t\tArtist %u\t\t%.*s\n", user, iso, x % 97,
                          (int)(x % 61),
                          "a fairly long track name that varies in length, ok?"
                          "......................");
        }
        for (size_t end = blk_lines.len; end > 0;) { /* the oldest-first block, line by line */
            size_t start = end - 1;
            while (start > 0 && blk_lines.data[start - 1] != '\n')
                start--;
            st_buf_append(&b, blk_lines.data + start, end - start);
            end = start;
        }
        st_buf_free(&blk_lines);
    }
    const char *path = write_file("synthetic.tsv", b.data, b.len);
    ST_REQUIRE(path != NULL);

    /* Reference: the forward reader, sorted by (ts, user, line). */
    char err[256];
    st_lastfm_reader_t *r = st_lastfm_reader_open(path, ST_LASTFM_LISTENS, err, sizeof err);
    ST_REQUIRE(r != NULL);
    st_lastfm_reader_set_log_limit(r, 0);
    static ref_t ref[4000];
    size_t n_ref = 0;
    st_lastfm_listen_t l;
    while (st_lastfm_reader_next_listen(r, &l, NULL) == 1 && n_ref < 4000) {
        ref[n_ref].line_no = l.line_no;
        ref[n_ref].ts_ms = l.ts_ms;
        snprintf(ref[n_ref].user, sizeof ref[n_ref].user, "%.*s", (int)l.user_id.len,
                 l.user_id.ptr);
        n_ref++;
    }
    ST_EQ_INT(st_lastfm_reader_stats(r)->bad, 14);
    st_lastfm_reader_destroy(r);
    ST_EQ_INT(n_ref, 3600);
    qsort(ref, n_ref, sizeof ref[0], cmp_ref);

    static const size_t chunks[] = {16, 17, 100, 4096, 0};
    static uint64_t got[4000];
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        st_merge_stats_t st;
        size_t n = merge_lines(path, chunks[c], got, 4000, &st);
        ST_EQ_INT(n, n_ref);
        size_t mismatches = 0;
        for (size_t i = 0; i < n && i < n_ref; i++)
            if (got[i] != ref[i].line_no && mismatches++ < 3)
                ST_FAIL_AT("chunk %zu: position %zu line %llu, expected %llu", chunks[c], i,
                           (unsigned long long)got[i], (unsigned long long)ref[i].line_no);
        ST_EQ_INT(st.blocks, 12);
        ST_EQ_INT(st.users, 7);
        ST_EQ_INT(st.inversions, 0);
        /* Bounded buffers: never more than one chunk (+ one line) per block, never the file. */
        size_t chunk = chunks[c] ? chunks[c] : 32 * 1024;
        ST_CHECK(st.buffer_bytes_peak <= 12 * (chunk + 6 * 1024 + 6));
        if (chunks[c] && chunks[c] <= 100)
            ST_CHECK(st.buffer_bytes_peak < b.len / 2);
    }
    st_buf_free(&b);
}

static void test_empty_and_missing(void)
{
    const char *path = write_file("empty.tsv", "", 0);
    ST_REQUIRE(path != NULL);
    char err[256] = "";
    st_merge_t *m = st_merge_open(path, NULL, err, sizeof err);
    ST_REQUIRE(m != NULL);
    st_lastfm_listen_t l;
    ST_EQ_INT(st_merge_next(m, &l, NULL), 0);
    ST_EQ_INT(st_merge_stats(m)->users, 0);
    st_merge_destroy(m);
    ST_CHECK(st_merge_open("/nonexistent/dir", NULL, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "/nonexistent/dir") != NULL);
    st_merge_destroy(NULL);
}

int main(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "%s/stint-merge-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    st_log_set_level(ST_LOG_ERROR);
    ST_RUN(test_global_order_and_ties);
    ST_RUN(test_multiple_blocks_inversion_bad_line);
    ST_RUN(test_per_user);
    ST_RUN(test_chunk_boundaries_match_sort);
    ST_RUN(test_empty_and_missing);
    static const char *const files[] = {"order.tsv", "blocks.tsv", "synthetic.tsv", "empty.tsv"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(tmp_path, sizeof tmp_path, "%s/%s", tmp_dir, files[i]);
        unlink(tmp_path);
    }
    rmdir(tmp_dir);
    return st_test_summary();
}
