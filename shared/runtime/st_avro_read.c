/* st_avro_read.c - the bounds-checked reader of untrusted Avro binary: decoding through a
 * resolution plan into a reader value (filling JSON defaults), and straight to JSON. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_avro_impl.h"

/* Items whose type takes no bytes (null, {}, fixed of 0) in one whole record: they cost nothing
 * to send, so only this bounds the time (and memory) a small record can make a decode take. */
#define MAX_ZERO_SIZE_ITEMS (1 << 16)

/* Binary reading, bounds-checked */

int st_avro__cur_fail(cursor_t *c, const char *fmt, ...)
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
            return st_avro__cur_fail(c, "truncated body: a number runs past the end");
        uint8_t b = *c->p++;
        if (shift == 63 && (b & 0x7e))
            return st_avro__cur_fail(c, "malformed body: a number longer than 64 bits");
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    return st_avro__cur_fail(c, "malformed body: a number longer than 10 bytes");
}

static int rd_int(cursor_t *c, int32_t *out)
{
    int64_t v;
    *out = 0;
    if (rd_long(c, &v) != 0)
        return -1;
    if (v < INT32_MIN || v > INT32_MAX)
        return st_avro__cur_fail(c, "malformed body: int out of range (%lld)", (long long)v);
    *out = (int32_t)v;
    return 0;
}

static int rd_raw(cursor_t *c, size_t n, const uint8_t **out)
{
    *out = c->p;
    if ((size_t)(c->end - c->p) < n)
        return st_avro__cur_fail(c, "truncated body: %zu bytes needed, %zu left", n,
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
        return st_avro__cur_fail(c, "malformed body: negative length %lld", (long long)n);
    if ((uint64_t)n > (uint64_t)(c->end - c->p))
        return st_avro__cur_fail(c, "truncated body: a length of %lld exceeds the %zu bytes left",
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
            return st_avro__cur_fail(c, "malformed body: bad block count");
        *count = -*count;
        if (rd_long(c, &size) != 0)
            return -1;
    }
    size_t each = items->min_size + (map ? 1 : 0);
    if (each > 0 && (uint64_t)*count > (uint64_t)(c->end - c->p) / each)
        return st_avro__cur_fail(
            c, "truncated body: a block of %lld items needs more than the %zu bytes left",
            (long long)*count, (size_t)(c->end - c->p));
    if (each == 0 && (*count > MAX_ZERO_SIZE_ITEMS - c->zero_items))
        return st_avro__cur_fail(c, "malformed body: more than %d items of a zero-size type",
                                 MAX_ZERO_SIZE_ITEMS);
    if (each == 0)
        c->zero_items += *count;
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
            return st_avro__cur_fail(c, "malformed body: union branch %lld of %zu", (long long)v,
                                     n->n_branches);
        return skip_value(c, n->branches[v]);
    }
    return st_avro__cur_fail(c, "internal: unknown kind");
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
    return st_avro__cur_fail(c, "avro-c: %s (%s)", avro_strerror(), strerror(rc));
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

/* Sets v (freshly reset) to the JSON default j of type n; j was checked by st_avro__default_ok. */
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
                    : st_avro__init_value(n->fields[i].type, &child, scratch, depth + 1)) != 0)
                return -1;
        }
        return 0;
    case K_UNION:
        for (i = 0; i < n->n_branches; i++) {
            if (st_avro__default_ok(n->branches[i], j))
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
int st_avro__init_value(const node_t *n, avro_value_t *v, st_buf_t *scratch, int depth)
{
    avro_value_t child;
    if (depth > MAX_SCHEMA_DEPTH)
        return -1;
    if (n->kind == K_RECORD) {
        for (size_t i = 0; i < n->n_fields; i++) {
            const field_t *f = &n->fields[i];
            if (avro_value_get_by_index(v, i, &child, NULL) != 0 ||
                (f->dflt ? set_default(f->type, f->dflt, &child, scratch, depth + 1)
                         : st_avro__init_value(f->type, &child, scratch, depth + 1)) != 0)
                return -1;
        }
    } else if (n->kind == K_UNION) {
        if (avro_value_set_branch(v, 0, &child) != 0)
            return -1;
        return st_avro__init_value(n->branches[0], &child, scratch, depth + 1);
    }
    return 0;
}

/* Decodes one writer value following plan p into the reader value dst. */
int st_avro__decode_plan(cursor_t *c, const plan_t *p, avro_value_t *dst)
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
            return st_avro__cur_fail(c, "malformed body: boolean byte 0x%02x", *b);
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
            return st_avro__cur_fail(c, "out of memory");
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
            return st_avro__cur_fail(c, "malformed body: enum %s index %lld of %zu", p->w->fullname,
                                     (long long)i64, p->w->n_symbols);
        int ri = p->enum_map[i64];
        if (ri < 0)
            ri = p->r->enum_default;
        if (ri < 0)
            return st_avro__cur_fail(c, "enum %s: writer symbol %s is unknown to the reader",
                                     p->r->fullname, p->w->symbols[i64]);
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
                        return st_avro__cur_fail(c, "out of memory");
                    rc = avro_value_add(dst, key, &child, NULL, NULL);
                } else {
                    rc = avro_value_append(dst, &child, NULL);
                }
                if (rc != 0)
                    return avro_fail(c, rc);
                if (st_avro__decode_plan(c, p->items, &child) != 0)
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
            if (st_avro__decode_plan(c, pf->plan, &child) != 0)
                return -1;
        }
        for (size_t i = 0; i < p->n_defaults; i++) {
            const field_t *fld = p->defaults[i].field;
            if (avro_value_get_by_index(dst, (size_t)p->defaults[i].reader_index, &child, NULL) !=
                    0 ||
                set_default(fld->type, fld->dflt, &child, c->scratch, 0) != 0)
                return st_avro__cur_fail(c, "cannot set the default of %s.%s", p->r->fullname,
                                         fld->name);
        }
        break;
    case OP_WRITER_UNION:
        if (rd_long(c, &i64) != 0)
            return -1;
        if (i64 < 0 || (uint64_t)i64 >= p->n_branches)
            return st_avro__cur_fail(c, "malformed body: union branch %lld of %zu", (long long)i64,
                                     p->n_branches);
        return st_avro__decode_plan(c, p->branches[i64], dst);
    case OP_TO_BRANCH:
        if ((rc = avro_value_set_branch(dst, p->reader_branch, &child)) != 0)
            return avro_fail(c, rc);
        return st_avro__decode_plan(c, p->inner, &child);
    case OP_FAIL:
        return st_avro__cur_fail(c, "%s", p->error);
    }
    return rc != 0 ? avro_fail(c, rc) : 0;
}

/* Decodes writer bytes of type n straight to JSON (no reader schema). */
json_t *st_avro__decode_json(cursor_t *c, const node_t *n, int depth)
{
    const uint8_t *b;
    size_t len;
    int32_t i32;
    int64_t i64, count;
    float f;
    double d;
    json_t *j, *item;
    if (depth > MAX_SCHEMA_DEPTH) {
        st_avro__cur_fail(c, "schema nested too deep");
        return NULL;
    }
    switch (n->kind) {
    case K_NULL:
        return json_null();
    case K_BOOLEAN:
        if (rd_raw(c, 1, &b) != 0)
            return NULL;
        if (*b > 1) {
            st_avro__cur_fail(c, "malformed body: boolean byte 0x%02x", *b);
            return NULL;
        }
        return json_boolean(*b);
    case K_INT:
        return rd_int(c, &i32) ? NULL : json_integer(i32);
    case K_LONG:
        return rd_long(c, &i64) ? NULL : json_integer(i64);
    case K_FLOAT:
        return rd_float(c, &f) ? NULL : st_avro__json_double(f);
    case K_DOUBLE:
        return rd_double(c, &d) ? NULL : st_avro__json_double(d);
    case K_STRING:
        return rd_len_bytes(c, &b, &len) ? NULL : st_avro__json_utf8((const char *)b, len);
    case K_BYTES:
        return rd_len_bytes(c, &b, &len) ? NULL : st_avro__json_latin1(b, len);
    case K_FIXED:
        return rd_raw(c, n->fixed_size, &b) ? NULL : st_avro__json_latin1(b, n->fixed_size);
    case K_ENUM:
        if (rd_long(c, &i64) != 0)
            return NULL;
        if (i64 < 0 || (uint64_t)i64 >= n->n_symbols) {
            st_avro__cur_fail(c, "malformed body: enum index %lld of %zu", (long long)i64,
                              n->n_symbols);
            return NULL;
        }
        return json_string(n->symbols[i64]);
    case K_UNION:
        if (rd_long(c, &i64) != 0)
            return NULL;
        if (i64 < 0 || (uint64_t)i64 >= n->n_branches) {
            st_avro__cur_fail(c, "malformed body: union branch %lld of %zu", (long long)i64,
                              n->n_branches);
            return NULL;
        }
        return st_avro__decode_json(c, n->branches[i64], depth + 1);
    case K_RECORD:
        if (!(j = json_object()))
            return NULL;
        for (size_t i = 0; i < n->n_fields; i++) {
            if (!(item = st_avro__decode_json(c, n->fields[i].type, depth + 1)) ||
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
                if (!(item = st_avro__decode_json(c, n->items, depth + 1))) {
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
