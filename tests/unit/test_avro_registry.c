/* Unit tests of st_avro's schema registry client against the fake registry of
 * tests/fixtures/registry (python3, 127.0.0.1): register and fetch by id, caching (a second lookup
 * makes no HTTP call), resolution of a record written with an older schema, unknown ids, an
 * unreachable registry, and a bound on items of zero-size types. */
#include "st_avro.h"
#include "st_test.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char source_dir[1024];
static char tmp_root[256];
static char registry_url[128];
static pid_t registry_pid = -1;

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    st_buf_t b = ST_BUF_INIT;
    char chunk[4096];
    size_t n;
    if (!f)
        return NULL;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        st_buf_append(&b, chunk, n);
    fclose(f);
    return b.data;
}

/* Starts the fake registry and reads the port it prints. Returns 0 or -1. */
static int start_registry(void)
{
    int fds[2];
    char script[1200], line[32] = "";
    snprintf(script, sizeof script, "%s/tests/fixtures/registry/fake_registry.py", source_dir);
    if (pipe(fds) != 0)
        return -1;
    registry_pid = fork();
    if (registry_pid < 0)
        return -1;
    if (registry_pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execlp("python3", "python3", script, "0", "101", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    if (!f || !fgets(line, sizeof line, f)) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    int port = atoi(line);
    if (port <= 0)
        return -1;
    snprintf(registry_url, sizeof registry_url, "http://127.0.0.1:%d", port);
    return 0;
}

static void stop_registry(void)
{
    if (registry_pid > 0) {
        kill(registry_pid, SIGTERM);
        waitpid(registry_pid, NULL, 0);
        registry_pid = -1;
    }
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    st_buf_append(userdata, ptr, size * nmemb);
    return size * nmemb;
}

/* Requests the fake registry has served (its own count, independent of the client's). */
static long server_requests(void)
{
    char url[200];
    st_buf_t body = ST_BUF_INIT;
    long n = -1;
    snprintf(url, sizeof url, "%s/__stats", registry_url);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    if (curl_easy_perform(h) == CURLE_OK && body.data) {
        json_t *j = json_loads(body.data, 0, NULL);
        n = (long)json_integer_value(json_object_get(j, "requests"));
        json_decref(j);
    }
    curl_easy_cleanup(h);
    st_buf_free(&body);
    return n;
}

static const char *old_enriched =
    "{\"type\":\"record\",\"name\":\"EnrichedListen\",\"namespace\":\"io.stint\",\"fields\":["
    "{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"user_id\",\"type\":\"string\"},"
    "{\"name\":\"listened_at_ms\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-"
    "millis\"}},"
    "{\"name\":\"artist_name\",\"type\":\"string\"},{\"name\":\"track_name\",\"type\":\"string\"},"
    "{\"name\":\"artist_mbid\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"track_mbid\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"track_key\",\"type\":\"string\"}]}";

/* schemas/enriched_listen.avsc into dir. 0 or -1. */
static int copy_current_enriched(const char *dir)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/schemas/enriched_listen.avsc", source_dir);
    char *current = slurp(path);
    if (!current)
        return -1;
    write_text(dir, "enriched_listen.avsc", current);
    free(current);
    return 0;
}

static void test_register_fetch_cache_and_resolve(void)
{
    char old_dir[512], new_dir[512], err[512] = "";
    st_err_t e = {0};
    st_buf_t buf = ST_BUF_INIT, mine = ST_BUF_INIT;
    snprintf(old_dir, sizeof old_dir, "%s/old", tmp_root);
    snprintf(new_dir, sizeof new_dir, "%s/new", tmp_root);
    mkdir(old_dir, 0700);
    mkdir(new_dir, 0700);
    write_text(old_dir, "enriched_listen.avsc", old_enriched);
    ST_REQUIRE(copy_current_enriched(new_dir) == 0);

    /* No ids.conf in either dir: registry mode does not read it. */
    st_avro_registry_t *old_reg = st_avro_registry_new(old_dir, registry_url, err, sizeof err);
    if (!old_reg)
        fprintf(stderr, "%s\n", err);
    st_avro_registry_t *new_reg = st_avro_registry_new(new_dir, registry_url, err, sizeof err);
    ST_REQUIRE(old_reg && new_reg);
    ST_CHECK(!st_avro_registry_is_static(old_reg));
    ST_EQ_INT(st_avro_registry_http_requests(old_reg), 0);

    /* Registering: one POST; a second codec for the same topic asks nobody. */
    st_avro_codec_t *w = st_avro_codec_new(old_reg, "EnrichedListen", "plays", err, sizeof err);
    if (!w)
        fprintf(stderr, "%s\n", err);
    ST_REQUIRE(w != NULL);
    ST_EQ_INT(st_avro_codec_schema_id(w), 101);
    ST_EQ_INT(st_avro_registry_http_requests(old_reg), 1);
    st_avro_codec_t *w2 = st_avro_codec_new(old_reg, "EnrichedListen", "plays", err, sizeof err);
    ST_REQUIRE(w2 != NULL);
    ST_EQ_INT(st_avro_codec_schema_id(w2), 101);
    ST_EQ_INT(st_avro_registry_http_requests(old_reg), 1);
    st_avro_codec_destroy(w2);

    avro_value_t *rec = st_avro_codec_record(w);
    ST_EQ_INT(st_avro_set_string(rec, "user_id", "user_000004"), 0);
    ST_EQ_INT(st_avro_set_nullable_string(rec, "track_mbid", "t-mbid"), 0);
    ST_EQ_INT(st_avro_codec_encode(w, rec, &buf, &e), 0);
    /* The writer decodes its own records without asking the registry. */
    avro_value_t *out = NULL;
    ST_EQ_INT(st_avro_codec_decode(w, buf.data, buf.len, &out, &e), 0);
    ST_EQ_INT(st_avro_registry_http_requests(old_reg), 1);

    /* A reader with the newer schema fetches id 101 once, then serves it from its caches. */
    st_avro_codec_t *r = st_avro_codec_new(new_reg, "EnrichedListen", NULL, err, sizeof err);
    ST_REQUIRE(r != NULL);
    ST_EQ_INT(st_avro_registry_http_requests(new_reg), 0);
    for (int pass = 0; pass < 3; pass++) {
        out = NULL;
        ST_EQ_INT(st_avro_codec_decode(r, buf.data, buf.len, &out, &e), 0);
        if (e.code)
            fprintf(stderr, "%s\n", e.text);
        ST_REQUIRE(out != NULL);
        ST_EQ_INT(st_avro_registry_http_requests(new_reg), 1);
        const char *s = NULL;
        bool is_null = false;
        int64_t l = 0;
        size_t n = 9;
        ST_EQ_INT(st_avro_get_string(out, "user_id", &s, NULL), 0);
        ST_EQ_STR(s, "user_000004");
        ST_EQ_INT(st_avro_get_nullable_string(out, "track_mbid", &s, NULL, &is_null), 0);
        ST_EQ_STR(s, "t-mbid");
        ST_EQ_INT(st_avro_get_nullable_long(out, "duration_ms", &l, &is_null), 0);
        ST_CHECK(is_null);
        ST_EQ_INT(st_avro_get_array_size(out, "tags", &n), 0);
        ST_EQ_INT(n, 0);
        ST_EQ_INT(st_avro_get_enum(out, "metadata_source", &s), 0);
        ST_EQ_STR(s, "UNKNOWN");
    }
    /* Another codec of the same registry uses the registry's cache. */
    st_avro_codec_t *r2 = st_avro_codec_new(new_reg, "EnrichedListen", NULL, err, sizeof err);
    ST_REQUIRE(r2 != NULL);
    ST_EQ_INT(st_avro_codec_decode(r2, buf.data, buf.len, &out, &e), 0);
    json_t *j = st_avro_registry_decode_json(new_reg, buf.data, buf.len, &e);
    ST_REQUIRE(j != NULL);
    ST_EQ_STR(json_string_value(json_object_get(j, "track_mbid")), "t-mbid");
    ST_CHECK(json_object_get(j, "tags") == NULL); /* the writer's own fields only */
    json_decref(j);
    ST_EQ_INT(st_avro_registry_http_requests(new_reg), 1);

    /* The newer schema registers as a new id under the same subject. */
    st_avro_codec_t *w_new = st_avro_codec_new(new_reg, "EnrichedListen", "plays", err, sizeof err);
    ST_REQUIRE(w_new != NULL);
    ST_EQ_INT(st_avro_codec_schema_id(w_new), 102);
    ST_EQ_INT(st_avro_registry_http_requests(new_reg), 2);
    rec = st_avro_codec_record(w_new);
    const char *tags[] = {"rock", "indie"};
    ST_EQ_INT(st_avro_set_string_array(rec, "tags", tags, 2), 0);
    ST_EQ_INT(st_avro_codec_encode(w_new, rec, &mine, &e), 0);
    ST_EQ_INT(st_avro_codec_decode(r, mine.data, mine.len, &out, &e), 0);
    const char *s = NULL;
    ST_EQ_INT(st_avro_get_string_item(out, "tags", 1, &s, NULL), 0);
    ST_EQ_STR(s, "indie");
    ST_EQ_INT(st_avro_registry_http_requests(new_reg), 2);

    /* Unknown ids (the window is 2 s here): within it a retriable error, so the records wait
     * (a registry replica may not have caught up with a schema just registered), asked again at
     * most once a second; then a permanent one (dead-lettered), asked again once a window. */
    st_avro_registry_set_not_found_retry_ms(new_reg, 2000);
    st_err_clear(&e);
    ST_EQ_INT(st_avro_codec_decode(r, "\0\0\0\x03\xe7\x02", 6, &out, &e), -1);
    ST_CHECK(e.retriable);
    ST_CHECK(strstr(e.text, "schema id 999 not found") != NULL);
    ST_EQ_INT(st_avro_registry_http_requests(new_reg), 3);
    st_err_clear(&e);
    ST_EQ_INT(st_avro_codec_decode(r2, "\0\0\0\x03\xe7\x02", 6, &out, &e), -1);
    ST_CHECK(e.retriable);
    ST_EQ_INT(st_avro_registry_http_requests(new_reg), 3);
    usleep(1100000); /* asked again */
    st_err_clear(&e);
    ST_EQ_INT(st_avro_codec_decode(r2, "\0\0\0\x03\xe7\x02", 6, &out, &e), -1);
    ST_CHECK(e.retriable);
    ST_EQ_INT(st_avro_registry_http_requests(new_reg), 4);
    usleep(1300000); /* past the window: asked again, still missing: permanent */
    st_err_clear(&e);
    ST_EQ_INT(st_avro_codec_decode(r2, "\0\0\0\x03\xe7\x02", 6, &out, &e), -1);
    ST_EQ_INT(e.code, ST_ERR_INVALID);
    ST_CHECK(!e.retriable);
    ST_CHECK(strstr(e.text, "unknown schema id 999") != NULL);
    ST_EQ_INT(st_avro_registry_http_requests(new_reg), 5);
    st_err_clear(&e);
    ST_EQ_INT(st_avro_codec_decode(r, "\0\0\0\x03\xe7\x02", 6, &out, &e), -1);
    ST_EQ_INT(e.code, ST_ERR_INVALID);
    ST_EQ_INT(st_avro_registry_http_requests(new_reg), 5);

    /* The server saw exactly the requests the clients counted. */
    ST_EQ_INT(server_requests(),
              st_avro_registry_http_requests(old_reg) + st_avro_registry_http_requests(new_reg));

    st_buf_free(&buf);
    st_buf_free(&mine);
    st_avro_codec_destroy(w);
    st_avro_codec_destroy(w_new);
    st_avro_codec_destroy(r);
    st_avro_codec_destroy(r2);
    st_avro_registry_destroy(old_reg);
    st_avro_registry_destroy(new_reg);
}

/* Items that take no bytes (array<null> in a writer schema, a field the reader skips) cost 3 bytes
 * a block of 2^16: their total over a record is bounded, not only each block's, so one small
 * record cannot keep a decode busy for minutes. */
static void test_zero_size_items_bounded(void)
{
    char wdir[512], rdir[512], err[512] = "";
    st_err_t e = {0};
    snprintf(wdir, sizeof wdir, "%s/zero-w", tmp_root);
    snprintf(rdir, sizeof rdir, "%s/zero-r", tmp_root);
    mkdir(wdir, 0700);
    mkdir(rdir, 0700);
    char schema[2048];
    size_t len = strlen(old_enriched);
    snprintf(schema, sizeof schema,
             "%.*s,{\"name\":\"pad\",\"type\":{\"type\":\"array\",\"items\":\"null\"},"
             "\"default\":[]}]}",
             (int)(len - 2), old_enriched);
    write_text(wdir, "enriched_listen.avsc", schema);
    ST_REQUIRE(copy_current_enriched(rdir) == 0);
    st_avro_registry_t *wreg = st_avro_registry_new(wdir, registry_url, err, sizeof err);
    st_avro_registry_t *rreg = st_avro_registry_new(rdir, registry_url, err, sizeof err);
    ST_REQUIRE(wreg && rreg);
    st_avro_codec_t *w = st_avro_codec_new(wreg, "EnrichedListen", "zero", err, sizeof err);
    st_avro_codec_t *r = st_avro_codec_new(rreg, "EnrichedListen", NULL, err, sizeof err);
    ST_REQUIRE(w && r);
    st_buf_t buf = ST_BUF_INIT;
    avro_value_t *rec = st_avro_codec_record(w);
    ST_EQ_INT(st_avro_set_string(rec, "user_id", "z"), 0);
    ST_EQ_INT(st_avro_codec_encode(w, rec, &buf, &e), 0);
    ST_REQUIRE(buf.len > 0 && buf.data[buf.len - 1] == 0); /* pad: the empty array's end */
    buf.len--;
    /* one block of 2^16 nulls (count 2^16: zigzag 2^17, varint 80 80 08), then the end: read */
    st_buf_t one = ST_BUF_INIT, two = ST_BUF_INIT;
    st_buf_append(&one, buf.data, buf.len);
    st_buf_append(&one, "\x80\x80\x08\x00", 4);
    avro_value_t *out = NULL;
    ST_EQ_INT(st_avro_codec_decode(r, one.data, one.len, &out, &e), 0);
    /* two such blocks: over the bound for the record */
    st_buf_append(&two, buf.data, buf.len);
    st_buf_append(&two, "\x80\x80\x08\x80\x80\x08\x00", 7);
    st_err_clear(&e);
    ST_EQ_INT(st_avro_codec_decode(r, two.data, two.len, &out, &e), -1);
    ST_EQ_INT(e.code, ST_ERR_INVALID);
    ST_CHECK(strstr(e.text, "zero-size") != NULL);
    st_buf_free(&buf);
    st_buf_free(&one);
    st_buf_free(&two);
    st_avro_codec_destroy(w);
    st_avro_codec_destroy(r);
    st_avro_registry_destroy(wreg);
    st_avro_registry_destroy(rreg);
}

static void test_unreachable_registry(void)
{
    char schemas[1100], err[512] = "";
    st_err_t e = {0};
    snprintf(schemas, sizeof schemas, "%s/schemas", source_dir);
    /* Port 9 (discard) on loopback: nothing listens, the connection is refused at once. With
     * basic-auth user information, which no message shows. */
    st_avro_registry_t *reg =
        st_avro_registry_new(schemas, "http://me:s3cret@127.0.0.1:9", err, sizeof err);
    ST_REQUIRE(reg != NULL);
    st_avro_registry_set_timeouts(reg, 500, 1000);
    /* A registration is tried again for register_retry_ms (100 ms, 200, 400, ... apart), then
     * fails with the transport error. */
    st_avro_registry_set_register_retry_ms(reg, 1000);
    ST_CHECK(st_avro_codec_new(reg, "Listen", "listens", err, sizeof err) == NULL);
    if (!strstr(err, "http://***@127.0.0.1:9"))
        ST_FAIL_AT("error \"%s\" does not name the registry", err);
    ST_CHECK(strstr(err, "s3cret") == NULL);
    ST_CHECK(st_avro_registry_http_requests(reg) >= 3);
    st_avro_codec_t *r = st_avro_codec_new(reg, "Listen", NULL, err, sizeof err);
    ST_REQUIRE(r != NULL);
    avro_value_t *out = NULL;
    ST_EQ_INT(st_avro_codec_decode(r, "\0\0\0\0\x01\x02", 6, &out, &e), -1);
    ST_CHECK(e.code == ST_ERR_HTTP || e.code == ST_ERR_TIMEOUT);
    ST_CHECK(e.retriable);
    ST_CHECK(strstr(e.text, "s3cret") == NULL);
    /* A failed call is not cached as "unknown": the next decode asks again. */
    long before = st_avro_registry_http_requests(reg);
    st_err_clear(&e);
    ST_EQ_INT(st_avro_codec_decode(r, "\0\0\0\0\x01\x02", 6, &out, &e), -1);
    ST_EQ_INT(st_avro_registry_http_requests(reg), before + 1);
    st_avro_codec_destroy(r);
    st_avro_registry_destroy(reg);
}

typedef struct {
    st_avro_registry_t *reg;
    const st_buf_t *msg;
    int decoded;
} thread_arg_t;

static void *decode_many(void *p)
{
    thread_arg_t *a = p;
    char err[256];
    st_avro_codec_t *c = st_avro_codec_new(a->reg, "Listen", NULL, err, sizeof err);
    for (int i = 0; c && i < 2000; i++) {
        avro_value_t *out = NULL;
        st_err_t e = {0};
        const char *user = NULL;
        if (st_avro_codec_decode(c, a->msg->data, a->msg->len, &out, &e) == 0 &&
            st_avro_get_string(out, "user_id", &user, NULL) == 0 &&
            strcmp(user, "user_000005") == 0)
            a->decoded++;
    }
    st_avro_codec_destroy(c);
    return NULL;
}

/* Threads with their own codecs share one registry: one fetch for all of them. */
static void test_threads_share_registry(void)
{
    char schemas[1100], err[512] = "";
    st_err_t e = {0};
    st_buf_t msg = ST_BUF_INIT;
    snprintf(schemas, sizeof schemas, "%s/schemas", source_dir);
    st_avro_registry_t *wreg = st_avro_registry_new(schemas, registry_url, err, sizeof err);
    st_avro_registry_t *rreg = st_avro_registry_new(schemas, registry_url, err, sizeof err);
    ST_REQUIRE(wreg && rreg);
    st_avro_codec_t *w = st_avro_codec_new(wreg, "Listen", "threads", err, sizeof err);
    ST_REQUIRE(w != NULL);
    avro_value_t *rec = st_avro_codec_record(w);
    ST_EQ_INT(st_avro_set_string(rec, "user_id", "user_000005"), 0);
    ST_EQ_INT(st_avro_codec_encode(w, rec, &msg, &e), 0);
    pthread_t th[4];
    thread_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg_t){rreg, &msg, 0};
        ST_REQUIRE(pthread_create(&th[i], NULL, decode_many, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ST_EQ_INT(args[i].decoded, 2000);
    }
    ST_EQ_INT(st_avro_registry_http_requests(rreg), 1);
    st_buf_free(&msg);
    st_avro_codec_destroy(w);
    st_avro_registry_destroy(wreg);
    st_avro_registry_destroy(rreg);
}

int main(void)
{
    const char *src = getenv("STINT_SOURCE_DIR");
    snprintf(source_dir, sizeof source_dir, "%s", src ? src : STINT_SOURCE_DIR);
    snprintf(tmp_root, sizeof tmp_root, "/tmp/st_avro_registry_test.XXXXXX");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    if (start_registry() != 0) {
        fprintf(stderr,
                "cannot start the fake schema registry (python3 %s/tests/fixtures/registry/"
                "fake_registry.py)\n",
                source_dir);
        stop_registry();
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ST_RUN(test_register_fetch_cache_and_resolve);
    ST_RUN(test_threads_share_registry);
    ST_RUN(test_unreachable_registry);
    ST_RUN(test_zero_size_items_bounded);
    curl_global_cleanup();
    stop_registry();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_root);
    return st_test_summary();
}
