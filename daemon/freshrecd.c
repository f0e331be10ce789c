/* freshrecd.c — the daemon: main, start-up, the one cron, signals, the
 * stats snapshot, systemd notify and shutdown. One libevent loop consumes
 * events from Kafka, learns from each micro-batch at once, publishes the
 * refreshed vectors to Redis every publish interval, and answers on the
 * stats port (the subsystems: freshrecd.h).
 *
 *   Kafka queue pipe → ingest.c: decode (proto/event) → join impressions and
 *   clicks → engine → offsets stored → dirty ids → sync.c: publish → Redis
 *
 * Signals are libevent signal events, so they are handled in the loop:
 * SIGTERM/SIGINT stop consuming, publish everything dirty, write the last
 * checkpoint, commit and leave the group (see shutdown below); SIGHUP
 * reloads the hot config keys. */
#define _POSIX_C_SOURCE 200809L
#include "freshrecd.h"

#include "clock.h"
#include "kern.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <systemd/sd-daemon.h>

/* ------------------------------------------------------------ stats */

static void snapshot(void *arg, metrics_t *out)
{
    app_t *a = arg;
    *out = a->m;
    engine_stats_t es;
    engine_stats(a->eng, &es);
    out->learner = es.lrn;
    out->prequential_hits_total = (uint64_t)(es.lrn.preq_hr10 * (double)es.lrn.preq_n + 0.5);
    out->progressive = es.progressive;
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
    out->consuming =
        a->kafka && !a->stopping && kafka_assigned(a->kafka) > 0 && !kafka_fatal(a->kafka);
    /* the link alone says little: a stopped Redis's kernel still completes
     * TCP connects; connected means writes are confirmed too */
    out->redis_link = a->pub && pub_connected(a->pub);
    out->redis_last_ack_age_s = a->pub ? pub_ack_age_s(a->pub) : 0.0;
    out->redis_connected =
        out->redis_link && pub_unconfirmed_s(a->pub) * 1000.0 < a->cfg.redis_ack_timeout_ms;
    if (a->pub && a->cfg.redis_cluster) {
        out->redis_cluster = 1;
        out->nnodes = pub_nodes(a->pub, out->nodes, METRICS_MAX_NODES);
        size_t nr;
        out->unserved_slots = pub_unserved_slots(a->pub, out->unserved_first, out->unserved_last,
                                                 METRICS_MAX_UNSERVED, &nr);
        out->nunserved = (int)nr;
    }
    cluster_stats(a, out);
}

/* systemd (Type=notify): READY=1 once consuming with Redis connected, a
 * STATUS line and the watchdog every second. No-ops without NOTIFY_SOCKET. */
static void notify_systemd(app_t *a)
{
    cron_t *c = &a->cron;
    metrics_t *m = c->snap;
    snapshot(a, m);
    if (!c->ready_sent && m->consuming && m->redis_connected) {
        sd_notify(0, "READY=1");
        c->ready_sent = 1;
        log_msg(LOG_INFO, "daemon", "ready: consuming, Redis connected");
    }
    double now = clock_mono_s(), dt = now - c->status_t;
    double rate = dt > 0 ? (double)(m->learner.events - c->status_events) / dt : 0.0;
    c->status_events = m->learner.events;
    c->status_t = now;
    sd_notifyf(0, "STATUS=%s: %.0f events/s, %llu learned, %d partition(s), Redis %s",
               a->stopping ? "stopping" : "learning", rate, (unsigned long long)m->learner.events,
               m->nparts,
               m->redis_connected ? "connected"
               : m->redis_link    ? "not confirming writes"
                                  : "disconnected");
    uint64_t usec;
    if (sd_watchdog_enabled(0, &usec) > 0)
        sd_notify(0, "WATCHDOG=1");
}

/* ------------------------------------------------------------ shutdown */

/* One path out, whatever ends the daemon:
 *   stop_begin    SIGTERM/SIGINT: no more consuming; what is dirty is
 *                 published (rounds back to back, as each one ends)
 *   stop_tick     the cron, every 10 ms while stopping: once everything is
 *                 published, or half the shutdown timeout has passed, the
 *                 final checkpoint (which commits what it holds), and the
 *                 loop ends
 *   app_shutdown  after the loop (or a start-up that failed part way):
 *                 leave the group (committing what is stored), the last log
 *                 line, and everything freed, in the reverse order of
 *                 start-up */
static void stop_begin(app_t *a, const char *why)
{
    if (a->stopping)
        return;
    a->stopping = 1;
    sd_notify(0, "STOPPING=1");
    log_msg(LOG_INFO, "daemon", "%s: stopping: no more consuming, publishing what is dirty", why);
    kafka_pause_loop(a->kafka);
    ingest_negatives(a);
    cluster_window(a); /* what was learned goes to the others now */
    a->stop_deadline = clock_mono_s() + a->cfg.shutdown_timeout_ms / 2000.0;
    cron_after(a, CRON_STOP, 10);
    sync_round(a);
}

static void stop_tick(app_t *a)
{
    int pending = sync_pending(a);
    if (pending && clock_mono_s() < a->stop_deadline) {
        if (!pub_busy(a->pub))
            sync_round(a);
        return; /* the tick comes again */
    }
    if (pending)
        log_msg(LOG_WARN, "daemon", "shutdown: %zu vectors not published before the timeout",
                emb_dirty_count(users_table(a)) + emb_dirty_count(items_table(a)));
    checkpoint_final(a); /* and commit what it holds */
    event_base_loopbreak(a->base);
}

static void app_shutdown(app_t *a, int ran)
{
    if (ran) { /* stopped: commit what was learned and leave the group */
        kafka_close(a->kafka);
        cluster_free(a); /* its last window, written before the others take over */
        snapshot(a, a->cron.snap);
        log_msg(LOG_INFO, "daemon", "stopped: %llu events learned, %llu vectors published",
                (unsigned long long)a->cron.snap->learner.events,
                (unsigned long long)a->m.publish_keys_total);
    }
    checkpoint_free(a);
    cluster_free(a);
    stats_stop(a->stats);
    kafka_free(a->kafka);
    sync_free(a);
    join_free(a->join);
    engine_free(a->eng);
    struct event *evs[] = {a->cron.ev, a->sig_term, a->sig_int, a->sig_hup};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i])
            event_free(evs[i]);
    if (a->base)
        event_base_free(a->base);
    ingest_free(a);
    free(a->cron.snap);
    free(a);
}

/* ------------------------------------------------------------ cron */

/* The cron runs every CRON_TICK_MS, or every publish interval when that is
 * shorter, so that each duty below runs on time (to a tick). */
#define CRON_TICK_MS 10

/* The duty is due at the tick nearest its time (libevent's clock is coarse:
 * a tick may come a little before the time it was set for); the next one a
 * period after this one was due, or a period from now after a late tick, as
 * with libevent's persistent timers. */
static int cron_due(app_t *a, int duty, double ms)
{
    cron_t *c = &a->cron;
    if (c->now + c->tick_ms / 2000.0 < c->next[duty])
        return 0;
    c->next[duty] += ms / 1000.0;
    if (c->next[duty] <= c->now)
        c->next[duty] = c->now + ms / 1000.0;
    return 1;
}

/* In the manner of Redis's serverCron: `run_with_period(duty, ms) stmt;`
 * runs stmt when the duty is due, then every ms. */
#define run_with_period(duty, ms) if (cron_due(a, (duty), (ms)))

void cron_after(app_t *a, int duty, double ms)
{
    a->cron.next[duty] = clock_mono_s() + ms / 1000.0;
}

/* Every periodic duty and its period. Not here, because they are events
 * rather than times: a batch from Kafka (the queue's pipe, kafka.c), the
 * drain that comes back at once after other events had their turn
 * (kafka.c's again_ev: a zero timer, so that a backlog does not keep the
 * loop from Redis's replies), a round started as soon as a long one ends
 * (sync.c's now_ev: at the cron's next tick it would start up to a tick
 * late), a checkpoint child's report (its pipe), Redis's replies and the
 * stats port's requests. */
static void cron(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    app_t *a = arg;
    a->cron.now = clock_mono_s();
    if (!a->stopping)
        run_with_period(CRON_PUBLISH, a->cfg.publish_interval_ms) sync_publish(a);
    run_with_period(CRON_KAFKA, 200) kafka_cron(a->kafka);
    if (a->cl)
        run_with_period(CRON_WINDOW, a->cfg.window_ms) cluster_tick(a);
    run_with_period(CRON_SECOND, 1000)
    {
        ingest_negatives(a);
        sync_watch_redis(a);
        notify_systemd(a);
        if (a->cfg.expire_s > 0) {
            size_t n = engine_expire(a->eng, clock_wall_ms());
            if (n)
                log_msg(LOG_INFO, "learner", "expired %zu ids unseen for %d s", n, a->cfg.expire_s);
        }
    }
    if (a->ck.path[0])
        run_with_period(CRON_CHECKPOINT, a->cfg.checkpoint_interval_s * 1000.0) checkpoint_tick(a);
    if (a->ck.waiting)
        run_with_period(CRON_CKPT_WAIT, 20) checkpoint_wait_tick(a);
    if (a->stopping)
        run_with_period(CRON_STOP, 10) stop_tick(a);
}

/* (Re)starts the cron's tick from now, and the publish interval with it (at
 * start-up, and after SIGHUP, which may change the interval). */
static int cron_arm(app_t *a)
{
    cron_t *c = &a->cron;
    c->tick_ms =
        a->cfg.publish_interval_ms < CRON_TICK_MS ? a->cfg.publish_interval_ms : CRON_TICK_MS;
    struct timeval tv = {c->tick_ms / 1000, (c->tick_ms % 1000) * 1000};
    cron_after(a, CRON_PUBLISH, a->cfg.publish_interval_ms);
    return event_add(c->ev, &tv);
}

static int cron_start(app_t *a)
{
    if (!(a->cron.ev = event_new(a->base, -1, EV_PERSIST, cron, a)))
        return -1;
    cron_after(a, CRON_KAFKA, 200);
    cron_after(a, CRON_WINDOW, a->cfg.window_ms);
    cron_after(a, CRON_SECOND, 1000);
    cron_after(a, CRON_CHECKPOINT, a->cfg.checkpoint_interval_s * 1000.0);
    return cron_arm(a);
}

/* ------------------------------------------------------------ signals */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    app_t *a = arg;
    if (sig != SIGHUP) {
        stop_begin(a, sig == SIGTERM ? "SIGTERM" : "SIGINT");
        return;
    }
    char err[512] = "", changes[512];
    fr_config_t before = a->cfg;
    sd_notify(0, "RELOADING=1");
    int n = config_reload(&a->cfg, a->config_path, a->overrides, a->noverrides, err, sizeof(err));
    if (a->cron.ready_sent)
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
        cron_arm(a);
    /* only the keys that changed, so that the count and the list agree */
    n = config_hot_changes(&before, &a->cfg, changes, sizeof(changes));
    log_msg(LOG_INFO, "config", "SIGHUP: %d hot key(s) changed%s%s", n, n ? ": " : "", changes);
}

static int signals_start(app_t *a)
{
    return !(a->sig_term = evsignal_new(a->base, SIGTERM, on_signal, a)) ||
                   !(a->sig_int = evsignal_new(a->base, SIGINT, on_signal, a)) ||
                   !(a->sig_hup = evsignal_new(a->base, SIGHUP, on_signal, a)) ||
                   event_add(a->sig_term, NULL) || event_add(a->sig_int, NULL) ||
                   event_add(a->sig_hup, NULL)
               ? -1
               : 0;
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

/* The command line: -1 to go on, else the exit code (0 after --help, 2
 * when it is refused). */
static int parse_args(app_t *a, int argc, char **argv, int *print_config)
{
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
            *print_config = 1;
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
    return -1;
}

/* The command line and the config: -1 to go on, else the exit code (0 after
 * --help or --print-config, 2 when either is refused). */
static int configure(app_t *a, int argc, char **argv)
{
    char err[512];
    int print_config = 0;
    config_defaults(&a->cfg);
    int rc = parse_args(a, argc, argv, &print_config);
    if (rc >= 0)
        return rc;
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
    return -1;
}

/* Every subsystem, in order: -1 (logged) when one cannot start; what did is
 * freed by app_shutdown. */
static int app_start(app_t *a)
{
    char err[512];
    signal(SIGPIPE, SIG_IGN);
    /* a file-size limit (RLIMIT_FSIZE) makes a checkpoint's write fail with
     * EFBIG, like a full disk, instead of killing the daemon */
    signal(SIGXFSZ, SIG_IGN);
    kern_set_threads(1);

    a->t_start = clock_mono_s();
    a->m.kinds = a->kinds;
    snprintf(a->m.model, sizeof(a->m.model), "%.31s", a->cfg.model);
    a->bad_log.burst = 10;
    a->kafka_log.burst = 5;
    a->base = event_base_new();
    a->cron.snap = malloc(sizeof(*a->cron.snap));
    if (!a->base || !a->cron.snap || ingest_init(a, err, sizeof(err))) {
        log_msg(LOG_ERROR, "daemon", "out of memory at start-up");
        return -1;
    }
    if (cluster_create(a, err, sizeof(err))) {
        log_msg(LOG_ERROR, "cluster", "%s", err);
        return -1;
    }
    if (!(a->eng = engine_create(&a->mc.ec, err, sizeof(err))) ||
        !(a->join = join_create(a->cfg.label_window_ms, 1000000, err, sizeof(err))) ||
        checkpoint_init(a, err, sizeof(err))) {
        log_msg(LOG_ERROR, "learner", "%s", err);
        return -1;
    }
    engine_on_gone(a->eng, sync_on_gone,
                   a); /* evicted and expired ids: their vectors are deleted */
    ingest_start_ahead(a);
    if (sync_init(a, err, sizeof(err))) {
        log_msg(LOG_ERROR, "redis", "%s", err);
        return -1;
    }
    /* a member's offsets in the group are a lag figure only (the model log
     * says where each partition resumes): committed as learned */
    if (!(a->kafka = kafka_create(a->base, &a->cfg, a->embedded, a->ck.path[0] != 0 && !a->cl,
                                  ingest_batch, a, err, sizeof(err)))) {
        log_msg(LOG_ERROR, "kafka", "%s", err);
        return -1;
    }
    if (!a->cl)
        kafka_set_resume(a->kafka, a->ck.resume, a->ck.n_resume);
    if (cluster_start(a, err, sizeof(err))) {
        log_msg(LOG_ERROR, "cluster", "%s", err);
        return -1;
    }
    if (a->cfg.stats_port > 0 && a->cfg.stats_listen[0]) {
        if (!(a->stats = stats_start(a->base, a->cfg.stats_listen, a->cfg.stats_port, snapshot, a,
                                     err, sizeof(err)))) {
            log_msg(LOG_ERROR, "stats", "%s", err);
            return -1;
        }
        stats_set_vector_fn(a->stats, sync_vector, a);
    }
    if (cron_start(a) || signals_start(a)) {
        log_msg(LOG_ERROR, "daemon", "cannot set up timers and signals");
        return -1;
    }
    log_msg(LOG_INFO, "daemon",
            "freshrecd ready: kafka %s topics %s group %s; redis %s:%d; stats %s:%d; model %s "
            "dim %d",
            kafka_bootstrap(a->kafka), a->cfg.topics, a->cfg.group_id, a->cfg.redis_host,
            a->cfg.redis_port, a->cfg.stats_listen, a->stats ? stats_port(a->stats) : 0,
            a->cfg.model, a->cfg.dim);
    return 0;
}

int main(int argc, char **argv)
{
    app_t *a = calloc(1, sizeof(*a));
    if (!a) {
        fprintf(stderr, "freshrecd: out of memory\n");
        return 1;
    }
    int rc = configure(a, argc, argv);
    if (rc >= 0) {
        free(a);
        return rc;
    }
    rc = app_start(a) ? 1 : 0;
    if (rc == 0)
        event_base_dispatch(a->base);
    app_shutdown(a, rc == 0);
    return rc;
}
