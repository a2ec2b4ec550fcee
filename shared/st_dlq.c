/* st_dlq.c - DeadLetter records in Avro for the pipelines' dead-letter topics. */
#include "st_dlq.h"

#include <stdlib.h>

#include "st_log.h"
#include "st_time.h"

struct st_dlq {
    st_avro_codec_t *codec;
};

st_dlq_t *st_dlq_new(st_avro_registry_t *reg, const char *dlq_topic, char *errstr,
                     size_t errstr_size)
{
    st_dlq_t *dlq = calloc(1, sizeof *dlq);
    if (!dlq) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    dlq->codec = st_avro_codec_new(reg, "DeadLetter", dlq_topic, errstr, errstr_size);
    if (!dlq->codec) {
        free(dlq);
        return NULL;
    }
    return dlq;
}

void st_dlq_destroy(st_dlq_t *dlq)
{
    if (!dlq)
        return;
    st_avro_codec_destroy(dlq->codec);
    free(dlq);
}

int st_dlq_encode(void *ctx, const st_msg_t *msg, const char *code, const char *text, st_buf_t *out)
{
    st_dlq_t *dlq = ctx;
    st_err_t err = {0};
    avro_value_t *rec = st_avro_codec_record(dlq->codec);
    if (st_avro_set_string(rec, "source_topic", msg->topic ? msg->topic : "") != 0 ||
        st_avro_set_int(rec, "source_partition", msg->partition) != 0 ||
        st_avro_set_long(rec, "source_offset", msg->offset) != 0 ||
        st_avro_set_string(rec, "error_code", code ? code : "") != 0 ||
        st_avro_set_string(rec, "error", text ? text : "") != 0 ||
        st_avro_set_nullable_bytes(rec, "original_key", msg->key, msg->key_len) != 0 ||
        st_avro_set_bytes(rec, "original_value", msg->value ? msg->value : "", msg->value_len) !=
            0 ||
        st_avro_set_long(rec, "failed_at_ms", st_time_wall_ms()) != 0)
        return -1;
    if (st_avro_codec_encode(dlq->codec, rec, out, &err) != 0) {
        st_log_warn("dlq_encode_failed", "error=\"%s\"", err.text);
        return -1;
    }
    return 0;
}
