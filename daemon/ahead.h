/* ahead.h — one helper thread that runs the chunks of a batch ahead of the
 * thread that consumes them, in order.
 *
 * The loop thread decodes Kafka messages and learns from them; decoding needs
 * nothing the learner holds, so a helper can decode chunk c + 1, c + 2, ...
 * while the loop learns from chunk c. Chunks are claimed in order by whoever
 * comes first: the helper, or the caller itself when it needs a chunk the
 * helper has not reached (so a batch never waits for the helper to wake up).
 * Each chunk runs exactly once. Not for: sharing a micro-batch's arithmetic
 * (learner/pool.c does that, fork-join, on the learner's threads).
 *
 * Contract: between ahead_start and the next ahead_start (or ahead_free),
 * the caller waits for every chunk of the batch (ahead_wait on each, or
 * ahead_wait_all); until then the batch's data must stay as it is. */
#ifndef FR_AHEAD_H
#define FR_AHEAD_H

#include <stddef.h>

typedef struct ahead ahead_t;

typedef void (*ahead_fn)(void *arg, size_t chunk);

/* Starts the helper thread; NULL with errstr filled on failure. */
ahead_t *ahead_create(char *errstr, size_t len);
/* Stops the helper and waits for it; NULL does nothing. */
void ahead_free(ahead_t *h);

/* Offers chunks 0..n-1 of a new batch to the helper: fn(arg, c) runs once for
 * each, on the helper or in ahead_wait. -1 when out of memory (then nothing
 * was offered, and ahead_wait runs every chunk itself). */
int ahead_start(ahead_t *h, size_t n, ahead_fn fn, void *arg);
/* Returns when chunk c has run. Runs it here if the helper has not claimed
 * it (and any unclaimed chunk before it); while the helper runs c, runs
 * unclaimed chunks after it rather than wait idle. */
void ahead_wait(ahead_t *h, size_t c);
void ahead_wait_all(ahead_t *h);

typedef struct {
    unsigned long long batches; /* ahead_start calls */
    unsigned long long helper;  /* chunks the helper ran */
    unsigned long long caller;  /* chunks the caller ran itself */
    unsigned long long waited;  /* ahead_wait calls that found their chunk still running */
} ahead_stats_t;
void ahead_stats(const ahead_t *h, ahead_stats_t *out);

#endif
