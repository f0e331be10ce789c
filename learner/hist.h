/* hist.h — each user's most recent items, for models that represent a user
 * by what they just clicked (MODEL_HISTORY, model.h): per user entry a ring
 * of its last K item entries, oldest overwritten first.
 *
 * Entries are the tables' entry indices (table.h), which an id keeps while
 * it lives and a later id may reuse. So each item entry carries a birth
 * stamp, renewed when a new id takes the entry and cleared when the id goes;
 * a history slot holds (entry, stamp) and counts only while they match:
 * an expired or evicted item drops out of every history without a scan.
 * Not for: which items a sampler may draw (ring.h). */
#ifndef FR_HIST_H
#define FR_HIST_H

#include "serial.h"

#include <stddef.h>
#include <stdint.h>

#define HIST_MAX 256 /* most items a history keeps */

typedef struct hist hist_t;

/* K items per user, 1..HIST_MAX; NULL and a message otherwise or out of memory */
hist_t *hist_create(int K, char *errstr, size_t len);
void hist_free(hist_t *h);
int hist_k(const hist_t *h);

/* Room for user entries below ucap and item entries below icap: 0, or -1
 * when out of memory (nothing changed then). */
int hist_reserve(hist_t *h, uint32_t ucap, uint32_t icap);
/* A new id took user entry u: its history starts empty. */
void hist_new_user(hist_t *h, uint32_t u);
/* A new id took item entry i; or the id at i went. */
void hist_new_item(hist_t *h, uint32_t i);
void hist_item_gone(hist_t *h, uint32_t i);
/* user u clicked item i */
void hist_push(hist_t *h, uint32_t u, uint32_t i);
/* The live items of u's history into out (room for hist_k), newest first:
 * how many. */
int hist_items(const hist_t *h, uint32_t u, uint32_t *out);

/* All of it, for the entry counts ucap and icap of the tables; load into a
 * history of the same K. -1 and a message on a short or different stream. */
int hist_save(const hist_t *h, uint32_t ucap, uint32_t icap, ser_writer_t *w);
int hist_load(hist_t *h, ser_reader_t *r, char *errstr, size_t len);

#endif
