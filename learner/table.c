/* table.c — embedding table with open addressing (see table.h).
 *
 * Slots hold (hash, entry+1); 0 marks an empty slot. Deletion uses backward
 * shifting, so there are no tombstones and probes stay short. The table keeps
 * at most half of its slots full.
 *
 * Large arrays ask for transparent huge pages (MADV_HUGEPAGE, honoured when
 * the system's THP mode is madvise or always): fewer TLB misses on random
 * rows, and a fork (a background checkpoint, store/ckpt.h) copies one page
 * table entry per 2 MB instead of 512. */
#define _DEFAULT_SOURCE /* madvise */
#include "table.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>
#include <unistd.h>

#define HUGE_MIN ((size_t)8 << 20) /* arrays smaller than this keep small pages */

#define F_ALIVE 1u
#define F_DIRTY 2u
#define F_TAKEN 4u /* taken by emb_take_dirty or emb_take_new since the id came */
#define F_NEW 8u   /* on the new list: dirty, never taken */

/* An id of up to ID_INLINE - 1 bytes is kept in the entry itself, NUL
 * terminated; a longer one in a block of its own. Most ids are short (a
 * number, a short code): they cost no allocation, and a look-up compares
 * bytes on the entry's own cache line instead of following a pointer. */
#define ID_INLINE 8

typedef struct {
    uint64_t h;
    union {
        char *p;            /* idlen >= ID_INLINE */
        char in[ID_INLINE]; /* idlen < ID_INLINE */
    } id;
    int64_t last_seen;
    uint32_t idlen;
    uint32_t count;
    uint32_t row;
    uint32_t flags;
} entry_t;

struct emb_table {
    emb_config_t cfg;
    int stride; /* width + state */

    uint64_t *slot_h;
    uint32_t *slot_e; /* entry + 1; 0 = empty */
    size_t nslots;    /* power of two */

    entry_t *ent;
    size_t nent, ent_cap, ent_hi; /* live, allocated, high-water index */
    uint32_t *ent_free;
    size_t nent_free, ent_free_cap;

    float *rows; /* (row_cap, stride) */
    uint32_t *row_ent;
    size_t nrows, row_cap, row_hi; /* in use (fallback included), allocated, high water */
    uint32_t *row_free;
    size_t nrow_free, row_free_cap;

    uint32_t *dirty;
    size_t ndirty, dirty_cap;
    uint32_t *fresh; /* the new list: dirty entries never taken (F_NEW), with stale ones */
    size_t nfresh, fresh_cap;

    size_t id_bytes;
    uint64_t admitted, expired, evicted;
};

static inline const char *ent_id(const entry_t *en)
{
    return en->idlen < ID_INLINE ? en->id.in : en->id.p;
}

/* en's id becomes id (en->idlen set); -1 when out of memory (en unchanged) */
static int ent_set_id(entry_t *en, const char *id, size_t idlen)
{
    char *dst = en->id.in;
    if (idlen >= ID_INLINE && !(dst = malloc(idlen + 1)))
        return -1;
    memcpy(dst, id, idlen);
    dst[idlen] = '\0';
    if (idlen >= ID_INLINE)
        en->id.p = dst;
    en->idlen = (uint32_t)idlen;
    return 0;
}

/* heap bytes of an id of idlen bytes (0 inline) */
static inline size_t id_heap_bytes(size_t idlen)
{
    return idlen < ID_INLINE ? 0 : idlen + 1;
}

static inline void ent_free_id(entry_t *en)
{
    if (en->idlen >= ID_INLINE)
        free(en->id.p);
}

/* A hint only: the whole pages of [p, p + bytes) (an array that large is a
 * mapping of its own in glibc's malloc, so the hint covers that mapping) */
static void huge_hint(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    if (!p || bytes < HUGE_MIN)
        return;
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p & ~(pg - 1), e = ((uintptr_t)p + bytes + pg - 1) & ~(pg - 1);
    madvise((void *)a, e - a, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

static int grow_array(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return -1;
    huge_hint(q, n * elem);
    *p = q;
    *cap = n;
    return 0;
}

static void init_row(emb_table_t *t, uint32_t row, uint64_t h)
{
    float *r = t->rows + (size_t)row * t->stride;
    rng_t g;
    rng_seed(&g, t->cfg.seed ^ (h * 0x9e3779b97f4a7c15ULL) ^ (t->cfg.init_by_id ? 0 : row));
    for (int i = 0; i < t->cfg.width; i++)
        r[i] = t->cfg.init_std * rng_normal(&g);
    memset(r + t->cfg.width, 0, sizeof(float) * t->cfg.state);
}

emb_table_t *emb_create(const emb_config_t *cfg, char *errstr, size_t len)
{
    emb_table_t *t = NULL;
    if (cfg->width < 1 || cfg->state < 0 || cfg->admit_after < 1) {
        snprintf(errstr, len, "embedding table: width ≥ 1, state ≥ 0 and admit_after ≥ 1 needed");
        return NULL;
    }
    t = calloc(1, sizeof(*t));
    if (!t)
        goto oom;
    t->cfg = *cfg;
    t->stride = cfg->width + cfg->state;
    t->nslots = 1024;
    t->slot_h = calloc(t->nslots, sizeof(uint64_t));
    t->slot_e = calloc(t->nslots, sizeof(uint32_t));
    if (!t->slot_h || !t->slot_e)
        goto oom;
    if (grow_array((void **)&t->rows, &t->row_cap, 64, sizeof(float) * t->stride))
        goto oom;
    size_t rc = 0;
    if (grow_array((void **)&t->row_ent, &rc, t->row_cap, sizeof(uint32_t)))
        goto oom;
    t->row_ent[0] = EMB_NONE;
    init_row(t, 0, 0);
    t->nrows = t->row_hi = 1;
    return t;
oom:
    snprintf(errstr, len, "embedding table: out of memory");
    emb_free(t);
    return NULL;
}

void emb_free(emb_table_t *t)
{
    if (!t)
        return;
    for (size_t e = 0; e < t->ent_hi; e++)
        if (t->ent[e].flags & F_ALIVE)
            ent_free_id(&t->ent[e]);
    free(t->slot_h);
    free(t->slot_e);
    free(t->ent);
    free(t->ent_free);
    free(t->rows);
    free(t->row_ent);
    free(t->row_free);
    free(t->dirty);
    free(t->fresh);
    free(t);
}

static inline size_t slot_home(const emb_table_t *t, uint64_t h)
{
    return (size_t)(h ^ (h >> 29)) & (t->nslots - 1);
}

static size_t probe(const emb_table_t *t, uint64_t h, const char *id, size_t idlen, int *found)
{
    size_t mask = t->nslots - 1;
    for (size_t i = slot_home(t, h);; i = (i + 1) & mask) {
        uint32_t e1 = t->slot_e[i];
        if (!e1) {
            *found = 0;
            return i;
        }
        if (t->slot_h[i] == h) {
            const entry_t *en = &t->ent[e1 - 1];
            if (en->idlen == idlen && memcmp(ent_id(en), id, idlen) == 0) {
                *found = 1;
                return i;
            }
        }
    }
}

static int rehash(emb_table_t *t, size_t nslots)
{
    uint64_t *nh = calloc(nslots, sizeof(uint64_t));
    uint32_t *ne = calloc(nslots, sizeof(uint32_t));
    if (!nh || !ne) {
        free(nh);
        free(ne);
        return -1;
    }
    huge_hint(nh, nslots * sizeof(uint64_t));
    huge_hint(ne, nslots * sizeof(uint32_t));
    uint64_t *oh = t->slot_h;
    uint32_t *oe = t->slot_e;
    size_t on = t->nslots;
    t->slot_h = nh;
    t->slot_e = ne;
    t->nslots = nslots;
    for (size_t i = 0; i < on; i++) {
        if (!oe[i])
            continue;
        size_t j = slot_home(t, oh[i]);
        while (ne[j])
            j = (j + 1) & (nslots - 1);
        nh[j] = oh[i];
        ne[j] = oe[i];
    }
    free(oh);
    free(oe);
    return 0;
}

static uint32_t alloc_row(emb_table_t *t, uint32_t e)
{
    uint32_t row;
    if (t->nrow_free) {
        row = t->row_free[--t->nrow_free];
    } else {
        size_t rc = t->row_cap;
        if (t->row_hi + 1 > t->row_cap) {
            if (grow_array((void **)&t->rows, &rc, t->row_hi + 1, sizeof(float) * t->stride))
                return 0;
            size_t ec = t->row_cap;
            if (grow_array((void **)&t->row_ent, &ec, rc, sizeof(uint32_t)))
                return 0; /* rows grew, row_ent did not: row_cap stays, retry later */
            t->row_cap = rc;
        }
        row = (uint32_t)t->row_hi++;
    }
    t->row_ent[row] = e;
    init_row(t, row, t->ent[e].h);
    t->nrows++;
    t->admitted++;
    return row;
}

uint32_t emb_touch(emb_table_t *t, uint64_t h, const char *id, size_t idlen, int64_t ts_ms)
{
    if (idlen > EMB_MAX_ID_LEN)
        return EMB_NONE;
    int found;
    size_t s = probe(t, h, id, idlen, &found);
    uint32_t e;
    if (found) {
        e = t->slot_e[s] - 1;
    } else {
        if ((t->nent + 1) * 2 > t->nslots) {
            if (rehash(t, t->nslots * 2))
                return EMB_NONE;
            s = probe(t, h, id, idlen, &found);
        }
        if (!t->nent_free &&
            grow_array((void **)&t->ent, &t->ent_cap, t->ent_hi + 1, sizeof(entry_t)))
            return EMB_NONE;
        /* the entry to take: the last freed one, or the next never used;
         * taken once its id is in */
        e = t->nent_free ? t->ent_free[t->nent_free - 1] : (uint32_t)t->ent_hi;
        entry_t *en = &t->ent[e];
        memset(en, 0, sizeof(*en));
        if (ent_set_id(en, id, idlen))
            return EMB_NONE;
        if (t->nent_free)
            t->nent_free--;
        else
            t->ent_hi++;
        en->h = h;
        en->last_seen = ts_ms;
        en->flags = F_ALIVE;
        t->slot_h[s] = h;
        t->slot_e[s] = e + 1;
        t->nent++;
        t->id_bytes += id_heap_bytes(idlen);
    }
    entry_t *en = &t->ent[e];
    if (en->count < UINT32_MAX)
        en->count++;
    if (ts_ms > en->last_seen)
        en->last_seen = ts_ms;
    if (en->row == 0 && en->count >= t->cfg.admit_after)
        en->row = alloc_row(t, e); /* stays 0 (fallback) if memory ran out */
    return e;
}

uint32_t emb_find(const emb_table_t *t, uint64_t h, const char *id, size_t idlen)
{
    int found;
    size_t s = probe(t, h, id, idlen, &found);
    return found ? t->slot_e[s] - 1 : EMB_NONE;
}

uint32_t emb_entry_row(const emb_table_t *t, uint32_t e)
{
    return t->ent[e].row;
}

uint32_t emb_entry_count(const emb_table_t *t, uint32_t e)
{
    return t->ent[e].count;
}

int64_t emb_entry_last_seen(const emb_table_t *t, uint32_t e)
{
    return t->ent[e].last_seen;
}

const char *emb_entry_id(const emb_table_t *t, uint32_t e, size_t *len)
{
    if (len)
        *len = t->ent[e].idlen;
    return ent_id(&t->ent[e]);
}

uint32_t emb_entry_cap(const emb_table_t *t)
{
    return (uint32_t)t->ent_hi;
}

int emb_entry_alive(const emb_table_t *t, uint32_t e)
{
    return e < t->ent_hi && (t->ent[e].flags & F_ALIVE);
}

float *emb_row(emb_table_t *t, uint32_t row)
{
    return t->rows + (size_t)row * t->stride;
}

float *emb_row_state(emb_table_t *t, uint32_t row)
{
    return t->rows + (size_t)row * t->stride + t->cfg.width;
}

uint32_t emb_row_entry(const emb_table_t *t, uint32_t row)
{
    return row < t->row_hi ? t->row_ent[row] : EMB_NONE;
}

uint32_t emb_row_cap(const emb_table_t *t)
{
    return (uint32_t)t->row_hi;
}

size_t emb_admitted_rows(const emb_table_t *t)
{
    return t->nrows - 1;
}

uint32_t emb_sample_row(const emb_table_t *t, rng_t *r)
{
    if (t->nrows <= 1)
        return 0;
    uint32_t hi = (uint32_t)t->row_hi;
    for (int tries = 0; tries < 64; tries++) {
        uint32_t row = 1 + rng_below(r, hi - 1);
        if (t->row_ent[row] != EMB_NONE)
            return row;
    }
    /* mostly free rows (after a mass expiry): pick the k-th live one */
    size_t k = rng_below(r, (uint32_t)(t->nrows - 1));
    for (uint32_t row = 1; row < hi; row++)
        if (t->row_ent[row] != EMB_NONE && k-- == 0)
            return row;
    return 0;
}

void emb_mark_dirty(emb_table_t *t, uint32_t e)
{
    entry_t *en = &t->ent[e];
    if (en->flags & F_DIRTY)
        return;
    if (grow_array((void **)&t->dirty, &t->dirty_cap, t->ndirty + 1, sizeof(uint32_t)))
        return; /* stays clean; the next change retries */
    en->flags |= F_DIRTY;
    t->dirty[t->ndirty++] = e;
    if (!(en->flags & (F_TAKEN | F_NEW)) &&
        grow_array((void **)&t->fresh, &t->fresh_cap, t->nfresh + 1, sizeof(uint32_t)) == 0) {
        en->flags |= F_NEW;
        t->fresh[t->nfresh++] = e;
    }
}

size_t emb_take_new(emb_table_t *t, uint32_t *out, size_t max)
{
    size_t n = 0;
    while (n < max && t->nfresh) {
        uint32_t e = t->fresh[--t->nfresh];
        entry_t *en = &t->ent[e];
        if (!(en->flags & F_NEW)) /* gone, or taken by emb_take_dirty meanwhile */
            continue;
        en->flags = (en->flags & ~F_NEW) | F_TAKEN;
        out[n++] = e;
    }
    if (t->nfresh == 0 && t->fresh_cap > 4096) { /* a burst of new ids is over */
        free(t->fresh);
        t->fresh = NULL;
        t->fresh_cap = 0;
    }
    return n;
}

size_t emb_new_count(const emb_table_t *t)
{
    return t->nfresh;
}

size_t emb_take_dirty(emb_table_t *t, uint32_t *out, size_t max)
{
    size_t n = 0;
    while (n < max && t->ndirty) {
        uint32_t e = t->dirty[--t->ndirty];
        t->ent[e].flags = (t->ent[e].flags & ~(F_DIRTY | F_NEW)) | F_TAKEN;
        out[n++] = e;
    }
    if (t->ndirty == 0) /* F_NEW implies dirty: what the new list holds is stale */
        t->nfresh = 0;
    return n;
}

size_t emb_dirty_count(const emb_table_t *t)
{
    return t->ndirty;
}

static void remove_slot(emb_table_t *t, size_t i)
{
    size_t mask = t->nslots - 1;
    for (;;) {
        size_t j = i;
        for (;;) {
            j = (j + 1) & mask;
            if (!t->slot_e[j]) {
                t->slot_e[i] = 0;
                t->slot_h[i] = 0;
                return;
            }
            size_t k = slot_home(t, t->slot_h[j]);
            /* j's element may move to i only if its home is not in (i, j] */
            int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
            if (!stays)
                break;
        }
        t->slot_h[i] = t->slot_h[j];
        t->slot_e[i] = t->slot_e[j];
        i = j;
    }
}

static void remove_entry(emb_table_t *t, uint32_t e)
{
    entry_t *en = &t->ent[e];
    int found;
    size_t s = probe(t, en->h, ent_id(en), en->idlen, &found);
    if (found)
        remove_slot(t, s);
    if (en->row) {
        t->row_ent[en->row] = EMB_NONE;
        /* without room on the free list the row is leaked, not corrupted */
        if (grow_array((void **)&t->row_free, &t->row_free_cap, t->nrow_free + 1,
                       sizeof(uint32_t)) == 0)
            t->row_free[t->nrow_free++] = en->row;
        t->nrows--;
    }
    if (en->flags & F_DIRTY) {
        for (size_t k = 0; k < t->ndirty; k++)
            if (t->dirty[k] == e) {
                t->dirty[k] = t->dirty[--t->ndirty];
                break;
            }
    }
    t->id_bytes -= id_heap_bytes(en->idlen);
    ent_free_id(en);
    memset(en, 0, sizeof(*en));
    if (grow_array((void **)&t->ent_free, &t->ent_free_cap, t->nent_free + 1, sizeof(uint32_t)) ==
        0)
        t->ent_free[t->nent_free++] = e;
    t->nent--;
    t->expired++;
}

size_t emb_expire(emb_table_t *t, int64_t now_ms, int (*keep)(void *arg, uint32_t e),
                  void (*gone)(void *arg, uint32_t e), void *arg)
{
    if (t->cfg.expire_ms <= 0)
        return 0;
    size_t n = 0;
    int64_t cutoff = now_ms - t->cfg.expire_ms;
    for (size_t e = 0; e < t->ent_hi; e++) {
        entry_t *en = &t->ent[e];
        if (!(en->flags & F_ALIVE) || en->last_seen >= cutoff)
            continue;
        if (keep && keep(arg, (uint32_t)e))
            continue;
        if (gone)
            gone(arg, (uint32_t)e);
        remove_entry(t, (uint32_t)e);
        n++;
    }
    return n;
}

typedef struct {
    int64_t ts;
    uint32_t e;
} age_t;

static int older(const age_t *a, const age_t *b)
{
    return a->ts < b->ts || (a->ts == b->ts && a->e < b->e);
}

/* Moves the k oldest of a[0..n) to the front (any order): quickselect,
 * Lomuto partition around the middle element (the keys are distinct: the
 * entry index breaks ties of time). */
static void select_oldest(age_t *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n; /* the boundary k lies in [lo, hi] */
    while (hi - lo > 1 && k > lo && k < hi) {
        size_t mid = lo + (hi - lo) / 2;
        age_t tmp = a[mid];
        a[mid] = a[hi - 1];
        a[hi - 1] = tmp;
        const age_t pivot = a[hi - 1];
        size_t store = lo;
        for (size_t i = lo; i < hi - 1; i++)
            if (older(&a[i], &pivot)) {
                tmp = a[i];
                a[i] = a[store];
                a[store++] = tmp;
            }
        tmp = a[store];
        a[store] = a[hi - 1];
        a[hi - 1] = tmp;
        /* a[lo..store) older than the pivot at store, a(store..hi) newer */
        if (k <= store)
            hi = store;
        else
            lo = store + 1;
    }
}

size_t emb_evict_lru(emb_table_t *t, size_t max, size_t low, int (*keep)(void *arg, uint32_t e),
                     void (*gone)(void *arg, uint32_t e), void *arg)
{
    if (t->nent <= max)
        return 0;
    if (low > max)
        low = max;
    age_t *a = malloc(sizeof(age_t) * (t->nent ? t->nent : 1));
    if (!a)
        return 0; /* no memory for the pass: the next one tries again */
    size_t n = 0;
    for (size_t e = 0; e < t->ent_hi; e++) {
        const entry_t *en = &t->ent[e];
        if ((en->flags & F_ALIVE) && !(keep && keep(arg, (uint32_t)e)))
            a[n++] = (age_t){en->last_seen, (uint32_t)e};
    }
    size_t want = t->nent - low, k = want < n ? want : n;
    select_oldest(a, n, k);
    for (size_t i = 0; i < k; i++) {
        if (gone)
            gone(arg, a[i].e);
        remove_entry(t, a[i].e);
        t->evicted++;
    }
    free(a);
    return k;
}

void emb_stats(const emb_table_t *t, emb_stats_t *out)
{
    out->entries = t->nent;
    out->rows = t->nrows;
    out->admitted = t->admitted;
    out->expired = t->expired;
    out->evicted = t->evicted;
    out->bytes = sizeof(*t) + t->nslots * (sizeof(uint64_t) + sizeof(uint32_t)) +
                 t->ent_cap * sizeof(entry_t) + t->row_cap * (sizeof(float) * t->stride) +
                 t->row_cap * sizeof(uint32_t) + t->dirty_cap * sizeof(uint32_t) + t->id_bytes;
}

#define EMB_MAGIC 0x32424d45u /* "EMB2" */

int emb_save(const emb_table_t *t, ser_writer_t *w)
{
    ser_u32(w, EMB_MAGIC);
    ser_u32(w, (uint32_t)t->cfg.width);
    ser_u32(w, (uint32_t)t->cfg.state);
    ser_u64(w, t->nent);
    ser_u64(w, t->ent_hi);
    ser_u64(w, t->admitted);
    ser_u64(w, t->expired);
    ser_put(w, emb_row((emb_table_t *)t, 0), sizeof(float) * t->stride); /* the fallback row */
    for (size_t e = 0; e < t->ent_hi && !w->err; e++) {
        const entry_t *en = &t->ent[e];
        if (!(en->flags & F_ALIVE))
            continue;
        /* entry indices are kept: the rolling buffer refers to them */
        ser_u32(w, (uint32_t)e);
        ser_u64(w, en->h);
        ser_u32(w, en->idlen);
        ser_put(w, ent_id(en), en->idlen);
        ser_u32(w, en->count);
        ser_i64(w, en->last_seen);
        ser_u32(w, en->row ? 1 : 0);
        if (en->row)
            ser_put(w, t->rows + (size_t)en->row * t->stride, sizeof(float) * t->stride);
    }
    return w->err ? -1 : 0;
}

int emb_load(emb_table_t *t, ser_reader_t *r, char *errstr, size_t len)
{
    if (t->nent || t->ent_hi) {
        snprintf(errstr, len, "table: load into a table that is not empty");
        return -1;
    }
    uint32_t magic = ser_get_u32(r), width = ser_get_u32(r), state = ser_get_u32(r);
    uint64_t n = ser_get_u64(r), hi = ser_get_u64(r), admitted = ser_get_u64(r),
             expired = ser_get_u64(r);
    if (r->err || magic != EMB_MAGIC) {
        snprintf(errstr, len, "table: not a saved table");
        return -1;
    }
    if (width != (uint32_t)t->cfg.width || state != (uint32_t)t->cfg.state) {
        snprintf(errstr, len, "table: saved rows are %u+%u floats, this table's %d+%d", width,
                 state, t->cfg.width, t->cfg.state);
        return -1;
    }
    /* hi sizes an allocation: it must be consistent with n (and both with a
     * file that passed its checksum); entries are read one by one after it */
    /* every id takes at least 32 bytes of the stream */
    if (n > hi || hi > (uint64_t)UINT32_MAX - 1 || hi - n > (uint64_t)16 * (n + 1024) ||
        n > ser_left(r) / 32) {
        snprintf(errstr, len, "table: corrupt header (%llu ids below index %llu)",
                 (unsigned long long)n, (unsigned long long)hi);
        return -1;
    }
    if (ser_get(r, emb_row(t, 0), sizeof(float) * t->stride))
        goto corrupt;
    if (grow_array((void **)&t->ent, &t->ent_cap, hi ? hi : 1, sizeof(entry_t)))
        goto oom;
    memset(t->ent, 0, sizeof(entry_t) * t->ent_cap);
    t->ent_hi = hi;
    size_t ns = 1024;
    while (ns < 2 * (n + 1))
        ns *= 2;
    if (ns > t->nslots && rehash(t, ns))
        goto oom;
    char id[EMB_MAX_ID_LEN];
    for (uint64_t i = 0; i < n; i++) {
        uint32_t e = ser_get_u32(r);
        uint64_t h = ser_get_u64(r);
        uint32_t idlen = ser_get_u32(r);
        if (r->err || e >= hi || idlen > EMB_MAX_ID_LEN || (t->ent[e].flags & F_ALIVE))
            goto corrupt;
        ser_get(r, id, idlen);
        uint32_t count = ser_get_u32(r);
        int64_t last = ser_get_i64(r);
        uint32_t has_row = ser_get_u32(r);
        if (r->err || has_row > 1)
            goto corrupt;
        int found;
        size_t sl = probe(t, h, id, idlen, &found);
        if (found)
            goto corrupt; /* the same id twice */
        entry_t *en = &t->ent[e];
        if (ent_set_id(en, id, idlen))
            goto oom;
        en->h = h;
        en->count = count;
        en->last_seen = last;
        en->flags = F_ALIVE;
        t->slot_h[sl] = h;
        t->slot_e[sl] = e + 1;
        t->nent++;
        t->id_bytes += id_heap_bytes(idlen);
        if (has_row) {
            uint32_t row = alloc_row(t, e);
            if (!row)
                goto oom;
            en->row = row;
            if (ser_get(r, t->rows + (size_t)row * t->stride, sizeof(float) * t->stride))
                goto corrupt;
        }
    }
    for (uint32_t e = 0; e < hi; e++) /* the holes are free for new ids */
        if (!(t->ent[e].flags & F_ALIVE) && grow_array((void **)&t->ent_free, &t->ent_free_cap,
                                                       t->nent_free + 1, sizeof(uint32_t)) == 0)
            t->ent_free[t->nent_free++] = e;
    t->admitted = admitted;
    t->expired = expired;
    return 0;
corrupt:
    snprintf(errstr, len, "table: the saved table is short or corrupt");
    return -1;
oom:
    snprintf(errstr, len, "table: out of memory");
    return -1;
}

int emb_large_arrays(const emb_table_t *t, void **p, size_t *n, int max)
{
    void *arr[] = {t->rows, t->ent, t->slot_h, t->slot_e, t->row_ent};
    size_t len[] = {t->row_cap * sizeof(float) * (size_t)t->stride, t->ent_cap * sizeof(entry_t),
                    t->nslots * sizeof(uint64_t), t->nslots * sizeof(uint32_t),
                    t->row_cap * sizeof(uint32_t)};
    int k = 0;
    for (size_t a = 0; a < sizeof(arr) / sizeof(arr[0]) && k < max; a++)
        if (arr[a] && len[a] >= HUGE_MIN) {
            p[k] = arr[a];
            n[k++] = len[a];
        }
    return k;
}

uint64_t emb_digest(const emb_table_t *t)
{
    uint64_t d = 0;
    for (uint32_t e = 0; e < emb_entry_cap(t); e++) {
        if (!emb_entry_alive(t, e))
            continue;
        size_t len;
        const char *id = emb_entry_id(t, e, &len);
        const float *r = t->rows + (size_t)emb_entry_row(t, e) * t->stride;
        d += XXH3_64bits_withSeed(r, sizeof(float) * (size_t)t->stride, XXH3_64bits(id, len));
    }
    return d;
}
