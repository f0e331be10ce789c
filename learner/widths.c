/* widths.c — the one parser of layer-width lists (see widths.h). */
#include "widths.h"

#include <stdio.h>
#include <string.h>

#define WIDTHS_MAX_COUNT 64 /* beyond any model's layer count */

static int blank(char c)
{
    return c == ' ' || c == '\t';
}

int widths_parse(const char *s, int min_n, int max_n, int *out, int *n, char *errstr, size_t len)
{
    int w[WIDTHS_MAX_COUNT], k = 0;
    if (max_n > WIDTHS_MAX_COUNT)
        max_n = WIDTHS_MAX_COUNT;
    const char *p = s;
    while (blank(*p))
        p++;
    if (*p) {
        for (;;) {
            const char *e = p; /* the element: p..e, blanks trimmed */
            while (*e && *e != ',')
                e++;
            const char *end = e;
            while (end > p && blank(end[-1]))
                end--;
            while (p < end && blank(*p))
                p++;
            long v = 0;
            const char *q = p;
            while (q < end && *q >= '0' && *q <= '9' && v <= WIDTHS_MAX)
                v = v * 10 + (*q++ - '0');
            if (p == end) {
                snprintf(errstr, len, "element %d is empty", k + 1);
                return -1;
            }
            if (q != end || v < 1 || v > WIDTHS_MAX) {
                snprintf(errstr, len, "element %d ('%.*s') is not a width, an integer in [1, %d]",
                         k + 1, (int)(end - p), p, WIDTHS_MAX);
                return -1;
            }
            if (k == max_n) {
                snprintf(errstr, len, "more than %d widths", max_n);
                return -1;
            }
            w[k++] = (int)v;
            if (!*e)
                break;
            p = e + 1;
        }
    }
    if (k < min_n) {
        snprintf(errstr, len, "%d width%s, %d..%d expected", k, k == 1 ? "" : "s", min_n, max_n);
        return -1;
    }
    if (k)
        memcpy(out, w, sizeof(int) * (size_t)k);
    *n = k;
    return 0;
}
