/* fuzz_tsv.c - libFuzzer harness for the Last.fm TSV parsers: line parsers, the buffered reader
 * (both file kinds) and, for every valid listen, the TSV -> JSON -> st_listen round trip. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_lastfm.h"
#include "st_listen.h"
#include "st_log.h"

/* 2100-01-01: every timestamp a valid line can carry is "in the past". */
#define FUZZ_NOW_MS 4102444800000LL

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const st_lastfm_listen_t *rec)
{
    static st_listen_t direct, via_json;
    st_buf_t json = ST_BUF_INIT;
    st_listen_reason_t a = st_listen_from_record(rec, FUZZ_NOW_MS, &direct, NULL);
    if (st_listen_format_json(rec, &json) != 0)
        abort();
    st_listen_reason_t b = st_listen_parse(json.data, json.len, FUZZ_NOW_MS, &via_json, NULL);
    if (a != b)
        abort();
    if (a == ST_LISTEN_OK && (strcmp(direct.event_id, via_json.event_id) != 0 ||
                              strcmp(direct.track_key, via_json.track_key) != 0))
        abort();
    st_buf_free(&json);
}

static void read_all(const uint8_t *data, size_t size, st_lastfm_kind_t kind)
{
    FILE *fp = fmemopen((void *)data, size, "rb");
    if (!fp)
        return;
    st_lastfm_reader_t *r = st_lastfm_reader_open_fp(fp, "fuzz", kind, NULL, 0);
    if (r) {
        st_lastfm_reader_set_log_limit(r, 0);
        /* Small buffers reach the line-longer-than-buffer path and the refill boundaries. */
        st_lastfm_reader_set_buffer_size(r, 64 + size % 193);
        st_lastfm_reader_yield_bad(r, size & 1);
        if (kind == ST_LASTFM_LISTENS) {
            st_lastfm_listen_t rec;
            while (st_lastfm_reader_next_listen(r, &rec, NULL) == 1)
                if (rec.reason == ST_LASTFM_OK)
                    check_round_trip(&rec);
        } else {
            st_lastfm_profile_t p;
            while (st_lastfm_reader_next_profile(r, &p, NULL) == 1) {
            }
        }
        const st_lastfm_stats_t *st = st_lastfm_reader_stats(r);
        uint64_t sum = 0;
        for (int i = 0; i < ST_LASTFM_REASON_COUNT; i++)
            sum += st->by_reason[i];
        if (sum != st->bad || st->bytes != size)
            abort();
        st_lastfm_reader_destroy(r);
    }
    fclose(fp);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    st_log_set_level(ST_LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The line parsers on the input as one line (a copy, so reads past the end are caught). */
    char *line = malloc(size ? size : 1);
    memcpy(line, data, size);
    st_lastfm_listen_t rec;
    st_lastfm_profile_t prof;
    if (st_lastfm_parse_listen(line, size, &rec) == ST_LASTFM_OK)
        check_round_trip(&rec);
    (void)st_lastfm_parse_profile(line, size, &prof);
    free(line);
    read_all(data, size, ST_LASTFM_LISTENS);
    read_all(data, size, ST_LASTFM_PROFILES);
    return 0;
}
