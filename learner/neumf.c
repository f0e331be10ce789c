/* neumf.c — NeuMF forward and backward over micro-batches (see neumf.h).
 *
 * Layout of the dense block, in order:
 *   for l = 1..L-1:  W_l (mlp[l], mlp[l-1]), b_l (mlp[l])
 *   wout (dim + mlp[L-1]), bout (1)
 * Each layer is one sgemm over the micro-batch; embedding rows are gathered
 * into contiguous buffers first.
 *
 * The first MLP layer is W1 [p'_u ; q'_i] = W1u p'_u + W1i q'_i. A positive
 * and its negatives come as neighbouring pairs with the same user row, so
 * the user half is computed once per run of such pairs (and its gradients
 * summed over the run before they go back through W1u): for 4 negatives this
 * takes about a third off the MLP's arithmetic. */
#include "neumf.h"

#include "kern.h"
#include "layers.h"
#include "learner.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct neumf {
    neumf_config_t cfg;
    int D, E, L; /* GMF dim, MLP embedding dim per side, entries in mlp */
    int F;       /* width of the joined feature [g ; h_last] */
    dense_block_t dense;
    size_t w_off[NEUMF_MAX_LAYERS], b_off[NEUMF_MAX_LAYERS], wout_off, bout_off;

    /* activations of the last forward, (max_batch, ·) each */
    const float **urows, **irows; /* (B) the rows of the last forward */
    int nu;                       /* runs of neighbouring pairs with one user row */
    int *urun, *uidx;             /* (B) first pair of run r; run of pair b */
    float *xu, *xi;               /* (nu, E) p'_u per run; (B, E) q'_i per pair */
    float *hu, *dhu;              /* (nu, mlp[1]) W1u p'_u per run, its gradient */
    float *dxu;                   /* gradient of xu (xi's goes straight into di) */
    float *h[NEUMF_MAX_LAYERS];   /* h[l] (B, mlp[l]) post-ReLU, l ≥ 1 */
    float *dh[NEUMF_MAX_LAYERS];  /* gradients of h[l] */
    float *feat, *dfeat;          /* (B, F) */
    void *mem;
};

void neumf_config_default(neumf_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->dim = 32;
    cfg->mlp[0] = 64;
    cfg->mlp[1] = 32;
    cfg->mlp[2] = 16;
    cfg->mlp[3] = 8;
    cfg->nmlp = 4;
    cfg->max_batch = 2048;
    cfg->seed = 42;
}

neumf_t *neumf_create(const neumf_config_t *cfg, char *errstr, size_t len)
{
    neumf_t *m = NULL;
    if (cfg->dim < 1 || cfg->dim > 1024) {
        snprintf(errstr, len, "dim %d out of range [1, 1024]", cfg->dim);
        goto err;
    }
    if (cfg->nmlp < 2 || cfg->nmlp > NEUMF_MAX_LAYERS || cfg->mlp[0] % 2 || cfg->mlp[0] < 2) {
        snprintf(errstr, len, "MLP needs an even input width ≥ 2 and 1..%d layers",
                 NEUMF_MAX_LAYERS - 1);
        goto err;
    }
    for (int l = 1; l < cfg->nmlp; l++)
        if (cfg->mlp[l] < 1 || cfg->mlp[l] > 4096) {
            snprintf(errstr, len, "MLP layer %d has width %d, not in [1, 4096]", l, cfg->mlp[l]);
            goto err;
        }
    if (cfg->max_batch < 1) {
        snprintf(errstr, len, "max_batch must be positive");
        goto err;
    }
    m = calloc(1, sizeof(*m));
    if (!m)
        goto oom;
    m->cfg = *cfg;
    m->D = cfg->dim;
    m->E = cfg->mlp[0] / 2;
    m->L = cfg->nmlp;
    m->F = m->D + cfg->mlp[m->L - 1];

    size_t off = 0;
    for (int l = 1; l < m->L; l++) {
        m->w_off[l] = off;
        off += (size_t)cfg->mlp[l] * cfg->mlp[l - 1];
        m->b_off[l] = off;
        off += cfg->mlp[l];
    }
    m->wout_off = off;
    off += m->F;
    m->bout_off = off;
    off += 1;
    if (dense_block_init(&m->dense, off))
        goto oom;

    /* Glorot-uniform MLP weights, zero biases; LeCun-uniform output layer. */
    rng_t r;
    rng_seed(&r, cfg->seed);
    for (int l = 1; l < m->L; l++) {
        int in = cfg->mlp[l - 1], out = cfg->mlp[l];
        float a = sqrtf(6.0f / (float)(in + out));
        float *w = m->dense.params + m->w_off[l];
        for (int i = 0; i < in * out; i++)
            w[i] = (float)(2.0 * rng_double(&r) - 1.0) * a;
    }
    float a = sqrtf(3.0f / (float)m->F);
    for (int i = 0; i < m->F; i++)
        m->dense.params[m->wout_off + i] = (float)(2.0 * rng_double(&r) - 1.0) * a;

    size_t B = (size_t)cfg->max_batch, E = (size_t)m->E, H1 = (size_t)cfg->mlp[1];
    size_t per = 2 * (size_t)m->F + 3 * E + 2 * H1;
    for (int l = 1; l < m->L; l++)
        per += 2 * (size_t)cfg->mlp[l];
    float *mem = malloc(sizeof(float) * per * B);
    if (!mem)
        goto oom;
    m->mem = mem;
    m->urows = malloc(sizeof(float *) * B);
    m->irows = malloc(sizeof(float *) * B);
    m->urun = malloc(sizeof(int) * B);
    m->uidx = malloc(sizeof(int) * B);
    if (!m->urows || !m->irows || !m->urun || !m->uidx)
        goto oom;
    m->xu = mem, mem += B * E;
    m->xi = mem, mem += B * E;
    m->dxu = mem, mem += B * E;
    m->hu = mem, mem += B * H1;
    m->dhu = mem, mem += B * H1;
    for (int l = 1; l < m->L; l++) {
        m->h[l] = mem, mem += B * cfg->mlp[l];
        m->dh[l] = mem, mem += B * cfg->mlp[l];
    }
    m->feat = mem, mem += B * m->F;
    m->dfeat = mem;
    return m;
oom:
    snprintf(errstr, len, "out of memory creating NeuMF");
err:
    neumf_free(m);
    return NULL;
}

void neumf_free(neumf_t *m)
{
    if (!m)
        return;
    dense_block_free(&m->dense);
    free(m->mem);
    free(m->urows);
    free(m->irows);
    free(m->urun);
    free(m->uidx);
    free(m);
}

int neumf_row_width(const neumf_t *m)
{
    return m->D + m->E;
}

dense_block_t *neumf_dense(neumf_t *m)
{
    return &m->dense;
}

void neumf_init_row(const neumf_t *m, float *row, uint64_t seed, float std)
{
    rng_t r;
    rng_seed(&r, seed);
    for (int i = 0; i < m->D + m->E; i++)
        row[i] = std * rng_normal(&r);
}

/* the rows a few pairs ahead are asked for while this one is copied: they
 * are scattered over tables much larger than the caches */
#define NEUMF_PREFETCH 8

static inline void prefetch_floats(const float *p, int n)
{
    for (int k = 0; k < n; k += 16) /* 64-byte lines */
        __builtin_prefetch(p + k);
}

void neumf_forward(neumf_t *m, float *logits, const float *const *urows, const float *const *irows,
                   int B)
{
    const int D = m->D, E = m->E, F = m->F, L = m->L, H1 = m->cfg.mlp[1];
    const int *mlp = m->cfg.mlp;
    const float *P = m->dense.params;
    void (*linear)(float *, const float *, const float *, int, const float *, int, int, int) =
        m->cfg.naive ? kern_linear_forward_ld_naive : kern_linear_forward_ld;

    /* gather the MLP halves, the user's once per run; the GMF product goes
     * straight into the joined feature, read from the rows themselves */
    int nu = 0;
    for (int b = 0; b < B; b++) {
        if (b + NEUMF_PREFETCH < B) {
            prefetch_floats(urows[b + NEUMF_PREFETCH], D + E);
            prefetch_floats(irows[b + NEUMF_PREFETCH], D + E);
        }
        m->urows[b] = urows[b];
        m->irows[b] = irows[b];
        if (b == 0 || urows[b] != urows[b - 1]) {
            memcpy(m->xu + (size_t)nu * E, urows[b] + D, sizeof(float) * E);
            m->urun[nu++] = b;
        }
        m->uidx[b] = nu - 1;
        memcpy(m->xi + (size_t)b * E, irows[b] + D, sizeof(float) * E);
        hadamard_forward(m->feat + (size_t)b * F, urows[b], irows[b], D);
    }
    m->nu = nu;

    /* h1 = relu(W1u p'_u + W1i q'_i + b1): W1u and W1i are W1's column halves */
    const float *W1 = P + m->w_off[1];
    linear(m->hu, m->xu, W1, 2 * E, NULL, nu, E, H1);
    linear(m->h[1], m->xi, W1 + E, 2 * E, P + m->b_off[1], B, E, H1);
    for (int b = 0; b < B; b++) {
        float *h = m->h[1] + (size_t)b * H1;
        const float *hu = m->hu + (size_t)m->uidx[b] * H1;
        for (int k = 0; k < H1; k++)
            h[k] += hu[k];
    }
    relu_forward(m->h[1], m->h[1], B * H1);
    for (int l = 2; l < L; l++) {
        linear(m->h[l], m->h[l - 1], P + m->w_off[l], mlp[l - 1], P + m->b_off[l], B, mlp[l - 1],
               mlp[l]);
        relu_forward(m->h[l], m->h[l], B * mlp[l]);
    }
    const int H = mlp[L - 1];
    for (int b = 0; b < B; b++)
        memcpy(m->feat + (size_t)b * F + D, m->h[L - 1] + (size_t)b * H, sizeof(float) * H);
    linear(logits, m->feat, P + m->wout_off, F, P + m->bout_off, B, F, 1);
}

void neumf_backward(neumf_t *m, float *du, float *di, const float *dlogits, int B)
{
    const int D = m->D, E = m->E, F = m->F, L = m->L, R = D + E, H1 = m->cfg.mlp[1];
    const int *mlp = m->cfg.mlp;
    const float *P = m->dense.params;
    float *G = m->dense.grads;
    void (*linear_bw)(float *, int, float, float *, float *, const float *, const float *,
                      const float *, int, int, int, int) =
        m->cfg.naive ? kern_linear_backward_ld_naive : kern_linear_backward_ld;

    linear_bw(m->dfeat, F, 0.0f, G + m->wout_off, G + m->bout_off, dlogits, m->feat,
              P + m->wout_off, F, B, F, 1);

    const int H = mlp[L - 1];
    for (int b = 0; b < B; b++) {
        /* GMF: du = df ⊙ q_i, di = df ⊙ p_u, written (not added) */
        const float *df = m->dfeat + (size_t)b * F, *p = m->urows[b], *q = m->irows[b];
        float *dub = du + (size_t)b * R, *dib = di + (size_t)b * R;
        for (int k = 0; k < D; k++) {
            dub[k] = df[k] * q[k];
            dib[k] = df[k] * p[k];
        }
        memcpy(m->dh[L - 1] + (size_t)b * H, df + D, sizeof(float) * H);
    }
    for (int l = L - 1; l >= 1; l--) {
        /* ReLU mask in place: dh[l] becomes the gradient of the pre-activation */
        float *d = m->dh[l];
        const float *h = m->h[l];
        relu_mask(d, h, B * mlp[l]);
        if (l > 1)
            linear_bw(m->dh[l - 1], mlp[l - 1], 0.0f, G + m->w_off[l], G + m->b_off[l], d,
                      m->h[l - 1], P + m->w_off[l], mlp[l - 1], B, mlp[l - 1], mlp[l]);
    }

    /* layer 1: the item half per pair; the user half per run, from the
     * pre-activation gradients summed over the run */
    const float *W1 = P + m->w_off[1];
    float *GW1 = G + m->w_off[1];
    /* the item half's input gradient straight into di's MLP part */
    linear_bw(di + D, R, 0.0f, GW1 + E, G + m->b_off[1], m->dh[1], m->xi, W1 + E, 2 * E, B, E, H1);
    const int nu = m->nu;
    memset(m->dhu, 0, sizeof(float) * (size_t)nu * H1);
    for (int b = 0; b < B; b++) {
        float *g = m->dhu + (size_t)m->uidx[b] * H1;
        const float *d = m->dh[1] + (size_t)b * H1;
        for (int k = 0; k < H1; k++)
            g[k] += d[k];
    }
    linear_bw(m->dxu, E, 0.0f, GW1, NULL, m->dhu, m->xu, W1, 2 * E, nu, E, H1);

    /* a run's user gradient goes on its first pair, zeros on the others: the
     * sum over a row's pairs is the row's gradient */
    for (int b = 0; b < B; b++) {
        const int r = m->uidx[b];
        float *dum = du + (size_t)b * R + D;
        if (m->urun[r] == b)
            memcpy(dum, m->dxu + (size_t)r * E, sizeof(float) * E);
        else
            memset(dum, 0, sizeof(float) * E);
    }
}

/* see neumf.h */
static int neumf_dense_layout(const neumf_t *m, char *buf, size_t len)
{
    size_t off = 0;
    for (int l = 1; l < m->L; l++) {
        int n = snprintf(buf + off, len - off, "W%d:%dx%d,b%d:%d,", l, m->cfg.mlp[l],
                         m->cfg.mlp[l - 1], l, m->cfg.mlp[l]);
        if (n < 0 || (size_t)n >= len - off)
            return -1;
        off += (size_t)n;
    }
    int n = snprintf(buf + off, len - off, "wout:%d,bout:1", m->F);
    return n < 0 || (size_t)n >= len - off ? -1 : 0;
}

static int neumf_row_layout(const neumf_t *m, char *buf, size_t len)
{
    int n = snprintf(buf, len, "gmf:0:%d,mlp:%d:%d", m->D, m->D, m->D + m->E);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* ---- the model interface (model.h) ---- */

static void *ops_create(const struct learner_config *lc, int max_batch, int ufeat, int ifeat,
                        char *errstr, size_t len)
{
    (void)ufeat, (void)ifeat; /* ids only */
    neumf_config_t c = lc->model;
    c.max_batch = max_batch;
    c.seed = lc->seed;
    return neumf_create(&c, errstr, len);
}

static void ops_free(void *m)
{
    neumf_free(m);
}

static int ops_row_width(const void *m, char side)
{
    (void)side;
    return neumf_row_width(m);
}

static dense_block_t *ops_dense(void *m)
{
    return neumf_dense(m);
}

static void ops_forward(void *m, float *logits, const float *const *urows,
                        const float *const *irows, const float *const *ufeat,
                        const float *const *ifeat, int B)
{
    (void)ufeat, (void)ifeat;
    neumf_forward(m, logits, urows, irows, B);
}

static void ops_backward(void *m, float *du, float *di, float *dfu, float *dfi,
                         const float *dlogits, int B)
{
    (void)dfu, (void)dfi;
    neumf_backward(m, du, di, dlogits, B);
}

/* the row itself is published (the default vector): [gmf | mlp] */
static int ops_vector_layout(const void *m, char *buf, size_t len)
{
    return neumf_row_layout(m, buf, len);
}

static int ops_dense_layout(const void *m, char *buf, size_t len)
{
    return neumf_dense_layout(m, buf, len);
}

const model_ops_t neumf_ops = {
    .name = "neumf",
    .flags = MODEL_RANKS,
    .keys = "mlp",
    .create = ops_create,
    .free = ops_free,
    .row_width = ops_row_width,
    .dense = ops_dense,
    .forward = ops_forward,
    .backward = ops_backward,
    .vector_layout = ops_vector_layout,
    .dense_layout = ops_dense_layout,
};
