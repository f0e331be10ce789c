/* collapse.h — gives large arrays their transparent huge pages back after a
 * forked checkpoint writer (store/ckpt.h) has shared them.
 *
 * While the child lives, each write of the loop into a 2 MB huge page splits
 * it into 512 small pages (copy-on-write of 4 kB, Linux ≥ 5.8), and they stay
 * split: the next fork would copy 512 page-table entries for each of them
 * again, and its stall grows back to that of small pages. A pass asks the
 * kernel to collapse them again (MADV_COLLAPSE, Linux ≥ 6.1), 2 MB at a time,
 * in a thread of its own: a collapse may compact memory for tens of
 * milliseconds, which the loop must not wait for. The values in memory never
 * change; an address that is no longer mapped (the array grew and moved) is
 * skipped. Not for: choosing what is in huge pages (learner/table.c asks for
 * them with MADV_HUGEPAGE), nor anything on a kernel without THP (a pass then
 * does nothing and says so in its figures). */
#ifndef FR_COLLAPSE_H
#define FR_COLLAPSE_H

#include <stddef.h>
#include <stdint.h>

#define COLLAPSE_MAX_RANGES 64

/* Anonymous memory of this process in huge pages now (AnonHugePages of
 * /proc/self/smaps_rollup), in bytes; 0 when unknown. For figures. */
uint64_t collapse_anon_huge_bytes(void);

typedef struct collapse collapse_t;

typedef struct {
    uint64_t passes;  /* passes finished (or stopped) */
    uint64_t pages;   /* 2 MB pages collapsed, or found already huge, in the last pass */
    uint64_t refused; /* pages the kernel refused in the last pass (EINVAL: no THP or
                         no MADV_COLLAPSE here; EAGAIN, ENOMEM) */
    double seconds;   /* the last pass's duration */
} collapse_stats_t;

collapse_t *collapse_create(char *errstr, size_t len);
/* Stops a running pass (at its next huge page) and waits for it; NULL does nothing. */
void collapse_free(collapse_t *c);

/* Starts a pass over the ranges [p[i], p[i] + n[i]) (copied; at most
 * COLLAPSE_MAX_RANGES). 0: started; 1: not started, the previous pass is
 * still running; -1 and a message: no thread could be started. */
int collapse_start(collapse_t *c, void *const *p, const size_t *n, int nranges, char *errstr,
                   size_t len);
/* Asks a running pass to stop at its next huge page (before a fork: a
 * collapse while a child shares the pages would only copy them); does not
 * wait. */
void collapse_stop(collapse_t *c);
/* 1 while a pass runs, else 0 (and the last pass's figures in *st, if st). */
int collapse_running(collapse_t *c, collapse_stats_t *st);

#endif
