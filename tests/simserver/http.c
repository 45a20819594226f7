/* http: the evhttp side of the simulated server. Owns the listener, routes every
 * request to its endpoint (after the fault queue had its say), answers in JSON, logs one
 * line per request and records it in the request ring. Also owns the answers that
 * outlive their callback (a slow answer, a dropped connection, an oversized stream):
 * each is tied to its connection and forgotten, without touching freed memory, when the
 * connection goes first. */
#include "simserver.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "log.h"
#include "timeutil.h"

#define OVERSIZED_CHUNK (64 * 1024)

enum pending_kind { PENDING_DELAY, PENDING_DROP, PENDING_STREAM, PENDING_CUT };

struct sim_pending {
        struct sim_pending *next;
        struct sim *s;
        struct evhttp_request *req;
        struct evhttp_connection *evcon;
        struct event *ev;
        enum pending_kind kind;
        enum sim_endpoint ep;
        long long remaining; /* bytes still to stream */
        int suffix_sent;
};

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

static const char *method_name(struct evhttp_request *req)
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

static void log_request(struct sim *s, struct evhttp_request *req, int status, size_t bytes)
{
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
        const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
        const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
        if (!path)
                path = "";
        if (!is_control(path))
                store_record_request(s, method_name(req), path, query, status);
        /* The query never holds a secret (the token travels in a header, the client
         * secret in the token body), so it is logged whole. */
        if (status)
                log_info("%s %s%s%s -> %d (%zu bytes)", method_name(req), path, query ? "?" : "",
                         query ? query : "", status, bytes);
        else
                log_info("%s %s%s%s -> connection dropped", method_name(req), path,
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
        log_request(s, req, status, status == 204 ? 0 : len);
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
                store_violation(s, "%s %s: %s", method_name(req), path ? path : "", msg);
        }
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

static int hexval(int c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        c = tolower(c);
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

/* Decodes one application/x-www-form-urlencoded component of length n. */
static char *form_decode(const char *p, size_t n)
{
        char *out = malloc(n + 1), *o = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '+') {
                        *o++ = ' ';
                } else if (p[i] == '%' && i + 2 < n && hexval((unsigned char)p[i + 1]) >= 0 &&
                           hexval((unsigned char)p[i + 2]) >= 0) {
                        *o++ = (char)(hexval((unsigned char)p[i + 1]) * 16 +
                                      hexval((unsigned char)p[i + 2]));
                        i += 2;
                } else {
                        *o++ = p[i];
                }
        }
        *o = '\0';
        return out;
}

char *http_form_get(const char *form, const char *name, int *dup_out)
{
        char *found = NULL;
        size_t nlen = strlen(name);
        if (dup_out)
                *dup_out = 0;
        for (const char *p = form; p && *p;) {
                const char *amp = strchr(p, '&');
                size_t plen = amp ? (size_t)(amp - p) : strlen(p);
                const char *eq = memchr(p, '=', plen);
                size_t klen = eq ? (size_t)(eq - p) : plen;
                char *k = form_decode(p, klen);
                if (k && strlen(k) == nlen && memcmp(k, name, nlen) == 0) {
                        if (found) {
                                if (dup_out)
                                        *dup_out = 1;
                        } else {
                                found = eq ? form_decode(eq + 1, plen - klen - 1) : strdup("");
                        }
                }
                free(k);
                p = amp ? amp + 1 : NULL;
        }
        return found;
}

/* Checks that the query holds only the allowed names, each at most once. */
static int query_names_allowed(const char *query, const char *const *allowed, char *bad,
                               size_t badlen)
{
        for (const char *p = query; p && *p;) {
                const char *amp = strchr(p, '&');
                size_t plen = amp ? (size_t)(amp - p) : strlen(p);
                const char *eq = memchr(p, '=', plen);
                size_t klen = eq ? (size_t)(eq - p) : plen;
                char *k = form_decode(p, klen);
                int ok = 0;
                for (size_t i = 0; k && allowed[i]; i++)
                        if (strcmp(k, allowed[i]) == 0)
                                ok = 1;
                if (!ok) {
                        snprintf(bad, badlen, "%s", k ? k : "?");
                        free(k);
                        return 0;
                }
                int dup = 0;
                free(http_form_get(query, k, &dup));
                free(k);
                if (dup) {
                        snprintf(bad, badlen, "%.*s (given twice)", (int)klen, p);
                        return 0;
                }
                p = amp ? amp + 1 : NULL;
        }
        return 1;
}

int http_check_api(struct sim *s, struct evhttp_request *req, int has_body)
{
        static const char *const data_names[] = {"api-version", "ContinuationToken", "PageSize",
                                                 NULL};
        static const char *const other_names[] = {"api-version", NULL};
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
        const char *query = evhttp_uri_get_query(uri);
        const char *path = evhttp_uri_get_path(uri);
        struct evkeyvalq *h = evhttp_request_get_input_headers(req);
        char bad[256];
        int dup = 0;

        char *ver = query ? http_form_get(query, "api-version", &dup) : NULL;
        if (!ver) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "missing api-version query parameter");
                return -1;
        }
        if (strcmp(ver, s->cfg.api_version) != 0) {
                http_refuse(s, req, 400, "unsupported_api_version", 1,
                            "api-version '%s' is not supported (expected '%s')", ver,
                            s->cfg.api_version);
                free(ver);
                return -1;
        }
        free(ver);
        int is_data = strstr(path, "/ProvisioningData/") != NULL;
        if (!query_names_allowed(query, is_data ? data_names : other_names, bad, sizeof(bad))) {
                http_refuse(s, req, 400, "invalid_request", 1, "query parameter '%s' not allowed",
                            bad);
                return -1;
        }

        const char *auth = evhttp_find_header(h, "Authorization");
        if (!auth) {
                http_refuse(s, req, 401, "invalid_token", 1, "missing Authorization header");
                return -1;
        }
        if (strncasecmp(auth, "Bearer ", 7) != 0 || !auth[7]) {
                http_refuse(s, req, 401, "invalid_token", 1,
                            "Authorization must be 'Bearer <token>'");
                return -1;
        }
        if (!store_token_valid(s, auth + 7)) {
                /* Not a violation: tokens expire and get revoked; the agent must renew. */
                evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                                  "Bearer error=\"invalid_token\"");
                http_refuse(s, req, 401, "invalid_token", 0, "token expired, revoked or unknown");
                return -1;
        }
        const char *accept = evhttp_find_header(h, "Accept");
        if (!accept || !strstr(accept, "application/json")) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "Accept must include application/json (got '%s')",
                            accept ? accept : "(none)");
                return -1;
        }
        const char *ua = evhttp_find_header(h, "User-Agent");
        if (!ua || !*ua) {
                http_refuse(s, req, 400, "invalid_request", 1, "missing User-Agent header");
                return -1;
        }
        if (has_body) {
                const char *ct = evhttp_find_header(h, "Content-Type");
                if (!ct || strncasecmp(ct, "application/json", 16) != 0 ||
                    (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
                        http_refuse(s, req, 415, "invalid_request", 1,
                                    "Content-Type must be application/json (got '%s')",
                                    ct ? ct : "(none)");
                        return -1;
                }
        }
        return 0;
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

static void conn_closed(struct evhttp_connection *evcon, void *arg);

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

/* ---- answers that outlive their callback ---- */

static void pending_unlink(struct sim *s, struct sim_pending *p)
{
        for (struct sim_pending **pp = &s->pending; *pp; pp = &(*pp)->next) {
                if (*pp == p) {
                        *pp = p->next;
                        break;
                }
        }
        if (p->ev)
                event_free(p->ev);
        free(p);
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
        struct sim_pending **pp = &s->pending;
        while (*pp) {
                struct sim_pending *p = *pp;
                if (p->evcon != evcon) {
                        pp = &p->next;
                        continue;
                }
                *pp = p->next;
                /* A request the connection let go of (it failed while we still held the
                 * answer) is ours to free; one still attached goes with the connection. */
                if (evhttp_request_get_connection(p->req) == NULL) {
                        if (p->kind == PENDING_STREAM || p->kind == PENDING_CUT)
                                evhttp_send_reply_end(p->req);
                        else
                                evhttp_request_free(p->req);
                }
                if (p->ev)
                        event_free(p->ev);
                free(p);
        }
}

static void pending_fire(evutil_socket_t fd, short what, void *arg)
{
        struct sim_pending *p = arg;
        struct sim *s = p->s;
        struct evhttp_request *req = p->req;
        struct evhttp_connection *evcon = p->evcon;
        enum pending_kind kind = p->kind;
        enum sim_endpoint ep = p->ep;
        pending_unlink(s, p);
        if (kind == PENDING_DROP)
                evhttp_connection_free(evcon);
        else
                http_route(s, req, ep);
}

static struct sim_pending *pending_new(struct sim *s, struct evhttp_request *req,
                                       enum pending_kind kind)
{
        struct sim_pending *p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->s = s;
        p->req = req;
        p->kind = kind;
        p->evcon = evhttp_request_get_connection(req);
        if (kind != PENDING_STREAM) {
                p->ev = evtimer_new(s->base, pending_fire, p);
                if (!p->ev) {
                        free(p);
                        return NULL;
                }
        }
        evhttp_connection_set_closecb(p->evcon, conn_closed, s);
        p->next = s->pending;
        s->pending = p;
        return p;
}

void http_defer(struct sim *s, struct evhttp_request *req, enum sim_endpoint ep, long delay_ms)
{
        struct sim_pending *p = pending_new(s, req, PENDING_DELAY);
        if (!p) {
                http_route(s, req, ep);
                return;
        }
        p->ep = ep;
        struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
        evtimer_add(p->ev, &tv);
}

void http_drop(struct sim *s, struct evhttp_request *req)
{
        log_request(s, req, 0, 0);
        struct sim_pending *p = pending_new(s, req, PENDING_DROP);
        if (!p) {
                http_reply_raw(s, req, 500, NULL, NULL, 0);
                return;
        }
        /* Freed from the loop, not from inside evhttp's own read callback. */
        struct timeval tv = {0, 0};
        evtimer_add(p->ev, &tv);
}

static void stream_next(struct evhttp_connection *evcon, void *arg)
{
        static const char suffix[] = "\"}";
        struct sim_pending *p = arg;
        struct evbuffer *buf = evbuffer_new();
        if (!buf)
                return;
        if (p->remaining > 0) {
                long long n = p->remaining > OVERSIZED_CHUNK ? OVERSIZED_CHUNK : p->remaining;
                char pad[1024];
                memset(pad, 'x', sizeof(pad));
                for (long long done = 0; done < n;) {
                        size_t k =
                            (size_t)(n - done > (long long)sizeof(pad) ? (long long)sizeof(pad)
                                                                       : n - done);
                        evbuffer_add(buf, pad, k);
                        done += (long long)k;
                }
                p->remaining -= n;
                evhttp_send_reply_chunk_with_cb(p->req, buf, stream_next, p);
        } else if (!p->suffix_sent) {
                p->suffix_sent = 1;
                evbuffer_add(buf, suffix, 2);
                evhttp_send_reply_chunk_with_cb(p->req, buf, stream_next, p);
        } else {
                struct sim *s = p->s;
                struct evhttp_request *req = p->req;
                pending_unlink(s, p);
                evhttp_send_reply_end(req);
        }
        evbuffer_free(buf);
}

void http_stream_oversized(struct sim *s, struct evhttp_request *req, long long nbytes)
{
        static const char prefix[] = "{\"ProvisioningOrdersList\":[],\"ContinuationToken\":null,"
                                     "\"Padding\":\"";
        long long fixed = (long long)(sizeof(prefix) - 1) + 2;
        struct sim_pending *p = pending_new(s, req, PENDING_STREAM);
        if (!p) {
                http_reply_raw(s, req, 500, NULL, NULL, 0);
                return;
        }
        p->remaining = nbytes > fixed ? nbytes - fixed : 0;
        log_request(s, req, 200, (size_t)(p->remaining + fixed));
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json; charset=utf-8");
        evhttp_send_reply_start(req, 200, "OK");
        struct evbuffer *buf = evbuffer_new();
        if (buf) {
                evbuffer_add(buf, prefix, sizeof(prefix) - 1);
                evhttp_send_reply_chunk_with_cb(req, buf, stream_next, p);
                evbuffer_free(buf);
        }
}

static void cut_written(struct evhttp_connection *evcon, void *arg)
{
        struct sim_pending *p = arg;
        struct timeval tv = {0, 0};
        /* The first half is on the wire: now hang up, short of Content-Length. */
        p->kind = PENDING_DROP;
        evtimer_add(p->ev, &tv);
}

void http_reply_cut(struct sim *s, struct evhttp_request *req, const char *data, size_t len)
{
        char clen[32];
        struct sim_pending *p = pending_new(s, req, PENDING_CUT);
        struct evbuffer *buf = evbuffer_new();
        if (!p || !buf || len < 2) {
                evbuffer_free(buf);
                http_reply_raw(s, req, 500, NULL, NULL, 0);
                return;
        }
        log_request(s, req, 200, len);
        snprintf(clen, sizeof(clen), "%zu", len);
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
        evhttp_add_header(h, "Content-Length", clen);
        evhttp_send_reply_start(req, 200, "OK");
        evbuffer_add(buf, data, len / 2);
        evhttp_send_reply_chunk_with_cb(req, buf, cut_written, p);
        evbuffer_free(buf);
}

/* ---- set-up ---- */

int http_setup(struct sim *s, struct ca_error *err)
{
        s->http = evhttp_new(s->base);
        if (!s->http)
                return ca_error_set(err, -ENOMEM, "cannot create the HTTP server");
        evhttp_set_max_body_size(s->http, s->cfg.max_body);
        evhttp_set_max_headers_size(s->http, 64 * 1024);
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
        while (s->pending) {
                struct sim_pending *p = s->pending;
                s->pending = p->next;
                if (p->ev)
                        event_free(p->ev);
                free(p);
        }
}

int http_iso8601_utc_valid(const char *v)
{
        /* YYYY-MM-DDTHH:MM:SS[.fraction]Z */
        int y, mo, d, h, mi, sec, n = 0;
        if (!v || strlen(v) < 20)
                return 0;
        if (sscanf(v, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
                return 0;
        for (int i = 0; i < 19; i++) {
                if (i == 4 || i == 7) {
                        if (v[i] != '-')
                                return 0;
                } else if (i == 10) {
                        if (v[i] != 'T')
                                return 0;
                } else if (i == 13 || i == 16) {
                        if (v[i] != ':')
                                return 0;
                } else if (!isdigit((unsigned char)v[i])) {
                        return 0;
                }
        }
        if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
                return 0;
        const char *p = v + 19;
        if (*p == '.') {
                p++;
                if (!isdigit((unsigned char)*p))
                        return 0;
                while (isdigit((unsigned char)*p))
                        p++;
        }
        return p[0] == 'Z' && p[1] == '\0';
}
