/* st_rkey.c - the Redis key builders (layout in st_rkey.h). */
#include "st_rkey.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>

int st_rkey_user(st_buf_t *out, const char *prefix, const char *user, size_t user_len,
                 const char *what, const char *what2)
{
    /* A hash tag ends at the first '}' after the '{': a user id starting with '}' would make it
     * empty, and Redis Cluster would then hash each of the user's keys whole, into different
     * slots (a CROSSSLOT error for every script over two of them). Such ids (and an empty one)
     * get the tag "~" in a namespace of their own (U), so no other user's key can be the same. */
    bool brace = user_len == 0 || user[0] == '}';
    if (st_buf_append_str(out, prefix) != 0 ||
        st_buf_append_str(out, brace ? ":U:{~" : ":u:{") != 0 ||
        st_buf_append(out, user, user_len) != 0 || st_buf_append_str(out, "}:") != 0 ||
        st_buf_append_str(out, what) != 0 || (what2 && st_buf_append_str(out, what2) != 0))
        return -1;
    return 0;
}

int st_rkey_partition(st_buf_t *out, const char *prefix, const char *what, int32_t partition)
{
    return st_buf_printf(out, "%s:%s:{p%" PRId32 "}", prefix, what, partition) < 0 ? -1 : 0;
}

#define TRACK_FMT "%s:track:%016" PRIx64

int st_rkey_track(st_buf_t *out, const char *prefix, uint64_t hash)
{
    return st_buf_printf(out, TRACK_FMT, prefix, hash) < 0 ? -1 : 0;
}

int st_rkey_track_to(char *out, size_t size, const char *prefix, uint64_t hash)
{
    int n = snprintf(out, size, TRACK_FMT, prefix, hash);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

int st_rkey_refit(st_buf_t *out, const char *prefix)
{
    return st_buf_printf(out, "%s:clustering:refit", prefix) < 0 ? -1 : 0;
}

int st_rkey_refit_seq(st_buf_t *out, const char *prefix)
{
    return st_buf_printf(out, "%s:clustering:refit:seq", prefix) < 0 ? -1 : 0;
}
