/* SPDX-License-Identifier: Apache-2.0 */
/* connector_reporter: binds a connector's reporter stage (reporter.h) to the agent: the
 * journal is its queue, the API client its transport, a libevent timer its clock. The
 * stage itself holds no pointer into the agent; everything it may do to the world is
 * one of these callbacks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "poller.h"
#include "log.h"
#include "reporter.h"
#include "timeutil.h"

#define REPORT_PATH "/api/Connectors/Provisioning/ProvisioningResults"

struct connector_reporter {
        struct connector *c;
        struct reporter *stage;
        struct event *timer;
        struct api_call *call;
        reporter_answer_fn answer;
        char said[512]; /* the last error the stage gave to c->last_error */
};

static int op_read(void *ctx, size_t max, struct ca_result ***out, size_t *count,
                   struct ca_error *err)
{
        struct connector_reporter *cr = ctx;
        struct connector *c = cr->c;
        struct pipeline_env *a = c->env;
        if (c->standby) { /* another instance reports them (roles.h) */
                *out = NULL;
                *count = 0;
                return 0;
        }
        /* The journal's open batch is visible to our reads but not durable yet: results in
         * it must not leave the agent. Its commit (asked for here, should no writer have)
         * kicks us (connector_after_commit). */
        if (a->journal && journal_pending(a->journal)) {
                pipeline_journal_touched(a);
                return -EAGAIN;
        }
        int rc = journal_unreported(a->journal, c->name, max, out, count, err);
        /* A short read is the whole backlog: keep the counter exact. */
        if (rc >= 0 && *count < max)
                c->unreported = *count;
        return rc;
}

static int op_mark(void *ctx, const char *const *keys, size_t count, struct ca_error *err)
{
        struct connector_reporter *cr = ctx;
        return journal_mark_reported(cr->c->env->journal, cr->c->name, keys, count, err);
}

static int op_refuse(void *ctx, const char *key, const char *answer, struct ca_error *err)
{
        struct connector_reporter *cr = ctx;
        struct connector *c = cr->c;
        int rc = journal_refuse_result(c->env->journal, c->name, key, answer, err);
        if (rc < 0) {
                pipeline_journal_error(c->env, err);
                return rc;
        }
        if (rc == 0)
                return ca_error_set(err, -ENOENT, "the result of %s is not in the journal", key);
        c->refused++;
        c->unreported = c->unreported ? c->unreported - 1 : 0;
        pipeline_journal_touched(c->env); /* durable soon: until then reads wait */
        return 0;
}

/* What the heartbeat says while refused results wait for an operator. */
static void say_refused(struct connector_reporter *cr)
{
        struct connector *c = cr->c;
        snprintf(c->last_error, sizeof(c->last_error),
                 "%zu result(s) refused by the server (HTTP 400) wait in the journal: journal "
                 "list refused shows them and the server's answers; journal resend %s KEY...|--all "
                 "sends them again",
                 c->refused, c->name);
        snprintf(cr->said, sizeof(cr->said), "%s", c->last_error);
}

void connector_reporter_recount(struct connector_reporter *cr)
{
        struct connector *c = cr->c;
        struct ca_error err = {0};
        size_t n = 0;
        if (journal_refused_count(c->env->journal, c->name, &n, &err) < 0) {
                log_ctx(CA_LOG_ERR, c->name, NULL, "counting refused results: %s", err.msg);
                return;
        }
        c->refused = n;
        if (n && !c->last_error[0])
                say_refused(cr);
}

static void on_api_done(void *arg, const struct http_response *resp)
{
        struct connector_reporter *cr = arg;
        cr->call = NULL;
        if (resp->transport_error != CA_HTTP_CANCELLED)
                histogram_observe(&cr->c->report_latency, resp->elapsed_ms);
        cr->answer(cr->stage, resp);
}

static int op_send(void *ctx, const char *body, struct reporter *r, reporter_answer_fn answer)
{
        struct connector_reporter *cr = ctx;
        (void)r;
        cr->answer = answer;
        return api_call(cr->c->env->api, "PUT", REPORT_PATH, body, on_api_done, cr, &cr->call);
}

static void op_cancel(void *ctx)
{
        struct connector_reporter *cr = ctx;
        if (cr->call)
                api_cancel(cr->call);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
        struct connector_reporter *cr = arg;
        (void)fd;
        (void)what;
        reporter_timer_fired(cr->stage);
}

static void op_arm(void *ctx, uint64_t delay_ms)
{
        struct connector_reporter *cr = ctx;
        struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000)};
        evtimer_add(cr->timer, &tv);
}

static void op_disarm(void *ctx)
{
        struct connector_reporter *cr = ctx;
        evtimer_del(cr->timer);
}

static uint64_t op_now_ms(void *ctx)
{
        (void)ctx;
        return time_mono_ms();
}

static void op_delivered(void *ctx, size_t count)
{
        struct connector_reporter *cr = ctx;
        struct connector *c = cr->c;
        struct reporter_stats st;
        c->unreported = c->unreported > count ? c->unreported - count : 0;
        c->delivered += count;
        reporter_stats(cr->stage, &st);
        /* What the reporter said is over once results flow again; refused results that
         * still wait for an operator are said instead (an operator's resend from another
         * process shows here, as what was resent is delivered). */
        if (cr->said[0] && strcmp(c->last_error, cr->said) == 0) {
                c->last_error[0] = '\0';
                if (c->refused)
                        connector_reporter_recount(cr);
        }
        pipeline_journal_touched(c->env);
        poller_kick(c->poller);
}

static void op_server_ok(void *ctx)
{
        struct connector_reporter *cr = ctx;
        pipeline_server_ok(cr->c->env);
}

static void op_server_failed(void *ctx, const char *why)
{
        struct connector_reporter *cr = ctx;
        pipeline_server_failed(cr->c->env, why);
}

static void op_error(void *ctx, const char *why)
{
        struct connector_reporter *cr = ctx;
        snprintf(cr->c->last_error, sizeof(cr->c->last_error), "%s", why);
        snprintf(cr->said, sizeof(cr->said), "%s", cr->c->last_error);
}

static void op_idle(void *ctx)
{
        struct connector_reporter *cr = ctx;
        pipeline_check_done(cr->c->env);
}

static const struct reporter_ops connector_reporter_ops = {
    .read = op_read,
    .mark = op_mark,
    .refuse = op_refuse,
    .send = op_send,
    .cancel = op_cancel,
    .arm = op_arm,
    .disarm = op_disarm,
    .now_ms = op_now_ms,
    .delivered = op_delivered,
    .server_ok = op_server_ok,
    .server_failed = op_server_failed,
    .error = op_error,
    .idle = op_idle,
};

int connector_reporter_new(struct connector *c, struct ca_error *err)
{
        struct connector_reporter *cr = calloc(1, sizeof(*cr));
        if (!cr)
                return ca_error_set(err, -ENOMEM, "out of memory");
        cr->c = c;
        cr->timer = evtimer_new(c->env->base, on_timer, cr);
        if (!cr->timer) {
                free(cr);
                return ca_error_set(err, -ENOMEM, "out of memory");
        }
        const struct ca_config_agent *ag = &c->env->cfg->agent;
        int rc = reporter_new(&connector_reporter_ops, cr, c->name, ag->identifier,
                              ag->results_batch, &cr->stage, err);
        if (rc < 0) {
                event_free(cr->timer);
                free(cr);
                return rc;
        }
        c->report = cr;
        return 0;
}

void connector_reporter_free(struct connector *c)
{
        struct connector_reporter *cr = c->report;
        if (!cr)
                return;
        reporter_free(cr->stage);
        event_free(cr->timer);
        free(cr);
        c->report = NULL;
}

struct reporter *connector_reporter(const struct connector *c)
{
        return c->report ? c->report->stage : NULL;
}
