/* SPDX-License-Identifier: Apache-2.0 */
/* dispatch: per-worker lanes of taken orders, marked EXECUTING only as a worker's window
 * has room (dispatch.h). */
#include "dispatch.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/queue.h>

struct entry {
        TAILQ_ENTRY(entry) link;
        struct ca_order *order;
        const struct ca_config_resource_type *mapping;
        enum dispatch_origin origin;
        int durable; /* its journal record is committed (or it needs none) */
        int marked;  /* EXECUTING in the open batch: submitted after the commit */
};

TAILQ_HEAD(entry_list, entry);

/* One worker's orders, in their order: the marked ones first (a prefix), then the rest. */
struct lane {
        struct entry_list q;
        struct entry *first_unmarked;
        size_t marked;
        size_t window;
};

struct dispatch {
        struct executor *exec;
        struct dispatch_ops ops;
        void *ctx;
        struct lane *lanes;
        size_t nlanes;
        size_t held;
        int stopped; /* dispatch_release was called: nothing is marked any more */
};

int dispatch_new(struct executor *exec, const struct dispatch_ops *ops, void *ctx,
                 struct dispatch **out, struct ca_error *err)
{
        *out = NULL;
        size_t n = executor_workers(exec);
        if (!ops || !ops->start || !ops->requeue || !ops->touched || n == 0)
                return ca_error_set(err, -EINVAL, "dispatch: missing argument");
        struct dispatch *d = calloc(1, sizeof(*d));
        struct lane *lanes = d ? calloc(n, sizeof(*lanes)) : NULL;
        if (!lanes) {
                free(d);
                return ca_error_set(err, -ENOMEM, "dispatch: out of memory");
        }
        for (size_t i = 0; i < n; i++) {
                TAILQ_INIT(&lanes[i].q);
                lanes[i].window = DISPATCH_WINDOW_MIN;
        }
        d->exec = exec;
        d->ops = *ops;
        d->ctx = ctx;
        d->lanes = lanes;
        d->nlanes = n;
        *out = d;
        return 0;
}

static void entry_remove(struct dispatch *d, struct lane *l, struct entry *e)
{
        if (l->first_unmarked == e)
                l->first_unmarked = TAILQ_NEXT(e, link);
        TAILQ_REMOVE(&l->q, e, link);
        d->held--;
        free(e);
}

void dispatch_free(struct dispatch *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < d->nlanes; i++) {
                struct entry *e;
                while ((e = TAILQ_FIRST(&d->lanes[i].q))) {
                        order_free(e->order);
                        entry_remove(d, &d->lanes[i], e);
                }
        }
        free(d->lanes);
        free(d);
}

int dispatch_add(struct dispatch *d, struct ca_order *o,
                 const struct ca_config_resource_type *mapping, enum dispatch_origin origin)
{
        struct entry *e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->order = o;
        e->mapping = mapping;
        e->origin = origin;
        e->durable = origin != DISPATCH_NEW;
        struct lane *l = &d->lanes[executor_worker_of(d->exec, o)];
        TAILQ_INSERT_TAIL(&l->q, e, link);
        if (!l->first_unmarked)
                l->first_unmarked = e;
        d->held++;
        return 0;
}

/* Probes and dry-run jobs need no mark: they go as they come, behind any marked order. */
static int submit_unmarked(struct dispatch *d, struct lane *l, struct entry *e)
{
        enum executor_op op = e->origin == DISPATCH_IN_DOUBT ? EXECUTOR_PROBE : EXECUTOR_DESCRIBE;
        if (l->marked || executor_submit(d->exec, e->order, e->mapping, op) < 0)
                return 0;
        entry_remove(d, l, e);
        return 1;
}

/* Returns -1 when a journal write failed (stop writing: the commit tells the agent). */
static int pump_lane(struct dispatch *d, size_t w, int *wrote)
{
        struct lane *l = &d->lanes[w];
        struct entry *e;
        while ((e = l->first_unmarked)) {
                if (e->origin == DISPATCH_IN_DOUBT || e->origin == DISPATCH_UNJOURNALED) {
                        if (!submit_unmarked(d, l, e))
                                break;
                        continue;
                }
                if (executor_worker_load(d->exec, w) + l->marked >= l->window)
                        break;
                if (d->ops.start(d->ctx, e->order) < 0)
                        return -1;
                e->marked = 1;
                l->marked++;
                l->first_unmarked = TAILQ_NEXT(e, link);
                *wrote = 1;
        }
        return 0;
}

/* skip: a lane not to fill now (its executor just refused a job), or NULL. */
static void pump(struct dispatch *d, const unsigned char *skip)
{
        int wrote = 0;
        if (d->stopped)
                return;
        for (size_t w = 0; w < d->nlanes; w++)
                if (!(skip && skip[w]) && pump_lane(d, w, &wrote) < 0)
                        break;
        if (wrote)
                d->ops.touched(d->ctx);
}

void dispatch_pump(struct dispatch *d)
{
        pump(d, NULL);
}

/* A worker that ran dry while its next orders waited for the commit needs a deeper
 * window; one that still has half a window to do needs less. */
static void adapt_window(struct dispatch *d, size_t w)
{
        struct lane *l = &d->lanes[w];
        size_t load = executor_worker_load(d->exec, w);
        if (load == 0 && l->window < DISPATCH_WINDOW_MAX)
                l->window *= 2;
        else if (load > l->window / 2 && l->window > DISPATCH_WINDOW_MIN)
                l->window--;
}

/* Returns 1 when the executor refused a job of the lane. */
static int committed_lane(struct dispatch *d, size_t w)
{
        struct lane *l = &d->lanes[w];
        struct entry *e, *next;
        if (l->marked)
                adapt_window(d, w);
        int refused = 0;
        for (e = TAILQ_FIRST(&l->q); e && e->marked; e = next) {
                next = TAILQ_NEXT(e, link);
                if (!refused &&
                    executor_submit(d->exec, e->order, e->mapping, EXECUTOR_EXECUTE) == 0) {
                        l->marked--;
                        entry_remove(d, l, e);
                        continue;
                }
                /* Marked on disk but not handed over: back to QUEUED, in its place, and
                 * so is every later one of the lane (their order must hold). */
                refused = 1;
                e->marked = 0;
                l->marked--;
                if (d->ops.requeue(d->ctx, e->order) < 0)
                        break; /* the batch is lost: commit_failed unmarks the rest */
        }
        if (refused)
                l->first_unmarked = TAILQ_FIRST(&l->q);
        TAILQ_FOREACH(e, &l->q, link)
        e->durable = 1;
        return refused;
}

void dispatch_committed(struct dispatch *d)
{
        unsigned char skip[EXECUTOR_WORKERS_MAX] = {0};
        int any = 0;
        for (size_t w = 0; w < d->nlanes; w++)
                any |= skip[w] = (unsigned char)committed_lane(d, w);
        if (any)
                d->ops.touched(d->ctx); /* the requeues */
        if (d->stopped)
                dispatch_release(d); /* refused because the executor drains */
        else
                pump(d, skip); /* a refused lane waits for its next finished job */
}

size_t dispatch_commit_failed(struct dispatch *d)
{
        size_t dropped = 0;
        for (size_t w = 0; w < d->nlanes; w++) {
                struct lane *l = &d->lanes[w];
                struct entry *e, *next;
                for (e = TAILQ_FIRST(&l->q); e; e = next) {
                        next = TAILQ_NEXT(e, link);
                        e->marked = 0;
                        if (!e->durable) {
                                order_free(e->order);
                                entry_remove(d, l, e);
                                dropped++;
                        }
                }
                l->marked = 0;
                l->first_unmarked = TAILQ_FIRST(&l->q);
        }
        return dropped;
}

size_t dispatch_release(struct dispatch *d)
{
        size_t released = 0;
        d->stopped = 1;
        for (size_t w = 0; w < d->nlanes; w++) {
                struct lane *l = &d->lanes[w];
                struct entry *e;
                while ((e = l->first_unmarked)) {
                        order_free(e->order);
                        entry_remove(d, l, e);
                        released++;
                }
        }
        return released;
}

void dispatch_remap(struct dispatch *d,
                    const struct ca_config_resource_type *(*lookup)(
                        void *ctx, const struct ca_config_resource_type *old),
                    void (*unmapped)(void *ctx, struct ca_order *o), void *ctx)
{
        for (size_t w = 0; w < d->nlanes; w++) {
                struct lane *l = &d->lanes[w];
                struct entry *e, *next;
                for (e = TAILQ_FIRST(&l->q); e; e = next) {
                        next = TAILQ_NEXT(e, link);
                        e->mapping = lookup(ctx, e->mapping);
                        if (e->mapping)
                                continue;
                        struct ca_order *o = e->order;
                        if (e->marked)
                                l->marked--;
                        entry_remove(d, l, e);
                        unmapped(ctx, o);
                }
        }
}

size_t dispatch_held(const struct dispatch *d)
{
        return d ? d->held : 0;
}

size_t dispatch_window(const struct dispatch *d, size_t worker)
{
        return d && worker < d->nlanes ? d->lanes[worker].window : 0;
}
