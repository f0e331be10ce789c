/* harness.c — real servers for integration tests (see harness.h). */
#define _GNU_SOURCE
#include "harness.h"

#include "ctrdata.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define MAX_CHILDREN 64
static pid_t children[MAX_CHILDREN];
static int nchildren, registered;

static void kill_all(void)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
}

static void track(pid_t pid)
{
    if (!registered) {
        atexit(kill_all);
        registered = 1;
    }
    for (int i = 0; i < nchildren; i++)
        if (children[i] == 0) {
            children[i] = pid;
            return;
        }
    if (nchildren < MAX_CHILDREN)
        children[nchildren++] = pid;
}

static void untrack(pid_t pid)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i] == pid)
            children[i] = 0;
}

double harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int harness_free_port(void)
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

static int redis_ping(int port)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

pid_t harness_redis_start(int port)
{
    return harness_redis_start_with(port, NULL);
}

pid_t harness_redis_start_with(int port, const char *const *extra)
{
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    const char *argv[40] = {
        "redis-server", "--port", ps,           "--bind",  "127.0.0.1",        "--save", "",
        "--appendonly", "no",     "--loglevel", "warning", "--protected-mode", "yes"};
    int argc = 13;
    for (int k = 0; extra && extra[k] && argc < 39; k++)
        argv[argc++] = extra[k];
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            close(null);
        }
        execvp("redis-server", (char *const *)argv);
        fprintf(stderr, "harness: cannot run redis-server: %s\n", strerror(errno));
        _exit(127);
    }
    track(pid);
    double t0 = harness_now_ms();
    while (harness_now_ms() - t0 < 5000) {
        if (redis_ping(port))
            return pid;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            untrack(pid);
            return -1;
        }
        usleep(10000);
    }
    harness_stop(pid);
    return -1;
}

static int rcluster_node_ok(int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "CLUSTER INFO");
        ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok") &&
             strstr(r->str, "cluster_slots_ok:16384") && strstr(r->str, "cluster_size:3");
        if (r)
            freeReplyObject(r);
        /* a replica that never synced with its master would not replace it */
        r = ok ? redisCommand(c, "INFO replication") : NULL;
        ok = r && r->type == REDIS_REPLY_STRING &&
             (strstr(r->str, "role:master") || strstr(r->str, "master_link_status:up"));
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

int harness_rcluster_wait_ok(harness_rcluster_t *c, int timeout_ms)
{
    double t0 = harness_now_ms();
    while (harness_now_ms() - t0 < timeout_ms) {
        int ok = 1;
        for (int i = 0; i < HARNESS_RC_NODES && ok; i++)
            ok = c->pid[i] <= 0 || rcluster_node_ok(c->port[i]);
        if (ok)
            return 0;
        usleep(100000);
    }
    return -1;
}

int harness_rcluster_start(harness_rcluster_t *c)
{
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < HARNESS_RC_NODES; i++)
        c->pid[i] = -1;
    snprintf(c->dir, sizeof(c->dir), "/tmp/fr-rcluster-XXXXXX");
    if (!mkdtemp(c->dir))
        return -1;
    harness_log_path(c->log, sizeof(c->log), "rcluster");
    char addr[HARNESS_RC_NODES][32];
    char *argv[HARNESS_RC_NODES + 8];
    int argc = 0;
    argv[argc++] = "/usr/bin/redis-cli";
    argv[argc++] = "--cluster";
    argv[argc++] = "create";
    for (int i = 0; i < HARNESS_RC_NODES; i++) {
        /* two free ports, different: the client's and the bus's */
        int dup;
        do {
            c->port[i] = harness_free_port();
            c->bus[i] = harness_free_port();
            dup = c->port[i] == c->bus[i];
            for (int j = 0; j < i; j++)
                dup |= c->port[j] == c->port[i] || c->bus[j] == c->bus[i] ||
                       c->port[j] == c->bus[i] || c->bus[j] == c->port[i];
        } while (dup);
        char bus[16], conf[48];
        snprintf(bus, sizeof(bus), "%d", c->bus[i]);
        snprintf(conf, sizeof(conf), "nodes-%d.conf", c->port[i]);
        const char *extra[] = {"--cluster-enabled",
                               "yes",
                               "--cluster-port",
                               bus,
                               "--cluster-config-file",
                               conf,
                               "--cluster-node-timeout",
                               "2000",
                               "--dir",
                               c->dir,
                               NULL};
        if ((c->pid[i] = harness_redis_start_with(c->port[i], extra)) < 0)
            goto err;
        snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%d", c->port[i]);
        argv[argc++] = addr[i];
    }
    argv[argc++] = "--cluster-replicas";
    argv[argc++] = "1";
    argv[argc++] = "--cluster-yes";
    argv[argc] = NULL;
    pid_t cli = harness_spawn(argv, c->log);
    if (cli < 0 || harness_wait(cli, 60000) != 0 || harness_rcluster_wait_ok(c, 30000) < 0)
        goto err;
    return 0;
err:
    harness_rcluster_stop(c);
    return -1;
}

void harness_rcluster_stop(harness_rcluster_t *c)
{
    for (int i = 0; i < HARNESS_RC_NODES; i++) {
        if (c->pid[i] > 0) {
            kill(c->pid[i], SIGCONT);
            harness_stop(c->pid[i]);
        }
        c->pid[i] = -1;
    }
    if (c->dir[0])
        harness_rmtree(c->dir);
    c->dir[0] = '\0';
}

void harness_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
    double t0 = harness_now_ms();
    while (harness_now_ms() - t0 < 3000) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            untrack(pid);
            return;
        }
        usleep(5000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    untrack(pid);
}

void harness_signal(pid_t pid, int sig)
{
    if (pid > 0)
        kill(pid, sig);
}

int harness_loop_until(struct event_base *base, int (*pred)(void *), void *arg, int timeout_ms)
{
    double t0 = harness_now_ms();
    while (!pred(arg) && harness_now_ms() - t0 < timeout_ms) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    return pred(arg);
}

pid_t harness_spawn(char *const argv[], const char *logpath)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        fprintf(stderr, "harness: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    track(pid);
    return pid;
}

int harness_wait(pid_t pid, int timeout_ms)
{
    double t0 = harness_now_ms();
    int st;
    while (harness_now_ms() - t0 < timeout_ms) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            untrack(pid);
            if (WIFEXITED(st))
                return WEXITSTATUS(st);
            return 128 + WTERMSIG(st);
        }
        usleep(5000);
    }
    return -1;
}

int harness_http_get(int port, const char *path, char *buf, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
        close(fd);
        return -1;
    }
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    static char resp[1 << 20];
    ssize_t r;
    while (got < sizeof(resp) - 1 && (r = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
        got += (size_t)r;
    close(fd);
    resp[got] = '\0';
    int status = -1;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    const char *body = strstr(resp, "\r\n\r\n");
    body = body ? body + 4 : resp + got;
    snprintf(buf, cap, "%s", body);
    return status;
}

double harness_metric(const char *text, const char *sample)
{
    size_t n = strlen(sample);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, sample, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return NAN;
}

int harness_kafka_start(harness_kafka_t *k, int partitions)
{
    char err[256];
    memset(k, 0, sizeof(*k));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
    if (!(k->owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))))
        return -1;
    if (!(k->mock = rd_kafka_mock_cluster_new(k->owner, 1)))
        return -1;
    snprintf(k->brokers, sizeof(k->brokers), "%s", rd_kafka_mock_cluster_bootstraps(k->mock));
    rd_kafka_mock_topic_create(k->mock, "events", partitions, 1);
    rd_kafka_mock_topic_create(k->mock, "events.dead", 1, 1);
    conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", k->brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err));
    rd_kafka_conf_set(conf, "log_level", "2", err, sizeof(err));
    /* a produce request retried after the broker went down mid-request, or
     * after an error the broker returned, appends its events once: without
     * it a retried batch the broker had already written is written twice,
     * and a test that counts events against the partitions' ends fails */
    if (rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "harness: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    /* a request lost to a broker taken down is retried after 5 s, not 60 */
    rd_kafka_conf_set(conf, "socket.timeout.ms", "5000", err, sizeof(err));
    if (!(k->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))))
        return -1;
    return 0;
}

void harness_kafka_stop(harness_kafka_t *k)
{
    if (k->prod)
        rd_kafka_destroy(k->prod);
    if (k->mock)
        rd_kafka_mock_cluster_destroy(k->mock);
    if (k->owner)
        rd_kafka_destroy(k->owner);
    memset(k, 0, sizeof(*k));
}

void harness_kafka_produce(harness_kafka_t *k, const char *key, const void *val, size_t len)
{
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            k->prod, RD_KAFKA_V_TOPIC("events"), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)val, len), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return;
        rd_kafka_poll(k->prod, 10);
    }
}

long harness_kafka_produce_ctr(harness_kafka_t *k, const ctrdata_t *cd, long *clicks)
{
    long n = 0, nclick = 0;
    for (size_t i = 0; i < cd->n; i++) {
        const ctr_example_t *e = &cd->ex[i];
        json_t *cat = json_object(), *num = json_object();
        const char *user = "", *item = "";
        for (int j = 0; j < e->ncat; j++) {
            const char *name = cd->cat_names[e->cat[j].field];
            if (!strcmp(name, "user"))
                user = e->cat[j].value.id;
            else if (!strcmp(name, "item"))
                item = e->cat[j].value.id;
            else
                json_object_set_new(cat, name, json_string(e->cat[j].value.id));
        }
        for (int j = 0; j < e->nnum; j++)
            json_object_set_new(num, cd->num_names[e->num[j].field], json_real(e->num[j].value));
        for (int click = 0; click <= (e->label > 0.5f); click++) {
            json_t *ev = json_pack("{s:s, s:s, s:s, s:I, s:O, s:O}", "user", user, "item", item,
                                   "type", click ? "click" : "impression", "ts",
                                   (json_int_t)(e->ts_ms + click), "cat", cat, "num", num);
            char *s = json_dumps(ev, JSON_COMPACT);
            harness_kafka_produce(k, user, s, strlen(s));
            free(s);
            json_decref(ev);
            nclick += click;
            n++;
        }
        json_decref(cat);
        json_decref(num);
    }
    if (clicks)
        *clicks = nclick;
    return n;
}

int harness_kafka_flush(harness_kafka_t *k, int timeout_ms)
{
    return rd_kafka_flush(k->prod, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

int harness_kafka_committed(harness_kafka_t *k, const char *group, int n, long long *out)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", k->brokers, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "log_level", "2", err, sizeof(err))) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!c) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(l, "events", p);
    int rc = rd_kafka_committed(c, l, 10000) ? -1 : 0;
    for (int p = 0; p < n && rc == 0; p++) {
        rd_kafka_topic_partition_t *e = rd_kafka_topic_partition_list_find(l, "events", p);
        out[p] = e && !e->err ? (long long)e->offset : -1;
        if (!e || e->err)
            rc = -1;
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
    return rc;
}

int harness_kafka_ends(harness_kafka_t *k, int n, long long *out)
{
    for (int p = 0; p < n; p++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(k->prod, "events", p, &lo, &hi, 10000))
            return -1;
        out[p] = (long long)hi;
    }
    return 0;
}

const char *harness_build(void)
{
    const char *b = getenv("BUILD");
    return b && *b ? b : "build";
}

void harness_log_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/tests/%s.log", harness_build(), name);
    unlink(buf);
}

int harness_rmtree(const char *dir)
{
    char cmd[600];
    int n = snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (n < 0 || (size_t)n >= sizeof(cmd) || strchr(dir, '\''))
        return -1;
    return system(cmd) == 0 ? 0 : -1;
}

/* freshrecd on these servers, reading conf (-c) first when it is not NULL */
static pid_t daemon_spawn(const char *conf, const char *brokers, int redis_port, int stats_port,
                          const char *const *extra, const char *logpath)
{
    char bin[256], b[300], r[64], s[64];
    snprintf(bin, sizeof(bin), "%s/freshrecd", harness_build());
    snprintf(b, sizeof(b), "kafka.brokers=%s", brokers);
    snprintf(r, sizeof(r), "redis.port=%d", redis_port);
    snprintf(s, sizeof(s), "stats.port=%d", stats_port);
    char *argv[64] = {bin};
    int n = 1;
    if (conf) {
        argv[n++] = "-c";
        argv[n++] = (char *)conf;
    }
    const char *sets[3] = {b, r, s};
    for (int i = 0; i < 3; i++) {
        argv[n++] = "--set";
        argv[n++] = (char *)sets[i];
    }
    for (int i = 0; extra && extra[i] && n < 60; i++) {
        argv[n++] = "--set";
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    return harness_spawn(argv, logpath);
}

pid_t harness_daemon_start(const char *brokers, int redis_port, int stats_port,
                           const char *const *extra, const char *logpath)
{
    return daemon_spawn(NULL, brokers, redis_port, stats_port, extra, logpath);
}

int harness_daemon_healthy(int stats_port, int timeout_ms)
{
    char body[256];
    double t0 = harness_now_ms();
    do {
        if (harness_http_get(stats_port, "/healthz", body, sizeof(body)) == 200)
            return 1;
        usleep(50000);
    } while (harness_now_ms() - t0 < timeout_ms);
    return 0;
}

int harness_daemon_vector(int stats_port, char side, const char *id, unsigned char *out, size_t cap)
{
    static char body[65536];
    char path[256];
    snprintf(path, sizeof(path), "/vector?%s=%s", side == 'u' ? "user" : "item", id);
    int code = harness_http_get(stats_port, path, body, sizeof(body));
    if (code == 404)
        return 0;
    if (code != 200)
        return -1;
    json_t *j = json_loads(body, 0, NULL);
    const char *hex = j ? json_string_value(json_object_get(j, "f32le")) : NULL;
    size_t n = hex ? strlen(hex) / 2 : 0;
    int ok = hex && n <= cap;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned v;
        ok = sscanf(hex + 2 * i, "%2x", &v) == 1;
        out[i] = (unsigned char)v;
    }
    json_decref(j);
    return ok ? (int)n : -1;
}

double harness_daemon_metric(int stats_port, const char *sample)
{
    static char text[1 << 20];
    if (harness_http_get(stats_port, "/metrics", text, sizeof(text)) != 200)
        return NAN;
    return harness_metric(text, sample);
}

int harness_log_count(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) != -1)
        n += strstr(line, needle) != NULL;
    free(line);
    fclose(f);
    return n;
}

void harness_log_tail(const char *path, int n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "(no log at %s)\n", path);
        return;
    }
    long total = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) != -1)
        total++;
    rewind(f);
    fprintf(stderr, "--- last %d of %ld lines of %s\n", n, total, path);
    for (long i = 0; getline(&line, &cap, f) != -1; i++)
        if (i >= total - n)
            fputs(line, stderr);
    fprintf(stderr, "--- end of %s\n", path);
    free(line);
    fclose(f);
}

int harness_log_wait(const char *path, const char *needle, int timeout_ms)
{
    double t0 = harness_now_ms();
    do {
        if (harness_log_count(path, needle))
            return 1;
        usleep(50000);
    } while (harness_now_ms() - t0 < timeout_ms);
    return 0;
}

int harness_ckpt_v1_write(const char *path, const void *payload, size_t len)
{
    static const char magic[8] = {'F', 'R', 'C', 'K', 'P', 'T', 0, 1};
    uint32_t version = 1;
    uint64_t trailer[2] = {len, XXH3_64bits(payload, len)};
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(magic, 1, 8, f) == 8 && fwrite(&version, 4, 1, f) == 1 &&
             fwrite(payload, 1, len, f) == len && fwrite(trailer, 8, 2, f) == 2;
    return fclose(f) == 0 && ok ? 0 : -1;
}

int harness_mem_write(void *ctx, const void *b, size_t n)
{
    harness_membuf_t *m = ctx;
    if (m->len + n > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 1 << 20;
        while (nc < m->len + n)
            nc *= 2;
        char *p = realloc(m->buf, nc);
        if (!p)
            return -1;
        m->buf = p;
        m->cap = nc;
    }
    memcpy(m->buf + m->len, b, n);
    m->len += n;
    return 0;
}

int harness_mem_read(void *ctx, void *b, size_t n)
{
    harness_membuf_t *m = ctx;
    if (m->pos + n > m->len)
        return -1;
    memcpy(b, m->buf + m->pos, n);
    m->pos += n;
    return 0;
}

int harness_stack_start(harness_stack_t *s, const harness_stack_opts_t *opts)
{
    memset(s, 0, sizeof(*s));
    s->redis = s->daemon = -1;
    harness_log_path(s->log, sizeof(s->log), opts->name);
    if (opts->conf)
        snprintf(s->conf, sizeof(s->conf), "%s", opts->conf);
    s->redis_port = harness_free_port();
    s->stats_port = harness_free_port();
    if ((s->redis = harness_redis_start(s->redis_port)) < 0)
        goto err;
    if (harness_kafka_start(&s->kafka, opts->partitions > 0 ? opts->partitions : 1) < 0)
        goto err;
    if (!opts->no_daemon && harness_stack_daemon_start(s, opts->extra) < 0)
        goto err;
    return 0;
err:
    harness_stack_stop(s);
    return -1;
}

int harness_stack_daemon_start(harness_stack_t *s, const char *const *extra)
{
    s->daemon = daemon_spawn(s->conf[0] ? s->conf : NULL, s->kafka.brokers, s->redis_port,
                             s->stats_port, extra, s->log);
    if (s->daemon < 0)
        return -1;
    if (!harness_daemon_healthy(s->stats_port, 30000)) {
        harness_stop(s->daemon);
        s->daemon = -1;
        return -1;
    }
    return 0;
}

int harness_stack_daemon_stop(harness_stack_t *s)
{
    if (s->daemon <= 0)
        return 0;
    kill(s->daemon, SIGTERM);
    int st = harness_wait(s->daemon, 20000);
    if (st < 0)
        harness_stop(s->daemon); /* SIGKILL after 3 more seconds */
    s->daemon = -1;
    return st;
}

int harness_stack_stop(harness_stack_t *s)
{
    if (s->redis > 0)
        harness_signal(s->redis, SIGCONT); /* a failed test may leave it stopped */
    int st = harness_stack_daemon_stop(s);
    harness_kafka_stop(&s->kafka);
    harness_stop(s->redis);
    s->redis = -1;
    return st;
}

unsigned long long harness_seed(const char *what)
{
    const char *env = getenv("FRESHREC_SEED");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long seed =
        env && *env ? strtoull(env, NULL, 10)
                    : ((uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec) % 1000000007u;
    printf("seed %llu (FRESHREC_SEED=%llu replays %s)\n", seed, seed, what);
    fflush(stdout);
    return seed;
}
