/* st_cluster.h - the fitted cluster model shared by k-means and spectral clustering (assignment
 * of new points, save/load), plus the silhouette score and the adjusted Rand index.
 * Points are double rows: x[i * dim + j]. Labels are 0..k-1. */
#ifndef ST_CLUSTER_H
#define ST_CLUSTER_H

#include <stddef.h>

typedef enum { ST_CLUSTER_KMEANS = 1, ST_CLUSTER_SPECTRAL = 2 } st_cluster_kind_t;

/* Fields are read-only for callers; the model owns every array. */
typedef struct {
    st_cluster_kind_t kind;
    int k;
    int dim;
    double *centroids; /* k x dim: k-means centroids; spectral: mean of each cluster's points */
    double inertia;    /* sum of squared distances of the training points to their centroid */
    int n_iter;        /* Lloyd iterations of the best k-means run */
    /* spectral only: the training points and labels, for assignment by nearest neighbours */
    size_t n_train;
    double *train_x;
    int *train_labels;
    int n_neighbors;
} st_cluster_t;

void st_cluster_destroy(st_cluster_t *c);

/* The cluster of a new point (dim doubles): nearest centroid for k-means; for spectral the
 * majority label of the n_neighbors nearest training points (a tie goes to the label of the
 * nearest tied neighbour). Non-finite coordinates return -1. */
int st_cluster_assign(const st_cluster_t *c, const double *x);

/* Model file of kind CLST (see st_model.h). Return 0 / a new model (caller owns), or -1 / NULL
 * with errstr naming the failed check. */
int st_cluster_save(const st_cluster_t *c, const char *path, char *errstr, size_t errstr_size);
st_cluster_t *st_cluster_load(const char *path, char *errstr, size_t errstr_size);

/* Silhouette (Euclidean) of labelled points: returns the mean over all points and, when
 * per_sample is non-NULL, writes each point's value there (n doubles, caller-owned). A point
 * alone in its cluster scores 0 (as scikit-learn). Returns NAN when fewer than 2 clusters are
 * used or a label is negative. O(n^2 dim) time, O(k) extra memory per point. */
double st_cluster_silhouette(const double *x, size_t n, int dim, const int *labels,
                             double *per_sample);

/* Adjusted Rand index of two labelings of n points (labels >= 0; 1 = identical partitions,
 * ~0 = chance). Returns NAN on a negative label or no memory. */
double st_cluster_ari(const int *a, const int *b, size_t n);

/* Used by the fitters: a zeroed model with room for k x dim centroids (NULL on no memory). */
st_cluster_t *st_cluster_alloc(st_cluster_kind_t kind, int k, int dim);

#endif
