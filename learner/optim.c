/* optim.c — sparse SGD/Adagrad/Adam and dense Adam (see optim.h). */
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void optim_sgd(float *w, const float *g, int n, float lr, float l2)
{
    for (int i = 0; i < n; i++)
        w[i] -= lr * (g[i] + l2 * w[i]);
}

void optim_adagrad(float *w, float *acc, const float *g, int n, float lr, float l2, float eps)
{
    for (int i = 0; i < n; i++) {
        float gi = g[i] + l2 * w[i];
        acc[i] += gi * gi;
        w[i] -= lr * gi / (sqrtf(acc[i]) + eps);
    }
}

void optim_adagrad_sum(float *w, float *acc, const float *g, const float *gsq, int n, float lr,
                       float l2, float eps)
{
    for (int i = 0; i < n; i++) {
        float gi = g[i] + l2 * w[i];
        acc[i] += gsq[i];
        w[i] -= lr * gi / (sqrtf(acc[i]) + eps);
    }
}

void optim_adam_row(float *w, float *st, const float *g, int n, float lr, float l2, float eps)
{
    /* 1 - β as its own constant: 1.0f - 0.999f is 1.3e-5 off 0.001 */
    const float b1 = 0.9f, b2 = 0.999f, nb1 = 0.1f, nb2 = 0.001f;
    float *m = st, *v = st + n, t = st[2 * n] + 1.0f;
    st[2 * n] = t;
    double c1 = 1.0 - pow(0.9, t), c2 = 1.0 - pow(0.999, t);
    float a = (float)(lr / c1), rc2 = (float)(1.0 / c2);
    for (int i = 0; i < n; i++) {
        float gi = g[i] + l2 * w[i];
        m[i] = b1 * m[i] + nb1 * gi;
        v[i] = b2 * v[i] + nb2 * gi * gi;
        w[i] -= a * m[i] / (sqrtf(v[i] * rc2) + eps);
    }
}

void optim_row(sparse_opt_t opt, float *w, float *st, const float *g, int n, float lr, float l2,
               float eps)
{
    if (opt == OPT_ADAGRAD)
        optim_adagrad(w, st, g, n, lr, l2, eps);
    else if (opt == OPT_ADAM)
        optim_adam_row(w, st, g, n, lr, l2, eps);
    else
        optim_sgd(w, g, n, lr, l2);
}

int optim_state_floats(sparse_opt_t opt, int n)
{
    return opt == OPT_ADAGRAD ? n : opt == OPT_ADAM ? 2 * n + 1 : 0;
}

static const char *const opt_names[] = {"sgd", "adagrad", "adam"};

int sparse_opt_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, opt_names[i]) == 0)
            return i;
    return -1;
}

const char *sparse_opt_name(sparse_opt_t opt)
{
    return (unsigned)opt < 3 ? opt_names[opt] : "?";
}

int dense_block_init(dense_block_t *d, size_t n)
{
    memset(d, 0, sizeof(*d));
    /* one allocation, four views; n = 0 (a model without dense parameters,
     * e.g. mf) still allocates, so that the views are valid pointers */
    float *mem = calloc(n ? 4 * n : 1, sizeof(float));
    if (!mem)
        return -1;
    d->base = mem;
    d->params = mem;
    d->grads = mem + n;
    d->m = mem + 2 * n;
    d->v = mem + 3 * n;
    d->n = n;
    return 0;
}

void dense_block_free(dense_block_t *d)
{
    if (!d)
        return;
    free(d->base);
    memset(d, 0, sizeof(*d));
}

void dense_block_share_params(dense_block_t *d, const dense_block_t *owner)
{
    if (d->n == owner->n)
        d->params = owner->params;
}

void dense_block_zero_grad(dense_block_t *d)
{
    memset(d->grads, 0, sizeof(float) * d->n);
}

void dense_block_adam(dense_block_t *d, float lr, float beta1, float beta2, float eps, float l2)
{
    d->t++;
    float c1 = 1.0f - powf(beta1, (float)d->t);
    float c2 = 1.0f - powf(beta2, (float)d->t);
    float *w = d->params, *m = d->m, *v = d->v;
    const float *g = d->grads;
    for (size_t i = 0; i < d->n; i++) {
        float gi = g[i] + l2 * w[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        w[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
    }
}

double dense_block_grad_sq(const dense_block_t *d)
{
    double gn = 0.0;
    for (size_t i = 0; i < d->n; i++)
        gn += (double)d->grads[i] * d->grads[i];
    return gn;
}

int dense_block_step(dense_block_t *d, float clip_norm, float lr, float l2)
{
    double gn = dense_block_grad_sq(d);
    if (!isfinite(gn))
        return -1;
    if (clip_norm > 0.0f && gn > (double)clip_norm * clip_norm) {
        float scale = clip_norm / (float)sqrt(gn);
        for (size_t i = 0; i < d->n; i++)
            d->grads[i] *= scale;
    }
    dense_block_adam(d, lr, 0.9f, 0.999f, 1e-8f, l2);
    return 0;
}

int dense_block_apply_sum(dense_block_t *d, const float *g, size_t n, uint32_t steps,
                          float clip_norm, float lr, float l2)
{
    if (n != d->n || steps < 1)
        return -1;
    int rc = 0;
    for (uint32_t s = 0; s < steps && rc == 0; s++) {
        for (size_t i = 0; i < n; i++)
            d->grads[i] = g[i] / (float)steps;
        rc = dense_block_step(d, clip_norm, lr, l2);
    }
    dense_block_zero_grad(d);
    return rc;
}

#define DENSE_MAGIC 0x31534e44u /* "DNS1" */

int dense_block_save(const dense_block_t *d, ser_writer_t *w)
{
    ser_u32(w, DENSE_MAGIC);
    ser_u64(w, d->n);
    ser_i64(w, d->t);
    ser_put(w, d->params, sizeof(float) * d->n);
    ser_put(w, d->m, sizeof(float) * d->n);
    ser_put(w, d->v, sizeof(float) * d->n);
    return w->err ? -1 : 0;
}

int dense_block_load(dense_block_t *d, ser_reader_t *r, char *errstr, size_t len)
{
    uint32_t magic = ser_get_u32(r);
    uint64_t n = ser_get_u64(r);
    int64_t t = ser_get_i64(r);
    if (r->err || magic != DENSE_MAGIC) {
        snprintf(errstr, len, "dense block: not a saved block");
        return -1;
    }
    if (n != d->n || t < 0) {
        snprintf(errstr, len, "dense block: saved %llu floats, this model has %zu",
                 (unsigned long long)n, d->n);
        return -1;
    }
    if (ser_get(r, d->params, sizeof(float) * n) || ser_get(r, d->m, sizeof(float) * n) ||
        ser_get(r, d->v, sizeof(float) * n)) {
        snprintf(errstr, len, "dense block: short");
        return -1;
    }
    d->t = t;
    memset(d->grads, 0, sizeof(float) * n);
    return 0;
}
