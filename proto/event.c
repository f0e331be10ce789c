/* event.c — decoding and validation of one event (a Kafka message, JSON) with
 * jansson, the configured event kinds, the refusal reasons, and an encoder for
 * producers and tests. The wire format is documented in proto/README.md.
 * Not for: Kafka (daemon/), what is learned from an event (learner/), the
 * impression/click join (learner/join.c). */
#include "event.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How much of a value (an id, a name, a jansson message) a detail quotes:
 * enough to recognise it in a log, never the whole payload. */
#define QUOTE_MAX 64

static const char *const reason_names[EVR_COUNT] = {
    [EVR_OK] = "ok",
    [EVR_TOO_LARGE] = "too_large",
    [EVR_BAD_JSON] = "bad_json",
    [EVR_MISSING] = "missing_field",
    [EVR_WRONG_TYPE] = "wrong_type",
    [EVR_BAD_ID] = "bad_id",
    [EVR_UNKNOWN_KIND] = "unknown_type",
    [EVR_BAD_TS] = "bad_ts",
    [EVR_BAD_FEATURE] = "bad_feature",
    [EVR_FUTURE_TS] = "future_ts",
};

const char *event_reason_name(event_reason_t r)
{
    if ((int)r < 0 || r >= EVR_COUNT)
        return "unknown";
    return reason_names[r];
}

/* ---- kinds ---- */

static void kind_set(event_kind_t *k, const char *name, size_t len, float weight)
{
    memcpy(k->name, name, len);
    k->name[len] = '\0';
    k->weight = weight;
}

void event_kinds_default(event_kinds_t *k)
{
    memset(k, 0, sizeof(*k));
    kind_set(&k->kind[EVENT_IMPRESSION], "impression", 10, 0.0f);
    kind_set(&k->kind[EVENT_CLICK], "click", 5, 1.0f);
    k->n = 2;
}

int event_kind_find(const event_kinds_t *k, const char *name, size_t len)
{
    if (len > EVENT_MAX_NAME)
        return -1;
    for (int i = 0; i < k->n; i++)
        if (strlen(k->kind[i].name) == len && memcmp(k->kind[i].name, name, len) == 0)
            return i;
    return -1;
}

static void errf(char *errstr, size_t len, const char *fmt, ...)
{
    if (!errstr || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, len, fmt, ap);
    va_end(ap);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int is_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* One "name:weight" entry of [s, e), blanks around either part allowed. */
static int kinds_add(event_kinds_t *k, const char *s, const char *e, char *errstr, size_t len)
{
    while (s < e && is_blank(*s))
        s++;
    while (e > s && is_blank(e[-1]))
        e--;
    const char *colon = memchr(s, ':', (size_t)(e - s));
    const char *ne = colon ? colon : e;
    while (ne > s && is_blank(ne[-1]))
        ne--;
    size_t nlen = (size_t)(ne - s);
    int shown = nlen > QUOTE_MAX ? QUOTE_MAX : (int)nlen;
    if (nlen == 0) {
        errf(errstr, len, "empty kind name");
        return -1;
    }
    if (nlen > EVENT_MAX_NAME) {
        errf(errstr, len, "kind name \"%.*s...\" is longer than %d bytes", shown, s,
             EVENT_MAX_NAME);
        return -1;
    }
    for (size_t i = 0; i < nlen; i++) {
        if (!is_name_char(s[i])) {
            errf(errstr, len,
                 "kind name \"%.*s\" may only hold letters, digits, '_', '.' and "
                 "'-'",
                 shown, s);
            return -1;
        }
    }
    int dup = event_kind_find(k, s, nlen);
    if (dup == EVENT_IMPRESSION || dup == EVENT_CLICK) {
        errf(errstr, len, "kind \"%.*s\" is built in (impression and click always exist)", shown,
             s);
        return -1;
    }
    if (dup >= 0) {
        errf(errstr, len, "kind \"%.*s\" is given twice", shown, s);
        return -1;
    }
    if (!colon) {
        errf(errstr, len, "kind \"%.*s\" has no weight (write %.*s:<weight>)", shown, s, shown, s);
        return -1;
    }
    /* the weight, copied so that strtod stops at the entry's end */
    const char *ws = colon + 1;
    while (ws < e && is_blank(*ws))
        ws++;
    char wbuf[32];
    size_t wlen = (size_t)(e - ws);
    double w = NAN;
    if (wlen > 0 && wlen < sizeof(wbuf)) {
        memcpy(wbuf, ws, wlen);
        wbuf[wlen] = '\0';
        char *end;
        w = strtod(wbuf, &end);
        if (end != wbuf + wlen)
            w = NAN;
    }
    if (!(w > 0.0 && w <= 1000.0)) {
        int wshown = wlen > QUOTE_MAX ? QUOTE_MAX : (int)wlen;
        errf(errstr, len, "weight \"%.*s\" of kind \"%.*s\" is not a number in (0, 1000]", wshown,
             ws, shown, s);
        return -1;
    }
    if (k->n >= EVENT_MAX_KINDS) {
        errf(errstr, len, "more than %d kinds (impression and click included)", EVENT_MAX_KINDS);
        return -1;
    }
    kind_set(&k->kind[k->n++], s, nlen, (float)w);
    return 0;
}

int event_kinds_parse(event_kinds_t *k, const char *spec, char *errstr, size_t len)
{
    event_kinds_t t;
    event_kinds_default(&t);
    event_kinds_default(k); /* what k holds if the spec is refused */
    if (!spec)
        return 0;
    const char *p = spec;
    /* "" and blanks alone configure no extra kind */
    while (is_blank(*p))
        p++;
    if (*p == '\0')
        return 0;
    p = spec;
    for (;;) {
        const char *e = strchr(p, ',');
        if (!e)
            e = p + strlen(p);
        if (kinds_add(&t, p, e, errstr, len) < 0)
            return -1;
        if (*e == '\0')
            break;
        p = e + 1;
    }
    *k = t;
    return 0;
}

/* ---- decoding ---- */

/* Appends to a detail buffer, always NUL-terminated, silently truncating. */
typedef struct {
    char *buf;
    size_t cap, n;
} detail_t;

static void dputs(detail_t *d, const char *s, size_t len)
{
    if (!d->buf || d->cap == 0)
        return;
    for (size_t i = 0; i < len && d->n + 1 < d->cap; i++)
        d->buf[d->n++] = s[i];
    d->buf[d->n] = '\0';
}

static void dfmt(detail_t *d, const char *fmt, ...)
{
    char tmp[160];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    dputs(d, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Quotes at most QUOTE_MAX bytes of s as "...", writing every byte outside
 * printable ASCII, '"' and '\' as \xNN, so that a detail is printable ASCII
 * whatever the message held. */
static void dquote(detail_t *d, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    dputs(d, "\"", 1);
    size_t n = len > QUOTE_MAX ? QUOTE_MAX : len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            dputs(d, (const char *)&c, 1);
        } else {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            dputs(d, esc, 4);
        }
    }
    dputs(d, "\"", 1);
    if (len > n)
        dputs(d, "...", 3);
}

/* jansson's message, bounded, with anything unprintable replaced */
static void dtext(detail_t *d, const char *s)
{
    size_t n = 0;
    while (n < QUOTE_MAX + 16 && s[n] != '\0')
        n++;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
            c = '?';
        dputs(d, &c, 1);
    }
    if (s[n] != '\0')
        dputs(d, "...", 3);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "something else";
}

/* An id field: a string or an integer, copied into out (EVENT_MAX_ID + 1). */
static event_reason_t decode_id(char *out, size_t *outlen, const json_t *root, const char *field,
                                detail_t *d)
{
    const json_t *v = json_object_get(root, field);
    if (!v) {
        dfmt(d, "\"%s\" is missing", field);
        return EVR_MISSING;
    }
    if (json_is_integer(v)) {
        int n = snprintf(out, EVENT_MAX_ID + 1, "%lld", (long long)json_integer_value(v));
        *outlen = (size_t)n;
        return EVR_OK;
    }
    if (!json_is_string(v)) {
        dfmt(d, "\"%s\": expected a string or an integer, got %s", field, type_name(v));
        return EVR_WRONG_TYPE;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0) {
        dfmt(d, "\"%s\": empty id", field);
        return EVR_BAD_ID;
    }
    if (len > EVENT_MAX_ID) {
        dfmt(d, "\"%s\": id of %zu bytes, more than %d", field, len, EVENT_MAX_ID);
        return EVR_BAD_ID;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            dfmt(d, "\"%s\": control character 0x%02x at byte %zu of ", field, c, i);
            dquote(d, s, len);
            return EVR_BAD_ID;
        }
    }
    memcpy(out, s, len);
    out[len] = '\0';
    *outlen = len;
    return EVR_OK;
}

/* An optional field: NULL when absent or null (producers that write every
 * field of a record send "ts":null for an unset one). */
static const json_t *optional(const json_t *root, const char *field)
{
    const json_t *v = json_object_get(root, field);
    return v && !json_is_null(v) ? v : NULL;
}

static event_reason_t decode_ts(event_t *ev, const json_t *root, detail_t *d)
{
    const json_t *v = optional(root, "ts");
    if (!v)
        return EVR_OK;
    long long ts;
    if (json_is_integer(v)) {
        ts = (long long)json_integer_value(v);
        if (ts < 0 || ts > EVENT_MAX_TS) {
            dfmt(d, "\"ts\": %lld is outside [0, %lld] (ms since the epoch)", ts,
                 (long long)EVENT_MAX_TS);
            return EVR_BAD_TS;
        }
    } else if (json_is_real(v)) {
        /* 1764486000123.0 or 1.764486000123e12, as some serialisers write
         * whole numbers, is taken; a fraction of a millisecond is not */
        double x = json_real_value(v);
        if (!(x >= 0.0 && x <= (double)EVENT_MAX_TS)) {
            dfmt(d, "\"ts\": %.17g is outside [0, %lld] (ms since the epoch)", x,
                 (long long)EVENT_MAX_TS);
            return EVR_BAD_TS;
        }
        if (x != floor(x)) {
            dfmt(d, "\"ts\": %.17g is not a whole number of milliseconds", x);
            return EVR_BAD_TS;
        }
        ts = (long long)x;
    } else {
        dfmt(d, "\"ts\": expected an integer (ms since the epoch), got %s", type_name(v));
        return EVR_WRONG_TYPE;
    }
    ev->ts_ms = (int64_t)ts;
    ev->has_ts = 1;
    return EVR_OK;
}

/* A feature name: non-empty, at most EVENT_MAX_NAME bytes, no control
 * characters. Copied into out (EVENT_MAX_NAME + 1). */
static event_reason_t decode_name(char *out, const char *group, const char *key, detail_t *d)
{
    size_t len = strlen(key); /* jansson refuses \u0000, so keys have no NUL */
    if (len == 0) {
        dfmt(d, "\"%s\": empty feature name", group);
        return EVR_BAD_FEATURE;
    }
    if (len > EVENT_MAX_NAME) {
        dfmt(d, "\"%s\": feature name of %zu bytes, more than %d: ", group, len, EVENT_MAX_NAME);
        dquote(d, key, len);
        return EVR_BAD_FEATURE;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x20 || c == 0x7f) {
            dfmt(d, "\"%s\": control character 0x%02x in feature name ", group, c);
            dquote(d, key, len);
            return EVR_BAD_FEATURE;
        }
    }
    memcpy(out, key, len + 1);
    return EVR_OK;
}

/* The object of one feature group, or NULL when absent; *r says why not. */
static const json_t *feature_group(const json_t *root, const char *group, event_reason_t *r,
                                   detail_t *d)
{
    *r = EVR_OK;
    const json_t *v = optional(root, group);
    if (!v)
        return NULL;
    if (!json_is_object(v)) {
        dfmt(d, "\"%s\": expected an object, got %s", group, type_name(v));
        *r = EVR_WRONG_TYPE;
        return NULL;
    }
    size_t n = json_object_size(v);
    if (n > EVENT_MAX_FEATURES) {
        dfmt(d, "\"%s\": %zu features, more than %d", group, n, EVENT_MAX_FEATURES);
        *r = EVR_BAD_FEATURE;
        return NULL;
    }
    return v;
}

static event_reason_t decode_cat(event_t *ev, const json_t *root, detail_t *d)
{
    event_reason_t r;
    const json_t *obj = feature_group(root, "cat", &r, d);
    if (!obj)
        return r;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        event_cat_t *c = &ev->cat[ev->ncat];
        if ((r = decode_name(c->name, "cat", key, d)) != EVR_OK)
            return r;
        if (!json_is_string(v)) {
            dfmt(d, "\"cat\".");
            dquote(d, key, strlen(key));
            dfmt(d, ": expected a string, got %s", type_name(v));
            return EVR_BAD_FEATURE;
        }
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len > EVENT_MAX_VALUE) {
            dfmt(d, "\"cat\".");
            dquote(d, key, strlen(key));
            dfmt(d, ": value of %zu bytes, more than %d", len, EVENT_MAX_VALUE);
            return EVR_BAD_FEATURE;
        }
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (ch < 0x20 || ch == 0x7f) {
                dfmt(d, "\"cat\".");
                dquote(d, key, strlen(key));
                dfmt(d, ": control character 0x%02x in the value", ch);
                return EVR_BAD_FEATURE;
            }
        }
        memcpy(c->value, s, len);
        c->value[len] = '\0';
        ev->ncat++;
    }
    return EVR_OK;
}

static event_reason_t decode_num(event_t *ev, const json_t *root, detail_t *d)
{
    event_reason_t r;
    const json_t *obj = feature_group(root, "num", &r, d);
    if (!obj)
        return r;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        event_num_t *m = &ev->num[ev->nnum];
        if ((r = decode_name(m->name, "num", key, d)) != EVR_OK)
            return r;
        if (!json_is_number(v)) {
            dfmt(d, "\"num\".");
            dquote(d, key, strlen(key));
            dfmt(d, ": expected a number, got %s", type_name(v));
            return EVR_BAD_FEATURE;
        }
        double x = json_number_value(v);
        /* jansson refuses overflowing reals (1e999) as bad JSON already;
         * this keeps the promise should that ever change */
        if (!isfinite(x)) {
            dfmt(d, "\"num\".");
            dquote(d, key, strlen(key));
            dfmt(d, ": not a finite number");
            return EVR_BAD_FEATURE;
        }
        m->value = x;
        ev->nnum++;
    }
    return EVR_OK;
}

static event_reason_t decode_root(event_t *ev, const json_t *root, const event_kinds_t *kinds,
                                  detail_t *d)
{
    event_reason_t r;
    if ((r = decode_id(ev->user, &ev->user_len, root, "user", d)) != EVR_OK)
        return r;
    if ((r = decode_id(ev->item, &ev->item_len, root, "item", d)) != EVR_OK)
        return r;

    const json_t *t = json_object_get(root, "type");
    if (!t) {
        dfmt(d, "\"type\" is missing");
        return EVR_MISSING;
    }
    if (!json_is_string(t)) {
        dfmt(d, "\"type\": expected a string, got %s", type_name(t));
        return EVR_WRONG_TYPE;
    }
    int k = event_kind_find(kinds, json_string_value(t), json_string_length(t));
    if (k < 0) {
        dfmt(d, "\"type\": unknown event type ");
        dquote(d, json_string_value(t), json_string_length(t));
        return EVR_UNKNOWN_KIND;
    }
    ev->kind = k;
    ev->weight = kinds->kind[k].weight;

    if ((r = decode_ts(ev, root, d)) != EVR_OK)
        return r;
    if ((r = decode_cat(ev, root, d)) != EVR_OK)
        return r;
    return decode_num(ev, root, d);
}

/* ---- jansson's memory while decoding ----
 *
 * A decoded message is a dozen small jansson allocations (the object, its
 * hashtable, each key and string), all freed again before event_decode
 * returns: malloc and free were a third of a decode. While event_decode runs,
 * jansson allocates from a bump arena on that call's stack instead (falling
 * back to malloc when it is full), and frees into it do nothing. The hooks
 * are process-wide (json_set_alloc_funcs), so outside a decode, and on other
 * threads, they are plain malloc and free; a block is recognised as the
 * arena's by its address, and no jansson value made in a decode outlives it. */
#define DECODE_ARENA 4096

/* Under AddressSanitizer jansson keeps malloc and free, so that a value used
 * after its decode is caught (and the fuzzer runs 3x faster: measured 410,000
 * vs 138,000 runs in 16 s). */
#if defined(__SANITIZE_ADDRESS__)
#define DECODE_USE_ARENA 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DECODE_USE_ARENA 0
#endif
#endif
#ifndef DECODE_USE_ARENA
#define DECODE_USE_ARENA 1
#endif

#if DECODE_USE_ARENA
typedef struct {
    unsigned char *base;
    size_t used, cap;
} arena_t;

static _Thread_local arena_t *decode_arena;

static void *arena_malloc(size_t n)
{
    arena_t *a = decode_arena;
    if (a) {
        size_t need = (n + 15) & ~(size_t)15;
        if (need >= n && need <= a->cap - a->used) {
            void *p = a->base + a->used;
            a->used += need;
            return p;
        }
    }
    return malloc(n);
}

static void arena_free(void *p)
{
    arena_t *a = decode_arena;
    if (a && (uintptr_t)p >= (uintptr_t)a->base && (uintptr_t)p < (uintptr_t)a->base + a->cap)
        return;
    free(p);
}

static void arena_install(void)
{
    json_set_alloc_funcs(arena_malloc, arena_free);
}
#endif

event_reason_t event_decode(event_t *ev, const char *buf, size_t len, const event_kinds_t *kinds,
                            size_t max_bytes, char *detail, size_t dlen)
{
#if DECODE_USE_ARENA
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, arena_install);
#endif
    detail_t d = {detail, dlen, 0};
    if (detail && dlen > 0)
        detail[0] = '\0';
    event_kinds_t defaults;
    if (!kinds) {
        event_kinds_default(&defaults);
        kinds = &defaults;
    }
    /* the scalars only: the feature arrays are ~12 KB, filled up to ncat/nnum */
    ev->user[0] = ev->item[0] = '\0';
    ev->user_len = ev->item_len = 0;
    ev->kind = -1;
    ev->weight = 0.0f;
    ev->ts_ms = 0;
    ev->has_ts = 0;
    ev->ncat = ev->nnum = 0;

    if (len > max_bytes) {
        dfmt(&d, "message of %zu bytes, more than the limit of %zu", len, max_bytes);
        return EVR_TOO_LARGE;
    }
    if (!buf) {
        dfmt(&d, "no message");
        return EVR_BAD_JSON;
    }
#if DECODE_USE_ARENA
    _Alignas(16) unsigned char mem[DECODE_ARENA];
    arena_t arena = {mem, 0, sizeof(mem)};
    decode_arena = &arena;
#endif
    json_error_t jerr;
    event_reason_t r;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        dfmt(&d, "bad JSON at byte %d: ", jerr.position);
        dtext(&d, jerr.text);
        r = EVR_BAD_JSON;
    } else if (!json_is_object(root)) {
        dfmt(&d, "expected a JSON object, got %s", type_name(root));
        r = EVR_BAD_JSON;
    } else {
        r = decode_root(ev, root, kinds, &d);
    }
    json_decref(root);
#if DECODE_USE_ARENA
    decode_arena = NULL;
#endif
    return r;
}

event_reason_t event_check_time(int64_t ts_ms, int has_ts, int64_t now_ms, int64_t skew_ms,
                                char *detail, size_t dlen)
{
    detail_t d = {detail, dlen, 0};
    if (detail && dlen > 0)
        detail[0] = '\0';
    /* ts_ms ≤ EVENT_MAX_TS (decoded) or a Kafka timestamp: no overflow here */
    if (ts_ms - now_ms <= skew_ms)
        return EVR_OK;
    dfmt(&d, "%s %lld is %lld ms ahead of the clock, more than the %lld allowed",
         has_ts ? "\"ts\":" : "the Kafka message timestamp", (long long)ts_ms,
         (long long)(ts_ms - now_ms), (long long)skew_ms);
    return EVR_FUTURE_TS;
}

/* ---- encoding ---- */

size_t event_encode(char *buf, size_t cap, const char *user, size_t ulen, const char *item,
                    size_t ilen, const char *kind, int64_t ts_ms)
{
    /* s% takes (pointer, length); jansson refuses invalid UTF-8 */
    json_t *o = json_pack("{s:s%,s:s%,s:s}", "user", user, ulen, "item", item, ilen, "type", kind);
    if (!o)
        return 0;
    if (ts_ms >= 0 && json_object_set_new(o, "ts", json_integer((json_int_t)ts_ms)) < 0) {
        json_decref(o);
        return 0;
    }
    size_t n = json_dumpb(o, buf, cap, JSON_COMPACT);
    json_decref(o);
    if (n == 0 || n >= cap) /* room for the NUL as well */
        return 0;
    buf[n] = '\0';
    return n;
}
