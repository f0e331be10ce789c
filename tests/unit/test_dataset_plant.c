/* test_dataset_plant.c — unit tests of the planted change in generated
 * streams (data/dataset.c): the defaults reproduce the stream as it was
 * before planted change existed (byte for byte), a preference shift moves
 * every user's topic at its event and changes nothing else, new items have
 * no event before their birth and most of their events from their audience,
 * the plant lines survive write → load, and bad plant lines and configs are
 * refused. Not for: loading the MovieLens forms (test_dataset.c). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"

/* ---- helpers ---------------------------------------------------------- */

static void write_temp(char *path, const char *text)
{
    strcpy(path, "/tmp/freshrec-test-plant-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int load_temp(dataset_t *d, const char *path, char *err, size_t len)
{
    int rc = dataset_load(d, path, err, len);
    unlink(path);
    return rc;
}

static void generate(dataset_t *d, const gen_config_t *c)
{
    char err[256] = "";
    dataset_init(d);
    int rc = dataset_generate(d, c, err, sizeof(err));
    if (rc)
        print_message("generate: %s\n", err);
    assert_int_equal(rc, 0);
}

/* the ids the generator writes are integers */
static uint32_t user_id(const dataset_t *d, size_t i)
{
    return (uint32_t)atol(d->users[d->ev[i].user].id);
}

static uint32_t item_id(const dataset_t *d, size_t i)
{
    return (uint32_t)atol(d->items[d->ev[i].item].id);
}

/* FNV-1a, 64 bits, of what dataset_write writes */
static uint64_t written_hash(const dataset_t *d, size_t *bytes)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    assert_non_null(f);
    assert_int_equal(dataset_write(d, f), 0);
    assert_int_equal(fclose(f), 0);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)buf[i]) * 0x100000001b3ULL;
    free(buf);
    *bytes = n;
    return h;
}

static void small(gen_config_t *c, uint64_t seed)
{
    gen_config_default(c);
    c->users = 300;
    c->items = 500;
    c->events = 40000;
    c->seed = seed;
}

/* More users for new items: each topic then has enough users (about 40)
 * that its own users click most of its items. */
static void small_new(gen_config_t *c, uint64_t seed)
{
    small(c, seed);
    c->users = 1000;
    c->events = 60000;
}

/* ---- the defaults ----------------------------------------------------- */

/* The hashes of the streams written before planted change existed (commit
 * c757a36): the defaults must write the same bytes. */
static void test_defaults_unchanged(void **state)
{
    (void)state;
    static const struct {
        uint32_t users, items, topics;
        uint64_t events, seed;
        size_t bytes;
        uint64_t fnv;
    } cases[] = {
        {1000, 2000, 24, 100000, 1, 2131033, 0xffa2b949259f5c1cULL}, /* freshrec gen's defaults */
        {300, 500, 24, 20000, 5, 408144, 0x4cf4e42630fe8025ULL},
        {2000, 3000, 24, 5000, 42, 110489, 0x3681a5c7098cac13ULL},
        {50, 60, 3, 3000, 7, 56092, 0x685133fe4feb8a4bULL},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        gen_config_t c;
        gen_config_default(&c);
        assert_true(c.shift_at == 0.0);
        assert_int_equal(c.new_items, 0);
        c.users = cases[k].users;
        c.items = cases[k].items;
        c.topics = cases[k].topics;
        c.events = cases[k].events;
        c.seed = cases[k].seed;
        dataset_t d;
        generate(&d, &c);
        assert_null(d.plan);
        size_t bytes = 0;
        uint64_t h = written_hash(&d, &bytes);
        print_message("case %zu: %zu bytes, fnv 0x%016llx\n", k, bytes, (unsigned long long)h);
        assert_int_equal(bytes, cases[k].bytes);
        assert_true(h == cases[k].fnv);
        dataset_free(&d);
    }
}

/* ---- the preference shift --------------------------------------------- */

static void test_shift(void **state)
{
    (void)state;
    gen_config_t c;
    small(&c, 3);
    dataset_t base, d;
    generate(&base, &c);
    c.shift_at = 0.5;
    generate(&d, &c);
    const gen_plan_t *p = d.plan;
    assert_non_null(p);
    assert_int_equal(p->topics, c.topics);
    assert_int_equal(p->items, c.items);
    assert_int_equal(p->users, c.users);
    assert_non_null(p->user_topic);
    assert_non_null(p->shift_perm);
    assert_int_equal(p->nnew, 0);
    assert_int_equal(p->shift_event, 20000);
    assert_int_equal(p->shift_ms, d.ev[20000].ts_ms);

    /* a permutation that moves every topic */
    unsigned char seen[24] = {0};
    for (uint32_t k = 0; k < c.topics; k++) {
        assert_true(p->shift_perm[k] < c.topics);
        assert_true(p->shift_perm[k] != k);
        assert_int_equal(seen[p->shift_perm[k]], 0);
        seen[p->shift_perm[k]] = 1;
    }

    /* the same draws: before the shift the same events, after it the same
     * users and times, the items now drawn from the users' new topics */
    assert_int_equal(d.n, base.n);
    size_t same_after = 0; /* events after the shift with the base stream's item */
    for (size_t i = 0; i < d.n; i++) {
        assert_int_equal(user_id(&d, i), user_id(&base, i));
        assert_int_equal(d.ev[i].ts_ms, base.ev[i].ts_ms);
        if (i < p->shift_event)
            assert_int_equal(item_id(&d, i), item_id(&base, i));
        else
            same_after += item_id(&d, i) == item_id(&base, i);
    }
    /* an item changes where the user drew from their main topic (focus), not
     * where the topic was drawn at random */
    double moved = 1.0 - (double)same_after / (double)(d.n - p->shift_event);
    print_message("shift: %.3f of the later events changed item\n", moved);
    assert_true(moved > 0.75 && moved < 0.85);

    /* users' topic distribution, before against after: the share of their
     * events in their old main topic falls from about focus to about
     * (1 - focus) / topics, the share in their new one rises to about focus */
    size_t nb = 0, na = 0, old_b = 0, old_a = 0, new_b = 0, new_a = 0;
    uint32_t *cnt = calloc((size_t)c.users * c.topics * 2, sizeof(uint32_t));
    assert_non_null(cnt);
    for (size_t i = 0; i < d.n; i++) {
        uint32_t u = user_id(&d, i), k = gen_plan_item_topic(p, item_id(&d, i));
        uint32_t was = p->user_topic[u - 1], now = p->shift_perm[was];
        int after = i >= p->shift_event;
        assert_true(k < c.topics);
        assert_int_equal(gen_plan_user_topic(p, u, d.ev[i].ts_ms), after ? now : was);
        cnt[((size_t)(u - 1) * 2 + (size_t)after) * c.topics + k]++;
        if (after) {
            na++;
            old_a += k == was;
            new_a += k == now;
        } else {
            nb++;
            old_b += k == was;
            new_b += k == now;
        }
    }
    print_message("shift: old topic %.3f -> %.3f, new topic %.3f -> %.3f\n", (double)old_b / nb,
                  (double)old_a / na, (double)new_b / nb, (double)new_a / na);
    assert_true((double)old_b / nb > 0.75 && (double)old_a / na < 0.05);
    assert_true((double)new_b / nb < 0.05 && (double)new_a / na > 0.75);
    /* each user's most frequent topic is the planted one, on both sides */
    size_t users = 0, right = 0;
    for (uint32_t u = 0; u < c.users; u++) {
        uint32_t top[2] = {0, 0}, total[2] = {0, 0};
        for (int s = 0; s < 2; s++)
            for (uint32_t k = 0; k < c.topics; k++) {
                uint32_t n = cnt[((size_t)u * 2 + (size_t)s) * c.topics + k];
                total[s] += n;
                if (n > cnt[((size_t)u * 2 + (size_t)s) * c.topics + top[s]])
                    top[s] = k;
            }
        if (total[0] < 20 || total[1] < 20)
            continue;
        users++;
        right += top[0] == p->user_topic[u] && top[1] == p->shift_perm[p->user_topic[u]];
    }
    print_message("shift: %zu of %zu users' top topics as planted\n", right, users);
    assert_true(users > c.users / 2);
    assert_true(right >= users * 95 / 100);
    free(cnt);
    dataset_free(&base);
    dataset_free(&d);

    /* an event index rather than a share */
    small(&c, 3);
    c.shift_at = 12345;
    generate(&d, &c);
    assert_non_null(d.plan);
    assert_int_equal(d.plan->shift_event, 12345);
    assert_int_equal(d.plan->shift_ms, d.ev[12345].ts_ms);
    dataset_free(&d);
}

/* ---- items born mid-stream -------------------------------------------- */

/* Checks d's new items against its plan; base is the same config without
 * them. */
static void check_new_items(const dataset_t *d, const dataset_t *base, const gen_config_t *c)
{
    const gen_plan_t *p = d->plan;
    assert_non_null(p);
    assert_int_equal(p->nnew, c->new_items);
    size_t *events = calloc(p->nnew, sizeof(size_t)), *audience = calloc(p->nnew, sizeof(size_t));
    assert_non_null(events);
    assert_non_null(audience);
    for (size_t j = 0; j < p->nnew; j++) {
        const gen_newitem_t *it = &p->new_items[j];
        assert_int_equal(it->id, c->items + 1 + j);
        assert_int_equal(it->topic, j % c->topics);
        assert_int_equal(gen_plan_item_topic(p, it->id), it->topic);
        /* born from the middle to 90% of the stream, in order */
        assert_true(it->birth_event >= c->events / 2 && it->birth_event < c->events * 9 / 10);
        if (j > 0)
            assert_true(it->birth_event >= p->new_items[j - 1].birth_event);
        assert_int_equal(it->birth_ms, d->ev[it->birth_event].ts_ms);
    }
    assert_int_equal(d->n, base->n);
    size_t given = 0, from_audience = 0;
    for (size_t i = 0; i < d->n; i++) {
        uint32_t item = item_id(d, i);
        /* the same users and times; the items of the base stream but where
         * a new item took the draw */
        assert_int_equal(user_id(d, i), user_id(base, i));
        assert_int_equal(d->ev[i].ts_ms, base->ev[i].ts_ms);
        if (item <= c->items) {
            assert_int_equal(item, item_id(base, i));
            continue;
        }
        size_t j = item - c->items - 1;
        assert_true(j < p->nnew);
        const gen_newitem_t *it = &p->new_items[j];
        /* never before its birth, in events or in time */
        assert_true(i >= it->birth_event);
        assert_true(d->ev[i].ts_ms >= it->birth_ms);
        /* the base stream drew an item of the same topic there */
        assert_int_equal(gen_plan_item_topic(p, item_id(base, i)), it->topic);
        int aud = gen_plan_user_topic(p, user_id(d, i), d->ev[i].ts_ms) == it->topic;
        events[j]++;
        audience[j] += (size_t)aud;
        given++;
        from_audience += (size_t)aud;
    }
    print_message("new items: %zu events, %.3f of them from the audience\n", given,
                  (double)from_audience / (double)given);
    assert_true(from_audience > given * 7 / 10);
    for (size_t j = 0; j < p->nnew; j++) {
        /* every one is clicked; with enough clicks to tell, mostly by its
         * audience */
        int few = events[j] < 30;
        if (events[j] < 5 || (!few && audience[j] * 2 < events[j]))
            print_message("new item %u: %zu events, %zu from the audience\n", p->new_items[j].id,
                          events[j], audience[j]);
        assert_true(events[j] >= 5);
        assert_true(few || audience[j] * 2 >= events[j]);
    }
    free(events);
    free(audience);
}

/* Among the audience's events after a new item's birth, it is one of the
 * most clicked items: what a learner that picks it up quickly can rank in
 * the audience's top 20. */
static void check_audience_rank(const dataset_t *d, const gen_config_t *c)
{
    const gen_plan_t *p = d->plan;
    uint32_t nid = c->items + c->new_items;
    uint32_t *cnt = malloc(sizeof(uint32_t) * (nid + 1));
    assert_non_null(cnt);
    size_t worst = 0;
    for (size_t j = 0; j < p->nnew; j++) {
        const gen_newitem_t *it = &p->new_items[j];
        memset(cnt, 0, sizeof(uint32_t) * (nid + 1));
        for (size_t i = it->birth_event; i < d->n; i++)
            if (gen_plan_user_topic(p, user_id(d, i), d->ev[i].ts_ms) == it->topic)
                cnt[item_id(d, i)]++;
        size_t above = 0;
        for (uint32_t x = 1; x <= nid; x++)
            above += cnt[x] > cnt[it->id];
        if (above > worst)
            worst = above;
    }
    print_message("new items: the worst ranks %zu in its audience's clicks after birth\n",
                  worst + 1);
    assert_true(worst < 20); /* two live in one topic share its draws: lower, still top 20 */
    free(cnt);
}

static void test_new_items(void **state)
{
    (void)state;
    gen_config_t c;
    small_new(&c, 4);
    dataset_t base, d;
    generate(&base, &c);
    c.new_items = 30; /* more than the topics: some topics have two */
    generate(&d, &c);
    assert_null(d.plan->shift_perm);
    check_new_items(&d, &base, &c);
    check_audience_rank(&d, &c);
    dataset_free(&base);
    dataset_free(&d);
}

/* Both at once: the audience of an item born after the shift is the users
 * whose main topic is its topic after the shift. */
static void test_shift_and_new_items(void **state)
{
    (void)state;
    gen_config_t c;
    small_new(&c, 9);
    c.shift_at = 0.6;
    dataset_t base, d;
    generate(&base, &c);
    c.new_items = 12;
    generate(&d, &c);
    assert_int_equal(d.plan->shift_event, 36000);
    size_t before = 0;
    for (size_t j = 0; j < d.plan->nnew; j++)
        before += d.plan->new_items[j].birth_event < d.plan->shift_event;
    assert_true(before > 0 && before < d.plan->nnew);
    check_new_items(&d, &base, &c);
    check_audience_rank(&d, &c);
    dataset_free(&base);
    dataset_free(&d);
}

/* ---- plant lines ------------------------------------------------------ */

static void test_plan_round_trip(void **state)
{
    (void)state;
    gen_config_t c;
    small(&c, 11);
    c.events = 5000;
    c.shift_at = 0.3;
    c.new_items = 5;
    dataset_t a, b;
    generate(&a, &c);
    char path[64], err[256] = "";
    write_temp(path, "");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs("# freshrec gen (a comment, as freshrec gen writes one)\n", f) >= 0, 1);
    assert_int_equal(dataset_write(&a, f), 0);
    assert_int_equal(fclose(f), 0);
    dataset_init(&b);
    int rc = load_temp(&b, path, err, sizeof(err));
    if (rc)
        print_message("load: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(b.n, a.n);
    for (size_t i = 0; i < a.n; i++) {
        assert_string_equal(b.users[b.ev[i].user].id, a.users[a.ev[i].user].id);
        assert_string_equal(b.items[b.ev[i].item].id, a.items[a.ev[i].item].id);
        assert_int_equal(b.ev[i].ts_ms, a.ev[i].ts_ms);
    }
    const gen_plan_t *p = a.plan, *q = b.plan;
    assert_non_null(q);
    assert_int_equal(q->topics, p->topics);
    assert_int_equal(q->items, p->items);
    assert_int_equal(q->users, p->users);
    assert_memory_equal(q->user_topic, p->user_topic, sizeof(uint32_t) * p->users);
    assert_non_null(q->shift_perm);
    assert_memory_equal(q->shift_perm, p->shift_perm, sizeof(uint32_t) * p->topics);
    assert_int_equal(q->shift_event, 1500);
    assert_int_equal(q->shift_event, p->shift_event);
    assert_int_equal(q->shift_ms, p->shift_ms);
    assert_int_equal(q->nnew, p->nnew);
    for (size_t j = 0; j < p->nnew; j++) {
        assert_int_equal(q->new_items[j].id, p->new_items[j].id);
        assert_int_equal(q->new_items[j].topic, p->new_items[j].topic);
        assert_int_equal(q->new_items[j].birth_event, p->new_items[j].birth_event);
        assert_int_equal(q->new_items[j].birth_ms, p->new_items[j].birth_ms);
    }
    dataset_free(&a);
    dataset_free(&b);
}

/* The lines themselves, as dataset.h documents them. */
static void test_plan_lines(void **state)
{
    (void)state;
    char path[64], err[256] = "";
    write_temp(path, "# freshrec gen --users 3 ...\n"
                     "# plant topics 3 items 6 users 3\n"
                     "# plant user-topics 2 0 1\n"
                     "# plant shift event 2 ts 1002 perm 1 2 0\r\n"
                     "# plant new-item 7 topic 1 event 1 ts 1001\n"
                     "# a comment\n"
                     "1\t1\t1\t1000\n"
                     "2\t7\t1\t1001\n"
                     "3\t5\t1\t1002\n");
    dataset_t d;
    dataset_init(&d);
    int rc = load_temp(&d, path, err, sizeof(err));
    if (rc)
        print_message("load: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(d.n, 3);
    const gen_plan_t *p = d.plan;
    assert_non_null(p);
    assert_int_equal(p->shift_event, 2);
    assert_int_equal(p->shift_ms, 1002000);
    assert_int_equal(p->nnew, 1);
    assert_int_equal(p->new_items[0].birth_ms, 1001000);
    /* user 1's topic 2 becomes 0 at the shift; items by id */
    assert_int_equal(gen_plan_user_topic(p, 1, 1001999), 2);
    assert_int_equal(gen_plan_user_topic(p, 1, 1002000), 0);
    assert_int_equal(gen_plan_user_topic(p, 2, 0), 0);
    assert_int_equal(gen_plan_user_topic(p, 4, 0), UINT32_MAX);
    assert_int_equal(gen_plan_user_topic(p, 0, 0), UINT32_MAX);
    assert_int_equal(gen_plan_item_topic(p, 1), 0);
    assert_int_equal(gen_plan_item_topic(p, 5), 1);
    assert_int_equal(gen_plan_item_topic(p, 6), 2);
    assert_int_equal(gen_plan_item_topic(p, 7), 1);
    assert_int_equal(gen_plan_item_topic(p, 8), UINT32_MAX);
    dataset_free(&d);
}

static void test_plan_line_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *where;
    } cases[] = {
        {"# plant user-topics 0\n1\t1\t1\t1\n", ":1:"},  /* before topics */
        {"# plant topics 0 items 6 users 1\n", ":1:"},   /* no topic */
        {"# plant topics 2 items 6\n", ":1:"},           /* a word short */
        {"# plant topics 2 items 6 users 1 x\n", ":1:"}, /* a word long */
        {"# plant topics 2 items 6 users 1\n# plant topics 2 items 6 users 1\n", ":2:"},
        {"# plant topics 2 items 6 users 2\n# plant user-topics 0\n", ":2:"},     /* too few */
        {"# plant topics 2 items 6 users 2\n# plant user-topics 0 1 1\n", ":2:"}, /* too many */
        {"# plant topics 2 items 6 users 1\n# plant user-topics 2\n", ":2:"},     /* no topic 2 */
        {"# plant topics 2 items 6 users 1\n# plant user-topics -1\n", ":2:"},
        {"# plant topics 3 items 6 users 1\n# plant user-topics 0\n"
         "# plant shift event 1 ts 1 perm 1 0 2\n",
         ":3:"}, /* 2 stays */
        {"# plant topics 3 items 6 users 1\n# plant user-topics 0\n"
         "# plant shift event 1 ts 1 perm 1 1 0\n",
         ":3:"}, /* not a permutation */
        {"# plant topics 3 items 6 users 1\n# plant user-topics 0\n"
         "# plant shift event 1 ts 1 perm 1 2\n",
         ":3:"}, /* too short */
        {"# plant topics 3 items 6 users 1\n# plant user-topics 0\n"
         "# plant new-item 6 topic 0 event 1 ts 1\n",
         ":3:"}, /* not above the catalogue */
        {"# plant topics 3 items 6 users 1\n# plant user-topics 0\n"
         "# plant new-item 7 topic 3 event 1 ts 1\n",
         ":3:"}, /* no topic 3 */
        {"# plant topics 3 items 6 users 1\n# plant user-topics 0\n"
         "# plant new-item 7 topic 0 event x ts 1\n",
         ":3:"},
        {"# plant topics 3 items 6 users 1\n# plant  user-topics 0\n", ":2:"}, /* two spaces */
        {"# plant topics 3 items 6 users 1\n# plant colour blue\n", ":2:"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char path[64], err[256] = "";
        write_temp(path, cases[c].text);
        dataset_t d;
        dataset_init(&d);
        assert_int_equal(load_temp(&d, path, err, sizeof(err)), -1);
        char want[128];
        snprintf(want, sizeof(want), "%s%s plant line: ", path, cases[c].where);
        if (!strstr(err, want))
            print_message("case %zu: error '%s' does not name '%s'\n", c, err, want);
        assert_non_null(strstr(err, want));
        dataset_free(&d);
    }
    /* plant lines without the users' topics */
    char path[64], err[256] = "";
    write_temp(path, "# plant topics 3 items 6 users 1\n1\t1\t1\t1\n");
    dataset_t d;
    dataset_init(&d);
    assert_int_equal(load_temp(&d, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "user-topics"));
    dataset_free(&d);
    /* a comment that only starts like one is a comment */
    write_temp(path, "# planted by hand\n#plant topics x\n1\t1\t1\t1\n");
    dataset_init(&d);
    assert_int_equal(load_temp(&d, path, err, sizeof(err)), 0);
    assert_null(d.plan);
    dataset_free(&d);
}

static void test_bad_config(void **state)
{
    (void)state;
    static const struct {
        uint32_t topics, new_items;
        uint64_t events;
        double shift_at, new_share;
    } bad[] = {
        {24, 0, 1000, 1000, 0.1},   /* at the end */
        {24, 0, 1000, 5000, 0.1},   /* past it */
        {24, 0, 1000, 10.5, 0.1},   /* not an index */
        {24, 0, 1000, 0.0001, 0.1}, /* a share that rounds to event 0 */
        {24, 0, 1000, -0.5, 0.1},   /* negative */
        {1, 0, 1000, 0.5, 0.1},     /* one topic cannot move */
        {24, 5, 1000, 0, 0.0},      /* new items that take nothing */
        {24, 5, 1000, 0, 1.5},      /* more than everything */
        {24, 5, 1, 0, 0.1},         /* no second half */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gen_config_t c;
        gen_config_default(&c);
        c.users = 10;
        c.items = 100;
        c.topics = bad[i].topics;
        c.events = bad[i].events;
        c.shift_at = bad[i].shift_at;
        c.new_items = bad[i].new_items;
        c.new_share = bad[i].new_share;
        char err[256] = "";
        dataset_t d;
        dataset_init(&d);
        assert_int_equal(dataset_generate(&d, &c, err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
        assert_int_equal(d.n, 0);
        assert_null(d.plan);
        dataset_free(&d);
    }
    /* the bounds themselves are accepted */
    gen_config_t c;
    gen_config_default(&c);
    c.users = 10;
    c.items = 100;
    c.events = 1000;
    c.shift_at = 999;
    dataset_t d;
    generate(&d, &c);
    assert_int_equal(d.plan->shift_event, 999);
    dataset_free(&d);
    c.shift_at = 0.0015;
    generate(&d, &c);
    assert_int_equal(d.plan->shift_event, 1);
    dataset_free(&d);
    c.shift_at = 0;
    c.events = 2;
    c.new_items = 3;
    c.new_share = 1.0;
    generate(&d, &c);
    assert_int_equal(d.plan->nnew, 3);
    dataset_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_unchanged), cmocka_unit_test(test_shift),
        cmocka_unit_test(test_new_items),          cmocka_unit_test(test_shift_and_new_items),
        cmocka_unit_test(test_plan_round_trip),    cmocka_unit_test(test_plan_lines),
        cmocka_unit_test(test_plan_line_errors),   cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
