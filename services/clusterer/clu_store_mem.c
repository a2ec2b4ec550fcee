/* clu_store_mem.c - the clusterer's state in memory, with the Redis store's semantics
 * (clu_store.h): for the core's unit tests. */
#include "clu_store_mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *user;
    st_applied_mark_t *marks_s, *marks_p; /* sessions / profiles: partition -> offset */
    size_t n_marks_s, n_marks_p;
    int64_t lc; /* -1 none */
    clu_store_prof_t prof;
    bool has_cluster;
    clu_store_cluster_t cluster;
} mem_user_t;

typedef struct {
    clu_store_t iface;
    mem_user_t *users;
    size_t n, cap;
    int median_window;
    long fail_after; /* users the next write applies before failing, -1 never */
    bool fail_reads;
    int64_t refit_seq;
    char *refit;
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
    u->user = strdup(user);
    u->prof.lens = malloc((size_t)s->median_window * sizeof *u->prof.lens);
    if (!u->user || !u->prof.lens) {
        free(u->user);
        free(u->prof.lens);
        return NULL;
    }
    u->lc = -1;
    u->prof.demo.age = -1;
    s->n++;
    return u;
}

static void read_marks(st_applied_t *a, const st_applied_mark_t *marks, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        int slot = st_applied_slot(a, marks[k].partition, false);
        if (slot >= 0)
            a->stored[slot] = marks[k].offset;
    }
}

static int store_read(void *ctx, clu_store_user_t *users, size_t n, st_err_t *err)
{
    const mem_store_t *s = ctx;
    if (s->fail_reads) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "memory store: read failed (fail_reads)");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        clu_store_user_t *r = &users[i];
        const mem_user_t *u = find(s, r->user);
        double *lens = r->prof->lens;
        *r->prof = (clu_store_prof_t){.demo = {.age = -1}, .lens = lens};
        *r->cluster = (clu_store_cluster_t){.cluster = -1};
        if (!u)
            continue;
        read_marks(r->sessions, u->marks_s, u->n_marks_s);
        read_marks(r->profiles, u->marks_p, u->n_marks_p);
        r->sessions->last_closed_ms = u->lc;
        *r->prof = u->prof;
        r->prof->lens = lens;
        memcpy(lens, u->prof.lens, (size_t)u->prof.n_lens * sizeof *lens);
        if (u->has_cluster)
            *r->cluster = u->cluster;
    }
    return 0;
}

/* Whether the write moves any marker of a. */
static bool moves(const st_applied_t *a)
{
    for (int k = 0; k < a->n; k++)
        if (a->last[k] >= 0)
            return true;
    return false;
}

/* The CLOSED after lc, as the script counts them. */
static void count_closed(const mem_store_t *s, mem_user_t *u, const clu_store_write_t *w)
{
    clu_store_prof_t *p = &u->prof;
    for (size_t k = 0; k < w->n_closed; k++) {
        const clu_store_closed_t *c = &w->closed[k];
        if (c->start_ms <= u->lc)
            continue;
        u->lc = c->start_ms;
        p->n += 1;
        p->sum_s += c->length_s;
        p->tracks += c->tracks;
        if (c->length_s > p->max_s)
            p->max_s = c->length_s;
        if (p->n_lens == s->median_window) {
            memmove(p->lens, p->lens + 1, (size_t)(p->n_lens - 1) * sizeof *p->lens);
            p->n_lens--;
        }
        p->lens[p->n_lens++] = c->length_s;
    }
}

static int store_write(void *ctx, const clu_store_write_t *w, size_t n, st_err_t *err)
{
    mem_store_t *s = ctx;
    for (size_t i = 0; i < n; i++) {
        if (s->fail_after >= 0 && (long)i >= s->fail_after) {
            s->fail_after = -1;
            st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY,
                       "memory store: injected failure after %zu users", i);
            return -1;
        }
        mem_user_t *u = find_or_add(s, w[i].user);
        if (!u) {
            st_err_nomem(err);
            return -1;
        }
        /* Per part: 1 applied, 0 refused or nothing to apply, -1 no memory. */
        int sessions = moves(w[i].sessions)
                           ? st_applied_mem_check_and_set(&u->marks_s, &u->n_marks_s, w[i].sessions)
                           : 0;
        int profiles = moves(w[i].profiles)
                           ? st_applied_mem_check_and_set(&u->marks_p, &u->n_marks_p, w[i].profiles)
                           : 0;
        if (sessions < 0 || profiles < 0) {
            st_err_nomem(err);
            return -1;
        }
        if (sessions)
            count_closed(s, u, &w[i]);
        if (profiles && w[i].demo)
            u->prof.demo = *w[i].demo;
        if ((sessions || profiles) && w[i].cluster) {
            u->has_cluster = true;
            u->cluster = *w[i].cluster;
        }
    }
    return 0;
}

static int store_next_refit_seq(void *ctx, int64_t *seq, st_err_t *err)
{
    (void)err;
    mem_store_t *s = ctx;
    *seq = ++s->refit_seq;
    return 0;
}

static int store_put_refit(void *ctx, const char *json, st_err_t *err)
{
    mem_store_t *s = ctx;
    char *copy = strdup(json);
    if (!copy) {
        st_err_nomem(err);
        return -1;
    }
    free(s->refit);
    s->refit = copy;
    return 0;
}

clu_store_t *clu_store_mem_new(int median_window)
{
    mem_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->median_window = median_window;
    s->fail_after = -1;
    s->iface = (clu_store_t){s, store_read, store_write, store_next_refit_seq, store_put_refit};
    return &s->iface;
}

void clu_store_mem_destroy(clu_store_t *iface)
{
    if (!iface)
        return;
    mem_store_t *s = iface->ctx;
    for (size_t i = 0; i < s->n; i++) {
        free(s->users[i].user);
        free(s->users[i].marks_s);
        free(s->users[i].marks_p);
        free(s->users[i].prof.lens);
    }
    free(s->users);
    free(s->refit);
    free(s);
}

void clu_store_mem_fail_after(clu_store_t *iface, long n)
{
    ((mem_store_t *)iface->ctx)->fail_after = n < 0 ? -1 : n;
}

void clu_store_mem_fail_reads(clu_store_t *iface, bool fail)
{
    ((mem_store_t *)iface->ctx)->fail_reads = fail;
}

const char *clu_store_mem_refit(const clu_store_t *iface)
{
    return ((const mem_store_t *)iface->ctx)->refit;
}
