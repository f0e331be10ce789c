/* freshrec.c — the command-line tool: `train` replays an interaction file as
 * a chronological stream through the learner and evaluates it; `eval` scores
 * a stream prequentially against its arms (eval.c); `gen` writes the
 * synthetic stream. The daemon is freshrecd; this tool never talks to
 * Kafka or Redis. */
#define _POSIX_C_SOURCE 200809L
#include "clock.h"
#include "cli.h"
#include "ctr.h"
#include "dataset.h"
#include "mlfeat.h"
#include "id.h"
#include "kern.h"
#include "learner.h"
#include "members.h"
#include "rank.h"
#include "rng.h"
#include "widths.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "freshrec: %s '%s': expected an integer in [%ld, %ld]\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo && v <= hi)) {
        fprintf(stderr, "freshrec: %s '%s': expected a number in [%g, %g]\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* One option of a subcommand: its name, what it takes and where its value
 * goes, with the bounds a number must keep. One loop (opts_next) parses them
 * all; an option the table cannot store (a list of widths, a keyword) is
 * ARG_OTHER: opts_next returns its key, its value in optarg, to the
 * caller's switch. */
typedef enum {
    ARG_INT,    /* int, an integer in [lo, hi] */
    ARG_U32,    /* uint32_t, likewise */
    ARG_U64,    /* uint64_t, likewise */
    ARG_SIZE,   /* size_t, likewise */
    ARG_LONG,   /* long, likewise */
    ARG_FLOAT,  /* float, a number in [lo, hi] */
    ARG_DOUBLE, /* double, likewise */
    ARG_STR,    /* const char *, the argument itself */
    ARG_FLAG,   /* int, set to 1; takes no argument */
    ARG_OTHER,  /* the caller's: opts_next returns key */
} arg_kind_t;

typedef struct {
    const char *name; /* without the leading "--" */
    arg_kind_t kind;
    void *target; /* NULL for ARG_OTHER */
    double lo, hi;
    int key; /* ARG_OTHER: what opts_next returns (not -1, -2, 'h' or '?') */
} opt_t;

#define OPTS_MAX 48      /* options of one subcommand, --help included */
#define OPTS_INDEX 0x100 /* getopt_long's value of the table's option i: OPTS_INDEX + i */

/* Stores option o's argument in its target: 0, or -1 after a message. */
static int opt_store(const opt_t *o, const char *arg)
{
    char name[64];
    snprintf(name, sizeof(name), "--%s", o->name);
    long v = 0;
    double x = 0;
    switch (o->kind) {
    case ARG_INT:
    case ARG_U32:
    case ARG_U64:
    case ARG_SIZE:
    case ARG_LONG:
        if (parse_long(name, arg, (long)o->lo, (long)o->hi, &v))
            return -1;
        break;
    case ARG_FLOAT:
    case ARG_DOUBLE:
        if (parse_double(name, arg, o->lo, o->hi, &x))
            return -1;
        break;
    default:
        break;
    }
    switch (o->kind) {
    case ARG_INT:
        *(int *)o->target = (int)v;
        break;
    case ARG_U32:
        *(uint32_t *)o->target = (uint32_t)v;
        break;
    case ARG_U64:
        *(uint64_t *)o->target = (uint64_t)v;
        break;
    case ARG_SIZE:
        *(size_t *)o->target = (size_t)v;
        break;
    case ARG_LONG:
        *(long *)o->target = v;
        break;
    case ARG_FLOAT:
        *(float *)o->target = (float)x;
        break;
    case ARG_DOUBLE:
        *(double *)o->target = x;
        break;
    case ARG_STR:
        *(const char **)o->target = arg;
        break;
    case ARG_FLAG:
        *(int *)o->target = 1;
        break;
    case ARG_OTHER:
        break;
    }
    return 0;
}

/* The next option of argv (set optind = 1 before the first call): a table
 * option is stored and the next one read. Returns -1 at the end of the
 * options, 'h' for --help, '?' for an unknown option or a missing argument
 * (getopt_long has said which), -2 for a value out of its bounds (said), or
 * an ARG_OTHER option's key with its argument in optarg. */
static int opts_next(int argc, char **argv, const opt_t *t, int n)
{
    struct option lo[OPTS_MAX + 2];
    int k = 0;
    for (int i = 0; i < n && k < OPTS_MAX; i++)
        lo[k++] = (struct option){t[i].name, t[i].kind != ARG_FLAG, NULL, OPTS_INDEX + i};
    lo[k++] = (struct option){"help", 0, NULL, 'h'};
    lo[k] = (struct option){0, 0, 0, 0};
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (c < OPTS_INDEX || c >= OPTS_INDEX + n)
            return c;
        const opt_t *o = &t[c - OPTS_INDEX];
        if (o->kind == ARG_OTHER)
            return o->key;
        if (opt_store(o, optarg))
            return -2;
    }
    return -1;
}

#define NOPTS(t) ((int)(sizeof(t) / sizeof((t)[0])))

/* ------------------------------------------------------------------ gen */

static void gen_usage(FILE *f)
{
    fprintf(f, "usage: freshrec gen [--users U] [--items I] [--events E] [--seed S]\n"
               "                    [--topics K] [--zipf A] [--focus F] [--out PATH]\n"
               "                    [--shift-at X] [--new-items N] [--new-share P]\n"
               "Writes a synthetic stream (user item 1 ts, tab separated, time ordered):\n"
               "users with planted topic preferences, items with Zipf popularity.\n"
               "Defaults: 1000 users, 2000 items, 100000 events, seed 1, 24 topics,\n"
               "zipf 0.6, focus 0.8 (share of a user's events in their main topic).\n"
               "Planted change (off by default; what was planted is written as\n"
               "'# plant' lines before the events, data/dataset.h):\n"
               "  --shift-at X     from event X (an index ≥ 1) or the share X in (0, 1) of\n"
               "                   the events on, every user's main topic moves to another\n"
               "  --new-items N    N items (ids I+1..I+N) born evenly from the middle to 90%%\n"
               "                   of the stream, the j-th popular in topic j mod K after it\n"
               "  --new-share P    share of its topic's draws a live new item takes  [0.1]\n");
}

static int cmd_gen(int argc, char **argv)
{
    gen_config_t cfg;
    gen_config_default(&cfg);
    const char *out = NULL;
    const opt_t opts[] = {
        {"users", ARG_U32, &cfg.users, 1, 100000000, 0},
        {"items", ARG_U32, &cfg.items, 1, 100000000, 0},
        {"events", ARG_U64, &cfg.events, 1, 2000000000L, 0},
        {"seed", ARG_U64, &cfg.seed, 0, 0x7fffffffL, 0},
        {"topics", ARG_U32, &cfg.topics, 1, 100000, 0},
        {"zipf", ARG_DOUBLE, &cfg.zipf, 0, 5, 0},
        {"focus", ARG_DOUBLE, &cfg.focus, 0, 1, 0},
        {"shift-at", ARG_DOUBLE, &cfg.shift_at, 0, 2000000000.0, 0},
        {"new-items", ARG_U32, &cfg.new_items, 0, 100000000, 0},
        {"new-share", ARG_DOUBLE, &cfg.new_share, 0, 1, 0},
        {"out", ARG_STR, &out, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = opts_next(argc, argv, opts, NOPTS(opts))) != -1) {
        switch (c) {
        case -2:
            return 2;
        case 'h':
            gen_usage(stdout);
            return 0;
        default:
            gen_usage(stderr);
            return 2;
        }
    }
    char err[256];
    dataset_t d;
    dataset_init(&d);
    if (dataset_generate(&d, &cfg, err, sizeof(err))) {
        fprintf(stderr, "freshrec gen: %s\n", err);
        dataset_free(&d);
        return 1;
    }
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) {
        fprintf(stderr, "freshrec gen: %s: %s\n", out, strerror(errno));
        dataset_free(&d);
        return 1;
    }
    fprintf(f,
            "# freshrec gen --users %u --items %u --events %llu --seed %llu --topics %u "
            "--zipf %g --focus %g",
            cfg.users, cfg.items, (unsigned long long)cfg.events, (unsigned long long)cfg.seed,
            cfg.topics, cfg.zipf, cfg.focus);
    if (cfg.shift_at > 0) /* a share or an index, in full */
        fprintf(f, " --shift-at %.15g", cfg.shift_at);
    if (cfg.new_items)
        fprintf(f, " --new-items %u --new-share %g", cfg.new_items, cfg.new_share);
    fputc('\n', f);
    int rc = dataset_write(&d, f);
    if (out && fclose(f))
        rc = -1;
    if (rc)
        fprintf(stderr, "freshrec gen: write failed: %s\n", strerror(errno));
    dataset_free(&d);
    return rc ? 1 : 0;
}

/* ---------------------------------------------------------------- train */

/* The mean HR@10 and NDCG@10 of the rankings made between two snapshots of
 * the learner's counters (which keep only cumulative means). */
typedef struct {
    uint64_t n;
    double hr, ndcg;
} pass_preq_t;

static void pass_preq(const learner_stats_t *before, const learner_stats_t *after, pass_preq_t *out)
{
    out->n = after->preq_n - before->preq_n;
    out->hr = out->ndcg = 0.0;
    if (out->n == 0)
        return;
    out->hr =
        (after->preq_hr10 * (double)after->preq_n - before->preq_hr10 * (double)before->preq_n) /
        (double)out->n;
    out->ndcg = (after->preq_ndcg10 * (double)after->preq_n -
                 before->preq_ndcg10 * (double)before->preq_n) /
                (double)out->n;
}

static void train_usage(FILE *f)
{
    char names[256];
    model_names(names, sizeof(names));
    fprintf(f,
            "usage: freshrec train --data PATH [options]\n"
            "Replays PATH as a chronological stream through the learner, then evaluates.\n"
            "  --format F        movielens | synthetic (a `freshrec gen` file)   [movielens]\n"
            "  --model M         %s [neumf]\n"
            "                    (the click-through ones take --format criteo)\n"
            "  --tower L         dssm: tower widths, output last                [128,64]\n"
            "  --gamma G         dssm: logit = G x cosine                       [10]\n"
            "  --features        dssm on movielens: user and item features from u.user\n"
            "                    and u.item beside --data, or ML-1M's users.dat and\n"
            "                    movies.dat (gender, occupation, age, zip region;\n"
            "                    genres, year)\n"
            "  --dim N           GMF factors                                    [32]\n"
            "  --mlp L           MLP widths, input first                        [64,32,16,8]\n"
            "  --history N       hmf: a user's last items whose rows join theirs [8]\n"
            "  --history-decay X hmf: the j-th newest of them weighs X^j        [0.75]\n"
            "  --user-weight X   hmf: the weight of the user's own row          [0.5]\n"
            "  --transition-lr X hmf: learning rate of the transition map shared\n"
            "                    by all users (0: no map)                       [0]\n"
            "  --negatives K     sampled negatives per positive                 [4]\n"
            "  --sampler S       uniform | popularity | inbatch | hard          [uniform]\n"
            "  --alpha A         popularity exponent                            [0.75]\n"
            "  --pool C          hard: candidates scored per event              [12]\n"
            "  --loss L          bce | bpr | softmax                            [bce]\n"
            "  --batch N         events per micro-batch                         [256]\n"
            "  --replay X        events learned again from the rolling buffer\n"
            "                    per event learned (experience replay)          [0]\n"
            "  --optimizer O     rows: adagrad | adam | sgd                     [adagrad]\n"
            "  --lr-sparse X     row learning rate                              [0.03]\n"
            "  --lr-dense X      Adam learning rate of the dense block          [0.005]\n"
            "  --l2-sparse X     L2 on rows                                     [0]\n"
            "  --l2-dense X      L2 on the dense block                          [0.00003]\n"
            "  --init-std X      new rows: N(0, X)                              [0.01]\n"
            "  --ring N          rolling-buffer events                          [100000]\n"
            "  --admit-after N   occurrences before an id gets its own row      [1]\n"
            "  --epochs N        passes over the stream                         [1]\n"
            "  --shuffle         passes after the first in a new random order each\n"
            "                    (from --seed); the first stays in time order, so\n"
            "                    preq_hr10 stays prequential                    [on]\n"
            "  --no-shuffle      every pass in time order\n"
            "  --eval E          loo (hold out each user's latest) | none       [loo]\n"
            "  --preq-rate X     share of events ranked before being learned    [0.01]\n"
            "                    (preq_hr10: the first pass's; later passes rank\n"
            "                    events already learned: train_hr10_last_epoch)\n"
            "  --threads T       learner threads (a micro-batch split among them) [1]\n"
            "  --members N       N learners sharing one model through a model log\n"
            "                    in memory, users split among them by id hash (as\n"
            "                    N freshrecd members would); figures are member\n"
            "                    0's, which holds every user by the end\n"
            "                    (default: one learner, no model log)\n"
            "  --window N        --members: events per round, each member writing\n"
            "                    one window of its share of them             [1024]\n"
            "  --naive           plain-loop kernels instead of OpenBLAS (reference)\n"
            "  --seed S          random seed                                    [1]\n"
            "  --json            last line of stdout: the figures as one JSON object\n"
            "  --quiet           no progress on stderr\n",
            names);
}

/* --shuffle: the events of a pass in a new uniformly random order
 * (Fisher-Yates; the modulo's bias is below 2^-32 for any file that fits
 * in memory). */
static void shuffle_events(lrn_event_t *ev, size_t n, rng_t *r)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_next(r) % i);
        lrn_event_t t = ev[i - 1];
        ev[i - 1] = ev[j];
        ev[j] = t;
    }
}

static int cmd_train(int argc, char **argv)
{
    learner_config_t cfg;
    learner_config_default(&cfg);
    const char *data = NULL, *format = "movielens", *model = model_default(0)->name, *eval = "loo";
    long epochs = 1, threads = 1, nmembers = 0, window = 1024, v;
    int json = 0, quiet = 0, features = 0, shuffle = 1, no_shuffle = 0;
    char err[256];
    enum { MLP = 1, TOWER, SAMPLER, LOSS, OPTIMIZER }; /* the switch's options */
    const opt_t opts[] = {
        {"data", ARG_STR, &data, 0, 0, 0},
        {"format", ARG_STR, &format, 0, 0, 0},
        {"model", ARG_STR, &model, 0, 0, 0},
        {"dim", ARG_INT, &cfg.model.dim, 1, 1024, 0},
        {"history", ARG_INT, &cfg.history, 1, 256, 0},
        {"history-decay", ARG_FLOAT, &cfg.history_decay, 0.001, 1, 0},
        {"user-weight", ARG_FLOAT, &cfg.user_weight, 0, 1, 0},
        {"transition-lr", ARG_FLOAT, &cfg.transition_lr, 0, 1, 0},
        {"mlp", ARG_OTHER, NULL, 0, 0, MLP},
        {"negatives", ARG_INT, &cfg.negatives, 1, 1024, 0},
        {"sampler", ARG_OTHER, NULL, 0, 0, SAMPLER},
        {"alpha", ARG_FLOAT, &cfg.sampler.alpha, 0, 2, 0},
        {"pool", ARG_INT, &cfg.sampler.pool, 1, 4096, 0},
        {"loss", ARG_OTHER, NULL, 0, 0, LOSS},
        {"batch", ARG_INT, &cfg.batch_events, 1, 65536, 0},
        {"replay", ARG_FLOAT, &cfg.replay, 0, 16, 0},
        {"optimizer", ARG_OTHER, NULL, 0, 0, OPTIMIZER},
        {"lr-sparse", ARG_FLOAT, &cfg.lr_sparse, 1e-9, 100, 0},
        {"lr-dense", ARG_FLOAT, &cfg.lr_dense, 1e-9, 100, 0},
        {"l2-sparse", ARG_FLOAT, &cfg.l2_sparse, 0, 100, 0},
        {"l2-dense", ARG_FLOAT, &cfg.l2_dense, 0, 100, 0},
        {"init-std", ARG_FLOAT, &cfg.init_std, 0, 10, 0},
        {"ring", ARG_SIZE, &cfg.ring_capacity, 1, 1000000000L, 0},
        {"admit-after", ARG_U32, &cfg.admit_after, 1, 1000000, 0},
        {"epochs", ARG_LONG, &epochs, 1, 10000, 0},
        {"shuffle", ARG_FLAG, &shuffle, 0, 0, 0},
        {"no-shuffle", ARG_FLAG, &no_shuffle, 0, 0, 0},
        {"eval", ARG_STR, &eval, 0, 0, 0},
        {"preq-rate", ARG_DOUBLE, &cfg.preq_rate, 0, 1, 0},
        {"threads", ARG_LONG, &threads, 1, LEARNER_MAX_THREADS, 0},
        {"members", ARG_LONG, &nmembers, 1, 64, 0}, /* 0, the default: no model log */
        {"window", ARG_LONG, &window, 1, 100000000L, 0},
        {"naive", ARG_FLAG, &cfg.model.naive, 0, 0, 0},
        {"seed", ARG_U64, &cfg.seed, 0, 0x7fffffffL, 0},
        {"json", ARG_FLAG, &json, 0, 0, 0},
        {"quiet", ARG_FLAG, &quiet, 0, 0, 0},
        {"tower", ARG_OTHER, NULL, 0, 0, TOWER},
        {"gamma", ARG_FLOAT, &cfg.towers.gamma, 0.001, 1000, 0},
        {"features", ARG_FLAG, &features, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = opts_next(argc, argv, opts, NOPTS(opts))) != -1) {
        switch (c) {
        case -2:
            return 2;
        case TOWER:
            if (widths_parse(optarg, 1, DSSM_MAX_LAYERS, cfg.towers.tower, &cfg.towers.ntower, err,
                             sizeof(err))) {
                fprintf(stderr, "freshrec: --tower '%s': %s\n", optarg, err);
                return 2;
            }
            break;
        case MLP:
            if (widths_parse(optarg, 2, NEUMF_MAX_LAYERS, cfg.model.mlp, &cfg.model.nmlp, err,
                             sizeof(err))) {
                fprintf(stderr, "freshrec: --mlp '%s': %s\n", optarg, err);
                return 2;
            }
            break;
        case SAMPLER:
            if ((v = samp_kind_parse(optarg)) < 0) {
                fprintf(stderr,
                        "freshrec: --sampler '%s': expected uniform, popularity, "
                        "inbatch or hard\n",
                        optarg);
                return 2;
            }
            cfg.sampler.kind = (samp_kind_t)v;
            break;
        case LOSS:
            if ((v = loss_kind_parse(optarg)) < 0) {
                fprintf(stderr, "freshrec: --loss '%s': expected bce, bpr or softmax\n", optarg);
                return 2;
            }
            cfg.loss = (loss_kind_t)v;
            break;
        case OPTIMIZER:
            if ((v = sparse_opt_parse(optarg)) < 0) {
                fprintf(stderr, "freshrec: --optimizer '%s': expected adagrad, adam or sgd\n",
                        optarg);
                return 2;
            }
            cfg.sparse_opt = (sparse_opt_t)v;
            break;
        case 'h':
            train_usage(stdout);
            return 0;
        default:
            train_usage(stderr);
            return 2;
        }
    }
    if (!data) {
        fprintf(stderr, "freshrec train: --data PATH is required\n");
        train_usage(stderr);
        return 2;
    }
    if (strcmp(format, "movielens") && strcmp(format, "synthetic")) {
        fprintf(stderr, "freshrec train: --format '%s': expected movielens or synthetic\n", format);
        return 2;
    }
    const model_ops_t *mo = model_find(model);
    if (!mo) {
        char names[256];
        model_names(names, sizeof(names));
        fprintf(stderr, "freshrec train: --model '%s': expected one of %s\n", model, names);
        return 2;
    }
    snprintf(cfg.kind, sizeof(cfg.kind), "%s", mo->name);
    cfg.towers.dim = cfg.model.dim;
    if (features && (!(mo->flags & MODEL_FEATURES) || strcmp(format, "movielens"))) {
        fprintf(stderr, "freshrec train: --features is for --model dssm on --format movielens "
                        "(u.user and u.item, or users.dat and movies.dat, beside --data)\n");
        return 2;
    }
    if (features)
        cfg.ucat = MLF_UCAT, cfg.unum = MLF_UNUM, cfg.icat = MLF_ICAT, cfg.inum = MLF_INUM;
    if (strcmp(eval, "loo") && strcmp(eval, "none")) {
        fprintf(stderr, "freshrec train: --eval '%s': expected loo or none\n", eval);
        return 2;
    }
    cfg.threads = (int)threads;
    kern_set_threads(1); /* each learner thread calls BLAS on its own slice */

    dataset_t d;
    dataset_init(&d);
    if (dataset_load(&d, data, err, sizeof(err))) {
        fprintf(stderr, "freshrec train: %s\n", err);
        dataset_free(&d);
        return 1;
    }
    dataset_sort_by_time(&d);
    size_t *held = NULL, *train = NULL, ntrain = 0;
    if (dataset_loo(&d, &held, &train, &ntrain)) {
        fprintf(stderr, "freshrec train: out of memory\n");
        dataset_free(&d);
        return 1;
    }
    if (no_shuffle)
        shuffle = 0;
    int do_loo = strcmp(eval, "loo") == 0;
    if (!do_loo) { /* learn everything */
        ntrain = d.n;
        for (size_t i = 0; i < d.n; i++)
            train[i] = i;
    }
    lrn_event_t *ev = malloc(sizeof(lrn_event_t) * (ntrain ? ntrain : 1));
    members_t *group = nmembers > 0 ? members_create(&cfg, (int)nmembers, err, sizeof(err)) : NULL;
    learner_t *l = group          ? members_learner(group, 0)
                   : nmembers > 0 ? NULL
                                  : learner_create(&cfg, err, sizeof(err));
    mlfeat_t mf = {0};
    lrn_feat_t *evf = NULL; /* the features of each id's first event */
    int rc = 1;
    if (!ev || !l) {
        fprintf(stderr, "freshrec train: %s\n", l ? "out of memory" : err);
        goto out;
    }
    if (features) {
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s", data);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof(dir), ".");
        if (mlfeat_load(&mf, &d, dir, err, sizeof(err))) {
            fprintf(stderr, "freshrec train: --features: %s\n", err);
            goto out;
        }
        if (!quiet)
            fprintf(stderr, "freshrec train: features of %zu users and %zu items from %s (%s)\n",
                    mf.users_found, mf.items_found, dir, mf.format);
        const size_t F = MLF_UCAT + MLF_UNUM + MLF_ICAT + MLF_INUM;
        if (!(evf = malloc(sizeof(lrn_feat_t) * F * (d.nusers + d.nitems + 1)))) {
            fprintf(stderr, "freshrec train: out of memory\n");
            goto out;
        }
    }
    unsigned char *useen = features ? calloc(d.nusers + 1, 1) : NULL;
    unsigned char *iseen = features ? calloc(d.nitems + 1, 1) : NULL;
    size_t nevf = 0;
    for (size_t t = 0; t < ntrain; t++) {
        const ds_event_t *e = &d.ev[train[t]];
        ev[t] = (lrn_event_t){
            .user = d.users[e->user], .item = d.items[e->item], .ts_ms = e->ts_ms, .weight = 1.0f};
        /* an id keeps its features: its first event carries them */
        if (features && useen && iseen && (!useen[e->user] || !iseen[e->item])) {
            lrn_feat_t *f = evf + nevf;
            int n = 0;
            if (!useen[e->user]) {
                memcpy(f + n, mf.uf + (size_t)e->user * (MLF_UCAT + MLF_UNUM),
                       sizeof(lrn_feat_t) * mf.nuf[e->user]);
                n += mf.nuf[e->user];
            }
            if (!iseen[e->item]) {
                memcpy(f + n, mf.itf + (size_t)e->item * (MLF_ICAT + MLF_INUM),
                       sizeof(lrn_feat_t) * mf.nif[e->item]);
                n += mf.nif[e->item];
            }
            useen[e->user] = iseen[e->item] = 1;
            ev[t].feat = f;
            ev[t].nfeat = n;
            nevf += (size_t)n;
        }
    }
    free(useen);
    free(iseen);
    if (!quiet)
        fprintf(stderr,
                "freshrec train: %zu events (%zu users, %zu items), %zu to learn, "
                "%ld epoch(s)%s, %s dim %d, %s loss, %s sampler, %d negatives\n",
                d.n, d.nusers, d.nitems, ntrain, epochs,
                shuffle && epochs > 1 ? " (after the first, shuffled)" : "", cfg.kind,
                cfg.model.dim, loss_kind_name(cfg.loss), samp_kind_name(cfg.sampler.kind),
                cfg.negatives);

    int tty = isatty(STDERR_FILENO);
    double t0 = clock_mono_s(), last = t0;
    /* st1: the counters after the first pass. Only its rankings are
     * prequential (each event ranked before it was ever learned); a later
     * pass ranks events the model has already learned, so those figures are
     * kept apart (the last epoch's, from the counters before it: st0). */
    learner_stats_t st, st0, st1;
    memset(&st0, 0, sizeof(st0));
    memset(&st1, 0, sizeof(st1));
    /* --members: whole rounds of --window events per chunk */
    const size_t chunk = group ? (size_t)window * (((size_t)4096 + window - 1) / window) : 4096;
    /* --shuffle: its own generator, so the learner's draws (negatives,
     * prequential picks) are those of the same seed without it */
    rng_t order;
    rng_seed(&order, cfg.seed ^ 0x5b0f1e5ULL);
    for (long ep = 1; ep <= epochs; ep++) {
        if (shuffle && ep > 1) /* the first pass is the stream, in time order */
            shuffle_events(ev, ntrain, &order);
        learner_stats(l, &st0);
        for (size_t s = 0; s < ntrain; s += chunk) {
            size_t n = ntrain - s < chunk ? ntrain - s : chunk;
            if (group && members_learn(group, ev + s, n, (size_t)window)) {
                fprintf(stderr, "freshrec train: out of memory in the model log\n");
                goto out;
            }
            if (!group)
                learner_learn(l, ev + s, n);
            double t = clock_mono_s();
            if (!quiet && tty && t - last >= 0.5) {
                learner_stats(l, &st);
                fprintf(stderr,
                        "\repoch %ld/%ld  %5.1f%%  %9.0f events/s  loss %.4f  "
                        "%s HR@10 %.3f ",
                        ep, epochs, 100.0 * (s + n) / ntrain, st.events / (t - t0), st.loss_ewma,
                        ep == 1 ? "prequential" : "seen-event", st.preq_hr10_ewma);
                last = t;
            }
        }
        learner_stats(l, &st);
        if (ep == 1)
            st1 = st;
        if (!quiet) {
            double t = clock_mono_s();
            pass_preq_t pq;
            pass_preq(&st0, &st, &pq);
            fprintf(stderr,
                    "%sepoch %ld/%ld  %9.0f events/s  %10.0f pairs/s  loss %.4f  "
                    "%s HR@10 %.3f NDCG@10 %.3f  skipped %llu\n",
                    tty ? "\r" : "", ep, epochs, st.events / (t - t0), st.pairs / (t - t0),
                    st.loss_ewma, ep == 1 ? "prequential" : "seen-event (not prequential)", pq.hr,
                    pq.ndcg, (unsigned long long)(st.skipped - st0.skipped));
        }
    }
    double train_s = clock_mono_s() - t0;
    pass_preq_t last_ep;
    pass_preq(&st0, &st, &last_ep);

    loo_result_t loo = {0};
    if (do_loo && dataset_eval_loo(l, &d, held, train, ntrain, cfg.seed, &loo)) {
        fprintf(stderr, "freshrec train: out of memory in evaluation\n");
        goto out;
    }
    double pps = train_s > 0 ? st.pairs / train_s : 0, eps = train_s > 0 ? st.events / train_s : 0;
    uint64_t offered = (uint64_t)ntrain * (uint64_t)epochs;
    if (!quiet || !json) {
        FILE *o = json ? stderr : stdout;
        fprintf(o, "learned %llu events, %llu pairs in %.2f s: %.0f events/s, %.0f pairs/s\n",
                (unsigned long long)st.events, (unsigned long long)st.pairs, train_s, eps, pps);
        fprintf(o,
                "not learned: %llu skipped (no valid negative, %.2f%% of %llu), %llu refused, "
                "%llu micro-batches non-finite\n",
                (unsigned long long)st.skipped, offered ? 100.0 * st.skipped / offered : 0.0,
                (unsigned long long)offered, (unsigned long long)st.bad,
                (unsigned long long)st.nonfinite);
        fprintf(o, "prequential, first pass (%llu ranked): HR@10 %.4f  NDCG@10 %.4f\n",
                (unsigned long long)st1.preq_n, st1.preq_hr10, st1.preq_ndcg10);
        if (epochs > 1)
            fprintf(o,
                    "last epoch, events already learned (%llu ranked, not prequential): "
                    "HR@10 %.4f  NDCG@10 %.4f\n",
                    (unsigned long long)last_ep.n, last_ep.hr, last_ep.ndcg);
        if (do_loo)
            fprintf(o,
                    "leave-one-out (%zu users): HR@10 %.4f  NDCG@10 %.4f   popularity: HR@10 "
                    "%.4f  NDCG@10 %.4f\n",
                    loo.users, loo.hr, loo.ndcg, loo.pop_hr, loo.pop_ndcg);
    }
    members_stats_t ms = {0};
    int same = 1;         /* every member's shared state is member 0's, byte for byte */
    double log_bpe = 0.0; /* model-log bytes per event */
    if (group) {
        members_stats(group, &ms);
        log_bpe = ms.events ? (double)ms.bytes / (double)ms.events : 0.0;
        char why[128] = "";
        for (int m = 1; m < (int)nmembers && same; m++)
            if (members_same(group, 0, m, why, sizeof(why)))
                same = 0, fprintf(stderr, "freshrec train: member %d: %s\n", m, why);
        if (!quiet || !json)
            fprintf(json ? stderr : stdout,
                    "%ld members: %zu model-log records, %.0f bytes per event; %llu records and "
                    "%llu entries refused; shared state %s\n",
                    nmembers, ms.records, log_bpe, (unsigned long long)ms.refused,
                    (unsigned long long)ms.refusals,
                    same ? "identical on every member" : "NOT identical");
    }
    if (json) {
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, "
            "s:f, s:I, s:f, s:f, s:I, s:I, s:I, s:I}",
            "model", cfg.kind, "loss", loss_kind_name(cfg.loss), "sampler",
            samp_kind_name(cfg.sampler.kind), "dim", cfg.model.dim, "negatives", cfg.negatives,
            "epochs", (int)epochs, "events", (json_int_t)st.events, "pairs", (json_int_t)st.pairs,
            "users", (json_int_t)d.nusers, "items", (json_int_t)d.nitems, "train_seconds", train_s,
            "events_per_s", eps, "pairs_per_s", pps, "loss_ewma", st.loss_ewma, "preq_hr10",
            st1.preq_hr10, "preq_ndcg10", st1.preq_ndcg10, "final_loss", st.loss_ewma, "loo_users",
            (json_int_t)loo.users, "pop_hr10", loo.pop_hr, "pop_ndcg10", loo.pop_ndcg,
            "preq_ranked", (json_int_t)st1.preq_n, "skipped", (json_int_t)st.skipped, "refused",
            (json_int_t)st.bad, "nonfinite_batches", (json_int_t)st.nonfinite);
        if (!j) {
            fprintf(stderr, "freshrec train: could not build the JSON result\n");
            goto out;
        }
        json_object_set_new(j, "shuffle", json_boolean(shuffle));
        json_object_set_new(j, "members", json_integer(nmembers));
        if (group) {
            json_object_set_new(j, "log_bytes_per_event", json_real(log_bpe));
            json_object_set_new(j, "shared_identical", json_boolean(same));
        }
        if (epochs > 1) {
            json_object_set_new(j, "train_hr10_last_epoch", json_real(last_ep.hr));
            json_object_set_new(j, "train_ndcg10_last_epoch", json_real(last_ep.ndcg));
        } else {
            json_object_set_new(j, "train_hr10_last_epoch", json_null());
            json_object_set_new(j, "train_ndcg10_last_epoch", json_null());
        }
        if (do_loo) {
            json_object_set_new(j, "hr10", json_real(loo.hr));
            json_object_set_new(j, "ndcg10", json_real(loo.ndcg));
        } else {
            json_object_set_new(j, "hr10", json_null());
            json_object_set_new(j, "ndcg10", json_null());
        }
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(j);
    }
    rc = same ? 0 : 1;
out:
    if (group)
        members_free(group); /* l is its member 0 */
    else
        learner_free(l);
    free(ev);
    free(evf);
    mlfeat_free(&mf);
    free(held);
    free(train);
    dataset_free(&d);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: freshrec <command> [options]\n"
               "commands:\n"
               "  train   learn from an interaction file as a stream, then evaluate\n"
               "  eval    replay a timestamped stream, scoring each event before it is learned\n"
               "          (online, retrain, popularity, item-kNN arms)\n"
               "  gen     write a synthetic interaction stream\n"
               "  replay  produce an interaction file to Kafka as JSON events\n"
               "  recommend  a user's top k items by retrieval score, read from Redis\n"
               "`freshrec <command> --help` for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "train") == 0) {
        /* the click-through models (their examples are fields) have their own command */
        for (int i = 2; i + 1 < argc; i++) {
            const model_ops_t *m = strcmp(argv[i], "--model") ? NULL : model_find(argv[i + 1]);
            if ((strcmp(argv[i], "--format") == 0 && strcmp(argv[i + 1], "criteo") == 0) ||
                (m && (m->flags & MODEL_FIELDS)))
                return train_ctr_main(argc - 1, argv + 1);
        }
        return cmd_train(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "gen") == 0) {
        for (int i = 2; i < argc; i++)
            if (strcmp(argv[i], "--ctr") == 0)
                return gen_ctr_main(argc - 1, argv + 1);
        return cmd_gen(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "eval") == 0)
        return eval_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "replay") == 0)
        return replay_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "recommend") == 0)
        return recommend_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "freshrec: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
