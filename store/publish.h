/* publish.h — the Redis publisher: hiredis async on the daemon's libevent
 * loop. A publish round writes vectors (SET key value EX ttl) and the model's
 * metadata hash in one pipeline; the key schema is proto/keys.h.
 *
 * Redis down or slow never stops learning: a round that fails, or that takes
 * longer than round_timeout_ms, hands every key it did not get confirmed back
 * through the fail callback (the daemon marks them dirty again), and the
 * connection is re-made with exponential backoff up to reconnect_max_ms.
 * Each time the link is made, the publisher asks whether the meta hash is
 * there; when it is not (a Redis restarted without its data, a failover to
 * an empty replica, a FLUSHALL), the empty callback tells the daemon, which
 * then publishes every vector again.
 *
 * Whether Redis takes the writes is measured, not inferred from the link: a
 * stopped Redis still completes TCP connects from its kernel backlog. Each
 * round (or heartbeat) that Redis confirms at least one write of counts as
 * an acknowledgement; pub_unconfirmed_s says how long writes have waited
 * without one, across failed rounds and reconnects.
 * Not for: choosing what to publish (the daemon) or the learner's tables. */
#ifndef FR_PUBLISH_H
#define FR_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef struct {
    const char *host;
    int port;
    const char *password; /* NULL or "": no AUTH */
    const char *prefix;   /* key prefix, "fr" */
    const char *model;    /* model name in keys, "neumf" */
    int ttl_s;            /* vector TTL; 0 = none */
    int reconnect_max_ms;
    int round_timeout_ms; /* a round not done by then is failed and the link reset */
    int item_index;       /* 1: keep <prefix>:<model>:items (ZADD/ZREM per round, see pub_end) */
    int versioned;        /* 1: versioned writes, for several writers of one model: each
                           * vector ends in 8 bytes, the big-endian model-log position
                           * of the state it was read from (pub_set_position); a
                           * vector or meta hash is written only when what Redis holds
                           * is not newer (a Lua compare-and-set per key); the meta
                           * hash says version_bytes 8 and log_position */
    int cluster;          /* 1: host:port is a node of a Redis Cluster: every command goes
                           * to the master of its key's slot (CLUSTER SLOTS; MOVED, ASK,
                           * TRYAGAIN followed up to 5 times; see publish.c) */
    const char *nodes;    /* cluster: more nodes, "host:port,host:port", asked for the
                           * slot map when host:port does not answer; NULL or "": none */
} pub_config_t;

/* Called for a write the round could not confirm: side 'u' or 'i' for a
 * vector's SET, 'U' or 'I' for a DEL (pub_del). */
typedef void (*pub_fail_fn)(void *arg, char side, const char *id, size_t len);
/* Called when a round completes (ok = 1 when every write was confirmed).
 * It must not begin the next round itself (schedule it: the publisher is
 * still tidying the round up). */
typedef void (*pub_done_fn)(void *arg, int ok, size_t keys, size_t bytes, double seconds);

typedef struct {
    const char *kind;   /* "neumf" */
    int dim;            /* floats per vector */
    const char *layout; /* e.g. "gmf:0:32,mlp:32:64" */
    const float *dense; /* the dense weights a ranker needs, or NULL */
    size_t ndense;
    const char *dense_layout; /* e.g. "W1:32x64,b1:32,..." */
} pub_meta_t;

typedef struct pub pub_t;

pub_t *pub_create(struct event_base *base, const pub_config_t *cfg, pub_fail_fn on_fail,
                  pub_done_fn on_done, void *arg, char *errstr, size_t len);
/* Called (with pub_create's arg) when a new link finds no meta hash. */
typedef void (*pub_empty_fn)(void *arg);
void pub_set_on_empty(pub_t *p, pub_empty_fn on_empty);
/* Drops the connection; keys of a round in flight go to the fail callback. */
void pub_free(pub_t *p);

int pub_connected(const pub_t *p);
int pub_busy(const pub_t *p);         /* a round is in flight */
uint64_t pub_version(const pub_t *p); /* rounds started, the meta "version" */
/* Seconds since Redis last confirmed a write of a round or a heartbeat
 * (since pub_create when it never has). */
double pub_ack_age_s(const pub_t *p);
/* Seconds the oldest write not confirmed since has waited: from the first
 * round sent after the last acknowledgement, through any failed rounds and
 * reconnects, until a round is confirmed; 0 when nothing waits. */
double pub_unconfirmed_s(const pub_t *p);

/* The nodes written to: one (a single Redis), or each node of a cluster's
 * slot map and each a redirection named. */
typedef struct {
    char addr[64];       /* host:port */
    int connected;       /* the link is up */
    int master;          /* serves slots in the map last read (a cluster) */
    int in_round;        /* commands of the round in flight went to it */
    double round_s;      /* the last round that wrote to it: seconds to its last reply */
    uint64_t errors;     /* commands it failed (an error reply, the link lost) */
    uint64_t moved, ask; /* redirections it answered */
    uint64_t tryagain;
    uint64_t connects; /* links made to it */
} pub_node_t;
/* Up to max nodes' figures into out; how many. */
int pub_nodes(const pub_t *p, pub_node_t *out, int max);
/* How many of a cluster's slots no connected node serves (none read, or
 * its link down), 0 for a single Redis; the first max of their ranges
 * [first[i], last[i]] in *nranges. */
size_t pub_unserved_slots(const pub_t *p, unsigned *first, unsigned *last, size_t max,
                          size_t *nranges);

/* Versioned writes: the model-log position of the state the next rounds
 * read (below 2^53); and how many writes Redis refused because it held a
 * newer value. */
void pub_set_position(pub_t *p, uint64_t position);
uint64_t pub_refused_older(const pub_t *p);
/* The Lua of versioned writes (which 0: a vector's SET, 1: the meta hash's
 * HSET) and the SHA-1 it is called by; for tests. */
const char *pub_script_sha(int which, const char **script);

/* A round: begin, add vectors, end. pub_begin returns -1 when disconnected or
 * busy (nothing is taken then). pub_add copies the vector at once. */
int pub_begin(pub_t *p);
void pub_add(pub_t *p, char side, const char *id, size_t len, const float *v, int dim);
/* DEL of a vector key (an evicted id), in the same round. A round's commands
 * go out in the order they were added. A DEL not confirmed is handed back
 * like a SET. */
void pub_del(pub_t *p, char side, const char *id, size_t len);
/* Sends the round: its commands, then one HSET of the meta hash with every
 * field, updated_ms and alive_ms = now_ms (wall clock, ms since the epoch).
 * With cfg.item_index, the round also keeps the sorted set
 * <prefix>:<model>:items: ZADD of its item ids scored now_ms, ZREM of the
 * item ids it deletes, and with a TTL, ZREMRANGEBYSCORE of the ids last
 * written more than ttl_s ago (their vectors have expired). A failed ZADD or
 * ZREM hands its ids back through the fail callback like a failed SET or DEL. */
void pub_end(pub_t *p, const pub_meta_t *meta, int64_t now_ms);

/* A round with nothing to write: one HSET of the meta hash's alive_ms =
 * now_ms, so that a reader can tell a live daemon from a dead one while the
 * model does not change; the version does not move. Done like a round
 * (on_done, the round timeout). Redis answering that the field was new
 * means the hash is gone (a FLUSHALL on this link): the empty callback is
 * told. -1 when disconnected or busy. */
int pub_heartbeat(pub_t *p, int64_t now_ms);

#endif
