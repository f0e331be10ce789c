/* test_config_daemon.c — the config as the real freshrecd binary reports it:
 * an invalid value exits 2 at --print-config (not 1 later at start) with a
 * message naming the file and line, or --set; a key given twice in the file
 * is refused; and the SIGHUP log line lists exactly the hot keys it counts.
 * The last case runs the daemon against a real redis-server and librdkafka's
 * mock cluster on free loopback ports (harness_stack_start). Not for: the table's single-key
 * checks (test_config). */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

/* freshrecd with args (NULL-terminated); its exit status, its output in log */
static int run(const char *const *args, const char *log)
{
    char bin[256];
    snprintf(bin, sizeof(bin), "%s/freshrecd", harness_build());
    char *argv[16] = {bin};
    int n = 1;
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    unlink(log);
    pid_t p = harness_spawn(argv, log);
    assert_true(p > 0);
    return harness_wait(p, 10000);
}

static void test_print_config_refuses(void **state)
{
    (void)state;
    char log[256], conf[256], want[512];
    harness_log_path(log, sizeof(log), "test_config_daemon");
    snprintf(conf, sizeof(conf), "%s/tests/test_config_daemon.conf", harness_build());
    struct {
        const char *file; /* NULL: no -c */
        const char *set;  /* NULL: no --set */
        const char *want; /* "%s" is the file's path */
    } cases[] = {
        {NULL, "stats.listen=localhost", "freshrecd: config: --set: [stats] listen = localhost: "},
        {"[stats]\nport = 9464\nlisten = localhost\n", NULL,
         "freshrecd: config: %s:3: [stats] listen = localhost: "},
        {"[kafka]\ndead_letter_topic = a,b\n", NULL,
         "freshrecd: config: %s:2: [kafka] dead_letter_topic = a,b: "},
        {"[events]\nkinds = purchase:0\n", NULL, "freshrecd: config: %s:2: [events] kinds = "},
        {"[kafka]\nproperties = acks=maybe\n", NULL,
         "freshrecd: config: %s:2: [kafka] properties: acks"},
        {"[model]\nkind = lr\ndim = 512\n", NULL, "freshrecd: config: %s:3: [model] dim = 512"},
        {"[model]\ndim = 16\ndim = 8\n", NULL,
         "freshrecd: config: %s:3: [model] dim given twice (first at line 2)"},
        {"[stats]\nlisten = localhost\n", "stats.listen=127.0.0.1", NULL}, /* fixed by --set */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[16] = {NULL};
        int n = 0;
        args[n++] = "--print-config";
        if (cases[i].file) {
            write_file(conf, cases[i].file);
            args[n++] = "-c";
            args[n++] = conf;
        }
        if (cases[i].set) {
            args[n++] = "--set";
            args[n++] = cases[i].set;
        }
        args[n] = NULL;
        int rc = run(args, log);
        char *out = slurp(log);
        if (!cases[i].want) {
            if (rc != 0)
                fail_msg("case %zu: exit %d: %s", i, rc, out);
            continue;
        }
        snprintf(want, sizeof(want), cases[i].want, conf);
        if (rc != 2 || strncmp(out, want, strlen(want)))
            fail_msg("case %zu: exit %d (want 2), output \"%s\" (want \"%s...\")", i, rc, out,
                     want);
    }
    /* a key the model does not read: a warning on stderr, the config printed, exit 0 */
    write_file(conf, "[model]\ntower = 64,32\n");
    const char *args[] = {"--print-config", "-c", conf, NULL};
    assert_int_equal(run(args, log), 0);
    char *out = slurp(log);
    snprintf(want, sizeof(want),
             "freshrecd: config: warning: %s:2: [model] tower does not apply to model neumf "
             "(read by dssm): ignored\n",
             conf);
    if (!strstr(out, want) || !strstr(out, "tower = 64,32\n"))
        fail_msg("output \"%s\" lacks \"%s\"", out, want);
    unlink(conf);
}

static void test_sighup_lists_what_it_counts(void **state)
{
    (void)state;
    char conf[256];
    snprintf(conf, sizeof(conf), "%s/tests/test_config_daemon_hup.conf", harness_build());
    /* the servers and ports come as --set, which a reload applies again */
    write_file(conf, "[daemon]\nlog_level = info\n");
    harness_stack_t S;
    harness_stack_opts_t opts = {.name = "test_config_daemon_hup", .conf = conf};
    assert_int_equal(harness_stack_start(&S, &opts), 0);

    /* one hot key and one cold key change */
    write_file(conf, "[model]\nlr_sparse = 0.05\ndim = 16\n[daemon]\nlog_level = info\n");
    kill(S.daemon, SIGHUP);
    int ok =
        harness_log_wait(S.log, "SIGHUP: 1 hot key(s) changed: lr_sparse 0.03 -> 0.05\n", 10000);
    /* nothing changes: 0, and no list */
    kill(S.daemon, SIGHUP);
    int ok0 = harness_log_wait(S.log, "SIGHUP: 0 hot key(s) changed\n", 10000);
    /* a value start-up would refuse: refused, the file and line named */
    write_file(conf, "[model]\nlr_sparse = 0.05\ndim = 16\n[stats]\nlisten = localhost\n");
    kill(S.daemon, SIGHUP);
    char want[512];
    snprintf(want, sizeof(want),
             "reload refused, nothing changed: %s:5: [stats] listen = localhost", conf);
    int refused = harness_log_wait(S.log, want, 10000);
    if (!ok || !ok0 || !refused)
        print_message("log:\n%s\n", slurp(S.log));
    assert_true(ok);
    assert_true(ok0);
    assert_true(refused);

    assert_int_equal(harness_stack_stop(&S), 0); /* the daemon's exit status */
    unlink(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_print_config_refuses),
        cmocka_unit_test(test_sighup_lists_what_it_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
