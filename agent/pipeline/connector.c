/* SPDX-License-Identifier: Apache-2.0 */
/* connector: one [connector] section at run time: its back-end instance, its executor,
 * and the hand-over of orders and results between the executor and the journal.
 *
 * Orders go to the executor through the connector's dispatch (dispatch.h), which keeps
 * each assignment's order. Every order the executor hands back ends here: executed or
 * errored, its result goes into the journal (connector_finish) and is reported only once
 * that write is durable; an order in doubt is probed; an order handed back before it
 * started goes back to QUEUED, to run first, in its place, after the restart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_probe.h"
#include "pipeline.h"
#include "policy.h"
#include "poller.h"
#include "reporter.h"
#include "log.h"
#include "timeutil.h"

#define IN_DOUBT_MESSAGE                                                                           \
        "in doubt: the agent could not tell whether the target applied this order (%s); "          \
        "check the target by hand, then re-run the workflow if needed"

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
        struct pipeline_env *a = c->env;
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
                pipeline_journal_error(a, &err);
        if (rc == -EEXIST) {
                result_free(r);
                return;
        }
        if (result_list_push(&c->to_finish, r) < 0)
                result_free(r);
        pipeline_journal_touched(a);
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

/* An order still in doubt that cannot be settled now (the agent is stopping): it stays
 * EXECUTING in the journal, and the next start probes it again before anything else of
 * its assignment runs. Never answered Errored for it, never forgotten. */
static void leave_in_doubt(struct connector *c, const struct ca_order *o)
{
        log_ctx(CA_LOG_NOTICE, c->name, o->key,
                "the agent is stopping: the order stays in doubt and is settled at the next "
                "start");
}

/* The executor settles doubt in place (executor.h): a probe's outcome here is final. */
static void on_probe_outcome(struct connector *c, struct executor_outcome *out)
{
        char msg[BACKEND_MESSAGE_MAX + 256];
        if (out->rc == CA_BACKEND_OK && out->probe == CA_BACKEND_PROBE_NOT_APPLIED &&
            c->env->phase != AGENT_RUNNING) {
                leave_in_doubt(c, out->order);
                return;
        }
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
        if (out->rc == CA_BACKEND_OK && out->probe == CA_BACKEND_PROBE_NOT_APPLIED) {
                finish_with(c, out, CA_RESULT_ERRORED,
                            "not applied: every attempt ended in doubt (the target did not "
                            "confirm it) and the probe found the order not applied");
                return;
        }
        snprintf(msg, sizeof(msg), IN_DOUBT_MESSAGE,
                 out->rc != CA_BACKEND_OK ? out->error : "the back-end cannot tell");
        finish_with(c, out, CA_RESULT_ERRORED, msg);
}

static void on_done(void *ctx, struct executor_outcome *out)
{
        struct connector *c = ctx;
        struct pipeline_env *a = c->env;
        struct ca_error err = {0};
        char msg[BACKEND_MESSAGE_MAX + 64];

        /* A probe submitted by recovery is settled (or left for the next start) now. */
        if (out->submitted == EXECUTOR_PROBE)
                c->in_doubt = c->in_doubt ? c->in_doubt - 1 : 0;
        if (out->rc == EXECUTOR_ABANDONED && out->submitted == EXECUTOR_PROBE) {
                /* It may have been applied before the crash: forgetting it would let the
                 * server's re-delivery run it twice. */
                leave_in_doubt(c, out->order);
                goto out;
        }
        if (out->rc == EXECUTOR_ABANDONED) {
                /* Never started: QUEUED again, it runs first after the restart. */
                if (a->mode != AGENT_DRY_RUN) {
                        if (journal_requeue(a->journal, c->name, out->order->key, &err) < 0)
                                pipeline_journal_error(a, &err);
                        else
                                pipeline_journal_touched(a);
                }
                goto out;
        }
        if (out->op == EXECUTOR_PROBE) {
                on_probe_outcome(c, out);
                goto out;
        }
        if (out->op == EXECUTOR_DESCRIBE) {
                print_dry_run(out->order,
                              out->rc == CA_BACKEND_OK ? out->result.message : out->error);
                goto out;
        }
        if (out->submitted == EXECUTOR_PROBE)
                log_ctx(CA_LOG_NOTICE, c->name, out->order->key,
                        "in-doubt order was not applied: executed it in its place");
        if (out->rc == CA_BACKEND_EINDOUBT) {
                /* Only when the probe itself could not run (executor.h): a person checks. */
                snprintf(msg, sizeof(msg), IN_DOUBT_MESSAGE, out->error);
                finish_with(c, out, CA_RESULT_ERRORED, msg);
                goto out;
        }
        histogram_observe(&c->order_latency[out->order->change], out->duration_ms);
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
        dispatch_pump(c->dispatch);
        poller_kick(c->poller);
        pipeline_check_done(a);
}

static void on_status(void *ctx, int connected, const char *why)
{
        struct connector *c = ctx;
        c->target_connected = connected;
        if (connected) {
                log_ctx(CA_LOG_NOTICE, c->name, NULL, "target reachable again");
                c->last_error[0] = '\0';
        } else {
                char hint[512];
                backend_probe_quick_hint(&c->cfg->settings, c->name, why, hint, sizeof(hint));
                log_ctx(CA_LOG_ERR, c->name, NULL, "target unreachable, orders wait: %s (%s)", why,
                        hint);
                snprintf(c->last_error, sizeof(c->last_error), "target unreachable: %s", why);
        }
        pipeline_status_changed(c->env);
}

/* The dispatch's journal writes; a failed one is told by the batch's commit. */
static int dispatch_start(void *ctx, const struct ca_order *o)
{
        struct connector *c = ctx;
        struct ca_error err = {0};
        int rc = journal_start(c->env->journal, c->name, o->key, &err);
        if (rc < 0)
                log_ctx(CA_LOG_ERR, c->name, o->key, "%s", err.msg);
        return rc;
}

static int dispatch_requeue(void *ctx, const struct ca_order *o)
{
        struct connector *c = ctx;
        struct ca_error err = {0};
        int rc = journal_requeue(c->env->journal, c->name, o->key, &err);
        if (rc < 0)
                log_ctx(CA_LOG_ERR, c->name, o->key, "%s", err.msg);
        else
                log_ctx(CA_LOG_DEBUG, c->name, o->key, "not started: queued again");
        return rc;
}

static void dispatch_touched(void *ctx)
{
        struct connector *c = ctx;
        pipeline_journal_touched(c->env);
}

static const struct dispatch_ops dispatch_journal = {
    .start = dispatch_start,
    .requeue = dispatch_requeue,
    .touched = dispatch_touched,
};

json_t *connector_status_json(const struct connector *c)
{
        int up =
            c->target_connected && !poller_refused(c->poller) && !pipeline_journal_failing(c->env);
        json_t *o = json_pack("{s:s, s:s, s:o, s:I, s:I, s:I}", "Id", c->name, "Status",
                              up ? "CONNECTED" : "DISCONNECTED", "LastError",
                              c->last_error[0] ? json_string(c->last_error) : json_null(),
                              "PendingResults", (json_int_t)c->unreported, "OrdersExecuted",
                              (json_int_t)c->executed, "OrdersErrored", (json_int_t)c->errored);
        /* Which instance polls it, when several share the journal (roles.h). */
        if (o && c->role.epoch > 0)
                json_object_set_new(o, "Poller", json_string(c->role.holder));
        return o;
}

size_t connector_in_flight(const struct connector *c)
{
        return dispatch_held(c->dispatch) + executor_pending(c->exec);
}

int connector_new(struct pipeline_env *env, const struct ca_config_connector *cfg,
                  struct backend *backend, struct connector **out, struct ca_error *err)
{
        struct connector *c = calloc(1, sizeof(*c));
        if (!c)
                return ca_error_set(err, -ENOMEM, "out of memory");
        struct pipeline_env *a = env;
        c->env = env;
        c->cfg = cfg;
        c->name = cfg->name;
        c->target_connected = 1;
        c->backend = backend;
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
        rc = policy_new(cfg, &c->policy, err);
        if (rc < 0)
                goto fail;
        rc = executor_new(a->base, cfg, c->backend, c->instance, on_done, on_status, c, &c->exec,
                          err);
        if (rc < 0)
                goto fail;
        if (a->journal && a->mode != AGENT_DRY_RUN) {
                uint64_t lease_ms = 0;
                const _Atomic uint64_t *clock = journal_contact_clock(a->journal, &lease_ms);
                executor_set_lease(c->exec, clock, lease_ms);
        }
        rc = dispatch_new(c->exec, &dispatch_journal, c, &c->dispatch, err);
        if (rc < 0)
                goto fail;
        rc = connector_poller_new(c, err);
        if (rc < 0)
                goto fail;
        rc = connector_reporter_new(c, err);
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
        connector_poller_free(c);
        connector_reporter_free(c);
        dispatch_free(c->dispatch);
        executor_free(c->exec);
        if (c->instance && c->backend)
                backend_ops(c->backend)->instance_free(c->instance);
        result_list_clear(&c->to_finish);
        policy_free(c->policy);
        free(c);
}

void connector_after_commit(struct connector *c)
{
        for (size_t i = 0; i < c->to_finish.count; i++)
                c->unreported++;
        result_list_clear(&c->to_finish);
        dispatch_committed(c->dispatch);
        reporter_kick(connector_reporter(c));
        pipeline_check_done(c->env);
}

void connector_commit_failed(struct connector *c)
{
        /* The batch was rolled back: orders taken in it were never recorded, so they must
         * not run (the server re-delivers them); finished results are written again later. */
        size_t dropped = dispatch_commit_failed(c->dispatch);
        if (dropped)
                log_ctx(CA_LOG_WARNING, c->name, NULL,
                        "%zu order(s) not recorded: the server delivers them again", dropped);
}

static const struct ca_config_resource_type *remap_lookup(void *ctx,
                                                          const struct ca_config_resource_type *old)
{
        struct connector *c = ctx;
        const struct ca_config_resource_type *rt =
            config_find_resource_type(c->env->cfg, old->identifier);
        return rt && strcmp(rt->connector, c->name) == 0 ? rt : NULL;
}

static void remap_unmapped(void *ctx, struct ca_order *o)
{
        struct connector *c = ctx;
        char why[512];
        snprintf(why, sizeof(why),
                 "not started: the reloaded configuration no longer maps resource type %s to "
                 "connector %s",
                 o->resource_type ? o->resource_type : "(none)", c->name);
        log_ctx(CA_LOG_WARNING, c->name, o->key, "%s", why);
        struct ca_result *r = result_new(o, CA_RESULT_ERRORED, why, NULL, time_wall_s());
        if (r)
                connector_finish(c, r);
        order_free(o);
}

void connector_reloaded(struct connector *c)
{
        struct ca_error err = {0};
        if (intake_policy_reload(c, &err) < 0) /* checked before: only out of memory */
                log_ctx(CA_LOG_ERR, c->name, NULL, "guardrails kept as they were: %s", err.msg);
        poller_reconfigure(c->poller, c->cfg);
        dispatch_remap(c->dispatch, remap_lookup, remap_unmapped, c);
}

void connector_drain(struct connector *c)
{
        poller_stop(c->poller);
        size_t kept = dispatch_release(c->dispatch);
        if (kept)
                log_ctx(CA_LOG_NOTICE, c->name, NULL,
                        "%zu order(s) not started stay queued in the journal: they run first, "
                        "in their order, at the next start",
                        kept);
        executor_drain(c->exec);
}

int connector_idle(const struct connector *c)
{
        return dispatch_held(c->dispatch) == 0 && executor_idle(c->exec);
}
