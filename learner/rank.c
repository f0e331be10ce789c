/* rank.c — ranking metrics (see rank.h). */
#include "rank.h"

#include <math.h>

int metric_rank(float pos, const float *neg, int n)
{
    int r = 0;
    for (int i = 0; i < n; i++)
        r += neg[i] >= pos;
    return r;
}

double metric_ndcg(int rank, int k)
{
    return rank < k ? 1.0 / log2((double)rank + 2.0) : 0.0;
}
