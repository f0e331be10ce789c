/* test_publish.c — the Redis publisher against a real redis-server on a free
 * loopback port: vectors and the meta hash as documented, and nothing lost
 * when Redis stops, hangs or comes back (empty: the daemon is told). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "keys.h"
#include "publish.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXF 64

typedef struct {
    struct event_base *base;
    pub_t *pub;
    pid_t redis;
    int port;
    int rounds, last_ok;
    size_t last_keys;
    char failed[MAXF][32];
    int nfailed;
    int *user_fails; /* when set: hand-backs of user "u<i>", i < nusers */
    int nusers, item_fails, other_fails;
    int empties; /* on_empty calls */
} ctx_t;

static void on_empty(void *arg)
{
    ((ctx_t *)arg)->empties++;
}

static int emptied(void *arg)
{
    return ((ctx_t *)arg)->empties > 0;
}

static void on_fail(void *arg, char side, const char *id, size_t len)
{
    ctx_t *c = arg;
    if (c->nfailed < MAXF)
        snprintf(c->failed[c->nfailed++], 32, "%c:%.*s", side, (int)len, id);
    if (c->user_fails) {
        char b[32];
        snprintf(b, sizeof(b), "%.*s", (int)len, id);
        int u = side == 'u' && b[0] == 'u' ? atoi(b + 1) : -1;
        if (u >= 0 && u < c->nusers)
            c->user_fails[u]++;
        else if (side == 'i' && strcmp(b, "item:7") == 0)
            c->item_fails++;
        else
            c->other_fails++;
    }
}

static void on_done(void *arg, int ok, size_t keys, size_t bytes, double s)
{
    (void)bytes;
    (void)s;
    ctx_t *c = arg;
    c->rounds++;
    c->last_ok = ok;
    c->last_keys = keys;
}

static int connected(void *arg)
{
    return pub_connected(((ctx_t *)arg)->pub);
}

static int disconnected(void *arg)
{
    return !pub_connected(((ctx_t *)arg)->pub);
}

static int idle(void *arg)
{
    return !pub_busy(((ctx_t *)arg)->pub);
}

static int setup_with(void **state, int ttl_s, int item_index)
{
    ctx_t *c = calloc(1, sizeof(*c));
    c->port = harness_free_port();
    c->redis = harness_redis_start(c->port);
    if (c->redis < 0) {
        free(c);
        return -1;
    }
    c->base = event_base_new();
    pub_config_t cfg = {.host = "127.0.0.1",
                        .port = c->port,
                        .prefix = "fr",
                        .model = "neumf",
                        .ttl_s = ttl_s,
                        .reconnect_max_ms = 200,
                        .round_timeout_ms = 300,
                        .item_index = item_index};
    char err[128];
    c->pub = pub_create(c->base, &cfg, on_fail, on_done, c, err, sizeof(err));
    assert_non_null(c->pub);
    assert_true(harness_loop_until(c->base, connected, c, 3000));
    *state = c;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 600, 0);
}

static int setup_index(void **state)
{
    return setup_with(state, 600, 1);
}

static int setup_no_ttl(void **state)
{
    return setup_with(state, 0, 0);
}

static int teardown(void **state)
{
    ctx_t *c = *state;
    pub_free(c->pub);
    free(c->user_fails); /* left by a test that failed half way */
    event_base_free(c->base);
    harness_stop(c->redis);
    free(c);
    return 0;
}

static redisContext *sync_conn(int port)
{
    redisContext *r = redisConnect("127.0.0.1", port);
    assert_non_null(r);
    assert_int_equal(r->err, 0);
    return r;
}

static void get_vector(int port, const char *key, float *out, int dim)
{
    redisContext *r = sync_conn(port);
    redisReply *rep = redisCommand(r, "GET %s", key);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_int_equal(rep->len, 4 * dim);
    keys_f32le_decode(out, (const unsigned char *)rep->str, (size_t)dim);
    freeReplyObject(rep);
    redisFree(r);
}

static long long redis_int(int port, const char *fmt, const char *key)
{
    redisContext *r = sync_conn(port);
    redisReply *rep = redisCommand(r, fmt, key);
    assert_non_null(rep);
    long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -999;
    freeReplyObject(rep);
    redisFree(r);
    return v;
}

/* a round of nusers users and one item, ended after between(c), if given */
static void publish_with(ctx_t *c, int nusers, float base, void (*between)(ctx_t *))
{
    float v[4];
    char id[16];
    assert_int_equal(pub_begin(c->pub), 0);
    for (int u = 0; u < nusers; u++) {
        for (int k = 0; k < 4; k++)
            v[k] = base + u + 0.25f * k;
        snprintf(id, sizeof(id), "u%d", u);
        pub_add(c->pub, 'u', id, strlen(id), v, 4);
    }
    for (int k = 0; k < 4; k++)
        v[k] = -base - k;
    pub_add(c->pub, 'i', "item:7", 6, v, 4);
    float dense[3] = {1.5f, -2.0f, 0.125f};
    pub_meta_t meta = {.kind = "neumf",
                       .dim = 4,
                       .layout = "gmf:0:2,mlp:2:4",
                       .dense = dense,
                       .ndense = 3,
                       .dense_layout = "wout:3"};
    if (between)
        between(c);
    pub_end(c->pub, &meta, 1764486000123LL);
}

static void publish(ctx_t *c, int nusers, float base)
{
    publish_with(c, nusers, base, NULL);
}

/* The key schema: "<prefix>:<model>:<side>:<id>", and 0 when it does not fit. */
static void test_key_names(void **state)
{
    (void)state;
    char key[32];
    assert_int_equal(keys_vector(key, sizeof(key), "fr", "neumf", 'u', "alice", 5), 16);
    assert_string_equal(key, "fr:neumf:u:alice");
    assert_int_equal(keys_vector(key, sizeof(key), "shop.v2", "dssm", 'i', "sku-1", 5), 20);
    assert_string_equal(key, "shop.v2:dssm:i:sku-1");
    /* an id with a NUL or a colon is written as it is */
    assert_int_equal(keys_vector(key, sizeof(key), "fr", "lr", 'i', "a:b\0c", 5), 13);
    assert_memory_equal(key, "fr:lr:i:a:b\0c", 14);
    /* exactly full (with the NUL), then one byte short */
    assert_int_equal(keys_vector(key, 17, "fr", "neumf", 'u', "alice", 5), 16);
    assert_int_equal(keys_vector(key, 16, "fr", "neumf", 'u', "alice", 5), 0);
}

static void test_vectors_and_meta(void **state)
{
    ctx_t *c = *state;
    publish(c, 3, 10.0f);
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    assert_int_equal(c->rounds, 1);
    assert_true(c->last_ok);
    assert_int_equal(c->last_keys, 4);
    float v[4];
    get_vector(c->port, "fr:neumf:u:u2", v, 4);
    for (int k = 0; k < 4; k++)
        assert_float_equal(v[k], 12.0f + 0.25f * k, 0);
    get_vector(c->port, "fr:neumf:i:item:7", v, 4);
    assert_float_equal(v[3], -13.0f, 0);
    long long ttl = redis_int(c->port, "TTL %s", "fr:neumf:u:u0");
    assert_true(ttl > 590 && ttl <= 600);

    redisContext *r = sync_conn(c->port);
    redisReply *rep = redisCommand(r, "HGETALL fr:neumf:meta");
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    int seen = 0;
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const char *f = rep->element[i]->str;
        redisReply *val = rep->element[i + 1];
        if (!strcmp(f, "kind"))
            seen += !strcmp(val->str, "neumf");
        else if (!strcmp(f, "dim"))
            seen += !strcmp(val->str, "4");
        else if (!strcmp(f, "version"))
            seen += !strcmp(val->str, "1");
        else if (!strcmp(f, "updated_ms"))
            seen += !strcmp(val->str, "1764486000123");
        else if (!strcmp(f, "alive_ms"))
            seen += !strcmp(val->str, "1764486000123");
        else if (!strcmp(f, "layout"))
            seen += !strcmp(val->str, "gmf:0:2,mlp:2:4");
        else if (!strcmp(f, "dense")) {
            float d[3];
            assert_int_equal(val->len, 12);
            keys_f32le_decode(d, (const unsigned char *)val->str, 3);
            seen += d[0] == 1.5f && d[1] == -2.0f && d[2] == 0.125f;
        }
    }
    assert_int_equal(seen, 7);
    freeReplyObject(rep);
    redisFree(r);

    /* a DEL in a later round removes the key */
    assert_int_equal(pub_begin(c->pub), 0);
    pub_del(c->pub, 'u', "u1", 2);
    pub_meta_t meta = {.kind = "neumf", .dim = 4, .layout = "x"};
    pub_end(c->pub, &meta, 1);
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    assert_int_equal(redis_int(c->port, "EXISTS %s", "fr:neumf:u:u1"), 0);
    assert_int_equal(redis_int(c->port, "EXISTS %s", "fr:neumf:u:u0"), 1);
    assert_int_equal(c->nfailed, 0);
}

/* Redis stops: the link goes down, rounds are refused (nothing taken);
 * Redis comes back on the same port: the publisher reconnects by itself. */
static void test_redis_restart(void **state)
{
    ctx_t *c = *state;
    harness_stop(c->redis);
    c->redis = -1;
    assert_true(harness_loop_until(c->base, disconnected, c, 3000));
    assert_int_equal(pub_begin(c->pub), -1);
    c->redis = harness_redis_start(c->port);
    assert_true(c->redis > 0);
    assert_true(harness_loop_until(c->base, connected, c, 5000));
    publish(c, 2, 5.0f);
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    assert_true(c->last_ok);
    float v[4];
    get_vector(c->port, "fr:neumf:u:u1", v, 4);
    assert_float_equal(v[0], 6.0f, 0);
}

/* Redis comes back without its data: the new link finds no meta hash and
 * says so (the daemon then publishes everything again); a link re-made to a
 * Redis that kept its data says nothing. */
static void test_redis_back_empty(void **state)
{
    ctx_t *c = *state;
    publish(c, 2, 1.0f); /* the first link's question is answered before this round */
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    assert_true(c->last_ok);
    pub_set_on_empty(c->pub, on_empty);

    harness_stop(c->redis);
    assert_true(harness_loop_until(c->base, disconnected, c, 3000));
    c->redis = harness_redis_start(c->port); /* no persistence: empty */
    assert_true(c->redis > 0);
    assert_true(harness_loop_until(c->base, emptied, c, 5000));
    assert_int_equal(c->empties, 1);

    publish(c, 2, 1.0f); /* the meta hash is back */
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    redisContext *r = sync_conn(c->port);
    redisReply *rep = redisCommand(r, "CLIENT KILL TYPE normal"); /* not this one (SKIPME) */
    assert_non_null(rep);
    freeReplyObject(rep);
    redisFree(r);
    assert_true(harness_loop_until(c->base, disconnected, c, 3000));
    assert_true(harness_loop_until(c->base, connected, c, 5000));
    publish(c, 1, 1.0f); /* a round after the question: its answer has come */
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    assert_true(c->last_ok);
    assert_int_equal(c->empties, 1);
}

/* Redis hangs mid-round: the round times out, every key is handed back, the
 * link is re-made once Redis answers again. */
static void test_redis_hangs(void **state)
{
    ctx_t *c = *state;
    harness_signal(c->redis, SIGSTOP);
    publish(c, 5, 1.0f);
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    assert_false(c->last_ok);
    assert_int_equal(c->nfailed, 6); /* 5 users + 1 item */
    int found = 0;
    for (int i = 0; i < c->nfailed; i++)
        found += !strcmp(c->failed[i], "u:u4") || !strcmp(c->failed[i], "i:item:7");
    assert_int_equal(found, 2);
    harness_signal(c->redis, SIGCONT);
    assert_true(harness_loop_until(c->base, connected, c, 5000));
    publish(c, 5, 1.0f);
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    assert_true(c->last_ok);
}

static long long meta_field(int port, const char *field)
{
    redisContext *r = sync_conn(port);
    redisReply *rep = redisCommand(r, "HGET fr:neumf:meta %s", field);
    assert_non_null(rep);
    long long v = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : -1;
    freeReplyObject(rep);
    redisFree(r);
    return v;
}

/* A heartbeat writes alive_ms alone: version and updated_ms stay, it is
 * done like a round, and one at a time. A heartbeat that finds the hash gone
 * (FLUSHALL on a link that stayed up) says so, as a new link would. */
static void test_heartbeat(void **state)
{
    ctx_t *c = *state;
    publish(c, 2, 1.0f); /* the first link's question is answered before this round */
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    pub_set_on_empty(c->pub, on_empty);
    assert_int_equal(pub_version(c->pub), 1);
    assert_int_equal(pub_heartbeat(c->pub, 1764486000999LL), 0);
    assert_int_equal(pub_heartbeat(c->pub, 1764486001000LL), -1); /* busy */
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    assert_int_equal(c->rounds, 2);
    assert_true(c->last_ok);
    assert_int_equal(c->last_keys, 0);
    assert_int_equal(pub_version(c->pub), 1);
    assert_int_equal(meta_field(c->port, "alive_ms"), 1764486000999LL);
    assert_int_equal(meta_field(c->port, "updated_ms"), 1764486000123LL);
    assert_int_equal(meta_field(c->port, "version"), 1);
    assert_int_equal(c->empties, 0);

    redisContext *r = sync_conn(c->port);
    freeReplyObject(redisCommand(r, "FLUSHALL"));
    redisFree(r);
    assert_int_equal(pub_heartbeat(c->pub, 1764486002000LL), 0);
    assert_true(harness_loop_until(c->base, emptied, c, 3000));
    assert_int_equal(c->empties, 1);
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    assert_int_equal(c->nfailed, 0);
}

/* Writes unconfirmed: the wait is measured from the first round Redis did
 * not confirm, through the round timeout and the reconnect to a stopped
 * Redis (whose kernel completes the TCP connect); a confirmed round ends it. */
static void test_unconfirmed(void **state)
{
    ctx_t *c = *state;
    publish(c, 1, 1.0f);
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    assert_true(pub_unconfirmed_s(c->pub) == 0.0);
    assert_true(pub_ack_age_s(c->pub) < 0.5);

    harness_signal(c->redis, SIGSTOP);
    assert_int_equal(pub_heartbeat(c->pub, 1), 0);
    assert_true(harness_loop_until(c->base, idle, c, 3000)); /* the 300 ms round timeout */
    assert_false(c->last_ok);
    assert_true(harness_loop_until(c->base, connected, c, 3000)); /* the backlog took it */
    assert_int_equal(pub_heartbeat(c->pub, 2), 0);
    double wait = pub_unconfirmed_s(c->pub);
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    assert_false(c->last_ok);
    print_message("unconfirmed %.2f s at the second heartbeat, %.2f s after it, ack %.2f s old\n",
                  wait, pub_unconfirmed_s(c->pub), pub_ack_age_s(c->pub));
    assert_true(wait >= 0.3); /* not restarted by the new link */
    assert_true(pub_unconfirmed_s(c->pub) >= 0.6);
    assert_true(pub_ack_age_s(c->pub) >= pub_unconfirmed_s(c->pub));

    harness_signal(c->redis, SIGCONT);
    assert_true(harness_loop_until(c->base, connected, c, 5000));
    int ok = 0;
    for (int tries = 0; tries < 20 && !ok; tries++) { /* a round may meet the old link's end */
        if (pub_heartbeat(c->pub, 3) == 0 && harness_loop_until(c->base, idle, c, 3000))
            ok = c->last_ok;
        else
            harness_loop_until(c->base, connected, c, 500);
    }
    assert_true(ok);
    assert_true(pub_unconfirmed_s(c->pub) == 0.0);
    assert_true(pub_ack_age_s(c->pub) < 0.5);
}

static void kill_redis(ctx_t *c)
{
    harness_stop(c->redis); /* killed and reaped: its end of the link is closed */
    c->redis = -1;
}

/* Redis dies after a round is built and before its commands are sent: the
 * link fails inside pub_end, which writes what it has queued every 1,024
 * commands (here at the second write, on loopback: the first one draws the
 * reset), so some commands are waiting for replies that will not come and
 * the rest are not queued yet. The round has ended when pub_end returns;
 * every key is handed back exactly once, the round ends once, not ok, and
 * the next round after Redis is back lands. */
static void test_redis_dies_mid_round(void **state)
{
    ctx_t *c = *state;
    enum { N = 5000 };
    c->nusers = N;
    c->user_fails = calloc(N, sizeof(int));
    assert_non_null(c->user_fails);
    publish_with(c, N, 1.0f, kill_redis);
    /* ended inside pub_end: the link was lost there, not later in the loop */
    assert_int_equal(c->rounds, 1);
    assert_false(c->last_ok);
    int bad = 0;
    for (int u = 0; u < N; u++)
        if (c->user_fails[u] != 1 && bad++ < 5)
            print_error("user u%d handed back %d times\n", u, c->user_fails[u]);
    assert_int_equal(bad, 0);
    assert_int_equal(c->item_fails, 1);
    assert_int_equal(c->other_fails, 0);
    free(c->user_fails);
    c->user_fails = NULL;

    assert_true(harness_loop_until(c->base, disconnected, c, 3000));
    c->redis = harness_redis_start(c->port);
    assert_true(c->redis > 0);
    assert_true(harness_loop_until(c->base, connected, c, 5000));
    publish(c, 3, 7.0f);
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    assert_int_equal(c->rounds, 2);
    assert_true(c->last_ok);
    float v[4];
    get_vector(c->port, "fr:neumf:u:u2", v, 4);
    assert_float_equal(v[0], 9.0f, 0);
}

/* vector_ttl_s 0: the SETs carry no EX, and the keys no TTL */
static void test_no_ttl(void **state)
{
    ctx_t *c = *state;
    publish(c, 3, 10.0f);
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    assert_true(c->last_ok);
    float v[4];
    get_vector(c->port, "fr:neumf:u:u2", v, 4);
    for (int k = 0; k < 4; k++)
        assert_float_equal(v[k], 12.0f + 0.25f * k, 0);
    assert_int_equal(redis_int(c->port, "TTL %s", "fr:neumf:u:u0"), -1);
}

static double zscore(int port, const char *member)
{
    redisContext *r = sync_conn(port);
    redisReply *rep = redisCommand(r, "ZSCORE fr:neumf:items %s", member);
    assert_non_null(rep);
    double v = rep->type == REDIS_REPLY_STRING ? atof(rep->str) : -1;
    freeReplyObject(rep);
    redisFree(r);
    return v;
}

static void one_item_round(ctx_t *c, const char *id, int del, long long now_ms)
{
    float v[4] = {1, 2, 3, 4};
    pub_meta_t meta = {.kind = "neumf", .dim = 4, .layout = "gmf:0:2,mlp:2:4"};
    assert_int_equal(pub_begin(c->pub), 0);
    if (del)
        pub_del(c->pub, 'i', id, strlen(id));
    else
        pub_add(c->pub, 'i', id, strlen(id), v, 4);
    pub_end(c->pub, &meta, now_ms);
    assert_true(harness_loop_until(c->base, idle, c, 3000));
}

/* The item index: fr:neumf:items holds the ids with a vector, scored by
 * their last write; a deleted item leaves it, and so does one whose vector's
 * TTL (600 s here) has run out. Users are not in it. */
static void test_item_index(void **state)
{
    ctx_t *c = *state;
    publish(c, 3, 10.0f); /* users u0..u2 and item:7, at 1764486000123 */
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    assert_true(c->last_ok);
    assert_int_equal(redis_int(c->port, "ZCARD %s", "fr:neumf:items"), 1);
    assert_true(zscore(c->port, "item:7") == 1764486000123.0);

    const long long t = 1764486001000LL;
    one_item_round(c, "item:8", 0, t);
    assert_true(c->last_ok);
    assert_int_equal(redis_int(c->port, "ZCARD %s", "fr:neumf:items"), 2);
    assert_true(zscore(c->port, "item:8") == (double)t);

    one_item_round(c, "item:7", 1, t + 1000); /* evicted: DEL and ZREM */
    assert_true(c->last_ok);
    assert_int_equal(redis_int(c->port, "EXISTS %s", "fr:neumf:i:item:7"), 0);
    assert_true(zscore(c->port, "item:7") < 0);
    assert_int_equal(redis_int(c->port, "ZCARD %s", "fr:neumf:items"), 1);

    /* 601 s later item:8's vector has expired: the next round prunes its id */
    one_item_round(c, "item:9", 0, t + 601000);
    assert_true(zscore(c->port, "item:8") < 0);
    assert_true(zscore(c->port, "item:9") == (double)(t + 601000));
    assert_int_equal(redis_int(c->port, "ZCARD %s", "fr:neumf:items"), 1);
    assert_int_equal(c->nfailed, 0);

    /* a round with fewer writes than deletes but more ZADD arguments (2 per
     * id) than ZREM ones: both commands whole */
    float v[4] = {1, 2, 3, 4};
    pub_meta_t meta = {.kind = "neumf", .dim = 4, .layout = "gmf:0:2,mlp:2:4"};
    assert_int_equal(pub_begin(c->pub), 0);
    pub_del(c->pub, 'i', "item:9", 6);
    pub_del(c->pub, 'i', "gone:1", 6);
    pub_del(c->pub, 'i', "gone:2", 6);
    pub_add(c->pub, 'i', "new:1", 5, v, 4);
    pub_add(c->pub, 'i', "new:2", 5, v, 4);
    pub_end(c->pub, &meta, t + 601500);
    assert_true(harness_loop_until(c->base, idle, c, 3000));
    assert_true(c->last_ok);
    assert_true(zscore(c->port, "item:9") < 0);
    assert_true(zscore(c->port, "new:1") == (double)(t + 601500));
    assert_true(zscore(c->port, "new:2") == (double)(t + 601500));
    assert_int_equal(redis_int(c->port, "ZCARD %s", "fr:neumf:items"), 2);

    /* a ZADD Redis refuses hands its items back, to be written again */
    redisContext *r = sync_conn(c->port);
    freeReplyObject(redisCommand(r, "SET fr:neumf:items not-a-zset"));
    redisFree(r);
    one_item_round(c, "item:10", 0, t + 602000);
    assert_false(c->last_ok);
    assert_int_equal(c->nfailed, 1);
    assert_string_equal(c->failed[0], "i:item:10");
}

/* Versioned writes, two publishers of one model on one Redis (as two
 * members would be): each vector ends in the big-endian position of the
 * state it came from; a publisher behind the other never replaces a newer
 * vector or meta hash (counted as refused), one ahead does; equal positions
 * write. The scripts' SHA-1s are those Redis computes; SCRIPT FLUSH is
 * recovered from (the keys it failed are handed back and written again). */
static void versioned_round(pub_t *p, ctx_t *c, uint64_t pos, float x, int64_t now_ms)
{
    float v[4] = {x, x + 1, x + 2, x + 3};
    pub_set_position(p, pos);
    assert_int_equal(pub_begin(p), 0);
    pub_add(p, 'i', "item:7", 6, v, 4);
    pub_add(p, 'u', "u1", 2, v, 4);
    pub_meta_t meta = {.kind = "neumf", .dim = 4, .layout = "gmf:0:2,mlp:2:4"};
    pub_end(p, &meta, now_ms);
    assert_true(harness_loop_until(c->base, idle, c, 3000));
}

static void held(int port, const char *key, float *first, uint64_t *pos)
{
    redisContext *r = sync_conn(port);
    redisReply *rep = redisCommand(r, "GET %s", key);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_int_equal(rep->len, 4 * 4 + 8);
    float v[4];
    keys_f32le_decode(v, (const unsigned char *)rep->str, 4);
    *first = v[0];
    *pos = 0;
    for (int b = 0; b < 8; b++)
        *pos = *pos << 8 | (unsigned char)rep->str[16 + b];
    freeReplyObject(rep);
    redisFree(r);
}

static void test_versioned(void **state)
{
    ctx_t *c = *state;
    pub_free(c->pub); /* two versioned publishers instead */
    pub_config_t cfg = {.host = "127.0.0.1",
                        .port = c->port,
                        .prefix = "fr",
                        .model = "neumf",
                        .ttl_s = 600,
                        .reconnect_max_ms = 200,
                        .round_timeout_ms = 1000,
                        .versioned = 1};
    char err[128];
    pub_t *a = pub_create(c->base, &cfg, on_fail, on_done, c, err, sizeof(err));
    pub_t *b = pub_create(c->base, &cfg, on_fail, on_done, c, err, sizeof(err));
    assert_true(a && b);
    c->pub = a;
    assert_true(harness_loop_until(c->base, connected, c, 3000));
    c->pub = b;
    assert_true(harness_loop_until(c->base, connected, c, 3000));
    /* the SHA-1 each script is called by is the one Redis gives it */
    redisContext *r = sync_conn(c->port);
    for (int w = 0; w < 2; w++) {
        const char *script, *sha = pub_script_sha(w, &script);
        redisReply *rep = redisCommand(r, "SCRIPT LOAD %s", script);
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_STRING);
        assert_string_equal(rep->str, sha);
        freeReplyObject(rep);
    }
    float x;
    uint64_t pos;
    c->pub = a;
    versioned_round(a, c, 10, 1.0f, 1000);
    held(c->port, "fr:neumf:i:item:7", &x, &pos);
    assert_float_equal(x, 1.0f, 0.0);
    assert_int_equal(pos, 10);
    assert_int_equal(meta_field(c->port, "log_position"), 10);
    assert_int_equal(meta_field(c->port, "version_bytes"), 8);
    /* b is behind: nothing of it lands */
    c->pub = b;
    versioned_round(b, c, 7, 2.0f, 2000);
    held(c->port, "fr:neumf:i:item:7", &x, &pos);
    assert_float_equal(x, 1.0f, 0.0);
    assert_int_equal(pos, 10);
    held(c->port, "fr:neumf:u:u1", &x, &pos);
    assert_int_equal(pos, 10);
    assert_int_equal(meta_field(c->port, "log_position"), 10);
    assert_int_equal(meta_field(c->port, "updated_ms"), 1000);
    assert_int_equal(pub_refused_older(b), 3); /* two vectors and the meta hash */
    assert_int_equal(pub_refused_older(a), 0);
    assert_int_equal(c->nfailed, 0); /* refused as older is not a failure */
    /* b catches up and passes a; then the same position writes */
    versioned_round(b, c, 300, 3.0f, 3000);
    held(c->port, "fr:neumf:i:item:7", &x, &pos);
    assert_float_equal(x, 3.0f, 0.0);
    assert_int_equal(pos, 300);
    assert_int_equal(meta_field(c->port, "log_position"), 300);
    c->pub = a;
    versioned_round(a, c, 300, 4.0f, 4000);
    held(c->port, "fr:neumf:i:item:7", &x, &pos);
    assert_float_equal(x, 4.0f, 0.0);
    /* a position past 2^32 compares as a number, byte by byte */
    versioned_round(a, c, (1ULL << 40) + 5, 5.0f, 5000);
    c->pub = b;
    versioned_round(b, c, (1ULL << 40) + 4, 6.0f, 6000);
    held(c->port, "fr:neumf:i:item:7", &x, &pos);
    assert_float_equal(x, 5.0f, 0.0);
    assert_int_equal(pos, (1ULL << 40) + 5);
    /* the script cache emptied: the round fails, the keys come back, and
     * the next round writes them */
    redisReply *rep = redisCommand(r, "SCRIPT FLUSH");
    freeReplyObject(rep);
    c->pub = a;
    c->nfailed = 0;
    versioned_round(a, c, (1ULL << 40) + 9, 7.0f, 7000);
    assert_true(c->nfailed >= 2);
    versioned_round(a, c, (1ULL << 40) + 9, 7.0f, 7000);
    held(c->port, "fr:neumf:i:item:7", &x, &pos);
    assert_float_equal(x, 7.0f, 0.0);
    assert_int_equal(pos, (1ULL << 40) + 9);
    redisFree(r);
    pub_free(b);
    c->pub = a; /* teardown frees it */
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as freshrecd: a write to a dead link fails, not the process */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_names),
        cmocka_unit_test_setup_teardown(test_vectors_and_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_ttl, setup_no_ttl, teardown),
        cmocka_unit_test_setup_teardown(test_item_index, setup_index, teardown),
        cmocka_unit_test_setup_teardown(test_redis_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_back_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_hangs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unconfirmed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_dies_mid_round, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versioned, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
