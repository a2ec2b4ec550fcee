/* Unit tests of st_svg: every plot is well-formed XML (checked by python3's minidom), holds the
 * expected marks, escapes text and skips non-finite values. */
#include <sys/wait.h>
#include <unistd.h>

#include "st_svg.h"
#include "st_test.h"

static char dir[256];

static void path_of(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = calloc((size_t)n + 1, 1);
    if (fread(p, 1, (size_t)n, f) != (size_t)n)
        p[0] = '\0';
    fclose(f);
    return p;
}

static int count(const char *s, const char *needle)
{
    int c = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        c++;
    return c;
}

/* 0 when python3 parses the file as XML with an <svg> root. */
static int xml_ok(const char *path)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import sys, xml.dom.minidom as m; "
             "d = m.parse(sys.argv[1]); sys.exit(d.documentElement.tagName != 'svg')\" '%s'",
             path);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_line_chart(void)
{
    char path[512], err[256];
    path_of(path, sizeof path, "elbow.svg");
    double k[8], inertia[8], val[8];
    for (int i = 0; i < 8; i++) {
        k[i] = i + 1;
        inertia[i] = 1000.0 / (i + 1);
        val[i] = i == 3 ? NAN : 900.0 / (i + 1);
    }
    st_svg_series_t s[2] = {{"train <loss> & \"more\"", k, inertia, 8}, {"validation", k, val, 8}};
    ST_REQUIRE(st_svg_line_chart(path, "Elbow: k < 9", "k", "inertia", s, 2, err, sizeof err) == 0);
    ST_EQ_INT(xml_ok(path), 0);
    char *t = slurp(path);
    ST_REQUIRE(t != NULL);
    ST_EQ_INT(count(t, "<polyline"), 2);
    ST_EQ_INT(count(t, "<circle"), 15); /* the NaN point is skipped */
    ST_CHECK(strstr(t, "train &lt;loss&gt; &amp; &quot;more&quot;") != NULL);
    ST_CHECK(strstr(t, "nan") == NULL);
    free(t);
}

static void test_scatter(void)
{
    char path[512], err[256];
    path_of(path, sizeof path, "clusters.svg");
    double x[50], y[50];
    int lab[50];
    for (int i = 0; i < 50; i++) {
        x[i] = i % 10;
        y[i] = i / 10;
        lab[i] = i % 3;
    }
    y[4] = INFINITY;
    ST_REQUIRE(st_svg_scatter(path, "users", "mean length (s)", "sessions", x, y, lab, 50, err,
                              sizeof err) == 0);
    ST_EQ_INT(xml_ok(path), 0);
    char *t = slurp(path);
    ST_EQ_INT(count(t, "<circle"), 49);
    ST_CHECK(strstr(t, "cluster 2") != NULL);
    ST_CHECK(strstr(t, "cluster 3") == NULL);
    free(t);
}

static void test_silhouette(void)
{
    char path[512], err[256];
    path_of(path, sizeof path, "silhouette.svg");
    double v[30];
    int lab[30];
    for (int i = 0; i < 30; i++) {
        v[i] = (i % 7) / 7.0 - 0.2;
        lab[i] = i % 3;
    }
    ST_REQUIRE(st_svg_silhouette(path, "silhouette, k = 3", v, lab, 30, err, sizeof err) == 0);
    ST_EQ_INT(xml_ok(path), 0);
    char *t = slurp(path);
    ST_EQ_INT(count(t, "<polygon"), 3);
    ST_CHECK(strstr(t, "mean ") != NULL);
    free(t);
}

static void test_pred_actual(void)
{
    char path[512], err[256];
    path_of(path, sizeof path, "pred.svg");
    double a[100], p[100];
    for (int i = 0; i < 100; i++) {
        a[i] = i * 60.0;
        p[i] = i * 55.0 + 300.0;
    }
    ST_REQUIRE(st_svg_pred_actual(path, "LSTM test set", a, p, 100, "s", err, sizeof err) == 0);
    ST_EQ_INT(xml_ok(path), 0);
    char *t = slurp(path);
    ST_EQ_INT(count(t, "<circle"), 100);
    ST_CHECK(strstr(t, "actual (s)") != NULL);
    ST_CHECK(strstr(t, "y = x") != NULL);
    free(t);
    /* empty input still gives a valid (empty) plot */
    ST_REQUIRE(st_svg_pred_actual(path, "empty", a, p, 0, NULL, err, sizeof err) == 0);
    ST_EQ_INT(xml_ok(path), 0);
}

static void test_unwritable(void)
{
    char err[256] = "";
    double x = 1, y = 1;
    ST_CHECK(st_svg_scatter("/nonexistent/dir/a.svg", "t", "x", "y", &x, &y, NULL, 1, err,
                            sizeof err) == -1);
    ST_CHECK(strstr(err, "cannot create") != NULL);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/stint_test_svg_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    ST_RUN(test_line_chart);
    ST_RUN(test_scatter);
    ST_RUN(test_silhouette);
    ST_RUN(test_pred_actual);
    ST_RUN(test_unwritable);
    if (!getenv("STINT_KEEP_SVG")) {
        const char *names[] = {"elbow.svg", "clusters.svg", "silhouette.svg", "pred.svg"};
        for (size_t i = 0; i < 4; i++) {
            char p[512];
            path_of(p, sizeof p, names[i]);
            remove(p);
        }
        rmdir(dir);
    } else {
        printf("plots kept in %s\n", dir);
    }
    return st_test_summary();
}
