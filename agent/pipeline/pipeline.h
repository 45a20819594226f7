/* SPDX-License-Identifier: Apache-2.0 */
/* pipeline: what the stages between the server and the executor share, and the one way
 * they reach the agent above them.
 *
 * The agent (core) owns one struct pipeline_env and fills it: the loop, the current
 * configuration, the clients and the journal, the run's mode and phase. The stages
 * (poller, dispatch, connector, reporter, recovery, heartbeat) read it and call up only
 * through its ops, never into core directly: this library links to the layers below
 * it only (agent/CMakeLists.txt checks that at link time). Each stage's own state is
 * private to its module; struct connector holds what the stages of one connector
 * hand over to each other. Loop thread only. */
#ifndef CA_PIPELINE_H
#define CA_PIPELINE_H

#include <event2/event.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "backend_loader.h"
#include "backoff.h"
#include "config.h"
#include "dispatch.h"
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
        /* --once: an order errored or was held, or a result was not delivered */
        EXIT_INCOMPLETE = 1,
        EXIT_USAGE = 2,
        EXIT_CONFIG = 3,  /* configuration invalid (or a plug-in refused it) */
        EXIT_JOURNAL = 4, /* the journal is corrupt, newer, or cannot be opened */
        EXIT_RUNTIME = 5, /* anything else that stops the agent from starting */
        /* another instance served a connector of this one while it was cut off from the
         * shared journal: restarted, it stands by (roles.h) */
        EXIT_ROLE_LOST = 6,
};

struct poller;
struct connector_poller;

struct result_list {
        struct ca_result **items;
        size_t count, cap;
};

/* The calls a stage may make up into the agent; ctx is pipeline_env.ctx. */
struct pipeline_ops {
        /* Something was written to the journal: commit soon (batched with whatever else
         * is written before the loop gets idle), then connector_after_commit. */
        void (*journal_touched)(void *ctx);
        /* A journal write or commit failed: the open batch is lost (connector_commit_
         * failed follows); orders are not taken until the journal works again. */
        void (*journal_error)(void *ctx, const struct ca_error *err);
        /* Whether the journal is to be reported as failing. */
        int (*journal_failing)(void *ctx);
        /* A call to the server succeeded / failed: keeps the agent's CONNECTED view. */
        void (*server_ok)(void *ctx);
        void (*server_failed)(void *ctx, const char *why);
        void (*status_changed)(void *ctx);
        /* A connector may have finished its --once cycle or its drain (deferred). */
        void (*check_done)(void *ctx);
};

struct pipeline_env {
        struct event_base *base;
        const struct ca_config *cfg; /* the current one (a reload replaces it) */
        enum agent_mode mode;
        enum agent_phase phase;
        int exit_code;
        struct api *api;
        struct journal *journal;
        int journal_broken; /* writes fail: not taking orders */
        const struct pipeline_ops *ops;
        void *ctx;
};

static inline void pipeline_journal_touched(struct pipeline_env *p)
{
        p->ops->journal_touched(p->ctx);
}
static inline void pipeline_journal_error(struct pipeline_env *p, const struct ca_error *err)
{
        p->ops->journal_error(p->ctx, err);
}
static inline int pipeline_journal_failing(struct pipeline_env *p)
{
        return p->ops->journal_failing(p->ctx);
}
static inline void pipeline_server_ok(struct pipeline_env *p)
{
        p->ops->server_ok(p->ctx);
}
static inline void pipeline_server_failed(struct pipeline_env *p, const char *why)
{
        p->ops->server_failed(p->ctx, why);
}
static inline void pipeline_status_changed(struct pipeline_env *p)
{
        p->ops->status_changed(p->ctx);
}
static inline void pipeline_check_done(struct pipeline_env *p)
{
        p->ops->check_done(p->ctx);
}

struct connector {
        struct pipeline_env *env; /* the agent's, shared by its stages */
        const struct ca_config_connector *cfg;
        const char *name;
        struct backend *backend; /* borrowed from the agent's list */
        void *instance;
        struct executor *exec;

        struct poller *poller;         /* its stage (poller.h) */
        struct connector_poller *poll; /* its binding (connector_poller.c) */

        /* orders between the journal and the executor */
        struct dispatch *dispatch;    /* taken, not yet handed to the executor */
        struct result_list to_finish; /* written, waiting for the commit */
        size_t in_doubt;              /* being settled after a crash */
        struct policy *policy;        /* guardrails and held orders (policy.h, intake.c) */
        unsigned hold_announced;      /* bit per guard_rule: said once in the log */
        int64_t holds_version;        /* journal_data_version at the last recheck */

        /* reporter (reporter.h, bound in connector_reporter.c) */
        struct connector_reporter *report;
        size_t unreported; /* FINISHED in the journal, to be sent */
        size_t refused;    /* FINISHED, refused by the server (HTTP 400): for an operator */

        /* Another instance serves it (roles.h): not polled, run or reported here. */
        int standby;
        struct journal_role role; /* the last journal_serve said */

        /* what the heartbeat and status say */
        int target_connected;
        char last_error[512];
        unsigned long received, executed, errored;
        unsigned long delivered; /* results the server acknowledged */
        unsigned long executed_by_change[4], errored_by_change[4]; /* by ca_change_type */
        struct histogram report_latency;
        struct histogram order_latency[4]; /* back-end time of executions, by ca_change_type */
};

/* connector.c */
/* backend is the loaded plug-in cfg->backend names (borrowed). */
int connector_new(struct pipeline_env *env, const struct ca_config_connector *cfg,
                  struct backend *backend, struct connector **out, struct ca_error *err);
void connector_free(struct connector *c);
/* Takes a finished order's result: journal, counters, reporting. Takes ownership. */
void connector_finish(struct connector *c, struct ca_result *r);
/* After a successful commit: hand what waited to the executor, wake the reporter. */
void connector_after_commit(struct connector *c);
/* After a failed commit: forget what was begun, keep results to write again. */
void connector_commit_failed(struct connector *c);
void connector_drain(struct connector *c);
int connector_idle(const struct connector *c);
/* After a reload replaced the agent's configuration: nothing the connector holds and
 * has not started points into the old one any more. */
void connector_reloaded(struct connector *c);
/* Orders taken and not finished (held by the dispatch or the executor). */
size_t connector_in_flight(const struct connector *c);

/* connector_poller.c: the connector's poller stage, bound to the API client and loop. */
int connector_poller_new(struct connector *c, struct ca_error *err);
void connector_poller_free(struct connector *c);

/* intake.c: takes the orders of a page in (the slots it keeps are set to NULL). */
void intake_page(struct connector *c, struct ca_order_page *page);
/* intake.c: the held orders an operator released (journal release) go to the dispatch,
 * in their order; those refused (journal resolve) are reported. Called with each page
 * and after a reload; cheap when nothing changed. */
void intake_holds_recheck(struct connector *c);
/* intake.c, at start: the orders held before the restart stay held, in their order. */
int intake_holds_recover(struct connector *c, struct ca_error *err);
/* intake.c: a reload's new rules (what loosened is logged at notice). */
int intake_policy_reload(struct connector *c, struct ca_error *err);

/* connector_reporter.c: the connector's reporter stage, bound to journal, API and loop. */
struct reporter;
int connector_reporter_new(struct connector *c, struct ca_error *err);
void connector_reporter_free(struct connector *c);
struct reporter *connector_reporter(const struct connector *c);
/* Reads how many of the connector's results the server refused (journal) into
 * c->refused, and says so in LastError while nothing else is said. */
void connector_reporter_recount(struct connector_reporter *cr);

/* recovery.c: settle orders left EXECUTING by a crash, and run those left QUEUED first. */
int recovery_start(struct connector *c, struct ca_error *err);

/* lists (connector.c) */
int result_list_push(struct result_list *l, struct ca_result *r);
void result_list_clear(struct result_list *l);

/* The connector's entry of the heartbeat's Connectors array (a new reference). */
json_t *connector_status_json(const struct connector *c);

#endif
