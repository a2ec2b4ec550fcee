/* st_dataset.h - the training/evaluation data set of stint: closed sessions per user (from any
 * session source) plus user profiles, one row per session with features computed only from what
 * was known when the session started, seeded splits, and the baselines of the report.
 *
 * Filling. Any session source calls st_dataset_add_session (any order, any user interleaving),
 * profiles come from st_dataset_add_profile or st_dataset_load_profiles (userid-profile.tsv), then
 * st_dataset_finalize sorts each user's sessions by start and computes the past-only row fields.
 * st_dataset_load_sessions reads the `stint sessions` TSV: user_id, start_ts (epoch s), length_s,
 * track_count and an optional 5th column unknown_duration_share (bad lines are counted, logged
 * and skipped).
 *
 * Rows. After finalize, row r (0..n_rows) is one session; a user's rows are contiguous and
 * ascending by start (users in byte order of their ids). Per row the dataset holds the session's
 * own values (length_s is the TARGET and is never read for the row's own features) and fields of
 * the past: index (earlier sessions of the user), prev_length_s, avg_length_s (mean of all
 * earlier), median_length_s (median of the last
 * ST_SESSION_MEDIAN_WINDOW earlier, as the sessionizer computes it), gap_s (start minus the
 * previous session's end; -1 for a first session), prev_track_count, prev_unknown_share. Without
 * history these are 0 (gap -1).
 *
 * Splits (st_dataset_split) mark each row TRAIN, VAL or TEST; everything fit on data (country
 * ranks, profiles, filters, scalers, clusters, weights) must use TRAIN rows only (VAL for early
 * stopping). */
#ifndef ST_DATASET_H
#define ST_DATASET_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ST_DATASET_TRAIN = 0, ST_DATASET_VAL = 1, ST_DATASET_TEST = 2 } st_dataset_role_t;

typedef enum { ST_DATASET_SPLIT_USER_CUT = 0, ST_DATASET_SPLIT_DATE = 1 } st_dataset_split_kind_t;

/* A user's profile; gender 'm', 'f' or 0; age -1 unknown; country "" unknown; registered_s 0
 * unknown. */
typedef struct {
    char gender;
    int age;
    char country[64];
    int64_t registered_s;
} st_dataset_profile_t;

/* One row (read-only for callers). */
typedef struct {
    int user;        /* index into the user table (st_dataset_user_id) */
    int64_t start_s; /* epoch seconds */
    double length_s; /* the target */
    int track_count;
    double unknown_share; /* share of tracks with unknown duration, 0..1 */
    /* the past, known at start */
    int index; /* earlier sessions of this user */
    double prev_length_s, avg_length_s, median_length_s;
    double gap_s; /* -1 for the user's first session */
    int prev_track_count;
    double prev_unknown_share;
    st_dataset_role_t role;
} st_dataset_row_t;

typedef struct st_dataset st_dataset_t;

/* An empty data set (caller owns; st_dataset_destroy). NULL on no memory. */
st_dataset_t *st_dataset_new(void);
void st_dataset_destroy(st_dataset_t *ds);

/* Adds one closed session (user_id copied). unknown_share NAN or < 0 means "not given" (0 is
 * used). Values are stored at the precision of the `stint sessions` TSV: length_s rounded to 3
 * decimals (milliseconds) and unknown_share to 4, exactly as printf("%.3f") / printf("%.4f") and
 * strtod would, so every session source (TSV, in-process sessionizing, the sessions topic) gives
 * the identical data set and hash. A session whose start_s * 1000 is at or after the until limit
 * (st_dataset_set_until_ms) is skipped and counted (returns 0). Returns 0, or -1 with errstr
 * (after finalize, bad values: a start outside 0..ST_DATASET_START_S_MAX, a length outside
 * 0..1e9 s, a negative track count; no memory). */
#define ST_DATASET_START_S_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z, ISO 8601's last */
int st_dataset_add_session(st_dataset_t *ds, const char *user_id, int64_t start_s, double length_s,
                           int track_count, double unknown_share, char *errstr, size_t errstr_size);
/* The same with the start in epoch milliseconds (as sessionizers produce it): stored as whole
 * seconds (floor, as `stint sessions` writes start_ts); the until limit applies to start_ms
 * itself. */
int st_dataset_add_session_ms(st_dataset_t *ds, const char *user_id, int64_t start_ms,
                              double length_s, int track_count, double unknown_share, char *errstr,
                              size_t errstr_size);
/* Keeps only sessions that start before until_ms (epoch ms, exclusive) among those added from
 * now on; INT64_MAX (the default) keeps all. For training on the history before a replay. */
void st_dataset_set_until_ms(st_dataset_t *ds, int64_t until_ms);
/* Sessions skipped by the until limit so far. */
size_t st_dataset_n_after_until(const st_dataset_t *ds);
/* Floor division of epoch milliseconds into epoch seconds (what the data set stores). */
int64_t st_dataset_start_s_of_ms(int64_t start_ms);
/* Sets a user's profile (copied; a user without a profile is all-unknown). Returns 0 or -1. */
int st_dataset_add_profile(st_dataset_t *ds, const char *user_id, const st_dataset_profile_t *p,
                           char *errstr, size_t errstr_size);

/* Reads the `stint sessions` TSV / userid-profile.tsv (a file or a dataset directory). Bad lines
 * are counted in *bad_lines (may be NULL) and skipped. Returns 0, or -1 with errstr when the file
 * cannot be read. */
int st_dataset_load_sessions(st_dataset_t *ds, const char *path, size_t *bad_lines, char *errstr,
                             size_t errstr_size);
int st_dataset_load_profiles(st_dataset_t *ds, const char *path, size_t *bad_lines, char *errstr,
                             size_t errstr_size);

/* Sorts and computes the rows. Sessions with equal (user, start) keep the first added. Returns 0,
 * or -1 with errstr (no sessions, no memory). No more sessions may be added afterwards. */
int st_dataset_finalize(st_dataset_t *ds, char *errstr, size_t errstr_size);

size_t st_dataset_n_rows(const st_dataset_t *ds);
const st_dataset_row_t *st_dataset_rows(const st_dataset_t *ds);
int st_dataset_n_users(const st_dataset_t *ds);
const char *st_dataset_user_id(const st_dataset_t *ds, int user);
/* The user's profile (borrowed; all-unknown if none was given). */
const st_dataset_profile_t *st_dataset_profile(const st_dataset_t *ds, int user);
/* The user's first row and row count. */
size_t st_dataset_user_first(const st_dataset_t *ds, int user);
size_t st_dataset_user_rows(const st_dataset_t *ds, int user);
/* A 64-bit hash of every session and profile (order-independent of how they were added). */
uint64_t st_dataset_hash(const st_dataset_t *ds);

/* Split settings. USER_CUT (the seed's): a seeded shuffle of the users picks test_frac of them as
 * test users and val_frac as validation users; each is cut at floor(U(0.5, 1) x its rows); rows at
 * or after the cut get the user's role, everything else is TRAIN. DATE: rows starting at or after
 * the (1 - test_frac) quantile of all starts are TEST, those at or after the
 * (1 - test_frac - val_frac) quantile VAL, the rest TRAIN. */
typedef struct {
    st_dataset_split_kind_t kind;
    double test_frac, val_frac; /* default 0.1, 0.1 */
    uint64_t seed;
} st_dataset_split_cfg_t;

void st_dataset_split_default(st_dataset_split_cfg_t *cfg);
/* Marks every row's role. Returns 0, or -1 with errstr on bad fractions or before finalize. */
int st_dataset_split(st_dataset_t *ds, const st_dataset_split_cfg_t *cfg, char *errstr,
                     size_t errstr_size);
/* Rows of a role. */
size_t st_dataset_count(const st_dataset_t *ds, st_dataset_role_t role);

/* Baselines of one row, fit on TRAIN rows (call after st_dataset_split; recomputed on each
 * split): the per-user mean and median of the user's TRAIN sessions (a user without TRAIN
 * sessions falls back to the global TRAIN mean / median), the last session's length (known at
 * start; the global TRAIN median for a first session) and the global TRAIN median. */
typedef struct {
    double user_mean_s, user_median_s, last_s, global_median_s;
} st_dataset_baselines_t;
void st_dataset_baselines(const st_dataset_t *ds, size_t row, st_dataset_baselines_t *out);

/* The median of n doubles (v is reordered); NAN for n == 0. */
double st_dataset_median(double *v, size_t n);

#endif
