/* kafka.h — freshrecd's Kafka side (librdkafka): the consumer group whose
 * messages reach the libevent loop through the queue's io-event pipe, the
 * dead-letter producer, and, with --embedded and no brokers configured,
 * librdkafka's mock cluster in-process (real Kafka protocol on loopback TCP).
 *
 * Offsets are stored only when the daemon says an event is learned
 * (enable.auto.offset.store=false); stored offsets are committed by
 * librdkafka's auto-commit and at close. Not for: decoding or learning. */
#ifndef FR_KAFKA_H
#define FR_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

struct event_base;
/* Only pointers to these cross this API, so kafka.h includes neither
 * config.h (config.c includes kafka.h) nor metrics.h (which is the learner's
 * whole API). */
typedef struct fr_config fr_config_t;
typedef struct metrics_partition metrics_partition_t;

/* Receives each batch of messages drained from the queue, in order. The
 * messages are destroyed after the call returns. */
typedef void (*kafka_batch_fn)(void *arg, rd_kafka_message_t **msgs, size_t n);

typedef struct kafka kafka_t;

/* A partition's position: the next offset to consume. */
typedef struct {
    char topic[128];
    int32_t partition;
    int64_t offset;
} kafka_offset_t;

#define KAFKA_MAX_OFFSETS 256

/* Builds the consumer's and the dead-letter producer's properties from cfg,
 * as kafka_create does, on scratch confs: for config_validate. -1 with a
 * message, and in *key the [kafka] key whose value was refused. */
int kafka_config_check(const fr_config_t *cfg, const char **key, char *errstr, size_t len);

kafka_t *kafka_create(struct event_base *base, const fr_config_t *cfg, int embedded,
                      int checkpoints, kafka_batch_fn on_batch, void *arg, char *errstr,
                      size_t len);
/* Leaves the group (commits stored offsets first), bounded by the config's
 * shutdown timeout. Idempotent. */
void kafka_close(kafka_t *k);
void kafka_free(kafka_t *k); /* NULL is fine; closes first */

/* Housekeeping, from the daemon's cron every 200 ms: dead-letter delivery
 * reports and retries, and a drain in case a wake-up byte was coalesced
 * away. */
void kafka_cron(kafka_t *k);

/* Stops taking messages from the queue (they stay unconsumed). */
void kafka_pause_loop(kafka_t *k);

/* Marks the messages up to and including m learned: its offset + 1 is stored
 * for commit. */
void kafka_store(kafka_t *k, const rd_kafka_message_t *m);
/* Copies a refused message to the dead-letter topic: its value and key, each
 * cut to [kafka] dead_letter_max_bytes, with headers freshrec-reason,
 * freshrec-detail, freshrec-source, freshrec-partition, freshrec-offset,
 * freshrec-size (the value's original length) and, when cut,
 * freshrec-truncated. The copy is kept until the broker acknowledges it and
 * produced again as long as it fails; until then no offset of its partition
 * is stored past the message (kafka_store holds back), and while a copy
 * keeps failing the queue is not drained (consuming stops). -1 only when
 * there is no dead-letter topic or no memory (counted by the caller). */
int kafka_dead_letter(kafka_t *k, const rd_kafka_message_t *m, const char *reason,
                      const char *detail);
/* Dead-letter copies not acknowledged yet (queued, in flight or waiting for
 * a retry). */
size_t kafka_dead_letter_pending(const kafka_t *k);
/* 1 while consuming is stopped because a dead-letter copy keeps failing. */
int kafka_dead_letter_blocked(const kafka_t *k);
uint64_t kafka_dead_letter_delivered(const kafka_t *k); /* copies acknowledged since start */
uint64_t kafka_dead_letter_truncated(const kafka_t *k); /* copies cut to the bound */
/* Waits up to timeout_ms for every pending copy to be acknowledged (failed
 * ones are produced again meanwhile): at shutdown. Returns how many are
 * still pending. Blocks the caller. */
size_t kafka_dead_letter_flush(kafka_t *k, int timeout_ms);
/* Stops (1) or resumes (0) draining the queue, without touching the
 * assignment: a checkpoint waits so for copies in flight. */
void kafka_hold(kafka_t *k, int on);
/* The next batches take at most n messages (0: [kafka] batch_max): a
 * cluster member's window ends between two batches, so no message of a
 * batch is learned while the window before it is in flight. */
void kafka_limit(kafka_t *k, size_t n);

const char *kafka_bootstrap(const kafka_t *k); /* the brokers in use (the mock's if embedded) */
int kafka_assigned(const kafka_t *k);          /* partitions assigned now */
int kafka_fatal(const kafka_t *k);             /* a fatal consumer error happened */
uint64_t kafka_dead_letter_errors(const kafka_t *k); /* failed attempts (each retried) */
uint64_t kafka_catchup_turns(const kafka_t *k);      /* turns that took more than one batch */
/* Fills lag and stored offsets of the assigned partitions; returns how many. */
int kafka_partitions(kafka_t *k, metrics_partition_t *out, int max);

/* With checkpoints, offsets are committed only for what a durable checkpoint
 * holds: kafka_create then turns librdkafka's auto-commit off (checkpoints =
 * 1), kafka_learned_offsets gives the position after everything learned so
 * far (for the checkpoint), kafka_commit_offsets commits a checkpoint's
 * positions, and kafka_set_resume makes assigned partitions start at a
 * restored checkpoint's positions (and, after a rebalance gives one back,
 * where learning got to). */
int kafka_learned_offsets(const kafka_t *k, kafka_offset_t *out, int max);
int kafka_commit_offsets(kafka_t *k, const kafka_offset_t *o, int n);
void kafka_set_resume(kafka_t *k, const kafka_offset_t *o, int n);

/* Several members ([cluster] model_topic): fn(arg, 1, parts) right after
 * partitions are assigned, fn(arg, 0, parts) right before they are taken
 * away (revoked, or lost when the consumer fell out of the group). Both on
 * the loop thread, inside the consumer's poll. */
typedef void (*kafka_rebalance_fn)(void *arg, int assigned, rd_kafka_topic_partition_list_t *parts);
void kafka_set_rebalance_hook(kafka_t *k, kafka_rebalance_fn fn, void *arg);
/* The consumer, for pausing, seeking and resuming its partitions. */
rd_kafka_t *kafka_handle(kafka_t *k);
/* Sets the [kafka] properties ("name=value,...") on conf: 0, or -1 with a
 * message (every client of the cluster takes them: security settings). */
int kafka_conf_apply(rd_kafka_conf_t *conf, const char *props, char *errstr, size_t len);

#endif
