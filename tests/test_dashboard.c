/* test_dashboard.c — the dashboard at GET / on the stats port, loaded in
 * Debian's headless Chromium while the real freshrecd learns (real
 * redis-server, the mock Kafka cluster, all on loopback): the page must be
 * self-contained (no external URL), its charts must hold data points, and a
 * screenshot is written to $BUILD/dashboard.png. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "event.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#define CHROMIUM                                                                                   \
    "chromium --headless --no-sandbox --disable-gpu --no-first-run "                              \
    "--disable-background-networking --disable-component-update --disable-sync "                 \
    "--disable-quic --virtual-time-budget=12000 --window-size=1280,900 "

/* keeps the daemon learning (and publishing) while the page is open */
static volatile int producing;
static void *produce_slowly(void *arg)
{
    harness_kafka_t *k = arg;
    char buf[256], u[32], it[32];
    for (int n = 0; producing && n < 100000; n++) {
        snprintf(u, sizeof(u), "u%d", n % 300);
        snprintf(it, sizeof(it), "i%d", (n * 13) % 500);
        size_t len = event_encode(buf, sizeof(buf), u, strlen(u), it, strlen(it), "click", -1);
        harness_kafka_produce(k, u, buf, len);
        if (n % 100 == 0)
            usleep(20000);
    }
    return NULL;
}

static void test_dashboard_charts(void **state)
{
    (void)state;
    const char *build = harness_build();
    int rport = harness_free_port(), sport = harness_free_port();
    pid_t redis = harness_redis_start(rport);
    assert_true(redis > 0);
    harness_kafka_t k;
    assert_int_equal(harness_kafka_start(&k, 2), 0);
    char log[256];
    harness_log_path(log, sizeof(log), "test_dashboard");
    pid_t d = harness_daemon_start(k.brokers, rport, sport, NULL, log);
    assert_true(harness_daemon_healthy(sport, 30000));

    /* the page itself: HTML, and nothing it would fetch from elsewhere */
    static char page[1 << 16];
    assert_int_equal(harness_http_get(sport, "/", page, sizeof(page)), 200);
    assert_non_null(strstr(page, "<canvas"));
    assert_null(strstr(page, "http://"));
    assert_null(strstr(page, "https://"));
    assert_null(strstr(page, "src="));

    char buf[256], u[32], it[32];
    for (int n = 0; n < 20000; n++) {
        snprintf(u, sizeof(u), "u%d", n % 300);
        snprintf(it, sizeof(it), "i%d", (n * 7) % 500);
        size_t len = event_encode(buf, sizeof(buf), u, strlen(u), it, strlen(it), "click", -1);
        harness_kafka_produce(&k, u, buf, len);
    }
    assert_int_equal(harness_kafka_flush(&k, 30000), 0);

    producing = 1;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, produce_slowly, &k), 0);
    char cmd[1024], shot[300];
    snprintf(shot, sizeof(shot), "%s/dashboard.png", build);
    unlink(shot);
    snprintf(cmd, sizeof(cmd),
             CHROMIUM "--user-data-dir=%s/tests/chromium-a --screenshot=%s "
                      "http://127.0.0.1:%d/ > /dev/null 2>&1",
             build, shot, sport);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(access(shot, F_OK), 0);
    snprintf(cmd, sizeof(cmd),
             CHROMIUM "--user-data-dir=%s/tests/chromium-b --dump-dom http://127.0.0.1:%d/ "
                      "2>/dev/null",
             build, sport);
    FILE *p = popen(cmd, "r");
    static char dom[1 << 16];
    size_t n = fread(dom, 1, sizeof(dom) - 1, p);
    dom[n] = '\0';
    pclose(p);
    static const char *charts[] = {"loss", "hr", "rate", "lat", "lag", "users", "items"};
    for (size_t c = 0; c < sizeof(charts) / sizeof(charts[0]); c++) {
        char key[64];
        snprintf(key, sizeof(key), "id=\"c-%s\" data-points=\"", charts[c]);
        const char *at = strstr(dom, key);
        assert_non_null(at);
        int points = atoi(at + strlen(key));
        print_message("chart %-6s %d points\n", charts[c], points);
        assert_true(points >= 2);
    }
    assert_non_null(strstr(dom, "healthy"));
    producing = 0;
    pthread_join(th, NULL);

    kill(d, SIGTERM);
    assert_int_equal(harness_wait(d, 20000), 0);
    harness_kafka_stop(&k);
    harness_stop(redis);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dashboard_charts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
