/* test_pool.c — the learner's thread team (learner/pool.c): every chunk of
 * every phase runs exactly once, pool_run returns only when all have
 * finished (their writes visible), phases after the helpers went to sleep
 * still run, more threads than cores still finish (the caller takes what
 * helpers do not), and a one-thread pool runs the phase in the caller. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pool.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 4096

typedef struct {
    int phase;
    int data[N];
    int calls[64];
    int seen_n;
} job_t;

/* chunk t adds phase+1 to its slice; all slices cover data once */
static void work(void *arg, int t, int n)
{
    job_t *j = arg;
    int a = N * t / n, b = N * (t + 1) / n;
    for (int k = a; k < b; k++)
        j->data[k] += j->phase + 1;
    j->calls[t]++;
    j->seen_n = n;
}

static void run_many(int threads, int phases, int nap_every)
{
    pool_t *p = pool_create(threads);
    assert_non_null(p);
    assert_int_equal(pool_size(p), threads);
    job_t *j = calloc(1, sizeof(*j));
    assert_non_null(j);
    long want = 0;
    for (int ph = 0; ph < phases; ph++) {
        j->phase = ph;
        pool_run(p, work, j);
        want += ph + 1;
        /* every write of the phase is visible when pool_run returns */
        for (int k = 0; k < N; k += 97)
            if (j->data[k] != want)
                fail_msg("phase %d: data[%d] = %d, want %ld", ph, k, j->data[k], want);
        if (nap_every && ph % nap_every == 0)
            usleep(20000); /* long enough for the helpers to go to sleep */
    }
    for (int t = 0; t < threads; t++)
        assert_int_equal(j->calls[t], phases);
    assert_int_equal(j->seen_n, threads);
    free(j);
    pool_free(p);
}

static void test_many_short_phases(void **state)
{
    (void)state;
    run_many(2, 20000, 0);
    run_many(3, 500, 0); /* more threads than cores: spinning takes turns */
}

static void test_phases_after_sleep(void **state)
{
    (void)state;
    run_many(2, 40, 3);
    run_many(4, 20, 2);
}

static void test_one_thread_and_bad_sizes(void **state)
{
    (void)state;
    run_many(1, 100, 0);
    assert_null(pool_create(0));
    assert_null(pool_create(65));
    pool_free(NULL);
    assert_int_equal(pool_size(NULL), 1);
    job_t *j = calloc(1, sizeof(*j));
    pool_run(NULL, work, j); /* no pool: the caller alone */
    assert_int_equal(j->calls[0], 1);
    assert_int_equal(j->data[N - 1], 1);
    free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_short_phases),
        cmocka_unit_test(test_phases_after_sleep),
        cmocka_unit_test(test_one_thread_and_bad_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
