/* fuzz_catalog.c - libFuzzer harness for the track catalog (tracks.jsonl): the line parser
 * st_trackmeta_parse_catalog_line on the input as one line, and the file readers (the input as a
 * file: st_catalog_reader_* and st_catalog_load). Checks: an accepted line gives a normalised key
 * (one tab, no CR/LF, no ASCII upper case, length as returned), source CATALOG, duration -1 or
 * >= 1, 0..5 tags; the reader's counters add up (lines = good + bad + blank) and agree with the
 * map st_catalog_load builds, where every good line's key is found, and found with a duration
 * when the line has one (the rule for duplicated keys: a duration wins over none). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "st_catalog.h"
#include "st_log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_entry(const char *key, int key_len, const st_trackmeta_t *m)
{
    if (key_len < 1 || strlen(key) != (size_t)key_len)
        abort();
    const char *tab = memchr(key, '\t', (size_t)key_len);
    if (!tab || memchr(tab + 1, '\t', (size_t)key_len - (size_t)(tab - key) - 1))
        abort();
    for (int i = 0; i < key_len; i++)
        if (key[i] == '\r' || key[i] == '\n' || (key[i] >= 'A' && key[i] <= 'Z'))
            abort();
    if (m->source != ST_TRACKMETA_CATALOG || m->expires_at_ms != 0)
        abort();
    if (m->duration_ms != -1 && m->duration_ms < 1)
        abort();
    if (m->ntags < 0 || m->ntags > ST_TRACKMETA_MAX_TAGS)
        abort();
    for (int i = 0; i < m->ntags; i++)
        if (!memchr(m->tags[i], '\0', ST_TRACKMETA_TAG_SIZE))
            abort();
}

static void check_line(const uint8_t *data, size_t size)
{
    static char key[ST_CATALOG_LINE_MAX + 2];
    static st_trackmeta_t m;
    char reason[256];
    char *line = malloc(size ? size : 1); /* exactly the line: reads past it are caught */
    memcpy(line, data, size);
    int n = st_trackmeta_parse_catalog_line(line, size, key, sizeof key, &m, reason, sizeof reason);
    free(line);
    if (n >= 0)
        check_entry(key, n, &m);
    else if (reason[0] == '\0')
        abort();
}

static void check_file(const char *path)
{
    char errstr[256];
    st_catalog_reader_t *r = st_catalog_reader_open(path, errstr, sizeof errstr);
    if (!r)
        abort();
    st_catalog_entry_t e;
    st_err_t err = {0};
    int rc;
    uint64_t good = 0;
    while ((rc = st_catalog_reader_next(r, &e, &err)) == 1) {
        check_entry(e.key, (int)e.key_len, &e.meta);
        good++;
    }
    const st_catalog_stats_t st = *st_catalog_reader_stats(r);
    if (rc != 0 || st.good != good || st.lines != st.good + st.bad + st.blank)
        abort();
    st_catalog_stats_t lst;
    st_catalog_t *c = st_catalog_load(path, &lst, errstr, sizeof errstr);
    if (!c || memcmp(&lst, &st, sizeof st) != 0 ||
        st_catalog_size(c) + st_catalog_duplicates(c) != good ||
        st_catalog_duplicate_keys(c) > st_catalog_duplicates(c) ||
        st_catalog_duplicate_keys(c) > st_catalog_size(c))
        abort();
    st_catalog_reader_destroy(r);
    /* Every good line's key is in the map, with a duration if the line has one. */
    r = st_catalog_reader_open(path, errstr, sizeof errstr);
    if (!r)
        abort();
    while (st_catalog_reader_next(r, &e, &err) == 1) {
        int64_t d;
        if (!st_catalog_lookup_key(c, e.key, e.key_len, &d) || (e.meta.duration_ms > 0 && d <= 0))
            abort();
    }
    st_catalog_reader_destroy(r);
    st_catalog_destroy(c);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    st_log_set_level(ST_LOG_ERROR); /* bad lines are expected */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_line(data, size);
    check_file(fuzz_input_path(data, size));
    return 0;
}
