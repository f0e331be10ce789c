/* mlfeat.h — the user and item features of MovieLens-100k (u.user, u.item)
 * for `freshrec train --model dssm --features`: the DSSM towers' features
 * on real data.
 *
 *   user tower: categorical gender, occupation, age decade, first digit of
 *               the zip code (4 fields)
 *   item tower: categorical genre combination (the 19 flags as one value);
 *               dense release year and the 19 genre flags (20 fields)
 *
 * Not for: the daemon (events carry their own features, proto/README.md). */
#ifndef FR_MLFEAT_H
#define FR_MLFEAT_H

#include "dataset.h"

#define MLF_UCAT 4
#define MLF_UNUM 0
#define MLF_ICAT 1
#define MLF_INUM 20

typedef struct {
    lrn_feat_t *uf, *itf; /* (nusers, MLF_UCAT + MLF_UNUM), (nitems, MLF_ICAT + MLF_INUM) */
    int *nuf, *nif;       /* features found per user, per item (0: not in the files) */
    char *ustr, *istr;    /* their categorical values */
    size_t users_found, items_found;
} mlfeat_t;

/* Reads dir/u.user and dir/u.item for the users and items of d (ids are the
 * files' integer ids). 0, or -1 and a message (a missing or malformed file). */
int mlfeat_load(mlfeat_t *f, const dataset_t *d, const char *dir, char *errstr, size_t len);
void mlfeat_free(mlfeat_t *f);

#endif
