/* SPDX-License-Identifier: Apache-2.0 */
#include "progress.h"

#include <stdio.h>

static unsigned long done_of(const struct progress_counts *c)
{
        return c->executed + c->errored;
}

void progress_start(struct progress *p, uint64_t now_ms, const struct progress_counts *c)
{
        p->last_ms = now_ms;
        p->last_done = done_of(c);
        p->started = 1;
}

int progress_tick(struct progress *p, uint64_t now_ms, const struct progress_counts *c, char *buf,
                  size_t len)
{
        if (!p->started)
                progress_start(p, now_ms, c);
        unsigned long done = done_of(c);
        unsigned long step = done >= p->last_done ? done - p->last_done : 0;
        uint64_t elapsed = now_ms > p->last_ms ? now_ms - p->last_ms : 0;
        p->last_ms = now_ms;
        p->last_done = done;
        /* Idle: nothing finished and nothing waits. A stalled backlog (orders waiting,
         * none finishing) is worth a line: its rate of 0 is the news. */
        if (step == 0 && c->pending == 0)
                return 0;
        double rate = elapsed ? (double)step * 1000.0 / (double)elapsed : 0.0;
        snprintf(buf, len,
                 "progress: %lu executed, %lu errored, %zu pending, %.1f orders/s, %zu result%s "
                 "to deliver",
                 c->executed, c->errored, c->pending, rate, c->undelivered,
                 c->undelivered == 1 ? "" : "s");
        return 1;
}

void progress_summary(const struct progress_counts *c, char *buf, size_t len)
{
        snprintf(buf, len,
                 "summary: %lu order%s executed, %lu errored, %lu result%s delivered; still "
                 "pending: %zu order%s, %zu result%s",
                 c->executed, c->executed == 1 ? "" : "s", c->errored, c->delivered,
                 c->delivered == 1 ? "" : "s", c->pending, c->pending == 1 ? "" : "s",
                 c->undelivered, c->undelivered == 1 ? "" : "s");
}
