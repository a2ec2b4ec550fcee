/* Integration: stint in registry mode against the local stack's real schema registry (Apicurio,
 * BACKWARD on every subject; deploy/local/stack), through real stint-ingest processes:
 *   1. the ids ingest writes are the registry's ids for the subject "<topic>-value", and none of
 *      them is a static id of schemas/ids.conf;
 *   2. ingest started with a v2 Listen schema (one new field with a default) registers v2 and
 *      writes it; a v1 reader (the schemas/ of this tree, as every downstream service has it)
 *      decodes the v1 and the v2 records alike;
 *   3. ingest started with an incompatible Listen schema (a field's type changed) refuses to start:
 *      exit 1 and one error line naming the subject and the registry's reason; nothing written;
 *   4. the registry stopped and restarted mid-run: ingest keeps going from its id cache (every
 *      listen arrives, SIGTERM exits 0), and after the restart a new reader still resolves every
 *      id (the registry keeps its schemas in a file).
 * Unique topics, group and Redis prefix. */
#include <curl/curl.h>
#include <jansson.h>
#include <sys/stat.h>

#include "st_avro.h"
#include "st_itest.h"
#include "st_records.h"
#include "st_test.h"

#define N_STEP 20

static char t_raw[128], t_out[128], t_dlq[128], group[128], prefix[128], logpath[1024];
static char schemas_v1[1024], schemas_v2[1100], schemas_bad[1100], stack[1024];
static const char *registry_url;
static int produced;

/* ---- the registry's REST API ---- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    st_buf_append(userdata, ptr, size * nmemb);
    return size * nmemb;
}

/* GET registry_url + path as JSON (new reference), or NULL. */
static json_t *registry_get(const char *path)
{
    char url[1024];
    st_buf_t body = ST_BUF_INIT;
    long status = 0;
    snprintf(url, sizeof url, "%s%s", registry_url, path);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    json_t *j = rc == CURLE_OK && status == 200 && body.data
                    ? json_loadb(body.data, body.len, 0, NULL)
                    : NULL;
    st_buf_free(&body);
    return j;
}

/* The id of the latest version of the subject of topic's values, or -1. */
static long latest_id(const char *topic)
{
    char path[300];
    snprintf(path, sizeof path, "/subjects/%s-value/versions/latest", topic);
    json_t *j = registry_get(path);
    long id = json_is_integer(json_object_get(j, "id"))
                  ? (long)json_integer_value(json_object_get(j, "id"))
                  : -1;
    json_decref(j);
    return id;
}

static size_t n_versions(const char *topic)
{
    char path[300];
    snprintf(path, sizeof path, "/subjects/%s-value/versions", topic);
    json_t *j = registry_get(path);
    size_t n = json_is_array(j) ? json_array_size(j) : 0;
    json_decref(j);
    return n;
}

/* Whether id is one of the static ids of schemas/ids.conf. */
static bool is_static_id(long id)
{
    char path[1100], line[512];
    snprintf(path, sizeof path, "%s/ids.conf", schemas_v1);
    FILE *f = fopen(path, "r");
    bool found = false;
    long sid;
    while (f && !found && fgets(line, sizeof line, f))
        found = line[0] != '#' && sscanf(line, "%ld", &sid) == 1 && sid == id;
    if (f)
        fclose(f);
    return found;
}

/* ---- schema directories: v1 (this tree), v2 and an incompatible one (copies, Listen edited) ----
 */

static int copy_schemas(const char *to, const char *find, const char *replace)
{
    char cmd[3000], path[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", to, schemas_v1, to);
    if (system(cmd) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/listen.avsc", to);
    st_buf_t text = ST_BUF_INIT;
    FILE *f = fopen(path, "r");
    char chunk[4096];
    size_t n;
    while (f && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        st_buf_append(&text, chunk, n);
    if (f)
        fclose(f);
    st_buf_append(&text, "", 1);
    char *at = text.data ? strstr(text.data, find) : NULL;
    if (!at) {
        st_buf_free(&text);
        return -1;
    }
    f = fopen(path, "w");
    if (!f) {
        st_buf_free(&text);
        return -1;
    }
    fprintf(f, "%.*s%s%s", (int)(at - text.data), text.data, replace, at + strlen(find));
    fclose(f);
    st_buf_free(&text);
    return 0;
}

/* ---- ingest ---- */

static pid_t start_ingest(const char *schemas)
{
    char ingest[1100], redis_port[16];
    snprintf(ingest, sizeof ingest, "%s/stint-ingest", itest_bin_dir());
    snprintf(redis_port, sizeof redis_port, "%d", itest_redis_port());
    char *argv[] = {ingest,
                    "-b",
                    (char *)itest_brokers(),
                    "--redis.port",
                    redis_port,
                    "--in.topic",
                    t_raw,
                    "--out.topic",
                    t_out,
                    "--dlq.topic",
                    t_dlq,
                    "--redis.prefix",
                    prefix,
                    "-G",
                    group,
                    "--schemas.dir",
                    (char *)schemas,
                    "--schema.registry.url",
                    (char *)registry_url,
                    NULL};
    return itest_spawn(argv, logpath);
}

static int stop_ingest(pid_t pid)
{
    kill(pid, SIGTERM);
    return itest_wait(pid, 30000);
}

/* N_STEP new raw listens (distinct tracks, so none is a duplicate), each one a JSON object. */
static int produce_step(void)
{
    char errstr[256], key[32], val[300];
    st_kafka_opts_t ko = itest_kafka();
    st_producer_t *p = st_producer_new(&ko, errstr, sizeof errstr);
    int rc = p ? 0 : -1;
    for (int i = 0; i < N_STEP && rc == 0; i++, produced++) {
        int klen = snprintf(key, sizeof key, "user_%06d", produced % 5);
        int vlen = snprintf(val, sizeof val,
                            "{\"user_id\":\"%s\",\"timestamp\":\"2009-05-04T13:%02d:%02dZ\","
                            "\"artist_name\":\"Registry Band\",\"track_name\":\"Song %d\"}",
                            key, produced / 60 % 60, produced % 60, produced);
        rc = st_producer_send(p, t_raw, -1, key, (size_t)klen, val, (size_t)vlen, NULL);
    }
    if (p && st_producer_wait(p, 30000, NULL) != 0)
        rc = -1;
    st_producer_destroy(p);
    return rc;
}

static void count_cb(void *arg, int32_t partition, const void *key, size_t klen, const void *val,
                     size_t vlen)
{
    (void)partition, (void)key, (void)klen, (void)val, (void)vlen;
    (*(long long *)arg)++;
}

/* Waits until the output topic holds want records; returns how many it holds. */
static long long wait_out(long long want)
{
    long long n = 0;
    int64_t deadline = st_time_mono_ms() + 60000;
    do {
        n = 0;
        itest_read_topic(t_out, count_cb, &n);
        if (n >= want)
            break;
        itest_sleep_ms(300);
    } while (st_time_mono_ms() < deadline);
    return n;
}

/* ---- reading the output with a v1 reader ---- */

typedef struct {
    st_avro_codec_t *codec;
    long ids[8];
    long count[8];
    int nids;
    long long decoded, failed, tracks_ok;
    char why[600];
} reader_t;

static void read_cb(void *arg, int32_t partition, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
    reader_t *r = arg;
    (void)partition, (void)key, (void)klen;
    if (vlen < ST_AVRO_HEADER_SIZE)
        return;
    const unsigned char *b = val;
    long id = (long)((uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4]);
    int k = 0;
    while (k < r->nids && r->ids[k] != id)
        k++;
    if (k == r->nids && r->nids < 8)
        r->ids[r->nids++] = id;
    if (k < 8)
        r->count[k]++;
    st_rec_listen_t rec;
    st_err_t err = {0};
    if (st_rec_listen_decode(r->codec, val, vlen, &rec, &err) != 0) {
        if (!r->failed++)
            snprintf(r->why, sizeof r->why, "%s", err.text);
        return;
    }
    r->decoded++;
    if (rec.track_name.len >= 5 && strncmp(rec.track_name.ptr, "Song ", 5) == 0)
        r->tracks_ok++;
}

/* Reads the whole output topic with a new registry-mode reader of schemas dir. */
static void read_out(const char *schemas, reader_t *r)
{
    char errstr[512];
    memset(r, 0, sizeof *r);
    st_avro_registry_t *reg = st_avro_registry_new(schemas, registry_url, errstr, sizeof errstr);
    r->codec = reg ? st_avro_codec_new(reg, "Listen", NULL, errstr, sizeof errstr) : NULL;
    if (!r->codec)
        snprintf(r->why, sizeof r->why, "reader: %s", errstr);
    else
        itest_read_topic(t_out, read_cb, r);
    st_avro_codec_destroy(r->codec);
    st_avro_registry_destroy(reg);
}

/* ---- the tests ---- */

static void test_ids_from_registry(void)
{
    pid_t pid = start_ingest(schemas_v1);
    ST_REQUIRE(produce_step() == 0);
    ST_EQ_INT(wait_out(N_STEP), N_STEP);
    ST_EQ_INT(stop_ingest(pid), 0);

    reader_t r;
    read_out(schemas_v1, &r);
    long subject_id = latest_id(t_out);
    printf("ids on %s: %ld (%ld records); registry's id for %s-value: %ld\n", t_out, r.ids[0],
           r.count[0], t_out, subject_id);
    ST_EQ_INT(r.nids, 1);
    ST_CHECK(subject_id > 0 && r.ids[0] == subject_id);
    ST_CHECK(!is_static_id(r.ids[0]));
    ST_EQ_INT(r.decoded, N_STEP);
    char path[64];
    snprintf(path, sizeof path, "/schemas/ids/%ld", r.ids[0]);
    json_t *j = registry_get(path);
    const char *text = json_string_value(json_object_get(j, "schema"));
    ST_CHECK(text && strstr(text, "\"Listen\"") && strstr(text, "io.stint"));
    json_decref(j);
}

static void test_v2_writer_v1_reader(void)
{
    long v1 = latest_id(t_out);
    pid_t pid = start_ingest(schemas_v2);
    ST_REQUIRE(produce_step() == 0);
    ST_EQ_INT(wait_out(2 * N_STEP), 2 * N_STEP);
    ST_EQ_INT(stop_ingest(pid), 0);
    long v2 = latest_id(t_out);
    printf("subject %s-value: %zu versions, ids %ld then %ld\n", t_out, n_versions(t_out), v1, v2);
    ST_EQ_INT(n_versions(t_out), 2);
    ST_CHECK(v2 > 0 && v2 != v1 && !is_static_id(v2));

    reader_t r;
    read_out(schemas_v1, &r);
    if (r.failed)
        printf("v1 reader: %lld failed: %s\n", r.failed, r.why);
    ST_EQ_INT(r.nids, 2);
    for (int k = 0; k < r.nids; k++)
        ST_EQ_INT(r.count[k], N_STEP);
    ST_CHECK((r.ids[0] == v1 && r.ids[1] == v2) || (r.ids[0] == v2 && r.ids[1] == v1));
    ST_EQ_INT(r.decoded, 2 * N_STEP);
    ST_EQ_INT(r.tracks_ok, 2 * N_STEP);
}

static void test_incompatible_refused(void)
{
    pid_t pid = start_ingest(schemas_bad);
    int rc = itest_wait(pid, 30000);
    printf("ingest with an incompatible Listen: exit %d\n", rc);
    ST_EQ_INT(rc, 1);
    char subject[200];
    snprintf(subject, sizeof subject, "subject %s-value: HTTP 409", t_out);
    ST_CHECK(itest_log_has(logpath, subject));
    ST_CHECK(itest_log_has(logpath, "Incompatible"));
    ST_EQ_INT(n_versions(t_out), 2);
    ST_EQ_INT(wait_out(0), 2 * N_STEP);
}

static int stack_cmd(const char *args)
{
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "%s %s >>%s 2>&1", stack, args, logpath);
    return system(cmd);
}

static void test_registry_restart(void)
{
    pid_t pid = start_ingest(schemas_v1);
    ST_REQUIRE(produce_step() == 0);
    ST_EQ_INT(wait_out(3 * N_STEP), 3 * N_STEP);

    /* Registry down: ingest has its id and never needs to ask. */
    ST_EQ_INT(stack_cmd("stop registry"), 0);
    json_t *down = registry_get("/subjects");
    ST_CHECK(down == NULL);
    json_decref(down);
    ST_REQUIRE(produce_step() == 0);
    ST_EQ_INT(wait_out(4 * N_STEP), 4 * N_STEP);

    /* Back up, state kept. */
    ST_EQ_INT(stack_cmd("up"), 0);
    ST_REQUIRE(produce_step() == 0);
    ST_EQ_INT(wait_out(5 * N_STEP), 5 * N_STEP);
    ST_CHECK(waitpid(pid, NULL, WNOHANG) == 0); /* still running */
    ST_EQ_INT(stop_ingest(pid), 0);

    reader_t r;
    read_out(schemas_v1, &r);
    if (r.failed)
        printf("reader after the restart: %lld failed: %s\n", r.failed, r.why);
    ST_EQ_INT(r.decoded, 5 * N_STEP);
    ST_EQ_INT(r.tracks_ok, 5 * N_STEP);
    ST_EQ_INT(n_versions(t_out), 2);
}

int main(void)
{
    const char *src = getenv("STINT_SOURCE_DIR");
    registry_url = itest_registry_url();
    if (!*registry_url) {
        fprintf(stderr, "this test needs a schema registry; STINT_SCHEMA_REGISTRY_URL is empty\n");
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    itest_unique(t_raw, sizeof t_raw, "it.registry.raw");
    itest_unique(t_out, sizeof t_out, "it.registry.listens");
    itest_unique(t_dlq, sizeof t_dlq, "it.registry.dlq");
    itest_unique(group, sizeof group, "it-registry");
    itest_unique(prefix, sizeof prefix, "it:registry");
    snprintf(logpath, sizeof logpath, "%s/it-registry.log", itest_bin_dir());
    remove(logpath);
    snprintf(stack, sizeof stack, "%s/deploy/local/stack", src ? src : STINT_SOURCE_DIR);
    snprintf(schemas_v1, sizeof schemas_v1, "%s/schemas", src ? src : STINT_SOURCE_DIR);
    snprintf(schemas_v2, sizeof schemas_v2, "/tmp/stint-it-registry-v2-%d", (int)getpid());
    snprintf(schemas_bad, sizeof schemas_bad, "/tmp/stint-it-registry-bad-%d", (int)getpid());
    /* v2: a new field with a default (BACKWARD-compatible); bad: a long field made a string. */
    if (copy_schemas(schemas_v2, "\"fields\": [",
                     "\"fields\": [\n    {\"name\": \"client\", \"type\": \"string\", "
                     "\"default\": \"unknown\"},") != 0 ||
        copy_schemas(schemas_bad,
                     "\"type\": {\"type\": \"long\", \"logicalType\": "
                     "\"timestamp-millis\"}",
                     "\"type\": \"string\"") != 0) {
        fprintf(stderr, "could not write the edited schema directories\n");
        return 1;
    }
    st_kafka_opts_t ko = itest_kafka();
    char errstr[512];
    const char *topics[] = {t_raw, t_out, t_dlq};
    if (st_kafka_create_topics(&ko, topics, 3, 3, errstr, sizeof errstr) != 0) {
        fprintf(stderr, "topics: %s\n", errstr);
        return 1;
    }
    ST_RUN(test_ids_from_registry);
    ST_RUN(test_v2_writer_v1_reader);
    ST_RUN(test_incompatible_refused);
    ST_RUN(test_registry_restart);
    itest_redis_unlink_prefix(prefix);
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", schemas_v2, schemas_bad);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", schemas_v2);
    curl_global_cleanup();
    return st_test_summary();
}
