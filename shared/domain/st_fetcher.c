/* st_fetcher.c - bounded, deduplicated fetch queue and its worker thread (rate limit, retries with
 * jittered backoff, stop on a bad API key). One mutex guards the queue, the key set and the
 * counters; HTTP and the result callback run outside it. */
#include "st_fetcher.h"

#include "st_buf.h"
#include "st_err.h"
#include "st_log.h"
#include "st_ratelimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct item {
    struct item *hnext; /* chain in the pending-key set */
    uint64_t hash;
    size_t artist_len;
    size_t track_len;
    char key[]; /* artist '\0' track '\0' */
} item_t;

struct st_fetcher {
    st_fetcher_config_t conf; /* lastfm strings not kept: the client copied them */
    st_lastfm_api_t *api;
    st_ratelimit_t *rl;    /* worker thread only */
    uint64_t rng;          /* worker thread only */
    atomic_bool stop_flag; /* read by the libcurl progress hook without the mutex */

    pthread_mutex_t mu;
    pthread_cond_t work_cond;  /* worker waiting for a key: a key arrived, or stop */
    pthread_cond_t sleep_cond; /* worker pausing (rate limit, backoff): stop only */
    pthread_cond_t idle_cond;  /* st_fetcher_wait_idle: a key finished */
    pthread_t thread;
    bool thread_started;

    item_t **ring; /* queued keys, FIFO, conf.queue_max slots */
    size_t head, count;
    item_t **buckets; /* pending keys (queued + in flight) */
    size_t bucket_mask;
    bool stop, fatal;
    bool worker_waiting;    /* in pthread_cond_wait(work_cond): only then is a signal needed */
    st_fetcher_metrics_t m; /* queue_depth/pending/fatal_key filled at snapshot */
};

void st_fetcher_config_init(st_fetcher_config_t *conf)
{
    memset(conf, 0, sizeof *conf);
    st_lastfm_api_config_init(&conf->lastfm);
    conf->rate_per_s = 5.0;
    conf->burst = 1;
    conf->rate_guard_ms = 20;
    conf->queue_max = 10000;
    conf->max_attempts = 4;
    conf->backoff_base_ms = 500;
    conf->backoff_cap_ms = 30000;
    conf->rate_limited_pause_ms = 10000;
    conf->jitter_seed = 1;
}

const char *st_fetcher_enqueue_name(st_fetcher_enqueue_t r)
{
    switch (r) {
    case ST_FETCHER_QUEUED:
        return "queued";
    case ST_FETCHER_DUPLICATE:
        return "duplicate";
    case ST_FETCHER_FULL:
        return "full";
    case ST_FETCHER_STOPPED:
        return "stopped";
    }
    return "unknown";
}

static struct timespec deadline_after_us(int64_t us)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + (us % 1000000) * 1000;
    ts.tv_sec += (time_t)(us / 1000000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return ts;
}

static item_t **set_slot(st_fetcher_t *f, uint64_t hash, const char *artist, size_t alen,
                         const char *track, size_t tlen)
{
    item_t **p = &f->buckets[hash & f->bucket_mask];
    for (; *p; p = &(*p)->hnext) {
        item_t *it = *p;
        if (it->hash == hash && it->artist_len == alen && it->track_len == tlen &&
            memcmp(it->key, artist, alen) == 0 && memcmp(it->key + alen + 1, track, tlen) == 0)
            return p;
    }
    return p;
}

/* Removes a finished key from the set and frees it. Called with the mutex held. */
static void finish_item(st_fetcher_t *f, item_t *it)
{
    item_t **p =
        set_slot(f, it->hash, it->key, it->artist_len, it->key + it->artist_len + 1, it->track_len);
    if (*p == it)
        *p = it->hnext;
    free(it);
    f->m.pending--;
}

/* Drops every queued key (no callback). Called with the mutex held. */
static void discard_queue(st_fetcher_t *f)
{
    while (f->count > 0) {
        item_t *it = f->ring[f->head];
        f->head = (f->head + 1) % f->conf.queue_max;
        f->count--;
        f->m.dropped_stopped++;
        finish_item(f, it);
    }
    pthread_cond_broadcast(&f->idle_cond);
}

st_fetcher_enqueue_t st_fetcher_enqueue(st_fetcher_t *f, const char *artist, const char *track)
{
    size_t alen, tlen;
    uint64_t hash;
    item_t **slot, *it;
    st_fetcher_enqueue_t r;

    artist = artist ? artist : "";
    track = track ? track : "";
    alen = strlen(artist);
    tlen = strlen(track);
    hash = st_hash64(track, tlen, st_hash64(artist, alen, 0) ^ alen);

    pthread_mutex_lock(&f->mu);
    if (f->stop || f->fatal) {
        f->m.dropped_stopped++;
        r = ST_FETCHER_STOPPED;
    } else if (*(slot = set_slot(f, hash, artist, alen, track, tlen))) {
        f->m.duplicates++;
        r = ST_FETCHER_DUPLICATE;
    } else if (f->m.pending >= f->conf.queue_max || !(it = malloc(sizeof *it + alen + tlen + 2))) {
        f->m.dropped_full++;
        r = ST_FETCHER_FULL;
    } else {
        it->hnext = NULL;
        it->hash = hash;
        it->artist_len = alen;
        it->track_len = tlen;
        memcpy(it->key, artist, alen + 1);
        memcpy(it->key + alen + 1, track, tlen + 1);
        *slot = it;
        f->ring[(f->head + f->count) % f->conf.queue_max] = it;
        f->count++;
        f->m.pending++;
        f->m.enqueued++;
        if (f->worker_waiting)
            pthread_cond_signal(&f->work_cond);
        r = ST_FETCHER_QUEUED;
    }
    pthread_mutex_unlock(&f->mu);
    return r;
}

/* Sleeps up to us microseconds on the worker; returns false when asked to stop. */
static bool worker_sleep(st_fetcher_t *f, int64_t us)
{
    struct timespec until = deadline_after_us(us);
    bool stop;
    pthread_mutex_lock(&f->mu);
    while (!f->stop && pthread_cond_timedwait(&f->sleep_cond, &f->mu, &until) == 0)
        ;
    stop = f->stop;
    pthread_mutex_unlock(&f->mu);
    return !stop;
}

static void count_answer(st_fetcher_t *f, const st_lastfm_api_result_t *res)
{
    pthread_mutex_lock(&f->mu);
    if (res->lastfm_error > 0)
        f->m.lastfm_errors[res->lastfm_error < 31 ? res->lastfm_error : 31]++;
    if (res->http_status >= 500 && res->http_status <= 599)
        f->m.http_5xx++;
    if (res->http_status == 0 && res->status != ST_LASTFM_API_OK)
        f->m.transport_errors++;
    if (res->rate_limited)
        f->m.rate_limited++;
    pthread_mutex_unlock(&f->mu);
}

/* Fetches one key with rate limit and retries. Returns false when stopped before an answer. */
static bool fetch_key(st_fetcher_t *f, const item_t *it, st_lastfm_api_result_t *res)
{
    const char *artist = it->key, *track = it->key + it->artist_len + 1;
    for (int attempt = 0;; attempt++) {
        bool waited = false;
        int64_t wait_us;
        while ((wait_us = st_ratelimit_take(f->rl)) > 0) {
            if (!waited) {
                waited = true;
                pthread_mutex_lock(&f->mu);
                f->m.rate_limit_waits++;
                pthread_mutex_unlock(&f->mu);
            }
            if (!worker_sleep(f, wait_us))
                return false;
        }
        pthread_mutex_lock(&f->mu);
        f->m.requests++;
        pthread_mutex_unlock(&f->mu);
        st_lastfm_api_track_get_info(f->api, artist, track, res);
        if (atomic_load(&f->stop_flag))
            return false;
        count_answer(f, res);
        if (res->status != ST_LASTFM_API_RETRY)
            return true;
        if (res->rate_limited)
            st_ratelimit_pause(f->rl, f->conf.rate_limited_pause_ms * 1000);
        if (attempt + 1 >= f->conf.max_attempts)
            return true;
        pthread_mutex_lock(&f->mu);
        f->m.retries++;
        pthread_mutex_unlock(&f->mu);
        if (st_log_min_level <= ST_LOG_DEBUG) {
            char quoted[300];
            st_log_debug("lastfm_retry", "attempt=%d reason=%s", attempt + 1,
                         st_log_quote(res->reason, quoted, sizeof quoted));
        }
        if (!worker_sleep(f, st_ratelimit_backoff_ms(attempt, f->conf.backoff_base_ms,
                                                     f->conf.backoff_cap_ms, &f->rng) *
                                 1000))
            return false;
    }
}

static void count_final(st_fetcher_t *f, const st_lastfm_api_result_t *res)
{
    f->m.fetches++;
    switch (res->status) {
    case ST_LASTFM_API_OK:
        f->m.ok++;
        break;
    case ST_LASTFM_API_NOT_FOUND:
        f->m.not_found++;
        break;
    case ST_LASTFM_API_RETRY:
        f->m.gave_up++;
        break;
    case ST_LASTFM_API_FATAL_KEY:
        break;
    case ST_LASTFM_API_OTHER:
        f->m.other++;
        break;
    }
}

static void *worker_main(void *arg)
{
    st_fetcher_t *f = arg;
    st_lastfm_api_result_t res;

    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->stop && f->count == 0) {
            f->worker_waiting = true;
            pthread_cond_wait(&f->work_cond, &f->mu);
            f->worker_waiting = false;
        }
        if (f->stop)
            break;
        item_t *it = f->ring[f->head];
        f->head = (f->head + 1) % f->conf.queue_max;
        f->count--;
        pthread_mutex_unlock(&f->mu);

        bool answered = fetch_key(f, it, &res);
        if (answered) {
            if (res.status == ST_LASTFM_API_FATAL_KEY) {
                char quoted[300];
                st_log_error("lastfm_api_key_rejected",
                             "lastfm_error=%d reason=%s action=\"fetching stopped, durations stay "
                             "unknown; fix the API key and restart\"",
                             res.lastfm_error, st_log_quote(res.reason, quoted, sizeof quoted));
            } else if (res.status == ST_LASTFM_API_OTHER || res.status == ST_LASTFM_API_RETRY) {
                char quoted[300];
                st_log_warn("lastfm_fetch_failed", "status=%s reason=%s",
                            st_lastfm_api_status_name(res.status),
                            st_log_quote(res.reason, quoted, sizeof quoted));
            }
            f->conf.on_result(f->conf.on_result_ctx, it->key, it->key + it->artist_len + 1, &res);
        }

        pthread_mutex_lock(&f->mu);
        if (answered) {
            count_final(f, &res);
            if (res.status == ST_LASTFM_API_FATAL_KEY) {
                f->fatal = true;
                discard_queue(f);
            }
        }
        finish_item(f, it);
        pthread_cond_broadcast(&f->idle_cond);
    }
    discard_queue(f);
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static bool cancel_hook(void *ctx)
{
    st_fetcher_t *f = ctx;
    return atomic_load(&f->stop_flag);
}

void st_fetcher_destroy(st_fetcher_t *f)
{
    if (!f)
        return;
    if (f->thread_started) {
        pthread_mutex_lock(&f->mu);
        f->stop = true;
        atomic_store(&f->stop_flag, true);
        pthread_cond_broadcast(&f->work_cond);
        pthread_cond_broadcast(&f->sleep_cond);
        pthread_cond_broadcast(&f->idle_cond);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->thread, NULL);
    }
    if (f->ring) {
        pthread_mutex_lock(&f->mu);
        discard_queue(f);
        pthread_mutex_unlock(&f->mu);
    }
    pthread_cond_destroy(&f->work_cond);
    pthread_cond_destroy(&f->sleep_cond);
    pthread_cond_destroy(&f->idle_cond);
    pthread_mutex_destroy(&f->mu);
    st_lastfm_api_destroy(f->api);
    st_ratelimit_destroy(f->rl);
    free(f->ring);
    free(f->buckets);
    free(f);
}

st_fetcher_t *st_fetcher_new(const st_fetcher_config_t *conf, char *errstr, size_t errstr_size)
{
    st_fetcher_t *f;
    pthread_condattr_t ca;
    st_lastfm_api_config_t api_conf;
    size_t nbuckets = 16;
    double guarded_rate;

    if (!conf->on_result) {
        st_errstr(errstr, errstr_size, "fetcher: no result callback");
        return NULL;
    }
    if (!(conf->rate_per_s > 0.0 && conf->rate_per_s <= 1e6)) {
        st_errstr(errstr, errstr_size, "fetcher: rate_per_s %g is not in (0, 1e6]",
                  conf->rate_per_s);
        return NULL;
    }
    if (conf->queue_max < 1 || conf->queue_max > ((size_t)1 << 28)) {
        st_errstr(errstr, errstr_size, "fetcher: queue_max %zu is not in [1, 2^28]",
                  conf->queue_max);
        return NULL;
    }
    if (conf->max_attempts < 1 || conf->backoff_base_ms < 0 || conf->backoff_cap_ms < 0 ||
        conf->rate_limited_pause_ms < 0 || conf->rate_guard_ms < 0 || conf->rate_guard_ms > 1000) {
        st_errstr(errstr, errstr_size,
                  "fetcher: max_attempts must be >= 1, backoff/pause times >= 0 and "
                  "rate_guard_ms in [0, 1000]");
        return NULL;
    }
    if (!(f = calloc(1, sizeof *f))) {
        st_errstr(errstr, errstr_size, "fetcher: out of memory");
        return NULL;
    }
    f->conf = *conf;
    memset(&f->conf.lastfm, 0, sizeof f->conf.lastfm);
    f->rng = conf->jitter_seed;
    atomic_init(&f->stop_flag, false);
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->work_cond, &ca);
    pthread_cond_init(&f->sleep_cond, &ca);
    pthread_cond_init(&f->idle_cond, &ca);
    pthread_condattr_destroy(&ca);

    while (nbuckets < conf->queue_max)
        nbuckets *= 2;
    f->bucket_mask = nbuckets - 1;
    f->ring = calloc(conf->queue_max, sizeof *f->ring);
    f->buckets = calloc(nbuckets, sizeof *f->buckets);
    if (!f->ring || !f->buckets) {
        st_fetcher_destroy(f);
        st_errstr(errstr, errstr_size, "fetcher: out of memory");
        return NULL;
    }
    guarded_rate = conf->rate_per_s * 1000.0 / (1000.0 + (double)conf->rate_guard_ms);
    if (!(f->rl = st_ratelimit_new(guarded_rate, conf->burst, NULL, NULL, errstr, errstr_size))) {
        st_fetcher_destroy(f);
        return NULL;
    }
    api_conf = conf->lastfm;
    api_conf.cancel = cancel_hook;
    api_conf.cancel_ctx = f;
    if (!(f->api = st_lastfm_api_new(&api_conf, errstr, errstr_size))) {
        st_fetcher_destroy(f);
        return NULL;
    }
    if (pthread_create(&f->thread, NULL, worker_main, f) != 0) {
        st_fetcher_destroy(f);
        st_errstr(errstr, errstr_size, "fetcher: cannot start the worker thread");
        return NULL;
    }
    f->thread_started = true;
    st_log_info("fetcher_started",
                "rate_per_s=%g burst=%d rate_guard_ms=%lld queue_max=%zu max_attempts=%d",
                conf->rate_per_s, conf->burst, (long long)conf->rate_guard_ms, conf->queue_max,
                conf->max_attempts);
    return f;
}

bool st_fetcher_wait_idle(st_fetcher_t *f, int64_t budget_ms)
{
    struct timespec until = deadline_after_us(budget_ms > 0 ? budget_ms * 1000 : 0);
    bool idle;
    pthread_mutex_lock(&f->mu);
    while (f->m.pending > 0 && !f->stop && !f->fatal &&
           pthread_cond_timedwait(&f->idle_cond, &f->mu, &until) == 0)
        ;
    idle = f->m.pending == 0;
    pthread_mutex_unlock(&f->mu);
    return idle;
}

void st_fetcher_metrics(st_fetcher_t *f, st_fetcher_metrics_t *out)
{
    pthread_mutex_lock(&f->mu);
    *out = f->m;
    out->queue_depth = f->count;
    out->fatal_key = f->fatal;
    pthread_mutex_unlock(&f->mu);
}
