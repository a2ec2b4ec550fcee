/* st_scaler.c - z-score scaling with Welford statistics in double precision. */
#include "st_scaler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "st_err.h"
#include "st_model.h"

#define SCALER_KIND_VERSION 1u

struct st_scaler {
    int dim;
    double *mean;
    double *scale;
};

st_scaler_t *st_scaler_new(int dim, char *errstr, size_t errstr_size)
{
    if (dim < 1 || dim > 65536) {
        st_errstr(errstr, errstr_size, "scaler: dim %d outside 1..65536", dim);
        return NULL;
    }
    st_scaler_t *s = calloc(1, sizeof *s);
    if (s) {
        s->mean = calloc((size_t)dim, sizeof(double));
        s->scale = malloc((size_t)dim * sizeof(double));
    }
    if (!s || !s->mean || !s->scale) {
        st_scaler_destroy(s);
        st_errstr(errstr, errstr_size, "scaler: out of memory");
        return NULL;
    }
    s->dim = dim;
    for (int j = 0; j < dim; j++)
        s->scale[j] = 1.0;
    return s;
}

void st_scaler_destroy(st_scaler_t *s)
{
    if (!s)
        return;
    free(s->mean);
    free(s->scale);
    free(s);
}

int st_scaler_dim(const st_scaler_t *s)
{
    return s->dim;
}

double st_scaler_mean(const st_scaler_t *s, int col)
{
    return s->mean[col];
}

double st_scaler_scale(const st_scaler_t *s, int col)
{
    return s->scale[col];
}

/* Shared by both fits: rows are visited through a callback-free index mapping. */
static size_t fit_rows(st_scaler_t *s, const float *x, size_t n, int steps, const int *lengths,
                       const unsigned char *cols)
{
    size_t skipped = 0;
    for (int j = 0; j < s->dim; j++) {
        s->mean[j] = 0.0;
        s->scale[j] = 1.0;
        if (cols && !cols[j])
            continue;
        double mean = 0.0, m2 = 0.0;
        size_t count = 0;
        for (size_t i = 0; i < n; i++) {
            int len = lengths ? lengths[i] : steps;
            len = len < 1 ? 1 : (len > steps ? steps : len);
            for (int t = steps - len; t < steps; t++) {
                double v = x[(i * (size_t)steps + (size_t)t) * (size_t)s->dim + (size_t)j];
                if (!isfinite(v)) {
                    skipped++;
                    continue;
                }
                count++;
                double delta = v - mean;
                mean += delta / (double)count;
                m2 += delta * (v - mean);
            }
        }
        if (count == 0)
            continue;
        s->mean[j] = mean;
        double sd = sqrt(m2 / (double)count);
        s->scale[j] = sd > 0.0 && isfinite(sd) ? sd : 1.0;
    }
    return skipped;
}

size_t st_scaler_fit(st_scaler_t *s, const float *x, size_t rows, const unsigned char *cols)
{
    return fit_rows(s, x, rows, 1, NULL, cols);
}

size_t st_scaler_fit_seq(st_scaler_t *s, const float *x, size_t n, int steps, const int *lengths,
                         const unsigned char *cols)
{
    return fit_rows(s, x, n, steps < 1 ? 1 : steps, lengths, cols);
}

void st_scaler_transform(const st_scaler_t *s, float *x, size_t rows)
{
    for (size_t i = 0; i < rows; i++)
        for (int j = 0; j < s->dim; j++) {
            float *v = &x[i * (size_t)s->dim + (size_t)j];
            *v = (float)(((double)*v - s->mean[j]) / s->scale[j]);
        }
}

void st_scaler_inverse(const st_scaler_t *s, float *x, size_t rows)
{
    for (size_t i = 0; i < rows; i++)
        for (int j = 0; j < s->dim; j++) {
            float *v = &x[i * (size_t)s->dim + (size_t)j];
            *v = (float)((double)*v * s->scale[j] + s->mean[j]);
        }
}

int st_scaler_save(const st_scaler_t *s, const char *path, char *errstr, size_t errstr_size)
{
    st_buf_t b = ST_BUF_INIT;
    int fail = st_model_put_u32(&b, (uint32_t)s->dim);
    fail |= st_model_put_f64s(&b, s->mean, (size_t)s->dim);
    fail |= st_model_put_f64s(&b, s->scale, (size_t)s->dim);
    int rc = fail ? st_errstr(errstr, errstr_size, "%s: out of memory", path)
                  : st_model_save(path, ST_MODEL_KIND_SCALER, SCALER_KIND_VERSION, &b, errstr,
                                  errstr_size);
    st_buf_free(&b);
    return rc;
}

st_scaler_t *st_scaler_load(const char *path, char *errstr, size_t errstr_size)
{
    void *payload = NULL;
    size_t len = 0;
    uint32_t version = 0, dim = 0;
    if (st_model_load(path, ST_MODEL_KIND_SCALER, &payload, &len, &version, errstr, errstr_size) !=
        0)
        return NULL;
    st_scaler_t *s = NULL;
    st_model_reader_t r;
    st_model_reader_init(&r, payload, len);
    if (version != SCALER_KIND_VERSION) {
        st_errstr(errstr, errstr_size, "%s: unsupported scaler layout version %u", path, version);
    } else if (st_model_get_u32(&r, &dim) != 0 || dim < 1 || dim > 65536) {
        st_errstr(errstr, errstr_size, "%s: bad scaler payload: %s", path,
                  r.err[0] ? r.err : "dimension out of range");
    } else {
        char why[160];
        s = st_scaler_new((int)dim, why, sizeof why);
        if (!s) {
            st_errstr(errstr, errstr_size, "%s: %s", path, why);
        } else if (st_model_get_f64s(&r, s->mean, dim) != 0 ||
                   st_model_get_f64s(&r, s->scale, dim) != 0 || st_model_reader_done(&r) != 0) {
            st_errstr(errstr, errstr_size, "%s: bad scaler payload: %s", path, r.err);
            st_scaler_destroy(s);
            s = NULL;
        } else {
            for (uint32_t j = 0; j < dim; j++)
                if (!isfinite(s->mean[j]) || !(s->scale[j] > 0.0) || !isfinite(s->scale[j])) {
                    st_errstr(errstr, errstr_size, "%s: bad scaler: column %u has mean %g scale %g",
                              path, j, s->mean[j], s->scale[j]);
                    st_scaler_destroy(s);
                    s = NULL;
                    break;
                }
        }
    }
    free(payload);
    return s;
}
