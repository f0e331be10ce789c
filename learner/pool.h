/* pool.h — a fixed team of threads for the parallel phases of a micro-batch:
 * pool_run(p, fn, arg) calls fn(arg, c, n) once for every chunk c of n (n:
 * the team's size), each on whichever thread takes it first — the caller
 * takes those no helper has — and returns when all have returned. So a
 * chunk's result must depend on c, never on the thread; and a helper the
 * scheduler keeps off the CPU (more threads than free cores) delays nothing
 * but its own chunk's start. Meant for many short phases: a helper spins
 * briefly for the next phase before it sleeps.
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
