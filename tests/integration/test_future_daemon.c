/* test_future_daemon.c — one event from the future must not decide the
 * impression/click join, with the real freshrecd, a real redis-server and
 * the mock Kafka cluster on loopback. Event time is the largest ts seen; an
 * event stamped 2100-01-01 (the largest ts the format allows) once moved it
 * so far that every waiting impression became a negative at once, every later
 * one a negative on arrival, and the checkpoint carried that over a restart.
 *
 * Rounds of 20 impressions, a click on every other one inside the label
 * window, then an event that moves event time past the window: without the
 * outlier each round gives 10 claimed and 10 negatives, and so it must with
 * the outlier in the middle of it, before and after a restart from the
 * checkpoint. The stream is from 2001, as a replay is: the past is never
 * refused. Last, a checkpoint whose event time is ahead of the clock (written
 * under a wide max_future_skew_ms, as checkpoints of the daemons that had no
 * bound were) heals when it is restored. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "clock.h"
#include "event.h"
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ROUND 20             /* impressions per round; every other one is clicked */
#define WINDOW_MS 1000       /* [events] label_window_ms, of event time */
#define BASE 1000000000000LL /* 2001-09-09: a replay of the past */

static harness_stack_t S; /* Redis, the cluster, and the daemon while it runs */
static char dir[64], ckpt_arg[128];

static void start(const char *skew)
{
    const char *extra[] = {ckpt_arg,
                           "events.label_window_ms=1000",
                           "kafka.session_timeout_ms=6000",
                           "daemon.checkpoint_interval_s=3600", /* only the one at shutdown */
                           skew,                                /* NULL: the default */
                           NULL};
    assert_int_equal(harness_stack_daemon_start(&S, extra), 0); /* started and healthy */
}

static void stop(void)
{
    assert_int_equal(harness_stack_daemon_stop(&S), 0); /* SIGTERM: exit 0 */
}

static void send(const char *user, const char *item, const char *type, int64_t ts)
{
    char buf[256];
    size_t len = event_encode(buf, sizeof(buf), user, strlen(user), item, strlen(item), type, ts);
    assert_true(len > 0);
    harness_kafka_produce(&S.kafka, user, buf, len);
    assert_int_equal(harness_kafka_flush(&S.kafka, 30000), 0);
}

static double metric(const char *sample)
{
    double v = harness_daemon_metric(S.stats_port, sample);
    return isnan(v) ? 0 : v; /* absent (an older daemon): none */
}

/* Waits until the sum of two samples reaches want; 1, or 0 after 20 s. */
static int wait_sum(const char *s1, const char *s2, double want)
{
    double t0 = harness_now_ms();
    while (harness_now_ms() - t0 < 20000) {
        if (metric(s1) + (s2 ? metric(s2) : 0) >= want)
            return 1;
        usleep(50000);
    }
    return 0;
}

#define IMPRESSIONS "freshrec_events_consumed_total{type=\"impression\"}"
#define CLICKS "freshrec_events_consumed_total{type=\"click\"}"
#define FUTURE "freshrec_events_invalid_total{reason=\"future_ts\"}"
#define CLAIMED "freshrec_impressions_clicked_total"
#define NEGATIVE "freshrec_impressions_negative_total"
#define PENDING "freshrec_impressions_pending"

/* The totals so far, as the daemon must report them. */
static double n_impr, n_clicks, n_future, n_claimed, n_negative;

/* One round at event time t0: ROUND impressions, an event at outlier_ts
 * (none: -1) in their midst, the clicks of every other one, then an event
 * past the window, which decides them all. Each step is consumed before the
 * next is sent, so that the outlier has the batches to itself. */
static void round_at(int r, int64_t t0, int64_t outlier_ts, int refused)
{
    char u[32], it[32];
    for (int k = 0; k < ROUND; k++) {
        snprintf(u, sizeof(u), "r%du%d", r, k);
        snprintf(it, sizeof(it), "r%di%d", r, k);
        send(u, it, "impression", t0 + k);
    }
    n_impr += ROUND;
    assert_true(wait_sum(IMPRESSIONS, NULL, n_impr));
    if (outlier_ts >= 0) {
        /* an impression (it would wait in the join) from far ahead */
        send("outlier", "outlier", "impression", outlier_ts);
        refused ? n_future++ : n_impr++;
        assert_true(wait_sum(IMPRESSIONS, FUTURE, n_impr + n_future));
        usleep(200000); /* a cron turn: whatever it decides is decided */
    }
    for (int k = 0; k < ROUND; k += 2) {
        snprintf(u, sizeof(u), "r%du%d", r, k);
        snprintf(it, sizeof(it), "r%di%d", r, k);
        send(u, it, "click", t0 + WINDOW_MS / 2 + k); /* inside impression k's window */
    }
    n_clicks += ROUND / 2;
    assert_true(wait_sum(CLICKS, NULL, n_clicks));
    send("later", "later", "purchase", t0 + 5 * WINDOW_MS);
    n_claimed += ROUND / 2;
    n_negative += ROUND / 2;
    wait_sum(CLAIMED, NEGATIVE, n_claimed + n_negative);
    print_message("round %d: claimed %.0f, negatives %.0f, pending %.0f, future_ts %.0f\n", r,
                  metric(CLAIMED), metric(NEGATIVE), metric(PENDING), metric(FUTURE));
    /* what the same stream gives without the outlier */
    assert_int_equal((long)metric(CLAIMED), (long)n_claimed);
    assert_int_equal((long)metric(NEGATIVE), (long)n_negative);
    assert_int_equal((long)metric(FUTURE), (long)n_future);
    assert_int_equal((long)metric(IMPRESSIONS), (long)n_impr);
}

static void test_far_future_event(void **state)
{
    (void)state;
    harness_stack_opts_t opts = {.partitions = 1, .name = "test_future_daemon", .no_daemon = 1};
    assert_int_equal(harness_stack_start(&S, &opts), 0);
    snprintf(dir, sizeof(dir), "/tmp/fr-fut-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(ckpt_arg, sizeof(ckpt_arg), "daemon.checkpoint_dir=%s", dir);
    const char *dflt = NULL; /* max_future_skew_ms by default */

    start(dflt);
    round_at(1, BASE, EVENT_MAX_TS, 1);
    assert_int_equal((long)metric(PENDING), 0);
    /* refused like any invalid event: a dead letter (counted once acknowledged) */
    wait_sum("freshrec_events_dead_letter_total", NULL, 1);
    assert_int_equal((long)metric("freshrec_events_dead_letter_total"), 1);
    assert_true(harness_log_count(S.log, "future_ts: \"ts\": 4102444800000 is") >= 1);

    /* a restart from the checkpoint: the join goes on as it was */
    stop();
    start(dflt);
    round_at(2, BASE + 100000, EVENT_MAX_TS, 1);
    assert_int_equal((long)metric(PENDING), 0);
    stop();

    /* a checkpoint with event time 12 h ahead of the clock, as one written
     * when nothing bounded it; restored, event time comes back to the clock
     * and the replay joins as before */
    start("events.max_future_skew_ms=86400000");
    int64_t ahead = clock_wall_ms() + 12 * 3600 * 1000LL;
    send("poison", "poison", "impression", ahead);
    n_impr++;
    assert_true(wait_sum(IMPRESSIONS, NULL, n_impr));
    stop();
    start(dflt);
    round_at(3, BASE + 200000, -1, 0);
    assert_true(harness_log_count(S.log, "restored event time") >= 1);
    assert_int_equal((long)metric(PENDING), 1); /* the poison impression waits */
    /* and a later outlier is refused again */
    round_at(4, BASE + 300000, EVENT_MAX_TS, 1);
    stop();

    harness_stack_stop(&S);
    assert_int_equal(harness_rmtree(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_far_future_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
