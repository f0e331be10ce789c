/* gradcheck.c — central differences against analytic gradients (see gradcheck.h). */
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>

int gradcheck_close(double analytic, double numeric)
{
    return fabs(analytic - numeric) <=
           GRADCHECK_REL * fmax(GRADCHECK_FLOOR, fabs(analytic) + fabs(numeric));
}

int gradcheck(const char *what, gradcheck_fn f, void *ctx, float *x, const float *grad, int n,
              double eps, int *kinks)
{
    int bad = 0;
    for (int k = 0; k < n; k++) {
        float x0 = x[k];
        float xp = (float)(x0 + eps), xm = (float)(x0 - eps);
        x[k] = xp;
        double fp = f(ctx);
        x[k] = xm;
        double fm = f(ctx);
        x[k] = x0;
        double num = (fp - fm) / ((double)xp - (double)xm);
        if (kinks) {
            double f0 = f(ctx);
            double sp = (fp - f0) / ((double)xp - x0), sm = (f0 - fm) / ((double)x0 - xm);
            if (!gradcheck_close(sp, sm)) {
                (*kinks)++;
                continue;
            }
        }
        if (!gradcheck_close(grad[k], num)) {
            if (bad < 5)
                fprintf(stderr, "%s[%d]: analytic %.8g, numeric %.8g\n", what, k, (double)grad[k],
                        num);
            bad++;
        }
    }
    return bad;
}
