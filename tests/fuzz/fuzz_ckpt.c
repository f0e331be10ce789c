/* fuzz_ckpt.c — libFuzzer target for the checkpoint payload loaders: a
 * table, a dense block, a rolling buffer, a tower's features (DSSM) and a
 * join read from arbitrary bytes
 * (the file-level checksum is bypassed on purpose: this is what a payload
 * that passed it, or a buggy writer, could hold). Every loader must refuse
 * corrupt input with an error, never crash, read out of bounds or allocate
 * without bound (libFuzzer's -rss_limit_mb catches the last). */
#include "feat.h"
#include "join.h"
#include "optim.h"
#include "ring.h"
#include "serial.h"
#include "table.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *p;
    size_t left;
} mem_t;

static int mem_read(void *ctx, void *buf, size_t n)
{
    mem_t *m = ctx;
    if (n > m->left)
        return -1;
    memcpy(buf, m->p, n);
    m->p += n;
    m->left -= n;
    return 0;
}

static uint64_t mem_left(void *ctx)
{
    return ((mem_t *)ctx)->left;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mem_t m = {data, size};
    ser_reader_t r = {mem_read, &m, 0, mem_left};
    char err[256];
    emb_config_t ec = {.width = 4, .state = 4, .admit_after = 1, .init_std = 0.1f, .seed = 1};
    emb_table_t *t = emb_create(&ec, err, sizeof(err));
    dense_block_t d;
    ring_t *ring = ring_create(64, err, sizeof(err));
    join_t *j = join_create(1000, 1000, err, sizeof(err));
    feat_config_t fc = {.ncat = 2, .nnum = 1, .dim = 4, .admit_after = 1, .clip = 5.0f,
                        .init_std = 0.1f, .adagrad = 1, .seed = 2};
    feat_t *f = feat_create(&fc, 8, err, sizeof(err));
    if (!t || !ring || !j || !f || dense_block_init(&d, 16))
        abort();
    /* the order a learner checkpoint uses; each stops at its first error */
    if (emb_load(t, &r, err, sizeof(err)) == 0 && dense_block_load(&d, &r, err, sizeof(err)) == 0 &&
        ring_load(ring, &r, emb_entry_cap(t), emb_entry_cap(t), err, sizeof(err)) == 0 &&
        feat_load(f, &r, emb_entry_cap(t), err, sizeof(err)) == 0 &&
        join_load(j, &r, err, sizeof(err)) == 0) {
        /* loaded: the structures must be usable */
        uint32_t e = emb_touch(t, 42, "x", 1, 0);
        if (e == EMB_NONE)
            abort();
        float x[2 * 4 + 1];
        for (uint32_t k = 0; k < emb_entry_cap(t); k++)
            feat_gather(f, k, x); /* every stored value entry must be valid */
        lrn_event_t out[8];
        join_advance(j, INT64_MAX / 2);
        while (join_take(j, out, 8) == 8)
            ;
    } else if (!memchr(err, 0, sizeof(err)) || !err[0]) {
        abort(); /* a refusal always says why */
    }
    emb_free(t);
    dense_block_free(&d);
    ring_free(ring);
    join_free(j);
    feat_free(f);
    return 0;
}
