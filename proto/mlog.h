/* mlog.h — the model log: the records that the members of one consumer group
 * write to a single-partition topic so that together they learn one model,
 * and the ledger each member keeps by reading those records in log order.
 * The byte format is in proto/README.md ("Model log").
 *
 * Two kinds of record:
 *   claim   a member assigned input partitions takes them. Each range names a
 *           partition and, in first, the offset to start at when the log holds
 *           nothing of that partition yet (last is -1). view is the position
 *           of the last log record the member had read when it claimed.
 *   window  what a member learned in one window: the input ranges it covers
 *           (first to last offset, both included), then blocks of floats:
 *           gradient sums of shared rows, new values of the rows it owns, and
 *           the dense block's gradient sum.
 *
 * The ledger decides which records count, the same way on every reader:
 *   - a claim is refused whole when a claim of one of its partitions was
 *     accepted after its view (the member had not seen it: it is stale).
 *     Once accepted, it makes its member the owner of each partition.
 *   - a window is accepted only when its member owns every partition it
 *     covers and each range starts exactly where the last accepted range of
 *     its partition ended; anything else (a retried duplicate, a member that
 *     lost its partitions while it was paused, a gap) is refused whole.
 * So the accepted ranges tile each partition once, whatever crashes,
 * rebalances and retries do. Not for: producing or consuming records (the
 * daemon), or applying their blocks to a model (the learner). */
#ifndef FR_MLOG_H
#define FR_MLOG_H

#include "serial.h"

#include <stddef.h>
#include <stdint.h>

#define MLOG_VERSION 1
#define MLOG_MEMBER_MAX 255 /* bytes of a member name */
#define MLOG_TOPIC_MAX 249  /* bytes of a topic name, as Kafka allows */
#define MLOG_ID_MAX 256     /* bytes of a row's id, as an event's */
#define MLOG_RANGES_MAX 1024
#define MLOG_BLOCKS_MAX 128
#define MLOG_WIDTH_MAX (1u << 24) /* floats per entry */
#define MLOG_STEPS_MAX (1u << 20) /* micro-batches of one window */

typedef enum { MLOG_CLAIM = 1, MLOG_WINDOW = 2 } mlog_kind_t;
typedef enum {
    MLOG_ROW_GRAD = 1,  /* per row id: a gradient sum (and what its optimizer adds) */
    MLOG_ROW_VALUE = 2, /* per row id: its new values (a changelog) */
    MLOG_DENSE_GRAD = 3 /* one entry, no id: the dense block's gradient sum */
} mlog_block_kind_t;

typedef struct {
    const char *topic; /* not NUL-terminated: topic_len bytes */
    size_t topic_len;
    int32_t partition;
    int64_t first, last;
} mlog_range_t;

/* In a block's kind byte: its values are bfloat16 (the upper half of an
 * IEEE-754 float32, rounded to nearest even), not float32. */
#define MLOG_BF16 0x80

typedef struct {
    mlog_block_kind_t kind;
    int bf16;       /* values stored as bfloat16; mlog_block_next gives floats */
    uint8_t table;  /* which table the rows are of; the learner names them */
    uint32_t width; /* floats per entry */
    uint32_t count; /* entries */
    const uint8_t *data;
    size_t len;
} mlog_block_t;

/* A decoded record: views into the bytes it was decoded from. */
typedef struct {
    mlog_kind_t kind;
    const char *member;
    size_t member_len;
    uint64_t seq;   /* the member's own count of its records */
    int64_t ts_ms;  /* when it was produced */
    int64_t view;   /* claims: the last log position the member had read; -1 none */
    uint32_t steps; /* windows: the micro-batches learned in it (optimizer steps) */
    int nranges, nblocks;
    mlog_range_t ranges[MLOG_RANGES_MAX];
    mlog_block_t blocks[MLOG_BLOCKS_MAX];
} mlog_record_t;

/* Decodes and checks one record: 0, or -1 with the reason in errstr (a bad
 * magic, version, checksum, length or count; a NUL in a member or topic
 * name; a partition named twice; a range out of order or ending at the
 * largest offset; more than MLOG_STEPS_MAX steps or one dense block of a
 * table; a float
 * that is not finite). Nothing is allocated; rec
 * points into buf, which must outlive it. */
int mlog_decode(const void *buf, size_t len, mlog_record_t *rec, char *errstr, size_t errlen);

/* Entry i of a decoded block, walked in order: *pos starts at 0. Gives the id
 * (NULL and 0 for a dense block) and copies width floats into out. Returns 0,
 * or -1 past the last entry. A block that mlog_decode accepted never fails
 * before its count. */
int mlog_block_next(const mlog_block_t *b, size_t *pos, const char **id, size_t *idlen, float *out);

/* Builds one record in a growing buffer: begin, ranges, then blocks and their
 * entries, then finish. A call out of that order, or past a limit, sets err
 * and finish fails. */
typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int err;
    int nranges, nblocks;
    size_t steps_at, nranges_at, nblocks_at, count_at; /* where the counts go */
    uint32_t width, count;
    mlog_block_kind_t block;
    uint8_t table; /* of the open block */
    int bf16;      /* the open block's values are bfloat16 */
    int done;      /* finished: only mlog_begin now */
} mlog_writer_t;

void mlog_begin(mlog_writer_t *w, mlog_kind_t kind, const char *member, size_t member_len,
                uint64_t seq, int64_t ts_ms, int64_t view, uint32_t steps);
/* Sets the record's steps after mlog_begin (a window's are known at its end). */
void mlog_set_steps(mlog_writer_t *w, uint32_t steps);
void mlog_add_range(mlog_writer_t *w, const char *topic, int32_t partition, int64_t first,
                    int64_t last);
void mlog_add_block(mlog_writer_t *w, mlog_block_kind_t kind, uint8_t table, uint32_t width);
/* The same, its values rounded to bfloat16 (half the bytes). */
void mlog_add_block16(mlog_writer_t *w, mlog_block_kind_t kind, uint8_t table, uint32_t width);
/* An entry of the open block: id (NULL, 0 for a dense block) and width floats. */
void mlog_add_entry(mlog_writer_t *w, const char *id, size_t idlen, const float *v);
/* The finished record (checksum appended) in *out, *outlen; 0, or -1 when a
 * call went wrong or the record is one mlog_decode would refuse (so a writer
 * never sends what its readers skip). After it, only mlog_begin. The buffer
 * stays the writer's until mlog_writer_free or the next mlog_begin. */
int mlog_finish(mlog_writer_t *w, const uint8_t **out, size_t *outlen);
void mlog_writer_free(mlog_writer_t *w);

/* The tables of a window's blocks are the engine's to number (a block's
 * table byte); the learner's: its users and items (rows), its dense block.
 * A record holds at most one dense block of each table. */
enum { MLOG_TABLE_USERS = 0, MLOG_TABLE_ITEMS = 1, MLOG_TABLE_DENSE = 2 };

/* Writing a window's blocks: these take the writer as arg and have the
 * shape of an engine's window sink (learner.h), so a member passes them
 * as they are; each opens its block when the previous entry was of another
 * kind or table.
 *   row_grad    a shared row's g then gsq: a row-gradient entry of 2R
 *               bfloat16s (rounding them cost no measurable HR@10: see
 *               proto/README.md)
 *   row_value   an owned row's values and optimizer state: a row-value entry
 *   dense       a dense gradient sum (or statistics an engine merges): a
 *               dense-gradient block of float32s */
void mlog_put_row_grad(void *w, int table, const char *id, size_t len, const float *g,
                       const float *gsq, int R);
void mlog_put_row_value(void *w, int table, const char *id, size_t len, const float *v, int width);
void mlog_put_dense(void *w, int table, const float *g, size_t n);

/* Applying an accepted window: each entry, in order, to the function of its
 * kind with its block's table (a row's g and gsq, a row's values, a dense
 * block with the record's steps). skip_values: row values are not applied (a
 * member's own rows are ahead of its records). Returns the entries refused
 * (a function's nonzero, or a row-gradient block of odd width), or -1 when
 * out of memory. */
typedef struct {
    int (*row_grad)(void *arg, int table, const char *id, size_t len, const float *g,
                    const float *gsq, int R);
    int (*row_value)(void *arg, int table, const char *id, size_t len, const float *v, int width);
    int (*dense)(void *arg, int table, const float *g, size_t n, uint32_t steps);
} mlog_apply_ops_t;
long mlog_apply(const mlog_record_t *rec, const mlog_apply_ops_t *ops, void *arg, int skip_values);

/* What the ledger made of a record. */
typedef enum {
    MLOG_ACCEPTED = 0,
    MLOG_STALE_CLAIM, /* a claim of one of its partitions came after its view */
    MLOG_NOT_OWNER,   /* a window's partition is another member's */
    MLOG_UNCLAIMED,   /* a window's partition was never claimed */
    MLOG_OVERLAP,     /* a range starts before the partition's next offset */
    MLOG_GAP,         /* a range starts past it */
    MLOG_VERDICTS
} mlog_verdict_t;
const char *mlog_verdict_name(mlog_verdict_t v);

typedef struct {
    char topic[MLOG_TOPIC_MAX + 1];
    int32_t partition;
    char owner[MLOG_MEMBER_MAX + 1];
    int64_t next;       /* the offset the next accepted range must start at */
    int64_t claimed_at; /* the log position of its last accepted claim */
} mlog_part_t;

typedef struct {
    mlog_part_t *parts;
    int nparts, cap;
    int64_t position;                 /* of the last record applied; -1 none */
    uint64_t verdicts[MLOG_VERDICTS]; /* records, by what was made of them */
} mlog_ledger_t;

void mlog_ledger_init(mlog_ledger_t *L);
void mlog_ledger_free(mlog_ledger_t *L);
/* Applies the record at log position pos (greater than the last one's) and
 * says what it made of it; a refused record changes nothing but its count.
 * -1 when pos is not past the ledger's position (already applied) or memory
 * ran out; nothing is changed then. */
int mlog_ledger_apply(mlog_ledger_t *L, const mlog_record_t *r, int64_t pos);
/* The partition's entry, or NULL when no accepted claim named it. */
const mlog_part_t *mlog_ledger_find(const mlog_ledger_t *L, const char *topic, size_t topic_len,
                                    int32_t partition);
/* For a checkpoint: the whole ledger; load refuses a stream it cannot read. */
int mlog_ledger_save(const mlog_ledger_t *L, ser_writer_t *w);
int mlog_ledger_load(mlog_ledger_t *L, ser_reader_t *r, char *errstr, size_t len);

#endif
