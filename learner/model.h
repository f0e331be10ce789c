/* model.h — the pairwise scoring models the learner trains: NeuMF and the
 * DSSM two-tower model, behind one interface. A model scores (user row, item
 * row) pairs, owns its dense block, and says what vector of a row is
 * published. Not for: click-through models with features (ctr.h). */
#ifndef FR_MODEL_H
#define FR_MODEL_H

#include "dssm.h"
#include "neumf.h"

typedef enum { MODEL_NEUMF = 0, MODEL_DSSM } model_kind_t;

int model_kind_parse(const char *name); /* "neumf", "dssm"; -1 when unknown */
const char *model_kind_name(model_kind_t k);

typedef struct pairmodel pairmodel_t;

/* max_batch and seed are taken from the arguments, not from the configs. */
pairmodel_t *pairmodel_create(model_kind_t kind, const neumf_config_t *nc,
                              const dssm_config_t *dc, int max_batch, uint64_t seed,
                              char *errstr, size_t len);
void pairmodel_free(pairmodel_t *p);

model_kind_t pairmodel_kind(const pairmodel_t *p);
int pairmodel_row_width(const pairmodel_t *p);
dense_block_t *pairmodel_dense(pairmodel_t *p);
/* ufeat/ifeat: each pair's feature vector of the user/item tower (DSSM with
 * features; NULL otherwise), dfu/dfi their gradients (NULL likewise). */
void pairmodel_forward(pairmodel_t *p, float *logits, const float *const *urows,
                       const float *const *irows, const float *const *ufeat,
                       const float *const *ifeat, int B);
void pairmodel_backward(pairmodel_t *p, float *du, float *di, float *dfu, float *dfi,
                        const float *dlogits, int B);
/* worker learns master's weights (same kind and shape): its own
 * activations and gradients, the master's parameters. */
void pairmodel_share_params(pairmodel_t *worker, pairmodel_t *master);
/* Feature floats of the side's ('u', 'i') tower input: 0 but for DSSM with features. */
int pairmodel_feat_width(const pairmodel_t *p, char side);

/* What is published for a row: NeuMF the row itself; DSSM the normalised
 * tower output (so that a dot product of two published vectors is their
 * cosine). side is 'u' or 'i'. */
int pairmodel_vector_dim(const pairmodel_t *p);
void pairmodel_vector(pairmodel_t *p, char side, const float *row, const float *feat, float *out);
/* "gmf:0:32,mlp:32:64" (NeuMF) or "tower:0:64" (DSSM); the dense layout. */
int pairmodel_vector_layout(const pairmodel_t *p, char *buf, size_t len);
int pairmodel_dense_layout(const pairmodel_t *p, char *buf, size_t len);

#endif
