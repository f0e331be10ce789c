/* test_mlog.c — unit tests of the model log (proto/mlog.c): a record's round
 * trip, refusals of corrupt and malformed records and of writer misuse, the
 * ledger's verdicts in the cases that fencing exists for (a retried
 * duplicate, a gap, a member that lost its partitions, a stale claim), its
 * save and load, and a random history of three members whose accepted ranges
 * must tile every partition exactly once. Not for: Kafka (the daemon's tests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mlog.h"
#include "rng.h"

static mlog_record_t rec; /* ~50 KB: not on the stack */

/* Builds a record into w and decodes it into rec; returns decode's result,
 * or -2 when mlog_finish refuses the record (err then says what a reader
 * makes of the same bytes). */
static int roundtrip(mlog_writer_t *w, char *err, size_t len)
{
    const uint8_t *b;
    size_t n;
    if (mlog_finish(w, &b, &n)) {
        err[0] = '\0';
        /* the writer refuses only what a reader would */
        assert_false(w->len > 8 && mlog_decode(w->buf, w->len, &rec, err, len) == 0);
        return -2;
    }
    return mlog_decode(b, n, &rec, err, len);
}

static void test_mlog_roundtrip(void **state)
{
    (void)state;
    mlog_writer_t w = {0};
    char err[256];
    mlog_begin(&w, MLOG_WINDOW, "m1", 2, 7, 1764486000123, -1, 0);
    mlog_set_steps(&w, 3);
    mlog_add_range(&w, "events", 3, 100, 199);
    mlog_add_range(&w, "events", 5, 0, 0);
    const float g[3][4] = {{1, 2, 3, 4}, {-1, 0.5f, 0, 1e-30f}, {9, 8, 7, 6}};
    const float d[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    mlog_add_block(&w, MLOG_ROW_GRAD, 1, 4);
    mlog_add_entry(&w, "i17", 3, g[0]);
    mlog_add_entry(&w, "i9", 2, g[1]);
    mlog_add_entry(&w, "i123456", 7, g[2]);
    mlog_add_block(&w, MLOG_ROW_VALUE, 0, 4);
    mlog_add_entry(&w, "u42", 3, g[2]);
    mlog_add_block(&w, MLOG_DENSE_GRAD, 2, 6);
    mlog_add_entry(&w, NULL, 0, d);
    assert_int_equal(roundtrip(&w, err, sizeof(err)), 0);
    assert_int_equal(rec.kind, MLOG_WINDOW);
    assert_int_equal(rec.member_len, 2);
    assert_memory_equal(rec.member, "m1", 2);
    assert_int_equal(rec.seq, 7);
    assert_int_equal(rec.ts_ms, 1764486000123);
    assert_int_equal(rec.view, -1);
    assert_int_equal(rec.steps, 3);
    assert_int_equal(rec.nranges, 2);
    assert_int_equal(rec.ranges[0].topic_len, 6);
    assert_memory_equal(rec.ranges[0].topic, "events", 6);
    assert_int_equal(rec.ranges[0].partition, 3);
    assert_int_equal(rec.ranges[0].first, 100);
    assert_int_equal(rec.ranges[0].last, 199);
    assert_int_equal(rec.ranges[1].partition, 5);
    assert_int_equal(rec.nblocks, 3);
    assert_int_equal(rec.blocks[0].kind, MLOG_ROW_GRAD);
    assert_int_equal(rec.blocks[0].table, 1);
    assert_int_equal(rec.blocks[0].count, 3);
    const char *ids[3] = {"i17", "i9", "i123456"};
    size_t pos = 0, il;
    const char *id;
    float out[6];
    for (int e = 0; e < 3; e++) {
        assert_int_equal(mlog_block_next(&rec.blocks[0], &pos, &id, &il, out), 0);
        assert_int_equal(il, strlen(ids[e]));
        assert_memory_equal(id, ids[e], il);
        assert_memory_equal(out, g[e], sizeof(g[e]));
    }
    assert_int_equal(mlog_block_next(&rec.blocks[0], &pos, &id, &il, out), -1);
    pos = 0;
    assert_int_equal(mlog_block_next(&rec.blocks[1], &pos, &id, &il, out), 0);
    assert_memory_equal(id, "u42", 3);
    pos = 0;
    assert_int_equal(rec.blocks[2].kind, MLOG_DENSE_GRAD);
    assert_int_equal(mlog_block_next(&rec.blocks[2], &pos, &id, &il, out), 0);
    assert_null(id);
    assert_memory_equal(out, d, sizeof(d));
    assert_int_equal(mlog_block_next(&rec.blocks[2], &pos, &id, &il, out), -1);

    /* a claim: ranges with last -1, no blocks */
    mlog_begin(&w, MLOG_CLAIM, "member-b", 8, 1, 5, 41, 0);
    mlog_add_range(&w, "events", 0, 17, -1);
    assert_int_equal(roundtrip(&w, err, sizeof(err)), 0);
    assert_int_equal(rec.kind, MLOG_CLAIM);
    assert_int_equal(rec.view, 41);
    assert_int_equal(rec.nblocks, 0);
    assert_int_equal(rec.ranges[0].first, 17);
    mlog_writer_free(&w);
}

/* Every truncation and every flipped byte of a valid record is refused. */
static void test_mlog_corrupt(void **state)
{
    (void)state;
    mlog_writer_t w = {0};
    char err[256];
    mlog_begin(&w, MLOG_WINDOW, "m1", 2, 1, 2, -1, 0);
    mlog_add_range(&w, "t", 0, 0, 9);
    const float v[2] = {1, 2};
    mlog_add_block(&w, MLOG_ROW_GRAD, 0, 2);
    mlog_add_entry(&w, "a", 1, v);
    const uint8_t *b;
    size_t n;
    assert_int_equal(mlog_finish(&w, &b, &n), 0);
    uint8_t *copy = malloc(n);
    assert_non_null(copy);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(mlog_decode(b, k, &rec, err, sizeof(err)), -1);
    for (size_t k = 0; k < n; k++) {
        memcpy(copy, b, n);
        copy[k] ^= 0x40;
        assert_int_equal(mlog_decode(copy, n, &rec, err, sizeof(err)), -1);
    }
    memcpy(copy, b, n);
    copy[4] = 9; /* a version from the future: said so, not misread */
    assert_int_equal(mlog_decode(copy, n, &rec, err, sizeof(err)), -1);
    free(copy);
    mlog_writer_free(&w);
}

/* Records that break a rule: the writer refuses to finish them, and a
 * reader refuses the same bytes (checksum and all) for the rule's reason. */
static void test_mlog_malformed(void **state)
{
    (void)state;
    mlog_writer_t w = {0};
    char err[256];
    const float v[2] = {1, 2}, bad[2] = {1, NAN}, inf[2] = {INFINITY, 0};
    struct {
        const char *what, *want;
    } cases[] = {{"nan", "not finite"},    {"inf", "not finite"},     {"twice", "named twice"},
                 {"backwards", "offsets"}, {"claimblock", "a claim"}, {"claimlast", "offsets"},
                 {"noranges", "no range"}, {"claimsteps", "steps"},   {"maxoffset", "offsets"},
                 {"nulmember", "NUL"},     {"bigsteps", "steps"},     {"twodense", "second dense"}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const char *k = cases[c].what;
        int claim = strncmp(k, "claim", 5) == 0;
        mlog_begin(&w, claim ? MLOG_CLAIM : MLOG_WINDOW, "m\0x", strcmp(k, "nulmember") ? 1 : 3, 1,
                   1, -1,
                   strcmp(k, "claimsteps") == 0 ? 2
                   : strcmp(k, "bigsteps") == 0 ? MLOG_STEPS_MAX + 1
                                                : 0);
        if (strcmp(k, "noranges") != 0)
            mlog_add_range(&w, "t", 0, strcmp(k, "backwards") == 0 ? 5 : 0,
                           claim                         ? (strcmp(k, "claimlast") == 0 ? 3 : -1)
                           : strcmp(k, "backwards") == 0 ? 4
                           : strcmp(k, "maxoffset") == 0 ? INT64_MAX
                                                         : 9);
        if (strcmp(k, "twice") == 0)
            mlog_add_range(&w, "t", 0, 10, 19);
        if (!claim || strcmp(k, "claimblock") == 0) {
            mlog_add_block(&w, MLOG_ROW_GRAD, 0, 2);
            mlog_add_entry(&w, "a", 1,
                           strcmp(k, "nan") == 0   ? bad
                           : strcmp(k, "inf") == 0 ? inf
                                                   : v);
        }
        for (int d = 0; strcmp(k, "twodense") == 0 && d < 2; d++) {
            mlog_add_block(&w, MLOG_DENSE_GRAD, 2, 2);
            mlog_add_entry(&w, NULL, 0, v);
        }
        int rc = roundtrip(&w, err, sizeof(err));
        print_message("%s: %s\n", k, err);
        assert_int_equal(rc, -2); /* the writer refuses it, for the reader's reason */
        assert_non_null(strstr(err, cases[c].want));
    }
    /* writer misuse: finish fails */
    mlog_begin(&w, MLOG_WINDOW, "m", 1, 1, 1, -1, 0);
    mlog_add_block(&w, MLOG_ROW_GRAD, 0, 2);
    mlog_add_range(&w, "t", 0, 0, 9); /* a range after a block */
    assert_int_equal(roundtrip(&w, err, sizeof(err)), -2);
    mlog_begin(&w, MLOG_WINDOW, "m", 1, 1, 1, -1, 0);
    mlog_add_range(&w, "t", 0, 0, 9);
    mlog_add_entry(&w, "a", 1, v); /* an entry with no block */
    assert_int_equal(roundtrip(&w, err, sizeof(err)), -2);
    mlog_begin(&w, MLOG_WINDOW, "m", 1, 1, 1, -1, 0);
    mlog_add_range(&w, "t", 0, 0, 9);
    mlog_add_block(&w, MLOG_DENSE_GRAD, 0, 2);
    mlog_add_entry(&w, NULL, 0, v);
    mlog_add_entry(&w, NULL, 0, v); /* a dense block has one entry */
    assert_int_equal(roundtrip(&w, err, sizeof(err)), -2);
    mlog_begin(&w, MLOG_WINDOW, "", 0, 1, 1, -1, 0); /* no member name */
    assert_int_equal(roundtrip(&w, err, sizeof(err)), -2);
    /* after finish, only begin: nothing else changes the record */
    mlog_begin(&w, MLOG_WINDOW, "m", 1, 1, 1, -1, 0);
    mlog_add_range(&w, "t", 0, 0, 9);
    const uint8_t *b1;
    size_t n1;
    assert_int_equal(mlog_finish(&w, &b1, &n1), 0);
    mlog_set_steps(&w, 7);
    mlog_add_block(&w, MLOG_ROW_GRAD, 0, 2);
    assert_int_equal(mlog_finish(&w, &b1, &n1), -1);
    assert_int_equal(mlog_decode(w.buf, n1, &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.steps, 0);
    mlog_writer_free(&w);
}

/* what mlog_apply handed to the functions */
typedef struct {
    int items, users, dense;
    float sum;
    uint32_t steps;
    int refuse_item; /* the item function refuses "bad" */
} seen_t;

static int seen_item(void *arg, int table, const char *id, size_t len, const float *g,
                     const float *gsq, int R)
{
    seen_t *s = arg;
    if (table != MLOG_TABLE_ITEMS)
        return -1;
    s->items++;
    for (int i = 0; i < R; i++)
        s->sum += g[i] + 10.0f * gsq[i];
    return len == 3 && !memcmp(id, "bad", 3) && s->refuse_item ? -1 : 0;
}
static int seen_user(void *arg, int table, const char *id, size_t len, const float *v, int width)
{
    seen_t *s = arg;
    (void)id, (void)len;
    if (table != MLOG_TABLE_USERS)
        return -1;
    s->users++;
    for (int i = 0; i < width; i++)
        s->sum += 100.0f * v[i];
    return 0;
}
static int seen_dense(void *arg, int table, const float *g, size_t n, uint32_t steps)
{
    seen_t *s = arg;
    if (table != MLOG_TABLE_DENSE)
        return -1;
    s->dense++;
    s->steps = steps;
    for (size_t i = 0; i < n; i++)
        s->sum += 1000.0f * g[i];
    return 0;
}

/* A window written by the sink functions comes back, entry for entry, to
 * the apply functions with its table; row values are skipped on request; an
 * entry the functions refuse (a table they do not have, an id) is counted. */
static void test_mlog_window_apply(void **state)
{
    (void)state;
    mlog_writer_t w = {0};
    char err[256];
    const float g[2] = {1, 2}, q[2] = {3, 4}, u[3] = {5, 6, 7}, d[4] = {0.5f, 0.25f, 0, 1};
    mlog_begin(&w, MLOG_WINDOW, "m", 1, 1, 1, -1, 0);
    mlog_add_range(&w, "t", 0, 0, 9);
    mlog_put_row_grad(&w, MLOG_TABLE_ITEMS, "i1", 2, g, q, 2);
    mlog_put_row_grad(&w, MLOG_TABLE_ITEMS, "bad", 3, g, q, 2);
    mlog_put_row_value(&w, MLOG_TABLE_USERS, "u1", 2, u, 3);
    mlog_put_row_grad(&w, MLOG_TABLE_ITEMS, "i2", 2, q, g, 2); /* a second item block */
    mlog_put_dense(&w, MLOG_TABLE_DENSE, d, 4);
    mlog_put_dense(&w, 3, d, 2);             /* a second dense block, of table 3 */
    mlog_put_row_value(&w, 7, "x", 1, d, 1); /* table 7: unknown to them */
    mlog_set_steps(&w, 5);
    assert_int_equal(roundtrip(&w, err, sizeof(err)), 0);
    assert_int_equal(rec.nblocks, 6); /* i1 and bad share one */
    assert_int_equal(rec.blocks[4].table, 3);
    static const mlog_apply_ops_t ops = {seen_item, seen_user, seen_dense};
    seen_t s = {0};
    s.refuse_item = 1;
    assert_int_equal(mlog_apply(&rec, &ops, &s, 0), 3); /* "bad", table 3's and table 7's */
    assert_int_equal(s.items, 3);
    assert_int_equal(s.users, 1);
    assert_int_equal(s.dense, 1);
    assert_int_equal(s.steps, 5);
    /* g + 10 gsq for i1, bad, i2; 100 u; 1000 d */
    float want = (3 + 70) * 2 + (7 + 30) + 1800 + 1750;
    assert_float_equal(s.sum, want, 1e-3);
    seen_t t = {0};
    assert_int_equal(mlog_apply(&rec, &ops, &t, 1), 1); /* table 3's: values are skipped */
    assert_int_equal(t.users, 0);
    assert_int_equal(t.items, 3);
    mlog_writer_free(&w);
}

/* A bfloat16 block: half the bytes, values rounded to nearest even and read
 * back as floats; a NaN or an infinity in one is refused like a float's. */
static void test_mlog_bf16(void **state)
{
    (void)state;
    mlog_writer_t w = {0};
    char err[256];
    const float v[6] = {1.5f, -2.0f, 0.25f, 1.00390625f, 1.01171875f, 3.0e-3f};
    mlog_begin(&w, MLOG_WINDOW, "m", 1, 1, 1, -1, 1);
    mlog_add_range(&w, "t", 0, 0, 0);
    mlog_add_block16(&w, MLOG_ROW_GRAD, 1, 6);
    mlog_add_entry(&w, "i", 1, v);
    const uint8_t *b;
    size_t n16, n32;
    assert_int_equal(mlog_finish(&w, &b, &n16), 0);
    assert_int_equal(mlog_decode(b, n16, &rec, err, sizeof(err)), 0);
    assert_true(rec.blocks[0].bf16);
    assert_int_equal(rec.blocks[0].kind, MLOG_ROW_GRAD);
    float out[6];
    size_t at = 0, il;
    const char *id;
    assert_int_equal(mlog_block_next(&rec.blocks[0], &at, &id, &il, out), 0);
    assert_float_equal(out[0], 1.5f, 0.0);
    assert_float_equal(out[1], -2.0f, 0.0);
    assert_float_equal(out[2], 0.25f, 0.0);
    assert_float_equal(out[3], 1.0f, 0.0);      /* a tie: to the even neighbour, down */
    assert_float_equal(out[4], 1.015625f, 0.0); /* a tie: to the even neighbour, up */
    assert_float_equal(out[5], 3.0e-3f, 3.0e-3f / 128);
    assert_int_equal(mlog_block_next(&rec.blocks[0], &at, &id, &il, out), -1);
    /* the same entry as floats: 12 bytes more */
    mlog_begin(&w, MLOG_WINDOW, "m", 1, 1, 1, -1, 1);
    mlog_add_range(&w, "t", 0, 0, 0);
    mlog_add_block(&w, MLOG_ROW_GRAD, 1, 6);
    mlog_add_entry(&w, "i", 1, v);
    assert_int_equal(mlog_finish(&w, &b, &n32), 0);
    assert_int_equal(n32 - n16, 12);
    const float bad[6] = {0, 0, NAN, 0, 0, 0}, big[6] = {3.4e38f, 0, 0, 0, 0, 0};
    for (int k = 0; k < 2; k++) { /* a NaN, and a float that rounds to infinity */
        mlog_begin(&w, MLOG_WINDOW, "m", 1, 1, 1, -1, 1);
        mlog_add_range(&w, "t", 0, 0, 0);
        mlog_add_block16(&w, MLOG_ROW_GRAD, 1, 6);
        mlog_add_entry(&w, "i", 1, k ? big : bad);
        assert_int_equal(roundtrip(&w, err, sizeof(err)), -2);
        assert_non_null(strstr(err, "not finite"));
    }
    mlog_writer_free(&w);
}

static uint8_t recbuf[1 << 16];

/* Decodes a claim or window of one or two partitions of topic "in" into rec. */
static void make(mlog_kind_t kind, const char *member, int64_t view, int np, const int32_t *parts,
                 const int64_t *first, const int64_t *last)
{
    mlog_writer_t w = {0};
    char err[256];
    mlog_begin(&w, kind, member, strlen(member), 1, 0, view, 0);
    for (int i = 0; i < np; i++)
        mlog_add_range(&w, "in", parts[i], first[i], kind == MLOG_CLAIM ? -1 : last[i]);
    if (kind == MLOG_WINDOW) {
        const float v[2] = {0.5f, -0.5f};
        mlog_add_block(&w, MLOG_ROW_GRAD, 1, 2);
        mlog_add_entry(&w, "i1", 2, v);
    }
    const uint8_t *b;
    size_t n;
    assert_int_equal(mlog_finish(&w, &b, &n), 0);
    assert_true(n <= sizeof(recbuf));
    memcpy(recbuf, b, n);
    mlog_writer_free(&w);
    assert_int_equal(mlog_decode(recbuf, n, &rec, err, sizeof(err)), 0);
}

static int claim(mlog_ledger_t *L, int64_t pos, const char *m, int64_t view, int32_t p,
                 int64_t start)
{
    make(MLOG_CLAIM, m, view, 1, &p, &start, NULL);
    return mlog_ledger_apply(L, &rec, pos);
}

static int window(mlog_ledger_t *L, int64_t pos, const char *m, int32_t p, int64_t first,
                  int64_t last)
{
    make(MLOG_WINDOW, m, -1, 1, &p, &first, &last);
    return mlog_ledger_apply(L, &rec, pos);
}

static int64_t next_of(const mlog_ledger_t *L, int32_t p)
{
    const mlog_part_t *e = mlog_ledger_find(L, "in", 2, p);
    return e ? e->next : -1;
}

static void test_mlog_ledger(void **state)
{
    (void)state;
    mlog_ledger_t L;
    mlog_ledger_init(&L);
    int64_t pos = 0;
    /* a window of a partition nobody claimed */
    assert_int_equal(window(&L, pos++, "a", 0, 0, 9), MLOG_UNCLAIMED);
    assert_int_equal(claim(&L, pos++, "a", L.position, 0, 0), MLOG_ACCEPTED);
    assert_int_equal(claim(&L, pos++, "a", L.position, 1, 50), MLOG_ACCEPTED);
    assert_int_equal(next_of(&L, 1), 50); /* a new partition starts at the claim's offset */
    assert_int_equal(window(&L, pos++, "a", 0, 0, 9), MLOG_ACCEPTED);
    assert_int_equal(window(&L, pos++, "a", 0, 10, 19), MLOG_ACCEPTED);
    assert_int_equal(next_of(&L, 0), 20);
    /* a retry's duplicate, a partial overlap and a gap */
    assert_int_equal(window(&L, pos++, "a", 0, 10, 19), MLOG_OVERLAP);
    assert_int_equal(window(&L, pos++, "a", 0, 15, 29), MLOG_OVERLAP);
    assert_int_equal(window(&L, pos++, "a", 0, 21, 29), MLOG_GAP);
    assert_int_equal(next_of(&L, 0), 20);
    /* b takes partition 0, having read the log so far: a's later windows
     * of it are refused, and a window that also covers a's partition 1 is
     * refused whole */
    assert_int_equal(claim(&L, pos++, "b", L.position, 0, 0), MLOG_ACCEPTED);
    assert_int_equal(next_of(&L, 0), 20); /* the claim's start is for new partitions only */
    assert_int_equal(window(&L, pos++, "a", 0, 20, 29), MLOG_NOT_OWNER);
    {
        int32_t ps[2] = {1, 0};
        int64_t f[2] = {50, 20}, l[2] = {59, 29};
        make(MLOG_WINDOW, "a", -1, 2, ps, f, l);
        assert_int_equal(mlog_ledger_apply(&L, &rec, pos++), MLOG_NOT_OWNER);
        assert_int_equal(next_of(&L, 1), 50);
    }
    assert_int_equal(window(&L, pos++, "b", 0, 20, 29), MLOG_ACCEPTED);
    int64_t b_claim = mlog_ledger_find(&L, "in", 2, 0)->claimed_at;
    /* a's claim written before b's but arriving after it (a paused member's
     * producer queue): its view is older than b's claim, so it is stale */
    assert_int_equal(claim(&L, pos++, "a", b_claim - 1, 0, 0), MLOG_STALE_CLAIM);
    assert_string_equal(mlog_ledger_find(&L, "in", 2, 0)->owner, "b");
    assert_int_equal(window(&L, pos++, "b", 0, 30, 39), MLOG_ACCEPTED);
    /* a position already applied changes nothing */
    uint64_t acc = L.verdicts[MLOG_ACCEPTED];
    assert_int_equal(window(&L, pos - 1, "b", 0, 40, 49), -1);
    assert_int_equal(L.verdicts[MLOG_ACCEPTED], acc);
    assert_int_equal(next_of(&L, 0), 40);
    assert_int_equal(L.verdicts[MLOG_NOT_OWNER], 2);
    assert_int_equal(L.verdicts[MLOG_OVERLAP], 2);
    assert_int_equal(L.verdicts[MLOG_GAP], 1);
    assert_int_equal(L.verdicts[MLOG_STALE_CLAIM], 1);
    assert_int_equal(L.verdicts[MLOG_UNCLAIMED], 1);

    /* save and load: the same ledger, which goes on judging alike */
    harness_membuf_t m = {0};
    ser_writer_t w = {harness_mem_write, &m, 0};
    assert_int_equal(mlog_ledger_save(&L, &w), 0);
    mlog_ledger_t L2;
    mlog_ledger_init(&L2);
    char err[256];
    ser_reader_t r = {harness_mem_read, &m, 0, NULL};
    assert_int_equal(mlog_ledger_load(&L2, &r, err, sizeof(err)), 0);
    assert_int_equal(m.pos, m.len);
    assert_int_equal(L2.nparts, L.nparts);
    assert_memory_equal(L2.parts, L.parts, sizeof(mlog_part_t) * (size_t)L.nparts);
    assert_memory_equal(L2.verdicts, L.verdicts, sizeof(L.verdicts));
    assert_int_equal(L2.position, L.position);
    assert_int_equal(window(&L2, pos, "b", 0, 40, 49), MLOG_ACCEPTED);
    assert_int_equal(window(&L2, pos + 1, "a", 1, 50, 59), MLOG_ACCEPTED);
    /* every truncation of the saved bytes is refused */
    for (size_t k = 0; k < m.len; k++) {
        harness_membuf_t t = {m.buf, k, k, 0};
        ser_reader_t rt = {harness_mem_read, &t, 0, NULL};
        mlog_ledger_t L3;
        mlog_ledger_init(&L3);
        assert_int_equal(mlog_ledger_load(&L3, &rt, err, sizeof(err)), -1);
        mlog_ledger_free(&L3);
    }
    free(m.buf);
    mlog_ledger_free(&L);
    mlog_ledger_free(&L2);
}

/* Three members, four partitions, 20,000 records: claims (some made from a
 * stale view), windows from owners and from members that lost the partition,
 * retried duplicates and gaps, in random order. Whatever is accepted must
 * tile each partition from its start, in order, exactly once; a window is
 * accepted only from the owner of the moment. */
static void test_mlog_ledger_random(void **state)
{
    (void)state;
    enum { P = 4, M = 3, N = 20000 };
    const char *names[M] = {"m0", "m1", "m2"};
    mlog_ledger_t L;
    mlog_ledger_init(&L);
    rng_t g;
    rng_seed(&g, 99);
    int64_t believed[M][P]; /* where each member thinks partition p goes on */
    for (int m = 0; m < M; m++)
        for (int p = 0; p < P; p++)
            believed[m][p] = 0;
    int64_t covered[P] = {0}; /* the end of what the ledger accepted so far */
    int owner[P];
    for (int p = 0; p < P; p++)
        owner[p] = -1;
    int64_t views[M] = {-1, -1, -1};
    uint64_t accepted_windows = 0, accepted_claims = 0;
    for (int64_t pos = 0; pos < N; pos++) {
        int m = (int)rng_below(&g, M), p = (int)rng_below(&g, P), act = (int)rng_below(&g, 10);
        if (act == 0) { /* claim, usually from a fresh view */
            int64_t view = rng_below(&g, 4) ? L.position : views[m];
            const mlog_part_t *e = mlog_ledger_find(&L, "in", 2, p);
            int stale = e && e->claimed_at > view;
            int v = claim(&L, pos, names[m], view, p, 0);
            assert_int_equal(v, stale ? MLOG_STALE_CLAIM : MLOG_ACCEPTED);
            if (!stale) {
                accepted_claims++;
                owner[p] = m;
                believed[m][p] = next_of(&L, p); /* it reads the log up to its claim */
            }
            views[m] = L.position;
            continue;
        }
        int64_t first = believed[m][p];
        if (act == 1) /* a retry of something older */
            first -= (int64_t)rng_below(&g, 5) + 1;
        else if (act == 2) /* a gap */
            first += (int64_t)rng_below(&g, 5) + 1;
        if (first < 0)
            first = 0;
        int64_t last = first + (int64_t)rng_below(&g, 20);
        int v = window(&L, pos, names[m], p, first, last);
        int want = owner[p] < 0         ? MLOG_UNCLAIMED
                   : owner[p] != m      ? MLOG_NOT_OWNER
                   : first < covered[p] ? MLOG_OVERLAP
                   : first > covered[p] ? MLOG_GAP
                                        : MLOG_ACCEPTED;
        assert_int_equal(v, want);
        if (v == MLOG_ACCEPTED) {
            covered[p] = last + 1;
            accepted_windows++;
        }
        if (act > 2)
            believed[m][p] = last + 1; /* it goes on from what it sent */
    }
    for (int p = 0; p < P; p++)
        assert_int_equal(next_of(&L, p), owner[p] < 0 ? -1 : covered[p]);
    assert_int_equal(L.verdicts[MLOG_ACCEPTED], accepted_windows + accepted_claims);
    print_message(
        "%llu windows accepted; refused: %llu not owner, %llu overlap, %llu gap, "
        "%llu stale claims\n",
        (unsigned long long)accepted_windows, (unsigned long long)L.verdicts[MLOG_NOT_OWNER],
        (unsigned long long)L.verdicts[MLOG_OVERLAP], (unsigned long long)L.verdicts[MLOG_GAP],
        (unsigned long long)L.verdicts[MLOG_STALE_CLAIM]);
    assert_true(accepted_windows > 1000);
    assert_true(L.verdicts[MLOG_NOT_OWNER] > 100 && L.verdicts[MLOG_OVERLAP] > 100 &&
                L.verdicts[MLOG_GAP] > 100 && L.verdicts[MLOG_STALE_CLAIM] > 10);
    mlog_ledger_free(&L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlog_roundtrip),     cmocka_unit_test(test_mlog_corrupt),
        cmocka_unit_test(test_mlog_malformed),     cmocka_unit_test(test_mlog_window_apply),
        cmocka_unit_test(test_mlog_bf16),          cmocka_unit_test(test_mlog_ledger),
        cmocka_unit_test(test_mlog_ledger_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
