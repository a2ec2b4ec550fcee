/* fuzz_listen_json.c - libFuzzer harness for st_listen_parse: never crashes, gives the same
 * reason, error text and fields as st_listen_parse_reference (jansson alone) whether or not its
 * scanner decided the message, and every accepted message satisfies the normalisation
 * invariants (trimmed, bounded, event_id recomputable). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "st_listen.h"

#define FUZZ_NOW_MS 1798761600000LL /* 2027-01-01 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int trimmed(const char *s)
{
    size_t n = strlen(s);
    return n == 0 || (s[0] != ' ' && s[n - 1] != ' ' && s[0] != '\n' && s[n - 1] != '\n');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static st_listen_t l, ref;
    st_err_t err = {0}, ref_err = {0};
    char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    st_listen_reason_t reason = st_listen_parse(copy, size, FUZZ_NOW_MS, &l, &err);
    st_listen_reason_t ref_reason =
        st_listen_parse_reference(copy, size, FUZZ_NOW_MS, &ref, &ref_err);
    free(copy);
    if (reason >= ST_LISTEN_REASON_COUNT)
        abort();
    if (reason != ref_reason || err.code != ref_err.code || strcmp(err.text, ref_err.text) != 0)
        abort();
    if (reason == ST_LISTEN_OK &&
        (strcmp(l.user_id, ref.user_id) != 0 || l.timestamp_ms != ref.timestamp_ms ||
         strcmp(l.artist_name, ref.artist_name) != 0 || strcmp(l.track_name, ref.track_name) != 0 ||
         l.has_artist_mbid != ref.has_artist_mbid || strcmp(l.artist_mbid, ref.artist_mbid) != 0 ||
         l.has_track_mbid != ref.has_track_mbid || strcmp(l.track_mbid, ref.track_mbid) != 0 ||
         strcmp(l.track_key, ref.track_key) != 0 || strcmp(l.event_id, ref.event_id) != 0))
        abort();
    if (reason != ST_LISTEN_OK) {
        if (err.code != ST_ERR_INVALID || err.text[0] == '\0')
            abort();
        return 0;
    }
    char id[17];
    st_listen_event_id(l.user_id, l.timestamp_ms, l.artist_name, l.track_name, id);
    if (strcmp(id, l.event_id) != 0 || l.user_id[0] == '\0' || !trimmed(l.user_id) ||
        !trimmed(l.artist_name) || !trimmed(l.track_name))
        abort();
    if (strlen(l.track_key) != strlen(l.artist_name) + 1 + strlen(l.track_name))
        abort();
    if (l.timestamp_ms < ST_LISTEN_MIN_TS_MS || l.timestamp_ms > FUZZ_NOW_MS + ST_LISTEN_FUTURE_MS)
        abort();
    if (l.has_artist_mbid != (l.artist_mbid[0] != '\0'))
        abort();
    return 0;
}
