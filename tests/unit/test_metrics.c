/* Unit tests of st_metrics rendering (issue 20): families registered interleaved with several
 * label sets still come out as one contiguous block each with one # HELP and one # TYPE;
 * histogram buckets are cumulative up to le="+Inf", _count equals the +Inf bucket, and bounds and
 * values are printed in the shortest form that reads back as the same double; the process_*
 * families are read from /proc/self. */
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "st_buf.h"
#include "st_metrics.h"
#include "st_test.h"

static char *render(void)
{
    st_buf_t b = ST_BUF_INIT;
    if (st_metrics_render(&b) != 0) {
        st_buf_free(&b);
        return NULL;
    }
    st_buf_append_str(&b, "");
    return b.data;
}

/* The family a sample name belongs to, given the families declared so far in the text: the name
 * itself, or for a histogram the name without _bucket, _sum, _count. */
static bool belongs(const char *sample, size_t len, const char *family, bool histogram)
{
    size_t fl = strlen(family);
    if (len == fl && strncmp(sample, family, fl) == 0)
        return !histogram;
    if (!histogram || len <= fl || strncmp(sample, family, fl) != 0)
        return false;
    const char *suf = sample + fl;
    size_t sl = len - fl;
    return (sl == 7 && strncmp(suf, "_bucket", 7) == 0) ||
           (sl == 4 && strncmp(suf, "_sum", 4) == 0) || (sl == 6 && strncmp(suf, "_count", 6) == 0);
}

/* Checks the structure of an exposition: each family declared once (# HELP then # TYPE), every
 * sample under the family declared last, no family declared again later. Returns the number of
 * families, or -1 after reporting the first problem. */
static int check_structure(const char *text)
{
    char families[64][128];
    int nfam = 0;
    char current[128] = "";
    bool histogram = false, typed = false;
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        if (!eol) {
            ST_FAIL_AT("text does not end in a newline: \"%s\"", line);
            return -1;
        }
        size_t len = (size_t)(eol - line);
        char name[128];
        if (strncmp(line, "# HELP ", 7) == 0) {
            if (sscanf(line + 7, "%127s", name) != 1) {
                ST_FAIL_AT("bad HELP line \"%.*s\"", (int)len, line);
                return -1;
            }
            for (int i = 0; i < nfam; i++)
                if (strcmp(families[i], name) == 0) {
                    ST_FAIL_AT("family %s declared a second time:\n%s", name, text);
                    return -1;
                }
            if (nfam == 64) {
                ST_FAIL_AT("more than 64 families");
                return -1;
            }
            snprintf(families[nfam++], sizeof families[0], "%s", name);
            snprintf(current, sizeof current, "%s", name);
            typed = false;
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            char type[32];
            if (sscanf(line + 7, "%127s %31s", name, type) != 2 || strcmp(name, current) != 0 ||
                typed) {
                ST_FAIL_AT("TYPE line \"%.*s\" is not the one right after # HELP %s", (int)len,
                           line, current);
                return -1;
            }
            typed = true;
            histogram = strcmp(type, "histogram") == 0;
        } else {
            size_t nl = strcspn(line, "{ ");
            if (!typed || !belongs(line, nl, current, histogram)) {
                ST_FAIL_AT("sample \"%.*s\" outside its family's block (current %s):\n%s", (int)len,
                           line, current, text);
                return -1;
            }
        }
        line = eol + 1;
    }
    return nfam;
}

/* The value printed on the line that starts with prefix, as text. */
static const char *value_of(const char *text, const char *prefix, char *out, size_t size)
{
    size_t pl = strlen(prefix);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, prefix, pl) == 0 && line[pl] == ' ') {
            size_t n = strcspn(line + pl + 1, "\n");
            snprintf(out, size, "%.*s", (int)n, line + pl + 1);
            return out;
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return NULL;
}

/* The registration order of the enricher and predictor (one label set of family A, one of B, the
 * next of A, ...) comes out grouped, and exactly as specified. */
static void test_interleaved_families_grouped(void)
{
    static const double bounds[] = {0.1, 0.25, 1};
    st_metrics_reset();
    st_metric_t *a1 = st_metrics_counter("t_records_total", "source=\"lru\"", "Records.");
    st_metric_t *b1 = st_metrics_counter("t_enqueue_total", "source=\"lru\"", "Enqueued.");
    st_metric_t *h1 = st_metrics_histogram("t_wait_seconds", "stage=\"a\"", "Waits.", bounds, 3);
    st_metric_t *a2 = st_metrics_counter("t_records_total", "source=\"redis\"", "Records.");
    st_metric_t *g = st_metrics_gauge("t_depth", NULL, "Depth.\nIn records \\ tracks.");
    st_metric_t *b2 = st_metrics_counter("t_enqueue_total", "source=\"redis\"", "Enqueued.");
    st_metric_t *h2 = st_metrics_histogram("t_wait_seconds", "stage=\"b\"", "Waits.", bounds, 3);
    st_metric_t *a3 = st_metrics_counter("t_records_total", NULL, "Records.");
    /* Registering an existing (name, labels) again returns the same metric. */
    ST_CHECK(st_metrics_counter("t_records_total", "source=\"lru\"", "other help") == a1);
    st_metric_inc(a1, 3);
    st_metric_inc(a2, 5);
    st_metric_inc(a3, 1);
    st_metric_inc(b1, 7);
    st_metric_inc(b2, 11);
    st_metric_set(g, 0.1);
    st_metric_observe(h1, 0.05);
    st_metric_observe(h1, 0.1); /* on a bound: that bucket (le is inclusive) */
    st_metric_observe(h1, 0.3);
    st_metric_observe(h1, 7);
    st_metric_observe(h2, 0.2);
    char *text = render();
    ST_REQUIRE(text);
    ST_EQ_STR(text, "# HELP t_records_total Records.\n"
                    "# TYPE t_records_total counter\n"
                    "t_records_total{source=\"lru\"} 3\n"
                    "t_records_total{source=\"redis\"} 5\n"
                    "t_records_total 1\n"
                    "# HELP t_enqueue_total Enqueued.\n"
                    "# TYPE t_enqueue_total counter\n"
                    "t_enqueue_total{source=\"lru\"} 7\n"
                    "t_enqueue_total{source=\"redis\"} 11\n"
                    "# HELP t_wait_seconds Waits.\n"
                    "# TYPE t_wait_seconds histogram\n"
                    "t_wait_seconds_bucket{stage=\"a\",le=\"0.1\"} 2\n"
                    "t_wait_seconds_bucket{stage=\"a\",le=\"0.25\"} 2\n"
                    "t_wait_seconds_bucket{stage=\"a\",le=\"1\"} 3\n"
                    "t_wait_seconds_bucket{stage=\"a\",le=\"+Inf\"} 4\n"
                    "t_wait_seconds_sum{stage=\"a\"} 7.45\n"
                    "t_wait_seconds_count{stage=\"a\"} 4\n"
                    "t_wait_seconds_bucket{stage=\"b\",le=\"0.1\"} 0\n"
                    "t_wait_seconds_bucket{stage=\"b\",le=\"0.25\"} 1\n"
                    "t_wait_seconds_bucket{stage=\"b\",le=\"1\"} 1\n"
                    "t_wait_seconds_bucket{stage=\"b\",le=\"+Inf\"} 1\n"
                    "t_wait_seconds_sum{stage=\"b\"} 0.2\n"
                    "t_wait_seconds_count{stage=\"b\"} 1\n"
                    "# HELP t_depth Depth.\\nIn records \\\\ tracks.\n"
                    "# TYPE t_depth gauge\n"
                    "t_depth 0.1\n");
    ST_EQ_INT(check_structure(text), 4);
    free(text);
    st_metrics_reset();
}

/* A label set registered long after the first one (the predictor's model_info after a hot swap)
 * joins its family, among many other registrations. */
static void test_late_label_set_joins_family(void)
{
    st_metrics_reset();
    char name[64], labels[64];
    st_metric_set(st_metrics_gauge("t_model_info", "model_version=\"none\"", "Model in use."), 0);
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "t_family_%d_total", i % 10);
        snprintf(labels, sizeof labels, "shard=\"%d\"", i);
        st_metric_inc(st_metrics_counter(name, labels, "A family."), (uint64_t)i);
        if (i == 25)
            st_metric_set(st_metrics_gauge("t_model_info", "model_version=\"b-1\"", "x"), 1);
    }
    char *text = render();
    ST_REQUIRE(text);
    ST_EQ_INT(check_structure(text), 11);
    ST_CHECK(strstr(text, "# TYPE t_model_info gauge\n"
                          "t_model_info{model_version=\"none\"} 0\n"
                          "t_model_info{model_version=\"b-1\"} 1\n"
                          "# HELP t_family_0_total A family.\n") != NULL);
    /* Each family's label sets in registration order: shard 3, 13, 23, 33. */
    ST_CHECK(strstr(text, "t_family_3_total{shard=\"3\"} 3\nt_family_3_total{shard=\"13\"} 13\n"
                          "t_family_3_total{shard=\"23\"} 23\nt_family_3_total{shard=\"33\"} 33\n"
                          "# HELP t_family_4_total") != NULL);
    free(text);
    st_metrics_reset();
}

/* Numbers: the shortest form that reads back as the same double. */
static void test_number_format(void)
{
    char s[32];
    static const struct {
        double v;
        const char *want;
    } cases[] = {{0.1, "0.1"},
                 {0.25, "0.25"},
                 {1, "1"},
                 {10, "10"},
                 {0.0001, "0.0001"},
                 {0.00025, "0.00025"},
                 {1e-7, "1e-07"},
                 {123456789012.0, "123456789012"},
                 {2391.2, "2391.2"},
                 {0.1 + 0.2, "0.30000000000000004"},
                 {1.0 / 3, "0.3333333333333333"},
                 {1e16, "10000000000000000"},
                 {1.5e17, "1.5e+17"},
                 {2e-5, "2e-05"},
                 {-2.5, "-2.5"},
                 {1e300, "1e+300"},
                 {INFINITY, "+Inf"},
                 {-INFINITY, "-Inf"},
                 {NAN, "NaN"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_metrics_format_double(s, sizeof s, cases[i].v);
        ST_EQ_STR(s, cases[i].want);
        if (isfinite(cases[i].v))
            ST_CHECK(strtod(s, NULL) == cases[i].v);
    }
    /* The shared latency buckets: seconds, every le short. */
    static const char *want_le[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
                                    "0.01",   "0.025",   "0.05",   "0.1",   "0.25",   "0.5",
                                    "1",      "2.5",     "5",      "10"};
    ST_REQUIRE(st_metrics_latency_seconds_nbuckets == sizeof want_le / sizeof want_le[0]);
    st_metrics_reset();
    st_metrics_histogram("t_batch_duration_seconds", NULL, "Batches.",
                         st_metrics_latency_seconds_buckets, st_metrics_latency_seconds_nbuckets);
    char *text = render();
    ST_REQUIRE(text);
    char series[128], got[32];
    for (size_t i = 0; i < st_metrics_latency_seconds_nbuckets; i++) {
        snprintf(series, sizeof series, "t_batch_duration_seconds_bucket{le=\"%s\"}", want_le[i]);
        ST_CHECK(value_of(text, series, got, sizeof got) != NULL);
    }
    ST_CHECK(value_of(text, "t_batch_duration_seconds_bucket{le=\"+Inf\"}", got, sizeof got));
    ST_CHECK(strstr(text, "0000000") == NULL);
    free(text);
    st_metrics_reset();
}

/* Many observations: every bucket count at least the one before, _count the +Inf bucket, _sum
 * the sum. */
static void test_histogram_cumulative(void)
{
    static const double bounds[] = {0.001, 0.01, 0.1, 1};
    st_metrics_reset();
    st_metric_t *h = st_metrics_histogram("t_lat_seconds", NULL, "Latency.", bounds, 4);
    double sum = 0;
    for (int i = 0; i < 1000; i++) {
        double v = (double)(i % 17) * 0.0137;
        st_metric_observe(h, v);
        sum += v;
    }
    char *text = render();
    ST_REQUIRE(text);
    ST_EQ_INT(check_structure(text), 1);
    char got[32], series[96];
    long long prev = -1;
    static const char *les[] = {"0.001", "0.01", "0.1", "1", "+Inf"};
    for (int i = 0; i < 5; i++) {
        snprintf(series, sizeof series, "t_lat_seconds_bucket{le=\"%s\"}", les[i]);
        ST_REQUIRE(value_of(text, series, got, sizeof got));
        long long n = atoll(got);
        ST_CHECK(n >= prev);
        prev = n;
    }
    ST_EQ_INT(prev, 1000);
    ST_REQUIRE(value_of(text, "t_lat_seconds_count", got, sizeof got));
    ST_EQ_INT(atoll(got), 1000);
    ST_REQUIRE(value_of(text, "t_lat_seconds_sum", got, sizeof got));
    ST_NEAR(strtod(got, NULL), sum, 1e-9);
    free(text);
    st_metrics_reset();
}

/* A counter of seconds: whole counts print as integers; once fractional amounts are added it
 * prints their sum with the counts, and st_metric_value agrees. */
static void test_fractional_counter(void)
{
    st_metrics_reset();
    st_metric_t *n = st_metrics_counter("t_things_total", NULL, "Things.");
    st_metric_t *s = st_metrics_counter("t_busy_seconds_total", "phase=\"poll\"", "Busy.");
    st_metric_inc(n, 3);
    st_metric_add(s, 0.25);
    st_metric_add(s, 1.5);
    char *text = render();
    ST_REQUIRE(text);
    ST_EQ_INT(check_structure(text), 2);
    char got[32];
    ST_REQUIRE(value_of(text, "t_things_total", got, sizeof got));
    ST_EQ_STR(got, "3");
    ST_REQUIRE(value_of(text, "t_busy_seconds_total{phase=\"poll\"}", got, sizeof got));
    ST_EQ_STR(got, "1.75");
    ST_NEAR(st_metric_value(s), 1.75, 1e-12);
    ST_NEAR(st_metric_value(n), 3, 1e-12);
    free(text);
    st_metrics_reset();
}

/* One name registered as two kinds cannot be rendered as one family: registration aborts. */
static void test_kind_conflict_aborts(void)
{
    fflush(NULL);
    pid_t pid = fork();
    ST_REQUIRE(pid >= 0);
    if (pid == 0) {
        /* Keep the child's expected abort message out of the test log. */
        if (!freopen("/dev/null", "w", stderr))
            _exit(3);
        st_metrics_reset();
        st_metrics_counter("t_conflict_total", "a=\"1\"", "x");
        st_metrics_gauge("t_conflict_total", "a=\"2\"", "x");
        _exit(0);
    }
    int status = 0;
    ST_REQUIRE(waitpid(pid, &status, 0) == pid);
    ST_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

/* The process_* families: each once, typed, with plausible values for this process. */
static void test_process_metrics(void)
{
    st_buf_t b = ST_BUF_INIT;
    ST_REQUIRE(st_metrics_render_process(&b) == 0);
    ST_REQUIRE(b.data);
    ST_EQ_INT(check_structure(b.data), 6);
    char got[32];
    ST_REQUIRE(value_of(b.data, "process_cpu_seconds_total", got, sizeof got));
    ST_CHECK(strtod(got, NULL) >= 0);
    ST_CHECK(strstr(b.data, "# TYPE process_cpu_seconds_total counter\n") != NULL);
    ST_REQUIRE(value_of(b.data, "process_resident_memory_bytes", got, sizeof got));
    ST_CHECK(strtod(got, NULL) > 100000);
    ST_REQUIRE(value_of(b.data, "process_virtual_memory_bytes", got, sizeof got));
    ST_CHECK(strtod(got, NULL) > 100000);
    ST_REQUIRE(value_of(b.data, "process_start_time_seconds", got, sizeof got));
    double start = strtod(got, NULL), now = (double)time(NULL);
    ST_CHECK(start <= now + 1 && start > now - 600);
    ST_REQUIRE(value_of(b.data, "process_open_fds", got, sizeof got));
    double fds = strtod(got, NULL);
    ST_CHECK(fds >= 3);
    /* One more descriptor open shows up at the next scrape. */
    int fd = dup(1);
    ST_REQUIRE(fd >= 0);
    st_buf_reset(&b);
    ST_REQUIRE(st_metrics_render_process(&b) == 0);
    ST_REQUIRE(value_of(b.data, "process_open_fds", got, sizeof got));
    ST_NEAR(strtod(got, NULL), fds + 1, 0);
    close(fd);
    ST_REQUIRE(value_of(b.data, "process_max_fds", got, sizeof got));
    ST_CHECK(strtod(got, NULL) >= fds);
    st_buf_free(&b);
}

int main(void)
{
    ST_RUN(test_interleaved_families_grouped);
    ST_RUN(test_late_label_set_joins_family);
    ST_RUN(test_number_format);
    ST_RUN(test_histogram_cumulative);
    ST_RUN(test_fractional_counter);
    ST_RUN(test_kind_conflict_aborts);
    ST_RUN(test_process_metrics);
    return st_test_summary();
}
