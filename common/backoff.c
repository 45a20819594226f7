/* SPDX-License-Identifier: Apache-2.0 */
#include "backoff.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Longest wait a server can ask for with Retry-After: a misconfigured or hostile server
 * must not park the agent for weeks. */
#define CA_RETRY_AFTER_MAX_S 86400
/* Longest Retry-After value looked at: the longest date form is 30 characters. */
#define CA_RETRY_AFTER_MAX_LEN 64

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 36))
#define CA_HAVE_ARC4RANDOM 1
#endif

/* Thread-safe without any state of ours: arc4random keeps a per-thread generator seeded
 * by the kernel; without it, getrandom is a system call per draw, which is cheap enough
 * for a draw per failure or per poll. */
static uint64_t default_random(void)
{
        uint64_t v = 0;
#ifdef CA_HAVE_ARC4RANDOM
        arc4random_buf(&v, sizeof(v));
#else
        unsigned char *p = (unsigned char *)&v;
        size_t got = 0;
        while (got < sizeof(v)) {
                ssize_t n = getrandom(p + got, sizeof(v) - got, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        break; /* never on Linux >= 3.17; a zero delay is the safe fallback */
                }
                got += (size_t)n;
        }
#endif
        return v;
}

/* Uniform in [0, max] up to a modulo bias of at most (max+1)/2^64, far below anything
 * that matters for delays in milliseconds. */
static uint64_t draw(uint64_t r, uint64_t max)
{
        return max == UINT64_MAX ? r : r % (max + 1);
}

void backoff_init(struct ca_backoff *b, uint64_t base_ms, uint64_t cap_ms)
{
        memset(b, 0, sizeof(*b));
        b->base_ms = base_ms;
        b->cap_ms = cap_ms;
}

/* min(cap, base * 2^attempt) without computing base * 2^attempt: it fits under cap
 * exactly when base <= cap >> attempt, and past 63 doublings only base 0 fits. */
static uint64_t ceiling_of(const struct ca_backoff *b)
{
        if (b->attempt < 64 && b->base_ms <= (b->cap_ms >> b->attempt))
                return b->base_ms << b->attempt;
        return b->base_ms == 0 ? 0 : b->cap_ms;
}

/* The next draw, and counts the failure. */
static uint64_t next_random(struct ca_backoff *b)
{
        uint64_t r = b->random ? b->random(b->random_ctx) : default_random();
        if (b->attempt < UINT_MAX)
                b->attempt++;
        return r;
}

uint64_t backoff_next(struct ca_backoff *b)
{
        uint64_t ceiling = ceiling_of(b);
        return draw(next_random(b), ceiling);
}

uint64_t backoff_next_spaced(struct ca_backoff *b)
{
        uint64_t ceiling = ceiling_of(b);
        uint64_t half = ceiling / 2;
        return half + draw(next_random(b), ceiling - half);
}

void backoff_reset(struct ca_backoff *b)
{
        b->attempt = 0;
}

uint64_t jitter_ms(uint64_t max_ms)
{
        return draw(default_random(), max_ms);
}

/* --- Retry-After (RFC 9110 §10.2.3) --- */

int retry_after_parse(const char *value, int64_t date_delta_s, uint64_t *delay_ms)
{
        if (!value)
                return -EINVAL;
        /* Optional whitespace around a field value is not part of it (RFC 9110 §5.5). */
        const char *start = value;
        while (*start == ' ' || *start == '\t')
                start++;
        size_t n = strlen(start);
        while (n > 0 && (start[n - 1] == ' ' || start[n - 1] == '\t' || start[n - 1] == '\r' ||
                         start[n - 1] == '\n'))
                n--;
        if (n == 0 || n > CA_RETRY_AFTER_MAX_LEN)
                return -EINVAL;

        if (start[0] >= '0' && start[0] <= '9') {
                /* delay-seconds: digits only. libcurl also takes "5s", "+5" or "1.5", and
                 * reads a number past its range as 0: not what a server means. */
                uint64_t s = 0;
                for (size_t i = 0; i < n; i++) {
                        if (start[i] < '0' || start[i] > '9')
                                return -EINVAL;
                        if (s < CA_RETRY_AFTER_MAX_S)
                                s = s * 10 + (uint64_t)(start[i] - '0');
                }
                *delay_ms = (s > CA_RETRY_AFTER_MAX_S ? CA_RETRY_AFTER_MAX_S : s) * 1000;
                return 0;
        }
        /* An HTTP-date starts with its day name; the date arithmetic is libcurl's. It says
         * 0 for what it cannot read, a negative delta for a date past. */
        if (!((start[0] >= 'A' && start[0] <= 'Z') || (start[0] >= 'a' && start[0] <= 'z')) ||
            date_delta_s == 0)
                return -EINVAL;
        int64_t delta = date_delta_s < 0 ? 0 : date_delta_s;
        *delay_ms = (uint64_t)(delta > CA_RETRY_AFTER_MAX_S ? CA_RETRY_AFTER_MAX_S : delta) * 1000;
        return 0;
}

uint64_t backoff_after(struct ca_backoff *b, long status, const char *retry_after,
                       int64_t retry_after_s, int *asked)
{
        uint64_t delay = backoff_next(b);
        uint64_t wanted;
        int taken = (status == 429 || status == 503) && retry_after &&
                    retry_after_parse(retry_after, retry_after_s, &wanted) == 0;
        if (taken)
                delay = wanted + jitter_ms(wanted / 10 + 100);
        if (asked)
                *asked = taken;
        return delay;
}
