/* SPDX-License-Identifier: Apache-2.0 */
#include "roles.h"

#include <errno.h>
#include <event2/event.h>
#include <string.h>

#include "agent.h"
#include "backoff.h"
#include "journal.h"
#include "log.h"
#include "poller.h"
#include "reporter.h"

static const char *identifier_of(const struct agent *a)
{
        return a->cfg->agent.identifier ? a->cfg->agent.identifier : a->hostname;
}

/* The connector is served here from now: what a start does for it. */
static int serve(struct agent *a, struct connector *c, const struct journal_role *role,
                 struct ca_error *err)
{
        int was_standby = c->standby;
        c->standby = 0;
        c->role = *role;
        if (a->env.mode != AGENT_DRY_RUN) {
                /* The results another instance left unreported are this one's to send. */
                int rc = journal_unreported_count(a->env.journal, c->name, &c->unreported, err);
                if (rc == 0)
                        rc = recovery_start(c, err);
                if (rc < 0)
                        return rc;
                connector_reporter_recount(c->report);
        }
        if (was_standby)
                log_ctx(CA_LOG_NOTICE, c->name, NULL,
                        "this instance (%s) serves the connector now (epoch %lld): polling it",
                        role->holder, (long long)role->epoch);
        poller_start(c->poller, 0);
        reporter_kick(connector_reporter(c));
        return 0;
}

static void stand_by(struct agent *a, struct connector *c, const struct journal_role *role)
{
        (void)a;
        if (!c->standby || strcmp(c->role.holder, role->holder) != 0)
                log_ctx(CA_LOG_NOTICE, c->name, NULL,
                        "served by instance %s (epoch %lld): this one stands by and takes over "
                        "when it goes",
                        role->holder[0] ? role->holder : "(unknown)", (long long)role->epoch);
        c->standby = 1;
        c->role = *role;
        c->unreported = 0;
}

static void arm(struct event *ev, uint64_t ms)
{
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
        evtimer_add(ev, &tv);
}

static void on_role_timer(evutil_socket_t fd, short what, void *arg)
{
        (void)fd;
        (void)what;
        struct agent *a = arg;
        if (a->env.phase != AGENT_RUNNING)
                return;
        int waiting = 0;
        for (size_t i = 0; i < a->connector_count; i++) {
                struct connector *c = a->connectors[i];
                if (!c->standby)
                        continue;
                struct journal_role role;
                struct ca_error err = {0};
                /* -EAGAIN: a batch is open; an outage: the journal's own retry says so. */
                if (a->env.journal_broken ||
                    journal_serve(a->env.journal, c->name, identifier_of(a), &role, &err) < 0) {
                        waiting = 1;
                        continue;
                }
                if (!role.serving) {
                        stand_by(a, c, &role);
                        waiting = 1;
                } else if (serve(a, c, &role, &err) < 0) {
                        log_ctx(CA_LOG_ERR, c->name, NULL, "taking the connector over: %s",
                                err.msg);
                        c->standby = 1;
                        waiting = 1;
                }
        }
        agent_status_changed(a);
        if (waiting)
                arm(a->role_timer, ROLES_RETRY_MS + jitter_ms(ROLES_RETRY_MS));
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
        (void)fd;
        (void)what;
        struct agent *a = arg;
        struct ca_error err = {0};
        /* A failure shows at the next write, which the journal's retry handles. */
        if (!a->env.journal_broken && journal_keepalive(a->env.journal, &err) < 0)
                log_debug("journal keepalive: %s", err.msg);
}

int roles_start(struct agent *a, struct ca_error *err)
{
        int shared = 0, waiting = 0;
        if (a->env.mode != AGENT_DRY_RUN && journal_commit(a->env.journal, err) < 0)
                return -EIO; /* journal_serve needs no batch open */
        for (size_t i = 0; i < a->connector_count; i++) {
                struct connector *c = a->connectors[i];
                struct journal_role role = {.serving = 1};
                int rc = 0;
                if (a->env.mode != AGENT_DRY_RUN) {
                        rc = journal_serve(a->env.journal, c->name, identifier_of(a), &role, err);
                        if (rc < 0)
                                return rc;
                        shared |= role.epoch > 0;
                }
                if (!role.serving && a->env.mode != AGENT_DAEMON)
                        return ca_error_set(err, -EBUSY,
                                            "connector %s is served by instance %s: --once and "
                                            "--dry-run need it to themselves",
                                            c->name, role.holder);
                if (!role.serving) {
                        stand_by(a, c, &role);
                        waiting = 1;
                        continue;
                }
                if ((rc = serve(a, c, &role, err)) < 0)
                        return rc;
        }
        if (waiting)
                arm(a->role_timer, ROLES_RETRY_MS + jitter_ms(ROLES_RETRY_MS));
        uint64_t lease = a->cfg->agent.journal_lease_ms;
        if ((shared || waiting) && lease) {
                struct timeval tv = {(time_t)(lease / 3000),
                                     (suseconds_t)((lease / 3 % 1000) * 1000)};
                event_add(a->keepalive_timer, &tv);
        }
        return 0;
}

int roles_retake(struct agent *a, struct ca_error *err)
{
        if (!journal_roles_lost(a->env.journal))
                return 0;
        for (size_t i = 0; i < a->connector_count; i++) {
                struct connector *c = a->connectors[i];
                if (c->standby)
                        continue;
                struct journal_role role;
                int rc = journal_serve(a->env.journal, c->name, identifier_of(a), &role, err);
                if (rc < 0)
                        return rc; /* still cut off: the journal's retry comes back */
                if (!role.serving)
                        return ca_error_set(err, -ESTALE,
                                            "connector %s: instance %s took it over (epoch %lld) "
                                            "while this one was cut off from the journal",
                                            c->name, role.holder, (long long)role.epoch);
                if (role.epoch != c->role.epoch + 1)
                        return ca_error_set(err, -ESTALE,
                                            "connector %s: another instance served it while this "
                                            "one was cut off from the journal (epoch %lld, now "
                                            "%lld)",
                                            c->name, (long long)c->role.epoch,
                                            (long long)role.epoch);
                c->role = role;
                log_ctx(CA_LOG_NOTICE, c->name, NULL,
                        "the journal's session was lost and made again: the connector is still "
                        "this instance's (epoch %lld)",
                        (long long)role.epoch);
        }
        return 0;
}

int roles_any_served(const struct agent *a)
{
        for (size_t i = 0; i < a->connector_count; i++)
                if (!a->connectors[i]->standby)
                        return 1;
        return 0;
}

int roles_events_new(struct agent *a)
{
        a->role_timer = evtimer_new(a->env.base, on_role_timer, a);
        a->keepalive_timer = event_new(a->env.base, -1, EV_PERSIST, on_keepalive, a);
        return a->role_timer && a->keepalive_timer ? 0 : -ENOMEM;
}

void roles_stop(struct agent *a)
{
        if (a->role_timer)
                evtimer_del(a->role_timer);
        if (a->keepalive_timer)
                event_del(a->keepalive_timer);
}
