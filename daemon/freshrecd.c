/* freshrecd.c — the daemon: one libevent loop that consumes events from
 * Kafka, learns from each micro-batch at once, publishes the refreshed
 * vectors to Redis every publish interval, and answers on the stats port.
 *
 *   Kafka queue pipe → decode (proto/event) → join impressions and clicks
 *   → learner → offsets stored → dirty ids → publish timer → Redis
 *
 * Signals are libevent signal events, so they are handled in the loop:
 * SIGTERM/SIGINT stop consuming, publish everything dirty, commit and leave
 * the group; SIGHUP reloads the hot config keys. */
#define _POSIX_C_SOURCE 200809L
#include "ahead.h"
#include "clock.h"
#include "ckpt.h"
#include "collapse.h"
#include "config.h"
#include "engine.h"
#include "event.h"
#include "id.h"
#include "join.h"
#include "kafka.h"
#include "kern.h"
#include "keys.h"
#include "learner.h"
#include "log.h"
#include "metrics.h"
#include "modelcfg.h"
#include "publish.h"
#include "stats.h"

#include <event2/event.h>
#include <getopt.h>
#include <systemd/sd-daemon.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_OVERRIDES 64
#define NEG_CHUNK 256

typedef struct {
    fr_config_t cfg;
    const char *config_path;
    char *overrides[MAX_OVERRIDES];
    int noverrides;
    int embedded;

    struct event_base *base;
    engine_t *eng; /* learns whichever model runs (engine.h) */
    modelcfg_t mc; /* the model, its fields and where each feature goes */
    lrn_feat_t *pfeat; /* (batch_max + NEG_CHUNK, ncat + nnum) features of a batch's events */
    join_t *join;
    pub_t *pub;
    kafka_t *kafka;
    stats_t *stats;
    event_kinds_t kinds;
    struct event *publish_ev, *cron_ev, *sig_term, *sig_int, *sig_hup, *stop_ev;

    metrics_t m; /* counters; the learner's and Kafka's figures are added per snapshot */
    double t_start;
    int stopping;
    double stop_deadline;
    int ready_sent;          /* sd_notify READY=1 was sent */
    int publish_due;         /* the publish timer fired while a round was in flight */
    int meta_due;            /* the next round writes the meta hash whatever is dirty */
    int heartbeat;           /* the round in flight is a heartbeat (pub_heartbeat) */
    double redis_stall_t0;   /* clock_mono_s since which writes wait past ack_timeout_ms; 0 */
    double items_at;         /* clock_mono_s of the last round that wrote item vectors */
    char ckpt_path[CONFIG_STR + 32], ckpt_prev[CONFIG_STR + 40];
    struct event *ckpt_ev;
    struct event *ckpt_wait_ev; /* a checkpoint waits for dead-letter copies in flight */
    ckpt_bg_t bg;           /* the checkpoint being written by a forked child */
    struct event *bg_ev;    /* its report pipe */
    collapse_t *coll;       /* huge pages back after a child (NULL: none) */
    int coll_told;          /* that they cannot come back was logged */
    kafka_offset_t ck_off[KAFKA_MAX_OFFSETS]; /* what the checkpoint being written holds */
    int n_ck;
    kafka_offset_t resume[KAFKA_MAX_OFFSETS]; /* what a restored checkpoint held */
    int n_resume;
    uint64_t status_events;  /* events learned at the last STATUS */
    double status_t;

    /* per batch */
    lrn_event_t *pos;
    /* [kafka] decode_thread: a batch's messages are decoded into dec
     * (batch_max) by a helper, DECODE_CHUNK at a time, while the loop learns */
    ahead_t *ahead;
    struct decoded *dec;
    rd_kafka_message_t **dec_msgs;
    size_t dec_n;
    char *arena;
    size_t arena_cap;
    lrn_event_t negs[NEG_CHUNK];
    uint32_t *dirty;
    size_t dirty_cap;
    /* ids gone from the tables (evicted, expired) whose vectors are to be
     * deleted from Redis: records of side (1 byte), length (2), id bytes */
    unsigned char *gone;
    size_t gone_len, gone_cap;

    log_limit_t bad_log, kafka_log;
    char row_layout[128], dense_layout[512];
} app_t;

/* the tables whose rows are published: users and items */
static emb_table_t *users_table(app_t *a)
{
    return engine_table(a->eng, 0);
}

static emb_table_t *items_table(app_t *a)
{
    return engine_table(a->eng, 1);
}

/* ------------------------------------------------------------ learning */

static const char *arena_put(app_t *a, size_t *used, const char *s, size_t len);
static int pair_features_from(app_t *a, const event_t *ev, lrn_feat_t *fs, size_t *used);

/* The event an impression kept in the join, decoded again (it was valid when
 * it came in), or NULL when it kept none. Valid until the next call. */
static const event_t *kept_event(app_t *a, const lrn_event_t *ng)
{
    static event_t ev;
    char detail[64];
    if (!ng->payload || event_decode(&ev, ng->payload, ng->payload_len, &a->kinds,
                                     (size_t)a->cfg.max_event_bytes, detail,
                                     sizeof(detail)) != EVR_OK)
        return NULL;
    return &ev;
}

/* The impressions whose label window has passed without a click, learned
 * as explicit negatives; with features, each brings its own (kept with the
 * impression). The engine copies what it holds past this call. */
static void learn_negatives(app_t *a)
{
    size_t n;
    while ((n = join_take(a->join, a->negs, NEG_CHUNK)) > 0) {
        size_t used = 0;
        const int F = a->mc.ncat + a->mc.nnum;
        for (size_t i = 0; F && i < n; i++) {
            lrn_event_t *ng = &a->negs[i];
            const event_t *ev = kept_event(a, ng);
            if (ev) {
                ng->feat = a->pfeat + i * (size_t)F;
                ng->nfeat = pair_features_from(a, ev, a->pfeat + i * (size_t)F, &used);
            }
        }
        engine_learn(a->eng, a->negs, n);
    }
    engine_flush(a->eng); /* what the engine held of this batch: learned now */
}

/* The features of ev the model reads into fs (ncat + nnum at most), each
 * to its side and field (modelcfg.h); values go to the arena. Returns how
 * many. */
static int pair_features_from(app_t *a, const event_t *ev, lrn_feat_t *fs, size_t *used)
{
    int n = 0;
    for (int j = 0; j < ev->ncat; j++) {
        int f = modelcfg_field_index(a->mc.cat_names, a->mc.cat_from, a->mc.ncat,
                                     ev->cat[j].name);
        size_t vl = f < 0 ? 0 : strlen(ev->cat[j].value);
        const char *v = f < 0 ? NULL : arena_put(a, used, ev->cat[j].value, vl);
        if (v)
            fs[n++] = (lrn_feat_t){.side = a->mc.cat_side[f], .field = a->mc.cat_field[f],
                                   .h = id_hash(v, vl), .id = v, .len = vl};
    }
    for (int j = 0; j < ev->nnum; j++) {
        int f = modelcfg_field_index(a->mc.num_names, 0, a->mc.nnum, ev->num[j].name);
        if (f >= 0)
            fs[n++] = (lrn_feat_t){.side = a->mc.num_side[f], .dense = 1, .field = a->mc.num_field[f],
                                   .num = (float)ev->num[j].value};
    }
    return n;
}

/* The ids of a batch's events live in an arena until the batch is learned. */
static const char *arena_put(app_t *a, size_t *used, const char *s, size_t len)
{
    if (*used + len > a->arena_cap)
        return NULL; /* sized for a full batch of maximal ids: cannot happen */
    char *p = a->arena + *used;
    memcpy(p, s, len);
    *used += len;
    return p;
}

struct decoded {
    event_reason_t r;
    char detail[192];
    event_t ev;
};

/* messages decoded per chunk by the helper: small enough that the loop
 * thread waits for the first chunk only briefly (~0.1 ms), large enough that
 * claiming a chunk costs nothing by comparison */
#define DECODE_CHUNK 64

/* chunk c of the batch's messages, decoded (a consume error is left to
 * on_batch, which skips it as it does when it decodes itself) */
static void decode_chunk(void *arg, size_t c)
{
    app_t *a = arg;
    size_t i0 = c * DECODE_CHUNK, i1 = i0 + DECODE_CHUNK < a->dec_n ? i0 + DECODE_CHUNK : a->dec_n;
    for (size_t i = i0; i < i1; i++) {
        const rd_kafka_message_t *msg = a->dec_msgs[i];
        struct decoded *d = &a->dec[i];
        if (msg->err)
            continue;
        d->r = event_decode(&d->ev, msg->payload, msg->len, &a->kinds,
                            (size_t)a->cfg.max_event_bytes, d->detail, sizeof(d->detail));
    }
}

/* A refused message: counted, logged at a bounded rate, and a dead letter. */
static void refuse(app_t *a, const rd_kafka_message_t *msg, event_reason_t r, const char *detail)
{
    a->m.invalid[r]++;
    log_limited(&a->bad_log, LOG_WARN, "events", "%s [%d] offset %lld: %s: %s",
                rd_kafka_topic_name(msg->rkt), msg->partition, (long long)msg->offset,
                event_reason_name(r), detail);
    /* counted as delivered when the broker acknowledges the copy; until
     * then kafka holds this partition's offsets back */
    if (kafka_dead_letter(a->kafka, msg, event_reason_name(r), detail)) {
        a->m.dead_letter_errors_total++;
        if (a->cfg.dead_letter_topic[0])
            log_limited(&a->kafka_log, LOG_ERROR, "kafka",
                        "%s [%d] offset %lld: no memory for its dead-letter copy",
                        rd_kafka_topic_name(msg->rkt), msg->partition, (long long)msg->offset);
    }
}

static void on_batch(void *arg, rd_kafka_message_t **msgs, size_t n)
{
    app_t *a = arg;
    static struct decoded one; /* large (features): one at a time, on one thread */
    size_t npos = 0, used = 0, learned = 0;
    const int64_t wall = clock_wall_ms(); /* what event times are checked against */
    if (a->dec) {
        a->dec_msgs = msgs;
        a->dec_n = n;
        ahead_start(a->ahead, (n + DECODE_CHUNK - 1) / DECODE_CHUNK, decode_chunk, a);
    }

    /* the last message of each partition in this batch, to store offsets */
    const rd_kafka_message_t *last[64];
    int nlast = 0;

    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t *msg = msgs[i];
        if (a->dec && i % DECODE_CHUNK == 0)
            ahead_wait(a->ahead, i / DECODE_CHUNK);
        if (msg->err) {
            log_limited(&a->kafka_log, LOG_WARN, "kafka", "consume: %s",
                        rd_kafka_message_errstr(msg));
            continue;
        }
        int slot = -1;
        for (int k = 0; k < nlast; k++)
            if (last[k]->rkt == msg->rkt && last[k]->partition == msg->partition)
                slot = k;
        if (slot < 0 && nlast < 64)
            slot = nlast++;
        if (slot >= 0)
            last[slot] = msg;
        else
            kafka_store(a->kafka, msg); /* more partitions than slots: store at once */

        struct decoded *d = a->dec ? &a->dec[i] : &one;
        if (!a->dec)
            d->r = event_decode(&d->ev, msg->payload, msg->len, &a->kinds,
                                (size_t)a->cfg.max_event_bytes, d->detail, sizeof(d->detail));
        const event_t *ev = &d->ev;
        if (d->r != EVR_OK) {
            refuse(a, msg, d->r, d->detail);
            continue;
        }
        int64_t ts = ev->has_ts ? ev->ts_ms : 0;
        if (!ev->has_ts) {
            rd_kafka_timestamp_type_t tt;
            ts = rd_kafka_message_timestamp(msg, &tt);
            if (ts < 0)
                ts = wall;
        }
        /* event time is the largest ts seen: one from the future would decide
         * every waiting impression at once, and every later one on arrival */
        if (event_check_time(ts, ev->has_ts, wall, a->cfg.max_future_skew_ms, d->detail,
                             sizeof(d->detail)) != EVR_OK) {
            refuse(a, msg, EVR_FUTURE_TS, d->detail);
            continue;
        }
        a->m.consumed[ev->kind]++;
        lrn_id_t u = {id_hash(ev->user, ev->user_len), ev->user, ev->user_len};
        lrn_id_t it = {id_hash(ev->item, ev->item_len), ev->item, ev->item_len};
        if (ev->kind == EVENT_IMPRESSION) {
            /* an impression learned later (a negative) with its own features */
            int keep = a->mc.ncat + a->mc.nnum > 0;
            if (join_impression(a->join, &u, &it, ts, keep ? msg->payload : NULL,
                                keep ? msg->len : 0))
                log_limited(&a->bad_log, LOG_ERROR, "join", "out of memory: impression dropped");
            continue;
        }
        if (ev->kind == EVENT_CLICK)
            join_click(a->join, &u, &it, ts);
        else
            join_advance(a->join, ts);
        u.id = arena_put(a, &used, ev->user, ev->user_len);
        it.id = arena_put(a, &used, ev->item, ev->item_len);
        if (!u.id || !it.id)
            continue;
        lrn_feat_t *fs = a->pfeat ? a->pfeat + npos * (size_t)(a->mc.ncat + a->mc.nnum) : NULL;
        int nf = fs ? pair_features_from(a, ev, fs, &used) : 0;
        a->pos[npos++] = (lrn_event_t){.user = u,
                                       .item = it,
                                       .ts_ms = ts,
                                       .weight = ev->weight > 0 ? ev->weight : 1.0f,
                                       .feat = nf ? fs : NULL,
                                       .nfeat = nf};
        /* a micro-batch's worth: learned now, while the helper decodes on */
        if (npos - learned == (size_t)a->cfg.batch_events) {
            engine_learn(a->eng, a->pos + learned, npos - learned);
            learned = npos;
        }
    }
    if (a->dec)
        ahead_wait_all(a->ahead); /* each chunk was waited for: returns at once */
    if (npos > learned)
        engine_learn(a->eng, a->pos + learned, npos - learned);
    learn_negatives(a);
    /* learned: now their offsets may be committed */
    for (int k = 0; k < nlast; k++)
        kafka_store(a->kafka, last[k]);
}

/* ------------------------------------------------------------ publishing */

static void on_gone(void *arg, char side, const char *id, size_t len);

static void on_pub_fail(void *arg, char side, const char *id, size_t len)
{
    app_t *a = arg;
    if (side == 'U' || side == 'I') { /* a DEL: again in a later round */
        on_gone(a, side == 'U' ? 'u' : 'i', id, len);
        return;
    }
    emb_table_t *t = side == 'u' ? users_table(a) : items_table(a);
    uint32_t e = emb_find(t, id_hash(id, len), id, len);
    if (e != EMB_NONE)
        emb_mark_dirty(t, e); /* written again by a later round */
}

static void on_pub_done(void *arg, int ok, size_t keys, size_t bytes, double seconds)
{
    app_t *a = arg;
    if (a->publish_due) { /* a round longer than the interval: the next one starts now */
        a->publish_due = 0;
        event_active(a->publish_ev, EV_TIMEOUT, 0);
    }
    if (a->heartbeat) { /* it wrote no vector: shown by the redis gauges, not here */
        a->heartbeat = 0;
        return;
    }
    a->m.publish_total++;
    if (ok) {
        a->m.publish_keys_total += keys;
        a->m.publish_bytes_total += bytes;
        metrics_observe_latency(&a->m, seconds);
    } else {
        a->m.publish_errors_total++;
    }
}

/* The vector published for entry e of table t: into v, its dim returned.
 * Dims are bounded by the config: ≤ 3072 (NeuMF), 4096 (DSSM), 1024. */
static int published_vector(app_t *a, emb_table_t *t, char side, uint32_t e,
                            float v[STATS_VECTOR_MAX])
{
    (void)t;
    engine_vector(a->eng, side, e, v);
    return engine_vector_dim(a->eng);
}

/* An id left a table: its vector's DEL waits for the next round. */
static void on_gone(void *arg, char side, const char *id, size_t len)
{
    app_t *a = arg;
    if (len > 0xffff)
        return;
    if (a->gone_len + 3 + len > a->gone_cap) {
        size_t n = a->gone_cap ? a->gone_cap * 2 : 65536;
        while (n < a->gone_len + 3 + len)
            n *= 2;
        unsigned char *b = realloc(a->gone, n);
        if (!b) { /* the vector's TTL removes it in the end */
            log_limited(&a->bad_log, LOG_ERROR, "publish", "out of memory: a DEL is dropped");
            return;
        }
        a->gone = b;
        a->gone_cap = n;
    }
    unsigned char *r = a->gone + a->gone_len;
    r[0] = (unsigned char)side;
    r[1] = (unsigned char)(len >> 8);
    r[2] = (unsigned char)len;
    memcpy(r + 3, id, len);
    a->gone_len += 3 + len;
    a->m.deletes_pending++;
}

/* The DELs of gone ids, up to budget, first in the round; an id that came
 * back since is skipped (its new vector's SET follows). */
static size_t add_gone(app_t *a, size_t budget)
{
    size_t off = 0, n = 0;
    if (!a->gone_len)
        return 0;
    while (off < a->gone_len && n < budget) {
        const unsigned char *r = a->gone + off;
        char side = (char)r[0];
        size_t len = (size_t)r[1] << 8 | r[2];
        const char *id = (const char *)r + 3;
        emb_table_t *t = side == 'u' ? users_table(a) : items_table(a);
        if (emb_find(t, id_hash(id, len), id, len) == EMB_NONE) {
            pub_del(a->pub, side, id, len);
            a->m.deletes_total++;
            n++;
        }
        off += 3 + len;
        a->m.deletes_pending--;
    }
    memmove(a->gone, a->gone + off, a->gone_len - off);
    a->gone_len -= off;
    return n;
}

static size_t add_dirty(app_t *a, emb_table_t *t, char side, size_t budget)
{
    if (a->dirty_cap < budget) {
        uint32_t *d = realloc(a->dirty, budget * sizeof(uint32_t));
        if (!d)
            return 0;
        a->dirty = d;
        a->dirty_cap = budget;
    }
    size_t n = emb_take_dirty(t, a->dirty, budget);
    float v[STATS_VECTOR_MAX];
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *id = emb_entry_id(t, a->dirty[i], &len);
        int V = published_vector(a, t, side, a->dirty[i], v);
        pub_add(a->pub, side, id, len, v, V);
    }
    return n;
}

/* GET /vector on the stats port: what a publish round would write now. */
static int on_vector(void *arg, char side, const char *id, size_t len, float *out, int cap)
{
    app_t *a = arg;
    emb_table_t *t = side == 'u' ? users_table(a) : items_table(a);
    uint32_t e = emb_find(t, id_hash(id, len), id, len);
    if (e == EMB_NONE)
        return 0;
    float v[STATS_VECTOR_MAX];
    int V = published_vector(a, t, side, e, v);
    if (V <= cap)
        memcpy(out, v, sizeof(float) * (size_t)V);
    return V; /* more than cap: the caller refuses it */
}

/* A Redis without the meta hash lost what was published (restarted without
 * its data, an empty replica promoted, FLUSHALL): everything is dirty again. */
static void on_redis_empty(void *arg)
{
    app_t *a = arg;
    emb_table_t *tabs[2] = {users_table(a), items_table(a)};
    size_t n = 0;
    a->meta_due = 1; /* even with no vector to write */
    for (int k = 0; k < 2; k++)
        for (uint32_t e = 0; e < emb_entry_cap(tabs[k]); e++)
            if (emb_entry_alive(tabs[k], e)) {
                emb_mark_dirty(tabs[k], e);
                n++;
            }
    if (n)
        log_msg(LOG_INFO, "redis",
                "no meta hash in Redis (it lost its data?): publishing all %zu vectors again", n);
}

/* One round: every dirty user vector, every dirty item vector when
 * item_publish_interval_ms has passed since the last round that wrote them
 * (or the daemon is stopping), up to publish_max_keys, and the meta hash.
 * With nothing to write, a heartbeat instead: the meta hash's alive_ms, so
 * that readers see the daemon alive and every round asks Redis something
 * (freshrec_redis_connected then says within [redis] ack_timeout_ms that
 * Redis stopped taking writes, traffic or not).
 *
 * Items have a cadence of their own because each event changes 1 + negatives
 * item rows against one user row: written every round, item vectors were
 * most of Redis's work (an item sampled as a negative in every round is
 * written in every round), while a user's vector is what a product service
 * reads to answer that user now. */
static int publish_round(app_t *a)
{
    emb_table_t *u = users_table(a), *it = items_table(a);
    const double now = clock_mono_s();
    const int items = a->stopping || a->cfg.item_publish_interval_ms <= 0 ||
                      now - a->items_at >= a->cfg.item_publish_interval_ms / 1000.0;
    if (emb_dirty_count(u) + (items ? emb_dirty_count(it) : 0) == 0 && a->gone_len == 0 &&
        !a->meta_due) {
        /* not while stopping: shutdown waits for the round in flight */
        if (a->stopping || pub_busy(a->pub))
            return 0;
        a->heartbeat = 1;
        if (pub_heartbeat(a->pub, clock_wall_ms()))
            a->heartbeat = 0; /* disconnected: nothing in flight */
        return 0;
    }
    if (pub_begin(a->pub))
        return 0;
    a->meta_due = 0;
    size_t budget = (size_t)a->cfg.publish_max_keys;
    size_t n = add_gone(a, budget); /* DELs first: a SET of the same key later wins */
    n += add_dirty(a, u, 'u', budget - n);
    if (items) {
        n += add_dirty(a, it, 'i', budget - n);
        a->items_at = now;
    }
    dense_block_t *d = engine_dense(a->eng);
    pub_meta_t meta = {.kind = a->cfg.model,
                       .dim = engine_vector_dim(a->eng),
                       .layout = a->row_layout,
                       .dense = d->params,
                       .ndense = d->n,
                       .dense_layout = a->dense_layout};
    pub_end(a->pub, &meta, clock_wall_ms());
    return (int)n;
}

static void on_publish(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    app_t *a = arg;
    /* a round still in flight: the next starts when it is done, not a whole
     * interval later */
    a->publish_due = pub_busy(a->pub);
    publish_round(a);
}

/* ------------------------------------------------------------ stats */

/* events learned: the counter that checkpoints keep */
static uint64_t learned_total(app_t *a)
{
    engine_stats_t es;
    engine_stats(a->eng, &es);
    return es.lrn.events;
}

static void snapshot(void *arg, metrics_t *out)
{
    app_t *a = arg;
    *out = a->m;
    engine_stats_t es;
    engine_stats(a->eng, &es);
    out->learner = es.lrn;
    out->ctr = es.progressive;
    out->auc = es.auc;
    out->logloss = es.logloss;
    out->impressions_pending = join_pending(a->join);
    out->impressions_negative_total = join_negative_total(a->join);
    out->impressions_clicked_total = join_clicked_total(a->join);
    out->dirty_keys = emb_dirty_count(users_table(a)) + emb_dirty_count(items_table(a));
    out->nparts = a->kafka ? kafka_partitions(a->kafka, out->part, METRICS_MAX_PARTITIONS) : 0;
    if (a->kafka) {
        out->dead_letter_total += kafka_dead_letter_delivered(a->kafka);
        out->dead_letter_errors_total += kafka_dead_letter_errors(a->kafka);
        out->dead_letter_pending = kafka_dead_letter_pending(a->kafka);
        out->dead_letter_blocked = kafka_dead_letter_blocked(a->kafka);
        out->dead_letter_truncated_total = kafka_dead_letter_truncated(a->kafka);
    }
    out->catchup_turns_total = a->kafka ? kafka_catchup_turns(a->kafka) : 0;
    out->uptime_s = clock_mono_s() - a->t_start;
    out->time_ms = clock_wall_ms();
    out->rss_bytes = metrics_rss_bytes();
    out->consuming = a->kafka && !a->stopping && kafka_assigned(a->kafka) > 0 &&
                     !kafka_fatal(a->kafka);
    /* the link alone says little: a stopped Redis's kernel still completes
     * TCP connects; connected means writes are confirmed too */
    out->redis_link = a->pub && pub_connected(a->pub);
    out->redis_last_ack_age_s = a->pub ? pub_ack_age_s(a->pub) : 0.0;
    out->redis_connected =
        out->redis_link && pub_unconfirmed_s(a->pub) * 1000.0 < a->cfg.redis_ack_timeout_ms;
}

/* ------------------------------------------------------------ cron */

/* systemd (Type=notify): READY=1 once consuming with Redis connected, a
 * STATUS line and the watchdog every second. No-ops without NOTIFY_SOCKET. */
static void notify_systemd(app_t *a)
{
    static metrics_t m;
    snapshot(a, &m);
    if (!a->ready_sent && m.consuming && m.redis_connected) {
        sd_notify(0, "READY=1");
        a->ready_sent = 1;
        log_msg(LOG_INFO, "daemon", "ready: consuming, Redis connected");
    }
    double now = clock_mono_s(), dt = now - a->status_t;
    double rate = dt > 0 ? (double)(m.learner.events - a->status_events) / dt : 0.0;
    a->status_events = m.learner.events;
    a->status_t = now;
    sd_notifyf(0, "STATUS=%s: %.0f events/s, %llu learned, %d partition(s), Redis %s",
               a->stopping ? "stopping" : "learning", rate, (unsigned long long)m.learner.events,
               m.nparts,
               m.redis_connected ? "connected"
               : m.redis_link    ? "not confirming writes"
                                 : "disconnected");
    uint64_t usec;
    if (sd_watchdog_enabled(0, &usec) > 0)
        sd_notify(0, "WATCHDOG=1");
}

/* The log says when writes to Redis go unconfirmed past ack_timeout_ms
 * (sooner than the round timeout's warning, and it covers a heartbeat too),
 * and when Redis takes them again. */
static void watch_redis(app_t *a)
{
    double wait = pub_unconfirmed_s(a->pub);
    if (!a->redis_stall_t0 && wait * 1000.0 >= a->cfg.redis_ack_timeout_ms) {
        a->redis_stall_t0 = clock_mono_s() - wait;
        log_msg(LOG_WARN, "redis",
                "writes unconfirmed for %.1f s (ack_timeout_ms %d): Redis counts as unreachable "
                "until it confirms one",
                wait, a->cfg.redis_ack_timeout_ms);
    } else if (a->redis_stall_t0 && wait == 0) {
        log_msg(LOG_INFO, "redis", "writes confirmed again (none had been for %.1f s at most)",
                clock_mono_s() - a->redis_stall_t0);
        a->redis_stall_t0 = 0;
    }
}

static void on_cron(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    app_t *a = arg;
    learn_negatives(a);
    watch_redis(a);
    notify_systemd(a);
    if (a->cfg.expire_s > 0) {
        int64_t now = clock_wall_ms();
        size_t n = engine_expire(a->eng, now);
        if (n)
            log_msg(LOG_INFO, "learner", "expired %zu ids unseen for %d s", n, a->cfg.expire_s);
    }
}

/* ------------------------------------------------------------ checkpoints */

/* The daemon's checkpoint: one section per part of its state (store/ckpt.h),
 * written and loaded in this order. A section's payload changes only with
 * its version; a version this build does not read is refused, never misread.
 * The save callbacks serialise memory only: they run in a forked child (see
 * checkpoint_start), so whatever is read of librdkafka is read before, into
 * a->ck_off. */

/* LRNR 1: the engine's own save (engine_save), which names its model: a
 * checkpoint of another model is refused by engine_load */
static int save_learner_section(void *arg, ser_writer_t *w)
{
    app_t *a = arg;
    if (engine_save(a->eng, w))
        return -1;
    return w->err ? -1 : 0;
}
static int load_learner_section(void *arg, ser_reader_t *r, uint32_t version, char *err,
                                size_t len)
{
    (void)version;
    app_t *a = arg;
    return engine_load(a->eng, r, err, len);
}

/* JOIN 1: the impressions waiting for a click */
static int save_join_section(void *arg, ser_writer_t *w)
{
    return join_save(((app_t *)arg)->join, w);
}
static int load_join_section(void *arg, ser_reader_t *r, uint32_t version, char *err, size_t len)
{
    (void)version;
    return join_load(((app_t *)arg)->join, r, err, len);
}

/* OFFS 1: the position after everything the state above learned: count u32,
 * then per partition topic length u32, topic, partition u32, offset i64 */
static int save_offsets_section(void *arg, ser_writer_t *w)
{
    app_t *a = arg;
    ser_u32(w, (uint32_t)a->n_ck);
    for (int i = 0; i < a->n_ck; i++) {
        uint32_t tl = (uint32_t)strlen(a->ck_off[i].topic);
        ser_u32(w, tl);
        ser_put(w, a->ck_off[i].topic, tl);
        ser_u32(w, (uint32_t)a->ck_off[i].partition);
        ser_i64(w, a->ck_off[i].offset);
    }
    return w->err ? -1 : 0;
}
static int load_offsets_section(void *arg, ser_reader_t *r, uint32_t version, char *err,
                                size_t len)
{
    (void)version;
    app_t *a = arg;
    uint32_t n = ser_get_u32(r);
    if (r->err || n > KAFKA_MAX_OFFSETS) {
        snprintf(err, len, "bad offsets");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t tl = ser_get_u32(r);
        if (r->err || tl >= sizeof(a->resume[i].topic)) {
            snprintf(err, len, "bad offsets");
            return -1;
        }
        ser_get(r, a->resume[i].topic, tl);
        a->resume[i].topic[tl] = '\0';
        a->resume[i].partition = (int32_t)ser_get_u32(r);
        a->resume[i].offset = ser_get_i64(r);
    }
    a->n_resume = (int)n;
    return r->err ? -1 : 0;
}

/* CNTR 1: the counters that survive a restart: kinds u32 + consumed u64 each,
 * reasons u32 + invalid u64 each (in enum order: a build with more reasons
 * reads fewer as zeros), then dead_letter_total u64 */
static int save_counters_section(void *arg, ser_writer_t *w)
{
    app_t *a = arg;
    ser_u32(w, EVENT_MAX_KINDS);
    for (int k = 0; k < EVENT_MAX_KINDS; k++)
        ser_u64(w, a->m.consumed[k]);
    ser_u32(w, EVR_COUNT);
    for (int k = 0; k < EVR_COUNT; k++)
        ser_u64(w, a->m.invalid[k]);
    ser_u64(w, a->m.dead_letter_total + kafka_dead_letter_delivered(a->kafka));
    return w->err ? -1 : 0;
}
static int load_counters_section(void *arg, ser_reader_t *r, uint32_t version, char *err,
                                 size_t len)
{
    (void)version;
    app_t *a = arg;
    uint32_t nk = ser_get_u32(r);
    if (r->err || nk > EVENT_MAX_KINDS) {
        snprintf(err, len, "%u event kinds (this build counts %d)", nk, EVENT_MAX_KINDS);
        return -1;
    }
    for (uint32_t k = 0; k < nk; k++)
        a->m.consumed[k] = ser_get_u64(r);
    uint32_t nr = ser_get_u32(r);
    if (r->err || nr > EVR_COUNT) {
        snprintf(err, len, "%u refusal reasons (this build knows %d)", nr, EVR_COUNT);
        return -1;
    }
    for (uint32_t k = 0; k < nr; k++)
        a->m.invalid[k] = ser_get_u64(r);
    a->m.dead_letter_total = ser_get_u64(r);
    return r->err ? -1 : 0;
}

static const ckpt_section_t daemon_sections[] = {
    {"LRNR", 1, 1, save_learner_section, load_learner_section},
    {"JOIN", 1, 1, save_join_section, load_join_section},
    {"OFFS", 1, 1, save_offsets_section, load_offsets_section},
    {"CNTR", 1, 1, save_counters_section, load_counters_section},
};
#define N_DAEMON_SECTIONS ((int)(sizeof(daemon_sections) / sizeof(daemon_sections[0])))

/* A checkpoint written before events from the future were refused may hold
 * an event time beyond the clock (say 2100-01-01): every impression would be
 * a negative on arrival. It goes back as far as the bound on events allows. */
static void heal_event_time(app_t *a)
{
    int64_t was = join_time(a->join), wall = clock_wall_ms();
    if (join_limit_time(a->join, wall + a->cfg.max_future_skew_ms)) {
        int64_t now = join_time(a->join);
        if (now == INT64_MIN)
            log_msg(LOG_WARN, "join",
                    "restored event time %lld is %lld ms ahead of the clock: reset, the next "
                    "event sets it",
                    (long long)was, (long long)(was - wall));
        else
            log_msg(LOG_WARN, "join",
                    "restored event time %lld is %lld ms ahead of the clock: back to %lld, the "
                    "latest impression waiting",
                    (long long)was, (long long)(was - wall), (long long)now);
    }
}

/* A checkpoint holds the state in memory and the position after everything
 * it learned (taken here, in the loop, right before the state is written or
 * forked: nothing is learned in between). */
static void checkpoint_offsets(app_t *a)
{
    a->n_ck = kafka_learned_offsets(a->kafka, a->ck_off, KAFKA_MAX_OFFSETS);
}

/* After a write: a durable checkpoint's offsets are committed; a refused one
 * leaves them uncommitted and learning goes on. */
static int checkpoint_done(app_t *a, int rc, const char *err, double write_s)
{
    if (rc) {
        a->m.checkpoint_errors_total++;
        a->m.checkpoint_failing = 1;
        log_limited(&a->bad_log, LOG_ERROR, "checkpoint", "%s; offsets stay uncommitted", err);
        return -1;
    }
    a->m.checkpoint_seconds = write_s;
    a->m.checkpoint_total++;
    if (a->m.checkpoint_failing)
        log_msg(LOG_INFO, "checkpoint", "%s written again; committing its offsets", a->ckpt_path);
    a->m.checkpoint_failing = 0;
    struct stat st;
    if (stat(a->ckpt_path, &st) == 0)
        a->m.checkpoint_bytes = (uint64_t)st.st_size;
    kafka_commit_offsets(a->kafka, a->ck_off, a->n_ck);
    return 0;
}

static void note_stall(app_t *a, double s)
{
    a->m.checkpoint_stall_seconds = s;
    if (s > a->m.checkpoint_stall_max_seconds)
        a->m.checkpoint_stall_max_seconds = s;
}

/* Writes a checkpoint on the loop (the previous one kept as .prev until the
 * new one is durable): the loop stalls for the whole write. At shutdown, and
 * when no child can be forked. */
static int checkpoint_sync(app_t *a)
{
    double t0 = clock_mono_s();
    char err[512];
    checkpoint_offsets(a);
    if (access(a->ckpt_path, F_OK) == 0 && rename(a->ckpt_path, a->ckpt_prev))
        log_msg(LOG_WARN, "checkpoint", "cannot keep the previous checkpoint: %s", strerror(errno));
    int rc = ckpt_write(a->ckpt_path, daemon_sections, N_DAEMON_SECTIONS, a, err, sizeof(err));
    double dt = clock_mono_s() - t0;
    note_stall(a, dt);
    return checkpoint_done(a, rc, err, dt);
}

/* The child's copy-on-write split the huge pages the loop wrote to while it
 * lived; a pass beside the loop puts them back, so that the next fork stays
 * short (daemon/collapse.h). The embedding tables hold nearly all memory. */
static void collapse_tables(app_t *a)
{
    collapse_stats_t cs;
    if (!a->coll || a->stopping || collapse_running(a->coll, &cs))
        return;
    if (cs.passes && !cs.pages && cs.refused && !a->coll_told) {
        a->coll_told = 1;
        log_msg(LOG_INFO, "checkpoint",
                "huge pages cannot be collapsed here (that needs Linux 6.1 and transparent huge "
                "pages in madvise or always mode): the fork of a checkpoint copies the page "
                "tables of small pages, which takes longer as the model grows");
    }
    void *p[COLLAPSE_MAX_RANGES];
    size_t n[COLLAPSE_MAX_RANGES];
    int k = 0;
    emb_table_t *t;
    for (int f = 0; (t = engine_table(a->eng, f)) != NULL && k < COLLAPSE_MAX_RANGES; f++)
        k += emb_large_arrays(t, p + k, n + k, COLLAPSE_MAX_RANGES - k);
    char err[256];
    if (k && collapse_start(a->coll, p, n, k, err, sizeof(err)) < 0)
        log_msg(LOG_WARN, "checkpoint", "%s", err);
}

/* The child is done (reaped): its result, and huge pages back. */
static int checkpoint_reaped(app_t *a, int rc, const char *err)
{
    if (a->bg_ev) {
        event_free(a->bg_ev);
        a->bg_ev = NULL;
    }
    if (a->bg.note[0])
        log_msg(LOG_WARN, "checkpoint", "%s", a->bg.note);
    collapse_tables(a);
    return checkpoint_done(a, rc, err, a->bg.write_s);
}

/* The child's pipe is readable: its report, or its end (it has exited). */
static void on_checkpoint_written(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    app_t *a = arg;
    char err[512];
    int rc = ckpt_bg_finish(&a->bg, err, sizeof(err));
    if (rc != 1) /* 1: not exited yet, the pipe's end comes next */
        checkpoint_reaped(a, rc, err);
}

/* Waits for the child (at shutdown, or when it cannot be watched). */
static int checkpoint_wait(app_t *a)
{
    char err[512];
    int rc = ckpt_bg_wait(&a->bg, err, sizeof(err));
    return checkpoint_reaped(a, rc, err);
}

/* Starts a checkpoint in the background: a forked child writes a
 * copy-on-write snapshot of the state (and of a->ck_off) while the loop goes
 * on learning; the loop stalls only for the fork. One child at a time: a
 * tick that finds one still writing is skipped. */
static int checkpoint_start(app_t *a)
{
    if (ckpt_bg_running(&a->bg)) {
        a->m.checkpoint_skipped_total++;
        log_limited(&a->bad_log, LOG_WARN, "checkpoint",
                    "the previous checkpoint is still being written: this one is skipped "
                    "(checkpoint_interval_s may be too short for the model's size)");
        return 0;
    }
    double t0 = clock_mono_s();
    char err[512];
    collapse_stop(a->coll); /* a collapse while the child shares the pages only copies them */
    checkpoint_offsets(a);
    if (ckpt_bg_start(&a->bg, a->ckpt_path, a->ckpt_prev, daemon_sections, N_DAEMON_SECTIONS, a,
                      err, sizeof(err))) {
        log_msg(LOG_WARN, "checkpoint", "%s; writing it on the loop instead", err);
        return checkpoint_sync(a);
    }
    if (!(a->bg_ev = event_new(a->base, a->bg.fd, EV_READ | EV_PERSIST, on_checkpoint_written,
                               a)) ||
        event_add(a->bg_ev, NULL)) {
        log_msg(LOG_WARN, "checkpoint", "cannot watch the writer; waiting for it");
        note_stall(a, clock_mono_s() - t0);
        return checkpoint_wait(a);
    }
    note_stall(a, clock_mono_s() - t0);
    return 0;
}

/* A checkpoint holds the position after everything learned, refused
 * messages included: it must not be taken while a dead-letter copy is
 * unacknowledged (committed, its offset would lose the message if the copy
 * were). So consuming is held until the copies in flight are delivered (a
 * linger and a round trip, usually), then the checkpoint is taken. While
 * the topic refuses copies it waits, and /healthz says why. */
static void on_checkpoint_wait(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    app_t *a = arg;
    if (!a->stopping && kafka_dead_letter_pending(a->kafka))
        return; /* again in a moment */
    event_del(a->ckpt_wait_ev);
    kafka_hold(a->kafka, 0);
    if (!a->stopping)
        checkpoint_start(a);
}

static void on_checkpoint(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    app_t *a = arg;
    if (a->stopping || evtimer_pending(a->ckpt_wait_ev, NULL))
        return;
    if (kafka_dead_letter_pending(a->kafka) == 0) {
        checkpoint_start(a);
        return;
    }
    static const struct timeval soon = {0, 20000};
    kafka_hold(a->kafka, 1);
    if (event_add(a->ckpt_wait_ev, &soon)) { /* cannot wait: this one is skipped */
        kafka_hold(a->kafka, 0);
        a->m.checkpoint_skipped_total++;
    }
}

/* The last checkpoint, at shutdown: after the one being written, if any, the
 * state as it is now, on the loop (nothing is left to stall), once every
 * dead-letter copy is acknowledged. If some are not, it is not written: the
 * previous checkpoint stands, and what was learned since is learned again
 * after a restart (rather than the unacknowledged messages lost). */
static int checkpoint_final(app_t *a)
{
    if (!a->ckpt_path[0])
        return 0;
    if (ckpt_bg_running(&a->bg)) {
        log_msg(LOG_INFO, "checkpoint", "shutdown: waiting for the checkpoint being written");
        checkpoint_wait(a);
    }
    size_t left = kafka_dead_letter_flush(a->kafka, a->cfg.shutdown_timeout_ms / 4);
    if (left) {
        log_msg(LOG_ERROR, "checkpoint",
                "shutdown: %zu dead-letter cop%s not acknowledged: the last checkpoint is not "
                "written (the previous one stands; what was learned since is learned again)",
                left, left == 1 ? "y" : "ies");
        return -1;
    }
    return checkpoint_sync(a);
}

/* ------------------------------------------------------------ signals */

static void on_stop_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    app_t *a = arg;
    emb_table_t *u = users_table(a), *it = items_table(a);
    /* a heartbeat in flight holds nothing to wait for (a hung Redis would
     * hold the stop until the round timeout) */
    int pending = emb_dirty_count(u) + emb_dirty_count(it) > 0 ||
                  (pub_busy(a->pub) && !a->heartbeat);
    if (pending && clock_mono_s() < a->stop_deadline) {
        if (!pub_busy(a->pub))
            publish_round(a);
        return; /* the tick comes again */
    }
    if (pending)
        log_msg(LOG_WARN, "daemon", "shutdown: %zu vectors not published before the timeout",
                emb_dirty_count(u) + emb_dirty_count(it));
    checkpoint_final(a); /* and commit what it holds */
    event_base_loopbreak(a->base);
}

static void begin_stop(app_t *a, const char *why)
{
    if (a->stopping)
        return;
    a->stopping = 1;
    sd_notify(0, "STOPPING=1");
    log_msg(LOG_INFO, "daemon", "%s: stopping: no more consuming, publishing what is dirty", why);
    kafka_pause_loop(a->kafka);
    learn_negatives(a);
    evtimer_del(a->publish_ev);
    a->stop_deadline = clock_mono_s() + a->cfg.shutdown_timeout_ms / 2000.0;
    a->stop_ev = event_new(a->base, -1, EV_PERSIST, on_stop_tick, a);
    struct timeval tv = {0, 10000};
    event_add(a->stop_ev, &tv);
    publish_round(a);
}

static void set_publish_timer(app_t *a)
{
    struct timeval tv = {a->cfg.publish_interval_ms / 1000,
                         (a->cfg.publish_interval_ms % 1000) * 1000};
    event_add(a->publish_ev, &tv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    app_t *a = arg;
    if (sig != SIGHUP) {
        begin_stop(a, sig == SIGTERM ? "SIGTERM" : "SIGINT");
        return;
    }
    char err[512] = "", changes[512];
    fr_config_t before = a->cfg;
    sd_notify(0, "RELOADING=1");
    int n = config_reload(&a->cfg, a->config_path, a->overrides, a->noverrides, err, sizeof(err));
    if (a->ready_sent)
        sd_notify(0, "READY=1");
    if (n < 0) {
        log_msg(LOG_ERROR, "config", "SIGHUP: reload refused, nothing changed: %s", err);
        return;
    }
    if (err[0])
        log_msg(LOG_WARN, "config", "SIGHUP: %s", err);
    engine_set_lr(a->eng, (float)a->cfg.lr_sparse, (float)a->cfg.lr_dense);
    log_set_level(log_level_parse(a->cfg.log_level));
    if (!a->stopping)
        set_publish_timer(a);
    /* only the keys that changed, so that the count and the list agree */
    n = config_hot_changes(&before, &a->cfg, changes, sizeof(changes));
    log_msg(LOG_INFO, "config", "SIGHUP: %d hot key(s) changed%s%s", n, n ? ": " : "", changes);
}

/* ------------------------------------------------------------ start-up */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: freshrecd [-c CONFIG] [--set section.key=value ...] [--embedded]\n"
            "       freshrecd --print-config [-c CONFIG] [--set ...]\n"
            "Consumes events from Kafka, learns from each at once, publishes vectors to Redis.\n"
            "  -c, --config PATH   INI config (every key: systemd/freshrec.conf)\n"
            "  --set S.K=V         override one key, e.g. --set redis.port=6380 (repeatable)\n"
            "  --embedded          with no [kafka] brokers, run an in-process mock Kafka\n"
            "                      cluster (loopback) and print its address\n"
            "  --print-config      print the effective config and exit\n"
            "Signals: SIGTERM/SIGINT stop cleanly; SIGHUP reloads lr_sparse, lr_dense,\n"
            "publish_interval_ms, item_publish_interval_ms, max_future_skew_ms and log_level.\n");
}

int main(int argc, char **argv)
{
    static app_t app;
    app_t *a = &app;
    char err[512];
    int print_config = 0;
    config_defaults(&a->cfg);
    ckpt_bg_init(&a->bg);
    a->meta_due = 1; /* the first round writes the meta hash */

    static const struct option opts[] = {{"config", 1, 0, 'c'},   {"set", 1, 0, 's'},
                                         {"embedded", 0, 0, 'e'}, {"print-config", 0, 0, 'p'},
                                         {"help", 0, 0, 'h'},     {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a->config_path = optarg;
            break;
        case 's':
            if (a->noverrides == MAX_OVERRIDES) {
                fprintf(stderr, "freshrecd: at most %d --set overrides\n", MAX_OVERRIDES);
                return 2;
            }
            a->overrides[a->noverrides++] = optarg;
            break;
        case 'e':
            a->embedded = 1;
            break;
        case 'p':
            print_config = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "freshrecd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (a->config_path && config_load(&a->cfg, a->config_path, err, sizeof(err))) {
        fprintf(stderr, "freshrecd: config: %s\n", err);
        return 2;
    }
    for (int i = 0; i < a->noverrides; i++)
        if (config_set(&a->cfg, a->overrides[i], err, sizeof(err))) {
            fprintf(stderr, "freshrecd: --set: %s\n", err);
            return 2;
        }
    if (config_validate(&a->cfg, err, sizeof(err))) {
        fprintf(stderr, "freshrecd: config: %s\n", err);
        return 2;
    }
    /* keys the chosen model does not read: said, not refused */
    char warn[1024];
    int nwarn = config_warnings(&a->cfg, warn, sizeof(warn));
    if (print_config) {
        if (nwarn)
            fprintf(stderr, "freshrecd: config: warning: %s\n", warn);
        config_write(&a->cfg, stdout);
        return 0;
    }
    /* the one start-up check that depends on a flag, not only on the config */
    if (!a->cfg.brokers[0] && !a->embedded) {
        fprintf(stderr, "freshrecd: config: [kafka] brokers is empty: name the brokers, or run "
                        "with --embedded for an in-process mock cluster\n");
        return 2;
    }
    log_set_level(log_level_parse(a->cfg.log_level));
    if (nwarn)
        log_msg(LOG_WARN, "config", "%s", warn);
    /* config_validate made these same calls: they cannot fail here */
    const char *bad_key;
    event_kinds_default(&a->kinds);
    if (event_kinds_parse(&a->kinds, a->cfg.kinds, err, sizeof(err)) ||
        modelcfg_from(&a->mc, &a->cfg, &bad_key, err, sizeof(err))) {
        fprintf(stderr, "freshrecd: config: %s\n", err);
        return 2;
    }
    const engine_config_t *ec = &a->mc.ec;
    signal(SIGPIPE, SIG_IGN);
    /* a file-size limit (RLIMIT_FSIZE) makes a checkpoint's write fail with
     * EFBIG, like a full disk, instead of killing the daemon */
    signal(SIGXFSZ, SIG_IGN);
    kern_set_threads(1);

    int rc = 1;
    a->t_start = clock_mono_s();
    a->m.kinds = a->kinds;
    snprintf(a->m.model, sizeof(a->m.model), "%.31s", a->cfg.model);
    a->bad_log.burst = 10;
    a->kafka_log.burst = 5;
    a->base = event_base_new();
    a->pos = malloc(sizeof(lrn_event_t) * (size_t)a->cfg.batch_max);
    a->arena_cap = (size_t)a->cfg.batch_max * 2 * EVENT_MAX_ID;
    a->arena = malloc(a->arena_cap);
    if (a->mc.ncat + a->mc.nnum > 0) { /* features: and their values */
        size_t B = (size_t)a->cfg.batch_max + NEG_CHUNK;
        a->pfeat = malloc(sizeof(lrn_feat_t) * B * (size_t)(a->mc.ncat + a->mc.nnum));
        a->arena_cap = B * (2 * EVENT_MAX_ID + (size_t)a->mc.ncat * (EVENT_MAX_VALUE + 1));
        free(a->arena);
        a->arena = malloc(a->arena_cap);
        if (!a->pfeat) {
            log_msg(LOG_ERROR, "daemon", "out of memory at start-up");
            goto out;
        }
    }
    if (!a->base || !a->pos || !a->arena) {
        log_msg(LOG_ERROR, "daemon", "out of memory at start-up");
        goto out;
    }
    if (!(a->eng = engine_create(ec, err, sizeof(err))) ||
        !(a->join = join_create(a->cfg.label_window_ms, 1000000, err, sizeof(err)))) {
        log_msg(LOG_ERROR, "learner", "%s", err);
        goto out;
    }
    /* the newest valid checkpoint, else the previous one, else a fresh start */
    if (a->cfg.checkpoint_dir[0]) {
        snprintf(a->ckpt_path, sizeof(a->ckpt_path), "%.255s/freshrec.ckpt", a->cfg.checkpoint_dir);
        snprintf(a->ckpt_prev, sizeof(a->ckpt_prev), "%.287s.prev", a->ckpt_path);
        if (mkdir(a->cfg.checkpoint_dir, 0700) && errno != EEXIST)
            log_msg(LOG_WARN, "checkpoint", "%s: %s", a->cfg.checkpoint_dir, strerror(errno));
        if (!(a->coll = collapse_create(err, sizeof(err))))
            log_msg(LOG_WARN, "checkpoint", "%s", err);
        int stale = ckpt_remove_stale(a->ckpt_path);
        if (stale)
            log_msg(LOG_INFO, "checkpoint", "removed %d temporary file(s) of writers killed part way",
                    stale);
        const char *tries[2] = {a->ckpt_path, a->ckpt_prev};
        for (int t = 0; t < 2; t++) {
            if (access(tries[t], F_OK))
                continue;
            if (ckpt_read(tries[t], daemon_sections, N_DAEMON_SECTIONS, a, err, sizeof(err)) == 0) {
                log_msg(LOG_INFO, "checkpoint", "restored %s: %llu events learned", tries[t],
                        (unsigned long long)learned_total(a));
                heal_event_time(a);
                break;
            }
            log_msg(LOG_ERROR, "checkpoint", "%s: skipped", err);
            /* a failed load leaves half a state: start again from nothing */
            engine_free(a->eng);
            join_free(a->join);
            a->eng = NULL;
            a->n_resume = 0;
            memset(a->m.consumed, 0, sizeof(a->m.consumed));
            memset(a->m.invalid, 0, sizeof(a->m.invalid));
            a->m.dead_letter_total = 0;
            if (!(a->eng = engine_create(ec, err, sizeof(err))) ||
                !(a->join = join_create(a->cfg.label_window_ms, 1000000, err, sizeof(err)))) {
                log_msg(LOG_ERROR, "learner", "%s", err);
                goto out;
            }
        }
    }
    engine_on_gone(a->eng, on_gone, a); /* evicted and expired ids: their vectors are deleted */
    if (a->cfg.decode_thread) {
        /* the pages are touched as far as the largest batch goes */
        a->dec = malloc(sizeof(struct decoded) * (size_t)a->cfg.batch_max);
        if (!a->dec || !(a->ahead = ahead_create(err, sizeof(err)))) {
            log_msg(LOG_WARN, "daemon", "%s: the loop thread decodes",
                    a->dec ? err : "out of memory for decoding ahead");
            free(a->dec); /* a->ahead is NULL: never made, or its creation failed */
            a->dec = NULL;
        }
    }
    engine_vector_layout(a->eng, a->row_layout, sizeof(a->row_layout));
    engine_dense_layout(a->eng, a->dense_layout, sizeof(a->dense_layout));

    pub_config_t pc = {.host = a->cfg.redis_host,
                       .port = a->cfg.redis_port,
                       .password = a->cfg.redis_password,
                       .prefix = a->cfg.key_prefix,
                       .model = a->cfg.model,
                       .ttl_s = a->cfg.vector_ttl_s,
                       .reconnect_max_ms = a->cfg.reconnect_max_ms,
                       .round_timeout_ms = 5000,
                       .item_index = a->cfg.item_index};
    if (!(a->pub = pub_create(a->base, &pc, on_pub_fail, on_pub_done, a, err, sizeof(err)))) {
        log_msg(LOG_ERROR, "redis", "%s", err);
        goto out;
    }
    pub_set_on_empty(a->pub, on_redis_empty);
    if (!(a->kafka = kafka_create(a->base, &a->cfg, a->embedded, a->ckpt_path[0] != 0, on_batch, a, err,
                                 sizeof(err)))) {
        log_msg(LOG_ERROR, "kafka", "%s", err);
        goto out;
    }
    kafka_set_resume(a->kafka, a->resume, a->n_resume);
    if (a->ckpt_path[0]) {
        struct timeval every = {a->cfg.checkpoint_interval_s, 0};
        if (!(a->ckpt_ev = event_new(a->base, -1, EV_PERSIST, on_checkpoint, a)) ||
            !(a->ckpt_wait_ev = event_new(a->base, -1, EV_PERSIST, on_checkpoint_wait, a)) ||
            event_add(a->ckpt_ev, &every)) {
            log_msg(LOG_ERROR, "daemon", "cannot set up the checkpoint timer");
            goto out;
        }
    }
    if (a->cfg.stats_port > 0 && a->cfg.stats_listen[0]) {
        if (!(a->stats = stats_start(a->base, a->cfg.stats_listen, a->cfg.stats_port, snapshot, a,
                                     err, sizeof(err)))) {
            log_msg(LOG_ERROR, "stats", "%s", err);
            goto out;
        }
        stats_set_vector_fn(a->stats, on_vector, a);
    }
    a->publish_ev = event_new(a->base, -1, EV_PERSIST, on_publish, a);
    a->cron_ev = event_new(a->base, -1, EV_PERSIST, on_cron, a);
    a->sig_term = evsignal_new(a->base, SIGTERM, on_signal, a);
    a->sig_int = evsignal_new(a->base, SIGINT, on_signal, a);
    a->sig_hup = evsignal_new(a->base, SIGHUP, on_signal, a);
    struct timeval one = {1, 0};
    if (!a->publish_ev || !a->cron_ev || !a->sig_term || !a->sig_int || !a->sig_hup ||
        event_add(a->cron_ev, &one) || event_add(a->sig_term, NULL) ||
        event_add(a->sig_int, NULL) || event_add(a->sig_hup, NULL)) {
        log_msg(LOG_ERROR, "daemon", "cannot set up timers and signals");
        goto out;
    }
    set_publish_timer(a);

    log_msg(LOG_INFO, "daemon",
            "freshrecd ready: kafka %s topics %s group %s; redis %s:%d; stats %s:%d; model %s "
            "dim %d",
            kafka_bootstrap(a->kafka), a->cfg.topics, a->cfg.group_id, a->cfg.redis_host,
            a->cfg.redis_port, a->cfg.stats_listen, a->stats ? stats_port(a->stats) : 0,
            a->cfg.model, a->cfg.dim);
    event_base_dispatch(a->base);

    /* stopped: commit what was learned and leave the group */
    kafka_close(a->kafka);
    metrics_t *fin = malloc(sizeof(*fin));
    if (fin) {
        snapshot(a, fin);
        log_msg(LOG_INFO, "daemon", "stopped: %llu events learned, %llu vectors published",
                (unsigned long long)fin->learner.events,
                (unsigned long long)a->m.publish_keys_total);
        free(fin);
    }
    rc = 0;
out:
    if (ckpt_bg_running(&a->bg)) /* only if the loop ended some other way */
        checkpoint_wait(a);
    collapse_free(a->coll);
    stats_stop(a->stats);
    kafka_free(a->kafka);
    pub_free(a->pub);
    join_free(a->join);
    engine_free(a->eng);
    if (a->publish_ev)
        event_free(a->publish_ev);
    if (a->cron_ev)
        event_free(a->cron_ev);
    if (a->ckpt_ev)
        event_free(a->ckpt_ev);
    if (a->ckpt_wait_ev)
        event_free(a->ckpt_wait_ev);
    if (a->stop_ev)
        event_free(a->stop_ev);
    if (a->sig_term)
        event_free(a->sig_term);
    if (a->sig_int)
        event_free(a->sig_int);
    if (a->sig_hup)
        event_free(a->sig_hup);
    if (a->base)
        event_base_free(a->base);
    free(a->pos);
    ahead_free(a->ahead); /* stops the decoding thread before its buffer goes */
    free(a->dec);
    free(a->arena);
    free(a->pfeat);
    free(a->gone);
    free(a->dirty);
    return rc;
}
