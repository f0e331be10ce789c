/* dashboard.c — the page served at GET / on the stats port: one self-contained
 * HTML document (no external script, font or stylesheet) that polls /stats
 * every two seconds and charts loss, prequential HR@10 (and AUC for
 * click-through models), events learned per second, publish latency,
 * consumer lag and table sizes against the daemon's own clock.
 *
 * Its source is daemon/dashboard.html; the Makefile inlines Debian's
 * dygraphs (libjs-dygraphs) into it and writes the bytes, as C, to
 * $(BUILD)/gen/dashboard.inc, so the library is read from the Debian package
 * at build time and never copied into this repository. Not for: the figures
 * themselves (stats.c renders /stats). */
#include "dashboard.h"

const unsigned char dashboard_html[] = {
#include "dashboard.inc" /* generated: xxd -i of the assembled page */
    , 0x00};
const size_t dashboard_html_len = sizeof(dashboard_html) - 1;
