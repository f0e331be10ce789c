/* test_redis_cluster.c — freshrec and Redis Cluster, on loopback: the key
 * schema's slot function against Redis's own CLUSTER KEYSLOT; freshrecd
 * publishing to a 3-master, 3-replica cluster (6 redis-server processes)
 * and librdkafka's mock cluster, everything stopped whatever the outcome. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "event.h"
#include "harness.h"
#include "keys.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Random keys, of the schema's shape and of any bytes (braces, empty tags,
 * NULs, unmatched braces), each slotted by keys_slot and by a cluster-enabled
 * redis-server: the same slot for every one. */
static void test_slot_matches_redis(void **state)
{
    (void)state;
    char dir[] = "/tmp/fr-keyslot-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int port = harness_free_port(), bus;
    while ((bus = harness_free_port()) == port)
        ;
    char bs[16];
    snprintf(bs, sizeof(bs), "%d", bus); /* not port + 10000, which may not be a port */
    const char *extra[] = {"--cluster-enabled", "yes", "--cluster-port", bs, "--dir", dir, NULL};
    pid_t redis = harness_redis_start_with(port, extra);
    assert_true(redis > 0);
    redisContext *c = redisConnect("127.0.0.1", port);
    assert_true(c && !c->err);
    unsigned long long x = harness_seed("the keys") | 1;
    enum { KEYS = 5000 };
    static const char alphabet[] = "{}ab:{}c\0ui9";
    int mismatches = 0, tagged = 0;
    for (int n = 0; n < KEYS; n++) {
        char key[64];
        size_t len;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (n % 2 == 0) { /* as the daemon names vectors */
            char id[24];
            size_t il = (size_t)snprintf(id, sizeof(id), "%llu", x % 1000000);
            len = keys_vector(key, sizeof(key), "fr", "neumf", n % 4 ? 'u' : 'i', id, il);
        } else { /* any bytes, braces likely */
            len = (size_t)(x % 24);
            unsigned long long y = x;
            for (size_t i = 0; i < len; i++) {
                y ^= y << 13, y ^= y >> 7, y ^= y << 17;
                key[i] = y % 3 ? alphabet[y % (sizeof(alphabet) - 1)] : (char)(y >> 8);
            }
        }
        redisReply *r = redisCommand(c, "CLUSTER KEYSLOT %b", key, len);
        assert_true(r && r->type == REDIS_REPLY_INTEGER);
        unsigned want = (unsigned)r->integer, got = keys_slot(key, len);
        freeReplyObject(r);
        const char *open = memchr(key, '{', len);
        tagged += open && memchr(open, '}', len - (size_t)(open - key)) != NULL;
        if (got != want && mismatches++ < 5)
            print_message("key %d (%zu bytes): keys_slot %u, CLUSTER KEYSLOT %u\n", n, len, got,
                          want);
    }
    print_message("%d keys (%d with braces in pairs): %d slots differ from CLUSTER KEYSLOT's\n",
                  KEYS, tagged, mismatches);
    redisFree(c);
    harness_stop(redis);
    harness_rmtree(dir);
    assert_true(tagged > KEYS / 10);
    assert_int_equal(mismatches, 0);
}

/* ------------------------------------------------------------ the cluster */

#define USERS 200
#define ITEMS 300

static harness_rcluster_t RC;
static harness_kafka_t K;
static pid_t daemon_pid = -1;
static int stats_port;
static char daemon_log[256];
static long produced;

/* The cluster, the brokers and the daemon on them; with seed_down the
 * daemon's [redis] port is one where nothing listens, and the cluster is
 * named in [redis] nodes only. */
static int start(int seed_down)
{
    daemon_pid = -1;
    produced = 0;
    harness_log_path(daemon_log, sizeof(daemon_log), "test_redis_cluster");
    if (harness_rcluster_start(&RC) < 0 || harness_kafka_start(&K, 4) < 0)
        return -1;
    stats_port = harness_free_port();
    char nodes[64];
    snprintf(nodes, sizeof(nodes), "redis.nodes=127.0.0.1:%d,127.0.0.1:%d", RC.port[4], RC.port[1]);
    const char *extra[] = {"redis.cluster=1",
                           "model.kind=neumf",
                           "model.dim=8",
                           "model.mlp=16,8",
                           "redis.reconnect_max_ms=500",
                           seed_down ? nodes : NULL,
                           NULL};
    int port = seed_down ? harness_free_port() : RC.port[0];
    daemon_pid = harness_daemon_start(K.brokers, port, stats_port, extra, daemon_log);
    if (daemon_pid < 0 || !harness_daemon_healthy(stats_port, 30000)) {
        char body[512] = "";
        harness_http_get(stats_port, "/healthz", body, sizeof(body));
        print_message("/healthz: %s\n", body);
        harness_log_tail(daemon_log, 30);
        return -1;
    }
    return 0;
}

static int setup(void **state)
{
    (void)state;
    return start(0);
}

static int setup_seed_down(void **state)
{
    (void)state;
    return start(1);
}

static int teardown(void **state)
{
    (void)state;
    if (daemon_pid > 0)
        harness_stop(daemon_pid);
    daemon_pid = -1;
    harness_kafka_stop(&K);
    harness_rcluster_stop(&RC);
    return 0;
}

static double metric(const char *s)
{
    return harness_daemon_metric(stats_port, s);
}

/* n clicks of users u0.. (or of user `only` alone, when not negative) on
 * items i0.., keyed by user */
static void produce_users(long n, long only)
{
    char buf[256], u[32], it[32];
    unsigned long long x = 88172645463325252ull + (unsigned long long)produced;
    for (long k = 0; k < n; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        long user = only >= 0 ? only : (long)(x % USERS);
        long item = (user * 7 + (long)((x >> 24) % 25)) % ITEMS;
        snprintf(u, sizeof(u), "u%ld", user);
        snprintf(it, sizeof(it), "i%ld", item);
        size_t len = event_encode(buf, sizeof(buf), u, strlen(u), it, strlen(it), "click", -1);
        harness_kafka_produce(&K, u, buf, len);
    }
    produced += n;
    assert_int_equal(harness_kafka_flush(&K, 30000), 0);
}

static void produce(long n)
{
    produce_users(n, -1);
}

/* a command's integer or string answer from node i ("" when none) */
static long long node_int(int i, const char *fmt, const char *arg)
{
    redisContext *c = redisConnect("127.0.0.1", RC.port[i]);
    redisReply *r = c && !c->err ? redisCommand(c, fmt, arg) : NULL;
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return v;
}

static void node_id(int i, char *out, size_t cap)
{
    redisContext *c = redisConnect("127.0.0.1", RC.port[i]);
    redisReply *r = c && !c->err ? redisCommand(c, "CLUSTER MYID") : NULL;
    assert_true(r && r->type == REDIS_REPLY_STRING && r->len < cap);
    memcpy(out, r->str, r->len);
    out[r->len] = '\0';
    freeReplyObject(r);
    redisFree(c);
}

/* node i answers OK to a command (up to three string arguments) */
static void node_ok(int i, const char *fmt, const char *a, const char *b, const char *d)
{
    redisContext *c = redisConnect("127.0.0.1", RC.port[i]);
    redisReply *r = c && !c->err ? redisCommand(c, fmt, a, b, d) : NULL;
    if (!r || r->type == REDIS_REPLY_ERROR)
        fail_msg("node %d: %s: %s", i, fmt, r ? r->str : "no answer");
    freeReplyObject(r);
    redisFree(c);
}

/* the daemon's count of one kind of redirection answered by node i */
static double redirections(int i, const char *kind)
{
    char s[160];
    snprintf(s, sizeof(s),
             "freshrec_redis_node_redirections_total{node=\"127.0.0.1:%d\",kind=\"%s\"}",
             RC.port[i], kind);
    double v = metric(s);
    return isnan(v) ? 0 : v;
}

/* until every event produced is learned and nothing waits to be published */
static void wait_published(int timeout_ms)
{
    double t0 = harness_now_ms();
    while (harness_now_ms() - t0 < timeout_ms) {
        if (metric("freshrec_events_learned_total") >= (double)produced &&
            metric("freshrec_dirty_keys") == 0)
            return;
        usleep(100000);
    }
    harness_log_tail(daemon_log, 30);
    fail_msg("not learned and published in %d ms", timeout_ms);
}

/* The vector the daemon would publish for an id (harness_daemon_vector) */
static int model_vector(char side, const char *id, unsigned char *out, size_t cap)
{
    return harness_daemon_vector(stats_port, side, id, out, cap);
}

/* What the cluster holds: each running node asked directly (MOVED not
 * followed; ASK followed, with ASKING, as a client must while a slot
 * migrates). A key is found on the master that serves its slot; the node
 * that answered it is in *where (its index). */
static int cluster_get(const char *key, unsigned char *out, size_t cap, int *where)
{
    int n = -1;
    *where = -1;
    for (int i = 0; i < HARNESS_RC_NODES && n < 0; i++) {
        if (RC.pid[i] <= 0)
            continue;
        redisContext *c = redisConnect("127.0.0.1", RC.port[i]);
        redisReply *r = c && !c->err ? redisCommand(c, "GET %s", key) : NULL;
        const char *colon;
        if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "ASK ", 4) == 0 &&
            (colon = strrchr(r->str, ':'))) { /* the key is on the importing node */
            int port = atoi(colon + 1);
            freeReplyObject(r);
            r = NULL;
            for (int j = 0; j < HARNESS_RC_NODES; j++)
                if (RC.port[j] == port && RC.pid[j] > 0) {
                    redisFree(c);
                    c = redisConnect("127.0.0.1", port);
                    freeReplyObject(redisCommand(c, "ASKING"));
                    r = redisCommand(c, "GET %s", key);
                    i = j;
                    break;
                }
        }
        if (r && r->type == REDIS_REPLY_STRING && r->len <= cap) {
            memcpy(out, r->str, r->len);
            n = (int)r->len;
            *where = i;
        } else if (r && r->type == REDIS_REPLY_NIL) { /* served here, not there */
            n = 0;
            *where = i;
        }
        if (r)
            freeReplyObject(r);
        if (c)
            redisFree(c);
    }
    return n;
}

/* Every user's and item's key in the cluster equals GET /vector byte for
 * byte (10 s for the last rounds to land; else the test fails, naming the
 * first difference); per[i]: keys found on node i. Returns the ids compared. */
static int compare_all(int per[HARNESS_RC_NODES])
{
    char why[256] = "";
    double t0 = harness_now_ms();
    int same = 0;
    do {
        same = 0;
        memset(per, 0, sizeof(int) * HARNESS_RC_NODES);
        for (int k = 0; k < USERS + ITEMS; k++) {
            char side = k < USERS ? 'u' : 'i', id[32], key[64];
            snprintf(id, sizeof(id), "%c%d", side, k < USERS ? k : k - USERS);
            unsigned char want[4096], got[4096];
            int nw = model_vector(side, id, want, sizeof(want));
            if (nw == 0) /* never seen */
                continue;
            snprintf(key, sizeof(key), "fr:neumf:%c:%s", side, id);
            int where, ng = cluster_get(key, got, sizeof(got), &where);
            if (nw < 0 || ng != nw || memcmp(want, got, (size_t)nw) != 0) {
                snprintf(why, sizeof(why), "%s: model %d bytes, cluster %d bytes (node %d)%s", key,
                         nw, ng, where, nw > 0 && ng == nw ? ", different" : "");
                goto again;
            }
            per[where]++;
            same++;
        }
        return same;
    again:
        usleep(200000);
    } while (harness_now_ms() - t0 < 10000);
    fail_msg("the cluster differs from the model: %s", why);
    return -1;
}

/* `freshrec recommend --redis 127.0.0.1:<port> --user <user> -k 10`: its
 * exit status, its output in out */
static int recommend(int port, const char *user, char *out, size_t cap)
{
    char bin[512], at[32], log[256];
    snprintf(bin, sizeof(bin), "%s/freshrec", harness_build());
    snprintf(at, sizeof(at), "127.0.0.1:%d", port);
    harness_log_path(log, sizeof(log), "test_redis_cluster_recommend");
    unlink(log);
    char *argv[] = {bin, "recommend", "--redis", at, "--user", (char *)user, "-k", "10", NULL};
    pid_t p = harness_spawn(argv, log);
    int rc = p > 0 ? harness_wait(p, 20000) : -1;
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    return rc;
}

/* freshrec recommend reads the cluster (given a replica or a master: it
 * follows the slot map) as it reads one Redis holding the same keys: the
 * same output. */
static void check_recommend(void)
{
    int port = harness_free_port();
    pid_t single = harness_redis_start(port);
    assert_true(single > 0);
    redisContext *s = redisConnect("127.0.0.1", port);
    assert_true(s && !s->err);
    for (int k = 0; k < USERS + ITEMS; k++) {
        char key[64];
        snprintf(key, sizeof(key), "fr:neumf:%c:%c%d", k < USERS ? 'u' : 'i', k < USERS ? 'u' : 'i',
                 k < USERS ? k : k - USERS);
        unsigned char v[4096];
        int where, n = cluster_get(key, v, sizeof(v), &where);
        if (n > 0)
            freeReplyObject(redisCommand(s, "SET %s %b", key, v, (size_t)n));
    }
    for (int i = 0; i < HARNESS_RC_NODES; i++) { /* the meta hash, field by field */
        redisContext *c = redisConnect("127.0.0.1", RC.port[i]);
        redisReply *r = redisCommand(c, "HGETALL fr:neumf:meta");
        for (size_t f = 0; r && r->type == REDIS_REPLY_ARRAY && f + 1 < r->elements; f += 2)
            freeReplyObject(redisCommand(s, "HSET fr:neumf:meta %b %b", r->element[f]->str,
                                         r->element[f]->len, r->element[f + 1]->str,
                                         r->element[f + 1]->len));
        if (r)
            freeReplyObject(r);
        redisFree(c);
    }
    redisFree(s);
    static char from_cluster[8192], from_master[8192], from_one[8192];
    int rc_cluster = recommend(RC.port[3], "u0", from_cluster, sizeof(from_cluster));
    int rc_master = recommend(RC.port[0], "u0", from_master, sizeof(from_master));
    int rc_one = recommend(port, "u0", from_one, sizeof(from_one));
    harness_stop(single);
    print_message("freshrec recommend from the cluster (through a replica), exit %d:\n%s",
                  rc_cluster, from_cluster);
    assert_int_equal(rc_cluster, 0);
    assert_int_equal(rc_master, 0);
    assert_int_equal(rc_one, 0);
    assert_string_equal(from_cluster, from_one);
    assert_string_equal(from_master, from_one); /* --redis a master: its own items too */
    assert_non_null(strstr(from_cluster, "top 10 of "));
}

/* The daemon learns a stream into the cluster: every key equals GET
 * /vector, and the keys are spread over the three masters. */
static void test_learns_into_cluster(void **state)
{
    (void)state;
    produce(6000);
    wait_published(60000);
    int per[HARNESS_RC_NODES];
    int same = compare_all(per);
    int masters = 0;
    for (int i = 0; i < HARNESS_RC_NODES; i++)
        masters += per[i] > 0;
    print_message("%d vectors in the cluster equal GET /vector byte for byte; per node: %d %d "
                  "%d %d %d %d\n",
                  same, per[0], per[1], per[2], per[3], per[4], per[5]);
    assert_true(same >= USERS);
    assert_int_equal(masters, 3);
    /* the meta hash, on the master of its slot */
    int found = 0;
    for (int i = 0; i < HARNESS_RC_NODES; i++) {
        redisContext *c = redisConnect("127.0.0.1", RC.port[i]);
        redisReply *r = c && !c->err ? redisCommand(c, "HGET fr:neumf:meta kind") : NULL;
        found += r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "neumf") == 0;
        if (r)
            freeReplyObject(r);
        if (c)
            redisFree(c);
    }
    assert_int_equal(found, 1);
    check_recommend();
    for (int i = 0; i < HARNESS_RC_NODES; i++)
        assert_true(per[i] == 0 || per[i] > same / 6);
}

/* While the daemon publishes, user u0's slot migrates from its master to
 * another: first ASK (the key moved, the slot not yet), then MOVED (the
 * slot moved). After each, every vector is written and equal to GET
 * /vector, and the old master holds nothing of the slot. */
static void test_slot_migrates(void **state)
{
    (void)state;
    produce(3000);
    wait_published(60000);
    const char *key = "fr:neumf:u:u0";
    unsigned slot = keys_slot(key, strlen(key));
    unsigned char v[4096];
    int src, dst = -1;
    assert_true(cluster_get(key, v, sizeof(v), &src) > 0);
    for (int i = 0; i < 3; i++) /* redis-cli made nodes 0-2 the masters */
        if (i != src && dst < 0)
            dst = i;
    assert_true(src >= 0 && src < 3);
    char src_id[64], dst_id[64], sl[16], port[16];
    node_id(src, src_id, sizeof(src_id));
    node_id(dst, dst_id, sizeof(dst_id));
    snprintf(sl, sizeof(sl), "%u", slot);
    snprintf(port, sizeof(port), "%d", RC.port[dst]);

    /* migrating: the keys go, the slot stays; a write of u0 is asked of dst */
    node_ok(dst, "CLUSTER SETSLOT %s IMPORTING %s", sl, src_id, NULL);
    node_ok(src, "CLUSTER SETSLOT %s MIGRATING %s", sl, dst_id, NULL);
    redisContext *c = redisConnect("127.0.0.1", RC.port[src]);
    redisReply *keys = redisCommand(c, "CLUSTER GETKEYSINSLOT %u 1000", slot);
    assert_true(keys && keys->type == REDIS_REPLY_ARRAY && keys->elements >= 1);
    for (size_t k = 0; k < keys->elements; k++) {
        redisReply *m =
            redisCommand(c, "MIGRATE 127.0.0.1 %s %s 0 5000", port, keys->element[k]->str);
        assert_true(m && m->type == REDIS_REPLY_STATUS);
        freeReplyObject(m);
    }
    freeReplyObject(keys);
    redisFree(c);
    double t0 = harness_now_ms();
    while (redirections(src, "ask") < 1 && harness_now_ms() - t0 < 20000) {
        produce_users(20, 0);
        usleep(100000);
    }
    double asks = redirections(src, "ask");
    wait_published(30000);
    int per[HARNESS_RC_NODES];
    int same = compare_all(per);
    print_message("slot %u migrating from node %d to %d: %.0f ASK answered; %d vectors equal "
                  "GET /vector\n",
                  slot, src, dst, asks, same);
    assert_true(asks >= 1);

    /* migrated: the slot is dst's; the daemon's map still says src: MOVED */
    for (int i = 0; i < 3; i++)
        node_ok(i, "CLUSTER SETSLOT %s NODE %s", sl, dst_id, NULL);
    t0 = harness_now_ms();
    while (redirections(src, "moved") < 1 && harness_now_ms() - t0 < 20000) {
        produce_users(20, 0);
        usleep(100000);
    }
    double moved = redirections(src, "moved");
    produce(1000);
    wait_published(30000);
    same = compare_all(per);
    long long left = node_int(src, "CLUSTER COUNTKEYSINSLOT %s", sl);
    long long there = node_int(dst, "CLUSTER COUNTKEYSINSLOT %s", sl);
    print_message("slot %u moved to node %d: %.0f MOVED answered; %d vectors equal GET /vector; "
                  "keys of the slot on the old master %lld, on the new %lld\n",
                  slot, dst, moved, same, left, there);
    assert_true(moved >= 1);
    assert_int_equal(left, 0);
    assert_true(there >= 1);
    int where;
    assert_true(cluster_get(key, v, sizeof(v), &where) > 0);
    assert_int_equal(where, dst);
}

/* A master SIGKILLed while the daemon publishes: its replica is promoted,
 * the daemon reads the new map, and every vector is written and equal to
 * GET /vector; /healthz named the unreachable slots meanwhile. */
static void test_master_killed(void **state)
{
    (void)state;
    produce(3000);
    wait_published(60000);
    kill(RC.pid[0], SIGKILL);
    harness_wait(RC.pid[0], 5000);
    RC.pid[0] = -1;
    double t_kill = harness_now_ms(), t_served = NAN, unserved_max = 0;
    int named = 0;
    char body[512];
    while (harness_now_ms() - t_kill < 30000) {
        produce(100);
        double u = metric("freshrec_redis_cluster_unserved_slots");
        unserved_max = u > unserved_max ? u : unserved_max;
        if (harness_http_get(stats_port, "/healthz", body, sizeof(body)) == 503 &&
            strstr(body, "slots unreachable"))
            named = 1;
        if (unserved_max > 0 && u == 0) {
            t_served = harness_now_ms();
            break;
        }
        usleep(100000);
    }
    if (harness_rcluster_wait_ok(&RC, 30000) < 0) {
        for (int i = 0; i < HARNESS_RC_NODES; i++) {
            if (RC.pid[i] <= 0)
                continue;
            redisContext *c = redisConnect("127.0.0.1", RC.port[i]);
            redisReply *r = c && !c->err ? redisCommand(c, "CLUSTER NODES") : NULL;
            print_message("node %d (port %d):\n%s\n", i, RC.port[i], r ? r->str : "-");
            if (r)
                freeReplyObject(r);
            if (c)
                redisFree(c);
        }
        fail_msg("the cluster is not ok 30 s after a master's kill");
    }
    produce(1000);
    wait_published(30000);
    int per[HARNESS_RC_NODES];
    int same = compare_all(per);
    double t_equal = harness_now_ms();
    print_message("master killed: up to %.0f slots unserved, served again after %.1f s (/healthz "
                  "named them: %s); %d vectors equal GET /vector %.1f s after the kill; per node: "
                  "%d %d %d %d %d %d\n",
                  unserved_max, (t_served - t_kill) / 1000, named ? "yes" : "no", same,
                  (t_equal - t_kill) / 1000, per[0], per[1], per[2], per[3], per[4], per[5]);
    assert_true(unserved_max > 5000);
    assert_false(isnan(t_served));
    assert_true(named);
    int masters = 0;
    for (int i = 0; i < HARNESS_RC_NODES; i++)
        masters += per[i] > 0;
    assert_int_equal(masters, 3);
}

/* The configured node is down (nothing listens on its port): the daemon
 * reads the slot map from [redis] nodes, learns and publishes every vector. */
static void test_configured_node_down(void **state)
{
    (void)state;
    produce(3000);
    wait_published(60000);
    int per[HARNESS_RC_NODES];
    int same = compare_all(per);
    print_message("the configured node down, the map from [redis] nodes: %d vectors equal GET "
                  "/vector\n",
                  same);
    assert_true(same >= USERS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_matches_redis),
        cmocka_unit_test_setup_teardown(test_learns_into_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slot_migrates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_master_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_configured_node_down, setup_seed_down, teardown),
    };
    if (getenv("CMOCKA_TEST_FILTER")) /* one test: CMOCKA_TEST_FILTER=test_slot_migrates */
        cmocka_set_test_filter(getenv("CMOCKA_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
