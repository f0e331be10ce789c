/* lr.c — logistic regression, the click-through baseline: σ(wide), the
 * shared core's wide part alone (ctr.h: the hashed weights of every (field,
 * value) and configured cross, wnum on the normalised dense features, the
 * bias). It adds nothing of its own; this file is its entry in the table of
 * models. Not for: the shared core (ctr.c), the engine (ctrengine.c). */
#include "ctr.h"
#include "engine.h"
#include "model.h"

static const ctr_head_t lr_head = {.parts = CTR_WIDE};

const model_ops_t lr_ops = {
    .name = "lr",
    .flags = MODEL_FIELDS,
    .keys = "wide_bits,crosses",
    .engine = &ctr_engine,
    .head = &lr_head,
};
