/* test_ckpt_daemon.c — exactly-once learning through crashes, with the real
 * freshrecd, a real redis-server and the mock Kafka cluster on loopback:
 * the daemon is SIGKILLed while it learns and restarted; it restores its
 * newest checkpoint and resumes from the offsets that checkpoint holds, so
 * the events it has learned (a counter kept in the checkpoint) equal the
 * events produced, exactly; a corrupt checkpoint is skipped for the previous
 * one; offsets are committed only for what a checkpoint holds. Checkpoints
 * are written by a forked child (the stats port shows the loop's stall).
 * Checkpoints of the format before sections (format version 1), the newest
 * and its .prev, are refused with a message naming the version, and the
 * daemon starts afresh from Kafka's committed offsets (proto/README.md). */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "event.h"
#include "harness.h"

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static harness_stack_t S; /* Redis, the cluster, and the daemon while it runs */
static char dir[64], ckpt_arg[128];
static long produced;

/* Redis and the cluster (events of partitions), a checkpoint directory of
 * its own, nothing produced yet; no daemon (start() starts it) */
static void stack_start(const char *name, int partitions)
{
    harness_stack_opts_t opts = {.partitions = partitions, .name = name, .no_daemon = 1};
    assert_int_equal(harness_stack_start(&S, &opts), 0);
    snprintf(dir, sizeof(dir), "/tmp/fr-ckd-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(ckpt_arg, sizeof(ckpt_arg), "daemon.checkpoint_dir=%s", dir);
    produced = 0;
}

static void start(void)
{
    /* batches of 100: a restart's backlog is more than 8 of them, so the
     * daemon catches up in longer turns (kafka.c) while exactly-once holds */
    const char *extra[] = {ckpt_arg,
                           "daemon.checkpoint_interval_s=1",
                           "kafka.session_timeout_ms=6000",
                           "redis.publish_interval_ms=50",
                           "kafka.batch_max=100",
                           NULL};
    assert_int_equal(harness_stack_daemon_start(&S, extra), 0); /* started and healthy */
}

static void produce(int n)
{
    char buf[256], u[32], it[32];
    for (int k = 0; k < n; k++, produced++) {
        snprintf(u, sizeof(u), "u%ld", produced % 500);
        snprintf(it, sizeof(it), "i%ld", (produced * 7) % 900);
        size_t len = event_encode(buf, sizeof(buf), u, strlen(u), it, strlen(it), "click", -1);
        harness_kafka_produce(&S.kafka, u, buf, len);
    }
    assert_int_equal(harness_kafka_flush(&S.kafka, 30000), 0);
}

static double learned(void)
{
    return harness_daemon_metric(S.stats_port, "freshrec_events_learned_total");
}

static int wait_learned(double want, int ms)
{
    double t0 = harness_now_ms();
    while (harness_now_ms() - t0 < ms) {
        if (learned() >= want)
            return 1;
        usleep(50000);
    }
    return 0;
}

static void test_sigkill_and_resume_exactly_once(void **state)
{
    (void)state;
    stack_start("test_ckpt_daemon", 3);

    start();
    for (int round = 0; round < 3; round++) {
        produce(8000);
        /* kill it part way through learning what was just produced */
        double target = produced - 8000 + 3000 + round * 1500;
        assert_true(wait_learned(target, 30000));
        usleep(300000 * (round + 1)); /* a checkpoint may or may not have come */
        kill(S.daemon, SIGKILL);
        assert_int_equal(harness_wait(S.daemon, 10000), 128 + SIGKILL);
        S.daemon = -1;
        start();
    }
    /* the last restart catches up: every event learned exactly once */
    assert_true(wait_learned(produced, 60000));
    usleep(1500000); /* anything learned twice would show now */
    print_message("produced %ld, learned %.0f (counter kept in the checkpoint)\n", produced,
                  learned());
    assert_int_equal((long)learned(), produced);
    /* checkpoints are written by a forked child: the loop stalls only for the fork */
    double ck = harness_daemon_metric(S.stats_port, "freshrec_checkpoint_total");
    double stall = harness_daemon_metric(S.stats_port, "freshrec_checkpoint_stall_seconds");
    double stall_max = harness_daemon_metric(S.stats_port, "freshrec_checkpoint_stall_max_seconds");
    double whole = harness_daemon_metric(S.stats_port, "freshrec_checkpoint_seconds");
    print_message("checkpoints %.0f, last stall %.2f ms (max %.2f ms), last write %.2f ms\n", ck,
                  stall * 1e3, stall_max * 1e3, whole * 1e3);
    assert_true(ck >= 1);
    assert_true(stall > 0 && stall <= stall_max && stall_max < 1.0);
    assert_true(whole > 0);
    assert_true(harness_daemon_metric(S.stats_port, "freshrec_checkpoint_errors_total") == 0);

    /* a corrupt newest checkpoint is skipped for the previous one */
    assert_int_equal(harness_stack_daemon_stop(&S), 0); /* SIGTERM: exit 0 */
    char path[128];
    snprintf(path, sizeof(path), "%s/freshrec.ckpt", dir);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 100, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    produce(2000);
    start();
    assert_true(wait_learned(produced, 60000));
    usleep(1000000);
    assert_int_equal((long)learned(), produced);
    /* 2,000 events and more waited for it, 20 batches: its first fetches
     * brought more than 8 batches at once, and it took longer turns */
    double turns = harness_daemon_metric(S.stats_port, "freshrec_catchup_turns_total");
    print_message("catch-up turns of the last daemon: %.0f\n", turns);
    assert_true(turns >= 1);
    assert_int_equal(harness_stack_daemon_stop(&S), 0); /* SIGTERM: exit 0 */
    assert_true(harness_log_count(S.log, "checksum mismatch") >= 1);
    char restored_prev[160];
    snprintf(restored_prev, sizeof(restored_prev), "restored %s.prev: ", path);
    assert_true(harness_log_count(S.log, restored_prev) >= 1);
    /* every fork succeeded */
    assert_int_equal(harness_log_count(S.log, "writing it on the loop instead"), 0);
    /* writers killed with their daemon left no temporary file behind a start */
    char cmd2[160];
    snprintf(cmd2, sizeof(cmd2), "ls '%s' | grep -c tmp", dir);
    FILE *ls = popen(cmd2, "r");
    int tmps = -1;
    assert_int_equal(fscanf(ls, "%d", &tmps), 1);
    pclose(ls);
    assert_int_equal(tmps, 0);

    /* committed offsets: the end, after the clean stop */
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", S.kafka.brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "freshrec", err, sizeof(err));
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(3);
    for (int p = 0; p < 3; p++)
        rd_kafka_topic_partition_list_add(l, "events", p);
    assert_int_equal(rd_kafka_committed(c, l, 10000), 0);
    long total = 0;
    for (int p = 0; p < 3; p++)
        total += l->elems[p].offset;
    assert_int_equal(total, produced);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);

    harness_stack_stop(&S);
    assert_int_equal(harness_rmtree(dir), 0);
}

static void test_old_format_refused_starts_from_committed(void **state)
{
    (void)state;
    stack_start("test_ckpt_daemon_v1", 2);

    /* a first daemon learns 3,000 events and commits them at its clean stop */
    start();
    produce(3000);
    assert_true(wait_learned(3000, 30000));
    assert_int_equal(harness_stack_daemon_stop(&S), 0);
    long long off[2];
    assert_int_equal(harness_kafka_committed(&S.kafka, "freshrec", 2, off), 0);
    assert_int_equal(off[0] + off[1], 3000);

    /* both of its checkpoints are replaced by ones of the previous format */
    char path[128], prev[140];
    snprintf(path, sizeof(path), "%s/freshrec.ckpt", dir);
    snprintf(prev, sizeof(prev), "%s.prev", path);
    const char payload[] = "a learner's state of the unsectioned format";
    assert_int_equal(harness_ckpt_v1_write(path, payload, sizeof(payload)), 0);
    assert_int_equal(harness_ckpt_v1_write(prev, payload, sizeof(payload)), 0);

    /* the next daemon refuses both and learns only what came after the
     * committed offsets: 1,000 events, not 4,000 */
    produce(1000);
    start();
    assert_true(wait_learned(1000, 30000));
    usleep(1500000); /* anything learned again would show now */
    assert_int_equal((long)learned(), 1000);
    assert_int_equal(harness_stack_daemon_stop(&S), 0);
    assert_int_equal(harness_kafka_committed(&S.kafka, "freshrec", 2, off), 0);
    assert_int_equal(off[0] + off[1], produced);

    char want[512];
    snprintf(want, sizeof(want),
             "checkpoint %s: format version 1 unsupported (this build reads 2; version 1 is "
             "the unsectioned format of before: start without it, from Kafka's committed "
             "offsets): skipped",
             path);
    assert_int_equal(harness_log_count(S.log, want), 1);
    snprintf(want, sizeof(want), "checkpoint %s: format version 1 unsupported", prev);
    assert_int_equal(harness_log_count(S.log, want), 1);
    assert_int_equal(harness_log_count(S.log, "restored"), 0);

    harness_stack_stop(&S);
    assert_int_equal(harness_rmtree(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_and_resume_exactly_once),
        cmocka_unit_test(test_old_format_refused_starts_from_committed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
