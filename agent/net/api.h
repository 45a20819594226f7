/* SPDX-License-Identifier: Apache-2.0 */
/* api: authenticated calls to the server's API (protocol.md §1-2).
 *
 * Owns the OAuth 2.0 client-credentials token: fetched on first use, shared by every
 * call, renewed when 80 % of its lifetime has passed, and fetched once more when a call
 * is answered 401 (the call is then retried once with the new token). Calls waiting for
 * a token are queued, never sent without one. A token request that fails completes the
 * waiting calls unsent (status 0, CA_HTTP_NO_TOKEN, an error naming the token endpoint
 * and the cause) so that their owners back off; the cause is logged once per change,
 * never with the secret. After a failed token request the next waits (1 s doubling to
 * 5 min, never less than half of it); calls queued meanwhile fail the same way, from
 * the loop. Every URL gets ?api-version=. Loop thread only. */
#ifndef CA_API_H
#define CA_API_H

#include "config.h"
#include "http.h"

struct api;
struct api_call;

typedef void (*api_done_fn)(void *ctx, const struct http_response *resp);

int api_new(struct event_base *base, struct http *http, const struct ca_config_server *server,
            struct api **out, struct ca_error *err);
/* Cancels queued calls (their callbacks run with CA_HTTP_CANCELLED); wipes the token. */
void api_free(struct api *a);

/* path starts with "/api/..." and may carry a query ("?x=y"); api-version is added.
 * body may be NULL. The callback runs exactly once, later. -E2BIG when the URL would be
 * longer than API_URL_MAX, -ENOMEM; then the callback never runs. */
int api_call(struct api *a, const char *method, const char *path, const char *body,
             api_done_fn done, void *ctx, struct api_call **handle);
void api_cancel(struct api_call *call);

/* The form body of the token request (protocol.md §2): grant_type, client_id,
 * client_secret and scope, every reserved character escaped except the client id's
 * '@', which goes as is. malloc'd in *body (*len bytes): it holds the secret, so the
 * caller wipes it before freeing it. -ENOMEM. */
int api_token_form(const struct ca_config_server *server, char **body, size_t *len);

/* Parses an OAuth 2.0 token answer ({"access_token", "token_type": "Bearer",
 * "expires_in"}). On success *token is a new string (the caller wipes and frees it) and
 * *expires_in is in seconds, bounded to [1 s, 366 d]. -EBADMSG with err filled otherwise.
 * Exposed for the fuzz target. */
int api_token_parse(const char *body, size_t len, char **token, long *expires_in,
                    struct ca_error *err);

/* Longest ContinuationToken carried to the next ProvisioningData request, in bytes. The
 * server decides a token's length, so the agent takes any token up to this (far past
 * any real one) and refuses a longer one whole: a truncated token would page wrong. */
#define API_CONTINUATION_MAX 65536
/* Longest request URL: the base, a path and escaped query values (an escaped byte takes
 * at most three), with room for a continuation token of API_CONTINUATION_MAX bytes. */
#define API_URL_MAX (3 * API_CONTINUATION_MAX + 16384)

/* The path and query of a ProvisioningData request (protocol.md §3) for connector_id,
 * with continuation (NULL or "" for the first page) and page_size (0: the server's
 * choice), every value escaped. *path is malloc'd, the caller frees it. -E2BIG with err
 * filled when continuation is longer than API_CONTINUATION_MAX; -ENOMEM. */
int api_data_path(const char *connector_id, const char *continuation, unsigned page_size,
                  char **path, struct ca_error *err);

/* The URL of a call: base (the server's url, a trailing '/' or not), path (may carry a
 * query) and ?api-version= or &api-version=. *url is malloc'd, the caller frees it.
 * -E2BIG when it would be longer than API_URL_MAX; -ENOMEM. */
int api_url_build(const char *base, const char *path, const char *api_version, char **url);

/* 1 when a token is held and still fresh. */
int api_has_token(const struct api *a);
/* Token requests made so far (for metrics and tests). */
unsigned long api_token_requests(const struct api *a);

#endif
