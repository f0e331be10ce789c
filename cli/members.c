/* members.c — N learners sharing one model through an in-memory model log
 * (see members.h). */
#include "members.h"

#include "id.h"
#include "mlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEMBERS_MAX 64
#define TOPIC "in"

typedef struct {
    learner_t *l;
    char name[16];
    mlog_ledger_t ledger;
    size_t read;    /* log records applied */
    int64_t offset; /* its partition's next input offset */
    uint64_t seq;
    mlog_writer_t w;
    uint64_t refusals;
} member_t;

struct members {
    int n;
    member_t m[MEMBERS_MAX];
    uint8_t **rec; /* the log */
    size_t *len, nrec, cap, bytes;
    uint64_t events;
    lrn_event_t *part; /* (window) one member's share of a round */
    size_t part_cap;
};

static int log_append(members_t *g, const uint8_t *b, size_t n)
{
    if (g->nrec == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 256;
        uint8_t **r = realloc(g->rec, sizeof(*r) * cap);
        if (!r)
            return -1;
        g->rec = r;
        size_t *l = realloc(g->len, sizeof(*l) * cap);
        if (!l)
            return -1;
        g->len = l, g->cap = cap;
    }
    if (!(g->rec[g->nrec] = malloc(n)))
        return -1;
    memcpy(g->rec[g->nrec], b, n);
    g->len[g->nrec++] = n;
    g->bytes += n;
    return 0;
}

static int finish(members_t *g, member_t *x)
{
    const uint8_t *b;
    size_t n;
    return mlog_finish(&x->w, &b, &n) || log_append(g, b, n) ? -1 : 0;
}

members_t *members_create(const learner_config_t *cfg, int n, char *errstr, size_t len)
{
    if (n < 1 || n > MEMBERS_MAX) {
        snprintf(errstr, len, "members: 1 to %d, not %d", MEMBERS_MAX, n);
        return NULL;
    }
    members_t *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(errstr, len, "members: out of memory");
        return NULL;
    }
    learner_config_t c = *cfg;
    c.shared = 1;
    for (int i = 0; i < n; i++) {
        member_t *x = &g->m[i];
        g->n = i + 1;
        mlog_ledger_init(&x->ledger);
        snprintf(x->name, sizeof(x->name), "m%d", i);
        if (!(x->l = learner_create(&c, errstr, len)))
            goto err;
        /* its claim of partition i, having read the log so far */
        mlog_begin(&x->w, MLOG_CLAIM, x->name, strlen(x->name), x->seq++, 0, (int64_t)g->nrec - 1,
                   0);
        mlog_add_range(&x->w, TOPIC, i, 0, -1);
        if (finish(g, x)) {
            snprintf(errstr, len, "members: out of memory");
            goto err;
        }
    }
    return g;
err:
    members_free(g);
    return NULL;
}

void members_free(members_t *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n; i++) {
        member_t *x = &g->m[i];
        learner_free(x->l);
        mlog_ledger_free(&x->ledger);
        mlog_writer_free(&x->w);
    }
    for (size_t i = 0; i < g->nrec; i++)
        free(g->rec[i]);
    free(g->rec);
    free(g->len);
    free(g->part);
    free(g);
}

/* Reads the log on from where x left off and applies what its ledger
 * accepts (its own user rows excepted: they are ahead of its records). */
static int catch_up(members_t *g, member_t *x)
{
    static const mlog_apply_ops_t ops = {learner_apply_row_grad, learner_apply_row_value,
                                         learner_apply_dense};
    static mlog_record_t rec; /* one thread */
    char err[256];
    for (; x->read < g->nrec; x->read++) {
        if (mlog_decode(g->rec[x->read], g->len[x->read], &rec, err, sizeof(err)) ||
            mlog_ledger_apply(&x->ledger, &rec, (int64_t)x->read) != MLOG_ACCEPTED)
            continue; /* counted by the ledger */
        int own = rec.member_len == strlen(x->name) && !memcmp(rec.member, x->name, rec.member_len);
        learner_apply_at(x->l, rec.ts_ms);
        long refused = mlog_apply(&rec, &ops, x->l, own);
        if (refused < 0)
            return -1;
        x->refusals += (uint64_t)refused;
    }
    return 0;
}

int members_learn(members_t *g, const lrn_event_t *ev, size_t n, size_t window_events)
{
    static const learner_window_sink_t sink = {mlog_put_row_grad, mlog_put_row_value,
                                               mlog_put_dense};
    if (window_events < 1)
        window_events = 1;
    if (g->part_cap < window_events) {
        lrn_event_t *p = realloc(g->part, sizeof(*p) * window_events);
        if (!p)
            return -1;
        g->part = p, g->part_cap = window_events;
    }
    for (size_t s0 = 0; s0 < n; s0 += window_events) {
        size_t s1 = n - s0 < window_events ? n : s0 + window_events;
        for (int i = 0; i < g->n; i++) {
            member_t *x = &g->m[i];
            if (catch_up(g, x))
                return -1;
            size_t k = 0;
            int64_t ts = 0; /* the record's time: its newest event's */
            for (size_t t = s0; t < s1; t++)
                if ((int)(ev[t].user.h % (uint64_t)g->n) == i) {
                    g->part[k++] = ev[t];
                    ts = ev[t].ts_ms > ts ? ev[t].ts_ms : ts;
                }
            if (!k)
                continue;
            learner_learn(x->l, g->part, k); /* refused events are in its stats */
            mlog_begin(&x->w, MLOG_WINDOW, x->name, strlen(x->name), x->seq++, ts, -1, 0);
            mlog_add_range(&x->w, TOPIC, i, x->offset, x->offset + (int64_t)k - 1);
            x->offset += (int64_t)k;
            mlog_set_steps(&x->w, (uint32_t)learner_window_take(x->l, &sink, &x->w));
            if (finish(g, x))
                return -1;
            g->events += k;
        }
    }
    for (int i = 0; i < g->n; i++)
        if (catch_up(g, &g->m[i]))
            return -1;
    return 0;
}

learner_t *members_learner(members_t *g, int m)
{
    return m >= 0 && m < g->n ? g->m[m].l : NULL;
}

int64_t members_next_offset(const members_t *g, int m)
{
    const mlog_part_t *p = mlog_ledger_find(&g->m[m].ledger, TOPIC, strlen(TOPIC), m);
    return p ? p->next : -1;
}

void members_stats(const members_t *g, members_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->records = g->nrec;
    out->bytes = g->bytes;
    out->events = g->events;
    for (int v = 1; v < MLOG_VERDICTS; v++)
        out->refused += g->m[0].ledger.verdicts[v];
    for (int i = 0; i < g->n; i++)
        out->refusals += g->m[i].refusals;
}

int members_same(members_t *g, int a, int b, char *why, size_t len)
{
    learner_t *la = g->m[a].l, *lb = g->m[b].l;
    dense_block_t *da = learner_dense(la), *db = learner_dense(lb);
    if (da->n != db->n || da->t != db->t || memcmp(da->params, db->params, sizeof(float) * da->n) ||
        memcmp(da->m, db->m, sizeof(float) * da->n) ||
        memcmp(da->v, db->v, sizeof(float) * da->n)) {
        snprintf(why, len, "the dense blocks differ");
        return -1;
    }
    emb_table_t *ia = learner_items(la), *ib = learner_items(lb);
    size_t W = (size_t)learner_user_width(la), n = 0; /* items' rows are as wide */
    for (uint32_t e = 0; e < emb_entry_cap(ia); e++) {
        if (!emb_entry_alive(ia, e))
            continue;
        size_t il;
        const char *id = emb_entry_id(ia, e, &il);
        uint32_t f = emb_find(ib, id_hash(id, il), id, il);
        if (f == EMB_NONE || memcmp(emb_row(ia, emb_entry_row(ia, e)),
                                    emb_row(ib, emb_entry_row(ib, f)), sizeof(float) * W)) {
            snprintf(why, len, "item %.*s %s", (int)(il < 64 ? il : 64), id,
                     f == EMB_NONE ? "is missing" : "differs");
            return -1;
        }
        n++;
    }
    emb_stats_t sb;
    emb_stats(ib, &sb);
    if (sb.entries != n) {
        snprintf(why, len, "%zu items against %zu", n, sb.entries);
        return -1;
    }
    return 0;
}
