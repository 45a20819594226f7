/* SPDX-License-Identifier: Apache-2.0 */
/* roles: which of the agent's connectors this instance serves when several agents share
 * one PostgreSQL journal (journal.h, "Serving a connector").
 *
 * A connector served here is polled, executed and reported here, as with one agent; a
 * connector another instance serves stands by (connector.standby): nothing of it is
 * polled, run or reported, and its role is tried again every ROLES_RETRY_MS plus up to
 * as much jitter, so that when its holder dies (its session, and so its lock, ends) one
 * of the others takes it over, runs its recovery (in-doubt orders probed, queued ones
 * run) and goes on. The journal's session is kept inside its lease by a keepalive.
 *
 * An instance cut off from the journal (a reconnect made a new session) takes each of
 * its roles back before anything is written again. When every one comes back with its
 * epoch just one up, no other instance served them meanwhile and the run goes on. When
 * one does not (another instance holds it, or held it in between), what this instance
 * still holds in memory (orders started, results not yet written) may be stale: it
 * stops with EXIT_ROLE_LOST, its late outcomes refused, and its supervisor restarts it
 * as a standby. Its orders left EXECUTING are settled by probe where they are served.
 *
 * On SQLite every connector is served here and none of this costs anything. */
#ifndef CA_ROLES_H
#define CA_ROLES_H

#include "error.h"

#define ROLES_RETRY_MS 2000

struct agent;
struct connector;

/* Takes each connector's role; starts those served (recovery, poller, reporter), and the
 * timers when any stands by or the journal is shared. In --once and --dry-run a
 * connector served elsewhere is an error: the run would wait for nothing. */
int roles_start(struct agent *a, struct ca_error *err);
/* Takes every role back after the journal's session was lost: 0 when the run can go on,
 * -ESTALE with err saying which connector when it must end (EXIT_ROLE_LOST). */
int roles_retake(struct agent *a, struct ca_error *err);
/* 1 when this instance serves a connector (it polls, so the server is heard from soon). */
int roles_any_served(const struct agent *a);
/* Makes the timers' events (agent_free frees them): 0 or -ENOMEM. */
int roles_events_new(struct agent *a);
/* Stops them: the agent ends. */
void roles_stop(struct agent *a);

#endif
