/* eval.c — the replay of `freshrec eval` (see eval.h): one pass over a
 * time-ordered stream, cut into windows at the publish instants of the
 * stream's clock. At each instant every arm publishes (a retrain arm may
 * retrain); then each event of the window is scored by every arm, against
 * the full catalogue of items seen before it, the user's earlier items left
 * out; then the arms observe the window. So no arm scores an event it has
 * seen, and the learners score as the daemon would have published them
 * (with two approximations: a history model's user is scored with the
 * current rows of their last items, and hmf's transition map with the map
 * as it is, where the daemon publishes a user's vector when the user is
 * learned and an item's map term when the item is).
 * The command itself (options, tables, JSON, plots) is in evalcli.c. */
#define _POSIX_C_SOURCE 200809L
#include "eval.h"

#include "clock.h"
#include "evalarms.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS (86400LL * 1000)
#define NONE UINT32_MAX
#define SAMPLED 100     /* HR@10 ranks the event's item against this many sampled items */
#define NEW_USER_MAX 10 /* a new user: at most this many earlier interactions */

void eval_config_default(eval_config_t *c)
{
    memset(c, 0, sizeof(*c));
    learner_config_default(&c->lcfg);
    c->publish_ms = 50;
    c->eval_rate = 1.0;
    c->pop_window = 10000;
    c->knn_recent = 20;
    c->retrain_hours = 24;
    c->retrain_growth = 0.02;
    c->retrain_epochs = 5;
    c->warmup = 0.2;
    c->resamples = 1000;
    c->seed = 1;
    c->arms = (1u << ARM_COUNT) - 1;
}

size_t eval_rank(const float *s, size_t n, size_t t, const unsigned char *excl)
{
    if (isnan(s[t]))
        return n;
    size_t above = 0;
    for (size_t k = 0; k < n; k++)
        above += k != t && !excl[k] && s[k] >= s[t];
    return above + 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void eval_bootstrap(const float *diff, size_t n, int resamples, uint64_t seed, double *mean,
                    double *lo, double *hi)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += diff[i];
    *mean = *lo = *hi = n ? sum / (double)n : 0.0;
    double *m = n && resamples > 0 ? malloc(sizeof(double) * (size_t)resamples) : NULL;
    if (!m)
        return;
    rng_t g;
    rng_seed(&g, seed);
    for (int b = 0; b < resamples; b++) {
        double s = 0.0;
        for (size_t i = 0; i < n; i++)
            s += diff[rng_below(&g, (uint32_t)n)];
        m[b] = s / (double)n;
    }
    qsort(m, (size_t)resamples, sizeof(double), cmp_double);
    *lo = m[(size_t)(0.025 * (resamples - 1) + 0.5)];
    *hi = m[(size_t)(0.975 * (resamples - 1) + 0.5)];
    free(m);
}

/* ------------------------------------------------------------ the run */

typedef struct {
    const dataset_t *d;
    const eval_config_t *c;
    eval_result_t *r;
    arm_t *arm[ARM_COUNT]; /* in the result's order */
    eval_stream_t s;
    lrn_event_t *lev;    /* (n) */
    uint32_t *cat_item;  /* (nitems) the catalogue, in first-seen order */
    lrn_id_t *cat_id;    /* (nitems) */
    size_t ncat;         /* items seen so far */
    uint32_t *pos;       /* (nitems) each item's place in the catalogue, NONE: unseen */
    int64_t *first_ms;   /* (nitems) when each item was first seen */
    uint32_t *hist;      /* (n) each user's items in order, from hist_at[user] */
    size_t *hist_at;     /* (nusers) */
    uint32_t *hist_n;    /* (nusers) of them seen so far */
    unsigned char *excl; /* (nitems) catalogue places left out of this event's ranking */
    unsigned char *mark; /* (nitems) catalogue places sampled for this event */
    uint32_t sample[SAMPLED];
    int nsample;
    float *scores;     /* (nitems) */
    uint32_t *icount;  /* (nitems) each item's events so far */
    size_t *first_k;   /* (nitems) the event that first showed each item */
    size_t *ulast;     /* (nusers) each user's last event so far + 1, 0: none */
    size_t max_scored; /* room of each arm's hit20 */
    double t_start, t_said;
} run_t;

/* The periods of the per-period series, shortest first: the first of
 * which a stream spans fewer than 80 (an hour for a generated stream of two
 * days, a week for ML-100k, 52 weeks for 22 years). */
static const struct {
    int64_t ms;
    const char *name;
} periods[] = {
    {3600LL * 1000, "hour"}, {6 * 3600LL * 1000, "6 hours"}, {DAY_MS, "day"},
    {7 * DAY_MS, "week"},    {28 * DAY_MS, "4 weeks"},       {364 * DAY_MS, "52 weeks"},
};
#define NPERIODS ((int)(sizeof(periods) / sizeof(periods[0])))

static int64_t bucket_len(int64_t span_ms)
{
    int i = 0;
    while (i < NPERIODS - 1 && span_ms / periods[i].ms >= 80)
        i++;
    return periods[i].ms;
}

const char *eval_period_name(int64_t ms)
{
    for (int i = 0; i < NPERIODS; i++)
        if (periods[i].ms == ms)
            return periods[i].name;
    return "period";
}

static int run_alloc(run_t *x, char *err, size_t len)
{
    const dataset_t *d = x->d;
    size_t n = d->n, I = d->nitems + 1, U = d->nusers + 1;
    x->lev = malloc(sizeof(lrn_event_t) * (n ? n : 1));
    x->cat_item = malloc(sizeof(uint32_t) * I);
    x->cat_id = malloc(sizeof(lrn_id_t) * I);
    x->pos = malloc(sizeof(uint32_t) * I);
    x->first_ms = calloc(I, sizeof(int64_t));
    x->hist = malloc(sizeof(uint32_t) * (n ? n : 1));
    x->hist_at = calloc(U, sizeof(size_t));
    x->hist_n = calloc(U, sizeof(uint32_t));
    x->excl = calloc(I, 1);
    x->mark = calloc(I, 1);
    x->scores = malloc(sizeof(float) * I);
    x->icount = calloc(I, sizeof(uint32_t));
    x->first_k = calloc(I, sizeof(size_t));
    x->ulast = calloc(U, sizeof(size_t));
    size_t sn = n ? n : 1;
    x->r->ev_of = malloc(sizeof(size_t) * sn);
    x->r->clicks = malloc(sizeof(uint32_t) * sn);
    x->r->late = malloc(sn);
    x->r->back = malloc(sn);
    if (!x->lev || !x->cat_item || !x->cat_id || !x->pos || !x->first_ms || !x->hist ||
        !x->hist_at || !x->hist_n || !x->excl || !x->mark || !x->scores || !x->icount ||
        !x->first_k || !x->ulast || !x->r->ev_of || !x->r->clicks || !x->r->late || !x->r->back) {
        snprintf(err, len, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < I; i++)
        x->pos[i] = NONE;
    /* each user's slice of hist: the users' event counts, summed */
    for (size_t k = 0; k < n; k++)
        x->hist_n[d->ev[k].user]++;
    size_t at = 0;
    for (size_t u = 0; u < U; u++) {
        x->hist_at[u] = at;
        at += x->hist_n[u];
        x->hist_n[u] = 0;
    }
    for (size_t k = 0; k < n; k++) {
        const ds_event_t *e = &d->ev[k];
        x->lev[k] = (lrn_event_t){
            .user = d->users[e->user], .item = d->items[e->item], .ts_ms = e->ts_ms, .weight = 1};
    }
    x->s = (eval_stream_t){d, x->lev};
    return 0;
}

static arm_t *make_arm(run_t *x, int which, char *err, size_t len)
{
    const eval_config_t *c = x->c;
    char name[32];
    retrain_config_t rc = {0, c->retrain_growth, c->retrain_epochs, 0};
    switch (which) {
    case ARM_ONLINE:
        return arm_online(&x->s, &c->lcfg, err, len);
    case ARM_POP:
        return arm_popularity(&x->s, c->pop_window, err, len);
    case ARM_KNN:
        return arm_knn(&x->s, c->knn_recent, err, len);
    case ARM_RETRAIN:
        rc.every_ms = (int64_t)(c->retrain_hours * 3.6e6);
        snprintf(name, sizeof(name), "retrain-%gh", c->retrain_hours);
        return arm_retrain(&x->s, &c->lcfg, &rc, name, err, len);
    default:
        rc.once_at = (size_t)ceil(c->warmup * (double)x->d->n);
        return arm_retrain(&x->s, &c->lcfg, &rc, "never-retrained", err, len);
    }
}

static int run_arms(run_t *x, size_t scored_max, char *err, size_t len)
{
    eval_result_t *r = x->r;
    for (int w = 0; w < ARM_COUNT; w++) {
        r->index[w] = -1;
        if (!(x->c->arms & (1u << w)))
            continue;
        eval_arm_result_t *ar = &r->arm[r->narms];
        if (!(x->arm[r->narms] = make_arm(x, w, err, len)))
            return -1;
        ar->bucket = calloc(r->nbucket, sizeof(eval_sums_t));
        ar->hit20 = malloc(sizeof(float) * (scored_max ? scored_max : 1));
        ar->hit10 = malloc(sizeof(float) * (scored_max ? scored_max : 1));
        if (!ar->bucket || !ar->hit20 || !ar->hit10) {
            snprintf(err, len, "out of memory");
            return -1;
        }
        snprintf(ar->name, sizeof(ar->name), "%s", x->arm[r->narms]->name);
        r->index[w] = r->narms++;
    }
    return 0;
}

/* Whether event k is scored: a deterministic share eval_rate of them. */
static int sampled_for_scoring(const eval_config_t *c, size_t k)
{
    if (c->eval_rate >= 1.0)
        return 1;
    uint64_t x = c->seed * 0x9e3779b97f4a7c15ULL + k;
    return (double)(rng_splitmix(&x) >> 11) * 0x1.0p-53 < c->eval_rate;
}

/* Up to SAMPLED catalogue places other than t and not excluded, distinct,
 * drawn with a generator seeded by the event: the same for every arm. */
static void draw_sample(run_t *x, size_t k, uint32_t t, size_t excluded)
{
    size_t eligible = x->ncat - 1 - excluded;
    x->nsample = 0;
    if (eligible <= SAMPLED) {
        for (uint32_t p = 0; p < x->ncat; p++)
            if (p != t && !x->excl[p])
                x->sample[x->nsample++] = p;
        return;
    }
    rng_t g;
    rng_seed(&g, x->c->seed * 1000003u + k);
    while (x->nsample < SAMPLED) {
        uint32_t p = rng_below(&g, (uint32_t)x->ncat);
        if (p == t || x->excl[p] || x->mark[p])
            continue;
        x->mark[p] = 1;
        x->sample[x->nsample++] = p;
    }
    for (int i = 0; i < x->nsample; i++)
        x->mark[x->sample[i]] = 0;
}

static void tally(eval_sums_t *s, double rec, double ndcg, double hr, double mrr)
{
    s->recall20 += rec;
    s->ndcg20 += ndcg;
    s->hr10 += hr;
    s->mrr += mrr;
    s->n++;
}

/* Arm i's scores of the event (x->scores) into its figures. */
static void judge(run_t *x, int i, uint32_t t, int new_item, int new_user, size_t b)
{
    const float *s = x->scores;
    size_t rank = eval_rank(s, x->ncat, t, x->excl);
    int above = 0;
    for (int j = 0; j < x->nsample; j++)
        above += isnan(s[t]) || s[x->sample[j]] >= s[t];
    double rec = rank <= 20, ndcg = rank <= 20 ? 1.0 / log2((double)rank + 1.0) : 0.0;
    double hr = above < 10, mrr = 1.0 / (double)rank;
    eval_arm_result_t *ar = &x->r->arm[i];
    tally(&ar->all, rec, ndcg, hr, mrr);
    tally(&ar->bucket[b], rec, ndcg, hr, mrr);
    if (new_item)
        tally(&ar->new_item, rec, ndcg, hr, mrr);
    if (new_user)
        tally(&ar->new_user, rec, ndcg, hr, mrr);
    ar->hit20[x->r->scored] = (float)rec;
    ar->hit10[x->r->scored] = (float)hr;
}

static void score_event(run_t *x, size_t k)
{
    const ds_event_t *e = &x->d->ev[k];
    const uint32_t *h = x->hist + x->hist_at[e->user];
    uint32_t nh = x->hist_n[e->user], t = x->pos[e->item];
    size_t excluded = 0;
    for (uint32_t j = 0; j < nh; j++)
        if (h[j] != e->item && !x->excl[x->pos[h[j]]]) {
            x->excl[x->pos[h[j]]] = 1;
            excluded++;
        }
    draw_sample(x, k, t, excluded);
    eval_query_t q = {k, x->cat_item, x->cat_id, x->ncat, h, nh};
    int new_item = e->ts_ms - x->first_ms[e->item] <= DAY_MS, new_user = nh <= NEW_USER_MAX;
    size_t b = (size_t)((e->ts_ms - x->r->t0_ms) / x->r->bucket_ms);
    for (int i = 0; i < x->r->narms; i++) {
        double t0 = clock_mono_s();
        x->arm[i]->ops->score(x->arm[i], &q, x->scores);
        x->r->arm[i].seconds += clock_mono_s() - t0;
        judge(x, i, t, new_item, new_user, b);
    }
    x->r->ev_of[x->r->scored] = k;
    x->r->clicks[x->r->scored] = x->icount[e->item];
    x->r->late[x->r->scored] = x->c->drift_at && x->first_k[e->item] >= x->c->drift_at;
    x->r->back[x->r->scored] = x->c->drift_at && x->ulast[e->user] > x->c->drift_at;
    x->r->scored++;
    for (uint32_t j = 0; j < nh; j++)
        x->excl[x->pos[h[j]]] = 0;
}

/* event k joins the catalogue and its user's history */
static void state_add(run_t *x, size_t k)
{
    const ds_event_t *e = &x->d->ev[k];
    if (x->pos[e->item] == NONE) {
        x->pos[e->item] = (uint32_t)x->ncat;
        x->cat_item[x->ncat] = e->item;
        x->cat_id[x->ncat++] = x->d->items[e->item];
        x->first_ms[e->item] = e->ts_ms;
        x->first_k[e->item] = k;
    }
    x->icount[e->item]++;
    x->ulast[e->user] = k + 1;
    x->hist[x->hist_at[e->user] + x->hist_n[e->user]++] = e->item;
}

static void progress(run_t *x, size_t done)
{
    double t = clock_mono_s();
    if (!x->c->progress || (t - x->t_said < 3.0 && done < x->d->n))
        return;
    x->t_said = t;
    double el = t - x->t_start, eta = done ? el * (double)(x->d->n - done) / (double)done : 0;
    fprintf(stderr, "eval: %5.1f%%  %zu of %zu events, %zu scored  %.0f s, about %.0f s to go\n",
            100.0 * (double)done / (double)x->d->n, done, x->d->n, x->r->scored, el, eta);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return q - (a % b < 0);
}

/* The window [i, j) of events before the next publish instant: published,
 * scored, observed. 0, or -1 and a message. */
static int run_window(run_t *x, size_t i, size_t j, int64_t now, char *err, size_t len)
{
    for (int a = 0; a < x->r->narms; a++) {
        double t0 = clock_mono_s();
        int rc = x->arm[a]->ops->publish(x->arm[a], now, i, err, len);
        x->r->arm[a].seconds += clock_mono_s() - t0;
        if (rc)
            return -1;
    }
    for (size_t k = i; k < j; k++) {
        if (sampled_for_scoring(x->c, k)) {
            if (x->pos[x->d->ev[k].item] != NONE)
                score_event(x, k);
            else
                x->r->unrankable++;
        }
        state_add(x, k);
    }
    for (int a = 0; a < x->r->narms; a++) {
        double t0 = clock_mono_s();
        int rc = x->arm[a]->ops->observe(x->arm[a], i, j, err, len);
        x->r->arm[a].seconds += clock_mono_s() - t0;
        if (rc)
            return -1;
    }
    return 0;
}

static int run_stream(run_t *x, char *err, size_t len)
{
    const ds_event_t *ev = x->d->ev;
    int64_t P = x->c->publish_ms > 0 ? x->c->publish_ms : 1;
    size_t i = 0, n = x->d->n;
    while (i < n) {
        int64_t w = floor_div(ev[i].ts_ms, P);
        int64_t end = w >= INT64_MAX / P - 1 ? INT64_MAX : (w + 1) * P;
        size_t j = i;
        while (j < n && ev[j].ts_ms < end)
            j++;
        if (run_window(x, i, j, w * P, err, len))
            return -1;
        progress(x, j);
        i = j;
    }
    return 0;
}

static void run_free(run_t *x)
{
    for (int i = 0; i < ARM_COUNT; i++)
        arm_free(x->arm[i]);
    free(x->lev);
    free(x->cat_item);
    free(x->cat_id);
    free(x->pos);
    free(x->first_ms);
    free(x->hist);
    free(x->hist_at);
    free(x->hist_n);
    free(x->excl);
    free(x->mark);
    free(x->scores);
    free(x->icount);
    free(x->first_k);
    free(x->ulast);
}

int eval_run(const dataset_t *d, const eval_config_t *c, eval_result_t *r, char *err, size_t len)
{
    memset(r, 0, sizeof(*r));
    for (int i = 0; i < ARM_COUNT; i++)
        r->index[i] = -1;
    if (d->n == 0) {
        snprintf(err, len, "no events");
        return -1;
    }
    run_t x = {.d = d, .c = c, .r = r};
    r->events = d->n, r->users = d->nusers, r->items = d->nitems;
    r->t0_ms = d->ev[0].ts_ms, r->t1_ms = d->ev[d->n - 1].ts_ms;
    r->bucket_ms = bucket_len(r->t1_ms - r->t0_ms);
    r->nbucket = (size_t)((r->t1_ms - r->t0_ms) / r->bucket_ms) + 1;
    x.t_start = x.t_said = clock_mono_s();
    int rc = -1;
    if (run_alloc(&x, err, len) == 0 && run_arms(&x, d->n, err, len) == 0 &&
        run_stream(&x, err, len) == 0)
        rc = 0;
    for (int i = 0; i < r->narms; i++)
        snprintf(r->arm[i].note, sizeof(r->arm[i].note), "%s", x.arm[i]->note);
    r->seconds = clock_mono_s() - x.t_start;
    run_free(&x);
    return rc;
}

void eval_result_free(eval_result_t *r)
{
    for (int i = 0; i < ARM_COUNT; i++) {
        free(r->arm[i].bucket);
        free(r->arm[i].hit20);
        free(r->arm[i].hit10);
    }
    free(r->ev_of);
    free(r->clicks);
    free(r->late);
    free(r->back);
    memset(r, 0, sizeof(*r));
}

/* the first scored event at or after event k */
static size_t scored_from(const eval_result_t *r, size_t k)
{
    size_t lo = 0, hi = r->scored;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->ev_of[mid] < k)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The first scored event j ≥ s0 + W - 1 whose window of W (h or b, the
 * other NULL) sums to at least want: the events from drift_at to it, or -1. */
static long first_window(const eval_result_t *r, const float *h, const unsigned char *b, size_t s0,
                         size_t drift_at, size_t W, double want)
{
    double win = 0.0;
    for (size_t j = s0; j < r->scored; j++) {
        win += h ? h[j] : b[j];
        if (j >= s0 + W)
            win -= h ? h[j - W] : b[j - W];
        if (j + 1 >= s0 + W && win / (double)W + 1e-12 >= want)
            return (long)(r->ev_of[j] + 1 - drift_at);
    }
    return -1;
}

long eval_recovery(const eval_result_t *r, int i, size_t drift_at, size_t W, double frac,
                   double *level)
{
    *level = 0.0;
    size_t s0 = scored_from(r, drift_at);
    if (!drift_at || W == 0 || s0 < W || s0 >= r->scored)
        return -1;
    const float *h = r->arm[i].hit10;
    double pre = 0.0;
    for (size_t j = s0 - W; j < s0; j++)
        pre += h[j];
    *level = pre / (double)W;
    if (*level <= 0.0)
        return -1;
    return first_window(r, h, NULL, s0, drift_at, W, frac * *level);
}

long eval_users_back(const eval_result_t *r, size_t drift_at, size_t W, double frac)
{
    size_t s0 = scored_from(r, drift_at);
    if (!drift_at || W == 0 || s0 >= r->scored)
        return -1;
    return first_window(r, NULL, r->back, s0, drift_at, W, frac);
}

void eval_newitem_curve(const eval_result_t *r, int i, size_t drift_at, int maxc, double *rec,
                        size_t *n, double *est, size_t *nest)
{
    for (int c = 0; c <= maxc; c++)
        rec[c] = 0.0, n[c] = 0;
    *est = 0.0, *nest = 0;
    const float *h = r->arm[i].hit20;
    for (size_t j = drift_at ? scored_from(r, drift_at) : r->scored; j < r->scored; j++) {
        if (r->late[j]) {
            int c = r->clicks[j] < (uint32_t)maxc ? (int)r->clicks[j] : maxc;
            rec[c] += h[j];
            n[c]++;
        } else {
            *est += h[j];
            (*nest)++;
        }
    }
    for (int c = 0; c <= maxc; c++)
        rec[c] = n[c] ? rec[c] / (double)n[c] : 0.0;
    *est = *nest ? *est / (double)*nest : 0.0;
}
