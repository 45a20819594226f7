/* SPDX-License-Identifier: Apache-2.0 */
/* routes_provisioning: the two order endpoints of protocol.md §3 and §4.
 * GET ProvisioningData/{connector} hands out pages of deliverable orders (never
 * delivered, lease run out, or marked for redelivery) and leases them; PUT
 * ProvisioningResults checks the whole body first and applies it only when every entry
 * is valid and matches an order that was delivered, so a refused PUT changes nothing. */
#include "simserver.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "timeutil.h"

static int parse_long(const char *v, long lo, long hi, long *out)
{
        char *end;
        errno = 0;
        if (!v || !*v || *v == '+' || *v == '-' || *v == ' ')
                return -EINVAL;
        long n = strtol(v, &end, 10);
        if (errno || *end || n < lo || n > hi)
                return -EINVAL;
        *out = n;
        return 0;
}

void routes_provisioning_data(struct sim *s, struct evhttp_request *req, const char *connector)
{
        char *ps = NULL, *ct = NULL, *next = NULL;
        if (checks_api_request(s, req, 0) < 0)
                return;
        if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > 0) {
                http_refuse(s, req, 400, "invalid_request", 1, "a GET carries no body");
                return;
        }
        struct sim_connector *c = store_connector(s, connector, 0);
        if (!c) {
                http_refuse(s, req, 404, "not_found", 0, "unknown connector '%s'", connector);
                return;
        }
        const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
        long page = s->cfg.page_size;
        ps = checks_form_get(query, "PageSize", NULL);
        if (ps) {
                long n;
                if (parse_long(ps, 1, INT_MAX, &n) < 0) {
                        http_refuse(s, req, 400, "invalid_request", 1,
                                    "PageSize must be a positive integer (got '%s')", ps);
                        goto out;
                }
                if (n < page)
                        page = n;
        }
        ct = checks_form_get(query, "ContinuationToken", NULL);
        int known = ct ? store_cont_token_known(c, ct) : 1;
        if (known < 0) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "ContinuationToken '%.64s...' is cut short (%zu bytes): a token goes "
                            "back whole",
                            ct, strlen(ct));
                goto out;
        }
        if (!known) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "ContinuationToken '%.64s' was never issued for '%s'", ct, connector);
                goto out;
        }

        uint64_t now = time_mono_ms();
        json_t *list = json_array();
        int more = 0;
        /* Orders before low_water are answered for good; skipping them keeps a page cheap
         * on a connector with a million orders behind it. */
        while (c->low_water < c->norders) {
                struct sim_order *o = s->orders[c->orders[c->low_water]];
                if (!(o->synthetic || (o->answered && !o->redeliver)))
                        break;
                c->low_water++;
        }
        /* --assignment-order: assignments with an earlier order out on a lease */
        json_t *held = s->cfg.assignment_order ? json_object() : NULL;
        for (size_t i = c->low_water; i < c->norders; i++) {
                struct sim_order *o = s->orders[c->orders[i]];
                if (held && o->assignment_id[0] && json_object_get(held, o->assignment_id))
                        continue;
                if (!store_order_deliverable(s, o, now)) {
                        if (held && o->assignment_id[0] && !o->synthetic && !o->answered)
                                json_object_set_new(held, o->assignment_id, json_true());
                        continue;
                }
                if ((long)json_array_size(list) >= page) {
                        more = 1;
                        break;
                }
                json_array_append(list, o->body);
                store_order_mark_delivered(s, o, now);
        }
        json_decref(held);
        if (!s->first_page_us && json_array_size(list) > 0)
                s->first_page_us = store_now_us();
        if (more)
                next = store_cont_token_new(s, c);
        http_reply_json(
            s, req, 200,
            json_pack("{s:o, s:s?}", "ProvisioningOrdersList", list, "ContinuationToken", next));
out:
        free(ps);
        free(ct);
        free(next);
}

static int optional_string_or_null(json_t *e, const char *name)
{
        json_t *v = json_object_get(e, name);
        return !v || json_is_string(v) || json_is_null(v);
}

/* Validates one result entry and finds its order; returns the order index or -1 after
 * writing why into why. */
static long match_result(struct sim *s, struct sim_connector *c, json_t *e, char *why, size_t wlen)
{
        static const char *const allowed[] = {
            "Id",      "AssignmentId", "ProvisioningState",  "Message",    "ChangeType",
            "OwnerId", "OwnerType",    "ResourceIdentifier", "ExecutedAt", NULL};
        const char *k;
        json_t *v;
        if (!json_is_object(e)) {
                snprintf(why, wlen, "is not an object");
                return -1;
        }
        json_object_foreach(e, k, v)
        {
                int ok = 0;
                for (size_t i = 0; allowed[i]; i++)
                        if (strcmp(k, allowed[i]) == 0)
                                ok = 1;
                if (!ok) {
                        snprintf(why, wlen, "has a field the protocol does not define: '%s'", k);
                        return -1;
                }
        }
        json_t *id = json_object_get(e, "Id");
        json_t *aid = json_object_get(e, "AssignmentId");
        json_t *st = json_object_get(e, "ProvisioningState");
        json_t *chg = json_object_get(e, "ChangeType");
        json_t *msg = json_object_get(e, "Message");
        json_t *at = json_object_get(e, "ExecutedAt");
        if (id && !json_is_string(id)) {
                snprintf(why, wlen, "Id must be a string");
                return -1;
        }
        if (!json_is_string(aid) || !*json_string_value(aid)) {
                snprintf(why, wlen, "AssignmentId must be a non-empty string");
                return -1;
        }
        if (!json_is_string(st) || (strcmp(json_string_value(st), "Executed") != 0 &&
                                    strcmp(json_string_value(st), "Errored") != 0)) {
                snprintf(why, wlen, "ProvisioningState must be \"Executed\" or \"Errored\"");
                return -1;
        }
        if (!json_is_string(chg)) {
                snprintf(why, wlen, "ChangeType must be a string");
                return -1;
        }
        if (!json_is_string(msg)) {
                snprintf(why, wlen, "Message must be a string");
                return -1;
        }
        if (!json_is_string(at) || !checks_iso8601_utc(json_string_value(at))) {
                snprintf(why, wlen,
                         "ExecutedAt must be an ISO 8601 UTC time like 2026-11-22T10:15:02Z");
                return -1;
        }
        if (!optional_string_or_null(e, "OwnerId") || !optional_string_or_null(e, "OwnerType") ||
            !optional_string_or_null(e, "ResourceIdentifier")) {
                snprintf(why, wlen,
                         "OwnerId, OwnerType and ResourceIdentifier must be strings or null");
                return -1;
        }

        char *key = NULL;
        long found = -1;
        if (id) {
                if (asprintf(&key, "id:%s", json_string_value(id)) < 0)
                        key = NULL;
        } else if (asprintf(&key, "ak:%s|%s", json_string_value(aid), json_string_value(chg)) < 0) {
                key = NULL;
        }
        json_t *cands = key ? store_lookup(c, key) : NULL;
        free(key);
        size_t i;
        json_t *jidx;
        long fallback = -1;
        json_array_foreach(cands, i, jidx)
        {
                long idx = (long)json_integer_value(jidx);
                struct sim_order *o = s->orders[idx];
                if (o->delivered == 0)
                        continue;
                if (!o->answered && !o->claimed) {
                        found = idx;
                        break;
                }
                if (fallback < 0)
                        fallback = idx;
        }
        if (found < 0)
                found = fallback;
        if (found < 0) {
                if (id)
                        snprintf(why, wlen, "no order with Id '%s' was delivered for '%s'",
                                 json_string_value(id), c->id);
                else
                        snprintf(why, wlen, "no order %s|%s was delivered for '%s'",
                                 json_string_value(aid), json_string_value(chg), c->id);
                return -1;
        }
        struct sim_order *o = s->orders[found];
        if (!id && o->id) {
                snprintf(why, wlen, "the result lacks the order's Id '%s'", o->id);
                return -1;
        }
        /* A synthetic (wrong types) order may have had no usable assignment to echo. */
        if (!o->synthetic && strcmp(o->assignment_id, json_string_value(aid)) != 0) {
                snprintf(why, wlen, "AssignmentId '%s' differs from the order's '%s'",
                         json_string_value(aid), o->assignment_id);
                return -1;
        }
        if (o->change_type_valid && strcmp(o->change_type, json_string_value(chg)) != 0) {
                snprintf(why, wlen, "ChangeType '%s' differs from the order's '%s'",
                         json_string_value(chg), o->change_type);
                return -1;
        }
        o->claimed = 1;
        return found;
}

void routes_provisioning_results(struct sim *s, struct evhttp_request *req)
{
        static const char *const top_allowed[] = {"ConnectorId", "AgentIdentifier",
                                                  "ProvisioningResults", NULL};
        json_t *root = NULL;
        long *idx = NULL;
        size_t n = 0, len;
        char *body = NULL;
        if (checks_api_request(s, req, 1) < 0)
                return;
        body = http_body_dup(req, &len);
        if (store_results_repeated(s, body))
                store_violation(s, "PUT ProvisioningResults: the body refused with a 400 was sent "
                                   "again unchanged");
        if (!body) {
                http_refuse(s, req, 400, "invalid_request", 1, "empty body");
                goto out;
        }
        json_error_t jerr;
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                http_refuse(s, req, 400, "invalid_request", 1, "body is not valid JSON: %s at %d",
                            jerr.text, jerr.position);
                goto out;
        }
        if (!json_is_object(root)) {
                http_refuse(s, req, 400, "invalid_request", 1, "body must be a JSON object");
                goto out;
        }
        const char *k;
        json_t *v;
        json_object_foreach(root, k, v)
        {
                int ok = 0;
                for (size_t i = 0; top_allowed[i]; i++)
                        if (strcmp(k, top_allowed[i]) == 0)
                                ok = 1;
                if (!ok) {
                        http_refuse(s, req, 400, "invalid_request", 1,
                                    "field '%s' is not part of ProvisioningResults", k);
                        goto out;
                }
        }
        json_t *cid = json_object_get(root, "ConnectorId");
        json_t *agent = json_object_get(root, "AgentIdentifier");
        json_t *list = json_object_get(root, "ProvisioningResults");
        if (!json_is_string(cid) || !*json_string_value(cid)) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "ConnectorId must be a non-empty string");
                goto out;
        }
        if (!json_is_string(agent) || !*json_string_value(agent)) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "AgentIdentifier must be a non-empty string");
                goto out;
        }
        if (!json_is_array(list) || json_array_size(list) == 0) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "ProvisioningResults must be a non-empty array");
                goto out;
        }
        n = json_array_size(list);
        if (n > SIM_MAX_RESULTS_PER_PUT) {
                http_refuse(s, req, 413, "invalid_request", 1, "more than %d results in one PUT",
                            SIM_MAX_RESULTS_PER_PUT);
                goto out;
        }
        struct sim_connector *c = store_connector(s, json_string_value(cid), 0);
        if (!c) {
                http_refuse(s, req, 404, "not_found", 1, "results for unknown connector '%s'",
                            json_string_value(cid));
                goto out;
        }
        idx = calloc(n, sizeof(*idx));
        if (!idx) {
                http_refuse(s, req, 500, "server_error", 0, "out of memory");
                goto out;
        }
        size_t i;
        json_t *e;
        int bad = 0;
        json_array_foreach(list, i, e)
        {
                char why[512];
                idx[i] = match_result(s, c, e, why, sizeof(why));
                if (idx[i] < 0) {
                        http_refuse(s, req, 400, "invalid_request", 1,
                                    "ProvisioningResults[%zu] %s", i, why);
                        bad = 1;
                        n = i; /* only the entries before this one were claimed */
                        break;
                }
        }
        for (size_t j = 0; j < n; j++)
                s->orders[idx[j]]->claimed = 0;
        if (bad)
                goto out;

        char stamp[40];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        time_iso8601(ts.tv_sec, stamp, 21);
        snprintf(stamp + 19, sizeof(stamp) - 19, ".%03ldZ", ts.tv_nsec / 1000000);
        unsigned long dups = 0;
        uint64_t now_us = store_now_us();
        s->last_result_us = now_us;
        json_array_foreach(list, i, e)
        {
                struct sim_order *o = s->orders[idx[i]];
                int dup = o->results > 0;
                if (!dup)
                        o->first_result_us = now_us;
                o->results++;
                if (dup) {
                        dups++;
                        s->duplicates++;
                        const char *prev =
                            json_string_value(json_object_get(o->last_result, "ProvisioningState"));
                        const char *cur =
                            json_string_value(json_object_get(e, "ProvisioningState"));
                        if (prev && cur && strcmp(prev, cur) != 0)
                                s->conflicting++;
                }
                json_decref(o->last_result);
                o->last_result = json_deep_copy(e);
                o->answered = 1;
                o->leased = 0;
                s->received++;
                if (json_array_size(s->results) < SIM_MAX_STORED_RESULTS) {
                        json_t *rec = json_deep_copy(e);
                        json_object_set_new(rec, "connector", json_string(c->id));
                        json_object_set(rec, "agent", agent);
                        json_object_set_new(rec, "order_key", json_string(o->key));
                        json_object_set_new(rec, "received_at", json_string(stamp));
                        json_object_set_new(rec, "duplicate", json_boolean(dup));
                        json_array_append_new(s->results, rec);
                } else {
                        s->results_dropped++;
                }
        }
        http_reply_json(s, req, 200,
                        json_pack("{s:I, s:I}", "Received", (json_int_t)json_array_size(list),
                                  "Duplicates", (json_int_t)dups));
out:
        free(idx);
        free(body);
        json_decref(root);
}
