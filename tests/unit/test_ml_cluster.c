/* Unit tests of k-means, spectral clustering, silhouette, the adjusted Rand index and the
 * cluster model file, on generated data with planted clusters and interleaved half-moons. */
#include <unistd.h>

#include "st_cluster.h"
#include "st_kmeans.h"
#include "st_model.h"
#include "st_rng.h"
#include "st_spectral.h"
#include "st_test.h"

#define N_BLOB 300
#define N_MOON 300

/* k Gaussian blobs (sd 1) with centres on a circle of radius 10 in dim 2 (+ noise dims). */
static void blobs(double *x, int *truth, size_t n, int k, int dim, uint64_t seed)
{
    st_rng_t rng;
    st_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % (size_t)k);
        truth[i] = c;
        for (int j = 0; j < dim; j++)
            x[i * (size_t)dim + (size_t)j] = st_rng_normal(&rng);
        x[i * (size_t)dim] += 10.0 * cos(2.0 * M_PI * c / k);
        x[i * (size_t)dim + 1] += 10.0 * sin(2.0 * M_PI * c / k);
    }
}

/* Two interleaved half-moons like scikit-learn's make_moons(noise = 0.05). */
static void moons(double *x, int *truth, size_t n, uint64_t seed)
{
    st_rng_t rng;
    st_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        double t = M_PI * st_rng_uniform(&rng);
        int c = (int)(i % 2);
        truth[i] = c;
        x[2 * i] = c == 0 ? cos(t) : 1.0 - cos(t);
        x[2 * i + 1] = c == 0 ? sin(t) : 0.5 - sin(t);
        x[2 * i] += 0.05 * st_rng_normal(&rng);
        x[2 * i + 1] += 0.05 * st_rng_normal(&rng);
    }
}

static void test_ari_known_values(void)
{
    int a[] = {0, 0, 1, 2}, b[] = {0, 0, 1, 1};
    ST_NEAR(st_cluster_ari(a, b, 4), 0.5714285714, 1e-9); /* scikit-learn's documented example */
    int p[] = {0, 0, 1, 1, 2, 2}, q[] = {2, 2, 0, 0, 1, 1};
    ST_NEAR(st_cluster_ari(p, q, 6), 1.0, 1e-12);
    int r[] = {0, 1, 0, 1, 0, 1};
    ST_CHECK(st_cluster_ari(p, r, 6) < 0.0);
    int neg[] = {0, -1, 0, 1, 0, 1};
    ST_CHECK(isnan(st_cluster_ari(p, neg, 6)));
}

static void test_kmeans_blobs(void)
{
    static double x[N_BLOB * 3];
    static int truth[N_BLOB], lab[N_BLOB], lab2[N_BLOB];
    char err[256];
    blobs(x, truth, N_BLOB, 5, 3, 1);
    st_kmeans_cfg_t c;
    st_kmeans_default(&c);
    c.k = 5;
    st_cluster_t *m = st_kmeans_fit(x, N_BLOB, 3, &c, lab, err, sizeof err);
    ST_REQUIRE(m != NULL);
    double ari = st_cluster_ari(truth, lab, N_BLOB);
    printf("     k-means ARI on 5 blobs: %.4f, inertia %.2f\n", ari, m->inertia);
    ST_CHECK(ari >= 0.95);
    for (size_t i = 0; i < N_BLOB; i++)
        ST_EQ_INT(st_cluster_assign(m, x + 3 * i), lab[i]);
    st_cluster_t *m2 = st_kmeans_fit(x, N_BLOB, 3, &c, lab2, err, sizeof err);
    ST_REQUIRE(m2 != NULL);
    ST_EQ_INT(memcmp(lab, lab2, sizeof lab), 0);
    ST_EQ_INT(memcmp(m->centroids, m2->centroids, 15 * sizeof(double)), 0);
    double nan_point[3] = {NAN, 0, 0};
    ST_EQ_INT(st_cluster_assign(m, nan_point), -1);
    st_cluster_destroy(m);
    st_cluster_destroy(m2);
}

/* Inertia at k = 1 is the total sum of squares; the elbow curve never rises much. */
static void test_kmeans_elbow(void)
{
    static double x[N_BLOB * 2];
    static int truth[N_BLOB];
    char err[256];
    blobs(x, truth, N_BLOB, 4, 2, 2);
    double mean[2] = {0, 0}, tss = 0.0;
    for (size_t i = 0; i < N_BLOB; i++)
        for (int j = 0; j < 2; j++)
            mean[j] += x[2 * i + (size_t)j] / N_BLOB;
    for (size_t i = 0; i < N_BLOB; i++)
        for (int j = 0; j < 2; j++)
            tss += (x[2 * i + (size_t)j] - mean[j]) * (x[2 * i + (size_t)j] - mean[j]);
    st_kmeans_cfg_t c;
    st_kmeans_default(&c);
    double prev = INFINITY, at[9];
    for (int k = 1; k <= 8; k++) {
        c.k = k;
        st_cluster_t *m = st_kmeans_fit(x, N_BLOB, 2, &c, NULL, err, sizeof err);
        ST_REQUIRE(m != NULL);
        at[k] = m->inertia;
        if (k == 1)
            ST_NEAR(m->inertia, tss, 1e-6 * tss);
        ST_CHECK(m->inertia <= prev * 1.001);
        prev = m->inertia;
        st_cluster_destroy(m);
    }
    ST_CHECK(at[4] < 0.1 * at[3]); /* the elbow sits at the planted k */
    c.k = N_BLOB + 1;
    ST_CHECK(st_kmeans_fit(x, N_BLOB, 2, &c, NULL, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "outside") != NULL);
    /* Finite points whose distances overflow: an error, not a model of zeros and stale labels. */
    static const double huge[] = {1e200, -1e200, -1e200, 1e200, 1e200, 1e200, -1e200, -1e200};
    c.k = 2;
    ST_CHECK(st_kmeans_fit(huge, 4, 2, &c, NULL, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "overflow") != NULL);
}

static void test_spectral_blobs(void)
{
    static double x[N_BLOB * 2];
    static int truth[N_BLOB], lab[N_BLOB];
    char err[256];
    blobs(x, truth, N_BLOB, 5, 2, 3);
    st_spectral_cfg_t c;
    st_spectral_default(&c);
    c.k = 5;
    st_cluster_t *m = st_spectral_fit(x, N_BLOB, 2, &c, lab, err, sizeof err);
    if (!m)
        fprintf(stderr, "%s\n", err);
    ST_REQUIRE(m != NULL);
    double ari = st_cluster_ari(truth, lab, N_BLOB);
    printf("     spectral ARI on 5 blobs: %.4f\n", ari);
    ST_CHECK(ari >= 0.95);
    st_cluster_destroy(m);
}

static void test_spectral_moons(void)
{
    static double x[N_MOON * 2];
    static int truth[N_MOON], ls[N_MOON], lk[N_MOON];
    char err[256];
    moons(x, truth, N_MOON, 4);
    st_spectral_cfg_t c;
    st_spectral_default(&c);
    c.k = 2;
    st_cluster_t *sm = st_spectral_fit(x, N_MOON, 2, &c, ls, err, sizeof err);
    ST_REQUIRE(sm != NULL);
    st_kmeans_cfg_t kc;
    st_kmeans_default(&kc);
    kc.k = 2;
    st_cluster_t *km = st_kmeans_fit(x, N_MOON, 2, &kc, lk, err, sizeof err);
    ST_REQUIRE(km != NULL);
    double ari_s = st_cluster_ari(truth, ls, N_MOON), ari_k = st_cluster_ari(truth, lk, N_MOON);
    printf("     half-moons ARI: spectral %.4f, k-means %.4f\n", ari_s, ari_k);
    ST_CHECK(ari_s >= 0.95);
    ST_CHECK(ari_k <= 0.6);
    /* new points on each moon's arc take that moon's label */
    double on0[2] = {cos(0.5), sin(0.5)}, on1[2] = {1.0 - cos(2.0), 0.5 - sin(2.0)};
    int l0 = ls[0], l1 = ls[1];
    ST_EQ_INT(st_cluster_assign(sm, on0), l0);
    ST_EQ_INT(st_cluster_assign(sm, on1), l1);
    /* training points mostly keep their label by neighbour vote */
    size_t same = 0;
    for (size_t i = 0; i < N_MOON; i++)
        same += st_cluster_assign(sm, x + 2 * i) == ls[i];
    ST_CHECK(same >= N_MOON * 98 / 100);
    st_cluster_destroy(sm);
    st_cluster_destroy(km);
}

/* Independent O(n^2) silhouette from a full distance matrix. */
static double direct_silhouette(const double *x, size_t n, int dim, const int *lab, int k,
                                double *per)
{
    double *d = malloc(n * n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int q = 0; q < dim; q++)
                s += pow(x[i * (size_t)dim + (size_t)q] - x[j * (size_t)dim + (size_t)q], 2);
            d[i * n + j] = sqrt(s);
        }
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        double a = 0.0, b = INFINITY;
        size_t na = 0;
        for (size_t j = 0; j < n; j++)
            if (j != i && lab[j] == lab[i]) {
                a += d[i * n + j];
                na++;
            }
        for (int c = 0; c < k; c++) {
            if (c == lab[i])
                continue;
            double s = 0.0;
            size_t m = 0;
            for (size_t j = 0; j < n; j++)
                if (lab[j] == c) {
                    s += d[i * n + j];
                    m++;
                }
            if (m && s / (double)m < b)
                b = s / (double)m;
        }
        per[i] = na == 0 ? 0.0 : (b - a / (double)na) / fmax(a / (double)na, b);
        total += per[i];
    }
    free(d);
    return total / (double)n;
}

static void test_silhouette(void)
{
    static double x[120 * 3], per[120], want[120];
    static int truth[120];
    blobs(x, truth, 120, 3, 3, 9);
    truth[7] = 2; /* a few misplaced points give negative values */
    truth[8] = 0;
    double got = st_cluster_silhouette(x, 120, 3, truth, per);
    double exp_mean = direct_silhouette(x, 120, 3, truth, 3, want);
    ST_NEAR(got, exp_mean, 1e-12);
    for (int i = 0; i < 120; i++)
        ST_NEAR(per[i], want[i], 1e-12);
    ST_CHECK(per[7] < 0.0);
    ST_CHECK(got > 0.5);
    int one[120] = {0};
    ST_CHECK(isnan(st_cluster_silhouette(x, 120, 3, one, NULL)));
    one[5] = 1; /* a singleton cluster scores 0 */
    st_cluster_silhouette(x, 120, 3, one, per);
    ST_NEAR(per[5], 0.0, 0.0);
}

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "/tmp/stint_test_cluster_%d_%s", (int)getpid(), name);
}

static void test_save_load(void)
{
    static double x[N_MOON * 2];
    static int truth[N_MOON], lab[N_MOON];
    char err[256], path[256];
    moons(x, truth, N_MOON, 5);
    st_spectral_cfg_t c;
    st_spectral_default(&c);
    c.k = 2;
    st_cluster_t *m = st_spectral_fit(x, N_MOON, 2, &c, lab, err, sizeof err);
    ST_REQUIRE(m != NULL);
    tmp_path(path, sizeof path, "spectral.stm");
    ST_REQUIRE(st_cluster_save(m, path, err, sizeof err) == 0);
    st_cluster_t *back = st_cluster_load(path, err, sizeof err);
    ST_REQUIRE(back != NULL);
    ST_EQ_INT(back->kind, ST_CLUSTER_SPECTRAL);
    ST_EQ_INT(back->n_train, N_MOON);
    for (double px = -1.0; px <= 2.0; px += 0.25) {
        double p[2] = {px, 0.25};
        ST_EQ_INT(st_cluster_assign(back, p), st_cluster_assign(m, p));
    }
    /* truncate the file: loading must fail and say so */
    FILE *f = fopen(path, "r+b");
    ST_REQUIRE(f != NULL);
    ST_REQUIRE(ftruncate(fileno(f), 100) == 0);
    fclose(f);
    ST_CHECK(st_cluster_load(path, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "truncated") != NULL);
    remove(path);
    st_cluster_destroy(back);
    st_cluster_destroy(m);
}

/* Found by tests/fuzz/fuzz_model: a header announcing k x dim centroids far beyond the payload
 * (here 65533 x 32259, 16 GB) is rejected before anything that size is allocated. */
static void test_load_oversized(void)
{
    char err[256], path[256];
    st_buf_t p = ST_BUF_INIT;
    st_model_put_u32(&p, ST_CLUSTER_KMEANS);
    st_model_put_u32(&p, 65533); /* k */
    st_model_put_u32(&p, 32259); /* dim */
    st_model_put_u32(&p, 0);     /* n_neighbors */
    st_model_put_u32(&p, 4);     /* iterations */
    double some[6] = {1, 2, 3, 4, 5, 6};
    st_model_put_f64s(&p, some, 6); /* inertia and a few coordinates */
    tmp_path(path, sizeof path, "oversized.stm");
    ST_REQUIRE(st_model_save(path, ST_MODEL_KIND_CLUSTER, 1, &p, err, sizeof err) == 0);
    ST_CHECK(st_cluster_load(path, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "centroids exceed the payload") != NULL);
    remove(path);
    st_buf_free(&p);
}

int main(void)
{
    ST_RUN(test_ari_known_values);
    ST_RUN(test_kmeans_blobs);
    ST_RUN(test_kmeans_elbow);
    ST_RUN(test_spectral_blobs);
    ST_RUN(test_spectral_moons);
    ST_RUN(test_silhouette);
    ST_RUN(test_save_load);
    ST_RUN(test_load_oversized);
    return st_test_summary();
}
