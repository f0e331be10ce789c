/* test_gen_cli.c — `freshrec gen` and `freshrec train` on the files of
 * issue #17's data, as a user runs them: the binary of the build under test
 * (BUILD). gen's default output is byte for byte what it was before planted
 * change existed; a stream with a planted shift and new items carries its
 * plant lines and trains; a comma-separated file with a header and CRLF line
 * ends (ratings.csv's form) trains exactly as the same events tab-separated;
 * a bad line stops train with the file and line.
 * Not for: the generator's statistics (tests/unit/test_dataset_plant.c). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/fr-gen-cli-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return harness_rmtree(dir);
}

/* Runs a shell command; its exit status. */
static int run(const char *cmd)
{
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* FNV-1a, 64 bits, of a file's bytes; their count to *bytes. */
static uint64_t file_hash(const char *path, size_t *bytes)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t n = 0;
    int c;
    while ((c = getc(f)) != EOF) {
        h = (h ^ (unsigned char)c) * 0x100000001b3ULL;
        n++;
    }
    assert_int_equal(fclose(f), 0);
    *bytes = n;
    return h;
}

/* Runs `freshrec train ARGS --json --quiet`; the last line of its stdout as
 * JSON, failing the test unless it exits 0. */
static json_t *train_json(const char *args)
{
    char cmd[1024], line[8192], last[8192] = "";
    snprintf(cmd, sizeof(cmd), "%s/freshrec train %s --json --quiet", harness_build(), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    while (fgets(line, sizeof(line), p))
        memcpy(last, line, sizeof(line));
    int st = pclose(p);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("`%s` failed (status %d)", cmd, st);
    json_error_t err;
    json_t *j = json_loads(last, 0, &err);
    if (!j || !json_is_object(j))
        fail_msg("`%s`: not a JSON object: %s (%s)", cmd, last, err.text);
    return j;
}

/* The default stream (and two others) as the commit before planted change
 * (c757a36) wrote them, header line included. */
static void test_defaults_unchanged(void **state)
{
    (void)state;
    static const struct {
        const char *args;
        size_t bytes;
        uint64_t fnv;
    } cases[] = {
        {"", 2131134, 0x3b2a54ceb4edd763ULL},
        {"--users 2000 --items 3000 --events 50000 --seed 42", 1105313,
         0xa8b6e074de3e1d5aULL}, /* make demo's */
        {"--users 200 --items 400 --events 20000 --seed 3 --topics 8 --focus 0.5", 403137,
         0x3362b5516fd4b63aULL},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char out[128], cmd[512];
        snprintf(out, sizeof(out), "%s/default-%zu.tsv", dir, c);
        snprintf(cmd, sizeof(cmd), "%s/freshrec gen %s --out %s", harness_build(), cases[c].args,
                 out);
        assert_int_equal(run(cmd), 0);
        size_t bytes = 0;
        uint64_t h = file_hash(out, &bytes);
        print_message("gen %s: %zu bytes, fnv 0x%016llx\n", cases[c].args, bytes,
                      (unsigned long long)h);
        assert_int_equal(bytes, cases[c].bytes);
        assert_true(h == cases[c].fnv);
    }
}

/* gen with a shift and new items: its first lines are the command and the
 * plant lines; train reads the file (plant lines are comments to it) and
 * learns every event. */
static void test_planted_stream_trains(void **state)
{
    (void)state;
    char out[128], cmd[512];
    snprintf(out, sizeof(out), "%s/planted.tsv", dir);
    snprintf(cmd, sizeof(cmd),
             "%s/freshrec gen --users 200 --items 400 --events 20000 --seed 3 --shift-at 0.5 "
             "--new-items 4 --out %s",
             harness_build(), out);
    assert_int_equal(run(cmd), 0);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char line[8192];
    static const char *const want[] = {
        "# freshrec gen --users 200 --items 400 --events 20000 --seed 3 --topics 24 --zipf 0.6 "
        "--focus 0.8 --shift-at 0.5 --new-items 4 --new-share 0.1\n",
        "# plant topics 24 items 400 users 200\n",
        "# plant user-topics ",
        "# plant shift event 10000 ts ",
        "# plant new-item 401 topic 0 event 10000 ts ",
        "# plant new-item 402 topic 1 event 12000 ts ",
        "# plant new-item 403 topic 2 event 14000 ts ",
        "# plant new-item 404 topic 3 event 16000 ts ",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_non_null(fgets(line, sizeof(line), f));
        if (strncmp(line, want[i], strlen(want[i])) != 0)
            fail_msg("line %zu: '%s', want it to start '%s'", i + 1, line, want[i]);
    }
    size_t events = 0, fresh = 0;
    while (fgets(line, sizeof(line), f)) {
        assert_true(line[0] != '#');
        events++;
        long item = 0;
        assert_int_equal(sscanf(line, "%*s %ld", &item), 1);
        fresh += item > 400;
    }
    assert_int_equal(fclose(f), 0);
    assert_int_equal(events, 20000);
    print_message("planted stream: %zu events, %zu of them new items'\n", events, fresh);
    assert_true(fresh > 50);

    char args[512];
    snprintf(args, sizeof(args), "--data %s --format synthetic --epochs 1 --eval none --dim 8",
             out);
    json_t *j = train_json(args);
    assert_int_equal(json_integer_value(json_object_get(j, "events")), 20000);
    json_decref(j);

    /* refused: a shift past the end, new items that take nothing */
    snprintf(cmd, sizeof(cmd), "%s/freshrec gen --events 100 --shift-at 100 --out %s 2>/dev/null",
             harness_build(), out);
    assert_int_equal(run(cmd), 1);
    snprintf(cmd, sizeof(cmd), "%s/freshrec gen --new-items 3 --new-share 0 --out %s 2>/dev/null",
             harness_build(), out);
    assert_int_equal(run(cmd), 1);
}

/* The same events as a tab-separated gen file and as ratings.csv has them
 * (header, commas, a rating with a decimal point, CRLF): the same training,
 * to the last digit. */
static void test_csv_trains_as_tsv(void **state)
{
    (void)state;
    char tsv[128], csv[128], cmd[512];
    snprintf(tsv, sizeof(tsv), "%s/same.tsv", dir);
    snprintf(csv, sizeof(csv), "%s/same.csv", dir);
    snprintf(cmd, sizeof(cmd),
             "%s/freshrec gen --users 200 --items 400 --events 10000 --seed 4 --out %s",
             harness_build(), tsv);
    assert_int_equal(run(cmd), 0);
    FILE *in = fopen(tsv, "r"), *out = fopen(csv, "w");
    assert_non_null(in);
    assert_non_null(out);
    fputs("userId,movieId,rating,timestamp\r\n", out);
    char line[256];
    size_t n = 0;
    while (fgets(line, sizeof(line), in)) {
        char u[32], i[32];
        long long ts;
        if (line[0] == '#')
            continue;
        assert_int_equal(sscanf(line, "%31s %31s %*s %lld", u, i, &ts), 3);
        fprintf(out, "%s,%s,%.1f,%lld\r\n", u, i, 0.5 + (double)(n++ % 10) / 2, ts);
    }
    assert_int_equal(fclose(in), 0);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(n, 10000);

    static const char *const keys[] = {"events",   "users",     "items",     "hr10",
                                       "pop_hr10", "preq_hr10", "final_loss"};
    char args[512];
    snprintf(args, sizeof(args), "--data %s --format movielens --epochs 1 --dim 8 --seed 2", tsv);
    json_t *a = train_json(args);
    snprintf(args, sizeof(args), "--data %s --format movielens --epochs 1 --dim 8 --seed 2", csv);
    json_t *b = train_json(args);
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        json_t *x = json_object_get(a, keys[k]), *y = json_object_get(b, keys[k]);
        assert_non_null(x);
        if (!json_equal(x, y))
            fail_msg("%s differs: %g (tsv) and %g (csv)", keys[k], json_number_value(x),
                     json_number_value(y));
    }
    print_message("csv and tsv: %lld events, hr10 %.4f, both\n",
                  (long long)json_integer_value(json_object_get(b, "events")),
                  json_number_value(json_object_get(b, "hr10")));
    json_decref(a);
    json_decref(b);

    /* a bad line: exit 1, the file and line named */
    FILE *f = fopen(csv, "a");
    assert_non_null(f);
    fputs("7,8,4.0\r\n", f);
    assert_int_equal(fclose(f), 0);
    char log[128];
    snprintf(log, sizeof(log), "%s/train.err", dir);
    snprintf(cmd, sizeof(cmd), "%s/freshrec train --data %s --format movielens >/dev/null 2>%s",
             harness_build(), csv, log);
    assert_int_equal(run(cmd), 1);
    char want[192];
    snprintf(want, sizeof(want), "%s:10002: expected 4 non-empty comma-separated fields", csv);
    assert_int_equal(harness_log_count(log, want), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_unchanged),
        cmocka_unit_test(test_planted_stream_trains),
        cmocka_unit_test(test_csv_trains_as_tsv),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
