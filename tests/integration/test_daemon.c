/* test_daemon.c — the real freshrecd process against real servers: a
 * redis-server and librdkafka's mock cluster (Kafka protocol on loopback TCP,
 * run in this test process), on free loopback ports.
 *
 * One daemon learns 20,000 events of which 1% are malformed; then its
 * vectors, metrics, shutdown and restart are checked. Every server and the
 * daemon are stopped whatever the outcome. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dataset.h"
#include "event.h"
#include "harness.h"
#include "keys.h"

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NEVENTS 20000
#define NBAD 200 /* 1% */
#define NPART 4

enum { BAD_JSON, BAD_MISSING, BAD_TYPE, BAD_LARGE, BAD_KIND, NBADKINDS };
static const char *bad_reason[NBADKINDS] = {"bad_json", "missing_field", "wrong_type", "too_large",
                                            "unknown_type"};

typedef struct {
    harness_stack_t s; /* Redis, the cluster, the daemon */
    uint64_t clicks, purchases, bad[NBADKINDS];
    char some_user[64];
    char *text;
} ctx_t;

static ctx_t C;

static int start_daemon(ctx_t *c)
{
    /* a short session: the restarted daemon rejoins the group quickly; two
     * learner threads, and messages (the malformed ones too) decoded by the
     * helper thread while the loop learns (the default) */
    static const char *extra[] = {"redis.publish_interval_ms=50", "kafka.session_timeout_ms=3000",
                                  "model.threads=2", NULL};
    return harness_stack_daemon_start(&c->s, extra); /* started and healthy: 0 */
}

static int healthy(ctx_t *c)
{
    return harness_daemon_healthy(c->s.stats_port, 0);
}

static double metric(ctx_t *c, const char *sample)
{
    return harness_daemon_metric(c->s.stats_port, sample);
}

static void produce(ctx_t *c, const char *key, const char *val, size_t len)
{
    harness_kafka_produce(&c->s.kafka, key, val, len);
}

static int setup(void **state)
{
    ctx_t *c = &C;
    c->text = malloc(1 << 20);
    harness_stack_opts_t opts = {.partitions = NPART, .name = "test_daemon", .no_daemon = 1};
    if (harness_stack_start(&c->s, &opts) < 0)
        return -1;
    if (start_daemon(c) < 0) {
        fprintf(stderr, "freshrecd did not become healthy; its log is %s\n", c->s.log);
        return -1;
    }
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ctx_t *c = &C;
    harness_stack_stop(&c->s);
    free(c->text);
    return 0;
}

/* 19,800 valid events (clicks and purchases of a generated stream) and 200
 * malformed ones of five kinds: every valid one is learned, every malformed
 * one is counted by reason and lands in the dead-letter topic with it. */
static void test_learns_valid_and_dead_letters_bad(void **state)
{
    ctx_t *c = *state;
    dataset_t d;
    dataset_init(&d);
    gen_config_t g;
    gen_config_default(&g);
    g.users = 300;
    g.items = 500;
    g.events = NEVENTS - NBAD;
    char err[256];
    assert_int_equal(dataset_generate(&d, &g, err, sizeof(err)), 0);
    snprintf(c->some_user, sizeof(c->some_user), "%s", d.users[d.ev[0].user].id);
    char *big = malloc(70000);
    memset(big, ' ', 70000);
    memcpy(big, "{\"user\":\"u\",\"item\":\"i\",\"type\":\"click\"}", 38);
    char buf[1024];
    size_t v = 0;
    for (size_t k = 0; k < NEVENTS; k++) {
        if (k % 100 == 50) { /* 1%: malformed, of each kind in turn */
            int kind = (int)((k / 100) % NBADKINDS);
            c->bad[kind]++;
            const char *msg =
                kind == BAD_JSON      ? "{\"user\":\"u1\",\"item\":"
                : kind == BAD_MISSING ? "{\"item\":\"i1\",\"type\":\"click\"}"
                : kind == BAD_TYPE    ? "{\"user\":[1],\"item\":\"i1\",\"type\":\"click\"}"
                : kind == BAD_KIND    ? "{\"user\":\"u1\",\"item\":\"i1\",\"type\":\"teleport\"}"
                                      : NULL;
            if (kind == BAD_LARGE)
                produce(c, "u1", big, 70000);
            else
                produce(c, "u1", msg, strlen(msg));
            continue;
        }
        const ds_event_t *e = &d.ev[v++];
        const lrn_id_t *u = &d.users[e->user], *it = &d.items[e->item];
        int purchase = v % 10 == 0;
        purchase ? c->purchases++ : c->clicks++;
        size_t n = event_encode(buf, sizeof(buf), u->id, u->len, it->id, it->len,
                                purchase ? "purchase" : "click", e->ts_ms);
        assert_true(n > 0);
        produce(c, u->id, buf, n);
    }
    free(big);
    assert_int_equal(harness_kafka_flush(&c->s.kafka, 30000), 0);
    dataset_free(&d);

    /* learned, and healthy all along */
    double t0 = harness_now_ms(), learned = 0, invalid = 0;
    int unhealthy = 0;
    while (harness_now_ms() - t0 < 60000) {
        learned = metric(c, "freshrec_events_learned_total");
        invalid = 0;
        for (int k = 0; k < NBADKINDS; k++) {
            char s[128];
            snprintf(s, sizeof(s), "freshrec_events_invalid_total{reason=\"%s\"}", bad_reason[k]);
            invalid += metric(c, s);
        }
        unhealthy += !healthy(c);
        if (learned >= NEVENTS - NBAD && invalid >= NBAD)
            break;
        usleep(100000);
    }
    print_message("learned %.0f, invalid %.0f in %.1f s\n", learned, invalid,
                  (harness_now_ms() - t0) / 1000);
    assert_int_equal((long)learned, NEVENTS - NBAD);
    assert_int_equal((long)invalid, NBAD);
    assert_int_equal(unhealthy, 0);
    for (int k = 0; k < NBADKINDS; k++) {
        char s[128];
        snprintf(s, sizeof(s), "freshrec_events_invalid_total{reason=\"%s\"}", bad_reason[k]);
        assert_int_equal((long)metric(c, s), (long)c->bad[k]);
    }
    assert_int_equal((long)metric(c, "freshrec_events_consumed_total{type=\"click\"}"),
                     (long)c->clicks);
    assert_int_equal((long)metric(c, "freshrec_events_consumed_total{type=\"purchase\"}"),
                     (long)c->purchases);
    /* counted once the broker acknowledges each copy (a linger and a round
     * trip after it is refused) */
    t0 = harness_now_ms();
    while (metric(c, "freshrec_events_dead_letter_total") < NBAD && harness_now_ms() - t0 < 10000)
        usleep(50000);
    assert_int_equal((long)metric(c, "freshrec_events_dead_letter_total"), NBAD);

    /* the dead-letter topic holds each malformed payload with its reason */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", c->s.kafka.brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "dlq-reader", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_t *cons = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(cons);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, "events.dead", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(cons, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    uint64_t seen[NBADKINDS] = {0};
    int got = 0;
    t0 = harness_now_ms();
    while (got < NBAD && harness_now_ms() - t0 < 20000) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 200);
        if (!m)
            continue;
        if (!m->err) {
            rd_kafka_headers_t *h = NULL;
            const void *val;
            size_t vlen;
            assert_int_equal(rd_kafka_message_headers(m, &h), 0);
            assert_int_equal(rd_kafka_header_get_last(h, "freshrec-reason", &val, &vlen), 0);
            for (int k = 0; k < NBADKINDS; k++)
                if (vlen == strlen(bad_reason[k]) && !memcmp(val, bad_reason[k], vlen))
                    seen[k]++;
            if (vlen == 9 && !memcmp(val, "too_large", 9))
                assert_int_equal(m->len, 70000); /* the original payload, whole */
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
    assert_int_equal(got, NBAD);
    for (int k = 0; k < NBADKINDS; k++)
        assert_int_equal(seen[k], c->bad[k]);

    /* /metrics is Prometheus text: name{labels} value lines */
    assert_int_equal(harness_http_get(c->s.stats_port, "/metrics", c->text, 1 << 20), 200);
    int samples = 0;
    for (char *line = strtok(c->text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char name[128];
        double val;
        assert_int_equal(sscanf(line, "%127[a-z_0-9]", name), 1);
        const char *sp = strrchr(line, ' ');
        assert_non_null(sp);
        assert_int_equal(sscanf(sp + 1, "%lf", &val), 1);
        samples++;
    }
    assert_true(samples > 30);
}

static int fetch_vector(ctx_t *c, char side, const char *id, float *v, int dim)
{
    redisContext *r = redisConnect("127.0.0.1", c->s.redis_port);
    char key[300];
    keys_vector(key, sizeof(key), "fr", "neumf", side, id, strlen(id));
    redisReply *rep = redisCommand(r, "GET %s", key);
    int ok = rep && rep->type == REDIS_REPLY_STRING && rep->len == 4 * (size_t)dim;
    if (ok)
        keys_f32le_decode(v, (const unsigned char *)rep->str, (size_t)dim);
    if (rep)
        freeReplyObject(rep);
    redisFree(r);
    return ok;
}

/* Vectors: dim×4 bytes, finite, and they move when the user does something. */
static void test_vectors_follow_events(void **state)
{
    ctx_t *c = *state;
    double t0 = harness_now_ms();
    while (metric(c, "freshrec_dirty_keys") != 0 && harness_now_ms() - t0 < 10000)
        usleep(50000);
    redisContext *r = redisConnect("127.0.0.1", c->s.redis_port);
    redisReply *rep = redisCommand(r, "HGETALL fr:neumf:meta");
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    int ok = 0;
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const char *f = rep->element[i]->str, *val = rep->element[i + 1]->str;
        ok += !strcmp(f, "kind") && !strcmp(val, "neumf");
        ok += !strcmp(f, "dim") && !strcmp(val, "64"); /* GMF 32 + MLP half 64/2 */
        ok += !strcmp(f, "layout") && !strcmp(val, "gmf:0:32,mlp:32:64");
    }
    assert_int_equal(ok, 3);
    freeReplyObject(rep);
    rep = redisCommand(r, "DBSIZE");
    print_message("%lld keys in Redis\n", rep->integer);
    assert_true(rep->integer > 700); /* ~300 users + ~500 items + meta */
    freeReplyObject(rep);
    redisFree(r);

    float before[64], after[64];
    assert_true(fetch_vector(c, 'u', c->some_user, before, 64));
    for (int k = 0; k < 64; k++)
        assert_true(isfinite(before[k]));
    double learned0 = metric(c, "freshrec_events_learned_total");
    char buf[256];
    for (int k = 0; k < 20; k++) {
        char item[16];
        snprintf(item, sizeof(item), "%d", 1 + k);
        size_t n = event_encode(buf, sizeof(buf), c->some_user, strlen(c->some_user), item,
                                strlen(item), "click", -1);
        produce(c, c->some_user, buf, n);
    }
    assert_int_equal(harness_kafka_flush(&c->s.kafka, 10000), 0);
    t0 = harness_now_ms();
    while (metric(c, "freshrec_events_learned_total") < learned0 + 20 &&
           harness_now_ms() - t0 < 10000)
        usleep(50000);
    int changed = 0;
    while (!changed && harness_now_ms() - t0 < 10000) {
        usleep(100000);
        assert_true(fetch_vector(c, 'u', c->some_user, after, 64));
        changed = memcmp(before, after, sizeof(before)) != 0;
    }
    assert_true(changed);
}

/* SIGTERM: exit 0, offsets committed up to the end; a restarted daemon does
 * not learn the same events again. */
static void test_sigterm_commits_and_restart_learns_nothing_twice(void **state)
{
    ctx_t *c = *state;
    assert_int_equal(harness_stack_daemon_stop(&c->s), 0); /* SIGTERM: exit 0 */

    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", c->s.kafka.brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "freshrec", err, sizeof(err));
    rd_kafka_t *cons = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(cons);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NPART);
    for (int p = 0; p < NPART; p++)
        rd_kafka_topic_partition_list_add(l, "events", p);
    assert_int_equal(rd_kafka_committed(cons, l, 10000), 0);
    int64_t total = 0;
    for (int p = 0; p < NPART; p++) {
        int64_t lo, hi;
        assert_int_equal(rd_kafka_query_watermark_offsets(cons, "events", p, &lo, &hi, 5000), 0);
        print_message("partition %d: committed %lld, end %lld\n", p, (long long)l->elems[p].offset,
                      (long long)hi);
        assert_int_equal(l->elems[p].offset, hi);
        total += hi;
    }
    assert_int_equal(total, NEVENTS + 20);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(cons);

    assert_int_equal(start_daemon(c), 0);
    usleep(1500000); /* time to fetch anything it would (wrongly) re-read */
    assert_int_equal((long)metric(c, "freshrec_events_learned_total"), 0);
    assert_int_equal((long)metric(c, "freshrec_events_invalid_total{reason=\"bad_json\"}"), 0);
    assert_int_equal(harness_stack_daemon_stop(&c->s), 0);
}

/* [redis] item_publish_interval_ms: a user's vector is written in the next
 * round, and so is a new item's first vector (without it the item cannot be
 * retrieved); a known item's later changes wait for the item cadence (here
 * 10 minutes), and a stopping daemon writes them anyway. */
static void test_known_items_wait_for_their_cadence(void **state)
{
    ctx_t *c = *state;
    static const char *extra[] = {"redis.publish_interval_ms=50", "kafka.session_timeout_ms=3000",
                                  "redis.item_publish_interval_ms=600000", NULL};
    assert_int_equal(harness_stack_daemon_start(&c->s, extra), 0);
    usleep(300000); /* past the first round, which writes items too */
    char buf[256];
    size_t n = event_encode(buf, sizeof(buf), "cadence-u", 9, "cadence-i", 9, "click", -1);
    produce(c, "cadence-u", buf, n);
    assert_int_equal(harness_kafka_flush(&c->s.kafka, 10000), 0);
    float v[64], first[64];
    double t0 = harness_now_ms();
    while (
        !(fetch_vector(c, 'u', "cadence-u", v, 64) && fetch_vector(c, 'i', "cadence-i", v, 64)) &&
        harness_now_ms() - t0 < 10000)
        usleep(20000);
    assert_true(fetch_vector(c, 'u', "cadence-u", v, 64));
    assert_true(fetch_vector(c, 'i', "cadence-i", first, 64)); /* new: not held for the cadence */
    print_message("a new item's first vector: in Redis %.0f ms after the flush\n",
                  harness_now_ms() - t0);
    /* the item again, now known: its change waits */
    n = event_encode(buf, sizeof(buf), "cadence-u2", 10, "cadence-i", 9, "click", -1);
    produce(c, "cadence-u2", buf, n);
    assert_int_equal(harness_kafka_flush(&c->s.kafka, 10000), 0);
    t0 = harness_now_ms();
    while (!fetch_vector(c, 'u', "cadence-u2", v, 64) && harness_now_ms() - t0 < 10000)
        usleep(20000);
    assert_true(fetch_vector(c, 'u', "cadence-u2", v, 64));
    usleep(200000); /* a few more rounds */
    assert_true(fetch_vector(c, 'i', "cadence-i", v, 64));
    assert_memory_equal(v, first, sizeof(v));
    assert_true(metric(c, "freshrec_dirty_keys") >= 1);
    assert_int_equal(harness_stack_daemon_stop(&c->s), 0);
    assert_true(fetch_vector(c, 'i', "cadence-i", v, 64));
    assert_memory_not_equal(v, first, sizeof(v)); /* written at the stop */
    for (int k = 0; k < 64; k++)
        assert_true(isfinite(v[k]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns_valid_and_dead_letters_bad),
        cmocka_unit_test(test_vectors_follow_events),
        cmocka_unit_test(test_sigterm_commits_and_restart_learns_nothing_twice),
        cmocka_unit_test(test_known_items_wait_for_their_cadence),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
