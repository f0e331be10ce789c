/* test_eval.c — the prequential streaming evaluation (cli/eval.c,
 * cli/evalarms.c) on small made-up and generated streams, in seconds: the
 * full-catalogue rank (ties against the item, the user's earlier items left
 * out), the paired bootstrap (its interval holds the mean and narrows with
 * more events), popularity on a stream one item dominates, and the
 * prequential property (an event is scored before anything learns it: with
 * one publish instant the online arm scores like a model that never
 * learned; every item's first event cannot be ranked); the drift figures
 * (recovery after a shift, the new-item curve by clicks); hmf's transition
 * map learns a planted shift from the first users back, and the retrained
 * arms learn without it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dataset.h"
#include "eval.h"
#include "rng.h"
#include "sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_rank(void **state)
{
    (void)state;
    static const struct {
        float s[6];
        int n, t;
        unsigned char excl[6];
        size_t rank;
    } cases[] = {
        {{5, 9, 9, 1}, 4, 0, {0}, 3},          /* two above */
        {{5, 9, 9, 1}, 4, 0, {0, 1, 0, 0}, 2}, /* one of them the user's earlier item */
        {{5, 9, 9, 1}, 4, 0, {0, 1, 1, 0}, 1}, /* both */
        {{5, 5, 5, 5}, 4, 2, {0}, 4},          /* ties count against the item */
        {{5, 5, 5, 5}, 4, 2, {1, 0, 1, 1}, 2}, /* excl[t] itself does not matter */
        {{1, 2, 3, 4, 5, 6}, 6, 5, {0}, 1},    /* the best */
        {{0, 0, 0}, 3, 1, {0}, 3},             /* a model that knows nothing: last */
        {{1, 2, NAN}, 3, 2, {0}, 3},           /* NaN at the item: last */
        {{NAN, 2, 1}, 3, 2, {0}, 2},           /* NaN elsewhere is not above it */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t r = eval_rank(cases[i].s, (size_t)cases[i].n, (size_t)cases[i].t, cases[i].excl);
        if (r != cases[i].rank)
            fail_msg("case %zu: rank %zu, want %zu", i, r, cases[i].rank);
    }
}

/* n per-event differences of two hit rates, 0.30 and 0.20 */
static void diffs(float *d, size_t n, uint64_t seed)
{
    rng_t g;
    rng_seed(&g, seed);
    for (size_t i = 0; i < n; i++)
        d[i] = (float)(rng_double(&g) < 0.3) - (float)(rng_double(&g) < 0.2);
}

static void test_bootstrap(void **state)
{
    (void)state;
    static float small[200], big[20000];
    diffs(small, 200, 3);
    diffs(big, 20000, 4);
    double m1, lo1, hi1, m2, lo2, hi2, m3, lo3, hi3;
    eval_bootstrap(small, 200, 1000, 1, &m1, &lo1, &hi1);
    eval_bootstrap(big, 20000, 1000, 1, &m2, &lo2, &hi2);
    assert_true(lo1 <= m1 && m1 <= hi1 && lo1 < hi1);
    assert_true(lo2 <= m2 && m2 <= hi2 && lo2 < hi2);
    /* 100 times the events: about a tenth of the width */
    assert_true((hi2 - lo2) < (hi1 - lo1) / 5);
    assert_true(lo2 > 0.05 && hi2 < 0.15); /* the true difference, 0.1, well inside */
    eval_bootstrap(small, 200, 1000, 1, &m3, &lo3, &hi3);
    assert_true(m3 == m1 && lo3 == lo1 && hi3 == hi1); /* a fixed seed: the same interval */
    eval_bootstrap(small, 0, 1000, 1, &m3, &lo3, &hi3);
    assert_true(m3 == 0 && lo3 == 0 && hi3 == 0);
}

static void add(dataset_t *d, const char *u, const char *i, int64_t ts_s)
{
    assert_int_equal(dataset_add(d, u, strlen(u), i, strlen(i), ts_s * 1000), 0);
}

static eval_config_t cheap_config(unsigned arms)
{
    eval_config_t c;
    eval_config_default(&c);
    snprintf(c.lcfg.kind, sizeof(c.lcfg.kind), "mf");
    c.arms = arms;
    c.resamples = 0;
    return c;
}

/* Item A first, then each new item once between two clicks on A: popularity
 * ranks A first at every event of A but its first (which nothing can rank). */
static void test_popularity_dominant(void **state)
{
    (void)state;
    dataset_t d;
    dataset_init(&d);
    char u[32], i[32];
    int64_t ts = 1000000;
    int a = 0;
    for (; a < 3; a++) {
        snprintf(u, sizeof(u), "u%d", a);
        add(&d, u, "A", ts++);
    }
    for (int k = 0; k < 30; k++) {
        snprintf(u, sizeof(u), "v%d", k), snprintf(i, sizeof(i), "n%d", k), add(&d, u, i, ts++);
        for (int r = 0; r < 2; r++, a++)
            snprintf(u, sizeof(u), "u%d", a), add(&d, u, "A", ts++);
    }
    dataset_sort_by_time(&d);
    eval_config_t c = cheap_config(1u << ARM_POP);
    eval_result_t r;
    char err[256];
    assert_int_equal(eval_run(&d, &c, &r, err, sizeof(err)), 0);
    const eval_arm_result_t *p = &r.arm[r.index[ARM_POP]];
    assert_int_equal(r.unrankable, 31); /* A's first event and each noise item's */
    assert_int_equal(r.scored, (size_t)a - 1);
    assert_int_equal(p->all.n, r.scored);
    assert_true(p->all.recall20 == (double)r.scored); /* recall@20 is 1 */
    assert_true(p->all.mrr == (double)r.scored);      /* rank 1 each time */
    eval_result_free(&r);
    dataset_free(&d);
}

/* Popular items P0..P24 that user U clicked before T: left out of U's
 * ranking at T, so T, clicked once before, ranks first by popularity. */
static void test_excludes_earlier_items(void **state)
{
    (void)state;
    dataset_t d;
    dataset_init(&d);
    char u[32], i[32];
    int64_t ts = 1000000;
    add(&d, "w", "T", ts++);
    for (int f = 0; f < 30; f++)
        for (int k = 0; k < 25; k++)
            snprintf(u, sizeof(u), "f%d", f), snprintf(i, sizeof(i), "P%d", k), add(&d, u, i, ts++);
    for (int k = 0; k < 25; k++)
        snprintf(i, sizeof(i), "P%d", k), add(&d, "U", i, ts++);
    add(&d, "U", "T", ts++);
    dataset_sort_by_time(&d);
    eval_config_t c = cheap_config(1u << ARM_POP);
    eval_result_t r;
    char err[256];
    assert_int_equal(eval_run(&d, &c, &r, err, sizeof(err)), 0);
    const eval_arm_result_t *p = &r.arm[r.index[ARM_POP]];
    assert_true(p->hit20[r.scored - 1] == 1.0f); /* would be rank 26 among all 26 items */
    eval_result_free(&r);
    dataset_free(&d);
}

static void generated(dataset_t *d)
{
    gen_config_t g;
    gen_config_default(&g);
    g.users = 200, g.items = 300, g.events = 20000, g.seed = 5;
    char err[256];
    dataset_init(d);
    assert_int_equal(dataset_generate(d, &g, err, sizeof(err)), 0);
    dataset_sort_by_time(d);
}

/* With one publish instant, before the first event, nothing is learned
 * before it is scored: the online arm ranks exactly as a model that never
 * learned (never-retrained with no warm-up reached). With the daemon's
 * interval it learns, and beats that model by far. */
static void test_prequential(void **state)
{
    (void)state;
    dataset_t d;
    generated(&d);
    eval_config_t c = cheap_config(1u << ARM_ONLINE | 1u << ARM_NEVER | 1u << ARM_POP);
    c.warmup = 1.0; /* never reached at a publish instant: never trained */
    c.publish_ms = 1000000000000000LL;
    eval_result_t r;
    char err[256];
    assert_int_equal(eval_run(&d, &c, &r, err, sizeof(err)), 0);
    const eval_arm_result_t *on = &r.arm[r.index[ARM_ONLINE]], *nv = &r.arm[r.index[ARM_NEVER]];
    assert_int_equal(r.unrankable, r.items); /* each item's first event */
    assert_int_equal(on->all.n, r.scored);
    assert_int_equal(nv->all.n, r.scored);
    assert_true(on->all.recall20 == nv->all.recall20);
    assert_true(on->all.mrr == nv->all.mrr);
    assert_true(on->all.hr10 == nv->all.hr10);
    double frozen = on->all.recall20 / (double)r.scored;
    eval_result_free(&r);

    c.publish_ms = 50;
    assert_int_equal(eval_run(&d, &c, &r, err, sizeof(err)), 0);
    on = &r.arm[r.index[ARM_ONLINE]];
    double learned = on->all.recall20 / (double)r.scored;
    if (!(learned > frozen + 0.05))
        fail_msg("online recall@20 %.4f, frozen %.4f", learned, frozen);
    eval_result_free(&r);
    dataset_free(&d);
}

/* A retrain arm that trains (every 30 min of an 11 h stream) scores better
 * than its own first half hour without a model, and popularity and kNN run
 * beside it on the same events. */
static void test_arms_same_events(void **state)
{
    (void)state;
    dataset_t d;
    generated(&d);
    eval_config_t c = cheap_config((1u << ARM_COUNT) - 1);
    c.retrain_hours = 0.5;
    c.retrain_epochs = 2;
    c.eval_rate = 0.3;
    eval_result_t r;
    char err[256];
    assert_int_equal(eval_run(&d, &c, &r, err, sizeof(err)), 0);
    assert_int_equal(r.narms, ARM_COUNT);
    assert_true(r.scored > 3000 && r.scored < 9000);
    for (int i = 0; i < r.narms; i++)
        assert_int_equal(r.arm[i].all.n, r.scored);
    const eval_arm_result_t *rt = &r.arm[r.index[ARM_RETRAIN]];
    assert_non_null(strstr(rt->note, "trainings"));
    assert_true(rt->all.recall20 / (double)r.scored > 0.05);
    eval_result_free(&r);
    dataset_free(&d);
}

/* Retraining from scratch only pays with enough new events: every 30 min
 * of an 11 h stream of steady rate, at least 10% more events than the last
 * training is met early on and not late (when half an hour adds under 5%),
 * so later retrains are skipped, and counted. */
static void test_retrain_skips(void **state)
{
    (void)state;
    dataset_t d;
    generated(&d);
    eval_config_t c = cheap_config(1u << ARM_RETRAIN);
    c.retrain_hours = 0.5;
    c.retrain_epochs = 1;
    c.eval_rate = 0.05;
    int made[2], skipped[2];
    for (int k = 0; k < 2; k++) {
        c.retrain_growth = k ? 0.1 : 0.0;
        eval_result_t r;
        char err[256];
        assert_int_equal(eval_run(&d, &c, &r, err, sizeof(err)), 0);
        const char *note = r.arm[r.index[ARM_RETRAIN]].note;
        if (sscanf(note,
                   "%d trainings of %*d shuffled epochs every %*g h of stream time, %d skipped",
                   &made[k], &skipped[k]) != 2)
            fail_msg("note '%s'", note);
        eval_result_free(&r);
    }
    assert_int_equal(skipped[0], 0);
    assert_true(made[0] >= 20);
    assert_true(skipped[1] > 5 && made[1] + skipped[1] == made[0]);
    dataset_free(&d);
}

/* The drift figures on made-up results: recovery is the first window of W
 * scored events after the drift with frac of the level before; never, or
 * no drift, is -1. The new-item curve buckets by clicks, the last bucket
 * holding the rest, and the other items' events after the drift apart. */
static void test_drift_figures(void **state)
{
    (void)state;
    enum { N = 1000, W = 50 };
    static float h10[N], h20[N];
    static size_t ev[N];
    static uint32_t clicks[N];
    static unsigned char late[N];
    eval_result_t r;
    memset(&r, 0, sizeof(r));
    r.scored = N;
    r.narms = 1;
    r.arm[0].hit10 = h10;
    r.arm[0].hit20 = h20;
    r.ev_of = ev, r.clicks = clicks, r.late = late;
    for (size_t j = 0; j < N; j++) {
        ev[j] = 2 * j + 1; /* every other event scored: the drift at event 1000 is scored 500 */
        /* before: 0.8 (4 of 5); after: nothing for 100 scored events, then 0.8 again */
        h10[j] = (j < 500 || j >= 600) && j % 5 != 0 ? 1.0f : 0.0f;
        h20[j] = 0.0f;
    }
    double level;
    long need = eval_recovery(&r, 0, 1000, W, 0.9, &level);
    assert_float_equal(level, 0.8, 1e-9);
    /* the first window [j - W + 1, j] with mean ≥ 0.72: 36 of its 50 hits
     * from 600 on, 4 in 5 of them: j = 600 + 45 - 1 (36 hits in 45) */
    size_t j = 500;
    for (double win = 0;; j++) {
        win += h10[j];
        if (j >= 500 + W)
            win -= h10[j - W];
        if (j + 1 >= 500 + W && win / W >= 0.72)
            break;
    }
    assert_int_equal(need, (long)(ev[j] + 1 - 1000));
    assert_true(j >= 600 + 40 && j <= 600 + 50);
    assert_int_equal(eval_recovery(&r, 0, 1000, W, 1.01, &level), -1);  /* never */
    assert_int_equal(eval_recovery(&r, 0, 0, W, 0.9, &level), -1);      /* no drift */
    assert_int_equal(eval_recovery(&r, 0, 1000, 600, 0.9, &level), -1); /* too few before */

    /* after event 1000: new items with j % 12 clicks, hit when clicks ≥ 5; others hit half */
    for (size_t k = 500; k < N; k++) {
        late[k] = k % 2;
        clicks[k] = (uint32_t)(k % 12);
        h20[k] = late[k] ? (clicks[k] >= 5 ? 1.0f : 0.0f) : (k % 4 == 0 ? 1.0f : 0.0f);
    }
    double rec[11], est;
    size_t n[11], nest;
    eval_newitem_curve(&r, 0, 1000, 10, rec, n, &est, &nest);
    size_t total = 0;
    for (int c = 0; c <= 10; c++) {
        total += n[c];
        if (n[c])
            assert_float_equal(rec[c], c >= 5 ? 1.0 : 0.0, 1e-9);
    }
    assert_int_equal(total, 250);
    assert_int_equal(n[0], 0); /* odd k: odd clicks only below 10 */
    assert_true(n[10] > 0);    /* 11 clicks land in the last bucket */
    assert_int_equal(nest, 250);
    assert_float_equal(est, 0.5, 1e-9);

    /* users back: none for 100 scored events after the drift, then all */
    static unsigned char back[N];
    r.back = back;
    for (size_t j = 0; j < N; j++)
        back[j] = j >= 600;
    /* the first window of W with 45 of its 50 back: j = 600 + 45 - 1 */
    assert_int_equal(eval_users_back(&r, 1000, W, 0.9), (long)(ev[644] + 1 - 1000));
    assert_int_equal(eval_users_back(&r, 0, W, 0.9), -1); /* no drift */
    memset(back + 600, 0, N - 600);
    assert_int_equal(eval_users_back(&r, 1000, W, 0.9), -1); /* nobody back */
}

/* On a generated stream with a planted shift, an event's user is back when
 * that user had an event at or after the shift before it (recounted here
 * from the stream), and the figure is the first window of 90% back. */
static void test_users_back(void **state)
{
    (void)state;
    dataset_t d;
    gen_config_t g;
    gen_config_default(&g);
    g.users = 200, g.items = 300, g.events = 20000, g.seed = 5, g.shift_at = 0.5;
    char err[256];
    dataset_init(&d);
    assert_int_equal(dataset_generate(&d, &g, err, sizeof(err)), 0);
    dataset_sort_by_time(&d);
    assert_non_null(d.plan);
    eval_config_t c = cheap_config(1u << ARM_POP);
    c.drift_at = (size_t)d.plan->shift_event;
    c.eval_rate = 0.5;
    eval_result_t r;
    assert_int_equal(eval_run(&d, &c, &r, err, sizeof(err)), 0);
    unsigned char *seen = calloc(d.nusers + 1, 1);
    assert_non_null(seen);
    size_t nback = 0, j = 0;
    for (size_t k = 0; k < d.n && j < r.scored; k++) {
        if (r.ev_of[j] == k) {
            assert_int_equal(r.back[j], k >= c.drift_at ? seen[d.ev[k].user] : 0);
            nback += r.back[j++];
        }
        if (k >= c.drift_at)
            seen[d.ev[k].user] = 1;
    }
    assert_int_equal(j, r.scored);
    assert_true(nback > r.scored / 4); /* most of the second half */
    long back = eval_users_back(&r, c.drift_at, 200, 0.9);
    /* 200 users, each about one event in 200: 90% of them back takes
     * some hundreds of events, and the window of 200 scored (400 events) */
    assert_true(back > 400 && back < 4000);
    free(seen);
    eval_result_free(&r);
    dataset_free(&d);
}

/* A planted shift moves every user's taste to the next topic at once. The
 * online hmf with its transition map (hmf.c) learns the move from the first
 * users back and carries it to the others: it regains 90% of its HR@10 in
 * fewer events than 90% of the events take to come from users back since
 * the shift, which no learner of each user's own taste can do (until a user
 * is back, their own rows know nothing of it), and faster than without the
 * map. Measured (400 users, 600 items, 40,000 events, dim 32): 1,075 events
 * with the map, 1,511 without, users back 1,414. */
static void test_transition_learns_a_shift(void **state)
{
    (void)state;
    dataset_t d;
    gen_config_t g;
    gen_config_default(&g);
    g.users = 400, g.items = 600, g.events = 40000, g.shift_at = 0.5;
    char err[256];
    dataset_init(&d);
    assert_int_equal(dataset_generate(&d, &g, err, sizeof(err)), 0);
    dataset_sort_by_time(&d);
    assert_non_null(d.plan);
    long rec[2], back = -1;
    for (int t = 0; t < 2; t++) {
        /* with the map, never-retrained too: retrained arms go without it */
        eval_config_t c = cheap_config(1u << ARM_ONLINE | (t ? 1u << ARM_NEVER : 0u));
        snprintf(c.lcfg.kind, sizeof(c.lcfg.kind), "hmf");
        c.lcfg.model.dim = 32;
        c.lcfg.loss = LOSS_SOFTMAX;
        c.lcfg.sampler.kind = SAMP_POPULARITY;
        c.lcfg.negatives = 16;
        c.lcfg.lr_sparse = 0.1f;
        c.lcfg.transition_lr = t ? 0.003f : 0.0f;
        c.drift_at = (size_t)d.plan->shift_event;
        eval_result_t r;
        assert_int_equal(eval_run(&d, &c, &r, err, sizeof(err)), 0);
        size_t W = r.scored / 50 < 200 ? 200 : r.scored / 50 > 2000 ? 2000 : r.scored / 50;
        double level;
        rec[t] = eval_recovery(&r, r.index[ARM_ONLINE], c.drift_at, W, 0.9, &level);
        back = eval_users_back(&r, c.drift_at, W, 0.9);
        print_message("transition_lr %g: recovered in %ld events (level %.3f); users back %ld\n",
                      (double)c.lcfg.transition_lr, rec[t], level, back);
        assert_true(level > 0.7);
        if (t) {
            const char *note = r.arm[r.index[ARM_NEVER]].note;
            print_message("never-retrained: %s\n", note);
            assert_non_null(strstr(note, "no transition map"));
        }
        eval_result_free(&r);
    }
    assert_true(rec[0] > 0 && rec[1] > 0 && back > 0);
    assert_true(rec[1] < back);
    assert_true(rec[1] < 0.8 * rec[0]);
    dataset_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank),
        cmocka_unit_test(test_bootstrap),
        cmocka_unit_test(test_popularity_dominant),
        cmocka_unit_test(test_excludes_earlier_items),
        cmocka_unit_test(test_prequential),
        cmocka_unit_test(test_arms_same_events),
        cmocka_unit_test(test_retrain_skips),
        cmocka_unit_test(test_drift_figures),
        cmocka_unit_test(test_users_back),
        cmocka_unit_test(test_transition_learns_a_shift),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
