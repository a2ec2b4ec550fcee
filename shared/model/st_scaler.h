/* st_scaler.h - a standard (z-score) scaler like scikit-learn's StandardScaler: per-column mean
 * and population standard deviation, fit on training rows only, transform and inverse in place,
 * saved in its own model file. */
#ifndef ST_SCALER_H
#define ST_SCALER_H

#include <stddef.h>

typedef struct st_scaler st_scaler_t;

/* A scaler of dim columns, identity until fit (caller owns; st_scaler_destroy). NULL with
 * errstr when dim is outside 1..65536 or memory runs out. */
st_scaler_t *st_scaler_new(int dim, char *errstr, size_t errstr_size);
void st_scaler_destroy(st_scaler_t *s);
int st_scaler_dim(const st_scaler_t *s);

/* Fits on rows x dim floats (row-major). cols (dim flags, NULL = all) chooses the columns to
 * scale; the others (e.g. categorical ids) keep mean 0 and scale 1. Non-finite values are
 * skipped; a column with no finite value or zero variance gets scale 1 (as scikit-learn).
 * Returns the number of skipped non-finite values. */
size_t st_scaler_fit(st_scaler_t *s, const float *x, size_t rows, const unsigned char *cols);
/* Fits on the valid steps of n right-aligned sequences (the st_nn layout: n x steps x dim,
 * lengths NULL = full), so padding never enters the statistics. */
size_t st_scaler_fit_seq(st_scaler_t *s, const float *x, size_t n, int steps, const int *lengths,
                         const unsigned char *cols);
/* x = (x - mean) / scale, in place over rows x dim. */
void st_scaler_transform(const st_scaler_t *s, float *x, size_t rows);
/* x = x * scale + mean, in place over rows x dim. */
void st_scaler_inverse(const st_scaler_t *s, float *x, size_t rows);
double st_scaler_mean(const st_scaler_t *s, int col);
double st_scaler_scale(const st_scaler_t *s, int col);

/* Model file of kind SCAL (see st_model.h). Return 0 / the new scaler, or -1 / NULL with
 * errstr. */
int st_scaler_save(const st_scaler_t *s, const char *path, char *errstr, size_t errstr_size);
st_scaler_t *st_scaler_load(const char *path, char *errstr, size_t errstr_size);

#endif
