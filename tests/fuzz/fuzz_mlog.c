/* fuzz_mlog.c — libFuzzer target for the model log's decoder and ledger
 * (proto/mlog.c). The input's last 8 bytes are replaced by its checksum, so
 * that mutations reach the parser rather than stop at the checksum. A record
 * the decoder accepts must keep every promise of mlog.h: each block walks to
 * exactly its count of entries with ids in bounds, the writer rebuilds the
 * same bytes from what was decoded, and the ledger judges it without harm.
 * A broken promise is an abort(), which libFuzzer reports with the input
 * saved. Built and run by `make fuzz`. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mlog.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_mlog: %s:%d: %s\n", __FILE__, __LINE__, #cond);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static mlog_record_t rec;
static mlog_ledger_t ledger;
static int64_t pos;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8 || size > (1u << 20))
        return 0;
    uint8_t *b = malloc(size);
    CHECK(b);
    memcpy(b, data, size);
    uint64_t h = XXH3_64bits(b, size - 8);
    memcpy(b + size - 8, &h, 8);
    char err[256];
    err[0] = '\0';
    if (mlog_decode(b, size, &rec, err, sizeof(err))) {
        CHECK(err[0] != '\0' && strlen(err) < sizeof(err) - 1);
        free(b);
        return 0;
    }
    CHECK(rec.nranges >= 1 && rec.nranges <= MLOG_RANGES_MAX);
    CHECK(rec.nblocks >= 0 && rec.nblocks <= MLOG_BLOCKS_MAX);
    mlog_writer_t w = {0};
    mlog_begin(&w, rec.kind, rec.member, rec.member_len, rec.seq, rec.ts_ms, rec.view, rec.steps);
    char topic[MLOG_TOPIC_MAX + 1];
    for (int i = 0; i < rec.nranges; i++) {
        const mlog_range_t *g = &rec.ranges[i];
        CHECK(g->topic_len >= 1 && g->topic_len <= MLOG_TOPIC_MAX);
        CHECK(g->first >= 0 && (rec.kind == MLOG_CLAIM ? g->last == -1 : g->last >= g->first));
        memcpy(topic, g->topic, g->topic_len);
        topic[g->topic_len] = '\0';
        if (strlen(topic) != g->topic_len) { /* a NUL in a topic: the writer cannot say it */
            mlog_writer_free(&w);
            free(b);
            return 0;
        }
        mlog_add_range(&w, topic, g->partition, g->first, g->last);
    }
    for (int i = 0; i < rec.nblocks; i++) {
        const mlog_block_t *k = &rec.blocks[i];
        float *v = malloc(sizeof(float) * k->width);
        CHECK(v);
        if (k->bf16)
            mlog_add_block16(&w, k->kind, k->table, k->width);
        else
            mlog_add_block(&w, k->kind, k->table, k->width);
        size_t at = 0, il;
        const char *id;
        uint32_t n = 0;
        while (mlog_block_next(k, &at, &id, &il, v) == 0) {
            CHECK(k->kind == MLOG_DENSE_GRAD ? id == NULL : (il >= 1 && il <= MLOG_ID_MAX));
            CHECK(id == NULL || (id >= (const char *)b && id + il <= (const char *)b + size));
            mlog_add_entry(&w, id, il, v);
            n++;
        }
        CHECK(n == k->count);
        free(v);
    }
    const uint8_t *out;
    size_t outlen;
    CHECK(mlog_finish(&w, &out, &outlen) == 0);
    CHECK(outlen == size && memcmp(out, b, size) == 0);
    mlog_writer_free(&w);
    int v = mlog_ledger_apply(&ledger, &rec, pos++);
    CHECK(v >= 0 && v < MLOG_VERDICTS);
    if (ledger.nparts > 4096) { /* keep the ledger small across a long run */
        mlog_ledger_free(&ledger);
        pos = 0;
    }
    free(b);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    mlog_ledger_init(&ledger);
    return 0;
}
