/* train_ctr.c — `freshrec train` for the click-through models (lr, widedeep,
 * dcn): reads a Criteo-style file (ctrdata.h) and learns it as a stream with
 * progressive validation: every example is predicted before it is learned,
 * and those predictions give AUC (over a sliding window and over the last
 * pass) and logloss. Not for: pairwise models (freshrec.c). */
#define _POSIX_C_SOURCE 200809L
#include "clock.h"
#include "cli.h"
#include "ctr.h"
#include "ctrdata.h"
#include "kern.h"
#include "model.h"
#include "widths.h"

#include <errno.h>
#include <stddef.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: freshrec train --format criteo --data PATH --model lr|widedeep|dcn [options]\n"
            "Learns click-through examples as a stream; prints progressive AUC and logloss.\n"
            "  --emb-dim N       embedding width per categorical field        [8]\n"
            "  --hash-bits B     0: exact ids; else the hashing trick, 2^B rows [0]\n"
            "  --deep L          deep MLP widths                               [64,32]\n"
            "  --cross-layers N  dcn: cross layers                             [3]\n"
            "  --cross A:B       widedeep/lr: cross fields A and B in the wide part\n"
            "                    (field names, e.g. C1:C2 or item:device; repeatable)\n"
            "  --wide-bits B     wide weights: 2^B                             [20]\n"
            "  --lr-sparse X     Adagrad: embeddings and wide weights          [0.1]\n"
            "  --lr-dense X      Adam: the dense block                         [0.003]\n"
            "  --batch N         examples per micro-batch                      [64]\n"
            "  --window N        progressive AUC over the last N examples      [10000]\n"
            "  --epochs N        passes                                        [1]\n"
            "  --threads T       threads a micro-batch is split among          [1]\n"
            "  --naive           plain-loop kernels instead of OpenBLAS (reference)\n"
            "  --seed S --json --quiet\n");
}

static int field_index(char **names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

int train_ctr_main(int argc, char **argv)
{
    const char *data = NULL, *model = NULL, *format = "criteo";
    ctr_config_t cfg;
    ctr_config_default(&cfg);
    long epochs = 1;
    int json = 0, quiet = 0;
    char *crosses[CTR_MAX_CROSSES];
    int ncross = 0;
    static const struct option opts[] = {{"data", 1, 0, 'd'},       {"format", 1, 0, 'f'},
                                         {"model", 1, 0, 'm'},      {"emb-dim", 1, 0, 1},
                                         {"hash-bits", 1, 0, 2},    {"deep", 1, 0, 3},
                                         {"cross-layers", 1, 0, 4}, {"cross", 1, 0, 5},
                                         {"wide-bits", 1, 0, 6},    {"lr-sparse", 1, 0, 7},
                                         {"lr-dense", 1, 0, 8},     {"batch", 1, 0, 9},
                                         {"window", 1, 0, 10},      {"epochs", 1, 0, 'e'},
                                         {"seed", 1, 0, 's'},       {"json", 0, 0, 'j'},
                                         {"quiet", 0, 0, 'q'},      {"eval", 1, 0, 11},
                                         {"threads", 1, 0, 12},     {"naive", 0, 0, 13},
                                         {"help", 0, 0, 'h'},       {0, 0, 0, 0}};
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        errno = 0;
        end = NULL;
        switch (c) {
        case 'd':
            data = optarg;
            break;
        case 'f':
            format = optarg;
            break;
        case 'm':
            model = optarg;
            break;
        case 1:
            cfg.emb_dim = (int)strtol(optarg, &end, 10);
            break;
        case 2:
            cfg.hash_bits = (int)strtol(optarg, &end, 10);
            break;
        case 3: {
            char why[256];
            if (widths_parse(optarg, 0, CTR_MAX_LAYERS, cfg.mlp, &cfg.nmlp, why, sizeof(why))) {
                fprintf(stderr, "freshrec train: --deep '%s': %s\n", optarg, why);
                return 2;
            }
            end = optarg + strlen(optarg);
            break;
        }
        case 4:
            cfg.cross_layers = (int)strtol(optarg, &end, 10);
            break;
        case 5:
            if (ncross == CTR_MAX_CROSSES) {
                fprintf(stderr, "freshrec train: at most %d --cross\n", CTR_MAX_CROSSES);
                return 2;
            }
            crosses[ncross++] = optarg;
            end = optarg + strlen(optarg);
            break;
        case 6:
            cfg.wide_bits = (int)strtol(optarg, &end, 10);
            break;
        case 7:
            cfg.lr_sparse = strtof(optarg, &end);
            break;
        case 8:
            cfg.lr_dense = strtof(optarg, &end);
            break;
        case 9:
            cfg.batch = (int)strtol(optarg, &end, 10);
            break;
        case 10:
            cfg.auc_window = (size_t)strtoul(optarg, &end, 10);
            break;
        case 'e':
            epochs = strtol(optarg, &end, 10);
            break;
        case 's':
            cfg.seed = strtoull(optarg, &end, 10);
            break;
        case 11: /* progressive validation is the evaluation of a stream */
            end = optarg + strlen(optarg);
            break;
        case 12:
            cfg.threads = (int)strtol(optarg, &end, 10);
            break;
        case 13:
            cfg.naive = 1;
            break;
        case 'j':
            json = 1;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (errno || (end && *end)) {
            fprintf(stderr, "freshrec train: bad value '%s'\n", optarg ? optarg : "");
            return 2;
        }
    }
    const model_ops_t *mo = model ? model_find(model) : model_default(MODEL_FIELDS);
    if (!mo || !(mo->flags & MODEL_FIELDS) || !mo->head) {
        char names[256];
        model_names_with(MODEL_FIELDS, names, sizeof(names));
        const char *last = strrchr(names, ','); /* "a, b, c" said "a, b or c" */
        fprintf(stderr, "freshrec train: --model '%s': with --format criteo: %.*s%s%s\n", model,
                (int)(last ? last - names : (ptrdiff_t)strlen(names)), names, last ? " or" : "",
                last ? last + 1 : "");
        return 2;
    }
    model = mo->name;
    if (strcmp(format, "criteo")) {
        fprintf(stderr, "freshrec train: --model %s reads --format criteo\n", model);
        return 2;
    }
    if (!data || epochs < 1) {
        fprintf(stderr, "freshrec train: --data PATH is required (and --epochs ≥ 1)\n");
        return 2;
    }
    cfg.head = mo->head;
    kern_set_threads(1); /* each thread calls BLAS on its own slice */
    char err[512];
    ctrdata_t d;
    ctrdata_init(&d);
    if (ctrdata_load_criteo(&d, data, err, sizeof(err))) {
        fprintf(stderr, "freshrec train: %s\n", err);
        ctrdata_free(&d);
        return 1;
    }
    cfg.ncat = d.ncat;
    cfg.nnum = d.nnum;
    for (int k = 0; k < ncross; k++) {
        char a[64], b[64];
        if (sscanf(crosses[k], "%63[^:x×]:%63s", a, b) != 2) {
            fprintf(stderr, "freshrec train: --cross '%s': expected FIELD:FIELD\n", crosses[k]);
            ctrdata_free(&d);
            return 2;
        }
        cfg.cross[k][0] = field_index(d.cat_names, d.ncat, a);
        cfg.cross[k][1] = field_index(d.cat_names, d.ncat, b);
        if (cfg.cross[k][0] < 0 || cfg.cross[k][1] < 0) {
            fprintf(stderr, "freshrec train: --cross '%s': no such categorical field\n",
                    crosses[k]);
            ctrdata_free(&d);
            return 2;
        }
    }
    cfg.ncross = ncross;
    ctr_t *m = ctr_create(&cfg, err, sizeof(err));
    if (!m) {
        fprintf(stderr, "freshrec train: %s\n", err);
        ctrdata_free(&d);
        return 2;
    }
    if (!quiet)
        fprintf(stderr, "freshrec train: %zu examples, %d categorical and %d dense fields; %s\n",
                d.n, d.ncat, d.nnum, mo->name);
    double t0 = clock_mono_s();
    ctr_stats_t st;
    for (long ep = 1; ep <= epochs; ep++) {
        ctr_learn(m, d.ex, d.n);
        if (!quiet) {
            ctr_stats(m, &st);
            fprintf(stderr, "epoch %ld/%ld  progressive AUC %.4f (last %zu)  logloss %.4f\n", ep,
                    epochs, st.auc, cfg.auc_window, st.logloss);
        }
    }
    double secs = clock_mono_s() - t0;
    ctr_stats(m, &st);
    double rate = secs > 0 ? st.examples / secs : 0;
    FILE *o = json ? stderr : stdout;
    if (!quiet || !json)
        fprintf(o,
                "%s: %llu examples (%.1f%% clicked) in %.2f s (%.0f/s): progressive AUC "
                "%.4f over the last %zu, logloss %.4f (all) %.4f (last %zu)\n",
                mo->name, (unsigned long long)st.examples,
                st.examples ? 100.0 * st.positives / st.examples : 0.0, secs, rate, st.auc,
                cfg.auc_window < st.examples ? cfg.auc_window : st.examples, st.logloss,
                st.window_logloss, cfg.auc_window);
    if (json) {
        json_t *j = json_pack("{s:s, s:I, s:I, s:f, s:f, s:f, s:I, s:f, s:f, s:i, s:I}", "model",
                              mo->name, "examples", (json_int_t)st.examples, "positives",
                              (json_int_t)st.positives, "auc", st.auc, "logloss", st.logloss,
                              "window_logloss", st.window_logloss, "auc_window",
                              (json_int_t)cfg.auc_window, "train_seconds", secs, "examples_per_s",
                              rate, "epochs", (int)epochs, "nonfinite", (json_int_t)st.nonfinite);
        char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(j);
    }
    ctr_free(m);
    ctrdata_free(&d);
    return 0;
}

int gen_ctr_main(int argc, char **argv)
{
    ctrgen_config_t g;
    ctrgen_config_default(&g);
    const char *out = NULL;
    static const struct option opts[] = {{"ctr", 0, 0, 'c'},     {"examples", 1, 0, 'n'},
                                         {"users", 1, 0, 'u'},   {"items", 1, 0, 'i'},
                                         {"devices", 1, 0, 'v'}, {"interaction", 1, 0, 'x'},
                                         {"seed", 1, 0, 's'},    {"out", 1, 0, 'o'},
                                         {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    int c;
    char *end = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        errno = 0;
        end = NULL;
        switch (c) {
        case 'c':
            break;
        case 'n':
            g.examples = strtoull(optarg, &end, 10);
            break;
        case 'u':
            g.users = (uint32_t)strtoul(optarg, &end, 10);
            break;
        case 'i':
            g.items = (uint32_t)strtoul(optarg, &end, 10);
            break;
        case 'v':
            g.devices = (uint32_t)strtoul(optarg, &end, 10);
            break;
        case 'x':
            g.interaction = strtod(optarg, &end);
            break;
        case 's':
            g.seed = strtoull(optarg, &end, 10);
            break;
        case 'o':
            out = optarg;
            break;
        case 'h':
            printf("usage: freshrec gen --ctr [--examples N] [--users U] [--items I] "
                   "[--devices D] [--interaction X] [--seed S] [--out PATH]\n"
                   "A click-through stream (label, dense, categorical user/item/device/cat3)\n"
                   "whose click probability has a planted item-group x device interaction.\n");
            return 0;
        default:
            return 2;
        }
        if (errno || (end && *end)) {
            fprintf(stderr, "freshrec gen: bad value '%s'\n", optarg);
            return 2;
        }
    }
    char err[256];
    ctrdata_t d;
    ctrdata_init(&d);
    if (ctrdata_generate(&d, &g, err, sizeof(err))) {
        fprintf(stderr, "freshrec gen: %s\n", err);
        ctrdata_free(&d);
        return 1;
    }
    FILE *f = out ? fopen(out, "w") : stdout;
    int rc = f ? ctrdata_write(&d, f) : -1;
    if (out && f && fclose(f))
        rc = -1;
    if (rc)
        fprintf(stderr, "freshrec gen: cannot write %s: %s\n", out ? out : "stdout",
                strerror(errno));
    ctrdata_free(&d);
    return rc ? 1 : 0;
}
