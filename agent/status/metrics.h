/* SPDX-License-Identifier: Apache-2.0 */
/* metrics: the counters and latency histograms the agent keeps for /metrics.
 *
 * Plain values updated on the loop thread and read by the status endpoint on the same
 * thread: no locks, no allocation. Histogram buckets are fixed (seconds), as Prometheus
 * wants them cumulative at exposition time. */
#ifndef CA_METRICS_H
#define CA_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_BUCKETS 10

/* Upper bounds in milliseconds; the last bucket is +Inf. */
extern const uint64_t metrics_bucket_ms[METRICS_BUCKETS];

struct histogram {
        uint64_t counts[METRICS_BUCKETS + 1]; /* per bucket, not cumulative; last is +Inf */
        uint64_t count;
        uint64_t sum_ms;
};

void histogram_observe(struct histogram *h, uint64_t ms);

#endif
