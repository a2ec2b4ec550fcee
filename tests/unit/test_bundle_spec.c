/* test_bundle_spec.c - the bundle spec's key table (st_bundle_file.c): every key's allowed values
 * as its messages state them are exactly what st_bundle_spec_set accepts (each bound tried on both
 * sides), the messages name the key, the value and the allowed range or set, JSON of the wrong
 * kind and duplicate keys are refused, st_bundle_spec_check refuses a spec built in code the same
 * way, and docs/training.md's table of keys matches the code. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_bundle.h"
#include "st_test.h"

/* Sets key=value on a default spec; returns the result, the message in err. */
static int try_set(const char *key, const char *value, char *err, size_t size)
{
    st_bundle_spec_t s;
    st_bundle_spec_default(&s);
    err[0] = 0;
    return st_bundle_spec_set(&s, key, value, err, size);
}

/* key=value must be refused with exactly `bundle spec: key="value" is not ALLOWED`. */
static void expect_refused(const char *key, const char *value)
{
    char err[1024], allowed[512], want[1600];
    ST_REQUIRE(st_bundle_spec_allowed(key, allowed, sizeof allowed) == 0);
    snprintf(want, sizeof want, "bundle spec: %s=\"%s\" is not %s", key, value, allowed);
    if (try_set(key, value, err, sizeof err) != -1)
        ST_FAIL_AT("%s=\"%s\" accepted, should be refused", key, value);
    else if (strcmp(err, want) != 0)
        ST_FAIL_AT("%s=\"%s\": message \"%s\", want \"%s\"", key, value, err, want);
}

static void expect_accepted(const char *key, const char *value)
{
    char err[1024];
    if (try_set(key, value, err, sizeof err) != 0)
        ST_FAIL_AT("%s=\"%s\" refused: %s", key, value, err);
}

static void fmt(char *buf, size_t size, double v)
{
    snprintf(buf, size, "%.17g", v);
}

/* The messages of today's examples, word for word. */
static void test_messages(void)
{
    char err[1024];
    ST_EQ_INT(try_set("units", "0", err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: units=\"0\" is not an integer from 1 to 4096");
    ST_EQ_INT(try_set("cell", "rnn", err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: cell=\"rnn\" is not lstm or gru");
    ST_EQ_INT(try_set("dropout", "1", err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: dropout=\"1\" is not a number >= 0 and < 1");
    ST_EQ_INT(try_set("lr", "0", err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: lr=\"0\" is not a number > 0 and < 10");
    ST_EQ_INT(try_set("window", "64", err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: window=\"64\" is not an integer from 1 to 63 (an OPENED carries "
                   "at most 64 sessions, the W + 1 the model reads)");
    ST_EQ_INT(try_set("clip_norm", "-1", err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: clip_norm=\"-1\" is not a number >= 0");
    ST_EQ_INT(try_set("min_cluster_users", "0", err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: min_cluster_users=\"0\" is not an integer >= 1");
    ST_EQ_INT(try_set("loss", "mae", err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: loss=\"mae\" is not l1, l2 or huber");
    /* an unknown key lists every key */
    ST_EQ_INT(try_set("unit", "8", err, sizeof err), -1);
    static const char unknown[] = "bundle spec: unknown key \"unit\" (keys: name, kind, window, ";
    ST_CHECK(strncmp(err, unknown, sizeof unknown - 1) == 0);
    for (int i = 0; i < st_bundle_spec_n_keys(); i++)
        ST_CHECK(strstr(err, st_bundle_spec_key(i)) != NULL);
    /* values the old checks let through */
    expect_refused("units", "8.5");                 /* was truncated to 8 */
    expect_refused("seed", "1e300");                /* was undefined behaviour */
    expect_refused("profile_features", "mean,foo"); /* was refused only when training */
    expect_refused("lr", "1e-50");                  /* a float 0 */
    expect_refused("clip_norm", "1e39");            /* a float inf */
    expect_refused("name", "0123456789012345678901234567890123456789012345678901234567890123");
}

/* Every key: what its message says is allowed is exactly what is accepted. */
static void test_every_key_both_sides_of_its_bounds(void)
{
    ST_EQ_INT(st_bundle_spec_n_keys(), 29);
    ST_CHECK(st_bundle_spec_key(st_bundle_spec_n_keys()) == NULL);
    char allowed[512], v[64];
    ST_EQ_INT(st_bundle_spec_allowed("nope", allowed, sizeof allowed), -1);
    for (int i = 0; i < st_bundle_spec_n_keys(); i++) {
        const char *key = st_bundle_spec_key(i);
        ST_REQUIRE(st_bundle_spec_allowed(key, allowed, sizeof allowed) == 0);
        double lo, hi;
        char op1[3], op2[3];
        int n = 0;
        if (sscanf(allowed, "an integer from %lf to %lf%n", &lo, &hi, &n) == 2 && n > 0) {
            fmt(v, sizeof v, lo);
            expect_accepted(key, v);
            fmt(v, sizeof v, hi);
            expect_accepted(key, v);
            fmt(v, sizeof v, lo - 1);
            expect_refused(key, v);
            fmt(v, sizeof v, hi + 1);
            expect_refused(key, v);
            fmt(v, sizeof v, lo + 0.5);
            expect_refused(key, v);
        } else if (sscanf(allowed, "an integer >= %lf", &lo) == 1) {
            fmt(v, sizeof v, lo);
            expect_accepted(key, v);
            expect_accepted(key, "2147483647");
            fmt(v, sizeof v, lo - 1);
            expect_refused(key, v);
            expect_refused(key, "2147483648");
        } else if (sscanf(allowed, "a number %2s %lf and %2s %lf", op1, &lo, op2, &hi) == 4) {
            fmt(v, sizeof v, lo);
            if (strcmp(op1, ">") == 0)
                expect_refused(key, v);
            else
                expect_accepted(key, v);
            fmt(v, sizeof v, hi);
            if (strcmp(op2, "<") == 0)
                expect_refused(key, v);
            else
                expect_accepted(key, v);
            fmt(v, sizeof v, (lo + hi) / 2);
            expect_accepted(key, v);
            fmt(v, sizeof v, lo - 1);
            expect_refused(key, v);
            fmt(v, sizeof v, hi + 1);
            expect_refused(key, v);
        } else if (sscanf(allowed, "a number %2s %lf", op1, &lo) == 2) {
            fmt(v, sizeof v, lo);
            if (strcmp(op1, ">") == 0)
                expect_refused(key, v);
            else
                expect_accepted(key, v);
            fmt(v, sizeof v, lo - 1);
            expect_refused(key, v);
            expect_refused(key, "nan");
        } else if (strncmp(allowed, "true or false", 13) == 0) {
            expect_accepted(key, "true");
            expect_accepted(key, "false");
            expect_accepted(key, "0");
            expect_accepted(key, "1");
            expect_refused(key, "yes");
        } else if (sscanf(allowed, "text of at most %lf bytes", &hi) == 1) {
            char text[600];
            ST_REQUIRE(hi > 0 && hi < sizeof text - 1);
            memset(text, 'x', (size_t)hi);
            text[(size_t)hi] = 0;
            expect_accepted(key, text);
            text[(size_t)hi] = 'x';
            text[(size_t)hi + 1] = 0;
            expect_refused(key, text);
        } else if (sscanf(allowed, "a comma-separated list of 1 to %lf of: %n", &hi, &n) == 1 &&
                   n > 0) {
            /* every item alone, all of them, an unknown one, none */
            char items[512];
            snprintf(items, sizeof items, "%s", allowed + n);
            int count = 0;
            for (char *save = NULL, *t = strtok_r(items, ", ", &save); t;
                 t = strtok_r(NULL, ", ", &save), count++)
                expect_accepted(key, t);
            ST_EQ_INT(count, (int)hi);
            expect_accepted(key, allowed + n);
            expect_refused(key, "nope");
            expect_refused(key, "");
        } else {
            /* words: "a, b or c" */
            char words[512];
            snprintf(words, sizeof words, "%s", allowed);
            int count = 0;
            for (char *save = NULL, *t = strtok_r(words, ", ", &save); t;
                 t = strtok_r(NULL, ", ", &save)) {
                if (strcmp(t, "or") == 0)
                    continue;
                expect_accepted(key, t);
                char bad[80];
                snprintf(bad, sizeof bad, "x%s", t);
                expect_refused(key, bad);
                count++;
            }
            if (count < 2)
                ST_FAIL_AT("%s: unrecognised allowed text \"%s\"", key, allowed);
        }
    }
}

static void test_json(void)
{
    char err[1024];
    st_bundle_spec_t s;
    st_bundle_spec_default(&s);
    ST_EQ_INT(st_bundle_spec_from_json(&s,
                                       "{\"units\": 8, \"cell\": \"gru\", \"dropout\": 0.25, "
                                       "\"log_target\": false, \"name\": \"x\"}",
                                       err, sizeof err),
              0);
    ST_EQ_INT(s.units[0], 8);
    ST_EQ_INT(s.cell, ST_NN_CELL_GRU);
    ST_NEAR(s.dropout, 0.25, 1e-7);
    ST_EQ_INT(s.log_target, 0);
    ST_EQ_INT(st_bundle_spec_from_json(&s, "{\"units\": [8]}", err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: units=[8] is not an integer from 1 to 4096");
    ST_EQ_INT(st_bundle_spec_from_json(&s, "{\"name\": null}", err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: name=null is not text of at most 63 bytes");
    ST_EQ_INT(st_bundle_spec_from_json(&s, "{\"units\": 0}", err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: units=\"0\" is not an integer from 1 to 4096");
    ST_EQ_INT(st_bundle_spec_from_json(&s, "{\"units\": 8.5}", err, sizeof err), -1);
    ST_EQ_INT(st_bundle_spec_from_json(&s, "{\"units\": true}", err, sizeof err), -1);
    ST_EQ_INT(st_bundle_spec_from_json(&s, "{\"units\": 8, \"units\": 9}", err, sizeof err), -1);
    ST_CHECK(strstr(err, "units") != NULL);
    ST_EQ_INT(st_bundle_spec_from_json(&s, "{\"nope\": {}}", err, sizeof err), -1);
    ST_CHECK(strncmp(err, "bundle spec: unknown key \"nope\"", 31) == 0);
    ST_EQ_INT(st_bundle_spec_from_json(&s, "{\"units\": 8", err, sizeof err), -1);
    ST_CHECK(strncmp(err, "bundle spec: JSON line 1 column ", 32) == 0);
    ST_EQ_INT(st_bundle_spec_from_json(&s, "[1]", err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: not a JSON object of spec keys");
    /* the presets round-trip through their JSON, and the JSON has exactly the table's keys */
    for (int p = 0; p < 3; p++) {
        st_bundle_spec_t a, b;
        if (p == 2)
            st_bundle_spec_gbt(&a);
        else if (p)
            st_bundle_spec_seed(&a);
        else
            st_bundle_spec_default(&a);
        char *text = st_bundle_spec_json(&a);
        ST_REQUIRE(text != NULL);
        json_t *o = json_loads(text, 0, NULL);
        ST_REQUIRE(o != NULL);
        ST_EQ_INT(json_object_size(o), st_bundle_spec_n_keys());
        for (int i = 0; i < st_bundle_spec_n_keys(); i++)
            ST_CHECK(json_object_get(o, st_bundle_spec_key(i)) != NULL);
        json_decref(o);
        memset(&b, 0x55, sizeof b);
        ST_EQ_INT(st_bundle_spec_from_json(&b, text, err, sizeof err), 0);
        char *again = st_bundle_spec_json(&b);
        ST_EQ_STR(again, text);
        free(again);
        free(text);
    }
}

static void test_check(void)
{
    char err[1024];
    st_bundle_spec_t s;
    st_bundle_spec_default(&s);
    ST_EQ_INT(st_bundle_spec_check(&s, err, sizeof err), 0);
    st_bundle_spec_seed(&s);
    ST_EQ_INT(st_bundle_spec_check(&s, err, sizeof err), 0);
    s.units[0] = 0;
    ST_EQ_INT(st_bundle_spec_check(&s, err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: units=\"0\" is not an integer from 1 to 4096");
    st_bundle_spec_default(&s);
    s.kind = (st_bundle_kind_t)7;
    ST_EQ_INT(st_bundle_spec_check(&s, err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: kind=\"7\" is not seq, parity or gbt");
    st_bundle_spec_default(&s);
    s.dropout = 1.0f;
    ST_EQ_INT(st_bundle_spec_check(&s, err, sizeof err), -1);
    ST_EQ_STR(err, "bundle spec: dropout=\"1\" is not a number >= 0 and < 1");
    st_bundle_spec_default(&s);
    memset(s.name, 'n', sizeof s.name); /* no terminating NUL */
    ST_EQ_INT(st_bundle_spec_check(&s, err, sizeof err), -1);
    ST_CHECK(strncmp(err, "bundle spec: name=\"nnn", 22) == 0);
    /* training refuses a bad spec with the same message, before touching the data */
    st_bundle_spec_default(&s);
    s.k = 0;
    st_dataset_t *ds = st_dataset_new();
    ST_REQUIRE(ds != NULL);
    ST_CHECK(st_bundle_train(ds, &s, NULL, NULL, err, sizeof err) == NULL);
    ST_EQ_STR(err, "bundle spec: k=\"0\" is not an integer from 1 to 16");
    st_dataset_destroy(ds);
}

/* A JSON value as docs/training.md prints it. */
static void doc_value(json_t *v, char *buf, size_t size)
{
    if (json_is_string(v))
        snprintf(buf, size, "%s", json_string_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, size, "%s", json_is_true(v) ? "true" : "false");
    else if (json_is_integer(v))
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
    else
        snprintf(buf, size, "%g", json_number_value(v));
}

/* docs/training.md's "Spec keys" table: one row per key, `key` | allowed | `default` | `seed`. */
static void test_docs_table(void)
{
    const char *src = getenv("STINT_SOURCE_DIR");
    ST_REQUIRE(src != NULL);
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/training.md", src);
    FILE *fp = fopen(path, "r");
    ST_REQUIRE(fp != NULL);
    st_bundle_spec_t d, sd;
    st_bundle_spec_default(&d);
    st_bundle_spec_seed(&sd);
    char *dt = st_bundle_spec_json(&d), *st = st_bundle_spec_json(&sd);
    json_t *dj = json_loads(dt, 0, NULL), *sj = json_loads(st, 0, NULL);
    free(dt);
    free(st);
    int seen[64] = {0};
    char line[2048];
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "| `", 3) != 0)
            continue;
        char key[64], allowed[1024], dv[256], sv[256];
        if (sscanf(line, "| `%63[^`]` | %1023[^|]| `%255[^`]` | `%255[^`]` |", key, allowed, dv,
                   sv) != 4)
            continue;
        size_t n = strlen(allowed);
        while (n && allowed[n - 1] == ' ')
            allowed[--n] = 0;
        int i = 0;
        while (i < st_bundle_spec_n_keys() && strcmp(st_bundle_spec_key(i), key) != 0)
            i++;
        if (i == st_bundle_spec_n_keys()) {
            ST_FAIL_AT("docs/training.md names key \"%s\", which the code does not have", key);
            continue;
        }
        seen[i]++;
        char want[512], got[256];
        st_bundle_spec_allowed(key, want, sizeof want);
        if (strcmp(allowed, want) != 0)
            ST_FAIL_AT("docs/training.md: %s allows \"%s\", the code \"%s\"", key, allowed, want);
        doc_value(json_object_get(dj, key), got, sizeof got);
        if (strcmp(dv, got) != 0)
            ST_FAIL_AT("docs/training.md: %s default \"%s\", the code \"%s\"", key, dv, got);
        doc_value(json_object_get(sj, key), got, sizeof got);
        if (strcmp(sv, got) != 0)
            ST_FAIL_AT("docs/training.md: %s seed \"%s\", the code \"%s\"", key, sv, got);
    }
    fclose(fp);
    json_decref(dj);
    json_decref(sj);
    for (int i = 0; i < st_bundle_spec_n_keys(); i++)
        if (seen[i] != 1)
            ST_FAIL_AT("docs/training.md: key %s in %d table rows, want 1", st_bundle_spec_key(i),
                       seen[i]);
}

int main(void)
{
    ST_RUN(test_messages);
    ST_RUN(test_every_key_both_sides_of_its_bounds);
    ST_RUN(test_json);
    ST_RUN(test_check);
    ST_RUN(test_docs_table);
    return st_test_summary();
}
