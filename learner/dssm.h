/* dssm.h — DSSM two-tower model (Huang et al. 2013) for retrieval: a user
 * tower and an item tower, each an MLP (ReLU between layers, none after the
 * last) from the id's embedding row, followed by the side's feature vector
 * when it has features (ufeat/ifeat floats: the learner gathers them from
 * feature embeddings and normalised dense values), to a vector y that is
 * L2-normalised;
 * relevance = cosine(y_u, y_i); the logit handed to the loss is γ·cosine (γ:
 * the smoothing factor of the softmax over the positive and its negatives; use
 * the learner's softmax loss with logQ correction for sampled or in-batch
 * negatives).
 *
 * Same shape of interface as neumf.h: the model owns its dense block (both
 * towers); embedding rows (dim floats) live in the learner's tables.
 * Not for: sampling, losses or sparse updates. */
#ifndef FR_DSSM_H
#define FR_DSSM_H

#include "optim.h"

#include <stddef.h>
#include <stdint.h>

#define DSSM_MAX_LAYERS 8

typedef struct {
    int dim;                    /* id embedding floats per row (default 64) */
    int tower[DSSM_MAX_LAYERS]; /* widths of each tower's layers; the last is the output */
    int ntower;                 /* default 2 layers: 128, 64 */
    float gamma;                /* logit = gamma · cosine (default 10) */
    int ufeat, ifeat;           /* feature floats after the row in each tower's input (default 0) */
    int max_batch;              /* most pairs one forward may take (default 2048) */
    int naive;                  /* 1: plain-loop kernels (the reference) */
    uint64_t seed;
} dssm_config_t;

typedef struct dssm dssm_t;

void dssm_config_default(dssm_config_t *cfg);

dssm_t *dssm_create(const dssm_config_t *cfg, char *errstr, size_t len);
void dssm_free(dssm_t *m);

int dssm_row_width(const dssm_t *m); /* = dim */
int dssm_out_dim(const dssm_t *m);   /* the towers' output width */
dense_block_t *dssm_dense(dssm_t *m);
/* "U1:128x64,ub1:128,U2:64x128,ub2:64,I1:128x64,ib1:128,I2:64x128,ib2:64": the
 * dense block in order, user tower then item tower (W is (out, in) row-major;
 * gamma is a fixed config value, not a parameter). 0, or -1 if len is too small. */
int dssm_dense_layout(const dssm_t *m, char *buf, size_t len);

/* logits (B) = gamma · cos(user_tower([urows[b] ; ufeat[b]]),
 * item_tower([irows[b] ; ifeat[b]])); B ≤ max_batch. ufeat (ifeat) is read
 * only when ufeat (ifeat) > 0 in the config, and may be NULL otherwise. Keeps
 * what backward needs until the next forward. */
void dssm_forward(dssm_t *m, float *logits, const float *const *urows, const float *const *irows,
                  const float *const *ufeat, const float *const *ifeat, int B);
/* Backward of the last forward: adds into the dense gradients and writes the
 * row gradients du (B, dim) and di (B, dim), and the feature gradients dfu
 * (B, ufeat) and dfi (B, ifeat) (each may be NULL when that width is 0). The
 * tower output is normalised as y = z / sqrt(‖z‖² + 1e-12), smooth at z = 0,
 * so this is its exact gradient. */
void dssm_backward(dssm_t *m, float *du, float *di, float *dfu, float *dfi, const float *dlogits,
                   int B);

/* The L2-normalised tower output (out_dim floats) of one row: what is
 * published, so that a dot product of a user's and an item's vectors is their
 * cosine. Uses scratch of its own: the last forward stays valid for backward
 * (but the calls are not thread-safe on one model). */
void dssm_user_vector(dssm_t *m, float *out, const float *row, const float *feat);
void dssm_item_vector(dssm_t *m, float *out, const float *row, const float *feat);

#endif
