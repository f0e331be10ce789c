/* neumf.h — NeuMF (He et al. 2017): a GMF branch p_u ⊙ q_i and an MLP tower
 * over [p'_u ; q'_i], joined by one output unit (a logit; σ of it is the
 * predicted probability).
 *
 * The model owns only its dense block (MLP and output weights). The embedding
 * rows live in the learner's tables; a row of a user or item is
 * [gmf (dim) | mlp (mlp[0]/2)] floats, and the caller hands the model one row
 * pointer per pair. Not for: sampling, losses or sparse updates. */
#ifndef FR_NEUMF_H
#define FR_NEUMF_H

#include "optim.h"

#include <stddef.h>
#include <stdint.h>

#define NEUMF_MAX_LAYERS 8

typedef struct {
    int dim;                   /* GMF factors (default 32) */
    int mlp[NEUMF_MAX_LAYERS]; /* mlp[0] = width of [p'_u ; q'_i]; then hidden sizes */
    int nmlp;                  /* entries used in mlp (≥ 2) */
    int max_batch;             /* most pairs one forward may take */
    int naive;                 /* 1: plain-loop kernels (the reference) */
    uint64_t seed;
} neumf_config_t;

typedef struct neumf neumf_t;

/* Defaults: dim 32, MLP 64-32-16-8, max_batch 2048. */
void neumf_config_default(neumf_config_t *cfg);
neumf_t *neumf_create(const neumf_config_t *cfg, char *errstr, size_t len);
void neumf_free(neumf_t *m);

int neumf_row_width(const neumf_t *m);  /* floats per user or item row */
dense_block_t *neumf_dense(neumf_t *m); /* the dense block, for the optimizer */

/* The dense block and a row are described by the model's ops (model.h):
 * "W1:32x64,b1:32,W2:16x32,b2:16,W3:8x16,b3:8,wout:40,bout:1" (W is (out,
 * in), row-major; wout weighs [GMF ; last MLP layer]) and
 * "gmf:0:32,mlp:32:64" (half-open float ranges). */

/* Initialises one embedding row (N(0, std) for every float). */
void neumf_init_row(const neumf_t *m, float *row, uint64_t seed, float std);

/* logits (B) for the pairs (urows[b], irows[b]); B ≤ max_batch. Keeps what
 * backward needs until the next forward. */
void neumf_forward(neumf_t *m, float *logits, const float *const *urows, const float *const *irows,
                   int B);

/* Backward of the last forward: adds into the dense gradients and writes the
 * row gradients du (B, row_width) and di (B, row_width). Neighbouring pairs
 * given the same user row pointer are one run: the MLP part of the run's
 * user gradient is written on its first pair and zeros on the others, so
 * only a row's sum over its pairs is its gradient (what the learner uses). */
void neumf_backward(neumf_t *m, float *du, float *di, const float *dlogits, int B);

#endif
