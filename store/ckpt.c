/* ckpt.c — durable, atomic, checksummed checkpoint files (see ckpt.h).
 *
 *   "FRCKPT\0\1" (8) | version u32 | payload … | payload length u64 | XXH3-64 u64 */
#define _POSIX_C_SOURCE 200809L
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

static const char MAGIC[8] = {'F', 'R', 'C', 'K', 'P', 'T', 0, 1};

typedef struct {
    FILE *f;
    XXH3_state_t *h;
    uint64_t n;
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

int ckpt_write(const char *path, ckpt_save_fn save, void *arg, char *errstr, size_t len)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        snprintf(errstr, len, "checkpoint: path too long");
        return -1;
    }
    wctx_t c = {fopen(tmp, "wb"), XXH3_createState(), 0};
    const char *step = "open";
    int saved_errno = 0;
    if (!c.f || !c.h)
        goto fail;
    XXH3_64bits_reset(c.h);
    uint32_t version = CKPT_VERSION;
    step = "write";
    if (fwrite(MAGIC, 1, 8, c.f) != 8 || fwrite(&version, 4, 1, c.f) != 1)
        goto fail;
    ser_writer_t w = {file_write, &c, 0};
    errno = 0; /* a refusal of save's own is told apart from an I/O error */
    if (save(arg, &w) || w.err)
        goto fail;
    uint64_t trailer[2] = {c.n, XXH3_64bits_digest(c.h)};
    if (fwrite(trailer, 8, 2, c.f) != 2)
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

int ckpt_read(const char *path, ckpt_load_fn load, void *arg, char *errstr, size_t len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, len, "checkpoint: %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    XXH3_state_t *h = XXH3_createState();
    struct stat st;
    char magic[8];
    uint32_t version;
    uint64_t trailer[2];
    if (!h || fstat(fileno(f), &st) || st.st_size < 8 + 4 + 16 ||
        fread(magic, 1, 8, f) != 8 || memcmp(magic, MAGIC, 8)) {
        snprintf(errstr, len, "checkpoint: %s: not a freshrec checkpoint", path);
        goto out;
    }
    if (fread(&version, 4, 1, f) != 1 || version != CKPT_VERSION) {
        snprintf(errstr, len, "checkpoint: %s: format version %u, this build reads %u", path,
                 version, CKPT_VERSION);
        goto out;
    }
    uint64_t payload = (uint64_t)st.st_size - 8 - 4 - 16;
    if (fseeko(f, (off_t)(8 + 4 + payload), SEEK_SET) || fread(trailer, 8, 2, f) != 2 ||
        trailer[0] != payload) {
        snprintf(errstr, len, "checkpoint: %s: truncated or extended (length does not match)",
                 path);
        goto out;
    }
    /* the whole payload is verified before any of it is believed */
    XXH3_64bits_reset(h);
    fseeko(f, 8 + 4, SEEK_SET);
    char buf[65536];
    for (uint64_t left = payload; left;) {
        size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf);
        if (fread(buf, 1, n, f) != n) {
            snprintf(errstr, len, "checkpoint: %s: read error", path);
            goto out;
        }
        XXH3_64bits_update(h, buf, n);
        left -= n;
    }
    if (XXH3_64bits_digest(h) != trailer[1]) {
        snprintf(errstr, len, "checkpoint: %s: checksum mismatch (corrupt)", path);
        goto out;
    }
    fseeko(f, 8 + 4, SEEK_SET);
    rctx_t c = {f, payload};
    ser_reader_t r = {file_read, &c, 0, file_left};
    char why[256] = "";
    if (load(arg, &r, why, sizeof(why)) || r.err) {
        snprintf(errstr, len, "checkpoint: %s: %s", path, why[0] ? why : "short payload");
        goto out;
    }
    if (c.left) {
        snprintf(errstr, len, "checkpoint: %s: %llu bytes left unread", path,
                 (unsigned long long)c.left);
        goto out;
    }
    rc = 0;
out:
    if (h)
        XXH3_freeState(h);
    fclose(f);
    return rc;
}
