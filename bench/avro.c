/* bench-avro: records/s of st_avro encode and decode (static ids) for Listen and SessionEvent,
 * filled through the by-name helpers as a service would. Prints figures; never fails on time. */
#include "st_avro.h"
#include "st_time.h"

#include <stdio.h>
#include <stdlib.h>

#define N_RECORDS 200000

static int fill_listen(avro_value_t *rec, int i)
{
    char user[32];
    snprintf(user, sizeof user, "user_%06d", i % 1000);
    return st_avro_set_string(rec, "event_id", "9f86d081884c7d65") |
           st_avro_set_string(rec, "user_id", user) |
           st_avro_set_long(rec, "listened_at_ms", 1241478537000LL + i) |
           st_avro_set_string(rec, "artist_name", "Boards of Canada") |
           st_avro_set_string(rec, "track_name", "Roygbiv") |
           st_avro_set_nullable_string(rec, "artist_mbid", "69158f97-4c07-4c4e-baf8-4e4ab1ed666e") |
           st_avro_set_nullable_string(rec, "track_mbid", NULL) |
           st_avro_set_string(rec, "track_key", "boards of canada\troygbiv");
}

static int fill_session(avro_value_t *rec, int i)
{
    double recent[8] = {600, 1200, 30, 4000, 75, 900, 1800, 2400};
    double mean = 1375.6;
    int32_t age = 27;
    return st_avro_set_string(rec, "session_id", "user_000001:1241478537000") |
           st_avro_set_string(rec, "user_id", "user_000001") |
           st_avro_set_enum(rec, "kind", "CLOSED") |
           st_avro_set_long(rec, "start_ms", 1241478537000LL + i) |
           st_avro_set_int(rec, "session_index", i) | st_avro_set_int(rec, "start_hour_utc", 23) |
           st_avro_set_int(rec, "start_weekday", 0) |
           st_avro_set_nullable_double(rec, "mean_session_length_s", &mean) |
           st_avro_set_double_array(rec, "recent_lengths_s", recent, 8) |
           st_avro_set_nullable_int(rec, "age", &age) |
           st_avro_set_nullable_string(rec, "country", "United Kingdom") |
           st_avro_set_long(rec, "end_ms", 1241478537000LL + i + 3600000) |
           st_avro_set_double(rec, "length_s", 3600.0) | st_avro_set_int(rec, "track_count", 14);
}

static int bench(st_avro_registry_t *reg, const char *name, int (*fill)(avro_value_t *, int))
{
    char err[256];
    st_err_t e = {0};
    st_buf_t buf = ST_BUF_INIT;
    st_avro_codec_t *c = st_avro_codec_new(reg, name, "bench", err, sizeof err);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    int64_t t0 = st_time_mono_us();
    for (int i = 0; i < N_RECORDS; i++) {
        avro_value_t *rec = st_avro_codec_record(c);
        if (fill(rec, i) != 0 || st_avro_codec_encode(c, rec, &buf, &e) != 0) {
            fprintf(stderr, "encode failed: %s\n", e.text);
            return -1;
        }
    }
    int64_t t1 = st_time_mono_us();
    size_t bytes = buf.len;
    for (int i = 0; i < N_RECORDS; i++) {
        avro_value_t *out;
        if (st_avro_codec_decode(c, buf.data, buf.len, &out, &e) != 0) {
            fprintf(stderr, "decode failed: %s\n", e.text);
            return -1;
        }
    }
    int64_t t2 = st_time_mono_us();
    printf("%-14s %4zu bytes  fill+encode %9.0f records/s  decode %9.0f records/s\n", name, bytes,
           N_RECORDS / ((t1 - t0) / 1e6), N_RECORDS / ((t2 - t1) / 1e6));
    st_buf_free(&buf);
    st_avro_codec_destroy(c);
    return 0;
}

int main(void)
{
    char err[512];
    const char *src = getenv("STINT_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/schemas", src ? src : STINT_SOURCE_DIR);
    st_avro_registry_t *reg = st_avro_registry_new(dir, NULL, err, sizeof err);
    if (!reg) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int rc = bench(reg, "Listen", fill_listen) | bench(reg, "SessionEvent", fill_session);
    st_avro_registry_destroy(reg);
    return rc ? 1 : 0;
}
