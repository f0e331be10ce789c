/* test_cluster.c — several real freshrecd members learning one model
 * through the model log ([cluster] model_topic), on librdkafka's mock
 * cluster (input topic "events" with 8 partitions, model topic "model" with
 * one) and a real redis-server, all on loopback:
 *
 *   three members     a seeded stream learned by three members: the
 *                     accepted ranges of the model log tile every input
 *                     partition from 0 to its end exactly once (events
 *                     learned = events produced), and once quiet the
 *                     members' shared state (item rows, dense block, their
 *                     optimizer state) has one digest;
 *   kill and stop     two members; one is SIGKILLed and a third starts: the
 *                     dead member's users go on from their rows in the log;
 *                     under load, a kill and a restart, then one member
 *                     SIGSTOPped past its session timeout and SIGCONTed:
 *                     its late windows are refused by every reader, and the
 *                     ledger still tiles every partition once; Redis refuses
 *                     the stopped member's older writes and its meta hash
 *                     never steps back;
 *   scale and faults  1 -> 3 -> 2 members under load, produce errors pushed
 *                     into the broker, the broker down for 2 s: the ledger
 *                     holds and the members agree;
 *   learn alike       one member and three on the same stream: their
 *                     prequential HR@10, each above a floor; and a
 *                     click-through model (Wide & Deep) from impressions
 *                     and clicks: their progressive AUC and logloss;
 *   checkpoints       a member killed and restarted on its checkpoint reads
 *                     the log from past it, and agrees; and one killed at
 *                     three random moments under load.
 *
 * The test reads the model log itself and judges it with the ledger
 * (proto/mlog.c), as every member does. Everything it starts is stopped
 * whatever the outcome. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ctrdata.h"
#include "event.h"
#include "harness.h"
#include "mlog.h"
#include "rng.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PARTS 8
#define MEMBERS 3
#define ITEMS 500

static int rport;
static harness_kafka_t K;
static pid_t redis = -1;
static pid_t member_pid[MEMBERS] = {-1, -1, -1};
static int member_port[MEMBERS];
static char member_log[MEMBERS][256];

static atomic_long produced; /* since the test began */
static long users = 500;
static long to_produce;
static double rate;
static pthread_t producer_thread;
static int producer_started;

/* ------------------------------------------------------------ members */

/* what a test sets beside the common keys below (NULL-terminated) */
#define TEST_KEYS 12
static const char *test_keys[TEST_KEYS];
/* "": no checkpoints; else each member's go to <ckpt_root>/m<i> */
static char ckpt_root[64];

static pid_t member_start(int i)
{
    /* a small NeuMF, its records compressed: the mock cluster keeps only
     * about 5 MB of the model log, and the test reads it all from its
     * start. The mock broker set down
     * leaves its connections open and silent: a request on one waits for
     * socket.timeout.ms (60 s by default) */
    static const char *const common[] = {"kafka.properties=socket.timeout.ms=5000,"
                                         "compression.type=zstd",
                                         "cluster.model_topic=model",
                                         "cluster.window_ms=300",
                                         "model.kind=neumf",
                                         "model.dim=8",
                                         "model.mlp=16,8",
                                         "kafka.session_timeout_ms=6000",
                                         "redis.publish_interval_ms=50"};
    const char *extra[32];
    int n = 0;
    for (size_t k = 0; k < sizeof(common) / sizeof(common[0]); k++)
        extra[n++] = common[k];
    for (int k = 0; k < TEST_KEYS && test_keys[k]; k++)
        extra[n++] = test_keys[k];
    static char dir[MEMBERS][128];
    if (ckpt_root[0]) {
        snprintf(dir[i], sizeof(dir[i]), "daemon.checkpoint_dir=%s/m%d", ckpt_root, i);
        extra[n++] = dir[i];
        extra[n++] = "daemon.checkpoint_interval_s=1";
    }
    extra[n] = NULL;
    member_port[i] = harness_free_port();
    member_pid[i] = harness_daemon_start(K.brokers, rport, member_port[i], extra, member_log[i]);
    return member_pid[i];
}

static void member_kill(int i, int sig)
{
    if (member_pid[i] <= 0)
        return;
    kill(member_pid[i], SIGCONT);
    kill(member_pid[i], sig);
    if (harness_wait(member_pid[i], 20000) < 0) {
        kill(member_pid[i], SIGKILL);
        harness_wait(member_pid[i], 5000);
    }
    member_pid[i] = -1;
}

static double metric(int i, const char *s)
{
    return harness_daemon_metric(member_port[i], s);
}

/* ------------------------------------------------------------ the stream */

/* to_produce clicks at rate per second, keyed by user: a user's events go
 * to one partition (Kafka's default partitioner hashes the key) */
static void *producer(void *arg)
{
    (void)arg;
    char buf[256], u[32], it[32];
    double t0 = harness_now_ms();
    unsigned long long x = 88172645463325252ull + (unsigned long long)atomic_load(&produced);
    long k = 0, base = atomic_load(&produced);
    while (k < to_produce) {
        long due = (long)((harness_now_ms() - t0) / 1000.0 * rate);
        if (due > to_produce)
            due = to_produce;
        for (; k < due; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            long user = (long)(x % (unsigned long long)users);
            /* a user's taste: items near its own slot, with popular ones mixed in */
            long item = (x >> 20) % 4 == 0 ? (long)((x >> 24) % 20)
                                           : (user * 7 + (long)((x >> 24) % 25)) % ITEMS;
            snprintf(u, sizeof(u), "u%ld", user);
            snprintf(it, sizeof(it), "i%ld", item);
            size_t len = event_encode(buf, sizeof(buf), u, strlen(u), it, strlen(it), "click", -1);
            harness_kafka_produce(&K, u, buf, len);
            atomic_store(&produced, base + k + 1);
        }
        rd_kafka_poll(K.prod, 0);
        usleep(5000);
    }
    harness_kafka_flush(&K, 60000);
    return NULL;
}

static void produce_start(long n, double per_s)
{
    to_produce = n;
    rate = per_s;
    assert_int_equal(pthread_create(&producer_thread, NULL, producer, NULL), 0);
    producer_started = 1;
}

static void produce_join(void)
{
    if (producer_started)
        pthread_join(producer_thread, NULL);
    producer_started = 0;
}

/* ------------------------------------------------------------ the log */

typedef struct {
    mlog_ledger_t L;
    long long covered[PARTS]; /* offsets covered by accepted windows */
    long records;
    long long steps; /* dense steps of the accepted windows */
} judged_t;

/* Reads the model log from its start to its end and judges every record as
 * the members do. 0, or -1 when a range breaks the tiling (the ledger's own
 * rule, checked again here from the ranges). */
static int judge_log(judged_t *j)
{
    memset(j, 0, sizeof(*j));
    mlog_ledger_init(&j->L);
    char e[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", K.brokers, e, sizeof(e));
    rd_kafka_conf_set(conf, "group.id", "test-judge", e, sizeof(e));
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", e, sizeof(e));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", e, sizeof(e));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof(e));
    assert_non_null(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, "model", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    static mlog_record_t rec;
    int rc = 0, first = 1;
    double t0 = harness_now_ms();
    while (harness_now_ms() - t0 < 30000) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(m);
            break;
        }
        if (!m->err && first) { /* the mock cluster dropped the log's start: too many bytes */
            first = 0;
            if (m->offset != 0)
                fail_msg("the model log starts at offset %lld, not 0", (long long)m->offset);
        }
        if (!m->err && mlog_decode(m->payload, m->len, &rec, e, sizeof(e)) == 0) {
            j->records++;
            int v = mlog_ledger_apply(&j->L, &rec, m->offset);
            if (v == MLOG_ACCEPTED && rec.kind == MLOG_WINDOW) {
                j->steps += rec.steps;
                for (int r = 0; r < rec.nranges; r++) {
                    int p = rec.ranges[r].partition;
                    if (p < 0 || p >= PARTS || rec.ranges[r].first != j->covered[p])
                        rc = -1;
                    else
                        j->covered[p] = rec.ranges[r].last + 1;
                }
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

/* The accepted ranges cover each partition from 0 to its end: every event
 * produced is learned once. Waits up to timeout_ms for the members to get
 * there. */
static void assert_tiled(judged_t *j, int timeout_ms)
{
    long long ends[PARTS];
    assert_int_equal(harness_kafka_ends(&K, PARTS, ends), 0);
    double t0 = harness_now_ms();
    int done;
    memset(j, 0, sizeof(*j));
    mlog_ledger_init(&j->L);
    do {
        mlog_ledger_free(&j->L);
        assert_int_equal(judge_log(j), 0);
        done = 1;
        for (int p = 0; p < PARTS; p++)
            done &= j->covered[p] == ends[p];
        if (!done)
            usleep(500000);
    } while (!done && harness_now_ms() - t0 < timeout_ms);
    if (!done) /* what the members were doing */
        for (int i = 0; i < MEMBERS; i++)
            if (member_pid[i] > 0)
                harness_log_tail(member_log[i], 30);
    long long sum = 0, want = 0;
    for (int p = 0; p < PARTS; p++) {
        sum += j->covered[p];
        want += ends[p];
        if (j->covered[p] != ends[p])
            print_message("partition %d: accepted ranges end at %lld, the partition at %lld\n", p,
                          j->covered[p], ends[p]);
    }
    print_message("model log: %ld records; accepted %llu, refused: not_owner %llu, unclaimed "
                  "%llu, overlap %llu, gap %llu, stale claims %llu; %lld events covered of %lld "
                  "produced\n",
                  j->records, (unsigned long long)j->L.verdicts[MLOG_ACCEPTED],
                  (unsigned long long)j->L.verdicts[MLOG_NOT_OWNER],
                  (unsigned long long)j->L.verdicts[MLOG_UNCLAIMED],
                  (unsigned long long)j->L.verdicts[MLOG_OVERLAP],
                  (unsigned long long)j->L.verdicts[MLOG_GAP],
                  (unsigned long long)j->L.verdicts[MLOG_STALE_CLAIM], sum, want);
    assert_true(done);
    assert_int_equal(sum, want);
    assert_int_equal(want, atomic_load(&produced));
}

/* Once every running member has read the whole log, their shared states
 * have one digest. */
static void assert_same_model(const judged_t *j, int timeout_ms)
{
    double t0 = harness_now_ms();
    int same = 0;
    double d0 = NAN;
    while (!same && harness_now_ms() - t0 < timeout_ms) {
        same = 1;
        d0 = NAN;
        for (int i = 0; i < MEMBERS; i++) {
            if (member_pid[i] <= 0)
                continue;
            double pos = metric(i, "freshrec_cluster_log_position");
            double d = metric(i, "freshrec_cluster_shared_digest");
            same &= pos >= (double)j->L.position;
            if (isnan(d0))
                d0 = d;
            same &= d == d0;
        }
        if (!same)
            usleep(200000);
    }
    for (int i = 0; i < MEMBERS; i++)
        if (member_pid[i] > 0)
            print_message("member %d: log position %.0f, digest %.0f, windows %.0f (%.0f bytes, "
                          "%.0f events), refused own %.0f, resyncs %.0f, record age %.3f s\n",
                          i, metric(i, "freshrec_cluster_log_position"),
                          metric(i, "freshrec_cluster_shared_digest"),
                          metric(i, "freshrec_cluster_windows_total"),
                          metric(i, "freshrec_cluster_window_bytes_total"),
                          metric(i, "freshrec_cluster_window_events_total"),
                          metric(i, "freshrec_cluster_refused_own_total"),
                          metric(i, "freshrec_cluster_resyncs_total"),
                          metric(i, "freshrec_cluster_record_age_seconds"));
    if (!same)
        for (int i = 0; i < MEMBERS; i++)
            if (member_pid[i] > 0)
                harness_log_tail(member_log[i], 15);
    assert_true(same);
}

static void wait_live(int i, int timeout_ms)
{
    double t0 = harness_now_ms();
    while (harness_now_ms() - t0 < timeout_ms) {
        if (metric(i, "freshrec_cluster_partitions_live") > 0)
            return;
        usleep(100000);
    }
    harness_log_tail(member_log[i], 30);
    fail_msg("member %d owns no partition after %d ms", i, timeout_ms);
}

/* Member i's copy of user u's vector (its published form) into v; its dim,
 * or 0 when it has none. */
static int user_vector(int i, int u, float *v, int cap)
{
    static char body[1 << 16];
    char path[64];
    snprintf(path, sizeof(path), "/vector?user=u%d", u);
    if (harness_http_get(member_port[i], path, body, sizeof(body)) != 200)
        return 0;
    json_t *root = json_loads(body, 0, NULL), *a = root ? json_object_get(root, "vector") : NULL;
    int n = 0;
    for (size_t k = 0; a && k < json_array_size(a) && n < cap; k++)
        v[n++] = (float)json_number_value(json_array_get(a, k));
    json_decref(root);
    return n;
}

static double cosine(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int k = 0; k < n; k++)
        ab += (double)a[k] * b[k], aa += (double)a[k] * a[k], bb += (double)b[k] * b[k];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

/* Redis as the members left it once quiet: the meta hash's log_position
 * (the model-log records its dense block reflects) and the largest position
 * in the trailers of users' vectors. */
static void redis_positions(long long *meta, long long *user_max, int *users_seen)
{
    redisContext *r = redisConnect("127.0.0.1", rport);
    assert_true(r && !r->err);
    redisReply *m = redisCommand(r, "HGET fr:neumf:meta log_position");
    *meta = m && m->type == REDIS_REPLY_STRING ? strtoll(m->str, NULL, 10) : -1;
    freeReplyObject(m);
    *user_max = -1;
    *users_seen = 0;
    for (int u = 0; u < 50; u++) {
        redisReply *v = redisCommand(r, "GET fr:neumf:u:u%d", u);
        if (v && v->type == REDIS_REPLY_STRING && v->len >= 8) {
            long long pos = 0;
            for (size_t k = v->len - 8; k < v->len; k++) /* big-endian trailer */
                pos = pos << 8 | (unsigned char)v->str[k];
            *user_max = pos > *user_max ? pos : *user_max;
            (*users_seen)++;
        }
        freeReplyObject(v);
    }
    redisFree(r);
}

/* A watcher of the meta hash: its log_position read every 20 ms while a
 * test runs; a write that replaced a newer value would show as a step back. */
static atomic_int watch_stop;
static long long watch_max, watch_backs, watch_reads;
static void *watch_meta(void *arg)
{
    (void)arg;
    redisContext *r = redisConnect("127.0.0.1", rport);
    while (r && !r->err && !atomic_load(&watch_stop)) {
        redisReply *m = redisCommand(r, "HGET fr:neumf:meta log_position");
        if (m && m->type == REDIS_REPLY_STRING) {
            long long pos = strtoll(m->str, NULL, 10);
            watch_backs += pos < watch_max;
            watch_max = pos > watch_max ? pos : watch_max;
            watch_reads++;
        }
        freeReplyObject(m);
        usleep(20000);
    }
    if (r)
        redisFree(r);
    return NULL;
}

/* ------------------------------------------------------------ tests */

static int setup(void **state)
{
    (void)state;
    atomic_store(&produced, 0);
    memset(test_keys, 0, sizeof(test_keys));
    ckpt_root[0] = '\0';
    rport = harness_free_port();
    for (int i = 0; i < MEMBERS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "test_cluster_%d", i);
        harness_log_path(member_log[i], sizeof(member_log[i]), name);
    }
    if ((redis = harness_redis_start(rport)) < 0 || harness_kafka_start(&K, PARTS))
        return -1;
    rd_kafka_mock_topic_create(K.mock, "model", 1, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    produce_join();
    for (int i = 0; i < MEMBERS; i++)
        member_kill(i, SIGKILL);
    harness_kafka_stop(&K);
    harness_stop(redis);
    return ckpt_root[0] ? harness_rmtree(ckpt_root) : 0;
}

static void test_three_members_one_model(void **state)
{
    (void)state;
    for (int i = 0; i < MEMBERS; i++)
        assert_true(member_start(i) > 0);
    for (int i = 0; i < MEMBERS; i++)
        wait_live(i, 60000);
    produce_start(12000, 3000);
    produce_join();
    judged_t j;
    assert_tiled(&j, 60000);
    assert_same_model(&j, 30000);
    for (int i = 0; i < MEMBERS; i++) {
        assert_true(metric(i, "freshrec_cluster_windows_total") > 0);
        assert_true(metric(i, "freshrec_cluster_bad_records_total") == 0);
        assert_true(metric(i, "freshrec_cluster_log_gaps_total") == 0);
        assert_true(metric(i, "freshrec_cluster_record_age_p99_seconds") > 0);
    }
    /* Redis: versioned values; the meta hash holds the newest position,
     * and no user vector claims a later one */
    long long meta = -1, umax = -1;
    int seen = 0;
    double t0 = harness_now_ms();
    while (harness_now_ms() - t0 < 10000 && meta != j.L.position + 1) {
        redis_positions(&meta, &umax, &seen);
        usleep(100000);
    }
    print_message("Redis: meta hash at log position %lld (records read: %lld); users' vectors "
                  "at positions up to %lld (%d of 50 read)\n",
                  meta, (long long)j.L.position + 1, umax, seen);
    assert_int_equal(meta, j.L.position + 1);
    assert_true(seen >= 40);
    assert_true(umax >= 1 && umax <= meta);
    mlog_ledger_free(&j.L);
    for (int i = 0; i < MEMBERS; i++) {
        member_kill(i, SIGTERM);
    }
}

/* Two members learn; one is SIGKILLed and a third starts: the dead
 * member's users go on from the rows its accepted windows carried (not from
 * new random rows). Then, under load, a member is killed and another
 * started, and a member is SIGSTOPped past its session timeout: the others
 * take its partitions, and when it is SIGCONTed a late window of its, if it
 * sends one, is refused by every reader and counted by it. Whatever
 * happened, the accepted ranges tile every partition once, and the members
 * alive agree on the model. */
static void test_kill_and_stop(void **state)
{
    (void)state;
    enum { CHECKED = 40, VMAX = 64 };
    static float before[CHECKED][VMAX], after[VMAX];
    int dim[CHECKED];
    users = 200;
    assert_true(member_start(0) > 0 && member_start(1) > 0);
    wait_live(0, 60000);
    wait_live(1, 60000);
    produce_start(5000, 2500); /* 25 events per user */
    produce_join();
    judged_t j;
    assert_tiled(&j, 60000);
    mlog_ledger_free(&j.L);
    for (int u = 0; u < CHECKED; u++) /* every member holds every user's rows */
        dim[u] = user_vector(1, u, before[u], VMAX);

    /* a kill: member 1's partitions go to member 0 or the new member 2,
     * with its users' rows as its accepted windows left them */
    double t_kill = harness_now_ms();
    member_kill(1, SIGKILL);
    assert_true(member_start(2) > 0);
    double t_back = NAN;
    while (harness_now_ms() - t_kill < 60000) {
        if (metric(0, "freshrec_cluster_partitions_live") +
                metric(2, "freshrec_cluster_partitions_live") ==
            PARTS) {
            t_back = harness_now_ms();
            break;
        }
        usleep(100000);
    }
    assert_false(isnan(t_back));
    int n = 0;
    double worst = 1;
    for (int u = 0; u < CHECKED; u++) {
        if (!dim[u] || user_vector(2, u, after, VMAX) != dim[u])
            continue;
        double c = cosine(before[u], after, dim[u]);
        worst = c < worst ? c : worst;
        n++;
    }
    print_message("after a kill: every partition had an owner again in %.1f s; users' vectors "
                  "on the new member, cosine with the dead one's: lowest %.6f (%d users)\n",
                  (t_back - t_kill) / 1000.0, worst, n);
    assert_int_equal(n, CHECKED);
    assert_true(worst > 0.999);

    /* under load: a kill and a restart, then a member SIGSTOPped past its
     * session timeout while events keep coming; the meta hash watched */
    pthread_t watcher;
    atomic_store(&watch_stop, 0);
    watch_max = watch_backs = watch_reads = 0;
    assert_int_equal(pthread_create(&watcher, NULL, watch_meta, NULL), 0);
    produce_start(12000, 1000);
    usleep(2000000);
    member_kill(2, SIGKILL);
    assert_true(member_start(1) > 0);
    usleep(4000000);
    harness_signal(member_pid[0], SIGSTOP);
    double t_stop = harness_now_ms();
    while (harness_now_ms() - t_stop < 60000 &&
           metric(1, "freshrec_cluster_partitions_live") < PARTS)
        usleep(100000);
    print_message("member 0 stopped: member 1 owned all %d partitions after %.1f s\n", PARTS,
                  (harness_now_ms() - t_stop) / 1000.0);
    assert_true(metric(1, "freshrec_cluster_partitions_live") == PARTS);
    harness_signal(member_pid[0], SIGCONT);
    produce_join();
    assert_tiled(&j, 90000);
    assert_same_model(&j, 30000);
    print_message("refused: %llu window(s) of a member that had lost its partitions\n",
                  (unsigned long long)j.L.verdicts[MLOG_NOT_OWNER]);
    /* Whether the stopped member sends a late window depends on which of
     * its events runs first after SIGCONT: its window timer (the window it
     * had open goes out, and is refused here and counted there) or its log
     * reader (it reads member 1's claim first, its partitions are lost
     * there, and nothing more is sent). Both happen; either way nothing
     * late is accepted (assert_tiled). The refusal of late windows record
     * by record is test_mlog's. */
    assert_true(metric(0, "freshrec_cluster_refused_own_total") ==
                (double)j.L.verdicts[MLOG_NOT_OWNER]);
    /* the member that was stopped came back behind the log: Redis refused
     * its older writes, and the meta hash never went back */
    atomic_store(&watch_stop, 1);
    pthread_join(watcher, NULL);
    double older = metric(0, "freshrec_publish_refused_older_total");
    print_message("Redis: the meta hash read %lld times, last at log position %lld, %lld step(s) "
                  "back; the member stopped had %.0f older write(s) refused\n",
                  watch_reads, watch_max, watch_backs, older);
    assert_true(watch_reads > 100);
    assert_int_equal(watch_backs, 0);
    mlog_ledger_free(&j.L);

    /* Whether the stopped member wrote before it had read the log depends on
     * which of its overdue events ran first. So, for certain: every user's
     * key is given a value of a far later position (a writer ahead of both
     * members), and the users learn again: the members' writes are refused
     * and counted, and the later values stay byte for byte. */
    enum { PLANTED = 50 };
    redisContext *r = redisConnect("127.0.0.1", rport);
    assert_true(r && !r->err);
    unsigned char planted[4 * 8 + 8] = {0};
    for (int k = 0; k < 8; k++)
        planted[4 * 8 + k] = k == 2 ? 1 : 0; /* position 2^40, big-endian */
    for (int u = 0; u < PLANTED; u++)
        freeReplyObject(redisCommand(r, "SET fr:neumf:u:u%d %b", u, planted, sizeof(planted)));
    double before_older = metric(0, "freshrec_publish_refused_older_total") +
                          metric(1, "freshrec_publish_refused_older_total");
    produce_start(4000, 2000); /* 20 events per user: each planted user learns */
    produce_join();
    double refused = 0;
    double t1 = harness_now_ms();
    while (harness_now_ms() - t1 < 20000 && refused < PLANTED) {
        usleep(100000);
        refused = metric(0, "freshrec_publish_refused_older_total") +
                  metric(1, "freshrec_publish_refused_older_total") - before_older;
    }
    int kept = 0;
    for (int u = 0; u < PLANTED; u++) {
        redisReply *v = redisCommand(r, "GET fr:neumf:u:u%d", u);
        kept += v && v->type == REDIS_REPLY_STRING && v->len == sizeof(planted) &&
                memcmp(v->str, planted, sizeof(planted)) == 0;
        freeReplyObject(v);
    }
    redisFree(r);
    print_message("a value of a later position in %d users' keys: %.0f write(s) refused, %d of "
                  "%d values kept\n",
                  PLANTED, refused, kept, PLANTED);
    assert_true(refused >= PLANTED);
    assert_int_equal(kept, PLANTED);
}

/* Under load: one member, then three, then two (one stopped with SIGTERM);
 * then produce requests fail (errors pushed into the mock broker: every
 * client retries them) and the broker goes down for two seconds. The
 * ledger still tiles every partition once and the members agree. */
static void test_scale_and_faults(void **state)
{
    (void)state;
    users = 500;
    assert_true(member_start(0) > 0);
    wait_live(0, 60000);
    produce_start(14000, 1000);
    usleep(2000000);
    assert_true(member_start(1) > 0);
    usleep(2000000);
    assert_true(member_start(2) > 0);
    usleep(4000000);
    member_kill(1, SIGTERM); /* three to two */
    usleep(1000000);
    /* produce requests refused: the idempotent producers retry them */
    rd_kafka_mock_push_request_errors(
        K.mock, 0 /* Produce */, 4, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
    usleep(1000000);
    rd_kafka_mock_broker_set_down(K.mock, 1);
    usleep(2000000);
    rd_kafka_mock_broker_set_up(K.mock, 1);
    produce_join();
    judged_t j;
    assert_tiled(&j, 90000);
    assert_same_model(&j, 30000);
    for (int i = 0; i < MEMBERS; i++)
        if (member_pid[i] > 0)
            assert_true(metric(i, "freshrec_cluster_log_gaps_total") == 0);
    mlog_ledger_free(&j.L);
}

/* Starts members 0..n-1 and waits until every input partition is live on
 * one of them (each with its share: no rebalance once a stream comes). */
static void start_group(int n)
{
    for (int i = 0; i < n; i++) {
        assert_true(member_start(i) > 0);
        wait_live(i, 60000);
    }
    double t0 = harness_now_ms();
    int live = 0;
    while (harness_now_ms() - t0 < 60000 && live < PARTS) {
        live = 0;
        for (int i = 0; i < n; i++)
            live += (int)metric(i, "freshrec_cluster_partitions_live");
        usleep(100000);
    }
    assert_int_equal(live, PARTS);
}

/* The prequential HR@10 of a run: hits over ranked, summed over members. */
static double run_hr(int members, long events, double *ranked)
{
    /* the members first, each with its share of the partitions (no
     * rebalance mid-stream), then the stream as fast as it goes: they learn
     * from a backlog, in full micro-batches, and take as many dense steps
     * (printed). At 20,000 events/s three members, each keeping up with a
     * third of it, learned each Kafka batch as it came, in part batches, and
     * their dense block took 2-3 times one member's Adam steps per event
     * (the README's "Several members"). */
    start_group(members);
    produce_start(events, 1e9);
    produce_join();
    judged_t j;
    assert_tiled(&j, 90000);
    assert_same_model(&j, 30000);
    print_message("%d member(s): %ld records, %lld dense steps for %ld events (%.0f per step)\n",
                  members, j.records, j.steps, events, (double)events / (double)j.steps);
    mlog_ledger_free(&j.L);
    double hits = 0, n = 0;
    for (int i = 0; i < members; i++) {
        hits += metric(i, "freshrec_prequential_hits_total");
        n += metric(i, "freshrec_prequential_ranked_total");
    }
    *ranked = n;
    for (int i = 0; i < members; i++)
        member_kill(i, SIGTERM);
    return n > 0 ? hits / n : NAN;
}

/* One member and three learn the same stream (the same seed, every event
 * ranked before it is learned, from a backlog); the shared state agrees and
 * the prequential HR@10 of both is printed. Measured over 6 runs: one member
 * 0.3245-0.3277, three 0.3207-0.3252, three minus one -0.006 to +0.001 (94
 * and 95 dense steps); under ASan and UBSan, which slow the members several
 * times, -0.0085 and -0.008 in 2 runs. Later, 6 more runs (3 on the code
 * before experience replay, 3 after): three minus one -0.0014 to -0.0085,
 * and one clean-clone CI run -0.0102. Each figure is a share of 24,000
 * events ranked against 100 sampled items, so the difference of two runs
 * has a standard error of about 0.0043 from the sampling alone. Asserted:
 * each above a floor under its measured range, and the two within 0.01
 * (0.015 under ASan) or three standard errors of their difference,
 * whichever is wider (0.0128 at these figures). Before
 * windows were shared among the members in whole micro-batches ([cluster]
 * window_max_events is the group's), three were 0.020-0.033 behind; a
 * member that learned on while its own windows were out (0.16-0.29 for one
 * member) falls below the floor. */
#ifdef __SANITIZE_ADDRESS__ /* members run several times slower */
#define SAME_HR 0.015
#else
#define SAME_HR 0.01
#endif
static void test_one_and_three_members_learn_alike(void **state)
{
    users = 500;
    test_keys[0] = "model.preq_rate=1";
    double n1, n3;
    double hr1 = run_hr(1, 24000, &n1);
    assert_int_equal(teardown(state), 0);
    assert_int_equal(setup(state), 0);
    test_keys[0] = "model.preq_rate=1";
    double hr3 = run_hr(3, 24000, &n3);
    print_message("prequential HR@10: one member %.4f (%.0f ranked), three members %.4f (%.0f "
                  "ranked)\n",
                  hr1, n1, hr3, n3);
    assert_true(n1 > 20000 && n3 > 20000);
    assert_true(hr1 > 0.31);
    assert_true(hr3 > 0.31);
    double se = sqrt(hr1 * (1.0 - hr1) / n1 + hr3 * (1.0 - hr3) / n3);
    print_message("three minus one %+.4f; allowed %.4f (3 standard errors: %.4f)\n", hr3 - hr1,
                  fmax(SAME_HR, 3.0 * se), 3.0 * se);
    assert_true(fabs(hr1 - hr3) < fmax(SAME_HR, 3.0 * se));
}

/* ------------------------------------------------------------ click-through */

/* One run of the click-through stream: the members' progressive AUC and
 * logloss, each weighted by the examples its member learned (the logloss
 * is over every example, so its weighted mean is the whole stream's; AUC
 * is each member's over its own examples). */
static void run_ctr(int members, const ctrdata_t *cd, double *auc, double *logloss,
                    double *examples)
{
    static const char *const keys[] = {"model.kind=widedeep",
                                       "model.deep=16",
                                       "model.cat_fields=device,cat3",
                                       "model.num_fields=d0,d1,d2",
                                       "model.batch_events=64",
                                       "model.wide_bits=16",
                                       "model.auc_window=1000000",
                                       "events.label_window_ms=1000",
                                       NULL};
    for (int k = 0; keys[k]; k++)
        test_keys[k] = keys[k];
    start_group(members);
    /* a planted item × device interaction and dense features, produced at once */
    atomic_store(&produced, harness_kafka_produce_ctr(&K, cd, NULL));
    assert_int_equal(harness_kafka_flush(&K, 60000), 0);
    judged_t j;
    assert_tiled(&j, 120000);
    assert_same_model(&j, 30000);
    print_message("%d member(s): %ld records, %lld dense steps\n", members, j.records, j.steps);
    mlog_ledger_free(&j.L);
    double a = 0, l = 0, n = 0;
    for (int i = 0; i < members; i++) {
        double ni = metric(i, "freshrec_events_learned_total");
        a += ni * metric(i, "freshrec_auc");
        l += ni * metric(i, "freshrec_logloss");
        n += ni;
    }
    *auc = a / n, *logloss = l / n, *examples = n;
    for (int i = 0; i < members; i++)
        member_kill(i, SIGTERM);
}

/* A click-through model (Wide & Deep) learned by one member and by three
 * from the same impressions and clicks, produced ahead of them: their
 * progressive AUC within 0.01 and logloss within 0.01, each above a floor;
 * the three members' shared state agrees and the ledger tiles. */
static void test_ctr_members_learn_alike(void **state)
{
    ctrgen_config_t g;
    ctrgen_config_default(&g);
    g.examples = 40000;
    ctrdata_t cd;
    ctrdata_init(&cd);
    char err[256];
    assert_int_equal(ctrdata_generate(&cd, &g, err, sizeof(err)), 0);
    double auc1, ll1, n1, auc3, ll3, n3;
    run_ctr(1, &cd, &auc1, &ll1, &n1);
    assert_int_equal(teardown(state), 0);
    assert_int_equal(setup(state), 0);
    run_ctr(3, &cd, &auc3, &ll3, &n3);
    print_message("progressive AUC: one member %.4f, three members %.4f; logloss %.4f, %.4f; "
                  "examples learned %.0f, %.0f\n",
                  auc1, auc3, ll1, ll3, n1, n3);
    ctrdata_free(&cd);
    /* all but the impressions of the last label window, which wait */
    assert_true(n1 > 39000 && n3 > 39000);
    assert_true(auc1 > 0.6 && auc3 > 0.6);
    assert_true(fabs(auc1 - auc3) < SAME_HR);
    assert_true(fabs(ll1 - ll3) < SAME_HR);
}

/* Members with checkpoints: one is SIGKILLed under load and restarted on
 * its checkpoint. It reads the model log from past the position its
 * checkpoint holds, not from the start, and once quiet its shared state is
 * the other member's byte for byte, every partition tiled once. */
static void test_member_restarts_from_checkpoint(void **state)
{
    (void)state;
    users = 500;
    snprintf(ckpt_root, sizeof(ckpt_root), "/tmp/fr-cluster-XXXXXX");
    assert_non_null(mkdtemp(ckpt_root));
    assert_true(member_start(0) > 0 && member_start(1) > 0);
    wait_live(0, 60000);
    wait_live(1, 60000);
    produce_start(10000, 1500);
    usleep(3500000); /* past a few checkpoints (one a second) */
    member_kill(1, SIGKILL);
    assert_true(member_start(1) > 0);
    produce_join();
    judged_t j;
    assert_tiled(&j, 90000);
    assert_same_model(&j, 30000);
    mlog_ledger_free(&j.L);
    /* the second start restored its checkpoint and read the log from past 0 */
    FILE *f = fopen(member_log[1], "r");
    assert_non_null(f);
    char line[512];
    long long from = -1;
    int restored = 0;
    while (fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "read from offset ");
        if (p)
            from = strtoll(p + 17, NULL, 10);
        restored += strstr(line, "checkpoint: restored") != NULL;
    }
    fclose(f);
    print_message("restarted member: checkpoint restored %d time(s), model log read from offset "
                  "%lld\n",
                  restored, from);
    assert_int_equal(restored, 1);
    assert_true(from > 0);
}

/* Two members with checkpoints under load; one is SIGKILLed at three random
 * moments (0.3 to 3 s after it owns partitions again; FRESHREC_SEED replays
 * them) and restarted each time: the ledger tiles every partition once and
 * the members agree. Prints how long the partitions went without an owner. */
static void test_kill_at_random_moments(void **state)
{
    (void)state;
    uint64_t seed = harness_seed("these kill moments");
    rng_t rng;
    rng_seed(&rng, seed);
    users = 500;
    test_keys[0] = "kafka.session_timeout_ms=3000"; /* partitions move on sooner */
    /* half a minute of a slow stream in about 5 MB of model log */
    test_keys[1] = "cluster.window_ms=1000";
    test_keys[2] = "model.negatives=2";
    snprintf(ckpt_root, sizeof(ckpt_root), "/tmp/fr-cluster-XXXXXX");
    assert_non_null(mkdtemp(ckpt_root));
    /* one after the other, as start_group does: started together under
     * ASan, member 1 once took all 8 partitions and member 0 was never
     * assigned one in 60 s (its group join to the mock cluster hung; no
     * rebalance followed). Members joining at once stay covered by
     * test_three_members_one_model. */
    assert_true(member_start(0) > 0);
    wait_live(0, 60000);
    assert_true(member_start(1) > 0);
    wait_live(1, 60000);
    produce_start(18000, 600); /* 30 s: the three kills come while it runs */
    for (int k = 0; k < 3; k++) {
        wait_live(1, 60000);
        double delay = 0.3 + 2.7 * rng_double(&rng);
        usleep((useconds_t)(delay * 1e6));
        long killed_at = atomic_load(&produced);
        member_kill(1, SIGKILL);
        double t_kill = harness_now_ms();
        assert_true(member_start(1) > 0);
        double back = NAN;
        while (harness_now_ms() - t_kill < 60000) {
            if (metric(0, "freshrec_cluster_partitions_live") +
                    metric(1, "freshrec_cluster_partitions_live") ==
                PARTS) {
                back = (harness_now_ms() - t_kill) / 1000.0;
                break;
            }
            usleep(100000);
        }
        print_message("kill %d, %.2f s after member 1 owned partitions (%ld events produced "
                      "then): every partition owned again %.1f s later\n",
                      k + 1, delay, killed_at, back);
        assert_false(isnan(back));
    }
    assert_true(atomic_load(&produced) < 18000); /* the kills came under load */
    produce_join();
    judged_t j;
    assert_tiled(&j, 90000);
    assert_same_model(&j, 30000);
    mlog_ledger_free(&j.L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_three_members_one_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_and_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scale_and_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_and_three_members_learn_alike, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctr_members_learn_alike, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_restarts_from_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_at_random_moments, setup, teardown),
    };
    if (getenv("CMOCKA_TEST_FILTER")) /* one test: CMOCKA_TEST_FILTER=test_kill_and_stop */
        cmocka_set_test_filter(getenv("CMOCKA_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
