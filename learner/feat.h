/* feat.h — the features of one tower of the pair learner (DSSM): what a user
 * or an item is described by besides its id.
 *
 * A tower has ncat categorical fields and nnum dense fields. Categorical
 * values have embedding rows (dim floats) in one table per tower, keyed by
 * (field, value): exact values with admission, or the hashing trick with
 * 2^hash_bits rows per field. Dense values are normalised online (running
 * mean and variance, clipped; ctrlayers.h). The tower's feature vector, what
 * follows the id row in its input, is
 *
 *   [ row(field 0's value) ; … ; row(field ncat−1's value) ; norm(dense) ]
 *
 * F = ncat·dim + nnum floats; a missing categorical value gives zeros, a
 * missing dense value 0 (its mean).
 *
 * Features are kept per id (the learner's entry index of the user or item),
 * last value wins, so that an item drawn as a negative, an item ranked, or a
 * vector published, has the features its id last came with. A field an event
 * does not carry keeps its last value.
 * Not for: the towers themselves (dssm.c), the id tables (table.h). */
#ifndef FR_FEAT_H
#define FR_FEAT_H

#include "optim.h"
#include "serial.h"
#include "table.h"

#include <stddef.h>
#include <stdint.h>

#define FEAT_MAX_FIELDS 32 /* categorical, and dense, fields per tower */

/* One feature of an event, for the user's ('u') or the item's ('i') tower. */
typedef struct {
    char side;  /* 'u' or 'i' */
    int dense;  /* 0: categorical (h, id, len); 1: dense (num) */
    int field;  /* index among the side's categorical, or dense, fields */
    uint64_t h; /* 64-bit hash of the value bytes (proto/id.h) */
    const char *id;
    size_t len;
    float num;
} lrn_feat_t;

typedef struct {
    int ncat, nnum; /* fields (0..FEAT_MAX_FIELDS each) */
    int dim;        /* floats per categorical value (default 8) */
    int hash_bits;  /* 0: exact values with admission; else 2^bits rows per field */
    uint32_t admit_after;
    float clip; /* normalised dense values clipped to ±clip (default 5) */
    float init_std;
    sparse_opt_t opt; /* the rows' optimizer (its state rides on each row) */
    uint64_t seed;
} feat_config_t;

typedef struct feat feat_t;

/* max_pairs: most pairs of a gradient step (feat_grad_add calls between two
 * feat_grad_begin). NULL and errstr on a bad config or out of memory. */
feat_t *feat_create(const feat_config_t *cfg, int max_pairs, char *errstr, size_t len);
void feat_free(feat_t *f);       /* accepts NULL */
int feat_width(const feat_t *f); /* F */

/* Makes room for entry indices below cap (the id table's emb_entry_cap). */
int feat_reserve(feat_t *f, uint32_t cap);
/* Entry e now belongs to a new id: it has no features yet. */
void feat_clear(feat_t *f, uint32_t e);
/* Sets entry e's features from those of fs[0..n) whose side is `side`
 * (others are skipped); folds the dense values into the normaliser. Values
 * with a bad field index, or a dense value that is not finite, are skipped.
 * Returns how many were taken. */
int feat_set(feat_t *f, uint32_t e, char side, const lrn_feat_t *fs, int n, int64_t ts_ms);
/* out (F): entry e's feature vector; EMB_NONE (an unknown id) gives zeros. */
void feat_gather(feat_t *f, uint32_t e, float *out);

/* A gradient step: begin, add each pair's feature gradient g (F) for its
 * entry, then apply (one sparse update per touched value row). */
int feat_grad_begin(feat_t *f);
void feat_grad_add(feat_t *f, uint32_t e, const float *g);
void feat_grad_apply(feat_t *f, float lr, float l2, float eps);

/* The value table, the normaliser and the per-entry features of entries
 * below cap. Load into a fresh feat_t of the same config; -1 and a message on
 * a short, corrupt or differently shaped stream. */
int feat_save(const feat_t *f, uint32_t cap, ser_writer_t *w);
int feat_load(feat_t *f, ser_reader_t *r, uint32_t max_cap, char *errstr, size_t len);

#endif
