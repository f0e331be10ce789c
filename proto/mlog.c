/* mlog.c — the model log's records and ledger (see mlog.h and proto/README.md). */
#include "mlog.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static const uint8_t magic[4] = {'F', 'R', 'M', 'L'};

/* header: magic 4, version 1, kind 1, member_len 1, member, seq 8, ts 8, view 8,
 * steps 4 */
#define RANGE_FIXED (2 + 4 + 8 + 8)
#define BLOCK_FIXED (1 + 1 + 4 + 4)

/* ---- writer ---- */

static void put(mlog_writer_t *w, const void *p, size_t n)
{
    if (w->err)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *b = realloc(w->buf, cap);
        if (!b) {
            w->err = 1;
            return;
        }
        w->buf = b, w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}
static void put_u8(mlog_writer_t *w, uint8_t v)
{
    put(w, &v, 1);
}
static void put_u16(mlog_writer_t *w, uint16_t v)
{
    put(w, &v, 2);
}
static void put_u32(mlog_writer_t *w, uint32_t v)
{
    put(w, &v, 4);
}
static void put_u64(mlog_writer_t *w, uint64_t v)
{
    put(w, &v, 8);
}
static void patch_u32(mlog_writer_t *w, size_t at, uint32_t v)
{
    if (!w->err)
        memcpy(w->buf + at, &v, 4);
}

void mlog_begin(mlog_writer_t *w, mlog_kind_t kind, const char *member, size_t member_len,
                uint64_t seq, int64_t ts_ms, int64_t view, uint32_t steps)
{
    w->len = 0, w->err = 0, w->nranges = 0, w->nblocks = 0, w->block = 0, w->done = 0;
    if ((kind != MLOG_CLAIM && kind != MLOG_WINDOW) || member_len < 1 ||
        member_len > MLOG_MEMBER_MAX) {
        w->err = 1;
        return;
    }
    put(w, magic, 4);
    put_u8(w, MLOG_VERSION);
    put_u8(w, (uint8_t)kind);
    put_u8(w, (uint8_t)member_len);
    put(w, member, member_len);
    put_u64(w, seq);
    put_u64(w, (uint64_t)ts_ms);
    put_u64(w, (uint64_t)view);
    w->steps_at = w->len;
    put_u32(w, steps);
    w->nranges_at = w->len;
    put_u32(w, 0);
    w->nblocks_at = 0; /* no block count yet: ranges may still come */
}

void mlog_set_steps(mlog_writer_t *w, uint32_t steps)
{
    if (w->done)
        w->err = 1;
    else if (w->len >= w->steps_at + 4)
        patch_u32(w, w->steps_at, steps);
}

void mlog_add_range(mlog_writer_t *w, const char *topic, int32_t partition, int64_t first,
                    int64_t last)
{
    if (w->done || w->nblocks_at || w->nranges >= MLOG_RANGES_MAX || !topic || !*topic ||
        strlen(topic) > MLOG_TOPIC_MAX) {
        w->err = 1;
        return;
    }
    put_u16(w, (uint16_t)strlen(topic));
    put(w, topic, strlen(topic));
    put_u32(w, (uint32_t)partition);
    put_u64(w, (uint64_t)first);
    put_u64(w, (uint64_t)last);
    patch_u32(w, w->nranges_at, (uint32_t)++w->nranges);
}

static void close_block(mlog_writer_t *w)
{
    if (w->block) {
        if (w->block == MLOG_DENSE_GRAD && w->count != 1)
            w->err = 1;
        patch_u32(w, w->count_at, w->count);
        w->block = 0;
    }
}

static void add_block(mlog_writer_t *w, mlog_block_kind_t kind, uint8_t table, uint32_t width,
                      int bf16)
{
    close_block(w);
    if (!w->nblocks_at) {
        w->nblocks_at = w->len;
        put_u32(w, 0);
    }
    if (w->done || kind < MLOG_ROW_GRAD || kind > MLOG_DENSE_GRAD || width < 1 ||
        width > MLOG_WIDTH_MAX || w->nblocks >= MLOG_BLOCKS_MAX) {
        w->err = 1;
        return;
    }
    put_u8(w, (uint8_t)(kind | (bf16 ? MLOG_BF16 : 0)));
    put_u8(w, table);
    put_u32(w, width);
    w->count_at = w->len;
    put_u32(w, 0);
    w->block = kind, w->width = width, w->count = 0, w->table = table, w->bf16 = bf16;
    patch_u32(w, w->nblocks_at, (uint32_t)++w->nblocks);
}

void mlog_add_block(mlog_writer_t *w, mlog_block_kind_t kind, uint8_t table, uint32_t width)
{
    add_block(w, kind, table, width, 0);
}

void mlog_add_block16(mlog_writer_t *w, mlog_block_kind_t kind, uint8_t table, uint32_t width)
{
    add_block(w, kind, table, width, 1);
}

/* float32 → bfloat16, rounded to nearest even (a NaN stays a NaN) */
static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static float from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* n values of the open block */
static void put_values(mlog_writer_t *w, const float *v, uint32_t n)
{
    if (!w->bf16) {
        put(w, v, sizeof(float) * n);
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        put_u16(w, to_bf16(v[i]));
}

/* An entry of the open block: its id (none in a dense block), then na
 * values from a and the rest of the width from b. */
static void add_entry(mlog_writer_t *w, const char *id, size_t idlen, const float *a, uint32_t na,
                      const float *b)
{
    if (w->done || !w->block || w->count == UINT32_MAX || na > w->width ||
        (w->block == MLOG_DENSE_GRAD ? id != NULL : (!id || idlen < 1 || idlen > MLOG_ID_MAX))) {
        w->err = 1;
        return;
    }
    if (w->block != MLOG_DENSE_GRAD) {
        put_u16(w, (uint16_t)idlen);
        put(w, id, idlen);
    }
    put_values(w, a, na);
    put_values(w, b, w->width - na);
    w->count++;
}

void mlog_add_entry(mlog_writer_t *w, const char *id, size_t idlen, const float *v)
{
    add_entry(w, id, idlen, v, w->width, v); /* all of v: nothing from b */
}

void mlog_put_row_grad(void *arg, int table, const char *id, size_t len, const float *g,
                       const float *gsq, int R)
{
    mlog_writer_t *w = arg;
    if (w->block != MLOG_ROW_GRAD || w->table != (uint8_t)table || w->width != 2 * (uint32_t)R)
        mlog_add_block16(w, MLOG_ROW_GRAD, (uint8_t)table, 2 * (uint32_t)R);
    add_entry(w, id, len, g, (uint32_t)R, gsq);
}

void mlog_put_row_value(void *arg, int table, const char *id, size_t len, const float *v, int width)
{
    mlog_writer_t *w = arg;
    if (w->block != MLOG_ROW_VALUE || w->table != (uint8_t)table || w->width != (uint32_t)width)
        mlog_add_block(w, MLOG_ROW_VALUE, (uint8_t)table, (uint32_t)width);
    mlog_add_entry(w, id, len, v);
}

void mlog_put_dense(void *arg, int table, const float *g, size_t n)
{
    mlog_writer_t *w = arg;
    mlog_add_block(w, MLOG_DENSE_GRAD, (uint8_t)table, (uint32_t)n);
    mlog_add_entry(w, NULL, 0, g);
}

int mlog_finish(mlog_writer_t *w, const uint8_t **out, size_t *outlen)
{
    if (w->done)
        return -1;
    close_block(w);
    if (!w->nblocks_at) {
        w->nblocks_at = w->len;
        put_u32(w, 0);
    }
    w->done = 1;
    if (w->err)
        return -1;
    uint64_t h = XXH3_64bits(w->buf, w->len);
    put_u64(w, h);
    if (w->err)
        return -1;
    /* what a reader would refuse (no range, a float not finite, ...) is not
     * handed out */
    mlog_record_t *rec = malloc(sizeof(*rec));
    char err[192];
    int bad = !rec || mlog_decode(w->buf, w->len, rec, err, sizeof(err)) != 0;
    free(rec);
    if (bad) {
        w->err = 1;
        return -1;
    }
    *out = w->buf, *outlen = w->len;
    return 0;
}

void mlog_writer_free(mlog_writer_t *w)
{
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

/* ---- reader ---- */

typedef struct {
    const uint8_t *p;
    size_t left;
} cur_t;

static int take(cur_t *c, void *out, size_t n)
{
    if (c->left < n)
        return -1;
    if (out)
        memcpy(out, c->p, n);
    c->p += n, c->left -= n;
    return 0;
}

static int floats_finite(const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        float f;
        memcpy(&f, p + (size_t)i * 4, 4);
        if (!isfinite(f))
            return 0;
    }
    return 1;
}

static int bf16_finite(const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + (size_t)i * 2, 2);
        if ((h & 0x7f80u) == 0x7f80u) /* exponent all ones: an infinity or a NaN */
            return 0;
    }
    return 1;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(errstr, errlen, __VA_ARGS__);                                                     \
        return -1;                                                                                 \
    } while (0)

int mlog_decode(const void *buf, size_t len, mlog_record_t *rec, char *errstr, size_t errlen)
{
    if (len < 4 + 3 + 1 + 24 + 4 + 4 + 4 + 8)
        FAIL("model log: record of %zu bytes is too short", len);
    if (memcmp(buf, magic, 4) != 0)
        FAIL("model log: not a model-log record (bad magic)");
    uint64_t h, want;
    memcpy(&h, (const uint8_t *)buf + len - 8, 8);
    want = XXH3_64bits(buf, len - 8);
    if (h != want)
        FAIL("model log: checksum mismatch");
    cur_t c = {(const uint8_t *)buf + 4, len - 4 - 8};
    uint8_t ver = 0, kind = 0, mlen = 0;
    take(&c, &ver, 1), take(&c, &kind, 1), take(&c, &mlen, 1);
    if (ver != MLOG_VERSION)
        FAIL("model log: record version %u, this build reads %d", ver, MLOG_VERSION);
    if (kind != MLOG_CLAIM && kind != MLOG_WINDOW)
        FAIL("model log: unknown record kind %u", kind);
    if (mlen < 1)
        FAIL("model log: empty member name");
    if (c.left >= mlen && memchr(c.p, 0, mlen))
        FAIL("model log: a NUL in the member name");
    rec->kind = (mlog_kind_t)kind;
    rec->member = (const char *)c.p, rec->member_len = mlen;
    uint64_t ts = 0, view = 0;
    if (take(&c, NULL, mlen) || take(&c, &rec->seq, 8) || take(&c, &ts, 8) || take(&c, &view, 8) ||
        take(&c, &rec->steps, 4))
        FAIL("model log: short header");
    rec->ts_ms = (int64_t)ts, rec->view = (int64_t)view;
    if (rec->view < -1)
        FAIL("model log: view %lld", (long long)rec->view);
    if (rec->steps > MLOG_STEPS_MAX)
        FAIL("model log: %u steps (at most %u)", rec->steps, MLOG_STEPS_MAX);
    if (rec->kind == MLOG_CLAIM && rec->steps)
        FAIL("model log: a claim with %u steps", rec->steps);
    uint32_t nr = 0;
    if (take(&c, &nr, 4) || nr > MLOG_RANGES_MAX)
        FAIL("model log: %u ranges (at most %d)", nr, MLOG_RANGES_MAX);
    if (nr == 0)
        FAIL("model log: a record with no range");
    rec->nranges = (int)nr;
    for (uint32_t i = 0; i < nr; i++) {
        mlog_range_t *g = &rec->ranges[i];
        uint16_t tl = 0;
        uint32_t part = 0;
        uint64_t first = 0, last = 0;
        if (take(&c, &tl, 2) || tl < 1 || tl > MLOG_TOPIC_MAX)
            FAIL("model log: range %u: bad topic length", i);
        g->topic = (const char *)c.p, g->topic_len = tl;
        if (c.left >= tl && memchr(c.p, 0, tl))
            FAIL("model log: range %u: a NUL in the topic name", i);
        if (take(&c, NULL, tl) || take(&c, &part, 4) || take(&c, &first, 8) || take(&c, &last, 8))
            FAIL("model log: range %u is short", i);
        g->partition = (int32_t)part, g->first = (int64_t)first, g->last = (int64_t)last;
        if (g->partition < 0)
            FAIL("model log: range %u: partition %d", i, g->partition);
        if (rec->kind == MLOG_CLAIM ? (g->first < 0 || g->last != -1)
                                    : (g->first < 0 || g->last < g->first || g->last == INT64_MAX))
            FAIL("model log: range %u: offsets %lld to %lld", i, (long long)g->first,
                 (long long)g->last);
        for (uint32_t j = 0; j < i; j++)
            if (rec->ranges[j].partition == g->partition && rec->ranges[j].topic_len == tl &&
                memcmp(rec->ranges[j].topic, g->topic, tl) == 0)
                FAIL("model log: partition %.*s [%d] named twice", (int)tl, g->topic, g->partition);
    }
    uint32_t nb = 0;
    if (take(&c, &nb, 4) || nb > MLOG_BLOCKS_MAX)
        FAIL("model log: %u blocks (at most %d)", nb, MLOG_BLOCKS_MAX);
    if (rec->kind == MLOG_CLAIM && nb)
        FAIL("model log: a claim with blocks");
    rec->nblocks = (int)nb;
    for (uint32_t i = 0; i < nb; i++) {
        mlog_block_t *b = &rec->blocks[i];
        uint8_t k = 0;
        if (take(&c, &k, 1) || take(&c, &b->table, 1) || take(&c, &b->width, 4) ||
            take(&c, &b->count, 4))
            FAIL("model log: block %u is short", i);
        b->bf16 = (k & MLOG_BF16) != 0;
        k &= (uint8_t)~MLOG_BF16;
        if (k < MLOG_ROW_GRAD || k > MLOG_DENSE_GRAD)
            FAIL("model log: block %u of unknown kind %u", i, k);
        b->kind = (mlog_block_kind_t)k;
        if (b->width < 1 || b->width > MLOG_WIDTH_MAX)
            FAIL("model log: block %u: width %u", i, b->width);
        if (b->kind == MLOG_DENSE_GRAD)
            for (uint32_t j = 0; j < i; j++)
                if (rec->blocks[j].kind == MLOG_DENSE_GRAD && rec->blocks[j].table == b->table)
                    FAIL("model log: a second dense block of table %u (%u)", b->table, i);
        if (b->kind == MLOG_DENSE_GRAD && b->count != 1)
            FAIL("model log: dense block %u with %u entries", i, b->count);
        b->data = c.p;
        size_t fb = (size_t)b->width * (b->bf16 ? 2 : 4);
        for (uint32_t e = 0; e < b->count; e++) {
            if (b->kind != MLOG_DENSE_GRAD) {
                uint16_t il = 0;
                if (take(&c, &il, 2) || il < 1 || il > MLOG_ID_MAX || take(&c, NULL, il))
                    FAIL("model log: block %u entry %u: bad id", i, e);
            }
            if (c.left < fb)
                FAIL("model log: block %u entry %u is short", i, e);
            if (!(b->bf16 ? bf16_finite(c.p, b->width) : floats_finite(c.p, b->width)))
                FAIL("model log: block %u entry %u: a value that is not finite", i, e);
            take(&c, NULL, fb);
        }
        b->len = (size_t)(c.p - b->data);
    }
    if (c.left)
        FAIL("model log: %zu bytes after the last block", c.left);
    return 0;
}

int mlog_block_next(const mlog_block_t *b, size_t *pos, const char **id, size_t *idlen, float *out)
{
    if (*pos >= b->len)
        return -1;
    const uint8_t *p = b->data + *pos;
    if (b->kind == MLOG_DENSE_GRAD) {
        *id = NULL, *idlen = 0;
    } else {
        uint16_t il;
        memcpy(&il, p, 2);
        *id = (const char *)p + 2, *idlen = il;
        p += 2 + il;
    }
    if (b->bf16) {
        for (uint32_t i = 0; i < b->width; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * (size_t)i, 2);
            out[i] = from_bf16(h);
        }
        p += (size_t)b->width * 2;
    } else {
        memcpy(out, p, (size_t)b->width * 4);
        p += (size_t)b->width * 4;
    }
    *pos = (size_t)(p - b->data);
    return 0;
}

long mlog_apply(const mlog_record_t *rec, const mlog_apply_ops_t *ops, void *arg, int skip_values)
{
    long refused = 0;
    for (int b = 0; b < rec->nblocks; b++) {
        const mlog_block_t *k = &rec->blocks[b];
        int grads = k->kind == MLOG_ROW_GRAD, values = k->kind == MLOG_ROW_VALUE;
        if (grads && k->width % 2) {
            refused += k->count;
            continue;
        }
        if (values && skip_values)
            continue;
        float *v = malloc(sizeof(float) * k->width);
        if (!v)
            return -1;
        size_t at = 0, il;
        const char *id;
        int R = (int)(k->width / 2);
        while (mlog_block_next(k, &at, &id, &il, v) == 0) {
            int rc = grads    ? ops->row_grad(arg, k->table, id, il, v, v + R, R)
                     : values ? ops->row_value(arg, k->table, id, il, v, (int)k->width)
                              : ops->dense(arg, k->table, v, k->width, rec->steps);
            refused += rc != 0;
        }
        free(v);
    }
    return refused;
}

/* ---- ledger ---- */

static const char *verdict_names[] = {"accepted",  "stale_claim", "not_owner",
                                      "unclaimed", "overlap",     "gap"};

const char *mlog_verdict_name(mlog_verdict_t v)
{
    return (unsigned)v < MLOG_VERDICTS ? verdict_names[v] : "?";
}

void mlog_ledger_init(mlog_ledger_t *L)
{
    memset(L, 0, sizeof(*L));
    L->position = -1;
}

void mlog_ledger_free(mlog_ledger_t *L)
{
    free(L->parts);
    mlog_ledger_init(L);
}

static int find_index(const mlog_ledger_t *L, const char *topic, size_t tl, int32_t partition)
{
    for (int i = 0; i < L->nparts; i++)
        if (L->parts[i].partition == partition && strlen(L->parts[i].topic) == tl &&
            memcmp(L->parts[i].topic, topic, tl) == 0)
            return i;
    return -1;
}

const mlog_part_t *mlog_ledger_find(const mlog_ledger_t *L, const char *topic, size_t topic_len,
                                    int32_t partition)
{
    int i = find_index(L, topic, topic_len, partition);
    return i < 0 ? NULL : &L->parts[i];
}

static int same_member(const mlog_part_t *p, const mlog_record_t *r)
{
    return strlen(p->owner) == r->member_len && memcmp(p->owner, r->member, r->member_len) == 0;
}

static mlog_verdict_t judge(const mlog_ledger_t *L, const mlog_record_t *r)
{
    for (int i = 0; i < r->nranges; i++) {
        const mlog_range_t *g = &r->ranges[i];
        int k = find_index(L, g->topic, g->topic_len, g->partition);
        const mlog_part_t *p = k < 0 ? NULL : &L->parts[k];
        if (r->kind == MLOG_CLAIM) {
            if (p && p->claimed_at > r->view)
                return MLOG_STALE_CLAIM;
            continue;
        }
        if (!p)
            return MLOG_UNCLAIMED;
        if (!same_member(p, r))
            return MLOG_NOT_OWNER;
        if (g->first < p->next)
            return MLOG_OVERLAP;
        if (g->first > p->next)
            return MLOG_GAP;
    }
    return MLOG_ACCEPTED;
}

int mlog_ledger_apply(mlog_ledger_t *L, const mlog_record_t *r, int64_t pos)
{
    if (pos <= L->position)
        return -1;
    mlog_verdict_t v = judge(L, r);
    if (v == MLOG_ACCEPTED && r->kind == MLOG_CLAIM) {
        int fresh = 0; /* partitions new to the ledger: room for all first */
        for (int i = 0; i < r->nranges; i++)
            fresh += find_index(L, r->ranges[i].topic, r->ranges[i].topic_len,
                                r->ranges[i].partition) < 0;
        if (L->nparts + fresh > L->cap) {
            int cap = L->cap ? L->cap : 16;
            while (cap < L->nparts + fresh)
                cap *= 2;
            mlog_part_t *np = realloc(L->parts, sizeof(*np) * (size_t)cap);
            if (!np)
                return -1;
            L->parts = np, L->cap = cap;
        }
        for (int i = 0; i < r->nranges; i++) {
            const mlog_range_t *g = &r->ranges[i];
            int k = find_index(L, g->topic, g->topic_len, g->partition);
            mlog_part_t *p;
            if (k < 0) {
                p = &L->parts[L->nparts++];
                memset(p, 0, sizeof(*p));
                memcpy(p->topic, g->topic, g->topic_len);
                p->partition = g->partition;
                p->next = g->first;
            } else {
                p = &L->parts[k];
            }
            memcpy(p->owner, r->member, r->member_len);
            p->owner[r->member_len] = '\0';
            p->claimed_at = pos;
        }
    } else if (v == MLOG_ACCEPTED) {
        for (int i = 0; i < r->nranges; i++) {
            const mlog_range_t *g = &r->ranges[i];
            L->parts[find_index(L, g->topic, g->topic_len, g->partition)].next = g->last + 1;
        }
    }
    L->position = pos;
    L->verdicts[v]++;
    return (int)v;
}

#define LEDGER_MAGIC 0x4c444731u /* "LDG1" */

int mlog_ledger_save(const mlog_ledger_t *L, ser_writer_t *w)
{
    ser_u32(w, LEDGER_MAGIC);
    ser_i64(w, L->position);
    for (int v = 0; v < MLOG_VERDICTS; v++)
        ser_u64(w, L->verdicts[v]);
    ser_u32(w, (uint32_t)L->nparts);
    for (int i = 0; i < L->nparts; i++) {
        const mlog_part_t *p = &L->parts[i];
        uint32_t tl = (uint32_t)strlen(p->topic), ol = (uint32_t)strlen(p->owner);
        ser_u32(w, tl);
        ser_put(w, p->topic, tl);
        ser_u32(w, (uint32_t)p->partition);
        ser_u32(w, ol);
        ser_put(w, p->owner, ol);
        ser_i64(w, p->next);
        ser_i64(w, p->claimed_at);
    }
    return w->err ? -1 : 0;
}

int mlog_ledger_load(mlog_ledger_t *L, ser_reader_t *r, char *errstr, size_t len)
{
    mlog_ledger_t n;
    mlog_ledger_init(&n);
    uint32_t m = ser_get_u32(r);
    n.position = ser_get_i64(r);
    for (int v = 0; v < MLOG_VERDICTS; v++)
        n.verdicts[v] = ser_get_u64(r);
    uint32_t np = ser_get_u32(r);
    if (r->err || m != LEDGER_MAGIC || n.position < -1 || np > (1u << 20) ||
        np > ser_left(r) / 26) {
        snprintf(errstr, len, "model-log ledger: not a saved ledger, or corrupt");
        return -1;
    }
    if (np && !(n.parts = calloc(np, sizeof(*n.parts)))) {
        snprintf(errstr, len, "model-log ledger: out of memory");
        return -1;
    }
    n.cap = (int)np;
    for (uint32_t i = 0; i < np; i++) {
        mlog_part_t *p = &n.parts[i];
        uint32_t tl = ser_get_u32(r);
        if (r->err || tl < 1 || tl > MLOG_TOPIC_MAX || ser_get(r, p->topic, tl))
            goto bad;
        p->partition = (int32_t)ser_get_u32(r);
        uint32_t ol = ser_get_u32(r);
        if (r->err || ol < 1 || ol > MLOG_MEMBER_MAX || ser_get(r, p->owner, ol))
            goto bad;
        p->next = ser_get_i64(r);
        p->claimed_at = ser_get_i64(r);
        if (r->err || p->partition < 0 || p->next < 0 || p->claimed_at < 0 ||
            p->claimed_at > n.position || memchr(p->topic, 0, tl) || memchr(p->owner, 0, ol))
            goto bad;
        n.nparts++;
    }
    mlog_ledger_free(L);
    *L = n;
    return 0;
bad:
    free(n.parts);
    snprintf(errstr, len, "model-log ledger: partition entry corrupt");
    return -1;
}
