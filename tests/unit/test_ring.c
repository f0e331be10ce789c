/* test_ring.c — unit tests of the rolling buffer (learner/ring.c): push, size,
 * eviction order, per-item and per-user counts and the (user, item) pair set
 * checked against a brute-force recount, and the count listener.
 * Not for: the samplers that read the buffer (test_sampler). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "rng.h"

static ring_t *make_ring(size_t cap)
{
    char err[256] = "";
    ring_t *r = ring_create(cap, err, sizeof(err));
    assert_non_null(r);
    return r;
}

static void test_create_and_free(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(ring_create(0, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    ring_free(NULL);
    ring_t *r = make_ring(5);
    assert_int_equal(ring_size(r), 0);
    assert_int_equal(ring_capacity(r), 5);
    assert_int_equal(ring_item_count(r, 0), 0);
    assert_int_equal(ring_user_count(r, 123456), 0);
    assert_false(ring_has_pair(r, 0, 0));
    ring_free(r);
}

static void test_push_and_evict_oldest_first(void **state)
{
    (void)state;
    static const size_t caps[] = {1, 2, 3, 7, 64};
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        size_t cap = caps[c];
        ring_t *r = make_ring(cap);
        for (uint32_t i = 0; i < 3 * cap + 2; i++) {
            assert_int_equal(ring_push(r, i + 100, i + 1000, (int64_t)i * 10), 0);
            size_t want = i + 1 < cap ? i + 1 : cap;
            assert_int_equal(ring_size(r), want);
            assert_int_equal(ring_capacity(r), cap);
            /* held: the last `want` pushes, oldest first */
            for (size_t k = 0; k < want; k++) {
                uint32_t u, it;
                int64_t ts;
                ring_get(r, k, &u, &it, &ts);
                uint32_t pushed = i + 1 - (uint32_t)want + (uint32_t)k;
                assert_int_equal(u, pushed + 100);
                assert_int_equal(it, pushed + 1000);
                assert_int_equal(ts, (int64_t)pushed * 10);
            }
            /* evicted ones are gone from every index */
            if (i + 1 > cap) {
                uint32_t gone = i - (uint32_t)cap;
                assert_int_equal(ring_item_count(r, gone + 1000), 0);
                assert_int_equal(ring_user_count(r, gone + 100), 0);
                assert_false(ring_has_pair(r, gone + 100, gone + 1000));
            }
            assert_int_equal(ring_item_count(r, i + 1000), 1);
            assert_true(ring_has_pair(r, i + 100, i + 1000));
        }
        ring_free(r);
    }
}

static void test_get_null_outputs(void **state)
{
    (void)state;
    ring_t *r = make_ring(4);
    ring_push(r, 1, 2, 3);
    uint32_t it = 0;
    ring_get(r, 0, NULL, &it, NULL);
    assert_int_equal(it, 2);
    ring_free(r);
}

/* ---- counts against a brute-force recount ----------------------------- */

enum { NU = 40, NI = 60 };

typedef struct {
    uint32_t count[NI + 5000]; /* last count the listener reported per item */
    uint64_t calls;
    const ring_t *ring;
    int mismatch; /* listener saw a count that differs from the ring's own */
} listen_t;

static void on_count(void *arg, uint32_t item, uint32_t count)
{
    listen_t *l = arg;
    l->count[item] = count;
    l->calls++;
    if (ring_item_count(l->ring, item) != count)
        l->mismatch++;
}

static void check_recount(const ring_t *r, const listen_t *l)
{
    uint32_t ic[NI] = {0}, uc[NU] = {0};
    uint8_t pair[NU][NI];
    memset(pair, 0, sizeof(pair));
    for (size_t k = 0; k < ring_size(r); k++) {
        uint32_t u, it;
        ring_get(r, k, &u, &it, NULL);
        assert_true(u < NU && it < NI);
        ic[it]++;
        uc[u]++;
        pair[u][it] = 1;
    }
    for (uint32_t i = 0; i < NI; i++) {
        assert_int_equal(ring_item_count(r, i), ic[i]);
        if (l)
            assert_int_equal(l->count[i], ic[i]);
    }
    for (uint32_t u = 0; u < NU; u++) {
        assert_int_equal(ring_user_count(r, u), uc[u]);
        for (uint32_t i = 0; i < NI; i++)
            assert_int_equal(ring_has_pair(r, u, i), pair[u][i]);
    }
}

static void test_counts_match_recount(void **state)
{
    (void)state;
    static const size_t caps[] = {1, 13, 100, 1000};
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        ring_t *r = make_ring(caps[c]);
        rng_t g;
        rng_seed(&g, 100 + c);
        for (int n = 1; n <= 6000; n++) {
            /* skewed users and items so that pairs repeat inside the window */
            uint32_t u = rng_below(&g, rng_below(&g, 2) ? NU : 4);
            uint32_t it = rng_below(&g, rng_below(&g, 2) ? NI : 6);
            assert_int_equal(ring_push(r, u, it, n), 0);
            if (n % 97 == 0 || n < 50)
                check_recount(r, NULL);
        }
        check_recount(r, NULL);
        ring_free(r);
    }
}

static void test_listener(void **state)
{
    (void)state;
    enum { CAP = 50 };
    ring_t *r = make_ring(CAP);
    listen_t *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    l->ring = r;
    ring_set_listener(r, on_count, l);
    rng_t g;
    rng_seed(&g, 5);
    for (uint64_t n = 1; n <= 3000; n++) {
        uint64_t before = l->calls;
        assert_int_equal(ring_push(r, rng_below(&g, NU), rng_below(&g, NI), (int64_t)n), 0);
        /* one call for the new event, one more for an evicted one */
        assert_int_equal(l->calls - before, n > CAP ? 2 : 1);
        if (n % 7 == 0)
            check_recount(r, l);
    }
    assert_int_equal(l->mismatch, 0);
    check_recount(r, l);

    /* a pushed-and-evicted item is reported back at zero */
    ring_t *r1 = make_ring(1);
    memset(l, 0, sizeof(*l));
    l->ring = r1;
    ring_set_listener(r1, on_count, l);
    ring_push(r1, 0, 4000, 0);
    assert_int_equal(l->count[4000], 1);
    ring_push(r1, 0, 4001, 1);
    assert_int_equal(l->count[4000], 0);
    assert_int_equal(l->count[4001], 1);
    assert_int_equal(l->calls, 3);
    /* removing the listener stops the calls */
    ring_set_listener(r1, NULL, NULL);
    ring_push(r1, 0, 4002, 2);
    assert_int_equal(l->calls, 3);
    assert_int_equal(ring_item_count(r1, 4002), 1);
    free(l);
    ring_free(r1);
    ring_free(r);
}

/* Large, sparse ids make the count arrays grow; nothing is lost when they do. */
static void test_large_ids(void **state)
{
    (void)state;
    ring_t *r = make_ring(8);
    static const uint32_t ids[] = {0, 255, 256, 1000, 70000, 3, 1u << 20, 999999};
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(ring_push(r, ids[i], ids[(i + 3) % 8], (int64_t)i), 0);
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(ring_user_count(r, ids[i]), 1);
        assert_int_equal(ring_item_count(r, ids[i]), 1);
        assert_true(ring_has_pair(r, ids[i], ids[(i + 3) % 8]));
        /* (user, item) is ordered: the reverse pair was never pushed */
        assert_false(ring_has_pair(r, ids[(i + 3) % 8], ids[i]));
    }
    assert_false(ring_has_pair(r, 999999, 999999));
    assert_false(ring_has_pair(r, 5, 0));
    ring_free(r);
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_free),
        cmocka_unit_test(test_push_and_evict_oldest_first),
        cmocka_unit_test(test_get_null_outputs),
        cmocka_unit_test(test_counts_match_recount),
        cmocka_unit_test(test_listener),
        cmocka_unit_test(test_large_ids),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
