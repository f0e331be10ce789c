/* test_evict_daemon.c — max_users in the real freshrecd, against a real
 * redis-server and librdkafka's mock cluster on free loopback ports: 6,000
 * users come and go (two clicks each, in turn) into a table kept to 1,000.
 * The least recently seen are evicted and their vectors deleted from Redis,
 * so Redis serves no stale vector: the user keys in Redis are exactly the
 * users the table holds, the first users' keys are gone, the last ones'
 * are there, and the counters agree. Likewise for items with max_items, and
 * the item index fr:neumf:items (ZADD on publish, ZREM on eviction) lists
 * exactly the item vectors Redis holds. One function, evict(), runs either
 * side. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "event.h"
#include "harness.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long count_keys(redisContext *r, const char *pattern)
{
    long n = 0;
    char cursor[32] = "0";
    do {
        redisReply *rep = redisCommand(r, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        n += (long)rep->element[1]->elements;
        freeReplyObject(rep);
    } while (strcmp(cursor, "0"));
    return n;
}

static int exists(redisContext *r, char side, const char *id)
{
    char key[64]; /* (hiredis's format has no %c) */
    snprintf(key, sizeof(key), "fr:neumf:%c:%s", side, id);
    redisReply *rep = redisCommand(r, "EXISTS %s", key);
    int e = rep && rep->integer == 1;
    freeReplyObject(rep);
    return e;
}

static long zcard(redisContext *r, const char *key)
{
    redisReply *rep = redisCommand(r, "ZCARD %s", key);
    assert_non_null(rep);
    long n = rep->type == REDIS_REPLY_INTEGER ? (long)rep->integer : -1;
    freeReplyObject(rep);
    return n;
}

static int indexed(redisContext *r, const char *item)
{
    redisReply *rep = redisCommand(r, "ZSCORE fr:neumf:items %s", item);
    int e = rep && rep->type == REDIS_REPLY_STRING;
    freeReplyObject(rep);
    return e;
}

/* One side's eviction: n ids of that side come and go, two clicks each, in
 * turn (one message key: one partition's order), each with one of `others`
 * ids of the other side; the daemon keeps at most max of them. */
typedef struct {
    char side;         /* 'u' users (max_users), 'i' items (max_items) */
    const char *table; /* its freshrec_table_rows label */
    const char *const *extra;
    int partitions;
    const char *name;
    int n, max;
    int others, stride; /* the other side's id of click c of id k: (k * stride + c) % others */
} evict_case_t;

static void evict(const evict_case_t *ec)
{
    harness_stack_t st;
    harness_stack_opts_t opts = {
        .partitions = ec->partitions, .extra = ec->extra, .name = ec->name};
    assert_int_equal(harness_stack_start(&st, &opts), 0);
    int rport = st.redis_port, sport = st.stats_port;

    char buf[256], id[32], other[32], sample[96];
    long produced = 0;
    for (int k = 0; k < ec->n; k++)
        for (int c = 0; c < 2; c++, produced++) {
            snprintf(id, sizeof(id), "%c%d", ec->side, k);
            snprintf(other, sizeof(other), "%c%d", ec->side == 'u' ? 'i' : 'u',
                     (k * ec->stride + c) % ec->others);
            const char *u = ec->side == 'u' ? id : other, *it = ec->side == 'u' ? other : id;
            size_t len = event_encode(buf, sizeof(buf), u, strlen(u), it, strlen(it), "click",
                                      1700000000000LL + produced);
            harness_kafka_produce(&st.kafka, "all", buf, len);
        }
    assert_int_equal(harness_kafka_flush(&st.kafka, 30000), 0);

    double t0 = harness_now_ms(), learned = 0;
    while (harness_now_ms() - t0 < 60000 &&
           (learned = harness_daemon_metric(sport, "freshrec_events_learned_total")) < produced)
        usleep(100000);
    assert_int_equal((long)learned, produced);
    t0 = harness_now_ms();
    while (harness_now_ms() - t0 < 10000 &&
           (harness_daemon_metric(sport, "freshrec_dirty_keys") != 0 ||
            harness_daemon_metric(sport, "freshrec_deletes_pending") != 0))
        usleep(50000);
    usleep(300000); /* the last round's replies */

    /* every id has a row of its own (admit_after 1); the fallback row is one more */
    snprintf(sample, sizeof(sample), "freshrec_table_rows{table=\"%s\"}", ec->table);
    double held = harness_daemon_metric(sport, sample) - 1;
    snprintf(sample, sizeof(sample), "freshrec_table_evicted_total{table=\"%s\"}", ec->table);
    double evicted = harness_daemon_metric(sport, sample);
    double dels = harness_daemon_metric(sport, "freshrec_deletes_total");
    redisContext *r = redisConnect("127.0.0.1", rport);
    assert_non_null(r);
    char pattern[32];
    snprintf(pattern, sizeof(pattern), "fr:neumf:%c:*", ec->side);
    long keys = count_keys(r, pattern);
    print_message("%s held %.0f (max %d), evicted %.0f, DELs %.0f; their keys in Redis %ld\n",
                  ec->table, held, ec->max, evicted, dels, keys);
    assert_true(evicted > 0);
    assert_true(held <= ec->max + 256); /* past max by at most one micro-batch */
    assert_int_equal((long)(held + evicted), ec->n);
    assert_true(dels >= evicted);
    assert_int_equal(keys, (long)held); /* no stale vector: Redis holds what the table holds */
    char first[32], last[32];
    snprintf(first, sizeof(first), "%c0", ec->side);
    snprintf(last, sizeof(last), "%c%d", ec->side, ec->n - 1);
    assert_false(exists(r, ec->side, first));
    assert_true(exists(r, ec->side, last));
    if (ec->side == 'u') {
        assert_false(exists(r, 'u', "u1000"));
    } else {
        /* the index lists exactly the item vectors */
        assert_int_equal(zcard(r, "fr:neumf:items"), keys);
        assert_false(indexed(r, first));
        assert_true(indexed(r, last));
        assert_int_equal(zcard(r, "fr:neumf:users"), 0); /* items only */
    }
    redisFree(r);

    assert_int_equal(harness_stack_stop(&st), 0); /* SIGTERM: exit 0 */
}

static void test_evicted_users_leave_redis(void **state)
{
    (void)state;
    static const char *extra[] = {"model.max_users=1000", "model.ring_capacity=400",
                                  "redis.publish_interval_ms=50", NULL};
    const evict_case_t ec = {'u', "users", extra, 2, "test_evict_daemon", 6000, 1000, 50, 7};
    evict(&ec);
}

static void test_evicted_items_leave_the_index(void **state)
{
    (void)state;
    static const char *extra[] = {"model.max_items=500", "model.ring_capacity=200",
                                  "redis.publish_interval_ms=50",
                                  "redis.item_publish_interval_ms=0", NULL};
    const evict_case_t ec = {'i', "items", extra, 1, "test_evict_daemon_items", 3000, 500, 40, 1};
    evict(&ec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evicted_users_leave_redis),
        cmocka_unit_test(test_evicted_items_leave_the_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
