/* model.h — the one interface every model the learner trains sits behind,
 * ggml-style: an ops table per model (its own file: neumf.c, dssm.c, …) and
 * one table of models (models.c), looked up by name. The learner (learner.c)
 * owns the tables of rows, sampling, losses, threads and updates; a model
 * scores (user row, item row) pairs, owns its dense block, and says what
 * vector of a row is published and how it is laid out.
 *
 * Adding a model is its file plus one line in models.c: nothing outside
 * those asks which model runs. Not for: sampling, losses or row updates
 * (learner.c), wire formats (proto/). */
#ifndef FR_MODEL_H
#define FR_MODEL_H

#include "optim.h"
#include "serial.h"

#include <stddef.h>
#include <stdint.h>

#define MODEL_NAME_MAX 16

struct learner_config;
struct engine_ops;
struct ctr_head;

/* flags of a model */
#define MODEL_FEATURES 1u /* the towers take the side's features (ucat, unum, icat, inum) */
#define MODEL_RANKS 2u    /* prequential HR@10/NDCG@10 of the event's item among sampled ones */
#define MODEL_FIELDS                                                                               \
    4u /* click-through: user, item and the configured features are the                            \
        * example's fields; labelled examples, progressive AUC/logloss */

/* the user side's features (ufeat; learner_vector's feat) are the weighted
 * mean of the rows of the user's last learner_config_t.history items
 * (hist.h; the newer the heavier, history_decay), a row's width of floats,
 * zeros for a user with none; not with MODEL_FEATURES. The learner sends
 * its gradient (dfu) into those rows, each its weight's share. */
#define MODEL_HISTORY 8u

typedef struct model_ops {
    const char *name; /* as the config and the CLI spell it (neumf) */
    unsigned flags;   /* MODEL_* */
    /* the [model] keys it reads beyond those of its engine (engine_ops_t)
     * and those every model reads (daemon/config.c): "mlp" (NULL: none) */
    const char *keys;
    /* the engine that learns it (engine.h); NULL: the learner's (learner.c),
     * which needs every op below */
    const struct engine_ops *engine;
    /* what a click-through model adds to ctr_engine's shared core (ctr.h);
     * NULL for the others */
    const struct ctr_head *head;

    /* A model of the config's shape for forwards of at most max_batch pairs;
     * ufeat/ifeat: the feature floats the learner gathers for each side (0
     * unless MODEL_FEATURES). NULL and a message on failure. free(NULL) does
     * nothing. */
    void *(*create)(const struct learner_config *cfg, int max_batch, int ufeat, int ifeat,
                    char *errstr, size_t len);
    void (*free)(void *m);

    /* floats of a user ('u') or item ('i') row in the learner's tables */
    int (*row_width)(const void *m, char side);
    dense_block_t *(*dense)(void *m);

    /* logits (B) of the pairs (urows[b], irows[b]) with their features
     * (ufeat/ifeat, NULL when the side has none); keeps what backward needs. */
    void (*forward)(void *m, float *logits, const float *const *urows, const float *const *irows,
                    const float *const *ufeat, const float *const *ifeat, int B);
    /* Backward of the last forward: adds into the dense gradients, writes the
     * row gradients du (B, row_width 'u') and di (B, row_width 'i') and the
     * feature gradients dfu/dfi (NULL when the side has none). Only a row's
     * sum over its pairs need be its gradient (see neumf.h on runs). */
    void (*backward)(void *m, float *du, float *di, float *dfu, float *dfi, const float *dlogits,
                     int B);
    /* worker learns master's weights (same model and shape): its own
     * activations and gradients, the master's parameters. NULL: the dense
     * blocks share their parameters (model_share_params). */
    void (*share_params)(void *worker, void *master);

    /* What is published for a row of side 'u' or 'i' (with the features it
     * last came with, or NULL): vector_dim floats, laid out as vector_layout
     * says ("gmf:0:32,mlp:32:64"); the dense block as dense_layout says.
     * Each may be NULL for its default (the model_* functions below): the
     * row itself is published, laid out as "<name>:0:<dim>"; no dense
     * block to describe (""). */
    int (*vector_dim)(const void *m);
    void (*vector)(void *m, char side, const float *row, const float *feat, float *out);
    int (*vector_layout)(const void *m, char *buf, size_t len);
    int (*dense_layout)(const void *m, char *buf, size_t len);

    /* The Adam learning rate of its dense block; NULL: the config's
     * lr_dense (hmf's transition map has its own, transition_lr). */
    float (*dense_lr)(const void *m);

    /* State of the model's own beyond its dense block (which the learner
     * saves); NULL when there is none. */
    int (*save)(const void *m, ser_writer_t *w);
    int (*load)(void *m, ser_reader_t *r, char *errstr, size_t len);
} model_ops_t;

/* The ops that may be NULL, with their defaults (models.c): what the
 * learner calls. */
void model_share_params(const model_ops_t *o, void *worker, void *master);
int model_vector_dim(const model_ops_t *o, const void *m);
void model_vector(const model_ops_t *o, void *m, char side, const float *row, const float *feat,
                  float *out);
int model_vector_layout(const model_ops_t *o, const void *m, char *buf, size_t len);
int model_dense_layout(const model_ops_t *o, const void *m, char *buf, size_t len);

/* The table of models (models.c). */
const model_ops_t *model_find(const char *name); /* NULL when unknown */
const model_ops_t *model_at(int i);              /* i-th model, NULL past the last */
/* The default model among those with every one of flags (0: the default of
 * all); NULL when none has them. */
const model_ops_t *model_default(unsigned flags);
/* "neumf, dssm, …" into buf: the names, for messages; _with: of the models
 * with every one of flags. */
void model_names(char *buf, size_t len);
void model_names_with(unsigned flags, char *buf, size_t len);

#endif
