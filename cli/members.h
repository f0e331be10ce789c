/* members.h — several learners in shared mode (learner.h) that learn one
 * model through a model log kept in memory (proto/mlog.h), on one thread:
 * what N freshrecd members sharing one model learn, for `freshrec train
 * --members N` and the tests. Member m learns the events of the users whose
 * id hash is m modulo N (its partition, m), one window per member per round;
 * after each round every member reads the log on from where it was and
 * applies each accepted record, the writer's own included (its user rows
 * excepted: they are its own already). Not for: Kafka (the daemon's). */
#ifndef FR_MEMBERS_H
#define FR_MEMBERS_H

#include "learner.h"

#include <stddef.h>
#include <stdint.h>

typedef struct members members_t;

typedef struct {
    size_t records;    /* in the log: claims and windows */
    size_t bytes;      /* their bytes */
    uint64_t events;   /* events the windows covered */
    uint64_t refused;  /* records a ledger refused (member 0's) */
    uint64_t refusals; /* entries a learner refused to apply (bad width or id) */
} members_stats_t;

/* n members (1 to 64) of the configuration (shared is set); NULL and a
 * message when a learner cannot be made. */
members_t *members_create(const learner_config_t *cfg, int n, char *errstr, size_t len);
void members_free(members_t *g);
/* Learns ev[0..n) in order, round by round: each round is the next
 * window_events events, each member learning its users' share of them and
 * writing its window; then every member catches up with the log. 0, or -1
 * when a record could not be written (out of memory). */
int members_learn(members_t *g, const lrn_event_t *ev, size_t n, size_t window_events);
learner_t *members_learner(members_t *g, int m);
/* Its partition's next offset as its own ledger says (the events member m
 * learned and the log accepted), or -1. */
int64_t members_next_offset(const members_t *g, int m);
void members_stats(const members_t *g, members_stats_t *out);
/* 0 when members a and b hold the same shared state byte for byte (the dense
 * block with its Adam state; every item's row and optimizer state, by id);
 * else -1 and where they first differ. */
int members_same(members_t *g, int a, int b, char *why, size_t len);

#endif
