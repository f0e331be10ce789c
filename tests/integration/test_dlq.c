/* test_dlq.c — the real freshrecd's dead-letter copies (issue #15 item 1):
 * messages of about 1 MB, produced by kcat with its default and a raised
 * message.max.bytes, and 1,000 other invalid ones all reach the dead-letter
 * topic, counted by reason; when the dead-letter topic refuses them, no input
 * offset is committed past the refused message, /healthz says why, and once
 * the topic takes them again the copy is delivered and consuming goes on.
 * Real redis-server, real kcat and librdkafka's mock cluster in this process
 * on free loopback ports; everything is stopped whatever the outcome. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "event.h"
#include "harness.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NLARGE 4
#define NOTHER 1000

typedef struct {
    pid_t redis, daemon;
    int redis_port, stats_port;
    harness_kafka_t kafka;
    char log[256], dir[256];
    long long dead_seen; /* dead-letter messages read so far (the topic's next offset) */
    const char *group;   /* the daemon's consumer group */
    int bad_headers;     /* large copies without their origin's headers, or too long */
    size_t last_len;     /* the last large copy's length */
    int last_truncated;  /* ... and whether it says it was cut */
} ctx_t;

static ctx_t C;

static double metric(const char *s)
{
    return harness_daemon_metric(C.stats_port, s);
}

static int wait_metric_at_least(const char *s, double v, int ms)
{
    double t0 = harness_now_ms();
    while (harness_now_ms() - t0 < ms) {
        if (metric(s) >= v)
            return 1;
        usleep(50000);
    }
    return 0;
}

static const char *const reasons[] = {"too_large", "bad_json",     "missing_field", "wrong_type",
                                      "bad_id",    "unknown_type", "bad_ts"};
#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

static double invalid_metric(const char *reason)
{
    char s[128];
    snprintf(s, sizeof(s), "freshrec_events_invalid_total{reason=\"%s\"}", reason);
    return metric(s);
}

/* One invalid event of reason k (not too_large), distinct by i, on one line. */
static void invalid_line(char *buf, size_t cap, int k, int i)
{
    switch (k) {
    case 1:
        snprintf(buf, cap, "{\"user\":\"u%d\",\"item\":", i);
        break;
    case 2:
        snprintf(buf, cap, "{\"user\":\"u%d\",\"type\":\"click\"}", i);
        break;
    case 3:
        snprintf(buf, cap, "{\"user\":[%d],\"item\":\"i1\",\"type\":\"click\"}", i);
        break;
    case 4:
        snprintf(buf, cap, "{\"user\":\"\",\"item\":\"i%d\",\"type\":\"click\"}", i);
        break;
    case 5:
        snprintf(buf, cap, "{\"user\":\"u%d\",\"item\":\"i1\",\"type\":\"zap\"}", i);
        break;
    default:
        snprintf(buf, cap, "{\"user\":\"u%d\",\"item\":\"i1\",\"type\":\"click\",\"ts\":-5}", i);
        break;
    }
}

/* Runs kcat with args (NULL-terminated, after kcat -b brokers); 0 when it
 * exited 0. */
static int kcat(const char *const *args)
{
    /* harness_spawn does not search PATH */
    static char bin[256];
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin"; !bin[0] && p && *p;) {
        size_t n = strcspn(p, ":");
        snprintf(bin, sizeof(bin), "%.*s/kcat", (int)n, p);
        if (access(bin, X_OK))
            bin[0] = '\0';
        p = p[n] ? p + n + 1 : NULL;
    }
    if (!bin[0])
        return -1;
    char *argv[32] = {bin, "-b", C.kafka.brokers};
    int n = 3;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    pid_t pid = harness_spawn(argv, C.log);
    return pid > 0 && harness_wait(pid, 60000) == 0 ? 0 : -1;
}

/* A file of len bytes that is no JSON at all ('x' ... and a newline-free body). */
static int write_blob(const char *path, size_t len, char fill)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    char *b = malloc(len);
    if (!b) {
        fclose(f);
        return -1;
    }
    memset(b, fill, len);
    size_t w = fwrite(b, 1, len, f);
    free(b);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

/* The committed offset of "events" partition 0 (-1001: none). */
static long long committed(void)
{
    long long o = -2;
    if (harness_kafka_committed(&C.kafka, C.group, 1, &o))
        return -2;
    return o;
}

/* Reads the dead-letter topic from where the last call stopped until want
 * messages came or timeout_ms passed; counts them by reason into by_reason
 * (NULL: not counted) and checks the large ones. Returns how many came. */
static int read_dead(int want, int *by_reason, size_t *large_sizes, int *nlarge, int timeout_ms)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", C.kafka.brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "dlq-reader", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_conf_set(conf, "log_level", "2", err, sizeof(err));
    rd_kafka_t *cons = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(cons);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, "events.dead", 0)->offset =
        C.dead_seen > 0 ? C.dead_seen : RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(cons, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    int got = 0;
    double t0 = harness_now_ms();
    while (got < want && harness_now_ms() - t0 < timeout_ms) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 200);
        if (!m)
            continue;
        if (!m->err) {
            rd_kafka_headers_t *h = NULL;
            const void *val;
            size_t vlen;
            assert_int_equal(rd_kafka_message_headers(m, &h), 0);
            assert_int_equal(rd_kafka_header_get_last(h, "freshrec-reason", &val, &vlen), 0);
            for (size_t k = 0; by_reason && k < NREASONS; k++)
                if (vlen == strlen(reasons[k]) && !memcmp(val, reasons[k], vlen))
                    by_reason[k]++;
            if (vlen == 9 && !memcmp(val, "too_large", 9) && large_sizes) {
                /* the original size, partition and offset travel in headers */
                char num[32] = "";
                if (rd_kafka_header_get_last(h, "freshrec-size", &val, &vlen) == 0 &&
                    vlen < sizeof(num)) {
                    memcpy(num, val, vlen);
                    num[vlen] = '\0';
                }
                large_sizes[(*nlarge)++ % NLARGE] = strtoull(num, NULL, 10);
                if (rd_kafka_header_get_last(h, "freshrec-partition", &val, &vlen) ||
                    rd_kafka_header_get_last(h, "freshrec-offset", &val, &vlen))
                    C.bad_headers++;
                if (m->len > 1048576)
                    C.bad_headers++;
                C.last_len = m->len;
                C.last_truncated =
                    rd_kafka_header_get_last(h, "freshrec-truncated", &val, &vlen) == 0;
            }
            got++;
            C.dead_seen = m->offset + 1;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
    return got;
}

static int setup(void **state)
{
    ctx_t *c = &C;
    harness_log_path(c->log, sizeof(c->log), "test_dlq");
    /* not test_dlq.d: make's dependency file */
    snprintf(c->dir, sizeof(c->dir), "%s/tests/test_dlq.data", harness_build());
    harness_rmtree(c->dir);
    if (mkdir(c->dir, 0755) && errno != EEXIST)
        return -1;
    c->redis_port = harness_free_port();
    c->stats_port = harness_free_port();
    c->group = "freshrec";
    if ((c->redis = harness_redis_start(c->redis_port)) < 0 || harness_kafka_start(&c->kafka, 1))
        return -1;
    /* a copy the topic refuses is given up by librdkafka after 2 s (then
     * produced again by the daemon) */
    static const char *extra[] = {"redis.publish_interval_ms=50",
                                  "kafka.dead_letter_timeout_ms=2000", NULL};
    c->daemon = harness_daemon_start(c->kafka.brokers, c->redis_port, c->stats_port, extra, c->log);
    if (c->daemon < 0 || !harness_daemon_healthy(c->stats_port, 30000))
        return -1;
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (C.daemon > 0) {
        kill(C.daemon, SIGKILL);
        harness_wait(C.daemon, 5000);
    }
    harness_kafka_stop(&C.kafka);
    harness_stop(C.redis);
    harness_rmtree(C.dir);
    return 0;
}

/* Four messages of about 1 MB (two of 1,048,576 bytes through kcat with
 * message.max.bytes=3000000, two of 990,000 with kcat's default) and 1,000
 * invalid events of six other reasons (kcat's defaults, one a line): every
 * one is in the dead-letter topic with its reason, the large ones with their
 * original size, and /metrics counts them by reason. */
static void test_large_and_invalid_all_dead_lettered(void **state)
{
    (void)state;
    char big1[300], big2[300], lines[300];
    snprintf(big1, sizeof(big1), "%s/big1", C.dir);
    snprintf(big2, sizeof(big2), "%s/big2", C.dir);
    snprintf(lines, sizeof(lines), "%s/lines", C.dir);
    assert_int_equal(write_blob(big1, 1048576, 'x'), 0);
    assert_int_equal(write_blob(big2, 990000, 'y'), 0);
    int want[NREASONS] = {NLARGE};
    FILE *f = fopen(lines, "w");
    assert_non_null(f);
    for (int i = 0; i < NOTHER; i++) {
        char buf[256];
        int k = 1 + i % (int)(NREASONS - 1);
        invalid_line(buf, sizeof(buf), k, i);
        fprintf(f, "%s\n", buf);
        want[k]++;
    }
    assert_int_equal(fclose(f), 0);

    const char *raised[] = {"-P", "-t", "events", "-p", "0", "-X", "message.max.bytes=3000000",
                            big1, big1, NULL};
    const char *deflt[] = {"-P", "-t", "events", "-p", "0", big2, big2, NULL};
    const char *many[] = {"-P", "-t", "events", "-p", "0", "-l", lines, NULL};
    assert_int_equal(kcat(raised), 0);
    assert_int_equal(kcat(deflt), 0);
    assert_int_equal(kcat(many), 0);
    long long end = -1;
    assert_int_equal(harness_kafka_ends(&C.kafka, 1, &end), 0);
    assert_int_equal(end, NLARGE + NOTHER);

    /* counted by reason */
    double t0 = harness_now_ms();
    double total = 0;
    while (harness_now_ms() - t0 < 60000) {
        total = 0;
        for (size_t k = 0; k < NREASONS; k++)
            total += invalid_metric(reasons[k]);
        if (total >= NLARGE + NOTHER)
            break;
        usleep(100000);
    }
    assert_int_equal((long)total, NLARGE + NOTHER);
    for (size_t k = 0; k < NREASONS; k++)
        assert_int_equal((long)invalid_metric(reasons[k]), want[k]);

    /* every one in the dead-letter topic, with its reason */
    int by_reason[NREASONS] = {0}, nlarge = 0;
    size_t sizes[NLARGE] = {0};
    int got = read_dead(NLARGE + NOTHER, by_reason, sizes, &nlarge, 60000);
    print_message("dead-lettered %d of %d (errors %.0f, truncated %.0f)\n", got, NLARGE + NOTHER,
                  metric("freshrec_dead_letter_errors_total"),
                  metric("freshrec_dead_letter_truncated_total"));
    assert_int_equal(got, NLARGE + NOTHER);
    assert_int_equal(C.bad_headers, 0);
    for (size_t k = 0; k < NREASONS; k++)
        assert_int_equal(by_reason[k], want[k]);
    assert_int_equal(nlarge, NLARGE);
    int n1m = 0, n990k = 0;
    for (int i = 0; i < NLARGE; i++) {
        n1m += sizes[i] == 1048576;
        n990k += sizes[i] == 990000;
    }
    assert_int_equal(n1m, 2);
    assert_int_equal(n990k, 2);
    assert_true(wait_metric_at_least("freshrec_events_dead_letter_total", NLARGE + NOTHER, 10000));
    assert_int_equal((long)metric("freshrec_dead_letter_pending"), 0);

    /* and the input is committed to its end (auto-commit every second) */
    t0 = harness_now_ms();
    while (committed() != end && harness_now_ms() - t0 < 15000)
        usleep(200000);
    assert_int_equal(committed(), end);
}

/* 10 valid clicks, one refused (unknown type), 10 valid, with kcat (one a
 * line), while the daemon is stopped; then the mock refuses the next 64
 * Produce requests (the daemon's dead-letter producer is the only one
 * producing from here on). 0 or -1. */
static int produce_refused_amid_valid(void)
{
    char buf[256], lines[300];
    snprintf(lines, sizeof(lines), "%s/lines2", C.dir);
    FILE *f = fopen(lines, "w");
    if (!f)
        return -1;
    for (int i = 0; i < 21; i++) {
        if (i == 10) {
            fprintf(f, "{\"user\":\"u1\",\"item\":\"i1\",\"type\":\"zap\"}\n");
            continue;
        }
        size_t len = event_encode(buf, sizeof(buf), "ua", 2, "ib", 2, "click", -1);
        fprintf(f, "%.*s\n", (int)len, buf);
    }
    if (fclose(f))
        return -1;
    harness_signal(C.daemon, SIGSTOP);
    const char *args[] = {"-P", "-t", "events", "-p", "0", "-l", lines, NULL};
    int rc = kcat(args);
    rd_kafka_resp_err_t errs[64];
    for (int i = 0; i < 64; i++)
        errs[i] = RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
    rd_kafka_mock_push_request_errors_array(C.kafka.mock, 0 /* Produce */, 64, errs);
    harness_signal(C.daemon, SIGCONT);
    return rc;
}

/* The dead-letter topic refuses every copy for a while: nothing is committed
 * past the refused message, /healthz answers 503 and says why, and after the
 * topic takes copies again the copy is there, the offset is committed and
 * the events after it are learned. */
static void test_dead_letter_topic_unavailable(void **state)
{
    (void)state;
    char body[512];
    long long start = -1;
    assert_int_equal(harness_kafka_ends(&C.kafka, 1, &start), 0);
    double learned0 = metric("freshrec_events_learned_total");
    double unknown0 = invalid_metric("unknown_type");

    int rc = produce_refused_amid_valid();
    assert_int_equal(rc, 0);
    long long end = -1;
    assert_int_equal(harness_kafka_ends(&C.kafka, 1, &end), 0);
    assert_int_equal(end, start + 21);
    const long long refused = start + 10;

    /* consumed and refused; the copy is refused in turn: unhealthy, and
     * never a commit past the refused message */
    assert_true(wait_metric_at_least("freshrec_events_invalid_total{reason=\"unknown_type\"}",
                                     unknown0 + 1, 20000));
    double t0 = harness_now_ms();
    int code = 0;
    while (harness_now_ms() - t0 < 20000) {
        code = harness_http_get(C.stats_port, "/healthz", body, sizeof(body));
        if (code == 503)
            break;
        usleep(100000);
    }
    print_message("healthz %d: %s", code, body);
    assert_int_equal(code, 503);
    assert_non_null(strstr(body, "dead-letter"));
    assert_true(metric("freshrec_dead_letter_pending") >= 1);
    assert_true(metric("freshrec_dead_letter_errors_total") >= 1);
    t0 = harness_now_ms();
    while (harness_now_ms() - t0 < 4000) { /* a few auto-commit intervals */
        long long c = committed();
        assert_true(c <= refused);
        usleep(250000);
    }
    assert_int_equal(harness_http_get(C.stats_port, "/healthz", body, sizeof(body)), 503);

    /* the topic takes copies again */
    rd_kafka_mock_clear_request_errors(C.kafka.mock, 0);
    assert_int_equal(read_dead(1, NULL, NULL, NULL, 30000), 1);
    assert_true(harness_daemon_healthy(C.stats_port, 20000));
    t0 = harness_now_ms();
    while (committed() != end && harness_now_ms() - t0 < 15000)
        usleep(200000);
    assert_int_equal(committed(), end);
    assert_true(wait_metric_at_least("freshrec_events_learned_total", learned0 + 20, 10000));
    assert_int_equal((long)metric("freshrec_dead_letter_pending"), 0);
    /* the daemon kept running throughout */
    assert_int_equal(kill(C.daemon, 0), 0);
}

/* The dead-letter topic's limit is below the copy (a broker answers
 * MESSAGE_TOO_LARGE; the mock took 1 MB messages, so it is told to): the
 * copy is cut by half until the broker takes it, with its original size in
 * a header, and the input is committed past it. */
static void test_dead_letter_topic_smaller_limit(void **state)
{
    (void)state;
    char big[300];
    snprintf(big, sizeof(big), "%s/big1", C.dir);
    long long start = -1;
    assert_int_equal(harness_kafka_ends(&C.kafka, 1, &start), 0);
    double errors0 = metric("freshrec_dead_letter_errors_total");
    double large0 = invalid_metric("too_large");
    harness_signal(C.daemon, SIGSTOP);
    const char *args[] = {"-P", "-t", "events", "-p", "0", "-X", "message.max.bytes=3000000",
                          big,  NULL};
    int rc = kcat(args);
    rd_kafka_resp_err_t errs[3] = {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                                   RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                                   RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE};
    rd_kafka_mock_push_request_errors_array(C.kafka.mock, 0 /* Produce */, 3, errs);
    harness_signal(C.daemon, SIGCONT);
    assert_int_equal(rc, 0);
    assert_true(wait_metric_at_least("freshrec_events_invalid_total{reason=\"too_large\"}",
                                     large0 + 1, 20000));

    int by_reason[NREASONS] = {0}, nlarge = 0;
    size_t sizes[NLARGE] = {0};
    C.bad_headers = 0;
    assert_int_equal(read_dead(1, by_reason, sizes, &nlarge, 30000), 1);
    assert_int_equal(by_reason[0], 1);
    assert_int_equal(nlarge, 1);
    assert_int_equal(sizes[0], 1048576);
    assert_int_equal(C.bad_headers, 0);
    assert_int_equal(C.last_len, 524288 / 8); /* three halvings of the bound */
    assert_true(C.last_truncated);
    assert_true(metric("freshrec_dead_letter_errors_total") >= errors0 + 3);
    double t0 = harness_now_ms();
    while (committed() != start + 1 && harness_now_ms() - t0 < 15000)
        usleep(200000);
    assert_int_equal(committed(), start + 1);
    assert_true(harness_daemon_healthy(C.stats_port, 5000));
}

/* The same with checkpoints ([daemon] checkpoint_dir, every second), where
 * offsets are committed only for what a checkpoint holds: no checkpoint
 * holds a position past the refused message while its copy is refused, and
 * once it is delivered the next checkpoint commits to the end. */
static void test_dead_letter_held_by_checkpoints(void **state)
{
    (void)state;
    char body[512], ckdir[300], ckarg[340];
    /* a daemon of its own group, with checkpoints, instead of the first */
    kill(C.daemon, SIGTERM);
    assert_int_equal(harness_wait(C.daemon, 20000), 0);
    C.daemon = -1;
    snprintf(ckdir, sizeof(ckdir), "%s/ckpt", C.dir);
    assert_int_equal(mkdir(ckdir, 0755), 0);
    snprintf(ckarg, sizeof(ckarg), "daemon.checkpoint_dir=%s", ckdir);
    const char *extra[] = {"redis.publish_interval_ms=50",
                           "kafka.dead_letter_timeout_ms=2000",
                           "kafka.group_id=ckpt",
                           "daemon.checkpoint_interval_s=1",
                           ckarg,
                           NULL};
    C.group = "ckpt";
    C.stats_port = harness_free_port();
    C.daemon = harness_daemon_start(C.kafka.brokers, C.redis_port, C.stats_port, extra, C.log);
    assert_true(C.daemon > 0);
    assert_true(harness_daemon_healthy(C.stats_port, 30000));
    /* it reads the topic from the start (copies again what was refused) */
    long long start = -1;
    assert_int_equal(harness_kafka_ends(&C.kafka, 1, &start), 0);
    double t0 = harness_now_ms();
    while (start > 0 && committed() != start && harness_now_ms() - t0 < 60000)
        usleep(200000);
    assert_true(start == 0 || committed() == start); /* 0: the test runs alone */
    assert_int_equal((long)metric("freshrec_dead_letter_pending"), 0);

    assert_int_equal(produce_refused_amid_valid(), 0);
    const long long refused = start + 10, end = start + 21;
    t0 = harness_now_ms();
    int code = 0;
    while (harness_now_ms() - t0 < 20000) {
        code = harness_http_get(C.stats_port, "/healthz", body, sizeof(body));
        if (code == 503)
            break;
        usleep(100000);
    }
    assert_int_equal(code, 503);
    assert_non_null(strstr(body, "dead-letter"));
    double ck0 = metric("freshrec_checkpoint_total");
    t0 = harness_now_ms();
    while (harness_now_ms() - t0 < 4000) { /* four checkpoint intervals */
        assert_true(committed() <= refused);
        usleep(250000);
    }
    print_message("checkpoints while the copy was refused: %.0f\n",
                  metric("freshrec_checkpoint_total") - ck0);
    assert_true(metric("freshrec_checkpoint_total") <= ck0 + 1); /* one may have been under way */

    rd_kafka_mock_clear_request_errors(C.kafka.mock, 0);
    assert_true(harness_daemon_healthy(C.stats_port, 20000));
    t0 = harness_now_ms();
    while (committed() != end && harness_now_ms() - t0 < 15000)
        usleep(200000);
    assert_int_equal(committed(), end);
    assert_int_equal((long)metric("freshrec_dead_letter_pending"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_large_and_invalid_all_dead_lettered),
        cmocka_unit_test(test_dead_letter_topic_unavailable),
        cmocka_unit_test(test_dead_letter_topic_smaller_limit),
        cmocka_unit_test(test_dead_letter_held_by_checkpoints),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
