/* models.c — the table of models, by name (see model.h), and the defaults
 * of the ops a model may leave NULL. A new model is its own file and one
 * line here. */
#include "model.h"

#include <stdio.h>
#include <string.h>

extern const model_ops_t neumf_ops, dssm_ops, mf_ops, hmf_ops;
extern const model_ops_t lr_ops, widedeep_ops, dcn_ops;

static const model_ops_t *const models[] = {
    &neumf_ops, &dssm_ops, &mf_ops, &hmf_ops, &lr_ops, &widedeep_ops, &dcn_ops,
};

#define NMODELS ((int)(sizeof(models) / sizeof(models[0])))

/* The defaults, the first of them with the flags asked for: a retrieval
 * model, and a click-through one for `freshrec train --format criteo`. */
static const model_ops_t *const defaults[] = {
    &neumf_ops,
    &dcn_ops,
};

void model_share_params(const model_ops_t *o, void *worker, void *master)
{
    if (o->share_params)
        o->share_params(worker, master);
    else
        dense_block_share_params(o->dense(worker), o->dense(master));
}

int model_vector_dim(const model_ops_t *o, const void *m)
{
    return o->vector_dim ? o->vector_dim(m) : o->row_width(m, 'u');
}

void model_vector(const model_ops_t *o, void *m, char side, const float *row, const float *feat,
                  float *out)
{
    if (o->vector)
        o->vector(m, side, row, feat, out);
    else
        memcpy(out, row, sizeof(float) * (size_t)o->row_width(m, side));
}

int model_vector_layout(const model_ops_t *o, const void *m, char *buf, size_t len)
{
    if (o->vector_layout)
        return o->vector_layout(m, buf, len);
    int n = snprintf(buf, len, "%s:0:%d", o->name, model_vector_dim(o, m));
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int model_dense_layout(const model_ops_t *o, const void *m, char *buf, size_t len)
{
    if (o->dense_layout)
        return o->dense_layout(m, buf, len);
    if (len < 1)
        return -1;
    buf[0] = '\0';
    return 0;
}

const model_ops_t *model_find(const char *name)
{
    for (int i = 0; name && i < NMODELS; i++)
        if (strcmp(name, models[i]->name) == 0)
            return models[i];
    return NULL;
}

const model_ops_t *model_at(int i)
{
    return i >= 0 && i < NMODELS ? models[i] : NULL;
}

const model_ops_t *model_default(unsigned flags)
{
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if ((defaults[i]->flags & flags) == flags)
            return defaults[i];
    return NULL;
}

void model_names_with(unsigned flags, char *buf, size_t len)
{
    size_t off = 0;
    if (len)
        buf[0] = '\0';
    for (int i = 0; i < NMODELS && off < len; i++)
        if ((models[i]->flags & flags) == flags)
            off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", models[i]->name);
}

void model_names(char *buf, size_t len)
{
    model_names_with(0, buf, len);
}
