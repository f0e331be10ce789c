/* keys.c — Redis key schema and float32 encoding (see keys.h). */
#include "keys.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

size_t keys_vector(char *buf, size_t cap, const char *prefix, const char *model, char side,
                   const char *id, size_t idlen)
{
    /* "<prefix>:<model>:<side>:<id>", by copies: a publish round makes one
     * per key (snprintf was a tenth of a round's time) */
    size_t pl = strlen(prefix), ml = strlen(model), n = pl + ml + 4;
    if (n + idlen + 1 > cap)
        return 0;
    memcpy(buf, prefix, pl);
    buf[pl] = ':';
    memcpy(buf + pl + 1, model, ml);
    buf[pl + 1 + ml] = ':';
    buf[pl + 2 + ml] = side;
    buf[pl + 3 + ml] = ':';
    memcpy(buf + n, id, idlen);
    buf[n + idlen] = '\0';
    return n + idlen;
}

size_t keys_meta(char *buf, size_t cap, const char *prefix, const char *model)
{
    int n = snprintf(buf, cap, "%s:%s:meta", prefix, model);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

size_t keys_items(char *buf, size_t cap, const char *prefix, const char *model)
{
    int n = snprintf(buf, cap, "%s:%s:items", prefix, model);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

size_t keys_pattern(char *buf, size_t cap, const char *prefix, const char *model, char side)
{
    int n = snprintf(buf, cap, "%s:%s:%c:*", prefix, model, side);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

void keys_f32le_encode(unsigned char *out, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        out[4 * i] = (unsigned char)u;
        out[4 * i + 1] = (unsigned char)(u >> 8);
        out[4 * i + 2] = (unsigned char)(u >> 16);
        out[4 * i + 3] = (unsigned char)(u >> 24);
    }
}

void keys_f32le_decode(float *out, const unsigned char *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)in[4 * i] | (uint32_t)in[4 * i + 1] << 8 |
                     (uint32_t)in[4 * i + 2] << 16 | (uint32_t)in[4 * i + 3] << 24;
        memcpy(&out[i], &u, 4);
    }
}

/* CRC16-XMODEM, a byte at a time from a table made once */
static uint16_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (unsigned b = 0; b < 256; b++) {
        uint16_t c = (uint16_t)(b << 8);
        for (int k = 0; k < 8; k++)
            c = (uint16_t)(c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1);
        crc_table[b] = c;
    }
}

unsigned keys_slot(const char *key, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *k = (const unsigned char *)key;
    const unsigned char *open = memchr(k, '{', len);
    if (open) { /* a hash tag: what is between it and the next '}', if anything */
        size_t from = (size_t)(open - k) + 1;
        const unsigned char *close = memchr(k + from, '}', len - from);
        if (close && close > k + from) {
            len = (size_t)(close - (k + from));
            k += from;
        }
    }
    uint16_t c = 0;
    for (size_t i = 0; i < len; i++)
        c = (uint16_t)(c << 8) ^ crc_table[(c >> 8 ^ k[i]) & 0xff];
    return c & (KEYS_SLOTS - 1);
}
