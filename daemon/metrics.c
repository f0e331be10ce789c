/* metrics.c — the table of metrics (names, types, help, labels, where each
 * value comes from and where /stats puts it); the publish-latency histogram
 * of metrics_t: its bucket bounds and how one observation is recorded; the
 * process's resident memory.
 * Not for: rendering (stats.c). */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

uint64_t metrics_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

const double metrics_lat_bounds[METRICS_LAT_BUCKETS - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                            0.1,   0.25,   0.5,   1,    2.5};

void metrics_observe_latency(metrics_t *m, double seconds)
{
    if (isnan(seconds))
        return; /* one bad clock reading must not poison lat_sum */
    if (seconds < 0)
        seconds = 0; /* the clock stepped back */
    int b = 0;
    while (b < METRICS_LAT_BUCKETS - 1 && seconds > metrics_lat_bounds[b])
        b++;
    m->lat_bucket[b]++; /* b == METRICS_LAT_BUCKETS - 1: the +Inf bucket */
    m->lat_sum += seconds;
    m->lat_count++;
}

/* ---- the table ---------------------------------------------------------- */

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void metrics_value(const metric_def_t *d, const metrics_t *m, metric_sample_t *s)
{
    const char *p = (const char *)m + d->off;
    switch (d->kind) {
    case METRIC_U64:
        memcpy(&s->u, p, sizeof(uint64_t));
        break;
    case METRIC_SIZE: {
        size_t v;
        memcpy(&v, p, sizeof(v));
        s->u = v;
        break;
    }
    case METRIC_F64:
        memcpy(&s->d, p, sizeof(double));
        break;
    case METRIC_BOOL: {
        int v;
        memcpy(&v, p, sizeof(v));
        s->u = v != 0;
        break;
    }
    case METRIC_INFO:
        s->u = 1;
        break;
    }
}

/* by event type: consumed[k] */
static int kinds_count(const metrics_t *m)
{
    return clamp(m->kinds.n, 0, EVENT_MAX_KINDS);
}
static int kinds_sample(const metric_def_t *d, const metrics_t *m, int i, metric_sample_t *s)
{
    (void)d;
    s->label[0] = m->kinds.kind[i].name;
    s->max[0] = sizeof(m->kinds.kind[i].name);
    s->u = m->consumed[i];
    return 1;
}

/* by refusal reason: invalid[r], every reason but EVR_OK */
static int reasons_count(const metrics_t *m)
{
    (void)m;
    return EVR_COUNT - (EVR_OK + 1);
}
static int reasons_sample(const metric_def_t *d, const metrics_t *m, int i, metric_sample_t *s)
{
    (void)d;
    event_reason_t r = (event_reason_t)(EVR_OK + 1 + i);
    s->label[0] = event_reason_name(r);
    s->max[0] = strlen(s->label[0]);
    s->u = m->invalid[r];
    return 1;
}

/* by table: the emb_stats_t field at d->off of users, then items */
static int tables_count(const metrics_t *m)
{
    (void)m;
    return 2;
}
static int tables_sample(const metric_def_t *d, const metrics_t *m, int i, metric_sample_t *s)
{
    static const char *const names[2] = {"users", "items"};
    const emb_stats_t *t = i == 0 ? &m->learner.users : &m->learner.items;
    s->label[0] = names[i];
    s->max[0] = strlen(names[i]);
    const char *p = (const char *)t + d->off;
    if (d->kind == METRIC_SIZE) {
        size_t v;
        memcpy(&v, p, sizeof(v));
        s->u = v;
    } else {
        memcpy(&s->u, p, sizeof(uint64_t));
    }
    return 1;
}

/* by topic and partition: the lag, where it is known */
static int parts_count(const metrics_t *m)
{
    return clamp(m->nparts, 0, METRICS_MAX_PARTITIONS);
}
static int parts_sample(const metric_def_t *d, const metrics_t *m, int i, metric_sample_t *s)
{
    (void)d;
    const metrics_partition_t *p = &m->part[i];
    if (p->lag < 0)
        return 0;
    snprintf(s->buf, sizeof(s->buf), "%" PRId32, p->partition);
    s->label[0] = p->topic;
    s->max[0] = sizeof(p->topic);
    s->label[1] = s->buf;
    s->max[1] = sizeof(s->buf);
    s->u = (uint64_t)p->lag;
    return 1;
}

/* the model's name */
static int one(const metrics_t *m)
{
    (void)m;
    return 1;
}
static int model_sample(const metric_def_t *d, const metrics_t *m, int i, metric_sample_t *s)
{
    (void)d, (void)i;
    s->label[0] = m->model;
    s->max[0] = sizeof(m->model);
    s->u = 1;
    return 1;
}

static int has_progressive(const metrics_t *m)
{
    return m->progressive != 0;
}

static int has_cluster(const metrics_t *m)
{
    return m->cluster != 0;
}

/* model-log records by the ledger's verdict */
static int verdicts_count(const metrics_t *m)
{
    return m->cluster ? MLOG_VERDICTS : 0;
}
static int verdicts_sample(const metric_def_t *d, const metrics_t *m, int i, metric_sample_t *s)
{
    (void)d;
    s->label[0] = mlog_verdict_name((mlog_verdict_t)i);
    s->max[0] = strlen(s->label[0]);
    s->u = m->cluster_verdicts[i];
    return 1;
}

static int has_redis_cluster(const metrics_t *m)
{
    return m->redis_cluster != 0;
}

/* by Redis Cluster node: d->off is the pub_node_t field */
static int nodes_count(const metrics_t *m)
{
    return m->redis_cluster ? clamp(m->nnodes, 0, METRICS_MAX_NODES) : 0;
}
static int nodes_sample(const metric_def_t *d, const metrics_t *m, int i, metric_sample_t *s)
{
    const pub_node_t *n = &m->nodes[i];
    s->label[0] = n->addr;
    s->max[0] = sizeof(n->addr);
    const char *p = (const char *)n + d->off;
    if (d->kind == METRIC_F64)
        memcpy(&s->d, p, sizeof(double));
    else if (d->kind == METRIC_BOOL)
        s->u = (uint64_t) * (const int *)(const void *)p;
    else
        memcpy(&s->u, p, sizeof(uint64_t));
    return 1;
}

/* by node and kind of redirection */
static const char *const redirect_kinds[3] = {"moved", "ask", "tryagain"};
static int redirects_count(const metrics_t *m)
{
    return 3 * nodes_count(m);
}
static int redirects_sample(const metric_def_t *d, const metrics_t *m, int i, metric_sample_t *s)
{
    (void)d;
    const pub_node_t *n = &m->nodes[i / 3];
    s->label[0] = n->addr;
    s->max[0] = sizeof(n->addr);
    s->label[1] = redirect_kinds[i % 3];
    s->max[1] = strlen(s->label[1]);
    s->u = i % 3 == 0 ? n->moved : i % 3 == 1 ? n->ask : n->tryagain;
    return 1;
}

#define NODE(name, type, help, kind, f)                                                            \
    {                                                                                              \
        name, type, help, {"node"}, kind, offsetof(pub_node_t, f), nodes_count, nodes_sample,      \
            has_redis_cluster, NULL                                                                \
    }

#define OFF(f) offsetof(metrics_t, f)
#define TOFF(f) offsetof(emb_stats_t, f)
#define C(name, help, kind, f, json)                                                               \
    {                                                                                              \
        name, METRIC_COUNTER, help, {NULL}, kind, OFF(f), NULL, NULL, NULL, json                   \
    }
#define G(name, help, kind, f, json)                                                               \
    {                                                                                              \
        name, METRIC_GAUGE, help, {NULL}, kind, OFF(f), NULL, NULL, NULL, json                     \
    }
#define TABLE(name, type, help, kind, f, json)                                                     \
    {                                                                                              \
        name, type, help, {"table"}, kind, TOFF(f), tables_count, tables_sample, NULL, json        \
    }

const metric_def_t metrics_table[] = {
    /* counters */
    {"freshrec_events_consumed_total",
     METRIC_COUNTER,
     "Valid events consumed, by event type.",
     {"type"},
     METRIC_U64,
     0,
     kinds_count,
     kinds_sample,
     NULL,
     "events.consumed.{}"},
    {"freshrec_events_invalid_total",
     METRIC_COUNTER,
     "Events refused as invalid, by reason.",
     {"reason"},
     METRIC_U64,
     0,
     reasons_count,
     reasons_sample,
     NULL,
     "events.invalid.{}"},
    C("freshrec_events_dead_letter_total",
      "Refused events whose dead-letter copy the broker acknowledged.", METRIC_U64,
      dead_letter_total, "events.dead_letter"),
    C("freshrec_dead_letter_errors_total",
      "Failed attempts to produce a dead-letter copy (each copy is produced again).", METRIC_U64,
      dead_letter_errors_total, "events.dead_letter_errors"),
    G("freshrec_dead_letter_pending",
      "Dead-letter copies not acknowledged yet; their messages' offsets are not committed.",
      METRIC_U64, dead_letter_pending, "events.dead_letter_pending"),
    G("freshrec_dead_letter_blocked",
      "1 while a dead-letter copy keeps failing: consuming is stopped.", METRIC_BOOL,
      dead_letter_blocked, "events.dead_letter_blocked"),
    C("freshrec_dead_letter_truncated_total",
      "Dead-letter copies cut to dead_letter_max_bytes (original size in a header).", METRIC_U64,
      dead_letter_truncated_total, "events.dead_letter_truncated"),
    C("freshrec_events_learned_total", "Examples learned (positives and explicit negatives).",
      METRIC_U64, learner.events, "events.learned"),
    C("freshrec_pairs_learned_total", "(user, item) pairs trained on.", METRIC_U64, learner.pairs,
      "events.pairs"),
    C("freshrec_events_replayed_total",
      "Events learned again from the rolling buffer (experience replay, [model] replay).",
      METRIC_U64, learner.replayed, "events.replayed"),
    C("freshrec_events_skipped_total", "Events not learned for want of a valid negative.",
      METRIC_U64, learner.skipped, "events.skipped"),
    C("freshrec_events_learner_refused_total",
      "Events the learner refused (id too long, out of memory).", METRIC_U64, learner.bad,
      "events.learner_refused"),
    C("freshrec_impressions_negative_total",
      "Impressions unclicked within the label window, learned as negatives.", METRIC_U64,
      impressions_negative_total, "events.impressions.negative"),
    C("freshrec_impressions_clicked_total",
      "Impressions joined with a click within the label window.", METRIC_U64,
      impressions_clicked_total, "events.impressions.clicked"),
    C("freshrec_prequential_ranked_total",
      "Events ranked against sampled items before being learned.", METRIC_U64, learner.preq_n,
      "learning.prequential_ranked"),
    C("freshrec_prequential_hits_total",
      "Of those, the events whose item ranked in the top 10 (their ratio is the cumulative HR@10).",
      METRIC_U64, prequential_hits_total, "learning.prequential_hits"),
    C("freshrec_publish_total", "Publish rounds completed.", METRIC_U64, publish_total,
      "publish.total"),
    C("freshrec_nonfinite_batches_total",
      "Micro-batches not learned: their loss or gradient was not finite.", METRIC_U64,
      learner.nonfinite, NULL),
    C("freshrec_checkpoint_total", "Checkpoints written durably.", METRIC_U64, checkpoint_total,
      "checkpoint.total"),
    C("freshrec_checkpoint_errors_total",
      "Checkpoints that could not be written (offsets then stay uncommitted).", METRIC_U64,
      checkpoint_errors_total, "checkpoint.errors"),
    C("freshrec_checkpoint_skipped_total",
      "Checkpoint timer ticks skipped: the previous checkpoint was still being written.",
      METRIC_U64, checkpoint_skipped_total, NULL),
    C("freshrec_publish_keys_total", "Vectors written to Redis.", METRIC_U64, publish_keys_total,
      "publish.keys"),
    C("freshrec_publish_bytes_total", "Value bytes written to Redis.", METRIC_U64,
      publish_bytes_total, "publish.bytes"),
    C("freshrec_publish_errors_total", "Failed Redis writes (each is retried).", METRIC_U64,
      publish_errors_total, "publish.errors"),
    TABLE("freshrec_table_admitted_total", METRIC_COUNTER,
          "Ids that got an embedding row of their own.", METRIC_U64, admitted,
          "tables.{}.admitted"),
    TABLE("freshrec_table_expired_total", METRIC_COUNTER, "Ids removed by expiry or eviction.",
          METRIC_U64, expired, "tables.{}.expired"),
    TABLE("freshrec_table_evicted_total", METRIC_COUNTER,
          "Ids evicted (least recently seen) to keep the table within max_users/max_items.",
          METRIC_U64, evicted, NULL),
    C("freshrec_deletes_total", "DELs sent to Redis for the vectors of evicted or expired ids.",
      METRIC_U64, deletes_total, NULL),
    G("freshrec_deletes_pending",
      "Evicted or expired ids whose vector's DEL waits for a publish round.", METRIC_U64,
      deletes_pending, NULL),

    /* gauges */
    G("freshrec_loss", "Training loss, exponentially weighted moving average.", METRIC_F64,
      learner.loss_ewma, "learning.loss"),
    G("freshrec_hr_at_10", "Prequential hit rate at 10 (ranked before learning), recent EWMA.",
      METRIC_F64, learner.preq_hr10_ewma, "learning.hr_at_10"),
    G("freshrec_ndcg_at_10", "Prequential NDCG at 10 (ranked before learning), recent EWMA.",
      METRIC_F64, learner.preq_ndcg10_ewma, "learning.ndcg_at_10"),
    G("freshrec_checkpoint_bytes", "Size of the last checkpoint written.", METRIC_U64,
      checkpoint_bytes, "checkpoint.bytes"),
    G("freshrec_checkpoint_seconds",
      "Time the last checkpoint took to write, whole (in a forked child: the loop goes on "
      "meanwhile).",
      METRIC_F64, checkpoint_seconds, "checkpoint.seconds"),
    G("freshrec_checkpoint_failing",
      "1 while the last checkpoint could not be written (offsets stay uncommitted).", METRIC_BOOL,
      checkpoint_failing, "checkpoint.failing"),
    G("freshrec_checkpoint_stall_seconds",
      "Time the last checkpoint held the loop (the fork of its writer; the whole write when "
      "written on the loop).",
      METRIC_F64, checkpoint_stall_seconds, NULL),
    G("freshrec_checkpoint_stall_max_seconds",
      "Longest time a checkpoint held the loop since start.", METRIC_F64,
      checkpoint_stall_max_seconds, NULL),
    {"freshrec_auc",
     METRIC_GAUGE,
     "Click-through models: progressive AUC (predicted before learned), over the last examples.",
     {NULL},
     METRIC_F64,
     OFF(auc),
     NULL,
     NULL,
     has_progressive,
     "learning.auc"},
    {"freshrec_logloss",
     METRIC_GAUGE,
     "Click-through models: progressive logloss over every example learned.",
     {NULL},
     METRIC_F64,
     OFF(logloss),
     NULL,
     NULL,
     has_progressive,
     "learning.logloss"},
    G("freshrec_impressions_pending", "Impressions waiting for a click within the label window.",
      METRIC_U64, impressions_pending, "events.impressions.pending"),
    G("freshrec_dirty_keys", "Vectors waiting to be written to Redis.", METRIC_U64, dirty_keys,
      "publish.dirty_keys"),
    C("freshrec_catchup_turns_total",
      "Turns of the loop that took up to 8 batches, a backlog waiting.", METRIC_U64,
      catchup_turns_total, "consumer.catchup_turns"),
    /* /stats has each partition's lag and stored offset in consumer.partitions,
     * an array: stats.c's one special case */
    {"freshrec_consumer_lag",
     METRIC_GAUGE,
     "Messages behind the high watermark, by topic and partition (when known).",
     {"topic", "partition"},
     METRIC_U64,
     0,
     parts_count,
     parts_sample,
     NULL,
     NULL},
    TABLE("freshrec_table_rows", METRIC_GAUGE, "Embedding rows in use, fallback included.",
          METRIC_SIZE, rows, "tables.{}.rows"),
    TABLE("freshrec_table_bytes", METRIC_GAUGE, "Memory held by the embedding table.", METRIC_SIZE,
          bytes, "tables.{}.bytes"),
    TABLE(NULL, METRIC_GAUGE, "Ids known.", METRIC_SIZE, entries, "tables.{}.entries"),
    G("freshrec_process_resident_memory_bytes", "Resident memory of freshrecd.", METRIC_U64,
      rss_bytes, "process.rss_bytes"),
    G("freshrec_uptime_seconds", "Seconds since freshrecd started.", METRIC_F64, uptime_s,
      "process.uptime_seconds"),
    G("freshrec_redis_connected",
      "1 when connected to Redis and it confirms writes within ack_timeout_ms.", METRIC_BOOL,
      redis_connected, "redis.connected"),
    G(NULL, "The TCP link to Redis is up.", METRIC_BOOL, redis_link, "redis.link"),
    NODE("freshrec_redis_node_connected", METRIC_GAUGE,
         "Redis Cluster: 1 while the link to the node is up, by node (host:port).", METRIC_BOOL,
         connected),
    NODE("freshrec_redis_node_master", METRIC_GAUGE,
         "Redis Cluster: 1 when the node serves slots in the slot map last read.", METRIC_BOOL,
         master),
    NODE("freshrec_redis_node_round_seconds", METRIC_GAUGE,
         "Redis Cluster: the last publish round that wrote to the node, from its start to the "
         "node's last reply.",
         METRIC_F64, round_s),
    NODE("freshrec_redis_node_errors_total", METRIC_COUNTER,
         "Redis Cluster: commands the node failed (an error reply, the link lost); their keys are "
         "written again.",
         METRIC_U64, errors),
    {"freshrec_redis_node_redirections_total",
     METRIC_COUNTER,
     "Redis Cluster: redirections the node answered, by node and kind (moved, ask, tryagain).",
     {"node", "kind"},
     METRIC_U64,
     0,
     redirects_count,
     redirects_sample,
     has_redis_cluster,
     NULL},
    {"freshrec_redis_cluster_unserved_slots",
     METRIC_GAUGE,
     "Redis Cluster: slots that no connected master serves (their keys wait).",
     {NULL},
     METRIC_U64,
     OFF(unserved_slots),
     NULL,
     NULL,
     has_redis_cluster,
     "redis.unserved_slots"},
    G("freshrec_redis_last_ack_age_seconds",
      "Seconds since Redis last confirmed a write (a publish round or heartbeat).", METRIC_F64,
      redis_last_ack_age_s, "redis.last_ack_age_seconds"),
    G("freshrec_consuming", "1 when partitions are assigned and the consumer is healthy.",
      METRIC_BOOL, consuming, "consumer.consuming"),
    /* several members ([cluster] model_topic): shown only then */
    {"freshrec_cluster_records_total",
     METRIC_COUNTER,
     "Model-log records read, by the ledger's verdict (accepted, or why refused).",
     {"verdict"},
     METRIC_U64,
     0,
     verdicts_count,
     verdicts_sample,
     NULL,
     "cluster.records.{}"},
#define CC(name, help, kind, f, json)                                                              \
    {                                                                                              \
        name, METRIC_COUNTER, help, {NULL}, kind, OFF(f), NULL, NULL, has_cluster, json            \
    }
#define GC(name, help, kind, f, json)                                                              \
    {                                                                                              \
        name, METRIC_GAUGE, help, {NULL}, kind, OFF(f), NULL, NULL, has_cluster, json              \
    }
    CC("freshrec_cluster_bad_records_total", "Model-log records that could not be decoded.",
       METRIC_U64, cluster_bad_records_total, "cluster.bad_records"),
    CC("freshrec_cluster_log_gaps_total",
       "Stretches of the model log removed by the broker before this member read them (its "
       "shared state then differs from the others').",
       METRIC_U64, cluster_log_gaps_total, "cluster.log_gaps"),
    CC("freshrec_cluster_windows_total", "Window records this member produced to the model log.",
       METRIC_U64, cluster_windows_total, "cluster.windows"),
    CC("freshrec_cluster_window_bytes_total", "Bytes of the window records this member produced.",
       METRIC_U64, cluster_window_bytes_total, "cluster.window_bytes"),
    CC("freshrec_cluster_window_events_total", "Input messages the window records cover.",
       METRIC_U64, cluster_window_events_total, "cluster.window_events"),
    CC("freshrec_cluster_claims_total", "Claims of input partitions this member produced.",
       METRIC_U64, cluster_claims_total, "cluster.claims"),
    CC("freshrec_cluster_produce_errors_total",
       "Model-log records this member could not write (their events are learned again).",
       METRIC_U64, cluster_produce_errors_total, "cluster.produce_errors"),
    CC("freshrec_cluster_resyncs_total",
       "Partitions claimed again after a window of theirs was lost or refused.", METRIC_U64,
       cluster_resyncs_total, "cluster.resyncs"),
    CC("freshrec_cluster_refused_own_total", "This member's window records the ledger refused.",
       METRIC_U64, cluster_refused_own_total, "cluster.refused_own"),
    CC("freshrec_cluster_apply_seconds_total", "Time spent applying accepted window records.",
       METRIC_F64, cluster_apply_seconds_total, "cluster.apply_seconds"),
    GC("freshrec_cluster_record_age_seconds",
       "Age of the last applied window record when it was applied (staleness of shared rows).",
       METRIC_F64, cluster_record_age_seconds, "cluster.record_age_seconds"),
    GC("freshrec_cluster_record_age_p99_seconds",
       "99th percentile of the ages of the last 1024 applied window records.", METRIC_F64,
       cluster_record_age_p99_seconds, "cluster.record_age_p99_seconds"),
    GC("freshrec_cluster_log_position", "Offset of the last model-log record read; -1: none.",
       METRIC_F64, cluster_log_position, "cluster.log_position"),
    GC("freshrec_cluster_log_lag", "Model-log records not read yet; -1: unknown.", METRIC_F64,
       cluster_log_lag, "cluster.log_lag"),
    GC("freshrec_cluster_partitions_live", "Input partitions this member owns and learns now.",
       METRIC_U64, cluster_partitions_live, "cluster.partitions_live"),
    GC("freshrec_cluster_shared_digest",
       "Digest (52 bits) of the shared state (item rows, dense block): equal on every member "
       "that has applied the same records.",
       METRIC_U64, cluster_shared_digest, "cluster.shared_digest"),
    CC("freshrec_publish_refused_older_total",
       "Versioned writes Redis refused because it held a value of a later model-log position.",
       METRIC_U64, publish_refused_older_total, "publish.refused_older"),
    {"freshrec_info",
     METRIC_GAUGE,
     "Constant 1, labelled with the model served.",
     {"model"},
     METRIC_INFO,
     0,
     one,
     model_sample,
     NULL,
     "model"},

    /* the histogram: lat_bucket, lat_sum, lat_count (its renderers know them) */
    {"freshrec_publish_latency_seconds",
     METRIC_HISTOGRAM,
     "Latency of publish rounds to Redis.",
     {"le"},
     METRIC_U64,
     OFF(lat_bucket),
     NULL,
     NULL,
     NULL,
     "publish.latency_seconds"},
};
const int metrics_table_n = (int)(sizeof(metrics_table) / sizeof(metrics_table[0]));
