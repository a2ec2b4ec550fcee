/* bench/parse.c - listens.raw JSON parsing speed (listens/s, ns/listen) of st_listen_parse against
 * its jansson-only reference, Last.fm TSV parsing speed (lines/s, MB/s) and a time-ordered merge
 * pass (rate, peak RSS). Without a path it writes a ~190 MB synthetic file in $TMPDIR and removes
 * it after.
 * Usage: bench-parse [PATH]   (PATH: a listens file or a dataset directory, e.g. from stint gen)
 *        bench-parse --json   (only the JSON figures) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "st_buf.h"
#include "st_lastfm.h"
#include "st_listen.h"
#include "st_log.h"
#include "st_merge.h"
#include "st_time.h"

#define SYNTH_USERS          100
#define SYNTH_LINES_PER_USER 15000
#define PARSE_PASSES         3
#define JSON_MESSAGES        200000
#define JSON_PASSES          5
#define JSON_NOW_MS          1798761600000LL /* 2027-01-01, after every synthetic listen */

/* Writes SYNTH_USERS newest-first blocks of realistic lines. Returns 0 or -1. */
static int write_synthetic(const char *path)
{
    static const char *const artists[] = {
        "Deep Dish",      "坂本龍一", "Sigur Rós", "The Knife", "\"Weird Al\" Yankovic",
        "Nine Inch Nails"};
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    uint32_t x = 1;
    for (int u = 0; u < SYNTH_USERS; u++) {
        int64_t ts_s = 1241478537;
        for (int i = 0; i < SYNTH_LINES_PER_USER; i++) {
            char iso[40];
            x = x * 1664525u + 1013904223u;
            ts_s -= 120 + (x >> 24);
            st_time_format_iso8601(ts_s * 1000, iso, sizeof iso);
            const char *mbid = (x >> 8) % 10 ? "f1b1cf71-bd35-4e99-8624-24a6e15f133a" : "";
            fprintf(fp, "user_%06d\t%s\t%s\t%s\t%s\tTrack number %u (Live_2009_4_15)\n", u + 1, iso,
                    mbid, artists[(x >> 12) % 6], (x >> 16) % 8 ? "" : mbid, (x >> 4) % 100000);
        }
    }
    return fclose(fp);
}

static double now_s(void)
{
    return (double)st_time_mono_us() / 1e6;
}

/* The listens.raw messages replay would send for synthetic records like write_synthetic's (the
 * same artists, so some need escapes), packed into one buffer; offsets[i]..offsets[i + 1]. */
static int make_json_messages(st_buf_t *all, size_t *offsets)
{
    static const char *const artists[] = {
        "Deep Dish",      "坂本龍一", "Sigur Rós", "The Knife", "\"Weird Al\" Yankovic",
        "Nine Inch Nails"};
    uint32_t x = 7;
    int64_t ts_s = 1241478537;
    offsets[0] = 0;
    for (size_t i = 0; i < JSON_MESSAGES; i++) {
        char iso[40], line[512];
        x = x * 1664525u + 1013904223u;
        ts_s -= 120 + (x >> 24);
        st_time_format_iso8601(ts_s * 1000, iso, sizeof iso);
        const char *mbid = (x >> 8) % 10 ? "f1b1cf71-bd35-4e99-8624-24a6e15f133a" : "";
        int n = snprintf(line, sizeof line, "user_%06u\t%s\t%s\t%s\t%s\tTrack number %u (Live)",
                         (x >> 3) % 1000, iso, mbid, artists[(x >> 12) % 6],
                         (x >> 16) % 8 ? "" : mbid, (x >> 4) % 100000);
        st_lastfm_listen_t rec;
        if (st_lastfm_parse_listen(line, (size_t)n, &rec) != ST_LASTFM_OK ||
            st_listen_format_json(&rec, all) != 0)
            return -1;
        offsets[i + 1] = all->len;
    }
    return 0;
}

typedef st_listen_reason_t (*listen_parse_fn)(const char *json, size_t len, int64_t now_ms,
                                              st_listen_t *out, st_err_t *err);

/* Best of JSON_PASSES passes over every message, in listens/s. */
static double json_rate(listen_parse_fn parse, const st_buf_t *all, const size_t *offsets)
{
    static st_listen_t l;
    double best = 0;
    for (int pass = 0; pass < JSON_PASSES; pass++) {
        uint64_t ok = 0;
        double t0 = now_s();
        for (size_t i = 0; i < JSON_MESSAGES; i++)
            ok += parse(all->data + offsets[i], offsets[i + 1] - offsets[i], JSON_NOW_MS, &l,
                        NULL) == ST_LISTEN_OK;
        double dt = now_s() - t0;
        if (ok != JSON_MESSAGES)
            fprintf(stderr, "bench-parse: %" PRIu64 " of %d messages rejected\n",
                    JSON_MESSAGES - ok, JSON_MESSAGES);
        if (dt > 0 && JSON_MESSAGES / dt > best)
            best = JSON_MESSAGES / dt;
    }
    return best;
}

static int bench_json(void)
{
    st_buf_t all = ST_BUF_INIT;
    size_t *offsets = malloc((JSON_MESSAGES + 1) * sizeof *offsets);
    if (!offsets || make_json_messages(&all, offsets) != 0) {
        fprintf(stderr, "bench-parse: cannot build the JSON messages\n");
        free(offsets);
        st_buf_free(&all);
        return -1;
    }
    size_t fast = 0;
    for (size_t i = 0; i < JSON_MESSAGES; i++)
        fast += st_listen_parse_is_fast(all.data + offsets[i], offsets[i + 1] - offsets[i]);
    double rate = json_rate(st_listen_parse, &all, offsets);
    double ref_rate = json_rate(st_listen_parse_reference, &all, offsets);
    printf("json: %d listens.raw messages, %.0f bytes each on average, %.1f%% plain enough for "
           "the scanner; best of %d passes:\n",
           JSON_MESSAGES, (double)all.len / JSON_MESSAGES, 100.0 * (double)fast / JSON_MESSAGES,
           JSON_PASSES);
    printf("json:   st_listen_parse (scanner + jansson) %.2f M listens/s, %.0f ns/listen\n",
           rate / 1e6, 1e9 / rate);
    printf("json:   st_listen_parse_reference (jansson) %.2f M listens/s, %.0f ns/listen\n",
           ref_rate / 1e6, 1e9 / ref_rate);
    printf("json:   speed-up %.2fx\n", rate / ref_rate);
    free(offsets);
    st_buf_free(&all);
    return 0;
}

int main(int argc, char **argv)
{
    char path[4096], err[256];
    bool synthetic = argc < 2;
    st_log_set_level(ST_LOG_ERROR);
    if (bench_json() != 0)
        return 1;
    if (argc == 2 && strcmp(argv[1], "--json") == 0)
        return 0;
    if (synthetic) {
        snprintf(path, sizeof path, "%s/stint-bench-parse-%d.tsv",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
        if (write_synthetic(path) != 0) {
            fprintf(stderr, "bench-parse: cannot write %s\n", path);
            return 1;
        }
    } else if (st_lastfm_path(argv[1], ST_LASTFM_LISTENS_FILE, path, sizeof path) != 0) {
        fprintf(stderr, "bench-parse: path too long\n");
        return 1;
    }

    double best = 0;
    uint64_t lines = 0, bytes = 0;
    for (int pass = 0; pass < PARSE_PASSES; pass++) {
        st_lastfm_reader_t *r = st_lastfm_reader_open(path, ST_LASTFM_LISTENS, err, sizeof err);
        if (!r) {
            fprintf(stderr, "bench-parse: %s\n", err);
            return 1;
        }
        st_lastfm_reader_set_log_limit(r, 0);
        st_lastfm_listen_t l;
        uint64_t sum = 0;
        double t0 = now_s();
        while (st_lastfm_reader_next_listen(r, &l, NULL) == 1)
            sum += l.track_name.len;
        double dt = now_s() - t0;
        const st_lastfm_stats_t *st = st_lastfm_reader_stats(r);
        lines = st->lines;
        bytes = st->bytes;
        if (dt > 0 && (double)lines / dt > best)
            best = (double)lines / dt;
        if (sum == 0 && lines > 0)
            fprintf(stderr, "bench-parse: no data?\n");
        st_lastfm_reader_destroy(r);
    }
    printf("parse: %" PRIu64 " lines, %.1f MB; best of %d passes: %.2f M lines/s, %.0f MB/s\n",
           lines, (double)bytes / 1e6, PARSE_PASSES, best / 1e6,
           best * ((double)bytes / (double)(lines ? lines : 1)) / 1e6);

    double t0 = now_s();
    st_merge_opts_t opts = {.quiet = true};
    st_merge_t *m = st_merge_open(path, &opts, err, sizeof err);
    if (!m) {
        fprintf(stderr, "bench-parse: %s\n", err);
        return 1;
    }
    double t_index = now_s() - t0;
    st_lastfm_listen_t l;
    int64_t prev = INT64_MIN;
    uint64_t n = 0, backwards = 0;
    while (st_merge_next(m, &l, NULL) == 1) {
        backwards += l.ts_ms < prev;
        prev = l.ts_ms;
        n++;
    }
    double dt = now_s() - t0;
    const st_merge_stats_t *ms = st_merge_stats(m);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("merge: %" PRIu64 " listens, %" PRIu64 " blocks, %" PRIu64 " users in %.1f s "
           "(index pass %.1f s) = %.2f M listens/s; out-of-order %" PRIu64
           "; cursor buffers peak %.1f MB; peak RSS %.1f MB\n",
           n, ms->blocks, ms->users, dt, t_index, (double)n / dt / 1e6, backwards,
           (double)ms->buffer_bytes_peak / 1e6, (double)ru.ru_maxrss / 1024.0);
    st_merge_destroy(m);
    if (synthetic)
        unlink(path);
    return 0;
}
