/* st_spectral.c - spectral clustering: kNN affinity, normalised Laplacian eigenvectors
 * (LAPACKE_dsyevr), k-means on the row-normalised embedding. */
#include "st_spectral.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "st_err.h"
#include "st_kmeans.h"

void st_spectral_default(st_spectral_cfg_t *cfg)
{
    cfg->k = 5;
    cfg->n_neighbors = 10;
    cfg->n_init = 10;
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

/* Fills conn (n x n, zeroed) with 1 for each point's m nearest points, itself included; ties
 * go to the lower index so the graph is deterministic. */
static int knn_graph(const double *x, size_t n, int dim, int m, double *conn)
{
    double *near_d = malloc((size_t)m * sizeof(double));
    size_t *near_i = malloc((size_t)m * sizeof(size_t));
    if (!near_d || !near_i) {
        free(near_d);
        free(near_i);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int have = 0;
        for (size_t j = 0; j < n; j++) {
            double d = sqdist(x + i * (size_t)dim, x + j * (size_t)dim, dim);
            if (have == m && d >= near_d[m - 1])
                continue;
            int pos = have < m ? have++ : m - 1;
            while (pos > 0 && near_d[pos - 1] > d) {
                near_d[pos] = near_d[pos - 1];
                near_i[pos] = near_i[pos - 1];
                pos--;
            }
            near_d[pos] = d;
            near_i[pos] = j;
        }
        for (int q = 0; q < have; q++)
            conn[i * n + near_i[q]] = 1.0;
    }
    free(near_d);
    free(near_i);
    return 0;
}

st_cluster_t *st_spectral_fit(const double *x, size_t n, int dim, const st_spectral_cfg_t *cfg,
                              int *labels, char *errstr, size_t errstr_size)
{
    if (n < 2 || dim < 1)
        return st_errstr(errstr, errstr_size, "spectral: need at least 2 points"), NULL;
    if (n > 8000)
        return st_errstr(errstr, errstr_size, "spectral: %zu points exceed the dense limit 8000",
                         n),
               NULL;
    if (cfg->k < 1 || (size_t)cfg->k > n)
        return st_errstr(errstr, errstr_size, "spectral: k = %d outside 1..%zu", cfg->k, n), NULL;
    if (cfg->n_neighbors < 1 || (size_t)cfg->n_neighbors >= n)
        return st_errstr(errstr, errstr_size, "spectral: n_neighbors = %d outside 1..%zu",
                         cfg->n_neighbors, n - 1),
               NULL;
    for (size_t i = 0; i < n * (size_t)dim; i++)
        if (!isfinite(x[i]))
            return st_errstr(errstr, errstr_size, "spectral: non-finite value at row %zu",
                             i / (size_t)dim),
                   NULL;
    int k = cfg->k;
    double *a = calloc(n * n, sizeof(double)), *deg = malloc(n * sizeof(double));
    double *w = malloc(n * sizeof(double)), *z = malloc(n * (size_t)k * sizeof(double));
    lapack_int *isuppz = malloc(2 * (size_t)k * sizeof(lapack_int));
    int *lab = malloc(n * sizeof(int));
    st_cluster_t *model = NULL, *km = NULL;
    if (!a || !deg || !w || !z || !isuppz || !lab || knn_graph(x, n, dim, cfg->n_neighbors, a)) {
        st_errstr(errstr, errstr_size, "spectral: out of memory for %zu points", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) /* A = (C + C^T) / 2 */
        for (size_t j = i; j < n; j++) {
            double v = 0.5 * (a[i * n + j] + a[j * n + i]);
            a[i * n + j] = a[j * n + i] = v;
        }
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < n; j++)
            s += a[i * n + j];
        deg[i] = 1.0 / sqrt(s); /* s >= 1: every point is its own neighbour */
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            a[i * n + j] = (i == j ? 1.0 : 0.0) - deg[i] * a[i * n + j] * deg[j];
    lapack_int found = 0;
    lapack_int info =
        LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U', (lapack_int)n, a, (lapack_int)n, 0.0, 0.0,
                       1, (lapack_int)k, 0.0, &found, w, z, (lapack_int)k, isuppz);
    if (info != 0 || found != k) {
        st_errstr(errstr, errstr_size,
                  "spectral: LAPACKE_dsyevr failed (info %d, %d of %d "
                  "eigenvectors)",
                  (int)info, (int)found, k);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        double *row = z + i * (size_t)k, norm = 0.0;
        for (int j = 0; j < k; j++)
            norm += row[j] * row[j];
        norm = sqrt(norm);
        if (norm > 0.0)
            for (int j = 0; j < k; j++)
                row[j] /= norm;
    }
    st_kmeans_cfg_t kc;
    st_kmeans_default(&kc);
    kc.k = k;
    kc.n_init = cfg->n_init;
    kc.seed = cfg->seed;
    km = st_kmeans_fit(z, n, k, &kc, lab, errstr, errstr_size);
    if (!km)
        goto out;
    model = st_cluster_alloc(ST_CLUSTER_SPECTRAL, k, dim);
    if (model) {
        model->train_x = malloc(n * (size_t)dim * sizeof(double));
        model->train_labels = malloc(n * sizeof(int));
    }
    if (!model || !model->train_x || !model->train_labels) {
        st_errstr(errstr, errstr_size, "spectral: out of memory");
        st_cluster_destroy(model);
        model = NULL;
        goto out;
    }
    model->n_train = n;
    model->n_neighbors = cfg->n_neighbors;
    model->n_iter = km->n_iter;
    memcpy(model->train_x, x, n * (size_t)dim * sizeof(double));
    memcpy(model->train_labels, lab, n * sizeof(int));
    for (size_t i = 0; i < n; i++) /* deg is free now: reuse it as the per-cluster count */
        deg[i] = 0.0;
    for (size_t i = 0; i < n; i++) {
        deg[lab[i]] += 1.0;
        for (int j = 0; j < dim; j++)
            model->centroids[(size_t)lab[i] * (size_t)dim + (size_t)j] +=
                x[i * (size_t)dim + (size_t)j];
    }
    for (int c = 0; c < k; c++)
        for (int j = 0; j < dim; j++)
            if (deg[c] > 0.0)
                model->centroids[(size_t)c * (size_t)dim + (size_t)j] /= deg[c];
    model->inertia = 0.0;
    for (size_t i = 0; i < n; i++)
        model->inertia +=
            sqdist(x + i * (size_t)dim, model->centroids + (size_t)lab[i] * (size_t)dim, dim);
    if (labels)
        memcpy(labels, lab, n * sizeof(int));
out:
    st_cluster_destroy(km);
    free(a);
    free(deg);
    free(w);
    free(z);
    free(isuppz);
    free(lab);
    return model;
}
