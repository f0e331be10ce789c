/* publish.c — fr-pub-bench: how many vectors a second the publisher
 * (store/publish.c, as freshrecd runs it) writes to one Redis or to a Redis
 * Cluster, on a libevent loop of its own.
 *
 * Each round is what a busy daemon's round is: pub_begin, --round vectors
 * (ids i0, i1, … of --dim random floats, SET with the default TTL, the item
 * index kept), pub_end with the meta hash, then the loop until Redis has
 * confirmed every write. --vectors in all, timed from the first round's
 * start to the last one's end; one JSON line. A round that failed any write
 * fails the run.
 *
 * Not for: the daemon's own choice of what to write (daemon/sync.c) or
 * freshness (bench/freshness.c). */
#define _POSIX_C_SOURCE 200809L
#include "clock.h"
#include "publish.h"

#include <event2/event.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    struct event_base *base;
    int done, failed;
    size_t keys;
} run_t;

static void on_done(void *arg, int ok, size_t keys, size_t bytes, double seconds)
{
    (void)bytes, (void)seconds;
    run_t *r = arg;
    r->done = 1;
    r->failed |= !ok;
    r->keys += keys;
    event_base_loopbreak(r->base);
}

static void on_fail(void *arg, char side, const char *id, size_t len)
{
    (void)side, (void)id, (void)len;
    ((run_t *)arg)->failed = 1;
}

/* the loop until the round ends, or for timeout_s; 0 or -1 */
static int loop_until(run_t *r, int *flag, double timeout_s)
{
    double t0 = clock_mono_s();
    while (!*flag && clock_mono_s() - t0 < timeout_s) {
        struct timeval tv = {0, 100000};
        event_base_loopexit(r->base, &tv);
        event_base_dispatch(r->base);
    }
    return *flag ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1:6379";
    long vectors = 500000, per_round = 20000;
    int dim = 32, cluster = 0;
    static const struct option opts[] = {{"redis", 1, 0, 'r'},   {"cluster", 0, 0, 'c'},
                                         {"vectors", 1, 0, 'n'}, {"round", 1, 0, 'k'},
                                         {"dim", 1, 0, 'd'},     {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            addr = optarg;
            break;
        case 'c':
            cluster = 1;
            break;
        case 'n':
            vectors = atol(optarg);
            break;
        case 'k':
            per_round = atol(optarg);
            break;
        case 'd':
            dim = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: fr-pub-bench --redis HOST:PORT [--cluster] [--vectors N] "
                            "[--round K] [--dim D]\n");
            return 2;
        }
    }
    if (vectors < 1 || per_round < 1 || dim < 1 || dim > 1024) {
        fprintf(stderr, "fr-pub-bench: --vectors, --round and --dim must be positive\n");
        return 2;
    }
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof(host)) {
        fprintf(stderr, "fr-pub-bench: --redis HOST:PORT, not '%s'\n", addr);
        return 2;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    run_t r = {.base = event_base_new()};
    pub_config_t pc = {.host = host,
                       .port = atoi(colon + 1),
                       .prefix = "frbench",
                       .model = "neumf",
                       .ttl_s = 604800,
                       .reconnect_max_ms = 1000,
                       .round_timeout_ms = 60000,
                       .item_index = 1,
                       .cluster = cluster};
    char err[256];
    pub_t *p = pub_create(r.base, &pc, on_fail, on_done, &r, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "fr-pub-bench: %s\n", err);
        return 1;
    }
    int up = 0;
    for (double t0 = clock_mono_s(); !up && clock_mono_s() - t0 < 10;) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(r.base, &tv);
        event_base_dispatch(r.base);
        up = pub_connected(p);
    }
    if (!up) {
        fprintf(stderr, "fr-pub-bench: no link to %s%s\n", addr, cluster ? " (a cluster)" : "");
        pub_free(p);
        return 1;
    }
    float *v = malloc(sizeof(float) * (size_t)dim);
    unsigned long long x = 88172645463325252ull;
    for (int f = 0; f < dim; f++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        v[f] = (float)(x % 2001) / 1000.0f - 1.0f;
    }
    pub_meta_t meta = {.kind = "neumf", .dim = dim, .layout = "gmf:0:1"};
    double t0 = clock_mono_s();
    long sent = 0;
    int rounds = 0, rc = 0;
    while (sent < vectors && !rc) {
        if (pub_begin(p)) {
            fprintf(stderr, "fr-pub-bench: the publisher refused a round (link down)\n");
            rc = 1;
            break;
        }
        char id[32];
        for (long k = 0; k < per_round && sent < vectors; k++, sent++) {
            int len = snprintf(id, sizeof(id), "i%ld", sent);
            v[0] = (float)sent; /* each vector its own */
            pub_add(p, 'i', id, (size_t)len, v, dim);
        }
        r.done = 0;
        pub_end(p, &meta, 0);
        if (loop_until(&r, &r.done, 60) < 0 || r.failed) {
            fprintf(stderr, "fr-pub-bench: round %d %s\n", rounds,
                    r.failed ? "failed" : "timed out");
            rc = 1;
        }
        rounds++;
    }
    double dt = clock_mono_s() - t0;
    if (!rc)
        printf("{\"redis\":\"%s\",\"cluster\":%d,\"vectors\":%ld,\"rounds\":%d,\"dim\":%d,"
               "\"seconds\":%.3f,\"vectors_per_s\":%.0f}\n",
               addr, cluster, sent, rounds, dim, dt, (double)sent / dt);
    pub_free(p);
    event_base_free(r.base);
    free(v);
    return rc;
}
