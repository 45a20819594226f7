/* SPDX-License-Identifier: Apache-2.0 */
/* http: every HTTP exchange of the agent, on libcurl's multi interface driven by the
 * agent's libevent loop (the hiperfifo shape: libcurl says which sockets to watch and
 * when to wake up; nothing polls, nothing blocks).
 *
 * Owns the multi handle, one easy handle per request, and the response buffers. A
 * request is an object with a completion callback that runs on the loop thread exactly
 * once (also when cancelled by http_free: with status 0 and CA_HTTP_CANCELLED), and its
 * caller never sees a socket. Every transfer has connect and total timeouts, a
 * low-speed limit against slow answers, HTTPS only (plain HTTP only where the
 * configuration allowed it: loopback), TLS verification always on, and a body cap: an
 * answer larger than the cap fails the request without growing memory past it. */
#ifndef CA_HTTP_H
#define CA_HTTP_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define CA_HTTP_CANCELLED (-1)
/* Never sent: no access token could be had (api.c); error says why, naming the token
 * endpoint. */
#define CA_HTTP_NO_TOKEN (-2)

struct http_response {
        long status;         /* HTTP status, 0 when no answer */
        int transport_error; /* 0, a CURLcode, CA_HTTP_CANCELLED or CA_HTTP_NO_TOKEN */
        const char *error;   /* why, when status is 0 (no secret in it) */
        const char *body;    /* NUL-terminated, borrowed for the callback's duration */
        size_t body_len;
        const char *retry_after; /* Retry-After header or NULL */
        int64_t retry_after_s;   /* libcurl's reading of it (CURLINFO_RETRY_AFTER) */
        uint64_t elapsed_ms;
};

typedef void (*http_done_fn)(void *ctx, const struct http_response *resp);

struct http_request_spec {
        const char *method; /* GET, PUT, POST */
        const char *url;
        const char *body; /* copied; NULL for none */
        size_t body_len;
        const char *content_type; /* e.g. application/json */
        const char *bearer;       /* access token or NULL; never logged */
        uint64_t timeout_ms;      /* 0: the configured request_timeout */
        int sensitive;            /* the body holds a secret: wiped when freed */
};

struct http;
struct http_request;

/* server supplies TLS settings, timeouts and the body cap (borrowed; must outlive http). */
int http_new(struct event_base *base, const struct ca_config_server *server, const char *user_agent,
             struct http **out, struct ca_error *err);
/* Cancels what is in flight (each callback runs with CA_HTTP_CANCELLED), then frees. */
void http_free(struct http *h);

/* Starts a request; done runs later (never from inside http_send). *handle, when not
 * NULL, can be passed to http_cancel until done has run. */
int http_send(struct http *h, const struct http_request_spec *spec, http_done_fn done, void *ctx,
              struct http_request **handle);
/* Cancels: done runs once, synchronously, with CA_HTTP_CANCELLED. */
void http_cancel(struct http_request *req);
size_t http_in_flight(const struct http *h);
/* Requests that libcurl sent again by itself after a reused connection dropped before
 * the answer (each one is also logged at info, with its endpoint). */
unsigned long http_resent(const struct http *h);

/* The options every request to the server shares, for this module and for blocking
 * clients (doctor): protocols, no redirects, timeouts, TLS verification and the
 * configured CA, client certificate and public-key pin. errbuf is CURL_ERROR_SIZE
 * bytes and must outlive the transfer. */
int http_server_options(void *curl_easy, const struct ca_config_server *server,
                        const char *user_agent, char *errbuf);

/* Escapes text for a URL path segment or query value; malloc'd, caller frees. */
char *http_escape(const char *text);
/* The same, except that the characters in keep go as they are. */
char *http_escape_keep(const char *text, const char *keep);

#endif
