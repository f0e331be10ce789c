/* ctrdata.c — click-through data for the CLI (see ctrdata.h): reading Criteo
 * files (the original TSV, Kaggle's CSV with an Id column, CSVs with a
 * label,I…,C… header) and the generic form ctrdata_write emits, and
 * generating the synthetic stream with a planted item-group × device
 * interaction. Not for: learning (learner/ctr.c), the wire format (proto/).
 *
 * Examples point into arrays the dataset owns. Those arrays grow with realloc
 * while a file is read, so the builder below keeps indices, not pointers, and
 * fixes the pointers up once, when nothing will move any more. */
#define _POSIX_C_SOURCE 200809L
#include "ctrdata.h"

#include "id.h"
#include "rng.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CTRDATA_MAX_LINE 65536 /* bytes of one line, without its line break */
#define CTRDATA_MAX_COLS (2 + 2 * CTR_MAX_FIELDS)

/* ---- the dataset ---------------------------------------------------------- */

void ctrdata_init(ctrdata_t *d)
{
    memset(d, 0, sizeof(*d));
}

static void free_names(char **names, int n)
{
    if (!names)
        return;
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

void ctrdata_free(ctrdata_t *d)
{
    if (!d)
        return;
    free(d->ex);
    free(d->cats);
    free(d->nums);
    free(d->strings);
    free_names(d->cat_names, d->ncat);
    free_names(d->num_names, d->nnum);
    memset(d, 0, sizeof(*d));
}

/* ---- the builder: appends examples, interns values, fixes pointers up ----- */

typedef struct {
    size_t off; /* into strings */
    size_t len;
    uint64_t h;
} value_t;

typedef struct {
    ctr_example_t *ex; /* cat and num stay NULL until builder_finish */
    size_t n, excap;
    ctr_cat_t *cats;
    uint32_t *cat_value; /* (ncats) index into values of each cats[i] */
    size_t ncats, catcap, cvcap;
    ctr_num_t *nums;
    size_t nnums, numcap;
    char *strings; /* interned values, each followed by a NUL */
    size_t slen, scap;
    value_t *values;
    size_t nvalues, valcap;
    uint32_t *slot; /* open addressing: value index + 1, 0 empty */
    size_t nslot;   /* power of two */
} builder_t;

static void builder_free(builder_t *b)
{
    free(b->ex);
    free(b->cats);
    free(b->cat_value);
    free(b->nums);
    free(b->strings);
    free(b->values);
    free(b->slot);
    memset(b, 0, sizeof(*b));
}

/* Makes room for need elements of size elem in *p (capacity *cap). */
static int grow(void **p, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : first;
    while (nc < need) {
        if (nc > SIZE_MAX / 2)
            return -1;
        nc *= 2;
    }
    if (nc > SIZE_MAX / elem)
        return -1;
    void *q = realloc(*p, nc * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static int builder_rehash(builder_t *b, size_t n)
{
    uint32_t *s = calloc(n, sizeof(uint32_t));
    if (!s)
        return -1;
    for (size_t i = 0; i < b->nvalues; i++) {
        size_t j = b->values[i].h & (n - 1);
        while (s[j])
            j = (j + 1) & (n - 1);
        s[j] = (uint32_t)i + 1;
    }
    free(b->slot);
    b->slot = s;
    b->nslot = n;
    return 0;
}

/* Index of the value text s[0..len) (appended when new); -1 out of memory. */
static int64_t builder_intern(builder_t *b, const char *s, size_t len)
{
    if ((b->nvalues + 1) * 2 > b->nslot) {
        if (b->nvalues >= UINT32_MAX - 1 || builder_rehash(b, b->nslot ? b->nslot * 2 : 1024))
            return -1;
    }
    uint64_t h = id_hash(s, len);
    size_t j = h & (b->nslot - 1);
    for (; b->slot[j]; j = (j + 1) & (b->nslot - 1)) {
        const value_t *v = &b->values[b->slot[j] - 1];
        if (v->h == h && v->len == len && memcmp(b->strings + v->off, s, len) == 0)
            return b->slot[j] - 1;
    }
    if (grow((void **)&b->values, &b->valcap, b->nvalues + 1, sizeof(value_t), 1024) ||
        len > SIZE_MAX - 1 - b->slen ||
        grow((void **)&b->strings, &b->scap, b->slen + len + 1, 1, 1 << 16))
        return -1;
    memcpy(b->strings + b->slen, s, len);
    b->strings[b->slen + len] = '\0';
    b->values[b->nvalues] = (value_t){b->slen, len, h};
    b->slen += len + 1;
    b->slot[j] = (uint32_t)b->nvalues + 1;
    return (int64_t)b->nvalues++;
}

static int builder_example(builder_t *b, float label, int64_t ts_ms)
{
    if (grow((void **)&b->ex, &b->excap, b->n + 1, sizeof(ctr_example_t), 4096))
        return -1;
    b->ex[b->n++] = (ctr_example_t){NULL, 0, NULL, 0, label, 1.0f, ts_ms};
    return 0;
}

/* Adds a categorical feature to the latest example. */
static int builder_cat(builder_t *b, int field, const char *s, size_t len)
{
    int64_t v = builder_intern(b, s, len);
    if (v < 0)
        return -1;
    if (grow((void **)&b->cats, &b->catcap, b->ncats + 1, sizeof(ctr_cat_t), 4096) ||
        grow((void **)&b->cat_value, &b->cvcap, b->ncats + 1, sizeof(uint32_t), 4096))
        return -1;
    b->cats[b->ncats] = (ctr_cat_t){field, {b->values[v].h, NULL, len}};
    b->cat_value[b->ncats++] = (uint32_t)v;
    b->ex[b->n - 1].ncat++;
    return 0;
}

/* Adds a dense feature to the latest example. */
static int builder_num(builder_t *b, int field, float value)
{
    if (grow((void **)&b->nums, &b->numcap, b->nnums + 1, sizeof(ctr_num_t), 4096))
        return -1;
    b->nums[b->nnums++] = (ctr_num_t){field, value};
    b->ex[b->n - 1].nnum++;
    return 0;
}

/* Shrinks an array to n elements; keeps it as it is when realloc fails. */
static void *shrink(void *p, size_t n, size_t elem)
{
    if (!p || n == 0)
        return p;
    void *q = realloc(p, n * elem);
    return q ? q : p;
}

/* Moves the builder's arrays into d (empty) and sets every pointer; from here
 * on nothing reallocates them. */
static void builder_finish(builder_t *b, ctrdata_t *d)
{
    d->ex = shrink(b->ex, b->n, sizeof(ctr_example_t));
    d->n = b->n;
    d->cats = shrink(b->cats, b->ncats, sizeof(ctr_cat_t));
    d->ncats = b->ncats;
    d->nums = shrink(b->nums, b->nnums, sizeof(ctr_num_t));
    d->nnums = b->nnums;
    d->strings = shrink(b->strings, b->slen, 1);
    d->strings_len = b->slen;
    for (size_t i = 0; i < d->ncats; i++)
        d->cats[i].value.id = d->strings + b->values[b->cat_value[i]].off;
    size_t ci = 0, ni = 0;
    for (size_t i = 0; i < d->n; i++) {
        ctr_example_t *e = &d->ex[i];
        e->cat = e->ncat ? d->cats + ci : NULL;
        e->num = e->nnum ? d->nums + ni : NULL;
        ci += (size_t)e->ncat;
        ni += (size_t)e->nnum;
    }
    b->ex = NULL;
    b->cats = NULL;
    b->nums = NULL;
    b->strings = NULL;
    builder_free(b);
}

/* names[i] = prefix followed by i + base, or the given names. */
static char **make_names(int n, const char *prefix, int base, const char *const *given)
{
    char **names = calloc(n > 0 ? (size_t)n : 1, sizeof(char *));
    if (!names)
        return NULL;
    for (int i = 0; i < n; i++) {
        char buf[32];
        if (!given)
            snprintf(buf, sizeof(buf), "%s%d", prefix, i + base);
        names[i] = strdup(given ? given[i] : buf);
        if (!names[i]) {
            free_names(names, n);
            return NULL;
        }
    }
    return names;
}

/* ---- reading lines: bounded, with \r\n and NUL bytes handled -------------- */

typedef struct {
    FILE *f;
    char *buf; /* (cap) */
    size_t cap, start, end;
    int eof;
} reader_t;

/* 1 with the next line (NUL-terminated in place, line break removed), 0 at
 * the end, -1 with *why on a line too long, a NUL byte or a read error. */
static int reader_next(reader_t *r, char **line, size_t *len, const char **why)
{
    for (;;) {
        char *p = r->buf + r->start;
        size_t avail = r->end - r->start;
        char *nl = memchr(p, '\n', avail);
        if (nl || (r->eof && avail > 0)) {
            size_t n = nl ? (size_t)(nl - p) : avail;
            r->start += nl ? n + 1 : n;
            p[n] = '\0'; /* the '\n', or the spare byte after end */
            if (n > 0 && p[n - 1] == '\r')
                p[--n] = '\0';
            if (n > CTRDATA_MAX_LINE) {
                *why = "line longer than 64 KiB";
                return -1;
            }
            if (memchr(p, '\0', n)) {
                *why = "NUL byte in the line";
                return -1;
            }
            *line = p;
            *len = n;
            return 1;
        }
        if (r->eof)
            return 0;
        if (avail > CTRDATA_MAX_LINE + 1) {
            *why = "line longer than 64 KiB";
            return -1;
        }
        memmove(r->buf, p, avail);
        r->start = 0;
        r->end = avail;
        size_t got = fread(r->buf + r->end, 1, r->cap - 1 - r->end, r->f);
        r->end += got;
        if (got == 0) {
            if (ferror(r->f)) {
                *why = "read error";
                return -1;
            }
            r->eof = 1;
        }
    }
}

/* ---- Criteo and the generic form ------------------------------------------ */

enum { COL_SKIP = 0, COL_LABEL, COL_NUM, COL_CAT };

typedef struct {
    const char *path;
    char *errstr;
    size_t errlen;
    long lineno;
    char sep;
    int ncols;
    int role[CTRDATA_MAX_COLS];
    int field[CTRDATA_MAX_COLS];
    int have_directive, dir_nnum, dir_ncat;
    int log1p; /* 1: v > 0 → log1p(v) */
    int ncat, nnum;
    char **cat_names, **num_names;
} parse_t;

/* Fills errstr with path:line: and the message; returns -1. */
static int fail(parse_t *ps, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(ps->errstr, ps->errlen, "%s:%ld: %s", ps->path, ps->lineno, msg);
    return -1;
}

/* Splits s on sep in place; -1 when it has more than max columns. */
static int split(char *s, char sep, char **col, int max)
{
    int n = 0;
    for (;;) {
        if (n == max)
            return -1;
        col[n++] = s;
        char *e = strchr(s, sep);
        if (!e)
            return n;
        *e = '\0';
        s = e + 1;
    }
}

/* 1 when s is a label (0 or 1, also written 0.0 or 1.0), with it in *label. */
static int parse_label(const char *s, float *label)
{
    if (!*s)
        return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || (v != 0.0 && v != 1.0))
        return 0;
    *label = (float)v;
    return 1;
}

/* `# freshrec ctr nnum=N ncat=M [transform=none|log1p]`; other comments are
 * ignored. */
static int parse_directive(parse_t *ps, char *line)
{
    const char *tag = "# freshrec ctr";
    size_t tl = strlen(tag);
    if (strncmp(line, tag, tl) != 0 || (line[tl] != ' ' && line[tl] != '\0'))
        return 0;
    if (ps->have_directive || ps->ncols)
        return fail(ps, "'%s' must come once, before the data", tag);
    int nnum = -1, ncat = -1;
    char *save = NULL;
    for (char *t = strtok_r(line + tl, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        char *end;
        if (strncmp(t, "nnum=", 5) == 0 || strncmp(t, "ncat=", 5) == 0) {
            errno = 0;
            long v = strtol(t + 5, &end, 10);
            if (errno || *end || end == t + 5 || v < 0 || v > CTR_MAX_FIELDS)
                return fail(ps, "'%s': expected a count of 0..64 fields", t);
            *(t[1] == 'n' ? &nnum : &ncat) = (int)v;
        } else if (strcmp(t, "transform=none") == 0) {
            ps->log1p = 0;
        } else if (strcmp(t, "transform=log1p") == 0) {
            ps->log1p = 1;
        } else {
            return fail(ps, "unknown setting '%s' (nnum=, ncat=, transform=none|log1p)", t);
        }
    }
    if (nnum < 0 || ncat < 0)
        return fail(ps, "'%s' needs nnum= and ncat=", tag);
    ps->have_directive = 1;
    ps->dir_nnum = nnum;
    ps->dir_ncat = ncat;
    return 0;
}

/* I<n> → COL_NUM, C<n> → COL_CAT, else COL_SKIP. */
static int criteo_kind(const char *name)
{
    int kind = (name[0] == 'I' || name[0] == 'i')   ? COL_NUM
               : (name[0] == 'C' || name[0] == 'c') ? COL_CAT
                                                    : COL_SKIP;
    if (kind == COL_SKIP || !name[1])
        return COL_SKIP;
    for (const char *p = name + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return COL_SKIP;
    return kind;
}

/* Strips the double quotes some CSV writers put around a header name. */
static char *unquote(char *s)
{
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = '\0';
        return s + 1;
    }
    return s;
}

/* Names the fields after the header columns col, or I<n>, C<n> by position
 * when col is NULL. */
static int set_names(parse_t *ps, char **col)
{
    const char *cn[CTR_MAX_FIELDS] = {0}, *nn[CTR_MAX_FIELDS] = {0};
    for (int c = 0; col && c < ps->ncols; c++) {
        if (ps->role[c] == COL_NUM)
            nn[ps->field[c]] = col[c];
        else if (ps->role[c] == COL_CAT)
            cn[ps->field[c]] = col[c];
    }
    ps->num_names = make_names(ps->nnum, "I", 1, col ? nn : NULL);
    ps->cat_names = make_names(ps->ncat, "C", 1, col ? cn : NULL);
    if (!ps->num_names || !ps->cat_names)
        return fail(ps, "out of memory");
    return 0;
}

/* Roles of the columns from a header line. */
static int parse_header(parse_t *ps, char **col)
{
    int nlabel = 0;
    for (int c = 0; c < ps->ncols; c++)
        col[c] = unquote(col[c]);
    if (ps->have_directive) {
        /* label, dense…, categorical… by position; the header only names them */
        if (ps->ncols != 1 + ps->dir_nnum + ps->dir_ncat)
            return fail(ps, "the header has %d columns, the '# freshrec ctr' line says %d",
                        ps->ncols, 1 + ps->dir_nnum + ps->dir_ncat);
        if (strcasecmp(col[0], "label") != 0)
            return fail(ps, "the header's first column must be 'label', not '%.40s'", col[0]);
        for (int c = 0; c < ps->ncols; c++) {
            ps->role[c] = c == 0 ? COL_LABEL : c <= ps->dir_nnum ? COL_NUM : COL_CAT;
            ps->field[c] = c == 0 ? 0 : c <= ps->dir_nnum ? c - 1 : c - 1 - ps->dir_nnum;
        }
        ps->nnum = ps->dir_nnum;
        ps->ncat = ps->dir_ncat;
        return set_names(ps, col);
    }
    for (int c = 0; c < ps->ncols; c++) {
        if (strcasecmp(col[c], "label") == 0) {
            ps->role[c] = COL_LABEL;
            nlabel++;
        } else if (strcasecmp(col[c], "id") == 0) {
            ps->role[c] = COL_SKIP;
        } else if ((ps->role[c] = criteo_kind(col[c])) == COL_NUM) {
            ps->field[c] = ps->nnum++;
        } else if (ps->role[c] == COL_CAT) {
            ps->field[c] = ps->ncat++;
        } else {
            return fail(ps,
                        "column '%s' is none of label, Id, I<n> (dense), C<n> "
                        "(categorical)",
                        col[c]);
        }
    }
    if (nlabel != 1)
        return fail(ps, "the header needs exactly one 'label' column");
    if (ps->nnum > CTR_MAX_FIELDS || ps->ncat > CTR_MAX_FIELDS)
        return fail(ps, "more than 64 dense or categorical columns");
    return set_names(ps, col);
}

/* Roles of the columns of a file without a header, from its first line. */
static int roles_by_position(parse_t *ps)
{
    if (ps->have_directive) {
        ps->nnum = ps->dir_nnum;
        ps->ncat = ps->dir_ncat;
        if (ps->ncols != 1 + ps->nnum + ps->ncat)
            return fail(ps, "%d columns, expected %d (label, nnum dense, ncat categorical)",
                        ps->ncols, 1 + ps->nnum + ps->ncat);
    } else if (ps->ncols == 1 + 13 + 26) {
        ps->nnum = 13;
        ps->ncat = 26;
    } else {
        return fail(ps, "no header and not Criteo's 40 columns (label, I1..I13, C1..C26): "
                        "add a header or a first line '# freshrec ctr nnum=N ncat=M'");
    }
    for (int c = 0; c < ps->ncols; c++) {
        ps->role[c] = c == 0 ? COL_LABEL : c <= ps->nnum ? COL_NUM : COL_CAT;
        ps->field[c] = c == 0 ? 0 : c <= ps->nnum ? c - 1 : c - 1 - ps->nnum;
    }
    return set_names(ps, NULL);
}

static int parse_row(parse_t *ps, builder_t *b, char **col)
{
    float label = 0;
    for (int c = 0; c < ps->ncols; c++)
        if (ps->role[c] == COL_LABEL && !parse_label(col[c], &label))
            return fail(ps, "label '%.40s' is not 0 or 1", col[c]);
    if (builder_example(b, label, (int64_t)b->n))
        return fail(ps, "out of memory");
    for (int c = 0; c < ps->ncols; c++) {
        const char *s = col[c];
        if (!*s || ps->role[c] == COL_LABEL || ps->role[c] == COL_SKIP)
            continue; /* an empty field is a missing feature */
        if (ps->role[c] == COL_CAT) {
            if (builder_cat(b, ps->field[c], s, strlen(s)))
                return fail(ps, "out of memory");
            continue;
        }
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (*end || !isfinite(v) || (errno == ERANGE && fabs(v) > 1.0) || fabs(v) > FLT_MAX)
            return fail(ps, "%s: '%.40s' is not a finite number", ps->num_names[ps->field[c]], s);
        if (ps->log1p && v > 0)
            v = log1p(v);
        if (builder_num(b, ps->field[c], (float)v))
            return fail(ps, "out of memory");
    }
    return 0;
}

static int load_lines(parse_t *ps, builder_t *b, reader_t *r)
{
    char *line;
    size_t n;
    const char *why = NULL;
    int rc;
    char *col[CTRDATA_MAX_COLS];
    while ((rc = reader_next(r, &line, &n, &why)) == 1) {
        ps->lineno++;
        if (n == 0)
            continue;
        if (line[0] == '#') {
            if (parse_directive(ps, line))
                return -1;
            continue;
        }
        if (!ps->ncols) {
            ps->sep = strchr(line, '\t') ? '\t' : ',';
            int k = split(line, ps->sep, col, CTRDATA_MAX_COLS);
            if (k < 0)
                return fail(ps, "more than %d columns", CTRDATA_MAX_COLS);
            ps->ncols = k;
            float label;
            if (!parse_label(col[0], &label)) {
                if (parse_header(ps, col))
                    return -1;
                continue;
            }
            if (roles_by_position(ps))
                return -1;
        } else {
            /* splitting stops at one column too many */
            int k = split(line, ps->sep, col, ps->ncols);
            if (k < 0)
                return fail(ps, "more columns than the first line's %d", ps->ncols);
            if (k != ps->ncols)
                return fail(ps, "%d columns where the first line has %d", k, ps->ncols);
        }
        if (parse_row(ps, b, col))
            return -1;
    }
    if (rc < 0) {
        ps->lineno++;
        return fail(ps, "%s", why);
    }
    return 0;
}

int ctrdata_load_criteo(ctrdata_t *d, const char *path, char *errstr, size_t len)
{
    if (d->n || d->ex || d->cat_names || d->num_names) {
        snprintf(errstr, len, "%s: the dataset is not empty", path);
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, len, "%s: %s", path, strerror(errno));
        return -1;
    }
    builder_t b = {0};
    parse_t ps = {.path = path, .errstr = errstr, .errlen = len, .log1p = 1};
    reader_t r = {.f = f, .cap = 2 * CTRDATA_MAX_LINE + 4};
    r.buf = malloc(r.cap);
    int rc = -1;
    if (!r.buf) {
        snprintf(errstr, len, "%s: out of memory", path);
        goto err;
    }
    if (load_lines(&ps, &b, &r))
        goto err;
    if (b.n == 0) {
        snprintf(errstr, len, "%s: no examples", path);
        goto err;
    }
    builder_finish(&b, d);
    d->ncat = ps.ncat;
    d->nnum = ps.nnum;
    d->cat_names = ps.cat_names;
    d->num_names = ps.num_names;
    ps.cat_names = ps.num_names = NULL; /* owned by d now */
    rc = 0;
err:
    free_names(ps.cat_names, ps.ncat);
    free_names(ps.num_names, ps.nnum);
    builder_free(&b);
    free(r.buf);
    fclose(f);
    return rc;
}

/* ---- the synthetic stream ------------------------------------------------- */

#define CTRGEN_TS0 1764486000000LL /* 2025-11-30, ms since the epoch */
#define CTRGEN_USER_ZIPF 0.5
#define CTRGEN_ITEM_ZIPF 0.7
#define CTRGEN_NOISE_MISSING 0.2
#define CTRGEN_CALIBRATE_MAX 100000 /* examples the bias is fitted on */

void ctrgen_config_default(ctrgen_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->examples = 200000;
    cfg->users = 2000;
    cfg->items = 1000;
    cfg->devices = 8;
    cfg->cat3_card = 50;
    cfg->nnum = 3;
    cfg->interaction = 2.0;
    cfg->base_ctr = 0.2;
    cfg->seed = 1;
}

int ctrgen_interaction_sign(const ctrgen_config_t *cfg, uint32_t item, uint32_t device)
{
    uint32_t D = cfg->devices ? cfg->devices : 1;
    uint64_t s = cfg->seed ^ 0x243f6a8885a308d3ULL; /* a stream apart from the examples' */
    uint64_t x = rng_splitmix(&s) + (uint64_t)(item % D) * D + device % D;
    return rng_splitmix(&x) >> 63 ? 1 : -1;
}

/* cdf[k] = Σ_{j ≤ k} (j + 1)^−s */
static double *zipf_cdf(uint32_t n, double s)
{
    double *cdf = malloc((size_t)n * sizeof(double));
    if (!cdf)
        return NULL;
    double acc = 0;
    for (uint32_t k = 0; k < n; k++)
        cdf[k] = acc += pow((double)k + 1, -s);
    return cdf;
}

static uint32_t zipf_draw(rng_t *r, const double *cdf, uint32_t n)
{
    double u = rng_double(r) * cdf[n - 1];
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* The bias b with mean σ(b + z_i) = target, by bisection (the mean is
 * increasing in b). */
static double calibrate_bias(const float *z, size_t n, double target)
{
    double lo = -40, hi = 40;
    for (int it = 0; it < 60; it++) {
        double mid = 0.5 * (lo + hi), acc = 0;
        for (size_t i = 0; i < n; i++)
            acc += sigmoid(mid + z[i]);
        if (acc / (double)n < target)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

static int gen_check(const ctrgen_config_t *c, char *errstr, size_t len)
{
    const char *bad = NULL;
    if (c->examples == 0 || c->examples > (uint64_t)(SIZE_MAX / 4 / sizeof(ctr_cat_t)))
        bad = "examples must be in 1..SIZE_MAX/128";
    else if (!c->users || !c->items || !c->devices || !c->cat3_card)
        bad = "users, items, devices and cat3_card must be at least 1";
    else if (c->nnum < 0 || c->nnum > CTR_MAX_FIELDS)
        bad = "nnum must be in 0..64";
    else if (!isfinite(c->interaction))
        bad = "interaction must be finite";
    else if (!(c->base_ctr > 0 && c->base_ctr < 1))
        bad = "base_ctr must be in (0, 1)";
    if (bad)
        snprintf(errstr, len, "ctrgen: %s", bad);
    return bad ? -1 : 0;
}

int ctrdata_generate(ctrdata_t *d, const ctrgen_config_t *cfg, char *errstr, size_t len)
{
    static const char *const cat_names[] = {"user", "item", "device", "cat3"};
    if (gen_check(cfg, errstr, len))
        return -1;
    if (d->n || d->ex || d->cat_names || d->num_names) {
        snprintf(errstr, len, "ctrgen: the dataset is not empty");
        return -1;
    }
    size_t n = (size_t)cfg->examples;
    builder_t b = {0};
    double *ucdf = zipf_cdf(cfg->users, CTRGEN_USER_ZIPF);
    double *icdf = zipf_cdf(cfg->items, CTRGEN_ITEM_ZIPF);
    float *u = malloc((size_t)cfg->users * sizeof(float));
    float *v = malloc((size_t)cfg->items * sizeof(float));
    float *z = malloc(n * sizeof(float)); /* logit without the bias */
    char **cn = make_names(4, NULL, 0, cat_names);
    char **nn = make_names(cfg->nnum, "d", 0, NULL);
    int rc = -1;
    if (!ucdf || !icdf || !u || !v || !z || !cn || !nn)
        goto oom;

    rng_t pr, r, lr;
    rng_seed(&pr, cfg->seed);                         /* latent user and item terms */
    rng_seed(&r, cfg->seed ^ 0x13198a2e03707344ULL);  /* features */
    rng_seed(&lr, cfg->seed ^ 0xa4093822299f31d0ULL); /* labels */
    for (uint32_t k = 0; k < cfg->users; k++)
        u[k] = rng_normal(&pr);
    for (uint32_t k = 0; k < cfg->items; k++)
        v[k] = rng_normal(&pr);

    for (size_t i = 0; i < n; i++) {
        uint32_t user = zipf_draw(&r, ucdf, cfg->users);
        uint32_t item = zipf_draw(&r, icdf, cfg->items);
        uint32_t dev = rng_below(&r, cfg->devices);
        uint32_t c3 = rng_below(&r, cfg->cat3_card);
        if (builder_example(&b, 0, CTRGEN_TS0 + (int64_t)i * 100))
            goto oom;
        char buf[32];
        int l;
        l = snprintf(buf, sizeof(buf), "u%u", user);
        if (builder_cat(&b, 0, buf, (size_t)l))
            goto oom;
        l = snprintf(buf, sizeof(buf), "i%u", item);
        if (builder_cat(&b, 1, buf, (size_t)l))
            goto oom;
        l = snprintf(buf, sizeof(buf), "dev%u", dev);
        if (builder_cat(&b, 2, buf, (size_t)l))
            goto oom;
        l = snprintf(buf, sizeof(buf), "c%u", c3);
        if (builder_cat(&b, 3, buf, (size_t)l))
            goto oom;
        double logit = 0.3 * u[user] + 0.3 * v[item] +
                       cfg->interaction * ctrgen_interaction_sign(cfg, item, dev);
        for (int k = 0; k < cfg->nnum; k++) {
            float x = rng_normal(&r);
            if (k == 0)
                logit += 0.5 * x;
            else if (rng_double(&r) < CTRGEN_NOISE_MISSING)
                continue;
            if (builder_num(&b, k, x))
                goto oom;
        }
        z[i] = (float)logit;
    }
    double bias =
        calibrate_bias(z, n < CTRGEN_CALIBRATE_MAX ? n : CTRGEN_CALIBRATE_MAX, cfg->base_ctr);
    for (size_t i = 0; i < n; i++)
        b.ex[i].label = rng_double(&lr) < sigmoid(bias + z[i]) ? 1.0f : 0.0f;

    builder_finish(&b, d);
    d->ncat = 4;
    d->nnum = cfg->nnum;
    d->cat_names = cn;
    d->num_names = nn;
    cn = nn = NULL; /* owned by d now */
    rc = 0;
    goto out;
oom:
    snprintf(errstr, len, "ctrgen: out of memory");
out:
    free_names(cn, 4);
    free_names(nn, cfg->nnum);
    builder_free(&b);
    free(ucdf);
    free(icdf);
    free(u);
    free(v);
    free(z);
    return rc;
}

/* ---- writing -------------------------------------------------------------- */

/* A name or value the tab form can hold: non-empty, no tab, no line break. */
static int writable(const char *s, size_t len)
{
    return len > 0 && !memchr(s, '\t', len) && !memchr(s, '\n', len) && !memchr(s, '\r', len) &&
           !memchr(s, '\0', len);
}

static int write_names(FILE *f, char **names, int n, const char *prefix)
{
    for (int i = 0; i < n; i++) {
        const char *s = names ? names[i] : NULL;
        if (!s || !writable(s, strlen(s))) { /* a name the form cannot hold: its position */
            if (fprintf(f, "\t%s%d", prefix, i + 1) < 0)
                return -1;
        } else if (fprintf(f, "\t%s", s) < 0) {
            return -1;
        }
    }
    return 0;
}

int ctrdata_write(const ctrdata_t *d, FILE *f)
{
    if (d->nnum < 0 || d->nnum > CTR_MAX_FIELDS || d->ncat < 0 || d->ncat > CTR_MAX_FIELDS)
        return -1;
    if (fprintf(f, "# freshrec ctr nnum=%d ncat=%d transform=none\nlabel", d->nnum, d->ncat) < 0 ||
        write_names(f, d->num_names, d->nnum, "I") || write_names(f, d->cat_names, d->ncat, "C") ||
        fputc('\n', f) == EOF)
        return -1;
    const ctr_num_t *num[CTR_MAX_FIELDS];
    const ctr_cat_t *cat[CTR_MAX_FIELDS];
    for (size_t i = 0; i < d->n; i++) {
        const ctr_example_t *e = &d->ex[i];
        memset(num, 0, sizeof(num));
        memset(cat, 0, sizeof(cat));
        for (int k = 0; k < e->nnum; k++) {
            const ctr_num_t *x = &e->num[k];
            if (x->field < 0 || x->field >= d->nnum || num[x->field] || !isfinite(x->value))
                return -1;
            num[x->field] = x;
        }
        for (int k = 0; k < e->ncat; k++) {
            const ctr_cat_t *x = &e->cat[k];
            if (x->field < 0 || x->field >= d->ncat || cat[x->field] || !x->value.id ||
                !writable(x->value.id, x->value.len))
                return -1;
            cat[x->field] = x;
        }
        if (fputs(e->label >= 0.5f ? "1" : "0", f) == EOF)
            return -1;
        for (int k = 0; k < d->nnum; k++)
            if ((num[k] ? fprintf(f, "\t%.9g", (double)num[k]->value) : fputc('\t', f)) < 0)
                return -1;
        for (int k = 0; k < d->ncat; k++) {
            if (fputc('\t', f) == EOF ||
                (cat[k] && fwrite(cat[k]->value.id, 1, cat[k]->value.len, f) != cat[k]->value.len))
                return -1;
        }
        if (fputc('\n', f) == EOF)
            return -1;
    }
    return fflush(f) == EOF || ferror(f) ? -1 : 0;
}
