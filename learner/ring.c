/* ring.c — rolling buffer of recent positives (see ring.h).
 * The pair set is an open-addressed multiset keyed by (user, item), at most
 * half full, with backward-shift deletion. A byte per slot (0: empty, else 8
 * bits of the key's hash) is probed before the 16-byte slot itself: samplers
 * ask about pairs that are mostly absent, and the bytes of a buffer of
 * 100,000 events (256 KiB) stay in cache where the slots (4 MiB) do not. */
#include "ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t user, item;
    int64_t ts;
} ev_t;

typedef struct {
    uint64_t key; /* (user << 32 | item) + 1; 0 = empty */
    uint32_t n;
} pair_t;

struct ring {
    ev_t *ev;
    size_t cap, head, n; /* head: index of the oldest */
    pair_t *pairs;
    uint8_t *fp; /* per slot: 0 empty, else pair_fp of its key */
    size_t npairs_slots;
    uint32_t *item_count, *user_count;
    size_t item_cap, user_cap;
    ring_count_fn fn;
    void *fn_arg;
};

static inline uint64_t pair_key(uint32_t user, uint32_t item)
{
    return (((uint64_t)user << 32) | item) + 1;
}

static inline uint64_t pair_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

static inline size_t pair_home(const ring_t *r, uint64_t k)
{
    return (size_t)pair_hash(k) & (r->npairs_slots - 1);
}

/* the top bits of the hash (the home slot takes the low ones), never 0 */
static inline uint8_t pair_fp(uint64_t k)
{
    return (uint8_t)(pair_hash(k) >> 56) | 1u;
}

ring_t *ring_create(size_t capacity, char *errstr, size_t len)
{
    if (capacity < 1) {
        snprintf(errstr, len, "rolling buffer: capacity must be at least 1");
        return NULL;
    }
    ring_t *r = calloc(1, sizeof(*r));
    if (!r)
        goto oom;
    r->cap = capacity;
    r->ev = malloc(sizeof(ev_t) * capacity);
    r->npairs_slots = 16;
    while (r->npairs_slots < 2 * capacity)
        r->npairs_slots *= 2;
    r->pairs = calloc(r->npairs_slots, sizeof(pair_t));
    r->fp = calloc(r->npairs_slots, 1);
    if (!r->ev || !r->pairs || !r->fp)
        goto oom;
    return r;
oom:
    snprintf(errstr, len, "rolling buffer: out of memory");
    ring_free(r);
    return NULL;
}

void ring_free(ring_t *r)
{
    if (!r)
        return;
    free(r->ev);
    free(r->pairs);
    free(r->fp);
    free(r->item_count);
    free(r->user_count);
    free(r);
}

void ring_set_listener(ring_t *r, ring_count_fn fn, void *arg)
{
    r->fn = fn;
    r->fn_arg = arg;
}

static int grow_counts(uint32_t **a, size_t *cap, uint32_t idx)
{
    if (idx < *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n <= idx)
        n *= 2;
    uint32_t *p = realloc(*a, n * sizeof(uint32_t));
    if (!p)
        return -1;
    memset(p + *cap, 0, (n - *cap) * sizeof(uint32_t));
    *a = p;
    *cap = n;
    return 0;
}

static size_t pair_find(const ring_t *r, uint64_t k, int *found)
{
    size_t mask = r->npairs_slots - 1;
    uint64_t h = pair_hash(k);
    uint8_t f = (uint8_t)(h >> 56) | 1u;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        if (!r->fp[i]) {
            *found = 0;
            return i;
        }
        if (r->fp[i] == f && r->pairs[i].key == k) {
            *found = 1;
            return i;
        }
    }
}

static void pair_remove_slot(ring_t *r, size_t i)
{
    size_t mask = r->npairs_slots - 1;
    for (;;) {
        size_t j = i;
        for (;;) {
            j = (j + 1) & mask;
            if (!r->fp[j]) {
                r->pairs[i].key = 0;
                r->pairs[i].n = 0;
                r->fp[i] = 0;
                return;
            }
            size_t k = pair_home(r, r->pairs[j].key);
            int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
            if (!stays)
                break;
        }
        r->pairs[i] = r->pairs[j];
        r->fp[i] = r->fp[j];
        i = j;
    }
}

static void evict_oldest(ring_t *r)
{
    ev_t *o = &r->ev[r->head];
    int found;
    size_t s = pair_find(r, pair_key(o->user, o->item), &found);
    if (found && --r->pairs[s].n == 0)
        pair_remove_slot(r, s);
    r->item_count[o->item]--;
    r->user_count[o->user]--;
    if (r->fn)
        r->fn(r->fn_arg, o->item, r->item_count[o->item]);
    r->head = (r->head + 1) % r->cap;
    r->n--;
}

int ring_push(ring_t *r, uint32_t user, uint32_t item, int64_t ts)
{
    if (grow_counts(&r->item_count, &r->item_cap, item) ||
        grow_counts(&r->user_count, &r->user_cap, user))
        return -1;
    if (r->n == r->cap)
        evict_oldest(r);
    size_t tail = (r->head + r->n) % r->cap;
    r->ev[tail] = (ev_t){user, item, ts};
    r->n++;
    int found;
    uint64_t k = pair_key(user, item);
    size_t s = pair_find(r, k, &found);
    if (!found) { /* at most cap distinct pairs: always room */
        r->pairs[s].key = k;
        r->fp[s] = pair_fp(k);
    }
    r->pairs[s].n++;
    r->item_count[item]++;
    r->user_count[user]++;
    if (r->fn)
        r->fn(r->fn_arg, item, r->item_count[item]);
    return 0;
}

size_t ring_size(const ring_t *r)
{
    return r->n;
}

size_t ring_capacity(const ring_t *r)
{
    return r->cap;
}

void ring_get(const ring_t *r, size_t i, uint32_t *user, uint32_t *item, int64_t *ts)
{
    const ev_t *e = &r->ev[(r->head + i) % r->cap];
    if (user)
        *user = e->user;
    if (item)
        *item = e->item;
    if (ts)
        *ts = e->ts;
}

uint32_t ring_item_count(const ring_t *r, uint32_t item)
{
    return item < r->item_cap ? r->item_count[item] : 0;
}

uint32_t ring_user_count(const ring_t *r, uint32_t user)
{
    return user < r->user_cap ? r->user_count[user] : 0;
}

int ring_has_pair(const ring_t *r, uint32_t user, uint32_t item)
{
    int found;
    pair_find(r, pair_key(user, item), &found);
    return found;
}

void ring_prefetch_pair(const ring_t *r, uint32_t user, uint32_t item)
{
    __builtin_prefetch(&r->fp[pair_home(r, pair_key(user, item))]);
}

#define RING_MAGIC 0x31474e52u /* "RNG1" */

int ring_save(const ring_t *r, ser_writer_t *w)
{
    ser_u32(w, RING_MAGIC);
    ser_u64(w, r->n);
    for (size_t i = 0; i < r->n && !w->err; i++) {
        const ev_t *e = &r->ev[(r->head + i) % r->cap];
        ser_u32(w, e->user);
        ser_u32(w, e->item);
        ser_i64(w, e->ts);
    }
    return w->err ? -1 : 0;
}

int ring_load(ring_t *r, ser_reader_t *rd, uint32_t max_user, uint32_t max_item, char *errstr,
              size_t len)
{
    uint32_t magic = ser_get_u32(rd);
    uint64_t n = ser_get_u64(rd);
    if (rd->err || magic != RING_MAGIC) {
        snprintf(errstr, len, "rolling buffer: not a saved buffer");
        return -1;
    }
    if (r->n) {
        snprintf(errstr, len, "rolling buffer: load into a buffer that is not empty");
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint32_t user = ser_get_u32(rd), item = ser_get_u32(rd);
        int64_t ts = ser_get_i64(rd);
        /* entries index the tables: a corrupt index would grow the count arrays
         * without bound */
        if (rd->err || user >= max_user || item >= max_item) {
            snprintf(errstr, len, "rolling buffer: short or corrupt");
            return -1;
        }
        if (ring_push(r, user, item, ts)) {
            snprintf(errstr, len, "rolling buffer: out of memory");
            return -1;
        }
    }
    return 0;
}
