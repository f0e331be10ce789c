/* join.c — impression/click join (see join.h).
 *
 * Pending impressions sit in a min-heap by event time (then arrival), so an
 * impression that arrives late from a lagging partition never holds back the
 * decision on others. A map keyed by the (user, item) hash pair counts, per
 * pair, the impressions pending and the clicks that claimed one of them; when
 * an impression of the pair leaves the heap it is claimed if a claim is left,
 * else it is a negative. */
#include "join.h"

#include "table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t uh, ih;
    char *ids; /* user bytes, item bytes, then the payload: one allocation */
    uint32_t ulen, ilen, plen;
    int64_t ts;
    uint64_t seq; /* arrival order, for ties */
} pending_t;

typedef struct {
    uint64_t key; /* 0 = empty */
    uint32_t pending, claimed;
} pair_t;

struct join {
    int64_t window, now;
    size_t max_pending;
    pending_t *q; /* min-heap by (ts, seq) */
    size_t qcap, qn;
    uint64_t seq;
    pair_t *map;
    size_t mcap, mn;
    char **grave; /* id storage of what the last join_take returned */
    size_t ngrave, gcap;
    uint64_t clicked, negatives;
};

static uint64_t pair_hash(uint64_t uh, uint64_t ih)
{
    uint64_t k = uh ^ (ih * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL);
    k ^= k >> 31;
    k *= 0xd6e8feb86659fd93ULL;
    k ^= k >> 32;
    return k ? k : 1;
}

join_t *join_create(int64_t window_ms, size_t max_pending, char *errstr, size_t len)
{
    if (window_ms < 0 || max_pending < 1) {
        snprintf(errstr, len, "join: window must be ≥ 0 and max_pending ≥ 1");
        return NULL;
    }
    join_t *j = calloc(1, sizeof(*j));
    if (!j) {
        snprintf(errstr, len, "join: out of memory");
        return NULL;
    }
    j->window = window_ms;
    j->max_pending = max_pending;
    j->now = INT64_MIN;
    return j;
}

static void bury_free(join_t *j)
{
    for (size_t i = 0; i < j->ngrave; i++)
        free(j->grave[i]);
    j->ngrave = 0;
}

void join_free(join_t *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->qn; i++)
        free(j->q[i].ids);
    bury_free(j);
    free(j->grave);
    free(j->q);
    free(j->map);
    free(j);
}

static pair_t *map_find(const join_t *j, uint64_t key, size_t *slot)
{
    if (!j->mcap)
        return NULL;
    size_t mask = j->mcap - 1;
    for (size_t i = key & mask;; i = (i + 1) & mask) {
        if (j->map[i].key == key) {
            *slot = i;
            return &j->map[i];
        }
        if (!j->map[i].key) {
            *slot = i;
            return NULL;
        }
    }
}

static int map_grow(join_t *j)
{
    size_t ncap = j->mcap ? j->mcap * 2 : 1024;
    pair_t *m = calloc(ncap, sizeof(pair_t));
    if (!m)
        return -1;
    for (size_t i = 0; i < j->mcap; i++) {
        if (!j->map[i].key)
            continue;
        size_t k = j->map[i].key & (ncap - 1);
        while (m[k].key)
            k = (k + 1) & (ncap - 1);
        m[k] = j->map[i];
    }
    free(j->map);
    j->map = m;
    j->mcap = ncap;
    return 0;
}

static void map_remove(join_t *j, size_t i)
{
    size_t mask = j->mcap - 1;
    for (;;) {
        size_t k = i;
        for (;;) {
            k = (k + 1) & mask;
            if (!j->map[k].key) {
                j->map[i].key = 0;
                j->mn--;
                return;
            }
            size_t home = j->map[k].key & mask;
            int stays = i <= k ? (i < home && home <= k) : (i < home || home <= k);
            if (!stays)
                break;
        }
        j->map[i] = j->map[k];
        i = k;
    }
}

static int earlier(const pending_t *a, const pending_t *b)
{
    return a->ts < b->ts || (a->ts == b->ts && a->seq < b->seq);
}

static void heap_push(join_t *j, pending_t e)
{
    size_t i = j->qn++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!earlier(&e, &j->q[parent]))
            break;
        j->q[i] = j->q[parent];
        i = parent;
    }
    j->q[i] = e;
}

/* Puts e at slot i or below it, where the heap order holds. */
static void heap_sift(join_t *j, size_t i, pending_t e)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= j->qn)
            break;
        if (c + 1 < j->qn && earlier(&j->q[c + 1], &j->q[c]))
            c++;
        if (!earlier(&j->q[c], &e))
            break;
        j->q[i] = j->q[c];
        i = c;
    }
    j->q[i] = e;
}

static void heap_pop(join_t *j)
{
    pending_t last = j->q[--j->qn];
    if (j->qn)
        heap_sift(j, 0, last);
}

int join_impression(join_t *j, const lrn_id_t *user, const lrn_id_t *item, int64_t ts_ms,
                    const void *payload, size_t payload_len)
{
    if (!payload)
        payload_len = 0;
    if (j->qn == j->qcap) {
        size_t ncap = j->qcap ? j->qcap * 2 : 1024;
        pending_t *q = realloc(j->q, ncap * sizeof(pending_t));
        if (!q)
            return -1;
        j->q = q;
        j->qcap = ncap;
    }
    if ((j->mn + 1) * 2 > j->mcap && map_grow(j))
        return -1;
    char *ids = malloc(user->len + item->len + payload_len + 1);
    if (!ids)
        return -1;
    memcpy(ids, user->id, user->len);
    memcpy(ids + user->len, item->id, item->len);
    if (payload_len)
        memcpy(ids + user->len + item->len, payload, payload_len);
    uint64_t key = pair_hash(user->h, item->h);
    size_t slot = 0;
    pair_t *p = map_find(j, key, &slot);
    if (!p) {
        p = &j->map[slot];
        p->key = key;
        p->pending = p->claimed = 0;
        j->mn++;
    }
    p->pending++;
    heap_push(j, (pending_t){user->h, item->h, ids, (uint32_t)user->len, (uint32_t)item->len,
                             (uint32_t)payload_len, ts_ms, j->seq++});
    join_advance(j, ts_ms);
    return 0;
}

int join_click(join_t *j, const lrn_id_t *user, const lrn_id_t *item, int64_t ts_ms)
{
    join_advance(j, ts_ms);
    size_t slot = 0;
    pair_t *p = map_find(j, pair_hash(user->h, item->h), &slot);
    if (!p || p->claimed >= p->pending)
        return 0;
    p->claimed++;
    return 1;
}

void join_advance(join_t *j, int64_t ts_ms)
{
    if (ts_ms > j->now)
        j->now = ts_ms;
}

int64_t join_time(const join_t *j)
{
    return j->now;
}

int join_limit_time(join_t *j, int64_t max_ms)
{
    if (j->now <= max_ms)
        return 0;
    int64_t latest = INT64_MIN;
    for (size_t i = 0; i < j->qn; i++) {
        if (j->q[i].ts > max_ms)
            j->q[i].ts = max_ms; /* ties now go by arrival: heapified again below */
        else if (j->q[i].ts > latest)
            latest = j->q[i].ts;
    }
    for (size_t i = j->qn / 2; i-- > 0;)
        heap_sift(j, i, j->q[i]);
    j->now = latest;
    return 1;
}

size_t join_take(join_t *j, lrn_event_t *out, size_t max)
{
    bury_free(j);
    size_t n = 0;
    while (j->qn && n < max) {
        pending_t top = j->q[0], *e = &top;
        /* no event time (INT64_MIN) after join_limit_time: only the bound decides */
        int due = (j->now != INT64_MIN && e->ts <= j->now - j->window) || j->qn > j->max_pending;
        if (!due)
            break;
        if (j->ngrave == j->gcap) { /* room first: nothing is changed if there is none */
            size_t ncap = j->gcap ? j->gcap * 2 : 256;
            char **g = realloc(j->grave, ncap * sizeof(char *));
            if (!g)
                break; /* try again on the next take */
            j->grave = g;
            j->gcap = ncap;
        }
        size_t slot = 0;
        pair_t *p = map_find(j, pair_hash(e->uh, e->ih), &slot);
        int claimed = 0;
        if (p) {
            if (p->claimed) {
                p->claimed--;
                claimed = 1;
            }
            if (--p->pending == 0)
                map_remove(j, slot);
        }
        j->grave[j->ngrave++] = e->ids;
        if (claimed) {
            j->clicked++;
        } else {
            j->negatives++;
            out[n++] = (lrn_event_t){.user = {e->uh, e->ids, e->ulen},
                                     .item = {e->ih, e->ids + e->ulen, e->ilen},
                                     .ts_ms = e->ts,
                                     .weight = 1.0f,
                                     .negative = 1,
                                     .payload = e->plen ? e->ids + e->ulen + e->ilen : NULL,
                                     .payload_len = e->plen};
        }
        heap_pop(j);
    }
    return n;
}

size_t join_pending(const join_t *j)
{
    return j->qn;
}

uint64_t join_clicked_total(const join_t *j)
{
    return j->clicked;
}

uint64_t join_negative_total(const join_t *j)
{
    return j->negatives;
}

#define JOIN_MAGIC 0x314e4a4au /* "JJN1" */
#define JOIN_MAX_PAYLOAD (16u << 20)

int join_save(const join_t *j, ser_writer_t *w)
{
    ser_u32(w, JOIN_MAGIC);
    ser_i64(w, j->now);
    ser_u64(w, j->seq);
    ser_u64(w, j->clicked);
    ser_u64(w, j->negatives);
    ser_u64(w, j->qn);
    for (size_t i = 0; i < j->qn && !w->err; i++) {
        const pending_t *e = &j->q[i];
        ser_u64(w, e->uh);
        ser_u64(w, e->ih);
        ser_u32(w, e->ulen);
        ser_u32(w, e->ilen);
        ser_u32(w, e->plen);
        ser_i64(w, e->ts);
        ser_u64(w, e->seq);
        ser_put(w, e->ids, (size_t)e->ulen + e->ilen + e->plen);
    }
    ser_u64(w, j->mn);
    for (size_t i = 0; i < j->mcap && !w->err; i++)
        if (j->map[i].key) {
            ser_u64(w, j->map[i].key);
            ser_u32(w, j->map[i].pending);
            ser_u32(w, j->map[i].claimed);
        }
    return w->err ? -1 : 0;
}

int join_load(join_t *j, ser_reader_t *r, char *errstr, size_t len)
{
    uint32_t magic = ser_get_u32(r);
    int64_t now = ser_get_i64(r);
    uint64_t seq = ser_get_u64(r), clicked = ser_get_u64(r), negatives = ser_get_u64(r);
    uint64_t qn = ser_get_u64(r);
    if (r->err || magic != JOIN_MAGIC) {
        snprintf(errstr, len, "join: not a saved join");
        return -1;
    }
    if (j->qn || j->mn) {
        snprintf(errstr, len, "join: load into a join that is not empty");
        return -1;
    }
    for (uint64_t i = 0; i < qn; i++) {
        pending_t e;
        e.uh = ser_get_u64(r);
        e.ih = ser_get_u64(r);
        e.ulen = ser_get_u32(r);
        e.ilen = ser_get_u32(r);
        e.plen = ser_get_u32(r);
        e.ts = ser_get_i64(r);
        e.seq = ser_get_u64(r);
        if (r->err || e.ulen > EMB_MAX_ID_LEN || e.ilen > EMB_MAX_ID_LEN ||
            e.plen > JOIN_MAX_PAYLOAD || (uint64_t)e.ulen + e.ilen + e.plen > ser_left(r))
            goto corrupt;
        size_t n = (size_t)e.ulen + e.ilen + e.plen;
        if (!(e.ids = malloc(n + 1)))
            goto oom;
        if (ser_get(r, e.ids, n)) {
            free(e.ids);
            goto corrupt;
        }
        if (j->qn == j->qcap) {
            size_t ncap = j->qcap ? j->qcap * 2 : 1024;
            pending_t *q = realloc(j->q, ncap * sizeof(pending_t));
            if (!q) {
                free(e.ids);
                goto oom;
            }
            j->q = q;
            j->qcap = ncap;
        }
        heap_push(j, e);
    }
    uint64_t mn = ser_get_u64(r);
    for (uint64_t i = 0; i < mn; i++) {
        uint64_t key = ser_get_u64(r);
        uint32_t pending = ser_get_u32(r), claimed = ser_get_u32(r);
        if (r->err || !key || claimed > pending)
            goto corrupt;
        if ((j->mn + 1) * 2 > j->mcap && map_grow(j))
            goto oom;
        size_t slot = 0;
        if (map_find(j, key, &slot))
            goto corrupt;
        j->map[slot] = (pair_t){key, pending, claimed};
        j->mn++;
    }
    if (r->err)
        goto corrupt;
    j->now = now;
    j->seq = seq;
    j->clicked = clicked;
    j->negatives = negatives;
    return 0;
corrupt:
    snprintf(errstr, len, "join: the saved join is short or corrupt");
    return -1;
oom:
    snprintf(errstr, len, "join: out of memory");
    return -1;
}
