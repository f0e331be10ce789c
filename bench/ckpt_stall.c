/* ckpt_stall.c — fr-ckpt-bench: how long a checkpoint holds the daemon's
 * loop, for a NeuMF-32 learner with a million ids or more.
 *
 * It learns a generated stream in which every one of --users users and
 * --items items occurs (event k: user k mod U, item 7919·k + 13 mod I, so
 * each id gets its own row), then checkpoints the learner (learner_save)
 * with the functions freshrecd uses (store/ckpt.c):
 *   - once on the spot with ckpt_write: the reference, how long the loop
 *     would stall without the fork;
 *   - --rounds times with ckpt_bg_start/ckpt_bg_finish: the stall is the time
 *     ckpt_bg_start holds the caller (pipe + fork); meanwhile the parent goes
 *     on learning uniform random pairs of known ids (so it dirties pages
 *     the child still reads, the copy-on-write worst case), and its learning
 *     rate then is set beside the rate just before.
 * Last, the newest file is read back into a fresh learner (ckpt_read).
 *
 * Not for: the daemon's own payload (the join, offsets and counters, a few
 * bytes beside the tables), or correctness (tests/unit/test_ckpt.c). */
#define _POSIX_C_SOURCE 200809L
#include "ckpt.h"
#include "clock.h"
#include "collapse.h"
#include "id.h"
#include "kern.h"
#include "learner.h"
#include "metrics.h"
#include "rng.h"

#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK 256 /* events per learner_learn call: one micro-batch */

typedef struct {
    lrn_event_t ev[CHUNK];
    char ids[CHUNK][2][24];
} chunk_t;

static void set_event(chunk_t *c, int j, long user, long item, int64_t ts)
{
    lrn_event_t *e = &c->ev[j];
    int ul = snprintf(c->ids[j][0], sizeof(c->ids[j][0]), "u%ld", user);
    int il = snprintf(c->ids[j][1], sizeof(c->ids[j][1]), "i%ld", item);
    *e = (lrn_event_t){.user = {id_hash(c->ids[j][0], (size_t)ul), c->ids[j][0], (size_t)ul},
                       .item = {id_hash(c->ids[j][1], (size_t)il), c->ids[j][1], (size_t)il},
                       .ts_ms = ts,
                       .weight = 1.0f};
}

/* durations of learn_random calls, per phase */
typedef struct {
    double *v;
    size_t n, cap;
} durs_t;

static durs_t *recording; /* where learn_random records, or NULL */

static void durs_add(durs_t *d, double x)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 4096;
        double *v = realloc(d->v, cap * sizeof(double));
        if (!v)
            return;
        d->v = v;
        d->cap = cap;
    }
    d->v[d->n++] = x;
}

static int cmp_double(const void *a, const void *b);

/* the q-quantile of v[from..n) (q = 1: the largest) */
static double durs_q(const durs_t *d, size_t from, double q)
{
    size_t n = d->n > from ? d->n - from : 0;
    if (!n)
        return 0;
    double *t = malloc(n * sizeof(double));
    if (!t)
        return 0;
    memcpy(t, d->v + from, n * sizeof(double));
    qsort(t, n, sizeof(double), cmp_double);
    size_t k = (size_t)(q * (double)(n - 1) + 0.5);
    double x = t[k];
    free(t);
    return x;
}

/* n uniform random pairs of ids already learned */
static void learn_random(learner_t *l, chunk_t *c, rng_t *r, long users, long items, int n,
                         int64_t *ts)
{
    double t0 = clock_mono_s();
    for (int j = 0; j < n; j++)
        set_event(c, j, (long)rng_below(r, (uint32_t)users), (long)rng_below(r, (uint32_t)items),
                  (*ts)++);
    learner_learn(l, c->ev, (size_t)n);
    if (recording)
        durs_add(recording, clock_mono_s() - t0);
}

static int save_learner(void *arg, ser_writer_t *w)
{
    return learner_save(arg, w);
}

static int load_learner(void *arg, ser_reader_t *r, uint32_t version, char *err, size_t len)
{
    (void)version;
    return learner_load(arg, r, err, len);
}

static const ckpt_section_t sections[] = {{"LRNR", 1, 1, save_learner, load_learner}};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double rss_gb(void)
{
    return (double)metrics_rss_bytes() / 1e9;
}

static int sync_write(double *seconds, const char *path, learner_t *l)
{
    char err[512];
    double t0 = clock_mono_s();
    if (ckpt_write(path, sections, 1, l, err, sizeof(err))) {
        fprintf(stderr, "fr-ckpt-bench: %s\n", err);
        return -1;
    }
    *seconds = clock_mono_s() - t0;
    return 0;
}

/* as freshrecd does after a forked checkpoint: its tables' large arrays */
static void start_collapse(collapse_t *cl, learner_t *l)
{
    void *p[16];
    size_t n[16];
    int k = emb_large_arrays(learner_users(l), p, n, 8);
    k += emb_large_arrays(learner_items(l), p + k, n + k, 8);
    char err[256];
    if (collapse_start(cl, p, n, k, err, sizeof(err)) < 0)
        fprintf(stderr, "fr-ckpt-bench: %s\n", err);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fr-ckpt-bench --dir DIR [options]   checkpoint stall of NeuMF-32\n"
               "  --dir DIR      where the checkpoints are written (a real disk)\n"
               "  --users U      distinct users learned                    [1000000]\n"
               "  --items I      distinct items learned                    [1000000]\n"
               "  --rounds R     checkpoints written by a forked child     [5]\n"
               "  --between N    random events learned before each one    [50000]\n"
               "  --no-verify    do not read the last checkpoint back\n");
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    long users = 1000000, items = 1000000, between = 50000;
    int rounds = 5, verify = 1;
    static const struct option opts[] = {{"dir", 1, 0, 'd'},     {"users", 1, 0, 'u'},
                                         {"items", 1, 0, 'i'},   {"rounds", 1, 0, 'r'},
                                         {"between", 1, 0, 'b'}, {"no-verify", 0, 0, 'n'},
                                         {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 'u':
            users = atol(optarg);
            break;
        case 'i':
            items = atol(optarg);
            break;
        case 'r':
            rounds = atoi(optarg);
            break;
        case 'b':
            between = atol(optarg);
            break;
        case 'n':
            verify = 0;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!dir || users < 1 || items < 1 || users > 4000000000L || items > 4000000000L ||
        rounds < 1 || rounds > 100 || between < 0) {
        usage(stderr);
        return 2;
    }
    char path[4096], prev[4200], err[512];
    snprintf(path, sizeof(path), "%s/bench.ckpt", dir);
    snprintf(prev, sizeof(prev), "%s.prev", path);

    kern_set_threads(1);
    double rss0 = rss_gb();
    learner_config_t cfg;
    learner_config_default(&cfg); /* NeuMF, dim 32, MLP 64-32-16-8, BCE, 4 uniform negatives */
    learner_t *l = learner_create(&cfg, err, sizeof(err));
    if (!l) {
        fprintf(stderr, "fr-ckpt-bench: %s\n", err);
        return 1;
    }
    chunk_t *c = malloc(sizeof(*c));
    if (!c)
        return 1;

    /* every id once: the first pass of a generated stream */
    long n = users > items ? users : items;
    int64_t ts = 1764486000000;
    double t0 = clock_mono_s();
    for (long k = 0; k < n;) {
        int m = 0;
        for (; m < CHUNK && k < n; m++, k++)
            set_event(c, m, k % users,
                      (long)((7919ULL * (unsigned long long)k + 13) % (unsigned long long)items),
                      ts++);
        learner_learn(l, c->ev, (size_t)m);
    }
    double t_learn = clock_mono_s() - t0;
    learner_stats_t ls;
    learner_stats(l, &ls);
    printf("learned %ld events in %.1f s: %llu user rows, %llu item rows (NeuMF-32: %d floats + "
           "as many of Adagrad state a row); RSS %.2f GB\n",
           n, t_learn, (unsigned long long)ls.users.rows, (unsigned long long)ls.items.rows,
           2 * cfg.model.dim, rss_gb());
    /* memory per id: what the floats need (a row and its Adagrad state),
     * what the tables hold in all (entries, hash slots, ids, row arrays with
     * their growth room), and the process's resident growth per id (the
     * rolling buffer and the model's dense block included) */
    double nid = (double)(ls.users.entries + ls.items.entries);
    double floats_b = 2.0 * 2 * cfg.model.dim * sizeof(float);
    double table_b = (double)(ls.users.bytes + ls.items.bytes) / nid;
    double rss_b = (rss_gb() - rss0) * 1e9 / nid;
    printf("memory per id (NeuMF-32, Adagrad): floats %.0f B; tables %.0f B (%.2fx); resident "
           "growth %.0f B (%.2fx)\n",
           floats_b, table_b, table_b / floats_b, rss_b, rss_b / floats_b);

    /* the reference: written on the spot, the whole write stalls the loop
     * (once before the forked rounds and once after: the disk is shared) */
    double t_sync[2];
    if (sync_write(&t_sync[0], path, l))
        return 1;
    struct stat st;
    stat(path, &st);
    double bytes = (double)st.st_size;

    rng_t r;
    rng_seed(&r, 7);
    double *stall = calloc((size_t)rounds, sizeof(double));
    double *wr = calloc((size_t)rounds, sizeof(double));
    double *ratio = calloc((size_t)rounds, sizeof(double));
    double *coll = calloc((size_t)rounds, sizeof(double));
    double *reap = calloc((size_t)rounds, sizeof(double));
    double *crate = calloc((size_t)rounds, sizeof(double)),
           *cratio = calloc((size_t)rounds, sizeof(double));
    collapse_t *cl = collapse_create(err, sizeof(err));
    if (!stall || !wr || !ratio || !coll || !reap || !crate || !cratio || !cl)
        return 1;
    ckpt_bg_t bg;
    ckpt_bg_init(&bg);
    printf("       huge pages back (thread) | then, alone              | the forked checkpoint, "
           "learning meanwhile\n");
    printf("%-6s %6s %7s %6s | %7s %7s %6s | %8s %7s %8s %7s %6s\n", "round", "ms", "ev/s",
           "p99 ms", "huge GB", "ev/s", "p99 ms", "stall ms", "reap ms", "child ms", "ev/s",
           "p99 ms");
    printf("(stall: ckpt_bg_start, the fork; reap: the longest ckpt_bg_finish call; p99: of the\n"
           " learning calls of %d events, each of which holds the loop that long)\n",
           CHUNK);
    durs_t ph[3] = {{0}, {0}, {0}}; /* learning calls: with a collapse pass, alone, with a child */
    collapse_stats_t cs = {0};
    for (int i = 0; i < rounds; i++) {
        /* the loop goes on learning; a collapse pass (after the previous
         * round) runs beside it, as in freshrecd, and is over long before a
         * checkpoint interval (60 s by default) is */
        double tb = clock_mono_s();
        long learned = 0;
        size_t from[3] = {ph[0].n, ph[1].n, ph[2].n};
        recording = &ph[0];
        while (collapse_running(cl, &cs)) {
            learn_random(l, c, &r, users, items, CHUNK, &ts);
            learned += CHUNK;
        }
        coll[i] = i ? cs.seconds : 0;
        crate[i] = i ? learned / (clock_mono_s() - tb) : 0;
        /* then the learning rate with nothing beside it: the reference */
        recording = &ph[1];
        tb = clock_mono_s();
        for (learned = 0; learned < between; learned += CHUNK)
            learn_random(l, c, &r, users, items, CHUNK, &ts);
        double rate_before = learned / (clock_mono_s() - tb);
        recording = NULL;
        if (i)
            cratio[i - 1] = crate[i] / rate_before;
        double huge = (double)collapse_anon_huge_bytes() / 1e9;

        double ts0 = clock_mono_s();
        collapse_stop(cl); /* as freshrecd does: nothing to stop here */
        if (ckpt_bg_start(&bg, path, prev, sections, 1, l, err, sizeof(err))) {
            fprintf(stderr, "fr-ckpt-bench: %s\n", err);
            return 1;
        }
        stall[i] = clock_mono_s() - ts0; /* bg.stall_s, and the calls around it */
        /* learn until the child reports: the parent's writes copy the pages
         * the child still reads (copy-on-write) */
        learned = 0;
        recording = &ph[2];
        double tw = clock_mono_s();
        struct pollfd p = {.fd = bg.fd, .events = POLLIN};
        for (int rc = 1; rc == 1;) {
            if (poll(&p, 1, 0) > 0) { /* as freshrecd: finish whenever the pipe is readable */
                double tf = clock_mono_s();
                rc = ckpt_bg_finish(&bg, err, sizeof(err));
                double d = clock_mono_s() - tf;
                reap[i] = d > reap[i] ? d : reap[i];
                if (rc == -1) {
                    fprintf(stderr, "fr-ckpt-bench: %s\n", err);
                    return 1;
                }
                if (rc == 0)
                    break;
            }
            learn_random(l, c, &r, users, items, CHUNK, &ts);
            learned += CHUNK;
        }
        double rate_during = learned / (clock_mono_s() - tw);
        recording = NULL;
        wr[i] = bg.write_s;
        ratio[i] = rate_during / rate_before;
        start_collapse(cl, l);
        printf("%-6d %6.0f %7.0f %6.1f | %7.2f %7.0f %6.1f | %8.2f %7.3f %8.0f %7.0f %6.1f\n",
               i + 1, coll[i] * 1e3, crate[i], durs_q(&ph[0], from[0], 0.99) * 1e3, huge,
               rate_before, durs_q(&ph[1], from[1], 0.99) * 1e3, stall[i] * 1e3, reap[i] * 1e3,
               wr[i] * 1e3, rate_during, durs_q(&ph[2], from[2], 0.99) * 1e3);
    }
    while (collapse_running(cl, &cs))
        learn_random(l, c, &r, users, items, CHUNK, &ts);
    if (sync_write(&t_sync[1], path, l))
        return 1;
    double smax = 0, rmax = 0;
    for (int i = 0; i < rounds; i++) {
        smax = stall[i] > smax ? stall[i] : smax;
        rmax = reap[i] > rmax ? reap[i] : rmax;
    }
    double smed = median(stall, rounds), wmed = median(wr, rounds), rmed = median(ratio, rounds);
    double cmed = rounds > 1 ? median(coll + 1, rounds - 1) : 0;
    double crmed = rounds > 1 ? median(cratio, rounds - 1) : 0;

    int ok = 1;
    if (verify) {
        learner_t *back = learner_create(&cfg, err, sizeof(err));
        learner_stats_t lb;
        if (!back || ckpt_read(path, sections, 1, back, err, sizeof(err))) {
            fprintf(stderr, "fr-ckpt-bench: read back: %s\n", err);
            ok = 0;
        } else {
            learner_stats(back, &lb);
            printf("read back %s: %llu user rows, %llu item rows\n", path,
                   (unsigned long long)lb.users.rows, (unsigned long long)lb.items.rows);
            ok = lb.users.rows == ls.users.rows && lb.items.rows == ls.items.rows;
        }
        learner_free(back);
    }
    unlink(path);
    unlink(prev);

    double sync_ms = (t_sync[0] + t_sync[1]) / 2 * 1e3;
    printf("checkpoint of NeuMF-32 with %ld users + %ld items: %.0f bytes (%.2f GB)\n", users,
           items, bytes, bytes / 1e9);
    printf("  written on the loop (ckpt_write, the reference): %6.0f ms stall (mean of %.0f and "
           "%.0f)\n",
           sync_ms, t_sync[0] * 1e3, t_sync[1] * 1e3);
    printf("  fork snapshot (ckpt_bg_start): stall median %.2f ms, max %.2f ms over %d "
           "checkpoints (reaping the child: at most %.3f ms a call)\n",
           smed * 1e3, smax * 1e3, rounds, rmax * 1e3);
    printf("  child's write (ckpt_bg_finish): median %.0f ms; the parent learned meanwhile at "
           "%.0f%% of its rate before\n",
           wmed * 1e3, rmed * 1e2);
    printf("  huge pages back after a write (collapse thread): median %.0f ms, beside the loop, "
           "which learned meanwhile at %.0f%% of its rate\n",
           cmed * 1e3, crmed * 1e2);
    printf("  learning calls (%d events) p50/p99/max: alone %.1f/%.1f/%.1f ms, while the child "
           "writes %.1f/%.1f/%.1f ms, while huge pages come back %.1f/%.1f/%.1f ms\n",
           CHUNK, durs_q(&ph[1], 0, 0.5) * 1e3, durs_q(&ph[1], 0, 0.99) * 1e3,
           durs_q(&ph[1], 0, 1) * 1e3, durs_q(&ph[2], 0, 0.5) * 1e3, durs_q(&ph[2], 0, 0.99) * 1e3,
           durs_q(&ph[2], 0, 1) * 1e3, durs_q(&ph[0], 0, 0.5) * 1e3, durs_q(&ph[0], 0, 0.99) * 1e3,
           durs_q(&ph[0], 0, 1) * 1e3);
    for (int k = 0; k < 3; k++)
        free(ph[k].v);
    printf("{\"users\":%ld,\"items\":%ld,\"bytes\":%.0f,\"sync_ms\":%.3f,\"stall_median_ms\":%.3f,"
           "\"stall_max_ms\":%.3f,\"child_write_median_ms\":%.3f,\"learn_ratio\":%.3f,"
           "\"collapse_median_ms\":%.3f,\"reap_max_ms\":%.3f,\"rounds\":%d}\n",
           users, items, bytes, sync_ms, smed * 1e3, smax * 1e3, wmed * 1e3, rmed, cmed * 1e3,
           rmax * 1e3, rounds);
    collapse_free(cl);
    learner_free(l);
    free(c);
    free(stall);
    free(wr);
    free(ratio);
    free(coll);
    free(reap);
    free(crate);
    free(cratio);
    return ok ? 0 : 1;
}
