/* test_mlfeat.c — MovieLens user and item features (data/mlfeat.c) from
 * small files written here (the real data set is not needed), in ML-100k's
 * form (u.user, u.item) and ML-1M's (users.dat, movies.dat): the values of
 * every field for ids of the data set, the same item described in either
 * form giving the same features, ids absent from the data set ignored, a
 * malformed line, an unknown genre and a missing file refused with a
 * message naming them. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mlfeat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64], dir1m[64]; /* ML-100k's files; ML-1M's */

static void write_in(const char *d, const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", d, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void write_file(const char *name, const char *text)
{
    write_in(dir, name, text);
}

static void remove_in(const char *d, const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", d, name);
    unlink(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/fr-mlfeat-XXXXXX");
    snprintf(dir1m, sizeof(dir1m), "/tmp/fr-mlfeat-1m-XXXXXX");
    return mkdtemp(dir) && mkdtemp(dir1m) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    remove_in(dir, "u.user");
    remove_in(dir, "u.item");
    rmdir(dir);
    remove_in(dir1m, "users.dat");
    remove_in(dir1m, "movies.dat");
    rmdir(dir1m);
    return 0;
}

static void make_dataset(dataset_t *d)
{
    dataset_init(d);
    assert_int_equal(dataset_add(d, "2", 1, "7", 1, 1000), 0);
    assert_int_equal(dataset_add(d, "5", 1, "3", 1, 2000), 0);
}

static void test_values(void **state)
{
    (void)state;
    write_file("u.user", "2|53|F|other|94043\n5|33|F|other|15213\n9|29|M|student|01002\n");
    write_file("u.item", "3|Four Rooms (1995)|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|0|0|0|0|0|0|"
                         "0|0|1|0|0\n"
                         "7|Twelve Monkeys (1995)||||0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1|1|0|0\n");
    dataset_t d;
    make_dataset(&d);
    mlfeat_t f;
    char err[256];
    if (mlfeat_load(&f, &d, dir, err, sizeof(err)))
        fail_msg("mlfeat_load: %s", err);
    assert_int_equal(f.users_found, 2); /* user 9 has no interactions */
    assert_int_equal(f.items_found, 2);
    /* user "2" is the data set's user 0 */
    const lrn_feat_t *u = f.uf;
    assert_int_equal(f.nuf[0], MLF_UCAT);
    assert_string_equal(u[0].id, "F");
    assert_string_equal(u[1].id, "other");
    assert_string_equal(u[2].id, "5"); /* age 53: the fifties */
    assert_string_equal(u[3].id, "9");
    for (int k = 0; k < MLF_UCAT; k++) {
        assert_int_equal(u[k].side, 'u');
        assert_int_equal(u[k].field, k);
        assert_int_equal(u[k].dense, 0);
        assert_int_equal(u[k].len, strlen(u[k].id));
    }
    /* item "3" is the data set's item 1: thriller (flag 16), 1995 */
    const lrn_feat_t *it = f.itf + (size_t)1 * (MLF_ICAT + MLF_INUM);
    assert_int_equal(f.nif[1], MLF_ICAT + MLF_INUM);
    assert_string_equal(it[0].id, "0000000000000000100");
    assert_int_equal(it[1].dense, 1);
    assert_float_equal(it[1].num, 1995.0f, 0.0f);
    for (int g = 0; g < 19; g++) {
        assert_int_equal(it[2 + g].field, 1 + g);
        assert_float_equal(it[2 + g].num, g == 16 ? 1.0f : 0.0f, 0.0f);
    }
    /* item "7": no release date, so its year is not finite (skipped) */
    it = f.itf;
    assert_false(isfinite(it[1].num));
    assert_string_equal(it[0].id, "0000000000000001100");
    mlfeat_free(&f);
    dataset_free(&d);
}

static void test_errors(void **state)
{
    (void)state;
    dataset_t d;
    make_dataset(&d);
    mlfeat_t f;
    char err[256] = "";
    write_file("u.user", "2|53|F|other\n");
    assert_int_equal(mlfeat_load(&f, &d, dir, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "u.user:1"));
    write_file("u.user", "2|53|F|other|94043\n");
    write_file("u.item", "3|x|01-Jan-1995||url|0|1\n");
    assert_int_equal(mlfeat_load(&f, &d, dir, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "u.item:1"));
    assert_int_equal(mlfeat_load(&f, &d, "/nonexistent-dir", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent-dir/u.user"));
    dataset_free(&d);
}

/* ML-1M's form: the same fields. User "2": F, age group 50, occupation 13
 * (ML-1M's codes are kept as they are); items "3" and "7" as in test_values,
 * named by genre, the year from the title: the same item features as u.item
 * gives them. */
static void test_values_1m(void **state)
{
    (void)state;
    write_in(dir1m, "users.dat", "2::F::50::13::94043\n5::F::25::0::15213\n9::M::18::4::01002\n");
    write_in(dir1m, "movies.dat",
             "1::Toy Story (1995)::Animation|Children's|Comedy\n"
             "3::Four Rooms (1995)::Thriller\n"
             "7::Twelve Monkeys::Sci-Fi|Thriller\r\n");
    dataset_t d;
    make_dataset(&d);
    mlfeat_t f;
    char err[256];
    if (mlfeat_load(&f, &d, dir1m, err, sizeof(err)))
        fail_msg("mlfeat_load: %s", err);
    assert_non_null(strstr(f.format, "users.dat"));
    assert_int_equal(f.users_found, 2); /* user 9 has no interactions, item 1 none */
    assert_int_equal(f.items_found, 2);
    const lrn_feat_t *u = f.uf;
    assert_int_equal(f.nuf[0], MLF_UCAT);
    assert_string_equal(u[0].id, "F");
    assert_string_equal(u[1].id, "13");
    assert_string_equal(u[2].id, "50");
    assert_string_equal(u[3].id, "9");
    for (int k = 0; k < MLF_UCAT; k++) {
        assert_int_equal(u[k].side, 'u');
        assert_int_equal(u[k].field, k);
        assert_int_equal(u[k].dense, 0);
        assert_int_equal(u[k].len, strlen(u[k].id));
    }
    u = f.uf + (size_t)1 * (MLF_UCAT + MLF_UNUM); /* user "5" */
    assert_string_equal(u[1].id, "0");
    assert_string_equal(u[2].id, "25");
    assert_string_equal(u[3].id, "1");

    /* the same two items from u.item */
    write_file("u.user", "2|53|F|other|94043\n5|33|F|other|15213\n");
    write_file("u.item", "3|Four Rooms (1995)|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|0|0|0|0|0|0|"
                         "0|0|1|0|0\n"
                         "7|Twelve Monkeys (1995)||||0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1|1|0|0\n");
    mlfeat_t g;
    if (mlfeat_load(&g, &d, dir, err, sizeof(err)))
        fail_msg("mlfeat_load: %s", err);
    assert_non_null(strstr(g.format, "u.user"));
    for (int i = 0; i < 2; i++) {
        const lrn_feat_t *a = f.itf + (size_t)i * (MLF_ICAT + MLF_INUM);
        const lrn_feat_t *b = g.itf + (size_t)i * (MLF_ICAT + MLF_INUM);
        assert_int_equal(f.nif[i], MLF_ICAT + MLF_INUM);
        assert_int_equal(f.nif[i], g.nif[i]);
        assert_string_equal(a[0].id, b[0].id);
        assert_int_equal(a[0].h, b[0].h);
        for (int k = 1; k < MLF_ICAT + MLF_INUM; k++) {
            assert_int_equal(a[k].side, b[k].side);
            assert_int_equal(a[k].field, b[k].field);
            assert_int_equal(a[k].dense, 1);
            if (isfinite(b[k].num))
                assert_float_equal(a[k].num, b[k].num, 0.0f);
            else
                assert_false(isfinite(a[k].num));
        }
    }
    assert_string_equal(f.itf[MLF_ICAT + MLF_INUM].id, "0000000000000000100"); /* item "3" */
    assert_float_equal(f.itf[MLF_ICAT + MLF_INUM + 1].num, 1995.0f, 0.0f);
    assert_false(isfinite(f.itf[1].num)); /* "7": no year in its title */
    mlfeat_free(&f);
    mlfeat_free(&g);
    dataset_free(&d);
}

static void test_errors_1m(void **state)
{
    (void)state;
    static const struct {
        const char *users, *movies; /* NULL: no such file */
        const char *want;           /* in the message */
    } cases[] = {
        {"2::F::50::13\n", "3::x (1995)::Drama\n", "users.dat:1: expected UserID::Gender"},
        {"2::F::50::13::94043\n", "3::x (1995)::Drama\n7::y::IMAX|Drama\n",
         "movies.dat:2: unknown genre 'IMAX'"},
        {"2::F::50::13::94043\n", "3::x (1995)\n", "movies.dat:1: expected MovieID::Title::Genres"},
        {"2::F::50::13::94043\n", NULL, "movies.dat: No such file"},
        {NULL, "3::x (1995)::Drama\n", "users.dat: No such file"},
        {NULL, NULL, "users.dat"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        remove_in(dir1m, "users.dat");
        remove_in(dir1m, "movies.dat");
        if (cases[c].users)
            write_in(dir1m, "users.dat", cases[c].users);
        if (cases[c].movies)
            write_in(dir1m, "movies.dat", cases[c].movies);
        dataset_t d;
        make_dataset(&d);
        mlfeat_t f;
        char err[512] = "";
        assert_int_equal(mlfeat_load(&f, &d, dir1m, err, sizeof(err)), -1);
        if (!strstr(err, cases[c].want))
            fail_msg("case %zu: '%s' does not say '%s'", c, err, cases[c].want);
        dataset_free(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_values_1m),
        cmocka_unit_test(test_errors_1m),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
