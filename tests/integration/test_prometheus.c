/* test_prometheus.c — a real Prometheus server (Debian's) on a free loopback
 * port scrapes the real freshrecd's stats port, and a freshrec metric is read
 * back through Prometheus's HTTP API; the alert rules load in it (promtool's
 * check and unit tests of the rules are test_rules.sh's). Everything is
 * stopped whatever the outcome. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_scraped_by_prometheus(void **state)
{
    (void)state;
    harness_stack_t st;
    harness_stack_opts_t opts = {.partitions = 1, .name = "test_prometheus"};
    assert_int_equal(harness_stack_start(&st, &opts), 0);
    int sport = st.stats_port, pport = harness_free_port();
    char dir[256], conf[300], cwd[1024];

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(dir, sizeof(dir), "/tmp/fr-prom-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(conf, sizeof(conf), "%s/prometheus.yml", dir);
    FILE *f = fopen(conf, "w");
    fprintf(f,
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "rule_files: ['%s/systemd/freshrec-alerts.yml']\n"
            "scrape_configs:\n"
            "  - job_name: freshrec\n"
            "    static_configs: [{targets: ['127.0.0.1:%d']}]\n",
            cwd, sport);
    fclose(f);
    char a_conf[320], a_tsdb[320], a_listen[64];
    snprintf(a_conf, sizeof(a_conf), "--config.file=%s", conf);
    snprintf(a_tsdb, sizeof(a_tsdb), "--storage.tsdb.path=%s/data", dir);
    snprintf(a_listen, sizeof(a_listen), "--web.listen-address=127.0.0.1:%d", pport);
    char *argv[] = {"/usr/bin/prometheus", a_conf, a_tsdb, a_listen, NULL};
    pid_t prom = harness_spawn(argv, st.log);
    assert_true(prom > 0);

    /* the query API answers with the daemon's own figure */
    static char body[1 << 16];
    double t0 = harness_now_ms();
    double value = -1;
    while (harness_now_ms() - t0 < 30000 && value < 0) {
        usleep(250000);
        if (harness_http_get(pport, "/api/v1/query?query=freshrec_consuming", body, sizeof(body)) !=
            200)
            continue;
        json_t *j = json_loads(body, 0, NULL);
        json_t *res = json_object_get(json_object_get(j, "data"), "result");
        if (json_array_size(res) == 1) {
            json_t *v = json_array_get(json_object_get(json_array_get(res, 0), "value"), 1);
            value = atof(json_string_value(v));
        }
        json_decref(j);
    }
    print_message("Prometheus read freshrec_consuming = %.0f after %.1f s\n", value,
                  (harness_now_ms() - t0) / 1000);
    assert_true(value == 1.0);
    /* and it loaded the rules */
    assert_int_equal(harness_http_get(pport, "/api/v1/rules", body, sizeof(body)), 200);
    assert_non_null(strstr(body, "FreshrecRedisUnreachable"));

    harness_stop(prom);
    assert_int_equal(harness_stack_stop(&st), 0); /* SIGTERM: exit 0 */
    assert_int_equal(harness_rmtree(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scraped_by_prometheus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
