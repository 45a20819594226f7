#include "backoff.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Longest wait a server can ask for with Retry-After: a misconfigured or hostile server
 * must not park the agent for weeks. */
#define CA_RETRY_AFTER_MAX_S 86400
/* Longest Retry-After value looked at: the longest date form is 29 characters. */
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

uint64_t backoff_next(struct ca_backoff *b)
{
        /* min(cap, base * 2^attempt) without computing base * 2^attempt: it fits under cap
         * exactly when base <= cap >> attempt, and past 63 doublings only base 0 fits. */
        uint64_t ceiling = b->cap_ms;
        if (b->attempt < 64 && b->base_ms <= (b->cap_ms >> b->attempt))
                ceiling = b->base_ms << b->attempt;
        else if (b->base_ms == 0)
                ceiling = 0;
        uint64_t r = b->random ? b->random(b->random_ctx) : default_random();
        if (b->attempt < UINT_MAX)
                b->attempt++;
        return draw(r, ceiling);
}

void backoff_reset(struct ca_backoff *b)
{
        b->attempt = 0;
}

uint64_t jitter_ms(uint64_t max_ms)
{
        return draw(default_random(), max_ms);
}

/* --- Retry-After (RFC 9110 §10.2.3, dates §5.6.7) --- */

static const char *const day_short[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const day_long[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"};
static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static bool lit(const char **p, const char *s)
{
        size_t n = strlen(s);
        if (strncmp(*p, s, n) != 0)
                return false;
        *p += n;
        return true;
}

static bool one_of(const char **p, const char *const *names, size_t count, int *index)
{
        for (size_t i = 0; i < count; i++) {
                if (lit(p, names[i])) {
                        *index = (int)i;
                        return true;
                }
        }
        return false;
}

static bool digits(const char **p, int count, int *out)
{
        int v = 0;
        for (int i = 0; i < count; i++) {
                char c = (*p)[i];
                if (c < '0' || c > '9')
                        return false;
                v = v * 10 + (c - '0');
        }
        *p += count;
        *out = v;
        return true;
}

static bool time_of_day(const char **p, int *h, int *m, int *s)
{
        return digits(p, 2, h) && lit(p, ":") && digits(p, 2, m) && lit(p, ":") && digits(p, 2, s);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil):
 * exact for every year we accept, and free of timegm's time zone and range quirks. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        int64_t yoe = y - era * 400;
        int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
        static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        return m == 2 && leap ? 29 : days[m - 1];
}

static int http_date_parse(const char *s, time_t now, int64_t *out)
{
        int wday, mon = -1, day = 0, year = 0, h = 0, mi = 0, sec = 0;
        const char *p = s;
        bool ok = false;

        if (one_of(&p, day_long, 7, &wday)) {
                /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
                int yy;
                ok = lit(&p, ", ") && digits(&p, 2, &day) && lit(&p, "-") &&
                     one_of(&p, month_names, 12, &mon) && lit(&p, "-") && digits(&p, 2, &yy) &&
                     lit(&p, " ") && time_of_day(&p, &h, &mi, &sec) && lit(&p, " GMT") &&
                     *p == '\0';
                if (ok) {
                        /* A two-digit year more than 50 years ahead is the last such year past. */
                        struct tm tm;
                        time_t t = now;
                        int this_year = gmtime_r(&t, &tm) ? tm.tm_year + 1900 : 1970;
                        year = this_year / 100 * 100 + yy;
                        if (year > this_year + 50)
                                year -= 100;
                }
        } else if (one_of(&p, day_short, 7, &wday)) {
                if (*p == ',') {
                        /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
                        ok = lit(&p, ", ") && digits(&p, 2, &day) && lit(&p, " ") &&
                             one_of(&p, month_names, 12, &mon) && lit(&p, " ") &&
                             digits(&p, 4, &year) && lit(&p, " ") &&
                             time_of_day(&p, &h, &mi, &sec) && lit(&p, " GMT") && *p == '\0';
                } else {
                        /* asctime: Sun Nov  6 08:49:37 1994 */
                        ok = lit(&p, " ") && one_of(&p, month_names, 12, &mon) && lit(&p, " ");
                        if (ok && *p == ' ')
                                ok = lit(&p, " ") && digits(&p, 1, &day);
                        else
                                ok = ok && digits(&p, 2, &day);
                        ok = ok && lit(&p, " ") && time_of_day(&p, &h, &mi, &sec) && lit(&p, " ") &&
                             digits(&p, 4, &year) && *p == '\0';
                }
        }
        if (!ok || day < 1 || day > days_in_month(year, mon + 1) || h > 23 || mi > 59 || sec > 60)
                return -EINVAL;
        *out = days_from_civil(year, mon + 1, day) * 86400 + h * 3600 + mi * 60 + sec;
        return 0;
}

int retry_after_parse(const char *value, time_t now, uint64_t *delay_ms)
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
        char buf[CA_RETRY_AFTER_MAX_LEN + 1];
        memcpy(buf, start, n);
        buf[n] = '\0';

        if (buf[0] >= '0' && buf[0] <= '9') {
                uint64_t s = 0;
                for (size_t i = 0; i < n; i++) {
                        if (buf[i] < '0' || buf[i] > '9')
                                return -EINVAL;
                        if (s < CA_RETRY_AFTER_MAX_S)
                                s = s * 10 + (uint64_t)(buf[i] - '0');
                }
                if (s > CA_RETRY_AFTER_MAX_S)
                        s = CA_RETRY_AFTER_MAX_S;
                *delay_ms = s * 1000;
                return 0;
        }
        int64_t when;
        if (http_date_parse(buf, now, &when) < 0)
                return -EINVAL;
        int64_t delta = when - (int64_t)now;
        if (delta < 0)
                delta = 0;
        if (delta > CA_RETRY_AFTER_MAX_S)
                delta = CA_RETRY_AFTER_MAX_S;
        *delay_ms = (uint64_t)delta * 1000;
        return 0;
}
