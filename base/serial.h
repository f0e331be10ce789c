/* serial.h — how learner state is written to and read from a byte stream
 * (a checkpoint file, written by store/). Values are little-endian, as on
 * every machine freshrec builds for (x86-64, aarch64); a reader refuses a
 * stream that is short or whose sizes do not fit what it expects, so corrupt
 * input never causes an unbounded allocation. Not for: files (store/ckpt.c). */
#ifndef FR_SERIAL_H
#define FR_SERIAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int (*write)(void *ctx, const void *buf, size_t n); /* 0 or -1 */
    void *ctx;
    int err;
} ser_writer_t;

typedef struct {
    int (*read)(void *ctx, void *buf, size_t n); /* 0, or -1 when short */
    void *ctx;
    int err;
    uint64_t (*left)(void *ctx); /* bytes left in the stream; NULL: unknown */
} ser_reader_t;

/* Bytes left to read (UINT64_MAX when the stream cannot tell): loaders check
 * a count against it before they allocate for it. */
static inline uint64_t ser_left(const ser_reader_t *r)
{
    return r->left ? r->left(r->ctx) : UINT64_MAX;
}

static inline void ser_put(ser_writer_t *w, const void *buf, size_t n)
{
    if (!w->err && n && w->write(w->ctx, buf, n))
        w->err = 1;
}
static inline void ser_u32(ser_writer_t *w, uint32_t v)
{
    ser_put(w, &v, 4);
}
static inline void ser_u64(ser_writer_t *w, uint64_t v)
{
    ser_put(w, &v, 8);
}
static inline void ser_i64(ser_writer_t *w, int64_t v)
{
    ser_put(w, &v, 8);
}

static inline int ser_get(ser_reader_t *r, void *buf, size_t n)
{
    if (!r->err && n && r->read(r->ctx, buf, n))
        r->err = 1;
    return r->err ? -1 : 0;
}
static inline uint32_t ser_get_u32(ser_reader_t *r)
{
    uint32_t v = 0;
    ser_get(r, &v, 4);
    return v;
}
static inline uint64_t ser_get_u64(ser_reader_t *r)
{
    uint64_t v = 0;
    ser_get(r, &v, 8);
    return v;
}
static inline int64_t ser_get_i64(ser_reader_t *r)
{
    int64_t v = 0;
    ser_get(r, &v, 8);
    return v;
}

#endif
