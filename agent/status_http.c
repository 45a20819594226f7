#include "status_http.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "timeutil.h"

#define STATUS_MAX_HEADERS 8192
#define STATUS_MAX_BODY    1024
#define STATUS_TIMEOUT_S   10

struct status_http {
        struct agent *agent;
        struct evhttp *http;
};

/* A wedged worker or a broken journal makes the process unhealthy (restart helps); an
 * unreachable server does not (restart would not help), it only makes it not ready. */
static const char *unhealthy(const struct agent *a)
{
        uint64_t now = time_mono_ms();
        for (size_t i = 0; i < a->connector_count; i++)
                if (executor_wedged(a->connectors[i]->exec, now))
                        return "a back-end worker has made no progress";
        if (a->journal_broken)
                return "the journal cannot be written";
        return NULL;
}

static const char *not_ready(const struct agent *a)
{
        const char *why = unhealthy(a);
        if (why)
                return why;
        if (a->phase != AGENT_RUNNING)
                return "stopping";
        if (!api_has_token(a->api))
                return "no access token from the server";
        if (!a->ready_sent || !a->server_connected)
                return "the last exchange with the server failed";
        return NULL;
}

static void reply_text(struct evhttp_request *req, int code, const char *text)
{
        struct evbuffer *buf = evbuffer_new();
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; charset=utf-8");
        if (buf)
                evbuffer_add_printf(buf, "%s\n", text);
        evhttp_send_reply(req, code, code == 200 ? "OK" : "Service Unavailable", buf);
        if (buf)
                evbuffer_free(buf);
}

static void on_healthz(struct evhttp_request *req, void *arg)
{
        struct status_http *s = arg;
        const char *why = unhealthy(s->agent);
        reply_text(req, why ? 503 : 200, why ? why : "ok");
}

static void on_readyz(struct evhttp_request *req, void *arg)
{
        struct status_http *s = arg;
        const char *why = not_ready(s->agent);
        reply_text(req, why ? 503 : 200, why ? why : "ready");
}

static void help(struct evbuffer *b, const char *name, const char *type, const char *text)
{
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void histogram(struct evbuffer *b, const char *name, const char *connector,
                      const struct histogram *h)
{
        uint64_t cumulative = 0;
        for (size_t i = 0; i < METRICS_BUCKETS; i++) {
                cumulative += h->counts[i];
                evbuffer_add_printf(b, "%s_bucket{connector=\"%s\",le=\"%g\"} %llu\n", name,
                                    connector, (double)metrics_bucket_ms[i] / 1000.0,
                                    (unsigned long long)cumulative);
        }
        cumulative += h->counts[METRICS_BUCKETS];
        evbuffer_add_printf(b, "%s_bucket{connector=\"%s\",le=\"+Inf\"} %llu\n", name, connector,
                            (unsigned long long)cumulative);
        evbuffer_add_printf(b, "%s_sum{connector=\"%s\"} %.3f\n", name, connector,
                            (double)h->sum_ms / 1000.0);
        evbuffer_add_printf(b, "%s_count{connector=\"%s\"} %llu\n", name, connector,
                            (unsigned long long)h->count);
}

/* Connector names are restricted to [A-Za-z0-9._-] by the configuration, so they need no
 * escaping inside a label value. */
#define FOR_CONNECTORS(a, c)                                                                       \
        for (size_t i_ = 0; i_ < (a)->connector_count; i_++)                                       \
                for (const struct connector *c = (a)->connectors[i_]; c; c = NULL)

static void metrics(struct evbuffer *b, const struct agent *a)
{
        static const char *const changes[] = {"Unknown", "Added", "Modified", "Deleted"};
        help(b, "connector_agent_build_info", "gauge", "Version of the running agent.");
        evbuffer_add_printf(b, "connector_agent_build_info{version=\"%s\"} 1\n", CA_VERSION);
        help(b, "connector_agent_server_connected", "gauge",
             "1 while the last exchange with the server succeeded.");
        evbuffer_add_printf(b, "connector_agent_server_connected %d\n", a->server_connected);
        help(b, "connector_agent_journal_writable", "gauge", "0 while journal writes fail.");
        evbuffer_add_printf(b, "connector_agent_journal_writable %d\n", !a->journal_broken);
        help(b, "connector_agent_token_requests_total", "counter",
             "Access token requests made (renewals included).");
        evbuffer_add_printf(b, "connector_agent_token_requests_total %lu\n",
                            api_token_requests(a->api));
        help(b, "connector_agent_heartbeat_age_seconds", "gauge",
             "Seconds since the server last accepted a heartbeat (-1: never).");
        if (a->last_heartbeat_ok_ms)
                evbuffer_add_printf(b, "connector_agent_heartbeat_age_seconds %.3f\n",
                                    (double)(time_mono_ms() - a->last_heartbeat_ok_ms) / 1000.0);
        else
                evbuffer_add_printf(b, "connector_agent_heartbeat_age_seconds -1\n");

        help(b, "connector_agent_orders_received_total", "counter",
             "Orders received from the server, re-deliveries included.");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_orders_received_total{connector=\"%s\"} %lu\n",
                            c->name, c->received);
        help(b, "connector_agent_orders_total", "counter",
             "Orders finished, by change type and outcome.");
        FOR_CONNECTORS(a, c)
        {
                for (int t = 0; t < 4; t++) {
                        evbuffer_add_printf(b,
                                            "connector_agent_orders_total{connector=\"%s\","
                                            "change_type=\"%s\",outcome=\"executed\"} %lu\n",
                                            c->name, changes[t], c->executed_by_change[t]);
                        evbuffer_add_printf(b,
                                            "connector_agent_orders_total{connector=\"%s\","
                                            "change_type=\"%s\",outcome=\"errored\"} %lu\n",
                                            c->name, changes[t], c->errored_by_change[t]);
                }
        }
        help(b, "connector_agent_orders_in_flight", "gauge",
             "Orders accepted and not finished yet.");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_orders_in_flight{connector=\"%s\"} %zu\n", c->name,
                            c->in_flight);
        help(b, "connector_agent_orders_in_doubt", "gauge",
             "Orders being settled after a crash or a lost connection.");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_orders_in_doubt{connector=\"%s\"} %zu\n", c->name,
                            c->in_doubt);
        help(b, "connector_agent_results_pending", "gauge",
             "Results stored and not yet acknowledged by the server.");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_results_pending{connector=\"%s\"} %zu\n", c->name,
                            c->unreported);
        help(b, "connector_agent_target_up", "gauge",
             "1 while the connector's target is reachable (circuit breaker closed).");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_target_up{connector=\"%s\"} %d\n", c->name,
                            c->target_connected);
        help(b, "connector_agent_poll_backoff_attempts", "gauge",
             "Consecutive failed polls (0: not backing off).");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_poll_backoff_attempts{connector=\"%s\"} %u\n",
                            c->name, c->poll_backoff.attempt);
        help(b, "connector_agent_report_backoff_attempts", "gauge",
             "Consecutive failed result deliveries (0: not backing off).");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_report_backoff_attempts{connector=\"%s\"} %u\n",
                            c->name, c->report_backoff.attempt);
        help(b, "connector_agent_poll_failures_total", "counter", "Failed ProvisioningData calls.");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_poll_failures_total{connector=\"%s\"} %lu\n",
                            c->name, c->polls_failed);
        help(b, "connector_agent_report_failures_total", "counter",
             "Failed ProvisioningResults calls.");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_report_failures_total{connector=\"%s\"} %lu\n",
                            c->name, c->reports_failed);
        help(b, "connector_agent_poll_duration_seconds", "histogram",
             "Time of ProvisioningData calls.");
        FOR_CONNECTORS(a, c)
        histogram(b, "connector_agent_poll_duration_seconds", c->name, &c->poll_latency);
        help(b, "connector_agent_report_duration_seconds", "histogram",
             "Time of ProvisioningResults calls.");
        FOR_CONNECTORS(a, c)
        histogram(b, "connector_agent_report_duration_seconds", c->name, &c->report_latency);
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
        struct status_http *s = arg;
        struct evbuffer *buf = evbuffer_new();
        if (!buf) {
                evhttp_send_error(req, 500, "out of memory");
                return;
        }
        metrics(buf, s->agent);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; version=0.0.4; charset=utf-8");
        evhttp_send_reply(req, 200, "OK", buf);
        evbuffer_free(buf);
}

int status_http_start(struct agent *a, struct status_http **out, struct ca_error *err)
{
        const struct ca_config_agent *cfg = &a->cfg->agent;
        struct status_http *s = calloc(1, sizeof(*s));
        if (!s)
                return ca_error_set(err, -ENOMEM, "out of memory");
        s->agent = a;
        s->http = evhttp_new(a->base);
        if (!s->http) {
                free(s);
                return ca_error_set(err, -ENOMEM, "cannot create the status endpoint");
        }
        evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
        evhttp_set_max_headers_size(s->http, STATUS_MAX_HEADERS);
        evhttp_set_max_body_size(s->http, STATUS_MAX_BODY);
        evhttp_set_timeout(s->http, STATUS_TIMEOUT_S);
        evhttp_set_cb(s->http, "/healthz", on_healthz, s);
        evhttp_set_cb(s->http, "/readyz", on_readyz, s);
        evhttp_set_cb(s->http, "/metrics", on_metrics, s);
        if (evhttp_bind_socket(s->http, cfg->status_address, (ev_uint16_t)cfg->status_port) < 0) {
                status_http_free(s);
                return ca_error_set(err, -EADDRINUSE,
                                    "cannot listen on %s:%u for the status endpoint "
                                    "(status_address, status_port)",
                                    cfg->status_address, cfg->status_port);
        }
        log_info("status endpoint on http://%s:%u/ (/healthz, /readyz, /metrics)",
                 cfg->status_address, cfg->status_port);
        *out = s;
        return 0;
}

void status_http_free(struct status_http *s)
{
        if (!s)
                return;
        if (s->http)
                evhttp_free(s->http);
        free(s);
}
