/* widths.h — the one parser of layer-width lists ("64,32,16,8"): [model]
 * mlp, tower and deep in the daemon's config, --mlp, --tower and --deep in
 * the freshrec tool. One rule for all: comma-separated decimal integers in
 * [1, WIDTHS_MAX] (blanks around each allowed), no empty element, and as
 * many as the caller's bounds say. Not for: what a model makes of the
 * widths (an even first width for NeuMF's MLP, say): its own config check. */
#ifndef FR_WIDTHS_H
#define FR_WIDTHS_H

#include <stddef.h>

#define WIDTHS_MAX 4096 /* the widest layer any model takes */

/* Parses s into out[0..*n-1] (min_n..max_n widths, max_n at most 64): 0,
 * or -1 with a message naming the bad element ("element 2 ('x') is not a
 * width, an integer in [1, 4096]", "element 3 is empty") or the count ("1
 * width, 2..8 expected"), for the caller to prefix with the key or option
 * and the list; out and *n are left alone on error. An empty (or blank) s
 * is zero widths. */
int widths_parse(const char *s, int min_n, int max_n, int *out, int *n, char *errstr, size_t len);

#endif
