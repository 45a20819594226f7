/* connector: one [connector] section at run time: its back-end instance, its executor,
 * and the hand-over of orders and results between the executor and the journal.
 *
 * Every order the executor hands back ends here: executed or errored, its result goes
 * into the journal (connector_finish) and is reported only once that write is durable;
 * an order in doubt is probed; an order abandoned before it started is forgotten so the
 * server delivers it again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "timeutil.h"

#define IN_DOUBT_MESSAGE                                                                           \
        "in doubt: the agent could not tell whether the target applied this order (%s); "          \
        "check the target by hand, then re-run the workflow if needed"

int order_list_push(struct order_list *l, struct ca_order *o)
{
        if (l->count == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 64;
                struct ca_order **items = realloc(l->items, cap * sizeof(*items));
                if (!items)
                        return -ENOMEM;
                l->items = items;
                l->cap = cap;
        }
        l->items[l->count++] = o;
        return 0;
}

void order_list_clear(struct order_list *l)
{
        for (size_t i = 0; i < l->count; i++)
                order_free(l->items[i]);
        free(l->items);
        memset(l, 0, sizeof(*l));
}

int result_list_push(struct result_list *l, struct ca_result *r)
{
        if (l->count == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 64;
                struct ca_result **items = realloc(l->items, cap * sizeof(*items));
                if (!items)
                        return -ENOMEM;
                l->items = items;
                l->cap = cap;
        }
        l->items[l->count++] = r;
        return 0;
}

void result_list_clear(struct result_list *l)
{
        for (size_t i = 0; i < l->count; i++)
                result_free(l->items[i]);
        free(l->items);
        memset(l, 0, sizeof(*l));
}

static void print_dry_run(const struct ca_order *o, const char *what)
{
        printf("%s %s %s: %s\n", o->key, change_type_name(o->change),
               o->resource_type ? o->resource_type : "-", what);
        fflush(stdout);
}

static enum ca_change_type change_of(const char *text)
{
        for (int t = CA_CHANGE_ADDED; t <= CA_CHANGE_DELETED; t++)
                if (text && strcmp(text, change_type_name((enum ca_change_type)t)) == 0)
                        return (enum ca_change_type)t;
        return CA_CHANGE_UNKNOWN;
}

void connector_finish(struct connector *c, struct ca_result *r)
{
        struct agent *a = c->agent;
        struct ca_error err = {0};
        enum ca_change_type change = change_of(r->change_type);
        if (r->state == CA_RESULT_EXECUTED) {
                c->executed++;
                c->executed_by_change[change]++;
        } else {
                c->errored++;
                c->errored_by_change[change]++;
        }
        if (a->mode == AGENT_ONCE && r->state != CA_RESULT_EXECUTED)
                a->exit_code = EXIT_INCOMPLETE;
        if (a->mode == AGENT_DRY_RUN) {
                printf("%s: would answer %s: %s\n", r->order_key, result_state_name(r->state),
                       r->message);
                result_free(r);
                return;
        }
        /* While the journal is broken the result only waits in to_finish; it is written
         * again, with the others, once the journal works. */
        int rc = a->journal_broken ? 0 : journal_finish(a->journal, c->name, r, &err);
        if (rc < 0 && rc != -EEXIST)
                agent_journal_error(a, &err);
        if (rc == -EEXIST) {
                result_free(r);
                return;
        }
        if (result_list_push(&c->to_finish, r) < 0)
                result_free(r);
        agent_journal_touched(a);
}

static void log_outcome(struct connector *c, const struct executor_outcome *out,
                        const struct ca_result *r)
{
        log_ctx(r->state == CA_RESULT_EXECUTED ? CA_LOG_INFO : CA_LOG_WARNING, c->name,
                out->order->key, "%s %s: %s%s%s (%llu ms)", out->order->change_text,
                out->order->assignment_id, result_state_name(r->state), r->message[0] ? ": " : "",
                r->message, (unsigned long long)out->duration_ms);
}

static void finish_with(struct connector *c, struct executor_outcome *out,
                        enum ca_result_state state, const char *message)
{
        struct ca_result *r = result_new(out->order, state, message, NULL, time_wall_s());
        if (!r)
                return;
        log_outcome(c, out, r);
        connector_finish(c, r);
}

static void on_probe_outcome(struct connector *c, struct executor_outcome *out)
{
        char msg[BACKEND_MESSAGE_MAX + 256];
        if (out->rc == CA_BACKEND_OK && out->probe == CA_BACKEND_PROBE_NOT_APPLIED) {
                log_ctx(CA_LOG_NOTICE, c->name, out->order->key,
                        "in-doubt order was not applied: executing it now");
                if (executor_submit(c->exec, out->order, out->mapping, EXECUTOR_EXECUTE) == 0) {
                        out->order = NULL;
                        return;
                }
        }
        c->in_doubt = c->in_doubt ? c->in_doubt - 1 : 0;
        c->in_flight = c->in_flight ? c->in_flight - 1 : 0;
        if (out->rc == CA_BACKEND_OK && out->probe == CA_BACKEND_PROBE_APPLIED) {
                struct ca_result *r =
                    backend_result_to_result(out->order, &out->result, time_wall_s());
                if (r) {
                        r->state = CA_RESULT_EXECUTED;
                        log_ctx(CA_LOG_NOTICE, c->name, out->order->key,
                                "in-doubt order was already applied: answering Executed");
                        connector_finish(c, r);
                }
                return;
        }
        snprintf(msg, sizeof(msg), IN_DOUBT_MESSAGE,
                 out->rc != CA_BACKEND_OK ? out->error : "the back-end cannot tell");
        finish_with(c, out, CA_RESULT_ERRORED, msg);
}

static void on_done(void *ctx, struct executor_outcome *out)
{
        struct connector *c = ctx;
        struct agent *a = c->agent;
        struct ca_error err = {0};
        char msg[BACKEND_MESSAGE_MAX + 64];

        if (out->rc == EXECUTOR_ABANDONED) {
                /* Never started: forget it so that the server delivers it again. */
                c->in_flight = c->in_flight ? c->in_flight - 1 : 0;
                if (a->mode != AGENT_DRY_RUN) {
                        if (journal_forget(a->journal, c->name, out->order->key, &err) < 0)
                                agent_journal_error(a, &err);
                        else
                                agent_journal_touched(a);
                }
                goto out;
        }
        if (out->op == EXECUTOR_PROBE) {
                on_probe_outcome(c, out);
                goto out;
        }
        if (out->op == EXECUTOR_DESCRIBE) {
                c->in_flight = c->in_flight ? c->in_flight - 1 : 0;
                print_dry_run(out->order,
                              out->rc == CA_BACKEND_OK ? out->result.message : out->error);
                agent_check_done(a);
                goto out;
        }
        if (out->rc == CA_BACKEND_EINDOUBT) {
                log_ctx(CA_LOG_WARNING, c->name, out->order->key,
                        "the target may or may not have applied the order (%s): probing",
                        out->error);
                c->in_doubt++;
                if (executor_submit(c->exec, out->order, out->mapping, EXECUTOR_PROBE) == 0) {
                        out->order = NULL;
                        goto out;
                }
                c->in_doubt--;
                c->in_flight = c->in_flight ? c->in_flight - 1 : 0;
                snprintf(msg, sizeof(msg), IN_DOUBT_MESSAGE, out->error);
                finish_with(c, out, CA_RESULT_ERRORED, msg);
                goto out;
        }
        c->in_flight = c->in_flight ? c->in_flight - 1 : 0;
        if (out->rc != CA_BACKEND_OK) {
                snprintf(msg, sizeof(msg), "%s", out->error[0] ? out->error : "back-end failure");
                finish_with(c, out, CA_RESULT_ERRORED, msg);
                goto out;
        }
        struct ca_result *r = backend_result_to_result(out->order, &out->result, time_wall_s());
        if (r) {
                log_outcome(c, out, r);
                connector_finish(c, r);
        }
out:
        order_free(out->order);
        out->order = NULL;
        poller_kick(c);
}

static void on_status(void *ctx, int connected, const char *why)
{
        struct connector *c = ctx;
        c->target_connected = connected;
        if (connected) {
                log_ctx(CA_LOG_NOTICE, c->name, NULL, "target reachable again");
                c->last_error[0] = '\0';
        } else {
                log_ctx(CA_LOG_ERR, c->name, NULL, "target unreachable, orders wait: %s", why);
                snprintf(c->last_error, sizeof(c->last_error), "target unreachable: %s", why);
        }
        agent_status_changed(c->agent);
}

int connector_new(struct agent *a, const struct ca_config_connector *cfg, struct connector **out,
                  struct ca_error *err)
{
        struct connector *c = calloc(1, sizeof(*c));
        if (!c)
                return ca_error_set(err, -ENOMEM, "out of memory");
        c->agent = a;
        c->cfg = cfg;
        c->name = cfg->name;
        c->target_connected = 1;
        for (size_t i = 0; i < a->backend_count; i++)
                if (strcmp(backend_name(a->backends[i]), cfg->backend) == 0)
                        c->backend = a->backends[i];
        int rc = -ENOENT;
        struct ca_backend_error berr = {0};
        const struct ca_backend_ops *ops = c->backend ? backend_ops(c->backend) : NULL;
        if (!ops) {
                ca_error_set(err, rc, "connector %s: back-end %s is not loaded", c->name,
                             cfg->backend);
                goto fail;
        }
        rc = ops->instance_new(backend_host(), backend_settings(&cfg->settings), &c->instance,
                               &berr);
        if (rc != CA_BACKEND_OK) {
                rc = ca_error_set(err, -EINVAL, "connector %s: %s", c->name, berr.message);
                goto fail;
        }
        rc = executor_new(a->base, cfg, c->backend, c->instance, on_done, on_status, c, &c->exec,
                          err);
        if (rc < 0)
                goto fail;
        if (a->mode != AGENT_DRY_RUN) {
                rc = journal_unreported_count(a->journal, c->name, &c->unreported, err);
                if (rc < 0)
                        goto fail;
        }
        *out = c;
        return 0;
fail:
        connector_free(c);
        return rc;
}

void connector_free(struct connector *c)
{
        if (!c)
                return;
        poller_stop(c);
        reporter_stop(c);
        executor_free(c->exec);
        if (c->instance && c->backend)
                backend_ops(c->backend)->instance_free(c->instance);
        if (c->poll_timer)
                event_free(c->poll_timer);
        if (c->report_timer)
                event_free(c->report_timer);
        order_list_clear(&c->to_dispatch);
        result_list_clear(&c->to_finish);
        free(c->continuation);
        free(c);
}

void connector_after_commit(struct connector *c)
{
        struct agent *a = c->agent;
        for (size_t i = 0; i < c->to_finish.count; i++)
                c->unreported++;
        result_list_clear(&c->to_finish);
        for (size_t i = 0; i < c->to_dispatch.count; i++) {
                struct ca_order *o = c->to_dispatch.items[i];
                const struct ca_config_resource_type *rt =
                    config_find_resource_type(a->cfg, o->resource_type);
                enum executor_op op =
                    a->mode == AGENT_DRY_RUN ? EXECUTOR_DESCRIBE : EXECUTOR_EXECUTE;
                if (executor_submit(c->exec, o, rt, op) == 0) {
                        c->to_dispatch.items[i] = NULL;
                } else {
                        /* Recorded as executing but never run: forget it, the server
                         * re-delivers it. Should the forget fail, the order stays in
                         * doubt and the probe settles it at the next start. */
                        struct ca_error err = {0};
                        log_ctx(CA_LOG_WARNING, c->name, o->key,
                                "cannot queue the order now; it will be re-delivered");
                        if (journal_forget(a->journal, c->name, o->key, &err) < 0)
                                agent_journal_error(a, &err);
                        else
                                agent_journal_touched(a);
                        c->in_flight--;
                }
        }
        order_list_clear(&c->to_dispatch);
        reporter_kick(c);
        agent_check_done(a);
}

void connector_commit_failed(struct connector *c)
{
        /* The batch was rolled back: begun orders were never recorded, so they must not
         * run (the server re-delivers them); finished results are written again later. */
        c->in_flight -= c->to_dispatch.count < c->in_flight ? c->to_dispatch.count : c->in_flight;
        order_list_clear(&c->to_dispatch);
}

void connector_drain(struct connector *c)
{
        poller_stop(c);
        executor_drain(c->exec);
}

int connector_idle(const struct connector *c)
{
        return c->in_flight == 0 && c->to_dispatch.count == 0 && executor_idle(c->exec);
}
