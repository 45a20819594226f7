/* api: authenticated calls to the server's API (protocol.md §1-2).
 *
 * Owns the OAuth 2.0 client-credentials token: fetched on first use, shared by every
 * call, renewed when 80 % of its lifetime has passed, and fetched once more when a call
 * is answered 401 (the call is then retried once with the new token). Calls waiting for
 * a token are queued, never sent without one. A token request that fails completes the
 * waiting calls with that failure (status 401 for refused credentials, 0 for transport
 * errors) so that their owners back off; the cause is logged once per change, never with
 * the secret. Every URL gets ?api-version=. Loop thread only. */
#ifndef CA_API_H
#define CA_API_H

#include "config.h"
#include "http.h"

struct api;
struct api_call;

typedef void (*api_done_fn)(void *ctx, const struct http_response *resp);

int api_new(struct http *http, const struct ca_config_server *server, struct api **out,
            struct ca_error *err);
/* Cancels queued calls (their callbacks run with CA_HTTP_CANCELLED); wipes the token. */
void api_free(struct api *a);

/* path starts with "/api/..." and may carry a query ("?x=y"); api-version is added.
 * body may be NULL. The callback runs exactly once, later. */
int api_call(struct api *a, const char *method, const char *path, const char *body,
             api_done_fn done, void *ctx, struct api_call **handle);
void api_cancel(struct api_call *call);

/* Parses an OAuth 2.0 token answer ({"access_token", "token_type": "Bearer",
 * "expires_in"}). On success *token is a new string (the caller wipes and frees it) and
 * *expires_in is in seconds, bounded to [1 s, 366 d]. -EBADMSG with err filled otherwise.
 * Exposed for the fuzz target. */
int api_token_parse(const char *body, size_t len, char **token, long *expires_in,
                    struct ca_error *err);

/* 1 when a token is held and still fresh. */
int api_has_token(const struct api *a);
/* Token requests made so far (for metrics and tests). */
unsigned long api_token_requests(const struct api *a);

#endif
