/* st_avro_json.c - rendering to JSON: bytes and strings as JSON strings, avro-c values as
 * JSON values. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "st_avro_impl.h"

json_t *st_avro__json_latin1(const uint8_t *b, size_t len)
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

json_t *st_avro__json_utf8(const char *s, size_t len)
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

json_t *st_avro__json_double(double d)
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
        return avro_value_get_float(v, &f) ? NULL : st_avro__json_double(f);
    case AVRO_DOUBLE:
        return avro_value_get_double(v, &d) ? NULL : st_avro__json_double(d);
    case AVRO_STRING:
        if (avro_value_get_string(v, (const char **)&buf, &size) != 0)
            return NULL;
        return st_avro__json_utf8(buf, size ? size - 1 : 0);
    case AVRO_BYTES:
        return avro_value_get_bytes(v, &buf, &size) ? NULL : st_avro__json_latin1(buf, size);
    case AVRO_FIXED:
        return avro_value_get_fixed(v, &buf, &size) ? NULL : st_avro__json_latin1(buf, size);
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
