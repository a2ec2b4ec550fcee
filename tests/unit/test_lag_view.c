/* Unit test of `stint lag`'s view (tools/stint/lag_view.h): per-partition lag and unread records,
 * the caught-up test with and without a read position (the sessionizer's held records), the table
 * (columns, "-" for no commit / no member, a TOTAL line ending with the total) and the JSON. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lag_view.h"
#include "st_test.h"

static const lag_row_t rows[] = {
    {"in", 0, 100, -1, 0, 130, "c-1/10.0.0.1"},
    {"in", 1, -1, -1, 5, 20, NULL}, /* nothing committed: lag from the log start */
    {"in", 2, 50, -1, 0, 50, NULL},
};

static char *render(const lag_view_t *v, bool json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (json)
        ST_EQ_INT(lag_view_json(v, f), 0);
    else
        lag_view_table(v, f);
    fclose(f);
    return buf;
}

static void test_lag(void)
{
    ST_EQ_INT(lag_row_lag(&rows[0]), 30);
    ST_EQ_INT(lag_row_lag(&rows[1]), 15);
    ST_EQ_INT(lag_row_lag(&rows[2]), 0);
    lag_view_t v = {"g", "Stable", 1, false, rows, 3};
    ST_EQ_INT(lag_view_total_lag(&v), 45);
    ST_EQ_INT(lag_view_total_unread(&v), 45);
    ST_CHECK(!lag_view_caught_up(&v));
    lag_view_t one = {"g", "Stable", 1, false, rows + 2, 1};
    ST_CHECK(lag_view_caught_up(&one));
    lag_view_t none = {"g", "PreparingRebalance", 1, false, rows, 0}; /* nothing read yet */
    ST_CHECK(!lag_view_caught_up(&none));
}

/* The sessionizer: committed at its oldest held record, read to the end = caught up; read short
 * of the end = not; a read position outside [committed, end] is stale and ignored. */
static void test_read_position(void)
{
    lag_row_t r[2] = {{"in", 0, 100, 130, 0, 130, "m"}, {"in", 1, 10, 40, 0, 40, "m"}};
    lag_view_t v = {"sz", "Stable", 1, true, r, 2};
    ST_EQ_INT(lag_view_total_lag(&v), 60);
    ST_EQ_INT(lag_view_total_unread(&v), 0);
    ST_CHECK(lag_view_caught_up(&v));
    r[1].read = 35; /* stuck behind 5 unread records */
    ST_EQ_INT(lag_row_unread(&r[1]), 5);
    ST_CHECK(!lag_view_caught_up(&v));
    r[1].read = 400; /* beyond the end: a recreated topic */
    ST_EQ_INT(lag_row_read_to(&r[1]), 10);
    ST_EQ_INT(lag_row_unread(&r[1]), 30);
    r[1].read = 5; /* behind the commit */
    ST_EQ_INT(lag_row_unread(&r[1]), 30);
}

static void test_table(void)
{
    lag_view_t v = {"g", "Stable", 1, false, rows, 3};
    char *t = render(&v, false);
    const char *want = "GROUP g  STATE Stable  MEMBERS 1\n"
                       "TOPIC  PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  MEMBER\n"
                       "in     0          100             130             30   c-1/10.0.0.1\n"
                       "in     1          -               20              15   -\n"
                       "in     2          50              50              0    -\n"
                       "TOTAL             150             200             45\n";
    ST_EQ_STR(t, want);
    free(t);
    lag_row_t r[1] = {{"in", 0, 100, 130, 0, 131, "m"}};
    lag_view_t s = {"sz", "Empty", 0, true, r, 1};
    t = render(&s, false);
    want = "GROUP sz  STATE Empty  MEMBERS 0\n"
           "TOPIC  PARTITION  CURRENT-OFFSET  READ-OFFSET  LOG-END-OFFSET  LAG  UNREAD  MEMBER\n"
           "in     0          100             130          131             31   1       m\n"
           "TOTAL             100             130          131             31   1\n";
    ST_EQ_STR(t, want);
    free(t);
}

static void test_json(void)
{
    lag_view_t v = {"g", "Stable", 1, false, rows, 3};
    char *t = render(&v, true);
    json_error_t e;
    json_t *j = json_loads(t, 0, &e);
    ST_REQUIRE(j != NULL);
    ST_CHECK(strchr(t, '\n') == t + strlen(t) - 1); /* one line */
    ST_EQ_STR(json_string_value(json_object_get(j, "group")), "g");
    ST_EQ_STR(json_string_value(json_object_get(j, "state")), "Stable");
    ST_EQ_INT(json_integer_value(json_object_get(j, "total_lag")), 45);
    ST_EQ_INT(json_integer_value(json_object_get(j, "total_unread")), 45);
    ST_CHECK(json_is_false(json_object_get(j, "caught_up")));
    json_t *p = json_object_get(j, "partitions");
    ST_EQ_INT(json_array_size(p), 3);
    json_t *p1 = json_array_get(p, 1);
    ST_EQ_STR(json_string_value(json_object_get(p1, "topic")), "in");
    ST_EQ_INT(json_integer_value(json_object_get(p1, "partition")), 1);
    ST_CHECK(json_is_null(json_object_get(p1, "current_offset")));
    ST_CHECK(json_is_null(json_object_get(p1, "member")));
    ST_CHECK(json_is_null(json_object_get(p1, "read_offset")));
    ST_EQ_INT(json_integer_value(json_object_get(p1, "log_start_offset")), 5);
    ST_EQ_INT(json_integer_value(json_object_get(p1, "log_end_offset")), 20);
    ST_EQ_INT(json_integer_value(json_object_get(p1, "lag")), 15);
    ST_EQ_STR(json_string_value(json_object_get(json_array_get(p, 0), "member")), "c-1/10.0.0.1");
    json_decref(j);
    free(t);
}

int main(void)
{
    ST_RUN(test_lag);
    ST_RUN(test_read_position);
    ST_RUN(test_table);
    ST_RUN(test_json);
    return st_test_summary();
}
