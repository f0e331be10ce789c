/* cliopts.h — what the learning subcommands share: the option table and its
 * one parsing loop (opts_next), and the learner's options with the way a
 * learner_config_t is built from them (lcfg_*): the daemon's defaults
 * (learner_config_default), then the options given.
 *
 * freshrec.c (train, gen) still keeps a static copy of the option table;
 * it moves here once the edits in flight on train and gen have landed (the
 * names are the same, so that move is a deletion). Not for: the options of
 * replay and recommend, which use getopt_long directly. */
#ifndef FR_CLIOPTS_H
#define FR_CLIOPTS_H

#include "learner.h"

#include <stdio.h>

/* One option of a subcommand: its name, what it takes and where its value
 * goes, with the bounds a number must keep. An option the table cannot
 * store (a list of widths, a keyword) is ARG_OTHER: opts_next returns its
 * key, its value in optarg, to the caller's switch. */
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

#define OPTS_MAX 64 /* options of one subcommand, --help included */
#define NOPTS(t) ((int)(sizeof(t) / sizeof((t)[0])))

/* The next option of argv (set optind = 1 before the first call): a table
 * option is stored and the next one read. Returns -1 at the end of the
 * options, 'h' for --help, '?' for an unknown option or a missing argument
 * (getopt_long has said which), -2 for a value out of its bounds (said), or
 * an ARG_OTHER option's key with its argument in optarg. */
int opts_next(int argc, char **argv, const opt_t *t, int n);

/* The keys lcfg_opts gives its ARG_OTHER options (lcfg_other takes them). */
enum { LCFG_MLP = 0x1000, LCFG_TOWER, LCFG_SAMPLER, LCFG_LOSS, LCFG_OPTIMIZER };

/* The learner's options (freshrec train's: --dim, --mlp, --negatives,
 * --sampler, --loss, --batch, learning rates, --seed, …, and --model into
 * *model, --threads into *threads) appended to t[*n, max): 0, or -1 when
 * they do not fit. */
int lcfg_opts(opt_t *t, int *n, int max, learner_config_t *cfg, const char **model, long *threads);
/* An ARG_OTHER key of lcfg_opts with its argument: 0 when stored, -1 after
 * a message (prog: the prefix of it), 1 when key is not one of them. */
int lcfg_other(learner_config_t *cfg, int key, const char *arg, const char *prog);
/* After parsing: the model by name into cfg->kind (a retrieval model of the
 * learner's, not a click-through one), the towers' width, the threads.
 * 0, or -1 after a message. */
int lcfg_finish(learner_config_t *cfg, const char *model, long threads, const char *prog);
/* The learner options' lines of a usage text. */
void lcfg_usage(FILE *f);

#endif
