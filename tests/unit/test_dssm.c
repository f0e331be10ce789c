/* test_dssm.c — the DSSM two-tower model (learner/dssm.c), checked
 * numerically. Not for: sampling, the learner loop or training quality.
 *
 * What each test asserts:
 *  - dssm_fd_linear: for loss = Σ logits ⊙ R (dim 6, towers 5,4, gamma 3,
 *    rows N(0, 0.5²), 6 pairs sharing user 0 and item 2), every dense
 *    parameter of both towers and every float of every row has an analytic
 *    gradient within 1% (floor 1e-2) of a double central difference; a row
 *    used by several pairs is compared with the sum of their du/di. ReLU
 *    kinks (one-sided slopes disagree) are skipped, at most 1/4 of them. Also:
 *    du/di are written (NaN before), dense gradients are added (a second
 *    backward doubles them), and most weights have a non-zero gradient.
 *  - dssm_fd_features: the linear check with feature vectors in both towers
 *    (3 floats after the user row, 2 after the item row): dense parameters,
 *    rows and every feature float (the sum over the pairs sharing them).
 *  - dssm_fd_softmax: the same check with the learner's sampled softmax
 *    (loss_softmax, 2 groups of 3, logQ) on the logits: towers, cosine and
 *    softmax end to end; item 2 is a positive in one group and a negative in
 *    the other.
 *  - dssm_naive_vs_blas: plain-loop and BLAS kernels give the same logits,
 *    dense gradients and row gradients (1e-5 relative), on two shapes.
 *  - dssm_logit_bounded: |logit| ≤ gamma for rows from 1e-4 to 1e4 in scale,
 *    and with tied towers (cosine +1) and a negated item output layer
 *    (cosine −1), where rounding could otherwise overshoot.
 *  - dssm_vectors: dssm_user_vector has unit norm; its dot with
 *    dssm_item_vector is logit/gamma of the same pair from dssm_forward; and
 *    calling them between forward and backward changes nothing backward does.
 *  - dssm_init: Glorot-uniform weights within ±sqrt(6/(in+out)), zero
 *    biases, reproducible from the seed, different for another seed and
 *    between the towers.
 *  - dssm_config_errors: every bad field of the config is refused with a
 *    message naming it; a tiny or NULL errstr is safe; dssm_free(NULL).
 *  - dssm_layout: dssm_dense_layout names U/ub then I/ib layers, its sizes add
 *    up to dense->n for several shapes, and a short buffer gives -1; row
 *    width and output width. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dssm.h"
#include "gradcheck.h"
#include "loss.h"
#include "optim.h"
#include "rng.h"
#include "widths.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Central differences in double over the float model (gradcheck.h); where
 * the two one-sided slopes disagree the step straddles a ReLU kink and the
 * element is skipped. (The normalisation and softmax are smooth, so their
 * curvature over a 1e-3 step stays well inside the tolerance.) */
#define FD_EPS 1e-3
#define BLAS_REL 1e-5

#define DIM 6
#define OUT 4
#define GAMMA 3.0f
#define NU 3
#define NI 5
#define NB 6
#define FUW 3 /* feature floats of a user, of an item (the features cases) */
#define FIW 2
/* the softmax case: SB groups of SG pairs (positive first) */
#define SB 2
#define SG 3

/* pairs (user, item) for Σ logits ⊙ R; user 0 and item 2 appear more than once */
static const int pair_u[NB] = {0, 0, 1, 2, 1, 0};
static const int pair_i[NB] = {0, 1, 2, 3, 4, 2};
/* the softmax groups: user b against items {pos, neg, neg}; item 2 is the
 * positive of group 1 and a negative of group 0 */
static const int soft_u[NB] = {0, 0, 0, 1, 1, 1};
static const int soft_i[NB] = {0, 1, 2, 2, 3, 4};

static float uniform(rng_t *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)rng_double(r);
}

/* BLAS and plain loops sum in different orders. An entry that is a nearly
 * cancelling sum (a row gradient of 1e-3 made of terms near 1) carries the
 * rounding of its terms, so the relative tolerance is taken of the entry or of
 * the largest entry of its tensor (scale), whichever is larger. */
static int blas_close(double a, double b, double scale)
{
    return fabs(a - b) <= BLAS_REL * fmax(fabs(a) + fabs(b), scale) + 1e-30;
}

static double max_abs(const float *x, size_t n)
{
    double m = 0.0;
    for (size_t k = 0; k < n; k++)
        m = fmax(m, fabs(x[k]));
    return m;
}

static void small_config(dssm_config_t *cfg, int naive)
{
    dssm_config_default(cfg);
    /* ufeat = ifeat = 0 unless a case sets them */
    cfg->dim = DIM;
    cfg->tower[0] = 5, cfg->tower[1] = OUT;
    cfg->ntower = 2;
    cfg->gamma = GAMMA;
    cfg->max_batch = 8;
    cfg->seed = 1234;
    cfg->naive = naive;
}

static dssm_t *make(const dssm_config_t *cfg)
{
    char err[160];
    dssm_t *m = dssm_create(cfg, err, sizeof(err));
    if (!m)
        fail_msg("dssm_create: %s", err);
    return m;
}

typedef struct {
    dssm_t *m;
    int softmax; /* 0: loss = Σ logits ⊙ R; 1: loss_softmax over SB groups of SG */
    const int *pu, *pi;
    float users[NU][DIM], items[NI][DIM];
    const float *up[NB], *ip[NB];
    int feats; /* 1: users and items have feature vectors */
    float ufeat[NU][FUW], ifeat[NI][FIW];
    const float *ufp[NB], *ifp[NB];
    float R[NB], logq[NB], logits[NB];
} ctx_t;

static void ctx_init(ctx_t *c, dssm_t *m, int softmax, int feats)
{
    memset(c, 0, sizeof(*c));
    c->m = m;
    c->softmax = softmax;
    c->feats = feats;
    c->pu = softmax ? soft_u : pair_u;
    c->pi = softmax ? soft_i : pair_i;
    rng_t r;
    rng_seed(&r, 9);
    for (int u = 0; u < NU; u++)
        for (int k = 0; k < DIM; k++)
            c->users[u][k] = 0.5f * rng_normal(&r);
    for (int i = 0; i < NI; i++)
        for (int k = 0; k < DIM; k++)
            c->items[i][k] = 0.5f * rng_normal(&r);
    for (int u = 0; u < NU; u++)
        for (int k = 0; k < FUW; k++)
            c->ufeat[u][k] = 0.5f * rng_normal(&r);
    for (int i = 0; i < NI; i++)
        for (int k = 0; k < FIW; k++)
            c->ifeat[i][k] = 0.5f * rng_normal(&r);
    for (int b = 0; b < NB; b++) {
        c->up[b] = c->users[c->pu[b]];
        c->ip[b] = c->items[c->pi[b]];
        c->ufp[b] = c->ufeat[c->pu[b]];
        c->ifp[b] = c->ifeat[c->pi[b]];
        c->R[b] = uniform(&r, -1, 1);
        c->logq[b] = uniform(&r, -6, -1);
    }
    /* non-zero biases, so that the bias path is exercised off its init */
    dense_block_t *d = dssm_dense(m);
    for (size_t k = 0; k < d->n; k++)
        if (d->params[k] == 0.0f)
            d->params[k] = uniform(&r, -0.1f, 0.1f);
}

/* loss_softmax's loss recomputed in double from the same float logits.
 * loss_softmax forms z − logq and its mean in float: ~2e-7 of noise on a loss
 * near 1, 1e-4 over a 2e-3 step, as large as the tolerance's floor; a longer
 * step would mistake the curvature of the cosine for ReLU kinks. So the finite
 * differences run over this twin (checked equal to loss_softmax below) while
 * backward gets loss_softmax's own dz. */
static double softmax_double(const float *z, const float *logq)
{
    double total = 0.0;
    for (int b = 0; b < SB; b++) {
        double s[SG], mx = -INFINITY, sum = 0.0;
        for (int g = 0; g < SG; g++) {
            s[g] = (double)z[b * SG + g] - logq[b * SG + g];
            mx = fmax(mx, s[g]);
        }
        for (int g = 0; g < SG; g++)
            sum += exp(s[g] - mx);
        total += log(sum) + mx - s[0];
    }
    return total / SB;
}

/* Forward and the loss; dz (NB) gets ∂loss/∂logits. */
static double ctx_loss(ctx_t *c, float *dz)
{
    dssm_forward(c->m, c->logits, c->up, c->ip, c->feats ? c->ufp : NULL, c->feats ? c->ifp : NULL,
                 NB);
    if (c->softmax) {
        float l = loss_softmax(dz, c->logits, c->logq, NULL, SB, SG);
        double ld = softmax_double(c->logits, c->logq);
        assert_true(fabs(l - ld) <= 1e-6 * (1.0 + fabs(ld)));
        return ld;
    }
    double s = 0.0;
    for (int b = 0; b < NB; b++) {
        s += (double)c->logits[b] * c->R[b];
        dz[b] = c->R[b];
    }
    return s;
}

static double ctx_objective(void *p)
{
    float dz[NB];
    return ctx_loss(p, dz);
}

/* Zeroed dense grads, forward, loss, backward; du/di (NB, DIM) and dfu/dfi
 * NaN before. */
static void ctx_grads(ctx_t *c, float *du, float *di, float *dfu, float *dfi, float *dz)
{
    dense_block_zero_grad(dssm_dense(c->m));
    ctx_loss(c, dz);
    for (int k = 0; k < NB * DIM; k++)
        du[k] = di[k] = NAN;
    for (int k = 0; k < NB * FUW; k++)
        dfu[k] = NAN;
    for (int k = 0; k < NB * FIW; k++)
        dfi[k] = NAN;
    dssm_backward(c->m, du, di, c->feats ? dfu : NULL, c->feats ? dfi : NULL, dz, NB);
}

static void fd_case(int softmax, int feats)
{
    dssm_config_t cfg;
    small_config(&cfg, 0);
    if (feats)
        cfg.ufeat = FUW, cfg.ifeat = FIW;
    dssm_t *m = make(&cfg);
    ctx_t c;
    ctx_init(&c, m, softmax, feats);
    float du[NB * DIM], di[NB * DIM], dz[NB], dfu[NB * FUW], dfi[NB * FIW];
    ctx_grads(&c, du, di, dfu, dfi, dz);
    dense_block_t *d = dssm_dense(m);
    for (int k = 0; k < NB * DIM; k++)
        assert_true(isfinite(du[k]) && isfinite(di[k]));
    for (int b = 0; b < NB; b++)
        assert_true(fabsf(c.logits[b]) <= GAMMA);

    /* a check over dead ReLUs would prove little: most weights must matter */
    int live = 0;
    for (size_t k = 0; k < d->n; k++)
        live += d->grads[k] != 0.0f;
    assert_true(live >= (int)(d->n / 2));

    float *g = malloc(sizeof(float) * d->n);
    assert_non_null(g);
    memcpy(g, d->grads, sizeof(float) * d->n);
    int kinks = 0;
    const char *name = softmax ? "softmax" : feats ? "features" : "linear";
    char what[64];
    snprintf(what, sizeof(what), "%s dense", name);
    int bad = gradcheck(what, ctx_objective, &c, d->params, g, (int)d->n, FD_EPS, &kinks);

    /* a row shared by several pairs gets the sum of their row gradients */
    float gu[NU][DIM], gi[NI][DIM];
    memset(gu, 0, sizeof(gu));
    memset(gi, 0, sizeof(gi));
    for (int b = 0; b < NB; b++) {
        for (int k = 0; k < DIM; k++) {
            gu[c.pu[b]][k] += du[b * DIM + k];
            gi[c.pi[b]][k] += di[b * DIM + k];
        }
    }
    snprintf(what, sizeof(what), "%s user rows", name);
    bad += gradcheck(what, ctx_objective, &c, &c.users[0][0], &gu[0][0], NU * DIM, FD_EPS, &kinks);
    snprintf(what, sizeof(what), "%s item rows", name);
    bad += gradcheck(what, ctx_objective, &c, &c.items[0][0], &gi[0][0], NI * DIM, FD_EPS, &kinks);
    if (feats) { /* the feature vectors, each the sum over the pairs that share it */
        float gfu[NU][FUW], gfi[NI][FIW];
        memset(gfu, 0, sizeof(gfu));
        memset(gfi, 0, sizeof(gfi));
        for (int b = 0; b < NB; b++) {
            for (int k = 0; k < FUW; k++) {
                assert_true(isfinite(dfu[b * FUW + k]));
                gfu[c.pu[b]][k] += dfu[b * FUW + k];
            }
            for (int k = 0; k < FIW; k++) {
                assert_true(isfinite(dfi[b * FIW + k]));
                gfi[c.pi[b]][k] += dfi[b * FIW + k];
            }
        }
        int nonzero = 0;
        for (int k = 0; k < NU * FUW; k++)
            nonzero += (&gfu[0][0])[k] != 0.0f;
        assert_true(nonzero > NU * FUW / 2);
        bad += gradcheck("user features", ctx_objective, &c, &c.ufeat[0][0], &gfu[0][0], NU * FUW,
                         FD_EPS, &kinks);
        bad += gradcheck("item features", ctx_objective, &c, &c.ifeat[0][0], &gfi[0][0], NI * FIW,
                         FD_EPS, &kinks);
    }
    assert_int_equal(bad, 0);
    /* skipping most coordinates would prove nothing */
    assert_in_range(kinks, 0, (d->n + (NU + NI) * DIM) / 4);

    /* backward adds into the dense gradients: a second pass doubles them */
    ctx_grads(&c, du, di, dfu, dfi, dz);
    memcpy(g, d->grads, sizeof(float) * d->n);
    dssm_backward(m, du, di, feats ? dfu : NULL, feats ? dfi : NULL, dz, NB);
    for (size_t k = 0; k < d->n; k++)
        assert_float_equal(d->grads[k], 2.0f * g[k], 1e-6 * (1.0 + fabs(g[k])));
    free(g);
    dssm_free(m);
}

static void test_dssm_fd_linear(void **state)
{
    (void)state;
    fd_case(0, 0);
}

static void test_dssm_fd_features(void **state)
{
    (void)state;
    fd_case(0, 1);
}

static void test_dssm_fd_softmax(void **state)
{
    (void)state;
    fd_case(1, 0);
}

static void test_dssm_fd_softmax_features(void **state)
{
    (void)state;
    fd_case(1, 1);
}

/* ------------------------------------------------------- naive vs BLAS */

static void naive_vs_blas_case(const dssm_config_t *base, int B)
{
    dssm_config_t cb = *base, cn = *base;
    cb.naive = 0, cn.naive = 1;
    dssm_t *mb = make(&cb), *mn = make(&cn);
    dense_block_t *db = dssm_dense(mb), *dn = dssm_dense(mn);
    assert_int_equal(db->n, dn->n);
    /* same seed, same initial block */
    assert_memory_equal(db->params, dn->params, sizeof(float) * db->n);
    rng_t r;
    rng_seed(&r, 77);
    for (size_t k = 0; k < db->n; k++)
        if (db->params[k] == 0.0f)
            db->params[k] = dn->params[k] = uniform(&r, -0.1f, 0.1f);

    const int D = base->dim;
    float *rows = malloc(sizeof(float) * 2 * B * D);
    const float **up = malloc(sizeof(float *) * B), **ip = malloc(sizeof(float *) * B);
    float *lb = malloc(sizeof(float) * B), *ln = malloc(sizeof(float) * B);
    float *dl = malloc(sizeof(float) * B);
    float *du_b = malloc(sizeof(float) * B * D), *di_b = malloc(sizeof(float) * B * D);
    float *du_n = malloc(sizeof(float) * B * D), *di_n = malloc(sizeof(float) * B * D);
    assert_true(rows && up && ip && lb && ln && dl && du_b && di_b && du_n && di_n);
    for (int k = 0; k < 2 * B * D; k++)
        rows[k] = 0.5f * rng_normal(&r);
    for (int b = 0; b < B; b++) {
        up[b] = rows + (size_t)b * D;
        ip[b] = rows + (size_t)(B + b) * D;
        dl[b] = uniform(&r, -1, 1);
    }
    dense_block_zero_grad(db);
    dense_block_zero_grad(dn);
    dssm_forward(mb, lb, up, ip, NULL, NULL, B);
    dssm_forward(mn, ln, up, ip, NULL, NULL, B);
    dssm_backward(mb, du_b, di_b, NULL, NULL, dl, B);
    dssm_backward(mn, du_n, di_n, NULL, NULL, dl, B);
    const double sl = max_abs(ln, B), sg = max_abs(dn->grads, dn->n);
    const double su = max_abs(du_n, (size_t)B * D), si = max_abs(di_n, (size_t)B * D);
    assert_true(sl > 0.0 && sg > 0.0 && su > 0.0 && si > 0.0);
    for (int b = 0; b < B; b++)
        if (!blas_close(lb[b], ln[b], sl))
            fail_msg("logit %d: blas %.8g naive %.8g", b, (double)lb[b], (double)ln[b]);
    /* the dense block as one tensor: both towers are alike in scale */
    for (size_t k = 0; k < db->n; k++)
        if (!blas_close(db->grads[k], dn->grads[k], sg))
            fail_msg("dense grad %zu: blas %.8g naive %.8g", k, (double)db->grads[k],
                     (double)dn->grads[k]);
    for (int k = 0; k < B * D; k++)
        if (!blas_close(du_b[k], du_n[k], su) || !blas_close(di_b[k], di_n[k], si))
            fail_msg("row grad %d: du %.8g/%.8g di %.8g/%.8g", k, (double)du_b[k], (double)du_n[k],
                     (double)di_b[k], (double)di_n[k]);
    free(rows), free(up), free(ip), free(lb), free(ln), free(dl);
    free(du_b), free(di_b), free(du_n), free(di_n);
    dssm_free(mb);
    dssm_free(mn);
}

static void test_dssm_naive_vs_blas(void **state)
{
    (void)state;
    dssm_config_t cfg;
    small_config(&cfg, 0);
    naive_vs_blas_case(&cfg, NB);
    /* wider, three layers, a batch that is no multiple of anything */
    cfg.dim = 16;
    cfg.tower[0] = 24, cfg.tower[1] = 12, cfg.tower[2] = 8;
    cfg.ntower = 3;
    cfg.max_batch = 37;
    naive_vs_blas_case(&cfg, 37);
}

/* ------------------------------------------------------------ the bound */

#define BOUND_B 8

static void check_bounded(dssm_t *m, const float (*u)[DIM], const float (*it)[DIM], float lo,
                          float hi)
{
    const float *up[BOUND_B], *ip[BOUND_B];
    float logits[BOUND_B];
    for (int b = 0; b < BOUND_B; b++)
        up[b] = u[b], ip[b] = it[b];
    dssm_forward(m, logits, up, ip, NULL, NULL, BOUND_B);
    for (int b = 0; b < BOUND_B; b++) {
        if (!(fabsf(logits[b]) <= GAMMA) || logits[b] < lo || logits[b] > hi)
            fail_msg("logit %d = %.9g, want within [%g, %g] and |·| ≤ %g", b, (double)logits[b],
                     (double)lo, (double)hi, (double)GAMMA);
    }
}

static void test_dssm_logit_bounded(void **state)
{
    (void)state;
    dssm_config_t cfg;
    small_config(&cfg, 0);
    dssm_t *m = make(&cfg);
    rng_t r;
    rng_seed(&r, 31);
    float u[BOUND_B][DIM], it[BOUND_B][DIM];
    /* non-zero biases: with zero ones a row whose hidden ReLUs all die gives
     * z = 0, a zero vector and a zero logit, and ±1 could not be reached */
    dense_block_t *d = dssm_dense(m);
    for (size_t k = 0; k < d->n; k++)
        if (d->params[k] == 0.0f)
            d->params[k] = uniform(&r, -0.3f, 0.3f);
    static const float scales[] = {1e-4f, 0.5f, 3.0f, 1e4f};
    for (size_t s = 0; s < sizeof(scales) / sizeof(scales[0]); s++) {
        for (int rep = 0; rep < 20; rep++) {
            for (int b = 0; b < BOUND_B; b++)
                for (int k = 0; k < DIM; k++) {
                    u[b][k] = scales[s] * rng_normal(&r);
                    it[b][k] = scales[s] * rng_normal(&r);
                }
            check_bounded(m, (const float(*)[DIM])u, (const float(*)[DIM])it, -GAMMA, GAMMA);
        }
    }

    /* tie the towers (same layout, user block first): an item row equal to
     * the user row has cosine 1 up to rounding, which must not overshoot */
    const size_t half = d->n / 2;
    memcpy(d->params + half, d->params, sizeof(float) * half);
    for (int rep = 0; rep < 20; rep++) {
        for (int b = 0; b < BOUND_B; b++)
            for (int k = 0; k < DIM; k++)
                u[b][k] = it[b][k] = (rep % 2 ? 40.0f : 0.5f) * rng_normal(&r);
        check_bounded(m, (const float(*)[DIM])u, (const float(*)[DIM])it, GAMMA * (1 - 1e-5f),
                      GAMMA);
        /* the item's last layer negated: y_i = −y_u, cosine −1 */
        size_t last = half + (size_t)5 * DIM + 5; /* I2, ib2 after I1 (5x6), ib1 (5) */
        for (size_t k = last; k < d->n; k++)
            d->params[k] = -d->params[k];
        check_bounded(m, (const float(*)[DIM])u, (const float(*)[DIM])it, -GAMMA,
                      -GAMMA * (1 - 1e-5f));
        for (size_t k = last; k < d->n; k++)
            d->params[k] = -d->params[k];
    }
    dssm_free(m);
}

/* ------------------------------------------------------ published vectors */

static void vectors_case(const dssm_config_t *cfg)
{
    dssm_t *m = make(cfg);
    const int O = dssm_out_dim(m);
    assert_int_equal(O, OUT);
    ctx_t c;
    const int feats = cfg->ufeat > 0;
    ctx_init(&c, m, 0, feats);
    float du[NB * DIM], di[NB * DIM], dz[NB], dfu[NB * FUW], dfi[NB * FIW];
    ctx_grads(&c, du, di, dfu, dfi, dz);
    dense_block_t *d = dssm_dense(m);
    float *g = malloc(sizeof(float) * d->n);
    assert_non_null(g);
    memcpy(g, d->grads, sizeof(float) * d->n);
    float du1[NB * DIM], di1[NB * DIM];
    memcpy(du1, du, sizeof(du));
    memcpy(di1, di, sizeof(di));

    /* forward again, then the vectors of every pair, then backward: the
     * vectors must not have disturbed what backward reads */
    dense_block_zero_grad(d);
    float logits[NB];
    dssm_forward(m, logits, c.up, c.ip, feats ? c.ufp : NULL, feats ? c.ifp : NULL, NB);
    for (int b = 0; b < NB; b++) {
        float yu[OUT], yi[OUT];
        for (int k = 0; k < OUT; k++)
            yu[k] = yi[k] = NAN;
        dssm_user_vector(m, yu, c.up[b], c.ufp[b]);
        dssm_item_vector(m, yi, c.ip[b], c.ifp[b]);
        double nu = 0.0, ni = 0.0, dot = 0.0;
        for (int k = 0; k < O; k++) {
            nu += (double)yu[k] * yu[k];
            ni += (double)yi[k] * yi[k];
            dot += (double)yu[k] * yi[k];
        }
        assert_float_equal(sqrt(nu), 1.0, 1e-5);
        assert_float_equal(sqrt(ni), 1.0, 1e-5);
        assert_float_equal(dot, logits[b] / GAMMA, 1e-5);
    }
    for (int k = 0; k < NB * DIM; k++)
        du[k] = di[k] = NAN;
    dssm_backward(m, du, di, feats ? dfu : NULL, feats ? dfi : NULL, dz, NB);
    assert_memory_equal(du, du1, sizeof(du));
    assert_memory_equal(di, di1, sizeof(di));
    assert_memory_equal(d->grads, g, sizeof(float) * d->n);
    free(g);
    dssm_free(m);
}

static void test_dssm_vectors(void **state)
{
    (void)state;
    dssm_config_t cfg;
    small_config(&cfg, 0);
    vectors_case(&cfg);
    cfg.naive = 1;
    vectors_case(&cfg);
    /* one layer (no ReLU at all) and three layers, odd widths */
    small_config(&cfg, 0);
    cfg.tower[0] = OUT;
    cfg.ntower = 1;
    vectors_case(&cfg);
    cfg.tower[0] = 7, cfg.tower[1] = 3, cfg.tower[2] = OUT;
    cfg.ntower = 3;
    vectors_case(&cfg);
    /* with features: the vector is the tower of [row ; features] */
    small_config(&cfg, 0);
    cfg.ufeat = FUW, cfg.ifeat = FIW;
    vectors_case(&cfg);
}

/* ------------------------------------------------------------------ init */

static void test_dssm_init(void **state)
{
    (void)state;
    dssm_config_t cfg;
    small_config(&cfg, 0);
    dssm_t *a = make(&cfg), *b = make(&cfg);
    cfg.seed = 99;
    dssm_t *c = make(&cfg);
    dense_block_t *da = dssm_dense(a), *db = dssm_dense(b), *dc = dssm_dense(c);
    assert_memory_equal(da->params, db->params, sizeof(float) * da->n);
    assert_true(memcmp(da->params, dc->params, sizeof(float) * da->n) != 0);
    /* gradients and Adam moments start at zero */
    for (size_t k = 0; k < da->n; k++)
        assert_true(da->grads[k] == 0.0f && da->m[k] == 0.0f && da->v[k] == 0.0f);

    /* walk the layout: W (out, in) within ±sqrt(6/(in+out)) and not all
     * alike, b all zero */
    const int widths[3] = {DIM, 5, OUT};
    size_t off = 0;
    for (int t = 0; t < 2; t++) {
        for (int l = 0; l < 2; l++) {
            int in = widths[l], out = widths[l + 1];
            double a_lim = sqrt(6.0 / (in + out)), mx = 0.0;
            for (int k = 0; k < in * out; k++) {
                float w = da->params[off + k];
                assert_true(fabs(w) <= a_lim);
                mx = fmax(mx, fabs(w));
            }
            assert_true(mx > 0.5 * a_lim);
            off += (size_t)in * out;
            for (int k = 0; k < out; k++)
                assert_true(da->params[off + k] == 0.0f);
            off += out;
        }
    }
    assert_int_equal(off, da->n);
    /* the two towers are initialised independently */
    assert_true(memcmp(da->params, da->params + da->n / 2, sizeof(float) * da->n / 2) != 0);
    dssm_free(a);
    dssm_free(b);
    dssm_free(c);
}

/* --------------------------------------------------------------- config */

typedef struct {
    const char *what;
    int dim, ntower, w0, w1;
    float gamma;
    int max_batch;
    const char *needle; /* the message must mention it */
} bad_config_t;

static void test_dssm_config_errors(void **state)
{
    (void)state;
    static const bad_config_t cases[] = {
        {"dim 0", 0, 2, 5, 4, 3.0f, 8, "dim"},
        {"dim 1025", 1025, 2, 5, 4, 3.0f, 8, "dim"},
        {"no layers", 6, 0, 5, 4, 3.0f, 8, "layers"},
        {"9 layers", 6, DSSM_MAX_LAYERS + 1, 5, 4, 3.0f, 8, "layers"},
        {"width 0", 6, 2, 5, 0, 3.0f, 8, "width"},
        {"width -3", 6, 2, -3, 4, 3.0f, 8, "width"},
        {"width 4097", 6, 2, 4097, 4, 3.0f, 8, "width"},
        {"gamma 0", 6, 2, 5, 4, 0.0f, 8, "gamma"},
        {"gamma < 0", 6, 2, 5, 4, -1.0f, 8, "gamma"},
        {"gamma NaN", 6, 2, 5, 4, NAN, 8, "gamma"},
        {"gamma inf", 6, 2, 5, 4, INFINITY, 8, "gamma"},
        {"max_batch 0", 6, 2, 5, 4, 3.0f, 0, "max_batch"},
        {"max_batch < 0", 6, 2, 5, 4, 3.0f, -4, "max_batch"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const bad_config_t *bc = &cases[i];
        dssm_config_t cfg;
        small_config(&cfg, 0);
        cfg.dim = bc->dim;
        cfg.ntower = bc->ntower;
        for (int l = 0; l < DSSM_MAX_LAYERS; l++)
            cfg.tower[l] = 3;
        cfg.tower[0] = bc->w0, cfg.tower[1] = bc->w1;
        cfg.gamma = bc->gamma;
        cfg.max_batch = bc->max_batch;
        char err[160] = "";
        dssm_t *m = dssm_create(&cfg, err, sizeof(err));
        if (m || !strstr(err, bc->needle))
            fail_msg("%s: model %p, message '%s' (wanted '%s')", bc->what, (void *)m, err,
                     bc->needle);
        /* a short buffer is truncated, a NULL one ignored */
        char tiny[6];
        memset(tiny, 'x', sizeof(tiny));
        assert_null(dssm_create(&cfg, tiny, sizeof(tiny)));
        assert_true(memchr(tiny, '\0', sizeof(tiny)) != NULL);
        assert_null(dssm_create(&cfg, NULL, 0));
    }
    /* the edges of every range are accepted */
    dssm_config_t cfg;
    small_config(&cfg, 0);
    cfg.dim = 1;
    cfg.tower[0] = 1;
    cfg.ntower = 1;
    cfg.max_batch = 1;
    cfg.gamma = 1e-3f;
    dssm_t *m = make(&cfg);
    assert_int_equal(dssm_dense(m)->n, 2 * (1 + 1));
    dssm_free(m);
    small_config(&cfg, 0);
    cfg.dim = 1024;
    cfg.ntower = DSSM_MAX_LAYERS;
    for (int l = 0; l < DSSM_MAX_LAYERS; l++)
        cfg.tower[l] = 2;
    cfg.max_batch = 1;
    m = make(&cfg);
    dssm_free(m);
    /* the defaults make a model */
    dssm_config_default(&cfg);
    assert_int_equal(cfg.dim, 64);
    assert_int_equal(cfg.ntower, 2);
    assert_int_equal(cfg.tower[0], 128);
    assert_int_equal(cfg.tower[1], 64);
    assert_float_equal(cfg.gamma, 10.0, 0.0);
    assert_true(cfg.max_batch >= 1);
    m = make(&cfg);
    assert_int_equal(dssm_row_width(m), 64);
    assert_int_equal(dssm_out_dim(m), 64);
    dssm_free(m);
    dssm_free(NULL);
}

/* --------------------------------------------------------------- layout */

/* Σ of the sizes in "name:AxB,name:A,..." */
static size_t layout_total(const char *s)
{
    size_t total = 0;
    while (*s) {
        const char *colon = strchr(s, ':');
        assert_non_null(colon);
        char *end;
        long a = strtol(colon + 1, &end, 10);
        assert_true(a >= 1);
        if (*end == 'x') {
            long b = strtol(end + 1, &end, 10);
            assert_true(b >= 1);
            a *= b;
        }
        total += (size_t)a;
        assert_true(*end == ',' || *end == '\0');
        s = *end ? end + 1 : end;
    }
    return total;
}

static void test_dssm_layout(void **state)
{
    (void)state;
    dssm_config_t cfg;
    small_config(&cfg, 0);
    dssm_t *m = make(&cfg);
    char buf[1024];
    assert_int_equal(dssm_dense_layout(m, buf, sizeof(buf)), 0);
    const char *want = "U1:5x6,ub1:5,U2:4x5,ub2:4,I1:5x6,ib1:5,I2:4x5,ib2:4";
    assert_string_equal(buf, want);
    assert_int_equal(layout_total(buf), dssm_dense(m)->n);
    assert_int_equal(dssm_row_width(m), DIM);
    assert_int_equal(dssm_out_dim(m), OUT);
    /* every buffer too short by at least the terminator is refused */
    for (size_t len = 0; len <= strlen(want); len++)
        assert_int_equal(dssm_dense_layout(m, buf, len), -1);
    assert_int_equal(dssm_dense_layout(m, buf, strlen(want) + 1), 0);
    assert_string_equal(buf, want);
    dssm_free(m);

    static const char *shapes[] = {"3", "128,64", "9,1,17", "8,7,6,5,4,3,2,1"};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        small_config(&cfg, 0);
        cfg.dim = 11;
        char err[160];
        assert_int_equal(
            widths_parse(shapes[s], 1, DSSM_MAX_LAYERS, cfg.tower, &cfg.ntower, err, sizeof(err)),
            0);
        m = make(&cfg);
        assert_int_equal(dssm_dense_layout(m, buf, sizeof(buf)), 0);
        assert_int_equal(layout_total(buf), dssm_dense(m)->n);
        assert_int_equal(dssm_out_dim(m), cfg.tower[cfg.ntower - 1]);
        assert_int_equal(dssm_row_width(m), 11);
        dssm_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dssm_fd_linear),     cmocka_unit_test(test_dssm_fd_softmax),
        cmocka_unit_test(test_dssm_fd_features),   cmocka_unit_test(test_dssm_fd_softmax_features),
        cmocka_unit_test(test_dssm_naive_vs_blas), cmocka_unit_test(test_dssm_logit_bounded),
        cmocka_unit_test(test_dssm_vectors),       cmocka_unit_test(test_dssm_init),
        cmocka_unit_test(test_dssm_config_errors), cmocka_unit_test(test_dssm_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
