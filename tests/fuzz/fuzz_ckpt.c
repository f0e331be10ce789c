/* fuzz_ckpt.c — libFuzzer target for checkpoints, two ways:
 *   - input starting "FRCKPT": a whole checkpoint file (store/ckpt.c), read
 *     through an in-memory file with sections LRNR (table, dense block,
 *     rolling buffer, features) and JOIN: the section walker must refuse a
 *     bad head, length, version, tag or checksum with a message;
 *   - anything else: the payload loaders straight from the bytes (each
 *     section's checksum bypassed on purpose: this is what a payload that
 *     passed it, or a buggy writer, could hold).
 * Every loader must refuse corrupt input with an error, never crash, read
 * out of bounds or allocate without bound (libFuzzer's -rss_limit_mb catches
 * the last). Seeds (tests/fuzz/corpus/ckpt/file-*) come from the writer. */
#define _GNU_SOURCE
#include "ckpt.h"
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
#include <sys/mman.h>
#include <unistd.h>

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

typedef struct {
    emb_table_t *t;
    dense_block_t d;
    ring_t *ring;
    join_t *j;
    feat_t *f;
} state_t;

/* the order a learner checkpoint uses; each stops at its first error */
static int load_learner(void *arg, ser_reader_t *r, uint32_t version, char *err, size_t len)
{
    (void)version;
    state_t *s = arg;
    return emb_load(s->t, r, err, len) || dense_block_load(&s->d, r, err, len) ||
                   ring_load(s->ring, r, emb_entry_cap(s->t), emb_entry_cap(s->t), err, len) ||
                   feat_load(s->f, r, emb_entry_cap(s->t), err, len)
               ? -1
               : 0;
}

static int load_join(void *arg, ser_reader_t *r, uint32_t version, char *err, size_t len)
{
    (void)version;
    return join_load(((state_t *)arg)->j, r, err, len);
}

static int save_learner(void *arg, ser_writer_t *w)
{
    state_t *s = arg;
    return emb_save(s->t, w) || dense_block_save(&s->d, w) || ring_save(s->ring, w) ||
                   feat_save(s->f, emb_entry_cap(s->t), w)
               ? -1
               : 0;
}

static int save_join(void *arg, ser_writer_t *w)
{
    return join_save(((state_t *)arg)->j, w);
}

static const ckpt_section_t sections[] = {{"LRNR", 1, 1, save_learner, load_learner},
                                          {"JOIN", 1, 1, save_join, load_join}};

/* The whole file, through a memory file: 0 loaded, -1 refused. */
static int read_file(const uint8_t *data, size_t size, state_t *s, char *err, size_t len)
{
    int fd = memfd_create("fuzz_ckpt", 0);
    if (fd < 0)
        abort();
    for (size_t at = 0; at < size;) {
        ssize_t n = write(fd, data + at, size - at);
        if (n <= 0)
            abort();
        at += (size_t)n;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int rc = ckpt_read(path, sections, 2, s, err, len);
    close(fd);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mem_t m = {data, size};
    ser_reader_t r = {mem_read, &m, 0, mem_left};
    char err[256];
    emb_config_t ec = {.width = 4, .state = 4, .admit_after = 1, .init_std = 0.1f, .seed = 1};
    feat_config_t fc = {.ncat = 2,
                        .nnum = 1,
                        .dim = 4,
                        .admit_after = 1,
                        .clip = 5.0f,
                        .init_std = 0.1f,
                        .opt = OPT_ADAGRAD,
                        .seed = 2};
    state_t s = {emb_create(&ec, err, sizeof(err)),
                 {0},
                 ring_create(64, err, sizeof(err)),
                 join_create(1000, 1000, err, sizeof(err)),
                 NULL};
    s.f = feat_create(&fc, 8, err, sizeof(err));
    if (!s.t || !s.ring || !s.j || !s.f || dense_block_init(&s.d, 16))
        abort();
    int loaded = size >= 6 && memcmp(data, "FRCKPT", 6) == 0
                     ? read_file(data, size, &s, err, sizeof(err)) == 0
                     : load_learner(&s, &r, 1, err, sizeof(err)) == 0 &&
                           load_join(&s, &r, 1, err, sizeof(err)) == 0;
    if (loaded) {
        /* loaded: the structures must be usable */
        uint32_t e = emb_touch(s.t, 42, "x", 1, 0);
        if (e == EMB_NONE)
            abort();
        float x[2 * 4 + 1];
        for (uint32_t k = 0; k < emb_entry_cap(s.t); k++)
            feat_gather(s.f, k, x); /* every stored value entry must be valid */
        lrn_event_t out[8];
        join_advance(s.j, INT64_MAX / 2);
        while (join_take(s.j, out, 8) == 8)
            ;
    } else if (!memchr(err, 0, sizeof(err)) || !err[0]) {
        abort(); /* a refusal always says why */
    }
    emb_free(s.t);
    dense_block_free(&s.d);
    ring_free(s.ring);
    join_free(s.j);
    feat_free(s.f);
    return 0;
}

#ifdef FUZZ_CKPT_SEEDS
/* Writes seed files with the real writer: cc -DFUZZ_CKPT_SEEDS ... then
 * ./seeds DIR (see tests/fuzz/corpus/ckpt/README or the commit). */
int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    for (int k = 0; k < 3; k++) {
        char err[256], path[512];
        emb_config_t ec = {.width = 4, .state = 4, .admit_after = 1, .init_std = 0.1f, .seed = 1};
        feat_config_t fc = {.ncat = 2,
                            .nnum = 1,
                            .dim = 4,
                            .admit_after = 1,
                            .clip = 5.0f,
                            .init_std = 0.1f,
                            .opt = OPT_ADAGRAD,
                            .seed = 2};
        state_t s = {emb_create(&ec, err, sizeof(err)),
                     {0},
                     ring_create(64, err, sizeof(err)),
                     join_create(1000, 1000, err, sizeof(err)),
                     NULL};
        s.f = feat_create(&fc, 8, err, sizeof(err));
        if (!s.t || !s.ring || !s.j || !s.f || dense_block_init(&s.d, 16))
            return 1;
        for (int i = 0; i < 3 * k; i++) {
            char id[16];
            size_t l = (size_t)snprintf(id, sizeof(id), "u%d", i);
            uint32_t e = emb_touch(s.t, 1000u + (uint32_t)i, id, l, i);
            if (e != EMB_NONE)
                ring_push(s.ring, e, e, i);
        }
        snprintf(path, sizeof(path), "%s/file-%d.ckpt", argv[1], k);
        if (ckpt_write(path, sections, 2, &s, err, sizeof(err))) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        emb_free(s.t);
        dense_block_free(&s.d);
        ring_free(s.ring);
        join_free(s.j);
        feat_free(s.f);
    }
    return 0;
}
#endif
