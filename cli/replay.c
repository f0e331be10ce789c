/* replay.c — `freshrec replay`: reads an interaction file (dataset.h) and
 * produces it, in time order, as JSON events (proto/event.h) keyed by user id,
 * at a fixed rate or as fast as the broker takes them. A progress bar (rate,
 * ETA) goes to stderr when it is a terminal. Not for: learning. */
#define _POSIX_C_SOURCE 200809L
#include "clock.h"
#include "cli.h"
#include "dataset.h"
#include "event.h"

#include <errno.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: freshrec replay --data PATH --brokers HOST:PORT [options]\n"
               "Produces an interaction file, in time order, as JSON events.\n"
               "  --format F     movielens | synthetic                      [movielens]\n"
               "  --topic T      Kafka topic                                [events]\n"
               "  --rate N       events per second; 0 = as fast as possible [0]\n"
               "  --type K       event type of every interaction            [click]\n"
               "  --ts data|now  event time: the file's, or the time of producing [data]\n"
               "  --limit N      produce at most N events                   [all]\n"
               "  --quiet        no progress bar\n");
}

typedef struct {
    uint64_t ok, failed;
} dr_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    dr_t *d = opaque;
    if (m->err)
        d->failed++;
    else
        d->ok++;
}

int replay_main(int argc, char **argv)
{
    const char *data = NULL, *format = "movielens", *brokers = NULL, *topic = "events";
    const char *type = "click", *tsmode = "data";
    double rate = 0;
    long long limit = -1;
    int quiet = 0;
    static const struct option opts[] = {
        {"data", 1, 0, 'd'},  {"format", 1, 0, 'f'}, {"brokers", 1, 0, 'b'},
        {"topic", 1, 0, 't'}, {"rate", 1, 0, 'r'},   {"type", 1, 0, 'k'},
        {"ts", 1, 0, 's'},    {"limit", 1, 0, 'l'},  {"quiet", 0, 0, 'q'},
        {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            data = optarg;
            break;
        case 'f':
            format = optarg;
            break;
        case 'b':
            brokers = optarg;
            break;
        case 't':
            topic = optarg;
            break;
        case 'r':
            errno = 0;
            rate = strtod(optarg, &end);
            if (errno || *end || rate < 0 || rate > 1e8) {
                fprintf(stderr, "freshrec replay: --rate '%s': expected a number ≥ 0\n", optarg);
                return 2;
            }
            break;
        case 'k':
            type = optarg;
            break;
        case 's':
            tsmode = optarg;
            break;
        case 'l':
            errno = 0;
            limit = strtoll(optarg, &end, 10);
            if (errno || *end || limit < 0) {
                fprintf(stderr, "freshrec replay: --limit '%s': expected a count\n", optarg);
                return 2;
            }
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!data || !brokers) {
        fprintf(stderr, "freshrec replay: --data and --brokers are required\n");
        usage(stderr);
        return 2;
    }
    if (strcmp(format, "movielens") && strcmp(format, "synthetic")) {
        fprintf(stderr, "freshrec replay: --format '%s': expected movielens or synthetic\n",
                format);
        return 2;
    }
    if (strcmp(tsmode, "data") && strcmp(tsmode, "now")) {
        fprintf(stderr, "freshrec replay: --ts '%s': expected data or now\n", tsmode);
        return 2;
    }
    char err[512];
    dataset_t d;
    dataset_init(&d);
    if (dataset_load(&d, data, err, sizeof(err))) {
        fprintf(stderr, "freshrec replay: %s\n", err);
        dataset_free(&d);
        return 1;
    }
    dataset_sort_by_time(&d);
    size_t total = limit >= 0 && (size_t)limit < d.n ? (size_t)limit : d.n;

    dr_t dr = {0, 0};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "queue.buffering.max.messages", "500000", err, sizeof(err))) {
        fprintf(stderr, "freshrec replay: %s\n", err);
        rd_kafka_conf_destroy(conf);
        dataset_free(&d);
        return 2;
    }
    rd_kafka_conf_set_opaque(conf, &dr);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "freshrec replay: %s\n", err);
        rd_kafka_conf_destroy(conf);
        dataset_free(&d);
        return 1;
    }
    conf = NULL; /* owned by rk now */

    int tty = !quiet && isatty(STDERR_FILENO);
    double t0 = clock_mono_s(), last = 0;
    char buf[2 * EVENT_MAX_ID + 256];
    int rc = 0;
    for (size_t i = 0; i < total; i++) {
        const ds_event_t *e = &d.ev[i];
        const lrn_id_t *u = &d.users[e->user], *it = &d.items[e->item];
        int64_t ts = strcmp(tsmode, "now") == 0 ? clock_wall_ms() : e->ts_ms;
        size_t n = event_encode(buf, sizeof(buf), u->id, u->len, it->id, it->len, type, ts);
        if (!n) {
            fprintf(stderr, "freshrec replay: event %zu cannot be encoded\n", i);
            rc = 1;
            break;
        }
        for (;;) {
            rd_kafka_resp_err_t perr = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_KEY(u->id, u->len), RD_KAFKA_V_VALUE(buf, n), RD_KAFKA_V_END);
            if (perr == RD_KAFKA_RESP_ERR_NO_ERROR)
                break;
            if (perr != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, "freshrec replay: produce: %s\n", rd_kafka_err2str(perr));
                rc = 1;
                goto done;
            }
            rd_kafka_poll(rk, 10); /* the local queue is full: let deliveries drain */
        }
        rd_kafka_poll(rk, 0);
        double t = clock_mono_s();
        if (rate > 0) {
            double due = t0 + (double)(i + 1) / rate;
            if (due > t) {
                struct timespec sl = {(time_t)(due - t),
                                      (long)((due - t - (time_t)(due - t)) * 1e9)};
                nanosleep(&sl, NULL);
            }
        }
        if (tty && (t - last > 0.2 || i + 1 == total)) {
            double r = (i + 1) / (t - t0 + 1e-9), eta = (total - i - 1) / (r > 0 ? r : 1);
            int w = 30, fill = (int)(w * (double)(i + 1) / total);
            fprintf(stderr, "\r[%.*s%*s] %5.1f%% %zu/%zu  %.0f events/s  ETA %.0f s ", fill,
                    "##############################", w - fill, "", 100.0 * (i + 1) / total, i + 1,
                    total, r, eta);
            last = t;
        }
    }
done:
    if (tty)
        fputc('\n', stderr);
    rd_kafka_flush(rk, 30000);
    double secs = clock_mono_s() - t0;
    uint64_t unsent = (uint64_t)rd_kafka_outq_len(rk);
    fprintf(stderr,
            "freshrec replay: %llu delivered, %llu failed, %llu undelivered in %.2f s (%.0f "
            "events/s)\n",
            (unsigned long long)dr.ok, (unsigned long long)dr.failed, (unsigned long long)unsent,
            secs, dr.ok / (secs > 0 ? secs : 1));
    if (dr.failed || unsent)
        rc = 1;
    rd_kafka_destroy(rk);
    dataset_free(&d);
    return rc;
}
