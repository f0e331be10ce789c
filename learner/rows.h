/* rows.h — the sparse row update every engine shares (learner.c for the
 * pair models, ctr.c for the click-through fields): the rows a batch
 * touched, each once (de-duplicated by stamps), with its gradients summed in
 * pair order, updated by Adagrad or SGD, and the ids of updated rows marked
 * dirty for publishing.
 *
 * Rows are de-duplicated with a stamp per row: slot[row] is valid while
 * stamp[row] == the batch's generation. A row of one pair is updated from
 * that pair's gradient as it is; only a row of several gets its gradients
 * summed (in pair order) into acc.
 *
 * Not for: deciding which rows a pair touches, or dense parameters (optim.h). */
#ifndef FR_ROWS_H
#define FR_ROWS_H

#include "optim.h"
#include "table.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t *stamp, *slot; /* (cap) cache-line aligned, a power of two ≥ 1024 */
    size_t cap;
} rows_stamps_t;

/* Room for rows [0, need): 0, or -1 when out of memory (s unchanged). */
int rows_stamps_reserve(rows_stamps_t *s, size_t need);
/* Forgets every stamp (when the generation wraps to 0). */
void rows_stamps_clear(rows_stamps_t *s);
void rows_stamps_free(rows_stamps_t *s); /* accepts a zeroed struct */

/* The rows of the m pairs idx[0..m) (all pairs [0, m) when idx is NULL) —
 * pair p's row is pr[p * ps] — each once, appended after the nu found before:
 * uniq[k] its row, first[k] its first pair, cnt[k] its pairs. Returns the
 * new nu. */
int rows_gather(const uint32_t *pr, int ps, const uint32_t *idx, int m, int nu, rows_stamps_t *s,
                uint32_t gen, uint32_t *uniq, uint32_t *first, uint32_t *cnt);
/* The summed gradients of the rows of several pairs into acc (nu, R): pair
 * p's gradient is d + p * ld (R floats). Same pr, ps, idx and m as gather. */
void rows_sum(const uint32_t *pr, int ps, const uint32_t *idx, int m, const float *d, int ld, int R,
              const rows_stamps_t *s, const uint32_t *first, const uint32_t *cnt, float *acc);
/* One update of each of the n rows of table t (R floats and the state of
 * optimizer opt) with its gradient: acc's when it has
 * several pairs, else its pair's (d + first * ld). */
/* Row k's gradient, as rows_update takes it: acc's when it has several
 * pairs, else its pair's (d + first * ld). */
static inline const float *rows_grad(int k, const uint32_t *first, const uint32_t *cnt,
                                     const float *d, int ld, const float *acc, int R)
{
    return cnt[k] > 1 ? acc + (size_t)k * R : d + (size_t)first[k] * ld;
}
void rows_update(emb_table_t *t, const uint32_t *uniq, int n, const uint32_t *first,
                 const uint32_t *cnt, const float *d, int ld, const float *acc, int R,
                 sparse_opt_t opt, float lr, float l2, float eps);
/* The ids of the n updated rows become dirty (the fallback row has none). */
void rows_mark_dirty(emb_table_t *t, const uint32_t *uniq, int n);

/* Shared mode: rows gathered in a window, by table entry, in the order they
 * were first touched, each with width floats (zeroed when it joins). A
 * zeroed struct is an empty window; width may be 0 (membership only). */
typedef struct {
    uint32_t *slot; /* (slot_cap) by entry: 1 + its place, 0 when not in the window */
    size_t slot_cap;
    uint32_t *ent; /* (cap) entries; EMB_NONE for one dropped since */
    float *val;    /* (cap, width) */
    size_t n, cap;
    int width;
} wrows_t;
/* entry e's floats in the window, joining it when new; NULL when out of
 * memory (with width 0: a pointer not to be read) */
float *wrows_at(wrows_t *w, uint32_t e);
void wrows_drop(wrows_t *w, uint32_t e); /* e leaves the window (its entry was freed) */
void wrows_clear(wrows_t *w);            /* the window starts again, empty */
void wrows_free(wrows_t *w);

#endif
