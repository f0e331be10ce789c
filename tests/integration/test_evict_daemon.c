/* test_evict_daemon.c — max_users in the real freshrecd, against a real
 * redis-server and librdkafka's mock cluster on free loopback ports: 6,000
 * users come and go (two clicks each, in turn) into a table kept to 1,000.
 * The least recently seen are evicted and their vectors deleted from Redis,
 * so Redis serves no stale vector: the user keys in Redis are exactly the
 * users the table holds, the first users' keys are gone, the last ones'
 * are there, and the counters agree. Likewise for items with max_items, and
 * the item index fr:neumf:items (ZADD on publish, ZREM on eviction) lists
 * exactly the item vectors Redis holds. */
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

#define NUSERS 6000
#define MAXU 1000

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

static int exists(redisContext *r, const char *user)
{
    redisReply *rep = redisCommand(r, "EXISTS fr:neumf:u:%s", user);
    int e = rep && rep->integer == 1;
    freeReplyObject(rep);
    return e;
}

static void test_evicted_users_leave_redis(void **state)
{
    (void)state;
    static const char *extra[] = {"model.max_users=1000", "model.ring_capacity=400",
                                  "redis.publish_interval_ms=50", NULL};
    harness_stack_t st;
    harness_stack_opts_t opts = {.partitions = 2, .extra = extra, .name = "test_evict_daemon"};
    assert_int_equal(harness_stack_start(&st, &opts), 0);
    harness_kafka_t *k = &st.kafka;
    int rport = st.redis_port, sport = st.stats_port;

    char buf[256], u[32], it[32];
    long produced = 0;
    for (int n = 0; n < NUSERS; n++)
        for (int c = 0; c < 2; c++, produced++) {
            snprintf(u, sizeof(u), "u%d", n);
            snprintf(it, sizeof(it), "i%d", (n * 7 + c) % 50);
            size_t len = event_encode(buf, sizeof(buf), u, strlen(u), it, strlen(it), "click",
                                      1700000000000LL + produced);
            /* one key for all: one partition, so the users come in turn */
            harness_kafka_produce(k, "all", buf, len);
        }
    assert_int_equal(harness_kafka_flush(k, 30000), 0);

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

    /* every user has a row of its own (admit_after 1); the fallback row is one more */
    double users = harness_daemon_metric(sport, "freshrec_table_rows{table=\"users\"}") - 1;
    double evicted = harness_daemon_metric(sport, "freshrec_table_evicted_total{table=\"users\"}");
    double dels = harness_daemon_metric(sport, "freshrec_deletes_total");
    redisContext *r = redisConnect("127.0.0.1", rport);
    assert_non_null(r);
    long keys = count_keys(r, "fr:neumf:u:*");
    print_message("users held %.0f (max %d), evicted %.0f, DELs %.0f; user keys in Redis %ld\n",
                  users, MAXU, evicted, dels, keys);
    assert_true(users <= MAXU + 256); /* past max by at most one micro-batch */
    assert_int_equal((long)(users + evicted), NUSERS);
    assert_true(dels >= evicted);
    assert_int_equal(keys, (long)users); /* no stale vector: Redis holds what the table holds */
    assert_false(exists(r, "u0"));
    assert_false(exists(r, "u1000"));
    assert_true(exists(r, "u5999"));
    redisFree(r);

    assert_int_equal(harness_stack_stop(&st), 0); /* SIGTERM: exit 0 */
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

#define NITEMS 3000
#define MAXI 500

static void test_evicted_items_leave_the_index(void **state)
{
    (void)state;
    static const char *extra[] = {"model.max_items=500", "model.ring_capacity=200",
                                  "redis.publish_interval_ms=50",
                                  "redis.item_publish_interval_ms=0", NULL};
    harness_stack_t st;
    harness_stack_opts_t opts = {.partitions = 1, .extra = extra,
                                 .name = "test_evict_daemon_items"};
    assert_int_equal(harness_stack_start(&st, &opts), 0);
    harness_kafka_t *k = &st.kafka;
    int rport = st.redis_port, sport = st.stats_port;

    char buf[256], u[32], it[32];
    long produced = 0;
    for (int n = 0; n < NITEMS; n++)
        for (int c = 0; c < 2; c++, produced++) {
            snprintf(u, sizeof(u), "u%d", (n + c) % 40);
            snprintf(it, sizeof(it), "i%d", n);
            size_t len = event_encode(buf, sizeof(buf), u, strlen(u), it, strlen(it), "click",
                                      1700000000000LL + produced);
            harness_kafka_produce(k, "all", buf, len);
        }
    assert_int_equal(harness_kafka_flush(k, 30000), 0);
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

    double items = harness_daemon_metric(sport, "freshrec_table_rows{table=\"items\"}") - 1;
    double evicted = harness_daemon_metric(sport, "freshrec_table_evicted_total{table=\"items\"}");
    redisContext *r = redisConnect("127.0.0.1", rport);
    assert_non_null(r);
    long keys = count_keys(r, "fr:neumf:i:*"), card = zcard(r, "fr:neumf:items");
    print_message("items held %.0f (max %d), evicted %.0f; item keys %ld, index members %ld\n",
                  items, MAXI, evicted, keys, card);
    assert_true(evicted > 0);
    assert_int_equal(keys, (long)items);
    assert_int_equal(card, keys); /* the index lists exactly the item vectors */
    assert_false(indexed(r, "i0"));
    assert_true(indexed(r, "i2999"));
    assert_int_equal(zcard(r, "fr:neumf:users"), 0); /* items only */
    redisFree(r);

    assert_int_equal(harness_stack_stop(&st), 0); /* SIGTERM: exit 0 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evicted_users_leave_redis),
        cmocka_unit_test(test_evicted_items_leave_the_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
