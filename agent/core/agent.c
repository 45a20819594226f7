/* SPDX-License-Identifier: Apache-2.0 */
#include "agent.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "server_log.h"
#include "notify.h"
#include "reporter.h"
#include "roles.h"
#include "status_http.h"
#include "timeutil.h"

/* The prefix of the error the journal gives each connector while it fails. */
#define JOURNAL_FAILED_PREFIX "journal write failed: "

#define AGENT_PRIORITIES            3
#define AGENT_PRIORITY_COMMIT       2 /* lowest: runs once the loop has nothing else to do */
#define AGENT_JOURNAL_RETRY_BASE_MS 1000
#define AGENT_JOURNAL_RETRY_CAP_MS  60000
#define AGENT_FAREWELL_TIMEOUT_MS   5000
/* At exit, how long a worker may take to leave a back-end call before the agent gives
 * up on it: the shutdown deadline has already passed (or a second signal came). */
#define AGENT_JOIN_GRACE_MS      500
#define AGENT_STATUS_INTERVAL_MS 30000
#define AGENT_PRUNE_INTERVAL_MS  (60 * 60 * 1000)
#define AGENT_USER_AGENT         "connector-agent/" CA_VERSION

static void begin_shutdown(struct agent *a, const char *why);

/* --- the group commit --------------------------------------------------------------- */

int agent_journal_failing(const struct agent *a)
{
        return a->env.journal_broken || a->journal_unproven;
}

/* A commit that wrote something succeeded: the journal works. */
static void journal_proven(struct agent *a)
{
        a->journal_unproven = 0;
        log_notice("journal writable again");
        /* What agent_journal_error told the heartbeat is over. */
        for (size_t i = 0; i < a->connector_count; i++)
                if (strncmp(a->connectors[i]->last_error, JOURNAL_FAILED_PREFIX,
                            strlen(JOURNAL_FAILED_PREFIX)) == 0)
                        a->connectors[i]->last_error[0] = '\0';
        backoff_reset(&a->journal_backoff);
        agent_status_changed(a);
}

static void on_commit(evutil_socket_t fd, short what, void *arg)
{
        struct agent *a = arg;
        struct ca_error err = {0};
        a->commit_scheduled = 0;
        if (a->env.journal_broken)
                return; /* the retry path writes and commits */
        unsigned wrote = a->env.mode != AGENT_DRY_RUN ? journal_pending(a->env.journal) : 0;
        if (a->env.mode != AGENT_DRY_RUN && journal_commit(a->env.journal, &err) < 0) {
                agent_journal_error(a, &err);
                return;
        }
        if (a->journal_unproven && wrote)
                journal_proven(a);
        for (size_t i = 0; i < a->connector_count; i++)
                connector_after_commit(a->connectors[i]);
}

void agent_journal_touched(struct agent *a)
{
        if (a->commit_scheduled || !a->commit_ev)
                return;
        a->commit_scheduled = 1;
        event_active(a->commit_ev, 0, 0);
}

static void farewell(struct agent *a);

/* What this instance holds in memory may be stale (roles.h): it ends at once, without
 * the drain, whose writes the journal would refuse anyway. */
static void role_lost(struct agent *a, const char *why)
{
        log_error("%s: stopping, so that nothing this instance still holds lands over the work "
                  "of the instance serving the connector now (exit %d; restarted, it stands by)",
                  why, EXIT_ROLE_LOST);
        a->env.exit_code = EXIT_ROLE_LOST;
        notify_stopping();
        for (size_t i = 0; i < a->connector_count; i++)
                poller_stop(a->connectors[i]->poller);
        roles_stop(a);
        farewell(a);
}

/* The results that waited for a failed batch, written again. */
static int write_results_again(struct agent *a, struct ca_error *err)
{
        int rc = 0;
        for (size_t i = 0; rc >= 0 && i < a->connector_count; i++) {
                struct connector *c = a->connectors[i];
                for (size_t k = 0; rc >= 0 && k < c->to_finish.count; k++) {
                        rc = journal_finish(a->env.journal, c->name, c->to_finish.items[k], err);
                        if (rc == -EEXIST)
                                rc = 0;
                }
        }
        return rc;
}

static void on_journal_retry(evutil_socket_t fd, short what, void *arg)
{
        struct agent *a = arg;
        struct ca_error err = {0};
        /* A write that failed mid-batch (PostgreSQL gone, where SQLite fails at COMMIT)
         * leaves its error for a commit to acknowledge; agent_journal_error already
         * dropped what the batch held, so acknowledge it here, or every write below is
         * refused for good. Its error was logged when it happened. */
        journal_commit(a->env.journal, NULL);
        /* The session may be found lost only by the first write (its reconnect): the
         * roles are then taken back and the writes tried once more. */
        int rc = 0;
        for (int pass = 0; pass < 2; pass++) {
                rc = roles_retake(a, &err);
                if (rc == -ESTALE) {
                        role_lost(a, err.msg);
                        return;
                }
                if (rc == 0)
                        rc = write_results_again(a, &err);
                if (rc != -ESTALE)
                        break;
                journal_commit(a->env.journal, NULL);
        }
        unsigned wrote = journal_pending(a->env.journal);
        if (rc >= 0)
                rc = journal_commit(a->env.journal, &err);
        if (rc < 0) {
                uint64_t delay = backoff_next(&a->journal_backoff);
                log_error("journal still failing (%s); next try in %llu ms", err.msg,
                          (unsigned long long)delay);
                struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)((delay % 1000) * 1000)};
                evtimer_add(a->journal_retry, &tv);
                return;
        }
        a->env.journal_broken = 0;
        if (wrote) {
                log_notice("journal: %u write(s) recorded again: taking orders again", wrote);
                journal_proven(a);
        } else {
                /* An empty commit proves nothing on a full disk: take orders to have
                 * something to write, and keep saying the journal fails until it lands. */
                a->journal_unproven = 1;
                log_notice("journal: nothing waited to be written again; taking orders again, "
                           "reported as failing until a write succeeds");
        }
        for (size_t i = 0; i < a->connector_count; i++) {
                connector_after_commit(a->connectors[i]);
                if (a->env.mode == AGENT_DAEMON && a->env.phase == AGENT_RUNNING &&
                    !a->connectors[i]->standby)
                        poller_start(a->connectors[i]->poller, 0);
        }
        agent_status_changed(a);
}

void agent_journal_error(struct agent *a, const struct ca_error *err)
{
        /* A refusal (an order in an unexpected state) is a bug to log, not a broken disk:
         * only a failed write loses the open batch. */
        if (err && (err->code == -EINVAL || err->code == -ENOENT || err->code == -EEXIST)) {
                log_error("journal: %s", err->msg);
                return;
        }
        for (size_t i = 0; i < a->connector_count; i++)
                connector_commit_failed(a->connectors[i]);
        if (a->env.journal_broken)
                return;
        a->env.journal_broken = 1;
        if (a->journal_unproven) {
                uint64_t delay = backoff_next(&a->journal_backoff);
                log_error("journal still failing (%s); next try in %llu ms",
                          err && err->msg[0] ? err->msg : "unknown error",
                          (unsigned long long)delay);
                struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)((delay % 1000) * 1000)};
                evtimer_add(a->journal_retry, &tv);
                agent_status_changed(a);
                return;
        }
        log_error("journal write failed: %s; not taking new orders until it works again (results "
                  "already executed are kept and written again)",
                  err && err->msg[0] ? err->msg : "unknown error");
        for (size_t i = 0; i < a->connector_count; i++)
                snprintf(a->connectors[i]->last_error, sizeof(a->connectors[i]->last_error),
                         JOURNAL_FAILED_PREFIX "%s", err ? err->msg : "");
        uint64_t delay = backoff_next(&a->journal_backoff);
        struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)((delay % 1000) * 1000)};
        evtimer_add(a->journal_retry, &tv);
        agent_status_changed(a);
}

/* --- the agent's view of the server ------------------------------------------------- */

void agent_status_changed(struct agent *a)
{
        char status[256];
        unsigned long done = 0, errored = 0;
        size_t pending = 0, down = 0, standby = 0;
        for (size_t i = 0; i < a->connector_count; i++) {
                const struct connector *c = a->connectors[i];
                done += c->executed;
                errored += c->errored;
                pending += c->unreported;
                down += !c->target_connected || poller_refused(c->poller);
                standby += c->standby;
        }
        char roles[64] = "";
        if (standby)
                snprintf(roles, sizeof(roles), ", standing by for %zu connector(s)", standby);
        snprintf(status, sizeof(status), "%s%s; %lu executed, %lu errored, %zu results pending%s%s",
                 a->server_connected ? "connected" : "disconnected",
                 agent_journal_failing(a) ? ", journal failing" : "", done, errored, pending,
                 down ? ", some connectors down" : "", roles);
        notify_status(status);
}

void agent_server_ok(struct agent *a)
{
        a->last_success_ms = time_mono_ms();
        a->last_success_wall = time_wall_s();
        a->first_failure_ms = 0;
        server_log_ok();
        heartbeat_server_ok(a->heartbeat);
        heartbeat_server_answered(a->heartbeat);
        /* Results and pages waiting out a backoff because the server was away go soon. */
        for (size_t i = 0; i < a->connector_count; i++) {
                reporter_server_back(connector_reporter(a->connectors[i]));
                poller_server_back(a->connectors[i]->poller);
        }
        if (!a->server_connected) {
                a->server_connected = 1;
                log_notice("connected to %s", a->cfg->server.url);
                agent_status_changed(a);
        }
        if (!a->ready_sent) {
                a->ready_sent = 1;
                notify_ready();
        }
}

void agent_server_failed(struct agent *a, const char *why)
{
        uint64_t now = time_mono_ms();
        server_log_failed(why); /* the cause once, then a count */
        if (!a->first_failure_ms)
                a->first_failure_ms = now;
        if (a->server_connected && now - a->first_failure_ms >= a->cfg->agent.disconnect_grace_ms) {
                a->server_connected = 0;
                log_error("disconnected from %s: %s", a->cfg->server.url, why);
                agent_status_changed(a);
        }
}

/* --- process life ------------------------------------------------------------------- */

static size_t total_unreported(const struct agent *a)
{
        size_t n = 0;
        for (size_t i = 0; i < a->connector_count; i++)
                n += a->connectors[i]->unreported;
        return n;
}

static void progress_counts_of(const struct agent *a, struct progress_counts *pc)
{
        memset(pc, 0, sizeof(*pc));
        for (size_t i = 0; i < a->connector_count; i++) {
                const struct connector *c = a->connectors[i];
                pc->executed += c->executed;
                pc->errored += c->errored;
                pc->delivered += c->delivered;
                pc->pending += connector_in_flight(c);
                pc->undelivered += c->unreported;
        }
}

static void on_progress_timer(evutil_socket_t fd, short what, void *arg)
{
        struct agent *a = arg;
        struct progress_counts pc;
        char line[256];
        progress_counts_of(a, &pc);
        if (progress_tick(&a->progress, time_mono_ms(), &pc, line, sizeof(line)))
                log_info("%s", line);
}

static void finish(struct agent *a)
{
        if (a->env.phase != AGENT_DONE && a->env.mode != AGENT_DRY_RUN) {
                struct progress_counts pc;
                char line[256];
                progress_counts_of(a, &pc);
                progress_summary(&pc, line, sizeof(line));
                log_notice("%s", line);
        }
        a->env.phase = AGENT_DONE;
        if (a->drain_timer)
                evtimer_del(a->drain_timer);
        event_base_loopexit(a->env.base, NULL);
}

static void on_farewell_timeout(evutil_socket_t fd, short what, void *arg)
{
        struct agent *a = arg;
        log_warning("the server did not answer the DISCONNECTED heartbeat in time");
        heartbeat_stop(a->heartbeat);
        finish(a);
}

static void farewell(struct agent *a)
{
        a->env.phase = AGENT_FAREWELL;
        for (size_t i = 0; i < a->connector_count; i++)
                reporter_stop(connector_reporter(a->connectors[i]));
        size_t left = total_unreported(a);
        if (left) {
                log_warning("%zu result(s) not delivered yet: they stay in the journal and are "
                            "sent at the next start",
                            left);
                if (a->env.mode == AGENT_ONCE)
                        a->env.exit_code = EXIT_INCOMPLETE;
        }
        if (a->env.mode == AGENT_DRY_RUN) {
                finish(a);
                return;
        }
        struct timeval tv = {AGENT_FAREWELL_TIMEOUT_MS / 1000, 0};
        evtimer_del(a->drain_timer);
        event_assign(a->drain_timer, a->env.base, -1, 0, on_farewell_timeout, a);
        evtimer_add(a->drain_timer, &tv);
        heartbeat_send_farewell(a->heartbeat);
}

/* The one driver of the run's end: every stage asks through agent_check_done, which only
 * makes this event active, so the decision runs once per loop turn, after the stage's
 * own handler has returned, never inside another stage's call chain. */
static void on_check_done(evutil_socket_t fd, short what, void *arg)
{
        struct agent *a = arg;
        a->check_scheduled = 0;
        if (a->env.phase == AGENT_RUNNING && a->env.mode != AGENT_DAEMON) {
                for (size_t i = 0; i < a->connector_count; i++)
                        if (!poller_cycle_done(a->connectors[i]->poller) ||
                            !connector_idle(a->connectors[i]))
                                return;
                begin_shutdown(a, a->env.mode == AGENT_DRY_RUN ? "dry run complete"
                                                               : "cycle complete");
                return;
        }
        if (a->env.phase == AGENT_DRAINING) {
                for (size_t i = 0; i < a->connector_count; i++) {
                        struct connector *c = a->connectors[i];
                        if (!connector_idle(c) || c->to_finish.count)
                                return;
                }
                if (a->commit_scheduled)
                        return;
                if (a->env.mode != AGENT_DRY_RUN && !a->env.journal_broken) {
                        for (size_t i = 0; i < a->connector_count; i++) {
                                struct connector *c = a->connectors[i];
                                /* A failing PUT is given until the deadline; --once gives up on
                                 * the first failure, its results stay for the next run. */
                                struct reporter *r = connector_reporter(c);
                                struct reporter_stats st;
                                reporter_stats(r, &st);
                                /* Refused results wait for an operator, not for the drain. */
                                if (c->unreported > st.refused &&
                                    !(reporter_failing(r) && a->env.mode == AGENT_ONCE))
                                        return;
                        }
                }
                farewell(a);
                return;
        }
        if (a->env.phase == AGENT_FAREWELL && a->farewell_sent)
                finish(a);
}

void agent_check_done(struct agent *a)
{
        if (a->check_scheduled || !a->check_ev)
                return;
        a->check_scheduled = 1;
        event_active(a->check_ev, 0, 0);
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
        struct agent *a = arg;
        size_t running = 0;
        for (size_t i = 0; i < a->connector_count; i++)
                running += connector_in_flight(a->connectors[i]);
        log_warning("shutdown deadline reached with %zu order(s) still running: they are "
                    "settled at the next start",
                    running);
        farewell(a);
}

static void begin_shutdown(struct agent *a, const char *why)
{
        if (a->env.phase != AGENT_RUNNING)
                return;
        log_notice("stopping: %s", why);
        notify_stopping();
        a->env.phase = AGENT_DRAINING;
        notify_extend_timeout(a->cfg->agent.shutdown_deadline_ms + AGENT_FAREWELL_TIMEOUT_MS);
        for (size_t i = 0; i < a->connector_count; i++)
                connector_drain(a->connectors[i]);
        uint64_t ms = a->cfg->agent.shutdown_deadline_ms;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
        evtimer_add(a->drain_timer, &tv);
        agent_check_done(a);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
        struct agent *a = arg;
        if (a->env.phase != AGENT_RUNNING) {
                /* A second signal: leave now. The journal keeps what was not finished. */
                log_warning("second stop signal: exiting at once");
                a->env.exit_code = a->env.exit_code ? a->env.exit_code : EXIT_OK;
                finish(a);
                return;
        }
        begin_shutdown(a, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void set_config(struct agent *a, struct ca_config *cfg)
{
        a->cfg = cfg;
        a->env.cfg = cfg;
}

struct retired_config {
        struct ca_config *cfg;
        uint64_t *fences; /* per connector, executor_workers() marks each */
};

static void retired_free(struct retired_config *r)
{
        config_free(r->cfg);
        free(r->fences);
}

/* Keeps the configuration being replaced until the jobs submitted under it are back:
 * a job borrows its mapping. Held orders are remapped instead (connector_reloaded). */
static int retire_config(struct agent *a)
{
        if (a->cfg == a->base_cfg)
                return 0; /* lives until agent_free anyway */
        size_t marks = 0;
        for (size_t i = 0; i < a->connector_count; i++)
                marks += executor_workers(a->connectors[i]->exec);
        struct retired_config *r = realloc(a->retired, (a->retired_count + 1) * sizeof(*r));
        if (!r)
                return -ENOMEM;
        a->retired = r;
        uint64_t *fences = calloc(marks ? marks : 1, sizeof(*fences));
        if (!fences)
                return -ENOMEM;
        for (size_t i = 0, at = 0; i < a->connector_count; i++) {
                struct executor *e = a->connectors[i]->exec;
                executor_fence(e, fences + at);
                at += executor_workers(e);
        }
        a->retired[a->retired_count++] = (struct retired_config){a->cfg, fences};
        return 0;
}

/* Frees every retired configuration no job borrows from any more. */
static void release_retired(struct agent *a)
{
        size_t kept = 0;
        for (size_t k = 0; k < a->retired_count; k++) {
                struct retired_config *r = &a->retired[k];
                int passed = 1;
                for (size_t i = 0, at = 0; passed && i < a->connector_count; i++) {
                        struct executor *e = a->connectors[i]->exec;
                        passed = executor_fence_passed(e, r->fences + at);
                        at += executor_workers(e);
                }
                if (passed)
                        retired_free(r);
                else
                        a->retired[kept++] = *r;
        }
        a->retired_count = kept;
}

/* SIGHUP: a new configuration is validated like a start's (the plug-ins judge their
 * settings and mappings too) and refused whole when anything is wrong. What running
 * connections, threads and plug-in instances are bound to needs a restart and is said
 * so; everything else applies at once: log level, intervals, limits, batch sizes, and the
 * resource-type mappings. The old configuration stays allocated: running jobs point into
 * it. */
static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
        struct agent *a = arg;
        notify_reloading();
        struct ca_config *fresh = NULL;
        struct ca_config_diag diag = {0};
        extern char **environ;
        const char *path = a->config_path ? a->config_path : a->cfg->path;
        if (config_load(path, environ, &fresh, &diag) < 0 ||
            agent_check_backends(fresh, &diag) < 0) {
                a->reloads_refused++;
                log_error("reload refused, keeping the running configuration:");
                for (size_t i = 0; i < diag.count; i++)
                        log_error("  %s", diag.lines[i]);
                config_diag_clear(&diag);
                config_free(fresh);
                notify_ready();
                return;
        }
        /* What waits for a restart is named key by key (the keyword table says which). */
        char why[512] = "", changed[8] = "";
        config_changed_keys(a->cfg, fresh, true, why, sizeof(why));
        size_t changes = config_changed_keys(a->cfg, fresh, false, changed, sizeof(changed));
        if (retire_config(a) < 0) {
                log_error("reload refused: out of memory");
                config_free(fresh);
                notify_ready();
                return;
        }
        set_config(a, fresh);
        for (size_t i = 0; i < a->connector_count; i++) {
                struct connector *c = a->connectors[i];
                const struct ca_config_connector *nc = config_find_connector(fresh, c->name);
                if (nc)
                        c->cfg = nc;
                connector_reloaded(c);
        }
        release_retired(a);
        enum ca_log_level level;
        if (log_level_parse(fresh->agent.log_level, &level) == 0)
                log_set_level(level);
        enum ca_log_format format;
        if (log_format_parse(fresh->agent.log_format, &format) == 0)
                log_set_format(format);
        a->reloads++;
        if (!changes) /* a reload that changes nothing is not news; the metric counts it */
                log_debug("configuration %s reloaded: nothing changed",
                          path ? path : "(environment)");
        else
                log_notice("configuration %s reloaded%s%s%s", path ? path : "(environment)",
                           why[0] ? "; these changes apply at the next restart: " : "", why,
                           why[0] ? "" : "; everything applies now");
        notify_ready();
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
        struct agent *a = arg;
        uint64_t now = time_mono_ms();
        for (size_t i = 0; i < a->connector_count; i++) {
                struct executor *e = a->connectors[i]->exec;
                if (executor_wedged(e, now)) {
                        uint64_t stalled = executor_stalled_ms(e, now);
                        log_error("connector %s: a worker has made no progress for %llu ms; "
                                  "withholding the watchdog ping",
                                  a->connectors[i]->name, (unsigned long long)stalled);
                        return;
                }
        }
        notify_watchdog();
}

/* Reported entries are kept for journal_retention (for an operator's questions and for
 * re-deliveries), then deleted: at start, then every hour. */
static void on_prune_timer(evutil_socket_t fd, short what, void *arg)
{
        struct agent *a = arg;
        struct ca_error err = {0};
        if (a->env.journal_broken || a->env.mode == AGENT_DRY_RUN)
                return;
        int n = journal_prune(a->env.journal, time_wall_s(),
                              (int64_t)(a->cfg->agent.journal_retention_ms / 1000), &err);
        if (n < 0) {
                agent_journal_error(a, &err);
                return;
        }
        if (n > 0)
                log_info("journal: %d reported entr%s older than the retention deleted", n,
                         n == 1 ? "y" : "ies");
        if (journal_pending(a->env.journal))
                agent_journal_touched(a); /* even an empty delete opened the batch */
}

static void on_status_timer(evutil_socket_t fd, short what, void *arg)
{
        release_retired(arg);
        agent_status_changed(arg);
}

/* --- set-up ------------------------------------------------------------------------- */

/* The pipeline's calls up (pipeline.h) and the heartbeat's (heartbeat.h). */
static void op_journal_touched(void *ctx)
{
        agent_journal_touched(ctx);
}
static void op_journal_error(void *ctx, const struct ca_error *err)
{
        agent_journal_error(ctx, err);
}
static int op_journal_failing(void *ctx)
{
        return agent_journal_failing(ctx);
}
static void op_server_ok(void *ctx)
{
        agent_server_ok(ctx);
}
static void op_server_failed(void *ctx, const char *why)
{
        agent_server_failed(ctx, why);
}
static void op_status_changed(void *ctx)
{
        agent_status_changed(ctx);
}
static void op_check_done(void *ctx)
{
        agent_check_done(ctx);
}

static const struct pipeline_ops pipeline_agent = {
    .journal_touched = op_journal_touched,
    .journal_error = op_journal_error,
    .journal_failing = op_journal_failing,
    .server_ok = op_server_ok,
    .server_failed = op_server_failed,
    .status_changed = op_status_changed,
    .check_done = op_check_done,
};

static json_t *heartbeat_connectors(void *ctx)
{
        struct agent *a = ctx;
        json_t *conns = json_array();
        for (size_t i = 0; conns && i < a->connector_count; i++)
                json_array_append_new(conns, connector_status_json(a->connectors[i]));
        return conns;
}

static int64_t heartbeat_last_connected(void *ctx)
{
        const struct agent *a = ctx;
        return a->last_success_wall;
}

static void heartbeat_farewell_done(void *ctx)
{
        struct agent *a = ctx;
        a->farewell_sent = 1;
        agent_check_done(a);
}

static const struct heartbeat_ops heartbeat_agent = {
    .connectors = heartbeat_connectors,
    .last_connected = heartbeat_last_connected,
    .farewell_done = heartbeat_farewell_done,
};

static struct backend *find_backend(const struct agent *a, const char *name)
{
        for (size_t i = 0; i < a->backend_count; i++)
                if (strcmp(backend_name(a->backends[i]), name) == 0)
                        return a->backends[i];
        return NULL;
}

static int load_backends(struct agent *a, struct ca_error *err)
{
        const struct ca_config *cfg = a->cfg;
        a->backends = calloc(cfg->connector_count ? cfg->connector_count : 1, sizeof(*a->backends));
        if (!a->backends)
                return ca_error_set(err, -ENOMEM, "out of memory");
        /* Plug-ins that keep files across runs (exec's process groups) find them here. */
        backend_host_set_state_dir(a->env.mode == AGENT_DRY_RUN ? NULL : cfg->agent.state_dir);
        for (size_t i = 0; i < cfg->connector_count; i++) {
                const char *name = cfg->connectors[i].backend;
                int have = 0;
                for (size_t k = 0; k < a->backend_count; k++)
                        have |= strcmp(backend_name(a->backends[k]), name) == 0;
                if (have)
                        continue;
                int rc =
                    backend_load(cfg->agent.backend_dir, name, &a->backends[a->backend_count], err);
                if (rc < 0)
                        return rc;
                a->backend_count++;
        }
        return 0;
}

static int open_journal(struct agent *a, struct ca_error *err)
{
        struct stat st;
        const char *dir = a->cfg->agent.state_dir;
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return ca_error_set(err, -ENOENT,
                                    "state directory %s does not exist (state_dir; systemd creates "
                                    "it with StateDirectory=)",
                                    dir);
        return journal_open_config(&a->cfg->agent, &a->env.journal, err);
}

int agent_new(struct ca_config *cfg, const char *config_path, enum agent_mode mode,
              struct agent **out, struct ca_error *err)
{
        struct agent *a = calloc(1, sizeof(*a));
        if (!a)
                return ca_error_set(err, -ENOMEM, "out of memory");
        set_config(a, cfg);
        a->env.mode = mode;
        a->env.ops = &pipeline_agent;
        a->env.ctx = a;
        a->config_path = config_path ? strdup(config_path) : NULL;
        a->started_at = time_wall_s();
        if (gethostname(a->hostname, sizeof(a->hostname) - 1) < 0)
                snprintf(a->hostname, sizeof(a->hostname), "unknown");
        backoff_init(&a->journal_backoff, AGENT_JOURNAL_RETRY_BASE_MS, AGENT_JOURNAL_RETRY_CAP_MS);
        int rc = -ENOMEM;
        a->env.base = event_base_new();
        if (!a->env.base || event_base_priority_init(a->env.base, AGENT_PRIORITIES) < 0) {
                ca_error_set(err, rc, "cannot create the event loop");
                goto fail;
        }
        a->commit_ev = event_new(a->env.base, -1, 0, on_commit, a);
        a->check_ev = event_new(a->env.base, -1, 0, on_check_done, a);
        a->journal_retry = evtimer_new(a->env.base, on_journal_retry, a);
        a->drain_timer = evtimer_new(a->env.base, on_drain_deadline, a);
        a->status_timer = event_new(a->env.base, -1, EV_PERSIST, on_status_timer, a);
        a->prune_timer = event_new(a->env.base, -1, EV_PERSIST, on_prune_timer, a);
        if (!a->commit_ev || !a->check_ev || !a->journal_retry || !a->drain_timer ||
            !a->status_timer || !a->prune_timer || roles_events_new(a) < 0) {
                ca_error_set(err, rc, "out of memory");
                goto fail;
        }
        event_priority_set(a->commit_ev, AGENT_PRIORITY_COMMIT);
        event_priority_set(a->check_ev, AGENT_PRIORITY_COMMIT);

        rc = open_journal(a, err);
        if (rc < 0)
                goto fail;
        rc = load_backends(a, err);
        if (rc < 0)
                goto fail;
        rc = http_new(a->env.base, &cfg->server, AGENT_USER_AGENT, &a->http, err);
        if (rc < 0)
                goto fail;
        rc = api_new(a->env.base, a->http, &cfg->server, &a->env.api, err);
        if (rc < 0)
                goto fail;
        a->connectors =
            calloc(cfg->connector_count ? cfg->connector_count : 1, sizeof(*a->connectors));
        if (!a->connectors) {
                rc = ca_error_set(err, -ENOMEM, "out of memory");
                goto fail;
        }
        for (size_t i = 0; i < cfg->connector_count; i++) {
                rc = connector_new(&a->env, &cfg->connectors[i],
                                   find_backend(a, cfg->connectors[i].backend), &a->connectors[i],
                                   err);
                if (rc < 0)
                        goto fail;
                a->connector_count++;
        }
        if (mode != AGENT_DRY_RUN) {
                rc = heartbeat_new(&a->env, a->hostname, a->started_at, &heartbeat_agent, a,
                                   &a->heartbeat, err);
                if (rc < 0)
                        goto fail;
        }
        if (cfg->agent.status_port && mode == AGENT_DAEMON) {
                rc = status_http_start(a, &a->status, err);
                if (rc < 0)
                        goto fail;
        }
        a->owns_cfg = 1;
        a->base_cfg = cfg;
        *out = a;
        return 0;
fail:
        agent_free(a);
        return rc;
}

int agent_run(struct agent *a)
{
        struct ca_error err = {0};
        a->sig_term = evsignal_new(a->env.base, SIGTERM, on_stop_signal, a);
        a->sig_int = evsignal_new(a->env.base, SIGINT, on_stop_signal, a);
        a->sig_hup = evsignal_new(a->env.base, SIGHUP, on_reload_signal, a);
        if (!a->sig_term || !a->sig_int || !a->sig_hup || evsignal_add(a->sig_term, NULL) < 0 ||
            evsignal_add(a->sig_int, NULL) < 0 || evsignal_add(a->sig_hup, NULL) < 0) {
                log_error("cannot install signal handlers");
                return EXIT_RUNTIME;
        }
        /* main held them since its first line: what came meanwhile is delivered now. */
        sigset_t held;
        sigemptyset(&held);
        sigaddset(&held, SIGTERM);
        sigaddset(&held, SIGINT);
        sigaddset(&held, SIGHUP);
        pthread_sigmask(SIG_UNBLOCK, &held, NULL);
        int rc = roles_start(a, &err);
        if (rc < 0) {
                log_error("%s", err.msg);
                return rc == -EBUSY ? EXIT_RUNTIME : EXIT_JOURNAL;
        }
        if (a->env.mode != AGENT_DRY_RUN)
                heartbeat_start(a->heartbeat, roles_any_served(a));
        uint64_t wd = notify_watchdog_ms();
        if (wd) {
                a->watchdog_timer = event_new(a->env.base, -1, EV_PERSIST, on_watchdog, a);
                struct timeval tv = {(time_t)(wd / 2000), (suseconds_t)((wd / 2 % 1000) * 1000)};
                if (a->watchdog_timer)
                        event_add(a->watchdog_timer, &tv);
        }
        struct timeval st = {AGENT_STATUS_INTERVAL_MS / 1000, 0};
        event_add(a->status_timer, &st);
        struct timeval pt = {AGENT_PRUNE_INTERVAL_MS / 1000, 0};
        event_add(a->prune_timer, &pt);
        if (a->env.mode != AGENT_DRY_RUN) {
                struct progress_counts pc;
                progress_counts_of(a, &pc);
                progress_start(&a->progress, time_mono_ms(), &pc);
                a->progress_timer = event_new(a->env.base, -1, EV_PERSIST, on_progress_timer, a);
                struct timeval gt = {PROGRESS_INTERVAL_MS / 1000, 0};
                if (a->progress_timer)
                        event_add(a->progress_timer, &gt);
        }
        on_prune_timer(-1, 0, a);
        agent_status_changed(a);
        log_notice("connector-agent %s started: %zu connector(s), server %s", CA_VERSION,
                   a->connector_count, a->cfg->server.url);
        if (a->connector_count == 0 && a->env.mode != AGENT_DAEMON)
                agent_check_done(a);
        event_base_dispatch(a->env.base);
        return a->env.exit_code;
}

/* Stops every connector's workers within AGENT_JOIN_GRACE_MS in all. A worker still
 * inside a hung back-end call uses its executor, plug-in instance and configuration, so
 * nothing may be freed under it: close the journal (it holds that order in doubt for
 * the next start) and end the process, so that a hung target never outlasts the
 * shutdown deadline or a second signal. */
static void stop_workers_or_exit(struct agent *a)
{
        uint64_t until = time_mono_ms() + AGENT_JOIN_GRACE_MS;
        size_t hung = 0;
        for (size_t i = 0; i < a->connector_count; i++) {
                uint64_t now = time_mono_ms();
                struct connector *c = a->connectors[i];
                if (c && executor_stop(c->exec, until > now ? until - now : 0) < 0) {
                        log_ctx(CA_LOG_WARNING, c->name, NULL,
                                "a back-end call is still running: leaving it behind");
                        hung++;
                }
        }
        if (!hung)
                return;
        if (a->env.journal)
                journal_close(a->env.journal);
        a->env.journal = NULL;
        log_warning("exiting with %zu connector(s) inside a back-end call; their orders "
                    "are settled at the next start",
                    hung);
        fflush(NULL);
        _exit(a->env.exit_code);
}

void agent_free(struct agent *a)
{
        if (!a)
                return;
        stop_workers_or_exit(a);
        heartbeat_free(a->heartbeat);
        status_http_free(a->status);
        for (size_t i = 0; i < a->connector_count; i++)
                connector_free(a->connectors[i]);
        free(a->connectors);
        api_free(a->env.api);
        http_free(a->http);
        if (a->env.journal)
                journal_close(a->env.journal);
        for (size_t i = 0; i < a->backend_count; i++)
                backend_unload(a->backends[i]);
        free(a->backends);
        struct event *events[] = {a->check_ev,       a->commit_ev,      a->journal_retry,
                                  a->drain_timer,    a->status_timer,   a->prune_timer,
                                  a->watchdog_timer, a->sig_term,       a->sig_int,
                                  a->sig_hup,        a->progress_timer, a->role_timer,
                                  a->keepalive_timer};
        for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
                if (events[i])
                        event_free(events[i]);
        if (a->env.base)
                event_base_free(a->env.base);
        /* The agent owns its configuration from agent_new on, and every one a reload
         * replaced: jobs and plug-in instances pointed into them until now. */
        for (size_t i = 0; i < a->retired_count; i++)
                retired_free(&a->retired[i]);
        free(a->retired);
        if (a->owns_cfg) {
                if (a->base_cfg != a->cfg)
                        config_free(a->base_cfg);
                config_free(a->cfg);
        }
        free(a->config_path);
        free(a);
}
