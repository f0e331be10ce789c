/* hist.c — each user's most recent items (see hist.h). */
#include "hist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HIST_MAGIC 0x31545348u /* "HST1" */

typedef struct {
    uint32_t item, stamp; /* stamp 0: an empty slot */
} slot_t;

struct hist {
    int K;
    uint32_t ucap, icap;
    slot_t *slot;   /* (ucap, K) */
    uint32_t *head; /* (ucap) the slot the next item goes to */
    uint32_t *born; /* (icap) each item entry's stamp, 0: no live id */
    uint32_t next;  /* the last stamp given */
};

hist_t *hist_create(int K, char *errstr, size_t len)
{
    if (K < 1 || K > HIST_MAX) {
        snprintf(errstr, len, "history: %d items out of range [1, %d]", K, HIST_MAX);
        return NULL;
    }
    hist_t *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(errstr, len, "history: out of memory");
        return NULL;
    }
    h->K = K;
    return h;
}

void hist_free(hist_t *h)
{
    if (!h)
        return;
    free(h->slot);
    free(h->head);
    free(h->born);
    free(h);
}

int hist_k(const hist_t *h)
{
    return h->K;
}

static uint32_t grown(uint32_t have, uint32_t want)
{
    uint32_t n = have ? have : 1024;
    while (n < want)
        n = n > UINT32_MAX / 2 ? want : n * 2;
    return n;
}

int hist_reserve(hist_t *h, uint32_t ucap, uint32_t icap)
{
    if (ucap > h->ucap) {
        uint32_t n = grown(h->ucap, ucap);
        slot_t *s = realloc(h->slot, sizeof(slot_t) * (size_t)n * h->K);
        if (!s)
            return -1;
        h->slot = s;
        uint32_t *hd = realloc(h->head, sizeof(uint32_t) * n);
        if (!hd)
            return -1;
        h->head = hd;
        memset(s + (size_t)h->ucap * h->K, 0, sizeof(slot_t) * (size_t)(n - h->ucap) * h->K);
        memset(hd + h->ucap, 0, sizeof(uint32_t) * (n - h->ucap));
        h->ucap = n;
    }
    if (icap > h->icap) {
        uint32_t n = grown(h->icap, icap);
        uint32_t *b = realloc(h->born, sizeof(uint32_t) * n);
        if (!b)
            return -1;
        memset(b + h->icap, 0, sizeof(uint32_t) * (n - h->icap));
        h->born = b;
        h->icap = n;
    }
    return 0;
}

void hist_new_user(hist_t *h, uint32_t u)
{
    memset(h->slot + (size_t)u * h->K, 0, sizeof(slot_t) * h->K);
    h->head[u] = 0;
}

void hist_new_item(hist_t *h, uint32_t i)
{
    if (++h->next == 0) /* 2^32 births: stamps start over; a stale slot may come back */
        h->next = 1;
    h->born[i] = h->next;
}

void hist_item_gone(hist_t *h, uint32_t i)
{
    if (i < h->icap)
        h->born[i] = 0;
}

void hist_push(hist_t *h, uint32_t u, uint32_t i)
{
    slot_t *s = h->slot + (size_t)u * h->K;
    uint32_t at = h->head[u];
    s[at].item = i;
    s[at].stamp = h->born[i];
    h->head[u] = at + 1 == (uint32_t)h->K ? 0 : at + 1;
}

int hist_items(const hist_t *h, uint32_t u, uint32_t *out)
{
    if (u >= h->ucap)
        return 0;
    const slot_t *s = h->slot + (size_t)u * h->K;
    int n = 0;
    uint32_t at = h->head[u];
    for (int j = 0; j < h->K; j++) {
        at = at == 0 ? (uint32_t)h->K - 1 : at - 1;
        if (s[at].stamp && s[at].item < h->icap && h->born[s[at].item] == s[at].stamp)
            out[n++] = s[at].item;
    }
    return n;
}

int hist_save(const hist_t *h, uint32_t ucap, uint32_t icap, ser_writer_t *w)
{
    if (ucap > h->ucap)
        ucap = h->ucap;
    if (icap > h->icap)
        icap = h->icap;
    ser_u32(w, HIST_MAGIC);
    ser_u32(w, (uint32_t)h->K);
    ser_u32(w, ucap);
    ser_u32(w, icap);
    ser_u32(w, h->next);
    ser_put(w, h->slot, sizeof(slot_t) * (size_t)ucap * h->K);
    ser_put(w, h->head, sizeof(uint32_t) * ucap);
    ser_put(w, h->born, sizeof(uint32_t) * icap);
    return w->err ? -1 : 0;
}

int hist_load(hist_t *h, ser_reader_t *r, char *errstr, size_t len)
{
    uint32_t magic = ser_get_u32(r), K = ser_get_u32(r);
    uint32_t ucap = ser_get_u32(r), icap = ser_get_u32(r), next = ser_get_u32(r);
    if (r->err || magic != HIST_MAGIC || K != (uint32_t)h->K) {
        snprintf(errstr, len, "history: not a saved history of %d items", h->K);
        return -1;
    }
    if ((uint64_t)ucap * K * sizeof(slot_t) + (uint64_t)(ucap + icap) * 4 > ser_left(r)) {
        snprintf(errstr, len, "history: truncated");
        return -1;
    }
    if (hist_reserve(h, ucap, icap)) {
        snprintf(errstr, len, "history: out of memory");
        return -1;
    }
    ser_get(r, h->slot, sizeof(slot_t) * (size_t)ucap * K);
    ser_get(r, h->head, sizeof(uint32_t) * ucap);
    ser_get(r, h->born, sizeof(uint32_t) * icap);
    h->next = next;
    for (uint32_t u = 0; u < ucap; u++)
        if (h->head[u] >= K) {
            snprintf(errstr, len, "history: a corrupt ring head");
            return -1;
        }
    return r->err ? -1 : 0;
}
