/* backoff: exponential backoff with full jitter, and Retry-After.
 *
 * A struct ca_backoff is a small value owned by whoever retries. Delays are drawn
 * uniformly in [0, min(cap, base * 2^attempt)] ("full jitter"), so that many agents
 * failing together do not come back together. The random source is injectable for
 * tests. No allocation, no shared state. */
#ifndef CA_BACKOFF_H
#define CA_BACKOFF_H

#include <stdint.h>
#include <time.h>

struct ca_backoff {
        uint64_t base_ms;
        uint64_t cap_ms;
        unsigned attempt;              /* failures since the last success */
        uint64_t (*random)(void *ctx); /* NULL: a thread-safe default source */
        void *random_ctx;
};

void backoff_init(struct ca_backoff *b, uint64_t base_ms, uint64_t cap_ms);
/* The delay before the next try, and counts the failure. */
uint64_t backoff_next(struct ca_backoff *b);
void backoff_reset(struct ca_backoff *b);
/* A uniformly random delay in [0, max_ms]: used for poll and heartbeat jitter. */
uint64_t jitter_ms(uint64_t max_ms);

/* Parses a Retry-After value: delta seconds or an HTTP date (RFC 9110, IMF-fixdate),
 * relative to now. Returns 0 and the delay in ms (0 for a date in the past), or
 * -EINVAL for anything else. */
int retry_after_parse(const char *value, time_t now, uint64_t *delay_ms);

#endif
