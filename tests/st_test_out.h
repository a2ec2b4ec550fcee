/* st_test_out.h - a service core's outputs (an st_out_t outside a pipeline) as comparable text,
 * for tests that check a rerun produces byte-identical records. */
#ifndef ST_TEST_OUT_H
#define ST_TEST_OUT_H

#include <string.h>

#include "st_buf.h"
#include "st_pipeline.h"

/* One line per output: "<topic>|<key>|<value bytes in hex>". A dead letter (on dlq_topic, JSON)
 * is cut before its failed_at_ms, which is the wall clock. Returns a malloc'ed string. */
static inline char *st_test_out_text(const st_out_t *out, const char *dlq_topic)
{
    st_buf_t b = ST_BUF_INIT;
    for (size_t i = 0; i < st_out_count(out); i++) {
        st_out_rec_t r = st_out_record(out, i);
        st_buf_printf(&b, "%s|%.*s|", r.topic, (int)r.key_len, (const char *)r.key);
        const char *v = r.value;
        size_t len = r.value_len;
        const char *at = strcmp(r.topic, dlq_topic) == 0 ? strstr(v, "\"failed_at_ms\"") : NULL;
        if (at)
            len = (size_t)(at - v);
        for (size_t k = 0; k < len; k++)
            st_buf_printf(&b, "%02x", (unsigned char)v[k]);
        st_buf_append(&b, "\n", 1);
    }
    st_buf_append(&b, "", 1);
    return b.data;
}

#endif
