/* SPDX-License-Identifier: Apache-2.0 */
/* routes_agent: PUT /api/Connectors/Agent/{agentIdentifier}, the heartbeat of
 * protocol.md §5. Every field the page lists is type-checked, unknown ones are refused,
 * and an accepted heartbeat is kept (bounded) for tests to read. Answers the configured
 * LatestVersion. */
#include "simserver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"

static int status_valid(json_t *v)
{
        return json_is_string(v) && (strcmp(json_string_value(v), "CONNECTED") == 0 ||
                                     strcmp(json_string_value(v), "DISCONNECTED") == 0);
}

static int only_fields(json_t *o, const char *const *allowed, char *bad, size_t blen)
{
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v)
        {
                int ok = 0;
                for (size_t i = 0; allowed[i]; i++)
                        if (strcmp(k, allowed[i]) == 0)
                                ok = 1;
                if (!ok) {
                        snprintf(bad, blen, "%s", k);
                        return 0;
                }
        }
        return 1;
}

static int count_valid(json_t *c, const char *name, int required)
{
        json_t *v = json_object_get(c, name);
        if (!v)
                return !required;
        return json_is_integer(v) && json_integer_value(v) >= 0;
}

static int check_connector(json_t *c, char *why, size_t wlen)
{
        static const char *const allowed[] = {
            "Id",     "Status", "LastError", "PendingResults", "OrdersExecuted", "OrdersErrored",
            "Poller", NULL};
        char bad[128];
        if (!json_is_object(c)) {
                snprintf(why, wlen, "is not an object");
                return -1;
        }
        if (!only_fields(c, allowed, bad, sizeof(bad))) {
                snprintf(why, wlen, "has a field the protocol does not define: '%s'", bad);
                return -1;
        }
        json_t *id = json_object_get(c, "Id");
        if (!json_is_string(id) || !*json_string_value(id)) {
                snprintf(why, wlen, "Id must be a non-empty string");
                return -1;
        }
        if (!status_valid(json_object_get(c, "Status"))) {
                snprintf(why, wlen, "Status must be CONNECTED or DISCONNECTED");
                return -1;
        }
        /* (decided here) which instance polls the connector, when several share it */
        json_t *poller = json_object_get(c, "Poller");
        if (poller && (!json_is_string(poller) || !*json_string_value(poller))) {
                snprintf(why, wlen, "Poller must be a non-empty string");
                return -1;
        }
        json_t *le = json_object_get(c, "LastError");
        if (le && !json_is_string(le) && !json_is_null(le)) {
                snprintf(why, wlen, "LastError must be a string or null");
                return -1;
        }
        if (!count_valid(c, "PendingResults", 1) || !count_valid(c, "OrdersExecuted", 0) ||
            !count_valid(c, "OrdersErrored", 0)) {
                snprintf(why, wlen,
                         "PendingResults (required), OrdersExecuted and OrdersErrored must be "
                         "non-negative integers");
                return -1;
        }
        return 0;
}

void routes_agent(struct sim *s, struct evhttp_request *req, const char *agent_id)
{
        static const char *const allowed[] = {"Identifier", "Status",    "Version",
                                              "Hostname",   "StartedAt", "LastConnected",
                                              "Connectors", NULL};
        json_t *root = NULL;
        char *body = NULL;
        size_t len;
        char bad[128];
        if (checks_api_request(s, req, 1) < 0)
                return;
        body = http_body_dup(req, &len);
        if (!body) {
                http_refuse(s, req, 400, "invalid_request", 1, "empty body");
                goto out;
        }
        json_error_t jerr;
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(root)) {
                http_refuse(s, req, 400, "invalid_request", 1, "body must be a JSON object%s%s",
                            root ? "" : ": ", root ? "" : jerr.text);
                goto out;
        }
        if (!only_fields(root, allowed, bad, sizeof(bad))) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "field '%s' is not part of the agent status", bad);
                goto out;
        }
        json_t *ident = json_object_get(root, "Identifier");
        if (!json_is_string(ident) || strcmp(json_string_value(ident), agent_id) != 0) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "Identifier must be a string equal to the path's '%s'", agent_id);
                goto out;
        }
        if (!status_valid(json_object_get(root, "Status"))) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "Status must be CONNECTED or DISCONNECTED");
                goto out;
        }
        json_t *ver = json_object_get(root, "Version");
        json_t *host = json_object_get(root, "Hostname");
        if (!json_is_string(ver) || !*json_string_value(ver) || !json_is_string(host) ||
            !*json_string_value(host)) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "Version and Hostname must be non-empty strings");
                goto out;
        }
        json_t *started = json_object_get(root, "StartedAt");
        if (!json_is_string(started) || !checks_iso8601_utc(json_string_value(started))) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "StartedAt must be an ISO 8601 UTC time");
                goto out;
        }
        json_t *lc = json_object_get(root, "LastConnected");
        if (lc && !json_is_null(lc) &&
            !(json_is_string(lc) && checks_iso8601_utc(json_string_value(lc)))) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "LastConnected must be an ISO 8601 UTC time or null");
                goto out;
        }
        json_t *conns = json_object_get(root, "Connectors");
        if (!json_is_array(conns)) {
                http_refuse(s, req, 400, "invalid_request", 1, "Connectors must be an array");
                goto out;
        }
        size_t i;
        json_t *c;
        json_array_foreach(conns, i, c)
        {
                char why[256];
                if (check_connector(c, why, sizeof(why)) < 0) {
                        http_refuse(s, req, 400, "invalid_request", 1, "Connectors[%zu] %s", i,
                                    why);
                        goto out;
                }
        }
        char stamp[40];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        time_iso8601(ts.tv_sec, stamp, 21);
        snprintf(stamp + 19, sizeof(stamp) - 19, ".%03ldZ", ts.tv_nsec / 1000000);
        json_t *prev = json_object_get(s->agents, agent_id);
        if (prev || json_object_size(s->agents) < SIM_MAX_AGENTS) {
                json_int_t beats = json_integer_value(json_object_get(prev, "heartbeats"));
                json_object_set_new(s->agents, agent_id,
                                    json_pack("{s:O, s:O, s:O, s:I, s:I, s:s}", "status",
                                              json_object_get(root, "Status"), "version", ver,
                                              "hostname", host, "heartbeats", beats + 1,
                                              "last_seen_ms", (json_int_t)time_mono_ms(),
                                              "last_seen_at", stamp));
        }
        if (json_array_size(s->heartbeats) < SIM_MAX_HEARTBEATS) {
                json_object_set_new(root, "received_at", json_string(stamp));
                json_array_append(s->heartbeats, root);
        }
        http_reply_json(s, req, 200, json_pack("{s:s}", "LatestVersion", s->cfg.latest_version));
out:
        free(body);
        json_decref(root);
}
