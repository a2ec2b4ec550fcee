/* st_bootstrap.h - a cluster (per-user) bootstrap of the ratio of two models' mean absolute
 * errors on the same rows: users are resampled with replacement, so the interval reflects that a
 * user's rows are correlated and the users, not the rows, are the independent units. Pure: no
 * I/O, its own seeded generator (the same inputs and seed give the same interval anywhere). */
#ifndef ST_BOOTSTRAP_H
#define ST_BOOTSTRAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double ratio;  /* sum(err_a) / sum(err_b) over all rows: MAE(a) / MAE(b) */
    double lo, hi; /* percentile interval of the resampled ratios at the requested level */
    int groups;    /* distinct groups (users) resampled */
} st_bootstrap_ratio_t;

/* MAE(a) / MAE(b) over n rows with its bootstrap interval: err_a and err_b are the two models'
 * absolute errors of the same rows, group[i] the row's user (any int; rows of a group need not
 * be adjacent). Each of `resamples` draws picks as many groups as there are, with replacement,
 * and takes sum(err_a) / sum(err_b) over the picked groups' rows; lo and hi are the (1 - level)/2
 * and (1 + level)/2 percentiles (linear interpolation) of the draws. A draw whose err_b sum is 0
 * counts as 1 when its err_a sum is 0 too, else +inf. All arguments are borrowed. Returns 0, or -1
 * with errstr when n is 0, resamples < 1, level is outside (0, 1), or memory runs out. */
int st_bootstrap_ratio(const double *err_a, const double *err_b, const int *group, size_t n,
                       int resamples, double level, uint64_t seed, st_bootstrap_ratio_t *out,
                       char *errstr, size_t errstr_size);

typedef enum {
    ST_BOOTSTRAP_BETTER = 0,  /* the whole interval is below 1 */
    ST_BOOTSTRAP_NOT_SIG = 1, /* the interval contains 1 */
    ST_BOOTSTRAP_WORSE = 2    /* the whole interval is above 1 */
} st_bootstrap_verdict_t;

/* The verdict of an interval of a ratio against 1 (a zero-width interval at exactly 1, as for a
 * model against itself, is not significant). */
st_bootstrap_verdict_t st_bootstrap_verdict(const st_bootstrap_ratio_t *r);

#endif
