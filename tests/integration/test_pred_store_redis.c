/* test_pred_store_redis.c - the predictor's per-user state in real Redis (pred_store.h): users
 * written in the previous layout (the pred hash with os, or with the older single o) are read as
 * they were and moved to the state string by their next write, which deletes the hash and the
 * pred:hist list; a replay is refused in either layout; the string stays a small string (its
 * MEMORY USAGE is bounded here so a layout regression shows). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pred_store.h"
#include "st_itest.h"
#include "st_test.h"

static char prefix[96];
static const char *const topic = "it.sessions";
static st_redis_t *redis;

/* A command's reply, which must not be an error (caller frees). */
static long long memory_usage(redisContext *c, const char *user, const char *what)
{
    redisReply *r = itest_cmd(c, "MEMORY USAGE %s:u:{%s}:%s SAMPLES 0", prefix, user, what);
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return n;
}

/* Checks the first line of a state string: lc, then exactly the markers given (any order). */
static void check_head(const char *st, const char *lc, const char *m1, const char *m2)
{
    char want1[256], want2[256];
    snprintf(want1, sizeof want1, "%s %s %s\n", lc, m1, m2);
    snprintf(want2, sizeof want2, "%s %s %s\n", lc, m2, m1);
    size_t n = strlen(want1);
    ST_CHECK(strncmp(st, want1, n) == 0 || strncmp(st, want2, n) == 0);
}

/* The user's state string ("(nil)" when absent). */
static const char *state(redisContext *c, const char *user)
{
    static char out[1024];
    redisReply *r = itest_cmd(c, "GET %s:u:{%s}:pred:s", prefix, user);
    snprintf(out, sizeof out, "%s", r->type == REDIS_REPLY_STRING ? r->str : "(nil)");
    freeReplyObject(r);
    return out;
}

typedef struct {
    st_applied_t a;
    pred_open_t open;
} read_t;

/* Reads user with partition 0 of the topic in the batch. */
static void read_user(pred_store_t *s, const char *user, read_t *out)
{
    st_applied_reset(&out->a);
    ST_REQUIRE(st_applied_slot(&out->a, 0, true) == 0);
    pred_store_user_t u = {.user = user, .applied = &out->a, .open = &out->open};
    st_err_t err = {0};
    ST_EQ_INT(s->read(s->ctx, &u, 1, false, &err), 0);
}

/* One write moving partition 0's marker to offset, lc to lc, and the open text (NULL: kept). */
static void write_user(pred_store_t *s, const char *user, int64_t offset, int64_t lc,
                       const char *open_text)
{
    st_applied_t a;
    st_applied_reset(&a);
    int slot = st_applied_slot(&a, 0, true);
    a.last[slot] = offset;
    a.last_closed_ms = lc;
    pred_store_write_t w = {.user = user, .applied = &a, .open_text = open_text};
    st_err_t err = {0};
    ST_EQ_INT(s->write(s->ctx, &w, 1, &err), 0);
}

/* The text of one open prediction for user starting at start_ms, after closed_last_ms. */
static void open_text(char *out, size_t size, const char *user, int64_t closed_last_ms,
                      int64_t start_ms, const char *payload)
{
    pred_open_t *p = calloc(1, sizeof *p);
    ST_REQUIRE(p != NULL);
    pred_open_reset(p);
    p->closed_last_ms = closed_last_ms;
    pred_open_entry_t e = {.start_ms = start_ms, .revision = 3, .made_s = 1700000000};
    snprintf(e.sid, sizeof e.sid, "%s:%lld", user, (long long)start_ms);
    snprintf(e.payload, sizeof e.payload, "%s", payload);
    ST_REQUIRE(pred_open_put(p, &e, NULL) == 0);
    st_buf_t b = {0};
    ST_REQUIRE(pred_open_format(p, &b) == 0);
    snprintf(out, size, "%.*s", (int)b.len, (const char *)b.data);
    st_buf_free(&b);
    free(p);
}

static void test_migration_from_hash(void)
{
    redisContext *c = itest_redis();
    pred_store_t *s = pred_store_redis_new(redis, prefix, topic);
    ST_REQUIRE(s != NULL);
    /* The previous layout, as its script left it: a marker of this topic and one of another
     * (kept), lc, os over 64 bytes (so a hashtable), and an old history list. */
    char os[512];
    open_text(os, sizeof os, "u1", 1241000000000LL, 1241000100000LL,
              "1691.5417359261219 3626.4916692307693 2 M b-70bc983eb76e6ca6");
    freeReplyObject(
        itest_cmd(c, "HSET %s:u:{u1}:pred a:%s:0 5 a:other.topic:1 9 lc 1240999000000 os %s",
                  prefix, topic, os));
    freeReplyObject(itest_cmd(c, "RPUSH %s:u:{u1}:pred:hist x", prefix));
    long long hash_bytes = memory_usage(c, "u1", "pred");

    read_t *r = calloc(1, sizeof *r);
    ST_REQUIRE(r != NULL);
    read_user(s, "u1", r);
    ST_EQ_INT(r->a.stored[0], 5);
    ST_EQ_INT(r->a.last_closed_ms, 1240999000000LL);
    ST_EQ_INT(r->open.n, 1);
    ST_EQ_STR(r->open.e[0].sid, "u1:1241000100000");
    ST_EQ_INT(r->open.e[0].revision, 3);
    ST_EQ_INT(r->open.closed_last_ms, 1241000000000LL);

    /* A replay (marker at its offset) writes nothing in either key. */
    write_user(s, "u1", 5, 1241000500000LL, "0\n");
    ST_EQ_STR(state(c, "u1"), "(nil)");
    ST_EQ_INT(itest_user_key_exists(c, prefix, "u1", "pred"), 1);

    /* The next write, keeping the open predictions, moves the user: the string holds what the
     * hash held, the hash and the list are gone. */
    write_user(s, "u1", 6, 1241000500000LL, NULL);
    ST_EQ_INT(itest_user_key_exists(c, prefix, "u1", "pred"), 0);
    ST_EQ_INT(itest_user_key_exists(c, prefix, "u1", "pred:hist"), 0);
    char mark0[64], want[1024];
    snprintf(mark0, sizeof mark0, "%s:0=6", topic);
    snprintf(want, sizeof want, "%s", state(c, "u1"));
    check_head(want, "1241000500000", mark0, "other.topic:1=9");
    ST_EQ_STR(strchr(want, '\n') + 1, os);
    read_user(s, "u1", r);
    ST_EQ_INT(r->a.stored[0], 6);
    ST_EQ_INT(r->a.last_closed_ms, 1241000500000LL);
    ST_EQ_INT(r->open.n, 1);
    ST_EQ_STR(r->open.e[0].payload, "1691.5417359261219 3626.4916692307693 2 M b-70bc983eb76e6ca6");

    /* In this layout too: a replay is refused, lc only moves forward, the text is replaced. */
    write_user(s, "u1", 6, 1241000900000LL, "0\n");
    ST_EQ_STR(state(c, "u1"), want);
    write_user(s, "u1", 7, 1240000000000LL, "1241000600000\n");
    snprintf(mark0, sizeof mark0, "%s:0=7", topic);
    check_head(state(c, "u1"), "1241000500000", mark0, "other.topic:1=9");
    ST_EQ_STR(strchr(state(c, "u1"), '\n') + 1, "1241000600000\n");
    read_user(s, "u1", r);
    ST_EQ_INT(r->a.stored[0], 7);
    ST_EQ_INT(r->open.n, 0);
    ST_EQ_INT(r->open.closed_last_ms, 1241000600000LL);

    /* Size: one string (not a hash), and well under the hash with the same open prediction
     * (a hashtable: os is over hash-max-listpack-value). The bound has room for allocator bins,
     * not for a second encoding. */
    write_user(s, "u1", 8, 1241000500000LL, os);
    redisReply *t = itest_cmd(c, "TYPE %s:u:{u1}:pred:s", prefix);
    ST_EQ_STR(t->str, "string");
    freeReplyObject(t);
    long long string_bytes = memory_usage(c, "u1", "pred:s");
    printf("one open prediction: hash %lld B, state string %lld B (MEMORY USAGE)\n", hash_bytes,
           string_bytes);
    ST_CHECK(string_bytes > 0 && string_bytes <= 300);
    ST_CHECK(string_bytes + 64 <= hash_bytes);
    free(r);
    pred_store_redis_destroy(s);
    redisFree(c);
}

static void test_migration_from_single_o(void)
{
    redisContext *c = itest_redis();
    pred_store_t *s = pred_store_redis_new(redis, prefix, topic);
    ST_REQUIRE(s != NULL);
    /* The layout before os: one prediction in o, the closed past ending at lc. */
    freeReplyObject(itest_cmd(c, "HSET %s:u:{u2}:pred a:%s:0 3 lc 500 o %s", prefix, topic,
                              "1700000000 6:u2:900100 5 M v1"));
    read_t *r = calloc(1, sizeof *r);
    ST_REQUIRE(r != NULL);
    read_user(s, "u2", r);
    ST_EQ_INT(r->a.stored[0], 3);
    ST_EQ_INT(r->open.n, 1);
    ST_EQ_STR(r->open.e[0].sid, "u2:900");
    ST_EQ_INT(r->open.closed_last_ms, 500);

    /* Moved unchanged (a write without a text): read back the same. */
    write_user(s, "u2", 4, -1, NULL);
    ST_EQ_INT(itest_user_key_exists(c, prefix, "u2", "pred"), 0);
    read_user(s, "u2", r);
    ST_EQ_INT(r->a.stored[0], 4);
    ST_EQ_INT(r->a.last_closed_ms, 500);
    ST_EQ_INT(r->open.n, 1);
    ST_EQ_STR(r->open.e[0].sid, "u2:900");
    ST_EQ_INT(r->open.closed_last_ms, 500);

    /* A new user with no text yet: the closed past ends at lc, as before. */
    write_user(s, "u3", 1, 42, NULL);
    ST_EQ_STR(state(c, "u3"), "42 it.sessions:0=1\n");
    read_user(s, "u3", r);
    ST_EQ_INT(r->a.stored[0], 1);
    ST_EQ_INT(r->open.n, 0);
    ST_EQ_INT(r->open.closed_last_ms, 42);
    free(r);
    pred_store_redis_destroy(s);
    redisFree(c);
}

int main(void)
{
    snprintf(prefix, sizeof prefix, "it-pred-%d-%lld", (int)getpid(),
             (long long)st_time_wall_ms() % 100000000);
    redis = itest_st_redis();
    ST_RUN(test_migration_from_hash);
    ST_RUN(test_migration_from_single_o);
    itest_redis_unlink_prefix(prefix);
    st_redis_destroy(redis);
    return st_test_summary();
}
