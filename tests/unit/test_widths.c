/* test_widths.c — the one parser of layer-width lists (learner/widths.c):
 * good lists with their widths, bad ones with the message naming the bad
 * element or the count, and nothing written on error. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "widths.h"

#include <string.h>

static void test_widths(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int min_n, max_n;
        int n;           /* widths parsed, when good */
        int w[8];        /* ... and them */
        const char *err; /* NULL: good; else the whole message */
    } cases[] = {
        {"64,32,16,8", 2, 8, 4, {64, 32, 16, 8}, NULL},
        {"128", 1, 8, 1, {128}, NULL},
        {"1,4096", 1, 8, 2, {1, 4096}, NULL},
        {" 64 , 32 ", 1, 8, 2, {64, 32}, NULL}, /* blanks around elements */
        {"64,\t32", 1, 8, 2, {64, 32}, NULL},
        {"", 0, 8, 0, {0}, NULL}, /* no widths, where none may do (deep) */
        {"  ", 0, 8, 0, {0}, NULL},
        {"8,8,8,8,8,8,8,8", 1, 8, 8, {8, 8, 8, 8, 8, 8, 8, 8}, NULL},
        {"", 1, 8, 0, {0}, "0 widths, 1..8 expected"},
        {"64", 2, 8, 0, {0}, "1 width, 2..8 expected"},
        {"8,8,8,8,8,8,8,8,8", 1, 8, 0, {0}, "more than 8 widths"},
        {"64,x,8", 1, 8, 0, {0}, "element 2 ('x') is not a width, an integer in [1, 4096]"},
        {"64,0", 1, 8, 0, {0}, "element 2 ('0') is not a width, an integer in [1, 4096]"},
        {"4097", 1, 8, 0, {0}, "element 1 ('4097') is not a width, an integer in [1, 4096]"},
        {"99999999999999999999",
         1,
         8,
         0,
         {0},
         "element 1 ('99999999999999999999') is not a width, an integer in [1, 4096]"},
        {"-8", 1, 8, 0, {0}, "element 1 ('-8') is not a width, an integer in [1, 4096]"},
        {"+8", 1, 8, 0, {0}, "element 1 ('+8') is not a width, an integer in [1, 4096]"},
        {"6 4", 1, 8, 0, {0}, "element 1 ('6 4') is not a width, an integer in [1, 4096]"},
        {"64x", 1, 8, 0, {0}, "element 1 ('64x') is not a width, an integer in [1, 4096]"},
        {"64.5", 1, 8, 0, {0}, "element 1 ('64.5') is not a width, an integer in [1, 4096]"},
        {"64,,32", 1, 8, 0, {0}, "element 2 is empty"},
        {"64,32,", 1, 8, 0, {0}, "element 3 is empty"},
        {",64", 1, 8, 0, {0}, "element 1 is empty"},
        {"64, ,32", 1, 8, 0, {0}, "element 2 is empty"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int w[8] = {-1, -1, -1, -1, -1, -1, -1, -1}, n = -1;
        char err[256] = "";
        int rc = widths_parse(cases[i].s, cases[i].min_n, cases[i].max_n, w, &n, err, sizeof(err));
        if (cases[i].err) {
            if (rc != -1 || strcmp(err, cases[i].err) != 0)
                fail_msg("case %zu '%s': rc %d, \"%s\" (want \"%s\")", i, cases[i].s, rc, err,
                         cases[i].err);
            assert_int_equal(n, -1); /* nothing written */
            assert_int_equal(w[0], -1);
        } else {
            if (rc != 0)
                fail_msg("case %zu '%s': refused: %s", i, cases[i].s, err);
            assert_int_equal(n, cases[i].n);
            assert_memory_equal(w, cases[i].w, sizeof(int) * (size_t)n);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_widths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
