/* loostream.h — the learner tests' stream: a generated data set (500 users,
 * 1,000 items, 40,000 events, seed 7) in time order with each user's latest
 * event held out (leave-one-out, dataset.h), the rest as the learner's
 * events. A cmocka group's setup and teardown; BLAS on one thread. */
#ifndef FR_TEST_LOOSTREAM_H
#define FR_TEST_LOOSTREAM_H

#include "dataset.h"
#include "learner.h"

#include <stddef.h>

typedef struct {
    dataset_t d;
    size_t *held, *train, ntrain;
    lrn_event_t *ev; /* (ntrain) the training events, in time order */
} loo_stream_t;

int loo_stream_setup(void **state); /* *state: the loo_stream_t */
int loo_stream_teardown(void **state);

#endif
