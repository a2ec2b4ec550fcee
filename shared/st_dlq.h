/* st_dlq.h - the Avro dead-letter encoder every service hands to its pipeline: a DeadLetter
 * record (schemas/dead_letter.avsc) with the source topic/partition/offset, the reason and the
 * original key and value bytes, in the Confluent wire format.
 *
 *   st_dlq_t *dlq = st_dlq_new(registry, "listens.enriched.dlq", errstr, sizeof errstr);
 *   po->dlq_encode = st_dlq_encode;
 *   po->dlq_ctx = dlq;                       // st_dlq_destroy after the pipeline is destroyed
 */
#ifndef ST_DLQ_H
#define ST_DLQ_H

#include <stddef.h>

#include "st_avro.h"
#include "st_buf.h"
#include "st_pipeline.h"

typedef struct st_dlq st_dlq_t;

/* Creates an encoder of DeadLetter records for dlq_topic (a codec of reg: in registry mode this
 * registers the schema under "<dlq_topic>-value"). reg is borrowed and must outlive the encoder.
 * Returns a new encoder (st_dlq_destroy), or NULL with errstr filled. Used by one thread. */
st_dlq_t *st_dlq_new(st_avro_registry_t *reg, const char *dlq_topic, char *errstr,
                     size_t errstr_size);

/* Frees the encoder; NULL is a no-op. */
void st_dlq_destroy(st_dlq_t *dlq);

/* An st_dlq_encode_fn: ctx is the st_dlq_t. Writes into out (emptied first) one wire-format
 * DeadLetter with failed_at_ms = the wall clock now. Returns 0, or -1 when encoding failed. */
int st_dlq_encode(void *ctx, const st_msg_t *msg, const char *code, const char *text,
                  st_buf_t *out);

#endif
