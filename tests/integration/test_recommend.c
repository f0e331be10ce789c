/* test_recommend.c — `freshrec recommend` against a real redis-server on a
 * free loopback port, with vectors written here: the top k by the GMF term,
 * and --exclude-seen FILE / --exclude ID,... leaving out what the user has
 * already seen (before the top k is taken). Not for: the daemon's
 * publishing (test_publish). */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "keys.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void set_vector(redisContext *r, const char *key, const float *v, int dim)
{
    unsigned char b[64];
    keys_f32le_encode(b, v, (size_t)dim);
    redisReply *rep = redisCommand(r, "SET %s %b", key, b, (size_t)(4 * dim));
    assert_non_null(rep);
    freeReplyObject(rep);
}

static char *slurp(const char *path)
{
    static char buf[1 << 14];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_exclude_seen(void **state)
{
    (void)state;
    int port = harness_free_port();
    pid_t redis = harness_redis_start(port);
    assert_true(redis > 0);
    redisContext *r = redisConnect("127.0.0.1", port);
    assert_non_null(r);
    /* NeuMF of dim 4 (gmf 0..2): score = wout_0 p_0 q_0 + wout_1 p_1 q_1 = q_0 */
    float dense[3] = {1, 1, 0};
    unsigned char db[12];
    keys_f32le_encode(db, dense, 3);
    redisReply *rep = redisCommand(r,
                                   "HSET fr:neumf:meta kind neumf dim 4 layout gmf:0:2,mlp:2:4 "
                                   "dense_layout wout:2,bout:1 dense %b",
                                   db, sizeof(db));
    assert_non_null(rep);
    freeReplyObject(rep);
    float u[4] = {1, 0, 0, 0};
    set_vector(r, "fr:neumf:u:u1", u, 4);
    char key[64];
    for (int i = 1; i <= 5; i++) { /* i1 scores 5, ..., i5 scores 1 */
        float q[4] = {(float)(6 - i), 0, 0, 0};
        snprintf(key, sizeof(key), "fr:neumf:i:i%d", i);
        set_vector(r, key, q, 4);
    }
    redisFree(r);

    char data[256], out[256], redis_at[64], bin[256];
    snprintf(data, sizeof(data), "%s/tests/test_recommend.data", harness_build());
    harness_log_path(out, sizeof(out), "test_recommend");
    snprintf(redis_at, sizeof(redis_at), "127.0.0.1:%d", port);
    snprintf(bin, sizeof(bin), "%s/freshrec", harness_build());
    FILE *f = fopen(data, "w");
    assert_non_null(f);
    /* u1 has seen i1 and i3 (two separators freshrec train reads); u2's i2 is not u1's;
     * i9 has no vector */
    fputs("# user item rating ts\nu1\ti1\t5\t881250949\nu2 i2 3 881250950\n"
          "u1::i3::4::881250951\nu1\ti9\t1\t881250952\nu10\ti4\t1\t881250953\n",
          f);
    assert_int_equal(fclose(f), 0);

    const struct {
        const char *args[6];
        int rc;
        const char *want; /* in the output */
        const char *absent;
    } cases[] = {
        {{NULL}, 0, "1  i1 ", NULL},
        {{"--exclude-seen", data},
         0,
         "(retrieval score: GMF term of NeuMF; 2 seen excluded)\n"
         "  1  i2 ",
         " i1 "},
        {{"--exclude-seen", data}, 0, "  2  i4 ", " i3 "},
        {{"--exclude-seen", data, "--exclude", "i2,i4"}, 0, "  1  i5 ", " i2 "},
        {{"--exclude", "i1,,i2"}, 0, "top 2 of 3 items for user u1", " i1 "},
        {{"--exclude", "i1,i2,i3,i4,i5"}, 1, "every one of the 5 item vectors", NULL},
        {{"--exclude-seen", "/nonexistent/seen.data"}, 2, "--exclude-seen: /nonexistent", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[16] = {bin, "recommend", "--redis", redis_at, "--user", "u1", "-k", "2"};
        int n = 8;
        for (int j = 0; j < 6 && cases[i].args[j]; j++)
            argv[n++] = (char *)cases[i].args[j];
        argv[n] = NULL;
        unlink(out);
        pid_t p = harness_spawn(argv, out);
        assert_true(p > 0);
        int rc = harness_wait(p, 10000);
        const char *text = slurp(out);
        if (rc != cases[i].rc || !strstr(text, cases[i].want) ||
            (cases[i].absent && strstr(text, cases[i].absent)))
            fail_msg("case %zu: exit %d (want %d), output:\n%s\nwant \"%s\"%s%s", i, rc,
                     cases[i].rc, text, cases[i].want, cases[i].absent ? ", not " : "",
                     cases[i].absent ? cases[i].absent : "");
    }
    unlink(data);
    harness_stop(redis);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exclude_seen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
