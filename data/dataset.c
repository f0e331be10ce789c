/* dataset.c — interaction files, the synthetic generator and the
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

/* splits s into at most max fields on "::" or runs of blanks */
static int split(char *s, char **f, size_t *flen, int max)
{
    int n = 0;
    int colons = strstr(s, "::") != NULL;
    char *p = s;
    while (*p && n < max) {
        if (!colons)
            while (*p == ' ' || *p == '\t')
                p++;
        if (!*p || *p == '\n' || *p == '\r')
            break;
        char *start = p;
        if (colons) {
            char *e = strstr(p, "::");
            p = e ? e : p + strcspn(p, "\r\n");
        } else {
            p += strcspn(p, " \t\r\n");
        }
        f[n] = start;
        flen[n++] = (size_t)(p - start);
        if (colons && *p == ':')
            p += 2;
        else if (*p == '\r' || *p == '\n')
            break;
    }
    return n;
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
    while (getline(&line, &cap, f) != -1) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n' || line[0] == '\r' || line[0] == '\0')
            continue;
        char *fld[4];
        size_t fl[4];
        int n = split(line, fld, fl, 4);
        if (n == 0)
            continue; /* a line of blanks */
        if (n < 4 || fl[0] == 0 || fl[1] == 0) {
            snprintf(errstr, len, "%s:%ld: expected 4 non-empty fields (user item rating ts)", path,
                     lineno);
            rc = -1;
            break;
        }
        char *end;
        errno = 0;
        while (fl[3] && (fld[3][fl[3] - 1] == ' ' || fld[3][fl[3] - 1] == '\t'))
            fl[3]--; /* "::" lines may end in blanks */
        long long ts = strtoll(fld[3], &end, 10);
        if (errno || end != fld[3] + fl[3] || fl[3] == 0 || ts < 0) {
            snprintf(errstr, len, "%s:%ld: timestamp '%.*s' is not a non-negative integer", path,
                     lineno, (int)fl[3], fld[3]);
            rc = -1;
            break;
        }
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

int dataset_generate(dataset_t *d, const gen_config_t *cfg, char *errstr, size_t len)
{
    if (cfg->users < 1 || cfg->items < cfg->topics || cfg->topics < 1 || cfg->events < 1 ||
        cfg->zipf < 0.0 || cfg->focus < 0.0 || cfg->focus > 1.0) {
        snprintf(errstr, len,
                 "gen: need users ≥ 1, topics ≥ 1, items ≥ topics, events ≥ 1, zipf ≥ 0, "
                 "focus in [0, 1]");
        return -1;
    }
    rng_t r;
    rng_seed(&r, cfg->seed);
    uint32_t K = cfg->topics, I = cfg->items, U = cfg->users;
    /* item i has popularity rank perm[i]; topic of item i is i % K */
    uint32_t *perm = malloc(sizeof(uint32_t) * I);
    uint32_t *tsize = calloc(K, sizeof(uint32_t));
    uint32_t *titems = malloc(sizeof(uint32_t) * I);
    double *tcdf = malloc(sizeof(double) * I);
    uint32_t *tstart = calloc(K + 1, sizeof(uint32_t));
    uint32_t *umain = malloc(sizeof(uint32_t) * U);
    double *ucdf = malloc(sizeof(double) * U);
    int rc = -1;
    if (!perm || !tsize || !titems || !tcdf || !tstart || !umain || !ucdf) {
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
    int64_t ts = 1764486000LL * 1000;
    char ub[24], ib[24];
    for (uint64_t e = 0; e < cfg->events; e++) {
        uint32_t u = draw_cdf(ucdf, U, &r);
        uint32_t k = rng_double(&r) < cfg->focus ? umain[u] : rng_below(&r, K);
        uint32_t at = tstart[k] + draw_cdf(tcdf + tstart[k], tsize[k], &r);
        ts += 1000 * (1 + rng_below(&r, 3));
        size_t ul = id_from_int((int64_t)u + 1, ub), il = id_from_int((int64_t)titems[at] + 1, ib);
        if (dataset_add(d, ub, ul, ib, il, ts)) {
            snprintf(errstr, len, "gen: out of memory");
            goto out;
        }
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
    return rc;
}

int dataset_write(const dataset_t *d, FILE *f)
{
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
