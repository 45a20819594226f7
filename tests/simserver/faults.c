/* SPDX-License-Identifier: Apache-2.0 */
/* faults: the queue of misbehaviours tests ask for through /_control/fault. A fault
 * names an endpoint (or "any"), a kind and a count; the next matching requests consume
 * it in queue order, before any validation, as a failing proxy would. "expire_token"
 * acts at once (it revokes every token) and is not queued. */
#include "simserver.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"

static const char *const kinds[] = {"status",     "slow",         "drop",
                                    "malformed",  "truncated",    "oversized",
                                    "wrongtypes", "expire_token", NULL};

enum sim_endpoint faults_endpoint_parse(const char *name)
{
        if (!name)
                return SIM_EP_UNKNOWN;
        if (strcmp(name, "token") == 0)
                return SIM_EP_TOKEN;
        if (strcmp(name, "data") == 0)
                return SIM_EP_DATA;
        if (strcmp(name, "results") == 0)
                return SIM_EP_RESULTS;
        if (strcmp(name, "heartbeat") == 0)
                return SIM_EP_HEARTBEAT;
        if (strcmp(name, "any") == 0)
                return SIM_EP_ANY;
        return SIM_EP_UNKNOWN;
}

int faults_add(struct sim *s, json_t *req, struct ca_error *err)
{
        const char *ep_name = json_string_value(json_object_get(req, "endpoint"));
        const char *kind = json_string_value(json_object_get(req, "kind"));
        json_t *jcount = json_object_get(req, "count");
        enum sim_endpoint ep = faults_endpoint_parse(ep_name);
        if (ep == SIM_EP_UNKNOWN)
                return ca_error_set(err, -EINVAL,
                                    "endpoint must be token, data, results, heartbeat or any");
        int known = 0;
        for (size_t i = 0; kind && kinds[i]; i++)
                if (strcmp(kind, kinds[i]) == 0)
                        known = 1;
        if (!known)
                return ca_error_set(err, -EINVAL, "unknown fault kind '%s'", kind ? kind : "");
        if (jcount && (!json_is_integer(jcount) || json_integer_value(jcount) < 1))
                return ca_error_set(err, -EINVAL, "count must be a positive integer");
        if (strcmp(kind, "expire_token") == 0) {
                store_tokens_revoke(s);
                return 0;
        }
        if (strcmp(kind, "status") == 0) {
                json_int_t st = json_integer_value(json_object_get(req, "status"));
                if (st < 100 || st > 599)
                        return ca_error_set(err, -EINVAL,
                                            "status fault needs \"status\": 100..599");
        }
        if (strcmp(kind, "slow") == 0) {
                json_int_t d = json_integer_value(json_object_get(req, "delay_ms"));
                if (d < 0 || d > SIM_MAX_DELAY_MS)
                        return ca_error_set(err, -EINVAL, "delay_ms must be 0..%d",
                                            SIM_MAX_DELAY_MS);
        }
        if (strcmp(kind, "oversized") == 0) {
                json_int_t b = json_integer_value(json_object_get(req, "bytes"));
                if (b < 1 || b > SIM_MAX_OVERSIZED)
                        return ca_error_set(err, -EINVAL, "bytes must be 1..%lld",
                                            SIM_MAX_OVERSIZED);
        }
        if (s->nfaults >= SIM_MAX_FAULTS)
                return ca_error_set(err, -ENOSPC, "too many queued faults (max %d)",
                                    SIM_MAX_FAULTS);
        struct sim_fault *f = &s->faults[s->nfaults++];
        f->endpoint = ep;
        snprintf(f->kind, sizeof(f->kind), "%s", kind);
        f->count = jcount ? (long)json_integer_value(jcount) : 1;
        f->params = json_incref(req);
        return 0;
}

void faults_clear(struct sim *s)
{
        for (size_t i = 0; i < s->nfaults; i++)
                json_decref(s->faults[i].params);
        s->nfaults = 0;
}

/* A page of wrong types: bad orders the agent must refuse one by one, and one good
 * order (a real deliverable one when there is one) it must still execute. The bad ones
 * are registered as synthetic orders so that an Errored answer for them is no
 * violation; they are never delivered again. */
static json_t *wrongtypes_page(struct sim *s, const char *connector, const char *variant)
{
        static unsigned long seq;
        char id1[48], id2[48], id3[48];
        seq++;
        if (variant && strcmp(variant, "list_object") == 0)
                return json_pack("{s:{s:s}, s:n}", "ProvisioningOrdersList", "Id", "not-a-list",
                                 "ContinuationToken");
        snprintf(id1, sizeof(id1), "wrongtypes-%lu-changetype", seq);
        snprintf(id2, sizeof(id2), "wrongtypes-%lu-changes", seq);
        snprintf(id3, sizeof(id3), "wrongtypes-%lu-assignment", seq);
        json_t *bad1 = json_pack("{s:s, s:s, s:i, s:{s:s}, s:{s:s}}", "Id", id1,
                                 "AssignedResourceTypeId", "9990001", "ChangeType", 7,
                                 "ResourceType", "Identifier", "User", "Changes", "uid", "bad1");
        json_t *bad2 = json_pack("{s:s, s:s, s:s, s:{s:s}, s:[s,s]}", "Id", id2,
                                 "AssignedResourceTypeId", "9990002", "ChangeType", "Added",
                                 "ResourceType", "Identifier", "User", "Changes", "uid", "bad2");
        json_t *bad3 = json_pack("{s:s, s:i, s:s, s:{s:s}, s:{s:s}}", "Id", id3,
                                 "AssignedResourceTypeId", 9990003, "ChangeType", "Added",
                                 "ResourceType", "Identifier", "User", "Changes", "uid", "bad3");
        json_t *list = json_array();
        json_t *bads[] = {bad1, bad2, bad3};
        struct sim_connector *c = connector ? store_connector(s, connector, 0) : NULL;
        for (size_t i = 0; i < 3; i++) {
                if (c && store_add_order(s, connector, bads[i], 1, NULL) == 0)
                        s->orders[s->norders - 1]->delivered = 1;
                json_array_append_new(list, bads[i]);
        }
        json_array_append_new(list, json_string("an order that is not an object"));

        json_t *good = NULL;
        uint64_t now = time_mono_ms();
        for (size_t i = 0; c && i < c->norders; i++) {
                struct sim_order *o = s->orders[c->orders[i]];
                if (store_order_deliverable(s, o, now)) {
                        good = json_incref(o->body);
                        store_order_mark_delivered(s, o, now);
                        break;
                }
        }
        if (good)
                json_array_append_new(list, good);
        return json_pack("{s:o, s:n}", "ProvisioningOrdersList", list, "ContinuationToken");
}

static char *connector_of(struct evhttp_request *req)
{
        const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
        const char *prefix = "/api/Connectors/Provisioning/ProvisioningData/";
        if (!path || strncmp(path, prefix, strlen(prefix)) != 0)
                return NULL;
        return evhttp_uridecode(path + strlen(prefix), 0, NULL);
}

static json_t *valid_sample(enum sim_endpoint ep)
{
        switch (ep) {
        case SIM_EP_TOKEN:
                return json_pack("{s:s, s:s, s:i}", "access_token",
                                 "0123456789abcdef0123456789abcdef", "token_type", "Bearer",
                                 "expires_in", 3600);
        case SIM_EP_RESULTS:
                return json_pack("{s:i, s:i}", "Received", 1, "Duplicates", 0);
        case SIM_EP_HEARTBEAT:
                return json_pack("{s:s}", "LatestVersion", "1.0.0");
        default:
                return json_pack("{s:[{s:s, s:s, s:s, s:{s:s}, s:{s:s}}], s:n}",
                                 "ProvisioningOrdersList", "Id", "truncated-order",
                                 "AssignedResourceTypeId", "3930001", "ChangeType", "Added",
                                 "ResourceType", "Identifier", "User", "Changes", "uid",
                                 "truncated", "ContinuationToken");
        }
}

static json_t *wrong_types(struct sim *s, struct evhttp_request *req, enum sim_endpoint ep,
                           const char *variant)
{
        switch (ep) {
        case SIM_EP_TOKEN:
                return json_pack("{s:i, s:i, s:s}", "access_token", 12345, "token_type", 1,
                                 "expires_in", "soon");
        case SIM_EP_RESULTS:
                return json_pack("{s:s, s:n}", "Received", "many", "Duplicates");
        case SIM_EP_HEARTBEAT:
                return json_pack("{s:i}", "LatestVersion", 7);
        default: {
                char *conn = connector_of(req);
                json_t *page = wrongtypes_page(s, conn, variant);
                free(conn);
                return page;
        }
        }
}

/* A fault with "match" applies only to a request whose body holds that text (a results
 * PUT carrying one order's Id, say); the others pass it by. */
static int fault_matches(const struct sim_fault *f, struct evhttp_request *req)
{
        const char *m = json_string_value(json_object_get(f->params, "match"));
        if (!m)
                return 1;
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        return evbuffer_search(in, m, strlen(m), NULL).pos >= 0;
}

int faults_apply(struct sim *s, struct evhttp_request *req, enum sim_endpoint ep)
{
        size_t i;
        for (i = 0; i < s->nfaults; i++)
                if ((s->faults[i].endpoint == ep || s->faults[i].endpoint == SIM_EP_ANY) &&
                    fault_matches(&s->faults[i], req))
                        break;
        if (i == s->nfaults)
                return 0;
        struct sim_fault f = s->faults[i];
        json_incref(f.params);
        if (--s->faults[i].count <= 0) {
                json_decref(s->faults[i].params);
                memmove(&s->faults[i], &s->faults[i + 1], (s->nfaults - i - 1) * sizeof(f));
                s->nfaults--;
        }
        json_t *p = f.params;
        if (strcmp(f.kind, "status") == 0) {
                int st = (int)json_integer_value(json_object_get(p, "status"));
                const char *ra = json_string_value(json_object_get(p, "retry_after"));
                json_t *jra = json_object_get(p, "retry_after");
                char rabuf[32];
                if (!ra && json_is_integer(jra)) {
                        snprintf(rabuf, sizeof(rabuf), "%lld", (long long)json_integer_value(jra));
                        ra = rabuf;
                }
                if (ra)
                        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After",
                                          ra);
                if (st == 400)
                        store_results_refused(s, req);
                json_t *body = json_object_get(p, "body");
                if (json_is_string(body))
                        http_reply_raw(s, req, st, "application/json", json_string_value(body),
                                       json_string_length(body));
                else if (body)
                        http_reply_json(s, req, st, json_incref(body));
                else
                        http_reply_json(s, req, st, json_pack("{s:s}", "error", "injected fault"));
        } else if (strcmp(f.kind, "slow") == 0) {
                deferred_route_later(s, req, ep,
                                     (long)json_integer_value(json_object_get(p, "delay_ms")));
        } else if (strcmp(f.kind, "drop") == 0) {
                deferred_drop(s, req);
        } else if (strcmp(f.kind, "malformed") == 0) {
                static const char bad[] = "{\"ProvisioningOrdersList\": [{\"Id\": \"x\",, ]] nope";
                http_reply_raw(s, req, 200, "application/json", bad, sizeof(bad) - 1);
        } else if (strcmp(f.kind, "truncated") == 0) {
                json_t *sample = valid_sample(ep);
                char *text = json_dumps(sample, JSON_COMPACT);
                if (json_is_true(json_object_get(p, "transport")))
                        deferred_reply_cut(s, req, text ? text : "", text ? strlen(text) : 0);
                else
                        http_reply_raw(s, req, 200, "application/json", text,
                                       text ? strlen(text) / 2 : 0);
                free(text);
                json_decref(sample);
        } else if (strcmp(f.kind, "oversized") == 0) {
                deferred_stream_oversized(
                    s, req, (long long)json_integer_value(json_object_get(p, "bytes")));
        } else if (strcmp(f.kind, "wrongtypes") == 0) {
                const char *variant = json_string_value(json_object_get(p, "variant"));
                http_reply_json(s, req, 200, wrong_types(s, req, ep, variant));
        }
        json_decref(f.params);
        return 1;
}
