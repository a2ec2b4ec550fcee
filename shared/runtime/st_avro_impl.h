/* st_avro_impl.h - private to the st_avro*.c files (not for use elsewhere): our schema nodes, the
 * resolution plans, the read cursor and the functions the pieces share. The API is st_avro.h. */
#ifndef ST_AVRO_IMPL_H
#define ST_AVRO_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_avro.h"

#define MAX_SCHEMA_DEPTH 32

/* Our own view of a schema, parsed from its JSON text: avro-c keeps no field defaults. */
typedef enum {
    K_NULL,
    K_BOOLEAN,
    K_INT,
    K_LONG,
    K_FLOAT,
    K_DOUBLE,
    K_BYTES,
    K_STRING,
    K_FIXED,
    K_ENUM,
    K_ARRAY,
    K_MAP,
    K_RECORD,
    K_UNION
} kind_t;

typedef struct node node_t;

typedef struct {
    char *name;
    node_t *type;
    json_t *dflt; /* borrowed from the schema's JSON; NULL when the field has no default */
} field_t;

struct node {
    kind_t kind;
    char *fullname;   /* named types only */
    const char *name; /* unqualified, points into fullname */
    field_t *fields;
    size_t n_fields;
    char **symbols;
    size_t n_symbols;
    int enum_default; /* index of the enum's "default" symbol, or -1 */
    size_t fixed_size;
    node_t *items; /* array items, map values */
    node_t **branches;
    size_t n_branches;
    size_t min_size; /* fewest bytes a value of this type takes */
    bool defining;   /* a record whose fields are being parsed */
};

typedef struct {
    json_t *json; /* owned */
    node_t **nodes;
    size_t n_nodes, cap_nodes;
    node_t *root;
} sch_t;

/* A schema of the schemas dir (or, in static mode, one that ids.conf names). */
typedef struct {
    char *name; /* unqualified record name */
    char *fullname;
    char *path; /* relative to the schemas directory */
    char *text; /* the original .avsc text */
    avro_schema_t avro;
    sch_t *sch;
    int32_t static_id; /* -1 when ids.conf gives none */
    bool top_level;
} local_t;

/* A resolution plan: how to read a writer type into a reader type. */
typedef enum {
    OP_NULL,
    OP_BOOLEAN,
    OP_INT,
    OP_LONG,
    OP_FLOAT,
    OP_DOUBLE,
    OP_BYTES,
    OP_STRING,
    OP_FIXED,
    OP_INT_TO_LONG,
    OP_INT_TO_FLOAT,
    OP_INT_TO_DOUBLE,
    OP_LONG_TO_FLOAT,
    OP_LONG_TO_DOUBLE,
    OP_FLOAT_TO_DOUBLE,
    OP_STRING_TO_BYTES,
    OP_BYTES_TO_STRING,
    OP_ENUM,
    OP_ARRAY,
    OP_MAP,
    OP_RECORD,
    OP_WRITER_UNION,
    OP_TO_BRANCH,
    OP_FAIL
} op_t;

typedef struct plan plan_t;

typedef struct {
    int reader_index;   /* -1: skip */
    plan_t *plan;       /* when reader_index >= 0 */
    const node_t *skip; /* writer type, when skipped */
} plan_field_t;

typedef struct {
    int reader_index;
    const field_t *field;
} plan_default_t;

struct plan {
    op_t op;
    const node_t *w, *r;
    plan_t *items;
    int *enum_map;
    plan_field_t *wfields;
    size_t n_wfields;
    plan_default_t *defaults;
    size_t n_defaults;
    plan_t **branches;
    size_t n_branches;
    int reader_branch;
    plan_t *inner;
    char *error;
};

/* The plans reading one writer schema id into a codec's reader schema. */
typedef struct {
    int32_t id;
    plan_t *root;
    plan_t **plans; /* every plan, for freeing */
    size_t n_plans, cap_plans;
} prepared_t;

/* A read position in a writer's bytes; the first failure's text goes to errbuf. */
typedef struct {
    const uint8_t *p, *end;
    st_buf_t *scratch;
    char *errbuf;
    size_t errsize;
    bool failed;
    int64_t zero_items; /* items of zero-size types read so far (bounded: they cost no bytes) */
} cursor_t;

/* st_avro_schema.c: allocation helpers, schemas, plans. */

/* calloc that never asks for 0 bytes. */
void *st_avro__calloc(size_t n, size_t size);
/* Grows *arr (elements of elem bytes) to hold at least need. 0 or -1 (ENOMEM, unchanged). */
int st_avro__grow(void **arr, size_t *cap, size_t need, size_t elem);
/* Parses schema text into our nodes. Returns a new sch_t or NULL with errstr filled. */
sch_t *st_avro__sch_parse(const char *text, size_t len, char *errstr, size_t errstr_size);
/* Frees s and its nodes. NULL is a no-op. */
void st_avro__sch_free(sch_t *s);
/* Whether the JSON j is a valid default of type n. */
bool st_avro__default_ok(const node_t *n, const json_t *j);
/* The plan reading writer type w as reader type r, kept in pp; a mismatch gives an OP_FAIL plan
 * (failing only when a value takes that path). NULL when out of memory. */
plan_t *st_avro__plan_build(prepared_t *pp, const node_t *w, const node_t *r, int depth);
/* Frees pp and all its plans. NULL is a no-op. */
void st_avro__prepared_free(prepared_t *pp);

/* st_avro_read.c: reading writer bytes, bounds-checked. */

/* Records the first failure of c (later ones are dropped). Returns -1. */
int st_avro__cur_fail(cursor_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Puts a reset value into its initial state: record fields at their defaults, unions on their
 * first branch. */
int st_avro__init_value(const node_t *n, avro_value_t *v, st_buf_t *scratch, int depth);
/* Decodes one writer value following plan p into the reader value dst. 0, or -1 with c failed. */
int st_avro__decode_plan(cursor_t *c, const plan_t *p, avro_value_t *dst);
/* Decodes writer bytes of type n straight to JSON (no reader schema). NULL on failure. */
json_t *st_avro__decode_json(cursor_t *c, const node_t *n, int depth);

/* st_avro_json.c: JSON strings and numbers as stint renders them. */

/* Bytes as the Avro JSON form: a string of code points 0-255. */
json_t *st_avro__json_latin1(const uint8_t *b, size_t len);
/* A string of len bytes, each byte that starts no valid UTF-8 sequence replaced by U+FFFD. */
json_t *st_avro__json_utf8(const char *s, size_t len);
/* A number; NaN and the infinities as the strings "NaN", "Infinity", "-Infinity". */
json_t *st_avro__json_double(double d);

/* st_avro_registry.c: what the codec asks of the registry. */

/* The writer schema of id, or NULL with err set. Thread-safe. The result lives as long as reg. */
const sch_t *st_avro__registry_writer(st_avro_registry_t *reg, int32_t id, st_err_t *err);
/* The top-level local schema of a record (short or full name), or NULL. */
local_t *st_avro__local_find(const st_avro_registry_t *reg, const char *record_name);
/* Checks the 5-byte header of the wire format; sets *id. 0, or -1 with err set. */
int st_avro__wire_header(const void *data, size_t len, int32_t *id, st_err_t *err);

#endif
