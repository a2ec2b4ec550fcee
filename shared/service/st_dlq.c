/* st_dlq.c - Avro DeadLetter records for the dead-letter topics. */
#include "st_dlq.h"

#include "st_avro.h"
#include "st_log.h"
#include "st_records.h"
#include "st_time.h"

int st_dlq_encode_avro(void *codec_ctx, const st_msg_t *msg, const char *code, const char *text,
                       st_buf_t *out)
{
    st_avro_codec_t *codec = codec_ctx;
    st_err_t err = {0};
    st_rec_dead_letter_t rec = {
        .source_topic = st_str(msg->topic),
        .source_partition = msg->partition,
        .source_offset = msg->offset,
        .error_code = st_str(code),
        .error = st_str(text),
        .original_key = {msg->key, msg->key ? msg->key_len : 0},
        .original_value = {msg->value ? msg->value : "", msg->value ? msg->value_len : 0},
        .failed_at_ms = st_time_wall_ms(),
    };
    if (st_rec_dead_letter_encode(codec, &rec, out, &err) != 0) {
        st_log_error("dlq_encode", "error=\"%s\"", err.text);
        return -1;
    }
    return 0;
}
