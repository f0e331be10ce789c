/* cluster.c — several members, one model (see freshrecd.h): with [cluster]
 * model_topic, this daemon is one member of its consumer group, and the
 * members learn one model through the model log, a single-partition topic
 * (proto/mlog.h has the records and the ledger):
 *
 *   - the users of an input partition are learned by the member that owns
 *     it; items and the dense block change only when the log is applied;
 *   - every window_ms (or window_max_events) the member produces one window
 *     record: the input ranges it learned, the items' and the dense block's
 *     gradient sums, its users' new rows;
 *   - every member, the producer too, reads the log in order, judges each
 *     record with the same ledger and applies the accepted ones with the same
 *     code, so the shared state is the same bytes everywhere;
 *   - a partition assigned to this member is paused until its claim is
 *     accepted; then it is consumed from where the ledger says its last
 *     accepted range ended (not from the group's committed offset, which is
 *     a lag figure only). A window the ledger refuses (its member lost the
 *     partition, or a record went missing) is learned again by the owner.
 *
 * Start-up reads the log from its start, or from past the position a
 * restored checkpoint's ledger holds (its item rows and dense block are the
 * log's state there); claims wait until the reader has reached the log's
 * end. Not for: the record format or the ledger's rules
 * (proto/mlog.c), learning (the engine). */
#define _POSIX_C_SOURCE 200809L
#include "freshrecd.h"

#include "clock.h"
#include "mlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* model-log records read per turn of the loop, before other events go */
#define READ_BATCH 64
/* a claim not accepted within this long is produced again */
#define CLAIM_RETRY_S 10.0
/* windows of this member produced but not yet read back from the log, at
 * most: beyond it, no more input is taken (a member catching up on a
 * backlog would otherwise learn batch after batch against item rows its
 * own windows have not reached yet) */
#define INFLIGHT_MAX 1
/* the ages of the last AGES applied records, for their 99th percentile */
#define AGES 1024
/* the largest record the member produces (the topic's max.message.bytes
 * must allow it: see README) */
#define RECORD_MAX_BYTES (16 << 20)

typedef enum {
    PART_CLAIMING, /* assigned, paused: its claim is not accepted yet */
    PART_LIVE,     /* ours: consumed and learned */
    PART_LOST      /* another member's claim was accepted: paused until revoked */
} part_state_t;

typedef struct {
    char topic[128];
    int32_t partition;
    part_state_t state;
    int64_t pos;  /* LIVE: the first offset the open window covers */
    int64_t last; /* LIVE: the last offset learned in it; -1 none */
} cpart_t;

struct cluster {
    rd_kafka_t *prod, *reader;
    rd_kafka_queue_t *rq;
    int pipefd[2];
    struct event *pipe_ev, *again_ev;
    rd_kafka_message_t *batch[READ_BATCH];
    char member[MLOG_MEMBER_MAX + 1];
    size_t member_len;
    mlog_ledger_t ledger;
    mlog_writer_t w;
    mlog_record_t *rec; /* the record being applied (about 50 KB) */
    uint64_t seq;
    cpart_t parts[KAFKA_MAX_OFFSETS];
    int nparts;
    int caught_up;   /* the reader reached the log's end once */
    int claim_due;   /* partitions wait for a claim to be produced */
    double claim_at; /* clock_mono_s of the last claim produced; 0 none */
    size_t window_events;
    int members;          /* owners of input partitions in the ledger (at least 1) */
    int inflight;         /* our windows produced, not read back yet */
    int holding;          /* input held: INFLIGHT_MAX windows in flight */
    int64_t first_offset; /* of the first record read; -1 none yet */
    log_limit_t log;
    /* figures (cluster_stats) */
    uint64_t windows, window_bytes, window_events_total, claims, produce_errors, bad_records;
    uint64_t resyncs, refused_own, apply_refusals, log_gaps;
    double apply_s, last_age_s;
    float ages[AGES]; /* a ring of applied records' ages (s) */
    size_t nages;
    int64_t high; /* the log's end as last read */
    /* freshrec_cluster_shared_digest is a pass over every item row: taken
     * once the state stood still from one snapshot to the next (the moment
     * members' digests can be compared), not on every snapshot under load */
    uint64_t digest, digest_events;
    int64_t digest_position;
    size_t digest_rows;
    int digest_taken; /* digest is of the state the three keys above name */
};

/* ------------------------------------------------------------ partitions */

static cpart_t *part_find(cluster_t *c, const char *topic, int32_t partition)
{
    for (int i = 0; i < c->nparts; i++)
        if (c->parts[i].partition == partition && strcmp(c->parts[i].topic, topic) == 0)
            return &c->parts[i];
    return NULL;
}

/* The partition a record's range names, or NULL when it is none of ours. */
static cpart_t *part_of(cluster_t *c, const mlog_range_t *g)
{
    for (int i = 0; i < c->nparts; i++)
        if (c->parts[i].partition == g->partition && strlen(c->parts[i].topic) == g->topic_len &&
            memcmp(c->parts[i].topic, g->topic, g->topic_len) == 0)
            return &c->parts[i];
    return NULL;
}

/* Pauses the partition, or seeks it to offset and resumes it (offset >= 0). */
static void part_ctl(app_t *a, const cpart_t *p, int64_t offset)
{
    rd_kafka_t *rk = kafka_handle(a->kafka);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = offset;
    if (offset < 0) {
        rd_kafka_pause_partitions(rk, l);
    } else {
        rd_kafka_error_t *e = rd_kafka_seek_partitions(rk, l, 0);
        if (e) {
            log_msg(LOG_WARN, "cluster", "%s [%d]: seek to %lld: %s", p->topic, p->partition,
                    (long long)offset, rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
        rd_kafka_resume_partitions(rk, l);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* The partition's window is no longer to be trusted (a record of ours went
 * missing or was refused): paused and claimed again, then consumed from
 * where the ledger says. */
static void part_resync(app_t *a, cpart_t *p, const char *why)
{
    cluster_t *c = a->cl;
    if (p->state != PART_LIVE)
        return;
    log_msg(LOG_WARN, "cluster",
            "%s [%d]: %s: claimed again, then learned from the ledger's offset", p->topic,
            p->partition, why);
    p->state = PART_CLAIMING;
    part_ctl(a, p, -1);
    c->claim_due = 1;
    c->resyncs++;
}

/* ------------------------------------------------------------ producing */

/* One of our windows came back (read from the log, or lost): input is taken
 * again once fewer than INFLIGHT_MAX are out. */
static void window_back(app_t *a)
{
    cluster_t *c = a->cl;
    if (c->inflight > 0)
        c->inflight--;
    if (c->holding && c->inflight < INFLIGHT_MAX) {
        c->holding = 0;
        kafka_hold(a->kafka, 0);
    }
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    app_t *a = opaque;
    cluster_t *c = a->cl;
    if (!m->err)
        return;
    c->produce_errors++;
    log_msg(LOG_ERROR, "cluster", "a %s record was not written to %s: %s",
            m->_private ? "window" : "claim", a->cfg.model_topic, rd_kafka_err2str(m->err));
    if (m->_private) { /* a window lost: every later range of ours would leave a gap */
        window_back(a);
        for (int i = 0; i < c->nparts; i++)
            part_resync(a, &c->parts[i], "a window record was lost");
    } else
        c->claim_due = 1;
}

/* Hands the record just finished to the producer; 0 or -1 (logged). */
static int produce(app_t *a, int window)
{
    cluster_t *c = a->cl;
    const uint8_t *b;
    size_t n;
    if (mlog_finish(&c->w, &b, &n)) {
        log_msg(LOG_ERROR, "cluster", "a %s record could not be built (out of memory?)",
                window ? "window" : "claim");
        return -1;
    }
    rd_kafka_resp_err_t err =
        rd_kafka_producev(c->prod, RD_KAFKA_V_TOPIC(a->cfg.model_topic), RD_KAFKA_V_PARTITION(0),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE((void *)b, n),
                          RD_KAFKA_V_OPAQUE((void *)(intptr_t)window), RD_KAFKA_V_END);
    if (err) {
        c->produce_errors++;
        log_msg(LOG_ERROR, "cluster", "a %s record of %zu bytes was not produced: %s",
                window ? "window" : "claim", n, rd_kafka_err2str(err));
        return -1;
    }
    if (window) {
        c->windows++;
        c->window_bytes += n;
    }
    return 0;
}

/* A claim of every partition that waits for one, having read the log up to
 * the ledger's position. A partition new to the log starts at offset 0 (the
 * first that exists, once retention has removed older ones). */
static void claim(app_t *a)
{
    cluster_t *c = a->cl;
    int n = 0;
    c->claim_due = 0;
    mlog_begin(&c->w, MLOG_CLAIM, c->member, c->member_len, c->seq++, clock_wall_ms(),
               c->ledger.position, 0);
    for (int i = 0; i < c->nparts; i++)
        if (c->parts[i].state == PART_CLAIMING) {
            mlog_add_range(&c->w, c->parts[i].topic, c->parts[i].partition, 0, -1);
            n++;
        }
    if (!n)
        return;
    if (produce(a, 0) == 0) {
        c->claims++;
        c->claim_at = clock_mono_s();
        log_msg(LOG_INFO, "cluster", "claimed %d partition(s) as %s at log position %lld", n,
                c->member, (long long)c->ledger.position);
    } else {
        c->claim_due = 1;
    }
}

/* The members the ledger names as owners of input partitions, at least 1. */
static int ledger_members(const mlog_ledger_t *L)
{
    int n = 0;
    for (int i = 0; i < L->nparts; i++) {
        int seen = 0;
        for (int k = 0; k < i && !seen; k++)
            seen = strcmp(L->parts[k].owner, L->parts[i].owner) == 0;
        n += !seen;
    }
    return n ? n : 1;
}

/* Events a window of this member holds at most: [cluster] window_max_events
 * is the group's, shared among the members, so that the item rows a member
 * learns against lack about as many events (its own window and the others'
 * in flight) with three members as with one; in whole micro-batches (at
 * least one), because the dense block takes one Adam step per micro-batch
 * of a window, and Adam's step is about as long for a few events as for a
 * full batch: windows cut into part batches would move it further per
 * event with more members. */
static size_t window_max(const app_t *a)
{
    double share = (double)a->cfg.window_max_events / (double)a->cl->members;
    size_t b = (size_t)a->cfg.batch_events, n = (size_t)(share / (double)b + 0.5);
    return (n ? n : 1) * b;
}

/* The open window's count of input messages; the next Kafka batches take
 * no more than the window has room for, so the window ends between two
 * batches and nothing is learned while it is in flight. */
static void window_events_set(app_t *a, size_t n)
{
    size_t max = window_max(a);
    a->cl->window_events = n;
    if (a->kafka)
        kafka_limit(a->kafka, n < max ? max - n : 1);
}

void cluster_window(app_t *a)
{
    static const learner_window_sink_t sink = {mlog_put_row_grad, mlog_put_row_value,
                                               mlog_put_dense};
    cluster_t *c = a->cl;
    if (!c)
        return;
    int live = 0, ranges = 0;
    mlog_begin(&c->w, MLOG_WINDOW, c->member, c->member_len, c->seq, clock_wall_ms(), -1, 0);
    for (int i = 0; i < c->nparts; i++) {
        cpart_t *p = &c->parts[i];
        live += p->state == PART_LIVE;
        if (p->state == PART_LIVE && p->last >= p->pos) {
            mlog_add_range(&c->w, p->topic, p->partition, p->pos, p->last);
            ranges++;
        }
    }
    /* what was learned since the last window: taken even when it goes
     * nowhere (a member that owns nothing sends no window) */
    engine_flush(a->eng); /* what the ranges cover is learned, all of it */
    size_t steps = engine_window_take(a->eng, &sink, &c->w);
    if (!live || (!ranges && !steps)) {
        window_events_set(a, 0);
        return;
    }
    mlog_set_steps(&c->w, (uint32_t)steps);
    c->seq++;
    if (produce(a, 1) == 0) {
        for (int i = 0; i < c->nparts; i++) {
            cpart_t *p = &c->parts[i];
            if (p->state == PART_LIVE && p->last >= p->pos) {
                p->pos = p->last + 1;
                p->last = -1;
            }
        }
        c->window_events_total += c->window_events;
        if (++c->inflight >= INFLIGHT_MAX && !c->holding) {
            c->holding = 1;
            kafka_hold(a->kafka, 1);
        }
    } else {
        for (int i = 0; i < c->nparts; i++)
            part_resync(a, &c->parts[i], "a window record could not be produced");
    }
    window_events_set(a, 0);
}

/* ------------------------------------------------------------ rebalances */

static void on_rebalance(void *arg, int assigned, rd_kafka_topic_partition_list_t *parts)
{
    app_t *a = arg;
    cluster_t *c = a->cl;
    if (!assigned) {
        /* what was learned of them goes out first: the next owner starts
         * where it ends, if it reaches the log before that owner's claim */
        cluster_window(a);
        for (int i = 0; i < parts->cnt; i++) {
            cpart_t *p = part_find(c, parts->elems[i].topic, parts->elems[i].partition);
            if (p)
                *p = c->parts[--c->nparts];
        }
        return;
    }
    for (int i = 0; i < parts->cnt; i++) {
        cpart_t *p = part_find(c, parts->elems[i].topic, parts->elems[i].partition);
        if (!p) {
            if (c->nparts == KAFKA_MAX_OFFSETS) {
                log_msg(LOG_ERROR, "cluster", "more than %d partitions: %s [%d] is not learned",
                        KAFKA_MAX_OFFSETS, parts->elems[i].topic, parts->elems[i].partition);
                continue;
            }
            p = &c->parts[c->nparts++];
            snprintf(p->topic, sizeof(p->topic), "%s", parts->elems[i].topic);
            p->partition = parts->elems[i].partition;
        }
        p->state = PART_CLAIMING;
        p->last = -1;
    }
    rd_kafka_pause_partitions(kafka_handle(a->kafka), parts);
    c->claim_due = 1;
    if (c->caught_up)
        claim(a);
}

int cluster_admit(app_t *a, const rd_kafka_message_t *m)
{
    cluster_t *c = a->cl;
    cpart_t *p = part_find(c, rd_kafka_topic_name(m->rkt), m->partition);
    /* not ours (yet), or learned already: fetched before a pause or a seek */
    if (!p || p->state != PART_LIVE || m->offset < p->pos || m->offset <= p->last)
        return 0;
    p->last = m->offset;
    window_events_set(a, c->window_events + 1);
    return 1;
}

void cluster_after_learn(app_t *a)
{
    if (a->cl && a->cl->window_events >= window_max(a))
        cluster_window(a);
}

/* ------------------------------------------------------------ reading */

static int is_own(const cluster_t *c, const mlog_record_t *r)
{
    return r->member_len == c->member_len && memcmp(r->member, c->member, c->member_len) == 0;
}

/* What an accepted or refused claim means for this member's partitions. */
static void on_claim(app_t *a, const mlog_record_t *r, int verdict)
{
    cluster_t *c = a->cl;
    int own = is_own(c, r);
    for (int i = 0; i < r->nranges; i++) {
        const mlog_range_t *g = &r->ranges[i];
        cpart_t *p = part_of(c, g);
        if (!p)
            continue;
        if (own && verdict == MLOG_STALE_CLAIM && p->state == PART_CLAIMING) {
            c->claim_due = 1; /* a newer claim saw ours: again, with what we read since */
        } else if (own && verdict == MLOG_ACCEPTED && p->state == PART_CLAIMING) {
            const mlog_part_t *lp =
                mlog_ledger_find(&c->ledger, g->topic, g->topic_len, g->partition);
            p->state = PART_LIVE;
            p->pos = lp->next;
            p->last = -1;
            part_ctl(a, p, p->pos);
            log_msg(LOG_INFO, "cluster", "%s [%d] is ours from offset %lld", p->topic, p->partition,
                    (long long)p->pos);
        } else if (!own && verdict == MLOG_ACCEPTED && p->state != PART_LOST) {
            /* another member took it while it was still ours here (this
             * process was stopped past its session): no more of it is
             * learned; the rebalance takes it away soon */
            log_msg(LOG_WARN, "cluster", "%s [%d] was claimed by %.*s: no longer learned here",
                    p->topic, p->partition, (int)r->member_len, r->member);
            p->state = PART_LOST;
            part_ctl(a, p, -1);
        }
    }
}

/* One record of the log at offset pos: judged by the ledger; applied when
 * accepted. */
static void on_record(app_t *a, const rd_kafka_message_t *m)
{
    static const mlog_apply_ops_t ops = {engine_apply_row_grad, engine_apply_row_value,
                                         engine_apply_dense};
    cluster_t *c = a->cl;
    char err[256];
    if (c->first_offset < 0 && c->ledger.position < 0) {
        c->first_offset = m->offset; /* counted as a gap when past 0 */
        if (m->offset > 0)
            log_msg(LOG_ERROR, "cluster",
                    "the model log %s starts at offset %lld: the records before it are gone "
                    "(retention), so this member's model lacks them; give the topic "
                    "retention.ms=-1",
                    a->cfg.model_topic, (long long)m->offset);
    }
    if (c->ledger.position >= 0 && m->offset > c->ledger.position + 1) {
        /* the broker dropped records this member had not read (retention):
         * its shared state now differs from the other members' */
        c->log_gaps++;
        log_msg(LOG_ERROR, "cluster",
                "model log %s: offsets %lld..%lld are gone before this member read them: its "
                "item rows and dense block now differ from the other members'; give the topic "
                "retention.ms=-1 and restart this member",
                a->cfg.model_topic, (long long)c->ledger.position + 1, (long long)m->offset - 1);
    }
    if (mlog_decode(m->payload, m->len, c->rec, err, sizeof(err))) {
        c->bad_records++;
        log_limited(&c->log, LOG_WARN, "cluster", "model log offset %lld skipped: %s",
                    (long long)m->offset, err);
        return;
    }
    int v = mlog_ledger_apply(&c->ledger, c->rec, m->offset);
    if (v < 0)
        return; /* read again after a fetch error: applied already */
    mlog_record_t *r = c->rec;
    if (r->kind == MLOG_WINDOW && is_own(c, r))
        window_back(a);
    if (r->kind == MLOG_CLAIM) {
        if (v == MLOG_ACCEPTED) {
            c->members = ledger_members(&c->ledger);
            window_events_set(a, c->window_events);
        }
        on_claim(a, r, v);
        return;
    }
    if (v != MLOG_ACCEPTED) {
        if (is_own(c, r)) {
            c->refused_own++;
            for (int i = 0; i < r->nranges; i++) {
                cpart_t *p = part_of(c, &r->ranges[i]);
                if (p)
                    part_resync(a, p, mlog_verdict_name((mlog_verdict_t)v));
            }
        }
        return;
    }
    double t0 = clock_mono_s();
    engine_apply_at(a->eng, r->ts_ms);
    long refused = mlog_apply(r, &ops, a->eng, is_own(c, r));
    if (refused > 0)
        c->apply_refusals += (uint64_t)refused;
    c->apply_s += clock_mono_s() - t0;
    c->last_age_s = (double)(clock_wall_ms() - r->ts_ms) / 1000.0;
    c->ages[c->nages++ % AGES] = (float)c->last_age_s;
}

static int cmp_float(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

/* the 99th percentile of the last AGES applied records' ages; 0 none */
static double age_p99(const cluster_t *c)
{
    static float sorted[AGES];
    size_t n = c->nages < AGES ? c->nages : AGES;
    if (!n)
        return 0;
    memcpy(sorted, c->ages, sizeof(float) * n);
    qsort(sorted, n, sizeof(float), cmp_float);
    return sorted[(size_t)(0.99 * (double)(n - 1) + 0.5)];
}

static void read_again(app_t *a)
{
    static const struct timeval now = {0, 0};
    evtimer_add(a->cl->again_ev, &now);
}

/* Reads what the log holds now, READ_BATCH records a turn. */
static void read_log(app_t *a)
{
    cluster_t *c = a->cl;
    char b;
    while (read(c->pipefd[0], &b, 1) > 0) {
    }
    ssize_t n = rd_kafka_consume_batch_queue(c->rq, 0, c->batch, READ_BATCH);
    for (ssize_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = c->batch[i];
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (!c->caught_up) {
                c->caught_up = 1;
                log_msg(LOG_INFO, "cluster",
                        "model log read to its end (position %lld): claiming partitions",
                        (long long)c->ledger.position);
            }
        } else if (m->err) {
            log_limited(&c->log, LOG_WARN, "cluster", "model log: %s", rd_kafka_message_errstr(m));
        } else {
            on_record(a, m);
        }
        rd_kafka_message_destroy(m);
    }
    if (c->caught_up && c->claim_due)
        claim(a);
    if (n == READ_BATCH)
        read_again(a);
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    read_log(arg);
}

/* ------------------------------------------------------------ the cron */

void cluster_tick(app_t *a)
{
    cluster_t *c = a->cl;
    if (!c)
        return;
    rd_kafka_poll(c->prod, 0); /* delivery reports */
    if (!a->stopping)
        cluster_window(a);
    if (c->caught_up && !c->claim_due && c->claim_at > 0 &&
        clock_mono_s() - c->claim_at > CLAIM_RETRY_S)
        for (int i = 0; i < c->nparts; i++)
            if (c->parts[i].state == PART_CLAIMING)
                c->claim_due = 1;
    if (c->caught_up && c->claim_due)
        claim(a);
    read_log(a); /* in case a wake-up byte was coalesced away */
}

uint64_t cluster_position(const app_t *a)
{
    return a->cl ? (uint64_t)(a->cl->ledger.position + 1) : 0;
}

/* The shared state's digest, 52 bits (a double holds them): taken when
 * the log position, the events learned and the item rows in use are those
 * of the previous call; else the last one taken. */
static uint64_t shared_digest(app_t *a, uint64_t events)
{
    cluster_t *c = a->cl;
    size_t rows = emb_admitted_rows(items_table(a));
    if (c->digest_position != c->ledger.position || c->digest_events != events ||
        c->digest_rows != rows) {
        c->digest_position = c->ledger.position;
        c->digest_events = events;
        c->digest_rows = rows;
        c->digest_taken = 0;
    } else if (!c->digest_taken) {
        c->digest = engine_shared_digest(a->eng) & ((1ull << 52) - 1);
        c->digest_taken = 1;
    }
    return c->digest;
}

void cluster_stats(app_t *a, metrics_t *out)
{
    cluster_t *c = a->cl;
    if (!c)
        return;
    out->cluster = 1;
    memcpy(out->cluster_verdicts, c->ledger.verdicts, sizeof(out->cluster_verdicts));
    out->cluster_bad_records_total = c->bad_records;
    out->cluster_log_gaps_total = c->log_gaps + (c->first_offset > 0);
    out->cluster_windows_total = c->windows;
    out->cluster_window_bytes_total = c->window_bytes;
    out->cluster_window_events_total = c->window_events_total;
    out->cluster_claims_total = c->claims;
    out->cluster_produce_errors_total = c->produce_errors;
    out->cluster_resyncs_total = c->resyncs;
    out->cluster_refused_own_total = c->refused_own;
    out->cluster_apply_seconds_total = c->apply_s;
    out->cluster_record_age_seconds = c->last_age_s;
    out->cluster_record_age_p99_seconds = age_p99(c);
    out->cluster_log_position = c->ledger.position;
    int64_t lo = -1, hi = -1;
    out->cluster_log_lag = -1;
    if (rd_kafka_get_watermark_offsets(c->reader, a->cfg.model_topic, 0, &lo, &hi) == 0 && hi >= 0)
        out->cluster_log_lag = hi - 1 - c->ledger.position;
    out->cluster_partitions_live = 0;
    for (int i = 0; i < c->nparts; i++)
        out->cluster_partitions_live += c->parts[i].state == PART_LIVE;
    out->cluster_shared_digest = shared_digest(a, out->learner.events);
    out->publish_refused_older_total = pub_refused_older(a->pub);
}

/* ------------------------------------------------------------ life */

static int set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t len)
{
    char e[256];
    if (rd_kafka_conf_set(conf, name, value, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
        snprintf(err, len, "cluster: %s = %s: %s", name, value, e);
        return -1;
    }
    return 0;
}

static rd_kafka_t *client(app_t *a, rd_kafka_type_t type, char *err, size_t len)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char e[256], group[CONFIG_STR + 8], maxb[24];
    snprintf(group, sizeof(group), "%.240s.model", a->cfg.group_id);
    snprintf(maxb, sizeof(maxb), "%d", RECORD_MAX_BYTES + 4096);
    int bad = set(conf, "bootstrap.servers", kafka_bootstrap(a->kafka), err, len) ||
              set(conf, "log_level", "4", err, len);
    if (!bad && type == RD_KAFKA_PRODUCER) /* in order, once each, whatever retries do */
        bad = set(conf, "enable.idempotence", "true", err, len) ||
              set(conf, "linger.ms", "0", err, len) ||
              set(conf, "message.max.bytes", maxb, err, len);
    else if (!bad) /* the reader: no group of its own, partition 0 from the start */
        bad = set(conf, "group.id", group, err, len) ||
              set(conf, "enable.auto.commit", "false", err, len) ||
              set(conf, "enable.partition.eof", "true", err, len) ||
              set(conf, "fetch.wait.max.ms", "5", err, len) ||
              set(conf, "auto.offset.reset", "earliest", err, len);
    /* (a reader that falls behind the log's retention jumps to the oldest
     * record left; on_record says so and counts it) */
    if (!bad && kafka_conf_apply(conf, a->cfg.kafka_properties, e, sizeof(e))) {
        snprintf(err, len, "cluster: [kafka] properties: %s", e);
        bad = 1;
    }
    if (bad) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, a);
    if (type == RD_KAFKA_PRODUCER)
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(type, conf, e, sizeof(e));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, len, "cluster: %s", e);
    }
    return rk;
}

int cluster_create(app_t *a, char *err, size_t len)
{
    if (!a->cfg.model_topic[0])
        return 0;
    cluster_t *c = calloc(1, sizeof(*c));
    if (!c || !(c->rec = malloc(sizeof(*c->rec)))) {
        free(c);
        snprintf(err, len, "cluster: out of memory");
        return -1;
    }
    a->cl = c;
    c->pipefd[0] = c->pipefd[1] = -1;
    c->first_offset = -1;
    c->members = 1;
    c->log.burst = 10;
    mlog_ledger_init(&c->ledger);
    /* a new name at each start: a process that restarts is a new member,
     * and a window from its earlier life (or a paused twin) is another
     * member's, fenced by the ledger like any */
    char host[64] = "host";
    if (!a->cfg.member[0]) {
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
    }
    unsigned r = (unsigned)(clock_wall_ms() ^ (int64_t)getpid() << 16) & 0xffffu;
    snprintf(c->member, sizeof(c->member), "%.200s-%d-%04x",
             a->cfg.member[0] ? a->cfg.member : host, (int)getpid(), r);
    c->member_len = strlen(c->member);
    return 0;
}

int cluster_save(app_t *a, ser_writer_t *w)
{
    return mlog_ledger_save(&a->cl->ledger, w);
}

int cluster_load(app_t *a, ser_reader_t *r, char *err, size_t len)
{
    mlog_ledger_free(&a->cl->ledger);
    return mlog_ledger_load(&a->cl->ledger, r, err, len);
}

void cluster_forget(app_t *a)
{
    if (!a->cl)
        return;
    mlog_ledger_free(&a->cl->ledger);
    mlog_ledger_init(&a->cl->ledger);
}

int cluster_start(app_t *a, char *err, size_t len)
{
    cluster_t *c = a->cl;
    if (!c)
        return 0;
    if (!(c->prod = client(a, RD_KAFKA_PRODUCER, err, len)) ||
        !(c->reader = client(a, RD_KAFKA_CONSUMER, err, len)))
        return -1;
    rd_kafka_poll_set_consumer(c->reader);
    c->rq = rd_kafka_queue_get_consumer(c->reader);
    if (pipe(c->pipefd) || fcntl(c->pipefd[0], F_SETFL, O_NONBLOCK) ||
        fcntl(c->pipefd[1], F_SETFL, O_NONBLOCK)) {
        snprintf(err, len, "cluster: pipe: %s", strerror(errno));
        return -1;
    }
    rd_kafka_queue_io_event_enable(c->rq, c->pipefd[1], "1", 1);
    c->pipe_ev = event_new(a->base, c->pipefd[0], EV_READ | EV_PERSIST, on_pipe, a);
    c->again_ev = evtimer_new(a->base, on_pipe, a);
    if (!c->pipe_ev || !c->again_ev || event_add(c->pipe_ev, NULL)) {
        snprintf(err, len, "cluster: cannot watch the model log's queue");
        return -1;
    }
    /* from the start, or past what a restored checkpoint reflects */
    int64_t from = c->ledger.position >= 0 ? c->ledger.position + 1 : RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, a->cfg.model_topic, 0)->offset = from;
    rd_kafka_resp_err_t e = rd_kafka_assign(c->reader, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, len, "cluster: reading %s: %s", a->cfg.model_topic, rd_kafka_err2str(e));
        return -1;
    }
    kafka_set_rebalance_hook(a->kafka, on_rebalance, a);
    c->members = ledger_members(&c->ledger);
    window_events_set(a, 0);
    log_msg(LOG_INFO, "cluster",
            "member %s of group %s: model log %s read from offset %lld, a window every %d ms",
            c->member, a->cfg.group_id, a->cfg.model_topic,
            (long long)(c->ledger.position >= 0 ? c->ledger.position + 1 : 0), a->cfg.window_ms);
    return 0;
}

void cluster_free(app_t *a)
{
    cluster_t *c = a->cl;
    if (!c)
        return;
    if (c->prod) {
        cluster_window(a); /* what was learned since the last one */
        rd_kafka_resp_err_t e = rd_kafka_flush(c->prod, a->cfg.shutdown_timeout_ms / 2);
        if (e)
            log_msg(LOG_WARN, "cluster", "%d model-log record(s) not written at shutdown: %s",
                    rd_kafka_outq_len(c->prod), rd_kafka_err2str(e));
        rd_kafka_destroy(c->prod);
    }
    if (c->pipe_ev)
        event_free(c->pipe_ev);
    if (c->again_ev)
        event_free(c->again_ev);
    if (c->rq) {
        rd_kafka_queue_io_event_enable(c->rq, -1, NULL, 0);
        rd_kafka_queue_destroy(c->rq);
    }
    if (c->reader) {
        rd_kafka_consumer_close(c->reader);
        rd_kafka_destroy(c->reader);
    }
    for (int i = 0; i < 2; i++)
        if (c->pipefd[i] >= 0)
            close(c->pipefd[i]);
    mlog_ledger_free(&c->ledger);
    mlog_writer_free(&c->w);
    free(c->rec);
    free(c);
    a->cl = NULL;
}
