/* model.c — dispatch to NeuMF or DSSM (see model.h). */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pairmodel {
    model_kind_t kind;
    neumf_t *neumf;
    dssm_t *dssm;
};

static const char *names[] = {"neumf", "dssm"};

int model_kind_parse(const char *name)
{
    for (int i = 0; i < 2; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

const char *model_kind_name(model_kind_t k)
{
    return (unsigned)k < 2 ? names[k] : "?";
}

pairmodel_t *pairmodel_create(model_kind_t kind, const neumf_config_t *nc,
                              const dssm_config_t *dc, int max_batch, uint64_t seed,
                              char *errstr, size_t len)
{
    pairmodel_t *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(errstr, len, "model: out of memory");
        return NULL;
    }
    p->kind = kind;
    if (kind == MODEL_NEUMF) {
        neumf_config_t c = *nc;
        c.max_batch = max_batch;
        c.seed = seed;
        p->neumf = neumf_create(&c, errstr, len);
    } else if (kind == MODEL_DSSM) {
        dssm_config_t c = *dc;
        c.max_batch = max_batch;
        c.seed = seed;
        p->dssm = dssm_create(&c, errstr, len);
    } else {
        snprintf(errstr, len, "model: unknown kind %d", (int)kind);
    }
    if (!p->neumf && !p->dssm) {
        free(p);
        return NULL;
    }
    return p;
}

void pairmodel_free(pairmodel_t *p)
{
    if (!p)
        return;
    neumf_free(p->neumf);
    dssm_free(p->dssm);
    free(p);
}

model_kind_t pairmodel_kind(const pairmodel_t *p)
{
    return p->kind;
}

int pairmodel_row_width(const pairmodel_t *p)
{
    return p->neumf ? neumf_row_width(p->neumf) : dssm_row_width(p->dssm);
}

dense_block_t *pairmodel_dense(pairmodel_t *p)
{
    return p->neumf ? neumf_dense(p->neumf) : dssm_dense(p->dssm);
}

void pairmodel_forward(pairmodel_t *p, float *logits, const float *const *urows,
                       const float *const *irows, const float *const *ufeat,
                       const float *const *ifeat, int B)
{
    if (p->neumf)
        neumf_forward(p->neumf, logits, urows, irows, B);
    else
        dssm_forward(p->dssm, logits, urows, irows, ufeat, ifeat, B);
}

void pairmodel_backward(pairmodel_t *p, float *du, float *di, float *dfu, float *dfi,
                        const float *dlogits, int B)
{
    if (p->neumf)
        neumf_backward(p->neumf, du, di, dlogits, B);
    else
        dssm_backward(p->dssm, du, di, dfu, dfi, dlogits, B);
}

void pairmodel_share_params(pairmodel_t *worker, pairmodel_t *master)
{
    dense_block_share_params(pairmodel_dense(worker), pairmodel_dense(master));
}

int pairmodel_feat_width(const pairmodel_t *p, char side)
{
    return p->dssm ? dssm_feat_width(p->dssm, side) : 0;
}

int pairmodel_vector_dim(const pairmodel_t *p)
{
    return p->neumf ? neumf_row_width(p->neumf) : dssm_out_dim(p->dssm);
}

void pairmodel_vector(pairmodel_t *p, char side, const float *row, const float *feat, float *out)
{
    if (p->neumf) {
        memcpy(out, row, sizeof(float) * neumf_row_width(p->neumf));
    } else if (side == 'u') {
        dssm_user_vector(p->dssm, out, row, feat);
    } else {
        dssm_item_vector(p->dssm, out, row, feat);
    }
}

int pairmodel_vector_layout(const pairmodel_t *p, char *buf, size_t len)
{
    if (p->neumf)
        return neumf_row_layout(p->neumf, buf, len);
    int n = snprintf(buf, len, "tower:0:%d", dssm_out_dim(p->dssm));
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int pairmodel_dense_layout(const pairmodel_t *p, char *buf, size_t len)
{
    return p->neumf ? neumf_dense_layout(p->neumf, buf, len)
                    : dssm_dense_layout(p->dssm, buf, len);
}
