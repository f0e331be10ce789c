/* test_event.c — unit tests of the event wire format (proto/event.c): tables
 * of valid messages with the fields they decode to, of invalid ones with the
 * reason for each refusal, the size limit, the detail text, the configured
 * kinds, the encoder's round trip, and a mutation smoke test for safety.
 * Not for: fuzzing proper (a fuzz target comes later), Kafka, the learner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* defaults plus purchase (5) and like (2.5): kinds 2 and 3 */
static event_kinds_t test_kinds(void)
{
    event_kinds_t k;
    char err[256] = "";
    assert_int_equal(event_kinds_parse(&k, "purchase:5,like:2.5", err, sizeof(err)), 0);
    assert_int_equal(k.n, 4);
    return k;
}

/* A detail is non-empty, NUL-terminated within its buffer, printable ASCII
 * and short, whatever the message held. */
static void assert_detail_sane(const char *detail, size_t dlen)
{
    size_t n = strlen(detail);
    assert_true(n > 0);
    assert_true(n < dlen);
    assert_true(n <= 200);
    for (size_t i = 0; i < n; i++)
        assert_true(detail[i] >= 0x20 && detail[i] < 0x7f);
}

static event_reason_t decode(event_t *ev, const char *json, const event_kinds_t *k, char *detail,
                             size_t dlen)
{
    return event_decode(ev, json, strlen(json), k, EVENT_DEFAULT_MAX_BYTES, detail, dlen);
}

/* ---- valid messages ---- */

typedef struct {
    const char *json;
    const char *user, *item;
    int kind;
    float weight;
    int has_ts;
    int64_t ts;
    int ncat, nnum;
} valid_case_t;

static const valid_case_t valid[] = {
    {"{\"user\":\"u42\",\"item\":\"i17\",\"type\":\"click\",\"ts\":1764486000123,"
     "\"cat\":{\"device\":\"ios\"},\"num\":{\"price\":12.5}}",
     "u42", "i17", EVENT_CLICK, 1.0f, 1, 1764486000123LL, 1, 1},
    {"{\"user\":\"u42\",\"item\":\"i17\",\"type\":\"click\"}", "u42", "i17", EVENT_CLICK, 1.0f, 0,
     0, 0, 0},
    {"{\"user\":42,\"item\":-7,\"type\":\"impression\"}", "42", "-7", EVENT_IMPRESSION, 0.0f, 0, 0,
     0, 0},
    {"{\"user\":9223372036854775807,\"item\":-9223372036854775808,\"type\":\"click\"}",
     "9223372036854775807", "-9223372036854775808", EVENT_CLICK, 1.0f, 0, 0, 0, 0},
    {"{\"user\":0,\"item\":-0,\"type\":\"click\"}", "0", "0", EVENT_CLICK, 1.0f, 0, 0, 0, 0},
    /* weighted kinds */
    {"{\"user\":\"a\",\"item\":\"b\",\"type\":\"purchase\",\"ts\":1}", "a", "b", 2, 5.0f, 1, 1, 0,
     0},
    {"{\"user\":\"a\",\"item\":\"b\",\"type\":\"like\"}", "a", "b", 3, 2.5f, 0, 0, 0, 0},
    /* ts bounds, and a real that is a whole number */
    {"{\"user\":\"a\",\"item\":\"b\",\"type\":\"click\",\"ts\":0}", "a", "b", EVENT_CLICK, 1.0f, 1,
     0, 0, 0},
    {"{\"user\":\"a\",\"item\":\"b\",\"type\":\"click\",\"ts\":4102444800000}", "a", "b",
     EVENT_CLICK, 1.0f, 1, EVENT_MAX_TS, 0, 0},
    {"{\"user\":\"a\",\"item\":\"b\",\"type\":\"click\",\"ts\":1.764486000123e12}", "a", "b",
     EVENT_CLICK, 1.0f, 1, 1764486000123LL, 0, 0},
    {"{\"user\":\"a\",\"item\":\"b\",\"type\":\"click\",\"ts\":1764486000123.0}", "a", "b",
     EVENT_CLICK, 1.0f, 1, 1764486000123LL, 0, 0},
    /* null optional fields count as absent */
    {"{\"user\":\"a\",\"item\":\"b\",\"type\":\"click\",\"ts\":null,\"cat\":null,\"num\":null}",
     "a", "b", EVENT_CLICK, 1.0f, 0, 0, 0, 0},
    /* unknown fields are ignored, whatever they hold; any key order */
    {"{\"v\":2,\"session\":{\"x\":[1,2,{\"y\":null}]},\"type\":\"click\",\"item\":\"b\","
     "\"user\":\"a\",\"price\":\"n/a\",\"Type\":7}",
     "a", "b", EVENT_CLICK, 1.0f, 0, 0, 0, 0},
    /* whitespace, escapes and UTF-8 in ids */
    {" \n{ \"user\" : \"a\\\"b\\\\c\" ,\t\"item\":\"\\u00e9t\xc3\xa9\",\"type\":\"click\"}\n ",
     "a\"b\\c", "\xc3\xa9t\xc3\xa9", EVENT_CLICK, 1.0f, 0, 0, 0, 0},
    {"{\"user\":\"\xf0\x9f\x98\x80 x/y:z\",\"item\":\"\\ud83d\\ude00\",\"type\":\"click\"}",
     "\xf0\x9f\x98\x80 x/y:z", "\xf0\x9f\x98\x80", EVENT_CLICK, 1.0f, 0, 0, 0, 0},
    /* features: empty objects, several, empty value, integer and tiny num */
    {"{\"user\":\"a\",\"item\":\"b\",\"type\":\"click\",\"cat\":{},\"num\":{}}", "a", "b",
     EVENT_CLICK, 1.0f, 0, 0, 0, 0},
    {"{\"user\":\"a\",\"item\":\"b\",\"type\":\"click\",\"cat\":{\"device\":\"ios\",\"country\":"
     "\"\",\"lang\":\"fr-CA\"},\"num\":{\"price\":3,\"score\":-0.25,\"tiny\":1e-999}}",
     "a", "b", EVENT_CLICK, 1.0f, 0, 0, 3, 3},
};

static void test_valid_messages(void **state)
{
    (void)state;
    event_kinds_t k = test_kinds();
    for (size_t i = 0; i < N(valid); i++) {
        const valid_case_t *c = &valid[i];
        event_t ev;
        char detail[256] = "unchanged";
        event_reason_t r = decode(&ev, c->json, &k, detail, sizeof(detail));
        if (r != EVR_OK)
            fail_msg("case %zu: %s: %s", i, event_reason_name(r), detail);
        assert_string_equal(detail, "");
        assert_string_equal(ev.user, c->user);
        assert_int_equal(ev.user_len, strlen(c->user));
        assert_string_equal(ev.item, c->item);
        assert_int_equal(ev.item_len, strlen(c->item));
        assert_int_equal(ev.kind, c->kind);
        assert_true(ev.weight == c->weight);
        assert_int_equal(ev.has_ts, c->has_ts);
        if (c->has_ts)
            assert_int_equal(ev.ts_ms, c->ts);
        assert_int_equal(ev.ncat, c->ncat);
        assert_int_equal(ev.nnum, c->nnum);
    }
}

static void test_feature_values(void **state)
{
    (void)state;
    event_kinds_t k = test_kinds();
    event_t ev;
    /* the last valid case: names and values, in message order */
    assert_int_equal(decode(&ev, valid[N(valid) - 1].json, &k, NULL, 0), EVR_OK);
    assert_string_equal(ev.cat[0].name, "device");
    assert_string_equal(ev.cat[0].value, "ios");
    assert_string_equal(ev.cat[1].name, "country");
    assert_string_equal(ev.cat[1].value, "");
    assert_string_equal(ev.cat[2].name, "lang");
    assert_string_equal(ev.cat[2].value, "fr-CA");
    assert_string_equal(ev.num[0].name, "price");
    assert_true(ev.num[0].value == 3.0);
    assert_string_equal(ev.num[1].name, "score");
    assert_true(ev.num[1].value == -0.25);
    assert_string_equal(ev.num[2].name, "tiny");
    assert_true(ev.num[2].value == 0.0); /* underflow reads as 0 */

    /* the same name may be in cat and num */
    const char *both = "{\"user\":1,\"item\":2,\"type\":\"click\",\"cat\":{\"x\":\"1\"},"
                       "\"num\":{\"x\":1.5}}";
    assert_int_equal(decode(&ev, both, &k, NULL, 0), EVR_OK);
    assert_string_equal(ev.cat[0].name, "x");
    assert_string_equal(ev.num[0].name, "x");
    assert_true(ev.num[0].value == 1.5);
}

/* Integer 42 and string "42" name the same id. */
static void test_integer_id_is_its_text(void **state)
{
    (void)state;
    event_t a, b;
    assert_int_equal(decode(&a, "{\"user\":42,\"item\":-17,\"type\":\"click\"}", NULL, NULL, 0),
                     EVR_OK);
    assert_int_equal(
        decode(&b, "{\"user\":\"42\",\"item\":\"-17\",\"type\":\"click\"}", NULL, NULL, 0), EVR_OK);
    assert_int_equal(a.user_len, b.user_len);
    assert_memory_equal(a.user, b.user, a.user_len);
    assert_int_equal(a.item_len, b.item_len);
    assert_memory_equal(a.item, b.item, a.item_len);
}

/* ---- the limits, built at run time ---- */

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static event_reason_t decode_fmt(event_t *ev, char *detail, size_t dlen, const char *fmt, ...)
{
    static char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    return event_decode(ev, buf, (size_t)n, NULL, EVENT_DEFAULT_MAX_BYTES, detail, dlen);
}

static void test_limits(void **state)
{
    (void)state;
    event_t ev;
    char detail[256];
    char *id256 = repeat('x', EVENT_MAX_ID), *id257 = repeat('x', EVENT_MAX_ID + 1);
    char *name64 = repeat('n', EVENT_MAX_NAME), *name65 = repeat('n', EVENT_MAX_NAME + 1);
    char *val256 = repeat('v', EVENT_MAX_VALUE), *val257 = repeat('v', EVENT_MAX_VALUE + 1);

    /* ids: 256 bytes taken, 257 refused, for user and item; the detail does
     * not hold the whole id */
    assert_int_equal(decode_fmt(&ev, detail, sizeof(detail),
                                "{\"user\":\"%s\",\"item\":\"%s\",\"type\":\"click\"}", id256,
                                id256),
                     EVR_OK);
    assert_int_equal(ev.user_len, EVENT_MAX_ID);
    assert_string_equal(ev.user, id256);
    assert_string_equal(ev.item, id256);
    assert_int_equal(decode_fmt(&ev, detail, sizeof(detail),
                                "{\"user\":\"%s\",\"item\":\"i\",\"type\":\"click\"}", id257),
                     EVR_BAD_ID);
    assert_detail_sane(detail, sizeof(detail));
    assert_non_null(strstr(detail, "user"));
    assert_null(strstr(detail, id256));
    assert_int_equal(decode_fmt(&ev, detail, sizeof(detail),
                                "{\"user\":\"u\",\"item\":\"%s\",\"type\":\"click\"}", id257),
                     EVR_BAD_ID);
    assert_non_null(strstr(detail, "item"));

    /* a multi-byte id is measured in bytes: 128 × "é" is 256 bytes */
    char utf[2 * 129 + 1] = "";
    for (int i = 0; i < 128; i++)
        strcat(utf, "\xc3\xa9");
    assert_int_equal(decode_fmt(&ev, detail, sizeof(detail),
                                "{\"user\":\"%s\",\"item\":\"i\",\"type\":\"click\"}", utf),
                     EVR_OK);
    assert_int_equal(ev.user_len, 256);
    strcat(utf, "\xc3\xa9");
    assert_int_equal(decode_fmt(&ev, detail, sizeof(detail),
                                "{\"user\":\"%s\",\"item\":\"i\",\"type\":\"click\"}", utf),
                     EVR_BAD_ID);

    /* feature names: 64 bytes taken, 65 refused */
    assert_int_equal(decode_fmt(&ev, detail, sizeof(detail),
                                "{\"user\":\"u\",\"item\":\"i\",\"type\":\"click\","
                                "\"cat\":{\"%s\":\"a\"},\"num\":{\"%s\":1}}",
                                name64, name64),
                     EVR_OK);
    assert_string_equal(ev.cat[0].name, name64);
    assert_string_equal(ev.num[0].name, name64);
    assert_int_equal(decode_fmt(&ev, detail, sizeof(detail),
                                "{\"user\":\"u\",\"item\":\"i\",\"type\":\"click\","
                                "\"cat\":{\"%s\":\"a\"}}",
                                name65),
                     EVR_BAD_FEATURE);
    assert_detail_sane(detail, sizeof(detail));
    assert_int_equal(decode_fmt(&ev, detail, sizeof(detail),
                                "{\"user\":\"u\",\"item\":\"i\",\"type\":\"click\","
                                "\"num\":{\"%s\":1}}",
                                name65),
                     EVR_BAD_FEATURE);

    /* cat values: 256 bytes taken, 257 refused */
    assert_int_equal(decode_fmt(&ev, detail, sizeof(detail),
                                "{\"user\":\"u\",\"item\":\"i\",\"type\":\"click\","
                                "\"cat\":{\"k\":\"%s\"}}",
                                val256),
                     EVR_OK);
    assert_string_equal(ev.cat[0].value, val256);
    assert_int_equal(decode_fmt(&ev, detail, sizeof(detail),
                                "{\"user\":\"u\",\"item\":\"i\",\"type\":\"click\","
                                "\"cat\":{\"k\":\"%s\"}}",
                                val257),
                     EVR_BAD_FEATURE);
    assert_detail_sane(detail, sizeof(detail));

    /* EVENT_MAX_FEATURES of each taken, one more refused */
    for (int extra = 0; extra <= 1; extra++) {
        for (int g = 0; g < 2; g++) {
            char feats[4096] = "";
            int n = EVENT_MAX_FEATURES + extra;
            for (int i = 0; i < n; i++) {
                char one[64];
                snprintf(one, sizeof(one), g == 0 ? "%s\"f%d\":\"v%d\"" : "%s\"f%d\":%d",
                         i ? "," : "", i, i);
                strcat(feats, one);
            }
            event_reason_t r = decode_fmt(&ev, detail, sizeof(detail),
                                          "{\"user\":\"u\",\"item\":\"i\",\"type\":\"click\","
                                          "\"%s\":{%s}}",
                                          g == 0 ? "cat" : "num", feats);
            if (extra) {
                assert_int_equal(r, EVR_BAD_FEATURE);
                assert_detail_sane(detail, sizeof(detail));
            } else {
                assert_int_equal(r, EVR_OK);
                assert_int_equal(g == 0 ? ev.ncat : ev.nnum, EVENT_MAX_FEATURES);
                if (g == 0)
                    assert_string_equal(ev.cat[31].value, "v31");
                else
                    assert_true(ev.num[31].value == 31.0);
            }
        }
    }
    free(id256);
    free(id257);
    free(name64);
    free(name65);
    free(val256);
    free(val257);
}

/* ---- invalid messages ---- */

typedef struct {
    const char *json;
    event_reason_t reason;
    const char *in_detail; /* a part the detail must hold, or NULL */
} invalid_case_t;

#define OK3 "\"user\":\"u\",\"item\":\"i\",\"type\":\"click\""

static const invalid_case_t invalid[] = {
    /* bad_json: not JSON, not an object, trailing garbage, duplicates */
    {"", EVR_BAD_JSON, "bad JSON"},
    {"   ", EVR_BAD_JSON, NULL},
    {"not json", EVR_BAD_JSON, NULL},
    {"{" OK3, EVR_BAD_JSON, NULL},
    {"{" OK3 ",}", EVR_BAD_JSON, NULL},
    {"{" OK3 "} x", EVR_BAD_JSON, NULL},
    {"{" OK3 "}{}", EVR_BAD_JSON, NULL},
    {"{" OK3 ",\"user\":\"v\"}", EVR_BAD_JSON, "duplicate"},
    {"{" OK3 ",\"cat\":{\"a\":\"x\",\"a\":\"y\"}}", EVR_BAD_JSON, "duplicate"},
    {"[{" OK3 "}]", EVR_BAD_JSON, "array"},
    {"\"u\"", EVR_BAD_JSON, NULL},
    {"42", EVR_BAD_JSON, NULL},
    {"null", EVR_BAD_JSON, NULL},
    {"{\"user\":\"\xff\",\"item\":\"i\",\"type\":\"click\"}", EVR_BAD_JSON, NULL},
    {"{\"user\":\"\xc3\",\"item\":\"i\",\"type\":\"click\"}", EVR_BAD_JSON, NULL},
    {"{\"user\":\"a\x01\",\"item\":\"i\",\"type\":\"click\"}", EVR_BAD_JSON, NULL},
    {"{\"user\":\"a\\u0000b\",\"item\":\"i\",\"type\":\"click\"}", EVR_BAD_JSON, NULL},
    {"{\"user\":\"\\ud800\",\"item\":\"i\",\"type\":\"click\"}", EVR_BAD_JSON, NULL},
    {"{\"user\":'u',\"item\":\"i\",\"type\":\"click\"}", EVR_BAD_JSON, NULL},
    {"{\"user\":99999999999999999999,\"item\":\"i\",\"type\":\"click\"}", EVR_BAD_JSON,
     "too big integer"},
    {"{" OK3 ",\"num\":{\"x\":1e999}}", EVR_BAD_JSON, "overflow"},
    {"{" OK3 ",\"num\":{\"x\":-1e999}}", EVR_BAD_JSON, "overflow"},
    {"{" OK3 ",\"num\":{\"x\":NaN}}", EVR_BAD_JSON, NULL},
    {"{" OK3 ",\"num\":{\"x\":Infinity}}", EVR_BAD_JSON, NULL},
    /* missing_field, checked in the order user, item, type */
    {"{}", EVR_MISSING, "\"user\" is missing"},
    {"{\"item\":\"i\",\"type\":\"click\"}", EVR_MISSING, "\"user\""},
    {"{\"user\":\"u\",\"type\":\"click\"}", EVR_MISSING, "\"item\""},
    {"{\"user\":\"u\",\"item\":\"i\"}", EVR_MISSING, "\"type\""},
    {"{\"User\":\"u\",\"item\":\"i\",\"type\":\"click\"}", EVR_MISSING, "\"user\""},
    {"{\"item\":\"i\",\"type\":\"nope\"}", EVR_MISSING, "\"user\""},
    /* wrong_type */
    {"{\"user\":1.5,\"item\":\"i\",\"type\":\"click\"}", EVR_WRONG_TYPE, "a real"},
    {"{\"user\":1.0,\"item\":\"i\",\"type\":\"click\"}", EVR_WRONG_TYPE, "a real"},
    {"{\"user\":true,\"item\":\"i\",\"type\":\"click\"}", EVR_WRONG_TYPE, "a boolean"},
    {"{\"user\":null,\"item\":\"i\",\"type\":\"click\"}", EVR_WRONG_TYPE, "null"},
    {"{\"user\":{},\"item\":\"i\",\"type\":\"click\"}", EVR_WRONG_TYPE, "an object"},
    {"{\"user\":[\"u\"],\"item\":\"i\",\"type\":\"click\"}", EVR_WRONG_TYPE, "an array"},
    {"{\"user\":\"u\",\"item\":false,\"type\":\"click\"}", EVR_WRONG_TYPE,
     "\"item\": expected a string or an integer"},
    {"{\"user\":\"u\",\"item\":\"i\",\"type\":1}", EVR_WRONG_TYPE, "\"type\""},
    {"{\"user\":\"u\",\"item\":\"i\",\"type\":null}", EVR_WRONG_TYPE, "\"type\""},
    {"{\"user\":\"u\",\"item\":\"i\",\"type\":[\"click\"]}", EVR_WRONG_TYPE, "\"type\""},
    {"{" OK3 ",\"ts\":\"1764486000123\"}", EVR_WRONG_TYPE, "\"ts\""},
    {"{" OK3 ",\"ts\":true}", EVR_WRONG_TYPE, "\"ts\""},
    {"{" OK3 ",\"ts\":{}}", EVR_WRONG_TYPE, "\"ts\""},
    {"{" OK3 ",\"cat\":\"ios\"}", EVR_WRONG_TYPE, "\"cat\""},
    {"{" OK3 ",\"cat\":[]}", EVR_WRONG_TYPE, "\"cat\""},
    {"{" OK3 ",\"num\":1}", EVR_WRONG_TYPE, "\"num\""},
    {"{" OK3 ",\"num\":[1]}", EVR_WRONG_TYPE, "\"num\""},
    /* bad_id */
    {"{\"user\":\"\",\"item\":\"i\",\"type\":\"click\"}", EVR_BAD_ID, "\"user\": empty"},
    {"{\"user\":\"u\",\"item\":\"\",\"type\":\"click\"}", EVR_BAD_ID, "\"item\": empty"},
    {"{\"user\":\"a\\u0001\",\"item\":\"i\",\"type\":\"click\"}", EVR_BAD_ID, "0x01"},
    {"{\"user\":\"a\\tb\",\"item\":\"i\",\"type\":\"click\"}", EVR_BAD_ID, "0x09"},
    {"{\"user\":\"u\",\"item\":\"\\n\",\"type\":\"click\"}", EVR_BAD_ID, "0x0a"},
    {"{\"user\":\"u\",\"item\":\"i\\u001f\",\"type\":\"click\"}", EVR_BAD_ID, "0x1f"},
    {"{\"user\":\"u\\u007f\",\"item\":\"i\",\"type\":\"click\"}", EVR_BAD_ID, "0x7f"},
    {"{\"user\":\"u\x7f\",\"item\":\"i\",\"type\":\"click\"}", EVR_BAD_ID, "0x7f"},
    /* unknown_type: names are case-sensitive */
    {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"purchse\"}", EVR_UNKNOWN_KIND, "\"purchse\""},
    {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"Click\"}", EVR_UNKNOWN_KIND, NULL},
    {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"\"}", EVR_UNKNOWN_KIND, NULL},
    {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"click \"}", EVR_UNKNOWN_KIND, NULL},
    {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"cl\\nick\"}", EVR_UNKNOWN_KIND, "\\x0a"},
    /* bad_ts */
    {"{" OK3 ",\"ts\":-1}", EVR_BAD_TS, "-1"},
    {"{" OK3 ",\"ts\":4102444800001}", EVR_BAD_TS, NULL},
    {"{" OK3 ",\"ts\":9223372036854775807}", EVR_BAD_TS, NULL},
    {"{" OK3 ",\"ts\":-9223372036854775808}", EVR_BAD_TS, NULL},
    {"{" OK3 ",\"ts\":1.5}", EVR_BAD_TS, "whole number"},
    {"{" OK3 ",\"ts\":1764486000123.5}", EVR_BAD_TS, "whole number"},
    {"{" OK3 ",\"ts\":-1.0}", EVR_BAD_TS, NULL},
    {"{" OK3 ",\"ts\":1e300}", EVR_BAD_TS, NULL},
    /* bad_feature */
    {"{" OK3 ",\"cat\":{\"device\":1}}", EVR_BAD_FEATURE, "expected a string, got an integer"},
    {"{" OK3 ",\"cat\":{\"device\":null}}", EVR_BAD_FEATURE, NULL},
    {"{" OK3 ",\"cat\":{\"device\":[\"ios\"]}}", EVR_BAD_FEATURE, NULL},
    {"{" OK3 ",\"cat\":{\"device\":\"i\\u0000os\"}}", EVR_BAD_JSON, NULL},
    {"{" OK3 ",\"cat\":{\"device\":\"i\\nos\"}}", EVR_BAD_FEATURE, "0x0a"},
    {"{" OK3 ",\"num\":{\"price\":\"12.5\"}}", EVR_BAD_FEATURE, "expected a number, got a string"},
    {"{" OK3 ",\"num\":{\"price\":true}}", EVR_BAD_FEATURE, NULL},
    {"{" OK3 ",\"num\":{\"price\":null}}", EVR_BAD_FEATURE, NULL},
    {"{" OK3 ",\"cat\":{\"\":\"x\"}}", EVR_BAD_FEATURE, "empty feature name"},
    {"{" OK3 ",\"num\":{\"\":1}}", EVR_BAD_FEATURE, "empty feature name"},
    {"{" OK3 ",\"cat\":{\"a\\u0001\":\"x\"}}", EVR_BAD_FEATURE, "0x01"},
    {"{" OK3 ",\"num\":{\"a\\tb\":1}}", EVR_BAD_FEATURE, "0x09"},
    /* the first problem in the order user, item, type, ts, cat, num wins */
    {"{\"user\":\"\",\"item\":1.5,\"type\":\"nope\"}", EVR_BAD_ID, "\"user\""},
    {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"nope\",\"ts\":-1}", EVR_UNKNOWN_KIND, NULL},
    {"{" OK3 ",\"ts\":-1,\"cat\":1}", EVR_BAD_TS, NULL},
    {"{" OK3 ",\"num\":{\"\":1},\"cat\":1}", EVR_WRONG_TYPE, "\"cat\""},
};

static void test_invalid_messages(void **state)
{
    (void)state;
    event_kinds_t k = test_kinds();
    int seen[EVR_COUNT] = {0};
    for (size_t i = 0; i < N(invalid); i++) {
        const invalid_case_t *c = &invalid[i];
        event_t ev;
        char detail[256];
        memset(detail, 'z', sizeof(detail));
        event_reason_t r = decode(&ev, c->json, &k, detail, sizeof(detail));
        if (r != c->reason)
            fail_msg("case %zu (%s): got %s (%s), want %s", i, c->json, event_reason_name(r),
                     detail, event_reason_name(c->reason));
        assert_detail_sane(detail, sizeof(detail));
        if (c->in_detail && !strstr(detail, c->in_detail))
            fail_msg("case %zu: detail \"%s\" lacks \"%s\"", i, detail, c->in_detail);
        seen[r]++;
    }
    /* every reason but ok, too_large (test_too_large) and future_ts
     * (test_check_time: not event_decode's) has a case */
    for (int r = EVR_BAD_JSON; r < EVR_COUNT; r++)
        if (r != EVR_FUTURE_TS && !seen[r])
            fail_msg("no invalid case for %s", event_reason_name((event_reason_t)r));
}

/* The limit is checked before parsing: a message just over it is refused
 * whatever it holds, one at it is parsed. */
static void test_too_large(void **state)
{
    (void)state;
    event_t ev;
    char detail[256];
    const char *msg = "{\"user\":\"u\",\"item\":\"i\",\"type\":\"click\"}";
    size_t len = strlen(msg);
    assert_int_equal(event_decode(&ev, msg, len, NULL, len, detail, sizeof(detail)), EVR_OK);
    assert_int_equal(event_decode(&ev, msg, len, NULL, len - 1, detail, sizeof(detail)),
                     EVR_TOO_LARGE);
    assert_detail_sane(detail, sizeof(detail));
    assert_non_null(strstr(detail, "more than the limit"));
    assert_int_equal(event_decode(&ev, msg, len, NULL, 0, detail, sizeof(detail)), EVR_TOO_LARGE);

    /* a big message with the default limit: garbage or not, too_large */
    size_t big = EVENT_DEFAULT_MAX_BYTES + 1;
    char *buf = repeat(' ', big);
    memcpy(buf, "{\"user\":\"u\",\"item\":\"i\",\"type\":\"click\"}", len);
    assert_int_equal(
        event_decode(&ev, buf, big, NULL, EVENT_DEFAULT_MAX_BYTES, detail, sizeof(detail)),
        EVR_TOO_LARGE);
    memset(buf, 0xff, big);
    assert_int_equal(
        event_decode(&ev, buf, big, NULL, EVENT_DEFAULT_MAX_BYTES, detail, sizeof(detail)),
        EVR_TOO_LARGE);
    /* at the limit: parsed (trailing blanks are fine) */
    memset(buf, ' ', big);
    memcpy(buf, msg, len);
    assert_int_equal(
        event_decode(&ev, buf, big - 1, NULL, EVENT_DEFAULT_MAX_BYTES, detail, sizeof(detail)),
        EVR_OK);
    free(buf);
}

/* Bytes past len are never read; NUL bytes inside len are bad JSON. */
static void test_length_is_honoured(void **state)
{
    (void)state;
    event_t ev;
    const char buf[] = "{\"user\":\"u\",\"item\":\"i\",\"type\":\"click\"}GARBAGE";
    size_t len = strlen("{\"user\":\"u\",\"item\":\"i\",\"type\":\"click\"}");
    assert_int_equal(event_decode(&ev, buf, len, NULL, 1000, NULL, 0), EVR_OK);
    assert_int_equal(event_decode(&ev, buf, len + 1, NULL, 1000, NULL, 0), EVR_BAD_JSON);
    const char nul[] = "{\"user\":\"u\",\"item\":\"i\",\"type\":\"click\"}\0";
    assert_int_equal(event_decode(&ev, nul, sizeof(nul), NULL, 1000, NULL, 0), EVR_BAD_JSON);
    assert_int_equal(event_decode(&ev, NULL, 0, NULL, 1000, NULL, 0), EVR_BAD_JSON);
}

/* A detail is cut to its buffer, always NUL-terminated; no buffer is fine. */
static void test_detail_buffer(void **state)
{
    (void)state;
    event_t ev;
    const char *msg = "{\"user\":1.5,\"item\":\"i\",\"type\":\"click\"}";
    for (size_t dlen = 1; dlen < 48; dlen++) {
        char detail[64];
        memset(detail, 'z', sizeof(detail));
        assert_int_equal(decode(&ev, msg, NULL, detail, dlen), EVR_WRONG_TYPE);
        assert_int_equal(strlen(detail), dlen - 1);
        assert_int_equal(detail[dlen], 'z'); /* nothing written past dlen */
    }
    assert_int_equal(decode(&ev, msg, NULL, NULL, 0), EVR_WRONG_TYPE);
    char one = 'z';
    assert_int_equal(decode(&ev, msg, NULL, &one, 0), EVR_WRONG_TYPE);
    assert_int_equal(one, 'z');

    /* a long unknown type is quoted in part only, escaped */
    char *longtype = repeat('t', 5000);
    longtype[3] = '"';
    char *json = malloc(5100);
    assert_non_null(json);
    snprintf(json, 5100, "{\"user\":1,\"item\":2,\"type\":\"ttt\\%s\"}", longtype + 3);
    char detail[256];
    assert_int_equal(decode(&ev, json, NULL, detail, sizeof(detail)), EVR_UNKNOWN_KIND);
    assert_detail_sane(detail, sizeof(detail));
    assert_non_null(strstr(detail, "ttt\\x22ttt"));
    assert_non_null(strstr(detail, "..."));
    free(longtype);
    free(json);
}

static void test_reason_names(void **state)
{
    (void)state;
    static const char *const want[EVR_COUNT] = {
        "ok",     "too_large",    "bad_json", "missing_field", "wrong_type",
        "bad_id", "unknown_type", "bad_ts",   "bad_feature",   "future_ts",
    };
    for (int r = 0; r < EVR_COUNT; r++)
        assert_string_equal(event_reason_name((event_reason_t)r), want[r]);
    assert_string_equal(event_reason_name(EVR_COUNT), "unknown");
    assert_string_equal(event_reason_name((event_reason_t)-1), "unknown");
}

/* ---- kinds ---- */

/* The event time against the clock: ahead by at most the skew is taken,
 * the past always; the detail names the source of the time. */
static void test_check_time(void **state)
{
    (void)state;
    const int64_t now = 1764486000000LL, skew = 600000;
    const struct {
        int64_t ts;
        int has_ts;
        int64_t skew;
        event_reason_t want;
        const char *in_detail;
    } cases[] = {
        {now, 1, skew, EVR_OK, NULL},
        {now + skew, 1, skew, EVR_OK, NULL},     /* at the bound */
        {0, 1, skew, EVR_OK, NULL},              /* 1970: a replay */
        {893286638000LL, 1, skew, EVR_OK, NULL}, /* MovieLens 1998 */
        {now + 1, 1, 0, EVR_FUTURE_TS, "\"ts\": 1764486000001 is 1 ms ahead"},
        {now + skew + 1, 1, skew, EVR_FUTURE_TS, "more than the 600000 allowed"},
        {EVENT_MAX_TS, 1, skew, EVR_FUTURE_TS, "\"ts\": 4102444800000 is 2337958800000 ms"},
        {EVENT_MAX_TS, 0, skew, EVR_FUTURE_TS, "the Kafka message timestamp 4102444800000"},
        {INT64_MAX / 2, 0, 86400000, EVR_FUTURE_TS, "Kafka"}, /* any Kafka timestamp */
        {now + 86400000, 1, 86400000, EVR_OK, NULL},          /* the widest skew */
    };
    for (size_t i = 0; i < N(cases); i++) {
        char detail[192];
        memset(detail, 'z', sizeof(detail));
        event_reason_t r = event_check_time(cases[i].ts, cases[i].has_ts, now, cases[i].skew,
                                            detail, sizeof(detail));
        if (r != cases[i].want)
            fail_msg("case %zu: got %s (%s), want %s", i, event_reason_name(r), detail,
                     event_reason_name(cases[i].want));
        if (r == EVR_OK) {
            assert_string_equal(detail, "");
            continue;
        }
        assert_detail_sane(detail, sizeof(detail));
        if (!strstr(detail, cases[i].in_detail))
            fail_msg("case %zu: detail \"%s\" lacks \"%s\"", i, detail, cases[i].in_detail);
    }
    /* NULL detail, or none of it */
    assert_int_equal(event_check_time(EVENT_MAX_TS, 1, now, skew, NULL, 0), EVR_FUTURE_TS);
    char one[1] = {'z'};
    assert_int_equal(event_check_time(EVENT_MAX_TS, 1, now, skew, one, 1), EVR_FUTURE_TS);
    assert_int_equal(one[0], '\0');
}

static void test_kinds_default(void **state)
{
    (void)state;
    event_kinds_t k;
    memset(&k, 0x5a, sizeof(k));
    event_kinds_default(&k);
    assert_int_equal(k.n, 2);
    assert_string_equal(k.kind[EVENT_IMPRESSION].name, "impression");
    assert_true(k.kind[EVENT_IMPRESSION].weight == 0.0f);
    assert_string_equal(k.kind[EVENT_CLICK].name, "click");
    assert_true(k.kind[EVENT_CLICK].weight == 1.0f);
    assert_int_equal(event_kind_find(&k, "click", 5), EVENT_CLICK);
    assert_int_equal(event_kind_find(&k, "impression", 10), EVENT_IMPRESSION);
    assert_int_equal(event_kind_find(&k, "clickx", 5), EVENT_CLICK); /* len bytes only */
    assert_int_equal(event_kind_find(&k, "click", 4), -1);
    assert_int_equal(event_kind_find(&k, "clickx", 6), -1);
    assert_int_equal(event_kind_find(&k, "", 0), -1);
    assert_int_equal(event_kind_find(&k, "purchase", 8), -1);
}

typedef struct {
    const char *spec;
    int n;
    const char *names[4]; /* the added kinds */
    float weights[4];
} kinds_ok_case_t;

static const kinds_ok_case_t kinds_ok[] = {
    {"", 2, {NULL}, {0}},
    {"   ", 2, {NULL}, {0}},
    {"purchase:5", 3, {"purchase"}, {5.0f}},
    {"purchase:5,like:2", 4, {"purchase", "like"}, {5.0f, 2.0f}},
    {" purchase : 5 ,\tlike:0.25 ", 4, {"purchase", "like"}, {5.0f, 0.25f}},
    {"a.b-c_D9:1e-3,max:1000", 4, {"a.b-c_D9", "max"}, {0.001f, 1000.0f}},
    {"Click:2", 3, {"Click"}, {2.0f}}, /* names are case-sensitive */
};

static const char *const kinds_bad[] = {
    ",",
    "purchase:5,",
    ",purchase:5",
    "purchase:5,,like:2",
    ":5",
    "purchase",
    "purchase:",
    "purchase: ",
    "purchase:0",
    "purchase:-1",
    "purchase:1000.001",
    "purchase:1e9",
    "purchase:abc",
    "purchase:5x",
    "purchase:5:6",
    "purchase:nan",
    "purchase:inf",
    "purchase:5,purchase:6",
    "click:2",
    "impression:1",
    "pur chase:1",
    "b@d:1",
    "caf\xc3\xa9:1",
    "a/b:1",
    /* 65-byte name */
    "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn:1",
    /* 15 kinds on top of the 2 defaults */
    "k1:1,k2:1,k3:1,k4:1,k5:1,k6:1,k7:1,k8:1,k9:1,k10:1,k11:1,k12:1,k13:1,k14:1,k15:1",
};

static void test_kinds_parse_ok(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(kinds_ok); i++) {
        const kinds_ok_case_t *c = &kinds_ok[i];
        event_kinds_t k;
        char err[256] = "";
        if (event_kinds_parse(&k, c->spec, err, sizeof(err)) != 0)
            fail_msg("spec \"%s\": %s", c->spec, err);
        assert_int_equal(k.n, c->n);
        assert_string_equal(k.kind[0].name, "impression");
        assert_string_equal(k.kind[1].name, "click");
        for (int j = 2; j < c->n; j++) {
            assert_string_equal(k.kind[j].name, c->names[j - 2]);
            assert_true(k.kind[j].weight == c->weights[j - 2]);
            assert_int_equal(event_kind_find(&k, c->names[j - 2], strlen(c->names[j - 2])), j);
        }
    }
    event_kinds_t k;
    assert_int_equal(event_kinds_parse(&k, NULL, NULL, 0), 0);
    assert_int_equal(k.n, 2);
    /* 14 on top of the 2 defaults fill EVENT_MAX_KINDS; 64-byte name */
    assert_int_equal(event_kinds_parse(&k,
                                       "k1:1,k2:1,k3:1,k4:1,k5:1,k6:1,k7:1,k8:1,k9:1,k10:1,k11:1,"
                                       "k12:1,k13:1,"
                                       "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
                                       "nnnnn:3",
                                       NULL, 0),
                     0);
    assert_int_equal(k.n, EVENT_MAX_KINDS);
    assert_int_equal(strlen(k.kind[15].name), EVENT_MAX_NAME);
    assert_true(k.kind[15].weight == 3.0f);
}

static void test_kinds_parse_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(kinds_bad); i++) {
        event_kinds_t k;
        char err[256] = "";
        if (event_kinds_parse(&k, kinds_bad[i], err, sizeof(err)) != -1)
            fail_msg("spec \"%s\" was accepted", kinds_bad[i]);
        assert_true(strlen(err) > 0);
        assert_non_null(strstr(err, "kind"));
        /* refused: the defaults alone */
        assert_int_equal(k.n, 2);
        assert_string_equal(k.kind[1].name, "click");
        assert_int_equal(event_kind_find(&k, "k1", 2), -1);
        assert_int_equal(event_kinds_parse(&k, kinds_bad[i], NULL, 0), -1);
    }
}

/* ---- encoding ---- */

typedef struct {
    const char *user, *item, *kind;
    int64_t ts;
} encode_case_t;

static const encode_case_t encode_cases[] = {
    {"u42", "i17", "click", 1764486000123LL},
    {"u42", "i17", "impression", -1},
    {"a\"b", "c\\d", "click", 0},
    {"\"\\\"", "\\", "click", EVENT_MAX_TS},
    {"\xc3\xa9t\xc3\xa9", "\xf0\x9f\x98\x80", "click", 5},
    {"\xe2\x80\xa8 </script> x/y", "{\"user\":1}", "click", -5},
    {"42", "-7", "click", -1},
};

static void test_encode_round_trip(void **state)
{
    (void)state;
    event_kinds_t k = test_kinds();
    for (size_t i = 0; i < N(encode_cases); i++) {
        const encode_case_t *c = &encode_cases[i];
        char buf[1024];
        size_t n = event_encode(buf, sizeof(buf), c->user, strlen(c->user), c->item,
                                strlen(c->item), c->kind, c->ts);
        assert_true(n > 0);
        assert_int_equal(strlen(buf), n);
        event_t ev;
        char detail[256];
        event_reason_t r =
            event_decode(&ev, buf, n, &k, EVENT_DEFAULT_MAX_BYTES, detail, sizeof(detail));
        if (r != EVR_OK)
            fail_msg("case %zu: %s: %s (%s)", i, event_reason_name(r), detail, buf);
        assert_string_equal(ev.user, c->user);
        assert_string_equal(ev.item, c->item);
        assert_string_equal(k.kind[ev.kind].name, c->kind);
        assert_int_equal(ev.has_ts, c->ts >= 0);
        if (c->ts >= 0)
            assert_int_equal(ev.ts_ms, c->ts);
    }

    /* an id with a NUL byte survives encoding as \u0000 */
    char buf[256];
    size_t n = event_encode(buf, sizeof(buf), "a\0b", 3, "i", 1, "click", -1);
    assert_string_equal(buf, "{\"user\":\"a\\u0000b\",\"item\":\"i\",\"type\":\"click\"}");
    assert_int_equal(n, strlen(buf));
}

static void test_encode_exact_and_cap(void **state)
{
    (void)state;
    const char *want =
        "{\"user\":\"u42\",\"item\":\"i17\",\"type\":\"click\",\"ts\":1764486000123}";
    size_t wlen = strlen(want);
    char buf[128];
    assert_int_equal(event_encode(buf, sizeof(buf), "u42", 3, "i17", 3, "click", 1764486000123LL),
                     wlen);
    assert_string_equal(buf, want);
    /* too small, the NUL included: 0 */
    for (size_t cap = 0; cap <= wlen; cap++)
        assert_int_equal(
            event_encode(cap ? buf : NULL, cap, "u42", 3, "i17", 3, "click", 1764486000123LL), 0);
    assert_int_equal(event_encode(buf, wlen + 1, "u42", 3, "i17", 3, "click", 1764486000123LL),
                     wlen);
    assert_string_equal(buf, want);
    /* only ulen/ilen bytes of the ids */
    assert_int_equal(event_encode(buf, sizeof(buf), "u42xyz", 3, "i17xyz", 3, "impression", -1),
                     strlen("{\"user\":\"u42\",\"item\":\"i17\",\"type\":\"impression\"}"));
    assert_string_equal(buf, "{\"user\":\"u42\",\"item\":\"i17\",\"type\":\"impression\"}");
    /* not UTF-8: 0 */
    assert_int_equal(event_encode(buf, sizeof(buf), "\xff", 1, "i", 1, "click", -1), 0);
    assert_int_equal(event_encode(buf, sizeof(buf), "u", 1, "\xc3", 1, "click", -1), 0);
    assert_int_equal(event_encode(buf, sizeof(buf), "u", 1, "i", 1, "\xff", -1), 0);
}

/* ---- safety smoke test (the real fuzzing is a later target) ---- */

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

static void test_mutations_are_safe(void **state)
{
    (void)state;
    event_kinds_t k = test_kinds();
    const char *seeds[] = {
        valid[0].json,
        valid[N(valid) - 1].json,
        "{\"user\":42,\"item\":-7,\"type\":\"purchase\",\"ts\":1.5e12}",
    };
    static const char alphabet[] = "{}[]\":,\\u0123456789eE.-+ tfnaxyz\x01\x7f\xc3\xa9\xff";
    uint64_t s = 12345;
    int counts[EVR_COUNT] = {0};
    for (int round = 0; round < 20000; round++) {
        const char *seed = seeds[round % N(seeds)];
        char buf[512];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        int edits = 1 + (int)(lcg(&s) % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = len ? lcg(&s) % len : 0;
            switch (lcg(&s) % 3) {
            case 0: /* replace */
                if (len)
                    buf[at] = alphabet[lcg(&s) % (sizeof(alphabet) - 1)];
                break;
            case 1: /* delete */
                if (len) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                }
                break;
            default: /* insert */
                if (len + 1 < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = alphabet[lcg(&s) % (sizeof(alphabet) - 1)];
                    len++;
                }
            }
        }
        /* decode from an exact-size heap copy, so ASan sees any over-read */
        char *msg = malloc(len ? len : 1);
        assert_non_null(msg);
        memcpy(msg, buf, len);
        event_t ev;
        char detail[96];
        event_reason_t r = event_decode(&ev, msg, len, &k, 4096, detail, sizeof(detail));
        free(msg);
        assert_true(r >= EVR_OK && r < EVR_COUNT);
        if (r == EVR_OK) {
            assert_int_equal(strlen(ev.user), ev.user_len);
            assert_int_equal(strlen(ev.item), ev.item_len);
            assert_true(ev.kind >= 0 && ev.kind < k.n);
            assert_true(ev.ncat <= EVENT_MAX_FEATURES && ev.nnum <= EVENT_MAX_FEATURES);
        } else {
            assert_detail_sane(detail, sizeof(detail));
        }
        counts[r]++;
    }
    assert_true(counts[EVR_OK] > 0);
    assert_true(counts[EVR_BAD_JSON] > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_messages),         cmocka_unit_test(test_feature_values),
        cmocka_unit_test(test_integer_id_is_its_text), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_invalid_messages),       cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_length_is_honoured),     cmocka_unit_test(test_detail_buffer),
        cmocka_unit_test(test_reason_names),           cmocka_unit_test(test_kinds_default),
        cmocka_unit_test(test_kinds_parse_ok),         cmocka_unit_test(test_kinds_parse_bad),
        cmocka_unit_test(test_encode_round_trip),      cmocka_unit_test(test_encode_exact_and_cap),
        cmocka_unit_test(test_mutations_are_safe),     cmocka_unit_test(test_check_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
