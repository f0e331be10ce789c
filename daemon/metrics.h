/* metrics.h — the figures freshrecd exports: plain counters and gauges that
 * the daemon updates, copied into a snapshot for each stats request.
 * Names, labels and units are listed in proto/README.md. */
#ifndef FR_METRICS_DAEMON_H
#define FR_METRICS_DAEMON_H

#include "event.h"
#include "learner.h"
#include "mlog.h"
#include "publish.h"

#include <stdint.h>

#define METRICS_MAX_PARTITIONS 256
#define METRICS_MAX_NODES 64   /* Redis Cluster nodes shown */
#define METRICS_MAX_UNSERVED 8 /* ranges of unserved slots /healthz names */
#define METRICS_LAT_BUCKETS 12 /* the last one is +Inf */

/* upper bounds (seconds) of the publish-latency histogram buckets */
extern const double metrics_lat_bounds[METRICS_LAT_BUCKETS - 1];

typedef struct metrics_partition {
    char topic[128];
    int32_t partition;
    int64_t lag;    /* high watermark − next offset to consume; -1 unknown */
    int64_t stored; /* offset stored for commit (next to consume); -1 none */
} metrics_partition_t;

typedef struct {
    event_kinds_t kinds;                  /* names of consumed[] */
    uint64_t consumed[EVENT_MAX_KINDS];   /* valid events by kind */
    uint64_t invalid[EVR_COUNT];          /* refused events by reason */
    uint64_t dead_letter_total;           /* refused events whose copy the broker acknowledged */
    uint64_t dead_letter_errors_total;    /* failed attempts to produce a copy (each retried) */
    uint64_t dead_letter_pending;         /* copies not acknowledged yet */
    uint64_t dead_letter_truncated_total; /* copies cut to [kafka] dead_letter_max_bytes */
    int dead_letter_blocked;             /* a copy keeps failing: consuming stopped, offsets held */
    uint64_t catchup_turns_total;        /* turns of the loop that took more than one batch */
    uint64_t impressions_pending;        /* waiting for a click in the label window */
    uint64_t impressions_negative_total; /* expired unclicked: learned as negatives */
    uint64_t impressions_clicked_total;  /* joined with a click in the window */

    learner_stats_t learner;
    uint64_t prequential_hits_total; /* ranked events whose item was in the top 10 */

    uint64_t publish_total;        /* publish rounds completed */
    uint64_t publish_keys_total;   /* vectors written */
    uint64_t publish_bytes_total;  /* value bytes written */
    uint64_t publish_errors_total; /* failed writes (each is retried) */
    uint64_t deletes_total;        /* DELs of gone ids' vectors sent */
    uint64_t deletes_pending;      /* gone ids whose DEL waits for a round */
    uint64_t dirty_keys;           /* vectors waiting to be written */
    /* publish latencies per bucket, not cumulative: lat_bucket[b] counts those in
     * (bound[b-1], bound[b]], the last one those above every bound (the renderer
     * sums them into Prometheus's cumulative le buckets) */
    uint64_t lat_bucket[METRICS_LAT_BUCKETS];
    double lat_sum;
    uint64_t lat_count;

    metrics_partition_t part[METRICS_MAX_PARTITIONS];
    int nparts;

    double uptime_s; /* monotonic, since start: what rates divide by */
    int64_t time_ms; /* wall clock at the snapshot, ms since the epoch */
    uint64_t rss_bytes;
    int consuming;               /* has an assignment and no fatal consumer error */
    int redis_link;              /* the TCP link to Redis is up */
    int redis_connected;         /* ... and writes are confirmed ([redis] ack_timeout_ms) */
    double redis_last_ack_age_s; /* since Redis last confirmed a write */
    /* [redis] cluster: the nodes written to, and the slots no connected
     * master serves (ranges, at most METRICS_MAX_UNSERVED) */
    int redis_cluster;
    pub_node_t nodes[METRICS_MAX_NODES];
    int nnodes;
    uint64_t unserved_slots;
    unsigned unserved_first[METRICS_MAX_UNSERVED], unserved_last[METRICS_MAX_UNSERVED];
    int nunserved;
    uint64_t checkpoint_total, checkpoint_errors_total;
    int checkpoint_failing;              /* the last checkpoint could not be written */
    uint64_t checkpoint_skipped_total;   /* timer ticks while the previous one was still written */
    double checkpoint_seconds;           /* the last checkpoint's whole write (a child's, mostly) */
    double checkpoint_stall_seconds;     /* how long the last one held the loop (the fork) */
    double checkpoint_stall_max_seconds; /* the longest such stall since start */
    uint64_t checkpoint_bytes;
    int progressive; /* the model's figures include the two below (engine_stats_t) */
    double auc;      /* progressive AUC over the window */
    double logloss;  /* progressive logloss over everything learned */
    char model[32];

    /* [cluster] model_topic (cluster.c); cluster 0: none of these is shown */
    int cluster;
    uint64_t cluster_verdicts[MLOG_VERDICTS]; /* model-log records by the ledger's verdict */
    uint64_t cluster_bad_records_total;       /* records that could not be decoded */
    uint64_t cluster_log_gaps_total;          /* stretches of the log gone before read */
    uint64_t cluster_windows_total;           /* window records this member produced */
    uint64_t cluster_window_bytes_total;      /* their bytes */
    uint64_t cluster_window_events_total;     /* events they cover */
    uint64_t cluster_claims_total;            /* claims this member produced */
    uint64_t cluster_produce_errors_total;    /* records not written (each is made up for) */
    uint64_t cluster_resyncs_total;           /* partitions claimed again after a lost window */
    uint64_t cluster_refused_own_total;       /* this member's windows the ledger refused */
    double cluster_apply_seconds_total;       /* applying accepted windows */
    double cluster_record_age_seconds;        /* the last applied record's age on arrival */
    double cluster_record_age_p99_seconds;    /* 99th percentile of the last 1024 */
    double cluster_log_position;              /* offset of the last record read; -1 none */
    double cluster_log_lag;                   /* records not read yet; -1 unknown */
    uint64_t cluster_partitions_live;         /* input partitions learned here now */
    uint64_t cluster_shared_digest;           /* engine_shared_digest, 52 bits */
    uint64_t publish_refused_older_total;     /* versioned writes refused: Redis held newer */
} metrics_t;

/* ---- the table of metrics --------------------------------------------
 * One row per figure the daemon exposes: both GET /metrics (Prometheus text)
 * and GET /stats (JSON) are rendered from metrics_table, in its order, and
 * tests/test_metrics_doc.c checks its names, types and labels against the
 * metrics table of proto/README.md. A new figure is a field of metrics_t, a
 * row here and a line there. */

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type_t;

typedef enum {
    METRIC_U64,  /* uint64_t: a JSON integer */
    METRIC_SIZE, /* size_t: a JSON integer */
    METRIC_F64,  /* double: a JSON real, null when not finite */
    METRIC_BOOL, /* int: 0/1 in Prometheus, false/true in JSON */
    METRIC_INFO, /* the constant 1, labelled; in JSON the label's value as a string */
} metric_kind_t;

#define METRIC_MAX_LABELS 2

/* One sample's label values (not necessarily NUL-terminated within max) and
 * its value. */
typedef struct {
    const char *label[METRIC_MAX_LABELS];
    size_t max[METRIC_MAX_LABELS];
    char buf[24]; /* room for a label value made on the spot (a partition number) */
    uint64_t u;   /* METRIC_U64, METRIC_SIZE, METRIC_BOOL, METRIC_INFO */
    double d;     /* METRIC_F64 */
} metric_sample_t;

typedef struct metric_def metric_def_t;
struct metric_def {
    const char *name; /* the Prometheus family; NULL: in /stats only */
    metric_type_t type;
    const char *help;
    const char *labels[METRIC_MAX_LABELS]; /* label names; NULL after the last */
    metric_kind_t kind;
    /* the source: an unlabelled value at offsetof(metrics_t, …), or, for a
     * labelled family, sample() over i = 0..count()-1 (0: no sample at i, as a
     * partition whose lag is unknown); off is then sample()'s to use */
    size_t off;
    int (*count)(const metrics_t *m);
    int (*sample)(const metric_def_t *d, const metrics_t *m, int i, metric_sample_t *s);
    int (*present)(const metrics_t *m); /* NULL: always; else only when it says 1 */
    /* where /stats puts it: '.'-separated keys, "{}" standing for the first
     * label's value; NULL: in /metrics only */
    const char *json;
};

extern const metric_def_t metrics_table[];
extern const int metrics_table_n;

/* The value of an unlabelled row (d->count == NULL) into s. */
void metrics_value(const metric_def_t *d, const metrics_t *m, metric_sample_t *s);

/* Records one publish latency in the histogram (a negative one counts as 0,
 * NaN is ignored). */
void metrics_observe_latency(metrics_t *m, double seconds);

/* Resident memory of this process (/proc/self/statm), 0 when unknown. */
uint64_t metrics_rss_bytes(void);

#endif
