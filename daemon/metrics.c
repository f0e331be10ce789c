/* metrics.c — the publish-latency histogram of metrics_t: its bucket bounds
 * and how one observation is recorded. Not for: rendering (stats.c). */
#include "metrics.h"

#include <math.h>

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
