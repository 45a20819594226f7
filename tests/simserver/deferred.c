/* SPDX-License-Identifier: Apache-2.0 */
/* deferred: answers that outlive their request callback: a slow answer (the slow
 * fault), a dropped connection, an oversized body streamed in chunks, a body cut short
 * in transport. Each is tied to its connection; when the connection goes first
 * (deferred_conn_closed, called from http's close callback) it is forgotten without
 * touching freed memory, and a request the connection let go of is freed here. */
#include "simserver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

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

void deferred_conn_closed(struct sim *s, struct evhttp_connection *evcon)
{
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
        p->next = s->pending;
        s->pending = p;
        return p;
}

void deferred_route_later(struct sim *s, struct evhttp_request *req, enum sim_endpoint ep,
                          long delay_ms)
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

void deferred_drop(struct sim *s, struct evhttp_request *req)
{
        http_log_request(s, req, 0, 0);
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

void deferred_stream_oversized(struct sim *s, struct evhttp_request *req, long long nbytes)
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
        http_log_request(s, req, 200, (size_t)(p->remaining + fixed));
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

void deferred_reply_cut(struct sim *s, struct evhttp_request *req, const char *data, size_t len)
{
        char clen[32];
        struct sim_pending *p = pending_new(s, req, PENDING_CUT);
        struct evbuffer *buf = evbuffer_new();
        if (!p || !buf || len < 2) {
                evbuffer_free(buf);
                http_reply_raw(s, req, 500, NULL, NULL, 0);
                return;
        }
        http_log_request(s, req, 200, len);
        snprintf(clen, sizeof(clen), "%zu", len);
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
        evhttp_add_header(h, "Content-Length", clen);
        evhttp_send_reply_start(req, 200, "OK");
        evbuffer_add(buf, data, len / 2);
        evhttp_send_reply_chunk_with_cb(req, buf, cut_written, p);
        evbuffer_free(buf);
}

void deferred_free_all(struct sim *s)
{
        /* Their requests went with evhttp_free; only our side is left. */
        while (s->pending) {
                struct sim_pending *p = s->pending;
                s->pending = p->next;
                if (p->ev)
                        event_free(p->ev);
                free(p);
        }
}
