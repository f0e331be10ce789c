/* rows.c — the shared sparse row update (see rows.h). */
#include "rows.h"

#include <stdlib.h>
#include <string.h>

/* *p (n0 entries) moved into an array of n (a power of two, at least 1024:
 * a whole number of cache lines) that starts on a cache line, the rest 0:
 * so each block of 16 rows that the learner hands to one thread is one line
 * of its own, which no other thread writes */
static int grow_lines(uint32_t **p, size_t n0, size_t n)
{
    uint32_t *a = aligned_alloc(64, n * sizeof(uint32_t));
    if (!a)
        return -1;
    if (n0)
        memcpy(a, *p, n0 * sizeof(uint32_t));
    memset(a + n0, 0, (n - n0) * sizeof(uint32_t));
    free(*p);
    *p = a;
    return 0;
}

int rows_stamps_reserve(rows_stamps_t *s, size_t need)
{
    if (need <= s->cap)
        return 0;
    size_t n = s->cap ? s->cap : 1024;
    while (n < need)
        n *= 2;
    if (grow_lines(&s->stamp, s->cap, n) || grow_lines(&s->slot, s->cap, n))
        return -1;
    s->cap = n;
    return 0;
}

void rows_stamps_clear(rows_stamps_t *s)
{
    if (s->cap)
        memset(s->stamp, 0, s->cap * sizeof(uint32_t));
}

void rows_stamps_free(rows_stamps_t *s)
{
    free(s->stamp);
    free(s->slot);
    memset(s, 0, sizeof(*s));
}

int rows_gather(const uint32_t *pr, int ps, const uint32_t *idx, int m, int nu, rows_stamps_t *s,
                uint32_t gen, uint32_t *uniq, uint32_t *first, uint32_t *cnt)
{
    uint32_t *stamp = s->stamp, *slot = s->slot;
    for (int i = 0; i < m; i++) {
        int p = idx ? (int)idx[i] : i;
        uint32_t row = pr[(size_t)p * ps];
        if (stamp[row] != gen) {
            stamp[row] = gen;
            slot[row] = (uint32_t)nu;
            uniq[nu] = row;
            first[nu] = (uint32_t)p;
            cnt[nu++] = 1;
        } else {
            cnt[slot[row]]++;
        }
    }
    return nu;
}

void rows_sum(const uint32_t *pr, int ps, const uint32_t *idx, int m, const float *d, int ld, int R,
              const rows_stamps_t *s, const uint32_t *first, const uint32_t *cnt, float *acc)
{
    const uint32_t *slot = s->slot;
    for (int i = 0; i < m; i++) {
        int p = idx ? (int)idx[i] : i;
        uint32_t row = pr[(size_t)p * ps];
        uint32_t k = slot[row];
        if (cnt[k] < 2)
            continue;
        float *dst = acc + (size_t)k * R;
        const float *g = d + (size_t)p * ld;
        if (first[k] == (uint32_t)p)
            memcpy(dst, g, sizeof(float) * R);
        else
            for (int r = 0; r < R; r++)
                dst[r] += g[r];
    }
}

void rows_update(emb_table_t *t, const uint32_t *uniq, int n, const uint32_t *first,
                 const uint32_t *cnt, const float *d, int ld, const float *acc, int R,
                 sparse_opt_t opt, float lr, float l2, float eps)
{
    for (int k = 0; k < n; k++) {
        uint32_t row = uniq[k];
        if (k + 4 < n) { /* a row and its state, a few rows ahead */
            const float *a = emb_row(t, uniq[k + 4]), *st = emb_row_state(t, uniq[k + 4]);
            for (int j = 0; j < R; j += 16) {
                __builtin_prefetch(a + j, 1);
                __builtin_prefetch(st + j, 1);
            }
        }
        float *w = emb_row(t, row);
        const float *g = rows_grad(k, first, cnt, d, ld, acc, R);
        optim_row(opt, w, emb_row_state(t, row), g, R, lr, l2, eps);
    }
}

void rows_mark_dirty(emb_table_t *t, const uint32_t *uniq, int n)
{
    for (int k = 0; k < n; k++) {
        uint32_t e = emb_row_entry(t, uniq[k]);
        if (e != EMB_NONE)
            emb_mark_dirty(t, e);
    }
}

/* ---- shared mode: a window's rows (rows.h) ---- */

float *wrows_at(wrows_t *w, uint32_t e)
{
    if (e >= w->slot_cap) {
        size_t cap = w->slot_cap ? w->slot_cap : 1024;
        while (cap <= e)
            cap *= 2;
        uint32_t *s = realloc(w->slot, sizeof(uint32_t) * cap);
        if (!s)
            return NULL;
        memset(s + w->slot_cap, 0, sizeof(uint32_t) * (cap - w->slot_cap));
        w->slot = s, w->slot_cap = cap;
    }
    if (w->slot[e])
        return w->val + (w->slot[e] - 1) * (size_t)w->width;
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 256;
        uint32_t *ent = realloc(w->ent, sizeof(uint32_t) * cap);
        if (!ent)
            return NULL;
        w->ent = ent;
        float *val = realloc(w->val, sizeof(float) * cap * (size_t)(w->width ? w->width : 1));
        if (!val)
            return NULL;
        w->val = val, w->cap = cap;
    }
    float *v = w->val + w->n * (size_t)w->width;
    memset(v, 0, sizeof(float) * (size_t)w->width);
    w->ent[w->n++] = e;
    w->slot[e] = (uint32_t)w->n;
    return v;
}

void wrows_drop(wrows_t *w, uint32_t e)
{
    if (e < w->slot_cap && w->slot[e]) {
        w->ent[w->slot[e] - 1] = EMB_NONE;
        w->slot[e] = 0;
    }
}

void wrows_clear(wrows_t *w)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->ent[i] != EMB_NONE)
            w->slot[w->ent[i]] = 0;
    w->n = 0;
}

void wrows_free(wrows_t *w)
{
    free(w->slot);
    free(w->ent);
    free(w->val);
}
