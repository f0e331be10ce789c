/* pool.h — a fixed team of threads for the parallel phases of a micro-batch:
 * pool_run(p, fn, arg) calls fn(arg, t, n) on every thread t of n (the
 * caller is thread 0) and returns when all have returned. Meant for many
 * short phases: a helper spins briefly for the next phase before it sleeps,
 * so that a phase costs microseconds, not a futex round trip each time.
 * Not for: long-running or independent tasks. */
#ifndef FR_POOL_H
#define FR_POOL_H

typedef void (*pool_fn)(void *arg, int t, int n);

typedef struct pool pool_t;

/* n threads in all (the caller and n − 1 helpers); NULL when n < 1 or a
 * thread cannot be started. n = 1 creates no thread. */
pool_t *pool_create(int n);
void pool_free(pool_t *p); /* joins the helpers; accepts NULL */
int pool_size(const pool_t *p);
/* Not reentrant: one pool_run at a time, from one thread. */
void pool_run(pool_t *p, pool_fn fn, void *arg);

#endif
