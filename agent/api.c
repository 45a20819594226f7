#include "api.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "timeutil.h"

#define API_URL_MAX             4096
#define API_TOKEN_MAX           16384
#define API_TOKEN_RENEW_PERCENT 80
#define API_DEFAULT_EXPIRES_S   3600
#define API_MAX_EXPIRES_S       (366L * 24 * 3600)

struct api_call {
        struct api *api;
        char *method;
        char *url;
        char *body;
        api_done_fn done;
        void *ctx;
        struct api_call **handle;
        int retried;              /* already retried after a 401 */
        char *sent_token;         /* the token this call went out with, to invalidate */
        struct http_request *req; /* while sent */
        struct api_call *next;    /* in the waiting list, while waiting for a token */
};

struct api {
        struct http *http;
        const struct ca_config_server *server;
        char *token;
        uint64_t token_renew_at_ms;
        struct http_request *token_req;
        struct api_call *waiting;
        unsigned long token_requests;
        char last_error[256]; /* to log a token failure once per change */
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

int api_new(struct http *http, const struct ca_config_server *server, struct api **out,
            struct ca_error *err)
{
        struct api *a = calloc(1, sizeof(*a));
        if (!a)
                return ca_error_set(err, -ENOMEM, "out of memory");
        a->http = http;
        a->server = server;
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

static void fail_waiting(struct api *a, const struct http_response *resp)
{
        struct api_call *list = a->waiting;
        a->waiting = NULL;
        while (list) {
                struct api_call *next = list->next;
                complete(list, resp);
                list = next;
        }
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
        struct api_call **tail = &a->waiting;
        while (*tail)
                tail = &(*tail)->next;
        c->next = NULL;
        *tail = c;
        if (!a->token_req)
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

static void token_failed(struct api *a, long status, const char *why)
{
        if (strcmp(a->last_error, why) != 0) {
                log_error("%s", why);
                snprintf(a->last_error, sizeof(a->last_error), "%s", why);
        }
        struct http_response resp = {.status = status == 400 ? 401 : status,
                                     .transport_error = status ? 0 : -EIO,
                                     .error = a->last_error,
                                     .body = ""};
        fail_waiting(a, &resp);
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
                token_failed(a, 0, why);
                return;
        }
        if (resp->status == 400 || resp->status == 401) {
                snprintf(why, sizeof(why),
                         "the server refused the agent's credentials (HTTP %ld from %s): check "
                         "client_id and the client secret",
                         resp->status, a->server->token_url);
                token_failed(a, resp->status, why);
                return;
        }
        if (resp->status != 200) {
                snprintf(why, sizeof(why), "token request to %s answered HTTP %ld",
                         a->server->token_url, resp->status);
                token_failed(a, resp->status, why);
                return;
        }
        char *token = NULL;
        long expires = 0;
        struct ca_error perr = {0};
        if (api_token_parse(resp->body, resp->body_len, &token, &expires, &perr) < 0) {
                snprintf(why, sizeof(why), "token answer from %s rejected: %s",
                         a->server->token_url, perr.msg);
                token_failed(a, 0, why);
                return;
        }
        token_wipe(a);
        a->token = token;
        a->token_renew_at_ms =
            time_mono_ms() + (uint64_t)expires * 1000u * API_TOKEN_RENEW_PERCENT / 100u;
        if (a->last_error[0])
                log_notice("token obtained from %s", a->server->token_url);
        a->last_error[0] = '\0';
        struct api_call *list = a->waiting;
        a->waiting = NULL;
        while (list) {
                struct api_call *next = list->next;
                send_call(list);
                list = next;
        }
}

int api_token_parse(const char *body, size_t len, char **token, long *expires_in,
                    struct ca_error *err)
{
        json_error_t jerr;
        json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(root)) {
                json_decref(root);
                return ca_error_set(err, -EBADMSG, "not a JSON object");
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

static void request_token(struct api *a)
{
        const struct ca_config_server *s = a->server;
        char *id = http_escape(s->client_id);
        char *secret = http_escape(s->client_secret ? s->client_secret : "");
        char *scope = http_escape(s->scope);
        char *body = NULL;
        int n = -1;
        if (id && secret && scope)
                n = asprintf(&body,
                             "grant_type=client_credentials&client_id=%s&client_secret=%s&scope=%s",
                             id, secret, scope);
        free(id);
        if (secret) {
                explicit_bzero(secret, strlen(secret));
                free(secret);
        }
        free(scope);
        if (n < 0) {
                token_failed(a, 0, "out of memory building the token request");
                return;
        }
        struct http_request_spec spec = {
            .method = "POST",
            .url = s->token_url,
            .body = body,
            .body_len = (size_t)n,
            .content_type = "application/x-www-form-urlencoded",
            .sensitive = 1,
        };
        a->token_requests++;
        int rc = http_send(a->http, &spec, on_token_done, a, &a->token_req);
        explicit_bzero(body, (size_t)n);
        free(body);
        if (rc < 0)
                token_failed(a, 0, "cannot start the token request");
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
        /* "https://idm.example.com/" and "https://idm.example.com" mean the same server. */
        int base_len = (int)strlen(a->server->url);
        while (base_len > 0 && a->server->url[base_len - 1] == '/')
                base_len--;
        int n = asprintf(&c->url, "%.*s%s%capi-version=%s", base_len, a->server->url, path,
                         strchr(path, '?') ? '&' : '?', a->server->api_version);
        if (n < 0)
                c->url = NULL;
        if (!c->method || (body && !c->body) || !c->url || n >= API_URL_MAX) {
                call_free(c);
                return -ENOMEM;
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
        struct api_call **p = &c->api->waiting;
        while (*p && *p != c)
                p = &(*p)->next;
        if (*p)
                *p = c->next;
        struct http_response resp = {
            .transport_error = CA_HTTP_CANCELLED, .error = "cancelled", .body = ""};
        complete(c, &resp);
}
