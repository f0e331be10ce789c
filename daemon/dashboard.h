/* dashboard.h — the stats port's HTML dashboard (see dashboard.c). */
#ifndef FR_DASHBOARD_H
#define FR_DASHBOARD_H

extern const char dashboard_html[];

#endif
