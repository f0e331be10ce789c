/* optim.h — optimizers: SGD, Adagrad and Adam for sparse embedding rows (only
 * the rows a micro-batch touched are updated), Adam for a model's dense block.
 * L2 regularisation is added to the gradient (λ·w) of what is updated.
 * Not for: deciding which rows were touched (the learner does that). */
#ifndef FR_OPTIM_H
#define FR_OPTIM_H

#include "serial.h"

#include <stddef.h>

typedef enum { OPT_SGD = 0, OPT_ADAGRAD = 1, OPT_ADAM = 2 } sparse_opt_t;

/* "sgd", "adagrad" or "adam": the optimizer, or -1. */
int sparse_opt_parse(const char *s);
const char *sparse_opt_name(sparse_opt_t opt);
/* The optimizer-state floats a row of n parameters carries: none for SGD,
 * n for Adagrad, 2n + 1 for Adam (the moments and the row's step count). */
int optim_state_floats(sparse_opt_t opt, int n);

/* w -= lr·(g + l2·w) */
void optim_sgd(float *w, const float *g, int n, float lr, float l2);
/* acc += (g + l2·w)²; w -= lr·(g + l2·w) / (√acc + eps) */
void optim_adagrad(float *w, float *acc, const float *g, int n, float lr, float l2, float eps);
/* Shared mode's step of a window: acc += gsq (the window's sum of squared
 * gradients, without the l2 term); w -= lr·(g + l2·w) / (√acc + eps) */
void optim_adagrad_sum(float *w, float *acc, const float *g, const float *gsq, int n, float lr,
                       float l2, float eps);
/* Adam on one row with its own step count, as if the row were a parameter of
 * its own (β 0.9, 0.999): st is m (n), v (n), then t. A row's first step
 * moves each element by lr against its gradient's sign, as SparseAdam's does. */
void optim_adam_row(float *w, float *st, const float *g, int n, float lr, float l2, float eps);
/* One step of row w (n floats, its state st) by optimizer opt. */
void optim_row(sparse_opt_t opt, float *w, float *st, const float *g, int n, float lr, float l2,
               float eps);

/* A model's dense parameters, llm.c style: one contiguous block, and the
 * gradients and Adam moments in the same layout, so an update is one loop and
 * a checkpoint is the block itself. */
typedef struct {
    float *params; /* (n) */
    float *grads;  /* (n) */
    float *m;      /* (n) Adam first moment */
    float *v;      /* (n) Adam second moment */
    size_t n;
    long t;      /* Adam step count */
    float *base; /* the allocation (params may point into another block's) */
} dense_block_t;

int dense_block_init(dense_block_t *d, size_t n);
void dense_block_free(dense_block_t *d);
/* Makes d read and write the parameters of `owner` (same size): a worker's
 * copy of a model keeps its own gradients and activations but learns the
 * one set of weights. */
void dense_block_share_params(dense_block_t *d, const dense_block_t *owner);
void dense_block_zero_grad(dense_block_t *d);
/* One bias-corrected Adam step over the whole block. */
void dense_block_adam(dense_block_t *d, float lr, float beta1, float beta2, float eps, float l2);

/* The dense step of every engine after a backward: the NaN guard (a
 * gradient of non-finite L2 norm: nothing is updated, -1, and the caller
 * skips the batch), clipping of the gradient to L2 norm clip_norm (0: none),
 * then one Adam step (β 0.9, 0.999, ε 1e-8). 0 when it stepped. */
int dense_block_step(dense_block_t *d, float clip_norm, float lr, float l2);
/* Shared mode: a window's gradient sum g (n floats, the block's size) over
 * steps micro-batches applied as steps dense steps with its mean, each as a
 * micro-batch's; gradients zeroed after. -1 on a bad n or steps, or a step
 * that met a gradient that is not finite. */
int dense_block_apply_sum(dense_block_t *d, const float *g, size_t n, uint32_t steps,
                          float clip_norm, float lr, float l2);
/* Σ grads², in double: not finite when a gradient is not */
double dense_block_grad_sq(const dense_block_t *d);

/* Parameters, Adam moments and step count (gradients are per step: not kept).
 * Load refuses a block of another size. */
int dense_block_save(const dense_block_t *d, ser_writer_t *w);
int dense_block_load(dense_block_t *d, ser_reader_t *r, char *errstr, size_t len);

#endif
