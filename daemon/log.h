/* log.h — freshrecd's log lines on stderr (journald takes them as they are):
 * "<level> <subsystem>: <message>", with a per-call-site rate limit for what
 * bad input can repeat. Not for: metrics. */
#ifndef FR_LOG_H
#define FR_LOG_H

#include <stdint.h>

enum { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

int log_level_parse(const char *name); /* -1 when unknown */
void log_set_level(int level);
void log_msg(int level, const char *sub, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A rate limit: at most burst lines per second; the rest are counted and
 * reported with the next line that passes. */
typedef struct {
    int burst;
    int64_t window_s;
    int used;
    uint64_t suppressed;
} log_limit_t;

void log_limited(log_limit_t *lim, int level, const char *sub, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
