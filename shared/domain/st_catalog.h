/* st_catalog.h - the track catalog file (tracks.jsonl: one JSON object per line,
 * {"artist","track","duration_ms","tags"}): a line reader that skips and counts bad lines (each
 * line parsed by st_trackmeta_parse_catalog_line), the one rule for a track key that a catalog
 * names more than once, and an in-memory map from the normalised track key (st_trackmeta_key,
 * the one st_listen uses for Listen.track_key) to the duration.
 *
 * Every reader of a catalog file goes through the reader and st_catalog_offer: offline
 * (st_catalog_load: `stint sessions`, `stint train/evaluate --catalog`) and `stint catalog
 * import`, which writes the winning entry of each key into the Redis track cache that the enricher
 * serves. So streaming and offline sessions see the same duration for every key of the file
 * (docs/sessionizer.md, "The track catalog"). */
#ifndef ST_CATALOG_H
#define ST_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_err.h"
#include "st_trackmeta.h"

/* Longest line accepted (longer ones are bad lines). */
#define ST_CATALOG_LINE_MAX (64 * 1024)
/* Bad lines logged, and listed by number in st_catalog_stats_t. */
#define ST_CATALOG_BAD_LISTED 20

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
    uint64_t bad_line_no[ST_CATALOG_BAD_LISTED]; /* the first bad lines' numbers (1-based) */
} st_catalog_stats_t;

typedef struct st_catalog_reader st_catalog_reader_t;

/* Opens a catalog file. Returns a new reader (free with st_catalog_reader_destroy), or NULL with
 * errstr filled. */
st_catalog_reader_t *st_catalog_reader_open(const char *path, char *errstr, size_t errstr_size);

/* Reads the next good entry into *out. Returns 1 (entry), 0 (end of file) or -1 (read error,
 * err filled). Bad lines are counted, and the first ST_CATALOG_BAD_LISTED logged (st_log_warn
 * "catalog_bad_line" with the reason) and listed in the stats. */
int st_catalog_reader_next(st_catalog_reader_t *r, st_catalog_entry_t *out, st_err_t *err);

/* Counters so far (borrowed; valid until destroy). */
const st_catalog_stats_t *st_catalog_reader_stats(const st_catalog_reader_t *r);

/* Closes the file and frees the reader. NULL is a no-op. */
void st_catalog_reader_destroy(st_catalog_reader_t *r);

/* The rule for a track key that a catalog names more than once (several lines whose
 * st_trackmeta_key is the same): an entry with a duration (duration_ms > 0) wins over one
 * without; between two that both have one, or both lack one, the earlier line wins. The winner is
 * the whole entry (its duration and, in the Redis cache, its tags). Its name, as the readers
 * report it next to the number of duplicated keys: */
#define ST_CATALOG_RULE "first-with-duration"

/* The rule in one function: true when a later entry of a key, with duration later_ms, replaces
 * the entry kept so far, with duration kept_ms (<= 0: unknown). */
bool st_catalog_later_wins(int64_t kept_ms, int64_t later_ms);

/* The in-memory map (track key -> duration). */
typedef struct st_catalog st_catalog_t;

/* Reads a whole catalog file into a map keyed by st_trackmeta_key(artist, track), each line
 * offered in file order (st_catalog_offer, so a duplicated key keeps the entry the rule picks).
 * Returns a new map (free with st_catalog_destroy) or NULL with errstr filled (open/read error,
 * out of memory). stats may be NULL. */
st_catalog_t *st_catalog_load(const char *path, st_catalog_stats_t *stats, char *errstr,
                              size_t errstr_size);

/* An empty map, for callers that offer entries themselves (`stint catalog import`). NULL on
 * ENOMEM. */
st_catalog_t *st_catalog_new(void);

/* What st_catalog_offer did with an entry. */
typedef enum {
    ST_CATALOG_KEPT = 0,     /* the key was there and its entry stays (the offered one lost) */
    ST_CATALOG_ADDED = 1,    /* the key was new */
    ST_CATALOG_REPLACED = 2, /* the key was there and the offered entry won: its duration now */
} st_catalog_offer_t;

/* Offers the next entry of a file, in file order: adds a new key, or applies the rule
 * (st_catalog_later_wins) against the entry kept for the key. Returns an st_catalog_offer_t, or
 * -1 on ENOMEM (the map unchanged). duration_ms <= 0 is stored as 0 (unknown). */
int st_catalog_offer(st_catalog_t *c, const char *key, size_t key_len, int64_t duration_ms);

/* Looks up a track by its names (normalised here with st_trackmeta_key). Returns true and sets
 * *duration_ms (<= 0: known track with unknown duration) when the track is in the catalog. */
bool st_catalog_lookup(const st_catalog_t *c, const char *artist, size_t artist_len,
                       const char *track, size_t track_len, int64_t *duration_ms);
/* The same by an already normalised key (e.g. EnrichedListen.track_key). */
bool st_catalog_lookup_key(const st_catalog_t *c, const char *key, size_t key_len,
                           int64_t *duration_ms);

/* Number of distinct keys. */
size_t st_catalog_size(const st_catalog_t *c);
/* Entries offered for a key already there (lines beyond the first of their key). */
uint64_t st_catalog_duplicates(const st_catalog_t *c);
/* Keys offered more than once (each counted once however often it was named). */
uint64_t st_catalog_duplicate_keys(const st_catalog_t *c);

/* Frees the map. NULL is a no-op. */
void st_catalog_destroy(st_catalog_t *c);

#endif
