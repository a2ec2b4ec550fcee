/* st_avro.c - schemas, the Confluent wire format, the schema registry client (REST over libcurl)
 * with the static-id fallback, and a bounds-checked writer -> reader decoder that fills defaults.
 */
#include "st_avro.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "st_log.h"
#include "st_time.h"

#define MAX_SCHEMA_DEPTH    32
#define MAX_ZERO_SIZE_ITEMS (1 << 20) /* items of a block whose type takes no bytes (null, {}) */
#define MAX_RESPONSE_BYTES  (16u << 20)
#define MAX_NEGATIVE_IDS    1024
#define SR_CONTENT_TYPE     "application/vnd.schemaregistry.v1+json"
#define DEFAULT_CONNECT_MS  2000L
/* How a registration is tried again (see registry_register). */
#define REGISTER_TRIES_409        4
#define DEFAULT_REGISTER_RETRY_MS 30000
#define DEFAULT_REQUEST_MS        5000L

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

static const char *const kind_names[] = {"null",   "boolean", "int",    "long",  "float",
                                         "double", "bytes",   "string", "fixed", "enum",
                                         "array",  "map",     "record", "union"};

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

typedef struct {
    int32_t id;
    sch_t *sch; /* NULL: known not to exist (reason in why) */
    bool owned; /* sch belongs to this entry (else to a local) */
    char *why;
    int64_t retry_at_ms; /* sch NULL: ask the registry again from then on (0 = never) */
} ident_t;

typedef struct {
    char *subject;
    local_t *local;
    int32_t id;
} subject_t;

struct st_avro_registry {
    char *url; /* NULL in static mode */
    long connect_ms, request_ms;
    long register_retry_ms; /* how long a failing registration is tried again */
    long http_requests;
    CURL *curl;
    pthread_mutex_t lock;
    local_t *locals;
    size_t n_locals;
    ident_t *ids;
    size_t n_ids, cap_ids, n_negative;
    int not_found_retry_ms;
    subject_t *subjects;
    size_t n_subjects, cap_subjects;
};

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

typedef struct {
    int32_t id;
    plan_t *root;
    plan_t **plans; /* every plan, for freeing */
    size_t n_plans, cap_plans;
} prepared_t;

struct st_avro_codec {
    st_avro_registry_t *reg;
    local_t *local;
    int32_t id;
    avro_value_iface_t *iface;
    avro_value_t enc_value, dec_value;
    avro_writer_t writer;
    size_t size_hint;
    st_buf_t scratch;
    prepared_t **prepared;
    size_t n_prepared, cap_prepared;
    prepared_t *last;
};

typedef struct {
    const uint8_t *p, *end;
    st_buf_t *scratch;
    char *errbuf;
    size_t errsize;
    bool failed;
} cursor_t;

static void *xcalloc(size_t n, size_t size)
{
    return calloc(n ? n : 1, size ? size : 1);
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 8;
    while (c < need)
        c *= 2;
    void *p = realloc(*arr, c * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = c;
    return 0;
}

static const char *last_dot(const char *s)
{
    const char *d = strrchr(s, '.');
    return d ? d + 1 : s;
}

/* Schema parsing */

static void sch_free(sch_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_nodes; i++) {
        node_t *n = s->nodes[i];
        for (size_t f = 0; f < n->n_fields; f++)
            free(n->fields[f].name);
        free(n->fields);
        for (size_t y = 0; y < n->n_symbols; y++)
            free(n->symbols[y]);
        free(n->symbols);
        free(n->branches);
        free(n->fullname);
        free(n);
    }
    free(s->nodes);
    json_decref(s->json);
    free(s);
}

static node_t *node_new(sch_t *s, kind_t kind)
{
    if (grow((void **)&s->nodes, &s->cap_nodes, s->n_nodes + 1, sizeof *s->nodes) != 0)
        return NULL;
    node_t *n = xcalloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = kind;
    n->enum_default = -1;
    s->nodes[s->n_nodes++] = n;
    return n;
}

static int primitive_kind(const char *t, kind_t *out)
{
    static const kind_t prims[] = {K_NULL,  K_BOOLEAN, K_INT,   K_LONG,
                                   K_FLOAT, K_DOUBLE,  K_BYTES, K_STRING};
    for (size_t i = 0; i < sizeof prims / sizeof prims[0]; i++) {
        if (strcmp(t, kind_names[prims[i]]) == 0) {
            *out = prims[i];
            return 0;
        }
    }
    return -1;
}

static node_t *find_named(const sch_t *s, const char *fullname)
{
    for (size_t i = 0; i < s->n_nodes; i++) {
        if (s->nodes[i]->fullname && strcmp(s->nodes[i]->fullname, fullname) == 0)
            return s->nodes[i];
    }
    return NULL;
}

static bool valid_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_';
        if (!alpha && !(p != s && *p >= '0' && *p <= '9'))
            return false;
    }
    return true;
}

static bool default_ok(const node_t *n, const json_t *j);

static bool record_default_ok(const node_t *n, const json_t *j)
{
    if (!json_is_object(j))
        return false;
    for (size_t i = 0; i < n->n_fields; i++) {
        const json_t *v = json_object_get(j, n->fields[i].name);
        if (v ? !default_ok(n->fields[i].type, v) : !n->fields[i].dflt)
            return false;
    }
    return true;
}

static bool default_ok(const node_t *n, const json_t *j)
{
    size_t i;
    const char *key;
    json_t *v;
    switch (n->kind) {
    case K_NULL:
        return json_is_null(j);
    case K_BOOLEAN:
        return json_is_boolean(j);
    case K_INT:
        return json_is_integer(j) && json_integer_value(j) >= INT32_MIN &&
               json_integer_value(j) <= INT32_MAX;
    case K_LONG:
        return json_is_integer(j);
    case K_FLOAT:
    case K_DOUBLE:
        return json_is_number(j);
    case K_BYTES:
    case K_STRING:
    case K_FIXED:
        return json_is_string(j);
    case K_ENUM:
        if (!json_is_string(j))
            return false;
        for (i = 0; i < n->n_symbols; i++) {
            if (strcmp(n->symbols[i], json_string_value(j)) == 0)
                return true;
        }
        return false;
    case K_ARRAY:
        if (!json_is_array(j))
            return false;
        json_array_foreach(j, i, v)
        {
            if (!default_ok(n->items, v))
                return false;
        }
        return true;
    case K_MAP:
        if (!json_is_object(j))
            return false;
        json_object_foreach((json_t *)j, key, v)
        {
            if (!default_ok(n->items, v))
                return false;
        }
        return true;
    case K_RECORD:
        return record_default_ok(n, j);
    case K_UNION:
        for (i = 0; i < n->n_branches; i++) {
            if (default_ok(n->branches[i], j))
                return true;
        }
        return false;
    }
    return false;
}

typedef struct {
    char *err;
    size_t errsize;
} perr_t;

static node_t *parse_node(sch_t *s, json_t *j, const char *ns, int depth, perr_t *pe);

static int parse_named(sch_t *s, node_t *n, json_t *j, const char *ns, char *ns_out, size_t ns_size,
                       perr_t *pe)
{
    const char *name = json_string_value(json_object_get(j, "name"));
    const char *nsj = json_string_value(json_object_get(j, "namespace"));
    char full[512];
    if (!name)
        return st_errstr(pe->err, pe->errsize, "a %s needs a \"name\"", kind_names[n->kind]);
    if (strchr(name, '.')) {
        snprintf(full, sizeof full, "%s", name);
    } else {
        const char *space = nsj ? nsj : ns;
        if (space && *space)
            snprintf(full, sizeof full, "%s.%s", space, name);
        else
            snprintf(full, sizeof full, "%s", name);
    }
    if (!valid_name(last_dot(full)))
        return st_errstr(pe->err, pe->errsize, "invalid name \"%s\"", full);
    if (find_named(s, full))
        return st_errstr(pe->err, pe->errsize, "type \"%s\" defined twice", full);
    n->fullname = strdup(full);
    if (!n->fullname)
        return st_errstr(pe->err, pe->errsize, "out of memory");
    n->name = last_dot(n->fullname);
    size_t ns_len = (size_t)(n->name - n->fullname);
    snprintf(ns_out, ns_size, "%.*s", (int)(ns_len ? ns_len - 1 : 0), n->fullname);
    return 0;
}

static int parse_record(sch_t *s, node_t *n, json_t *j, const char *ns, int depth, perr_t *pe)
{
    json_t *fields = json_object_get(j, "fields");
    if (!json_is_array(fields))
        return st_errstr(pe->err, pe->errsize, "record %s needs a \"fields\" array", n->fullname);
    n->fields = xcalloc(json_array_size(fields), sizeof *n->fields);
    if (!n->fields)
        return st_errstr(pe->err, pe->errsize, "out of memory");
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        const char *fname = json_string_value(json_object_get(f, "name"));
        if (!valid_name(fname))
            return st_errstr(pe->err, pe->errsize, "record %s: field %zu has no valid name",
                             n->fullname, i);
        for (size_t k = 0; k < n->n_fields; k++) {
            if (strcmp(n->fields[k].name, fname) == 0)
                return st_errstr(pe->err, pe->errsize, "record %s: field %s defined twice",
                                 n->fullname, fname);
        }
        field_t *fld = &n->fields[n->n_fields];
        fld->name = strdup(fname);
        if (!fld->name)
            return st_errstr(pe->err, pe->errsize, "out of memory");
        n->n_fields++;
        fld->type = parse_node(s, json_object_get(f, "type"), ns, depth + 1, pe);
        if (!fld->type)
            return -1;
        fld->dflt = json_object_get(f, "default");
        if (fld->dflt && !default_ok(fld->type, fld->dflt))
            return st_errstr(pe->err, pe->errsize,
                             "record %s: the default of field %s does not match its type",
                             n->fullname, fname);
    }
    return 0;
}

static int parse_enum(node_t *n, json_t *j, perr_t *pe)
{
    json_t *syms = json_object_get(j, "symbols");
    if (!json_is_array(syms) || json_array_size(syms) == 0)
        return st_errstr(pe->err, pe->errsize, "enum %s needs \"symbols\"", n->fullname);
    n->symbols = xcalloc(json_array_size(syms), sizeof *n->symbols);
    if (!n->symbols)
        return st_errstr(pe->err, pe->errsize, "out of memory");
    size_t i;
    json_t *v;
    json_array_foreach(syms, i, v)
    {
        if (!valid_name(json_string_value(v)))
            return st_errstr(pe->err, pe->errsize, "enum %s: bad symbol %zu", n->fullname, i);
        n->symbols[i] = strdup(json_string_value(v));
        if (!n->symbols[i])
            return st_errstr(pe->err, pe->errsize, "out of memory");
        n->n_symbols = i + 1;
    }
    const char *d = json_string_value(json_object_get(j, "default"));
    for (i = 0; d && i < n->n_symbols; i++) {
        if (strcmp(n->symbols[i], d) == 0)
            n->enum_default = (int)i;
    }
    if (d && n->enum_default < 0)
        return st_errstr(pe->err, pe->errsize, "enum %s: default %s is not a symbol", n->fullname,
                         d);
    return 0;
}

static node_t *parse_complex(sch_t *s, json_t *j, const char *ns, int depth, perr_t *pe)
{
    json_t *type = json_object_get(j, "type");
    if (!type) {
        st_errstr(pe->err, pe->errsize, "an object schema needs a \"type\"");
        return NULL;
    }
    if (!json_is_string(type))
        return parse_node(s, type, ns, depth + 1, pe);
    const char *t = json_string_value(type);
    kind_t kind;
    if (primitive_kind(t, &kind) == 0)
        return node_new(s, kind);
    char inner_ns[512];
    node_t *n;
    if (strcmp(t, "record") == 0 || strcmp(t, "error") == 0) {
        if (!(n = node_new(s, K_RECORD)) ||
            parse_named(s, n, j, ns, inner_ns, sizeof inner_ns, pe) != 0)
            return NULL;
        n->defining = true;
        if (parse_record(s, n, j, inner_ns, depth, pe) != 0)
            return NULL;
        n->defining = false;
        return n;
    }
    if (strcmp(t, "enum") == 0) {
        if (!(n = node_new(s, K_ENUM)) ||
            parse_named(s, n, j, ns, inner_ns, sizeof inner_ns, pe) != 0 ||
            parse_enum(n, j, pe) != 0)
            return NULL;
        return n;
    }
    if (strcmp(t, "fixed") == 0) {
        json_t *size = json_object_get(j, "size");
        if (!(n = node_new(s, K_FIXED)) ||
            parse_named(s, n, j, ns, inner_ns, sizeof inner_ns, pe) != 0)
            return NULL;
        if (!json_is_integer(size) || json_integer_value(size) < 0) {
            st_errstr(pe->err, pe->errsize, "fixed %s needs a \"size\"", n->fullname);
            return NULL;
        }
        n->fixed_size = (size_t)json_integer_value(size);
        return n;
    }
    if (strcmp(t, "array") == 0 || strcmp(t, "map") == 0) {
        bool array = t[0] == 'a';
        json_t *items = json_object_get(j, array ? "items" : "values");
        if (!items) {
            st_errstr(pe->err, pe->errsize, "%s needs \"%s\"", t, array ? "items" : "values");
            return NULL;
        }
        if (!(n = node_new(s, array ? K_ARRAY : K_MAP)))
            return NULL;
        n->items = parse_node(s, items, ns, depth + 1, pe);
        return n->items ? n : NULL;
    }
    return parse_node(s, type, ns, depth + 1, pe);
}

static node_t *parse_node(sch_t *s, json_t *j, const char *ns, int depth, perr_t *pe)
{
    if (depth > MAX_SCHEMA_DEPTH) {
        st_errstr(pe->err, pe->errsize, "schema nested deeper than %d", MAX_SCHEMA_DEPTH);
        return NULL;
    }
    if (json_is_string(j)) {
        const char *t = json_string_value(j);
        kind_t kind;
        if (primitive_kind(t, &kind) == 0)
            return node_new(s, kind);
        char full[512];
        node_t *n = NULL;
        if (!strchr(t, '.') && ns && *ns) {
            snprintf(full, sizeof full, "%s.%s", ns, t);
            n = find_named(s, full);
        }
        if (!n)
            n = find_named(s, t);
        if (!n)
            st_errstr(pe->err, pe->errsize, "unknown type \"%s\"", t);
        if (n && n->defining) {
            st_errstr(pe->err, pe->errsize, "recursive type %s is not supported", n->fullname);
            return NULL;
        }
        return n;
    }
    if (json_is_array(j)) {
        node_t *n = node_new(s, K_UNION);
        if (!n)
            return NULL;
        if (json_array_size(j) == 0) {
            st_errstr(pe->err, pe->errsize, "a union needs at least one branch");
            return NULL;
        }
        n->branches = xcalloc(json_array_size(j), sizeof *n->branches);
        if (!n->branches)
            return NULL;
        size_t i;
        json_t *b;
        json_array_foreach(j, i, b)
        {
            node_t *bn = parse_node(s, b, ns, depth + 1, pe);
            if (!bn)
                return NULL;
            if (bn->kind == K_UNION) {
                st_errstr(pe->err, pe->errsize, "a union cannot hold a union");
                return NULL;
            }
            n->branches[n->n_branches++] = bn;
        }
        return n;
    }
    if (json_is_object(j))
        return parse_complex(s, j, ns, depth, pe);
    st_errstr(pe->err, pe->errsize, "a schema must be a string, an array or an object");
    return NULL;
}

static size_t min_size(const node_t *n, int depth)
{
    size_t total = 0;
    if (depth > MAX_SCHEMA_DEPTH)
        return 0;
    switch (n->kind) {
    case K_NULL:
        return 0;
    case K_FLOAT:
        return 4;
    case K_DOUBLE:
        return 8;
    case K_FIXED:
        return n->fixed_size;
    case K_RECORD:
        for (size_t i = 0; i < n->n_fields; i++)
            total += min_size(n->fields[i].type, depth + 1);
        return total;
    default:
        return 1;
    }
}

/* Parses schema text into our nodes. Returns a new sch_t or NULL with errstr filled. */
static sch_t *sch_parse(const char *text, size_t len, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    sch_t *s = xcalloc(1, sizeof *s);
    if (!s) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->json = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    if (!s->json) {
        st_errstr(errstr, errstr_size, "bad JSON at line %d: %s", jerr.line, jerr.text);
        sch_free(s);
        return NULL;
    }
    perr_t pe = {errstr, errstr_size};
    s->root = parse_node(s, s->json, "", 0, &pe);
    if (!s->root) {
        sch_free(s);
        return NULL;
    }
    for (size_t i = 0; i < s->n_nodes; i++)
        s->nodes[i]->min_size = min_size(s->nodes[i], 0);
    return s;
}

/* Resolution plans */

static plan_t *plan_new(prepared_t *pp, op_t op, const node_t *w, const node_t *r)
{
    if (grow((void **)&pp->plans, &pp->cap_plans, pp->n_plans + 1, sizeof *pp->plans) != 0)
        return NULL;
    plan_t *p = xcalloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->op = op;
    p->w = w;
    p->r = r;
    pp->plans[pp->n_plans++] = p;
    return p;
}

static plan_t *plan_fail(prepared_t *pp, const node_t *w, const node_t *r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static plan_t *plan_fail(prepared_t *pp, const node_t *w, const node_t *r, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    plan_t *p = plan_new(pp, OP_FAIL, w, r);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    p->error = strdup(buf);
    return p->error ? p : NULL;
}

static const char *node_desc(const node_t *n)
{
    return n->fullname ? n->fullname : kind_names[n->kind];
}

static bool names_match(const node_t *w, const node_t *r)
{
    return strcmp(w->name, r->name) == 0;
}

/* The op reading writer kind wk into reader kind rk, or OP_FAIL. Named and composite kinds give
 * their own op when equal. */
static op_t primitive_op(kind_t wk, kind_t rk)
{
    if (wk == rk) {
        static const op_t same[] = {OP_NULL,   OP_BOOLEAN, OP_INT,    OP_LONG,        OP_FLOAT,
                                    OP_DOUBLE, OP_BYTES,   OP_STRING, OP_FIXED,       OP_ENUM,
                                    OP_ARRAY,  OP_MAP,     OP_RECORD, OP_WRITER_UNION};
        return same[wk];
    }
    if (wk == K_INT && rk == K_LONG)
        return OP_INT_TO_LONG;
    if (wk == K_INT && rk == K_FLOAT)
        return OP_INT_TO_FLOAT;
    if (wk == K_INT && rk == K_DOUBLE)
        return OP_INT_TO_DOUBLE;
    if (wk == K_LONG && rk == K_FLOAT)
        return OP_LONG_TO_FLOAT;
    if (wk == K_LONG && rk == K_DOUBLE)
        return OP_LONG_TO_DOUBLE;
    if (wk == K_FLOAT && rk == K_DOUBLE)
        return OP_FLOAT_TO_DOUBLE;
    if (wk == K_STRING && rk == K_BYTES)
        return OP_STRING_TO_BYTES;
    if (wk == K_BYTES && rk == K_STRING)
        return OP_BYTES_TO_STRING;
    return OP_FAIL;
}

/* Whether writer type w can be read as reader type r without going through a union; exact: no
 * promotion either. */
static bool branch_fits(const node_t *w, const node_t *r, bool exact)
{
    if (w->kind == r->kind) {
        if (w->kind == K_RECORD || w->kind == K_ENUM || w->kind == K_FIXED)
            return names_match(w, r);
        return true;
    }
    return !exact && r->kind != K_UNION && primitive_op(w->kind, r->kind) != OP_FAIL;
}

static plan_t *plan_build(prepared_t *pp, const node_t *w, const node_t *r, int depth);

static plan_t *plan_record(prepared_t *pp, const node_t *w, const node_t *r, int depth)
{
    plan_t *p = plan_new(pp, OP_RECORD, w, r);
    if (!p)
        return NULL;
    p->wfields = xcalloc(w->n_fields, sizeof *p->wfields);
    p->defaults = xcalloc(r->n_fields, sizeof *p->defaults);
    bool *seen = xcalloc(r->n_fields, sizeof *seen);
    if (!p->wfields || !p->defaults || !seen) {
        free(seen);
        return NULL;
    }
    for (size_t i = 0; i < w->n_fields; i++) {
        plan_field_t *pf = &p->wfields[p->n_wfields++];
        pf->reader_index = -1;
        pf->skip = w->fields[i].type;
        for (size_t k = 0; k < r->n_fields; k++) {
            if (strcmp(w->fields[i].name, r->fields[k].name) == 0) {
                pf->reader_index = (int)k;
                seen[k] = true;
                pf->plan = plan_build(pp, w->fields[i].type, r->fields[k].type, depth + 1);
                if (!pf->plan) {
                    free(seen);
                    return NULL;
                }
                break;
            }
        }
    }
    for (size_t k = 0; k < r->n_fields; k++) {
        if (seen[k])
            continue;
        if (!r->fields[k].dflt) {
            free(seen);
            return plan_fail(
                pp, w, r, "reader field %s.%s is missing in the writer schema and has no default",
                r->fullname, r->fields[k].name);
        }
        p->defaults[p->n_defaults].reader_index = (int)k;
        p->defaults[p->n_defaults].field = &r->fields[k];
        p->n_defaults++;
    }
    free(seen);
    return p;
}

static plan_t *plan_build(prepared_t *pp, const node_t *w, const node_t *r, int depth)
{
    if (depth > MAX_SCHEMA_DEPTH)
        return plan_fail(pp, w, r, "schema %s -> %s nested too deep (recursive?)", node_desc(w),
                         node_desc(r));
    if (w->kind == K_UNION) {
        plan_t *p = plan_new(pp, OP_WRITER_UNION, w, r);
        if (!p || !(p->branches = xcalloc(w->n_branches, sizeof *p->branches)))
            return NULL;
        for (size_t i = 0; i < w->n_branches; i++) {
            if (!(p->branches[i] = plan_build(pp, w->branches[i], r, depth + 1)))
                return NULL;
            p->n_branches++;
        }
        return p;
    }
    if (r->kind == K_UNION) {
        int pick = -1;
        for (int pass = 0; pass < 2 && pick < 0; pass++) {
            for (size_t i = 0; i < r->n_branches && pick < 0; i++) {
                if (branch_fits(w, r->branches[i], pass == 0))
                    pick = (int)i;
            }
        }
        if (pick < 0)
            return plan_fail(pp, w, r, "writer type %s fits no branch of the reader union",
                             node_desc(w));
        plan_t *p = plan_new(pp, OP_TO_BRANCH, w, r);
        if (!p)
            return NULL;
        p->reader_branch = pick;
        p->inner = plan_build(pp, w, r->branches[pick], depth + 1);
        return p->inner ? p : NULL;
    }
    op_t op = primitive_op(w->kind, r->kind);
    if (op == OP_FAIL)
        return plan_fail(pp, w, r, "writer type %s cannot be read as %s", node_desc(w),
                         node_desc(r));
    if ((w->kind == K_RECORD || w->kind == K_ENUM || w->kind == K_FIXED) && !names_match(w, r))
        return plan_fail(pp, w, r, "writer type %s does not match reader type %s", w->fullname,
                         r->fullname);
    if (op == OP_FIXED && w->fixed_size != r->fixed_size)
        return plan_fail(pp, w, r, "fixed %s: writer and reader sizes differ", w->fullname);
    if (op == OP_RECORD)
        return plan_record(pp, w, r, depth);
    plan_t *p = plan_new(pp, op, w, r);
    if (!p)
        return NULL;
    if (op == OP_ENUM) {
        if (!(p->enum_map = xcalloc(w->n_symbols, sizeof *p->enum_map)))
            return NULL;
        for (size_t i = 0; i < w->n_symbols; i++) {
            p->enum_map[i] = -1;
            for (size_t k = 0; k < r->n_symbols; k++) {
                if (strcmp(w->symbols[i], r->symbols[k]) == 0)
                    p->enum_map[i] = (int)k;
            }
        }
    } else if (op == OP_ARRAY || op == OP_MAP) {
        if (!(p->items = plan_build(pp, w->items, r->items, depth + 1)))
            return NULL;
    }
    return p;
}

static void prepared_free(prepared_t *pp)
{
    if (!pp)
        return;
    for (size_t i = 0; i < pp->n_plans; i++) {
        plan_t *p = pp->plans[i];
        free(p->enum_map);
        free(p->wfields);
        free(p->defaults);
        free(p->branches);
        free(p->error);
        free(p);
    }
    free(pp->plans);
    free(pp);
}

/* Binary reading, bounds-checked */

static int cur_fail(cursor_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int cur_fail(cursor_t *c, const char *fmt, ...)
{
    if (!c->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->errbuf, c->errsize, fmt, ap);
        va_end(ap);
        c->failed = true;
    }
    return -1;
}

static int rd_long(cursor_t *c, int64_t *out)
{
    uint64_t v = 0;
    *out = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (c->p >= c->end)
            return cur_fail(c, "truncated body: a number runs past the end");
        uint8_t b = *c->p++;
        if (shift == 63 && (b & 0x7e))
            return cur_fail(c, "malformed body: a number longer than 64 bits");
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    return cur_fail(c, "malformed body: a number longer than 10 bytes");
}

static int rd_int(cursor_t *c, int32_t *out)
{
    int64_t v;
    *out = 0;
    if (rd_long(c, &v) != 0)
        return -1;
    if (v < INT32_MIN || v > INT32_MAX)
        return cur_fail(c, "malformed body: int out of range (%lld)", (long long)v);
    *out = (int32_t)v;
    return 0;
}

static int rd_raw(cursor_t *c, size_t n, const uint8_t **out)
{
    *out = c->p;
    if ((size_t)(c->end - c->p) < n)
        return cur_fail(c, "truncated body: %zu bytes needed, %zu left", n,
                        (size_t)(c->end - c->p));
    *out = c->p;
    c->p += n;
    return 0;
}

static int rd_len_bytes(cursor_t *c, const uint8_t **out, size_t *len)
{
    int64_t n;
    if (rd_long(c, &n) != 0)
        return -1;
    if (n < 0)
        return cur_fail(c, "malformed body: negative length %lld", (long long)n);
    if ((uint64_t)n > (uint64_t)(c->end - c->p))
        return cur_fail(c, "truncated body: a length of %lld exceeds the %zu bytes left",
                        (long long)n, (size_t)(c->end - c->p));
    *len = (size_t)n;
    return rd_raw(c, (size_t)n, out);
}

static int rd_float(cursor_t *c, float *out)
{
    const uint8_t *b;
    if (rd_raw(c, 4, &b) != 0)
        return -1;
    uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    memcpy(out, &u, 4);
    return 0;
}

static int rd_double(cursor_t *c, double *out)
{
    const uint8_t *b;
    if (rd_raw(c, 8, &b) != 0)
        return -1;
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = u << 8 | b[i];
    memcpy(out, &u, 8);
    return 0;
}

/* Reads a block count of an array or map: 0 ends, a negative count is followed by a byte size. */
static int rd_block(cursor_t *c, const node_t *items, bool map, int64_t *count)
{
    if (rd_long(c, count) != 0)
        return -1;
    if (*count < 0) {
        int64_t size;
        if (*count == INT64_MIN)
            return cur_fail(c, "malformed body: bad block count");
        *count = -*count;
        if (rd_long(c, &size) != 0)
            return -1;
    }
    size_t each = items->min_size + (map ? 1 : 0);
    if (each > 0 ? (uint64_t)*count > (uint64_t)(c->end - c->p) / each
                 : *count > MAX_ZERO_SIZE_ITEMS)
        return cur_fail(c,
                        "truncated body: a block of %lld items needs more than the %zu bytes left",
                        (long long)*count, (size_t)(c->end - c->p));
    return 0;
}

static int skip_value(cursor_t *c, const node_t *n)
{
    const uint8_t *b;
    size_t len;
    int64_t v, count;
    switch (n->kind) {
    case K_NULL:
        return 0;
    case K_BOOLEAN:
        return rd_raw(c, 1, &b);
    case K_INT:
    case K_LONG:
    case K_ENUM:
        return rd_long(c, &v);
    case K_FLOAT:
        return rd_raw(c, 4, &b);
    case K_DOUBLE:
        return rd_raw(c, 8, &b);
    case K_BYTES:
    case K_STRING:
        return rd_len_bytes(c, &b, &len);
    case K_FIXED:
        return rd_raw(c, n->fixed_size, &b);
    case K_ARRAY:
    case K_MAP:
        for (;;) {
            if (rd_block(c, n->items, n->kind == K_MAP, &count) != 0)
                return -1;
            if (count == 0)
                return 0;
            for (int64_t i = 0; i < count; i++) {
                if (n->kind == K_MAP && rd_len_bytes(c, &b, &len) != 0)
                    return -1;
                if (skip_value(c, n->items) != 0)
                    return -1;
            }
        }
    case K_RECORD:
        for (size_t i = 0; i < n->n_fields; i++) {
            if (skip_value(c, n->fields[i].type) != 0)
                return -1;
        }
        return 0;
    case K_UNION:
        if (rd_long(c, &v) != 0)
            return -1;
        if (v < 0 || (uint64_t)v >= n->n_branches)
            return cur_fail(c, "malformed body: union branch %lld of %zu", (long long)v,
                            n->n_branches);
        return skip_value(c, n->branches[v]);
    }
    return cur_fail(c, "internal: unknown kind");
}

/* Copies len bytes plus a NUL into the scratch buffer (avro-c string sizes count the NUL). */
static const char *scratch_cstr(st_buf_t *scratch, const void *data, size_t len)
{
    st_buf_reset(scratch);
    if (st_buf_append(scratch, data, len) != 0)
        return NULL;
    return scratch->data;
}

static int avro_fail(cursor_t *c, int rc)
{
    return cur_fail(c, "avro-c: %s (%s)", avro_strerror(), strerror(rc));
}

/* Converts a JSON string of code points 0-255 (the Avro JSON form of bytes) into scratch. */
static int json_to_bytes(const json_t *j, st_buf_t *scratch)
{
    const unsigned char *s = (const unsigned char *)json_string_value(j);
    size_t n = json_string_length(j);
    st_buf_reset(scratch);
    if (st_buf_reserve(scratch, n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned cp = s[i];
        if (cp >= 0x80) {
            if ((cp & 0xe0) != 0xc0 || i + 1 >= n || s[i + 1] < 0x80 || cp > 0xc3)
                return -1;
            cp = (cp & 0x1f) << 6 | (s[++i] & 0x3f);
        }
        scratch->data[scratch->len++] = (char)cp;
    }
    scratch->data[scratch->len] = '\0';
    return 0;
}

static int init_value(const node_t *n, avro_value_t *v, st_buf_t *scratch, int depth);

/* Sets v (freshly reset) to the JSON default j of type n; j was checked by default_ok. */
static int set_default(const node_t *n, const json_t *j, avro_value_t *v, st_buf_t *scratch,
                       int depth)
{
    avro_value_t child;
    size_t i;
    json_t *item;
    const char *key;
    if (depth > MAX_SCHEMA_DEPTH)
        return -1;
    switch (n->kind) {
    case K_NULL:
        return avro_value_set_null(v);
    case K_BOOLEAN:
        return avro_value_set_boolean(v, json_is_true(j));
    case K_INT:
        return avro_value_set_int(v, (int32_t)json_integer_value(j));
    case K_LONG:
        return avro_value_set_long(v, json_integer_value(j));
    case K_FLOAT:
        return avro_value_set_float(v, (float)json_number_value(j));
    case K_DOUBLE:
        return avro_value_set_double(v, json_number_value(j));
    case K_STRING:
        return avro_value_set_string_len(v, json_string_value(j), json_string_length(j) + 1);
    case K_BYTES:
    case K_FIXED:
        if (json_to_bytes(j, scratch) != 0)
            return -1;
        if (n->kind == K_FIXED)
            return scratch->len == n->fixed_size
                       ? avro_value_set_fixed(v, scratch->data, scratch->len)
                       : -1;
        return avro_value_set_bytes(v, scratch->data, scratch->len);
    case K_ENUM:
        for (i = 0; i < n->n_symbols; i++) {
            if (strcmp(n->symbols[i], json_string_value(j)) == 0)
                return avro_value_set_enum(v, (int)i);
        }
        return -1;
    case K_ARRAY:
        avro_value_reset(v);
        json_array_foreach(j, i, item)
        {
            if (avro_value_append(v, &child, NULL) != 0 ||
                set_default(n->items, item, &child, scratch, depth + 1) != 0)
                return -1;
        }
        return 0;
    case K_MAP:
        avro_value_reset(v);
        json_object_foreach((json_t *)j, key, item)
        {
            if (avro_value_add(v, key, &child, NULL, NULL) != 0 ||
                set_default(n->items, item, &child, scratch, depth + 1) != 0)
                return -1;
        }
        return 0;
    case K_RECORD:
        for (i = 0; i < n->n_fields; i++) {
            const json_t *fj = json_object_get(j, n->fields[i].name);
            if (!fj)
                fj = n->fields[i].dflt;
            if (avro_value_get_by_index(v, i, &child, NULL) != 0 ||
                (fj ? set_default(n->fields[i].type, fj, &child, scratch, depth + 1)
                    : init_value(n->fields[i].type, &child, scratch, depth + 1)) != 0)
                return -1;
        }
        return 0;
    case K_UNION:
        for (i = 0; i < n->n_branches; i++) {
            if (default_ok(n->branches[i], j))
                return avro_value_set_branch(v, (int)i, &child) != 0
                           ? -1
                           : set_default(n->branches[i], j, &child, scratch, depth + 1);
        }
        return -1;
    }
    return -1;
}

/* Puts a reset value into its initial state: record fields at their defaults, unions on their
 * first branch. */
static int init_value(const node_t *n, avro_value_t *v, st_buf_t *scratch, int depth)
{
    avro_value_t child;
    if (depth > MAX_SCHEMA_DEPTH)
        return -1;
    if (n->kind == K_RECORD) {
        for (size_t i = 0; i < n->n_fields; i++) {
            const field_t *f = &n->fields[i];
            if (avro_value_get_by_index(v, i, &child, NULL) != 0 ||
                (f->dflt ? set_default(f->type, f->dflt, &child, scratch, depth + 1)
                         : init_value(f->type, &child, scratch, depth + 1)) != 0)
                return -1;
        }
    } else if (n->kind == K_UNION) {
        if (avro_value_set_branch(v, 0, &child) != 0)
            return -1;
        return init_value(n->branches[0], &child, scratch, depth + 1);
    }
    return 0;
}

/* Decodes one writer value following plan p into the reader value dst. */
static int decode_plan(cursor_t *c, const plan_t *p, avro_value_t *dst)
{
    avro_value_t child;
    int32_t i32;
    int64_t i64, count;
    float f;
    double d;
    const uint8_t *b;
    size_t len;
    int rc = 0;
    switch (p->op) {
    case OP_NULL:
        rc = avro_value_set_null(dst);
        break;
    case OP_BOOLEAN:
        if (rd_raw(c, 1, &b) != 0)
            return -1;
        if (*b > 1)
            return cur_fail(c, "malformed body: boolean byte 0x%02x", *b);
        rc = avro_value_set_boolean(dst, *b);
        break;
    case OP_INT:
        if (rd_int(c, &i32) != 0)
            return -1;
        rc = avro_value_set_int(dst, i32);
        break;
    case OP_INT_TO_LONG:
    case OP_INT_TO_FLOAT:
    case OP_INT_TO_DOUBLE:
        if (rd_int(c, &i32) != 0)
            return -1;
        rc = p->op == OP_INT_TO_LONG    ? avro_value_set_long(dst, i32)
             : p->op == OP_INT_TO_FLOAT ? avro_value_set_float(dst, (float)i32)
                                        : avro_value_set_double(dst, i32);
        break;
    case OP_LONG:
    case OP_LONG_TO_FLOAT:
    case OP_LONG_TO_DOUBLE:
        if (rd_long(c, &i64) != 0)
            return -1;
        rc = p->op == OP_LONG            ? avro_value_set_long(dst, i64)
             : p->op == OP_LONG_TO_FLOAT ? avro_value_set_float(dst, (float)i64)
                                         : avro_value_set_double(dst, (double)i64);
        break;
    case OP_FLOAT:
    case OP_FLOAT_TO_DOUBLE:
        if (rd_float(c, &f) != 0)
            return -1;
        rc = p->op == OP_FLOAT ? avro_value_set_float(dst, f) : avro_value_set_double(dst, f);
        break;
    case OP_DOUBLE:
        if (rd_double(c, &d) != 0)
            return -1;
        rc = avro_value_set_double(dst, d);
        break;
    case OP_STRING:
    case OP_BYTES_TO_STRING: {
        if (rd_len_bytes(c, &b, &len) != 0)
            return -1;
        const char *s = scratch_cstr(c->scratch, b, len);
        if (!s)
            return cur_fail(c, "out of memory");
        rc = avro_value_set_string_len(dst, s, len + 1);
        break;
    }
    case OP_BYTES:
    case OP_STRING_TO_BYTES:
        if (rd_len_bytes(c, &b, &len) != 0)
            return -1;
        rc = avro_value_set_bytes(dst, (void *)(len ? b : (const uint8_t *)""), len);
        break;
    case OP_FIXED:
        if (rd_raw(c, p->w->fixed_size, &b) != 0)
            return -1;
        rc = avro_value_set_fixed(dst, (void *)b, p->w->fixed_size);
        break;
    case OP_ENUM: {
        if (rd_long(c, &i64) != 0)
            return -1;
        if (i64 < 0 || (uint64_t)i64 >= p->w->n_symbols)
            return cur_fail(c, "malformed body: enum %s index %lld of %zu", p->w->fullname,
                            (long long)i64, p->w->n_symbols);
        int ri = p->enum_map[i64];
        if (ri < 0)
            ri = p->r->enum_default;
        if (ri < 0)
            return cur_fail(c, "enum %s: writer symbol %s is unknown to the reader", p->r->fullname,
                            p->w->symbols[i64]);
        rc = avro_value_set_enum(dst, ri);
        break;
    }
    case OP_ARRAY:
    case OP_MAP:
        for (;;) {
            if (rd_block(c, p->w->items, p->op == OP_MAP, &count) != 0)
                return -1;
            if (count == 0)
                break;
            for (int64_t i = 0; i < count; i++) {
                if (p->op == OP_MAP) {
                    const char *key;
                    if (rd_len_bytes(c, &b, &len) != 0)
                        return -1;
                    if (!(key = scratch_cstr(c->scratch, b, len)))
                        return cur_fail(c, "out of memory");
                    rc = avro_value_add(dst, key, &child, NULL, NULL);
                } else {
                    rc = avro_value_append(dst, &child, NULL);
                }
                if (rc != 0)
                    return avro_fail(c, rc);
                if (decode_plan(c, p->items, &child) != 0)
                    return -1;
            }
        }
        break;
    case OP_RECORD:
        for (size_t i = 0; i < p->n_wfields; i++) {
            const plan_field_t *pf = &p->wfields[i];
            if (pf->reader_index < 0) {
                if (skip_value(c, pf->skip) != 0)
                    return -1;
                continue;
            }
            if ((rc = avro_value_get_by_index(dst, (size_t)pf->reader_index, &child, NULL)) != 0)
                return avro_fail(c, rc);
            if (decode_plan(c, pf->plan, &child) != 0)
                return -1;
        }
        for (size_t i = 0; i < p->n_defaults; i++) {
            const field_t *fld = p->defaults[i].field;
            if (avro_value_get_by_index(dst, (size_t)p->defaults[i].reader_index, &child, NULL) !=
                    0 ||
                set_default(fld->type, fld->dflt, &child, c->scratch, 0) != 0)
                return cur_fail(c, "cannot set the default of %s.%s", p->r->fullname, fld->name);
        }
        break;
    case OP_WRITER_UNION:
        if (rd_long(c, &i64) != 0)
            return -1;
        if (i64 < 0 || (uint64_t)i64 >= p->n_branches)
            return cur_fail(c, "malformed body: union branch %lld of %zu", (long long)i64,
                            p->n_branches);
        return decode_plan(c, p->branches[i64], dst);
    case OP_TO_BRANCH:
        if ((rc = avro_value_set_branch(dst, p->reader_branch, &child)) != 0)
            return avro_fail(c, rc);
        return decode_plan(c, p->inner, &child);
    case OP_FAIL:
        return cur_fail(c, "%s", p->error);
    }
    return rc != 0 ? avro_fail(c, rc) : 0;
}

/* JSON rendering */

static json_t *json_latin1(const uint8_t *b, size_t len)
{
    st_buf_t buf = ST_BUF_INIT;
    json_t *j = NULL;
    if (st_buf_reserve(&buf, len * 2) == 0) {
        for (size_t i = 0; i < len; i++) {
            if (b[i] < 0x80) {
                buf.data[buf.len++] = (char)b[i];
            } else {
                buf.data[buf.len++] = (char)(0xc0 | b[i] >> 6);
                buf.data[buf.len++] = (char)(0x80 | (b[i] & 0x3f));
            }
        }
        j = json_stringn(buf.data, buf.len);
    }
    st_buf_free(&buf);
    return j;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when invalid. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    size_t need;
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0) {
        need = 2;
        cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        need = 3;
        cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        need = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (need > n)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[need] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need;
}

static json_t *json_utf8(const char *s, size_t len)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0, k;
    while (i < len && (k = utf8_seq(u + i, len - i)) > 0 && u[i] != 0)
        i += k;
    if (i == len)
        return json_stringn(s, len);
    st_buf_t buf = ST_BUF_INIT;
    json_t *j = NULL;
    for (i = 0; i < len;) {
        k = u[i] ? utf8_seq(u + i, len - i) : 1;
        if (k == 0) {
            if (st_buf_append(&buf, "\xef\xbf\xbd", 3) != 0)
                goto out;
            i++;
        } else {
            if (st_buf_append(&buf, s + i, k) != 0)
                goto out;
            i += k;
        }
    }
    j = json_stringn(buf.data ? buf.data : "", buf.len);
out:
    st_buf_free(&buf);
    return j;
}

static json_t *json_double(double d)
{
    if (isnan(d))
        return json_string("NaN");
    if (isinf(d))
        return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

static json_t *value_json(const avro_value_t *v, int depth)
{
    avro_value_t child;
    const char *name;
    const void *buf;
    size_t size, n;
    int32_t i32;
    int64_t i64;
    float f;
    double d;
    int b;
    json_t *j;
    if (depth > MAX_SCHEMA_DEPTH)
        return NULL;
    switch (avro_value_get_type(v)) {
    case AVRO_NULL:
        return json_null();
    case AVRO_BOOLEAN:
        return avro_value_get_boolean(v, &b) ? NULL : json_boolean(b);
    case AVRO_INT32:
        return avro_value_get_int(v, &i32) ? NULL : json_integer(i32);
    case AVRO_INT64:
        return avro_value_get_long(v, &i64) ? NULL : json_integer(i64);
    case AVRO_FLOAT:
        return avro_value_get_float(v, &f) ? NULL : json_double(f);
    case AVRO_DOUBLE:
        return avro_value_get_double(v, &d) ? NULL : json_double(d);
    case AVRO_STRING:
        if (avro_value_get_string(v, (const char **)&buf, &size) != 0)
            return NULL;
        return json_utf8(buf, size ? size - 1 : 0);
    case AVRO_BYTES:
        return avro_value_get_bytes(v, &buf, &size) ? NULL : json_latin1(buf, size);
    case AVRO_FIXED:
        return avro_value_get_fixed(v, &buf, &size) ? NULL : json_latin1(buf, size);
    case AVRO_ENUM:
        if (avro_value_get_enum(v, &i32) != 0 || i32 < 0 ||
            i32 >= avro_schema_enum_number_of_symbols(avro_value_get_schema(v)) ||
            !(name = avro_schema_enum_get(avro_value_get_schema(v), i32)))
            return NULL;
        return json_string(name);
    case AVRO_UNION:
        return avro_value_get_current_branch(v, &child) ? NULL : value_json(&child, depth + 1);
    case AVRO_ARRAY:
    case AVRO_MAP:
    case AVRO_RECORD: {
        bool array = avro_value_get_type(v) == AVRO_ARRAY;
        if (avro_value_get_size(v, &n) != 0 || !(j = array ? json_array() : json_object()))
            return NULL;
        for (size_t i = 0; i < n; i++) {
            json_t *item;
            if (avro_value_get_by_index(v, i, &child, &name) != 0 ||
                !(item = value_json(&child, depth + 1)) ||
                (array ? json_array_append_new(j, item) : json_object_set_new(j, name, item)) !=
                    0) {
                json_decref(j);
                return NULL;
            }
        }
        return j;
    }
    case AVRO_LINK:
        return NULL;
    }
    return NULL;
}

json_t *st_avro_value_to_json(const avro_value_t *value)
{
    return value ? value_json(value, 0) : NULL;
}

/* Decodes writer bytes of type n straight to JSON (no reader schema). */
static json_t *decode_json(cursor_t *c, const node_t *n, int depth)
{
    const uint8_t *b;
    size_t len;
    int32_t i32;
    int64_t i64, count;
    float f;
    double d;
    json_t *j, *item;
    if (depth > MAX_SCHEMA_DEPTH) {
        cur_fail(c, "schema nested too deep");
        return NULL;
    }
    switch (n->kind) {
    case K_NULL:
        return json_null();
    case K_BOOLEAN:
        if (rd_raw(c, 1, &b) != 0)
            return NULL;
        if (*b > 1) {
            cur_fail(c, "malformed body: boolean byte 0x%02x", *b);
            return NULL;
        }
        return json_boolean(*b);
    case K_INT:
        return rd_int(c, &i32) ? NULL : json_integer(i32);
    case K_LONG:
        return rd_long(c, &i64) ? NULL : json_integer(i64);
    case K_FLOAT:
        return rd_float(c, &f) ? NULL : json_double(f);
    case K_DOUBLE:
        return rd_double(c, &d) ? NULL : json_double(d);
    case K_STRING:
        return rd_len_bytes(c, &b, &len) ? NULL : json_utf8((const char *)b, len);
    case K_BYTES:
        return rd_len_bytes(c, &b, &len) ? NULL : json_latin1(b, len);
    case K_FIXED:
        return rd_raw(c, n->fixed_size, &b) ? NULL : json_latin1(b, n->fixed_size);
    case K_ENUM:
        if (rd_long(c, &i64) != 0)
            return NULL;
        if (i64 < 0 || (uint64_t)i64 >= n->n_symbols) {
            cur_fail(c, "malformed body: enum index %lld of %zu", (long long)i64, n->n_symbols);
            return NULL;
        }
        return json_string(n->symbols[i64]);
    case K_UNION:
        if (rd_long(c, &i64) != 0)
            return NULL;
        if (i64 < 0 || (uint64_t)i64 >= n->n_branches) {
            cur_fail(c, "malformed body: union branch %lld of %zu", (long long)i64, n->n_branches);
            return NULL;
        }
        return decode_json(c, n->branches[i64], depth + 1);
    case K_RECORD:
        if (!(j = json_object()))
            return NULL;
        for (size_t i = 0; i < n->n_fields; i++) {
            if (!(item = decode_json(c, n->fields[i].type, depth + 1)) ||
                json_object_set_new(j, n->fields[i].name, item) != 0) {
                json_decref(j);
                return NULL;
            }
        }
        return j;
    case K_ARRAY:
    case K_MAP:
        if (!(j = n->kind == K_ARRAY ? json_array() : json_object()))
            return NULL;
        for (;;) {
            if (rd_block(c, n->items, n->kind == K_MAP, &count) != 0)
                goto fail;
            if (count == 0)
                return j;
            for (int64_t i = 0; i < count; i++) {
                char *key = NULL; /* copied: decoding the item reuses the scratch buffer */
                if (n->kind == K_MAP) {
                    if (rd_len_bytes(c, &b, &len) != 0 || !(key = strndup((const char *)b, len)))
                        goto fail;
                }
                if (!(item = decode_json(c, n->items, depth + 1))) {
                    free(key);
                    goto fail;
                }
                int rc = key ? json_object_set_new(j, key, item) : json_array_append_new(j, item);
                free(key);
                if (rc != 0)
                    goto fail;
            }
        }
    fail:
        json_decref(j);
        return NULL;
    }
    return NULL;
}

/* Registry: HTTP */

static size_t http_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    st_buf_t *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > MAX_RESPONSE_BYTES || st_buf_append(b, ptr, n) != 0)
        return 0;
    return n;
}

/* One request to the registry. Fills *status and body. Call with reg->lock held. */
static int http_call(st_avro_registry_t *reg, const char *path, const char *post_body, long *status,
                     st_buf_t *body, st_err_t *err)
{
    char url[2048];
    char curl_err[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    st_buf_reset(body);
    if (!reg->curl && !(reg->curl = curl_easy_init())) {
        st_err_set(err, ST_ERR_NOMEM, ST_DISP_RETRY, "schema registry: curl_easy_init failed");
        return -1;
    }
    size_t ulen = strlen(reg->url);
    while (ulen > 0 && reg->url[ulen - 1] == '/')
        ulen--;
    snprintf(url, sizeof url, "%.*s%s", (int)ulen, reg->url, path);
    CURL *h = reg->curl;
    curl_easy_reset(h);
    /* No cached DNS answer: a restarted registry container comes back on another address, and
     * libcurl's 60 s cache kept a service on the old one (connect timeouts for ~40 s, seen in
     * make compose-test). A lookup per call is cheap next to the calls, which are rare. */
    curl_easy_setopt(h, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
    headers = curl_slist_append(headers, "Accept: " SR_CONTENT_TYPE
                                         ", application/vnd.schemaregistry+json, application/json");
    if (post_body)
        headers = curl_slist_append(headers, "Content-Type: " SR_CONTENT_TYPE);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, reg->connect_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, reg->request_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "stint/" STINT_VERSION);
    if (post_body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, post_body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(post_body));
    }
    reg->http_requests++;
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
        st_err_set(err, rc == CURLE_OPERATION_TIMEDOUT ? ST_ERR_TIMEOUT : ST_ERR_HTTP,
                   ST_DISP_RETRY, "schema registry %s%s: %s", reg->url, path,
                   curl_err[0] ? curl_err : curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    return 0;
}

/* The registry's error message of a failed call, for error texts. */
static void registry_message(const st_buf_t *body, char *out, size_t size)
{
    json_t *j = body->data ? json_loadb(body->data, body->len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "message"));
    snprintf(out, size, "%.300s", msg ? msg : (body->data ? body->data : ""));
    json_decref(j);
}

static ident_t *ident_find(st_avro_registry_t *reg, int32_t id)
{
    for (size_t i = 0; i < reg->n_ids; i++) {
        if (reg->ids[i].id == id)
            return &reg->ids[i];
    }
    return NULL;
}

static ident_t *ident_add(st_avro_registry_t *reg, int32_t id, sch_t *sch, bool owned,
                          const char *why)
{
    if (grow((void **)&reg->ids, &reg->cap_ids, reg->n_ids + 1, sizeof *reg->ids) != 0)
        return NULL;
    ident_t *e = &reg->ids[reg->n_ids];
    memset(e, 0, sizeof *e);
    e->id = id;
    e->sch = sch;
    e->owned = owned;
    if (why && !(e->why = strdup(why)))
        return NULL;
    reg->n_ids++;
    return e;
}

/* Fetches writer schema id from the registry and caches it (in the negative entry e when it is
 * being asked again, else in a new one). Call with reg->lock held. */
static ident_t *registry_fetch(st_avro_registry_t *reg, int32_t id, ident_t *again, st_err_t *err)
{
    bool not_found = false;
    char path[64], why[512], msg[320];
    st_buf_t body = ST_BUF_INIT;
    long status = 0;
    ident_t *e = NULL;
    snprintf(path, sizeof path, "/schemas/ids/%ld", (long)id);
    if (http_call(reg, path, NULL, &status, &body, err) != 0)
        goto out;
    if (status == 404) {
        registry_message(&body, msg, sizeof msg);
        snprintf(why, sizeof why, "not found in the schema registry (%s)", msg);
        not_found = true;
    } else if (status != 200) {
        registry_message(&body, msg, sizeof msg);
        st_err_set(err, ST_ERR_HTTP, ST_DISP_RETRY, "schema registry GET %s: HTTP %ld: %s", path,
                   status, msg);
        goto out;
    } else {
        json_t *j = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
        const char *text = json_string_value(json_object_get(j, "schema"));
        const char *type = json_string_value(json_object_get(j, "schemaType"));
        if (!text) {
            snprintf(why, sizeof why, "the registry's answer has no \"schema\"");
        } else if (type && strcmp(type, "AVRO") != 0) {
            snprintf(why, sizeof why, "it is a %.40s schema, not Avro", type);
        } else {
            char perr[400];
            sch_t *s = sch_parse(text, strlen(text), perr, sizeof perr);
            if (s && again) {
                free(again->why);
                again->why = NULL;
                again->sch = s;
                again->owned = true;
                again->retry_at_ms = 0;
                e = again;
                json_decref(j);
                goto out;
            }
            if (s) {
                e = ident_add(reg, id, s, true, NULL);
                if (!e) {
                    sch_free(s);
                    st_err_set(err, ST_ERR_NOMEM, ST_DISP_RETRY, "out of memory");
                }
                json_decref(j);
                goto out;
            }
            snprintf(why, sizeof why, "its schema does not parse: %s", perr);
        }
        json_decref(j);
    }
    /* Ids never change meaning, so an unusable id is remembered for good and a missing one for
     * not_found_retry_ms (up to a bound): with several registry instances behind a load
     * balancer, one may answer before it has caught up with a schema just registered. */
    if (again) {
        char *w = strdup(why);
        if (w) {
            free(again->why);
            again->why = w;
        }
        e = again;
    } else if (reg->n_negative < MAX_NEGATIVE_IDS && (e = ident_add(reg, id, NULL, false, why))) {
        reg->n_negative++;
    } else {
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT, "unknown schema id %ld: %s", (long)id,
                   why);
        goto out;
    }
    e->retry_at_ms = not_found ? st_time_mono_ms() + reg->not_found_retry_ms : 0;
out:
    st_buf_free(&body);
    return e;
}

/* The writer schema of id, or NULL with err set. Thread-safe. The result lives as long as reg. */
static const sch_t *registry_writer(st_avro_registry_t *reg, int32_t id, st_err_t *err)
{
    const sch_t *s = NULL;
    pthread_mutex_lock(&reg->lock);
    ident_t *e = ident_find(reg, id);
    if (!e && reg->url)
        e = registry_fetch(reg, id, NULL, err);
    else if (e && !e->sch && e->retry_at_ms > 0 && st_time_mono_ms() >= e->retry_at_ms && reg->url)
        e = registry_fetch(reg, id, e, err);
    if (e && e->sch)
        s = e->sch;
    else if (e)
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT, "unknown schema id %ld: %s", (long)id,
                   e->why);
    else if (!reg->url)
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT,
                   "unknown schema id %ld (not in the static table ids.conf)", (long)id);
    pthread_mutex_unlock(&reg->lock);
    return s;
}

static local_t *local_find(const st_avro_registry_t *reg, const char *record_name)
{
    if (!reg || !record_name)
        return NULL;
    for (size_t i = 0; i < reg->n_locals; i++) {
        local_t *l = &reg->locals[i];
        if (l->top_level &&
            (strcmp(l->name, record_name) == 0 || strcmp(l->fullname, record_name) == 0))
            return l;
    }
    return NULL;
}

static int registry_register(st_avro_registry_t *reg, local_t *l, const char *topic,
                             int32_t *id_out, st_err_t *err)
{
    char subject[512], path[1200], msg[320];
    st_buf_t body = ST_BUF_INIT;
    long status = 0;
    int rc = -1;
    snprintf(subject, sizeof subject, "%s-value", topic);
    for (size_t i = 0; i < reg->n_subjects; i++) {
        if (reg->subjects[i].local == l && strcmp(reg->subjects[i].subject, subject) == 0) {
            *id_out = reg->subjects[i].id;
            return 0;
        }
    }
    char *esc = curl_easy_escape(NULL, subject, 0);
    json_t *req = json_pack("{s:s}", "schema", l->text);
    char *req_text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!esc || !req_text) {
        st_err_set(err, ST_ERR_NOMEM, ST_DISP_RETRY, "out of memory");
        goto out;
    }
    snprintf(path, sizeof path, "/subjects/%s/versions", esc);
    /* Registration happens when a service starts, often together with the others and with the
     * registry, so a failure that may pass is tried again:
     * - a transport error or a 5xx, for up to register_retry_ms: the registry is starting, or
     *   its store failed under concurrent writes (Apicurio on H2 answers 500 "Concurrent update
     *   in table SEQUENCES" or stalls on a lock when several subjects are created at once);
     * - a 409, REGISTER_TRIES_409 times: Apicurio answers 409 "artifact already exists" to one of
     *   two processes creating the same subject at the same moment; asked again it finds it. An
     *   incompatible schema stays 409 and is reported after the last try. */
    int64_t give_up = st_time_mono_ms() + reg->register_retry_ms;
    long pause_ms = 100;
    for (int tries_409 = 1;; tries_409++) {
        st_err_t call_err = {0};
        int rc_call = http_call(reg, path, req_text, &status, &body, &call_err);
        bool again = rc_call != 0 || status >= 500
                         ? st_time_mono_ms() + pause_ms < give_up
                         : status == 409 && tries_409 < REGISTER_TRIES_409;
        if (!again) {
            if (rc_call != 0) {
                st_err_set(err, call_err.code, st_err_disp(&call_err), "%s", call_err.text);
                goto out;
            }
            break;
        }
        if (rc_call == 0)
            registry_message(&body, msg, sizeof msg);
        st_log_warn("schema_registry_retry", "subject=%s status=%ld error=\"%s\" pause_ms=%ld",
                    subject, status, rc_call != 0 ? call_err.text : msg, pause_ms);
        struct timespec pause = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
        pause_ms = pause_ms * 2 > 2000 ? 2000 : pause_ms * 2;
    }
    if (status != 200) {
        registry_message(&body, msg, sizeof msg);
        bool server = status >= 500 || status == 0;
        st_err_set(err, server ? ST_ERR_HTTP : ST_ERR_CONFIG,
                   server ? ST_DISP_RETRY : ST_DISP_PERMANENT,
                   "schema registry: registering %s under subject %s: HTTP %ld: %s", l->fullname,
                   subject, status, msg);
        goto out;
    }
    json_t *j = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
    json_t *idj = json_object_get(j, "id");
    if (!json_is_integer(idj) || json_integer_value(idj) < 0 ||
        json_integer_value(idj) > INT32_MAX) {
        json_decref(j);
        st_err_set(err, ST_ERR_HTTP, ST_DISP_PERMANENT,
                   "schema registry: registering %s: answer without a valid \"id\"", l->fullname);
        goto out;
    }
    int32_t id = (int32_t)json_integer_value(idj);
    json_decref(j);
    if (grow((void **)&reg->subjects, &reg->cap_subjects, reg->n_subjects + 1,
             sizeof *reg->subjects) != 0 ||
        !(reg->subjects[reg->n_subjects].subject = strdup(subject))) {
        st_err_set(err, ST_ERR_NOMEM, ST_DISP_RETRY, "out of memory");
        goto out;
    }
    reg->subjects[reg->n_subjects].local = l;
    reg->subjects[reg->n_subjects].id = id;
    reg->n_subjects++;
    /* The registry stores what we sent, so the id's writer schema is ours: no fetch needed. */
    ident_t *e = ident_find(reg, id);
    if (!e || !e->sch) {
        if (e) {
            free(e->why);
            e->why = NULL;
            e->sch = l->sch;
            e->owned = false;
        } else if (!ident_add(reg, id, l->sch, false, NULL)) {
            st_err_set(err, ST_ERR_NOMEM, ST_DISP_RETRY, "out of memory");
            goto out;
        }
    }
    *id_out = id;
    rc = 0;
out:
    curl_free(esc);
    free(req_text);
    st_buf_free(&body);
    return rc;
}

int st_avro_registry_id_for(st_avro_registry_t *reg, const char *record_name, const char *topic,
                            int32_t *id_out, st_err_t *err)
{
    local_t *l = local_find(reg, record_name);
    if (!l) {
        st_err_set(err, ST_ERR_CONFIG, ST_DISP_PERMANENT,
                   "no schema for record %s in the schemas dir",
                   record_name ? record_name : "(null)");
        return -1;
    }
    if (!reg->url) {
        if (l->static_id < 0) {
            st_err_set(err, ST_ERR_CONFIG, ST_DISP_PERMANENT, "record %s has no id in ids.conf",
                       l->fullname);
            return -1;
        }
        *id_out = l->static_id;
        return 0;
    }
    if (!topic || !*topic) {
        st_err_set(err, ST_ERR_CONFIG, ST_DISP_PERMANENT, "record %s: no topic to register under",
                   l->fullname);
        return -1;
    }
    pthread_mutex_lock(&reg->lock);
    int rc = registry_register(reg, l, topic, id_out, err);
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

/* Registry: loading */

static char *read_file(const char *path, size_t *len_out, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    st_buf_t b = ST_BUF_INIT;
    char chunk[8192];
    size_t n;
    if (!f) {
        st_errstr(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (st_buf_append(&b, chunk, n) != 0) {
            fclose(f);
            st_buf_free(&b);
            st_errstr(errstr, errstr_size, "%s: out of memory", path);
            return NULL;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        st_buf_free(&b);
        st_errstr(errstr, errstr_size, "%s: read error", path);
        return NULL;
    }
    if (st_buf_append(&b, "", 0) != 0) {
        st_errstr(errstr, errstr_size, "%s: out of memory", path);
        return NULL;
    }
    *len_out = b.len;
    return b.data;
}

static int load_local(st_avro_registry_t *reg, const char *dir, const char *rel, bool top_level,
                      char *errstr, size_t errstr_size)
{
    char path[4096], perr[400];
    size_t len;
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    local_t *l = &reg->locals[reg->n_locals];
    memset(l, 0, sizeof *l);
    l->static_id = -1;
    l->top_level = top_level;
    if (!(l->path = strdup(rel)))
        return st_errstr(errstr, errstr_size, "out of memory");
    if (!(l->text = read_file(path, &len, errstr, errstr_size))) {
        free(l->path);
        return -1;
    }
    reg->n_locals++;
    if (!(l->sch = sch_parse(l->text, len, perr, sizeof perr)))
        return st_errstr(errstr, errstr_size, "%s: %s", path, perr);
    if (l->sch->root->kind != K_RECORD)
        return st_errstr(errstr, errstr_size, "%s: the top-level type must be a record", path);
    if (avro_schema_from_json_length(l->text, len, &l->avro) != 0) {
        l->avro = NULL;
        return st_errstr(errstr, errstr_size, "%s: avro-c rejects the schema: %s", path,
                         avro_strerror());
    }
    if (!(l->fullname = strdup(l->sch->root->fullname)) || !(l->name = strdup(l->sch->root->name)))
        return st_errstr(errstr, errstr_size, "out of memory");
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int scan_dir(const char *dir, char ***names, size_t *n, char *errstr, size_t errstr_size)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t cap = 0;
    if (!d)
        return st_errstr(errstr, errstr_size, "schemas dir %s: %s", dir, strerror(errno));
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len <= 5 || strcmp(de->d_name + len - 5, ".avsc") != 0 || de->d_name[0] == '.')
            continue;
        if (grow((void **)names, &cap, *n + 1, sizeof **names) != 0 ||
            !((*names)[*n] = strdup(de->d_name))) {
            closedir(d);
            return st_errstr(errstr, errstr_size, "out of memory");
        }
        (*n)++;
    }
    closedir(d);
    if (*n == 0)
        return st_errstr(errstr, errstr_size, "schemas dir %s holds no .avsc file", dir);
    qsort(*names, *n, sizeof **names, cmp_str);
    return 0;
}

static int load_ids(st_avro_registry_t *reg, const char *dir, char *errstr, size_t errstr_size)
{
    char path[4096];
    size_t len;
    snprintf(path, sizeof path, "%s/ids.conf", dir);
    char *text = read_file(path, &len, errstr, errstr_size);
    if (!text)
        return -1;
    int rc = 0, lineno = 0;
    char *next = text;
    while (next && rc == 0) {
        char file[1024], extra[2];
        long id;
        char *line = next;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        int got = sscanf(line, "%ld %1023s %1s", &id, file, extra);
        if (got <= 0) {
            if (strspn(line, " \t\r") == strlen(line))
                continue;
        }
        if (got != 2 || id < 0 || id > INT32_MAX) {
            rc = st_errstr(errstr, errstr_size, "%s:%d: expected \"<id> <file.avsc>\"", path,
                           lineno);
            break;
        }
        if (ident_find(reg, (int32_t)id)) {
            rc = st_errstr(errstr, errstr_size, "%s:%d: id %ld given twice", path, lineno, id);
            break;
        }
        local_t *l = NULL;
        for (size_t i = 0; i < reg->n_locals; i++) {
            if (strcmp(reg->locals[i].path, file) == 0)
                l = &reg->locals[i];
        }
        if (l && l->static_id >= 0) {
            rc = st_errstr(errstr, errstr_size, "%s:%d: %s has two ids", path, lineno, file);
            break;
        }
        if (!l) {
            local_t *more = realloc(reg->locals, (reg->n_locals + 1) * sizeof *more);
            if (!more) {
                rc = st_errstr(errstr, errstr_size, "out of memory");
                break;
            }
            reg->locals = more;
            /* ident_t entries point at sch_t objects, not at locals, so moving locals is safe. */
            if (load_local(reg, dir, file, false, errstr, errstr_size) != 0) {
                rc = -1;
                break;
            }
            l = &reg->locals[reg->n_locals - 1];
        }
        l->static_id = (int32_t)id;
        if (!ident_add(reg, (int32_t)id, l->sch, false, NULL))
            rc = st_errstr(errstr, errstr_size, "out of memory");
    }
    free(text);
    if (rc != 0)
        return -1;
    for (size_t i = 0; i < reg->n_locals; i++) {
        if (reg->locals[i].top_level && reg->locals[i].static_id < 0)
            return st_errstr(errstr, errstr_size, "%s: no id for %s (record %s)", path,
                             reg->locals[i].path, reg->locals[i].fullname);
    }
    return 0;
}

static int load_dir(st_avro_registry_t *reg, const char *dir, char *errstr, size_t errstr_size)
{
    char **names = NULL;
    size_t n = 0;
    int rc = scan_dir(dir, &names, &n, errstr, errstr_size);
    if (rc == 0 && !(reg->locals = xcalloc(n, sizeof *reg->locals)))
        rc = st_errstr(errstr, errstr_size, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = load_local(reg, dir, names[i], true, errstr, errstr_size);
    for (size_t i = 0; rc == 0 && i < reg->n_locals; i++) {
        for (size_t k = 0; k < i; k++) {
            if (strcmp(reg->locals[i].fullname, reg->locals[k].fullname) == 0) {
                rc = st_errstr(errstr, errstr_size, "%s and %s both define %s", reg->locals[k].path,
                               reg->locals[i].path, reg->locals[i].fullname);
                break;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

st_avro_registry_t *st_avro_registry_new(const char *schemas_dir, const char *registry_url,
                                         char *errstr, size_t errstr_size)
{
    if (!schemas_dir) {
        st_errstr(errstr, errstr_size, "no schemas dir given");
        return NULL;
    }
    st_avro_registry_t *reg = xcalloc(1, sizeof *reg);
    reg->not_found_retry_ms = 30000;
    if (!reg) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&reg->lock, NULL);
    reg->connect_ms = DEFAULT_CONNECT_MS;
    reg->request_ms = DEFAULT_REQUEST_MS;
    reg->register_retry_ms = DEFAULT_REGISTER_RETRY_MS;
    if (registry_url && *registry_url) {
        if (strncmp(registry_url, "http://", 7) != 0 && strncmp(registry_url, "https://", 8) != 0) {
            st_errstr(errstr, errstr_size,
                      "schema registry URL \"%s\" must start with http:// or https://",
                      registry_url);
            st_avro_registry_destroy(reg);
            return NULL;
        }
        if (!(reg->url = strdup(registry_url)) || curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
            st_errstr(errstr, errstr_size, "cannot initialise libcurl");
            free(reg->url);
            reg->url = NULL;
            st_avro_registry_destroy(reg);
            return NULL;
        }
    }
    if (load_dir(reg, schemas_dir, errstr, errstr_size) != 0 ||
        (!reg->url && load_ids(reg, schemas_dir, errstr, errstr_size) != 0)) {
        st_avro_registry_destroy(reg);
        return NULL;
    }
    return reg;
}

void st_avro_registry_destroy(st_avro_registry_t *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n_ids; i++) {
        if (reg->ids[i].owned)
            sch_free(reg->ids[i].sch);
        free(reg->ids[i].why);
    }
    free(reg->ids);
    for (size_t i = 0; i < reg->n_locals; i++) {
        local_t *l = &reg->locals[i];
        free(l->name);
        free(l->fullname);
        free(l->path);
        free(l->text);
        if (l->avro)
            avro_schema_decref(l->avro);
        sch_free(l->sch);
    }
    free(reg->locals);
    for (size_t i = 0; i < reg->n_subjects; i++)
        free(reg->subjects[i].subject);
    free(reg->subjects);
    if (reg->curl)
        curl_easy_cleanup(reg->curl);
    if (reg->url) {
        curl_global_cleanup();
        free(reg->url);
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

void st_avro_registry_set_timeouts(st_avro_registry_t *reg, long connect_timeout_ms,
                                   long request_timeout_ms)
{
    pthread_mutex_lock(&reg->lock);
    reg->connect_ms = connect_timeout_ms;
    reg->request_ms = request_timeout_ms;
    pthread_mutex_unlock(&reg->lock);
}

void st_avro_registry_set_register_retry_ms(st_avro_registry_t *reg, long ms)
{
    pthread_mutex_lock(&reg->lock);
    reg->register_retry_ms = ms;
    pthread_mutex_unlock(&reg->lock);
}

bool st_avro_registry_is_static(const st_avro_registry_t *reg)
{
    return reg->url == NULL;
}

long st_avro_registry_http_requests(const st_avro_registry_t *reg)
{
    long n;
    pthread_mutex_lock((pthread_mutex_t *)&reg->lock);
    n = reg->http_requests;
    pthread_mutex_unlock((pthread_mutex_t *)&reg->lock);
    return n;
}

void st_avro_registry_set_not_found_retry_ms(st_avro_registry_t *reg, int ms)
{
    pthread_mutex_lock(&reg->lock);
    reg->not_found_retry_ms = ms > 0 ? ms : 1;
    pthread_mutex_unlock(&reg->lock);
}

const char *st_avro_registry_schema_text(const st_avro_registry_t *reg, const char *record_name)
{
    const local_t *l = local_find(reg, record_name);
    return l ? l->text : NULL;
}

/* Checks the 5-byte header; sets *id. */
static int wire_header(const void *data, size_t len, int32_t *id, st_err_t *err)
{
    const uint8_t *b = data;
    if (!data || len < ST_AVRO_HEADER_SIZE) {
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT,
                   "payload too short: %zu bytes, the wire format needs at least %d", len,
                   ST_AVRO_HEADER_SIZE);
        return -1;
    }
    if (b[0] != 0) {
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT,
                   "bad magic byte 0x%02x (expected 0: not the Confluent wire format)", b[0]);
        return -1;
    }
    uint32_t u = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
    if (u > INT32_MAX) {
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT, "unknown schema id %lu (negative)",
                   (unsigned long)u);
        return -1;
    }
    *id = (int32_t)u;
    return 0;
}

json_t *st_avro_registry_decode_json(st_avro_registry_t *reg, const void *data, size_t len,
                                     st_err_t *err)
{
    int32_t id;
    char errbuf[400];
    st_buf_t scratch = ST_BUF_INIT;
    if (wire_header(data, len, &id, err) != 0)
        return NULL;
    const sch_t *w = registry_writer(reg, id, err);
    if (!w)
        return NULL;
    cursor_t c = {(const uint8_t *)data + ST_AVRO_HEADER_SIZE,
                  (const uint8_t *)data + len,
                  &scratch,
                  errbuf,
                  sizeof errbuf,
                  false};
    json_t *j = decode_json(&c, w->root, 0);
    if (j && c.p != c.end)
        cur_fail(&c, "%zu trailing bytes after the record", (size_t)(c.end - c.p));
    if (c.failed || !j) {
        json_decref(j);
        j = NULL;
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT, "schema id %ld: %s", (long)id,
                   c.failed ? errbuf : "out of memory");
    }
    st_buf_free(&scratch);
    return j;
}

/* Codec */

st_avro_codec_t *st_avro_codec_new(st_avro_registry_t *reg, const char *record_name,
                                   const char *topic, char *errstr, size_t errstr_size)
{
    static const char empty[1] = "";
    st_err_t err = {0};
    local_t *l = local_find(reg, record_name);
    if (!l) {
        st_errstr(errstr, errstr_size, "no schema for record %s in the schemas dir",
                  record_name ? record_name : "(null)");
        return NULL;
    }
    st_avro_codec_t *c = xcalloc(1, sizeof *c);
    if (!c) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->reg = reg;
    c->local = l;
    c->id = -1;
    c->size_hint = 256;
    if (topic && st_avro_registry_id_for(reg, record_name, topic, &c->id, &err) != 0) {
        st_errstr(errstr, errstr_size, "%s", err.text);
        st_avro_codec_destroy(c);
        return NULL;
    }
    if (!(c->iface = avro_generic_class_from_schema(l->avro)) ||
        avro_generic_value_new(c->iface, &c->enc_value) != 0 ||
        avro_generic_value_new(c->iface, &c->dec_value) != 0 ||
        !(c->writer = avro_writer_memory(empty, 0))) {
        st_errstr(errstr, errstr_size, "avro-c cannot build values of %s: %s", l->fullname,
                  avro_strerror());
        st_avro_codec_destroy(c);
        return NULL;
    }
    return c;
}

void st_avro_codec_destroy(st_avro_codec_t *codec)
{
    if (!codec)
        return;
    if (codec->enc_value.self)
        avro_value_decref(&codec->enc_value);
    if (codec->dec_value.self)
        avro_value_decref(&codec->dec_value);
    if (codec->iface)
        avro_value_iface_decref(codec->iface);
    if (codec->writer)
        avro_writer_free(codec->writer);
    for (size_t i = 0; i < codec->n_prepared; i++)
        prepared_free(codec->prepared[i]);
    free(codec->prepared);
    st_buf_free(&codec->scratch);
    free(codec);
}

int32_t st_avro_codec_schema_id(const st_avro_codec_t *codec)
{
    return codec->id;
}

avro_schema_t st_avro_codec_schema(const st_avro_codec_t *codec)
{
    return codec->local->avro;
}

avro_value_t *st_avro_codec_record(st_avro_codec_t *codec)
{
    avro_value_reset(&codec->enc_value);
    init_value(codec->local->sch->root, &codec->enc_value, &codec->scratch, 0);
    return &codec->enc_value;
}

int st_avro_codec_encode(st_avro_codec_t *codec, avro_value_t *value, st_buf_t *out, st_err_t *err)
{
    if (codec->id < 0) {
        st_err_set(err, ST_ERR_CONFIG, ST_DISP_PERMANENT,
                   "codec of %s is decode-only (created without a topic)", codec->local->fullname);
        return -1;
    }
    avro_schema_t vs = avro_value_get_schema(value);
    if (vs != codec->local->avro && !avro_schema_equal(vs, codec->local->avro)) {
        st_err_set(err, ST_ERR_AVRO, ST_DISP_PERMANENT, "value of %s given to the codec of %s",
                   avro_schema_type_name(vs), codec->local->fullname);
        return -1;
    }
    st_buf_reset(out);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (st_buf_reserve(out, ST_AVRO_HEADER_SIZE + codec->size_hint) != 0) {
            st_err_set(err, ST_ERR_NOMEM, ST_DISP_RETRY, "out of memory encoding %s",
                       codec->local->fullname);
            return -1;
        }
        uint8_t *b = (uint8_t *)out->data;
        uint32_t id = (uint32_t)codec->id;
        b[0] = 0;
        b[1] = (uint8_t)(id >> 24);
        b[2] = (uint8_t)(id >> 16);
        b[3] = (uint8_t)(id >> 8);
        b[4] = (uint8_t)id;
        avro_writer_memory_set_dest(codec->writer, out->data + ST_AVRO_HEADER_SIZE,
                                    (int64_t)(out->cap - 1 - ST_AVRO_HEADER_SIZE));
        int rc = avro_value_write(codec->writer, value);
        if (rc == 0) {
            out->len = ST_AVRO_HEADER_SIZE + (size_t)avro_writer_tell(codec->writer);
            out->data[out->len] = '\0';
            return 0;
        }
        size_t need = 0;
        if (rc != ENOSPC || attempt > 0 || avro_value_sizeof(value, &need) != 0) {
            st_err_set(err, ST_ERR_AVRO, ST_DISP_PERMANENT, "cannot encode %s: %s",
                       codec->local->fullname, avro_strerror());
            return -1;
        }
        if (need > codec->size_hint)
            codec->size_hint = need;
    }
    st_err_set(err, ST_ERR_INTERNAL, ST_DISP_PERMANENT, "cannot encode %s: buffer sizing",
               codec->local->fullname);
    return -1;
}

static prepared_t *codec_prepared(st_avro_codec_t *codec, int32_t id, st_err_t *err)
{
    if (codec->last && codec->last->id == id)
        return codec->last;
    for (size_t i = 0; i < codec->n_prepared; i++) {
        if (codec->prepared[i]->id == id)
            return codec->last = codec->prepared[i];
    }
    const sch_t *w = registry_writer(codec->reg, id, err);
    if (!w)
        return NULL;
    prepared_t *pp = xcalloc(1, sizeof *pp);
    if (!pp ||
        grow((void **)&codec->prepared, &codec->cap_prepared, codec->n_prepared + 1,
             sizeof *codec->prepared) != 0 ||
        !(pp->root = plan_build(pp, w->root, codec->local->sch->root, 0))) {
        prepared_free(pp);
        st_err_set(err, ST_ERR_NOMEM, ST_DISP_RETRY, "out of memory preparing schema id %ld",
                   (long)id);
        return NULL;
    }
    pp->id = id;
    codec->prepared[codec->n_prepared++] = pp;
    return codec->last = pp;
}

int st_avro_codec_decode(st_avro_codec_t *codec, const void *data, size_t len, avro_value_t **out,
                         st_err_t *err)
{
    int32_t id;
    char errbuf[400];
    if (wire_header(data, len, &id, err) != 0)
        return -1;
    prepared_t *pp = codec_prepared(codec, id, err);
    if (!pp)
        return -1;
    avro_value_reset(&codec->dec_value);
    cursor_t c = {(const uint8_t *)data + ST_AVRO_HEADER_SIZE,
                  (const uint8_t *)data + len,
                  &codec->scratch,
                  errbuf,
                  sizeof errbuf,
                  false};
    if (decode_plan(&c, pp->root, &codec->dec_value) == 0 && c.p != c.end)
        cur_fail(&c, "%zu trailing bytes after the record", (size_t)(c.end - c.p));
    if (c.failed) {
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT, "schema id %ld as %s: %s", (long)id,
                   codec->local->fullname, errbuf);
        return -1;
    }
    *out = &codec->dec_value;
    return 0;
}

/* Field helpers */

/* The field's value, or its branch of type want when the field is a union. */
static int leaf_set(avro_value_t *rec, const char *field, avro_type_t want, avro_value_t *leaf)
{
    avro_value_t v;
    if (!rec || !field || avro_value_get_by_name(rec, field, &v, NULL) != 0)
        return -1;
    avro_type_t t = avro_value_get_type(&v);
    if (t == want) {
        *leaf = v;
        return 0;
    }
    if (t != AVRO_UNION)
        return -1;
    avro_schema_t us = avro_value_get_schema(&v);
    size_t n = avro_schema_union_size(us);
    for (size_t i = 0; i < n; i++) {
        if (avro_typeof(avro_schema_union_branch(us, (int)i)) == want)
            return avro_value_set_branch(&v, (int)i, leaf) == 0 ? 0 : -1;
    }
    return -1;
}

/* The field's value, or its current branch when the field is a union; *is_null for null. */
static int leaf_get(const avro_value_t *rec, const char *field, avro_type_t want,
                    avro_value_t *leaf, bool *is_null)
{
    avro_value_t v;
    *is_null = false;
    if (!rec || !field || avro_value_get_by_name(rec, field, &v, NULL) != 0)
        return -1;
    if (avro_value_get_type(&v) == AVRO_UNION) {
        if (avro_value_get_current_branch(&v, &v) != 0)
            return -1;
        if (avro_value_get_type(&v) == AVRO_NULL) {
            /* Null is only an answer when the union could hold the wanted type. */
            avro_value_t parent;
            avro_value_get_by_name(rec, field, &parent, NULL);
            avro_schema_t us = avro_value_get_schema(&parent);
            for (size_t i = 0; i < avro_schema_union_size(us); i++) {
                if (avro_typeof(avro_schema_union_branch(us, (int)i)) == want) {
                    *is_null = true;
                    return 0;
                }
            }
            return -1;
        }
    }
    if (avro_value_get_type(&v) != want)
        return -1;
    *leaf = v;
    return 0;
}

int st_avro_set_string(avro_value_t *rec, const char *field, const char *s)
{
    return s ? st_avro_set_string_len(rec, field, s, strlen(s)) : -1;
}

int st_avro_set_string_len(avro_value_t *rec, const char *field, const char *s, size_t len)
{
    avro_value_t leaf;
    char small[256];
    if (!s || leaf_set(rec, field, AVRO_STRING, &leaf) != 0)
        return -1;
    /* avro-c wants the NUL counted and present; s[len] may lie outside the caller's buffer. */
    char *copy = len < sizeof small ? small : malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, s, len);
    copy[len] = '\0';
    int rc = avro_value_set_string_len(&leaf, copy, len + 1);
    if (copy != small)
        free(copy);
    return rc == 0 ? 0 : -1;
}

int st_avro_set_null(avro_value_t *rec, const char *field)
{
    avro_value_t leaf;
    if (leaf_set(rec, field, AVRO_NULL, &leaf) != 0)
        return -1;
    return avro_value_set_null(&leaf) == 0 ? 0 : -1;
}

int st_avro_set_nullable_string(avro_value_t *rec, const char *field, const char *s_or_null)
{
    return s_or_null ? st_avro_set_string(rec, field, s_or_null) : st_avro_set_null(rec, field);
}

int st_avro_set_bytes(avro_value_t *rec, const char *field, const void *data, size_t len)
{
    avro_value_t leaf;
    if ((!data && len) || leaf_set(rec, field, AVRO_BYTES, &leaf) != 0)
        return -1;
    return avro_value_set_bytes(&leaf, (void *)(data ? data : ""), len) == 0 ? 0 : -1;
}

int st_avro_set_nullable_bytes(avro_value_t *rec, const char *field, const void *data_or_null,
                               size_t len)
{
    return data_or_null ? st_avro_set_bytes(rec, field, data_or_null, len)
                        : st_avro_set_null(rec, field);
}

int st_avro_set_long(avro_value_t *rec, const char *field, int64_t v)
{
    avro_value_t leaf;
    if (leaf_set(rec, field, AVRO_INT64, &leaf) != 0)
        return -1;
    return avro_value_set_long(&leaf, v) == 0 ? 0 : -1;
}

int st_avro_set_nullable_long(avro_value_t *rec, const char *field, const int64_t *v_or_null)
{
    return v_or_null ? st_avro_set_long(rec, field, *v_or_null) : st_avro_set_null(rec, field);
}

int st_avro_set_int(avro_value_t *rec, const char *field, int32_t v)
{
    avro_value_t leaf;
    if (leaf_set(rec, field, AVRO_INT32, &leaf) != 0)
        return -1;
    return avro_value_set_int(&leaf, v) == 0 ? 0 : -1;
}

int st_avro_set_nullable_int(avro_value_t *rec, const char *field, const int32_t *v_or_null)
{
    return v_or_null ? st_avro_set_int(rec, field, *v_or_null) : st_avro_set_null(rec, field);
}

int st_avro_set_double(avro_value_t *rec, const char *field, double v)
{
    avro_value_t leaf;
    if (leaf_set(rec, field, AVRO_DOUBLE, &leaf) != 0)
        return -1;
    return avro_value_set_double(&leaf, v) == 0 ? 0 : -1;
}

int st_avro_set_nullable_double(avro_value_t *rec, const char *field, const double *v_or_null)
{
    return v_or_null ? st_avro_set_double(rec, field, *v_or_null) : st_avro_set_null(rec, field);
}

int st_avro_set_boolean(avro_value_t *rec, const char *field, bool v)
{
    avro_value_t leaf;
    if (leaf_set(rec, field, AVRO_BOOLEAN, &leaf) != 0)
        return -1;
    return avro_value_set_boolean(&leaf, v) == 0 ? 0 : -1;
}

int st_avro_set_enum(avro_value_t *rec, const char *field, const char *symbol)
{
    avro_value_t leaf;
    if (!symbol || leaf_set(rec, field, AVRO_ENUM, &leaf) != 0)
        return -1;
    int idx = avro_schema_enum_get_by_name(avro_value_get_schema(&leaf), symbol);
    if (idx < 0)
        return -1;
    return avro_value_set_enum(&leaf, idx) == 0 ? 0 : -1;
}

/* The array field, checked to hold items of type item. */
static int array_leaf(avro_value_t *rec, const char *field, avro_type_t item, avro_value_t *leaf)
{
    if (leaf_set(rec, field, AVRO_ARRAY, leaf) != 0)
        return -1;
    return avro_typeof(avro_schema_array_items(avro_value_get_schema(leaf))) == item ? 0 : -1;
}

int st_avro_set_string_array(avro_value_t *rec, const char *field, const char *const *items,
                             size_t n)
{
    avro_value_t leaf, child;
    if ((!items && n) || array_leaf(rec, field, AVRO_STRING, &leaf) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!items[i])
            return -1;
    }
    avro_value_reset(&leaf);
    for (size_t i = 0; i < n; i++) {
        if (avro_value_append(&leaf, &child, NULL) != 0 ||
            avro_value_set_string(&child, items[i]) != 0)
            return -1;
    }
    return 0;
}

int st_avro_set_double_array(avro_value_t *rec, const char *field, const double *items, size_t n)
{
    avro_value_t leaf, child;
    if ((!items && n) || array_leaf(rec, field, AVRO_DOUBLE, &leaf) != 0)
        return -1;
    avro_value_reset(&leaf);
    for (size_t i = 0; i < n; i++) {
        if (avro_value_append(&leaf, &child, NULL) != 0 ||
            avro_value_set_double(&child, items[i]) != 0)
            return -1;
    }
    return 0;
}

int st_avro_set_long_array(avro_value_t *rec, const char *field, const int64_t *items, size_t n)
{
    avro_value_t leaf, child;
    if ((!items && n) || array_leaf(rec, field, AVRO_INT64, &leaf) != 0)
        return -1;
    avro_value_reset(&leaf);
    for (size_t i = 0; i < n; i++) {
        if (avro_value_append(&leaf, &child, NULL) != 0 ||
            avro_value_set_long(&child, items[i]) != 0)
            return -1;
    }
    return 0;
}

int st_avro_set_int_array(avro_value_t *rec, const char *field, const int32_t *items, size_t n)
{
    avro_value_t leaf, child;
    if ((!items && n) || array_leaf(rec, field, AVRO_INT32, &leaf) != 0)
        return -1;
    avro_value_reset(&leaf);
    for (size_t i = 0; i < n; i++) {
        if (avro_value_append(&leaf, &child, NULL) != 0 ||
            avro_value_set_int(&child, items[i]) != 0)
            return -1;
    }
    return 0;
}

int st_avro_get_nullable_string(const avro_value_t *rec, const char *field, const char **s,
                                size_t *len, bool *is_null)
{
    avro_value_t leaf;
    const char *p;
    size_t size;
    if (leaf_get(rec, field, AVRO_STRING, &leaf, is_null) != 0)
        return -1;
    if (*is_null)
        return 0;
    if (avro_value_get_string(&leaf, &p, &size) != 0)
        return -1;
    *s = p ? p : "";
    if (len)
        *len = size ? size - 1 : 0;
    return 0;
}

int st_avro_get_string(const avro_value_t *rec, const char *field, const char **s, size_t *len)
{
    bool is_null;
    const char *p;
    if (st_avro_get_nullable_string(rec, field, &p, len, &is_null) != 0 || is_null)
        return -1;
    *s = p;
    return 0;
}

int st_avro_get_nullable_bytes(const avro_value_t *rec, const char *field, const void **data,
                               size_t *len, bool *is_null)
{
    avro_value_t leaf;
    const void *p;
    size_t size;
    if (leaf_get(rec, field, AVRO_BYTES, &leaf, is_null) != 0)
        return -1;
    if (*is_null)
        return 0;
    if (avro_value_get_bytes(&leaf, &p, &size) != 0)
        return -1;
    *data = p ? p : "";
    if (len)
        *len = size;
    return 0;
}

int st_avro_get_bytes(const avro_value_t *rec, const char *field, const void **data, size_t *len)
{
    bool is_null;
    const void *p;
    if (st_avro_get_nullable_bytes(rec, field, &p, len, &is_null) != 0 || is_null)
        return -1;
    *data = p;
    return 0;
}

int st_avro_get_nullable_long(const avro_value_t *rec, const char *field, int64_t *out,
                              bool *is_null)
{
    avro_value_t leaf;
    if (leaf_get(rec, field, AVRO_INT64, &leaf, is_null) != 0)
        return -1;
    return *is_null || avro_value_get_long(&leaf, out) == 0 ? 0 : -1;
}

int st_avro_get_long(const avro_value_t *rec, const char *field, int64_t *out)
{
    bool is_null;
    int64_t v;
    if (st_avro_get_nullable_long(rec, field, &v, &is_null) != 0 || is_null)
        return -1;
    *out = v;
    return 0;
}

int st_avro_get_nullable_int(const avro_value_t *rec, const char *field, int32_t *out,
                             bool *is_null)
{
    avro_value_t leaf;
    if (leaf_get(rec, field, AVRO_INT32, &leaf, is_null) != 0)
        return -1;
    return *is_null || avro_value_get_int(&leaf, out) == 0 ? 0 : -1;
}

int st_avro_get_int(const avro_value_t *rec, const char *field, int32_t *out)
{
    bool is_null;
    int32_t v;
    if (st_avro_get_nullable_int(rec, field, &v, &is_null) != 0 || is_null)
        return -1;
    *out = v;
    return 0;
}

int st_avro_get_nullable_double(const avro_value_t *rec, const char *field, double *out,
                                bool *is_null)
{
    avro_value_t leaf;
    if (leaf_get(rec, field, AVRO_DOUBLE, &leaf, is_null) != 0)
        return -1;
    return *is_null || avro_value_get_double(&leaf, out) == 0 ? 0 : -1;
}

int st_avro_get_double(const avro_value_t *rec, const char *field, double *out)
{
    bool is_null;
    double v;
    if (st_avro_get_nullable_double(rec, field, &v, &is_null) != 0 || is_null)
        return -1;
    *out = v;
    return 0;
}

int st_avro_get_boolean(const avro_value_t *rec, const char *field, bool *out)
{
    avro_value_t leaf;
    bool is_null;
    int b;
    if (leaf_get(rec, field, AVRO_BOOLEAN, &leaf, &is_null) != 0 || is_null ||
        avro_value_get_boolean(&leaf, &b) != 0)
        return -1;
    *out = b != 0;
    return 0;
}

int st_avro_get_enum(const avro_value_t *rec, const char *field, const char **symbol)
{
    avro_value_t leaf;
    bool is_null;
    int idx;
    if (leaf_get(rec, field, AVRO_ENUM, &leaf, &is_null) != 0 || is_null ||
        avro_value_get_enum(&leaf, &idx) != 0 || idx < 0 ||
        idx >= avro_schema_enum_number_of_symbols(avro_value_get_schema(&leaf)))
        return -1;
    const char *s = avro_schema_enum_get(avro_value_get_schema(&leaf), idx);
    if (!s)
        return -1;
    *symbol = s;
    return 0;
}

int st_avro_get_array_size(const avro_value_t *rec, const char *field, size_t *n)
{
    avro_value_t leaf;
    bool is_null;
    if (leaf_get(rec, field, AVRO_ARRAY, &leaf, &is_null) != 0 || is_null)
        return -1;
    return avro_value_get_size(&leaf, n) == 0 ? 0 : -1;
}

static int array_item(const avro_value_t *rec, const char *field, size_t i, avro_type_t want,
                      avro_value_t *item)
{
    avro_value_t leaf;
    bool is_null;
    size_t n;
    if (leaf_get(rec, field, AVRO_ARRAY, &leaf, &is_null) != 0 || is_null ||
        avro_value_get_size(&leaf, &n) != 0 || i >= n ||
        avro_value_get_by_index(&leaf, i, item, NULL) != 0)
        return -1;
    return avro_value_get_type(item) == want ? 0 : -1;
}

int st_avro_get_string_item(const avro_value_t *rec, const char *field, size_t i, const char **s,
                            size_t *len)
{
    avro_value_t item;
    const char *p;
    size_t size;
    if (array_item(rec, field, i, AVRO_STRING, &item) != 0 ||
        avro_value_get_string(&item, &p, &size) != 0)
        return -1;
    *s = p ? p : "";
    if (len)
        *len = size ? size - 1 : 0;
    return 0;
}

int st_avro_get_double_item(const avro_value_t *rec, const char *field, size_t i, double *out)
{
    avro_value_t item;
    if (array_item(rec, field, i, AVRO_DOUBLE, &item) != 0)
        return -1;
    return avro_value_get_double(&item, out) == 0 ? 0 : -1;
}

int st_avro_get_long_item(const avro_value_t *rec, const char *field, size_t i, int64_t *out)
{
    avro_value_t item;
    if (array_item(rec, field, i, AVRO_INT64, &item) != 0)
        return -1;
    return avro_value_get_long(&item, out) == 0 ? 0 : -1;
}

int st_avro_get_int_item(const avro_value_t *rec, const char *field, size_t i, int32_t *out)
{
    avro_value_t item;
    if (array_item(rec, field, i, AVRO_INT32, &item) != 0)
        return -1;
    return avro_value_get_int(&item, out) == 0 ? 0 : -1;
}

int st_avro_copy_common_fields(avro_value_t *dst, const avro_value_t *src)
{
    size_t n;
    int copied = 0;
    if (!dst || !src || avro_value_get_type(dst) != AVRO_RECORD ||
        avro_value_get_type(src) != AVRO_RECORD || avro_value_get_size(dst, &n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        avro_value_t d, s;
        const char *name;
        if (avro_value_get_by_index(dst, i, &d, &name) != 0)
            return -1;
        if (avro_value_get_by_name(src, name, &s, NULL) != 0)
            continue;
        if (!avro_schema_equal(avro_value_get_schema(&d), avro_value_get_schema(&s)))
            continue;
        if (avro_value_copy_fast(&d, &s) != 0)
            return -1;
        copied++;
    }
    return copied;
}
