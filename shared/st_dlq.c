/* st_dlq.c - Avro DeadLetter records for the dead-letter topics. */
#include "st_dlq.h"

#include "st_avro.h"
#include "st_log.h"
#include "st_time.h"

int st_dlq_encode_avro(void *codec_ctx, const st_msg_t *msg, const char *code, const char *text,
                       st_buf_t *out)
{
    st_avro_codec_t *codec = codec_ctx;
    st_err_t err = {0};
    avro_value_t *rec = st_avro_codec_record(codec);
    if (st_avro_set_string(rec, "source_topic", msg->topic) != 0 ||
        st_avro_set_int(rec, "source_partition", msg->partition) != 0 ||
        st_avro_set_long(rec, "source_offset", msg->offset) != 0 ||
        st_avro_set_string(rec, "error_code", code) != 0 ||
        st_avro_set_string(rec, "error", text) != 0 ||
        st_avro_set_nullable_bytes(rec, "original_key", msg->key, msg->key ? msg->key_len : 0) !=
            0 ||
        st_avro_set_bytes(rec, "original_value", msg->value, msg->value_len) != 0 ||
        st_avro_set_long(rec, "failed_at_ms", st_time_wall_ms()) != 0) {
        st_log_error("dlq_encode", "error=\"DeadLetter value does not match the schema\"");
        return -1;
    }
    if (st_avro_codec_encode(codec, rec, out, &err) != 0) {
        st_log_error("dlq_encode", "error=\"%s\"", err.text);
        return -1;
    }
    return 0;
}
