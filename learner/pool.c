/* pool.c — the thread team of the learner's parallel phases (see pool.h).
 *
 * A phase is published by bumping `gen`; a helper that sees a new
 * generation runs the phase and bumps `done`; the caller waits for
 * done == n − 1. Waiting spins for SPIN_ROUNDS polls, then sleeps on a
 * condition variable (helpers between micro-batches, or while the daemon's
 * loop does I/O, must not burn a core). */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define POOL_MAX 64
#define SPIN_ROUNDS 20000

typedef struct {
    pool_t *p;
    int t;
} helper_arg_t;

struct pool {
    int n;
    helper_arg_t args[POOL_MAX];
    pthread_t th[POOL_MAX];
    _Atomic unsigned gen;  /* phases published */
    _Atomic int done;      /* helpers finished with the current phase */
    _Atomic int sleepers;  /* helpers waiting on cv */
    _Atomic int stop;
    pool_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a new phase (helpers wait on it) */
    pthread_cond_t done_cv; /* a phase finished (the caller waits on it) */
    _Atomic int caller_sleeping;
};


static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *helper(void *a)
{
    pool_t *p = ((helper_arg_t *)a)->p;
    int t = ((helper_arg_t *)a)->t;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
               !atomic_load(&p->stop)) {
            if (++spins < SPIN_ROUNDS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->gen) == seen &&
                   !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = g;
        p->fn(p->arg, t, p->n);
        /* seq_cst here and in the caller's sleep path: either it sees done,
         * or this sees caller_sleeping */
        if (atomic_fetch_add(&p->done, 1) + 1 == p->n - 1 && atomic_load(&p->caller_sleeping)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

pool_t *pool_create(int n)
{
    if (n < 1 || n > POOL_MAX)
        return NULL;
    pool_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->n = n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    for (int t = 1; t < n; t++) {
        p->args[t] = (helper_arg_t){p, t};
        if (pthread_create(&p->th[t], NULL, helper, &p->args[t])) {
            p->n = t; /* join those started */
            pool_free(p);
            return NULL;
        }
    }
    return p;
}

void pool_free(pool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t < p->n; t++)
        pthread_join(p->th[t], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->done_cv);
    free(p);
}

int pool_size(const pool_t *p)
{
    return p ? p->n : 1;
}

void pool_run(pool_t *p, pool_fn fn, void *arg)
{
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->done, 0);
    atomic_fetch_add(&p->gen, 1); /* seq_cst, against a helper about to sleep */
    if (atomic_load(&p->sleepers)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    fn(arg, 0, p->n);
    int spins = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) != p->n - 1) {
        if (++spins < SPIN_ROUNDS) {
            cpu_relax();
            continue;
        }
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_sleeping, 1);
        while (atomic_load(&p->done) != p->n - 1)
            pthread_cond_wait(&p->done_cv, &p->mu);
        atomic_store(&p->caller_sleeping, 0);
        pthread_mutex_unlock(&p->mu);
    }
}
