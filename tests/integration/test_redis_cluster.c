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
#include <jansson.h>
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

static int setup(void **state)
{
    (void)state;
    daemon_pid = -1;
    produced = 0;
    harness_log_path(daemon_log, sizeof(daemon_log), "test_redis_cluster");
    if (harness_rcluster_start(&RC) < 0 || harness_kafka_start(&K, 4) < 0)
        return -1;
    stats_port = harness_free_port();
    const char *extra[] = {"redis.cluster=1", "model.kind=neumf", "model.dim=8", "model.mlp=16,8",
                           NULL};
    daemon_pid = harness_daemon_start(K.brokers, RC.port[0], stats_port, extra, daemon_log);
    if (daemon_pid < 0 || !harness_daemon_healthy(stats_port, 30000)) {
        harness_log_tail(daemon_log, 30);
        return -1;
    }
    return 0;
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

/* n clicks of users u0.. on items i0.., keyed by user */
static void produce(long n)
{
    char buf[256], u[32], it[32];
    unsigned long long x = 88172645463325252ull + (unsigned long long)produced;
    for (long k = 0; k < n; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        long user = (long)(x % USERS), item = (user * 7 + (long)((x >> 24) % 25)) % ITEMS;
        snprintf(u, sizeof(u), "u%ld", user);
        snprintf(it, sizeof(it), "i%ld", item);
        size_t len = event_encode(buf, sizeof(buf), u, strlen(u), it, strlen(it), "click", -1);
        harness_kafka_produce(&K, u, buf, len);
    }
    produced += n;
    assert_int_equal(harness_kafka_flush(&K, 30000), 0);
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

/* The vector the daemon would publish (GET /vector, its f32le hex); the
 * byte length, 0 for an id it does not know, -1 on error. */
static int model_vector(char side, const char *id, unsigned char *out, size_t cap)
{
    static char body[65536];
    char path[256];
    snprintf(path, sizeof(path), "/vector?%s=%s", side == 'u' ? "user" : "item", id);
    int code = harness_http_get(stats_port, path, body, sizeof(body));
    if (code == 404)
        return 0;
    if (code != 200)
        return -1;
    json_t *j = json_loads(body, 0, NULL);
    const char *hex = j ? json_string_value(json_object_get(j, "f32le")) : NULL;
    size_t n = hex ? strlen(hex) / 2 : 0;
    int ok = hex && n <= cap;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned v;
        ok = sscanf(hex + 2 * i, "%2x", &v) == 1;
        out[i] = (unsigned char)v;
    }
    json_decref(j);
    return ok ? (int)n : -1;
}

/* What the cluster holds: each running node asked directly (no
 * redirection followed). A key is found on the master that serves its
 * slot; the node that answered it is counted in *where (its index). */
static int cluster_get(const char *key, unsigned char *out, size_t cap, int *where)
{
    int n = -1;
    *where = -1;
    for (int i = 0; i < HARNESS_RC_NODES && n < 0; i++) {
        if (RC.pid[i] <= 0)
            continue;
        redisContext *c = redisConnect("127.0.0.1", RC.port[i]);
        redisReply *r = c && !c->err ? redisCommand(c, "GET %s", key) : NULL;
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
 * byte (a few seconds for the last rounds to land); per[i]: keys found on
 * node i. Returns the ids compared; why says the first difference. */
static int compare_all(int per[HARNESS_RC_NODES], char *why, size_t len, int timeout_ms)
{
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
                snprintf(why, len, "%s: model %d bytes, cluster %d bytes (node %d)%s", key, nw, ng,
                         where, nw > 0 && ng == nw ? ", different" : "");
                goto again;
            }
            per[where]++;
            same++;
        }
        return same;
    again:
        usleep(200000);
    } while (harness_now_ms() - t0 < timeout_ms);
    return -1;
}

/* The daemon learns a stream into the cluster: every key equals GET
 * /vector, and the keys are spread over the three masters. */
static void test_learns_into_cluster(void **state)
{
    (void)state;
    produce(6000);
    wait_published(60000);
    int per[HARNESS_RC_NODES];
    char why[256] = "";
    int same = compare_all(per, why, sizeof(why), 10000);
    if (same < 0)
        fail_msg("the cluster differs from the model: %s", why);
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
    for (int i = 0; i < HARNESS_RC_NODES; i++)
        assert_true(per[i] == 0 || per[i] > same / 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_matches_redis),
        cmocka_unit_test_setup_teardown(test_learns_into_cluster, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
