/* test_shared.c — several learners in shared mode (learner.h) learning one
 * model through a model log (proto/mlog.h) kept in memory (cli/members.c):
 * each member learns the events of its users' partition, hands out a window
 * per round as a log record, and applies every accepted record in log order.
 * Checked: the members' shared state (item rows with their optimizer state,
 * the dense block with its Adam state) is byte for byte the same; every
 * user's row reaches every member; the accepted ranges tile the partitions;
 * and the model learns as one member does. Not for: Kafka or the daemon. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "id.h"
#include "learner.h"
#include "loostream.h"
#include "members.h"

enum { WINDOW_EVENTS = 1024 };

static void test_members_learn_one_model(void **state)
{
    loo_stream_t *s = *state;
    learner_config_t cfg;
    learner_config_default(&cfg);
    loo_result_t r1, r3, rs;
    char err[256];
    /* one learner as today */
    learner_t *l = learner_create(&cfg, err, sizeof(err));
    assert_non_null(l);
    assert_int_equal(learner_learn(l, s->ev, s->ntrain), s->ntrain);
    assert_int_equal(dataset_eval_loo(l, &s->d, s->held, s->train, s->ntrain, 1, &rs), 0);
    learner_free(l);
    /* one member, and three */
    members_t *g1 = members_create(&cfg, 1, err, sizeof(err));
    assert_non_null(g1);
    assert_int_equal(members_learn(g1, s->ev, s->ntrain, WINDOW_EVENTS), 0);
    assert_int_equal(
        dataset_eval_loo(members_learner(g1, 0), &s->d, s->held, s->train, s->ntrain, 1, &r1), 0);
    members_free(g1);
    members_t *g = members_create(&cfg, 3, err, sizeof(err));
    assert_non_null(g);
    assert_int_equal(members_learn(g, s->ev, s->ntrain, WINDOW_EVENTS), 0);
    /* the shared state is the same on every member */
    for (int m = 1; m < 3; m++) {
        int same = members_same(g, 0, m, err, sizeof(err));
        if (same)
            print_message("member %d: %s\n", m, err);
        assert_int_equal(same, 0);
    }
    /* every user reached every member: member 0 ranks them all */
    emb_stats_t us;
    emb_stats(learner_users(members_learner(g, 0)), &us);
    assert_int_equal(us.entries, s->d.nusers);
    assert_int_equal(
        dataset_eval_loo(members_learner(g, 0), &s->d, s->held, s->train, s->ntrain, 1, &r3), 0);
    /* the accepted ranges tile each partition: together, every event once */
    members_stats_t st;
    members_stats(g, &st);
    int64_t total = 0;
    for (int m = 0; m < 3; m++)
        total += members_next_offset(g, m);
    assert_int_equal(total, (int64_t)s->ntrain);
    assert_int_equal(st.events, s->ntrain);
    assert_int_equal(st.refused, 0);
    assert_int_equal(st.refusals, 0);
    print_message("LOO HR@10: one learner %.3f, one member %.3f, three members %.3f (popularity "
                  "%.3f); %zu records, %.0f log bytes per event\n",
                  rs.hr, r1.hr, r3.hr, rs.pop_hr, st.records, (double)st.bytes / (double)s->ntrain);
    /* Learning through the log costs nothing measurable: one member, its
     * items a window behind, against one learner; three members against one
     * (they learn in more, smaller micro-batches: each takes its share of a
     * round, so they take more steps, and may do better, not worse). */
    assert_true(fabs(r1.hr - rs.hr) <= 0.02);
    assert_true(r3.hr >= r1.hr - 0.02);
    assert_true(r3.hr >= 1.4 * r3.pop_hr);
    members_free(g);
}

/* What shared mode refuses, with a reason. */
static void test_shared_refuses(void **state)
{
    (void)state;
    learner_config_t cfg;
    learner_config_default(&cfg);
    cfg.shared = 1;
    char err[256];
    cfg.admit_after = 2;
    assert_null(learner_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "admit_after"));
    learner_config_default(&cfg);
    cfg.shared = 1;
    snprintf(cfg.kind, sizeof(cfg.kind), "hmf");
    assert_null(learner_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "history"));
    /* bad widths and ids are refused, not applied */
    learner_config_default(&cfg);
    cfg.shared = 1;
    learner_t *l = learner_create(&cfg, err, sizeof(err));
    assert_non_null(l);
    float v[1024] = {0};
    int R = learner_user_width(l) / 2; /* Adagrad rows: R floats of state */
    assert_int_equal(learner_apply_item_grad(l, "i", 1, v, v, R + 1), -1);
    assert_int_equal(learner_apply_item_grad(l, "", 0, v, v, R), -1);
    assert_int_equal(learner_apply_user_value(l, "u", 1, v, learner_user_width(l) - 1), -1);
    assert_int_equal(learner_apply_dense_grad(l, v, 3, 1), -1);
    assert_int_equal(learner_apply_item_grad(l, "i", 1, v, v, R), 0);
    learner_free(l);
}

/* An id another member learned counts as seen when its record was made:
 * expiry keeps it while that is recent and removes it after. */
static void test_applied_ids_seen(void **state)
{
    (void)state;
    learner_config_t cfg;
    learner_config_default(&cfg);
    cfg.shared = 1;
    cfg.expire_ms = 60000;
    char err[256];
    learner_t *l = learner_create(&cfg, err, sizeof(err));
    assert_non_null(l);
    float v[1024] = {0};
    const int64_t t = 1764486000000LL;
    learner_apply_at(l, t);
    assert_int_equal(learner_apply_user_value(l, "u7", 2, v, learner_user_width(l)), 0);
    emb_table_t *users = learner_users(l);
    assert_int_equal(learner_expire(l, t + 30000), 0);
    assert_int_not_equal(emb_find(users, id_hash("u7", 2), "u7", 2), EMB_NONE);
    /* a later record renews it */
    learner_apply_at(l, t + 50000);
    assert_int_equal(learner_apply_user_value(l, "u7", 2, v, learner_user_width(l)), 0);
    assert_int_equal(learner_expire(l, t + 90000), 0);
    assert_int_equal(learner_expire(l, t + 200000), 1);
    assert_int_equal(emb_find(users, id_hash("u7", 2), "u7", 2), EMB_NONE);
    learner_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_learn_one_model),
        cmocka_unit_test(test_shared_refuses),
        cmocka_unit_test(test_applied_ids_seen),
    };
    return cmocka_run_group_tests(tests, loo_stream_setup, loo_stream_teardown);
}
