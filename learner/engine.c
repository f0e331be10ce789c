/* engine.c — the daemon's one seam (see engine.h): each call goes to the
 * engine the model's table entry names. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct engine {
    const model_ops_t *model;
    const engine_ops_t *ops;
    void *impl;
};

static const engine_ops_t *engine_of(const model_ops_t *m)
{
    return m->engine ? m->engine : &learner_engine;
}

int engine_config_check(const engine_config_t *cfg, char *errstr, size_t len)
{
    const model_ops_t *m = model_find(cfg->kind);
    if (!m) {
        char names[256];
        model_names(names, sizeof(names));
        snprintf(errstr, len, "unknown model '%.*s' (models: %s)", MODEL_NAME_MAX, cfg->kind,
                 names);
        return -1;
    }
    if (cfg->shared && !engine_of(m)->window_take) {
        snprintf(errstr, len, "%s cannot be learned by several members sharing one model", m->name);
        return -1;
    }
    return engine_of(m)->check(cfg, errstr, len);
}

engine_t *engine_create(const engine_config_t *cfg, char *errstr, size_t len)
{
    if (engine_config_check(cfg, errstr, len) < 0)
        return NULL;
    engine_t *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(errstr, len, "engine: out of memory");
        return NULL;
    }
    e->model = model_find(cfg->kind);
    e->ops = engine_of(e->model);
    if (!(e->impl = e->ops->create(cfg, errstr, len))) {
        free(e);
        return NULL;
    }
    return e;
}

void engine_free(engine_t *e)
{
    if (!e)
        return;
    e->ops->free(e->impl);
    free(e);
}

const model_ops_t *engine_model(const engine_t *e)
{
    return e->model;
}

/* key is one of the comma-separated list's */
static int list_has(const char *list, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, key, n) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

int engine_reads(const model_ops_t *m, const char *key)
{
    return list_has(engine_of(m)->keys, key) || list_has(m->keys, key);
}

size_t engine_learn(engine_t *e, const lrn_event_t *ev, size_t n)
{
    return e->ops->learn(e->impl, ev, n);
}

void engine_flush(engine_t *e)
{
    if (e->ops->flush)
        e->ops->flush(e->impl);
}

size_t engine_expire(engine_t *e, int64_t now_ms)
{
    return e->ops->expire(e->impl, now_ms);
}

void engine_on_gone(engine_t *e, lrn_gone_fn fn, void *arg)
{
    e->ops->on_gone(e->impl, fn, arg);
}

void engine_stats(const engine_t *e, engine_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    e->ops->stats(e->impl, out);
}

void engine_set_lr(engine_t *e, float lr_sparse, float lr_dense)
{
    e->ops->set_lr(e->impl, lr_sparse, lr_dense);
}

emb_table_t *engine_table(engine_t *e, int k)
{
    return e->ops->table(e->impl, k);
}

int engine_vector_dim(const engine_t *e)
{
    return e->ops->vector_dim(e->impl);
}

void engine_vector(engine_t *e, char side, uint32_t entry, float *out)
{
    e->ops->vector(e->impl, side, entry, out);
}

int engine_vector_layout(const engine_t *e, char *buf, size_t len)
{
    return e->ops->vector_layout(e->impl, buf, len);
}

int engine_dense_layout(const engine_t *e, char *buf, size_t len)
{
    return e->ops->dense_layout(e->impl, buf, len);
}

dense_block_t *engine_dense(engine_t *e)
{
    return e->ops->dense(e->impl);
}

#define ENGINE_MAGIC 0x31474e45u /* "ENG1" */

size_t engine_window_take(engine_t *e, const learner_window_sink_t *sink, void *arg)
{
    return e->ops->window_take ? e->ops->window_take(e->impl, sink, arg) : 0;
}

int engine_apply_row_grad(void *e, int table, const char *id, size_t len, const float *g,
                          const float *gsq, int R)
{
    engine_t *x = e;
    return x->ops->apply_row_grad ? x->ops->apply_row_grad(x->impl, table, id, len, g, gsq, R) : -1;
}

int engine_apply_row_value(void *e, int table, const char *id, size_t len, const float *v,
                           int width)
{
    engine_t *x = e;
    return x->ops->apply_row_value ? x->ops->apply_row_value(x->impl, table, id, len, v, width)
                                   : -1;
}

int engine_apply_dense(void *e, int table, const float *g, size_t n, uint32_t steps)
{
    engine_t *x = e;
    return x->ops->apply_dense ? x->ops->apply_dense(x->impl, table, g, n, steps) : -1;
}

void engine_apply_at(engine_t *e, int64_t ts_ms)
{
    if (e->ops->apply_at)
        e->ops->apply_at(e->impl, ts_ms);
}

int engine_save(const engine_t *e, ser_writer_t *w)
{
    char name[MODEL_NAME_MAX] = {0};
    snprintf(name, sizeof(name), "%s", e->model->name);
    ser_u32(w, ENGINE_MAGIC);
    ser_put(w, name, sizeof(name));
    if (e->ops->save(e->impl, w))
        return -1;
    return w->err ? -1 : 0;
}

int engine_load(engine_t *e, ser_reader_t *r, char *errstr, size_t len)
{
    char name[MODEL_NAME_MAX];
    uint32_t magic = ser_get_u32(r);
    ser_get(r, name, sizeof(name));
    if (r->err || magic != ENGINE_MAGIC) {
        snprintf(errstr, len, "engine: not a saved engine of this version");
        return -1;
    }
    name[MODEL_NAME_MAX - 1] = '\0';
    if (strcmp(name, e->model->name) != 0) {
        snprintf(errstr, len, "engine: saved model %s, this one is %s", name, e->model->name);
        return -1;
    }
    return e->ops->load(e->impl, r, errstr, len);
}

uint64_t engine_shared_digest(engine_t *e)
{
    dense_block_t *d = engine_dense(e);
    uint64_t h =
        e->ops->shared_digest ? e->ops->shared_digest(e->impl) : emb_digest(engine_table(e, 1));
    if (d && d->n) {
        h += XXH3_64bits(d->params, sizeof(float) * d->n);
        h += XXH3_64bits_withSeed(d->m, sizeof(float) * d->n, 1);
        h += XXH3_64bits_withSeed(d->v, sizeof(float) * d->n, 2);
        h += (uint64_t)d->t;
    }
    return h;
}
