/* loss.c — BCE, BPR and sampled softmax with logQ correction (see loss.h). */
#include "loss.h"

#include "layers.h"

#include <math.h>
#include <string.h>

float loss_bce(float *dz, const float *z, const float *gw, int B, int G)
{
    double total = 0.0;
    float inv = 1.0f / (float)(B * G);
    for (int b = 0; b < B; b++) {
        float w = gw ? gw[b] : 1.0f;
        for (int g = 0; g < G; g++) {
            int k = b * G + g;
            float y = g == 0 ? 1.0f : 0.0f;
            total += w * (softplusf(z[k]) - y * z[k]);
            dz[k] = w * (sigmoidf_stable(z[k]) - y) * inv;
        }
    }
    return (float)(total * inv);
}

float loss_bce_labels(float *dz, const float *z, const float *y, const float *w, int n)
{
    double total = 0.0;
    float inv = 1.0f / (float)n;
    for (int k = 0; k < n; k++) {
        float wk = w ? w[k] : 1.0f;
        total += wk * (softplusf(z[k]) - y[k] * z[k]);
        dz[k] = wk * (sigmoidf_stable(z[k]) - y[k]) * inv;
    }
    return (float)(total * inv);
}

float loss_bpr(float *dz, const float *z, const float *gw, int B, int G)
{
    if (G < 2) { /* no pairs: nothing to learn */
        memset(dz, 0, sizeof(float) * B * G);
        return 0.0f;
    }
    double total = 0.0;
    float inv = 1.0f / (float)(B * (G - 1));
    for (int b = 0; b < B; b++) {
        float w = gw ? gw[b] : 1.0f;
        const float *zb = z + b * G;
        float *db = dz + b * G;
        db[0] = 0.0f;
        for (int g = 1; g < G; g++) {
            float x = zb[0] - zb[g];
            total += w * softplusf(-x);
            /* d/dx softplus(-x) = -σ(-x) */
            float d = -w * sigmoidf_stable(-x) * inv;
            db[0] += d;
            db[g] = -d;
        }
    }
    return (float)(total * inv);
}

float loss_softmax(float *dz, const float *z, const float *logq, const float *gw, int B, int G)
{
    double total = 0.0;
    float inv = 1.0f / (float)B;
    for (int b = 0; b < B; b++) {
        float w = gw ? gw[b] : 1.0f;
        const float *zb = z + b * G;
        const float *qb = logq ? logq + b * G : 0;
        float *db = dz + b * G;
        float mx = -INFINITY;
        for (int g = 0; g < G; g++) {
            float s = zb[g] - (qb ? qb[g] : 0.0f);
            db[g] = s;
            if (s > mx)
                mx = s;
        }
        double sum = 0.0;
        for (int g = 0; g < G; g++) {
            db[g] = expf(db[g] - mx);
            sum += db[g];
        }
        /* loss = log Σ e^s - s_0 */
        float s0 = zb[0] - (qb ? qb[0] : 0.0f);
        total += w * (log(sum) + mx - s0);
        for (int g = 0; g < G; g++)
            db[g] = w * ((float)(db[g] / sum) - (g == 0 ? 1.0f : 0.0f)) * inv;
    }
    return (float)(total * inv);
}
