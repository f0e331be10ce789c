/* eval.h — prequential streaming evaluation (`freshrec eval`): a
 * time-ordered interaction stream replayed through several arms
 * (evalarms.h) at once, each event scored by every arm BEFORE any of them
 * has seen it, with each arm as it was published at the last publish
 * instant of the stream's clock. What the CLI prints is in eval.c; this is
 * the part the tests call. Not for: leave-one-out (dataset.h). */
#ifndef FR_EVAL_H
#define FR_EVAL_H

#include "dataset.h"
#include "learner.h"

#include <stddef.h>
#include <stdint.h>

enum { ARM_ONLINE, ARM_POP, ARM_KNN, ARM_RETRAIN, ARM_NEVER, ARM_COUNT };

typedef struct {
    learner_config_t lcfg; /* the online arm's and the retrained arms' */
    int64_t publish_ms;    /* publish interval on the stream's clock (50, the daemon's) */
    double eval_rate;      /* deterministic share of events scored (1) */
    size_t pop_window;     /* popularity: the last N events (10000) */
    int knn_recent;        /* item-kNN: each user's last N items (20) */
    double retrain_hours;  /* retrain arm: stream hours between trainings (24) */
    double retrain_growth; /* retrain only with this share more events than last time (0.02) */
    int retrain_epochs;    /* shuffled epochs of a training (5) */
    double warmup;         /* never-retrained: trained once on this share of the stream (0.2) */
    int resamples;         /* paired bootstrap resamples (1000) */
    uint64_t seed;         /* event sampling, sampled negatives, bootstrap (1) */
    unsigned arms;         /* bit (1u << ARM_*) per arm run (all) */
    size_t drift_at;       /* the event where planted drift starts (a shift, items
                            * born), for eval_recovery and eval_newitem_curve; 0: none */
    int drift_shift;       /* 1: that drift is a taste shift (eval_users_back applies) */
    int progress;          /* a line on stderr every few seconds */
} eval_config_t;

typedef struct {
    double recall20, ndcg20, hr10, mrr; /* sums over n events */
    uint64_t n;
} eval_sums_t;

typedef struct {
    char name[32];
    char note[256];
    eval_sums_t all, new_item, new_user;
    eval_sums_t *bucket; /* (nbucket) */
    float *hit20;        /* (scored) recall@20 of each scored event, in order */
    float *hit10;        /* (scored) HR@10 against the sampled items, likewise */
    double seconds;      /* wall time in the arm */
} eval_arm_result_t;

typedef struct {
    size_t events;     /* in the stream */
    size_t scored;     /* scored by every arm */
    size_t unrankable; /* sampled for scoring but their item was never seen before */
    size_t users, items;
    int64_t t0_ms, t1_ms, bucket_ms;
    size_t nbucket;
    int narms;
    int index[ARM_COUNT]; /* arm ARM_* at arm[index[]], or -1 when not run */
    size_t *ev_of;        /* (scored) each scored event's place in the stream */
    uint32_t *clicks;     /* (scored) its item's events before it */
    unsigned char *late;  /* (scored) 1: its item was first seen at or after drift_at */
    unsigned char *back;  /* (scored) 1: its user had an event at or after drift_at before it */
    eval_arm_result_t arm[ARM_COUNT];
    double seconds;
} eval_result_t;

void eval_config_default(eval_config_t *c);
/* Replays d (sorted by time) through the configured arms: 0, or -1 and a
 * message. r is filled for eval_result_free either way. */
int eval_run(const dataset_t *d, const eval_config_t *c, eval_result_t *r, char *err, size_t len);
void eval_result_free(eval_result_t *r);

/* Planted shift (drift_at): arm i's HR@10 over the W scored events before
 * drift_at is its level; the events after drift_at until a window of W
 * scored events first averages at least frac of that level again. -1 when
 * it never does (or there is no drift, or too few events). */
long eval_recovery(const eval_result_t *r, int i, size_t drift_at, size_t W, double frac,
                   double *level);

/* Planted shift: the events after drift_at until a window of W scored
 * events first has at least frac of them by users back since (r->back), or
 * -1. The reference for an arm that learns each user's new taste from that
 * user's own events: before a user is back it hits their events only by
 * chance, so it regains frac of its level about this soon at the best. */
long eval_users_back(const eval_result_t *r, size_t drift_at, size_t W, double frac);

/* Items first seen at or after drift_at (born mid-stream): arm i's
 * recall@20 on their events by how many events the item had before, 0 …
 * maxc (the last bucket: maxc or more), into rec[] with counts n[]; and on
 * the other items' events after drift_at into *est (count *nest). */
void eval_newitem_curve(const eval_result_t *r, int i, size_t drift_at, int maxc, double *rec,
                        size_t *n, double *est, size_t *nest);
/* "hour", "day", "week", … : the name of a bucket_ms */
const char *eval_period_name(int64_t ms);

/* The full-catalogue rank (1 = best) of candidate t among n scores: one
 * plus the candidates other than t, not excluded (excl[k] != 0), scoring at
 * least as high (ties count against t; a NaN at t ranks last). */
size_t eval_rank(const float *s, size_t n, size_t t, const unsigned char *excl);

/* Paired bootstrap of the mean of diff (n events, each one arm's figure
 * minus another's): resamples events with replacement, resamples times,
 * with a generator seeded by seed. mean, and the 2.5% and 97.5% quantiles
 * of the resampled means. */
void eval_bootstrap(const float *diff, size_t n, int resamples, uint64_t seed, double *mean,
                    double *lo, double *hi);

#endif
