/* kern.c — cblas-backed dense kernels and their plain-loop twins (see kern.h).
 * This is the only file of freshrec that includes cblas.h. */
#include "kern.h"

#include <cblas.h>
#include <string.h>

void kern_set_threads(int n)
{
    openblas_set_num_threads(n);
}

void kern_linear_forward(float *out, const float *in, const float *w, const float *b, int B, int IN,
                         int OUT)
{
    float beta = 0.0f;
    if (b) {
        for (int r = 0; r < B; r++)
            memcpy(out + (size_t)r * OUT, b, sizeof(float) * OUT);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OUT, IN, 1.0f, in, IN, w, IN, beta, out,
                OUT);
}

void kern_linear_forward_naive(float *out, const float *in, const float *w, const float *b, int B,
                               int IN, int OUT)
{
    for (int r = 0; r < B; r++) {
        const float *x = in + (size_t)r * IN;
        for (int o = 0; o < OUT; o++) {
            const float *wo = w + (size_t)o * IN;
            float acc = b ? b[o] : 0.0f;
            for (int i = 0; i < IN; i++)
                acc += wo[i] * x[i];
            out[(size_t)r * OUT + o] = acc;
        }
    }
}

void kern_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                          const float *w, int B, int IN, int OUT)
{
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IN, OUT, 1.0f, dout, OUT, w, IN,
                    1.0f, din, IN);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, B, 1.0f, dout, OUT, in, IN, 1.0f,
                dw, IN);
    if (db) {
        for (int r = 0; r < B; r++) {
            const float *d = dout + (size_t)r * OUT;
            for (int o = 0; o < OUT; o++)
                db[o] += d[o];
        }
    }
}

void kern_linear_backward_naive(float *din, float *dw, float *db, const float *dout,
                                const float *in, const float *w, int B, int IN, int OUT)
{
    for (int r = 0; r < B; r++) {
        const float *x = in + (size_t)r * IN;
        const float *d = dout + (size_t)r * OUT;
        for (int o = 0; o < OUT; o++) {
            const float *wo = w + (size_t)o * IN;
            float *dwo = dw + (size_t)o * IN;
            for (int i = 0; i < IN; i++) {
                if (din)
                    din[(size_t)r * IN + i] += d[o] * wo[i];
                dwo[i] += d[o] * x[i];
            }
            if (db)
                db[o] += d[o];
        }
    }
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
