/* test_sampler.c — unit tests of the negative samplers (learner/sampler.c).
 * The distributions are checked with Pearson's chi-square goodness-of-fit test
 * at p = 0.001 on fixed seeds: uniform over admitted items, popularity ∝
 * count^α (also after the buffer evicts), in-batch ∝ share of the batch (with
 * q the item's frequency in the buffer, not that share). It
 * also checks that no sampler returns a positive of the user, that the hard
 * sampler keeps a band of what its scorer saw (past the top, a quarter by
 * score, the rest at random below), and that every q is in (0, 1].
 * Not for: the learner's use of q (test_learner). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "id.h"
#include "ring.h"
#include "rng.h"
#include "sampler.h"
#include "table.h"

/* ---- statistics ------------------------------------------------------- */

/* Upper 0.001 quantile of chi-square with df degrees of freedom, by the
 * Wilson–Hilferty approximation (z = Φ⁻¹(0.999) = 3.0902). For df = 49 it
 * gives 85.43 against the exact 85.35; at small df it errs a little high
 * (df = 3: 16.55 against 16.27; df = 2: 14.13 against 13.82). */
static double chi2_crit_001(int df)
{
    const double z = 3.090232306167813;
    double h = 2.0 / (9.0 * df);
    double c = 1.0 - h + z * sqrt(h);
    return df * c * c * c;
}

/* Pearson's statistic of counts obs[0..n) against probabilities p (Σ p = 1).
 * A category with p = 0 must have no count, and adds no degree of freedom. */
static double chi2_stat(const uint64_t *obs, const double *p, int n, int *df)
{
    uint64_t total = 0;
    for (int i = 0; i < n; i++)
        total += obs[i];
    double x = 0.0;
    int cats = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] <= 0.0) {
            assert_int_equal(obs[i], 0);
            continue;
        }
        double e = p[i] * (double)total;
        x += (obs[i] - e) * (obs[i] - e) / e;
        cats++;
    }
    *df = cats - 1;
    return x;
}

/* Asserts the counts fit p; returns the statistic for the record. */
static double assert_fits(const uint64_t *obs, const double *p, int n)
{
    int df;
    double x = chi2_stat(obs, p, n, &df);
    double crit = chi2_crit_001(df);
    if (!(x < crit))
        print_message("chi-square %.1f ≥ %.1f (df %d)\n", x, crit, df);
    assert_true(df >= 1);
    assert_true(x < crit);
    return x;
}

/* Asserts the counts do NOT fit p: the test has the power to tell. */
static void assert_misfits(const uint64_t *obs, const double *p, int n)
{
    int df;
    double x = chi2_stat(obs, p, n, &df);
    assert_true(x > 10 * chi2_crit_001(df));
}

static void normalise(double *p, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += p[i];
    for (int i = 0; i < n; i++)
        p[i] /= s;
}

static void assert_q_ok(float q)
{
    assert_true(q > 0.0f);
    assert_true(q <= 1.0f);
}

static void assert_rel_close(double got, double want, double rel)
{
    if (!(fabs(got - want) <= rel * fabs(want)))
        print_message("got %.9g, want %.9g\n", got, want);
    assert_true(fabs(got - want) <= rel * fabs(want));
}

/* ---- fixtures --------------------------------------------------------- */

/* A table of n items "item-<i>", each touched `touches` times at ts, so that
 * item i is entry i (a fresh table hands out entries in order). */
static emb_table_t *make_items(int n, uint32_t admit_after, int64_t expire_ms, int touches)
{
    emb_config_t c = {.width = 4,
                      .state = 0,
                      .admit_after = admit_after,
                      .expire_ms = expire_ms,
                      .init_std = 0.1f,
                      .seed = 3};
    char err[256] = "";
    emb_table_t *t = emb_create(&c, err, sizeof(err));
    assert_non_null(t);
    for (int i = 0; i < n; i++) {
        char b[32];
        int len = snprintf(b, sizeof(b), "item-%d", i);
        for (int k = 0; k < touches; k++)
            assert_int_equal(emb_touch(t, id_hash(b, (size_t)len), b, (size_t)len, 0), (uint32_t)i);
    }
    return t;
}

static ring_t *make_ring(size_t cap)
{
    char err[256] = "";
    ring_t *r = ring_create(cap, err, sizeof(err));
    assert_non_null(r);
    return r;
}

static sampler_t *make_sampler(samp_kind_t kind, float alpha, const emb_table_t *items,
                               ring_t *ring)
{
    samp_config_t c;
    samp_config_default(&c);
    c.kind = kind;
    c.alpha = alpha;
    c.pool = 32; /* the hard tests' HPOOL, whatever the default */
    char err[256] = "";
    sampler_t *s = samp_create(&c, items, ring, err, sizeof(err));
    assert_non_null(s);
    return s;
}

static void shuffle(uint32_t *a, size_t n, rng_t *g)
{
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = rng_below(g, (uint32_t)(i + 1));
        uint32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* Pushes item i want[i] times, in a shuffled order, by users 1000.. (never
 * the users the tests draw for). */
static void push_counts(ring_t *r, const uint32_t *want, int n, rng_t *g)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += want[i];
    uint32_t *seq = malloc(sizeof(uint32_t) * total);
    assert_non_null(seq);
    size_t k = 0;
    for (int i = 0; i < n; i++)
        for (uint32_t c = 0; c < want[i]; c++)
            seq[k++] = (uint32_t)i;
    shuffle(seq, total, g);
    for (size_t j = 0; j < total; j++)
        assert_int_equal(ring_push(r, 1000 + (uint32_t)(j % 37), seq[j], (int64_t)j), 0);
    free(seq);
}

/* Draws `draws` negatives for user in batches of 4, tallying them in obs[0..n)
 * (an item ≥ n fails) and checking each q against samp_prob. */
static void tally(sampler_t *s, rng_t *g, uint32_t user, int draws, uint64_t *obs, int n)
{
    uint32_t it[4];
    float q[4];
    for (int d = 0; d < draws; d += 4) {
        int got = samp_draw(s, g, user, it, q, 4);
        assert_int_equal(got, 4);
        for (int i = 0; i < got; i++) {
            assert_true(it[i] < (uint32_t)n);
            assert_q_ok(q[i]);
            assert_true(q[i] == samp_prob(s, it[i]));
            obs[it[i]]++;
        }
    }
}

/* The same through samp_draw_batch: B users (none with positives) per call. */
static void tally_batch(sampler_t *s, rng_t *g, int draws, uint64_t *obs, int n)
{
    enum { B = 50, K = 4 };
    uint32_t users[B], it[B * K];
    float q[B * K];
    int found[B];
    for (int b = 0; b < B; b++)
        users[b] = (uint32_t)b; /* the tests' buffers hold users ≥ 1000 only */
    for (int d = 0; d < draws; d += B * K) {
        samp_draw_batch(s, g, users, B, K, it, q, found);
        for (int b = 0; b < B; b++) {
            assert_int_equal(found[b], K);
            for (int i = 0; i < K; i++) {
                uint32_t x = it[b * K + i];
                assert_true(x < (uint32_t)n);
                assert_q_ok(q[b * K + i]);
                assert_true(q[b * K + i] == samp_prob(s, x));
                obs[x]++;
            }
        }
    }
}

/* ---- names and config ------------------------------------------------- */

static void test_kind_names_and_config(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int kind;
    } cases[] = {{"uniform", SAMP_UNIFORM},
                 {"popularity", SAMP_POPULARITY},
                 {"inbatch", SAMP_INBATCH},
                 {"hard", SAMP_HARD},
                 {"Uniform", -1},
                 {"", -1},
                 {"pop", -1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(samp_kind_parse(cases[i].name), cases[i].kind);
        if (cases[i].kind >= 0)
            assert_string_equal(samp_kind_name((samp_kind_t)cases[i].kind), cases[i].name);
    }
    samp_config_t c;
    samp_config_default(&c);
    assert_int_equal(c.kind, SAMP_UNIFORM);
    assert_true(c.alpha == 0.75f);
    assert_int_equal(c.pool, 12);
    assert_int_equal(c.max_tries, 32);

    emb_table_t *t = make_items(4, 1, 0, 1);
    ring_t *r = make_ring(8);
    static const struct {
        float alpha;
        int pool, tries, kind;
    } bad[] = {{-0.1f, 32, 32, 0},
               {2.5f, 32, 32, 1},
               {0.75f, 0, 32, 3},
               {0.75f, 32, 0, 0},
               {0.75f, 32, 32, 7}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        samp_config_default(&c);
        c.alpha = bad[i].alpha;
        c.pool = bad[i].pool;
        c.max_tries = bad[i].tries;
        c.kind = (samp_kind_t)bad[i].kind;
        char err[256] = "";
        assert_null(samp_create(&c, t, r, err, sizeof(err)));
        assert_true(strlen(err) > 0);
    }
    samp_free(NULL);
    ring_free(r);
    emb_free(t);
}

/* ---- uniform ---------------------------------------------------------- */

/* 50 admitted items (20 of which later expire) and 30 seen-once ones that
 * must never be drawn. */
static void test_uniform_chi_square(void **state)
{
    (void)state;
    enum { NA = 50, NS = 30, DRAWS = 200000 };
    emb_table_t *t = make_items(0, 2, 1000, 0);
    for (int i = 0; i < NA + NS; i++) {
        char b[32];
        int len = snprintf(b, sizeof(b), "item-%d", i);
        int64_t ts = i < 20 ? 0 : 5000;
        for (int k = 0; k < (i < NA ? 2 : 1); k++)
            assert_int_equal(emb_touch(t, id_hash(b, (size_t)len), b, (size_t)len, ts),
                             (uint32_t)i);
    }
    ring_t *r = make_ring(500);
    rng_t g;
    rng_seed(&g, 42);
    for (int j = 0; j < 500; j++) /* others' events; user 0 has none */
        ring_push(r, 1000 + j % 11, rng_below(&g, NA), j);
    sampler_t *s = make_sampler(SAMP_UNIFORM, 0.75f, t, r);

    uint64_t obs[NA + NS] = {0};
    double p[NA + NS] = {0};
    for (int i = 0; i < NA; i++)
        p[i] = 1.0 / NA;
    tally(s, &g, 0, DRAWS, obs, NA + NS);
    assert_true(samp_prob(s, 7) == 1.0f / NA);
    assert_fits(obs, p, NA + NS);
    memset(obs, 0, sizeof(obs));
    tally_batch(s, &g, DRAWS / 2, obs, NA + NS);
    assert_fits(obs, p, NA + NS);

    /* 20 expire: the draws spread over the 30 left */
    assert_int_equal(emb_expire(t, 5500, NULL, NULL, NULL), 20);
    memset(obs, 0, sizeof(obs));
    for (int i = 0; i < NA; i++)
        p[i] = i < 20 ? 0.0 : 1.0 / (NA - 20);
    tally(s, &g, 0, DRAWS / 2, obs, NA + NS);
    assert_true(samp_prob(s, 30) == 1.0f / (NA - 20));
    assert_fits(obs, p, NA + NS);

    samp_free(s);
    ring_free(r);
    emb_free(t);
}

static void test_uniform_no_items(void **state)
{
    (void)state;
    emb_table_t *t = make_items(5, 3, 0, 1); /* none admitted */
    ring_t *r = make_ring(8);
    sampler_t *s = make_sampler(SAMP_UNIFORM, 0.75f, t, r);
    rng_t g;
    rng_seed(&g, 1);
    uint32_t it[4];
    float q[4];
    assert_int_equal(samp_draw(s, &g, 0, it, q, 4), 0);
    samp_free(s);
    ring_free(r);
    emb_free(t);
}

/* ---- popularity ------------------------------------------------------- */

static void expected_pop(const ring_t *r, float alpha, double *p, int n)
{
    uint32_t *c = calloc((size_t)n, sizeof(uint32_t));
    assert_non_null(c);
    for (size_t k = 0; k < ring_size(r); k++) {
        uint32_t it;
        ring_get(r, k, NULL, &it, NULL);
        assert_true(it < (uint32_t)n);
        c[it]++;
    }
    for (int i = 0; i < n; i++)
        p[i] = c[i] ? pow((double)c[i], (double)alpha) : 0.0;
    normalise(p, n);
    free(c);
}

static void assert_probs(const sampler_t *s, const double *p, int n, double rel)
{
    for (int i = 0; i < n; i++) {
        float q = samp_prob(s, (uint32_t)i);
        if (p[i] == 0.0)
            assert_true(q == 0.0f);
        else
            assert_rel_close(q, p[i], rel);
    }
}

static void test_popularity_chi_square(void **state)
{
    (void)state;
    enum { N = 50, DRAWS = 200000 };
    static const float alphas[] = {0.75f, 1.0f};
    uint64_t obs[2][N];
    double p[2][N];
    for (int a = 0; a < 2; a++) {
        emb_table_t *t = make_items(N, 1, 0, 1);
        ring_t *r = make_ring(N * (N + 1) / 2);
        sampler_t *s = make_sampler(SAMP_POPULARITY, alphas[a], t, r);
        rng_t g;
        rng_seed(&g, 7 + a);
        uint32_t want[N];
        for (int i = 0; i < N; i++)
            want[i] = (uint32_t)i + 1;
        push_counts(r, want, N, &g);
        assert_int_equal(ring_size(r), N * (N + 1) / 2);

        /* q = count^α / Σ count^α, from the closed form */
        double sum = 0.0;
        for (int i = 0; i < N; i++)
            sum += pow(i + 1.0, alphas[a]);
        for (int i = 0; i < N; i++)
            p[a][i] = pow(i + 1.0, alphas[a]) / sum;
        assert_probs(s, p[a], N, 2e-6);
        assert_true(samp_prob(s, N) == 0.0f);       /* known, not in the buffer */
        assert_true(samp_prob(s, 1000000) == 0.0f); /* past the tree */

        uint64_t ob[N] = {0};
        tally_batch(s, &g, DRAWS / 2, ob, N);
        assert_fits(ob, p[a], N);
        memset(obs[a], 0, sizeof(obs[a]));
        tally(s, &g, 0, DRAWS, obs[a], N);
        assert_fits(obs[a], p[a], N);
        samp_free(s);
        ring_free(r);
        emb_free(t);
    }
    /* power: the draws tell α = 0.75 from α = 1 and from uniform */
    double u[N];
    for (int i = 0; i < N; i++)
        u[i] = 1.0 / N;
    assert_misfits(obs[0], p[1], N);
    assert_misfits(obs[1], p[0], N);
    assert_misfits(obs[0], u, N);
}

/* The weights follow the buffer as it evicts: halfway through replacing
 * counts i+1 by counts N-i, and after. */
static void test_popularity_follows_eviction(void **state)
{
    (void)state;
    enum { N = 50, CAP = N * (N + 1) / 2, DRAWS = 100000 };
    emb_table_t *t = make_items(N, 1, 0, 1);
    ring_t *r = make_ring(CAP);
    sampler_t *s = make_sampler(SAMP_POPULARITY, 0.75f, t, r);
    rng_t g;
    rng_seed(&g, 99);
    uint32_t want[N];
    for (int i = 0; i < N; i++)
        want[i] = (uint32_t)i + 1;
    push_counts(r, want, N, &g);

    uint32_t seq[CAP];
    size_t k = 0;
    for (int i = 0; i < N; i++)
        for (int c = 0; c < N - i; c++)
            seq[k++] = (uint32_t)i;
    shuffle(seq, CAP, &g);
    double p[N];
    uint64_t obs[N];
    for (size_t j = 0; j < CAP; j++) {
        ring_push(r, 2000 + (uint32_t)(j % 13), seq[j], (int64_t)(CAP + j));
        if (j == CAP / 2 || j == CAP - 1) {
            expected_pop(r, 0.75f, p, N);
            assert_probs(s, p, N, 2e-6);
            memset(obs, 0, sizeof(obs));
            tally(s, &g, 0, DRAWS, obs, N);
            assert_fits(obs, p, N);
        }
    }
    /* all of the first phase is gone: counts are N - i now */
    for (int i = 0; i < N; i++)
        assert_int_equal(ring_item_count(r, (uint32_t)i), N - i);
    samp_free(s);
    ring_free(r);
    emb_free(t);
}

/* Many pushes through a small window: more than 2^20 weight updates, so the
 * periodic rebuild runs too; the weights must still equal a recount. */
static void test_popularity_long_run(void **state)
{
    (void)state;
    enum { N = 50, CAP = 300, PUSHES = 600000 };
    emb_table_t *t = make_items(N, 1, 0, 1);
    ring_t *r = make_ring(CAP);
    sampler_t *s = make_sampler(SAMP_POPULARITY, 0.75f, t, r);
    rng_t g;
    rng_seed(&g, 1234);
    double p[N];
    for (int j = 0; j < PUSHES; j++) {
        /* a popularity that drifts over time */
        uint32_t it =
            rng_below(&g, 2) ? (uint32_t)((j / 5000 + rng_below(&g, 5)) % N) : rng_below(&g, N);
        ring_push(r, 1000 + rng_below(&g, 100), it, j);
        if (j % 99991 == 0) {
            expected_pop(r, 0.75f, p, N);
            assert_probs(s, p, N, 2e-6);
        }
    }
    expected_pop(r, 0.75f, p, N);
    assert_probs(s, p, N, 2e-6);
    uint64_t obs[N] = {0};
    tally(s, &g, 0, 100000, obs, N);
    assert_fits(obs, p, N);
    samp_free(s);
    ring_free(r);
    emb_free(t);
}

static void test_popularity_empty_buffer_is_uniform(void **state)
{
    (void)state;
    emb_table_t *t = make_items(10, 1, 0, 1);
    ring_t *r = make_ring(8);
    sampler_t *s = make_sampler(SAMP_POPULARITY, 0.75f, t, r);
    rng_t g;
    rng_seed(&g, 5);
    uint32_t it[4];
    float q[4];
    assert_int_equal(samp_draw(s, &g, 0, it, q, 4), 4);
    for (int i = 0; i < 4; i++) {
        assert_true(it[i] < 10);
        assert_true(q[i] == 0.1f);
    }
    samp_free(s);
    ring_free(r);
    emb_free(t);
}

/* ---- no sampler returns a positive of the user ------------------------ */

enum { XN = 60, XUSER = 7, XALL = 9 };

/* Scores an item by a fixed permutation of its index: a known, arbitrary score. */
static float fixed_score(uint32_t item)
{
    return (float)((item * 37u) % 101u) / 101.0f;
}

static void score_fixed(void *arg, uint32_t user, const uint32_t *items, int n, float *scores)
{
    (void)arg;
    (void)user;
    for (int i = 0; i < n; i++)
        scores[i] = fixed_score(items[i]);
}

static void test_never_a_positive(void **state)
{
    (void)state;
    for (int kind = SAMP_UNIFORM; kind <= SAMP_HARD; kind++) {
        emb_table_t *t = make_items(XN, 1, 0, 1);
        ring_t *r = make_ring(4000);
        sampler_t *s = make_sampler((samp_kind_t)kind, 0.75f, t, r);
        if (kind == SAMP_HARD)
            samp_set_scorer(s, score_fixed, NULL);
        rng_t g;
        rng_seed(&g, 77);
        /* XUSER has 45 of the 60 items, several times each; the others mostly
         * like the same items, so popularity and hard mostly draw positives */
        for (int j = 0; j < 3000; j++) {
            uint32_t u = j % 3 == 0 ? XUSER : 100 + rng_below(&g, 40);
            uint32_t it =
                u == XUSER || rng_below(&g, 10) < 8 ? rng_below(&g, 45) : rng_below(&g, XN);
            ring_push(r, u, it, j);
        }
        for (uint32_t i = 0; i < XN; i++) /* XALL has every item */
            ring_push(r, XALL, i, 3000 + i);
        uint8_t pos[XN];
        int npos = 0;
        for (uint32_t i = 0; i < XN; i++) {
            pos[i] = (uint8_t)ring_has_pair(r, XUSER, i);
            npos += pos[i];
        }
        assert_int_equal(npos, 45);
        /* the batch: recent events (mostly positives of XUSER) and a few others */
        uint32_t batch[64];
        for (int b = 0; b < 56; b++)
            ring_get(r, ring_size(r) - 56 - XN + (size_t)b, NULL, &batch[b], NULL);
        for (int b = 56; b < 64; b++)
            batch[b] = 45 + (uint32_t)b % 15;
        samp_set_batch(s, batch, 64);

        uint32_t it[4];
        float q[4];
        long got = 0;
        for (int d = 0; d < 20000; d++) {
            int n = samp_draw(s, &g, XUSER, it, q, 4);
            assert_true(n >= 0 && n <= 4);
            for (int i = 0; i < n; i++) {
                assert_true(it[i] < XN);
                assert_false(pos[it[i]]);
                assert_q_ok(q[i]);
                assert_true(q[i] == samp_prob(s, it[i]));
            }
            got += n;
            /* a user with every item as a positive gets none */
            if (d % 20 == 0)
                assert_int_equal(samp_draw(s, &g, XALL, it, q, 4), 0);
        }
        /* the batch call, for a mix of users: XUSER, XALL, others, newcomers */
        enum { B = 64, K = 4 };
        uint32_t users[B], bit[B * K];
        float bq[B * K];
        int found[B];
        for (int b = 0; b < B; b++)
            users[b] = b % 4 == 0   ? XUSER
                       : b % 4 == 1 ? XALL
                       : b % 4 == 2 ? 100 + (uint32_t)b % 40
                                    : 5000 + (uint32_t)b;
        long bgot = 0;
        for (int d = 0; d < 200; d++) {
            samp_draw_batch(s, &g, users, B, K, bit, bq, found);
            for (int b = 0; b < B; b++) {
                assert_true(found[b] >= 0 && found[b] <= K);
                if (users[b] == XALL)
                    assert_int_equal(found[b], 0);
                if (users[b] == XUSER)
                    bgot += found[b];
                for (int i = 0; i < found[b]; i++) {
                    uint32_t x = bit[b * K + i];
                    assert_true(x < XN);
                    assert_false(ring_has_pair(r, users[b], x));
                    assert_q_ok(bq[b * K + i]);
                    assert_true(bq[b * K + i] == samp_prob(s, x));
                }
            }
        }
        assert_true(bgot > 200L * (B / 4) * K / 2);

        /* negatives were there to find, and the samplers found most of them
         * (popularity gives up on some: 93% of its weight is on positives) */
        print_message("%s: %ld of %d negatives found\n", samp_kind_name((samp_kind_t)kind), got,
                      20000 * 4);
        assert_true(got > 20000L * 4 / 2);
        samp_free(s);
        ring_free(r);
        emb_free(t);
    }
}

/* ---- in-batch --------------------------------------------------------- */

/* Draws follow the share of the batch; q is the item's frequency in the
 * buffer (the marginal over batches), which the logQ correction needs. */
static void test_inbatch_share_of_batch(void **state)
{
    (void)state;
    enum { N = 16, DRAWS = 100000 };
    static const uint32_t batch[] = {3, 3, 3, 5, 5, 9, 11, 11, 11, 11};
    emb_table_t *t = make_items(N, 1, 0, 1);
    ring_t *r = make_ring(32);
    sampler_t *s = make_sampler(SAMP_INBATCH, 0.75f, t, r);
    rng_t g;
    rng_seed(&g, 8);
    uint32_t it[4];
    float q[4];
    assert_int_equal(samp_draw(s, &g, 0, it, q, 4), 0); /* no batch yet */

    /* the buffer: others' history (5 six times, 9 and 13 once), then the
     * batch, pushed before drawing as the learner does: counts 3: 3, 5: 8,
     * 9: 2, 11: 4, 13: 1 of 18 events */
    static const uint32_t history[] = {5, 5, 5, 5, 5, 5, 9, 13};
    for (int j = 0; j < 8; j++)
        assert_int_equal(ring_push(r, 1000 + (uint32_t)j, history[j], j), 0);
    for (int j = 0; j < 10; j++)
        assert_int_equal(ring_push(r, 2000 + (uint32_t)j, batch[j], 8 + j), 0);
    samp_set_batch(s, batch, 10);
    double share[N] = {0}, freq[N] = {0};
    share[3] = 0.3;
    share[5] = 0.2;
    share[9] = 0.1;
    share[11] = 0.4;
    freq[3] = 3.0 / 18;
    freq[5] = 8.0 / 18;
    freq[9] = 2.0 / 18;
    freq[11] = 4.0 / 18;
    freq[13] = 1.0 / 18; /* in the buffer, not in this batch: never drawn now */
    for (int i = 0; i < N; i++)
        assert_rel_close(samp_prob(s, (uint32_t)i), freq[i], 1e-6);
    uint64_t obs[N] = {0};
    tally(s, &g, 0, DRAWS, obs, N); /* also: q == samp_prob */
    assert_fits(obs, share, N);
    assert_misfits(obs, freq, N); /* the draws are not ∝ q, and the test can tell */
    memset(obs, 0, sizeof(obs));
    tally_batch(s, &g, DRAWS, obs, N);
    assert_fits(obs, share, N);

    /* user 1 has item 11 in the buffer: never drawn, the rest in proportion;
     * q is still the buffer frequency (now of 19 events) */
    assert_int_equal(ring_push(r, 1, 11, 20), 0);
    memset(obs, 0, sizeof(obs));
    for (int d = 0; d < DRAWS; d += 4) {
        int n = samp_draw(s, &g, 1, it, q, 4);
        assert_int_equal(n, 4);
        for (int i = 0; i < n; i++) {
            assert_int_not_equal(it[i], 11);
            assert_rel_close(q[i], (double)ring_item_count(r, it[i]) / 19.0, 1e-6);
            obs[it[i]]++;
        }
    }
    double p2[N] = {0};
    p2[3] = 3.0 / 6;
    p2[5] = 2.0 / 6;
    p2[9] = 1.0 / 6;
    assert_fits(obs, p2, N);

    /* an item of the batch missing from the buffer (its push failed) gets
     * its share of the batch: still a q in (0, 1] */
    static const uint32_t batch2[] = {3, 7, 7, 7};
    samp_set_batch(s, batch2, 4);
    assert_rel_close(samp_prob(s, 7), 0.75, 1e-6);
    assert_rel_close(samp_prob(s, 3), 3.0 / 19, 1e-6);
    for (int d = 0; d < 100; d++) {
        int n = samp_draw(s, &g, 0, it, q, 4);
        assert_int_equal(n, 4);
        for (int i = 0; i < n; i++) {
            assert_q_ok(q[i]);
            assert_true(q[i] == samp_prob(s, it[i]));
        }
    }

    samp_set_batch(s, batch, 0);
    assert_int_equal(samp_draw(s, &g, 0, it, q, 4), 0);
    assert_true(samp_prob(s, 3) == 0.0f);
    samp_free(s);
    ring_free(r);
    emb_free(t);
}

/* ---- hard ------------------------------------------------------------- */

enum { HN = 100, HUSER = 5, HPOOL = 32, HK = 4 };

typedef struct {
    int calls;
    uint32_t user;
    int n;
    uint32_t cand[HPOOL];
} scorer_log_t;

static float hard_score(uint32_t item)
{
    return (float)((item * 37u) % HN) / (float)HN;
}

static void score_logged(void *arg, uint32_t user, const uint32_t *items, int n, float *scores)
{
    scorer_log_t *log = arg;
    log->calls++;
    log->user = user;
    log->n = n;
    assert_true(n >= 1 && n <= HPOOL);
    memcpy(log->cand, items, sizeof(uint32_t) * (size_t)n);
    for (int i = 0; i < n; i++)
        scores[i] = hard_score(items[i]);
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static void test_hard_rank_band_of_scored(void **state)
{
    (void)state;
    emb_table_t *t = make_items(HN, 1, 0, 1);
    ring_t *r = make_ring(4000);
    sampler_t *s = make_sampler(SAMP_HARD, 0.75f, t, r);
    sampler_t *u = make_sampler(SAMP_UNIFORM, 0.75f, t, r);
    scorer_log_t log = {0};
    samp_set_scorer(s, score_logged, &log);
    rng_t g;
    rng_seed(&g, 31);
    /* HUSER's positives are ten of the best-scored items: they must be
     * skipped however good they look */
    uint8_t pos[HN] = {0};
    for (uint32_t i = 0, n = 0; i < HN && n < 10; i++)
        if (hard_score(i) >= 0.85f) {
            pos[i] = 1;
            n++;
            ring_push(r, HUSER, i, 0);
        }
    for (int j = 0; j < 3000; j++)
        ring_push(r, 1000 + rng_below(&g, 50), rng_below(&g, HN), j);

    double sum_hard = 0.0, sum_pool = 0.0, sum_uni = 0.0;
    long n_hard = 0, n_pool = 0, n_uni = 0, dup_draws = 0;
    for (int d = 0; d < 5000; d++) {
        uint32_t it[HK];
        float q[HK];
        int before = log.calls;
        int n = samp_draw(s, &g, HUSER, it, q, HK);
        assert_int_equal(log.calls, before + 1);
        assert_int_equal(log.user, HUSER);
        assert_int_equal(log.n, HPOOL); /* plenty of negatives: a full pool */
        assert_int_equal(n, HK);

        /* every candidate is a valid negative among the items */
        float cs[HPOOL];
        for (int c = 0; c < log.n; c++) {
            assert_true(log.cand[c] < HN);
            assert_false(pos[log.cand[c]]);
            cs[c] = hard_score(log.cand[c]);
            sum_pool += cs[c];
            n_pool++;
        }
        /* the returned ones: a rank band of what was scored, past the top
         * skip, then the rest drawn from below the band */
        qsort(cs, (size_t)log.n, sizeof(float), cmp_desc);
        const int skip = samp_hard_skip(log.n), nh = (HK + 3) / 4;
        assert_int_equal(skip, 1);
        float rs[HK];
        for (int i = 0; i < n; i++) {
            int in_pool = 0;
            for (int c = 0; c < log.n; c++)
                in_pool |= log.cand[c] == it[i];
            assert_true(in_pool);
            assert_false(pos[it[i]]);
            rs[i] = hard_score(it[i]);
            sum_hard += rs[i];
            n_hard++;
            /* q: the uniform pool's inclusion probability, min(1, C/n) */
            double want = fmin(1.0, (double)HPOOL / (double)HN);
            assert_q_ok(q[i]);
            assert_rel_close(q[i], want, 1e-6);
            for (int j = 0; j < i; j++)
                dup_draws += it[j] == it[i];
        }
        for (int i = 0; i < nh; i++)
            assert_true(rs[i] == cs[skip + i]);
        for (int i = nh; i < n; i++)
            assert_true(rs[i] <= cs[skip + nh - 1]);
        assert_int_equal(dup_draws, 0);

        /* the same user under the uniform sampler, for comparison */
        int m = samp_draw(u, &g, HUSER, it, q, HK);
        for (int i = 0; i < m; i++) {
            sum_uni += hard_score(it[i]);
            n_uni++;
        }
    }
    double mh = sum_hard / n_hard, mp = sum_pool / n_pool, mu = sum_uni / n_uni;
    print_message("hard: mean score %.3f, pool %.3f, uniform %.3f; repeated items in "
                  "%ld of %ld returned\n",
                  mh, mp, mu, dup_draws, n_hard);
    assert_true(mh > mp + 0.05); /* a quarter of them from the top of the pool */
    assert_true(mh > mu + 0.05);
    samp_free(u);
    samp_free(s);
    ring_free(r);
    emb_free(t);
}

/* Without a scorer the hard sampler hands back uniform draws with their q. */
static void test_hard_without_scorer(void **state)
{
    (void)state;
    emb_table_t *t = make_items(HN, 1, 0, 1);
    ring_t *r = make_ring(200);
    sampler_t *s = make_sampler(SAMP_HARD, 0.75f, t, r);
    rng_t g;
    rng_seed(&g, 4);
    for (int j = 0; j < 500; j++)
        ring_push(r, 1000, (uint32_t)(j % 20), j);
    uint32_t it[4];
    float q[4];
    for (int d = 0; d < 1000; d++) {
        assert_int_equal(samp_draw(s, &g, 0, it, q, 4), 4);
        for (int i = 0; i < 4; i++) {
            assert_true(it[i] < HN);
            assert_q_ok(q[i]);
            /* a uniform pool: min(1, 32/100) */
            assert_true(q[i] == 0.32f);
        }
    }
    samp_free(s);
    ring_free(r);
    emb_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names_and_config),
        cmocka_unit_test(test_uniform_chi_square),
        cmocka_unit_test(test_uniform_no_items),
        cmocka_unit_test(test_popularity_chi_square),
        cmocka_unit_test(test_popularity_follows_eviction),
        cmocka_unit_test(test_popularity_long_run),
        cmocka_unit_test(test_popularity_empty_buffer_is_uniform),
        cmocka_unit_test(test_never_a_positive),
        cmocka_unit_test(test_inbatch_share_of_batch),
        cmocka_unit_test(test_hard_rank_band_of_scored),
        cmocka_unit_test(test_hard_without_scorer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
