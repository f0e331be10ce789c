/* checkpoint.c — checkpoint orchestration (see freshrecd.h): the daemon's
 * sections, the restore at start-up (the newest valid checkpoint, else the
 * previous one, else a fresh start), a checkpoint every checkpoint_interval_s
 * written by a forked child (after the dead-letter copies in flight are
 * delivered), huge pages collapsed back after it, and the final checkpoint
 * at shutdown. A durable checkpoint's offsets are committed; nothing else
 * is. Not for: the file format and durable writes (store/ckpt.c). */
#define _POSIX_C_SOURCE 200809L
#include "freshrecd.h"

#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The daemon's checkpoint: one section per part of its state (store/ckpt.h),
 * written and loaded in this order. A section's payload changes only with
 * its version; a version this build does not read is refused, never misread.
 * The save callbacks serialise memory only: they run in a forked child (see
 * checkpoint_start), so whatever is read of librdkafka is read before, into
 * a->ck.ck_off. */

/* LRNR 1: the engine's own save (engine_save), which names its model: a
 * checkpoint of another model is refused by engine_load */
static int save_learner_section(void *arg, ser_writer_t *w)
{
    app_t *a = arg;
    if (engine_save(a->eng, w))
        return -1;
    return w->err ? -1 : 0;
}
static int load_learner_section(void *arg, ser_reader_t *r, uint32_t version, char *err, size_t len)
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
    ser_u32(w, (uint32_t)a->ck.n_ck);
    for (int i = 0; i < a->ck.n_ck; i++) {
        uint32_t tl = (uint32_t)strlen(a->ck.ck_off[i].topic);
        ser_u32(w, tl);
        ser_put(w, a->ck.ck_off[i].topic, tl);
        ser_u32(w, (uint32_t)a->ck.ck_off[i].partition);
        ser_i64(w, a->ck.ck_off[i].offset);
    }
    return w->err ? -1 : 0;
}
static int load_offsets_section(void *arg, ser_reader_t *r, uint32_t version, char *err, size_t len)
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
        if (r->err || tl >= sizeof(a->ck.resume[i].topic)) {
            snprintf(err, len, "bad offsets");
            return -1;
        }
        ser_get(r, a->ck.resume[i].topic, tl);
        a->ck.resume[i].topic[tl] = '\0';
        a->ck.resume[i].partition = (int32_t)ser_get_u32(r);
        a->ck.resume[i].offset = ser_get_i64(r);
    }
    a->ck.n_resume = (int)n;
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

/* CLUS 1 (a member's checkpoint only): its model-log ledger, whose position
 * is the last record the state above reflects (cluster_save) */
static int save_cluster_section(void *arg, ser_writer_t *w)
{
    return cluster_save(arg, w);
}
static int load_cluster_section(void *arg, ser_reader_t *r, uint32_t version, char *err, size_t len)
{
    (void)version;
    return cluster_load(arg, r, err, len);
}

/* a single daemon's sections, then a member's one more: each refuses the
 * other's checkpoint (an unknown or a missing section), as it must, since a
 * member's item rows are the model log's and a single daemon's its own */
static const ckpt_section_t daemon_sections[] = {
    {"LRNR", 1, 1, save_learner_section, load_learner_section},
    {"JOIN", 1, 1, save_join_section, load_join_section},
    {"OFFS", 1, 1, save_offsets_section, load_offsets_section},
    {"CNTR", 1, 1, save_counters_section, load_counters_section},
    {"CLUS", 1, 1, save_cluster_section, load_cluster_section},
};
/* the sections of this daemon's checkpoint: CLUS only for a member */
static int n_sections(const app_t *a)
{
    return (int)(sizeof(daemon_sections) / sizeof(daemon_sections[0])) - (a->cl ? 0 : 1);
}
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
    a->ck.n_ck = kafka_learned_offsets(a->kafka, a->ck.ck_off, KAFKA_MAX_OFFSETS);
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
        log_msg(LOG_INFO, "checkpoint", "%s written again; committing its offsets", a->ck.path);
    a->m.checkpoint_failing = 0;
    struct stat st;
    if (stat(a->ck.path, &st) == 0)
        a->m.checkpoint_bytes = (uint64_t)st.st_size;
    if (!a->cl) /* a member's offsets are committed as learned: a lag figure only */
        kafka_commit_offsets(a->kafka, a->ck.ck_off, a->ck.n_ck);
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
    if (access(a->ck.path, F_OK) == 0 && rename(a->ck.path, a->ck.prev))
        log_msg(LOG_WARN, "checkpoint", "cannot keep the previous checkpoint: %s", strerror(errno));
    int rc = ckpt_write(a->ck.path, daemon_sections, n_sections(a), a, err, sizeof(err));
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
    if (!a->ck.coll || a->stopping || collapse_running(a->ck.coll, &cs))
        return;
    if (cs.passes && !cs.pages && cs.refused && !a->ck.coll_told) {
        a->ck.coll_told = 1;
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
    if (k && collapse_start(a->ck.coll, p, n, k, err, sizeof(err)) < 0)
        log_msg(LOG_WARN, "checkpoint", "%s", err);
}

/* The child is done (reaped): its result, and huge pages back. */
static int checkpoint_reaped(app_t *a, int rc, const char *err)
{
    if (a->ck.bg_ev) {
        event_free(a->ck.bg_ev);
        a->ck.bg_ev = NULL;
    }
    if (a->ck.bg.note[0])
        log_msg(LOG_WARN, "checkpoint", "%s", a->ck.bg.note);
    collapse_tables(a);
    return checkpoint_done(a, rc, err, a->ck.bg.write_s);
}

/* The child's pipe is readable: its report, or its end (it has exited). */
static void on_checkpoint_written(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    app_t *a = arg;
    char err[512];
    int rc = ckpt_bg_finish(&a->ck.bg, err, sizeof(err));
    if (rc != 1) /* 1: not exited yet, the pipe's end comes next */
        checkpoint_reaped(a, rc, err);
}

/* Waits for the child (at shutdown, or when it cannot be watched). */
static int checkpoint_wait(app_t *a)
{
    char err[512];
    int rc = ckpt_bg_wait(&a->ck.bg, err, sizeof(err));
    return checkpoint_reaped(a, rc, err);
}

/* Starts a checkpoint in the background: a forked child writes a
 * copy-on-write snapshot of the state (and of a->ck.ck_off) while the loop goes
 * on learning; the loop stalls only for the fork. One child at a time: a
 * tick that finds one still writing is skipped. */
static int checkpoint_start(app_t *a)
{
    if (ckpt_bg_running(&a->ck.bg)) {
        a->m.checkpoint_skipped_total++;
        log_limited(&a->bad_log, LOG_WARN, "checkpoint",
                    "the previous checkpoint is still being written: this one is skipped "
                    "(checkpoint_interval_s may be too short for the model's size)");
        return 0;
    }
    double t0 = clock_mono_s();
    char err[512];
    collapse_stop(a->ck.coll); /* a collapse while the child shares the pages only copies them */
    checkpoint_offsets(a);
    if (ckpt_bg_start(&a->ck.bg, a->ck.path, a->ck.prev, daemon_sections, n_sections(a), a, err,
                      sizeof(err))) {
        log_msg(LOG_WARN, "checkpoint", "%s; writing it on the loop instead", err);
        return checkpoint_sync(a);
    }
    if (!(a->ck.bg_ev =
              event_new(a->base, a->ck.bg.fd, EV_READ | EV_PERSIST, on_checkpoint_written, a)) ||
        event_add(a->ck.bg_ev, NULL)) {
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
void checkpoint_wait_tick(app_t *a)
{
    if (!a->stopping && kafka_dead_letter_pending(a->kafka))
        return; /* again in a moment */
    a->ck.waiting = 0;
    kafka_hold(a->kafka, 0);
    if (!a->stopping)
        checkpoint_start(a);
}

void checkpoint_tick(app_t *a)
{
    if (!a->ck.path[0] || a->stopping || a->ck.waiting)
        return;
    if (kafka_dead_letter_pending(a->kafka) == 0) {
        checkpoint_start(a);
        return;
    }
    kafka_hold(a->kafka, 1);
    a->ck.waiting = 1;
    cron_after(a, CRON_CKPT_WAIT, 20);
}

/* The last checkpoint, at shutdown: after the one being written, if any, the
 * state as it is now, on the loop (nothing is left to stall), once every
 * dead-letter copy is acknowledged. If some are not, it is not written: the
 * previous checkpoint stands, and what was learned since is learned again
 * after a restart (rather than the unacknowledged messages lost). */
int checkpoint_final(app_t *a)
{
    if (!a->ck.path[0])
        return 0;
    if (ckpt_bg_running(&a->ck.bg)) {
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

/* events learned: the counter that checkpoints keep */
static uint64_t learned_total(app_t *a)
{
    engine_stats_t es;
    engine_stats(a->eng, &es);
    return es.lrn.events;
}

/* A failed load leaves half a state: start again from nothing. */
static int start_afresh(app_t *a, char *err, size_t len)
{
    engine_free(a->eng);
    join_free(a->join);
    a->eng = NULL;
    a->join = NULL;
    a->ck.n_resume = 0;
    memset(a->m.consumed, 0, sizeof(a->m.consumed));
    memset(a->m.invalid, 0, sizeof(a->m.invalid));
    a->m.dead_letter_total = 0;
    cluster_forget(a); /* its ledger, if a member's checkpoint loaded it part way */
    if (!(a->eng = engine_create(&a->mc.ec, err, len)) ||
        !(a->join = join_create(a->cfg.label_window_ms, 1000000, err, len)))
        return -1;
    return 0;
}

/* With a [daemon] checkpoint_dir: its paths, huge pages' collapse, and the
 * newest valid checkpoint restored, else the previous one, else a fresh
 * start. -1 only when the learner cannot be made again. */
int checkpoint_init(app_t *a, char *err, size_t len)
{
    checkpoint_t *ck = &a->ck;
    ckpt_bg_init(&ck->bg);
    if (!a->cfg.checkpoint_dir[0])
        return 0;
    snprintf(ck->path, sizeof(ck->path), "%.255s/freshrec.ckpt", a->cfg.checkpoint_dir);
    snprintf(ck->prev, sizeof(ck->prev), "%.287s.prev", ck->path);
    if (mkdir(a->cfg.checkpoint_dir, 0700) && errno != EEXIST)
        log_msg(LOG_WARN, "checkpoint", "%s: %s", a->cfg.checkpoint_dir, strerror(errno));
    if (!(ck->coll = collapse_create(err, len)))
        log_msg(LOG_WARN, "checkpoint", "%s", err);
    int stale = ckpt_remove_stale(ck->path);
    if (stale)
        log_msg(LOG_INFO, "checkpoint", "removed %d temporary file(s) of writers killed part way",
                stale);
    const char *tries[2] = {ck->path, ck->prev};
    for (int t = 0; t < 2; t++) {
        if (access(tries[t], F_OK))
            continue;
        if (ckpt_read(tries[t], daemon_sections, n_sections(a), a, err, len) == 0) {
            log_msg(LOG_INFO, "checkpoint", "restored %s: %llu events learned", tries[t],
                    (unsigned long long)learned_total(a));
            heal_event_time(a);
            break;
        }
        log_msg(LOG_ERROR, "checkpoint", "%s: skipped", err);
        if (start_afresh(a, err, len))
            return -1;
    }
    return 0;
}

/* At shutdown: the child still writing, if any (only if the loop ended some
 * other way than the final checkpoint), waited for. */
void checkpoint_free(app_t *a)
{
    checkpoint_t *ck = &a->ck;
    if (ckpt_bg_running(&ck->bg))
        checkpoint_wait(a);
    if (ck->bg_ev)
        event_free(ck->bg_ev);
    ck->bg_ev = NULL;
    collapse_free(ck->coll);
    ck->coll = NULL;
}
