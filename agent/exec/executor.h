/* SPDX-License-Identifier: Apache-2.0 */
/* executor: runs back-end calls for one connector on a fixed pool of worker threads.
 *
 * Owns the worker threads, their sessions and queues (executor_free joins them). Orders
 * with the same AssignedResourceTypeId always go to the same worker, so they run in the
 * order they arrived and never concurrently; different resources run in parallel.
 * Work crosses threads through per-worker queues, and completions come back to the loop
 * thread through one libevent event (no other shared state). The done callback runs on
 * the loop thread.
 *
 * Circuit breaker: when the back-end answers CA_BACKEND_EUNAVAILABLE, the executor opens
 * its breaker: the order is kept (never failed for it), all workers hold their queues,
 * and the target is re-checked with exponential backoff; the status callback tells the
 * loop (DISCONNECTED / CONNECTED) on each change. Everything else passes through.
 *
 * Settling: an order keeps its place in its assignment's order through doubt. An
 * execute that ends CA_BACKEND_EINDOUBT is probed on the spot, and a probe answering
 * "not applied" is executed on the spot, before the worker's next job; the outcome
 * handed back is the last operation's (op). A probe comes back "not applied" only
 * while draining, or after three executions in a row ended in doubt.
 *
 * Called from the loop thread only, except where said. */
#ifndef CA_EXECUTOR_H
#define CA_EXECUTOR_H

#include <event2/event.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "backend_loader.h"
#include "config.h"
#include "order.h"

/* Workers beyond this are refused (a configuration error, not a tuning knob). */
#define EXECUTOR_WORKERS_MAX 256

enum executor_op {
        EXECUTOR_EXECUTE = 1,
        EXECUTOR_PROBE = 2,
        EXECUTOR_DESCRIBE = 3, /* dry run */
};

/* One finished (or abandoned) job, handed to the done callback, which takes ownership
 * of order and result. The struct itself is the executor's: it is valid until done
 * returns (copy what must outlive the call). */
struct executor_outcome {
        struct ca_order *order;
        const struct ca_config_resource_type *mapping; /* as submitted */
        enum executor_op op;             /* the last operation run (see "Settling" above) */
        enum executor_op submitted;      /* the operation executor_submit was given */
        int rc;                          /* CA_BACKEND_OK, a CA_BACKEND_E* code, or
                                          * EXECUTOR_ABANDONED */
        enum ca_backend_probe probe;     /* for EXECUTOR_PROBE with rc OK */
        struct ca_backend_result result; /* for rc OK */
        char error[BACKEND_MESSAGE_MAX]; /* why, when rc != OK */
        uint64_t duration_ms;
};

/* rc of an order that was queued but never started because of shutdown. */
#define EXECUTOR_ABANDONED 1

typedef void (*executor_done_fn)(void *ctx, struct executor_outcome *outcome);
typedef void (*executor_status_fn)(void *ctx, int connected, const char *why);

struct executor;

/* Starts conn->max_parallel workers, each opening a session. instance is the plug-in's
 * instance for this connector (borrowed, outlives the executor). */
int executor_new(struct event_base *base, const struct ca_config_connector *conn,
                 struct backend *backend, void *instance, executor_done_fn done,
                 executor_status_fn status, void *ctx, struct executor **out, struct ca_error *err);

/* Queues a job; takes ownership of order (given back in the outcome). mapping is
 * borrowed and must outlive the job. On failure the caller keeps order: -EINVAL,
 * -ENOMEM, -ESHUTDOWN after executor_drain, -ENOBUFS when that worker's queue holds
 * conn->max_in_flight jobs already. */
int executor_submit(struct executor *e, struct ca_order *order,
                    const struct ca_config_resource_type *mapping, enum executor_op op);

/* The workers, the one an order goes to (fixed by its AssignedResourceTypeId), and the
 * jobs submitted to one worker and not yet handed back (queued or running). */
size_t executor_workers(const struct executor *e);
size_t executor_worker_of(const struct executor *e, const struct ca_order *order);
size_t executor_worker_load(const struct executor *e, size_t worker);

/* A fence over the jobs submitted so far: marks (executor_workers(e) entries) is filled
 * with each worker's submission count; executor_fence_passed is 1 once every one of
 * those jobs has been handed back (a worker hands its jobs back in their order). What a
 * job borrowed (its mapping) may be freed then. */
void executor_fence(const struct executor *e, uint64_t *marks);
int executor_fence_passed(const struct executor *e, const uint64_t *marks);

/* Jobs submitted and not yet handed back. */
size_t executor_pending(const struct executor *e);
/* 1 while the breaker is closed (target reachable). */
int executor_connected(const struct executor *e);
/* Milliseconds since a worker last made progress while it had work (the age of the
 * oldest back-end call still running); 0 when idle. Used by the watchdog: a wedged
 * worker must get the service restarted. Any thread. */
uint64_t executor_stalled_ms(const struct executor *e, uint64_t now_ms);
/* 1 when a back-end call has run longer than twice the connector's order_timeout. */
int executor_wedged(const struct executor *e, uint64_t now_ms);

/* Stops taking jobs, hands back every queued job as EXECUTOR_ABANDONED (through done),
 * lets running ones finish. Returns at once; executor_idle tells when all are back. */
void executor_drain(struct executor *e);
int executor_idle(const struct executor *e);

/* Workers start a job only while time_mono_ms() < *clock + lease_ms / 2 (the shared
 * journal's lease, journal_contact_clock), and otherwise wait, re-reading it every
 * EXECUTOR_LEASE_TICK_MS, until it holds again or the executor stops. clock is borrowed
 * and may be written by another thread; NULL: no lease. */
#define EXECUTOR_LEASE_TICK_MS 50
void executor_set_lease(struct executor *e, const _Atomic uint64_t *clock, uint64_t lease_ms);

/* The breaker's re-check delays (default 1 s doubling up to 60 s, full jitter); for
 * tests. */
void executor_set_breaker_backoff(struct executor *e, uint64_t base_ms, uint64_t cap_ms);

/* Asks the workers to stop and waits at most grace_ms for them to leave their back-end
 * calls. 0 when every worker has stopped (executor_free then joins nothing). -ETIMEDOUT
 * when one is still inside a call (a hung target): it keeps using the executor, the
 * plug-in instance and the configuration, so none of them may be freed; the caller ends
 * the process instead (the journal keeps that order in doubt for the next start). */
int executor_stop(struct executor *e, uint64_t grace_ms);

/* Joins the workers (after executor_drain, or abandoning what is queued) and closes
 * their sessions. Accepts NULL. Must not be called from the done callback. */
void executor_free(struct executor *e);

#endif
