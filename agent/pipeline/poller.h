/* SPDX-License-Identifier: Apache-2.0 */
/* poller: fetches a connector's orders (protocol.md §3), page after page.
 *
 * Owns its timer intent, its one GET in flight, the paging position (ContinuationToken),
 * its backoff and what the server said of the connector (refused with 403/404). One
 * explicit state: waiting on the timer, or one GET in flight. It acts on the world only
 * through its callbacks (the transport and the timer too: connector_poller.c binds them
 * to the API client and the loop), so tests drive it on a virtual clock. A page's orders go to the
 * take callback (intake.c); whatever it leaves in the page is freed. Polling pauses
 * while has_room says no (back-pressure: max_in_flight, max_pending_results, a broken
 * journal) and resumes at once on poller_kick; after a failure it waits for its
 * backoff or the server's Retry-After, which nothing else cuts short. In --once and
 * --dry-run it fetches one cycle (all pages) and says so through env's check_done.
 * Loop thread only. */
#ifndef CA_POLLER_H
#define CA_POLLER_H

#include <stdint.h>

#include "metrics.h"
#include "http.h"
#include "order.h"
#include "pipeline.h"

struct poller;

/* Completion of a GET: called once, later, with the answer (CA_HTTP_CANCELLED when
 * cancelled). */
typedef void (*poller_answer_fn)(struct poller *p, const struct http_response *resp);

struct poller_ops {
        int (*has_room)(void *ctx);
        /* Takes the page's orders it keeps (setting their slot to NULL). */
        void (*take)(void *ctx, struct ca_order_page *page);
        /* The connector's last error as the poller sees it; NULL clears it. */
        void (*said)(void *ctx, const char *error);
        /* Starts GET path; on 0 answer(p, resp) runs later exactly once. */
        int (*send)(void *ctx, const char *path, struct poller *p, poller_answer_fn answer);
        void (*cancel)(void *ctx); /* the GET in flight (its answer runs cancelled) */
        /* One timer: arm replaces a pending one, disarm is idempotent; when it fires the
         * binding calls poller_timer_fired. */
        void (*arm)(void *ctx, uint64_t delay_ms);
        void (*disarm)(void *ctx);
        uint64_t (*now_ms)(void *ctx); /* monotonic */
};

struct poller_stats {
        unsigned backoff_attempts;
        unsigned long failures; /* failed ProvisioningData calls */
        const struct histogram *latency;
};

/* name is the connector's id (borrowed, outlives the poller); cfg its section, replaced
 * by poller_reconfigure after a reload. */
int poller_new(struct pipeline_env *env, const char *name, const struct ca_config_connector *cfg,
               const struct poller_ops *ops, void *ctx, struct poller **out, struct ca_error *err);
void poller_free(struct poller *p); /* accepts NULL */
void poller_reconfigure(struct poller *p, const struct ca_config_connector *cfg);

void poller_start(struct poller *p, uint64_t delay_ms);
void poller_stop(struct poller *p);
void poller_kick(struct poller *p); /* room again after back-pressure */
void poller_timer_fired(struct poller *p);
/* Another exchange with the server succeeded: a failure's backoff longer than a few
 * seconds is cut short (never the server's own Retry-After). Accepts NULL. */
void poller_server_back(struct poller *p);

int poller_cycle_done(const struct poller *p); /* --once: the cycle ended (or gave up) */
int poller_refused(const struct poller *p);    /* the server refuses the connector */
void poller_stats(const struct poller *p, struct poller_stats *out);

#endif
