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
    st_svg_series_t s[2] = {{"train <loss> & \"more\"", k, inertia, 8, 0, 0, 0, NULL},
                            {"validation", k, val, 8, 0, 0, 0, NULL}};
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
    ST_REQUIRE(st_svg_pred_actual(path, "LSTM test set", a, p, 100, "s", 0, err, sizeof err) == 0);
    ST_EQ_INT(xml_ok(path), 0);
    char *t = slurp(path);
    ST_EQ_INT(count(t, "<circle"), 100);
    ST_CHECK(strstr(t, "actual (s)") != NULL);
    ST_CHECK(strstr(t, "y = x") != NULL);
    free(t);
    /* empty input still gives a valid (empty) plot */
    ST_REQUIRE(st_svg_pred_actual(path, "empty", a, p, 0, NULL, 0, err, sizeof err) == 0);
    ST_EQ_INT(xml_ok(path), 0);
    /* log axes: whole decades (60 .. 5745 s -> 10 .. 10000), the 0 s point not drawn but
     * counted in the legend */
    ST_REQUIRE(st_svg_pred_actual(path, "log", a, p, 100, "s", 1, err, sizeof err) == 0);
    ST_EQ_INT(xml_ok(path), 0);
    t = slurp(path);
    ST_EQ_INT(count(t, "<circle"), 99);
    ST_CHECK(strstr(t, "1 &lt;= 0 hidden") != NULL);
    ST_CHECK(strstr(t, ">10000</text>") != NULL && strstr(t, ">100</text>") != NULL);
    ST_CHECK(strstr(t, "log scale") != NULL);
    ST_CHECK(strstr(t, "nan") == NULL && strstr(t, "inf") == NULL);
    free(t);
    /* residuals: log x, the zero line */
    ST_REQUIRE(st_svg_residuals(path, "residuals", a, p, 100, "s", err, sizeof err) == 0);
    ST_EQ_INT(xml_ok(path), 0);
    t = slurp(path);
    ST_EQ_INT(count(t, "<circle"), 99);
    ST_CHECK(strstr(t, "predicted - actual (s)") != NULL);
    ST_CHECK(strstr(t, "residual 0") != NULL);
    free(t);
}

/* 14 series: 12 hues, then dash patterns; a ringed, labelled point and a vertical marker. */
static void test_line_chart_opts(void)
{
    char path[512], err[256];
    path_of(path, sizeof path, "loss.svg");
    enum { NS = 14, NP = 10 };
    double x[NP], y[NS][NP];
    st_svg_series_t s[NS];
    char names[NS][16];
    for (int i = 0; i < NP; i++)
        x[i] = i + 1;
    for (int k = 0; k < NS; k++) {
        for (int i = 0; i < NP; i++)
            y[k][i] = 100.0 / (i + 1) + k;
        snprintf(names[k], sizeof names[k], "series %d", k);
        s[k] = (st_svg_series_t){names[k], x, y[k], NP, 0, 0, 0, NULL};
    }
    s[3].mark = 4;
    s[3].mark_label = "kept: epoch 4";
    st_svg_opts_t o = {0, 1, 1, 5.0, "chosen k = 5", 0};
    ST_REQUIRE(
        st_svg_line_chart_opts(path, "many", "epoch", "loss (s)", s, NS, &o, err, sizeof err) == 0);
    ST_EQ_INT(xml_ok(path), 0);
    char *t = slurp(path);
    ST_EQ_INT(count(t, "<polyline"), NS);
    /* the first 12 solid in 12 different colours, 12 and 13 dashed */
    ST_EQ_INT(count(t, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points"), 1);
    ST_EQ_INT(count(t, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" "
                       "stroke-dasharray"),
              1);
    ST_EQ_INT(count(t, "stroke=\"#e6b800\""), 2); /* the 12th hue: its polyline and legend */
    ST_EQ_INT(count(t, "class=\"mark\""), 1);
    ST_CHECK(strstr(t, "kept: epoch 4") != NULL);
    ST_CHECK(strstr(t, "chosen k = 5") != NULL);
    free(t);
    /* colour groups: two series sharing a colour, the second dashed */
    st_svg_series_t g[2] = {{"train", x, y[0], NP, 2, 0, 0, NULL},
                            {"val", x, y[1], NP, 2, 1, 0, NULL}};
    ST_REQUIRE(st_svg_line_chart_opts(path, "pair", "epoch", "loss", g, 2, NULL, err, sizeof err) ==
               0);
    t = slurp(path);
    ST_EQ_INT(count(t, "stroke=\"#ff7f0e\""), 4);
    ST_EQ_INT(count(t, "stroke-dasharray=\"7 4\""), 2);
    free(t);
    /* three epochs: fractional x ticks unless int_x */
    st_svg_series_t e = {"val", x, y[0], 3, 0, 0, 0, NULL};
    ST_REQUIRE(st_svg_line_chart_opts(path, "e", "epoch", "loss", &e, 1, NULL, err, sizeof err) ==
               0);
    t = slurp(path);
    ST_CHECK(strstr(t, ">1.5<") != NULL);
    free(t);
    st_svg_opts_t io = {.int_x = 1};
    ST_REQUIRE(st_svg_line_chart_opts(path, "e", "epoch", "loss", &e, 1, &io, err, sizeof err) ==
               0);
    t = slurp(path);
    ST_CHECK(strstr(t, ">1.5<") == NULL && strstr(t, ">2.5<") == NULL);
    ST_CHECK(strstr(t, ">1<") != NULL && strstr(t, ">2<") != NULL && strstr(t, ">3<") != NULL);
    free(t);
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
    ST_RUN(test_line_chart_opts);
    ST_RUN(test_unwritable);
    if (!getenv("STINT_KEEP_SVG")) {
        const char *names[] = {"elbow.svg", "clusters.svg", "silhouette.svg", "pred.svg",
                               "loss.svg"};
        for (size_t i = 0; i < 5; i++) {
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
