/* mf.c — plain matrix factorisation, the NCF paper's GMF baseline without
 * its output layer and the cheapest retrieval model: a user and an item are
 * each one row of dim floats, and
 *
 *   logit = dot(p_u, q_i)
 *
 * It has no dense parameters (an empty dense block), so everything it learns
 * is in the learner's rows; the published vector of a user or an item is its
 * row itself (layout "mf:0:<dim>"), and a dot product of two published
 * vectors is the model's logit. dim is the configured GMF factors
 * (learner_config_t.model.dim: `--dim`, `[model] dim`).
 *
 * Not for: sampling, losses or row updates (learner.c). */
#include "learner.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int D;                        /* floats per row */
    int maxb;                     /* most pairs one forward may take */
    dense_block_t dense;          /* empty: the engine's dense steps do nothing */
    const float **urows, **irows; /* (maxb) the last forward's rows, for backward */
    int B;
} mf_t;

static void mf_free(void *p)
{
    mf_t *m = p;
    if (!m)
        return;
    dense_block_free(&m->dense);
    free(m->urows);
    free(m->irows);
    free(m);
}

static void *mf_create(const struct learner_config *lc, int max_batch, int ufeat, int ifeat,
                       char *errstr, size_t len)
{
    (void)ufeat, (void)ifeat; /* ids only */
    int D = lc->model.dim;
    if (D < 1 || D > 1024 || max_batch < 1) {
        snprintf(errstr, len, "mf: dim %d out of range [1, 1024] (or no batch)", D);
        return NULL;
    }
    mf_t *m = calloc(1, sizeof(*m));
    if (!m || dense_block_init(&m->dense, 0) ||
        !(m->urows = malloc(sizeof(float *) * (size_t)max_batch)) ||
        !(m->irows = malloc(sizeof(float *) * (size_t)max_batch))) {
        mf_free(m);
        snprintf(errstr, len, "mf: out of memory");
        return NULL;
    }
    m->D = D;
    m->maxb = max_batch;
    return m;
}

static int mf_row_width(const void *p, char side)
{
    (void)side;
    return ((const mf_t *)p)->D;
}

static dense_block_t *mf_dense(void *p)
{
    return &((mf_t *)p)->dense;
}

static void mf_forward(void *p, float *logits, const float *const *urows, const float *const *irows,
                       const float *const *ufeat, const float *const *ifeat, int B)
{
    (void)ufeat, (void)ifeat;
    mf_t *m = p;
    const int D = m->D;
    for (int b = 0; b < B; b++) {
        const float *u = urows[b], *v = irows[b];
        float z = 0.0f;
        for (int k = 0; k < D; k++)
            z += u[k] * v[k];
        logits[b] = z;
        m->urows[b] = u;
        m->irows[b] = v;
    }
    m->B = B;
}

/* ∂logit/∂p_u = q_i and ∂logit/∂q_i = p_u, each pair on its own */
static void mf_backward(void *p, float *du, float *di, float *dfu, float *dfi, const float *dlogits,
                        int B)
{
    (void)dfu, (void)dfi;
    mf_t *m = p;
    const int D = m->D;
    for (int b = 0; b < B; b++) {
        const float g = dlogits[b], *u = m->urows[b], *v = m->irows[b];
        float *gu = du + (size_t)b * D, *gi = di + (size_t)b * D;
        for (int k = 0; k < D; k++) {
            gu[k] = g * v[k];
            gi[k] = g * u[k];
        }
    }
}

/* The rest is the defaults (model.h): the row itself is published, as
 * "mf:0:<dim>"; an empty dense block, shared by nothing and described by "". */

const model_ops_t mf_ops = {
    .name = "mf",
    .flags = MODEL_RANKS,
    .create = mf_create,
    .free = mf_free,
    .row_width = mf_row_width,
    .dense = mf_dense,
    .forward = mf_forward,
    .backward = mf_backward,
};
