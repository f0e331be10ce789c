/* test_metrics_doc.c — the table of metrics (daemon/metrics.c) against the
 * metrics table of proto/README.md, the contract written down: every metric
 * the daemon exposes is documented there with the same type and labels, and
 * every documented one is exposed. The checker is shown to catch a metric
 * missing from either side, and a wrong type or label.
 * Run from the repository root (as make test does): it reads
 * proto/README.md from the source tree. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define README "proto/README.md"
#define MAX_DOC 128

typedef struct {
    char name[96];
    char type[16];
    char labels[METRIC_MAX_LABELS + 1][32]; /* "" after the last */
} doc_metric_t;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = '\0';
    fclose(f);
    return s;
}

/* The rows "| `freshrec_…` | type | labels | meaning |" of the README; the
 * labels are the backquoted words of the third column before its first ':'
 * ("`type`: each configured kind (`impression`, …)" is the label type). */
static int parse_doc(const char *text, doc_metric_t *out, int max)
{
    int n = 0;
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > 12 && strncmp(line, "| `freshrec_", 12) == 0 && n < max) {
            char row[1024];
            snprintf(row, sizeof(row), "%.*s", (int)len, line);
            doc_metric_t *d = &out[n];
            memset(d, 0, sizeof(*d));
            char *col[4] = {0};
            char *p = row + 1;
            for (int c = 0; c < 4 && p; c++) {
                col[c] = p;
                p = strchr(p, '|');
                if (p)
                    *p++ = '\0';
            }
            if (col[2]) {
                sscanf(col[0], " `%95[^`]`", d->name);
                sscanf(col[1], " %15s", d->type);
                char *colon = strchr(col[2], ':');
                if (colon)
                    *colon = '\0';
                int k = 0;
                for (char *q = strchr(col[2], '`'); q && k < METRIC_MAX_LABELS + 1;) {
                    char *close = strchr(q + 1, '`');
                    if (!close)
                        break;
                    snprintf(d->labels[k++], sizeof(d->labels[0]), "%.*s", (int)(close - q - 1),
                             q + 1);
                    q = strchr(close + 1, '`');
                }
                n++;
            }
        }
        line = end ? end + 1 : NULL;
    }
    return n;
}

static const char *type_name(metric_type_t t)
{
    return t == METRIC_COUNTER ? "counter" : t == METRIC_GAUGE ? "gauge" : "histogram";
}

/* Every mismatch between the table and the README's rows, one line each in
 * msg; returns how many. */
static int check(const metric_def_t *table, int nt, const doc_metric_t *doc, int nd, char *msg,
                 size_t len)
{
    int bad = 0;
    size_t at = 0;
    msg[0] = '\0';
#define SAY(...)                                                                                   \
    do {                                                                                           \
        bad++;                                                                                     \
        if (at < len)                                                                              \
            at += (size_t)snprintf(msg + at, len - at, __VA_ARGS__);                               \
    } while (0)
    for (int i = 0; i < nt; i++) {
        const metric_def_t *m = &table[i];
        if (!m->name)
            continue; /* in /stats only */
        const doc_metric_t *d = NULL;
        int times = 0;
        for (int k = 0; k < nd; k++)
            if (strcmp(doc[k].name, m->name) == 0) {
                d = &doc[k];
                times++;
            }
        if (!d) {
            SAY("%s: exposed, not documented in " README "\n", m->name);
            continue;
        }
        if (times > 1)
            SAY("%s: documented %d times\n", m->name, times);
        if (strcmp(d->type, type_name(m->type)) != 0)
            SAY("%s: a %s, documented as a %s\n", m->name, type_name(m->type), d->type);
        for (int l = 0; l <= METRIC_MAX_LABELS; l++) {
            const char *want = l < METRIC_MAX_LABELS && m->labels[l] ? m->labels[l] : "";
            if (strcmp(want, d->labels[l]) != 0) {
                SAY("%s: label %d is \"%s\", documented as \"%s\"\n", m->name, l + 1, want,
                    d->labels[l]);
                break;
            }
            if (!want[0])
                break;
        }
        if (m->type == METRIC_COUNTER &&
            (strlen(m->name) < 6 || strcmp(m->name + strlen(m->name) - 6, "_total") != 0))
            SAY("%s: a counter whose name does not end in _total\n", m->name);
        if (!m->help || !m->help[0])
            SAY("%s: no help\n", m->name);
    }
    for (int k = 0; k < nd; k++) {
        int found = 0;
        for (int i = 0; i < nt; i++)
            found |= table[i].name && strcmp(table[i].name, doc[k].name) == 0;
        if (!found)
            SAY("%s: documented in " README ", not exposed\n", doc[k].name);
    }
#undef SAY
    return bad;
}

static doc_metric_t doc[MAX_DOC];
static int ndoc;

static int setup(void **state)
{
    (void)state;
    char *text = slurp(README);
    if (!text) {
        fprintf(stderr, "cannot read %s: run from the repository root\n", README);
        return -1;
    }
    ndoc = parse_doc(text, doc, MAX_DOC);
    free(text);
    return ndoc > 0 ? 0 : -1;
}

static void test_table_matches_readme(void **state)
{
    (void)state;
    char msg[4096];
    int bad = check(metrics_table, metrics_table_n, doc, ndoc, msg, sizeof(msg));
    if (bad)
        fail_msg("%d mismatch(es) between daemon/metrics.c and " README ":\n%s", bad, msg);
    /* what the README's rows were read as: the parse itself is right */
    int found = 0;
    for (int k = 0; k < ndoc; k++)
        if (strcmp(doc[k].name, "freshrec_consumer_lag") == 0) {
            found = 1;
            assert_string_equal(doc[k].type, "gauge");
            assert_string_equal(doc[k].labels[0], "topic");
            assert_string_equal(doc[k].labels[1], "partition");
            assert_string_equal(doc[k].labels[2], "");
        }
    assert_true(found);
    assert_true(ndoc >= 45);
}

/* The checker catches a metric exposed but not documented, one documented but
 * not exposed, another type and another label. */
static void test_checker_catches_mismatches(void **state)
{
    (void)state;
    int n = metrics_table_n;
    metric_def_t *t = malloc(sizeof(metric_def_t) * (size_t)n);
    assert_non_null(t);
    char msg[4096];
    int victim = -1;
    for (int i = 0; i < n; i++)
        if (metrics_table[i].name && strcmp(metrics_table[i].name, "freshrec_deletes_pending") == 0)
            victim = i;
    assert_true(victim >= 0);

    /* the README lacks a row */
    doc_metric_t *d = malloc(sizeof(doc));
    assert_non_null(d);
    int nd = 0;
    for (int k = 0; k < ndoc; k++)
        if (strcmp(doc[k].name, "freshrec_deletes_pending") != 0)
            d[nd++] = doc[k];
    assert_int_equal(nd, ndoc - 1);
    assert_int_equal(check(metrics_table, n, d, nd, msg, sizeof(msg)), 1);
    assert_string_equal(msg, "freshrec_deletes_pending: exposed, not documented in " README "\n");

    /* the table lacks a row */
    memcpy(t, metrics_table, sizeof(metric_def_t) * (size_t)n);
    memmove(&t[victim], &t[victim + 1], sizeof(metric_def_t) * (size_t)(n - victim - 1));
    assert_int_equal(check(t, n - 1, doc, ndoc, msg, sizeof(msg)), 1);
    assert_string_equal(msg, "freshrec_deletes_pending: documented in " README ", not exposed\n");

    /* another type, another label */
    memcpy(t, metrics_table, sizeof(metric_def_t) * (size_t)n);
    t[victim].type = METRIC_COUNTER;
    t[victim].name = "freshrec_deletes_pending";
    assert_true(check(t, n, doc, ndoc, msg, sizeof(msg)) >= 1);
    assert_non_null(strstr(msg, "freshrec_deletes_pending: a counter, documented as a gauge"));
    memcpy(t, metrics_table, sizeof(metric_def_t) * (size_t)n);
    t[victim].labels[0] = "table";
    assert_int_equal(check(t, n, doc, ndoc, msg, sizeof(msg)), 1);
    assert_string_equal(msg,
                        "freshrec_deletes_pending: label 1 is \"table\", documented as \"\"\n");
    free(d);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_matches_readme),
        cmocka_unit_test(test_checker_catches_mismatches),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
