/* models.c — the table of models, by name (see model.h). A new model is its
 * own file and one line here. */
#include "model.h"

#include <stdio.h>
#include <string.h>

extern const model_ops_t neumf_ops, dssm_ops, mf_ops;
extern const model_ops_t lr_ops, widedeep_ops, dcn_ops;

static const model_ops_t *const models[] = {
    &neumf_ops,
    &dssm_ops,
    &mf_ops,
    &lr_ops,
    &widedeep_ops,
    &dcn_ops,
};

#define NMODELS ((int)(sizeof(models) / sizeof(models[0])))

/* The defaults, the first of them with the flags asked for: a retrieval
 * model, and a click-through one for `freshrec train --format criteo`. */
static const model_ops_t *const defaults[] = {
    &neumf_ops,
    &dcn_ops,
};

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
            off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
                                    models[i]->name);
}

void model_names(char *buf, size_t len)
{
    model_names_with(0, buf, len);
}
