/* SPDX-License-Identifier: Apache-2.0 */
/* reporter: the stage that delivers one connector's results to the server (protocol.md §4).
 *
 * The journal is the queue: the reporter reads the oldest unreported, durable results,
 * PUTs them as one batch, and marks them reported only for what the server acknowledged.
 * Owns its state (timer intent, the call in flight, the keys of the batch, its backoff,
 * the results the server refused); it knows nothing of the agent and acts on the world
 * only through the callbacks it was created with, so that tests drive it on a virtual
 * clock with scripted answers.
 *
 * Promises:
 * - one PUT in flight, results oldest first; a result is never dropped;
 * - every failure ends in a timer: a failed PUT (5xx, transport, a short or bad
 *   acknowledgement) is retried after backoff or the server's Retry-After; nothing
 *   leaves the stage stuck ("kick ignored forever" cannot happen);
 * - a kick during a backoff does not shorten it; the server coming back
 *   (reporter_server_back) does, unless the server itself asked for the wait;
 * - results not yet durable are never sent: when the read says -EAGAIN (a commit is
 *   pending) the reporter waits for the next kick, which the commit's continuation gives;
 * - a 400 means "this body is wrong": the batch is halved until the one refused result
 *   is found; the others go at once, the refused one is kept in the journal with the
 *   server's answer (ops->refuse), out of the queue until an operator sends it again,
 *   and is said through the error callback. The same body is never resent after a 400:
 *   should the journal fail to keep the refusal, this run holds the key back itself;
 * - when the acknowledgement counts fewer results (Received + Duplicates) than sent,
 *   none is marked reported: all are sent again (the server counts duplicates).
 * Loop thread only. */
#ifndef CA_REPORTER_H
#define CA_REPORTER_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "http.h"
#include "order.h"

struct reporter;

/* Completion of a send: called once, later, with the answer (CA_HTTP_CANCELLED when
 * cancelled). */
typedef void (*reporter_answer_fn)(struct reporter *r, const struct http_response *resp);

struct reporter_ops {
        /* Up to max oldest unreported results (journal_unreported semantics): 0, -EAGAIN
         * while what was written is not durable yet, or another negative errno. */
        int (*read)(void *ctx, size_t max, struct ca_result ***out, size_t *count,
                    struct ca_error *err);
        /* Marks keys reported: 0 or negative errno. */
        int (*mark)(void *ctx, const char *const *keys, size_t count, struct ca_error *err);
        /* Keeps key's result out of the queue, with the server's answer (HTTP 400), until an
         * operator sends it again (journal_refuse_result); read stops returning it once
         * that is durable. 0 or negative errno. */
        int (*refuse)(void *ctx, const char *key, const char *answer, struct ca_error *err);
        /* Starts the PUT of body; on 0 answer(r, resp) runs later exactly once. */
        int (*send)(void *ctx, const char *body, struct reporter *r, reporter_answer_fn answer);
        void (*cancel)(void *ctx); /* cancels the send in flight (answer runs cancelled) */
        /* Timer: one per reporter; arm replaces a pending one; disarm is idempotent. */
        void (*arm)(void *ctx, uint64_t delay_ms);
        void (*disarm)(void *ctx);
        uint64_t (*now_ms)(void *ctx); /* monotonic */
        /* Outcomes. delivered: count results left the queue (after a durable mark). */
        void (*delivered)(void *ctx, size_t count);
        void (*server_ok)(void *ctx);
        void (*server_failed)(void *ctx, const char *why);
        void (*error)(void *ctx, const char *why); /* what the heartbeat's LastError says */
        void (*idle)(void *ctx);                   /* nothing left to send now */
        uint64_t (*random)(void *ctx);             /* backoff jitter; NULL: default */
};

struct reporter_stats {
        unsigned backoff_attempts;
        unsigned long failures;   /* PUTs that did not deliver */
        size_t refused;           /* refused results this run holds back itself (the journal
                                   * could not keep the refusal) */
        unsigned long short_acks; /* acknowledgements counting fewer than sent */
};

/* batch: the most results in one PUT. ops and ctx are borrowed and outlive the reporter. */
int reporter_new(const struct reporter_ops *ops, void *ctx, const char *connector_id,
                 const char *agent_identifier, size_t batch, struct reporter **out,
                 struct ca_error *err);
void reporter_free(struct reporter *r); /* cancels what is in flight */

void reporter_set_batch(struct reporter *r, size_t batch); /* after a reload */
/* Something may be waiting: send soon (not before a pending backoff ends). */
void reporter_kick(struct reporter *r);
/* Another exchange with the server succeeded: a backoff caused by the server being
 * away ends now (one base delay at most). */
void reporter_server_back(struct reporter *r);
/* The timer armed through ops->arm fired. */
void reporter_timer_fired(struct reporter *r);
/* Stops sending (shutdown): cancels the call, disarms. */
void reporter_stop(struct reporter *r);

/* 1 while a PUT is in flight or a try is due; 0 when idle or waiting out a failure. */
int reporter_busy(const struct reporter *r);
/* 1 when the last try failed and the reporter waits to retry (--once gives up then). */
int reporter_failing(const struct reporter *r);
void reporter_stats(const struct reporter *r, struct reporter_stats *out);
/* 1 when key is held back as refused by the server. */
int reporter_is_refused(const struct reporter *r, const char *key);

#endif
