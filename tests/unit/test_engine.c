/* test_engine.c — the daemon's one seam (learner/engine.h) over every model
 * of the table, whichever engine learns it: the same calls create it, learn
 * labelled examples (positives and explicit negatives, with a click-through
 * model's fields), publish vectors with their layout, and save and load its
 * state through a checkpoint file of the current format (store/ckpt.h, the
 * daemon's LRNR section), which then learns on exactly as the original
 * (every model of the table); another model refuses the state, naming the
 * model it holds; an unknown model is refused naming the known ones; and
 * each model is learned by two members sharing it, or refuses to be.
 * Not for: the daemon around it (test_engine_daemon.c). */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ckpt.h"
#include "engine.h"
#include "harness.h"
#include "mlog.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NU 50
#define NI 40
#define NEV 6000

static char uid[NU][8], iid[NI][8], dev[2][8] = {"ios", "web"};
static lrn_event_t ev[NEV];
static lrn_feat_t fe[NEV][2];

static lrn_id_t id_of(const char *s, uint64_t salt)
{
    uint64_t h = 1469598103934665603ULL ^ salt;
    for (const char *p = s; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return (lrn_id_t){h, s, strlen(s)};
}

static int setup(void **state)
{
    (void)state;
    for (int u = 0; u < NU; u++)
        snprintf(uid[u], sizeof(uid[u]), "u%d", u);
    for (int i = 0; i < NI; i++)
        snprintf(iid[i], sizeof(iid[i]), "i%d", i);
    uint64_t r = 88172645463325252ULL;
    for (int n = 0; n < NEV; n++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        int u = (int)(r % NU), i = (int)((r >> 20) % NI), d = (int)((r >> 40) % 2);
        int like = (u + i) % 3 == 0;
        fe[n][0] = (lrn_feat_t){
            .side = 'x', .field = 2, .h = id_of(dev[d], 7).h, .id = dev[d], .len = strlen(dev[d])};
        fe[n][1] = (lrn_feat_t){.side = 'x', .dense = 1, .field = 0, .num = (float)(i % 7)};
        ev[n] = (lrn_event_t){.user = id_of(uid[u], 1),
                              .item = id_of(iid[i], 2),
                              .ts_ms = 1000 + n,
                              .weight = 1.0f,
                              .negative = !like && n % 2, /* explicit negatives too */
                              .feat = fe[n],
                              .nfeat = 2};
    }
    return 0;
}

/* a small shape of model m: the learner's part and the click-through part */
static void config_of(engine_config_t *c, const model_ops_t *m)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->kind, sizeof(c->kind), "%s", m->name);
    learner_config_default(&c->learner);
    c->learner.model.dim = 8;
    c->learner.towers.dim = 8;
    c->learner.towers.tower[0] = 16, c->learner.towers.tower[1] = 8, c->learner.towers.ntower = 2;
    c->learner.batch_events = 64;
    c->learner.ring_capacity = 2000;
    ctr_config_default(&c->ctr);
    c->ctr.ncat = 3; /* user, item, device */
    c->ctr.nnum = 1;
    c->ctr.emb_dim = 8;
    c->ctr.mlp[0] = 16, c->ctr.mlp[1] = 8;
    c->ctr.wide_bits = 12;
    c->ctr.batch = 64;
}

/* A checkpoint of one section, the daemon's LRNR: the engine's own save. */
static int save_lrnr(void *arg, ser_writer_t *w)
{
    return engine_save(arg, w) || w->err ? -1 : 0;
}

static int load_lrnr(void *arg, ser_reader_t *r, uint32_t version, char *err, size_t len)
{
    (void)version;
    return engine_load(arg, r, err, len);
}

static const ckpt_section_t lrnr = {"LRNR", 1, 1, save_lrnr, load_lrnr};

/* the published vectors of every user and item, concatenated */
static size_t vectors(engine_t *e, float *out)
{
    size_t n = 0;
    const int V = engine_vector_dim(e);
    for (int side = 0; side < 2; side++) {
        emb_table_t *t = engine_table(e, side);
        for (int k = 0; k < (side ? NI : NU); k++) {
            lrn_id_t id = side ? id_of(iid[k], 2) : id_of(uid[k], 1);
            uint32_t en = emb_find(t, id.h, id.id, id.len);
            if (en == EMB_NONE)
                continue;
            engine_vector(e, side ? 'i' : 'u', en, out + n);
            n += (size_t)V;
        }
    }
    return n;
}

/* the rows of the known ids, hmf's width */
static size_t rows_of(engine_t *e, float *out)
{
    size_t n = 0;
    const int R = engine_vector_dim(e) - 1; /* hmf: a row is dim + 1, a vector dim + 2 */
    for (int side = 0; side < 2; side++) {
        emb_table_t *t = engine_table(e, side);
        for (int k = 0; k < (side ? NI : NU); k++) {
            lrn_id_t id = side ? id_of(iid[k], 2) : id_of(uid[k], 1);
            uint32_t en = emb_find(t, id.h, id.id, id.len);
            if (en == EMB_NONE)
                continue;
            memcpy(out + n, emb_row(t, emb_entry_row(t, en)), sizeof(float) * (size_t)R);
            n += (size_t)R;
        }
    }
    return n;
}

/* the vectors, then the dense weights (lr learns no vector: its weights);
 * for a history model the rows, since its user vectors move with each
 * click (the mean of the last items' rows) whatever the learning rate */
static size_t params(engine_t *e, float *out)
{
    size_t n = engine_model(e)->flags & MODEL_HISTORY ? rows_of(e, out) : vectors(e, out);
    dense_block_t *d = engine_dense(e);
    assert_true(d->n <= 65536);
    if (d->n)
        memcpy(out + n, d->params, sizeof(float) * d->n);
    return n + d->n;
}

static void test_every_model_round_trips(void **state)
{
    (void)state;
    static float va[(NU + NI) * 256], vb[(NU + NI) * 256];
    for (int i = 0; model_at(i); i++) {
        const model_ops_t *m = model_at(i);
        engine_config_t c;
        config_of(&c, m);
        char err[256];
        engine_t *a = engine_create(&c, err, sizeof(err));
        if (!a)
            fail_msg("%s: %s", m->name, err);
        engine_t *b = engine_create(&c, err, sizeof(err));
        assert_non_null(b);
        assert_ptr_equal(engine_model(a), m);

        size_t half = NEV / 2;
        assert_int_equal(engine_learn(a, ev, half), half);
        engine_flush(a);
        char path[] = "/tmp/fr-engine-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        if (ckpt_write(path, &lrnr, 1, a, err, sizeof(err)))
            fail_msg("%s: %s", m->name, err);
        if (ckpt_read(path, &lrnr, 1, b, err, sizeof(err)))
            fail_msg("%s: %s", m->name, err);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);

        engine_learn(a, ev + half, NEV - half);
        engine_flush(a);
        engine_learn(b, ev + half, NEV - half);
        engine_flush(b);
        engine_stats_t sa, sb;
        engine_stats(a, &sa);
        engine_stats(b, &sb);
        assert_true(sa.lrn.events > 0);
        assert_int_equal(sa.lrn.events, sb.lrn.events);
        assert_true(sa.lrn.loss_ewma == sb.lrn.loss_ewma);
        assert_int_equal(sa.progressive, (m->flags & MODEL_FIELDS) != 0);
        size_t na = vectors(a, va), nb = vectors(b, vb);
        assert_int_equal(na, nb);
        assert_true(na > 0);
        assert_memory_equal(va, vb, sizeof(float) * na);
        dense_block_t *da = engine_dense(a), *db = engine_dense(b);
        assert_int_equal(da->n, db->n);
        if (da->n)
            assert_memory_equal(da->params, db->params, sizeof(float) * da->n);
        char lay[128];
        assert_int_equal(engine_vector_layout(a, lay, sizeof(lay)), 0);
        print_message("%-8s %lld bytes of checkpoint, resumed exactly; layout %s, %llu events, "
                      "loss %.4f%s\n",
                      m->name, (long long)st.st_size, lay, (unsigned long long)sa.lrn.events,
                      sa.lrn.loss_ewma, sa.progressive ? " (progressive AUC/logloss)" : "");

        /* the next model of the table refuses this state */
        const model_ops_t *o = model_at(i + 1) ? model_at(i + 1) : model_at(0);
        engine_config_t oc;
        config_of(&oc, o);
        engine_t *x = engine_create(&oc, err, sizeof(err));
        assert_non_null(x);
        assert_int_equal(ckpt_read(path, &lrnr, 1, x, err, sizeof(err)), -1);
        assert_non_null(strstr(err, m->name));
        engine_free(x);
        unlink(path);
        engine_free(a);
        engine_free(b);
    }
}

static void test_unknown_model_names_the_known(void **state)
{
    (void)state;
    engine_config_t c;
    config_of(&c, model_at(0));
    snprintf(c.kind, sizeof(c.kind), "nope");
    char err[256];
    assert_null(engine_create(&c, err, sizeof(err)));
    print_message("%s\n", err);
    assert_non_null(strstr(err, "nope"));
    for (int i = 0; model_at(i); i++)
        assert_non_null(strstr(err, model_at(i)->name));
    engine_free(NULL);
}

/* SIGHUP's path: engine_set_lr reaches every model's learning rates */
static void test_set_lr_reaches_every_model(void **state)
{
    (void)state;
    for (int i = 0; model_at(i); i++) {
        engine_config_t c;
        config_of(&c, model_at(i));
        char err[256];
        engine_t *a = engine_create(&c, err, sizeof(err)), *b = engine_create(&c, err, sizeof(err));
        assert_true(a && b);
        engine_learn(a, ev, NEV / 2);
        engine_flush(a);
        engine_learn(b, ev, NEV / 2);
        engine_flush(b);
        engine_set_lr(b, 1e-9f, 1e-9f); /* b: frozen from here on */
        static float v0[(NU + NI) * 256 + 65536], va[(NU + NI) * 256 + 65536],
            vb[(NU + NI) * 256 + 65536];
        size_t n = params(b, v0);
        engine_learn(a, ev + NEV / 2, NEV / 2);
        engine_flush(a);
        engine_learn(b, ev + NEV / 2, NEV / 2);
        engine_flush(b);
        params(a, va);
        params(b, vb);
        double da = 0, db = 0;
        for (size_t k = 0; k < n; k++) {
            da = fmax(da, fabs((double)va[k] - v0[k]));
            db = fmax(db, fabs((double)vb[k] - v0[k]));
        }
        print_message("%-8s vectors and dense weights moved %.3g at the configured rates, %.3g "
                      "at 1e-9\n",
                      model_at(i)->name, da, db);
        assert_true(da > 1e-4);
        assert_true(db < 1e-6);
        engine_free(a);
        engine_free(b);
    }
}

static void count_gone(void *arg, char side, const char *id, size_t len)
{
    (void)id, (void)len;
    ((int *)arg)[side == 'i']++;
}

/* max_users / max_items hold for every model: past them the least recently
 * seen ids are evicted and told to on_gone (their vectors leave Redis) */
static void test_evict_every_model(void **state)
{
    (void)state;
    for (int i = 0; model_at(i); i++) {
        engine_config_t c;
        config_of(&c, model_at(i));
        c.learner.max_users = 20;
        c.learner.max_items = 16;
        c.learner.ring_capacity = 10; /* the buffer spares few ids */
        char err[256];
        engine_t *e = engine_create(&c, err, sizeof(err));
        assert_non_null(e);
        int gone[2] = {0, 0};
        engine_on_gone(e, count_gone, gone);
        engine_learn(e, ev, NEV);
        engine_flush(e);
        engine_stats_t st;
        engine_stats(e, &st);
        print_message("%-8s users %llu (max 20), items %llu (max 16); gone: %d users, %d items\n",
                      model_at(i)->name, (unsigned long long)st.lrn.users.entries,
                      (unsigned long long)st.lrn.items.entries, gone[0], gone[1]);
        assert_true(st.lrn.users.entries <= 20);
        assert_true(st.lrn.items.entries <= 16);
        assert_true(gone[0] >= NU - 20);
        assert_true(gone[1] >= NI - 16);
        engine_free(e);
    }
}

/* Shared mode through the seam: every model either refuses it with a reason
 * or, in two engines that each learn half the users and exchange their
 * windows as model-log records (proto/mlog.h), ends with the same dense block,
 * item rows and shared digest in both. */
static void test_every_model_shared_or_refused(void **state)
{
    (void)state;
    static const mlog_apply_ops_t ops = {engine_apply_row_grad, engine_apply_row_value,
                                         engine_apply_dense};
    static const learner_window_sink_t sink = {mlog_put_row_grad, mlog_put_row_value,
                                               mlog_put_dense};
    static mlog_record_t rec;
    static lrn_event_t part[NEV];
    int shared = 0;
    for (int i = 0; model_at(i); i++) {
        const model_ops_t *m = model_at(i);
        engine_config_t c;
        config_of(&c, m);
        c.shared = 1;
        char err[256];
        engine_t *e[2] = {engine_create(&c, err, sizeof(err)), NULL};
        if (!e[0]) {
            print_message("%-8s refuses: %s\n", m->name, err);
            assert_true(strstr(err, "several members") != NULL);
            continue;
        }
        e[1] = engine_create(&c, err, sizeof(err));
        assert_non_null(e[1]);
        shared++;
        mlog_writer_t w = {0};
        int64_t next[2] = {0, 0};
        uint64_t refused = 0;
        for (int round = 0; round < 6; round++) {
            uint8_t *recs[2];
            size_t lens[2];
            for (int k = 0; k < 2; k++) { /* each learns its users' events of the round */
                size_t n = 0;
                for (int j = round * (NEV / 6); j < (round + 1) * (NEV / 6); j++)
                    if ((int)(ev[j].user.h % 2) == k)
                        part[n++] = ev[j];
                engine_learn(e[k], part, n);
                engine_flush(e[k]);
                mlog_begin(&w, MLOG_WINDOW, k ? "b" : "a", 1, (uint64_t)round, 0, -1, 0);
                mlog_add_range(&w, "in", k, next[k], next[k] + (int64_t)n - 1);
                next[k] += (int64_t)n;
                mlog_set_steps(&w, (uint32_t)engine_window_take(e[k], &sink, &w));
                const uint8_t *b;
                assert_int_equal(mlog_finish(&w, &b, &lens[k]), 0);
                recs[k] = malloc(lens[k]);
                assert_non_null(recs[k]);
                memcpy(recs[k], b, lens[k]);
            }
            for (int r = 0; r < 2; r++) { /* both apply both records, in log order */
                assert_int_equal(mlog_decode(recs[r], lens[r], &rec, err, sizeof(err)), 0);
                for (int k = 0; k < 2; k++)
                    refused += (uint64_t)mlog_apply(&rec, &ops, e[k], k == r);
                free(recs[r]);
            }
        }
        mlog_writer_free(&w);
        assert_int_equal(refused, 0);
        dense_block_t *da = engine_dense(e[0]), *db = engine_dense(e[1]);
        assert_int_equal(da->n, db->n);
        assert_memory_equal(da->params, db->params, sizeof(float) * da->n);
        emb_table_t *ia = engine_table(e[0], 1), *ib = engine_table(e[1], 1);
        int n = 0;
        for (int k = 0; k < NI; k++) {
            lrn_id_t id = id_of(iid[k], 2);
            uint32_t fa = emb_find(ia, id.h, id.id, id.len), fb = emb_find(ib, id.h, id.id, id.len);
            if (fa == EMB_NONE && fb == EMB_NONE)
                continue;
            assert_true(fa != EMB_NONE && fb != EMB_NONE);
            int dim = engine_vector_dim(e[0]); /* what each would publish for it */
            float *x = malloc(sizeof(float) * 2 * (size_t)dim);
            assert_non_null(x);
            engine_vector(e[0], 'i', fa, x);
            engine_vector(e[1], 'i', fb, x + dim);
            assert_memory_equal(x, x + dim, sizeof(float) * (size_t)dim);
            free(x);
            n++;
        }
        assert_true(n > NI / 2);
        /* and everything else they share (a click-through model's other
         * fields, wide weights and normaliser), which learning moved */
        assert_true(engine_shared_digest(e[0]) == engine_shared_digest(e[1]));
        engine_t *fresh = engine_create(&c, err, sizeof(err));
        assert_non_null(fresh);
        assert_true(engine_shared_digest(fresh) != engine_shared_digest(e[0]));
        engine_free(fresh);
        print_message("%-8s shared: %d items and %zu dense weights the same in both\n", m->name, n,
                      da->n);
        engine_free(e[0]);
        engine_free(e[1]);
    }
    assert_true(shared >= 6); /* all but history MF: neumf, dssm, mf, lr, widedeep, dcn */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_model_round_trips),
        cmocka_unit_test(test_unknown_model_names_the_known),
        cmocka_unit_test(test_set_lr_reaches_every_model),
        cmocka_unit_test(test_evict_every_model),
        cmocka_unit_test(test_every_model_shared_or_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
