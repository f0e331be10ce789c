/* ckpt.h — checkpoint files: a magic number and format version, the payload
 * that a save callback streams, then the payload's length and XXH3-64
 * checksum. Written durably and atomically (temporary file → write → fflush
 * → fsync → close → rename → fsync of the directory; the temporary file is
 * unlinked on any failure), so the previous checkpoint stays until the new
 * one is whole. Read back only after the checksum over the whole payload has
 * been verified. Not for: what is in the payload (the learner serialises
 * itself, learner/serial.h). */
#ifndef FR_CKPT_H
#define FR_CKPT_H

#include "serial.h"

#include <stddef.h>
#include <stdint.h>

#define CKPT_VERSION 1

typedef int (*ckpt_save_fn)(void *arg, ser_writer_t *w);
typedef int (*ckpt_load_fn)(void *arg, ser_reader_t *r, char *errstr, size_t len);

/* 0, or -1 with a message (the file at path is then what it was before). */
int ckpt_write(const char *path, ckpt_save_fn save, void *arg, char *errstr, size_t len);
/* 0, or -1 with a message: missing, not a checkpoint, another version,
 * truncated, checksum mismatch, or the load callback's own error, or a
 * payload the callback did not read to its end. */
int ckpt_read(const char *path, ckpt_load_fn load, void *arg, char *errstr, size_t len);

#endif
