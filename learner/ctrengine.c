/* ctrengine.c — the click-through models (ctr.c's core with a model's head:
 * lr.c, widedeep.c, dcn.c) behind the daemon's one seam (engine.h): the
 * engine their entries in the table of models name. They still learn
 * through ctr.c's own loop, not learner.c's: this
 * file turns the one example type (lrn_event_t: user, item, a positive or an
 * explicit negative, the example's fields as lrn_feat_t) into ctr_example_t,
 * holds a batch's examples until flush and learns them shuffled, so that no
 * micro-batch holds one label only (Adam on label-pure batches swings the
 * bias back and forth), and gives the tables expiry, eviction and the gone
 * callback the learner's tables have.
 *
 * Not for: the models' math (ctr.c and each model's file). */
#include "engine.h"

#include "rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOLD_MAX 65536 /* examples held before they are learned without a flush */

typedef struct {
    size_t cat0, ncat, num0, nnum;
    float label, weight;
    int64_t ts;
} held_t;

typedef struct {
    int field;
    uint64_t h;
    size_t off, len; /* in bytes */
} held_cat_t;

typedef struct {
    ctr_t *c;
    size_t max_users, max_items;
    lrn_gone_fn gone;
    void *gone_arg;
    rng_t rng; /* the shuffle of what is held */

    held_t *ex;
    size_t n, cap;
    held_cat_t *cat;
    size_t ncat, capcat;
    ctr_num_t *num;
    size_t nnum, capnum;
    char *bytes;
    size_t nbytes, capbytes;
    ctr_example_t *cex; /* (cap) built at flush */
    ctr_cat_t *ccat;    /* (capcat) */
} ctre_t;

/* the core's config with the model's head (its table entry's) */
static int ctr_config_of(const engine_config_t *cfg, ctr_config_t *cc, char *errstr, size_t len)
{
    const model_ops_t *m = model_find(cfg->kind);
    *cc = cfg->ctr;
    cc->shared = cfg->shared;
    if (!m || !m->head) {
        snprintf(errstr, len, "ctr: %.*s is not a click-through model", MODEL_NAME_MAX, cfg->kind);
        return -1;
    }
    cc->head = m->head;
    return 0;
}

static int ce_check(const engine_config_t *cfg, char *errstr, size_t len)
{
    ctr_config_t cc;
    return ctr_config_of(cfg, &cc, errstr, len) ? -1 : ctr_config_check(&cc, errstr, len);
}

static void ce_free(void *p)
{
    ctre_t *e = p;
    if (!e)
        return;
    ctr_free(e->c);
    free(e->ex);
    free(e->cat);
    free(e->num);
    free(e->bytes);
    free(e->cex);
    free(e->ccat);
    free(e);
}

static void *ce_create(const engine_config_t *cfg, char *errstr, size_t len)
{
    ctr_config_t cc;
    if (ctr_config_of(cfg, &cc, errstr, len))
        return NULL;
    ctre_t *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(errstr, len, "ctr: out of memory");
        return NULL;
    }
    if (!(e->c = ctr_create(&cc, errstr, len))) {
        ce_free(e);
        return NULL;
    }
    e->max_users = cfg->learner.max_users;
    e->max_items = cfg->learner.max_items;
    rng_seed(&e->rng, cc.seed);
    return e;
}

/* grows *p (of *cap elements of size sz) to hold need; 0 or -1 */
static int grow(void **p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * sz);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int hold_bytes(ctre_t *e, const char *s, size_t len, size_t *off)
{
    if (grow((void **)&e->bytes, &e->capbytes, e->nbytes + len + 1, 1))
        return -1;
    *off = e->nbytes;
    if (len)
        memcpy(e->bytes + e->nbytes, s, len);
    e->nbytes += len;
    return 0;
}

static int hold_cat(ctre_t *e, int field, uint64_t h, const char *id, size_t len)
{
    size_t off;
    if (grow((void **)&e->cat, &e->capcat, e->ncat + 1, sizeof(held_cat_t)) ||
        hold_bytes(e, id, len, &off))
        return -1;
    e->cat[e->ncat++] = (held_cat_t){field, h, off, len};
    return 0;
}

/* one example held, with copies of its ids and values */
static int hold(ctre_t *e, const lrn_event_t *ev)
{
    const size_t ncat0 = e->ncat, nnum0 = e->nnum, nbytes0 = e->nbytes;
    if (grow((void **)&e->ex, &e->cap, e->n + 1, sizeof(held_t)))
        return -1;
    held_t *x = &e->ex[e->n];
    *x = (held_t){.cat0 = e->ncat,
                  .num0 = e->nnum,
                  .label = ev->negative ? 0.0f : 1.0f,
                  .weight = ev->weight > 0.0f ? ev->weight : 1.0f,
                  .ts = ev->ts_ms};
    if (hold_cat(e, 0, ev->user.h, ev->user.id, ev->user.len) ||
        hold_cat(e, 1, ev->item.h, ev->item.id, ev->item.len))
        goto oom;
    for (int k = 0; ev->feat && k < ev->nfeat; k++) {
        const lrn_feat_t *f = &ev->feat[k];
        if (!f->dense) {
            if (hold_cat(e, f->field, f->h, f->id, f->len))
                goto oom;
        } else {
            if (grow((void **)&e->num, &e->capnum, e->nnum + 1, sizeof(ctr_num_t)))
                goto oom;
            e->num[e->nnum++] = (ctr_num_t){f->field, f->num};
        }
    }
    x->ncat = e->ncat - x->cat0;
    x->nnum = e->nnum - x->num0;
    e->n++;
    return 0;
oom: /* this example is not held; those before it are */
    e->ncat = ncat0, e->nnum = nnum0, e->nbytes = nbytes0;
    return -1;
}

static void tell_gone(ctre_t *e, emb_table_t *t, char side, uint32_t entry)
{
    size_t len;
    const char *id = emb_entry_id(t, entry, &len);
    if (e->gone)
        e->gone(e->gone_arg, side, id, len);
}

static void user_gone(void *arg, uint32_t entry)
{
    ctre_t *e = arg;
    tell_gone(e, ctr_table(e->c, 0), 'u', entry);
    ctr_window_drop(e->c, 0, entry); /* shared mode: a gone user's row is not handed out */
}

static void item_gone(void *arg, uint32_t entry)
{
    ctre_t *e = arg;
    tell_gone(e, ctr_table(e->c, 1), 'i', entry);
}

/* past max_users / max_items: down to 15/16 of it, least recently seen
 * first; shared rows are never evicted (every member holds the same) */
static void evict(ctre_t *e)
{
    if (e->max_users && !ctr_field_shared(e->c, 0))
        emb_evict_lru(ctr_table(e->c, 0), e->max_users, e->max_users - e->max_users / 16, NULL,
                      user_gone, e);
    if (e->max_items && !ctr_field_shared(e->c, 1))
        emb_evict_lru(ctr_table(e->c, 1), e->max_items, e->max_items - e->max_items / 16, NULL,
                      item_gone, e);
}

static void ce_flush(void *p)
{
    ctre_t *e = p;
    if (!e->n)
        return;
    ctr_example_t *cex = realloc(e->cex, sizeof(ctr_example_t) * e->n);
    ctr_cat_t *ccat = realloc(e->ccat, sizeof(ctr_cat_t) * (e->ncat ? e->ncat : 1));
    if (cex)
        e->cex = cex;
    if (ccat)
        e->ccat = ccat;
    if (cex && ccat) {
        for (size_t k = 0; k < e->ncat; k++)
            ccat[k] = (ctr_cat_t){e->cat[k].field,
                                  {e->cat[k].h, e->bytes + e->cat[k].off, e->cat[k].len}};
        for (size_t i = 0; i < e->n; i++) {
            const held_t *x = &e->ex[i];
            cex[i] = (ctr_example_t){.cat = ccat + x->cat0,
                                     .ncat = (int)x->ncat,
                                     .num = e->num ? e->num + x->num0 : NULL,
                                     .nnum = (int)x->nnum,
                                     .label = x->label,
                                     .weight = x->weight,
                                     .ts_ms = x->ts};
        }
        for (size_t i = e->n - 1; i > 0; i--) { /* Fisher-Yates */
            size_t j = rng_below(&e->rng, (uint32_t)(i + 1));
            ctr_example_t t = cex[i];
            cex[i] = cex[j];
            cex[j] = t;
        }
        ctr_learn(e->c, cex, e->n);
        evict(e);
    }
    e->n = e->ncat = e->nnum = e->nbytes = 0;
}

static size_t ce_learn(void *p, const lrn_event_t *ev, size_t n)
{
    ctre_t *e = p;
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        if (hold(e, &ev[i]) == 0) /* out of memory: this one is lost */
            ok++;
        if (e->n == HOLD_MAX)
            ce_flush(e);
    }
    return ok;
}

static size_t ce_expire(void *p, int64_t now_ms)
{
    ctre_t *e = p;
    size_t n = 0;
    emb_table_t *t;
    for (int f = 0; (t = ctr_table(e->c, f)) != NULL; f++) /* shared tables never expire */
        n += emb_expire(t, now_ms, NULL, f == 0 ? user_gone : f == 1 ? item_gone : NULL, e);
    return n;
}

static void ce_on_gone(void *p, lrn_gone_fn fn, void *arg)
{
    ctre_t *e = p;
    e->gone = fn;
    e->gone_arg = arg;
}

static void ce_stats(const void *p, engine_stats_t *out)
{
    const ctre_t *e = p;
    ctr_stats_t cs;
    ctr_stats(e->c, &cs);
    out->lrn.events = cs.examples;
    out->lrn.negatives = cs.examples - cs.positives;
    out->lrn.loss_ewma = cs.loss_ewma;
    out->lrn.nonfinite = cs.nonfinite;
    emb_stats(ctr_table(e->c, 0), &out->lrn.users);
    emb_stats(ctr_table(e->c, 1), &out->lrn.items);
    out->progressive = 1;
    out->auc = cs.auc;
    out->logloss = cs.logloss;
}

static void ce_set_lr(void *p, float lr_sparse, float lr_dense)
{
    ctr_set_lr(((ctre_t *)p)->c, lr_sparse, lr_dense);
}

static emb_table_t *ce_table(void *p, int k)
{
    return ctr_table(((ctre_t *)p)->c, k);
}

static int ce_vector_dim(const void *p)
{
    return ctr_emb_dim(((const ctre_t *)p)->c);
}

/* the user's or item's field embedding */
static void ce_vector(void *p, char side, uint32_t entry, float *out)
{
    ctre_t *e = p;
    emb_table_t *t = ctr_table(e->c, side == 'u' ? 0 : 1);
    memcpy(out, emb_row(t, emb_entry_row(t, entry)), sizeof(float) * (size_t)ctr_emb_dim(e->c));
}

static int ce_vector_layout(const void *p, char *buf, size_t len)
{
    int n = snprintf(buf, len, "emb:0:%d", ctr_emb_dim(((const ctre_t *)p)->c));
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int ce_dense_layout(const void *p, char *buf, size_t len)
{
    return ctr_dense_layout(((const ctre_t *)p)->c, buf, len);
}

static dense_block_t *ce_dense(void *p)
{
    return ctr_dense(((ctre_t *)p)->c);
}

/* The model and the shuffle's random state (so that a loaded engine learns
 * on as the original would); what is held is not saved: the daemon flushes
 * before it checkpoints. */
static int ce_save(const void *p, ser_writer_t *w)
{
    const ctre_t *e = p;
    if (ctr_save(e->c, w))
        return -1;
    ser_put(w, e->rng.s, sizeof(e->rng.s));
    return w->err ? -1 : 0;
}

static int ce_load(void *p, ser_reader_t *r, char *errstr, size_t len)
{
    ctre_t *e = p;
    if (ctr_load(e->c, r, errstr, len))
        return -1;
    if (ser_get(r, e->rng.s, sizeof(e->rng.s))) {
        snprintf(errstr, len, "ctr: short");
        return -1;
    }
    return 0;
}

static size_t ce_window_take(void *p, const learner_window_sink_t *sink, void *arg)
{
    return ctr_window_take(((ctre_t *)p)->c, sink, arg);
}

static int ce_apply_row_grad(void *p, int table, const char *id, size_t len, const float *g,
                             const float *gsq, int R)
{
    return ctr_apply_row_grad(((ctre_t *)p)->c, table, id, len, g, gsq, R);
}

static int ce_apply_row_value(void *p, int table, const char *id, size_t len, const float *v,
                              int width)
{
    return ctr_apply_row_value(((ctre_t *)p)->c, table, id, len, v, width);
}

static int ce_apply_dense(void *p, int table, const float *g, size_t n, uint32_t steps)
{
    return ctr_apply_dense(((ctre_t *)p)->c, table, g, n, steps);
}

static void ce_apply_at(void *p, int64_t ts_ms)
{
    ctr_apply_at(((ctre_t *)p)->c, ts_ms);
}

static uint64_t ce_shared_digest(void *p)
{
    return ctr_shared_digest(((ctre_t *)p)->c);
}

const engine_ops_t ctr_engine = {
    .keys = "cat_fields,num_fields,hash_bits,max_users,max_items,threads,auc_window",
    .check = ce_check,
    .create = ce_create,
    .free = ce_free,
    .learn = ce_learn,
    .flush = ce_flush,
    .expire = ce_expire,
    .on_gone = ce_on_gone,
    .stats = ce_stats,
    .set_lr = ce_set_lr,
    .table = ce_table,
    .vector_dim = ce_vector_dim,
    .vector = ce_vector,
    .vector_layout = ce_vector_layout,
    .dense_layout = ce_dense_layout,
    .dense = ce_dense,
    .save = ce_save,
    .load = ce_load,
    .window_take = ce_window_take,
    .apply_row_grad = ce_apply_row_grad,
    .apply_row_value = ce_apply_row_value,
    .apply_dense = ce_apply_dense,
    .apply_at = ce_apply_at,
    .shared_digest = ce_shared_digest,
};
