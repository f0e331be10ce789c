/* layers.c — element-wise layers (see layers.h). */
#include "layers.h"

#include <math.h>

void relu_forward(float *out, const float *in, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void relu_backward(float *din, const float *dout, const float *out, int n)
{
    for (int i = 0; i < n; i++)
        if (out[i] > 0.0f)
            din[i] += dout[i];
}

void relu_mask(float *restrict d, const float *restrict out, int n)
{
    for (int i = 0; i < n; i++)
        d[i] = out[i] <= 0.0f ? 0.0f : d[i]; /* a select, not a branch */
}

void hadamard_forward(float *out, const float *a, const float *b, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = a[i] * b[i];
}

void hadamard_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                       int n)
{
    for (int i = 0; i < n; i++) {
        da[i] += dout[i] * b[i];
        db[i] += dout[i] * a[i];
    }
}

float sigmoidf_stable(float x)
{
    if (x >= 0.0f)
        return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

float softplusf(float x)
{
    return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x)));
}
