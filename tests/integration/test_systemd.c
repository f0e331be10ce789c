/* test_systemd.c — freshrecd as a systemd service: the unit passes
 * `systemd-analyze verify`, its offline security exposure stays at 2.0 or
 * lower, and the real daemon speaks the notify protocol (READY=1 once it
 * consumes with Redis connected, STATUS, WATCHDOG=1, STOPPING=1 on SIGTERM)
 * to a socket the test listens on, with a real redis-server and the mock
 * Kafka cluster on loopback. */
#define _GNU_SOURCE
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
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* the unit with ExecStart naming this build's daemon */
static void unit_for_test(char *path, size_t len)
{
    char cwd[1024], cmd[2048];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(path, len, "%s/tests/freshrec.service", harness_build());
    snprintf(cmd, sizeof(cmd),
             "sed 's|/usr/bin/freshrecd|%s/%s/freshrecd|' systemd/freshrec.service > %s", cwd,
             harness_build(), path);
    assert_int_equal(system(cmd), 0);
}

static void test_unit_verifies(void **state)
{
    (void)state;
    char unit[512], cmd[1024];
    unit_for_test(unit, sizeof(unit));
    snprintf(cmd, sizeof(cmd), "systemd-analyze verify %s", unit);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd),
             "systemd-analyze security --offline=true %s 2>&1 | sed -n 's/.*exposure level for "
             "[^:]*: \\([0-9.]*\\).*/\\1/p'",
             unit);
    FILE *p = popen(cmd, "r");
    double exposure = 99;
    assert_int_equal(fscanf(p, "%lf", &exposure), 1);
    pclose(p);
    print_message("systemd-analyze security exposure: %.1f\n", exposure);
    assert_true(exposure <= 2.0);
}

static int wait_for(int fd, const char *what, int timeout_ms, char *last, size_t len)
{
    double t0 = harness_now_ms();
    char buf[4096];
    while (harness_now_ms() - t0 < timeout_ms) {
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        if (n <= 0) {
            usleep(20000);
            continue;
        }
        buf[n] = '\0';
        for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
            if (strncmp(l, "STATUS=", 7) == 0 && last)
                snprintf(last, len, "%s", l);
            if (strcmp(l, what) == 0 ||
                (what[strlen(what) - 1] == '=' && strncmp(l, what, strlen(what)) == 0))
                return 1;
        }
    }
    return 0;
}

static void test_notify_protocol(void **state)
{
    (void)state;
    int rport = harness_free_port(), sport = harness_free_port();
    pid_t redis = harness_redis_start(rport);
    assert_true(redis > 0);
    harness_kafka_t k;
    assert_int_equal(harness_kafka_start(&k, 2), 0);

    char sock[96], log[256];
    snprintf(sock, sizeof(sock), "/tmp/fr-notify-%d.sock", (int)getpid());
    harness_log_path(log, sizeof(log), "test_systemd");
    unlink(sock);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);

    setenv("NOTIFY_SOCKET", sock, 1);
    setenv("WATCHDOG_USEC", "3000000", 1);
    pid_t d = harness_daemon_start(k.brokers, rport, sport, NULL, log);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    assert_true(d > 0);
    char status[512] = "";
    assert_true(wait_for(fd, "READY=1", 30000, status, sizeof(status)));
    assert_true(harness_daemon_healthy(sport, 0)); /* ready means healthy */
    assert_true(wait_for(fd, "WATCHDOG=1", 5000, status, sizeof(status)));
    assert_true(wait_for(fd, "STATUS=", 5000, status, sizeof(status)));
    print_message("%s\n", status);
    assert_non_null(strstr(status, "Redis connected"));
    kill(d, SIGTERM);
    assert_true(wait_for(fd, "STOPPING=1", 10000, NULL, 0));
    assert_int_equal(harness_wait(d, 20000), 0);
    close(fd);
    unlink(sock);
    harness_kafka_stop(&k);
    harness_stop(redis);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unit_verifies),
        cmocka_unit_test(test_notify_protocol),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
