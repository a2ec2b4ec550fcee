/* st_avro_schema.c - our own view of a schema, parsed from its .avsc JSON text (avro-c keeps no
 * field defaults), and the resolution plans that read a writer type into a reader type. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_avro_impl.h"

static const char *const kind_names[] = {"null",   "boolean", "int",    "long",  "float",
                                         "double", "bytes",   "string", "fixed", "enum",
                                         "array",  "map",     "record", "union"};

void *st_avro__calloc(size_t n, size_t size)
{
    return calloc(n ? n : 1, size ? size : 1);
}

int st_avro__grow(void **arr, size_t *cap, size_t need, size_t elem)
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

void st_avro__sch_free(sch_t *s)
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
    if (st_avro__grow((void **)&s->nodes, &s->cap_nodes, s->n_nodes + 1, sizeof *s->nodes) != 0)
        return NULL;
    node_t *n = st_avro__calloc(1, sizeof *n);
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

static bool record_default_ok(const node_t *n, const json_t *j)
{
    if (!json_is_object(j))
        return false;
    for (size_t i = 0; i < n->n_fields; i++) {
        const json_t *v = json_object_get(j, n->fields[i].name);
        if (v ? !st_avro__default_ok(n->fields[i].type, v) : !n->fields[i].dflt)
            return false;
    }
    return true;
}

bool st_avro__default_ok(const node_t *n, const json_t *j)
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
            if (!st_avro__default_ok(n->items, v))
                return false;
        }
        return true;
    case K_MAP:
        if (!json_is_object(j))
            return false;
        json_object_foreach((json_t *)j, key, v)
        {
            if (!st_avro__default_ok(n->items, v))
                return false;
        }
        return true;
    case K_RECORD:
        return record_default_ok(n, j);
    case K_UNION:
        for (i = 0; i < n->n_branches; i++) {
            if (st_avro__default_ok(n->branches[i], j))
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
    n->fields = st_avro__calloc(json_array_size(fields), sizeof *n->fields);
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
        if (fld->dflt && !st_avro__default_ok(fld->type, fld->dflt))
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
    n->symbols = st_avro__calloc(json_array_size(syms), sizeof *n->symbols);
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
        n->branches = st_avro__calloc(json_array_size(j), sizeof *n->branches);
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
sch_t *st_avro__sch_parse(const char *text, size_t len, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    sch_t *s = st_avro__calloc(1, sizeof *s);
    if (!s) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->json = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    if (!s->json) {
        st_errstr(errstr, errstr_size, "bad JSON at line %d: %s", jerr.line, jerr.text);
        st_avro__sch_free(s);
        return NULL;
    }
    perr_t pe = {errstr, errstr_size};
    s->root = parse_node(s, s->json, "", 0, &pe);
    if (!s->root) {
        st_avro__sch_free(s);
        return NULL;
    }
    for (size_t i = 0; i < s->n_nodes; i++)
        s->nodes[i]->min_size = min_size(s->nodes[i], 0);
    return s;
}

/* Resolution plans */

static plan_t *plan_new(prepared_t *pp, op_t op, const node_t *w, const node_t *r)
{
    if (st_avro__grow((void **)&pp->plans, &pp->cap_plans, pp->n_plans + 1, sizeof *pp->plans) != 0)
        return NULL;
    plan_t *p = st_avro__calloc(1, sizeof *p);
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

static plan_t *plan_record(prepared_t *pp, const node_t *w, const node_t *r, int depth)
{
    plan_t *p = plan_new(pp, OP_RECORD, w, r);
    if (!p)
        return NULL;
    p->wfields = st_avro__calloc(w->n_fields, sizeof *p->wfields);
    p->defaults = st_avro__calloc(r->n_fields, sizeof *p->defaults);
    bool *seen = st_avro__calloc(r->n_fields, sizeof *seen);
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
                pf->plan = st_avro__plan_build(pp, w->fields[i].type, r->fields[k].type, depth + 1);
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

plan_t *st_avro__plan_build(prepared_t *pp, const node_t *w, const node_t *r, int depth)
{
    if (depth > MAX_SCHEMA_DEPTH)
        return plan_fail(pp, w, r, "schema %s -> %s nested too deep (recursive?)", node_desc(w),
                         node_desc(r));
    if (w->kind == K_UNION) {
        plan_t *p = plan_new(pp, OP_WRITER_UNION, w, r);
        if (!p || !(p->branches = st_avro__calloc(w->n_branches, sizeof *p->branches)))
            return NULL;
        for (size_t i = 0; i < w->n_branches; i++) {
            if (!(p->branches[i] = st_avro__plan_build(pp, w->branches[i], r, depth + 1)))
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
        p->inner = st_avro__plan_build(pp, w, r->branches[pick], depth + 1);
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
        if (!(p->enum_map = st_avro__calloc(w->n_symbols, sizeof *p->enum_map)))
            return NULL;
        for (size_t i = 0; i < w->n_symbols; i++) {
            p->enum_map[i] = -1;
            for (size_t k = 0; k < r->n_symbols; k++) {
                if (strcmp(w->symbols[i], r->symbols[k]) == 0)
                    p->enum_map[i] = (int)k;
            }
        }
    } else if (op == OP_ARRAY || op == OP_MAP) {
        if (!(p->items = st_avro__plan_build(pp, w->items, r->items, depth + 1)))
            return NULL;
    }
    return p;
}

void st_avro__prepared_free(prepared_t *pp)
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
