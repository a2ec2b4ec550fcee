/* cmd_catalog.c - `stint catalog import FILE`: bulk-loads a JSONL track catalog (the generator's
 * tracks.jsonl) into the Redis track cache the enricher reads (st_trackmeta, source CATALOG),
 * pipelined in rounds, so offline runs and demos need no Last.fm API. The file is read with the
 * offline loader's reader, and a key named more than once keeps the entry the offline map keeps
 * (st_catalog_offer, ST_CATALOG_RULE): only an entry that wins is written, so at the end the cache
 * holds, for every key of the file, the entry `stint sessions --catalog FILE` uses. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_catalog.h"
#include "st_config.h"
#include "st_redis.h"
#include "st_time.h"
#include "st_trackmeta.h"

int cmd_catalog(int argc, char **argv);

typedef struct {
    char *redis_host;
    int64_t redis_port;
    char *redis_username;
    char *redis_password;
    int64_t redis_db;
    bool redis_cluster;
    char *redis_prefix;
    int64_t round_size;
} catalog_config_t;

#define OFF(f) offsetof(catalog_config_t, f)
static const st_config_entry_t table[] = {
    {"redis.host", ST_CFG_STRING, "127.0.0.1", ST_CFG_NOBOUNDS, OFF(redis_host), false, 0,
     "Redis host"},
    {"redis.port", ST_CFG_INT, "16379", 1, 65535, OFF(redis_port), false, 0, "Redis port"},
    {"redis.username", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(redis_username), false, 0,
     "Redis ACL user (Redis 6+: AUTH username password; unset = the default user)"},
    {"redis.password", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(redis_password), true, 0,
     "Redis AUTH password"},
    {"redis.db", ST_CFG_INT, "0", 0, 15, OFF(redis_db), false, 0, "Redis database number"},
    {"redis.cluster", ST_CFG_BOOL, "false", ST_CFG_NOBOUNDS, OFF(redis_cluster), false, 0,
     "Redis Cluster: redis.host:redis.port is a seed node"},
    {"redis.prefix", ST_CFG_STRING, "stint", ST_CFG_NOBOUNDS, OFF(redis_prefix), false, 0,
     "prefix of the cache keys (the enricher's redis.prefix)"},
    {"import.round_size", ST_CFG_INT, "1000", 1, 100000, OFF(round_size), false, 0,
     "tracks written per pipelined Redis round"},
    {NULL, 0, NULL, 0, 0, 0, false, 0, NULL},
};

typedef struct {
    st_redis_t *redis;
    st_redis_script_t *store;
    const char *prefix;
    st_catalog_t *seen;       /* the keys written so far and their durations (the rule's state) */
    st_catalog_stats_t stats; /* the reader's line counts */
    long long writes, rounds;
} import_t;

/* Sends the queued round; returns 0 or -1 (message printed). */
static int flush_round(import_t *im)
{
    redisReply **replies;
    size_t n;
    st_err_t err = {0};
    if (st_redis_pipe_len(im->redis) == 0)
        return 0;
    if (st_redis_exec(im->redis, &replies, &n, &err) != 0) {
        fprintf(stderr, "stint catalog import: Redis: %s\n", err.text);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (replies[i]->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "stint catalog import: Redis: %s\n", replies[i]->str);
            return -1;
        }
    }
    im->rounds++;
    st_redis_pipe_reset(im->redis);
    return 0;
}

/* Offers each entry to the rule in file order and writes the ones that win: a new key, or a
 * later entry that replaces the one written (a duration where the written entry had none; that
 * key is written twice, the second write last). Returns 0 or -1 (message printed). */
static int import_file(import_t *im, st_catalog_reader_t *r, const char *path, long long round_size)
{
    st_catalog_entry_t e;
    st_err_t err = {0};
    int rc = 0, got;
    st_redis_pipe_reset(im->redis);
    while ((got = st_catalog_reader_next(r, &e, &err)) == 1) {
        int offer = st_catalog_offer(im->seen, e.key, e.key_len, e.meta.duration_ms);
        if (offer < 0) {
            fprintf(stderr, "stint catalog import: out of memory\n");
            rc = -1;
            break;
        }
        if (offer == ST_CATALOG_KEPT)
            continue;
        if (st_trackmeta_pipe_store(im->redis, im->store, im->prefix, e.key, e.key_len, &e.meta, 0,
                                    0) != 0) {
            fprintf(stderr, "stint catalog import: %s:%llu: cannot queue the write\n", path,
                    (unsigned long long)e.line_no);
            rc = -1;
            break;
        }
        im->writes++;
        if ((long long)st_redis_pipe_len(im->redis) >= round_size && flush_round(im) != 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && got < 0) {
        fprintf(stderr, "stint catalog import: %s\n", err.text);
        rc = -1;
    }
    if (rc == 0)
        rc = flush_round(im);
    im->stats = *st_catalog_reader_stats(r);
    return rc;
}

static void print_summary(const import_t *im, const char *path, double elapsed_s)
{
    uint64_t bad = im->stats.bad;
    printf("catalog import: file=%s tracks=%zu bad_lines=%llu", path, st_catalog_size(im->seen),
           (unsigned long long)bad);
    if (bad > 0) {
        printf(" bad_line_numbers=");
        uint64_t listed = bad < ST_CATALOG_BAD_LISTED ? bad : ST_CATALOG_BAD_LISTED;
        for (uint64_t i = 0; i < listed; i++)
            printf("%s%llu", i ? "," : "", (unsigned long long)im->stats.bad_line_no[i]);
        if (bad > listed)
            printf(",...");
    }
    printf(" duplicate_keys=%llu duplicate_lines=%llu rule=%s writes=%lld rounds=%lld prefix=%s "
           "elapsed_s=%.2f\n",
           (unsigned long long)st_catalog_duplicate_keys(im->seen),
           (unsigned long long)st_catalog_duplicates(im->seen), ST_CATALOG_RULE, im->writes,
           im->rounds, im->prefix, elapsed_s);
}

int cmd_catalog(int argc, char **argv)
{
    catalog_config_t conf;
    char errstr[512];
    int npos = 0, rc = 1;

    if (argc < 2 || strcmp(argv[1], "import") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
            printf("usage: stint catalog import [options] FILE   (stint catalog import -h)\n");
            return 0;
        }
        fprintf(stderr, "usage: stint catalog import [options] FILE\n");
        return 2;
    }
    memset(&conf, 0, sizeof conf);
    st_config_t *cfg = st_config_new("stint catalog import",
                                     "load a JSONL track catalog into the Redis track cache");
    st_config_set_positional(cfg, "FILE");
    if (st_config_add_table(cfg, table, &conf, errstr, sizeof errstr) != 0) {
        fprintf(stderr, "stint catalog import: %s\n", errstr);
        st_config_destroy(cfg);
        return 1;
    }
    switch (st_config_load(cfg, argc - 1, argv + 1, &npos, errstr, sizeof errstr)) {
    case ST_CONFIG_EXIT:
        st_config_destroy(cfg);
        return 0;
    case ST_CONFIG_USAGE:
        fprintf(stderr, "stint catalog import: %s\n\n", errstr);
        st_config_usage(cfg, stderr);
        st_config_destroy(cfg);
        return 2;
    case ST_CONFIG_OK:
        break;
    }
    if (npos != 1) {
        fprintf(stderr, "stint catalog import: expected one FILE, got %d arguments\n\n", npos);
        st_config_usage(cfg, stderr);
        st_config_destroy(cfg);
        return 2;
    }
    const char *path = argv[2];
    /* "-": standard input, through the same reader. */
    st_catalog_reader_t *reader =
        st_catalog_reader_open(strcmp(path, "-") == 0 ? "/dev/stdin" : path, errstr, sizeof errstr);
    if (!reader) {
        fprintf(stderr, "stint catalog import: %s\n", errstr);
        st_config_destroy(cfg);
        return 1;
    }
    st_redis_opts_t ro = {.host = conf.redis_host,
                          .port = (int)conf.redis_port,
                          .username = conf.redis_username,
                          .password = conf.redis_password,
                          .db = (int)conf.redis_db,
                          .timeout_ms = 5000,
                          .cluster = conf.redis_cluster};
    import_t im;
    memset(&im, 0, sizeof im);
    im.prefix = conf.redis_prefix;
    im.redis = st_redis_new(&ro);
    im.seen = st_catalog_new();
    st_err_t err = {0};
    if (!im.seen) {
        fprintf(stderr, "stint catalog import: out of memory\n");
    } else if (!im.redis || st_redis_ensure(im.redis, 5000, &err) != 0) {
        fprintf(stderr, "stint catalog import: cannot connect to Redis at %s:%d: %s\n",
                conf.redis_host, (int)conf.redis_port, err.text);
    } else {
        im.store = st_trackmeta_store_script(im.redis);
        int64_t t0 = st_time_mono_ms();
        if (import_file(&im, reader, path, conf.round_size) == 0) {
            print_summary(&im, path, (double)(st_time_mono_ms() - t0) / 1000.0);
            rc = 0;
        }
    }
    st_redis_destroy(im.redis);
    st_catalog_destroy(im.seen);
    st_catalog_reader_destroy(reader);
    st_config_destroy(cfg);
    return rc;
}
