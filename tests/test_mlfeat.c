/* test_mlfeat.c — MovieLens user and item features (daemon/mlfeat.c) from
 * small files written here (the real data set is not needed): the values of
 * every field for ids of the data set, ids absent from the data set ignored,
 * a malformed line and a missing file refused with a message naming them. */
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

static char dir[64];

static void write_file(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/fr-mlfeat-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/u.user", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/u.item", dir);
    unlink(path);
    rmdir(dir);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
