/* heartbeat: tells the server the agent is alive (protocol.md §5).
 *
 * Its own timer, every heartbeat_interval with jitter, independent of order work so
 * that a busy agent is never reported dead. One PUT in flight at a time; a failed one is
 * simply superseded by the next. On an orderly shutdown, one last PUT says
 * DISCONNECTED. Logs once when the server says a newer version exists. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "timeutil.h"

#define HEARTBEAT_PATH_MAX            1024
#define HEARTBEAT_FAREWELL_TIMEOUT_MS 5000

static void on_heartbeat_timer(evutil_socket_t fd, short what, void *arg);

static void arm(struct agent *a)
{
        uint64_t iv = a->cfg->agent.heartbeat_interval_ms;
        /* Up to 10 % early, never late: the server declares us dead after 3 intervals. */
        uint64_t delay = iv - jitter_ms(iv / 10);
        struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)((delay % 1000) * 1000)};
        evtimer_add(a->heartbeat_timer, &tv);
}

static json_t *connector_json(const struct connector *c)
{
        int up = c->target_connected && !c->refused && !c->agent->journal_broken;
        return json_pack("{s:s, s:s, s:o, s:I, s:I, s:I}", "Id", c->name, "Status",
                         up ? "CONNECTED" : "DISCONNECTED", "LastError",
                         c->last_error[0] ? json_string(c->last_error) : json_null(),
                         "PendingResults", (json_int_t)c->unreported, "OrdersExecuted",
                         (json_int_t)c->executed, "OrdersErrored", (json_int_t)c->errored);
}

static char *heartbeat_body(struct agent *a, const char *status)
{
        char started[32], last[32];
        json_t *conns = json_array();
        for (size_t i = 0; i < a->connector_count; i++)
                json_array_append_new(conns, connector_json(a->connectors[i]));
        json_t *root =
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "Identifier", a->cfg->agent.identifier,
                      "Status", status, "Version", CA_VERSION, "Hostname", a->hostname, "StartedAt",
                      time_iso8601(a->started_at, started, sizeof(started)), "LastConnected",
                      a->last_success_wall
                          ? json_string(time_iso8601(a->last_success_wall, last, sizeof(last)))
                          : json_null(),
                      "Connectors", conns);
        char *body = root ? json_dumps(root, JSON_COMPACT) : NULL;
        json_decref(root);
        return body;
}

static void on_heartbeat_done(void *arg, const struct http_response *resp)
{
        struct agent *a = arg;
        a->heartbeat_call = NULL;
        if (resp->transport_error == CA_HTTP_CANCELLED)
                return;
        if (a->phase == AGENT_FAREWELL) {
                if (resp->status != 200)
                        log_warning("the DISCONNECTED heartbeat was not accepted: %s",
                                    resp->status ? "server error" : resp->error);
                a->farewell_sent = 1;
                agent_check_done(a);
                return;
        }
        if (resp->status != 200) {
                char why[256];
                if (resp->status)
                        snprintf(why, sizeof(why), "heartbeat answered HTTP %ld", resp->status);
                else
                        snprintf(why, sizeof(why), "heartbeat failed: %s", resp->error);
                agent_server_failed(a, why);
                return;
        }
        agent_server_ok(a);
        a->last_heartbeat_ok_ms = time_mono_ms();
        json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
        const char *latest = json_string_value(json_object_get(root, "LatestVersion"));
        if (latest && strcmp(latest, CA_VERSION) != 0 &&
            strncmp(a->latest_version_seen, latest, sizeof(a->latest_version_seen) - 1) != 0) {
                log_notice("a newer agent version is available: %.60s (this is %s)", latest,
                           CA_VERSION);
                snprintf(a->latest_version_seen, sizeof(a->latest_version_seen), "%s", latest);
        }
        json_decref(root);
}

static void send_heartbeat(struct agent *a, const char *status)
{
        char path[HEARTBEAT_PATH_MAX];
        char *id = http_escape(a->cfg->agent.identifier);
        char *body = heartbeat_body(a, status);
        if (a->heartbeat_call)
                api_cancel(a->heartbeat_call);
        int rc = -ENOMEM;
        if (id && body) {
                snprintf(path, sizeof(path), "/api/Connectors/Agent/%s", id);
                rc = api_call(a->api, "PUT", path, body, on_heartbeat_done, a, &a->heartbeat_call);
        }
        free(id);
        free(body);
        if (rc < 0 && a->phase == AGENT_FAREWELL) {
                a->farewell_sent = 1;
                agent_check_done(a);
        }
}

static void on_heartbeat_timer(evutil_socket_t fd, short what, void *arg)
{
        struct agent *a = arg;
        if (a->phase != AGENT_RUNNING && a->phase != AGENT_DRAINING)
                return;
        send_heartbeat(a, "CONNECTED");
        arm(a);
}

void heartbeat_start(struct agent *a)
{
        if (!a->heartbeat_timer)
                a->heartbeat_timer = evtimer_new(a->base, on_heartbeat_timer, a);
        if (!a->heartbeat_timer)
                return;
        struct timeval now = {0, 0};
        evtimer_add(a->heartbeat_timer, &now);
}

void heartbeat_send_farewell(struct agent *a)
{
        if (a->heartbeat_timer)
                evtimer_del(a->heartbeat_timer);
        send_heartbeat(a, "DISCONNECTED");
}

void heartbeat_stop(struct agent *a)
{
        if (a->heartbeat_timer)
                evtimer_del(a->heartbeat_timer);
        if (a->heartbeat_call)
                api_cancel(a->heartbeat_call);
}
