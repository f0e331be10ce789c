/* dcn.c — Deep & Cross (Wang et al. 2017): σ(wout · [cross_L(x0) ; MLP(x0)]
 * + bias). The deep MLP is the shared core's (ctr.h); this head adds the
 * cross layers (ctrlayers.h) over x0 and the output layer over both, and
 * holds their activations. No wide part.
 *
 * Its part of the dense block, in order:
 *   cw_l (X), cb_l (X)    l = 1..cross_layers
 *   wout (X + H)          the bias is the block's last float
 * Not for: the shared core (ctr.c), the engine (ctrengine.c). */
#include "ctr.h"
#include "ctrlayers.h"
#include "engine.h"
#include "kern.h"
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int maxb;
    float *xc[CTR_MAX_LAYERS + 1], *dxc[CTR_MAX_LAYERS + 1]; /* (B, X) x_l, l ≥ 1 (x_0 = x0) */
    float *s[CTR_MAX_LAYERS];                                /* (B) xl·w of each layer */
    float *feat, *dfeat;                                     /* (B, X + H) [x_L ; h] */
} dcn_ws_t;

/* offsets in the head's part */
static size_t cw_off(int l, int X)
{
    return (size_t)l * 2 * (size_t)X;
}

static size_t cb_off(int l, int X)
{
    return cw_off(l, X) + (size_t)X;
}

static size_t wout_off(const ctr_config_t *cfg, int X)
{
    return cw_off(cfg->cross_layers, X);
}

static int dcn_check(const ctr_config_t *cfg, char *errstr, size_t len)
{
    if (cfg->cross_layers < 1 || cfg->cross_layers > CTR_MAX_LAYERS) {
        snprintf(errstr, len, "ctr: dcn needs 1..%d cross layers", CTR_MAX_LAYERS);
        return -1;
    }
    return 0;
}

static size_t dcn_size(const ctr_config_t *cfg, int X, int H)
{
    return wout_off(cfg, X) + (size_t)X + (size_t)H;
}

/* cross weights uniform in ±sqrt(1/X) (biases 0), then wout in ±sqrt(3/(X+H)) */
static void dcn_init(float *w, const ctr_config_t *cfg, int X, int H, rng_t *r)
{
    float a = sqrtf(1.0f / (float)X);
    for (int l = 0; l < cfg->cross_layers; l++)
        for (int i = 0; i < X; i++)
            w[cw_off(l, X) + i] = (float)(2.0 * rng_double(r) - 1.0) * a;
    int nout = X + H;
    for (int i = 0; i < nout; i++)
        w[wout_off(cfg, X) + i] = (float)(2.0 * rng_double(r) - 1.0) * sqrtf(3.0f / (float)nout);
}

static int dcn_layout(char *buf, size_t len, const ctr_config_t *cfg, int X, int H)
{
    size_t off = 0;
    int n;
    for (int l = 0; l <= cfg->cross_layers; l++) {
        n = l < cfg->cross_layers
                ? snprintf(buf + off, len - off, "cw%d:%d,cb%d:%d,", l + 1, X, l + 1, X)
                : snprintf(buf + off, len - off, "wout:%d,", X + H);
        if (n < 0 || (size_t)n >= len - off)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

static void dcn_free(void *p)
{
    dcn_ws_t *ws = p;
    if (!ws)
        return;
    for (int l = 1; l <= CTR_MAX_LAYERS; l++) {
        free(ws->xc[l]);
        free(ws->dxc[l]);
        free(ws->s[l - 1]);
    }
    free(ws->feat);
    free(ws->dfeat);
    free(ws);
}

static void *dcn_create(const ctr_config_t *cfg, int X, int H, int maxb)
{
    dcn_ws_t *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    size_t B = (size_t)maxb;
    ws->maxb = maxb;
    for (int l = 0; l < cfg->cross_layers; l++) {
        ws->xc[l + 1] = malloc(sizeof(float) * B * X);
        ws->dxc[l + 1] = malloc(sizeof(float) * B * X);
        ws->s[l] = malloc(sizeof(float) * B);
        if (!ws->xc[l + 1] || !ws->dxc[l + 1] || !ws->s[l])
            goto err;
    }
    ws->feat = malloc(sizeof(float) * B * (X + H));
    ws->dfeat = malloc(sizeof(float) * B * (X + H));
    if (!ws->feat || !ws->dfeat)
        goto err;
    return ws;
err:
    dcn_free(ws);
    return NULL;
}

static void dcn_forward(ctr_pass_t *p)
{
    dcn_ws_t *ws = p->ws;
    const int B = p->B, X = p->X, H = p->H, Lc = p->cfg->cross_layers, F = X + H;
    void (*linear)(float *, const float *, const float *, const float *, int, int, int) =
        p->cfg->naive ? kern_linear_forward_naive : kern_linear_forward;
    for (int l = 0; l < Lc; l++)
        cross_forward(ws->xc[l + 1], ws->s[l], p->x0, l ? ws->xc[l] : p->x0, p->w + cw_off(l, X),
                      p->w + cb_off(l, X), B, X);
    for (int b = 0; b < B; b++) {
        memcpy(ws->feat + (size_t)b * F, ws->xc[Lc] + (size_t)b * X, sizeof(float) * X);
        memcpy(ws->feat + (size_t)b * F + X, p->deep + (size_t)b * H, sizeof(float) * H);
    }
    linear(p->logits, ws->feat, p->w + wout_off(p->cfg, X), p->bias, B, F, 1);
}

static void dcn_backward(ctr_pass_t *p)
{
    dcn_ws_t *ws = p->ws;
    const int B = p->B, X = p->X, H = p->H, Lc = p->cfg->cross_layers, F = X + H;
    void (*linear_bw)(float *, float *, float *, const float *, const float *, const float *, int,
                      int, int) = p->cfg->naive ? kern_linear_backward_naive : kern_linear_backward;
    memset(ws->dfeat, 0, sizeof(float) * B * F);
    linear_bw(ws->dfeat, p->dw + wout_off(p->cfg, X), p->dbias, p->dz, ws->feat,
              p->w + wout_off(p->cfg, X), B, F, 1);
    for (int l = 1; l <= Lc; l++)
        memset(ws->dxc[l], 0, sizeof(float) * B * X);
    for (int b = 0; b < B; b++) {
        memcpy(ws->dxc[Lc] + (size_t)b * X, ws->dfeat + (size_t)b * F, sizeof(float) * X);
        memcpy(p->ddeep + (size_t)b * H, ws->dfeat + (size_t)b * F + X, sizeof(float) * H);
    }
    for (int l = Lc - 1; l >= 0; l--) {
        /* x_{l+1} = cross(x0, x_l): x0's gradient goes to dx0, x_l's to dxc[l]
         * (for l = 0, x_l is x0 itself: both land in dx0) */
        float *dxl = l == 0 ? p->dx0 : ws->dxc[l];
        cross_backward(p->dx0, dxl, p->dw + cw_off(l, X), p->dw + cb_off(l, X), ws->dxc[l + 1],
                       p->x0, l ? ws->xc[l] : p->x0, ws->s[l], p->w + cw_off(l, X), B, X);
    }
}

static const ctr_head_t dcn_head = {
    .parts = CTR_DEEP,
    .check = dcn_check,
    .size = dcn_size,
    .init = dcn_init,
    .layout = dcn_layout,
    .create = dcn_create,
    .free = dcn_free,
    .forward = dcn_forward,
    .backward = dcn_backward,
};

const model_ops_t dcn_ops = {
    .name = "dcn",
    .flags = MODEL_FIELDS,
    .keys = "deep,cross_layers",
    .engine = &ctr_engine,
    .head = &dcn_head,
};
