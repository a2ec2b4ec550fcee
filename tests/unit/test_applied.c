/* Unit tests of st_applied: slots and the one overflow limit, reading a stored hash's fields
 * (markers of the batch's partitions, lc, foreign fields ignored), the skip and copy rules, the
 * script arguments, and the in-memory check-and-set the services' memory stores use. */
#include "st_applied.h"
#include "st_test.h"

static void test_slots_and_overflow(void)
{
    st_applied_t a;
    st_applied_reset(&a);
    ST_EQ_INT(st_applied_slot(&a, 3, false), -1);
    ST_EQ_INT(st_applied_slot(&a, 3, true), 0);
    ST_EQ_INT(st_applied_slot(&a, 3, true), 0);
    for (int p = 0; p < ST_APPLIED_PARTS_MAX - 1; p++)
        ST_EQ_INT(st_applied_slot(&a, 100 + p, true), p + 1);
    ST_EQ_INT(a.n, ST_APPLIED_PARTS_MAX);
    /* The ninth partition is refused, never dropped silently; known ones still resolve. */
    ST_EQ_INT(st_applied_slot(&a, 999, true), -1);
    ST_EQ_INT(st_applied_slot(&a, 103, true), 4);
    ST_EQ_INT(a.stored[0], -1);
    ST_EQ_INT(a.last[0], -1);
}

static void test_read_fields(void)
{
    st_applied_t a;
    st_applied_reset(&a);
    char prefix[64];
    size_t pl = st_applied_prefix(prefix, sizeof prefix, "sessions");
    ST_EQ_STR(prefix, "a:sessions:");
    ST_EQ_INT(pl, 11);
    int s2 = st_applied_slot(&a, 2, true);
    struct {
        const char *field, *value;
        bool ours;
    } f[] = {
        {"a:sessions:2", "41", true},   /* this batch's partition */
        {"a:sessions:5", "77", true},   /* ours, not in the batch: ignored */
        {"a:other:2", "99", false},     /* another topic's marker */
        {"a:sessions:x", "1", true},    /* under the prefix, not a partition */
        {"lc", "1700000000000", true},  /* the last CLOSED start */
        {"os", "text", false},          /* a service's own field */
        {"a:sessions:-1", "5", true},   /* negative partition: ignored */
        {"a:sessions:2junk", "8", true} /* not a partition either */
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        ST_EQ_INT(st_applied_read_field(&a, prefix, pl, f[i].field, strlen(f[i].field), f[i].value),
                  f[i].ours);
    ST_EQ_INT(a.n, 1);
    ST_EQ_INT(a.stored[s2], 41);
    ST_EQ_INT(a.last_closed_ms, 1700000000000);
    /* Skip rule: at or below the stored marker. */
    ST_CHECK(st_applied_done(&a, s2, 40));
    ST_CHECK(st_applied_done(&a, s2, 41));
    ST_CHECK(!st_applied_done(&a, s2, 42));
    /* Copy rule: a CLOSED at or before lc. */
    ST_CHECK(st_applied_is_copy(&a, 1700000000000));
    ST_CHECK(!st_applied_is_copy(&a, 1700000000001));
    st_applied_closed(&a, 1700000000500);
    st_applied_closed(&a, 1700000000100); /* lc only moves forward */
    ST_EQ_INT(a.last_closed_ms, 1700000000500);
    /* A garbage value leaves the marker unknown rather than inventing one. */
    st_applied_t b;
    st_applied_reset(&b);
    int s = st_applied_slot(&b, 2, true);
    ST_CHECK(st_applied_read_field(&b, prefix, pl, "a:sessions:2", 12, "12abc"));
    ST_EQ_INT(b.stored[s], -1);
}

static void test_argv(void)
{
    st_applied_t a;
    st_applied_reset(&a);
    int s0 = st_applied_slot(&a, 0, true);
    st_applied_slot(&a, 7, true); /* in the batch, nothing applied in it */
    int s9 = st_applied_slot(&a, 9, true);
    st_applied_advance(&a, s0, 10);
    st_applied_advance(&a, s0, 12);
    st_applied_advance(&a, s0, 11); /* the highest stays */
    st_applied_advance(&a, s9, 3);
    st_applied_args_t buf;
    const char *argv[1 + 2 * ST_APPLIED_PARTS_MAX];
    int na = st_applied_argv(&a, "a:t:", &buf, argv);
    ST_EQ_INT(na, 5);
    ST_EQ_STR(argv[0], "2");
    ST_EQ_STR(argv[1], "a:t:0");
    ST_EQ_STR(argv[2], "12");
    ST_EQ_STR(argv[3], "a:t:9");
    ST_EQ_STR(argv[4], "3");
}

static void test_mem_check_and_set(void)
{
    st_applied_mark_t *stored = NULL;
    size_t n = 0;
    st_applied_t a;
    st_applied_reset(&a);
    int s1 = st_applied_slot(&a, 1, true), s2 = st_applied_slot(&a, 2, true);
    st_applied_advance(&a, s1, 5);
    st_applied_advance(&a, s2, 8);
    ST_EQ_INT(st_applied_mem_check_and_set(&stored, &n, &a), 1);
    ST_EQ_INT(n, 2);
    /* The same batch again (another owner, or a retry after the write landed): refused. */
    ST_EQ_INT(st_applied_mem_check_and_set(&stored, &n, &a), 0);
    /* One marker past, one behind: all or nothing. */
    st_applied_t b;
    st_applied_reset(&b);
    st_applied_advance(&b, st_applied_slot(&b, 1, true), 6);
    st_applied_advance(&b, st_applied_slot(&b, 2, true), 8);
    ST_EQ_INT(st_applied_mem_check_and_set(&stored, &n, &b), 0);
    ST_EQ_INT(stored[0].offset, 5);
    /* Both forward, and a new partition: set. */
    st_applied_t c;
    st_applied_reset(&c);
    st_applied_advance(&c, st_applied_slot(&c, 2, true), 9);
    st_applied_advance(&c, st_applied_slot(&c, 4, true), 0);
    st_applied_slot(&c, 1, true); /* nothing applied there: not checked, not moved */
    ST_EQ_INT(st_applied_mem_check_and_set(&stored, &n, &c), 1);
    ST_EQ_INT(n, 3);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (stored[i].partition == 1)
            ST_EQ_INT(stored[i].offset, 5);
        if (stored[i].partition == 2)
            ST_EQ_INT(stored[i].offset, 9);
        if (stored[i].partition == 4)
            ST_EQ_INT(stored[i].offset, 0);
        found += stored[i].partition == 1 || stored[i].partition == 2 || stored[i].partition == 4;
    }
    ST_EQ_INT(found, 3);
    free(stored);
}

int main(void)
{
    ST_RUN(test_slots_and_overflow);
    ST_RUN(test_read_fields);
    ST_RUN(test_argv);
    ST_RUN(test_mem_check_and_set);
    return st_test_summary();
}
