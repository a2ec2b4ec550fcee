/* st_svg.c - a small SVG plotting kit: axes with rounded ticks, a colour cycle, and the four
 * report plots declared in st_svg.h. */
#include "st_svg.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_buf.h"
#include "st_err.h"

#define WIDTH    760.0
#define HEIGHT   480.0
#define LEFT     80.0
#define RIGHT    150.0
#define TOP      48.0
#define BOTTOM   58.0
#define PLOT_W   (WIDTH - LEFT - RIGHT)
#define PLOT_H   (HEIGHT - TOP - BOTTOM)
#define MAX_TICK 12

/* Twelve distinct hues (Tableau 10 plus black and gold); past twelve series the dash patterns
 * tell them apart, so up to 48 series are distinct. */
static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                      "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                      "#bcbd22", "#17becf", "#000000", "#e6b800"};
#define N_COLOURS ((int)(sizeof palette / sizeof palette[0]))
static const char *const dashes[] = {NULL, "7 4", "2 3", "9 3 2 3"};
#define N_DASHES ((int)(sizeof dashes / sizeof dashes[0]))

static const char *colour(int i)
{
    return palette[((i % N_COLOURS) + N_COLOURS) % N_COLOURS];
}

typedef struct {
    double x0, x1, y0, y1; /* data range shown */
    int log_x, log_y;      /* log10 axes (x0, y0 > 0 then) */
    int int_x;             /* x ticks at whole numbers only */
} frame_t;

static void esc(st_buf_t *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            st_buf_append_str(b, "&amp;");
            break;
        case '<':
            st_buf_append_str(b, "&lt;");
            break;
        case '>':
            st_buf_append_str(b, "&gt;");
            break;
        case '"':
            st_buf_append_str(b, "&quot;");
            break;
        case '\'':
            st_buf_append_str(b, "&#39;");
            break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t')
                st_buf_append(b, s, 1);
        }
    }
}

static double frac(double v, double lo, double hi, int log_axis)
{
    if (log_axis)
        return (log10(v) - log10(lo)) / (log10(hi) - log10(lo));
    return (v - lo) / (hi - lo);
}

static double px(const frame_t *f, double x)
{
    return LEFT + frac(x, f->x0, f->x1, f->log_x) * PLOT_W;
}

static double py(const frame_t *f, double y)
{
    return TOP + PLOT_H - frac(y, f->y0, f->y1, f->log_y) * PLOT_H;
}

/* A point can be drawn: finite, and positive on a log axis. */
static int shown(const frame_t *f, double x, double y)
{
    return isfinite(x) && isfinite(y) && (!f->log_x || x > 0) && (!f->log_y || y > 0);
}

/* A "nice" tick step (1, 2, 5 x 10^k) giving about 5 ticks over span. */
static double tick_step(double span)
{
    double raw = span / 5.0, mag = pow(10.0, floor(log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1.0 : r < 3.5 ? 2.0 : r < 7.5 ? 5.0 : 10.0) * mag;
}

/* Widens [lo, hi] to tick multiples (or a unit interval when empty or flat). */
static void nice_range(double *lo, double *hi)
{
    if (!isfinite(*lo) || !isfinite(*hi)) {
        *lo = 0.0;
        *hi = 1.0;
        return;
    }
    if (*hi - *lo <= 1e-12 * fmax(1.0, fabs(*hi))) {
        double pad = fabs(*hi) > 0.0 ? 0.5 * fabs(*hi) : 1.0;
        *lo -= pad;
        *hi += pad;
    }
    double step = tick_step(*hi - *lo);
    *lo = floor(*lo / step) * step;
    *hi = ceil(*hi / step) * step;
}

/* Widens [lo, hi] (lo > 0) to whole decades. */
static void nice_range_log(double *lo, double *hi)
{
    if (!isfinite(*lo) || !isfinite(*hi) || *lo <= 0) {
        *lo = 1.0;
        *hi = 10.0;
        return;
    }
    *lo = pow(10.0, floor(log10(*lo) + 1e-9));
    *hi = pow(10.0, ceil(log10(*hi) - 1e-9));
    if (*hi <= *lo)
        *hi = *lo * 10.0;
}

/* Tick values of one axis into v (at most cap); *step is the linear step (for the labels' digits,
 * 0 on a log axis), at least 1 when integer. Log axes tick every decade, and at 2 and 5 x too over
 * at most three decades. */
static int ticks(double lo, double hi, int log_axis, int integer, double *v, int cap, double *step)
{
    int n = 0;
    if (log_axis) {
        *step = 0;
        int d0 = (int)floor(log10(lo) + 1e-9), d1 = (int)ceil(log10(hi) - 1e-9);
        static const double all[] = {1, 2, 5}, one[] = {1};
        const double *m = d1 - d0 <= 3 ? all : one;
        int nm = d1 - d0 <= 3 ? 3 : 1;
        for (int d = d0; d <= d1; d++)
            for (int i = 0; i < nm && n < cap; i++) {
                double t = m[i] * pow(10.0, d);
                if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9))
                    v[n++] = t;
            }
        return n;
    }
    double s = tick_step(hi - lo);
    if (integer && s < 1.0)
        s = 1.0;
    *step = s;
    for (int i = 0; i <= MAX_TICK * 2 && n < cap; i++) {
        double t = ceil(lo / s - 1e-9) * s + i * s;
        if (t > hi + s * 1e-9)
            break;
        v[n++] = t;
    }
    return n;
}

static void fmt_num(char *out, size_t size, double v, double step)
{
    if (step == 0) { /* a log axis: 1, 2, 5 x 10^k */
        if (v >= 1e5)
            snprintf(out, size, "%gk", v / 1000.0);
        else
            snprintf(out, size, "%g", v);
        return;
    }
    if (fabs(v) < step * 1e-6)
        v = 0.0;
    if (fabs(v) >= 1e6 || (fabs(v) > 0.0 && fabs(v) < 1e-3))
        snprintf(out, size, "%.2g", v);
    else if (step >= 1.0)
        snprintf(out, size, "%.0f", v);
    else
        snprintf(out, size, "%.*f", (int)ceil(-log10(step)), v);
}

static void begin(st_buf_t *b, const char *title)
{
    st_buf_printf(b,
                  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                  "viewBox=\"0 0 %.0f %.0f\" font-family=\"Helvetica, Arial, sans-serif\" "
                  "font-size=\"12\">\n"
                  "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                  "<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" "
                  "font-weight=\"bold\">",
                  WIDTH, HEIGHT, WIDTH, HEIGHT, LEFT + PLOT_W / 2);
    esc(b, title);
    st_buf_append_str(b, "</text>\n");
}

/* Frame, grid, ticks and axis labels; y_ticks = 0 hides the y tick labels. */
static void axes(st_buf_t *b, const frame_t *f, const char *x_label, const char *y_label,
                 int y_ticks)
{
    char num[64];
    double xv[MAX_TICK * 4], yv[MAX_TICK * 4], xs, ys;
    int nx = ticks(f->x0, f->x1, f->log_x, f->int_x, xv, MAX_TICK * 4, &xs);
    int ny = y_ticks ? ticks(f->y0, f->y1, f->log_y, 0, yv, MAX_TICK * 4, &ys) : 0;
    st_buf_append_str(b, "<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n");
    for (int i = 0; i < nx; i++)
        st_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", px(f, xv[i]),
                      TOP, px(f, xv[i]), TOP + PLOT_H);
    for (int i = 0; i < ny; i++)
        st_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", LEFT,
                      py(f, yv[i]), LEFT + PLOT_W, py(f, yv[i]));
    st_buf_append_str(b, "</g>\n");
    st_buf_printf(b,
                  "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                  "stroke=\"#333\"/>\n",
                  LEFT, TOP, PLOT_W, PLOT_H);
    st_buf_append_str(b, "<g fill=\"#333\">\n");
    for (int i = 0; i < nx; i++) {
        fmt_num(num, sizeof num, xv[i], xs);
        st_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                      px(f, xv[i]), TOP + PLOT_H + 18, num);
    }
    for (int i = 0; i < ny; i++) {
        fmt_num(num, sizeof num, yv[i], ys);
        st_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", LEFT - 8,
                      py(f, yv[i]) + 4, num);
    }
    st_buf_append_str(b, "</g>\n");
    st_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", LEFT + PLOT_W / 2,
                  HEIGHT - 16);
    esc(b, x_label);
    st_buf_printf(b,
                  "</text>\n<text x=\"18\" y=\"%.1f\" text-anchor=\"middle\" "
                  "transform=\"rotate(-90 18 %.1f)\">",
                  TOP + PLOT_H / 2, TOP + PLOT_H / 2);
    esc(b, y_label);
    st_buf_append_str(b, "</text>\n");
}

static void legend_entry(st_buf_t *b, int row, const char *col, const char *text)
{
    double y = TOP + 10 + row * 20;
    st_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>\n",
                  LEFT + PLOT_W + 16, y - 6, col);
    st_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">", LEFT + PLOT_W + 34, y + 4);
    esc(b, text);
    st_buf_append_str(b, "</text>\n");
}

/* A legend row with a line sample in a dash pattern (NULL: solid). */
static void legend_line(st_buf_t *b, int row, const char *col, const char *dash, const char *text)
{
    double y = TOP + 10 + row * 20;
    st_buf_printf(b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                  "stroke-width=\"2.5\"",
                  LEFT + PLOT_W + 10, y, LEFT + PLOT_W + 32, y, col);
    if (dash)
        st_buf_printf(b, " stroke-dasharray=\"%s\"", dash);
    st_buf_printf(b, "/>\n<text x=\"%.1f\" y=\"%.1f\">", LEFT + PLOT_W + 36, y + 4);
    esc(b, text);
    st_buf_append_str(b, "</text>\n");
}

static int finish(st_buf_t *b, const char *path, char *errstr, size_t errstr_size)
{
    st_buf_append_str(b, "</svg>\n");
    FILE *f = fopen(path, "w");
    if (!f) {
        int e = errno;
        st_buf_free(b);
        return st_errstr(errstr, errstr_size, "%s: cannot create: %s", path, strerror(e));
    }
    int ok = fwrite(b->data, 1, b->len, f) == b->len;
    ok = (fclose(f) == 0) && ok;
    st_buf_free(b);
    if (!ok)
        return st_errstr(errstr, errstr_size, "%s: write failed", path);
    return 0;
}

static void extend(double *lo, double *hi, double v)
{
    if (!isfinite(v))
        return;
    if (v < *lo)
        *lo = v;
    if (v > *hi)
        *hi = v;
}

int st_svg_line_chart(const char *path, const char *title, const char *x_label, const char *y_label,
                      const st_svg_series_t *series, int n_series, char *errstr, size_t errstr_size)
{
    return st_svg_line_chart_opts(path, title, x_label, y_label, series, n_series, NULL, errstr,
                                  errstr_size);
}

int st_svg_line_chart_opts(const char *path, const char *title, const char *x_label,
                           const char *y_label, const st_svg_series_t *series, int n_series,
                           const st_svg_opts_t *opts, char *errstr, size_t errstr_size)
{
    frame_t f = {INFINITY, -INFINITY, INFINITY, -INFINITY, 0, 0, 0};
    if (opts) {
        f.log_x = opts->log_x;
        f.log_y = opts->log_y;
        f.int_x = opts->int_x;
    }
    for (int s = 0; s < n_series; s++)
        for (size_t i = 0; i < series[s].n; i++)
            if (shown(&f, series[s].x[i], series[s].y[i])) {
                extend(&f.x0, &f.x1, series[s].x[i]);
                extend(&f.y0, &f.y1, series[s].y[i]);
            }
    if (f.log_x)
        nice_range_log(&f.x0, &f.x1);
    else
        nice_range(&f.x0, &f.x1);
    if (f.log_y)
        nice_range_log(&f.y0, &f.y1);
    else
        nice_range(&f.y0, &f.y1);
    st_buf_t b = ST_BUF_INIT;
    begin(&b, title);
    axes(&b, &f, x_label, y_label, 1);
    int legend_row = 0;
    if (opts && opts->vline && isfinite(opts->vline_x) && opts->vline_x >= f.x0 &&
        opts->vline_x <= f.x1) {
        double x = px(&f, opts->vline_x);
        st_buf_printf(&b,
                      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\" "
                      "stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>\n",
                      x, TOP, x, TOP + PLOT_H);
        if (opts->vline_label) {
            st_buf_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#444\">", x + 5, TOP + 14);
            esc(&b, opts->vline_label);
            st_buf_append_str(&b, "</text>\n");
        }
    }
    for (int s = 0; s < n_series; s++) {
        const st_svg_series_t *se = &series[s];
        const char *col = colour(se->colour > 0 ? se->colour - 1 : s);
        int di = se->dash > 0                     ? se->dash % N_DASHES
                 : se->dash < 0 || se->colour > 0 ? 0
                                                  : (s / N_COLOURS) % N_DASHES;
        const char *dash = dashes[di];
        st_buf_printf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"", col);
        if (dash)
            st_buf_printf(&b, " stroke-dasharray=\"%s\"", dash);
        st_buf_append_str(&b, " points=\"");
        for (size_t i = 0; i < se->n; i++)
            if (shown(&f, se->x[i], se->y[i]))
                st_buf_printf(&b, "%.1f,%.1f ", px(&f, se->x[i]), py(&f, se->y[i]));
        st_buf_append_str(&b, "\"/>\n");
        if (se->n <= 60) {
            st_buf_printf(&b, "<g fill=\"%s\">\n", col);
            for (size_t i = 0; i < se->n; i++)
                if (shown(&f, se->x[i], se->y[i]))
                    st_buf_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\"/>\n",
                                  px(&f, se->x[i]), py(&f, se->y[i]));
            st_buf_append_str(&b, "</g>\n");
        }
        if (se->mark > 0 && (size_t)se->mark <= se->n &&
            shown(&f, se->x[se->mark - 1], se->y[se->mark - 1])) {
            double mx = px(&f, se->x[se->mark - 1]), my = py(&f, se->y[se->mark - 1]);
            st_buf_printf(&b,
                          "<circle class=\"mark\" cx=\"%.1f\" cy=\"%.1f\" r=\"7\" fill=\"none\" "
                          "stroke=\"%s\" stroke-width=\"2.5\"/>\n",
                          mx, my, col);
            if (se->mark_label) {
                st_buf_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\" font-size=\"11\">",
                              mx + 9, my - 9, col);
                esc(&b, se->mark_label);
                st_buf_append_str(&b, "</text>\n");
            }
        }
        if (se->name)
            legend_line(&b, legend_row++, col, dash, se->name);
    }
    return finish(&b, path, errstr, errstr_size);
}

int st_svg_scatter(const char *path, const char *title, const char *x_label, const char *y_label,
                   const double *x, const double *y, const int *labels, size_t n, char *errstr,
                   size_t errstr_size)
{
    frame_t f = {INFINITY, -INFINITY, INFINITY, -INFINITY, 0, 0, 0};
    int max_label = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i]))
            continue;
        extend(&f.x0, &f.x1, x[i]);
        extend(&f.y0, &f.y1, y[i]);
        if (labels && labels[i] > max_label)
            max_label = labels[i];
    }
    nice_range(&f.x0, &f.x1);
    nice_range(&f.y0, &f.y1);
    st_buf_t b = ST_BUF_INIT;
    begin(&b, title);
    axes(&b, &f, x_label, y_label, 1);
    st_buf_append_str(&b, "<g fill-opacity=\"0.75\">\n");
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i]))
            st_buf_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                          px(&f, x[i]), py(&f, y[i]), colour(labels ? labels[i] : 0));
    st_buf_append_str(&b, "</g>\n");
    for (int c = 0; labels && c <= max_label && c < 20; c++) {
        char text[32];
        snprintf(text, sizeof text, "cluster %d", c);
        legend_entry(&b, c, colour(c), text);
    }
    return finish(&b, path, errstr, errstr_size);
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

int st_svg_silhouette(const char *path, const char *title, const double *values, const int *labels,
                      size_t n, char *errstr, size_t errstr_size)
{
    int k = 0;
    double lo = 0.0, mean = 0.0;
    size_t used = 0;
    for (size_t i = 0; i < n; i++)
        if (labels[i] >= 0 && isfinite(values[i])) {
            k = labels[i] + 1 > k ? labels[i] + 1 : k;
            lo = values[i] < lo ? values[i] : lo;
            mean += values[i];
            used++;
        }
    mean = used ? mean / (double)used : 0.0;
    double *sorted = malloc((used ? used : 1) * sizeof(double));
    if (!sorted)
        return st_errstr(errstr, errstr_size, "%s: out of memory", path);
    double gap = used > 0 ? fmax(1.0, (double)used * 0.02) : 1.0;
    frame_t f = {lo < -0.1 ? floor(lo * 10.0) / 10.0 : -0.1,
                 1.0,
                 0.0,
                 (double)used + gap * (k + 1),
                 0,
                 0,
                 0};
    st_buf_t b = ST_BUF_INIT;
    begin(&b, title);
    axes(&b, &f, "silhouette value", "cluster", 0);
    double y = gap;
    for (int c = 0; c < k; c++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (labels[i] == c && isfinite(values[i]))
                sorted[m++] = values[i];
        if (m == 0)
            continue;
        qsort(sorted, m, sizeof(double), cmp_desc);
        st_buf_printf(&b, "<polygon fill=\"%s\" fill-opacity=\"0.8\" points=\"%.1f,%.1f ",
                      colour(c), px(&f, 0.0), py(&f, y));
        for (size_t i = 0; i < m; i++)
            st_buf_printf(&b, "%.1f,%.1f %.1f,%.1f ", px(&f, sorted[i]), py(&f, y + (double)i),
                          px(&f, sorted[i]), py(&f, y + (double)i + 1.0));
        st_buf_printf(&b, "%.1f,%.1f\"/>\n", px(&f, 0.0), py(&f, y + (double)m));
        st_buf_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%d</text>\n", LEFT - 8,
                      py(&f, y + (double)m / 2.0) + 4, c);
        y += (double)m + gap;
    }
    st_buf_printf(&b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" "
                  "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
                  px(&f, mean), TOP, px(&f, mean), TOP + PLOT_H);
    char text[48];
    snprintf(text, sizeof text, "mean %.3f", mean);
    legend_entry(&b, 0, "#d62728", text);
    free(sorted);
    return finish(&b, path, errstr, errstr_size);
}

int st_svg_pred_actual(const char *path, const char *title, const double *actual,
                       const double *predicted, size_t n, const char *unit, int log_axes,
                       char *errstr, size_t errstr_size)
{
    frame_t f = {INFINITY, -INFINITY, INFINITY, -INFINITY, log_axes, log_axes, 0};
    double lo = INFINITY, hi = -INFINITY;
    size_t hidden = 0;
    for (size_t i = 0; i < n; i++) {
        if (!shown(&f, actual[i], predicted[i])) {
            hidden += isfinite(actual[i]) && isfinite(predicted[i]);
            continue;
        }
        extend(&lo, &hi, actual[i]);
        extend(&lo, &hi, predicted[i]);
    }
    if (log_axes)
        nice_range_log(&lo, &hi);
    else
        nice_range(&lo, &hi);
    f.x0 = f.y0 = lo;
    f.x1 = f.y1 = hi;
    char xl[96], yl[96];
    snprintf(xl, sizeof xl, unit ? "actual (%s%s)" : "actual%s", unit ? unit : "",
             log_axes ? ", log scale" : "");
    snprintf(yl, sizeof yl, unit ? "predicted (%s%s)" : "predicted%s", unit ? unit : "",
             log_axes ? ", log scale" : "");
    st_buf_t b = ST_BUF_INIT;
    begin(&b, title);
    axes(&b, &f, xl, yl, 1);
    double r = n > 5000 ? 1.5 : 2.5;
    st_buf_append_str(&b, "<g fill=\"#1f77b4\" fill-opacity=\"0.35\">\n");
    for (size_t i = 0; i < n; i++)
        if (shown(&f, actual[i], predicted[i]))
            st_buf_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"/>\n", px(&f, actual[i]),
                          py(&f, predicted[i]), r);
    st_buf_append_str(&b, "</g>\n");
    st_buf_printf(&b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" "
                  "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
                  px(&f, lo), py(&f, lo), px(&f, hi), py(&f, hi));
    legend_entry(&b, 0, "#1f77b4", "samples");
    legend_entry(&b, 1, "#d62728", "y = x");
    if (hidden) {
        char text[64];
        snprintf(text, sizeof text, "%zu <= 0 hidden", hidden);
        legend_entry(&b, 2, "#ffffff", text);
    }
    return finish(&b, path, errstr, errstr_size);
}

int st_svg_residuals(const char *path, const char *title, const double *actual,
                     const double *predicted, size_t n, const char *unit, char *errstr,
                     size_t errstr_size)
{
    frame_t f = {INFINITY, -INFINITY, INFINITY, -INFINITY, 1, 0, 0};
    size_t hidden = 0;
    for (size_t i = 0; i < n; i++) {
        double res = predicted[i] - actual[i];
        if (!shown(&f, actual[i], res)) {
            hidden += isfinite(actual[i]) && isfinite(res);
            continue;
        }
        extend(&f.x0, &f.x1, actual[i]);
        extend(&f.y0, &f.y1, res);
    }
    nice_range_log(&f.x0, &f.x1);
    extend(&f.y0, &f.y1, 0.0);
    nice_range(&f.y0, &f.y1);
    char xl[96], yl[96];
    snprintf(xl, sizeof xl, unit ? "actual (%s, log scale)" : "actual (log scale)", unit);
    snprintf(yl, sizeof yl, unit ? "predicted - actual (%s)" : "predicted - actual", unit);
    st_buf_t b = ST_BUF_INIT;
    begin(&b, title);
    axes(&b, &f, xl, yl, 1);
    double r = n > 5000 ? 1.5 : 2.5;
    st_buf_append_str(&b, "<g fill=\"#1f77b4\" fill-opacity=\"0.35\">\n");
    for (size_t i = 0; i < n; i++) {
        double res = predicted[i] - actual[i];
        if (shown(&f, actual[i], res))
            st_buf_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"/>\n", px(&f, actual[i]),
                          py(&f, res), r);
    }
    st_buf_append_str(&b, "</g>\n");
    st_buf_printf(&b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" "
                  "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
                  LEFT, py(&f, 0.0), LEFT + PLOT_W, py(&f, 0.0));
    legend_entry(&b, 0, "#1f77b4", "samples");
    legend_entry(&b, 1, "#d62728", "residual 0");
    if (hidden) {
        char text[64];
        snprintf(text, sizeof text, "%zu <= 0 hidden", hidden);
        legend_entry(&b, 2, "#ffffff", text);
    }
    return finish(&b, path, errstr, errstr_size);
}
