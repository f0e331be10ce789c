/* test_ctrdata.c — unit tests of the CLI's click-through data
 * (data/ctrdata.c): reading the Criteo forms (original TSV, Kaggle CSV with
 * an Id column, DeepCTR's CSV), the generic form with its '# freshrec ctr'
 * line, interning, errors naming path:line, the synthetic stream (determinism,
 * sizes, click rate, the planted interaction) and write → load round trips.
 * The rows here are made up in the real files' layout: tests never read
 * ../shared. Not for: learning (test_ctr.c). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctrdata.h"
#include "id.h"

/* ---- helpers ---------------------------------------------------------- */

/* Writes n bytes of text to a new temporary file; its path goes to path
 * (≥ 64 bytes). */
static void write_temp_n(char *path, const char *text, size_t n)
{
    strcpy(path, "/tmp/freshrec-test-ctrdata-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void write_temp(char *path, const char *text)
{
    write_temp_n(path, text, strlen(text));
}

/* Loads text through a temporary file, removed straight away. */
static int load_text(ctrdata_t *d, const char *text, char *path, char *err, size_t len)
{
    write_temp(path, text);
    int rc = ctrdata_load_criteo(d, path, err, len);
    unlink(path);
    return rc;
}

/* The dense value of field, or NAN when the example leaves it out. */
static float num_of(const ctr_example_t *e, int field)
{
    for (int k = 0; k < e->nnum; k++)
        if (e->num[k].field == field)
            return e->num[k].value;
    return NAN;
}

/* The categorical value of field, or NULL when left out. */
static const lrn_id_t *cat_of(const ctr_example_t *e, int field)
{
    for (int k = 0; k < e->ncat; k++)
        if (e->cat[k].field == field)
            return &e->cat[k].value;
    return NULL;
}

static void assert_cat(const ctr_example_t *e, int field, const char *want)
{
    const lrn_id_t *v = cat_of(e, field);
    if (!want) {
        assert_null(v);
        return;
    }
    assert_non_null(v);
    assert_int_equal(v->len, strlen(want));
    assert_memory_equal(v->id, want, v->len);
    assert_true(v->h == id_hash(want, strlen(want)));
}

static void assert_num(const ctr_example_t *e, int field, double want)
{
    float v = num_of(e, field);
    if (isnan(want)) {
        assert_true(isnan(v));
        return;
    }
    assert_false(isnan(v));
    assert_true(fabs((double)v - want) < 1e-5 * (1 + fabs(want)));
}

/* Criteo's names: I1..I13, C1..C26. */
static void assert_criteo_names(const ctrdata_t *d)
{
    assert_int_equal(d->nnum, 13);
    assert_int_equal(d->ncat, 26);
    char buf[8];
    for (int k = 0; k < 13; k++) {
        snprintf(buf, sizeof(buf), "I%d", k + 1);
        assert_string_equal(d->num_names[k], buf);
    }
    for (int k = 0; k < 26; k++) {
        snprintf(buf, sizeof(buf), "C%d", k + 1);
        assert_string_equal(d->cat_names[k], buf);
    }
}

/* Appends to buf (of size cap) the 13 dense and 26 categorical fields of one
 * Criteo row, joined with sep: dense "k*row" except I3 (empty) and I2 (-1);
 * categorical 8 hex digits except C5 (empty), C1 the same in every row. */
static void criteo_fields(char *buf, size_t cap, char sep, int row, int floats)
{
    size_t n = strlen(buf);
    for (int k = 1; k <= 13; k++) {
        if (k == 3)
            n += (size_t)snprintf(buf + n, cap - n, "%c", sep);
        else if (k == 2)
            n += (size_t)snprintf(buf + n, cap - n, "%c-1", sep);
        else
            n += (size_t)snprintf(buf + n, cap - n, floats ? "%c%d.0" : "%c%d", sep, k * row);
    }
    for (int k = 1; k <= 26; k++) {
        if (k == 5)
            n += (size_t)snprintf(buf + n, cap - n, "%c", sep);
        else if (k == 1)
            n += (size_t)snprintf(buf + n, cap - n, "%c68fd1e64", sep);
        else
            n += (size_t)snprintf(buf + n, cap - n, "%c%08x", sep,
                                  0x1000u * (unsigned)k + (unsigned)row);
    }
}

static void assert_criteo_row(const ctr_example_t *e, int row)
{
    assert_int_equal(e->nnum, 12);
    assert_int_equal(e->ncat, 25);
    assert_num(e, 0, log1p(1.0 * row)); /* I1 = row > 0: log1p */
    assert_num(e, 1, -1.0);             /* I2 = -1: kept as it is */
    assert_num(e, 2, NAN);              /* I3 empty: left out */
    assert_num(e, 12, log1p(13.0 * row));
    assert_cat(e, 0, "68fd1e64");
    assert_cat(e, 4, NULL);
    char hex[16];
    snprintf(hex, sizeof(hex), "%08x", 0x1000u * 26 + (unsigned)row);
    assert_cat(e, 25, hex);
    assert_true(e->weight == 1.0f);
}

/* ---- the Criteo forms ------------------------------------------------- */

static void test_load_kaggle_csv(void **state)
{
    (void)state;
    /* Kaggle's train.csv: header with Id, CRLF line ends */
    char text[8192] = "Id,Label";
    for (int k = 1; k <= 13; k++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), ",I%d", k);
    for (int k = 1; k <= 26; k++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), ",C%d", k);
    strcat(text, "\r\n");
    for (int row = 1; row <= 3; row++) {
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "%d,%d", 10000000 + row,
                 row == 2);
        criteo_fields(text, sizeof(text), ',', row, 0);
        strcat(text, "\r\n");
    }
    ctrdata_t d;
    ctrdata_init(&d);
    char path[64], err[256];
    assert_int_equal(load_text(&d, text, path, err, sizeof(err)), 0);
    assert_int_equal(d.n, 3);
    assert_criteo_names(&d);
    for (int row = 1; row <= 3; row++) {
        assert_true(d.ex[row - 1].label == (row == 2 ? 1.0f : 0.0f));
        assert_int_equal(d.ex[row - 1].ts_ms, row - 1);
        assert_criteo_row(&d.ex[row - 1], row);
    }
    assert_int_equal(d.ncats, 3 * 25);
    assert_int_equal(d.nnums, 3 * 12);
    ctrdata_free(&d);
}

static void test_load_deepctr_csv(void **state)
{
    (void)state;
    /* DeepCTR's sample: header "label,I1..", dense written as floats */
    char text[8192] = "label";
    for (int k = 1; k <= 13; k++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), ",I%d", k);
    for (int k = 1; k <= 26; k++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), ",C%d", k);
    strcat(text, "\n");
    for (int row = 1; row <= 4; row++) {
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "%d", row % 2);
        criteo_fields(text, sizeof(text), ',', row, 1);
        strcat(text, "\n");
    }
    ctrdata_t d;
    ctrdata_init(&d);
    char path[64], err[256];
    assert_int_equal(load_text(&d, text, path, err, sizeof(err)), 0);
    assert_int_equal(d.n, 4);
    assert_criteo_names(&d);
    for (int row = 1; row <= 4; row++) {
        assert_true(d.ex[row - 1].label == (float)(row % 2));
        assert_criteo_row(&d.ex[row - 1], row);
    }
    ctrdata_free(&d);
}

static void test_load_criteo_tsv(void **state)
{
    (void)state;
    /* Criteo's original train.txt: no header, tabs; the last line has no
     * line break, and an empty line is skipped */
    char text[8192] = "";
    for (int row = 1; row <= 3; row++) {
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s%d", row == 3 ? "\n" : "",
                 row != 1);
        criteo_fields(text, sizeof(text), '\t', row, 0);
        if (row < 3)
            strcat(text, "\n");
    }
    ctrdata_t d;
    ctrdata_init(&d);
    char path[64], err[256];
    assert_int_equal(load_text(&d, text, path, err, sizeof(err)), 0);
    assert_int_equal(d.n, 3);
    assert_criteo_names(&d);
    for (int row = 1; row <= 3; row++) {
        assert_true(d.ex[row - 1].label == (row != 1 ? 1.0f : 0.0f));
        assert_criteo_row(&d.ex[row - 1], row);
    }
    ctrdata_free(&d);
}

static void test_load_transform(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        double d0, d1; /* NAN: left out */
    } cases[] = {
        /* Criteo's rule: log1p for v > 0, v otherwise */
        {"# freshrec ctr nnum=2 ncat=1\n1\t3\t0\tx\n", log1p(3.0), 0.0},
        {"# freshrec ctr nnum=2 ncat=1 transform=log1p\n1\t-2\t0.5\tx\n", -2.0, log1p(0.5)},
        {"# freshrec ctr nnum=2 ncat=1 transform=none\n1\t3\t-2.5\tx\n", 3.0, -2.5},
        {"# freshrec ctr nnum=2 ncat=1 transform=none\n1\t\t1e-3\tx\n", NAN, 1e-3},
        /* another comment and a header naming the fields */
        {"# freshrec ctr nnum=2 ncat=1 transform=none\n# made by hand\nlabel\ta\tb\tc\n1\t7\t\tx\n",
         7.0, NAN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ctrdata_t d;
        ctrdata_init(&d);
        char path[64], err[256];
        assert_int_equal(load_text(&d, cases[i].text, path, err, sizeof(err)), 0);
        assert_int_equal(d.n, 1);
        assert_int_equal(d.nnum, 2);
        assert_int_equal(d.ncat, 1);
        assert_true(d.ex[0].label == 1.0f);
        assert_num(&d.ex[0], 0, cases[i].d0);
        assert_num(&d.ex[0], 1, cases[i].d1);
        assert_cat(&d.ex[0], 0, "x");
        ctrdata_free(&d);
    }
    /* names: from the header, else I<n> and C<n> by position */
    ctrdata_t d;
    ctrdata_init(&d);
    char path[64], err[256];
    assert_int_equal(load_text(&d, cases[4].text, path, err, sizeof(err)), 0);
    assert_string_equal(d.num_names[0], "a");
    assert_string_equal(d.num_names[1], "b");
    assert_string_equal(d.cat_names[0], "c");
    ctrdata_free(&d);
    assert_int_equal(load_text(&d, cases[0].text, path, err, sizeof(err)), 0);
    assert_string_equal(d.num_names[1], "I2");
    assert_string_equal(d.cat_names[0], "C1");
    ctrdata_free(&d);
}

static void test_interning(void **state)
{
    (void)state;
    const char *text = "label\tC1\tC2\n"
                       "1\taa\tbb\n"
                       "0\tbb\taa\n"
                       "0\taa\t\n"
                       "1\t\tcc\n";
    ctrdata_t d;
    ctrdata_init(&d);
    char path[64], err[256];
    assert_int_equal(load_text(&d, text, path, err, sizeof(err)), 0);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.nnum, 0);
    assert_int_equal(d.ncat, 2);
    const lrn_id_t *a0 = cat_of(&d.ex[0], 0), *a2 = cat_of(&d.ex[2], 0);
    const lrn_id_t *b0 = cat_of(&d.ex[0], 1), *b1 = cat_of(&d.ex[1], 0);
    /* the same text, in a field or across fields, is stored once */
    assert_ptr_equal(a0->id, a2->id);
    assert_ptr_equal(a0->id, cat_of(&d.ex[1], 1)->id);
    assert_ptr_equal(b0->id, b1->id);
    assert_true(a0->h == a2->h && a0->h == id_hash("aa", 2));
    assert_true(b0->h == id_hash("bb", 2) && b0->h != a0->h);
    assert_cat(&d.ex[3], 1, "cc");
    assert_null(cat_of(&d.ex[2], 1));
    assert_null(cat_of(&d.ex[3], 0));
    /* three distinct values, each NUL-terminated */
    assert_int_equal(d.strings_len, 9);
    ctrdata_free(&d);
}

/* Every pointer still valid after the arrays grew many times (run under ASan). */
static void test_load_many(void **state)
{
    (void)state;
    size_t rows = 20000, cap = rows * 64;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t n = (size_t)snprintf(text, cap, "label\tI1\tC1\tC2\n");
    for (size_t r = 0; r < rows; r++)
        n += (size_t)snprintf(text + n, cap - n, "%zu\t%zu\tv%zu\tw%zu\n", r % 2, r, r, r % 7);
    ctrdata_t d;
    ctrdata_init(&d);
    char path[64], err[256];
    assert_int_equal(load_text(&d, text, path, err, sizeof(err)), 0);
    free(text);
    assert_int_equal(d.n, rows);
    for (size_t r = 0; r < rows; r++) {
        char v[32];
        snprintf(v, sizeof(v), "v%zu", r);
        assert_cat(&d.ex[r], 0, v);
        snprintf(v, sizeof(v), "w%zu", r % 7);
        assert_cat(&d.ex[r], 1, v);
        assert_num(&d.ex[r], 0, r > 0 ? log1p((double)r) : 0.0);
    }
    ctrdata_free(&d);
}

/* ---- errors ----------------------------------------------------------- */

static void test_load_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *want; /* in the message, after "path" */
    } cases[] = {
        {"label,I1,C1\n1,2,a\n0,3\n", ":3: 2 columns where the first line has 3"},
        {"label,I1,C1\n1,2,a\n0,3,b,c\n", ":3: more columns than the first line's 3"},
        {"label,I1,C1\n2,2,a\n", ":2: label '2' is not 0 or 1"},
        {"label,I1,C1\n,2,a\n", ":2: label '' is not 0 or 1"},
        {"label,I1,C1\n1,abc,a\n", ":2: I1: 'abc' is not a finite number"},
        {"label,I1,C1\n1,1e999,a\n", ":2: I1: '1e999' is not a finite number"},
        {"label,I1,C1\n1,nan,a\n", ":2: I1: 'nan' is not a finite number"},
        {"label,I1,C1\n1,2x,a\n", ":2: I1: '2x' is not a finite number"},
        {"label,price,C1\n1,2,a\n", ":1: column 'price' is none of"},
        {"I1,C1\n2,a\n", ":1: the header needs exactly one 'label' column"},
        {"1\t2\ta\n", ":1: no header and not Criteo's 40 columns"},
        {"# freshrec ctr nnum=1 ncat=2\n1\t2\ta\n", ":2: 3 columns, expected 4"},
        {"# freshrec ctr nnum=1\n1\t2\n", ":1: '# freshrec ctr' needs nnum= and ncat="},
        {"# freshrec ctr nnum=1 ncat=x\n", ":1: 'ncat=x': expected a count"},
        {"# freshrec ctr nnum=1 ncat=1 mode=fast\n", ":1: unknown setting 'mode=fast'"},
        {"# freshrec ctr nnum=1 ncat=1\nlbl\tI1\tC1\n", ":2: the header's first column must be"},
        {"# freshrec ctr nnum=1 ncat=1\n1\t2\ta\n# freshrec ctr nnum=1 ncat=1\n",
         ":3: '# freshrec ctr' must come once"},
        {"label,I1,C1\n", ": no examples"},
        {"", ": no examples"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ctrdata_t d;
        ctrdata_init(&d);
        char path[64], err[256] = "";
        assert_int_equal(load_text(&d, cases[i].text, path, err, sizeof(err)), -1);
        char want[256];
        snprintf(want, sizeof(want), "%s%s", path, cases[i].want);
        if (strncmp(err, want, strlen(want)) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s…\"", i, err, want);
        assert_int_equal(d.n, 0);
        assert_null(d.ex);
        ctrdata_free(&d);
    }
    /* a missing file; a dataset that is not empty */
    ctrdata_t d;
    ctrdata_init(&d);
    char err[256];
    assert_int_equal(ctrdata_load_criteo(&d, "/nonexistent/criteo.txt", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/criteo.txt: "));
    char path[64];
    assert_int_equal(load_text(&d, "label,C1\n1,a\n", path, err, sizeof(err)), 0);
    assert_int_equal(load_text(&d, "label,C1\n1,a\n", path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not empty"));
    assert_int_equal(d.n, 1);
    ctrdata_free(&d);
}

/* Lines of up to 64 KiB are read; a longer one, or a NUL byte, is an error
 * naming its line. */
static void test_line_limits(void **state)
{
    (void)state;
    const char *head = "label\tC1\n1\ta\n";
    size_t hl = strlen(head), max = 65536;
    char *text = malloc(hl + max + 8);
    assert_non_null(text);
    for (int extra = 0; extra <= 1; extra++) {
        for (int lf = 0; lf <= 2; lf++) { /* the long line ends in "", "\n" or "\r\n" */
            size_t line = max + (size_t)extra, n = hl;
            memcpy(text, head, hl);
            memcpy(text + n, "0\t", 2);
            memset(text + n + 2, 'x', line - 2);
            n += line;
            if (lf == 2)
                text[n++] = '\r';
            if (lf >= 1)
                text[n++] = '\n';
            char path[64], err[256] = "";
            write_temp_n(path, text, n);
            ctrdata_t d;
            ctrdata_init(&d);
            int rc = ctrdata_load_criteo(&d, path, err, sizeof(err));
            unlink(path);
            if (!extra) {
                assert_int_equal(rc, 0);
                assert_int_equal(d.n, 2);
                assert_int_equal(d.ex[1].cat[0].value.len, max - 2);
            } else {
                assert_int_equal(rc, -1);
                assert_non_null(strstr(err, ":3: line longer than 64 KiB"));
            }
            ctrdata_free(&d);
        }
    }
    free(text);
    /* a NUL byte */
    char path[64], err[256];
    write_temp_n(path, "label\tC1\n1\ta\0b\n", 15);
    ctrdata_t d;
    ctrdata_init(&d);
    assert_int_equal(ctrdata_load_criteo(&d, path, err, sizeof(err)), -1);
    unlink(path);
    assert_non_null(strstr(err, ":2: NUL byte"));
    ctrdata_free(&d);
}

/* ---- the generator ---------------------------------------------------- */

static void generate(ctrdata_t *d, const ctrgen_config_t *cfg)
{
    char err[256];
    ctrdata_init(d);
    if (ctrdata_generate(d, cfg, err, sizeof(err)))
        fail_msg("ctrdata_generate: %s", err);
}

/* The k of a value "<prefix><k>". */
static uint32_t index_of(const lrn_id_t *v, const char *prefix)
{
    size_t pl = strlen(prefix);
    assert_true(v->len > pl && memcmp(v->id, prefix, pl) == 0);
    return (uint32_t)strtoul(v->id + pl, NULL, 10);
}

static void test_generate_sizes(void **state)
{
    (void)state;
    ctrgen_config_t cfg;
    ctrgen_config_default(&cfg);
    assert_int_equal(cfg.examples, 200000);
    assert_int_equal(cfg.users, 2000);
    assert_int_equal(cfg.items, 1000);
    assert_int_equal(cfg.devices, 8);
    assert_int_equal(cfg.cat3_card, 50);
    assert_int_equal(cfg.nnum, 3);
    assert_true(cfg.interaction == 2.0 && cfg.base_ctr == 0.2 && cfg.seed == 1);
    cfg.examples = 20000;
    cfg.nnum = 4;
    ctrdata_t d;
    generate(&d, &cfg);
    assert_int_equal(d.n, 20000);
    assert_int_equal(d.ncat, 4);
    assert_int_equal(d.nnum, 4);
    const char *cn[] = {"user", "item", "device", "cat3"};
    for (int k = 0; k < 4; k++)
        assert_string_equal(d.cat_names[k], cn[k]);
    const char *nn[] = {"d0", "d1", "d2", "d3"};
    for (int k = 0; k < 4; k++)
        assert_string_equal(d.num_names[k], nn[k]);
    assert_int_equal(d.ncats, 4 * d.n);
    size_t missing = 0, user0 = 0, user_last = 0;
    for (size_t i = 0; i < d.n; i++) {
        const ctr_example_t *e = &d.ex[i];
        assert_int_equal(e->ncat, 4);
        for (int k = 0; k < 4; k++)
            assert_int_equal(e->cat[k].field, k);
        uint32_t u = index_of(cat_of(e, 0), "u");
        assert_true(u < cfg.users);
        user0 += u == 0;
        user_last += u == cfg.users - 1;
        assert_true(index_of(cat_of(e, 1), "i") < cfg.items);
        assert_true(index_of(cat_of(e, 2), "dev") < cfg.devices);
        assert_true(index_of(cat_of(e, 3), "c") < cfg.cat3_card);
        assert_false(isnan(num_of(e, 0))); /* d0 always there */
        missing += (size_t)(4 - e->nnum);
        assert_true(e->label == 0.0f || e->label == 1.0f);
        assert_true(e->weight == 1.0f);
        if (i > 0)
            assert_true(e->ts_ms > d.ex[i - 1].ts_ms);
    }
    /* noise fields missing 20% of the time; Zipf: user 0 far above the last */
    double share = (double)missing / (3.0 * (double)d.n);
    assert_true(share > 0.17 && share < 0.23);
    assert_true(user0 > 5 * (user_last + 1));
    ctrdata_free(&d);

    /* invalid configurations */
    const char *bad[] = {"examples", "users", "nnum", "base_ctr", "interaction"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ctrgen_config_default(&cfg);
        if (i == 0)
            cfg.examples = 0;
        else if (i == 1)
            cfg.users = 0;
        else if (i == 2)
            cfg.nnum = CTR_MAX_FIELDS + 1;
        else if (i == 3)
            cfg.base_ctr = 1.0;
        else
            cfg.interaction = INFINITY;
        char err[256] = "";
        ctrdata_init(&d);
        assert_int_equal(ctrdata_generate(&d, &cfg, err, sizeof(err)), -1);
        assert_non_null(strstr(err, bad[i]));
        assert_int_equal(d.n, 0);
    }
}

static void assert_same_data(const ctrdata_t *a, const ctrdata_t *b, int same_ts)
{
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->ncat, b->ncat);
    assert_int_equal(a->nnum, b->nnum);
    for (int k = 0; k < a->ncat; k++)
        assert_string_equal(a->cat_names[k], b->cat_names[k]);
    for (int k = 0; k < a->nnum; k++)
        assert_string_equal(a->num_names[k], b->num_names[k]);
    for (size_t i = 0; i < a->n; i++) {
        const ctr_example_t *x = &a->ex[i], *y = &b->ex[i];
        assert_true(x->label == y->label);
        if (same_ts)
            assert_int_equal(x->ts_ms, y->ts_ms);
        assert_int_equal(x->ncat, y->ncat);
        assert_int_equal(x->nnum, y->nnum);
        for (int k = 0; k < x->ncat; k++) {
            assert_int_equal(x->cat[k].field, y->cat[k].field);
            assert_true(x->cat[k].value.h == y->cat[k].value.h);
            assert_int_equal(x->cat[k].value.len, y->cat[k].value.len);
            assert_memory_equal(x->cat[k].value.id, y->cat[k].value.id, x->cat[k].value.len);
        }
        for (int k = 0; k < x->nnum; k++) {
            assert_int_equal(x->num[k].field, y->num[k].field);
            assert_true(fabsf(x->num[k].value - y->num[k].value) <= 1e-6f);
        }
    }
}

static void test_generate_determinism(void **state)
{
    (void)state;
    ctrgen_config_t cfg;
    ctrgen_config_default(&cfg);
    cfg.examples = 20000;
    ctrdata_t a, b;
    generate(&a, &cfg);
    generate(&b, &cfg);
    assert_same_data(&a, &b, 1);
    ctrdata_free(&b);
    cfg.seed = 2;
    generate(&b, &cfg);
    size_t differ = 0;
    for (size_t i = 0; i < a.n; i++)
        differ +=
            a.ex[i].label != b.ex[i].label || cat_of(&a.ex[i], 1)->h != cat_of(&b.ex[i], 1)->h;
    assert_true(differ > a.n / 2);
    ctrdata_free(&a);
    ctrdata_free(&b);
}

/* Mean click rate near base_ctr, and far apart between the examples whose
 * planted sign M[group(item)][device] is +1 and those where it is −1. */
static void test_generate_rate_and_interaction(void **state)
{
    (void)state;
    static const struct {
        double base_ctr, interaction;
        uint32_t devices;
        double min_gap; /* P(click | M = +1) − P(click | M = −1) */
    } cases[] = {
        {0.2, 2.0, 8, 0.15},
        {0.05, 2.0, 8, 0.05},
        {0.5, 2.0, 4, 0.3},
        {0.2, 0.0, 8, -1}, /* no interaction: no gap */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        ctrgen_config_t cfg;
        ctrgen_config_default(&cfg);
        if (c > 0)
            cfg.examples = 50000;
        cfg.base_ctr = cases[c].base_ctr;
        cfg.interaction = cases[c].interaction;
        cfg.devices = cases[c].devices;
        ctrdata_t d;
        generate(&d, &cfg);
        double clicks = 0, pos[2] = {0, 0}, cnt[2] = {0, 0};
        int seen[2] = {0, 0};
        for (size_t i = 0; i < d.n; i++) {
            const ctr_example_t *e = &d.ex[i];
            uint32_t item = index_of(cat_of(e, 1), "i"), dev = index_of(cat_of(e, 2), "dev");
            int s = ctrgen_interaction_sign(&cfg, item, dev);
            assert_true(s == 1 || s == -1);
            /* the sign depends on the item only through its group */
            assert_int_equal(s, ctrgen_interaction_sign(&cfg, item + cfg.devices, dev));
            seen[s > 0] = 1;
            clicks += e->label;
            pos[s > 0] += e->label;
            cnt[s > 0] += 1;
        }
        double rate = clicks / (double)d.n;
        assert_true(fabs(rate - cfg.base_ctr) < 0.03);
        assert_true(seen[0] && seen[1]);
        double gap = pos[1] / cnt[1] - pos[0] / cnt[0];
        if (cases[c].min_gap > 0) {
            if (!(gap > cases[c].min_gap))
                fail_msg("case %zu: gap %.3f ≤ %.3f", c, gap, cases[c].min_gap);
        } else {
            assert_true(fabs(gap) < 0.02);
        }
        ctrdata_free(&d);
    }
}

/* ---- write → load ----------------------------------------------------- */

/* Writes d to a temporary file and loads it into out. */
static void round_trip(const ctrdata_t *d, ctrdata_t *out)
{
    char path[64] = "/tmp/freshrec-test-ctrdata-XXXXXX", err[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(ctrdata_write(d, f), 0);
    assert_int_equal(fclose(f), 0);
    ctrdata_init(out);
    int rc = ctrdata_load_criteo(out, path, err, sizeof(err));
    unlink(path);
    if (rc)
        fail_msg("load: %s", err);
}

static void test_round_trip(void **state)
{
    (void)state;
    ctrgen_config_t cfg;
    ctrgen_config_default(&cfg);
    cfg.examples = 5000;
    cfg.nnum = 5;
    ctrdata_t a, b;
    generate(&a, &cfg);
    round_trip(&a, &b);
    assert_same_data(&a, &b, 0); /* names too: the header carries them */
    for (size_t i = 0; i < b.n; i++)
        assert_int_equal(b.ex[i].ts_ms, (int64_t)i);
    ctrdata_free(&b);
    ctrdata_free(&a);

    /* Criteo values, already log1p'ed, are written and read back unchanged */
    char text[8192] = "";
    for (int row = 1; row <= 3; row++) {
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "%d", row % 2);
        criteo_fields(text, sizeof(text), '\t', row, 0);
        strcat(text, "\n");
    }
    char path[64], err[256];
    assert_int_equal(load_text(&a, text, path, err, sizeof(err)), 0);
    round_trip(&a, &b);
    assert_same_data(&a, &b, 1);
    assert_criteo_names(&b);
    ctrdata_free(&b);
    ctrdata_free(&a);
}

static void test_write_rejects(void **state)
{
    (void)state;
    ctr_cat_t cat = {0, {id_hash("a\tb", 3), "a\tb", 3}};
    ctr_num_t num = {0, 1.5f};
    ctr_example_t ex = {&cat, 1, &num, 1, 1.0f, 1.0f, 0};
    char *cn[] = {"c"}, *nn[] = {"n"};
    ctrdata_t d = {.ex = &ex, .n = 1, .ncat = 1, .nnum = 1, .cat_names = cn, .num_names = nn};
    char *buf = NULL;
    size_t len = 0;
    static const struct {
        const char *value;
        int field;
        float num;
        int ok;
    } cases[] = {
        {"ab", 0, 1.5f, 1},     {"a\tb", 0, 1.5f, 0}, {"a\nb", 0, 1.5f, 0},
        {"", 0, 1.5f, 0},       {"ab", 1, 1.5f, 0}, /* field out of range */
        {"ab", 0, INFINITY, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cat.field = cases[i].field;
        cat.value.id = cases[i].value;
        cat.value.len = strlen(cases[i].value);
        num.value = cases[i].num;
        FILE *f = open_memstream(&buf, &len);
        assert_non_null(f);
        assert_int_equal(ctrdata_write(&d, f), cases[i].ok ? 0 : -1);
        fclose(f);
        if (cases[i].ok)
            assert_string_equal(buf, "# freshrec ctr nnum=1 ncat=1 transform=none\n"
                                     "label\tn\tc\n"
                                     "1\t1.5\tab\n");
        free(buf);
        buf = NULL;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_kaggle_csv),
        cmocka_unit_test(test_load_deepctr_csv),
        cmocka_unit_test(test_load_criteo_tsv),
        cmocka_unit_test(test_load_transform),
        cmocka_unit_test(test_interning),
        cmocka_unit_test(test_load_many),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_line_limits),
        cmocka_unit_test(test_generate_sizes),
        cmocka_unit_test(test_generate_determinism),
        cmocka_unit_test(test_generate_rate_and_interaction),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_write_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
