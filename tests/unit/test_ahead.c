/* test_ahead.c — daemon/ahead: every chunk of every batch runs exactly once,
 * what a chunk wrote is visible when ahead_wait returns, chunks are shared
 * between the helper and the caller, and a batch whose offer failed is run
 * by the caller alone. Not for: decoding itself (test_event, test_daemon). */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ahead.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXC 200

typedef struct {
    atomic_int runs[MAXC];
    long value[MAXC]; /* plain memory: visible to the caller only through ahead_wait */
    long batch;
    int slow; /* each chunk sleeps this many µs */
} job_t;

static void run_chunk(void *arg, size_t c)
{
    job_t *j = arg;
    if (j->slow) {
        struct timespec ts = {0, j->slow * 1000L};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&j->runs[c], 1);
    j->value[c] = j->batch * 1000 + (long)c;
}

static void test_each_chunk_once(void **state)
{
    (void)state;
    char err[128];
    ahead_t *h = ahead_create(err, sizeof(err));
    assert_non_null(h);
    static job_t j;
    unsigned long long total = 0;
    unsigned seed = 7;
    for (long b = 1; b <= 3000; b++) {
        size_t n = 1 + (size_t)(rand_r(&seed) % MAXC);
        memset(&j, 0, sizeof(j));
        j.batch = b;
        j.slow = b % 500 == 0 ? 50 : 0; /* now and then, a helper slower than the caller */
        assert_int_equal(ahead_start(h, n, run_chunk, &j), 0);
        for (size_t c = 0; c < n; c++) {
            ahead_wait(h, c);
            assert_int_equal(atomic_load(&j.runs[c]), 1);
            assert_int_equal(j.value[c], b * 1000 + (long)c);
        }
        ahead_wait_all(h);
        for (size_t c = 0; c < MAXC; c++)
            assert_int_equal(atomic_load(&j.runs[c]), c < n ? 1 : 0);
        total += n;
    }
    ahead_stats_t st;
    ahead_stats(h, &st);
    assert_int_equal(st.batches, 3000);
    assert_int_equal(st.helper + st.caller, total);
    ahead_free(h);
}

/* The caller asks for the last chunk first: the ones before it run too. */
static void test_wait_out_of_order(void **state)
{
    (void)state;
    char err[128];
    ahead_t *h = ahead_create(err, sizeof(err));
    assert_non_null(h);
    static job_t j;
    for (long b = 1; b <= 200; b++) {
        memset(&j, 0, sizeof(j));
        j.batch = b;
        assert_int_equal(ahead_start(h, 50, run_chunk, &j), 0);
        ahead_wait(h, 49);
        assert_int_equal(atomic_load(&j.runs[49]), 1);
        assert_int_equal(j.value[49], b * 1000 + 49);
        ahead_wait_all(h);
        for (size_t c = 0; c < 50; c++) {
            assert_int_equal(atomic_load(&j.runs[c]), 1);
            assert_int_equal(j.value[c], b * 1000 + (long)c);
        }
    }
    ahead_free(h);
}

/* A helper busy for long: the caller runs what the helper has not claimed. */
static void test_caller_runs_unclaimed(void **state)
{
    (void)state;
    char err[128];
    ahead_t *h = ahead_create(err, sizeof(err));
    assert_non_null(h);
    static job_t j;
    memset(&j, 0, sizeof(j));
    j.batch = 1;
    j.slow = 2000; /* 2 ms a chunk: whoever claims one keeps it that long */
    assert_int_equal(ahead_start(h, 40, run_chunk, &j), 0);
    struct timespec ts = {0, 20 * 1000000L}; /* the helper is awake and holds a chunk */
    nanosleep(&ts, NULL);
    ahead_wait_all(h);
    for (size_t c = 0; c < 40; c++)
        assert_int_equal(atomic_load(&j.runs[c]), 1);
    ahead_stats_t st;
    ahead_stats(h, &st);
    assert_int_equal(st.helper + st.caller, 40);
    assert_true(st.caller >= 1); /* the caller ran chunks rather than wait */
    assert_true(st.helper >= 1);
    ahead_free(h);
}

static void test_free_null(void **state)
{
    (void)state;
    ahead_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_chunk_once),
        cmocka_unit_test(test_wait_out_of_order),
        cmocka_unit_test(test_caller_runs_unclaimed),
        cmocka_unit_test(test_free_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
