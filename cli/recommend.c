/* recommend.c — `freshrec recommend`: what a product service does for the
 * first (retrieval) stage. Reads the model's meta hash, the user's vector and
 * every item vector from Redis, and prints the top k items by the model's
 * retrieval score, computed with one gemv (cblas).
 *
 * For NeuMF the retrieval score is the GMF term of the logit,
 * Σ_f wout_f · p_u,f · q_i,f: the part of the model that factorises into
 * user and item vectors (the MLP tower is for the ranking stage). For DSSM
 * the vectors are the towers' normalised outputs and the score is their dot
 * product, the cosine.
 *
 * Redis holds vectors, not history, so what the user has already seen comes
 * from the caller: --exclude-seen FILE reads the user's interactions from a
 * file in the format `freshrec train --data` reads (the same log the model
 * was trained or replayed from), and --exclude takes ids on the command line.
 * Excluded items are dropped before the top k is taken, so k items are
 * printed whenever the catalogue has k unseen ones. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "dataset.h"
#include "keys.h"
#include "kern.h"
#include "model.h"

#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: freshrec recommend --redis HOST:PORT --user ID [-k N] [options]\n"
               "Prints the user's top N items by the model's retrieval score, from Redis.\n"
               "  -k N            how many                                  [10]\n"
               "  --prefix P      key prefix                                [fr]\n"
               "  --model M       model name in the keys                    [neumf]\n"
               "  --password PW   Redis AUTH (or the REDISCLI_AUTH environment variable)\n"
               "  --exclude-seen FILE  leave out the items the user has in FILE, an\n"
               "                  interaction file as `freshrec train --data` reads\n"
               "                  (user item rating ts); repeatable\n"
               "  --exclude ID,ID,...  leave out these items too; repeatable\n");
}

/* "gmf:0:32,mlp:32:64" → the range named name */
static int layout_range(const char *layout, const char *name, int *lo, int *hi)
{
    size_t n = strlen(name);
    for (const char *p = layout; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ':' && sscanf(p + n + 1, "%d:%d", lo, hi) == 2)
            return 0;
    return -1;
}

/* offset of entry name in "W1:32x64,b1:32,...,wout:40,bout:1" */
static long dense_offset(const char *layout, const char *name)
{
    long off = 0;
    size_t n = strlen(name);
    for (const char *p = layout; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        const char *colon = strchr(p, ':');
        if (!colon)
            return -1;
        long a = 0, b = 1;
        if (sscanf(colon + 1, "%ldx%ld", &a, &b) < 1)
            return -1;
        if ((size_t)(colon - p) == n && strncmp(p, name, n) == 0)
            return off;
        off += a * b;
    }
    return -1;
}

typedef struct {
    char *id;
    float score;
} hit_t;

/* The items to leave out: ids, sorted once they are all in. */
typedef struct {
    char **ids;
    size_t n, cap;
} seen_t;

static int seen_add(seen_t *s, const char *id, size_t len)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        char **b = realloc(s->ids, nc * sizeof(char *));
        if (!b)
            return -1;
        s->ids = b;
        s->cap = nc;
    }
    if (!(s->ids[s->n] = strndup(id, len)))
        return -1;
    s->n++;
    return 0;
}

static int by_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static int seen_has(const seen_t *s, const char *id)
{
    return s->n && bsearch(&id, s->ids, s->n, sizeof(char *), by_str) != NULL;
}

static void seen_free(seen_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->ids[i]);
    free(s->ids);
}

/* "a,b,c" into s; empty entries are skipped */
static int seen_list(seen_t *s, const char *list)
{
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n && seen_add(s, p, n) < 0)
            return -1;
        p += n + (p[n] == ',');
    }
    return 0;
}

/* The items of user's interactions in path (an interaction file). */
static int seen_file(seen_t *s, const char *path, const char *user, char *err, size_t len)
{
    dataset_t d;
    dataset_init(&d);
    int rc = dataset_load(&d, path, err, len);
    size_t ulen = strlen(user);
    for (size_t i = 0; rc == 0 && i < d.n; i++) {
        const lrn_id_t *u = &d.users[d.ev[i].user], *it = &d.items[d.ev[i].item];
        if (u->len == ulen && memcmp(u->id, user, ulen) == 0 &&
            seen_add(s, it->id, it->len) < 0) {
            snprintf(err, len, "out of memory");
            rc = -1;
        }
    }
    dataset_free(&d);
    return rc;
}

static int by_score(const void *x, const void *y)
{
    const hit_t *a = x, *b = y;
    return (a->score < b->score) - (a->score > b->score);
}

int recommend_main(int argc, char **argv)
{
    const char *redis = NULL, *user = NULL, *prefix = KEYS_DEFAULT_PREFIX;
    const char *model = model_default(0)->name;
    const char *password = getenv("REDISCLI_AUTH");
    long k = 10;
    static const struct option opts[] = {{"redis", 1, 0, 'r'},    {"user", 1, 0, 'u'},
                                         {"prefix", 1, 0, 'p'},   {"model", 1, 0, 'm'},
                                         {"password", 1, 0, 'a'}, {"help", 0, 0, 'h'},
                                         {"exclude-seen", 1, 0, 'x'}, {"exclude", 1, 0, 'X'},
                                         {0, 0, 0, 0}};
    const char *seen_files[16];
    int nseen_files = 0;
    seen_t seen = {0};
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            redis = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'p':
            prefix = optarg;
            break;
        case 'm':
            model = optarg;
            break;
        case 'a':
            password = optarg;
            break;
        case 'k':
            errno = 0;
            k = strtol(optarg, &end, 10);
            if (errno || *end || k < 1 || k > 100000) {
                fprintf(stderr, "freshrec recommend: -k '%s': expected 1..100000\n", optarg);
                return 2;
            }
            break;
        case 'x':
            if (nseen_files == (int)(sizeof(seen_files) / sizeof(seen_files[0]))) {
                fprintf(stderr, "freshrec recommend: at most 16 --exclude-seen files\n");
                seen_free(&seen);
                return 2;
            }
            seen_files[nseen_files++] = optarg;
            break;
        case 'X':
            if (seen_list(&seen, optarg) < 0) {
                fprintf(stderr, "freshrec recommend: out of memory\n");
                seen_free(&seen);
                return 1;
            }
            break;
        case 'h':
            seen_free(&seen);
            usage(stdout);
            return 0;
        default:
            seen_free(&seen);
            usage(stderr);
            return 2;
        }
    }
    if (!redis || !user) {
        seen_free(&seen);
        fprintf(stderr, "freshrec recommend: --redis and --user are required\n");
        usage(stderr);
        return 2;
    }
    char host[256];
    int port = 6379;
    const char *colon = strrchr(redis, ':');
    if (colon) {
        snprintf(host, sizeof(host), "%.*s", (int)(colon - redis), redis);
        port = atoi(colon + 1);
    } else {
        snprintf(host, sizeof(host), "%s", redis);
    }
    /* before Redis: a file that cannot be read is a usage error */
    for (int i = 0; i < nseen_files; i++) {
        char err[512];
        if (seen_file(&seen, seen_files[i], user, err, sizeof(err)) < 0) {
            fprintf(stderr, "freshrec recommend: --exclude-seen: %s\n", err);
            seen_free(&seen);
            return 2;
        }
    }
    if (seen.n)
        qsort(seen.ids, seen.n, sizeof(char *), by_str);
    kern_set_threads(1);
    int rc = 1;
    size_t excluded = 0;
    float *P = NULL, *Q = NULL, *x = NULL, *dense = NULL, *scores = NULL;
    hit_t *hits = NULL;
    size_t nitems = 0, cap = 0;
    redisReply *r = NULL;
    struct timeval tv = {2, 0};
    redisContext *rc_ = redisConnectWithTimeout(host, port, tv);
    if (!rc_ || rc_->err) {
        fprintf(stderr, "freshrec recommend: cannot connect to %s:%d: %s\n", host, port,
                rc_ ? rc_->errstr : "out of memory");
        goto out;
    }
    if (password && *password) {
        r = redisCommand(rc_, "AUTH %s", password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "freshrec recommend: AUTH refused\n");
            goto out;
        }
        freeReplyObject(r);
    }
    char key[600];
    keys_meta(key, sizeof(key), prefix, model);
    r = redisCommand(rc_, "HGETALL %s", key);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        fprintf(stderr, "freshrec recommend: no model metadata at %s (is freshrecd publishing?)\n",
                key);
        goto out;
    }
    int dim = 0, glo = -1, ghi = -1, tlo = -1, thi = -1;
    long wout = -1;
    size_t ndense = 0;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *f = r->element[i]->str;
        redisReply *v = r->element[i + 1];
        if (!strcmp(f, "dim"))
            dim = atoi(v->str);
        else if (!strcmp(f, "layout")) {
            layout_range(v->str, "gmf", &glo, &ghi);
            layout_range(v->str, "tower", &tlo, &thi);
        }
        else if (!strcmp(f, "dense_layout"))
            wout = dense_offset(v->str, "wout");
        else if (!strcmp(f, "dense") && v->len % 4 == 0 && v->len) {
            ndense = v->len / 4;
            dense = malloc(v->len);
            if (dense)
                keys_f32le_decode(dense, (const unsigned char *)v->str, ndense);
        }
    }
    freeReplyObject(r);
    r = NULL;
    int dssm = tlo == 0 && thi == dim && dim > 0; /* normalised towers: score = u · q */
    if (!dssm && (dim < 1 || glo < 0 || ghi > dim || glo >= ghi || !dense || wout < 0 ||
                  (size_t)(wout + (ghi - glo)) > ndense)) {
        fprintf(stderr, "freshrec recommend: the metadata at %s does not describe a NeuMF or "
                        "DSSM model this tool can score\n", key);
        goto out;
    }
    /* x = wout[gmf] ⊙ p_u[gmf], zero elsewhere: score = Q · x */
    keys_vector(key, sizeof(key), prefix, model, 'u', user, strlen(user));
    r = redisCommand(rc_, "GET %s", key);
    if (!r || r->type != REDIS_REPLY_STRING || r->len != 4 * (size_t)dim) {
        fprintf(stderr, "freshrec recommend: no vector for user '%s' at %s\n", user, key);
        goto out;
    }
    P = malloc(sizeof(float) * dim);
    x = calloc((size_t)dim, sizeof(float));
    if (!P || !x)
        goto oom;
    keys_f32le_decode(P, (const unsigned char *)r->str, (size_t)dim);
    freeReplyObject(r);
    r = NULL;
    if (dssm)
        memcpy(x, P, sizeof(float) * dim);
    else
        for (int f = glo; f < ghi; f++)
            x[f] = dense[wout + (f - glo)] * P[f];

    /* every item vector: SCAN for the keys, MGET them a page at a time */
    char pattern[600];
    keys_pattern(pattern, sizeof(pattern), prefix, model, 'i');
    size_t plen = strlen(pattern) - 1; /* the id follows the pattern without its '*' */
    char cursor[32] = "0";
    do {
        r = redisCommand(rc_, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            fprintf(stderr, "freshrec recommend: SCAN failed\n");
            goto out;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        if (keys->elements) {
            const char **argv_ = malloc(sizeof(char *) * (keys->elements + 1));
            size_t *argl = malloc(sizeof(size_t) * (keys->elements + 1));
            if (!argv_ || !argl) {
                free(argv_);
                free(argl);
                goto oom;
            }
            argv_[0] = "MGET";
            argl[0] = 4;
            for (size_t i = 0; i < keys->elements; i++) {
                argv_[i + 1] = keys->element[i]->str;
                argl[i + 1] = keys->element[i]->len;
            }
            redisReply *vals =
                redisCommandArgv(rc_, (int)keys->elements + 1, argv_, argl);
            free(argv_);
            free(argl);
            if (!vals || vals->type != REDIS_REPLY_ARRAY) {
                if (vals)
                    freeReplyObject(vals);
                fprintf(stderr, "freshrec recommend: MGET failed\n");
                goto out;
            }
            for (size_t i = 0; i < vals->elements; i++) {
                redisReply *v = vals->element[i];
                if (v->type != REDIS_REPLY_STRING || v->len != 4 * (size_t)dim)
                    continue; /* expired between SCAN and MGET, or not a vector */
                if (seen_has(&seen, keys->element[i]->str + plen)) {
                    excluded++;
                    continue;
                }
                if (nitems == cap) {
                    size_t nc = cap ? cap * 2 : 1024;
                    float *q = realloc(Q, nc * dim * sizeof(float));
                    hit_t *h = realloc(hits, nc * sizeof(hit_t));
                    if (q)
                        Q = q;
                    if (h)
                        hits = h;
                    if (!q || !h) {
                        freeReplyObject(vals);
                        goto oom;
                    }
                    cap = nc;
                }
                keys_f32le_decode(Q + nitems * dim, (const unsigned char *)v->str, (size_t)dim);
                hits[nitems].id = strdup(keys->element[i]->str + plen);
                nitems++;
            }
            freeReplyObject(vals);
        }
        freeReplyObject(r);
        r = NULL;
    } while (strcmp(cursor, "0") != 0);
    if (nitems == 0) {
        if (excluded)
            fprintf(stderr, "freshrec recommend: every one of the %zu item vectors under %s "
                            "is excluded as seen\n", excluded, pattern);
        else
            fprintf(stderr, "freshrec recommend: no item vectors under %s\n", pattern);
        goto out;
    }
    scores = malloc(sizeof(float) * nitems);
    if (!scores)
        goto oom;
    kern_gemv(scores, Q, x, (int)nitems, dim);
    for (size_t i = 0; i < nitems; i++)
        hits[i].score = scores[i];
    qsort(hits, nitems, sizeof(hit_t), by_score);
    printf("top %ld of %zu items for user %s (retrieval score: %s",
           k < (long)nitems ? k : (long)nitems, nitems, user,
           dssm ? "cosine of DSSM towers" : "GMF term of NeuMF");
    if (nseen_files || seen.n)
        printf("; %zu seen excluded", excluded);
    printf(")\n");
    for (long i = 0; i < k && (size_t)i < nitems; i++)
        printf("%3ld  %-24s %.5f\n", i + 1, hits[i].id ? hits[i].id : "?", hits[i].score);
    rc = 0;
    goto out;
oom:
    fprintf(stderr, "freshrec recommend: out of memory\n");
out:
    if (r)
        freeReplyObject(r);
    if (rc_)
        redisFree(rc_);
    for (size_t i = 0; i < nitems; i++)
        free(hits[i].id);
    free(hits);
    free(P);
    free(Q);
    free(x);
    free(dense);
    free(scores);
    seen_free(&seen);
    return rc;
}
