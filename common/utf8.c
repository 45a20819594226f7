/* SPDX-License-Identifier: Apache-2.0 */
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

#define ELLIPSIS     "..."
#define ELLIPSIS_LEN 3

/* The length of the valid UTF-8 sequence at p (1..4), or 0 when the bytes there are not
 * one. p is NUL-terminated, and NUL is never a continuation byte, so reading stops at
 * the end. */
static size_t seq_len(const unsigned char *p)
{
        unsigned char c = p[0];
        if (c < 0x80)
                return 1;
#define CONT(b) ((b) >= 0x80 && (b) <= 0xbf)
        if (c >= 0xc2 && c <= 0xdf)
                return CONT(p[1]) ? 2 : 0;
        if (c >= 0xe0 && c <= 0xef) {
                unsigned char lo = c == 0xe0 ? 0xa0 : 0x80;
                unsigned char hi = c == 0xed ? 0x9f : 0xbf;
                return p[1] >= lo && p[1] <= hi && CONT(p[2]) ? 3 : 0;
        }
        if (c >= 0xf0 && c <= 0xf4) {
                unsigned char lo = c == 0xf0 ? 0x90 : 0x80;
                unsigned char hi = c == 0xf4 ? 0x8f : 0xbf;
                return p[1] >= lo && p[1] <= hi && CONT(p[2]) && CONT(p[3]) ? 4 : 0;
        }
#undef CONT
        return 0;
}

int utf8_valid(const char *s)
{
        const unsigned char *p = (const unsigned char *)s;
        for (size_t n; *p; p += n)
                if (!(n = seq_len(p)))
                        return 0;
        return 1;
}

size_t utf8_copy(char *dst, size_t size, const char *src)
{
        static const unsigned char replacement[3] = {0xef, 0xbf, 0xbd};
        if (size == 0)
                return 0;
        const size_t cap = size - 1;
        const size_t dots = cap >= ELLIPSIS_LEN ? ELLIPSIS_LEN : 0;
        const unsigned char *p = (const unsigned char *)src;
        size_t n = 0;
        size_t room_for_dots = (size_t)-1; /* where "..." goes if the text turns out too long */
        while (*p) {
                size_t adv = seq_len(p);
                const unsigned char *unit = adv ? p : replacement;
                size_t ul = adv ? adv : sizeof(replacement);
                if (room_for_dots == (size_t)-1 && n + ul > cap - dots)
                        room_for_dots = n;
                if (n + ul > cap) {
                        n = room_for_dots;
                        memcpy(dst + n, ELLIPSIS, dots);
                        n += dots;
                        break;
                }
                memcpy(dst + n, unit, ul);
                n += ul;
                p += adv ? adv : 1;
        }
        dst[n] = '\0';
        return n;
}

char *utf8_dup(const char *src, size_t cap)
{
        char *out = malloc(cap + 1);
        if (out)
                utf8_copy(out, cap + 1, src);
        return out;
}
