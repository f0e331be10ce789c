/* test_ckpt.c — checkpoint files and table serialisation: a table survives a
 * write and a read exactly; a flipped byte, a truncated or extended file,
 * another version or a table of another shape is refused with a message; a
 * directory that refuses the write leaves the previous checkpoint as it was.
 * The background writer (a forked child) writes the same bytes as a write on
 * the spot, of the state at the fork whatever the caller does next; its
 * failures, and its death, come back as -1 and a message with the previous
 * checkpoint intact and no temporary file left. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ckpt.h"
#include "harness.h"
#include "id.h"
#include "join.h"
#include "optim.h"
#include "ring.h"
#include "rng.h"
#include "table.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

static char dir[256], path[300];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/fr-ckpt-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/state.ckpt", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    chmod(dir, 0700);
    return harness_rmtree(dir);
}

static emb_table_t *make_table(int width, int n, uint64_t seed)
{
    emb_config_t cfg = {.width = width,
                        .state = width,
                        .admit_after = 2,
                        .expire_ms = 1000,
                        .init_std = 0.1f,
                        .seed = seed};
    char err[128];
    emb_table_t *t = emb_create(&cfg, err, sizeof(err));
    assert_non_null(t);
    rng_t r;
    rng_seed(&r, seed);
    char id[32];
    for (int k = 0; k < n; k++) {
        int v = (int)rng_below(&r, (uint32_t)(n / 2 + 1));
        size_t l = (size_t)snprintf(id, sizeof(id), "user-%d", v);
        uint32_t e = emb_touch(t, id_hash(id, l), id, l, 1000 + k);
        uint32_t row = emb_entry_row(t, e);
        if (row) /* make rows differ from their initial values */
            for (int j = 0; j < 2 * width; j++)
                emb_row(t, row)[j] += (float)k * 0.001f;
    }
    emb_expire(t, 1000 + n / 2 + 1000, NULL, NULL, NULL); /* some are gone: holes */
    return t;
}

static int save_table(void *arg, ser_writer_t *w)
{
    return emb_save(arg, w);
}

static int load_table(void *arg, ser_reader_t *r, uint32_t version, char *err, size_t len)
{
    (void)version;
    return emb_load(arg, r, err, len);
}

/* A checkpoint of one section, "TEST" version 1. */
static int write1(const char *to, ckpt_save_fn save, void *arg, char *err, size_t len)
{
    const ckpt_section_t s = {"TEST", 1, 1, save, NULL};
    return ckpt_write(to, &s, 1, arg, err, len);
}

static int read1(const char *from, ckpt_load_fn load, void *arg, char *err, size_t len)
{
    const ckpt_section_t s = {"TEST", 1, 1, NULL, load};
    return ckpt_read(from, &s, 1, arg, err, len);
}

static void assert_same(emb_table_t *a, emb_table_t *b, int width)
{
    emb_stats_t sa, sb;
    emb_stats(a, &sa);
    emb_stats(b, &sb);
    assert_int_equal(sa.entries, sb.entries);
    assert_int_equal(sa.rows, sb.rows);
    assert_int_equal(sa.admitted, sb.admitted);
    assert_int_equal(sa.expired, sb.expired);
    assert_memory_equal(emb_row(a, 0), emb_row(b, 0), sizeof(float) * 2 * width);
    for (uint32_t e = 0; e < emb_entry_cap(a); e++) {
        if (!emb_entry_alive(a, e))
            continue;
        size_t l;
        const char *id = emb_entry_id(a, e, &l);
        uint32_t f = emb_find(b, id_hash(id, l), id, l);
        assert_int_equal(f, e); /* entry indices are kept: the rolling buffer uses them */
        assert_int_equal(emb_entry_count(a, e), emb_entry_count(b, f));
        assert_int_equal(emb_entry_last_seen(a, e), emb_entry_last_seen(b, f));
        uint32_t ra = emb_entry_row(a, e), rb = emb_entry_row(b, f);
        assert_int_equal(ra == 0, rb == 0);
        if (ra)
            assert_memory_equal(emb_row(a, ra), emb_row(b, rb), sizeof(float) * 2 * width);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    emb_table_t *a = make_table(8, 5000, 1);
    char err[256];
    assert_int_equal(write1(path, save_table, a, err, sizeof(err)), 0);
    emb_table_t *b = make_table(8, 0, 99);
    assert_int_equal(read1(path, load_table, b, err, sizeof(err)), 0);
    assert_same(a, b, 8);
    /* the restored table goes on as the original would */
    uint32_t e = emb_touch(b, id_hash("new", 3), "new", 3, 9999);
    assert_true(e != EMB_NONE);
    emb_free(a);
    emb_free(b);
}

static void corrupt_and_expect(long offset, int whence, const char *expect)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, offset, whence);
    int c = fgetc(f);
    fseek(f, offset, whence);
    fputc(c ^ 0x40, f);
    fclose(f);
    emb_table_t *b = make_table(8, 0, 7);
    char err[256] = "";
    assert_int_equal(read1(path, load_table, b, err, sizeof(err)), -1);
    if (!strstr(err, expect))
        fail_msg("\"%s\" lacks \"%s\"", err, expect);
    emb_free(b);
}

static void test_corruption_is_refused(void **state)
{
    (void)state;
    emb_table_t *a = make_table(8, 2000, 2);
    char err[256];
    static const struct {
        long off;
        int whence;
        const char *expect;
    } cases[] = {
        {100, SEEK_SET, "section TEST at byte 12: checksum mismatch"}, /* a payload byte */
        {2, SEEK_SET, "not a freshrec checkpoint"},
        {9, SEEK_SET, "format version 16386 unsupported (this build reads 2)"},
        {13, SEEK_SET, "checksum mismatch"},        /* the tag: corrupt, not "unknown" */
        {17, SEEK_SET, "checksum mismatch"},        /* the section's version */
        {26, SEEK_SET, "past the end of the file"}, /* its length */
        {21, SEEK_SET, "checksum mismatch"},        /* its length, still within the file */
        {-30, SEEK_END, "section TEST at byte 12: checksum mismatch"}, /* its checksum */
        {-20, SEEK_END, "checksum mismatch"},                          /* the END section */
        {-3, SEEK_END, "checksum mismatch"},                           /* END's checksum */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(write1(path, save_table, a, err, sizeof(err)), 0);
        corrupt_and_expect(cases[i].off, cases[i].whence, cases[i].expect);
    }
    /* truncated, and extended */
    assert_int_equal(write1(path, save_table, a, err, sizeof(err)), 0);
    struct stat st;
    stat(path, &st);
    assert_int_equal(truncate(path, st.st_size - 40), 0);
    emb_table_t *b = make_table(8, 0, 3);
    assert_int_equal(read1(path, load_table, b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "truncated"));
    assert_int_equal(write1(path, save_table, a, err, sizeof(err)), 0);
    assert_int_equal(truncate(path, st.st_size - 24), 0); /* whole sections, no END */
    assert_int_equal(read1(path, load_table, b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "truncated (no END section after 1 sections)"));
    assert_int_equal(write1(path, save_table, a, err, sizeof(err)), 0);
    FILE *f = fopen(path, "ab");
    fputs("junk at the end", f);
    fclose(f);
    assert_int_equal(read1(path, load_table, b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "15 bytes after it"));
    /* another shape */
    assert_int_equal(write1(path, save_table, a, err, sizeof(err)), 0);
    emb_table_t *c = make_table(4, 0, 3);
    assert_int_equal(read1(path, load_table, c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "floats"));
    /* missing */
    assert_int_equal(read1("/nonexistent/x.ckpt", load_table, b, err, sizeof(err)), -1);
    emb_free(a);
    emb_free(b);
    emb_free(c);
}

/* A directory that refuses the write: -1 with a message, the previous
 * checkpoint intact, no temporary file left. */
static void test_refused_write_keeps_the_previous(void **state)
{
    (void)state;
    if (geteuid() == 0) {
        /* root writes through permissions: use a full "disk" instead, /dev/full */
        emb_table_t *a = make_table(8, 100, 4);
        char err[256];
        assert_int_equal(write1("/dev/full/x", save_table, a, err, sizeof(err)), -1);
        emb_free(a);
    }
    emb_table_t *a = make_table(8, 500, 5);
    char err[256];
    assert_int_equal(write1(path, save_table, a, err, sizeof(err)), 0);
    struct stat before;
    stat(path, &before);
    /* a save that fails half way: nothing replaces the good file */
    int fail_save(void *arg, ser_writer_t *w);
    assert_int_equal(write1(path, fail_save, a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "could not be serialised"));
    struct stat after;
    stat(path, &after);
    assert_int_equal(before.st_size, after.st_size);
    emb_table_t *b = make_table(8, 0, 6);
    assert_int_equal(read1(path, load_table, b, err, sizeof(err)), 0);
    assert_same(a, b, 8);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "ls '%s' | grep -c tmp", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    assert_int_equal(fscanf(p, "%d", &n), 1);
    pclose(p);
    assert_int_equal(n, 0);
    emb_free(a);
    emb_free(b);
}

int fail_save(void *arg, ser_writer_t *w)
{
    emb_save(arg, w);
    return -1;
}

typedef struct {
    dense_block_t *d;
    ring_t *ring;
    join_t *join;
} state_t;

static int save_state(void *arg, ser_writer_t *w)
{
    state_t *st = arg;
    return dense_block_save(st->d, w) || ring_save(st->ring, w) || join_save(st->join, w) ? -1 : 0;
}

static int load_state(void *arg, ser_reader_t *r, uint32_t version, char *err, size_t len)
{
    (void)version;
    state_t *st = arg;
    return dense_block_load(st->d, r, err, len) || ring_load(st->ring, r, 7, 13, err, len) ||
                   join_load(st->join, r, err, len)
               ? -1
               : 0;
}

static lrn_id_t mk(const char *s)
{
    return (lrn_id_t){id_hash(s, strlen(s)), s, strlen(s)};
}

/* The dense block with its Adam state, the rolling buffer and the pending
 * impressions of the join come back exactly, and go on as the originals. */
static void test_learner_parts_round_trip(void **state)
{
    (void)state;
    char err[256];
    dense_block_t d1, d2;
    assert_int_equal(dense_block_init(&d1, 1000), 0);
    assert_int_equal(dense_block_init(&d2, 1000), 0);
    rng_t r;
    rng_seed(&r, 11);
    for (size_t i = 0; i < 1000; i++) {
        d1.params[i] = rng_normal(&r);
        d1.grads[i] = rng_normal(&r);
    }
    dense_block_adam(&d1, 0.01f, 0.9f, 0.999f, 1e-8f, 0);
    dense_block_adam(&d1, 0.01f, 0.9f, 0.999f, 1e-8f, 0);
    ring_t *r1 = ring_create(100, err, sizeof(err)), *r2 = ring_create(100, err, sizeof(err));
    for (int k = 0; k < 250; k++)
        ring_push(r1, (uint32_t)(k % 7), (uint32_t)(k % 13), k);
    join_t *j1 = join_create(1000, 100, err, sizeof(err)),
           *j2 = join_create(1000, 100, err, sizeof(err));
    static char ub[40][8], ib[40][8];
    for (int k = 0; k < 40; k++) {
        snprintf(ub[k], 8, "u%d", k % 5);
        snprintf(ib[k], 8, "i%d", k);
        lrn_id_t u = mk(ub[k]), it = mk(ib[k]);
        char payload[32];
        int pl = snprintf(payload, sizeof(payload), "{\"n\":%d}", k);
        assert_int_equal(join_impression(j1, &u, &it, 100 * k, payload, (size_t)pl), 0);
        if (k % 4 == 0)
            assert_int_equal(join_click(j1, &u, &it, 100 * k + 1), 1);
    }
    state_t s1 = {&d1, r1, j1}, s2 = {&d2, r2, j2};
    assert_int_equal(write1(path, save_state, &s1, err, sizeof(err)), 0);
    assert_int_equal(read1(path, load_state, &s2, err, sizeof(err)), 0);

    assert_int_equal(d2.t, 2);
    assert_memory_equal(d1.params, d2.params, sizeof(float) * 1000);
    assert_memory_equal(d1.m, d2.m, sizeof(float) * 1000);
    assert_memory_equal(d1.v, d2.v, sizeof(float) * 1000);
    assert_int_equal(ring_size(r2), 100);
    for (size_t i = 0; i < 100; i++) {
        uint32_t u1, i1, u2, i2;
        int64_t t1, t2;
        ring_get(r1, i, &u1, &i1, &t1);
        ring_get(r2, i, &u2, &i2, &t2);
        assert_true(u1 == u2 && i1 == i2 && t1 == t2);
    }
    for (uint32_t it = 0; it < 13; it++)
        assert_int_equal(ring_item_count(r1, it), ring_item_count(r2, it));
    assert_int_equal(join_pending(j2), 40);
    /* both decide the same way: the same negatives with their payloads */
    join_advance(j1, 100000);
    join_advance(j2, 100000);
    lrn_event_t o1[64], o2[64];
    size_t n1 = join_take(j1, o1, 64), n2 = join_take(j2, o2, 64);
    assert_int_equal(n1, 30);
    assert_int_equal(n2, n1);
    for (size_t k = 0; k < n1; k++) {
        assert_int_equal(o1[k].payload_len, o2[k].payload_len);
        assert_memory_equal(o1[k].payload, o2[k].payload, o1[k].payload_len);
        assert_memory_equal(o1[k].item.id, o2[k].item.id, o1[k].item.len);
        assert_int_equal(o1[k].ts_ms, o2[k].ts_ms);
    }
    assert_int_equal(join_clicked_total(j2), join_clicked_total(j1));

    /* another size is refused */
    dense_block_t d3;
    assert_int_equal(dense_block_init(&d3, 999), 0);
    ring_t *r3 = ring_create(100, err, sizeof(err));
    join_t *j3 = join_create(1000, 100, err, sizeof(err));
    state_t s3 = {&d3, r3, j3};
    assert_int_equal(read1(path, load_state, &s3, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "1000 floats"));
    dense_block_free(&d1);
    dense_block_free(&d2);
    dense_block_free(&d3);
    ring_free(r1);
    ring_free(r2);
    ring_free(r3);
    join_free(j1);
    join_free(j2);
    join_free(j3);
}

/* ------------------------------------------------ the background writer */

static char *slurp(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static int tmp_files(void)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "ls '%s' | grep -c tmp", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    assert_int_equal(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

static int bg_write(const char *to, const char *prev, ckpt_save_fn save, void *arg, char *err,
                    size_t len)
{
    ckpt_bg_t bg;
    ckpt_bg_init(&bg);
    const ckpt_section_t s = {"TEST", 1, 1, save, NULL};
    if (ckpt_bg_start(&bg, to, prev, &s, 1, arg, err, len))
        return -2;
    assert_true(ckpt_bg_running(&bg));
    assert_true(bg.fd >= 0);
    assert_true(bg.stall_s >= 0 && bg.stall_s < 5);
    /* a second one while the first runs is refused */
    char e2[128];
    assert_int_equal(ckpt_bg_start(&bg, to, prev, &s, 1, arg, e2, sizeof(e2)), -1);
    assert_non_null(strstr(e2, "still running"));
    int rc = ckpt_bg_wait(&bg, err, len);
    assert_false(ckpt_bg_running(&bg));
    assert_int_equal(bg.fd, -1);
    return rc;
}

/* The same bytes as a write on the spot; the previous file kept as prev. */
static void test_bg_writes_what_sync_writes(void **state)
{
    (void)state;
    emb_table_t *a = make_table(8, 5000, 21);
    char err[256], sync_path[320], prev[320];
    snprintf(sync_path, sizeof(sync_path), "%s/sync.ckpt", dir);
    snprintf(prev, sizeof(prev), "%s.prev", path);
    unlink(path);
    unlink(prev);
    assert_int_equal(write1(sync_path, save_table, a, err, sizeof(err)), 0);
    /* no file yet: nothing to keep, and no note */
    assert_int_equal(bg_write(path, prev, save_table, a, err, sizeof(err)), 0);
    assert_int_equal(access(prev, F_OK), -1);
    size_t n1, n2;
    char *b1 = slurp(sync_path, &n1), *b2 = slurp(path, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(b2);
    emb_table_t *b = make_table(8, 0, 99);
    assert_int_equal(read1(path, load_table, b, err, sizeof(err)), 0);
    assert_same(a, b, 8);
    /* again: the first one becomes prev, whole */
    assert_int_equal(bg_write(path, prev, save_table, a, err, sizeof(err)), 0);
    char *b3 = slurp(prev, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b3, n1);
    free(b1);
    free(b3);
    assert_int_equal(tmp_files(), 0);
    emb_free(a);
    emb_free(b);
}

typedef struct {
    emb_table_t *t;
    int go; /* read end of a pipe: the child saves once the parent has written to it */
} gated_t;

static int save_gated(void *arg, ser_writer_t *w)
{
    gated_t *g = arg;
    char c;
    if (read(g->go, &c, 1) != 1)
        return -1;
    return emb_save(g->t, w);
}

/* The child writes the state at the fork: what the parent changes right
 * after (before the child has even begun to serialise) is not in the file. */
static void test_bg_writes_the_state_at_the_fork(void **state)
{
    (void)state;
    emb_table_t *a = make_table(8, 3000, 22);
    char err[256], before[320];
    snprintf(before, sizeof(before), "%s/before.ckpt", dir);
    assert_int_equal(write1(before, save_table, a, err, sizeof(err)), 0);
    int go[2];
    assert_int_equal(pipe(go), 0);
    gated_t g = {a, go[0]};
    ckpt_bg_t bg;
    ckpt_bg_init(&bg);
    const ckpt_section_t gs = {"TEST", 1, 1, save_gated, NULL};
    assert_int_equal(ckpt_bg_start(&bg, path, NULL, &gs, 1, &g, err, sizeof(err)), 0);
    /* the parent goes on: every row changes, and new ids arrive */
    for (uint32_t e = 0; e < emb_entry_cap(a); e++)
        if (emb_entry_alive(a, e) && emb_entry_row(a, e))
            for (int j = 0; j < 8; j++)
                emb_row(a, emb_entry_row(a, e))[j] += 1.0f;
    char id[32];
    for (int k = 0; k < 500; k++) {
        size_t l = (size_t)snprintf(id, sizeof(id), "late-%d", k);
        for (int r = 0; r < 2; r++)
            emb_touch(a, id_hash(id, l), id, l, 99999);
    }
    /* the child waits for the gate: not done, and finishing never blocks */
    assert_int_equal(ckpt_bg_finish(&bg, err, sizeof(err)), 1);
    assert_true(ckpt_bg_running(&bg));
    assert_int_equal(write(go[1], "x", 1), 1);
    /* as a loop would: finish each time the pipe is readable, until done */
    int rc;
    while ((rc = ckpt_bg_finish(&bg, err, sizeof(err))) == 1) {
        struct pollfd pf = {.fd = bg.fd, .events = POLLIN};
        assert_true(poll(&pf, 1, 10000) == 1);
    }
    assert_int_equal(rc, 0);
    assert_false(ckpt_bg_running(&bg));
    close(go[0]);
    close(go[1]);
    size_t n1, n2;
    char *b1 = slurp(before, &n1), *b2 = slurp(path, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(b1);
    free(b2);
    /* and the parent's table did change */
    emb_table_t *b = make_table(8, 0, 98);
    assert_int_equal(read1(path, load_table, b, err, sizeof(err)), 0);
    emb_stats_t sa, sb;
    emb_stats(a, &sa);
    emb_stats(b, &sb);
    assert_int_equal(sa.entries, sb.entries + 500);
    emb_free(a);
    emb_free(b);
}

static int save_and_die(void *arg, ser_writer_t *w)
{
    emb_save(arg, w); /* part of it is in the temporary file */
    raise(SIGKILL);
    return 0;
}

/* A refusal in the child (a directory that is not there, a state that
 * cannot be serialised) and a child that dies part way: -1 and a message;
 * the previous checkpoint stays whole as prev, no temporary file stays. */
static void test_bg_failures_keep_the_previous(void **state)
{
    (void)state;
    emb_table_t *a = make_table(8, 800, 23);
    char err[256], prev[320];
    snprintf(prev, sizeof(prev), "%s.prev", path);
    unlink(prev);

    assert_int_equal(bg_write("/nonexistent-fr-dir/x.ckpt", NULL, save_table, a, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "open"));
    assert_non_null(strstr(err, "/nonexistent-fr-dir/x.ckpt.tmp."));

    assert_int_equal(write1(path, save_table, a, err, sizeof(err)), 0);
    size_t n0;
    char *good = slurp(path, &n0);
    static const struct {
        ckpt_save_fn save;
        const char *expect;
    } cases[] = {
        {fail_save, "could not be serialised"},
        {save_and_die, "killed by signal 9"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        assert_int_equal(bg_write(path, prev, cases[i].save, a, err, sizeof(err)), -1);
        if (!strstr(err, cases[i].expect))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].expect);
        /* the newest good one is prev now (the child kept it before it wrote) */
        assert_int_equal(access(path, F_OK), -1);
        size_t n;
        char *b = slurp(prev, &n);
        assert_int_equal(n, n0);
        assert_memory_equal(b, good, n0);
        free(b);
        assert_int_equal(tmp_files(), 0);
        /* put it back for the next case */
        assert_int_equal(rename(prev, path), 0);
    }
    emb_table_t *b = make_table(8, 0, 97);
    assert_int_equal(read1(path, load_table, b, err, sizeof(err)), 0);
    assert_same(a, b, 8);
    free(good);
    emb_free(a);
    emb_free(b);
}

/* Temporary files of writers killed part way are removed, nothing else. */
static void test_remove_stale(void **state)
{
    (void)state;
    char p[400];
    const char *names[] = {"state.ckpt.tmp.123", "state.ckpt.tmp.77", "state.ckpt.prev",
                           "other.ckpt.tmp.5"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fclose(f);
    }
    assert_int_equal(ckpt_remove_stale(path), 2);
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        assert_int_equal(access(p, F_OK) == 0, i >= 2);
        if (i >= 2)
            unlink(p);
    }
}

/* ---- sections ----------------------------------------------------------- */

typedef struct {
    uint32_t a[3];      /* section AAAA's payload */
    char b[16];         /* section BBBB's payload */
    uint32_t version_a; /* the versions the loads were given */
    uint32_t version_b;
    int loads;      /* how many loads ran */
    int short_read; /* BBBB's load reads one byte less */
} sec_t;

static int save_a(void *arg, ser_writer_t *w)
{
    ser_put(w, ((sec_t *)arg)->a, sizeof(((sec_t *)arg)->a));
    return 0;
}

static int save_b(void *arg, ser_writer_t *w)
{
    ser_put(w, ((sec_t *)arg)->b, sizeof(((sec_t *)arg)->b));
    return 0;
}

static int load_a(void *arg, ser_reader_t *r, uint32_t version, char *err, size_t len)
{
    (void)err, (void)len;
    sec_t *s = arg;
    s->loads++;
    s->version_a = version;
    return ser_get(r, s->a, sizeof(s->a));
}

static int load_b(void *arg, ser_reader_t *r, uint32_t version, char *err, size_t len)
{
    (void)err, (void)len;
    sec_t *s = arg;
    s->loads++;
    s->version_b = version;
    return ser_get(r, s->b, sizeof(s->b) - (s->short_read ? 1 : 0));
}

/* Each section comes back to its own load, with the version it was written
 * at; a table that reads an older version too still reads the newest. */
static void test_sections_round_trip(void **state)
{
    (void)state;
    char err[256];
    sec_t in = {{1, 2, 3}, "hello, sections", 0, 0, 0, 0}, out;
    const ckpt_section_t w[] = {{"AAAA", 2, 2, save_a, load_a}, {"BBBB", 1, 1, save_b, load_b}};
    assert_int_equal(ckpt_write(path, w, 2, &in, err, sizeof(err)), 0);
    memset(&out, 0, sizeof(out));
    const ckpt_section_t r[] = {{"AAAA", 3, 1, save_a, load_a}, {"BBBB", 1, 1, save_b, load_b}};
    assert_int_equal(ckpt_read(path, r, 2, &out, err, sizeof(err)), 0);
    assert_memory_equal(out.a, in.a, sizeof(in.a));
    assert_string_equal(out.b, in.b);
    assert_int_equal(out.version_a, 2);
    assert_int_equal(out.version_b, 1);
    assert_int_equal(out.loads, 2);
    /* the layout: magic, format version, then AAAA's head */
    size_t n;
    char *bytes = slurp(path, &n);
    assert_int_equal(n, 12 + (16 + 12 + 8) + (16 + 16 + 8) + (16 + 8));
    assert_memory_equal(bytes, "FRCKPT\0\1\2\0\0\0AAAA\2\0\0\0\14\0\0\0\0\0\0\0", 28);
    assert_memory_equal(bytes + n - 24, "END \1\0\0\0\0\0\0\0\0\0\0\0", 16);
    free(bytes);
}

/* Nothing is skipped silently, and no load runs before the whole file has
 * been checked: an unknown section, a version this build does not read, a
 * missing section, a payload not read to its end or read past it. */
static void test_sections_refused(void **state)
{
    (void)state;
    char err[256], want[512];
    sec_t in = {{1, 2, 3}, "payload", 0, 0, 0, 0}, out;
    const ckpt_section_t w[] = {{"AAAA", 1, 1, save_a, load_a}, {"CNTR", 3, 3, save_b, load_b}};
    assert_int_equal(ckpt_write(path, w, 2, &in, err, sizeof(err)), 0);

    const ckpt_section_t older[] = {{"AAAA", 1, 1, save_a, load_a}, {"CNTR", 2, 1, save_b, load_b}};
    memset(&out, 0, sizeof(out));
    assert_int_equal(ckpt_read(path, older, 2, &out, err, sizeof(err)), -1);
    snprintf(want, sizeof(want),
             "checkpoint %s: section CNTR version 3 unsupported (this build reads 1–2)", path);
    assert_string_equal(err, want);
    assert_int_equal(out.loads, 0);

    const ckpt_section_t only_a[] = {{"AAAA", 1, 1, save_a, load_a}};
    assert_int_equal(ckpt_read(path, only_a, 1, &out, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "checkpoint %s: unknown section CNTR (this build reads AAAA)",
             path);
    assert_string_equal(err, want);
    assert_int_equal(out.loads, 0);

    const ckpt_section_t more[] = {{"AAAA", 1, 1, save_a, load_a},
                                   {"CNTR", 3, 3, save_b, load_b},
                                   {"JOIN", 1, 1, save_a, load_a}};
    assert_int_equal(ckpt_read(path, more, 3, &out, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "checkpoint %s: no JOIN section", path);
    assert_string_equal(err, want);
    assert_int_equal(out.loads, 0);

    const ckpt_section_t same[] = {{"AAAA", 1, 1, save_a, load_a}, {"CNTR", 3, 3, save_b, load_b}};
    out.short_read = 1;
    assert_int_equal(ckpt_read(path, same, 2, &out, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "checkpoint %s: section CNTR: 1 bytes left unread", path);
    assert_string_equal(err, want);
    /* a payload shorter than its load expects */
    const ckpt_section_t swapped[] = {{"AAAA", 1, 1, save_a, load_b},
                                      {"CNTR", 3, 3, save_b, load_b}};
    memset(&out, 0, sizeof(out));
    assert_int_equal(ckpt_read(path, swapped, 2, &out, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "checkpoint %s: section AAAA: short payload", path);
    assert_string_equal(err, want);
    /* twice the same section */
    const ckpt_section_t twice[] = {{"AAAA", 1, 1, save_a, load_a}, {"AAAA", 1, 1, save_a, load_a}};
    assert_int_equal(ckpt_write(path, twice, 2, &in, err, sizeof(err)), 0);
    assert_int_equal(ckpt_read(path, only_a, 1, &out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "section AAAA twice"));
}

/* A checkpoint of the format before sections (format version 1: magic,
 * version, one payload, its length and XXH3-64), built byte for byte as the
 * old ckpt_write wrote it, is refused with a message naming its version and
 * the one this build reads, however valid it is in its own format. */
static void test_old_format_refused(void **state)
{
    (void)state;
    const char payload[] = "an old learner's state";
    assert_int_equal(harness_ckpt_v1_write(path, payload, sizeof(payload)), 0);
    sec_t out;
    memset(&out, 0, sizeof(out));
    const ckpt_section_t r[] = {{"AAAA", 1, 1, save_a, load_a}};
    char err[512], want[512];
    assert_int_equal(ckpt_read(path, r, 1, &out, err, sizeof(err)), -1);
    snprintf(want, sizeof(want),
             "checkpoint %s: format version 1 unsupported (this build reads 2; version 1 is the "
             "unsectioned format of before: start without it, from Kafka's committed offsets)",
             path);
    assert_string_equal(err, want);
    assert_int_equal(out.loads, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_corruption_is_refused),
        cmocka_unit_test(test_refused_write_keeps_the_previous),
        cmocka_unit_test(test_learner_parts_round_trip),
        cmocka_unit_test(test_bg_writes_what_sync_writes),
        cmocka_unit_test(test_bg_writes_the_state_at_the_fork),
        cmocka_unit_test(test_bg_failures_keep_the_previous),
        cmocka_unit_test(test_remove_stale),
        cmocka_unit_test(test_sections_round_trip),
        cmocka_unit_test(test_sections_refused),
        cmocka_unit_test(test_old_format_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
