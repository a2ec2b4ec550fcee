/* st_avro_registry.c - the schema registry client (REST over libcurl), with the static-id
 * fallback of ids.conf, and the loading of the schemas dir. */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "st_avro_impl.h"
#include "st_lifecycle.h"
#include "st_log.h"
#include "st_time.h"

#define MAX_RESPONSE_BYTES (16u << 20)
#define MAX_NEGATIVE_IDS   1024
#define SR_CONTENT_TYPE    "application/vnd.schemaregistry.v1+json"
#define DEFAULT_CONNECT_MS 2000L
/* How a registration is tried again (see registry_register). */
#define REGISTER_TRIES_409        4
#define DEFAULT_REGISTER_RETRY_MS 30000
#define DEFAULT_REQUEST_MS        5000L

typedef struct {
    int32_t id;
    sch_t *sch; /* NULL: known not to exist (reason in why) */
    bool owned; /* sch belongs to this entry (else to a local) */
    char *why;
    int64_t retry_at_ms;      /* sch NULL: ask the registry again from then on (0 = never) */
    int64_t missing_since_ms; /* sch NULL: when the registry first answered 404 (0: another why) */
} ident_t;

typedef struct {
    char *subject;
    local_t *local;
    int32_t id;
} subject_t;

struct st_avro_registry {
    char *url;      /* NULL in static mode */
    char *url_safe; /* url for messages: user:password@ shown as ***@ */
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
                   ST_DISP_RETRY, "schema registry %s%s: %s", reg->url_safe, path,
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
    if (st_avro__grow((void **)&reg->ids, &reg->cap_ids, reg->n_ids + 1, sizeof *reg->ids) != 0)
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
            sch_t *s = st_avro__sch_parse(text, strlen(text), perr, sizeof perr);
            if (s && again) {
                free(again->why);
                again->why = NULL;
                reg->n_negative--;
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
                    st_avro__sch_free(s);
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
    if (not_found) {
        /* Each id its own window from its first miss (a registry-wide one would cut the grace
         * of an id registered late in another's). Services decode a batch up to its first
         * retriable error, so a batch with K unknown ids waits K windows in turn. */
        int64_t now = st_time_mono_ms();
        if (e->missing_since_ms == 0)
            e->missing_since_ms = now;
        /* Within the window asked again at most once a second (records with it wait), then
         * once a window (records with it are dead-lettered meanwhile). */
        bool waiting = now - e->missing_since_ms < reg->not_found_retry_ms;
        int64_t pause = waiting && reg->not_found_retry_ms > 1000 ? 1000 : reg->not_found_retry_ms;
        e->retry_at_ms = now + pause;
    } else {
        e->retry_at_ms = 0;
        e->missing_since_ms = 0;
    }
out:
    st_buf_free(&body);
    return e;
}

/* The writer schema of id, or NULL with err set. Thread-safe. The result lives as long as reg. */
const sch_t *st_avro__registry_writer(st_avro_registry_t *reg, int32_t id, st_err_t *err)
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
    else if (e && e->missing_since_ms > 0 &&
             st_time_mono_ms() - e->missing_since_ms < reg->not_found_retry_ms)
        /* Just registered, and a registry replica behind a load balancer has not caught up:
         * the records wait (retriable) rather than go to a dead-letter topic. */
        st_err_set(err, ST_ERR_INVALID, ST_DISP_RETRY,
                   "schema id %ld %s; asked again for up to %d ms before it counts as unknown",
                   (long)id, e->why, reg->not_found_retry_ms);
    else if (e)
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT, "unknown schema id %ld: %s", (long)id,
                   e->why);
    else if (!reg->url)
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT,
                   "unknown schema id %ld (not in the static table ids.conf)", (long)id);
    pthread_mutex_unlock(&reg->lock);
    return s;
}

local_t *st_avro__local_find(const st_avro_registry_t *reg, const char *record_name)
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
                         ? st_time_mono_ms() + pause_ms < give_up && !st_lifecycle_stopping()
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
        st_lifecycle_sleep_ms((int)pause_ms);
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
    if (st_avro__grow((void **)&reg->subjects, &reg->cap_subjects, reg->n_subjects + 1,
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
            reg->n_negative--;
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
    local_t *l = st_avro__local_find(reg, record_name);
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
    if (!(l->sch = st_avro__sch_parse(l->text, len, perr, sizeof perr)))
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
        if (st_avro__grow((void **)names, &cap, *n + 1, sizeof **names) != 0 ||
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
    if (rc == 0 && !(reg->locals = st_avro__calloc(n, sizeof *reg->locals)))
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

/* url for messages (st_log_url_redacted); NULL on no memory. */
static char *url_redacted(const char *url)
{
    size_t size = strlen(url) + 4;
    char *out = malloc(size);
    return out ? (char *)st_log_url_redacted(url, out, size) : NULL;
}

st_avro_registry_t *st_avro_registry_new(const char *schemas_dir, const char *registry_url,
                                         char *errstr, size_t errstr_size)
{
    if (!schemas_dir) {
        st_errstr(errstr, errstr_size, "no schemas dir given");
        return NULL;
    }
    st_avro_registry_t *reg = st_avro__calloc(1, sizeof *reg);
    if (!reg) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    reg->not_found_retry_ms = 30000;
    pthread_mutex_init(&reg->lock, NULL);
    reg->connect_ms = DEFAULT_CONNECT_MS;
    reg->request_ms = DEFAULT_REQUEST_MS;
    reg->register_retry_ms = DEFAULT_REGISTER_RETRY_MS;
    if (registry_url && *registry_url) {
        if (strncmp(registry_url, "http://", 7) != 0 && strncmp(registry_url, "https://", 8) != 0) {
            char safe[64];
            st_errstr(errstr, errstr_size,
                      "schema registry URL must start with http:// or https:// (%s)",
                      st_log_url_redacted(registry_url, safe, sizeof safe));
            st_avro_registry_destroy(reg);
            return NULL;
        }
        if (!(reg->url = strdup(registry_url)) || !(reg->url_safe = url_redacted(registry_url)) ||
            curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
            st_errstr(errstr, errstr_size, "cannot initialise libcurl");
            free(reg->url);
            free(reg->url_safe);
            reg->url = reg->url_safe = NULL;
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
            st_avro__sch_free(reg->ids[i].sch);
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
        st_avro__sch_free(l->sch);
    }
    free(reg->locals);
    for (size_t i = 0; i < reg->n_subjects; i++)
        free(reg->subjects[i].subject);
    free(reg->subjects);
    if (reg->curl)
        curl_easy_cleanup(reg->curl);
    free(reg->url_safe);
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
    const local_t *l = st_avro__local_find(reg, record_name);
    return l ? l->text : NULL;
}

/* Checks the 5-byte header; sets *id. */
int st_avro__wire_header(const void *data, size_t len, int32_t *id, st_err_t *err)
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
    if (st_avro__wire_header(data, len, &id, err) != 0)
        return NULL;
    const sch_t *w = st_avro__registry_writer(reg, id, err);
    if (!w)
        return NULL;
    cursor_t c = {.p = (const uint8_t *)data + ST_AVRO_HEADER_SIZE,
                  .end = (const uint8_t *)data + len,
                  .scratch = &scratch,
                  .errbuf = errbuf,
                  .errsize = sizeof errbuf};
    json_t *j = st_avro__decode_json(&c, w->root, 0);
    if (j && c.p != c.end)
        st_avro__cur_fail(&c, "%zu trailing bytes after the record", (size_t)(c.end - c.p));
    if (c.failed || !j) {
        json_decref(j);
        j = NULL;
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT, "schema id %ld: %s", (long)id,
                   c.failed ? errbuf : "out of memory");
    }
    st_buf_free(&scratch);
    return j;
}
