/* log.c — log lines and rate limiting (see log.h). */
#define _POSIX_C_SOURCE 200809L
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int cur = LOG_INFO;
static const char *names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void log_set_level(int level)
{
    if (level >= LOG_ERROR && level <= LOG_DEBUG)
        cur = level;
}

static int log_enabled(int level)
{
    return level <= cur;
}

static void vlog(int level, const char *sub, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    fprintf(stderr, "%s %s: %s\n", names[level], sub, msg);
}

void log_msg(int level, const char *sub, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, sub, fmt, ap);
    va_end(ap);
}

void log_limited(log_limit_t *lim, int level, const char *sub, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ts.tv_sec != lim->window_s) {
        lim->window_s = ts.tv_sec;
        lim->used = 0;
    }
    if (lim->used >= (lim->burst > 0 ? lim->burst : 10)) {
        lim->suppressed++;
        return;
    }
    lim->used++;
    if (lim->suppressed) {
        log_msg(level, sub, "(%llu similar lines suppressed)", (unsigned long long)lim->suppressed);
        lim->suppressed = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vlog(level, sub, fmt, ap);
    va_end(ap);
}
