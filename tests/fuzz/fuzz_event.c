/* fuzz_event.c — libFuzzer target for the event decoder (proto/event.c): any
 * bytes, decoded with the default kinds plus two weighted ones, must come back
 * either as an event that keeps every promise of event.h or as a refusal with
 * a sane detail; an event without features must survive event_encode and a
 * second decode unchanged. A broken promise is an abort(), which libFuzzer
 * reports as a crash with the input saved. Built and run by `make fuzz`.
 * Not for: the meaning of particular messages (tests/unit/test_event.c has those). */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

#define MAX_BYTES 65536
/* The longest detail the decoder writes is about 320 bytes: formatted parts
 * of fewer than 160 bytes and one quote of 64 message bytes, each at most 4 as
 * \xNN. Whatever the message, a detail stays under DETAIL_MAX; the buffer is
 * larger, so that a longer one would show rather than be cut. */
#define DETAIL_MAX 512
#define DETAIL_BUF 4096
#define CANARY 0x5a

static event_kinds_t kinds;
static event_t ev, ev2; /* ~24 KB each: static, not on the stack */

/* Names the broken promise, then aborts so that libFuzzer keeps the input. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_event: %s:%d: %s\n", __FILE__, __LINE__, #cond);                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256];
    if (event_kinds_parse(&kinds, "purchase:5,like:2.5", err, sizeof(err)) < 0 || kinds.n != 4) {
        fprintf(stderr, "fuzz_event: kinds: %s\n", err);
        abort();
    }
    return 0;
}

/* A string field of n bytes with its NUL at n and no control byte. */
static void check_text(const char *s, size_t n, size_t min, size_t max)
{
    CHECK(n >= min && n <= max);
    CHECK(s[n] == '\0');
    CHECK(strlen(s) == n);
    for (size_t i = 0; i < n; i++)
        CHECK((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] != 0x7f);
}

static void check_event(const event_t *e)
{
    check_text(e->user, e->user_len, 1, EVENT_MAX_ID);
    check_text(e->item, e->item_len, 1, EVENT_MAX_ID);
    CHECK(e->kind >= 0 && e->kind < kinds.n);
    CHECK(e->weight == kinds.kind[e->kind].weight);
    CHECK(e->has_ts == 0 || e->has_ts == 1);
    if (e->has_ts)
        CHECK(e->ts_ms >= 0 && e->ts_ms <= EVENT_MAX_TS);
    CHECK(e->ncat >= 0 && e->ncat <= EVENT_MAX_FEATURES);
    CHECK(e->nnum >= 0 && e->nnum <= EVENT_MAX_FEATURES);
    for (int i = 0; i < e->ncat; i++) {
        const event_cat_t *c = &e->cat[i];
        check_text(c->name, strnlen(c->name, sizeof(c->name)), 1, EVENT_MAX_NAME);
        check_text(c->value, strnlen(c->value, sizeof(c->value)), 0, EVENT_MAX_VALUE);
        for (int j = 0; j < i; j++) /* duplicate keys are bad JSON */
            CHECK(strcmp(e->cat[j].name, c->name) != 0);
    }
    for (int i = 0; i < e->nnum; i++) {
        const event_num_t *m = &e->num[i];
        check_text(m->name, strnlen(m->name, sizeof(m->name)), 1, EVENT_MAX_NAME);
        CHECK(isfinite(m->value));
        for (int j = 0; j < i; j++)
            CHECK(strcmp(e->num[j].name, m->name) != 0);
    }
}

/* Non-empty, NUL-terminated within dlen, printable ASCII, bounded. */
static void check_detail(const char *detail, size_t dlen)
{
    size_t n = strnlen(detail, dlen);
    CHECK(n < dlen);
    CHECK(n > 0 || dlen == 1);
    CHECK(n < DETAIL_MAX);
    for (size_t i = 0; i < n; i++)
        CHECK(detail[i] >= 0x20 && detail[i] < 0x7f);
}

/* encode → decode gives back the same ids, kind and ts. */
static void check_round_trip(const event_t *e)
{
    /* an id is at most 256 bytes, each at most 2 bytes in JSON (\" \\) */
    char buf[2048];
    size_t n = event_encode(buf, sizeof(buf), e->user, e->user_len, e->item, e->item_len,
                            kinds.kind[e->kind].name, e->has_ts ? e->ts_ms : -1);
    CHECK(n > 0); /* the ids were valid UTF-8 (jansson checked) or decimal text */
    char detail[DETAIL_MAX];
    event_reason_t r = event_decode(&ev2, buf, n, &kinds, MAX_BYTES, detail, sizeof(detail));
    if (r != EVR_OK)
        fprintf(stderr, "fuzz_event: re-encoded %s refused: %s\n", buf, detail);
    CHECK(r == EVR_OK);
    CHECK(ev2.user_len == e->user_len && memcmp(ev2.user, e->user, e->user_len + 1) == 0);
    CHECK(ev2.item_len == e->item_len && memcmp(ev2.item, e->item, e->item_len + 1) == 0);
    CHECK(ev2.kind == e->kind && ev2.weight == e->weight);
    CHECK(ev2.has_ts == e->has_ts);
    CHECK(!e->has_ts || ev2.ts_ms == e->ts_ms);
    CHECK(ev2.ncat == 0 && ev2.nnum == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    /* garbage first, so no check passes thanks to zeroed memory */
    memset(&ev, 0xa5, sizeof(ev));
    static char detail[DETAIL_BUF];
    memset(detail, CANARY, sizeof(detail));
    event_reason_t r = event_decode(&ev, buf, size, &kinds, MAX_BYTES, detail, sizeof(detail));
    CHECK((int)r >= 0 && r < EVR_COUNT);
    CHECK((size > MAX_BYTES) == (r == EVR_TOO_LARGE)); /* the size is checked first, alone */

    if (r == EVR_OK) {
        CHECK(detail[0] == '\0');
        check_event(&ev);
        if (ev.ncat == 0 && ev.nnum == 0)
            check_round_trip(&ev);
        return 0;
    }
    check_detail(detail, sizeof(detail));

    /* Again with a short buffer (or none), sized by the input: the same
     * reason, the detail cut to a prefix, nothing written past it. */
    size_t dlen = size % 97;
    char small[97 + 16];
    memset(small, CANARY, sizeof(small));
    event_reason_t r2 = event_decode(&ev2, buf, size, &kinds, MAX_BYTES, dlen ? small : NULL, dlen);
    CHECK(r2 == r);
    for (size_t i = dlen; i < sizeof(small); i++)
        CHECK((unsigned char)small[i] == CANARY);
    if (dlen) {
        check_detail(small, dlen);
        CHECK(strncmp(small, detail, strlen(small)) == 0);
        CHECK(strlen(small) == strlen(detail) || strlen(small) == dlen - 1);
    }
    return 0;
}
