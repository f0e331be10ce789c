/* feat.c — one tower's features: value table, normaliser, per-id store,
 * gather and sparse gradient step (see feat.h). */
#include "feat.h"

#include "ctrlayers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct feat {
    feat_config_t cfg;
    int F;
    emb_table_t *tab; /* categorical values of every field; NULL without any */
    norm_t norm;      /* nnum */
    uint32_t cap;     /* entries the store has room for */
    uint32_t *cent;   /* (cap, ncat) the value's entry in tab, EMB_NONE: missing */
    float *num;       /* (cap, nnum) raw dense values, NAN: missing */

    /* gradient step: value rows touched, de-duplicated by stamp */
    int max_pairs;
    uint32_t *stamp, *slot;
    size_t scap;
    uint32_t gen;
    uint32_t *uniq;
    int nuniq;
    float *acc; /* (max_pairs · ncat, dim) */
};

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t k = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL + (a << 6) + (a >> 2));
    k ^= k >> 31;
    k *= 0xd6e8feb86659fd93ULL;
    return k ^ (k >> 32);
}

feat_t *feat_create(const feat_config_t *cfg, int max_pairs, char *errstr, size_t len)
{
    if (cfg->ncat < 0 || cfg->ncat > FEAT_MAX_FIELDS || cfg->nnum < 0 ||
        cfg->nnum > FEAT_MAX_FIELDS || cfg->dim < 1 || cfg->dim > 256 || cfg->hash_bits < 0 ||
        cfg->hash_bits > 30 || !(cfg->clip > 0.0f) || max_pairs < 1) {
        snprintf(errstr, len,
                 "features: at most %d categorical and %d dense fields, dim 1..256, "
                 "hash_bits 0..30, clip > 0",
                 FEAT_MAX_FIELDS, FEAT_MAX_FIELDS);
        return NULL;
    }
    feat_t *f = calloc(1, sizeof(*f));
    if (!f)
        goto oom;
    f->cfg = *cfg;
    f->F = cfg->ncat * cfg->dim + cfg->nnum;
    f->max_pairs = max_pairs;
    if (cfg->ncat) {
        emb_config_t ec = {.width = cfg->dim,
                           .state = optim_state_floats(cfg->opt, cfg->dim),
                           .admit_after = cfg->admit_after ? cfg->admit_after : 1,
                           .init_std = cfg->init_std,
                           .seed = cfg->seed};
        if (!(f->tab = emb_create(&ec, errstr, len))) {
            free(f);
            return NULL;
        }
        f->uniq = malloc(sizeof(uint32_t) * (size_t)max_pairs * cfg->ncat);
        f->acc = malloc(sizeof(float) * (size_t)max_pairs * cfg->ncat * cfg->dim);
        if (!f->uniq || !f->acc)
            goto oom;
    }
    if (cfg->nnum && norm_init(&f->norm, cfg->nnum, cfg->clip))
        goto oom;
    return f;
oom:
    snprintf(errstr, len, "features: out of memory");
    feat_free(f);
    return NULL;
}

void feat_free(feat_t *f)
{
    if (!f)
        return;
    emb_free(f->tab);
    norm_free(&f->norm);
    free(f->cent);
    free(f->num);
    free(f->stamp);
    free(f->slot);
    free(f->uniq);
    free(f->acc);
    free(f);
}

int feat_width(const feat_t *f)
{
    return f->F;
}

int feat_reserve(feat_t *f, uint32_t cap)
{
    if (cap <= f->cap)
        return 0;
    uint32_t n = f->cap ? f->cap : 1024;
    while (n < cap)
        n = n > UINT32_MAX / 2 ? cap : n * 2;
    const int nc = f->cfg.ncat, nn = f->cfg.nnum;
    if (nc) {
        uint32_t *c = realloc(f->cent, sizeof(uint32_t) * (size_t)n * nc);
        if (!c)
            return -1;
        f->cent = c;
        for (size_t i = (size_t)f->cap * nc; i < (size_t)n * nc; i++)
            c[i] = EMB_NONE;
    }
    if (nn) {
        float *v = realloc(f->num, sizeof(float) * (size_t)n * nn);
        if (!v)
            return -1;
        f->num = v;
        for (size_t i = (size_t)f->cap * nn; i < (size_t)n * nn; i++)
            v[i] = NAN;
    }
    f->cap = n;
    return 0;
}

void feat_clear(feat_t *f, uint32_t e)
{
    if (e >= f->cap)
        return;
    for (int k = 0; k < f->cfg.ncat; k++)
        f->cent[(size_t)e * f->cfg.ncat + k] = EMB_NONE;
    for (int k = 0; k < f->cfg.nnum; k++)
        f->num[(size_t)e * f->cfg.nnum + k] = NAN;
}

/* The entry of field k's value in the value table (admitted when due). */
static uint32_t value_entry(feat_t *f, int k, const lrn_feat_t *v, int64_t ts)
{
    char key[EMB_MAX_ID_LEN];
    size_t n;
    uint64_t h;
    if (f->cfg.hash_bits) {
        uint64_t bucket = v->h & (((uint64_t)1 << f->cfg.hash_bits) - 1);
        n = (size_t)snprintf(key, sizeof(key), "%d:%llu", k, (unsigned long long)bucket);
        h = mix(bucket, (uint64_t)k + 1);
    } else {
        if (v->len + 1 > sizeof(key))
            return EMB_NONE;
        key[0] = (char)k; /* the field first: the same bytes in two fields are two values */
        memcpy(key + 1, v->id, v->len);
        n = v->len + 1;
        h = mix(v->h, (uint64_t)k + 1);
    }
    return emb_touch(f->tab, h, key, n, ts);
}

int feat_set(feat_t *f, uint32_t e, char side, const lrn_feat_t *fs, int n, int64_t ts_ms)
{
    if (e >= f->cap)
        return 0;
    const int nc = f->cfg.ncat, nn = f->cfg.nnum;
    float x[FEAT_MAX_FIELDS];
    unsigned char present[FEAT_MAX_FIELDS] = {0};
    int taken = 0, dense = 0;
    for (int i = 0; i < n; i++) {
        const lrn_feat_t *v = &fs[i];
        if (v->side != side || v->field < 0)
            continue;
        if (!v->dense && v->field < nc) {
            uint32_t ve = value_entry(f, v->field, v, ts_ms);
            if (ve == EMB_NONE)
                continue;
            f->cent[(size_t)e * nc + v->field] = ve;
            taken++;
        } else if (v->dense && v->field < nn && isfinite(v->num)) {
            f->num[(size_t)e * nn + v->field] = v->num;
            x[v->field] = v->num;
            present[v->field] = 1;
            dense = 1;
            taken++;
        }
    }
    if (dense) {
        for (int k = 0; k < nn; k++)
            if (!present[k])
                x[k] = 0.0f;
        norm_update(&f->norm, x, present);
    }
    return taken;
}

void feat_gather(feat_t *f, uint32_t e, float *out)
{
    const int nc = f->cfg.ncat, nn = f->cfg.nnum, D = f->cfg.dim;
    if (e >= f->cap) {
        memset(out, 0, sizeof(float) * f->F);
        return;
    }
    for (int k = 0; k < nc; k++) {
        uint32_t ve = f->cent[(size_t)e * nc + k];
        if (ve == EMB_NONE)
            memset(out + k * D, 0, sizeof(float) * D);
        else
            memcpy(out + k * D, emb_row(f->tab, emb_entry_row(f->tab, ve)), sizeof(float) * D);
    }
    if (nn)
        norm_apply(&f->norm, out + nc * D, f->num + (size_t)e * nn, NULL);
}

int feat_grad_begin(feat_t *f)
{
    f->nuniq = 0;
    if (!f->tab)
        return 0;
    size_t need = emb_row_cap(f->tab);
    if (need > f->scap) {
        size_t n = f->scap ? f->scap : 1024;
        while (n < need)
            n *= 2;
        uint32_t *a = realloc(f->stamp, n * sizeof(uint32_t));
        if (!a)
            return -1;
        f->stamp = a;
        memset(a + f->scap, 0, (n - f->scap) * sizeof(uint32_t));
        uint32_t *b = realloc(f->slot, n * sizeof(uint32_t));
        if (!b)
            return -1;
        f->slot = b;
        f->scap = n;
    }
    if (++f->gen == 0) { /* stamps wrapped: forget them all */
        memset(f->stamp, 0, f->scap * sizeof(uint32_t));
        f->gen = 1;
    }
    return 0;
}

void feat_grad_add(feat_t *f, uint32_t e, const float *g)
{
    const int nc = f->cfg.ncat, D = f->cfg.dim;
    if (!nc || e >= f->cap)
        return; /* dense features have no parameters of their own */
    for (int k = 0; k < nc; k++) {
        uint32_t ve = f->cent[(size_t)e * nc + k];
        if (ve == EMB_NONE)
            continue;
        uint32_t row = emb_entry_row(f->tab, ve);
        const float *gk = g + k * D;
        if (f->stamp[row] != f->gen) {
            if (f->nuniq == f->max_pairs * nc)
                continue; /* more adds than promised: cannot happen in the learner */
            f->stamp[row] = f->gen;
            f->slot[row] = (uint32_t)f->nuniq;
            f->uniq[f->nuniq] = row;
            memcpy(f->acc + (size_t)f->nuniq++ * D, gk, sizeof(float) * D);
            continue;
        }
        float *dst = f->acc + (size_t)f->slot[row] * D;
        for (int d = 0; d < D; d++)
            dst[d] += gk[d];
    }
}

void feat_grad_apply(feat_t *f, float lr, float l2, float eps)
{
    const int D = f->cfg.dim;
    for (int u = 0; u < f->nuniq; u++) {
        uint32_t row = f->uniq[u];
        const float *g = f->acc + (size_t)u * D;
        optim_row(f->cfg.opt, emb_row(f->tab, row), emb_row_state(f->tab, row), g, D, lr, l2, eps);
    }
    f->nuniq = 0;
}

#define FEAT_MAGIC 0x31544146u /* "FAT1" */

int feat_save(const feat_t *f, uint32_t cap, ser_writer_t *w)
{
    const int nc = f->cfg.ncat, nn = f->cfg.nnum;
    ser_u32(w, FEAT_MAGIC);
    ser_u32(w, (uint32_t)nc);
    ser_u32(w, (uint32_t)nn);
    ser_u32(w, (uint32_t)f->cfg.dim);
    if (nc && emb_save(f->tab, w))
        return -1;
    for (int d = 0; d < nn; d++) {
        ser_u64(w, f->norm.n[d]);
        ser_put(w, &f->norm.mean[d], sizeof(double));
        ser_put(w, &f->norm.m2[d], sizeof(double));
    }
    if (cap > f->cap)
        cap = f->cap;
    ser_u32(w, cap);
    if (nc)
        ser_put(w, f->cent, sizeof(uint32_t) * (size_t)cap * nc);
    if (nn)
        ser_put(w, f->num, sizeof(float) * (size_t)cap * nn);
    return w->err ? -1 : 0;
}

int feat_load(feat_t *f, ser_reader_t *r, uint32_t max_cap, char *errstr, size_t len)
{
    const int nc = f->cfg.ncat, nn = f->cfg.nnum;
    uint32_t magic = ser_get_u32(r), c = ser_get_u32(r), n = ser_get_u32(r), d = ser_get_u32(r);
    if (r->err || magic != FEAT_MAGIC) {
        snprintf(errstr, len, "features: not saved features");
        return -1;
    }
    if (c != (uint32_t)nc || n != (uint32_t)nn || d != (uint32_t)f->cfg.dim) {
        snprintf(errstr, len,
                 "features: saved %u categorical and %u dense fields of width %u, "
                 "this tower has %d and %d of %d",
                 c, n, d, nc, nn, f->cfg.dim);
        return -1;
    }
    if (nc && emb_load(f->tab, r, errstr, len))
        return -1;
    for (int k = 0; k < nn; k++) {
        f->norm.n[k] = ser_get_u64(r);
        ser_get(r, &f->norm.mean[k], sizeof(double));
        ser_get(r, &f->norm.m2[k], sizeof(double));
    }
    uint32_t cap = ser_get_u32(r);
    if (r->err || cap > max_cap ||
        (size_t)cap * (sizeof(uint32_t) * nc + sizeof(float) * nn) > ser_left(r)) {
        snprintf(errstr, len, "features: short or corrupt");
        return -1;
    }
    if (feat_reserve(f, cap)) {
        snprintf(errstr, len, "features: out of memory");
        return -1;
    }
    if (nc)
        ser_get(r, f->cent, sizeof(uint32_t) * (size_t)cap * nc);
    if (nn)
        ser_get(r, f->num, sizeof(float) * (size_t)cap * nn);
    uint32_t vcap = nc ? emb_entry_cap(f->tab) : 0;
    for (size_t i = 0; nc && i < (size_t)cap * nc; i++)
        if (f->cent[i] != EMB_NONE &&
            (f->cent[i] >= vcap || !emb_entry_alive(f->tab, f->cent[i]))) {
            snprintf(errstr, len, "features: a value entry out of range");
            return -1;
        }
    if (r->err) {
        snprintf(errstr, len, "features: short");
        return -1;
    }
    return 0;
}
