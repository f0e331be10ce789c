/* rank.h — ranking and running metrics of the learner: the rank of a
 * positive among negatives, HR@K and NDCG@K from it, an EWMA, and a ROC AUC
 * helper for tests. Not for: exporting metrics (daemon/). */
#ifndef FR_RANK_H
#define FR_RANK_H

/* How many negatives score at least as high as the positive (ties count
 * against the positive, so that identical unknown rows never look good). */
int metric_rank(float pos, const float *neg, int n);
static inline double metric_hr(int rank, int k)
{
    return rank < k ? 1.0 : 0.0;
}
double metric_ndcg(int rank, int k);

typedef struct {
    double value;
    double alpha;
    int primed;
} ewma_t;

static inline void ewma_init(ewma_t *e, double alpha)
{
    e->value = 0.0;
    e->alpha = alpha;
    e->primed = 0;
}
static inline void ewma_add(ewma_t *e, double x)
{
    e->value = e->primed ? e->value + e->alpha * (x - e->value) : x;
    e->primed = 1;
}

#endif
