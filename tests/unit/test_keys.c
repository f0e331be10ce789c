/* test_keys.c — the key schema's Redis Cluster slot: known slots and the
 * hash-tag rules (test_redis_cluster checks it against Redis itself). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "keys.h"

#include <stdio.h>
#include <string.h>

static unsigned slot(const char *k)
{
    return keys_slot(k, strlen(k));
}

/* slots as CLUSTER KEYSLOT gives them (Redis 7.0) */
static void test_known_slots(void **state)
{
    (void)state;
    assert_int_equal(slot("123456789"), 12739); /* CRC16-XMODEM's check value 0x31c3 */
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("bar"), 5061);
    assert_int_equal(slot("somekey"), 11058);
    assert_int_equal(slot(""), 0);
}

static void test_hash_tags(void **state)
{
    (void)state;
    /* the tag alone is hashed */
    assert_int_equal(slot("foo{hash_tag}"), 2515);
    assert_int_equal(slot("{user1000}.following"), slot("{user1000}.followers"));
    assert_int_equal(slot("{user1000}.following"), slot("user1000"));
    /* the first '{' and the next '}' */
    assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));
    assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));
    /* an empty tag, or no '}' after the '{': the whole key */
    assert_int_equal(slot("foo{}{bar}"), 8363);
    assert_int_equal(slot("foo{bar"), keys_slot("foo{bar", 7));
    assert_int_not_equal(slot("foo{}{bar}"), slot("bar"));
    /* bytes past the length do not count; a NUL inside does */
    assert_int_equal(keys_slot("foo{bar}", 3), slot("foo"));
    assert_int_not_equal(keys_slot("a\0b", 3), keys_slot("a", 1));
}

/* the schema's keys: no tags, so one model's vectors spread over the slots */
static void test_vectors_spread(void **state)
{
    (void)state;
    static unsigned char seen[KEYS_SLOTS];
    char key[128], id[32];
    int distinct = 0;
    for (int i = 0; i < 100000; i++) {
        size_t il = (size_t)snprintf(id, sizeof(id), "%d", i);
        size_t kl = keys_vector(key, sizeof(key), "fr", "neumf", i & 1 ? 'u' : 'i', id, il);
        unsigned s = keys_slot(key, kl);
        assert_true(s < KEYS_SLOTS);
        distinct += !seen[s];
        seen[s] = 1;
    }
    assert_true(distinct > KEYS_SLOTS * 99 / 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_slots),
        cmocka_unit_test(test_hash_tags),
        cmocka_unit_test(test_vectors_spread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
