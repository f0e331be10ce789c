/* dataset.h — interaction files for the CLI: reading MovieLens-style files
 * (`user item rating ts`, tab, space or `::` separated; lines starting with
 * '#' are comments), generating the synthetic stream, and the leave-one-out
 * split of the NCF paper. Every interaction is a positive (implicit feedback).
 * Not for: the daemon's wire format (proto/). */
#ifndef FR_DATASET_H
#define FR_DATASET_H

#include "learner.h"

#include <stdint.h>
#include <stdio.h>

typedef struct {
    uint32_t user, item; /* indices into dataset_t.users / .items */
    int64_t ts_ms;
} ds_event_t;

typedef struct {
    ds_event_t *ev;
    size_t n, cap;
    lrn_id_t *users, *items; /* interned ids with their hashes */
    size_t nusers, nitems, ucap, icap;
    struct intern *uin, *iin;
} dataset_t;

typedef struct {
    uint32_t users, items;
    uint64_t events;
    uint64_t seed;
    uint32_t topics; /* planted interest clusters (default 24) */
    double zipf;     /* item popularity exponent (default 0.6) */
    double focus;    /* share of a user's events in their main topic (default 0.8) */
} gen_config_t;

void dataset_init(dataset_t *d);
void dataset_free(dataset_t *d);
/* Appends one interaction; ids are interned. -1 when out of memory. */
int dataset_add(dataset_t *d, const char *user, size_t ulen, const char *item, size_t ilen,
                int64_t ts_ms);
/* Reads a file; timestamps in seconds are taken as such (×1000). */
int dataset_load(dataset_t *d, const char *path, char *errstr, size_t len);

void gen_config_default(gen_config_t *cfg);
/* Fills d with a synthetic stream: users with planted topic preferences,
 * items with Zipf popularity, timestamps increasing. */
int dataset_generate(dataset_t *d, const gen_config_t *cfg, char *errstr, size_t len);
/* Writes d as `user\titem\t1\tts_seconds` lines. */
int dataset_write(const dataset_t *d, FILE *f);

/* Sorts events by time, keeping file order among equal times. */
void dataset_sort_by_time(dataset_t *d);

/* Leave-one-out: each user's latest event (of a time-sorted dataset) is held
 * out when the user has at least two. held[u] is the event index or SIZE_MAX;
 * train gets the rest in order. Arrays are malloc'ed for the caller. */
int dataset_loo(const dataset_t *d, size_t **held, size_t **train, size_t *ntrain);

typedef struct {
    double hr, ndcg;         /* HR@10, NDCG@10 of the learner */
    double pop_hr, pop_ndcg; /* the same, ranking by training popularity */
    size_t users;            /* users evaluated */
} loo_result_t;

/* The NCF protocol: each held-out item is ranked against 100 items the user
 * never interacted with (drawn with a generator seeded by seed); the same
 * candidates are also ranked by their training popularity, as a baseline. */
int dataset_eval_loo(learner_t *l, const dataset_t *d, const size_t *held, const size_t *train,
                     size_t ntrain, uint64_t seed, loo_result_t *res);

#endif
