/* sampler.c — uniform, popularity, in-batch and hard-negative sampling (see
 * sampler.h). */
#include "sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sampler {
    samp_config_t cfg;
    const emb_table_t *items;
    ring_t *ring;

    /* popularity: Fenwick tree over weights w[item] = count^α */
    double *fen, *w;
    size_t n; /* size of both (a power of two) */
    double total;
    uint64_t updates;

    const uint32_t *batch;
    int nbatch;

    samp_score_fn score;
    void *score_arg;
    uint32_t *cand;
    float *cand_score;
};

void samp_config_default(samp_config_t *cfg)
{
    cfg->kind = SAMP_UNIFORM;
    cfg->alpha = 0.75f;
    cfg->pool = 12;
    cfg->max_tries = 32;
}

static const char *kind_names[] = {"uniform", "popularity", "inbatch", "hard"};

int samp_kind_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, kind_names[i]) == 0)
            return i;
    return -1;
}

const char *samp_kind_name(samp_kind_t kind)
{
    return (unsigned)kind < 4 ? kind_names[kind] : "?";
}

static void fen_rebuild(sampler_t *s)
{
    memcpy(s->fen, s->w, sizeof(double) * s->n);
    s->total = 0.0;
    for (size_t i = 0; i < s->n; i++) {
        s->total += s->w[i];
        size_t j = i | (i + 1);
        if (j < s->n)
            s->fen[j] += s->fen[i];
    }
}

static int fen_grow(sampler_t *s, size_t idx)
{
    if (idx < s->n)
        return 0;
    size_t n = s->n ? s->n : 1024;
    while (n <= idx)
        n *= 2;
    double *w = realloc(s->w, n * sizeof(double));
    if (!w)
        return -1;
    s->w = w;
    memset(s->w + s->n, 0, (n - s->n) * sizeof(double));
    double *f = realloc(s->fen, n * sizeof(double));
    if (!f)
        return -1;
    s->fen = f;
    s->n = n;
    fen_rebuild(s);
    return 0;
}

static void on_count(void *arg, uint32_t item, uint32_t count)
{
    sampler_t *s = arg;
    if (fen_grow(s, item))
        return; /* out of memory: this item keeps its old weight */
    double nw = count ? pow((double)count, (double)s->cfg.alpha) : 0.0;
    double d = nw - s->w[item];
    s->w[item] = nw;
    for (size_t i = item; i < s->n; i |= i + 1)
        s->fen[i] += d;
    s->total += d;
    /* rounding drift of many ± updates is bounded by an occasional rebuild */
    if (++s->updates % (1u << 20) == 0)
        fen_rebuild(s);
}

/* smallest item whose prefix sum exceeds u·total */
static uint32_t fen_sample(const sampler_t *s, rng_t *r)
{
    double u = rng_double(r) * s->total;
    size_t pos = 0;
    for (size_t step = s->n; step; step >>= 1) {
        size_t nxt = pos + step;
        if (nxt <= s->n && s->fen[nxt - 1] <= u) {
            pos = nxt;
            u -= s->fen[nxt - 1];
        }
    }
    if (pos >= s->n)
        pos = s->n - 1;
    /* rounding can land on a zero-weight item: take the nearest one with weight */
    for (size_t d = 0; d < s->n; d++) {
        if (pos >= d && s->w[pos - d] > 0.0)
            return (uint32_t)(pos - d);
        if (pos + d < s->n && s->w[pos + d] > 0.0)
            return (uint32_t)(pos + d);
    }
    return (uint32_t)pos;
}

sampler_t *samp_create(const samp_config_t *cfg, const emb_table_t *items, ring_t *ring,
                       char *errstr, size_t len)
{
    if ((unsigned)cfg->kind > SAMP_HARD) {
        snprintf(errstr, len, "sampler: unknown kind %d", (int)cfg->kind);
        return NULL;
    }
    if (cfg->alpha < 0.0f || cfg->alpha > 2.0f || cfg->pool < 1 || cfg->max_tries < 1) {
        snprintf(errstr, len, "sampler: alpha in [0, 2], pool ≥ 1, max_tries ≥ 1 needed");
        return NULL;
    }
    sampler_t *s = calloc(1, sizeof(*s));
    if (!s)
        goto oom;
    s->cfg = *cfg;
    s->items = items;
    s->ring = ring;
    if (cfg->kind == SAMP_POPULARITY) {
        if (fen_grow(s, 0))
            goto oom;
        ring_set_listener(ring, on_count, s);
        /* a ring that already holds events (e.g. restored) weighs from the start */
        for (size_t i = 0; i < ring_size(ring); i++) {
            uint32_t item;
            ring_get(ring, i, NULL, &item, NULL);
            on_count(s, item, ring_item_count(ring, item));
        }
    }
    if (cfg->kind == SAMP_HARD) {
        s->cand = malloc(sizeof(uint32_t) * cfg->pool);
        s->cand_score = malloc(sizeof(float) * cfg->pool);
        if (!s->cand || !s->cand_score)
            goto oom;
    }
    return s;
oom:
    snprintf(errstr, len, "sampler: out of memory");
    samp_free(s);
    return NULL;
}

void samp_free(sampler_t *s)
{
    if (!s)
        return;
    if (s->cfg.kind == SAMP_POPULARITY)
        ring_set_listener(s->ring, NULL, NULL);
    free(s->fen);
    free(s->w);
    free(s->cand);
    free(s->cand_score);
    free(s);
}

void samp_set_scorer(sampler_t *s, samp_score_fn fn, void *arg)
{
    s->score = fn;
    s->score_arg = arg;
}

void samp_set_batch(sampler_t *s, const uint32_t *items, int n)
{
    s->batch = items;
    s->nbatch = n;
}

static uint32_t draw_uniform(const sampler_t *s, rng_t *r)
{
    uint32_t row = emb_sample_row(s->items, r);
    return row ? emb_row_entry(s->items, row) : EMB_NONE;
}

/* one candidate from the kind's base distribution, EMB_NONE if there is none */
static uint32_t draw_one(const sampler_t *s, rng_t *r)
{
    switch (s->cfg.kind) {
    case SAMP_POPULARITY:
        if (s->total > 0.0)
            return fen_sample(s, r);
        return draw_uniform(s, r); /* empty buffer: nothing to weigh by yet */
    case SAMP_INBATCH:
        if (s->nbatch > 0)
            return s->batch[rng_below(r, (uint32_t)s->nbatch)];
        return EMB_NONE;
    case SAMP_HARD: /* a pool drawn by popularity makes its random half popularity
                     * negatives, which lost 0.1 of leave-one-out HR@10 */
    case SAMP_UNIFORM:
    default:
        return draw_uniform(s, r);
    }
}

float samp_prob(const sampler_t *s, uint32_t item)
{
    switch (s->cfg.kind) {
    case SAMP_POPULARITY:
        if (s->total > 0.0)
            return item < s->n ? (float)(s->w[item] / s->total) : 0.0f;
        break;
    case SAMP_INBATCH: {
        if (s->nbatch <= 0)
            return 0.0f;
        /* Given the batch, an item is drawn with its share of it; but the
         * batch is itself a draw from the stream, and what the logQ correction
         * needs is the marginal over batches: the probability that a position
         * holds the item, i.e. its frequency in the stream (Yi et al. 2019
         * estimate it by streaming frequency estimation). One batch's share is
         * no estimate of it: in a batch of 256 most items occur once, so most
         * shares are 1/256 and the correction all but cancels. The rolling
         * buffer's counts are that frequency over its window (the learner
         * pushes a batch's positives into it before drawing). */
        size_t n = ring_size(s->ring);
        uint32_t c = ring_item_count(s->ring, item);
        if (n && c)
            return (float)c / (float)n;
        /* not in the buffer (its push failed, or no caller pushed the batch):
         * its share of the batch, the only estimate left */
        int m = 0;
        for (int i = 0; i < s->nbatch; i++)
            m += s->batch[i] == item;
        return (float)m / (float)s->nbatch;
    }
    case SAMP_HARD: {
        size_t n = emb_admitted_rows(s->items);
        if (!n)
            return 0.0f;
        float p = (float)s->cfg.pool / (float)n;
        return p < 1.0f ? p : 1.0f;
    }
    default:
        break;
    }
    size_t n = emb_admitted_rows(s->items);
    return n ? 1.0f / (float)n : 0.0f;
}

int samp_hard_skip(int c)
{
    return c >= 8;
}

static int valid_negative(const sampler_t *s, uint32_t user, uint32_t item)
{
    return item != EMB_NONE && !ring_has_pair(s->ring, user, item);
}

int samp_draw(sampler_t *s, rng_t *r, uint32_t user, uint32_t *items, float *q, int k)
{
    if (s->cfg.kind == SAMP_HARD && s->score) {
        int c = 0;
        for (int t = 0; c < s->cfg.pool && t < s->cfg.pool * s->cfg.max_tries; t++) {
            uint32_t it = draw_one(s, r);
            if (!valid_negative(s, user, it))
                continue;
            int dup = 0; /* the pool holds distinct items, so the top k are distinct */
            for (int j = 0; j < c && !dup; j++)
                dup = s->cand[j] == it;
            if (!dup)
                s->cand[c++] = it;
        }
        if (c == 0)
            return 0;
        s->score(s->score_arg, user, s->cand, c, s->cand_score);
        /* past the top samp_hard_skip, the nh next by score, then the rest
         * drawn at random from below them (uniform negatives: the pool is a
         * uniform draw) */
        int skip = samp_hard_skip(c), n = k < c - skip ? k : c - skip;
        int nh = (n + 3) / 4, m = skip + nh;
        /* partial selection sort: the m best to the front */
        for (int i = 0; i < m; i++) {
            int best = i;
            for (int j = i + 1; j < c; j++)
                if (s->cand_score[j] > s->cand_score[best])
                    best = j;
            uint32_t ti = s->cand[i];
            float ts = s->cand_score[i];
            s->cand[i] = s->cand[best];
            s->cand_score[i] = s->cand_score[best];
            s->cand[best] = ti;
            s->cand_score[best] = ts;
        }
        for (int i = 0; i < nh; i++)
            items[i] = s->cand[skip + i];
        for (int i = nh; i < n; i++) { /* distinct: a partial shuffle of the rest */
            int j = m + (int)rng_below(r, (uint32_t)(c - m));
            uint32_t t = s->cand[m];
            s->cand[m] = s->cand[j];
            s->cand[j] = t;
            items[i] = s->cand[m++];
        }
        for (int i = 0; i < n; i++)
            q[i] = samp_prob(s, items[i]);
        return n;
    }
    int n = 0;
    for (int i = 0; i < k; i++) {
        for (int t = 0; t < s->cfg.max_tries; t++) {
            uint32_t it = draw_one(s, r);
            if (valid_negative(s, user, it)) {
                items[n] = it;
                q[n] = samp_prob(s, it);
                n++;
                break;
            }
        }
    }
    return n;
}

void samp_draw_batch(sampler_t *s, rng_t *r, const uint32_t *users, int B, int k, uint32_t *items,
                     float *q, int *found)
{
    if (s->cfg.kind == SAMP_HARD) {
        for (int b = 0; b < B; b++)
            found[b] = samp_draw(s, r, users[b], items + (size_t)b * k, q + (size_t)b * k, k);
        return;
    }
    /* first pass: one candidate per place, its pair look-up prefetched */
    for (int b = 0; b < B; b++)
        for (int j = 0; j < k; j++) {
            uint32_t it = draw_one(s, r);
            items[(size_t)b * k + j] = it;
            if (it != EMB_NONE)
                ring_prefetch_pair(s->ring, users[b], it);
        }
    /* second pass: keep the valid ones, redraw the rest one by one */
    for (int b = 0; b < B; b++) {
        uint32_t *row = items + (size_t)b * k;
        float *qrow = q + (size_t)b * k;
        int n = 0;
        for (int j = 0; j < k; j++) {
            uint32_t it = row[j];
            for (int t = 1; !valid_negative(s, users[b], it) && t < s->cfg.max_tries; t++)
                it = draw_one(s, r);
            if (!valid_negative(s, users[b], it))
                continue;
            row[n] = it;
            qrow[n] = samp_prob(s, it);
            n++;
        }
        found[b] = n;
    }
}
