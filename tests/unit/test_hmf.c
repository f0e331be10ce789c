/* test_hmf.c — history matrix factorisation (learner/hmf.c) and the users'
 * histories it reads (learner/hist.c): the history keeps the last K items,
 * newest first, and drops an item whose id went even when a new id takes
 * its entry; hmf's backward (rows and context) against central finite
 * differences, with the transition map too (its own gradient included);
 * its published vectors' dot product is its logit; through the
 * learner it learns what only a user's last items can tell (which way a new
 * user walks a chain of items), with every loss, with threads, where plain
 * MF cannot; a saved learner,
 * histories included, loads and resumes exactly.
 * Not for: the daemon (test_mf_daemon.c covers the model interface there). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "hist.h"
#include "id.h"
#include "learner.h"
#include "loss.h"
#include "model.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_history(void **state)
{
    (void)state;
    char err[256];
    assert_null(hist_create(0, err, sizeof(err)));
    assert_null(hist_create(HIST_MAX + 1, err, sizeof(err)));
    hist_t *h = hist_create(3, err, sizeof(err));
    assert_non_null(h);
    assert_int_equal(hist_reserve(h, 10, 10), 0);
    for (uint32_t i = 0; i < 10; i++)
        hist_new_item(h, i);
    hist_new_user(h, 4);
    uint32_t out[3];
    assert_int_equal(hist_items(h, 4, out), 0);
    hist_push(h, 4, 1);
    hist_push(h, 4, 2);
    assert_int_equal(hist_items(h, 4, out), 2);
    assert_int_equal(out[0], 2);
    assert_int_equal(out[1], 1);
    hist_push(h, 4, 3);
    hist_push(h, 4, 5); /* the oldest (1) goes */
    assert_int_equal(hist_items(h, 4, out), 3);
    assert_int_equal(out[0], 5);
    assert_int_equal(out[1], 3);
    assert_int_equal(out[2], 2);
    hist_item_gone(h, 3); /* its id went */
    assert_int_equal(hist_items(h, 4, out), 2);
    assert_int_equal(out[1], 2);
    hist_new_item(h, 2); /* a new id takes entry 2: not this user's */
    assert_int_equal(hist_items(h, 4, out), 1);
    assert_int_equal(out[0], 5);
    hist_push(h, 4, 2); /* the new id, clicked */
    assert_int_equal(hist_items(h, 4, out), 2);
    assert_int_equal(out[0], 2);
    /* room grows; a user beyond it has nothing */
    assert_int_equal(hist_items(h, 5000, out), 0);
    assert_int_equal(hist_reserve(h, 5000, 3000), 0);
    assert_int_equal(hist_items(h, 4, out), 2);
    hist_new_user(h, 4999);
    hist_new_item(h, 2999);
    hist_push(h, 4999, 2999);
    assert_int_equal(hist_items(h, 4999, out), 1);

    /* a round trip keeps it all; another K is refused */
    harness_membuf_t m = {0};
    ser_writer_t w = {harness_mem_write, &m, 0};
    assert_int_equal(hist_save(h, 5000, 3000, &w), 0);
    hist_t *g = hist_create(3, err, sizeof(err)), *k4 = hist_create(4, err, sizeof(err));
    ser_reader_t r = {harness_mem_read, &m, 0, NULL};
    assert_int_equal(hist_load(g, &r, err, sizeof(err)), 0);
    assert_int_equal(m.pos, m.len);
    assert_int_equal(hist_items(g, 4, out), 2);
    assert_int_equal(out[0], 2);
    assert_int_equal(out[1], 5);
    assert_int_equal(hist_items(g, 4999, out), 1);
    hist_new_item(g, 7); /* stamps go on from the saved ones */
    hist_push(g, 4, 7);
    assert_int_equal(hist_items(g, 4, out), 3);
    m.pos = 0;
    ser_reader_t r2 = {harness_mem_read, &m, 0, NULL};
    assert_int_equal(hist_load(k4, &r2, err, sizeof(err)), -1);
    print_message("refused: %s\n", err);
    m.pos = 0;
    m.len = 30; /* truncated */
    ser_reader_t r3 = {harness_mem_read, &m, 0, NULL};
    hist_t *t = hist_create(3, err, sizeof(err));
    assert_int_equal(hist_load(t, &r3, err, sizeof(err)), -1);
    free(m.buf);
    hist_free(t);
    hist_free(k4);
    hist_free(g);
    hist_free(h);
    hist_free(NULL);
}

#define D 6
#define R (D + 1)
#define B 6

static void test_in_table(void **state)
{
    (void)state;
    const model_ops_t *o = model_find("hmf");
    assert_non_null(o);
    assert_true(o->flags & MODEL_RANKS);
    assert_true(o->flags & MODEL_HISTORY);
    assert_false(o->flags & MODEL_FEATURES);
    /* a history of 0 items is refused */
    learner_config_t cfg;
    learner_config_default(&cfg);
    snprintf(cfg.kind, sizeof(cfg.kind), "hmf");
    cfg.history = 0;
    char err[256];
    assert_null(learner_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "history"));
}

static double bce_of(const model_ops_t *o, void *m, const float *const *u, const float *const *v,
                     const float *const *c, const float *y)
{
    float z[B], dz[B], w[B];
    for (int b = 0; b < B; b++)
        w[b] = 1.0f;
    o->forward(m, z, u, v, c, NULL, B);
    return loss_bce_labels(dz, z, y, w, B);
}

/* The rows' analytic gradients (each row's sum over the pairs it is a
 * user, an item or a context of) against central differences of the BCE
 * over eps: how many differ. */
static int rows_grad_mismatches(const model_ops_t *o, void *m, float rows[11][R],
                                const float *const *u, const float *const *v, const float *const *c,
                                const float *y, const float *du, const float *di, const float *dc,
                                double eps)
{
    int bad = 0;
    for (int k = 0; k < 11; k++)
        for (int j = 0; j < R; j++) {
            double an = 0.0;
            for (int b = 0; b < B; b++) {
                if (u[b] == rows[k])
                    an += du[b * R + j];
                if (v[b] == rows[k])
                    an += di[b * R + j];
                if (c[b] == rows[k])
                    an += dc[b * R + j];
            }
            float x0 = rows[k][j];
            rows[k][j] = x0 + (float)eps;
            double fp = bce_of(o, m, u, v, c, y);
            rows[k][j] = x0 - (float)eps;
            double fm = bce_of(o, m, u, v, c, y);
            rows[k][j] = x0;
            double num = (fp - fm) / (2 * eps);
            if (fabs(an - num) > 1e-2 * fmax(1e-2, fabs(an) + fabs(num))) {
                print_error("row %d [%d]: analytic %.6g, numeric %.6g\n", k, j, an, num);
                bad++;
            }
        }
    return bad;
}

static void test_grad(void **state)
{
    (void)state;
    const model_ops_t *o = model_find("hmf");
    learner_config_t cfg;
    learner_config_default(&cfg);
    cfg.model.dim = D;
    cfg.user_weight = 0.3f;
    char err[256];
    void *m = o->create(&cfg, B, 0, 0, err, sizeof(err));
    assert_non_null(m);
    assert_int_equal(o->row_width(m, 'u'), R);
    assert_int_equal(o->row_width(m, 'i'), R);

    rng_t r;
    rng_seed(&r, 9);
    /* rows 0..2 users, 3..8 items, 9..10 contexts */
    float rows[11][R], y[B];
    for (int k = 0; k < 11; k++)
        for (int j = 0; j < R; j++)
            rows[k][j] = (float)(2.0 * rng_double(&r) - 1.0);
    const float *u[B], *v[B], *c[B];
    for (int b = 0; b < B; b++) {
        u[b] = rows[b % 3];
        v[b] = rows[3 + b];
        c[b] = rows[9 + b % 2];
        y[b] = (float)(b % 2);
    }
    float z[B], dz[B], w[B], du[B * R], di[B * R], dc[B * R];
    for (int b = 0; b < B; b++)
        w[b] = 1.0f;
    o->forward(m, z, u, v, c, NULL, B);
    for (int b = 0; b < B; b++) {
        double want = (double)u[b][D] + v[b][D];
        for (int j = 0; j < D; j++)
            want += (0.3 * u[b][j] + c[b][j]) * v[b][j];
        assert_float_equal(z[b], want, 1e-5);
    }
    loss_bce_labels(dz, z, y, w, B);
    o->backward(m, du, di, dc, NULL, dz, B);

    const double eps = 1e-2;
    int bad = rows_grad_mismatches(o, m, rows, u, v, c, y, du, di, dc, eps);
    assert_int_equal(bad, 0);

    /* the published vectors' dot product is the logit */
    assert_int_equal(model_vector_dim(o, m), D + 2);
    for (int b = 0; b < B; b++) {
        float pu[D + 2], pi[D + 2];
        model_vector(o, m, 'u', u[b], c[b], pu);
        model_vector(o, m, 'i', v[b], NULL, pi);
        double dot = 0.0;
        for (int j = 0; j < D + 2; j++)
            dot += (double)pu[j] * pi[j];
        assert_float_equal(dot, z[b], 1e-5);
    }
    char lay[64];
    assert_int_equal(model_vector_layout(o, m, lay, sizeof(lay)), 0);
    assert_string_equal(lay, "hmf:0:6,bias:6:8");
    assert_int_equal(model_dense_layout(o, m, lay, sizeof(lay)), 0);
    assert_string_equal(lay, "");
    o->free(m);
    o->free(NULL);
}

/* With the transition map (transition_lr > 0): the logit gains (M c)·q_i;
 * the rows', the contexts' and M's gradients against central differences,
 * with runs of pairs sharing a context (the map's products are taken once a
 * run); the published vectors' dot product is still the logit, the map's
 * term carried by the items' vectors (Mᵀ q_i); the map is the dense block
 * ("map:DxD"), learned at transition_lr, not lr_dense. */
static void test_grad_transition(void **state)
{
    (void)state;
    const model_ops_t *o = model_find("hmf");
    learner_config_t cfg;
    learner_config_default(&cfg);
    cfg.model.dim = D;
    cfg.user_weight = 0.3f;
    cfg.transition_lr = 0.002f;
    char err[256];
    void *m = o->create(&cfg, B, 0, 0, err, sizeof(err));
    assert_non_null(m);
    dense_block_t *db = o->dense(m);
    assert_int_equal(db->n, D * D);
    assert_non_null(o->dense_lr);
    assert_float_equal(o->dense_lr(m), 0.002, 1e-9);

    rng_t r;
    rng_seed(&r, 11);
    float rows[11][R], y[B];
    for (int k = 0; k < 11; k++)
        for (int j = 0; j < R; j++)
            rows[k][j] = (float)(2.0 * rng_double(&r) - 1.0);
    float *M = db->params;
    for (int k = 0; k < D * D; k++)
        M[k] = (float)(rng_double(&r) - 0.5);
    const float *u[B], *v[B], *c[B];
    for (int b = 0; b < B; b++) {
        u[b] = rows[b % 3];
        v[b] = rows[3 + b];
        c[b] = rows[9 + b / 3]; /* two runs of three pairs */
        y[b] = (float)(b % 2);
    }
    float z[B], dz[B], w[B], du[B * R], di[B * R], dc[B * R];
    for (int b = 0; b < B; b++)
        w[b] = 1.0f;
    o->forward(m, z, u, v, c, NULL, B);
    for (int b = 0; b < B; b++) {
        double want = (double)u[b][D] + v[b][D];
        for (int j = 0; j < D; j++) {
            double mc = 0.0;
            for (int k = 0; k < D; k++)
                mc += (double)M[j * D + k] * c[b][k];
            want += (0.3 * u[b][j] + c[b][j] + mc) * v[b][j];
        }
        assert_float_equal(z[b], want, 1e-5);
    }
    loss_bce_labels(dz, z, y, w, B);
    dense_block_zero_grad(db);
    o->backward(m, du, di, dc, NULL, dz, B);

    const double eps = 1e-2;
    int bad = rows_grad_mismatches(o, m, rows, u, v, c, y, du, di, dc, eps);
    for (int k = 0; k < D * D; k++) {
        float x0 = M[k];
        M[k] = x0 + (float)eps;
        double fp = bce_of(o, m, u, v, c, y);
        M[k] = x0 - (float)eps;
        double fm = bce_of(o, m, u, v, c, y);
        M[k] = x0;
        double num = (fp - fm) / (2 * eps), an = db->grads[k];
        if (fabs(an - num) > 1e-2 * fmax(1e-2, fabs(an) + fabs(num))) {
            print_error("M[%d][%d]: analytic %.6g, numeric %.6g\n", k / D, k % D, an, num);
            bad++;
        }
    }
    assert_int_equal(bad, 0);

    /* published: a user [w p_u + c_u ; c_u ; 1 ; a_u], an item [q_i ; Mᵀ q_i ;
     * b_i ; 1], whose dot product is the logit */
    o->forward(m, z, u, v, c, NULL, B);
    assert_int_equal(model_vector_dim(o, m), 2 * D + 2);
    for (int b = 0; b < B; b++) {
        float pu[2 * D + 2], pi[2 * D + 2];
        model_vector(o, m, 'u', u[b], c[b], pu);
        model_vector(o, m, 'i', v[b], NULL, pi);
        double dot = 0.0;
        for (int j = 0; j < 2 * D + 2; j++)
            dot += (double)pu[j] * pi[j];
        assert_float_equal(dot, z[b], 1e-5);
    }
    char lay[64];
    assert_int_equal(model_vector_layout(o, m, lay, sizeof(lay)), 0);
    assert_string_equal(lay, "hmf:0:6,map:6:12,bias:12:14");
    assert_int_equal(model_dense_layout(o, m, lay, sizeof(lay)), 0);
    assert_string_equal(lay, "map:6x6");
    o->free(m);

    /* out of range */
    cfg.transition_lr = -0.1f;
    snprintf(cfg.kind, sizeof(cfg.kind), "hmf");
    assert_null(learner_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "transition_lr"));
}

/* A chain: the items are a ring, and a session clicks a run of it in order
 * (item i, then i + 1, …). Users are many and short-lived, so a user's own
 * row knows little; the item a user clicked last tells the next. */
#define NI 60
#define NS 3000 /* sessions, a user each */
#define SL 8    /* clicks per session */
#define NEV (NS * SL)

static char uid[NS + 200][8], iid[NI][8];
static lrn_event_t ev[NEV];

static lrn_id_t user_id(int u)
{
    return (lrn_id_t){(uint64_t)u * 0x9e3779b97f4a7c15ULL + 1, uid[u], strlen(uid[u])};
}

static lrn_id_t item_id(int i)
{
    return (lrn_id_t){(uint64_t)i * 0xc2b2ae3d27d4eb4fULL + 2, iid[i], strlen(iid[i])};
}

static int setup(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 13);
    for (int u = 0; u < NS + 200; u++)
        snprintf(uid[u], sizeof(uid[u]), "u%d", u);
    for (int i = 0; i < NI; i++)
        snprintf(iid[i], sizeof(iid[i]), "i%d", i);
    /* sessions overlap four at a time, their clicks interleaved */
    int n = 0;
    for (int s0 = 0; s0 < NS; s0 += 4) {
        int start[4];
        for (int a = 0; a < 4; a++)
            start[a] = (int)(rng_double(&r) * NI);
        for (int k = 0; k < SL; k++)
            for (int a = 0; a < 4 && s0 + a < NS; a++, n++)
                ev[n] = (lrn_event_t){.user = user_id(s0 + a),
                                      .item = item_id((start[a] + k) % NI),
                                      .ts_ms = 1000 + n,
                                      .weight = 1.0f};
    }
    return 0;
}

/* 200 new users each click six items of the chain in order, k … k + 5,
 * each learned on its arrival: the share of them whose score has the next
 * item (k + 6) above the one before the run (k - 1). Both are one step from
 * the run; only the order of the clicks tells them apart. */
static double next_above_previous(learner_t *l)
{
    lrn_id_t items[NI];
    for (int i = 0; i < NI; i++)
        items[i] = item_id(i);
    int wins = 0;
    for (int t = 0; t < 200; t++) {
        int u = NS + t, k = (t * 7) % NI;
        for (int j = 0; j < 6; j++) {
            lrn_event_t e = {.user = user_id(u),
                             .item = item_id((k + j) % NI),
                             .ts_ms = 1000 + NEV + t * 6 + j,
                             .weight = 1.0f};
            assert_int_equal(learner_learn(l, &e, 1), 1);
        }
        float s[NI];
        lrn_id_t me = user_id(u);
        learner_score(l, &me, items, NI, s);
        wins += s[(k + 6) % NI] > s[(k + NI - 1) % NI];
    }
    return wins / 200.0;
}

static void test_learns_the_chain(void **state)
{
    (void)state;
    for (int lo = LOSS_BCE; lo <= LOSS_SOFTMAX + 1; lo++) {
        learner_config_t cfg;
        learner_config_default(&cfg);
        int mf = lo > LOSS_SOFTMAX; /* the reference: plain MF, softmax */
        snprintf(cfg.kind, sizeof(cfg.kind), "%s", mf ? "mf" : "hmf");
        cfg.model.dim = 16;
        cfg.loss = mf ? LOSS_SOFTMAX : (loss_kind_t)lo;
        cfg.negatives = 8;
        cfg.lr_sparse = 0.1f;
        cfg.history = 3;
        cfg.batch_events = 64;
        cfg.threads = lo == LOSS_BPR ? 2 : 1;
        char err[256];
        learner_t *l = learner_create(&cfg, err, sizeof(err));
        if (!l)
            fail_msg("%s", err);
        for (int pass = 0; pass < 2; pass++)
            assert_int_equal(learner_learn(l, ev, NEV), NEV);
        learner_stats_t st;
        learner_stats(l, &st);
        double win = next_above_previous(l);
        print_message("%s %s (%d threads): next item above the previous one for a new user: "
                      "%.3f; prequential HR@10 %.3f\n",
                      cfg.kind, loss_kind_name(cfg.loss), cfg.threads, win, st.preq_hr10);
        assert_int_equal(st.nonfinite, 0);
        if (mf)
            assert_true(win < 0.7); /* a user's row does not know the order of clicks */
        else
            assert_true(win > 0.9);
        learner_free(l);
    }
}

/* A frozen model served with fresh histories (learner_observe): new users'
 * clicks move their context, nothing is learned; plain MF records nothing. */
static void test_observe_without_learning(void **state)
{
    (void)state;
    for (int mf = 0; mf < 2; mf++) {
        learner_config_t cfg;
        learner_config_default(&cfg);
        snprintf(cfg.kind, sizeof(cfg.kind), "%s", mf ? "mf" : "hmf");
        cfg.model.dim = 16;
        cfg.loss = LOSS_SOFTMAX;
        cfg.negatives = 8;
        cfg.lr_sparse = 0.1f;
        cfg.history = 3;
        char err[256];
        learner_t *l = learner_create(&cfg, err, sizeof(err));
        assert_non_null(l);
        assert_int_equal(learner_learn(l, ev, NEV), NEV);
        learner_stats_t before, after;
        learner_stats(l, &before);
        lrn_id_t items[NI];
        for (int i = 0; i < NI; i++)
            items[i] = item_id(i);
        float v0[NI];
        lrn_id_t probe = user_id(0);
        learner_score(l, &probe, items, NI, v0);
        int wins = 0;
        for (int t = 0; t < 100; t++) {
            int u = NS + t, k = (t * 7) % NI;
            lrn_event_t e[6];
            for (int j = 0; j < 6; j++)
                e[j] = (lrn_event_t){.user = user_id(u),
                                     .item = item_id((k + j) % NI),
                                     .ts_ms = 1000 + NEV + t * 6 + j,
                                     .weight = 1.0f};
            assert_int_equal(learner_observe(l, e, 6), mf ? 0 : 6);
            float s[NI];
            lrn_id_t me = user_id(u);
            learner_score(l, &me, items, NI, s);
            wins += s[(k + 6) % NI] > s[(k + NI - 1) % NI];
        }
        /* an unknown item is not recorded */
        lrn_event_t odd = {.user = user_id(0), .item = {77, "nope", 4}, .ts_ms = 1, .weight = 1};
        assert_int_equal(learner_observe(l, &odd, 1), 0);
        learner_stats(l, &after);
        assert_int_equal(after.events, before.events);
        assert_int_equal(after.batches, before.batches);
        float v1[NI];
        learner_score(l, &probe, items, NI, v1);
        assert_memory_equal(v0, v1, sizeof(v0)); /* user 0's history and the rows as they were */
        print_message("%s, frozen, fresh histories: next above previous for %d of 100 new users\n",
                      cfg.kind, wins);
        if (!mf)
            assert_true(wins > 70); /* chance: 50 */
        learner_free(l);
    }
}

/* What learner_vector publishes for a user is the row and its context, so
 * its dot product with an item's vector is learner_score's logit. */
static void test_published_dot_is_the_score(void **state)
{
    (void)state;
    learner_config_t cfg;
    learner_config_default(&cfg);
    snprintf(cfg.kind, sizeof(cfg.kind), "hmf");
    cfg.model.dim = 8;
    cfg.history = 4;
    cfg.history_decay = 0.6f;
    cfg.user_weight = 0.3f;
    char err[256];
    learner_t *l = learner_create(&cfg, err, sizeof(err));
    assert_non_null(l);
    learner_learn(l, ev, NEV / 4);
    int V = learner_vector_dim(l);
    assert_int_equal(V, 10);
    for (int u = 0; u < 100; u += 9) {
        lrn_id_t me = user_id(u);
        uint32_t ue = emb_find(learner_users(l), me.h, me.id, me.len);
        assert_true(ue != EMB_NONE);
        float pu[10], pi[10], s[NI];
        learner_vector(l, 'u', ue, pu);
        /* the user's part: 0.3 of its row plus its last 4 items' rows,
         * the newest weighing most (0.6^j, normalised) */
        const float *p = emb_row(learner_users(l), emb_entry_row(learner_users(l), ue));
        double want[8], w = 1.0, wsum = 0.0;
        for (int k = 0; k < 8; k++)
            want[k] = 0.0;
        for (int e = NEV / 4 - 1, j = 0; e >= 0 && j < 4; e--) {
            if (ev[e].user.h != me.h)
                continue;
            const lrn_id_t *it = &ev[e].item;
            uint32_t ie = emb_find(learner_items(l), it->h, it->id, it->len);
            const float *q = emb_row(learner_items(l), emb_entry_row(learner_items(l), ie));
            for (int k = 0; k < 8; k++)
                want[k] += w * q[k];
            wsum += w, w *= 0.6, j++;
        }
        assert_true(wsum > 1.0); /* the user has more than one item */
        for (int k = 0; k < 8; k++)
            assert_float_equal(pu[k], 0.3 * p[k] + want[k] / wsum, 1e-5);
        lrn_id_t items[NI];
        for (int i = 0; i < NI; i++)
            items[i] = item_id(i);
        learner_score(l, &me, items, NI, s);
        for (int i = 0; i < NI; i++) {
            uint32_t ie = emb_find(learner_items(l), items[i].h, items[i].id, items[i].len);
            assert_true(ie != EMB_NONE);
            learner_vector(l, 'i', ie, pi);
            double dot = 0.0;
            for (int j = 0; j < V; j++)
                dot += (double)pu[j] * pi[j];
            assert_float_equal(dot, s[i], 1e-4);
        }
    }
    learner_free(l);
}

static lrn_event_t click(const char *u, const char *i, int64_t ts)
{
    return (lrn_event_t){.user = {id_hash(u, strlen(u)), u, strlen(u)},
                         .item = {id_hash(i, strlen(i)), i, strlen(i)},
                         .ts_ms = ts,
                         .weight = 1.0f};
}

/* The context's gradient reaches each history row times its weight: with
 * plain SGD rows, one click moves the rows of the user's last three items
 * (a, b, c; c newest) by amounts in the ratio d^2 : d : 1, and no row of
 * theirs moves otherwise (they are the user's positives: never negatives). */
static void test_history_gradient_shares(void **state)
{
    (void)state;
    learner_config_t cfg;
    learner_config_default(&cfg);
    snprintf(cfg.kind, sizeof(cfg.kind), "hmf");
    cfg.model.dim = 8;
    cfg.history = 3;
    cfg.history_decay = 0.5f;
    cfg.sparse_opt = OPT_SGD;
    cfg.lr_sparse = 0.5f;
    cfg.init_std = 0.3f;
    char err[256], name[20][8];
    learner_t *l = learner_create(&cfg, err, sizeof(err));
    assert_non_null(l);
    for (int i = 0; i < 20; i++) { /* items to draw negatives from */
        snprintf(name[i], sizeof(name[i]), "o%d", i);
        lrn_event_t e = click("x", name[i], 1 + i);
        assert_int_equal(learner_learn(l, &e, 1), 1);
    }
    const char *hist[3] = {"a", "b", "c"};
    for (int j = 0; j < 3; j++) {
        lrn_event_t e = click("u", hist[j], 100 + j);
        assert_int_equal(learner_learn(l, &e, 1), 1);
    }
    float before[3][9], *row[3];
    for (int j = 0; j < 3; j++) {
        uint32_t ie = emb_find(learner_items(l), id_hash(hist[j], 1), hist[j], 1);
        assert_true(ie != EMB_NONE);
        row[j] = emb_row(learner_items(l), emb_entry_row(learner_items(l), ie));
        memcpy(before[j], row[j], sizeof(before[j]));
    }
    lrn_event_t e = click("u", "d", 200);
    assert_int_equal(learner_learn(l, &e, 1), 1);
    int checked = 0;
    for (int k = 0; k < 8; k++) {
        double dc = row[2][k] - before[2][k], db = row[1][k] - before[1][k],
               da = row[0][k] - before[0][k];
        if (fabs(dc) < 1e-4)
            continue;
        assert_float_equal(db / dc, 0.5, 1e-3);
        assert_float_equal(da / dc, 0.25, 1e-3);
        checked++;
    }
    assert_true(checked >= 4);
    for (int j = 0; j < 3; j++) /* the bias does not enter the logit through c_u */
        assert_float_equal(row[j][8], before[j][8], 0.0);
    learner_free(l);
}

static void test_save_load_resumes_exactly(void **state)
{
    (void)state;
    learner_config_t cfg;
    learner_config_default(&cfg);
    snprintf(cfg.kind, sizeof(cfg.kind), "hmf");
    cfg.loss = LOSS_SOFTMAX;
    cfg.history = 5;
    cfg.ring_capacity = 3000;
    char err[256];
    learner_t *a = learner_create(&cfg, err, sizeof(err)),
              *b = learner_create(&cfg, err, sizeof(err));
    assert_true(a && b);
    learner_learn(a, ev, NEV / 2);
    harness_membuf_t m = {0};
    ser_writer_t w = {harness_mem_write, &m, 0};
    assert_int_equal(learner_save(a, &w), 0);
    ser_reader_t r = {harness_mem_read, &m, 0, NULL};
    assert_int_equal(learner_load(b, &r, err, sizeof(err)), 0);
    assert_int_equal(m.pos, m.len);
    learner_learn(a, ev + NEV / 2, NEV / 2);
    learner_learn(b, ev + NEV / 2, NEV / 2);
    float va[64], vb[64];
    int V = learner_vector_dim(a), checked = 0;
    for (int u = NS / 2; u < NS; u += 37) { /* users of both halves: their histories */
        lrn_id_t id = user_id(u);
        uint32_t e1 = emb_find(learner_users(a), id.h, id.id, id.len),
                 e2 = emb_find(learner_users(b), id.h, id.id, id.len);
        assert_true(e1 != EMB_NONE && e2 != EMB_NONE);
        learner_vector(a, 'u', e1, va);
        learner_vector(b, 'u', e2, vb);
        assert_memory_equal(va, vb, sizeof(float) * (size_t)V);
        checked++;
    }
    assert_true(checked > 10);
    /* another history length is refused */
    learner_config_t other = cfg;
    other.history = 6;
    learner_t *x = learner_create(&other, err, sizeof(err));
    assert_non_null(x);
    m.pos = 0;
    ser_reader_t r2 = {harness_mem_read, &m, 0, NULL};
    assert_int_equal(learner_load(x, &r2, err, sizeof(err)), -1);
    print_message("refused: %s\n", err);
    assert_non_null(strstr(err, "history"));
    learner_free(x);
    free(m.buf);
    learner_free(a);
    learner_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_in_table),
        cmocka_unit_test(test_grad),
        cmocka_unit_test(test_grad_transition),
        cmocka_unit_test(test_learns_the_chain),
        cmocka_unit_test(test_observe_without_learning),
        cmocka_unit_test(test_published_dot_is_the_score),
        cmocka_unit_test(test_history_gradient_shares),
        cmocka_unit_test(test_save_load_resumes_exactly),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
