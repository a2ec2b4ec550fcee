/* Unit: the clusterer's set of recent users for re-fits (services/clusterer/clu_recent.c): at
 * most max_users, the last distinct users inserted (the oldest makes room), an update replaces a
 * user's vector in place, every member is found through the hash index after evictions, and
 * clearing empties it. */
#include <stdio.h>

#include "clu_recent.h"
#include "st_test.h"

static void test_recent_users(void)
{
    enum { MAX = 50, N = 400 };
    clu_recent_t *r = clu_recent_new(MAX);
    ST_REQUIRE(r != NULL);
    double x[CLU_RECENT_DIM] = {0};
    char id[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "user_%06d", i);
        x[0] = i;
        clu_recent_remember(r, id, x);
    }
    ST_EQ_INT(clu_recent_count(r), MAX);
    int found = 0, wrong = 0;
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "user_%06d", i);
        const double *v = clu_recent_find(r, id);
        found += v != NULL;
        wrong += (v != NULL) != (i >= N - MAX) || (v && v[0] != i);
    }
    ST_EQ_INT(found, MAX);
    ST_EQ_INT(wrong, 0);
    /* Every kept vector is one of the last MAX users'. */
    int outside = 0;
    for (size_t i = 0; i < clu_recent_count(r); i++)
        outside += clu_recent_vector(r, i)[0] < N - MAX;
    ST_EQ_INT(outside, 0);
    snprintf(id, sizeof id, "user_%06d", N - 3);
    x[0] = -1;
    clu_recent_remember(r, id, x);
    const double *v = clu_recent_find(r, id);
    ST_CHECK(v && v[0] == -1);
    ST_EQ_INT(clu_recent_count(r), MAX);
    clu_recent_clear(r);
    ST_EQ_INT(clu_recent_count(r), 0);
    ST_CHECK(clu_recent_find(r, id) == NULL);
    /* Usable again after clearing. */
    clu_recent_remember(r, id, x);
    ST_EQ_INT(clu_recent_count(r), 1);
    ST_CHECK(clu_recent_find(r, id) != NULL);
    clu_recent_destroy(r);
}

int main(void)
{
    ST_RUN(test_recent_users);
    return st_test_summary();
}
