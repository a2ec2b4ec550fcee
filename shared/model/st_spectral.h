/* st_spectral.h - spectral clustering as scikit-learn's SpectralClustering(affinity =
 * 'nearest_neighbors'): a symmetric k-nearest-neighbour connectivity graph (self included,
 * A = (C + C^T) / 2), the symmetric normalised Laplacian I - D^-1/2 A D^-1/2, its k smallest
 * eigenvectors by LAPACKE_dsyevr, rows normalised to unit length (Ng-Jordan-Weiss) and k-means
 * on them. Dense O(n^2) memory and O(n^3) time: meant for user profiles (~1,000 rows; at most
 * 8,000). */
#ifndef ST_SPECTRAL_H
#define ST_SPECTRAL_H

#include <stddef.h>
#include <stdint.h>

#include "st_cluster.h"

typedef struct {
    int k;
    int n_neighbors; /* graph degree and the vote size of st_cluster_assign */
    int n_init;      /* k-means restarts on the embedding */
    uint64_t seed;
} st_spectral_cfg_t;

/* k 5, n_neighbors 10, n_init 10, seed 1. */
void st_spectral_default(st_spectral_cfg_t *cfg);

/* Clusters n points of dim doubles; labels (n ints, caller-owned) may be NULL. Returns a new
 * model of kind ST_CLUSTER_SPECTRAL holding a copy of the training points (caller owns), or NULL
 * with errstr on bad settings (k outside 1..n, n_neighbors outside 1..n-1), non-finite input,
 * an eigen-solver failure or no memory. */
st_cluster_t *st_spectral_fit(const double *x, size_t n, int dim, const st_spectral_cfg_t *cfg,
                              int *labels, char *errstr, size_t errstr_size);

#endif
