/* SPDX-License-Identifier: Apache-2.0 */
#include "api.h"

#include "backoff.h"
#include <event2/event.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <strings.h>

#include "log.h"
#include "order.h"
#include "timeutil.h"

#define API_TOKEN_MAX           16384
#define API_TOKEN_RENEW_PERCENT 80
#define API_DEFAULT_EXPIRES_S   3600
#define API_MAX_EXPIRES_S       (366L * 24 * 3600)
/* After a failed token request the next one waits, in [half, all] of a window that
 * doubles from 1 s to 5 min: a refused secret retried at every stage's rhythm would
 * hammer the identity provider, which may lock the client out for it. */
#define API_TOKEN_RETRY_BASE_MS 1000
#define API_TOKEN_RETRY_CAP_MS  (5 * 60 * 1000)

struct api_call {
        struct api *api;
        char *method;
        char *url;
        char *body;
        api_done_fn done;
        void *ctx;
        struct api_call **handle;
        int retried;                /* already retried after a 401 */
        char *sent_token;           /* the token this call went out with, to invalidate */
        struct http_request *req;   /* while sent */
        TAILQ_ENTRY(api_call) link; /* in the waiting list, while waiting for a token */
        int waiting;
};

TAILQ_HEAD(call_list, api_call);

struct api {
        struct http *http;
        const struct ca_config_server *server;
        char *token;
        uint64_t token_renew_at_ms;
        struct http_request *token_req;
        struct call_list waiting;
        size_t nwaiting;
        unsigned long token_requests;
        struct ca_backoff token_retry;
        uint64_t token_not_before_ms; /* no token request before this, after a failure */
        struct event *held_ev;        /* fails the calls queued inside that wait */
        char last_error[256];         /* to log a token failure once per change */
        char call_error[320];         /* what the calls it held back are told */
};

static void call_free(struct api_call *c)
{
        if (!c)
                return;
        if (c->handle)
                *c->handle = NULL;
        free(c->method);
        free(c->url);
        free(c->body);
        free(c->sent_token);
        free(c);
}

static void token_wipe(struct api *a)
{
        if (a->token) {
                explicit_bzero(a->token, strlen(a->token));
                free(a->token);
                a->token = NULL;
        }
}

static void on_held(evutil_socket_t fd, short what, void *arg);
static void hold(struct api *a);

int api_new(struct event_base *base, struct http *http, const struct ca_config_server *server,
            struct api **out, struct ca_error *err)
{
        struct api *a = calloc(1, sizeof(*a));
        if (!a)
                return ca_error_set(err, -ENOMEM, "out of memory");
        a->held_ev = evtimer_new(base, on_held, a);
        if (!a->held_ev) {
                free(a);
                return ca_error_set(err, -ENOMEM, "out of memory");
        }
        a->http = http;
        a->server = server;
        backoff_init(&a->token_retry, API_TOKEN_RETRY_BASE_MS, API_TOKEN_RETRY_CAP_MS);
        TAILQ_INIT(&a->waiting);
        *out = a;
        return 0;
}

static void complete(struct api_call *c, const struct http_response *resp)
{
        api_done_fn done = c->done;
        void *ctx = c->ctx;
        if (c->handle)
                *c->handle = NULL;
        c->handle = NULL;
        done(ctx, resp);
        call_free(c);
}

/* The oldest waiting call, out of the list; NULL when none. A call is always taken from
 * the list itself, so that api_cancel from a callback finds it or finds it gone. */
static struct api_call *pop_waiting(struct api *a)
{
        struct api_call *c = TAILQ_FIRST(&a->waiting);
        if (c) {
                TAILQ_REMOVE(&a->waiting, c, link);
                a->nwaiting--;
                c->waiting = 0;
        }
        return c;
}

static void fail_waiting(struct api *a, const struct http_response *resp)
{
        /* Only those waiting now: a callback may queue a new call, which waits for the
         * next token request instead of failing at once in a loop. */
        size_t n = a->nwaiting;
        struct api_call *c;
        while (n-- && (c = pop_waiting(a)))
                complete(c, resp);
}

void api_free(struct api *a)
{
        if (!a)
                return;
        if (a->token_req)
                http_cancel(a->token_req);
        struct http_response resp = {
            .transport_error = CA_HTTP_CANCELLED, .error = "cancelled", .body = ""};
        fail_waiting(a, &resp);
        token_wipe(a);
        if (a->held_ev)
                event_free(a->held_ev);
        free(a);
}

int api_has_token(const struct api *a)
{
        return a->token && time_mono_ms() < a->token_renew_at_ms;
}

unsigned long api_token_requests(const struct api *a)
{
        return a->token_requests;
}

static void on_call_done(void *arg, const struct http_response *resp);
static void request_token(struct api *a);

static void send_call(struct api_call *c)
{
        struct api *a = c->api;
        free(c->sent_token);
        c->sent_token = strdup(a->token);
        struct http_request_spec spec = {
            .method = c->method,
            .url = c->url,
            .body = c->body,
            .body_len = c->body ? strlen(c->body) : 0,
            .content_type = c->body ? "application/json" : NULL,
            .bearer = a->token,
        };
        int rc = c->sent_token ? http_send(a->http, &spec, on_call_done, c, &c->req) : -ENOMEM;
        if (rc < 0) {
                struct http_response resp = {
                    .transport_error = rc, .error = "cannot start the request", .body = ""};
                complete(c, &resp);
        }
}

static void enqueue(struct api_call *c)
{
        struct api *a = c->api;
        TAILQ_INSERT_TAIL(&a->waiting, c, link);
        a->nwaiting++;
        c->waiting = 1;
        if (a->token_req)
                return;
        if (time_mono_ms() < a->token_not_before_ms) {
                hold(a);
                return;
        }
        request_token(a);
}

static void on_call_done(void *arg, const struct http_response *resp)
{
        struct api_call *c = arg;
        struct api *a = c->api;
        c->req = NULL;
        if (resp->status == 401 && !c->retried) {
                /* Expired or revoked: drop this token (unless a newer one already replaced
                 * it) and retry once with a fresh one. */
                c->retried = 1;
                if (a->token && c->sent_token && strcmp(a->token, c->sent_token) == 0)
                        token_wipe(a);
                if (api_has_token(a))
                        send_call(c);
                else
                        enqueue(c);
                return;
        }
        complete(c, resp);
}

/* The calls waiting were never sent: they must not read as if their own endpoint had
 * answered (a 401 from the token endpoint is not one from ProvisioningData). */
static void fail_held(struct api *a)
{
        struct http_response resp = {
            .status = 0, .transport_error = CA_HTTP_NO_TOKEN, .error = a->call_error, .body = ""};
        fail_waiting(a, &resp);
}

/* The waiting calls are told of the last failure at once, but from the loop, never
 * inside api_call, so that the stages back off as they would had a request been made. */
static void hold(struct api *a)
{
        static const struct timeval now = {0, 0};
        evtimer_add(a->held_ev, &now);
}

static void token_failed(struct api *a, const char *why)
{
        a->token_not_before_ms = time_mono_ms() + backoff_next_spaced(&a->token_retry);
        if (strcmp(a->last_error, why) != 0) {
                log_error("%s", why);
                snprintf(a->last_error, sizeof(a->last_error), "%s", why);
        }
        snprintf(a->call_error, sizeof(a->call_error), "not sent, no access token: %s", why);
        hold(a);
}

static void on_held(evutil_socket_t fd, short what, void *arg)
{
        (void)fd;
        (void)what;
        fail_held(arg);
}

static void on_token_done(void *arg, const struct http_response *resp)
{
        struct api *a = arg;
        a->token_req = NULL;
        if (resp->transport_error == CA_HTTP_CANCELLED)
                return;
        char why[256];
        if (resp->status == 0) {
                snprintf(why, sizeof(why), "token request to %s failed: %s", a->server->token_url,
                         resp->error);
                token_failed(a, why);
                return;
        }
        if (resp->status == 400 || resp->status == 401) {
                snprintf(why, sizeof(why),
                         "token request to %s: the server refused the client credentials (HTTP "
                         "%ld): check client_id and the client secret",
                         a->server->token_url, resp->status);
                token_failed(a, why);
                return;
        }
        if (resp->status != 200) {
                snprintf(why, sizeof(why), "token request to %s answered HTTP %ld",
                         a->server->token_url, resp->status);
                token_failed(a, why);
                return;
        }
        char *token = NULL;
        long expires = 0;
        struct ca_error perr = {0};
        if (api_token_parse(resp->body, resp->body_len, &token, &expires, &perr) < 0) {
                snprintf(why, sizeof(why), "token answer from %s rejected: %s",
                         a->server->token_url, perr.msg);
                token_failed(a, why);
                return;
        }
        token_wipe(a);
        backoff_reset(&a->token_retry);
        a->token_not_before_ms = 0;
        a->token = token;
        a->token_renew_at_ms =
            time_mono_ms() + (uint64_t)expires * 1000u * API_TOKEN_RENEW_PERCENT / 100u;
        if (a->last_error[0])
                log_notice("token obtained from %s", a->server->token_url);
        a->last_error[0] = '\0';
        size_t n = a->nwaiting;
        struct api_call *c;
        while (n-- && (c = pop_waiting(a)))
                send_call(c);
}

int api_token_parse(const char *body, size_t len, char **token, long *expires_in,
                    struct ca_error *err)
{
        json_t *root = NULL;
        int lrc = order_json_load(body, len, "token answer", &root, err);
        if (lrc < 0)
                return lrc;
        if (!json_is_object(root)) {
                json_decref(root);
                return ca_error_set(err, -EBADMSG, "token answer: not a JSON object");
        }
        json_t *exp = json_object_get(root, "expires_in");
        json_t *type = json_object_get(root, "token_type");
        const char *t = json_string_value(json_object_get(root, "access_token"));
        int rc = 0;
        if (!t || !*t || strlen(t) > API_TOKEN_MAX || strpbrk(t, "\r\n"))
                rc = ca_error_set(err, -EBADMSG, "access_token missing or not a usable string");
        else if (exp && !json_is_integer(exp))
                rc = ca_error_set(err, -EBADMSG, "expires_in is not an integer");
        else if (type &&
                 (!json_is_string(type) || strcasecmp(json_string_value(type), "Bearer") != 0))
                rc = ca_error_set(err, -EBADMSG, "token_type is not Bearer");
        if (rc == 0) {
                json_int_t e = exp ? json_integer_value(exp) : API_DEFAULT_EXPIRES_S;
                /* Bounded so that the renewal time cannot overflow. */
                *expires_in = e < 1 ? 1 : e > API_MAX_EXPIRES_S ? API_MAX_EXPIRES_S : (long)e;
                *token = strdup(t);
                if (!*token)
                        rc = ca_error_set(err, -ENOMEM, "out of memory");
        }
        json_decref(root);
        return rc;
}

int api_token_form(const struct ca_config_server *s, char **body, size_t *len)
{
        /* Servers in the field compare the client id as sent: "Job%40idm.example.com" is
         * not "Job@idm.example.com" to them. */
        char *id = http_escape_keep(s->client_id, "@");
        char *secret = http_escape(s->client_secret ? s->client_secret : "");
        char *scope = http_escape(s->scope);
        int n = -1;
        *body = NULL;
        if (id && secret && scope)
                n = asprintf(body,
                             "grant_type=client_credentials&client_id=%s&client_secret=%s&scope=%s",
                             id, secret, scope);
        free(id);
        if (secret) {
                explicit_bzero(secret, strlen(secret));
                free(secret);
        }
        free(scope);
        if (n < 0) {
                *body = NULL;
                return -ENOMEM;
        }
        *len = (size_t)n;
        return 0;
}

static void request_token(struct api *a)
{
        const struct ca_config_server *s = a->server;
        char *body = NULL;
        size_t n = 0;
        if (api_token_form(s, &body, &n) < 0) {
                token_failed(a, "out of memory building the token request");
                return;
        }
        struct http_request_spec spec = {
            .method = "POST",
            .url = s->token_url,
            .body = body,
            .body_len = n,
            .content_type = "application/x-www-form-urlencoded",
            .sensitive = 1,
        };
        a->token_requests++;
        int rc = http_send(a->http, &spec, on_token_done, a, &a->token_req);
        explicit_bzero(body, n);
        free(body);
        if (rc < 0) {
                char why[256];
                snprintf(why, sizeof(why), "cannot start the token request to %s: %s", s->token_url,
                         strerror(-rc));
                token_failed(a, why);
        }
}

int api_call(struct api *a, const char *method, const char *path, const char *body,
             api_done_fn done, void *ctx, struct api_call **handle)
{
        struct api_call *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->api = a;
        c->done = done;
        c->ctx = ctx;
        c->method = strdup(method);
        c->body = body ? strdup(body) : NULL;
        int rc = api_url_build(a->server->url, path, a->server->api_version, &c->url);
        if (rc == 0 && (!c->method || (body && !c->body)))
                rc = -ENOMEM;
        if (rc < 0) {
                call_free(c);
                return rc;
        }
        c->handle = handle;
        if (handle)
                *handle = c;
        if (api_has_token(a))
                send_call(c);
        else
                enqueue(c);
        return 0;
}

void api_cancel(struct api_call *c)
{
        if (!c)
                return;
        if (c->req) {
                /* http_cancel runs on_call_done with CANCELLED, which completes c. */
                http_cancel(c->req);
                return;
        }
        if (c->waiting) {
                TAILQ_REMOVE(&c->api->waiting, c, link);
                c->api->nwaiting--;
                c->waiting = 0;
        }
        struct http_response resp = {
            .transport_error = CA_HTTP_CANCELLED, .error = "cancelled", .body = ""};
        complete(c, &resp);
}

int api_url_build(const char *base, const char *path, const char *api_version, char **url)
{
        *url = NULL;
        /* "https://idm.example.com/" and "https://idm.example.com" mean the same server. */
        size_t base_len = strlen(base);
        while (base_len > 0 && base[base_len - 1] == '/')
                base_len--;
        size_t len = base_len + strlen(path) + strlen("?api-version=") + strlen(api_version);
        if (len > API_URL_MAX)
                return -E2BIG;
        if (asprintf(url, "%.*s%s%capi-version=%s", (int)base_len, base, path,
                     strchr(path, '?') ? '&' : '?', api_version) < 0) {
                *url = NULL;
                return -ENOMEM;
        }
        return 0;
}

int api_data_path(const char *connector_id, const char *continuation, unsigned page_size,
                  char **path, struct ca_error *err)
{
        *path = NULL;
        int more = continuation && *continuation;
        size_t token_len = more ? strlen(continuation) : 0;
        if (token_len > API_CONTINUATION_MAX)
                return ca_error_set(err, -E2BIG,
                                    "the server sent a ContinuationToken of %zu bytes, longer "
                                    "than the %d the agent carries",
                                    token_len, API_CONTINUATION_MAX);
        char *id = http_escape(connector_id);
        char *token = more ? http_escape(continuation) : NULL;
        char size[sizeof("&PageSize=") + 3 * sizeof(unsigned)] = "";
        if (page_size)
                snprintf(size, sizeof(size), "%cPageSize=%u", more ? '&' : '?', page_size);
        int n = -1;
        if (id && (token || !more))
                n = asprintf(path, "/api/Connectors/Provisioning/ProvisioningData/%s%s%s%s", id,
                             more ? "?ContinuationToken=" : "", more ? token : "", size);
        free(id);
        free(token);
        if (n < 0) {
                *path = NULL;
                return ca_error_set(err, -ENOMEM, "out of memory");
        }
        return 0;
}
