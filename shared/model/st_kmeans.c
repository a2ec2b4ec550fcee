/* st_kmeans.c - k-means++ seeding and Lloyd iterations with seeded restarts. */
#include "st_kmeans.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "st_err.h"
#include "st_rng.h"

void st_kmeans_default(st_kmeans_cfg_t *cfg)
{
    cfg->k = 5;
    cfg->n_init = 10;
    cfg->max_iter = 300;
    cfg->tol = 1e-4;
    cfg->seed = 1;
}

static double sqdist(const double *a, const double *b, int dim)
{
    double s = 0.0;
    for (int j = 0; j < dim; j++) {
        double d = a[j] - b[j];
        s += d * d;
    }
    return s;
}

/* Index of the point drawn with probability weight[i] / total. */
static size_t draw_weighted(st_rng_t *rng, const double *weight, size_t n, double total)
{
    double target = st_rng_uniform(rng) * total, acc = 0.0;
    for (size_t i = 0; i < n; i++) {
        acc += weight[i];
        if (acc > target && weight[i] > 0.0)
            return i;
    }
    for (size_t i = n; i > 0; i--) /* rounding at the end of the sum */
        if (weight[i - 1] > 0.0)
            return i - 1;
    return (size_t)st_rng_below(rng, n);
}

/* Greedy k-means++: each new centre is the best of 2 + ln k candidates drawn by D^2. */
static void kmeanspp(const double *x, size_t n, int dim, int k, st_rng_t *rng, double *cent,
                     double *closest, double *cand_d)
{
    int trials = 2 + (int)log((double)k);
    size_t first = (size_t)st_rng_below(rng, n);
    memcpy(cent, x + first * (size_t)dim, (size_t)dim * sizeof(double));
    double pot = 0.0;
    for (size_t i = 0; i < n; i++) {
        closest[i] = sqdist(x + i * (size_t)dim, cent, dim);
        pot += closest[i];
    }
    for (int c = 1; c < k; c++) {
        size_t best = 0;
        double best_pot = INFINITY;
        for (int t = 0; t < trials; t++) {
            size_t cand =
                pot > 0.0 ? draw_weighted(rng, closest, n, pot) : (size_t)st_rng_below(rng, n);
            double p = 0.0;
            for (size_t i = 0; i < n; i++) {
                double d = sqdist(x + i * (size_t)dim, x + cand * (size_t)dim, dim);
                p += d < closest[i] ? d : closest[i];
            }
            if (p < best_pot) {
                best_pot = p;
                best = cand;
            }
        }
        memcpy(cent + (size_t)c * (size_t)dim, x + best * (size_t)dim,
               (size_t)dim * sizeof(double));
        pot = 0.0;
        for (size_t i = 0; i < n; i++) {
            cand_d[i] = sqdist(x + i * (size_t)dim, x + best * (size_t)dim, dim);
            if (cand_d[i] < closest[i])
                closest[i] = cand_d[i];
            pot += closest[i];
        }
    }
}

/* Assigns every point to its nearest centre; returns the inertia. dist gets each distance. */
static double assign_all(const double *x, size_t n, int dim, const double *cent, int k, int *labels,
                         double *dist)
{
    double inertia = 0.0;
    for (size_t i = 0; i < n; i++) {
        int best = 0;
        double best_d = INFINITY;
        for (int c = 0; c < k; c++) {
            double d = sqdist(x + i * (size_t)dim, cent + (size_t)c * (size_t)dim, dim);
            if (d < best_d) {
                best_d = d;
                best = c;
            }
        }
        labels[i] = best;
        dist[i] = best_d;
        inertia += best_d;
    }
    return inertia;
}

st_cluster_t *st_kmeans_fit(const double *x, size_t n, int dim, const st_kmeans_cfg_t *cfg,
                            int *labels, char *errstr, size_t errstr_size)
{
    if (n == 0 || dim < 1)
        return st_errstr(errstr, errstr_size, "kmeans: no data"), NULL;
    if (cfg->k < 1 || (size_t)cfg->k > n)
        return st_errstr(errstr, errstr_size, "kmeans: k = %d outside 1..%zu", cfg->k, n), NULL;
    if (cfg->n_init < 1 || cfg->max_iter < 1)
        return st_errstr(errstr, errstr_size, "kmeans: n_init and max_iter must be >= 1"), NULL;
    for (size_t i = 0; i < n * (size_t)dim; i++)
        if (!isfinite(x[i]))
            return st_errstr(errstr, errstr_size, "kmeans: non-finite value at row %zu",
                             i / (size_t)dim),
                   NULL;
    int k = cfg->k;
    double mean_var = 0.0;
    for (int j = 0; j < dim; j++) {
        double m = 0.0, m2 = 0.0;
        for (size_t i = 0; i < n; i++)
            m += x[i * (size_t)dim + (size_t)j];
        m /= (double)n;
        for (size_t i = 0; i < n; i++) {
            double d = x[i * (size_t)dim + (size_t)j] - m;
            m2 += d * d;
        }
        mean_var += m2 / (double)n;
    }
    double tol = cfg->tol * mean_var / dim;
    size_t kd = (size_t)k * (size_t)dim;
    double *cent = malloc(kd * sizeof(double)), *newc = malloc(kd * sizeof(double));
    double *dist = malloc(n * sizeof(double)), *tmp = malloc(n * sizeof(double));
    int *lab = malloc(n * sizeof(int)), *best_lab = malloc(n * sizeof(int));
    size_t *count = malloc((size_t)k * sizeof(size_t));
    st_cluster_t *model = st_cluster_alloc(ST_CLUSTER_KMEANS, k, dim);
    if (!cent || !newc || !dist || !tmp || !lab || !best_lab || !count || !model) {
        st_errstr(errstr, errstr_size, "kmeans: out of memory");
        st_cluster_destroy(model);
        model = NULL;
        goto out;
    }
    st_rng_t rng;
    st_rng_seed(&rng, cfg->seed);
    model->inertia = INFINITY;
    for (int run = 0; run < cfg->n_init; run++) {
        kmeanspp(x, n, dim, k, &rng, cent, dist, tmp);
        int iter;
        for (iter = 1; iter <= cfg->max_iter; iter++) {
            assign_all(x, n, dim, cent, k, lab, dist);
            memset(newc, 0, kd * sizeof(double));
            memset(count, 0, (size_t)k * sizeof(size_t));
            for (size_t i = 0; i < n; i++) {
                count[lab[i]]++;
                for (int j = 0; j < dim; j++)
                    newc[(size_t)lab[i] * (size_t)dim + (size_t)j] +=
                        x[i * (size_t)dim + (size_t)j];
            }
            for (int c = 0; c < k; c++) {
                double *cc = newc + (size_t)c * (size_t)dim;
                if (count[c] == 0) { /* empty: restart it at the worst-served point */
                    size_t far = 0;
                    for (size_t i = 1; i < n; i++)
                        if (dist[i] > dist[far])
                            far = i;
                    memcpy(cc, x + far * (size_t)dim, (size_t)dim * sizeof(double));
                    dist[far] = 0.0;
                    continue;
                }
                for (int j = 0; j < dim; j++)
                    cc[j] /= (double)count[c];
            }
            double shift = 0.0;
            for (size_t q = 0; q < kd; q++) {
                double d = newc[q] - cent[q];
                shift += d * d;
            }
            memcpy(cent, newc, kd * sizeof(double));
            if (shift <= tol)
                break;
        }
        double inertia = assign_all(x, n, dim, cent, k, lab, dist);
        if (run == 0 || inertia < model->inertia) {
            model->inertia = inertia;
            model->n_iter = iter > cfg->max_iter ? cfg->max_iter : iter;
            memcpy(model->centroids, cent, kd * sizeof(double));
            memcpy(best_lab, lab, n * sizeof(int));
        }
    }
    if (!isfinite(model->inertia)) { /* distances beyond double's range: no answer */
        st_errstr(errstr, errstr_size, "kmeans: distances overflow (values too large to cluster)");
        st_cluster_destroy(model);
        model = NULL;
        goto out;
    }
    if (labels)
        memcpy(labels, best_lab, n * sizeof(int));
out:
    free(cent);
    free(newc);
    free(dist);
    free(tmp);
    free(lab);
    free(best_lab);
    free(count);
    return model;
}
