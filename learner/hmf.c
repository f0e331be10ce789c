/* hmf.c — history matrix factorisation: a user is their own row plus the
 * mean of the rows of the items they clicked last (the learner keeps each
 * user's last `history` items, hist.h; MODEL_HISTORY), as YouTube's
 * candidate generator represents a user by the embeddings of their recent
 * items and FISM by the items they rated; an item has a bias, so the model
 * learns popularity beside taste. Rows are dim + 1 floats:
 *
 *   user row [p_u ; a_u]   item row [q_i ; b_i]
 *   c_u = Σ_j d^j [q_j ; b_j] / Σ_j d^j over u's last items, newest first
 *         (d: history_decay; 1 is the plain mean)
 *   logit = dot(w p_u + c_u[0:dim], q_i) + b_i + a_u   (w: user_weight)
 *
 * A new user's first clicks make them useful at once (c_u), before p_u has
 * learned anything; the newest click counts most, and w < 1 keeps p_u,
 * which holds the user's whole past, from outweighing what they do now.
 * The learner sends c_u's gradient into the history's rows, each its
 * weight's share (model.h). There are no dense parameters.
 *
 * Published (vector_dim dim + 2): a user [w p_u + c_u ; 1 ; a_u], an item
 * [q_i ; b_i ; 1] (layout "hmf:0:<dim>,bias:<dim>:<dim+2>"): the dot product
 * of a user's and an item's vector is the logit, the whole score. A user's
 * vector moves when they click (c_u) as well as when they learn.
 *
 * Not for: sampling, losses, row updates or the history itself (learner.c). */
#include "learner.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int D;                        /* factors; rows are D + 1 floats */
    float uw;                     /* the user row's weight (user_weight) */
    dense_block_t dense;          /* empty */
    const float **urows, **irows; /* (maxb) the last forward's rows, for backward */
    const float **ctx;            /* (maxb) and its users' contexts */
} hmf_t;

static void hmf_free(void *p)
{
    hmf_t *m = p;
    if (!m)
        return;
    dense_block_free(&m->dense);
    free(m->urows);
    free(m->irows);
    free(m->ctx);
    free(m);
}

static void *hmf_create(const struct learner_config *lc, int max_batch, int ufeat, int ifeat,
                        char *errstr, size_t len)
{
    (void)ufeat, (void)ifeat; /* the context is a row's width (MODEL_HISTORY) */
    int D = lc->model.dim;
    if (D < 1 || D > 1024 || max_batch < 1) {
        snprintf(errstr, len, "hmf: dim %d out of range [1, 1024] (or no batch)", D);
        return NULL;
    }
    hmf_t *m = calloc(1, sizeof(*m));
    size_t n = sizeof(float *) * (size_t)max_batch;
    if (!m || dense_block_init(&m->dense, 0) || !(m->urows = malloc(n)) ||
        !(m->irows = malloc(n)) || !(m->ctx = malloc(n))) {
        hmf_free(m);
        snprintf(errstr, len, "hmf: out of memory");
        return NULL;
    }
    m->D = D;
    m->uw = lc->user_weight;
    return m;
}

static int hmf_row_width(const void *p, char side)
{
    (void)side;
    return ((const hmf_t *)p)->D + 1;
}

static dense_block_t *hmf_dense(void *p)
{
    return &((hmf_t *)p)->dense;
}

static void hmf_forward(void *p, float *logits, const float *const *urows,
                        const float *const *irows, const float *const *ufeat,
                        const float *const *ifeat, int B)
{
    (void)ifeat;
    hmf_t *m = p;
    const int D = m->D;
    for (int b = 0; b < B; b++) {
        const float *u = urows[b], *v = irows[b], *c = ufeat[b];
        float z = v[D] + u[D];
        for (int k = 0; k < D; k++)
            z += (m->uw * u[k] + c[k]) * v[k];
        logits[b] = z;
        m->urows[b] = u;
        m->irows[b] = v;
        m->ctx[b] = c;
    }
}

/* ∂logit/∂p_u = w q_i, ∂logit/∂c_u = q_i, ∂logit/∂q_i = w p_u + c_u, and
 * 1 for both biases; each pair on its own. dfu (the context's) has 0 for its
 * bias part: b_j of the history does not enter the logit. */
static void hmf_backward(void *p, float *du, float *di, float *dfu, float *dfi,
                         const float *dlogits, int B)
{
    (void)dfi;
    hmf_t *m = p;
    const int D = m->D, R = D + 1;
    for (int b = 0; b < B; b++) {
        const float g = dlogits[b], *u = m->urows[b], *v = m->irows[b], *c = m->ctx[b];
        float *gu = du + (size_t)b * R, *gi = di + (size_t)b * R;
        float *gc = dfu ? dfu + (size_t)b * R : NULL;
        for (int k = 0; k < D; k++) {
            gu[k] = m->uw * g * v[k];
            gi[k] = g * (m->uw * u[k] + c[k]);
        }
        gu[D] = g;
        gi[D] = g;
        if (gc) {
            for (int k = 0; k < D; k++)
                gc[k] = g * v[k];
            gc[D] = 0.0f;
        }
    }
}

static int hmf_vector_dim(const void *p)
{
    return ((const hmf_t *)p)->D + 2;
}

static void hmf_vector(void *p, char side, const float *row, const float *feat, float *out)
{
    const hmf_t *m = p;
    const int D = m->D;
    if (side == 'u') {
        for (int k = 0; k < D; k++)
            out[k] = m->uw * row[k] + (feat ? feat[k] : 0.0f);
        out[D] = 1.0f;
        out[D + 1] = row[D];
    } else {
        memcpy(out, row, sizeof(float) * (size_t)(D + 1));
        out[D + 1] = 1.0f;
    }
}

static int hmf_vector_layout(const void *p, char *buf, size_t len)
{
    const int D = ((const hmf_t *)p)->D;
    int n = snprintf(buf, len, "hmf:0:%d,bias:%d:%d", D, D, D + 2);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

const model_ops_t hmf_ops = {
    .name = "hmf",
    .flags = MODEL_RANKS | MODEL_HISTORY,
    .keys = "history,history_decay,user_weight",
    .create = hmf_create,
    .free = hmf_free,
    .row_width = hmf_row_width,
    .dense = hmf_dense,
    .forward = hmf_forward,
    .backward = hmf_backward,
    .vector_dim = hmf_vector_dim,
    .vector = hmf_vector,
    .vector_layout = hmf_vector_layout,
};
