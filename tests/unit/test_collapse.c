/* test_collapse.c — huge pages back after a fork (daemon/collapse.c) over a
 * table's large arrays (emb_large_arrays): a pass after a child's
 * copy-on-write changes no value, reports its figures, is refused while one
 * runs, and stops soon when asked. Whether the kernel gives huge pages back
 * is its business (THP mode, Linux ≥ 6.1): printed, not asserted. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "clock.h"
#include "collapse.h"
#include "id.h"
#include "table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double anon_huge_mb(void)
{
    return (double)collapse_anon_huge_bytes() / (1024 * 1024);
}

static void wait_pass(collapse_t *c, collapse_stats_t *st, double max_s)
{
    double t0 = clock_mono_s();
    while (collapse_running(c, st)) {
        assert_true(clock_mono_s() - t0 < max_s);
        usleep(2000);
    }
}

static void test_pass_after_a_fork_keeps_every_value(void **state)
{
    (void)state;
    /* 40,000 rows of 64 + 64 floats: a rows array of 32 MB */
    emb_config_t cfg = {.width = 64, .state = 64, .admit_after = 1, .init_std = 0.1f, .seed = 3};
    char err[256], id[32];
    emb_table_t *t = emb_create(&cfg, err, sizeof(err));
    assert_non_null(t);
    for (int k = 0; k < 40000; k++) {
        size_t l = (size_t)snprintf(id, sizeof(id), "u%d", k);
        assert_true(emb_touch(t, id_hash(id, l), id, l, 1) != EMB_NONE);
    }
    void *p[8];
    size_t n[8];
    int k = emb_large_arrays(t, p, n, 8);
    assert_true(k >= 1);
    assert_ptr_equal(p[0], emb_row(t, 0)); /* the rows come first */
    assert_true(n[0] >= (size_t)40000 * 128 * sizeof(float));
    size_t rows_bytes = (size_t)40001 * 128 * sizeof(float);
    float *copy = malloc(rows_bytes);
    assert_non_null(copy);

    /* a child shares the pages while the parent writes to every row */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        usleep(200000);
        _exit(0);
    }
    for (uint32_t r = 1; r <= 40000; r++)
        emb_row(t, r)[5] += 1.0f;
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    memcpy(copy, emb_row(t, 0), rows_bytes);
    double before = anon_huge_mb();

    collapse_t *c = collapse_create(err, sizeof(err));
    assert_non_null(c);
    collapse_stats_t st;
    assert_int_equal(collapse_running(c, &st), 0);
    assert_int_equal(st.passes, 0);
    assert_int_equal(collapse_start(c, p, n, k, err, sizeof(err)), 0);
    /* one at a time */
    int again = collapse_start(c, p, n, k, err, sizeof(err));
    assert_true(again == 1 || again == 0); /* 0 only if the first was over already */
    wait_pass(c, &st, 60);
    assert_true(st.passes >= 1);
    assert_true(st.pages + st.refused >= 1);
    assert_memory_equal(copy, emb_row(t, 0), rows_bytes);
    print_message("collapse: %llu pages, %llu refused, %.0f ms; AnonHugePages %.0f -> %.0f MB\n",
                  (unsigned long long)st.pages, (unsigned long long)st.refused, st.seconds * 1e3,
                  before, anon_huge_mb());
    /* the table goes on as before */
    size_t l = (size_t)snprintf(id, sizeof(id), "u%d", 123);
    uint32_t e = emb_find(t, id_hash(id, l), id, l);
    assert_true(e != EMB_NONE);
    collapse_free(c);
    free(copy);
    emb_free(t);
}

static void test_stop_is_soon(void **state)
{
    (void)state;
    size_t len = (size_t)256 << 20;
    char *mem = malloc(len);
    assert_non_null(mem);
    memset(mem, 7, len);
    char err[256];
    collapse_t *c = collapse_create(err, sizeof(err));
    assert_non_null(c);
    void *p[1] = {mem};
    size_t n[1] = {len};
    assert_int_equal(collapse_start(c, p, n, 1, err, sizeof(err)), 0);
    collapse_stop(c);
    collapse_stats_t st;
    wait_pass(c, &st, 5);
    assert_int_equal(st.passes, 1);
    assert_true(st.pages < 128); /* it did not go through the whole 256 MB */
    for (size_t i = 0; i < len; i += 4096)
        assert_int_equal(mem[i], 7);
    /* free while one runs: stops and waits */
    assert_int_equal(collapse_start(c, p, n, 1, err, sizeof(err)), 0);
    collapse_free(c);
    collapse_free(NULL);
    free(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pass_after_a_fork_keeps_every_value),
        cmocka_unit_test(test_stop_is_soon),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
