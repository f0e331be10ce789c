/* engine.h — the one seam the daemon learns through, whichever model runs:
 * learn examples, expire and evict ids, read stats, publish vectors and the
 * dense block, checkpoint, and reload learning rates. The daemon never asks
 * which model it is; the table of models (models.c) says which engine learns
 * each: learner.c's (micro-batches, sampling, threads; every model with
 * forward/backward in its ops) or, for the click-through models still on
 * their own loop, ctr.c's.
 *
 * One example type for every model: lrn_event_t (learner.h) — user and item
 * ids, a positive or an explicit negative (label 0) with its weight, and
 * features (lrn_feat_t): a tower model's side features, or a click-through
 * model's fields (field = its index among the categorical or dense fields).
 *
 * Not for: Kafka, Redis or wire formats (daemon/, store/, proto/). */
#ifndef FR_ENGINE_H
#define FR_ENGINE_H

#include "ctr.h"
#include "learner.h"
#include "model.h"

#include <stddef.h>
#include <stdint.h>

/* What an engine is made from: the model's name and the shape every engine
 * reads its part of (modelcfg fills both from the config). */
typedef struct {
    char kind[MODEL_NAME_MAX];
    learner_config_t learner; /* learner.c's engine (its kind is set from kind) */
    ctr_config_t ctr;         /* ctr.c's (its head is set from kind's table entry) */
    int shared;               /* 1: one of several members learning one model through a model log
                               * (learner.h, shared mode); an engine without window_take refuses it */
} engine_config_t;

typedef struct {
    learner_stats_t lrn; /* events, negatives, loss, prequential HR, tables u/i */
    int progressive;     /* 1: auc and logloss are the model's progressive metrics */
    double auc, logloss;
} engine_stats_t;

typedef struct engine_ops {
    /* the [model] keys every model it learns reads, beyond those every model
     * reads (daemon/config.c): "negatives,sampler" */
    const char *keys;
    int (*check)(const engine_config_t *cfg, char *errstr, size_t len);
    void *(*create)(const engine_config_t *cfg, char *errstr, size_t len);
    void (*free)(void *e);
    /* Learns (or holds until flush) the examples; the engine copies what it
     * holds. Returns how many were accepted. */
    size_t (*learn)(void *e, const lrn_event_t *ev, size_t n);
    void (*flush)(void *e); /* learns what learn held; NULL: learn holds nothing */
    size_t (*expire)(void *e, int64_t now_ms);
    void (*on_gone)(void *e, lrn_gone_fn fn, void *arg);
    void (*stats)(const void *e, engine_stats_t *out);
    void (*set_lr)(void *e, float lr_sparse, float lr_dense);
    emb_table_t *(*table)(void *e, int k); /* 0 users, 1 items, then others; NULL past */
    int (*vector_dim)(const void *e);
    void (*vector)(void *e, char side, uint32_t entry, float *out);
    int (*vector_layout)(const void *e, char *buf, size_t len);
    int (*dense_layout)(const void *e, char *buf, size_t len);
    dense_block_t *(*dense)(void *e);
    int (*save)(const void *e, ser_writer_t *w);
    int (*load)(void *e, ser_reader_t *r, char *errstr, size_t len);
    /* Shared mode (learner.h: learner_window_take, learner_apply_*); NULL:
     * the engine's models cannot be shared by several members. Tables are
     * the engine's own numbers (learner.h: LRN_TABLE_*); an apply of a
     * table the engine does not have returns -1. */
    size_t (*window_take)(void *e, const learner_window_sink_t *sink, void *arg);
    int (*apply_row_grad)(void *e, int table, const char *id, size_t len, const float *g,
                          const float *gsq, int R);
    int (*apply_row_value)(void *e, int table, const char *id, size_t len, const float *v,
                           int width);
    int (*apply_dense)(void *e, int table, const float *g, size_t n, uint32_t steps);
    void (*apply_at)(void *e, int64_t ts_ms);
    /* a digest of the shared state beyond the dense block (engine_shared_digest);
     * NULL: the items' table (table 1) */
    uint64_t (*shared_digest)(void *e);
} engine_ops_t;

/* the learner's engine (learner.c): a model's ops.engine NULL means this one */
extern const engine_ops_t learner_engine;
/* the click-through engine (ctrengine.c): ctr.c's core with the model's head */
extern const engine_ops_t ctr_engine;

typedef struct engine engine_t;

/* The checks engine_create makes before it allocates (an unknown model
 * names the known ones): 0, or -1 and a message. */
int engine_config_check(const engine_config_t *cfg, char *errstr, size_t len);
engine_t *engine_create(const engine_config_t *cfg, char *errstr, size_t len);
void engine_free(engine_t *e);
const model_ops_t *engine_model(const engine_t *e);
/* 1 when model m or its engine reads [model] key (engine_ops_t.keys,
 * model_ops_t.keys), else 0. */
int engine_reads(const model_ops_t *m, const char *key);

size_t engine_learn(engine_t *e, const lrn_event_t *ev, size_t n);
void engine_flush(engine_t *e);
/* Ids unseen for the configured expire time, but those still referred to;
 * each removed user or item is told to the on_gone callback. */
size_t engine_expire(engine_t *e, int64_t now_ms);
void engine_on_gone(engine_t *e, lrn_gone_fn fn, void *arg);
void engine_stats(const engine_t *e, engine_stats_t *out);
void engine_set_lr(engine_t *e, float lr_sparse, float lr_dense); /* ≤ 0: unchanged */

emb_table_t *engine_table(engine_t *e, int k);
int engine_vector_dim(const engine_t *e);
void engine_vector(engine_t *e, char side, uint32_t entry, float *out);
int engine_vector_layout(const engine_t *e, char *buf, size_t len);
int engine_dense_layout(const engine_t *e, char *buf, size_t len);
dense_block_t *engine_dense(engine_t *e);

/* Shared mode (engine_config_t.shared; learner.h says what each does). The
 * apply functions take the engine as a void pointer, as mlog_apply
 * (proto/mlog.h) calls them. */
size_t engine_window_take(engine_t *e, const learner_window_sink_t *sink, void *arg);
int engine_apply_row_grad(void *e, int table, const char *id, size_t len, const float *g,
                          const float *gsq, int R);
int engine_apply_row_value(void *e, int table, const char *id, size_t len, const float *v,
                           int width);
int engine_apply_dense(void *e, int table, const float *g, size_t n, uint32_t steps);
void engine_apply_at(engine_t *e, int64_t ts_ms); /* learner_apply_at */
/* A digest of what members share: the shared rows with their optimizer
 * state (the items', or what the engine's shared_digest covers) and the dense
 * block with its moments; equal in members whose replicas hold the same
 * bytes. */
uint64_t engine_shared_digest(engine_t *e);

/* The model's name, then the engine's state; load refuses another model. */
int engine_save(const engine_t *e, ser_writer_t *w);
int engine_load(engine_t *e, ser_reader_t *r, char *errstr, size_t len);

#endif
