/* st_trackmeta.h - the track metadata cache shared by the enricher and `stint catalog import`:
 * the normalised track key (the one st_listen puts in Listen.track_key), the Redis key of a
 * track, and the layout of a cache entry (a Redis hash) with its read and write commands.
 *
 * Redis layout: <prefix>:track:<16 hex digits of st_hash64(track_key)> is a hash with the fields
 * track_key (checked on read, so a hash collision reads as a miss), source (LASTFM, CATALOG,
 * NOT_FOUND, TRY_LATER), duration_ms (decimal, absent when unknown), tags (up to 5, joined by
 * 0x1f) and expires_at_ms (negative entries only; the key also carries the same PEXPIRE). The
 * cache is not per user, so the key has no hash tag: every lookup is a single-key command and the
 * keys spread over all Redis Cluster slots. */
#ifndef ST_TRACKMETA_H
#define ST_TRACKMETA_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_redis.h"

#define ST_TRACKMETA_MAX_TAGS 5
#define ST_TRACKMETA_TAG_SIZE 128 /* bytes per tag, NUL included */
/* Longest Redis key st_trackmeta_redis_key writes for a prefix of at most 200 bytes. */
#define ST_TRACKMETA_REDIS_KEY_SIZE 240

/* Where a cache entry came from. */
typedef enum {
    ST_TRACKMETA_NONE = 0,  /* no entry */
    ST_TRACKMETA_LASTFM,    /* fetched from track.getInfo */
    ST_TRACKMETA_CATALOG,   /* loaded by `stint catalog import` */
    ST_TRACKMETA_OTHER,     /* an entry whose source is missing or unknown (reported as CACHE) */
    ST_TRACKMETA_NOT_FOUND, /* negative: Last.fm said error 6; expires */
    ST_TRACKMETA_TRY_LATER  /* negative: the fetch failed for now; expires soon */
} st_trackmeta_source_t;

/* One cache entry (no heap memory: copy freely). */
typedef struct {
    st_trackmeta_source_t source;
    int64_t duration_ms; /* >= 1, or -1 when unknown */
    int ntags;
    char tags[ST_TRACKMETA_MAX_TAGS][ST_TRACKMETA_TAG_SIZE];
    int64_t expires_at_ms; /* wall clock; 0 = never (positive entries) */
} st_trackmeta_t;

/* True for NOT_FOUND and TRY_LATER. */
bool st_trackmeta_is_negative(st_trackmeta_source_t source);

/* The stored name of a source ("LASTFM", ...; "" for NONE) and back (unknown text -> OTHER). */
const char *st_trackmeta_source_name(st_trackmeta_source_t source);
st_trackmeta_source_t st_trackmeta_source_parse(const char *s, size_t len);

/* Writes the normalised track key of (artist, track) into out: each name trimmed of spaces, tabs,
 * CR and LF, its inner tabs, CR and LF made spaces, ASCII A-Z lower-cased (other bytes
 * unchanged), joined by one tab (the only one in the key). This is the one
 * definition of Listen.track_key. Returns the key length, or -1 when it does not fit in out_size
 * (NUL included); out is then empty. */
int st_trackmeta_key(const char *artist, size_t artist_len, const char *track, size_t track_len,
                     char *out, size_t out_size);

/* Writes "<prefix>:track:<16 hex digits>" for track_key[0..len) into out (out_size >= the prefix
 * length + 24). Returns the length, or -1 when it does not fit. */
int st_trackmeta_redis_key(const char *prefix, const char *track_key, size_t len, char *out,
                           size_t out_size);

/* Queues the read of one entry: HMGET <redis_key> track_key source duration_ms tags
 * expires_at_ms. Returns what st_redis_pipe returns. */
int st_trackmeta_pipe_lookup(st_redis_t *r, const char *redis_key);

/* Reads the reply of st_trackmeta_pipe_lookup for track_key[0..len) into *out. Returns 1 when the
 * entry exists and belongs to this key, 0 when there is none (or the hash belongs to another key:
 * a 64-bit hash collision, or an expired negative whose PEXPIRE has not run yet), -1 for an error
 * reply or an unexpected shape (out->source is then NONE). now_ms is the wall clock. */
int st_trackmeta_parse_lookup(const redisReply *reply, const char *track_key, size_t len,
                              int64_t now_ms, st_trackmeta_t *out);

/* Registers the store script with r (owned by r; once per connection object). */
st_redis_script_t *st_trackmeta_store_script(st_redis_t *r);

/* Queues the atomic replacement of the entry of track_key[0..len) with *m (EVALSHA of the store
 * script). A negative entry (m->source NOT_FOUND/TRY_LATER) gets ttl_ms (> 0) and never replaces a
 * positive one (LASTFM/CATALOG); a positive entry replaces anything and never expires. Control
 * bytes in tags are stored as spaces. Returns 0, or -1 when the key does not fit or the pipe
 * refused the command. */
int st_trackmeta_pipe_store(st_redis_t *r, const st_redis_script_t *script, const char *prefix,
                            const char *track_key, size_t len, const st_trackmeta_t *m,
                            int64_t ttl_ms, int64_t now_ms);

/* Parses one line of a JSONL catalog ({"artist", "track", "duration_ms", "tags": [...]}; the
 * generator's tracks.jsonl) into its track key (out_key, out_key_size bytes) and an entry with
 * source CATALOG (duration_ms 0 or absent = unknown; tags beyond 5 are dropped, longer ones cut
 * at a UTF-8 boundary). Returns the key length, or -1 with the reason in reason (reason_size). */
int st_trackmeta_parse_catalog_line(const char *line, size_t len, char *out_key,
                                    size_t out_key_size, st_trackmeta_t *out, char *reason,
                                    size_t reason_size);

#endif
