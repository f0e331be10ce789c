/* mlfeat.c — MovieLens user and item features, ML-100k's or ML-1M's files
 * (see mlfeat.h). */
#define _POSIX_C_SOURCE 200809L
#include "mlfeat.h"

#include "id.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ML-100k's genres in u.item's flag order (its u.genre); ML-1M's movies.dat
 * names the same genres, so both map to these flags. */
#define NGENRE 19
static const char *const genre_names[NGENRE] = {
    "unknown",     "Action", "Adventure", "Animation", "Children's", "Comedy",  "Crime",
    "Documentary", "Drama",  "Fantasy",   "Film-Noir", "Horror",     "Musical", "Mystery",
    "Romance",     "Sci-Fi", "Thriller",  "War",       "Western"};

/* The user fields of data set user u: gender, occupation, age bucket, zip
 * region; each value cut so that the four fit USTR (8 + 39 + 8 + 2 bytes). */
static void set_user(mlfeat_t *f, int u, const char *gender, const char *occupation,
                     const char *age, const char *zip)
{
    char *s = f->ustr + (size_t)u * USTR;
    lrn_feat_t *o = f->uf + (size_t)u * (MLF_UCAT + MLF_UNUM);
    int n = snprintf(s, 8, "%.7s", gender) + 1;
    o[0] = cat('u', 0, s);
    s += n;
    n = snprintf(s, USTR - 24, "%.38s", occupation) + 1;
    o[1] = cat('u', 1, s);
    s += n;
    n = snprintf(s, 8, "%.7s", age) + 1;
    o[2] = cat('u', 2, s);
    s += n;
    snprintf(s, 2, "%c", zip[0] ? zip[0] : '?');
    o[3] = cat('u', 3, s);
    f->nuf[u] = MLF_UCAT;
    f->users_found++;
}

/* The item fields of data set item i: the genre combination, the year (NAN
 * when unknown: not finite, so the learner skips it) and the genre flags. */
static void set_item(mlfeat_t *f, int i, const char flags[NGENRE], float year)
{
    char *s = f->istr + (size_t)i * ISTR;
    lrn_feat_t *o = f->itf + (size_t)i * (MLF_ICAT + MLF_INUM);
    for (int g = 0; g < NGENRE; g++) {
        s[g] = flags[g] ? '1' : '0';
        o[MLF_ICAT + 1 + g] = num('i', 1 + g, flags[g] ? 1.0f : 0.0f);
    }
    s[NGENRE] = '\0';
    o[0] = cat('i', 0, s);
    o[MLF_ICAT] = num('i', 0, year);
    f->nif[i] = MLF_ICAT + MLF_INUM;
    f->items_found++;
}

/* "::"-separated fields of line (ML-1M's .dat files) into f, at most max;
 * the line end is cut off. Returns how many. */
static int split_colons(char *line, char **f, int max)
{
    int n = 0;
    line[strcspn(line, "\r\n")] = '\0';
    for (char *p = line; n < max;) {
        f[n++] = p;
        char *sep = strstr(p, "::");
        if (!sep)
            break;
        *sep = '\0';
        p = sep + 2;
    }
    return n;
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
        char decade[24];
        snprintf(decade, sizeof(decade), "%ld", age / 10);
        set_user(f, ix[id], fl[2], fl[3], decade, fl[4]);
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
        char flags[NGENRE];
        for (int g = 0; g < NGENRE; g++)
            flags[g] = fl[5 + g][0] == '1';
        /* "01-Jan-1995": the year; missing: the field stays missing */
        size_t dl = strlen(fl[2]);
        set_item(f, ix[id], flags, dl >= 4 ? (float)strtol(fl[2] + dl - 4, NULL, 10) : NAN);
    }
    free(ix);
    fclose(fp);
    if (!ix)
        snprintf(errstr, len, "out of memory");
    return rc;
}

/* ML-1M's users.dat: UserID::Gender::Age::Occupation::Zip-code. Age is
 * already a bucket (1: under 18, 18, 25, 35, 45, 50, 56: and over) and the
 * occupation a code (0-20): both are kept as they are, as the values of the
 * same fields as u.user's age decade and occupation name. */
static int read_users_1m(mlfeat_t *f, const dataset_t *d, const char *path, char *errstr,
                         size_t len)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(errstr, len, "%s: %s", path, strerror(errno));
        return -1;
    }
    int *ix = index_by_int(d->users, d->nusers);
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = ix ? 0 : -1;
    if (!ix)
        snprintf(errstr, len, "out of memory");
    while (rc == 0 && getline(&line, &cap, fp) != -1) {
        lineno++;
        char *fl[6];
        if (split_colons(line, fl, 6) != 5 || !fl[1][0] || !fl[2][0] || !fl[3][0]) {
            snprintf(errstr, len, "%s:%ld: expected UserID::Gender::Age::Occupation::Zip-code",
                     path, lineno);
            rc = -1;
            break;
        }
        long id = strtol(fl[0], NULL, 10);
        if (id <= 0 || id >= MAXID || ix[id] < 0)
            continue; /* a user without interactions */
        set_user(f, ix[id], fl[1], fl[3], fl[2], fl[4]);
    }
    if (rc == 0 && ferror(fp)) {
        snprintf(errstr, len, "%s: read error", path);
        rc = -1;
    }
    free(line);
    free(ix);
    fclose(fp);
    return rc;
}

/* ML-1M's movies.dat: MovieID::Title::Genres, the genres |-separated names
 * of u.item's 19 (an empty list: "unknown"), the year at the end of the
 * title, "Toy Story (1995)" (none: the field stays missing). A genre not
 * among the 19 is refused rather than dropped: it would be a different
 * file than the one these fields describe. */
static int read_items_1m(mlfeat_t *f, const dataset_t *d, const char *path, char *errstr,
                         size_t len)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(errstr, len, "%s: %s", path, strerror(errno));
        return -1;
    }
    int *ix = index_by_int(d->items, d->nitems);
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = ix ? 0 : -1;
    if (!ix)
        snprintf(errstr, len, "out of memory");
    while (rc == 0 && getline(&line, &cap, fp) != -1) {
        lineno++;
        char *fl[4];
        if (split_colons(line, fl, 4) != 3) {
            snprintf(errstr, len, "%s:%ld: expected MovieID::Title::Genres", path, lineno);
            rc = -1;
            break;
        }
        char flags[NGENRE] = {0};
        int any = 0;
        for (char *g = fl[2]; *g && rc == 0;) {
            size_t gl = strcspn(g, "|");
            int k = 0;
            while (k < NGENRE && (strlen(genre_names[k]) != gl || memcmp(genre_names[k], g, gl)))
                k++;
            if (k == NGENRE) {
                snprintf(errstr, len, "%s:%ld: unknown genre '%.*s'", path, lineno,
                         (int)(gl < 40 ? gl : 40), g);
                rc = -1;
                break;
            }
            flags[k] = any = 1;
            g += gl + (g[gl] == '|');
        }
        if (rc)
            break;
        if (!any)
            flags[0] = 1; /* u.item's "unknown" */
        long id = strtol(fl[0], NULL, 10);
        if (id <= 0 || id >= MAXID || ix[id] < 0)
            continue;
        /* the title's last "(YYYY)" */
        float year = NAN;
        size_t tl = strlen(fl[1]);
        while (tl && fl[1][tl - 1] == ' ')
            tl--;
        if (tl >= 6 && fl[1][tl - 1] == ')' && fl[1][tl - 6] == '(') {
            const char *y = fl[1] + tl - 5;
            int digits = 1;
            for (int k = 0; k < 4; k++)
                digits &= y[k] >= '0' && y[k] <= '9';
            if (digits)
                year = (float)((y[0] - '0') * 1000 + (y[1] - '0') * 100 + (y[2] - '0') * 10 +
                               (y[3] - '0'));
        }
        set_item(f, ix[id], flags, year);
    }
    if (rc == 0 && ferror(fp)) {
        snprintf(errstr, len, "%s: read error", path);
        rc = -1;
    }
    free(line);
    free(ix);
    fclose(fp);
    return rc;
}

static int exists(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

int mlfeat_load(mlfeat_t *f, const dataset_t *d, const char *dir, char *errstr, size_t len)
{
    memset(f, 0, sizeof(*f));
    /* ML-100k's pair when either of its files is there (a missing partner
     * is then an error naming it), else ML-1M's */
    int ml1m = !exists(dir, "u.user") && !exists(dir, "u.item") &&
               (exists(dir, "users.dat") || exists(dir, "movies.dat"));
    if (!ml1m && !exists(dir, "u.user") && !exists(dir, "u.item")) {
        snprintf(errstr, len,
                 "%s/u.user: not found, nor %s/users.dat (the features are MovieLens-100k's "
                 "u.user and u.item or MovieLens-1M's users.dat and movies.dat)",
                 dir, dir);
        return -1;
    }
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
    snprintf(path, sizeof(path), "%s/%s", dir, ml1m ? "users.dat" : "u.user");
    if ((ml1m ? read_users_1m : read_users)(f, d, path, errstr, len))
        goto err;
    snprintf(path, sizeof(path), "%s/%s", dir, ml1m ? "movies.dat" : "u.item");
    if ((ml1m ? read_items_1m : read_items)(f, d, path, errstr, len))
        goto err;
    f->format = ml1m ? "MovieLens-1M users.dat, movies.dat" : "MovieLens-100k u.user, u.item";
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
