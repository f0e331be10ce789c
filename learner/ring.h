/* ring.h — the rolling buffer: a fixed-size ring of the most recent positive
 * events (user entry, item entry, time), with what samplers need of it:
 * per-item counts over the window, and a set of (user, item) pairs in the
 * window so that a sampler never picks a user's own recent positive.
 * Entries are table entry indices (table.h), stable while an id lives.
 * Not for: sampling itself (sampler.c). */
#ifndef FR_RING_H
#define FR_RING_H

#include "serial.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ring ring_t;

/* Called whenever an item's count in the window changes. */
typedef void (*ring_count_fn)(void *arg, uint32_t item, uint32_t count);

ring_t *ring_create(size_t capacity, char *errstr, size_t len);
void ring_free(ring_t *r);
void ring_set_listener(ring_t *r, ring_count_fn fn, void *arg);

/* Appends an event, evicting the oldest when full. -1 when out of memory
 * (the ring is unchanged then). */
int ring_push(ring_t *r, uint32_t user, uint32_t item, int64_t ts);

size_t ring_size(const ring_t *r);
size_t ring_capacity(const ring_t *r);
/* The i-th event held, 0 = oldest. */
void ring_get(const ring_t *r, size_t i, uint32_t *user, uint32_t *item, int64_t *ts);

uint32_t ring_item_count(const ring_t *r, uint32_t item);
uint32_t ring_user_count(const ring_t *r, uint32_t user);
/* The events held, oldest first. Load pushes them, in order, into an empty
 * ring: counts, pairs and the listener follow as they did. A saved ring
 * larger than this one keeps its newest events. Entries must be below
 * max_user and max_item (the tables' entry counts): a corrupt index is
 * refused rather than grown into. */
int ring_save(const ring_t *r, ser_writer_t *w);
int ring_load(ring_t *r, ser_reader_t *rd, uint32_t max_user, uint32_t max_item, char *errstr,
              size_t len);

/* 1 when (user, item) is among the events held. */
int ring_has_pair(const ring_t *r, uint32_t user, uint32_t item);
/* Hints that ring_has_pair(user, item) comes soon (a cache prefetch). */
void ring_prefetch_pair(const ring_t *r, uint32_t user, uint32_t item);

#endif
