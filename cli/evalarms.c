/* evalarms.c — the arms of `freshrec eval` (see evalarms.h): the online
 * learner, periodic and one-off retraining, recent popularity and streaming
 * item-kNN. Each keeps its own state and sees the stream only through
 * publish, score and observe. */
#include "evalarms.h"

#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void arm_free(arm_t *a)
{
    if (a)
        a->ops->free(a);
}

static int no_publish(arm_t *a, int64_t now_ms, size_t done, char *err, size_t len)
{
    (void)a, (void)now_ms, (void)done, (void)err, (void)len;
    return 0;
}

/* What a product service would have from the vectors a learner published:
 * a user or an item the learner has no entry for has no vector. An unknown
 * user gets nothing personal (every item scores the same: the event is
 * missed); an unknown item cannot be retrieved (it scores below every known
 * one). The rest are scored by learner_score. Without this rule they would
 * score with the fallback row, whose direction is an accident of the seed. */
static void learner_arm_score(learner_t *l, const lrn_id_t *user, const eval_query_t *q, float *out)
{
    if (emb_find(learner_users(l), user->h, user->id, user->len) == EMB_NONE) {
        memset(out, 0, sizeof(float) * q->ncat);
        return;
    }
    learner_score(l, user, q->cat_id, (int)q->ncat, out);
    const emb_table_t *items = learner_items(l);
    for (size_t k = 0; k < q->ncat; k++) {
        const lrn_id_t *i = &q->cat_id[k];
        if (emb_find(items, i->h, i->id, i->len) == EMB_NONE)
            out[k] = -INFINITY;
    }
}

/* ------------------------------------------------------------ online */

typedef struct {
    arm_t a;
    const eval_stream_t *s;
    learner_t *l;
} online_arm_t;

static void online_score(arm_t *a, const eval_query_t *q, float *out)
{
    online_arm_t *o = (online_arm_t *)a;
    const ds_event_t *e = &o->s->d->ev[q->ev];
    learner_arm_score(o->l, &o->s->d->users[e->user], q, out);
}

static int online_observe(arm_t *a, size_t from, size_t to, char *err, size_t len)
{
    online_arm_t *o = (online_arm_t *)a;
    (void)err, (void)len;
    learner_learn(o->l, o->s->lev + from, to - from);
    return 0;
}

static void online_free(arm_t *a)
{
    online_arm_t *o = (online_arm_t *)a;
    learner_free(o->l);
    free(o);
}

static const arm_ops_t online_ops = {no_publish, online_score, online_observe, online_free};

arm_t *arm_online(const eval_stream_t *s, const learner_config_t *cfg, char *err, size_t len)
{
    online_arm_t *o = calloc(1, sizeof(*o));
    if (!o) {
        snprintf(err, len, "out of memory");
        return NULL;
    }
    o->a.ops = &online_ops;
    o->s = s;
    snprintf(o->a.name, sizeof(o->a.name), "online");
    snprintf(o->a.note, sizeof(o->a.note), "%s, one pass", cfg->kind);
    if (!(o->l = learner_create(cfg, err, len))) {
        free(o);
        return NULL;
    }
    return &o->a;
}

/* -------------------------------------------------------- popularity */

typedef struct {
    arm_t a;
    const eval_stream_t *s;
    uint32_t *ring; /* (cap) the items of the last events */
    size_t cap, n, head;
    float *count; /* (nitems) each item's events among them */
} pop_arm_t;

static void pop_score(arm_t *a, const eval_query_t *q, float *out)
{
    pop_arm_t *p = (pop_arm_t *)a;
    for (size_t k = 0; k < q->ncat; k++)
        out[k] = p->count[q->cat_item[k]];
}

static int pop_observe(arm_t *a, size_t from, size_t to, char *err, size_t len)
{
    pop_arm_t *p = (pop_arm_t *)a;
    (void)err, (void)len;
    for (size_t k = from; k < to; k++) {
        uint32_t item = p->s->d->ev[k].item;
        if (p->n == p->cap)
            p->count[p->ring[p->head]] -= 1.0f;
        else
            p->n++;
        p->ring[p->head] = item;
        p->count[item] += 1.0f;
        p->head = (p->head + 1) % p->cap;
    }
    return 0;
}

static void pop_free(arm_t *a)
{
    pop_arm_t *p = (pop_arm_t *)a;
    free(p->ring);
    free(p->count);
    free(p);
}

static const arm_ops_t pop_ops = {no_publish, pop_score, pop_observe, pop_free};

arm_t *arm_popularity(const eval_stream_t *s, size_t window, char *err, size_t len)
{
    pop_arm_t *p = calloc(1, sizeof(*p));
    if (p) {
        p->a.ops = &pop_ops;
        p->s = s;
        p->cap = window ? window : 1;
        p->ring = malloc(sizeof(uint32_t) * p->cap);
        p->count = calloc(s->d->nitems + 1, sizeof(float));
    }
    if (!p || !p->ring || !p->count) {
        if (p)
            pop_free(&p->a);
        snprintf(err, len, "out of memory");
        return NULL;
    }
    snprintf(p->a.name, sizeof(p->a.name), "popularity");
    snprintf(p->a.note, sizeof(p->a.note), "most clicked of the last %zu events", p->cap);
    return &p->a;
}

/* --------------------------------------------------------------- kNN */

typedef struct {
    uint32_t nbr;
    float cnt;
} knn_edge_t;

typedef struct {
    knn_edge_t *e;
    uint32_t n, cap;
} knn_adj_t;

#define KNN_EMPTY UINT64_MAX

typedef struct {
    arm_t a;
    const eval_stream_t *s;
    int recent;
    knn_adj_t *adj;    /* (nitems) each item's co-occurring items */
    float *freq;       /* (nitems) events of each item */
    uint32_t *urecent; /* (nusers, recent) each user's last items, a ring */
    uint32_t *nseen;   /* (nusers) events of each user observed */
    uint64_t *hkey;    /* (hcap) (i << 32 | j), KNN_EMPTY for a free slot */
    uint32_t *hval;    /* (hcap) index of j in adj[i] */
    size_t hcap, hn;   /* slots, used */
    float *acc;        /* (nitems) scratch of score, kept zero between calls */
    double total;      /* events observed */
} knn_arm_t;

static uint64_t knn_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static size_t knn_slot(const knn_arm_t *k, uint64_t key)
{
    size_t m = k->hcap - 1, at = (size_t)knn_mix(key) & m;
    while (k->hkey[at] != KNN_EMPTY && k->hkey[at] != key)
        at = (at + 1) & m;
    return at;
}

/* doubles the hash of edges: 0, or -1 when out of memory */
static int knn_grow(knn_arm_t *k)
{
    size_t oldcap = k->hcap;
    uint64_t *ok = k->hkey;
    uint32_t *ov = k->hval;
    k->hcap = oldcap ? oldcap * 2 : 1u << 16;
    k->hkey = malloc(sizeof(uint64_t) * k->hcap);
    k->hval = malloc(sizeof(uint32_t) * k->hcap);
    if (!k->hkey || !k->hval) {
        free(k->hkey), free(k->hval);
        k->hkey = ok, k->hval = ov, k->hcap = oldcap;
        return -1;
    }
    memset(k->hkey, 0xff, sizeof(uint64_t) * k->hcap);
    for (size_t i = 0; i < oldcap; i++)
        if (ok[i] != KNN_EMPTY) {
            size_t at = knn_slot(k, ok[i]);
            k->hkey[at] = ok[i];
            k->hval[at] = ov[i];
        }
    free(ok);
    free(ov);
    return 0;
}

/* adds 1 to the co-occurrence of items i and j (i's edge to j): 0 or -1 */
static int knn_edge_add(knn_arm_t *k, uint32_t i, uint32_t j)
{
    if (2 * (k->hn + 1) > k->hcap && knn_grow(k))
        return -1;
    uint64_t key = (uint64_t)i << 32 | j;
    size_t at = knn_slot(k, key);
    knn_adj_t *a = &k->adj[i];
    if (k->hkey[at] == key) {
        a->e[k->hval[at]].cnt += 1.0f;
        return 0;
    }
    if (a->n == a->cap) {
        uint32_t cap = a->cap ? a->cap * 2 : 8;
        knn_edge_t *e = realloc(a->e, sizeof(knn_edge_t) * cap);
        if (!e)
            return -1;
        a->e = e, a->cap = cap;
    }
    a->e[a->n] = (knn_edge_t){j, 1.0f};
    k->hkey[at] = key;
    k->hval[at] = a->n++;
    k->hn++;
    return 0;
}

static void knn_score(arm_t *a, const eval_query_t *q, float *out)
{
    knn_arm_t *k = (knn_arm_t *)a;
    size_t from = q->nhist > (size_t)k->recent ? q->nhist - (size_t)k->recent : 0;
    for (size_t h = from; h < q->nhist; h++) {
        uint32_t j = q->hist[h];
        if (k->freq[j] <= 0.0f)
            continue; /* not observed yet (this window) */
        const knn_adj_t *adj = &k->adj[j];
        float w = 1.0f / sqrtf(k->freq[j]);
        for (uint32_t x = 0; x < adj->n; x++)
            k->acc[adj->e[x].nbr] += adj->e[x].cnt * w;
    }
    /* co-occurring items above all others (scores ≥ 1); the rest by popularity, in [0, 1) */
    double pop = 1.0 / (k->total + 1.0);
    for (size_t c = 0; c < q->ncat; c++) {
        uint32_t i = q->cat_item[c];
        float f = k->freq[i];
        out[c] = k->acc[i] > 0.0f ? 1.0f + k->acc[i] / sqrtf(f) : (float)(f * pop);
        k->acc[i] = 0.0f;
    }
}

static int knn_observe(arm_t *a, size_t from, size_t to, char *err, size_t len)
{
    knn_arm_t *k = (knn_arm_t *)a;
    for (size_t x = from; x < to; x++) {
        const ds_event_t *e = &k->s->d->ev[x];
        uint32_t *r = k->urecent + (size_t)e->user * (size_t)k->recent;
        uint32_t have =
            k->nseen[e->user] < (uint32_t)k->recent ? k->nseen[e->user] : (uint32_t)k->recent;
        for (uint32_t h = 0; h < have; h++)
            if (r[h] != e->item &&
                (knn_edge_add(k, e->item, r[h]) || knn_edge_add(k, r[h], e->item))) {
                snprintf(err, len, "item-kNN: out of memory");
                return -1;
            }
        r[k->nseen[e->user]++ % (uint32_t)k->recent] = e->item;
        k->freq[e->item] += 1.0f;
        k->total += 1.0;
    }
    return 0;
}

static void knn_free(arm_t *a)
{
    knn_arm_t *k = (knn_arm_t *)a;
    for (size_t i = 0; k->adj && i < k->s->d->nitems; i++)
        free(k->adj[i].e);
    free(k->adj);
    free(k->freq);
    free(k->urecent);
    free(k->nseen);
    free(k->hkey);
    free(k->hval);
    free(k->acc);
    free(k);
}

static const arm_ops_t knn_ops = {no_publish, knn_score, knn_observe, knn_free};

arm_t *arm_knn(const eval_stream_t *s, int recent, char *err, size_t len)
{
    knn_arm_t *k = calloc(1, sizeof(*k));
    size_t U = s->d->nusers + 1, I = s->d->nitems + 1;
    if (k) {
        k->a.ops = &knn_ops;
        k->s = s;
        k->recent = recent > 0 ? recent : 1;
        k->adj = calloc(I, sizeof(knn_adj_t));
        k->freq = calloc(I, sizeof(float));
        k->acc = calloc(I, sizeof(float));
        k->urecent = malloc(sizeof(uint32_t) * U * (size_t)k->recent);
        k->nseen = calloc(U, sizeof(uint32_t));
    }
    if (!k || !k->adj || !k->freq || !k->acc || !k->urecent || !k->nseen || knn_grow(k)) {
        if (k)
            knn_free(&k->a);
        snprintf(err, len, "out of memory");
        return NULL;
    }
    snprintf(k->a.name, sizeof(k->a.name), "item-kNN");
    snprintf(k->a.note, sizeof(k->a.note),
             "co-occurrence within each user's last %d items, scored from the user's last %d",
             k->recent, k->recent);
    return &k->a;
}

/* ----------------------------------------------------------- retrain */

typedef struct {
    arm_t a;
    const eval_stream_t *s;
    learner_config_t cfg;
    retrain_config_t rc;
    learner_t *l;     /* NULL until the first training */
    lrn_event_t *buf; /* (cap) the shuffled copy trained on */
    size_t cap;
    int64_t next_ms; /* the next scheduled retrain instant */
    size_t last_n;   /* events of the last training */
    int trained, skipped;
    size_t trained_events; /* summed over trainings and epochs */
    int nomap;             /* the online arm's transition map left out */
} retrain_arm_t;

static void retrain_score(arm_t *a, const eval_query_t *q, float *out)
{
    retrain_arm_t *r = (retrain_arm_t *)a;
    if (!r->l) {
        memset(out, 0, sizeof(float) * q->ncat);
        return;
    }
    const ds_event_t *e = &r->s->d->ev[q->ev];
    learner_arm_score(r->l, &r->s->d->users[e->user], q, out);
}

/* Frozen between trainings; a history model's users' last items move on
 * (learner_observe), as a batch-trained model is served with fresh
 * features. */
static int retrain_observe(arm_t *a, size_t from, size_t to, char *err, size_t len)
{
    retrain_arm_t *r = (retrain_arm_t *)a;
    (void)err, (void)len;
    if (r->l)
        learner_observe(r->l, r->s->lev + from, to - from);
    return 0;
}

static void shuffle(lrn_event_t *ev, size_t n, rng_t *g)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_double(g) * (double)i);
        lrn_event_t t = ev[i - 1];
        ev[i - 1] = ev[j];
        ev[j] = t;
    }
}

/* a fresh learner trained on events [0, n), epochs shuffled passes */
static int retrain_now(retrain_arm_t *r, size_t n, char *err, size_t len)
{
    if (n > r->cap) {
        lrn_event_t *b = realloc(r->buf, sizeof(lrn_event_t) * n);
        if (!b) {
            snprintf(err, len, "%s: out of memory", r->a.name);
            return -1;
        }
        r->buf = b, r->cap = n;
    }
    learner_free(r->l);
    if (!(r->l = learner_create(&r->cfg, err, len)))
        return -1;
    memcpy(r->buf, r->s->lev, sizeof(lrn_event_t) * n);
    rng_t g;
    rng_seed(&g, r->cfg.seed * 7919u + (uint64_t)r->trained);
    for (int ep = 0; ep < r->rc.epochs; ep++) {
        shuffle(r->buf, n, &g);
        learner_learn(r->l, r->buf, n);
    }
    /* the shuffled passes left the users' last items out of order: the
     * stream so far, in time order, sets them */
    learner_observe(r->l, r->s->lev, n);
    r->last_n = n;
    r->trained++;
    r->trained_events += n * (size_t)r->rc.epochs;
    return 0;
}

static void retrain_note(retrain_arm_t *r)
{
    const char *nomap = r->nomap ? "; no transition map" : "";
    if (r->rc.every_ms > 0)
        snprintf(r->a.note, sizeof(r->a.note),
                 "%d trainings of %d shuffled epochs every %g h of stream time, %d skipped "
                 "(< %g%% new events), %zu events learned%s",
                 r->trained, r->rc.epochs, (double)r->rc.every_ms / 3.6e6, r->skipped,
                 100.0 * r->rc.growth, r->trained_events, nomap);
    else if (!r->l)
        snprintf(r->a.note, sizeof(r->a.note), "not trained: %zu warm-up events not reached%s",
                 r->rc.once_at, nomap);
    else
        snprintf(r->a.note, sizeof(r->a.note),
                 "trained once (%d shuffled epochs) on the first %zu events, then frozen%s",
                 r->rc.epochs, r->last_n, nomap);
}

static int retrain_publish(arm_t *a, int64_t now_ms, size_t done, char *err, size_t len)
{
    retrain_arm_t *r = (retrain_arm_t *)a;
    int rc = 0;
    if (r->rc.every_ms <= 0) {
        if (!r->l && done > 0 && done >= r->rc.once_at)
            rc = retrain_now(r, done, err, len);
    } else if (now_ms >= r->next_ms) {
        while (r->next_ms <= now_ms)
            r->next_ms += r->rc.every_ms;
        if (done > 0 && (double)done >= (double)r->last_n * (1.0 + r->rc.growth) &&
            done > r->last_n)
            rc = retrain_now(r, done, err, len);
        else
            r->skipped++;
    }
    retrain_note(r);
    return rc;
}

static void retrain_free(arm_t *a)
{
    retrain_arm_t *r = (retrain_arm_t *)a;
    learner_free(r->l);
    free(r->buf);
    free(r);
}

static const arm_ops_t retrain_ops = {retrain_publish, retrain_score, retrain_observe,
                                      retrain_free};

arm_t *arm_retrain(const eval_stream_t *s, const learner_config_t *cfg, const retrain_config_t *rc,
                   const char *name, char *err, size_t len)
{
    retrain_arm_t *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, len, "out of memory");
        return NULL;
    }
    r->a.ops = &retrain_ops;
    r->s = s;
    r->cfg = *cfg;
    r->cfg.preq_rate = 0.0; /* its own rankings would only cost time */
    /* hmf's transition map learns what follows what in the stream's order,
     * which shuffled epochs do not keep: trained with it, the 24-hour
     * retrain fell from recall@20 0.247 to 0.199 on ML-100k. A reference is
     * as strong as its users would make it, so the retrained arms go
     * without (their note says so). */
    r->nomap = cfg->transition_lr > 0.0f;
    r->cfg.transition_lr = 0.0f;
    r->rc = *rc;
    if (r->rc.epochs < 1)
        r->rc.epochs = 1;
    r->next_ms = (s->d->n ? s->d->ev[0].ts_ms : 0) + rc->every_ms;
    snprintf(r->a.name, sizeof(r->a.name), "%s", name);
    /* check the config now, not at the first retrain */
    learner_t *l = learner_create(&r->cfg, err, len);
    if (!l) {
        free(r);
        return NULL;
    }
    learner_free(l);
    retrain_note(r);
    return &r->a;
}
