/* test_health.c — does the real freshrecd say when publishing stops making
 * progress (issue #15)? Redis hung by SIGSTOP for 10 s, idle and under
 * traffic: /healthz must answer 503 and freshrec_redis_connected read 0
 * within 6 s, and both recover within 2 s of SIGCONT; an idle daemon with a
 * healthy Redis must stay 200 all along. And the meta hash's heartbeat:
 * with no traffic `alive_ms` advances while `version` stays. Real
 * redis-server and librdkafka's mock cluster on free loopback ports;
 * everything is stopped whatever the outcome. (Redis stopped for good and
 * emptied: test_faults.) */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "event.h"
#include "harness.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HANG_MS 10000     /* how long Redis is stopped */
#define SAMPLE_MS 250     /* one /healthz and one /metrics per sample */
#define DOWN_WITHIN_S 6.0 /* SIGSTOP to 503 and the gauge 0 */
#define UP_WITHIN_S 2.0   /* SIGCONT to 200 and the gauge 1 */

typedef struct {
    harness_stack_t s; /* Redis, the cluster, the daemon */
    long produced;
} ctx_t;

static ctx_t C;

static double metric(const char *s)
{
    return harness_daemon_metric(C.s.stats_port, s);
}

/* n valid clicks from users prefix-<k % 20> */
static void produce_clicks(const char *prefix, int n)
{
    char buf[256], u[64], it[32];
    for (int k = 0; k < n; k++) {
        snprintf(u, sizeof(u), "%s-%d", prefix, k % 20);
        snprintf(it, sizeof(it), "i%ld", (C.produced + k) % 97);
        size_t len = event_encode(buf, sizeof(buf), u, strlen(u), it, strlen(it), "click", -1);
        harness_kafka_produce(&C.s.kafka, u, buf, len);
    }
    C.produced += n;
}

/* every event produced learned, every vector written, the last round landed */
static int settle(void)
{
    harness_kafka_flush(&C.s.kafka, 10000);
    double t0 = harness_now_ms();
    while (harness_now_ms() - t0 < 20000) {
        if (metric("freshrec_events_learned_total") >= C.produced &&
            metric("freshrec_dirty_keys") == 0) {
            usleep(300000);
            return 1;
        }
        usleep(50000);
    }
    return 0;
}

static int setup(void **state)
{
    ctx_t *c = &C;
    /* the defaults but for a faster reconnect, as in test_faults */
    static const char *extra[] = {"redis.publish_interval_ms=50", "redis.reconnect_max_ms=200",
                                  NULL};
    harness_stack_opts_t opts = {.partitions = 1, .extra = extra, .name = "test_health"};
    if (harness_stack_start(&c->s, &opts) < 0)
        return -1;
    produce_clicks("warm", 200);
    if (!settle())
        return -1;
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_stack_stop(&C.s); /* Redis gets a SIGCONT first, should a failed
                               * assertion have left it stopped */
    return 0;
}

/* HGET of the meta hash as an integer; -1 when absent or Redis does not answer */
static long long meta_field(const char *field)
{
    redisContext *r = redisConnect("127.0.0.1", C.s.redis_port);
    long long v = -1;
    if (r && !r->err) {
        redisReply *rep = redisCommand(r, "HGET fr:neumf:meta %s", field);
        if (rep && rep->type == REDIS_REPLY_STRING)
            v = strtoll(rep->str, NULL, 10);
        if (rep)
            freeReplyObject(rep);
    }
    if (r)
        redisFree(r);
    return v;
}

typedef struct {
    double t;     /* seconds since the signal */
    int code;     /* of /healthz */
    double gauge; /* freshrec_redis_connected */
    double age;   /* freshrec_redis_last_ack_age_seconds */
} sample_t;

static sample_t take_sample(double t0)
{
    static char text[1 << 18];
    char body[256];
    sample_t s;
    s.code = harness_http_get(C.s.stats_port, "/healthz", body, sizeof(body));
    int mc = harness_http_get(C.s.stats_port, "/metrics", text, sizeof(text));
    s.gauge = mc == 200 ? harness_metric(text, "freshrec_redis_connected") : NAN;
    s.age = mc == 200 ? harness_metric(text, "freshrec_redis_last_ack_age_seconds") : NAN;
    s.t = (harness_now_ms() - t0) / 1000.0;
    return s;
}

/* Samples every SAMPLE_MS for ms; with traffic, 20 clicks before each. */
static int sample_for(sample_t *out, int cap, double t0, int ms, int traffic)
{
    int n = 0;
    double start = harness_now_ms();
    while (n < cap && harness_now_ms() - start < ms) {
        double next = harness_now_ms() + SAMPLE_MS;
        if (traffic)
            produce_clicks("hang", 20);
        out[n++] = take_sample(t0);
        double left = next - harness_now_ms();
        if (left > 0)
            usleep((useconds_t)(left * 1000));
    }
    return n;
}

static void print_samples(const char *what, const sample_t *s, int n)
{
    char line[4096];
    size_t off = 0;
    for (int i = 0; i < n && off < sizeof(line) - 40; i++)
        off += (size_t)snprintf(line + off, sizeof(line) - off, " %.2f:%d/%g", s[i].t, s[i].code,
                                s[i].gauge);
    print_message("%s (s:healthz/gauge):%s\n", what, line);
}

/* Redis stopped for HANG_MS: the first sample from which on every sample is
 * 503 with the gauge 0 must come within DOWN_WITHIN_S; after SIGCONT the
 * first from which on every one is 200 with the gauge 1, within UP_WITHIN_S. */
static void redis_hang(int traffic)
{
    enum { CAP = 256 };
    static sample_t during[CAP], after[CAP];
    const char *what = traffic ? "under traffic" : "idle";

    /* beforehand, idle or not, Redis answering: healthy all along */
    sample_t before[8];
    int nb = sample_for(before, 8, harness_now_ms(), 8 * SAMPLE_MS, traffic);
    for (int i = 0; i < nb; i++)
        if (before[i].code != 200 || before[i].gauge != 1) {
            print_samples("before the hang", before, nb);
            fail_msg("%s, Redis answering: /healthz %d, freshrec_redis_connected %g", what,
                     before[i].code, before[i].gauge);
        }

    double t0 = harness_now_ms();
    harness_signal(C.s.redis, SIGSTOP);
    int nd = sample_for(during, CAP, t0, HANG_MS, traffic);
    double t1 = harness_now_ms();
    harness_signal(C.s.redis, SIGCONT);
    int na = sample_for(after, CAP, t1, 4000, traffic);
    print_samples("Redis stopped", during, nd);
    print_samples("Redis continued", after, na);

    /* the last sample that still looked healthy, and the first that did not */
    double down_health = -1, down_gauge = -1, up_health = -1, up_gauge = -1;
    for (int i = nd - 1; i >= 0 && during[i].code == 503; i--)
        down_health = during[i].t;
    for (int i = nd - 1; i >= 0 && during[i].gauge == 0; i--)
        down_gauge = during[i].t;
    for (int i = na - 1; i >= 0 && after[i].code == 200; i--)
        up_health = after[i].t;
    for (int i = na - 1; i >= 0 && after[i].gauge == 1; i--)
        up_gauge = after[i].t;
    double age = nd ? during[nd - 1].age : NAN;
    print_message("%s: SIGSTOP to 503 %.2f s, to freshrec_redis_connected 0 %.2f s; SIGCONT to "
                  "200 %.2f s, to 1 %.2f s; last ack %.1f s old at the end of the hang\n",
                  what, down_health, down_gauge, up_health, up_gauge, age);
    if (down_health < 0 || down_health > DOWN_WITHIN_S)
        fail_msg("%s: /healthz not steadily 503 within %.0f s of SIGSTOP", what, DOWN_WITHIN_S);
    if (down_gauge < 0 || down_gauge > DOWN_WITHIN_S)
        fail_msg("%s: freshrec_redis_connected not steadily 0 within %.0f s of SIGSTOP", what,
                 DOWN_WITHIN_S);
    if (up_health < 0 || up_health > UP_WITHIN_S)
        fail_msg("%s: /healthz not steadily 200 within %.0f s of SIGCONT", what, UP_WITHIN_S);
    if (up_gauge < 0 || up_gauge > UP_WITHIN_S)
        fail_msg("%s: freshrec_redis_connected not steadily 1 within %.0f s of SIGCONT", what,
                 UP_WITHIN_S);
    /* nothing was confirmed since the stop: the age says how long */
    assert_true(age >= HANG_MS / 1000.0 - 2);
    assert_true(after[na - 1].age < 1.0);
    assert_true(settle()); /* and what was held back is written */
}

static void test_redis_hang_idle(void **state)
{
    (void)state;
    redis_hang(0);
}

static void test_redis_hang_traffic(void **state)
{
    (void)state;
    redis_hang(1);
}

/* No traffic: the round's heartbeat moves alive_ms (the daemon's wall clock)
 * while version and updated_ms, which say when something was published,
 * stay. */
static void test_meta_heartbeat(void **state)
{
    (void)state;
    assert_true(settle());
    long long v0 = meta_field("version"), u0 = meta_field("updated_ms");
    long long a0 = meta_field("alive_ms");
    int64_t wall0 = 0;
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        wall0 = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    usleep(1100000);
    long long v1 = meta_field("version"), u1 = meta_field("updated_ms");
    long long a1 = meta_field("alive_ms");
    print_message("over 1.1 s idle: version %lld -> %lld, updated_ms %lld -> %lld, alive_ms "
                  "%lld -> %lld (+%lld ms)\n",
                  v0, v1, u0, u1, a0, a1, a1 - a0);
    assert_true(v0 > 0);
    assert_int_equal(v1, v0);
    assert_int_equal(u1, u0);
    assert_true(a0 > 0);
    assert_true(a0 >= u0);
    assert_true(llabs(a0 - wall0) < 2000); /* the daemon's clock is the test's */
    assert_true(a1 - a0 >= 800);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta_heartbeat),
        cmocka_unit_test(test_redis_hang_idle),
        cmocka_unit_test(test_redis_hang_traffic),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
