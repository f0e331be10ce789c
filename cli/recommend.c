/* recommend.c — `freshrec recommend`: what a product service does for the
 * first (retrieval) stage. Reads the model's meta hash, the user's vector and
 * every item vector from Redis, and prints the top k items by the model's
 * retrieval score, computed with one gemv (cblas).
 *
 * For NeuMF the retrieval score is the GMF term of the logit,
 * Σ_f wout_f · p_u,f · q_i,f: the part of the model that factorises into
 * user and item vectors (the MLP tower is for the ranking stage). For DSSM
 * the vectors are the towers' normalised outputs and the score is their dot
 * product, the cosine. For MF and history MF (no dense weights, no GMF
 * range) the dot product of the vectors is the model's whole score.
 *
 * Redis holds vectors, not history, so what the user has already seen comes
 * from the caller: --exclude-seen FILE reads the user's interactions from a
 * file in the format `freshrec train --data` reads (the same log the model
 * was trained or replayed from), and --exclude takes ids on the command line.
 * Excluded items are dropped before the top k is taken, so k items are
 * printed whenever the catalogue has k unseen ones.
 *
 * A Redis Cluster node given as --redis (INFO says cluster_enabled:1) is
 * read as a cluster: the slot map from CLUSTER SLOTS, each key from the
 * master of its slot, the item vectors SCANned on each master. Versioned
 * values (several members: the meta hash's version_bytes) are read without
 * their trailer. */
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
               "Prints the user's top N items by the model's retrieval score, from Redis\n"
               "(or from a Redis Cluster, when HOST:PORT is one of its nodes).\n"
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
        if (u->len == ulen && memcmp(u->id, user, ulen) == 0 && seen_add(s, it->id, it->len) < 0) {
            snprintf(err, len, "out of memory");
            rc = -1;
        }
    }
    dataset_free(&d);
    return rc;
}

static int by_score(const void *x, const void *y)
{
    const hit_t *a = x, *b = y; /* equal scores by id: the same order however read */
    int c = (a->score < b->score) - (a->score > b->score);
    return c ? c : strcmp(a->id ? a->id : "", b->id ? b->id : "");
}

/* The command line. */
typedef struct {
    const char *redis, *user, *prefix, *model, *password;
    long k;
    const char *seen_files[16];
    int nseen_files;
    seen_t seen; /* --exclude ids, then the --exclude-seen files' */
} rec_args_t;

/* -1: go on; else the exit status. */
static int parse_args(rec_args_t *a, int argc, char **argv)
{
    static const struct option opts[] = {
        {"redis", 1, 0, 'r'},        {"user", 1, 0, 'u'},     {"prefix", 1, 0, 'p'},
        {"model", 1, 0, 'm'},        {"password", 1, 0, 'a'}, {"help", 0, 0, 'h'},
        {"exclude-seen", 1, 0, 'x'}, {"exclude", 1, 0, 'X'},  {0, 0, 0, 0}};
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            a->redis = optarg;
            break;
        case 'u':
            a->user = optarg;
            break;
        case 'p':
            a->prefix = optarg;
            break;
        case 'm':
            a->model = optarg;
            break;
        case 'a':
            a->password = optarg;
            break;
        case 'k':
            errno = 0;
            a->k = strtol(optarg, &end, 10);
            if (errno || *end || a->k < 1 || a->k > 100000) {
                fprintf(stderr, "freshrec recommend: -k '%s': expected 1..100000\n", optarg);
                return 2;
            }
            break;
        case 'x':
            if (a->nseen_files == (int)(sizeof(a->seen_files) / sizeof(a->seen_files[0]))) {
                fprintf(stderr, "freshrec recommend: at most 16 --exclude-seen files\n");
                return 2;
            }
            a->seen_files[a->nseen_files++] = optarg;
            break;
        case 'X':
            if (seen_list(&a->seen, optarg) < 0) {
                fprintf(stderr, "freshrec recommend: out of memory\n");
                return 1;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!a->redis || !a->user) {
        fprintf(stderr, "freshrec recommend: --redis and --user are required\n");
        usage(stderr);
        return 2;
    }
    /* before Redis: a file that cannot be read is a usage error */
    for (int i = 0; i < a->nseen_files; i++) {
        char err[512];
        if (seen_file(&a->seen, a->seen_files[i], a->user, err, sizeof(err)) < 0) {
            fprintf(stderr, "freshrec recommend: --exclude-seen: %s\n", err);
            return 2;
        }
    }
    if (a->seen.n)
        qsort(a->seen.ids, a->seen.n, sizeof(char *), by_str);
    return -1;
}

/* Where the keys are: one Redis, or the masters of a cluster */
#define MAX_NODES 64
typedef struct {
    redisContext *c[MAX_NODES]; /* [0]: --redis; then a cluster's masters, connected when needed */
    char addr[MAX_NODES][280];
    int n, cluster;
    uint16_t *slot; /* a cluster: each slot's node */
    const char *password;
} where_t;

static redisContext *connect_redis(const char *addr, const char *password);

static void where_close(where_t *w)
{
    for (int i = 0; i < w->n; i++)
        if (w->c[i])
            redisFree(w->c[i]);
    free(w->slot);
}

/* node index of host:port, added when new; -1 when there is no room */
static int where_node(where_t *w, const char *host, size_t hl, long long port)
{
    char a[280];
    snprintf(a, sizeof(a), "%.*s:%lld", (int)(hl < 256 ? hl : 256), host, port);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->addr[i], a))
            return i;
    if (w->n == MAX_NODES)
        return -1;
    snprintf(w->addr[w->n], sizeof(w->addr[0]), "%s", a);
    w->c[w->n] = NULL;
    return w->n++;
}

/* Connects to --redis; a cluster node: reads the slot map. 0, or -1 after a
 * message. */
static int where_open(where_t *w, const char *addr, const char *password)
{
    *w = (where_t){.n = 1, .password = password};
    snprintf(w->addr[0], sizeof(w->addr[0]), "%s", addr);
    if (!(w->c[0] = connect_redis(addr, password)))
        return -1;
    redisReply *r = redisCommand(w->c[0], "INFO cluster");
    w->cluster = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_enabled:1");
    if (r)
        freeReplyObject(r);
    if (!w->cluster)
        return 0;
    if (!(w->slot = malloc(sizeof(uint16_t) * KEYS_SLOTS))) {
        fprintf(stderr, "freshrec recommend: out of memory\n");
        return -1;
    }
    for (int s = 0; s < KEYS_SLOTS; s++)
        w->slot[s] = 0xffff;
    r = redisCommand(w->c[0], "CLUSTER SLOTS");
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        redisReply *m = e->element[2];
        /* a node that does not know its own address: the host we reached */
        const char *colon = strrchr(addr, ':');
        const char *host = m->element[0]->len ? m->element[0]->str : addr;
        size_t hl = m->element[0]->len ? m->element[0]->len
                                       : (colon ? (size_t)(colon - addr) : strlen(addr));
        int node = where_node(w, host, hl, m->element[1]->integer);
        for (long long s = e->element[0]->integer; node >= 0 && s <= e->element[1]->integer; s++)
            if (s >= 0 && s < KEYS_SLOTS)
                w->slot[s] = (uint16_t)node;
    }
    if (r)
        freeReplyObject(r);
    return 0;
}

/* the link to node i, made when first needed; NULL after a message */
static redisContext *where_link(where_t *w, int i)
{
    if (!w->c[i])
        w->c[i] = connect_redis(w->addr[i], w->password);
    return w->c[i];
}

/* the link that serves key; NULL after a message */
static redisContext *where_key(where_t *w, const char *key)
{
    if (!w->cluster)
        return w->c[0];
    uint16_t node = w->slot[keys_slot(key, strlen(key))];
    if (node == 0xffff) {
        fprintf(stderr, "freshrec recommend: no master serves the slot of %s\n", key);
        return NULL;
    }
    return where_link(w, node);
}

/* HOST[:PORT], authenticated when a password is given; NULL after a message. */
static redisContext *connect_redis(const char *addr, const char *password)
{
    char host[256];
    int port = 6379;
    const char *colon = strrchr(addr, ':');
    if (colon) {
        snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
        port = atoi(colon + 1);
    } else {
        snprintf(host, sizeof(host), "%s", addr);
    }
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        fprintf(stderr, "freshrec recommend: cannot connect to %s:%d: %s\n", host, port,
                c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    if (password && *password) {
        redisReply *r = redisCommand(c, "AUTH %s", password);
        int refused = !r || r->type == REDIS_REPLY_ERROR;
        if (r)
            freeReplyObject(r);
        if (refused) {
            fprintf(stderr, "freshrec recommend: AUTH refused\n");
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* What the model's meta hash says of its retrieval score. */
typedef struct {
    int dim;
    int cosine;   /* normalised towers (DSSM): score = u · q, the cosine */
    int dot;      /* MF, history MF: score = u · q, the logit */
    int glo, ghi; /* NeuMF: the GMF range of a vector */
    long wout;    /* NeuMF: where the output weights of the GMF range start in dense */
    float *dense; /* the dense block */
    size_t ndense;
    size_t vbytes; /* bytes after a vector's floats (versioned values: 8) */
} meta_t;

static int read_meta(redisContext *c, const char *key, meta_t *m)
{
    int tlo = -1, thi = -1, mlo = -1, mhi = -1;
    *m = (meta_t){.glo = -1, .ghi = -1, .wout = -1};
    redisReply *r = redisCommand(c, "HGETALL %s", key);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        fprintf(stderr, "freshrec recommend: no model metadata at %s (is freshrecd publishing?)\n",
                key);
        if (r)
            freeReplyObject(r);
        return -1;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *f = r->element[i]->str;
        redisReply *v = r->element[i + 1];
        if (!strcmp(f, "dim"))
            m->dim = atoi(v->str);
        else if (!strcmp(f, "layout")) {
            layout_range(v->str, "gmf", &m->glo, &m->ghi);
            layout_range(v->str, "tower", &tlo, &thi);
            layout_range(v->str, "map", &mlo, &mhi);
        } else if (!strcmp(f, "version_bytes"))
            m->vbytes = (size_t)atoi(v->str);
        else if (!strcmp(f, "dense_layout"))
            m->wout = dense_offset(v->str, "wout");
        else if (!strcmp(f, "dense") && v->len % 4 == 0 && v->len && !m->dense) {
            m->ndense = v->len / 4;
            m->dense = malloc(v->len);
            if (m->dense)
                keys_f32le_decode(m->dense, (const unsigned char *)v->str, m->ndense);
        }
    }
    freeReplyObject(r);
    m->cosine = tlo == 0 && thi == m->dim && m->dim > 0;
    /* MF and history MF: the vectors' dot product is the score; history MF
     * with its transition map publishes the map as its dense block, and its
     * term is in the vectors too ("map" part: c_u beside Mᵀ q_i) */
    m->dot = !m->cosine && m->glo < 0 && (m->ndense == 0 || mlo >= 0) && m->dim > 0;
    if (!m->cosine && !m->dot &&
        (m->dim < 1 || m->glo < 0 || m->ghi > m->dim || m->glo >= m->ghi || !m->dense ||
         m->wout < 0 || (size_t)(m->wout + (m->ghi - m->glo)) > m->ndense)) {
        fprintf(stderr,
                "freshrec recommend: the metadata at %s does not describe a NeuMF, DSSM, "
                "MF or history MF model this tool can score\n",
                key);
        return -1;
    }
    return 0;
}

/* The user's query x (dim floats): score = Q · x. For NeuMF, x = wout[gmf] ⊙
 * p_u[gmf], zero elsewhere; for DSSM, the user's tower. */
static int user_query(redisContext *c, const meta_t *m, const rec_args_t *a, float *x)
{
    char key[600];
    keys_vector(key, sizeof(key), a->prefix, a->model, 'u', a->user, strlen(a->user));
    redisReply *r = redisCommand(c, "GET %s", key);
    if (!r || r->type != REDIS_REPLY_STRING || r->len != 4 * (size_t)m->dim + m->vbytes) {
        fprintf(stderr, "freshrec recommend: no vector for user '%s' at %s\n", a->user, key);
        if (r)
            freeReplyObject(r);
        return -1;
    }
    keys_f32le_decode(x, (const unsigned char *)r->str, (size_t)m->dim);
    freeReplyObject(r);
    if (!m->cosine && !m->dot)
        for (int f = 0; f < m->dim; f++)
            x[f] = f >= m->glo && f < m->ghi ? m->dense[m->wout + (f - m->glo)] * x[f] : 0;
    return 0;
}

/* The item vectors read: Q (n, dim) and their ids. */
typedef struct {
    int dim;
    size_t vbytes; /* bytes after each vector's floats */
    float *Q;
    hit_t *hits;
    size_t n, cap;
    size_t excluded; /* left out as seen */
} items_t;

static void items_free(items_t *it)
{
    for (size_t i = 0; i < it->n; i++)
        free(it->hits[i].id);
    free(it->hits);
    free(it->Q);
}

/* One vector (its 4·dim bytes) of item id: 0, or -1 out of memory. */
static int items_add(items_t *it, const char *id, const char *vec)
{
    if (it->n == it->cap) {
        size_t nc = it->cap ? it->cap * 2 : 1024;
        float *q = realloc(it->Q, nc * it->dim * sizeof(float));
        if (q)
            it->Q = q;
        hit_t *h = realloc(it->hits, nc * sizeof(hit_t));
        if (h)
            it->hits = h;
        if (!q || !h)
            return -1;
        it->cap = nc;
    }
    keys_f32le_decode(it->Q + it->n * it->dim, (const unsigned char *)vec, (size_t)it->dim);
    it->hits[it->n].id = strdup(id);
    it->n++;
    return 0;
}

/* GETs of one SCAN page of keys (ids after plen bytes of prefix), in one
 * pipeline on the node that listed them (a cluster refuses an MGET of keys
 * of several slots); vectors of seen items are left out. 0, or -1 after a
 * message. */
static int items_page(redisContext *c, items_t *it, const redisReply *keys, size_t plen,
                      const seen_t *seen)
{
    for (size_t i = 0; i < keys->elements; i++)
        redisAppendCommand(c, "GET %b", keys->element[i]->str, keys->element[i]->len);
    int rc = 0;
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *v = NULL;
        if (redisGetReply(c, (void **)&v) != REDIS_OK || !v) {
            fprintf(stderr, "freshrec recommend: GET failed: %s\n", c->errstr);
            return -1;
        }
        const char *id = keys->element[i]->str + plen;
        if (rc < 0 || v->type != REDIS_REPLY_STRING || v->len != 4 * (size_t)it->dim + it->vbytes) {
            freeReplyObject(v); /* expired between SCAN and GET, or not a vector */
            continue;
        }
        if (seen_has(seen, id)) {
            it->excluded++;
        } else if (items_add(it, id, v->str) < 0) {
            fprintf(stderr, "freshrec recommend: out of memory\n");
            rc = -1;
        }
        freeReplyObject(v);
    }
    return rc;
}

/* Every item vector under pattern on one node: SCAN for the keys, GET them a
 * page at a time. 0, or -1 after a message. */
static int scan_items(redisContext *c, items_t *it, const char *pattern, const seen_t *seen)
{
    size_t plen = strlen(pattern) - 1; /* the id follows the pattern without its '*' */
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            fprintf(stderr, "freshrec recommend: SCAN failed\n");
            if (r)
                freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        int rc = r->element[1]->elements ? items_page(c, it, r->element[1], plen, seen) : 0;
        freeReplyObject(r);
        if (rc < 0)
            return -1;
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* Every item vector under pattern, on the one Redis or on every master of
 * the cluster. 0, or -1 after a message. */
static int read_items(where_t *w, items_t *it, const char *pattern, const seen_t *seen)
{
    for (int i = 0; i < w->n; i++) { /* a cluster: its masters (--redis among them or not) */
        int master = !w->cluster;
        for (int s = 0; !master && s < KEYS_SLOTS; s++)
            master = w->slot[s] == i;
        redisContext *c = master ? where_link(w, i) : NULL;
        if (master && (!c || scan_items(c, it, pattern, seen) < 0))
            return -1;
    }
    if (it->n == 0) {
        if (it->excluded)
            fprintf(stderr,
                    "freshrec recommend: every one of the %zu item vectors under %s "
                    "is excluded as seen\n",
                    it->excluded, pattern);
        else
            fprintf(stderr, "freshrec recommend: no item vectors under %s\n", pattern);
        return -1;
    }
    return 0;
}

/* Scores every item (one gemv) and prints the top k. */
static int print_top(items_t *it, const float *x, const meta_t *m, const rec_args_t *a)
{
    float *scores = malloc(sizeof(float) * it->n);
    if (!scores) {
        fprintf(stderr, "freshrec recommend: out of memory\n");
        return -1;
    }
    kern_gemv(scores, it->Q, x, (int)it->n, m->dim);
    for (size_t i = 0; i < it->n; i++)
        it->hits[i].score = scores[i];
    free(scores);
    qsort(it->hits, it->n, sizeof(hit_t), by_score);
    long k = a->k;
    printf("top %ld of %zu items for user %s (retrieval score: %s",
           k < (long)it->n ? k : (long)it->n, it->n, a->user,
           m->cosine ? "cosine of DSSM towers"
           : m->dot  ? "dot product of the vectors"
                     : "GMF term of NeuMF");
    if (a->nseen_files || a->seen.n)
        printf("; %zu seen excluded", it->excluded);
    printf(")\n");
    for (long i = 0; i < k && (size_t)i < it->n; i++)
        printf("%3ld  %-24s %.5f\n", i + 1, it->hits[i].id ? it->hits[i].id : "?",
               it->hits[i].score);
    return 0;
}

int recommend_main(int argc, char **argv)
{
    rec_args_t a = {.prefix = KEYS_DEFAULT_PREFIX,
                    .model = model_default(0)->name,
                    .password = getenv("REDISCLI_AUTH"),
                    .k = 10};
    int rc = parse_args(&a, argc, argv);
    if (rc >= 0) {
        seen_free(&a.seen);
        return rc;
    }
    kern_set_threads(1);
    rc = 1;
    meta_t m = {0};
    items_t it = {0};
    float *x = NULL;
    char key[600];
    where_t w;
    redisContext *c;
    if (where_open(&w, a.redis, a.password) < 0)
        goto out;
    keys_meta(key, sizeof(key), a.prefix, a.model);
    if (!(c = where_key(&w, key)) || read_meta(c, key, &m) < 0)
        goto out;
    it.dim = m.dim;
    it.vbytes = m.vbytes;
    if (!(x = calloc((size_t)m.dim, sizeof(float)))) {
        fprintf(stderr, "freshrec recommend: out of memory\n");
        goto out;
    }
    keys_vector(key, sizeof(key), a.prefix, a.model, 'u', a.user, strlen(a.user));
    if (!(c = where_key(&w, key)) || user_query(c, &m, &a, x) < 0)
        goto out;
    keys_pattern(key, sizeof(key), a.prefix, a.model, 'i');
    if (read_items(&w, &it, key, &a.seen) < 0 || print_top(&it, x, &m, &a) < 0)
        goto out;
    rc = 0;
out:
    where_close(&w);
    items_free(&it);
    free(m.dense);
    free(x);
    seen_free(&a.seen);
    return rc;
}
