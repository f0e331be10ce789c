/* stats.c — the stats port: an evhttp server on the daemon's event loop that
 * renders a fresh metrics_t snapshot as Prometheus text (GET /metrics), as
 * JSON (GET /stats) or as a health verdict (GET /healthz), and one published
 * vector as JSON (GET /vector). Names and labels are the contract written
 * down in proto/README.md.
 * Not for: keeping the figures (the daemon does, in a metrics_t). */
#define _POSIX_C_SOURCE 200809L
#include "stats.h"

#include "dashboard.h"
#include "keys.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>

struct stats {
    struct evhttp *http;
    int port;
    stats_snapshot_fn fn;
    void *arg;
    stats_vector_fn vector_fn; /* NULL: /vector is not served */
    void *vector_arg;
    metrics_t snap; /* one request at a time: the loop is single-threaded */
};

static const char *const table_name[2] = {"users", "items"};

/* ---- formatting helpers ------------------------------------------------ */

/* The shortest of %.15g..%.17g that reads back as d; Prometheus spellings
 * of the non-finite values. Assumes the "C" numeric locale. */
static void fmt_double(char *b, size_t n, double d)
{
    if (isnan(d)) {
        snprintf(b, n, "NaN");
        return;
    }
    if (isinf(d)) {
        snprintf(b, n, "%s", d > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int p = 15; p <= 17; p++) {
        snprintf(b, n, "%.*g", p, d);
        if (strtod(b, NULL) == d)
            return;
    }
}

static void fmt_u64(char *b, size_t n, uint64_t v)
{
    snprintf(b, n, "%" PRIu64, v);
}

/* The bound of latency bucket i as an `le` value: "0.001" … "+Inf". */
static void fmt_le(char *b, size_t n, int i)
{
    if (i >= METRICS_LAT_BUCKETS - 1)
        snprintf(b, n, "+Inf");
    else
        fmt_double(b, n, metrics_lat_bounds[i]);
}

static int clamp_int(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---- Prometheus text format 0.0.4 -------------------------------------- */

typedef struct {
    const char *name;
    const char *value; /* not necessarily NUL-terminated within vmax */
    size_t vmax;
} label_t;

static void prom_family(struct evbuffer *o, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values escape backslash, double quote and newline. */
static void prom_label_value(struct evbuffer *o, const char *s, size_t max)
{
    size_t n = strnlen(s, max), start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = s[i] == '\\'   ? "\\\\"
                          : s[i] == '"'  ? "\\\""
                          : s[i] == '\n' ? "\\n"
                                         : NULL;
        if (esc == NULL)
            continue;
        evbuffer_add(o, s + start, i - start);
        evbuffer_add(o, esc, 2);
        start = i + 1;
    }
    evbuffer_add(o, s + start, n - start);
}

static void prom_sample(struct evbuffer *o, const char *name, const label_t *l, int nl,
                        const char *value)
{
    evbuffer_add_printf(o, "%s", name);
    for (int i = 0; i < nl; i++) {
        evbuffer_add_printf(o, "%s%s=\"", i == 0 ? "{" : ",", l[i].name);
        prom_label_value(o, l[i].value, l[i].vmax);
        evbuffer_add(o, "\"", 1);
    }
    evbuffer_add_printf(o, "%s %s\n", nl > 0 ? "}" : "", value);
}

static void prom_u64(struct evbuffer *o, const char *name, const label_t *l, int nl, uint64_t v)
{
    char b[32];
    fmt_u64(b, sizeof(b), v);
    prom_sample(o, name, l, nl, b);
}

static void prom_double(struct evbuffer *o, const char *name, const label_t *l, int nl, double v)
{
    char b[40];
    fmt_double(b, sizeof(b), v);
    prom_sample(o, name, l, nl, b);
}

/* A family with one unlabelled sample. */
static void prom_counter(struct evbuffer *o, const char *name, const char *help, uint64_t v)
{
    prom_family(o, name, "counter", help);
    prom_u64(o, name, NULL, 0, v);
}

static void prom_gauge(struct evbuffer *o, const char *name, const char *help, double v)
{
    prom_family(o, name, "gauge", help);
    prom_double(o, name, NULL, 0, v);
}

static void prom_gauge_u64(struct evbuffer *o, const char *name, const char *help, uint64_t v)
{
    prom_family(o, name, "gauge", help);
    prom_u64(o, name, NULL, 0, v);
}

/* A family with one sample per table. */
static void prom_tables(struct evbuffer *o, const char *name, const char *type, const char *help,
                        const uint64_t v[2])
{
    prom_family(o, name, type, help);
    for (int t = 0; t < 2; t++) {
        label_t l = {"table", table_name[t], 8};
        prom_u64(o, name, &l, 1, v[t]);
    }
}

void stats_render_prometheus(const metrics_t *m, struct evbuffer *out)
{
    const learner_stats_t *ls = &m->learner;
    const emb_stats_t *tab[2] = {&ls->users, &ls->items};
    char b[64];

    /* counters */
    const char *name = "freshrec_events_consumed_total";
    prom_family(out, name, "counter", "Valid events consumed, by event type.");
    for (int k = 0; k < clamp_int(m->kinds.n, 0, EVENT_MAX_KINDS); k++) {
        label_t l = {"type", m->kinds.kind[k].name, sizeof(m->kinds.kind[k].name)};
        prom_u64(out, name, &l, 1, m->consumed[k]);
    }
    name = "freshrec_events_invalid_total";
    prom_family(out, name, "counter", "Events refused as invalid, by reason.");
    for (int r = EVR_OK + 1; r < EVR_COUNT; r++) {
        const char *reason = event_reason_name((event_reason_t)r);
        label_t l = {"reason", reason, strlen(reason)};
        prom_u64(out, name, &l, 1, m->invalid[r]);
    }
    prom_counter(out, "freshrec_events_dead_letter_total",
                 "Refused events whose dead-letter copy the broker acknowledged.",
                 m->dead_letter_total);
    prom_counter(out, "freshrec_dead_letter_errors_total",
                 "Failed attempts to produce a dead-letter copy (each copy is produced again).",
                 m->dead_letter_errors_total);
    prom_gauge_u64(out, "freshrec_dead_letter_pending",
                   "Dead-letter copies not acknowledged yet; their messages' offsets are not "
                   "committed.",
                   m->dead_letter_pending);
    prom_gauge_u64(out, "freshrec_dead_letter_blocked",
                   "1 while a dead-letter copy keeps failing: consuming is stopped.",
                   (uint64_t)(m->dead_letter_blocked != 0));
    prom_counter(out, "freshrec_dead_letter_truncated_total",
                 "Dead-letter copies cut to dead_letter_max_bytes (original size in a header).",
                 m->dead_letter_truncated_total);
    prom_counter(out, "freshrec_events_learned_total",
                 "Examples learned (positives and explicit negatives).", ls->events);
    prom_counter(out, "freshrec_pairs_learned_total", "(user, item) pairs trained on.", ls->pairs);
    prom_counter(out, "freshrec_events_skipped_total",
                 "Events not learned for want of a valid negative.", ls->skipped);
    prom_counter(out, "freshrec_events_learner_refused_total",
                 "Events the learner refused (id too long, out of memory).", ls->bad);
    prom_counter(out, "freshrec_impressions_negative_total",
                 "Impressions unclicked within the label window, learned as negatives.",
                 m->impressions_negative_total);
    prom_counter(out, "freshrec_impressions_clicked_total",
                 "Impressions joined with a click within the label window.",
                 m->impressions_clicked_total);
    prom_counter(out, "freshrec_prequential_ranked_total",
                 "Events ranked against sampled items before being learned.", ls->preq_n);
    prom_counter(out, "freshrec_publish_total", "Publish rounds completed.", m->publish_total);
    prom_counter(out, "freshrec_nonfinite_batches_total",
                 "Micro-batches not learned: their loss or gradient was not finite.",
                 m->learner.nonfinite);
    prom_counter(out, "freshrec_checkpoint_total", "Checkpoints written durably.",
                 m->checkpoint_total);
    prom_counter(out, "freshrec_checkpoint_errors_total",
                 "Checkpoints that could not be written (offsets then stay uncommitted).",
                 m->checkpoint_errors_total);
    prom_counter(out, "freshrec_checkpoint_skipped_total",
                 "Checkpoint timer ticks skipped: the previous checkpoint was still being written.",
                 m->checkpoint_skipped_total);
    prom_counter(out, "freshrec_publish_keys_total", "Vectors written to Redis.",
                 m->publish_keys_total);
    prom_counter(out, "freshrec_publish_bytes_total", "Value bytes written to Redis.",
                 m->publish_bytes_total);
    prom_counter(out, "freshrec_publish_errors_total", "Failed Redis writes (each is retried).",
                 m->publish_errors_total);
    uint64_t v[2];
    for (int t = 0; t < 2; t++)
        v[t] = tab[t]->admitted;
    prom_tables(out, "freshrec_table_admitted_total", "counter",
                "Ids that got an embedding row of their own.", v);
    for (int t = 0; t < 2; t++)
        v[t] = tab[t]->expired;
    prom_tables(out, "freshrec_table_expired_total", "counter",
                "Ids removed by expiry or eviction.", v);
    for (int t = 0; t < 2; t++)
        v[t] = tab[t]->evicted;
    prom_tables(out, "freshrec_table_evicted_total", "counter",
                "Ids evicted (least recently seen) to keep the table within max_users/max_items.",
                v);
    prom_counter(out, "freshrec_deletes_total",
                 "DELs sent to Redis for the vectors of evicted or expired ids.", m->deletes_total);
    prom_gauge_u64(out, "freshrec_deletes_pending",
                   "Evicted or expired ids whose vector's DEL waits for a publish round.",
                   m->deletes_pending);

    /* gauges */
    prom_gauge(out, "freshrec_loss", "Training loss, exponentially weighted moving average.",
               ls->loss_ewma);
    prom_gauge(out, "freshrec_hr_at_10",
               "Prequential hit rate at 10 (ranked before learning), recent EWMA.",
               ls->preq_hr10_ewma);
    prom_gauge(out, "freshrec_ndcg_at_10",
               "Prequential NDCG at 10 (ranked before learning), recent EWMA.",
               ls->preq_ndcg10_ewma);
    prom_gauge_u64(out, "freshrec_checkpoint_bytes", "Size of the last checkpoint written.",
                   m->checkpoint_bytes);
    prom_gauge(out, "freshrec_checkpoint_seconds",
               "Time the last checkpoint took to write, whole (in a forked child: the loop goes "
               "on meanwhile).",
               m->checkpoint_seconds);
    prom_gauge_u64(out, "freshrec_checkpoint_failing",
                   "1 while the last checkpoint could not be written (offsets stay uncommitted).",
                   m->checkpoint_failing != 0);
    prom_gauge(out, "freshrec_checkpoint_stall_seconds",
               "Time the last checkpoint held the loop (the fork of its writer; the whole write "
               "when written on the loop).",
               m->checkpoint_stall_seconds);
    prom_gauge(out, "freshrec_checkpoint_stall_max_seconds",
               "Longest time a checkpoint held the loop since start.",
               m->checkpoint_stall_max_seconds);
    if (m->ctr) {
        prom_gauge(out, "freshrec_auc",
                   "Click-through models: progressive AUC (predicted before learned), over the "
                   "last examples.",
                   m->auc);
        prom_gauge(out, "freshrec_logloss",
                   "Click-through models: progressive logloss over every example learned.",
                   m->logloss);
    }
    prom_gauge_u64(out, "freshrec_impressions_pending",
                   "Impressions waiting for a click within the label window.",
                   m->impressions_pending);
    prom_gauge_u64(out, "freshrec_dirty_keys", "Vectors waiting to be written to Redis.",
                   m->dirty_keys);
    prom_counter(out, "freshrec_catchup_turns_total",
                 "Turns of the loop that took up to 8 batches, a backlog waiting.",
                 m->catchup_turns_total);
    name = "freshrec_consumer_lag";
    prom_family(out, name, "gauge",
                "Messages behind the high watermark, by topic and partition (when known).");
    for (int i = 0; i < clamp_int(m->nparts, 0, METRICS_MAX_PARTITIONS); i++) {
        const metrics_partition_t *p = &m->part[i];
        if (p->lag < 0)
            continue;
        snprintf(b, sizeof(b), "%" PRId32, p->partition);
        label_t l[2] = {{"topic", p->topic, sizeof(p->topic)}, {"partition", b, sizeof(b)}};
        prom_u64(out, name, l, 2, (uint64_t)p->lag);
    }
    for (int t = 0; t < 2; t++)
        v[t] = tab[t]->rows;
    prom_tables(out, "freshrec_table_rows", "gauge", "Embedding rows in use, fallback included.",
                v);
    for (int t = 0; t < 2; t++)
        v[t] = tab[t]->bytes;
    prom_tables(out, "freshrec_table_bytes", "gauge", "Memory held by the embedding table.", v);
    prom_gauge_u64(out, "freshrec_process_resident_memory_bytes", "Resident memory of freshrecd.",
                   m->rss_bytes);
    prom_gauge(out, "freshrec_uptime_seconds", "Seconds since freshrecd started.", m->uptime_s);
    prom_gauge_u64(out, "freshrec_redis_connected",
                   "1 when connected to Redis and it confirms writes within ack_timeout_ms.",
                   m->redis_connected != 0);
    prom_gauge(out, "freshrec_redis_last_ack_age_seconds",
               "Seconds since Redis last confirmed a write (a publish round or heartbeat).",
               m->redis_last_ack_age_s);
    prom_gauge_u64(out, "freshrec_consuming",
                   "1 when partitions are assigned and the consumer is healthy.",
                   m->consuming != 0);
    name = "freshrec_info";
    prom_family(out, name, "gauge", "Constant 1, labelled with the model served.");
    label_t lm = {"model", m->model, sizeof(m->model)};
    prom_u64(out, name, &lm, 1, 1);

    /* histogram: the per-bucket counts summed into cumulative le buckets */
    prom_family(out, "freshrec_publish_latency_seconds", "histogram",
                "Latency of publish rounds to Redis.");
    uint64_t cum = 0;
    for (int i = 0; i < METRICS_LAT_BUCKETS; i++) {
        cum += m->lat_bucket[i];
        fmt_le(b, sizeof(b), i);
        label_t l = {"le", b, sizeof(b)};
        prom_u64(out, "freshrec_publish_latency_seconds_bucket", &l, 1, cum);
    }
    prom_double(out, "freshrec_publish_latency_seconds_sum", NULL, 0, m->lat_sum);
    prom_u64(out, "freshrec_publish_latency_seconds_count", NULL, 0, m->lat_count);
}

/* ---- JSON -------------------------------------------------------------- */

static json_t *j_u64(uint64_t v)
{
    return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static json_t *j_real(double d)
{
    return isfinite(d) ? json_real(d) : json_null();
}

/* A string of at most max bytes; null when it is not UTF-8. */
static json_t *j_str(const char *s, size_t max)
{
    json_t *j = json_stringn(s, strnlen(s, max));
    return j ? j : json_null();
}

/* -1 ("unknown", "none") becomes null. */
static json_t *j_offset(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *json_events(const metrics_t *m)
{
    const learner_stats_t *ls = &m->learner;
    json_t *consumed = json_object(), *invalid = json_object();
    for (int k = 0; k < clamp_int(m->kinds.n, 0, EVENT_MAX_KINDS); k++) {
        size_t n = strnlen(m->kinds.kind[k].name, sizeof(m->kinds.kind[k].name));
        json_object_setn_new(consumed, m->kinds.kind[k].name, n, j_u64(m->consumed[k]));
    }
    for (int r = EVR_OK + 1; r < EVR_COUNT; r++)
        json_object_set_new(invalid, event_reason_name((event_reason_t)r), j_u64(m->invalid[r]));
    return json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:o, s:o, s:o, s:{s:o, s:o, s:o}}",
        "consumed", consumed, "invalid", invalid, "dead_letter", j_u64(m->dead_letter_total),
        "dead_letter_errors", j_u64(m->dead_letter_errors_total), "dead_letter_pending",
        j_u64(m->dead_letter_pending), "dead_letter_blocked", m->dead_letter_blocked != 0,
        "dead_letter_truncated", j_u64(m->dead_letter_truncated_total), "learned", j_u64(ls->events), "pairs", j_u64(ls->pairs),
        "skipped", j_u64(ls->skipped), "learner_refused", j_u64(ls->bad), "impressions", "pending",
        j_u64(m->impressions_pending), "negative", j_u64(m->impressions_negative_total), "clicked",
        j_u64(m->impressions_clicked_total));
}

static json_t *json_publish(const metrics_t *m)
{
    json_t *buckets = json_object();
    uint64_t cum = 0;
    char b[40];
    for (int i = 0; i < METRICS_LAT_BUCKETS; i++) {
        cum += m->lat_bucket[i];
        fmt_le(b, sizeof(b), i);
        json_object_set_new(buckets, b, j_u64(cum));
    }
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:{s:o, s:o, s:o}}", "total",
                     j_u64(m->publish_total), "keys", j_u64(m->publish_keys_total), "bytes",
                     j_u64(m->publish_bytes_total), "errors", j_u64(m->publish_errors_total),
                     "dirty_keys", j_u64(m->dirty_keys), "latency_seconds", "count",
                     j_u64(m->lat_count), "sum", j_real(m->lat_sum), "buckets", buckets);
}

static json_t *json_consumer(const metrics_t *m)
{
    json_t *parts = json_array();
    for (int i = 0; i < clamp_int(m->nparts, 0, METRICS_MAX_PARTITIONS); i++) {
        const metrics_partition_t *p = &m->part[i];
        json_array_append_new(parts, json_pack("{s:o, s:i, s:o, s:o}", "topic",
                                               j_str(p->topic, sizeof(p->topic)), "partition",
                                               (int)p->partition, "lag", j_offset(p->lag), "stored",
                                               j_offset(p->stored)));
    }
    return json_pack("{s:b, s:o, s:o}", "consuming", m->consuming != 0, "partitions", parts,
                     "catchup_turns", j_u64(m->catchup_turns_total));
}

static json_t *json_table(const emb_stats_t *t)
{
    return json_pack("{s:o, s:o, s:o, s:o, s:o}", "rows", j_u64(t->rows), "bytes", j_u64(t->bytes),
                     "admitted", j_u64(t->admitted), "expired", j_u64(t->expired), "entries",
                     j_u64(t->entries));
}

static int dump_to_evbuffer(const char *buf, size_t size, void *data)
{
    return evbuffer_add((struct evbuffer *)data, buf, size);
}

void stats_render_json(const metrics_t *m, struct evbuffer *out)
{
    const learner_stats_t *ls = &m->learner;
    char reason[256];
    int healthy = stats_healthy(m, reason, sizeof(reason));
    json_t *root = json_pack(
        "{s:o, s:{s:o, s:o, s:o, s:o}, s:o, s:o, s:{s:o, s:o}, s:{s:o, s:o}, s:{s:b, s:b, s:o}, "
        "s:o, s:b, s:s}",
        "events", json_events(m), "learning", "loss", j_real(ls->loss_ewma), "hr_at_10",
        j_real(ls->preq_hr10_ewma), "ndcg_at_10", j_real(ls->preq_ndcg10_ewma),
        "prequential_ranked", j_u64(ls->preq_n), "publish", json_publish(m), "consumer",
        json_consumer(m), "tables", "users", json_table(&ls->users), "items",
        json_table(&ls->items), "process", "rss_bytes", j_u64(m->rss_bytes), "uptime_seconds",
        j_real(m->uptime_s), "redis", "connected", m->redis_connected != 0, "link",
        m->redis_link != 0, "last_ack_age_seconds", j_real(m->redis_last_ack_age_s), "model",
        j_str(m->model, sizeof(m->model)), "healthy", healthy, "health_reason", reason);
    if (root == NULL) { /* out of memory: json_pack has released what it was given */
        evbuffer_add_printf(out, "{}\n");
        return;
    }
    /* when these figures were taken, by the daemon's wall clock: the dashboard's
     * time axis (its rates divide by process.uptime_seconds, the monotonic one) */
    json_object_set_new(root, "time_ms", json_integer(m->time_ms));
    json_object_set_new(
        root, "checkpoint",
        json_pack("{s:o, s:o, s:b, s:o, s:o}", "total", j_u64(m->checkpoint_total), "errors",
                  j_u64(m->checkpoint_errors_total), "failing", m->checkpoint_failing != 0,
                  "seconds", j_real(m->checkpoint_seconds), "bytes", j_u64(m->checkpoint_bytes)));
    if (m->ctr) {
        json_t *learning = json_object_get(root, "learning");
        json_object_set_new(learning, "auc", j_real(m->auc));
        json_object_set_new(learning, "logloss", j_real(m->logloss));
    }
    json_dump_callback(root, dump_to_evbuffer, out, JSON_INDENT(2));
    evbuffer_add(out, "\n", 1);
    json_decref(root);
}

/* ---- health ------------------------------------------------------------ */

int stats_healthy(const metrics_t *m, char *reason, size_t len)
{
    const char *why[4];
    int n = 0;
    if (!m->consuming)
        why[n++] = "not consuming (no partitions assigned)";
    if (!m->redis_connected) /* the link up: Redis hangs (stopped, swapping, blocked) */
        why[n++] = m->redis_link ? "redis not confirming writes" : "redis disconnected";
    if (m->dead_letter_blocked)
        why[n++] = "dead-letter topic refusing copies (consuming stopped, offsets held)";
    if (m->checkpoint_failing)
        why[n++] = "checkpoints failing (offsets stay uncommitted)";
    if (len > 0) {
        size_t at = 0;
        reason[0] = '\0';
        for (int i = 0; i < (n ? n : 1) && at < len; i++) {
            int w = snprintf(reason + at, len - at, "%s%s", i ? "; " : "", n ? why[i] : "ok");
            at += w > 0 ? (size_t)w : 0;
        }
    }
    return m->consuming && m->redis_connected && !m->dead_letter_blocked;
}

/* ---- vectors ----------------------------------------------------------- */

void stats_render_vector(char side, const char *id, size_t len, const float *v, int dim,
                         struct evbuffer *out)
{
    static const char hexd[] = "0123456789abcdef";
    size_t nb = 4 * (size_t)(dim > 0 ? dim : 0);
    unsigned char *b = malloc(nb ? nb : 1);
    char *hex = malloc(2 * nb + 1);
    json_t *floats = json_array(), *root = NULL;
    if (b && hex && floats) {
        keys_f32le_encode(b, v, nb / 4); /* the bytes the publisher SETs */
        for (size_t i = 0; i < nb; i++) {
            hex[2 * i] = hexd[b[i] >> 4];
            hex[2 * i + 1] = hexd[b[i] & 15];
        }
        hex[2 * nb] = '\0';
        for (int i = 0; i < dim; i++)
            json_array_append_new(floats, j_real(v[i]));
        root = json_pack("{s:s, s:o, s:i, s:s, s:o}", "side", side == 'u' ? "user" : "item", "id",
                         j_str(id, len), "dim", dim, "f32le", hex, "vector", floats);
        floats = NULL; /* owned by root now (or released by json_pack) */
    }
    if (root)
        json_dump_callback(root, dump_to_evbuffer, out, JSON_REAL_PRECISION(9));
    else
        evbuffer_add_printf(out, "{}");
    evbuffer_add(out, "\n", 1);
    json_decref(root);
    json_decref(floats);
    free(b);
    free(hex);
}

/* "user=ID" or "item=ID", the id percent-encoded ('+' is a plus). 0 with the
 * decoded id (the caller frees it), or -1 and why. */
static int vector_query(const char *q, char *side, char **id, size_t *len, const char **why)
{
    *id = NULL;
    if (q == NULL || (strncmp(q, "user=", 5) != 0 && strncmp(q, "item=", 5) != 0)) {
        *why = "want /vector?user=ID or /vector?item=ID";
        return -1;
    }
    if (strchr(q, '&')) {
        *why = "one parameter: user=ID or item=ID";
        return -1;
    }
    *side = q[0] == 'u' ? 'u' : 'i';
    *id = evhttp_uridecode(q + 5, 0, len);
    if (*id == NULL || *len == 0) {
        free(*id);
        *id = NULL;
        *why = "an empty id";
        return -1;
    }
    return 0;
}

void stats_set_vector_fn(stats_t *s, stats_vector_fn fn, void *arg)
{
    if (s == NULL)
        return;
    s->vector_fn = fn;
    s->vector_arg = arg;
}

/* ---- HTTP -------------------------------------------------------------- */

static void reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                  struct evbuffer *body)
{
    /* evhttp (2.1) would send the body after a HEAD response, where a client
     * keeping the connection alive would read it as the next response. */
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
        evbuffer_drain(body, evbuffer_get_length(body));
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, body);
}

static void reply_vector(stats_t *s, struct evhttp_request *req, const char *query,
                         struct evbuffer *body)
{
    const char *text = "text/plain; charset=utf-8", *why = NULL;
    char side;
    char *id;
    size_t len;
    if (vector_query(query, &side, &id, &len, &why)) {
        evbuffer_add_printf(body, "bad request: %s\n", why);
        reply(req, HTTP_BADREQUEST, "Bad Request", text, body);
        return;
    }
    static float v[STATS_VECTOR_MAX]; /* one request at a time: the loop is single-threaded */
    int dim = s->vector_fn(s->vector_arg, side, id, len, v, STATS_VECTOR_MAX);
    if (dim > STATS_VECTOR_MAX) {
        evbuffer_add_printf(body, "vector of %d floats: more than %d\n", dim, STATS_VECTOR_MAX);
        reply(req, HTTP_INTERNAL, "Internal Server Error", text, body);
    } else if (dim <= 0) {
        evbuffer_add_printf(body, "no such %s\n", side == 'u' ? "user" : "item");
        reply(req, HTTP_NOTFOUND, "Not Found", text, body);
    } else {
        stats_render_vector(side, id, len, v, dim, body);
        reply(req, HTTP_OK, "OK", "application/json", body);
    }
    free(id);
}

static void handle(struct evhttp_request *req, void *arg)
{
    stats_t *s = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum { P_NONE, P_METRICS, P_STATS, P_HEALTHZ, P_DASHBOARD, P_VECTOR } which = P_NONE;
    if (path && (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0))
        which = P_DASHBOARD;
    else if (path && strcmp(path, "/metrics") == 0)
        which = P_METRICS;
    else if (path && strcmp(path, "/stats") == 0)
        which = P_STATS;
    else if (path && strcmp(path, "/healthz") == 0)
        which = P_HEALTHZ;
    else if (path && strcmp(path, "/vector") == 0 && s->vector_fn)
        which = P_VECTOR;

    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    const char *text = "text/plain; charset=utf-8";
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (which == P_NONE) {
        evbuffer_add_printf(body, "not found; try /, /metrics, /stats, /healthz or /vector\n");
        reply(req, HTTP_NOTFOUND, "Not Found", text, body);
    } else if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        evbuffer_add_printf(body, "method not allowed\n");
        reply(req, HTTP_BADMETHOD, "Method Not Allowed", text, body);
    } else if (which == P_VECTOR) {
        reply_vector(s, req, evhttp_uri_get_query(uri), body);
    } else if (which == P_DASHBOARD) {
        evbuffer_add_reference(body, dashboard_html, dashboard_html_len, NULL, NULL);
        reply(req, HTTP_OK, "OK", "text/html; charset=utf-8", body);
    } else {
        memset(&s->snap, 0, sizeof(s->snap));
        s->fn(s->arg, &s->snap);
        if (which == P_METRICS) {
            stats_render_prometheus(&s->snap, body);
            reply(req, HTTP_OK, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
        } else if (which == P_STATS) {
            stats_render_json(&s->snap, body);
            reply(req, HTTP_OK, "OK", "application/json", body);
        } else {
            char why[256];
            if (stats_healthy(&s->snap, why, sizeof(why))) {
                /* serving: 200, but say what is wrong all the same */
                if (strcmp(why, "ok") == 0)
                    evbuffer_add_printf(body, "ok\n");
                else
                    evbuffer_add_printf(body, "degraded: %s\n", why);
                reply(req, HTTP_OK, "OK", text, body);
            } else {
                evbuffer_add_printf(body, "degraded: %s\n", why);
                reply(req, 503, "Service Unavailable", text, body);
            }
        }
    }
    evbuffer_free(body);
}

int stats_check_listen(const char *addr, char *why, size_t wlen)
{
    /* Numeric addresses only: a name would mean a blocking DNS lookup at
     * start-up, and "which interface" is what the setting means anyway. */
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM},
                    *ai = NULL;
    int gai = getaddrinfo(addr, NULL, &hints, &ai);
    if (gai != 0) {
        snprintf(why, wlen, "(want an IPv4 or IPv6 address): %s", gai_strerror(gai));
        return -1;
    }
    freeaddrinfo(ai);
    return 0;
}

stats_t *stats_start(struct event_base *base, const char *addr, int port, stats_snapshot_fn fn,
                     void *arg, char *errstr, size_t len)
{
    stats_t *s = NULL;
    if (base == NULL || addr == NULL || fn == NULL) {
        snprintf(errstr, len, "stats: missing event base, address or snapshot function");
        return NULL;
    }
    if (port < 0 || port > 65535) {
        snprintf(errstr, len, "stats: port %d is not in [0, 65535]", port);
        return NULL;
    }
    char why[160];
    if (stats_check_listen(addr, why, sizeof(why)) < 0) {
        snprintf(errstr, len, "stats: bad listen address '%s' %s", addr, why);
        return NULL;
    }

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(errstr, len, "stats: out of memory");
        goto err;
    }
    s->fn = fn;
    s->arg = arg;
    s->http = evhttp_new(base);
    if (s->http == NULL) {
        snprintf(errstr, len, "stats: evhttp_new failed");
        goto err;
    }
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
    evhttp_set_gencb(s->http, handle, s);
    evhttp_set_timeout(s->http, 10);             /* a stuck scraper is dropped */
    evhttp_set_max_headers_size(s->http, 16384); /* nothing here reads a body or */
    evhttp_set_max_body_size(s->http, 4096);     /* large headers */

    errno = 0;
    struct evhttp_bound_socket *sock =
        evhttp_bind_socket_with_handle(s->http, addr, (ev_uint16_t)port);
    if (sock == NULL) {
        snprintf(errstr, len, "stats: cannot listen on %s:%d: %s", addr, port,
                 errno ? strerror(errno) : "unknown error");
        goto err;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(errstr, len, "stats: getsockname: %s", strerror(errno));
        goto err;
    }
    if (ss.ss_family == AF_INET6)
        s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    else
        s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return s;

err:
    stats_stop(s);
    return NULL;
}

int stats_port(const stats_t *s)
{
    return s ? s->port : -1;
}

void stats_stop(stats_t *s)
{
    if (s == NULL)
        return;
    if (s->http)
        evhttp_free(s->http); /* closes the listener and open connections */
    free(s);
}
