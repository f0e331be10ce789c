/* ingest.c — Kafka batch → decode → example → learn (see freshrecd.h): each
 * message decoded (on a helper thread ahead of the loop, with [kafka]
 * decode_thread), checked, joined (impressions wait for a click), turned into
 * the engine's examples with their features, and learned a micro-batch at a
 * time; a refused message is counted, logged at a bounded rate and copied to
 * the dead-letter topic; a partition's offset is stored only once what it
 * covers is learned. Not for: publishing (sync.c) or checkpoints
 * (checkpoint.c). */
#define _POSIX_C_SOURCE 200809L
#include "freshrecd.h"

#include "clock.h"
#include "id.h"

#include <stdlib.h>
#include <string.h>

struct decoded {
    event_reason_t r;
    char detail[192];
    event_t ev;
};

/* messages decoded per chunk by the helper: small enough that the loop
 * thread waits for the first chunk only briefly (~0.1 ms), large enough that
 * claiming a chunk costs nothing by comparison */
#define DECODE_CHUNK 64

/* partitions whose last message a batch remembers, to store its offset once
 * the batch is learned (more are stored at once) */
#define LAST_MAX 64

int ingest_init(app_t *a, char *err, size_t len)
{
    ingest_t *in = &a->in;
    const int F = a->mc.ncat + a->mc.nnum;
    size_t B = (size_t)a->cfg.batch_max;
    in->pos = malloc(sizeof(lrn_event_t) * B);
    in->arena_cap = B * 2 * EVENT_MAX_ID;
    if (F > 0) { /* features: and their values */
        B += NEG_CHUNK;
        in->pfeat = malloc(sizeof(lrn_feat_t) * B * (size_t)F);
        in->arena_cap = B * (2 * EVENT_MAX_ID + (size_t)a->mc.ncat * (EVENT_MAX_VALUE + 1));
    }
    in->arena = malloc(in->arena_cap);
    in->negs = malloc(sizeof(lrn_event_t) * NEG_CHUNK);
    in->kept = malloc(sizeof(event_t));
    in->one = malloc(sizeof(struct decoded));
    if (!in->pos || !in->arena || !in->negs || !in->kept || !in->one || (F > 0 && !in->pfeat)) {
        snprintf(err, len, "out of memory at start-up");
        return -1;
    }
    return 0;
}

void ingest_start_ahead(app_t *a)
{
    ingest_t *in = &a->in;
    char err[256];
    if (!a->cfg.decode_thread)
        return;
    /* the pages are touched as far as the largest batch goes */
    in->dec = malloc(sizeof(struct decoded) * (size_t)a->cfg.batch_max);
    if (!in->dec || !(in->ahead = ahead_create(err, sizeof(err)))) {
        log_msg(LOG_WARN, "daemon", "%s: the loop thread decodes",
                in->dec ? err : "out of memory for decoding ahead");
        free(in->dec); /* in->ahead is NULL: never made, or its creation failed */
        in->dec = NULL;
    }
}

void ingest_free(app_t *a)
{
    ingest_t *in = &a->in;
    ahead_free(in->ahead); /* stops the decoding thread before its buffer goes */
    free(in->dec);
    free(in->pos);
    free(in->arena);
    free(in->pfeat);
    free(in->negs);
    free(in->kept);
    free(in->one);
    memset(in, 0, sizeof(*in));
}

/* ------------------------------------------------------------ examples */

/* The ids of a batch's events live in an arena until the batch is learned. */
static const char *arena_put(app_t *a, size_t *used, const char *s, size_t len)
{
    if (*used + len > a->in.arena_cap)
        return NULL; /* sized for a full batch of maximal ids: cannot happen */
    char *p = a->in.arena + *used;
    memcpy(p, s, len);
    *used += len;
    return p;
}

/* The features of ev the model reads into fs (ncat + nnum at most), each
 * to its side and field (modelcfg.h); values go to the arena. Returns how
 * many. */
static int pair_features_from(app_t *a, const event_t *ev, lrn_feat_t *fs, size_t *used)
{
    int n = 0;
    for (int j = 0; j < ev->ncat; j++) {
        int f = modelcfg_field_index(a->mc.cat_names, a->mc.cat_from, a->mc.ncat, ev->cat[j].name);
        size_t vl = f < 0 ? 0 : strlen(ev->cat[j].value);
        const char *v = f < 0 ? NULL : arena_put(a, used, ev->cat[j].value, vl);
        if (v)
            fs[n++] = (lrn_feat_t){.side = a->mc.cat_side[f],
                                   .field = a->mc.cat_field[f],
                                   .h = id_hash(v, vl),
                                   .id = v,
                                   .len = vl};
    }
    for (int j = 0; j < ev->nnum; j++) {
        int f = modelcfg_field_index(a->mc.num_names, 0, a->mc.nnum, ev->num[j].name);
        if (f >= 0)
            fs[n++] = (lrn_feat_t){.side = a->mc.num_side[f],
                                   .dense = 1,
                                   .field = a->mc.num_field[f],
                                   .num = (float)ev->num[j].value};
    }
    return n;
}

/* The event an impression kept in the join, decoded again (it was valid when
 * it came in), or NULL when it kept none. Valid until the next call. */
static const event_t *kept_event(app_t *a, const lrn_event_t *ng)
{
    char detail[64];
    if (!ng->payload ||
        event_decode(a->in.kept, ng->payload, ng->payload_len, &a->kinds,
                     (size_t)a->cfg.max_event_bytes, detail, sizeof(detail)) != EVR_OK)
        return NULL;
    return a->in.kept;
}

/* The impressions whose label window has passed without a click, learned
 * as explicit negatives; with features, each brings its own (kept with the
 * impression). The engine copies what it holds past this call. */
void ingest_negatives(app_t *a)
{
    ingest_t *in = &a->in;
    size_t n;
    while ((n = join_take(a->join, in->negs, NEG_CHUNK)) > 0) {
        size_t used = 0;
        const int F = a->mc.ncat + a->mc.nnum;
        for (size_t i = 0; F && i < n; i++) {
            lrn_event_t *ng = &in->negs[i];
            const event_t *ev = kept_event(a, ng);
            if (ev) {
                ng->feat = in->pfeat + i * (size_t)F;
                ng->nfeat = pair_features_from(a, ev, in->pfeat + i * (size_t)F, &used);
            }
        }
        engine_learn(a->eng, in->negs, n);
    }
    engine_flush(a->eng); /* what the engine held of this batch: learned now */
}

/* ------------------------------------------------------------ decoding */

/* chunk c of the batch's messages, decoded (a consume error is left to
 * ingest_batch, which skips it as it does when it decodes itself) */
static void decode_chunk(void *arg, size_t c)
{
    app_t *a = arg;
    ingest_t *in = &a->in;
    size_t i0 = c * DECODE_CHUNK,
           i1 = i0 + DECODE_CHUNK < in->dec_n ? i0 + DECODE_CHUNK : in->dec_n;
    for (size_t i = i0; i < i1; i++) {
        const rd_kafka_message_t *msg = in->dec_msgs[i];
        struct decoded *d = &in->dec[i];
        if (msg->err)
            continue;
        d->r = event_decode(&d->ev, msg->payload, msg->len, &a->kinds,
                            (size_t)a->cfg.max_event_bytes, d->detail, sizeof(d->detail));
    }
}

/* Message i of the batch, decoded: by the helper (waited for at each
 * chunk's first message), or here. */
static struct decoded *decoded_at(app_t *a, rd_kafka_message_t *msg, size_t i)
{
    ingest_t *in = &a->in;
    if (in->dec) {
        if (i % DECODE_CHUNK == 0)
            ahead_wait(in->ahead, i / DECODE_CHUNK);
        return &in->dec[i];
    }
    struct decoded *d = in->one;
    if (!msg->err)
        d->r = event_decode(&d->ev, msg->payload, msg->len, &a->kinds,
                            (size_t)a->cfg.max_event_bytes, d->detail, sizeof(d->detail));
    return d;
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

/* ------------------------------------------------------------ a batch */

/* What one batch has gathered so far. */
typedef struct {
    size_t npos, used, learned;               /* positives, arena bytes, positives learned */
    int64_t wall;                             /* what event times are checked against */
    const rd_kafka_message_t *last[LAST_MAX]; /* the last message of each partition */
    int nlast;
} batch_t;

/* msg is the newest of its partition in the batch: its offset is stored
 * once the batch is learned */
static void remember_last(app_t *a, batch_t *b, const rd_kafka_message_t *msg)
{
    int slot = -1;
    for (int k = 0; k < b->nlast; k++)
        if (b->last[k]->rkt == msg->rkt && b->last[k]->partition == msg->partition)
            slot = k;
    if (slot < 0 && b->nlast < LAST_MAX)
        slot = b->nlast++;
    if (slot >= 0)
        b->last[slot] = msg;
    else
        kafka_store(a->kafka, msg); /* more partitions than slots: store at once */
}

/* The event's time: its own, else the message's, else the clock. */
static int64_t event_time(const event_t *ev, const rd_kafka_message_t *msg, int64_t wall)
{
    if (ev->has_ts)
        return ev->ts_ms;
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(msg, &tt);
    return ts < 0 ? wall : ts;
}

/* A valid event: an impression waits in the join; a click or a weighted
 * kind is a positive of the batch, learned a micro-batch at a time. */
static void take_event(app_t *a, batch_t *b, const rd_kafka_message_t *msg, const event_t *ev,
                       int64_t ts)
{
    ingest_t *in = &a->in;
    a->m.consumed[ev->kind]++;
    lrn_id_t u = {id_hash(ev->user, ev->user_len), ev->user, ev->user_len};
    lrn_id_t it = {id_hash(ev->item, ev->item_len), ev->item, ev->item_len};
    if (ev->kind == EVENT_IMPRESSION) {
        /* an impression learned later (a negative) with its own features */
        int keep = a->mc.ncat + a->mc.nnum > 0;
        if (join_impression(a->join, &u, &it, ts, keep ? msg->payload : NULL, keep ? msg->len : 0))
            log_limited(&a->bad_log, LOG_ERROR, "join", "out of memory: impression dropped");
        return;
    }
    if (ev->kind == EVENT_CLICK)
        join_click(a->join, &u, &it, ts);
    else
        join_advance(a->join, ts);
    u.id = arena_put(a, &b->used, ev->user, ev->user_len);
    it.id = arena_put(a, &b->used, ev->item, ev->item_len);
    if (!u.id || !it.id)
        return;
    lrn_feat_t *fs = in->pfeat ? in->pfeat + b->npos * (size_t)(a->mc.ncat + a->mc.nnum) : NULL;
    int nf = fs ? pair_features_from(a, ev, fs, &b->used) : 0;
    in->pos[b->npos++] = (lrn_event_t){.user = u,
                                       .item = it,
                                       .ts_ms = ts,
                                       .weight = ev->weight > 0 ? ev->weight : 1.0f,
                                       .feat = nf ? fs : NULL,
                                       .nfeat = nf};
    /* a micro-batch's worth: learned now, while the helper decodes on */
    if (b->npos - b->learned == (size_t)a->cfg.batch_events) {
        engine_learn(a->eng, in->pos + b->learned, b->npos - b->learned);
        b->learned = b->npos;
        cluster_after_learn(a); /* everything admitted so far is learned */
    }
}

/* One message of the batch: skipped (a consume error), refused, or taken. */
static void ingest_one(app_t *a, batch_t *b, rd_kafka_message_t *msg, size_t i)
{
    struct decoded *d = decoded_at(a, msg, i);
    if (msg->err) {
        log_limited(&a->kafka_log, LOG_WARN, "kafka", "consume: %s", rd_kafka_message_errstr(msg));
        return;
    }
    if (a->cl && !cluster_admit(a, msg))
        return; /* another member's partition, or learned already */
    remember_last(a, b, msg);
    if (d->r != EVR_OK) {
        refuse(a, msg, d->r, d->detail);
        return;
    }
    const event_t *ev = &d->ev;
    int64_t ts = event_time(ev, msg, b->wall);
    /* event time is the largest ts seen: one from the future would decide
     * every waiting impression at once, and every later one on arrival */
    if (event_check_time(ts, ev->has_ts, b->wall, a->cfg.max_future_skew_ms, d->detail,
                         sizeof(d->detail)) != EVR_OK) {
        refuse(a, msg, EVR_FUTURE_TS, d->detail);
        return;
    }
    take_event(a, b, msg, ev, ts);
}

void ingest_batch(void *arg, rd_kafka_message_t **msgs, size_t n)
{
    app_t *a = arg;
    ingest_t *in = &a->in;
    batch_t b = {.wall = clock_wall_ms()};
    if (in->dec) {
        in->dec_msgs = msgs;
        in->dec_n = n;
        ahead_start(in->ahead, (n + DECODE_CHUNK - 1) / DECODE_CHUNK, decode_chunk, a);
    }
    for (size_t i = 0; i < n; i++)
        ingest_one(a, &b, msgs[i], i);
    if (in->dec)
        ahead_wait_all(in->ahead); /* each chunk was waited for: returns at once */
    if (b.npos > b.learned)
        engine_learn(a->eng, in->pos + b.learned, b.npos - b.learned);
    ingest_negatives(a);
    /* learned: now their offsets may be committed */
    for (int k = 0; k < b.nlast; k++)
        kafka_store(a->kafka, b.last[k]);
    cluster_after_learn(a);
}
