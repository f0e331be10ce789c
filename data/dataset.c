/* dataset.c — interaction files (the MovieLens forms, a CSV header detected,
 * plant lines), the synthetic generator with its planted change, and the
 * leave-one-out split (see dataset.h). */
#define _POSIX_C_SOURCE 200809L
#include "dataset.h"

#include "id.h"
#include "rank.h"
#include "rng.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct intern {
    uint32_t *slot; /* index + 1; 0 = empty */
    size_t n;       /* power of two */
};

void dataset_init(dataset_t *d)
{
    memset(d, 0, sizeof(*d));
}

static void free_ids(lrn_id_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)ids[i].id);
    free(ids);
}

static void intern_free(struct intern *in)
{
    if (in)
        free(in->slot);
    free(in);
}

void dataset_free(dataset_t *d)
{
    free(d->ev);
    free_ids(d->users, d->nusers);
    free_ids(d->items, d->nitems);
    intern_free(d->uin);
    intern_free(d->iin);
    gen_plan_free(d->plan);
    memset(d, 0, sizeof(*d));
}

static int intern_rehash(struct intern *in, const lrn_id_t *ids, size_t nids, size_t n)
{
    uint32_t *s = calloc(n, sizeof(uint32_t));
    if (!s)
        return -1;
    for (size_t i = 0; i < nids; i++) {
        size_t j = ids[i].h & (n - 1);
        while (s[j])
            j = (j + 1) & (n - 1);
        s[j] = (uint32_t)i + 1;
    }
    free(in->slot);
    in->slot = s;
    in->n = n;
    return 0;
}

/* index of id in ids, inserting it when new; UINT32_MAX when out of memory */
static uint32_t intern(struct intern **inp, lrn_id_t **ids, size_t *nids, size_t *cap,
                       const char *id, size_t len)
{
    if (!*inp && !(*inp = calloc(1, sizeof(struct intern))))
        return UINT32_MAX;
    struct intern *in = *inp;
    if ((*nids + 1) * 2 > in->n && intern_rehash(in, *ids, *nids, in->n ? in->n * 2 : 1024))
        return UINT32_MAX;
    uint64_t h = id_hash(id, len);
    size_t j = h & (in->n - 1);
    for (; in->slot[j]; j = (j + 1) & (in->n - 1)) {
        const lrn_id_t *x = &(*ids)[in->slot[j] - 1];
        if (x->h == h && x->len == len && memcmp(x->id, id, len) == 0)
            return in->slot[j] - 1;
    }
    if (*nids == *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        lrn_id_t *p = realloc(*ids, nc * sizeof(lrn_id_t));
        if (!p)
            return UINT32_MAX;
        *ids = p;
        *cap = nc;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return UINT32_MAX;
    memcpy(copy, id, len);
    copy[len] = '\0';
    (*ids)[*nids] = (lrn_id_t){h, copy, len};
    in->slot[j] = (uint32_t)*nids + 1;
    return (uint32_t)(*nids)++;
}

int dataset_add(dataset_t *d, const char *user, size_t ulen, const char *item, size_t ilen,
                int64_t ts_ms)
{
    uint32_t u = intern(&d->uin, &d->users, &d->nusers, &d->ucap, user, ulen);
    uint32_t i = intern(&d->iin, &d->items, &d->nitems, &d->icap, item, ilen);
    if (u == UINT32_MAX || i == UINT32_MAX)
        return -1;
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 4096;
        ds_event_t *p = realloc(d->ev, nc * sizeof(ds_event_t));
        if (!p)
            return -1;
        d->ev = p;
        d->cap = nc;
    }
    d->ev[d->n++] = (ds_event_t){u, i, ts_ms};
    return 0;
}

/* How a line separates its fields: decided line by line, so a file may mix
 * them (an id with a comma needs tabs or "::" on its line). */
typedef enum {
    SEP_BLANKS, /* runs of tabs and spaces (u.data) */
    SEP_COLONS, /* "::" (ratings.dat) */
    SEP_COMMA,  /* ',' (ratings.csv), blanks around a field dropped */
} sep_t;

static sep_t sep_detect(const char *s)
{
    if (strstr(s, "::"))
        return SEP_COLONS;
    if (strchr(s, ',') && !strchr(s, '\t'))
        return SEP_COMMA;
    return SEP_BLANKS;
}

static const char *sep_expect(sep_t sep)
{
    switch (sep) {
    case SEP_COLONS:
        return "'::'-separated fields (user::item::rating::ts)";
    case SEP_COMMA:
        return "comma-separated fields (user,item,rating,ts)";
    default:
        return "fields (user item rating ts)";
    }
}

/* splits s into at most max fields on sep; the line's end (\r or \n) ends
 * the last field */
static int split(char *s, sep_t sep, char **f, size_t *flen, int max)
{
    int n = 0;
    char *p = s;
    if (sep == SEP_COMMA) {
        while (n < max) {
            while (*p == ' ' || *p == '\t')
                p++;
            char *start = p;
            p += strcspn(p, ",\r\n");
            char *end = p;
            while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            f[n] = start;
            flen[n++] = (size_t)(end - start);
            if (*p != ',')
                break;
            p++;
        }
        return n;
    }
    while (*p && n < max) {
        if (sep == SEP_BLANKS)
            while (*p == ' ' || *p == '\t')
                p++;
        if (!*p || *p == '\n' || *p == '\r')
            break;
        char *start = p;
        if (sep == SEP_COLONS) {
            char *e = strstr(p, "::");
            p = e ? e : p + strcspn(p, "\r\n");
        } else {
            p += strcspn(p, " \t\r\n");
        }
        f[n] = start;
        flen[n++] = (size_t)(p - start);
        if (sep == SEP_COLONS && *p == ':')
            p += 2;
        else if (*p == '\r' || *p == '\n')
            break;
    }
    return n;
}

/* 1 when the len bytes at s are a number as strtod reads one */
static int is_number(const char *s, size_t len)
{
    if (len == 0 || len > 63)
        return 0;
    char buf[64], *end;
    memcpy(buf, s, len);
    buf[len] = '\0';
    (void)strtod(buf, &end);
    return end == buf + len;
}

/* ---- plant lines (dataset.h) ---- */

void gen_plan_free(gen_plan_t *p)
{
    if (!p)
        return;
    free(p->user_topic);
    free(p->shift_perm);
    free(p->new_items);
    free(p);
}

uint32_t gen_plan_user_topic(const gen_plan_t *p, uint32_t user, int64_t ts_ms)
{
    if (!p || !p->user_topic || user < 1 || user > p->users)
        return UINT32_MAX;
    uint32_t k = p->user_topic[user - 1];
    return p->shift_perm && ts_ms >= p->shift_ms ? p->shift_perm[k] : k;
}

uint32_t gen_plan_item_topic(const gen_plan_t *p, uint32_t item)
{
    if (!p || item < 1)
        return UINT32_MAX;
    if (item <= p->items)
        return (item - 1) % p->topics;
    size_t g = (size_t)(item - p->items - 1); /* where the generator puts it */
    if (g < p->nnew && p->new_items[g].id == item)
        return p->new_items[g].topic;
    for (size_t j = 0; j < p->nnew; j++)
        if (p->new_items[j].id == item)
            return p->new_items[j].topic;
    return UINT32_MAX;
}

static int plan_add_new(gen_plan_t *p, const gen_newitem_t *it)
{
    if (p->nnew == p->new_cap) {
        size_t nc = p->new_cap ? p->new_cap * 2 : 16;
        gen_newitem_t *q = realloc(p->new_items, nc * sizeof(*q));
        if (!q)
            return -1;
        p->new_items = q;
        p->new_cap = nc;
    }
    p->new_items[p->nnew++] = *it;
    return 0;
}

/* The next word of *s (after one space) is w: 0, and *s moves past it. */
static int plan_word(char **s, const char *w)
{
    size_t n = strlen(w);
    if (**s != ' ' || strncmp(*s + 1, w, n) != 0 || ((*s)[n + 1] != ' ' && (*s)[n + 1] != '\0'))
        return -1;
    *s += n + 1;
    return 0;
}

/* The next word of *s (after one space) is an integer in [0, max]. */
static int plan_uint(char **s, uint64_t max, uint64_t *v)
{
    if (**s != ' ' || (*s)[1] < '0' || (*s)[1] > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(*s + 1, &end, 10);
    if (errno || x > max || (*end != ' ' && *end != '\0'))
        return -1;
    *v = x;
    *s = end;
    return 0;
}

/* One plant line, s just after "# plant" and without its line end. -1 with
 * why filled when it does not parse or breaks a bound. */
static int plan_line(dataset_t *d, char *s, char *why, size_t wl)
{
    gen_plan_t *p = d->plan;
    uint64_t a = 0, b = 0, c = 0, e = 0;
    if (plan_word(&s, "topics") == 0) {
        if (p) {
            snprintf(why, wl, "a second 'topics' line");
            return -1;
        }
        if (plan_uint(&s, UINT32_MAX, &a) || a < 1 || plan_word(&s, "items") ||
            plan_uint(&s, UINT32_MAX, &b) || plan_word(&s, "users") ||
            plan_uint(&s, UINT32_MAX, &c) || *s) {
            snprintf(why, wl, "expected 'topics K items I users U', K ≥ 1");
            return -1;
        }
        if (!(p = calloc(1, sizeof(*p)))) {
            snprintf(why, wl, "out of memory");
            return -1;
        }
        p->topics = (uint32_t)a;
        p->items = (uint32_t)b;
        p->users = (uint32_t)c;
        d->plan = p;
        return 0;
    }
    if (!p) {
        snprintf(why, wl, "before the 'topics' line");
        return -1;
    }
    if (plan_word(&s, "user-topics") == 0) {
        if (p->user_topic || !(p->user_topic = malloc(sizeof(uint32_t) * (p->users + 1ULL)))) {
            snprintf(why, wl, p->user_topic ? "a second 'user-topics' line" : "out of memory");
            return -1;
        }
        for (uint32_t u = 0; u < p->users; u++) {
            if (plan_uint(&s, p->topics - 1, &a)) {
                snprintf(why, wl, "expected %u topics below %u", p->users, p->topics);
                return -1;
            }
            p->user_topic[u] = (uint32_t)a;
        }
        if (*s) {
            snprintf(why, wl, "more than %u topics", p->users);
            return -1;
        }
        return 0;
    }
    if (plan_word(&s, "shift") == 0) {
        if (p->shift_perm || !(p->shift_perm = calloc(p->topics, sizeof(uint32_t)))) {
            snprintf(why, wl, p->shift_perm ? "a second 'shift' line" : "out of memory");
            return -1;
        }
        if (plan_word(&s, "event") || plan_uint(&s, UINT64_MAX >> 1, &a) || plan_word(&s, "ts") ||
            plan_uint(&s, INT64_MAX / 1000, &b) || plan_word(&s, "perm")) {
            snprintf(why, wl, "expected 'shift event E ts S perm P0 ... P%u'", p->topics - 1);
            return -1;
        }
        p->shift_event = a;
        p->shift_ms = (int64_t)b * 1000;
        unsigned char *seen = calloc(p->topics, 1);
        if (!seen) {
            snprintf(why, wl, "out of memory");
            return -1;
        }
        int bad = 0;
        for (uint32_t k = 0; k < p->topics && !bad; k++) {
            bad = plan_uint(&s, p->topics - 1, &c) || seen[c] || c == k;
            if (!bad) {
                seen[c] = 1;
                p->shift_perm[k] = (uint32_t)c;
            }
        }
        free(seen);
        if (bad || *s) {
            snprintf(why, wl, "perm: expected a permutation of 0..%u moving every topic",
                     p->topics - 1);
            return -1;
        }
        return 0;
    }
    if (plan_word(&s, "new-item") == 0) {
        if (plan_uint(&s, UINT32_MAX, &a) || a <= p->items || plan_word(&s, "topic") ||
            plan_uint(&s, p->topics - 1, &b) || plan_word(&s, "event") ||
            plan_uint(&s, UINT64_MAX >> 1, &c) || plan_word(&s, "ts") ||
            plan_uint(&s, INT64_MAX / 1000, &e) || *s) {
            snprintf(why, wl, "expected 'new-item ID topic k event E ts S', ID > %u, k < %u",
                     p->items, p->topics);
            return -1;
        }
        gen_newitem_t it = {(uint32_t)a, (uint32_t)b, c, (int64_t)e * 1000};
        if (plan_add_new(p, &it)) {
            snprintf(why, wl, "out of memory");
            return -1;
        }
        return 0;
    }
    snprintf(why, wl, "unknown (expected topics, user-topics, shift or new-item)");
    return -1;
}

int dataset_load(dataset_t *d, const char *path, char *errstr, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errstr, len, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = 0;
    int first = 1; /* the first data line may be a header */
    while (getline(&line, &cap, f) != -1) {
        lineno++;
        char *s = line;
        if (lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
            s += 3; /* a UTF-8 byte order mark, as spreadsheets write CSV */
        if (strncmp(s, "# plant", 7) == 0 && (s[7] == ' ' || s[7] == '\r' || s[7] == '\n')) {
            char why[160];
            s[7 + strcspn(s + 7, "\r\n")] = '\0';
            if (plan_line(d, s + 7, why, sizeof(why))) {
                snprintf(errstr, len, "%s:%ld: plant line: %s", path, lineno, why);
                rc = -1;
                break;
            }
            continue;
        }
        if (s[0] == '#' || s[strspn(s, " \t\r\n")] == '\0')
            continue; /* a comment, an empty line or one of blanks */
        sep_t sep = sep_detect(s);
        char *fld[4];
        size_t fl[4];
        int n = split(s, sep, fld, fl, 4);
        if (n < 4) {
            snprintf(errstr, len, "%s:%ld: expected 4 non-empty %s, got %d", path, lineno,
                     sep_expect(sep), n);
            rc = -1;
            break;
        }
        if (fl[0] == 0 || fl[1] == 0 || fl[3] == 0) {
            snprintf(errstr, len, "%s:%ld: the %s field is empty (expected 4 non-empty %s)", path,
                     lineno,
                     fl[0] == 0   ? "user"
                     : fl[1] == 0 ? "item"
                                  : "timestamp",
                     sep_expect(sep));
            rc = -1;
            break;
        }
        char *end;
        errno = 0;
        while (fl[3] && (fld[3][fl[3] - 1] == ' ' || fld[3][fl[3] - 1] == '\t'))
            fl[3]--; /* "::" lines may end in blanks */
        long long ts = strtoll(fld[3], &end, 10);
        if (errno || end != fld[3] + fl[3] || fl[3] == 0 || ts < 0) {
            if (first && !is_number(fld[0], fl[0]) && !is_number(fld[1], fl[1]) &&
                !is_number(fld[2], fl[2]) && !is_number(fld[3], fl[3])) {
                first = 0; /* a header: userId,movieId,rating,timestamp */
                continue;
            }
            snprintf(errstr, len, "%s:%ld: timestamp '%.*s' is not a non-negative integer", path,
                     lineno, (int)fl[3], fld[3]);
            rc = -1;
            break;
        }
        first = 0;
        /* seconds (as MovieLens has them) or already milliseconds */
        int64_t ms = ts < 100000000000LL ? (int64_t)ts * 1000 : (int64_t)ts;
        if (dataset_add(d, fld[0], fl[0], fld[1], fl[1], ms)) {
            snprintf(errstr, len, "%s:%ld: out of memory", path, lineno);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(errstr, len, "%s: read error", path);
        rc = -1;
    }
    if (rc == 0 && d->plan && !d->plan->user_topic) {
        snprintf(errstr, len, "%s: plant lines without a 'user-topics' line", path);
        rc = -1;
    }
    if (rc == 0 && d->n == 0) {
        snprintf(errstr, len, "%s: no interactions", path);
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

void gen_config_default(gen_config_t *cfg)
{
    cfg->users = 1000;
    cfg->items = 2000;
    cfg->events = 100000;
    cfg->seed = 1;
    cfg->topics = 24;
    cfg->zipf = 0.6;
    cfg->focus = 0.8;
    cfg->shift_at = 0.0;
    cfg->new_items = 0;
    cfg->new_share = 0.1;
}

static uint32_t draw_cdf(const double *cdf, uint32_t n, rng_t *r)
{
    double u = rng_double(r) * cdf[n - 1];
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* The event index of cfg->shift_at (UINT64_MAX: none); -1 when it is not
 * one: a share that rounds to event 0, an index that is not an integer or
 * not before the end. */
static int shift_event(const gen_config_t *cfg, uint64_t *at)
{
    *at = UINT64_MAX;
    double s = cfg->shift_at;
    if (s == 0.0)
        return 0;
    if (!(s > 0.0) || cfg->topics < 2)
        return -1;
    double e = s < 1.0 ? floor(s * (double)cfg->events) : s;
    if (e < 1.0 || e != floor(e) || e >= (double)cfg->events)
        return -1;
    *at = (uint64_t)e;
    return 0;
}

/* The plan of cfg's planted change, its times still to be filled: users'
 * main topics, the shift's permutation (Sattolo's algorithm: one cycle
 * through every topic, so none stays) and the new items' births. */
static gen_plan_t *plan_create(const gen_config_t *cfg, const uint32_t *umain, uint64_t shift_e,
                               rng_t *r2)
{
    gen_plan_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    uint32_t K = cfg->topics, N = cfg->new_items;
    p->topics = K;
    p->items = cfg->items;
    p->users = cfg->users;
    p->user_topic = malloc(sizeof(uint32_t) * cfg->users);
    if (shift_e != UINT64_MAX)
        p->shift_perm = malloc(sizeof(uint32_t) * K);
    if (N)
        p->new_items = calloc(N, sizeof(gen_newitem_t));
    if (!p->user_topic || (shift_e != UINT64_MAX && !p->shift_perm) || (N && !p->new_items)) {
        gen_plan_free(p);
        return NULL;
    }
    memcpy(p->user_topic, umain, sizeof(uint32_t) * cfg->users);
    if (p->shift_perm) {
        p->shift_event = shift_e;
        for (uint32_t k = 0; k < K; k++)
            p->shift_perm[k] = k;
        for (uint32_t k = K - 1; k > 0; k--) {
            uint32_t j = rng_below(r2, k), t = p->shift_perm[k];
            p->shift_perm[k] = p->shift_perm[j];
            p->shift_perm[j] = t;
        }
    }
    /* births from the middle to 90% of the stream, evenly spaced */
    uint64_t E = cfg->events, span = E * 2 / 5;
    for (uint32_t j = 0; j < N; j++)
        p->new_items[j] = (gen_newitem_t){cfg->items + 1 + j, j % K, E / 2 + span * j / N, 0};
    p->nnew = p->new_cap = N;
    return p;
}

int dataset_generate(dataset_t *d, const gen_config_t *cfg, char *errstr, size_t len)
{
    if (cfg->users < 1 || cfg->items < cfg->topics || cfg->topics < 1 || cfg->events < 1 ||
        cfg->zipf < 0.0 || cfg->focus < 0.0 || cfg->focus > 1.0) {
        snprintf(errstr, len,
                 "gen: need users ≥ 1, topics ≥ 1, items ≥ topics, events ≥ 1, zipf ≥ 0, "
                 "focus in [0, 1]");
        return -1;
    }
    uint64_t shift_e;
    if (shift_event(cfg, &shift_e)) {
        snprintf(errstr, len,
                 "gen: shift at %.15g: need topics ≥ 2 and a share in (0, 1) or an integer event "
                 "index, at event 1 or later and before event %llu (the last)",
                 cfg->shift_at, (unsigned long long)cfg->events);
        return -1;
    }
    if (cfg->new_items && (!(cfg->new_share > 0.0 && cfg->new_share <= 1.0) || cfg->events < 2 ||
                           (uint64_t)cfg->items + cfg->new_items >= UINT32_MAX)) {
        snprintf(errstr, len,
                 "gen: new items need a share in (0, 1], events ≥ 2 and items + new items "
                 "below 2^32 - 1");
        return -1;
    }
    rng_t r;
    rng_seed(&r, cfg->seed);
    /* planted change draws from its own stream, so the base draws are the
     * same with or without it (dataset.h) */
    rng_t r2;
    rng_seed(&r2, cfg->seed ^ 0x5ca1ab1e0ddba11ULL);
    uint32_t K = cfg->topics, I = cfg->items, U = cfg->users, N = cfg->new_items;
    /* item i has popularity rank perm[i]; topic of item i is i % K */
    uint32_t *perm = malloc(sizeof(uint32_t) * I);
    uint32_t *tsize = calloc(K, sizeof(uint32_t));
    uint32_t *titems = malloc(sizeof(uint32_t) * I);
    double *tcdf = malloc(sizeof(double) * I);
    uint32_t *tstart = calloc(K + 1, sizeof(uint32_t));
    uint32_t *umain = malloc(sizeof(uint32_t) * U);
    double *ucdf = malloc(sizeof(double) * U);
    uint32_t *nlive = N ? calloc(K, sizeof(uint32_t)) : NULL; /* new items born, per topic */
    gen_plan_t *plan = NULL;
    int rc = -1;
    if (!perm || !tsize || !titems || !tcdf || !tstart || !umain || !ucdf || (N && !nlive)) {
        snprintf(errstr, len, "gen: out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < I; i++)
        perm[i] = i;
    for (uint32_t i = I - 1; i > 0; i--) {
        uint32_t j = rng_below(&r, i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (uint32_t i = 0; i < I; i++)
        tsize[i % K]++;
    for (uint32_t k = 0; k < K; k++)
        tstart[k + 1] = tstart[k] + tsize[k];
    {
        uint32_t *pos = calloc(K, sizeof(uint32_t));
        if (!pos) {
            snprintf(errstr, len, "gen: out of memory");
            goto out;
        }
        for (uint32_t i = 0; i < I; i++) {
            uint32_t k = i % K, at = tstart[k] + pos[k]++;
            titems[at] = i;
            double w = pow((double)perm[i] + 1.0, -cfg->zipf);
            tcdf[at] = (pos[k] > 1 ? tcdf[at - 1] : 0.0) + w;
        }
        free(pos);
    }
    /* users: a main topic each, and an activity that varies (more events for some) */
    double acc = 0.0;
    for (uint32_t u = 0; u < U; u++) {
        umain[u] = rng_below(&r, K);
        acc += 0.5 + rng_double(&r);
        ucdf[u] = acc;
    }
    if ((shift_e != UINT64_MAX || N) && !(plan = plan_create(cfg, umain, shift_e, &r2))) {
        snprintf(errstr, len, "gen: out of memory");
        goto out;
    }
    int64_t ts = 1764486000LL * 1000;
    char ub[24], ib[24];
    uint32_t born = 0; /* new items born so far: 0..born-1 */
    for (uint64_t e = 0; e < cfg->events; e++) {
        uint32_t u = draw_cdf(ucdf, U, &r);
        uint32_t topic = e >= shift_e ? plan->shift_perm[umain[u]] : umain[u];
        uint32_t k = rng_double(&r) < cfg->focus ? topic : rng_below(&r, K);
        uint32_t at = tstart[k] + draw_cdf(tcdf + tstart[k], tsize[k], &r);
        ts += 1000 * (1 + rng_below(&r, 3));
        if (e == shift_e)
            plan->shift_ms = ts;
        for (; born < N && plan->new_items[born].birth_event <= e; born++) {
            plan->new_items[born].birth_ms = ts;
            nlive[born % K]++;
        }
        int64_t item = (int64_t)titems[at] + 1;
        /* the draw goes to one of topic k's live new items (j = k, k + K, ...) */
        if (N && nlive[k] && rng_double(&r2) < cfg->new_share)
            item = (int64_t)I + 1 + k + (int64_t)K * rng_below(&r2, nlive[k]);
        size_t ul = id_from_int((int64_t)u + 1, ub), il = id_from_int(item, ib);
        if (dataset_add(d, ub, ul, ib, il, ts)) {
            snprintf(errstr, len, "gen: out of memory");
            goto out;
        }
    }
    if (plan) {
        gen_plan_free(d->plan);
        d->plan = plan;
        plan = NULL; /* owned by d now */
    }
    rc = 0;
out:
    free(perm);
    free(tsize);
    free(titems);
    free(tcdf);
    free(tstart);
    free(umain);
    free(ucdf);
    free(nlive);
    gen_plan_free(plan);
    return rc;
}

/* The plant lines of p (dataset.h). */
static int plan_write(const gen_plan_t *p, FILE *f)
{
    if (fprintf(f, "# plant topics %u items %u users %u\n# plant user-topics", p->topics, p->items,
                p->users) < 0)
        return -1;
    for (uint32_t u = 0; u < p->users; u++)
        if (fprintf(f, " %u", p->user_topic[u]) < 0)
            return -1;
    if (fputc('\n', f) == EOF)
        return -1;
    if (p->shift_perm) {
        if (fprintf(f, "# plant shift event %llu ts %lld perm", (unsigned long long)p->shift_event,
                    (long long)(p->shift_ms / 1000)) < 0)
            return -1;
        for (uint32_t k = 0; k < p->topics; k++)
            if (fprintf(f, " %u", p->shift_perm[k]) < 0)
                return -1;
        if (fputc('\n', f) == EOF)
            return -1;
    }
    for (size_t j = 0; j < p->nnew; j++) {
        const gen_newitem_t *it = &p->new_items[j];
        if (fprintf(f, "# plant new-item %u topic %u event %llu ts %lld\n", it->id, it->topic,
                    (unsigned long long)it->birth_event, (long long)(it->birth_ms / 1000)) < 0)
            return -1;
    }
    return 0;
}

int dataset_write(const dataset_t *d, FILE *f)
{
    if (d->plan && plan_write(d->plan, f))
        return -1;
    for (size_t i = 0; i < d->n; i++) {
        const ds_event_t *e = &d->ev[i];
        if (fprintf(f, "%s\t%s\t1\t%lld\n", d->users[e->user].id, d->items[e->item].id,
                    (long long)(e->ts_ms / 1000)) < 0)
            return -1;
    }
    return fflush(f) == 0 ? 0 : -1;
}

static int cmp_ts(const void *a, const void *b)
{
    const ds_event_t *x = a, *y = b;
    return (x->ts_ms > y->ts_ms) - (x->ts_ms < y->ts_ms);
}

void dataset_sort_by_time(dataset_t *d)
{
    /* qsort is not stable; ties keep file order through a merge sort on a copy */
    ds_event_t *tmp = malloc(sizeof(ds_event_t) * (d->n ? d->n : 1));
    if (!tmp) {
        qsort(d->ev, d->n, sizeof(ds_event_t), cmp_ts);
        return;
    }
    for (size_t w = 1; w < d->n; w *= 2) {
        for (size_t lo = 0; lo < d->n; lo += 2 * w) {
            size_t mid = lo + w < d->n ? lo + w : d->n;
            size_t hi = lo + 2 * w < d->n ? lo + 2 * w : d->n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = d->ev[j].ts_ms < d->ev[i].ts_ms ? d->ev[j++] : d->ev[i++];
            while (i < mid)
                tmp[k++] = d->ev[i++];
            while (j < hi)
                tmp[k++] = d->ev[j++];
        }
        memcpy(d->ev, tmp, sizeof(ds_event_t) * d->n);
    }
    free(tmp);
}

int dataset_loo(const dataset_t *d, size_t **held, size_t **train, size_t *ntrain)
{
    size_t *h = malloc(sizeof(size_t) * (d->nusers ? d->nusers : 1));
    uint32_t *cnt = calloc(d->nusers ? d->nusers : 1, sizeof(uint32_t));
    size_t *t = malloc(sizeof(size_t) * (d->n ? d->n : 1));
    if (!h || !cnt || !t) {
        free(h);
        free(cnt);
        free(t);
        return -1;
    }
    for (size_t u = 0; u < d->nusers; u++)
        h[u] = SIZE_MAX;
    for (size_t i = 0; i < d->n; i++) {
        cnt[d->ev[i].user]++;
        h[d->ev[i].user] = i; /* the last one wins: the latest, file order on ties */
    }
    size_t n = 0;
    for (size_t u = 0; u < d->nusers; u++)
        if (cnt[u] < 2)
            h[u] = SIZE_MAX;
    for (size_t i = 0; i < d->n; i++)
        if (h[d->ev[i].user] != i)
            t[n++] = i;
    free(cnt);
    *held = h;
    *train = t;
    *ntrain = n;
    return 0;
}

/* NCF protocol: each held-out item ranked against 100 items the user never
 * interacted with; also ranks by training popularity as a baseline. */
int dataset_eval_loo(learner_t *l, const dataset_t *d, const size_t *held, const size_t *train,
                     size_t ntrain, uint64_t seed, loo_result_t *res)
{
    enum { NNEG = 100 };
    memset(res, 0, sizeof(*res));
    if (d->nitems < NNEG + 2)
        return 0;
    /* per-user item lists (CSR) and training popularity */
    size_t *off = calloc(d->nusers + 1, sizeof(size_t));
    uint32_t *items = malloc(sizeof(uint32_t) * d->n);
    double *pop = calloc(d->nitems, sizeof(double));
    unsigned char *seen = calloc(d->nitems, 1);
    size_t *fill = calloc(d->nusers, sizeof(size_t));
    lrn_id_t *cand = malloc(sizeof(lrn_id_t) * (NNEG + 1));
    uint32_t *ci = malloc(sizeof(uint32_t) * (NNEG + 1));
    float *sc = malloc(sizeof(float) * (NNEG + 1));
    int rc = -1;
    if (!off || !items || !pop || !seen || !fill || !cand || !ci || !sc)
        goto out;
    for (size_t i = 0; i < d->n; i++)
        off[d->ev[i].user + 1]++;
    for (size_t u = 0; u < d->nusers; u++)
        off[u + 1] += off[u];
    for (size_t i = 0; i < d->n; i++)
        items[off[d->ev[i].user] + fill[d->ev[i].user]++] = d->ev[i].item;
    for (size_t t = 0; t < ntrain; t++)
        pop[d->ev[train[t]].item] += 1.0;
    rng_t r;
    rng_seed(&r, seed ^ 0xe7a1ULL);
    for (size_t u = 0; u < d->nusers; u++) {
        if (held[u] == SIZE_MAX)
            continue;
        size_t distinct = 0;
        for (size_t k = off[u]; k < off[u + 1]; k++)
            if (!seen[items[k]]) {
                seen[items[k]] = 1;
                distinct++;
            }
        int n = 0;
        if (d->nitems - distinct >= NNEG) {
            ci[n++] = d->ev[held[u]].item;
            while (n < NNEG + 1) { /* without replacement among unseen items */
                uint32_t it = rng_below(&r, (uint32_t)d->nitems);
                if (!seen[it]) {
                    seen[it] = 1;
                    ci[n++] = it;
                }
            }
        }
        for (int k = 1; k < n; k++)
            seen[ci[k]] = 0;
        for (size_t k = off[u]; k < off[u + 1]; k++)
            seen[items[k]] = 0;
        if (n == 0)
            continue;
        for (int k = 0; k < n; k++)
            cand[k] = d->items[ci[k]];
        learner_score(l, &d->users[u], cand, n, sc);
        int rank = metric_rank(sc[0], sc + 1, n - 1);
        res->hr += metric_hr(rank, 10);
        res->ndcg += metric_ndcg(rank, 10);
        for (int k = 0; k < n; k++)
            sc[k] = (float)pop[ci[k]];
        rank = metric_rank(sc[0], sc + 1, n - 1);
        res->pop_hr += metric_hr(rank, 10);
        res->pop_ndcg += metric_ndcg(rank, 10);
        res->users++;
    }
    if (res->users) {
        res->hr /= res->users;
        res->ndcg /= res->users;
        res->pop_hr /= res->users;
        res->pop_ndcg /= res->users;
    }
    rc = 0;
out:
    free(off);
    free(items);
    free(pop);
    free(seen);
    free(fill);
    free(cand);
    free(ci);
    free(sc);
    return rc;
}
