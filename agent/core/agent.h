/* SPDX-License-Identifier: Apache-2.0 */
/* agent: the daemon's run-time state and the one event loop that drives it.
 *
 * Owns the event base, the HTTP and API clients, the journal, the loaded back-ends and
 * one struct connector per [connector] section, and the process life: signals, the
 * group commit, readiness, the watchdog, status and the orderly shutdown. The pipeline's
 * stages see only its pipeline_env and call back through its ops (pipeline.h).
 * Loop thread only. */
#ifndef CA_AGENT_H
#define CA_AGENT_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "check_config.h"
#include "heartbeat.h"
#include "pipeline.h"
#include "poller.h"
#include "progress.h"

struct retired_config;
struct heartbeat;

struct agent {
        /* What the pipeline's stages share (pipeline.h); env.cfg is cfg. */
        struct pipeline_env env;
        struct ca_config *cfg; /* the current one; owned once agent_new succeeded */
        int owns_cfg;
        /* The one the connectors were built with: their executors, plug-in instances and
         * the server clients borrow from it, so it lives until agent_free. */
        struct ca_config *base_cfg;
        /* Replaced by reloads and still borrowed by jobs submitted before (their
         * mappings): each is freed once every executor passed its fence. */
        struct retired_config *retired;
        size_t retired_count;
        unsigned long reloads, reloads_refused; /* SIGHUPs applied / refused since start */
        char *config_path;

        struct http *http;
        /* Taking orders again after a retry that had nothing to write: still reported as
         * failing until a commit that writes something succeeds (a full disk accepts an
         * empty commit). */
        int journal_unproven;
        struct event *journal_retry;
        struct ca_backoff journal_backoff;
        struct event *commit_ev;
        int commit_scheduled;   /* a group commit is due */
        struct event *check_ev; /* the deferred end-of-run driver (agent_check_done) */
        int check_scheduled;

        struct backend **backends;
        size_t backend_count;
        struct connector **connectors;
        size_t connector_count;

        /* process life */
        struct event *sig_term, *sig_int, *sig_hup;
        struct event *drain_timer;
        struct event *watchdog_timer;
        struct event *status_timer;
        struct event *prune_timer;
        struct event *role_timer;      /* standing by: tries the roles again (roles.h) */
        struct event *keepalive_timer; /* a shared journal's session inside its lease */
        int ready_sent;
        int server_connected; /* the agent's own view of the server */
        uint64_t last_success_ms;
        int64_t last_success_wall;
        uint64_t first_failure_ms;
        int64_t started_at;
        char hostname[256];

        struct heartbeat *heartbeat; /* NULL in a dry run */
        int farewell_sent;

        struct status_http *status; /* the local status endpoint, NULL when off */

        /* progress lines while a backlog is worked, and the summary at the end */
        struct event *progress_timer;
        struct progress progress;
};

/* agent.c */
/* Whether the journal is to be reported as failing (heartbeat, /readyz, metrics). */
int agent_journal_failing(const struct agent *a);
/* On success the agent owns cfg (agent_free frees it); on failure the caller keeps it. */
int agent_new(struct ca_config *cfg, const char *config_path, enum agent_mode mode,
              struct agent **out, struct ca_error *err);
int agent_run(struct agent *a); /* returns the exit code */
/* Accepts NULL. When a worker is still inside a hung back-end call half a second after
 * the run ended, nothing it uses can be freed: agent_free then closes the journal and
 * ends the process with _exit(exit code) instead of returning. */
void agent_free(struct agent *a);
/* Something was written to the journal: commit soon (batched with whatever else is
 * written before the loop gets idle), then dispatch and report what waited for it. */
void agent_journal_touched(struct agent *a);
/* A call to the server succeeded / failed: keeps the agent's CONNECTED view. */
/* A journal write or commit failed: the open batch is lost. Stops taking orders until
 * the journal works again; results waiting to be written are kept and written again. */
void agent_journal_error(struct agent *a, const struct ca_error *err);
void agent_server_ok(struct agent *a);
void agent_server_failed(struct agent *a, const char *why);
void agent_status_changed(struct agent *a);
/* Called when a connector may have finished its --once cycle or its drain: the check
 * runs from the loop soon after (deferred, never re-entrant). */
void agent_check_done(struct agent *a);

#endif
