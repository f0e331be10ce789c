/* test_ctr_daemon.c — the real freshrecd learning a click-through model
 * (Deep & Cross) from impressions and clicks with features, against a real
 * redis-server and librdkafka's mock cluster on free loopback ports: every
 * impression becomes one example (clicked: a positive from the click; not
 * clicked within the label window: a negative with its own features), the
 * progressive AUC shows the planted interaction learned, and the user and
 * item embeddings are published. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ctrdata.h"
#include "harness.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NEX 60000

static void test_dcn_from_impressions_and_clicks(void **state)
{
    (void)state;
    static const char *extra[] = {"model.kind=dcn",
                                  "model.dim=8",
                                  "model.cat_fields=device,cat3",
                                  "model.num_fields=d0,d1,d2",
                                  "model.lr_sparse=0.1",
                                  "model.lr_dense=0.003",
                                  "model.batch_events=64",
                                  "events.label_window_ms=1000",
                                  "redis.publish_interval_ms=50",
                                  NULL};
    harness_stack_t st;
    /* 8 partitions: librdkafka's mock partition drops its oldest messages past a few MB, which
     * 60,000 impressions on 2 partitions passed while the consumer was behind */
    harness_stack_opts_t opts = {.partitions = 8, .extra = extra, .name = "test_ctr_daemon"};
    assert_int_equal(harness_stack_start(&st, &opts), 0);
    harness_kafka_t *k = &st.kafka;
    int rport = st.redis_port, sport = st.stats_port;

    ctrgen_config_t g;
    ctrgen_config_default(&g);
    g.examples = NEX;
    ctrdata_t cd;
    ctrdata_init(&cd);
    char err[256];
    assert_int_equal(ctrdata_generate(&cd, &g, err, sizeof(err)), 0);
    long clicks = 0;
    harness_kafka_produce_ctr(k, &cd, &clicks);
    assert_int_equal(harness_kafka_flush(k, 30000), 0);

    /* every impression is learned once its label is known: a clicked one as the
     * click's positive, an unclicked one as a negative once the window passed */
    double t0 = harness_now_ms(), imps = 0, clk = 0, learned = 0, pending = 0, neg = 0, claimed = 0;
    while (harness_now_ms() - t0 < 60000) {
        imps = harness_daemon_metric(sport, "freshrec_events_consumed_total{type=\"impression\"}");
        clk = harness_daemon_metric(sport, "freshrec_events_consumed_total{type=\"click\"}");
        if (imps == NEX && clk == clicks)
            break;
        usleep(100000);
    }
    usleep(300000); /* the last micro-batches */
    learned = harness_daemon_metric(sport, "freshrec_events_learned_total");
    pending = harness_daemon_metric(sport, "freshrec_impressions_pending");
    neg = harness_daemon_metric(sport, "freshrec_impressions_negative_total");
    claimed = harness_daemon_metric(sport, "freshrec_impressions_clicked_total");
    double auc = harness_daemon_metric(sport, "freshrec_auc");
    double ll = harness_daemon_metric(sport, "freshrec_logloss");
    print_message("%.0f impressions, %.0f clicks consumed; learned %.0f (negatives %.0f), "
                  "claimed %.0f, pending %.0f; progressive AUC %.4f, logloss %.4f\n",
                  imps, clk, learned, neg, claimed, pending, auc, ll);
    assert_int_equal((long)imps, NEX);
    assert_int_equal((long)clk, clicks);
    assert_int_equal((long)learned, (long)(clicks + neg));
    assert_int_equal((long)(neg + claimed + pending), NEX);
    assert_true(pending < 100); /* only the last second of event time waits */
    /* 60,000 examples teach the per-field terms (offline the interaction takes
     * more); the logloss stays near the 0.50 of a constant predictor at a 20%
     * click rate because it averages over the cold start too */
    assert_true(auc > 0.6);
    assert_true(isfinite(ll) && ll < 0.55);

    /* user and item embeddings, dim floats each, and the meta */
    t0 = harness_now_ms();
    while (harness_daemon_metric(sport, "freshrec_dirty_keys") != 0 &&
           harness_now_ms() - t0 < 10000)
        usleep(50000);
    redisContext *r = redisConnect("127.0.0.1", rport);
    assert_non_null(r);
    redisReply *rep = redisCommand(r, "STRLEN fr:dcn:u:%s", cd.ex[0].cat[0].value.id);
    assert_int_equal(rep->integer, 8 * 4);
    freeReplyObject(rep);
    rep = redisCommand(r, "HGET fr:dcn:meta layout");
    assert_string_equal(rep->str, "emb:0:8");
    freeReplyObject(rep);
    rep = redisCommand(r, "HGET fr:dcn:meta dense_layout");
    assert_non_null(strstr(rep->str, "cw1:"));
    freeReplyObject(rep);
    redisFree(r);

    ctrdata_free(&cd);
    assert_int_equal(harness_stack_stop(&st), 0); /* SIGTERM: exit 0 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dcn_from_impressions_and_clicks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
