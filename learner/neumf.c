/* neumf.c — NeuMF forward and backward over micro-batches (see neumf.h).
 *
 * Layout of the dense block, in order:
 *   for l = 1..L-1:  W_l (mlp[l], mlp[l-1]), b_l (mlp[l])
 *   wout (dim + mlp[L-1]), bout (1)
 * Each layer is one sgemm over the micro-batch; embedding rows are gathered
 * into contiguous buffers first. */
#include "neumf.h"

#include "kern.h"
#include "layers.h"
#include "rng.h"

#include <errno.h>
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
    float *h[NEUMF_MAX_LAYERS];   /* h[0] = [p'_u ; q'_i] (B, 2E); h[l] (B, mlp[l]) post-ReLU */
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

int neumf_parse_layers(neumf_config_t *cfg, const char *s, char *errstr, size_t len)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > 4096) {
            snprintf(errstr, len, "MLP layers '%s': expected sizes like 64,32,16,8", s);
            return -1;
        }
        if (n == NEUMF_MAX_LAYERS) {
            snprintf(errstr, len, "MLP layers '%s': at most %d sizes", s, NEUMF_MAX_LAYERS);
            return -1;
        }
        cfg->mlp[n++] = (int)v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p) {
            snprintf(errstr, len, "MLP layers '%s': unexpected '%c'", s, *p);
            return -1;
        }
    }
    if (n < 2) {
        snprintf(errstr, len, "MLP layers '%s': need the input width and at least one layer", s);
        return -1;
    }
    cfg->nmlp = n;
    return 0;
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

    size_t B = (size_t)cfg->max_batch, per = 2 * (size_t)m->F;
    for (int l = 0; l < m->L; l++)
        per += 2 * (size_t)cfg->mlp[l];
    float *mem = malloc(sizeof(float) * per * B);
    if (!mem)
        goto oom;
    m->mem = mem;
    m->urows = malloc(sizeof(float *) * B);
    m->irows = malloc(sizeof(float *) * B);
    if (!m->urows || !m->irows)
        goto oom;
    for (int l = 0; l < m->L; l++) {
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

void neumf_forward(neumf_t *m, float *logits, const float *const *urows, const float *const *irows,
                   int B)
{
    const int D = m->D, E = m->E, F = m->F, L = m->L;
    const int *mlp = m->cfg.mlp;
    const float *P = m->dense.params;
    void (*linear)(float *, const float *, const float *, const float *, int, int, int) =
        m->cfg.naive ? kern_linear_forward_naive : kern_linear_forward;

    /* gather the MLP halves into [p'_u ; q'_i]; the GMF product goes straight
     * into the joined feature, read from the rows themselves */
    const int H = mlp[L - 1];
    for (int b = 0; b < B; b++) {
        m->urows[b] = urows[b];
        m->irows[b] = irows[b];
        float *x0 = m->h[0] + (size_t)b * 2 * E;
        memcpy(x0, urows[b] + D, sizeof(float) * E);
        memcpy(x0 + E, irows[b] + D, sizeof(float) * E);
        hadamard_forward(m->feat + (size_t)b * F, urows[b], irows[b], D);
    }
    for (int l = 1; l < L; l++) {
        linear(m->h[l], m->h[l - 1], P + m->w_off[l], P + m->b_off[l], B, mlp[l - 1], mlp[l]);
        relu_forward(m->h[l], m->h[l], B * mlp[l]);
    }
    for (int b = 0; b < B; b++)
        memcpy(m->feat + (size_t)b * F + D, m->h[L - 1] + (size_t)b * H, sizeof(float) * H);
    linear(logits, m->feat, P + m->wout_off, P + m->bout_off, B, F, 1);
}

void neumf_backward(neumf_t *m, float *du, float *di, const float *dlogits, int B)
{
    const int D = m->D, E = m->E, F = m->F, L = m->L, R = D + E;
    const int *mlp = m->cfg.mlp;
    const float *P = m->dense.params;
    float *G = m->dense.grads;
    void (*linear_bw)(float *, float *, float *, const float *, const float *, const float *, int,
                      int, int) = m->cfg.naive ? kern_linear_backward_naive : kern_linear_backward;

    memset(m->dfeat, 0, sizeof(float) * B * F);
    linear_bw(m->dfeat, G + m->wout_off, G + m->bout_off, dlogits, m->feat, P + m->wout_off, B, F,
              1);

    const int H = mlp[L - 1];
    for (int l = 0; l < L - 1; l++)
        memset(m->dh[l], 0, sizeof(float) * B * mlp[l]);
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
        for (int k = 0; k < B * mlp[l]; k++)
            if (h[k] <= 0.0f)
                d[k] = 0.0f;
        linear_bw(m->dh[l - 1], G + m->w_off[l], G + m->b_off[l], d, m->h[l - 1], P + m->w_off[l],
                  B, mlp[l - 1], mlp[l]);
    }
    for (int b = 0; b < B; b++) {
        const float *dx0 = m->dh[0] + (size_t)b * 2 * E;
        memcpy(du + (size_t)b * R + D, dx0, sizeof(float) * E);
        memcpy(di + (size_t)b * R + D, dx0 + E, sizeof(float) * E);
    }
}

int neumf_dim(const neumf_t *m)
{
    return m->D;
}

int neumf_dense_layout(const neumf_t *m, char *buf, size_t len)
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

int neumf_row_layout(const neumf_t *m, char *buf, size_t len)
{
    int n = snprintf(buf, len, "gmf:0:%d,mlp:%d:%d", m->D, m->D, m->D + m->E);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}
