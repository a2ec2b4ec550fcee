/* Unit: st_redis_key_slot against Redis Cluster's own answers (`redis-cli cluster keyslot`, Redis
 * 7.0): plain keys, hash tags, empty and nested braces, and stint's own key shapes. */
#include <string.h>

#include "st_redis.h"
#include "st_rkey.h"
#include "st_test.h"

static int slot(const char *key)
{
    return st_redis_key_slot(key, strlen(key));
}

static void test_vectors(void)
{
    ST_EQ_INT(slot("123456789"), 12739); /* CRC16/XMODEM check value 0x31C3 */
    ST_EQ_INT(slot("foo"), 12182);
    ST_EQ_INT(slot("{user1000}.following"), 3443);
    ST_EQ_INT(slot("{user1000}.followers"), 3443);
    ST_EQ_INT(slot("foo{}{bar}"), 8363);    /* empty tag: the whole key */
    ST_EQ_INT(slot("foo{{bar}}zap"), 4015); /* the tag is "{bar" */
    ST_EQ_INT(slot("foo{bar}{zap}"), 5061); /* the first tag only */
    ST_EQ_INT(slot("stint:u:{user_000042}:sz"), 6529);
    ST_EQ_INT(slot("stint:dl:{p3}"), 3689);
}

/* A user's keys all share one slot, whatever follows the tag. */
static void test_user_keys_share_a_slot(void)
{
    ST_EQ_INT(slot("stint:u:{user_000042}:sz"), slot("stint:u:{user_000042}:clu:prof"));
    ST_EQ_INT(slot("other:u:{user_000042}:pred:s"), slot("{user_000042}"));
    ST_EQ_INT(slot("user_000042"), slot("x{user_000042}y"));
}

static int user_slot(const char *user, const char *what)
{
    st_buf_t b = ST_BUF_INIT;
    int s = st_rkey_user(&b, "stint", user, strlen(user), what, NULL) == 0 ? slot(b.data) : -1;
    st_buf_free(&b);
    return s;
}

/* ... also for the user ids whose braces end or nest the tag: one starting with '}' (which left
 * the tag empty, each key in a slot of its own), an empty one, and ones with braces inside; and
 * those keys are no other user's. */
static void test_braces_in_user_ids(void)
{
    static const char *const users[] = {"}x", "}", "", "a}b", "{x}", "x{", "}}", "~}x"};
    for (size_t i = 0; i < sizeof users / sizeof *users; i++) {
        int s = user_slot(users[i], ST_RKEY_SZ);
        ST_EQ_INT(user_slot(users[i], ST_RKEY_CLU_PROF), s);
        ST_EQ_INT(user_slot(users[i], ST_RKEY_PRED_STATE), s);
        ST_EQ_INT(user_slot(users[i], ST_RKEY_INGEST_MARKS), s);
    }
    st_buf_t a = ST_BUF_INIT, b = ST_BUF_INIT;
    ST_REQUIRE(st_rkey_user(&a, "stint", "}x", 2, ST_RKEY_SZ, NULL) == 0);
    ST_EQ_STR(a.data, "stint:U:{~}x}:sz");
    ST_REQUIRE(st_rkey_user(&b, "stint", "~}x", 3, ST_RKEY_SZ, NULL) == 0);
    ST_EQ_STR(b.data, "stint:u:{~}x}:sz");
    st_buf_free(&a);
    st_buf_free(&b);
}

int main(void)
{
    ST_RUN(test_vectors);
    ST_RUN(test_user_keys_share_a_slot);
    ST_RUN(test_braces_in_user_ids);
    return st_test_summary();
}
