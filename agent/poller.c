/* poller: fetches a connector's orders (protocol.md §3) and takes them in.
 *
 * One explicit state per connector: waiting on poll_timer, or one GET in flight
 * (poll_call). A page's orders are recorded in the journal as EXECUTING in one batch
 * and handed to the executor only after that batch is durable (connector_after_commit).
 * Re-delivered orders are answered from the journal, never executed again. Polling
 * pauses while the connector holds max_in_flight orders or max_pending_results
 * unreported results, and while the journal cannot be written. */
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "timeutil.h"

#define POLL_PATH_MAX          2048
#define POLL_RETRY_BASE_MS     1000
#define POLL_RETRY_CAP_MS      (5 * 60 * 1000)
#define POLL_REFUSED_MS        (5 * 60 * 1000) /* 403/404: retry slowly */
#define POLL_PAUSED_RECHECK_MS 1000
#define POLL_ONCE_TRIES        3 /* --once and --dry-run: tries before giving up */

static void on_poll_timer(evutil_socket_t fd, short what, void *arg);

static void arm(struct connector *c, uint64_t delay_ms)
{
        struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000)};
        if (!c->poll_timer)
                c->poll_timer = evtimer_new(c->agent->base, on_poll_timer, c);
        if (c->poll_timer)
                evtimer_add(c->poll_timer, &tv);
}

/* Between half and all of the interval, so that agents started together drift apart. */
static uint64_t next_interval(const struct connector *c)
{
        uint64_t iv = c->cfg->poll_interval_ms;
        return iv / 2 + jitter_ms(iv / 2);
}

void poller_start(struct connector *c, uint64_t delay_ms)
{
        backoff_init(&c->poll_backoff, POLL_RETRY_BASE_MS, POLL_RETRY_CAP_MS);
        arm(c, delay_ms);
}

void poller_stop(struct connector *c)
{
        if (c->poll_timer)
                evtimer_del(c->poll_timer);
        if (c->poll_call)
                api_cancel(c->poll_call);
}

void poller_kick(struct connector *c)
{
        /* Back-pressure lifted: poll now if we were only waiting for room. */
        if (c->agent->phase == AGENT_RUNNING && !c->poll_call && c->continuation && !c->cycle_done)
                arm(c, 0);
}

static int has_room(const struct connector *c)
{
        const struct agent *a = c->agent;
        return !a->journal_broken && c->in_flight < c->cfg->max_in_flight &&
               c->unreported < a->cfg->agent.max_pending_results;
}

static void schedule_next(struct connector *c)
{
        struct agent *a = c->agent;
        if (a->phase != AGENT_RUNNING)
                return;
        if (a->mode != AGENT_DAEMON) {
                if (c->continuation) {
                        arm(c, 0);
                } else {
                        c->cycle_done = 1;
                        agent_check_done(a);
                }
                return;
        }
        arm(c, c->continuation ? 0 : next_interval(c));
}

static void answer_errored(struct connector *c, struct ca_order *o, const char *why)
{
        log_ctx(CA_LOG_WARNING, c->name, o->key, "order errored before execution: %s", why);
        struct ca_result *r = result_new(o, CA_RESULT_ERRORED, why, NULL, time_wall_s());
        if (r)
                connector_finish(c, r);
}

/* Takes one order of a page: returns 1 when it went into the journal for execution. */
static int take_order(struct connector *c, struct ca_order *o)
{
        struct agent *a = c->agent;
        struct ca_error err = {0};
        enum journal_state st;
        c->received++;
        if (journal_state_of(a->journal, c->name, o->key, &st, &err) < 0) {
                agent_journal_error(a, &err);
                return 0;
        }
        switch (st) {
        case JOURNAL_EXECUTING:
                /* Running now, or being settled after a crash: its result will come. */
                log_ctx(CA_LOG_DEBUG, c->name, o->key, "re-delivered while executing");
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
                        agent_journal_touched(a);
                } else {
                        agent_journal_error(a, &err);
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
        if (a->mode == AGENT_DRY_RUN)
                return 1;
        if (a->journal_broken)
                return 0; /* not recorded, not run: the server delivers it again */
        if (journal_begin(a->journal, c->name, o, &err) < 0) {
                agent_journal_error(a, &err);
                return 0;
        }
        return 1;
}

static void take_page(struct connector *c, const struct http_response *resp)
{
        struct ca_order_page page = {0};
        struct ca_error err = {0};
        if (order_page_parse(resp->body, resp->body_len, &page, &err) < 0) {
                log_ctx(CA_LOG_ERR, c->name, NULL, "ProvisioningData answer rejected: %s", err.msg);
                snprintf(c->last_error, sizeof(c->last_error), "bad ProvisioningData answer: %s",
                         err.msg);
                free(c->continuation);
                c->continuation = NULL;
                arm(c, backoff_next(&c->poll_backoff));
                return;
        }
        backoff_reset(&c->poll_backoff);
        if (page.skipped)
                log_ctx(CA_LOG_ERR, c->name, NULL,
                        "%zu order(s) in the page cannot be identified (no Id and no "
                        "AssignedResourceTypeId) and were ignored",
                        page.skipped);
        for (size_t i = 0; i < page.count; i++) {
                struct ca_order *o = page.orders[i];
                if (take_order(c, o)) {
                        if (order_list_push(&c->to_dispatch, o) == 0) {
                                page.orders[i] = NULL;
                                c->in_flight++;
                        }
                }
        }
        free(c->continuation);
        c->continuation = NULL;
        if (page.continuation_token && page.continuation_token[0])
                c->continuation = strdup(page.continuation_token);
        order_page_clear(&page);
        if (c->to_dispatch.count)
                agent_journal_touched(c->agent);
}

static void on_poll_done(void *arg, const struct http_response *resp)
{
        struct connector *c = arg;
        struct agent *a = c->agent;
        c->poll_call = NULL;
        if (resp->transport_error == CA_HTTP_CANCELLED)
                return;
        histogram_observe(&c->poll_latency, resp->elapsed_ms);
        if (resp->status != 200 && resp->status != 204)
                c->polls_failed++;
        if (resp->status == 200 || resp->status == 204) {
                agent_server_ok(a);
                if (c->refused) {
                        log_ctx(CA_LOG_NOTICE, c->name, NULL,
                                "the server accepts this connector again");
                        c->refused = 0;
                        c->last_error[0] = '\0';
                }
                if (resp->status == 200 && resp->body_len)
                        take_page(c, resp);
                else {
                        free(c->continuation);
                        c->continuation = NULL;
                }
                schedule_next(c);
                return;
        }
        char why[512];
        if (resp->status == 403 || resp->status == 404) {
                snprintf(why, sizeof(why),
                         "the server refuses connector %s (HTTP %ld): check the connector id and "
                         "the agent's rights on the server",
                         c->name, resp->status);
                if (!c->refused)
                        log_ctx(CA_LOG_ERR, c->name, NULL, "%s", why);
                c->refused = 1;
                snprintf(c->last_error, sizeof(c->last_error), "%s", why);
                agent_server_ok(a); /* the server answered; this connector is the problem */
                if (a->mode != AGENT_DAEMON) {
                        c->cycle_done = 1;
                        a->exit_code = EXIT_INCOMPLETE;
                        agent_check_done(a);
                        return;
                }
                arm(c, POLL_REFUSED_MS / 2 + jitter_ms(POLL_REFUSED_MS / 2));
                return;
        }
        if (resp->status)
                snprintf(why, sizeof(why), "ProvisioningData for %s answered HTTP %ld", c->name,
                         resp->status);
        else
                snprintf(why, sizeof(why), "ProvisioningData for %s failed: %s", c->name,
                         resp->error ? resp->error : "no answer");
        snprintf(c->last_error, sizeof(c->last_error), "%s", why);
        agent_server_failed(a, why);
        if (a->mode != AGENT_DAEMON && c->poll_backoff.attempt + 1 >= POLL_ONCE_TRIES) {
                log_ctx(CA_LOG_ERR, c->name, NULL, "%s; giving up after %d tries", why,
                        POLL_ONCE_TRIES);
                c->cycle_done = 1;
                a->exit_code = EXIT_INCOMPLETE;
                agent_check_done(a);
                return;
        }
        uint64_t delay = agent_retry_delay(&c->poll_backoff, resp);
        log_ctx(CA_LOG_WARNING, c->name, NULL, "%s; next try in %llu ms", why,
                (unsigned long long)delay);
        arm(c, delay);
}

static void on_poll_timer(evutil_socket_t fd, short what, void *arg)
{
        struct connector *c = arg;
        struct agent *a = c->agent;
        if (a->phase != AGENT_RUNNING || c->poll_call)
                return;
        if (!has_room(c)) {
                log_ctx(CA_LOG_DEBUG, c->name, NULL,
                        "not polling: %zu orders in flight, %zu results unreported", c->in_flight,
                        c->unreported);
                arm(c, POLL_PAUSED_RECHECK_MS);
                return;
        }
        char path[POLL_PATH_MAX];
        char *id = http_escape(c->name);
        char *token = c->continuation ? http_escape(c->continuation) : NULL;
        if (!id || (c->continuation && !token)) {
                free(id);
                free(token);
                arm(c, POLL_PAUSED_RECHECK_MS);
                return;
        }
        int n =
            snprintf(path, sizeof(path), "/api/Connectors/Provisioning/ProvisioningData/%s", id);
        if (token)
                n += snprintf(path + n, sizeof(path) - (size_t)n, "?ContinuationToken=%s", token);
        if (a->cfg->server.page_size)
                snprintf(path + n, sizeof(path) - (size_t)n, "%cPageSize=%u", token ? '&' : '?',
                         a->cfg->server.page_size);
        free(id);
        free(token);
        if (api_call(a->api, "GET", path, NULL, on_poll_done, c, &c->poll_call) < 0)
                arm(c, backoff_next(&c->poll_backoff));
}
