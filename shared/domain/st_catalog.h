/* st_catalog.h - the track catalog file (tracks.jsonl: one JSON object per line,
 * {"artist","track","duration_ms","tags"}): a line reader that skips and counts bad lines (each
 * line parsed by st_trackmeta_parse_catalog_line, the parser of `stint catalog import`), and an
 * in-memory map from the normalised track key (st_trackmeta_key, the one st_listen uses for
 * Listen.track_key) to the duration. Used offline (`stint sessions`, `stint train --catalog`). */
#ifndef ST_CATALOG_H
#define ST_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_err.h"
#include "st_trackmeta.h"

/* Longest line accepted (longer ones are bad lines). */
#define ST_CATALOG_LINE_MAX (64 * 1024)

/* One catalog line. key is borrowed from the reader (NUL-terminated) until its next call. */
typedef struct {
    const char *key; /* st_trackmeta_key(artist, track) */
    size_t key_len;
    st_trackmeta_t meta; /* source CATALOG; duration_ms -1 when unknown (absent, null or 0) */
    uint64_t line_no;    /* 1-based */
} st_catalog_entry_t;

typedef struct {
    uint64_t lines; /* every line read (blank lines included) */
    uint64_t good;  /* entries returned */
    uint64_t bad;   /* lines skipped: what st_trackmeta_parse_catalog_line rejects (not JSON, not
                       an object, artist/track not strings, duration_ms not an integer >= 0, tags
                       not an array of strings), or longer than ST_CATALOG_LINE_MAX */
    uint64_t blank; /* empty or whitespace-only lines (skipped, not bad) */
} st_catalog_stats_t;

typedef struct st_catalog_reader st_catalog_reader_t;

/* Opens a catalog file. Returns a new reader (free with st_catalog_reader_destroy), or NULL with
 * errstr filled. */
st_catalog_reader_t *st_catalog_reader_open(const char *path, char *errstr, size_t errstr_size);

/* Reads the next good entry into *out. Returns 1 (entry), 0 (end of file) or -1 (read error,
 * err filled). Bad lines are counted and the first 20 logged (st_log_warn "catalog_bad_line"
 * with the reason). */
int st_catalog_reader_next(st_catalog_reader_t *r, st_catalog_entry_t *out, st_err_t *err);

/* Counters so far (borrowed; valid until destroy). */
const st_catalog_stats_t *st_catalog_reader_stats(const st_catalog_reader_t *r);

/* Closes the file and frees the reader. NULL is a no-op. */
void st_catalog_reader_destroy(st_catalog_reader_t *r);

/* The in-memory map (track key -> duration). */
typedef struct st_catalog st_catalog_t;

/* Reads a whole catalog file into a map keyed by st_trackmeta_key(artist, track). When a key
 * appears twice the first line wins (later ones are counted as duplicates). Returns a new map
 * (free with st_catalog_destroy) or NULL with errstr filled (open/read error, out of memory).
 * stats may be NULL. */
st_catalog_t *st_catalog_load(const char *path, st_catalog_stats_t *stats, char *errstr,
                              size_t errstr_size);

/* An empty map, for callers that add entries themselves. NULL on ENOMEM. */
st_catalog_t *st_catalog_new(void);

/* Adds (or, with replace, overwrites) the duration of a track key. Returns 1 when added or
 * replaced, 0 when the key existed and replace is false, -1 on ENOMEM. */
int st_catalog_put_key(st_catalog_t *c, const char *key, size_t key_len, int64_t duration_ms,
                       bool replace);

/* Looks up a track by its names (normalised here with st_trackmeta_key). Returns true and sets
 * *duration_ms (<= 0: known track with unknown duration) when the track is in the catalog. */
bool st_catalog_lookup(const st_catalog_t *c, const char *artist, size_t artist_len,
                       const char *track, size_t track_len, int64_t *duration_ms);
/* The same by an already normalised key (e.g. EnrichedListen.track_key). */
bool st_catalog_lookup_key(const st_catalog_t *c, const char *key, size_t key_len,
                           int64_t *duration_ms);

/* Number of distinct keys; duplicates skipped by st_catalog_load. */
size_t st_catalog_size(const st_catalog_t *c);
uint64_t st_catalog_duplicates(const st_catalog_t *c);

/* Frees the map. NULL is a no-op. */
void st_catalog_destroy(st_catalog_t *c);

#endif
