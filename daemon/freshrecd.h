/* freshrecd.h — the daemon's own state, shared by its files and by nothing
 * else (in the manner of Redis's server.h): app_t is composed of one struct
 * per subsystem, each owned (allocated at start-up, freed at shutdown) by its
 * file:
 *
 *   ingest.c      ingest_t      Kafka batch → decode → example → learn,
 *                               dead letters, offsets stored once learned
 *   sync.c        sync_t        the publish policy: dirty and gone ids, the
 *                               item cadence, the meta hash and heartbeats
 *   checkpoint.c  checkpoint_t  sections, background writes, huge pages back,
 *                               the final checkpoint, restore at start-up
 *   cluster.c     cluster_t     [cluster] model_topic: one member of several
 *                               learning one model through the model log
 *   freshrecd.c   cron_t        main, start-up, the one cron, signals, stats
 *                               snapshot, systemd notify, shutdown
 *
 * The daemon learns through the engine seam only (learner/engine.h). Not
 * for: a library API (nothing outside daemon/freshrecd*.c, ingest.c, sync.c,
 * checkpoint.c and cluster.c includes it). */
#ifndef FR_FRESHRECD_H
#define FR_FRESHRECD_H

#include "ahead.h"
#include "ckpt.h"
#include "collapse.h"
#include "config.h"
#include "engine.h"
#include "event.h"
#include "join.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "modelcfg.h"
#include "publish.h"
#include "stats.h"

#include <event2/event.h>

#define MAX_OVERRIDES 64
#define NEG_CHUNK 256

struct decoded; /* ingest.c: a message decoded, or why it was refused */

/* ingest.c: the buffers of one batch */
typedef struct {
    lrn_event_t *pos;  /* (batch_max) the batch's positives */
    lrn_feat_t *pfeat; /* (batch_max + NEG_CHUNK, ncat + nnum) their features; NULL: none */
    char *arena;       /* (arena_cap) ids and feature values of the batch */
    size_t arena_cap;
    lrn_event_t *negs;   /* (NEG_CHUNK) impressions taken from the join as negatives */
    event_t *kept;       /* an impression's event decoded again (kept_event) */
    struct decoded *one; /* the message being decoded on the loop thread */
    /* [kafka] decode_thread: a batch's messages are decoded into dec
     * (batch_max) by a helper, DECODE_CHUNK at a time, while the loop learns;
     * dec NULL: the loop thread decodes into one */
    ahead_t *ahead;
    struct decoded *dec;
    rd_kafka_message_t **dec_msgs;
    size_t dec_n;
} ingest_t;

/* sync.c: what the next publish round writes, and when */
typedef struct {
    int publish_due;       /* the publish duty came while a round was in flight */
    int meta_due;          /* the next round writes the meta hash whatever is dirty */
    int heartbeat;         /* the round in flight is a heartbeat (pub_heartbeat) */
    double redis_stall_t0; /* clock_mono_s since which writes wait past ack_timeout_ms; 0 */
    double items_at;       /* clock_mono_s of the last round that wrote item vectors */
    struct event *now_ev;  /* a round started at once after a long one (sync_on_done) */
    uint32_t *dirty;       /* (dirty_cap) entries taken from a table for one round */
    size_t dirty_cap;
    /* ids gone from the tables (evicted, expired) whose vectors are to be
     * deleted from Redis: records of side (1 byte), length (2), id bytes */
    unsigned char *gone;
    size_t gone_len, gone_cap;
    char row_layout[128], dense_layout[512];
} sync_t;

/* checkpoint.c: the checkpoints on disk and the one being written */
typedef struct {
    char path[CONFIG_STR + 32], prev[CONFIG_STR + 40]; /* path[0] 0: no checkpoints */
    int waiting;         /* consuming held until the dead-letter copies in flight are delivered */
    ckpt_bg_t bg;        /* the checkpoint being written by a forked child */
    struct event *bg_ev; /* its report pipe */
    collapse_t *coll;    /* huge pages back after a child (NULL: none) */
    int coll_told;       /* that they cannot come back was logged */
    kafka_offset_t ck_off[KAFKA_MAX_OFFSETS]; /* what the checkpoint being written holds */
    int n_ck;
    kafka_offset_t resume[KAFKA_MAX_OFFSETS]; /* what a restored checkpoint held */
    int n_resume;
} checkpoint_t;

/* freshrecd.c: the cron's periodic duties (see cron()), each with the time
 * it runs next */
enum {
    CRON_PUBLISH,    /* a publish round: [redis] publish_interval_ms */
    CRON_KAFKA,      /* dead-letter reports and retries, a drain: 200 ms */
    CRON_SECOND,     /* negatives, Redis watch, systemd notify, expiry: 1 s */
    CRON_CHECKPOINT, /* a checkpoint: [daemon] checkpoint_interval_s */
    CRON_CKPT_WAIT,  /* while a checkpoint waits for dead-letter copies: 20 ms */
    CRON_STOP,       /* while stopping: is everything published? 10 ms */
    CRON_WINDOW,     /* a window record to the model log: [cluster] window_ms */
    CRON_DUTIES
};

typedef struct {
    struct event *ev;
    int tick_ms;              /* how often the cron runs */
    double now;               /* clock_mono_s of the tick being run */
    double next[CRON_DUTIES]; /* clock_mono_s when each duty is due */
    metrics_t *snap;          /* the systemd STATUS line's snapshot (40 KB) */
    uint64_t status_events;   /* events learned at the last STATUS */
    double status_t;
    int ready_sent; /* sd_notify READY=1 was sent */
} cron_t;

typedef struct cluster cluster_t; /* cluster.c */

typedef struct app {
    fr_config_t cfg;
    const char *config_path;
    char *overrides[MAX_OVERRIDES];
    int noverrides;
    int embedded;

    struct event_base *base;
    engine_t *eng; /* learns whichever model runs (engine.h) */
    modelcfg_t mc; /* the model, its fields and where each feature goes */
    join_t *join;
    pub_t *pub;
    kafka_t *kafka;
    stats_t *stats;
    event_kinds_t kinds;
    struct event *sig_term, *sig_int, *sig_hup;

    metrics_t m; /* counters; the learner's and Kafka's figures are added per snapshot */
    double t_start;
    int stopping;
    double stop_deadline;
    log_limit_t bad_log, kafka_log;

    ingest_t in;
    sync_t sync;
    checkpoint_t ck;
    cron_t cron;
    cluster_t *cl; /* NULL: no [cluster] model_topic, this daemon learns alone */
} app_t;

/* the tables whose rows are published: users and items */
static inline emb_table_t *users_table(app_t *a)
{
    return engine_table(a->eng, 0);
}
static inline emb_table_t *items_table(app_t *a)
{
    return engine_table(a->eng, 1);
}

/* ingest.c */
int ingest_init(app_t *a, char *err, size_t len);
/* [kafka] decode_thread: the helper that decodes ahead (a warning and the
 * loop thread decodes when it cannot start) */
void ingest_start_ahead(app_t *a);
void ingest_free(app_t *a);
void ingest_batch(void *arg, rd_kafka_message_t **msgs, size_t n); /* kafka_batch_fn */
void ingest_negatives(app_t *a);

/* sync.c */
int sync_init(app_t *a, char *err, size_t len);
void sync_free(app_t *a);
void sync_on_gone(void *arg, char side, const char *id, size_t len); /* engine_on_gone */
void sync_publish(app_t *a);                                         /* the cron's publish duty */
int sync_round(app_t *a);        /* a round now, if one is due (see sync_due) */
int sync_pending(app_t *a);      /* vectors left to publish, or a round in flight */
void sync_watch_redis(app_t *a); /* logs when writes go unconfirmed, and come back */
int sync_vector(void *arg, char side, const char *id, size_t len, float *out, int cap);

/* checkpoint.c */
int checkpoint_init(app_t *a, char *err, size_t len); /* and restore the newest */
void checkpoint_free(app_t *a);
void checkpoint_tick(app_t *a);      /* the cron's checkpoint duty */
void checkpoint_wait_tick(app_t *a); /* while it waits for dead-letter copies */
int checkpoint_final(app_t *a);

/* cluster.c: all of it does nothing without [cluster] model_topic (a->cl NULL) */
/* cluster_create before checkpoint_init (a member's checkpoint restores its
 * ledger), cluster_start after kafka_create */
int cluster_create(app_t *a, char *err, size_t len);
int cluster_start(app_t *a, char *err, size_t len);
int cluster_save(app_t *a, ser_writer_t *w); /* the CLUS checkpoint section */
int cluster_load(app_t *a, ser_reader_t *r, char *err, size_t len);
void cluster_forget(app_t *a); /* back to an empty ledger (a checkpoint refused) */
void cluster_free(app_t *a);   /* the last window produced; after kafka_close */
/* 1: the message is learned (its partition is this member's, and the
 * offset new), 0: skipped. Only with a->cl. */
int cluster_admit(app_t *a, const rd_kafka_message_t *m);
/* a window record, when window_max_events are in it: called where
 * everything admitted so far is learned (a micro-batch's end, a batch's) */
void cluster_after_learn(app_t *a);
void cluster_window(app_t *a);             /* a window record now (if anything was learned) */
void cluster_tick(app_t *a);               /* the cron's window duty, claims, delivery reports */
uint64_t cluster_position(const app_t *a); /* model-log records applied (versioned writes) */
void cluster_stats(app_t *a, metrics_t *out);

/* freshrecd.c */
void cron_after(app_t *a, int duty, double ms); /* the duty is due ms from now */

#endif
