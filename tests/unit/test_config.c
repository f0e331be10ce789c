/* test_config.c — the config table: defaults, the INI file and its errors
 * (a key given twice among them), --set overrides, cross-key validation with
 * every check start-up makes and the file:line or --set it names, SIGHUP
 * reload and the hot keys it reports, config_write round trips, and
 * systemd/freshrec.conf kept in step with the table.
 * Not for: what the daemon does with a value. Run from the repo root (make
 * test), which the example config's path is relative to. */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "event.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXAMPLE_CONF "systemd/freshrec.conf"

/* ---- helpers ---- */

static char *tmp_write(const char *content)
{
    char *path = strdup("/tmp/test_config_XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fputs(content, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

static void tmp_remove(char *path)
{
    unlink(path);
    free(path);
}

/* config_write's text: equal texts mean equal values, padding aside. */
static char *written(const fr_config_t *c)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    assert_non_null(f);
    config_write(c, f);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\" lacks \"%s\"", hay, needle);
}

static void assert_lacks(const char *hay, const char *needle)
{
    if (needle && strstr(hay, needle))
        fail_msg("\"%s\" should not contain \"%s\"", hay, needle);
}

static char *repeat(char ch, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

/* Equal values; where they came from (fr_config_t.src) aside. */
static void assert_values_equal(const fr_config_t *a, const fr_config_t *b)
{
    assert_memory_equal(a, b, offsetof(fr_config_t, src));
}

static size_t nkeys(void)
{
    const char *s, *k;
    size_t n = 0;
    while (config_key(n, &s, &k) == 0)
        n++;
    return n;
}

/* ---- defaults and the table ---- */

static void test_defaults(void **state)
{
    (void)state;
    fr_config_t c;
    config_defaults(&c);
    const struct {
        const char *key;
        int got, want;
    } ints[] = {
        {"kafka.batch_max", c.batch_max, 1000},
        {"kafka.decode_thread", c.decode_thread, 1},
        {"kafka.embedded_partitions", c.embedded_partitions, 4},
        {"redis.port", c.redis_port, 6379},
        {"redis.vector_ttl_s", c.vector_ttl_s, 604800},
        {"redis.publish_interval_ms", c.publish_interval_ms, 50},
        {"redis.item_publish_interval_ms", c.item_publish_interval_ms, 200},
        {"redis.publish_max_keys", c.publish_max_keys, 100000},
        {"redis.reconnect_max_ms", c.reconnect_max_ms, 5000},
        {"redis.ack_timeout_ms", c.redis_ack_timeout_ms, 3000},
        {"redis.cluster", c.redis_cluster, 0},
        {"model.dim", c.dim, 32},
        {"model.negatives", c.negatives, 4},
        {"model.pool", c.pool, 12},
        {"model.batch_events", c.batch_events, 256},
        {"model.feature_dim", c.feature_dim, 8},
        {"model.threads", c.threads, 1},
        {"model.max_users", c.max_users, 0},
        {"model.max_items", c.max_items, 0},
        {"model.ring_capacity", c.ring_capacity, 100000},
        {"model.admit_after", c.admit_after, 1},
        {"model.expire_s", c.expire_s, 0},
        {"model.seed", c.seed, 1},
        {"model.auc_window", c.auc_window, 10000},
        {"model.history", c.history, 8},
        {"events.label_window_ms", c.label_window_ms, 1800000},
        {"events.max_future_skew_ms", c.max_future_skew_ms, 600000},
        {"events.max_event_bytes", c.max_event_bytes, 65536},
        {"stats.port", c.stats_port, 9464},
        {"daemon.shutdown_timeout_ms", c.shutdown_timeout_ms, 10000},
        {"cluster.window_ms", c.window_ms, 200},
        {"cluster.window_max_events", c.window_max_events, 500},
    };
    const struct {
        const char *key;
        double got, want;
    } dbls[] = {
        {"model.alpha", c.alpha, 0.75},
        {"model.lr_sparse", c.lr_sparse, 0.03},
        {"model.lr_dense", c.lr_dense, 0.005},
        {"model.l2_sparse", c.l2_sparse, 0},
        {"model.l2_dense", c.l2_dense, 0.00003},
        {"model.init_std", c.init_std, 0.01},
        {"model.preq_rate", c.preq_rate, 0.01},
        {"model.history_decay", c.history_decay, 0.75},
        {"model.user_weight", c.user_weight, 0.5},
        {"model.transition_lr", c.transition_lr, 0},
        {"model.replay", c.replay, 0},
    };
    const struct {
        const char *key, *got, *want;
    } strs[] = {
        {"kafka.brokers", c.brokers, ""},
        {"kafka.topics", c.topics, "events"},
        {"kafka.group_id", c.group_id, "freshrec"},
        {"kafka.dead_letter_topic", c.dead_letter_topic, "events.dead"},
        {"kafka.assignor", c.assignor, "cooperative-sticky"},
        {"redis.host", c.redis_host, "127.0.0.1"},
        {"redis.password", c.redis_password, ""},
        {"redis.nodes", c.redis_nodes, ""},
        {"redis.key_prefix", c.key_prefix, "fr"},
        {"model.kind", c.model, "neumf"},
        {"model.mlp", c.mlp, "64,32,16,8"},
        {"model.sampler", c.sampler, "uniform"},
        {"model.loss", c.loss, "bce"},
        {"model.optimizer", c.optimizer, "adagrad"},
        {"events.kinds", c.kinds, "purchase:5"},
        {"stats.listen", c.stats_listen, "127.0.0.1"},
        {"daemon.log_level", c.log_level, "info"},
        {"cluster.model_topic", c.model_topic, ""},
        {"cluster.member", c.member, ""},
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        if (ints[i].got != ints[i].want)
            fail_msg("%s: %d, expected %d", ints[i].key, ints[i].got, ints[i].want);
    for (size_t i = 0; i < sizeof(dbls) / sizeof(dbls[0]); i++)
        if (dbls[i].got != dbls[i].want)
            fail_msg("%s: %g, expected %g", dbls[i].key, dbls[i].got, dbls[i].want);
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if (strcmp(strs[i].got, strs[i].want))
            fail_msg("%s: \"%s\", expected \"%s\"", strs[i].key, strs[i].got, strs[i].want);

    char err[512] = "";
    if (config_validate(&c, err, sizeof(err)) != 0)
        fail_msg("defaults do not validate: %s", err);
}

static void test_key_table(void **state)
{
    (void)state;
    size_t n = nkeys();
    assert_int_equal(n, 80); /* the fields of fr_config_t */
    for (size_t i = 0; i < n; i++) {
        const char *si, *ki, *sj, *kj;
        assert_int_equal(config_key(i, &si, &ki), 0);
        for (size_t j = 0; j < i; j++) {
            assert_int_equal(config_key(j, &sj, &kj), 0);
            if (!strcmp(si, sj) && !strcmp(ki, kj))
                fail_msg("[%s] %s twice in the table", si, ki);
        }
    }
    const char *s, *k;
    assert_int_equal(config_key(n, &s, &k), -1);
    assert_int_equal(config_key((size_t)-1, &s, &k), -1);
}

/* ---- config_load ---- */

static void test_load_every_section(void **state)
{
    (void)state;
    char *path = tmp_write("# a comment\n"
                           "; another comment\n"
                           "\n"
                           "[kafka]\n"
                           "brokers = k1:9092,k2:9092\n"
                           "topics = clicks,views ; an inline comment\n"
                           "    group_id = g1\n"
                           "assignor=range\n"
                           "[redis]\n"
                           "host = redis.local\n"
                           "port = 6380\n"
                           "password = s3cret#x\n"
                           "key_prefix = rec.v2\n"
                           "[model]\n"
                           "dim = 64\n"
                           "mlp = 128,64,32\n"
                           "lr_sparse = 0.05\n"
                           "alpha = 1e-1\n"
                           "sampler = hard\n"
                           "seed = -0\n"
                           "[events]\n"
                           "kinds = purchase:5,like:2\n"
                           "[stats]\n"
                           "port = 0\n"
                           "[daemon]\n"
                           "log_level = debug\n"
                           "[model]\n"
                           "init_std = 0.02\n");
    fr_config_t c;
    char err[512] = "";
    config_defaults(&c);
    assert_int_equal(config_set(&c, "model.negatives=9", err, sizeof(err)), 0);
    if (config_load(&c, path, err, sizeof(err)) != 0)
        fail_msg("load: %s", err);

    assert_string_equal(c.brokers, "k1:9092,k2:9092");
    assert_string_equal(c.topics, "clicks,views");
    assert_string_equal(c.group_id, "g1");
    assert_string_equal(c.assignor, "range");
    assert_string_equal(c.redis_host, "redis.local");
    assert_int_equal(c.redis_port, 6380);
    assert_string_equal(c.redis_password, "s3cret#x");
    assert_string_equal(c.key_prefix, "rec.v2");
    assert_int_equal(c.dim, 64);
    assert_true(c.init_std == 0.02); /* a section may open twice */
    assert_string_equal(c.mlp, "128,64,32");
    assert_true(c.lr_sparse == 0.05);
    assert_true(c.alpha == 0.1);
    assert_string_equal(c.sampler, "hard");
    assert_int_equal(c.seed, 0);
    assert_string_equal(c.kinds, "purchase:5,like:2");
    assert_int_equal(c.stats_port, 0);
    assert_string_equal(c.log_level, "debug");
    /* keys the file leaves out keep what c held */
    assert_int_equal(c.negatives, 9);
    assert_int_equal(c.batch_events, 256);
    assert_string_equal(c.dead_letter_topic, "events.dead");
    assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
    tmp_remove(path);
}

static void test_load_errors(void **state)
{
    (void)state;
    char *long_brokers = repeat('b', 300);
    char *long_prefix = repeat('p', 65);
    char *long_password = repeat('S', 300);
    char *long_line = repeat('x', 5000);
    char brokers_file[512], prefix_file[256], password_file[512], line_file[5100];
    snprintf(brokers_file, sizeof(brokers_file), "[kafka]\nbrokers = %s\n", long_brokers);
    snprintf(prefix_file, sizeof(prefix_file), "[redis]\nkey_prefix = %s\n", long_prefix);
    snprintf(password_file, sizeof(password_file), "[redis]\npassword = %s\n", long_password);
    snprintf(line_file, sizeof(line_file), "[kafka]\nbrokers = %s\n", long_line);

    const struct {
        const char *content;
        const char *want;   /* after "<path>" */
        const char *absent; /* must not appear, e.g. a password */
    } cases[] = {
        {"[kafka]\nbrokers = a\n[foo]\nx = 1\n", ":3: unknown section [foo]", NULL},
        {"[model]\ndim = 8\n[bogus]\n", ":3: unknown section [bogus]", NULL},
        {"[model]\ndimm = 3\n", ":2: unknown key [model] dimm", NULL},
        {"[redis]\ndim = 3\n", ":2: unknown key [redis] dim", NULL},
        {"dim = 3\n", ":1: key dim before any [section]", NULL},
        {"[model]\n\ndim = 0\n", ":3: [model] dim = 0: must be in [1, 1024]", NULL},
        {"[model]\ndim = 1025\n", ":2: [model] dim = 1025: must be in [1, 1024]", NULL},
        {"[model]\ndim = -3\n", ":2: [model] dim = -3: must be in [1, 1024]", NULL},
        {"[redis]\nport = http\n", ":2: [redis] port = http: expected a whole number", NULL},
        {"[model]\ndim = 12abc\n", ":2: [model] dim = 12abc: expected a whole number", NULL},
        {"[model]\ndim = 1.5\n", ":2: [model] dim = 1.5: expected a whole number", NULL},
        {"[model]\ndim =\n", ":2: [model] dim = : expected a whole number", NULL},
        {"[model]\nseed = 99999999999999999999\n",
         ":2: [model] seed = 99999999999999999999: must be in [0, 2147483647]", NULL},
        {"[model]\nseed = 2147483648\n",
         ":2: [model] seed = 2147483648: must be in [0, 2147483647]", NULL},
        {"[model]\nalpha = 0.5x\n", ":2: [model] alpha = 0.5x: expected a number", NULL},
        {"[model]\nalpha = nan\n", ":2: [model] alpha = nan: expected a number", NULL},
        {"[model]\nalpha = -inf\n", ":2: [model] alpha = -inf: must be in [0, 2]", NULL},
        {"[model]\nalpha = 2.5\n", ":2: [model] alpha = 2.5: must be in [0, 2]", NULL},
        {"[model]\nlr_sparse = 0\n", ":2: [model] lr_sparse = 0: must be in (0, 100]", NULL},
        {"[model]\nsampler = fancy\n",
         ":2: [model] sampler = fancy: expected one of uniform, popularity, inbatch, hard", NULL},
        {"[daemon]\nlog_level = INFO\n",
         ":2: [daemon] log_level = INFO: expected one of error, warn, info, debug", NULL},
        {brokers_file, ":2: [kafka] brokers = bbbb", NULL},
        {brokers_file, "...: longer than 255 bytes", NULL},
        {prefix_file, ":2: [redis] key_prefix = pppp", NULL},
        {prefix_file, ": longer than 64 bytes", NULL},
        {"[redis]\nkey_prefix = f:r\n", ":2: [redis] key_prefix = f:r: only letters", NULL},
        {"[kafka]\ntopics =\n", ":2: [kafka] topics = : must not be empty", NULL},
        {password_file, ":2: [redis] password: invalid value: longer than 255 bytes", "SSS"},
        {"[model]\ndim 32\n", ":2: syntax error", NULL},
        {"[model\ndim = 32\n", ":1: syntax error", NULL},
        {"[model]\ndim = 0\nnegatives = 0\n", ":2: [model] dim = 0", NULL}, /* the first */
        {line_file, ":2: line longer than", NULL},
        /* a key twice in a file is refused, not silently the last value */
        {"[model]\ndim = 8\n\ndim = 9\n", ":4: [model] dim given twice (first at line 2)", NULL},
        {"[model]\ndim = 8\n[redis]\nport = 1\n[model]\ndim = 8\n",
         ":6: [model] dim given twice (first at line 2)", NULL},
        {"[redis]\npassword = a\npassword = hunter2\n", ":3: [redis] password given twice",
         "hunter2"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *path = tmp_write(cases[i].content);
        fr_config_t c, before;
        char err[512] = "";
        config_defaults(&c);
        before = c;
        if (config_load(&c, path, err, sizeof(err)) != -1)
            fail_msg("case %zu (%s) loaded", i, cases[i].want);
        if (strncmp(err, path, strlen(path)))
            fail_msg("case %zu: \"%s\" does not start with the path %s", i, err, path);
        assert_contains(err + strlen(path), cases[i].want);
        assert_lacks(err, cases[i].absent);
        assert_memory_equal(&c, &before, sizeof(c)); /* untouched */
        tmp_remove(path);
    }
    free(long_brokers);
    free(long_prefix);
    free(long_password);
    free(long_line);
}

static void test_load_missing_file(void **state)
{
    (void)state;
    const char *path = "/nonexistent/freshrec/freshrec.conf";
    fr_config_t c;
    char err[512] = "";
    config_defaults(&c);
    assert_int_equal(config_load(&c, path, err, sizeof(err)), -1);
    assert_contains(err, path);
    assert_contains(err, strerror(ENOENT));
}

/* ---- config_set ---- */

static void test_set(void **state)
{
    (void)state;
    fr_config_t c;
    char err[512];
    config_defaults(&c);
    const char *ok[] = {
        "model.dim=64",       " model.lr_sparse = 0.1 ",  "kafka.brokers=",
        "redis.password=p=w", "model.sampler=popularity", "redis.port=+6380",
        "model.l2_dense=.5",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (config_set(&c, ok[i], err, sizeof(err)) != 0)
            fail_msg("%s: %s", ok[i], err);
    assert_int_equal(c.dim, 64);
    assert_true(c.lr_sparse == 0.1);
    assert_string_equal(c.brokers, "");
    assert_string_equal(c.redis_password, "p=w");
    assert_string_equal(c.sampler, "popularity");
    assert_int_equal(c.redis_port, 6380);
    assert_true(c.l2_dense == 0.5);

    char *long_password = repeat('S', 300);
    char set_password[400];
    snprintf(set_password, sizeof(set_password), "redis.password=%s", long_password);
    const struct {
        const char *assignment, *want, *absent;
    } bad[] = {
        {"model.dim=0", "model.dim = 0: must be in [1, 1024]", NULL},
        {"model.dim=1.5", "model.dim = 1.5: expected a whole number", NULL},
        {"model.dim", "malformed", NULL},
        {"dim=3", "malformed", NULL},
        {".dim=3", "malformed", NULL},
        {"model.=3", "malformed", NULL},
        {"=3", "malformed", NULL},
        {"model.dimm=3", "unknown key model.dimm", NULL},
        {"foo.bar=1", "unknown section [foo]", NULL},
        {"model.sampler=fancy",
         "model.sampler = fancy: expected one of uniform, popularity, inbatch, hard", NULL},
        {"model.lr_dense=0", "model.lr_dense = 0: must be in (0, 100]", NULL},
        {"redis.key_prefix=a b", "redis.key_prefix = a b: only letters", NULL},
        {"redis.password=ab ;cd", "redis.password: invalid value", "ab ;cd"},
        {set_password, "redis.password: invalid value: longer than 255 bytes", "SSS"},
        {"redis.passwordhunter2", "malformed", "hunter2"},
        {"kafka.topics=a\nb", "kafka.topics = a\nb: control characters", NULL},
    };
    fr_config_t before = c;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (config_set(&c, bad[i].assignment, err, sizeof(err)) != -1)
            fail_msg("%s was accepted", bad[i].assignment);
        assert_contains(err, bad[i].want);
        assert_lacks(err, bad[i].absent);
        assert_memory_equal(&c, &before, sizeof(c));
    }
    free(long_password);
}

/* ---- config_validate ---- */

static void test_validate(void **state)
{
    (void)state;
    const struct {
        const char *set[2];
        const char *want; /* NULL: valid */
    } cases[] = {
        {{"model.mlp=63,32"}, "[model] mlp = 63,32: the first width"},
        {{"model.mlp=64"}, "[model] mlp"},
        {{"model.mlp=64,32,16,8,4,2,1,1,1"}, "[model] mlp"},
        {{"model.mlp=64,0"}, "[model] mlp"},
        {{"model.mlp=64,,32"}, "[model] mlp"},
        {{"model.mlp=64,32,"}, "[model] mlp = 64,32,: element 3 is empty"},
        {{"model.mlp=64,5000"}, "[model] mlp"},
        {{"model.mlp=sixty,four"}, "[model] mlp"},
        {{"kafka.topics=events,,clicks"}, "[kafka] topics = events,,clicks: empty entry"},
        {{"kafka.topics=,events"}, "[kafka] topics = ,events: empty entry"},
        {{"kafka.topics=events,"}, "[kafka] topics = events,: empty entry"},
        {{"kafka.topics=my events"}, "[kafka] topics = my events: space"},
        {{"kafka.topics=events,clicks", "kafka.dead_letter_topic=clicks"},
         "[kafka] dead_letter_topic = clicks: also in [kafka] topics"},
        {{"kafka.dead_letter_topic=a,b"}, "[kafka] dead_letter_topic = a,b: one topic"},
        {{"model.mlp=2,1"}, NULL},
        {{"model.mlp=64,32,16,8,4,2,1,1"}, NULL},
        {{"kafka.dead_letter_topic=", "events.kinds="}, NULL},
        {{"kafka.topics=events,clicks", "kafka.dead_letter_topic=events.dead"}, NULL},
        {{"cluster.model_topic=events"}, "[cluster] model_topic = events: also an input"},
        {{"cluster.model_topic=events.dead"}, "[cluster] model_topic = events.dead: also an"},
        {{"cluster.model_topic=model", "daemon.checkpoint_dir=/tmp/x"}, NULL},
        {{"cluster.model_topic=model", "model.kind=hmf"},
         "without tower features or history (hmf)"},
        {{"cluster.model_topic=model", "model.kind=dcn"}, NULL},
        {{"model.replay=2"}, NULL},
        {{"model.replay=2", "model.kind=hmf"}, NULL},
        {{"model.replay=2", "model.kind=dcn"}, NULL},
        {{"model.replay=1", "cluster.model_topic=model"},
         "[model] replay = 1: members sharing one model"},
        {{"cluster.model_topic=model", "model.admit_after=2"}, "admit_after 1, not 2"},
        {{"cluster.model_topic=model"}, NULL},
        {{"redis.nodes=10.0.0.1:7000"}, "[redis] nodes = 10.0.0.1:7000: only with [redis] cluster"},
        {{"redis.cluster=1", "redis.nodes=10.0.0.1:7000,b:7001"}, NULL},
        {{"redis.cluster=1", "redis.nodes=10.0.0.1:7000,b"}, "'b' is not host:port"},
        {{"redis.cluster=1", "redis.nodes=a:70000"}, "'a:70000' is not host:port"},
        {{"redis.cluster=1", "redis.nodes=a:1,"}, "'' is not host:port"},
        {{"cluster.model_topic=model", "cluster.member=a-1.b_2"}, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fr_config_t c;
        char err[512] = "";
        config_defaults(&c);
        for (int j = 0; j < 2 && cases[i].set[j]; j++)
            if (config_set(&c, cases[i].set[j], err, sizeof(err)) != 0)
                fail_msg("%s: %s", cases[i].set[j], err);
        int rc = config_validate(&c, err, sizeof(err));
        if (!cases[i].want) {
            if (rc != 0)
                fail_msg("case %zu (%s) refused: %s", i, cases[i].set[0], err);
            continue;
        }
        if (rc != -1)
            fail_msg("case %zu (%s) accepted", i, cases[i].set[0]);
        assert_contains(err, cases[i].want);
    }
}

/* Fields written in code, not through config_set, are checked again. */
static void test_validate_fields(void **state)
{
    (void)state;
    fr_config_t c;
    char err[512];
    config_defaults(&c);
    c.dim = 0;
    assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
    assert_contains(err, "[model] dim = 0: must be in [1, 1024]");

    config_defaults(&c);
    strcpy(c.sampler, "fancy");
    assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
    assert_contains(err, "[model] sampler = fancy: expected one of");

    config_defaults(&c);
    c.lr_dense = -1;
    assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
    assert_contains(err, "[model] lr_dense = -1: must be in (0, 100]");

    config_defaults(&c);
    memset(c.redis_password, 'S', sizeof(c.redis_password)); /* no NUL */
    assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
    assert_contains(err, "[redis] password: invalid value");
    assert_lacks(err, "SSS");
}

/* Meaningful once proto/event.c's event_kinds_parse refuses bad specs: a stub
 * that accepts everything makes this test skip rather than pass. */
static void test_validate_kinds(void **state)
{
    (void)state;
    event_kinds_t k;
    char err[512];
    if (event_kinds_parse(&k, "purchase:0", err, sizeof(err)) == 0)
        skip();
    const struct {
        const char *kinds;
        int ok;
    } cases[] = {
        {"purchase:0", 0},   {"purchase:5,purchase:2", 0}, {":5", 0}, {"purchase:5,", 0},
        {"purchase:abc", 0}, {"purchase:5,like:2", 1},     {"", 1},   {"purchase:5", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fr_config_t c;
        char set[300], want[300];
        config_defaults(&c);
        snprintf(set, sizeof(set), "events.kinds=%s", cases[i].kinds);
        if (config_set(&c, set, err, sizeof(err)) != 0)
            fail_msg("%s: %s", set, err);
        int rc = config_validate(&c, err, sizeof(err));
        if (cases[i].ok) {
            if (rc != 0)
                fail_msg("kinds \"%s\" refused: %s", cases[i].kinds, err);
        } else {
            if (rc != -1)
                fail_msg("kinds \"%s\" accepted", cases[i].kinds);
            snprintf(want, sizeof(want), "[events] kinds = %s: ", cases[i].kinds);
            assert_contains(err, want);
        }
    }
}

/* ---- config_reload ---- */

static void test_reload(void **state)
{
    (void)state;
    fr_config_t live, before;
    char err[512];
    config_defaults(&live);

    /* hot keys change, the cold one is only named */
    char *path = tmp_write("[redis]\npublish_interval_ms = 30\nitem_publish_interval_ms = 500\n"
                           "[model]\nlr_sparse = 0.05\ndim = 64\n"
                           "[events]\nmax_future_skew_ms = 1000\n");
    char *over[] = {"daemon.log_level=debug"};
    assert_int_equal(config_reload(&live, path, over, 1, err, sizeof(err)), 5);
    assert_int_equal(live.publish_interval_ms, 30);
    assert_int_equal(live.item_publish_interval_ms, 500);
    assert_int_equal(live.max_future_skew_ms, 1000);
    assert_true(live.lr_sparse == 0.05);
    assert_string_equal(live.log_level, "debug");
    assert_int_equal(live.dim, 32);
    assert_string_equal(err, "restart needed for [model] dim");

    /* the same again: nothing hot changes, dim still differs */
    assert_int_equal(config_reload(&live, path, over, 1, err, sizeof(err)), 0);
    assert_string_equal(err, "restart needed for [model] dim");

    /* no file: back to the defaults of the hot keys, no warning */
    assert_int_equal(config_reload(&live, NULL, NULL, 0, err, sizeof(err)), 5);
    assert_int_equal(live.publish_interval_ms, 50);
    assert_int_equal(live.max_future_skew_ms, 600000);
    assert_int_equal(live.item_publish_interval_ms, 200);
    assert_true(live.lr_sparse == 0.03);
    assert_string_equal(live.log_level, "info");
    assert_string_equal(err, "");
    fr_config_t d;
    config_defaults(&d);
    assert_memory_equal(&live, &d, sizeof(d));
    tmp_remove(path);

    /* several cold keys, in table order; a password is named, not shown */
    path = tmp_write("[model]\ndim = 64\n[redis]\nport = 6380\npassword = hunter2\n");
    assert_int_equal(config_reload(&live, path, NULL, 0, err, sizeof(err)), 0);
    assert_string_equal(err, "restart needed for [redis] port, [redis] password, [model] dim");
    assert_memory_equal(&live, &d, sizeof(d));
    tmp_remove(path);

    /* errors leave live untouched */
    assert_int_equal(config_set(&live, "model.lr_dense=0.5", err, sizeof(err)), 0);
    before = live;
    char *bad_value = tmp_write("[redis]\npublish_interval_ms = 10\n[model]\ndim = 0\n");
    char *bad_cross = tmp_write("[redis]\npublish_interval_ms = 10\n[model]\nmlp = 63,32\n");
    char *good = tmp_write("[redis]\npublish_interval_ms = 10\n");
    char *bad_over[] = {"model.lr_sparse=0.2", "model.dimm=3"};
    const struct {
        const char *path;
        char **over;
        int nover;
        const char *want;
    } fails[] = {
        {bad_value, NULL, 0, ":4: [model] dim = 0"},
        {bad_cross, NULL, 0, "[model] mlp = 63,32"},
        {good, bad_over, 2, "unknown key model.dimm"},
        {"/nonexistent/freshrec.conf", NULL, 0, "/nonexistent/freshrec.conf"},
    };
    for (size_t i = 0; i < sizeof(fails) / sizeof(fails[0]); i++) {
        err[0] = '\0';
        if (config_reload(&live, fails[i].path, fails[i].over, fails[i].nover, err, sizeof(err)) !=
            -1)
            fail_msg("reload %zu succeeded", i);
        assert_contains(err, fails[i].want);
        assert_memory_equal(&live, &before, sizeof(live));
    }
    tmp_remove(bad_value);
    tmp_remove(bad_cross);
    tmp_remove(good);
}

/* ---- config_write ---- */

static void test_write_roundtrip(void **state)
{
    (void)state;
    char long_value[300];
    snprintf(long_value, sizeof(long_value), "kafka.brokers=%0255d", 7);
    const char *sets[][12] = {
        {NULL}, /* the defaults */
        {"kafka.brokers=k1:9092,k2:9092", "redis.password=p a#ss=w;rd", "model.alpha=0.1",
         "model.lr_dense=1e-7", "model.init_std=0.3333333333333333", "model.preq_rate=1",
         "model.expire_s=86400", "stats.port=0",
         "kafka.dead_letter_topic=", "events.kinds=", "daemon.log_level=warn", NULL},
        {long_value, "model.lr_sparse=1.0000000000000002", "model.alpha=2",
         "model.l2_sparse=1e-300", "redis.key_prefix=a.b-c_d", NULL},
    };
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        fr_config_t c, back;
        char err[512];
        config_defaults(&c);
        for (int j = 0; sets[i][j]; j++)
            if (config_set(&c, sets[i][j], err, sizeof(err)) != 0)
                fail_msg("%s: %s", sets[i][j], err);

        char *text = written(&c);
        char *path = tmp_write(text);
        /* every key is written, so what back held before does not matter */
        config_defaults(&back);
        assert_int_equal(config_set(&back, "model.dim=7", err, sizeof(err)), 0);
        assert_int_equal(config_set(&back, "kafka.brokers=elsewhere:1", err, sizeof(err)), 0);
        if (config_load(&back, path, err, sizeof(err)) != 0)
            fail_msg("set %zu: %s\n%s", i, err, text);
        assert_values_equal(&c, &back);

        /* every key line follows its doc line */
        size_t keys_seen = 0;
        const char *prev = NULL;
        for (char *line = text; *line;) {
            char *nl = strchr(line, '\n');
            size_t n = nl ? (size_t)(nl - line) : strlen(line);
            if (n && line[0] != '#' && line[0] != '[') {
                keys_seen++;
                char doc[512] = "";
                if (prev)
                    snprintf(doc, sizeof(doc), "%.*s", (int)(line - prev), prev);
                if (strncmp(doc, "# ", 2) || !strstr(doc, "(default: "))
                    fail_msg("no doc line above %.*s", (int)n, line);
            }
            prev = line;
            line += n + (nl != NULL);
        }
        assert_int_equal(keys_seen, nkeys());
        tmp_remove(path);
        free(text);
    }

    fr_config_t d;
    config_defaults(&d);
    char *text = written(&d);
    assert_contains(text, "[model]\n");
    assert_contains(text, "(default: 32)\ndim = 32\n");
    assert_contains(text, "(default: 0.03)\nlr_sparse = 0.03\n");
    assert_contains(text, "(default: \"\")\nbrokers =\n");
    free(text);
}

/* ---- systemd/freshrec.conf ---- */

/* The example lists every key once as a commented "# key = default" line
 * under its real [section] header; nothing is set for real. */
static void test_example_conf(void **state)
{
    (void)state;
    fr_config_t c, d;
    char err[512];
    config_defaults(&c);
    config_defaults(&d);
    if (config_load(&c, EXAMPLE_CONF, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_values_equal(&c, &d);

    FILE *f = fopen(EXAMPLE_CONF, "r");
    assert_non_null(f);
    size_t n = nkeys();
    int *seen = calloc(n, sizeof(int));
    assert_non_null(seen);
    char line[1024], section[64] = "";
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '[') {
            snprintf(section, sizeof(section), "%.*s", (int)strcspn(line + 1, "]"), line + 1);
            continue;
        }
        if (line[0] && line[0] != '#' && line[0] != ';')
            fail_msg("%s:%d: a real setting; the example only documents defaults", EXAMPLE_CONF,
                     lineno);
        if (strncmp(line, "# ", 2))
            continue;
        const char *name = line + 2;
        size_t nlen = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_");
        if (!nlen || strncmp(name + nlen, " =", 2))
            continue; /* a doc line */
        for (size_t i = 0; i < n; i++) {
            const char *s, *k;
            assert_int_equal(config_key(i, &s, &k), 0);
            if (strcmp(s, section) || strlen(k) != nlen || strncmp(k, name, nlen))
                continue;
            seen[i]++;
            /* the documented value, applied to the defaults, changes nothing */
            char set[1100];
            fr_config_t t = d;
            snprintf(set, sizeof(set), "%s.%s", s, name);
            if (config_set(&t, set, err, sizeof(err)) != 0)
                fail_msg("%s:%d: %s", EXAMPLE_CONF, lineno, err);
            if (memcmp(&t, &d, offsetof(fr_config_t, src)))
                fail_msg("%s:%d: documented default of [%s] %s is not config_defaults'",
                         EXAMPLE_CONF, lineno, s, k);
        }
    }
    fclose(f);
    for (size_t i = 0; i < n; i++) {
        const char *s, *k;
        assert_int_equal(config_key(i, &s, &k), 0);
        if (seen[i] != 1)
            fail_msg("%s: [%s] %s documented %d times (want once, as \"# %s = default\")",
                     EXAMPLE_CONF, s, k, seen[i], k);
    }
    free(seen);
}

/* [kafka] properties: checked against librdkafka at validation; a secret's
 * value is never echoed. */
static void test_kafka_properties(void **state)
{
    (void)state;
    static const struct {
        const char *set;
        int ok;
        const char *in_err;
    } cases[] = {
        {"kafka.properties=socket.timeout.ms=5000,fetch.wait.max.ms=50", 1, NULL},
        {"kafka.properties=no.such.property=1", 0, "no.such.property"},
        {"kafka.properties=socket.timeout.ms", 0, "expected name=value"},
        {"kafka.properties=socket.timeout.ms=abc", 0, "socket.timeout.ms"},
        {"kafka.properties=security.protocol=pigeon,ssl.key.password=hunter2", 0,
         "security.protocol"},
        {"kafka.properties=ssl.key.password=hunter2,acks=maybe", 0, "acks"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fr_config_t c;
        char err[512] = "";
        config_defaults(&c);
        assert_int_equal(config_set(&c, cases[i].set, err, sizeof(err)), 0);
        int rc = config_validate(&c, err, sizeof(err));
        assert_int_equal(rc == 0, cases[i].ok);
        if (!cases[i].ok) {
            assert_non_null(strstr(err, "[kafka] properties"));
            assert_non_null(strstr(err, cases[i].in_err));
            assert_null(strstr(err, "hunter2"));
        }
    }
}

/* Every check start-up makes runs in config_validate, and its message names
 * where the value came from: "<file>:<line>: [section] key", or "--set: "
 * for an override. A table of a file (may be NULL), overrides, and what the
 * message must hold after that prefix (NULL: valid). */
static void test_validate_where(void **state)
{
    (void)state;
    const struct {
        const char *file;
        const char *set[2];
        const char *want; /* after "<path>" or at the start; NULL: valid */
    } cases[] = {
        {"[kafka]\ntopics = a\n\ndead_letter_topic = a,b\n",
         {NULL},
         ":4: [kafka] dead_letter_topic = a,b: one topic name expected"},
        {"[kafka]\ntopics = a,b\ndead_letter_topic = b\n",
         {NULL},
         ":3: [kafka] dead_letter_topic = b: also in [kafka] topics"},
        {"[kafka]\ntopics = a,,b\n", {NULL}, ":2: [kafka] topics = a,,b: empty entry"},
        {"[events]\n# weights\nkinds = purchase:0\n", {NULL}, ":3: [events] kinds = purchase:0: "},
        {"[events]\nkinds = like:2,like:3\n", {NULL}, ":2: [events] kinds = like:2,like:3: "},
        {"[kafka]\nbrokers = k:9092\nproperties = acks=maybe\n",
         {NULL},
         ":3: [kafka] properties: acks"},
        {"[kafka]\nproperties = no.such.property=1\n",
         {NULL},
         ":2: [kafka] properties: no.such.property"},
        {"[stats]\nport = 9464\nlisten = localhost\n",
         {NULL},
         ":3: [stats] listen = localhost: not a listen address"},
        {"[stats]\nlisten = 127.0.0.256\n", {NULL}, ":2: [stats] listen = 127.0.0.256"},
        {"[stats]\nlisten = ::1\n", {NULL}, NULL},
        {"[stats]\nlisten = localhost\nport = 0\n", {NULL}, NULL}, /* off: never listened on */
        {"[model]\nmlp = 63,32\n", {NULL}, ":2: [model] mlp = 63,32: the first width"},
        {"[model]\ntower = 128,0\n",
         {NULL},
         ":2: [model] tower = 128,0: element 2 ('0') is not a width"},
        {"[model]\nkind = lr\ndim = 512\n", {NULL}, ":3: [model] dim = 512: lr embeds"},
        {"[model]\nkind = widedeep\ncrosses = item:device\n", {NULL}, ":3: [model] crosses = "},
        {"[model]\nkind = widedeep\ncat_fields = device\ncrosses = item:device\n", {NULL}, NULL},
        {"[model]\ndeep = 64,x\nkind = dcn\n",
         {NULL},
         ":2: [model] deep = 64,x: element 2 ('x') is not a width"},
        {"[model]\ncat_fields = device\n", {NULL}, ":2: [model] cat_fields/num_fields: neumf"},
        {"[model]\nkind = dssm\nnum_fields = age\nitem_fields = price\n",
         {NULL},
         ":4: [model] item_fields: 'price'"},
        {"[model]\nkind = lr\ncat_fields = a,a\n", {NULL}, ":3: [model] cat_fields: 'a' twice"},
        /* overrides: "--set: " instead of a file and line */
        {NULL, {"stats.listen=localhost"}, "--set: [stats] listen = localhost: "},
        {NULL, {"kafka.dead_letter_topic=a,b"}, "--set: [kafka] dead_letter_topic = a,b: one"},
        {NULL, {"events.kinds=:5"}, "--set: [events] kinds = :5: "},
        {NULL, {"kafka.properties=acks=maybe"}, "--set: [kafka] properties: acks"},
        {NULL, {"model.kind=lr", "model.dim=300"}, "--set: [model] dim = 300"},
        /* the last to set a key is the one named */
        {"[stats]\nlisten = 127.0.0.1\n", {"stats.listen=localhost"}, "--set: [stats] listen"},
        {"[stats]\nlisten = localhost\n", {"stats.listen=0.0.0.0"}, NULL},
        {"[kafka]\ntopics = x\n",
         {"kafka.dead_letter_topic=x"},
         "--set: [kafka] dead_letter_topic = x: also in"},
        /* a value written in code (no file, no --set): the key alone */
        {NULL, {NULL}, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fr_config_t c;
        char err[512] = "";
        char *path = cases[i].file ? tmp_write(cases[i].file) : NULL;
        config_defaults(&c);
        if (path && config_load(&c, path, err, sizeof(err)) != 0)
            fail_msg("case %zu: load: %s", i, err);
        for (int j = 0; j < 2 && cases[i].set[j]; j++)
            if (config_set(&c, cases[i].set[j], err, sizeof(err)) != 0)
                fail_msg("case %zu: %s: %s", i, cases[i].set[j], err);
        int rc = config_validate(&c, err, sizeof(err));
        if (!cases[i].want) {
            if (rc != 0)
                fail_msg("case %zu refused: %s", i, err);
        } else {
            if (rc != -1)
                fail_msg("case %zu (%s) accepted", i, cases[i].want);
            const char *rest = err;
            if (cases[i].want[0] == ':') { /* from the file: its path first */
                if (strncmp(err, path, strlen(path)))
                    fail_msg("case %zu: \"%s\" does not start with %s", i, err, path);
                rest = err + strlen(path);
            }
            if (strncmp(rest, cases[i].want, strlen(cases[i].want)))
                fail_msg("case %zu: \"%s\" does not start with \"%s\"", i, rest, cases[i].want);
        }
        if (path)
            tmp_remove(path);
    }

    /* set in code: no location, the key still named */
    fr_config_t c;
    char err[512];
    config_defaults(&c);
    strcpy(c.stats_listen, "localhost");
    assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
    assert_int_equal(strncmp(err, "[stats] listen = localhost", 26), 0);
}

/* The SIGHUP log line: config_hot_changes names exactly the hot keys that
 * changed, as many as it counts and as config_reload returns. */
static void test_hot_changes(void **state)
{
    (void)state;
    const struct {
        const char *file;
        int n;
        const char *want;
    } cases[] = {
        {"[model]\nlr_sparse = 0.05\n", 1, "lr_sparse 0.03 -> 0.05"},
        {"[model]\nlr_sparse = 0.05\ndim = 64\n[daemon]\nlog_level = debug\n", 2,
         "lr_sparse 0.03 -> 0.05, log_level info -> debug"},
        {"[redis]\npublish_interval_ms = 30\nitem_publish_interval_ms = 500\n[model]\n"
         "lr_sparse = 0.05\n",
         3,
         "publish_interval_ms 50 -> 30, item_publish_interval_ms 200 -> 500, lr_sparse 0.03 -> "
         "0.05"},
        {"[model]\ndim = 64\n", 0, ""},
        {"[model]\nlr_sparse = 0.03\n", 0, ""}, /* set, but to what it was */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fr_config_t live, before;
        char err[512], list[512];
        config_defaults(&live);
        before = live;
        char *path = tmp_write(cases[i].file);
        int n = config_reload(&live, path, NULL, 0, err, sizeof(err));
        assert_int_equal(n, cases[i].n);
        assert_int_equal(config_hot_changes(&before, &live, list, sizeof(list)), n);
        assert_string_equal(list, cases[i].want);
        /* the count is the number of entries listed */
        int entries = list[0] != '\0';
        for (const char *p = list; (p = strstr(p, ", ")); p += 2)
            entries++;
        assert_int_equal(entries, n);
        tmp_remove(path);
    }
}

/* A [model] key given for a model that does not read it is named in a
 * warning, with where it was given and the models that read it; keys every
 * model reads, the chosen model's own and keys left at their default are
 * not. */
static void test_model_key_warnings(void **state)
{
    (void)state;
    const struct {
        const char *file;
        const char *set;
        int n;            /* warnings */
        const char *want; /* the whole text ("%s": the file's path); NULL: none */
    } cases[] = {
        {"[model]\ntower = 64,32\n", NULL, 1,
         "%s:2: [model] tower does not apply to model neumf (read by dssm): ignored"},
        {"[model]\nkind = dssm\ntower = 64,32\ngamma = 5\n", NULL, 0, NULL},
        {"[model]\nkind = dssm\nmlp = 32,16\n", NULL, 1,
         "%s:3: [model] mlp does not apply to model dssm (read by neumf): ignored"},
        {"[model]\nkind = lr\ndeep = 32\ncross_layers = 2\n", NULL, 2,
         "%s:3: [model] deep does not apply to model lr (read by widedeep, dcn): ignored; "
         "%s:4: [model] cross_layers does not apply to model lr (read by dcn): ignored"},
        {"[model]\nkind = dcn\nnegatives = 8\n", NULL, 1,
         "%s:3: [model] negatives does not apply to model dcn (read by neumf, dssm, mf, hmf): "
         "ignored"},
        /* the learner's keys apply to every model it learns, mf too; the
         * click-through engine's (max_users) to lr, widedeep and dcn */
        {"[model]\nkind = mf\nnegatives = 8\nsampler = popularity\n", NULL, 0, NULL},
        {"[model]\nkind = hmf\nreplay = 2\n", NULL, 0, NULL},
        {"[model]\nkind = hmf\ntransition_lr = 0.0003\n", NULL, 0, NULL},
        {"[model]\ntransition_lr = 0.0003\n", NULL, 1,
         "%s:2: [model] transition_lr does not apply to model neumf (read by hmf): ignored"},
        {"[model]\nkind = widedeep\nreplay = 2\n", NULL, 1,
         "%s:3: [model] replay does not apply to model widedeep (read by neumf, dssm, mf, hmf): "
         "ignored"},
        {"[model]\nkind = dcn\nmax_users = 1000\ncross_layers = 2\nthreads = 2\n", NULL, 0, NULL},
        {"[model]\nkind = mf\nmlp = 32,16\n", NULL, 1,
         "%s:3: [model] mlp does not apply to model mf (read by neumf): ignored"},
        {"[model]\nkind = widedeep\ndeep = 32\ncrosses = item:user\nwide_bits = 10\n", NULL, 0,
         NULL},
        /* every model reads these */
        {"[model]\nkind = lr\ndim = 16\nlr_sparse = 0.1\nseed = 3\nexpire_s = 60\n", NULL, 0, NULL},
        /* by --set, the kind too */
        {NULL, "model.gamma=3", 1,
         "--set: [model] gamma does not apply to model neumf (read by dssm): ignored"},
        {"[model]\ntower = 64,32\n", "model.kind=dssm", 0, NULL},
        /* defaults say nothing */
        {NULL, NULL, 0, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fr_config_t c;
        char err[1024] = "", want[1024];
        char *path = cases[i].file ? tmp_write(cases[i].file) : NULL;
        config_defaults(&c);
        if (path && config_load(&c, path, err, sizeof(err)) != 0)
            fail_msg("case %zu: load: %s", i, err);
        if (cases[i].set && config_set(&c, cases[i].set, err, sizeof(err)) != 0)
            fail_msg("case %zu: %s: %s", i, cases[i].set, err);
        if (config_validate(&c, err, sizeof(err)) != 0)
            fail_msg("case %zu: refused: %s", i, err);
        int n = config_warnings(&c, err, sizeof(err));
        snprintf(want, sizeof(want), cases[i].want ? cases[i].want : "", path, path);
        if (n != cases[i].n || strcmp(err, want) != 0)
            fail_msg("case %zu: %d warnings \"%s\" (want %d \"%s\")", i, n, err, cases[i].n, want);
        if (path)
            tmp_remove(path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_key_table),
        cmocka_unit_test(test_load_every_section),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_validate_fields),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_write_roundtrip),
        cmocka_unit_test(test_example_conf),
        cmocka_unit_test(test_kafka_properties),
        cmocka_unit_test(test_validate_kinds),
        cmocka_unit_test(test_validate_where),
        cmocka_unit_test(test_hot_changes),
        cmocka_unit_test(test_model_key_warnings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
