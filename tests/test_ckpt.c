/* test_ckpt.c — checkpoint files and table serialisation: a table survives a
 * write and a read exactly; a flipped byte, a truncated or extended file,
 * another version or a table of another shape is refused with a message; a
 * directory that refuses the write leaves the previous checkpoint as it was. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ckpt.h"
#include "id.h"
#include "rng.h"
#include "table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static emb_table_t *make_table(int width, int n, uint64_t seed)
{
    emb_config_t cfg = {.width = width, .state = width, .admit_after = 2, .expire_ms = 1000,
                        .init_std = 0.1f, .seed = seed};
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
    emb_expire(t, 1000 + n / 2 + 1000, NULL, NULL); /* some are gone: holes */
    return t;
}

static int save_table(void *arg, ser_writer_t *w)
{
    return emb_save(arg, w);
}

static int load_table(void *arg, ser_reader_t *r, char *err, size_t len)
{
    return emb_load(arg, r, err, len);
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
        assert_true(f != EMB_NONE);
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
    assert_int_equal(ckpt_write(path, save_table, a, err, sizeof(err)), 0);
    emb_table_t *b = make_table(8, 0, 99);
    assert_int_equal(ckpt_read(path, load_table, b, err, sizeof(err)), 0);
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
    assert_int_equal(ckpt_read(path, load_table, b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, expect));
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
        {100, SEEK_SET, "checksum"},  /* a byte of the payload */
        {2, SEEK_SET, "not a freshrec checkpoint"},
        {9, SEEK_SET, "version"},
        {-12, SEEK_END, "length"},    /* the trailer's length */
        {-3, SEEK_END, "checksum"},   /* the trailer's checksum */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(ckpt_write(path, save_table, a, err, sizeof(err)), 0);
        corrupt_and_expect(cases[i].off, cases[i].whence, cases[i].expect);
    }
    /* truncated, and extended */
    assert_int_equal(ckpt_write(path, save_table, a, err, sizeof(err)), 0);
    struct stat st;
    stat(path, &st);
    assert_int_equal(truncate(path, st.st_size - 40), 0);
    emb_table_t *b = make_table(8, 0, 3);
    assert_int_equal(ckpt_read(path, load_table, b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "length"));
    FILE *f = fopen(path, "ab");
    fputs("junk at the end", f);
    fclose(f);
    assert_int_equal(ckpt_read(path, load_table, b, err, sizeof(err)), -1);
    /* another shape */
    assert_int_equal(ckpt_write(path, save_table, a, err, sizeof(err)), 0);
    emb_table_t *c = make_table(4, 0, 3);
    assert_int_equal(ckpt_read(path, load_table, c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "floats"));
    /* missing */
    assert_int_equal(ckpt_read("/nonexistent/x.ckpt", load_table, b, err, sizeof(err)), -1);
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
        assert_int_equal(ckpt_write("/dev/full/x", save_table, a, err, sizeof(err)), -1);
        emb_free(a);
    }
    emb_table_t *a = make_table(8, 500, 5);
    char err[256];
    assert_int_equal(ckpt_write(path, save_table, a, err, sizeof(err)), 0);
    struct stat before;
    stat(path, &before);
    /* a save that fails half way: nothing replaces the good file */
    int fail_save(void *arg, ser_writer_t *w);
    assert_int_equal(ckpt_write(path, fail_save, a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "could not be serialised"));
    struct stat after;
    stat(path, &after);
    assert_int_equal(before.st_size, after.st_size);
    emb_table_t *b = make_table(8, 0, 6);
    assert_int_equal(ckpt_read(path, load_table, b, err, sizeof(err)), 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_corruption_is_refused),
        cmocka_unit_test(test_refused_write_keeps_the_previous),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
