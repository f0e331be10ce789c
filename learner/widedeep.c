/* widedeep.c — Wide & Deep (Cheng et al. 2016): σ(wide + wdeep · MLP(x0)).
 * The wide part and the deep MLP are the shared core's (ctr.h); this head
 * adds the deep output's weights wdeep (H), its dense block's own part.
 * Not for: the shared core (ctr.c), the engine (ctrengine.c). */
#include "ctr.h"
#include "engine.h"
#include "model.h"

#include <math.h>
#include <stdio.h>

static size_t wd_size(const ctr_config_t *cfg, int X, int H)
{
    (void)cfg, (void)X;
    return (size_t)H;
}

static void wd_init(float *w, const ctr_config_t *cfg, int X, int H, rng_t *r)
{
    (void)cfg, (void)X;
    for (int i = 0; i < H; i++)
        w[i] = (float)(2.0 * rng_double(r) - 1.0) * sqrtf(3.0f / (float)H);
}

static int wd_layout(char *buf, size_t len, const ctr_config_t *cfg, int X, int H)
{
    (void)cfg, (void)X;
    int n = snprintf(buf, len, "wdeep:%d,", H);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* logit += wdeep · h, h the deep output */
static void wd_forward(ctr_pass_t *p)
{
    for (int b = 0; b < p->B; b++) {
        float z = p->logits[b];
        const float *hl = p->deep + (size_t)b * p->H;
        for (int j = 0; j < p->H; j++)
            z += p->w[j] * hl[j];
        p->logits[b] = z;
    }
}

static void wd_backward(ctr_pass_t *p)
{
    for (int b = 0; b < p->B; b++) {
        float d = p->dz[b];
        const float *hl = p->deep + (size_t)b * p->H;
        float *dhl = p->ddeep + (size_t)b * p->H;
        for (int j = 0; j < p->H; j++) {
            p->dw[j] += d * hl[j];
            dhl[j] += d * p->w[j];
        }
    }
}

static const ctr_head_t widedeep_head = {
    .parts = CTR_WIDE | CTR_DEEP,
    .size = wd_size,
    .init = wd_init,
    .layout = wd_layout,
    .forward = wd_forward,
    .backward = wd_backward,
};

const model_ops_t widedeep_ops = {
    .name = "widedeep",
    .flags = MODEL_FIELDS,
    .keys = "wide_bits,crosses,deep",
    .engine = &ctr_engine,
    .head = &widedeep_head,
};
