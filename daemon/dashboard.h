/* dashboard.h — the stats port's HTML dashboard (see dashboard.c). */
#ifndef FR_DASHBOARD_H
#define FR_DASHBOARD_H

#include <stddef.h>

/* The whole page, UTF-8, NUL-terminated; dashboard_html_len bytes before the NUL. */
extern const unsigned char dashboard_html[];
extern const size_t dashboard_html_len;

#endif
