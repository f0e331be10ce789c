/* pool.c — the thread team of the learner's parallel phases (see pool.h).
 *
 * A phase is n chunks. `work` holds the phase's generation (high 32 bits)
 * and the next chunk to take (low 32): the caller publishes a phase by
 * storing (gen, 0); the caller and every helper then take chunks with a
 * compare-and-swap that names the generation, so a helper that wakes late
 * takes nothing from a phase that is over (its CAS fails) and never runs a
 * chunk with another phase's function. The caller runs whatever chunks no
 * helper took, then waits for the chunks taken to be finished: a helper
 * that is not scheduled costs the caller its chunk's work, not a wait.
 *
 * Waiting spins for SPIN_ROUNDS polls, then sleeps on a condition variable
 * (helpers between micro-batches, or while the daemon's loop does I/O, must
 * not burn a core). */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#define POOL_MAX 64
#define SPIN_ROUNDS 4000

typedef struct {
    pool_t *p;
    int t;
} helper_arg_t;

struct pool {
    int n;
    helper_arg_t args[POOL_MAX];
    pthread_t th[POOL_MAX];
    _Atomic uint64_t work; /* gen << 32 | next chunk */
    _Atomic int finished;  /* chunks of the current phase done */
    _Atomic int sleepers;  /* helpers waiting on cv */
    _Atomic int caller_sleeping;
    _Atomic int stop;
    _Atomic(pool_fn) fn;
    _Atomic(void *) arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a new phase (helpers wait on it) */
    pthread_cond_t done_cv; /* a phase finished (the caller waits on it) */
};

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Takes and runs chunks of generation g until none is left; returns how many. */
static int take_chunks(pool_t *p, uint32_t g)
{
    int ran = 0;
    for (;;) {
        uint64_t w = atomic_load(&p->work);
        if ((uint32_t)(w >> 32) != g || (uint32_t)w >= (uint32_t)p->n)
            return ran;
        pool_fn fn = atomic_load(&p->fn);
        void *arg = atomic_load(&p->arg);
        if (!atomic_compare_exchange_weak(&p->work, &w, w + 1))
            continue; /* taken by another, or the phase changed: look again */
        fn(arg, (int)(uint32_t)w, p->n);
        ran++;
        /* seq_cst here and in the caller's sleep path: either it sees the
         * count, or this sees caller_sleeping */
        if (atomic_fetch_add(&p->finished, 1) + 1 == p->n && atomic_load(&p->caller_sleeping)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void *helper(void *a)
{
    pool_t *p = ((helper_arg_t *)a)->p;
    uint32_t seen = 0;
    for (;;) {
        uint32_t g;
        int spins = 0;
        while ((g = (uint32_t)(atomic_load(&p->work) >> 32)) == seen && !atomic_load(&p->stop)) {
            if (++spins < SPIN_ROUNDS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while ((uint32_t)(atomic_load(&p->work) >> 32) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = g;
        take_chunks(p, g);
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
    uint32_t g = (uint32_t)(atomic_load(&p->work) >> 32) + 1;
    if (g == 0)
        g = 1; /* 0 is what a helper has seen at start */
    atomic_store(&p->fn, fn);
    atomic_store(&p->arg, arg);
    atomic_store(&p->finished, 0);
    atomic_store(&p->work, (uint64_t)g << 32); /* seq_cst, against a helper about to sleep */
    if (atomic_load(&p->sleepers)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    take_chunks(p, g);
    int spins = 0;
    while (atomic_load(&p->finished) != p->n) {
        if (++spins < SPIN_ROUNDS) {
            cpu_relax();
            continue;
        }
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_sleeping, 1);
        while (atomic_load(&p->finished) != p->n)
            pthread_cond_wait(&p->done_cv, &p->mu);
        atomic_store(&p->caller_sleeping, 0);
        pthread_mutex_unlock(&p->mu);
    }
}
