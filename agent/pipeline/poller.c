/* SPDX-License-Identifier: Apache-2.0 */
/* poller: a connector's ProvisioningData requests (poller.h). */
#include "poller.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "server_log.h"
#include "timeutil.h"

#define POLL_RETRY_BASE_MS     1000
#define POLL_RETRY_CAP_MS      (5 * 60 * 1000)
#define POLL_REFUSED_MS        (5 * 60 * 1000) /* 403/404: retry slowly */
#define POLL_PAUSED_RECHECK_MS 1000
#define POLL_ONCE_TRIES        3 /* --once and --dry-run: tries before giving up */
/* When another exchange shows the server answering again, a backoff longer than this is
 * cut to it: soon, but never more often than this while only ProvisioningData fails. */
#define POLL_SERVER_BACK_MS 5000

struct poller {
        struct pipeline_env *env;
        const char *name;
        const struct ca_config_connector *cfg;
        const struct poller_ops *ops;
        void *ctx;
        int in_flight; /* a GET was sent and its answer has not come */
        char *continuation;
        struct ca_backoff backoff;
        int cycle_done;   /* --once: the cycle's last page was fetched */
        int refused;      /* the server answered 403/404 */
        int waiting_room; /* the timer only rechecks back-pressure (poller_kick may cut it) */
        int backing_off;  /* the timer is a failure's backoff (poller_server_back may cut it) */
        int server_asked; /* ... and its delay is the server's Retry-After: never cut */
        uint64_t due_at_ms;
        unsigned long failures;
        struct histogram latency;
};

static void arm(struct poller *p, uint64_t delay_ms)
{
        p->backing_off = 0;
        p->due_at_ms = p->ops->now_ms(p->ctx) + delay_ms;
        p->ops->arm(p->ctx, delay_ms);
}

/* Between half and all of the interval, so that agents started together drift apart. */
static uint64_t next_interval(const struct poller *p)
{
        uint64_t iv = p->cfg->poll_interval_ms;
        return iv / 2 + jitter_ms(iv / 2);
}

static void said(struct poller *p, const char *error)
{
        p->ops->said(p->ctx, error);
}

static void forget_position(struct poller *p)
{
        free(p->continuation);
        p->continuation = NULL;
}

int poller_new(struct pipeline_env *env, const char *name, const struct ca_config_connector *cfg,
               const struct poller_ops *ops, void *ctx, struct poller **out, struct ca_error *err)
{
        *out = NULL;
        struct poller *p = calloc(1, sizeof(*p));
        if (!p)
                return ca_error_set(err, -ENOMEM, "poller: out of memory");
        p->env = env;
        p->name = name;
        p->cfg = cfg;
        p->ops = ops;
        p->ctx = ctx;
        backoff_init(&p->backoff, POLL_RETRY_BASE_MS, POLL_RETRY_CAP_MS);
        *out = p;
        return 0;
}

void poller_free(struct poller *p)
{
        if (!p)
                return;
        poller_stop(p);
        free(p->continuation);
        free(p);
}

void poller_reconfigure(struct poller *p, const struct ca_config_connector *cfg)
{
        p->cfg = cfg;
}

void poller_start(struct poller *p, uint64_t delay_ms)
{
        backoff_reset(&p->backoff);
        arm(p, delay_ms);
}

void poller_stop(struct poller *p)
{
        if (!p)
                return;
        p->ops->disarm(p->ctx);
        if (p->in_flight)
                p->ops->cancel(p->ctx);
}

void poller_kick(struct poller *p)
{
        /* Back-pressure lifted: poll now if we were only waiting for room. A timer armed
         * for a backoff, a Retry-After or the poll interval is left alone. */
        if (p->env->phase == AGENT_RUNNING && p->waiting_room && !p->in_flight && !p->cycle_done)
                arm(p, 0);
}

void poller_server_back(struct poller *p)
{
        if (!p || !p->backing_off || p->server_asked || p->in_flight || p->cycle_done ||
            p->env->phase != AGENT_RUNNING)
                return;
        if (p->due_at_ms > p->ops->now_ms(p->ctx) + POLL_SERVER_BACK_MS) {
                arm(p, POLL_SERVER_BACK_MS / 2 + jitter_ms(POLL_SERVER_BACK_MS / 2));
                p->backing_off = 1; /* still a failure's wait, now a short one */
        }
}

int poller_cycle_done(const struct poller *p)
{
        return p->cycle_done;
}

int poller_refused(const struct poller *p)
{
        return p->refused;
}

void poller_stats(const struct poller *p, struct poller_stats *out)
{
        out->backoff_attempts = p->backoff.attempt;
        out->failures = p->failures;
        out->latency = &p->latency;
}

static void schedule_next(struct poller *p)
{
        struct pipeline_env *a = p->env;
        if (a->phase != AGENT_RUNNING)
                return;
        if (a->mode != AGENT_DAEMON) {
                if (p->continuation) {
                        arm(p, 0);
                } else {
                        p->cycle_done = 1;
                        pipeline_check_done(a);
                }
                return;
        }
        arm(p, p->continuation ? 0 : next_interval(p));
}

static void take_page(struct poller *p, const struct http_response *resp)
{
        struct ca_order_page page = {0};
        struct ca_error err = {0};
        if (order_page_parse(resp->body, resp->body_len, &page, &err) < 0) {
                char why[CA_ERROR_MAX + 64];
                log_ctx(CA_LOG_ERR, p->name, NULL, "ProvisioningData answer rejected: %s", err.msg);
                snprintf(why, sizeof(why), "bad ProvisioningData answer: %s", err.msg);
                said(p, why);
                forget_position(p);
                arm(p, backoff_next(&p->backoff));
                return;
        }
        backoff_reset(&p->backoff);
        if (page.skipped)
                log_ctx(CA_LOG_ERR, p->name, NULL,
                        "%zu order(s) in the page cannot be identified (no Id and no "
                        "AssignedResourceTypeId) and were ignored",
                        page.skipped);
        p->ops->take(p->ctx, &page);
        forget_position(p);
        if (page.continuation_token && page.continuation_token[0])
                p->continuation = strdup(page.continuation_token);
        order_page_clear(&page);
        schedule_next(p);
}

static void on_poll_done(struct poller *p, const struct http_response *resp)
{
        struct pipeline_env *a = p->env;
        p->in_flight = 0;
        if (resp->transport_error == CA_HTTP_CANCELLED)
                return;
        histogram_observe(&p->latency, resp->elapsed_ms);
        if (resp->status != 200 && resp->status != 204)
                p->failures++;
        if (resp->status == 200 || resp->status == 204) {
                pipeline_server_ok(a);
                if (p->refused) {
                        log_ctx(CA_LOG_NOTICE, p->name, NULL,
                                "the server accepts this connector again");
                        p->refused = 0;
                        said(p, NULL);
                }
                if (resp->status == 200 && resp->body_len) {
                        take_page(p, resp);
                        return;
                }
                forget_position(p);
                schedule_next(p);
                return;
        }
        char why[512];
        if (resp->status == 403 || resp->status == 404) {
                snprintf(why, sizeof(why),
                         "the server refuses connector %s (HTTP %ld): check the connector id and "
                         "the agent's rights on the server",
                         p->name, resp->status);
                if (!p->refused)
                        log_ctx(CA_LOG_ERR, p->name, NULL, "%s", why);
                p->refused = 1;
                said(p, why);
                pipeline_server_ok(a); /* the server answered; this connector is the problem */
                if (a->mode != AGENT_DAEMON) {
                        p->cycle_done = 1;
                        a->exit_code = EXIT_INCOMPLETE;
                        pipeline_check_done(a);
                        return;
                }
                arm(p, POLL_REFUSED_MS / 2 + jitter_ms(POLL_REFUSED_MS / 2));
                return;
        }
        if (resp->status)
                snprintf(why, sizeof(why), "ProvisioningData for %s answered HTTP %ld", p->name,
                         resp->status);
        else
                snprintf(why, sizeof(why), "ProvisioningData for %s failed: %s", p->name,
                         resp->error ? resp->error : "no answer");
        said(p, why);
        pipeline_server_failed(a, why);
        if (a->mode != AGENT_DAEMON && p->backoff.attempt + 1 >= POLL_ONCE_TRIES) {
                log_ctx(CA_LOG_ERR, p->name, NULL, "%s; giving up after %d tries", why,
                        POLL_ONCE_TRIES);
                p->cycle_done = 1;
                a->exit_code = EXIT_INCOMPLETE;
                pipeline_check_done(a);
                return;
        }
        int asked = 0;
        uint64_t delay = backoff_after(&p->backoff, resp->status, resp->retry_after,
                                       resp->retry_after_s, &asked);
        /* Once the cause is in the log (server_log), each retry only counts. */
        log_ctx(server_log_is_repeat(why) ? CA_LOG_DEBUG : CA_LOG_WARNING, p->name, NULL,
                "%s; next try in %llu ms", why, (unsigned long long)delay);
        arm(p, delay);
        p->backing_off = 1;
        p->server_asked = asked;
}

void poller_timer_fired(struct poller *p)
{
        struct pipeline_env *a = p->env;
        if (a->phase != AGENT_RUNNING || p->in_flight)
                return;
        p->waiting_room = !p->ops->has_room(p->ctx);
        if (p->waiting_room) {
                arm(p, POLL_PAUSED_RECHECK_MS);
                return;
        }
        char *path = NULL;
        struct ca_error err = {0};
        int rc = api_data_path(p->name, p->continuation, a->cfg->server.page_size, &path, &err);
        if (rc == -E2BIG) {
                /* Never sent cut short: the page's orders are taken, and paging starts over
                 * (an order left unanswered comes again after its lease). */
                log_ctx(CA_LOG_ERR, p->name, NULL, "%s: paging starts over", err.msg);
                said(p, err.msg);
                forget_position(p);
                rc = api_data_path(p->name, NULL, a->cfg->server.page_size, &path, &err);
        }
        if (rc == 0) {
                p->in_flight = 1;
                rc = p->ops->send(p->ctx, path, p, on_poll_done);
                if (rc < 0)
                        p->in_flight = 0;
        }
        free(path);
        if (rc < 0) {
                log_ctx(CA_LOG_ERR, p->name, NULL, "cannot build the ProvisioningData request: %s",
                        rc == -E2BIG ? "its URL is too long" : strerror(-rc));
                arm(p, backoff_next(&p->backoff));
        }
}
