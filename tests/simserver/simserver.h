/* SPDX-License-Identifier: Apache-2.0 */
/* simserver: the simulated identity server's shared state and the functions its files
 * offer one another.
 *
 * One thread, one libevent loop: every function here runs on the loop and nothing is
 * locked. The server owns every order, result, heartbeat and token it holds; all of it
 * is bounded by the SIM_MAX_* constants and freed by sim_free. Protocol violations by
 * the client are answered 400 with a JSON error and recorded (store_violation) so that
 * tests can assert that the agent never commits one. */
#ifndef CA_SIMSERVER_H
#define CA_SIMSERVER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "error.h"

#define SIM_MAX_CONNECTIONS        256
#define SIM_MAX_BODY_DEFAULT       (16L * 1024 * 1024)
#define SIM_MAX_ORDERS             2000000
#define SIM_MAX_STORED_RESULTS     1000000
#define SIM_MAX_HEARTBEATS         100000
#define SIM_MAX_VIOLATIONS         10000
#define SIM_MAX_REQUESTS_RING      10000
#define SIM_MAX_TOKENS             10000
#define SIM_MAX_FAULTS             1000
#define SIM_MAX_CONNECTORS         256
#define SIM_MAX_AGENTS             1000
#define SIM_MAX_RESULTS_PER_PUT    100000
#define SIM_MAX_PAGE_SIZE          100000
#define SIM_MAX_DELAY_MS           600000
#define SIM_MAX_OVERSIZED          (4LL * 1024 * 1024 * 1024)
#define SIM_CONT_TOKENS_KEPT       64
#define SIM_MAX_CONTINUATION_BYTES (1024 * 1024)
#define SIM_IDLE_TIMEOUT_S         60

enum sim_endpoint {
        SIM_EP_TOKEN,
        SIM_EP_DATA,
        SIM_EP_RESULTS,
        SIM_EP_HEARTBEAT,
        SIM_EP_ANY,
        SIM_EP_CONTROL,
        SIM_EP_UNKNOWN,
};

enum sim_order_state {
        SIM_ORDER_PENDING,
        SIM_ORDER_LEASED,
        SIM_ORDER_ANSWERED,
};

struct sim_order {
        size_t connector;      /* index into sim.connectors */
        char *key;             /* Id, or "assignment|changetype" */
        char *id;              /* NULL when the order carries no Id */
        char *assignment_id;   /* "" when absent or not a string */
        char *change_type;     /* "" when absent or not a string */
        int change_type_valid; /* Added, Modified or Deleted */
        int synthetic;         /* sent by a fault: never delivered again */
        json_t *body;
        unsigned delivered;
        unsigned results;
        int leased;
        uint64_t lease_deadline_ms;
        int answered;
        int redeliver;
        json_t *last_result;
        int claimed; /* scratch: taken by an earlier entry of the PUT being checked */
        /* Benchmark timings, CLOCK_MONOTONIC in microseconds (0 = not yet): when the
         * order was added, first put on a page, and its first result accepted. */
        uint64_t available_us, first_delivered_us, first_result_us;
};

struct sim_connector {
        char *id;
        size_t *orders; /* indexes into sim.orders, in arrival order */
        size_t norders, cap;
        size_t low_water;      /* every order before it is answered and not to redeliver */
        json_t *index;         /* "id:<Id>" or "ak:<assignment>|<change>" -> [order indexes] */
        unsigned long gen_seq; /* generated orders so far (for numbering) */
        unsigned long gen_users;
        unsigned long page_seq;
        char *cont_tokens[SIM_CONT_TOKENS_KEPT];
        size_t cont_next;
};

struct sim_fault {
        enum sim_endpoint endpoint;
        char kind[32];
        long count;
        json_t *params; /* the whole request object */
};

struct sim_token {
        char value[65];
        uint64_t expires_ms;
};

struct sim_request_rec {
        char method[8];
        char *path;
        char *query;
        int status;
        int64_t at_ms;
};

struct sim_config {
        const char *listen_host;
        int listen_port;
        const char *port_file;
        const char *client_id;
        char *client_secret;
        const char *scope;
        const char *api_version;
        long token_ttl;
        long page_size;
        long lease_s;
        const char *latest_version;
        long heartbeat_interval_s; /* silent for 3 of these: DISCONNECTED */
        const char *tls_cert, *tls_key, *client_ca;
        long max_body;
        long continuation_bytes; /* 0: short tokens; else each is exactly this long */
        /* Deliver no order of an assignment while an earlier one of it is out on a lease
         * unanswered: a page lost in flight then holds back the rest of its assignments,
         * as a server that serialises delivery per assignment does. */
        int assignment_order;
        int quiet;
};

struct sim_pending;

struct sim {
        struct sim_config cfg;
        struct event_base *base;
        struct evhttp *http;
        SSL_CTX *ssl_ctx;
        struct event *sig_term, *sig_int;
        int bound_port;
        /* Connections that sent a request; one more is refused with 503. Connections
         * that never send one are closed by evhttp's idle timeout. */
        struct evhttp_connection *conns[SIM_MAX_CONNECTIONS];
        size_t nconns;
        unsigned long conns_refused;

        struct sim_connector *connectors[SIM_MAX_CONNECTORS];
        size_t nconnectors;
        struct sim_order **orders;
        size_t norders, orders_cap;

        json_t *results;    /* array of stored results (bounded) */
        json_t *heartbeats; /* array (bounded) */
        /* identifier -> {status, version, hostname, heartbeats, last_seen_ms, last_seen_at} */
        json_t *agents;
        json_t *violations; /* array of strings (bounded) */
        /* The last ProvisioningResults body answered 400: sending it again is a violation
         * (a refused body does not become right by repetition). */
        char *results_refused_body;
        unsigned long received, duplicates, conflicting, results_dropped, violations_total;
        unsigned long token_requests, requests;
        /* Benchmark timings (CLOCK_MONOTONIC us, 0 = not yet): the first ProvisioningData
         * GET that delivered an order, and the last accepted result. */
        uint64_t first_page_us, last_result_us;

        struct sim_request_rec ring[SIM_MAX_REQUESTS_RING];
        size_t ring_next, ring_count;

        struct sim_token *tokens;
        size_t ntokens;

        struct sim_fault faults[SIM_MAX_FAULTS];
        size_t nfaults;

        struct sim_pending *pending; /* delayed or streamed answers */
};

/* main.c */
void sim_free(struct sim *s);

/* http.c: listener, connection cap, dispatch, answers, the per-request log line. */
int http_setup(struct sim *s, struct ca_error *err);
void http_teardown(struct sim *s);
/* Answers body (stolen, may be NULL for no body) with status and logs it. */
void http_reply_json(struct sim *s, struct evhttp_request *req, int status, json_t *body);
void http_reply_raw(struct sim *s, struct evhttp_request *req, int status, const char *content_type,
                    const char *data, size_t len);
/* 400-class refusal; when violation, records it; fmt explains it. */
void http_refuse(struct sim *s, struct evhttp_request *req, int status, const char *error,
                 int violation, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The request body as a NUL-terminated copy (caller frees), or NULL when empty. */
char *http_body_dup(struct evhttp_request *req, size_t *len);
/* Runs the route for endpoint now (also used by the slow fault after its delay). */
void http_route(struct sim *s, struct evhttp_request *req, enum sim_endpoint ep);
/* The log line and the request ring entry; status 0 means dropped. */
void http_log_request(struct sim *s, struct evhttp_request *req, int status, size_t bytes);
const char *http_method_name(struct evhttp_request *req);

/* checks.c: strict request checks. */
/* The value of name in an "a=b&c=d" string (form or query), decoded; caller frees; NULL
 * when absent. *dup_out (may be NULL) is set when the name appears more than once. */
char *checks_form_get(const char *form, const char *name, int *dup_out);
/* Checks api-version, the allowed query names, Authorization, Accept, User-Agent and
 * (for a body) Content-Type. Answers the request and returns -1 on a refusal. */
int checks_api_request(struct sim *s, struct evhttp_request *req, int has_body);
/* YYYY-MM-DDTHH:MM:SS[.fraction]Z */
int checks_iso8601_utc(const char *v);

/* deferred.c: answers that outlive their callback, tied to their connection. */
/* Routes req after delay_ms unless the connection goes first. */
void deferred_route_later(struct sim *s, struct evhttp_request *req, enum sim_endpoint ep,
                          long delay_ms);
/* Closes req's connection without an answer. */
void deferred_drop(struct sim *s, struct evhttp_request *req);
/* Streams a 200 JSON body of exactly nbytes in chunks. */
void deferred_stream_oversized(struct sim *s, struct evhttp_request *req, long long nbytes);
/* Announces len bytes (Content-Length), sends the first half, then hangs up. */
void deferred_reply_cut(struct sim *s, struct evhttp_request *req, const char *data, size_t len);
void deferred_conn_closed(struct sim *s, struct evhttp_connection *evcon);
void deferred_free_all(struct sim *s);

/* store.c: orders, results, heartbeats, tokens, violations. */
struct sim_connector *store_connector(struct sim *s, const char *id, int create);
int store_connector_index(struct sim *s, const char *id);
/* Adds one order (takes a reference on body, which must not change afterwards);
 * -EEXIST for a duplicate Id. */
int store_add_order(struct sim *s, const char *connector, json_t *body, int synthetic,
                    struct ca_error *err);
int store_add_orders_json(struct sim *s, const char *connector, json_t *list, struct ca_error *err);
int store_load_orders_file(struct sim *s, const char *path, struct ca_error *err);
int store_order_deliverable(struct sim *s, struct sim_order *o, uint64_t now);
void store_order_mark_delivered(struct sim *s, struct sim_order *o, uint64_t now);
/* Order indexes of connector c matching key ("id:..." or "ak:..."), or NULL. */
json_t *store_lookup(struct sim_connector *c, const char *key);
void store_violation(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void store_vviolation(struct sim *s, const char *fmt, va_list ap);
void store_record_request(struct sim *s, const char *method, const char *path, const char *query,
                          int status);
void store_token_issue(struct sim *s, char out[65]);
int store_token_valid(struct sim *s, const char *token);
void store_tokens_revoke(struct sim *s);
char *store_cont_token_new(struct sim *s, struct sim_connector *c);
/* 1: issued; -1: a strict prefix of an issued token (cut short); 0: never issued. */
int store_cont_token_known(struct sim_connector *c, const char *t);
void store_redeliver(struct sim *s, struct sim_connector *c);
json_t *store_state_json(struct sim *s);
json_t *store_requests_json(struct sim *s);
void store_reset_counters(struct sim *s);
void store_free(struct sim *s);
/* Remembers req's body as refused with a 400 (ProvisioningResults only). */
void store_results_refused(struct sim *s, struct evhttp_request *req);
/* 1 when body is the last results body refused with a 400. */
int store_results_repeated(const struct sim *s, const char *body);
const char *store_order_state_name(struct sim *s, struct sim_order *o, uint64_t now);
/* CLOCK_MONOTONIC in microseconds, for the benchmark timings. */
uint64_t store_now_us(void);
/* GET /_control/counts: a few counters, cheap at any number of orders. */
json_t *store_counts_json(struct sim *s);
/* GET /_control/timings: one [available, first_delivered, first_result] per order. */
json_t *store_timings_json(struct sim *s);

/* generate.c: realistic orders. */
int generate_orders(struct sim *s, const char *connector, long count, const char *resource_type,
                    int with_ids, struct ca_error *err);

/* routes_*.c */
void routes_token(struct sim *s, struct evhttp_request *req);
void routes_provisioning_data(struct sim *s, struct evhttp_request *req, const char *connector);
void routes_provisioning_results(struct sim *s, struct evhttp_request *req);
void routes_agent(struct sim *s, struct evhttp_request *req, const char *agent_id);

/* control.c */
void control_handle(struct sim *s, struct evhttp_request *req, const char *path);

/* faults.c */
int faults_add(struct sim *s, json_t *req, struct ca_error *err);
/* Applies the next fault queued for ep, if any; returns 1 when it answered (or took
 * over) the request, 0 when the request proceeds normally. */
int faults_apply(struct sim *s, struct evhttp_request *req, enum sim_endpoint ep);
void faults_clear(struct sim *s);
enum sim_endpoint faults_endpoint_parse(const char *name);

/* tls.c */
int tls_setup(struct sim *s, struct ca_error *err);
void tls_free(struct sim *s);
/* The bufferevent callback for evhttp: TLS when configured, plain otherwise. */
struct bufferevent *tls_bevcb(struct event_base *base, void *arg);

#endif
