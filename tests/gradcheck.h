/* gradcheck.h — the tests' one finite-difference checker: an analytic
 * gradient against central differences, in double, of a float objective.
 * Used by every backward's test (test_grad.c, test_ctrlayers.c, test_dssm.c).
 * Not for: the product (tests link it with the harness). */
#ifndef FR_GRADCHECK_H
#define FR_GRADCHECK_H

/* A relative error of 1% with a floor of 1e-2 leaves room for the float32
 * rounding of the objective yet fails a sign error, a factor of two or a
 * missing term. */
#define GRADCHECK_REL 1e-2
#define GRADCHECK_FLOOR 1e-2

/* The scalar whose gradient is checked, computed from the current x. */
typedef double (*gradcheck_fn)(void *ctx);

/* |analytic - numeric| within GRADCHECK_REL of their size (at least the floor). */
int gradcheck_close(double analytic, double numeric);

/* Compares grad[k] with the central difference of f in x[k] over a step of
 * eps, for every k; prints the first few mismatches on stderr, named what[k],
 * and returns how many there were. x is changed and restored. The step
 * actually taken in float is used, not the nominal one.
 *
 * With kinks non-NULL, f is taken to be piecewise smooth in each x[k] (a ReLU
 * network): where the two one-sided slopes disagree, the step straddles a
 * kink, the central difference means nothing, and x[k] is skipped and counted
 * in *kinks. A wrong gradient does not make the slopes disagree, so it cannot
 * hide there. */
int gradcheck(const char *what, gradcheck_fn f, void *ctx, float *x, const float *grad, int n,
              double eps, int *kinks);

#endif
