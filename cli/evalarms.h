/* evalarms.h — the arms of `freshrec eval`: recommenders replayed side by
 * side over one time-ordered stream, each scoring the same events before
 * it has seen them. An arm is an ops table over its own state:
 *
 *   publish(now, done)  a publish instant of the stream's clock; the arm has
 *                       observed events [0, done). What it scores until the
 *                       next instant is fixed here (a retrain arm retrains)
 *   score(query)        the catalogue's scores for one event's user, as
 *                       published (never changes the arm)
 *   observe(from, to)   the events [from, to), after they were all scored
 *
 * A new arm is its create function and its ops; eval.c drives them all the
 * same way. Not for: metrics, slicing or output (eval.c). */
#ifndef FR_EVALARMS_H
#define FR_EVALARMS_H

#include "dataset.h"
#include "learner.h"

#include <stddef.h>
#include <stdint.h>

/* The stream every arm replays: the time-sorted dataset and its events as
 * the learner takes them (lev[k] is d->ev[k]). */
typedef struct {
    const dataset_t *d;
    const lrn_event_t *lev;
} eval_stream_t;

/* One event to score: its index in the stream, the catalogue (items seen
 * before it, in first-seen order: the dataset's item indices and their ids)
 * and the user's earlier items (dataset item indices, oldest first). */
typedef struct {
    size_t ev;
    const uint32_t *cat_item;
    const lrn_id_t *cat_id;
    size_t ncat;
    const uint32_t *hist;
    size_t nhist;
} eval_query_t;

typedef struct arm arm_t;

typedef struct {
    /* 0, or -1 and a message */
    int (*publish)(arm_t *a, int64_t now_ms, size_t done, char *err, size_t len);
    /* out: ncat scores, higher is better; ties count against the event's item */
    void (*score)(arm_t *a, const eval_query_t *q, float *out);
    int (*observe)(arm_t *a, size_t from, size_t to, char *err, size_t len);
    void (*free)(arm_t *a);
} arm_ops_t;

struct arm {
    const arm_ops_t *ops;
    char name[32];
    char note[256]; /* what it did, for the report (retrains made and skipped) */
    double seconds; /* wall time in its publish, score and observe (eval.c adds it) */
};

/* The learner as the daemon runs it: one pass, learning each window of
 * events after they were scored. */
arm_t *arm_online(const eval_stream_t *s, const learner_config_t *cfg, char *err, size_t len);

/* The most frequent items of the last `window` events. */
arm_t *arm_popularity(const eval_stream_t *s, size_t window, char *err, size_t len);

/* Streaming item co-occurrence: each event (u, i) counts i with each of
 * u's last `recent` items; a user is scored from their last `recent` items
 * (the query's history) by cosine-normalised co-occurrence; items with none
 * rank below those with some, by popularity. */
arm_t *arm_knn(const eval_stream_t *s, int recent, char *err, size_t len);

/* A learner trained from scratch on everything observed, `epochs` shuffled
 * passes, then frozen. Periodic (every_ms > 0): at the first publish instant
 * of each every_ms of stream time, when at least (1 + growth) times the
 * events of the last training have arrived (else that retrain is skipped
 * and counted). Once (every_ms == 0): at the first publish instant with at
 * least once_at events observed, never again. Before its first training it
 * has no model: every item scores the same. */
typedef struct {
    int64_t every_ms;
    double growth;
    int epochs;
    size_t once_at;
} retrain_config_t;

arm_t *arm_retrain(const eval_stream_t *s, const learner_config_t *cfg, const retrain_config_t *rc,
                   const char *name, char *err, size_t len);

void arm_free(arm_t *a); /* NULL: nothing */

#endif
