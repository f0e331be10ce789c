/* test_train_cli.c — `freshrec train` as a user runs it: the binary of the
 * build under test (BUILD) on files this test writes or generates, its
 * --json result read back. Checks what the JSON reports rather than how well
 * the models learn (test_learn.c does that): events skipped for want of a
 * negative are counted for every loss and sampler, and preq_hr10 comes from
 * the first pass only (later passes rank events already learned), and
 * --shuffle reorders the later passes alone, and --members reports its
 * members' shared state and model-log cost.
 * Not for: the learner's internals; the click-through models (test_ctr.c). */
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
    snprintf(dir, sizeof(dir), "/tmp/fr-train-cli-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return harness_rmtree(dir);
}

/* Runs `freshrec ARGS --json --quiet` and parses the last line of its
 * stdout; fails the test unless it exits 0 with a JSON object. */
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

static long long int_field(const json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v))
        fail_msg("JSON field %s: missing or not an integer", key);
    return (long long)json_integer_value(v);
}

static double real_field(const json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_number(v))
        fail_msg("JSON field %s: missing or not a number", key);
    return json_number_value(v);
}

/* U users each with item "1" first (all at once: micro-batches of one item),
 * then each with an item of their own. With in-batch negatives the first
 * U events have none (the only item in their batch is the user's own); the
 * next U find theirs among the batch's other users' items. */
enum { U = 64 };

static void write_one_item_batches(char *path, size_t len)
{
    snprintf(path, len, "%s/one-item.tsv", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int u = 0; u < U; u++)
        fprintf(f, "u%d\t1\t5\t%d\n", u, 1000 + u);
    for (int u = 0; u < U; u++)
        fprintf(f, "u%d\ti%d\t5\t%d\n", u, u, 2000 + u);
    assert_int_equal(fclose(f), 0);
}

/* Every loss and sampler reports "skipped" (and the other ways an event
 * goes unlearned); learned + skipped = every event of every pass. In-batch
 * with BPR or softmax skips exactly the one-item batches, each epoch (in
 * time order: --no-shuffle keeps those batches whole); BCE
 * learns those positives on their own, so skips none. */
static void test_json_counts_skipped(void **state)
{
    (void)state;
    char data[128];
    write_one_item_batches(data, sizeof(data));
    static const struct {
        const char *model, *loss, *sampler;
        int epochs;
        long long skipped; /* -1: not fixed by the data */
    } cases[] = {
        {"dssm", "softmax", "inbatch", 1, U}, {"dssm", "softmax", "inbatch", 2, 2 * U},
        {"neumf", "bpr", "inbatch", 1, U},    {"neumf", "bce", "inbatch", 1, 0},
        {"neumf", "bce", "uniform", 1, 0},    {"dssm", "softmax", "popularity", 1, -1},
        {"neumf", "bpr", "hard", 1, -1},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char args[512];
        snprintf(args, sizeof(args),
                 "--data %s --model %s --loss %s --sampler %s --epochs %d --batch 8 "
                 "--eval none --negatives 2 --tower 16,8 --dim 8 --no-shuffle",
                 data, cases[c].model, cases[c].loss, cases[c].sampler, cases[c].epochs);
        json_t *j = train_json(args);
        long long skipped = int_field(j, "skipped"), events = int_field(j, "events");
        print_message("%s %s/%s x%d: %lld learned, %lld skipped\n", cases[c].model, cases[c].loss,
                      cases[c].sampler, cases[c].epochs, events, skipped);
        if (cases[c].skipped >= 0)
            assert_int_equal(skipped, cases[c].skipped);
        assert_int_equal(int_field(j, "refused"), 0);
        assert_int_equal(int_field(j, "nonfinite_batches"), 0);
        assert_int_equal(events + skipped, 2 * U * cases[c].epochs);
        json_decref(j);
    }
}

/* Writes dir/name with `freshrec gen` (users, 400 items, 20,000 events,
 * seed) and its path into data. */
static void gen_file(char *data, size_t len, const char *name, int users, int seed)
{
    char cmd[512];
    snprintf(data, len, "%s/%s", dir, name);
    snprintf(cmd, sizeof(cmd),
             "%s/freshrec gen --users %d --items 400 --events 20000 --seed %d --out %s",
             harness_build(), users, seed, data);
    assert_int_equal(system(cmd), 0);
}

/* preq_hr10 is the first pass's: with --epochs 2 it is what --epochs 1 gives
 * on the same data and seed (the first pass is the same run up to its end);
 * the second pass's rankings go to train_hr10_last_epoch, null after one. */
static void test_preq_is_first_pass(void **state)
{
    (void)state;
    char data[128];
    gen_file(data, sizeof(data), "gen.tsv", 200, 3);
    char args[512];
    snprintf(args, sizeof(args), "--data %s --format synthetic --preq-rate 0.2 --seed 5 --epochs 1",
             data);
    json_t *one = train_json(args);
    args[strlen(args) - 1] = '2';
    json_t *two = train_json(args);
    double hr1 = real_field(one, "preq_hr10"), hr2 = real_field(two, "preq_hr10");
    print_message("preq_hr10: %.6f after 1 epoch, %.6f after 2\n", hr1, hr2);
    assert_float_equal(hr1, hr2, 0.0);
    assert_float_equal(real_field(one, "preq_ndcg10"), real_field(two, "preq_ndcg10"), 0.0);
    assert_true(int_field(one, "preq_ranked") > 1000);
    assert_int_equal(int_field(one, "preq_ranked"), int_field(two, "preq_ranked"));
    double last = real_field(two, "train_hr10_last_epoch");
    print_message("train_hr10_last_epoch (events already learned): %.6f\n", last);
    assert_true(json_is_null(json_object_get(one, "train_hr10_last_epoch")));
    assert_true(json_is_null(json_object_get(one, "train_ndcg10_last_epoch")));
    assert_true(last >= 0.0 && last <= 1.0);
    assert_true(real_field(two, "train_ndcg10_last_epoch") <= last);
    /* the second pass ranks events already learned: they rank higher */
    assert_true(last > hr1);
    json_decref(one);
    json_decref(two);
}

/* --shuffle (the default; --no-shuffle keeps time order): the passes after
 * the first learn the same events in another
 * order. The first pass is the stream as without it (the same prequential
 * figures: the order has a generator of its own, so the learner's draws are
 * those of the same seed); the model at the end is another (leave-one-out
 * and the last pass differ from the time-ordered run's); the same seed gives
 * the same run, and every event of every pass is learned. */
static void test_shuffle(void **state)
{
    (void)state;
    char data[128];
    gen_file(data, sizeof(data), "gen-shuffle.tsv", 200, 3);
    char args[512];
    snprintf(args, sizeof(args), "--data %s --format synthetic --preq-rate 0.2 --seed 5 --epochs 3",
             data);
    char plain_args[600];
    snprintf(plain_args, sizeof(plain_args), "%s --no-shuffle", args);
    json_t *plain = train_json(plain_args);
    json_t *dflt = train_json(args); /* shuffled by default */
    assert_true(json_is_true(json_object_get(dflt, "shuffle")));
    json_decref(dflt);
    strcat(args, " --shuffle");
    json_t *a = train_json(args), *b = train_json(args);
    assert_true(json_is_false(json_object_get(plain, "shuffle")));
    assert_true(json_is_true(json_object_get(a, "shuffle")));

    /* the first pass: the stream in time order either way */
    assert_float_equal(real_field(a, "preq_hr10"), real_field(plain, "preq_hr10"), 0.0);
    assert_float_equal(real_field(a, "preq_ndcg10"), real_field(plain, "preq_ndcg10"), 0.0);
    assert_int_equal(int_field(a, "preq_ranked"), int_field(plain, "preq_ranked"));
    /* the same events learned, all of them */
    long long events = int_field(plain, "events");
    assert_int_equal(int_field(a, "events"), events);
    assert_int_equal(int_field(a, "skipped"), 0);
    assert_int_equal(events % 3, 0);
    /* in another order: another model */
    static const char *const figures[] = {"hr10", "ndcg10", "train_hr10_last_epoch", "final_loss"};
    for (size_t k = 0; k < sizeof(figures) / sizeof(figures[0]); k++) {
        double x = real_field(plain, figures[k]), y = real_field(a, figures[k]);
        print_message("%s: %.6f in time order, %.6f shuffled\n", figures[k], x, y);
    }
    assert_true(real_field(plain, "final_loss") != real_field(a, "final_loss"));
    assert_true(real_field(plain, "ndcg10") != real_field(a, "ndcg10"));
    /* the same seed, the same run */
    for (size_t k = 0; k < sizeof(figures) / sizeof(figures[0]); k++)
        assert_float_equal(real_field(a, figures[k]), real_field(b, figures[k]), 0.0);
    json_decref(plain);
    json_decref(a);
    json_decref(b);
}

/* --members N: the JSON says how many, that their shared state is the same,
 * and what the model log cost; every event of the file is learned by one
 * member or another (member 0's share is reported); a model a member cannot
 * share is refused with exit 1 and a reason. */
static void test_members(void **state)
{
    (void)state;
    char data[128];
    gen_file(data, sizeof(data), "gen-members.tsv", 300, 4);
    char args[512];
    snprintf(args, sizeof(args), "--data %s --format synthetic --seed 2", data);
    json_t *one = train_json(args);
    assert_int_equal(int_field(one, "members"), 0);
    assert_null(json_object_get(one, "log_bytes_per_event"));
    strcat(args, " --members 3 --window 500");
    json_t *three = train_json(args);
    assert_int_equal(int_field(three, "members"), 3);
    assert_true(json_is_true(json_object_get(three, "shared_identical")));
    double bpe = real_field(three, "log_bytes_per_event");
    long long all = int_field(one, "events"), mine = int_field(three, "events");
    print_message("3 members: member 0 learned %lld of %lld events; %.0f log bytes per event; "
                  "HR@10 %.3f against one learner's %.3f\n",
                  mine, all, bpe, real_field(three, "hr10"), real_field(one, "hr10"));
    assert_true(bpe > 100.0);
    assert_true(mine > all / 5 && mine < all / 2); /* about a third */
    assert_true(real_field(three, "hr10") >= real_field(one, "hr10") - 0.05);
    json_decref(one);
    json_decref(three);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "%s/freshrec train --data %s --format synthetic --model hmf --members 2 --quiet "
             ">%s/hmf.out 2>&1",
             harness_build(), data, dir);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    snprintf(cmd, sizeof(cmd), "grep -q 'history' %s/hmf.out", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_counts_skipped),
        cmocka_unit_test(test_preq_is_first_pass),
        cmocka_unit_test(test_shuffle),
        cmocka_unit_test(test_members),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
