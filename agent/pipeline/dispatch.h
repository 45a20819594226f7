/* SPDX-License-Identifier: Apache-2.0 */
/* dispatch: the one place that keeps each assignment's orders in the server's order,
 * between the journal and the executor.
 *
 * Owns the orders a connector has taken and not yet handed to the executor, in the
 * order they were taken: probes of orders left in doubt by a crash first, then orders
 * queued before a restart, then each page as it comes. An order leaves only from the
 * front of its worker's sequence (the executor runs one worker's jobs in order, and
 * one assignment always has the same worker), so no path (first run, a retry, a probe,
 * a restart) can overtake an earlier order of the same assignment.
 *
 * An order is marked EXECUTING in the journal only when its worker is about to need
 * it: each worker holds at most a small window of submitted jobs, so a crash leaves in
 * doubt only what was running or next in line, never the whole backlog. The window
 * grows (up to DISPATCH_WINDOW_MAX) while a worker runs dry waiting for the journal,
 * and shrinks back while it does not. Everything else stays QUEUED and, after an
 * orderly stop, runs first after the restart.
 *
 * The marks are durable only after the agent's group commit: dispatch_committed hands
 * the marked orders to the executor then; dispatch_commit_failed forgets what the lost
 * batch took in (the server delivers it again) and unmarks the rest. Loop thread only;
 * the journal writes go through the callbacks given to dispatch_new. */
#ifndef CA_DISPATCH_H
#define CA_DISPATCH_H

#include <stddef.h>

#include "config.h"
#include "executor.h"
#include "journal.h"
#include "order.h"

/* A target that answers in milliseconds keeps the window at its minimum; one that
 * answers faster than the journal commits (a count-only back-end, a local SQLite) needs
 * a few hundred to keep its worker busy: measured with tests/bench, 64 cost 12 % of
 * the throughput of 10,000 orders, 256 none. A crash leaves at most this many in doubt
 * per worker. */
#define DISPATCH_WINDOW_MIN 2
#define DISPATCH_WINDOW_MAX 256

/* How an order comes in. */
enum dispatch_origin {
        DISPATCH_NEW = 0,         /* QUEUED in the open batch (from a page) */
        DISPATCH_QUEUED = 1,      /* QUEUED on disk (taken before a restart) */
        DISPATCH_IN_DOUBT = 2,    /* EXECUTING on disk after a crash: probed */
        DISPATCH_UNJOURNALED = 3, /* dry run: described, nothing is written */
};

/* The journal writes, in the open batch: 0, or a negative errno (the write failed or
 * was refused; the failed batch's commit then tells the agent). Neither may call back
 * into the dispatch. */
struct dispatch_ops {
        int (*start)(void *ctx, const struct ca_order *o);   /* QUEUED -> EXECUTING */
        int (*requeue)(void *ctx, const struct ca_order *o); /* EXECUTING -> QUEUED */
        /* Something was written: the agent commits soon, then calls dispatch_committed. */
        void (*touched)(void *ctx);
};

struct dispatch;

/* exec is borrowed and outlives the dispatch. */
int dispatch_new(struct executor *exec, const struct dispatch_ops *ops, void *ctx,
                 struct dispatch **out, struct ca_error *err);
void dispatch_free(struct dispatch *d); /* accepts NULL; frees what it holds */

/* Takes o (and its mapping, borrowed) at the tail. -ENOMEM leaves o with the caller. */
int dispatch_add(struct dispatch *d, struct ca_order *o,
                 const struct ca_config_resource_type *mapping, enum dispatch_origin origin);

/* Fills the workers' windows from the front: probes and dry-run jobs go to the
 * executor at once, orders are marked EXECUTING for the next commit. Call after adding
 * and whenever a job ends. */
void dispatch_pump(struct dispatch *d);

/* The batch is durable: hands the marked orders to the executor, in order. */
void dispatch_committed(struct dispatch *d);
/* The batch was lost: forgets the orders it would have recorded (returns how many) and
 * unmarks the rest, which are still QUEUED on disk. */
size_t dispatch_commit_failed(struct dispatch *d);

/* Orderly stop: lets go of every order not handed to the executor and not marked (they
 * stay QUEUED in the journal for the next start, probes stay EXECUTING); returns how
 * many. Marked orders follow once their commit is in, as the draining executor refuses
 * them and they are requeued. Nothing is marked after this. */
size_t dispatch_release(struct dispatch *d);

/* A reload: each held order's mapping is looked up again (lookup gives the new
 * configuration's, or NULL when its resource type is no longer mapped); an order left
 * without one is taken out and handed to unmapped, which owns it from then on. Nothing
 * held points into the old configuration afterwards. */
void dispatch_remap(struct dispatch *d,
                    const struct ca_config_resource_type *(*lookup)(
                        void *ctx, const struct ca_config_resource_type *old),
                    void (*unmapped)(void *ctx, struct ca_order *o), void *ctx);

/* Orders held (not yet handed to the executor). */
size_t dispatch_held(const struct dispatch *d);
/* A worker's current window (for tests and metrics). */
size_t dispatch_window(const struct dispatch *d, size_t worker);

#endif
