/* sync.c — the publish policy (see freshrecd.h): which vectors a round
 * writes to Redis and when. Users dirty since the last round go every round,
 * items at their own cadence ([redis] item_publish_interval_ms), the DELs of
 * ids gone from the tables first; the meta hash with every round, or alone
 * when Redis lost it; a heartbeat when nothing is to be written. The cron
 * calls sync_publish every publish interval. Not for: talking to Redis
 * (store/publish.c) or learning (ingest.c). */
#define _POSIX_C_SOURCE 200809L
#include "freshrecd.h"

#include "clock.h"
#include "id.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ gone ids */

/* An id left a table: its vector's DEL waits for the next round. */
void sync_on_gone(void *arg, char side, const char *id, size_t len)
{
    app_t *a = arg;
    sync_t *s = &a->sync;
    if (len > 0xffff)
        return;
    if (s->gone_len + 3 + len > s->gone_cap) {
        size_t n = s->gone_cap ? s->gone_cap * 2 : 65536;
        while (n < s->gone_len + 3 + len)
            n *= 2;
        unsigned char *b = realloc(s->gone, n);
        if (!b) { /* the vector's TTL removes it in the end */
            log_limited(&a->bad_log, LOG_ERROR, "publish", "out of memory: a DEL is dropped");
            return;
        }
        s->gone = b;
        s->gone_cap = n;
    }
    unsigned char *r = s->gone + s->gone_len;
    r[0] = (unsigned char)side;
    r[1] = (unsigned char)(len >> 8);
    r[2] = (unsigned char)len;
    memcpy(r + 3, id, len);
    s->gone_len += 3 + len;
    a->m.deletes_pending++;
}

/* The DELs of gone ids, up to budget, first in the round; an id that came
 * back since is skipped (its new vector's SET follows). */
static size_t add_gone(app_t *a, size_t budget)
{
    sync_t *s = &a->sync;
    size_t off = 0, n = 0;
    if (!s->gone_len)
        return 0;
    while (off < s->gone_len && n < budget) {
        const unsigned char *r = s->gone + off;
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
    memmove(s->gone, s->gone + off, s->gone_len - off);
    s->gone_len -= off;
    return n;
}

/* ------------------------------------------------------------ vectors */

/* The vector published for entry e of side's table: into v, its dim
 * returned. Dims are bounded by the config: ≤ 3072 (NeuMF), 4096 (DSSM), 1024. */
static int published_vector(app_t *a, char side, uint32_t e, float v[STATS_VECTOR_MAX])
{
    engine_vector(a->eng, side, e, v);
    return engine_vector_dim(a->eng);
}

/* up to budget of t's vectors that take() hands out (emb_take_dirty, or
 * emb_take_new: new ids) into the round */
static size_t add_taken(app_t *a, emb_table_t *t, char side, size_t budget,
                        size_t (*take)(emb_table_t *, uint32_t *, size_t))
{
    sync_t *s = &a->sync;
    if (s->dirty_cap < budget) {
        uint32_t *d = realloc(s->dirty, budget * sizeof(uint32_t));
        if (!d)
            return 0;
        s->dirty = d;
        s->dirty_cap = budget;
    }
    size_t n = take(t, s->dirty, budget);
    float v[STATS_VECTOR_MAX];
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *id = emb_entry_id(t, s->dirty[i], &len);
        int V = published_vector(a, side, s->dirty[i], v);
        pub_add(a->pub, side, id, len, v, V);
    }
    return n;
}

/* GET /vector on the stats port: what a publish round would write now. */
int sync_vector(void *arg, char side, const char *id, size_t len, float *out, int cap)
{
    app_t *a = arg;
    emb_table_t *t = side == 'u' ? users_table(a) : items_table(a);
    uint32_t e = emb_find(t, id_hash(id, len), id, len);
    if (e == EMB_NONE)
        return 0;
    float v[STATS_VECTOR_MAX];
    int V = published_vector(a, side, e, v);
    if (V <= cap)
        memcpy(out, v, sizeof(float) * (size_t)V);
    return V; /* more than cap: the caller refuses it */
}

/* ------------------------------------------------------------ Redis's side */

static void on_pub_fail(void *arg, char side, const char *id, size_t len)
{
    app_t *a = arg;
    if (side == 'U' || side == 'I') { /* a DEL: again in a later round */
        sync_on_gone(a, side == 'U' ? 'u' : 'i', id, len);
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
    sync_t *s = &a->sync;
    /* a round longer than the interval: the next one starts now (not at the
     * cron's next tick, nor inside this reply's callback) */
    if (s->publish_due) {
        s->publish_due = 0;
        event_active(s->now_ev, EV_TIMEOUT, 0);
    }
    if (s->heartbeat) { /* it wrote no vector: shown by the redis gauges, not here */
        s->heartbeat = 0;
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

/* A Redis without the meta hash, or a cluster master without a key, lost
 * what was published (restarted without its data, an empty replica
 * promoted, FLUSHALL): everything is dirty again. */
static void on_redis_empty(void *arg)
{
    app_t *a = arg;
    emb_table_t *tabs[2] = {users_table(a), items_table(a)};
    size_t n = 0;
    a->sync.meta_due = 1; /* even with no vector to write */
    for (int k = 0; k < 2; k++)
        for (uint32_t e = 0; e < emb_entry_cap(tabs[k]); e++)
            if (emb_entry_alive(tabs[k], e)) {
                emb_mark_dirty(tabs[k], e);
                n++;
            }
    if (n)
        log_msg(LOG_INFO, "redis",
                "no meta hash in Redis, or an empty cluster master (it lost its data?): "
                "publishing all %zu vectors again",
                n);
}

/* The log says when writes to Redis go unconfirmed past ack_timeout_ms
 * (sooner than the round timeout's warning, and it covers a heartbeat too),
 * and when Redis takes them again. */
void sync_watch_redis(app_t *a)
{
    sync_t *s = &a->sync;
    double wait = pub_unconfirmed_s(a->pub);
    if (!s->redis_stall_t0 && wait * 1000.0 >= a->cfg.redis_ack_timeout_ms) {
        s->redis_stall_t0 = clock_mono_s() - wait;
        log_msg(LOG_WARN, "redis",
                "writes unconfirmed for %.1f s (ack_timeout_ms %d): Redis counts as unreachable "
                "until it confirms one",
                wait, a->cfg.redis_ack_timeout_ms);
    } else if (s->redis_stall_t0 && wait == 0) {
        log_msg(LOG_INFO, "redis", "writes confirmed again (none had been for %.1f s at most)",
                clock_mono_s() - s->redis_stall_t0);
        s->redis_stall_t0 = 0;
    }
}

/* ------------------------------------------------------------ rounds */

typedef enum {
    SYNC_NONE,      /* nothing now */
    SYNC_HEARTBEAT, /* nothing to write: the meta hash's alive_ms */
    SYNC_ROUND,     /* vectors, DELs and the meta hash */
} sync_what_t;

/* What a round now would be. Items go with it when item_publish_interval_ms
 * has passed since the last round that wrote them, or the daemon is stopping
 * (*items). With nothing to write, a heartbeat instead, so that readers see
 * the daemon alive and every round asks Redis something
 * (freshrec_redis_connected then says within [redis] ack_timeout_ms that
 * Redis stopped taking writes, traffic or not); not while stopping (shutdown
 * waits for the round in flight) nor over a round in flight.
 *
 * Items have a cadence of their own because each event changes 1 + negatives
 * item rows against one user row: written every round, item vectors were
 * most of Redis's work (an item sampled as a negative in every round is
 * written in every round), while a user's vector is what a product service
 * reads to answer that user now. A new item's first vector is the
 * exception: without one the item cannot be retrieved at all, so it goes in
 * the next round (emb_take_new), and again with the cadence. */
static sync_what_t sync_due(app_t *a, double now, int *items)
{
    const sync_t *s = &a->sync;
    *items = a->stopping || a->cfg.item_publish_interval_ms <= 0 ||
             now - s->items_at >= a->cfg.item_publish_interval_ms / 1000.0;
    emb_table_t *it = items_table(a);
    if (emb_dirty_count(users_table(a)) + (*items ? emb_dirty_count(it) : emb_new_count(it)) > 0 ||
        s->gone_len > 0 || s->meta_due)
        return SYNC_ROUND;
    if (a->stopping || pub_busy(a->pub))
        return SYNC_NONE;
    return SYNC_HEARTBEAT;
}

/* One round (see sync_due), up to publish_max_keys: returns the vectors and
 * DELs it holds. */
int sync_round(app_t *a)
{
    sync_t *s = &a->sync;
    const double now = clock_mono_s();
    int items;
    sync_what_t what = sync_due(a, now, &items);
    if (what == SYNC_HEARTBEAT) {
        s->heartbeat = 1;
        if (pub_heartbeat(a->pub, clock_wall_ms()))
            s->heartbeat = 0; /* disconnected: nothing in flight */
    }
    if (a->cl) /* versioned: what this round writes reflects the log this far */
        pub_set_position(a->pub, cluster_position(a));
    if (what != SYNC_ROUND || pub_begin(a->pub))
        return 0;
    s->meta_due = 0;
    size_t budget = (size_t)a->cfg.publish_max_keys;
    size_t n = add_gone(a, budget); /* DELs first: a SET of the same key later wins */
    n += add_taken(a, users_table(a), 'u', budget - n, emb_take_dirty);
    if (items) {
        n += add_taken(a, items_table(a), 'i', budget - n, emb_take_dirty);
        s->items_at = now;
    } else { /* a new item's first vector does not wait for the cadence */
        n += add_taken(a, items_table(a), 'i', budget - n, emb_take_new);
    }
    dense_block_t *d = engine_dense(a->eng);
    pub_meta_t meta = {.kind = a->cfg.model,
                       .dim = engine_vector_dim(a->eng),
                       .layout = s->row_layout,
                       .dense = d->params,
                       .ndense = d->n,
                       .dense_layout = s->dense_layout};
    pub_end(a->pub, &meta, clock_wall_ms());
    return (int)n;
}

void sync_publish(app_t *a)
{
    /* a round still in flight: the next starts when it is done, not a whole
     * interval later */
    a->sync.publish_due = pub_busy(a->pub);
    sync_round(a);
}

static void on_publish_now(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sync_publish(arg);
}

/* Vectors left to publish, or a round in flight (a heartbeat in flight
 * holds nothing to wait for: a hung Redis would hold the stop until the
 * round timeout). */
int sync_pending(app_t *a)
{
    return emb_dirty_count(users_table(a)) + emb_dirty_count(items_table(a)) > 0 ||
           (pub_busy(a->pub) && !a->sync.heartbeat);
}

/* ------------------------------------------------------------ life */

int sync_init(app_t *a, char *err, size_t len)
{
    sync_t *s = &a->sync;
    s->meta_due = 1; /* the first round writes the meta hash */
    engine_vector_layout(a->eng, s->row_layout, sizeof(s->row_layout));
    engine_dense_layout(a->eng, s->dense_layout, sizeof(s->dense_layout));
    pub_config_t pc = {.host = a->cfg.redis_host,
                       .port = a->cfg.redis_port,
                       .password = a->cfg.redis_password,
                       .prefix = a->cfg.key_prefix,
                       .model = a->cfg.model,
                       .ttl_s = a->cfg.vector_ttl_s,
                       .reconnect_max_ms = a->cfg.reconnect_max_ms,
                       .round_timeout_ms = 5000,
                       .item_index = a->cfg.item_index,
                       .versioned = a->cfg.model_topic[0] != 0,
                       .cluster = a->cfg.redis_cluster,
                       .nodes = a->cfg.redis_nodes};
    if (!(a->pub = pub_create(a->base, &pc, on_pub_fail, on_pub_done, a, err, len)))
        return -1;
    pub_set_on_empty(a->pub, on_redis_empty);
    if (!(s->now_ev = event_new(a->base, -1, 0, on_publish_now, a))) {
        snprintf(err, len, "cannot set up the publish event");
        return -1;
    }
    return 0;
}

void sync_free(app_t *a)
{
    sync_t *s = &a->sync;
    pub_free(a->pub);
    a->pub = NULL;
    if (s->now_ev)
        event_free(s->now_ev);
    free(s->gone);
    free(s->dirty);
    memset(s, 0, sizeof(*s));
}
