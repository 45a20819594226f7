/* reporter: sends a connector's results to the server (protocol.md §4).
 *
 * The journal is the queue: the reporter reads the oldest unreported results (only
 * durable ones: it runs after commits), PUTs them as one batch, and marks them reported
 * only when the server acknowledged the batch. A failed PUT is retried with backoff
 * (Retry-After honoured) until the server takes it; no result is ever dropped. One PUT
 * in flight per connector, so results arrive oldest first. */
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"

#define REPORT_RETRY_BASE_MS 1000
#define REPORT_RETRY_CAP_MS  (5 * 60 * 1000)
#define REPORT_PATH          "/api/Connectors/Provisioning/ProvisioningResults"

static void on_report_timer(evutil_socket_t fd, short what, void *arg);

static void keys_clear(struct connector *c)
{
        for (size_t i = 0; i < c->report_key_count; i++)
                free(c->report_keys[i]);
        free(c->report_keys);
        c->report_keys = NULL;
        c->report_key_count = 0;
}

static void arm(struct connector *c, uint64_t delay_ms)
{
        struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000)};
        if (!c->report_timer) {
                c->report_timer = evtimer_new(c->agent->base, on_report_timer, c);
                backoff_init(&c->report_backoff, REPORT_RETRY_BASE_MS, REPORT_RETRY_CAP_MS);
        }
        if (c->report_timer)
                evtimer_add(c->report_timer, &tv);
}

void reporter_kick(struct connector *c)
{
        if (c->report_call || c->report_failing || !c->unreported)
                return;
        if (c->report_timer && evtimer_pending(c->report_timer, NULL))
                return;
        arm(c, 0);
}

void reporter_stop(struct connector *c)
{
        if (c->report_timer)
                evtimer_del(c->report_timer);
        if (c->report_call)
                api_cancel(c->report_call);
        keys_clear(c);
}

static void on_report_done(void *arg, const struct http_response *resp)
{
        struct connector *c = arg;
        struct agent *a = c->agent;
        struct ca_error err = {0};
        c->report_call = NULL;
        if (resp->transport_error == CA_HTTP_CANCELLED) {
                keys_clear(c);
                return;
        }
        histogram_observe(&c->report_latency, resp->elapsed_ms);
        long received = 0, duplicates = 0;
        if (resp->status == 200 &&
            results_ack_parse(resp->body, resp->body_len, &received, &duplicates, &err) == 0) {
                agent_server_ok(a);
                backoff_reset(&c->report_backoff);
                c->report_failing = 0;
                if (duplicates)
                        log_ctx(
                            CA_LOG_INFO, c->name, NULL,
                            "server already had %ld of %zu results (re-sent after a lost answer)",
                            duplicates, c->report_key_count);
                if (journal_mark_reported(a->journal, c->name, (const char *const *)c->report_keys,
                                          c->report_key_count, &err) >= 0) {
                        c->unreported = c->unreported > c->report_key_count
                                            ? c->unreported - c->report_key_count
                                            : 0;
                        agent_journal_touched(a);
                } else {
                        /* Harmless: they are sent again and the server counts duplicates. */
                        log_ctx(CA_LOG_ERR, c->name, NULL, "journal: %s", err.msg);
                }
                log_ctx(CA_LOG_DEBUG, c->name, NULL, "%zu results delivered", c->report_key_count);
                keys_clear(c);
                poller_kick(c);
                if (c->unreported)
                        arm(c, 0);
                else
                        agent_check_done(a);
                return;
        }
        char why[512];
        if (resp->status == 200)
                snprintf(why, sizeof(why), "ProvisioningResults acknowledgement rejected: %s",
                         err.msg);
        else if (resp->status == 400)
                snprintf(
                    why, sizeof(why),
                    "the server rejected a results batch as malformed (HTTP 400: %.200s); this "
                    "is a bug: the batch is kept and retried slowly",
                    resp->body_len ? resp->body : "no details");
        else if (resp->status)
                snprintf(why, sizeof(why), "ProvisioningResults answered HTTP %ld", resp->status);
        else
                snprintf(why, sizeof(why), "ProvisioningResults failed: %s",
                         resp->error ? resp->error : "no answer");
        keys_clear(c);
        c->reports_failed++;
        snprintf(c->last_error, sizeof(c->last_error), "%s", why);
        if (resp->status != 400 && resp->status != 200)
                agent_server_failed(a, why);
        uint64_t delay = agent_retry_delay(&c->report_backoff, resp);
        if (resp->status == 400 && delay < REPORT_RETRY_CAP_MS / 5)
                delay = REPORT_RETRY_CAP_MS / 5;
        log_ctx(CA_LOG_WARNING, c->name, NULL, "%s; %zu results wait, next try in %llu ms", why,
                c->unreported, (unsigned long long)delay);
        c->report_failing = 1;
        arm(c, delay);
        agent_check_done(a);
}

static void on_report_timer(evutil_socket_t fd, short what, void *arg)
{
        struct connector *c = arg;
        struct agent *a = c->agent;
        struct ca_error err = {0};
        if (c->report_call)
                return;
        /* The journal's open batch is visible to our reads but not durable yet: results in
         * it must not leave the agent. The commit wakes us again (connector_after_commit). */
        if (a->commit_scheduled)
                return;
        c->report_failing = 0;
        struct ca_result **results = NULL;
        size_t count = 0;
        if (journal_unreported(a->journal, c->name, a->cfg->agent.results_batch, &results, &count,
                               &err) < 0) {
                log_ctx(CA_LOG_ERR, c->name, NULL, "journal: %s", err.msg);
                c->report_failing = 1;
                arm(c, backoff_next(&c->report_backoff));
                return;
        }
        /* A short read is the whole backlog: keep the counter exact. */
        if (count < a->cfg->agent.results_batch)
                c->unreported = count;
        if (count == 0) {
                agent_check_done(a);
                return;
        }
        char *body = results_body(c->name, a->cfg->agent.identifier, results, count);
        c->report_keys = calloc(count, sizeof(char *));
        int ok = body && c->report_keys;
        for (size_t i = 0; ok && i < count; i++) {
                c->report_keys[i] = strdup(results[i]->order_key);
                ok = c->report_keys[i] != NULL;
                c->report_key_count = i + 1;
        }
        journal_results_free(results, count);
        if (!ok ||
            api_call(a->api, "PUT", REPORT_PATH, body, on_report_done, c, &c->report_call) < 0) {
                keys_clear(c);
                c->report_failing = 1;
                arm(c, backoff_next(&c->report_backoff));
        }
        free(body);
}
