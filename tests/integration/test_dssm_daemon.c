/* test_dssm_daemon.c — the real freshrecd learning the DSSM two-tower model
 * with user and item features, against a real redis-server and librdkafka's
 * mock cluster on free loopback ports. 200 users each like two of 8 item
 * categories; clicks carry the item's genre and price and the user's device.
 * Then 80 new items are only shown (impressions, never clicked): they are
 * learned as negatives, with the features of their impressions, once the
 * label window has passed.
 *
 * Asserts: every click and every unclicked impression learned; the published
 * user and item vectors are unit vectors of the tower's width; the meta hash
 * names the layout and the towers' input widths (id row + features); and,
 * reading Redis only, a dot product of a user's and an item's vectors ranks
 * the user's liked categories first, for clicked items and for the items
 * never clicked (known by their features alone). */
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
#define WARM 40
#define COLD 10
#define NITEMS (NCAT * (WARM + COLD))
#define NCLICK 30000
#define OUT 16

static int likes(int u, int c)
{
    int a = u % NCAT, b = (a + 1 + (u / NCAT) % (NCAT - 1)) % NCAT;
    return c == a || c == b;
}

static uint64_t rs = 88172645463325252ULL;

static uint32_t below(uint32_t n)
{
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (uint32_t)(rs % n);
}

static void produce(harness_kafka_t *k, int u, int i, const char *type, long long ts)
{
    static const char *dev[2] = {"ios", "android"};
    char buf[512], user[16];
    snprintf(user, sizeof(user), "u%d", u);
    int n = snprintf(buf, sizeof(buf),
                     "{\"user\":\"%s\",\"item\":\"i%d\",\"type\":\"%s\",\"ts\":%lld,"
                     "\"cat\":{\"genre\":\"g%d\",\"device\":\"%s\"},\"num\":{\"price\":%.2f}}",
                     user, i, type, ts, i % NCAT, dev[u % 2], 5.0 + (i * 37 % 100) / 10.0);
    harness_kafka_produce(k, user, buf, (size_t)n);
}

/* A vector from Redis: OUT little-endian floats, or -1. */
static int get_vec(redisContext *r, char side, int id, float *v)
{
    char key[64];
    snprintf(key, sizeof(key), "fr:dssm:%c:%c%d", side, side, id);
    redisReply *rep = redisCommand(r, "GET %s", key);
    int ok = rep && rep->type == REDIS_REPLY_STRING && rep->len == OUT * 4;
    if (!ok)
        print_error("GET %s: type %d, %zu bytes\n", key, rep ? rep->type : -1, rep ? rep->len : 0);
    if (ok)
        memcpy(v, rep->str, OUT * 4); /* x86-64 and aarch64 are little-endian */
    freeReplyObject(rep);
    return ok ? 0 : -1;
}

/* mean over users of the AUC of liked-category items over the others, among
 * items [first, first + n) */
static double redis_auc(float (*uv)[OUT], float (*iv)[OUT], int first, int n)
{
    double sum = 0.0;
    for (int u = 0; u < NU; u++) {
        double wins = 0.0, pairs = 0.0;
        for (int a = first; a < first + n; a++) {
            if (!likes(u, a % NCAT))
                continue;
            double sa = 0.0;
            for (int k = 0; k < OUT; k++)
                sa += (double)uv[u][k] * iv[a][k];
            for (int b = first; b < first + n; b++) {
                if (likes(u, b % NCAT))
                    continue;
                double sb = 0.0;
                for (int k = 0; k < OUT; k++)
                    sb += (double)uv[u][k] * iv[b][k];
                wins += sa > sb ? 1.0 : sa == sb ? 0.5 : 0.0;
                pairs += 1.0;
            }
        }
        sum += wins / pairs;
    }
    return sum / NU;
}

static void test_dssm_with_features(void **state)
{
    (void)state;
    static const char *extra[] = {"model.kind=dssm",
                                  "model.dim=16",
                                  "model.tower=32,16",
                                  "model.loss=softmax",
                                  "model.negatives=8",
                                  "model.batch_events=128",
                                  "model.cat_fields=genre,device",
                                  "model.num_fields=price",
                                  "model.item_fields=genre,price",
                                  "model.feature_dim=8",
                                  "events.label_window_ms=1000",
                                  "redis.publish_interval_ms=50",
                                  NULL};
    harness_stack_t st;
    harness_stack_opts_t opts = {.partitions = 2, .extra = extra, .name = "test_dssm_daemon"};
    assert_int_equal(harness_stack_start(&st, &opts), 0);
    harness_kafka_t *k = &st.kafka;
    int rport = st.redis_port, sport = st.stats_port;

    /* clicks on warm items, two passes over the same distribution; then the
     * cold items shown once each; then clicks that move event time past the
     * label window, so that those impressions are decided (not clicked) */
    long long ts = 1700000000000LL;
    for (int c = 0; c < NCLICK; c++, ts += 2) {
        int u = (int)below(NU), g;
        do
            g = (int)below(NCAT);
        while (!likes(u, g));
        produce(k, u, (int)below(WARM) * NCAT + g, "click", ts);
    }
    for (int i = NCAT * WARM; i < NITEMS; i++, ts += 2)
        produce(k, (int)below(NU), i, "impression", ts);
    ts += 2000;
    for (int c = 0; c < 1000; c++, ts += 2) {
        int u = c % NU, g;
        do
            g = (int)below(NCAT);
        while (!likes(u, g));
        produce(k, u, (int)below(WARM) * NCAT + g, "click", ts);
    }
    const long clicks = NCLICK + 1000, shown = NCAT * COLD;
    assert_int_equal(harness_kafka_flush(k, 30000), 0);

    /* every event is learned, but for a click that finds no negative at all
     * (the first micro-batch, when no other item is known yet: the softmax
     * has nothing to rank it against, so it is counted skipped) */
    double t0 = harness_now_ms(), learned = 0, neg = 0, skipped = 0;
    while (harness_now_ms() - t0 < 60000) {
        learned = harness_daemon_metric(sport, "freshrec_events_learned_total");
        skipped = harness_daemon_metric(sport, "freshrec_events_skipped_total");
        neg = harness_daemon_metric(sport, "freshrec_impressions_negative_total");
        if (learned + skipped == clicks + shown)
            break;
        usleep(100000);
    }
    print_message("learned %.0f, skipped %.0f (clicks %ld, unclicked impressions %.0f)\n", learned,
                  skipped, clicks, neg);
    assert_int_equal((long)neg, shown);
    assert_int_equal((long)(learned + skipped), clicks + shown);
    assert_true(skipped <= 8); /* at most the cold start's */

    t0 = harness_now_ms();
    while (harness_daemon_metric(sport, "freshrec_dirty_keys") != 0 &&
           harness_now_ms() - t0 < 10000)
        usleep(50000);
    usleep(300000);

    redisContext *r = redisConnect("127.0.0.1", rport);
    assert_non_null(r);
    redisReply *rep = redisCommand(r, "HGET fr:dssm:meta layout");
    assert_string_equal(rep->str, "tower:0:16");
    freeReplyObject(rep);
    /* user tower: 16 id floats + device (8); item tower: 16 + genre (8) + price */
    rep = redisCommand(r, "HGET fr:dssm:meta dense_layout");
    assert_non_null(strstr(rep->str, "U1:32x24,"));
    assert_non_null(strstr(rep->str, "I1:32x25,"));
    freeReplyObject(rep);

    static float uv[NU][OUT], iv[NITEMS][OUT];
    for (int u = 0; u < NU; u++) {
        assert_int_equal(get_vec(r, 'u', u, uv[u]), 0);
        double n = 0.0;
        for (int k = 0; k < OUT; k++)
            n += (double)uv[u][k] * uv[u][k];
        assert_float_equal(sqrt(n), 1.0, 1e-4);
    }
    for (int i = 0; i < NITEMS; i++) {
        if (get_vec(r, 'i', i, iv[i]))
            fail_msg("item i%d has no vector in Redis", i);
        double n = 0.0;
        for (int k = 0; k < OUT; k++)
            n += (double)iv[i][k] * iv[i][k];
        assert_float_equal(sqrt(n), 1.0, 1e-4);
    }
    redisFree(r);
    double warm = redis_auc(uv, iv, 0, NCAT * WARM), cold = redis_auc(uv, iv, NCAT * WARM, shown);
    print_message("ranking by Redis vectors, per-user AUC of liked categories: clicked items "
                  "%.4f, never-clicked items %.4f\n",
                  warm, cold);
    assert_true(warm >= 0.8);
    assert_true(cold >= 0.75);

    assert_int_equal(harness_stack_stop(&st), 0); /* SIGTERM: exit 0 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dssm_with_features),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
