/* test_mf.c — plain matrix factorisation (learner/mf.c) behind the model
 * interface: found in the table by name; its backward against central
 * finite differences of a BCE loss; it learns a planted preference with
 * every sampler and every loss, through the learner; a saved learner loads
 * and resumes exactly; the published vector is the row, laid out "mf:0:D".
 * Not for: the daemon (test_mf_daemon.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "learner.h"
#include "loss.h"
#include "model.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define D 8
#define B 6

static void test_in_table(void **state)
{
    (void)state;
    const model_ops_t *o = model_find("mf");
    assert_non_null(o);
    assert_string_equal(o->name, "mf");
    assert_true(o->flags & MODEL_RANKS);
    assert_false(o->flags & MODEL_FEATURES);
    char names[256];
    model_names(names, sizeof(names));
    assert_non_null(strstr(names, "mf"));
}

/* mean BCE of the B pairs' logits under labels y */
static double bce_of(const model_ops_t *o, void *m, const float *const *u, const float *const *v,
                     const float *y)
{
    float z[B], dz[B], w[B];
    for (int b = 0; b < B; b++)
        w[b] = 1.0f;
    o->forward(m, z, u, v, NULL, NULL, B);
    return loss_bce_labels(dz, z, y, w, B);
}

static void test_grad(void **state)
{
    (void)state;
    const model_ops_t *o = model_find("mf");
    learner_config_t cfg;
    learner_config_default(&cfg);
    cfg.model.dim = D;
    char err[256];
    void *m = o->create(&cfg, B, 0, 0, err, sizeof(err));
    assert_non_null(m);
    assert_int_equal(o->row_width(m, 'u'), D);
    assert_int_equal(o->row_width(m, 'i'), D);
    assert_int_equal(o->dense(m)->n, 0);

    rng_t r;
    rng_seed(&r, 7);
    float rows[2 * B][D], y[B];
    for (int k = 0; k < 2 * B; k++)
        for (int j = 0; j < D; j++)
            rows[k][j] = (float)(2.0 * rng_double(&r) - 1.0);
    const float *u[B], *v[B];
    for (int b = 0; b < B; b++) {
        u[b] = rows[b % 3]; /* users shared by several pairs: the gradient is per pair */
        v[b] = rows[B + b];
        y[b] = (float)(b % 2);
    }
    float z[B], dz[B], w[B], du[B * D], di[B * D];
    for (int b = 0; b < B; b++)
        w[b] = 1.0f;
    o->forward(m, z, u, v, NULL, NULL, B);
    for (int b = 0; b < B; b++) {
        double dot = 0.0;
        for (int j = 0; j < D; j++)
            dot += (double)u[b][j] * v[b][j];
        assert_float_equal(z[b], dot, 1e-5);
    }
    loss_bce_labels(dz, z, y, w, B);
    o->backward(m, du, di, NULL, NULL, dz, B);

    /* each row's gradient is the sum over its pairs */
    const double eps = 1e-2;
    int bad = 0;
    for (int k = 0; k < 2 * B; k++) {
        if (k >= 3 && k < B)
            continue; /* rows no pair uses */
        for (int j = 0; j < D; j++) {
            double an = 0.0;
            for (int b = 0; b < B; b++) {
                if (k < B && u[b] == rows[k])
                    an += du[b * D + j];
                if (k >= B && v[b] == rows[k])
                    an += di[b * D + j];
            }
            float x0 = rows[k][j];
            rows[k][j] = x0 + (float)eps;
            double fp = bce_of(o, m, u, v, y);
            rows[k][j] = x0 - (float)eps;
            double fm = bce_of(o, m, u, v, y);
            rows[k][j] = x0;
            double num = (fp - fm) / (2 * eps);
            if (fabs(an - num) > 1e-2 * fmax(1e-2, fabs(an) + fabs(num))) {
                print_error("row %d [%d]: analytic %.6g, numeric %.6g\n", k, j, an, num);
                bad++;
            }
        }
    }
    assert_int_equal(bad, 0);

    float out[D];
    model_vector(o, m, 'u', rows[0], NULL, out);
    assert_memory_equal(out, rows[0], sizeof(out));
    char lay[64];
    assert_int_equal(model_vector_layout(o, m, lay, sizeof(lay)), 0);
    assert_string_equal(lay, "mf:0:8");
    assert_int_equal(model_dense_layout(o, m, lay, sizeof(lay)), 0);
    assert_string_equal(lay, "");
    o->free(m);
    o->free(NULL);
}

/* a planted stream: user u likes the items of categories u % 4 and
 * (u / 4) % 4 (of 4), and clicks only those */
#define NU 200
#define NI 120
#define NEV 40000

static char uid[NU][8], iid[NI][8];
static lrn_event_t ev[NEV];

static int likes(int u, int i)
{
    return i % 4 == u % 4 || i % 4 == (u / 4) % 4;
}

static int setup(void **state)
{
    (void)state;
    rng_t r;
    rng_seed(&r, 11);
    for (int u = 0; u < NU; u++)
        snprintf(uid[u], sizeof(uid[u]), "u%d", u);
    for (int i = 0; i < NI; i++)
        snprintf(iid[i], sizeof(iid[i]), "i%d", i);
    for (int n = 0; n < NEV; n++) {
        int u = (int)(rng_double(&r) * NU), i;
        do
            i = (int)(rng_double(&r) * NI);
        while (!likes(u, i));
        ev[n] =
            (lrn_event_t){.user = {(uint64_t)u * 0x9e3779b97f4a7c15ULL + 1, uid[u], strlen(uid[u])},
                          .item = {(uint64_t)i * 0xc2b2ae3d27d4eb4fULL + 2, iid[i], strlen(iid[i])},
                          .ts_ms = 1000 + n,
                          .weight = 1.0f};
    }
    return 0;
}

/* mean over users of the AUC of liked items over the others, by score */
static double planted_auc(learner_t *l)
{
    static lrn_id_t items[NI];
    for (int i = 0; i < NI; i++)
        items[i] = (lrn_id_t){(uint64_t)i * 0xc2b2ae3d27d4eb4fULL + 2, iid[i], strlen(iid[i])};
    double sum = 0.0;
    for (int u = 0; u < NU; u++) {
        lrn_id_t user = {(uint64_t)u * 0x9e3779b97f4a7c15ULL + 1, uid[u], strlen(uid[u])};
        float s[NI];
        learner_score(l, &user, items, NI, s);
        double wins = 0, pairs = 0;
        for (int a = 0; a < NI; a++)
            for (int b = 0; likes(u, a) && b < NI; b++)
                if (!likes(u, b)) {
                    wins += s[a] > s[b] ? 1.0 : s[a] == s[b] ? 0.5 : 0.0;
                    pairs += 1.0;
                }
        sum += wins / pairs;
    }
    return sum / NU;
}

static void test_learns_every_sampler_and_loss(void **state)
{
    (void)state;
    for (int s = SAMP_UNIFORM; s <= SAMP_HARD; s++)
        for (int lo = LOSS_BCE; lo <= LOSS_SOFTMAX; lo++) {
            learner_config_t cfg;
            learner_config_default(&cfg);
            snprintf(cfg.kind, sizeof(cfg.kind), "mf");
            cfg.model.dim = 16;
            cfg.sampler.kind = (samp_kind_t)s;
            cfg.loss = (loss_kind_t)lo;
            /* the buffer holds every event: the hard sampler then knows every
             * item a user liked, and does not draw one as a negative */
            cfg.threads = s == SAMP_UNIFORM ? 2 : 1; /* the learner's threads too */
            char err[256];
            learner_t *l = learner_create(&cfg, err, sizeof(err));
            if (!l)
                fail_msg("%s", err);
            for (int pass = 0; pass < 2; pass++)
                assert_int_equal(learner_learn(l, ev, NEV), NEV);
            learner_stats_t st;
            learner_stats(l, &st);
            double auc = planted_auc(l);
            print_message("mf %s/%s: AUC of liked items %.3f, prequential HR@10 %.3f (%llu)\n",
                          samp_kind_name(cfg.sampler.kind), loss_kind_name(cfg.loss), auc,
                          st.preq_hr10, (unsigned long long)st.preq_n);
            assert_int_equal(st.nonfinite, 0);
            assert_true(st.preq_n > 0);
            assert_true(auc > 0.85);
            assert_int_equal(learner_vector_dim(l), 16);
            char lay[64];
            assert_int_equal(learner_vector_layout(l, lay, sizeof(lay)), 0);
            assert_string_equal(lay, "mf:0:16");
            learner_free(l);
        }
}

static void test_save_load_resumes_exactly(void **state)
{
    (void)state;
    learner_config_t cfg;
    learner_config_default(&cfg);
    snprintf(cfg.kind, sizeof(cfg.kind), "mf");
    cfg.loss = LOSS_BPR;
    cfg.ring_capacity = 5000;
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
    float va[32], vb[32];
    emb_table_t *ua = learner_users(a), *ub = learner_users(b);
    for (int u = 0; u < NU; u += 17) {
        lrn_id_t id = {(uint64_t)u * 0x9e3779b97f4a7c15ULL + 1, uid[u], strlen(uid[u])};
        uint32_t e1 = emb_find(ua, id.h, id.id, id.len), e2 = emb_find(ub, id.h, id.id, id.len);
        assert_true(e1 != EMB_NONE && e2 != EMB_NONE);
        learner_vector(a, 'u', e1, va);
        learner_vector(b, 'u', e2, vb);
        assert_memory_equal(va, vb, sizeof(float) * (size_t)learner_vector_dim(a));
    }
    /* a neumf learner refuses an mf state */
    learner_config_t other = cfg;
    snprintf(other.kind, sizeof(other.kind), "neumf");
    learner_t *x = learner_create(&other, err, sizeof(err));
    assert_non_null(x);
    m.pos = 0;
    ser_reader_t r2 = {harness_mem_read, &m, 0, NULL};
    assert_int_equal(learner_load(x, &r2, err, sizeof(err)), -1);
    print_message("refused: %s\n", err);
    assert_non_null(strstr(err, "mf"));
    learner_free(x);
    free(m.buf);
    learner_free(a);
    learner_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_table),
        cmocka_unit_test(test_grad),
        cmocka_unit_test(test_learns_every_sampler_and_loss),
        cmocka_unit_test(test_save_load_resumes_exactly),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
