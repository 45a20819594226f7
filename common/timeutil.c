/* SPDX-License-Identifier: Apache-2.0 */
#include "timeutil.h"

#include <stdio.h>

uint64_t time_mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t time_wall_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec;
}

char *time_iso8601(int64_t unix_s, char *buf, size_t len)
{
        time_t t = (time_t)unix_s;
        struct tm tm;
        if (!gmtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
                if (len)
                        buf[0] = '\0';
        }
        return buf;
}
