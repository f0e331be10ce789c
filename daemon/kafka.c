/* kafka.c — consumer group, dead-letter producer and embedded mock cluster
 * (see kafka.h). The loop never blocks in a poll: librdkafka writes a byte to
 * a pipe when the consumer queue becomes non-empty, the loop watches the pipe
 * and drains the queue with zero-timeout batch reads. */
#define _POSIX_C_SOURCE 200809L
#include "kafka.h"

#include "config.h"
#include "log.h"
#include "metrics.h"

#include <librdkafka/rdkafka_mock.h>

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <time.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Batches per wake-up before yielding to other events (Redis replies, the
 * cron's publish round): one; CATCHUP_ROUNDS while more than that many batches wait
 * in the queue (see drain). */
#define CATCHUP_ROUNDS 8

/* Dead-letter copies waiting for the broker hold at most this many bytes;
 * beyond it the queue is not drained until some are acknowledged. */
#define DLQ_PENDING_MAX_BYTES (64u << 20)
/* A failed copy is produced again after 250 ms, doubling to 4 s at most. */
#define DLQ_RETRY_MIN_S 0.25
#define DLQ_RETRY_MAX_S 4.0
/* Room in the producer's message.max.bytes beyond the value and key: the
 * headers (detail ~200 bytes, source topic < 128) and record overhead. */
#define DLQ_OVERHEAD 16384

/* A dead-letter copy, kept from the moment its message is refused until the
 * broker acknowledges it: its partition's offsets are not stored past it
 * meanwhile, and a failed one is produced again from here. */
typedef struct dlq_copy {
    struct dlq_copy *prev, *next;   /* all pending copies, in the order refused */
    struct dlq_copy *sprev, *snext; /* its slot's, by offset (slot >= 0) */
    int slot;                       /* its partition's index in learned[]; -1: not tracked */
    int32_t partition;
    int64_t offset;    /* of the refused message */
    char *val, *key;   /* prefixes of the message's value and key (owned) */
    size_t vlen, klen; /* what is produced now (halved when the broker refuses the size) */
    size_t orig_vlen, orig_klen;
    char reason[32], detail[256], source[128];
    int failures;    /* reports of failure since the last delivery */
    int in_flight;   /* handed to librdkafka, no delivery report yet */
    double retry_at; /* monotonic seconds: when a failed one goes again */
} dlq_copy_t;

struct kafka {
    struct event_base *base;
    fr_config_t cfg;
    rd_kafka_t *rk;      /* consumer */
    rd_kafka_t *dlq;     /* dead-letter producer */
    rd_kafka_t *mock_rk; /* owns the mock cluster (embedded) */
    rd_kafka_mock_cluster_t *mock;
    rd_kafka_queue_t *q;
    int pipefd[2];
    struct event *pipe_ev;
    struct event *again_ev; /* a drain that left messages waiting comes back here */
    rd_kafka_message_t **batch;
    kafka_batch_fn on_batch;
    void *arg;
    kafka_rebalance_fn on_rebalance; /* kafka_set_rebalance_hook; NULL: none */
    void *rebalance_arg;
    char bootstrap[512];
    int assigned, fatal, closed, paused, checkpoints;
    int held;     /* kafka_hold: a checkpoint waits for copies in flight */
    size_t limit; /* kafka_limit: messages a batch may take at most; 0 none */
    uint64_t dlq_errors;
    uint64_t catchup_turns;
    kafka_offset_t learned[KAFKA_MAX_OFFSETS]; /* position after what was learned */
    /* the offset stored for commit, per slot of learned[]: at most the
     * position of the oldest copy not acknowledged (-1: none yet) */
    int64_t stored[KAFKA_MAX_OFFSETS];
    int nlearned;
    dlq_copy_t *dlq_head, *dlq_tail; /* pending copies, in the order refused */
    /* per slot of learned[], its pending copies by offset: the oldest one
     * holds the slot's stored offset back, found without a scan (a flood of
     * refused messages leaves tens of thousands pending) */
    dlq_copy_t *slot_head[KAFKA_MAX_OFFSETS], *slot_tail[KAFKA_MAX_OFFSETS];
    size_t dlq_pending, dlq_pending_bytes;
    int dlq_failing; /* pending copies whose last attempt failed */
    size_t dlq_max;  /* bytes of value (and of key) a copy carries */
    uint64_t dlq_delivered, dlq_truncated;
    log_limit_t dlq_log;
};

static kafka_offset_t *find_offset(kafka_offset_t *a, int n, const char *topic, int32_t part)
{
    for (int i = 0; i < n; i++)
        if (a[i].partition == part && strcmp(a[i].topic, topic) == 0)
            return &a[i];
    return NULL;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The slot of a partition in learned[] (and stored[]), made when create and
 * there is room; -1 otherwise. A new slot's position is offset. */
static int slot_of(kafka_t *k, const char *topic, int32_t part, int create, int64_t offset)
{
    kafka_offset_t *o = find_offset(k->learned, k->nlearned, topic, part);
    if (o)
        return (int)(o - k->learned);
    if (!create || k->nlearned >= KAFKA_MAX_OFFSETS)
        return -1;
    o = &k->learned[k->nlearned];
    snprintf(o->topic, sizeof(o->topic), "%s", topic);
    o->partition = part;
    o->offset = offset;
    k->stored[k->nlearned] = -1;
    return k->nlearned++;
}

/* Stores for commit the position after what was learned of the slot's
 * partition, held back to the oldest copy of it the broker has not
 * acknowledged: an offset committed past a refused message whose copy is
 * lost would lose the message. Never backwards. */
static void store_slot(kafka_t *k, int slot)
{
    int64_t pos = k->learned[slot].offset;
    if (k->slot_head[slot] && k->slot_head[slot]->offset < pos)
        pos = k->slot_head[slot]->offset;
    if (pos <= k->stored[slot])
        return;
    k->stored[slot] = pos;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, k->learned[slot].topic, k->learned[slot].partition)
        ->offset = pos;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(k->rk, l);
    if (err == RD_KAFKA_RESP_ERR__STATE) /* partition revoked meanwhile: store it again later */
        k->stored[slot] = -1;
    else if (err)
        log_msg(LOG_WARN, "kafka", "offset store: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

static void log_kafka(const char *what, const char *msg)
{
    log_msg(LOG_WARN, "kafka", "%s%s%s", what, msg ? ": " : "", msg ? msg : "");
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_t *k = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[256];
        rd_kafka_fatal_error(rk, buf, sizeof(buf));
        log_kafka("fatal error", buf);
        k->fatal = 1;
        return;
    }
    /* transient: brokers down, timeouts — librdkafka retries by itself */
    log_kafka(rd_kafka_err2name(err), reason);
}

/* librdkafka's own log lines, in the daemon's format (syslog levels) */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    int l = level <= 3 ? LOG_ERROR : level == 4 ? LOG_WARN : level <= 6 ? LOG_INFO : LOG_DEBUG;
    log_msg(l, "kafka", "%s: %s", fac, buf);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kafka_t *k = opaque;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t ret = RD_KAFKA_RESP_ERR_NO_ERROR;
    switch (err) {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        /* with checkpoints, a partition resumes right after what the state in
         * memory has learned of it: first the restored checkpoint's position,
         * later (a rebalance giving it back) wherever learning got to; the
         * committed offset may be older than either */
        for (int i = 0; k->checkpoints && i < parts->cnt; i++) {
            kafka_offset_t *o = find_offset(k->learned, k->nlearned, parts->elems[i].topic,
                                            parts->elems[i].partition);
            if (o) {
                parts->elems[i].offset = o->offset;
                log_msg(LOG_INFO, "kafka", "%s [%d] resumes at offset %lld (learned state)",
                        o->topic, o->partition, (long long)o->offset);
            }
        }
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            ret = rd_kafka_assign(rk, parts);
        if (k->on_rebalance && !error && !ret)
            k->on_rebalance(k->rebalance_arg, 1, parts);
        k->assigned += parts->cnt;
        if (!cooperative)
            k->assigned = parts->cnt;
        log_msg(LOG_INFO, "kafka", "assigned %d partition(s), %d in all", parts->cnt, k->assigned);
        break;
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        /* what was learned is stored; commit it before the partitions move on
         * (with checkpoints only a checkpoint's offsets are committed).
         * Asynchronously: a slow coordinator must not stall the loop */
        if (!k->checkpoints)
            rd_kafka_commit(rk, NULL, 1);
        if (k->on_rebalance)
            k->on_rebalance(k->rebalance_arg, 0, parts);
        if (cooperative) {
            error = rd_kafka_incremental_unassign(rk, parts);
            k->assigned -= parts->cnt;
        } else {
            ret = rd_kafka_assign(rk, NULL);
            k->assigned = 0;
        }
        log_msg(LOG_INFO, "kafka", "revoked %d partition(s)", parts->cnt);
        break;
    default:
        log_kafka("rebalance failed", rd_kafka_err2str(err));
        if (k->on_rebalance) {
            rd_kafka_topic_partition_list_t *a = NULL;
            if (rd_kafka_assignment(rk, &a) == 0 && a) {
                k->on_rebalance(k->rebalance_arg, 0, a);
                rd_kafka_topic_partition_list_destroy(a);
            }
        }
        rd_kafka_assign(rk, NULL);
        k->assigned = 0;
        break;
    }
    if (error) {
        log_kafka("incremental (un)assign failed", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (ret) {
        log_kafka("assign failed", rd_kafka_err2str(ret));
    }
    if (k->assigned < 0)
        k->assigned = 0;
}

static void drain_soon(kafka_t *k);

/* Into its slot's list, kept by offset: from the tail, where a copy
 * usually goes (a partition is consumed in order; a replay after a
 * rebalance may refuse an older message again). */
static void dlq_slot_link(kafka_t *k, dlq_copy_t *c)
{
    if (c->slot < 0)
        return;
    dlq_copy_t *after = k->slot_tail[c->slot];
    while (after && after->offset > c->offset)
        after = after->sprev;
    c->sprev = after;
    c->snext = after ? after->snext : k->slot_head[c->slot];
    if (c->snext)
        c->snext->sprev = c;
    else
        k->slot_tail[c->slot] = c;
    if (after)
        after->snext = c;
    else
        k->slot_head[c->slot] = c;
}

static void dlq_unlink(kafka_t *k, dlq_copy_t *c)
{
    if (c->slot >= 0) {
        if (c->sprev)
            c->sprev->snext = c->snext;
        else
            k->slot_head[c->slot] = c->snext;
        if (c->snext)
            c->snext->sprev = c->sprev;
        else
            k->slot_tail[c->slot] = c->sprev;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        k->dlq_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        k->dlq_tail = c->prev;
    k->dlq_pending--;
    k->dlq_pending_bytes -= c->vlen + c->klen;
}

static void dlq_free(dlq_copy_t *c)
{
    free(c->val);
    free(c->key);
    free(c);
}

/* Cuts a copy to half its size: the broker (or the producer's
 * message.max.bytes) refused it as too large. 0, or -1 when nothing is left
 * to cut. */
static int dlq_shrink(kafka_t *k, dlq_copy_t *c)
{
    if (c->vlen == 0 && c->klen == 0)
        return -1;
    size_t before = c->vlen + c->klen;
    c->vlen /= 2;
    c->klen /= 2;
    k->dlq_pending_bytes -= before - (c->vlen + c->klen);
    /* later copies start no larger */
    size_t now = c->vlen > c->klen ? c->vlen : c->klen;
    if (now < k->dlq_max)
        k->dlq_max = now;
    return 0;
}

static void dlq_failed(kafka_t *k, dlq_copy_t *c, rd_kafka_resp_err_t err)
{
    k->dlq_errors++;
    if (c->failures++ == 0 && k->dlq_failing++ == 0)
        log_msg(LOG_ERROR, "kafka",
                "dead-letter topic %s refuses copies (%s): consuming stops and no offset is "
                "committed past a refused message until they are delivered",
                k->cfg.dead_letter_topic, rd_kafka_err2str(err));
    double backoff = DLQ_RETRY_MIN_S * (double)(1u << (c->failures < 5 ? c->failures - 1 : 4));
    c->retry_at = mono_s() + (backoff < DLQ_RETRY_MAX_S ? backoff : DLQ_RETRY_MAX_S);
    log_limited(&k->dlq_log, LOG_WARN, "kafka",
                "dead-letter copy of %s [%d] offset %lld (%s, %zu bytes) failed (attempt %d): "
                "%s; produced again in %.2f s",
                c->source, (int)c->partition, (long long)c->offset, c->reason, c->vlen, c->failures,
                rd_kafka_err2str(err), c->retry_at - mono_s());
}

static void dlq_delivered(kafka_t *k, dlq_copy_t *c)
{
    if (c->failures && --k->dlq_failing == 0) {
        log_msg(LOG_INFO, "kafka", "dead-letter topic %s takes copies again: consuming goes on",
                k->cfg.dead_letter_topic);
        drain_soon(k);
    }
    k->dlq_delivered++;
    dlq_unlink(k, c);
    if (c->slot >= 0)
        store_slot(k, c->slot);
    dlq_free(c);
}

/* Hands a copy to librdkafka. The buffers stay the copy's (no
 * RD_KAFKA_MSG_F_COPY): the copy outlives the delivery report. */
static void dlq_send(kafka_t *k, dlq_copy_t *c)
{
    char part[16], off[24], size[24];
    snprintf(part, sizeof(part), "%d", (int)c->partition);
    snprintf(off, sizeof(off), "%lld", (long long)c->offset);
    snprintf(size, sizeof(size), "%zu", c->orig_vlen);
    for (;;) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(8);
        rd_kafka_header_add(h, "freshrec-reason", -1, c->reason, -1);
        rd_kafka_header_add(h, "freshrec-detail", -1, c->detail, -1);
        rd_kafka_header_add(h, "freshrec-source", -1, c->source, -1);
        rd_kafka_header_add(h, "freshrec-partition", -1, part, -1);
        rd_kafka_header_add(h, "freshrec-offset", -1, off, -1);
        rd_kafka_header_add(h, "freshrec-size", -1, size, -1);
        if (c->vlen < c->orig_vlen || c->klen < c->orig_klen)
            rd_kafka_header_add(h, "freshrec-truncated", -1, "1", 1);
        rd_kafka_resp_err_t err = rd_kafka_producev(
            k->dlq, RD_KAFKA_V_TOPIC(k->cfg.dead_letter_topic), RD_KAFKA_V_MSGFLAGS(0),
            RD_KAFKA_V_VALUE(c->val, c->vlen), RD_KAFKA_V_KEY(c->key, c->klen),
            RD_KAFKA_V_OPAQUE(c), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            c->in_flight = 1; /* h is owned by the message now */
            return;
        }
        rd_kafka_headers_destroy(h);
        if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && dlq_shrink(k, c) == 0)
            continue;
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(k->dlq, 0); /* delivery reports make room */
        dlq_failed(k, c, err);
        return;
    }
}

/* Failed copies whose time has come go again. */
static void dlq_retry(kafka_t *k)
{
    double now = mono_s();
    for (dlq_copy_t *c = k->dlq_head; c; c = c->next)
        if (!c->in_flight && c->retry_at <= now)
            dlq_send(k, c);
}

static void on_dlq_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kafka_t *k = opaque;
    dlq_copy_t *c = m->_private;
    if (!c)
        return;
    c->in_flight = 0;
    if (!m->err) {
        dlq_delivered(k, c);
        return;
    }
    /* the broker's limit (the topic's max.message.bytes) is below the copy */
    if ((m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
         m->err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE) &&
        dlq_shrink(k, c) == 0) {
        k->dlq_errors++;
        log_limited(&k->dlq_log, LOG_WARN, "kafka",
                    "dead-letter copy of %s [%d] offset %lld too large for the broker: %s; "
                    "cut to %zu bytes and produced again",
                    c->source, (int)c->partition, (long long)c->offset, rd_kafka_err2str(m->err),
                    c->vlen);
        c->retry_at = 0;
        return;
    }
    dlq_failed(k, c, m->err);
}

static int dlq_blocked(const kafka_t *k)
{
    return k->dlq_failing > 0 || k->dlq_pending_bytes > DLQ_PENDING_MAX_BYTES;
}

static void drain(kafka_t *k)
{
    /* a dead-letter copy that keeps failing stops consuming: what follows
     * its message could be learned, but its offset could not be committed,
     * and copies would pile up in memory */
    if (k->paused || k->closed || k->held || dlq_blocked(k))
        return;
    /* A backlog (a restart, a burst beyond the learning rate): longer turns,
     * so publish rounds come further apart and each key's many changes are
     * written once; the backlog drains sooner, where a round every interval
     * would only write vectors that are already behind. Without one, a turn
     * is a batch, and the rounds keep their interval. */
    const int rounds =
        rd_kafka_queue_length(k->q) > (size_t)CATCHUP_ROUNDS * (size_t)k->cfg.batch_max
            ? CATCHUP_ROUNDS
            : 1;
    k->catchup_turns += rounds > 1;
    for (int round = 0; round < rounds; round++) {
        size_t want = (size_t)k->cfg.batch_max;
        if (k->limit && k->limit < want)
            want = k->limit;
        ssize_t n = rd_kafka_consume_batch_queue(k->q, 0, k->batch, want);
        if (n <= 0)
            return;
        k->on_batch(k->arg, k->batch, (size_t)n);
        for (ssize_t i = 0; i < n; i++)
            rd_kafka_message_destroy(k->batch[i]);
        if (k->paused || k->closed || k->held || dlq_blocked(k))
            return;
    }
    /* More may be waiting: come back after other events had their turn. Not
     * by event_active: libevent runs an event activated from a callback in
     * the same pass over the active events, before it polls again, so a
     * backlog would keep the loop from reading Redis's replies (seen: the
     * first reply of a publish round read 100 ms after it was sent). A timer
     * of zero is run after the next poll. */
    static const struct timeval now = {0, 0};
    evtimer_add(k->again_ev, &now);
}

static void on_again(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drain(arg);
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    drain(arg);
}

/* housekeeping (kafka.h): the daemon's cron calls it every 200 ms */
void kafka_cron(kafka_t *k)
{
    if (k->dlq) {
        rd_kafka_poll(k->dlq, 0);
        dlq_retry(k);
    }
    drain(k);
}

static int set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr, size_t len)
{
    char e[256];
    if (rd_kafka_conf_set(conf, name, value, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, len, "kafka: %s: %s", name, e);
        return -1;
    }
    return 0;
}

/* Applies "name=value,name=value" librdkafka properties to conf. -1 and a
 * message naming the property (never echoing a password or secret value). */
int kafka_conf_apply(rd_kafka_conf_t *conf, const char *props, char *errstr, size_t len)
{
    char buf[CONFIG_STR];
    snprintf(buf, sizeof(buf), "%s", props ? props : "");
    for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv) {
            snprintf(errstr, len, "'%.64s': expected name=value", eq ? "" : kv);
            return -1;
        }
        *eq = '\0';
        char e[256];
        if (rd_kafka_conf_set(conf, kv, eq + 1, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
            int secret = strstr(kv, "password") || strstr(kv, "secret") || strstr(kv, "key");
            snprintf(errstr, len, "%s: %s", kv, secret ? "invalid value" : e);
            return -1;
        }
    }
    return 0;
}

/* The consumer's properties: ours, then [kafka] properties over them. *key
 * names the config key whose value librdkafka refused. */
static int conf_consumer(rd_kafka_conf_t *conf, const fr_config_t *cfg, const char *bootstrap,
                         int checkpoints, const char **key, char *errstr, size_t len)
{
    char session[24], heartbeat[24], fetch_wait[24];
    snprintf(session, sizeof(session), "%d", cfg->session_timeout_ms);
    /* a third of the session, as Kafka advises, and librdkafka's 3 s at most:
     * its default alone would let a short session time out between beats */
    int beat = cfg->session_timeout_ms / 3;
    snprintf(heartbeat, sizeof(heartbeat), "%d", beat < 3000 ? beat : 3000);
    snprintf(fetch_wait, sizeof(fetch_wait), "%d", cfg->fetch_wait_max_ms);
    if ((*key = "brokers", set(conf, "bootstrap.servers", bootstrap, errstr, len)) ||
        (*key = "group_id", set(conf, "group.id", cfg->group_id, errstr, len)))
        return -1;
    *key = "assignor";
    if (set(conf, "enable.auto.offset.store", "false", errstr, len) ||
        set(conf, "enable.auto.commit", checkpoints ? "false" : "true", errstr, len) ||
        set(conf, "auto.commit.interval.ms", "1000", errstr, len) ||
        set(conf, "auto.offset.reset", "earliest", errstr, len) ||
        set(conf, "partition.assignment.strategy", cfg->assignor, errstr, len) ||
        set(conf, "enable.partition.eof", "false", errstr, len))
        return -1;
    *key = "session_timeout_ms";
    if (set(conf, "session.timeout.ms", session, errstr, len) ||
        set(conf, "heartbeat.interval.ms", heartbeat, errstr, len))
        return -1;
    *key = "fetch_wait_max_ms";
    if (set(conf, "fetch.wait.max.ms", fetch_wait, errstr, len) ||
        /* librdkafka stops fetching a partition for a whole second once its
         * local queue holds queued.min.messages (100000): a consumer that
         * learns a little slower than the topic fills then stalls in turns.
         * The byte bound alone (queued.max.messages.kbytes, librdkafka's 64 MB
         * a partition) keeps memory in check instead. [kafka] properties may
         * override both. */
        set(conf, "queued.min.messages", "10000000", errstr, len) ||
        set(conf, "log_level", "4", errstr, len))
        return -1;
    *key = "properties";
    return kafka_conf_apply(conf, cfg->kafka_properties, errstr, len);
}

/* The dead-letter producer's properties, likewise. */
static int conf_producer(rd_kafka_conf_t *conf, const fr_config_t *cfg, const char *bootstrap,
                         const char **key, char *errstr, size_t len)
{
    *key = "brokers";
    /* room for a copy of dead_letter_max_bytes of value and as much key,
     * with its headers; the consumer may receive far larger messages
     * (fetch.max.bytes), so a copy is cut rather than sized after them */
    char maxb[24], timeout[24];
    snprintf(maxb, sizeof(maxb), "%lld",
             2LL * cfg->dead_letter_max_bytes + DLQ_OVERHEAD < 1000000000LL
                 ? 2LL * cfg->dead_letter_max_bytes + DLQ_OVERHEAD
                 : 1000000000LL);
    snprintf(timeout, sizeof(timeout), "%d", cfg->dead_letter_timeout_ms);
    if (set(conf, "bootstrap.servers", bootstrap, errstr, len) ||
        set(conf, "linger.ms", "50", errstr, len) ||
        set(conf, "message.max.bytes", maxb, errstr, len) ||
        set(conf, "message.timeout.ms", timeout, errstr, len) ||
        set(conf, "log_level", "4", errstr, len))
        return -1;
    *key = "properties";
    return kafka_conf_apply(conf, cfg->kafka_properties, errstr, len);
}

int kafka_config_check(const fr_config_t *cfg, const char **key, char *errstr, size_t len)
{
    /* with --embedded and no brokers, the mock cluster's address comes later */
    const char *bootstrap = cfg->brokers[0] ? cfg->brokers : "127.0.0.1:9092";
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = conf_consumer(conf, cfg, bootstrap, 0, key, errstr, len);
    rd_kafka_conf_destroy(conf);
    if (rc == 0 && cfg->dead_letter_topic[0]) {
        conf = rd_kafka_conf_new();
        rc = conf_producer(conf, cfg, bootstrap, key, errstr, len);
        rd_kafka_conf_destroy(conf);
    }
    return rc;
}

static int start_mock(kafka_t *k, char *errstr, size_t len)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char e[256];
    rd_kafka_conf_set(conf, "log_level", "3", e, sizeof(e));
    rd_kafka_conf_set_log_cb(conf, on_log);
    k->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
    if (!k->mock_rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(errstr, len, "kafka: embedded cluster: %s", e);
        return -1;
    }
    conf = NULL; /* owned by mock_rk now */
    k->mock = rd_kafka_mock_cluster_new(k->mock_rk, 1);
    if (!k->mock) {
        snprintf(errstr, len, "kafka: could not start the embedded mock cluster");
        return -1;
    }
    snprintf(k->bootstrap, sizeof(k->bootstrap), "%s", rd_kafka_mock_cluster_bootstraps(k->mock));
    char topics[CONFIG_STR];
    snprintf(topics, sizeof(topics), "%s", k->cfg.topics);
    for (char *save = NULL, *t = strtok_r(topics, ",", &save); t; t = strtok_r(NULL, ",", &save))
        rd_kafka_mock_topic_create(k->mock, t, k->cfg.embedded_partitions, 1);
    if (k->cfg.dead_letter_topic[0])
        rd_kafka_mock_topic_create(k->mock, k->cfg.dead_letter_topic, 1, 1);
    if (k->cfg.model_topic[0])
        rd_kafka_mock_topic_create(k->mock, k->cfg.model_topic, 1, 1);
    log_msg(LOG_INFO, "kafka", "embedded mock cluster at %s", k->bootstrap);
    return 0;
}

kafka_t *kafka_create(struct event_base *base, const fr_config_t *cfg, int embedded,
                      int checkpoints, kafka_batch_fn on_batch, void *arg, char *errstr, size_t len)
{
    kafka_t *k = calloc(1, sizeof(*k));
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_topic_partition_list_t *subs = NULL;
    if (!k) {
        snprintf(errstr, len, "kafka: out of memory");
        return NULL;
    }
    k->base = base;
    k->cfg = *cfg;
    k->on_batch = on_batch;
    k->arg = arg;
    k->pipefd[0] = k->pipefd[1] = -1;
    k->checkpoints = checkpoints;
    k->dlq_max = (size_t)cfg->dead_letter_max_bytes;
    k->dlq_log.burst = 10;
    if (cfg->brokers[0]) {
        snprintf(k->bootstrap, sizeof(k->bootstrap), "%s", cfg->brokers);
    } else if (embedded) {
        if (start_mock(k, errstr, len))
            goto err;
    } else {
        snprintf(errstr, len,
                 "kafka: no brokers configured ([kafka] brokers); use --embedded "
                 "to run against an in-process mock cluster");
        goto err;
    }
    k->batch = malloc(sizeof(*k->batch) * (size_t)cfg->batch_max);
    if (!k->batch) {
        snprintf(errstr, len, "kafka: out of memory");
        goto err;
    }

    /* the consumer */
    const char *key;
    conf = rd_kafka_conf_new();
    if (conf_consumer(conf, cfg, k->bootstrap, checkpoints, &key, errstr, len))
        goto err;
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    char e[256];
    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof(e));
    if (!k->rk) {
        snprintf(errstr, len, "kafka: consumer: %s", e);
        goto err;
    }
    conf = NULL; /* owned by rk now */
    rd_kafka_poll_set_consumer(k->rk);
    k->q = rd_kafka_queue_get_consumer(k->rk);

    if (pipe(k->pipefd) || fcntl(k->pipefd[0], F_SETFL, O_NONBLOCK) ||
        fcntl(k->pipefd[1], F_SETFL, O_NONBLOCK)) {
        snprintf(errstr, len, "kafka: pipe: %s", strerror(errno));
        goto err;
    }
    rd_kafka_queue_io_event_enable(k->q, k->pipefd[1], "1", 1);
    k->pipe_ev = event_new(base, k->pipefd[0], EV_READ | EV_PERSIST, on_pipe, k);
    k->again_ev = evtimer_new(base, on_again, k);
    if (!k->pipe_ev || !k->again_ev || event_add(k->pipe_ev, NULL)) {
        snprintf(errstr, len, "kafka: cannot watch the queue pipe");
        goto err;
    }

    char topics[CONFIG_STR];
    snprintf(topics, sizeof(topics), "%s", cfg->topics);
    subs = rd_kafka_topic_partition_list_new(4);
    for (char *save = NULL, *t = strtok_r(topics, ",", &save); t; t = strtok_r(NULL, ",", &save))
        rd_kafka_topic_partition_list_add(subs, t, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rerr = rd_kafka_subscribe(k->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    subs = NULL;
    if (rerr) {
        snprintf(errstr, len, "kafka: subscribe: %s", rd_kafka_err2str(rerr));
        goto err;
    }

    /* the dead-letter producer */
    if (cfg->dead_letter_topic[0]) {
        conf = rd_kafka_conf_new();
        if (conf_producer(conf, cfg, k->bootstrap, &key, errstr, len))
            goto err;
        rd_kafka_conf_set_opaque(conf, k);
        rd_kafka_conf_set_log_cb(conf, on_log);
        rd_kafka_conf_set_dr_msg_cb(conf, on_dlq_delivery);
        k->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
        if (!k->dlq) {
            snprintf(errstr, len, "kafka: dead-letter producer: %s", e);
            goto err;
        }
        conf = NULL; /* owned by dlq now */
    }
    return k;
err:
    if (conf)
        rd_kafka_conf_destroy(conf);
    kafka_free(k);
    return NULL;
}

void kafka_pause_loop(kafka_t *k)
{
    k->paused = 1;
}

void kafka_close(kafka_t *k)
{
    if (!k || k->closed)
        return;
    k->closed = 1;
    if (k->pipe_ev)
        event_del(k->pipe_ev);
    if (k->again_ev)
        event_del(k->again_ev);
    if (k->q)
        rd_kafka_queue_io_event_enable(k->q, -1, NULL, 0);
    /* copies first: each one acknowledged lets its partition's offset be
     * stored, and the consumer's close commits what is stored */
    if (k->dlq) {
        size_t left = kafka_dead_letter_flush(k, k->cfg.shutdown_timeout_ms / 2);
        if (left)
            log_msg(LOG_WARN, "kafka",
                    "%zu dead-letter cop%s not acknowledged at shutdown: their offsets stay "
                    "uncommitted (the messages are consumed again at the next start)",
                    left, left == 1 ? "y" : "ies");
    }
    if (k->rk) {
        /* commits stored offsets and leaves the group; rebalance callbacks
         * are served from inside */
        rd_kafka_resp_err_t err = rd_kafka_consumer_close(k->rk);
        if (err)
            log_kafka("close", rd_kafka_err2str(err));
    }
}

void kafka_free(kafka_t *k)
{
    if (!k)
        return;
    kafka_close(k);
    if (k->pipe_ev)
        event_free(k->pipe_ev);
    if (k->again_ev)
        event_free(k->again_ev);
    if (k->q)
        rd_kafka_queue_destroy(k->q);
    if (k->rk)
        rd_kafka_destroy(k->rk);
    if (k->dlq) /* purges what it still holds: no report comes after */
        rd_kafka_destroy(k->dlq);
    while (k->dlq_head) {
        dlq_copy_t *c = k->dlq_head;
        dlq_unlink(k, c);
        dlq_free(c);
    }
    if (k->mock) /* before the handle that made it */
        rd_kafka_mock_cluster_destroy(k->mock);
    if (k->mock_rk)
        rd_kafka_destroy(k->mock_rk);
    if (k->pipefd[0] >= 0)
        close(k->pipefd[0]);
    if (k->pipefd[1] >= 0)
        close(k->pipefd[1]);
    free(k->batch);
    free(k);
}

void kafka_store(kafka_t *k, const rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    int slot = slot_of(k, topic, m->partition, 1, m->offset + 1);
    if (slot >= 0) {
        k->learned[slot].offset = m->offset + 1;
        store_slot(k, slot);
        return;
    }
    /* more partitions than slots: stored as it is (not held back) */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, m->partition)->offset = m->offset + 1;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(k->rk, l);
    if (err && err != RD_KAFKA_RESP_ERR__STATE) /* __STATE: partition revoked meanwhile */
        log_kafka("offset store", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

static void *dup_prefix(const void *p, size_t n)
{
    char *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

int kafka_dead_letter(kafka_t *k, const rd_kafka_message_t *m, const char *reason,
                      const char *detail)
{
    if (!k->dlq)
        return -1;
    dlq_copy_t *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    const char *topic = rd_kafka_topic_name(m->rkt);
    c->orig_vlen = m->len;
    c->orig_klen = m->key_len;
    c->vlen = m->len < k->dlq_max ? m->len : k->dlq_max;
    c->klen = m->key_len < k->dlq_max ? m->key_len : k->dlq_max;
    c->val = dup_prefix(m->payload, c->vlen);
    c->key = dup_prefix(m->key, c->klen);
    if (!c->val || !c->key) {
        dlq_free(c);
        return -1;
    }
    if (c->vlen < c->orig_vlen || c->klen < c->orig_klen)
        k->dlq_truncated++;
    /* its partition's offsets are held back from here (slot made at the
     * message: nothing after it is stored until the copy is acknowledged) */
    c->slot = slot_of(k, topic, m->partition, 1, m->offset);
    c->partition = m->partition;
    c->offset = m->offset;
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
    snprintf(c->detail, sizeof(c->detail), "%s", detail);
    snprintf(c->source, sizeof(c->source), "%s", topic);
    c->prev = k->dlq_tail;
    if (k->dlq_tail)
        k->dlq_tail->next = c;
    else
        k->dlq_head = c;
    k->dlq_tail = c;
    dlq_slot_link(k, c);
    k->dlq_pending++;
    k->dlq_pending_bytes += c->vlen + c->klen;
    dlq_send(k, c);
    return 0;
}

size_t kafka_dead_letter_pending(const kafka_t *k)
{
    return k->dlq_pending;
}

int kafka_dead_letter_blocked(const kafka_t *k)
{
    return k->dlq_failing > 0;
}

uint64_t kafka_dead_letter_delivered(const kafka_t *k)
{
    return k->dlq_delivered;
}

uint64_t kafka_dead_letter_truncated(const kafka_t *k)
{
    return k->dlq_truncated;
}

size_t kafka_dead_letter_flush(kafka_t *k, int timeout_ms)
{
    if (!k->dlq)
        return 0;
    double end = mono_s() + timeout_ms / 1000.0;
    while (k->dlq_pending && mono_s() < end) {
        dlq_retry(k);
        rd_kafka_poll(k->dlq, 50);
    }
    return k->dlq_pending;
}

/* Consuming again at once, not at the next housekeeping tick. */
static void drain_soon(kafka_t *k)
{
    static const struct timeval now = {0, 0};
    if (k->again_ev && !k->closed)
        evtimer_add(k->again_ev, &now);
}

void kafka_hold(kafka_t *k, int on)
{
    k->held = on;
    if (!on)
        drain_soon(k);
}

void kafka_limit(kafka_t *k, size_t n)
{
    k->limit = n;
}

const char *kafka_bootstrap(const kafka_t *k)
{
    return k->bootstrap;
}

int kafka_assigned(const kafka_t *k)
{
    return k->closed ? 0 : k->assigned;
}

int kafka_fatal(const kafka_t *k)
{
    return k->fatal;
}

uint64_t kafka_catchup_turns(const kafka_t *k)
{
    return k->catchup_turns;
}

uint64_t kafka_dead_letter_errors(const kafka_t *k)
{
    return k->dlq_errors;
}

int kafka_partitions(kafka_t *k, metrics_partition_t *out, int max)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    if (k->closed || rd_kafka_assignment(k->rk, &a) || !a)
        return 0;
    rd_kafka_position(k->rk, a);
    int n = 0;
    for (int i = 0; i < a->cnt && n < max; i++) {
        rd_kafka_topic_partition_t *p = &a->elems[i];
        int64_t lo = -1, hi = -1;
        metrics_partition_t *o = &out[n++];
        snprintf(o->topic, sizeof(o->topic), "%s", p->topic);
        o->partition = p->partition;
        o->stored = p->offset >= 0 ? p->offset : -1;
        o->lag = -1;
        if (rd_kafka_get_watermark_offsets(k->rk, p->topic, p->partition, &lo, &hi) == 0 && hi >= 0)
            o->lag = p->offset >= 0 ? hi - p->offset : hi - (lo >= 0 ? lo : 0);
    }
    rd_kafka_topic_partition_list_destroy(a);
    return n;
}

int kafka_learned_offsets(const kafka_t *k, kafka_offset_t *out, int max)
{
    int n = k->nlearned < max ? k->nlearned : max;
    memcpy(out, k->learned, sizeof(kafka_offset_t) * (size_t)n);
    return n;
}

int kafka_commit_offsets(kafka_t *k, const kafka_offset_t *o, int n)
{
    if (k->closed || n == 0)
        return 0;
    /* only partitions this member holds now; asynchronously: the loop never
     * waits for the coordinator */
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(k->rk, &a) || !a)
        return -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        if (rd_kafka_topic_partition_list_find(a, o[i].topic, o[i].partition))
            rd_kafka_topic_partition_list_add(l, o[i].topic, o[i].partition)->offset = o[i].offset;
    rd_kafka_topic_partition_list_destroy(a);
    rd_kafka_resp_err_t err = l->cnt ? rd_kafka_commit(k->rk, l, 1) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        log_msg(LOG_WARN, "kafka", "commit: %s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

void kafka_set_resume(kafka_t *k, const kafka_offset_t *o, int n)
{
    /* learning resumes from there: the positions to checkpoint start there too */
    k->nlearned = n < KAFKA_MAX_OFFSETS ? n : KAFKA_MAX_OFFSETS;
    memcpy(k->learned, o, sizeof(kafka_offset_t) * (size_t)k->nlearned);
    for (int i = 0; i < k->nlearned; i++)
        k->stored[i] = -1;
}

void kafka_set_rebalance_hook(kafka_t *k, kafka_rebalance_fn fn, void *arg)
{
    k->on_rebalance = fn;
    k->rebalance_arg = arg;
}

rd_kafka_t *kafka_handle(kafka_t *k)
{
    return k->rk;
}
