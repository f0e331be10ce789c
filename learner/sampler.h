/* sampler.h — negative samplers. Each draw also returns the probability with
 * which the sampler draws that item, for the logQ correction of the softmax.
 *
 *   uniform     over the items that have a row of their own; q = 1/n
 *   popularity  ∝ count^α over the rolling buffer (a Fenwick tree kept in step
 *               with the buffer's counts); q = count^α / Σ
 *   inbatch     the other positives of the micro-batch (drawn with their share
 *               of it); q = the item's frequency in the rolling buffer, the
 *               marginal probability that a position of a batch holds it (the
 *               share of one batch is not: see samp_prob in sampler.c)
 *   hard        a pool of C candidates drawn uniformly, scored by the
 *               current model; the highest-scored is passed over (C ≥ 8:
 *               samp_hard_skip; the top is the likeliest to be the user's
 *               future positive), the next ⌈k/4⌉ are kept and the rest drawn
 *               at random from below them: hard negatives from a band below
 *               the top, mixed with uniform ones (all hard, or a pool drawn
 *               by popularity, lost 0.05–0.1 of leave-one-out HR@10 to
 *               uniform); q = the pool's inclusion probability, min(1, C/n)
 *
 * No sampler returns an item that the user has among the buffer's events.
 * Items are table entry indices (table.h). Not for: scoring (the learner
 * supplies a scorer to the hard sampler). */
#ifndef FR_SAMPLER_H
#define FR_SAMPLER_H

#include "ring.h"
#include "rng.h"
#include "table.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { SAMP_UNIFORM = 0, SAMP_POPULARITY, SAMP_INBATCH, SAMP_HARD } samp_kind_t;

/* hard: how many of a pool of c scored candidates are passed over, the
 * highest-scored first (1 from a pool of 8) */
int samp_hard_skip(int c);

/* Scores items for a user (higher is more relevant). */
typedef void (*samp_score_fn)(void *arg, uint32_t user, const uint32_t *items, int n,
                              float *scores);

typedef struct {
    samp_kind_t kind;
    float alpha;   /* popularity exponent (default 0.75) */
    int pool;      /* hard: candidates scored per event (default 32) */
    int max_tries; /* draws per negative before giving up on one (default 32) */
} samp_config_t;

typedef struct sampler sampler_t;

void samp_config_default(samp_config_t *cfg);
/* Name ↔ kind: "uniform", "popularity", "inbatch", "hard". -1 when unknown. */
int samp_kind_parse(const char *name);
const char *samp_kind_name(samp_kind_t kind);

/* items and ring are read, never changed; the sampler registers itself as the
 * ring's count listener. */
sampler_t *samp_create(const samp_config_t *cfg, const emb_table_t *items, ring_t *ring,
                       char *errstr, size_t len);
void samp_free(sampler_t *s);
void samp_set_scorer(sampler_t *s, samp_score_fn fn, void *arg);

/* inbatch: the positives of the micro-batch about to be learned. The array is
 * read until the next call. Push them into the ring first: q is read from the
 * ring's counts (an item missing from it gets its share of the batch). */
void samp_set_batch(sampler_t *s, const uint32_t *items, int n);

/* Draws up to k negatives for user into items/q; returns how many it found
 * (fewer than k only when almost every candidate is a positive of the user). */
int samp_draw(sampler_t *s, rng_t *r, uint32_t user, uint32_t *items, float *q, int k);

/* samp_draw for B users at once: items and q are (B, k), found (B) says how
 * many of each row were filled. Same guarantees as samp_draw; faster, because
 * the buffer look-ups of a whole batch are prefetched before they are made. */
void samp_draw_batch(sampler_t *s, rng_t *r, const uint32_t *users, int B, int k, uint32_t *items,
                     float *q, int *found);

/* The probability that one draw yields item (for the positive's logQ). */
float samp_prob(const sampler_t *s, uint32_t item);

#endif
