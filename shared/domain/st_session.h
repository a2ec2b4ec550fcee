/* st_session.h - the session rule (DESIGN.md "Sessions"), the per-user session history and the
 * features known at a session's first listen. Pure functions over plain structs: the streaming
 * sessionizer and the offline builder both call exactly this code. */
#ifndef ST_SESSION_H
#define ST_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_SESSION_GAP_MS_DEFAULT 1800000
#define ST_SESSION_RECENT_MAX     64 /* upper bound of the configurable "last N lengths" */
#define ST_SESSION_RECENT_DEFAULT 32 /* covers a sequence model's W + 1 up to W = 31 */
/* The median feature is over the last this many earlier sessions (all of them when fewer), in
 * streaming (st_session_features) and in training (st_dataset) alike: a median over all earlier
 * sessions would need the whole history in the sessionizer's state. */
#define ST_SESSION_MEDIAN_WINDOW 16
#define ST_SESSION_USER_ID_MAX   128                           /* bytes, without the NUL */
#define ST_SESSION_ID_MAX        (ST_SESSION_USER_ID_MAX + 24) /* "<user_id>:<start_ms>" + NUL */

/* Where the idle gap is measured from: the end of the previous track (start + duration, falling
 * back to its start when the duration is unknown) or always its start. */
typedef enum { ST_SESSION_REF_END = 0, ST_SESSION_REF_START = 1 } st_session_ref_t;

typedef struct {
    int64_t gap_ms;       /* idle gap allowed between sessions' tracks; >= 0 */
    st_session_ref_t ref; /* reference point of the gap */
} st_session_rule_t;

/* One listen as the rule sees it. duration_ms <= 0 means unknown. identity_hash identifies the
 * track (st_session_identity_hash of artist and track) for exact-duplicate detection and as the
 * tie-break between listens with the same timestamp. */
typedef struct {
    int64_t listened_at_ms;
    int64_t duration_ms;
    uint64_t identity_hash;
} st_session_listen_t;

/* The open session of one user. Zero-initialise for "no open session". */
typedef struct {
    bool active;
    int64_t first_start_ms;
    int64_t last_start_ms;
    int64_t last_duration_ms; /* 0 when unknown */
    uint64_t last_identity_hash;
    uint32_t track_count;
    uint32_t unknown_duration_count;
} st_session_open_t;

/* A closed session. end_ms = last_start_ms + last track's duration (0 if unknown). */
typedef struct {
    int64_t start_ms;
    int64_t last_start_ms;
    int64_t end_ms;
    int64_t length_ms; /* end_ms - start_ms */
    double length_s;
    uint32_t track_count;
    uint32_t unknown_duration_count;
    double unknown_duration_share; /* unknown_duration_count / track_count */
} st_session_summary_t;

typedef enum {
    ST_SESSION_STARTED = 0, /* there was no open session: the listen opens one */
    ST_SESSION_CONTINUED,   /* the listen extends the open session */
    ST_SESSION_DUPLICATE,   /* same timestamp and identity as the open session's last listen */
    ST_SESSION_SPLIT /* the open session closed (summary filled); the listen opens a new one */
} st_session_step_t;

/* The user's past sessions, enough for the OPENED features. Zero-initialise for a new user. */
typedef struct {
    uint32_t session_count;
    int64_t sum_length_ms;
    int64_t last_end_ms;
    int64_t last_length_ms;
    uint32_t n_recent;                               /* <= ST_SESSION_RECENT_MAX */
    int64_t recent_length_ms[ST_SESSION_RECENT_MAX]; /* oldest first, newest last */
    /* Details of the same sessions, known for the newest n_detail of them (states written before
     * details were kept have fewer): start, listens, listens of unknown duration. */
    uint32_t n_detail; /* <= n_recent */
    int64_t recent_start_ms[ST_SESSION_RECENT_MAX];
    uint32_t recent_track_count[ST_SESSION_RECENT_MAX];
    uint32_t recent_unknown_count[ST_SESSION_RECENT_MAX];
} st_session_history_t;

/* What is known at a session's first listen. Lengths in seconds; when has_prev is false the
 * prev/mean/median/gap fields are 0. */
typedef struct {
    int64_t start_ms;
    int hour_utc;           /* 0..23 */
    int weekday;            /* 0 = Monday .. 6 = Sunday, UTC */
    uint32_t session_index; /* number of earlier sessions of the user */
    bool has_prev;
    double prev_session_length_s;
    double mean_session_length_s;   /* over all earlier sessions */
    double median_session_length_s; /* over the last min(n_recent, ST_SESSION_MEDIAN_WINDOW) (mean
                                       of the middle two if even) */
    double gap_since_prev_s;        /* start - previous session's end; may be < 0 with REF_START */
    uint32_t n_recent;
    double recent_lengths_s[ST_SESSION_RECENT_MAX]; /* oldest first, newest last */
    /* The same sessions' start, listen count and unknown-duration share: n_recent entries when
     * the history knows them all, else 0 (the consumer then has lengths only). */
    uint32_t n_recent_detail;
    int64_t recent_start_ms[ST_SESSION_RECENT_MAX];
    uint32_t recent_track_count[ST_SESSION_RECENT_MAX];
    double recent_unknown_share[ST_SESSION_RECENT_MAX];
} st_session_features_t;

typedef enum { ST_SESSION_EVENT_OPENED = 0, ST_SESSION_EVENT_CLOSED = 1 } st_session_event_kind_t;

#define ST_SESSION_RETRACT_MAX 8 /* retracted session ids one event can carry */

/* One output event. OPENED carries features, CLOSED carries summary (the other is zeroed).
 * CLOSED events are a function of the input alone (not of batch boundaries or of what caused a
 * close), so a replayed CLOSED is identical to the first one. An OPENED may be announced before
 * the reorder grace has passed (st_sessionizer.h, "Early OPENED"): revision orders the
 * announcements of one session (a higher one replaces a lower one), and retracted_start_ms names
 * sessions announced earlier that turned out not to start a session (their listens belong to this
 * event's session). */
typedef struct {
    st_session_event_kind_t kind;
    char user_id[ST_SESSION_USER_ID_MAX + 1];
    char session_id[ST_SESSION_ID_MAX];
    int64_t start_ms;
    uint32_t session_index;
    int32_t partition; /* input partition of the user */
    uint32_t revision;
    uint32_t n_retracted;
    int64_t retracted_start_ms[ST_SESSION_RETRACT_MAX];
    st_session_features_t features;
    st_session_summary_t summary;
} st_session_event_t;

/* Fills rule with the defaults: gap 1800 s, reference END. */
void st_session_rule_default(st_session_rule_t *rule);

/* Parses "end" or "start". Returns 0, or -1 (out untouched). */
int st_session_ref_parse(const char *s, st_session_ref_t *out);
const char *st_session_ref_name(st_session_ref_t ref);

/* The identity hash of a track: st_hash64 of "artist\ttrack" (seed 0). Pass what the input
 * carries (names; callers with MBIDs may hash those instead, consistently). */
uint64_t st_session_identity_hash(const char *artist, size_t artist_len, const char *track,
                                  size_t track_len);

/* Applies one listen (which must not be earlier than open->last_start_ms) to the open session.
 * On ST_SESSION_SPLIT *closed receives the summary of the session that ended (closed may be NULL
 * only if the caller does not care). Never fails. */
st_session_step_t st_session_step(const st_session_rule_t *rule, st_session_open_t *open,
                                  const st_session_listen_t *listen, st_session_summary_t *closed);

/* The last timestamp a listen may have and still continue the open session:
 * last_start + duration (if known and rule->ref is END) + gap. Undefined for an inactive open. */
int64_t st_session_deadline_ms(const st_session_rule_t *rule, const st_session_open_t *open);

/* Closes the open session: fills *summary and makes open inactive. Returns 0, or -1 if there was
 * no open session (summary untouched). */
int st_session_close(st_session_open_t *open, st_session_summary_t *summary);

/* The summary the open session would have if it closed now (open unchanged). */
void st_session_summarize(const st_session_open_t *open, st_session_summary_t *summary);

/* Adds a closed session to the history, keeping the last recent_n lengths (1..RECENT_MAX). */
void st_session_history_add(st_session_history_t *h, const st_session_summary_t *s,
                            uint32_t recent_n);

/* The features of a session starting at start_ms after the sessions in h. */
void st_session_features(const st_session_history_t *h, int64_t start_ms,
                         st_session_features_t *out);

/* The precision a session's numbers have wherever a model reads them: as the `stint sessions`
 * TSV carries them (printed with that many decimals, read back), lengths in seconds with 3,
 * unknown-duration shares with 4. The data set (training) applies it to every session it takes
 * in, and st_session_features to the recent shares of an OPENED (serving), so the predictor's
 * input equals training's row bit for bit. Magnitudes beyond 1e15 are kept as they are. */
#define ST_SESSION_LENGTH_DECIMALS 3
#define ST_SESSION_SHARE_DECIMALS  4
double st_session_tsv_precision(double v, int decimals);

/* UTC hour (0..23) and weekday (0 = Monday) of an epoch-ms timestamp, also before 1970. */
void st_session_hour_weekday(int64_t ms, int *hour_utc, int *weekday);

/* Writes "<user_id>:<start_ms>" into buf (ST_SESSION_ID_MAX bytes suffice for user ids up to
 * ST_SESSION_USER_ID_MAX). Returns buf. */
char *st_session_id_format(const char *user_id, size_t user_id_len, int64_t start_ms, char *buf,
                           size_t size);

#endif
