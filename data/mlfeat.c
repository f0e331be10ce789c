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

/* sep-separated fields of line into f, at most max (the last holds the
 * rest); the line end is cut off. Returns how many. u.user and u.item
 * separate with "|", ML-1M's .dat files with "::". */
static int split_fields(char *line, const char *sep, char **f, int max)
{
    int n = 0;
    size_t sl = strlen(sep);
    line[strcspn(line, "\r\n")] = '\0';
    for (char *p = line; n < max;) {
        f[n++] = p;
        char *at = strstr(p, sep);
        if (!at)
            break;
        *at = '\0';
        p = at + sl;
    }
    return n;
}

/* the data set's index of the id in s, or -1 (not an id it has) */
static int row_of(const int *ix, const char *s)
{
    long id = strtol(s, NULL, 10);
    return id > 0 && id < MAXID ? ix[id] : -1;
}

/* One line of a features file: sets what it says of ix's users or items
 * (a line of an id the data set lacks is skipped); 0, or -1 with what is
 * wrong with it in why. */
typedef int (*line_fn)(mlfeat_t *f, const int *ix, char *line, char *why, size_t len);

/* u.user: id|age|gender|occupation|zip; the age goes in decades */
static int user_100k(mlfeat_t *f, const int *ix, char *line, char *why, size_t len)
{
    char *fl[5];
    if (split_fields(line, "|", fl, 5) != 5) {
        snprintf(why, len, "expected id|age|gender|occupation|zip");
        return -1;
    }
    int u = row_of(ix, fl[0]);
    if (u < 0)
        return 0; /* a user without interactions */
    char decade[24];
    snprintf(decade, sizeof(decade), "%ld", strtol(fl[1], NULL, 10) / 10);
    set_user(f, u, fl[2], fl[3], decade, fl[4]);
    return 0;
}

/* u.item: id|title|release date|video date|url|19 genre flags */
static int item_100k(mlfeat_t *f, const int *ix, char *line, char *why, size_t len)
{
    char *fl[24];
    if (split_fields(line, "|", fl, 24) != 24) {
        snprintf(why, len, "expected 24 |-separated fields");
        return -1;
    }
    int i = row_of(ix, fl[0]);
    if (i < 0)
        return 0;
    char flags[NGENRE];
    for (int g = 0; g < NGENRE; g++)
        flags[g] = fl[5 + g][0] == '1';
    /* "01-Jan-1995": the year; missing: the field stays missing */
    size_t dl = strlen(fl[2]);
    set_item(f, i, flags, dl >= 4 ? (float)strtol(fl[2] + dl - 4, NULL, 10) : NAN);
    return 0;
}

/* ML-1M's users.dat: UserID::Gender::Age::Occupation::Zip-code. Age is
 * already a bucket (1: under 18, 18, 25, 35, 45, 50, 56: and over) and the
 * occupation a code (0-20): both are kept as they are, as the values of the
 * same fields as u.user's age decade and occupation name. */
static int user_1m(mlfeat_t *f, const int *ix, char *line, char *why, size_t len)
{
    char *fl[6];
    if (split_fields(line, "::", fl, 6) != 5 || !fl[1][0] || !fl[2][0] || !fl[3][0]) {
        snprintf(why, len, "expected UserID::Gender::Age::Occupation::Zip-code");
        return -1;
    }
    int u = row_of(ix, fl[0]);
    if (u >= 0) /* else a user without interactions */
        set_user(f, u, fl[1], fl[3], fl[2], fl[4]);
    return 0;
}

/* ML-1M's movies.dat: MovieID::Title::Genres, the genres |-separated names
 * of u.item's 19 (an empty list: "unknown"), the year at the end of the
 * title, "Toy Story (1995)" (none: the field stays missing). A genre not
 * among the 19 is refused rather than dropped: it would be a different
 * file than the one these fields describe. */
static int item_1m(mlfeat_t *f, const int *ix, char *line, char *why, size_t len)
{
    char *fl[4];
    if (split_fields(line, "::", fl, 4) != 3) {
        snprintf(why, len, "expected MovieID::Title::Genres");
        return -1;
    }
    char flags[NGENRE] = {0};
    int any = 0;
    for (char *g = fl[2]; *g;) {
        size_t gl = strcspn(g, "|");
        int k = 0;
        while (k < NGENRE && (strlen(genre_names[k]) != gl || memcmp(genre_names[k], g, gl)))
            k++;
        if (k == NGENRE) {
            snprintf(why, len, "unknown genre '%.*s'", (int)(gl < 40 ? gl : 40), g);
            return -1;
        }
        flags[k] = any = 1;
        g += gl + (g[gl] == '|');
    }
    if (!any)
        flags[0] = 1; /* u.item's "unknown" */
    int i = row_of(ix, fl[0]);
    if (i < 0)
        return 0;
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
    set_item(f, i, flags, year);
    return 0;
}

/* Every line of the file at path through fn, against the data set's ids
 * (its users or its items): 0, or -1 with a message naming the file and,
 * for a line fn refuses, the line. */
static int read_file(mlfeat_t *f, const lrn_id_t *ids, size_t n, const char *path, line_fn fn,
                     char *errstr, size_t len)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(errstr, len, "%s: %s", path, strerror(errno));
        return -1;
    }
    int *ix = index_by_int(ids, n);
    char *line = NULL, why[128];
    size_t cap = 0;
    long lineno = 0;
    int rc = ix ? 0 : -1;
    if (!ix)
        snprintf(errstr, len, "out of memory");
    while (rc == 0 && getline(&line, &cap, fp) != -1) {
        lineno++;
        if (fn(f, ix, line, why, sizeof(why))) {
            snprintf(errstr, len, "%s:%ld: %s", path, lineno, why);
            rc = -1;
        }
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
    if (read_file(f, d->users, d->nusers, path, ml1m ? user_1m : user_100k, errstr, len))
        goto err;
    snprintf(path, sizeof(path), "%s/%s", dir, ml1m ? "movies.dat" : "u.item");
    if (read_file(f, d->items, d->nitems, path, ml1m ? item_1m : item_100k, errstr, len))
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
