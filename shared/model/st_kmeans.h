/* st_kmeans.h - k-means clustering: k-means++ initialisation (greedy, 2 + ln k local trials as
 * scikit-learn), Lloyd iterations, n_init seeded restarts keeping the lowest inertia. */
#ifndef ST_KMEANS_H
#define ST_KMEANS_H

#include <stddef.h>
#include <stdint.h>

#include "st_cluster.h"

typedef struct {
    int k;
    int n_init;   /* restarts; the best inertia wins */
    int max_iter; /* Lloyd iterations per restart */
    double tol;   /* stop when the centroid shift^2 <= tol x mean column variance */
    uint64_t seed;
} st_kmeans_cfg_t;

/* k 5, n_init 10, max_iter 300, tol 1e-4, seed 1. */
void st_kmeans_default(st_kmeans_cfg_t *cfg);

/* Clusters n points of dim doubles. labels (n ints, caller-owned) may be NULL. Returns a new
 * model (caller owns; st_cluster_destroy) with centroids and inertia, or NULL with errstr on bad
 * settings (k outside 1..n), non-finite input or no memory. */
st_cluster_t *st_kmeans_fit(const double *x, size_t n, int dim, const st_kmeans_cfg_t *cfg,
                            int *labels, char *errstr, size_t errstr_size);

#endif
