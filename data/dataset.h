/* dataset.h — interaction files for the CLI: reading MovieLens-style files
 * (`user item rating ts`, tab, space, `::` or comma separated; lines starting
 * with '#' are comments), generating the synthetic stream (with planted
 * change on request), and the leave-one-out split of the NCF paper. Every
 * interaction is a positive (implicit feedback).
 * Not for: the daemon's wire format (proto/).
 *
 * The separator is the first data line's: `::` when it has one
 * (ratings.dat), a comma when it has one and no tab (ratings.csv), else runs
 * of tabs and spaces; every line of the file must use it. That first data
 * line is a header, and skipped, when none of its four fields is a number
 * (`userId,movieId,rating,timestamp`); any other line whose timestamp is not
 * a non-negative integer is an error naming the file and line.
 *
 * Planted facts. A generated stream with a preference shift or new items
 * (gen_config_t.shift_at, .new_items) carries what was planted in
 * dataset_t.plan, and dataset_write writes it as comment lines before the
 * events, which dataset_load reads back into plan (other comments are
 * skipped). Words are separated by single spaces; ts in seconds, as the
 * events; an event index counts the file's events from 0, in file order
 * (which is time order: a generated stream's times strictly increase):
 *
 *   # plant topics K items I users U
 *       item id n (1 ≤ n ≤ I) is in topic (n - 1) mod K; user ids are 1..U
 *   # plant user-topics T1 T2 ... TU
 *       the main topic of user id u before any shift (U numbers)
 *   # plant shift event E ts S perm P0 P1 ... P(K-1)
 *       (with a shift) from event E on (its time S), a user whose main topic
 *       was k has main topic Pk; no Pk is k
 *   # plant new-item ID topic k event E ts S
 *       (one line per new item) item ID (> I) has no event before event E
 *       (time S); from then on it takes a share of the draws of item topic
 *       k, so its audience is the users whose main topic is k at the time
 *
 * The topics line comes first; a plant line that does not parse, or is out of
 * its bounds, is an error naming the file and line. */
#ifndef FR_DATASET_H
#define FR_DATASET_H

#include "learner.h"

#include <stdint.h>
#include <stdio.h>

typedef struct {
    uint32_t user, item; /* indices into dataset_t.users / .items */
    int64_t ts_ms;
} ds_event_t;

/* One item born mid-stream (ids as written in the file). */
typedef struct {
    uint32_t id;          /* the item's id: items + 1 + its number */
    uint32_t topic;       /* the item topic whose draws it shares: its audience's */
    uint64_t birth_event; /* the first event index at which it may appear */
    int64_t birth_ms;     /* that event's time */
} gen_newitem_t;

/* What a generated stream planted (the file format is above). */
typedef struct {
    uint32_t topics, items, users; /* the catalogue before new items: ids 1..items */
    uint32_t *user_topic;          /* (users) user id u's main topic before any shift: [u - 1] */
    uint32_t *shift_perm;          /* (topics) main topic k becomes shift_perm[k]; NULL: no shift */
    uint64_t shift_event;          /* with a shift: the first event after it */
    int64_t shift_ms;              /* that event's time */
    gen_newitem_t *new_items;      /* (nnew) in order of birth */
    size_t nnew, new_cap;
} gen_plan_t;

typedef struct {
    ds_event_t *ev;
    size_t n, cap;
    lrn_id_t *users, *items; /* interned ids with their hashes */
    size_t nusers, nitems, ucap, icap;
    struct intern *uin, *iin;
    gen_plan_t *plan; /* planted facts of a generated stream, or NULL; owned */
} dataset_t;

typedef struct {
    uint32_t users, items;
    uint64_t events;
    uint64_t seed;
    uint32_t topics; /* planted interest clusters (default 24) */
    double zipf;     /* item popularity exponent (default 0.6) */
    double focus;    /* share of a user's events in their main topic (default 0.8) */
    /* Planted change; the defaults (0) plant none and leave the stream as it
     * was. Both draw from a random stream of their own, so the other draws
     * stay as without them: events before the shift, and every event not
     * given to a new item, are those of the same config without them. */
    double shift_at;    /* preference shift: 0 none; in (0, 1) a share of the events, ≥ 1 an
                           event index (an integer): from that event on, every user's main
                           topic moves by one random permutation of the topics without a
                           fixed point */
    uint32_t new_items; /* items born mid-stream, ids items + 1 ...: born evenly from the
                           stream's middle to 90% of it, the j-th (from 0) in topic j mod
                           topics */
    double new_share;   /* share of its topic's draws a live new item takes (several live in
                           one topic share it) (default 0.1, as a topic's most popular item) */
} gen_config_t;

void dataset_init(dataset_t *d);
void dataset_free(dataset_t *d);
/* Appends one interaction; ids are interned. -1 when out of memory. */
int dataset_add(dataset_t *d, const char *user, size_t ulen, const char *item, size_t ilen,
                int64_t ts_ms);
/* Reads a file (the forms above, a header detected); timestamps in seconds
 * are taken as such (×1000), values ≥ 10^11 as milliseconds. Plant lines
 * fill d->plan. */
int dataset_load(dataset_t *d, const char *path, char *errstr, size_t len);

void gen_config_default(gen_config_t *cfg);
/* Fills d with a synthetic stream: users with planted topic preferences,
 * items with Zipf popularity, timestamps increasing; with a shift or new
 * items (cfg), d->plan says what was planted. */
int dataset_generate(dataset_t *d, const gen_config_t *cfg, char *errstr, size_t len);
/* Writes d's plant lines (when d->plan) and then d as
 * `user\titem\t1\tts_seconds` lines. */
int dataset_write(const dataset_t *d, FILE *f);

void gen_plan_free(gen_plan_t *p);
/* User id `user`'s main topic at time ts_ms (the shift applied from its
 * time on); UINT32_MAX for an id the plan does not have. */
uint32_t gen_plan_user_topic(const gen_plan_t *p, uint32_t user, int64_t ts_ms);
/* Item id `item`'s topic (a new item's: its audience's); UINT32_MAX for an
 * id the plan does not have. */
uint32_t gen_plan_item_topic(const gen_plan_t *p, uint32_t item);

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
