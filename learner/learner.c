/* learner.c — the online training step (see learner.h). */
#include "learner.h"

#include "hist.h"
#include "id.h"

#include "engine.h"
#include "loss.h"
#include "pool.h"
#include "rank.h"
#include "ring.h"
#include "rows.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The counters a checkpoint holds: learner_stats_t up to replayed, the
 * record checkpoints have held since before replay */
#define LEARNER_STATS_SAVED offsetof(learner_stats_t, replayed)

struct learner {
    learner_config_t cfg;
    emb_table_t *users, *items;
    ring_t *ring;
    sampler_t *samp;
    const model_ops_t *ops; /* the model's (model.h) */
    void *model;
    pool_t *pool;                     /* threads > 1: the team of a micro-batch's parallel phases */
    void *wm[LEARNER_MAX_THREADS];    /* thread t's copy of the model (wm[0] = model) */
    int nt;                           /* threads */
    int P;                            /* pairs of the batch being learned */
    int NB;                           /* positives of the batch being sampled for */
    int E, NN;                        /* its groups (G pairs each) and explicit pairs */
    float closs[LEARNER_MAX_THREADS]; /* each chunk's share of the batch's loss */
    int Q;                            /* prequential rankings of the batch */
    uint32_t *pq_ue;                  /* (batch_events) their users */
    uint32_t *pq_cand;                /* (batch_events, preq_negatives + 1) item first */
    float *pq_scores;                 /* (batch_events, preq_negatives + 1) */
    uint64_t sample_seed;             /* threads > 1: this batch's sampling streams */
    feat_t *fu, *fi;                  /* tower features (DSSM), NULL for a side without */
    hist_t *hist;                     /* MODEL_HISTORY: users' last items, else NULL */
    uint32_t *hitems;                 /* (history) hist_items', `history` per thread */
    float *hw;                        /* (history) their weights (history_weights) */
    int replaying;                    /* the batch being learned is replayed (replay) */
    uint32_t *rp_item;                /* (history, replay) per user entry: the item of its replayed
                                       * event, left out of its context; EMB_NONE when none */
    size_t rp_n;                      /* entries rp_item covers */
    float *hgrad;                     /* (2R) a context's gradient, then one row's share */
    int Fu, Fi;                       /* feature floats a pair's user and item carry */
    rng_t rng;
    int R;    /* floats per row */
    int G;    /* logits per event: positive + negatives */
    int maxb; /* most pairs in one forward */

    /* micro-batch */
    uint32_t *ev_ue, *ev_ie; /* (batch_events) entries */
    int64_t *ev_ts;
    unsigned char *ev_neg;     /* (batch_events) 1 = explicit negative */
    float *labels;             /* (batch_events) zeros, for explicit negatives */
    uint32_t *neg_ue, *neg_ie; /* (batch_events) explicit negatives of a batch */
    float *neg_w;
    float *gw;                    /* (batch_events) event weights */
    const float **urows, **irows; /* (maxb) */
    uint32_t *pair_ur, *pair_ir;  /* (P) rows of each pair */
    uint32_t *pair_ue, *pair_ie;  /* (P) their entries (EMB_NONE: unknown id), for features */
    float *ufb, *ifb;             /* (maxb, Fu), (maxb, Fi) gathered features */
    const float **ufp, **ifp;     /* (maxb) pointers into them */
    float *dfu, *dfi;             /* (P, Fu), (P, Fi) their gradients */
    float *fvec;                  /* (max(Fu, Fi)) learner_vector's */
    float *logits, *dz, *logq;    /* (P) */
    float *du, *di;               /* (P, R) */
    uint32_t *negs, *cand;        /* negs (batch_events, k); cand (maxb) */
    float *negq;
    int *nfound; /* (batch_events) */
    int npos;    /* positives of the batch just learned, first in ev_ue/ev_ie */

    /* de-duplication of touched rows (rows.h), users' and items' */
    rows_stamps_t stamps[2];
    uint32_t gen;
    /* rows touched by the batch, once each, per side and thread: thread t
     * of n takes the rows row_owner gives it */
    uint32_t *uniq[2][LEARNER_MAX_THREADS];                                  /* (P) */
    uint32_t *ufirst[2][LEARNER_MAX_THREADS], *ucnt[2][LEARNER_MAX_THREADS]; /* (P) */
    float *gacc[2][LEARNER_MAX_THREADS]; /* (P, R) their summed gradients */
    int nuniq[2][LEARNER_MAX_THREADS];
    /* threads > 1: the pairs whose row thread o owns, per side, listed by
     * the chunk that backwarded them (pair slice s, in pair order) from
     * plist[side][o] + its first pair: pcnt[side][s][o] of them. So a
     * chunk of the sparse phase reads its own pairs, not all of them. */
    uint32_t *plist[2][LEARNER_MAX_THREADS]; /* (P) */
    int pcnt[2][LEARNER_MAX_THREADS][LEARNER_MAX_THREADS];

    lrn_gone_fn on_gone;
    void *gone_arg;

    learner_stats_t st;
    ewma_t loss_e, hr_e, ndcg_e;
    double hr_sum, ndcg_sum;

    /* shared mode: the window's items (g, then gsq: 2R floats each), its
     * users (no floats) and the dense block's summed gradient */
    wrows_t wi, wu;
    float *wdense;
    size_t wbatches;  /* micro-batches in the window */
    int64_t apply_ts; /* learner_apply_at's */
};

static const char *loss_names[] = {"bce", "bpr", "softmax"};

int loss_kind_parse(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, loss_names[i]) == 0)
            return i;
    return -1;
}

const char *loss_kind_name(loss_kind_t k)
{
    return (unsigned)k < 3 ? loss_names[k] : "?";
}

void learner_config_default(learner_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->kind, sizeof(cfg->kind), "%s", model_default(0)->name);
    neumf_config_default(&cfg->model);
    dssm_config_default(&cfg->towers);
    samp_config_default(&cfg->sampler);
    cfg->negatives = 4;
    cfg->loss = LOSS_BCE;
    cfg->batch_events = 256;
    cfg->sparse_opt = OPT_ADAGRAD;
    cfg->lr_sparse = 0.03f;
    cfg->adagrad_eps = 1e-8f;
    cfg->lr_dense = 0.005f;
    cfg->l2_dense = 3e-5f;
    cfg->init_std = 0.01f;
    cfg->ring_capacity = 100000;
    cfg->admit_after = 1;
    cfg->preq_rate = 0.01;
    cfg->preq_negatives = 100;
    cfg->ewma_alpha = 0.01;
    cfg->clip_norm = 10.0f;
    cfg->feat_dim = 8;
    cfg->feat_clip = 5.0f;
    cfg->threads = 1;
    cfg->history = 8;
    cfg->history_decay = 0.75f;
    cfg->user_weight = 0.5f;
    cfg->transition_lr = 0.0f;
    cfg->replay = 0.0f;
    cfg->seed = 1;
}

static uint32_t entry_row(const emb_table_t *t, uint32_t e)
{
    return e == EMB_NONE ? 0 : emb_entry_row(t, e);
}

/* User entry ue's last items (its history, newest first) into thread t's
 * stretch of l->hitems and their weights into its stretch of l->hw, both
 * returned in *items and *weights: history_decay^j for the j-th, 0 for an
 * item not admitted yet (no row of its own) or for the item of ue's
 * replayed event, normalised to sum to 1. How many items; 0 when none has a
 * row. */
static int history_weights(learner_t *l, uint32_t ue, int t, const uint32_t **items,
                           const float **weights)
{
    uint32_t *hi = l->hitems + (size_t)t * (size_t)l->cfg.history;
    float *hw = l->hw + (size_t)t * (size_t)l->cfg.history;
    *items = hi, *weights = hw;
    int n = ue == EMB_NONE ? 0 : hist_items(l->hist, ue, hi);
    uint32_t left_out = l->replaying && ue < l->rp_n ? l->rp_item[ue] : EMB_NONE;
    float w = 1.0f, sum = 0.0f;
    for (int j = 0; j < n; j++, w *= l->cfg.history_decay) {
        int in = emb_entry_row(l->items, hi[j]) && hi[j] != left_out;
        hw[j] = in ? w : 0.0f;
        sum += hw[j];
    }
    if (sum == 0.0f)
        return 0;
    for (int j = 0; j < n; j++)
        hw[j] /= sum;
    return n;
}

/* The weighted mean of the rows of user entry ue's last items
 * (history_weights, thread t's) into out (R floats); zeros for a user with
 * none. */
static void history_context(learner_t *l, uint32_t ue, float *out, int t)
{
    const int R = l->R;
    memset(out, 0, sizeof(float) * (size_t)R);
    const uint32_t *hi;
    const float *hw;
    int n = history_weights(l, ue, t, &hi, &hw);
    for (int j = 0; j < n; j++) {
        if (hw[j] == 0.0f)
            continue;
        const float *v = emb_row(l->items, emb_entry_row(l->items, hi[j]));
        for (int k = 0; k < R; k++)
            out[k] += hw[j] * v[k];
    }
}

/* The features of n pairs (entries ue[j], ie[j]) into ufp/ifp [at, at + n):
 * the towers' (feat.h), or a history model's context of the user, worked out
 * once for a run of pairs of one user. */
static void gather_features(learner_t *l, const uint32_t *ue, const uint32_t *ie, int at, int n,
                            int t)
{
    for (int j = 0; l->hist && j < n; j++) {
        if (j > 0 && ue[j] == ue[j - 1]) {
            l->ufp[at + j] = l->ufp[at + j - 1];
            continue;
        }
        float *f = l->ufb + (size_t)(at + j) * l->Fu;
        history_context(l, ue[j], f, t);
        l->ufp[at + j] = f;
    }
    for (int j = 0; l->fu && j < n; j++) {
        float *f = l->ufb + (size_t)(at + j) * l->Fu;
        feat_gather(l->fu, ue[j], f);
        l->ufp[at + j] = f;
    }
    for (int j = 0; l->fi && j < n; j++) {
        float *f = l->ifb + (size_t)(at + j) * l->Fi;
        feat_gather(l->fi, ie[j], f);
        l->ifp[at + j] = f;
    }
}

/* Logits of user entry ue (EMB_NONE: unknown) against n item entries, by
 * model m, in forwards of at most room pairs through the batch buffers
 * [at, at + room). */
static void score_with(learner_t *l, void *m, int t, int at, int room, uint32_t ue,
                       const uint32_t *items, int n, float *out)
{
    const float *u = emb_row(l->users, entry_row(l->users, ue));
    for (int s = 0; s < n; s += room) {
        int c = n - s < room ? n - s : room;
        for (int b = 0; b < c; b++) {
            l->urows[at + b] = u;
            l->irows[at + b] = emb_row(l->items, entry_row(l->items, items[s + b]));
            l->pair_ue[at + b] = ue;
        }
        gather_features(l, l->pair_ue + at, items + s, at, c, t);
        l->ops->forward(m, out + s, l->urows + at, l->irows + at, l->Fu ? l->ufp + at : NULL,
                        l->fi ? l->ifp + at : NULL, c);
    }
}

/* the scorer of the hard sampler and of learner_score: one thread */
static void score_entries(void *arg, uint32_t ue, const uint32_t *items, int n, float *out)
{
    learner_t *l = arg;
    score_with(l, l->model, 0, 0, l->maxb, ue, items, n, out);
}

/* The checks learner_create makes on cfg before it allocates: 0, or -1 and a
 * message. */
static int learner_config_check(const learner_config_t *cfg, char *errstr, size_t len)
{
    if (cfg->negatives < 1 || cfg->negatives > 1024) {
        snprintf(errstr, len, "negatives must be in [1, 1024], not %d", cfg->negatives);
        return -1;
    }
    if (cfg->batch_events < 1 || cfg->batch_events > 65536) {
        snprintf(errstr, len, "batch_events must be in [1, 65536], not %d", cfg->batch_events);
        return -1;
    }
    if ((unsigned)cfg->loss > LOSS_SOFTMAX) {
        snprintf(errstr, len, "unknown loss %d", (int)cfg->loss);
        return -1;
    }
    if (cfg->threads < 1 || cfg->threads > LEARNER_MAX_THREADS) {
        snprintf(errstr, len, "threads must be in [1, %d], not %d", LEARNER_MAX_THREADS,
                 cfg->threads);
        return -1;
    }
    if (cfg->preq_negatives < 1 || cfg->preq_rate < 0.0 || cfg->preq_rate > 1.0) {
        snprintf(errstr, len, "preq_rate must be in [0, 1] and preq_negatives ≥ 1");
        return -1;
    }
    if (!(cfg->lr_sparse > 0.0f) || !(cfg->lr_dense > 0.0f) || cfg->l2_sparse < 0.0f ||
        cfg->l2_dense < 0.0f) {
        snprintf(errstr, len, "learning rates must be positive and L2 not negative");
        return -1;
    }
    const model_ops_t *ops = model_find(cfg->kind);
    if (!ops) {
        char names[256];
        model_names(names, sizeof(names));
        snprintf(errstr, len, "unknown model '%.*s' (models: %s)", MODEL_NAME_MAX, cfg->kind,
                 names);
        return -1;
    }
    if (!ops->create) {
        snprintf(errstr, len, "%s is learned by its own engine, not by learner_create", ops->name);
        return -1;
    }
    int nfeat = cfg->ucat + cfg->unum + cfg->icat + cfg->inum;
    if (nfeat && !(ops->flags & MODEL_FEATURES)) {
        snprintf(errstr, len, "tower features need a model that takes them (dssm), not %s",
                 ops->name);
        return -1;
    }
    if ((ops->flags & MODEL_HISTORY) && (cfg->history < 1 || cfg->history > HIST_MAX)) {
        snprintf(errstr, len, "history must be in [1, %d] items, not %d", HIST_MAX, cfg->history);
        return -1;
    }
    if (!(cfg->history_decay > 0.0f && cfg->history_decay <= 1.0f)) {
        snprintf(errstr, len, "history_decay must be in (0, 1], not %g", cfg->history_decay);
        return -1;
    }
    if (!(cfg->user_weight >= 0.0f && cfg->user_weight <= 1.0f)) {
        snprintf(errstr, len, "user_weight must be in [0, 1], not %g", cfg->user_weight);
        return -1;
    }
    if (!(cfg->transition_lr >= 0.0f && cfg->transition_lr <= 1.0f)) {
        snprintf(errstr, len, "transition_lr must be in [0, 1], not %g", cfg->transition_lr);
        return -1;
    }
    if (!(cfg->replay >= 0.0f && cfg->replay <= 16.0f)) {
        snprintf(errstr, len, "replay must be in [0, 16] events per event, not %g", cfg->replay);
        return -1;
    }
    if (cfg->shared && cfg->replay > 0.0f) {
        snprintf(errstr, len,
                 "several members sharing one model do not replay (replay %g): each "
                 "window holds the gradients of the events it covers",
                 cfg->replay);
        return -1;
    }
    if (cfg->shared && (nfeat || (ops->flags & MODEL_HISTORY))) {
        snprintf(errstr, len,
                 "several members sharing one model need a model without tower "
                 "features or history (%s%s)",
                 ops->name, nfeat ? " with features" : "");
        return -1;
    }
    if (cfg->shared && cfg->admit_after != 1) {
        snprintf(errstr, len,
                 "several members sharing one model give every id a row at once "
                 "(admit_after 1, not %u)",
                 cfg->admit_after);
        return -1;
    }
    return 0;
}

learner_t *learner_create(const learner_config_t *cfg, char *errstr, size_t len)
{
    learner_t *l = NULL;
    if (learner_config_check(cfg, errstr, len) < 0)
        return NULL;
    l = calloc(1, sizeof(*l));
    if (!l)
        goto oom;
    l->cfg = *cfg;
    int nfeat = cfg->ucat + cfg->unum + cfg->icat + cfg->inum;
    l->G = cfg->negatives + 1;
    int P = cfg->batch_events * l->G;
    l->maxb = P;
    int nt = cfg->threads, S = cfg->preq_negatives + 1;
    if (l->maxb < nt * S) /* each thread's prequential forwards have their own stretch */
        l->maxb = nt * S;
    if (l->maxb < cfg->sampler.pool)
        l->maxb = cfg->sampler.pool;

    if (nfeat) {
        feat_config_t fc = {.dim = cfg->feat_dim,
                            .hash_bits = cfg->feat_hash_bits,
                            .admit_after = cfg->admit_after,
                            .clip = cfg->feat_clip,
                            .init_std = cfg->init_std,
                            .opt = cfg->sparse_opt};
        if (cfg->ucat + cfg->unum) {
            fc.ncat = cfg->ucat, fc.nnum = cfg->unum, fc.seed = cfg->seed * 2 + 3;
            if (!(l->fu = feat_create(&fc, l->maxb, errstr, len)))
                goto err;
            l->Fu = feat_width(l->fu);
        }
        if (cfg->icat + cfg->inum) {
            fc.ncat = cfg->icat, fc.nnum = cfg->inum, fc.seed = cfg->seed * 2 + 4;
            if (!(l->fi = feat_create(&fc, l->maxb, errstr, len)))
                goto err;
            l->Fi = feat_width(l->fi);
        }
    }
    l->ops = model_find(cfg->kind);
    if (!(l->model = l->ops->create(cfg, l->maxb, l->Fu, l->Fi, errstr, len)))
        goto err;
    l->wm[0] = l->model;
    l->nt = cfg->threads < 1 ? 1 : cfg->threads;
    if (l->nt > 1) {
        /* each thread forwards and backwards a slice of the batch's pairs */
        int slice = (cfg->batch_events + l->nt - 1) / l->nt * l->G; /* units of G at most */
        if (slice < S) /* a prequential ranking in one forward */
            slice = S;
        for (int t = 1; t < l->nt; t++) {
            if (!(l->wm[t] = l->ops->create(cfg, slice, l->Fu, l->Fi, errstr, len)))
                goto err;
            model_share_params(l->ops, l->wm[t], l->model);
        }
        if (!(l->pool = pool_create(l->nt))) {
            snprintf(errstr, len, "learner: cannot start %d threads", l->nt);
            goto err;
        }
    }
    l->R = l->ops->row_width(l->model, 'u');
    if (l->ops->row_width(l->model, 'i') != l->R) { /* the engine's rows are one width */
        snprintf(errstr, len, "learner: %s's user and item rows differ in width", l->ops->name);
        goto err;
    }
    if (l->ops->flags & MODEL_HISTORY) { /* a user's features: the mean of its items' rows */
        if (!(l->hist = hist_create(cfg->history, errstr, len)))
            goto err;
        /* each thread its own stretch: phase_pass and preq_score run in parallel */
        size_t hn = (size_t)cfg->history * LEARNER_MAX_THREADS;
        if (!(l->hitems = malloc(sizeof(uint32_t) * hn)) || !(l->hw = malloc(sizeof(float) * hn)) ||
            !(l->hgrad = malloc(sizeof(float) * 2 * (size_t)l->R)))
            goto oom;
        l->Fu = l->R;
    }

    emb_config_t ec = {.width = l->R,
                       .state = optim_state_floats(cfg->sparse_opt, l->R),
                       .admit_after = cfg->admit_after,
                       .expire_ms = cfg->expire_ms,
                       .init_std = cfg->init_std,
                       .seed = cfg->seed * 2 + 1};
    if (!(l->users = emb_create(&ec, errstr, len)))
        goto err;
    ec.seed = cfg->seed * 2 + 2;
    if (cfg->shared) /* every member makes the same row for an item, and keeps it */
        ec.admit_after = 1, ec.expire_ms = 0, ec.init_by_id = 1;
    if (!(l->items = emb_create(&ec, errstr, len)))
        goto err;
    l->wi.width = 2 * l->R;
    if (!(l->ring = ring_create(cfg->ring_capacity, errstr, len)))
        goto err;
    if (!(l->samp = samp_create(&cfg->sampler, l->items, l->ring, errstr, len)))
        goto err;
    samp_set_scorer(l->samp, score_entries, l);
    rng_seed(&l->rng, cfg->seed ^ 0x5eedULL);

    int nb = cfg->batch_events, nc = l->maxb;
    l->ev_ue = malloc(sizeof(uint32_t) * nb);
    l->ev_ie = malloc(sizeof(uint32_t) * nb);
    l->gw = malloc(sizeof(float) * nb);
    l->ev_ts = malloc(sizeof(int64_t) * nb);
    l->ev_neg = malloc(nb);
    l->labels = calloc(nb, sizeof(float));
    l->neg_ue = malloc(sizeof(uint32_t) * nb);
    l->neg_ie = malloc(sizeof(uint32_t) * nb);
    l->neg_w = malloc(sizeof(float) * nb);
    l->urows = malloc(sizeof(float *) * l->maxb);
    l->irows = malloc(sizeof(float *) * l->maxb);
    l->pair_ur = malloc(sizeof(uint32_t) * P);
    l->pair_ir = malloc(sizeof(uint32_t) * P);
    l->pair_ue = malloc(sizeof(uint32_t) * l->maxb);
    l->pair_ie = malloc(sizeof(uint32_t) * l->maxb);
    int Fm = l->Fu > l->Fi ? l->Fu : l->Fi;
    l->ufb = malloc(sizeof(float) * ((size_t)l->maxb * l->Fu + 1));
    l->ifb = malloc(sizeof(float) * ((size_t)l->maxb * l->Fi + 1));
    l->ufp = malloc(sizeof(float *) * l->maxb);
    l->ifp = malloc(sizeof(float *) * l->maxb);
    l->dfu = malloc(sizeof(float) * ((size_t)P * l->Fu + 1));
    l->dfi = malloc(sizeof(float) * ((size_t)P * l->Fi + 1));
    l->fvec = malloc(sizeof(float) * ((size_t)Fm + 1));
    l->logits = malloc(sizeof(float) * l->maxb);
    l->dz = malloc(sizeof(float) * P);
    l->logq = malloc(sizeof(float) * P);
    l->du = malloc(sizeof(float) * P * l->R);
    l->di = malloc(sizeof(float) * P * l->R);
    l->negs = malloc(sizeof(uint32_t) * nb * cfg->negatives);
    l->cand = malloc(sizeof(uint32_t) * nc);
    l->negq = malloc(sizeof(float) * nb * cfg->negatives);
    l->nfound = malloc(sizeof(int) * nb);
    l->pq_ue = malloc(sizeof(uint32_t) * nb);
    l->pq_cand = malloc(sizeof(uint32_t) * nb * S);
    l->pq_scores = malloc(sizeof(float) * nb * S);
    int uniq_ok = 1;
    for (int side = 0; side < 2; side++)
        for (int t = 0; t < l->nt; t++) {
            l->uniq[side][t] = malloc(sizeof(uint32_t) * P);
            l->ufirst[side][t] = malloc(sizeof(uint32_t) * P);
            l->ucnt[side][t] = malloc(sizeof(uint32_t) * P);
            l->gacc[side][t] = malloc(sizeof(float) * P * l->R);
            l->plist[side][t] = malloc(sizeof(uint32_t) * P);
            uniq_ok &= l->uniq[side][t] && l->gacc[side][t] && l->ufirst[side][t] &&
                       l->ucnt[side][t] && l->plist[side][t];
        }
    if (!l->ev_ue || !l->ev_ie || !l->gw || !l->ev_ts || !l->ev_neg || !l->labels || !l->neg_ue ||
        !l->neg_ie || !l->neg_w || !l->urows || !l->irows || !l->pair_ur || !l->pair_ir ||
        !l->logits || !l->dz || !l->logq || !l->du || !l->di || !l->negs || !l->nfound ||
        !l->cand || !l->negq || !l->pq_ue || !l->pq_cand || !l->pq_scores || !uniq_ok ||
        !l->pair_ue || !l->pair_ie || !l->ufb || !l->ifb || !l->ufp || !l->ifp || !l->dfu ||
        !l->dfi || !l->fvec)
        goto oom;
    ewma_init(&l->loss_e, cfg->ewma_alpha);
    ewma_init(&l->hr_e, cfg->ewma_alpha);
    ewma_init(&l->ndcg_e, cfg->ewma_alpha);
    return l;
oom:
    snprintf(errstr, len, "learner: out of memory");
err:
    learner_free(l);
    return NULL;
}

void learner_free(learner_t *l)
{
    if (!l)
        return;
    hist_free(l->hist);
    free(l->rp_item);
    free(l->hitems);
    free(l->hw);
    free(l->hgrad);
    pool_free(l->pool);
    for (int t = 1; t < LEARNER_MAX_THREADS && l->ops; t++)
        l->ops->free(l->wm[t]);
    for (int side = 0; side < 2; side++)
        for (int t = 0; t < LEARNER_MAX_THREADS; t++) {
            free(l->uniq[side][t]);
            free(l->ufirst[side][t]);
            free(l->ucnt[side][t]);
            free(l->gacc[side][t]);
            free(l->plist[side][t]);
        }
    samp_free(l->samp);
    ring_free(l->ring);
    emb_free(l->users);
    emb_free(l->items);
    if (l->ops)
        l->ops->free(l->model);
    feat_free(l->fu);
    feat_free(l->fi);
    void *p[] = {l->pair_ue, l->pair_ie, l->ufb,     l->ifb,    l->ufp,     l->ifp,      l->dfu,
                 l->dfi,     l->fvec,    l->ev_ue,   l->ev_ie,  l->gw,      l->ev_ts,    l->urows,
                 l->irows,   l->pair_ur, l->pair_ir, l->logits, l->dz,      l->logq,     l->du,
                 l->di,      l->negs,    l->nfound,  l->cand,   l->negq,    l->ev_neg,   l->labels,
                 l->neg_ue,  l->neg_ie,  l->neg_w,   l->pq_ue,  l->pq_cand, l->pq_scores};
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
        free(p[i]);
    rows_stamps_free(&l->stamps[0]);
    rows_stamps_free(&l->stamps[1]);
    wrows_free(&l->wi);
    wrows_free(&l->wu);
    free(l->wdense);
    free(l);
}

/* the dense block's Adam learning rate: the model's own, or lr_dense */
static float dense_lr(const learner_t *l)
{
    return l->ops->dense_lr ? l->ops->dense_lr(l->model) : l->cfg.lr_dense;
}

/* Prequential ranking of a batch: the event's item against preq_negatives
 * items the user has not interacted with (per the rolling buffer), before
 * the batch is learned. The candidates are drawn here, on one thread (the
 * learner's random stream); they are scored in the parallel phase that
 * samples negatives (phase_sample), and ranked in preq_rank. */
static void preq_draw(learner_t *l, uint32_t ue, uint32_t ie)
{
    const int S = l->cfg.preq_negatives + 1;
    uint32_t *cand = l->pq_cand + (size_t)l->Q * S;
    int n = 0, want = l->cfg.preq_negatives;
    cand[n++] = ie;
    for (int t = 0; n < want + 1 && t < want * 8; t++) {
        uint32_t row = emb_sample_row(l->items, &l->rng);
        uint32_t e = emb_row_entry(l->items, row);
        if (!row || e == ie || ring_has_pair(l->ring, ue, e))
            continue;
        cand[n++] = e;
    }
    if (n < want + 1)
        return; /* too few items known yet to rank against */
    l->pq_ue[l->Q++] = ue;
}

/* Chunk t of n scores the batch's prequential candidates [Q·t/n, Q·(t+1)/n)
 * with its copy of the model, through its own stretch of the batch buffers. */
static void preq_score(learner_t *l, int t, int n)
{
    const int S = l->cfg.preq_negatives + 1;
    int q0 = (int)((long)l->Q * t / n), q1 = (int)((long)l->Q * (t + 1) / n);
    for (int q = q0; q < q1; q++)
        score_with(l, l->wm[t], t, t * S, S, l->pq_ue[q], l->pq_cand + (size_t)q * S, S,
                   l->pq_scores + (size_t)q * S);
}

/* the batch's prequential metrics, in order */
static void preq_rank(learner_t *l)
{
    const int S = l->cfg.preq_negatives + 1;
    for (int q = 0; q < l->Q; q++) {
        const float *sc = l->pq_scores + (size_t)q * S;
        int rank = metric_rank(sc[0], sc + 1, S - 1);
        double hr = metric_hr(rank, 10), nd = metric_ndcg(rank, 10);
        l->hr_sum += hr;
        l->ndcg_sum += nd;
        l->st.preq_n++;
        ewma_add(&l->hr_e, hr);
        ewma_add(&l->ndcg_e, nd);
    }
    l->Q = 0;
}

/* Rows go to threads in blocks of 16: a block's stamps and slots fill one
 * 64-byte cache line, which then stays with one thread (rows split one by
 * one made the threads write the same lines all the time). */
static inline uint32_t row_owner(uint32_t row, int n)
{
    return (row >> 4) % (uint32_t)n;
}

/* ------------------------------------------- the parallel phases of a batch
 * The batch's pairs are E groups of G (a positive and its negatives), then
 * NN explicit pairs; a unit is a group or an explicit pair. Chunk t of n
 * takes units [U·t/n, U·(t+1)/n), whose pairs are contiguous: its own copy
 * of the model (shared weights, its own activations and gradients) forwards
 * them, computes their loss and backwards them; every array indexed by pair
 * is written in disjoint slices. */

static void unit_slice(const learner_t *l, int t, int n, int *u0, int *u1)
{
    const int U = l->E + l->NN;
    *u0 = (int)((long)U * t / n);
    *u1 = (int)((long)U * (t + 1) / n);
}

static int unit_pair(const learner_t *l, int u)
{
    return u < l->E ? u * l->G : l->E * l->G + (u - l->E);
}

static void pair_slice(const learner_t *l, int t, int n, int *p0, int *p1)
{
    int u0, u1;
    unit_slice(l, t, n, &u0, &u1);
    *p0 = unit_pair(l, u0);
    *p1 = unit_pair(l, u1);
}

/* A mean over part of whole terms (its gradients dz (n) with it) as its
 * share of the mean over all whole; unchanged when part is the whole. */
static float mean_share(float mean, float *dz, int n, int part, int whole)
{
    if (part == whole)
        return mean;
    float f = (float)part / (float)whole;
    for (int p = 0; p < n; p++)
        dz[p] *= f;
    return mean * f;
}

/* The loss of chunk t's units into closs[t] and their dz: the groups' loss
 * and the explicit pairs' are each a mean over the batch, so a chunk's share
 * is its own mean scaled by its share of the count. */
static void chunk_loss(learner_t *l, int t, int n)
{
    const int E = l->E, NN = l->NN, G = l->G, PG = E * G;
    int u0, u1;
    unit_slice(l, t, n, &u0, &u1);
    int g0 = u0 < E ? u0 : E, g1 = u1 < E ? u1 : E;         /* groups [g0, g1) */
    int m0 = u0 > E ? u0 - E : 0, m1 = u1 > E ? u1 - E : 0; /* explicit [m0, m1) */
    float loss = 0.0f;
    if (g1 > g0) {
        float *dz = l->dz + (size_t)g0 * G;
        const float *z = l->logits + (size_t)g0 * G, *w = l->gw + g0;
        float lg;
        switch (l->cfg.loss) {
        case LOSS_BPR:
            lg = loss_bpr(dz, z, w, g1 - g0, G);
            break;
        case LOSS_SOFTMAX:
            lg = loss_softmax(dz, z, l->logq + (size_t)g0 * G, w, g1 - g0, G);
            break;
        case LOSS_BCE:
        default:
            lg = loss_bce(dz, z, w, g1 - g0, G);
            break;
        }
        loss += mean_share(lg, dz, (g1 - g0) * G, g1 - g0, E);
    }
    if (m1 > m0) {
        float *dz = l->dz + PG + m0;
        float ln =
            loss_bce_labels(dz, l->logits + PG + m0, l->labels + m0, l->gw + E + m0, m1 - m0);
        loss += mean_share(ln, dz, m1 - m0, m1 - m0, NN);
    }
    l->closs[t] = loss;
}

/* Negatives for positives [NB·t/n, NB·(t+1)/n) (NB = 0: drawn on one
 * thread instead), from a stream of this chunk's seeded from the batch's
 * seed (the samplers but hard only read shared state while they draw);
 * then this chunk's share of the prequential candidates is scored. */
static void phase_sample(void *arg, int t, int n)
{
    learner_t *l = arg;
    const int k = l->cfg.negatives;
    int b0 = (int)((long)l->NB * t / n), b1 = (int)((long)l->NB * (t + 1) / n);
    if (b1 > b0) {
        rng_t r;
        rng_seed(&r, l->sample_seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(t + 1));
        samp_draw_batch(l->samp, &r, l->ev_ue + b0, b1 - b0, k, l->negs + (size_t)b0 * k,
                        l->negq + (size_t)b0 * k, l->nfound + b0);
    }
    preq_score(l, t, n);
}

/* Forward, loss and backward of chunk t's pairs, in one phase: a chunk's
 * backward needs only its own loss gradients, and all it writes (its copy's
 * dense gradients, its slices of du/di, its lists of pairs by row owner)
 * stays unused until the batch is known to be finite. A chunk whose own
 * loss is not finite skips its backward: the batch is dropped anyway. */
static void phase_pass(void *arg, int t, int n)
{
    learner_t *l = arg;
    int p0, p1;
    pair_slice(l, t, n, &p0, &p1);
    for (int p = p0; p < p1; p++) {
        l->urows[p] = emb_row(l->users, l->pair_ur[p]);
        l->irows[p] = emb_row(l->items, l->pair_ir[p]);
    }
    gather_features(l, l->pair_ue + p0, l->pair_ie + p0, p0, p1 - p0, t);
    l->ops->forward(l->wm[t], l->logits + p0, l->urows + p0, l->irows + p0,
                    l->Fu ? l->ufp + p0 : NULL, l->fi ? l->ifp + p0 : NULL, p1 - p0);
    chunk_loss(l, t, n);
    if (!isfinite(l->closs[t]))
        return;

    dense_block_zero_grad(l->ops->dense(l->wm[t]));
    l->ops->backward(l->wm[t], l->du + (size_t)p0 * l->R, l->di + (size_t)p0 * l->R,
                     l->Fu ? l->dfu + (size_t)p0 * l->Fu : NULL,
                     l->fi ? l->dfi + (size_t)p0 * l->Fi : NULL, l->dz + p0, p1 - p0);
    if (n == 1)
        return;
    for (int side = 0; side < 2; side++) {
        const uint32_t *pr = side ? l->pair_ir : l->pair_ur;
        int c[LEARNER_MAX_THREADS] = {0};
        for (int p = p0; p < p1; p++) { /* no branch on the owner: it is random */
            uint32_t o = row_owner(pr[p], n);
            l->plist[side][o][p0 + c[o]++] = (uint32_t)p;
        }
        for (int o = 0; o < n; o++)
            l->pcnt[side][t][o] = c[o];
    }
}

/* The m pairs of slice s (of n) whose row on side `side` chunk t owns, in
 * pair order, as phase_pass listed them */
static const uint32_t *owned_pairs(const learner_t *l, int side, int s, int t, int n, int *m)
{
    int p0, p1;
    pair_slice(l, s, n, &p0, &p1);
    *m = l->pcnt[side][s][t];
    return l->plist[side][t] + p0;
}

/* Chunk t of n takes the rows row_owner gives it, of both sides (the
 * stamps are per row, so the chunks never share one): each row's gradient
 * summed over the batch, in pair order, then one update. With more than one
 * chunk it reads only the pairs of its rows, which the chunks of phase_pass
 * listed for it. The feature value rows go by side: users' to chunk 0,
 * items' to chunk 1 % n. Dirty marking follows, on one thread. */
static void phase_sparse(void *arg, int t, int n)
{
    learner_t *l = arg;
    const int P = l->P, R = l->R;
    for (int side = 0; side < 2; side++) {
        emb_table_t *tab = side ? l->items : l->users;
        const uint32_t *pr = side ? l->pair_ir : l->pair_ur;
        const float *d = side ? l->di : l->du;
        rows_stamps_t *st = &l->stamps[side];
        uint32_t *uniq = l->uniq[side][t], *first = l->ufirst[side][t], *cnt = l->ucnt[side][t];
        float *acc = l->gacc[side][t];
        int nu = 0;
        if (n == 1) {
            nu = rows_gather(pr, 1, NULL, P, 0, st, l->gen, uniq, first, cnt);
            rows_sum(pr, 1, NULL, P, d, R, R, st, first, cnt, acc);
        } else { /* this chunk's pairs, as phase_pass listed them */
            int m;
            for (int s = 0; s < n; s++) {
                const uint32_t *idx = owned_pairs(l, side, s, t, n, &m);
                nu = rows_gather(pr, 1, idx, m, nu, st, l->gen, uniq, first, cnt);
            }
            for (int s = 0; s < n; s++) {
                const uint32_t *idx = owned_pairs(l, side, s, t, n, &m);
                rows_sum(pr, 1, idx, m, d, R, R, st, first, cnt, acc);
            }
        }
        if (!(side && l->cfg.shared)) /* shared items: gathered in the window instead */
            rows_update(tab, uniq, nu, first, cnt, d, R, acc, R, l->cfg.sparse_opt,
                        l->cfg.lr_sparse, l->cfg.l2_sparse, l->cfg.adagrad_eps);
        l->nuniq[side][t] = nu;
    }
    for (int side = 0; side < 2; side++) {
        if (side % n != t)
            continue;
        feat_t *f = side ? l->fi : l->fu;
        if (f) {
            const uint32_t *pe = side ? l->pair_ie : l->pair_ue;
            const float *df = side ? l->dfi : l->dfu;
            const int Fw = side ? l->Fi : l->Fu;
            for (int p = 0; p < P; p++)
                feat_grad_add(f, pe[p], df + (size_t)p * Fw);
            feat_grad_apply(f, l->cfg.lr_sparse, l->cfg.l2_sparse, l->cfg.adagrad_eps);
        }
    }
}

/* A history model's context is the weighted mean of the rows of the user's
 * last items: its gradient, summed over the pairs of a run of one user's
 * pairs (they share the context), goes to each of those rows times its
 * weight, by the rows' optimizer; they are then dirty. One thread, after the
 * batch's own rows: a row may take several such steps in one batch. */
static void history_step(learner_t *l)
{
    const int P = l->P, R = l->R;
    float *g = l->hgrad;
    for (int p = 0; p < P;) {
        uint32_t ue = l->pair_ue[p];
        memset(g, 0, sizeof(float) * (size_t)R);
        for (; p < P && l->pair_ue[p] == ue; p++) {
            const float *d = l->dfu + (size_t)p * R;
            for (int k = 0; k < R; k++)
                g[k] += d[k];
        }
        const uint32_t *hi;
        const float *hw;
        int n = history_weights(l, ue, 0, &hi, &hw); /* one thread */
        for (int j = 0; j < n; j++) {
            if (hw[j] == 0.0f)
                continue;
            uint32_t row = emb_entry_row(l->items, hi[j]);
            float *gj = g + R;
            for (int k = 0; k < R; k++)
                gj[k] = hw[j] * g[k];
            optim_row(l->cfg.sparse_opt, emb_row(l->items, row), emb_row_state(l->items, row), gj,
                      R, l->cfg.lr_sparse, l->cfg.l2_sparse, l->cfg.adagrad_eps);
            emb_mark_dirty(l->items, hi[j]);
        }
    }
}

/* Shared mode: the batch's dense gradient joins the window's; -1 (and
 * nothing joins) when it is not finite. */
static int window_dense(learner_t *l, const dense_block_t *d)
{
    if (!isfinite(dense_block_grad_sq(d)))
        return -1;
    if (!l->wdense && !(l->wdense = calloc(d->n ? d->n : 1, sizeof(float))))
        return -1;
    for (size_t i = 0; i < d->n; i++)
        l->wdense[i] += d->grads[i];
    l->wbatches++;
    return 0;
}

/* Shared mode: the batch's item gradients (each row's sum over its pairs,
 * as rows_update would take it) and its users join the window. */
static void window_rows(learner_t *l)
{
    const int R = l->R;
    for (int t = 0; t < l->nt; t++) {
        for (int k = 0; k < l->nuniq[1][t]; k++) {
            uint32_t e = emb_row_entry(l->items, l->uniq[1][t][k]);
            float *a = e == EMB_NONE ? NULL : wrows_at(&l->wi, e);
            if (!a)
                continue;
            const float *g =
                rows_grad(k, l->ufirst[1][t], l->ucnt[1][t], l->di, R, l->gacc[1][t], R);
            for (int r = 0; r < R; r++) {
                a[r] += g[r];
                a[R + r] += g[r] * g[r];
            }
        }
        for (int k = 0; k < l->nuniq[0][t]; k++) {
            uint32_t e = emb_row_entry(l->users, l->uniq[0][t][k]);
            if (e != EMB_NONE)
                wrows_at(&l->wu, e);
        }
    }
}

/* Shared mode: the window starts again, empty. */
static void window_reset(learner_t *l)
{
    wrows_clear(&l->wi);
    wrows_clear(&l->wu);
    if (l->wdense)
        memset(l->wdense, 0, sizeof(float) * l->ops->dense(l->model)->n);
    l->wbatches = 0;
}

static void learn_batch(learner_t *l, int B)
{
    const int k = l->cfg.negatives, G = l->G;

    /* explicit negatives go to the end of the batch; positives keep their order */
    int NP = 0, NN = 0;
    uint32_t *xu = l->neg_ue, *xi = l->neg_ie;
    float *nw = l->neg_w;
    for (int b = 0; b < B; b++) {
        if (l->ev_neg[b]) {
            xu[NN] = l->ev_ue[b];
            xi[NN] = l->ev_ie[b];
            l->labels[NN] = 0.0f;
            nw[NN++] = l->gw[b];
        } else {
            l->ev_ue[NP] = l->ev_ue[b];
            l->ev_ie[NP] = l->ev_ie[b];
            l->ev_ts[NP] = l->ev_ts[b];
            l->gw[NP++] = l->gw[b];
        }
    }
    B = NP;
    l->npos = NP;

    l->Q = 0;
    if (!l->replaying && l->cfg.preq_rate > 0.0 && (l->ops->flags & MODEL_RANKS))
        for (int b = 0; b < B; b++)
            if (rng_double(&l->rng) < l->cfg.preq_rate)
                preq_draw(l, l->ev_ue[b], l->ev_ie[b]);

    /* the batch's positives enter the buffer first, so no sampler can draw them
     * for their user, and in-batch q (the buffer frequency) counts them (a
     * replayed batch's are there already) */
    for (int b = 0; b < B && !l->replaying; b++)
        ring_push(l->ring, l->ev_ue[b], l->ev_ie[b], l->ev_ts[b]);
    samp_set_batch(l->samp, l->ev_ie, B);

    /* negatives drawn by the threads, or on one thread (one thread, or the
     * hard sampler: it scores with the model); prequential candidates scored
     * by the threads (before the hard sampler, which does not move weights) */
    int par = B && l->nt > 1 && l->cfg.sampler.kind != SAMP_HARD;
    l->NB = par ? B : 0;
    if (par)
        l->sample_seed = rng_next(&l->rng);
    if (par || l->Q)
        pool_run(l->pool, phase_sample, l);
    if (B && !par)
        samp_draw_batch(l->samp, &l->rng, l->ev_ue, B, k, l->negs, l->negq, l->nfound);
    preq_rank(l);
    int E = 0; /* events kept: those with at least one negative */
    for (int b = 0; b < B; b++) {
        int n = l->nfound[b];
        if (n == 0) {
            /* no negative to be had (a cold start: every known item is the
             * user's): BCE still learns the positive on its own, pointwise;
             * the pairwise and listwise losses cannot */
            if (l->cfg.loss == LOSS_BCE) {
                xu[NN] = l->ev_ue[b];
                xi[NN] = l->ev_ie[b];
                l->labels[NN] = 1.0f;
                nw[NN++] = l->gw[b];
            } else if (!l->replaying) {
                l->st.skipped++;
            }
            continue;
        }
        const uint32_t *negs = l->negs + (size_t)b * k;
        const float *negq = l->negq + (size_t)b * k;
        uint32_t urow = emb_entry_row(l->users, l->ev_ue[b]);
        uint32_t *pu = l->pair_ur + E * G, *pi = l->pair_ir + E * G;
        uint32_t *pue = l->pair_ue + E * G, *pie = l->pair_ie + E * G;
        float *lq = l->logq + E * G;
        pu[0] = urow;
        pi[0] = emb_entry_row(l->items, l->ev_ie[b]);
        pue[0] = l->ev_ue[b];
        pie[0] = l->ev_ie[b];
        for (int j = 0; j < k; j++) {
            int s = j < n ? j : j % n; /* too few found: repeat what was found */
            pu[1 + j] = urow;
            pi[1 + j] = emb_entry_row(l->items, negs[s]);
            pue[1 + j] = l->ev_ue[b];
            pie[1 + j] = negs[s];
        }
        if (l->cfg.loss == LOSS_SOFTMAX) { /* the logQ correction: the softmax alone uses it */
            float q0 = samp_prob(l->samp, l->ev_ie[b]);
            lq[0] = logf(q0 > 1e-12f ? q0 : 1e-12f);
            for (int j = 0; j < k; j++) {
                float q = negq[j < n ? j : j % n];
                lq[1 + j] = logf(q > 1e-12f ? q : 1e-12f);
            }
        }
        l->gw[E] = l->gw[b];
        E++;
    }
    int PG = E * G; /* pairs of the positives' groups; explicit negatives follow */
    for (int m = 0; m < NN; m++) {
        l->pair_ur[PG + m] = emb_entry_row(l->users, xu[m]);
        l->pair_ir[PG + m] = emb_entry_row(l->items, xi[m]);
        l->pair_ue[PG + m] = xu[m];
        l->pair_ie[PG + m] = xi[m];
        l->gw[E + m] = nw[m];
    }
    if (PG + NN == 0)
        return;
    int P = PG + NN;
    l->P = P;
    l->E = E;
    l->NN = NN;

    /* forward, loss and backward (parallel) */
    pool_run(l->pool, phase_pass, l);
    float loss = 0.0f;
    for (int t = 0; t < l->nt; t++)
        loss += l->closs[t];
    dense_block_t *d = l->ops->dense(l->model);
    if (!isfinite(loss)) { /* numerical trouble: learn nothing from this batch */
        l->st.nonfinite++;
        return;
    }
    for (int t = 1; t < l->nt; t++) { /* the threads' gradients into the model's */
        const float *g = l->ops->dense(l->wm[t])->grads;
        for (size_t i = 0; i < d->n; i++)
            d->grads[i] += g[i];
    }
    /* update: dense block by Adam (clipped; nothing when a gradient is not
     * finite), touched rows by the rows' optimizer, once per row */
    if (l->cfg.shared ? window_dense(l, d) < 0
                      : dense_block_step(d, l->cfg.clip_norm, dense_lr(l), l->cfg.l2_dense) < 0) {
        l->st.nonfinite++;
        return;
    }
    if (++l->gen == 0) { /* stamps wrapped: forget them all */
        rows_stamps_clear(&l->stamps[0]);
        rows_stamps_clear(&l->stamps[1]);
        l->gen = 1;
    }
    /* rows once each (each chunk its rows of both sides), feature value rows
     * too (their stamps were made room for in flush) */
    pool_run(l->pool, phase_sparse, l);
    if (l->hist)
        history_step(l);
    if (l->cfg.shared)
        window_rows(l);
    for (int t = 0; t < l->nt; t++) {
        rows_mark_dirty(l->users, l->uniq[0][t], l->nuniq[0][t]);
        if (!l->cfg.shared) /* shared items change when a window is applied */
            rows_mark_dirty(l->items, l->uniq[1][t], l->nuniq[1][t]);
    }

    if (l->replaying) {
        l->st.replayed += E + NN;
    } else {
        l->st.events += E + NN;
        for (int m = 0; m < NN; m++)
            l->st.negatives += l->labels[m] == 0.0f;
    }
    l->st.pairs += P;
    l->st.batches++;
    if (!l->replaying) /* the loss of the events as they come */
        ewma_add(&l->loss_e, loss);
}

static void evict(learner_t *l);

/* Experience replay: replay·B events drawn uniformly from the rolling buffer
 * (the fraction by chance), learned in micro-batches of at most
 * batch_events; a history model's users once each per micro-batch (a draw
 * of a user taken already is drawn again, up to 4 times, then dropped),
 * their replayed item left out of their context (else the context would
 * hold the item it is asked to predict; it is the user's history now, which
 * may hold items clicked after the replayed event). Out of memory, the
 * batch replays nothing (or no more): what it learned stays learned. */
static void replay(learner_t *l, int B)
{
    size_t have = ring_size(l->ring);
    double want = (double)l->cfg.replay * B;
    long n = (long)want;
    if (rng_double(&l->rng) < want - (double)n)
        n++;
    if (n == 0 || have == 0)
        return;
    if (l->hist && l->rp_n < emb_entry_cap(l->users)) {
        size_t cap = emb_entry_cap(l->users);
        uint32_t *p = realloc(l->rp_item, sizeof(uint32_t) * cap);
        if (!p)
            return;
        for (size_t e = l->rp_n; e < cap; e++)
            p[e] = EMB_NONE;
        l->rp_item = p, l->rp_n = cap;
    }
    while (n > 0) {
        int take = n < l->cfg.batch_events ? (int)n : l->cfg.batch_events, got = 0;
        n -= take;
        /* the feature rows' gradient slots of a micro-batch of their own */
        if ((l->fu && feat_grad_begin(l->fu)) || (l->fi && feat_grad_begin(l->fi)))
            return;
        for (int b = 0, tries = 0; b < take; b++) {
            int64_t ts;
            size_t at = have > UINT32_MAX ? (size_t)(rng_next(&l->rng) % have)
                                          : rng_below(&l->rng, (uint32_t)have);
            ring_get(l->ring, at, &l->ev_ue[got], &l->ev_ie[got], &ts);
            if (l->hist) { /* one event a user: the context is worked out per user */
                if (l->rp_item[l->ev_ue[got]] != EMB_NONE) {
                    if (++tries <= 4) /* a user taken already: draw again, a few times */
                        b--;
                    continue;
                }
                tries = 0;
                l->rp_item[l->ev_ue[got]] = l->ev_ie[got];
            }
            l->ev_ts[got] = ts;
            l->ev_neg[got] = 0;
            l->gw[got] = 1.0f;
            got++;
        }
        l->replaying = 1;
        learn_batch(l, got);
        l->replaying = 0;
        for (int b = 0; l->hist && b < got; b++) /* learn_batch kept the positives' order */
            l->rp_item[l->ev_ue[b]] = EMB_NONE;
    }
}

/* learns the B events gathered in ev_ue/ev_ie; returns how many were refused */
static int flush(learner_t *l, int B)
{
    if (rows_stamps_reserve(&l->stamps[0], emb_row_cap(l->users)) ||
        rows_stamps_reserve(&l->stamps[1], emb_row_cap(l->items)) ||
        (l->fu && feat_grad_begin(l->fu)) || (l->fi && feat_grad_begin(l->fi))) {
        l->st.bad += B;
        return B;
    }
    learn_batch(l, B);
    /* the batch's positives join their users' histories after it is learned:
     * a positive is never in its own context */
    for (int b = 0; l->hist && b < l->npos; b++)
        hist_push(l->hist, l->ev_ue[b], l->ev_ie[b]);
    if (l->cfg.replay > 0.0f)
        replay(l, B);
    evict(l); /* between batches: no entry of a batch is held anywhere but the buffer */
    return 0;
}

/* Entry e of table t was just touched by event ev: a new id starts with no
 * features, then takes those the event carries for this side. */
static int side_features(feat_t *f, emb_table_t *t, uint32_t e, char side, const lrn_event_t *ev)
{
    if (feat_reserve(f, emb_entry_cap(t)))
        return -1;
    if (emb_entry_count(t, e) == 1)
        feat_clear(f, e);
    if (ev->nfeat > 0 && ev->feat)
        feat_set(f, e, side, ev->feat, ev->nfeat, ev->ts_ms);
    return 0;
}

/* user entry ue and item entry ie were just touched: a new id's history
 * starts empty, a new item is born. -1 when out of memory. */
static int history_ids(learner_t *l, uint32_t ue, uint32_t ie)
{
    if (hist_reserve(l->hist, emb_entry_cap(l->users), emb_entry_cap(l->items)))
        return -1;
    if (emb_entry_count(l->users, ue) == 1)
        hist_new_user(l->hist, ue);
    if (emb_entry_count(l->items, ie) == 1)
        hist_new_item(l->hist, ie);
    return 0;
}

size_t learner_learn(learner_t *l, const lrn_event_t *ev, size_t n)
{
    size_t accepted = 0;
    int B = 0;
    for (size_t i = 0; i < n; i++) {
        const lrn_event_t *e = &ev[i];
        uint32_t ue = emb_touch(l->users, e->user.h, e->user.id, e->user.len, e->ts_ms);
        uint32_t ie = ue == EMB_NONE
                          ? EMB_NONE
                          : emb_touch(l->items, e->item.h, e->item.id, e->item.len, e->ts_ms);
        if (ie == EMB_NONE || (l->fu && side_features(l->fu, l->users, ue, 'u', e)) ||
            (l->fi && side_features(l->fi, l->items, ie, 'i', e)) ||
            (l->hist && history_ids(l, ue, ie))) {
            l->st.bad++;
            continue;
        }
        l->ev_ue[B] = ue;
        l->ev_ie[B] = ie;
        l->ev_ts[B] = e->ts_ms;
        l->ev_neg[B] = e->negative ? 1 : 0;
        l->gw[B] = e->weight > 0.0f ? e->weight : 1.0f;
        accepted++;
        if (++B == l->cfg.batch_events) {
            accepted -= flush(l, B);
            B = 0;
        }
    }
    if (B)
        accepted -= flush(l, B);
    return accepted;
}

size_t learner_observe(learner_t *l, const lrn_event_t *ev, size_t n)
{
    size_t done = 0;
    for (size_t k = 0; l->hist && k < n; k++) {
        const lrn_event_t *e = &ev[k];
        if (e->negative)
            continue;
        uint32_t ie = emb_find(l->items, e->item.h, e->item.id, e->item.len);
        if (ie == EMB_NONE)
            continue;
        uint32_t ue = emb_touch(l->users, e->user.h, e->user.id, e->user.len, e->ts_ms);
        if (ue == EMB_NONE ||
            hist_reserve(l->hist, emb_entry_cap(l->users), emb_entry_cap(l->items)))
            continue;
        if (emb_entry_count(l->users, ue) == 1)
            hist_new_user(l->hist, ue);
        hist_push(l->hist, ue, ie);
        done++;
    }
    return done;
}

void learner_score(learner_t *l, const lrn_id_t *user, const lrn_id_t *items, int n, float *out)
{
    uint32_t ue = emb_find(l->users, user->h, user->id, user->len);
    for (int s = 0; s < n; s += l->maxb) {
        int c = n - s < l->maxb ? n - s : l->maxb;
        for (int b = 0; b < c; b++)
            l->cand[b] = emb_find(l->items, items[s + b].h, items[s + b].id, items[s + b].len);
        score_entries(l, ue, l->cand, c, out + s);
    }
}

void learner_vector(learner_t *l, char side, uint32_t entry, float *out)
{
    emb_table_t *t = side == 'u' ? l->users : l->items;
    feat_t *f = side == 'u' ? l->fu : l->fi;
    if (f)
        feat_gather(f, entry, l->fvec);
    else if (l->hist && side == 'u')
        history_context(l, entry, l->fvec, 0);
    model_vector(l->ops, l->model, side, emb_row(t, entry_row(t, entry)),
                 f || (l->hist && side == 'u') ? l->fvec : NULL, out);
}

static int user_in_ring(void *arg, uint32_t e)
{
    return ring_user_count(((learner_t *)arg)->ring, e) > 0;
}

static int item_in_ring(void *arg, uint32_t e)
{
    return ring_item_count(((learner_t *)arg)->ring, e) > 0;
}

/* entry e of table t ('u' or 'i') is about to be removed: the caller is told */
static void tell_gone(const learner_t *l, const emb_table_t *t, char side, uint32_t e)
{
    size_t len;
    const char *id = emb_entry_id(t, e, &len);
    if (l->on_gone)
        l->on_gone(l->gone_arg, side, id, len);
}

static void user_gone(void *arg, uint32_t e)
{
    wrows_drop(&((learner_t *)arg)->wu, e);
    tell_gone(arg, ((learner_t *)arg)->users, 'u', e);
}

static void item_gone(void *arg, uint32_t e)
{
    learner_t *l = arg;
    if (l->hist)
        hist_item_gone(l->hist, e);
    tell_gone(arg, ((learner_t *)arg)->items, 'i', e);
}

size_t learner_expire(learner_t *l, int64_t now_ms)
{
    return emb_expire(l->users, now_ms, user_in_ring, user_gone, l) +
           (l->cfg.shared ? 0 : emb_expire(l->items, now_ms, item_in_ring, item_gone, l));
}

void learner_on_gone(learner_t *l, lrn_gone_fn fn, void *arg)
{
    l->on_gone = fn;
    l->gone_arg = arg;
}

static int user_in_ring(void *arg, uint32_t e);
static int item_in_ring(void *arg, uint32_t e);

/* past max_users / max_items: down to 15/16 of it, least recently seen first */
static void evict(learner_t *l)
{
    if (l->cfg.max_users)
        emb_evict_lru(l->users, l->cfg.max_users, l->cfg.max_users - l->cfg.max_users / 16,
                      user_in_ring, user_gone, l);
    if (l->cfg.max_items && !l->cfg.shared)
        emb_evict_lru(l->items, l->cfg.max_items, l->cfg.max_items - l->cfg.max_items / 16,
                      item_in_ring, item_gone, l);
}

void learner_stats(const learner_t *l, learner_stats_t *out)
{
    *out = l->st;
    out->loss_ewma = l->loss_e.value;
    out->preq_hr10 = l->st.preq_n ? l->hr_sum / l->st.preq_n : 0.0;
    out->preq_ndcg10 = l->st.preq_n ? l->ndcg_sum / l->st.preq_n : 0.0;
    out->preq_hr10_ewma = l->hr_e.value;
    out->preq_ndcg10_ewma = l->ndcg_e.value;
    emb_stats(l->users, &out->users);
    emb_stats(l->items, &out->items);
}

/* ≤ 0 leaves one as it is */
static void learner_set_lr(learner_t *l, float lr_sparse, float lr_dense)
{
    if (lr_sparse > 0.0f)
        l->cfg.lr_sparse = lr_sparse;
    if (lr_dense > 0.0f)
        l->cfg.lr_dense = lr_dense;
}

int learner_vector_dim(const learner_t *l)
{
    return model_vector_dim(l->ops, l->model);
}

int learner_vector_layout(const learner_t *l, char *buf, size_t len)
{
    return model_vector_layout(l->ops, l->model, buf, len);
}

static int learner_dense_layout(const learner_t *l, char *buf, size_t len)
{
    return model_dense_layout(l->ops, l->model, buf, len);
}

dense_block_t *learner_dense(learner_t *l)
{
    return l->ops->dense(l->model);
}

emb_table_t *learner_users(learner_t *l)
{
    return l->users;
}

emb_table_t *learner_items(learner_t *l)
{
    return l->items;
}

#define LEARNER_MAGIC 0x334e524cu /* "LRN3": the model by name, its own state */

static void save_ewma(ser_writer_t *w, const ewma_t *e)
{
    ser_put(w, &e->value, sizeof(double));
    ser_u32(w, (uint32_t)e->primed);
}

static void load_ewma(ser_reader_t *r, ewma_t *e)
{
    ser_get(r, &e->value, sizeof(double));
    e->primed = ser_get_u32(r) != 0;
}

int learner_save(const learner_t *l, ser_writer_t *w)
{
    char name[MODEL_NAME_MAX] = {0};
    snprintf(name, sizeof(name), "%s", l->ops->name);
    ser_u32(w, LEARNER_MAGIC);
    ser_put(w, name, sizeof(name));
    ser_u32(w, (uint32_t)l->R);
    emb_save(l->users, w);
    emb_save(l->items, w);
    dense_block_save(l->ops->dense(l->model), w);
    if (l->ops->save && l->ops->save(l->model, w))
        return -1;
    ring_save(l->ring, w);
    ser_u32(w, (uint32_t)(l->fu != NULL) | (uint32_t)(l->fi != NULL) << 1 |
                   (uint32_t)(l->hist != NULL) << 2);
    if (l->fu)
        feat_save(l->fu, emb_entry_cap(l->users), w);
    if (l->fi)
        feat_save(l->fi, emb_entry_cap(l->items), w);
    if (l->hist && hist_save(l->hist, emb_entry_cap(l->users), emb_entry_cap(l->items), w))
        return -1;
    ser_put(w, l->rng.s, sizeof(l->rng.s));
    ser_put(w, &l->st, LEARNER_STATS_SAVED); /* plain counters: one record */
    save_ewma(w, &l->loss_e);
    save_ewma(w, &l->hr_e);
    save_ewma(w, &l->ndcg_e);
    ser_put(w, &l->hr_sum, sizeof(double));
    ser_put(w, &l->ndcg_sum, sizeof(double));
    return w->err ? -1 : 0;
}

int learner_load(learner_t *l, ser_reader_t *r, char *errstr, size_t len)
{
    char name[MODEL_NAME_MAX];
    uint32_t magic = ser_get_u32(r);
    ser_get(r, name, sizeof(name));
    uint32_t R = ser_get_u32(r);
    if (r->err || magic != LEARNER_MAGIC) {
        snprintf(errstr, len, "learner: not a saved learner of this version");
        return -1;
    }
    name[MODEL_NAME_MAX - 1] = '\0';
    window_reset(l); /* a window open before the load names entries of the old tables */
    if (strcmp(name, l->ops->name) != 0 || R != (uint32_t)l->R) {
        snprintf(errstr, len, "learner: saved %s with rows of %u floats, this one is %s with %d",
                 name, R, l->ops->name, l->R);
        return -1;
    }
    if (emb_load(l->users, r, errstr, len) || emb_load(l->items, r, errstr, len)) {
        size_t k = strlen(errstr);
        if (strstr(errstr, "saved rows are") && k < len)
            snprintf(errstr + k, len - k, " (%s rows keep %d floats of optimizer state)",
                     sparse_opt_name(l->cfg.sparse_opt),
                     optim_state_floats(l->cfg.sparse_opt, l->R));
        return -1;
    }
    if (dense_block_load(l->ops->dense(l->model), r, errstr, len) ||
        (l->ops->load && l->ops->load(l->model, r, errstr, len)) ||
        ring_load(l->ring, r, emb_entry_cap(l->users), emb_entry_cap(l->items), errstr, len))
        return -1;
    uint32_t sides = ser_get_u32(r);
    if (r->err || sides != ((uint32_t)(l->fu != NULL) | (uint32_t)(l->fi != NULL) << 1 |
                            (uint32_t)(l->hist != NULL) << 2)) {
        snprintf(errstr, len, "learner: saved with other tower features or history");
        return -1;
    }
    if ((l->fu && feat_load(l->fu, r, emb_entry_cap(l->users), errstr, len)) ||
        (l->fi && feat_load(l->fi, r, emb_entry_cap(l->items), errstr, len)) ||
        (l->hist && hist_load(l->hist, r, errstr, len)))
        return -1;
    learner_stats_t st = l->st; /* replayed goes on from here */
    if (ser_get(r, l->rng.s, sizeof(l->rng.s)) || ser_get(r, &st, LEARNER_STATS_SAVED)) {
        snprintf(errstr, len, "learner: short");
        return -1;
    }
    load_ewma(r, &l->loss_e);
    load_ewma(r, &l->hr_e);
    load_ewma(r, &l->ndcg_e);
    ser_get(r, &l->hr_sum, sizeof(double));
    ser_get(r, &l->ndcg_sum, sizeof(double));
    if (r->err) {
        snprintf(errstr, len, "learner: short");
        return -1;
    }
    l->st = st;
    return 0;
}

/* ---- shared mode: windows out, log records in (learner.h) ---- */

size_t learner_window_take(learner_t *l, const learner_window_sink_t *sink, void *arg)
{
    const int R = l->R;
    size_t len;
    for (size_t i = 0; i < l->wi.n; i++) {
        uint32_t e = l->wi.ent[i];
        if (e == EMB_NONE || !emb_entry_alive(l->items, e))
            continue;
        const char *id = emb_entry_id(l->items, e, &len);
        const float *a = l->wi.val + i * (size_t)l->wi.width;
        sink->row_grad(arg, LRN_TABLE_ITEMS, id, len, a, a + R, R);
    }
    int W = learner_user_width(l);
    for (size_t i = 0; i < l->wu.n; i++) {
        uint32_t e = l->wu.ent[i];
        uint32_t row =
            e == EMB_NONE || !emb_entry_alive(l->users, e) ? 0 : emb_entry_row(l->users, e);
        if (row == 0)
            continue;
        const char *id = emb_entry_id(l->users, e, &len);
        /* the row and its state are one stretch of the table (table.h) */
        sink->row_value(arg, LRN_TABLE_USERS, id, len, emb_row(l->users, row), W);
    }
    dense_block_t *d = l->ops->dense(l->model);
    if (l->wbatches && d->n)
        sink->dense(arg, LRN_TABLE_DENSE, l->wdense, d->n);
    size_t nb = l->wbatches;
    window_reset(l);
    return nb;
}

int learner_user_width(const learner_t *l)
{
    return l->R + optim_state_floats(l->cfg.sparse_opt, l->R);
}

/* the entry of id in t, made if new, seen at the time of the record being
 * applied (learner_apply_at), so that expiry and eviction treat an id
 * another member learned as recently seen */
static uint32_t entry_for(learner_t *l, emb_table_t *t, const char *id, size_t len)
{
    if (len < 1 || len > EMB_MAX_ID_LEN)
        return EMB_NONE;
    return emb_touch(t, id_hash(id, len), id, len, l->apply_ts);
}

void learner_apply_at(learner_t *l, int64_t ts_ms)
{
    l->apply_ts = ts_ms;
}

int learner_apply_item_grad(learner_t *l, const char *id, size_t len, const float *g,
                            const float *gsq, int R)
{
    uint32_t e = R == l->R ? entry_for(l, l->items, id, len) : EMB_NONE;
    uint32_t row = e == EMB_NONE ? 0 : emb_entry_row(l->items, e);
    if (row == 0)
        return -1;
    float *w = emb_row(l->items, row), *st = emb_row_state(l->items, row);
    if (l->cfg.sparse_opt == OPT_ADAGRAD) /* the window's squares, then one step */
        optim_adagrad_sum(w, st, g, gsq, R, l->cfg.lr_sparse, l->cfg.l2_sparse, l->cfg.adagrad_eps);
    else
        optim_row(l->cfg.sparse_opt, w, st, g, R, l->cfg.lr_sparse, l->cfg.l2_sparse,
                  l->cfg.adagrad_eps);
    emb_mark_dirty(l->items, e);
    return 0;
}

int learner_apply_user_value(learner_t *l, const char *id, size_t len, const float *v, int width)
{
    uint32_t e = width == learner_user_width(l) ? entry_for(l, l->users, id, len) : EMB_NONE;
    uint32_t row = e == EMB_NONE ? 0 : emb_entry_row(l->users, e);
    if (row == 0)
        return -1;
    /* not marked for publishing: the user's owner publishes what it learned,
     * and a copy written by another member would race the owner's newer one */
    memcpy(emb_row(l->users, row), v, sizeof(float) * (size_t)width);
    return 0;
}

int learner_apply_dense_grad(learner_t *l, const float *g, size_t n, uint32_t steps)
{
    return dense_block_apply_sum(l->ops->dense(l->model), g, n, steps, l->cfg.clip_norm,
                                 dense_lr(l), l->cfg.l2_dense);
}

/* ---- the learner as the daemon's engine (engine.h) ---- */

static void le_config(const engine_config_t *cfg, learner_config_t *lc)
{
    *lc = cfg->learner;
    lc->shared = cfg->shared;
    snprintf(lc->kind, sizeof(lc->kind), "%s", cfg->kind);
}

static int le_check(const engine_config_t *cfg, char *errstr, size_t len)
{
    learner_config_t lc;
    le_config(cfg, &lc);
    return learner_config_check(&lc, errstr, len);
}

static void *le_create(const engine_config_t *cfg, char *errstr, size_t len)
{
    learner_config_t lc;
    le_config(cfg, &lc);
    return learner_create(&lc, errstr, len);
}

static void le_free(void *l)
{
    learner_free(l);
}

static size_t le_learn(void *l, const lrn_event_t *ev, size_t n)
{
    return learner_learn(l, ev, n);
}

static size_t le_expire(void *l, int64_t now_ms)
{
    return learner_expire(l, now_ms);
}

static void le_on_gone(void *l, lrn_gone_fn fn, void *arg)
{
    learner_on_gone(l, fn, arg);
}

static void le_stats(const void *l, engine_stats_t *out)
{
    learner_stats(l, &out->lrn);
}

static void le_set_lr(void *l, float lr_sparse, float lr_dense)
{
    learner_set_lr(l, lr_sparse, lr_dense);
}

static emb_table_t *le_table(void *l, int k)
{
    return k == 0 ? learner_users(l) : k == 1 ? learner_items(l) : NULL;
}

static int le_vector_dim(const void *l)
{
    return learner_vector_dim(l);
}

static void le_vector(void *l, char side, uint32_t entry, float *out)
{
    learner_vector(l, side, entry, out);
}

static int le_vector_layout(const void *l, char *buf, size_t len)
{
    return learner_vector_layout(l, buf, len);
}

static int le_dense_layout(const void *l, char *buf, size_t len)
{
    return learner_dense_layout(l, buf, len);
}

static dense_block_t *le_dense(void *l)
{
    return learner_dense(l);
}

static int le_save(const void *l, ser_writer_t *w)
{
    return learner_save(l, w);
}

static int le_load(void *l, ser_reader_t *r, char *errstr, size_t len)
{
    return learner_load(l, r, errstr, len);
}

static size_t le_window_take(void *l, const learner_window_sink_t *sink, void *arg)
{
    return learner_window_take(l, sink, arg);
}

int learner_apply_row_grad(void *l, int table, const char *id, size_t len, const float *g,
                           const float *gsq, int R)
{
    return table == LRN_TABLE_ITEMS ? learner_apply_item_grad(l, id, len, g, gsq, R) : -1;
}

int learner_apply_row_value(void *l, int table, const char *id, size_t len, const float *v,
                            int width)
{
    return table == LRN_TABLE_USERS ? learner_apply_user_value(l, id, len, v, width) : -1;
}

int learner_apply_dense(void *l, int table, const float *g, size_t n, uint32_t steps)
{
    return table == LRN_TABLE_DENSE ? learner_apply_dense_grad(l, g, n, steps) : -1;
}

static void le_apply_at(void *l, int64_t ts_ms)
{
    learner_apply_at(l, ts_ms);
}

const engine_ops_t learner_engine = {
    .keys = "negatives,sampler,alpha,pool,loss,threads,optimizer,init_std,ring_capacity,"
            "max_users,max_items,preq_rate,replay",
    .check = le_check,
    .create = le_create,
    .free = le_free,
    .learn = le_learn,
    .expire = le_expire,
    .on_gone = le_on_gone,
    .stats = le_stats,
    .set_lr = le_set_lr,
    .table = le_table,
    .vector_dim = le_vector_dim,
    .vector = le_vector,
    .vector_layout = le_vector_layout,
    .dense_layout = le_dense_layout,
    .dense = le_dense,
    .save = le_save,
    .load = le_load,
    .window_take = le_window_take,
    .apply_row_grad = learner_apply_row_grad,
    .apply_row_value = learner_apply_row_value,
    .apply_dense = learner_apply_dense,
    .apply_at = le_apply_at,
};
