/* fuzz_avro.c - libFuzzer harness for the Avro wire decoder (Confluent framing: magic byte 0,
 * 4-byte big-endian schema id, Avro body) in static-id mode (schemas/ and schemas/ids.conf, no
 * registry). Input: byte 0 picks the reader record (modulo the eight record types), the rest is one
 * message. st_avro_codec_decode with that reader, and st_avro_registry_decode_json (the writer's
 * own schema). An accepted message must render as JSON and re-encode stably:
 * encode(decode(encode(v))) equals encode(v), and the re-encoded message decodes with its writer
 * schema too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_avro.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const records[] = {
    "Listen",     "EnrichedListen",    "SessionEvent", "UserProfile", "ClusterAssignment",
    "Prediction", "PredictionOutcome", "DeadLetter"};
#define N_RECORDS (sizeof records / sizeof records[0])

static st_avro_registry_t *reg;
static st_avro_codec_t *codecs[N_RECORDS];

static void close_codecs(void)
{
    for (size_t i = 0; i < N_RECORDS; i++)
        st_avro_codec_destroy(codecs[i]);
    st_avro_registry_destroy(reg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[512];
    reg = st_avro_registry_new(STINT_SOURCE_DIR "/schemas", NULL, err, sizeof err);
    if (!reg) {
        fprintf(stderr, "fuzz_avro: registry: %s\n", err);
        abort();
    }
    for (size_t i = 0; i < N_RECORDS; i++) {
        /* With a topic the codec can encode; in static mode the topic is not used. */
        codecs[i] = st_avro_codec_new(reg, records[i], "fuzz", err, sizeof err);
        if (!codecs[i]) {
            fprintf(stderr, "fuzz_avro: codec %s: %s\n", records[i], err);
            abort();
        }
    }
    atexit(close_codecs);
    return 0;
}

static void check_round_trip(st_avro_codec_t *c, avro_value_t *value)
{
    st_buf_t first = ST_BUF_INIT, second = ST_BUF_INIT;
    st_err_t err = {0};
    json_t *j = st_avro_value_to_json(value);
    if (!j)
        abort();
    json_decref(j);
    if (st_avro_codec_encode(c, value, &first, &err) != 0)
        abort();
    avro_value_t *again = NULL;
    if (st_avro_codec_decode(c, first.data, first.len, &again, &err) != 0 ||
        st_avro_codec_encode(c, again, &second, &err) != 0)
        abort();
    if (first.len != second.len || memcmp(first.data, second.data, first.len) != 0)
        abort();
    j = st_avro_registry_decode_json(reg, first.data, first.len, &err);
    if (!j)
        abort();
    json_decref(j);
    st_buf_free(&first);
    st_buf_free(&second);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    st_avro_codec_t *c = codecs[data[0] % N_RECORDS];
    /* A copy of exactly the message's size, so that reads past its end are caught. */
    size_t len = size - 1;
    uint8_t *msg = malloc(len ? len : 1);
    memcpy(msg, data + 1, len);
    st_err_t err = {0};
    avro_value_t *value = NULL;
    if (st_avro_codec_decode(c, msg, len, &value, &err) == 0)
        check_round_trip(c, value);
    else if (err.code != ST_ERR_INVALID || err.text[0] == '\0')
        abort();
    err = (st_err_t){0};
    json_t *j = st_avro_registry_decode_json(reg, msg, len, &err);
    if (!j && (err.code != ST_ERR_INVALID || err.text[0] == '\0'))
        abort();
    json_decref(j);
    free(msg);
    return 0;
}
