/* Unit tests of st_dlq_encode_avro: a dead letter decodes back to the source position, the reason,
 * the original key (or null) and the original bytes, including empty and binary values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_avro.h"
#include "st_dlq.h"
#include "st_records.h"
#include "st_test.h"
#include "st_time.h"

static st_avro_registry_t *reg;
static st_avro_codec_t *codec;

static void check_round_trip(const st_msg_t *m, const char *code, const char *text)
{
    st_buf_t out = ST_BUF_INIT;
    st_rec_dead_letter_t d;
    st_err_t err = {0};
    int64_t before_ms = st_time_wall_ms();
    ST_REQUIRE(st_dlq_encode_avro(codec, m, code, text, &out) == 0);
    ST_REQUIRE(st_rec_dead_letter_decode(codec, out.data, out.len, &d, &err) == 0);
    ST_EQ_STR(d.source_topic.ptr, m->topic);
    ST_EQ_INT(d.source_partition, m->partition);
    ST_EQ_INT(d.source_offset, m->offset);
    ST_EQ_STR(d.error_code.ptr, code);
    ST_EQ_STR(d.error.ptr, text);
    ST_EQ_INT(d.original_key.ptr == NULL, m->key == NULL);
    if (m->key) {
        ST_EQ_INT(d.original_key.len, m->key_len);
        ST_CHECK(memcmp(d.original_key.ptr, m->key, d.original_key.len) == 0);
    }
    ST_EQ_INT(d.original_value.len, m->value_len);
    ST_CHECK(d.original_value.len == 0 ||
             memcmp(d.original_value.ptr, m->value, d.original_value.len) == 0);
    ST_CHECK(d.failed_at_ms >= before_ms);
    st_buf_free(&out);
}

static void test_round_trips(void)
{
    static const char binary[] = {'\0', '\xff', '{', '\xc3', '\x28', '\n'};
    st_msg_t text_msg = {"listens.raw", 2, 12345, -1, "user_000001", 11, "{\"user_id\":", 11};
    st_msg_t no_key = {"listens.raw", 0, 0, -1, NULL, 0, "oops", 4};
    st_msg_t empty = {"listens.raw", 5, 1LL << 40, -1, "k", 1, NULL, 0};
    st_msg_t bin = {"x", 1, 7, -1, binary, sizeof binary, binary, sizeof binary};
    check_round_trip(&text_msg, "not_json", "not_json: '[' or '{' expected near end of file");
    check_round_trip(&no_key, "missing_field", "");
    check_round_trip(&empty, "not_json", "empty message");
    check_round_trip(&bin, "invalid_utf8", "message is not valid UTF-8");
}

int main(void)
{
    char errstr[512], dir[1024];
    const char *src = getenv("STINT_SOURCE_DIR");
    snprintf(dir, sizeof dir, "%s/schemas", src ? src : ".");
    reg = st_avro_registry_new(dir, NULL, errstr, sizeof errstr);
    if (!reg) {
        fprintf(stderr, "schemas: %s\n", errstr);
        return 1;
    }
    codec = st_avro_codec_new(reg, "DeadLetter", "listens.dlq", errstr, sizeof errstr);
    if (!codec) {
        fprintf(stderr, "codec: %s\n", errstr);
        return 1;
    }
    ST_RUN(test_round_trips);
    st_avro_codec_destroy(codec);
    st_avro_registry_destroy(reg);
    return st_test_summary();
}
