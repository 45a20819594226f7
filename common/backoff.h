/* SPDX-License-Identifier: Apache-2.0 */
/* backoff: exponential backoff with full jitter, and Retry-After.
 *
 * A struct ca_backoff is a small value owned by whoever retries. Delays are drawn
 * uniformly in [0, min(cap, base * 2^attempt)] ("full jitter"), so that many agents
 * failing together do not come back together. The random source is injectable for
 * tests. No allocation, no shared state. */
#ifndef CA_BACKOFF_H
#define CA_BACKOFF_H

#include <stdint.h>

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
/* The same, drawn in [ceiling / 2, ceiling] ("equal jitter"): for a retry that must keep
 * a minimum spacing (a refused secret at an identity provider that locks clients out),
 * still spread among agents. */
uint64_t backoff_next_spaced(struct ca_backoff *b);
void backoff_reset(struct ca_backoff *b);
/* A uniformly random delay in [0, max_ms]: used for poll and heartbeat jitter. */
uint64_t jitter_ms(uint64_t max_ms);

/* The delay a Retry-After value asks for (RFC 9110 §10.2.3), capped at one day. value
 * is the header as received; date_delta_s is libcurl's reading of it
 * (CURLINFO_RETRY_AFTER: seconds from now, negative for a date past, 0 when it cannot
 * read one). Delay seconds are read here, digits only; an HTTP date (any of its three
 * forms) is libcurl's. Returns 0 and the delay in ms (0 for a date past), or -EINVAL for
 * anything else: then the caller's own backoff applies. */
int retry_after_parse(const char *value, int64_t date_delta_s, uint64_t *delay_ms);

/* The delay before the next try after a failed call that the server answered with
 * status (0: no answer) and retry_after / retry_after_s (as for retry_after_parse): for
 * 429 and 503 with a readable Retry-After what the server asked, plus up to 10 % and
 * 100 ms of jitter so that agents do not return as one; otherwise backoff_next. Counts
 * the failure either way; *asked (may be NULL) is 1 when the server's delay was taken. */
uint64_t backoff_after(struct ca_backoff *b, long status, const char *retry_after,
                       int64_t retry_after_s, int *asked);

#endif
