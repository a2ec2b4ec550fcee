/* Unit test of the standalone st_out_t (st_out_new) the cores' unit tests collect outputs with:
 * records in order with their bytes, dead letters as JSON records on the dead-letter topic with
 * the code and the original offset, reset between batches. */
#include <jansson.h>

#include "st_pipeline.h"
#include "st_test.h"

static void test_collect(void)
{
    st_out_t *out = st_out_new("in.dlq");
    ST_REQUIRE(out != NULL);
    ST_EQ_INT(st_out_produce(out, "a", "k1", 2, "v\0x", 3), 0);
    st_msg_t m = {.topic = "in", .partition = 2, .offset = 41, .value = "bad", .value_len = 3};
    ST_EQ_INT(st_out_dead_letter(out, &m, "invalid", "not a record"), 0);
    ST_EQ_INT(st_out_count(out), 2);
    st_out_rec_t r = st_out_record(out, 0);
    ST_EQ_STR(r.topic, "a");
    ST_CHECK(r.key_len == 2 && memcmp(r.key, "k1", 2) == 0);
    ST_CHECK(r.value_len == 3 && memcmp(r.value, "v\0x", 3) == 0);
    r = st_out_record(out, 1);
    ST_EQ_STR(r.topic, "in.dlq");
    json_t *j = json_loadb(r.value, r.value_len, 0, NULL);
    ST_REQUIRE(j != NULL);
    ST_EQ_STR(json_string_value(json_object_get(j, "error_code")), "invalid");
    ST_EQ_INT(json_integer_value(json_object_get(j, "source_offset")), 41);
    ST_EQ_STR(json_string_value(json_object_get(j, "original_value_hex")), "626164");
    json_decref(j);
    st_out_reset(out);
    ST_EQ_INT(st_out_count(out), 0);
    st_out_destroy(out);
    /* Without a dead-letter topic a dead letter is only logged. */
    out = st_out_new(NULL);
    ST_EQ_INT(st_out_dead_letter(out, &m, "invalid", "x"), 0);
    ST_EQ_INT(st_out_count(out), 0);
    st_out_destroy(out);
}

int main(void)
{
    ST_RUN(test_collect);
    return st_test_summary();
}
