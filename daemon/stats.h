/* stats.h — the stats port (libevent's evhttp, 127.0.0.1 by default):
 *   GET /metrics   Prometheus text format (version 0.0.4)
 *   GET /stats     the same figures as one JSON object
 *   GET /healthz   200 "ok" when consuming and Redis is connected, else 503
 *                  with the reason
 * Every request asks the daemon for a fresh snapshot. Not for: computing the
 * figures (the daemon keeps them in a metrics_t). */
#ifndef FR_STATS_H
#define FR_STATS_H

#include "metrics.h"

#include <stddef.h>

struct event_base;
struct evbuffer;

typedef void (*stats_snapshot_fn)(void *arg, metrics_t *out);

typedef struct stats stats_t;

/* Listens on addr:port (port 0 picks a free one; stats_port tells it). addr
 * is a numeric IPv4 or IPv6 address (no name lookup). HEAD is answered like
 * GET without the body; other methods get 405, unknown paths 404. NULL and a
 * message in errstr when the address is bad or the port taken. */
stats_t *stats_start(struct event_base *base, const char *addr, int port, stats_snapshot_fn fn,
                     void *arg, char *errstr, size_t len);
int stats_port(const stats_t *s); /* -1 for NULL */
void stats_stop(stats_t *s);      /* NULL is fine */

/* The renderers, public for tests. Append to out. */
void stats_render_prometheus(const metrics_t *m, struct evbuffer *out);
void stats_render_json(const metrics_t *m, struct evbuffer *out);
/* 1 when healthy (reason "ok"); otherwise 0 and reason says why:
 * "not consuming (no partitions assigned)", "redis disconnected", or both
 * joined by "; ". */
int stats_healthy(const metrics_t *m, char *reason, size_t len);

#endif
