#include "agent.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"
#include "status_http.h"
#include "timeutil.h"

#define AGENT_PRIORITIES            3
#define AGENT_PRIORITY_COMMIT       2 /* lowest: runs once the loop has nothing else to do */
#define AGENT_JOURNAL_FILE          "journal.db"
#define AGENT_JOURNAL_RETRY_BASE_MS 1000
#define AGENT_JOURNAL_RETRY_CAP_MS  60000
#define AGENT_FAREWELL_TIMEOUT_MS   5000
#define AGENT_STATUS_INTERVAL_MS    30000
#define AGENT_PRUNE_INTERVAL_MS     (60 * 60 * 1000)
#define AGENT_USER_AGENT            "connector-agent/" CA_VERSION

static void begin_shutdown(struct agent *a, const char *why);

/* --- the group commit --------------------------------------------------------------- */

static void on_commit(evutil_socket_t fd, short what, void *arg)
{
        struct agent *a = arg;
        struct ca_error err = {0};
        a->commit_scheduled = 0;
        if (a->journal_broken)
                return; /* the retry path writes and commits */
        if (a->mode != AGENT_DRY_RUN && journal_commit(a->journal, &err) < 0) {
                agent_journal_error(a, &err);
                return;
        }
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

static void on_journal_retry(evutil_socket_t fd, short what, void *arg)
{
        struct agent *a = arg;
        struct ca_error err = {0};
        int rc = 0;
        for (size_t i = 0; rc >= 0 && i < a->connector_count; i++) {
                struct connector *c = a->connectors[i];
                for (size_t k = 0; rc >= 0 && k < c->to_finish.count; k++) {
                        rc = journal_finish(a->journal, c->name, c->to_finish.items[k], &err);
                        if (rc == -EEXIST)
                                rc = 0;
                }
        }
        if (rc >= 0)
                rc = journal_commit(a->journal, &err);
        if (rc < 0) {
                uint64_t delay = backoff_next(&a->journal_backoff);
                log_error("journal still failing (%s); next try in %llu ms", err.msg,
                          (unsigned long long)delay);
                struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)((delay % 1000) * 1000)};
                evtimer_add(a->journal_retry, &tv);
                return;
        }
        log_notice("journal writable again: taking orders again");
        a->journal_broken = 0;
        backoff_reset(&a->journal_backoff);
        for (size_t i = 0; i < a->connector_count; i++) {
                connector_after_commit(a->connectors[i]);
                if (a->mode == AGENT_DAEMON && a->phase == AGENT_RUNNING)
                        poller_start(a->connectors[i], 0);
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
        if (a->journal_broken)
                return;
        a->journal_broken = 1;
        log_error("journal write failed: %s; not taking new orders until it works again (results "
                  "already executed are kept and written again)",
                  err && err->msg[0] ? err->msg : "unknown error");
        for (size_t i = 0; i < a->connector_count; i++)
                snprintf(a->connectors[i]->last_error, sizeof(a->connectors[i]->last_error),
                         "journal write failed: %s", err ? err->msg : "");
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
        size_t pending = 0, down = 0;
        for (size_t i = 0; i < a->connector_count; i++) {
                const struct connector *c = a->connectors[i];
                done += c->executed;
                errored += c->errored;
                pending += c->unreported;
                down += !c->target_connected || c->refused;
        }
        snprintf(status, sizeof(status), "%s%s; %lu executed, %lu errored, %zu results pending%s",
                 a->server_connected ? "connected" : "disconnected",
                 a->journal_broken ? ", journal failing" : "", done, errored, pending,
                 down ? ", some connectors down" : "");
        notify_status(status);
}

void agent_server_ok(struct agent *a)
{
        a->last_success_ms = time_mono_ms();
        a->last_success_wall = time_wall_s();
        a->first_failure_ms = 0;
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
        if (!a->first_failure_ms)
                a->first_failure_ms = now;
        if (a->server_connected && now - a->first_failure_ms >= a->cfg->agent.disconnect_grace_ms) {
                a->server_connected = 0;
                log_error("disconnected from %s: %s", a->cfg->server.url, why);
                agent_status_changed(a);
        }
}

uint64_t agent_retry_delay(struct ca_backoff *b, const struct http_response *resp)
{
        uint64_t delay = backoff_next(b);
        uint64_t asked;
        if ((resp->status == 429 || resp->status == 503) && resp->retry_after &&
            retry_after_parse(resp->retry_after, (time_t)time_wall_s(), &asked) == 0) {
                /* The server said when; a little jitter so that agents do not return as one. */
                delay = asked + jitter_ms(asked / 10 + 100);
        }
        return delay;
}

/* --- process life ------------------------------------------------------------------- */

static size_t total_unreported(const struct agent *a)
{
        size_t n = 0;
        for (size_t i = 0; i < a->connector_count; i++)
                n += a->connectors[i]->unreported;
        return n;
}

static void finish(struct agent *a)
{
        a->phase = AGENT_DONE;
        if (a->drain_timer)
                evtimer_del(a->drain_timer);
        event_base_loopexit(a->base, NULL);
}

static void on_farewell_timeout(evutil_socket_t fd, short what, void *arg)
{
        struct agent *a = arg;
        log_warning("the server did not answer the DISCONNECTED heartbeat in time");
        heartbeat_stop(a);
        finish(a);
}

static void farewell(struct agent *a)
{
        a->phase = AGENT_FAREWELL;
        for (size_t i = 0; i < a->connector_count; i++)
                reporter_stop(a->connectors[i]);
        size_t left = total_unreported(a);
        if (left) {
                log_warning("%zu result(s) not delivered yet: they stay in the journal and are "
                            "sent at the next start",
                            left);
                if (a->mode == AGENT_ONCE)
                        a->exit_code = EXIT_INCOMPLETE;
        }
        if (a->mode == AGENT_DRY_RUN) {
                finish(a);
                return;
        }
        struct timeval tv = {AGENT_FAREWELL_TIMEOUT_MS / 1000, 0};
        evtimer_del(a->drain_timer);
        event_assign(a->drain_timer, a->base, -1, 0, on_farewell_timeout, a);
        evtimer_add(a->drain_timer, &tv);
        heartbeat_send_farewell(a);
}

void agent_check_done(struct agent *a)
{
        if (a->phase == AGENT_RUNNING && a->mode != AGENT_DAEMON) {
                for (size_t i = 0; i < a->connector_count; i++)
                        if (!a->connectors[i]->cycle_done || !connector_idle(a->connectors[i]))
                                return;
                begin_shutdown(a, a->mode == AGENT_DRY_RUN ? "dry run complete" : "cycle complete");
                return;
        }
        if (a->phase == AGENT_DRAINING) {
                for (size_t i = 0; i < a->connector_count; i++) {
                        struct connector *c = a->connectors[i];
                        if (!connector_idle(c) || c->to_finish.count)
                                return;
                }
                if (a->commit_scheduled)
                        return;
                if (a->mode != AGENT_DRY_RUN && !a->journal_broken) {
                        for (size_t i = 0; i < a->connector_count; i++) {
                                struct connector *c = a->connectors[i];
                                /* A failing PUT is given until the deadline; --once gives up on
                                 * the first failure, its results stay for the next run. */
                                if (c->unreported && !(c->report_failing && a->mode == AGENT_ONCE))
                                        return;
                        }
                }
                farewell(a);
                return;
        }
        if (a->phase == AGENT_FAREWELL && a->farewell_sent)
                finish(a);
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
        struct agent *a = arg;
        size_t running = 0;
        for (size_t i = 0; i < a->connector_count; i++)
                running += a->connectors[i]->in_flight;
        log_warning("shutdown deadline reached with %zu order(s) still running: they are "
                    "settled at the next start",
                    running);
        farewell(a);
}

static void begin_shutdown(struct agent *a, const char *why)
{
        if (a->phase != AGENT_RUNNING)
                return;
        log_notice("stopping: %s", why);
        notify_stopping();
        a->phase = AGENT_DRAINING;
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
        if (a->phase != AGENT_RUNNING) {
                /* A second signal: leave now. The journal keeps what was not finished. */
                log_warning("second stop signal: exiting at once");
                a->exit_code = a->exit_code ? a->exit_code : EXIT_OK;
                finish(a);
                return;
        }
        begin_shutdown(a, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

static int same_text(const char *x, const char *y)
{
        return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

/* The keys the agent reads from a connector section at run time (through c->cfg); every
 * other key is bound to the running plug-in instance or executor. */
static int live_connector_key(const char *key)
{
        return strcmp(key, "poll_interval") == 0 || strcmp(key, "max_in_flight") == 0;
}

static int same_settings(const struct ca_settings *x, const struct ca_settings *y)
{
        size_t nx = 0, ny = 0;
        for (size_t i = 0; i < x->count; i++) {
                if (live_connector_key(x->items[i].key))
                        continue;
                nx++;
                if (!same_text(x->items[i].value, config_setting(y, x->items[i].key)))
                        return 0;
        }
        for (size_t i = 0; i < y->count; i++)
                ny += !live_connector_key(y->items[i].key);
        return nx == ny;
}

/* What a reload cannot change under running connections and threads: names it into why
 * (comma-separated); empty when everything applies. */
static void restart_needed(const struct ca_config *old, const struct ca_config *fresh, char *why,
                           size_t len)
{
        const struct ca_config_server *o = &old->server, *n = &fresh->server;
        int server = !same_text(o->url, n->url) || !same_text(o->token_url, n->token_url) ||
                     !same_text(o->client_id, n->client_id) ||
                     !same_text(o->client_secret, n->client_secret) ||
                     !same_text(o->scope, n->scope) || !same_text(o->api_version, n->api_version) ||
                     !same_text(o->ca_file, n->ca_file) ||
                     !same_text(o->client_cert, n->client_cert) ||
                     !same_text(o->client_key, n->client_key) ||
                     !same_text(o->pinned_pubkey, n->pinned_pubkey) ||
                     o->connect_timeout_ms != n->connect_timeout_ms ||
                     o->request_timeout_ms != n->request_timeout_ms ||
                     o->max_body_bytes != n->max_body_bytes;
        const struct ca_config_agent *oa = &old->agent, *na = &fresh->agent;
        int agent = !same_text(oa->identifier, na->identifier) ||
                    !same_text(oa->state_dir, na->state_dir) ||
                    !same_text(oa->backend_dir, na->backend_dir) ||
                    !same_text(oa->status_address, na->status_address) ||
                    oa->status_port != na->status_port || oa->journal_sync != na->journal_sync;
        size_t n_len = 0;
        why[0] = '\0';
        if (server)
                n_len += (size_t)snprintf(why + n_len, len - n_len, "[server]");
        if (agent && n_len < len)
                n_len += (size_t)snprintf(why + n_len, len - n_len,
                                          "%s[agent] identity, "
                                          "directories, status endpoint or journal_sync",
                                          n_len ? ", " : "");
        int set_changed = old->connector_count != fresh->connector_count;
        for (size_t i = 0; i < old->connector_count && n_len < len; i++) {
                const struct ca_config_connector *oc = &old->connectors[i];
                const struct ca_config_connector *nc = config_find_connector(fresh, oc->name);
                if (!nc) {
                        set_changed = 1;
                        continue;
                }
                if (!same_text(oc->backend, nc->backend) || oc->max_parallel != nc->max_parallel ||
                    oc->order_timeout_ms != nc->order_timeout_ms ||
                    !same_settings(&oc->settings, &nc->settings))
                        n_len += (size_t)snprintf(why + n_len, len - n_len, "%s[connector %s]",
                                                  n_len ? ", " : "", oc->name);
        }
        if (set_changed && n_len < len)
                snprintf(why + n_len, len - n_len, "%sconnectors added or removed",
                         n_len ? ", " : "");
}

static int retire_config(struct agent *a)
{
        struct ca_config **r = realloc(a->retired, (a->retired_count + 1) * sizeof(*r));
        if (!r)
                return -ENOMEM;
        a->retired = r;
        a->retired[a->retired_count++] = a->cfg;
        return 0;
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
                log_error("reload refused, keeping the running configuration:");
                for (size_t i = 0; i < diag.count; i++)
                        log_error("  %s", diag.lines[i]);
                config_diag_clear(&diag);
                config_free(fresh);
                notify_ready();
                return;
        }
        char why[512];
        restart_needed(a->cfg, fresh, why, sizeof(why));
        if (retire_config(a) < 0) {
                log_error("reload refused: out of memory");
                config_free(fresh);
                notify_ready();
                return;
        }
        a->cfg = fresh;
        for (size_t i = 0; i < a->connector_count; i++) {
                struct connector *c = a->connectors[i];
                const struct ca_config_connector *nc = config_find_connector(fresh, c->name);
                if (nc)
                        c->cfg = nc;
        }
        enum ca_log_level level;
        if (log_level_parse(fresh->agent.log_level, &level) == 0)
                log_set_level(level);
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
        if (a->journal_broken || a->mode == AGENT_DRY_RUN)
                return;
        int n = journal_prune(a->journal, time_wall_s(),
                              (int64_t)(a->cfg->agent.journal_retention_ms / 1000), &err);
        if (n < 0) {
                agent_journal_error(a, &err);
                return;
        }
        if (n > 0) {
                log_info("journal: %d reported entr%s older than the retention deleted", n,
                         n == 1 ? "y" : "ies");
                agent_journal_touched(a);
        }
}

static void on_status_timer(evutil_socket_t fd, short what, void *arg)
{
        agent_status_changed(arg);
}

/* --- set-up ------------------------------------------------------------------------- */

static int load_backends(struct agent *a, struct ca_error *err)
{
        const struct ca_config *cfg = a->cfg;
        a->backends = calloc(cfg->connector_count ? cfg->connector_count : 1, sizeof(*a->backends));
        if (!a->backends)
                return ca_error_set(err, -ENOMEM, "out of memory");
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
        char path[4096];
        struct stat st;
        const char *dir = a->cfg->agent.state_dir;
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return ca_error_set(err, -ENOENT,
                                    "state directory %s does not exist (state_dir; systemd creates "
                                    "it with StateDirectory=)",
                                    dir);
        snprintf(path, sizeof(path), "%s/%s", dir, AGENT_JOURNAL_FILE);
        return journal_open(path, a->cfg->agent.journal_sync, &a->journal, err);
}

int agent_new(struct ca_config *cfg, const char *config_path, enum agent_mode mode,
              struct agent **out, struct ca_error *err)
{
        struct agent *a = calloc(1, sizeof(*a));
        if (!a)
                return ca_error_set(err, -ENOMEM, "out of memory");
        a->cfg = cfg;
        a->mode = mode;
        a->config_path = config_path ? strdup(config_path) : NULL;
        a->started_at = time_wall_s();
        if (gethostname(a->hostname, sizeof(a->hostname) - 1) < 0)
                snprintf(a->hostname, sizeof(a->hostname), "unknown");
        backoff_init(&a->journal_backoff, AGENT_JOURNAL_RETRY_BASE_MS, AGENT_JOURNAL_RETRY_CAP_MS);
        int rc = -ENOMEM;
        a->base = event_base_new();
        if (!a->base || event_base_priority_init(a->base, AGENT_PRIORITIES) < 0) {
                ca_error_set(err, rc, "cannot create the event loop");
                goto fail;
        }
        a->commit_ev = event_new(a->base, -1, 0, on_commit, a);
        a->journal_retry = evtimer_new(a->base, on_journal_retry, a);
        a->drain_timer = evtimer_new(a->base, on_drain_deadline, a);
        a->status_timer = event_new(a->base, -1, EV_PERSIST, on_status_timer, a);
        a->prune_timer = event_new(a->base, -1, EV_PERSIST, on_prune_timer, a);
        if (!a->commit_ev || !a->journal_retry || !a->drain_timer || !a->status_timer ||
            !a->prune_timer) {
                ca_error_set(err, rc, "out of memory");
                goto fail;
        }
        event_priority_set(a->commit_ev, AGENT_PRIORITY_COMMIT);

        rc = open_journal(a, err);
        if (rc < 0)
                goto fail;
        rc = load_backends(a, err);
        if (rc < 0)
                goto fail;
        rc = http_new(a->base, &cfg->server, AGENT_USER_AGENT, &a->http, err);
        if (rc < 0)
                goto fail;
        rc = api_new(a->http, &cfg->server, &a->api, err);
        if (rc < 0)
                goto fail;
        a->connectors =
            calloc(cfg->connector_count ? cfg->connector_count : 1, sizeof(*a->connectors));
        if (!a->connectors) {
                rc = ca_error_set(err, -ENOMEM, "out of memory");
                goto fail;
        }
        for (size_t i = 0; i < cfg->connector_count; i++) {
                rc = connector_new(a, &cfg->connectors[i], &a->connectors[i], err);
                if (rc < 0)
                        goto fail;
                a->connector_count++;
        }
        if (cfg->agent.status_port && mode == AGENT_DAEMON) {
                rc = status_http_start(a, &a->status, err);
                if (rc < 0)
                        goto fail;
        }
        a->owns_cfg = 1;
        *out = a;
        return 0;
fail:
        agent_free(a);
        return rc;
}

int agent_run(struct agent *a)
{
        struct ca_error err = {0};
        a->sig_term = evsignal_new(a->base, SIGTERM, on_stop_signal, a);
        a->sig_int = evsignal_new(a->base, SIGINT, on_stop_signal, a);
        a->sig_hup = evsignal_new(a->base, SIGHUP, on_reload_signal, a);
        if (!a->sig_term || !a->sig_int || !a->sig_hup || evsignal_add(a->sig_term, NULL) < 0 ||
            evsignal_add(a->sig_int, NULL) < 0 || evsignal_add(a->sig_hup, NULL) < 0) {
                log_error("cannot install signal handlers");
                return EXIT_RUNTIME;
        }
        for (size_t i = 0; i < a->connector_count; i++) {
                if (a->mode != AGENT_DRY_RUN && recovery_start(a->connectors[i], &err) < 0) {
                        log_error("%s", err.msg);
                        return EXIT_JOURNAL;
                }
                poller_start(a->connectors[i], 0);
                reporter_kick(a->connectors[i]);
        }
        if (a->mode != AGENT_DRY_RUN)
                heartbeat_start(a);
        uint64_t wd = notify_watchdog_ms();
        if (wd) {
                a->watchdog_timer = event_new(a->base, -1, EV_PERSIST, on_watchdog, a);
                struct timeval tv = {(time_t)(wd / 2000), (suseconds_t)((wd / 2 % 1000) * 1000)};
                if (a->watchdog_timer)
                        event_add(a->watchdog_timer, &tv);
        }
        struct timeval st = {AGENT_STATUS_INTERVAL_MS / 1000, 0};
        event_add(a->status_timer, &st);
        struct timeval pt = {AGENT_PRUNE_INTERVAL_MS / 1000, 0};
        event_add(a->prune_timer, &pt);
        on_prune_timer(-1, 0, a);
        agent_status_changed(a);
        log_notice("connector-agent %s started: %zu connector(s), server %s", CA_VERSION,
                   a->connector_count, a->cfg->server.url);
        if (a->connector_count == 0 && a->mode != AGENT_DAEMON)
                agent_check_done(a);
        event_base_dispatch(a->base);
        return a->exit_code;
}

void agent_free(struct agent *a)
{
        if (!a)
                return;
        heartbeat_stop(a);
        status_http_free(a->status);
        for (size_t i = 0; i < a->connector_count; i++)
                connector_free(a->connectors[i]);
        free(a->connectors);
        api_free(a->api);
        http_free(a->http);
        if (a->journal)
                journal_close(a->journal);
        for (size_t i = 0; i < a->backend_count; i++)
                backend_unload(a->backends[i]);
        free(a->backends);
        struct event *events[] = {
            a->commit_ev,      a->journal_retry,   a->drain_timer, a->status_timer, a->prune_timer,
            a->watchdog_timer, a->heartbeat_timer, a->sig_term,    a->sig_int,      a->sig_hup};
        for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
                if (events[i])
                        event_free(events[i]);
        if (a->base)
                event_base_free(a->base);
        /* The agent owns its configuration from agent_new on, and every one a reload
         * replaced: jobs and plug-in instances pointed into them until now. */
        for (size_t i = 0; i < a->retired_count; i++)
                config_free(a->retired[i]);
        free(a->retired);
        if (a->owns_cfg)
                config_free(a->cfg);
        free(a->config_path);
        free(a);
}
