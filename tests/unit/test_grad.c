/* test_grad.c — the learner's math, checked numerically: every BLAS-backed
 * kernel against its plain-loop `_naive` twin (and a double-precision sum),
 * every backward (linear, ReLU, Hadamard, the three losses, NeuMF end to end)
 * against central finite differences, and the optimizers against hand-computed
 * updates. Not for: training quality, sampling or the daemon (other tests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gradcheck.h"
#include "kern.h"
#include "layers.h"
#include "loss.h"
#include "neumf.h"
#include "optim.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Central differences (gradcheck.h: 1% with a 1e-2 floor; the float32
 * rounding of the objective is ~1e-4 absolute on the gradients here). The
 * losses return their mean as a float: half an ulp of a loss near 5 over a
 * 2e-3 step is ~2e-4, as large as the tolerance's floor, so they take a 1e-2
 * step; they are smooth, and its truncation error stays below 1e-5. */
#define FD_EPS 1e-3
#define FD_EPS_LOSS 1e-2
/* Σ out ⊙ R is exactly linear in each input, weight and bias of a linear layer
 * and in each factor of a Hadamard product: no truncation error at any step,
 * so a long one keeps the rounding of the outputs out of the difference. */
#define FD_EPS_LINEAR 1e-1

/* BLAS and naive kernels sum in different orders: allow 1e-5 of Σ|terms|. */
#define SUM_REL 1e-5

static float uniform(rng_t *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)rng_double(r);
}

static void fill_uniform(rng_t *r, float *x, int n, float lo, float hi)
{
    for (int i = 0; i < n; i++)
        x[i] = uniform(r, lo, hi);
}

static float *xmalloc_floats(size_t n)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    assert_non_null(p);
    return p;
}

static int fd_check(const char *what, gradcheck_fn f, void *ctx, float *x, const float *grad, int n)
{
    return gradcheck(what, f, ctx, x, grad, n, FD_EPS, NULL);
}

/* |got - ref| within SUM_REL of the sum of absolute terms that made ref. */
static int sum_close(double got, double ref, double scale)
{
    return fabs(got - ref) <= SUM_REL * scale + 1e-30;
}

/* ---------------------------------------------------------------- kernels */

typedef struct {
    int B, IN, OUT;
} shape_t;

/* 2500 rows: the bias gradient is summed 1024 rows at a time (kern.c) */
static const shape_t linear_shapes[] = {
    {1, 1, 1}, {3, 5, 7}, {64, 64, 32}, {17, 33, 1}, {2, 1, 9}, {5, 16, 16}, {2500, 3, 5},
};
#define N_LINEAR_SHAPES (int)(sizeof(linear_shapes) / sizeof(linear_shapes[0]))

static void test_linear_forward_blas_vs_naive(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 1);
    for (int s = 0; s < N_LINEAR_SHAPES; s++) {
        const int B = linear_shapes[s].B, IN = linear_shapes[s].IN, OUT = linear_shapes[s].OUT;
        float *in = xmalloc_floats((size_t)B * IN), *w = xmalloc_floats((size_t)OUT * IN);
        float *b = xmalloc_floats(OUT);
        float *out = xmalloc_floats((size_t)B * OUT), *out_n = xmalloc_floats((size_t)B * OUT);
        fill_uniform(&r, in, B * IN, -1, 1);
        fill_uniform(&r, w, OUT * IN, -1, 1);
        fill_uniform(&r, b, OUT, -1, 1);
        for (int with_bias = 0; with_bias <= 1; with_bias++) {
            const float *bias = with_bias ? b : NULL;
            /* garbage in the outputs: forward writes, it does not add */
            for (int k = 0; k < B * OUT; k++)
                out[k] = out_n[k] = NAN;
            kern_linear_forward(out, in, w, bias, B, IN, OUT);
            kern_linear_forward_naive(out_n, in, w, bias, B, IN, OUT);
            int bad = 0;
            for (int row = 0; row < B; row++) {
                for (int o = 0; o < OUT; o++) {
                    double ref = bias ? bias[o] : 0.0, scale = bias ? fabs(bias[o]) : 0.0;
                    for (int i = 0; i < IN; i++) {
                        double t = (double)w[o * IN + i] * in[row * IN + i];
                        ref += t;
                        scale += fabs(t);
                    }
                    float got = out[row * OUT + o], got_n = out_n[row * OUT + o];
                    if (!sum_close(got, ref, scale) || !sum_close(got_n, ref, scale) ||
                        !sum_close(got, got_n, scale)) {
                        if (bad < 5)
                            print_error("B=%d IN=%d OUT=%d bias=%d out[%d,%d]: blas %.8g naive "
                                        "%.8g ref %.8g\n",
                                        B, IN, OUT, with_bias, row, o, (double)got, (double)got_n,
                                        ref);
                        bad++;
                    }
                }
            }
            assert_int_equal(bad, 0);
        }
        free(in), free(w), free(b), free(out), free(out_n);
    }
}

/* din (B rows, LDD apart) holds times × want (B, IN) in its first IN
 * columns, and the gap after them still holds 7 */
static void check_din_block(const float *din, int LDD, const float *want, float times, int B,
                            int IN)
{
    for (int r = 0; r < B; r++)
        for (int c = 0; c < LDD; c++) {
            float got = din[r * LDD + c];
            if (c < IN)
                assert_float_equal(got, times * want[r * IN + c], 1e-5);
            else
                assert_true(got == 7.0f);
        }
}

/* The _ld kernels on a block of columns [C0, C0 + IN) of a wider matrix W
 * (OUT, LDW) give what the plain kernels give on a copy of that block; the
 * backward touches only the block's columns of dW and, with din_beta 0,
 * writes din without reading it. Both twins, several shapes (OUT 1 among
 * them: its own path). */
static void test_linear_ld_block(void **state)
{
    (void)state;
    static const int shapes[][4] = {/* B, IN, OUT, C0 (LDW = 2·IN) */
                                    {7, 5, 3, 5},
                                    {64, 32, 32, 0},
                                    {64, 32, 32, 32},
                                    {17, 20, 1, 20},
                                    {1, 4, 6, 2}};
    rng_t r;
    rng_seed(&r, 3);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const int B = shapes[s][0], IN = shapes[s][1], OUT = shapes[s][2], C0 = shapes[s][3];
        const int LDW = 2 * IN;
        float *W = xmalloc_floats((size_t)OUT * LDW), *w = xmalloc_floats((size_t)OUT * IN);
        float *in = xmalloc_floats((size_t)B * IN), *b = xmalloc_floats(OUT);
        float *dout = xmalloc_floats((size_t)B * OUT);
        float *out = xmalloc_floats((size_t)B * OUT), *want = xmalloc_floats((size_t)B * OUT);
        float *dW = xmalloc_floats((size_t)OUT * LDW), *dW0 = xmalloc_floats((size_t)OUT * LDW);
        float *dw = xmalloc_floats((size_t)OUT * IN);
        float *din = xmalloc_floats((size_t)B * (IN + 3)),
              *din_want = xmalloc_floats((size_t)B * IN);
        float *db = xmalloc_floats(OUT), *db_want = xmalloc_floats(OUT);
        fill_uniform(&r, W, OUT * LDW, -1, 1);
        fill_uniform(&r, in, B * IN, -1, 1);
        fill_uniform(&r, b, OUT, -1, 1);
        fill_uniform(&r, dout, B * OUT, -1, 1);
        fill_uniform(&r, dW0, OUT * LDW, -2, 2);
        for (int o = 0; o < OUT; o++)
            memcpy(w + (size_t)o * IN, W + (size_t)o * LDW + C0, sizeof(float) * IN);
        for (int naive = 0; naive <= 1; naive++) {
            /* forward */
            (naive ? kern_linear_forward_naive : kern_linear_forward)(want, in, w, b, B, IN, OUT);
            for (int k = 0; k < B * OUT; k++)
                out[k] = NAN;
            (naive ? kern_linear_forward_ld_naive : kern_linear_forward_ld)(out, in, W + C0, LDW, b,
                                                                            B, IN, OUT);
            for (int k = 0; k < B * OUT; k++)
                assert_float_equal(out[k], want[k], 1e-5);
            /* backward: din written over NaN into a wider array (rows LDD apart,
             * the gap untouched), dW's block added to, the rest untouched */
            const int LDD = IN + 3;
            memset(dw, 0, sizeof(float) * OUT * IN);
            memset(din_want, 0, sizeof(float) * B * IN);
            memset(db_want, 0, sizeof(float) * OUT);
            (naive ? kern_linear_backward_naive : kern_linear_backward)(din_want, dw, db_want, dout,
                                                                        in, w, B, IN, OUT);
            memcpy(dW, dW0, sizeof(float) * OUT * LDW);
            memset(db, 0, sizeof(float) * OUT);
            for (int k = 0; k < B * LDD; k++)
                din[k] = k % LDD < IN ? NAN : 7.0f;
            (naive ? kern_linear_backward_ld_naive : kern_linear_backward_ld)(
                din, LDD, 0.0f, dW + C0, db, dout, in, W + C0, LDW, B, IN, OUT);
            check_din_block(din, LDD, din_want, 1.0f, B, IN);
            for (int o = 0; o < OUT; o++) {
                assert_float_equal(db[o], db_want[o], 1e-5);
                for (int c = 0; c < LDW; c++) {
                    size_t k = (size_t)o * LDW + c;
                    if (c >= C0 && c < C0 + IN)
                        assert_float_equal(dW[k], dW0[k] + dw[(size_t)o * IN + c - C0], 1e-5);
                    else
                        assert_true(dW[k] == dW0[k]);
                }
            }
            /* din_beta 1 adds: a second pass doubles din, the gap still untouched */
            (naive ? kern_linear_backward_ld_naive : kern_linear_backward_ld)(
                din, LDD, 1.0f, dW + C0, NULL, dout, in, W + C0, LDW, B, IN, OUT);
            check_din_block(din, LDD, din_want, 2.0f, B, IN);
        }
        free(W), free(w), free(in), free(b), free(dout), free(out), free(want), free(dW);
        free(dW0), free(dw), free(din), free(din_want), free(db), free(db_want);
    }
}

static void test_linear_backward_blas_vs_naive(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 2);
    for (int s = 0; s < N_LINEAR_SHAPES; s++) {
        const int B = linear_shapes[s].B, IN = linear_shapes[s].IN, OUT = linear_shapes[s].OUT;
        const size_t nin = (size_t)B * IN, nw = (size_t)OUT * IN;
        float *in = xmalloc_floats(nin), *w = xmalloc_floats(nw),
              *dout = xmalloc_floats((size_t)B * OUT);
        /* pre-existing gradient contents: backward must add to them */
        float *din0 = xmalloc_floats(nin), *dw0 = xmalloc_floats(nw), *db0 = xmalloc_floats(OUT);
        float *din = xmalloc_floats(nin), *dw = xmalloc_floats(nw), *db = xmalloc_floats(OUT);
        float *din_n = xmalloc_floats(nin), *dw_n = xmalloc_floats(nw), *db_n = xmalloc_floats(OUT);
        fill_uniform(&r, in, (int)nin, -1, 1);
        fill_uniform(&r, w, (int)nw, -1, 1);
        fill_uniform(&r, dout, B * OUT, -1, 1);
        fill_uniform(&r, din0, (int)nin, -2, 2);
        fill_uniform(&r, dw0, (int)nw, -2, 2);
        fill_uniform(&r, db0, OUT, -2, 2);

        for (int variant = 0; variant < 4; variant++) {
            const int want_din = variant & 1, want_db = (variant >> 1) & 1;
            memcpy(din, din0, sizeof(float) * nin), memcpy(din_n, din0, sizeof(float) * nin);
            memcpy(dw, dw0, sizeof(float) * nw), memcpy(dw_n, dw0, sizeof(float) * nw);
            memcpy(db, db0, sizeof(float) * OUT), memcpy(db_n, db0, sizeof(float) * OUT);
            kern_linear_backward(want_din ? din : NULL, dw, want_db ? db : NULL, dout, in, w, B, IN,
                                 OUT);
            kern_linear_backward_naive(want_din ? din_n : NULL, dw_n, want_db ? db_n : NULL, dout,
                                       in, w, B, IN, OUT);
            int bad = 0;
#define CHECK_GRAD(name, idx, got, got_n, ref, scale)                                              \
    do {                                                                                           \
        if (!sum_close(got, ref, scale) || !sum_close(got_n, ref, scale) ||                        \
            !sum_close(got, got_n, scale)) {                                                       \
            if (bad < 5)                                                                           \
                print_error("B=%d IN=%d OUT=%d din=%d db=%d %s[%d]: blas %.8g naive %.8g ref "     \
                            "%.8g\n",                                                              \
                            B, IN, OUT, want_din, want_db, name, (int)(idx), (double)(got),        \
                            (double)(got_n), (double)(ref));                                       \
            bad++;                                                                                 \
        }                                                                                          \
    } while (0)
            /* din (B,IN) = din0 + dout·w */
            for (int row = 0; row < B; row++) {
                for (int i = 0; i < IN; i++) {
                    size_t k = (size_t)row * IN + i;
                    double ref = din0[k], scale = fabs(din0[k]);
                    if (want_din) {
                        for (int o = 0; o < OUT; o++) {
                            double t = (double)dout[row * OUT + o] * w[o * IN + i];
                            ref += t;
                            scale += fabs(t);
                        }
                    }
                    CHECK_GRAD("din", k, din[k], din_n[k], ref, scale);
                }
            }
            /* dw (OUT,IN) = dw0 + dout^T·in */
            for (int o = 0; o < OUT; o++) {
                for (int i = 0; i < IN; i++) {
                    size_t k = (size_t)o * IN + i;
                    double ref = dw0[k], scale = fabs(dw0[k]);
                    for (int row = 0; row < B; row++) {
                        double t = (double)dout[row * OUT + o] * in[row * IN + i];
                        ref += t;
                        scale += fabs(t);
                    }
                    CHECK_GRAD("dw", k, dw[k], dw_n[k], ref, scale);
                }
            }
            /* db (OUT) = db0 + Σ_b dout */
            for (int o = 0; o < OUT; o++) {
                double ref = db0[o], scale = fabs(db0[o]);
                if (want_db) {
                    for (int row = 0; row < B; row++) {
                        ref += dout[row * OUT + o];
                        scale += fabs(dout[row * OUT + o]);
                    }
                }
                CHECK_GRAD("db", o, db[o], db_n[o], ref, scale);
            }
#undef CHECK_GRAD
            assert_int_equal(bad, 0);
        }
        free(in), free(w), free(dout), free(din0), free(dw0), free(db0);
        free(din), free(dw), free(db), free(din_n), free(dw_n), free(db_n);
    }
}

static void test_gemv_blas_vs_naive(void **state)
{
    (void)state;
    static const struct {
        int N, K;
    } shapes[] = {{1, 1}, {7, 5}, {100, 32}, {33, 17}, {1, 64}, {64, 1}};
    rng_t r;
    rng_seed(&r, 3);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const int N = shapes[s].N, K = shapes[s].K;
        float *A = xmalloc_floats((size_t)N * K), *x = xmalloc_floats(K);
        float *y = xmalloc_floats(N), *y_n = xmalloc_floats(N);
        fill_uniform(&r, A, N * K, -1, 1);
        fill_uniform(&r, x, K, -1, 1);
        for (int n = 0; n < N; n++)
            y[n] = y_n[n] = NAN; /* gemv writes y, it does not add */
        kern_gemv(y, A, x, N, K);
        kern_gemv_naive(y_n, A, x, N, K);
        for (int n = 0; n < N; n++) {
            double ref = 0.0, scale = 0.0;
            for (int k = 0; k < K; k++) {
                double t = (double)A[n * K + k] * x[k];
                ref += t;
                scale += fabs(t);
            }
            if (!sum_close(y[n], ref, scale) || !sum_close(y_n[n], ref, scale) ||
                !sum_close(y[n], y_n[n], scale))
                fail_msg("gemv N=%d K=%d y[%d]: blas %.8g naive %.8g ref %.8g", N, K, n,
                         (double)y[n], (double)y_n[n], ref);
        }
        free(A), free(x), free(y), free(y_n);
    }
}

/* ------------------------------------------------- linear layer backward */

typedef void (*linear_fwd_fn)(float *, const float *, const float *, const float *, int, int, int);
typedef void (*linear_bwd_fn)(float *, float *, float *, const float *, const float *,
                              const float *, int, int, int);

typedef struct {
    linear_fwd_fn fwd;
    int B, IN, OUT;
    float *in, *w, *b, *R, *out;
} linear_ctx_t;

/* loss = Σ out ⊙ R */
static double linear_objective(void *p)
{
    linear_ctx_t *c = p;
    c->fwd(c->out, c->in, c->w, c->b, c->B, c->IN, c->OUT);
    double s = 0.0;
    for (int k = 0; k < c->B * c->OUT; k++)
        s += (double)c->out[k] * c->R[k];
    return s;
}

static void test_linear_backward_fd(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        linear_fwd_fn fwd;
        linear_bwd_fn bwd;
    } kernels[] = {
        {"blas", kern_linear_forward, kern_linear_backward},
        {"naive", kern_linear_forward_naive, kern_linear_backward_naive},
    };
    static const shape_t shapes[] = {{3, 4, 5}, {2, 7, 3}, {1, 3, 1}};
    rng_t r;
    rng_seed(&r, 4);
    for (size_t kk = 0; kk < sizeof(kernels) / sizeof(kernels[0]); kk++) {
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            const int B = shapes[s].B, IN = shapes[s].IN, OUT = shapes[s].OUT;
            linear_ctx_t c = {kernels[kk].fwd,
                              B,
                              IN,
                              OUT,
                              xmalloc_floats((size_t)B * IN),
                              xmalloc_floats((size_t)OUT * IN),
                              xmalloc_floats(OUT),
                              xmalloc_floats((size_t)B * OUT),
                              xmalloc_floats((size_t)B * OUT)};
            fill_uniform(&r, c.in, B * IN, -1, 1);
            fill_uniform(&r, c.w, OUT * IN, -1, 1);
            fill_uniform(&r, c.b, OUT, -1, 1);
            fill_uniform(&r, c.R, B * OUT, -1, 1);
            float *din = xmalloc_floats((size_t)B * IN), *dw = xmalloc_floats((size_t)OUT * IN);
            float *db = xmalloc_floats(OUT);
            float *pre_in = xmalloc_floats((size_t)B * IN),
                  *pre_w = xmalloc_floats((size_t)OUT * IN);
            float *pre_b = xmalloc_floats(OUT);
            fill_uniform(&r, pre_in, B * IN, -1, 1);
            fill_uniform(&r, pre_w, OUT * IN, -1, 1);
            fill_uniform(&r, pre_b, OUT, -1, 1);
            memcpy(din, pre_in, sizeof(float) * B * IN);
            memcpy(dw, pre_w, sizeof(float) * OUT * IN);
            memcpy(db, pre_b, sizeof(float) * OUT);
            kernels[kk].bwd(din, dw, db, c.R, c.in, c.w, B, IN, OUT);
            /* what backward added (it must add: the pre-filled values are subtracted) */
            for (int k = 0; k < B * IN; k++)
                din[k] -= pre_in[k];
            for (int k = 0; k < OUT * IN; k++)
                dw[k] -= pre_w[k];
            for (int k = 0; k < OUT; k++)
                db[k] -= pre_b[k];

            char what[64];
            int bad = 0;
            snprintf(what, sizeof(what), "%s %dx%dx%d din", kernels[kk].name, B, IN, OUT);
            bad += gradcheck(what, linear_objective, &c, c.in, din, B * IN, FD_EPS_LINEAR, NULL);
            snprintf(what, sizeof(what), "%s %dx%dx%d dw", kernels[kk].name, B, IN, OUT);
            bad += gradcheck(what, linear_objective, &c, c.w, dw, OUT * IN, FD_EPS_LINEAR, NULL);
            snprintf(what, sizeof(what), "%s %dx%dx%d db", kernels[kk].name, B, IN, OUT);
            bad += gradcheck(what, linear_objective, &c, c.b, db, OUT, FD_EPS_LINEAR, NULL);
            assert_int_equal(bad, 0);
            free(c.in), free(c.w), free(c.b), free(c.R), free(c.out);
            free(din), free(dw), free(db), free(pre_in), free(pre_w), free(pre_b);
        }
    }
}

/* --------------------------------------------------- element-wise layers */

#define ELEM_N 40

typedef struct {
    float *x, *a, *b, *R, *out;
    int n;
} elem_ctx_t;

/* loss = Σ relu(x) ⊙ R */
static double relu_objective(void *p)
{
    elem_ctx_t *c = p;
    relu_forward(c->out, c->x, c->n);
    double s = 0.0;
    for (int k = 0; k < c->n; k++)
        s += (double)c->out[k] * c->R[k];
    return s;
}

static void test_relu_backward_fd(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 5);
    float x[ELEM_N], R[ELEM_N], out[ELEM_N], din[ELEM_N], pre[ELEM_N];
    for (int k = 0; k < ELEM_N; k++) {
        do /* keep clear of the kink at 0 */
            x[k] = uniform(&r, -1, 1);
        while (fabsf(x[k]) < 0.05f);
    }
    fill_uniform(&r, R, ELEM_N, -1, 1);
    fill_uniform(&r, pre, ELEM_N, -1, 1);
    elem_ctx_t c = {.x = x, .R = R, .out = out, .n = ELEM_N};
    relu_objective(&c);
    int active = 0;
    for (int k = 0; k < ELEM_N; k++)
        active += out[k] > 0.0f;
    assert_in_range(active, 5, ELEM_N - 5); /* both sides of the kink are covered */
    memcpy(din, pre, sizeof(din));
    relu_backward(din, R, out, ELEM_N);
    for (int k = 0; k < ELEM_N; k++)
        din[k] -= pre[k];
    assert_int_equal(fd_check("relu din", relu_objective, &c, x, din, ELEM_N), 0);

    /* in place, as neumf uses it (out is recomputed: FD left it at a step) */
    relu_objective(&c);
    float y[ELEM_N];
    memcpy(y, x, sizeof(y));
    relu_forward(y, y, ELEM_N);
    assert_memory_equal(y, out, sizeof(y));
}

/* loss = Σ (a ⊙ b) ⊙ R */
static double hadamard_objective(void *p)
{
    elem_ctx_t *c = p;
    hadamard_forward(c->out, c->a, c->b, c->n);
    double s = 0.0;
    for (int k = 0; k < c->n; k++)
        s += (double)c->out[k] * c->R[k];
    return s;
}

static void test_hadamard_backward_fd(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 6);
    float a[ELEM_N], b[ELEM_N], R[ELEM_N], out[ELEM_N];
    float da[ELEM_N], db[ELEM_N], pre_a[ELEM_N], pre_b[ELEM_N];
    fill_uniform(&r, a, ELEM_N, -1, 1);
    fill_uniform(&r, b, ELEM_N, -1, 1);
    fill_uniform(&r, R, ELEM_N, -1, 1);
    fill_uniform(&r, pre_a, ELEM_N, -1, 1);
    fill_uniform(&r, pre_b, ELEM_N, -1, 1);
    memcpy(da, pre_a, sizeof(da));
    memcpy(db, pre_b, sizeof(db));
    hadamard_backward(da, db, R, a, b, ELEM_N);
    for (int k = 0; k < ELEM_N; k++) {
        da[k] -= pre_a[k];
        db[k] -= pre_b[k];
    }
    elem_ctx_t c = {.a = a, .b = b, .R = R, .out = out, .n = ELEM_N};
    int bad = gradcheck("hadamard da", hadamard_objective, &c, a, da, ELEM_N, FD_EPS_LINEAR, NULL);
    bad += gradcheck("hadamard db", hadamard_objective, &c, b, db, ELEM_N, FD_EPS_LINEAR, NULL);
    assert_int_equal(bad, 0);
}

/* ----------------------------------------------------------------- losses */

#define LB 3
#define LG 5
#define LN (LB * LG)

typedef enum { L_BCE, L_BCE_LABELS, L_BPR, L_SOFTMAX } loss_kind_t;

typedef struct {
    const char *name;
    loss_kind_t kind;
    int use_gw;   /* group weights (or per-element weights for bce_labels) */
    int use_logq; /* softmax only */
} loss_case_t;

typedef struct {
    loss_kind_t kind;
    float z[LN], y[LN], w[LN], gw[LB], logq[LN], dz[LN];
    const float *gwp, *wp, *logqp;
} loss_ctx_t;

static double loss_eval(loss_ctx_t *c, float *dz)
{
    switch (c->kind) {
    case L_BCE:
        return loss_bce(dz, c->z, c->gwp, LB, LG);
    case L_BCE_LABELS:
        return loss_bce_labels(dz, c->z, c->y, c->wp, LN);
    case L_BPR:
        return loss_bpr(dz, c->z, c->gwp, LB, LG);
    case L_SOFTMAX:
        return loss_softmax(dz, c->z, c->logqp, c->gwp, LB, LG);
    }
    return NAN;
}

static double loss_objective(void *p)
{
    loss_ctx_t *c = p;
    float scratch[LN];
    return loss_eval(c, scratch);
}

static void test_loss_fd(void **state)
{
    (void)state;
    static const loss_case_t cases[] = {
        {"bce", L_BCE, 0, 0},
        {"bce gw", L_BCE, 1, 0},
        {"bce_labels", L_BCE_LABELS, 0, 0},
        {"bce_labels w", L_BCE_LABELS, 1, 0},
        {"bpr", L_BPR, 0, 0},
        {"bpr gw", L_BPR, 1, 0},
        {"softmax", L_SOFTMAX, 0, 0},
        {"softmax logq", L_SOFTMAX, 0, 1},
        {"softmax gw", L_SOFTMAX, 1, 0},
        {"softmax logq gw", L_SOFTMAX, 1, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rng_t r;
        rng_seed(&r, 100 + i);
        loss_ctx_t c;
        memset(&c, 0, sizeof(c));
        c.kind = cases[i].kind;
        fill_uniform(&r, c.z, LN, -2, 2);
        fill_uniform(&r, c.y, LN, 0, 1); /* fractional labels */
        c.y[0] = 0.0f, c.y[1] = 1.0f;    /* and both ends */
        fill_uniform(&r, c.w, LN, 0.2f, 3.0f);
        /* weights well away from 1 so that a dropped weight shows */
        const float gw[LB] = {0.5f, 2.0f, 3.0f};
        memcpy(c.gw, gw, sizeof(gw));
        fill_uniform(&r, c.logq, LN, -6, -1);
        c.gwp = cases[i].use_gw ? c.gw : NULL;
        c.wp = cases[i].use_gw ? c.w : NULL;
        c.logqp = cases[i].use_logq ? c.logq : NULL;

        for (int k = 0; k < LN; k++)
            c.dz[k] = NAN; /* losses write dz, they do not add */
        double L = loss_eval(&c, c.dz);
        assert_true(isfinite(L) && L > 0.0);
        char what[64];
        snprintf(what, sizeof(what), "%s dz", cases[i].name);
        assert_int_equal(gradcheck(what, loss_objective, &c, c.z, c.dz, LN, FD_EPS_LOSS, NULL), 0);
    }
}

static void test_loss_known_values(void **state)
{
    (void)state;
    float z[LN], dz[LN], y[LN], w[LN];
    const double ln2 = log(2.0);

    /* BCE of zero logits: ln 2 per pair, dz = (½ − y)/(B·G) */
    memset(z, 0, sizeof(z));
    assert_float_equal(loss_bce(dz, z, NULL, LB, LG), ln2, 1e-6);
    for (int k = 0; k < LN; k++)
        assert_float_equal(dz[k], ((k % LG == 0) ? -0.5 : 0.5) / LN, 1e-7);
    /* group weights scale each group's share of the mean */
    const float gw[LB] = {0.5f, 2.0f, 3.0f};
    assert_float_equal(loss_bce(dz, z, gw, LB, LG), ln2 * (0.5 + 2.0 + 3.0) / LB, 1e-6);

    /* BPR of equal logits: ln 2 per pair; the positive is pushed up, each
     * negative down, by ½/(B·(G−1)) per pair */
    assert_float_equal(loss_bpr(dz, z, NULL, LB, LG), ln2, 1e-6);
    for (int k = 0; k < LN; k++)
        assert_float_equal(dz[k], (k % LG == 0) ? -0.5 / LB : 0.5 / (LB * (LG - 1)), 1e-7);

    /* softmax over G equal logits: ln G; dz = (1/G − [g=0])/B */
    for (int k = 0; k < LN; k++)
        z[k] = 1.75f;
    assert_float_equal(loss_softmax(dz, z, NULL, NULL, LB, LG), log((double)LG), 1e-6);
    for (int k = 0; k < LN; k++)
        assert_float_equal(dz[k], (1.0 / LG - (k % LG == 0)) / LB, 1e-7);

    /* bce_labels with the labels and weights loss_bce implies is loss_bce */
    rng_t r;
    rng_seed(&r, 7);
    float dz2[LN];
    fill_uniform(&r, z, LN, -3, 3);
    for (int k = 0; k < LN; k++) {
        y[k] = k % LG == 0 ? 1.0f : 0.0f;
        w[k] = gw[k / LG];
    }
    float l1 = loss_bce(dz, z, gw, LB, LG), l2 = loss_bce_labels(dz2, z, y, w, LN);
    assert_float_equal(l1, l2, 1e-6);
    for (int k = 0; k < LN; k++)
        assert_float_equal(dz[k], dz2[k], 1e-7);

    /* BCE at a known point: z = ln 3 → σ = ¾; y = ¼ → softplus(z) − y·z = ln 4 − ¼ ln 3 */
    float zz = (float)log(3.0), yy = 0.25f, d1;
    assert_float_equal(loss_bce_labels(&d1, &zz, &yy, NULL, 1), log(4.0) - 0.25 * log(3.0), 1e-6);
    assert_float_equal(d1, 0.5, 1e-6);

    /* extreme logits stay finite (stable softplus, max-shifted softmax) */
    for (int k = 0; k < LN; k++)
        z[k] = (k % 2 ? 1.0f : -1.0f) * 500.0f;
    float big[4] = {
        loss_bce(dz, z, NULL, LB, LG),
        loss_bpr(dz2, z, NULL, LB, LG),
        loss_softmax(dz, z, NULL, NULL, LB, LG),
        loss_bce_labels(dz2, z, y, NULL, LN),
    };
    for (int i = 0; i < 4; i++)
        assert_true(isfinite(big[i]));
    for (int k = 0; k < LN; k++)
        assert_true(isfinite(dz[k]) && isfinite(dz2[k]));
}

static void test_loss_softmax_logq(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 8);
    float z[LN], logq[LN], shifted[LN], dz[LN], dz_ref[LN];
    fill_uniform(&r, z, LN, -2, 2);

    /* a constant per row cancels in the softmax: same loss, same dz */
    const float rowc[LB] = {-3.0f, -0.5f, -9.0f};
    for (int k = 0; k < LN; k++)
        logq[k] = rowc[k / LG];
    float l0 = loss_softmax(dz_ref, z, NULL, NULL, LB, LG);
    float l1 = loss_softmax(dz, z, logq, NULL, LB, LG);
    assert_float_equal(l1, l0, 1e-6);
    for (int k = 0; k < LN; k++)
        assert_float_equal(dz[k], dz_ref[k], 1e-7);

    /* a varying logq is the same as subtracting it from the logits */
    fill_uniform(&r, logq, LN, -6, -1);
    for (int k = 0; k < LN; k++)
        shifted[k] = z[k] - logq[k];
    l0 = loss_softmax(dz_ref, shifted, NULL, NULL, LB, LG);
    l1 = loss_softmax(dz, z, logq, NULL, LB, LG);
    assert_float_equal(l1, l0, 1e-5);
    for (int k = 0; k < LN; k++)
        assert_float_equal(dz[k], dz_ref[k], 1e-6);
    /* and it does change the loss (the correction is applied at all) */
    float lnone = loss_softmax(dz_ref, z, NULL, NULL, LB, LG);
    assert_true(fabsf(lnone - l1) > 1e-3f);
}

/* ------------------------------------------------------------------ NeuMF */

#define NU 3
#define NI 5
#define NB 6
#define ROW 8 /* dim 4 + mlp[0]/2 = 4 */

/* pairs (user, item); user 0 and item 2 appear more than once */
static const int pair_u[NB] = {0, 0, 1, 2, 1, 0};
static const int pair_i[NB] = {0, 1, 2, 3, 4, 2};

typedef struct {
    neumf_t *m;
    float users[NU][ROW], items[NI][ROW];
    const float *up[NB], *ip[NB];
    float R[NB], logits[NB];
} neumf_ctx_t;

static neumf_t *make_neumf(int naive)
{
    neumf_config_t cfg;
    neumf_config_default(&cfg);
    cfg.dim = 4;
    cfg.mlp[0] = 8, cfg.mlp[1] = 6, cfg.mlp[2] = 4;
    cfg.nmlp = 3;
    cfg.max_batch = 8;
    cfg.seed = 1234;
    cfg.naive = naive;
    char err[128];
    neumf_t *m = neumf_create(&cfg, err, sizeof(err));
    if (!m)
        fail_msg("neumf_create: %s", err);
    assert_int_equal(neumf_row_width(m), ROW);
    return m;
}

static void neumf_ctx_init(neumf_ctx_t *c, neumf_t *m)
{
    memset(c, 0, sizeof(*c));
    c->m = m;
    for (int u = 0; u < NU; u++)
        neumf_init_row(m, c->users[u], 1000 + u, 0.5f);
    for (int i = 0; i < NI; i++)
        neumf_init_row(m, c->items[i], 2000 + i, 0.5f);
    for (int b = 0; b < NB; b++) {
        c->up[b] = c->users[pair_u[b]];
        c->ip[b] = c->items[pair_i[b]];
    }
    rng_t r;
    rng_seed(&r, 9);
    fill_uniform(&r, c->R, NB, -1, 1);
    /* non-zero biases, so that the bias path is exercised off its init */
    dense_block_t *d = neumf_dense(m);
    for (size_t k = 0; k < d->n; k++)
        if (d->params[k] == 0.0f)
            d->params[k] = uniform(&r, -0.1f, 0.1f);
}

/* loss = Σ logits ⊙ R */
static double neumf_objective(void *p)
{
    neumf_ctx_t *c = p;
    neumf_forward(c->m, c->logits, c->up, c->ip, NB);
    double s = 0.0;
    for (int b = 0; b < NB; b++)
        s += (double)c->logits[b] * c->R[b];
    return s;
}

/* Forward, then backward with dlogits = R into zeroed dense grads; row
 * gradients du/di (NB, ROW), written even where NaN was. */
static void neumf_grads(neumf_ctx_t *c, float du[NB * ROW], float di[NB * ROW])
{
    dense_block_zero_grad(neumf_dense(c->m));
    neumf_objective(c);
    for (int k = 0; k < NB * ROW; k++)
        du[k] = di[k] = NAN;
    neumf_backward(c->m, du, di, c->R, NB);
}

static void test_neumf_fd(void **state)
{
    (void)state;
    neumf_t *m = make_neumf(0);
    neumf_ctx_t c;
    neumf_ctx_init(&c, m);
    float du[NB * ROW], di[NB * ROW];
    neumf_grads(&c, du, di);
    dense_block_t *d = neumf_dense(m);
    assert_int_equal(d->n, 8 * 6 + 6 + 6 * 4 + 4 + (4 + 4) + 1);

    /* a check over dead ReLUs would prove little: most weights must matter */
    int live = 0;
    for (size_t k = 0; k < d->n; k++)
        live += d->grads[k] != 0.0f;
    assert_true(live >= (int)(d->n / 2));

    float *g = xmalloc_floats(d->n);
    memcpy(g, d->grads, sizeof(float) * d->n);
    int kinks = 0;
    int bad =
        gradcheck("neumf dense", neumf_objective, &c, d->params, g, (int)d->n, FD_EPS, &kinks);
    free(g);

    /* a row shared by several pairs gets the sum of their row gradients */
    float gu[NU][ROW], gi[NI][ROW];
    memset(gu, 0, sizeof(gu));
    memset(gi, 0, sizeof(gi));
    for (int b = 0; b < NB; b++) {
        for (int k = 0; k < ROW; k++) {
            gu[pair_u[b]][k] += du[b * ROW + k];
            gi[pair_i[b]][k] += di[b * ROW + k];
        }
    }
    bad += gradcheck("neumf user rows", neumf_objective, &c, &c.users[0][0], &gu[0][0], NU * ROW,
                     FD_EPS, &kinks);
    bad += gradcheck("neumf item rows", neumf_objective, &c, &c.items[0][0], &gi[0][0], NI * ROW,
                     FD_EPS, &kinks);
    assert_int_equal(bad, 0);
    /* One pre-activation within a step of 0 kinks every input of its unit (~20
     * coordinates); most seeds have none. Skipping most would prove nothing. */
    assert_in_range(kinks, 0, (d->n + (NU + NI) * ROW) / 4);

    /* backward adds into the dense gradients: a second pass doubles them */
    float *once = xmalloc_floats(d->n);
    neumf_grads(&c, du, di);
    memcpy(once, d->grads, sizeof(float) * d->n);
    neumf_backward(m, du, di, c.R, NB);
    for (size_t k = 0; k < d->n; k++)
        assert_float_equal(d->grads[k], 2.0f * once[k], 1e-6 * (1.0 + fabs(once[k])));
    free(once);
    neumf_free(m);
}

static int rel_close(double a, double b, double rel)
{
    return fabs(a - b) <= rel * (fabs(a) + fabs(b)) + 1e-7;
}

static void test_neumf_naive_vs_blas(void **state)
{
    (void)state;
    neumf_t *mb = make_neumf(0), *mn = make_neumf(1);
    neumf_ctx_t cb, cn;
    neumf_ctx_init(&cb, mb);
    neumf_ctx_init(&cn, mn);
    dense_block_t *db = neumf_dense(mb), *dn = neumf_dense(mn);
    assert_int_equal(db->n, dn->n);
    /* same seed, same initial block */
    assert_memory_equal(db->params, dn->params, sizeof(float) * db->n);

    float du_b[NB * ROW], di_b[NB * ROW], du_n[NB * ROW], di_n[NB * ROW];
    neumf_grads(&cb, du_b, di_b);
    neumf_grads(&cn, du_n, di_n);
    for (int b = 0; b < NB; b++)
        if (!rel_close(cb.logits[b], cn.logits[b], 1e-5))
            fail_msg("logit %d: blas %.8g naive %.8g", b, (double)cb.logits[b],
                     (double)cn.logits[b]);
    for (size_t k = 0; k < db->n; k++)
        if (!rel_close(db->grads[k], dn->grads[k], 1e-5))
            fail_msg("dense grad %zu: blas %.8g naive %.8g", k, (double)db->grads[k],
                     (double)dn->grads[k]);
    for (int k = 0; k < NB * ROW; k++) {
        if (!rel_close(du_b[k], du_n[k], 1e-5) || !rel_close(di_b[k], di_n[k], 1e-5))
            fail_msg("row grad %d: du %.8g/%.8g di %.8g/%.8g", k, (double)du_b[k], (double)du_n[k],
                     (double)di_b[k], (double)di_n[k]);
    }
    neumf_free(mb);
    neumf_free(mn);
}

/* ------------------------------------------------------------- optimizers */

static void test_optim_sgd(void **state)
{
    (void)state;
    /* w -= lr·(g + l2·w), lr 0.1, l2 0.01; w[4] is past n and must not move */
    float w[5] = {1.0f, -2.0f, 0.5f, 0.0f, 7.0f};
    const float g[5] = {0.1f, 0.2f, -0.3f, 0.4f, 1.0f};
    optim_sgd(w, g, 4, 0.1f, 0.01f);
    const double want[5] = {
        1.0 - 0.1 * (0.1 + 0.01 * 1.0),  /* 0.989 */
        -2.0 - 0.1 * (0.2 - 0.01 * 2.0), /* -2.018 */
        0.5 - 0.1 * (-0.3 + 0.01 * 0.5), /* 0.5295 */
        0.0 - 0.1 * 0.4,                 /* -0.04 */
        7.0,
    };
    const double literal[5] = {0.989, -2.018, 0.5295, -0.04, 7.0};
    for (int i = 0; i < 5; i++) {
        assert_float_equal(want[i], literal[i], 1e-12);
        assert_float_equal(w[i], literal[i], 1e-6);
    }
}

static void test_optim_adagrad(void **state)
{
    (void)state;
    /* g' = g + l2·w; acc += g'²; w -= lr·g'/(√acc + eps); lr 0.1, l2 0.01, eps 0.01
     * (large enough to tell √acc + eps from √(acc + eps)).
     * w[3]: l2·w cancels g exactly, so nothing moves; w[4] is past n. */
    float w[5] = {1.0f, -2.0f, 0.5f, 3.0f, 7.0f};
    float acc[5] = {0.5f, 0.0f, 1.0f, 0.0f, 4.0f};
    const float g[5] = {0.1f, 0.2f, -0.3f, -0.03f, 1.0f};
    optim_adagrad(w, acc, g, 4, 0.1f, 0.01f, 0.01f);
    /* acc: 0.5 + 0.11², 0.18², 1 + 0.295², 0 */
    const double want_acc[5] = {0.5121, 0.0324, 1.087025, 0.0, 4.0};
    /* w: 1 − 0.011/(√0.5121 + 0.01), −2 − 0.018/0.19, 0.5 + 0.0295/(√1.087025 + 0.01) */
    const double want_w[5] = {0.9848403752116435, -2.094736842105263, 0.5280257100243867, 3.0, 7.0};
    for (int i = 0; i < 5; i++) {
        assert_float_equal(acc[i], want_acc[i], 1e-6);
        assert_float_equal(w[i], want_w[i], 2e-6);
    }
    /* a second step keeps accumulating */
    optim_adagrad(w, acc, g, 1, 0.1f, 0.0f, 0.01f);
    assert_float_equal(acc[0], 0.5121 + 0.01, 1e-6);
    assert_float_equal(w[0], want_w[0] - 0.1 * 0.1 / (sqrt(0.5221) + 0.01), 2e-6);
}

static void test_optim_adam_row(void **state)
{
    (void)state;
    /* A row's own Adam (β 0.9, 0.999), state m (3), v (3), t; w[3] is past n
     * and st[7] past the state. The first step moves each element by lr
     * against its gradient's sign; the second, with l2 0.01, keeps moving
     * w[2] on momentum though its gradient is 0. Expected values: the same
     * recurrences in double precision. */
    float w[4] = {1.0f, -2.0f, 0.5f, 9.0f};
    float st[8] = {0, 0, 0, 0, 0, 0, 0, 5.0f};
    const float g1[3] = {0.1f, 0.2f, -0.3f}, g2[3] = {0.1f, -0.2f, 0.0f};
    optim_adam_row(w, st, g1, 3, 0.1f, 0.0f, 1e-8f);
    const double w1[3] = {0.9, -2.1, 0.6};
    for (int i = 0; i < 3; i++)
        assert_float_equal(w[i], w1[i], 1e-6);
    assert_float_equal(st[6], 1.0, 0.0);
    optim_row(OPT_ADAM, w, st, g2, 3, 0.1f, 0.01f, 1e-8f);
    const double w2[3] = {0.7998683281724214, -2.0897616984764658, 0.6655036881178596};
    const double m2[3] = {0.01990000001, -0.004099999995, -0.02640000000333};
    const double v2[3] = {2.18710000218e-05, 8.880099997790002e-05, 8.994599999959999e-05};
    for (int i = 0; i < 3; i++) {
        assert_float_equal(w[i], w2[i], 2e-6);
        assert_float_equal(st[i], m2[i], 1e-7);
        assert_float_equal(st[3 + i], v2[i], 1e-9);
    }
    assert_float_equal(st[6], 2.0, 0.0);
    assert_float_equal(w[3], 9.0, 0.0);
    assert_float_equal(st[7], 5.0, 0.0);
    /* the state each optimizer needs, and the names */
    assert_int_equal(optim_state_floats(OPT_SGD, 32), 0);
    assert_int_equal(optim_state_floats(OPT_ADAGRAD, 32), 32);
    assert_int_equal(optim_state_floats(OPT_ADAM, 32), 65);
    assert_int_equal(sparse_opt_parse("adam"), OPT_ADAM);
    assert_int_equal(sparse_opt_parse("adagrad"), OPT_ADAGRAD);
    assert_int_equal(sparse_opt_parse("sgd"), OPT_SGD);
    assert_int_equal(sparse_opt_parse("Adam"), -1);
    assert_string_equal(sparse_opt_name(OPT_ADAM), "adam");
}

static void test_dense_block_adam(void **state)
{
    (void)state;
    enum { N = 6 };
    const float lr = 0.01f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, l2 = 0.1f;
    const float w0[N] = {1.0f, -0.5f, 2.0f, 0.0f, -3.0f, 0.25f};
    /* step 2 gradients differ in size and sign from step 1; g[2] = −0.05
     * against l2·w = 0.2 flips sign only if l2 is applied */
    const float gs[2][N] = {{0.3f, -0.2f, -0.05f, 1.5f, 0.01f, -0.7f},
                            {-0.1f, -0.4f, 0.6f, 0.02f, 0.5f, -0.7f}};
    dense_block_t d;
    assert_int_equal(dense_block_init(&d, N), 0);
    assert_int_equal(d.n, N);
    assert_int_equal(d.t, 0);
    for (int i = 0; i < N; i++) {
        assert_true(d.grads[i] == 0.0f && d.m[i] == 0.0f && d.v[i] == 0.0f);
        d.params[i] = w0[i];
    }
    double w[N], m[N] = {0}, v[N] = {0};
    for (int i = 0; i < N; i++)
        w[i] = w0[i];
    for (int t = 1; t <= 2; t++) {
        dense_block_zero_grad(&d);
        memcpy(d.grads, gs[t - 1], sizeof(gs[0]));
        dense_block_adam(&d, lr, b1, b2, eps, l2);
        assert_int_equal(d.t, t);
        const double c1 = 1.0 - pow(b1, t), c2 = 1.0 - pow(b2, t);
        for (int i = 0; i < N; i++) {
            double gi = gs[t - 1][i] + (double)l2 * w[i];
            m[i] = b1 * m[i] + (1.0 - b1) * gi;
            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
            w[i] -= lr * (m[i] / c1) / (sqrt(v[i] / c2) + eps);
            if (!rel_close(d.m[i], m[i], 1e-5) || !rel_close(d.v[i], v[i], 1e-5) ||
                fabs(d.params[i] - w[i]) > 1e-6 * (1.0 + fabs(w[i])))
                fail_msg("adam step %d [%d]: w %.9g/%.9g m %.9g/%.9g v %.9g/%.9g", t, i,
                         (double)d.params[i], w[i], (double)d.m[i], m[i], (double)d.v[i], v[i]);
        }
    }
    dense_block_free(&d);
    dense_block_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_forward_blas_vs_naive),
        cmocka_unit_test(test_linear_backward_blas_vs_naive),
        cmocka_unit_test(test_linear_ld_block),
        cmocka_unit_test(test_gemv_blas_vs_naive),
        cmocka_unit_test(test_linear_backward_fd),
        cmocka_unit_test(test_relu_backward_fd),
        cmocka_unit_test(test_hadamard_backward_fd),
        cmocka_unit_test(test_loss_fd),
        cmocka_unit_test(test_loss_known_values),
        cmocka_unit_test(test_loss_softmax_logq),
        cmocka_unit_test(test_neumf_fd),
        cmocka_unit_test(test_neumf_naive_vs_blas),
        cmocka_unit_test(test_optim_sgd),
        cmocka_unit_test(test_optim_adagrad),
        cmocka_unit_test(test_optim_adam_row),
        cmocka_unit_test(test_dense_block_adam),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
