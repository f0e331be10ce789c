/* harness.h — real servers for integration tests: free loopback ports, a
 * redis-server per test, stopped whatever the outcome (at exit, and with the
 * test process through PR_SET_PDEATHSIG). Not for: production code. */
#ifndef FR_HARNESS_H
#define FR_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

struct event_base;

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int harness_free_port(void);
/* Starts redis-server on 127.0.0.1:port (no persistence); waits until it
 * answers PING. Returns its pid, or -1. */
pid_t harness_redis_start(int port);
/* The same with more arguments (NULL-terminated; at most 26), e.g.
 * "--cluster-enabled", "yes". */
pid_t harness_redis_start_with(int port, const char *const *extra);
/* A Redis Cluster on loopback: 3 masters and a replica of each (6
 * redis-server processes, free ports for clients and for the cluster bus,
 * node timeout 2 s), formed with redis-cli --cluster create. */
#define HARNESS_RC_NODES 6
typedef struct {
    int port[HARNESS_RC_NODES], bus[HARNESS_RC_NODES];
    pid_t pid[HARNESS_RC_NODES];
    char dir[64]; /* the nodes' files */
    char log[256];
} harness_rcluster_t;
/* Starts and forms it, and waits until every node says cluster_state:ok.
 * 0, or -1 with everything started stopped. */
int harness_rcluster_start(harness_rcluster_t *c);
/* Stops every node (and removes its files), whatever state it is in. */
void harness_rcluster_stop(harness_rcluster_t *c);
/* Waits up to timeout_ms for every running node to say cluster_state:ok and
 * to agree on 3 masters serving all 16384 slots: 0, or -1. */
int harness_rcluster_wait_ok(harness_rcluster_t *c, int timeout_ms);

/* SIGTERM, then SIGKILL after 3 s; reaps the process. */
void harness_stop(pid_t pid);
/* Sends a signal to a started process (SIGSTOP/SIGCONT to make it hang). */
void harness_signal(pid_t pid, int sig);
/* Runs the loop until pred(arg) is true or timeout_ms passes; returns pred's
 * last value. */
int harness_loop_until(struct event_base *base, int (*pred)(void *), void *arg, int timeout_ms);
/* A test's random seed: FRESHREC_SEED when set, else one from the clock;
 * printed with how to replay what it draws (what: "these kill moments"). */
unsigned long long harness_seed(const char *what);
/* Milliseconds on a monotonic clock. */
double harness_now_ms(void);

/* Starts argv[0] with stdout and stderr appended to logpath; tracked and
 * stopped like the servers. Returns the pid or -1. */
pid_t harness_spawn(char *const argv[], const char *logpath);
/* Waits up to timeout_ms for pid to exit; returns its exit status (0..255),
 * 128+signal if killed by one, or -1 on timeout (the process is left running). */
int harness_wait(pid_t pid, int timeout_ms);

/* GET http://127.0.0.1:port/path; the body goes to buf (NUL-terminated).
 * Returns the HTTP status, or -1 when nothing answered. */
int harness_http_get(int port, const char *path, char *buf, size_t cap);
/* The value of one sample in Prometheus text, e.g.
 * harness_metric(text, "freshrec_events_consumed_total{type=\"click\"}"); NaN if absent. */
double harness_metric(const char *text, const char *sample);

/* A mock Kafka cluster (librdkafka's, in this process, on loopback TCP) with a
 * producer to it. */
typedef struct {
    struct rd_kafka_s *owner, *prod;
    struct rd_kafka_mock_cluster_s *mock;
    char brokers[256];
} harness_kafka_t;

/* Starts one broker and creates the topic events (partitions) and
 * events.dead (1 partition). 0 or -1. */
int harness_kafka_start(harness_kafka_t *k, int partitions);
void harness_kafka_stop(harness_kafka_t *k);
/* Produces one message to "events" (waits when the local queue is full). */
void harness_kafka_produce(harness_kafka_t *k, const char *key, const void *val, size_t len);
/* Waits until every produced message is delivered; 0 or -1. */
int harness_kafka_flush(harness_kafka_t *k, int timeout_ms);
/* A click-through stream (ctrdata_generate's) as the daemon reads one: each
 * example an impression, a clicked one followed by its click (1 ms later),
 * with the example's other categorical fields in "cat" and dense ones in
 * "num", keyed by user. Returns the messages produced; *clicks (when not
 * NULL) the clicks among them. Does not flush. */
struct ctrdata; /* ctrdata.h's ctrdata_t */
long harness_kafka_produce_ctr(harness_kafka_t *k, const struct ctrdata *cd, long *clicks);

/* The offsets group has committed on "events" partitions 0..n-1 (-1001
 * where none is), read with a consumer that does not join the group. 0 or -1. */
int harness_kafka_committed(harness_kafka_t *k, const char *group, int n, long long *out);
/* The end (high watermark) of "events" partitions 0..n-1. 0 or -1. */
int harness_kafka_ends(harness_kafka_t *k, int n, long long *out);

/* The build directory under test: $BUILD, else "build". */
const char *harness_build(void);
/* A test's daemon log: "<build>/tests/<name>.log" into buf, any old one removed. */
void harness_log_path(char *buf, size_t len, const char *name);
/* How many lines of the file at path (a daemon's log) hold needle (a
 * needle may end in "\n"); 0 when there is no such file. */
int harness_log_count(const char *path, const char *needle);
/* Polls the file at path until a line holds needle (1) or timeout_ms
 * passes (0). */
int harness_log_wait(const char *path, const char *needle, int timeout_ms);

/* The last n lines of a log to stderr, framed by its path: what a failing
 * test shows of the daemon, where CI keeps nothing else. */
void harness_log_tail(const char *path, int n);
/* Removes a directory a test made and all below it (rm -rf). 0 or -1. */
int harness_rmtree(const char *dir);

/* A freshrecd process on the given brokers, Redis port and stats port, with
 * extra --set assignments (NULL-terminated, may be NULL). Its output is
 * appended to logpath. Returns the pid or -1. */
pid_t harness_daemon_start(const char *brokers, int redis_port, int stats_port,
                           const char *const *extra, const char *logpath);
/* Polls /healthz until it answers 200 (1) or timeout_ms passes (0). */
int harness_daemon_healthy(int stats_port, int timeout_ms);
/* One sample of the daemon's /metrics (NaN when unreachable or absent). */
double harness_daemon_metric(int stats_port, const char *sample);
/* The vector the daemon would publish for an id (side 'u' or 'i'; GET
 * /vector, its f32le hex) into out: its byte length, 0 for an id the daemon
 * does not know, -1 on error. */
int harness_daemon_vector(int stats_port, char side, const char *id, unsigned char *out,
                          size_t cap);

/* The stack an integration test runs against: a redis-server and a mock
 * Kafka cluster (topics events and events.dead) on free loopback ports, and a
 * freshrecd on them with its stats port, its output appended to log. */
typedef struct {
    int partitions;           /* of "events"; 0 means 1 */
    const char *const *extra; /* the daemon's --set assignments, NULL-terminated; may be NULL */
    const char *name;         /* the log: "<build>/tests/<name>.log" */
    int no_daemon;            /* start Redis and Kafka only (harness_stack_daemon_start later) */
    const char *conf;         /* a config file the daemon reads (-c; it rereads it on SIGHUP)
                               * under the --set assignments; NULL: none. It must exist when
                               * the daemon starts: with no_daemon, write it between */
} harness_stack_opts_t;

typedef struct {
    pid_t redis, daemon; /* -1 when not running */
    int redis_port, stats_port;
    harness_kafka_t kafka;
    char log[256];
    char conf[256]; /* opts->conf, or "" */
} harness_stack_t;

/* Starts Redis, the cluster and (unless opts->no_daemon) the daemon, and waits
 * up to 30 s for its /healthz. 0, or -1 with whatever had started stopped. */
int harness_stack_start(harness_stack_t *s, const harness_stack_opts_t *opts);
/* (Re)starts the daemon on the stack's servers and ports with these --set
 * assignments and waits up to 30 s for its /healthz. 0 or -1 (it is stopped
 * then). */
int harness_stack_daemon_start(harness_stack_t *s, const char *const *extra);
/* SIGTERM to the daemon and up to 20 s for it to exit: its exit status
 * (0..255, 128+signal), or -1 on timeout (it is killed then); 0 if none ran. */
int harness_stack_daemon_stop(harness_stack_t *s);
/* Stops the daemon as harness_stack_daemon_stop does, then the cluster and
 * Redis, whatever state they are in (a SIGSTOPped Redis gets a SIGCONT
 * first). Returns the daemon's exit status. */
int harness_stack_stop(harness_stack_t *s);

/* Writes path as the checkpoint format before sections (format version 1,
 * which this build refuses) wrote it, byte for byte: magic, version 1, one
 * payload, then its length u64 and XXH3-64 u64, a file valid in its own
 * format. 0 or -1. */
int harness_ckpt_v1_write(const char *path, const void *payload, size_t len);

/* A growable in-memory byte stream for serialisation tests: write appends,
 * read consumes from pos. */
typedef struct {
    char *buf;
    size_t len, cap, pos;
} harness_membuf_t;

int harness_mem_write(void *ctx, const void *b, size_t n);
int harness_mem_read(void *ctx, void *b, size_t n);

#endif
