/* pred_open.h - one user's open predictions (sessions announced by an OPENED, not closed yet:
 * several at once since the sessionizer announces a session before the previous one closes),
 * the session ids it retracted, and the end of the closed past; with its text form in Redis.
 * Pure data structure, no I/O. */
#ifndef PRED_OPEN_H
#define PRED_OPEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_buf.h"

#define PRED_OPEN_MAX         8   /* open predictions kept per user; the oldest start goes first */
#define PRED_OPEN_TOMB_MAX    8   /* retracted session ids remembered per user */
#define PRED_OPEN_SID_MAX     200 /* bytes of a session id, without the NUL */
#define PRED_OPEN_PAYLOAD_MAX 256 /* bytes of a stored prediction's text, with the NUL */

/* An open prediction: the latest revision applied for the session. payload is the predictor's
 * text of the prediction ("<predicted_s> <baseline_s> <cluster> M|B <model_version>"). */
typedef struct {
    char sid[PRED_OPEN_SID_MAX + 1];
    int64_t start_ms;
    int32_t revision;
    int64_t made_s; /* wall clock of that revision, for prediction.ttl_s */
    char payload[PRED_OPEN_PAYLOAD_MAX];
} pred_open_entry_t;

/* A session id the sessionizer retracted: a later OPENED of it is a copy of an old one. */
typedef struct {
    char sid[PRED_OPEN_SID_MAX + 1];
    int64_t start_ms;
} pred_open_tomb_t;

/* Zero-initialise, then set closed_last_ms to -1 (pred_open_reset does both). */
typedef struct {
    int n;                                  /* live entries, sorted by start_ms */
    pred_open_entry_t e[PRED_OPEN_MAX + 1]; /* one spare slot for the insert before a drop */
    int n_tomb;                             /* sorted by start_ms */
    pred_open_tomb_t tomb[PRED_OPEN_TOMB_MAX + 1];
    /* The last listen of the closed past: the largest CLOSED last_start_ms (its start_ms when
     * the CLOSED has none). No session starts at or before it any more. -1 none. */
    int64_t closed_last_ms;
} pred_open_t;

void pred_open_reset(pred_open_t *p);

/* The text stored in Redis (the body of the state string, pred_store.h): "<closed_last_ms>\n" then
 * one line per entry, "L <made_s> <start_ms> <revision> <sid_len>:<sid><payload>" or "R <start_ms>
 * <sid_len>:<sid>" for a retracted id. Appended to out; 0 or -1 (no memory). Retracted ids at or
 * before closed_last_ms are left out (closed_last_ms answers for them). */
int pred_open_format(const pred_open_t *p, st_buf_t *out);
/* Parses the text of pred_open_format into p (reset first). Malformed lines are skipped.
 * Returns the number of lines skipped. */
int pred_open_parse(pred_open_t *p, const char *s, size_t len);
/* Adds the single prediction of the previous layout (hash field "o",
 * "<made_s> <sid_len>:<sid><payload>", revision 0, start from the id's ":<start_ms>" suffix).
 * Returns 0, or -1 when malformed (p unchanged). */
int pred_open_parse_legacy(pred_open_t *p, const char *s, size_t len);

/* The index of the live entry of sid, -1 none. */
int pred_open_find(const pred_open_t *p, const char *sid);
/* Whether sid was retracted. */
bool pred_open_is_retracted(const pred_open_t *p, const char *sid);

/* Inserts e, or replaces the entry of the same sid. When that makes more than PRED_OPEN_MAX,
 * the entry with the oldest start (possibly e itself) is removed and copied to *dropped
 * (which may be NULL): returns 1 then, else 0. */
int pred_open_put(pred_open_t *p, const pred_open_entry_t *e, pred_open_entry_t *dropped);
/* Removes entry i (0 <= i < n), copying it to *out when not NULL. */
void pred_open_remove(pred_open_t *p, int i, pred_open_entry_t *out);
/* Remembers sid (start start_ms) as retracted; the oldest is forgotten beyond
 * PRED_OPEN_TOMB_MAX. A second add of the same sid is a no-op. */
void pred_open_retract(pred_open_t *p, const char *sid, int64_t start_ms);

/* The start_ms in a session id "<user_id>:<start_ms>", or -1 when it has no such suffix. */
int64_t pred_open_sid_start_ms(const char *sid);

#endif
