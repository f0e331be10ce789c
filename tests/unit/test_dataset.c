/* test_dataset.c — unit tests of the CLI's interaction files (data/dataset.c):
 * loading MovieLens-style files (tab, space, "::" and comma forms, a header
 * detected, CRLF, comments, seconds to ms, errors naming the line), the
 * stable sort by time, the leave-one-out split, the synthetic generator, and
 * write → load round trips. The planted change of generated streams is in
 * test_dataset_plant.c. Not for: the daemon's wire format (proto/). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"
#include "id.h"
#include "rng.h"

/* ---- helpers ---------------------------------------------------------- */

/* Writes text to a new temporary file; its path goes to path (≥ 64 bytes). */
static void write_temp(char *path, const char *text)
{
    strcpy(path, "/tmp/freshrec-test-dataset-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Loads path into d and removes the file straight away, so that a failing
 * assertion leaves no temporary file behind. */
static int load_temp(dataset_t *d, const char *path, char *err, size_t len)
{
    int rc = dataset_load(d, path, err, len);
    unlink(path);
    return rc;
}

static const char *user_of(const dataset_t *d, size_t i)
{
    return d->users[d->ev[i].user].id;
}

static const char *item_of(const dataset_t *d, size_t i)
{
    return d->items[d->ev[i].item].id;
}

static void add(dataset_t *d, const char *u, const char *i, int64_t ts)
{
    assert_int_equal(dataset_add(d, u, strlen(u), i, strlen(i), ts), 0);
}

typedef struct {
    const char *user, *item;
    int64_t ts_ms;
} want_t;

static void assert_events(const dataset_t *d, const want_t *w, size_t n)
{
    assert_int_equal(d->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(user_of(d, i), w[i].user);
        assert_string_equal(item_of(d, i), w[i].item);
        assert_int_equal(d->ev[i].ts_ms, w[i].ts_ms);
    }
}

/* ---- loading ---------------------------------------------------------- */

static void test_load_forms(void **state)
{
    (void)state;
    static const want_t ml[] = {{"196", "242", 881250949000LL},
                                {"186", "302", 891717742000LL},
                                {"196", "377", 878887116000LL}};
    static const struct {
        const char *name, *text;
    } cases[] = {
        {"tab (u.data)",
         "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t377\t1\t878887116\n"},
        {"comments and blank lines",
         "# user item rating ts\n196\t242\t3\t881250949\n\n#196\t1\t1\t1\n"
         "186\t302\t3\t891717742\n196\t377\t1\t878887116"},
        {"spaces", "196 242 3 881250949\n186  302 3   891717742\n196\t377 1\t878887116\n"},
        {"CRLF", "196\t242\t3\t881250949\r\n186\t302\t3\t891717742\r\n196\t377\t1\t878887116\r\n"},
        {":: (ratings.dat)", "196::242::3::881250949\n186::302::3::891717742\n# c\n"
                             "196::377::1::878887116\n"},
        {"extra fields ignored", "196\t242\t3\t881250949\tx\n186\t302\t3\t891717742\ty\n"
                                 "196\t377\t1\t878887116\n"},
        {"comma with a header (ratings.csv)",
         "userId,movieId,rating,timestamp\n196,242,3.0,881250949\n"
         "186,302,3.0,891717742\n196,377,1.0,878887116\n"},
        {"comma, header, CRLF", "userId,movieId,rating,timestamp\r\n196,242,3.0,881250949\r\n"
                                "186,302,3.0,891717742\r\n196,377,1.0,878887116\r\n"},
        {"comma without a header", "196,242,3.0,881250949\n186,302,3.0,891717742\n"
                                   "196,377,1.0,878887116\n"},
        {"comma: comments, blanks, byte order mark",
         "\xEF\xBB\xBF# ratings\nuser , item,rating , ts\n\n196 , 242,3 ,881250949 \n"
         "# 1,2,3,4\n186,302,3,891717742,extra\n  \r\n196,377,1,878887116"},
        {"header of another tab file", "user\titem\trating\tts\n196\t242\t3\t881250949\n"
                                       "186\t302\t3\t891717742\n196\t377\t1\t878887116\n"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char path[64], err[512] = "";
        write_temp(path, cases[c].text);
        dataset_t d;
        dataset_init(&d);
        int rc = load_temp(&d, path, err, sizeof(err));
        if (rc != 0)
            print_message("%s: %s\n", cases[c].name, err);
        assert_int_equal(rc, 0);
        assert_events(&d, ml, 3);
        /* ids are interned once, with their hash */
        assert_int_equal(d.nusers, 2);
        assert_int_equal(d.nitems, 3);
        assert_int_equal(d.ev[0].user, d.ev[2].user);
        for (size_t u = 0; u < d.nusers; u++) {
            assert_int_equal(d.users[u].len, strlen(d.users[u].id));
            assert_true(d.users[u].h == id_hash(d.users[u].id, d.users[u].len));
        }
        dataset_free(&d);
    }
}

static void test_load_ratings_dat(void **state)
{
    (void)state;
    static const want_t w[] = {{"1", "1193", 978300760000LL},
                               {"1", "661", 978302109000LL},
                               {"2", "1193", 978298413000LL},
                               {"10", "3408", 978224375000LL}};
    char path[64], err[512] = "";
    write_temp(path, "1::1193::5::978300760\n1::661::3::978302109\n"
                     "2::1193::4::978298413\n10::3408::4::978224375\n");
    dataset_t d;
    dataset_init(&d);
    assert_int_equal(load_temp(&d, path, err, sizeof(err)), 0);
    assert_events(&d, w, 4);
    assert_int_equal(d.nusers, 3);
    assert_int_equal(d.nitems, 3);
    dataset_free(&d);
}

/* Seconds become ms; values already in ms (≥ 10^11) are kept. */
static void test_load_timestamp_units(void **state)
{
    (void)state;
    static const struct {
        const char *ts;
        int64_t ms;
    } cases[] = {{"0", 0},
                 {"1", 1000},
                 {"881250949", 881250949000LL},
                 {"99999999999", 99999999999000LL},
                 {"1764486000123", 1764486000123LL}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char text[128], path[64], err[512] = "";
        snprintf(text, sizeof(text), "u\ti\t1\t%s\n", cases[c].ts);
        write_temp(path, text);
        dataset_t d;
        dataset_init(&d);
        assert_int_equal(load_temp(&d, path, err, sizeof(err)), 0);
        assert_int_equal(d.n, 1);
        assert_int_equal(d.ev[0].ts_ms, cases[c].ms);
        dataset_free(&d);
    }
}

static void test_load_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *where; /* where: the "path:line:" suffix expected in the error */
    } cases[] = {
        {"1\t2\t5\t100\n1\t3\t5\t101\n1\t4\t5\n", ":3:"},   /* three fields */
        {"# c\n1\t2\t5\tabc\n", ":2:"},                     /* not a number */
        {"1\t2\t5\t100\n1\t2\t5\t-5\n", ":2:"},             /* negative */
        {"1\t2\t5\t12x\n", ":1:"},                          /* trailing junk */
        {"1::2::5\n", ":1:"},                               /* :: form, three fields */
        {"1\t2\t5\t100\n\n\n# c\nonly-one-field\n", ":5:"}, /* counted past blanks */
        /* comma-separated */
        {"userId,movieId,rating,timestamp\r\n1,2,4.0,100\r\n1,2,4.0\r\n", ":3:"}, /* 3 fields */
        {"1,2,4.0,100\nuserId,movieId,rating,timestamp\n", ":2:"}, /* a header, not first */
        {"1,2,4.0,abc\n", ":1:"},                                  /* numbers around: no header */
        {"u,i,r,t\nu,i,r,t\n", ":2:"},                             /* a second header */
        {"1,,4.0,100\n", ":1:"},                                   /* an empty item */
        {"1,2,4.0,\r\n", ":1:"},                                   /* an empty timestamp */
        {"1,2,4.0,1e9\n", ":1:"},                                  /* not an integer */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char path[64], err[512] = "";
        write_temp(path, cases[c].text);
        dataset_t d;
        dataset_init(&d);
        assert_int_equal(load_temp(&d, path, err, sizeof(err)), -1);
        char want[128];
        snprintf(want, sizeof(want), "%s%s", path, cases[c].where);
        if (!strstr(err, want))
            print_message("case %zu: error '%s' does not name '%s'\n", c, err, want);
        assert_non_null(strstr(err, want));
        dataset_free(&d);
    }

    /* no file; a file of comments only */
    char err[512] = "";
    dataset_t d;
    dataset_init(&d);
    assert_int_equal(dataset_load(&d, "/nonexistent/freshrec/x.tsv", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/freshrec/x.tsv"));
    char path[64];
    write_temp(path, "# nothing here\n\n");
    err[0] = '\0';
    assert_int_equal(load_temp(&d, path, err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
    dataset_free(&d);
}

/* A comma-separated file's errors say what is wrong with the line; a header
 * alone is a file without interactions. */
static void test_load_csv_messages(void **state)
{
    (void)state;
    static const struct {
        const char *text, *says;
    } cases[] = {
        {"userId,movieId,rating,timestamp\n1,2,4.0,100\n1,2\n",
         ":3: expected 4 non-empty comma-separated fields (user,item,rating,ts), got 2"},
        {"1,2,4.0,100\n1,2,4.0,1.5e9\n", ":2: timestamp '1.5e9' is not a non-negative integer"},
        {"1,2,4.0,100\nuserId,movieId,rating,timestamp\n",
         ":2: timestamp 'timestamp' is not a non-negative integer"},
        {"1,2,4.0,100\n1, ,4.0,101\n",
         ":2: the item field is empty (expected 4 non-empty comma-separated fields "
         "(user,item,rating,ts))"},
        {"userId,movieId,rating,timestamp\r\n", ": no interactions"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char path[64], err[512] = "";
        write_temp(path, cases[c].text);
        dataset_t d;
        dataset_init(&d);
        assert_int_equal(load_temp(&d, path, err, sizeof(err)), -1);
        char want[256];
        snprintf(want, sizeof(want), "%s%s", path, cases[c].says);
        if (strcmp(err, want) != 0)
            print_message("case %zu: error '%s', want '%s'\n", c, err, want);
        assert_string_equal(err, want);
        dataset_free(&d);
    }

    /* each line is split by its own separator: a file may mix them */
    char path[64], err[512] = "";
    write_temp(path, "# user item rating ts\n1,2,4.0,100\n1\t3\t4\t101\n2::3::5::102\n");
    dataset_t d;
    dataset_init(&d);
    assert_int_equal(load_temp(&d, path, err, sizeof(err)), 0);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.nusers, 2);
    assert_int_equal(d.nitems, 2);
    dataset_free(&d);
}

/* ---- sort and leave-one-out ------------------------------------------- */

static void test_sort_by_time_is_stable(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 3, 17, 1000, 4099};
    rng_t g;
    rng_seed(&g, 9);
    for (size_t c = 0; c < sizeof(sizes) / sizeof(sizes[0]); c++) {
        size_t n = sizes[c];
        dataset_t d;
        dataset_init(&d);
        /* item i is the i-th line; few distinct times, so many ties */
        for (size_t i = 0; i < n; i++) {
            char it[24];
            id_from_int((int64_t)i, it);
            add(&d, "u", it, (int64_t)rng_below(&g, 10) * 1000);
        }
        dataset_sort_by_time(&d);
        assert_int_equal(d.n, n);
        uint8_t *seen = calloc(n + 1, 1);
        assert_non_null(seen);
        for (size_t i = 0; i < n; i++) {
            assert_true(d.ev[i].item < n);
            assert_int_equal(seen[d.ev[i].item], 0); /* a permutation */
            seen[d.ev[i].item] = 1;
            if (i > 0) {
                assert_true(d.ev[i - 1].ts_ms <= d.ev[i].ts_ms);
                if (d.ev[i - 1].ts_ms == d.ev[i].ts_ms) /* ties keep file order */
                    assert_true(d.ev[i - 1].item < d.ev[i].item);
            }
        }
        free(seen);
        dataset_free(&d);
    }
}

static void test_loo_table(void **state)
{
    (void)state;
    dataset_t d;
    dataset_init(&d);
    /* time-sorted: a has 3 events, b has 1, c has 2 with a tie at the end */
    add(&d, "a", "x", 1); /* 0 */
    add(&d, "b", "x", 2); /* 1 */
    add(&d, "c", "y", 3); /* 2 */
    add(&d, "a", "y", 4); /* 3 */
    add(&d, "c", "z", 5); /* 4 */
    add(&d, "c", "w", 5); /* 5: same time, later in file: the held one */
    add(&d, "a", "z", 6); /* 6 */
    add(&d, "d", "z", 7); /* 7 */
    size_t *held = NULL, *train = NULL, ntrain = 0;
    assert_int_equal(dataset_loo(&d, &held, &train, &ntrain), 0);
    /* users are interned in order: a=0, b=1, c=2, d=3 */
    assert_int_equal(held[0], 6);
    assert_int_equal(held[1], SIZE_MAX);
    assert_int_equal(held[2], 5);
    assert_int_equal(held[3], SIZE_MAX);
    static const size_t want[] = {0, 1, 2, 3, 4, 7};
    assert_int_equal(ntrain, 6);
    for (size_t i = 0; i < ntrain; i++)
        assert_int_equal(train[i], want[i]);
    free(held);
    free(train);
    dataset_free(&d);
}

static void test_loo_random_vs_brute(void **state)
{
    (void)state;
    dataset_t d;
    dataset_init(&d);
    rng_t g;
    rng_seed(&g, 10);
    for (int i = 0; i < 5000; i++) {
        char u[24], it[24];
        /* skewed users: many with one event, some with many */
        id_from_int(rng_below(&g, 2) ? rng_below(&g, 50) : rng_below(&g, 3000), u);
        id_from_int(rng_below(&g, 200), it);
        add(&d, u, it, (int64_t)rng_below(&g, 500) * 1000);
    }
    dataset_sort_by_time(&d);
    size_t *held = NULL, *train = NULL, ntrain = 0;
    assert_int_equal(dataset_loo(&d, &held, &train, &ntrain), 0);
    size_t *cnt = calloc(d.nusers, sizeof(size_t));
    size_t *last = malloc(sizeof(size_t) * d.nusers);
    assert_non_null(cnt);
    assert_non_null(last);
    for (size_t i = 0; i < d.n; i++) {
        cnt[d.ev[i].user]++;
        last[d.ev[i].user] = i;
    }
    size_t nheld = 0, singles = 0;
    for (size_t u = 0; u < d.nusers; u++) {
        if (cnt[u] >= 2) {
            assert_int_equal(held[u], last[u]);
            assert_int_equal(d.ev[held[u]].user, u);
            nheld++;
        } else {
            assert_int_equal(held[u], SIZE_MAX);
            singles++;
        }
    }
    assert_true(singles > 100 && nheld > 50); /* both kinds were there */
    assert_int_equal(ntrain + nheld, d.n);
    size_t j = 0;
    for (size_t i = 0; i < d.n; i++) {
        if (held[d.ev[i].user] == i)
            continue;
        assert_int_equal(train[j], i); /* everything else, in order */
        j++;
    }
    assert_int_equal(j, ntrain);
    free(cnt);
    free(last);
    free(held);
    free(train);
    dataset_free(&d);
}

/* ---- generator -------------------------------------------------------- */

static void small_gen(gen_config_t *c, uint64_t seed)
{
    gen_config_default(c);
    c->users = 300;
    c->items = 500;
    c->events = 20000;
    c->seed = seed;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void test_generate(void **state)
{
    (void)state;
    gen_config_t c;
    small_gen(&c, 5);
    char err[256] = "";
    dataset_t a, b, o;
    dataset_init(&a);
    dataset_init(&b);
    dataset_init(&o);
    assert_int_equal(dataset_generate(&a, &c, err, sizeof(err)), 0);
    assert_int_equal(dataset_generate(&b, &c, err, sizeof(err)), 0);
    c.seed = 6;
    assert_int_equal(dataset_generate(&o, &c, err, sizeof(err)), 0);

    /* the requested sizes */
    assert_int_equal(a.n, 20000);
    assert_true(a.nusers <= 300 && a.nusers > 250);
    assert_true(a.nitems <= 500 && a.nitems > 250);
    for (size_t u = 0; u < a.nusers; u++) {
        long v = atol(a.users[u].id);
        assert_true(v >= 1 && v <= 300);
    }
    for (size_t i = 0; i < a.nitems; i++) {
        long v = atol(a.items[i].id);
        assert_true(v >= 1 && v <= 500);
    }
    /* deterministic for a seed, different for another */
    assert_int_equal(b.n, a.n);
    size_t differ = 0;
    for (size_t i = 0; i < a.n; i++) {
        assert_string_equal(user_of(&a, i), user_of(&b, i));
        assert_string_equal(item_of(&a, i), item_of(&b, i));
        assert_int_equal(a.ev[i].ts_ms, b.ev[i].ts_ms);
        differ += strcmp(item_of(&a, i), item_of(&o, i)) != 0;
    }
    assert_true(differ > a.n / 2);
    /* timestamps increase, in whole seconds */
    for (size_t i = 1; i < a.n; i++) {
        assert_true(a.ev[i].ts_ms > a.ev[i - 1].ts_ms);
        assert_int_equal(a.ev[i].ts_ms % 1000, 0);
    }
    /* popularity is skewed: the top item far above the median one */
    uint32_t *cnt = calloc(c.items, sizeof(uint32_t));
    assert_non_null(cnt);
    for (size_t i = 0; i < a.n; i++)
        cnt[atol(item_of(&a, i)) - 1]++;
    qsort(cnt, c.items, sizeof(uint32_t), cmp_u32);
    uint32_t top = cnt[c.items - 1], median = cnt[c.items / 2];
    print_message("generated: top item %u events, median %u\n", top, median);
    assert_true(top >= 5 * (median ? median : 1));
    free(cnt);
    dataset_free(&a);
    dataset_free(&b);
    dataset_free(&o);
}

static void test_generate_rejects_bad_config(void **state)
{
    (void)state;
    static const struct {
        uint32_t users, items, topics;
        uint64_t events;
        double zipf, focus;
    } bad[] = {{0, 100, 4, 10, 0.6, 0.8},  {10, 3, 4, 10, 0.6, 0.8},  {10, 100, 0, 10, 0.6, 0.8},
               {10, 100, 4, 0, 0.6, 0.8},  {10, 100, 4, 10, -1, 0.8}, {10, 100, 4, 10, 0.6, 1.5},
               {10, 100, 4, 10, 0.6, -0.1}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gen_config_t c;
        gen_config_default(&c);
        c.users = bad[i].users;
        c.items = bad[i].items;
        c.topics = bad[i].topics;
        c.events = bad[i].events;
        c.zipf = bad[i].zipf;
        c.focus = bad[i].focus;
        char err[256] = "";
        dataset_t d;
        dataset_init(&d);
        assert_int_equal(dataset_generate(&d, &c, err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
        assert_int_equal(d.n, 0);
        dataset_free(&d);
    }
}

/* ---- write → load ----------------------------------------------------- */

static void test_write_load_round_trip(void **state)
{
    (void)state;
    gen_config_t c;
    small_gen(&c, 11);
    char err[256] = "";
    dataset_t a;
    dataset_init(&a);
    assert_int_equal(dataset_generate(&a, &c, err, sizeof(err)), 0);
    /* string ids too, not only generated integers */
    add(&a, "alice", "item:42", 1764486000LL * 1000 + 999999000LL);

    char path[64];
    write_temp(path, "");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(dataset_write(&a, f), 0);
    assert_int_equal(fclose(f), 0);

    dataset_t b;
    dataset_init(&b);
    assert_int_equal(load_temp(&b, path, err, sizeof(err)), 0);
    assert_int_equal(b.n, a.n);
    assert_int_equal(b.nusers, a.nusers);
    assert_int_equal(b.nitems, a.nitems);
    for (size_t i = 0; i < a.n; i++) {
        assert_string_equal(user_of(&b, i), user_of(&a, i));
        assert_string_equal(item_of(&b, i), item_of(&a, i));
        assert_int_equal(b.ev[i].ts_ms, a.ev[i].ts_ms);
        /* first appearance interns in the same order */
        assert_int_equal(b.ev[i].user, a.ev[i].user);
        assert_int_equal(b.ev[i].item, a.ev[i].item);
    }
    dataset_free(&a);
    dataset_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_forms),
        cmocka_unit_test(test_load_ratings_dat),
        cmocka_unit_test(test_load_timestamp_units),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_load_csv_messages),
        cmocka_unit_test(test_sort_by_time_is_stable),
        cmocka_unit_test(test_loo_table),
        cmocka_unit_test(test_loo_random_vs_brute),
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_generate_rejects_bad_config),
        cmocka_unit_test(test_write_load_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
