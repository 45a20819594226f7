/* agent: the daemon's run-time state and the one event loop that drives it.
 *
 * Owns the event base, the HTTP and API clients, the journal, the loaded back-ends and
 * one struct connector per [connector] section, and the process life: signals, the
 * group commit, readiness, the watchdog, status and the orderly shutdown. The modules
 * that act on a connector (poller, reporter, recovery) and on the agent (heartbeat)
 * share these definitions; nothing outside agent/ sees them. Loop thread only. */
#ifndef CA_AGENT_H
#define CA_AGENT_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "backend_loader.h"
#include "backoff.h"
#include "config.h"
#include "executor.h"
#include "journal.h"
#include "metrics.h"

enum agent_mode {
        AGENT_DAEMON = 0, /* run until told to stop */
        AGENT_ONCE = 1,   /* one poll cycle per connector, execute, report, exit */
        AGENT_DRY_RUN = 2 /* one poll cycle, describe what would be done, touch nothing */
};

enum agent_phase {
        AGENT_RUNNING = 0,
        AGENT_DRAINING = 1, /* no new orders; finishing, reporting */
        AGENT_FAREWELL = 2, /* sending the DISCONNECTED heartbeat */
        AGENT_DONE = 3,
};

/* Exit codes (also in the README and connector-agent(8)). */
enum {
        EXIT_OK = 0,
        EXIT_INCOMPLETE = 1, /* --once: an order errored or a result was not delivered */
        EXIT_USAGE = 2,
        EXIT_CONFIG = 3,  /* configuration invalid (or a plug-in refused it) */
        EXIT_JOURNAL = 4, /* the journal is corrupt, newer, or cannot be opened */
        EXIT_RUNTIME = 5, /* anything else that stops the agent from starting */
};

struct order_list {
        struct ca_order **items;
        size_t count, cap;
};

struct result_list {
        struct ca_result **items;
        size_t count, cap;
};

struct agent;

struct connector {
        struct agent *agent;
        const struct ca_config_connector *cfg;
        const char *name;
        struct backend *backend; /* borrowed from the agent's list */
        void *instance;
        struct executor *exec;

        /* poller */
        struct event *poll_timer;
        struct api_call *poll_call;
        char *continuation;
        struct ca_backoff poll_backoff;
        int cycle_done; /* --once: the cycle's last page was fetched */
        int refused;    /* the server answered 403/404 */

        /* orders between the journal and the executor */
        struct order_list to_dispatch; /* begun, waiting for the commit */
        struct result_list to_finish;  /* written, waiting for the commit */
        size_t in_flight;              /* begun and not finished */
        size_t in_doubt;               /* being settled after a crash */

        /* reporter */
        struct event *report_timer;
        struct api_call *report_call;
        char **report_keys;
        size_t report_key_count;
        struct ca_backoff report_backoff;
        size_t unreported; /* FINISHED in the journal */
        int report_failing;

        /* what the heartbeat and status say */
        int target_connected;
        char last_error[512];
        unsigned long received, executed, errored;
        unsigned long executed_by_change[4], errored_by_change[4]; /* by ca_change_type */
        struct histogram poll_latency, report_latency;
        unsigned long polls_failed, reports_failed;
};

struct agent {
        struct event_base *base;
        struct ca_config *cfg; /* the current one; owned once agent_new succeeded */
        int owns_cfg;
        struct ca_config **retired; /* replaced by reloads, kept for running jobs */
        size_t retired_count;
        char *config_path;
        enum agent_mode mode;
        enum agent_phase phase;
        int exit_code;

        struct http *http;
        struct api *api;
        struct journal *journal;
        int journal_broken;
        struct event *journal_retry;
        struct ca_backoff journal_backoff;
        struct event *commit_ev;
        int commit_scheduled;

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
        int ready_sent;
        int server_connected; /* the agent's own view of the server */
        uint64_t last_success_ms;
        int64_t last_success_wall;
        uint64_t first_failure_ms;
        int64_t started_at;
        char hostname[256];

        /* heartbeat */
        struct event *heartbeat_timer;
        struct api_call *heartbeat_call;
        int farewell_sent;
        char latest_version_seen[64];
        uint64_t last_heartbeat_ok_ms;

        struct status_http *status; /* the local status endpoint, NULL when off */
};

/* agent.c */
/* On success the agent owns cfg (agent_free frees it); on failure the caller keeps it. */
int agent_new(struct ca_config *cfg, const char *config_path, enum agent_mode mode,
              struct agent **out, struct ca_error *err);
int agent_run(struct agent *a); /* returns the exit code */
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
/* Called when a connector may have finished its --once cycle or its drain. */
void agent_check_done(struct agent *a);
/* The delay until the next try after a failed server call, honouring Retry-After. */
uint64_t agent_retry_delay(struct ca_backoff *b, const struct http_response *resp);

/* Loads the plug-ins and validates every connector and mapping against them (what
 * --check-config does, and what start-up does); problems are added to diag. */
int agent_check_backends(const struct ca_config *cfg, struct ca_config_diag *diag);

/* connector.c */
int connector_new(struct agent *a, const struct ca_config_connector *cfg, struct connector **out,
                  struct ca_error *err);
void connector_free(struct connector *c);
/* Takes a finished order's result: journal, counters, reporting. Takes ownership. */
void connector_finish(struct connector *c, struct ca_result *r);
/* After a successful commit: hand what waited to the executor, wake the reporter. */
void connector_after_commit(struct connector *c);
/* After a failed commit: forget what was begun, keep results to write again. */
void connector_commit_failed(struct connector *c);
void connector_drain(struct connector *c);
int connector_idle(const struct connector *c);

/* poller.c */
void poller_start(struct connector *c, uint64_t delay_ms);
void poller_stop(struct connector *c);
void poller_kick(struct connector *c); /* room again after back-pressure */

/* reporter.c */
void reporter_kick(struct connector *c);
void reporter_stop(struct connector *c);

/* recovery.c: settle orders left EXECUTING by a crash. */
int recovery_start(struct connector *c, struct ca_error *err);

/* heartbeat.c */
void heartbeat_start(struct agent *a);
void heartbeat_send_farewell(struct agent *a);
void heartbeat_stop(struct agent *a);

/* lists (connector.c) */
int order_list_push(struct order_list *l, struct ca_order *o);
void order_list_clear(struct order_list *l);
int result_list_push(struct result_list *l, struct ca_result *r);
void result_list_clear(struct result_list *l);

#endif
