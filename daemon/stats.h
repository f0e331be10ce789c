/* stats.h — the stats port (libevent's evhttp, 127.0.0.1 by default):
 *   GET /metrics   Prometheus text format (version 0.0.4)
 *   GET /stats     the same figures as one JSON object
 *   GET /healthz   200 "ok" when consuming, Redis is connected and the
 *                  dead-letter topic takes copies, else 503
 *                  "degraded: <reasons>"; 200 "degraded: checkpoints failing
 *                  ..." when only checkpoints fail (see stats_healthy)
 *   GET /vector?user=ID, ?item=ID   the vector the daemon publishes for an
 *                  id, as JSON (f32le hex and floats); 404 unknown, 400 bad
 * Every request asks the daemon for a fresh snapshot. Not for: computing the
 * figures (the daemon keeps them in a metrics_t) or the vectors. */
#ifndef FR_STATS_H
#define FR_STATS_H

#include "metrics.h"

#include <stddef.h>

struct event_base;
struct evbuffer;

typedef void (*stats_snapshot_fn)(void *arg, metrics_t *out);

typedef struct stats stats_t;

/* The check stats_start makes on its address: a numeric IPv4 or IPv6
 * address (no name lookup). 0, or -1 and the reason in why. For
 * config_validate. */
int stats_check_listen(const char *addr, char *why, size_t wlen);

/* Listens on addr:port (port 0 picks a free one; stats_port tells it). addr
 * is a numeric IPv4 or IPv6 address (no name lookup). HEAD is answered like
 * GET without the body; other methods get 405, unknown paths 404. NULL and a
 * message in errstr when the address is bad or the port taken. */
stats_t *stats_start(struct event_base *base, const char *addr, int port, stats_snapshot_fn fn,
                     void *arg, char *errstr, size_t len);
int stats_port(const stats_t *s); /* -1 for NULL */

/* The vector the daemon would publish now for an id (side 'u' or 'i'):
 * writes it to out and returns its dim, or 0 when the id is unknown; a dim
 * above cap is returned without writing. */
typedef int (*stats_vector_fn)(void *arg, char side, const char *id, size_t len, float *out,
                               int cap);
#define STATS_VECTOR_MAX 4096 /* floats: the largest vector the config allows */
/* Serves GET /vector through fn; until then /vector answers 404. */
void stats_set_vector_fn(stats_t *s, stats_vector_fn fn, void *arg);
void stats_stop(stats_t *s); /* NULL is fine */

/* The renderers, public for tests. Append to out. */
void stats_render_prometheus(const metrics_t *m, struct evbuffer *out);
void stats_render_json(const metrics_t *m, struct evbuffer *out);
/* 1 when the daemon does its job (consuming, connected to Redis, its
 * dead-letter copies delivered), else 0: /healthz's 200 or 503. reason is
 * "ok" when nothing is wrong, else what is: "not consuming (no partitions
 * assigned)", "redis disconnected", "dead-letter topic refusing copies
 * (consuming stopped, offsets held)", "checkpoints failing (offsets stay uncommitted)", joined by
 * "; ". Failing checkpoints alone leave it at 1: the daemon still learns and publishes fresh
 * vectors, and a restart (what a 503 invites) would not make the disk writable; only a crash
 * meanwhile costs more, in events learned again. */
int stats_healthy(const metrics_t *m, char *reason, size_t len);
/* The /vector answer for dim floats of v: {"side", "id", "dim", "f32le"
 * (hex of the bytes Redis holds), "vector" (floats, 9 significant digits:
 * they read back exactly)}. */
void stats_render_vector(char side, const char *id, size_t len, const float *v, int dim,
                         struct evbuffer *out);

#endif
