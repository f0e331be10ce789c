/* join.c — impression/click join (see join.h).
 *
 * Pending impressions sit in a FIFO in arrival order. A map keyed by the
 * (user, item) hash pair counts, per pair, the impressions pending and the
 * clicks that claimed one of them; when an impression of the pair leaves the
 * FIFO it is claimed if a claim is left, else it is a negative. */
#include "join.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t uh, ih;
    char *ids; /* user bytes then item bytes, one allocation */
    uint32_t ulen, ilen;
    int64_t ts;
} pending_t;

typedef struct {
    uint64_t key; /* 0 = empty */
    uint32_t pending, claimed;
} pair_t;

struct join {
    int64_t window, now;
    size_t max_pending;
    pending_t *q;
    size_t qcap, qhead, qn;
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
        free(j->q[(j->qhead + i) % j->qcap].ids);
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

int join_impression(join_t *j, const lrn_id_t *user, const lrn_id_t *item, int64_t ts_ms)
{
    if (j->qn == j->qcap) {
        size_t ncap = j->qcap ? j->qcap * 2 : 1024;
        pending_t *q = malloc(ncap * sizeof(pending_t));
        if (!q)
            return -1;
        for (size_t i = 0; i < j->qn; i++)
            q[i] = j->q[(j->qhead + i) % j->qcap];
        free(j->q);
        j->q = q;
        j->qcap = ncap;
        j->qhead = 0;
    }
    if ((j->mn + 1) * 2 > j->mcap && map_grow(j))
        return -1;
    char *ids = malloc(user->len + item->len + 1);
    if (!ids)
        return -1;
    memcpy(ids, user->id, user->len);
    memcpy(ids + user->len, item->id, item->len);
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
    j->q[(j->qhead + j->qn) % j->qcap] =
        (pending_t){user->h, item->h, ids, (uint32_t)user->len, (uint32_t)item->len, ts_ms};
    j->qn++;
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

size_t join_take(join_t *j, lrn_event_t *out, size_t max)
{
    bury_free(j);
    size_t n = 0;
    while (j->qn && n < max) {
        pending_t *e = &j->q[j->qhead];
        int due = e->ts <= j->now - j->window || j->qn > j->max_pending;
        if (!due)
            break;
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
        if (j->ngrave == j->gcap) {
            size_t ncap = j->gcap ? j->gcap * 2 : 256;
            char **g = realloc(j->grave, ncap * sizeof(char *));
            if (!g)
                break; /* try again on the next take */
            j->grave = g;
            j->gcap = ncap;
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
                                     .negative = 1};
        }
        j->qhead = (j->qhead + 1) % j->qcap;
        j->qn--;
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

void join_set_window(join_t *j, int64_t window_ms)
{
    if (window_ms >= 0)
        j->window = window_ms;
}
