/* test_join.c — the impression/click join and learning explicit negatives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "id.h"
#include "join.h"
#include "learner.h"

#include <stdio.h>
#include <string.h>

static lrn_id_t mk(const char *s)
{
    return (lrn_id_t){id_hash(s, strlen(s)), s, strlen(s)};
}

static void test_click_claims_impression(void **state)
{
    (void)state;
    char err[128];
    join_t *j = join_create(1000, 100, err, sizeof(err));
    assert_non_null(j);
    lrn_id_t u = mk("u1"), i = mk("i1"), i2 = mk("i2");
    lrn_event_t out[8];
    assert_int_equal(join_impression(j, &u, &i, 10000, NULL, 0), 0);
    assert_int_equal(join_impression(j, &u, &i2, 10000, "{\"cat\":1}", 9), 0);
    assert_int_equal(join_pending(j), 2);
    assert_int_equal(join_click(j, &u, &i, 10500), 1); /* inside the window */
    assert_int_equal(join_click(j, &u, &i, 10600), 0); /* nothing left to claim */
    assert_int_equal(join_take(j, out, 8), 0);         /* not due yet */
    join_advance(j, 11000);                            /* i and i2 are due now */
    assert_int_equal(join_take(j, out, 8), 1);
    assert_int_equal(out[0].negative, 1);
    assert_int_equal(out[0].user.len, 2);
    assert_memory_equal(out[0].user.id, "u1", 2);
    assert_memory_equal(out[0].item.id, "i2", 2);
    assert_true(out[0].item.h == i2.h && out[0].user.h == u.h);
    assert_int_equal(out[0].ts_ms, 10000);
    assert_int_equal(out[0].payload_len, 9); /* the impression's bytes come back with it */
    assert_memory_equal(out[0].payload, "{\"cat\":1}", 9);
    assert_int_equal(join_pending(j), 0);
    assert_int_equal(join_clicked_total(j), 1);
    assert_int_equal(join_negative_total(j), 1);
    join_free(j);
}

static void test_click_after_window_does_not_claim(void **state)
{
    (void)state;
    char err[128];
    join_t *j = join_create(1000, 100, err, sizeof(err));
    lrn_id_t u = mk("u"), i = mk("i");
    lrn_event_t out[4];
    join_impression(j, &u, &i, 0, NULL, 0);
    join_advance(j, 1000);
    assert_int_equal(join_take(j, out, 4), 1); /* decided: a negative */
    assert_int_equal(join_click(j, &u, &i, 1200), 0);
    join_free(j);
}

static void test_repeated_impressions_and_bounds(void **state)
{
    (void)state;
    char err[128];
    join_t *j = join_create(1000, 3, err, sizeof(err));
    lrn_id_t u = mk("u"), i = mk("i");
    lrn_event_t out[8];
    for (int k = 0; k < 5; k++)
        assert_int_equal(join_impression(j, &u, &i, 100 + k, NULL, 0), 0);
    assert_int_equal(join_click(j, &u, &i, 200), 1);
    /* over max_pending: the two oldest are decided early, the click claims one */
    size_t n = join_take(j, out, 8);
    assert_int_equal(n, 1);
    assert_int_equal(join_pending(j), 3);
    assert_int_equal(join_clicked_total(j), 1);
    join_advance(j, 5000);
    /* take in small steps: max bounds what one call returns */
    assert_int_equal(join_take(j, out, 2), 2);
    assert_int_equal(join_take(j, out, 2), 1);
    assert_int_equal(join_negative_total(j), 4);
    assert_null(join_create(-1, 3, err, sizeof(err)));
    join_free(j);
    join_free(NULL);
}

/* many pairs: the map grows and deletes without losing a pending count */
static void test_many_pairs(void **state)
{
    (void)state;
    char err[128];
    join_t *j = join_create(10, 1000000, err, sizeof(err));
    static char ub[5000][16], ib[5000][16];
    lrn_event_t out[256];
    uint64_t neg = 0;
    for (int k = 0; k < 5000; k++) {
        snprintf(ub[k], 16, "u%d", k % 97);
        snprintf(ib[k], 16, "i%d", k);
        lrn_id_t u = mk(ub[k]), i = mk(ib[k]);
        assert_int_equal(join_impression(j, &u, &i, k, NULL, 0), 0);
        if (k % 3 == 0)
            assert_int_equal(join_click(j, &u, &i, k), 1);
        size_t n;
        while ((n = join_take(j, out, 256)) > 0)
            neg += n;
    }
    join_advance(j, 1 << 30);
    size_t n;
    while ((n = join_take(j, out, 256)) > 0)
        neg += n;
    assert_int_equal(join_pending(j), 0);
    assert_int_equal(join_clicked_total(j), 1667);
    assert_int_equal(neg, 5000 - 1667);
    join_free(j);
}

/* Explicit negatives are learned pointwise: the pair's score goes down, and
 * they are counted. */
static void test_learner_explicit_negatives(void **state)
{
    (void)state;
    learner_config_t cfg;
    learner_config_default(&cfg);
    cfg.batch_events = 8;
    cfg.preq_rate = 0;
    char err[256];
    learner_t *l = learner_create(&cfg, err, sizeof(err));
    assert_non_null(l);
    static char ub[64][16], ib[64][16];
    lrn_event_t pos[64];
    for (int k = 0; k < 64; k++) {
        snprintf(ub[k], 16, "u%d", k % 8);
        snprintf(ib[k], 16, "i%d", k % 16);
        pos[k] = (lrn_event_t){.user = mk(ub[k]), .item = mk(ib[k]), .ts_ms = k, .weight = 1};
    }
    assert_int_equal(learner_learn(l, pos, 64), 64);
    lrn_id_t u = mk("u0"), bad = mk("i5");
    float before, after;
    learner_score(l, &u, &bad, 1, &before);
    lrn_event_t neg[32];
    for (int k = 0; k < 32; k++)
        neg[k] =
            (lrn_event_t){.user = u, .item = bad, .ts_ms = 100 + k, .weight = 1, .negative = 1};
    assert_int_equal(learner_learn(l, neg, 32), 32);
    learner_score(l, &u, &bad, 1, &after);
    learner_stats_t st;
    learner_stats(l, &st);
    print_message("score of the negative pair: %.3f -> %.3f\n", before, after);
    assert_true(after < before - 0.2f); /* 4 steps of 8 negatives move it by ~0.34 */
    assert_int_equal(st.negatives, 32);
    assert_int_equal(st.events, 96);
    /* explicit negatives never enter the rolling buffer of positives */
    assert_int_equal(st.pairs, 64 * (1 + cfg.negatives) + 32);
    learner_free(l);
}

/* A join whose event time one impression from 2100 moved, as a checkpoint
 * of a daemon without a bound held it: join_limit_time takes event time back
 * to the latest impression within the bound, and the far ones to the bound,
 * so the waiting impressions are decided as they would have been. */
static void test_limit_time_heals(void **state)
{
    (void)state;
    char err[128];
    join_t *j = join_create(1000, 100, err, sizeof(err));
    lrn_id_t u[5], far1 = mk("far1"), far2 = mk("far2");
    char names[5][8];
    for (int k = 0; k < 5; k++) {
        snprintf(names[k], sizeof(names[k]), "u%d", k);
        u[k] = mk(names[k]);
        assert_int_equal(join_impression(j, &u[k], &u[k], 1000 + k, NULL, 0), 0);
    }
    assert_int_equal(join_impression(j, &far2, &far2, 4102444800000LL, NULL, 0), 0);
    assert_int_equal(join_impression(j, &far1, &far1, 4102444700000LL, NULL, 0), 0);
    assert_true(join_time(j) == 4102444800000LL);
    assert_int_equal(join_limit_time(j, 4102444800000LL), 0); /* within: nothing changes */
    assert_int_equal(join_limit_time(j, 5000), 1);
    assert_true(join_time(j) == 1004);
    assert_int_equal(join_limit_time(j, 5000), 0);
    assert_int_equal(join_pending(j), 7);
    lrn_event_t out[8];
    assert_int_equal(join_take(j, out, 8), 0); /* nothing due */
    assert_int_equal(join_click(j, &u[0], &u[0], 1500), 1);
    assert_int_equal(join_click(j, &u[2], &u[2], 1600), 1);
    join_advance(j, 2100);
    assert_int_equal(join_take(j, out, 8), 3); /* u1, u3, u4; u0 and u2 were claimed */
    assert_memory_equal(out[0].user.id, "u1", 2);
    assert_memory_equal(out[1].user.id, "u3", 2);
    assert_memory_equal(out[2].user.id, "u4", 2);
    assert_int_equal(join_clicked_total(j), 2);
    assert_int_equal(join_pending(j), 2);
    join_advance(j, 5999);
    assert_int_equal(join_take(j, out, 8), 0);
    join_advance(j, 6000); /* the far ones, at the bound now, in arrival order */
    assert_int_equal(join_take(j, out, 8), 2);
    assert_memory_equal(out[0].user.id, "far2", 4);
    assert_memory_equal(out[1].user.id, "far1", 4);
    assert_true(out[0].ts_ms == 5000 && out[1].ts_ms == 5000);
    join_free(j);

    /* nothing within the bound: no event time until the next event */
    j = join_create(1000, 100, err, sizeof(err));
    assert_int_equal(join_impression(j, &far1, &far1, 4102444800000LL, NULL, 0), 0);
    assert_int_equal(join_limit_time(j, 5000), 1);
    assert_true(join_time(j) == INT64_MIN);
    assert_int_equal(join_take(j, out, 8), 0);
    assert_int_equal(join_impression(j, &u[0], &u[0], 100, NULL, 0), 0);
    assert_true(join_time(j) == 100);
    join_advance(j, 1100);
    assert_int_equal(join_take(j, out, 8), 1);
    assert_memory_equal(out[0].user.id, "u0", 2);
    assert_int_equal(join_pending(j), 1);
    join_free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_click_claims_impression),
        cmocka_unit_test(test_click_after_window_does_not_claim),
        cmocka_unit_test(test_repeated_impressions_and_bounds),
        cmocka_unit_test(test_many_pairs),
        cmocka_unit_test(test_learner_explicit_negatives),
        cmocka_unit_test(test_limit_time_heals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
