/* Integration: st_redis on a real Redis Cluster (redis.cluster): a cluster of its own, 3 primaries
 * and 3 replicas started with deploy/local/stack (STINT_HOME in a temp dir, the first free block
 * of ports from 17150; it reshards, so it shares its cluster with no other test), or the one
 * STINT_REDIS_CLUSTER_NODES names (the first node is the seed).
 *
 * - a round spanning every primary: one pipeline per node, replies back in the round's order;
 * - scripts: EVALSHA to every node, and again after SCRIPT FLUSH everywhere (NOSCRIPT: loaded
 *   on the node that asked, the command sent again);
 * - single commands, with and without a key;
 * - a slot migrated by hand as `redis-cli --cluster reshard` does it: while it is MIGRATING, a new
 *   key of the slot is written through ASK (on the importing node, nowhere else) and an old one
 *   is read where it still is; once the slot belongs to the other node, the client's stale map
 *   gets MOVED and the round still returns the right values. The slot is moved back after;
 * - wait_replicas: a round answered only once every primary it went to has it on its replica
 *   (WAIT); with a replica stopped (SIGSTOP, own cluster only) the round fails as retriable,
 *   naming WAIT, and succeeds again once the replica runs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_itest.h"
#include "st_redis.h"
#include "st_test.h"

#define NKEYS 600

typedef struct {
    char host[64];
    int port;
    redisContext *c;
    char id[64];
} node_t;

static node_t nodes[16];

/* For the helpers that return a value: a failed precondition ends the test program. */
#define MUST(cond)                                                                                 \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: requirement failed: %s\n", __FILE__, __LINE__, #cond);         \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
static int nnodes;
static char prefix[64];

static char seed_nodes[64];
static char own_home[64];

static void seed(char *host, size_t size, int *port)
{
    const char *colon = strchr(seed_nodes, ':');
    snprintf(host, size, "%.*s", colon ? (int)(colon - seed_nodes) : 0, seed_nodes);
    *port = colon ? atoi(colon + 1) : 0;
}

static bool port_busy(int port)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    bool busy = c && !c->err;
    redisFree(c);
    return busy;
}

static void stack_cluster(const char *what)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s/deploy/local/stack' %s redis-cluster >'%s/stack.log' 2>&1",
             getenv("STINT_SOURCE_DIR"), what, own_home);
    if (system(cmd) != 0) {
        fprintf(stderr, "deploy/local/stack %s redis-cluster failed:\n", what);
        snprintf(cmd, sizeof cmd, "cat '%s/stack.log' >&2", own_home);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
        if (strcmp(what, "start") == 0)
            exit(1);
    }
}

/* The cluster STINT_REDIS_CLUSTER_NODES names, or one of this test's own. */
static void own_cluster_up(void)
{
    const char *list = getenv("STINT_REDIS_CLUSTER_NODES");
    if (list && *list) {
        snprintf(seed_nodes, sizeof seed_nodes, "%s", list);
        return;
    }
    MUST(getenv("STINT_SOURCE_DIR"));
    snprintf(own_home, sizeof own_home, "/tmp/stint-itest-cluster-XXXXXX");
    MUST(mkdtemp(own_home));
    int base = 17150;
    for (;; base += 10) {
        MUST(base < 17400);
        bool busy = false;
        for (int p = 0; p < 6; p++)
            busy |= port_busy(base + p) || port_busy(base + 10000 + p);
        if (!busy)
            break;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", base);
    setenv("STINT_HOME", own_home, 1);
    setenv("STINT_REDIS_CLUSTER_PORT", port, 1);
    unsetenv("STINT_REDIS_CLUSTER");
    unsetenv("STINT_REDIS_CLUSTER_NODES");
    stack_cluster("start");
    snprintf(seed_nodes, sizeof seed_nodes, "127.0.0.1:%d", base);
    printf("     a cluster of its own on 127.0.0.1:%d..%d\n", base, base + 5);
}

static void own_cluster_down(void)
{
    if (!own_home[0])
        return;
    stack_cluster("stop");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", own_home);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", own_home);
}

/* The primaries, from CLUSTER SLOTS on the seed, each with a plain connection and its id. */
static void discover(void)
{
    char host[64];
    int port;
    seed(host, sizeof host, &port);
    redisContext *c = redisConnect(host, port);
    if (!c || c->err) {
        fprintf(stderr,
                "no Redis Cluster node on %s:%d (deploy/local/stack up with "
                "STINT_REDIS_CLUSTER=1)\n",
                host, port);
        exit(1);
    }
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    MUST(r && r->type == REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *m = r->element[i]->element[2];
        int p = (int)m->element[1]->integer;
        bool known = false;
        for (int k = 0; k < nnodes; k++)
            known |= nodes[k].port == p;
        if (known)
            continue;
        node_t *n = &nodes[nnodes++];
        snprintf(n->host, sizeof n->host, "%s", m->element[0]->len ? m->element[0]->str : host);
        n->port = p;
        n->c = redisConnect(n->host, n->port);
        MUST(n->c && !n->c->err);
        redisReply *id = redisCommand(n->c, "CLUSTER MYID");
        MUST(id && id->type == REDIS_REPLY_STRING);
        snprintf(n->id, sizeof n->id, "%s", id->str);
        freeReplyObject(id);
    }
    freeReplyObject(r);
    redisFree(c);
}

/* The node that owns slot s (by asking each which slots it serves). */
static int owner(int s)
{
    for (int k = 0; k < nnodes; k++) {
        redisReply *r = redisCommand(nodes[k].c, "CLUSTER COUNTKEYSINSLOT %d", s);
        redisReply *slots = redisCommand(nodes[k].c, "CLUSTER SLOTS");
        int found = -1;
        for (size_t i = 0; slots && i < slots->elements; i++) {
            redisReply *e = slots->element[i];
            if (e->element[0]->integer <= s && s <= e->element[1]->integer &&
                e->element[2]->element[1]->integer == nodes[k].port)
                found = k;
        }
        freeReplyObject(r);
        freeReplyObject(slots);
        if (found >= 0)
            return found;
    }
    return -1;
}

static st_redis_t *client(void)
{
    char host[64];
    int port;
    seed(host, sizeof host, &port);
    st_redis_opts_t o = {.host = host, .port = port, .timeout_ms = 5000, .cluster = true};
    st_redis_t *r = st_redis_new(&o);
    st_err_t err = {0};
    MUST(r && st_redis_ensure(r, 10000, &err) == 0);
    return r;
}

static void key(char *out, size_t size, int i, const char *what)
{
    snprintf(out, size, "%s:u:{u%d}:%s", prefix, i, what);
}

static void test_round_spans_every_primary(void)
{
    st_redis_t *r = client();
    int per_node[16] = {0};
    st_redis_pipe_reset(r);
    for (int i = 0; i < NKEYS; i++) {
        char k[128], v[32];
        key(k, sizeof k, i, "x");
        snprintf(v, sizeof v, "v%d", i);
        const char *argv[] = {"SET", k, v};
        ST_REQUIRE(st_redis_pipe_argv(r, 3, argv, NULL) == 0);
    }
    redisReply **rep;
    size_t n;
    st_err_t err = {0};
    ST_REQUIRE(st_redis_exec(r, &rep, &n, &err) == 0);
    ST_EQ_INT(n, NKEYS);
    int ok = 0;
    for (size_t i = 0; i < n; i++)
        ok += rep[i]->type == REDIS_REPLY_STATUS && strcmp(rep[i]->str, "OK") == 0;
    ST_EQ_INT(ok, NKEYS);
    /* Read back in one round (GETs), and each key from its own node directly. */
    st_redis_pipe_reset(r);
    for (int i = 0; i < NKEYS; i++) {
        char k[128];
        key(k, sizeof k, i, "x");
        ST_REQUIRE(st_redis_pipe(r, "GET %s", k) == 0);
    }
    ST_REQUIRE(st_redis_exec(r, &rep, &n, &err) == 0);
    int right = 0, direct = 0;
    for (int i = 0; i < NKEYS; i++) {
        char k[128], v[32];
        key(k, sizeof k, i, "x");
        snprintf(v, sizeof v, "v%d", i);
        right += rep[i]->type == REDIS_REPLY_STRING && strcmp(rep[i]->str, v) == 0;
        int o = owner(st_redis_key_slot(k, strlen(k)));
        ST_REQUIRE(o >= 0);
        per_node[o]++;
        redisReply *g = redisCommand(nodes[o].c, "GET %s", k);
        direct += g && g->type == REDIS_REPLY_STRING && strcmp(g->str, v) == 0;
        freeReplyObject(g);
    }
    ST_EQ_INT(right, NKEYS);
    ST_EQ_INT(direct, NKEYS);
    ST_REQUIRE(nnodes >= 3);
    for (int k = 0; k < nnodes; k++)
        ST_REQUIRE(per_node[k] > NKEYS / 10); /* the round really went to every primary */
    st_redis_destroy(r);
}

static void test_scripts_on_every_node(void)
{
    st_redis_t *r = client();
    st_redis_script_t *s = st_redis_script(r, "return redis.call('INCRBY', KEYS[1], ARGV[1])");
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) /* every node forgets its scripts: NOSCRIPT, load, send again */
            for (int k = 0; k < nnodes; k++)
                freeReplyObject(redisCommand(nodes[k].c, "SCRIPT FLUSH"));
        st_redis_pipe_reset(r);
        for (int i = 0; i < NKEYS; i++) {
            char k[128], by[16];
            key(k, sizeof k, i, "n");
            snprintf(by, sizeof by, "%d", i);
            const char *argv[] = {k, by};
            ST_REQUIRE(st_redis_pipe_evalsha(r, s, 1, 1, argv, NULL) == 0);
        }
        redisReply **rep;
        size_t n;
        st_err_t err = {0};
        ST_REQUIRE(st_redis_exec(r, &rep, &n, &err) == 0);
        int right = 0;
        for (int i = 0; i < NKEYS && (size_t)i < n; i++)
            right += rep[i]->type == REDIS_REPLY_INTEGER && rep[i]->integer == (pass + 1) * i;
        ST_EQ_INT(right, NKEYS);
        if (pass == 1) /* every EVALSHA of the pass was sent before the reload */
            ST_EQ_INT(st_redis_cluster_stats(r).noscript, NKEYS);
    }
    st_redis_destroy(r);
}

static void test_single_commands(void)
{
    st_redis_t *r = client();
    st_err_t err = {0};
    char k[128];
    key(k, sizeof k, 7, "x");
    const char *get[] = {"GET", k};
    redisReply *g = st_redis_commandargv(r, &err, 2, get, NULL);
    ST_REQUIRE(g && g->type == REDIS_REPLY_STRING);
    ST_EQ_STR(g->str, "v7");
    freeReplyObject(g);
    redisReply *p = st_redis_command(r, &err, "PING");
    ST_REQUIRE(p && p->type == REDIS_REPLY_STATUS);
    freeReplyObject(p);
    /* A queued round is left alone by a single command in between. */
    st_redis_pipe_reset(r);
    ST_REQUIRE(st_redis_pipe(r, "GET %s", k) == 0);
    redisReply *q = st_redis_command(r, &err, "EXISTS %s", k);
    ST_REQUIRE(q && q->integer == 1);
    freeReplyObject(q);
    redisReply **rep;
    size_t n;
    ST_REQUIRE(st_redis_exec(r, &rep, &n, &err) == 0);
    ST_REQUIRE(n == 1 && rep[0]->type == REDIS_REPLY_STRING && strcmp(rep[0]->str, "v7") == 0);
    st_redis_destroy(r);
}

static void setslot(int k, int s, const char *how, const char *id)
{
    redisReply *r = id ? redisCommand(nodes[k].c, "CLUSTER SETSLOT %d %s %s", s, how, id)
                       : redisCommand(nodes[k].c, "CLUSTER SETSLOT %d %s", s, how);
    if (!r || r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "SETSLOT %d %s on %d: %s\n", s, how, nodes[k].port, r ? r->str : "?");
    ST_REQUIRE(r && r->type != REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* Moves slot s from node a to node b, as redis-cli --cluster reshard does, with a hook while the
 * slot is half-way. */
static void move_slot(int s, int a, int b, void (*halfway)(int, int, int))
{
    setslot(b, s, "IMPORTING", nodes[a].id);
    setslot(a, s, "MIGRATING", nodes[b].id);
    if (halfway)
        halfway(s, a, b);
    for (;;) {
        redisReply *ks = redisCommand(nodes[a].c, "CLUSTER GETKEYSINSLOT %d 100", s);
        ST_REQUIRE(ks && ks->type == REDIS_REPLY_ARRAY);
        size_t nk = ks->elements;
        for (size_t i = 0; i < nk; i++) {
            redisReply *m = redisCommand(nodes[a].c, "MIGRATE %s %d %s 0 5000", nodes[b].host,
                                         nodes[b].port, ks->element[i]->str);
            ST_REQUIRE(m && m->type != REDIS_REPLY_ERROR);
            freeReplyObject(m);
        }
        freeReplyObject(ks);
        if (nk == 0)
            break;
    }
    for (int k = 0; k < nnodes; k++)
        setslot(k, s, "NODE", nodes[b].id);
}

static st_redis_t *mig_client;

static void during_migration(int s, int a, int b)
{
    /* A key of the slot that the source does not have: ASK, written on the importing node. */
    char k[128];
    key(k, sizeof k, 100000, "new");
    ST_EQ_INT(st_redis_key_slot(k, strlen(k)), s);
    st_err_t err = {0};
    st_redis_pipe_reset(mig_client);
    ST_REQUIRE(st_redis_pipe(mig_client, "SET %s during", k) == 0);
    char old[128];
    key(old, sizeof old, 100000, "x");
    ST_REQUIRE(st_redis_pipe(mig_client, "GET %s", old) == 0); /* still on the source */
    redisReply **rep;
    size_t n;
    ST_REQUIRE(st_redis_exec(mig_client, &rep, &n, &err) == 0);
    ST_REQUIRE(n == 2 && rep[0]->type == REDIS_REPLY_STATUS);
    ST_REQUIRE(rep[1]->type == REDIS_REPLY_STRING && strcmp(rep[1]->str, "before") == 0);
    redisReply *x = redisCommand(nodes[a].c, "EXISTS %s", k);
    ST_EQ_INT(x->integer, 0); /* not on the source */
    freeReplyObject(x);
    freeReplyObject(redisCommand(nodes[b].c, "ASKING"));
    x = redisCommand(nodes[b].c, "GET %s", k);
    ST_REQUIRE(x && x->type == REDIS_REPLY_STRING && strcmp(x->str, "during") == 0);
    freeReplyObject(x);
}

static void test_reshard_ask_and_moved(void)
{
    char k[128];
    key(k, sizeof k, 100000, "x");
    int s = st_redis_key_slot(k, strlen(k));
    int a = owner(s), b = (a + 1) % nnodes;
    ST_REQUIRE(a >= 0);
    mig_client = client();
    st_err_t err = {0};
    redisReply *set = st_redis_command(mig_client, &err, "SET %s before", k);
    ST_REQUIRE(set != NULL);
    freeReplyObject(set);

    st_redis_cluster_stats_t st0 = st_redis_cluster_stats(mig_client);
    move_slot(s, a, b, during_migration);
    ST_EQ_INT(owner(s), b);
    st_redis_cluster_stats_t st1 = st_redis_cluster_stats(mig_client);
    ST_EQ_INT(st1.ask - st0.ask, 1); /* the new key's SET */
    ST_EQ_INT(st1.moved, st0.moved);
    /* The client's map still says a: MOVED, the map is read again, the values are right. */
    st_redis_pipe_reset(mig_client);
    char k2[128];
    key(k2, sizeof k2, 100000, "new");
    ST_REQUIRE(st_redis_pipe(mig_client, "GET %s", k) == 0);
    ST_REQUIRE(st_redis_pipe(mig_client, "GET %s", k2) == 0);
    redisReply **rep;
    size_t n;
    ST_REQUIRE(st_redis_exec(mig_client, &rep, &n, &err) == 0);
    ST_REQUIRE(n == 2);
    ST_REQUIRE(rep[0]->type == REDIS_REPLY_STRING && strcmp(rep[0]->str, "before") == 0);
    ST_REQUIRE(rep[1]->type == REDIS_REPLY_STRING && strcmp(rep[1]->str, "during") == 0);
    st_redis_cluster_stats_t st2 = st_redis_cluster_stats(mig_client);
    ST_EQ_INT(st2.moved - st1.moved, 2); /* both GETs went to the old owner first */
    ST_EQ_INT(st2.map_reads - st1.map_reads, 1);

    move_slot(s, b, a, NULL); /* and back, with the client's map stale again */
    ST_EQ_INT(owner(s), a);
    redisReply *g = st_redis_command(mig_client, &err, "GET %s", k2);
    ST_REQUIRE(g && g->type == REDIS_REPLY_STRING && strcmp(g->str, "during") == 0);
    freeReplyObject(g);
    st_redis_destroy(mig_client);
}

/* The pid of a replica of the primary nodes[k] (INFO server on it), or -1. */
static int replica_pid(int k)
{
    redisReply *r = redisCommand(nodes[k].c, "CLUSTER NODES");
    MUST(r && r->type == REDIS_REPLY_STRING);
    int pid = -1;
    for (char *ln = r->str; ln && *ln && pid < 0;
         ln = strchr(ln, '\n') ? strchr(ln, '\n') + 1 : NULL) {
        char id[64], addr[128], flags[128], master[64];
        if (sscanf(ln, "%63s %127s %127s %63s", id, addr, flags, master) != 4 ||
            !strstr(flags, "slave") || strcmp(master, nodes[k].id) != 0)
            continue;
        char *colon = strrchr(strtok(addr, "@"), ':');
        redisContext *c = colon ? redisConnect("127.0.0.1", atoi(colon + 1)) : NULL;
        redisReply *info = c && !c->err ? redisCommand(c, "INFO server") : NULL;
        const char *p =
            info && info->type == REDIS_REPLY_STRING ? strstr(info->str, "process_id:") : NULL;
        if (p)
            pid = atoi(p + strlen("process_id:"));
        freeReplyObject(info);
        redisFree(c);
    }
    freeReplyObject(r);
    return pid;
}

static int set_round(st_redis_t *r, const char *what, st_err_t *err)
{
    st_redis_pipe_reset(r);
    for (int i = 0; i < NKEYS; i++) {
        char k[128];
        key(k, sizeof k, i, what);
        const char *argv[] = {"SET", k, "w"};
        MUST(st_redis_pipe_argv(r, 3, argv, NULL) == 0);
    }
    redisReply **rep;
    size_t n;
    return st_redis_exec(r, &rep, &n, err);
}

/* Whether CLUSTER SLOTS lists a replica for every slot range: Redis leaves out a replica whose
 * replication offset it has not heard of yet (a cluster just made, nothing written). */
static bool replicas_listed(void)
{
    redisReply *r = redisCommand(nodes[0].c, "CLUSTER SLOTS");
    bool all = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0;
    for (size_t i = 0; all && i < r->elements; i++)
        all = r->element[i]->elements >= 4;
    freeReplyObject(r);
    return all;
}

static void test_wait_replicas(void)
{
    char host[64];
    int port;
    seed(host, sizeof host, &port);
    for (int i = 0; i < 150 && !replicas_listed(); i++)
        usleep(100 * 1000);
    ST_REQUIRE(replicas_listed());
    st_redis_opts_t o = {
        .host = host, .port = port, .timeout_ms = 2000, .cluster = true, .wait_replicas = 1};
    st_redis_t *r = st_redis_new(&o);
    st_err_t err = {0};
    ST_REQUIRE(st_redis_ensure(r, 10000, &err) == 0);
    ST_REQUIRE(set_round(r, "w", &err) == 0);
    /* every primary has a replica (3 + 3): one WAIT per primary the round went to */
    ST_EQ_INT(st_redis_cluster_stats(r).waits, (unsigned long long)nnodes);
    /* A keyless command (the /healthz PING) stores nothing: no WAIT after it. */
    const char *ping[] = {"PING"};
    redisReply *pong = st_redis_commandargv(r, &err, 1, ping, NULL);
    ST_REQUIRE(pong != NULL && pong->type == REDIS_REPLY_STATUS);
    freeReplyObject(pong);
    ST_EQ_INT(st_redis_cluster_stats(r).waits, (unsigned long long)nnodes);
    if (own_home[0]) {
        int k = owner(st_redis_key_slot("{u0}", 4));
        int pid = k >= 0 ? replica_pid(k) : -1;
        ST_REQUIRE(pid > 0);
        ST_REQUIRE(kill(pid, SIGSTOP) == 0);
        err = (st_err_t){0};
        int rc = set_round(r, "w2", &err); /* WAITs up to 1 s: less than cluster-node-timeout */
        kill(pid, SIGCONT);
        ST_EQ_INT(rc, -1);
        ST_REQUIRE(err.retriable);
        ST_REQUIRE(strstr(err.text, "WAIT: 0 of 1 replicas") != NULL);
        err = (st_err_t){0};
        int ok = -1;
        for (int attempt = 0; attempt < 20 && ok != 0; attempt++) {
            ok = set_round(r, "w2", &err);
            if (ok != 0)
                usleep(200 * 1000);
        }
        ST_EQ_INT(ok, 0);
    }
    st_redis_destroy(r);
}

static void cleanup(void)
{
    for (int k = 0; k < nnodes; k++) {
        char cursor[32] = "0";
        do {
            redisReply *r =
                redisCommand(nodes[k].c, "SCAN %s MATCH %s:* COUNT 1000", cursor, prefix);
            if (!r || r->type != REDIS_REPLY_ARRAY)
                break;
            snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
            for (size_t i = 0; i < r->element[1]->elements; i++)
                freeReplyObject(
                    redisCommand(nodes[k].c, "UNLINK %s", r->element[1]->element[i]->str));
            freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
    }
}

int main(void)
{
    snprintf(prefix, sizeof prefix, "itest-cluster-%d", (int)getpid());
    own_cluster_up();
    atexit(own_cluster_down);
    discover();
    ST_RUN(test_round_spans_every_primary);
    ST_RUN(test_scripts_on_every_node);
    ST_RUN(test_single_commands);
    ST_RUN(test_reshard_ask_and_moved);
    ST_RUN(test_wait_replicas);
    cleanup();
    return st_test_summary();
}
