/* learner.h — online learning of a recommender from a stream of positive
 * events, one micro-batch at a time:
 *
 *   touch ids → (sampled) prequential eval → rolling buffer → negatives
 *   → forward → loss → backward → sparse row updates + dense Adam → dirty ids
 *
 * It owns the user and item tables, the rolling buffer, the sampler and the
 * model. It knows nothing of Kafka, Redis or wire formats: ids arrive as a
 * 64-bit hash plus their bytes (proto/id.h computes the hash). */
#ifndef FR_LEARNER_H
#define FR_LEARNER_H

#include "dssm.h"
#include "feat.h"
#include "model.h"
#include "neumf.h"
#include "optim.h"
#include "sampler.h"
#include "serial.h"
#include "table.h"

#include <stddef.h>
#include <stdint.h>

#define LEARNER_MAX_THREADS 64

typedef enum { LOSS_BCE = 0, LOSS_BPR, LOSS_SOFTMAX } loss_kind_t;

int loss_kind_parse(const char *name); /* "bce", "bpr", "softmax"; -1 when unknown */
const char *loss_kind_name(loss_kind_t k);

typedef struct {
    uint64_t h;     /* 64-bit hash of the id bytes */
    const char *id; /* the id bytes, not NUL-terminated necessarily */
    size_t len;
} lrn_id_t;

typedef struct {
    lrn_id_t user, item;
    int64_t ts_ms;
    float weight;           /* 1 for a plain positive; more for a weightier kind */
    int negative;           /* 1: an explicit negative (e.g. an impression never clicked) */
    const void *payload;    /* the caller's bytes kept with a joined impression, or NULL */
    size_t payload_len;     /* (the learner ignores both) */
    const lrn_feat_t *feat; /* the user's and the item's features (DSSM), or NULL */
    int nfeat;
} lrn_event_t;

typedef struct learner_config {
    char kind[MODEL_NAME_MAX]; /* a model of the table (model.h); default: model_default(0) */
    neumf_config_t model;      /* NeuMF's shape */
    dssm_config_t towers; /* the towers' shape (dssm.c; ufeat/ifeat follow from the fields below) */
    /* DSSM tower features (feat.h): categorical and dense fields of the user
     * tower (ucat, unum) and of the item tower (icat, inum); all 0 (default):
     * the towers see the id rows only. Values are admitted like ids
     * (admit_after) and learned with the rows' optimizer and lr_sparse. */
    int ucat, unum, icat, inum;
    int feat_dim;       /* floats per categorical value (default 8) */
    int feat_hash_bits; /* 0 (default): exact values; else 2^bits rows per field */
    float feat_clip;    /* normalised dense values clipped to ±clip (default 5) */
    int negatives;      /* k sampled negatives per positive (default 4) */
    samp_config_t sampler;
    loss_kind_t loss;
    int batch_events; /* events per micro-batch (default 256) */

    sparse_opt_t sparse_opt; /* rows: Adagrad (default) or SGD */
    float lr_sparse;         /* default 0.03 */
    float l2_sparse;         /* default 0 */
    float adagrad_eps;
    float lr_dense; /* Adam, default 0.005 */
    float l2_dense; /* default 0.00003 */
    float init_std; /* new rows: N(0, init_std), default 0.01 */

    size_t ring_capacity;        /* rolling buffer events (default 100000) */
    uint32_t admit_after;        /* occurrences before an id gets its own row (default 1) */
    int64_t expire_ms;           /* 0: rows never expire */
    size_t max_users, max_items; /* most ids a table keeps (0: no limit); past it the
                                  * least recently seen are evicted, down to 15/16 of it,
                                  * but for those the rolling buffer still refers to */

    double preq_rate;    /* share of events ranked before learning (default 0.01) */
    int preq_negatives;  /* items they are ranked against (default 100) */
    double ewma_alpha;   /* loss and prequential EWMA weight (default 0.01) */
    float clip_norm;     /* dense gradient L2 norm clipped to this (default 10; 0: off) */
    int history;         /* a history model's (MODEL_HISTORY) items per user: its
                          * representation reads the user's last `history` items
                          * (hist.h; default 8) */
    float history_decay; /* their weights: the j-th newest item's is decay^j
                          * (newest first, j from 0), normalised; 1: the plain
                          * mean (default 0.75) */
    float user_weight;   /* hmf: the user's own row enters the logit times this,
                          * beside their recent items (default 0.5) */
    float transition_lr; /* hmf: the Adam learning rate of the transition map
                          * (hmf.c), a dim x dim dense block; 0: no map
                          * (default 0) */
    float replay;        /* experience replay: after each micro-batch, this many
                          * events per event it learned (0..16; the fraction by
                          * chance) are drawn uniformly from the rolling buffer
                          * and learned again, in micro-batches of at most
                          * batch_events, with fresh negatives; they are not
                          * pushed into the buffer, ranked or counted as events
                          * (learner_stats_t.replayed). A history model draws a
                          * user at most once per micro-batch and leaves the
                          * replayed item out of that user's context. Not with
                          * shared. (default 0: off) */
    int threads;         /* threads of a micro-batch (default 1): each forwards and
                          * backwards a slice of the pairs with its own copy of the
                          * model (one set of weights), gradients are summed, users'
                          * and items' rows are updated in parallel. The result differs
                          * from one thread's only in the order of float sums. */
    int shared;          /* 1: one of several members that learn one model through
                          * an ordered log (proto/mlog.h). Item rows and the dense
                          * block change only by learner_apply_*, in log order, so
                          * every member's copy is the same; the gradients this
                          * member computes for them gather in a window that
                          * learner_window_take hands out. Users' rows are learned
                          * here at once. Items get a row at their first event
                          * (admit_after 1, never expired or evicted) whose values
                          * depend on the seed and the id alone. Needs a model
                          * without tower features or history. (default 0) */
    uint64_t seed;
} learner_config_t;

typedef struct {
    uint64_t events;    /* events learned, positives and explicit negatives */
    uint64_t negatives; /* explicit negatives learned (pointwise BCE, label 0) */
    uint64_t pairs;     /* (user, item) pairs trained on */
    uint64_t skipped;   /* events with no valid negative */
    uint64_t bad;       /* events refused (id too long, out of memory) */
    uint64_t batches;
    uint64_t nonfinite; /* micro-batches skipped: a non-finite loss or gradient */
    double loss_ewma;
    uint64_t preq_n;                         /* events ranked prequentially */
    double preq_hr10, preq_ndcg10;           /* cumulative means */
    double preq_hr10_ewma, preq_ndcg10_ewma; /* recent */
    emb_stats_t users, items;
    /* last, and not in checkpoints (learner_save keeps the fields above, as
     * it has since before replay): since the learner was created */
    uint64_t replayed; /* events learned again from the rolling buffer (replay) */
} learner_stats_t;

typedef struct learner learner_t;

void learner_config_default(learner_config_t *cfg);
/* learner_create checks cfg before it allocates (as engine_config_check
 * does, engine.h): NULL and a message on a bad one. */
learner_t *learner_create(const learner_config_t *cfg, char *errstr, size_t len);
void learner_free(learner_t *l);

/* Learns the events in order, in micro-batches of batch_events. A positive is
 * learned with its sampled negatives under the configured loss; an explicit
 * negative is learned pointwise (BCE with label 0) whatever the loss. Returns
 * the number of events accepted; refused ones are counted in stats.bad. */
size_t learner_learn(learner_t *l, const lrn_event_t *ev, size_t n);

/* Records that the events' users clicked their items, learning nothing: a
 * history model's (MODEL_HISTORY) users' last items move on, as a model
 * frozen between trainings is served with fresh features. A user new to
 * the learner gets an entry (its row as initialised); an item it does not
 * know, or an explicit negative, is not recorded. Other models: nothing.
 * Returns the events recorded. */
size_t learner_observe(learner_t *l, const lrn_event_t *ev, size_t n);

/* Scores (logits; higher is more relevant) of n items for one user, without
 * changing anything. Unknown ids score with the fallback rows. */
void learner_score(learner_t *l, const lrn_id_t *user, const lrn_id_t *items, int n, float *out);

/* Removes users and items unseen for expire_ms before now_ms (see
 * learner_config_t.expire_ms), except ids still in the rolling buffer, whose
 * entries the buffer refers to. Returns how many ids were removed. */
size_t learner_expire(learner_t *l, int64_t now_ms);

/* Called with every id that expiry or eviction removes ('u' or 'i'), while
 * its bytes are still readable: e.g. to delete its published vector. */
typedef void (*lrn_gone_fn)(void *arg, char side, const char *id, size_t len);
void learner_on_gone(learner_t *l, lrn_gone_fn fn, void *arg);

void learner_stats(const learner_t *l, learner_stats_t *out);

/* Everything learning depends on — both tables, the model's dense block with
 * its Adam state, the rolling buffer (and so the sampler's counts), the
 * random state and the counters — to w. Load into a fresh learner of the
 * same config: it then learns what the original would have, bit for bit.
 * -1 and a message on a short, corrupt or differently shaped stream (the
 * learner is then only fit for learner_free). */
int learner_save(const learner_t *l, ser_writer_t *w);
int learner_load(learner_t *l, ser_reader_t *r, char *errstr, size_t len);

/* The vector published for a user ('u') or item ('i') entry of the tables:
 * the model's vector of its row and, with tower features, the features it
 * last came with. out has learner_vector_dim floats, laid out as
 * learner_vector_layout says. (The dense block's description and the
 * hot-reloadable learning rates are the engine's: engine.h.) */
void learner_vector(learner_t *l, char side, uint32_t entry, float *out);
int learner_vector_dim(const learner_t *l);
int learner_vector_layout(const learner_t *l, char *buf, size_t len);

/* the model's dense block (parameters, gradients, Adam state) */
dense_block_t *learner_dense(learner_t *l);
emb_table_t *learner_users(learner_t *l);
emb_table_t *learner_items(learner_t *l);

/* Shared mode (learner_config_t.shared). What a window hands out, each
 * with the table it is of (LRN_TABLE_*; another engine numbers its own):
 *   row_grad   per shared row touched (the learner's: items): g, the sum of
 *              its micro-batch gradients, and gsq, the sum of their squares
 *              (R floats each);
 *   row_value  per owned row learned (the learner's: users): its row and
 *              optimizer state as they are now (learner_user_width floats);
 *   dense      the dense block's gradient sum over the window's micro-batches
 *              (once, when there was one), or what an engine merges as a whole.
 * Then the window starts again, empty. Returns its micro-batches. */
enum { LRN_TABLE_USERS = 0, LRN_TABLE_ITEMS = 1, LRN_TABLE_DENSE = 2 };
typedef struct {
    void (*row_grad)(void *arg, int table, const char *id, size_t len, const float *g,
                     const float *gsq, int R);
    void (*row_value)(void *arg, int table, const char *id, size_t len, const float *v, int width);
    void (*dense)(void *arg, int table, const float *g, size_t n);
} learner_window_sink_t;
size_t learner_window_take(learner_t *l, const learner_window_sink_t *sink, void *arg);
/* floats of a user's row_value: the row, then its optimizer state */
int learner_user_width(const learner_t *l);
/* Applies what a window handed out (this member's or another's), in log
 * order. An item's row, made if new, takes one step of the rows' optimizer
 * with g (Adagrad adds gsq to its squares, without the L2 term it adds to a
 * micro-batch's; Adam and SGD ignore gsq); a
 * user's row and state are set. A changed item is marked for publishing, a
 * user not (its owner, the member that learned it, publishes it).
 * 0, or -1 on a bad width or an id the table cannot take. */
/* The time (ms) the ids of the next applies count as seen at: the applied
 * record's, so that expiry and eviction treat them as the writer saw them. */
void learner_apply_at(learner_t *l, int64_t ts_ms);
int learner_apply_item_grad(learner_t *l, const char *id, size_t len, const float *g,
                            const float *gsq, int R);
int learner_apply_user_value(learner_t *l, const char *id, size_t len, const float *v, int width);
/* The dense block takes steps Adam steps (the window's micro-batches) with
 * the mean of its summed gradient g, each clipped as a micro-batch's: as
 * many steps as the member that learned them would have taken. -1 on a bad
 * n or steps, or a gradient that is not finite. */
int learner_apply_dense_grad(learner_t *l, const float *g, size_t n, uint32_t steps);
/* The same by a block's table (LRN_TABLE_*), the learner as a void pointer,
 * as mlog_apply (proto/mlog.h) and the engine call them: -1 for a table the
 * learner does not have. */
int learner_apply_row_grad(void *l, int table, const char *id, size_t len, const float *g,
                           const float *gsq, int R);
int learner_apply_row_value(void *l, int table, const char *id, size_t len, const float *v,
                            int width);
int learner_apply_dense(void *l, int table, const float *g, size_t n, uint32_t steps);

#endif
