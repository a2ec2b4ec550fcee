/* pred_store_mem.c - the predictor's state in memory, with the Redis store's semantics
 * (pred_store.h): for the core's unit tests and benches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pred_store.h"

typedef struct {
    char *user;
    st_applied_mark_t *marks;
    size_t n_marks;
    int64_t lc;
    char *open_text; /* NULL: none */
    bool has_cluster;
    int cluster;
    bool cluster_cold;
    char cluster_version[PRED_STORE_VERSION_MAX];
} mem_user_t;

typedef struct {
    pred_store_t iface;
    mem_user_t *users;
    size_t n, cap;
    long fail_after; /* writes left before failing, -1 never */
    bool fail_reads;
} mem_store_t;

static mem_user_t *find(const mem_store_t *s, const char *user)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->users[i].user, user) == 0)
            return &s->users[i];
    return NULL;
}

static mem_user_t *find_or_add(mem_store_t *s, const char *user)
{
    mem_user_t *u = find(s, user);
    if (u)
        return u;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        mem_user_t *p = realloc(s->users, cap * sizeof *p);
        if (!p)
            return NULL;
        s->users = p;
        s->cap = cap;
    }
    u = &s->users[s->n];
    memset(u, 0, sizeof *u);
    if (!(u->user = strdup(user)))
        return NULL;
    u->lc = -1;
    s->n++;
    return u;
}

static int store_read(void *ctx, pred_store_user_t *users, size_t n, bool want_cluster,
                      st_err_t *err)
{
    mem_store_t *s = ctx;
    if (s->fail_reads) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "memory store: read failed (fail_reads)");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        pred_store_user_t *r = &users[i];
        const mem_user_t *u = find(s, r->user);
        pred_open_reset(r->open);
        r->cluster = -1;
        r->cluster_cold = false;
        r->cluster_version[0] = '\0';
        if (!u)
            continue;
        for (size_t k = 0; k < u->n_marks; k++) {
            int slot = st_applied_slot(r->applied, u->marks[k].partition, false);
            if (slot >= 0)
                r->applied->stored[slot] = u->marks[k].offset;
        }
        r->applied->last_closed_ms = u->lc;
        if (u->open_text)
            pred_open_parse(r->open, u->open_text, strlen(u->open_text));
        else
            r->open->closed_last_ms = u->lc;
        if (want_cluster && u->has_cluster) {
            r->cluster = u->cluster;
            r->cluster_cold = u->cluster_cold;
            snprintf(r->cluster_version, sizeof r->cluster_version, "%s", u->cluster_version);
        }
    }
    return 0;
}

static int store_write(void *ctx, const pred_store_write_t *w, size_t n, st_err_t *err)
{
    mem_store_t *s = ctx;
    if (s->fail_after == 0) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "memory store: write failed (fail_after)");
        return -1;
    }
    if (s->fail_after > 0)
        s->fail_after--;
    for (size_t i = 0; i < n; i++) {
        mem_user_t *u = find_or_add(s, w[i].user);
        if (!u) {
            st_err_nomem(err);
            return -1;
        }
        int rc = st_applied_mem_check_and_set(&u->marks, &u->n_marks, w[i].applied);
        if (rc < 0) {
            st_err_nomem(err);
            return -1;
        }
        if (rc == 0)
            continue; /* applied before: nothing written */
        if (w[i].applied->last_closed_ms > u->lc)
            u->lc = w[i].applied->last_closed_ms;
        if (w[i].open_text) {
            char *t = strdup(w[i].open_text);
            if (!t) {
                st_err_nomem(err);
                return -1;
            }
            free(u->open_text);
            u->open_text = t;
        }
    }
    return 0;
}

pred_store_t *pred_store_mem_new(void)
{
    mem_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->fail_after = -1;
    s->iface.ctx = s;
    s->iface.read = store_read;
    s->iface.write = store_write;
    return &s->iface;
}

void pred_store_mem_destroy(pred_store_t *iface)
{
    if (!iface)
        return;
    mem_store_t *s = iface->ctx;
    for (size_t i = 0; i < s->n; i++) {
        free(s->users[i].user);
        free(s->users[i].marks);
        free(s->users[i].open_text);
    }
    free(s->users);
    free(s);
}

void pred_store_mem_fail_after(pred_store_t *iface, long n)
{
    ((mem_store_t *)iface->ctx)->fail_after = n;
}

void pred_store_mem_fail_reads(pred_store_t *iface, bool fail)
{
    ((mem_store_t *)iface->ctx)->fail_reads = fail;
}

int pred_store_mem_set_cluster(pred_store_t *iface, const char *user, int cluster, bool cold,
                               const char *version)
{
    mem_user_t *u = find_or_add(iface->ctx, user);
    if (!u)
        return -1;
    u->has_cluster = true;
    u->cluster = cluster;
    u->cluster_cold = cold;
    snprintf(u->cluster_version, sizeof u->cluster_version, "%s", version);
    return 0;
}

const char *pred_store_mem_open_text(const pred_store_t *iface, const char *user)
{
    const mem_user_t *u = find(iface->ctx, user);
    return u ? u->open_text : NULL;
}

int64_t pred_store_mem_lc(const pred_store_t *iface, const char *user)
{
    const mem_user_t *u = find(iface->ctx, user);
    return u ? u->lc : -1;
}
