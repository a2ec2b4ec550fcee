/* st_bwatch.c - loading, versioning and hot-swapping a service's model bundle (see st_bwatch.h). */
#include "st_bwatch.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "st_buf.h"
#include "st_err.h"
#include "st_log.h"

/* What identifies one state of the bundle directory on disk. */
typedef struct {
    bool present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} bw_stamp_t;

typedef struct {
    st_bundle_t *bundle;
    char version[ST_BWATCH_VERSION_MAX];
    double global_median_s;
} bw_loaded_t;

struct st_bwatch {
    char *dir;
    int poll_ms;
    bw_loaded_t cur;
    bw_stamp_t cur_stamp;
    bw_stamp_t failed;  /* the last state that failed to load (warned once; retried every poll) */
    pthread_mutex_t mu; /* guards pending, stop */
    pthread_cond_t cv;
    bw_loaded_t pending; /* bundle NULL when nothing is waiting */
    bool stop;
    bool thread_started;
    pthread_t thread;
};

static bw_stamp_t stamp_of(const char *dir)
{
    char path[4096];
    struct stat st;
    bw_stamp_t s = {0};
    snprintf(path, sizeof path, "%s/metadata.json", dir);
    if (stat(path, &st) != 0)
        return s;
    s.present = true;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtime = st.st_mtim;
    return s;
}

static bool stamp_equal(const bw_stamp_t *a, const bw_stamp_t *b)
{
    return a->present == b->present && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Hash of the names and bytes of every regular file of dir, in name order. */
static int hash_dir(const char *dir, uint64_t *out, char *errstr, size_t errstr_size)
{
    DIR *d = opendir(dir);
    if (!d)
        return st_errstr(errstr, errstr_size, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(names, cap * sizeof *names);
            if (!p) {
                rc = -1;
                break;
            }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0)
        qsort(names, n, sizeof *names, cmp_name);
    uint64_t h = 0x5354494e54ULL;
    char path[4096], chunk[65536];
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        h = st_hash64(names[i], strlen(names[i]) + 1, h);
        FILE *fp = fopen(path, "rb");
        if (!fp) {
            rc = st_errstr(errstr, errstr_size, "%s: %s", path, strerror(errno));
            break;
        }
        for (size_t got; (got = fread(chunk, 1, sizeof chunk, fp)) > 0;)
            h = st_hash64(chunk, got, h);
        fclose(fp);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc != 0)
        return st_errstr(errstr, errstr_size, "%s: cannot hash the bundle", dir);
    *out = h;
    return 0;
}

st_bundle_t *st_bwatch_load_dir(const char *dir, char *version, double *global_median_s,
                                char *errstr, size_t errstr_size)
{
    st_bundle_t *b = st_bundle_load(dir, errstr, errstr_size);
    if (!b)
        return NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/metadata.json", dir);
    json_t *meta = json_load_file(path, 0, NULL);
    const char *mv = json_string_value(json_object_get(meta, "model_version"));
    json_t *gm = json_object_get(json_object_get(meta, "metrics"), "global_median_s");
    *global_median_s = json_is_number(gm) ? json_number_value(gm) : NAN;
    if (mv && *mv) {
        /* It labels metrics, the predictor's stored state (space-separated) and records: a
         * label value, no longer than the buffer, so two versions never compare equal cut. */
        size_t len = strlen(mv);
        bool ok = len < ST_BWATCH_VERSION_MAX && strspn(mv, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                            "abcdefghijklmnopqrstuvwxyz"
                                                            "0123456789._:+-") == len;
        if (!ok) {
            st_errstr(errstr, errstr_size,
                      "%s: model_version must be 1..%d characters of A-Z a-z 0-9 . _ : + -", path,
                      ST_BWATCH_VERSION_MAX - 1);
            json_decref(meta);
            st_bundle_destroy(b);
            return NULL;
        }
        memcpy(version, mv, len + 1);
    } else {
        uint64_t h;
        if (hash_dir(dir, &h, errstr, errstr_size) != 0) {
            json_decref(meta);
            st_bundle_destroy(b);
            return NULL;
        }
        snprintf(version, ST_BWATCH_VERSION_MAX, "b-%016llx", (unsigned long long)h);
    }
    json_decref(meta);
    return b;
}

/* Loads dir if its stamp differs from *seen. A load that raced a writer, or failed (a file not
 * there yet, a transient error), is retried at the next poll; a failure is logged once per state.
 */
static bool try_load(st_bwatch_t *pm, bw_stamp_t *seen, bw_loaded_t *out)
{
    const char *dir = pm->dir;
    bw_stamp_t before = stamp_of(dir);
    if (!before.present || stamp_equal(&before, seen))
        return false;
    char errstr[512];
    bw_loaded_t l = {0};
    l.bundle = st_bwatch_load_dir(dir, l.version, &l.global_median_s, errstr, sizeof errstr);
    bw_stamp_t after = stamp_of(dir);
    if (!stamp_equal(&before, &after)) {
        st_bundle_destroy(l.bundle);
        return false;
    }
    if (!l.bundle) {
        if (!stamp_equal(&before, &pm->failed))
            st_log_warn("model_load_failed", "dir=\"%s\" error=\"%s\" (retried every poll)", dir,
                        errstr);
        pm->failed = before;
        return false;
    }
    *seen = before;
    st_log_info("model_loaded", "dir=\"%s\" model_version=%s", dir, l.version);
    *out = l;
    return true;
}

static void *watch_main(void *arg)
{
    st_bwatch_t *pm = arg;
    bw_stamp_t seen = pm->cur_stamp;
    pthread_mutex_lock(&pm->mu);
    while (!pm->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += pm->poll_ms / 1000;
        until.tv_nsec += (long)(pm->poll_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&pm->cv, &pm->mu, &until);
        if (pm->stop)
            break;
        pthread_mutex_unlock(&pm->mu);
        bw_loaded_t l;
        bool got = try_load(pm, &seen, &l);
        pthread_mutex_lock(&pm->mu);
        if (got) {
            st_bundle_destroy(pm->pending.bundle); /* a newer one replaces an untaken one */
            pm->pending = l;
        }
    }
    pthread_mutex_unlock(&pm->mu);
    return NULL;
}

st_bwatch_t *st_bwatch_new(const char *dir, int poll_ms, char *errstr, size_t errstr_size)
{
    st_bwatch_t *pm = calloc(1, sizeof *pm);
    if (!pm || !(pm->dir = strdup(dir))) {
        free(pm);
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pm->poll_ms = poll_ms;
    snprintf(pm->cur.version, sizeof pm->cur.version, "none");
    pm->cur.global_median_s = NAN;
    pthread_mutex_init(&pm->mu, NULL);
    pthread_cond_init(&pm->cv, NULL);
    if (!try_load(pm, &pm->cur_stamp, &pm->cur))
        st_log_warn("model_missing", "dir=\"%s\" predictor=BASELINE until a bundle appears", dir);
    if (poll_ms > 0) {
        int rc = pthread_create(&pm->thread, NULL, watch_main, pm);
        if (rc != 0) {
            st_errstr(errstr, errstr_size, "model watcher thread: %s", strerror(rc));
            st_bwatch_destroy(pm);
            return NULL;
        }
        pm->thread_started = true;
    }
    return pm;
}

void st_bwatch_destroy(st_bwatch_t *pm)
{
    if (!pm)
        return;
    if (pm->thread_started) {
        pthread_mutex_lock(&pm->mu);
        pm->stop = true;
        pthread_cond_signal(&pm->cv);
        pthread_mutex_unlock(&pm->mu);
        pthread_join(pm->thread, NULL);
    }
    st_bundle_destroy(pm->pending.bundle);
    st_bundle_destroy(pm->cur.bundle);
    pthread_mutex_destroy(&pm->mu);
    pthread_cond_destroy(&pm->cv);
    free(pm->dir);
    free(pm);
}

bool st_bwatch_pending(st_bwatch_t *pm)
{
    pthread_mutex_lock(&pm->mu);
    bool pending = pm->pending.bundle != NULL;
    pthread_mutex_unlock(&pm->mu);
    return pending;
}

bool st_bwatch_swap(st_bwatch_t *pm)
{
    bw_loaded_t l = {0};
    pthread_mutex_lock(&pm->mu);
    if (pm->pending.bundle) {
        l = pm->pending;
        pm->pending.bundle = NULL;
    }
    pthread_mutex_unlock(&pm->mu);
    if (!l.bundle)
        return false;
    bool changed = strcmp(l.version, pm->cur.version) != 0;
    st_bundle_destroy(pm->cur.bundle);
    pm->cur = l;
    if (changed)
        st_log_info("model_swapped", "model_version=%s", pm->cur.version);
    return changed;
}

st_bundle_t *st_bwatch_bundle(st_bwatch_t *pm)
{
    return pm->cur.bundle;
}

const char *st_bwatch_version(const st_bwatch_t *pm)
{
    return pm->cur.version;
}

double st_bwatch_global_baseline_s(const st_bwatch_t *pm, double fallback_s)
{
    return isfinite(pm->cur.global_median_s) ? pm->cur.global_median_s : fallback_s;
}

int st_bwatch_history_needed(const st_bwatch_t *pm)
{
    if (!pm->cur.bundle)
        return 0;
    const st_bundle_spec_t *s = st_bundle_spec(pm->cur.bundle);
    return s->kind != ST_BUNDLE_PARITY ? s->window + 1 : 1;
}
