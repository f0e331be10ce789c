/* layers.h — element-wise layers of the learner: ReLU, the GMF product and the
 * sigmoid. Outputs first, then inputs, then sizes; backward adds into
 * gradients. Linear layers are in kern.h. */
#ifndef FR_LAYERS_H
#define FR_LAYERS_H

/* out (n) = max(in, 0); may run in place (out == in). */
void relu_forward(float *out, const float *in, int n);
/* din (n) += dout where out > 0. out is the forward output. */
void relu_backward(float *din, const float *dout, const float *out, int n);
/* In place: d (n) becomes 0 where out ≤ 0 (the gradient of the
 * pre-activation, from the forward output out). */
void relu_mask(float *d, const float *out, int n);

/* out (n) = a ⊙ b: the GMF branch of NeuMF. */
void hadamard_forward(float *out, const float *a, const float *b, int n);
/* da += dout ⊙ b; db += dout ⊙ a. */
void hadamard_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                       int n);

/* Numerically stable logistic function and log(1 + e^x). */
float sigmoidf_stable(float x);
float softplusf(float x);

#endif
