/* collapse.c — huge pages back after a fork's copy-on-write (see collapse.h). */
#define _DEFAULT_SOURCE /* madvise */
#include "collapse.h"

#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif

#define HUGE ((uintptr_t)2 << 20)
/* a pause after each huge page: a pass takes a share of a core, not a core
 * (on a machine of two, the loop would otherwise wait for the CPU). Not a
 * lower priority: the kernel holds the process's mmap lock while it copies
 * a huge page, and a descheduled holder would make the loop wait longer. */
#define PAUSE_NS 1000000L

struct collapse {
    pthread_t th;
    int started;     /* th is to be joined */
    atomic_int stop; /* set by the loop: leave at the next huge page */
    atomic_int done; /* set by the pass when it is over */
    uintptr_t p[COLLAPSE_MAX_RANGES];
    size_t n[COLLAPSE_MAX_RANGES];
    int nranges;
    collapse_stats_t st; /* written by the pass, read after done */
};

uint64_t collapse_anon_huge_bytes(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    uint64_t kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "AnonHugePages:", 14) == 0)
            kb = strtoull(line + 14, NULL, 10);
    if (f)
        fclose(f);
    return kb * 1024;
}

static void *pass(void *arg)
{
    collapse_t *c = arg;
    double t0 = clock_mono_s();
    uint64_t pages = 0, refused = 0;
    for (int r = 0; r < c->nranges && !atomic_load(&c->stop); r++) {
        uintptr_t lo = (c->p[r] + HUGE - 1) & ~(HUGE - 1), end = (c->p[r] + c->n[r]) & ~(HUGE - 1);
        for (uintptr_t a = lo; a < end && !atomic_load(&c->stop); a += HUGE) {
            if (madvise((void *)a, HUGE, MADV_COLLAPSE) == 0) {
                pages++;
                struct timespec pause = {0, PAUSE_NS};
                nanosleep(&pause, NULL);
            } else {
                /* EINVAL: never touched, or not for this kernel; EAGAIN: busy */
                refused++;
                if (errno == ENOMEM)
                    break; /* unmapped (the array moved), or memory is short: next range */
            }
        }
    }
    c->st.pages = pages;
    c->st.refused = refused;
    c->st.seconds = clock_mono_s() - t0;
    c->st.passes++;
    atomic_store(&c->done, 1);
    return NULL;
}

collapse_t *collapse_create(char *errstr, size_t len)
{
    collapse_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(errstr, len, "collapse: out of memory");
        return NULL;
    }
    atomic_init(&c->stop, 0);
    atomic_init(&c->done, 1);
    return c;
}

int collapse_running(collapse_t *c, collapse_stats_t *st)
{
    if (!atomic_load(&c->done))
        return 1;
    if (c->started) {
        pthread_join(c->th, NULL); /* it is over: at once */
        c->started = 0;
    }
    if (st)
        *st = c->st;
    return 0;
}

int collapse_start(collapse_t *c, void *const *p, const size_t *n, int nranges, char *errstr,
                   size_t len)
{
    if (collapse_running(c, NULL))
        return 1;
    c->nranges = nranges < COLLAPSE_MAX_RANGES ? nranges : COLLAPSE_MAX_RANGES;
    for (int r = 0; r < c->nranges; r++) {
        c->p[r] = (uintptr_t)p[r];
        c->n[r] = n[r];
    }
    atomic_store(&c->stop, 0);
    atomic_store(&c->done, 0);
    int e = pthread_create(&c->th, NULL, pass, c);
    if (e) {
        atomic_store(&c->done, 1);
        snprintf(errstr, len, "collapse: pthread_create: %s", strerror(e));
        return -1;
    }
    c->started = 1;
    return 0;
}

void collapse_stop(collapse_t *c)
{
    if (c)
        atomic_store(&c->stop, 1);
}

void collapse_free(collapse_t *c)
{
    if (!c)
        return;
    collapse_stop(c);
    if (c->started)
        pthread_join(c->th, NULL);
    free(c);
}
