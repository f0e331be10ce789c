/* modelcfg.c — the [model] keys turned into an engine_config_t (both the
 * learner's and the click-through part, each engine reads its own), with the
 * feature fields named by cat_fields, num_fields and item_fields. config_validate and freshrecd's
 * start-up both call modelcfg_from, so what start-up would refuse, validation refuses first. Not
 * for: the single-key checks of the table (config.c). */
#define _POSIX_C_SOURCE 200809L

#include "modelcfg.h"

#include "model.h"
#include "sampler.h"
#include "widths.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int modelcfg_field_index(const char names[][EVENT_MAX_NAME + 1], int from, int n, const char *name)
{
    for (int f = from; f < n; f++)
        if (strcmp(name, names[f]) == 0)
            return f;
    return -1;
}

/* "a,b,c" into names[first..]; -1 on an empty or too long name, too many */
static int split_names(const char *list, char names[][EVENT_MAX_NAME + 1], int first, int max,
                       int *n, const char *key, char *err, size_t len)
{
    *n = first;
    if (!list[0])
        return 0;
    char buf[CONFIG_STR];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!*t || strlen(t) > EVENT_MAX_NAME || *n == max) {
            snprintf(err, len, "[model] %s = %s: names of 1..%d bytes, at most %d", key, list,
                     EVENT_MAX_NAME, max - first);
            return -1;
        }
        for (int i = 0; i < *n; i++)
            if (strcmp(names[i], t) == 0) {
                snprintf(err, len, "[model] %s: '%s' twice (or it is user/item)", key, t);
                return -1;
            }
        snprintf(names[(*n)++], EVENT_MAX_NAME + 1, "%s", t);
    }
    return 0;
}

/* The click-through model's fields (user, item, then cat_fields; num_fields)
 * and shape. */
static int ctr_from(modelcfg_t *m, const fr_config_t *c, const char **key, char *err, size_t len)
{
    ctr_config_t *cc = &m->ec.ctr;
    snprintf(m->cat_names[0], sizeof(m->cat_names[0]), "user");
    snprintf(m->cat_names[1], sizeof(m->cat_names[1]), "item");
    *key = "cat_fields";
    if (split_names(c->cat_fields, m->cat_names, 2, CTR_MAX_FIELDS, &m->ncat, "cat_fields", err,
                    len))
        return -1;
    *key = "num_fields";
    if (split_names(c->num_fields, m->num_names, 0, CTR_MAX_FIELDS, &m->nnum, "num_fields", err,
                    len))
        return -1;
    m->cat_from = 2;
    for (int f = 0; f < m->ncat; f++)
        m->cat_side[f] = 'x', m->cat_field[f] = f;
    for (int f = 0; f < m->nnum; f++)
        m->num_side[f] = 'x', m->num_field[f] = f;
    cc->ncat = m->ncat;
    cc->nnum = m->nnum;
    cc->expire_ms = (int64_t)c->expire_s * 1000;
    cc->emb_dim = c->dim;
    cc->hash_bits = c->hash_bits;
    cc->wide_bits = c->wide_bits;
    cc->cross_layers = c->cross_layers;
    cc->admit_after = (uint32_t)c->admit_after;
    cc->lr_sparse = (float)c->lr_sparse;
    cc->lr_dense = (float)c->lr_dense;
    cc->l2_sparse = (float)c->l2_sparse;
    cc->l2_dense = (float)c->l2_dense;
    cc->batch = c->batch_events;
    cc->auc_window = (size_t)c->auc_window;
    cc->threads = c->threads;
    cc->seed = (uint64_t)c->seed;
    char buf[CONFIG_STR], why[256];
    *key = "deep";
    if (widths_parse(c->deep, 0, CTR_MAX_LAYERS, cc->mlp, &cc->nmlp, why, sizeof(why))) {
        snprintf(err, len, "[model] deep = %s: %s", c->deep, why);
        return -1;
    }
    snprintf(buf, sizeof(buf), "%s", c->crosses);
    *key = "crosses";
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(t, ':');
        int f1 = -1, f2 = -1;
        if (colon) {
            *colon = '\0';
            f1 = modelcfg_field_index(m->cat_names, 0, m->ncat, t);
            f2 = modelcfg_field_index(m->cat_names, 0, m->ncat, colon + 1);
        }
        if (f1 < 0 || f2 < 0 || f1 == f2 || cc->ncross == CTR_MAX_CROSSES) {
            snprintf(err, len,
                     "[model] crosses = %s: pairs a:b of two different fields among "
                     "user, item and cat_fields",
                     c->crosses);
            return -1;
        }
        cc->cross[cc->ncross][0] = f1;
        cc->cross[cc->ncross][1] = f2;
        cc->ncross++;
    }
    /* the one bound of ctr_create narrower than the table's: name its key */
    *key = "dim";
    if (c->dim > 256) {
        snprintf(err, len, "[model] dim = %d: %s embeds each field in at most 256", c->dim,
                 c->model);
        return -1;
    }
    return 0;
}

/* DSSM features: cat_fields and num_fields, each to the item tower when
 * item_fields names it, else to the user tower. */
static int pair_features(modelcfg_t *m, const fr_config_t *c, const char **key, char *err,
                         size_t len)
{
    learner_config_t *lc = &m->ec.learner;
    char items[CTR_MAX_FIELDS][EVENT_MAX_NAME + 1];
    int nitems = 0;
    *key = "cat_fields";
    if (split_names(c->cat_fields, m->cat_names, 0, CTR_MAX_FIELDS, &m->ncat, "cat_fields", err,
                    len))
        return -1;
    *key = "num_fields";
    if (split_names(c->num_fields, m->num_names, 0, CTR_MAX_FIELDS, &m->nnum, "num_fields", err,
                    len))
        return -1;
    *key = "item_fields";
    if (split_names(c->item_fields, items, 0, CTR_MAX_FIELDS, &nitems, "item_fields", err, len))
        return -1;
    if (m->ncat + m->nnum > 0 && !(model_find(m->ec.kind)->flags & MODEL_FEATURES)) {
        char feat[128], fields[128];
        model_names_with(MODEL_FEATURES, feat, sizeof(feat));
        model_names_with(MODEL_FIELDS, fields, sizeof(fields));
        *key = m->ncat ? "cat_fields" : "num_fields";
        snprintf(err, len,
                 "[model] cat_fields/num_fields: %s learns from ids only; features are for "
                 "%s%s%s",
                 c->model, feat, feat[0] && fields[0] ? ", " : "", fields);
        return -1;
    }
    for (int k = 0; k < nitems; k++) {
        if (modelcfg_field_index(m->cat_names, 0, m->ncat, items[k]) < 0 &&
            modelcfg_field_index(m->num_names, 0, m->nnum, items[k]) < 0) {
            snprintf(err, len,
                     "[model] item_fields: '%.64s' is in neither cat_fields nor num_fields",
                     items[k]);
            return -1;
        }
    }
    for (int dense = 0; dense < 2; dense++) {
        int n = dense ? m->nnum : m->ncat;
        *key = dense ? "num_fields" : "cat_fields";
        for (int f = 0; f < n; f++) {
            const char *name = dense ? m->num_names[f] : m->cat_names[f];
            int item = modelcfg_field_index(items, 0, nitems, name) >= 0;
            int *count = item ? (dense ? &lc->inum : &lc->icat) : (dense ? &lc->unum : &lc->ucat);
            if (*count == FEAT_MAX_FIELDS) {
                snprintf(err, len, "[model] at most %d categorical and %d dense fields per tower",
                         FEAT_MAX_FIELDS, FEAT_MAX_FIELDS);
                return -1;
            }
            (dense ? m->num_side : m->cat_side)[f] = item ? 'i' : 'u';
            (dense ? m->num_field : m->cat_field)[f] = (*count)++;
        }
    }
    lc->feat_dim = c->feature_dim;
    lc->feat_hash_bits = c->hash_bits;
    return 0;
}

static int learner_from(modelcfg_t *m, const fr_config_t *c, const char **key, char *err,
                        size_t len)
{
    learner_config_t *lc = &m->ec.learner;
    char why[256];
    *key = "mlp";
    if (widths_parse(c->mlp, 2, NEUMF_MAX_LAYERS, lc->model.mlp, &lc->model.nmlp, why,
                     sizeof(why))) {
        snprintf(err, len, "[model] mlp = %s: %s", c->mlp, why);
        return -1;
    }
    lc->towers.dim = c->dim;
    lc->towers.gamma = (float)c->gamma;
    *key = "tower";
    if (widths_parse(c->tower, 1, DSSM_MAX_LAYERS, lc->towers.tower, &lc->towers.ntower, why,
                     sizeof(why))) {
        snprintf(err, len, "[model] tower = %s: %s", c->tower, why);
        return -1;
    }
    lc->model.dim = c->dim;
    lc->history = c->history;
    lc->history_decay = (float)c->history_decay;
    lc->user_weight = (float)c->user_weight;
    lc->transition_lr = (float)c->transition_lr;
    lc->replay = (float)c->replay;
    lc->negatives = c->negatives;
    int k = samp_kind_parse(c->sampler);
    int lo = loss_kind_parse(c->loss);
    *key = k < 0 ? "sampler" : "loss";
    if (k < 0 || lo < 0) {
        snprintf(err, len, "[model] sampler or loss unknown");
        return -1;
    }
    lc->sampler.kind = (samp_kind_t)k;
    lc->sampler.alpha = (float)c->alpha;
    lc->sampler.pool = c->pool;
    lc->loss = (loss_kind_t)lo;
    lc->batch_events = c->batch_events;
    lc->threads = c->threads;
    lc->sparse_opt = (sparse_opt_t)sparse_opt_parse(c->optimizer);
    lc->lr_sparse = (float)c->lr_sparse;
    lc->lr_dense = (float)c->lr_dense;
    lc->l2_sparse = (float)c->l2_sparse;
    lc->l2_dense = (float)c->l2_dense;
    lc->init_std = (float)c->init_std;
    lc->ring_capacity = (size_t)c->ring_capacity;
    lc->admit_after = (uint32_t)c->admit_after;
    lc->expire_ms = (int64_t)c->expire_s * 1000;
    lc->max_users = (size_t)c->max_users;
    lc->max_items = (size_t)c->max_items;
    lc->preq_rate = c->preq_rate;
    lc->seed = (uint64_t)c->seed;
    return 0;
}

int modelcfg_from(modelcfg_t *m, const fr_config_t *c, const char **key, char *errstr, size_t len)
{
    memset(m, 0, sizeof(*m));
    learner_config_default(&m->ec.learner);
    ctr_config_default(&m->ec.ctr);
    *key = "kind";
    const model_ops_t *mo = model_find(c->model);
    if (!mo) {
        char names[256];
        model_names(names, sizeof(names));
        snprintf(errstr, len, "[model] kind = %s: freshrecd learns %s", c->model, names);
        return -1;
    }
    snprintf(m->ec.kind, sizeof(m->ec.kind), "%s", mo->name);
    /* the shared keys go to both parts; each engine reads its own */
    if (learner_from(m, c, key, errstr, len))
        return -1;
    /* the event's features: the example's fields (click-through), else
     * the towers' (or none) */
    if ((mo->flags & MODEL_FIELDS) ? ctr_from(m, c, key, errstr, len)
                                   : pair_features(m, c, key, errstr, len))
        return -1;
    m->ec.shared = c->model_topic[0] != 0; /* one model, several members ([cluster]) */
    *key = "replay"; /* the click-through models do not read it (config_warnings) */
    if (c->replay > 0.0 && m->ec.shared && !(mo->flags & MODEL_FIELDS)) {
        snprintf(errstr, len,
                 "[model] replay = %g: members sharing one model ([cluster] model_topic) do not "
                 "replay",
                 c->replay);
        return -1;
    }
    char why[256];
    *key = "kind";
    if (engine_config_check(&m->ec, why, sizeof(why)) < 0) {
        snprintf(errstr, len, "[model] kind = %s: %s", c->model, why);
        return -1;
    }
    return 0;
}
