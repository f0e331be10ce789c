/* id.c — id hashing with XXH3 (see id.h). */
#include "id.h"

#include <stdio.h>
#include <xxhash.h>

uint64_t id_hash(const char *id, size_t len)
{
    return (uint64_t)XXH3_64bits(id, len);
}

size_t id_from_int(int64_t v, char *buf)
{
    return (size_t)snprintf(buf, 21, "%lld", (long long)v);
}
