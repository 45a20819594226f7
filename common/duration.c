/* SPDX-License-Identifier: Apache-2.0 */
/* Numbers, durations and sizes as written in the configuration: digits and at most one
 * unit, nothing else. Signs, spaces, fractions and overflow are refused rather than
 * guessed at. parse_digits is the configuration's one integer reader. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

/* Reads the leading decimal digits of text into *value; returns where they end, or
 * NULL when there are none or they overflow. */
static const char *parse_digits(const char *text, uint64_t *value)
{
        uint64_t v = 0;
        const char *p = text;
        while (*p >= '0' && *p <= '9') {
                unsigned d = (unsigned)(*p - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return NULL;
                v = v * 10 + d;
                p++;
        }
        if (p == text)
                return NULL;
        *value = v;
        return p;
}

static int scale(uint64_t value, uint64_t factor, uint64_t *out)
{
        if (factor && value > UINT64_MAX / factor)
                return -ERANGE;
        *out = value * factor;
        return 0;
}

int config_parse_uint(const char *text, uint64_t *out)
{
        uint64_t v;
        if (!text || !out)
                return -EINVAL;
        const char *end = parse_digits(text, &v);
        if (!end || *end)
                return -EINVAL;
        *out = v;
        return 0;
}

int config_parse_duration(const char *text, uint64_t *ms_out)
{
        static const struct {
                const char *unit;
                uint64_t ms;
        } units[] = {
            {"", 1000},       {"ms", 1},          {"s", 1000},
            {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 24 * 3600 * 1000},
        };
        uint64_t v;
        if (!text || !ms_out)
                return -EINVAL;
        const char *unit = parse_digits(text, &v);
        if (!unit)
                return -EINVAL;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                if (strcmp(unit, units[i].unit) == 0)
                        return scale(v, units[i].ms, ms_out) < 0 ? -ERANGE : 0;
        }
        return -EINVAL;
}

int config_parse_size(const char *text, size_t *bytes_out)
{
        uint64_t v, bytes, factor;
        if (!text || !bytes_out)
                return -EINVAL;
        const char *unit = parse_digits(text, &v);
        if (!unit)
                return -EINVAL;
        switch (unit[0]) {
        case '\0':
                factor = 1;
                break;
        case 'k':
        case 'K':
                factor = (uint64_t)1 << 10;
                break;
        case 'm':
        case 'M':
                factor = (uint64_t)1 << 20;
                break;
        case 'g':
        case 'G':
                factor = (uint64_t)1 << 30;
                break;
        default:
                return -EINVAL;
        }
        if (unit[0] && unit[1])
                return -EINVAL;
        if (scale(v, factor, &bytes) < 0 || bytes > SIZE_MAX)
                return -ERANGE;
        *bytes_out = (size_t)bytes;
        return 0;
}
