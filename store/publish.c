/* publish.c — hiredis async publisher on the libevent loop (see publish.h).
 *
 * One round at a time. Every command of a round carries a reference to its
 * key and its bytes (RESP, kept in the round until it is done, so that a
 * redirected command can be sent again); the round is finished when the
 * last reply (or the NULL reply hiredis gives on disconnect) has come back.
 * Never frees a context inside its own callbacks: a failed link is dropped
 * from a timer.
 *
 * Links: one to the configured Redis; with cfg.cluster, one per node of
 * Redis Cluster's slot map (CLUSTER SLOTS, asked on the first link up and
 * again after a redirection or a node lost), each master's made when a map
 * names it, and one to each node a redirection names, when it does. A
 * command goes to the link of its key's slot (keys_slot). */
#define _POSIX_C_SOURCE 200809L
#include "publish.h"

#include "keys.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct round round_t;
typedef struct link link_t;

typedef struct {
    round_t *r;
    char side;      /* 'u', 'i' (SET), 'U', 'I' (DEL), 'z', 'Z' (the item index's ZADD, ZREM),
                     * or 0 (the meta hash, the index's pruning) */
    uint8_t tries;  /* sends after the first (redirections, TRYAGAIN) */
    uint8_t asking; /* cluster: the next send goes to *to after ASKING */
    uint16_t slot;  /* cluster: its key's slot */
    uint32_t len;
    size_t off;  /* the id's place in the round's ids, while the round is built */
    char *id;    /* then the id itself (NUL-terminated) */
    size_t coff; /* the command's bytes in the round's cmd */
    size_t clen;
    link_t *to; /* the link it was last sent on (or is to go to, asking) */
} keyref_t;

struct round {
    keyref_t *keys;
    keyref_t meta;     /* the meta hash's reply */
    keyref_t index[3]; /* the item index's ZADD, ZREM and pruning replies */
    char *ids;         /* every key's id, one buffer */
    size_t ids_len, ids_cap;
    char *cmd; /* every command, RESP, one buffer */
    size_t cmd_len, cmd_cap;
    keyref_t **later; /* TRYAGAIN: sent again from a timer */
    size_t nlater, later_cap;
    size_t n, cap, outstanding, bytes;
    size_t confirmed; /* writes Redis took: one is an acknowledgement */
    int dim, failed;
    int heartbeat; /* only the meta hash's alive_ms */
    int queuing;   /* pub_end or pub_heartbeat at work: not finished meanwhile */
    double t0;
};

struct link {
    pub_t *p;
    char *host;
    int port;
    redisAsyncContext *ac;
    int connected;
    struct event *retry_ev;
    int backoff_ms;
    pub_node_t fig; /* figures: pub_nodes */
};

/* redirections a command follows before it is handed back */
#define MAX_TRIES 5
#define NO_LINK 0xffff

struct pub {
    struct event_base *base;
    pub_config_t cfg;
    char *host, *password, *prefix, *model;
    link_t **links; /* [0]: the configured address */
    int nlinks;
    uint16_t *slot_link; /* cluster: the link of each slot, NO_LINK when none */
    int have_map;        /* cluster: a slot map was read */
    int map_asked;       /* cluster: a CLUSTER SLOTS is on its way */
    link_t *map_link;    /* ... on this link */
    int map_next;        /* the link to ask first next time */
    int closing;
    struct event *timeout_ev, *drop_ev, *refresh_ev, *later_ev, *map_timeout_ev;
    round_t *cur;
    int building;
    uint64_t version;
    double ack_t;   /* mono_s of the last acknowledgement (of pub_create before one) */
    double wait_t0; /* mono_s since which writes wait unconfirmed; 0: none */
    pub_fail_fn on_fail;
    pub_done_fn on_done;
    pub_empty_fn on_empty;
    void *arg;
    unsigned char *vbuf;
    size_t vcap;
    uint64_t position; /* versioned: the model-log position of the next rounds */
    uint64_t refused_older;
    int script_reload; /* a SCRIPT LOAD after NOSCRIPT is on its way */
};

/* Versioned writes (pub_config_t.versioned). The scripts are loaded on each
 * link before any round and called by their SHA-1, which a test checks
 * against the one Redis computes. Positions compare as numbers (Lua's are
 * doubles: exact below 2^53). */
static const char set_script[] =
    "local cur = redis.call('GETRANGE', KEYS[1], -8, -1)\n"
    "local new = ARGV[1]\n"
    "if #cur == 8 and #new >= 8 then\n"
    "  local a, b = 0, 0\n"
    "  for i = 1, 8 do\n"
    "    a = a * 256 + string.byte(cur, i)\n"
    "    b = b * 256 + string.byte(new, #new - 8 + i)\n"
    "  end\n"
    "  if a > b then return 0 end\n"
    "end\n"
    "if ARGV[2] ~= '0' then redis.call('SET', KEYS[1], new, 'EX', ARGV[2]) else "
    "redis.call('SET', KEYS[1], new) end\n"
    "return 1";
static const char set_sha[] = "f7873dd522b79c3891be2f0d051c908e8898f8af";
static const char meta_script[] = "local cur = redis.call('HGET', KEYS[1], 'log_position')\n"
                                  "if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end\n"
                                  "redis.call('HSET', KEYS[1], unpack(ARGV, 2))\n"
                                  "return 1";
static const char meta_sha[] = "33e2038142ac11ba5981b8ac5a195591df4933e5";

const char *pub_script_sha(int which, const char **script)
{
    *script = which ? meta_script : set_script;
    return which ? meta_sha : set_sha;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------ links */

static void connect_link(link_t *l);
static void ask_map(pub_t *p);
static void schedule_refresh(pub_t *p);

static void schedule_retry(link_t *l)
{
    pub_t *p = l->p;
    if (p->closing)
        return;
    struct timeval tv = {l->backoff_ms / 1000, (l->backoff_ms % 1000) * 1000};
    evtimer_add(l->retry_ev, &tv);
    l->backoff_ms *= 2;
    if (l->backoff_ms > p->cfg.reconnect_max_ms)
        l->backoff_ms = p->cfg.reconnect_max_ms;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_link(arg);
}

static void on_zero_lost(redisAsyncContext *ac, void *reply, void *priv);

/* A context's end (a failed connect, a disconnect): the link forgets it,
 * unless it holds a newer one already (made while this one was freed) */
static void link_lost(link_t *l, const redisAsyncContext *ac)
{
    if (l->ac != ac)
        return;
    l->ac = NULL;
    l->connected = 0;
    schedule_retry(l);
    if (l->p->cfg.cluster)
        schedule_refresh(l->p);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    link_t *l = ac->data;
    if (status != REDIS_OK) { /* hiredis frees the context after this callback */
        link_lost(l, ac);
        return;
    }
    if (l->ac != ac)
        return;
    l->connected = 1;
    l->backoff_ms = 100;
    if (l->p->cfg.cluster && !l->p->have_map)
        ask_map(l->p);
    /* a cluster master with no key at all lost what was published (an empty
     * replica promoted, a FLUSHALL): the daemon writes everything again */
    if (l->p->cfg.cluster && l->fig.master)
        redisAsyncCommand(l->ac, on_zero_lost, l->p, "DBSIZE");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    link_lost(ac->data, ac);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    pub_t *p = priv;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "error redis: AUTH refused: %.*s\n", (int)r->len, r->str);
        /* dropped from a timer: not inside hiredis's own callback */
        struct timeval now = {0, 0};
        evtimer_add(p->drop_ev, &now);
    }
}

/* SCRIPT LOAD's answer: the SHA-1 the versioned writes call it by */
static void on_script(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    const char *want = priv;
    redisReply *r = reply;
    if (r && (r->type != REDIS_REPLY_STRING || r->len != 40 || memcmp(r->str, want, 40) != 0))
        fprintf(stderr, "error redis: SCRIPT LOAD answered %.*s, not %s: versioned writes fail\n",
                r->str ? (int)r->len : 0, r->str ? r->str : "", want);
}

static void load_scripts(pub_t *p, link_t *l)
{
    if (!p->cfg.versioned || !l->ac)
        return;
    redisAsyncCommand(l->ac, on_script, (void *)set_sha, "SCRIPT LOAD %s", set_script);
    redisAsyncCommand(l->ac, on_script, (void *)meta_sha, "SCRIPT LOAD %s", meta_script);
}

/* The answer to EXISTS of the meta hash (on each new link to a single
 * Redis, after AUTH; after each slot map read from a cluster) or to DBSIZE
 * (each new link to a cluster master): 0 means Redis lost what was
 * published, and the daemon is told */
static void on_zero_lost(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    pub_t *p = priv;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0 && p->on_empty && !p->closing)
        p->on_empty(p->arg);
}

static void ask_meta_exists(pub_t *p, link_t *l)
{
    char key[512];
    size_t kl = keys_meta(key, sizeof(key), p->prefix, p->model);
    const char *argv[] = {"EXISTS", key};
    size_t argl[] = {6, kl};
    if (kl && l && l->ac)
        redisAsyncCommandArgv(l->ac, on_zero_lost, p, 2, argv, argl);
}

static void connect_link(link_t *l)
{
    pub_t *p = l->p;
    if (p->closing || l->ac)
        return;
    evtimer_del(l->retry_ev);
    redisAsyncContext *ac = redisAsyncConnect(l->host, l->port);
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(l);
        return;
    }
    ac->data = l;
    if (redisLibeventAttach(ac, p->base) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_retry(l);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    l->ac = ac;
    l->fig.connects++;
    if (p->password && *p->password)
        redisAsyncCommand(ac, on_auth, p, "AUTH %s", p->password);
    load_scripts(p, l);  /* before any round's commands */
    if (!p->cfg.cluster) /* before any round's commands: Redis as the link found it */
        ask_meta_exists(p, l);
}

/* The link made now, unless it waits to be made again (its backoff) */
static void ensure_link(link_t *l)
{
    if (!l->ac && !evtimer_pending(l->retry_ev, NULL))
        connect_link(l);
}

static link_t *link_new(pub_t *p, const char *host, int port)
{
    link_t **ls = realloc(p->links, sizeof(link_t *) * (size_t)(p->nlinks + 1));
    if (!ls)
        return NULL;
    p->links = ls;
    link_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->p = p;
    l->host = strdup(host);
    l->port = port;
    l->backoff_ms = 100;
    l->retry_ev = evtimer_new(p->base, on_retry, l);
    if (!l->host || !l->retry_ev) {
        free(l->host);
        if (l->retry_ev)
            event_free(l->retry_ev);
        free(l);
        return NULL;
    }
    snprintf(l->fig.addr, sizeof(l->fig.addr), "%s:%d", host, port);
    ls[p->nlinks++] = l;
    return l;
}

/* The link to host:port, made when there is none; NULL when out of memory */
static link_t *link_to(pub_t *p, const char *host, size_t hl, int port)
{
    char h[256];
    if (hl == 0) /* a node that does not know its own address: the one we reached */
        hl = strlen(p->host), host = p->host;
    if (hl >= sizeof(h))
        return NULL;
    memcpy(h, host, hl);
    h[hl] = '\0';
    for (int i = 0; i < p->nlinks; i++)
        if (p->links[i]->port == port && strcmp(p->links[i]->host, h) == 0)
            return p->links[i];
    return link_new(p, h, port);
}

static void drop_link(link_t *l)
{
    if (l->ac) {
        redisAsyncContext *ac = l->ac;
        l->ac = NULL;
        l->connected = 0;
        /* fires every pending reply callback with NULL, then on_disconnect
         * (which leaves the link alone: it no longer holds ac) */
        redisAsyncFree(ac);
        if (!l->ac) /* made again later; not now, unless a callback just did */
            schedule_retry(l);
        if (l->p->cfg.cluster)
            schedule_refresh(l->p);
    }
}

static void drop_links(pub_t *p)
{
    for (int i = 0; i < p->nlinks; i++)
        drop_link(p->links[i]);
}

static void on_drop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drop_links(arg);
}

/* ------------------------------------------------------------ the slot map */

/* CLUSTER SLOTS: [[first, last, [host, port, id], replica...], ...]. A
 * reply that is not a map leaves the one held. */
static void on_slots(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    pub_t *p = priv;
    redisReply *r = reply;
    p->map_asked = 0;
    p->map_link = NULL;
    evtimer_del(p->map_timeout_ev);
    if (p->closing)
        return;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        if (r && r->type == REDIS_REPLY_ERROR)
            fprintf(stderr, "error redis: CLUSTER SLOTS: %.*s (is [redis] cluster right?)\n",
                    (int)r->len, r->str);
        schedule_refresh(p);
        return;
    }
    for (size_t s = 0; s < KEYS_SLOTS; s++)
        p->slot_link[s] = NO_LINK;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2)
            continue;
        redisReply *m = e->element[2];
        if (m->element[0]->type != REDIS_REPLY_STRING || m->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        link_t *l = link_to(p, m->element[0]->str, m->element[0]->len, (int)m->element[1]->integer);
        if (!l)
            continue;
        int li = 0;
        while (p->links[li] != l)
            li++;
        for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++)
            if (s >= 0 && s < KEYS_SLOTS)
                p->slot_link[s] = (uint16_t)li;
    }
    p->have_map = 1;
    for (int i = 0; i < p->nlinks; i++)
        p->links[i]->fig.master = 0;
    for (size_t s = 0; s < KEYS_SLOTS; s++)
        if (p->slot_link[s] != NO_LINK)
            p->links[p->slot_link[s]]->fig.master = 1;
    for (int i = 0; i < p->nlinks; i++) /* every master's link, made now: its slots are served */
        if (p->links[i]->fig.master)
            ensure_link(p->links[i]);
    char key[512];
    size_t kl = keys_meta(key, sizeof(key), p->prefix, p->model);
    uint16_t ml = p->slot_link[keys_slot(key, kl)];
    if (ml != NO_LINK) {
        ensure_link(p->links[ml]);
        ask_meta_exists(p, p->links[ml]);
    }
}

/* CLUSTER SLOTS on a connected link, each in turn (a node that never
 * answers is not the only one asked); with none connected, the links are
 * made (backoff permitting) and the first one up asks. A map not read in 2 s
 * is asked again elsewhere, its link dropped. */
static void ask_map(pub_t *p)
{
    if (!p->cfg.cluster || p->map_asked || p->closing)
        return;
    for (int k = 0; k < p->nlinks; k++) {
        int i = (p->map_next + k) % p->nlinks;
        link_t *l = p->links[i];
        if (!l->ac || !l->connected)
            continue;
        p->map_next = i + 1;
        if (redisAsyncCommand(l->ac, on_slots, p, "CLUSTER SLOTS") != REDIS_OK) {
            schedule_refresh(p);
            return;
        }
        p->map_asked = 1;
        p->map_link = l;
        struct timeval tv = {2, 0};
        evtimer_add(p->map_timeout_ev, &tv);
        return;
    }
    for (int i = 0; i < p->nlinks; i++)
        ensure_link(p->links[i]);
    if (!p->have_map) /* the first link up asks; until then the map waits */
        return;
    schedule_refresh(p);
}

static void on_map_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pub_t *p = arg;
    if (!p->map_asked || !p->map_link)
        return;
    fprintf(stderr, "warn redis: %s did not answer CLUSTER SLOTS in 2 s; asking another node\n",
            p->map_link->fig.addr);
    p->map_asked = 0;
    drop_link(p->map_link); /* its reply, NULL, has the map asked again */
    schedule_refresh(p);
}

static void on_refresh(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ask_map(arg);
}

/* the map read again soon (once for a burst of redirections) */
static void schedule_refresh(pub_t *p)
{
    if (p->closing || evtimer_pending(p->refresh_ev, NULL))
        return;
    struct timeval tv = {0, 100000};
    evtimer_add(p->refresh_ev, &tv);
}

/* The link a command of this slot goes to, connecting it when it never was
 * (or not while it waits to reconnect); NULL when none */
static link_t *route(pub_t *p, unsigned slot)
{
    link_t *l = p->links[0];
    if (p->cfg.cluster) {
        if (!p->have_map || p->slot_link[slot] == NO_LINK)
            return NULL;
        l = p->links[p->slot_link[slot]];
    }
    ensure_link(l);
    return l->ac ? l : NULL;
}

/* ------------------------------------------------------------ rounds */

static void round_free(round_t *r)
{
    free(r->ids);
    free(r->keys);
    free(r->cmd);
    free(r->later);
    free(r);
}

static void finish_round(pub_t *p, round_t *r)
{
    evtimer_del(p->timeout_ev);
    evtimer_del(p->later_ev);
    /* Redis took a write: it makes progress, even if it refused another (a
     * key it will never take must not make it look unreachable) */
    if (r->confirmed) {
        p->ack_t = mono_s();
        p->wait_t0 = 0;
    }
    double dt = mono_s() - r->t0;
    for (int i = 0; i < p->nlinks; i++)
        p->links[i]->fig.in_round = 0;
    if (p->cur == r)
        p->cur = NULL;
    if (p->on_done)
        p->on_done(p->arg, !r->failed, r->n, r->bytes, dt);
    round_free(r);
}

/* The item index's ZADD (side 'i') or ZREM ('I') failed: each of its ids
 * goes back to the daemon, which writes it (and its index entry) again. */
static void index_failed(pub_t *p, round_t *r, char side)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->keys[i].side == side)
            p->on_fail(p->arg, side, r->keys[i].id, r->keys[i].len);
}

/* A command not written: its keys go back to the daemon */
static void key_failed(pub_t *p, round_t *r, keyref_t *k)
{
    r->failed = 1;
    if (!p->on_fail)
        return;
    if (k->side == 'z' || k->side == 'Z') /* the index: its ids are written again */
        index_failed(p, r, k->side == 'z' ? 'i' : 'I');
    else if (k->side)
        p->on_fail(p->arg, k->side, k->id, k->len);
}

/* A command refused at once (no link, hiredis refused it): failed, and the
 * round finished when it was the last (not while pub_end queues: it counts
 * its commands out in advance) */
static void cmd_failed(pub_t *p, round_t *r, keyref_t *k)
{
    key_failed(p, r, k);
    if (--r->outstanding == 0 && !r->queuing)
        finish_round(p, r);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

/* Sends k's command on link l, or on the link of its slot (l NULL) */
static void send_cmd(pub_t *p, round_t *r, keyref_t *k, link_t *l)
{
    if (!l)
        l = route(p, k->slot);
    if (!l || !l->ac) { /* no master known for the slot, or its link down: who has it now? */
        if (l)
            l->fig.errors++;
        if (p->cfg.cluster)
            schedule_refresh(p);
        cmd_failed(p, r, k);
        return;
    }
    if (k->asking) { /* the target serves this one command for a slot it is importing */
        k->asking = 0;
        redisAsyncCommand(l->ac, NULL, NULL, "ASKING");
    }
    k->to = l;
    l->fig.in_round = 1;
    if (redisAsyncFormattedCommand(l->ac, on_reply, k, r->cmd + k->coff, k->clen) != REDIS_OK)
        cmd_failed(p, r, k);
}

/* "MOVED 3999 127.0.0.1:6381" or "ASK ...": the slot and the node */
static link_t *redirect_target(pub_t *p, const redisReply *rep, int skip, long *slot)
{
    char *end;
    const char *s = rep->str + skip;
    *slot = strtol(s, &end, 10);
    if (end == s || *end != ' ' || *slot < 0 || *slot >= KEYS_SLOTS)
        return NULL;
    const char *addr = end + 1, *colon = strrchr(addr, ':');
    if (!colon)
        return NULL;
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535)
        return NULL;
    return link_to(p, addr, (size_t)(colon - addr), port);
}

static int starts(const redisReply *rep, const char *what)
{
    size_t n = strlen(what);
    return rep->len >= n && memcmp(rep->str, what, n) == 0;
}

/* Redis Cluster's answers about where a key lives: 1 when k was sent again
 * (or will be), 0 when it has failed */
static int redirected(pub_t *p, round_t *r, keyref_t *k, link_t *from, const redisReply *rep)
{
    if (p->closing || k->tries >= MAX_TRIES)
        return 0;
    long slot;
    link_t *to;
    if (starts(rep, "MOVED ") && (to = redirect_target(p, rep, 6, &slot))) {
        /* the slot lives elsewhere now: every later command of it goes there */
        from->fig.moved++;
        int li = 0;
        while (p->links[li] != to)
            li++;
        p->slot_link[slot] = (uint16_t)li;
        schedule_refresh(p);
        k->tries++;
        send_cmd(p, r, k, NULL);
        return 1;
    }
    if (starts(rep, "ASK ") && (to = redirect_target(p, rep, 4, &slot))) {
        /* the slot is moving: this key is asked of the target, once */
        from->fig.ask++;
        ensure_link(to);
        k->tries++;
        k->asking = 1;
        send_cmd(p, r, k, to);
        return 1;
    }
    if (starts(rep, "TRYAGAIN")) { /* a multi-key state mid-migration: soon again */
        from->fig.tryagain++;
        if (r->nlater == r->later_cap) {
            size_t nc = r->later_cap ? 2 * r->later_cap : 16;
            keyref_t **l = realloc(r->later, nc * sizeof(*l));
            if (!l)
                return 0;
            r->later = l;
            r->later_cap = nc;
        }
        k->tries++;
        r->later[r->nlater++] = k;
        struct timeval tv = {0, 20000};
        evtimer_add(p->later_ev, &tv);
        return 1;
    }
    if (starts(rep, "CLUSTERDOWN"))
        schedule_refresh(p);
    return 0;
}

static void on_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pub_t *p = arg;
    round_t *r = p->cur;
    if (!r)
        return;
    size_t n = r->nlater;
    r->nlater = 0;
    for (size_t i = 0; i < n && p->cur == r; i++)
        send_cmd(p, r, r->later[i], NULL);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    link_t *l = ac->data;
    pub_t *p = l->p;
    keyref_t *k = priv;
    round_t *r = k->r;
    redisReply *rep = reply;
    l->fig.round_s = mono_s() - r->t0; /* its last reply, once the round is done */
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        if (p->cfg.cluster && rep && redirected(p, r, k, l, rep))
            return;
        l->fig.errors++;
        if (!rep && p->cfg.cluster) /* a node gone: who has its slots now? */
            schedule_refresh(p);
        /* the script cache was emptied (SCRIPT FLUSH): load them again;
         * this key is written again in a later round */
        if (rep && rep->len >= 8 && memcmp(rep->str, "NOSCRIPT", 8) == 0 && !p->script_reload) {
            p->script_reload = 1;
            load_scripts(p, l);
        }
        key_failed(p, r, k);
    } else {
        r->confirmed++;
        p->script_reload = 0;
        /* a versioned write Redis refused: it holds a newer value */
        if (p->cfg.versioned && !r->heartbeat && rep->type == REDIS_REPLY_INTEGER &&
            rep->integer == 0 && (k->side == 'u' || k->side == 'i' || k == &r->meta))
            p->refused_older++;
        /* HSET counts the fields it added: alive_ms new means the hash was
         * gone (every round since the first has written it) */
        if (r->heartbeat && rep->type == REDIS_REPLY_INTEGER && rep->integer > 0 && p->on_empty &&
            !p->closing)
            p->on_empty(p->arg);
    }
    if (--r->outstanding == 0)
        finish_round(p, r);
}

static void on_round_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pub_t *p = arg;
    fprintf(stderr, "warn redis: publish round took over %d ms; reconnecting\n",
            p->cfg.round_timeout_ms);
    round_t *r = p->cur;
    if (r) { /* commands waiting to be sent again fail first: no link holds them */
        evtimer_del(p->later_ev);
        size_t n = r->nlater;
        r->nlater = 0;
        for (size_t i = 0; i < n; i++)
            key_failed(p, r, r->later[i]);
        r->outstanding -= n;
        if (r->outstanding == 0) {
            finish_round(p, r);
            return;
        }
    }
    for (int i = 0; i < p->nlinks; i++)
        if (p->links[i]->fig.in_round)
            drop_link(p->links[i]);
}

pub_t *pub_create(struct event_base *base, const pub_config_t *cfg, pub_fail_fn on_fail,
                  pub_done_fn on_done, void *arg, char *errstr, size_t len)
{
    pub_t *p = calloc(1, sizeof(*p));
    if (!p)
        goto oom;
    p->base = base;
    p->cfg = *cfg;
    p->host = strdup(cfg->host ? cfg->host : "127.0.0.1");
    p->password = strdup(cfg->password ? cfg->password : "");
    p->prefix = strdup(cfg->prefix ? cfg->prefix : KEYS_DEFAULT_PREFIX);
    p->model = strdup(cfg->model ? cfg->model : "neumf");
    p->timeout_ev = evtimer_new(base, on_round_timeout, p);
    p->drop_ev = evtimer_new(base, on_drop, p);
    p->refresh_ev = evtimer_new(base, on_refresh, p);
    p->later_ev = evtimer_new(base, on_later, p);
    p->map_timeout_ev = evtimer_new(base, on_map_timeout, p);
    if (!p->host || !p->password || !p->prefix || !p->model || !p->timeout_ev || !p->drop_ev ||
        !p->refresh_ev || !p->later_ev || !p->map_timeout_ev)
        goto oom;
    if (cfg->cluster && !(p->slot_link = malloc(sizeof(uint16_t) * KEYS_SLOTS)))
        goto oom;
    for (size_t s = 0; cfg->cluster && s < KEYS_SLOTS; s++)
        p->slot_link[s] = NO_LINK;
    if (p->cfg.reconnect_max_ms < 10)
        p->cfg.reconnect_max_ms = 10;
    if (p->cfg.round_timeout_ms < 1)
        p->cfg.round_timeout_ms = 5000;
    p->ack_t = mono_s();
    p->on_fail = on_fail;
    p->on_done = on_done;
    p->arg = arg;
    if (!link_new(p, p->host, cfg->port))
        goto oom;
    for (const char *s = cfg->cluster && cfg->nodes ? cfg->nodes : ""; *s;) {
        size_t n = strcspn(s, ",");
        const char *colon = memchr(s, ':', n);
        if (colon && !link_to(p, s, (size_t)(colon - s), atoi(colon + 1)))
            goto oom;
        s += n + (s[n] == ',');
    }
    p->cfg.nodes = NULL; /* not kept: the links are */
    connect_link(p->links[0]);
    return p;
oom:
    snprintf(errstr, len, "publisher: out of memory");
    pub_free(p);
    return NULL;
}

void pub_set_on_empty(pub_t *p, pub_empty_fn on_empty)
{
    p->on_empty = on_empty;
}

void pub_free(pub_t *p)
{
    if (!p)
        return;
    p->closing = 1;
    if (p->cur && p->building) { /* a round begun but never sent */
        round_free(p->cur);
        p->cur = NULL;
    }
    round_t *r = p->cur;
    if (r) { /* its commands waiting to be sent again: no link holds them */
        for (size_t i = 0; i < r->nlater; i++)
            key_failed(p, r, r->later[i]);
        r->outstanding -= r->nlater;
        r->nlater = 0;
        if (r->outstanding == 0)
            finish_round(p, r);
    }
    drop_links(p);
    for (int i = 0; i < p->nlinks; i++) {
        event_free(p->links[i]->retry_ev);
        free(p->links[i]->host);
        free(p->links[i]);
    }
    free(p->links);
    free(p->slot_link);
    struct event *evs[] = {p->timeout_ev, p->drop_ev, p->refresh_ev, p->later_ev,
                           p->map_timeout_ev};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i])
            event_free(evs[i]);
    free(p->host);
    free(p->password);
    free(p->prefix);
    free(p->model);
    free(p->vbuf);
    free(p);
}

int pub_connected(const pub_t *p)
{
    if (!p->cfg.cluster)
        return p->links[0]->connected;
    if (!p->have_map)
        return 0;
    for (int i = 0; i < p->nlinks; i++)
        if (p->links[i]->connected)
            return 1;
    return 0;
}

int pub_busy(const pub_t *p)
{
    return p->cur != NULL;
}

uint64_t pub_version(const pub_t *p)
{
    return p->version;
}

double pub_ack_age_s(const pub_t *p)
{
    return mono_s() - p->ack_t;
}

double pub_unconfirmed_s(const pub_t *p)
{
    return p->wait_t0 > 0 ? mono_s() - p->wait_t0 : 0.0;
}

int pub_nodes(const pub_t *p, pub_node_t *out, int max)
{
    int n = 0;
    for (int i = 0; i < p->nlinks && n < max; i++) {
        out[n] = p->links[i]->fig;
        out[n++].connected = p->links[i]->connected;
    }
    return n;
}

size_t pub_unserved_slots(const pub_t *p, unsigned *first, unsigned *last, size_t max,
                          size_t *nranges)
{
    size_t n = 0, slots = 0;
    for (unsigned s = 0; p->cfg.cluster && s < KEYS_SLOTS; s++) {
        uint16_t li = p->have_map ? p->slot_link[s] : NO_LINK;
        if (li != NO_LINK && p->links[li]->connected)
            continue;
        slots++;
        if (n > 0 && last[n - 1] + 1 == s) {
            last[n - 1] = s;
        } else if (n < max) {
            first[n] = last[n] = s;
            n++;
        }
    }
    *nranges = n;
    return slots;
}

/* A round's commands are on their way: a round not done by the timeout is
 * failed and its links re-made */
static void round_sent(pub_t *p)
{
    struct timeval tv = {p->cfg.round_timeout_ms / 1000, (p->cfg.round_timeout_ms % 1000) * 1000};
    evtimer_add(p->timeout_ev, &tv);
}

int pub_begin(pub_t *p)
{
    if (!pub_connected(p) || p->cur)
        return -1;
    round_t *r = calloc(1, sizeof(*r));
    if (!r)
        return -1;
    r->t0 = mono_s();
    p->cur = r;
    p->building = 1;
    if (p->wait_t0 == 0) /* its writes wait for Redis from now on, unless older ones do */
        p->wait_t0 = r->t0;
    return 0;
}

static keyref_t *add_ref(pub_t *p, char side, const char *id, size_t len)
{
    round_t *r = p->cur;
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 256;
        keyref_t *k = realloc(r->keys, nc * sizeof(keyref_t));
        if (!k)
            return NULL;
        r->keys = k;
        r->cap = nc;
    }
    if (r->ids_len + len + 1 > r->ids_cap) {
        size_t nc = r->ids_cap ? r->ids_cap * 2 : 65536;
        while (nc < r->ids_len + len + 1)
            nc *= 2;
        char *b = realloc(r->ids, nc);
        if (!b)
            return NULL;
        r->ids = b;
        r->ids_cap = nc;
    }
    /* the arrays may move while the round is built: refs are fixed in pub_end */
    keyref_t *k = &r->keys[r->n];
    *k = (keyref_t){.r = r, .side = side, .len = (uint32_t)len, .off = r->ids_len};
    memcpy(r->ids + r->ids_len, id, len);
    r->ids[r->ids_len + len] = '\0';
    r->ids_len += len + 1;
    r->n++;
    return k;
}

/* Commands are queued in pub_end, once the key array no longer moves. Until
 * then a round holds its vectors in one growing buffer, in key order. */
void pub_add(pub_t *p, char side, const char *id, size_t len, const float *v, int dim)
{
    if (!p->cur || !p->building)
        return;
    if (p->cur->dim && p->cur->dim != dim) /* one dim per round: the meta's */
        return;
    size_t need = (p->cur->bytes + 4 * (size_t)dim);
    if (need > p->vcap) {
        size_t nc = p->vcap ? p->vcap * 2 : 65536;
        while (nc < need)
            nc *= 2;
        unsigned char *b = realloc(p->vbuf, nc);
        if (!b) {
            if (p->on_fail)
                p->on_fail(p->arg, side, id, len);
            return;
        }
        p->vbuf = b;
        p->vcap = nc;
    }
    if (!add_ref(p, side, id, len)) {
        if (p->on_fail)
            p->on_fail(p->arg, side, id, len);
        return;
    }
    keys_f32le_encode(p->vbuf + p->cur->bytes, v, (size_t)dim);
    p->cur->bytes = need;
    p->cur->dim = dim;
}

void pub_del(pub_t *p, char side, const char *id, size_t len)
{
    if (!p->cur || !p->building)
        return;
    /* a DEL is a key with no value: side in upper case marks it */
    char del = side == 'u' ? 'U' : 'I';
    if (!add_ref(p, del, id, len) && p->on_fail)
        p->on_fail(p->arg, del, id, len);
}

/* Room for n more bytes of commands in the round; NULL when out of memory */
static char *cmd_room(round_t *r, size_t n)
{
    if (r->cmd_len + n > r->cmd_cap) {
        size_t nc = r->cmd_cap ? r->cmd_cap * 2 : 65536;
        while (nc < r->cmd_len + n)
            nc *= 2;
        char *c = realloc(r->cmd, nc);
        if (!c)
            return NULL;
        r->cmd = c;
        r->cmd_cap = nc;
    }
    return r->cmd + r->cmd_len;
}

/* The command just written at the round's cmd end (len bytes) is k's, on
 * key (kl bytes): kept and sent */
static void cmd_take(pub_t *p, round_t *r, keyref_t *k, size_t len, const char *key, size_t kl)
{
    k->coff = r->cmd_len;
    k->clen = len;
    r->cmd_len += len;
    k->slot = p->cfg.cluster ? (uint16_t)keys_slot(key, kl) : 0;
    send_cmd(p, r, k, NULL);
}

/* queues one command whose key is argv[ki] */
static void queue_cmd(pub_t *p, round_t *r, keyref_t *k, int argc, const char **argv,
                      const size_t *argl, int ki)
{
    char *c = NULL, *at;
    int len = redisFormatCommandArgv(&c, argc, argv, argl);
    if (len < 0 || !(at = cmd_room(r, (size_t)len))) {
        if (len >= 0)
            redisFreeCommand(c);
        cmd_failed(p, r, k);
        return;
    }
    memcpy(at, c, (size_t)len);
    redisFreeCommand(c);
    cmd_take(p, r, k, (size_t)len, argv[ki], argl[ki]);
}

/* "$<n>\r\n" at c (snprintf was a visible part of a round); returns its end */
static char *bulk_len(char *c, size_t n)
{
    char digits[24];
    int d = 0;
    do
        digits[d++] = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    *c++ = '$';
    while (d > 0)
        *c++ = digits[--d];
    *c++ = '\r';
    *c++ = '\n';
    return c;
}

/* The item index, <prefix>:<model>:items, a sorted set of the item ids
 * with vectors, scored by the ms of their last write: one ZADD of the round's
 * items, one ZREM of its deleted items, and with a TTL one
 * ZREMRANGEBYSCORE of the ids whose vectors have expired since. Queued after
 * the round's SETs and DELs (one connection: Redis runs them in order). Of
 * the 3 counted in r->outstanding, those not sent are taken off. */
static void queue_index(pub_t *p, round_t *r, int64_t now_ms)
{
    char key[512], score[24], cutoff[32];
    size_t kl = keys_items(key, sizeof(key), p->prefix, p->model);
    snprintf(score, sizeof(score), "%lld", (long long)now_ms);
    size_t sl = strlen(score), nset = 0, ndel = 0;
    for (size_t i = 0; i < r->n; i++) {
        nset += r->keys[i].side == 'i';
        ndel += r->keys[i].side == 'I';
    }
    size_t most = 2 * nset > ndel ? 2 * nset : ndel; /* ZADD: score and id each */
    const char **argv = malloc(sizeof(char *) * (2 + most));
    size_t *argl = malloc(sizeof(size_t) * (2 + most));
    for (int c = 0; c < 3; c++)
        r->index[c] = (keyref_t){.r = r, .side = c == 0 ? 'z' : c == 1 ? 'Z' : 0};
    if (!argv || !argl) {
        free(argv);
        free(argl);
        cmd_failed(p, r, &r->index[0]); /* the round's items are written again */
        cmd_failed(p, r, &r->index[1]);
        r->outstanding--;
        return;
    }
    for (int c = 0; c < 2; c++) {
        const char side = c == 0 ? 'i' : 'I';
        int argc = 2;
        argv[0] = c == 0 ? "ZADD" : "ZREM";
        argl[0] = 4;
        argv[1] = key;
        argl[1] = kl;
        for (size_t i = 0; i < r->n; i++) {
            if (r->keys[i].side != side)
                continue;
            if (c == 0) {
                argv[argc] = score;
                argl[argc++] = sl;
            }
            argv[argc] = r->keys[i].id;
            argl[argc++] = r->keys[i].len;
        }
        if (argc > 2)
            queue_cmd(p, r, &r->index[c], argc, argv, argl, 1);
        else
            r->outstanding--;
    }
    free(argv);
    free(argl);
    if (p->cfg.ttl_s > 0) { /* ids whose last write is older than the TTL: their vectors are gone */
        snprintf(cutoff, sizeof(cutoff), "(%lld", (long long)now_ms - 1000LL * p->cfg.ttl_s);
        const char *pargv[] = {"ZREMRANGEBYSCORE", key, "-inf", cutoff};
        size_t pargl[] = {16, kl, 4, strlen(cutoff)};
        queue_cmd(p, r, &r->index[2], 4, pargv, pargl, 1);
    } else {
        r->outstanding--;
    }
}

void pub_set_position(pub_t *p, uint64_t position)
{
    p->position = position;
}

uint64_t pub_refused_older(const pub_t *p)
{
    return p->refused_older;
}

void pub_end(pub_t *p, const pub_meta_t *meta, int64_t now_ms)
{
    round_t *r = p->cur;
    if (!r || !p->building)
        return;
    p->building = 0;
    for (size_t i = 0; i < r->n; i++) { /* the arrays no longer move */
        r->keys[i].r = r;
        r->keys[i].id = r->ids + r->keys[i].off;
    }
    if (!pub_connected(p)) { /* the link went away while the round was built */
        r->failed = 1;
        for (size_t i = 0; i < r->n; i++)
            if (p->on_fail && r->keys[i].side)
                p->on_fail(p->arg, r->keys[i].side, r->keys[i].id, r->keys[i].len);
        p->cur = NULL;
        round_free(r);
        return;
    }
    p->version++;
    r->queuing = 1;
    char key[512], ttl[32];
    snprintf(ttl, sizeof(ttl), "%d", p->cfg.ttl_s);
    const size_t vbytes = 4 * (size_t)r->dim;
    size_t off = 0;
    /* SET key vector [EX ttl], in RESP, formatted here: only the key differs
     * from one command to the next (hiredis's own formatting of argv was most
     * of the round's cost on the loop) */
    char head[96], mid[32], tail[64];
    const int ex = p->cfg.ttl_s > 0, vw = p->cfg.versioned;
    /* versioned: EVALSHA <sha> 1 key value+position ttl (0: none) */
    unsigned char trailer[8];
    for (int b = 0; b < 8; b++)
        trailer[b] = (unsigned char)(p->position >> (56 - 8 * b));
    const size_t tb = vw ? 8 : 0;
    const int hl = vw ? snprintf(head, sizeof(head),
                                 "*6\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$1\r\n1\r\n", set_sha)
                      : snprintf(head, sizeof(head), "*%d\r\n$3\r\nSET\r\n", ex ? 5 : 3);
    const int midl = snprintf(mid, sizeof(mid), "\r\n$%zu\r\n", vbytes + tb);
    const int tl =
        vw   ? snprintf(tail, sizeof(tail), "\r\n$%zu\r\n%s\r\n", strlen(ttl), ttl)
        : ex ? snprintf(tail, sizeof(tail), "\r\n$2\r\nEX\r\n$%zu\r\n%s\r\n", strlen(ttl), ttl)
             : snprintf(tail, sizeof(tail), "\r\n");
    /* + 1 for the meta hash and + 3 for the item index's commands (those not
     * sent are taken off again), so that no reply can finish the round early */
    r->outstanding = r->n + 1 + (p->cfg.item_index ? 3 : 0);
    for (size_t i = 0; i < r->n; i++) {
        keyref_t *k = &r->keys[i];
        if (k->side == 'U' || k->side == 'I') {
            size_t kl = keys_vector(key, sizeof(key), p->prefix, p->model,
                                    k->side == 'U' ? 'u' : 'i', k->id, k->len);
            const char *argv[] = {"DEL", key};
            size_t argl[] = {3, kl};
            queue_cmd(p, r, k, 2, argv, argl, 1);
            continue;
        }
        size_t kl = keys_vector(key, sizeof(key), p->prefix, p->model, k->side, k->id, k->len);
        size_t need = (size_t)hl + 24 + kl + (size_t)midl + vbytes + tb + (size_t)tl;
        char *c0 = cmd_room(r, need), *c = c0;
        if (!c) {
            cmd_failed(p, r, k);
            off += vbytes;
            continue;
        }
        memcpy(c, head, (size_t)hl);
        c += hl;
        c = bulk_len(c, kl);
        memcpy(c, key, kl);
        c += kl;
        memcpy(c, mid, (size_t)midl);
        c += midl;
        memcpy(c, p->vbuf + off, vbytes);
        c += vbytes;
        memcpy(c, trailer, tb);
        c += tb;
        memcpy(c, tail, (size_t)tl);
        c += tl;
        cmd_take(p, r, k, (size_t)(c - c0), key, kl);
        off += vbytes;
        /* Redis starts on the first commands (users' come first) while the
         * rest are formatted; a link that fails here is gone (its ac NULL),
         * and the commands not queued yet fail in send_cmd */
        if ((i & 1023) == 1023)
            for (int li = 0; li < p->nlinks; li++)
                if (p->links[li]->ac && p->links[li]->fig.in_round)
                    redisAsyncHandleWrite(p->links[li]->ac);
    }

    if (p->cfg.item_index)
        queue_index(p, r, now_ms);

    /* the meta hash: one HSET of every field */
    r->meta = (keyref_t){.r = r};
    char dim[16], ver[24], upd[24], nd[24];
    snprintf(dim, sizeof(dim), "%d", meta->dim);
    snprintf(ver, sizeof(ver), "%llu", (unsigned long long)p->version);
    snprintf(upd, sizeof(upd), "%lld", (long long)now_ms);
    snprintf(nd, sizeof(nd), "%zu", meta->ndense);
    size_t ml = keys_meta(key, sizeof(key), p->prefix, p->model);
    unsigned char *dense = NULL;
    if (meta->dense && meta->ndense && (dense = malloc(4 * meta->ndense)))
        keys_f32le_encode(dense, meta->dense, meta->ndense);
    const char *dl = meta->dense_layout ? meta->dense_layout : "";
    char pos[24];
    snprintf(pos, sizeof(pos), "%llu", (unsigned long long)p->position);
    /* versioned: EVALSHA <sha> 1 key position, then HSET's fields and values */
    const char *argv[] = {"EVALSHA",
                          meta_sha,
                          "1",
                          key,
                          pos,
                          "kind",
                          meta->kind,
                          "dim",
                          dim,
                          "layout",
                          meta->layout,
                          "version",
                          ver,
                          "updated_ms",
                          upd,
                          "alive_ms",
                          upd,
                          "dense_floats",
                          nd,
                          "dense_layout",
                          dl,
                          "dense",
                          dense ? (const char *)dense : "",
                          "log_position",
                          pos,
                          "version_bytes",
                          "8"};
    size_t argl[] = {7,
                     40,
                     1,
                     ml,
                     strlen(pos),
                     4,
                     strlen(meta->kind),
                     3,
                     strlen(dim),
                     6,
                     strlen(meta->layout),
                     7,
                     strlen(ver),
                     10,
                     strlen(upd),
                     8,
                     strlen(upd),
                     12,
                     strlen(nd),
                     12,
                     strlen(dl),
                     5,
                     dense ? 4 * meta->ndense : 0,
                     12,
                     strlen(pos),
                     13,
                     1};
    if (vw) {
        queue_cmd(p, r, &r->meta, 27, argv, argl, 3);
    } else { /* HSET key and the same fields, but the log's */
        argv[3] = "HSET";
        argl[3] = 4;
        argv[4] = key;
        argl[4] = ml;
        queue_cmd(p, r, &r->meta, 20, argv + 3, argl + 3, 1);
    }
    free(dense);
    r->queuing = 0;
    if (r->outstanding == 0) {
        finish_round(p, r);
        return;
    }
    round_sent(p);
}

int pub_heartbeat(pub_t *p, int64_t now_ms)
{
    if (pub_begin(p))
        return -1;
    round_t *r = p->cur;
    p->building = 0;
    r->heartbeat = 1;
    r->meta = (keyref_t){.r = r};
    r->outstanding = 1;
    r->queuing = 1;
    char key[512], alive[24];
    size_t ml = keys_meta(key, sizeof(key), p->prefix, p->model);
    snprintf(alive, sizeof(alive), "%lld", (long long)now_ms);
    const char *argv[] = {"HSET", key, "alive_ms", alive};
    size_t argl[] = {4, ml, 8, strlen(alive)};
    queue_cmd(p, r, &r->meta, 4, argv, argl, 1);
    r->queuing = 0;
    if (r->outstanding == 0) /* refused at once: the link is gone */
        finish_round(p, r);
    else
        round_sent(p);
    return 0;
}
