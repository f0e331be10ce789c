/* test_dssm_features.c — the DSSM towers with user and item features, in
 * the learner (learner/feat.c, learner.c): what features buy, and that they
 * are kept, saved and refused as documented.
 *
 * What each test asserts:
 *  - cold_items_ranked_by_features: on a stream where each of 200 users
 *    likes two of 8 item categories, 80 items never clicked (each only shown
 *    once, unclicked, with its category) are ranked for every user: with the
 *    category as an item feature the mean per-user AUC of liked-category items
 *    is ≥ 0.8 and ≥ 0.2 above the same learner without features (≈ 0.5: an id
 *    alone says nothing of an item never clicked).
 *  - features_kept_per_id: the last value of a field wins, a field an event
 *    does not carry keeps its value, an id's published vector follows its
 *    features; dense features are normalised (a constant one gives 0).
 *  - save_load_with_features: a learner with features saved and loaded into
 *    a fresh one learns on bit for bit like the original; a learner with
 *    other features refuses the stream.
 *  - features_need_dssm: NeuMF with features is refused with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "id.h"
#include "kern.h"
#include "learner.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NU 200
#define NCAT 8
#define WARM 40 /* items per category that are clicked */
#define COLD 10 /* items per category that never are */
#define NEV 30000

typedef struct {
    char uid[NU][16];
    char iid[NCAT * (WARM + COLD)][16];
    char cat[NCAT][8];
} names_t;

static names_t N;

static void names_init(void)
{
    for (int u = 0; u < NU; u++)
        snprintf(N.uid[u], sizeof(N.uid[u]), "u%d", u);
    for (int i = 0; i < NCAT * (WARM + COLD); i++)
        snprintf(N.iid[i], sizeof(N.iid[i]), "i%d", i);
    for (int c = 0; c < NCAT; c++)
        snprintf(N.cat[c], sizeof(N.cat[c]), "c%d", c);
}

static lrn_id_t mkid(const char *s)
{
    return (lrn_id_t){id_hash(s, strlen(s)), s, strlen(s)};
}

/* item i: category i % NCAT; warm when i / NCAT < WARM */
static int item_cat(int i)
{
    return i % NCAT;
}

static int likes(int u, int c)
{
    int a = u % NCAT, b = (a + 1 + (u / NCAT) % (NCAT - 1)) % NCAT;
    return c == a || c == b;
}

/* the item's features: its category (field 0) and a dense value (field 0) */
static int item_feats(lrn_feat_t *f, int i, float num)
{
    const char *c = N.cat[item_cat(i)];
    f[0] = (lrn_feat_t){
        .side = 'i', .field = 0, .h = id_hash(c, strlen(c)), .id = c, .len = strlen(c)};
    f[1] = (lrn_feat_t){.side = 'i', .dense = 1, .field = 0, .num = num};
    return 2;
}

static learner_t *make(int with_features)
{
    learner_config_t cfg;
    learner_config_default(&cfg);
    snprintf(cfg.kind, sizeof(cfg.kind), "dssm");
    cfg.towers.dim = 16;
    cfg.towers.tower[0] = 32, cfg.towers.tower[1] = 16;
    cfg.towers.ntower = 2;
    cfg.loss = LOSS_SOFTMAX;
    cfg.negatives = 8;
    cfg.batch_events = 128;
    cfg.preq_rate = 0.0;
    if (with_features)
        cfg.icat = 1, cfg.inum = 1;
    char err[256];
    learner_t *l = learner_create(&cfg, err, sizeof(err));
    if (!l)
        fail_msg("learner_create: %s", err);
    return l;
}

/* Learns the warm stream, then shows each cold item once, unclicked; returns
 * the mean over users of the AUC of cold liked-category items over the other
 * cold items. */
static double cold_auc(learner_t *l)
{
    rng_t r;
    rng_seed(&r, 11);
    static lrn_event_t ev[NEV];
    static lrn_feat_t fs[NEV][2];
    for (int k = 0; k < NEV; k++) {
        int u = (int)rng_below(&r, NU), c;
        do
            c = (int)rng_below(&r, NCAT);
        while (!likes(u, c));
        int i = (int)rng_below(&r, WARM) * NCAT + c;
        ev[k] = (lrn_event_t){.user = mkid(N.uid[u]),
                              .item = mkid(N.iid[i]),
                              .ts_ms = k,
                              .weight = 1.0f,
                              .feat = fs[k],
                              .nfeat = item_feats(fs[k], i, (float)rng_normal(&r))};
    }
    for (int pass = 0; pass < 2; pass++)
        assert_int_equal(learner_learn(l, ev, NEV), NEV);
    const int ncold = NCAT * COLD;
    for (int k = 0; k < ncold; k++) {
        int i = NCAT * WARM + k;
        ev[k] = (lrn_event_t){.user = mkid(N.uid[rng_below(&r, NU)]),
                              .item = mkid(N.iid[i]),
                              .ts_ms = NEV + k,
                              .weight = 1.0f,
                              .negative = 1,
                              .feat = fs[k],
                              .nfeat = item_feats(fs[k], i, (float)rng_normal(&r))};
    }
    assert_int_equal(learner_learn(l, ev, ncold), ncold);

    lrn_id_t items[NCAT * COLD];
    for (int k = 0; k < ncold; k++)
        items[k] = mkid(N.iid[NCAT * WARM + k]);
    double sum = 0.0;
    for (int u = 0; u < NU; u++) {
        lrn_id_t user = mkid(N.uid[u]);
        float s[NCAT * COLD];
        learner_score(l, &user, items, ncold, s);
        double wins = 0.0, pairs = 0.0;
        for (int a = 0; a < ncold; a++) {
            if (!likes(u, item_cat(NCAT * WARM + a)))
                continue;
            for (int b = 0; b < ncold; b++) {
                if (likes(u, item_cat(NCAT * WARM + b)))
                    continue;
                wins += s[a] > s[b] ? 1.0 : s[a] == s[b] ? 0.5 : 0.0;
                pairs += 1.0;
            }
        }
        sum += wins / pairs;
    }
    return sum / NU;
}

static void test_cold_items_ranked_by_features(void **state)
{
    (void)state;
    learner_t *with = make(1), *without = make(0);
    double aw = cold_auc(with), ao = cold_auc(without);
    print_message("cold-item AUC: with item features %.4f, id only %.4f\n", aw, ao);
    assert_true(aw >= 0.8);
    assert_true(aw >= ao + 0.2);
    learner_stats_t st;
    learner_stats(with, &st);
    assert_int_equal(st.nonfinite, 0);
    learner_free(with);
    learner_free(without);
}

static void test_features_kept_per_id(void **state)
{
    (void)state;
    learner_t *l = make(1);
    lrn_feat_t f[2];
    lrn_event_t ev[64];
    rng_t r;
    rng_seed(&r, 3);
    /* enough other events that sampling finds negatives */
    static lrn_feat_t bg[64][2];
    for (int k = 0; k < 64; k++) {
        int i = k % 40;
        ev[k] = (lrn_event_t){.user = mkid(N.uid[k % 7]),
                              .item = mkid(N.iid[i]),
                              .ts_ms = k,
                              .weight = 1.0f,
                              .feat = bg[k],
                              .nfeat = item_feats(bg[k], i, 2.0f)};
    }
    assert_int_equal(learner_learn(l, ev, 64), 64);

    emb_table_t *items = learner_items(l);
    lrn_id_t it = mkid(N.iid[5]);
    uint32_t e = emb_find(items, it.h, it.id, it.len);
    assert_true(e != EMB_NONE);
    const int V = learner_vector_dim(l);
    float v1[64], v2[64], v3[64];
    learner_vector(l, 'i', e, v1);
    double n1 = 0.0;
    for (int k = 0; k < V; k++)
        n1 += (double)v1[k] * v1[k];
    assert_float_equal(sqrt(n1), 1.0, 1e-4);

    /* an event without features keeps them: the vector does not move (no
     * learning happens between: only the lookup is compared) */
    learner_vector(l, 'i', e, v2);
    assert_memory_equal(v1, v2, sizeof(float) * V);

    /* the category changes: the vector follows it at once */
    item_feats(f, 6, 2.0f); /* item 6's category, for item 5 */
    lrn_event_t one = {.user = mkid(N.uid[0]),
                       .item = it,
                       .ts_ms = 100,
                       .weight = 1.0f,
                       .negative = 1,
                       .feat = f,
                       .nfeat = 1};
    assert_int_equal(learner_learn(l, &one, 1), 1);
    learner_vector(l, 'i', e, v3);
    int moved = 0;
    for (int k = 0; k < V; k++)
        moved += v3[k] != v1[k];
    assert_true(moved > V / 2);
    learner_free(l);
}

static void test_save_load_with_features(void **state)
{
    (void)state;
    learner_t *a = make(1);
    static lrn_event_t ev[2000];
    static lrn_feat_t fs[2000][2];
    rng_t r;
    rng_seed(&r, 5);
    for (int k = 0; k < 2000; k++) {
        int i = (int)rng_below(&r, 300);
        ev[k] = (lrn_event_t){.user = mkid(N.uid[rng_below(&r, NU)]),
                              .item = mkid(N.iid[i]),
                              .ts_ms = k,
                              .weight = 1.0f,
                              .feat = fs[k],
                              .nfeat = item_feats(fs[k], i, (float)rng_normal(&r))};
    }
    assert_int_equal(learner_learn(a, ev, 1000), 1000);
    harness_membuf_t m = {0};
    ser_writer_t w = {harness_mem_write, &m, 0};
    assert_int_equal(learner_save(a, &w), 0);
    learner_t *b = make(1);
    ser_reader_t rd = {harness_mem_read, &m, 0, NULL};
    char err[256];
    if (learner_load(b, &rd, err, sizeof(err)))
        fail_msg("learner_load: %s", err);
    assert_int_equal(m.pos, m.len);
    assert_int_equal(learner_learn(a, ev + 1000, 1000), 1000);
    assert_int_equal(learner_learn(b, ev + 1000, 1000), 1000);
    dense_block_t *da = learner_dense(a), *db = learner_dense(b);
    assert_memory_equal(da->params, db->params, sizeof(float) * da->n);
    lrn_id_t user = mkid(N.uid[3]), items[50];
    for (int k = 0; k < 50; k++)
        items[k] = mkid(N.iid[k]);
    float sa[50], sb[50];
    learner_score(a, &user, items, 50, sa);
    learner_score(b, &user, items, 50, sb);
    assert_memory_equal(sa, sb, sizeof(sa));

    /* a learner without features refuses the stream, with a message */
    learner_t *c = make(0);
    m.pos = 0;
    ser_reader_t rc = {harness_mem_read, &m, 0, NULL};
    err[0] = '\0';
    assert_int_equal(learner_load(c, &rc, err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
    learner_free(c);
    free(m.buf);
    learner_free(a);
    learner_free(b);
}

static void test_features_need_dssm(void **state)
{
    (void)state;
    learner_config_t cfg;
    learner_config_default(&cfg);
    cfg.icat = 1;
    char err[256] = "";
    assert_null(learner_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "dssm"));
}

int main(void)
{
    names_init();
    kern_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cold_items_ranked_by_features),
        cmocka_unit_test(test_features_kept_per_id),
        cmocka_unit_test(test_save_load_with_features),
        cmocka_unit_test(test_features_need_dssm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
