/* SPDX-License-Identifier: Apache-2.0 */
/* heartbeat: tells the server the agent is alive (protocol.md §5).
 *
 * Owns its timer, its one PUT in flight and what it learnt: whether the server answers
 * at all (a heartbeat unanswered for HEARTBEAT_SILENCE_MS, or an interval when shorter,
 * means a server that hangs), when it last answered, the newest version it announced.
 * Every heartbeat_interval with jitter, independent of order work so that a busy agent
 * is never reported dead; a failed PUT is simply superseded by the next. On an orderly
 * shutdown one last PUT says DISCONNECTED. Loop thread only. */
#ifndef CA_HEARTBEAT_H
#define CA_HEARTBEAT_H

#include <jansson.h>
#include <stdint.h>

#include "pipeline.h"

struct heartbeat_ops {
        /* The document's Connectors array (a new reference, or NULL). */
        json_t *(*connectors)(void *ctx);
        /* When the agent last exchanged with the server (wall clock, s), 0 for never. */
        int64_t (*last_connected)(void *ctx);
        /* The DISCONNECTED heartbeat was answered, refused or could not be sent. */
        void (*farewell_done)(void *ctx);
};

struct heartbeat;

/* env's base, cfg, api, phase and ops (server_ok, server_failed, status_changed) are
 * used; hostname is copied. */
int heartbeat_new(struct pipeline_env *env, const char *hostname, int64_t started_at,
                  const struct heartbeat_ops *ops, void *ctx, struct heartbeat **out,
                  struct ca_error *err);
void heartbeat_free(struct heartbeat *h); /* accepts NULL */

/* wait_first: the first heartbeat waits (an interval at most) for another exchange with
 * the server, so that its LastConnected is not null; 0 when nothing else will talk to the
 * server soon (every connector stands by, roles.h): it goes at once. */
void heartbeat_start(struct heartbeat *h, int wait_first);
void heartbeat_send_farewell(struct heartbeat *h);
void heartbeat_server_ok(struct heartbeat *h);       /* an exchange succeeded */
void heartbeat_server_answered(struct heartbeat *h); /* the server answered something */
void heartbeat_stop(struct heartbeat *h);

/* 1 while heartbeats go unanswered (the server may hang): not ready. */
int heartbeat_server_silent(const struct heartbeat *h);
/* time_mono_ms() of the last accepted heartbeat, 0 for never. */
uint64_t heartbeat_last_ok_ms(const struct heartbeat *h);

#endif
