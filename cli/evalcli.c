/* evalcli.c — the `freshrec eval` command: options, the stream (a file or
 * a generated one, with planted drift), and the report (a table per run,
 * per-period figures, paired bootstrap intervals, --json, --plot). The
 * replay itself is eval.c. Not for: metrics (eval.c) or arms (evalarms.c). */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "cliopts.h"
#include "dataset.h"
#include "eval.h"
#include "id.h"
#include "rng.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY_MS (86400LL * 1000)
/* The default --eval-rate of dssm, whose full-catalogue scoring runs the
 * item tower for every item of every scored event: ML-100k at rate 1 took
 * 520 s of wall time (337 s of CPU, the VM shared with another run), 171 s
 * of it in the online arm, nearly all scoring, and 325 s in the retrain arm,
 * mostly training. neumf (its MLP per item) and mf score every event by
 * default: ML-100k in 50 s and 18 s. */
#define DSSM_EVAL_RATE 0.25

static const char *const arm_keys[ARM_COUNT] = {"online", "popularity", "knn", "retrain", "never"};

typedef struct {
    eval_config_t c;
    const char *data, *plot, *name, *arms, *model;
    int gen, shift, json, quiet;
    double births, rate; /* rate < 0: the model's default */
    long threads;
    gen_config_t g;
} eval_opts_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: freshrec eval (--data PATH | --gen [generator options]) [options]\n"
               "Prequential streaming evaluation: replays the stream in time order through\n"
               "several arms at once; each event is scored by every arm before any learns it,\n"
               "with the model as published at the last publish instant of the stream's clock.\n"
               "  --data PATH          interaction file (user item rating ts), as train reads\n"
               "  --gen                a generated stream instead (freshrec gen's generator):\n"
               "    --users U --items I --events E --gen-seed S --topics K --zipf A --focus F\n"
               "    --gen-shift        at the middle every user's taste moves to the next topic\n"
               "    --gen-births X     at the middle a share X of the items is reborn under\n"
               "                       new ids (new items with an established audience)   [0]\n"
               "  --arms LIST          of online,popularity,knn,retrain,never             [all]\n"
               "  --publish-ms N       publish interval on the stream's clock (the daemon's) [50]\n"
               "  --eval-rate X        deterministic share of events scored\n"
               "                       [1; 0.25 for dssm, whose scoring runs its item tower]\n"
               "  --pop-window N       popularity: the last N events                    [10000]\n"
               "  --knn-recent N       item-kNN: each user's last N items                 [20]\n"
               "  --retrain-hours H    retrain: stream hours between trainings (168: weekly) [24]\n"
               "  --retrain-growth X   retrain only with a share X more events than last   [0.02]\n"
               "  --retrain-epochs N   shuffled epochs of each training                    [5]\n"
               "  --warmup X           never-retrained: trained once on this share          [0.2]\n"
               "  --bootstrap N        paired bootstrap resamples                         [1000]\n"
               "  --eval-seed S        scored events, sampled items, bootstrap              [1]\n"
               "  --json               last line of stdout: the figures as one JSON object\n"
               "  --plot DIR           DIR/NAME-recall20.tsv per period and arm, and a PNG\n"
               "                       drawn by gnuplot when it is installed\n"
               "  --name NAME          the run's name in the table and the plot [file name]\n"
               "  --quiet              no progress on stderr\n");
    lcfg_usage(f);
}

/* --arms: a comma list of arm_keys into c->arms; 0, or -1 after a message */
static int parse_arms(const char *s, unsigned *out)
{
    *out = 0;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < ARM_COUNT && strcmp(tok, arm_keys[k]))
            k++;
        if (k == ARM_COUNT) {
            fprintf(stderr,
                    "freshrec eval: --arms '%s': expected a comma list of online, popularity, "
                    "knn, retrain, never\n",
                    s);
            return -1;
        }
        *out |= 1u << k;
    }
    if (!*out)
        fprintf(stderr, "freshrec eval: --arms '%s': no arm\n", s);
    return *out ? 0 : -1;
}

/* Parses argv into o: 0, 1 after --help, 2 for a usage error (said). */
static int parse(int argc, char **argv, eval_opts_t *o)
{
    eval_config_t *c = &o->c;
    const opt_t mine[] = {
        {"data", ARG_STR, &o->data, 0, 0, 0},
        {"gen", ARG_FLAG, &o->gen, 0, 0, 0},
        {"users", ARG_U32, &o->g.users, 1, 100000000, 0},
        {"items", ARG_U32, &o->g.items, 1, 100000000, 0},
        {"events", ARG_U64, &o->g.events, 1, 2000000000L, 0},
        {"gen-seed", ARG_U64, &o->g.seed, 0, 0x7fffffffL, 0},
        {"topics", ARG_U32, &o->g.topics, 1, 100000, 0},
        {"zipf", ARG_DOUBLE, &o->g.zipf, 0, 5, 0},
        {"focus", ARG_DOUBLE, &o->g.focus, 0, 1, 0},
        {"gen-shift", ARG_FLAG, &o->shift, 0, 0, 0},
        {"gen-births", ARG_DOUBLE, &o->births, 0, 1, 0},
        {"arms", ARG_STR, &o->arms, 0, 0, 0},
        {"publish-ms", ARG_U64, &c->publish_ms, 1, 1000000000000000L, 0},
        {"eval-rate", ARG_DOUBLE, &o->rate, 1e-6, 1, 0},
        {"pop-window", ARG_SIZE, &c->pop_window, 1, 1000000000L, 0},
        {"knn-recent", ARG_INT, &c->knn_recent, 1, 10000, 0},
        {"retrain-hours", ARG_DOUBLE, &c->retrain_hours, 0.001, 1e6, 0},
        {"retrain-growth", ARG_DOUBLE, &c->retrain_growth, 0, 100, 0},
        {"retrain-epochs", ARG_INT, &c->retrain_epochs, 1, 1000, 0},
        {"warmup", ARG_DOUBLE, &c->warmup, 0, 1, 0},
        {"bootstrap", ARG_INT, &c->resamples, 0, 1000000, 0},
        {"eval-seed", ARG_U64, &c->seed, 0, 0x7fffffffL, 0},
        {"json", ARG_FLAG, &o->json, 0, 0, 0},
        {"plot", ARG_STR, &o->plot, 0, 0, 0},
        {"name", ARG_STR, &o->name, 0, 0, 0},
        {"quiet", ARG_FLAG, &o->quiet, 0, 0, 0},
    };
    opt_t t[OPTS_MAX];
    int n = NOPTS(mine), k;
    memcpy(t, mine, sizeof(mine));
    if (lcfg_opts(t, &n, OPTS_MAX, &c->lcfg, &o->model, &o->threads))
        return 2;
    optind = 1;
    while ((k = opts_next(argc, argv, t, n)) != -1) {
        if (k == 'h')
            return 1;
        if (k == -2)
            return 2;
        int other = lcfg_other(&c->lcfg, k, optarg, "freshrec eval");
        if (other == 1)
            usage(stderr);
        if (other)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "freshrec eval: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!o->data == !o->gen) {
        fprintf(stderr, "freshrec eval: give one of --data PATH and --gen\n");
        return 2;
    }
    if (!o->gen && (o->shift || o->births > 0)) {
        fprintf(stderr, "freshrec eval: --gen-shift and --gen-births are for --gen\n");
        return 2;
    }
    if (o->arms && parse_arms(o->arms, &c->arms))
        return 2;
    if (lcfg_finish(&c->lcfg, o->model, o->threads, "freshrec eval"))
        return 2;
    if (o->rate < 0)
        o->rate = strcmp(c->lcfg.kind, "dssm") == 0 ? DSSM_EVAL_RATE : 1.0;
    c->eval_rate = o->rate;
    c->progress = !o->quiet;
    return 0;
}

/* The id of generated item j (an integer id) as the drift makes it at event
 * k of n: shifted to the next topic, or reborn. */
static size_t drifted_item(const eval_opts_t *o, const lrn_id_t *id, size_t k, size_t n, char *buf)
{
    char tmp[32];
    size_t len = id->len < sizeof(tmp) - 1 ? id->len : sizeof(tmp) - 1;
    memcpy(tmp, id->id, len);
    tmp[len] = '\0';
    long j = strtol(tmp, NULL, 10);
    if (k < n / 2 || j < 1) {
        memcpy(buf, id->id, len);
        return len;
    }
    if (o->shift) /* the generator's item j sits in topic (j - 1) mod topics */
        j = j % (long)o->g.items + 1;
    uint64_t h = (uint64_t)j;
    if (o->births > 0 && (double)(rng_splitmix(&h) >> 11) * 0x1.0p-53 < o->births) {
        buf[0] = 'b';
        return 1 + id_from_int(j, buf + 1);
    }
    return id_from_int(j, buf);
}

/* The generated stream, with the drift asked for, into d: 0 or -1 (said). */
static int generate(const eval_opts_t *o, dataset_t *d)
{
    char err[256];
    dataset_t g;
    dataset_init(&g);
    if (dataset_generate(&g, &o->g, err, sizeof(err))) {
        fprintf(stderr, "freshrec eval: %s\n", err);
        dataset_free(&g);
        return -1;
    }
    int rc = 0;
    for (size_t k = 0; k < g.n && rc == 0; k++) {
        const ds_event_t *e = &g.ev[k];
        char ib[40];
        size_t il = drifted_item(o, &g.items[e->item], k, g.n, ib);
        rc = dataset_add(d, g.users[e->user].id, g.users[e->user].len, ib, il, e->ts_ms);
    }
    if (rc)
        fprintf(stderr, "freshrec eval: out of memory\n");
    dataset_free(&g);
    return rc;
}

/* The stream into d, sorted by time: 0, 1 (out of memory) or 2 (a bad file). */
static int load(const eval_opts_t *o, dataset_t *d)
{
    char err[512];
    if (o->gen) {
        if (generate(o, d))
            return 1;
        dataset_sort_by_time(d);
        return 0;
    }
    struct stat st;
    errno = 0;
    if (stat(o->data, &st) || !S_ISREG(st.st_mode) || access(o->data, R_OK)) {
        fprintf(stderr, "freshrec eval: --data %s: %s\n", o->data,
                errno ? strerror(errno) : "not a regular file");
        return 2;
    }
    if (dataset_load(d, o->data, err, sizeof(err))) {
        fprintf(stderr, "freshrec eval: %s\n", err);
        return 2;
    }
    if (d->n == 0) {
        fprintf(stderr, "freshrec eval: %s: no interactions\n", o->data);
        return 2;
    }
    dataset_sort_by_time(d);
    return 0;
}

/* ------------------------------------------------------------ report */

static double mean(const eval_sums_t *s, double sum)
{
    return s->n ? sum / (double)s->n : 0.0;
}

static void print_table(FILE *f, const eval_result_t *r)
{
    fprintf(f, "%-16s %9s %8s %10s %7s %18s %18s %8s %8s\n", "arm", "recall@20", "NDCG@20",
            "HR@10/100", "MRR", "new-item r@20 (n)", "new-user r@20 (n)", "scored", "seconds");
    for (int i = 0; i < r->narms; i++) {
        const eval_arm_result_t *a = &r->arm[i];
        fprintf(f, "%-16s %9.4f %8.4f %10.4f %7.4f %9.4f (%6llu) %9.4f (%6llu) %8llu %8.1f\n",
                a->name, mean(&a->all, a->all.recall20), mean(&a->all, a->all.ndcg20),
                mean(&a->all, a->all.hr10), mean(&a->all, a->all.mrr),
                mean(&a->new_item, a->new_item.recall20), (unsigned long long)a->new_item.n,
                mean(&a->new_user, a->new_user.recall20), (unsigned long long)a->new_user.n,
                (unsigned long long)a->all.n, a->seconds);
    }
}

static void print_periods(FILE *f, const eval_result_t *r)
{
    fprintf(f, "recall@20 per %s of stream time (start: days after the first event):\n%-7s %8s",
            eval_period_name(r->bucket_ms), "start", "scored");
    for (int i = 0; i < r->narms; i++)
        fprintf(f, " %15s", r->arm[i].name);
    fputc('\n', f);
    for (size_t b = 0; b < r->nbucket; b++) {
        uint64_t n = r->arm[0].bucket[b].n;
        if (!n)
            continue;
        fprintf(f, "%-7.2f %8llu", (double)b * (double)r->bucket_ms / DAY_MS,
                (unsigned long long)n);
        for (int i = 0; i < r->narms; i++)
            fprintf(f, " %15.4f", r->arm[i].bucket[b].recall20 / (double)n);
        fputc('\n', f);
    }
}

typedef struct {
    const char *a, *b;
    double mean, lo, hi;
    int ok;
} paired_t;

/* online minus arm `other` on recall@20, paired over the scored events */
static paired_t paired(const eval_result_t *r, const eval_config_t *c, int other)
{
    paired_t p = {0};
    int ia = r->index[ARM_ONLINE], ib = r->index[other];
    float *diff = ia >= 0 && ib >= 0 ? malloc(sizeof(float) * (r->scored ? r->scored : 1)) : NULL;
    if (!diff)
        return p;
    for (size_t k = 0; k < r->scored; k++)
        diff[k] = r->arm[ia].hit20[k] - r->arm[ib].hit20[k];
    eval_bootstrap(diff, r->scored, c->resamples, c->seed, &p.mean, &p.lo, &p.hi);
    free(diff);
    p.a = r->arm[ia].name, p.b = r->arm[ib].name, p.ok = 1;
    return p;
}

#define CURVE_MAX 10 /* clicks of a new item, the last bucket: this many or more */

/* the W of eval_recovery: 2% of the scored events, 200 to 2000 */
static size_t recovery_window(const eval_result_t *r)
{
    size_t W = r->scored / 50;
    return W < 200 ? 200 : W > 2000 ? 2000 : W;
}

/* With planted drift at event drift_at: the events each arm took to regain
 * 90% of its HR@10 from before (a shift), and recall@20 of the items first
 * seen after it by their clicks so far against the other items' (births). */
static void print_drift(FILE *f, const eval_result_t *r, const eval_config_t *c)
{
    if (!c->drift_at)
        return;
    size_t W = recovery_window(r);
    fprintf(f,
            "planted drift at event %zu: events until a window of %zu scored events has 90%% "
            "of the HR@10/100 of the %zu before it\n",
            c->drift_at, W, W);
    for (int i = 0; i < r->narms; i++) {
        double level;
        long ev = eval_recovery(r, i, c->drift_at, W, 0.9, &level);
        if (ev >= 0)
            fprintf(f, "  %-16s %8ld events (level %.4f)\n", r->arm[i].name, ev, level);
        else
            fprintf(f, "  %-16s not regained (level %.4f)\n", r->arm[i].name, level);
    }
    long back = c->drift_shift ? eval_users_back(r, c->drift_at, W, 0.9) : -1;
    if (back >= 0) /* the reference for arms that learn a user's new taste from that user */
        fprintf(f,
                "  %-16s %8ld events until 90%% of a window's events are by users seen since the "
                "shift\n",
                "users back", back);
    fprintf(f,
            "recall@20 after event %zu of items first seen there or later, by their events "
            "before (n: the online arm's count), and of the other items:\n%-8s",
            c->drift_at, "clicks");
    for (int i = 0; i < r->narms; i++)
        fprintf(f, " %15s", r->arm[i].name);
    fprintf(f, " %8s\n", "n");
    double rec[ARM_COUNT][CURVE_MAX + 1], est[ARM_COUNT];
    size_t n[CURVE_MAX + 1], nest = 0;
    for (int i = 0; i < r->narms; i++)
        eval_newitem_curve(r, i, c->drift_at, CURVE_MAX, rec[i], n, &est[i], &nest);
    for (int k = 0; k <= CURVE_MAX; k++) {
        if (!n[k])
            continue;
        char lab[16];
        snprintf(lab, sizeof(lab), k == CURVE_MAX ? "%d+" : "%d", k);
        fprintf(f, "%-8s", lab);
        for (int i = 0; i < r->narms; i++)
            fprintf(f, " %15.4f", rec[i][k]);
        fprintf(f, " %8zu\n", n[k]);
    }
    fprintf(f, "%-8s", "others");
    for (int i = 0; i < r->narms; i++)
        fprintf(f, " %15.4f", est[i]);
    fprintf(f, " %8zu\n", nest);
}

/* the same as JSON: {"at", "window", "recovery": {arm: events or null},
 * "users_back_events": events, or null but for a shift,
 * "newitem": {arm: [recall@20 by clicks 0..10+]}, "established": {arm: r}} */
static json_t *drift_json(const eval_result_t *r, const eval_config_t *c)
{
    if (!c->drift_at)
        return json_null();
    size_t W = recovery_window(r);
    json_t *rec = json_object(), *curve = json_object(), *est = json_object(), *cnt = json_array();
    for (int i = 0; i < r->narms; i++) {
        double level, v[CURVE_MAX + 1], e;
        size_t n[CURVE_MAX + 1], ne;
        long ev = eval_recovery(r, i, c->drift_at, W, 0.9, &level);
        json_object_set_new(rec, r->arm[i].name, ev >= 0 ? json_integer(ev) : json_null());
        eval_newitem_curve(r, i, c->drift_at, CURVE_MAX, v, n, &e, &ne);
        json_t *a = json_array();
        for (int k = 0; k <= CURVE_MAX; k++) {
            json_array_append_new(a, n[k] ? json_real(v[k]) : json_null());
            if (i == 0)
                json_array_append_new(cnt, json_integer((json_int_t)n[k]));
        }
        json_object_set_new(curve, r->arm[i].name, a);
        json_object_set_new(est, r->arm[i].name, json_real(e));
    }
    long back = c->drift_shift ? eval_users_back(r, c->drift_at, W, 0.9) : -1;
    return json_pack("{s:I, s:I, s:o, s:o, s:o, s:o, s:o}", "at", (json_int_t)c->drift_at, "window",
                     (json_int_t)W, "recovery_events", rec, "users_back_events",
                     back >= 0 ? json_integer(back) : json_null(), "newitem_recall20_by_clicks",
                     curve, "newitem_events_by_clicks", cnt, "established_recall20", est);
}

static void print_report(FILE *f, const char *name, const eval_result_t *r, const eval_config_t *c,
                         const paired_t *pp, int np)
{
    fprintf(f,
            "== %s: %zu events, %zu users, %zu items, %.1f days; publish every %lld ms of "
            "stream time; %zu scored (eval rate %g), %zu not rankable (item never seen before); "
            "%.1f s\n",
            name, r->events, r->users, r->items, (double)(r->t1_ms - r->t0_ms) / DAY_MS,
            (long long)c->publish_ms, r->scored, c->eval_rate, r->unrankable, r->seconds);
    print_table(f, r);
    fprintf(f, "paired bootstrap over the %zu scored events, recall@20, %d resamples:\n", r->scored,
            c->resamples);
    for (int i = 0; i < np; i++)
        if (pp[i].ok)
            fprintf(f, "  %s - %s: %+.4f  95%% interval [%+.4f, %+.4f]\n", pp[i].a, pp[i].b,
                    pp[i].mean, pp[i].lo, pp[i].hi);
    for (int i = 0; i < r->narms; i++)
        fprintf(f, "  %s: %s\n", r->arm[i].name, r->arm[i].note);
    print_drift(f, r, c);
    print_periods(f, r);
}

static json_t *sums_json(const eval_sums_t *s)
{
    return json_pack("{s:f, s:f, s:f, s:f, s:I}", "recall20", mean(s, s->recall20), "ndcg20",
                     mean(s, s->ndcg20), "hr10_100", mean(s, s->hr10), "mrr", mean(s, s->mrr), "n",
                     (json_int_t)s->n);
}

static json_t *arm_json(const eval_result_t *r, const eval_arm_result_t *a)
{
    json_t *per = json_array();
    for (size_t b = 0; b < r->nbucket; b++)
        if (a->bucket[b].n)
            json_array_append_new(
                per, json_pack("{s:f, s:f, s:I}", "day", (double)b * (double)r->bucket_ms / DAY_MS,
                               "recall20", mean(&a->bucket[b], a->bucket[b].recall20), "n",
                               (json_int_t)a->bucket[b].n));
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:f}", "name", a->name, "note", a->note, "all",
                     sums_json(&a->all), "new_item", sums_json(&a->new_item), "new_user",
                     sums_json(&a->new_user), "periods", per, "seconds", a->seconds);
}

static void print_json(const char *name, const eval_result_t *r, const eval_config_t *c,
                       const paired_t *pp, int np)
{
    json_t *arms = json_array(), *boot = json_array();
    for (int i = 0; i < r->narms; i++)
        json_array_append_new(arms, arm_json(r, &r->arm[i]));
    for (int i = 0; i < np; i++)
        if (pp[i].ok)
            json_array_append_new(boot, json_pack("{s:s, s:s, s:s, s:f, s:f, s:f}", "a", pp[i].a,
                                                  "b", pp[i].b, "metric", "recall20", "mean",
                                                  pp[i].mean, "lo95", pp[i].lo, "hi95", pp[i].hi));
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:f, s:f, s:o, s:o, s:o}",
                          "name", name, "model", c->lcfg.kind, "events", (json_int_t)r->events,
                          "users", (json_int_t)r->users, "items", (json_int_t)r->items, "scored",
                          (json_int_t)r->scored, "unrankable", (json_int_t)r->unrankable,
                          "eval_rate", c->eval_rate, "publish_ms", (json_int_t)c->publish_ms,
                          "period_days", (double)r->bucket_ms / DAY_MS, "seconds", r->seconds,
                          "arms", arms, "bootstrap", boot, "drift", drift_json(r, c));
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(8)) : NULL;
    if (s)
        printf("%s\n", s);
    else
        fprintf(stderr, "freshrec eval: could not build the JSON result\n");
    free(s);
    json_decref(j);
}

/* 1 when an executable gnuplot is on PATH */
static int have_gnuplot(void)
{
    const char *path = getenv("PATH");
    char dir[4096], exe[4200];
    for (const char *p = path; p && *p;) {
        size_t n = strcspn(p, ":");
        snprintf(dir, sizeof(dir), "%.*s", (int)n, p);
        snprintf(exe, sizeof(exe), "%s/gnuplot", n ? dir : ".");
        if (access(exe, X_OK) == 0)
            return 1;
        p += n + (p[n] == ':');
    }
    return 0;
}

static int write_tsv(const char *path, const eval_result_t *r)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "day");
    for (int i = 0; i < r->narms; i++)
        fprintf(f, "\t%s", r->arm[i].name);
    fputc('\n', f);
    for (size_t b = 0; b < r->nbucket; b++) {
        uint64_t n = r->arm[0].bucket[b].n;
        if (!n)
            continue;
        fprintf(f, "%.3f", (double)b * (double)r->bucket_ms / DAY_MS);
        for (int i = 0; i < r->narms; i++)
            fprintf(f, "\t%.5f", r->arm[i].bucket[b].recall20 / (double)n);
        fputc('\n', f);
    }
    return fclose(f);
}

/* DIR/NAME-recall20.tsv, and its PNG when gnuplot is there: 0 or -1 (said) */
static int plot(const char *dir, const char *name, const eval_result_t *r)
{
    char tsv[4096], png[4096];
    snprintf(tsv, sizeof(tsv), "%s/%s-recall20.tsv", dir, name);
    snprintf(png, sizeof(png), "%s/%s-recall20.png", dir, name);
    if (mkdir(dir, 0777) && errno != EEXIST) {
        fprintf(stderr, "freshrec eval: --plot %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (write_tsv(tsv, r)) {
        fprintf(stderr, "freshrec eval: %s: %s\n", tsv, strerror(errno));
        return -1;
    }
    if (!have_gnuplot() || strchr(tsv, '\'') || strchr(name, '\'')) {
        fprintf(stderr, "freshrec eval: wrote %s (no PNG: gnuplot is not installed)\n", tsv);
        return 0;
    }
    FILE *g = popen("gnuplot", "w");
    if (!g)
        return -1;
    fprintf(g,
            "set terminal pngcairo noenhanced size 1000,520\nset output '%s'\n"
            "set datafile separator tab\nset key autotitle columnhead outside right\n"
            "set title 'freshrec eval %s: recall@20 per %s (prequential, full catalogue)'\n"
            "set xlabel 'days of stream time'\nset ylabel 'recall@20'\nset grid\n"
            "plot for [c=2:%d] '%s' using 1:c with linespoints pointsize 0.5\n",
            png, name, eval_period_name(r->bucket_ms), r->narms + 1, tsv);
    int rc = pclose(g);
    fprintf(stderr,
            rc ? "freshrec eval: wrote %s; gnuplot failed on %s\n"
               : "freshrec eval: wrote %s and %s\n",
            tsv, png);
    return rc ? -1 : 0;
}

static const char *run_name(const eval_opts_t *o)
{
    if (o->name)
        return o->name;
    if (o->gen)
        return "generated";
    const char *s = strrchr(o->data, '/');
    return s ? s + 1 : o->data;
}

int eval_main(int argc, char **argv)
{
    eval_opts_t o = {.rate = -1, .threads = 1, .model = model_default(0)->name};
    eval_config_default(&o.c);
    gen_config_default(&o.g);
    int rc = parse(argc, argv, &o);
    if (rc) {
        if (rc == 1)
            usage(stdout);
        return rc == 1 ? 0 : 2;
    }
    dataset_t d;
    dataset_init(&d);
    if ((rc = load(&o, &d))) {
        dataset_free(&d);
        return rc;
    }
    /* planted drift: --gen's at the middle, or a generated file's plan */
    if (o.gen && (o.shift || o.births > 0))
        o.c.drift_at = d.n / 2, o.c.drift_shift = o.shift;
    else if (d.plan && d.plan->shift_perm)
        o.c.drift_at = (size_t)d.plan->shift_event, o.c.drift_shift = 1;
    else if (d.plan && d.plan->nnew)
        o.c.drift_at = (size_t)d.plan->new_items[0].birth_event;
    eval_result_t r;
    char err[256];
    if (eval_run(&d, &o.c, &r, err, sizeof(err))) {
        fprintf(stderr, "freshrec eval: %s\n", err);
        eval_result_free(&r);
        dataset_free(&d);
        return 1;
    }
    paired_t pp[3] = {paired(&r, &o.c, ARM_RETRAIN), paired(&r, &o.c, ARM_POP),
                      paired(&r, &o.c, ARM_KNN)};
    if (!o.quiet || !o.json)
        print_report(o.json ? stderr : stdout, run_name(&o), &r, &o.c, pp, 3);
    if (o.json)
        print_json(run_name(&o), &r, &o.c, pp, 3);
    rc = o.plot && plot(o.plot, run_name(&o), &r) ? 1 : 0;
    eval_result_free(&r);
    dataset_free(&d);
    return rc;
}
