/* ctrlayers.c — building blocks of the click-through models: the Deep & Cross
 * layer (forward and backward), the online Welford normaliser of dense
 * features, and the progressive-validation metrics (exact windowed AUC,
 * logloss). Plain loops over libc and libm: these are cheap next to the deep
 * tower. Not for: whole models or their parameter blocks (ctr.c). */
#include "ctrlayers.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ cross layer */

void cross_forward(float *out, float *s, const float *x0, const float *xl, const float *w,
                   const float *b, int B, int D)
{
    for (int i = 0; i < B; i++) {
        const float *x0_i = x0 + (size_t)i * D, *xl_i = xl + (size_t)i * D;
        float *out_i = out + (size_t)i * D;
        /* Double accumulation: D can be a few hundred concatenated embeddings. */
        double acc = 0.0;
        for (int d = 0; d < D; d++)
            acc += (double)xl_i[d] * w[d];
        float s_i = (float)acc;
        s[i] = s_i;
        for (int d = 0; d < D; d++)
            out_i[d] = x0_i[d] * s_i + b[d] + xl_i[d];
    }
}

/* With g = dout of one row and t = Σ_d g_d x0_d:
 *   dxl += g + t·w,  dx0 += g·s,  dw += t·xl,  db += g.
 * Every write is a separate +=, so dx0 == dxl accumulates both terms. */
void cross_backward(float *dx0, float *dxl, float *dw, float *db, const float *dout,
                    const float *x0, const float *xl, const float *s, const float *w, int B, int D)
{
    for (int i = 0; i < B; i++) {
        const float *g = dout + (size_t)i * D;
        const float *x0_i = x0 + (size_t)i * D, *xl_i = xl + (size_t)i * D;
        float *dx0_i = dx0 + (size_t)i * D, *dxl_i = dxl + (size_t)i * D;
        double acc = 0.0;
        for (int d = 0; d < D; d++)
            acc += (double)g[d] * x0_i[d];
        float t = (float)acc, s_i = s[i];
        for (int d = 0; d < D; d++) {
            dxl_i[d] += g[d] + t * w[d];
            dx0_i[d] += g[d] * s_i;
            dw[d] += t * xl_i[d];
            db[d] += g[d];
        }
    }
}

/* ------------------------------------------------------------- normaliser */

#define NORM_EPS 1e-6

int norm_init(norm_t *nm, int D, float clip)
{
    if (!nm)
        return -1;
    memset(nm, 0, sizeof(*nm));
    if (D < 1 || !(clip > 0)) /* !(>) also refuses a NaN clip */
        return -1;
    nm->D = D;
    nm->clip = clip;
    nm->n = calloc((size_t)D, sizeof(*nm->n));
    nm->mean = calloc((size_t)D, sizeof(*nm->mean));
    nm->m2 = calloc((size_t)D, sizeof(*nm->m2));
    if (!nm->n || !nm->mean || !nm->m2)
        goto err;
    return 0;
err:
    norm_free(nm);
    return -1;
}

void norm_free(norm_t *nm)
{
    if (!nm)
        return;
    free(nm->n);
    free(nm->mean);
    free(nm->m2);
    memset(nm, 0, sizeof(*nm));
}

void norm_update(norm_t *nm, const float *x, const unsigned char *present)
{
    for (int d = 0; d < nm->D; d++) {
        /* A NaN or infinity would poison the running sums for good. */
        if ((present && !present[d]) || !isfinite(x[d]))
            continue;
        double v = x[d];
        uint64_t n = ++nm->n[d];
        double delta = v - nm->mean[d];
        nm->mean[d] += delta / (double)n;
        nm->m2[d] += delta * (v - nm->mean[d]);
    }
}

void norm_apply(const norm_t *nm, float *out, const float *x, const unsigned char *present)
{
    const double clip = nm->clip;
    for (int d = 0; d < nm->D; d++) {
        if ((present && !present[d]) || !isfinite(x[d])) {
            out[d] = 0.0f;
            continue;
        }
        uint64_t n = nm->n[d];
        /* Sample variance; below two values there is none, so use 1. */
        double var = n >= 2 ? nm->m2[d] / (double)(n - 1) : 1.0;
        double z = ((double)x[d] - nm->mean[d]) / sqrt(var + NORM_EPS);
        if (z > clip)
            z = clip;
        else if (z < -clip)
            z = -clip;
        out[d] = (float)z;
    }
}

/* ---------------------------------------------------- progressive validation */

#define PV_P_MIN 1e-7

static double logloss1(float p, int y)
{
    double q = p;
    if (q < PV_P_MIN)
        q = PV_P_MIN;
    else if (q > 1.0 - PV_P_MIN)
        q = 1.0 - PV_P_MIN;
    return y ? -log(q) : -log(1.0 - q);
}

int pv_init(pv_t *v, size_t window)
{
    if (!v)
        return -1;
    memset(v, 0, sizeof(*v));
    if (window < 1)
        return -1;
    v->p = malloc(window * sizeof(*v->p));
    v->y = malloc(window * sizeof(*v->y));
    if (!v->p || !v->y)
        goto err;
    v->window = window;
    return 0;
err:
    pv_free(v);
    return -1;
}

void pv_free(pv_t *v)
{
    if (!v)
        return;
    free(v->p);
    free(v->y);
    memset(v, 0, sizeof(*v));
}

void pv_add(pv_t *v, float p, int label)
{
    if (isnan(p)) /* see the header: one bad prediction must not make the metrics NaN */
        p = 0.5f;
    unsigned char y = label != 0;
    v->p[v->head] = p;
    v->y[v->head] = y;
    v->head = v->head + 1 == v->window ? 0 : v->head + 1;
    if (v->n < v->window)
        v->n++;
    v->total++;
    v->logloss_sum += logloss1(p, y);
}

/* While the ring is filling, its n pairs are slots 0..n-1; once full, all
 * slots. Either way the first n slots, and AUC does not care about order. */
double pv_auc(const pv_t *v)
{
    return auc_exact(v->p, v->y, v->n);
}

double pv_window_logloss(const pv_t *v)
{
    if (v->n == 0)
        return 0.0;
    double sum = 0.0;
    for (size_t i = 0; i < v->n; i++)
        sum += logloss1(v->p[i], v->y[i]);
    return sum / (double)v->n;
}

double pv_logloss(const pv_t *v)
{
    return v->total ? v->logloss_sum / (double)v->total : 0.0;
}

typedef struct {
    float p;
    unsigned char y;
} scored_t;

/* A total order on scores even with NaN (it ranks below everything), so
 * qsort is never handed an inconsistent comparison. */
static int score_cmp(float a, float b)
{
    int an = isnan(a), bn = isnan(b);
    if (an || bn)
        return bn - an;
    return (a > b) - (a < b);
}

static int scored_cmp(const void *pa, const void *pb)
{
    return score_cmp(((const scored_t *)pa)->p, ((const scored_t *)pb)->p);
}

/* Twice the number of (positive, negative) pairs ranked right, ties counting
 * one: O(n²), used only when the sort's scratch cannot be allocated. */
static uint64_t auc_pairs2_bruteforce(const float *p, const unsigned char *y, size_t n)
{
    uint64_t num2 = 0;
    for (size_t i = 0; i < n; i++) {
        if (!y[i])
            continue;
        for (size_t j = 0; j < n; j++) {
            if (y[j])
                continue;
            int c = score_cmp(p[i], p[j]);
            num2 += c > 0 ? 2 : c == 0 ? 1 : 0;
        }
    }
    return num2;
}

double auc_exact(const float *p, const unsigned char *y, size_t n)
{
    uint64_t pos = 0, neg = 0;
    for (size_t i = 0; i < n; i++) {
        if (y[i])
            pos++;
        else
            neg++;
    }
    if (pos == 0 || neg == 0)
        return 0.5;

    scored_t *sc = n <= SIZE_MAX / sizeof(*sc) ? malloc(n * sizeof(*sc)) : NULL;
    if (!sc)
        return (double)auc_pairs2_bruteforce(p, y, n) / (2.0 * (double)pos * (double)neg);
    for (size_t i = 0; i < n; i++) {
        sc[i].p = p[i];
        sc[i].y = y[i] != 0;
    }
    qsort(sc, n, sizeof(*sc), scored_cmp);

    /* Ascending by score: each positive beats every negative in lower tie
     * groups and draws with the negatives of its own group. */
    uint64_t num2 = 0, neg_below = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint64_t gp = 0, gn = 0;
        while (j < n && scored_cmp(&sc[i], &sc[j]) == 0) {
            if (sc[j].y)
                gp++;
            else
                gn++;
            j++;
        }
        num2 += 2 * gp * neg_below + gp * gn;
        neg_below += gn;
        i = j;
    }
    free(sc);
    return (double)num2 / (2.0 * (double)pos * (double)neg);
}
