/* ckpt.c — durable, atomic checkpoint files of tagged, versioned,
 * checksummed sections, written in place or by a forked child on a
 * copy-on-write snapshot (see ckpt.h for the layout).
 * Not for: what the payloads hold (their save and load callbacks). */
#define _POSIX_C_SOURCE 200809L
#include "ckpt.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

static const char MAGIC[8] = {'F', 'R', 'C', 'K', 'P', 'T', 0, 1};
static const char END_TAG[4] = {'E', 'N', 'D', ' '};

#define HDR_BYTES (8 + 4)                     /* magic, format version */
#define SEC_HEAD (4 + 4 + 8)                  /* tag, version, payload length */
#define SEC_BYTES(len) (SEC_HEAD + (len) + 8) /* ... and its checksum */

#define CKPT_BG_NICE 10 /* the writer child's nice value above the caller's */

typedef struct {
    FILE *f;
    XXH3_state_t *h; /* the open section's checksum */
    uint64_t n;      /* the open section's payload bytes so far */
} wctx_t;

static int file_write(void *ctx, const void *buf, size_t n)
{
    wctx_t *c = ctx;
    if (fwrite(buf, 1, n, c->f) != n)
        return -1;
    XXH3_64bits_update(c->h, buf, n);
    c->n += n;
    return 0;
}

static int fsync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* the writer's temporary file: path.tmp.<its pid> */
static int tmp_name(char *buf, size_t n, const char *path, pid_t pid)
{
    return snprintf(buf, n, "%s.tmp.%ld", path, (long)pid) < (int)n ? 0 : -1;
}

/* A tag as text for a message: its 4 characters, or its bytes in hex when
 * some are not printable (a corrupt tag). */
static const char *tag_text(char out[16], const char tag[4])
{
    int printable = 1;
    for (int i = 0; i < 4; i++)
        printable &= isprint((unsigned char)tag[i]) && tag[i] != '"';
    if (printable)
        snprintf(out, 16, "%.4s", tag);
    else
        snprintf(out, 16, "0x%02x%02x%02x%02x", (unsigned char)tag[0], (unsigned char)tag[1],
                 (unsigned char)tag[2], (unsigned char)tag[3]);
    return out;
}

/* One section: its head with a length patched in once the payload is out,
 * then its checksum. save NULL: an empty payload (END). 0, or -1 (errno set
 * on an I/O error, 0 when save refused). */
static int write_section(wctx_t *c, const char tag[4], uint32_t version, ckpt_save_fn save,
                         void *arg)
{
    off_t at = ftello(c->f);
    uint64_t zero = 0;
    if (at < 0 || fwrite(tag, 1, 4, c->f) != 4 || fwrite(&version, 4, 1, c->f) != 1 ||
        fwrite(&zero, 8, 1, c->f) != 1)
        return -1;
    XXH3_64bits_reset(c->h);
    XXH3_64bits_update(c->h, tag, 4);
    XXH3_64bits_update(c->h, &version, 4);
    c->n = 0;
    if (save) {
        ser_writer_t w = {file_write, c, 0};
        errno = 0; /* a refusal of save's own is told apart from an I/O error */
        if (save(arg, &w) || w.err)
            return -1;
    }
    uint64_t n = c->n;
    XXH3_64bits_update(c->h, &n, 8);
    uint64_t sum = XXH3_64bits_digest(c->h);
    if (fseeko(c->f, at + 8, SEEK_SET) || fwrite(&n, 8, 1, c->f) != 1 ||
        fseeko(c->f, 0, SEEK_END) || fwrite(&sum, 8, 1, c->f) != 1)
        return -1;
    return 0;
}

int ckpt_write(const char *path, const ckpt_section_t *sections, int n, void *arg, char *errstr,
               size_t len)
{
    char tmp[4096];
    if (tmp_name(tmp, sizeof(tmp), path, getpid())) {
        snprintf(errstr, len, "checkpoint: path too long");
        return -1;
    }
    if (n < 0 || n > CKPT_MAX_SECTIONS) {
        snprintf(errstr, len, "checkpoint: %d sections (at most %d)", n, CKPT_MAX_SECTIONS);
        return -1;
    }
    wctx_t c = {fopen(tmp, "wb"), XXH3_createState(), 0};
    const char *step = "open";
    int saved_errno = 0;
    if (!c.f || !c.h)
        goto fail;
    uint32_t version = CKPT_VERSION;
    step = "write";
    errno = 0;
    if (fwrite(MAGIC, 1, 8, c.f) != 8 || fwrite(&version, 4, 1, c.f) != 1)
        goto fail;
    for (int i = 0; i < n; i++)
        if (write_section(&c, sections[i].tag, sections[i].version, sections[i].save, arg))
            goto fail;
    if (write_section(&c, END_TAG, 1, NULL, NULL))
        goto fail;
    step = "flush";
    if (fflush(c.f))
        goto fail;
    step = "fsync";
    if (fsync(fileno(c.f)))
        goto fail;
    step = "close";
    FILE *f = c.f;
    c.f = NULL;
    if (fclose(f))
        goto fail;
    step = "rename";
    if (rename(tmp, path))
        goto fail;
    XXH3_freeState(c.h);
    if (fsync_dir(path)) {
        snprintf(errstr, len, "checkpoint: %s written, but fsync of its directory: %s", path,
                 strerror(errno));
        return -1;
    }
    return 0;
fail:
    saved_errno = errno;
    if (c.f)
        fclose(c.f);
    unlink(tmp);
    if (c.h)
        XXH3_freeState(c.h);
    snprintf(errstr, len, "checkpoint: %s of %s failed: %s", step, tmp,
             saved_errno ? strerror(saved_errno) : "the state could not be serialised");
    return -1;
}

typedef struct {
    FILE *f;
    uint64_t left;
} rctx_t;

static uint64_t file_left(void *ctx)
{
    return ((rctx_t *)ctx)->left;
}

static int file_read(void *ctx, void *buf, size_t n)
{
    rctx_t *c = ctx;
    if (n > c->left || fread(buf, 1, n, c->f) != n)
        return -1;
    c->left -= n;
    return 0;
}

/* what the first pass found of one section */
typedef struct {
    int kind; /* index into the caller's table */
    uint32_t version;
    off_t payload_at;
    uint64_t len;
} found_t;

/* "LRNR, OFFS, ..." */
static void tag_list(char *out, size_t n, const ckpt_section_t *s, int ns)
{
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; i < ns && at < n; i++)
        at += (size_t)snprintf(out + at, n - at, "%s%.4s", i ? ", " : "", s[i].tag);
}

/* The first pass: every section's head, place and checksum, before any
 * payload is believed. 0 with found[] in file order, or -1 and a message. */
static int check_sections(FILE *f, uint64_t size, const char *path, const ckpt_section_t *s, int ns,
                          found_t *found, int *nfound, XXH3_state_t *h, char *errstr, size_t len)
{
    char t[16];
    uint64_t at = HDR_BYTES;
    int seen[CKPT_MAX_SECTIONS] = {0};
    *nfound = 0;
    for (;;) {
        char tag[4];
        uint32_t version;
        uint64_t plen;
        if (size - at < SEC_BYTES(0) || fseeko(f, (off_t)at, SEEK_SET) ||
            fread(tag, 1, 4, f) != 4 || fread(&version, 4, 1, f) != 1 ||
            fread(&plen, 8, 1, f) != 1) {
            snprintf(errstr, len, "checkpoint %s: truncated (no END section after %d sections)",
                     path, *nfound);
            return -1;
        }
        if (plen > size - at - SEC_BYTES(0)) {
            snprintf(errstr, len,
                     "checkpoint %s: section %s at byte %llu: length %llu past the end of the "
                     "file (truncated or corrupt)",
                     path, tag_text(t, tag), (unsigned long long)at, (unsigned long long)plen);
            return -1;
        }
        /* the checksum first: a corrupt head is reported as corrupt, not as a
         * section this build happens not to know */
        XXH3_64bits_reset(h);
        XXH3_64bits_update(h, tag, 4);
        XXH3_64bits_update(h, &version, 4);
        char buf[65536];
        for (uint64_t left = plen; left;) {
            size_t k = left < sizeof(buf) ? (size_t)left : sizeof(buf);
            if (fread(buf, 1, k, f) != k) {
                snprintf(errstr, len, "checkpoint %s: read error", path);
                return -1;
            }
            XXH3_64bits_update(h, buf, k);
            left -= k;
        }
        XXH3_64bits_update(h, &plen, 8);
        uint64_t sum;
        if (fread(&sum, 8, 1, f) != 1 || sum != XXH3_64bits_digest(h)) {
            snprintf(errstr, len,
                     "checkpoint %s: section %s at byte %llu: checksum mismatch (corrupt)", path,
                     tag_text(t, tag), (unsigned long long)at);
            return -1;
        }
        uint64_t next = at + SEC_BYTES(plen);
        if (memcmp(tag, END_TAG, 4) == 0) {
            if (version != 1 || plen != 0 || next != size) {
                snprintf(errstr, len,
                         "checkpoint %s: END section version %u, %llu bytes after it (this build "
                         "reads version 1, nothing after)",
                         path, version, (unsigned long long)(size - next));
                return -1;
            }
            break;
        }
        int k = 0;
        while (k < ns && memcmp(s[k].tag, tag, 4) != 0)
            k++;
        char all[CKPT_MAX_SECTIONS * 6 + 1];
        if (k == ns) {
            tag_list(all, sizeof(all), s, ns);
            snprintf(errstr, len, "checkpoint %s: unknown section %s (this build reads %s)", path,
                     tag_text(t, tag), all);
            return -1;
        }
        if (version < s[k].min_version || version > s[k].version) {
            if (s[k].min_version == s[k].version)
                snprintf(errstr, len,
                         "checkpoint %s: section %.4s version %u unsupported (this build reads %u)",
                         path, s[k].tag, version, s[k].version);
            else
                snprintf(errstr, len,
                         "checkpoint %s: section %.4s version %u unsupported (this build reads "
                         "%u–%u)",
                         path, s[k].tag, version, s[k].min_version, s[k].version);
            return -1;
        }
        if (seen[k]++) {
            snprintf(errstr, len, "checkpoint %s: section %.4s twice", path, s[k].tag);
            return -1;
        }
        found[*nfound] = (found_t){k, version, (off_t)(at + SEC_HEAD), plen};
        ++*nfound;
        at = next;
    }
    for (int k = 0; k < ns; k++)
        if (!seen[k]) {
            snprintf(errstr, len, "checkpoint %s: no %.4s section", path, s[k].tag);
            return -1;
        }
    return 0;
}

int ckpt_read(const char *path, const ckpt_section_t *sections, int n, void *arg, char *errstr,
              size_t len)
{
    if (n < 0 || n > CKPT_MAX_SECTIONS) {
        snprintf(errstr, len, "checkpoint: %d sections (at most %d)", n, CKPT_MAX_SECTIONS);
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, len, "checkpoint %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    XXH3_state_t *h = XXH3_createState();
    struct stat st;
    char magic[8];
    uint32_t version = 0;
    if (!h || fstat(fileno(f), &st) || st.st_size < HDR_BYTES || fread(magic, 1, 8, f) != 8 ||
        memcmp(magic, MAGIC, 8)) {
        snprintf(errstr, len, "checkpoint %s: not a freshrec checkpoint", path);
        goto out;
    }
    if (fread(&version, 4, 1, f) != 1 || version != CKPT_VERSION) {
        snprintf(errstr, len,
                 "checkpoint %s: format version %u unsupported (this build reads %u%s)", path,
                 version, CKPT_VERSION,
                 version == 1 ? "; version 1 is the unsectioned format of before: "
                                "start without it, from Kafka's committed offsets"
                              : "");
        goto out;
    }
    found_t found[CKPT_MAX_SECTIONS];
    int nfound;
    if (check_sections(f, (uint64_t)st.st_size, path, sections, n, found, &nfound, h, errstr, len))
        goto out;
    for (int i = 0; i < nfound; i++) {
        const ckpt_section_t *s = &sections[found[i].kind];
        rctx_t c = {f, found[i].len};
        ser_reader_t r = {file_read, &c, 0, file_left};
        char why[256] = "";
        if (fseeko(f, found[i].payload_at, SEEK_SET) ||
            s->load(arg, &r, found[i].version, why, sizeof(why)) || r.err) {
            snprintf(errstr, len, "checkpoint %s: section %.4s: %s", path, s->tag,
                     why[0] ? why : "short payload");
            goto out;
        }
        if (c.left) {
            snprintf(errstr, len, "checkpoint %s: section %.4s: %llu bytes left unread", path,
                     s->tag, (unsigned long long)c.left);
            goto out;
        }
    }
    rc = 0;
out:
    if (h)
        XXH3_freeState(h);
    fclose(f);
    return rc;
}

int ckpt_remove_stale(const char *path)
{
    char *d = strdup(path), *b = strdup(path);
    int n = 0;
    DIR *dir = d && b ? opendir(dirname(d)) : NULL;
    if (dir) {
        char prefix[4096], full[8192];
        snprintf(prefix, sizeof(prefix), "%s.tmp.", basename(b));
        size_t pl = strlen(prefix);
        for (struct dirent *e; (e = readdir(dir)) != NULL;)
            if (strncmp(e->d_name, prefix, pl) == 0 &&
                snprintf(full, sizeof(full), "%s/%s", d, e->d_name) < (int)sizeof(full) &&
                unlink(full) == 0)
                n++;
        closedir(dir);
    }
    free(d);
    free(b);
    return n;
}

/* ------------------------------------------------------- in the background */

/* What the child tells the parent: one write, smaller than PIPE_BUF, so it
 * arrives whole or not at all. */
typedef struct {
    int32_t rc;     /* 0: durable */
    double write_s; /* the child's own time: keep prev, write, fsyncs */
    char note[256]; /* a warning (the previous file could not be kept) */
    char err[512];  /* ckpt_write's message when rc is -1 */
} bg_report_t;
_Static_assert(sizeof(bg_report_t) <= sizeof(((ckpt_bg_t *)0)->report), "report buffer");
_Static_assert(sizeof(bg_report_t) <= 4096, "a report is written at once (PIPE_BUF)");

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ckpt_bg_init(ckpt_bg_t *bg)
{
    memset(bg, 0, sizeof(*bg));
    bg->fd = -1;
}

/* The child: never returns. Only memory is serialised here; the caller's
 * sockets, locks and threads (which did not survive the fork) are left alone.
 * malloc and stdio, which ckpt_write uses, are fork-safe in glibc: it holds
 * their locks across fork() and resets them in the child. */
static void bg_child(int wfd, pid_t parent, const char *path, const char *prev,
                     const ckpt_section_t *sections, int n, void *arg)
{
    /* dies with the caller: no orphan renames or writes beside a restarted daemon */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(3);
    /* the caller's handlers (libevent's) would report our signals as its own */
    struct sigaction dfl = {.sa_handler = SIG_DFL}, ign = {.sa_handler = SIG_IGN};
    sigaction(SIGTERM, &dfl, NULL);
    sigaction(SIGINT, &dfl, NULL);
    sigaction(SIGHUP, &dfl, NULL);
    sigaction(SIGPIPE, &ign, NULL);
    /* background work: where it shares a core with the loop, the loop first */
    errno = 0;
    int prio = getpriority(PRIO_PROCESS, 0);
    if (errno == 0)
        setpriority(PRIO_PROCESS, 0, prio + CKPT_BG_NICE > 19 ? 19 : prio + CKPT_BG_NICE);
    bg_report_t rep;
    memset(&rep, 0, sizeof(rep));
    double t0 = mono_s();
    if (prev && rename(path, prev) && errno != ENOENT)
        snprintf(rep.note, sizeof(rep.note), "cannot keep the previous checkpoint as %s: %s", prev,
                 strerror(errno));
    rep.rc = ckpt_write(path, sections, n, arg, rep.err, sizeof(rep.err));
    rep.write_s = mono_s() - t0;
    ssize_t sent;
    do
        sent = write(wfd, &rep, sizeof(rep));
    while (sent < 0 && errno == EINTR);
    _exit(rep.rc == 0 && sent == (ssize_t)sizeof(rep) ? 0 : 1);
}

int ckpt_bg_start(ckpt_bg_t *bg, const char *path, const char *prev_path,
                  const ckpt_section_t *sections, int n, void *arg, char *errstr, size_t len)
{
    if (bg->pid > 0) {
        snprintf(errstr, len, "checkpoint: a background write (pid %ld) is still running",
                 (long)bg->pid);
        return -1;
    }
    double t0 = mono_s();
    int p[2];
    if (pipe(p)) {
        snprintf(errstr, len, "checkpoint: pipe: %s", strerror(errno));
        return -1;
    }
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        snprintf(errstr, len, "checkpoint: fork: %s", strerror(e));
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        bg_child(p[1], parent, path, prev_path, sections, n, arg);
    }
    close(p[1]);
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
    bg->pid = pid;
    bg->fd = p[0];
    bg->got = 0;
    bg->write_s = 0;
    bg->note[0] = '\0';
    if (tmp_name(bg->tmp, sizeof(bg->tmp), path, pid))
        bg->tmp[0] = '\0'; /* the child refuses such a path before it creates anything */
    bg->stall_s = mono_s() - t0;
    return 0;
}

int ckpt_bg_finish(ckpt_bg_t *bg, char *errstr, size_t len)
{
    if (bg->pid <= 0) {
        snprintf(errstr, len, "checkpoint: no background write is running");
        return -1;
    }
    /* the report, then the end of the pipe: the child has exited */
    for (;;) {
        unsigned char sink[64];
        int want_report = bg->got < sizeof(bg_report_t);
        ssize_t n = want_report ? read(bg->fd, bg->report + bg->got, sizeof(bg_report_t) - bg->got)
                                : read(bg->fd, sink, sizeof(sink));
        if (n > 0) {
            if (want_report)
                bg->got += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 1;
        break; /* a read error: reap it all the same */
    }
    close(bg->fd);
    bg->fd = -1;
    pid_t pid = bg->pid;
    bg->pid = 0;
    int st = 0;
    pid_t r;
    do /* this child only; it has exited, so this does not wait */
        r = waitpid(pid, &st, 0);
    while (r < 0 && errno == EINTR);
    int wait_errno = errno;
    if (bg->got == sizeof(bg_report_t)) {
        bg_report_t rep;
        memcpy(&rep, bg->report, sizeof(rep));
        rep.note[sizeof(rep.note) - 1] = rep.err[sizeof(rep.err) - 1] = '\0';
        bg->write_s = rep.write_s;
        snprintf(bg->note, sizeof(bg->note), "%s", rep.note);
        bg->tmp[0] = '\0';
        if (rep.rc) {
            snprintf(errstr, len, "%s", rep.err);
            return -1;
        }
        return 0; /* durable: renamed and its directory synced before the report */
    }
    /* no report: it died part way (a signal, or something beyond us) */
    if (bg->tmp[0])
        unlink(bg->tmp);
    bg->tmp[0] = '\0';
    if (r == pid && WIFSIGNALED(st))
        snprintf(errstr, len, "checkpoint: the writer (pid %ld) was killed by signal %d", (long)pid,
                 WTERMSIG(st));
    else if (r == pid && WIFEXITED(st))
        snprintf(errstr, len, "checkpoint: the writer (pid %ld) exited with status %d, no report",
                 (long)pid, WEXITSTATUS(st));
    else
        snprintf(errstr, len, "checkpoint: the writer (pid %ld) gave no report (waitpid: %s)",
                 (long)pid, r < 0 ? strerror(wait_errno) : "?");
    return -1;
}

int ckpt_bg_wait(ckpt_bg_t *bg, char *errstr, size_t len)
{
    int rc;
    while ((rc = ckpt_bg_finish(bg, errstr, len)) == 1) {
        struct pollfd p = {.fd = bg->fd, .events = POLLIN};
        poll(&p, 1, -1);
    }
    return rc;
}
