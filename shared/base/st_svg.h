/* st_svg.h - report plots written as standalone SVG files (no dependency): line charts (elbow,
 * loss curves), scatter coloured by cluster, silhouette plots and predicted-vs-actual scatter
 * with the diagonal. Non-finite values are skipped. Text is XML-escaped. All functions borrow
 * their arguments and return 0, or -1 with errstr when the file cannot be written. */
#ifndef ST_SVG_H
#define ST_SVG_H

#include <stddef.h>

typedef struct {
    const char *name; /* legend text; NULL for none */
    const double *x;
    const double *y;
    size_t n;
    /* optional (0 = default): colour c - 1 of the 12-hue palette (series given the same c share
     * a colour; 0: the series' position, past 12 with a dash pattern); dash 1..3 a dash pattern,
     * -1 solid; mark: the 1-based index of a point ringed and labelled mark_label */
    int colour;
    int dash;
    int mark;
    const char *mark_label;
} st_svg_series_t;

/* Options of st_svg_line_chart_opts (NULL: linear axes, no marker line). */
typedef struct {
    int log_x, log_y; /* log10 axes; points <= 0 are then skipped */
    int vline;        /* draw a dashed vertical marker at vline_x, labelled vline_label */
    double vline_x;
    const char *vline_label;
    int int_x; /* x ticks at whole numbers only (epochs, k) */
} st_svg_opts_t;

/* One polyline with markers per series, a legend when any series has a name. */
int st_svg_line_chart(const char *path, const char *title, const char *x_label, const char *y_label,
                      const st_svg_series_t *series, int n_series, char *errstr,
                      size_t errstr_size);

int st_svg_line_chart_opts(const char *path, const char *title, const char *x_label,
                           const char *y_label, const st_svg_series_t *series, int n_series,
                           const st_svg_opts_t *opts, char *errstr, size_t errstr_size);

/* Points coloured by labels (NULL: one colour), with a "cluster N" legend. */
int st_svg_scatter(const char *path, const char *title, const char *x_label, const char *y_label,
                   const double *x, const double *y, const int *labels, size_t n, char *errstr,
                   size_t errstr_size);

/* The classic silhouette plot: per cluster, the samples' values sorted and filled as horizontal
 * bars, cluster numbers on the left and a dashed line at the mean value. labels >= 0. */
int st_svg_silhouette(const char *path, const char *title, const double *values, const int *labels,
                      size_t n, char *errstr, size_t errstr_size);

/* Predicted (y) against actual (x) on equal axes, with the y = x diagonal; unit (e.g. "s") is
 * appended to the axis labels, may be NULL. log_axes: both axes log10 in whole decades (session
 * lengths span decades; on linear axes most points sit in a corner); points <= 0 are then not
 * drawn and their count is given in the legend. */
int st_svg_pred_actual(const char *path, const char *title, const double *actual,
                       const double *predicted, size_t n, const char *unit, int log_axes,
                       char *errstr, size_t errstr_size);

/* Residuals: predicted - actual (y, linear, with the 0 line) against actual (x, log10). */
int st_svg_residuals(const char *path, const char *title, const double *actual,
                     const double *predicted, size_t n, const char *unit, char *errstr,
                     size_t errstr_size);

#endif
