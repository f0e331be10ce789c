/* ctrlayers.h — building blocks of the click-through models (ctr.c): the
 * cross layer of Deep & Cross, the online normaliser of dense features, and
 * the progressive-validation metrics (AUC over a sliding window, logloss).
 * Outputs first, then inputs, then sizes; backward adds into gradients.
 * Not for: whole models (ctr.c). */
#ifndef FR_CTRLAYERS_H
#define FR_CTRLAYERS_H

#include <stddef.h>
#include <stdint.h>

/* Cross layer (Wang et al. 2017): out = x0 ⊙ (xl · w) + b + xl, per row.
 * x0, xl, out (B, D); w, b (D). s (B) receives xl·w per row, for backward. */
void cross_forward(float *out, float *s, const float *x0, const float *xl, const float *w,
                   const float *b, int B, int D);
/* Adds into dx0, dxl (B, D), dw, db (D); dx0 or dxl may be the same buffer
 * only if the caller wants their sum. s is what cross_forward wrote. */
void cross_backward(float *dx0, float *dxl, float *dw, float *db, const float *dout,
                    const float *x0, const float *xl, const float *s, const float *w, int B, int D);

/* Online normaliser of D dense features: running mean and variance
 * (Welford), z = (x − mean) / sqrt(var + eps), eps = 1e-6, clipped to
 * [−clip, clip]; var is the sample variance m2 / (n − 1), and 1 while a
 * feature has been seen fewer than twice (so an unseen one gives x itself,
 * clipped). A missing feature is 0 after normalisation (its mean); a NaN or
 * infinite value counts as missing in both update and apply. present NULL
 * means every feature is present. */
typedef struct {
    int D;
    float clip;
    uint64_t *n; /* (D) values seen */
    double *mean, *m2;
} norm_t;

/* 0, or −1 when out of memory or D < 1 or !(clip > 0). */
int norm_init(norm_t *nm, int D, float clip);
/* Accepts a zeroed struct (and NULL). */
void norm_free(norm_t *nm);
/* Folds x into the running statistics for the features marked present. */
void norm_update(norm_t *nm, const float *x, const unsigned char *present);
/* out (D) = normalised x; features not present give 0. */
void norm_apply(const norm_t *nm, float *out, const float *x, const unsigned char *present);

/* Progressive validation: each example's prediction before it is learned.
 * AUC over the last `window` predictions (exact, with ties counted half),
 * logloss over all of them and over the window. Logloss clamps p to
 * [1e-7, 1 − 1e-7]; a NaN prediction is recorded as 0.5 so that one bad value
 * cannot make the metrics NaN for good. */
typedef struct {
    float *p;
    unsigned char *y;
    size_t window, n, head;
    uint64_t total;
    double logloss_sum; /* over all */
} pv_t;

/* 0, or −1 when out of memory or window < 1. pv_free accepts a zeroed struct. */
int pv_init(pv_t *v, size_t window);
void pv_free(pv_t *v);
void pv_add(pv_t *v, float p, int label);
/* AUC of the window (0.5 when it holds one class only), its logloss, and the
 * logloss over everything seen; the loglosses are 0 before any pv_add. The
 * AUC sorts a copy of the window: O(w log w) per call, for stats, not for
 * every example. */
double pv_auc(const pv_t *v);
double pv_window_logloss(const pv_t *v);
double pv_logloss(const pv_t *v);
/* AUC of n predictions (exact, ties half; a NaN score ranks lowest; 0.5 when
 * only one class is present); for tests and offline evaluation. Falls back to
 * an O(n²) pair count if its O(n) scratch cannot be allocated. */
double auc_exact(const float *p, const unsigned char *y, size_t n);

#endif
