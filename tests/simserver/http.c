/* SPDX-License-Identifier: Apache-2.0 */
/* http: the evhttp side of the simulated server. Owns the listener, counts and caps
 * connections, routes every request to its endpoint (after the fault queue had its say),
 * answers in JSON, logs one line per request and records it in the request ring. */
#include "simserver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "log.h"

static const char *reason(int status)
{
        switch (status) {
        case 200:
                return "OK";
        case 204:
                return "No Content";
        case 400:
                return "Bad Request";
        case 401:
                return "Unauthorized";
        case 403:
                return "Forbidden";
        case 404:
                return "Not Found";
        case 405:
                return "Method Not Allowed";
        case 409:
                return "Conflict";
        case 413:
                return "Payload Too Large";
        case 415:
                return "Unsupported Media Type";
        case 429:
                return "Too Many Requests";
        case 500:
                return "Internal Server Error";
        case 502:
                return "Bad Gateway";
        case 503:
                return "Service Unavailable";
        case 504:
                return "Gateway Timeout";
        default:
                return "Status";
        }
}

const char *http_method_name(struct evhttp_request *req)
{
        switch (evhttp_request_get_command(req)) {
        case EVHTTP_REQ_GET:
                return "GET";
        case EVHTTP_REQ_POST:
                return "POST";
        case EVHTTP_REQ_PUT:
                return "PUT";
        case EVHTTP_REQ_DELETE:
                return "DELETE";
        case EVHTTP_REQ_HEAD:
                return "HEAD";
        case EVHTTP_REQ_PATCH:
                return "PATCH";
        case EVHTTP_REQ_OPTIONS:
                return "OPTIONS";
        default:
                return "OTHER";
        }
}

static int is_control(const char *path)
{
        return strncmp(path, "/_control/", 10) == 0;
}

void http_log_request(struct sim *s, struct evhttp_request *req, int status, size_t bytes)
{
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
        const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
        const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
        if (!path)
                path = "";
        if (!is_control(path))
                store_record_request(s, http_method_name(req), path, query, status);
        /* The query never holds a secret (the token travels in a header, the client
         * secret in the token body), so it is logged whole. */
        if (status)
                log_info("%s %s%s%s -> %d (%zu bytes)", http_method_name(req), path,
                         query ? "?" : "", query ? query : "", status, bytes);
        else
                log_info("%s %s%s%s -> connection dropped", http_method_name(req), path,
                         query ? "?" : "", query ? query : "");
}

void http_reply_raw(struct sim *s, struct evhttp_request *req, int status, const char *content_type,
                    const char *data, size_t len)
{
        struct evbuffer *buf = evbuffer_new();
        if (content_type && status != 204)
                evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                                  content_type);
        if (buf && data && status != 204)
                evbuffer_add(buf, data, len);
        http_log_request(s, req, status, status == 204 ? 0 : len);
        evhttp_send_reply(req, status, reason(status), buf);
        evbuffer_free(buf);
}

void http_reply_json(struct sim *s, struct evhttp_request *req, int status, json_t *body)
{
        char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        if (body && !text) {
                json_decref(body);
                http_reply_raw(s, req, 500, "application/json", "{\"error\":\"out of memory\"}",
                               25);
                return;
        }
        http_reply_raw(s, req, status, "application/json; charset=utf-8", text,
                       text ? strlen(text) : 0);
        free(text);
        json_decref(body);
}

void http_refuse(struct sim *s, struct evhttp_request *req, int status, const char *error,
                 int violation, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (violation) {
                const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
                const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
                store_violation(s, "%s %s: %s", http_method_name(req), path ? path : "", msg);
        }
        if (status == 400)
                store_results_refused(s, req);
        http_reply_json(s, req, status,
                        json_pack("{s:s, s:s}", "error", error, "error_description", msg));
}

char *http_body_dup(struct evhttp_request *req, size_t *len)
{
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        if (len)
                *len = n;
        if (n == 0)
                return NULL;
        char *out = malloc(n + 1);
        if (!out)
                return NULL;
        evbuffer_copyout(in, out, n);
        out[n] = '\0';
        return out;
}

/* A path segment after prefix, decoded; NULL when there is none or it has a '/'. */
static char *path_tail(const char *path, const char *prefix)
{
        size_t n = strlen(prefix);
        if (strncmp(path, prefix, n) != 0 || !path[n] || strchr(path + n, '/'))
                return NULL;
        return evhttp_uridecode(path + n, 0, NULL);
}

static enum sim_endpoint classify(const char *path)
{
        if (is_control(path))
                return SIM_EP_CONTROL;
        if (strcmp(path, "/connect/token") == 0)
                return SIM_EP_TOKEN;
        if (strncmp(path, "/api/Connectors/Provisioning/ProvisioningData/", 46) == 0)
                return SIM_EP_DATA;
        if (strcmp(path, "/api/Connectors/Provisioning/ProvisioningResults") == 0)
                return SIM_EP_RESULTS;
        if (strncmp(path, "/api/Connectors/Agent/", 22) == 0)
                return SIM_EP_HEARTBEAT;
        return SIM_EP_UNKNOWN;
}

void http_route(struct sim *s, struct evhttp_request *req, enum sim_endpoint ep)
{
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
        const char *path = evhttp_uri_get_path(uri);
        enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
        char *tail = NULL;
        switch (ep) {
        case SIM_EP_TOKEN:
                if (cmd != EVHTTP_REQ_POST) {
                        http_refuse(s, req, 405, "invalid_request", 1,
                                    "the token endpoint takes POST");
                        break;
                }
                routes_token(s, req);
                break;
        case SIM_EP_DATA:
                tail = path_tail(path, "/api/Connectors/Provisioning/ProvisioningData/");
                if (!tail || !*tail) {
                        http_refuse(s, req, 404, "not_found", 1, "no connector id in the path");
                        break;
                }
                if (cmd != EVHTTP_REQ_GET) {
                        http_refuse(s, req, 405, "invalid_request", 1,
                                    "ProvisioningData takes GET");
                        break;
                }
                routes_provisioning_data(s, req, tail);
                break;
        case SIM_EP_RESULTS:
                if (cmd != EVHTTP_REQ_PUT) {
                        http_refuse(s, req, 405, "invalid_request", 1,
                                    "ProvisioningResults takes PUT");
                        break;
                }
                routes_provisioning_results(s, req);
                break;
        case SIM_EP_HEARTBEAT:
                tail = path_tail(path, "/api/Connectors/Agent/");
                if (!tail || !*tail) {
                        http_refuse(s, req, 404, "not_found", 1, "no agent identifier in the path");
                        break;
                }
                if (cmd != EVHTTP_REQ_PUT) {
                        http_refuse(s, req, 405, "invalid_request", 1,
                                    "the agent status takes PUT");
                        break;
                }
                routes_agent(s, req, tail);
                break;
        default:
                http_refuse(s, req, 404, "not_found", 1, "no such endpoint: %s", path);
                break;
        }
        free(tail);
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
        struct sim *s = arg;
        for (size_t i = 0; i < s->nconns; i++) {
                if (s->conns[i] == evcon) {
                        s->conns[i] = s->conns[--s->nconns];
                        break;
                }
        }
        deferred_conn_closed(s, evcon);
}

/* Counts the connection of req; refuses it (503, closed) past SIM_MAX_CONNECTIONS. */
static int conn_track(struct sim *s, struct evhttp_request *req)
{
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        for (size_t i = 0; i < s->nconns; i++)
                if (s->conns[i] == evcon)
                        return 0;
        if (s->nconns >= SIM_MAX_CONNECTIONS) {
                s->conns_refused++;
                evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
                evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
                http_reply_json(s, req, 503, json_pack("{s:s}", "error", "too many connections"));
                return -1;
        }
        s->conns[s->nconns++] = evcon;
        evhttp_connection_set_closecb(evcon, conn_closed, s);
        return 0;
}

static void dispatch(struct evhttp_request *req, void *arg)
{
        struct sim *s = arg;
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
        const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
        if (!path || !*path) {
                http_refuse(s, req, 400, "invalid_request", 1, "unparsable request URI");
                return;
        }
        if (conn_track(s, req) < 0)
                return;
        enum sim_endpoint ep = classify(path);
        if (ep == SIM_EP_CONTROL) {
                control_handle(s, req, path);
                return;
        }
        s->requests++;
        if (ep != SIM_EP_UNKNOWN && faults_apply(s, req, ep))
                return;
        http_route(s, req, ep);
}

/* ---- set-up ---- */

int http_setup(struct sim *s, struct ca_error *err)
{
        s->http = evhttp_new(s->base);
        if (!s->http)
                return ca_error_set(err, -ENOMEM, "cannot create the HTTP server");
        evhttp_set_max_body_size(s->http, s->cfg.max_body);
        /* The request line counts: room for a continuation token escaped whole. */
        evhttp_set_max_headers_size(s->http, 64 * 1024 + 3 * (size_t)s->cfg.continuation_bytes);
        evhttp_set_timeout(s->http, SIM_IDLE_TIMEOUT_S);
        evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                                EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                                EVHTTP_REQ_HEAD);
        evhttp_set_gencb(s->http, dispatch, s);
        evhttp_set_bevcb(s->http, tls_bevcb, s);
        struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(
            s->http, s->cfg.listen_host, (ev_uint16_t)s->cfg.listen_port);
        if (!bound)
                return ca_error_set(err, -EADDRINUSE, "cannot listen on %s:%d: %s",
                                    s->cfg.listen_host, s->cfg.listen_port, strerror(errno));
        evutil_socket_t fd = evhttp_bound_socket_get_fd(bound);
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
                return ca_error_set(err, -errno, "getsockname: %s", strerror(errno));
        if (ss.ss_family == AF_INET)
                s->bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else
                s->bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        return 0;
}

void http_teardown(struct sim *s)
{
        /* evhttp_free frees every connection, calling conn_closed for each. */
        if (s->http)
                evhttp_free(s->http);
        s->http = NULL;
        deferred_free_all(s);
}
