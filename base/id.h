/* id.h — how freshrec names users and items: an id is a byte string (an
 * integer id is its decimal text, so 42 and "42" are the same id), and its
 * 64-bit hash is XXH3-64 of those bytes (libxxhash). Not for: storage. */
#ifndef FR_ID_H
#define FR_ID_H

#include <stddef.h>
#include <stdint.h>

uint64_t id_hash(const char *id, size_t len);
/* Writes the decimal text of v into buf (≥ 21 bytes); returns its length. */
size_t id_from_int(int64_t v, char *buf);

#endif
