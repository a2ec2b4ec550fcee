/* st_avro.c - the codec (the Confluent wire format: encoding with avro-c, decoding through our
 * bounds-checked reader) and the field helpers. The pieces: st_avro_impl.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "st_avro_impl.h"

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

/* Codec */

st_avro_codec_t *st_avro_codec_new(st_avro_registry_t *reg, const char *record_name,
                                   const char *topic, char *errstr, size_t errstr_size)
{
    static const char empty[1] = "";
    st_err_t err = {0};
    local_t *l = st_avro__local_find(reg, record_name);
    if (!l) {
        st_errstr(errstr, errstr_size, "no schema for record %s in the schemas dir",
                  record_name ? record_name : "(null)");
        return NULL;
    }
    st_avro_codec_t *c = st_avro__calloc(1, sizeof *c);
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
        st_avro__prepared_free(codec->prepared[i]);
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
    st_avro__init_value(codec->local->sch->root, &codec->enc_value, &codec->scratch, 0);
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
    const sch_t *w = st_avro__registry_writer(codec->reg, id, err);
    if (!w)
        return NULL;
    prepared_t *pp = st_avro__calloc(1, sizeof *pp);
    if (!pp ||
        st_avro__grow((void **)&codec->prepared, &codec->cap_prepared, codec->n_prepared + 1,
                      sizeof *codec->prepared) != 0 ||
        !(pp->root = st_avro__plan_build(pp, w->root, codec->local->sch->root, 0))) {
        st_avro__prepared_free(pp);
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
    if (st_avro__wire_header(data, len, &id, err) != 0)
        return -1;
    prepared_t *pp = codec_prepared(codec, id, err);
    if (!pp)
        return -1;
    avro_value_reset(&codec->dec_value);
    cursor_t c = {.p = (const uint8_t *)data + ST_AVRO_HEADER_SIZE,
                  .end = (const uint8_t *)data + len,
                  .scratch = &codec->scratch,
                  .errbuf = errbuf,
                  .errsize = sizeof errbuf};
    if (st_avro__decode_plan(&c, pp->root, &codec->dec_value) == 0 && c.p != c.end)
        st_avro__cur_fail(&c, "%zu trailing bytes after the record", (size_t)(c.end - c.p));
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
