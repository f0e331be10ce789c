/* mlfeat.c — MovieLens-100k user and item features (see mlfeat.h). */
#include "mlfeat.h"

#include "id.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USTR 64 /* bytes of a user's categorical values: 4 NUL-terminated strings */
#define ISTR 24 /* an item's genre combination */
#define MAXID 100000

/* "|"-separated fields of line into f (at most max); returns how many. */
static int split_bar(char *line, char **f, int max)
{
    int n = 0;
    line[strcspn(line, "\r\n")] = '\0';
    for (char *p = line; n < max;) {
        f[n++] = p;
        char *bar = strchr(p, '|');
        if (!bar)
            break;
        *bar = '\0';
        p = bar + 1;
    }
    return n;
}

/* index of every dataset id that is an integer in [1, MAXID), else -1 */
static int *index_by_int(const lrn_id_t *ids, size_t n)
{
    int *ix = malloc(sizeof(int) * MAXID);
    if (!ix)
        return NULL;
    for (int k = 0; k < MAXID; k++)
        ix[k] = -1;
    for (size_t k = 0; k < n; k++) {
        char buf[16];
        if (ids[k].len == 0 || ids[k].len >= sizeof(buf))
            continue;
        memcpy(buf, ids[k].id, ids[k].len);
        buf[ids[k].len] = '\0';
        char *end;
        long v = strtol(buf, &end, 10);
        if (!*end && v > 0 && v < MAXID)
            ix[v] = (int)k;
    }
    return ix;
}

static lrn_feat_t cat(char side, int field, const char *s)
{
    size_t n = strlen(s);
    return (lrn_feat_t){.side = side, .field = field, .h = id_hash(s, n), .id = s, .len = n};
}

static lrn_feat_t num(char side, int field, float v)
{
    return (lrn_feat_t){.side = side, .dense = 1, .field = field, .num = v};
}

static int read_users(mlfeat_t *f, const dataset_t *d, const char *path, char *errstr, size_t len)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(errstr, len, "%s: %s", path, strerror(errno));
        return -1;
    }
    int *ix = index_by_int(d->users, d->nusers);
    char line[512];
    long lineno = 0;
    int rc = ix ? 0 : -1;
    while (rc == 0 && fgets(line, sizeof(line), fp)) {
        lineno++;
        char *fl[5];
        if (split_bar(line, fl, 5) != 5) {
            snprintf(errstr, len, "%s:%ld: expected id|age|gender|occupation|zip", path, lineno);
            rc = -1;
            break;
        }
        long id = strtol(fl[0], NULL, 10), age = strtol(fl[1], NULL, 10);
        if (id <= 0 || id >= MAXID || ix[id] < 0)
            continue; /* a user without interactions */
        int u = ix[id];
        char *s = f->ustr + (size_t)u * USTR;
        lrn_feat_t *o = f->uf + (size_t)u * (MLF_UCAT + MLF_UNUM);
        int n = snprintf(s, USTR, "%s", fl[2]) + 1; /* gender */
        o[0] = cat('u', 0, s);
        s += n;
        n = snprintf(s, USTR - 8, "%.40s", fl[3]) + 1; /* occupation */
        o[1] = cat('u', 1, s);
        s += n;
        n = snprintf(s, 6, "%ld", age / 10) + 1; /* age decade */
        o[2] = cat('u', 2, s);
        s += n;
        snprintf(s, 2, "%c", fl[4][0] ? fl[4][0] : '?'); /* zip region */
        o[3] = cat('u', 3, s);
        f->nuf[u] = MLF_UCAT;
        f->users_found++;
    }
    free(ix);
    fclose(fp);
    if (!ix)
        snprintf(errstr, len, "out of memory");
    return rc;
}

static int read_items(mlfeat_t *f, const dataset_t *d, const char *path, char *errstr, size_t len)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(errstr, len, "%s: %s", path, strerror(errno));
        return -1;
    }
    int *ix = index_by_int(d->items, d->nitems);
    char line[1024];
    long lineno = 0;
    int rc = ix ? 0 : -1;
    while (rc == 0 && fgets(line, sizeof(line), fp)) {
        lineno++;
        char *fl[24];
        if (split_bar(line, fl, 24) != 24) {
            snprintf(errstr, len, "%s:%ld: expected 24 |-separated fields", path, lineno);
            rc = -1;
            break;
        }
        long id = strtol(fl[0], NULL, 10);
        if (id <= 0 || id >= MAXID || ix[id] < 0)
            continue;
        int i = ix[id];
        char *s = f->istr + (size_t)i * ISTR;
        lrn_feat_t *o = f->itf + (size_t)i * (MLF_ICAT + MLF_INUM);
        for (int g = 0; g < 19; g++) {
            s[g] = fl[5 + g][0] == '1' ? '1' : '0';
            o[MLF_ICAT + 1 + g] = num('i', 1 + g, s[g] == '1' ? 1.0f : 0.0f);
        }
        s[19] = '\0';
        o[0] = cat('i', 0, s);
        /* "01-Jan-1995": the year; missing: the field stays missing */
        size_t dl = strlen(fl[2]);
        int nf = MLF_ICAT + MLF_INUM;
        if (dl >= 4)
            o[MLF_ICAT] = num('i', 0, (float)strtol(fl[2] + dl - 4, NULL, 10));
        else
            o[MLF_ICAT] = num('i', 0, NAN); /* not finite: skipped by the learner */
        f->nif[i] = nf;
        f->items_found++;
    }
    free(ix);
    fclose(fp);
    if (!ix)
        snprintf(errstr, len, "out of memory");
    return rc;
}

int mlfeat_load(mlfeat_t *f, const dataset_t *d, const char *dir, char *errstr, size_t len)
{
    memset(f, 0, sizeof(*f));
    size_t nu = d->nusers ? d->nusers : 1, ni = d->nitems ? d->nitems : 1;
    f->uf = calloc(nu * (MLF_UCAT + MLF_UNUM), sizeof(lrn_feat_t));
    f->itf = calloc(ni * (MLF_ICAT + MLF_INUM), sizeof(lrn_feat_t));
    f->nuf = calloc(nu, sizeof(int));
    f->nif = calloc(ni, sizeof(int));
    f->ustr = calloc(nu, USTR);
    f->istr = calloc(ni, ISTR);
    if (!f->uf || !f->itf || !f->nuf || !f->nif || !f->ustr || !f->istr) {
        snprintf(errstr, len, "out of memory");
        mlfeat_free(f);
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/u.user", dir);
    if (read_users(f, d, path, errstr, len))
        goto err;
    snprintf(path, sizeof(path), "%s/u.item", dir);
    if (read_items(f, d, path, errstr, len))
        goto err;
    return 0;
err:
    mlfeat_free(f);
    return -1;
}

void mlfeat_free(mlfeat_t *f)
{
    free(f->uf);
    free(f->itf);
    free(f->nuf);
    free(f->nif);
    free(f->ustr);
    free(f->istr);
    memset(f, 0, sizeof(*f));
}
