/* recovery: settles the orders a crash left EXECUTING.
 *
 * Such an order may or may not have reached the target. It is never run again blindly:
 * the back-end is asked (probe) whether it was applied; applied means Executed, not
 * applied means it is executed now, and a back-end that cannot tell makes it Errored
 * with a message asking a person to check (connector.c settles the probe's answer). */
#include <stdlib.h>

#include "agent.h"
#include "log.h"
#include "timeutil.h"

int recovery_start(struct connector *c, struct ca_error *err)
{
        struct agent *a = c->agent;
        struct ca_order **orders = NULL;
        size_t count = 0;
        int rc = journal_in_doubt(a->journal, c->name, &orders, &count, err);
        if (rc < 0)
                return rc;
        if (count)
                log_ctx(CA_LOG_NOTICE, c->name, NULL,
                        "%zu order(s) were running when the agent stopped: asking the target "
                        "whether they were applied",
                        count);
        for (size_t i = 0; i < count; i++) {
                struct ca_order *o = orders[i];
                orders[i] = NULL;
                const struct ca_config_resource_type *rt =
                    o->resource_type ? config_find_resource_type(a->cfg, o->resource_type) : NULL;
                c->in_flight++;
                c->in_doubt++;
                if (rt && executor_submit(c->exec, o, rt, EXECUTOR_PROBE) == 0)
                        continue;
                c->in_flight--;
                c->in_doubt--;
                struct ca_result *r = result_new(
                    o, CA_RESULT_ERRORED,
                    "in doubt: the agent stopped while this order was running and its resource "
                    "type is no longer mapped, so the target cannot be asked; check it by hand",
                    NULL, time_wall_s());
                if (r)
                        connector_finish(c, r);
                order_free(o);
        }
        journal_orders_free(orders, count);
        return 0;
}
