/* SPDX-License-Identifier: Apache-2.0 */
#include "metrics.h"

const uint64_t metrics_bucket_ms[METRICS_BUCKETS] = {5,   10,  25,   50,   100,
                                                     250, 500, 1000, 2500, 10000};

void histogram_observe(struct histogram *h, uint64_t ms)
{
        size_t i = 0;
        while (i < METRICS_BUCKETS && ms > metrics_bucket_ms[i])
                i++;
        h->counts[i]++;
        h->count++;
        h->sum_ms += ms;
}
