/* test_dashboard.c — the dashboard at GET / on the stats port, loaded in
 * Debian's headless Chromium while the real freshrecd learns (real
 * redis-server, the mock Kafka cluster, all on loopback): the page must be
 * self-contained (dygraphs inlined with its licence header, no external URL),
 * run without a script error, its charts must hold data points, and its rate
 * must be the daemon's although Chromium's virtual time runs far ahead of the
 * real one. A screenshot is written to $BUILD/dashboard.png. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "clock.h"
#include "event.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

/* bounded: a Chromium that hangs is killed, and the test fails */
#define CHROMIUM                                                                                   \
    "timeout -k 5 120 chromium --headless --no-sandbox --disable-gpu --no-first-run "              \
    "--disable-background-networking --disable-component-update --disable-sync "                   \
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

/* Every "://" in the page lies inside a licence comment (one that opens with
 * slash, star, bang, as minifiers keep them): a URL there is text, not
 * something the browser fetches. */
static int urls_only_in_licences(const char *page)
{
    for (const char *at = strstr(page, "://"); at; at = strstr(at + 3, "://")) {
        const char *open = NULL;
        for (const char *c = strstr(page, "/*!"); c && c < at; c = strstr(c + 3, "/*!"))
            open = c;
        if (open == NULL)
            return 0;
        const char *close = strstr(open, "*/");
        if (close == NULL || close < at)
            return 0;
    }
    return 1;
}

/* events learned and the daemon's monotonic seconds, from /stats */
static void learned_at(int sport, double *learned, double *uptime, long long *time_ms)
{
    static char body[1 << 20];
    assert_int_equal(harness_http_get(sport, "/stats", body, sizeof(body)), 200);
    json_error_t err;
    json_t *j = json_loads(body, 0, &err);
    assert_non_null(j);
    json_t *t = json_object_get(j, "time_ms");
    assert_true(json_is_integer(t));
    *time_ms = json_integer_value(t);
    *learned = (double)json_integer_value(json_object_get(json_object_get(j, "events"), "learned"));
    *uptime = json_real_value(json_object_get(json_object_get(j, "process"), "uptime_seconds"));
    assert_true(*uptime > 0);
    json_decref(j);
}

/* the value of attribute attr of the element whose id="id" is in dom */
static const char *attr_of(const char *dom, const char *id, const char *attr)
{
    char key[64];
    snprintf(key, sizeof(key), "id=\"%s\"", id);
    const char *el = strstr(dom, key), *end = el ? strchr(el, '>') : NULL;
    if (el == NULL || end == NULL)
        return NULL;
    snprintf(key, sizeof(key), " %s=\"", attr);
    const char *at = strstr(el, key);
    return at && at < end ? at + strlen(key) : NULL;
}

static void test_dashboard_charts(void **state)
{
    (void)state;
    const char *build = harness_build();
    harness_stack_t st;
    harness_stack_opts_t opts = {.partitions = 2, .name = "test_dashboard"};
    assert_int_equal(harness_stack_start(&st, &opts), 0);
    harness_kafka_t *k = &st.kafka;
    int sport = st.stats_port;

    /* the page itself: HTML with dygraphs inside, and nothing it would fetch
     * from elsewhere */
    static char page[1 << 19];
    assert_int_equal(harness_http_get(sport, "/", page, sizeof(page)), 200);
    assert_true(strlen(page) > 100000); /* the library is there, not a stub */
    assert_non_null(strstr(page, "/*! @license"));
    assert_non_null(strstr(page, "Dygraph.VERSION"));
    assert_null(strstr(page, "@DYGRAPHS_"));
    assert_true(urls_only_in_licences(page));
    assert_null(strstr(page, "sourceMappingURL"));
    assert_null(strstr(page, "<link"));
    assert_null(strstr(page, "@import"));
    assert_null(strstr(page, "url("));
    for (const char *sc = strstr(page, "<script"); sc; sc = strstr(sc + 1, "<script"))
        assert_true(sc[7] == '>'); /* no src= */
    /* rates and the time axis come from the daemon's clocks, not the page's */
    assert_null(strstr(page, "performance.now"));
    assert_null(strstr(page, "Date.now"));
    assert_non_null(strstr(page, "s.time_ms"));
    assert_non_null(strstr(page, "uptime_seconds"));

    char buf[256], u[32], it[32];
    for (int n = 0; n < 20000; n++) {
        snprintf(u, sizeof(u), "u%d", n % 300);
        snprintf(it, sizeof(it), "i%d", (n * 7) % 500);
        size_t len = event_encode(buf, sizeof(buf), u, strlen(u), it, strlen(it), "click", -1);
        harness_kafka_produce(k, u, buf, len);
    }
    assert_int_equal(harness_kafka_flush(k, 30000), 0);
    /* the backlog learned first: from here on the daemon learns at the
     * producer's steady pace, the rate the page must show */
    double learned = 0, uptime, t0 = harness_now_ms();
    long long wall;
    while (learned < 20000 && harness_now_ms() - t0 < 60000) {
        learned_at(sport, &learned, &uptime, &wall);
        usleep(50000);
    }
    assert_true(learned >= 20000);
    /* time_ms is the daemon's wall clock, the test's own here */
    assert_true(llabs(wall - (long long)clock_wall_ms()) < 60000);

    if (system("command -v chromium > /dev/null 2>&1") != 0) {
        print_message("SKIP: no chromium on PATH (make deps installs Debian's); the page's "
                      "text was checked, its rendering was not\n");
        assert_int_equal(harness_stack_stop(&st), 0); /* SIGTERM: exit 0 */
        skip();
    }
    producing = 1;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, produce_slowly, k), 0);
    char cmd[1024], shot[300];
    snprintf(shot, sizeof(shot), "%s/dashboard.png", build);
    unlink(shot);
    snprintf(cmd, sizeof(cmd),
             CHROMIUM "--user-data-dir=%s/tests/chromium-a --screenshot=%s "
                      "http://127.0.0.1:%d/ > /dev/null 2>&1",
             build, shot, sport);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(access(shot, F_OK), 0);
    double learned0, uptime0, learned1, uptime1;
    learned_at(sport, &learned0, &uptime0, &wall);
    snprintf(cmd, sizeof(cmd),
             CHROMIUM "--user-data-dir=%s/tests/chromium-b --dump-dom http://127.0.0.1:%d/ "
                      "2>/dev/null",
             build, sport);
    FILE *p = popen(cmd, "r");
    static char dom[1 << 16];
    size_t n = fread(dom, 1, sizeof(dom) - 1, p);
    dom[n] = '\0';
    pclose(p);
    learned_at(sport, &learned1, &uptime1, &wall);
    /* the inlined library ran, and nothing of the page's threw */
    assert_non_null(strstr(dom, "data-charts=\"dygraphs "));
    assert_null(strstr(dom, "data-error="));
    static const char *charts[] = {"loss", "hr", "rate", "lat", "lag", "users", "items"};
    for (size_t c = 0; c < sizeof(charts) / sizeof(charts[0]); c++) {
        char id[32];
        snprintf(id, sizeof(id), "c-%s", charts[c]);
        const char *at = attr_of(dom, id, "data-points");
        assert_non_null(at);
        int points = atoi(at);
        print_message("chart %-6s %d points\n", charts[c], points);
        assert_true(points >= 2);
    }
    assert_non_null(strstr(dom, "class=\"dygraph-axis-label")); /* drawn, with axes */
    /* Chromium's 12 s of virtual time pass in well under a second of real
     * time: a rate over the page's clock would be far below the daemon's */
    const char *last = attr_of(dom, "c-rate", "data-last");
    assert_non_null(last);
    double shown = atof(last), truth = (learned1 - learned0) / (uptime1 - uptime0);
    print_message("events/s: the page shows %.0f, the daemon learned %.0f over the capture\n",
                  shown, truth);
    assert_true(truth > 100);
    assert_true(shown > truth / 3 && shown < truth * 3);
    assert_non_null(strstr(dom, "healthy"));
    producing = 0;
    pthread_join(th, NULL);

    assert_int_equal(harness_stack_stop(&st), 0); /* SIGTERM: exit 0 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dashboard_charts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
