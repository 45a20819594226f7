/* SPDX-License-Identifier: Apache-2.0 */
/* store: everything the simulated server remembers: connectors and their orders (with
 * delivery, lease and answer state), stored results and heartbeats, issued tokens,
 * continuation tokens, violations and the ring of recent requests. Every collection
 * has a SIM_MAX_* bound; past it the oldest entries go (ring, tokens) or new ones are
 * only counted (results, heartbeats, violations). */
#include "simserver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "timeutil.h"

struct sim_connector *store_connector(struct sim *s, const char *id, int create)
{
        for (size_t i = 0; i < s->nconnectors; i++)
                if (strcmp(s->connectors[i]->id, id) == 0)
                        return s->connectors[i];
        if (!create || s->nconnectors >= SIM_MAX_CONNECTORS || !*id)
                return NULL;
        struct sim_connector *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        c->id = strdup(id);
        c->index = json_object();
        if (!c->id || !c->index) {
                free(c->id);
                json_decref(c->index);
                free(c);
                return NULL;
        }
        s->connectors[s->nconnectors++] = c;
        return c;
}

int store_connector_index(struct sim *s, const char *id)
{
        for (size_t i = 0; i < s->nconnectors; i++)
                if (strcmp(s->connectors[i]->id, id) == 0)
                        return (int)i;
        return -1;
}

static int change_type_valid(const char *ct)
{
        return strcmp(ct, "Added") == 0 || strcmp(ct, "Modified") == 0 ||
               strcmp(ct, "Deleted") == 0;
}

static void order_free(struct sim_order *o)
{
        if (!o)
                return;
        free(o->key);
        free(o->id);
        free(o->assignment_id);
        free(o->change_type);
        json_decref(o->body);
        json_decref(o->last_result);
        free(o);
}

static int index_add(struct sim_connector *c, const char *key, size_t idx)
{
        json_t *list = json_object_get(c->index, key);
        if (!list) {
                list = json_array();
                if (!list || json_object_set_new(c->index, key, list) < 0)
                        return -ENOMEM;
        }
        return json_array_append_new(list, json_integer((json_int_t)idx)) < 0 ? -ENOMEM : 0;
}

json_t *store_lookup(struct sim_connector *c, const char *key)
{
        return json_object_get(c->index, key);
}

int store_add_order(struct sim *s, const char *connector, json_t *body, int synthetic,
                    struct ca_error *err)
{
        int rc = 0;
        struct sim_order *o = NULL;
        char *ikey = NULL, *akey = NULL;
        if (!json_is_object(body))
                return ca_error_set(err, -EINVAL, "an order must be a JSON object");
        struct sim_connector *c = store_connector(s, connector, 1);
        if (!c)
                return ca_error_set(err, -ENOSPC, "cannot add connector '%s'", connector);
        if (s->norders >= SIM_MAX_ORDERS)
                return ca_error_set(err, -ENOSPC, "too many orders (max %d)", SIM_MAX_ORDERS);
        json_t *jid = json_object_get(body, "Id");
        json_t *ja = json_object_get(body, "AssignedResourceTypeId");
        json_t *jc = json_object_get(body, "ChangeType");
        if (jid && !json_is_string(jid) && !synthetic)
                return ca_error_set(err, -EINVAL, "order Id must be a string");

        o = calloc(1, sizeof(*o));
        if (!o)
                return ca_error_set(err, -ENOMEM, "out of memory");
        o->connector = (size_t)store_connector_index(s, connector);
        o->synthetic = synthetic;
        o->available_us = store_now_us();
        o->assignment_id = strdup(json_is_string(ja) ? json_string_value(ja) : "");
        o->change_type = strdup(json_is_string(jc) ? json_string_value(jc) : "");
        if (json_is_string(jid))
                o->id = strdup(json_string_value(jid));
        if (!o->assignment_id || !o->change_type || (json_is_string(jid) && !o->id)) {
                rc = ca_error_set(err, -ENOMEM, "out of memory");
                goto out;
        }
        o->change_type_valid = json_is_string(jc) && change_type_valid(o->change_type);
        if (o->id) {
                o->key = strdup(o->id);
                if (asprintf(&ikey, "id:%s", o->id) < 0)
                        ikey = NULL;
        } else {
                if (asprintf(&o->key, "%s|%s", o->assignment_id, o->change_type) < 0)
                        o->key = NULL;
                if (asprintf(&ikey, "ak:%s|%s", o->assignment_id, o->change_type) < 0)
                        ikey = NULL;
        }
        if (!o->key || !ikey) {
                rc = ca_error_set(err, -ENOMEM, "out of memory");
                goto out;
        }
        if (o->id && asprintf(&akey, "ak:%s|%s", o->assignment_id, o->change_type) < 0) {
                akey = NULL;
                rc = ca_error_set(err, -ENOMEM, "out of memory");
                goto out;
        }
        if (o->id && json_object_get(c->index, ikey)) {
                rc = ca_error_set(err, -EEXIST, "connector '%s' already has an order with Id '%s'",
                                  connector, o->id);
                goto out;
        }
        /* Shared, not copied: nobody changes an order's JSON once it is stored. */
        o->body = json_incref(body);
        if (s->norders == s->orders_cap) {
                size_t ncap = s->orders_cap ? s->orders_cap * 2 : 1024;
                struct sim_order **n = realloc(s->orders, ncap * sizeof(*n));
                if (!n) {
                        rc = ca_error_set(err, -ENOMEM, "out of memory");
                        goto out;
                }
                s->orders = n;
                s->orders_cap = ncap;
        }
        if (c->norders == c->cap) {
                size_t ncap = c->cap ? c->cap * 2 : 256;
                size_t *n = realloc(c->orders, ncap * sizeof(*n));
                if (!n) {
                        rc = ca_error_set(err, -ENOMEM, "out of memory");
                        goto out;
                }
                c->orders = n;
                c->cap = ncap;
        }
        /* Orders with an Id are also found by assignment and change type, so that a
         * result that forgot the Id is told so rather than "unknown order". */
        if (index_add(c, ikey, s->norders) < 0 || (akey && index_add(c, akey, s->norders) < 0)) {
                rc = ca_error_set(err, -ENOMEM, "out of memory");
                goto out;
        }
        c->orders[c->norders++] = s->norders;
        s->orders[s->norders++] = o;
        o = NULL;
out:
        free(ikey);
        free(akey);
        order_free(o);
        return rc;
}

int store_add_orders_json(struct sim *s, const char *connector, json_t *list, struct ca_error *err)
{
        size_t i;
        json_t *v;
        if (!json_is_array(list))
                return ca_error_set(err, -EINVAL, "orders for '%s' must be a JSON array",
                                    connector);
        if (!store_connector(s, connector, 1))
                return ca_error_set(err, -ENOSPC, "cannot add connector '%s'", connector);
        json_array_foreach(list, i, v)
        {
                int rc = store_add_order(s, connector, v, 0, err);
                if (rc < 0)
                        return ca_error_prefix(err, "order %zu of '%s'", i, connector);
        }
        return 0;
}

int store_load_orders_file(struct sim *s, const char *path, struct ca_error *err)
{
        json_error_t jerr;
        const char *name;
        json_t *list;
        int rc = 0;
        json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return ca_error_set(err, -EINVAL, "%s:%d: %s", path, jerr.line, jerr.text);
        if (!json_is_object(root)) {
                rc = ca_error_set(err, -EINVAL, "%s: expected an object of connector -> orders",
                                  path);
                goto out;
        }
        json_object_foreach(root, name, list)
        {
                rc = store_add_orders_json(s, name, list, err);
                if (rc < 0) {
                        ca_error_prefix(err, "%s", path);
                        goto out;
                }
        }
out:
        json_decref(root);
        return rc;
}

int store_order_deliverable(struct sim *s, struct sim_order *o, uint64_t now)
{
        if (o->synthetic)
                return 0;
        if (o->redeliver)
                return 1;
        if (o->answered)
                return 0;
        if (o->leased)
                return now >= o->lease_deadline_ms;
        return 1;
}

void store_order_mark_delivered(struct sim *s, struct sim_order *o, uint64_t now)
{
        o->delivered++;
        o->redeliver = 0;
        if (!o->first_delivered_us)
                o->first_delivered_us = store_now_us();
        if (!o->answered) {
                o->leased = 1;
                o->lease_deadline_ms = now + (uint64_t)s->cfg.lease_s * 1000u;
        }
}

const char *store_order_state_name(struct sim *s, struct sim_order *o, uint64_t now)
{
        if (o->answered)
                return "answered";
        if (o->leased && now < o->lease_deadline_ms)
                return "leased";
        return "pending";
}

void store_vviolation(struct sim *s, const char *fmt, va_list ap)
{
        char msg[1024];
        vsnprintf(msg, sizeof(msg), fmt, ap);
        s->violations_total++;
        if (json_array_size(s->violations) < SIM_MAX_VIOLATIONS)
                json_array_append_new(s->violations, json_string(msg));
        if (!s->cfg.quiet)
                fprintf(stderr, "ca-simserver: violation: %s\n", msg);
}

void store_violation(struct sim *s, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        store_vviolation(s, fmt, ap);
        va_end(ap);
}

void store_record_request(struct sim *s, const char *method, const char *path, const char *query,
                          int status)
{
        struct sim_request_rec *r = &s->ring[s->ring_next];
        free(r->path);
        free(r->query);
        snprintf(r->method, sizeof(r->method), "%s", method);
        r->path = strdup(path ? path : "");
        r->query = query ? strdup(query) : NULL;
        r->status = status;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r->at_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        s->ring_next = (s->ring_next + 1) % SIM_MAX_REQUESTS_RING;
        if (s->ring_count < SIM_MAX_REQUESTS_RING)
                s->ring_count++;
}

json_t *store_requests_json(struct sim *s)
{
        json_t *list = json_array();
        size_t start =
            (s->ring_next + SIM_MAX_REQUESTS_RING - s->ring_count) % SIM_MAX_REQUESTS_RING;
        for (size_t i = 0; i < s->ring_count; i++) {
                struct sim_request_rec *r = &s->ring[(start + i) % SIM_MAX_REQUESTS_RING];
                json_array_append_new(list, json_pack("{s:s, s:s, s:s?, s:i, s:I}", "method",
                                                      r->method, "path", r->path ? r->path : "",
                                                      "query", r->query, "status", r->status,
                                                      "at_ms", (json_int_t)r->at_ms));
        }
        return json_pack("{s:o}", "requests", list);
}

void store_token_issue(struct sim *s, char out[65])
{
        unsigned char raw[32];
        if (RAND_bytes(raw, sizeof(raw)) != 1) {
                /* Only a test server: a weak token beats no token. */
                for (size_t i = 0; i < sizeof(raw); i++)
                        raw[i] = (unsigned char)rand();
        }
        for (size_t i = 0; i < sizeof(raw); i++)
                snprintf(out + 2 * i, 3, "%02x", raw[i]);
        if (s->ntokens == SIM_MAX_TOKENS) {
                memmove(s->tokens, s->tokens + 1, (SIM_MAX_TOKENS - 1) * sizeof(*s->tokens));
                s->ntokens--;
        }
        struct sim_token *t = &s->tokens[s->ntokens++];
        memcpy(t->value, out, 65);
        t->expires_ms = time_mono_ms() + (uint64_t)s->cfg.token_ttl * 1000u;
}

int store_token_valid(struct sim *s, const char *token)
{
        uint64_t now = time_mono_ms();
        for (size_t i = s->ntokens; i-- > 0;)
                if (strcmp(s->tokens[i].value, token) == 0)
                        return now < s->tokens[i].expires_ms;
        return 0;
}

void store_tokens_revoke(struct sim *s)
{
        s->ntokens = 0;
}

char *store_cont_token_new(struct sim *s, struct sim_connector *c)
{
        /* Padding the way opaque server tokens look (base64), with the characters a
         * client must escape in a query. */
        static const char pad[] = "AbZ09+/=";
        char *t = NULL;
        unsigned char raw[8];
        if (RAND_bytes(raw, sizeof(raw)) != 1)
                memset(raw, 0, sizeof(raw));
        int n = asprintf(&t, "ct-%lu-%02x%02x%02x%02x%02x%02x%02x%02x", ++c->page_seq, raw[0],
                         raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7]);
        if (n < 0)
                return NULL;
        size_t want = (size_t)s->cfg.continuation_bytes;
        if (want > (size_t)n) {
                char *longer = realloc(t, want + 1);
                if (!longer) {
                        free(t);
                        return NULL;
                }
                t = longer;
                for (size_t i = (size_t)n; i < want; i++)
                        t[i] = pad[i % (sizeof(pad) - 1)];
                t[want] = '\0';
        }
        free(c->cont_tokens[c->cont_next]);
        c->cont_tokens[c->cont_next] = strdup(t);
        c->cont_next = (c->cont_next + 1) % SIM_CONT_TOKENS_KEPT;
        return t;
}

int store_cont_token_known(struct sim_connector *c, const char *t)
{
        int cut = 0;
        size_t n = strlen(t);
        for (size_t i = 0; i < SIM_CONT_TOKENS_KEPT; i++) {
                if (!c->cont_tokens[i])
                        continue;
                if (strcmp(c->cont_tokens[i], t) == 0)
                        return 1;
                if (n > 0 && strncmp(c->cont_tokens[i], t, n) == 0)
                        cut = 1;
        }
        return cut ? -1 : 0;
}

void store_redeliver(struct sim *s, struct sim_connector *c)
{
        for (size_t i = 0; i < c->norders; i++) {
                struct sim_order *o = s->orders[c->orders[i]];
                if (!o->synthetic && o->delivered > 0)
                        o->redeliver = 1;
        }
        c->low_water = 0;
}

uint64_t store_now_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

json_t *store_counts_json(struct sim *s)
{
        return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "orders", (json_int_t)s->norders,
                         "received", (json_int_t)s->received, "violations_total",
                         (json_int_t)s->violations_total, "first_page_us",
                         (json_int_t)s->first_page_us, "last_result_us",
                         (json_int_t)s->last_result_us, "now_us", (json_int_t)store_now_us());
}

json_t *store_timings_json(struct sim *s)
{
        json_t *list = json_array();
        for (size_t i = 0; i < s->norders; i++) {
                struct sim_order *o = s->orders[i];
                json_array_append_new(list, json_pack("[I, I, I]", (json_int_t)o->available_us,
                                                      (json_int_t)o->first_delivered_us,
                                                      (json_int_t)o->first_result_us));
        }
        return json_pack("{s:o}", "timings", list);
}

json_t *store_state_json(struct sim *s)
{
        uint64_t now = time_mono_ms();
        json_t *orders = json_array();
        for (size_t i = 0; i < s->norders; i++) {
                struct sim_order *o = s->orders[i];
                json_array_append_new(
                    orders, json_pack("{s:s, s:s, s:s?, s:s, s:s, s:i, s:i, s:s, s:O?, s:b}",
                                      "connector", s->connectors[o->connector]->id, "key", o->key,
                                      "id", o->id, "assignment_id", o->assignment_id, "change_type",
                                      o->change_type, "delivered", (int)o->delivered, "results",
                                      (int)o->results, "state", store_order_state_name(s, o, now),
                                      "result", o->last_result, "synthetic", o->synthetic));
        }
        json_t *agents = json_array();
        const char *aid;
        json_t *a;
        json_object_foreach(s->agents, aid, a)
        {
                /* As the protocol has it: heard nothing for three intervals means gone,
                 * whatever the agent last said. */
                uint64_t seen = (uint64_t)json_integer_value(json_object_get(a, "last_seen_ms"));
                int silent = now - seen > (uint64_t)s->cfg.heartbeat_interval_s * 3000u;
                const char *reported = json_string_value(json_object_get(a, "status"));
                const char *version = json_string_value(json_object_get(a, "version"));
                json_array_append_new(
                    agents, json_pack("{s:s, s:s, s:s, s:s, s:O, s:O, s:O, s:b}", "identifier", aid,
                                      "status", silent ? "DISCONNECTED" : reported,
                                      "reported_status", reported, "version", version, "hostname",
                                      json_object_get(a, "hostname"), "heartbeats",
                                      json_object_get(a, "heartbeats"), "last_seen_at",
                                      json_object_get(a, "last_seen_at"), "is_latest_version",
                                      strcmp(version, s->cfg.latest_version) == 0));
        }
        json_t *conns = json_array();
        for (size_t i = 0; i < s->nconnectors; i++)
                json_array_append_new(conns, json_string(s->connectors[i]->id));
        return json_pack("{s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:O, s:I, s:I, s:I, s:I, s:I}",
                         "orders", orders, "agents", agents, "connectors", conns, "received",
                         (json_int_t)s->received, "duplicates", (json_int_t)s->duplicates,
                         "conflicting_duplicates", (json_int_t)s->conflicting, "results_dropped",
                         (json_int_t)s->results_dropped, "violations", s->violations,
                         "violations_total", (json_int_t)s->violations_total, "token_requests",
                         (json_int_t)s->token_requests, "requests", (json_int_t)s->requests,
                         "connections", (json_int_t)s->nconns, "connections_refused",
                         (json_int_t)s->conns_refused);
}

void store_reset_counters(struct sim *s)
{
        s->received = s->duplicates = s->conflicting = s->results_dropped = 0;
        s->first_page_us = s->last_result_us = 0;
        s->violations_total = s->token_requests = s->requests = 0;
        json_array_clear(s->violations);
        json_array_clear(s->results);
        json_array_clear(s->heartbeats);
        json_object_clear(s->agents);
        for (size_t i = 0; i < SIM_MAX_REQUESTS_RING; i++) {
                free(s->ring[i].path);
                free(s->ring[i].query);
                s->ring[i].path = s->ring[i].query = NULL;
        }
        s->ring_next = s->ring_count = 0;
        /* A reset server is one put right: what it refused before may come again. */
        free(s->results_refused_body);
        s->results_refused_body = NULL;
}

void store_results_refused(struct sim *s, struct evhttp_request *req)
{
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
        const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
        if (!path || !strstr(path, "/ProvisioningResults"))
                return;
        free(s->results_refused_body);
        s->results_refused_body = http_body_dup(req, NULL);
}

int store_results_repeated(const struct sim *s, const char *body)
{
        return s->results_refused_body && body && strcmp(s->results_refused_body, body) == 0;
}

void store_free(struct sim *s)
{
        free(s->results_refused_body);
        for (size_t i = 0; i < s->norders; i++)
                order_free(s->orders[i]);
        free(s->orders);
        s->orders = NULL;
        s->norders = 0;
        for (size_t i = 0; i < s->nconnectors; i++) {
                struct sim_connector *c = s->connectors[i];
                free(c->id);
                free(c->orders);
                json_decref(c->index);
                for (size_t j = 0; j < SIM_CONT_TOKENS_KEPT; j++)
                        free(c->cont_tokens[j]);
                free(c);
        }
        s->nconnectors = 0;
        for (size_t i = 0; i < SIM_MAX_REQUESTS_RING; i++) {
                free(s->ring[i].path);
                free(s->ring[i].query);
        }
        json_decref(s->results);
        json_decref(s->heartbeats);
        json_decref(s->agents);
        json_decref(s->violations);
        free(s->tokens);
}
