/* stats.c — the stats port: an evhttp server on the daemon's event loop that
 * renders a fresh metrics_t snapshot as Prometheus text (GET /metrics), as
 * JSON (GET /stats) or as a health verdict (GET /healthz), and one published
 * vector as JSON (GET /vector). /metrics and /stats are both rendered from
 * metrics_table (metrics.c), whose names and labels are the contract written
 * down in proto/README.md (tests/test_metrics_doc.c holds them together).
 * Not for: keeping the figures (the daemon does, in a metrics_t). */
#define _POSIX_C_SOURCE 200809L
#include "stats.h"

#include "dashboard.h"
#include "keys.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>

struct stats {
    struct evhttp *http;
    int port;
    stats_snapshot_fn fn;
    void *arg;
    stats_vector_fn vector_fn; /* NULL: /vector is not served */
    void *vector_arg;
    metrics_t snap;              /* one request at a time: the loop is single-threaded */
    float vec[STATS_VECTOR_MAX]; /* /vector's answer, likewise */
};

/* ---- formatting helpers ------------------------------------------------ */

/* The shortest of %.15g..%.17g that reads back as d; Prometheus spellings
 * of the non-finite values. Assumes the "C" numeric locale. */
static void fmt_double(char *b, size_t n, double d)
{
    if (isnan(d)) {
        snprintf(b, n, "NaN");
        return;
    }
    if (isinf(d)) {
        snprintf(b, n, "%s", d > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int p = 15; p <= 17; p++) {
        snprintf(b, n, "%.*g", p, d);
        if (strtod(b, NULL) == d)
            return;
    }
}

static void fmt_u64(char *b, size_t n, uint64_t v)
{
    snprintf(b, n, "%" PRIu64, v);
}

/* The bound of latency bucket i as an `le` value: "0.001" … "+Inf". */
static void fmt_le(char *b, size_t n, int i)
{
    if (i >= METRICS_LAT_BUCKETS - 1)
        snprintf(b, n, "+Inf");
    else
        fmt_double(b, n, metrics_lat_bounds[i]);
}

static int clamp_int(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---- Prometheus text format 0.0.4 -------------------------------------- */

typedef struct {
    const char *name;
    const char *value; /* not necessarily NUL-terminated within vmax */
    size_t vmax;
} label_t;

static void prom_family(struct evbuffer *o, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values escape backslash, double quote and newline. */
static void prom_label_value(struct evbuffer *o, const char *s, size_t max)
{
    size_t n = strnlen(s, max), start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = s[i] == '\\'   ? "\\\\"
                          : s[i] == '"'  ? "\\\""
                          : s[i] == '\n' ? "\\n"
                                         : NULL;
        if (esc == NULL)
            continue;
        evbuffer_add(o, s + start, i - start);
        evbuffer_add(o, esc, 2);
        start = i + 1;
    }
    evbuffer_add(o, s + start, n - start);
}

static void prom_sample(struct evbuffer *o, const char *name, const label_t *l, int nl,
                        const char *value)
{
    evbuffer_add_printf(o, "%s", name);
    for (int i = 0; i < nl; i++) {
        evbuffer_add_printf(o, "%s%s=\"", i == 0 ? "{" : ",", l[i].name);
        prom_label_value(o, l[i].value, l[i].vmax);
        evbuffer_add(o, "\"", 1);
    }
    evbuffer_add_printf(o, "%s %s\n", nl > 0 ? "}" : "", value);
}

static void prom_u64(struct evbuffer *o, const char *name, const label_t *l, int nl, uint64_t v)
{
    char b[32];
    fmt_u64(b, sizeof(b), v);
    prom_sample(o, name, l, nl, b);
}

static void prom_double(struct evbuffer *o, const char *name, const label_t *l, int nl, double v)
{
    char b[40];
    fmt_double(b, sizeof(b), v);
    prom_sample(o, name, l, nl, b);
}

/* One row of metrics_table: its HELP and TYPE, then its samples. */
static void prom_row(struct evbuffer *o, const metric_def_t *d, const metrics_t *m)
{
    static const char *const type[] = {"counter", "gauge", "histogram"};
    prom_family(o, d->name, type[d->type], d->help);
    if (d->type == METRIC_HISTOGRAM) {
        /* the per-bucket counts summed into cumulative le buckets */
        char name[128], b[64];
        uint64_t cum = 0;
        snprintf(name, sizeof(name), "%s_bucket", d->name);
        for (int i = 0; i < METRICS_LAT_BUCKETS; i++) {
            cum += m->lat_bucket[i];
            fmt_le(b, sizeof(b), i);
            label_t l = {d->labels[0], b, sizeof(b)};
            prom_u64(o, name, &l, 1, cum);
        }
        snprintf(name, sizeof(name), "%s_sum", d->name);
        prom_double(o, name, NULL, 0, m->lat_sum);
        snprintf(name, sizeof(name), "%s_count", d->name);
        prom_u64(o, name, NULL, 0, m->lat_count);
        return;
    }
    int n = d->count ? d->count(m) : 1;
    for (int i = 0; i < n; i++) {
        metric_sample_t sm;
        memset(&sm, 0, sizeof(sm));
        if (!d->count)
            metrics_value(d, m, &sm);
        else if (!d->sample(d, m, i, &sm))
            continue;
        label_t l[METRIC_MAX_LABELS];
        int nl = 0;
        for (; nl < METRIC_MAX_LABELS && d->labels[nl]; nl++)
            l[nl] = (label_t){d->labels[nl], sm.label[nl], sm.max[nl]};
        if (d->kind == METRIC_F64)
            prom_double(o, d->name, l, nl, sm.d);
        else
            prom_u64(o, d->name, l, nl, sm.u);
    }
}

void stats_render_prometheus(const metrics_t *m, struct evbuffer *out)
{
    for (int i = 0; i < metrics_table_n; i++) {
        const metric_def_t *d = &metrics_table[i];
        if (d->name && (!d->present || d->present(m)))
            prom_row(out, d, m);
    }
}

/* ---- JSON -------------------------------------------------------------- */

static json_t *j_u64(uint64_t v)
{
    return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static json_t *j_real(double d)
{
    return isfinite(d) ? json_real(d) : json_null();
}

/* A string of at most max bytes; null when it is not UTF-8. */
static json_t *j_str(const char *s, size_t max)
{
    json_t *j = json_stringn(s, strnlen(s, max));
    return j ? j : json_null();
}

/* -1 ("unknown", "none") becomes null. */
static json_t *j_offset(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *json_histogram(const metrics_t *m)
{
    json_t *buckets = json_object();
    uint64_t cum = 0;
    char b[40];
    for (int i = 0; i < METRICS_LAT_BUCKETS; i++) {
        cum += m->lat_bucket[i];
        fmt_le(b, sizeof(b), i);
        json_object_set_new(buckets, b, j_u64(cum));
    }
    return json_pack("{s:o, s:o, s:o}", "count", j_u64(m->lat_count), "sum", j_real(m->lat_sum),
                     "buckets", buckets);
}

/* v at path ('.'-separated keys, "{}" standing for the label value lv of at
 * most lmax bytes) under root, making the objects on the way; takes v. */
static void json_put(json_t *root, const char *path, const char *lv, size_t lmax, json_t *v)
{
    json_t *o = root;
    for (const char *p = path;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        const char *key = p;
        if (n == 2 && memcmp(p, "{}", 2) == 0) {
            key = lv;
            n = strnlen(lv, lmax);
        }
        if (!dot) {
            json_object_setn_new(o, key, n, v);
            return;
        }
        json_t *next = json_object_getn(o, key, n);
        if (!json_is_object(next)) {
            next = json_object();
            json_object_setn_new(o, key, n, next);
        }
        o = next;
        p = dot + 1;
    }
}

static json_t *json_value(const metric_def_t *d, const metric_sample_t *sm)
{
    switch (d->kind) {
    case METRIC_F64:
        return j_real(sm->d);
    case METRIC_BOOL:
        return json_boolean(sm->u != 0);
    case METRIC_INFO:
        return j_str(sm->label[0], sm->max[0]);
    default:
        return j_u64(sm->u);
    }
}

/* the one special case: consumer.partitions, an array with each partition's
 * lag and stored offset (null when unknown), which no labelled family holds */
static json_t *json_partitions(const metrics_t *m)
{
    json_t *parts = json_array();
    for (int i = 0; i < clamp_int(m->nparts, 0, METRICS_MAX_PARTITIONS); i++) {
        const metrics_partition_t *p = &m->part[i];
        json_array_append_new(parts, json_pack("{s:o, s:i, s:o, s:o}", "topic",
                                               j_str(p->topic, sizeof(p->topic)), "partition",
                                               (int)p->partition, "lag", j_offset(p->lag), "stored",
                                               j_offset(p->stored)));
    }
    return parts;
}

static int dump_to_evbuffer(const char *buf, size_t size, void *data)
{
    return evbuffer_add((struct evbuffer *)data, buf, size);
}

void stats_render_json(const metrics_t *m, struct evbuffer *out)
{
    /* the top-level keys in the order /stats has always had them */
    static const char *const order[] = {"events",  "learning",      "publish", "consumer",
                                        "tables",  "process",       "redis",   "model",
                                        "healthy", "health_reason", "time_ms", "checkpoint"};
    json_t *all = json_object(), *root = json_object();
    if (!all || !root) {
        json_decref(all);
        json_decref(root);
        evbuffer_add_printf(out, "{}\n");
        return;
    }
    for (int i = 0; i < metrics_table_n; i++) {
        const metric_def_t *d = &metrics_table[i];
        if (!d->json || (d->present && !d->present(m)))
            continue;
        if (d->type == METRIC_HISTOGRAM) {
            json_put(all, d->json, "", 0, json_histogram(m));
            continue;
        }
        int n = d->count ? d->count(m) : 1;
        for (int k = 0; k < n; k++) {
            metric_sample_t sm;
            memset(&sm, 0, sizeof(sm));
            if (!d->count)
                metrics_value(d, m, &sm);
            else if (!d->sample(d, m, k, &sm))
                continue;
            json_put(all, d->json, sm.label[0] ? sm.label[0] : "", sm.max[0], json_value(d, &sm));
        }
    }
    json_put(all, "consumer.partitions", "", 0, json_partitions(m));
    char reason[256];
    int healthy = stats_healthy(m, reason, sizeof(reason));
    json_object_set_new(all, "healthy", json_boolean(healthy));
    json_object_set_new(all, "health_reason", json_string(reason));
    /* when these figures were taken, by the daemon's wall clock: the dashboard's
     * time axis (its rates divide by process.uptime_seconds, the monotonic one) */
    json_object_set_new(all, "time_ms", json_integer(m->time_ms));
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        json_t *v = json_object_get(all, order[i]);
        if (v)
            json_object_set(root, order[i], v);
    }
    const char *key;
    json_t *v;
    json_object_foreach(all, key, v) /* any the list above does not name yet */
        if (!json_object_get(root, key)) json_object_set(root, key, v);
    json_decref(all);
    json_dump_callback(root, dump_to_evbuffer, out, JSON_INDENT(2));
    evbuffer_add(out, "\n", 1);
    json_decref(root);
}

/* ---- health ------------------------------------------------------------ */

int stats_healthy(const metrics_t *m, char *reason, size_t len)
{
    const char *why[5];
    char slots[160];
    int n = 0;
    if (!m->consuming)
        why[n++] = "not consuming (no partitions assigned)";
    if (!m->redis_connected) /* the link up: Redis hangs (stopped, swapping, blocked) */
        why[n++] = m->redis_link ? "redis not confirming writes" : "redis disconnected";
    if (m->redis_cluster && m->unserved_slots > 0) { /* a master lost, not yet replaced */
        size_t at =
            (size_t)snprintf(slots, sizeof(slots), "redis cluster: %llu slots unreachable (",
                             (unsigned long long)m->unserved_slots);
        for (int i = 0; i < m->nunserved && at < sizeof(slots); i++) {
            int w = m->unserved_first[i] == m->unserved_last[i]
                        ? snprintf(slots + at, sizeof(slots) - at, "%s%u", i ? " " : "",
                                   m->unserved_first[i])
                        : snprintf(slots + at, sizeof(slots) - at, "%s%u-%u", i ? " " : "",
                                   m->unserved_first[i], m->unserved_last[i]);
            at += w > 0 ? (size_t)w : 0;
        }
        if (at < sizeof(slots))
            snprintf(slots + at, sizeof(slots) - at, ")");
        why[n++] = slots;
    }
    if (m->dead_letter_blocked)
        why[n++] = "dead-letter topic refusing copies (consuming stopped, offsets held)";
    if (m->checkpoint_failing)
        why[n++] = "checkpoints failing (offsets stay uncommitted)";
    if (len > 0) {
        size_t at = 0;
        reason[0] = '\0';
        for (int i = 0; i < (n ? n : 1) && at < len; i++) {
            int w = snprintf(reason + at, len - at, "%s%s", i ? "; " : "", n ? why[i] : "ok");
            at += w > 0 ? (size_t)w : 0;
        }
    }
    return m->consuming && m->redis_connected && !m->dead_letter_blocked &&
           !(m->redis_cluster && m->unserved_slots > 0);
}

/* ---- vectors ----------------------------------------------------------- */

void stats_render_vector(char side, const char *id, size_t len, const float *v, int dim,
                         struct evbuffer *out)
{
    static const char hexd[] = "0123456789abcdef";
    size_t nb = 4 * (size_t)(dim > 0 ? dim : 0);
    unsigned char *b = malloc(nb ? nb : 1);
    char *hex = malloc(2 * nb + 1);
    json_t *floats = json_array(), *root = NULL;
    if (b && hex && floats) {
        keys_f32le_encode(b, v, nb / 4); /* the bytes the publisher SETs */
        for (size_t i = 0; i < nb; i++) {
            hex[2 * i] = hexd[b[i] >> 4];
            hex[2 * i + 1] = hexd[b[i] & 15];
        }
        hex[2 * nb] = '\0';
        for (int i = 0; i < dim; i++)
            json_array_append_new(floats, j_real(v[i]));
        root = json_pack("{s:s, s:o, s:i, s:s, s:o}", "side", side == 'u' ? "user" : "item", "id",
                         j_str(id, len), "dim", dim, "f32le", hex, "vector", floats);
        floats = NULL; /* owned by root now (or released by json_pack) */
    }
    if (root)
        json_dump_callback(root, dump_to_evbuffer, out, JSON_REAL_PRECISION(9));
    else
        evbuffer_add_printf(out, "{}");
    evbuffer_add(out, "\n", 1);
    json_decref(root);
    json_decref(floats);
    free(b);
    free(hex);
}

/* "user=ID" or "item=ID", the id percent-encoded ('+' is a plus). 0 with the
 * decoded id (the caller frees it), or -1 and why. */
static int vector_query(const char *q, char *side, char **id, size_t *len, const char **why)
{
    *id = NULL;
    if (q == NULL || (strncmp(q, "user=", 5) != 0 && strncmp(q, "item=", 5) != 0)) {
        *why = "want /vector?user=ID or /vector?item=ID";
        return -1;
    }
    if (strchr(q, '&')) {
        *why = "one parameter: user=ID or item=ID";
        return -1;
    }
    *side = q[0] == 'u' ? 'u' : 'i';
    *id = evhttp_uridecode(q + 5, 0, len);
    if (*id == NULL || *len == 0) {
        free(*id);
        *id = NULL;
        *why = "an empty id";
        return -1;
    }
    return 0;
}

void stats_set_vector_fn(stats_t *s, stats_vector_fn fn, void *arg)
{
    if (s == NULL)
        return;
    s->vector_fn = fn;
    s->vector_arg = arg;
}

/* ---- HTTP -------------------------------------------------------------- */

static void reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                  struct evbuffer *body)
{
    /* evhttp (2.1) would send the body after a HEAD response, where a client
     * keeping the connection alive would read it as the next response. */
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
        evbuffer_drain(body, evbuffer_get_length(body));
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, body);
}

static void reply_vector(stats_t *s, struct evhttp_request *req, const char *query,
                         struct evbuffer *body)
{
    const char *text = "text/plain; charset=utf-8", *why = NULL;
    char side;
    char *id;
    size_t len;
    if (vector_query(query, &side, &id, &len, &why)) {
        evbuffer_add_printf(body, "bad request: %s\n", why);
        reply(req, HTTP_BADREQUEST, "Bad Request", text, body);
        return;
    }
    float *v = s->vec;
    int dim = s->vector_fn(s->vector_arg, side, id, len, v, STATS_VECTOR_MAX);
    if (dim > STATS_VECTOR_MAX) {
        evbuffer_add_printf(body, "vector of %d floats: more than %d\n", dim, STATS_VECTOR_MAX);
        reply(req, HTTP_INTERNAL, "Internal Server Error", text, body);
    } else if (dim <= 0) {
        evbuffer_add_printf(body, "no such %s\n", side == 'u' ? "user" : "item");
        reply(req, HTTP_NOTFOUND, "Not Found", text, body);
    } else {
        stats_render_vector(side, id, len, v, dim, body);
        reply(req, HTTP_OK, "OK", "application/json", body);
    }
    free(id);
}

static void handle(struct evhttp_request *req, void *arg)
{
    stats_t *s = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum { P_NONE, P_METRICS, P_STATS, P_HEALTHZ, P_DASHBOARD, P_VECTOR } which = P_NONE;
    if (path && (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0))
        which = P_DASHBOARD;
    else if (path && strcmp(path, "/metrics") == 0)
        which = P_METRICS;
    else if (path && strcmp(path, "/stats") == 0)
        which = P_STATS;
    else if (path && strcmp(path, "/healthz") == 0)
        which = P_HEALTHZ;
    else if (path && strcmp(path, "/vector") == 0 && s->vector_fn)
        which = P_VECTOR;

    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    const char *text = "text/plain; charset=utf-8";
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (which == P_NONE) {
        evbuffer_add_printf(body, "not found; try /, /metrics, /stats, /healthz or /vector\n");
        reply(req, HTTP_NOTFOUND, "Not Found", text, body);
    } else if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        evbuffer_add_printf(body, "method not allowed\n");
        reply(req, HTTP_BADMETHOD, "Method Not Allowed", text, body);
    } else if (which == P_VECTOR) {
        reply_vector(s, req, evhttp_uri_get_query(uri), body);
    } else if (which == P_DASHBOARD) {
        evbuffer_add_reference(body, dashboard_html, dashboard_html_len, NULL, NULL);
        reply(req, HTTP_OK, "OK", "text/html; charset=utf-8", body);
    } else {
        memset(&s->snap, 0, sizeof(s->snap));
        s->fn(s->arg, &s->snap);
        if (which == P_METRICS) {
            stats_render_prometheus(&s->snap, body);
            reply(req, HTTP_OK, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
        } else if (which == P_STATS) {
            stats_render_json(&s->snap, body);
            reply(req, HTTP_OK, "OK", "application/json", body);
        } else {
            char why[256];
            if (stats_healthy(&s->snap, why, sizeof(why))) {
                /* serving: 200, but say what is wrong all the same */
                if (strcmp(why, "ok") == 0)
                    evbuffer_add_printf(body, "ok\n");
                else
                    evbuffer_add_printf(body, "degraded: %s\n", why);
                reply(req, HTTP_OK, "OK", text, body);
            } else {
                evbuffer_add_printf(body, "degraded: %s\n", why);
                reply(req, 503, "Service Unavailable", text, body);
            }
        }
    }
    evbuffer_free(body);
}

int stats_check_listen(const char *addr, char *why, size_t wlen)
{
    /* Numeric addresses only: a name would mean a blocking DNS lookup at
     * start-up, and "which interface" is what the setting means anyway. */
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM},
                    *ai = NULL;
    int gai = getaddrinfo(addr, NULL, &hints, &ai);
    if (gai != 0) {
        snprintf(why, wlen, "(want an IPv4 or IPv6 address): %s", gai_strerror(gai));
        return -1;
    }
    freeaddrinfo(ai);
    return 0;
}

stats_t *stats_start(struct event_base *base, const char *addr, int port, stats_snapshot_fn fn,
                     void *arg, char *errstr, size_t len)
{
    stats_t *s = NULL;
    if (base == NULL || addr == NULL || fn == NULL) {
        snprintf(errstr, len, "stats: missing event base, address or snapshot function");
        return NULL;
    }
    if (port < 0 || port > 65535) {
        snprintf(errstr, len, "stats: port %d is not in [0, 65535]", port);
        return NULL;
    }
    char why[160];
    if (stats_check_listen(addr, why, sizeof(why)) < 0) {
        snprintf(errstr, len, "stats: bad listen address '%s' %s", addr, why);
        return NULL;
    }

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(errstr, len, "stats: out of memory");
        goto err;
    }
    s->fn = fn;
    s->arg = arg;
    s->http = evhttp_new(base);
    if (s->http == NULL) {
        snprintf(errstr, len, "stats: evhttp_new failed");
        goto err;
    }
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
    evhttp_set_gencb(s->http, handle, s);
    evhttp_set_timeout(s->http, 10);             /* a stuck scraper is dropped */
    evhttp_set_max_headers_size(s->http, 16384); /* nothing here reads a body or */
    evhttp_set_max_body_size(s->http, 4096);     /* large headers */

    errno = 0;
    struct evhttp_bound_socket *sock =
        evhttp_bind_socket_with_handle(s->http, addr, (ev_uint16_t)port);
    if (sock == NULL) {
        snprintf(errstr, len, "stats: cannot listen on %s:%d: %s", addr, port,
                 errno ? strerror(errno) : "unknown error");
        goto err;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(errstr, len, "stats: getsockname: %s", strerror(errno));
        goto err;
    }
    if (ss.ss_family == AF_INET6)
        s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    else
        s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return s;

err:
    stats_stop(s);
    return NULL;
}

int stats_port(const stats_t *s)
{
    return s ? s->port : -1;
}

void stats_stop(stats_t *s)
{
    if (s == NULL)
        return;
    if (s->http)
        evhttp_free(s->http); /* closes the listener and open connections */
    free(s);
}
