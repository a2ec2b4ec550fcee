/* st_bootstrap.c - the per-user bootstrap of an MAE ratio (st_bootstrap.h). */
#include "st_bootstrap.h"

#include <math.h>
#include <stdlib.h>

#include "st_err.h"

/* splitmix64: small, seedable, identical on every platform. */
static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without modulo bias. */
static size_t next_below(uint64_t *state, size_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % (uint64_t)n;
    uint64_t v;
    do
        v = next_u64(state);
    while (v >= limit);
    return (size_t)(v % (uint64_t)n);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double ratio_of(double sa, double sb)
{
    if (sb > 0)
        return sa / sb;
    return sa > 0 ? INFINITY : 1.0;
}

/* The q-quantile of sorted[0..n) with linear interpolation between order statistics. */
static double quantile(const double *sorted, size_t n, double q)
{
    double pos = q * (double)(n - 1);
    size_t i = (size_t)floor(pos);
    if (i + 1 >= n)
        return sorted[n - 1];
    double frac = pos - (double)i;
    if (frac == 0 || sorted[i] == sorted[i + 1])
        return sorted[i];
    return sorted[i] + frac * (sorted[i + 1] - sorted[i]);
}

int st_bootstrap_ratio(const double *err_a, const double *err_b, const int *group, size_t n,
                       int resamples, double level, uint64_t seed, st_bootstrap_ratio_t *out,
                       char *errstr, size_t errstr_size)
{
    if (n == 0)
        return st_errstr(errstr, errstr_size, "bootstrap: no rows");
    if (resamples < 1)
        return st_errstr(errstr, errstr_size, "bootstrap: resamples %d < 1", resamples);
    if (!(level > 0 && level < 1))
        return st_errstr(errstr, errstr_size, "bootstrap: level %g is not in (0, 1)", level);
    int *ids = malloc(n * sizeof *ids);
    double *sum_a = calloc(n, sizeof *sum_a), *sum_b = calloc(n, sizeof *sum_b);
    double *draws = malloc((size_t)resamples * sizeof *draws);
    if (!ids || !sum_a || !sum_b || !draws) {
        free(ids);
        free(sum_a);
        free(sum_b);
        free(draws);
        return st_errstr(errstr, errstr_size, "bootstrap: out of memory");
    }
    /* the groups in ascending id order, so the result does not depend on the row order */
    for (size_t i = 0; i < n; i++)
        ids[i] = group[i];
    qsort(ids, n, sizeof *ids, cmp_int);
    size_t g = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || ids[i] != ids[g - 1])
            ids[g++] = ids[i];
    double total_a = 0, total_b = 0;
    for (size_t i = 0; i < n; i++) {
        const int *hit = bsearch(&group[i], ids, g, sizeof *ids, cmp_int);
        size_t k = (size_t)(hit - ids);
        sum_a[k] += err_a[i];
        sum_b[k] += err_b[i];
        total_a += err_a[i];
        total_b += err_b[i];
    }
    uint64_t state = seed;
    for (int r = 0; r < resamples; r++) {
        double sa = 0, sb = 0;
        for (size_t j = 0; j < g; j++) {
            size_t k = next_below(&state, g);
            sa += sum_a[k];
            sb += sum_b[k];
        }
        draws[r] = ratio_of(sa, sb);
    }
    qsort(draws, (size_t)resamples, sizeof *draws, cmp_double);
    out->ratio = ratio_of(total_a, total_b);
    out->lo = quantile(draws, (size_t)resamples, (1 - level) / 2);
    out->hi = quantile(draws, (size_t)resamples, (1 + level) / 2);
    out->groups = (int)g;
    free(ids);
    free(sum_a);
    free(sum_b);
    free(draws);
    return 0;
}

st_bootstrap_verdict_t st_bootstrap_verdict(const st_bootstrap_ratio_t *r)
{
    if (r->hi < 1)
        return ST_BOOTSTRAP_BETTER;
    if (r->lo > 1)
        return ST_BOOTSTRAP_WORSE;
    return ST_BOOTSTRAP_NOT_SIG;
}
