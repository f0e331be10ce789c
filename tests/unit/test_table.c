/* test_table.c — unit tests of the embedding table (learner/table.c): lookup
 * by string and integer ids, growth, hash-collision safety, admission, expiry
 * with backward-shift deletion (checked against a plain reference under heavy
 * random interleavings), row sampling, dirty tracking and stats.
 * Not for: learning on the rows (test_learner). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "id.h"
#include "rng.h"
#include "table.h"

/* ---- helpers ---------------------------------------------------------- */

static emb_config_t config(uint32_t admit_after, int64_t expire_ms)
{
    emb_config_t c = {.width = 4,
                      .state = 2,
                      .admit_after = admit_after,
                      .expire_ms = expire_ms,
                      .init_std = 0.1f,
                      .seed = 7};
    return c;
}

static emb_table_t *make_table(uint32_t admit_after, int64_t expire_ms)
{
    char err[256] = "";
    emb_config_t c = config(admit_after, expire_ms);
    emb_table_t *t = emb_create(&c, err, sizeof(err));
    assert_non_null(t);
    return t;
}

static uint32_t touch_str(emb_table_t *t, const char *s, int64_t ts)
{
    size_t n = strlen(s);
    return emb_touch(t, id_hash(s, n), s, n, ts);
}

static uint32_t find_str(const emb_table_t *t, const char *s)
{
    size_t n = strlen(s);
    return emb_find(t, id_hash(s, n), s, n);
}

static uint32_t touch_int(emb_table_t *t, int64_t v, int64_t ts)
{
    char b[24];
    size_t n = id_from_int(v, b);
    return emb_touch(t, id_hash(b, n), b, n, ts);
}

static uint32_t find_int(const emb_table_t *t, int64_t v)
{
    char b[24];
    size_t n = id_from_int(v, b);
    return emb_find(t, id_hash(b, n), b, n);
}

static void assert_entry_id(const emb_table_t *t, uint32_t e, const char *id, size_t len)
{
    size_t got_len = 0;
    const char *got = emb_entry_id(t, e, &got_len);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, id, len);
}

/* ---- create / free ---------------------------------------------------- */

static void test_create_rejects_bad_config(void **state)
{
    (void)state;
    static const struct {
        int width, st;
        uint32_t admit_after;
    } bad[] = {{0, 0, 1}, {-1, 0, 1}, {4, -1, 1}, {4, 0, 0}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        emb_config_t c = config(bad[i].admit_after, 0);
        c.width = bad[i].width;
        c.state = bad[i].st;
        char err[256] = "";
        assert_null(emb_create(&c, err, sizeof(err)));
        assert_true(strlen(err) > 0);
    }
    emb_free(NULL); /* does nothing */
}

static void test_fresh_table(void **state)
{
    (void)state;
    emb_table_t *t = make_table(1, 0);
    emb_stats_t st;
    emb_stats(t, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.rows, 1); /* the fallback */
    assert_int_equal(st.admitted, 0);
    assert_int_equal(st.expired, 0);
    assert_int_equal(emb_admitted_rows(t), 0);
    assert_int_equal(emb_row_entry(t, 0), EMB_NONE);
    assert_int_equal(find_str(t, "nobody"), EMB_NONE);
    rng_t r;
    rng_seed(&r, 1);
    assert_int_equal(emb_sample_row(t, &r), 0);
    emb_free(t);
}

/* ---- string and integer ids ------------------------------------------- */

static void test_string_ids(void **state)
{
    (void)state;
    static const char *ids[] = {"a", "alice", "", "42", "user:1", "ünïcødé", "a\tb", "A"};
    const size_t n = sizeof(ids) / sizeof(ids[0]);
    emb_table_t *t = make_table(1, 0);
    uint32_t e[sizeof(ids) / sizeof(ids[0])];
    for (size_t i = 0; i < n; i++) {
        e[i] = touch_str(t, ids[i], 100 + (int64_t)i);
        assert_int_not_equal(e[i], EMB_NONE);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(e[i], e[j]);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(find_str(t, ids[i]), e[i]);
        assert_int_equal(emb_entry_count(t, e[i]), 1);
        assert_int_equal(emb_entry_last_seen(t, e[i]), 100 + (int64_t)i);
        assert_true(emb_entry_alive(t, e[i]));
        assert_true(e[i] < emb_entry_cap(t));
        assert_entry_id(t, e[i], ids[i], strlen(ids[i]));
    }
    /* a second touch counts, keeps the entry and moves last_seen forward only */
    assert_int_equal(touch_str(t, "alice", 500), e[1]);
    assert_int_equal(emb_entry_count(t, e[1]), 2);
    assert_int_equal(emb_entry_last_seen(t, e[1]), 500);
    assert_int_equal(touch_str(t, "alice", 50), e[1]);
    assert_int_equal(emb_entry_count(t, e[1]), 3);
    assert_int_equal(emb_entry_last_seen(t, e[1]), 500);

    /* ids that differ by a byte or by length are different ids */
    assert_int_equal(find_str(t, "alic"), EMB_NONE);
    assert_int_equal(find_str(t, "alicE"), EMB_NONE);
    assert_int_equal(find_str(t, "aa"), EMB_NONE);

    emb_stats_t st;
    emb_stats(t, &st);
    assert_int_equal(st.entries, n);
    emb_free(t);
}

static void test_integer_ids(void **state)
{
    (void)state;
    static const int64_t vals[] = {0, 1, 42, -7, 1000000007, INT64_MAX, INT64_MIN};
    const size_t n = sizeof(vals) / sizeof(vals[0]);
    emb_table_t *t = make_table(1, 0);
    for (size_t i = 0; i < n; i++)
        assert_int_not_equal(touch_int(t, vals[i], 1), EMB_NONE);
    for (size_t i = 0; i < n; i++) {
        uint32_t e = find_int(t, vals[i]);
        assert_int_not_equal(e, EMB_NONE);
        assert_int_equal(emb_entry_count(t, e), 1);
        char b[24];
        size_t len = id_from_int(vals[i], b);
        assert_entry_id(t, e, b, len);
    }
    /* an integer id is its decimal text: 42 and "42" are one id */
    uint32_t e42 = find_int(t, 42);
    assert_int_equal(find_str(t, "42"), e42);
    assert_int_equal(touch_str(t, "42", 2), e42);
    assert_int_equal(emb_entry_count(t, e42), 2);
    assert_int_equal(find_str(t, "-9223372036854775808"), find_int(t, INT64_MIN));
    assert_int_equal(find_int(t, 43), EMB_NONE);
    assert_int_equal(find_str(t, "042"), EMB_NONE);
    emb_free(t);
}

/* 100k ids force the slot array through several doublings (1024 → 262144);
 * every id must survive each rehash with its own count. */
static void test_many_ids_grow(void **state)
{
    (void)state;
    enum { N = 100000 };
    emb_table_t *t = make_table(1, 0);
    emb_stats_t st0;
    emb_stats(t, &st0);
    uint32_t *e = malloc(sizeof(uint32_t) * N);
    assert_non_null(e);
    for (int64_t i = 0; i < N; i++) {
        e[i] = touch_int(t, i * 7919 + 3, i);
        assert_int_not_equal(e[i], EMB_NONE);
    }
    /* a second pass: every third id twice more, as strings for even ones */
    for (int64_t i = 0; i < N; i += 3) {
        for (int k = 0; k < 2; k++) {
            if (i % 2 == 0) {
                char b[24];
                snprintf(b, sizeof(b), "%lld", (long long)(i * 7919 + 3));
                assert_int_equal(touch_str(t, b, N + i), e[i]);
            } else {
                assert_int_equal(touch_int(t, i * 7919 + 3, N + i), e[i]);
            }
        }
    }
    uint8_t *seen = calloc(emb_entry_cap(t), 1);
    assert_non_null(seen);
    for (int64_t i = 0; i < N; i++) {
        uint32_t f = find_int(t, i * 7919 + 3);
        assert_int_equal(f, e[i]);
        assert_true(f < emb_entry_cap(t));
        assert_int_equal(seen[f], 0);
        seen[f] = 1;
        assert_int_equal(emb_entry_count(t, f), i % 3 == 0 ? 3 : 1);
        /* admit_after 1: each id has its own row, and the row knows its entry */
        uint32_t row = emb_entry_row(t, f);
        assert_int_not_equal(row, 0);
        assert_int_equal(emb_row_entry(t, row), f);
    }
    assert_int_equal(find_int(t, 1), EMB_NONE);
    emb_stats_t st;
    emb_stats(t, &st);
    assert_int_equal(st.entries, N);
    assert_int_equal(st.rows, N + 1);
    assert_int_equal(st.admitted, N);
    assert_int_equal(emb_admitted_rows(t), N);
    assert_true(st.bytes > st0.bytes);
    /* at least the rows and the slot array are accounted for */
    assert_true(st.bytes >= (size_t)N * (4 + 2) * sizeof(float) + 2 * (size_t)N * 12);
    free(seen);
    free(e);
    emb_free(t);
}

/* ---- collision safety ------------------------------------------------- */

static void test_same_hash_different_ids(void **state)
{
    (void)state;
    enum { N = 200 };
    const uint64_t H = 0x1234567890abcdefULL;
    emb_table_t *t = make_table(1, 1000);
    uint32_t a = emb_touch(t, H, "alpha", 5, 0);
    uint32_t b = emb_touch(t, H, "beta", 4, 0);
    assert_int_not_equal(a, EMB_NONE);
    assert_int_not_equal(b, EMB_NONE);
    assert_int_not_equal(a, b);
    assert_int_equal(emb_touch(t, H, "beta", 4, 0), b);
    assert_int_equal(emb_entry_count(t, a), 1);
    assert_int_equal(emb_entry_count(t, b), 2);
    assert_int_equal(emb_find(t, H, "alpha", 5), a);
    assert_int_equal(emb_find(t, H, "beta", 4), b);
    assert_int_equal(emb_find(t, H, "gamma", 5), EMB_NONE);
    assert_int_not_equal(emb_entry_row(t, a), emb_entry_row(t, b));

    /* a long chain of equal hashes (past the first growth), then every other
     * one removed: the rest are still found behind the holes */
    uint32_t e[N];
    char buf[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(buf, sizeof(buf), "same-%d", i);
        e[i] = emb_touch(t, H, buf, (size_t)n, i % 2 ? 5000 : 0);
        assert_int_not_equal(e[i], EMB_NONE);
    }
    /* touch beta, alpha late so only the even "same-" ids are old */
    emb_touch(t, H, "alpha", 5, 5000);
    emb_touch(t, H, "beta", 4, 5000);
    assert_int_equal(emb_expire(t, 5500, NULL, NULL, NULL), N / 2);
    for (int i = 0; i < N; i++) {
        int n = snprintf(buf, sizeof(buf), "same-%d", i);
        uint32_t f = emb_find(t, H, buf, (size_t)n);
        if (i % 2)
            assert_int_equal(f, e[i]);
        else
            assert_int_equal(f, EMB_NONE);
    }
    assert_int_equal(emb_find(t, H, "alpha", 5), a);
    assert_int_equal(emb_find(t, H, "beta", 4), b);
    assert_int_equal(emb_entry_count(t, b), 3);
    emb_free(t);
}

/* ---- admission -------------------------------------------------------- */

static void test_admission(void **state)
{
    (void)state;
    static const uint32_t cases[] = {1, 2, 3, 5};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        uint32_t A = cases[c];
        emb_table_t *t = make_table(A, 0);
        uint32_t rows[3] = {0};
        for (int id = 0; id < 3; id++) {
            char name[16];
            snprintf(name, sizeof(name), "id%d", id);
            for (uint32_t k = 1; k <= A + 2; k++) {
                uint32_t e = touch_str(t, name, k);
                uint32_t row = emb_entry_row(t, e);
                if (k < A) {
                    assert_int_equal(row, 0); /* the fallback */
                } else if (k == A) {
                    assert_int_not_equal(row, 0);
                    assert_int_equal(emb_row_entry(t, row), e);
                    rows[id] = row;
                } else {
                    assert_int_equal(row, rows[id]); /* stable once admitted */
                }
            }
            emb_stats_t st;
            emb_stats(t, &st);
            assert_int_equal(st.admitted, (uint64_t)id + 1);
            assert_int_equal(st.rows, (size_t)id + 2);
        }
        assert_int_not_equal(rows[0], rows[1]);
        assert_int_not_equal(rows[1], rows[2]);
        assert_int_not_equal(rows[0], rows[2]);
        emb_free(t);
    }
}

static void test_admission_after_three(void **state)
{
    (void)state;
    emb_table_t *t = make_table(3, 0);
    uint32_t e = touch_str(t, "x", 1);
    uint32_t y = touch_str(t, "y", 1);
    assert_int_equal(emb_entry_row(t, e), 0);
    assert_int_equal(touch_str(t, "x", 2), e);
    assert_int_equal(emb_entry_row(t, e), 0);
    emb_stats_t st;
    emb_stats(t, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.rows, 1);
    assert_int_equal(st.admitted, 0);
    assert_int_equal(emb_admitted_rows(t), 0);

    assert_int_equal(touch_str(t, "x", 3), e);
    uint32_t row = emb_entry_row(t, e);
    assert_int_not_equal(row, 0);
    assert_int_equal(emb_row_entry(t, row), e);
    assert_int_equal(emb_entry_row(t, y), 0);
    emb_stats(t, &st);
    assert_int_equal(st.rows, 2);
    assert_int_equal(st.admitted, 1);
    assert_int_equal(emb_admitted_rows(t), 1);

    /* rows hold width + state floats: parameters initialised, state zero */
    float *p = emb_row(t, row), *s = emb_row_state(t, row);
    assert_ptr_equal(s, p + 4);
    int nonzero = 0;
    for (int i = 0; i < 4; i++)
        nonzero += p[i] != 0.0f;
    assert_true(nonzero > 0);
    assert_true(s[0] == 0.0f && s[1] == 0.0f);
    emb_free(t);
}

/* ---- expiry ----------------------------------------------------------- */

static void test_expire_basic(void **state)
{
    (void)state;
    emb_table_t *t = make_table(1, 1000);
    uint32_t a = touch_str(t, "a", 0);
    uint32_t b = touch_str(t, "b", 1000); /* exactly at the cutoff: kept */
    uint32_t c = touch_str(t, "c", 1999);
    uint32_t d = touch_str(t, "d", 100);
    touch_str(t, "d", 1500); /* last_seen moves on with the touch */
    uint32_t arow = emb_entry_row(t, a);
    assert_int_equal(emb_expire(t, 2000, NULL, NULL, NULL), 1);
    assert_int_equal(find_str(t, "a"), EMB_NONE);
    assert_false(emb_entry_alive(t, a));
    assert_int_equal(emb_row_entry(t, arow), EMB_NONE);
    assert_int_equal(find_str(t, "b"), b);
    assert_int_equal(find_str(t, "c"), c);
    assert_int_equal(find_str(t, "d"), d);
    emb_stats_t st;
    emb_stats(t, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.rows, 4);
    assert_int_equal(st.admitted, 4);

    /* nothing more is due at the same time */
    assert_int_equal(emb_expire(t, 2000, NULL, NULL, NULL), 0);

    /* an expired id that comes back starts afresh */
    uint32_t a2 = touch_str(t, "a", 2100);
    assert_int_not_equal(a2, EMB_NONE);
    assert_int_equal(emb_entry_count(t, a2), 1);
    assert_int_equal(emb_entry_last_seen(t, a2), 2100);
    emb_stats(t, &st);
    assert_int_equal(st.admitted, 5);

    /* much later everything goes */
    assert_int_equal(emb_expire(t, 100000, NULL, NULL, NULL), 4);
    emb_stats(t, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.rows, 1);
    assert_int_equal(st.expired, 5);
    assert_int_equal(emb_admitted_rows(t), 0);
    emb_free(t);
}

static void test_expire_disabled(void **state)
{
    (void)state;
    emb_table_t *t = make_table(1, 0);
    touch_str(t, "a", 0);
    assert_int_equal(emb_expire(t, INT64_MAX / 2, NULL, NULL, NULL), 0);
    assert_int_not_equal(find_str(t, "a"), EMB_NONE);
    emb_free(t);
}

static int keep_k_prefix(void *arg, uint32_t e)
{
    const emb_table_t *t = arg;
    size_t len;
    const char *id = emb_entry_id(t, e, &len);
    return len > 0 && id[0] == 'k';
}

/* expiry's gone callback: the ids removed, read before their entries go */
static char gone_ids[8][16];
static int ngone;

static void record_gone(void *arg, uint32_t e)
{
    size_t len;
    const char *id = emb_entry_id(arg, e, &len);
    if (ngone < 8)
        snprintf(gone_ids[ngone++], sizeof(gone_ids[0]), "%.*s", (int)len, id);
}

static void test_expire_keep_veto(void **state)
{
    (void)state;
    static const struct {
        const char *id;
        int64_t ts;
        int alive_after;
    } cases[] = {
        {"k1", 0, 1},    /* old, vetoed */
        {"k2", 5000, 1}, /* fresh */
        {"x1", 0, 0},    /* old, not vetoed */
        {"x2", 5000, 1}, /* fresh */
        {"k3", 10, 1},   /* old, vetoed */
        {"y", 10, 0},    /* old, not vetoed */
    };
    const size_t n = sizeof(cases) / sizeof(cases[0]);
    emb_table_t *t = make_table(1, 1000);
    for (size_t i = 0; i < n; i++)
        touch_str(t, cases[i].id, cases[i].ts);
    ngone = 0;
    assert_int_equal(emb_expire(t, 5500, keep_k_prefix, record_gone, t), 2);
    assert_int_equal(ngone, 2); /* told of exactly the two removed, in entry order */
    assert_string_equal(gone_ids[0], "x1");
    assert_string_equal(gone_ids[1], "y");
    for (size_t i = 0; i < n; i++) {
        if (cases[i].alive_after)
            assert_int_not_equal(find_str(t, cases[i].id), EMB_NONE);
        else
            assert_int_equal(find_str(t, cases[i].id), EMB_NONE);
    }
    emb_stats_t st;
    emb_stats(t, &st);
    assert_int_equal(st.expired, 2);
    assert_int_equal(st.entries, 4);
    emb_free(t);
}

/* Random touches and expiries against a reference kept in plain arrays.
 * Mode 0 uses the real hashes; mode 1 squeezes every id onto 128 hash values
 * whose home slots straddle the end of the slot array (2^20 - 64 .. 2^20 + 63
 * masked), so that probe chains are long, wrap around, and backward-shift
 * deletion has to move entries across the wrap. */
enum { RK = 2000, REXPIRE = 1500, ROPS = 40000, RROUND = 400 };

typedef struct {
    int alive;
    uint32_t count;
    int64_t last;
} ref_t;

static size_t key_text(int k, char *buf)
{
    if (k % 2 == 0)
        return id_from_int((int64_t)k * 1000003, buf);
    return (size_t)snprintf(buf, 24, "s%d", k);
}

static uint64_t key_hash(int mode, const char *s, size_t n)
{
    uint64_t h = id_hash(s, n);
    return mode == 0 ? h : ((1u << 20) - 64) + h % 128;
}

static int key_of_entry(const emb_table_t *t, uint32_t e)
{
    size_t len;
    const char *id = emb_entry_id(t, e, &len);
    if (id[0] == 's')
        return atoi(id + 1);
    return (int)(strtoll(id, NULL, 10) / 1000003);
}

static int keep_mod13(void *arg, uint32_t e)
{
    return key_of_entry(arg, e) % 13 == 0;
}

static void check_against_reference(const emb_table_t *t, int mode, const ref_t *ref,
                                    uint64_t expired_total)
{
    uint8_t *seen_e = calloc(emb_entry_cap(t) + 1, 1);
    uint8_t *seen_r = calloc(emb_row_cap(t) + 1, 1);
    assert_non_null(seen_e);
    assert_non_null(seen_r);
    size_t live = 0, admitted = 0;
    for (int k = 0; k < RK; k++) {
        char b[24];
        size_t n = key_text(k, b);
        uint32_t e = emb_find(t, key_hash(mode, b, n), b, n);
        if (!ref[k].alive) {
            assert_int_equal(e, EMB_NONE);
            continue;
        }
        live++;
        assert_int_not_equal(e, EMB_NONE);
        assert_true(emb_entry_alive(t, e));
        assert_int_equal(seen_e[e], 0);
        seen_e[e] = 1;
        assert_int_equal(emb_entry_count(t, e), ref[k].count);
        assert_int_equal(emb_entry_last_seen(t, e), ref[k].last);
        assert_entry_id(t, e, b, n);
        uint32_t row = emb_entry_row(t, e);
        if (ref[k].count >= 2) { /* admit_after 2 */
            admitted++;
            assert_int_not_equal(row, 0);
            assert_true(row < emb_row_cap(t));
            assert_int_equal(seen_r[row], 0);
            seen_r[row] = 1;
            assert_int_equal(emb_row_entry(t, row), e);
        } else {
            assert_int_equal(row, 0);
        }
    }
    emb_stats_t st;
    emb_stats(t, &st);
    assert_int_equal(st.entries, live);
    assert_int_equal(st.rows, admitted + 1);
    assert_int_equal(emb_admitted_rows(t), admitted);
    assert_int_equal(st.expired, expired_total);
    free(seen_e);
    free(seen_r);
}

static void run_random_expiry(int mode, uint64_t seed)
{
    emb_table_t *t = make_table(2, REXPIRE);
    ref_t *ref = calloc(RK, sizeof(ref_t));
    assert_non_null(ref);
    rng_t r;
    rng_seed(&r, seed);
    uint64_t expired_total = 0;
    int64_t now = 0;
    for (int op = 1; op <= ROPS; op++) {
        now++;
        /* a drifting hot range keeps some ids busy while others go stale */
        int k = rng_below(&r, 4) == 0 ? (int)rng_below(&r, RK)
                                      : (int)((op / 10 + rng_below(&r, 300)) % RK);
        char b[24];
        size_t n = key_text(k, b);
        uint32_t e = emb_touch(t, key_hash(mode, b, n), b, n, now);
        assert_int_not_equal(e, EMB_NONE);
        if (!ref[k].alive)
            ref[k] = (ref_t){1, 0, now};
        ref[k].count++;
        ref[k].last = now;
        if (op % RROUND == 0) {
            int64_t cutoff = now - REXPIRE;
            size_t due = 0;
            for (int j = 0; j < RK; j++) {
                if (ref[j].alive && ref[j].last < cutoff && j % 13 != 0) {
                    ref[j].alive = 0;
                    due++;
                }
            }
            size_t got = emb_expire(t, now, keep_mod13, NULL, t);
            assert_int_equal(got, due);
            expired_total += due;
            check_against_reference(t, mode, ref, expired_total);
        }
    }
    /* a final sweep far in the future leaves only the vetoed ids */
    now += 10 * REXPIRE;
    size_t due = 0;
    for (int j = 0; j < RK; j++)
        if (ref[j].alive && j % 13 != 0) {
            ref[j].alive = 0;
            due++;
        }
    assert_int_equal(emb_expire(t, now, keep_mod13, NULL, t), due);
    expired_total += due;
    check_against_reference(t, mode, ref, expired_total);
    assert_true(expired_total > RK); /* ids really did come and go */
    free(ref);
    emb_free(t);
}

static void test_expire_random_real_hashes(void **state)
{
    (void)state;
    run_random_expiry(0, 11);
    run_random_expiry(0, 12);
}

static void test_expire_random_clustered_hashes(void **state)
{
    (void)state;
    run_random_expiry(1, 21);
    run_random_expiry(1, 22);
}

/* ---- sampling rows ---------------------------------------------------- */

static void test_sample_row_admitted_live_only(void **state)
{
    (void)state;
    emb_table_t *t = make_table(2, 1000);
    char b[24];
    /* 0..49 admitted and stale, 50..99 admitted and fresh, 100..199 seen once */
    for (int i = 0; i < 200; i++) {
        snprintf(b, sizeof(b), "i%d", i);
        int64_t ts = i < 50 ? 0 : 5000;
        touch_str(t, b, ts);
        if (i < 100)
            touch_str(t, b, ts);
    }
    assert_int_equal(emb_expire(t, 5500, NULL, NULL, NULL), 50);
    assert_int_equal(emb_admitted_rows(t), 50);
    rng_t r;
    rng_seed(&r, 3);
    int hits[200] = {0};
    for (int n = 0; n < 20000; n++) {
        uint32_t row = emb_sample_row(t, &r);
        assert_true(row > 0 && row < emb_row_cap(t));
        uint32_t e = emb_row_entry(t, row);
        assert_int_not_equal(e, EMB_NONE);
        assert_true(emb_entry_alive(t, e));
        assert_int_equal(emb_entry_row(t, e), row);
        assert_true(emb_entry_count(t, e) >= 2);
        size_t len;
        const char *id = emb_entry_id(t, e, &len);
        int i = atoi(id + 1);
        assert_true(i >= 50 && i < 100);
        hits[i]++;
    }
    for (int i = 50; i < 100; i++)
        assert_true(hits[i] > 0);
    emb_free(t);
}

/* After a mass expiry most rows are free and rejection sampling gives up;
 * the slow path must still return live rows only, and both of them. */
static void test_sample_row_mostly_free(void **state)
{
    (void)state;
    emb_table_t *t = make_table(1, 1000);
    for (int64_t i = 0; i < 1000; i++)
        touch_int(t, i, i == 17 || i == 900 ? 5000 : 0);
    assert_int_equal(emb_expire(t, 5500, NULL, NULL, NULL), 998);
    uint32_t r17 = emb_entry_row(t, find_int(t, 17));
    uint32_t r900 = emb_entry_row(t, find_int(t, 900));
    rng_t r;
    rng_seed(&r, 4);
    int h17 = 0, h900 = 0;
    for (int n = 0; n < 2000; n++) {
        uint32_t row = emb_sample_row(t, &r);
        assert_true(row == r17 || row == r900);
        h17 += row == r17;
        h900 += row == r900;
    }
    assert_true(h17 > 800 && h900 > 800);
    /* all gone: the fallback */
    assert_int_equal(emb_expire(t, 100000, NULL, NULL, NULL), 2);
    assert_int_equal(emb_sample_row(t, &r), 0);
    emb_free(t);
}

/* ---- dirty entries ---------------------------------------------------- */

static void test_dirty(void **state)
{
    (void)state;
    emb_table_t *t = make_table(1, 1000);
    uint32_t e[10];
    for (int i = 0; i < 10; i++)
        e[i] = touch_int(t, i, i == 7 ? 0 : 5000);
    static const int marks[] = {0, 3, 5, 3, 7, 5, 0, 9};
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
        emb_mark_dirty(t, e[marks[i]]);
    assert_int_equal(emb_dirty_count(t), 5);

    /* expiring a dirty entry drops it from the dirty list */
    assert_int_equal(emb_expire(t, 5500, NULL, NULL, NULL), 1);
    assert_int_equal(emb_dirty_count(t), 4);

    uint32_t out[16];
    size_t got = emb_take_dirty(t, out, 3);
    assert_int_equal(got, 3);
    assert_int_equal(emb_dirty_count(t), 1);
    got += emb_take_dirty(t, out + got, 16);
    assert_int_equal(got, 4);
    assert_int_equal(emb_dirty_count(t), 0);
    assert_int_equal(emb_take_dirty(t, out + got, 16), 0);
    int want[10] = {0};
    want[0] = want[3] = want[5] = want[9] = 1;
    int seen[10] = {0};
    for (size_t i = 0; i < got; i++) {
        int which = -1;
        for (int j = 0; j < 10; j++)
            if (e[j] == out[i])
                which = j;
        assert_true(which >= 0);
        assert_true(want[which]);
        assert_int_equal(seen[which], 0); /* no duplicates */
        seen[which] = 1;
    }
    /* flags were cleared: marking again works, once */
    emb_mark_dirty(t, e[3]);
    emb_mark_dirty(t, e[3]);
    assert_int_equal(emb_dirty_count(t), 1);
    assert_int_equal(emb_take_dirty(t, out, 16), 1);
    assert_int_equal(out[0], e[3]);
    emb_free(t);
}

/* New entries: dirty and never taken since their id came. emb_take_new
 * hands each out once and leaves it dirty; an entry emb_take_dirty took is
 * no longer new; a gone entry is skipped, and its reuse by a new id is new
 * again; the list empties when the dirty list does. */
static void test_new_entries(void **state)
{
    (void)state;
    emb_table_t *t = make_table(1, 1000);
    uint32_t e[6], out[16];
    for (int i = 0; i < 6; i++)
        e[i] = touch_int(t, i, i == 5 ? 0 : 5000);
    for (int i = 0; i < 3; i++)
        emb_mark_dirty(t, e[i]);
    assert_int_equal(emb_new_count(t), 3);
    assert_int_equal(emb_take_new(t, out, 2), 2);
    assert_int_equal(out[0], e[2]); /* most recent first */
    assert_int_equal(out[1], e[1]);
    assert_int_equal(emb_dirty_count(t), 3); /* still dirty */
    emb_mark_dirty(t, e[1]);                 /* already dirty, taken once: not new again */
    assert_int_equal(emb_take_new(t, out, 16), 1);
    assert_int_equal(out[0], e[0]);
    assert_int_equal(emb_take_new(t, out, 16), 0);
    /* the dirty take returns all three; after it they are not new */
    assert_int_equal(emb_take_dirty(t, out, 16), 3);
    emb_mark_dirty(t, e[0]);
    assert_int_equal(emb_take_new(t, out, 16), 0);
    /* e[3] new, then taken by the dirty take: not new any more */
    emb_mark_dirty(t, e[3]);
    emb_mark_dirty(t, e[4]);
    size_t got = emb_take_dirty(t, out, 16);
    assert_int_equal(got, 3);              /* e[0], e[3], e[4] */
    assert_int_equal(emb_new_count(t), 0); /* emptied with the dirty list */
    assert_int_equal(emb_take_new(t, out, 16), 0);
    /* a new id's entry that goes before it is taken is skipped */
    emb_mark_dirty(t, e[5]);
    assert_int_equal(emb_expire(t, 5500, NULL, NULL, NULL), 1); /* e[5], last seen at 0 */
    assert_int_equal(emb_take_new(t, out, 16), 0);
    uint32_t f = touch_int(t, 100, 6000); /* may reuse e[5]'s entry: new */
    emb_mark_dirty(t, f);
    assert_int_equal(emb_take_new(t, out, 16), 1);
    assert_int_equal(out[0], f);
    emb_free(t);
}

/* ---- limits and stats ------------------------------------------------- */

static void test_max_id_len(void **state)
{
    (void)state;
    char id[EMB_MAX_ID_LEN + 2];
    memset(id, 'x', sizeof(id));
    emb_table_t *t = make_table(1, 0);
    static const struct {
        size_t len;
        int ok;
    } cases[] = {{EMB_MAX_ID_LEN + 1, 0}, {EMB_MAX_ID_LEN + 2, 0}, {EMB_MAX_ID_LEN, 1}, {1, 1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = cases[i].len;
        uint32_t e = emb_touch(t, id_hash(id, n), id, n, 0);
        if (cases[i].ok) {
            assert_int_not_equal(e, EMB_NONE);
            assert_int_equal(emb_find(t, id_hash(id, n), id, n), e);
            assert_entry_id(t, e, id, n);
        } else {
            assert_int_equal(e, EMB_NONE);
            assert_int_equal(emb_find(t, id_hash(id, n), id, n), EMB_NONE);
        }
    }
    emb_stats_t st;
    emb_stats(t, &st);
    assert_int_equal(st.entries, 2);
    emb_free(t);
}

/* Every new id of 8 bytes or more adds its bytes (its own block); shorter
 * ids live in their entries, and add only when the arrays grow. */
static void test_stats_bytes_grow(void **state)
{
    (void)state;
    emb_table_t *t = make_table(1, 0);
    emb_stats_t prev;
    emb_stats(t, &prev);
    assert_true(prev.bytes > 0);
    for (int round = 1; round <= 5; round++) {
        char id[32];
        for (int i = 0; i < 2000; i++) {
            snprintf(id, sizeof(id), "long-id-%d-%d", round, i);
            touch_str(t, id, 0);
        }
        emb_stats_t st;
        emb_stats(t, &st);
        assert_int_equal(st.rows, (size_t)round * 2000 + 1);
        assert_true(st.bytes > prev.bytes);
        prev = st;
    }
    emb_free(t);
}

/* keeps all but "1234567" and "12345678", the longest inline id and the
 * shortest id in a block */
static int keep_but_two(void *arg, uint32_t e)
{
    size_t len;
    const char *id = emb_entry_id(arg, e, &len);
    return !(len == 7 && memcmp(id, "1234567", 7) == 0) &&
           !(len == 8 && memcmp(id, "12345678", 8) == 0);
}

/* Ids on both sides of the inline limit (7 bytes kept in the entry, 8 and
 * more in a block): each is found, read back and survives removal of the
 * others and a save and load; the short ones add no id bytes. */
static void test_short_and_long_ids(void **state)
{
    (void)state;
    const char *ids[] = {"",          "a",       "1234567",  "12345678",
                         "123456789", "u999999", "u1000000", "a-much-longer-id-than-eight-bytes"};
    const int n = (int)(sizeof(ids) / sizeof(ids[0]));
    emb_table_t *t = make_table(1, 0);
    emb_stats_t st0, st1;
    touch_str(t, "w", 0); /* the entry array is made with room for 64 */
    emb_stats(t, &st0);
    uint32_t e[8];
    size_t heap = 0;
    for (int i = 0; i < n; i++) {
        e[i] = touch_str(t, ids[i], 0);
        assert_int_not_equal(e[i], EMB_NONE);
        heap += strlen(ids[i]) >= 8 ? strlen(ids[i]) + 1 : 0;
    }
    emb_stats(t, &st1);
    assert_int_equal(st1.bytes - st0.bytes, heap); /* no array grew for 8 more ids */
    for (int i = 0; i < n; i++) {
        assert_int_equal(emb_find(t, id_hash(ids[i], strlen(ids[i])), ids[i], strlen(ids[i])),
                         e[i]);
        assert_entry_id(t, e[i], ids[i], strlen(ids[i]));
        size_t len;
        assert_string_equal(emb_entry_id(t, e[i], &len), ids[i]); /* NUL terminated */
    }
    /* a near miss of the same length is not found */
    assert_int_equal(emb_find(t, id_hash("1234568", 7), "1234568", 7), EMB_NONE);

    /* removing a long id and a short one leaves the others as they were */
    assert_int_equal(emb_evict_lru(t, 0, 0, keep_but_two, NULL, t), 2);
    for (int i = 0; i < n; i++)
        if (i != 2 && i != 3)
            assert_entry_id(t, e[i], ids[i], strlen(ids[i]));

    harness_membuf_t m = {0};
    ser_writer_t w = {.write = harness_mem_write, .ctx = &m};
    assert_int_equal(emb_save(t, &w), 0);
    emb_table_t *b = make_table(1, 0);
    ser_reader_t r = {.read = harness_mem_read, .ctx = &m};
    char err[256];
    assert_int_equal(emb_load(b, &r, err, sizeof(err)), 0);
    for (int i = 0; i < n; i++)
        if (i != 2 && i != 3)
            assert_entry_id(b, e[i], ids[i], strlen(ids[i]));
    free(m.buf);
    emb_free(b);
    emb_free(t);
}

/* Eviction: past max, the least recently seen go first, down to low; a
 * kept entry stays whatever its age; gone() sees each id before it goes;
 * nothing happens at or under max. Ties in last-seen time are common (a
 * micro-batch shares one time): many entries share each time here. */
typedef struct {
    emb_table_t *t;
    int gone;
    int bad_id;
} evict_ctx_t;

static int keep_tens(void *arg, uint32_t e)
{
    size_t len;
    const char *id = emb_entry_id(((evict_ctx_t *)arg)->t, e, &len);
    return atoi(id) % 10 == 0;
}

static void count_gone(void *arg, uint32_t e)
{
    evict_ctx_t *c = arg;
    size_t len;
    const char *id = emb_entry_id(c->t, e, &len);
    c->gone++;
    c->bad_id += !(len > 0 && id[0] >= '0' && id[0] <= '9');
}

static void test_evict_lru(void **state)
{
    (void)state;
    emb_table_t *t = make_table(1, 0);
    rng_t r;
    rng_seed(&r, 17);
    enum { N = 5000 };
    static int64_t seen[N];
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d", i);
        seen[i] = (int64_t)rng_below(&r, 300); /* ~17 entries per time */
        emb_touch(t, id_hash(id, strlen(id)), id, strlen(id), seen[i]);
    }
    evict_ctx_t c = {t, 0, 0};
    assert_int_equal(emb_evict_lru(t, N, N - 100, keep_tens, count_gone, &c), 0); /* at max */
    size_t n = emb_evict_lru(t, 4000, 3000, keep_tens, count_gone, &c);
    assert_int_equal(n, N - 3000);
    assert_int_equal(c.gone, (int)n);
    assert_int_equal(c.bad_id, 0);
    emb_stats_t st;
    emb_stats(t, &st);
    assert_int_equal(st.entries, 3000);
    assert_int_equal(st.evicted, n);
    /* every kept one is there; of the others, none gone is newer than one kept */
    int64_t newest_gone = -1, oldest_left = INT64_MAX;
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d", i);
        int here = emb_find(t, id_hash(id, strlen(id)), id, strlen(id)) != EMB_NONE;
        if (i % 10 == 0) {
            assert_true(here);
            continue;
        }
        if (here && seen[i] < oldest_left)
            oldest_left = seen[i];
        if (!here && seen[i] > newest_gone)
            newest_gone = seen[i];
    }
    assert_true(newest_gone <= oldest_left);
    /* more kept than low allows: it stops at what it may remove */
    n = emb_evict_lru(t, 100, 50, keep_tens, count_gone, &c);
    emb_stats(t, &st);
    assert_int_equal(st.entries, N / 10);
    assert_int_equal(n, 3000 - N / 10);
    emb_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rejects_bad_config),
        cmocka_unit_test(test_fresh_table),
        cmocka_unit_test(test_string_ids),
        cmocka_unit_test(test_integer_ids),
        cmocka_unit_test(test_many_ids_grow),
        cmocka_unit_test(test_same_hash_different_ids),
        cmocka_unit_test(test_admission),
        cmocka_unit_test(test_admission_after_three),
        cmocka_unit_test(test_expire_basic),
        cmocka_unit_test(test_expire_disabled),
        cmocka_unit_test(test_expire_keep_veto),
        cmocka_unit_test(test_evict_lru),
        cmocka_unit_test(test_expire_random_real_hashes),
        cmocka_unit_test(test_expire_random_clustered_hashes),
        cmocka_unit_test(test_sample_row_admitted_live_only),
        cmocka_unit_test(test_sample_row_mostly_free),
        cmocka_unit_test(test_dirty),
        cmocka_unit_test(test_new_entries),
        cmocka_unit_test(test_max_id_len),
        cmocka_unit_test(test_stats_bytes_grow),
        cmocka_unit_test(test_short_and_long_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
