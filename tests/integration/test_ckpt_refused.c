/* test_ckpt_refused.c — a disk that refuses the checkpoint (issue #5): the
 * daemon keeps learning, does not commit offsets, says so on the stats port
 * and in the log, and recovers when the disk takes writes again.
 *
 * How the disk refuses: the test lowers the daemon's RLIMIT_FSIZE soft limit
 * (prlimit(2) on its pid) below the checkpoint's size. The daemon ignores
 * SIGXFSZ, so write(2) fails part way through the temporary file with EFBIG,
 * exactly where a full disk fails with ENOSPC: same step, same cleanup, same
 * error path. (chmod refuses nothing to root, and mounting a tiny tmpfs
 * needs privileges a test should not count on.) The log file, being far
 * smaller than the limit, is still written. Raising the limit back is the
 * disk being freed.
 *
 * Real freshrecd, real redis-server, librdkafka's mock cluster on loopback;
 * everything is stopped whatever the outcome. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "event.h"
#include "harness.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define PARTS 2

static harness_stack_t S; /* Redis, the cluster, and the daemon while it runs */
static char dir[64];
static long produced;

static double metric(const char *s)
{
    return harness_daemon_metric(S.stats_port, s);
}

static int wait_metric(const char *s, double at_least, int ms)
{
    double t0 = harness_now_ms();
    do {
        if (metric(s) >= at_least)
            return 1;
        usleep(50000);
    } while (harness_now_ms() - t0 < ms);
    return 0;
}

static int wait_metric_below(const char *s, double below, int ms)
{
    double t0 = harness_now_ms();
    do {
        if (metric(s) < below)
            return 1;
        usleep(50000);
    } while (harness_now_ms() - t0 < ms);
    return 0;
}

static long long committed_sum(long long *per)
{
    long long c[PARTS], sum = 0;
    if (harness_kafka_committed(&S.kafka, "freshrec", PARTS, c))
        return -1;
    for (int p = 0; p < PARTS; p++) {
        sum += c[p] > 0 ? c[p] : 0;
        if (per)
            per[p] = c[p];
    }
    return sum;
}

static int wait_committed(long long want, int ms)
{
    double t0 = harness_now_ms();
    do {
        if (committed_sum(NULL) == want)
            return 1;
        usleep(100000);
    } while (harness_now_ms() - t0 < ms);
    return 0;
}

/* n clicks of users u<first>..; sizeable state, so that the checkpoint is
 * far larger than the log */
static void produce(int n, int users)
{
    char buf[256], u[32], it[32];
    for (int k = 0; k < n; k++, produced++) {
        snprintf(u, sizeof(u), "u%ld", produced % users);
        snprintf(it, sizeof(it), "i%ld", (produced * 7) % 900);
        size_t len = event_encode(buf, sizeof(buf), u, strlen(u), it, strlen(it), "click", -1);
        harness_kafka_produce(&S.kafka, u, buf, len);
    }
    assert_int_equal(harness_kafka_flush(&S.kafka, 30000), 0);
}

/* temporary checkpoint files left behind in dir */
static int leftovers(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/fr-ckr-XXXXXX");
    harness_stack_opts_t opts = {.partitions = PARTS, .name = "test_ckpt_refused", .no_daemon = 1};
    if (!mkdtemp(dir) || harness_stack_start(&S, &opts) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_stack_stop(&S);
    return harness_rmtree(dir);
}

static void test_disk_refuses_checkpoint(void **state)
{
    (void)state;
    char ckpt_arg[128];
    snprintf(ckpt_arg, sizeof(ckpt_arg), "daemon.checkpoint_dir=%s", dir);
    const char *extra[] = {ckpt_arg, "daemon.checkpoint_interval_s=1",
                           "redis.publish_interval_ms=50", NULL};
    assert_int_equal(harness_stack_daemon_start(&S, extra), 0); /* started and healthy */

    /* a disk that takes writes: learned, checkpointed, committed */
    produce(4000, 2000);
    assert_true(wait_metric("freshrec_events_learned_total", produced, 30000));
    assert_true(wait_committed(produced, 20000));
    double bytes = metric("freshrec_checkpoint_bytes");
    struct stat st;
    assert_int_equal(stat(S.log, &st), 0);
    rlim_t limit = (rlim_t)(bytes / 2);
    if ((double)st.st_size + 65536 > (double)limit)
        fail_msg("checkpoint %.0f bytes, log %lld: too close for the limit", bytes,
                 (long long)st.st_size);

    /* the disk fills up */
    struct rlimit old, lim;
    assert_int_equal(prlimit(S.daemon, RLIMIT_FSIZE, NULL, &old), 0);
    lim.rlim_cur = limit;
    lim.rlim_max = old.rlim_max; /* only the soft limit: it can be raised back */
    assert_int_equal(prlimit(S.daemon, RLIMIT_FSIZE, &lim, NULL), 0);
    double t_refused = harness_now_ms();
    assert_true(wait_metric("freshrec_checkpoint_failing", 1, 10000));
    double errors0 = metric("freshrec_checkpoint_errors_total");
    double written0 = metric("freshrec_checkpoint_total");
    long long before[PARTS] = {0};
    assert_true(committed_sum(before) >= 0);
    double learned0 = metric("freshrec_events_learned_total");
    assert_true(errors0 >= 1);

    /* learning goes on; nothing more is committed */
    produce(4000, 2000);
    assert_true(wait_metric("freshrec_events_learned_total", produced, 30000));
    assert_true(wait_metric("freshrec_checkpoint_errors_total", errors0 + 2, 10000));
    long long during[PARTS] = {0};
    long long committed1 = committed_sum(during);
    for (int p = 0; p < PARTS; p++)
        assert_int_equal(during[p], before[p]);
    assert_true(committed1 < produced);
    assert_true(metric("freshrec_checkpoint_total") == written0);
    assert_true(metric("freshrec_checkpoint_failing") == 1);
    char body[512];
    assert_int_equal(harness_http_get(S.stats_port, "/healthz", body, sizeof(body)), 200);
    assert_non_null(strstr(body, "degraded: checkpoints failing"));
    assert_true(harness_log_count(S.log, "offsets stay uncommitted") >= 1);
    assert_true(harness_log_count(S.log, "File too large") >= 1);
    assert_int_equal(leftovers(), 0); /* the refused temporary file is removed */
    char prev[128];
    snprintf(prev, sizeof(prev), "%s/freshrec.ckpt.prev", dir);
    assert_int_equal(access(prev, F_OK), 0); /* the last good one is kept */
    double errors1 = metric("freshrec_checkpoint_errors_total");
    double learned1 = metric("freshrec_events_learned_total");
    double refused_s = (harness_now_ms() - t_refused) / 1000;
    print_message("disk refusing (RLIMIT_FSIZE %llu bytes, checkpoint %.0f bytes) for %.1f s: "
                  "%.0f checkpoint errors, learned %.0f -> %.0f, committed offsets stayed at "
                  "%lld (%lld + %lld)\n",
                  (unsigned long long)limit, bytes, refused_s, errors1, learned0, learned1,
                  committed1, during[0], during[1]);
    print_message("/healthz while refusing: 200 %s", body);

    /* the disk is freed: the next checkpoint is written and commits */
    assert_int_equal(prlimit(S.daemon, RLIMIT_FSIZE, &old, NULL), 0);
    double t_freed = harness_now_ms();
    assert_true(wait_metric_below("freshrec_checkpoint_failing", 1, 10000));
    assert_true(metric("freshrec_checkpoint_total") > written0);
    assert_true(wait_committed(produced, 20000));
    double recovered_s = (harness_now_ms() - t_freed) / 1000;
    long long after[PARTS] = {0}, ends[PARTS] = {0};
    assert_int_equal(committed_sum(after), produced);
    assert_int_equal(harness_kafka_ends(&S.kafka, PARTS, ends), 0);
    for (int p = 0; p < PARTS; p++)
        assert_int_equal(after[p], ends[p]);
    assert_int_equal(harness_http_get(S.stats_port, "/healthz", body, sizeof(body)), 200);
    assert_string_equal(body, "ok\n");
    assert_int_equal(harness_log_count(S.log, "written again; committing its offsets"), 1);
    print_message("disk writable again: checkpoint written and offsets committed up to %lld "
                  "(%lld + %lld = every event learned) within %.1f s\n",
                  after[0] + after[1], after[0], after[1], recovered_s);

    assert_int_equal(harness_stack_daemon_stop(&S), 0); /* SIGTERM: exit 0 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disk_refuses_checkpoint),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
