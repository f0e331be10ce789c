/* config.c — the table of every configuration key and what it drives:
 * defaults, the INI file (libinih), `--set section.key=value` overrides, the
 * SIGHUP reload of the hot keys, and writing a configuration back out.
 * Keys differ only by their row in `keys[]`; the one place with per-key code
 * is config_validate (checks that involve more than one key or another
 * module's parser). Not for: acting on a value (each subsystem reads
 * fr_config_t), or logging (messages go back in errstr). */
#define _POSIX_C_SOURCE 200809L

#include "config.h"
#include "dssm.h"
#include "kafka.h"
#include "modelcfg.h"
#include "stats.h"

#include "event.h"
#include "neumf.h"
#include "widths.h"

#include <ini.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Longest line of a config file. The INI parser's compiled-in buffer is 200
 * bytes, shorter than a CONFIG_STR value; Debian's libinih lets us raise it at
 * run time (ini_max_line and friends). Build with -DCONFIG_INI_LINE_MAX=0
 * against an upstream libinih without those knobs: lines are then limited to
 * what it was compiled with, and longer ones are an error naming the line. */
#ifndef CONFIG_INI_LINE_MAX
#define CONFIG_INI_LINE_MAX 4096
#endif

typedef enum { CT_INT, CT_DOUBLE, CT_STR, CT_ENUM } ctype_t;

enum {
    CF_HOT = 1,      /* config_reload applies it to the running daemon */
    CF_SECRET = 2,   /* its value never appears in a message */
    CF_OPEN_MIN = 4, /* bounds are (min, max] rather than [min, max] */
    CF_NAME = 8,     /* a string of [A-Za-z0-9_.-] only */
};

typedef struct {
    const char *section, *key;
    ctype_t type;
    size_t off;      /* of the field in fr_config_t */
    const char *def; /* default, as the INI text; NULL: key_default says */
    double min, max; /* numbers: bounds of the value; strings: of the length */
    int flags;
    const char *choices; /* CT_ENUM: "a|b|c" */
    const char *doc;     /* one line, for config_write */
} ckey_t;

#define F(field) offsetof(fr_config_t, field)
#define SMAX (CONFIG_STR - 1)

static const ckey_t keys[] = {
    {"kafka", "brokers", CT_STR, F(brokers), "", 0, SMAX, 0, NULL,
     "Kafka bootstrap servers, host:port[,host:port...]; empty: none (--embedded starts a mock "
     "cluster)"},
    {"kafka", "topics", CT_STR, F(topics), "events", 1, SMAX, 0, NULL,
     "Topics to consume, comma-separated"},
    {"kafka", "group_id", CT_STR, F(group_id), "freshrec", 1, SMAX, 0, NULL,
     "Consumer group; daemons sharing it split the partitions between them"},
    {"kafka", "dead_letter_topic", CT_STR, F(dead_letter_topic), "events.dead", 0, SMAX, 0, NULL,
     "Topic that receives invalid events with the reason; empty: none"},
    {"kafka", "dead_letter_max_bytes", CT_INT, F(dead_letter_max_bytes), "524288", 1024, 100000000,
     0, NULL,
     "Most bytes of a refused message's value and key copied to the dead-letter topic; a longer "
     "one is cut, its original size in a header"},
    {"kafka", "dead_letter_timeout_ms", CT_INT, F(dead_letter_timeout_ms), "30000", 1000, 300000, 0,
     NULL,
     "How long librdkafka tries to deliver one dead-letter copy before reporting it failed (the "
     "daemon then produces it again)"},
    {"kafka", "assignor", CT_ENUM, F(assignor), "cooperative-sticky", 0, 0, 0,
     "cooperative-sticky|range", "Partition assignment strategy of the consumer group"},
    {"kafka", "batch_max", CT_INT, F(batch_max), "1000", 1, 100000, 0, NULL,
     "Most messages taken from the consumer queue per batch (a turn of the loop: one, or up to 8 "
     "while more than 8 wait)"},
    {"kafka", "decode_thread", CT_INT, F(decode_thread), "1", 0, 1, 0, NULL,
     "1: a helper thread decodes a batch's messages while the loop thread learns from those "
     "before them; 0: the loop thread decodes"},
    {"kafka", "embedded_partitions", CT_INT, F(embedded_partitions), "4", 1, 64, 0, NULL,
     "Partitions of each topic in the embedded mock cluster (--embedded)"},
    {"kafka", "session_timeout_ms", CT_INT, F(session_timeout_ms), "10000", 1000, 3600000, 0, NULL,
     "Consumer group session timeout: how long a silent member keeps its partitions"},
    {"kafka", "fetch_wait_max_ms", CT_INT, F(fetch_wait_max_ms), "10", 1, 10000, 0, NULL,
     "Longest a fetch may wait at the broker for data (bounds event-to-learning latency)"},
    {"kafka", "properties", CT_STR, F(kafka_properties), "", 0, SMAX, 0, NULL,
     "librdkafka properties for the consumer and producer, name=value,name=value"},

    {"redis", "host", CT_STR, F(redis_host), "127.0.0.1", 1, SMAX, 0, NULL,
     "Redis server that receives the vectors"},
    {"redis", "port", CT_INT, F(redis_port), "6379", 1, 65535, 0, NULL, "Redis server port"},
    {"redis", "password", CT_STR, F(redis_password), "", 0, SMAX, CF_SECRET, NULL,
     "Password for AUTH; empty: no AUTH"},
    {"redis", "key_prefix", CT_STR, F(key_prefix), "fr", 1, 64, CF_NAME, NULL,
     "Prefix of every key written (<prefix>:<model>:u:<id>); letters, digits, _ . -"},
    {"redis", "vector_ttl_s", CT_INT, F(vector_ttl_s), "604800", 0, 31536000, 0, NULL,
     "TTL of a published vector in seconds, so evicted ids stop being served; 0: none"},
    {"redis", "publish_interval_ms", CT_INT, F(publish_interval_ms), "50", 1, 60000, CF_HOT, NULL,
     "Milliseconds between two publishes of the changed vectors; SIGHUP reloads it"},
    {"redis", "item_publish_interval_ms", CT_INT, F(item_publish_interval_ms), "200", 0, 600000,
     CF_HOT, NULL,
     "Least milliseconds between two rounds that write the changed item vectors (a new item's "
     "first goes in the next round); 0: every round"},
    {"redis", "publish_max_keys", CT_INT, F(publish_max_keys), "100000", 1, 10000000, 0, NULL,
     "Most vectors written per publish; the rest wait for the next one"},
    {"redis", "item_index", CT_INT, F(item_index), "1", 0, 1, 0, NULL,
     "1: keep <prefix>:<model>:items, a sorted set of the item ids with a vector scored by their "
     "last write in ms (ZRANGE lists the catalogue); 0: none"},
    {"redis", "cluster", CT_INT, F(redis_cluster), "0", 0, 1, 0, NULL,
     "1: host:port is a node of a Redis Cluster; each key is written to the master of its slot "
     "(proto/README.md, Redis Cluster); 0: a single Redis"},
    {"redis", "nodes", CT_STR, F(redis_nodes), "", 0, SMAX, 0, NULL,
     "With cluster = 1: more nodes of the cluster, host:port,host:port, asked for the slot map "
     "when host:port does not answer (the daemon starts while it is down); empty: host:port "
     "alone"},
    {"redis", "reconnect_max_ms", CT_INT, F(reconnect_max_ms), "5000", 10, 600000, 0, NULL,
     "Ceiling of the reconnect backoff, in milliseconds"},
    {"redis", "ack_timeout_ms", CT_INT, F(redis_ack_timeout_ms), "3000", 100, 600000, 0, NULL,
     "Redis counts as unreachable (freshrec_redis_connected 0, /healthz 503) once writes have "
     "waited this long unconfirmed"},

    {"model", "kind", CT_STR, F(model), NULL, 1, 15, CF_NAME, NULL,
     "Model, by name in the table of models (learner/models.c): retrieval (neumf, dssm, …) or "
     "click-through with features (lr, widedeep, dcn); validation names the unknown"},
    {"model", "dim", CT_INT, F(dim), "32", 1, 1024, 0, NULL,
     "neumf: GMF factors; dssm: id embedding width; lr/widedeep/dcn: per-field width"},
    {"model", "cat_fields", CT_STR, F(cat_fields), "", 0, SMAX, 0, NULL,
     "lr/widedeep/dcn/dssm: event cat features used as fields besides user and item"},
    {"model", "num_fields", CT_STR, F(num_fields), "", 0, SMAX, 0, NULL,
     "lr/widedeep/dcn/dssm: event num features used as dense fields"},
    {"model", "item_fields", CT_STR, F(item_fields), "", 0, SMAX, 0, NULL,
     "dssm: those of cat_fields and num_fields that describe the item (its tower); the rest "
     "go to the user tower"},
    {"model", "feature_dim", CT_INT, F(feature_dim), "8", 1, 256, 0, NULL,
     "dssm: embedding width of a categorical feature value"},
    {"model", "crosses", CT_STR, F(crosses), "", 0, SMAX, 0, NULL,
     "lr/widedeep: crossed fields in the wide part, a:b,c:d (e.g. item:device)"},
    {"model", "deep", CT_STR, F(deep), "64,32", 1, SMAX, 0, NULL,
     "widedeep/dcn: widths of the deep MLP"},
    {"model", "cross_layers", CT_INT, F(cross_layers), "3", 1, 8, 0, NULL, "dcn: cross layers"},
    {"model", "hash_bits", CT_INT, F(hash_bits), "0", 0, 30, 0, NULL,
     "lr/widedeep/dcn/dssm: 0 exact ids per field; else the hashing trick with 2^bits rows"},
    {"model", "wide_bits", CT_INT, F(wide_bits), "20", 1, 30, 0, NULL,
     "lr/widedeep: 2^bits hashed wide weights"},
    {"model", "tower", CT_STR, F(tower), "128,64", 1, SMAX, 0, NULL,
     "dssm: widths of each tower's layers; the last is the published vector's"},
    {"model", "gamma", CT_DOUBLE, F(gamma), "10", 0.001, 1000, 0, NULL,
     "dssm: logit = gamma * cosine (the softmax smoothing factor)"},
    {"model", "history", CT_INT, F(history), "8", 1, 256, 0, NULL,
     "hmf: a user is their row plus the weighted mean of the rows of their last N items"},
    {"model", "history_decay", CT_DOUBLE, F(history_decay), "0.75", 0.001, 1, 0, NULL,
     "hmf: the j-th newest of those items weighs decay^j (1: the plain mean)"},
    {"model", "user_weight", CT_DOUBLE, F(user_weight), "0.5", 0, 1, 0, NULL,
     "hmf: the user's own row enters the score times this, beside their items"},
    {"model", "transition_lr", CT_DOUBLE, F(transition_lr), "0", 0, 1, 0, NULL,
     "hmf: Adam learning rate of the transition map shared by every user, which carries what "
     "users who clicked like a user's recent items click next (0: no map)"},
    {"model", "replay", CT_DOUBLE, F(replay), "0", 0, 16, 0, NULL,
     "Experience replay: events learned again from the rolling buffer per event learned "
     "(0: off; not with [cluster] model_topic)"},
    {"model", "mlp", CT_STR, F(mlp), "64,32,16,8", 1, SMAX, 0, NULL,
     "MLP widths: the (even) input width of [user ; item], then 1..7 hidden layers"},
    {"model", "negatives", CT_INT, F(negatives), "4", 1, 1024, 0, NULL,
     "Negatives sampled per positive"},
    {"model", "sampler", CT_ENUM, F(sampler), "uniform", 0, 0, 0, "uniform|popularity|inbatch|hard",
     "Negative sampler: uniform, popularity (recent frequency^alpha), inbatch, hard"},
    {"model", "alpha", CT_DOUBLE, F(alpha), "0.75", 0, 2, 0, NULL,
     "Exponent of the popularity sampler (0: uniform, 1: proportional)"},
    {"model", "pool", CT_INT, F(pool), "12", 1, 4096, 0, NULL,
     "Hard sampler: uniform candidates scored per event; past the top, a quarter of the "
     "negatives by score, the rest at random below"},
    {"model", "loss", CT_ENUM, F(loss), "bce", 0, 0, 0, "bce|bpr|softmax",
     "Loss: bce (pointwise), bpr (pairwise) or softmax (sampled softmax, listwise)"},
    {"model", "threads", CT_INT, F(threads), "1", 1, 64, 0, NULL,
     "Threads that share each micro-batch's work (the loop thread is one)"},
    {"model", "batch_events", CT_INT, F(batch_events), "256", 1, 65536, 0, NULL,
     "Events per micro-batch"},
    {"model", "optimizer", CT_ENUM, F(optimizer), "adagrad", 0, 0, 0, "adagrad|adam|sgd",
     "Optimizer of the embedding rows (the dense weights use Adam)"},
    {"model", "lr_sparse", CT_DOUBLE, F(lr_sparse), "0.03", 0, 100, CF_HOT | CF_OPEN_MIN, NULL,
     "Learning rate of the embedding rows; SIGHUP reloads it"},
    {"model", "lr_dense", CT_DOUBLE, F(lr_dense), "0.005", 0, 100, CF_HOT | CF_OPEN_MIN, NULL,
     "Learning rate of the dense weights (hmf's transition map has transition_lr); SIGHUP "
     "reloads it"},
    {"model", "l2_sparse", CT_DOUBLE, F(l2_sparse), "0", 0, 100, 0, NULL,
     "L2 penalty on the embedding rows"},
    {"model", "l2_dense", CT_DOUBLE, F(l2_dense), "0.00003", 0, 100, 0, NULL,
     "L2 penalty on the dense weights"},
    {"model", "init_std", CT_DOUBLE, F(init_std), "0.01", 0, 10, 0, NULL,
     "Standard deviation of a new row's N(0, std) initialisation"},
    {"model", "ring_capacity", CT_INT, F(ring_capacity), "100000", 1, 1000000000, 0, NULL,
     "Events kept in the rolling buffer that the samplers draw from"},
    {"model", "admit_after", CT_INT, F(admit_after), "1", 1, 1000000, 0, NULL,
     "Occurrences of an id before it gets its own embedding row"},
    {"model", "expire_s", CT_INT, F(expire_s), "0", 0, 315360000, 0, NULL,
     "Seconds after which an unseen id's row is removed; 0: never"},
    {"model", "max_users", CT_INT, F(max_users), "0", 0, 2000000000, 0, NULL,
     "Most users kept (every model); past it the least recently seen are evicted and their "
     "vectors deleted from Redis; 0: no limit"},
    {"model", "max_items", CT_INT, F(max_items), "0", 0, 2000000000, 0, NULL,
     "Most items kept (every model), likewise; 0: no limit"},
    {"model", "preq_rate", CT_DOUBLE, F(preq_rate), "0.01", 0, 1, 0, NULL,
     "Share of events ranked before they are learned (prequential HR@10, NDCG@10)"},
    {"model", "auc_window", CT_INT, F(auc_window), "10000", 1, 10000000, 0, NULL,
     "Click-through models: examples the progressive AUC (freshrec_auc) is taken over, the last"},
    {"model", "seed", CT_INT, F(seed), "1", 0, 2147483647, 0, NULL,
     "Seed of the initialisation and the samplers"},

    {"events", "kinds", CT_STR, F(kinds), "purchase:5", 0, SMAX, 0, NULL,
     "Weighted event types besides impression and click, name:weight,...; empty: none"},
    {"events", "label_window_ms", CT_INT, F(label_window_ms), "1800000", 0, 86400000, 0, NULL,
     "How long an impression waits for its click before it counts as a negative"},
    {"events", "max_future_skew_ms", CT_INT, F(max_future_skew_ms), "600000", 0, 86400000, CF_HOT,
     NULL,
     "How far an event's time may be ahead of the daemon's clock; further: refused (future_ts); "
     "SIGHUP reloads it"},
    {"events", "max_event_bytes", CT_INT, F(max_event_bytes), "65536", 64, 16777216, 0, NULL,
     "Largest message accepted; larger ones are dead letters (too_large)"},

    {"stats", "listen", CT_STR, F(stats_listen), "127.0.0.1", 1, SMAX, 0, NULL,
     "Address of the stats HTTP port (Prometheus text at /metrics)"},
    {"stats", "port", CT_INT, F(stats_port), "9464", 0, 65535, 0, NULL, "Stats HTTP port; 0: off"},

    {"daemon", "checkpoint_dir", CT_STR, F(checkpoint_dir), "", 0, SMAX, 0, NULL,
     "Directory of checkpoints; empty: none (offsets are then committed as learned)"},
    {"daemon", "checkpoint_interval_s", CT_INT, F(checkpoint_interval_s), "60", 1, 86400, 0, NULL,
     "Seconds between checkpoints (and one at shutdown)"},
    {"daemon", "log_level", CT_ENUM, F(log_level), "info", 0, 0, CF_HOT, "error|warn|info|debug",
     "Least severe messages logged: error, warn, info or debug; SIGHUP reloads it"},
    {"daemon", "shutdown_timeout_ms", CT_INT, F(shutdown_timeout_ms), "10000", 100, 600000, 0, NULL,
     "On SIGTERM, time allowed to learn, checkpoint and publish before exiting anyway"},

    {"cluster", "model_topic", CT_STR, F(model_topic), "", 0, SMAX, CF_NAME, NULL,
     "Single-partition topic of the model log that several daemons in one group learn one model "
     "through; empty: this daemon learns alone"},
    {"cluster", "member", CT_STR, F(member), "", 0, 200, CF_NAME, NULL,
     "This member's name in the model log, before -pid-random (new at each start); empty: the "
     "host name"},
    {"cluster", "window_ms", CT_INT, F(window_ms), "200", 10, 60000, 0, NULL,
     "Milliseconds between a member's window records (what it learned, for the others)"},
    {"cluster", "window_max_events", CT_INT, F(window_max_events), "500", 1, 1000000, 0, NULL,
     "A window record sooner, once the group learned this many events in it (each member's "
     "windows hold this divided by the members, in whole micro-batches)"},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))
_Static_assert(NKEYS <= CONFIG_MAX_KEYS, "raise CONFIG_MAX_KEYS: config_src_t has a line per key");

/* ---- the table ---- */

static const ckey_t *key_find(const char *section, const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].key, key))
            return &keys[i];
    return NULL;
}

static int section_known(const char *section)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].section, section))
            return 1;
    return 0;
}

static void *field(fr_config_t *c, const ckey_t *k)
{
    return (char *)c + k->off;
}

static const void *cfield(const fr_config_t *c, const ckey_t *k)
{
    return (const char *)c + k->off;
}

static size_t field_size(const ckey_t *k)
{
    switch (k->type) {
    case CT_INT:
        return sizeof(int);
    case CT_DOUBLE:
        return sizeof(double);
    default:
        return CONFIG_STR;
    }
}

int config_key(size_t i, const char **section, const char **key)
{
    if (i >= NKEYS)
        return -1;
    *section = keys[i].section;
    *key = keys[i].key;
    return 0;
}

/* ---- checking and parsing one value ---- */

static int enum_has(const char *choices, const char *s)
{
    size_t n = strlen(s);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !memcmp(p, s, n))
            return 1;
        p += len + (bar != NULL);
    }
    return 0;
}

static void enum_list(const char *choices, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = choices; *p && o + 3 < len; p++) {
        if (*p == '|') {
            out[o++] = ',';
            out[o++] = ' ';
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

static int check_int(const ckey_t *k, long long v, char *why, size_t wlen)
{
    if (v < (long long)k->min || v > (long long)k->max) {
        snprintf(why, wlen, "must be in [%lld, %lld]", (long long)k->min, (long long)k->max);
        return -1;
    }
    return 0;
}

static int check_double(const ckey_t *k, double v, char *why, size_t wlen)
{
    int low_ok = (k->flags & CF_OPEN_MIN) ? v > k->min : v >= k->min;
    if (!isfinite(v) || !low_ok || v > k->max) {
        snprintf(why, wlen, "must be in %c%g, %g]", (k->flags & CF_OPEN_MIN) ? '(' : '[', k->min,
                 k->max);
        return -1;
    }
    return 0;
}

/* Strings must also survive a trip through an INI file: no control
 * characters (a newline would end the line) and no `;` where the parser
 * would take it for the start of a comment. */
static int check_str(const ckey_t *k, const char *s, char *why, size_t wlen)
{
    size_t n = strnlen(s, CONFIG_STR);
    if (k->type == CT_ENUM) {
        if (n == CONFIG_STR || !enum_has(k->choices, s)) {
            char list[128];
            enum_list(k->choices, list, sizeof(list));
            snprintf(why, wlen, "expected one of %s", list);
            return -1;
        }
        return 0;
    }
    if (n > (size_t)k->max) {
        snprintf(why, wlen, "longer than %d bytes", (int)k->max);
        return -1;
    }
    if (n < (size_t)k->min) {
        snprintf(why, wlen, "must not be empty");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            snprintf(why, wlen, "control characters are not allowed");
            return -1;
        }
        if (ch == ';' && (i == 0 || isspace((unsigned char)s[i - 1]))) {
            snprintf(why, wlen, "';' at the start or after a space would read as a comment");
            return -1;
        }
        if ((k->flags & CF_NAME) && !isalnum(ch) && ch != '_' && ch != '.' && ch != '-') {
            snprintf(why, wlen, "only letters, digits, '_', '.' and '-' are allowed");
            return -1;
        }
    }
    if (n && (isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]))) {
        snprintf(why, wlen, "leading or trailing spaces are not allowed");
        return -1;
    }
    return 0;
}

/* The current value of k in c, checked against the table. */
static int check_key(const fr_config_t *c, const ckey_t *k, char *why, size_t wlen)
{
    switch (k->type) {
    case CT_INT:
        return check_int(k, *(const int *)cfield(c, k), why, wlen);
    case CT_DOUBLE:
        return check_double(k, *(const double *)cfield(c, k), why, wlen);
    default:
        return check_str(k, cfield(c, k), why, wlen);
    }
}

/* Parses text as k's type, checks it, and only then stores it in c. */
static int set_value(fr_config_t *c, const ckey_t *k, const char *text, char *why, size_t wlen)
{
    switch (k->type) {
    case CT_INT: {
        const char *p = text + (text[0] == '-' || text[0] == '+');
        char *end;
        if (!isdigit((unsigned char)*p)) {
            snprintf(why, wlen, "expected a whole number");
            return -1;
        }
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (*end) {
            snprintf(why, wlen, "expected a whole number");
            return -1;
        }
        /* On overflow v is clamped to LLONG_MIN/MAX: out of every bound. */
        if (check_int(k, v, why, wlen) < 0)
            return -1;
        *(int *)field(c, k) = (int)v;
        return 0;
    }
    case CT_DOUBLE: {
        char *end;
        if (!isdigit((unsigned char)text[0]) && !strchr("+-.", text[0])) {
            snprintf(why, wlen, "expected a number");
            return -1;
        }
        double v = strtod(text, &end);
        if (end == text || *end) {
            snprintf(why, wlen, "expected a number");
            return -1;
        }
        if (check_double(k, v, why, wlen) < 0)
            return -1;
        *(double *)field(c, k) = v;
        return 0;
    }
    default: {
        size_t n = strlen(text);
        if (n >= CONFIG_STR) {
            snprintf(why, wlen, "longer than %d bytes",
                     k->type == CT_STR ? (int)k->max : CONFIG_STR - 1);
            return -1;
        }
        if (check_str(k, text, why, wlen) < 0)
            return -1;
        char *dst = field(c, k);
        memset(dst, 0, CONFIG_STR);
        memcpy(dst, text, n);
        return 0;
    }
    }
}

/* "<label> = <value>: <why>", or without the value for a secret. A long value
 * is cut so that the reason still fits. */
static void value_error(char *errstr, size_t len, const char *where, const char *label,
                        const ckey_t *k, const char *value, const char *why)
{
    if (k->flags & CF_SECRET)
        snprintf(errstr, len, "%s%s: invalid value: %s", where, label, why);
    else if (strlen(value) > 64)
        snprintf(errstr, len, "%s%s = %.64s...: %s", where, label, value, why);
    else
        snprintf(errstr, len, "%s%s = %s: %s", where, label, value, why);
}

/* Shortest text that reads back as the same double. */
static void format_double(double v, char *buf, size_t len)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static void format_value(const fr_config_t *c, const ckey_t *k, char *buf, size_t len)
{
    switch (k->type) {
    case CT_INT:
        snprintf(buf, len, "%d", *(const int *)cfield(c, k));
        break;
    case CT_DOUBLE:
        format_double(*(const double *)cfield(c, k), buf, len);
        break;
    default:
        snprintf(buf, len, "%.*s", CONFIG_STR - 1, (const char *)cfield(c, k));
        break;
    }
}

static int value_equal(const fr_config_t *a, const fr_config_t *b, const ckey_t *k)
{
    switch (k->type) {
    case CT_INT:
        return *(const int *)cfield(a, k) == *(const int *)cfield(b, k);
    case CT_DOUBLE:
        return *(const double *)cfield(a, k) == *(const double *)cfield(b, k);
    default:
        return !strncmp(cfield(a, k), cfield(b, k), CONFIG_STR);
    }
}

/* ---- defaults ---- */

/* k's default: the table's, or for [model] kind the table of models' */
static const char *key_default(const ckey_t *k)
{
    return k->def ? k->def : model_default(0)->name;
}

void config_defaults(fr_config_t *c)
{
    char why[128];
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NKEYS; i++) {
        /* The table's defaults pass its own checks (tests hold it to that). */
        if (set_value(c, &keys[i], key_default(&keys[i]), why, sizeof(why)) < 0)
            abort();
    }
}

/* ---- the INI file ---- */

typedef struct {
    FILE *f;
    const char *path;
    int lineno;
    char *line; /* getline's buffer */
    size_t cap;
    fr_config_t *c;
    char *errstr;
    size_t len;
    int errline;               /* line of the first error; 0: none yet */
    int seen[CONFIG_MAX_KEYS]; /* by table row: the line that set it in this file; 0: none */
} load_t;

static void load_fail(load_t *ld, const char *fmt, ...)
{
    if (ld->errline)
        return; /* the first error is the one reported */
    ld->errline = ld->lineno;
    int n = snprintf(ld->errstr, ld->len, "%s:%d: ", ld->path, ld->lineno);
    if (n < 0 || (size_t)n >= ld->len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->errstr + n, ld->len - (size_t)n, fmt, ap);
    va_end(ap);
}

/* inih's reader: hands it one whole line at a time, so that ld->lineno is the
 * line of every handler call (Debian's libinih passes no line number). Leading
 * spaces are dropped, so an indented line is never taken as a continuation of
 * the previous value. A line too long for inih's buffer, or a section the
 * table does not know, is an error here. */
static char *load_reader(char *str, int num, void *stream)
{
    load_t *ld = stream;
    if (getline(&ld->line, &ld->cap, ld->f) < 0)
        return NULL;
    ld->lineno++;
    const char *p = ld->line;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strlen(p);
    if (n + 1 > (size_t)num) {
        load_fail(ld, "line longer than %d bytes", num - 2);
        p = "\n";
        n = 1;
    } else if (*p == '[') {
        const char *close = strchr(p, ']');
        if (close) {
            int namelen = (int)(close - p - 1);
            char name[64];
            snprintf(name, sizeof(name), "%.*s", namelen, p + 1);
            if (namelen >= (int)sizeof(name) || !section_known(name))
                load_fail(ld, "unknown section [%.*s]", namelen, p + 1);
        }
    }
    memcpy(str, p, n + 1);
    return str;
}

static int load_handler(void *user, const char *section, const char *name, const char *value)
{
    load_t *ld = user;
    if (ld->errline)
        return 0;
    if (!*section) {
        load_fail(ld, "key %s before any [section]", name);
        return 0;
    }
    const ckey_t *k = key_find(section, name);
    if (!k) {
        if (section_known(section))
            load_fail(ld, "unknown key [%s] %s", section, name);
        else
            load_fail(ld, "unknown section [%s]", section);
        return 0;
    }
    size_t row = (size_t)(k - keys);
    if (ld->seen[row]) {
        load_fail(ld, "[%s] %s given twice (first at line %d); one line per key", k->section,
                  k->key, ld->seen[row]);
        return 0;
    }
    ld->seen[row] = ld->lineno;
    char why[160], label[128], where[CONFIG_STR + 32];
    if (set_value(ld->c, k, value, why, sizeof(why)) < 0) {
        snprintf(label, sizeof(label), "[%s] %s", k->section, k->key);
        snprintf(where, sizeof(where), "%s:%d: ", ld->path, ld->lineno);
        value_error(ld->errstr, ld->len, where, label, k, value, why);
        ld->errline = ld->lineno;
        return 0;
    }
    return 1;
}

static void inih_setup(void)
{
#if CONFIG_INI_LINE_MAX > 0
    /* Debian's libinih: a heap line buffer of CONFIG_INI_LINE_MAX bytes. */
    ini_use_stack = 0;
    ini_allow_realloc = 0;
    ini_initial_alloc = CONFIG_INI_LINE_MAX;
    ini_max_line = CONFIG_INI_LINE_MAX;
#endif
}

int config_load(fr_config_t *c, const char *path, char *errstr, size_t len)
{
    fr_config_t next = *c;
    load_t ld = {.path = path, .c = &next, .errstr = errstr, .len = len};
    int ret = -1;

    ld.f = fopen(path, "r");
    if (!ld.f) {
        snprintf(errstr, len, "%s: %s", path, strerror(errno));
        return -1;
    }
    inih_setup();
    int rc = ini_parse_stream(load_reader, &ld, load_handler, &ld);
    if (ferror(ld.f)) {
        snprintf(errstr, len, "%s: read error: %s", path, strerror(errno));
        goto out;
    }
    if (rc == -2) {
        snprintf(errstr, len, "%s: out of memory", path);
        goto out;
    }
    if (rc > 0 && (!ld.errline || rc < ld.errline)) {
        snprintf(errstr, len, "%s:%d: syntax error: expected [section] or key = value", path, rc);
        goto out;
    }
    if (ld.errline || rc != 0)
        goto out;
    snprintf(next.src.path, sizeof(next.src.path), "%s", path);
    for (size_t i = 0; i < NKEYS; i++)
        if (ld.seen[i])
            next.src.line[i] = ld.seen[i];
        else if (next.src.line[i] > 0) /* a line of another file */
            next.src.line[i] = 0;
    *c = next;
    ret = 0;
out:
    free(ld.line);
    fclose(ld.f);
    return ret;
}

/* ---- overrides ---- */

static void trim(const char **s, const char **e)
{
    while (*s < *e && isspace((unsigned char)**s))
        (*s)++;
    while (*e > *s && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

int config_set(fr_config_t *c, const char *assignment, char *errstr, size_t len)
{
    const char *eq = strchr(assignment, '=');
    if (!eq) {
        /* Not echoed: it may be a password with the '=' missing. */
        snprintf(errstr, len, "malformed override (no '='): expected section.key=value");
        return -1;
    }
    const char *ks = assignment, *ke = eq;
    trim(&ks, &ke);
    const char *dot = memchr(ks, '.', (size_t)(ke - ks));
    if (!dot || dot == ks || dot + 1 == ke || ke - ks >= 128) {
        snprintf(errstr, len, "malformed override '%.*s=...': expected section.key=value",
                 (int)(ke - ks > 128 ? 128 : ke - ks), ks);
        return -1;
    }
    char section[128], name[128];
    snprintf(section, sizeof(section), "%.*s", (int)(dot - ks), ks);
    snprintf(name, sizeof(name), "%.*s", (int)(ke - dot - 1), dot + 1);

    const ckey_t *k = key_find(section, name);
    if (!k) {
        if (section_known(section))
            snprintf(errstr, len, "unknown key %s.%s", section, name);
        else
            snprintf(errstr, len, "unknown section [%s] in %s.%s", section, section, name);
        return -1;
    }

    const char *vs = eq + 1, *ve = eq + strlen(eq);
    trim(&vs, &ve);
    char *value = strndup(vs, (size_t)(ve - vs));
    if (!value) {
        snprintf(errstr, len, "%s.%s: out of memory", section, name);
        return -1;
    }
    char why[160], label[260];
    int ret = set_value(c, k, value, why, sizeof(why));
    if (ret == 0)
        c->src.line[k - keys] = CONFIG_FROM_SET;
    if (ret < 0) {
        snprintf(label, sizeof(label), "%s.%s", k->section, k->key);
        value_error(errstr, len, "", label, k, value, why);
    }
    free(value);
    return ret;
}

/* ---- checks across keys ---- */

/* A comma-separated list with no empty entry and no space in an entry. */
static int check_list(const char *s, const char **bad)
{
    *bad = NULL;
    for (const char *p = s;; p++) {
        const char *end = p + strcspn(p, ",");
        if (end == p) {
            *bad = "empty entry";
            return -1;
        }
        for (const char *q = p; q < end; q++)
            if (isspace((unsigned char)*q)) {
                *bad = "space in a topic name";
                return -1;
            }
        if (!*end)
            return 0;
        p = end;
    }
}

static int list_has(const char *list, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = list;;) {
        size_t len = strcspn(p, ",");
        if (len == n && !memcmp(p, item, n))
            return 1;
        if (!p[len])
            return 0;
        p += len + 1;
    }
}

/* "<path>:<line>: ", "--set: " or "": where k's value in c came from. */
static void where_from(const fr_config_t *c, const ckey_t *k, char *buf, size_t len)
{
    int line = c->src.line[k - keys];
    if (line > 0)
        snprintf(buf, len, "%s:%d: ", c->src.path, line);
    else if (line == CONFIG_FROM_SET)
        snprintf(buf, len, "--set: ");
    else if (len)
        buf[0] = '\0';
}

/* A failed check of [section] key: errstr = where its value came from, then
 * the message. Returns -1. */
static int vfail(const fr_config_t *c, char *errstr, size_t len, const char *section,
                 const char *key, const char *fmt, ...)
{
    const ckey_t *k = key_find(section, key);
    size_t n = 0;
    if (k && len) {
        where_from(c, k, errstr, len);
        n = strlen(errstr);
    }
    if (n < len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr + n, len - n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* The [model] keys each model reads: those every model reads (below), then
 * its engine's and its own, which the table of models says (engine_reads).
 * A [model] key given (in the file or by --set) that the chosen model does
 * not read is named in a warning (config_warnings), with the models that do
 * read it. */
#define EVERY_MODEL_KEYS                                                                           \
    "kind,dim,batch_events,lr_sparse,lr_dense,l2_sparse,l2_dense,admit_after,expire_s,seed"

static int model_reads(const model_ops_t *m, const char *key)
{
    return list_has(EVERY_MODEL_KEYS, key) || (m && engine_reads(m, key));
}

int config_warnings(const fr_config_t *c, char *buf, size_t len)
{
    int n = 0;
    size_t at = 0;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++) {
        const ckey_t *k = &keys[i];
        if (strcmp(k->section, "model") != 0 || c->src.line[i] == 0 ||
            model_reads(model_find(c->model), k->key))
            continue;
        char where[CONFIG_STR + 32], by[128] = "";
        size_t bl = 0;
        where_from(c, k, where, sizeof(where));
        const model_ops_t *mo;
        for (int m = 0; (mo = model_at(m)) != NULL; m++)
            if (engine_reads(mo, k->key) && bl < sizeof(by))
                bl += (size_t)snprintf(by + bl, sizeof(by) - bl, "%s%s", bl ? ", " : "", mo->name);
        if (at < len)
            at += (size_t)snprintf(buf + at, len - at,
                                   "%s%s[model] %s does not apply to model %s (read by %s): "
                                   "ignored",
                                   n ? "; " : "", where, k->key, c->model, by);
        n++;
    }
    return n;
}

int config_validate(const fr_config_t *c, char *errstr, size_t len)
{
    char why[256], value[CONFIG_STR], label[128], where[CONFIG_STR + 32];
    for (size_t i = 0; i < NKEYS; i++) {
        const ckey_t *k = &keys[i];
        if (check_key(c, k, why, sizeof(why)) < 0) {
            format_value(c, k, value, sizeof(value));
            snprintf(label, sizeof(label), "[%s] %s", k->section, k->key);
            where_from(c, k, where, sizeof(where));
            value_error(errstr, len, where, label, k, value, why);
            return -1;
        }
    }

    neumf_config_t nc;
    neumf_config_default(&nc);
    if (widths_parse(c->mlp, 2, NEUMF_MAX_LAYERS, nc.mlp, &nc.nmlp, why, sizeof(why)) < 0)
        return vfail(c, errstr, len, "model", "mlp", "[model] mlp = %s: %s", c->mlp, why);
    if (nc.mlp[0] < 2 || nc.mlp[0] % 2)
        return vfail(c, errstr, len, "model", "mlp",
                     "[model] mlp = %s: the first width (user and item MLP embeddings side by "
                     "side) must be even",
                     c->mlp);

    dssm_config_t dc;
    dssm_config_default(&dc);
    if (widths_parse(c->tower, 1, DSSM_MAX_LAYERS, dc.tower, &dc.ntower, why, sizeof(why)) < 0)
        return vfail(c, errstr, len, "model", "tower", "[model] tower = %s: %s", c->tower, why);

    const char *bad;
    if (check_list(c->topics, &bad) < 0)
        return vfail(c, errstr, len, "kafka", "topics", "[kafka] topics = %s: %s", c->topics, bad);
    if (c->dead_letter_topic[0]) {
        if (strcspn(c->dead_letter_topic, ", \t") != strlen(c->dead_letter_topic))
            return vfail(c, errstr, len, "kafka", "dead_letter_topic",
                         "[kafka] dead_letter_topic = %s: one topic name expected",
                         c->dead_letter_topic);
        if (list_has(c->topics, c->dead_letter_topic))
            return vfail(c, errstr, len, "kafka", "dead_letter_topic",
                         "[kafka] dead_letter_topic = %s: also in [kafka] topics (the daemon "
                         "would consume its own dead letters)",
                         c->dead_letter_topic);
    }

    if (c->redis_nodes[0]) { /* host:port,host:port */
        if (!c->redis_cluster)
            return vfail(c, errstr, len, "redis", "nodes",
                         "[redis] nodes = %s: only with [redis] cluster = 1", c->redis_nodes);
        for (const char *p = c->redis_nodes;;) {
            size_t n = strcspn(p, ",");
            const char *colon = memchr(p, ':', n);
            char *end;
            long port = colon ? strtol(colon + 1, &end, 10) : 0;
            if (!colon || colon == p || end != p + n || port < 1 || port > 65535 ||
                memchr(p, ' ', n))
                return vfail(c, errstr, len, "redis", "nodes",
                             "[redis] nodes = %s: '%.*s' is not host:port", c->redis_nodes, (int)n,
                             p);
            if (!p[n])
                break;
            p += n + 1;
        }
    }

    if (c->model_topic[0]) {
        if (list_has(c->topics, c->model_topic) || !strcmp(c->model_topic, c->dead_letter_topic))
            return vfail(c, errstr, len, "cluster", "model_topic",
                         "[cluster] model_topic = %s: also an input or the dead-letter topic",
                         c->model_topic);
    }

    /* the properties may hold a password: the value is not echoed */
    const char *key = "properties";
    if (kafka_config_check(c, &key, why, sizeof(why)) < 0) {
        if (!strcmp(key, "properties"))
            return vfail(c, errstr, len, "kafka", key, "[kafka] properties: %s", why);
        format_value(c, key_find("kafka", key), value, sizeof(value));
        return vfail(c, errstr, len, "kafka", key, "[kafka] %s = %s: %s", key, value, why);
    }

    event_kinds_t kinds; /* "" configures no extra kind */
    if (event_kinds_parse(&kinds, c->kinds, why, sizeof(why)) < 0)
        return vfail(c, errstr, len, "events", "kinds", "[events] kinds = %s: %s", c->kinds, why);

    /* start-up listens only with a port */
    if (c->stats_port > 0 && stats_check_listen(c->stats_listen, why, sizeof(why)) < 0)
        return vfail(c, errstr, len, "stats", "listen",
                     "[stats] listen = %s: not a listen address %s", c->stats_listen, why);

    modelcfg_t *m = malloc(sizeof(*m)); /* some 10 KB of field names */
    if (!m) {
        snprintf(errstr, len, "config: out of memory");
        return -1;
    }
    key = "kind";
    int rc = modelcfg_from(m, c, &key, why, sizeof(why));
    free(m);
    if (rc < 0)
        return vfail(c, errstr, len, "model", key, "%s", why);
    return 0;
}

/* ---- SIGHUP ---- */

int config_reload(fr_config_t *live, const char *path, char *const *overrides, int noverrides,
                  char *errstr, size_t len)
{
    fr_config_t next;
    config_defaults(&next);
    if (path && config_load(&next, path, errstr, len) < 0)
        return -1;
    for (int i = 0; i < noverrides; i++)
        if (config_set(&next, overrides[i], errstr, len) < 0)
            return -1;
    if (config_validate(&next, errstr, len) < 0)
        return -1;

    int changed = 0;
    size_t o = 0;
    if (len)
        errstr[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++) {
        const ckey_t *k = &keys[i];
        if (value_equal(live, &next, k))
            continue;
        if (k->flags & CF_HOT) {
            memcpy(field(live, k), cfield(&next, k), field_size(k));
            live->src.line[i] = next.src.line[i];
            changed++;
        } else if (o < len) {
            int n = snprintf(errstr + o, len - o, "%s[%s] %s", o ? ", " : "restart needed for ",
                             k->section, k->key);
            o = n < 0 ? len : o + (size_t)n;
        }
    }
    return changed;
}

int config_hot_changes(const fr_config_t *before, const fr_config_t *after, char *buf, size_t len)
{
    char from[CONFIG_STR], to[CONFIG_STR];
    int n = 0;
    size_t o = 0;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++) {
        const ckey_t *k = &keys[i];
        if (!(k->flags & CF_HOT) || value_equal(before, after, k))
            continue;
        format_value(before, k, from, sizeof(from));
        format_value(after, k, to, sizeof(to));
        if (o < len) {
            int w = snprintf(buf + o, len - o, "%s%s %s -> %s", n ? ", " : "", k->key, from, to);
            o = w < 0 ? len : o + (size_t)w;
        }
        n++;
    }
    return n;
}

/* ---- writing ---- */

void config_write(const fr_config_t *c, FILE *f)
{
    char value[CONFIG_STR + 32];
    const char *section = NULL;
    fprintf(f, "# freshrec configuration: every key, its doc line and default.\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const ckey_t *k = &keys[i];
        if (!section || strcmp(section, k->section)) {
            section = k->section;
            fprintf(f, "\n[%s]\n", section);
        }
        fprintf(f, "# %s (default: %s)\n", k->doc, key_default(k)[0] ? key_default(k) : "\"\"");
        format_value(c, k, value, sizeof(value));
        if (value[0])
            fprintf(f, "%s = %s\n", k->key, value);
        else
            fprintf(f, "%s =\n", k->key);
    }
}
