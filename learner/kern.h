/* kern.h — the learner's dense linear-algebra kernels.
 *
 * Every cblas call of freshrec lives in kern.c, behind these functions. Each
 * BLAS-backed kernel has a plain-loop `_naive` twin with the same contract;
 * tests compare the two and benchmarks use the twin as a reference.
 * Not for: anything sparse (embedding rows are handled by table.c/optim.c). */
#ifndef FR_KERN_H
#define FR_KERN_H

/* Limit OpenBLAS to n threads (freshrec parallelises at its own level). */
void kern_set_threads(int n);

/* out (B,OUT) = in (B,IN) · w^T + b, with w (OUT,IN) row-major, b (OUT) or NULL. */
void kern_linear_forward(float *out, const float *in, const float *w, const float *b, int B, int IN,
                         int OUT);
void kern_linear_forward_naive(float *out, const float *in, const float *w, const float *b, int B,
                               int IN, int OUT);

/* Backward of kern_linear_forward; adds into every gradient it is given:
 * din (B,IN) += dout·w; dw (OUT,IN) += dout^T·in; db (OUT) += Σ_b dout.
 * din and db may be NULL when not wanted. */
void kern_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                          const float *w, int B, int IN, int OUT);
void kern_linear_backward_naive(float *din, float *dw, float *db, const float *dout,
                                const float *in, const float *w, int B, int IN, int OUT);

/* The same with w's rows (and dw's) ldw ≥ IN floats apart, i.e. w a block of
 * columns of a wider matrix; backward writes din (din_beta 0: what din held
 * is not read) or adds into it (din_beta 1), din's rows ldd ≥ IN floats
 * apart (a block of columns of a wider array too). */
void kern_linear_forward_ld(float *out, const float *in, const float *w, int ldw, const float *b,
                            int B, int IN, int OUT);
void kern_linear_forward_ld_naive(float *out, const float *in, const float *w, int ldw,
                                  const float *b, int B, int IN, int OUT);
void kern_linear_backward_ld(float *din, int ldd, float din_beta, float *dw, float *db,
                             const float *dout, const float *in, const float *w, int ldw, int B,
                             int IN, int OUT);
void kern_linear_backward_ld_naive(float *din, int ldd, float din_beta, float *dw, float *db,
                                   const float *dout, const float *in, const float *w, int ldw,
                                   int B, int IN, int OUT);

/* y (N) = A (N,K) · x (K): scores of N rows against one vector. */
void kern_gemv(float *y, const float *A, const float *x, int N, int K);
void kern_gemv_naive(float *y, const float *A, const float *x, int N, int K);

#endif
