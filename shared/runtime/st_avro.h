/* st_avro.h - Avro for stint: the schemas of schemas/ loaded once, the Confluent wire format
 * (byte 0 = 0, 4-byte big-endian schema id, Avro binary), schema ids from a Confluent-compatible
 * registry (REST over libcurl) or from the static table schemas/ids.conf (development mode), and
 * writer -> reader schema resolution that fills reader defaults (which avro-c 1.11 does not do).
 *
 * Decoding never hands untrusted bytes to avro-c's reader: a bounds-checked decoder of our own
 * reads the writer's bytes straight into a value of the reader schema, following a resolution plan
 * built once per writer schema id. Encoding uses avro-c's writer on values we built ourselves.
 *
 *   st_avro_registry_t *reg = st_avro_registry_new("schemas", getenv("SCHEMA_REGISTRY_URL"), e, n);
 *   st_avro_codec_t *c = st_avro_codec_new(reg, "Listen", "listens", e, n);
 *   avro_value_t *rec = st_avro_codec_record(c);        // every field at its default
 *   st_avro_set_string(rec, "user_id", "user_000001");
 *   st_avro_codec_encode(c, rec, &buf, &err);            // buf holds one wire-format message
 *   st_avro_codec_decode(c, buf.data, buf.len, &out, &err);
 *
 * Threads: a registry may be shared by threads (its caches are locked); a codec belongs to one
 * thread. Destroy every codec before its registry. */
#ifndef ST_AVRO_H
#define ST_AVRO_H

#include <avro.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_buf.h"
#include "st_err.h"

/* Bytes before the Avro body in the wire format: the magic byte 0 and the 4-byte schema id. */
#define ST_AVRO_HEADER_SIZE 5

/* The default of every schema.registry.url setting: the registry of the local stack
 * (deploy/local/stack: Apicurio's Confluent-compatible API). An empty setting selects the static
 * ids of schemas/ids.conf instead (development fallback). */
#define ST_SCHEMA_REGISTRY_URL_DEFAULT "http://127.0.0.1:18081/apis/ccompat/v7"
#define ST_SCHEMA_REGISTRY_URL_HELP                                                                \
    "Confluent-compatible schema registry, with its API path (empty = static ids of "              \
    "schemas/ids.conf)"

typedef struct st_avro_registry st_avro_registry_t;
typedef struct st_avro_codec st_avro_codec_t;

/* Loads every schemas_dir/\*.avsc (each a record schema; its original text is kept and is what gets
 * registered, because avro_schema_to_json drops "default") and schemas_dir/ids.conf.
 * registry_url NULL or "": development mode, ids come from ids.conf only, which must give an id to
 * every top-level .avsc; lines may also name older versions kept elsewhere (e.g. history/x.avsc)
 * so records written with them stay readable. With a URL (e.g. http://127.0.0.1:8081,
 * user:password@ in the URL for basic auth): ids come from the Confluent REST API; ids.conf is not
 * used. No network traffic happens here. Returns a new registry (free with
 * st_avro_registry_destroy), or NULL with the reason in errstr (bad JSON, a schema avro-c rejects,
 * a bad default, an ids.conf line naming a missing file, a duplicate id or record, ...). */
st_avro_registry_t *st_avro_registry_new(const char *schemas_dir, const char *registry_url,
                                         char *errstr, size_t errstr_size);

/* Frees the registry and its caches. NULL is a no-op. All its codecs must be destroyed first. */
void st_avro_registry_destroy(st_avro_registry_t *reg);

/* HTTP timeouts of the registry client (defaults: connect 2000 ms, whole request 5000 ms). */
void st_avro_registry_set_timeouts(st_avro_registry_t *reg, long connect_timeout_ms,
                                   long request_timeout_ms);

/* How long a registration (st_avro_codec_new with a topic, st_avro_registry_id_for) that fails
 * with a transport error or an HTTP 5xx is tried again, with pauses from 100 ms doubling to 2 s
 * (default 30000 ms; 0 = once). A 409 is tried 4 times in all, about 0.6 s: Apicurio answers 409
 * to one of two processes creating the same subject at once; an incompatible schema stays 409. */
void st_avro_registry_set_register_retry_ms(st_avro_registry_t *reg, long ms);

/* True in development mode (static ids from ids.conf). */
bool st_avro_registry_is_static(const st_avro_registry_t *reg);

/* Number of HTTP requests made so far (to check that caches work). */
long st_avro_registry_http_requests(const st_avro_registry_t *reg);
/* How long a schema id the registry did not find is remembered as unknown before it is asked
 * again (default 30 s: a registry instance behind a load balancer may lag a registration). */
void st_avro_registry_set_not_found_retry_ms(st_avro_registry_t *reg, int ms);

/* The original .avsc text of a loaded record schema, by name ("Listen" or "io.stint.Listen").
 * Borrowed, valid for the registry's lifetime; NULL when no such schema was loaded. */
const char *st_avro_registry_schema_text(const st_avro_registry_t *reg, const char *record_name);

/* The id that values of record_name carry on topic: registry mode registers the schema's original
 * text under subject "<topic>-value" (POST /subjects/<subject>/versions; an identical schema gets
 * its existing id back) and caches the answer; static mode reads ids.conf (topic unused). Returns 0
 * and sets *id_out, or -1 with err set (ST_ERR_CONFIG for an unknown record or an incompatible
 * schema rejected by the registry, ST_ERR_HTTP/ST_ERR_TIMEOUT, retriable, when the registry cannot
 * be reached). */
int st_avro_registry_id_for(st_avro_registry_t *reg, const char *record_name, const char *topic,
                            int32_t *id_out, st_err_t *err);

/* Decodes one wire-format message with its own writer schema (no reader projection) into a JSON
 * object, for tools such as `stint tail`. Rendering as in st_avro_value_to_json. Returns a new
 * reference, or NULL with err set (ST_ERR_INVALID for a short/garbage/unknown-id payload, and
 * ST_ERR_HTTP/ST_ERR_TIMEOUT, retriable, when the registry cannot be reached). */
json_t *st_avro_registry_decode_json(st_avro_registry_t *reg, const void *data, size_t len,
                                     st_err_t *err);

/* A codec for one record type: encodes values of the current schema of record_name ("Listen" or
 * "io.stint.Listen") for topic, and decodes any wire-format message whose writer schema resolves to
 * it. topic may be NULL for a decode-only codec (encode then fails). In registry mode this
 * registers the schema (one HTTP call, cached in the registry). Returns a new codec (free with
 * st_avro_codec_destroy, before the registry), or NULL with the reason in errstr. Used by one
 * thread at a time. */
st_avro_codec_t *st_avro_codec_new(st_avro_registry_t *reg, const char *record_name,
                                   const char *topic, char *errstr, size_t errstr_size);

/* Frees the codec. NULL is a no-op. */
void st_avro_codec_destroy(st_avro_codec_t *codec);

/* The schema id this codec writes (-1 for a decode-only codec). */
int32_t st_avro_codec_schema_id(const st_avro_codec_t *codec);

/* The codec's avro-c schema of its record (borrowed). */
avro_schema_t st_avro_codec_schema(const st_avro_codec_t *codec);

/* The codec's reusable record for encoding, reset so that every field holds its schema default
 * (null for nullable fields, [] for arrays, ...) or a zero value when it has none. Borrowed, owned
 * by the codec; the next call resets it again. Call once per output record, then fill it. */
avro_value_t *st_avro_codec_record(st_avro_codec_t *codec);

/* Encodes value (a record of the codec's schema: the one from st_avro_codec_record, or one from
 * st_avro_codec_decode of the same codec) as one wire-format message. out is emptied first and
 * then holds exactly the message (out->data, out->len; the caller owns out). Returns 0, or -1 with
 * err set (ST_ERR_CONFIG for a decode-only codec, ST_ERR_AVRO for a value avro-c cannot write,
 * e.g. of another schema, ST_ERR_NOMEM). */
int st_avro_codec_encode(st_avro_codec_t *codec, avro_value_t *value, st_buf_t *out, st_err_t *err);

/* Decodes one wire-format message into a value of the codec's (reader) schema: the writer schema
 * is found by the message's id (registry, fetched once and cached, or the static table), the
 * fields are matched by name, reader fields the writer lacks get their reader defaults, enums are
 * matched by symbol, and the standard promotions apply (int -> long/float/double, long ->
 * float/double, float -> double, string <-> bytes, a plain writer type into a reader union).
 * Named types match by unqualified name; aliases are not used. Recursive schemas are rejected.
 * *out is borrowed: owned by the codec and valid until its next decode. Returns 0, or -1 with err
 * set: ST_ERR_INVALID (text says why: too short, bad magic byte, unknown schema id, truncated or
 * malformed body, trailing bytes, a writer schema that cannot be resolved to the reader), or
 * ST_ERR_HTTP/ST_ERR_TIMEOUT (retriable) when the registry could not be asked about a new id. */
int st_avro_codec_decode(st_avro_codec_t *codec, const void *data, size_t len, avro_value_t **out,
                         st_err_t *err);

/* Field helpers on a record value. Setters return 0, or -1 when the record has no such field or
 * the field's type does not fit (then nothing is changed). A setter of T also works on a nullable
 * ["null", T] field (it selects the T branch); the nullable setters take NULL for null. Long
 * setters work on timestamp-millis fields. Strings are copied. */
int st_avro_set_string(avro_value_t *rec, const char *field, const char *s);
int st_avro_set_string_len(avro_value_t *rec, const char *field, const char *s, size_t len);
int st_avro_set_nullable_string(avro_value_t *rec, const char *field, const char *s_or_null);
int st_avro_set_bytes(avro_value_t *rec, const char *field, const void *data, size_t len);
int st_avro_set_nullable_bytes(avro_value_t *rec, const char *field, const void *data_or_null,
                               size_t len);
int st_avro_set_long(avro_value_t *rec, const char *field, int64_t v);
int st_avro_set_nullable_long(avro_value_t *rec, const char *field, const int64_t *v_or_null);
int st_avro_set_int(avro_value_t *rec, const char *field, int32_t v);
int st_avro_set_nullable_int(avro_value_t *rec, const char *field, const int32_t *v_or_null);
int st_avro_set_double(avro_value_t *rec, const char *field, double v);
int st_avro_set_nullable_double(avro_value_t *rec, const char *field, const double *v_or_null);
int st_avro_set_boolean(avro_value_t *rec, const char *field, bool v);
/* Sets a field of a nullable type to null. */
int st_avro_set_null(avro_value_t *rec, const char *field);
/* Sets an enum field by symbol ("CLOSED"); -1 for a symbol the enum lacks. */
int st_avro_set_enum(avro_value_t *rec, const char *field, const char *symbol);
/* Replaces an array field's items. */
int st_avro_set_string_array(avro_value_t *rec, const char *field, const char *const *items,
                             size_t n);
int st_avro_set_double_array(avro_value_t *rec, const char *field, const double *items, size_t n);
int st_avro_set_long_array(avro_value_t *rec, const char *field, const int64_t *items, size_t n);
int st_avro_set_int_array(avro_value_t *rec, const char *field, const int32_t *items, size_t n);

/* Getters: return 0 and fill the outputs, or -1 when the record has no such field or its type does
 * not fit. A getter of T also reads a nullable ["null", T] field, and fails (-1) when it is null;
 * the nullable getters set *is_null instead (the value output is then untouched). Returned strings
 * and bytes are borrowed from the value (valid until it changes), NUL-terminated for strings;
 * len may be NULL. */
int st_avro_get_string(const avro_value_t *rec, const char *field, const char **s, size_t *len);
int st_avro_get_nullable_string(const avro_value_t *rec, const char *field, const char **s,
                                size_t *len, bool *is_null);
int st_avro_get_bytes(const avro_value_t *rec, const char *field, const void **data, size_t *len);
int st_avro_get_nullable_bytes(const avro_value_t *rec, const char *field, const void **data,
                               size_t *len, bool *is_null);
int st_avro_get_long(const avro_value_t *rec, const char *field, int64_t *out);
int st_avro_get_nullable_long(const avro_value_t *rec, const char *field, int64_t *out,
                              bool *is_null);
int st_avro_get_int(const avro_value_t *rec, const char *field, int32_t *out);
int st_avro_get_nullable_int(const avro_value_t *rec, const char *field, int32_t *out,
                             bool *is_null);
int st_avro_get_double(const avro_value_t *rec, const char *field, double *out);
int st_avro_get_nullable_double(const avro_value_t *rec, const char *field, double *out,
                                bool *is_null);
int st_avro_get_boolean(const avro_value_t *rec, const char *field, bool *out);
/* The symbol of an enum field (borrowed from the schema). */
int st_avro_get_enum(const avro_value_t *rec, const char *field, const char **symbol);
/* Number of items of an array field, and one item. */
int st_avro_get_array_size(const avro_value_t *rec, const char *field, size_t *n);
int st_avro_get_string_item(const avro_value_t *rec, const char *field, size_t i, const char **s,
                            size_t *len);
int st_avro_get_double_item(const avro_value_t *rec, const char *field, size_t i, double *out);
int st_avro_get_long_item(const avro_value_t *rec, const char *field, size_t i, int64_t *out);
int st_avro_get_int_item(const avro_value_t *rec, const char *field, size_t i, int32_t *out);

/* Copies into dst every field of dst that src has under the same name with the same type (e.g. a
 * Listen into an EnrichedListen). Returns the number of fields copied, or -1 on an avro-c error. */
int st_avro_copy_common_fields(avro_value_t *dst, const avro_value_t *src);

/* Renders a value as JSON for people and jq: records as objects, unions as their plain branch
 * value or null (not {"string": ...}), enums as their symbol, bytes as a string of code points
 * 0-255 (the Avro JSON convention), strings with invalid UTF-8 repaired with U+FFFD, NaN and
 * infinities as the strings "NaN", "Infinity", "-Infinity". Returns a new reference, or NULL on an
 * avro-c error or out of memory. */
json_t *st_avro_value_to_json(const avro_value_t *value);

#endif
