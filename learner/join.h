/* join.h — the impression/click join. An impression waits up to window_ms
 * (event time) for a click on the same (user, item); a click inside the window
 * claims it; an impression whose window passes unclaimed comes out as an
 * explicit negative example. Time is the largest event time seen, so a
 * replayed stream joins as it did live. Memory is bounded: past max_pending,
 * the oldest impression is decided early.
 * Not for: learning (the caller hands the negatives to the learner). */
#ifndef FR_JOIN_H
#define FR_JOIN_H

#include "learner.h"
#include "serial.h"

#include <stddef.h>
#include <stdint.h>

typedef struct join join_t;

join_t *join_create(int64_t window_ms, size_t max_pending, char *errstr, size_t len);
void join_free(join_t *j);

/* Records an impression, with payload bytes (or NULL) that come back with it
 * from join_take (e.g. the event, to learn its features); -1 when out of
 * memory (the impression is dropped). */
int join_impression(join_t *j, const lrn_id_t *user, const lrn_id_t *item, int64_t ts_ms,
                    const void *payload, size_t payload_len);
/* Records a click; returns 1 when it claimed a pending impression, else 0. */
int join_click(join_t *j, const lrn_id_t *user, const lrn_id_t *item, int64_t ts_ms);
/* Moves event time forward (e.g. to a Kafka message timestamp). */
void join_advance(join_t *j, int64_t ts_ms);
/* Event time: the largest ts seen, INT64_MIN before the first. */
int64_t join_time(const join_t *j);
/* Heals an event time beyond max_ms (one restored from a checkpoint written
 * before the daemon refused events from the future): it goes back to the
 * latest pending impression at or before max_ms, else to none (the next event
 * sets it), so that a replayed stream is not left behind it; a pending
 * impression beyond max_ms is moved back to max_ms. Returns 1 when event time
 * was beyond max_ms, else 0 (nothing changed). */
int join_limit_time(join_t *j, int64_t max_ms);

/* Takes up to max decided impressions: claimed ones are dropped, unclaimed
 * ones are written to out as negatives (negative = 1, weight 1, and their
 * payload). Their ids and payloads stay valid until the next join_take or
 * join_free. Returns the count written; call again while it returns max. */
size_t join_take(join_t *j, lrn_event_t *out, size_t max);

size_t join_pending(const join_t *j);
uint64_t join_clicked_total(const join_t *j);  /* impressions claimed by a click */
uint64_t join_negative_total(const join_t *j); /* impressions that became negatives */

/* Everything pending (ids, payloads, times, claims) and the counters; load
 * into a fresh join. -1 and a message on a short or corrupt stream (the join
 * is then only fit for join_free). */
int join_save(const join_t *j, ser_writer_t *w);
int join_load(join_t *j, ser_reader_t *r, char *errstr, size_t len);

#endif
