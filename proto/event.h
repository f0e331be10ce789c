/* event.h — the event wire format (one Kafka message, JSON) and its
 * validation. The contract is written down in proto/README.md.
 *
 *   {"user":"u42","item":"i17","type":"click","ts":1764486000123,
 *    "cat":{"device":"ios"},"num":{"price":12.5}}
 *
 * user, item: non-empty strings of at most EVENT_MAX_ID bytes without control
 * characters, or integers (an integer id is its decimal text). type: one of
 * the configured kinds ("impression", "click", and weighted kinds such as
 * "purchase"). ts: optional integer, ms since the epoch, in [0, EVENT_MAX_TS]
 * (a real is taken when it is a whole number). cat: optional object, name →
 * string; num: optional object, name → finite number; at most
 * EVENT_MAX_FEATURES of each, names of at most EVENT_MAX_NAME bytes. An
 * optional field set to null counts as absent. Other top-level fields are
 * ignored.
 * Not for: what is learned from an event (learner/), Kafka (daemon/). */
#ifndef FR_EVENT_H
#define FR_EVENT_H

#include <stddef.h>
#include <stdint.h>

#define EVENT_MAX_ID 256
#define EVENT_MAX_NAME 64
#define EVENT_MAX_VALUE 256
#define EVENT_MAX_FEATURES 32
#define EVENT_MAX_KINDS 16
#define EVENT_MAX_TS 4102444800000LL /* 2100-01-01 */
#define EVENT_DEFAULT_MAX_BYTES 65536

/* Kind 0 is always "impression" and kind 1 "click" (weight 1); further kinds
 * are configured with a weight. */
enum { EVENT_IMPRESSION = 0, EVENT_CLICK = 1 };

typedef struct {
    char name[EVENT_MAX_NAME + 1];
    float weight;
} event_kind_t;

typedef struct {
    event_kind_t kind[EVENT_MAX_KINDS];
    int n;
} event_kinds_t;

/* Why an event was refused; the names are the `reason` label of
 * freshrec_events_invalid_total. */
typedef enum {
    EVR_OK = 0,
    EVR_TOO_LARGE,    /* "too_large": more than max_bytes */
    EVR_BAD_JSON,     /* "bad_json": not JSON, or not an object */
    EVR_MISSING,      /* "missing_field": no user, item or type */
    EVR_WRONG_TYPE,   /* "wrong_type": a field of the wrong JSON type */
    EVR_BAD_ID,       /* "bad_id": empty, too long or control characters */
    EVR_UNKNOWN_KIND, /* "unknown_type": type not configured */
    EVR_BAD_TS,       /* "bad_ts": out of range */
    EVR_BAD_FEATURE,  /* "bad_feature": too many, bad name, bad value */
    EVR_FUTURE_TS,    /* "future_ts": event time too far ahead of the clock (event_check_time,
                       * not event_decode: it takes the clock) */
    EVR_COUNT
} event_reason_t;

typedef struct {
    char name[EVENT_MAX_NAME + 1];
    char value[EVENT_MAX_VALUE + 1];
} event_cat_t;

typedef struct {
    char name[EVENT_MAX_NAME + 1];
    double value;
} event_num_t;

typedef struct {
    char user[EVENT_MAX_ID + 1];
    size_t user_len;
    char item[EVENT_MAX_ID + 1];
    size_t item_len;
    int kind;     /* index into event_kinds_t */
    float weight; /* the kind's weight */
    int64_t ts_ms;
    int has_ts; /* 0: the caller uses the Kafka message timestamp */
    int ncat, nnum;
    event_cat_t cat[EVENT_MAX_FEATURES];
    event_num_t num[EVENT_MAX_FEATURES];
} event_t;

/* impression and click only */
void event_kinds_default(event_kinds_t *k);
/* Sets k to the defaults plus the weighted kinds of a spec such as
 * "purchase:5,like:2" ("" or NULL: none). -1 and a message on a bad spec
 * (empty, duplicate or too long name, a character outside [A-Za-z0-9_.-],
 * weight not in (0, 1000], more than EVENT_MAX_KINDS kinds in all); k then
 * holds the defaults alone. */
int event_kinds_parse(event_kinds_t *k, const char *spec, char *errstr, size_t len);
/* Index of a kind by name, or -1. */
int event_kind_find(const event_kinds_t *k, const char *name, size_t len);

const char *event_reason_name(event_reason_t r);

/* Decodes and validates one message. On EVR_OK ev is filled; otherwise detail
 * says what was wrong (for the log and the dead-letter header): printable
 * ASCII, NUL-terminated, quoting at most 64 bytes of the message. kinds NULL
 * means the defaults. */
event_reason_t event_decode(event_t *ev, const char *buf, size_t len, const event_kinds_t *kinds,
                            size_t max_bytes, char *detail, size_t dlen);

/* The event time of a decoded event against the clock, which event_decode
 * leaves to its caller: ts_ms is the event's ts (has_ts 1) or the Kafka
 * message timestamp that stands in for it (has_ts 0). EVR_OK when it is at
 * most skew_ms ahead of now_ms (the wall clock); else EVR_FUTURE_TS and a
 * detail as event_decode's. One event from the future would otherwise move
 * event time, the clock of the impression/click join, past every impression
 * waiting for its click; a stream replayed from the past is never refused. */
event_reason_t event_check_time(int64_t ts_ms, int has_ts, int64_t now_ms, int64_t skew_ms,
                                char *detail, size_t dlen);

/* Writes the JSON of an event without features into buf, NUL-terminated;
 * returns its length, or 0 when cap is too small (the NUL included) or an id
 * or the kind is not valid UTF-8. ts_ms < 0 leaves ts out. */
size_t event_encode(char *buf, size_t cap, const char *user, size_t ulen, const char *item,
                    size_t ilen, const char *kind, int64_t ts_ms);

#endif
