/* SPDX-License-Identifier: Apache-2.0 */
#include "status_http.h"

#include <dirent.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "agent.h"
#include "policy.h"
#include "reporter.h"
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
        if (agent_journal_failing(a))
                return "the journal cannot be written";
        return NULL;
}

static const char *not_ready(const struct agent *a)
{
        const char *why = unhealthy(a);
        if (why)
                return why;
        if (a->env.phase != AGENT_RUNNING)
                return "stopping";
        if (!api_has_token(a->env.api))
                return "no access token from the server";
        if (!a->ready_sent || !a->server_connected)
                return "the last exchange with the server failed";
        if (heartbeat_server_silent(a->heartbeat))
                return "the server does not answer (it may hang)";
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

/* labels: the sample's labels without le, e.g. connector="c1" (never empty). */
static void histogram(struct evbuffer *b, const char *name, const char *labels,
                      const struct histogram *h)
{
        uint64_t cumulative = 0;
        for (size_t i = 0; i < METRICS_BUCKETS; i++) {
                cumulative += h->counts[i];
                evbuffer_add_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels,
                                    (double)metrics_bucket_ms[i] / 1000.0,
                                    (unsigned long long)cumulative);
        }
        cumulative += h->counts[METRICS_BUCKETS];
        evbuffer_add_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
                            (unsigned long long)cumulative);
        evbuffer_add_printf(b, "%s_sum{%s} %.3f\n", name, labels, (double)h->sum_ms / 1000.0);
        evbuffer_add_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
}

static void connector_histogram(struct evbuffer *b, const char *name, const char *connector,
                                const struct histogram *h)
{
        char labels[256];
        snprintf(labels, sizeof(labels), "connector=\"%s\"", connector);
        histogram(b, name, labels, h);
}

/* The standard process_* family (what the Prometheus client libraries export), read
 * from the kernel at each scrape. A value that cannot be read is left out, never
 * invented. */
static void process_metrics(struct evbuffer *b, const struct agent *a)
{
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0) {
                help(b, "process_cpu_seconds_total", "counter",
                     "User and system CPU time spent, in seconds.");
                evbuffer_add_printf(b, "process_cpu_seconds_total %.6f\n",
                                    (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                                        (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
        }
        unsigned long long vsize_pages, rss_pages;
        FILE *f = fopen("/proc/self/statm", "re");
        if (f) {
                if (fscanf(f, "%llu %llu", &vsize_pages, &rss_pages) == 2) {
                        unsigned long long page = (unsigned long long)sysconf(_SC_PAGESIZE);
                        help(b, "process_resident_memory_bytes", "gauge",
                             "Resident memory size in bytes.");
                        evbuffer_add_printf(b, "process_resident_memory_bytes %llu\n",
                                            rss_pages * page);
                        help(b, "process_virtual_memory_bytes", "gauge",
                             "Virtual memory size in bytes.");
                        evbuffer_add_printf(b, "process_virtual_memory_bytes %llu\n",
                                            vsize_pages * page);
                }
                fclose(f);
        }
        DIR *d = opendir("/proc/self/fd");
        if (d) {
                unsigned long n = 0;
                struct dirent *de;
                while ((de = readdir(d)) != NULL)
                        if (de->d_name[0] != '.')
                                n++;
                closedir(d);
                help(b, "process_open_fds", "gauge", "Open file descriptors.");
                /* Less the one opendir held while counting. */
                evbuffer_add_printf(b, "process_open_fds %lu\n", n ? n - 1 : 0);
        }
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
                help(b, "process_max_fds", "gauge", "Limit on open file descriptors.");
                evbuffer_add_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
        }
        help(b, "process_start_time_seconds", "gauge",
             "Start time of the process since the Unix epoch, in seconds.");
        evbuffer_add_printf(b, "process_start_time_seconds %lld\n", (long long)a->started_at);
}

/* Connector names are restricted to [A-Za-z0-9._-] by the configuration, so they need no
 * escaping inside a label value. */
#define FOR_CONNECTORS(a, c)                                                                       \
        for (size_t i_ = 0; i_ < (a)->connector_count; i_++)                                       \
                for (const struct connector *c = (a)->connectors[i_]; c; c = NULL)

static struct poller_stats poll_stats(const struct connector *c)
{
        struct poller_stats st;
        poller_stats(c->poller, &st);
        return st;
}

static struct reporter_stats report_stats(const struct connector *c)
{
        struct reporter_stats st;
        reporter_stats(connector_reporter(c), &st);
        return st;
}

static void metrics(struct evbuffer *b, const struct agent *a)
{
        static const char *const changes[] = {"Unknown", "Added", "Modified", "Deleted"};
        help(b, "connector_agent_build_info", "gauge", "Version of the running agent.");
        evbuffer_add_printf(b, "connector_agent_build_info{version=\"%s\"} 1\n", CA_VERSION);
        help(b, "connector_agent_server_connected", "gauge",
             "1 while the last exchange with the server succeeded.");
        evbuffer_add_printf(b, "connector_agent_server_connected %d\n", a->server_connected);
        help(b, "connector_agent_journal_writable", "gauge", "0 while journal writes fail.");
        evbuffer_add_printf(b, "connector_agent_journal_writable %d\n", !agent_journal_failing(a));
        help(b, "connector_agent_token_requests_total", "counter",
             "Access token requests made (renewals included).");
        evbuffer_add_printf(b, "connector_agent_token_requests_total %lu\n",
                            api_token_requests(a->env.api));
        help(b, "connector_agent_http_resent_total", "counter",
             "Requests libcurl sent again after a reused connection dropped.");
        evbuffer_add_printf(b, "connector_agent_http_resent_total %lu\n", http_resent(a->http));
        help(b, "connector_agent_reloads_total", "counter",
             "Configuration reloads (SIGHUP) since start, by outcome.");
        evbuffer_add_printf(b, "connector_agent_reloads_total{outcome=\"applied\"} %lu\n",
                            a->reloads);
        evbuffer_add_printf(b, "connector_agent_reloads_total{outcome=\"refused\"} %lu\n",
                            a->reloads_refused);
        help(b, "connector_agent_configurations_held", "gauge",
             "Configurations in memory: the current one, the one the connectors were built "
             "with, and those replaced by reloads while jobs still use them.");
        evbuffer_add_printf(b, "connector_agent_configurations_held %zu\n",
                            1 + (a->base_cfg != a->cfg) + a->retired_count);
        /* No sample until a heartbeat was accepted: a number would read as an age. */
        help(b, "connector_agent_heartbeat_age_seconds", "gauge",
             "Seconds since the server last accepted a heartbeat (absent: never).");
        if (heartbeat_last_ok_ms(a->heartbeat))
                evbuffer_add_printf(b, "connector_agent_heartbeat_age_seconds %.3f\n",
                                    (double)(time_mono_ms() - heartbeat_last_ok_ms(a->heartbeat)) /
                                        1000.0);

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
        help(b, "connector_agent_connector_serving", "gauge",
             "1 while this instance serves the connector (polls, executes, reports); 0 while "
             "another instance on the shared journal does.");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_connector_serving{connector=\"%s\"} %d\n", c->name,
                            !c->standby);
        help(b, "connector_agent_connector_role_epoch", "gauge",
             "How many times the connector's role was taken on the shared journal (0: not "
             "shared).");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_connector_role_epoch{connector=\"%s\"} %lld\n",
                            c->name, (long long)c->role.epoch);
        help(b, "connector_agent_orders_in_flight", "gauge",
             "Orders accepted and not finished yet.");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_orders_in_flight{connector=\"%s\"} %zu\n", c->name,
                            connector_in_flight(c));
        help(b, "connector_agent_orders_in_doubt", "gauge",
             "Orders being settled after a crash or a lost connection.");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_orders_in_doubt{connector=\"%s\"} %zu\n", c->name,
                            c->in_doubt);
        help(b, "connector_agent_orders_held", "gauge",
             "Orders a guardrail holds in the journal until an operator releases or refuses them.");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_orders_held{connector=\"%s\"} %zu\n", c->name,
                            policy_held(c->policy));
        help(b, "connector_agent_guardrail_total", "counter",
             "Orders a guardrail refused or held since start, by rule.");
        FOR_CONNECTORS(a, c)
        {
                for (int r = 0; r < GUARD_RULES; r++) {
                        unsigned long refused = policy_refused_by(c->policy, (enum guard_rule)r);
                        unsigned long held = policy_holds_by(c->policy, (enum guard_rule)r);
                        if (refused || r < GUARD_RULE_MAX_ADDED)
                                evbuffer_add_printf(b,
                                                    "connector_agent_guardrail_total{connector="
                                                    "\"%s\",rule=\"%s\",action=\"refused\"} %lu\n",
                                                    c->name, guard_rule_key((enum guard_rule)r),
                                                    refused);
                        if (held || r >= GUARD_RULE_MAX_ADDED)
                                evbuffer_add_printf(b,
                                                    "connector_agent_guardrail_total{connector="
                                                    "\"%s\",rule=\"%s\",action=\"held\"} %lu\n",
                                                    c->name, guard_rule_key((enum guard_rule)r),
                                                    held);
                }
        }
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
                            c->name, poll_stats(c).backoff_attempts);
        help(b, "connector_agent_report_backoff_attempts", "gauge",
             "Consecutive failed result deliveries (0: not backing off).");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_report_backoff_attempts{connector=\"%s\"} %u\n",
                            c->name, report_stats(c).backoff_attempts);
        help(b, "connector_agent_poll_failures_total", "counter", "Failed ProvisioningData calls.");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_poll_failures_total{connector=\"%s\"} %lu\n",
                            c->name, poll_stats(c).failures);
        help(b, "connector_agent_report_failures_total", "counter",
             "Failed ProvisioningResults calls.");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_report_failures_total{connector=\"%s\"} %lu\n",
                            c->name, report_stats(c).failures);
        help(b, "connector_agent_results_refused", "gauge",
             "Results the server refused (HTTP 400), held in the journal for an operator.");
        FOR_CONNECTORS(a, c)
        evbuffer_add_printf(b, "connector_agent_results_refused{connector=\"%s\"} %zu\n", c->name,
                            c->refused + report_stats(c).refused);
        help(b, "connector_agent_poll_duration_seconds", "histogram",
             "Time of ProvisioningData calls.");
        FOR_CONNECTORS(a, c)
        connector_histogram(b, "connector_agent_poll_duration_seconds", c->name,
                            poll_stats(c).latency);
        help(b, "connector_agent_report_duration_seconds", "histogram",
             "Time of ProvisioningResults calls.");
        FOR_CONNECTORS(a, c)
        connector_histogram(b, "connector_agent_report_duration_seconds", c->name,
                            &c->report_latency);
        help(b, "connector_agent_order_duration_seconds", "histogram",
             "Time the back-end took to execute an order, by change type.");
        FOR_CONNECTORS(a, c)
        {
                for (int t = 0; t < 4; t++) {
                        char labels[256];
                        snprintf(labels, sizeof(labels), "connector=\"%s\",change_type=\"%s\"",
                                 c->name, changes[t]);
                        histogram(b, "connector_agent_order_duration_seconds", labels,
                                  &c->order_latency[t]);
                }
        }
        process_metrics(b, a);
}

/* What the port serves, for whoever opens it in a browser or with curl. */
static void on_index(struct evhttp_request *req, void *arg)
{
        (void)arg;
        reply_text(req, 200,
                   "connector-agent " CA_VERSION " status endpoint\n"
                   "\n"
                   "/healthz  200 while the loop answers and no back-end worker is wedged\n"
                   "/readyz   200 while a token is held and the last exchange with the server "
                   "succeeded\n"
                   "/metrics  Prometheus text format 0.0.4");
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
        s->http = evhttp_new(a->env.base);
        if (!s->http) {
                free(s);
                return ca_error_set(err, -ENOMEM, "cannot create the status endpoint");
        }
        evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
        evhttp_set_max_headers_size(s->http, STATUS_MAX_HEADERS);
        evhttp_set_max_body_size(s->http, STATUS_MAX_BODY);
        evhttp_set_timeout(s->http, STATUS_TIMEOUT_S);
        evhttp_set_cb(s->http, "/", on_index, s);
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
        log_info("status endpoint on http://%s:%u/ (/, /healthz, /readyz, /metrics)",
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
