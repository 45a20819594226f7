/* SPDX-License-Identifier: Apache-2.0 */
#include "http.h"

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <strings.h>

#include "log.h"
#include "timeutil.h"
#include "tls_name.h"

#define HTTP_HEADER_VALUE_MAX  256
#define HTTP_LOW_SPEED_SECONDS 30L

struct http {
        struct event_base *base;
        CURLM *multi;
        struct event *timer;
        const struct ca_config_server *server;
        char *user_agent;
        LIST_HEAD(, http_request) requests; /* doubly linked, for cancel-all */
        size_t in_flight;
        unsigned long resent; /* requests libcurl sent again by itself */
};

struct http_request {
        struct http *http;
        CURL *easy;
        struct curl_slist *headers;
        char *body_out;
        char *auth_header;
        int sensitive;
        http_done_fn done;
        void *ctx;
        struct http_request **handle;
        char *buf;
        size_t len, cap, max;
        int oversized;
        char retry_after[HTTP_HEADER_VALUE_MAX];
        char errbuf[CURL_ERROR_SIZE];
        char error[CURL_ERROR_SIZE + 256]; /* errbuf, plus the issuer of a refused certificate */
        char tls_issuer[128];              /* set by the verify callback when it failed */
        uint64_t started_ms;
        unsigned sends;                /* times libcurl sent the request (CURLOPT_PREREQFUNCTION) */
        char what[160];                /* "GET https://host/path", no query, for the log */
        LIST_ENTRY(http_request) link; /* in h->requests once started */
        int linked;
};

/* One per socket libcurl wants watched. */
struct http_socket {
        struct http *http;
        struct event *ev;
};

static void tls_forget(struct http_request *r);

static void request_free(struct http_request *r)
{
        if (!r)
                return;
        struct http *h = r->http;
        if (r->linked)
                LIST_REMOVE(r, link);
        if (r->easy) {
                tls_forget(r);
                curl_multi_remove_handle(h->multi, r->easy);
                curl_easy_cleanup(r->easy);
                h->in_flight--;
        }
        curl_slist_free_all(r->headers);
        if (r->body_out && r->sensitive)
                explicit_bzero(r->body_out, strlen(r->body_out));
        free(r->body_out);
        if (r->auth_header) {
                explicit_bzero(r->auth_header, strlen(r->auth_header));
                free(r->auth_header);
        }
        free(r->buf);
        free(r);
}

/* libcurl sends a request again, on a new connection, when a reused one turns out to be
 * dead before any answer came (the server closed it meanwhile). That is right for the
 * protocol (every request is idempotent) but an operator must be able to see it. */
static void note_resends(struct http_request *r)
{
        if (r->sends <= 1)
                return;
        unsigned again = r->sends - 1;
        r->http->resent += again;
        log_info("%s: the connection dropped before an answer; libcurl sent the request again "
                 "(%u time%s)",
                 r->what, again, again == 1 ? "" : "s");
}

/* --- naming the issuer of a certificate the agent refused ---
 *
 * libcurl says "unable to get local issuer certificate" and no more. A verify callback,
 * hooked onto each connection's SSL_CTX, notes the issuer of the certificate that failed
 * and changes nothing in the verdict. */

static int ctx_index = -1;
static pthread_once_t ctx_index_once = PTHREAD_ONCE_INIT;

static void ctx_index_init(void)
{
        ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* The certificate's issuer, as people say it. */
static void issuer_text(X509 *cert, char *buf, size_t len)
{
        tls_name_text(X509_get_issuer_name(cert), buf, len);
}

static int verify_cb(int ok, X509_STORE_CTX *store)
{
        if (ok)
                return ok;
        SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
        struct http_request *r = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index) : NULL;
        X509 *cert = X509_STORE_CTX_get_current_cert(store);
        if (r && cert && !r->tls_issuer[0])
                issuer_text(cert, r->tls_issuer, sizeof(r->tls_issuer));
        return ok;
}

static CURLcode ssl_ctx_cb(CURL *easy, void *sslctx, void *arg)
{
        (void)easy;
        pthread_once(&ctx_index_once, ctx_index_init);
        if (ctx_index < 0 || !SSL_CTX_set_ex_data(sslctx, ctx_index, arg))
                return CURLE_OK; /* only the name is lost, never the verification */
        SSL_CTX_set_verify(sslctx, SSL_CTX_get_verify_mode(sslctx), verify_cb);
        return CURLE_OK;
}

/* The connection may outlive the request (libcurl keeps it for the next one): its
 * SSL_CTX must not point at a freed request should it ever verify again. */
static void tls_forget(struct http_request *r)
{
        struct curl_tlssessioninfo *info = NULL;
        if (ctx_index < 0 || curl_easy_getinfo(r->easy, CURLINFO_TLS_SSL_PTR, &info) != CURLE_OK ||
            !info || info->backend != CURLSSLBACKEND_OPENSSL || !info->internals)
                return;
        SSL_CTX_set_ex_data(SSL_get_SSL_CTX(info->internals), ctx_index, NULL);
}

static const char *request_error(struct http_request *r, CURLcode code)
{
        if (code != CURLE_PEER_FAILED_VERIFICATION || !r->tls_issuer[0])
                return r->errbuf;
        const struct ca_config_server *s = r->http->server;
        /* Short: callers quote it inside their own bounded lines. */
        snprintf(r->error, sizeof(r->error), "%s (the certificate's issuer, %s, is not in %s)",
                 r->errbuf, r->tls_issuer, s->ca_file ? "ca_file" : "the system's CA store");
        return r->error;
}

static void request_complete(struct http_request *r, CURLcode code)
{
        struct http_response resp = {0};
        note_resends(r);
        if (code == CURLE_OK)
                curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &resp.status);
        resp.transport_error = (int)code;
        if (code != CURLE_OK) {
                if (r->oversized)
                        snprintf(r->errbuf, sizeof(r->errbuf),
                                 "answer larger than the %zu-byte limit (max_body)", r->max);
                else if (!r->errbuf[0])
                        snprintf(r->errbuf, sizeof(r->errbuf), "%s", curl_easy_strerror(code));
                resp.error = request_error(r, code);
        }
        resp.body = r->buf ? r->buf : "";
        resp.body_len = r->len;
        resp.retry_after = r->retry_after[0] ? r->retry_after : NULL;
        curl_off_t retry_after_s = 0;
        if (resp.retry_after &&
            curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &retry_after_s) == CURLE_OK)
                resp.retry_after_s = (int64_t)retry_after_s;
        resp.elapsed_ms = time_mono_ms() - r->started_ms;
        if (r->handle)
                *r->handle = NULL;
        /* The callback may start new requests; this one stays valid until it returns. */
        r->done(r->ctx, &resp);
        request_free(r);
}

static void check_multi_info(struct http *h)
{
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(h->multi, &left))) {
                if (msg->msg != CURLMSG_DONE)
                        continue;
                struct http_request *r = NULL;
                CURLcode code = msg->data.result;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
                /* msg is invalid once the handle is removed: everything is copied above. */
                request_complete(r, code);
        }
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
        struct http *h = arg;
        int action =
            ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
        int running;
        curl_multi_socket_action(h->multi, fd, action, &running);
        check_multi_info(h);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
        struct http *h = arg;
        int running;
        curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        check_multi_info(h);
}

/* CURLMOPT_TIMERFUNCTION: -1 deletes the timer, anything else (0 too) re-arms it. Never
 * call libcurl from here. */
static int multi_timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
        struct http *h = arg;
        if (timeout_ms < 0) {
                evtimer_del(h->timer);
                return 0;
        }
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        evtimer_add(h->timer, &tv);
        return 0;
}

/* CURLMOPT_SOCKETFUNCTION: one event per socket, changed or removed as libcurl says. */
static int multi_socket_cb(CURL *easy, curl_socket_t s, int what, void *arg, void *sockp)
{
        struct http *h = arg;
        struct http_socket *sock = sockp;
        if (what == CURL_POLL_REMOVE) {
                if (sock) {
                        event_free(sock->ev);
                        free(sock);
                        curl_multi_assign(h->multi, s, NULL);
                }
                return 0;
        }
        short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                     ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
        if (!sock) {
                sock = calloc(1, sizeof(*sock));
                if (!sock)
                        return -1;
                sock->http = h;
                curl_multi_assign(h->multi, s, sock);
        } else {
                event_free(sock->ev);
        }
        sock->ev = event_new(h->base, s, kind, on_socket_event, h);
        if (!sock->ev || event_add(sock->ev, NULL) < 0)
                return -1;
        return 0;
}

/* Runs each time libcurl is about to send the request, on the connection it chose. */
static int prereq_cb(void *arg, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                     int conn_local_port)
{
        struct http_request *r = arg;
        r->sends++;
        return CURL_PREREQFUNC_OK;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
        struct http_request *r = arg;
        size_t n = size * nmemb;
        if (n > r->max - r->len) {
                r->oversized = 1;
                return 0; /* aborts the transfer: never buffer past the cap */
        }
        if (r->len + n + 1 > r->cap) {
                size_t cap = r->cap ? r->cap : 4096;
                while (cap < r->len + n + 1)
                        cap *= 2;
                if (cap > r->max + 1)
                        cap = r->max + 1;
                char *buf = realloc(r->buf, cap);
                if (!buf)
                        return 0;
                r->buf = buf;
                r->cap = cap;
        }
        memcpy(r->buf + r->len, data, n);
        r->len += n;
        r->buf[r->len] = '\0';
        return n;
}

static void copy_header(const char *line, size_t len, const char *name, char *out, size_t outlen)
{
        size_t nlen = strlen(name);
        if (len <= nlen + 1 || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
                return;
        const char *v = line + nlen + 1;
        const char *end = line + len;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
                end--;
        size_t n = (size_t)(end - v);
        if (n >= outlen)
                n = outlen - 1;
        memcpy(out, v, n);
        out[n] = '\0';
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
        struct http_request *r = arg;
        size_t n = size * nmemb;
        copy_header(data, n, "Retry-After", r->retry_after, sizeof(r->retry_after));
        return n;
}

int http_new(struct event_base *base, const struct ca_config_server *server, const char *user_agent,
             struct http **out, struct ca_error *err)
{
        struct http *h = calloc(1, sizeof(*h));
        if (!h)
                return ca_error_set(err, -ENOMEM, "out of memory");
        h->base = base;
        h->server = server;
        h->user_agent = strdup(user_agent);
        h->multi = curl_multi_init();
        h->timer = evtimer_new(base, on_timer, h);
        if (!h->user_agent || !h->multi || !h->timer) {
                http_free(h);
                return ca_error_set(err, -ENOMEM, "cannot set up libcurl");
        }
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, multi_socket_cb);
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
        curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
        curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
        curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
        *out = h;
        return 0;
}

void http_free(struct http *h)
{
        if (!h)
                return;
        /* Easy handles first, then the multi handle (which may still call the socket
         * callback), then the timer: hiperfifo gets this order wrong. */
        while (!LIST_EMPTY(&h->requests))
                http_cancel(LIST_FIRST(&h->requests));
        if (h->multi)
                curl_multi_cleanup(h->multi);
        if (h->timer)
                event_free(h->timer);
        free(h->user_agent);
        free(h);
}

int http_server_options(CURL *e, const struct ca_config_server *s, const char *user_agent,
                        char *errbuf)
{
        int ok = 1;
        ok &= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http") == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
        ok &=
            curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)s->connect_timeout_ms) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)s->request_timeout_ms) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_USERAGENT, user_agent) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") == CURLE_OK;
        if (s->ca_file)
                ok &= curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file) == CURLE_OK;
        if (s->client_cert)
                ok &= curl_easy_setopt(e, CURLOPT_SSLCERT, s->client_cert) == CURLE_OK;
        if (s->client_key)
                ok &= curl_easy_setopt(e, CURLOPT_SSLKEY, s->client_key) == CURLE_OK;
        if (s->pinned_pubkey)
                ok &= curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, s->pinned_pubkey) == CURLE_OK;
        return ok ? 0 : -EINVAL;
}

static int setup_easy(struct http *h, struct http_request *r, const struct http_request_spec *spec)
{
        CURL *e = r->easy;
        int ok = http_server_options(e, h->server, h->user_agent, r->errbuf) == 0;
        ok &= curl_easy_setopt(e, CURLOPT_URL, spec->url) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_PRIVATE, r) == CURLE_OK;
        if (spec->timeout_ms)
                ok &= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)spec->timeout_ms) == CURLE_OK;
        /* A server that trickles its answer is as good as a hung one. */
        ok &= curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, HTTP_LOW_SPEED_SECONDS) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_WRITEDATA, r) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_HEADERDATA, r) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, prereq_cb) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_PREREQDATA, r) == CURLE_OK;
        /* Not fatal: a libcurl without it only cannot name a refused certificate's issuer. */
        if (curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb) == CURLE_OK)
                curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, r);
        /* The query may carry a long continuation token: the path names the endpoint. */
        size_t path_len = strcspn(spec->url, "?");
        snprintf(r->what, sizeof(r->what), "%s %.*s", spec->method,
                 (int)(path_len > 120 ? 120 : path_len), spec->url);

        r->headers = curl_slist_append(r->headers, "Accept: application/json");
        if (spec->content_type) {
                char ct[128];
                snprintf(ct, sizeof(ct), "Content-Type: %s", spec->content_type);
                r->headers = curl_slist_append(r->headers, ct);
        }
        /* curl adds "Expect: 100-continue" to large PUTs: one round trip for nothing. */
        r->headers = curl_slist_append(r->headers, "Expect:");
        if (spec->bearer) {
                size_t n = strlen(spec->bearer) + sizeof("Authorization: Bearer ");
                r->auth_header = malloc(n);
                if (!r->auth_header)
                        return -ENOMEM;
                snprintf(r->auth_header, n, "Authorization: Bearer %s", spec->bearer);
                r->headers = curl_slist_append(r->headers, r->auth_header);
        }
        if (!r->headers)
                return -ENOMEM;
        ok &= curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers) == CURLE_OK;

        if (strcmp(spec->method, "GET") != 0) {
                ok &= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, spec->method) == CURLE_OK;
                r->body_out = malloc(spec->body_len + 1);
                if (!r->body_out)
                        return -ENOMEM;
                if (spec->body_len)
                        memcpy(r->body_out, spec->body, spec->body_len);
                r->body_out[spec->body_len] = '\0';
                ok &= curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body_out) == CURLE_OK;
                ok &= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                                       (curl_off_t)spec->body_len) == CURLE_OK;
        }
        return ok ? 0 : -EINVAL;
}

int http_send(struct http *h, const struct http_request_spec *spec, http_done_fn done, void *ctx,
              struct http_request **handle)
{
        struct http_request *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->http = h;
        r->done = done;
        r->ctx = ctx;
        r->sensitive = spec->sensitive;
        r->max = h->server->max_body_bytes;
        r->started_ms = time_mono_ms();
        r->easy = curl_easy_init();
        if (!r->easy) {
                free(r);
                return -ENOMEM;
        }
        h->in_flight++;
        LIST_INSERT_HEAD(&h->requests, r, link);
        r->linked = 1;
        int rc = setup_easy(h, r, spec);
        if (rc == 0 && curl_multi_add_handle(h->multi, r->easy) != CURLM_OK)
                rc = -EIO;
        if (rc < 0) {
                request_free(r);
                return rc;
        }
        r->handle = handle;
        if (handle)
                *handle = r;
        return 0;
}

void http_cancel(struct http_request *r)
{
        if (!r)
                return;
        struct http_response resp = {0};
        resp.transport_error = CA_HTTP_CANCELLED;
        resp.error = "cancelled";
        resp.body = "";
        if (r->handle)
                *r->handle = NULL;
        r->done(r->ctx, &resp);
        request_free(r);
}

size_t http_in_flight(const struct http *h)
{
        return h->in_flight;
}

unsigned long http_resent(const struct http *h)
{
        return h->resent;
}

char *http_escape(const char *text)
{
        return http_escape_keep(text, "");
}

static int hex_value(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

char *http_escape_keep(const char *text, const char *keep)
{
        char *e = curl_easy_escape(NULL, text, 0);
        if (!e)
                return NULL;
        /* libcurl escapes every byte but the unreserved ones, each as "%XX" (a '%' too):
         * turning the kept ones back is a walk over those triplets, never a guess. */
        size_t n = strlen(e);
        char *out = malloc(n + 1);
        size_t o = 0;
        for (size_t i = 0; out && i < n; i++) {
                if (e[i] == '%' && i + 2 < n && *keep) {
                        int hi = hex_value(e[i + 1]), lo = hex_value(e[i + 2]);
                        char c = (char)(hi * 16 + lo);
                        if (hi >= 0 && lo >= 0 && c && strchr(keep, c)) {
                                out[o++] = c;
                                i += 2;
                                continue;
                        }
                }
                out[o++] = e[i];
        }
        if (out)
                out[o] = '\0';
        explicit_bzero(e, n); /* it may be a secret */
        curl_free(e);
        return out;
}
