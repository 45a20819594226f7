/* SPDX-License-Identifier: Apache-2.0 */
/* reporter: see reporter.h. One explicit state; every transition ends in a timer armed,
 * a call in flight, or idle, so that no path can leave results waiting without a wake-up
 * (the stall of issue 12 came from a timer that returned without re-arming). */
#include "reporter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "log.h"
#include "server_log.h"

#define REPORT_RETRY_BASE_MS 1000
#define REPORT_RETRY_CAP_MS  (5 * 60 * 1000)

enum reporter_state {
        R_IDLE,        /* nothing known to send */
        R_DUE,         /* timer armed for a try soon */
        R_BACKOFF,     /* timer armed after a failure */
        R_WAIT_COMMIT, /* results are not durable yet: the commit's kick wakes us */
        R_SENDING,     /* one PUT in flight */
        R_STOPPED,
};

struct reporter {
        const struct reporter_ops *ops;
        void *ctx;
        char *connector_id, *agent_identifier;
        enum reporter_state state;
        size_t batch;
        struct ca_backoff backoff;
        uint64_t due_at_ms; /* R_BACKOFF: when the retry is due */
        int server_asked;   /* R_BACKOFF: the wait is the server's Retry-After */
        char **keys;        /* the batch in flight */
        size_t key_count;
        size_t limit;       /* the most results in the next PUT: smaller while bisecting */
        size_t bisect_left; /* results of the refused batch not yet delivered or refused */
        char **refused;     /* refused keys the journal could not keep (ops->refuse failed) */
        size_t refused_count;
        struct reporter_stats stats;
};

static void keys_clear(struct reporter *r)
{
        for (size_t i = 0; i < r->key_count; i++)
                free(r->keys[i]);
        free(r->keys);
        r->keys = NULL;
        r->key_count = 0;
}

static uint64_t backoff_random(void *ctx)
{
        struct reporter *r = ctx;
        return r->ops->random(r->ctx);
}

int reporter_new(const struct reporter_ops *ops, void *ctx, const char *connector_id,
                 const char *agent_identifier, size_t batch, struct reporter **out,
                 struct ca_error *err)
{
        struct reporter *r = calloc(1, sizeof(*r));
        if (!r)
                return ca_error_set(err, -ENOMEM, "out of memory");
        r->ops = ops;
        r->ctx = ctx;
        r->connector_id = strdup(connector_id);
        r->agent_identifier = strdup(agent_identifier);
        if (!r->connector_id || !r->agent_identifier) {
                reporter_free(r);
                return ca_error_set(err, -ENOMEM, "out of memory");
        }
        r->batch = batch ? batch : 1;
        r->limit = r->batch;
        backoff_init(&r->backoff, REPORT_RETRY_BASE_MS, REPORT_RETRY_CAP_MS);
        if (ops->random) {
                r->backoff.random = backoff_random;
                r->backoff.random_ctx = r;
        }
        *out = r;
        return 0;
}

void reporter_free(struct reporter *r)
{
        if (!r)
                return;
        reporter_stop(r);
        for (size_t i = 0; i < r->refused_count; i++)
                free(r->refused[i]);
        free(r->refused);
        free(r->connector_id);
        free(r->agent_identifier);
        free(r);
}

void reporter_set_batch(struct reporter *r, size_t batch)
{
        r->batch = batch ? batch : 1;
        if (!r->bisect_left || r->limit > r->batch)
                r->limit = r->batch;
}

static void arm(struct reporter *r, enum reporter_state state, uint64_t delay_ms)
{
        r->state = state;
        r->due_at_ms = r->ops->now_ms(r->ctx) + delay_ms;
        r->ops->arm(r->ctx, delay_ms);
}

void reporter_kick(struct reporter *r)
{
        if (r->state == R_IDLE || r->state == R_WAIT_COMMIT)
                arm(r, R_DUE, 0);
}

void reporter_server_back(struct reporter *r)
{
        if (r->state != R_BACKOFF || r->server_asked)
                return;
        uint64_t now = r->ops->now_ms(r->ctx);
        if (r->due_at_ms > now + REPORT_RETRY_BASE_MS)
                arm(r, R_BACKOFF, REPORT_RETRY_BASE_MS);
}

void reporter_stop(struct reporter *r)
{
        r->ops->disarm(r->ctx);
        if (r->state == R_SENDING)
                r->ops->cancel(r->ctx);
        keys_clear(r);
        r->state = R_STOPPED;
}

int reporter_busy(const struct reporter *r)
{
        return r->state == R_SENDING || r->state == R_DUE;
}

int reporter_failing(const struct reporter *r)
{
        return r->state == R_BACKOFF;
}

void reporter_stats(const struct reporter *r, struct reporter_stats *out)
{
        *out = r->stats;
        out->backoff_attempts = r->backoff.attempt;
        out->refused = r->refused_count;
}

int reporter_is_refused(const struct reporter *r, const char *key)
{
        for (size_t i = 0; i < r->refused_count; i++)
                if (strcmp(r->refused[i], key) == 0)
                        return 1;
        return 0;
}

static void failed(struct reporter *r, const char *why, const struct http_response *resp)
{
        uint64_t delay =
            backoff_after(&r->backoff, resp ? resp->status : 0, resp ? resp->retry_after : NULL,
                          resp ? resp->retry_after_s : 0, &r->server_asked);
        r->stats.failures++;
        log_ctx(server_log_is_repeat(why) ? CA_LOG_DEBUG : CA_LOG_WARNING, r->connector_id, NULL,
                "%s; next try in %llu ms", why, (unsigned long long)delay);
        r->ops->error(r->ctx, why);
        arm(r, R_BACKOFF, delay);
        r->ops->idle(r->ctx);
}

static int refuse(struct reporter *r, const char *key)
{
        char **grown = realloc(r->refused, (r->refused_count + 1) * sizeof(*grown));
        if (!grown)
                return -ENOMEM;
        r->refused = grown;
        r->refused[r->refused_count] = strdup(key);
        if (!r->refused[r->refused_count])
                return -ENOMEM;
        r->refused_count++;
        return 0;
}

static void bisect_progress(struct reporter *r, size_t settled)
{
        if (!r->bisect_left)
                return;
        r->bisect_left = settled < r->bisect_left ? r->bisect_left - settled : 0;
        if (!r->bisect_left)
                r->limit = r->batch;
}

static void on_answer(struct reporter *r, const struct http_response *resp)
{
        struct ca_error err = {0};
        char why[768];
        if (resp->transport_error == CA_HTTP_CANCELLED) {
                keys_clear(r);
                r->state = R_STOPPED;
                return;
        }
        size_t n = r->key_count;
        long received = 0, duplicates = 0;
        if (resp->status == 200 &&
            results_ack_parse(resp->body, resp->body_len, &received, &duplicates, &err) == 0) {
                r->ops->server_ok(r->ctx);
                if (received < 0 || duplicates < 0 || (size_t)received + (size_t)duplicates < n) {
                        /* Which ones the server lost is not said: mark none, send all again
                         * (what it has counts as duplicates). */
                        r->stats.short_acks++;
                        snprintf(why, sizeof(why),
                                 "ProvisioningResults acknowledged %ld received and %ld duplicates "
                                 "of %zu sent; sending them again",
                                 received, duplicates, n);
                        keys_clear(r);
                        failed(r, why, NULL);
                        return;
                }
                if (duplicates)
                        log_ctx(
                            CA_LOG_INFO, r->connector_id, NULL,
                            "server already had %ld of %zu results (re-sent after a lost answer)",
                            duplicates, n);
                backoff_reset(&r->backoff);
                if (r->ops->mark(r->ctx, (const char *const *)r->keys, n, &err) >= 0) {
                        log_ctx(CA_LOG_DEBUG, r->connector_id, NULL, "%zu results delivered", n);
                        r->ops->delivered(r->ctx, n);
                } else {
                        /* Harmless: they are sent again and the server counts duplicates. */
                        log_ctx(CA_LOG_ERR, r->connector_id, NULL, "journal: %s", err.msg);
                }
                keys_clear(r);
                bisect_progress(r, n);
                arm(r, R_DUE, 0);
                return;
        }
        if (resp->status == 400) {
                /* The server answered: it is this body, not the server, that is wrong. */
                r->ops->server_ok(r->ctx);
                const char *answer = resp->body_len ? resp->body : "no details";
                if (n > 1) {
                        log_ctx(CA_LOG_WARNING, r->connector_id, NULL,
                                "the server refused a batch of %zu results (HTTP 400: %.200s); "
                                "splitting it to find the refused one",
                                n, answer);
                        if (!r->bisect_left)
                                r->bisect_left = n;
                        r->limit = n / 2;
                        keys_clear(r);
                        arm(r, R_DUE, 0);
                        return;
                }
                snprintf(why, sizeof(why),
                         "the server refused the result of order %.200s (HTTP 400: %.300s); it "
                         "is kept in the journal and not sent again until an operator says so "
                         "(journal list refused, journal resend)",
                         n ? r->keys[0] : "?", answer);
                log_ctx(CA_LOG_ERR, r->connector_id, n ? r->keys[0] : NULL, "%s", why);
                r->ops->error(r->ctx, why);
                struct ca_error rerr = {0};
                if (n && r->ops->refuse(r->ctx, r->keys[0], answer, &rerr) < 0) {
                        log_ctx(CA_LOG_ERR, r->connector_id, r->keys[0],
                                "keeping the refusal in the journal: %s; this run holds the "
                                "result back, a restart sends it once more",
                                rerr.msg);
                        if (refuse(r, r->keys[0]) < 0) {
                                /* Cannot remember it: wait long before the same body goes
                                 * again. */
                                keys_clear(r);
                                failed(r, "out of memory holding a refused result back", NULL);
                                return;
                        }
                }
                keys_clear(r);
                /* Found: the rest of the batch goes whole again (another refused one in it
                 * starts its own search). */
                r->bisect_left = 0;
                r->limit = r->batch;
                arm(r, R_DUE, 0);
                return;
        }
        if (resp->status == 200)
                snprintf(why, sizeof(why), "ProvisioningResults acknowledgement rejected: %s",
                         err.msg);
        else if (resp->status)
                snprintf(why, sizeof(why), "ProvisioningResults answered HTTP %ld", resp->status);
        else
                snprintf(why, sizeof(why), "ProvisioningResults failed: %s",
                         resp->error ? resp->error : "no answer");
        keys_clear(r);
        if (resp->status != 200)
                r->ops->server_failed(r->ctx, why);
        failed(r, why, resp);
}

/* Reads the next batch, leaving out what the server refused. */
static int next_batch(struct reporter *r, struct ca_result ***out, size_t *count,
                      struct ca_error *err)
{
        struct ca_result **res = NULL;
        size_t got = 0;
        int rc = r->ops->read(r->ctx, r->limit + r->refused_count, &res, &got, err);
        if (rc < 0)
                return rc;
        size_t kept = 0;
        for (size_t i = 0; i < got; i++) {
                if (kept < r->limit && !reporter_is_refused(r, res[i]->order_key))
                        res[kept++] = res[i];
                else
                        result_free(res[i]);
        }
        *out = res;
        *count = kept;
        return 0;
}

void reporter_timer_fired(struct reporter *r)
{
        struct ca_error err = {0};
        if (r->state == R_SENDING || r->state == R_STOPPED)
                return;
        struct ca_result **results = NULL;
        size_t count = 0;
        int rc = next_batch(r, &results, &count, &err);
        if (rc == -EAGAIN) {
                r->state = R_WAIT_COMMIT;
                return;
        }
        if (rc < 0) {
                char why[600];
                snprintf(why, sizeof(why), "journal: %s", err.msg);
                failed(r, why, NULL);
                return;
        }
        if (count == 0) {
                free(results);
                r->state = R_IDLE;
                r->ops->idle(r->ctx);
                return;
        }
        char *body = results_body(r->connector_id, r->agent_identifier, results, count);
        r->keys = calloc(count, sizeof(char *));
        int ok = body && r->keys;
        for (size_t i = 0; ok && i < count; i++) {
                r->keys[i] = strdup(results[i]->order_key);
                ok = r->keys[i] != NULL;
                r->key_count = i + 1;
        }
        for (size_t i = 0; i < count; i++)
                result_free(results[i]);
        free(results);
        r->state = R_SENDING;
        if (!ok || r->ops->send(r->ctx, body, r, on_answer) < 0) {
                keys_clear(r);
                failed(r, ok ? "ProvisioningResults could not be sent" : "out of memory", NULL);
        }
        free(body);
}
