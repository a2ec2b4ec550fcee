/* st_dlq.h - the Avro DeadLetter encoder services plug into st_pipeline (opts.dlq_encode). */
#ifndef ST_DLQ_H
#define ST_DLQ_H

#include "st_buf.h"
#include "st_pipeline.h"

/* An st_dlq_encode_fn: encodes msg as one Avro DeadLetter in the wire format (source topic,
 * partition and offset, code, text, original key (null when it had none) and value, failed_at_ms =
 * wall clock). codec_ctx is an st_avro_codec_t * of record "DeadLetter" created for the dead-letter
 * topic (borrowed). out is emptied first and then holds the message. Returns 0, or -1 when the
 * value cannot be built or encoded (the reason is logged). */
int st_dlq_encode_avro(void *codec_ctx, const st_msg_t *msg, const char *code, const char *text,
                       st_buf_t *out);

#endif
