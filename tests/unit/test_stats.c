/* test_stats.c — tests of the stats port (daemon/stats.c, daemon/metrics.c):
 * the Prometheus text is read back with a small strict parser of the
 * exposition format (HELP and TYPE for every family, grouped samples, counter
 * names, cumulative histogram buckets), label escaping, non-finite values, the
 * JSON figures, the health verdict, the latency histogram's edges, the
 * /vector answer, and real HTTP requests to a server on a free loopback port.
 * Not for: how the daemon gathers the figures (test_daemon). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "keys.h"
#include "stats.h"

/* ---- a strict reader of the Prometheus text format 0.0.4 --------------- */

#define PROM_MAX_SAMPLES 1024
#define PROM_MAX_FAMILIES 128
#define PROM_MAX_LABELS 4

typedef struct {
    char name[64];
    char value[256];
} plabel_t;

typedef struct {
    char name[128];
    plabel_t l[PROM_MAX_LABELS];
    int nl;
    double value;
    int family;
} psample_t;

typedef struct {
    char name[128];
    char type[16];
    int help, typed, nsamples;
} pfamily_t;

typedef struct {
    psample_t s[PROM_MAX_SAMPLES];
    int ns;
    pfamily_t f[PROM_MAX_FAMILIES];
    int nf;
} prom_t;

static char prom_err[512];

static int is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static int is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* Reads a metric (colons allowed) or label name at *p into out. */
static int read_name(const char **p, const char *end, char *out, size_t cap, int metric)
{
    const char *s = *p;
    if (s >= end || !is_name_start(*s) || (!metric && *s == ':'))
        return -1;
    size_t n = 0;
    while (s < end && is_name_char(*s) && (metric || *s != ':')) {
        if (n + 1 >= cap)
            return -1;
        out[n++] = *s++;
    }
    out[n] = '\0';
    *p = s;
    return 0;
}

static int parse_value(const char *s, size_t n, double *out)
{
    char b[64];
    if (n == 0 || n >= sizeof(b))
        return -1;
    memcpy(b, s, n);
    b[n] = '\0';
    if (strcmp(b, "NaN") == 0) {
        *out = NAN;
        return 0;
    }
    if (strcmp(b, "+Inf") == 0 || strcmp(b, "-Inf") == 0) {
        *out = b[0] == '+' ? INFINITY : -INFINITY;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789.eE+-", b[i]))
            return -1;
    char *e;
    *out = strtod(b, &e);
    return *e == '\0' ? 0 : -1;
}

static int find_family(const prom_t *p, const char *name)
{
    for (int i = 0; i < p->nf; i++)
        if (strcmp(p->f[i].name, name) == 0)
            return i;
    return -1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The family a sample name belongs to, or -1. */
static int sample_family(const prom_t *p, const char *name)
{
    int f = find_family(p, name);
    if (f >= 0 && strcmp(p->f[f].type, "histogram") != 0)
        return f;
    static const char *const suffix[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        if (!ends_with(name, suffix[i]))
            continue;
        char base[128];
        size_t n = strlen(name) - strlen(suffix[i]);
        memcpy(base, name, n);
        base[n] = '\0';
        f = find_family(p, base);
        if (f >= 0 && strcmp(p->f[f].type, "histogram") == 0)
            return f;
    }
    return -1;
}

#define PFAIL(...)                                                                                 \
    do {                                                                                           \
        int o_ = snprintf(prom_err, sizeof(prom_err), "line %d: ", lineno);                        \
        snprintf(prom_err + o_, sizeof(prom_err) - (size_t)o_, __VA_ARGS__);                       \
        return prom_err;                                                                           \
    } while (0)

static const char *parse_comment(prom_t *p, const char *s, const char *end, int lineno, int *cur)
{
    int help = strncmp(s, "# HELP ", 7) == 0, type = strncmp(s, "# TYPE ", 7) == 0;
    if (!help && !type)
        PFAIL("a comment that is neither HELP nor TYPE");
    s += 7;
    char name[128];
    if (read_name(&s, end, name, sizeof(name), 1) != 0 || s >= end || *s != ' ')
        PFAIL("bad metric name in a %s line", help ? "HELP" : "TYPE");
    s++;
    int f = find_family(p, name);
    if (f < 0) {
        if (p->nf == PROM_MAX_FAMILIES)
            PFAIL("too many families");
        f = p->nf++;
        memset(&p->f[f], 0, sizeof(p->f[f]));
        snprintf(p->f[f].name, sizeof(p->f[f].name), "%s", name);
    } else if (f != *cur) {
        PFAIL("family %s declared again after others", name);
    }
    *cur = f;
    pfamily_t *fam = &p->f[f];
    if (fam->nsamples > 0)
        PFAIL("%s line for %s after its samples", help ? "HELP" : "TYPE", name);
    if (help) {
        if (fam->help++)
            PFAIL("second HELP for %s", name);
        if (s >= end)
            PFAIL("empty HELP for %s", name);
        for (; s < end; s++)
            if (*s == '\\' && (s + 1 >= end || (s[1] != '\\' && s[1] != 'n')))
                PFAIL("bad escape in HELP for %s", name);
            else if (*s == '\\')
                s++;
        return NULL;
    }
    if (fam->typed++)
        PFAIL("second TYPE for %s", name);
    size_t n = (size_t)(end - s);
    if (n >= sizeof(fam->type))
        PFAIL("bad type for %s", name);
    memcpy(fam->type, s, n);
    fam->type[n] = '\0';
    if (strcmp(fam->type, "counter") != 0 && strcmp(fam->type, "gauge") != 0 &&
        strcmp(fam->type, "histogram") != 0)
        PFAIL("unexpected type '%s' for %s", fam->type, name);
    if (strcmp(fam->type, "counter") == 0 && !ends_with(name, "_total"))
        PFAIL("counter %s does not end in _total", name);
    if (strncmp(name, "freshrec_", 9) != 0)
        PFAIL("%s lacks the freshrec_ prefix", name);
    return NULL;
}

static const char *parse_sample(prom_t *p, const char *s, const char *end, int lineno, int cur)
{
    if (p->ns == PROM_MAX_SAMPLES)
        PFAIL("too many samples");
    psample_t *x = &p->s[p->ns];
    memset(x, 0, sizeof(*x));
    if (read_name(&s, end, x->name, sizeof(x->name), 1) != 0)
        PFAIL("bad sample name");
    if (s < end && *s == '{') {
        s++;
        while (s < end && *s != '}') {
            if (x->nl == PROM_MAX_LABELS)
                PFAIL("too many labels");
            plabel_t *l = &x->l[x->nl];
            if (read_name(&s, end, l->name, sizeof(l->name), 0) != 0)
                PFAIL("bad label name");
            for (int i = 0; i < x->nl; i++)
                if (strcmp(x->l[i].name, l->name) == 0)
                    PFAIL("label %s twice", l->name);
            if (end - s < 2 || s[0] != '=' || s[1] != '"')
                PFAIL("label %s: want =\"", l->name);
            s += 2;
            size_t n = 0;
            for (; s < end && *s != '"'; s++) {
                char c = *s;
                if (c == '\\') {
                    if (++s >= end)
                        PFAIL("label %s: dangling backslash", l->name);
                    c = *s == 'n' ? '\n' : *s;
                    if (*s != 'n' && *s != '\\' && *s != '"')
                        PFAIL("label %s: bad escape \\%c", l->name, *s);
                }
                if (n + 1 >= sizeof(l->value))
                    PFAIL("label %s: value too long", l->name);
                l->value[n++] = c;
            }
            if (s >= end)
                PFAIL("label %s: unterminated value", l->name);
            l->value[n] = '\0';
            s++; /* the closing quote */
            x->nl++;
            if (s < end && *s == ',')
                s++;
            else if (s >= end || *s != '}')
                PFAIL("after label %s: want , or }", l->name);
        }
        if (s >= end)
            PFAIL("unterminated label set");
        s++;
    }
    if (s >= end || *s != ' ')
        PFAIL("%s: want one space before the value", x->name);
    s++;
    if (parse_value(s, (size_t)(end - s), &x->value) != 0)
        PFAIL("%s: bad value '%.*s' (or a timestamp)", x->name, (int)(end - s), s);
    x->family = sample_family(p, x->name);
    if (x->family < 0)
        PFAIL("%s: no TYPE for its family", x->name);
    if (x->family != cur)
        PFAIL("%s: not grouped under its family's HELP and TYPE", x->name);
    if (!p->f[cur].help || !p->f[cur].typed)
        PFAIL("%s: family lacks HELP or TYPE", x->name);
    p->f[cur].nsamples++;
    p->ns++;
    return NULL;
}

/* Histogram families: le buckets strictly increasing and ending in +Inf,
 * counts non-decreasing, +Inf == _count, and a _sum. */
static const char *check_histograms(const prom_t *p)
{
    int lineno = 0;
    for (int f = 0; f < p->nf; f++) {
        if (strcmp(p->f[f].type, "histogram") != 0)
            continue;
        const char *name = p->f[f].name;
        double last_le = -INFINITY, last_v = 0;
        int nb = 0, have_sum = 0, have_count = 0;
        double count = 0;
        for (int i = 0; i < p->ns; i++) {
            const psample_t *x = &p->s[i];
            if (x->family != f)
                continue;
            if (ends_with(x->name, "_bucket")) {
                if (x->nl != 1 || strcmp(x->l[0].name, "le") != 0)
                    PFAIL("%s: a bucket without exactly an le label", name);
                double le;
                if (parse_value(x->l[0].value, strlen(x->l[0].value), &le) != 0 || isnan(le))
                    PFAIL("%s: bad le '%s'", name, x->l[0].value);
                if (!(le > last_le))
                    PFAIL("%s: le not increasing at %s", name, x->l[0].value);
                if (x->value < last_v)
                    PFAIL("%s: buckets not cumulative at le=%s", name, x->l[0].value);
                last_le = le;
                last_v = x->value;
                nb++;
            } else if (ends_with(x->name, "_sum")) {
                have_sum++;
            } else {
                have_count++;
                count = x->value;
            }
        }
        if (nb == 0 || !isinf(last_le))
            PFAIL("%s: no le=\"+Inf\" bucket last", name);
        if (have_sum != 1 || have_count != 1)
            PFAIL("%s: want one _sum and one _count", name);
        if (last_v != count)
            PFAIL("%s: +Inf bucket %g != _count %g", name, last_v, count);
    }
    return NULL;
}

/* NULL when text is well-formed; otherwise what is wrong. */
static const char *prom_parse(prom_t *p, const char *text, size_t len)
{
    memset(p, 0, sizeof(*p));
    int lineno = 0, cur = -1;
    const char *s = text, *end = text + len;
    if (len == 0 || text[len - 1] != '\n')
        PFAIL("text does not end with a newline");
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        lineno++;
        if (nl == s)
            PFAIL("empty line");
        const char *err =
            *s == '#' ? parse_comment(p, s, nl, lineno, &cur) : parse_sample(p, s, nl, lineno, cur);
        if (err)
            return err;
        s = nl + 1;
    }
    for (int f = 0; f < p->nf; f++)
        if (!p->f[f].help || !p->f[f].typed)
            PFAIL("family %s lacks HELP or TYPE", p->f[f].name);
    return check_histograms(p);
}

/* The value of the sample with this name and these labels (k, v pairs,
 * NULL-terminated; all of the sample's labels). Fails the test when absent. */
static double prom_get(const prom_t *p, const char *name, ...)
{
    const char *k[PROM_MAX_LABELS], *v[PROM_MAX_LABELS];
    int n = 0;
    va_list ap;
    va_start(ap, name);
    for (const char *key; (key = va_arg(ap, const char *)) != NULL && n < PROM_MAX_LABELS; n++) {
        k[n] = key;
        v[n] = va_arg(ap, const char *);
    }
    va_end(ap);
    for (int i = 0; i < p->ns; i++) {
        const psample_t *x = &p->s[i];
        if (strcmp(x->name, name) != 0 || x->nl != n)
            continue;
        int match = 1;
        for (int j = 0; j < n && match; j++) {
            int found = 0;
            for (int q = 0; q < x->nl; q++)
                found |= strcmp(x->l[q].name, k[j]) == 0 && strcmp(x->l[q].value, v[j]) == 0;
            match = found;
        }
        if (match)
            return x->value;
    }
    fail_msg("no sample %s with %d label(s)%s%s", name, n, n ? ", first " : "", n ? v[0] : "");
    return NAN;
}

static int prom_count(const prom_t *p, const char *name)
{
    int n = 0;
    for (int i = 0; i < p->ns; i++)
        n += strcmp(p->s[i].name, name) == 0;
    return n;
}

/* ---- fixtures ---------------------------------------------------------- */

static void set_kind(metrics_t *m, const char *name)
{
    snprintf(m->kinds.kind[m->kinds.n].name, sizeof(m->kinds.kind[0].name), "%s", name);
    m->kinds.kind[m->kinds.n].weight = 1;
    m->kinds.n++;
}

/* Every figure distinct, so that a value in the wrong place shows. */
static void fill(metrics_t *m)
{
    memset(m, 0, sizeof(*m));
    set_kind(m, "impression");
    set_kind(m, "click");
    set_kind(m, "purchase");
    m->consumed[0] = 101;
    m->consumed[1] = 102;
    m->consumed[2] = 0; /* zero values are exported too */
    for (int r = 0; r < EVR_COUNT; r++)
        m->invalid[r] = 200 + (uint64_t)r;
    m->dead_letter_total = 301;
    m->dead_letter_errors_total = 302;
    m->dead_letter_pending = 306;
    m->dead_letter_truncated_total = 307;
    m->dead_letter_blocked = 0; /* healthy: the health tests use this snapshot */
    m->impressions_pending = 303;
    m->impressions_negative_total = 304;
    m->impressions_clicked_total = 305;

    learner_stats_t *ls = &m->learner;
    ls->events = 401;
    ls->pairs = 402;
    ls->skipped = 403;
    ls->bad = 404;
    ls->batches = 405;
    ls->loss_ewma = 0.1;
    ls->preq_n = 406;
    ls->preq_hr10 = 0.5;
    ls->preq_ndcg10 = 0.25;
    ls->preq_hr10_ewma = 1.0 / 3.0;
    ls->preq_ndcg10_ewma = 0.2;
    ls->users =
        (emb_stats_t){.entries = 501, .rows = 502, .bytes = 503, .admitted = 504, .expired = 505};
    ls->items =
        (emb_stats_t){.entries = 601, .rows = 602, .bytes = 603, .admitted = 604, .expired = 605};

    m->publish_total = 701;
    m->publish_keys_total = 702;
    m->publish_bytes_total = 703;
    m->publish_errors_total = 704;
    m->dirty_keys = 705;
    m->checkpoint_total = 801;
    m->checkpoint_errors_total = 802;
    m->checkpoint_skipped_total = 803;
    m->checkpoint_seconds = 2.5;
    m->checkpoint_stall_seconds = 0.0075;
    m->checkpoint_stall_max_seconds = 0.03125;
    m->checkpoint_bytes = 1103412652;
    metrics_observe_latency(m, 0.0005);
    metrics_observe_latency(m, 0.003);
    metrics_observe_latency(m, 0.003);
    metrics_observe_latency(m, 0.2);
    metrics_observe_latency(m, 7.0);

    m->nparts = 3;
    m->part[0] = (metrics_partition_t){.topic = "events", .partition = 0, .lag = 12, .stored = 40};
    m->part[1] = (metrics_partition_t){.topic = "events", .partition = 1, .lag = -1, .stored = -1};
    m->part[2] = (metrics_partition_t){.topic = "events", .partition = 2, .lag = 0, .stored = 7};

    m->checkpoint_failing = 0; /* healthy */

    m->uptime_s = 3600.5;
    m->time_ms = 1796400000123; /* past 2^32: an int would wrap */
    m->rss_bytes = 123456789;
    m->consuming = 1;
    m->redis_link = 1;
    m->redis_connected = 1;
    m->redis_last_ack_age_s = 0.046875;
    snprintf(m->model, sizeof(m->model), "neumf");
}

static prom_t *render_and_parse(const metrics_t *m, char **text_out)
{
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    stats_render_prometheus(m, b);
    size_t n = evbuffer_get_length(b);
    char *text = malloc(n + 1);
    assert_non_null(text);
    evbuffer_remove(b, text, n);
    text[n] = '\0';
    evbuffer_free(b);
    prom_t *p = malloc(sizeof(*p));
    assert_non_null(p);
    const char *err = prom_parse(p, text, n);
    if (err)
        fail_msg("%s\n---\n%s", err, text);
    if (text_out)
        *text_out = text;
    else
        free(text);
    return p;
}

static json_t *render_json(const metrics_t *m)
{
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    stats_render_json(m, b);
    size_t n = evbuffer_get_length(b);
    json_error_t e;
    json_t *j = json_loadb((const char *)evbuffer_pullup(b, -1), n, 0, &e);
    if (j == NULL)
        fail_msg("JSON does not parse: %s (line %d)", e.text, e.line);
    evbuffer_free(b);
    return j;
}

/* The value at a path of object keys (NULL-terminated); fails when absent. */
static json_t *jpath(json_t *root, ...)
{
    va_list ap;
    va_start(ap, root);
    json_t *j = root;
    for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
        json_t *next = json_object_get(j, k);
        if (next == NULL) {
            va_end(ap);
            fail_msg("no JSON key %s", k);
        }
        j = next;
    }
    va_end(ap);
    return j;
}

static json_int_t jint(json_t *j)
{
    assert_true(json_is_integer(j));
    return json_integer_value(j);
}

/* ---- Prometheus text --------------------------------------------------- */

static void test_prometheus_values(void **state)
{
    (void)state;
    metrics_t *m = malloc(sizeof(*m));
    assert_non_null(m);
    fill(m);
    prom_t *p = render_and_parse(m, NULL);

    assert_true(prom_get(p, "freshrec_events_consumed_total", "type", "impression", NULL) == 101);
    assert_true(prom_get(p, "freshrec_events_consumed_total", "type", "click", NULL) == 102);
    assert_true(prom_get(p, "freshrec_events_consumed_total", "type", "purchase", NULL) == 0);
    assert_int_equal(prom_count(p, "freshrec_events_consumed_total"), 3);

    static const struct {
        event_reason_t r;
        const char *name;
    } reasons[] = {{EVR_TOO_LARGE, "too_large"},   {EVR_BAD_JSON, "bad_json"},
                   {EVR_MISSING, "missing_field"}, {EVR_WRONG_TYPE, "wrong_type"},
                   {EVR_BAD_ID, "bad_id"},         {EVR_UNKNOWN_KIND, "unknown_type"},
                   {EVR_BAD_TS, "bad_ts"},         {EVR_BAD_FEATURE, "bad_feature"},
                   {EVR_FUTURE_TS, "future_ts"}};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        assert_true(prom_get(p, "freshrec_events_invalid_total", "reason", reasons[i].name, NULL) ==
                    200 + reasons[i].r);
    assert_int_equal(prom_count(p, "freshrec_events_invalid_total"), EVR_COUNT - 1);

    static const struct {
        const char *name;
        double want;
    } plain[] = {
        {"freshrec_events_dead_letter_total", 301},
        {"freshrec_dead_letter_errors_total", 302},
        {"freshrec_dead_letter_pending", 306},
        {"freshrec_dead_letter_truncated_total", 307},
        {"freshrec_dead_letter_blocked", 0},
        {"freshrec_impressions_pending", 303},
        {"freshrec_impressions_negative_total", 304},
        {"freshrec_impressions_clicked_total", 305},
        {"freshrec_events_learned_total", 401},
        {"freshrec_pairs_learned_total", 402},
        {"freshrec_events_skipped_total", 403},
        {"freshrec_events_learner_refused_total", 404},
        {"freshrec_loss", 0.1},
        {"freshrec_prequential_ranked_total", 406},
        {"freshrec_hr_at_10", 1.0 / 3.0}, /* round-trips exactly */
        {"freshrec_ndcg_at_10", 0.2},
        {"freshrec_publish_total", 701},
        {"freshrec_publish_keys_total", 702},
        {"freshrec_publish_bytes_total", 703},
        {"freshrec_publish_errors_total", 704},
        {"freshrec_dirty_keys", 705},
        {"freshrec_checkpoint_total", 801},
        {"freshrec_checkpoint_errors_total", 802},
        {"freshrec_checkpoint_skipped_total", 803},
        {"freshrec_checkpoint_seconds", 2.5},
        {"freshrec_checkpoint_stall_seconds", 0.0075},
        {"freshrec_checkpoint_stall_max_seconds", 0.03125},
        {"freshrec_checkpoint_bytes", 1103412652},
        {"freshrec_process_resident_memory_bytes", 123456789},
        {"freshrec_uptime_seconds", 3600.5},
        {"freshrec_redis_connected", 1},
        {"freshrec_redis_last_ack_age_seconds", 0.046875},
        {"freshrec_consuming", 1},
        {"freshrec_publish_latency_seconds_count", 5},
        {"freshrec_checkpoint_failing", 0},
        {"freshrec_publish_latency_seconds_sum", 0.0005 + 0.003 + 0.003 + 0.2 + 7.0},
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        if (prom_get(p, plain[i].name, NULL) != plain[i].want)
            fail_msg("%s: %.17g, want %.17g", plain[i].name, prom_get(p, plain[i].name, NULL),
                     plain[i].want);

    static const struct {
        const char *name;
        double users, items;
    } tables[] = {{"freshrec_table_admitted_total", 504, 604},
                  {"freshrec_table_expired_total", 505, 605},
                  {"freshrec_table_rows", 502, 602},
                  {"freshrec_table_bytes", 503, 603}};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        assert_true(prom_get(p, tables[i].name, "table", "users", NULL) == tables[i].users);
        assert_true(prom_get(p, tables[i].name, "table", "items", NULL) == tables[i].items);
    }

    /* partition 1's lag is unknown, so it is left out */
    assert_true(prom_get(p, "freshrec_consumer_lag", "topic", "events", "partition", "0", NULL) ==
                12);
    assert_true(prom_get(p, "freshrec_consumer_lag", "topic", "events", "partition", "2", NULL) ==
                0);
    assert_int_equal(prom_count(p, "freshrec_consumer_lag"), 2);
    assert_true(prom_get(p, "freshrec_info", "model", "neumf", NULL) == 1);

    /* observations 0.0005 | 0.003 0.003 | 0.2 | 7 (above every bound) */
    static const struct {
        const char *le;
        double want;
    } buckets[] = {{"0.001", 1}, {"0.0025", 1}, {"0.005", 3}, {"0.01", 3},
                   {"0.025", 3}, {"0.05", 3},   {"0.1", 3},   {"0.25", 4},
                   {"0.5", 4},   {"1", 4},      {"2.5", 4},   {"+Inf", 5}};
    assert_int_equal(prom_count(p, "freshrec_publish_latency_seconds_bucket"), METRICS_LAT_BUCKETS);
    for (size_t i = 0; i < sizeof(buckets) / sizeof(buckets[0]); i++)
        if (prom_get(p, "freshrec_publish_latency_seconds_bucket", "le", buckets[i].le, NULL) !=
            buckets[i].want)
            fail_msg("bucket le=%s: want %g", buckets[i].le, buckets[i].want);

    free(p);
    free(m);
}

static void test_prometheus_zero_snapshot(void **state)
{
    (void)state;
    metrics_t *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    prom_t *p = render_and_parse(m, NULL);
    assert_int_equal(prom_count(p, "freshrec_events_consumed_total"), 0);
    assert_int_equal(prom_count(p, "freshrec_consumer_lag"), 0);
    assert_true(prom_get(p, "freshrec_publish_latency_seconds_bucket", "le", "+Inf", NULL) == 0);
    assert_true(prom_get(p, "freshrec_info", "model", "", NULL) == 1);
    free(p);
    free(m);
}

static void test_prometheus_label_escaping(void **state)
{
    (void)state;
    metrics_t *m = malloc(sizeof(*m));
    assert_non_null(m);
    fill(m);
    const char *topic = "we\"ird\\to\npic";
    snprintf(m->part[0].topic, sizeof(m->part[0].topic), "%s", topic);
    snprintf(m->model, sizeof(m->model), "a\\b\"c");
    char *text;
    prom_t *p = render_and_parse(m, &text);
    assert_non_null(strstr(text, "freshrec_consumer_lag{topic=\"we\\\"ird\\\\to\\npic\","
                                 "partition=\"0\"} 12\n"));
    assert_non_null(strstr(text, "freshrec_info{model=\"a\\\\b\\\"c\"} 1\n"));
    /* and the reader gets the original bytes back */
    assert_true(prom_get(p, "freshrec_consumer_lag", "topic", topic, "partition", "0", NULL) == 12);
    assert_true(prom_get(p, "freshrec_info", "model", "a\\b\"c", NULL) == 1);
    free(text);
    free(p);
    free(m);
}

static void test_prometheus_nonfinite(void **state)
{
    (void)state;
    metrics_t *m = malloc(sizeof(*m));
    assert_non_null(m);
    fill(m);
    m->learner.loss_ewma = NAN;
    m->learner.preq_hr10_ewma = INFINITY;
    m->learner.preq_ndcg10_ewma = -INFINITY;
    char *text;
    prom_t *p = render_and_parse(m, &text);
    assert_non_null(strstr(text, "\nfreshrec_loss NaN\n"));
    assert_non_null(strstr(text, "\nfreshrec_hr_at_10 +Inf\n"));
    assert_non_null(strstr(text, "\nfreshrec_ndcg_at_10 -Inf\n"));
    assert_non_null(strstr(text, "\nfreshrec_loss NaN\n"));
    assert_true(isnan(prom_get(p, "freshrec_loss", NULL)));
    /* shortest round-trip spelling of plain figures */
    assert_non_null(strstr(text, "\nfreshrec_uptime_seconds 3600.5\n"));
    assert_non_null(strstr(text, "{le=\"0.1\"} 3\n"));
    free(text);
    free(p);
    free(m);
}

/* Unterminated strings and out-of-range counts are read within bounds (the
 * sanitizer build checks). */
static void test_prometheus_bounds(void **state)
{
    (void)state;
    metrics_t *m = malloc(sizeof(*m));
    assert_non_null(m);
    fill(m);
    m->nparts = METRICS_MAX_PARTITIONS + 100;
    for (int i = 0; i < METRICS_MAX_PARTITIONS; i++) {
        memset(m->part[i].topic, 'x', sizeof(m->part[i].topic));
        m->part[i].partition = i;
        m->part[i].lag = i;
    }
    memset(m->model, 'm', sizeof(m->model));
    m->kinds.n = EVENT_MAX_KINDS + 5;
    for (int k = 0; k < EVENT_MAX_KINDS; k++)
        snprintf(m->kinds.kind[k].name, sizeof(m->kinds.kind[k].name), "k%d", k);
    prom_t *p = render_and_parse(m, NULL);
    assert_int_equal(prom_count(p, "freshrec_consumer_lag"), METRICS_MAX_PARTITIONS);
    assert_int_equal(prom_count(p, "freshrec_events_consumed_total"), EVENT_MAX_KINDS);
    char want[sizeof(m->model) + 1];
    memset(want, 'm', sizeof(m->model));
    want[sizeof(m->model)] = '\0';
    assert_true(prom_get(p, "freshrec_info", "model", want, NULL) == 1);
    free(p);

    json_t *j = render_json(m);
    assert_int_equal(json_array_size(jpath(j, "consumer", "partitions", NULL)),
                     METRICS_MAX_PARTITIONS);
    assert_int_equal(strlen(json_string_value(jpath(j, "model", NULL))), sizeof(m->model));
    json_decref(j);
    free(m);
}

/* The reader itself refuses what it should, so that its passes mean something. */
static void test_parser_is_strict(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "freshrec_x_total 1\n",                                                 /* no TYPE */
        "# HELP freshrec_x counter\n# TYPE freshrec_x counter\nfreshrec_x 1\n", /* no _total */
        "# HELP freshrec_g g\n# TYPE freshrec_g gauge\nfreshrec_g 1 123\n",     /* timestamp */
        "# HELP freshrec_g g\n# TYPE freshrec_g gauge\nfreshrec_g{a=\"\\q\"} 1\n",
        "# HELP freshrec_g g\n# TYPE freshrec_g gauge\nfreshrec_g 1", /* no newline */
        "# HELP freshrec_h h\n# TYPE freshrec_h histogram\nfreshrec_h_bucket{le=\"1\"} 2\n"
        "freshrec_h_bucket{le=\"+Inf\"} 1\nfreshrec_h_sum 1\nfreshrec_h_count 1\n",
        "# HELP freshrec_h h\n# TYPE freshrec_h histogram\nfreshrec_h_bucket{le=\"+Inf\"} 2\n"
        "freshrec_h_sum 1\nfreshrec_h_count 3\n",
        "# HELP freshrec_a a\n# TYPE freshrec_a gauge\n# HELP freshrec_b b\n"
        "# TYPE freshrec_b gauge\nfreshrec_a 1\n", /* not grouped */
    };
    prom_t *p = malloc(sizeof(*p));
    assert_non_null(p);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (prom_parse(p, bad[i], strlen(bad[i])) == NULL)
            fail_msg("accepted bad text %zu:\n%s", i, bad[i]);
    const char *good = "# HELP freshrec_g g\n# TYPE freshrec_g gauge\nfreshrec_g{a=\"x\"} -1.5e3\n";
    assert_null(prom_parse(p, good, strlen(good)));
    assert_true(prom_get(p, "freshrec_g", "a", "x", NULL) == -1500);
    free(p);
}

/* ---- JSON -------------------------------------------------------------- */

static void test_json(void **state)
{
    (void)state;
    metrics_t *m = malloc(sizeof(*m));
    assert_non_null(m);
    fill(m);
    json_t *j = render_json(m);

    assert_int_equal(jint(jpath(j, "events", "consumed", "click", NULL)), 102);
    assert_int_equal(jint(jpath(j, "events", "consumed", "purchase", NULL)), 0);
    assert_int_equal(json_object_size(jpath(j, "events", "consumed", NULL)), 3);
    assert_int_equal(jint(jpath(j, "events", "invalid", "bad_json", NULL)), 200 + EVR_BAD_JSON);
    assert_int_equal(json_object_size(jpath(j, "events", "invalid", NULL)), EVR_COUNT - 1);
    assert_int_equal(jint(jpath(j, "events", "dead_letter", NULL)), 301);
    assert_int_equal(jint(jpath(j, "events", "dead_letter_errors", NULL)), 302);
    assert_int_equal(jint(jpath(j, "events", "learned", NULL)), 401);
    assert_int_equal(jint(jpath(j, "events", "pairs", NULL)), 402);
    assert_int_equal(jint(jpath(j, "events", "skipped", NULL)), 403);
    assert_int_equal(jint(jpath(j, "events", "impressions", "pending", NULL)), 303);
    assert_int_equal(jint(jpath(j, "events", "impressions", "negative", NULL)), 304);
    assert_int_equal(jint(jpath(j, "events", "impressions", "clicked", NULL)), 305);

    assert_true(json_real_value(jpath(j, "learning", "loss", NULL)) == 0.1);
    assert_true(json_real_value(jpath(j, "learning", "hr_at_10", NULL)) == 1.0 / 3.0);
    assert_true(json_real_value(jpath(j, "learning", "ndcg_at_10", NULL)) == 0.2);
    assert_int_equal(jint(jpath(j, "learning", "prequential_ranked", NULL)), 406);

    assert_int_equal(jint(jpath(j, "publish", "total", NULL)), 701);
    assert_int_equal(jint(jpath(j, "publish", "keys", NULL)), 702);
    assert_int_equal(jint(jpath(j, "publish", "bytes", NULL)), 703);
    assert_int_equal(jint(jpath(j, "publish", "errors", NULL)), 704);
    assert_int_equal(jint(jpath(j, "publish", "dirty_keys", NULL)), 705);
    assert_int_equal(jint(jpath(j, "publish", "latency_seconds", "count", NULL)), 5);
    assert_int_equal(jint(jpath(j, "publish", "latency_seconds", "buckets", "0.005", NULL)), 3);
    assert_int_equal(jint(jpath(j, "publish", "latency_seconds", "buckets", "+Inf", NULL)), 5);
    assert_int_equal(json_object_size(jpath(j, "publish", "latency_seconds", "buckets", NULL)),
                     METRICS_LAT_BUCKETS);

    assert_true(json_is_true(jpath(j, "consumer", "consuming", NULL)));
    json_t *parts = jpath(j, "consumer", "partitions", NULL);
    assert_int_equal(json_array_size(parts), 3);
    assert_string_equal(json_string_value(jpath(json_array_get(parts, 0), "topic", NULL)),
                        "events");
    assert_int_equal(jint(jpath(json_array_get(parts, 0), "lag", NULL)), 12);
    assert_int_equal(jint(jpath(json_array_get(parts, 0), "stored", NULL)), 40);
    assert_int_equal(jint(jpath(json_array_get(parts, 2), "partition", NULL)), 2);
    assert_true(json_is_null(jpath(json_array_get(parts, 1), "lag", NULL)));
    assert_true(json_is_null(jpath(json_array_get(parts, 1), "stored", NULL)));

    assert_int_equal(jint(jpath(j, "tables", "users", "rows", NULL)), 502);
    assert_int_equal(jint(jpath(j, "tables", "users", "entries", NULL)), 501);
    assert_int_equal(jint(jpath(j, "tables", "items", "bytes", NULL)), 603);
    assert_int_equal(jint(jpath(j, "tables", "items", "admitted", NULL)), 604);
    assert_int_equal(jint(jpath(j, "tables", "items", "expired", NULL)), 605);
    assert_int_equal(jint(jpath(j, "process", "rss_bytes", NULL)), 123456789);
    assert_true(json_real_value(jpath(j, "process", "uptime_seconds", NULL)) == 3600.5);
    assert_true(json_is_integer(jpath(j, "time_ms", NULL)));
    assert_true(jint(jpath(j, "time_ms", NULL)) == 1796400000123LL);
    assert_true(json_is_true(jpath(j, "redis", "connected", NULL)));
    assert_string_equal(json_string_value(jpath(j, "model", NULL)), "neumf");
    assert_true(json_is_true(jpath(j, "healthy", NULL)));
    assert_string_equal(json_string_value(jpath(j, "health_reason", NULL)), "ok");
    assert_int_equal(jint(jpath(j, "checkpoint", "total", NULL)), 801);
    assert_int_equal(jint(jpath(j, "checkpoint", "errors", NULL)), 802);
    assert_int_equal(jint(jpath(j, "checkpoint", "bytes", NULL)), 1103412652);
    assert_true(json_real_value(jpath(j, "checkpoint", "seconds", NULL)) == 2.5);
    assert_true(json_is_false(jpath(j, "checkpoint", "failing", NULL)));
    json_decref(j);

    /* failing checkpoints: still healthy (it learns and publishes), but said */
    m->checkpoint_failing = 1;
    j = render_json(m);
    assert_true(json_is_true(jpath(j, "checkpoint", "failing", NULL)));
    assert_true(json_is_true(jpath(j, "healthy", NULL)));
    assert_string_equal(json_string_value(jpath(j, "health_reason", NULL)),
                        "checkpoints failing (offsets stay uncommitted)");
    json_decref(j);
    m->checkpoint_failing = 0;

    /* non-finite figures become null; a degraded snapshot says why */
    m->learner.loss_ewma = NAN;
    m->learner.preq_hr10_ewma = INFINITY;
    m->lat_sum = -INFINITY;
    m->redis_connected = 0;
    m->redis_link = 0;
    j = render_json(m);
    assert_true(json_is_null(jpath(j, "learning", "loss", NULL)));
    assert_true(json_is_null(jpath(j, "learning", "hr_at_10", NULL)));
    assert_true(json_is_null(jpath(j, "publish", "latency_seconds", "sum", NULL)));
    assert_true(json_is_false(jpath(j, "redis", "connected", NULL)));
    assert_true(json_is_false(jpath(j, "redis", "link", NULL)));
    assert_true(json_real_value(jpath(j, "redis", "last_ack_age_seconds", NULL)) == 0.046875);
    assert_true(json_is_false(jpath(j, "healthy", NULL)));
    assert_string_equal(json_string_value(jpath(j, "health_reason", NULL)), "redis disconnected");
    json_decref(j);

    /* the link up, writes unconfirmed: a hung Redis */
    m->redis_link = 1;
    j = render_json(m);
    assert_true(json_is_false(jpath(j, "redis", "connected", NULL)));
    assert_true(json_is_true(jpath(j, "redis", "link", NULL)));
    assert_string_equal(json_string_value(jpath(j, "health_reason", NULL)),
                        "redis not confirming writes");
    json_decref(j);
    free(m);
}

/* ---- health ------------------------------------------------------------ */

static void test_healthy(void **state)
{
    (void)state;
    /* redis: 0 no link, 1 a link whose writes go unconfirmed (hung), 2 both fine */
    static const struct {
        int consuming, redis, ckpt_failing, dlq_blocked, healthy;
        const char *reason;
    } cases[] = {
        {1, 2, 0, 0, 1, "ok"},
        {0, 2, 0, 0, 0, "not consuming (no partitions assigned)"},
        {1, 0, 0, 0, 0, "redis disconnected"},
        {1, 1, 0, 0, 0, "redis not confirming writes"},
        {0, 0, 0, 0, 0, "not consuming (no partitions assigned); redis disconnected"},
        /* failing checkpoints are said, but leave it serving */
        {1, 2, 1, 0, 1, "checkpoints failing (offsets stay uncommitted)"},
        {1, 0, 1, 0, 0, "redis disconnected; checkpoints failing (offsets stay uncommitted)"},
        {1, 1, 1, 0, 0,
         "redis not confirming writes; checkpoints failing (offsets stay uncommitted)"},
        {0, 0, 1, 0, 0,
         "not consuming (no partitions assigned); redis disconnected; checkpoints failing "
         "(offsets stay uncommitted)"},
        /* a dead-letter topic that refuses copies stops consuming: not serving */
        {1, 2, 0, 1, 0, "dead-letter topic refusing copies (consuming stopped, offsets held)"},
        {0, 0, 1, 1, 0,
         "not consuming (no partitions assigned); redis disconnected; dead-letter topic "
         "refusing copies (consuming stopped, offsets held); checkpoints failing (offsets stay "
         "uncommitted)"},
    };
    metrics_t *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        m->consuming = cases[i].consuming;
        m->redis_link = cases[i].redis > 0;
        m->redis_connected = cases[i].redis == 2;
        m->checkpoint_failing = cases[i].ckpt_failing;
        m->dead_letter_blocked = cases[i].dlq_blocked;
        char reason[256];
        assert_int_equal(stats_healthy(m, reason, sizeof(reason)), cases[i].healthy);
        assert_string_equal(reason, cases[i].reason);
        char tiny[8]; /* truncated, still terminated */
        assert_int_equal(stats_healthy(m, tiny, sizeof(tiny)), cases[i].healthy);
        assert_true(strlen(tiny) < sizeof(tiny));
        assert_int_equal(stats_healthy(m, NULL, 0), cases[i].healthy);
    }
    free(m);
}

/* ---- latency histogram ------------------------------------------------- */

static void test_latency_edges(void **state)
{
    (void)state;
    static const struct {
        double seconds;
        int bucket;
    } cases[] = {
        {0.0, 0},
        {0.001, 0}, /* exactly on a bound: that bucket (le) */
        {0.0010001, 1},
        {0.0025, 1},
        {0.01, 3},
        {1.0, 9},
        {2.5, 10},
        {2.5000001, METRICS_LAT_BUCKETS - 1}, /* above the last: +Inf */
        {1e9, METRICS_LAT_BUCKETS - 1},
        {INFINITY, METRICS_LAT_BUCKETS - 1},
        {-1.0, 0}, /* a clock step back counts as 0 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        metrics_t m;
        memset(&m, 0, sizeof(m));
        metrics_observe_latency(&m, cases[i].seconds);
        for (int b = 0; b < METRICS_LAT_BUCKETS; b++)
            if (m.lat_bucket[b] != (b == cases[i].bucket))
                fail_msg("%g: bucket %d holds %" PRIu64, cases[i].seconds, b, m.lat_bucket[b]);
        assert_int_equal(m.lat_count, 1);
        assert_true(m.lat_sum == (cases[i].seconds < 0 ? 0 : cases[i].seconds));
    }
    metrics_t m;
    memset(&m, 0, sizeof(m));
    metrics_observe_latency(&m, NAN); /* ignored */
    assert_int_equal(m.lat_count, 0);
    assert_true(m.lat_sum == 0);
    for (int b = 1; b < METRICS_LAT_BUCKETS - 1; b++)
        assert_true(metrics_lat_bounds[b] > metrics_lat_bounds[b - 1]);
}

/* ---- HTTP -------------------------------------------------------------- */

typedef struct {
    int healthy;
    int ckpt_failing;
    int calls;
    int dirty; /* the snapshot handed in was not zeroed */
} snap_ctx_t;

static void snapshot(void *arg, metrics_t *out)
{
    snap_ctx_t *c = arg;
    const unsigned char *b = (const unsigned char *)out;
    for (size_t i = 0; i < sizeof(*out); i++)
        c->dirty |= b[i] != 0;
    fill(out);
    out->consuming = c->healthy;
    out->redis_connected = 1;
    out->checkpoint_failing = c->ckpt_failing;
    out->publish_total = (uint64_t)++c->calls; /* a fresh snapshot per request */
}

typedef struct {
    struct event_base *base;
    int done, timed_out;
    int code;
    char ctype[128];
    char body[65536];
    size_t blen;
} http_resp_t;

static void on_response(struct evhttp_request *req, void *arg)
{
    http_resp_t *r = arg;
    r->done = 1;
    r->code = req ? evhttp_request_get_response_code(req) : -1;
    if (req && r->code > 0) {
        const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
        snprintf(r->ctype, sizeof(r->ctype), "%s", ct ? ct : "");
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        int n = evbuffer_remove(in, r->body, sizeof(r->body) - 1);
        r->blen = n > 0 ? (size_t)n : 0;
        r->body[r->blen] = '\0';
    }
    event_base_loopbreak(r->base);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    http_resp_t *r = arg;
    r->timed_out = 1;
    event_base_loopbreak(r->base);
}

static struct evhttp_connection *http_conn(struct event_base *base, int port)
{
    struct evhttp_connection *conn =
        evhttp_connection_base_new(base, NULL, "127.0.0.1", (ev_uint16_t)port);
    assert_non_null(conn);
    evhttp_connection_set_timeout(conn, 5);
    return conn;
}

/* One request on conn, the server running on the same loop. */
static http_resp_t *http_on(struct event_base *base, struct evhttp_connection *conn,
                            enum evhttp_cmd_type method, const char *path)
{
    http_resp_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->base = base;
    struct evhttp_request *req = evhttp_request_new(on_response, r);
    assert_non_null(req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "127.0.0.1");
    assert_int_equal(evhttp_make_request(conn, req, method, path), 0);
    struct event *t = evtimer_new(base, on_timeout, r);
    struct timeval tv = {10, 0};
    evtimer_add(t, &tv);
    while (!r->done && !r->timed_out)
        event_base_dispatch(base);
    event_free(t);
    if (r->timed_out)
        fail_msg("%s: no response within 10 s", path);
    return r;
}

/* One request on its own connection. */
static http_resp_t *http_do(struct event_base *base, int port, enum evhttp_cmd_type method,
                            const char *path)
{
    struct evhttp_connection *conn = http_conn(base, port);
    http_resp_t *r = http_on(base, conn, method, path);
    evhttp_connection_free(conn);
    return r;
}

static void test_http(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    snap_ctx_t ctx = {0};
    char err[256] = "";
    stats_t *s = stats_start(base, "127.0.0.1", 0, snapshot, &ctx, err, sizeof(err));
    if (s == NULL)
        fail_msg("stats_start: %s", err);
    int port = stats_port(s);
    assert_true(port > 0 && port < 65536);

    http_resp_t *r = http_do(base, port, EVHTTP_REQ_GET, "/metrics");
    assert_int_equal(r->code, 200);
    assert_string_equal(r->ctype, "text/plain; version=0.0.4; charset=utf-8");
    prom_t *p = malloc(sizeof(*p));
    assert_non_null(p);
    const char *perr = prom_parse(p, r->body, r->blen);
    if (perr)
        fail_msg("%s", perr);
    assert_true(prom_get(p, "freshrec_events_consumed_total", "type", "click", NULL) == 102);
    assert_true(prom_get(p, "freshrec_publish_total", NULL) == 1);
    free(p);
    free(r);

    r = http_do(base, port, EVHTTP_REQ_GET, "/stats?pretty=1"); /* the query is ignored */
    assert_int_equal(r->code, 200);
    assert_string_equal(r->ctype, "application/json");
    json_error_t je;
    json_t *j = json_loadb(r->body, r->blen, 0, &je);
    if (j == NULL)
        fail_msg("/stats: %s", je.text);
    assert_int_equal(jint(jpath(j, "publish", "total", NULL)), 2);
    assert_true(json_is_false(jpath(j, "healthy", NULL)));
    json_decref(j);
    free(r);

    r = http_do(base, port, EVHTTP_REQ_GET, "/healthz");
    assert_int_equal(r->code, 503);
    assert_string_equal(r->body, "degraded: not consuming (no partitions assigned)\n");
    free(r);
    ctx.healthy = 1;
    r = http_do(base, port, EVHTTP_REQ_GET, "/healthz");
    assert_int_equal(r->code, 200);
    assert_string_equal(r->body, "ok\n");
    free(r);
    ctx.ckpt_failing = 1; /* serving still: 200, and the body says what is wrong */
    r = http_do(base, port, EVHTTP_REQ_GET, "/healthz");
    assert_int_equal(r->code, 200);
    assert_string_equal(r->body, "degraded: checkpoints failing (offsets stay uncommitted)\n");
    free(r);
    ctx.ckpt_failing = 0;

    /* HEAD sends no body: the next response on the connection reads cleanly */
    struct evhttp_connection *conn = http_conn(base, port);
    r = http_on(base, conn, EVHTTP_REQ_HEAD, "/healthz");
    assert_int_equal(r->code, 200);
    free(r);
    r = http_on(base, conn, EVHTTP_REQ_GET, "/healthz");
    assert_int_equal(r->code, 200);
    assert_string_equal(r->body, "ok\n");
    free(r);
    evhttp_connection_free(conn);

    int calls = ctx.calls;
    r = http_do(base, port, EVHTTP_REQ_GET, "/nope");
    assert_int_equal(r->code, 404);
    free(r);
    r = http_do(base, port, EVHTTP_REQ_GET, "/metrics/");
    assert_int_equal(r->code, 404);
    free(r);
    r = http_do(base, port, EVHTTP_REQ_POST, "/metrics");
    assert_int_equal(r->code, 405);
    free(r);
    r = http_do(base, port, EVHTTP_REQ_DELETE, "/healthz");
    assert_int_equal(r->code, 405);
    free(r);
    assert_int_equal(ctx.calls, calls); /* refused requests take no snapshot */
    assert_int_equal(ctx.dirty, 0);

    stats_stop(s);
    event_base_free(base);
}

/* ---- /vector ----------------------------------------------------------- */

typedef struct {
    int calls;
    char side;
    char id[64];
    size_t len;
} vec_ctx_t;

#define ODD_ID "a b+c/\xc3\xa9" /* space, plus, slash, é */

/* The daemon's side of /vector, faked: two ids with known vectors. */
static int fake_vector(void *arg, char side, const char *id, size_t len, float *out, int cap)
{
    vec_ctx_t *c = arg;
    c->calls++;
    c->side = side;
    c->len = len;
    snprintf(c->id, sizeof(c->id), "%.*s", (int)len, id);
    static const float u42[4] = {0.1f, -2.5f, 1.0f, 1.0f / 3.0f};
    if (side == 'u' && len == 3 && memcmp(id, "u42", 3) == 0) {
        memcpy(out, u42, sizeof(u42));
        return 4;
    }
    if (side == 'i' && len == strlen(ODD_ID) && memcmp(id, ODD_ID, len) == 0) {
        out[0] = -0.0f;
        out[1] = 1e-40f; /* subnormal */
        return 2;
    }
    if (side == 'u' && len == 4 && memcmp(id, "huge", 4) == 0)
        return cap + 1;
    return 0;
}

static void test_vector(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    snap_ctx_t ctx = {0};
    vec_ctx_t vc = {0};
    char err[256] = "";
    stats_t *s = stats_start(base, "127.0.0.1", 0, snapshot, &ctx, err, sizeof(err));
    if (s == NULL)
        fail_msg("stats_start: %s", err);
    int port = stats_port(s);

    /* not served until the daemon hands in its vectors */
    http_resp_t *r = http_do(base, port, EVHTTP_REQ_GET, "/vector?user=u42");
    assert_int_equal(r->code, 404);
    free(r);
    stats_set_vector_fn(s, fake_vector, &vc);

    r = http_do(base, port, EVHTTP_REQ_GET, "/vector?user=u42");
    assert_int_equal(r->code, 200);
    assert_string_equal(r->ctype, "application/json");
    assert_non_null(strstr(r->body, "0.100000001")); /* 9 digits: enough to read back */
    json_error_t je;
    json_t *j = json_loadb(r->body, r->blen, 0, &je);
    if (j == NULL)
        fail_msg("/vector: %s: %s", je.text, r->body);
    assert_string_equal(json_string_value(jpath(j, "side", NULL)), "user");
    assert_string_equal(json_string_value(jpath(j, "id", NULL)), "u42");
    assert_int_equal(jint(jpath(j, "dim", NULL)), 4);
    /* the bytes Redis holds: little-endian float32 */
    assert_string_equal(json_string_value(jpath(j, "f32le", NULL)), "cdcccc3d"
                                                                    "000020c0"
                                                                    "0000803f"
                                                                    "abaaaa3e");
    static const float want[4] = {0.1f, -2.5f, 1.0f, 1.0f / 3.0f};
    json_t *vec = jpath(j, "vector", NULL);
    assert_int_equal(json_array_size(vec), 4);
    for (int i = 0; i < 4; i++)
        assert_true((float)json_number_value(json_array_get(vec, (size_t)i)) == want[i]);
    json_decref(j);
    free(r);
    assert_int_equal(vc.side, 'u');

    /* percent-decoded, '+' kept as a plus; -0 and a subnormal exactly */
    r = http_do(base, port, EVHTTP_REQ_GET, "/vector?item=a%20b+c%2F%C3%A9");
    assert_int_equal(r->code, 200);
    j = json_loadb(r->body, r->blen, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(jpath(j, "side", NULL)), "item");
    assert_string_equal(json_string_value(jpath(j, "id", NULL)), ODD_ID);
    assert_string_equal(json_string_value(jpath(j, "f32le", NULL)), "00000080"
                                                                    "c2160100");
    vec = jpath(j, "vector", NULL);
    float f0 = (float)json_number_value(json_array_get(vec, 0));
    float f1 = (float)json_number_value(json_array_get(vec, 1));
    unsigned char b[8], wantb[8];
    keys_f32le_encode(b, (float[]){f0, f1}, 2);
    keys_f32le_encode(wantb, (float[]){-0.0f, 1e-40f}, 2);
    assert_memory_equal(b, wantb, 8);
    json_decref(j);
    free(r);

    static const struct {
        const char *path;
        int code;
        const char *body; /* a part of it */
    } cases[] = {
        {"/vector?user=nobody", 404, "no such user"},
        {"/vector?item=u42", 404, "no such item"}, /* the sides are apart */
        {"/vector", 400, "want /vector?user=ID"},
        {"/vector?", 400, "want /vector?user=ID"},
        {"/vector?user=", 400, "an empty id"},
        {"/vector?users=u42", 400, "want /vector?user=ID"},
        {"/vector?id=u42", 400, "want /vector?user=ID"},
        {"/vector?user=u42&item=i1", 400, "one parameter"},
        {"/vector?user=huge", 500, "more than"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        r = http_do(base, port, EVHTTP_REQ_GET, cases[i].path);
        if (r->code != cases[i].code || strstr(r->body, cases[i].body) == NULL)
            fail_msg("%s: %d '%s', want %d '%s'", cases[i].path, r->code, r->body, cases[i].code,
                     cases[i].body);
        free(r);
    }
    int calls = vc.calls;
    r = http_do(base, port, EVHTTP_REQ_POST, "/vector?user=u42");
    assert_int_equal(r->code, 405);
    free(r);
    r = http_do(base, port, EVHTTP_REQ_HEAD, "/vector?user=u42");
    assert_int_equal(r->code, 200);
    assert_int_equal(r->blen, 0);
    free(r);
    assert_int_equal(vc.calls, calls + 1); /* POST asked nothing */

    /* an id that is not UTF-8 is null in the JSON; the hex still says it all */
    struct evbuffer *out = evbuffer_new();
    stats_render_vector('u', "\xff", 1, (float[]){2.0f}, 1, out);
    size_t n = evbuffer_get_length(out);
    char text[256];
    assert_true(n < sizeof(text));
    evbuffer_remove(out, text, n);
    text[n] = '\0';
    evbuffer_free(out);
    j = json_loads(text, 0, &je);
    assert_non_null(j);
    assert_true(json_is_null(jpath(j, "id", NULL)));
    assert_string_equal(json_string_value(jpath(j, "f32le", NULL)), "00000040");
    json_decref(j);

    stats_stop(s);
    event_base_free(base);
}

static void test_start_errors(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    snap_ctx_t ctx = {0};
    char err[256] = "";
    stats_t *s = stats_start(base, "127.0.0.1", 0, snapshot, &ctx, err, sizeof(err));
    if (s == NULL)
        fail_msg("stats_start: %s", err);

    err[0] = '\0';
    stats_t *again =
        stats_start(base, "127.0.0.1", stats_port(s), snapshot, &ctx, err, sizeof(err));
    assert_null(again);
    if (strstr(err, "in use") == NULL)
        fail_msg("port in use: got '%s'", err);

    static const struct {
        const char *addr;
        int port;
        const char *want;
    } bad[] = {
        {"not-an-address", 0, "bad listen address"},
        {"127.0.0.256", 0, "bad listen address"},
        {"127.0.0.1", 65536, "not in [0, 65535]"},
        {"127.0.0.1", -1, "not in [0, 65535]"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_null(stats_start(base, bad[i].addr, bad[i].port, snapshot, &ctx, err, sizeof(err)));
        if (strstr(err, bad[i].want) == NULL)
            fail_msg("%s:%d: got '%s'", bad[i].addr, bad[i].port, err);
    }
    err[0] = '\0';
    assert_null(stats_start(base, "127.0.0.1", 0, NULL, &ctx, err, sizeof(err)));
    assert_true(err[0] != '\0');

    stats_stop(s);
    stats_stop(NULL);
    assert_int_equal(stats_port(NULL), -1);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parser_is_strict),
        cmocka_unit_test(test_prometheus_values),
        cmocka_unit_test(test_prometheus_zero_snapshot),
        cmocka_unit_test(test_prometheus_label_escaping),
        cmocka_unit_test(test_prometheus_nonfinite),
        cmocka_unit_test(test_prometheus_bounds),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_healthy),
        cmocka_unit_test(test_latency_edges),
        cmocka_unit_test(test_http),
        cmocka_unit_test(test_vector),
        cmocka_unit_test(test_start_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
