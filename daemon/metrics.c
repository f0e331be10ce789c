/* metrics.c — the publish-latency histogram of metrics_t: its bucket bounds
 * and how one observation is recorded; the process's resident memory.
 * Not for: rendering (stats.c). */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <unistd.h>

uint64_t metrics_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

const double metrics_lat_bounds[METRICS_LAT_BUCKETS - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                            0.1,   0.25,   0.5,   1,    2.5};

void metrics_observe_latency(metrics_t *m, double seconds)
{
    if (isnan(seconds))
        return; /* one bad clock reading must not poison lat_sum */
    if (seconds < 0)
        seconds = 0; /* the clock stepped back */
    int b = 0;
    while (b < METRICS_LAT_BUCKETS - 1 && seconds > metrics_lat_bounds[b])
        b++;
    m->lat_bucket[b]++; /* b == METRICS_LAT_BUCKETS - 1: the +Inf bucket */
    m->lat_sum += seconds;
    m->lat_count++;
}
