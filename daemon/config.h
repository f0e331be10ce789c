/* config.h — freshrecd's configuration: an INI file (libinih) read at start,
 * `--set section.key=value` overrides, and a reload of the hot keys on SIGHUP.
 *
 * Every key is one row of the table in config.c (section, key, type, default,
 * bounds, hot or not, one line of doc); systemd/freshrec.conf documents every
 * row with its default, and a test keeps the two in step.
 * Not for: acting on a change (the daemon applies what config_reload returns). */
#ifndef FR_CONFIG_H
#define FR_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_STR 256
#define CONFIG_MAX_KEYS 96   /* rows of the key table, at most */
#define CONFIG_FROM_SET (-1) /* config_src_t line of a key set by --set */

/* Where each key's value came from, so that config_validate can name it. */
typedef struct {
    char path[CONFIG_STR];     /* the file config_load read last; "" none */
    int line[CONFIG_MAX_KEYS]; /* by table row: > 0 a line of path, CONFIG_FROM_SET, or 0 for
                                * the default (or a value written in code) */
} config_src_t;

typedef struct fr_config {
    /* [kafka] */
    char brokers[CONFIG_STR];           /* "" = none: --embedded starts a mock cluster */
    char topics[CONFIG_STR];            /* comma-separated, default "events" */
    char group_id[CONFIG_STR];          /* default "freshrec" */
    char dead_letter_topic[CONFIG_STR]; /* default "events.dead"; "" = none */
    int dead_letter_max_bytes;          /* most bytes of a refused message copied, default 524288 */
    int dead_letter_timeout_ms;         /* librdkafka's delivery bound per attempt, default 30000 */
    char assignor[CONFIG_STR];          /* "cooperative-sticky" (default) or "range" */
    int decode_thread;                  /* 1: a helper decodes ahead of the loop, default 1 */
    int batch_max;                      /* messages taken from the queue per batch, default 1000 */
    int embedded_partitions;           /* partitions of each topic in the mock cluster, default 4 */
    int session_timeout_ms;            /* consumer group session timeout, default 10000 */
    int fetch_wait_max_ms;             /* longest a fetch waits at the broker, default 10 */
    char kafka_properties[CONFIG_STR]; /* librdkafka "name=value,..." for consumer and producer */

    /* [redis] */
    char redis_host[CONFIG_STR];     /* default "127.0.0.1" */
    int redis_port;                  /* default 6379 */
    char redis_password[CONFIG_STR]; /* default "": no AUTH */
    char key_prefix[CONFIG_STR];     /* default "fr" */
    int vector_ttl_s;                /* default 604800 (7 days); 0 = no TTL */
    int publish_interval_ms;         /* hot; default 50 */
    int item_publish_interval_ms;    /* hot; default 200 */
    int publish_max_keys;            /* most vectors written per publish, default 100000 */
    int reconnect_max_ms;            /* backoff ceiling, default 5000 */
    int item_index;                  /* 1: keep <prefix>:<model>:items, default 1 */
    int redis_cluster;               /* 1: the Redis at host:port is a cluster node, default 0 */
    char redis_nodes[CONFIG_STR];    /* cluster: more nodes host:port,…, default "" */
    int redis_ack_timeout_ms;        /* writes unconfirmed this long: unreachable, default 3000 */

    /* [model] */
    char model[CONFIG_STR]; /* a model of the table (learner/models.c); its default by default */
    int dim;                /* default 32 */
    char tower[CONFIG_STR]; /* dssm tower widths, default "128,64" */
    char cat_fields[CONFIG_STR];  /* ctr, dssm: event cat features used as fields, default "" */
    char num_fields[CONFIG_STR];  /* ctr, dssm: event num features used as fields, default "" */
    char item_fields[CONFIG_STR]; /* dssm: those of the item tower, default "" */
    int feature_dim;              /* dssm: width of a categorical feature value, default 8 */
    char crosses[CONFIG_STR];     /* ctr: wide crosses "a:b,...", default "" */
    char deep[CONFIG_STR];        /* ctr: deep widths, default "64,32" */
    int cross_layers;             /* dcn, default 3 */
    int hash_bits;                /* ctr, default 0 */
    int wide_bits;                /* ctr, default 20 */
    double gamma;                 /* dssm cosine scale, default 10 */
    int history;                  /* hmf: a user's last items it reads, default 8 */
    double history_decay;         /* hmf: their weights decay^j, newest first, default 0.75 */
    double user_weight;           /* hmf: the user row's weight, default 0.5 */
    double transition_lr;         /* hmf: the transition map's learning rate, default 0 (none) */
    double replay;                /* events replayed from the buffer per event, default 0 */
    char mlp[CONFIG_STR];         /* default "64,32,16,8" */
    int negatives;                /* default 4 */
    char sampler[CONFIG_STR];     /* uniform (default) | popularity | inbatch | hard */
    double alpha;                 /* default 0.75 */
    int pool;                     /* default 32 */
    char loss[CONFIG_STR];        /* bce (default) | bpr | softmax */
    int batch_events;             /* default 256 */
    int threads;                  /* threads of a micro-batch (every model), default 1 */
    char optimizer[CONFIG_STR];   /* adagrad (default) | sgd */
    double lr_sparse;             /* hot; default 0.03 */
    double lr_dense;              /* hot; default 0.005 */
    double l2_sparse, l2_dense;   /* default 0, 0.00003 */
    double init_std;              /* default 0.01 */
    int ring_capacity;            /* default 100000 */
    int admit_after;              /* default 1 */
    int expire_s;                 /* default 0 = never */
    int max_users, max_items;     /* most ids a table keeps (every model), default 0 = no limit */
    double preq_rate;             /* default 0.01 */
    int auc_window;               /* click-through models' progressive AUC, default 10000 */
    int seed;                     /* default 1 */

    /* [events] */
    char kinds[CONFIG_STR]; /* weighted kinds, default "purchase:5" */
    int label_window_ms;    /* default 1800000 (30 min) */
    int max_future_skew_ms; /* hot; default 600000 (10 min) */
    int max_event_bytes;    /* default 65536 */

    /* [stats] */
    char stats_listen[CONFIG_STR]; /* default "127.0.0.1" */
    int stats_port;                /* default 9464; 0 = off */

    /* [daemon] */
    char log_level[CONFIG_STR];      /* hot; error | warn | info (default) | debug */
    int shutdown_timeout_ms;         /* default 10000 */
    char checkpoint_dir[CONFIG_STR]; /* default "": no checkpoints */

    /* [cluster] */
    char model_topic[CONFIG_STR]; /* "" (default): one member; else the model log's topic */
    char member[CONFIG_STR];      /* this member's name in the log; "": host-pid-random */
    int window_ms;                /* a window record every window_ms, default 200 */
    int window_max_events;        /* or sooner, after this many events, default 500 */
    int checkpoint_interval_s;    /* default 60 */

    config_src_t src; /* not a key: where each value came from */
} fr_config_t;

void config_defaults(fr_config_t *c);

/* Reads an INI file over c: keys the file leaves out keep their values. -1
 * (c untouched) and a message naming the file, line, section and key on an
 * unknown section or key, a key given twice in the file (a typo or a merge
 * slip, not an override: --set is the override), a bad value or a value out
 * of bounds. Values are taken literally (no quotes); `;` after a
 * space starts a comment, `#` and `;` start a comment line; leading spaces do
 * not continue the previous value. */
int config_load(fr_config_t *c, const char *path, char *errstr, size_t len);

/* Applies "section.key=value" (spaces around the key and the value are
 * ignored) with the checks of config_load. -1 (c untouched) and a message
 * naming section.key otherwise. */
int config_set(fr_config_t *c, const char *assignment, char *errstr, size_t len);

/* Every check that start-up makes on a value, so that --print-config and
 * SIGHUP refuse what start-up would: each value against the table again (for
 * fields set in code), and what no single key can: the MLP list and tower
 * (widths_parse), the topic list, the dead-letter
 * topic, the event kinds (event_kinds_parse), the Kafka consumer's and
 * producer's properties (kafka_config_check), the stats address
 * (stats_check_listen), the model and its fields (modelcfg_from). -1 and a
 * message "<file>:<line>: [section] key ..." ("--set: [section] key ..." for an
 * override; no prefix for a default or a value written in code). */
int config_validate(const fr_config_t *c, char *errstr, size_t len);

/* The [model] keys given (in a file or by --set) that the chosen model does
 * not read, as "<where>[model] tower does not apply to model neumf (read by
 * dssm): ignored; ..." in buf: how many. Not errors: --print-config and the
 * start-up log show them, and the daemon runs. */
int config_warnings(const fr_config_t *c, char *buf, size_t len);

/* For SIGHUP: reads path and the overrides again into a copy, validates it,
 * and copies only the hot keys into live. Returns the number of hot keys that
 * changed, or -1 (live untouched) with a message. Changed cold keys are named
 * in errstr as a warning when the return is ≥ 0. */
int config_reload(fr_config_t *live, const char *path, char *const *overrides, int noverrides,
                  char *errstr, size_t len);

/* The hot keys whose values differ between before and after, as
 * "key old -> new, ..." in table order: how many (the number of entries). */
int config_hot_changes(const fr_config_t *before, const fr_config_t *after, char *buf, size_t len);

/* Writes every key as an INI file, in table order grouped by section: a
 * `# doc (default: X)` line above `key = value`. config_load reads it back to
 * the same values. It includes the Redis password: a config file, not a log. */
void config_write(const fr_config_t *c, FILE *f);

/* The i-th key of the table, in table order: 0 with its section and INI key
 * name (static strings), or -1 once i is past the last key. For tests and for
 * listing the keys; values go through config_set and config_write. */
int config_key(size_t i, const char **section, const char **key);

#endif
