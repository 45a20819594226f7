/* SPDX-License-Identifier: Apache-2.0 */
/* intake: a connector takes in the orders of a page the poller fetched.
 *
 * Each order is checked against the journal first: one already known is never run
 * again (a re-delivered order whose result the server lost gets the stored result sent
 * again). A new one is answered Errored at once when it cannot run here (invalid, or
 * no mapping for its resource type on this connector); otherwise it is recorded QUEUED
 * in the open batch and handed to the connector's dispatch, which starts it in its
 * assignment's order once the batch is durable.
 *
 * Between the mapping check and the dispatch sits the policy (policy.h): an order a
 * guardrail refuses is answered Errored at once, nothing of it applied; one it holds is
 * recorded HELD instead of QUEUED and stays out of the dispatch, together with every
 * later order of its assignment, until an operator releases it (it then goes to the
 * dispatch in its place) or refuses it. Every refusal and hold leaves an audit line with
 * the rule, the order's key and its target. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pipeline.h"
#include "policy.h"
#include "reporter.h"
#include "timeutil.h"

#define HELD_PREFIX "order(s) held by guardrail "

static void answer_errored(struct connector *c, struct ca_order *o, const char *why)
{
        log_ctx(CA_LOG_WARNING, c->name, o->key, "order errored before execution: %s", why);
        struct ca_result *r = result_new(o, CA_RESULT_ERRORED, why, NULL, time_wall_s());
        if (r)
                connector_finish(c, r);
}

static void refuse(struct connector *c, struct ca_order *o, const struct policy_decision *d)
{
        char msg[sizeof(d->why) + 64];
        log_ctx(CA_LOG_WARNING, c->name, o->key, "refused by guardrail %s: %s (target %s)",
                guard_rule_key(d->rule), d->why, d->target);
        snprintf(msg, sizeof(msg), "refused by the agent's guardrail %s", d->why);
        if (c->env->mode == AGENT_DRY_RUN)
                printf("%s %s %s: would refuse: %s\n", o->key, change_type_name(o->change),
                       o->resource_type ? o->resource_type : "-", d->why);
        struct ca_result *r = result_new(o, CA_RESULT_ERRORED, msg, NULL, time_wall_s());
        if (r)
                connector_finish(c, r);
}

/* The heartbeat's LastError says what waits for an operator while anything is held. */
static void holds_status(struct connector *c)
{
        size_t n = policy_held(c->policy);
        int ours = strstr(c->last_error, HELD_PREFIX) != NULL;
        if (n == 0) {
                if (ours)
                        c->last_error[0] = '\0';
                c->hold_announced = 0;
                return;
        }
        if (c->last_error[0] && !ours)
                return; /* an unreachable target or server says more */
        snprintf(c->last_error, sizeof(c->last_error),
                 "%zu " HELD_PREFIX "%s: release them with connector-agent journal release %s "
                 "KEY...|--all, or refuse one with journal resolve %s KEY errored MESSAGE",
                 n, guard_rule_key(policy_held_rule(c->policy)), c->name, c->name);
}

static void hold(struct connector *c, struct ca_order *o, const struct policy_decision *d)
{
        struct pipeline_env *a = c->env;
        struct ca_error err = {0};
        if (a->mode == AGENT_DRY_RUN) {
                printf("%s %s %s: would hold: %s\n", o->key, change_type_name(o->change),
                       o->resource_type ? o->resource_type : "-", d->why);
                fflush(stdout);
        } else if (journal_hold(a->journal, c->name, o, d->why, &err) < 0) {
                pipeline_journal_error(a, &err);
                return;
        }
        if (policy_hold_add(c->policy, o->key, o->assignment_id, d->rule) < 0) {
                /* Unindexed, it could not keep its assignment's order: not taken at all. */
                log_ctx(CA_LOG_ERR, c->name, o->key, "out of memory: the order is not taken");
                if (a->mode != AGENT_DRY_RUN &&
                    journal_forget(a->journal, c->name, o->key, &err) < 0)
                        pipeline_journal_error(a, &err);
                return;
        }
        if (a->mode != AGENT_DRY_RUN)
                pipeline_journal_touched(a);
        log_ctx(CA_LOG_INFO, c->name, o->key, "held by guardrail %s: %s (target %s)",
                guard_rule_key(d->rule), d->why, d->target);
        if (!(c->hold_announced & (1u << d->rule))) {
                c->hold_announced |= 1u << d->rule;
                log_ctx(CA_LOG_NOTICE, c->name, NULL,
                        "guardrail %s holds orders: they stay in the journal, unreported and "
                        "in their order, until an operator releases them (connector-agent "
                        "journal release %s KEY...|--all) or refuses them (journal resolve %s "
                        "KEY errored MESSAGE); journal list held shows them",
                        guard_rule_key(d->rule), c->name, c->name);
        }
        /* --once ends with it unanswered: the run is not complete. */
        if (a->mode == AGENT_ONCE)
                a->exit_code = EXIT_INCOMPLETE;
        holds_status(c);
}

/* The policy's verdict on a mapped order: 1 when it may go on to the journal as QUEUED. */
static int judge(struct connector *c, struct ca_order *o, const struct ca_config_resource_type *rt)
{
        struct policy_decision d;
        enum policy_verdict v = policy_judge(c->policy, o, rt, (int64_t)time_mono_ms(), &d);
        o->guard_kinds = d.kinds; /* kept by the journal: a restart counts it again */
        switch (v) {
        case POLICY_ADMIT:
                return 1;
        case POLICY_REFUSE:
                refuse(c, o, &d);
                return 0;
        case POLICY_HOLD:
                hold(c, o, &d);
                return 0;
        }
        return 0;
}

/* Takes one order of a page: returns 1 when it went into the journal for execution,
 * with *mapping set. */
static int take_order(struct connector *c, struct ca_order *o,
                      const struct ca_config_resource_type **mapping)
{
        struct pipeline_env *a = c->env;
        struct ca_error err = {0};
        enum journal_state st;
        c->received++;
        if (journal_state_of(a->journal, c->name, o->key, &st, &err) < 0) {
                pipeline_journal_error(a, &err);
                return 0;
        }
        switch (st) {
        case JOURNAL_EXECUTING:
                /* Running now, or being settled after a crash: its result will come. */
                log_ctx(CA_LOG_DEBUG, c->name, o->key, "re-delivered while executing");
                return 0;
        case JOURNAL_QUEUED:
                log_ctx(CA_LOG_DEBUG, c->name, o->key, "re-delivered while queued");
                return 0;
        case JOURNAL_HELD:
                log_ctx(CA_LOG_DEBUG, c->name, o->key, "re-delivered while held");
                return 0;
        case JOURNAL_FINISHED:
                log_ctx(CA_LOG_DEBUG, c->name, o->key, "re-delivered; result already queued");
                return 0;
        case JOURNAL_REPORTED:
                /* The server lost our answer: send the stored one again, never re-run it. */
                log_ctx(CA_LOG_INFO, c->name, o->key,
                        "re-delivered after being answered; "
                        "sending the stored result again");
                if (journal_unreport(a->journal, c->name, o->key, &err) == 0) {
                        c->unreported++;
                        pipeline_journal_touched(a);
                } else {
                        pipeline_journal_error(a, &err);
                }
                return 0;
        case JOURNAL_UNKNOWN:
                break;
        }
        if (o->invalid) {
                answer_errored(c, o, o->invalid);
                return 0;
        }
        const struct ca_config_resource_type *rt =
            o->resource_type ? config_find_resource_type(a->cfg, o->resource_type) : NULL;
        char why[512];
        if (!rt) {
                snprintf(
                    why, sizeof(why), "no [resource-type %s] mapping in the agent's configuration",
                    o->resource_type ? o->resource_type : "(order has no ResourceType.Identifier)");
                answer_errored(c, o, why);
                return 0;
        }
        if (strcmp(rt->connector, c->name) != 0) {
                snprintf(why, sizeof(why),
                         "resource type %s is mapped to connector %s, but the order came for "
                         "connector %s",
                         rt->identifier, rt->connector, c->name);
                answer_errored(c, o, why);
                return 0;
        }
        *mapping = rt;
        if (a->mode != AGENT_DRY_RUN && a->journal_broken)
                return 0; /* not recorded, not run: the server delivers it again */
        if (!judge(c, o, rt))
                return 0;
        if (a->mode == AGENT_DRY_RUN)
                return 1;
        if (journal_queue(a->journal, c->name, o, &err) < 0) {
                pipeline_journal_error(a, &err);
                return 0;
        }
        /* Recorded: the text would wait with the order for nothing but a back-end that
         * asks for it (order_json), which gets it made again. */
        order_drop_json_text(o);
        return 1;
}

void intake_page(struct connector *c, struct ca_order_page *page)
{
        struct ca_error err = {0};
        size_t taken = 0;
        enum dispatch_origin origin =
            c->env->mode == AGENT_DRY_RUN ? DISPATCH_UNJOURNALED : DISPATCH_NEW;
        intake_holds_recheck(c);
        for (size_t i = 0; i < page->count; i++) {
                struct ca_order *o = page->orders[i];
                const struct ca_config_resource_type *rt = NULL;
                if (!take_order(c, o, &rt))
                        continue;
                if (dispatch_add(c->dispatch, o, rt, origin) == 0) {
                        page->orders[i] = NULL;
                        taken++;
                        continue;
                }
                /* Held nowhere, it must not stay QUEUED: a later order of its assignment
                 * would overtake it. Forgotten, the server delivers it again. */
                log_ctx(CA_LOG_ERR, c->name, o->key, "out of memory: the order is not taken");
                if (origin == DISPATCH_NEW &&
                    journal_forget(c->env->journal, c->name, o->key, &err) < 0)
                        pipeline_journal_error(c->env, &err);
        }
        if (taken && origin == DISPATCH_NEW)
                pipeline_journal_touched(c->env);
        if (policy_held(c->policy))
                pipeline_status_changed(c->env); /* once per page, not per held order */
        dispatch_pump(c->dispatch);
}

/* ---- held orders ---- */

static const struct ca_config_resource_type *mapping_of(struct connector *c,
                                                        const struct ca_order *o)
{
        const struct ca_config_resource_type *rt =
            o->resource_type ? config_find_resource_type(c->env->cfg, o->resource_type) : NULL;
        return rt && strcmp(rt->connector, c->name) == 0 ? rt : NULL;
}

/* A released order, QUEUED on disk again: into the dispatch behind what it has already. */
static void run_released(struct connector *c, struct ca_order *o)
{
        const struct ca_config_resource_type *rt = mapping_of(c, o);
        if (!rt) {
                struct ca_result *r = result_new(
                    o, CA_RESULT_ERRORED,
                    "released, but its resource type is no longer mapped to this connector", NULL,
                    time_wall_s());
                if (r)
                        connector_finish(c, r);
                order_free(o);
                return;
        }
        policy_note_released(c->policy, o, rt, (int64_t)time_mono_ms());
        log_ctx(CA_LOG_NOTICE, c->name, o->key,
                "released by an operator: runs now, in its assignment's order");
        if (dispatch_add(c->dispatch, o, rt, DISPATCH_QUEUED) < 0) {
                /* QUEUED on disk: it runs at the next start, first. */
                log_ctx(CA_LOG_ERR, c->name, o->key,
                        "out of memory: the released order runs at the next start");
                order_free(o);
        }
}

static struct ca_order *take_queued(struct ca_order **queued, size_t n, const char *key)
{
        for (size_t i = 0; i < n; i++) {
                if (queued[i] && strcmp(queued[i]->key, key) == 0) {
                        struct ca_order *o = queued[i];
                        queued[i] = NULL;
                        return o;
                }
        }
        return NULL;
}

void intake_holds_recheck(struct connector *c)
{
        struct pipeline_env *a = c->env;
        struct ca_error err = {0};
        size_t on_disk = 0;
        int64_t version = 0;
        /* Only an operator's command (another process) or a lost batch changes what is
         * held behind the agent's back: data_version or the count tells. */
        if (a->mode == AGENT_DRY_RUN || a->journal_broken || policy_held(c->policy) == 0 ||
            journal_data_version(a->journal, &version, &err) < 0 ||
            journal_held_count(a->journal, c->name, &on_disk, &err) < 0 ||
            (on_disk == policy_held(c->policy) && version == c->holds_version)) {
                holds_status(c);
                return;
        }
        c->holds_version = version;
        struct ca_order **queued = NULL;
        size_t nqueued = 0;
        int loaded = 0, resolved = 0;
        for (size_t i = 0; i < policy_held(c->policy);) {
                const char *key = policy_held_key(c->policy, i);
                enum journal_state st;
                if (journal_state_of(a->journal, c->name, key, &st, &err) < 0)
                        break;
                if (st == JOURNAL_HELD) {
                        i++;
                        continue;
                }
                if (st == JOURNAL_QUEUED &&
                    policy_assignment_held(c->policy, policy_held_assignment(c->policy, i), i)) {
                        /* journal release refuses this; a hand-edited journal gets a word. */
                        log_ctx(CA_LOG_WARNING, c->name, key,
                                "released while an earlier order of its assignment is still "
                                "held: it waits (release that one too)");
                        i++;
                        continue;
                }
                if (st == JOURNAL_QUEUED) {
                        if (!loaded &&
                            journal_queued(a->journal, c->name, &queued, &nqueued, &err) < 0)
                                break;
                        loaded = 1;
                        struct ca_order *o = take_queued(queued, nqueued, key);
                        if (o)
                                run_released(c, o);
                } else if (st == JOURNAL_FINISHED) {
                        log_ctx(CA_LOG_NOTICE, c->name, key,
                                "refused by an operator while held: its result is reported");
                        c->unreported++;
                        resolved = 1;
                }
                policy_hold_remove(c->policy, key);
        }
        if (err.code)
                log_ctx(CA_LOG_ERR, c->name, NULL, "held orders: %s", err.msg);
        journal_orders_free(queued, nqueued);
        if (resolved)
                reporter_kick(connector_reporter(c));
        holds_status(c);
        dispatch_pump(c->dispatch);
        pipeline_status_changed(a);
}

int intake_holds_recover(struct connector *c, struct ca_error *err)
{
        size_t n = 0;
        int rc = policy_recover(c->policy, c->env->journal, c->name, time_wall_s(),
                                (int64_t)time_mono_ms(), &n, err);
        if (rc == 0 && n) {
                log_ctx(CA_LOG_NOTICE, c->name, NULL,
                        "%zu order(s) held by a guardrail before the restart stay held, in their "
                        "order, until released (journal release) or refused (journal resolve)",
                        n);
                holds_status(c);
        }
        return rc;
}

int intake_policy_reload(struct connector *c, struct ca_error *err)
{
        char loosened[1024];
        int n = policy_reload(c->policy, c->cfg, loosened, sizeof(loosened), err);
        if (n > 0)
                log_ctx(CA_LOG_NOTICE, c->name, NULL, "the reload loosens the guardrails: %s",
                        loosened);
        if (n >= 0)
                intake_holds_recheck(c);
        return n < 0 ? n : 0;
}
