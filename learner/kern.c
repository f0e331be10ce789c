/* kern.c — cblas-backed dense kernels and their plain-loop twins (see kern.h).
 * This is the only file of freshrec that includes cblas.h. */
#include "kern.h"

#include <cblas.h>
#include <pthread.h>
#include <string.h>

/* a vector of ones, for sums over rows as matrix-vector products */
#define ONES 1024
static float ones_v[ONES];
static pthread_once_t ones_once = PTHREAD_ONCE_INIT;

static void ones_init(void)
{
    for (int i = 0; i < ONES; i++)
        ones_v[i] = 1.0f;
}

static const float *ones(void)
{
    pthread_once(&ones_once, ones_init);
    return ones_v;
}

void kern_set_threads(int n)
{
    openblas_set_num_threads(n);
}

void kern_linear_forward_ld(float *out, const float *in, const float *w, int ldw, const float *b,
                            int B, int IN, int OUT)
{
    float beta = 0.0f;
    if (b) {
        for (int r = 0; r < B; r++)
            memcpy(out + (size_t)r * OUT, b, sizeof(float) * OUT);
        beta = 1.0f;
    }
    if (OUT == 1) /* one output unit: a matrix-vector product, no packing */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, B, IN, 1.0f, in, IN, w, 1, beta, out, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OUT, IN, 1.0f, in, IN, w, ldw, beta,
                    out, OUT);
}

void kern_linear_forward_ld_naive(float *out, const float *in, const float *w, int ldw,
                                  const float *b, int B, int IN, int OUT)
{
    for (int r = 0; r < B; r++) {
        const float *x = in + (size_t)r * IN;
        for (int o = 0; o < OUT; o++) {
            const float *wo = w + (size_t)o * ldw;
            float acc = b ? b[o] : 0.0f;
            for (int i = 0; i < IN; i++)
                acc += wo[i] * x[i];
            out[(size_t)r * OUT + o] = acc;
        }
    }
}

void kern_linear_forward(float *out, const float *in, const float *w, const float *b, int B, int IN,
                         int OUT)
{
    kern_linear_forward_ld(out, in, w, IN, b, B, IN, OUT);
}

void kern_linear_forward_naive(float *out, const float *in, const float *w, const float *b, int B,
                               int IN, int OUT)
{
    kern_linear_forward_ld_naive(out, in, w, IN, b, B, IN, OUT);
}

void kern_linear_backward_ld(float *din, int ldd, float din_beta, float *dw, float *db,
                             const float *dout, const float *in, const float *w, int ldw, int B,
                             int IN, int OUT)
{
    if (OUT == 1) { /* one output unit: a rank-1 update and a matrix-vector product */
        if (din && din_beta == 0.0f)
            for (int r = 0; r < B; r++)
                memset(din + (size_t)r * ldd, 0, sizeof(float) * IN);
        if (din)
            cblas_sger(CblasRowMajor, B, IN, 1.0f, dout, 1, w, 1, din, ldd);
        cblas_sgemv(CblasRowMajor, CblasTrans, B, IN, 1.0f, in, IN, dout, 1, 1.0f, dw, 1);
    } else {
        if (din)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IN, OUT, 1.0f, dout, OUT, w,
                        ldw, din_beta, din, ldd);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, B, 1.0f, dout, OUT, in, IN,
                    1.0f, dw, ldw);
    }
    if (db) /* the column sums of dout: dout^T times ones, ONES rows at a time */
        for (int r = 0; r < B; r += ONES) {
            int n = B - r < ONES ? B - r : ONES;
            cblas_sgemv(CblasRowMajor, CblasTrans, n, OUT, 1.0f, dout + (size_t)r * OUT, OUT,
                        ones(), 1, 1.0f, db, 1);
        }
}

void kern_linear_backward_ld_naive(float *din, int ldd, float din_beta, float *dw, float *db,
                                   const float *dout, const float *in, const float *w, int ldw,
                                   int B, int IN, int OUT)
{
    if (din && din_beta == 0.0f) /* written, not added: whatever din held is not read */
        for (int r = 0; r < B; r++)
            memset(din + (size_t)r * ldd, 0, sizeof(float) * IN);
    for (int r = 0; r < B; r++) {
        const float *x = in + (size_t)r * IN;
        const float *d = dout + (size_t)r * OUT;
        for (int o = 0; o < OUT; o++) {
            const float *wo = w + (size_t)o * ldw;
            float *dwo = dw + (size_t)o * ldw;
            for (int i = 0; i < IN; i++) {
                if (din)
                    din[(size_t)r * ldd + i] += d[o] * wo[i];
                dwo[i] += d[o] * x[i];
            }
            if (db)
                db[o] += d[o];
        }
    }
}

void kern_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                          const float *w, int B, int IN, int OUT)
{
    kern_linear_backward_ld(din, IN, 1.0f, dw, db, dout, in, w, IN, B, IN, OUT);
}

void kern_linear_backward_naive(float *din, float *dw, float *db, const float *dout,
                                const float *in, const float *w, int B, int IN, int OUT)
{
    kern_linear_backward_ld_naive(din, IN, 1.0f, dw, db, dout, in, w, IN, B, IN, OUT);
}

void kern_gemv(float *y, const float *A, const float *x, int N, int K)
{
    cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, A, K, x, 1, 0.0f, y, 1);
}

void kern_gemv_naive(float *y, const float *A, const float *x, int N, int K)
{
    for (int n = 0; n < N; n++) {
        float acc = 0.0f;
        for (int k = 0; k < K; k++)
            acc += A[(size_t)n * K + k] * x[k];
        y[n] = acc;
    }
}
