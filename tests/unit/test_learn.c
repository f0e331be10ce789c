/* test_learn.c — end-to-end learning checks of the learner on the synthetic
 * stream (planted topic preferences, Zipf popularity): the model must beat
 * popularity ranking on leave-one-out, for every loss and sampler, and the
 * learner must count what it refuses instead of failing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dataset.h"
#include "harness.h"
#include "id.h"
#include "learner.h"
#include "loostream.h"

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

static void train_and_eval(loo_stream_t *s, const learner_config_t *cfg, int epochs,
                           loo_result_t *res, learner_stats_t *st)
{
    char err[256];
    learner_t *l = learner_create(cfg, err, sizeof(err));
    assert_non_null(l);
    for (int e = 0; e < epochs; e++)
        assert_int_equal(learner_learn(l, s->ev, s->ntrain), s->ntrain);
    assert_int_equal(dataset_eval_loo(l, &s->d, s->held, s->train, s->ntrain, 1, res), 0);
    learner_stats(l, st);
    learner_free(l);
}

/* The bar: NeuMF with BCE and uniform negatives doubles popularity. */
static void test_neumf_beats_popularity_twice(void **state)
{
    loo_stream_t *s = *state;
    learner_config_t cfg;
    learner_config_default(&cfg);
    loo_result_t r;
    learner_stats_t st;
    train_and_eval(s, &cfg, 3, &r, &st);
    print_message("bce/uniform: HR@10 %.3f NDCG@10 %.3f, popularity HR@10 %.3f\n", r.hr, r.ndcg,
                  r.pop_hr);
    assert_int_equal(r.users, s->d.nusers);
    assert_true(r.pop_hr > 0.05); /* the baseline itself is sane */
    assert_true(r.hr >= 2.0 * r.pop_hr);
    assert_true(r.ndcg >= 2.0 * r.pop_ndcg);
    assert_int_equal(st.events, 3 * s->ntrain);
    assert_int_equal(st.pairs, 3 * s->ntrain * (1 + cfg.negatives));
    assert_true(st.preq_n > 0);
}

/* Every loss and sampler learns: clearly above popularity ranking. */
static void test_every_loss_and_sampler_learns(void **state)
{
    loo_stream_t *s = *state;
    static const struct {
        loss_kind_t loss;
        samp_kind_t samp;
    } cases[] = {
        {LOSS_BPR, SAMP_UNIFORM},     {LOSS_SOFTMAX, SAMP_UNIFORM}, {LOSS_SOFTMAX, SAMP_POPULARITY},
        {LOSS_SOFTMAX, SAMP_INBATCH}, {LOSS_BCE, SAMP_POPULARITY},  {LOSS_BCE, SAMP_HARD},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        learner_config_t cfg;
        learner_config_default(&cfg);
        cfg.loss = cases[c].loss;
        cfg.sampler.kind = cases[c].samp;
        loo_result_t r;
        learner_stats_t st;
        train_and_eval(s, &cfg, 3, &r, &st);
        print_message("%s/%s: HR@10 %.3f NDCG@10 %.3f (popularity %.3f), loss %.4f\n",
                      loss_kind_name(cfg.loss), samp_kind_name(cfg.sampler.kind), r.hr, r.ndcg,
                      r.pop_hr, st.loss_ewma);
        assert_true(r.hr >= 1.5 * r.pop_hr);
        assert_true(isfinite(st.loss_ewma));
        assert_int_equal(st.skipped, 0);
    }
}

/* Two and three threads learn what one does, up to the order of float sums:
 * the same counts, HR@10 within 0.02, for NeuMF (BCE), DSSM (softmax) and
 * history MF (whose threads each work out users' contexts);
 * and a run is reproducible for a given number of threads. */
static void test_threads_learn_alike(void **state)
{
    loo_stream_t *s = *state;
    for (int kind = 0; kind < 3; kind++) {
        learner_config_t cfg;
        learner_config_default(&cfg);
        if (kind == 2) /* history contexts are worked out by every thread */
            snprintf(cfg.kind, sizeof(cfg.kind), "hmf");
        else if (kind) {
            snprintf(cfg.kind, sizeof(cfg.kind), "dssm");
            cfg.loss = LOSS_SOFTMAX;
            cfg.towers.dim = 32;
            cfg.towers.tower[0] = 64, cfg.towers.tower[1] = 32;
        }
        loo_result_t r1, r2, r3, r2b;
        learner_stats_t s1, s2, s3, s2b;
        train_and_eval(s, &cfg, 3, &r1, &s1);
        cfg.threads = 2;
        train_and_eval(s, &cfg, 3, &r2, &s2);
        train_and_eval(s, &cfg, 3, &r2b, &s2b);
        cfg.threads = 3;
        train_and_eval(s, &cfg, 3, &r3, &s3);
        print_message("%s: HR@10 with 1, 2, 3 threads: %.4f %.4f %.4f\n", cfg.kind, r1.hr, r2.hr,
                      r3.hr);
        assert_int_equal(s2.pairs, s1.pairs);
        assert_int_equal(s3.events, s1.events);
        assert_true(fabs(r2.hr - r1.hr) <= 0.02);
        assert_true(fabs(r3.hr - r1.hr) <= 0.02);
        assert_true(r2.hr == r2b.hr && r2.ndcg == r2b.ndcg && s2.loss_ewma == s2b.loss_ewma);
    }
}

/* max_users / max_items bound the tables: past the limit the least recently
 * seen ids are evicted (and reported gone) between micro-batches, so a table
 * exceeds its limit by at most one micro-batch; the latest ids stay. */
typedef struct {
    int users, items;
} gone_count_t;

static void on_gone(void *arg, char side, const char *id, size_t len)
{
    gone_count_t *g = arg;
    assert_true(len > 0 && id != NULL);
    if (side == 'u')
        g->users++;
    else
        g->items++;
}

static void test_eviction_bounds_tables(void **state)
{
    loo_stream_t *s = *state;
    learner_config_t cfg;
    learner_config_default(&cfg);
    cfg.max_users = 100;
    cfg.max_items = 300;
    cfg.ring_capacity = 64;
    cfg.batch_events = 32;
    char err[256];
    learner_t *l = learner_create(&cfg, err, sizeof(err));
    assert_non_null(l);
    gone_count_t g = {0, 0};
    learner_on_gone(l, on_gone, &g);
    size_t peak_u = 0, peak_i = 0;
    for (size_t k = 0; k < s->ntrain; k += 32) {
        size_t n = s->ntrain - k < 32 ? s->ntrain - k : 32;
        assert_int_equal(learner_learn(l, s->ev + k, n), n);
        learner_stats_t st;
        learner_stats(l, &st);
        peak_u = st.users.entries > peak_u ? st.users.entries : peak_u;
        peak_i = st.items.entries > peak_i ? st.items.entries : peak_i;
    }
    learner_stats_t st;
    learner_stats(l, &st);
    print_message("max 100 users, 300 items: peaks %zu, %zu; evicted %llu, %llu\n", peak_u, peak_i,
                  (unsigned long long)st.users.evicted, (unsigned long long)st.items.evicted);
    assert_true(peak_u <= 100 + 32 && peak_i <= 300 + 32);
    assert_true(st.users.evicted > 0 && st.items.evicted > 0);
    assert_int_equal(g.users, (int)st.users.evicted);
    assert_int_equal(g.items, (int)st.items.evicted);
    const lrn_event_t *last = &s->ev[s->ntrain - 1];
    assert_true(emb_find(learner_users(l), last->user.h, last->user.id, last->user.len) !=
                EMB_NONE);
    assert_true(emb_find(learner_items(l), last->item.h, last->item.id, last->item.len) !=
                EMB_NONE);
    assert_true(isfinite(st.loss_ewma));
    learner_free(l);
}

/* Prequential quality rises as the stream is learned. */
static void test_prequential_improves(void **state)
{
    loo_stream_t *s = *state;
    learner_config_t cfg;
    learner_config_default(&cfg);
    cfg.preq_rate = 0.2;
    cfg.ewma_alpha = 0.02;
    char err[256];
    learner_t *l = learner_create(&cfg, err, sizeof(err));
    assert_non_null(l);
    size_t tenth = s->ntrain / 10;
    learner_learn(l, s->ev, tenth);
    learner_stats_t early, late;
    learner_stats(l, &early);
    learner_learn(l, s->ev + tenth, s->ntrain - tenth);
    learner_stats(l, &late);
    print_message("prequential HR@10: after 10%% %.3f, at the end %.3f (recent)\n",
                  early.preq_hr10_ewma, late.preq_hr10_ewma);
    assert_true(late.preq_hr10_ewma > early.preq_hr10_ewma + 0.1);
    assert_true(late.loss_ewma < early.loss_ewma);
    learner_free(l);
}

/* Refused events are counted, the rest learned; learned ids become dirty. */
static void test_refusals_and_dirty(void **state)
{
    (void)state;
    learner_config_t cfg;
    learner_config_default(&cfg);
    cfg.batch_events = 4;
    char err[256];
    learner_t *l = learner_create(&cfg, err, sizeof(err));
    assert_non_null(l);
    char longid[EMB_MAX_ID_LEN + 10];
    memset(longid, 'x', sizeof(longid));
    lrn_event_t ev[40];
    char ub[40][24], ib[40][24];
    for (int i = 0; i < 40; i++) {
        size_t ul = id_from_int(i % 5, ub[i]), il = id_from_int(i % 13, ib[i]);
        ev[i] = (lrn_event_t){.user = {id_hash(ub[i], ul), ub[i], ul},
                              .item = {id_hash(ib[i], il), ib[i], il},
                              .ts_ms = 1000 + i,
                              .weight = 1.0f};
    }
    ev[7].item = (lrn_id_t){id_hash(longid, sizeof(longid)), longid, sizeof(longid)};
    ev[21].user = (lrn_id_t){id_hash(longid, sizeof(longid)), longid, sizeof(longid)};
    assert_int_equal(learner_learn(l, ev, 40), 38);
    learner_stats_t st;
    learner_stats(l, &st);
    assert_int_equal(st.bad, 2);
    assert_int_equal(st.events + st.skipped, 38);
    assert_int_equal(st.users.entries, 5);
    /* every user learned is dirty, and taking clears them */
    uint32_t out[64];
    assert_int_equal(emb_take_dirty(learner_users(l), out, 64), 5);
    assert_int_equal(emb_dirty_count(learner_users(l)), 0);
    /* unknown ids score with the fallback rows, finitely */
    lrn_id_t u = {id_hash("nobody", 6), "nobody", 6};
    lrn_id_t items[2] = {{id_hash("nothing", 7), "nothing", 7}, ev[0].item};
    float sc[2];
    learner_score(l, &u, items, 2, sc);
    assert_true(isfinite(sc[0]) && isfinite(sc[1]));
    learner_free(l);
}

/* Expiry removes ids unseen for expire_ms, but never one the rolling buffer
 * still refers to. */
static void test_expiry_spares_the_buffer(void **state)
{
    (void)state;
    learner_config_t cfg;
    learner_config_default(&cfg);
    cfg.ring_capacity = 4;
    cfg.batch_events = 2;
    cfg.expire_ms = 1000;
    char err[256];
    learner_t *l = learner_create(&cfg, err, sizeof(err));
    assert_non_null(l);
    char ub[12][24], ib[12][24];
    lrn_event_t ev[12];
    for (int i = 0; i < 12; i++) {
        size_t ul = id_from_int(100 + i, ub[i]), il = id_from_int(200 + i, ib[i]);
        ev[i] = (lrn_event_t){.user = {id_hash(ub[i], ul), ub[i], ul},
                              .item = {id_hash(ib[i], il), ib[i], il},
                              .ts_ms = (int64_t)i * 1000,
                              .weight = 1.0f};
    }
    assert_int_equal(learner_learn(l, ev, 12), 12);
    /* at t = 20 s all are stale, but the last 4 events are still in the ring */
    assert_int_equal(learner_expire(l, 20000), 2 * 8);
    learner_stats_t st;
    learner_stats(l, &st);
    assert_int_equal(st.users.entries, 4);
    assert_int_equal(st.items.entries, 4);
    assert_int_equal(st.users.expired, 8);
    for (int i = 0; i < 12; i++) {
        uint32_t e = emb_find(learner_users(l), ev[i].user.h, ev[i].user.id, ev[i].user.len);
        assert_true(i < 8 ? e == EMB_NONE : e != EMB_NONE);
    }
    learner_free(l);
}

/* A learner saved half way and loaded into a fresh one learns the second
 * half to exactly the same model as the original (every sampler and model). */
static void test_save_load_resumes_exactly(void **state)
{
    loo_stream_t *s = *state;
    typedef struct {
        const char *kind;
        samp_kind_t samp;
        loss_kind_t loss;
        int adam; /* rows by Adam, with its moments and step count saved */
    } rt_case_t;
    rt_case_t cases[32] = {{"neumf", SAMP_POPULARITY, LOSS_BCE, 0},
                           {"dssm", SAMP_INBATCH, LOSS_SOFTMAX, 0},
                           {"neumf", SAMP_HARD, LOSS_BPR, 0},
                           {"neumf", SAMP_UNIFORM, LOSS_BCE, 1}};
    size_t ncases = 4;
    for (int i = 0; model_at(i) && ncases < 32; i++) /* and every model the learner learns */
        if (!model_at(i)->engine)
            cases[ncases++] = (rt_case_t){model_at(i)->name, SAMP_UNIFORM, LOSS_BCE, 0};
    for (size_t c = 0; c < ncases; c++) {
        learner_config_t cfg;
        learner_config_default(&cfg);
        snprintf(cfg.kind, sizeof(cfg.kind), "%s", cases[c].kind);
        cfg.sampler.kind = cases[c].samp;
        cfg.loss = cases[c].loss;
        if (cases[c].adam)
            cfg.sparse_opt = OPT_ADAM;
        cfg.ring_capacity = 5000; /* the buffer wraps before the save */
        cfg.preq_rate = 0.05;
        char err[256];
        learner_t *a = learner_create(&cfg, err, sizeof(err));
        learner_t *b = learner_create(&cfg, err, sizeof(err));
        assert_true(a && b);
        size_t half = s->ntrain / 2;
        learner_learn(a, s->ev, half);
        harness_membuf_t m = {0};
        ser_writer_t w = {harness_mem_write, &m, 0};
        assert_int_equal(learner_save(a, &w), 0);
        ser_reader_t r = {harness_mem_read, &m, 0, NULL};
        assert_int_equal(learner_load(b, &r, err, sizeof(err)), 0);
        assert_int_equal(m.pos, m.len);
        learner_learn(a, s->ev + half, s->ntrain - half);
        learner_learn(b, s->ev + half, s->ntrain - half);
        learner_stats_t sa, sb;
        learner_stats(a, &sa);
        learner_stats(b, &sb);
        assert_int_equal(sa.events, sb.events);
        assert_int_equal(sa.preq_n, sb.preq_n);
        assert_true(sa.loss_ewma == sb.loss_ewma);
        lrn_id_t items[50];
        for (int k = 0; k < 50; k++)
            items[k] = s->d.items[k];
        float pa[50], pb[50];
        learner_score(a, &s->d.users[3], items, 50, pa);
        learner_score(b, &s->d.users[3], items, 50, pb);
        assert_memory_equal(pa, pb, sizeof(pa));
        print_message("%s/%s/%s/%s: %zu bytes saved; resumed exactly\n", cfg.kind,
                      samp_kind_name(cfg.sampler.kind), loss_kind_name(cfg.loss),
                      sparse_opt_name(cfg.sparse_opt), m.len);
        /* another optimizer's rows carry other state: refused, and said why */
        learner_config_t oc = cfg;
        oc.sparse_opt = cfg.sparse_opt == OPT_ADAM ? OPT_ADAGRAD : OPT_ADAM;
        learner_t *o = learner_create(&oc, err, sizeof(err));
        assert_non_null(o);
        m.pos = 0;
        ser_reader_t ro = {harness_mem_read, &m, 0, NULL};
        assert_int_equal(learner_load(o, &ro, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "optimizer"));
        learner_free(o);
        /* another shape refuses it */
        cfg.model.dim = 16;
        cfg.towers.dim = 16;
        learner_t *x = learner_create(&cfg, err, sizeof(err));
        m.pos = 0;
        ser_reader_t r2 = {harness_mem_read, &m, 0, NULL};
        assert_int_equal(learner_load(x, &r2, err, sizeof(err)), -1);
        learner_free(x);
        learner_free(a);
        learner_free(b);
        free(m.buf);
    }
}

/* A non-finite loss skips its micro-batch, counted, and leaves the model as
 * it was (dense weights and every row); learning goes on with the next. The
 * corrupt user is in the second half of the batch only, so with 2 threads
 * one chunk's loss is finite and the other's is not. */
static void nonfinite_batch(loo_stream_t *s, int threads)
{
    learner_config_t cfg;
    learner_config_default(&cfg);
    cfg.batch_events = 32;
    cfg.threads = threads;
    char err[256];
    learner_t *l = learner_create(&cfg, err, sizeof(err));
    assert_non_null(l);
    learner_learn(l, s->ev, 320);
    const lrn_id_t *u = &s->ev[0].user;
    emb_table_t *users = learner_users(l), *items = learner_items(l);
    uint32_t e = emb_find(users, u->h, u->id, u->len);
    float *row = emb_row(users, emb_entry_row(users, e));
    row[0] = NAN; /* as a corrupt update would leave it */
    dense_block_t *d = learner_dense(l);
    float *before = malloc(sizeof(float) * d->n);
    assert_non_null(before);
    memcpy(before, d->params, sizeof(float) * d->n);
    /* every row with its optimizer state: rows are one array */
    size_t ub = (size_t)((char *)emb_row(users, emb_row_cap(users)) - (char *)emb_row(users, 0));
    size_t ib = (size_t)((char *)emb_row(items, emb_row_cap(items)) - (char *)emb_row(items, 0));
    float *ubefore = malloc(ub), *ibefore = malloc(ib);
    assert_non_null(ubefore);
    assert_non_null(ibefore);
    memcpy(ubefore, emb_row(users, 0), ub);
    memcpy(ibefore, emb_row(items, 0), ib);
    /* known ids (the batch adds no row): 16 events of other users, then 16
     * of the corrupt one. Each finds negatives among the items of the 320
     * events learned before, so the 32 groups stay in order and chunk 0 of
     * 2 takes the first 16 (the test's own check: a NaN in chunk 1 only) */
    lrn_event_t one[32];
    int k = 0;
    for (int i = 1; i < 320 && k < 16; i++)
        if (s->ev[i].user.h != u->h)
            one[k++] = s->ev[i];
    assert_int_equal(k, 16);
    for (; k < 32; k++) {
        one[k] = s->ev[k];
        one[k].user = *u;
    }
    learner_learn(l, one, 32);
    learner_stats_t st;
    learner_stats(l, &st);
    assert_int_equal(st.nonfinite, 1);
    assert_memory_equal(before, d->params, sizeof(float) * d->n);
    assert_int_equal(memcmp(ubefore, emb_row(users, 0), ub), 0);
    assert_int_equal(memcmp(ibefore, emb_row(items, 0), ib), 0);
    row[0] = 0.0f;
    learner_learn(l, s->ev + 500, 64);
    learner_stats(l, &st);
    assert_int_equal(st.nonfinite, 1);
    assert_true(isfinite(st.loss_ewma));
    assert_memory_not_equal(before, d->params, sizeof(float) * d->n);
    free(before);
    free(ubefore);
    free(ibefore);
    learner_free(l);
}

static void test_nonfinite_batch_is_skipped(void **state)
{
    nonfinite_batch(*state, 1);
}

static void test_nonfinite_half_batch_is_skipped_2_threads(void **state)
{
    nonfinite_batch(*state, 2);
}

/* A cold start: the first event's item is the only one known, so there is
 * no negative to draw. BCE learns the positive on its own; BPR cannot and
 * counts it skipped. */
static void test_cold_start_first_event(void **state)
{
    loo_stream_t *s = *state;
    for (int loss = LOSS_BCE; loss <= LOSS_BPR; loss++) {
        learner_config_t cfg;
        learner_config_default(&cfg);
        cfg.loss = (loss_kind_t)loss;
        char err[256];
        learner_t *l = learner_create(&cfg, err, sizeof(err));
        assert_non_null(l);
        assert_int_equal(learner_learn(l, s->ev, 1), 1);
        learner_stats_t st;
        learner_stats(l, &st);
        assert_int_equal(st.events, loss == LOSS_BCE ? 1 : 0);
        assert_int_equal(st.skipped, loss == LOSS_BCE ? 0 : 1);
        assert_int_equal(st.negatives, 0);
        assert_int_equal(st.pairs, loss == LOSS_BCE ? 1 : 0);
        learner_free(l);
    }
}

/* In-batch negatives are the micro-batch's other positives: a batch whose
 * every positive is the same item has none to offer (each user has that
 * item). BPR and softmax skip each such event and count it; BCE learns it
 * alone, pointwise. A following batch of distinct items skips nothing.
 * One thread draws on the learner's stream, two in the parallel phase. */
static void test_inbatch_one_item_batch_skips(void **state)
{
    (void)state;
    enum { B = 8 };
    static const struct {
        loss_kind_t loss;
        int threads;
        uint64_t skipped, events, pairs; /* after both batches */
    } cases[] = {
        {LOSS_SOFTMAX, 1, B, B, B * 3},     {LOSS_SOFTMAX, 2, B, B, B * 3},
        {LOSS_BPR, 1, B, B, B * 3},         {LOSS_BPR, 2, B, B, B * 3},
        {LOSS_BCE, 1, 0, 2 * B, B + B * 3},
    };
    char ub[B][24], ib[B][24];
    lrn_event_t same[B], distinct[B];
    for (int b = 0; b < B; b++) {
        size_t ul = id_from_int(100 + b, ub[b]), il = id_from_int(1000 + b, ib[b]);
        lrn_id_t u = {id_hash(ub[b], ul), ub[b], ul}, it = {id_hash(ib[b], il), ib[b], il};
        same[b] = (lrn_event_t){
            .user = u, .item = {id_hash("42", 2), "42", 2}, .ts_ms = 1000 + b, .weight = 1.0f};
        distinct[b] = (lrn_event_t){.user = u, .item = it, .ts_ms = 2000 + b, .weight = 1.0f};
    }
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        learner_config_t cfg;
        learner_config_default(&cfg);
        cfg.loss = cases[c].loss;
        cfg.sampler.kind = SAMP_INBATCH;
        cfg.negatives = 2;
        cfg.batch_events = B;
        cfg.threads = cases[c].threads;
        char err[256];
        learner_t *l = learner_create(&cfg, err, sizeof(err));
        assert_non_null(l);
        assert_int_equal(learner_learn(l, same, B), B);
        learner_stats_t st;
        learner_stats(l, &st);
        assert_int_equal(st.skipped, cases[c].skipped);
        assert_int_equal(learner_learn(l, distinct, B), B);
        learner_stats(l, &st);
        assert_int_equal(st.skipped, cases[c].skipped);
        assert_int_equal(st.events, cases[c].events);
        assert_int_equal(st.events + st.skipped, 2 * B);
        assert_int_equal(st.pairs, cases[c].pairs);
        learner_free(l);
    }
}

/* Experience replay learns again from the buffer: one pass with two events
 * replayed per event ranks better than one pass alone, counts its events
 * apart, and a history model (which leaves the replayed item out of the
 * context) learns with it too. */
static void test_replay_learns_more_from_one_pass(void **state)
{
    loo_stream_t *s = *state;
    const char *models[] = {"neumf", "hmf"};
    for (int m = 0; m < 2; m++) {
        loo_result_t r0, r2;
        learner_stats_t st0, st2;
        learner_config_t cfg;
        learner_config_default(&cfg);
        snprintf(cfg.kind, sizeof(cfg.kind), "%s", models[m]);
        train_and_eval(s, &cfg, 1, &r0, &st0);
        cfg.replay = 2.0f;
        train_and_eval(s, &cfg, 1, &r2, &st2);
        print_message("%s one pass: HR@10 %.3f, replay 2: %.3f (%llu replayed of %zu events)\n",
                      models[m], r0.hr, r2.hr, (unsigned long long)st2.replayed, s->ntrain);
        assert_int_equal(st0.replayed, 0);
        assert_int_equal(st2.events, st0.events);
        assert_int_equal(st2.events, s->ntrain);
        assert_true(st2.replayed <= 2 * s->ntrain);
        assert_true(st2.replayed > (m ? 1.0 : 1.9) * s->ntrain); /* hmf: a user once a batch */
        assert_true(r2.hr >= r0.hr + 0.005);                     /* 0.012 (neumf), 0.020 (hmf) */
    }
}

static void test_config_errors(void **state)
{
    (void)state;
    learner_config_t cfg;
    char err[256];
    learner_config_default(&cfg);
    cfg.negatives = 0;
    assert_null(learner_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "negatives"));
    learner_config_default(&cfg);
    cfg.lr_sparse = 0;
    assert_null(learner_create(&cfg, err, sizeof(err)));
    learner_config_default(&cfg);
    cfg.model.mlp[0] = 63;
    assert_null(learner_create(&cfg, err, sizeof(err)));
    learner_config_default(&cfg);
    cfg.replay = 16.5f;
    assert_null(learner_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "replay"));
    learner_config_default(&cfg);
    cfg.replay = 1.0f;
    cfg.shared = 1;
    assert_null(learner_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "replay"));
    learner_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_neumf_beats_popularity_twice),
        cmocka_unit_test(test_every_loss_and_sampler_learns),
        cmocka_unit_test(test_prequential_improves),
        cmocka_unit_test(test_threads_learn_alike),
        cmocka_unit_test(test_eviction_bounds_tables),
        cmocka_unit_test(test_refusals_and_dirty),
        cmocka_unit_test(test_expiry_spares_the_buffer),
        cmocka_unit_test(test_save_load_resumes_exactly),
        cmocka_unit_test(test_nonfinite_batch_is_skipped),
        cmocka_unit_test(test_nonfinite_half_batch_is_skipped_2_threads),
        cmocka_unit_test(test_cold_start_first_event),
        cmocka_unit_test(test_inbatch_one_item_batch_skips),
        cmocka_unit_test(test_replay_learns_more_from_one_pass),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, loo_stream_setup, loo_stream_teardown);
}
