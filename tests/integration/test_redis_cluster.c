/* test_redis_cluster.c — freshrec and Redis Cluster, on loopback: the key
 * schema's slot function against Redis's own CLUSTER KEYSLOT. */
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

/* Random keys, of the schema's shape and of any bytes (braces, empty tags,
 * NULs, unmatched braces), each slotted by keys_slot and by a cluster-enabled
 * redis-server: the same slot for every one. */
static void test_slot_matches_redis(void **state)
{
    (void)state;
    char dir[] = "/tmp/fr-keyslot-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int port = harness_free_port();
    const char *extra[] = {"--cluster-enabled", "yes", "--dir", dir, NULL};
    pid_t redis = harness_redis_start_with(port, extra);
    assert_true(redis > 0);
    redisContext *c = redisConnect("127.0.0.1", port);
    assert_true(c && !c->err);
    unsigned long long x = harness_seed("the keys") | 1;
    enum { KEYS = 5000 };
    static const char alphabet[] = "{}ab:{}c\0ui9";
    int mismatches = 0, tagged = 0;
    for (int n = 0; n < KEYS; n++) {
        char key[64];
        size_t len;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (n % 2 == 0) { /* as the daemon names vectors */
            char id[24];
            size_t il = (size_t)snprintf(id, sizeof(id), "%llu", x % 1000000);
            len = keys_vector(key, sizeof(key), "fr", "neumf", n % 4 ? 'u' : 'i', id, il);
        } else { /* any bytes, braces likely */
            len = (size_t)(x % 24);
            unsigned long long y = x;
            for (size_t i = 0; i < len; i++) {
                y ^= y << 13, y ^= y >> 7, y ^= y << 17;
                key[i] = y % 3 ? alphabet[y % (sizeof(alphabet) - 1)] : (char)(y >> 8);
            }
        }
        redisReply *r = redisCommand(c, "CLUSTER KEYSLOT %b", key, len);
        assert_true(r && r->type == REDIS_REPLY_INTEGER);
        unsigned want = (unsigned)r->integer, got = keys_slot(key, len);
        freeReplyObject(r);
        const char *open = memchr(key, '{', len);
        tagged += open && memchr(open, '}', len - (size_t)(open - key)) != NULL;
        if (got != want && mismatches++ < 5)
            print_message("key %d (%zu bytes): keys_slot %u, CLUSTER KEYSLOT %u\n", n, len, got,
                          want);
    }
    print_message("%d keys (%d with braces in pairs): %d slots differ from CLUSTER KEYSLOT's\n",
                  KEYS, tagged, mismatches);
    redisFree(c);
    harness_stop(redis);
    harness_rmtree(dir);
    assert_true(tagged > KEYS / 10);
    assert_int_equal(mismatches, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_matches_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
