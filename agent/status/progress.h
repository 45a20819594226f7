/* SPDX-License-Identifier: Apache-2.0 */
/* progress: what the log says about the work while a backlog is worked, and at the end.
 *
 * Pure bookkeeping on counts and a clock given by the caller (no timer, no logging of
 * its own), so that its rules are tested on a virtual clock. The agent calls
 * progress_tick every PROGRESS_INTERVAL_MS and logs the line it returns; it logs
 * progress_summary at the end of --once and at shutdown. Loop thread only. */
#ifndef CA_PROGRESS_H
#define CA_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#define PROGRESS_INTERVAL_MS 10000

/* Totals since start, summed over the connectors. */
struct progress_counts {
        unsigned long executed, errored; /* orders finished */
        unsigned long delivered;         /* results the server acknowledged */
        size_t pending;                  /* orders accepted and not finished */
        size_t undelivered;              /* results stored, not acknowledged yet */
};

struct progress {
        uint64_t last_ms;        /* time of the previous tick */
        unsigned long last_done; /* executed + errored then */
        int started;
};

/* Call at start, with the counts then (orders settled before are not progress). */
void progress_start(struct progress *p, uint64_t now_ms, const struct progress_counts *c);
/* 1 with a line in buf when work was done since the last tick or orders wait: "progress:
 * 120 executed, 3 errored, 877 pending, 12.3 orders/s, 40 results to deliver";
 * 0 (and nothing to log) while idle. */
int progress_tick(struct progress *p, uint64_t now_ms, const struct progress_counts *c, char *buf,
                  size_t len);
/* "summary: 120 orders executed, 3 errored, 118 results delivered, 0 orders and 5
 * results still pending" */
void progress_summary(const struct progress_counts *c, char *buf, size_t len);

#endif
