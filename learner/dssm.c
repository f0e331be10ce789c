/* dssm.c — DSSM two-tower forward and backward over micro-batches (see dssm.h).
 * Not for: sampling, losses or sparse row updates (the learner's job).
 *
 * Layout of the dense block, in order (W is (out, in) row-major):
 *   user tower, l = 1..L:  U_l (tower[l-1], in_l), ub_l (tower[l-1])
 *   item tower, l = 1..L:  I_l (tower[l-1], in_l), ib_l (tower[l-1])
 * with in_1 = dim + feat (the tower's id row, then its feature vector, if
 * any) and in_l = tower[l-2]. Every layer but the last is followed
 * by a ReLU; the last layer's output z is L2-normalised:
 *   y = z / sqrt(‖z‖² + DSSM_NORM_EPS)
 * (smooth everywhere, unlike z / max(‖z‖, ε), and exactly z/‖z‖ to float
 * precision once ‖z‖ ≫ 1e-6). logit = gamma · (y_u · y_i).
 *
 * Each layer is one sgemm over the micro-batch (through kern.h); the rows are
 * gathered into a contiguous buffer first. */
#include "dssm.h"

#include "kern.h"
#include "layers.h"
#include "learner.h"
#include "rng.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ε under the square root of the normalisation. The Jacobian of
 * y = z / sqrt(‖z‖² + ε) is exactly (I − y yᵀ) / sqrt(‖z‖² + ε), so backward
 * needs no special case; the price is that a tower output of norm ≲ 1e-6 is
 * shrunk rather than blown up to unit length (and has a large gradient). */
#define DSSM_NORM_EPS 1e-12f

enum { USER = 0, ITEM = 1 };

typedef struct {
    size_t w_off[DSSM_MAX_LAYERS], b_off[DSSM_MAX_LAYERS];
    /* activations of the last forward, (max_batch, ·) each */
    int F;                      /* feature floats after the row in the input */
    float *x;                   /* (B, dim + F) the gathered rows and features */
    float *dx;                  /* (B, dim + F) input gradient, when F > 0 */
    float *h[DSSM_MAX_LAYERS];  /* (B, tower[l]); post-ReLU, but z (pre-norm) for the last */
    float *dh[DSSM_MAX_LAYERS]; /* gradients of h[l]; masked in place to pre-ReLU ones */
    float *y;                   /* (B, O) the normalised output */
    float *norm;                /* (B) sqrt(‖z‖² + ε) */
} tower_t;

struct dssm {
    dssm_config_t cfg;
    int D, L, O; /* row width, layers per tower, output width */
    int B;       /* pairs in the last forward */
    dense_block_t dense;
    tower_t tw[2];
    /* scratch of dssm_user_vector / dssm_item_vector, (maxw) each, so that
     * they leave the batch activations alone */
    float *vec[2];
    float *vin; /* (dim + max feat) their gathered input */
    void *mem;
};

typedef void (*linear_fn)(float *, const float *, const float *, const float *, int, int, int);
typedef void (*linear_bw_fn)(float *, float *, float *, const float *, const float *, const float *,
                             int, int, int);

static int layer_in(const dssm_t *m, int t, int l)
{
    return l ? m->cfg.tower[l - 1] : m->D + m->tw[t].F;
}

void dssm_config_default(dssm_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->dim = 64;
    cfg->tower[0] = 128;
    cfg->tower[1] = 64;
    cfg->ntower = 2;
    cfg->gamma = 10.0f;
    cfg->max_batch = 2048;
    cfg->seed = 42;
}

dssm_t *dssm_create(const dssm_config_t *cfg, char *errstr, size_t len)
{
    dssm_t *m = NULL;
    if (cfg->dim < 1 || cfg->dim > 1024) {
        snprintf(errstr, len, "DSSM dim %d out of range [1, 1024]", cfg->dim);
        goto err;
    }
    if (cfg->ntower < 1 || cfg->ntower > DSSM_MAX_LAYERS) {
        snprintf(errstr, len, "DSSM towers need 1..%d layers, not %d", DSSM_MAX_LAYERS,
                 cfg->ntower);
        goto err;
    }
    for (int l = 0; l < cfg->ntower; l++)
        if (cfg->tower[l] < 1 || cfg->tower[l] > 4096) {
            snprintf(errstr, len, "DSSM tower layer %d has width %d, not in [1, 4096]", l + 1,
                     cfg->tower[l]);
            goto err;
        }
    if (!(cfg->gamma > 0.0f) || !isfinite(cfg->gamma)) {
        snprintf(errstr, len, "DSSM gamma %g must be positive and finite", (double)cfg->gamma);
        goto err;
    }
    if (cfg->ufeat < 0 || cfg->ufeat > 65536 || cfg->ifeat < 0 || cfg->ifeat > 65536) {
        snprintf(errstr, len, "DSSM feature widths %d, %d not in [0, 65536]", cfg->ufeat,
                 cfg->ifeat);
        goto err;
    }
    if (cfg->max_batch < 1) {
        snprintf(errstr, len, "DSSM max_batch %d must be positive", cfg->max_batch);
        goto err;
    }
    m = calloc(1, sizeof(*m));
    if (!m)
        goto oom;
    m->cfg = *cfg;
    m->D = cfg->dim;
    m->L = cfg->ntower;
    m->O = cfg->tower[m->L - 1];
    m->tw[USER].F = cfg->ufeat;
    m->tw[ITEM].F = cfg->ifeat;

    size_t off = 0;
    int maxw = m->D;
    for (int t = USER; t <= ITEM; t++) {
        for (int l = 0; l < m->L; l++) {
            m->tw[t].w_off[l] = off;
            off += (size_t)cfg->tower[l] * layer_in(m, t, l);
            m->tw[t].b_off[l] = off;
            off += cfg->tower[l];
            if (cfg->tower[l] > maxw)
                maxw = cfg->tower[l];
        }
    }
    if (dense_block_init(&m->dense, off))
        goto oom;

    /* Glorot-uniform weights (user tower first, one stream), zero biases. */
    rng_t r;
    rng_seed(&r, cfg->seed);
    for (int t = USER; t <= ITEM; t++) {
        for (int l = 0; l < m->L; l++) {
            int in = layer_in(m, t, l), out = cfg->tower[l];
            float a = sqrtf(6.0f / (float)(in + out));
            float *w = m->dense.params + m->tw[t].w_off[l];
            for (int i = 0; i < in * out; i++)
                w[i] = (float)(2.0 * rng_double(&r) - 1.0) * a;
        }
    }

    size_t B = (size_t)cfg->max_batch, per = (size_t)m->O + 1;
    for (int l = 0; l < m->L; l++)
        per += 2 * (size_t)cfg->tower[l];
    size_t fmax = (size_t)(cfg->ufeat > cfg->ifeat ? cfg->ufeat : cfg->ifeat);
    size_t in_all = 2 * (size_t)m->D + cfg->ufeat + cfg->ifeat; /* both towers' x */
    size_t dx_all =
        (cfg->ufeat ? m->D + (size_t)cfg->ufeat : 0) + (cfg->ifeat ? m->D + (size_t)cfg->ifeat : 0);
    float *mem = malloc(sizeof(float) *
                        ((2 * per + in_all + dx_all) * B + 2 * (size_t)maxw + (size_t)m->D + fmax));
    if (!mem)
        goto oom;
    m->mem = mem;
    for (int t = USER; t <= ITEM; t++) {
        tower_t *tw = &m->tw[t];
        size_t X = (size_t)m->D + tw->F;
        tw->x = mem, mem += B * X;
        if (tw->F)
            tw->dx = mem, mem += B * X;
        for (int l = 0; l < m->L; l++) {
            tw->h[l] = mem, mem += B * cfg->tower[l];
            tw->dh[l] = mem, mem += B * cfg->tower[l];
        }
        tw->y = mem, mem += B * m->O;
        tw->norm = mem, mem += B;
    }
    m->vec[0] = mem, mem += maxw;
    m->vec[1] = mem, mem += maxw;
    m->vin = mem;
    return m;
oom:
    snprintf(errstr, len, "out of memory creating DSSM");
err:
    dssm_free(m);
    return NULL;
}

void dssm_free(dssm_t *m)
{
    if (!m)
        return;
    dense_block_free(&m->dense);
    free(m->mem);
    free(m);
}

int dssm_row_width(const dssm_t *m)
{
    return m->D;
}

int dssm_out_dim(const dssm_t *m)
{
    return m->O;
}

dense_block_t *dssm_dense(dssm_t *m)
{
    return &m->dense;
}

int dssm_dense_layout(const dssm_t *m, char *buf, size_t len)
{
    static const char *wname[2] = {"U", "I"}, *bname[2] = {"ub", "ib"};
    size_t off = 0;
    if (len)
        buf[0] = '\0';
    for (int t = USER; t <= ITEM; t++) {
        for (int l = 0; l < m->L; l++) {
            int last = t == ITEM && l == m->L - 1;
            int n = snprintf(buf + off, len - off, "%s%d:%dx%d,%s%d:%d%s", wname[t], l + 1,
                             m->cfg.tower[l], layer_in(m, t, l), bname[t], l + 1, m->cfg.tower[l],
                             last ? "" : ",");
            if (n < 0 || (size_t)n >= len - off)
                return -1;
            off += (size_t)n;
        }
    }
    return 0;
}

/* The MLP of tower t over B contiguous inputs x (B, dim + F); layer l writes acts[l]
 * (B, tower[l]). ReLU after every layer but the last. */
static void tower_mlp(const dssm_t *m, int t, float *const *acts, const float *x, int B)
{
    const float *P = m->dense.params;
    const tower_t *tw = &m->tw[t];
    linear_fn linear = m->cfg.naive ? kern_linear_forward_naive : kern_linear_forward;
    const float *in = x;
    for (int l = 0; l < m->L; l++) {
        int out = m->cfg.tower[l];
        linear(acts[l], in, P + tw->w_off[l], P + tw->b_off[l], B, layer_in(m, t, l), out);
        if (l < m->L - 1)
            relu_forward(acts[l], acts[l], B * out);
        in = acts[l];
    }
}

/* y (n) = z / sqrt(‖z‖² + ε); returns the denominator. */
static float l2_normalise(float *y, const float *z, int n)
{
    float s = 0.0f;
    for (int k = 0; k < n; k++)
        s += z[k] * z[k];
    float norm = sqrtf(s + DSSM_NORM_EPS), inv = 1.0f / norm;
    for (int k = 0; k < n; k++)
        y[k] = z[k] * inv;
    return norm;
}

void dssm_forward(dssm_t *m, float *logits, const float *const *urows, const float *const *irows,
                  const float *const *ufeat, const float *const *ifeat, int B)
{
    assert(B >= 0 && B <= m->cfg.max_batch);
    const int D = m->D, O = m->O, L = m->L;
    m->B = B;
    if (B <= 0)
        return;
    for (int t = USER; t <= ITEM; t++) {
        tower_t *tw = &m->tw[t];
        const float *const *rows = t == USER ? urows : irows;
        const float *const *feat = t == USER ? ufeat : ifeat;
        const int F = tw->F, X = D + F;
        for (int b = 0; b < B; b++) {
            memcpy(tw->x + (size_t)b * X, rows[b], sizeof(float) * D);
            if (F)
                memcpy(tw->x + (size_t)b * X + D, feat[b], sizeof(float) * F);
        }
        tower_mlp(m, t, tw->h, tw->x, B);
        for (int b = 0; b < B; b++)
            tw->norm[b] = l2_normalise(tw->y + (size_t)b * O, tw->h[L - 1] + (size_t)b * O, O);
    }
    const float gamma = m->cfg.gamma;
    for (int b = 0; b < B; b++) {
        const float *yu = m->tw[USER].y + (size_t)b * O, *yi = m->tw[ITEM].y + (size_t)b * O;
        float c = 0.0f;
        for (int k = 0; k < O; k++)
            c += yu[k] * yi[k];
        /* |cos| ≤ ‖y_u‖‖y_i‖ < 1, but rounding may overshoot by an ulp or two
         * when y_u ≈ ±y_i; the clamp keeps |logit| ≤ gamma. Backward ignores
         * it: there the true gradient of the cosine is ≈ 0 anyway. */
        c = c > 1.0f ? 1.0f : c < -1.0f ? -1.0f : c;
        logits[b] = gamma * c;
    }
}

void dssm_backward(dssm_t *m, float *du, float *di, float *dfu, float *dfi, const float *dlogits,
                   int B)
{
    assert(B >= 0 && B <= m->B);
    const int O = m->O, L = m->L;
    const int *tower = m->cfg.tower;
    const float *P = m->dense.params;
    float *G = m->dense.grads;
    linear_bw_fn linear_bw = m->cfg.naive ? kern_linear_backward_naive : kern_linear_backward;
    const float gamma = m->cfg.gamma;
    if (B <= 0)
        return;

    for (int t = USER; t <= ITEM; t++) {
        tower_t *tw = &m->tw[t];
        const float *yo = m->tw[t == USER ? ITEM : USER].y; /* the other tower's output */
        float *drow = t == USER ? du : di, *dfeat = t == USER ? dfu : dfi;

        /* cos = y_u·y_i: dy = gamma·dlogit·y_other; through the normalisation
         * dz = (dy − y (y·dy)) / sqrt(‖z‖² + ε) */
        for (int b = 0; b < B; b++) {
            const float *y = tw->y + (size_t)b * O, *other = yo + (size_t)b * O;
            float *dz = tw->dh[L - 1] + (size_t)b * O;
            float dcos = gamma * dlogits[b], ydy = 0.0f;
            for (int k = 0; k < O; k++) {
                dz[k] = dcos * other[k];
                ydy += y[k] * dz[k];
            }
            float inv = 1.0f / tw->norm[b];
            for (int k = 0; k < O; k++)
                dz[k] = (dz[k] - y[k] * ydy) * inv;
        }
        for (int l = L - 1; l >= 0; l--) {
            int in = layer_in(m, t, l), out = tower[l];
            float *d = tw->dh[l];
            if (l < L - 1) {
                /* ReLU mask in place: d becomes the gradient of the pre-activation */
                const float *h = tw->h[l];
                relu_mask(d, h, B * out);
            }
            /* din is written: zero it, then let the kernel add */
            float *din = l ? tw->dh[l - 1] : tw->F ? tw->dx : drow;
            memset(din, 0, sizeof(float) * B * in);
            linear_bw(din, G + tw->w_off[l], G + tw->b_off[l], d, l ? tw->h[l - 1] : tw->x,
                      P + tw->w_off[l], B, in, out);
        }
        if (tw->F) { /* the input gradient split into the row's and the features' */
            const int D = m->D, F = tw->F;
            for (int b = 0; b < B; b++) {
                const float *g = tw->dx + (size_t)b * (D + F);
                memcpy(drow + (size_t)b * D, g, sizeof(float) * D);
                memcpy(dfeat + (size_t)b * F, g + D, sizeof(float) * F);
            }
        }
    }
}

/* One row (and its features) through tower t into out (O), in the model's
 * vector scratch. */
static void tower_vector(dssm_t *m, int t, float *out, const float *row, const float *feat)
{
    float *acts[DSSM_MAX_LAYERS];
    for (int l = 0; l < m->L; l++)
        acts[l] = m->vec[l & 1];
    const float *x = row;
    if (m->tw[t].F) {
        memcpy(m->vin, row, sizeof(float) * m->D);
        memcpy(m->vin + m->D, feat, sizeof(float) * m->tw[t].F);
        x = m->vin;
    }
    tower_mlp(m, t, acts, x, 1);
    l2_normalise(out, acts[m->L - 1], m->O);
}

void dssm_user_vector(dssm_t *m, float *out, const float *row, const float *feat)
{
    tower_vector(m, USER, out, row, feat);
}

void dssm_item_vector(dssm_t *m, float *out, const float *row, const float *feat)
{
    tower_vector(m, ITEM, out, row, feat);
}

/* ---- the model interface (model.h) ---- */

static void *ops_create(const struct learner_config *lc, int max_batch, int ufeat, int ifeat,
                        char *errstr, size_t len)
{
    dssm_config_t c = lc->towers;
    c.max_batch = max_batch;
    c.seed = lc->seed;
    c.ufeat = ufeat;
    c.ifeat = ifeat;
    return dssm_create(&c, errstr, len);
}

static void ops_free(void *m)
{
    dssm_free(m);
}

static int ops_row_width(const void *m, char side)
{
    (void)side;
    return dssm_row_width(m);
}

static dense_block_t *ops_dense(void *m)
{
    return dssm_dense(m);
}

static void ops_forward(void *m, float *logits, const float *const *urows,
                        const float *const *irows, const float *const *ufeat,
                        const float *const *ifeat, int B)
{
    dssm_forward(m, logits, urows, irows, ufeat, ifeat, B);
}

static void ops_backward(void *m, float *du, float *di, float *dfu, float *dfi,
                         const float *dlogits, int B)
{
    dssm_backward(m, du, di, dfu, dfi, dlogits, B);
}

/* the normalised tower output is published: a dot product of a user's and
 * an item's vectors is their cosine */
static int ops_vector_dim(const void *m)
{
    return dssm_out_dim(m);
}

static void ops_vector(void *m, char side, const float *row, const float *feat, float *out)
{
    if (side == 'u')
        dssm_user_vector(m, out, row, feat);
    else
        dssm_item_vector(m, out, row, feat);
}

static int ops_vector_layout(const void *m, char *buf, size_t len)
{
    int n = snprintf(buf, len, "tower:0:%d", dssm_out_dim(m));
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int ops_dense_layout(const void *m, char *buf, size_t len)
{
    return dssm_dense_layout(m, buf, len);
}

const model_ops_t dssm_ops = {
    .name = "dssm",
    .flags = MODEL_FEATURES | MODEL_RANKS,
    .keys = "tower,gamma,cat_fields,num_fields,item_fields,feature_dim,hash_bits",
    .create = ops_create,
    .free = ops_free,
    .row_width = ops_row_width,
    .dense = ops_dense,
    .forward = ops_forward,
    .backward = ops_backward,
    .vector_dim = ops_vector_dim,
    .vector = ops_vector,
    .vector_layout = ops_vector_layout,
    .dense_layout = ops_dense_layout,
};
