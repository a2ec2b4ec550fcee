/* Unit: st_redis_key_slot against Redis Cluster's own answers (`redis-cli cluster keyslot`, Redis
 * 7.0): plain keys, hash tags, empty and nested braces, and stint's own key shapes. */
#include <string.h>

#include "st_redis.h"
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

int main(void)
{
    ST_RUN(test_vectors);
    ST_RUN(test_user_keys_share_a_slot);
    return st_test_summary();
}
