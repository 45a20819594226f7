/* SPDX-License-Identifier: Apache-2.0 */
/* connector_poller: binds a connector's poller stage (poller.h) to the agent: the API
 * client is its transport, a libevent timer its clock, intake.c takes its pages, and
 * the connector's counters say whether there is room. */
#include <stdlib.h>

#include "log.h"
#include "pipeline.h"
#include "policy.h"
#include "poller.h"
#include "timeutil.h"

struct connector_poller {
        struct connector *c;
        struct poller *stage;
        struct event *timer;
        struct api_call *call;
        poller_answer_fn answer;
};

/* Orders waiting in the dispatch are durable (QUEUED) and need no more company than
 * what keeps the workers busy until the next page is in: two pages' worth. */
#define HELD_PAGES        2
#define HELD_PAGE_DEFAULT 1000 /* when the server picks the page size */

static int op_has_room(void *ctx)
{
        struct connector_poller *cp = ctx;
        struct connector *c = cp->c;
        const struct pipeline_env *a = c->env;
        unsigned page = a->cfg->server.page_size ? a->cfg->server.page_size : HELD_PAGE_DEFAULT;
        /* Held orders count too: a server that keeps sending past a limit fills the
         * journal only up to max_in_flight, then waits for the operator, whose release
         * must be seen while no page comes. */
        if (policy_held(c->policy))
                intake_holds_recheck(c);
        size_t taken = connector_in_flight(c) + policy_held(c->policy);
        int room = !a->journal_broken && taken < c->cfg->max_in_flight &&
                   dispatch_held(c->dispatch) < (size_t)HELD_PAGES * page &&
                   c->unreported < a->cfg->agent.max_pending_results;
        if (!room)
                log_ctx(CA_LOG_DEBUG, c->name, NULL,
                        "not polling: %zu orders in flight (%zu held), %zu results unreported",
                        taken, policy_held(c->policy), c->unreported);
        return room;
}

static void op_take(void *ctx, struct ca_order_page *page)
{
        struct connector_poller *cp = ctx;
        intake_page(cp->c, page);
}

static void op_said(void *ctx, const char *error)
{
        struct connector_poller *cp = ctx;
        snprintf(cp->c->last_error, sizeof(cp->c->last_error), "%s", error ? error : "");
}

static void on_api_done(void *arg, const struct http_response *resp)
{
        struct connector_poller *cp = arg;
        cp->call = NULL;
        cp->answer(cp->stage, resp);
}

static int op_send(void *ctx, const char *path, struct poller *p, poller_answer_fn answer)
{
        struct connector_poller *cp = ctx;
        (void)p;
        cp->answer = answer;
        return api_call(cp->c->env->api, "GET", path, NULL, on_api_done, cp, &cp->call);
}

static void op_cancel(void *ctx)
{
        struct connector_poller *cp = ctx;
        if (cp->call)
                api_cancel(cp->call);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
        struct connector_poller *cp = arg;
        (void)fd;
        (void)what;
        poller_timer_fired(cp->stage);
}

static void op_arm(void *ctx, uint64_t delay_ms)
{
        struct connector_poller *cp = ctx;
        struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000)};
        evtimer_add(cp->timer, &tv);
}

static void op_disarm(void *ctx)
{
        struct connector_poller *cp = ctx;
        evtimer_del(cp->timer);
}

static uint64_t op_now_ms(void *ctx)
{
        (void)ctx;
        return time_mono_ms();
}

static const struct poller_ops connector_poller_ops = {
    .has_room = op_has_room,
    .take = op_take,
    .said = op_said,
    .send = op_send,
    .cancel = op_cancel,
    .arm = op_arm,
    .disarm = op_disarm,
    .now_ms = op_now_ms,
};

int connector_poller_new(struct connector *c, struct ca_error *err)
{
        struct connector_poller *cp = calloc(1, sizeof(*cp));
        if (!cp)
                return ca_error_set(err, -ENOMEM, "out of memory");
        cp->c = c;
        cp->timer = evtimer_new(c->env->base, on_timer, cp);
        int rc = cp->timer ? poller_new(c->env, c->name, c->cfg, &connector_poller_ops, cp,
                                        &cp->stage, err)
                           : ca_error_set(err, -ENOMEM, "out of memory");
        if (rc < 0) {
                if (cp->timer)
                        event_free(cp->timer);
                free(cp);
                return rc;
        }
        c->poll = cp;
        c->poller = cp->stage;
        return 0;
}

void connector_poller_free(struct connector *c)
{
        struct connector_poller *cp = c->poll;
        if (!cp)
                return;
        poller_free(cp->stage);
        event_free(cp->timer);
        free(cp);
        c->poll = NULL;
        c->poller = NULL;
}
