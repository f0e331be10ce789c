/* ahead.c — the helper thread of ahead.h.
 *
 * The claim counter holds the batch's generation (high 32 bits) and the next
 * unclaimed chunk (low 32); a chunk is claimed by compare-and-swap, so a
 * helper that wakes late, with the generation of a batch already over,
 * claims nothing of the next one. A claimed chunk's done flag is set with
 * release order after it ran; ahead_wait reads it with acquire order, so what
 * the chunk wrote is visible to the caller. The helper sleeps on a condition
 * variable between batches, never spins. */
#include "ahead.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct ahead {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu: the current batch, as the helper copies it when it wakes */
    uint32_t gen;
    size_t n;
    ahead_fn fn;
    void *arg;
    int quit;

    _Atomic uint64_t claim; /* gen << 32 | next unclaimed chunk */
    atomic_uchar *done;     /* (cap) chunk has run */
    size_t cap;
    int offered; /* the current batch was offered (ahead_start succeeded) */
    size_t own;  /* not offered: the next chunk the caller runs */

    _Atomic unsigned long long n_helper, n_caller, n_waited;
    unsigned long long n_batches;
};

/* Claims the next chunk of generation gen if it is below n: its index, or -1. */
static long claim_next(ahead_t *h, uint32_t gen, size_t n)
{
    uint64_t v = atomic_load_explicit(&h->claim, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(v >> 32) != gen || (v & 0xffffffffu) >= n)
            return -1;
        if (atomic_compare_exchange_weak_explicit(&h->claim, &v, v + 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            return (long)(v & 0xffffffffu);
    }
}

static void *helper_main(void *arg)
{
    ahead_t *h = arg;
    uint32_t seen = 0;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->quit && h->gen == seen)
            pthread_cond_wait(&h->cv, &h->mu);
        if (h->quit)
            break;
        seen = h->gen;
        const size_t n = h->n;
        const ahead_fn fn = h->fn;
        void *const fa = h->arg;
        pthread_mutex_unlock(&h->mu);
        long c;
        while ((c = claim_next(h, seen, n)) >= 0) {
            fn(fa, (size_t)c);
            atomic_store_explicit(&h->done[c], 1, memory_order_release);
            atomic_fetch_add_explicit(&h->n_helper, 1, memory_order_relaxed);
        }
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

ahead_t *ahead_create(char *errstr, size_t len)
{
    ahead_t *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(errstr, len, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    atomic_init(&h->claim, 0);
    if (pthread_create(&h->th, NULL, helper_main, h)) {
        snprintf(errstr, len, "cannot start the decoding thread");
        pthread_cond_destroy(&h->cv);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    return h;
}

void ahead_free(ahead_t *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->quit = 1;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->th, NULL);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free((void *)h->done);
    free(h);
}

int ahead_start(ahead_t *h, size_t n, ahead_fn fn, void *arg)
{
    h->offered = 0;
    h->own = 0;
    h->n_batches++;
    /* every chunk of the last batch has run (the contract): nobody touches done */
    if (n > h->cap) {
        atomic_uchar *d = realloc((void *)h->done, n * sizeof(*d));
        if (!d) {
            pthread_mutex_lock(&h->mu);
            h->fn = fn;
            h->arg = arg;
            h->n = n;
            pthread_mutex_unlock(&h->mu);
            return -1;
        }
        h->done = d;
        h->cap = n;
    }
    for (size_t c = 0; c < n; c++)
        atomic_store_explicit(&h->done[c], 0, memory_order_relaxed);
    pthread_mutex_lock(&h->mu);
    h->gen++;
    h->n = n;
    h->fn = fn;
    h->arg = arg;
    atomic_store_explicit(&h->claim, (uint64_t)h->gen << 32, memory_order_release);
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    h->offered = 1;
    return 0;
}

void ahead_wait(ahead_t *h, size_t c)
{
    if (!h->offered) { /* nothing offered: the caller runs the chunks, in order */
        for (; h->own <= c && h->own < h->n; h->own++) {
            h->fn(h->arg, h->own);
            atomic_fetch_add_explicit(&h->n_caller, 1, memory_order_relaxed);
        }
        return;
    }
    int counted = 0;
    for (int spins = 0;; spins++) {
        if (atomic_load_explicit(&h->done[c], memory_order_acquire))
            return;
        /* the next unclaimed chunk is ours to run: c itself, one before it,
         * or, while the helper still runs c, one after it (work that would
         * wait otherwise) */
        long k = claim_next(h, h->gen, h->n);
        if (k >= 0) {
            h->fn(h->arg, (size_t)k);
            atomic_store_explicit(&h->done[k], 1, memory_order_release);
            atomic_fetch_add_explicit(&h->n_caller, 1, memory_order_relaxed);
            continue;
        }
        if (!counted) {
            atomic_fetch_add_explicit(&h->n_waited, 1, memory_order_relaxed);
            counted = 1;
        }
        if (spins > 64)
            sched_yield();
    }
}

void ahead_wait_all(ahead_t *h)
{
    for (size_t c = 0; c < h->n; c++)
        ahead_wait(h, c);
}

void ahead_stats(const ahead_t *h, ahead_stats_t *out)
{
    out->batches = h->n_batches;
    out->helper = atomic_load_explicit(&((ahead_t *)h)->n_helper, memory_order_relaxed);
    out->caller = atomic_load_explicit(&((ahead_t *)h)->n_caller, memory_order_relaxed);
    out->waited = atomic_load_explicit(&((ahead_t *)h)->n_waited, memory_order_relaxed);
}
