/* loss.h — the three training losses over the logits of a micro-batch.
 *
 * Logits come in B groups of G (one event each): index 0 of a group is the
 * positive item, indices 1..G-1 its sampled negatives. Every function returns
 * the mean loss over the batch and writes (not adds) dz = ∂loss/∂z.
 * gw (B) weights each group (an event's weight, e.g. a purchase counts more);
 * NULL means 1 for all. Not for: sampling or scoring (sampler.c, neumf.c). */
#ifndef FR_LOSS_H
#define FR_LOSS_H

/* Pointwise binary cross-entropy: label 1 for index 0, 0 for the negatives;
 * mean over the B·G pairs. */
float loss_bce(float *dz, const float *z, const float *gw, int B, int G);

/* Pointwise BCE with explicit labels y (n) in [0,1], mean over n (e.g. an
 * impression that was not clicked is a real negative). w (n) or NULL. */
float loss_bce_labels(float *dz, const float *z, const float *y, const float *w, int n);

/* Pairwise BPR: mean over the B·(G-1) pairs of −ln σ(z_pos − z_neg); 0 when G < 2. */
float loss_bpr(float *dz, const float *z, const float *gw, int B, int G);

/* Listwise sampled softmax / InfoNCE: mean over groups of
 * −log softmax(z − logq)[0]. logq (B,G) is the log of the probability that the
 * sampler draws each item (logQ correction, Yi et al. 2019); NULL for none. */
float loss_softmax(float *dz, const float *z, const float *logq, const float *gw, int B, int G);

#endif
