/* cliopts.c — the option table of the learning subcommands and the
 * learner's options (see cliopts.h). The parsing is freshrec.c's, here so
 * that a second subcommand (eval) builds its learner_config_t the way train
 * does; freshrec.c keeps its copy until train and gen move here (cliopts.h). */
#define _POSIX_C_SOURCE 200809L
#include "cliopts.h"

#include "kern.h"
#include "widths.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define OPTS_INDEX 0x100 /* getopt_long's value of the table's option i: OPTS_INDEX + i */

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

/* Stores option o's argument in its target: 0, or -1 after a message. */
static int opt_store(const opt_t *o, const char *arg)
{
    char name[64];
    snprintf(name, sizeof(name), "--%s", o->name);
    long v = 0;
    double x = 0;
    if (o->kind <= ARG_LONG && parse_long(name, arg, (long)o->lo, (long)o->hi, &v))
        return -1;
    if ((o->kind == ARG_FLOAT || o->kind == ARG_DOUBLE) &&
        parse_double(name, arg, o->lo, o->hi, &x))
        return -1;
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

int opts_next(int argc, char **argv, const opt_t *t, int n)
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

int lcfg_opts(opt_t *t, int *n, int max, learner_config_t *cfg, const char **model, long *threads)
{
    const opt_t mine[] = {
        {"model", ARG_STR, model, 0, 0, 0},
        {"dim", ARG_INT, &cfg->model.dim, 1, 1024, 0},
        {"mlp", ARG_OTHER, NULL, 0, 0, LCFG_MLP},
        {"tower", ARG_OTHER, NULL, 0, 0, LCFG_TOWER},
        {"gamma", ARG_FLOAT, &cfg->towers.gamma, 0.001, 1000, 0},
        {"history", ARG_INT, &cfg->history, 1, 256, 0},
        {"history-decay", ARG_FLOAT, &cfg->history_decay, 0.001, 1, 0},
        {"user-weight", ARG_FLOAT, &cfg->user_weight, 0, 1, 0},
        {"transition-lr", ARG_FLOAT, &cfg->transition_lr, 0, 1, 0},
        {"negatives", ARG_INT, &cfg->negatives, 1, 1024, 0},
        {"sampler", ARG_OTHER, NULL, 0, 0, LCFG_SAMPLER},
        {"alpha", ARG_FLOAT, &cfg->sampler.alpha, 0, 2, 0},
        {"pool", ARG_INT, &cfg->sampler.pool, 1, 4096, 0},
        {"loss", ARG_OTHER, NULL, 0, 0, LCFG_LOSS},
        {"batch", ARG_INT, &cfg->batch_events, 1, 65536, 0},
        {"replay", ARG_FLOAT, &cfg->replay, 0, 16, 0},
        {"optimizer", ARG_OTHER, NULL, 0, 0, LCFG_OPTIMIZER},
        {"lr-sparse", ARG_FLOAT, &cfg->lr_sparse, 1e-9, 100, 0},
        {"lr-dense", ARG_FLOAT, &cfg->lr_dense, 1e-9, 100, 0},
        {"l2-sparse", ARG_FLOAT, &cfg->l2_sparse, 0, 100, 0},
        {"l2-dense", ARG_FLOAT, &cfg->l2_dense, 0, 100, 0},
        {"init-std", ARG_FLOAT, &cfg->init_std, 0, 10, 0},
        {"ring", ARG_SIZE, &cfg->ring_capacity, 1, 1000000000L, 0},
        {"admit-after", ARG_U32, &cfg->admit_after, 1, 1000000, 0},
        {"threads", ARG_LONG, threads, 1, LEARNER_MAX_THREADS, 0},
        {"naive", ARG_FLAG, &cfg->model.naive, 0, 0, 0},
        {"seed", ARG_U64, &cfg->seed, 0, 0x7fffffffL, 0},
    };
    if (*n + NOPTS(mine) > max)
        return -1;
    memcpy(t + *n, mine, sizeof(mine));
    *n += NOPTS(mine);
    return 0;
}

int lcfg_other(learner_config_t *cfg, int key, const char *arg, const char *prog)
{
    char err[256];
    long v;
    switch (key) {
    case LCFG_TOWER:
        if (widths_parse(arg, 1, DSSM_MAX_LAYERS, cfg->towers.tower, &cfg->towers.ntower, err,
                         sizeof(err)) == 0)
            return 0;
        fprintf(stderr, "%s: --tower '%s': %s\n", prog, arg, err);
        return -1;
    case LCFG_MLP:
        if (widths_parse(arg, 2, NEUMF_MAX_LAYERS, cfg->model.mlp, &cfg->model.nmlp, err,
                         sizeof(err)) == 0)
            return 0;
        fprintf(stderr, "%s: --mlp '%s': %s\n", prog, arg, err);
        return -1;
    case LCFG_SAMPLER:
        if ((v = samp_kind_parse(arg)) >= 0) {
            cfg->sampler.kind = (samp_kind_t)v;
            return 0;
        }
        fprintf(stderr, "%s: --sampler '%s': expected uniform, popularity, inbatch or hard\n", prog,
                arg);
        return -1;
    case LCFG_LOSS:
        if ((v = loss_kind_parse(arg)) >= 0) {
            cfg->loss = (loss_kind_t)v;
            return 0;
        }
        fprintf(stderr, "%s: --loss '%s': expected bce, bpr or softmax\n", prog, arg);
        return -1;
    case LCFG_OPTIMIZER:
        if ((v = sparse_opt_parse(arg)) >= 0) {
            cfg->sparse_opt = (sparse_opt_t)v;
            return 0;
        }
        fprintf(stderr, "%s: --optimizer '%s': expected adagrad, adam or sgd\n", prog, arg);
        return -1;
    }
    return 1;
}

int lcfg_finish(learner_config_t *cfg, const char *model, long threads, const char *prog)
{
    const model_ops_t *mo = model_find(model);
    if (!mo || !mo->create || (mo->flags & MODEL_FIELDS)) {
        char names[256];
        model_names_with(MODEL_RANKS, names, sizeof(names));
        fprintf(stderr, "%s: --model '%s': expected one of %s\n", prog, model, names);
        return -1;
    }
    snprintf(cfg->kind, sizeof(cfg->kind), "%s", mo->name);
    cfg->towers.dim = cfg->model.dim;
    cfg->threads = (int)threads;
    kern_set_threads(1); /* each learner thread calls BLAS on its own slice */
    return 0;
}

void lcfg_usage(FILE *f)
{
    char names[256];
    model_names_with(MODEL_RANKS, names, sizeof(names));
    fprintf(f,
            "learner (the daemon's defaults, as freshrec train):\n"
            "  --model M         %s [%s]\n"
            "  --dim N           GMF factors / id embedding width                [32]\n"
            "  --mlp L           neumf: MLP widths, input first                  [64,32,16,8]\n"
            "  --tower L         dssm: tower widths, output last                 [128,64]\n"
            "  --gamma G         dssm: logit = G x cosine                        [10]\n"
            "  --history N       hmf: a user's last items whose rows join theirs [8]\n"
            "  --history-decay X hmf: the j-th newest of them weighs X^j         [0.75]\n"
            "  --user-weight X   hmf: the weight of the user's own row           [0.5]\n"
            "  --transition-lr X hmf: learning rate of the transition map shared\n"
            "                    by all users (0: no map)                        [0]\n"
            "  --negatives K     sampled negatives per positive                  [4]\n"
            "  --sampler S       uniform | popularity | inbatch | hard           [uniform]\n"
            "  --alpha A         popularity exponent                             [0.75]\n"
            "  --pool C          hard: candidates scored per event               [12]\n"
            "  --loss L          bce | bpr | softmax                             [bce]\n"
            "  --batch N         events per micro-batch                          [256]\n"
            "  --replay X        events learned again from the rolling buffer\n"
            "                    per event learned (experience replay)           [0]\n"
            "  --optimizer O     rows: adagrad | adam | sgd                      [adagrad]\n"
            "  --lr-sparse X     row learning rate                               [0.03]\n"
            "  --lr-dense X      Adam learning rate of the dense block           [0.005]\n"
            "  --l2-sparse X     L2 on rows                                      [0]\n"
            "  --l2-dense X      L2 on the dense block                           [0.00003]\n"
            "  --init-std X      new rows: N(0, X)                               [0.01]\n"
            "  --ring N          rolling-buffer events                           [100000]\n"
            "  --admit-after N   occurrences before an id gets its own row       [1]\n"
            "  --threads T       learner threads                                 [1]\n"
            "  --naive           plain-loop kernels instead of OpenBLAS\n"
            "  --seed S          random seed                                     [1]\n",
            names, model_default(0)->name);
}
