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
 *   logit = dot(w p_u + c_u[0:dim] + M c_u[0:dim], q_i) + b_i + a_u
 *         (w: user_weight; M: the transition map, dim x dim, when
 *         transition_lr > 0, else no term)
 *
 * A new user's first clicks make them useful at once (c_u), before p_u has
 * learned anything; the newest click counts most, and w < 1 keeps p_u,
 * which holds the user's whole past, from outweighing what they do now.
 * The learner sends c_u's gradient into the history's rows, each its
 * weight's share (model.h).
 *
 * The transition map M, the one dense block (zero at the start, learned by
 * Adam at transition_lr, not lr_dense), is shared by every user and learns
 * from every event: what users who clicked items like a user's recent ones
 * click next. When many users' tastes move the same way (a planted shift,
 * a season), the first of them to come back move M, and M carries the move
 * to users who have not clicked since, where a user's own rows learn it
 * only from that user's next clicks. Without it (transition_lr 0, the
 * default) there are no dense parameters.
 *
 * Published (vector_dim dim + 2): a user [w p_u + c_u ; 1 ; a_u], an item
 * [q_i ; b_i ; 1] (layout "hmf:0:<dim>,bias:<dim>:<dim+2>"): the dot product
 * of a user's and an item's vector is the logit, the whole score. A user's
 * vector moves when they click (c_u) as well as when they learn. With a map
 * (vector_dim 2 dim + 2) a user [w p_u + c_u ; c_u ; 1 ; a_u], an item
 * [q_i ; Mᵀ q_i ; b_i ; 1] (layout "hmf:0:<dim>,map:<dim>:<2dim>,bias:…"),
 * since (M c_u)·q_i = c_u·(Mᵀ q_i): what the map learns reaches a service
 * through the items, republished whenever they are learned (a positive or a
 * negative of an event), not only through users who click again.
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
    dense_block_t dense;          /* the transition map M (D x D); empty without */
    const float **urows, **irows; /* (maxb) the last forward's rows, for backward */
    const float **ctx;            /* (maxb) and its users' contexts */
    float tlr;                    /* transition_lr; 0: no map */
    float *mc;                    /* (maxb, D) M c of each pair (with a map) */
    float *s;                     /* (D) a run's Σ g q_i (backward) */
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
    free(m->mc);
    free(m->s);
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
    size_t n = sizeof(float *) * (size_t)max_batch, nm = lc->transition_lr > 0.0f ? (size_t)D : 0;
    if (!m || dense_block_init(&m->dense, nm * nm) || !(m->urows = malloc(n)) ||
        !(m->irows = malloc(n)) || !(m->ctx = malloc(n)) ||
        !(m->mc = malloc(sizeof(float) * (size_t)max_batch * (nm ? nm : 1))) ||
        !(m->s = malloc(sizeof(float) * (size_t)D))) {
        hmf_free(m);
        snprintf(errstr, len, "hmf: out of memory");
        return NULL;
    }
    m->D = D;
    m->uw = lc->user_weight;
    m->tlr = lc->transition_lr;
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

/* out = M c (D floats) */
static void map_apply(const hmf_t *m, const float *c, float *out)
{
    const int D = m->D;
    const float *M = m->dense.params;
    for (int r = 0; r < D; r++) {
        float a = 0.0f;
        for (int k = 0; k < D; k++)
            a += M[(size_t)r * D + k] * c[k];
        out[r] = a;
    }
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
        if (m->tlr > 0.0f) { /* M c, once for a run of pairs of one context */
            float *mc = m->mc + (size_t)b * D;
            if (b > 0 && c == ufeat[b - 1])
                memcpy(mc, mc - D, sizeof(float) * (size_t)D);
            else
                map_apply(m, c, mc);
            for (int k = 0; k < D; k++)
                z += mc[k] * v[k];
        }
        logits[b] = z;
        m->urows[b] = u;
        m->irows[b] = v;
        m->ctx[b] = c;
    }
}

/* ∂logit/∂p_u = w q_i, ∂logit/∂c_u = q_i (+ Mᵀ q_i), ∂logit/∂q_i = w p_u +
 * c_u (+ M c_u), and 1 for both biases; ∂logit/∂M = q_i c_uᵀ. dfu (the
 * context's) has 0 for its bias part: b_j of the history does not enter the
 * logit. With a map, a run of pairs of one context (consecutive, as the
 * learner lays a user's pairs out) takes M's two products once: dM += s cᵀ
 * and Mᵀ s joins the run's last pair's dfu, s = Σ g q_i over the run; the
 * learner sums a context's gradient over its run (model.h). */
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
        if (m->tlr > 0.0f) {
            const float *mc = m->mc + (size_t)b * D;
            for (int k = 0; k < D; k++)
                gi[k] += g * mc[k];
        }
        gu[D] = g;
        gi[D] = g;
        if (gc) {
            for (int k = 0; k < D; k++)
                gc[k] = g * v[k];
            gc[D] = 0.0f;
        }
    }
    if (m->tlr <= 0.0f)
        return;
    const float *M = m->dense.params;
    float *dM = m->dense.grads, *s = m->s;
    for (int b0 = 0; b0 < B;) {
        const float *c = m->ctx[b0];
        int b1 = b0;
        memset(s, 0, sizeof(float) * (size_t)D);
        for (; b1 < B && m->ctx[b1] == c; b1++)
            for (int k = 0; k < D; k++)
                s[k] += dlogits[b1] * m->irows[b1][k];
        for (int r = 0; r < D; r++)
            for (int k = 0; k < D; k++)
                dM[(size_t)r * D + k] += s[r] * c[k];
        if (dfu) {
            float *gc = dfu + (size_t)(b1 - 1) * R;
            for (int r = 0; r < D; r++)
                for (int k = 0; k < D; k++)
                    gc[k] += s[r] * M[(size_t)r * D + k];
        }
        b0 = b1;
    }
}

/* with a map, D more: a user's context c_u, an item's Mᵀ q_i */
static int hmf_vector_dim(const void *p)
{
    const hmf_t *m = p;
    return (m->tlr > 0.0f ? 2 * m->D : m->D) + 2;
}

static void hmf_vector(void *p, char side, const float *row, const float *feat, float *out)
{
    const hmf_t *m = p;
    const int D = m->D, E = m->tlr > 0.0f ? 2 * D : D; /* where the biases go */
    if (side == 'u') {
        for (int k = 0; k < D; k++)
            out[k] = m->uw * row[k] + (feat ? feat[k] : 0.0f);
        for (int k = D; k < E; k++)
            out[k] = feat ? feat[k - D] : 0.0f;
        out[E] = 1.0f;
        out[E + 1] = row[D];
    } else {
        memcpy(out, row, sizeof(float) * (size_t)D);
        if (E > D) { /* Mᵀ q_i: (M c)·q = c·(Mᵀ q) */
            const float *M = m->dense.params;
            for (int k = 0; k < D; k++)
                out[D + k] = 0.0f;
            for (int r = 0; r < D; r++)
                for (int k = 0; k < D; k++)
                    out[D + k] += M[(size_t)r * D + k] * row[r];
        }
        out[E] = row[D];
        out[E + 1] = 1.0f;
    }
}

static int hmf_vector_layout(const void *p, char *buf, size_t len)
{
    const hmf_t *m = p;
    const int D = m->D;
    int n = m->tlr > 0.0f
                ? snprintf(buf, len, "hmf:0:%d,map:%d:%d,bias:%d:%d", D, D, 2 * D, 2 * D, 2 * D + 2)
                : snprintf(buf, len, "hmf:0:%d,bias:%d:%d", D, D, D + 2);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int hmf_dense_layout(const void *p, char *buf, size_t len)
{
    const hmf_t *m = p;
    if (m->tlr <= 0.0f) /* no dense block */
        return len > 0 ? (buf[0] = '\0', 0) : -1;
    int n = snprintf(buf, len, "map:%dx%d", m->D, m->D);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static float hmf_dense_lr(const void *p)
{
    return ((const hmf_t *)p)->tlr;
}

const model_ops_t hmf_ops = {
    .name = "hmf",
    .flags = MODEL_RANKS | MODEL_HISTORY,
    .keys = "history,history_decay,user_weight,transition_lr",
    .create = hmf_create,
    .free = hmf_free,
    .row_width = hmf_row_width,
    .dense = hmf_dense,
    .forward = hmf_forward,
    .backward = hmf_backward,
    .vector_dim = hmf_vector_dim,
    .vector = hmf_vector,
    .vector_layout = hmf_vector_layout,
    .dense_layout = hmf_dense_layout,
    .dense_lr = hmf_dense_lr,
};
