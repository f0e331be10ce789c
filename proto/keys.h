/* keys.h — the Redis key schema and vector encoding (proto/README.md):
 *
 *   <prefix>:<model>:u:<user id>   user vector, little-endian float32 × dim
 *   <prefix>:<model>:i:<item id>   item vector, the same
 *   <prefix>:<model>:meta          hash: kind, dim, layout, version,
 *                                  updated_ms, and the dense weights
 *   <prefix>:<model>:items         sorted set: the item ids with a vector,
 *                                  scored by their last write (ms)
 * Not for: talking to Redis (store/). */
#ifndef FR_KEYS_H
#define FR_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define KEYS_DEFAULT_PREFIX "fr"

/* side is 'u' or 'i'. Returns the key length, or 0 when cap is too small. */
size_t keys_vector(char *buf, size_t cap, const char *prefix, const char *model, char side,
                   const char *id, size_t idlen);
size_t keys_meta(char *buf, size_t cap, const char *prefix, const char *model);
size_t keys_items(char *buf, size_t cap, const char *prefix, const char *model);
/* Match pattern for every vector of one side: "<prefix>:<model>:<side>:*". */
size_t keys_pattern(char *buf, size_t cap, const char *prefix, const char *model, char side);

/* Redis Cluster's hash slot of a key (0..16383): CRC16 (XMODEM: polynomial
 * 0x1021, initial 0) of the key, or of its hash tag, the bytes between the
 * first '{' and the next '}' when there are any, modulo 16384. Every key of
 * the schema above has its own slot: no hash tags, so vectors spread over
 * every slot. */
#define KEYS_SLOTS 16384
unsigned keys_slot(const char *key, size_t len);

/* n floats ↔ 4n bytes, little-endian IEEE-754 whatever the host order. */
void keys_f32le_encode(unsigned char *out, const float *v, size_t n);
void keys_f32le_decode(float *out, const unsigned char *in, size_t n);

#endif
