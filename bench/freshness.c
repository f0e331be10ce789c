/* freshness.c — fr-bench: a load generator and freshness meter against a
 * running freshrecd, on loopback only.
 *
 * It produces click events (proto/event.h, keyed by user) to Kafka: users
 * from a fixed pool "u<n>" with uniform random items "i<n>", and, every K-th
 * event, a probe: a click of a user never seen before on an item never seen
 * before, both "probe-<tag>-<n>". A second Redis connection, in its own
 * thread, listens to the keyspace notifications of the probes' vector keys
 * (notify-keyspace-events K$, set on the server for the run and restored
 * after it), so a probe's freshness is the time from just before it was
 * produced to the moment Redis announced the SET of
 * fr:<model>:u:probe-<tag>-<n> (the new user's vector), and its item
 * freshness that of fr:<model>:i:probe-<tag>-<n> (the new item's first
 * vector; both CLOCK_REALTIME, same process).
 *
 * With --rate 0 and --stats, it also measures end-to-end throughput: from the
 * first produce until every event is learned and published. "Learned" is
 * read from the daemon's /metrics (events learned + skipped + refused by the
 * learner ≥ baseline + produced, and freshrec_dirty_keys 0); "published" is
 * made close to exact by one marker event per partition, produced after the
 * load to that partition: a partition is consumed in order, and the daemon
 * runs one publish round at a time, so when Redis has SET every marker's
 * vector, every event before it was learned and its vectors written in an
 * earlier round or queued in the marker's own (which Redis is executing).
 * Without probes the markers' keys are polled (EXISTS, every 5 ms) rather
 * than watched, so Redis does not pay for notifications in a throughput run.
 *
 * --kafka-leg W,... adds plain consumers (fetch.wait.max.ms W each) that
 * time the probes' Kafka leg alone (produce → a consumer has the message), so
 * the freshness can be split into transport and daemon (learn + publish).
 *
 * --ready-file F (with --rate 0 and --stats) measures the daemon's sustained
 * rate instead: every event is produced and acknowledged first, with no
 * daemon consuming, then the broker address is written to F for the caller
 * to start freshrecd against; the rate is timed from the first /metrics
 * scrape that shows consumed events until all are learned and published,
 * over the events not yet consumed at that scrape (the daemon answers
 * between turns, and its first turn of a backlog takes several batches), so
 * the load generator's own CPU is not in it. --mock-cluster P hosts the broker
 * here (librdkafka's mock cluster, the topic with P partitions), for a
 * daemon that is not --embedded; fr-bench then keeps it up until F is
 * removed.
 *
 * --stats takes a comma-separated list of ports, of several daemons in one
 * group (members learning one model, [cluster] model_topic): the scrape
 * then sums their figures, and one that does not answer fails it as one
 * daemon would. --model-topic NAME (with --mock-cluster) also creates NAME
 * with one partition, the members' model log.
 *
 * --stop-pids FILE (with --mock-cluster and --ready-file) times a group that
 * is up before the backlog arrives: the brokers go to the ready file first,
 * the caller starts the daemons and writes their pids to FILE; once every
 * daemon consumes (members: every partition live, each member owning some,
 * so their claims are accepted), fr-bench SIGSTOPs them, preloads, and
 * SIGCONTs them: the clock runs from the SIGCONT until every event is
 * learned and published. Members join and claim one after another (a
 * second or more apart), so timed from the first consumed event, the first
 * member would drain its share before the last one learns anything.
 *
 * --produce-only reports the raw produce rate (until every message is
 * acknowledged), the reference for the end-to-end figure; --free-port and
 * --get are small helpers for the bench scripts (no curl or python needed).
 *
 * Not for: correctness tests (tests/), or anything beyond 127.0.0.1. */
#define _POSIX_C_SOURCE 200809L
#include "clock.h"
#include "event.h"
#include "keys.h"
#include "rng.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROBES 1000000 /* probe slots when the event count is open-ended */
#define MAX_PARTS 256
#define MAX_LEGS 4
#define MAX_MEMBERS 16 /* stats ports */

/* ------------------------------------------------------------ clocks */

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ options */

typedef struct {
    const char *brokers, *topic, *redis, *prefix, *model;
    int stats_port; /* the first of stats_ports */
    int stats_ports[MAX_MEMBERS], nstats;
    const char *model_topic; /* with mock_parts: also created, one partition */
    const char *stop_pids;   /* the daemons to stop while preloading (see the top) */
    double rate, seconds;
    long long events;
    long users, items, probe_every;
    double drain_s, timeout_s;
    int linger_ms;
    int produce_only;
    int mock_parts;         /* > 0: host a mock cluster with the topic in this many partitions */
    const char *ready_file; /* preload, then write the brokers here (see the top) */
    int nlegs, leg_wait[MAX_LEGS];
    uint64_t seed;
    char redis_host[256];
    int redis_port;
} opts_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fr-bench --brokers HOST:PORT [options]     load and freshness of freshrecd\n"
            "       fr-bench --free-port                       print a free loopback TCP port\n"
            "       fr-bench --get PORT PATH                   HTTP GET 127.0.0.1:PORT PATH\n"
            "  --topic T          topic to produce to                          [events]\n"
            "  --redis HOST:PORT  the daemon's Redis (loopback)                [127.0.0.1:6379]\n"
            "  --stats PORT,...   the daemon's stats port; with --rate 0: end-to-end rate;\n"
            "                     several: members of one model, their figures summed\n"
            "  --rate N           events per second; 0 = as fast as possible   [0]\n"
            "  --seconds S        produce for S seconds (with --rate: rate x S events)\n"
            "  --events N         produce N events                             [100000]\n"
            "  --users U          background user pool u0..u(U-1)             [10000]\n"
            "  --items I          items i0..i(I-1), uniform                    [5000]\n"
            "  --probe-every K    every K-th event is a probe of a new user; 0 = none [0]\n"
            "  --prefix P         key prefix                                   [fr]\n"
            "  --model M          model name in the keys                       [neumf]\n"
            "  --linger-ms L      producer linger.ms                           [5]\n"
            "  --drain S          wait at most S s after the last produce      [15]\n"
            "  --timeout S        hard limit on the whole run                  [300]\n"
            "  --seed N           random seed                                  [1]\n"
            "  --kafka-leg W,...  also time each probe's Kafka leg alone: produce -> a plain\n"
            "                     consumer with fetch.wait.max.ms W has it (-1: the default)\n"
            "  --produce-only     only produce and time the acknowledgements (no daemon\n"
            "                     needed): the reference for the end-to-end rate\n"
            "  --ready-file F     with --rate 0 --stats: produce everything first, write the\n"
            "                     brokers to F, then time the daemon from the first scrape\n"
            "                     showing consumed events, over the events not consumed by\n"
            "                     then: its sustained rate, without the producer's CPU\n"
            "  --mock-cluster P   host the brokers here (a mock cluster, the topic in P\n"
            "                     partitions), kept up until the --ready-file is removed\n"
            "  --model-topic T    with --mock-cluster: also create T with one partition (the\n"
            "                     members' model log)\n"
            "  --stop-pids FILE   with --mock-cluster and --ready-file: the brokers to the\n"
            "                     ready file first; once every daemon consumes (members:\n"
            "                     every partition live), SIGSTOP the pids in FILE, preload,\n"
            "                     SIGCONT them, and time them from then\n"
            "Output: human-readable lines, then one JSON line. Exit 0 when every probe\n"
            "arrived and (end to end) everything was learned and published, else 1.\n");
}

static int is_loopback(const char *host)
{
    return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
           strcmp(host, "::1") == 0 || strncmp(host, "127.", 4) == 0;
}

/* "h1:p1,h2:p2": every host must be loopback */
static int brokers_loopback(const char *b)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", b);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(t, ':');
        if (colon)
            *colon = '\0';
        if (t[0] == '[') { /* [::1]:port */
            t++;
            char *e = strchr(t, ']');
            if (e)
                *e = '\0';
        }
        if (!is_loopback(t))
            return 0;
    }
    return 1;
}

static int parse_num(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "fr-bench: %s '%s': expected a number in [%g, %g]\n", name, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* ------------------------------------------------------------ helpers for scripts */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* A tiny HTTP/1.0 GET to 127.0.0.1:port. Returns the status code (the body,
 * NUL-terminated, in *body, to free) or -1 when there is no answer. */
static int http_get(int port, const char *path, char **body, int timeout_ms)
{
    *body = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char req[512];
    int n =
        snprintf(req, sizeof(req),
                 "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", path, port);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) || n <= 0 || (size_t)n >= sizeof(req) ||
        write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            close(fd);
            return -1;
        }
        if (len + 4096 > cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                close(fd);
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) { /* timeout or error */
            free(buf);
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    int status = -1;
    if (sscanf(buf, "HTTP/%*d.%*d %d", &status) != 1) {
        free(buf);
        return -1;
    }
    char *b = strstr(buf, "\r\n\r\n");
    b = b ? b + 4 : buf + len;
    memmove(buf, b, strlen(b) + 1);
    *body = buf;
    return status;
}

/* The sum of every sample of a metric family member named exactly name
 * (any labels); NAN when there is none. */
static double metric(const char *text, const char *name)
{
    size_t nl = strlen(name);
    double sum = 0;
    int found = 0;
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        if (*p != '#' && strncmp(p, name, nl) == 0 && (p[nl] == ' ' || p[nl] == '{')) {
            const char *v = p + nl;
            if (*v == '{') {
                v = strchr(v, '}');
                v = v ? v + 1 : NULL;
            }
            if (v) {
                sum += strtod(v, NULL);
                found = 1;
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    return found ? sum : NAN;
}

typedef struct {
    double learned, skipped, refused, dirty, consumed;
    /* members of one model ([cluster] model_topic); NAN from a daemon alone */
    double live, claims, resyncs, gaps;
    double lag;       /* model-log records not read yet (INFINITY: not known) */
    int members_live; /* members that own a live partition */
    double consuming; /* daemons with partitions assigned */
} scrape_t;

static int scrape_one(int port, scrape_t *s)
{
    char *body;
    int st = http_get(port, "/metrics", &body, 2000);
    if (st != 200) {
        free(body);
        return -1;
    }
    s->learned = metric(body, "freshrec_events_learned_total");
    s->skipped = metric(body, "freshrec_events_skipped_total");
    s->refused = metric(body, "freshrec_events_learner_refused_total");
    s->dirty = metric(body, "freshrec_dirty_keys");
    s->consumed = metric(body, "freshrec_events_consumed_total");
    s->live = metric(body, "freshrec_cluster_partitions_live");
    s->claims = metric(body, "freshrec_cluster_claims_total");
    s->resyncs = metric(body, "freshrec_cluster_resyncs_total");
    s->gaps = metric(body, "freshrec_cluster_log_gaps_total");
    s->lag = metric(body, "freshrec_cluster_log_lag");
    if (s->lag < 0)
        s->lag = INFINITY;
    s->members_live = s->live > 0;
    s->consuming = metric(body, "freshrec_consuming");
    free(body);
    if (isnan(s->learned) || isnan(s->dirty))
        return -1;
    if (isnan(s->skipped))
        s->skipped = 0;
    if (isnan(s->refused))
        s->refused = 0;
    return 0;
}

/* a + b where NAN means "not shown": NAN only when both are */
static double add_shown(double a, double b)
{
    return isnan(a) ? b : (isnan(b) ? a : a + b);
}

/* Every stats port's figures, summed: -1 when one does not answer (*s is
 * then as scrape_one left it for one port, and untouched for several). */
static int scrape(const opts_t *o, scrape_t *out)
{
    if (o->nstats == 1)
        return scrape_one(o->stats_ports[0], out);
    scrape_t sum, *s = &sum;
    if (scrape_one(o->stats_ports[0], s))
        return -1;
    for (int i = 1; i < o->nstats; i++) {
        scrape_t m;
        if (scrape_one(o->stats_ports[i], &m))
            return -1;
        s->learned += m.learned;
        s->skipped += m.skipped;
        s->refused += m.refused;
        s->dirty += m.dirty;
        s->consumed = add_shown(s->consumed, m.consumed);
        s->live = add_shown(s->live, m.live);
        s->claims = add_shown(s->claims, m.claims);
        s->resyncs = add_shown(s->resyncs, m.resyncs);
        s->gaps = add_shown(s->gaps, m.gaps);
        s->lag = add_shown(s->lag, m.lag);
        s->members_live += m.members_live;
        s->consuming = add_shown(s->consuming, m.consuming);
    }
    *out = sum;
    return 0;
}

/* Every daemon consumes; members: every partition is live, each member
 * owning some (with more members than partitions, some own none). */
static int all_live(const opts_t *o, const scrape_t *s, int nparts)
{
    if (isnan(s->live))
        return s->consuming == o->nstats;
    int due = o->nstats < nparts ? o->nstats : nparts;
    return s->live == nparts && s->members_live == due;
}

/* ------------------------------------------------------------ stopped daemons */

/* --stop-pids: what fr-bench stopped, resumed on every way out (the alarm too) */
static pid_t stopped_pid[MAX_MEMBERS];
static volatile sig_atomic_t nstopped;

static void resume_daemons(void)
{
    for (int i = 0; i < nstopped; i++)
        kill(stopped_pid[i], SIGCONT);
    nstopped = 0;
}

/* Reads the pids in path (one a line, as many as --stats ports) and SIGSTOPs
 * them; 0 or -1 (said on stderr, any stopped resumed). */
static int stop_daemons(const opts_t *o)
{
    pid_t pid[MAX_MEMBERS];
    int n = 0;
    FILE *f = fopen(o->stop_pids, "r");
    long v;
    while (f && n < MAX_MEMBERS && fscanf(f, "%ld", &v) == 1 && v > 1)
        pid[n++] = (pid_t)v;
    if (f)
        fclose(f);
    if (n != o->nstats) {
        fprintf(stderr, "fr-bench: %s: %d pid(s), one per --stats port expected (%d)\n",
                o->stop_pids, n, o->nstats);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (kill(pid[i], SIGSTOP)) {
            fprintf(stderr, "fr-bench: SIGSTOP %ld: %s\n", (long)pid[i], strerror(errno));
            resume_daemons();
            return -1;
        }
        stopped_pid[i] = pid[i];
        nstopped = i + 1;
    }
    return 0;
}

static int write_ready(const char *path, const char *brokers)
{
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%s\n", brokers) < 0 || fclose(f)) {
        fprintf(stderr, "fr-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ the watcher thread */

typedef struct {
    redisContext *c;
    char key_prefix[512]; /* "__keyspace@0__:fr:neumf:u:probe-<tag>-" */
    size_t key_prefix_len;
    _Atomic int64_t *probe_at; /* arrival, wall µs; 0 = not yet */
    _Atomic int64_t *item_at;  /* the probe item's, likewise */
    char item_prefix[512];     /* "__keyspace@0__:fr:neumf:i:probe-<tag>-" */
    size_t item_prefix_len;
    long nprobes;
    _Atomic int64_t marker_at[MAX_PARTS];
    _Atomic int stop;
    _Atomic long notes; /* notifications seen */
    char err[256];
} watch_t;

static void on_note(watch_t *w, redisReply *r, int64_t now)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 || !r->element[2]->str ||
        !r->element[3]->str || strcmp(r->element[3]->str, "set") != 0)
        return;
    const char *ch = r->element[2]->str;
    char *end;
    if (strncmp(ch, w->item_prefix, w->item_prefix_len) == 0) {
        atomic_fetch_add(&w->notes, 1);
        long n = strtol(ch + w->item_prefix_len, &end, 10);
        int64_t zero = 0;
        if (!*end && n >= 0 && n < w->nprobes)
            atomic_compare_exchange_strong(&w->item_at[n], &zero, now);
        return;
    }
    if (strncmp(ch, w->key_prefix, w->key_prefix_len) != 0)
        return;
    const char *rest = ch + w->key_prefix_len;
    atomic_fetch_add(&w->notes, 1);
    if (strncmp(rest, "end-", 4) == 0) {
        long p = strtol(rest + 4, &end, 10);
        int64_t zero = 0;
        if (!*end && p >= 0 && p < MAX_PARTS)
            atomic_compare_exchange_strong(&w->marker_at[p], &zero, now);
        return;
    }
    long n = strtol(rest, &end, 10);
    int64_t zero = 0;
    if (!*end && n >= 0 && n < w->nprobes) /* the first SET counts */
        atomic_compare_exchange_strong(&w->probe_at[n], &zero, now);
}

static void *watch_main(void *arg)
{
    watch_t *w = arg;
    while (!atomic_load(&w->stop)) {
        void *reply = NULL;
        if (redisGetReplyFromReader(w->c, &reply) != REDIS_OK) {
            snprintf(w->err, sizeof(w->err), "keyspace connection: %s", w->c->errstr);
            break;
        }
        if (!reply) {
            struct pollfd pfd = {.fd = w->c->fd, .events = POLLIN};
            int r = poll(&pfd, 1, 50);
            if (r > 0 && redisBufferRead(w->c) != REDIS_OK) {
                snprintf(w->err, sizeof(w->err), "keyspace connection: %s", w->c->errstr);
                break;
            }
            continue;
        }
        on_note(w, reply, wall_us());
        freeReplyObject(reply);
    }
    return NULL;
}

/* The user id of partition p's end marker (its length), as produced and as
 * looked for in Redis. */
static int marker_user(char *buf, size_t cap, const char *tag, int p)
{
    return snprintf(buf, cap, "probe-%s-end-%d", tag, p);
}

/* Without notifications: asks Redis which markers' vectors are SET (one
 * EXISTS per marker, pipelined), and notes the time of those new since the
 * last call in w->marker_at as the watcher would. 1 when all are in; 0 on an
 * error, with *failed set. */
static int markers_set(redisContext *c, const opts_t *o, const char *tag, int nparts, watch_t *w,
                       int *failed)
{
    char key[512], user[128];
    for (int p = 0; p < nparts; p++) {
        int ul = marker_user(user, sizeof(user), tag, p);
        size_t kl = keys_vector(key, sizeof(key), o->prefix, o->model, 'u', user, (size_t)ul);
        redisAppendCommand(c, "EXISTS %b", key, kl);
    }
    int in = 0;
    const int64_t now = wall_us();
    for (int p = 0; p < nparts; p++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r || r->type != REDIS_REPLY_INTEGER) {
            fprintf(stderr, "fr-bench: EXISTS: %s\n", r ? "unexpected reply" : c->errstr);
            if (r)
                freeReplyObject(r);
            *failed = 1;
            return 0;
        }
        if (r->integer == 1) {
            int64_t zero = 0;
            atomic_compare_exchange_strong(&w->marker_at[p], &zero, now);
            in++;
        }
        freeReplyObject(r);
    }
    return in == nparts;
}

/* ------------------------------------------------------------ Kafka */

typedef struct {
    uint64_t ok, failed;
    char first_err[256];
} dr_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    dr_t *d = opaque;
    if (m->err) {
        if (!d->failed)
            snprintf(d->first_err, sizeof(d->first_err), "%s", rd_kafka_err2str(m->err));
        d->failed++;
    } else {
        d->ok++;
    }
}

/* Produces one message; waits for room when the local queue is full. */
static int produce(rd_kafka_t *rk, const char *topic, int32_t part, const char *key, size_t klen,
                   const char *val, size_t vlen, int64_t ts_ms, double deadline)
{
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, klen),
            RD_KAFKA_V_VALUE((void *)val, vlen), RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || clock_mono_s() > deadline) {
            fprintf(stderr, "fr-bench: produce: %s\n", rd_kafka_err2str(err));
            return -1;
        }
        rd_kafka_poll(rk, 5); /* the local queue is full: let deliveries drain */
    }
}

static int partition_count(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    if (t && rd_kafka_metadata(rk, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR && md &&
        md->topic_cnt == 1 && md->topics[0].err == 0)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (t)
        rd_kafka_topic_destroy(t);
    return n;
}

/* ------------------------------------------------------------ the Kafka leg */

/* A plain consumer of every partition from its high watermark: the probes'
 * transport time without the daemon. */
typedef struct {
    rd_kafka_t *rk;
    int wait_ms;
    int64_t *at; /* arrival of each probe, wall µs; 0 = not yet */
    long nprobes;
    const char *prefix; /* "probe-<tag>-" */
    size_t prefix_len;
} leg_t;

static int leg_start(leg_t *l, const opts_t *o, const char *tag, int nparts, char *err, size_t len)
{
    char e[256], v[32], group[96];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(group, sizeof(group), "fr-bench-%s-leg-%d", tag, l->wait_ms);
    snprintf(v, sizeof(v), "%d", l->wait_ms);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", o->brokers, e, sizeof(e)) ||
        rd_kafka_conf_set(conf, "group.id", group, e, sizeof(e)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", e, sizeof(e)) ||
        rd_kafka_conf_set(conf, "log_level", "3", e, sizeof(e)) ||
        (l->wait_ms >= 0 && rd_kafka_conf_set(conf, "fetch.wait.max.ms", v, e, sizeof(e)))) {
        snprintf(err, len, "kafka leg: %s", e);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    l->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof(e));
    if (!l->rk) {
        snprintf(err, len, "kafka leg: %s", e);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    conf = NULL; /* owned by l->rk now */
    rd_kafka_poll_set_consumer(l->rk);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(nparts);
    for (int p = 0; p < nparts; p++) {
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t r =
            rd_kafka_query_watermark_offsets(l->rk, o->topic, p, &lo, &hi, 5000);
        if (r) {
            snprintf(err, len, "kafka leg: watermarks of %s [%d]: %s", o->topic, p,
                     rd_kafka_err2str(r));
            rd_kafka_topic_partition_list_destroy(parts);
            return -1;
        }
        rd_kafka_topic_partition_list_add(parts, o->topic, p)->offset = hi;
    }
    rd_kafka_resp_err_t r = rd_kafka_assign(l->rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (r) {
        snprintf(err, len, "kafka leg: assign: %s", rd_kafka_err2str(r));
        return -1;
    }
    return 0;
}

static void leg_drain(leg_t *l)
{
    rd_kafka_message_t *m;
    while (l->rk && (m = rd_kafka_consumer_poll(l->rk, 0))) {
        if (!m->err && m->key && m->key_len > l->prefix_len && m->key_len < 64 &&
            memcmp(m->key, l->prefix, l->prefix_len) == 0) {
            char num[64];
            size_t n = m->key_len - l->prefix_len;
            memcpy(num, (const char *)m->key + l->prefix_len, n);
            num[n] = '\0';
            char *end;
            long k = strtol(num, &end, 10);
            if (!*end && k >= 0 && k < l->nprobes && !l->at[k])
                l->at[k] = wall_us();
        }
        rd_kafka_message_destroy(m);
    }
}

static void leg_free(leg_t *l)
{
    if (l->rk) {
        rd_kafka_consumer_close(l->rk);
        rd_kafka_destroy(l->rk);
    }
    free(l->at);
    l->rk = NULL;
    l->at = NULL;
}

/* ------------------------------------------------------------ figures */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* nearest rank */
static double pct(const double *s, long n, double p)
{
    if (n <= 0)
        return NAN;
    long k = (long)ceil(p / 100.0 * (double)n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return s[k - 1];
}

static void json_num(FILE *f, const char *name, double v, int last)
{
    if (isfinite(v))
        fprintf(f, "\"%s\":%.6g%s", name, v, last ? "" : ",");
    else
        fprintf(f, "\"%s\":null%s", name, last ? "" : ",");
}

static void on_alarm(int sig)
{
    (void)sig;
    resume_daemons(); /* kill() is async-signal-safe */
    static const char msg[] = "fr-bench: hard timeout reached; giving up\n";
    ssize_t r = write(2, msg, sizeof(msg) - 1);
    (void)r;
    _exit(3);
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    opts_t o = {.topic = "events",
                .redis = "127.0.0.1:6379",
                .prefix = "fr",
                .model = "neumf",
                .events = -1,
                .users = 10000,
                .items = 5000,
                .drain_s = 15,
                .timeout_s = 300,
                .linger_ms = 5,
                .seed = 1};
    int want_free_port = 0, get_port = 0;
    const char *get_path = NULL;
    static const struct option lo[] = {
        {"brokers", 1, 0, 'b'},      {"topic", 1, 0, 't'},        {"redis", 1, 0, 'r'},
        {"stats", 1, 0, 's'},        {"rate", 1, 0, 'R'},         {"seconds", 1, 0, 'S'},
        {"events", 1, 0, 'n'},       {"users", 1, 0, 'u'},        {"items", 1, 0, 'i'},
        {"probe-every", 1, 0, 'k'},  {"prefix", 1, 0, 'p'},       {"model", 1, 0, 'm'},
        {"linger-ms", 1, 0, 'L'},    {"drain", 1, 0, 'd'},        {"timeout", 1, 0, 'T'},
        {"seed", 1, 0, 'x'},         {"produce-only", 0, 0, 'P'}, {"free-port", 0, 0, 'F'},
        {"get", 1, 0, 'G'},          {"kafka-leg", 1, 0, 'K'},    {"ready-file", 1, 0, 'Y'},
        {"mock-cluster", 1, 0, 'M'}, {"model-topic", 1, 0, 'O'},  {"stop-pids", 1, 0, 'Z'},
        {"help", 0, 0, 'h'},         {NULL, 0, NULL, 0}};
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'b':
            o.brokers = optarg;
            break;
        case 't':
            o.topic = optarg;
            break;
        case 'r':
            o.redis = optarg;
            break;
        case 's': {
            char buf[256];
            snprintf(buf, sizeof(buf), "%s", optarg);
            o.nstats = 0;
            for (char *save = NULL, *t = strtok_r(buf, ",", &save); t;
                 t = strtok_r(NULL, ",", &save)) {
                if (o.nstats == MAX_MEMBERS) {
                    fprintf(stderr, "fr-bench: --stats: at most %d ports\n", MAX_MEMBERS);
                    return 2;
                }
                if (parse_num("--stats", t, 1, 65535, &v))
                    return 2;
                o.stats_ports[o.nstats++] = (int)v;
            }
            o.stats_port = o.nstats ? o.stats_ports[0] : 0;
            break;
        }
        case 'O':
            o.model_topic = optarg;
            break;
        case 'Z':
            o.stop_pids = optarg;
            break;
        case 'R':
            if (parse_num("--rate", optarg, 0, 1e8, &o.rate))
                return 2;
            break;
        case 'S':
            if (parse_num("--seconds", optarg, 0.001, 86400, &o.seconds))
                return 2;
            break;
        case 'n':
            if (parse_num("--events", optarg, 1, 1e10, &v))
                return 2;
            o.events = (long long)v;
            break;
        case 'u':
            if (parse_num("--users", optarg, 1, 1e9, &v))
                return 2;
            o.users = (long)v;
            break;
        case 'i':
            if (parse_num("--items", optarg, 1, 1e9, &v))
                return 2;
            o.items = (long)v;
            break;
        case 'k':
            if (parse_num("--probe-every", optarg, 0, 1e9, &v))
                return 2;
            o.probe_every = (long)v;
            break;
        case 'p':
            o.prefix = optarg;
            break;
        case 'm':
            o.model = optarg;
            break;
        case 'L':
            if (parse_num("--linger-ms", optarg, 0, 10000, &v))
                return 2;
            o.linger_ms = (int)v;
            break;
        case 'd':
            if (parse_num("--drain", optarg, 0, 3600, &o.drain_s))
                return 2;
            break;
        case 'T':
            if (parse_num("--timeout", optarg, 1, 86400, &o.timeout_s))
                return 2;
            break;
        case 'x':
            if (parse_num("--seed", optarg, 0, 1e18, &v))
                return 2;
            o.seed = (uint64_t)v;
            break;
        case 'P':
            o.produce_only = 1;
            break;
        case 'Y':
            o.ready_file = optarg;
            break;
        case 'M':
            if (parse_num("--mock-cluster", optarg, 1, 256, &v))
                return 2;
            o.mock_parts = (int)v;
            break;
        case 'K': {
            char buf[256];
            snprintf(buf, sizeof(buf), "%s", optarg);
            o.nlegs = 0;
            for (char *save = NULL, *t = strtok_r(buf, ",", &save); t;
                 t = strtok_r(NULL, ",", &save)) {
                if (o.nlegs == MAX_LEGS) {
                    fprintf(stderr, "fr-bench: --kafka-leg: at most %d\n", MAX_LEGS);
                    return 2;
                }
                if (parse_num("--kafka-leg", t, -1, 300000, &v))
                    return 2;
                o.leg_wait[o.nlegs++] = (int)v;
            }
            break;
        }
        case 'F':
            want_free_port = 1;
            break;
        case 'G':
            if (parse_num("--get", optarg, 1, 65535, &v))
                return 2;
            get_port = (int)v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (want_free_port) {
        int p = free_port();
        if (p < 0) {
            fprintf(stderr, "fr-bench: no free loopback port: %s\n", strerror(errno));
            return 1;
        }
        printf("%d\n", p);
        return 0;
    }
    if (get_port) {
        if (optind != argc - 1) {
            fprintf(stderr, "fr-bench: --get PORT PATH\n");
            return 2;
        }
        get_path = argv[optind];
        char *body;
        int st = http_get(get_port, get_path, &body, 5000);
        if (st < 0)
            return 2;
        fputs(body, stdout);
        free(body);
        return st == 200 ? 0 : 1;
    }
    if (optind < argc) {
        fprintf(stderr, "fr-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    /* the brokers hosted here: librdkafka's mock cluster, owned by a handle of its own */
    rd_kafka_t *mock_rk = NULL;
    rd_kafka_mock_cluster_t *mock = NULL;
    static char mock_bootstrap[256];
    if (o.mock_parts > 0) {
        char e[256];
        if (o.brokers || !o.ready_file) {
            fprintf(stderr, "fr-bench: --mock-cluster takes no --brokers and needs --ready-file\n");
            return 2;
        }
        rd_kafka_conf_t *mc = rd_kafka_conf_new();
        rd_kafka_conf_set(mc, "log_level", "3", e, sizeof(e));
        if (!(mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, mc, e, sizeof(e)))) {
            fprintf(stderr, "fr-bench: mock cluster: %s\n", e);
            rd_kafka_conf_destroy(mc);
            return 1;
        }
        if (!(mock = rd_kafka_mock_cluster_new(mock_rk, 1))) {
            fprintf(stderr, "fr-bench: could not start a mock cluster\n");
            rd_kafka_destroy(mock_rk);
            return 1;
        }
        rd_kafka_mock_topic_create(mock, o.topic, o.mock_parts, 1);
        if (o.model_topic)
            rd_kafka_mock_topic_create(mock, o.model_topic, 1, 1);
        snprintf(mock_bootstrap, sizeof(mock_bootstrap), "%s",
                 rd_kafka_mock_cluster_bootstraps(mock));
        o.brokers = mock_bootstrap;
    }
    if (!o.brokers) {
        fprintf(stderr, "fr-bench: --brokers is required\n");
        usage(stderr);
        return 2;
    }
    if (!brokers_loopback(o.brokers)) {
        fprintf(stderr, "fr-bench: --brokers '%s': loopback addresses only\n", o.brokers);
        return 2;
    }
    {
        const char *colon = strrchr(o.redis, ':');
        size_t hl = colon ? (size_t)(colon - o.redis) : 0;
        if (!colon || hl == 0 || hl >= sizeof(o.redis_host) ||
            parse_num("--redis port", colon + 1, 1, 65535, &v))
            return 2;
        memcpy(o.redis_host, o.redis, hl);
        o.redis_host[hl] = '\0';
        o.redis_port = (int)v;
        if (!is_loopback(o.redis_host)) {
            fprintf(stderr, "fr-bench: --redis '%s': loopback addresses only\n", o.redis);
            return 2;
        }
    }
    if (o.events > 0 && o.seconds > 0) {
        fprintf(stderr, "fr-bench: give --seconds or --events, not both\n");
        return 2;
    }
    /* how many events: fixed (events, or rate x seconds) or open (rate 0 for S seconds) */
    long long total = o.events > 0 ? o.events : -1;
    if (total < 0 && o.seconds > 0 && o.rate > 0)
        total = (long long)llround(o.rate * o.seconds);
    if (total < 0 && o.seconds <= 0)
        total = 100000;
    if (o.produce_only)
        o.probe_every = 0;
    int e2e = !o.produce_only && o.rate == 0 && o.stats_port > 0;
    const int preload = e2e && o.ready_file != NULL;
    if (o.ready_file && !preload) {
        fprintf(stderr, "fr-bench: --ready-file needs --rate 0 and --stats\n");
        return 2;
    }
    if ((o.model_topic || o.stop_pids) && (!o.mock_parts || !preload)) {
        fprintf(stderr, "fr-bench: --model-topic and --stop-pids need --mock-cluster (and its "
                        "--ready-file)\n");
        return 2;
    }
    /* keyspace notifications only where probes are timed: they cost Redis
     * about as much CPU again per SET as the SET itself (measured: 0.74 vs 1.52
     * µs with one pattern subscriber), which a throughput figure should not
     * carry; there the markers' keys are polled with EXISTS instead */
    int watching = !o.produce_only && o.probe_every > 0;
    int polling = !o.produce_only && e2e && !watching;

    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)ceil(o.timeout_s)); /* the backstop; loops check the deadline first */
    const double t_start = clock_mono_s(), deadline = t_start + o.timeout_s - 1;

    char tag[32];
    snprintf(
        tag, sizeof(tag), "%llx",
        (unsigned long long)(((uint64_t)wall_us() ^ ((uint64_t)getpid() << 20)) & 0xffffffffffULL));
    long nprobes_max = 0;
    if (o.probe_every > 0)
        nprobes_max = total > 0 ? (long)(total / o.probe_every) : MAX_PROBES;

    /* Redis: keyspace notifications on, and the watcher subscribed before producing */
    static watch_t w;
    redisContext *rc = NULL;
    char saved_notify[64] = "";
    int restore_notify = 0;
    pthread_t th;
    int th_started = 0;
    int rcode = 1;
    rd_kafka_t *rk = NULL;
    double *fresh = NULL;
    int64_t *probe_sent = NULL; /* produce time of each probe, wall µs */
    static leg_t legs[MAX_LEGS];
    int nlegs = 0;
    char leg_prefix[64];
    if (watching || polling) {
        struct timeval tv = {2, 0};
        rc = redisConnectWithTimeout(o.redis_host, o.redis_port, tv);
        if (!rc || rc->err) {
            fprintf(stderr, "fr-bench: redis %s: %s\n", o.redis, rc ? rc->errstr : "out of memory");
            goto out;
        }
    }
    if (watching) {
        struct timeval tv = {2, 0};
        redisReply *r = redisCommand(rc, "CONFIG GET notify-keyspace-events");
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->str) {
            snprintf(saved_notify, sizeof(saved_notify), "%s", r->element[1]->str);
            restore_notify = 1;
        }
        if (r)
            freeReplyObject(r);
        /* keep what was there, add K (keyspace) and $ (string commands) */
        char want[80];
        snprintf(want, sizeof(want), "%s%s%s", saved_notify, strchr(saved_notify, 'K') ? "" : "K",
                 strchr(saved_notify, '$') || strchr(saved_notify, 'A') ? "" : "$");
        r = redisCommand(rc, "CONFIG SET notify-keyspace-events %s", want);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "fr-bench: CONFIG SET notify-keyspace-events %s: %s\n", want,
                    r ? r->str : rc->errstr);
            if (r)
                freeReplyObject(r);
            goto out;
        }
        freeReplyObject(r);

        w.key_prefix_len =
            (size_t)snprintf(w.key_prefix, sizeof(w.key_prefix), "__keyspace@0__:%s:%s:u:probe-%s-",
                             o.prefix, o.model, tag);
        w.item_prefix_len =
            (size_t)snprintf(w.item_prefix, sizeof(w.item_prefix),
                             "__keyspace@0__:%s:%s:i:probe-%s-", o.prefix, o.model, tag);
        w.nprobes = nprobes_max;
        w.probe_at = calloc((size_t)(nprobes_max > 0 ? nprobes_max : 1), sizeof(*w.probe_at));
        w.item_at = calloc((size_t)(nprobes_max > 0 ? nprobes_max : 1), sizeof(*w.item_at));
        w.c = redisConnectWithTimeout(o.redis_host, o.redis_port, tv);
        if (!w.probe_at || !w.item_at || !w.c || w.c->err) {
            fprintf(stderr, "fr-bench: redis %s: %s\n", o.redis,
                    w.c ? w.c->errstr : "out of memory");
            goto out;
        }
        r = redisCommand(w.c, "PSUBSCRIBE %s* %s*", w.key_prefix, w.item_prefix);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "fr-bench: PSUBSCRIBE: %s\n", r ? "unexpected reply" : w.c->errstr);
            if (r)
                freeReplyObject(r);
            goto out;
        }
        freeReplyObject(r);
        if (pthread_create(&th, NULL, watch_main, &w)) {
            fprintf(stderr, "fr-bench: cannot start the watcher thread\n");
            goto out;
        }
        th_started = 1;
    }

    scrape_t base = {0}, now = {0};
    /* preloading: the daemon is started afterwards, fresh (base 0) */
    if (e2e && !preload && scrape(&o, &base)) {
        fprintf(stderr, "fr-bench: no /metrics on 127.0.0.1:%d%s\n", o.stats_port,
                o.nstats > 1 ? " (or another --stats port)" : "");
        goto out;
    }

    /* the producer */
    static dr_t dr;
    char err[512], lg[16];
    snprintf(lg, sizeof(lg), "%d", o.linger_ms);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", o.brokers, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "linger.ms", lg, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "queue.buffering.max.kbytes", "1048576", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err))) {
        fprintf(stderr, "fr-bench: %s\n", err);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    rd_kafka_conf_set_opaque(conf, &dr);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "fr-bench: %s\n", err);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    conf = NULL; /* owned by rk now */
    int nparts = partition_count(rk, o.topic);
    if (nparts <= 0) {
        fprintf(stderr, "fr-bench: topic %s: no metadata from %s\n", o.topic, o.brokers);
        goto out;
    }
    if (e2e && nparts > MAX_PARTS) {
        fprintf(stderr, "fr-bench: topic %s has %d partitions, more than %d\n", o.topic, nparts,
                MAX_PARTS);
        goto out;
    }

    snprintf(leg_prefix, sizeof(leg_prefix), "probe-%s-", tag);
    if (nprobes_max > 0)
        for (; nlegs < o.nlegs; nlegs++) {
            leg_t *l = &legs[nlegs];
            l->wait_ms = o.leg_wait[nlegs];
            l->nprobes = nprobes_max;
            l->prefix = leg_prefix;
            l->prefix_len = strlen(leg_prefix);
            if (!(l->at = calloc((size_t)nprobes_max, sizeof(int64_t))) ||
                leg_start(l, &o, tag, nparts, err, sizeof(err))) {
                fprintf(stderr, "fr-bench: %s\n", l->at ? err : "out of memory");
                nlegs++;
                goto out;
            }
        }

    /* --stop-pids: the daemons first, on an empty topic; stopped once live */
    double t_live = NAN; /* s from the brokers' address written to every daemon live */
    scrape_t at_cont = {0};
    if (o.stop_pids) {
        const double t_ready = clock_mono_s();
        if (write_ready(o.ready_file, o.brokers))
            goto out;
        while (scrape(&o, &at_cont) || !all_live(&o, &at_cont, nparts)) {
            if (clock_mono_s() > deadline) {
                fprintf(stderr,
                        "fr-bench: the daemons did not all consume from %s (%.0f of %d "
                        "partitions live, %d of %d members, %.0f of %d consuming)\n",
                        o.brokers, at_cont.live, nparts, at_cont.members_live, o.nstats,
                        at_cont.consuming, o.nstats);
                goto out;
            }
            sleep_s(0.02);
        }
        t_live = clock_mono_s() - t_ready;
        if (stop_daemons(&o))
            goto out;
        /* stopped: this scrape is what they had done before the backlog */
        base = at_cont;
    }

    /* the load */
    rng_t rng;
    rng_seed(&rng, o.seed);
    if (nprobes_max && !(probe_sent = calloc((size_t)nprobes_max, sizeof(int64_t)))) {
        fprintf(stderr, "fr-bench: out of memory\n");
        goto out;
    }
    char val[2 * EVENT_MAX_ID + 128], user[96], item[96];
    long long i = 0;
    long nprobes = 0;
    const double t0 = clock_mono_s();
    int64_t t0_wall = wall_us();
    int failed = 0;
    for (;; i++) {
        if (total >= 0 ? i >= total : clock_mono_s() - t0 >= o.seconds)
            break;
        if (clock_mono_s() > deadline) {
            fprintf(stderr, "fr-bench: timeout while producing\n");
            failed = 1;
            break;
        }
        if (o.rate > 0) {
            /* paced: event i is due at t0 + i / rate. Ahead of time, sleep a
             * whole millisecond and then produce every event due by then: a
             * sleep per event (20 µs apart at 50,000/s) cost this process
             * half a core, taken from the daemon it measures */
            double due = t0 + (double)i / o.rate;
            for (double t = clock_mono_s(); t < due; t = clock_mono_s()) {
                sleep_s(0.001);
                rd_kafka_poll(rk, 0);
                for (int k = 0; k < nlegs; k++)
                    leg_drain(&legs[k]);
            }
        }
        int probe = o.probe_every > 0 && (i + 1) % o.probe_every == 0 && nprobes < nprobes_max;
        int ul = probe ? snprintf(user, sizeof(user), "probe-%s-%ld", tag, nprobes)
                       : snprintf(user, sizeof(user), "u%u", rng_below(&rng, (uint32_t)o.users));
        int il = probe ? snprintf(item, sizeof(item), "probe-%s-%ld", tag, nprobes)
                       : snprintf(item, sizeof(item), "i%u", rng_below(&rng, (uint32_t)o.items));
        int64_t sent = wall_us();
        size_t vl = event_encode(val, sizeof(val), user, (size_t)ul, item, (size_t)il, "click",
                                 sent / 1000);
        if (probe)
            probe_sent[nprobes++] = sent;
        if (!vl || produce(rk, o.topic, RD_KAFKA_PARTITION_UA, user, (size_t)ul, val, vl,
                           sent / 1000, deadline)) {
            failed = 1;
            break;
        }
        if ((i & 63) == 0) {
            rd_kafka_poll(rk, 0);
            for (int k = 0; k < nlegs; k++)
                leg_drain(&legs[k]);
        }
    }
    const long long produced = i;
    /* one marker per partition, behind everything produced to it */
    if (e2e && !failed)
        for (int p = 0; p < nparts; p++) {
            int ul = marker_user(user, sizeof(user), tag, p);
            int64_t sent = wall_us();
            size_t vl =
                event_encode(val, sizeof(val), user, (size_t)ul, "i0", 2, "click", sent / 1000);
            if (!vl || produce(rk, o.topic, p, user, (size_t)ul, val, vl, sent / 1000, deadline)) {
                failed = 1;
                break;
            }
        }
    const double t_last = clock_mono_s();
    const long long markers = e2e ? nparts : 0;

    /* preloading: everything acknowledged, then the daemon is let in; the
     * clock starts at the first scrape that shows consumed events. The loop
     * answers scrapes between turns, and a first turn of a backlog takes up
     * to 8 batches: the events consumed by then (c_first) are not counted.
     * With --stop-pids the daemons were up and stopped: the clock starts at
     * their SIGCONT, over every event. */
    double t_first = NAN, t_acked = NAN, c_first = 0;
    if (preload && !failed) {
        while (rd_kafka_outq_len(rk) > 0 && clock_mono_s() < deadline)
            rd_kafka_poll(rk, 10);
        t_acked = clock_mono_s();
        if (o.stop_pids) {
            resume_daemons();
            t_first = clock_mono_s();
            c_first = at_cont.consumed > 0 ? at_cont.consumed : 0;
        } else if (write_ready(o.ready_file, o.brokers)) {
            failed = 1;
        }
        while (!failed && !o.stop_pids) {
            if (scrape(&o, &now) == 0 && now.consumed > 0) {
                t_first = clock_mono_s();
                c_first = now.consumed;
                break;
            }
            if (clock_mono_s() > deadline) {
                fprintf(stderr, "fr-bench: no daemon consumed from %s\n", o.brokers);
                failed = 1;
            }
            sleep_s(0.002);
        }
    }

    /* wait: acknowledgements, probes, learning; at most drain_s after the last produce */
    double t_done = NAN, next_scrape = 0;
    const double wait_until = fmin((preload ? t_first : t_last) + o.drain_s, deadline);
    int scrape_errors = 0;
    long first_missing = 0, item_first_missing = 0, leg_first_missing[MAX_LEGS] = {0};
    while (!failed) {
        rd_kafka_poll(rk, 0);
        int legs_in = 1;
        for (int k = 0; k < nlegs; k++) {
            leg_drain(&legs[k]);
            while (leg_first_missing[k] < nprobes && legs[k].at[leg_first_missing[k]])
                leg_first_missing[k]++;
            legs_in = legs_in && leg_first_missing[k] == nprobes;
        }
        double t = clock_mono_s();
        if (isnan(t_acked) && rd_kafka_outq_len(rk) == 0)
            t_acked = t;
        while (first_missing < nprobes && atomic_load(&w.probe_at[first_missing]) != 0)
            first_missing++;
        while (item_first_missing < nprobes && atomic_load(&w.item_at[item_first_missing]) != 0)
            item_first_missing++;
        int probes_in = first_missing == nprobes && item_first_missing == nprobes;
        if (e2e && isnan(t_done) && t >= next_scrape) {
            int markers_in = 1;
            if (polling)
                markers_in = markers_set(rc, &o, tag, nparts, &w, &failed);
            for (int p = 0; p < nparts && markers_in; p++)
                markers_in = atomic_load(&w.marker_at[p]) != 0;
            next_scrape = t + 0.005;
            if (markers_in) {
                if (scrape(&o, &now) == 0) {
                    double handled = (now.learned - base.learned) + (now.skipped - base.skipped) +
                                     (now.refused - base.refused);
                    /* members: and every one has read the model log to its end */
                    if (handled >= (double)(produced + markers) && now.dirty == 0 &&
                        (isnan(now.lag) || now.lag == 0))
                        t_done = clock_mono_s();
                } else {
                    scrape_errors++;
                }
            }
        }
        if (!isnan(t_acked) && probes_in && legs_in && (!e2e || !isnan(t_done)))
            break;
        if (t > wait_until)
            break;
        if (w.err[0])
            break;
        sleep_s(0.001);
    }
    atomic_store(&w.stop, 1);
    if (th_started) {
        pthread_join(th, NULL);
        th_started = 0;
    }
    if (w.err[0])
        fprintf(stderr, "fr-bench: %s\n", w.err);
    if (e2e)
        scrape(&o, &now); /* the final state, for the report */

    /* ---- report */
    double produce_s = t_last - t0;
    double acked_s = isnan(t_acked) ? NAN : t_acked - t0;
    double produce_rate = produced / (produce_s > 0 ? produce_s : 1e-9);
    double acked_rate = isnan(acked_s) ? NAN : (produced + markers) / acked_s;
    char ratebuf[64] = "as fast as possible";
    if (o.rate > 0)
        snprintf(ratebuf, sizeof(ratebuf), "target %.0f events/s", o.rate);
    printf("fr-bench: %s, topic %s (%d partitions), %s, producer linger.ms %d\n",
           o.produce_only ? "produce only" : (e2e ? "end to end" : "freshness"), o.topic, nparts,
           ratebuf, o.linger_ms);
    printf("fr-bench: produced %lld events (%ld probes%s) in %.3f s: %.0f events/s offered\n",
           produced, nprobes, markers ? ", plus one end marker per partition" : "", produce_s,
           produce_rate);
    if (isnan(acked_s))
        printf("fr-bench: NOT all acknowledged: %llu delivered, %llu failed (%s), %d in the "
               "queue\n",
               (unsigned long long)dr.ok, (unsigned long long)dr.failed, dr.first_err,
               rd_kafka_outq_len(rk));
    else
        printf("fr-bench: all %llu acknowledged by the broker after %.3f s: %.0f events/s "
               "produced%s\n",
               (unsigned long long)dr.ok, acked_s, acked_rate, dr.failed ? " (some FAILED)" : "");
    double e2e_s = NAN, e2e_rate = NAN;
    if (e2e) {
        double handled = (now.learned - base.learned) + (now.skipped - base.skipped) +
                         (now.refused - base.refused);
        if (!isnan(t_done) && preload) {
            e2e_s = t_done - t_first;
            /* all consumed by the first scrape: too few events to time */
            e2e_rate = (double)(produced + markers) > c_first
                           ? ((double)(produced + markers) - c_first) / e2e_s
                           : NAN;
            if (o.stop_pids)
                printf("fr-bench: %d daemon(s)%s, every one consuming %.3f s after the brokers' "
                       "address was written, then stopped while the events were preloaded, "
                       "consumed, learned and published %.0f events (%.0f preloaded and "
                       "markers) in %.3f s from their SIGCONT: %.0f events/s sustained (skipped "
                       "%.0f, refused %.0f)\n",
                       o.nstats, isnan(at_cont.live) ? "" : " (members of one model)", t_live,
                       handled, (double)(produced + markers) - c_first, e2e_s, e2e_rate,
                       now.skipped - base.skipped, now.refused - base.refused);
            else
                printf("fr-bench: the daemon consumed, learned and published %.0f preloaded "
                       "events; the last %.0f in %.3f s from the first scrape that showed any "
                       "consumed (%.0f by then): %.0f events/s sustained (skipped %.0f, refused "
                       "%.0f)\n",
                       handled, (double)(produced + markers) - c_first, e2e_s, c_first, e2e_rate,
                       now.skipped - base.skipped, now.refused - base.refused);
            if (o.stop_pids && !isnan(at_cont.live))
                printf("fr-bench: while timed, the members produced %.0f claim(s) (more than "
                       "none: a rebalance or a resync) and %.0f resync(s); model-log gaps: %.0f\n",
                       now.claims - at_cont.claims, now.resyncs - at_cont.resyncs, now.gaps);
        } else if (!isnan(t_done)) {
            e2e_s = t_done - t0;
            e2e_rate = (produced + markers) / e2e_s;
            printf("fr-bench: learned and published %.0f events in %.3f s from the first "
                   "produce: %.0f events/s end to end (%.3f s after the last produce; skipped "
                   "%.0f, refused %.0f)\n",
                   handled, e2e_s, e2e_rate, t_done - t_last, now.skipped - base.skipped,
                   now.refused - base.refused);
        } else {
            int mk = 0;
            for (int p = 0; p < nparts; p++)
                mk += atomic_load(&w.marker_at[p]) != 0;
            printf("fr-bench: NOT all learned and published within %.0f s after the last "
                   "produce: %.0f of %lld events handled, dirty keys %.0f, %d/%d markers "
                   "seen%s\n",
                   o.drain_s, handled, produced + markers, now.dirty, mk, nparts,
                   scrape_errors ? " (some /metrics scrapes failed)" : "");
        }
    }
    long seen = 0;
    double p50 = NAN, p99 = NAN, pmax = NAN, pmin = NAN;
    if (nprobes) {
        fresh = malloc(sizeof(double) * (size_t)nprobes);
        if (!fresh)
            goto out;
        for (long n = 0; n < nprobes; n++) {
            int64_t at = atomic_load(&w.probe_at[n]);
            if (at)
                fresh[seen++] = (double)(at - probe_sent[n]) / 1000.0;
        }
        qsort(fresh, (size_t)seen, sizeof(double), cmp_double);
        p50 = pct(fresh, seen, 50);
        p99 = pct(fresh, seen, 99);
        pmax = seen ? fresh[seen - 1] : NAN;
        pmin = seen ? fresh[0] : NAN;
        printf("fr-bench: freshness (produce -> SET notified by Redis) over %ld/%ld probes: "
               "p50 %.1f ms, p99 %.1f ms, max %.1f ms (min %.1f ms)\n",
               seen, nprobes, p50, p99, pmax, pmin);
        if (seen < nprobes) {
            printf("fr-bench: %ld probes MISSING after waiting %.0f s, e.g.", nprobes - seen,
                   o.drain_s);
            int shown = 0;
            for (long n = 0; n < nprobes && shown < 5; n++)
                if (!atomic_load(&w.probe_at[n])) {
                    printf(" probe-%s-%ld", tag, n);
                    shown++;
                }
            printf("\n");
        }
    }
    long item_seen = 0;
    double ip50 = NAN, ip99 = NAN, ipmax = NAN;
    if (nprobes) {
        for (long n = 0; n < nprobes; n++) {
            int64_t at = atomic_load(&w.item_at[n]);
            if (at)
                fresh[item_seen++] = (double)(at - probe_sent[n]) / 1000.0;
        }
        qsort(fresh, (size_t)item_seen, sizeof(double), cmp_double);
        ip50 = pct(fresh, item_seen, 50);
        ip99 = pct(fresh, item_seen, 99);
        ipmax = item_seen ? fresh[item_seen - 1] : NAN;
        printf("fr-bench: new-item freshness (produce -> SET of the new item's vector notified by "
               "Redis) over %ld/%ld probes: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
               item_seen, nprobes, ip50, ip99, ipmax);
    }
    double leg_p50[MAX_LEGS], leg_p99[MAX_LEGS], leg_max[MAX_LEGS];
    long leg_seen[MAX_LEGS];
    for (int k = 0; k < nlegs; k++) {
        long ls = 0;
        for (long n = 0; n < nprobes; n++)
            if (legs[k].at[n])
                fresh[ls++] = (double)(legs[k].at[n] - probe_sent[n]) / 1000.0;
        qsort(fresh, (size_t)ls, sizeof(double), cmp_double);
        leg_seen[k] = ls;
        leg_p50[k] = pct(fresh, ls, 50);
        leg_p99[k] = pct(fresh, ls, 99);
        leg_max[k] = ls ? fresh[ls - 1] : NAN;
        char wbuf[32] = "default";
        if (legs[k].wait_ms >= 0)
            snprintf(wbuf, sizeof(wbuf), "%d ms", legs[k].wait_ms);
        printf("fr-bench: Kafka leg alone (produce -> a plain consumer, fetch.wait.max.ms %s) over "
               "%ld/%ld probes: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
               wbuf, ls, nprobes, leg_p50[k], leg_p99[k], leg_max[k]);
    }
    int ok = !failed && !isnan(t_acked) && dr.failed == 0 && seen == nprobes &&
             item_seen == nprobes && (!e2e || !isnan(t_done)) && !w.err[0];
    printf("{\"mode\":\"%s\",\"topic\":\"%s\",\"partitions\":%d,\"rate_target\":%.0f,"
           "\"events\":%lld,\"markers\":%lld,",
           o.produce_only ? "produce_only"
                          : (preload ? "sustained" : (e2e ? "end_to_end" : "freshness")),
           o.topic, nparts, o.rate, produced, markers);
    json_num(stdout, "produce_seconds", produce_s, 0);
    json_num(stdout, "produce_events_per_s", produce_rate, 0);
    json_num(stdout, "acked_seconds", acked_s, 0);
    json_num(stdout, "acked_events_per_s", acked_rate, 0);
    json_num(stdout, "e2e_seconds", e2e_s, 0);
    json_num(stdout, "e2e_events_per_s", e2e_rate, 0);
    printf("\"probes\":%ld,\"probes_seen\":%ld,\"probes_missing\":%ld,", nprobes, seen,
           nprobes - seen);
    json_num(stdout, "fresh_p50_ms", p50, 0);
    json_num(stdout, "fresh_p99_ms", p99, 0);
    json_num(stdout, "fresh_max_ms", pmax, 0);
    json_num(stdout, "fresh_min_ms", pmin, 0);
    json_num(stdout, "item_fresh_p50_ms", ip50, 0);
    json_num(stdout, "item_fresh_p99_ms", ip99, 0);
    json_num(stdout, "item_fresh_max_ms", ipmax, 0);
    printf("\"kafka_leg\":[");
    for (int k = 0; k < nlegs; k++) {
        printf("%s{\"fetch_wait_max_ms\":%d,\"seen\":%ld,", k ? "," : "", legs[k].wait_ms,
               leg_seen[k]);
        json_num(stdout, "p50_ms", leg_p50[k], 0);
        json_num(stdout, "p99_ms", leg_p99[k], 0);
        json_num(stdout, "max_ms", leg_max[k], 1);
        printf("}");
    }
    printf("],");
    if (o.stop_pids) { /* the group's join; members: claims and resyncs while timed */
        printf("\"daemons\":%d,", o.nstats);
        json_num(stdout, "live_after_s", t_live, 0);
        json_num(stdout, "drain_claims", now.claims - at_cont.claims, 0);
        json_num(stdout, "drain_resyncs", now.resyncs - at_cont.resyncs, 0);
        json_num(stdout, "log_gaps", now.gaps, 0);
    }
    printf("\"ok\":%s,\"start_wall_ms\":%lld}\n", ok ? "true" : "false",
           (long long)(t0_wall / 1000));
    fflush(stdout);
    rcode = ok ? 0 : 1;
out:
    resume_daemons();
    atomic_store(&w.stop, 1);
    if (th_started)
        pthread_join(th, NULL);
    for (int k = 0; k < nlegs; k++)
        leg_free(&legs[k]);
    if (rk) {
        rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(rk, 1000);
        rd_kafka_destroy(rk);
    }
    if (rc && restore_notify) {
        redisReply *r = redisCommand(rc, "CONFIG SET notify-keyspace-events %s", saved_notify);
        if (r)
            freeReplyObject(r);
    }
    if (rc)
        redisFree(rc);
    if (w.c)
        redisFree(w.c);
    if (mock) { /* the daemon may still be connected: up until the caller removes the file */
        fflush(stdout);
        const double until = t_start + o.timeout_s - 0.5;
        while (access(o.ready_file, F_OK) == 0 && clock_mono_s() < until)
            sleep_s(0.05);
        rd_kafka_mock_cluster_destroy(mock);
        rd_kafka_destroy(mock_rk);
    }
    free((void *)w.probe_at);
    free((void *)w.item_at);
    free(probe_sent);
    free(fresh);
    return rcode;
}
