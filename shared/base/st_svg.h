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
} st_svg_series_t;

/* One polyline with markers per series, a legend when any series has a name. */
int st_svg_line_chart(const char *path, const char *title, const char *x_label, const char *y_label,
                      const st_svg_series_t *series, int n_series, char *errstr,
                      size_t errstr_size);

/* Points coloured by labels (NULL: one colour), with a "cluster N" legend. */
int st_svg_scatter(const char *path, const char *title, const char *x_label, const char *y_label,
                   const double *x, const double *y, const int *labels, size_t n, char *errstr,
                   size_t errstr_size);

/* The classic silhouette plot: per cluster, the samples' values sorted and filled as horizontal
 * bars, cluster numbers on the left and a dashed line at the mean value. labels >= 0. */
int st_svg_silhouette(const char *path, const char *title, const double *values, const int *labels,
                      size_t n, char *errstr, size_t errstr_size);

/* Predicted (y) against actual (x) on equal axes, with the y = x diagonal; unit (e.g. "s") is
 * appended to the axis labels, may be NULL. */
int st_svg_pred_actual(const char *path, const char *title, const double *actual,
                       const double *predicted, size_t n, const char *unit, char *errstr,
                       size_t errstr_size);

#endif
