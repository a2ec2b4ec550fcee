/* Unit tests of st_dlq_encode_avro: a dead letter decodes back to the source position, the reason,
 * the original key (or null) and the original bytes, including empty and binary values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_avro.h"
#include "st_dlq.h"
#include "st_test.h"
#include "st_time.h"

static st_avro_registry_t *reg;
static st_avro_codec_t *codec;

static void check_round_trip(const st_msg_t *m, const char *code, const char *text)
{
    st_buf_t out = ST_BUF_INIT;
    avro_value_t *v;
    const char *s;
    const void *bytes;
    size_t len;
    int32_t part;
    int64_t off, at_ms;
    bool is_null;
    int64_t before_ms = st_time_wall_ms();
    ST_REQUIRE(st_dlq_encode_avro(codec, m, code, text, &out) == 0);
    ST_REQUIRE(st_avro_codec_decode(codec, out.data, out.len, &v, NULL) == 0);
    ST_REQUIRE(st_avro_get_string(v, "source_topic", &s, NULL) == 0);
    ST_EQ_STR(s, m->topic);
    ST_REQUIRE(st_avro_get_int(v, "source_partition", &part) == 0);
    ST_EQ_INT(part, m->partition);
    ST_REQUIRE(st_avro_get_long(v, "source_offset", &off) == 0);
    ST_EQ_INT(off, m->offset);
    ST_REQUIRE(st_avro_get_string(v, "error_code", &s, NULL) == 0);
    ST_EQ_STR(s, code);
    ST_REQUIRE(st_avro_get_string(v, "error", &s, NULL) == 0);
    ST_EQ_STR(s, text);
    ST_REQUIRE(st_avro_get_nullable_bytes(v, "original_key", &bytes, &len, &is_null) == 0);
    ST_EQ_INT(is_null, m->key == NULL);
    if (m->key) {
        ST_EQ_INT(len, m->key_len);
        ST_CHECK(memcmp(bytes, m->key, len) == 0);
    }
    ST_REQUIRE(st_avro_get_bytes(v, "original_value", &bytes, &len) == 0);
    ST_EQ_INT(len, m->value_len);
    ST_CHECK(len == 0 || memcmp(bytes, m->value, len) == 0);
    ST_REQUIRE(st_avro_get_long(v, "failed_at_ms", &at_ms) == 0);
    ST_CHECK(at_ms >= before_ms);
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
