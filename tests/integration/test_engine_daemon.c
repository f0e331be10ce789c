/* test_engine_daemon.c — what the daemon does through its one engine seam
 * works for every kind of model: a pair model learned by the learner
 * (neumf) and a click-through model on its own loop (widedeep). Real
 * freshrecd, real redis-server, librdkafka's mock cluster on loopback.
 *
 *  - SIGHUP's lr_sparse/lr_dense: after the reload sets both to 1e-9, more
 *    events of the same users and items no longer move their published
 *    vectors or the published dense weights (before it, they did). Until
 *    issue #16 the click-through models reported the change and ignored it.
 *  - [model] expire_s: users and items last seen (event time) long before
 *    now are removed from the tables and their vectors deleted from Redis;
 *    those seen now stay. Until issue #16 only the pair models expired. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define NU 40
#define NI 30
#define DIM 8

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[1 << 18];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static long long wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

typedef struct {
    const char *model;
    harness_stack_t s; /* Redis, the cluster, and the daemon on the config conf */
    char conf[256];
    long produced;
} rig_t;

/* the config of the rig's daemon, with extra [model] lines (the servers and
 * ports come as --set, which a reload applies again) */
static void write_conf(rig_t *g, const char *model_lines)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "[redis]\npublish_interval_ms = 50\n[daemon]\nlog_level = info\n"
             "[model]\nkind = %s\ndim = %d\nbatch_events = 64\nseed = 3\n%s",
             g->model, DIM, model_lines);
    write_file(g->conf, text);
}

static void rig_start(rig_t *g, const char *model, const char *name, const char *model_lines)
{
    memset(g, 0, sizeof(*g));
    g->model = model;
    snprintf(g->conf, sizeof(g->conf), "%s/tests/%s.conf", harness_build(), name);
    write_conf(g, model_lines);
    harness_stack_opts_t opts = {.name = name, .conf = g->conf};
    assert_int_equal(harness_stack_start(&g->s, &opts), 0);
}

static void rig_stop(rig_t *g)
{
    assert_int_equal(harness_stack_stop(&g->s), 0); /* the daemon's exit status */
    unlink(g->conf);
}

/* n clicks of users prefix+[0, NU) on items prefix+[0, NI) at ts, each
 * with an impression before it (a click-through model's examples) */
static void produce(rig_t *g, const char *prefix, int n, long long ts, unsigned seed)
{
    for (int c = 0; c < n; c++) {
        int u = (int)((seed + (unsigned)c * 7u) % NU), i = (int)((seed + (unsigned)c * 13u) % NI);
        char user[32], buf[256];
        snprintf(user, sizeof(user), "%su%d", prefix, u);
        for (int t = 0; t < 2; t++) {
            int len = snprintf(buf, sizeof(buf),
                               "{\"user\":\"%s\",\"item\":\"%si%d\",\"type\":\"%s\",\"ts\":%lld}",
                               user, prefix, i, t ? "click" : "impression", ts + c);
            harness_kafka_produce(&g->s.kafka, user, buf, (size_t)len);
        }
    }
    g->produced += n;
    assert_int_equal(harness_kafka_flush(&g->s.kafka, 30000), 0);
}

/* waits until every click is consumed, learned and published */
static void settle(rig_t *g)
{
    double t0 = harness_now_ms();
    while (
        harness_now_ms() - t0 < 30000 &&
        harness_daemon_metric(g->s.stats_port, "freshrec_events_consumed_total{type=\"click\"}") <
            (double)g->produced)
        usleep(50000);
    t0 = harness_now_ms();
    while (harness_daemon_metric(g->s.stats_port, "freshrec_dirty_keys") != 0 &&
           harness_now_ms() - t0 < 10000)
        usleep(50000);
    usleep(400000); /* a publish round or two */
}

/* the published vectors of users [0, NU) and items [0, NI), and the dense
 * weights, into v: (NU + NI) vectors of the meta's dim, then the dense
 * floats; returns the count */
static size_t read_model(rig_t *g, const char *prefix, float *v, size_t cap)
{
    redisContext *r = redisConnect("127.0.0.1", g->s.redis_port);
    assert_non_null(r);
    char mkey[64];
    snprintf(mkey, sizeof(mkey), "fr:%s:meta", g->model);
    redisReply *dim = redisCommand(r, "HGET %s dim", mkey);
    assert_true(dim && dim->type == REDIS_REPLY_STRING);
    const int V = atoi(dim->str); /* the published vector's floats */
    freeReplyObject(dim);
    size_t n = 0;
    for (int side = 0; side < 2; side++)
        for (int id = 0; id < (side ? NI : NU); id++) {
            char key[96];
            snprintf(key, sizeof(key), "fr:%s:%c:%s%c%d", g->model, side ? 'i' : 'u', prefix,
                     side ? 'i' : 'u', id);
            redisReply *rep = redisCommand(r, "GET %s", key);
            if (!rep || rep->type != REDIS_REPLY_STRING || rep->len != (size_t)V * 4 ||
                n + (size_t)V > cap)
                fail_msg("GET %s: no vector of %d floats", key, V);
            memcpy(v + n, rep->str, (size_t)V * 4);
            n += (size_t)V;
            freeReplyObject(rep);
        }
    char key[64];
    snprintf(key, sizeof(key), "fr:%s:meta", g->model);
    redisReply *rep = redisCommand(r, "HGET %s dense", key);
    assert_true(rep && rep->type == REDIS_REPLY_STRING && rep->len % 4 == 0);
    assert_true(n + rep->len / 4 <= cap);
    memcpy(v + n, rep->str, rep->len);
    n += rep->len / 4;
    freeReplyObject(rep);
    redisFree(r);
    return n;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static void sighup_lr(const char *model)
{
    rig_t g;
    char name[64];
    snprintf(name, sizeof(name), "test_engine_daemon_hup_%s", model);
    rig_start(&g, model, name, "lr_sparse = 0.05\nlr_dense = 0.01\n");
    enum { CAP = 1 << 16 };
    static float a0[CAP], a1[CAP], a2[CAP];
    long long ts = wall_ms();
    produce(&g, "", 2000, ts, 1);
    settle(&g);
    size_t n = read_model(&g, "", a0, CAP);
    produce(&g, "", 1000, ts + 10000, 5);
    settle(&g);
    assert_int_equal(read_model(&g, "", a1, CAP), n);
    double moved = max_diff(a0, a1, n);

    write_conf(&g, "lr_sparse = 1e-9\nlr_dense = 1e-9\n");
    kill(g.s.daemon, SIGHUP);
    int ok = harness_log_wait(g.s.log, "SIGHUP: 2 hot key(s) changed", 10000);
    if (!ok)
        print_message("log:\n%s\n", slurp(g.s.log));
    assert_true(ok);
    produce(&g, "", 1000, ts + 20000, 9);
    settle(&g);
    assert_int_equal(read_model(&g, "", a2, CAP), n);
    double after = max_diff(a1, a2, n);
    print_message("%s: %zu published floats; 1000 events moved them by up to %.3g at lr 0.05/0.01, "
                  "by %.3g after SIGHUP set 1e-9\n",
                  model, n, moved, after);
    assert_true(moved > 1e-3);
    assert_true(after < 1e-5);
    rig_stop(&g);
}

static void test_sighup_lr_neumf(void **state)
{
    (void)state;
    sighup_lr("neumf");
}

static void test_sighup_lr_widedeep(void **state)
{
    (void)state;
    sighup_lr("widedeep");
}

static int redis_exists(rig_t *g, const char *key)
{
    redisContext *r = redisConnect("127.0.0.1", g->s.redis_port);
    assert_non_null(r);
    redisReply *rep = redisCommand(r, "EXISTS %s", key);
    int e = rep && rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
    freeReplyObject(rep);
    redisFree(r);
    return e;
}

static void expire(const char *model)
{
    rig_t g;
    char name[64];
    snprintf(name, sizeof(name), "test_engine_daemon_expire_%s", model);
    /* a small rolling buffer: the old events leave it (the learner keeps the
     * ids its buffer still refers to) */
    rig_start(&g, model, name, "expire_s = 60\nring_capacity = 500\n");
    long long now = wall_ms();
    produce(&g, "old", 600, now - 3600 * 1000LL, 1); /* an hour ago */
    settle(&g);
    char key[96];
    snprintf(key, sizeof(key), "fr:%s:u:oldu3", model);
    int before = redis_exists(&g, key);
    produce(&g, "new", 1200, now, 2);
    settle(&g);
    /* the cron expires once a second; the DELs go with the next round */
    double t0 = harness_now_ms();
    int gone = 0;
    while (harness_now_ms() - t0 < 15000 && !gone) {
        gone = 1;
        for (int u = 0; u < NU && gone; u++) {
            snprintf(key, sizeof(key), "fr:%s:u:oldu%d", model, u);
            gone = redis_exists(&g, key) == 0;
        }
        for (int i = 0; i < NI && gone; i++) {
            snprintf(key, sizeof(key), "fr:%s:i:oldi%d", model, i);
            gone = redis_exists(&g, key) == 0;
        }
        usleep(200000);
    }
    int kept = 1;
    for (int u = 0; u < NU; u++) {
        snprintf(key, sizeof(key), "fr:%s:u:newu%d", model, u);
        kept &= redis_exists(&g, key) == 1;
    }
    for (int i = 0; i < NI; i++) {
        snprintf(key, sizeof(key), "fr:%s:i:newi%d", model, i);
        kept &= redis_exists(&g, key) == 1;
    }
    int logged = harness_log_wait(g.s.log, "ids unseen for 60 s", 1000);
    size_t expired = 0; /* the sum of the log's "expired N ids" */
    for (const char *p = slurp(g.s.log); (p = strstr(p, "expired ")) != NULL; p += 8)
        expired += strtoul(p + 8, NULL, 10);
    double users = harness_daemon_metric(g.s.stats_port, "freshrec_table_rows{table=\"users\"}");
    print_message("%s: old ids published before the new events %d, all gone from Redis %d, new "
                  "ones kept %d, %zu ids expired (logged %d), user rows %.0f\n",
                  model, before, gone, kept, expired, logged, users);
    /* (a click-through model has no rolling buffer to hold them: its old ids
     * may go before they are ever published) */
    assert_true(expired >= NU + NI);
    assert_true(gone);
    assert_true(kept);
    assert_true(logged);
    rig_stop(&g);
}

static void test_expire_neumf(void **state)
{
    (void)state;
    expire("neumf");
}

static void test_expire_widedeep(void **state)
{
    (void)state;
    expire("widedeep");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sighup_lr_neumf),
        cmocka_unit_test(test_sighup_lr_widedeep),
        cmocka_unit_test(test_expire_neumf),
        cmocka_unit_test(test_expire_widedeep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
