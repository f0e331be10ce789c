/* ctr.h — the shared core of the click-through models learned online from
 * labelled examples: logistic regression (the baseline, lr.c), Wide & Deep
 * (Cheng et al. 2016, widedeep.c) and Deep & Cross (Wang et al. 2017,
 * dcn.c). The core (ctr.c) never asks which of them runs: a model is its
 * head (ctr_head_t below), which says which shared parts it uses (the wide
 * part, the deep MLP) and adds its own forward, backward and parameters.
 *
 * An example has categorical features (field → value id) and dense features
 * (field → number), and a label (clicked or not). Fields are numbered by the
 * caller (0..ncat−1 and 0..nnum−1); the user and the item are simply two
 * categorical fields. Each categorical field has an embedding table (exact ids
 * with admission, or the hashing trick with hash_bits); dense features are
 * normalised online. Learning is progressive: every example is predicted
 * before it is learned, and those predictions feed AUC and logloss.
 *
 *   lr        σ(wide)
 *   widedeep  σ(wide + deep): wide = bias + hashed weights of every (field,
 *             value) and of the configured crosses; deep = MLP over
 *             [field embeddings ; normalised dense features]
 *   dcn       σ(w · [cross_L(x0) ; MLP(x0)] + b), x0 as deep's input
 *
 * Not for: wire formats, files (daemon/), pairwise retrieval models
 * (learner.c), what one model adds (its own file). */
#ifndef FR_CTR_H
#define FR_CTR_H

#include "learner.h"
#include "rng.h"
#include "table.h"

#include <stddef.h>
#include <stdint.h>

#define CTR_MAX_FIELDS 64
#define CTR_MAX_CROSSES 32
#define CTR_MAX_LAYERS 8
#define CTR_MAX_THREADS 64

typedef struct {
    int field;
    lrn_id_t value;
} ctr_cat_t;

typedef struct {
    int field;
    float value;
} ctr_num_t;

typedef struct {
    const ctr_cat_t *cat;
    int ncat;
    const ctr_num_t *num;
    int nnum;
    float label; /* 1 clicked, 0 not */
    float weight;
    int64_t ts_ms;
} ctr_example_t;

struct ctr_head;

typedef struct {
    const struct ctr_head *head; /* the model (its file; model_ops_t.head); no default */
    int ncat, nnum;              /* fields */
    int emb_dim;                 /* per categorical field (default 8) */
    int hash_bits;               /* 0: exact ids with admission; else ids hashed to 2^bits rows */
    uint32_t admit_after;
    int mlp[CTR_MAX_LAYERS]; /* hidden widths of the deep part (default 64, 32) */
    int nmlp;
    int cross_layers;              /* cross layers of a head that has them (default 3) */
    int wide_bits;                 /* wide weights: 2^bits (default 20) */
    int cross[CTR_MAX_CROSSES][2]; /* pairs of categorical fields crossed in the wide part */
    int ncross;
    float lr_sparse; /* Adagrad: embedding rows and wide weights (default 0.1) */
    float lr_dense;  /* Adam (default 0.003) */
    float l2_sparse, l2_dense;
    float clip;        /* normalised dense features are clipped to ±clip (default 5) */
    int batch;         /* examples per micro-batch (default 64) */
    size_t auc_window; /* progressive AUC over this many (default 10000) */
    int64_t expire_ms; /* rows unseen this long go at the next expiry (emb_expire); 0: never */
    float clip_norm;   /* dense gradient L2 norm clipped to this (default 10; 0: off) */
    int naive;         /* 1: plain-loop kernels (the reference) */
    int shared;        /* 1: one of several members that learn one model through an
                        * ordered log, as the learner's shared mode (learner.h). The
                        * user field (0) with exact ids is owned: its rows are learned
                        * here at once and handed out as values. Every other field's
                        * rows, the wide weights, the dense block and the normaliser's
                        * statistics change only by ctr_apply_*, in log order, so every
                        * member's copy is the same; what this member computes for them
                        * gathers in a window that ctr_window_take hands out. Shared
                        * rows are made at a value's first example (admit_after 1) with
                        * values that depend on the seed and the value alone, and are
                        * never expired. With hash_bits the user field is shared too
                        * (a bucket is no one's). (default 0) */
    int threads;       /* threads of a micro-batch (default 1): each forwards and backwards
                        * a slice of the examples, the dense gradients are summed; the
                        * result differs from one thread's only in the order of float
                        * sums. Gathering and row updates stay on the caller's thread. */
    uint64_t seed;
} ctr_config_t;

typedef struct {
    uint64_t examples, positives;
    double auc;            /* progressive, over the window */
    double logloss;        /* progressive, over everything */
    double window_logloss; /* progressive, over the window */
    double loss_ewma;
    uint64_t nonfinite; /* batches skipped for a non-finite loss */
    emb_stats_t tables; /* all field tables together */
} ctr_stats_t;

typedef struct ctr ctr_t;

/* The shared parts a head may use (ctr_head_t.parts). */
#define CTR_WIDE                                                                                   \
    1u              /* wide: the hashed weights of every (field, value) and configured cross,      \
                     * and wnum (nnum) on the normalised dense features, summed into the           \
                     * logit with the bias; Adagrad on the hashed weights */
#define CTR_DEEP 2u /* deep: the MLP (cfg.mlp, ReLU) over x0; its output h (B, H) */

/* One forward or backward of a micro-batch, as a head sees it. */
typedef struct {
    const ctr_config_t *cfg;
    int B, X, H;       /* examples; x0 width; deep output width (0 without CTR_DEEP) */
    const float *x0;   /* (B, X) [field embeddings in field order ; normalised dense] */
    float *dx0;        /* (B, X) backward: zeroed before the head, which adds */
    const float *deep; /* (B, H) the deep part's output; NULL without CTR_DEEP */
    float *ddeep;      /* (B, H) backward: zeroed before the head, which adds */
    const float *w;    /* the head's own dense parameters (ctr_head_t.size floats) */
    float *dw;         /* and their gradients (added into) */
    const float *bias; /* (1) the model's bias, the dense block's last float */
    float *dbias;
    float *logits;   /* (B) forward: see ctr_head_t.forward */
    const float *dz; /* (B) backward: ∂loss/∂logit */
    void *ws;        /* what the head's create returned (one per thread) */
} ctr_pass_t;

/* A click-through model's own part, ggml-style: the shared core calls it and
 * never asks which model it is. Every function may be NULL (none: the head
 * adds nothing; lr is CTR_WIDE alone). The dense block is, in order: the
 * deep part's W_l (mlp[l], in_l), b_l (mlp[l]) (with CTR_DEEP), the head's
 * own size floats, wnum (nnum) (with CTR_WIDE), bias (1). */
typedef struct ctr_head {
    unsigned parts; /* CTR_WIDE | CTR_DEEP */
    /* the checks of the head's own keys, after the shared ones: 0 or -1 */
    int (*check)(const ctr_config_t *cfg, char *errstr, size_t len);
    /* floats of its own dense parameters, their initial values (drawn from r
     * after the deep part's), and their description ("wout:59,": each
     * ending in a comma) appended to buf; 0 or -1 when it does not fit */
    size_t (*size)(const ctr_config_t *cfg, int X, int H);
    void (*init)(float *w, const ctr_config_t *cfg, int X, int H, rng_t *r);
    int (*layout)(char *buf, size_t len, const ctr_config_t *cfg, int X, int H);
    /* its workspace for slices of at most maxb examples (one per thread);
     * NULL when out of memory */
    void *(*create)(const ctr_config_t *cfg, int X, int H, int maxb);
    void (*free)(void *ws);
    /* logits: with CTR_WIDE they hold bias + the wide part's sum and the
     * head adds its own; without, the head writes them (the bias is its). */
    void (*forward)(ctr_pass_t *p);
    /* adds into dw, dbias (without CTR_WIDE), dx0, ddeep */
    void (*backward)(ctr_pass_t *p);
} ctr_head_t;

void ctr_config_default(ctr_config_t *cfg);

/* The checks ctr_create makes on cfg before it allocates: 0, or -1 and a message. */
int ctr_config_check(const ctr_config_t *cfg, char *errstr, size_t len);
ctr_t *ctr_create(const ctr_config_t *cfg, char *errstr, size_t len);
void ctr_free(ctr_t *c);

/* Predicts every example (progressive validation), then learns it; in
 * micro-batches of cfg.batch. Returns how many were learned. */
size_t ctr_learn(ctr_t *c, const ctr_example_t *ex, size_t n);
/* Hot-reloadable learning rates (≤ 0 leaves one as it is). */
void ctr_set_lr(ctr_t *c, float lr_sparse, float lr_dense);
/* Click probabilities without learning. */
void ctr_predict(ctr_t *c, const ctr_example_t *ex, size_t n, float *p);
void ctr_stats(const ctr_t *c, ctr_stats_t *out);

/* A categorical field's table (rows of emb_dim floats; rows that learning
 * changed are marked dirty), for publishing; NULL for a bad field. */
emb_table_t *ctr_table(ctr_t *c, int field);
int ctr_emb_dim(const ctr_t *c);
/* The dense block described for readers, in order, e.g.
 * "W1:64x27,b1:64,W2:32x64,b2:32,cw1:27,cb1:27,...,wout:59,bias:1"
 * (W is (out, in) row-major; x0 = [field embeddings in field order ; dense
 * features]). The wide weights are hashed and not part of it. 0 or -1. */
int ctr_dense_layout(const ctr_t *c, char *buf, size_t len);

/* Everything learned (field tables, normaliser, wide weights, dense block
 * with its Adam state, counters) to w; load into a fresh model of the same
 * config. -1 and a message on a short, corrupt or differently shaped stream
 * (the model is then only fit for ctr_free). Progressive-validation windows
 * start empty after a load. */
int ctr_save(const ctr_t *c, ser_writer_t *w);
int ctr_load(ctr_t *c, ser_reader_t *r, char *errstr, size_t len);

/* Shared mode (ctr_config_t.shared). The tables a window's blocks name
 * (learner_window_sink_t): rows of field f are table f (row values for the
 * owned user field, row gradients for the others: E floats of g, E of gsq);
 * CTR_TABLE_WIDE: the wide weights, row gradients of width 1 whose id is the
 * weight's index in decimal; dense blocks: LRN_TABLE_DENSE, the dense block's
 * gradient sum over the window's micro-batches, and CTR_TABLE_NORM, the
 * window's statistics of each dense feature (count, mean, standard
 * deviation: 3 floats each), merged into the normaliser's. lr sends no
 * field rows: its rows get no gradient. */
enum { CTR_TABLE_NORM = 3, CTR_TABLE_WIDE = 200 };
/* Hands out the window and starts it again, empty. Returns its micro-batches. */
size_t ctr_window_take(ctr_t *c, const learner_window_sink_t *sink, void *arg);
/* The owned row of field's entry leaves the window (the entry was freed). */
void ctr_window_drop(ctr_t *c, int field, uint32_t entry);
/* Applies a window's block entry (this member's or another's), in log
 * order: a row gradient takes one Adagrad step (gsq added to the squares), a
 * row value is set, the dense gradient takes steps Adam steps with its mean,
 * normaliser statistics are merged. 0, or -1 for a table or width the model
 * does not have, or an id a table cannot take. */
int ctr_apply_row_grad(ctr_t *c, int table, const char *id, size_t len, const float *g,
                       const float *gsq, int R);
int ctr_apply_row_value(ctr_t *c, int table, const char *id, size_t len, const float *v, int width);
int ctr_apply_dense(ctr_t *c, int table, const float *g, size_t n, uint32_t steps);
/* the time (ms) the rows of the next applies count as seen at */
void ctr_apply_at(ctr_t *c, int64_t ts_ms);
/* A digest of the shared state but the dense block: the shared fields' rows
 * with their Adagrad state, the wide weights, the normaliser. */
uint64_t ctr_shared_digest(const ctr_t *c);
/* 1 when field f's rows are shared (shared mode, not the owned user field) */
int ctr_field_shared(const ctr_t *c, int f);

/* For gradient checks and readers of the model. */
dense_block_t *ctr_dense(ctr_t *c);
/* The embedding row of a field's value (admitted if new). */
float *ctr_row(ctr_t *c, int field, const lrn_id_t *value);
/* Mean BCE of n ≤ batch examples without learning (the normaliser is not
 * updated); fills the dense gradients (zeroed first) and, when dx0 is not
 * NULL, the gradient of every example's input x0 (n, ncat·emb_dim + nnum),
 * whose first ncat·emb_dim floats are the gradients of its embedding rows. */
float ctr_loss_grad(ctr_t *c, const ctr_example_t *ex, int n, float *dx0);
/* The wide weight of the k-th wide feature (k < ncat + ncross) of example b of
 * the last ctr_loss_grad, or NULL without CTR_WIDE. */
float *ctr_wide_weight(ctr_t *c, int b, int k);
/* ∂loss/∂logit of example b of the last ctr_loss_grad. */
float ctr_last_dlogit(const ctr_t *c, int b);

#endif
