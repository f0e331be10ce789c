/* ckpt.h — checkpoint files made of tagged, length-prefixed, versioned
 * sections:
 *
 *   file    = "FRCKPT\0\1" (8) | format version u32 (2) | section … | END section
 *   section = tag (4 chars) | version u32 | payload length u64 | payload | XXH3-64 u64
 *             (the checksum covers tag, version, payload and length)
 *   END     = "END " | 1 | 0 | checksum: the file is whole up to here, nothing follows
 *
 * A reader skips nothing silently: a file of another format version, a
 * section whose tag the caller's table does not list, one of a version the
 * table does not read, a duplicate, a missing one, a short or corrupt one, or
 * bytes past END are refused with a message naming what was found and what
 * this build reads; no load callback runs before every section's checksum has
 * been verified. Written durably and atomically (temporary file → write →
 * fflush → fsync → close → rename → fsync of the directory; the temporary
 * file is unlinked on any failure), so the previous checkpoint stays until
 * the new one is whole.
 *
 * A checkpoint can also be written in the background (ckpt_bg_*): fork()
 * gives a child a copy-on-write snapshot of the whole process, the child
 * writes it with ckpt_write and exits, and the caller's loop goes on at once;
 * it stalls only for the fork (copying the page tables), as Redis's BGSAVE.
 * Not for: what is in a payload (the learner serialises itself,
 * base/serial.h), nor watching the child (the caller polls ckpt_bg_t.fd,
 * e.g. with libevent, and calls ckpt_bg_finish whenever it is readable). */
#ifndef FR_CKPT_H
#define FR_CKPT_H

#include "serial.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CKPT_VERSION 2 /* the file format: sections (1 was one unsectioned payload) */
#define CKPT_MAX_SECTIONS 16

/* Writes one section's payload: 0, or -1 (or w->err set) to abandon the file. */
typedef int (*ckpt_save_fn)(void *arg, ser_writer_t *w);
/* Reads one section's payload, written at `version` (within the table's
 * min_version..version); r holds exactly the payload: 0, or -1 with a message. */
typedef int (*ckpt_load_fn)(void *arg, ser_reader_t *r, uint32_t version, char *errstr, size_t len);

/* One kind of section: the caller's table lists every section a file holds,
 * in the order they are written (and loaded). */
typedef struct {
    char tag[5];          /* 4 characters, e.g. "LRNR" */
    uint32_t version;     /* the version written, the newest read */
    uint32_t min_version; /* the oldest read */
    ckpt_save_fn save;
    ckpt_load_fn load;
} ckpt_section_t;

/* 0, or -1 with a message (the file at path is then what it was before).
 * Writes every section of the table (n ≤ CKPT_MAX_SECTIONS), in its order. */
int ckpt_write(const char *path, const ckpt_section_t *sections, int n, void *arg, char *errstr,
               size_t len);
/* 0, or -1 with a message: missing, not a checkpoint, another format
 * version, an unknown, unsupported, duplicate or missing section, truncated,
 * checksum mismatch, or a load callback's own error, or a payload its
 * callback did not read to its end. Every section of the table must be in
 * the file, each once. */
int ckpt_read(const char *path, const ckpt_section_t *sections, int n, void *arg, char *errstr,
              size_t len);

/* Removes temporary files that writers killed part way left beside path
 * (path.tmp.<pid>); only one process may write checkpoints to path. Returns
 * how many it removed. */
int ckpt_remove_stale(const char *path);

/* One background writer at a time. */
typedef struct {
    pid_t pid;      /* the writer child; 0 when none runs */
    int fd;         /* read end of its report pipe (non-blocking), -1 when none */
    double stall_s; /* set by ckpt_bg_start: how long it held the caller (pipe + fork) */
    double write_s; /* set by ckpt_bg_finish: the child's time to keep prev and write */
    char note[256]; /* set by ckpt_bg_finish: a warning from the child, or "" */
    /* ckpt.c's own */
    char tmp[4096];             /* the child's temporary file, removed if it dies part way */
    size_t got;                 /* bytes of its report read so far */
    unsigned char report[1024]; /* its report */
} ckpt_bg_t;

void ckpt_bg_init(ckpt_bg_t *bg);
static inline int ckpt_bg_running(const ckpt_bg_t *bg)
{
    return bg->pid > 0;
}

/* Forks a child that renames path to prev_path (when prev_path is not NULL
 * and path exists; a refusal is only a note), writes the checkpoint with
 * ckpt_write(path, sections, n, arg), reports through a pipe and _exits: it never
 * returns into the caller's code, runs no atexit handler and flushes no
 * stdio buffer of the caller's. The save callbacks run in the child on a
 * copy-on-write snapshot of memory taken at the fork: they must only
 * serialise memory (no locks other threads may have held, no sockets, no
 * librdkafka). The child
 * takes SIGTERM, SIGINT and SIGHUP with their default action (it is then
 * reported as killed), ignores SIGPIPE, runs at a nice value 10 above the
 * caller's (the caller first, where they share a core), and is killed if
 * the caller's thread exits first (PR_SET_PDEATHSIG), so no orphan writes
 * after a crash.
 * Returns at once: 0 with bg->pid, bg->fd and bg->stall_s set, or -1 and a
 * message (a writer already runs, or pipe or fork failed: nothing was
 * written, the caller may write synchronously). */
int ckpt_bg_start(ckpt_bg_t *bg, const char *path, const char *prev_path,
                  const ckpt_section_t *sections, int n, void *arg, char *errstr, size_t len);
/* Never blocks: call it whenever bg->fd is readable. 1: the writer is not
 * done yet (its report may have come, but it has not exited: the end of
 * the pipe comes after the kernel has torn down its copy of the address
 * space, which waitpid would otherwise wait for). Else reaps the writer
 * (waitpid on its pid only: other children are not ours to reap), closes
 * bg->fd and returns 0 when the checkpoint is durable, or -1 and the child's
 * message (or how it died; its temporary file is then removed). bg is then
 * free for the next ckpt_bg_start. */
int ckpt_bg_finish(ckpt_bg_t *bg, char *errstr, size_t len);
/* Waits until the writer is done, then as ckpt_bg_finish (0 or -1): the wait
 * at shutdown. */
int ckpt_bg_wait(ckpt_bg_t *bg, char *errstr, size_t len);

#endif
