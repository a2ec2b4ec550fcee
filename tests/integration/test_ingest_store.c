/* test_ingest_store.c - ingest's duplicate marks in real Redis (ingest_store_redis.c) agree with
 * the in-memory store on every read of a long random run (window, cap, first owner wins, reruns);
 * the packed layout is what ingest_store.h says (one string per user, a ttl, 22 bytes per mark);
 * and a user's hash of the previous layout is deleted by the user's next write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest_store.h"
#include "st_itest.h"
#include "st_listen.h"
#include "st_rkey.h"
#include "st_test.h"

static char prefix[96];

/* One generated mark: its strings live in the arrays. */
typedef struct {
    char user[16], event_id[17], owner[40];
    int64_t t_ms;
} gen_mark_t;

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static ingest_mark_t as_mark(const gen_mark_t *g)
{
    return (ingest_mark_t){.user = g->user,
                           .user_len = strlen(g->user),
                           .event_id = g->event_id,
                           .owner = g->owner,
                           .listened_at_ms = g->t_ms};
}

/* Batches of random listens of 20 users (some copies of earlier listens, under new owners, some
 * far back in time), each read from both stores (the owners found must be equal), then written to
 * both, sometimes twice (a rerun after a lost reply). */
static void test_redis_equals_memory(void)
{
    st_redis_t *r = itest_st_redis();
    ingest_store_t *rs = ingest_store_redis_new(r, prefix);
    ingest_store_t *ms = ingest_store_mem_new();
    ST_REQUIRE(rs && ms);
    /* ~9 listens of a user in the window: the cap prunes often, and so does the window */
    ingest_bounds_t b = {.window_ms = 1800000, .ttl_s = 600, .max_per_user = 4};
    enum { BATCHES = 300, PER = 40, HIST = BATCHES * PER };
    gen_mark_t *hist = calloc(HIST, sizeof *hist);
    ingest_mark_t m[PER];
    const char *found_r[PER], *found_m[PER];
    char found_r_copy[PER][40];
    size_t nh = 0, reads = 0, hits = 0, mismatches = 0;
    int64_t clock_ms[20];
    for (int u = 0; u < 20; u++)
        clock_ms[u] = 1241478537000LL + u * 1000;
    long long offset = 0;
    for (int bt = 0; bt < BATCHES; bt++) {
        size_t n = 1 + next_rand() % PER;
        gen_mark_t *batch = &hist[nh];
        for (size_t i = 0; i < n; i++) {
            gen_mark_t *g = &batch[i];
            uint64_t x = next_rand();
            if (nh + i > 0 && x % 5 == 0) {
                /* a copy of one of the last 100 listens, later in the log (mostly) */
                size_t back = 1 + next_rand() % (nh + i < 100 ? nh + i : 100);
                *g = hist[nh + i - back];
            } else {
                int u = (int)((x >> 8) % 20);
                snprintf(g->user, sizeof g->user, "user%02d", u);
                /* mostly forward by a track, sometimes far back or far ahead */
                /* whole minutes, so that ties and marks exactly at the window's edge occur */
                int64_t step = (x >> 16) % 10 == 0 ? -3600000 : (int64_t)((x >> 24) % 7) * 60000;
                if ((x >> 16) % 50 == 1)
                    step = 7200000;
                clock_ms[u] += step;
                g->t_ms = clock_ms[u];
                snprintf(g->event_id, sizeof g->event_id, "%016llx",
                         (unsigned long long)next_rand());
            }
            snprintf(g->owner, sizeof g->owner, "%d:%lld", (int)(next_rand() % 6), offset++);
            m[i] = as_mark(g);
        }
        st_err_t err = {0};
        ST_REQUIRE(rs->read(rs->ctx, m, n, found_r, &err) == 0);
        for (size_t i = 0; i < n; i++)
            snprintf(found_r_copy[i], sizeof found_r_copy[i], "%s", found_r[i] ? found_r[i] : "");
        ST_REQUIRE(ms->read(ms->ctx, m, n, found_m, &err) == 0);
        for (size_t i = 0; i < n; i++, reads++) {
            const char *a = found_r_copy[i], *c = found_m[i] ? found_m[i] : "";
            hits += *c != '\0';
            if (strcmp(a, c) != 0 && mismatches++ < 5)
                printf("batch %d: %s %s: redis \"%s\", memory \"%s\"\n", bt, m[i].user,
                       m[i].event_id, a, c);
        }
        ST_REQUIRE(rs->write(rs->ctx, m, n, &b, &err) == 0);
        ST_REQUIRE(ms->write(ms->ctx, m, n, &b, &err) == 0);
        if (bt % 7 == 0) { /* a rerun changes nothing */
            ST_REQUIRE(rs->write(rs->ctx, m, n, &b, &err) == 0);
            ST_REQUIRE(ms->write(ms->ctx, m, n, &b, &err) == 0);
        }
        nh += n;
    }
    printf("%zu reads, %zu found a mark, %zu mismatches\n", reads, hits, mismatches);
    ST_EQ_INT(mismatches, 0);
    ST_CHECK(hits > 100);       /* the copies were found ... */
    ST_CHECK(hits < reads / 2); /* ... and not everything was */

    /* The layout: one string per user, a ttl, a 6-byte header and 22 bytes per mark, within the
     * cap. */
    redisContext *c = itest_redis();
    for (int u = 0; u < 20; u++) {
        char user[16];
        snprintf(user, sizeof user, "user%02d", u);
        st_buf_t k = ST_BUF_INIT;
        ST_REQUIRE(st_rkey_user(&k, prefix, user, strlen(user), ST_RKEY_INGEST_MARKS, NULL) == 0);
        redisReply *len = redisCommand(c, "STRLEN %s", k.data);
        redisReply *ttl = redisCommand(c, "TTL %s", k.data);
        ST_REQUIRE(len && ttl);
        ST_CHECK(len->integer >= 6 + 22 && (len->integer - 6) % 22 == 0 &&
                 len->integer <= 6 + 4 * 22);
        ST_CHECK(ttl->integer > 0 && ttl->integer <= 600);
        freeReplyObject(len);
        freeReplyObject(ttl);
        st_buf_free(&k);
    }
    redisFree(c);
    free(hist);
    ingest_store_mem_destroy(ms);
    ingest_store_redis_destroy(rs);
    st_redis_destroy(r);
}

/* A hash of the previous layout goes with the user's next write; it is not read. */
static void test_previous_layout_deleted(void)
{
    st_redis_t *r = itest_st_redis();
    ingest_store_t *rs = ingest_store_redis_new(r, prefix);
    ST_REQUIRE(rs != NULL);
    st_buf_t old = ST_BUF_INIT;
    ST_REQUIRE(st_rkey_user(&old, prefix, "olduser", 7, ST_RKEY_INGEST_SEEN, NULL) == 0);
    redisContext *c = itest_redis();
    freeReplyObject(redisCommand(c, "HSET %s 00000000000000aa %s ~h 1241478537000", old.data,
                                 "1241478537000 0:1"));
    ingest_mark_t m = {.user = "olduser",
                       .user_len = 7,
                       .event_id = "00000000000000bb",
                       .owner = "0:2",
                       .listened_at_ms = 1241478538000LL};
    ingest_bounds_t b = {.window_ms = 900000, .ttl_s = 600, .max_per_user = 8};
    st_err_t err = {0};
    ST_REQUIRE(rs->write(rs->ctx, &m, 1, &b, &err) == 0);
    redisReply *ex = redisCommand(c, "EXISTS %s", old.data);
    ST_REQUIRE(ex != NULL);
    ST_EQ_INT(ex->integer, 0);
    freeReplyObject(ex);
    const char *found = NULL;
    ST_REQUIRE(rs->read(rs->ctx, &m, 1, &found, &err) == 0);
    ST_CHECK(found && strcmp(found, "0:2") == 0);
    redisFree(c);
    st_buf_free(&old);
    ingest_store_redis_destroy(rs);
    st_redis_destroy(r);
}

int main(void)
{
    snprintf(prefix, sizeof prefix, "test:ingest-store:%d:%lld", (int)getpid(),
             (long long)st_time_wall_ms());
    ST_RUN(test_redis_equals_memory);
    ST_RUN(test_previous_layout_deleted);
    itest_redis_unlink_prefix(prefix);
    return st_test_summary();
}
