/* Unit: the clusterer's set of recent users for re-fits (services/clusterer/clu_core.c, compiled
 * in here): at most refit_max_users, the last distinct users inserted (the oldest makes room),
 * an update replaces a user's vector in place, every member is found through the hash index
 * after evictions, and a bundle swap empties it. */
#include "../../services/clusterer/clu_core.c"
#include "st_test.h"

static bool member(clu_t *c, const char *id, double *x0)
{
    size_t *slot = recent_slot(c, id);
    if (!*slot)
        return false;
    *x0 = c->recent[*slot - 1].x[0];
    return strcmp(c->recent[*slot - 1].id, id) == 0;
}

static void test_recent_users(void)
{
    enum { MAX = 50, N = 400 };
    clu_t c;
    memset(&c, 0, sizeof c);
    c.cfg.refit_max_users = MAX;
    c.recent = calloc(MAX, sizeof *c.recent);
    c.n_recent_slots = recent_slot_count(MAX);
    c.recent_slots = calloc(c.n_recent_slots, sizeof *c.recent_slots);
    ST_REQUIRE(c.recent && c.recent_slots);
    double x[CLU_PF_MAX] = {0};
    char id[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "user_%06d", i);
        x[0] = i;
        remember(&c, id, x);
    }
    ST_EQ_INT(c.n_recent, MAX);
    int found = 0, wrong = 0;
    for (int i = 0; i < N; i++) {
        double v;
        snprintf(id, sizeof id, "user_%06d", i);
        bool in = member(&c, id, &v);
        found += in;
        wrong += in != (i >= N - MAX) || (in && v != i);
    }
    ST_EQ_INT(found, MAX);
    ST_EQ_INT(wrong, 0);
    snprintf(id, sizeof id, "user_%06d", N - 3);
    x[0] = -1;
    remember(&c, id, x);
    double v = 0;
    ST_CHECK(member(&c, id, &v) && v == -1);
    ST_EQ_INT(c.n_recent, MAX);
    forget_recent(&c);
    ST_EQ_INT(c.n_recent, 0);
    ST_CHECK(!member(&c, id, &v));
    free(c.recent);
    free(c.recent_slots);
}

int main(void)
{
    ST_RUN(test_recent_users);
    return st_test_summary();
}
