/* test_crash.c — issue #5's crash case: 50,000 events are produced at a
 * steady rate while the daemon is SIGKILLed at three random moments and
 * restarted each time. At the end the events the model has learned (a
 * counter kept in the checkpoint) equal the events produced exactly, and the
 * committed offset of every partition is its end.
 *
 * The moments are drawn from a seed printed first (FRESHREC_SEED=<seed>
 * replays the same draws): each kill comes 0.3..3 s after the daemon (re)
 * started consuming: before it has fetched anything (that takes it about
 * 0.7 s), or while it learns the backlog of its downtime, before or after
 * its next checkpoint (every second). For each kill
 * the test prints what had been produced, what had been learned, and what
 * the restart restored from its checkpoint (the daemon logs it), i.e. how
 * much it had to learn again.
 *
 * Real freshrecd, real redis-server, librdkafka's mock cluster on loopback;
 * everything is stopped whatever the outcome. Normally about 40 s; under
 * AddressSanitizer the timeouts leave room for a daemon 3x slower. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "event.h"
#include "harness.h"
#include "rng.h"

#include <librdkafka/rdkafka.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EVENTS 50000
/* events per second: 36 s of producing, longer than three kill-and-restart
 * cycles (≤ 3 s + about 5 s each; more under a sanitizer) */
#define RATE 1400.0
#define PARTS 3
#define KILLS 3

static int rport, sport;
static pid_t redis = -1, daemon_pid = -1;
static harness_kafka_t K;
static char dir[64], log_path[256], ckpt_arg[128];
static atomic_long produced; /* handed to the producer so far */
static atomic_int producer_done;
static pthread_t producer_thread;
static int producer_started;

static double metric(const char *s)
{
    return harness_daemon_metric(sport, s);
}

static double learned(void)
{
    return metric("freshrec_events_learned_total");
}

/* Produces EVENTS clicks at RATE per second, whatever the daemon is doing. */
static void *producer(void *arg)
{
    (void)arg;
    char buf[256], u[32], it[32];
    double t0 = harness_now_ms();
    long k = 0;
    while (k < EVENTS) {
        long due = (long)((harness_now_ms() - t0) / 1000.0 * RATE);
        if (due > EVENTS)
            due = EVENTS;
        for (; k < due; k++) {
            snprintf(u, sizeof(u), "u%ld", k % 1000);
            snprintf(it, sizeof(it), "i%ld", (k * 7) % 900);
            size_t len = event_encode(buf, sizeof(buf), u, strlen(u), it, strlen(it), "click", -1);
            harness_kafka_produce(&K, u, buf, len);
            atomic_store(&produced, k + 1);
        }
        rd_kafka_poll(K.prod, 0);
        usleep(5000);
    }
    harness_kafka_flush(&K, 60000);
    atomic_store(&producer_done, 1);
    return NULL;
}

static pid_t start_daemon(void)
{
    /* a dead member's partitions are handed on after the session timeout */
    const char *extra[] = {ckpt_arg, "daemon.checkpoint_interval_s=1",
                           "kafka.session_timeout_ms=3000", "redis.publish_interval_ms=50", NULL};
    return harness_daemon_start(K.brokers, rport, sport, extra, log_path);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* "restored <path>: N events learned" logged from offset on; -1 when the
 * start found no checkpoint. */
static long long restored_from_log(long offset)
{
    FILE *f = fopen(log_path, "r");
    long long n = -1;
    char line[1024];
    if (f && fseek(f, offset, SEEK_SET) == 0)
        while (fgets(line, sizeof(line), f)) {
            const char *r = strstr(line, "checkpoint: restored ");
            const char *c = r ? strstr(r, ": ") : NULL;
            c = c ? strstr(c + 2, ": ") : NULL; /* past "checkpoint: " and the path */
            if (c)
                n = strtoll(c + 2, NULL, 10);
        }
    if (f)
        fclose(f);
    return n;
}

static int wait_stats_port(int ms)
{
    double t0 = harness_now_ms();
    do {
        if (!isnan(learned()))
            return 1;
        usleep(20000);
    } while (harness_now_ms() - t0 < ms);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    rport = harness_free_port();
    sport = harness_free_port();
    harness_log_path(log_path, sizeof(log_path), "test_crash");
    snprintf(dir, sizeof(dir), "/tmp/fr-crash-XXXXXX");
    if (!mkdtemp(dir) || (redis = harness_redis_start(rport)) < 0 || harness_kafka_start(&K, PARTS))
        return -1;
    snprintf(ckpt_arg, sizeof(ckpt_arg), "daemon.checkpoint_dir=%s", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGKILL);
        harness_wait(daemon_pid, 5000);
    }
    if (producer_started) /* it ends by itself: EVENTS at RATE, then a bounded flush */
        pthread_join(producer_thread, NULL);
    harness_kafka_stop(&K);
    harness_stop(redis);
    return harness_rmtree(dir);
}

static void test_sigkill_three_random_moments(void **state)
{
    (void)state;
    uint64_t seed = harness_seed("these kill moments");
    rng_t rng;
    rng_seed(&rng, seed);
    double delay[KILLS];
    for (int i = 0; i < KILLS; i++)
        delay[i] = 0.3 + 2.7 * rng_double(&rng);

    daemon_pid = start_daemon();
    assert_true(daemon_pid > 0);
    assert_true(harness_daemon_healthy(sport, 30000));
    double t0 = harness_now_ms(), consuming_at = t0;
    assert_int_equal(pthread_create(&producer_thread, NULL, producer, NULL), 0);
    producer_started = 1;

    struct {
        double at_s;
        long produced;
        double learned;
        long long restored;
        double back_s;
        double ckpts;
    } kills[KILLS];
    for (int i = 0; i < KILLS; i++) {
        double until = consuming_at + delay[i] * 1000;
        while (harness_now_ms() < until)
            usleep(10000);
        kills[i].learned = learned(); /* the last reading before the kill */
        kills[i].ckpts = metric("freshrec_checkpoint_total");
        kills[i].produced = atomic_load(&produced);
        kills[i].at_s = (harness_now_ms() - t0) / 1000;
        assert_int_equal(kill(daemon_pid, SIGKILL), 0);
        assert_int_equal(harness_wait(daemon_pid, 10000), 128 + SIGKILL);
        long offset = file_size(log_path);
        daemon_pid = start_daemon();
        assert_true(daemon_pid > 0);
        assert_true(wait_stats_port(30000)); /* a checkpoint is restored before it listens */
        kills[i].restored = restored_from_log(offset);
        assert_true(kills[i].restored <= kills[i].produced);
        assert_true(harness_daemon_healthy(sport, 60000));
        consuming_at = harness_now_ms();
        kills[i].back_s = (consuming_at - t0) / 1000 - kills[i].at_s;
        print_message("kill %d at %.1f s (%.1f s after it consumed; %.0f checkpoints written): "
                      "produced %ld, learned %.0f (last reading), restored %lld learned from the "
                      "checkpoint, so %.0f to learn again; consuming again %.1f s later\n",
                      i + 1, kills[i].at_s, delay[i], kills[i].ckpts, kills[i].produced,
                      kills[i].learned, kills[i].restored < 0 ? 0 : kills[i].restored,
                      kills[i].learned - (double)(kills[i].restored < 0 ? 0 : kills[i].restored),
                      kills[i].back_s);
    }
    int during = 1;
    for (int i = 0; i < KILLS; i++)
        during &= kills[i].produced > 0 && kills[i].produced < EVENTS;

    /* the last restart catches up: every event learned exactly once */
    pthread_join(producer_thread, NULL);
    producer_started = 0;
    assert_int_equal(atomic_load(&producer_done), 1);
    assert_int_equal(atomic_load(&produced), EVENTS);
    double t_caught = harness_now_ms();
    while (learned() < EVENTS && harness_now_ms() - t_caught < 90000)
        usleep(50000);
    usleep(1500000); /* anything learned twice would show now */
    double final = learned();
    print_message("produced %d, learned %.0f (counter kept in the checkpoint): learned twice "
                  "%.0f, lost %.0f\n",
                  EVENTS, final, final > EVENTS ? final - EVENTS : 0,
                  final < EVENTS ? EVENTS - final : 0);
    assert_int_equal((long) final, EVENTS);
    if (!during)
        fail_msg("a kill came after the producer had finished: the machine is too slow for "
                 "RATE %.0f/s",
                 RATE);

    /* a clean stop commits what the last checkpoint holds: every partition's end */
    assert_int_equal(kill(daemon_pid, SIGTERM), 0);
    assert_int_equal(harness_wait(daemon_pid, 20000), 0);
    daemon_pid = -1;
    long long committed[PARTS], ends[PARTS], total = 0;
    assert_int_equal(harness_kafka_committed(&K, "freshrec", PARTS, committed), 0);
    assert_int_equal(harness_kafka_ends(&K, PARTS, ends), 0);
    for (int p = 0; p < PARTS; p++) {
        print_message("partition %d: committed %lld, end %lld\n", p, committed[p], ends[p]);
        assert_int_equal(committed[p], ends[p]);
        total += ends[p];
    }
    assert_int_equal(total, EVENTS);
    print_message("whole test %.1f s\n", (harness_now_ms() - t0) / 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_three_random_moments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
