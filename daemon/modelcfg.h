/* modelcfg.h — what freshrecd learns, derived from the config: the learner's
 * or the click-through model's configuration, and where each event feature
 * goes (its field, and for dssm its tower).
 *
 * One function, used twice: config_validate runs it so that --print-config
 * and SIGHUP refuse what start-up would, and freshrecd's start-up builds its
 * model from it. Not for: reading or checking single keys (config.c). */
#ifndef FR_MODELCFG_H
#define FR_MODELCFG_H

#include "config.h"
#include "ctr.h"
#include "engine.h"
#include "event.h"
#include "learner.h"

#include <stddef.h>

typedef struct {
    engine_config_t ec; /* what the engine is made from (engine.h) */
    /* the event features the model reads: cat_names[cat_from..ncat) and
     * num_names[0..nnum); a click-through model's fields are user, item, then
     * cat_fields (cat_from = 2: user and item come as the example's ids) */
    char cat_names[CTR_MAX_FIELDS][EVENT_MAX_NAME + 1];
    char num_names[CTR_MAX_FIELDS][EVENT_MAX_NAME + 1];
    int ncat, nnum, cat_from;
    /* each cat_names[k] / num_names[k] goes to the example as a feature of
     * side cat_side[k] / num_side[k] ('u' or 'i': a tower's; 'x': the
     * example's own field) and field cat_field[k] / num_field[k] */
    char cat_side[CTR_MAX_FIELDS], num_side[CTR_MAX_FIELDS];
    int cat_field[CTR_MAX_FIELDS], num_field[CTR_MAX_FIELDS];
} modelcfg_t;

/* Fills m from c's [model] keys and runs the checks that engine_create
 * would make. -1 with a message and, in *key, the [model] key at
 * fault (a static string). */
int modelcfg_from(modelcfg_t *m, const fr_config_t *c, const char **key, char *errstr, size_t len);

/* The index of a feature name among names[from..n), or -1. */
int modelcfg_field_index(const char names[][EVENT_MAX_NAME + 1], int from, int n, const char *name);

#endif
