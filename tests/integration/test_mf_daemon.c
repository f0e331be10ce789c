/* test_mf_daemon.c — the real freshrecd learning plain matrix factorisation
 * (model kind mf) and history MF (hmf), against a real redis-server and
 * librdkafka's mock cluster on free loopback ports. 200 users each like two
 * of 8 item categories and click only those.
 *
 * Asserts, for each: every click learned; the meta hash names the model's
 * dim and layout ("mf:0:16"; "hmf:0:16,bias:16:18"; with hmf's transition
 * map "hmf:0:16,map:16:32,bias:32:34" and the map as the dense block,
 * "map:16x16"); every user and item has
 * a vector of that many floats in Redis; reading Redis only, a dot product
 * of a user's and an item's vectors (the model's own logit) ranks the
 * user's liked categories first; and `freshrec recommend`, which scores
 * these models by that dot product, puts a liked item on top. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NU 200
#define NCAT 8
#define PER 40
#define NITEMS (NCAT * PER)
#define NCLICK 30000
#define DIM 16 /* factors; hmf's vectors have 2 more (with its map, DIM + 2 more) */
#define VMAX (2 * DIM + 2)

static int likes(int u, int c)
{
    int a = u % NCAT, b = (a + 1 + (u / NCAT) % (NCAT - 1)) % NCAT;
    return c == a || c == b;
}

static harness_stack_t S; /* Redis, the cluster and the daemon */
static uint64_t rs = 88172645463325252ULL;

static uint32_t below(uint32_t n)
{
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (uint32_t)(rs % n);
}

/* A vector of model kind from Redis: V little-endian floats, or -1. */
static int get_vec(redisContext *r, const char *kind, int V, char side, int id, float *v)
{
    char key[64];
    snprintf(key, sizeof(key), "fr:%s:%c:%c%d", kind, side, side, id);
    redisReply *rep = redisCommand(r, "GET %s", key);
    int ok = rep && rep->type == REDIS_REPLY_STRING && rep->len == (size_t)V * 4;
    if (ok)
        memcpy(v, rep->str, (size_t)V * 4); /* x86-64 and aarch64 are little-endian */
    else
        print_error("GET %s: type %d, %zu bytes\n", key, rep ? rep->type : -1, rep ? rep->len : 0);
    freeReplyObject(rep);
    return ok ? 0 : -1;
}

/* map: hmf with its transition map ([model] transition_lr) */
static void learns_and_publishes(const char *kind, int map)
{
    const int hmf = strcmp(kind, "hmf") == 0, V = hmf ? (map ? 2 * DIM : DIM) + 2 : DIM;
    char kind_kv[32];
    snprintf(kind_kv, sizeof(kind_kv), "model.kind=%s", kind);
    const char *extra[] = {kind_kv,
                           map ? "model.transition_lr=0.001" : "model.transition_lr=0",
                           "model.dim=16",
                           "model.loss=bpr",
                           "model.negatives=4",
                           "model.batch_events=128",
                           "redis.publish_interval_ms=50",
                           NULL};
    harness_stack_opts_t opts = {.partitions = 2, .extra = extra, .name = "test_mf_daemon"};
    assert_int_equal(harness_stack_start(&S, &opts), 0);
    const int rport = S.redis_port, sport = S.stats_port;

    long long ts = 1700000000000LL;
    for (int c = 0; c < NCLICK; c++, ts += 2) {
        int u = c < NU ? c : (int)below(NU), g; /* every user at least once */
        do
            g = (int)below(NCAT);
        while (!likes(u, g));
        int i = c < NITEMS ? c : (int)below(PER) * NCAT + g; /* every item at least once */
        char buf[256], user[16];
        snprintf(user, sizeof(user), "u%d", u);
        int n = snprintf(buf, sizeof(buf),
                         "{\"user\":\"%s\",\"item\":\"i%d\",\"type\":\"click\",\"ts\":%lld}", user,
                         i, ts);
        harness_kafka_produce(&S.kafka, user, buf, (size_t)n);
    }
    assert_int_equal(harness_kafka_flush(&S.kafka, 30000), 0);

    double t0 = harness_now_ms(), learned = 0, skipped = 0;
    while (harness_now_ms() - t0 < 60000) {
        learned = harness_daemon_metric(sport, "freshrec_events_learned_total");
        skipped = harness_daemon_metric(sport, "freshrec_events_skipped_total");
        if (learned + skipped == NCLICK)
            break;
        usleep(100000);
    }
    print_message("learned %.0f, skipped %.0f of %d clicks\n", learned, skipped, NCLICK);
    assert_int_equal((long)(learned + skipped), NCLICK);
    assert_true(skipped <= 8); /* at most the cold start's */
    double hr = harness_daemon_metric(sport, "freshrec_hr_at_10");
    print_message("prequential HR@10 (recent): %.3f\n", hr);

    t0 = harness_now_ms();
    while (harness_daemon_metric(sport, "freshrec_dirty_keys") != 0 &&
           harness_now_ms() - t0 < 10000)
        usleep(50000);
    usleep(300000);

    redisContext *r = redisConnect("127.0.0.1", rport);
    assert_non_null(r);
    redisReply *rep = redisCommand(r, "HGET fr:%s:meta layout", kind);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, map   ? "hmf:0:16,map:16:32,bias:32:34"
                                  : hmf ? "hmf:0:16,bias:16:18"
                                        : "mf:0:16");
    freeReplyObject(rep);
    /* the map is the dense block: 16 x 16 floats */
    rep = redisCommand(r, "HGET fr:%s:meta dense_layout", kind);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, map ? "map:16x16" : "");
    freeReplyObject(rep);
    rep = redisCommand(r, "HSTRLEN fr:%s:meta dense", kind);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    assert_int_equal(rep->integer, map ? DIM * DIM * 4 : 0);
    freeReplyObject(rep);
    rep = redisCommand(r, "HGET fr:%s:meta dim", kind);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_int_equal(atoi(rep->str), V);
    freeReplyObject(rep);

    static float uv[NU][VMAX], iv[NITEMS][VMAX];
    for (int u = 0; u < NU; u++)
        assert_int_equal(get_vec(r, kind, V, 'u', u, uv[u]), 0);
    for (int i = 0; i < NITEMS; i++)
        assert_int_equal(get_vec(r, kind, V, 'i', i, iv[i]), 0);
    redisFree(r);

    /* per-user AUC of liked-category items over the others, by dot product */
    double sum = 0.0;
    for (int u = 0; u < NU; u++) {
        double wins = 0.0, pairs = 0.0;
        for (int a = 0; a < NITEMS; a++) {
            if (!likes(u, a % NCAT))
                continue;
            double sa = 0.0;
            for (int k2 = 0; k2 < V; k2++)
                sa += (double)uv[u][k2] * iv[a][k2];
            for (int b = 0; b < NITEMS; b++) {
                if (likes(u, b % NCAT))
                    continue;
                double sb = 0.0;
                for (int k2 = 0; k2 < V; k2++)
                    sb += (double)uv[u][k2] * iv[b][k2];
                wins += sa > sb ? 1.0 : sa == sb ? 0.5 : 0.0;
                pairs += 1.0;
            }
        }
        sum += wins / pairs;
    }
    double auc = sum / NU;
    print_message("%s: ranking by Redis vectors, per-user AUC of liked categories: %.4f\n", kind,
                  auc);
    assert_true(auc >= 0.9);

    /* freshrec recommend scores by the same dot product: a liked item on top */
    int liked_top = 0;
    for (int u = 0; u < NU; u += 25) {
        char cmd[512], line[256];
        snprintf(cmd, sizeof(cmd),
                 "%s/freshrec recommend --redis 127.0.0.1:%d --model %s "
                 "--user u%d -k 1 2>&1",
                 harness_build(), rport, kind, u);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        int item = -1, header = 0;
        while (fgets(line, sizeof(line), p)) {
            header |= strstr(line, "dot product of the vectors") != NULL;
            sscanf(line, " 1 i%d", &item);
        }
        assert_int_equal(pclose(p), 0);
        assert_true(header);
        assert_true(item >= 0 && item < NITEMS);
        liked_top += likes(u, item % NCAT);
    }
    print_message("%s: freshrec recommend's top item liked for %d of 8 users\n", kind, liked_top);
    assert_true(liked_top >= 7);

    assert_int_equal(harness_stack_stop(&S), 0); /* the daemon's exit status */
}

static void test_mf_learns_and_publishes(void **state)
{
    (void)state;
    learns_and_publishes("mf", 0);
}

static void test_hmf_learns_and_publishes(void **state)
{
    (void)state;
    learns_and_publishes("hmf", 0);
}

/* hmf with its transition map: vectors of 2 dim + 2, the map's term in the
 * items' (Mᵀ q_i), the map itself the dense block */
static void test_hmf_map_learns_and_publishes(void **state)
{
    (void)state;
    learns_and_publishes("hmf", 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_learns_and_publishes),
        cmocka_unit_test(test_hmf_learns_and_publishes),
        cmocka_unit_test(test_hmf_map_learns_and_publishes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
