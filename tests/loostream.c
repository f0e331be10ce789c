/* loostream.c — the learner tests' leave-one-out stream (see loostream.h). */
#include "loostream.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "kern.h"

#include <stdlib.h>

int loo_stream_setup(void **state)
{
    loo_stream_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    gen_config_t g;
    gen_config_default(&g);
    g.users = 500;
    g.items = 1000;
    g.events = 40000;
    g.seed = 7;
    char err[256];
    dataset_init(&s->d);
    assert_int_equal(dataset_generate(&s->d, &g, err, sizeof(err)), 0);
    dataset_sort_by_time(&s->d);
    assert_int_equal(dataset_loo(&s->d, &s->held, &s->train, &s->ntrain), 0);
    s->ev = malloc(sizeof(lrn_event_t) * s->ntrain);
    assert_non_null(s->ev);
    for (size_t t = 0; t < s->ntrain; t++) {
        const ds_event_t *e = &s->d.ev[s->train[t]];
        s->ev[t] = (lrn_event_t){.user = s->d.users[e->user],
                                 .item = s->d.items[e->item],
                                 .ts_ms = e->ts_ms,
                                 .weight = 1.0f};
    }
    kern_set_threads(1);
    *state = s;
    return 0;
}

int loo_stream_teardown(void **state)
{
    loo_stream_t *s = *state;
    free(s->ev);
    free(s->held);
    free(s->train);
    dataset_free(&s->d);
    free(s);
    return 0;
}
