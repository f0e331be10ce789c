/* models.c — the table of models, by name (see model.h). A new model is its
 * own file and one line here. */
#include "model.h"

#include <stdio.h>
#include <string.h>

extern const model_ops_t neumf_ops, dssm_ops, mf_ops;
extern const model_ops_t lr_ops, widedeep_ops, dcn_ops; /* ctrengine.c */

static const model_ops_t *const models[] = {
    &neumf_ops,
    &dssm_ops,
    &mf_ops,
    &lr_ops,
    &widedeep_ops,
    &dcn_ops,
};

#define NMODELS ((int)(sizeof(models) / sizeof(models[0])))

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

void model_names(char *buf, size_t len)
{
    size_t off = 0;
    if (len)
        buf[0] = '\0';
    for (int i = 0; i < NMODELS && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", models[i]->name);
}
