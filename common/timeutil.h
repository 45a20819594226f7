/* SPDX-License-Identifier: Apache-2.0 */
/* timeutil: clocks and timestamps. No allocation, no shared state. */
#ifndef CA_TIMEUTIL_H
#define CA_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

uint64_t time_mono_ms(void); /* CLOCK_MONOTONIC in ms: for deadlines and durations */
int64_t time_wall_s(void);   /* CLOCK_REALTIME in Unix seconds */
/* "2026-11-22T10:15:02Z" into buf (at least 21 bytes); returns buf. */
char *time_iso8601(int64_t unix_s, char *buf, size_t len);

#endif
