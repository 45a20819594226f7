/* SPDX-License-Identifier: Apache-2.0 */
/* recovery: takes back, at start, the orders an earlier run left unfinished.
 *
 * An order left EXECUTING (a crash) may or may not have reached the target. It is never
 * run again blindly: the back-end is asked (probe) whether it was applied; applied means
 * Executed, not applied means it is executed now, and a back-end that cannot tell makes
 * it Errored with a message asking a person to check (connector.c settles the probe's
 * answer). An order left QUEUED never started: it simply runs. Both go to the dispatch
 * before anything the server delivers, in the order they were taken (the dispatch keeps
 * each assignment's order from there). */
#include <stdlib.h>

#include "pipeline.h"
#include "log.h"
#include "timeutil.h"

static void unmapped(struct connector *c, struct ca_order *o, const char *why)
{
        struct ca_result *r = result_new(o, CA_RESULT_ERRORED, why, NULL, time_wall_s());
        if (r)
                connector_finish(c, r);
        order_free(o);
}

static void take_back(struct connector *c, struct ca_order **orders, size_t count,
                      enum dispatch_origin origin)
{
        for (size_t i = 0; i < count; i++) {
                struct ca_order *o = orders[i];
                orders[i] = NULL;
                const struct ca_config_resource_type *rt =
                    o->resource_type ? config_find_resource_type(c->env->cfg, o->resource_type)
                                     : NULL;
                if (rt && dispatch_add(c->dispatch, o, rt, origin) == 0) {
                        if (origin == DISPATCH_IN_DOUBT)
                                c->in_doubt++;
                        continue;
                }
                if (origin == DISPATCH_IN_DOUBT)
                        unmapped(c, o,
                                 rt ? "in doubt: out of memory settling it; check it by hand"
                                    : "in doubt: the agent stopped while this order was running "
                                      "and its resource type is no longer mapped, so the target "
                                      "cannot be asked; check it by hand");
                else
                        unmapped(c, o,
                                 rt ? "not started: out of memory taking it back"
                                    : "not started before the agent stopped, and its resource "
                                      "type is no longer mapped in the agent's configuration");
        }
}

int recovery_start(struct connector *c, struct ca_error *err)
{
        struct pipeline_env *a = c->env;
        struct ca_order **doubt = NULL, **queued = NULL;
        size_t ndoubt = 0, nqueued = 0;
        int rc = intake_holds_recover(c, err);
        if (rc == 0)
                rc = journal_in_doubt(a->journal, c->name, &doubt, &ndoubt, err);
        if (rc == 0)
                rc = journal_queued(a->journal, c->name, &queued, &nqueued, err);
        if (rc == 0) {
                if (ndoubt)
                        log_ctx(CA_LOG_NOTICE, c->name, NULL,
                                "%zu order(s) were running when the agent stopped: asking the "
                                "target whether they were applied",
                                ndoubt);
                if (nqueued)
                        log_ctx(CA_LOG_NOTICE, c->name, NULL,
                                "%zu order(s) taken before the agent stopped had not started: "
                                "they run first, in their order",
                                nqueued);
                /* An assignment's in-doubt orders were started before its queued ones. */
                take_back(c, doubt, ndoubt, DISPATCH_IN_DOUBT);
                take_back(c, queued, nqueued, DISPATCH_QUEUED);
                dispatch_pump(c->dispatch);
        }
        journal_orders_free(doubt, ndoubt);
        journal_orders_free(queued, nqueued);
        return rc;
}
