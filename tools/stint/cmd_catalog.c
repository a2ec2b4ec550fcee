/* cmd_catalog.c - `stint catalog import FILE`: bulk-loads a JSONL track catalog (the generator's
 * tracks.jsonl) into the Redis track cache the enricher reads (st_trackmeta, source CATALOG),
 * pipelined in rounds, so offline runs and demos need no Last.fm API. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_config.h"
#include "st_listen.h"
#include "st_redis.h"
#include "st_time.h"
#include "st_trackmeta.h"

int cmd_catalog(int argc, char **argv);

#define MAX_LISTED_BAD_LINES 20

typedef struct {
    char *redis_host;
    int64_t redis_port;
    char *redis_password;
    int64_t redis_db;
    char *redis_prefix;
    int64_t round_size;
} catalog_config_t;

#define OFF(f) offsetof(catalog_config_t, f)
static const st_config_entry_t table[] = {
    {"redis.host", ST_CFG_STRING, "127.0.0.1", ST_CFG_NOBOUNDS, OFF(redis_host), false, 0,
     "Redis host"},
    {"redis.port", ST_CFG_INT, "16379", 1, 65535, OFF(redis_port), false, 0, "Redis port"},
    {"redis.password", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(redis_password), true, 0,
     "Redis AUTH password"},
    {"redis.db", ST_CFG_INT, "0", 0, 15, OFF(redis_db), false, 0, "Redis database number"},
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
    long long loaded, bad, rounds;
    long long bad_lines[MAX_LISTED_BAD_LINES];
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

static int import_file(import_t *im, FILE *in, const char *path, long long round_size)
{
    char *line = NULL, reason[256];
    size_t cap = 0;
    ssize_t len;
    long long lineno = 0;
    static char key[2 * ST_LISTEN_FIELD_MAX + 2];
    st_trackmeta_t meta;
    int rc = 0;

    st_redis_pipe_reset(im->redis);
    while ((len = getline(&line, &cap, in)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (len == 0)
            continue;
        int klen = st_trackmeta_parse_catalog_line(line, (size_t)len, key, sizeof key, &meta,
                                                   reason, sizeof reason);
        if (klen < 0) {
            if (im->bad < MAX_LISTED_BAD_LINES) {
                im->bad_lines[im->bad] = lineno;
                fprintf(stderr, "stint catalog import: %s:%lld: skipped: %s\n", path, lineno,
                        reason);
            }
            im->bad++;
            continue;
        }
        if (st_trackmeta_pipe_store(im->redis, im->store, im->prefix, key, (size_t)klen, &meta, 0,
                                    0) != 0) {
            fprintf(stderr, "stint catalog import: %s:%lld: cannot queue the write\n", path,
                    lineno);
            rc = -1;
            break;
        }
        im->loaded++;
        if ((long long)st_redis_pipe_len(im->redis) >= round_size && flush_round(im) != 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(in)) {
        fprintf(stderr, "stint catalog import: %s: read error\n", path);
        rc = -1;
    }
    if (rc == 0)
        rc = flush_round(im);
    free(line);
    return rc;
}

static void print_summary(const import_t *im, const char *path, double elapsed_s)
{
    printf("catalog import: file=%s tracks=%lld bad_lines=%lld", path, im->loaded, im->bad);
    if (im->bad > 0) {
        printf(" bad_line_numbers=");
        long long listed = im->bad < MAX_LISTED_BAD_LINES ? im->bad : MAX_LISTED_BAD_LINES;
        for (long long i = 0; i < listed; i++)
            printf("%s%lld", i ? "," : "", im->bad_lines[i]);
        if (im->bad > listed)
            printf(",...");
    }
    printf(" rounds=%lld prefix=%s elapsed_s=%.2f\n", im->rounds, im->prefix, elapsed_s);
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
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!in) {
        fprintf(stderr, "stint catalog import: cannot open %s: %s\n", path, strerror(errno));
        st_config_destroy(cfg);
        return 1;
    }
    st_redis_opts_t ro = {conf.redis_host, (int)conf.redis_port, conf.redis_password,
                          (int)conf.redis_db, 5000};
    import_t im;
    memset(&im, 0, sizeof im);
    im.prefix = conf.redis_prefix;
    im.redis = st_redis_new(&ro);
    st_err_t err = {0};
    if (!im.redis || st_redis_ensure(im.redis, 5000, &err) != 0) {
        fprintf(stderr, "stint catalog import: cannot connect to Redis at %s:%d: %s\n",
                conf.redis_host, (int)conf.redis_port, err.text);
    } else {
        im.store = st_trackmeta_store_script(im.redis);
        int64_t t0 = st_time_mono_ms();
        if (import_file(&im, in, path, conf.round_size) == 0) {
            print_summary(&im, path, (double)(st_time_mono_ms() - t0) / 1000.0);
            rc = 0;
        }
    }
    st_redis_destroy(im.redis);
    if (in != stdin)
        fclose(in);
    st_config_destroy(cfg);
    return rc;
}
