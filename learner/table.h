/* table.h — an embedding table: ids → rows of floats, for users or items.
 *
 * Ids arrive as their 64-bit hash plus the id bytes (kept, so that a row can
 * be published under its id; a hash collision never merges two ids). Open
 * addressing with linear probing; the table grows as ids arrive.
 *
 * Entries and rows are separate: every id seen has an entry (occurrence count,
 * last-seen time, dirty flag), but only an id seen admit_after times gets a
 * trained row of its own; before that it shares the fallback row 0. Rows hold
 * the parameters (width floats) followed by the optimizer state (state floats).
 * Entry and row indices are stable while the id lives; expired ones are reused.
 * Not for: hashing ids (proto/id.h), learning (learner.c). */
#ifndef FR_TABLE_H
#define FR_TABLE_H

#include "rng.h"
#include "serial.h"

#include <stddef.h>
#include <stdint.h>

#define EMB_NONE UINT32_MAX
#define EMB_MAX_ID_LEN 256

typedef struct {
    int width;            /* parameter floats per row */
    int state;            /* optimizer-state floats per row (after the parameters) */
    uint32_t admit_after; /* occurrences before an id gets its own row (≥ 1) */
    int64_t expire_ms;    /* rows unseen this long are expired by emb_expire; 0 = never */
    float init_std;       /* new rows: N(0, init_std) */
    uint64_t seed;
    int init_by_id; /* 1: a new row's values depend on the seed and its id alone, not on
                     * the row it lands in (tables that must agree across processes) */
} emb_config_t;

typedef struct {
    size_t entries;    /* ids known */
    size_t rows;       /* rows in use, fallback included */
    size_t bytes;      /* memory held by the table */
    uint64_t admitted; /* ids that got a row of their own, ever */
    uint64_t expired;  /* ids removed by expiry or eviction, ever */
    uint64_t evicted;  /* of those, by emb_evict_lru (since this process started) */
} emb_stats_t;

typedef struct emb_table emb_table_t;

emb_table_t *emb_create(const emb_config_t *cfg, char *errstr, size_t len);
void emb_free(emb_table_t *t);

/* Records one occurrence of an id at ts_ms: finds or inserts its entry, counts
 * it, admits it when due. Returns the entry index, or EMB_NONE when out of
 * memory or the id is longer than EMB_MAX_ID_LEN. */
uint32_t emb_touch(emb_table_t *t, uint64_t h, const char *id, size_t idlen, int64_t ts_ms);
/* The entry of an id, or EMB_NONE; changes nothing. */
uint32_t emb_find(const emb_table_t *t, uint64_t h, const char *id, size_t idlen);

uint32_t emb_entry_row(const emb_table_t *t, uint32_t e); /* 0 = the fallback row */
uint32_t emb_entry_count(const emb_table_t *t, uint32_t e);
int64_t emb_entry_last_seen(const emb_table_t *t, uint32_t e);
/* The id's bytes (NUL-terminated) and length. A short id lives in the
 * table's entry array: the pointer is valid until the table next changes
 * (a touch, a removal, a load); copy what is to be kept. */
const char *emb_entry_id(const emb_table_t *t, uint32_t e, size_t *len);
uint32_t emb_entry_cap(const emb_table_t *t); /* entry indices are below this */
int emb_entry_alive(const emb_table_t *t, uint32_t e);

float *emb_row(emb_table_t *t, uint32_t row);               /* parameters (width) */
float *emb_row_state(emb_table_t *t, uint32_t row);         /* optimizer state (state) */
uint32_t emb_row_entry(const emb_table_t *t, uint32_t row); /* EMB_NONE for fallback or free */
uint32_t emb_row_cap(const emb_table_t *t);                 /* row indices are below this */
size_t emb_admitted_rows(const emb_table_t *t);             /* rows in use, fallback excluded */
/* A row drawn uniformly among the admitted ones, or 0 when there is none. */
uint32_t emb_sample_row(const emb_table_t *t, rng_t *r);

/* Dirty entries: marked when their row changes, taken by the publisher. */
void emb_mark_dirty(emb_table_t *t, uint32_t e);
/* Moves up to max dirty entries into out and clears their flag; returns the count. */
size_t emb_take_dirty(emb_table_t *t, uint32_t *out, size_t max);
size_t emb_dirty_count(const emb_table_t *t);
/* New entries: those marked dirty that neither take has returned since their
 * id came (a new id's first vector), most recent first, up to max, into
 * out; they stay dirty, so emb_take_dirty returns them again. The count is
 * an upper bound (it may hold entries since taken or gone). */
size_t emb_take_new(emb_table_t *t, uint32_t *out, size_t max);
size_t emb_new_count(const emb_table_t *t);

/* Removes ids unseen since now_ms - expire_ms, except those keep() vetoes;
 * gone(arg, e) is called for each just before its entry is removed (its id
 * still readable). keep and gone may be NULL. Returns how many were removed. */
size_t emb_expire(emb_table_t *t, int64_t now_ms, int (*keep)(void *arg, uint32_t e),
                  void (*gone)(void *arg, uint32_t e), void *arg);

void emb_stats(const emb_table_t *t, emb_stats_t *out);
/* A digest of every id's row and optimizer state, whatever the order of
 * entries and rows: equal in two tables that hold the same ids with the same
 * bytes (members comparing their replicas). */
uint64_t emb_digest(const emb_table_t *t);

/* When the table holds more than max ids, removes the least recently seen
 * (by last-seen time) until it holds `low` (≤ max), skipping those keep()
 * says are still referred to; gone(arg, e) is called for each just before
 * its entry is removed (its id is still readable). An O(ids) pass, so the
 * caller lets the table overshoot max a little and evicts down to a lower
 * mark. Returns how many were removed. */
size_t emb_evict_lru(emb_table_t *t, size_t max, size_t low, int (*keep)(void *arg, uint32_t e),
                     void (*gone)(void *arg, uint32_t e), void *arg);

/* Writes every live id (hash, bytes, count, last-seen) and its row
 * (parameters and optimizer state) to w; 0 or -1 (w->err set). */
int emb_save(const emb_table_t *t, ser_writer_t *w);
/* Reads what emb_save wrote into an empty table of the same width and state;
 * entry indices are the saved ones (row indices need not be). -1 and a
 * message when the stream is short, corrupt or of another shape: the table
 * is then half filled and only fit for emb_free. */
int emb_load(emb_table_t *t, ser_reader_t *r, char *errstr, size_t len);

/* The table's arrays large enough to ask for huge pages (MADV_HUGEPAGE):
 * their addresses and byte lengths, at most max of them; returns how many.
 * Valid until the table next grows. For daemon/collapse.c, which gives them
 * their huge pages back after a fork's copy-on-write split them. */
int emb_large_arrays(const emb_table_t *t, void **p, size_t *n, int max);

#endif
