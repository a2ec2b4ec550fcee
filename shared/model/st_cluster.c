/* st_cluster.c - the cluster model: assignment of new points, save/load, silhouette and the
 * adjusted Rand index. */
#include "st_cluster.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "st_err.h"
#include "st_model.h"

#define CLUSTER_KIND_VERSION 1u
#define MAX_VOTERS           256

static double sqdist(const double *a, const double *b, int dim)
{
    double s = 0.0;
    for (int j = 0; j < dim; j++) {
        double d = a[j] - b[j];
        s += d * d;
    }
    return s;
}

st_cluster_t *st_cluster_alloc(st_cluster_kind_t kind, int k, int dim)
{
    st_cluster_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->kind = kind;
    c->k = k;
    c->dim = dim;
    c->centroids = calloc((size_t)k * (size_t)dim, sizeof(double));
    if (!c->centroids) {
        free(c);
        return NULL;
    }
    return c;
}

void st_cluster_destroy(st_cluster_t *c)
{
    if (!c)
        return;
    free(c->centroids);
    free(c->train_x);
    free(c->train_labels);
    free(c);
}

int st_cluster_assign(const st_cluster_t *c, const double *x)
{
    for (int j = 0; j < c->dim; j++)
        if (!isfinite(x[j]))
            return -1;
    if (c->kind != ST_CLUSTER_SPECTRAL || c->n_train == 0) {
        int best = 0;
        double best_d = INFINITY;
        for (int q = 0; q < c->k; q++) {
            double d = sqdist(x, c->centroids + (size_t)q * (size_t)c->dim, c->dim);
            if (d < best_d) {
                best_d = d;
                best = q;
            }
        }
        return best;
    }
    /* the m nearest training points, kept sorted by (distance, index) */
    int m = c->n_neighbors < 1 ? 1 : (c->n_neighbors > MAX_VOTERS ? MAX_VOTERS : c->n_neighbors);
    if ((size_t)m > c->n_train)
        m = (int)c->n_train;
    double near_d[MAX_VOTERS];
    int near_label[MAX_VOTERS];
    int have = 0;
    for (size_t i = 0; i < c->n_train; i++) {
        double d = sqdist(x, c->train_x + i * (size_t)c->dim, c->dim);
        if (have == m && d >= near_d[m - 1])
            continue;
        int pos = have < m ? have++ : m - 1;
        while (pos > 0 && near_d[pos - 1] > d) {
            near_d[pos] = near_d[pos - 1];
            near_label[pos] = near_label[pos - 1];
            pos--;
        }
        near_d[pos] = d;
        near_label[pos] = c->train_labels[i];
    }
    int best = -1, best_votes = 0;
    for (int a = 0; a < have; a++) {
        int votes = 0;
        for (int b = 0; b < have; b++)
            votes += near_label[b] == near_label[a];
        if (votes > best_votes) { /* strictly more: ties keep the nearer neighbour's label */
            best_votes = votes;
            best = near_label[a];
        }
    }
    return best;
}

int st_cluster_save(const st_cluster_t *c, const char *path, char *errstr, size_t errstr_size)
{
    st_buf_t b = ST_BUF_INIT;
    int fail = st_model_put_u32(&b, (uint32_t)c->kind);
    fail |= st_model_put_u32(&b, (uint32_t)c->k);
    fail |= st_model_put_u32(&b, (uint32_t)c->dim);
    fail |= st_model_put_u32(&b, (uint32_t)c->n_neighbors);
    fail |= st_model_put_u32(&b, (uint32_t)c->n_iter);
    fail |= st_model_put_f64s(&b, &c->inertia, 1);
    fail |= st_model_put_f64s(&b, c->centroids, (size_t)c->k * (size_t)c->dim);
    fail |= st_model_put_u64(&b, (uint64_t)c->n_train);
    if (c->n_train) {
        fail |= st_model_put_f64s(&b, c->train_x, c->n_train * (size_t)c->dim);
        for (size_t i = 0; i < c->n_train; i++)
            fail |= st_model_put_u32(&b, (uint32_t)c->train_labels[i]);
    }
    int rc = fail ? st_errstr(errstr, errstr_size, "%s: out of memory", path)
                  : st_model_save(path, ST_MODEL_KIND_CLUSTER, CLUSTER_KIND_VERSION, &b, errstr,
                                  errstr_size);
    st_buf_free(&b);
    return rc;
}

st_cluster_t *st_cluster_load(const char *path, char *errstr, size_t errstr_size)
{
    void *payload = NULL;
    size_t len = 0;
    uint32_t version = 0;
    if (st_model_load(path, ST_MODEL_KIND_CLUSTER, &payload, &len, &version, errstr, errstr_size) !=
        0)
        return NULL;
    st_cluster_t *c = NULL;
    st_model_reader_t r;
    st_model_reader_init(&r, payload, len);
    uint32_t kind = 0, k = 0, dim = 0, nn = 0, iters = 0;
    uint64_t n_train = 0;
    double inertia = 0.0;
    const char *why = NULL;
    if (version != CLUSTER_KIND_VERSION) {
        why = "unsupported cluster layout version";
        goto out;
    }
    st_model_get_u32(&r, &kind);
    st_model_get_u32(&r, &k);
    st_model_get_u32(&r, &dim);
    st_model_get_u32(&r, &nn);
    st_model_get_u32(&r, &iters);
    if (st_model_get_f64s(&r, &inertia, 1) != 0)
        goto out;
    if ((kind != ST_CLUSTER_KMEANS && kind != ST_CLUSTER_SPECTRAL) || k < 1 || k > 100000 ||
        dim < 1 || dim > 100000 || nn > 100000) {
        why = "kind, k, dim or n_neighbors out of range";
        goto out;
    }
    /* before allocating k x dim centroids (up to 80 GB by the ranges above) */
    if ((size_t)k * dim > (len - r.pos) / sizeof(double)) {
        why = "centroids exceed the payload";
        goto out;
    }
    c = st_cluster_alloc((st_cluster_kind_t)kind, (int)k, (int)dim);
    if (!c) {
        why = "out of memory";
        goto out;
    }
    c->n_neighbors = (int)nn;
    c->n_iter = (int)iters;
    c->inertia = inertia;
    if (st_model_get_f64s(&r, c->centroids, (size_t)k * dim) != 0 ||
        st_model_get_u64(&r, &n_train) != 0)
        goto out;
    if (n_train > (len - r.pos) / ((size_t)dim * 8 + 4)) {
        why = "training point count exceeds the payload";
        goto out;
    }
    if (n_train) {
        c->n_train = (size_t)n_train;
        c->train_x = malloc((size_t)n_train * dim * sizeof(double));
        c->train_labels = malloc((size_t)n_train * sizeof(int));
        if (!c->train_x || !c->train_labels) {
            why = "out of memory";
            goto out;
        }
        if (st_model_get_f64s(&r, c->train_x, (size_t)n_train * dim) != 0)
            goto out;
        for (size_t i = 0; i < n_train; i++) {
            uint32_t label = 0;
            if (st_model_get_u32(&r, &label) != 0)
                goto out;
            if (label >= k) {
                why = "training label out of range";
                goto out;
            }
            c->train_labels[i] = (int)label;
        }
    }
    st_model_reader_done(&r);
out:
    if (why || r.err[0]) {
        st_errstr(errstr, errstr_size, "%s: bad cluster model: %s", path, why ? why : r.err);
        st_cluster_destroy(c);
        c = NULL;
    }
    free(payload);
    return c;
}

double st_cluster_silhouette(const double *x, size_t n, int dim, const int *labels,
                             double *per_sample)
{
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (labels[i] < 0)
            return NAN;
        k = labels[i] + 1 > k ? labels[i] + 1 : k;
    }
    size_t *count = calloc((size_t)k + 1, sizeof(size_t));
    double *sum = calloc((size_t)k + 1, sizeof(double));
    if (!count || !sum) {
        free(count);
        free(sum);
        return NAN;
    }
    for (size_t i = 0; i < n; i++)
        count[labels[i]]++;
    int used = 0;
    for (int q = 0; q < k; q++)
        used += count[q] > 0;
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        if (used >= 2 && count[labels[i]] > 1) {
            memset(sum, 0, (size_t)k * sizeof(double));
            for (size_t j = 0; j < n; j++)
                if (j != i)
                    sum[labels[j]] += sqrt(sqdist(x + i * (size_t)dim, x + j * (size_t)dim, dim));
            double a = sum[labels[i]] / (double)(count[labels[i]] - 1), b = INFINITY;
            for (int q = 0; q < k; q++)
                if (q != labels[i] && count[q] > 0 && sum[q] / (double)count[q] < b)
                    b = sum[q] / (double)count[q];
            double den = a > b ? a : b;
            s = den > 0.0 ? (b - a) / den : 0.0;
        }
        if (per_sample)
            per_sample[i] = s;
        total += s;
    }
    free(count);
    free(sum);
    return used >= 2 ? total / (double)n : NAN;
}

static double pairs(double v)
{
    return v * (v - 1.0) / 2.0;
}

double st_cluster_ari(const int *a, const int *b, size_t n)
{
    int ka = 0, kb = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] < 0 || b[i] < 0)
            return NAN;
        ka = a[i] + 1 > ka ? a[i] + 1 : ka;
        kb = b[i] + 1 > kb ? b[i] + 1 : kb;
    }
    if ((double)ka * (double)kb > 1e8)
        return NAN;
    double *table = calloc((size_t)ka * (size_t)kb + 1, sizeof(double));
    double *ra = calloc((size_t)ka + 1, sizeof(double)),
           *rb = calloc((size_t)kb + 1, sizeof(double));
    double ari = NAN;
    if (table && ra && rb) {
        for (size_t i = 0; i < n; i++) {
            table[(size_t)a[i] * (size_t)kb + (size_t)b[i]] += 1.0;
            ra[a[i]] += 1.0;
            rb[b[i]] += 1.0;
        }
        double index = 0.0, sa = 0.0, sb = 0.0;
        for (size_t q = 0; q < (size_t)ka * (size_t)kb; q++)
            index += pairs(table[q]);
        for (int q = 0; q < ka; q++)
            sa += pairs(ra[q]);
        for (int q = 0; q < kb; q++)
            sb += pairs(rb[q]);
        double expected = n > 1 ? sa * sb / pairs((double)n) : 0.0;
        double max_index = 0.5 * (sa + sb);
        ari = max_index - expected == 0.0 ? 1.0 : (index - expected) / (max_index - expected);
    }
    free(table);
    free(ra);
    free(rb);
    return ari;
}
