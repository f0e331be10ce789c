/* test_ctrlayers.c — the click-through building blocks, checked numerically:
 * the cross layer's backward (alone, with x0 and xl the same buffer, adding
 * into pre-filled gradients, and as a two-layer DCN stack) against central
 * finite differences; the Welford normaliser against a two-pass reference;
 * exact AUC against hand-computed cases and a brute-force pair count; the
 * progressive-validation window and logloss. Not for: whole models (ctr.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ctrlayers.h"
#include "gradcheck.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Central differences in double over the float forward (gradcheck.h).
 * Σ out ⊙ R is linear in each x0, xl, w and b element and, with x0 and xl one buffer, quadratic:
 * the central difference has no truncation error at any step, only the float
 * rounding of the outputs divided by the step. The two-layer stack is cubic in
 * x0, with truncation error eps²·f'''/6 < 1e-5 here. A 1e-3 step left the
 * rounding (~1e-4 on gradients near 4e-3) at 0.8 of the tolerance's floor; a
 * 1e-2 step leaves the worst case at ~0.2 of the tolerance, while a sign
 * error, a factor of two or a missing term still fails by far. */
#define FD_EPS 1e-2

static float *xmalloc_floats(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

static void fill_uniform(rng_t *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)rng_double(r);
}

static int fd_check(const char *what, gradcheck_fn f, void *ctx, float *x, const float *grad, int n)
{
    return gradcheck(what, f, ctx, x, grad, n, FD_EPS, NULL);
}

/* ---------------------------------------------------------------- cross */

typedef struct {
    int B, D;
} shape_t;

static const shape_t cross_shapes[] = {{1, 1}, {3, 5}, {8, 17}};
#define N_CROSS_SHAPES (int)(sizeof(cross_shapes) / sizeof(cross_shapes[0]))

/* One cross layer and loss = Σ out ⊙ R. xl may equal x0 (one buffer). */
typedef struct {
    int B, D;
    float *x0, *xl, *w, *b, *R; /* x0, xl, R (B, D); w, b (D) */
    float *out, *s;             /* (B, D), (B) */
} cross_ctx_t;

static double cross_objective(void *p)
{
    cross_ctx_t *c = p;
    cross_forward(c->out, c->s, c->x0, c->xl, c->w, c->b, c->B, c->D);
    double sum = 0.0;
    for (int i = 0; i < c->B * c->D; i++)
        sum += (double)c->out[i] * c->R[i];
    return sum;
}

static void cross_ctx_alloc(cross_ctx_t *c, rng_t *r, int B, int D, int shared)
{
    size_t BD = (size_t)B * D;
    c->B = B;
    c->D = D;
    c->x0 = xmalloc_floats(BD);
    c->xl = shared ? c->x0 : xmalloc_floats(BD);
    c->w = xmalloc_floats(D);
    c->b = xmalloc_floats(D);
    c->R = xmalloc_floats(BD);
    c->out = xmalloc_floats(BD);
    c->s = xmalloc_floats(B);
    fill_uniform(r, c->x0, BD, -1, 1);
    if (!shared)
        fill_uniform(r, c->xl, BD, -1, 1);
    fill_uniform(r, c->w, D, -0.5f, 0.5f);
    fill_uniform(r, c->b, D, -0.5f, 0.5f);
    fill_uniform(r, c->R, BD, -1, 1);
}

static void cross_ctx_free(cross_ctx_t *c)
{
    if (c->xl != c->x0)
        free(c->xl);
    free(c->x0);
    free(c->w);
    free(c->b);
    free(c->R);
    free(c->out);
    free(c->s);
}

/* x0 and xl separate buffers; same_contents copies x0 into xl (the first
 * layer's values, each input still perturbed on its own). */
static void cross_fd_separate(int same_contents)
{
    rng_t r;
    rng_seed(&r, 11 + same_contents);
    for (int sh = 0; sh < N_CROSS_SHAPES; sh++) {
        const int B = cross_shapes[sh].B, D = cross_shapes[sh].D;
        const size_t BD = (size_t)B * D;
        cross_ctx_t c;
        cross_ctx_alloc(&c, &r, B, D, 0);
        if (same_contents)
            memcpy(c.xl, c.x0, BD * sizeof(float));
        float *dx0 = xmalloc_floats(BD), *dxl = xmalloc_floats(BD);
        float *dw = xmalloc_floats(D), *db = xmalloc_floats(D);

        cross_forward(c.out, c.s, c.x0, c.xl, c.w, c.b, B, D);
        cross_backward(dx0, dxl, dw, db, c.R, c.x0, c.xl, c.s, c.w, B, D);

        int bad = 0;
        bad += fd_check("dx0", cross_objective, &c, c.x0, dx0, (int)BD);
        bad += fd_check("dxl", cross_objective, &c, c.xl, dxl, (int)BD);
        bad += fd_check("dw", cross_objective, &c, c.w, dw, D);
        bad += fd_check("db", cross_objective, &c, c.b, db, D);
        if (bad)
            print_error("cross %dx%d same_contents=%d: %d mismatches\n", B, D, same_contents, bad);
        assert_int_equal(bad, 0);

        free(dx0);
        free(dxl);
        free(dw);
        free(db);
        cross_ctx_free(&c);
    }
}

static void test_cross_fd(void **state)
{
    (void)state;
    cross_fd_separate(0);
}

static void test_cross_fd_same_contents(void **state)
{
    (void)state;
    cross_fd_separate(1);
}

/* The first DCN layer: x0 and xl one buffer, dx0 and dxl one buffer. The
 * gradient w.r.t. the shared input is the sum of both terms, and it must equal
 * dx0 + dxl computed into separate buffers. */
static void test_cross_fd_aliased(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 13);
    for (int sh = 0; sh < N_CROSS_SHAPES; sh++) {
        const int B = cross_shapes[sh].B, D = cross_shapes[sh].D;
        const size_t BD = (size_t)B * D;
        cross_ctx_t c;
        cross_ctx_alloc(&c, &r, B, D, 1);
        float *dx = xmalloc_floats(BD), *dx0 = xmalloc_floats(BD), *dxl = xmalloc_floats(BD);
        float *dw = xmalloc_floats(D), *db = xmalloc_floats(D);
        float *dw2 = xmalloc_floats(D), *db2 = xmalloc_floats(D);

        cross_forward(c.out, c.s, c.x0, c.x0, c.w, c.b, B, D);
        cross_backward(dx, dx, dw, db, c.R, c.x0, c.x0, c.s, c.w, B, D);
        cross_backward(dx0, dxl, dw2, db2, c.R, c.x0, c.x0, c.s, c.w, B, D);

        for (size_t i = 0; i < BD; i++)
            assert_float_equal(dx[i], dx0[i] + dxl[i], 1e-6 * (1 + fabs(dx[i])));
        for (int d = 0; d < D; d++) {
            assert_float_equal(dw[d], dw2[d], 0);
            assert_float_equal(db[d], db2[d], 0);
        }

        int bad = 0;
        bad += fd_check("dx(shared)", cross_objective, &c, c.x0, dx, (int)BD);
        bad += fd_check("dw", cross_objective, &c, c.w, dw, D);
        bad += fd_check("db", cross_objective, &c, c.b, db, D);
        if (bad)
            print_error("cross aliased %dx%d: %d mismatches\n", B, D, bad);
        assert_int_equal(bad, 0);

        free(dx);
        free(dx0);
        free(dxl);
        free(dw);
        free(db);
        free(dw2);
        free(db2);
        cross_ctx_free(&c);
    }
}

/* Backward adds: pre-filled gradients end as prefill + fresh gradient. */
static void test_cross_adds_into(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 17);
    const int B = 3, D = 5;
    const size_t BD = (size_t)B * D;
    cross_ctx_t c;
    cross_ctx_alloc(&c, &r, B, D, 0);
    float *g[4], *g0[4], *fresh[4];
    const size_t len[4] = {BD, BD, (size_t)D, (size_t)D};
    for (int k = 0; k < 4; k++) {
        g[k] = xmalloc_floats(len[k]);
        g0[k] = xmalloc_floats(len[k]);
        fresh[k] = xmalloc_floats(len[k]); /* zeroed */
        fill_uniform(&r, g0[k], len[k], -2, 2);
        memcpy(g[k], g0[k], len[k] * sizeof(float));
    }
    cross_forward(c.out, c.s, c.x0, c.xl, c.w, c.b, B, D);
    cross_backward(g[0], g[1], g[2], g[3], c.R, c.x0, c.xl, c.s, c.w, B, D);
    cross_backward(fresh[0], fresh[1], fresh[2], fresh[3], c.R, c.x0, c.xl, c.s, c.w, B, D);
    for (int k = 0; k < 4; k++) {
        for (size_t i = 0; i < len[k]; i++) {
            assert_true(fabsf(fresh[k][i]) > 0); /* the check below means something */
            assert_float_equal(g[k][i], g0[k][i] + fresh[k][i], 1e-5);
        }
        free(g[k]);
        free(g0[k]);
        free(fresh[k]);
    }
    cross_ctx_free(&c);
}

/* Forward against the formula, in double. */
static void test_cross_forward_values(void **state)
{
    (void)state;
    const float x0[] = {1, 2, 3, -1, 0, 2}, xl[] = {0.5f, -1, 2, 1, 1, 1};
    const float w[] = {1, 2, -1}, b[] = {0.1f, 0.2f, 0.3f};
    float out[6], s[2];
    cross_forward(out, s, x0, xl, w, b, 2, 3);
    /* row 0: s = 0.5 − 2 − 2 = −3.5; row 1: s = 1 + 2 − 1 = 2 */
    assert_float_equal(s[0], -3.5f, 1e-6);
    assert_float_equal(s[1], 2.0f, 1e-6);
    const float want[] = {1 * -3.5f + 0.1f + 0.5f, 2 * -3.5f + 0.2f - 1, 3 * -3.5f + 0.3f + 2,
                          -1 * 2 + 0.1f + 1,       0 * 2 + 0.2f + 1,     2 * 2 + 0.3f + 1};
    for (int i = 0; i < 6; i++)
        assert_float_equal(out[i], want[i], 1e-5);
}

/* Two layers as in DCN: x1 = cross(x0, x0; w1, b1), x2 = cross(x0, x1; w2, b2),
 * loss = Σ x2 ⊙ R. */
typedef struct {
    int B, D;
    float *x0, *w1, *b1, *w2, *b2, *R; /* x0, R (B, D); w, b (D) */
    float *x1, *x2, *s1, *s2;          /* (B, D), (B, D), (B), (B) */
} stack_ctx_t;

static double stack_objective(void *p)
{
    stack_ctx_t *c = p;
    cross_forward(c->x1, c->s1, c->x0, c->x0, c->w1, c->b1, c->B, c->D);
    cross_forward(c->x2, c->s2, c->x0, c->x1, c->w2, c->b2, c->B, c->D);
    double sum = 0.0;
    for (int i = 0; i < c->B * c->D; i++)
        sum += (double)c->x2[i] * c->R[i];
    return sum;
}

static void test_cross_stack_fd(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 19);
    for (int sh = 0; sh < N_CROSS_SHAPES; sh++) {
        const int B = cross_shapes[sh].B, D = cross_shapes[sh].D;
        const size_t BD = (size_t)B * D;
        stack_ctx_t c = {.B = B, .D = D};
        c.x0 = xmalloc_floats(BD);
        c.R = xmalloc_floats(BD);
        c.x1 = xmalloc_floats(BD);
        c.x2 = xmalloc_floats(BD);
        c.s1 = xmalloc_floats(B);
        c.s2 = xmalloc_floats(B);
        c.w1 = xmalloc_floats(D);
        c.b1 = xmalloc_floats(D);
        c.w2 = xmalloc_floats(D);
        c.b2 = xmalloc_floats(D);
        fill_uniform(&r, c.x0, BD, -1, 1);
        fill_uniform(&r, c.R, BD, -1, 1);
        fill_uniform(&r, c.w1, D, -0.5f, 0.5f);
        fill_uniform(&r, c.b1, D, -0.5f, 0.5f);
        fill_uniform(&r, c.w2, D, -0.5f, 0.5f);
        fill_uniform(&r, c.b2, D, -0.5f, 0.5f);

        float *dx0 = xmalloc_floats(BD), *dx1 = xmalloc_floats(BD);
        float *dw1 = xmalloc_floats(D), *db1 = xmalloc_floats(D);
        float *dw2 = xmalloc_floats(D), *db2 = xmalloc_floats(D);

        stack_objective(&c);
        /* Backward in reverse; x0 collects from both layers and both roles. */
        cross_backward(dx0, dx1, dw2, db2, c.R, c.x0, c.x1, c.s2, c.w2, B, D);
        cross_backward(dx0, dx0, dw1, db1, dx1, c.x0, c.x0, c.s1, c.w1, B, D);

        int bad = 0;
        bad += fd_check("stack dx0", stack_objective, &c, c.x0, dx0, (int)BD);
        bad += fd_check("stack dw1", stack_objective, &c, c.w1, dw1, D);
        bad += fd_check("stack db1", stack_objective, &c, c.b1, db1, D);
        bad += fd_check("stack dw2", stack_objective, &c, c.w2, dw2, D);
        bad += fd_check("stack db2", stack_objective, &c, c.b2, db2, D);
        if (bad)
            print_error("cross stack %dx%d: %d mismatches\n", B, D, bad);
        assert_int_equal(bad, 0);

        float *bufs[] = {c.x0, c.R,  c.x1, c.x2, c.s1, c.s2, c.w1, c.b1,
                         c.w2, c.b2, dx0,  dx1,  dw1,  db1,  dw2,  db2};
        for (size_t k = 0; k < sizeof(bufs) / sizeof(bufs[0]); k++)
            free(bufs[k]);
    }
}

/* ----------------------------------------------------------- normaliser */

static void test_norm_init_args(void **state)
{
    (void)state;
    norm_t nm;
    assert_int_equal(norm_init(&nm, 0, 3.0f), -1);
    norm_free(&nm); /* zeroed by the failed init */
    assert_int_equal(norm_init(&nm, 4, 0.0f), -1);
    assert_int_equal(norm_init(&nm, 4, -1.0f), -1);
    assert_int_equal(norm_init(&nm, 4, NAN), -1);
    assert_int_equal(norm_init(NULL, 4, 3.0f), -1);
    norm_t zero = {0};
    norm_free(&zero);
    norm_free(NULL);
    assert_int_equal(norm_init(&nm, 4, 3.0f), 0);
    norm_free(&nm);
    norm_free(&nm); /* twice is harmless */
}

/* Welford against a two-pass mean and sample variance over the present
 * values, on features of very different offsets and scales (where the naive
 * Σx² − (Σx)²/n loses digits). */
static void test_norm_matches_two_pass(void **state)
{
    (void)state;
    enum { D = 4, N = 2000 };
    const double offset[D] = {0, 1e4, -3, 0.5}, scale[D] = {1, 10, 1e-3, 100};
    rng_t r;
    rng_seed(&r, 23);
    norm_t nm;
    assert_int_equal(norm_init(&nm, D, 1e30f), 0);
    static float xs[N][D];
    static unsigned char pres[N][D];
    for (int i = 0; i < N; i++) {
        for (int d = 0; d < D; d++) {
            xs[i][d] = (float)(offset[d] + scale[d] * (2 * rng_double(&r) - 1));
            pres[i][d] = rng_double(&r) < 0.8; /* ~20% missing */
        }
        norm_update(&nm, xs[i], pres[i]);
    }
    for (int d = 0; d < D; d++) {
        double sum = 0, ss = 0;
        uint64_t n = 0;
        for (int i = 0; i < N; i++)
            if (pres[i][d]) {
                sum += xs[i][d];
                n++;
            }
        double mean = sum / (double)n;
        for (int i = 0; i < N; i++)
            if (pres[i][d])
                ss += ((double)xs[i][d] - mean) * ((double)xs[i][d] - mean);
        double var = ss / (double)(n - 1);
        assert_int_equal(nm.n[d], n);
        assert_true(fabs(nm.mean[d] - mean) <= 1e-10 * (fabs(mean) + scale[d]));
        assert_true(fabs(nm.m2[d] / (double)(n - 1) - var) <= 1e-9 * var);

        /* and the output is (x − mean) / sqrt(var + 1e-6) */
        float x[D] = {0}, out[D];
        x[d] = (float)(offset[d] + 0.3 * scale[d]);
        norm_apply(&nm, out, x, NULL);
        double want = ((double)x[d] - mean) / sqrt(var + 1e-6);
        assert_true(fabs(out[d] - want) <= 1e-5 * (1 + fabs(want)));
    }
    norm_free(&nm);
}

static void test_norm_clip(void **state)
{
    (void)state;
    norm_t nm;
    assert_int_equal(norm_init(&nm, 1, 3.0f), 0);
    /* mean 0, sample variance 1: ±1 alternating, sample var = n / (n − 1) ≈ 1 */
    const float vals[] = {-1, 1, -1, 1, -1, 1, -1, 1, -1, 1};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        norm_update(&nm, &vals[i], NULL);
    const struct {
        float x, want;
    } cases[] = {{100, 3}, {-100, -3}, {3.5f, 3}, {-1e30f, -3}, {0, 0}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        float out;
        norm_apply(&nm, &out, &cases[k].x, NULL);
        assert_float_equal(out, cases[k].want, 1e-6);
    }
    /* inside the clip: (x − 0) / sqrt(10/9 + 1e-6) */
    float x = 2, out;
    norm_apply(&nm, &out, &x, NULL);
    assert_float_equal(out, 2 / sqrt(10.0 / 9 + 1e-6), 1e-6);
    norm_free(&nm);
}

static void test_norm_missing(void **state)
{
    (void)state;
    norm_t nm;
    assert_int_equal(norm_init(&nm, 3, 5.0f), 0);
    const float a[3] = {1, 10, 100}, b[3] = {3, 20, 200};
    const unsigned char all[3] = {1, 1, 1}, mid_missing[3] = {1, 0, 1};
    norm_update(&nm, a, all);
    norm_update(&nm, b, NULL); /* NULL: all present */
    assert_int_equal(nm.n[1], 2);
    /* a missing feature does not move the statistics... */
    const float c[3] = {5, 1e6f, 300};
    norm_update(&nm, c, mid_missing);
    assert_int_equal(nm.n[0], 3);
    assert_int_equal(nm.n[1], 2);
    assert_true(nm.mean[1] == 15.0);
    /* ...nor does a NaN or an infinity */
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    norm_update(&nm, bad, NULL);
    assert_int_equal(nm.n[0], 3);
    assert_int_equal(nm.n[1], 2);
    assert_int_equal(nm.n[2], 3);
    /* and a missing or non-finite feature normalises to 0 */
    float out[3];
    const float q[3] = {7, 1e6f, NAN};
    norm_apply(&nm, out, q, mid_missing);
    assert_float_equal(out[1], 0, 0);
    assert_float_equal(out[2], 0, 0);
    assert_true(out[0] > 0);
    norm_free(&nm);
}

/* Below two values there is no variance: 1 is used, so an unseen feature
 * (mean 0) passes through (clipped) and a once-seen one is x − that value. */
static void test_norm_few_values(void **state)
{
    (void)state;
    norm_t nm;
    assert_int_equal(norm_init(&nm, 2, 4.0f), 0);
    const double unit = 1 / sqrt(1 + 1e-6);
    float out[2];
    const float x[2] = {0.5f, -9};
    norm_apply(&nm, out, x, NULL);
    assert_float_equal(out[0], 0.5 * unit, 1e-7);
    assert_float_equal(out[1], -4, 0); /* clipped */

    const float first[2] = {2, 0};
    const unsigned char only0[2] = {1, 0};
    norm_update(&nm, first, only0);
    assert_int_equal(nm.n[0], 1);
    const float y[2] = {3, 2};
    norm_apply(&nm, out, y, NULL);
    assert_float_equal(out[0], 1 * unit, 1e-7);
    assert_float_equal(out[1], 2 * unit, 1e-7);
    const float same[2] = {2, 0};
    norm_apply(&nm, out, same, NULL);
    assert_float_equal(out[0], 0, 0);

    /* a constant feature (variance 0): its value gives 0, others clip */
    for (int i = 0; i < 5; i++)
        norm_update(&nm, first, only0);
    norm_apply(&nm, out, same, NULL);
    assert_float_equal(out[0], 0, 0);
    const float off[2] = {2.1f, 0};
    norm_apply(&nm, out, off, NULL);
    assert_float_equal(out[0], 4, 0);
    norm_free(&nm);
}

/* ------------------------------------------------------------------ AUC */

typedef struct {
    const char *name;
    float p[8];
    unsigned char y[8];
    size_t n;
    double want;
} auc_case_t;

static void test_auc_cases(void **state)
{
    (void)state;
    const auc_case_t cases[] = {
        {"perfect", {0.1f, 0.2f, 0.7f, 0.9f}, {0, 0, 1, 1}, 4, 1.0},
        {"reversed", {0.9f, 0.8f, 0.3f, 0.1f}, {0, 0, 1, 1}, 4, 0.0},
        {"all ties", {0.5f, 0.5f, 0.5f, 0.5f, 0.5f}, {1, 0, 1, 0, 0}, 5, 0.5},
        /* positives 0.4 (beats 0.1, ties two 0.4s: 2) and 0.8 (beats all: 3): 5/6 */
        {"ties", {0.1f, 0.4f, 0.4f, 0.8f, 0.4f}, {0, 1, 0, 1, 0}, 5, 5.0 / 6},
        /* pos {3, 2, 2}, neg {2, 1}: 3→2, 2→1.5, 2→1.5 = 5 of 6 */
        {"ties 2", {3, 2, 2, 2, 1}, {1, 1, 1, 0, 0}, 5, 5.0 / 6},
        {"one class", {0.1f, 0.9f, 0.3f}, {1, 1, 1}, 3, 0.5},
        {"negatives only", {0.1f, 0.9f}, {0, 0}, 2, 0.5},
        {"empty", {0}, {0}, 0, 0.5},
        {"labels not 0/1", {0.2f, 0.8f}, {0, 7}, 2, 1.0},
        {"NaN lowest", {NAN, 0.5f}, {1, 0}, 2, 0.0},
        {"NaN ties NaN", {NAN, NAN, 0.1f}, {1, 0, 0}, 3, 0.25},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        double got = auc_exact(cases[k].p, cases[k].y, cases[k].n);
        if (fabs(got - cases[k].want) > 1e-12)
            print_error("auc %s: got %.12g, want %.12g\n", cases[k].name, got, cases[k].want);
        assert_true(fabs(got - cases[k].want) <= 1e-12);
    }
}

static double auc_bruteforce(const float *p, const unsigned char *y, size_t n)
{
    double num = 0, pairs = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (y[i] && !y[j]) {
                pairs++;
                num += p[i] > p[j] ? 1 : p[i] == p[j] ? 0.5 : 0;
            }
    return pairs ? num / pairs : 0.5;
}

/* Random scores on a few levels (many ties) and on a continuum. */
static void test_auc_vs_bruteforce(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 29);
    const size_t sizes[] = {2, 3, 10, 57, 400};
    const int levels[] = {2, 5, 0}; /* 0: continuous */
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++)
        for (size_t li = 0; li < sizeof(levels) / sizeof(levels[0]); li++) {
            size_t n = sizes[si];
            float *p = xmalloc_floats(n);
            unsigned char *y = malloc(n);
            assert_non_null(y);
            for (size_t i = 0; i < n; i++) {
                y[i] = rng_double(&r) < 0.3;
                double u = rng_double(&r) + 0.4 * y[i]; /* some signal */
                p[i] = levels[li] ? (float)floor(u * levels[li]) / levels[li] : (float)u;
            }
            double got = auc_exact(p, y, n), want = auc_bruteforce(p, y, n);
            assert_true(fabs(got - want) <= 1e-12);
            free(p);
            free(y);
        }
}

/* ------------------------------------------------- progressive validation */

static void test_pv_init_args(void **state)
{
    (void)state;
    pv_t v;
    assert_int_equal(pv_init(&v, 0), -1);
    pv_free(&v);
    assert_int_equal(pv_init(NULL, 4), -1);
    pv_t zero = {0};
    pv_free(&zero);
    pv_free(NULL);
    assert_int_equal(pv_init(&v, 4), 0);
    /* empty: AUC 0.5, loglosses 0 */
    assert_float_equal(pv_auc(&v), 0.5, 0);
    assert_float_equal(pv_logloss(&v), 0, 0);
    assert_float_equal(pv_window_logloss(&v), 0, 0);
    pv_free(&v);
    pv_free(&v);
}

/* A bad block (reversed) then a good block of exactly the window: the AUC is
 * the good block's, the bad one forgotten; the overall logloss still counts
 * both. */
static void test_pv_window_forgets(void **state)
{
    (void)state;
    enum { W = 50 };
    pv_t v;
    assert_int_equal(pv_init(&v, W), 0);
    for (int i = 0; i < W; i++) /* positives low, negatives high */
        pv_add(&v, (i % 2) ? 0.1f + 0.001f * i : 0.9f - 0.001f * i, i % 2);
    assert_float_equal(pv_auc(&v), 0.0, 1e-12);
    for (int i = 0; i < W - 1; i++) /* one bad pair is still in the window */
        pv_add(&v, (i % 2) ? 0.8f : 0.2f, i % 2);
    assert_true(pv_auc(&v) < 1.0);
    pv_add(&v, 0.2f, 0);
    assert_float_equal(pv_auc(&v), 1.0, 1e-12);
    assert_int_equal(v.n, W);
    assert_int_equal(v.total, 2 * W);
    assert_true(pv_logloss(&v) > pv_window_logloss(&v));
    assert_float_equal(pv_window_logloss(&v), -log(0.8), 1e-6);
    pv_free(&v);
}

/* A random stream against a plain array of the last w pairs. */
static void test_pv_window_vs_reference(void **state)
{
    (void)state;
    enum { W = 37, N = 300 };
    rng_t r;
    rng_seed(&r, 31);
    pv_t v;
    assert_int_equal(pv_init(&v, W), 0);
    static float ps[N];
    static unsigned char ys[N];
    double all = 0;
    for (int i = 0; i < N; i++) {
        ys[i] = rng_double(&r) < 0.4;
        ps[i] = (float)floor((rng_double(&r) * 0.7 + 0.3 * ys[i]) * 20) / 20;
        pv_add(&v, ps[i], ys[i]);
        double q = fmin(fmax(ps[i], 1e-7), 1 - 1e-7);
        all += ys[i] ? -log(q) : -log(1 - q);
        if (i % 7 == 0 || i == N - 1) {
            int lo = i + 1 > W ? i + 1 - W : 0;
            double win = 0;
            for (int j = lo; j <= i; j++) {
                double qj = fmin(fmax(ps[j], 1e-7), 1 - 1e-7);
                win += ys[j] ? -log(qj) : -log(1 - qj);
            }
            assert_true(fabs(pv_auc(&v) - auc_bruteforce(ps + lo, ys + lo, i + 1 - lo)) <= 1e-12);
            assert_true(fabs(pv_window_logloss(&v) - win / (i + 1 - lo)) <= 1e-9);
            assert_true(fabs(pv_logloss(&v) - all / (i + 1)) <= 1e-9);
        }
    }
    pv_free(&v);
}

static void test_pv_logloss_values(void **state)
{
    (void)state;
    pv_t v;
    assert_int_equal(pv_init(&v, 2), 0);
    pv_add(&v, 0.9f, 1);
    pv_add(&v, 0.2f, 0);
    pv_add(&v, 0.6f, 0);
    /* all: −(ln 0.9 + ln 0.8 + ln 0.4) / 3; window (last two): −(ln 0.8 + ln 0.4) / 2 */
    assert_float_equal(pv_logloss(&v), -(log(0.9) + log(0.8) + log(0.4)) / 3, 1e-6);
    assert_float_equal(pv_window_logloss(&v), -(log(0.8) + log(0.4)) / 2, 1e-6);
    pv_free(&v);

    /* clamping: p = 0 with a click costs −ln 1e-7, p = 1 without one −ln 1e-7,
     * p = 0 without a click ~1e-7; a NaN prediction counts as 0.5 */
    const struct {
        float p;
        int y;
        double want;
    } cases[] = {
        {0.0f, 1, -log(1e-7)}, {1.0f, 0, -log(1e-7)}, {0.0f, 0, 1e-7},     {-3.0f, 0, 1e-7},
        {NAN, 1, -log(0.5)},   {NAN, 0, -log(0.5)},   {0.5f, 1, log(2.0)}, {0.25f, 0, -log(0.75)},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        assert_int_equal(pv_init(&v, 3), 0);
        pv_add(&v, cases[k].p, cases[k].y);
        assert_true(fabs(pv_logloss(&v) - cases[k].want) <= 1e-6 * (1 + cases[k].want));
        assert_true(fabs(pv_window_logloss(&v) - cases[k].want) <= 1e-6 * (1 + cases[k].want));
        assert_true(isfinite(pv_auc(&v)));
        pv_free(&v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cross_forward_values),
        cmocka_unit_test(test_cross_fd),
        cmocka_unit_test(test_cross_fd_same_contents),
        cmocka_unit_test(test_cross_fd_aliased),
        cmocka_unit_test(test_cross_adds_into),
        cmocka_unit_test(test_cross_stack_fd),
        cmocka_unit_test(test_norm_init_args),
        cmocka_unit_test(test_norm_matches_two_pass),
        cmocka_unit_test(test_norm_clip),
        cmocka_unit_test(test_norm_missing),
        cmocka_unit_test(test_norm_few_values),
        cmocka_unit_test(test_auc_cases),
        cmocka_unit_test(test_auc_vs_bruteforce),
        cmocka_unit_test(test_pv_init_args),
        cmocka_unit_test(test_pv_window_forgets),
        cmocka_unit_test(test_pv_window_vs_reference),
        cmocka_unit_test(test_pv_logloss_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
