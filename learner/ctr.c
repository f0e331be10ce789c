/* ctr.c — the shared core of the click-through models (see ctr.h): field
 * tables, gathering, the normaliser, the wide part's hashing, the deep MLP,
 * the micro-batch learn loop, progressive AUC/logloss, save and load. What
 * a model adds is its head (lr.c, widedeep.c, dcn.c), called through
 * ctr_head_t; nothing here asks which model runs.
 *
 * Per micro-batch: look up (or admit) every categorical value's embedding
 * row; normalise the dense features; x0 = [field embeddings ; dense]; forward
 * (deep MLP with one sgemm per layer, wide sums, the head); progressive
 * predictions go to AUC/logloss before anything is learned; BCE; backward;
 * Adagrad on the wide weights; Adam on the dense block (the engines' one
 * step: NaN guard, clipping), Adagrad on touched rows (once per row, summed).
 * With cfg.threads > 1, forward and backward are split by examples among a
 * pool's threads (each with its own head workspace and dense gradients,
 * summed after); gathering and every update stay on the caller's thread.
 *
 * Dense block layout, in order:
 *   deep:  W_l (mlp[l], in_l), b_l (mlp[l])       CTR_DEEP; in_0 = X = ncat·E + nnum
 *   head:  its own size floats                     (dcn: cross layers, wout)
 *   wnum (nnum)                                    CTR_WIDE
 *   bias (1) */
#include "ctr.h"

#include "ctrlayers.h"
#include "id.h"
#include "kern.h"
#include "layers.h"
#include "loss.h"
#include "pool.h"
#include "rank.h"
#include "rng.h"
#include "rows.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct ctr {
    ctr_config_t cfg;
    int E, X, H, L; /* embedding width, x0 width, last deep width, deep layers */
    emb_table_t *tab[CTR_MAX_FIELDS];
    norm_t norm;
    pv_t pv;

    float *wide_w, *wide_g2; /* (2^wide_bits) weights and Adagrad state */
    uint64_t wide_mask;

    dense_block_t dense;
    size_t w_off[CTR_MAX_LAYERS], b_off[CTR_MAX_LAYERS];
    size_t head_off, wnum_off, bias_off;
    const ctr_head_t *head;

    /* threads: each forwards and backwards a slice of the batch */
    int nt, slice;                         /* threads; most examples of a slice */
    pool_t *pool;                          /* NULL with one thread */
    dense_block_t wdense[CTR_MAX_THREADS]; /* [t ≥ 1] thread t's gradients (its params:
                                            * the model's) */
    void *head_ws[CTR_MAX_THREADS];        /* each thread's head workspace */
    int pass_B;                            /* the batch the phases split */

    /* micro-batch workspace */
    int maxb;
    uint32_t *rows;      /* (B, ncat) row of each categorical field */
    uint64_t *widx;      /* (B, nwide) wide weight indices */
    int nwide;           /* ncat + ncross */
    float *xnum, *xraw;  /* (B, nnum) normalised, raw */
    unsigned char *pres; /* (B, nnum) */
    float *h[CTR_MAX_LAYERS + 1], *dh[CTR_MAX_LAYERS + 1]; /* h[0] = x0 (B, X) */
    float *logits, *dz, *labels, *weights, *p;
    /* row updates, once per (field, row), by the shared module (rows.h) */
    rows_stamps_t stamps[CTR_MAX_FIELDS];
    uint32_t gen;
    float *gacc;                  /* (B, E) one field's summed gradients */
    uint32_t *uniq, *first, *cnt; /* (B) one field's rows */

    uint64_t examples, positives, nonfinite;
    ewma_t loss; /* of the batches' mean BCE (rank.h) */

    /* shared mode: the window (ctr_window_take) */
    wrows_t wf[CTR_MAX_FIELDS]; /* shared fields: g, gsq (2E); the owned: membership */
    wrows_t ww;                 /* wide weights by index: g, gsq */
    float *wsum;                /* the dense block's gradient sum */
    size_t wbatches;
    double *wn;       /* (3 nnum) each dense feature's count, mean, M2 in the window */
    int64_t apply_ts; /* ctr_apply_at */
};

void ctr_config_default(ctr_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->emb_dim = 8;
    cfg->admit_after = 1;
    cfg->mlp[0] = 64;
    cfg->mlp[1] = 32;
    cfg->nmlp = 2;
    cfg->cross_layers = 3;
    cfg->wide_bits = 20;
    cfg->lr_sparse = 0.1f;
    cfg->lr_dense = 0.003f;
    cfg->clip = 5.0f;
    cfg->batch = 64;
    cfg->auc_window = 10000;
    cfg->clip_norm = 10.0f;
    cfg->threads = 1;
    cfg->seed = 1;
}

static int has_deep(const ctr_t *c)
{
    return (c->head->parts & CTR_DEEP) != 0;
}

static int has_wide(const ctr_t *c)
{
    return (c->head->parts & CTR_WIDE) != 0;
}

/* 1 when the field rows (x0) get a gradient: a deep part or a head that
 * backpropagates (lr has neither: its rows never move) */
static int x0_learns(const ctr_t *c)
{
    return has_deep(c) || c->head->backward != NULL;
}

int ctr_config_check(const ctr_config_t *cfg, char *errstr, size_t len)
{
    if (!cfg->head) {
        snprintf(errstr, len, "ctr: no model (its head) given");
        return -1;
    }
    if (cfg->ncat < 0 || cfg->nnum < 0 || cfg->ncat > CTR_MAX_FIELDS ||
        cfg->nnum > CTR_MAX_FIELDS || cfg->ncat + cfg->nnum == 0) {
        snprintf(errstr, len, "ctr: need 1..%d categorical and/or dense fields", CTR_MAX_FIELDS);
        return -1;
    }
    if (cfg->emb_dim < 1 || cfg->emb_dim > 256 || cfg->hash_bits < 0 || cfg->hash_bits > 30 ||
        cfg->wide_bits < 1 || cfg->wide_bits > 30 || cfg->batch < 1 || cfg->batch > 65536 ||
        cfg->auc_window < 1 || cfg->admit_after < 1 || !(cfg->clip > 0)) {
        snprintf(errstr, len,
                 "ctr: emb_dim 1..256, hash_bits 0..30, wide_bits 1..30, batch "
                 "1..65536, auc_window ≥ 1, admit_after ≥ 1, clip > 0 needed");
        return -1;
    }
    if (cfg->threads < 0 || cfg->threads > CTR_MAX_THREADS) {
        snprintf(errstr, len, "ctr: threads %d, not in [1, %d]", cfg->threads, CTR_MAX_THREADS);
        return -1;
    }
    if ((cfg->head->parts & CTR_DEEP) && (cfg->nmlp < 1 || cfg->nmlp > CTR_MAX_LAYERS)) {
        snprintf(errstr, len, "ctr: the deep part needs 1..%d layers", CTR_MAX_LAYERS);
        return -1;
    }
    for (int l = 0; l < cfg->nmlp; l++)
        if (cfg->mlp[l] < 1 || cfg->mlp[l] > 4096) {
            snprintf(errstr, len, "ctr: deep layer %d has width %d, not in [1, 4096]", l,
                     cfg->mlp[l]);
            return -1;
        }
    if (cfg->ncross < 0 || cfg->ncross > CTR_MAX_CROSSES) {
        snprintf(errstr, len, "ctr: at most %d crosses", CTR_MAX_CROSSES);
        return -1;
    }
    for (int k = 0; k < cfg->ncross; k++)
        if (cfg->cross[k][0] < 0 || cfg->cross[k][0] >= cfg->ncat || cfg->cross[k][1] < 0 ||
            cfg->cross[k][1] >= cfg->ncat || cfg->cross[k][0] == cfg->cross[k][1]) {
            snprintf(errstr, len,
                     "ctr: cross %d names fields %d×%d; need two different "
                     "categorical fields",
                     k, cfg->cross[k][0], cfg->cross[k][1]);
            return -1;
        }
    if (cfg->shared && cfg->admit_after != 1) {
        snprintf(errstr, len,
                 "ctr: several members share rows made at a value's first example: "
                 "admit_after must be 1, not %u",
                 cfg->admit_after);
        return -1;
    }
    return cfg->head->check ? cfg->head->check(cfg, errstr, len) : 0;
}

int ctr_field_shared(const ctr_t *c, int f)
{
    return c->cfg.shared && (f != 0 || c->cfg.hash_bits != 0);
}

ctr_t *ctr_create(const ctr_config_t *cfg, char *errstr, size_t len)
{
    ctr_t *c = NULL;
    if (ctr_config_check(cfg, errstr, len) < 0)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (!c)
        goto oom;
    c->cfg = *cfg;
    c->head = cfg->head;
    c->E = cfg->emb_dim;
    c->X = cfg->ncat * c->E + cfg->nnum;
    c->L = has_deep(c) ? cfg->nmlp : 0;
    c->H = c->L ? cfg->mlp[c->L - 1] : 0;
    c->nwide = cfg->ncat + cfg->ncross;
    c->maxb = cfg->batch;
    c->nt = cfg->threads > 1 ? cfg->threads : 1; /* 0 counts as 1 */
    c->slice = (c->maxb + c->nt - 1) / c->nt;

    for (int f = 0; f < cfg->ncat; f++) {
        emb_config_t ec = {.width = c->E,
                           .state = c->E,
                           .admit_after = cfg->admit_after,
                           .expire_ms = cfg->expire_ms,
                           .init_std = 0.01f,
                           .seed = cfg->seed * 131 + (uint64_t)f};
        if (ctr_field_shared(c, f)) /* every member makes the same row, and keeps it */
            ec.expire_ms = 0, ec.init_by_id = 1;
        if (!(c->tab[f] = emb_create(&ec, errstr, len)))
            goto err;
        c->wf[f].width = ctr_field_shared(c, f) ? 2 * c->E : 0;
    }
    c->ww.width = 2;
    if (cfg->shared && cfg->nnum && !(c->wn = calloc(3 * (size_t)cfg->nnum, sizeof(double))))
        goto oom;
    if (cfg->nnum && norm_init(&c->norm, cfg->nnum, cfg->clip))
        goto oom;
    ewma_init(&c->loss, 0.01);
    if (pv_init(&c->pv, cfg->auc_window))
        goto oom;
    if (has_wide(c)) {
        size_t n = (size_t)1 << cfg->wide_bits;
        c->wide_mask = n - 1;
        c->wide_w = calloc(n, sizeof(float));
        c->wide_g2 = calloc(n, sizeof(float));
        if (!c->wide_w || !c->wide_g2)
            goto oom;
    }

    size_t off = 0;
    int in = c->X;
    for (int l = 0; l < c->L; l++) {
        c->w_off[l] = off;
        off += (size_t)cfg->mlp[l] * in;
        c->b_off[l] = off;
        off += cfg->mlp[l];
        in = cfg->mlp[l];
    }
    c->head_off = off;
    if (c->head->size)
        off += c->head->size(cfg, c->X, c->H);
    c->wnum_off = off;
    if (has_wide(c))
        off += cfg->nnum;
    c->bias_off = off;
    off += 1;
    if (dense_block_init(&c->dense, off) ||
        (cfg->shared && !(c->wsum = calloc(off, sizeof(float)))))
        goto oom;
    rng_t r;
    rng_seed(&r, cfg->seed ^ 0xc7ULL);
    in = c->X;
    for (int l = 0; l < c->L; l++) {
        float a = sqrtf(6.0f / (float)(in + cfg->mlp[l]));
        float *w = c->dense.params + c->w_off[l];
        for (size_t i = 0; i < (size_t)cfg->mlp[l] * in; i++)
            w[i] = (float)(2.0 * rng_double(&r) - 1.0) * a;
        in = cfg->mlp[l];
    }
    if (c->head->init)
        c->head->init(c->dense.params + c->head_off, cfg, c->X, c->H, &r);
    for (int t = 1; t < c->nt; t++) {
        if (dense_block_init(&c->wdense[t], off))
            goto oom;
        dense_block_share_params(&c->wdense[t], &c->dense);
    }
    if (c->nt > 1 && !(c->pool = pool_create(c->nt))) {
        snprintf(errstr, len, "ctr: cannot start %d threads", c->nt);
        goto err;
    }

    /* workspace */
    size_t B = (size_t)c->maxb;
    c->rows = malloc(sizeof(uint32_t) * B * (cfg->ncat ? cfg->ncat : 1));
    c->widx = malloc(sizeof(uint64_t) * B * (c->nwide ? c->nwide : 1));
    c->xnum = calloc(B * (cfg->nnum ? cfg->nnum : 1), sizeof(float));
    c->xraw = calloc(B * (cfg->nnum ? cfg->nnum : 1), sizeof(float));
    c->pres = calloc(B * (cfg->nnum ? cfg->nnum : 1), 1);
    c->h[0] = malloc(sizeof(float) * B * c->X);
    c->dh[0] = malloc(sizeof(float) * B * c->X);
    if (!c->rows || !c->widx || !c->xnum || !c->xraw || !c->pres || !c->h[0] || !c->dh[0])
        goto oom;
    for (int l = 0; l < c->L; l++) {
        c->h[l + 1] = malloc(sizeof(float) * B * cfg->mlp[l]);
        c->dh[l + 1] = malloc(sizeof(float) * B * cfg->mlp[l]);
        if (!c->h[l + 1] || !c->dh[l + 1])
            goto oom;
    }
    for (int t = 0; t < c->nt; t++)
        if (c->head->create && !(c->head_ws[t] = c->head->create(cfg, c->X, c->H, c->slice)))
            goto oom;
    c->logits = malloc(sizeof(float) * B);
    c->dz = malloc(sizeof(float) * B);
    c->labels = malloc(sizeof(float) * B);
    c->weights = malloc(sizeof(float) * B);
    c->p = malloc(sizeof(float) * B);
    c->gacc = malloc(sizeof(float) * B * c->E);
    c->uniq = malloc(sizeof(uint32_t) * B);
    c->first = malloc(sizeof(uint32_t) * B);
    c->cnt = malloc(sizeof(uint32_t) * B);
    if (!c->logits || !c->dz || !c->labels || !c->weights || !c->p || !c->gacc || !c->uniq ||
        !c->first || !c->cnt)
        goto oom;
    return c;
oom:
    snprintf(errstr, len, "ctr: out of memory");
err:
    ctr_free(c);
    return NULL;
}

void ctr_free(ctr_t *c)
{
    if (!c)
        return;
    for (int f = 0; f < CTR_MAX_FIELDS; f++) {
        emb_free(c->tab[f]);
        rows_stamps_free(&c->stamps[f]);
        wrows_free(&c->wf[f]);
    }
    wrows_free(&c->ww);
    free(c->wsum);
    free(c->wn);
    norm_free(&c->norm);
    pv_free(&c->pv);
    dense_block_free(&c->dense);
    free(c->wide_w);
    free(c->wide_g2);
    free(c->rows);
    free(c->widx);
    free(c->xnum);
    free(c->xraw);
    free(c->pres);
    for (int l = 0; l <= CTR_MAX_LAYERS; l++) {
        free(c->h[l]);
        free(c->dh[l]);
    }
    for (int t = 0; t < CTR_MAX_THREADS; t++) {
        if (c->head && c->head->free)
            c->head->free(c->head_ws[t]);
        dense_block_free(&c->wdense[t]);
    }
    pool_free(c->pool);
    free(c->logits);
    free(c->dz);
    free(c->labels);
    free(c->weights);
    free(c->p);
    free(c->gacc);
    free(c->uniq);
    free(c->first);
    free(c->cnt);
    free(c);
}

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t k = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL + (a << 6) + (a >> 2));
    k ^= k >> 31;
    k *= 0xd6e8feb86659fd93ULL;
    return k ^ (k >> 32);
}

/* The row of field f's value: admitted (touch) when learning, found only when
 * predicting; the hashing trick maps the value to one of 2^hash_bits ids. */
static uint32_t value_row(ctr_t *c, int f, const lrn_id_t *v, int touch, int64_t ts)
{
    lrn_id_t key = *v;
    char buf[24];
    if (c->cfg.hash_bits) {
        uint64_t bucket = v->h & (((uint64_t)1 << c->cfg.hash_bits) - 1);
        key.len = (size_t)snprintf(buf, sizeof(buf), "%llu", (unsigned long long)bucket);
        key.id = buf;
        key.h = mix(bucket, 0xb0c4e7ULL);
    }
    uint32_t e = touch ? emb_touch(c->tab[f], key.h, key.id, key.len, ts)
                       : emb_find(c->tab[f], key.h, key.id, key.len);
    return e == EMB_NONE ? 0 : emb_entry_row(c->tab[f], e);
}

static void window_reset(ctr_t *c);

static const lrn_id_t missing_value = {0x5bd1e9955bd1e995ULL, "", 0};
/* the same in shared mode, where a row travels by its id and an id has a
 * byte at least: one NUL, which no event's value carries */
static const lrn_id_t missing_shared = {0x5bd1e9955bd1e995ULL, "", 1};

/* Gathers x0 and the wide indices of examples ex[0..B). */
static void gather(ctr_t *c, const ctr_example_t *ex, int B, int touch, int update_norm)
{
    const int nc = c->cfg.ncat, nn = c->cfg.nnum, E = c->E, X = c->X;
    for (int b = 0; b < B; b++) {
        const ctr_example_t *e = &ex[b];
        const lrn_id_t *val[CTR_MAX_FIELDS];
        for (int f = 0; f < nc; f++)
            val[f] = c->cfg.shared ? &missing_shared : &missing_value;
        for (int k = 0; k < e->ncat; k++)
            if (e->cat[k].field >= 0 && e->cat[k].field < nc)
                val[e->cat[k].field] = c->cfg.shared && !e->cat[k].value.len
                                           ? &missing_shared /* a row travels by a non-empty id */
                                           : &e->cat[k].value;
        float *x0 = c->h[0] + (size_t)b * X;
        for (int f = 0; f < nc; f++) {
            uint32_t row = value_row(c, f, val[f], touch, e->ts_ms);
            c->rows[(size_t)b * nc + f] = row;
            memcpy(x0 + (size_t)f * E, emb_row(c->tab[f], row), sizeof(float) * E);
            c->widx[(size_t)b * c->nwide + f] = mix(val[f]->h, (uint64_t)f + 1) & c->wide_mask;
        }
        for (int k = 0; k < c->cfg.ncross; k++) {
            int f1 = c->cfg.cross[k][0], f2 = c->cfg.cross[k][1];
            c->widx[(size_t)b * c->nwide + nc + k] =
                mix(mix(val[f1]->h, val[f2]->h), 0xc5u + (uint64_t)k) & c->wide_mask;
        }
        float *raw = c->xraw + (size_t)b * nn;
        unsigned char *pr = c->pres + (size_t)b * nn;
        memset(pr, 0, (size_t)nn);
        for (int k = 0; k < e->nnum; k++)
            if (e->num[k].field >= 0 && e->num[k].field < nn && isfinite(e->num[k].value)) {
                raw[e->num[k].field] = e->num[k].value;
                pr[e->num[k].field] = 1;
            }
        if (nn) {
            if (update_norm)
                norm_update(&c->norm, raw, pr);
            norm_apply(&c->norm, c->xnum + (size_t)b * nn, raw, pr);
            memcpy(x0 + (size_t)nc * E, c->xnum + (size_t)b * nn, sizeof(float) * nn);
        }
    }
}

/* What the head sees of examples [b0, b0 + B) of the last gather (ctr.h),
 * with thread t's workspace and gradients */
static void head_pass(ctr_t *c, int t, int b0, int B, ctr_pass_t *p)
{
    dense_block_t *d = t ? &c->wdense[t] : &c->dense;
    *p = (ctr_pass_t){.cfg = &c->cfg,
                      .B = B,
                      .X = c->X,
                      .H = c->H,
                      .x0 = c->h[0] + (size_t)b0 * c->X,
                      .dx0 = c->dh[0] + (size_t)b0 * c->X,
                      .deep = c->L ? c->h[c->L] + (size_t)b0 * c->H : NULL,
                      .ddeep = c->L ? c->dh[c->L] + (size_t)b0 * c->H : NULL,
                      .w = c->dense.params + c->head_off,
                      .dw = d->grads + c->head_off,
                      .bias = c->dense.params + c->bias_off,
                      .dbias = d->grads + c->bias_off,
                      .logits = c->logits + b0,
                      .dz = c->dz + b0,
                      .ws = c->head_ws[t]};
}

/* Logits of examples [b0, b0 + B) (thread t's slice). */
static void forward_rows(ctr_t *c, int t, int b0, int B)
{
    const ctr_config_t *cfg = &c->cfg;
    const float *P = c->dense.params;
    void (*linear)(float *, const float *, const float *, const float *, int, int, int) =
        cfg->naive ? kern_linear_forward_naive : kern_linear_forward;
    int in = c->X;
    for (int l = 0; l < c->L; l++) {
        float *out = c->h[l + 1] + (size_t)b0 * cfg->mlp[l];
        linear(out, c->h[l] + (size_t)b0 * in, P + c->w_off[l], P + c->b_off[l], B, in,
               cfg->mlp[l]);
        relu_forward(out, out, B * cfg->mlp[l]);
        in = cfg->mlp[l];
    }
    if (has_wide(c))
        for (int b = b0; b < b0 + B; b++) {
            float z = P[c->bias_off];
            const uint64_t *wi = c->widx + (size_t)b * c->nwide;
            for (int k = 0; k < c->nwide; k++)
                z += c->wide_w[wi[k]];
            const float *xn = c->xnum + (size_t)b * cfg->nnum;
            for (int j = 0; j < cfg->nnum; j++)
                z += P[c->wnum_off + j] * xn[j];
            c->logits[b] = z;
        }
    if (c->head->forward) {
        ctr_pass_t p;
        head_pass(c, t, b0, B, &p);
        c->head->forward(&p);
    }
}

/* Backward of examples [b0, b0 + B): thread t's dense gradients (added), dx0
 * in dh[0] (written). */
static void backward_rows(ctr_t *c, int t, int b0, int B)
{
    const ctr_config_t *cfg = &c->cfg;
    const float *P = c->dense.params;
    float *G = t ? c->wdense[t].grads : c->dense.grads;
    void (*linear_bw)(float *, float *, float *, const float *, const float *, const float *, int,
                      int, int) = cfg->naive ? kern_linear_backward_naive : kern_linear_backward;
    memset(c->dh[0] + (size_t)b0 * c->X, 0, sizeof(float) * B * c->X);
    for (int l = 1; l <= c->L; l++)
        memset(c->dh[l] + (size_t)b0 * cfg->mlp[l - 1], 0, sizeof(float) * B * cfg->mlp[l - 1]);
    if (c->head->backward) {
        ctr_pass_t p;
        head_pass(c, t, b0, B, &p);
        c->head->backward(&p);
    }
    if (has_wide(c))
        for (int b = b0; b < b0 + B; b++) {
            float d = c->dz[b];
            G[c->bias_off] += d;
            const float *xn = c->xnum + (size_t)b * cfg->nnum;
            for (int j = 0; j < cfg->nnum; j++)
                G[c->wnum_off + j] += d * xn[j];
        }
    for (int l = c->L - 1; l >= 0; l--) {
        int in = l == 0 ? c->X : cfg->mlp[l - 1];
        float *d = c->dh[l + 1] + (size_t)b0 * cfg->mlp[l];
        relu_mask(d, c->h[l + 1] + (size_t)b0 * cfg->mlp[l], B * cfg->mlp[l]);
        linear_bw(c->dh[l] + (size_t)b0 * in, G + c->w_off[l], G + c->b_off[l], d,
                  c->h[l] + (size_t)b0 * in, P + c->w_off[l], B, in, cfg->mlp[l]);
    }
}

/* thread t's slice of the pass_B examples: [*b0, *b0 + *B) */
static void slice_of(const ctr_t *c, int t, int *b0, int *B)
{
    int per = (c->pass_B + c->nt - 1) / c->nt;
    *b0 = t * per;
    *B = *b0 >= c->pass_B ? 0 : c->pass_B - *b0 < per ? c->pass_B - *b0 : per;
}

static void phase_forward(void *arg, int t, int n)
{
    ctr_t *c = arg;
    int b0, B;
    (void)n;
    slice_of(c, t, &b0, &B);
    if (B > 0)
        forward_rows(c, t, b0, B);
}

static void phase_backward(void *arg, int t, int n)
{
    ctr_t *c = arg;
    int b0, B;
    (void)n;
    slice_of(c, t, &b0, &B);
    if (B > 0)
        backward_rows(c, t, b0, B);
}

static void run_phase(ctr_t *c, pool_fn fn, int B)
{
    c->pass_B = B;
    if (c->pool)
        pool_run(c->pool, fn, c);
    else
        fn(c, 0, 1);
}

static void forward(ctr_t *c, int B)
{
    run_phase(c, phase_forward, B);
}

/* Backward of the last forward: dense gradients (added: the threads' summed
 * into the model's), dx0 in dh[0] (written). */
static void backward(ctr_t *c, int B)
{
    for (int t = 1; t < c->nt; t++)
        dense_block_zero_grad(&c->wdense[t]);
    run_phase(c, phase_backward, B);
    for (int t = 1; t < c->nt; t++) {
        const float *g = c->wdense[t].grads;
        for (size_t i = 0; i < c->dense.n; i++)
            c->dense.grads[i] += g[i];
    }
}

/* Adagrad on the wide weights of every example, by its dz, in order (two
 * examples may share a weight) */
static void update_wide(ctr_t *c, int B)
{
    if (!has_wide(c))
        return;
    for (int b = 0; b < B; b++) {
        float d = c->dz[b];
        const uint64_t *wi = c->widx + (size_t)b * c->nwide;
        for (int k = 0; k < c->nwide; k++)
            optim_adagrad(&c->wide_w[wi[k]], &c->wide_g2[wi[k]], &d, 1, c->cfg.lr_sparse,
                          c->cfg.l2_sparse, 1e-8f);
    }
}

/* Shared mode: every example's wide gradient (its dz, once per weight it
 * touches) joins the window's, with its square */
static void window_wide(ctr_t *c, int B)
{
    if (!has_wide(c))
        return;
    for (int b = 0; b < B; b++) {
        float d = c->dz[b];
        const uint64_t *wi = c->widx + (size_t)b * c->nwide;
        for (int k = 0; k < c->nwide; k++) {
            float *a = wrows_at(&c->ww, (uint32_t)wi[k]);
            if (a)
                a[0] += d, a[1] += d * d;
        }
    }
}

/* Shared mode: the batch's dense gradient joins the window's; -1 (and
 * nothing joins) when it is not finite */
static int window_dense(ctr_t *c)
{
    if (!isfinite(dense_block_grad_sq(&c->dense)))
        return -1;
    for (size_t i = 0; i < c->dense.n; i++)
        c->wsum[i] += c->dense.grads[i];
    c->wbatches++;
    return 0;
}

/* Shared mode: the batch's dense features join the window's statistics
 * (Welford), which the log merges into every member's normaliser */
static void window_norm(ctr_t *c, int B)
{
    const int nn = c->cfg.nnum;
    for (int b = 0; b < B; b++)
        for (int d = 0; d < nn; d++) {
            float x = c->xraw[(size_t)b * nn + d];
            if (!c->pres[(size_t)b * nn + d] || !isfinite(x))
                continue;
            double *w = c->wn + 3 * (size_t)d, delta = x - w[1];
            w[0] += 1.0;
            w[1] += delta / w[0];
            w[2] += delta * (x - w[1]);
        }
}

/* Adagrad on every touched row once, with its summed gradient (rows.h):
 * field f's row of example b is rows[b·ncat + f], its gradient the field's
 * E floats of dx0, dh[0] + b·X + f·E. In shared mode a shared field's rows
 * add their gradients (and squares) to the window instead, and the owned
 * field's rows join it. */
static void update_rows(ctr_t *c, int B)
{
    const int nc = c->cfg.ncat, E = c->E;
    if (++c->gen == 0) {
        for (int f = 0; f < nc; f++)
            rows_stamps_clear(&c->stamps[f]);
        c->gen = 1;
    }
    for (int f = 0; f < nc; f++) {
        const uint32_t *pr = c->rows + f;
        const float *d = c->dh[0] + (size_t)f * E;
        int n = rows_gather(pr, nc, NULL, B, 0, &c->stamps[f], c->gen, c->uniq, c->first, c->cnt);
        rows_sum(pr, nc, NULL, B, d, c->X, E, &c->stamps[f], c->first, c->cnt, c->gacc);
        if (ctr_field_shared(c, f)) {
            if (!x0_learns(c)) /* lr: the same first values on every member, published */
                rows_mark_dirty(c->tab[f], c->uniq, n);
            for (int k = 0; x0_learns(c) && k < n; k++) {
                uint32_t e = emb_row_entry(c->tab[f], c->uniq[k]);
                float *a = e == EMB_NONE ? NULL : wrows_at(&c->wf[f], e);
                if (!a)
                    continue;
                const float *g = rows_grad(k, c->first, c->cnt, d, c->X, c->gacc, E);
                for (int r = 0; r < E; r++) {
                    a[r] += g[r];
                    a[E + r] += g[r] * g[r];
                }
            }
            continue;
        }
        rows_update(c->tab[f], c->uniq, n, c->first, c->cnt, d, c->X, c->gacc, E, OPT_ADAGRAD,
                    c->cfg.lr_sparse, c->cfg.l2_sparse, 1e-8f);
        rows_mark_dirty(c->tab[f], c->uniq, n);
        for (int k = 0; c->cfg.shared && x0_learns(c) && k < n; k++) {
            uint32_t e = emb_row_entry(c->tab[f], c->uniq[k]);
            if (e != EMB_NONE)
                wrows_at(&c->wf[f], e);
        }
    }
}

static void learn_batch(ctr_t *c, const ctr_example_t *ex, int B)
{
    const int shared = c->cfg.shared;
    gather(c, ex, B, 1, !shared); /* shared: the normaliser changes by the log */
    for (int f = 0; f < c->cfg.ncat; f++)
        if (rows_stamps_reserve(&c->stamps[f], emb_row_cap(c->tab[f])))
            return; /* out of memory: this batch is not learned */
    if (shared && c->cfg.nnum)
        window_norm(c, B);
    forward(c, B);
    for (int b = 0; b < B; b++) {
        c->labels[b] = ex[b].label > 0.5f ? 1.0f : 0.0f;
        c->weights[b] = ex[b].weight > 0 ? ex[b].weight : 1.0f;
        c->p[b] = sigmoidf_stable(c->logits[b]);
        pv_add(&c->pv, c->p[b], (int)c->labels[b]); /* progressive: before learning */
        c->positives += c->labels[b] > 0.5f;
    }
    c->examples += (uint64_t)B;
    float loss = loss_bce_labels(c->dz, c->logits, c->labels, c->weights, B);
    if (!isfinite(loss)) {
        c->nonfinite++;
        return;
    }
    dense_block_zero_grad(&c->dense);
    backward(c, B);
    if (shared)
        window_wide(c, B);
    else
        update_wide(c, B);
    /* the engines' one dense step: NaN guard, clipping, Adam; shared: the window's */
    if (shared
            ? window_dense(c) < 0
            : dense_block_step(&c->dense, c->cfg.clip_norm, c->cfg.lr_dense, c->cfg.l2_dense) < 0) {
        c->nonfinite++;
        return;
    }
    update_rows(c, B);
    ewma_add(&c->loss, loss);
}

size_t ctr_learn(ctr_t *c, const ctr_example_t *ex, size_t n)
{
    for (size_t s = 0; s < n; s += (size_t)c->maxb) {
        int B = (int)(n - s < (size_t)c->maxb ? n - s : (size_t)c->maxb);
        learn_batch(c, ex + s, B);
    }
    return n;
}

void ctr_set_lr(ctr_t *c, float lr_sparse, float lr_dense)
{
    if (lr_sparse > 0.0f)
        c->cfg.lr_sparse = lr_sparse;
    if (lr_dense > 0.0f)
        c->cfg.lr_dense = lr_dense;
}

void ctr_predict(ctr_t *c, const ctr_example_t *ex, size_t n, float *p)
{
    for (size_t s = 0; s < n; s += (size_t)c->maxb) {
        int B = (int)(n - s < (size_t)c->maxb ? n - s : (size_t)c->maxb);
        gather(c, ex + s, B, 0, 0);
        forward(c, B);
        for (int b = 0; b < B; b++)
            p[s + b] = sigmoidf_stable(c->logits[b]);
    }
}

void ctr_stats(const ctr_t *c, ctr_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->examples = c->examples;
    out->positives = c->positives;
    out->auc = pv_auc(&c->pv);
    out->logloss = pv_logloss(&c->pv);
    out->window_logloss = pv_window_logloss(&c->pv);
    out->loss_ewma = c->loss.value;
    out->nonfinite = c->nonfinite;
    for (int f = 0; f < c->cfg.ncat; f++) {
        emb_stats_t s;
        emb_stats(c->tab[f], &s);
        out->tables.entries += s.entries;
        out->tables.rows += s.rows;
        out->tables.bytes += s.bytes;
        out->tables.admitted += s.admitted;
        out->tables.expired += s.expired;
    }
}

/* ---- for gradient checks ---- */

dense_block_t *ctr_dense(ctr_t *c)
{
    return &c->dense;
}

float *ctr_row(ctr_t *c, int field, const lrn_id_t *value)
{
    return emb_row(c->tab[field], value_row(c, field, value, 1, 0));
}

float *ctr_wide_weight(ctr_t *c, int b, int k)
{
    return c->wide_w ? &c->wide_w[c->widx[(size_t)b * c->nwide + k]] : NULL;
}

float ctr_loss_grad(ctr_t *c, const ctr_example_t *ex, int n, float *dx0)
{
    gather(c, ex, n, 1, 0);
    forward(c, n);
    for (int b = 0; b < n; b++) {
        c->labels[b] = ex[b].label > 0.5f ? 1.0f : 0.0f;
        c->weights[b] = ex[b].weight > 0 ? ex[b].weight : 1.0f;
    }
    float loss = loss_bce_labels(c->dz, c->logits, c->labels, c->weights, n);
    dense_block_zero_grad(&c->dense);
    backward(c, n);
    if (dx0)
        memcpy(dx0, c->dh[0], sizeof(float) * n * c->X);
    return loss;
}

float ctr_last_dlogit(const ctr_t *c, int b)
{
    return c->dz[b];
}

emb_table_t *ctr_table(ctr_t *c, int field)
{
    return field >= 0 && field < c->cfg.ncat ? c->tab[field] : NULL;
}

int ctr_emb_dim(const ctr_t *c)
{
    return c->E;
}

int ctr_dense_layout(const ctr_t *c, char *buf, size_t len)
{
    size_t off = 0;
    int n, in = c->X;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        n = snprintf(buf + off, len - off, __VA_ARGS__);                                           \
        if (n < 0 || (size_t)n >= len - off)                                                       \
            return -1;                                                                             \
        off += (size_t)n;                                                                          \
    } while (0)
    for (int l = 0; l < c->L; l++) {
        PUT("W%d:%dx%d,b%d:%d,", l + 1, c->cfg.mlp[l], in, l + 1, c->cfg.mlp[l]);
        in = c->cfg.mlp[l];
    }
    if (c->head->layout) {
        if (c->head->layout(buf + off, len - off, &c->cfg, c->X, c->H))
            return -1;
        off += strlen(buf + off);
    }
    if (has_wide(c))
        PUT("wnum:%d,", c->cfg.nnum);
    PUT("bias:1");
#undef PUT
    return 0;
}

#define CTR_MAGIC                                                                                  \
    0x33525443u /* "CTR3": the head's parts where CTR2 had the model kind (the                     \
                 * model's name is the engine's, saved before) */

int ctr_save(const ctr_t *c, ser_writer_t *w)
{
    ser_u32(w, CTR_MAGIC);
    ser_u32(w, c->head->parts);
    ser_u32(w, (uint32_t)c->cfg.ncat);
    ser_u32(w, (uint32_t)c->cfg.nnum);
    ser_u32(w, (uint32_t)c->E);
    ser_u32(w, (uint32_t)(has_wide(c) ? c->cfg.wide_bits : 0));
    ser_u64(w, c->examples);
    ser_u64(w, c->positives);
    ser_u64(w, c->nonfinite);
    ser_put(w, &c->loss.value, sizeof(double));
    ser_u32(w, (uint32_t)c->loss.primed);
    for (int f = 0; f < c->cfg.ncat; f++)
        emb_save(c->tab[f], w);
    for (int d = 0; d < c->cfg.nnum; d++) {
        ser_u64(w, c->norm.n[d]);
        ser_put(w, &c->norm.mean[d], sizeof(double));
        ser_put(w, &c->norm.m2[d], sizeof(double));
    }
    if (has_wide(c)) {
        ser_put(w, c->wide_w, sizeof(float) * (c->wide_mask + 1));
        ser_put(w, c->wide_g2, sizeof(float) * (c->wide_mask + 1));
    }
    dense_block_save(&c->dense, w);
    return w->err ? -1 : 0;
}

int ctr_load(ctr_t *c, ser_reader_t *r, char *errstr, size_t len)
{
    uint32_t magic = ser_get_u32(r), parts = ser_get_u32(r), ncat = ser_get_u32(r),
             nnum = ser_get_u32(r), E = ser_get_u32(r), wide_bits = ser_get_u32(r);
    uint64_t examples = ser_get_u64(r), positives = ser_get_u64(r), nonfinite = ser_get_u64(r);
    double loss_ewma = 0.0;
    ser_get(r, &loss_ewma, sizeof(double));
    uint32_t loss_primed = ser_get_u32(r);
    if (r->err || magic != CTR_MAGIC) {
        snprintf(errstr, len, "ctr: not a saved click-through model");
        return -1;
    }
    if (parts != c->head->parts || ncat != (uint32_t)c->cfg.ncat || nnum != (uint32_t)c->cfg.nnum ||
        E != (uint32_t)c->E || wide_bits != (uint32_t)(has_wide(c) ? c->cfg.wide_bits : 0)) {
        snprintf(errstr, len,
                 "ctr: saved with parts %u, %u+%u fields of width %u; this model "
                 "has parts %u, %d+%d of %d",
                 parts, ncat, nnum, E, c->head->parts, c->cfg.ncat, c->cfg.nnum, c->E);
        return -1;
    }
    for (int f = 0; f < c->cfg.ncat; f++)
        if (emb_load(c->tab[f], r, errstr, len))
            return -1;
    for (int d = 0; d < c->cfg.nnum; d++) {
        c->norm.n[d] = ser_get_u64(r);
        ser_get(r, &c->norm.mean[d], sizeof(double));
        ser_get(r, &c->norm.m2[d], sizeof(double));
    }
    if (has_wide(c) && (ser_get(r, c->wide_w, sizeof(float) * (c->wide_mask + 1)) ||
                        ser_get(r, c->wide_g2, sizeof(float) * (c->wide_mask + 1)))) {
        snprintf(errstr, len, "ctr: short");
        return -1;
    }
    if (r->err) {
        snprintf(errstr, len, "ctr: short");
        return -1;
    }
    if (dense_block_load(&c->dense, r, errstr, len))
        return -1;
    c->examples = examples;
    c->positives = positives;
    c->nonfinite = nonfinite;
    c->loss.value = loss_ewma;
    c->loss.primed = loss_primed != 0;
    window_reset(c); /* a window open before the load names entries of the old tables */
    return 0;
}

/* ---- shared mode: windows out, log records in (ctr.h) ---- */

static void window_reset(ctr_t *c)
{
    for (int f = 0; f < c->cfg.ncat; f++)
        wrows_clear(&c->wf[f]);
    wrows_clear(&c->ww);
    if (c->wsum)
        memset(c->wsum, 0, sizeof(float) * c->dense.n);
    if (c->wn)
        memset(c->wn, 0, sizeof(double) * 3 * (size_t)c->cfg.nnum);
    c->wbatches = 0;
}

size_t ctr_window_take(ctr_t *c, const learner_window_sink_t *sink, void *arg)
{
    const int E = c->E;
    size_t len;
    for (int f = 0; f < c->cfg.ncat; f++) {
        const wrows_t *w = &c->wf[f];
        emb_table_t *t = c->tab[f];
        for (size_t i = 0; i < w->n; i++) {
            uint32_t e = w->ent[i];
            if (e == EMB_NONE || !emb_entry_alive(t, e))
                continue;
            const char *id = emb_entry_id(t, e, &len);
            if (ctr_field_shared(c, f)) {
                const float *a = w->val + i * (size_t)w->width;
                sink->row_grad(arg, f, id, len, a, a + E, E);
            } else if (emb_entry_row(t, e)) { /* row and state: one stretch (table.h) */
                sink->row_value(arg, f, id, len, emb_row(t, emb_entry_row(t, e)), 2 * E);
            }
        }
    }
    for (size_t i = 0; i < c->ww.n; i++) {
        char id[16];
        int n = snprintf(id, sizeof(id), "%u", c->ww.ent[i]);
        const float *a = c->ww.val + 2 * i;
        sink->row_grad(arg, CTR_TABLE_WIDE, id, (size_t)n, a, a + 1, 1);
    }
    if (c->wbatches)
        sink->dense(arg, LRN_TABLE_DENSE, c->wsum, c->dense.n);
    if (c->wn) { /* count, mean, standard deviation: finite for any finite float feature */
        float st[3 * CTR_MAX_FIELDS];
        int any = 0;
        for (int d = 0; d < c->cfg.nnum; d++) {
            const double *w = c->wn + 3 * d;
            st[3 * d] = (float)w[0];
            st[3 * d + 1] = (float)w[1];
            st[3 * d + 2] = w[0] > 0.0 ? (float)sqrt(w[2] / w[0]) : 0.0f;
            any |= w[0] > 0.0;
        }
        if (any)
            sink->dense(arg, CTR_TABLE_NORM, st, 3 * (size_t)c->cfg.nnum);
    }
    size_t nb = c->wbatches;
    window_reset(c);
    return nb;
}

void ctr_window_drop(ctr_t *c, int field, uint32_t entry)
{
    if (field >= 0 && field < c->cfg.ncat)
        wrows_drop(&c->wf[field], entry);
}

void ctr_apply_at(ctr_t *c, int64_t ts_ms)
{
    c->apply_ts = ts_ms;
}

/* a window's id that is a number in decimal (a bucket, a wide weight's
 * index): 0 and the number in *out when it is one and at most max, else -1 */
static int id_index(const char *id, size_t len, uint64_t max, uint64_t *out)
{
    char buf[24], *end;
    if (len < 1 || len >= sizeof(buf))
        return -1;
    memcpy(buf, id, len);
    buf[len] = '\0';
    unsigned long long k = strtoull(buf, &end, 10);
    if (*end || k > max)
        return -1;
    *out = k;
    return 0;
}

/* field f's entry of a value by its id as a window names it (value_row's
 * key: a bucket's number with hash_bits, the missing value's one NUL), made
 * if new; EMB_NONE when the table cannot take it */
static uint32_t entry_for(ctr_t *c, int f, const char *id, size_t len)
{
    uint64_t h, bucket;
    if (len < 1 || len > EMB_MAX_ID_LEN)
        return EMB_NONE;
    if (c->cfg.hash_bits) {
        if (id_index(id, len, ((uint64_t)1 << c->cfg.hash_bits) - 1, &bucket))
            return EMB_NONE;
        h = mix(bucket, 0xb0c4e7ULL);
    } else {
        h = len == 1 && id[0] == '\0' ? missing_shared.h : id_hash(id, len);
    }
    return emb_touch(c->tab[f], h, id, len, c->apply_ts);
}

int ctr_apply_row_grad(ctr_t *c, int table, const char *id, size_t len, const float *g,
                       const float *gsq, int R)
{
    if (table == CTR_TABLE_WIDE) {
        uint64_t k;
        if (!has_wide(c) || R != 1 || id_index(id, len, c->wide_mask, &k))
            return -1;
        optim_adagrad_sum(&c->wide_w[k], &c->wide_g2[k], g, gsq, 1, c->cfg.lr_sparse,
                          c->cfg.l2_sparse, 1e-8f);
        return 0;
    }
    if (table < 0 || table >= c->cfg.ncat || !ctr_field_shared(c, table) || R != c->E)
        return -1;
    uint32_t e = entry_for(c, table, id, len);
    uint32_t row = e == EMB_NONE ? 0 : emb_entry_row(c->tab[table], e);
    if (row == 0)
        return -1;
    optim_adagrad_sum(emb_row(c->tab[table], row), emb_row_state(c->tab[table], row), g, gsq, R,
                      c->cfg.lr_sparse, c->cfg.l2_sparse, 1e-8f);
    emb_mark_dirty(c->tab[table], e);
    return 0;
}

int ctr_apply_row_value(ctr_t *c, int table, const char *id, size_t len, const float *v, int width)
{
    if (table < 0 || table >= c->cfg.ncat || !c->cfg.shared || ctr_field_shared(c, table) ||
        width != 2 * c->E)
        return -1;
    uint32_t e = entry_for(c, table, id, len);
    uint32_t row = e == EMB_NONE ? 0 : emb_entry_row(c->tab[table], e);
    if (row == 0)
        return -1;
    /* not marked for publishing: the owner publishes what it learned */
    memcpy(emb_row(c->tab[table], row), v, sizeof(float) * (size_t)width);
    return 0;
}

int ctr_apply_dense(ctr_t *c, int table, const float *g, size_t n, uint32_t steps)
{
    if (table == LRN_TABLE_DENSE)
        return dense_block_apply_sum(&c->dense, g, n, steps, c->cfg.clip_norm, c->cfg.lr_dense,
                                     c->cfg.l2_dense);
    if (table != CTR_TABLE_NORM || n != 3 * (size_t)c->cfg.nnum)
        return -1;
    for (int d = 0; d < c->cfg.nnum; d++) { /* Chan et al.'s merge of two sets' statistics */
        const float *w = g + 3 * d;
        if (!(w[0] >= 1.0f) || !(w[2] >= 0.0f))
            continue;
        double na = (double)c->norm.n[d], nb = w[0], n2 = na + nb, delta = w[1] - c->norm.mean[d],
               m2 = (double)w[2] * (double)w[2] * nb;
        c->norm.mean[d] += delta * nb / n2;
        c->norm.m2[d] += m2 + delta * delta * na * nb / n2;
        c->norm.n[d] += (uint64_t)w[0];
    }
    return 0;
}

uint64_t ctr_shared_digest(const ctr_t *c)
{
    uint64_t h = 0;
    for (int f = 0; x0_learns(c) && f < c->cfg.ncat; f++) /* lr's rows: their first values */
        if (ctr_field_shared(c, f))
            h += emb_digest(c->tab[f]);
    if (has_wide(c)) {
        h += XXH3_64bits(c->wide_w, sizeof(float) * (c->wide_mask + 1));
        h += XXH3_64bits_withSeed(c->wide_g2, sizeof(float) * (c->wide_mask + 1), 1);
    }
    for (int d = 0; d < c->cfg.nnum; d++) {
        h += XXH3_64bits_withSeed(&c->norm.n[d], sizeof(uint64_t), 2 + (uint64_t)d);
        h += XXH3_64bits_withSeed(&c->norm.mean[d], sizeof(double), 3 + (uint64_t)d);
        h += XXH3_64bits_withSeed(&c->norm.m2[d], sizeof(double), 4 + (uint64_t)d);
    }
    return h;
}
