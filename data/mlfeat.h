/* mlfeat.h — the user and item features of MovieLens for `freshrec train
 * --model dssm --features`: the DSSM towers' features on real data, from
 * ML-100k's u.user and u.item or ML-1M's users.dat and movies.dat
 * ("::"-separated), both mapped to the same fields:
 *
 *   user tower: categorical gender, occupation (100k: its name; 1M: its
 *               code), age bucket (100k: the decade; 1M: its age group),
 *               first character of the zip code (4 fields)
 *   item tower: categorical genre combination (the 19 flags as one value);
 *               dense year (100k: of the release date; 1M: of the title)
 *               and the 19 genre flags (1M: the genres named, in u.item's
 *               order) (20 fields)
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
    const char *format; /* which files were read (static) */
} mlfeat_t;

/* Reads dir/u.user and dir/u.item, or when neither is there dir/users.dat
 * and dir/movies.dat, for the users and items of d (ids are the files'
 * integer ids). 0, or -1 and a message (no such files, a missing partner, a
 * malformed line, an unknown genre). */
int mlfeat_load(mlfeat_t *f, const dataset_t *d, const char *dir, char *errstr, size_t len);
void mlfeat_free(mlfeat_t *f);

#endif
