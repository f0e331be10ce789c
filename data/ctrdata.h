/* ctrdata.h — click-through data for the CLI: Criteo files (label, 13 dense,
 * 26 categorical; tab separated) and the synthetic click-through stream with
 * a planted pairwise interaction of two fields. Examples are ctr_example_t
 * (learner/ctr.h) whose ids and features live in the dataset.
 * Not for: the daemon's wire format (proto/event.h). */
#ifndef FR_CTRDATA_H
#define FR_CTRDATA_H

#include "ctr.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ctrdata {
    ctr_example_t *ex;
    size_t n;
    int ncat, nnum;                /* fields every example may carry */
    char **cat_names, **num_names; /* (ncat), (nnum): "C1".."C26", "I1".."I13" for Criteo */
    /* storage behind the examples (owned) */
    ctr_cat_t *cats;
    ctr_num_t *nums;
    char *strings;
    size_t ncats, nnums, strings_len;
} ctrdata_t;

void ctrdata_init(ctrdata_t *d);
void ctrdata_free(ctrdata_t *d);

/* Reads a click-through file into d, which must be empty (ctrdata_init).
 * Lines end in \n or \r\n and hold at most 64 KiB; the separator is a tab
 * when the first line has one, else a comma. Forms:
 *   - Criteo's original: `label \t I1..I13 \t C1..C26`, no header (40 columns);
 *   - a CSV or TSV with a header line (its first field is not 0/1): a column
 *     "label" (any case), an optional "Id" column (skipped: Kaggle's
 *     train.csv), and columns named I<n> (dense) and C<n> (categorical), as
 *     in the Kaggle CSV (`Id,Label,I1..I13,C1..C26`) and DeepCTR's sample;
 *   - the generic form ctrdata_write emits: a first line
 *     `# freshrec ctr nnum=N ncat=M [transform=none|log1p]`, then optionally a
 *     header naming the fields, then `label, N dense, M categorical` per line.
 *     Without a header the fields are named I1..IN and C1..CM by position.
 * Every line must have as many columns as the first; other lines starting
 * with '#' and empty lines are skipped. Labels are 0 or 1. An empty field is
 * missing (left out of the example). Dense values v are used as log(1 + v)
 * for v > 0 (as is usual for Criteo), v otherwise, unless transform=none.
 * Categorical values are interned: the same text has the same bytes and hash
 * (id_hash of the text alone; the field is separate). ts_ms is the example's
 * 0-based position in the file (Criteo rows are time-ordered but carry no
 * time); weight is 1. -1 and a message naming path:line on a malformed line. */
int ctrdata_load_criteo(ctrdata_t *d, const char *path, char *errstr, size_t len);

typedef struct {
    uint64_t examples;
    uint32_t users, items; /* fields 0 and 1: user and item */
    uint32_t devices;      /* field 2: a context field ("device") */
    uint32_t cat3_card;    /* field 3: another categorical field (noise) */
    int nnum;              /* dense features, one of them informative */
    double interaction;    /* strength of the planted item-group × device term */
    double base_ctr;       /* overall click rate (default 0.2) */
    uint64_t seed;
} ctrgen_config_t;

void ctrgen_config_default(ctrgen_config_t *cfg);
/* Examples whose click probability is σ(bias + user term + item term +
 * interaction · M[item group][device] + a dense term): the pairwise
 * interaction of item and device is planted, so a model that crosses them
 * (Deep & Cross, or Wide & Deep with that cross) beats one that cannot. */
/* Fields: cat "user" (ids "u<k>"), "item" ("i<k>"), "device" ("dev<k>"),
 * "cat3" ("c<k>"); dense "d0".."d<nnum-1>": d0 ~ N(0, 1) always present and
 * informative, the rest N(0, 1) noise, each missing with probability 0.2.
 * Users and items are drawn with a mild Zipf skew (k = 0 most frequent).
 * logit = bias + 0.3 u_user + 0.3 v_item + interaction · M[item % devices][device]
 * + 0.5 d0, u and v ~ N(0, 1), bias calibrated so that the mean click rate is
 * base_ctr. ts_ms increases by 100 per example. Deterministic for a seed; d
 * must be empty. */
int ctrdata_generate(ctrdata_t *d, const ctrgen_config_t *cfg, char *errstr, size_t len);
/* The planted sign M[item % devices][device] ∈ {−1, +1} of the stream cfg
 * generates (item, device: the k of "i<k>", "dev<k>"); for tests and benches
 * that check the interaction. */
int ctrgen_interaction_sign(const ctrgen_config_t *cfg, uint32_t item, uint32_t device);
/* Writes d in the generic tab form ctrdata_load_criteo reads back unchanged:
 * `# freshrec ctr nnum=N ncat=M transform=none`, a header line (label, the
 * dense names, the categorical names), then `label \t dense… \t categorical…`
 * per example (dense as %.9g, missing fields empty). -1 on a write error or
 * an example it cannot represent (a field out of range or twice, a value
 * that is empty, non-finite or holds a tab or line break). */
int ctrdata_write(const ctrdata_t *d, FILE *f);

#endif
