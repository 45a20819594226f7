/* SPDX-License-Identifier: Apache-2.0 */
/* heartbeat: the agent's PUT /api/Connectors/Agent/{identifier} (heartbeat.h). Logs once
 * when the server says a newer version exists. */
#include "heartbeat.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "timeutil.h"

#define HEARTBEAT_PATH_MAX            1024
#define HEARTBEAT_FAREWELL_TIMEOUT_MS 5000
/* A heartbeat unanswered this long (or an interval, when shorter) means a server that
 * hangs: say so and stop looking ready, long before the request timeout ends the call. */
#define HEARTBEAT_SILENCE_MS 10000

struct heartbeat {
        struct pipeline_env *env;
        const struct heartbeat_ops *ops;
        void *ctx;
        char hostname[256];
        int64_t started_at;
        struct event *timer;
        struct api_call *call;
        char latest_version_seen[64];
        uint64_t last_ok_ms;
        int first_waited, first_sent;
        struct event *silence; /* fires when a heartbeat stays unanswered */
        uint64_t silence_ms;
        int server_silent; /* requests go unanswered: the server may hang */
};

static void on_heartbeat_timer(evutil_socket_t fd, short what, void *arg);

static void arm(struct heartbeat *h)
{
        uint64_t iv = h->env->cfg->agent.heartbeat_interval_ms;
        /* Up to 10 % early, never late: the server declares us dead after 3 intervals. */
        uint64_t delay = iv - jitter_ms(iv / 10);
        struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)((delay % 1000) * 1000)};
        evtimer_add(h->timer, &tv);
}

static char *heartbeat_body(struct heartbeat *h, const char *status)
{
        char started[32], last[32];
        const struct ca_config *cfg = h->env->cfg;
        json_t *conns = h->ops->connectors(h->ctx);
        int64_t connected = h->ops->last_connected(h->ctx);
        json_t *root = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "Identifier", cfg->agent.identifier, "Status",
            status, "Version", CA_VERSION, "Hostname", h->hostname, "StartedAt",
            time_iso8601(h->started_at, started, sizeof(started)), "LastConnected",
            connected ? json_string(time_iso8601(connected, last, sizeof(last))) : json_null(),
            "Connectors", conns ? conns : json_array());
        char *body = root ? json_dumps(root, JSON_COMPACT) : NULL;
        json_decref(root);
        return body;
}

static void on_heartbeat_done(void *arg, const struct http_response *resp)
{
        struct heartbeat *h = arg;
        h->call = NULL;
        if (resp->transport_error == CA_HTTP_CANCELLED)
                return;
        if (resp->status)
                heartbeat_server_answered(h);
        if (h->env->phase == AGENT_FAREWELL) {
                if (resp->status != 200)
                        log_warning("the DISCONNECTED heartbeat was not accepted: %s",
                                    resp->status ? "server error" : resp->error);
                h->ops->farewell_done(h->ctx);
                return;
        }
        if (resp->status != 200) {
                char why[256];
                if (resp->status)
                        snprintf(why, sizeof(why), "heartbeat answered HTTP %ld", resp->status);
                else
                        snprintf(why, sizeof(why), "heartbeat failed: %s", resp->error);
                pipeline_server_failed(h->env, why);
                return;
        }
        pipeline_server_ok(h->env);
        h->last_ok_ms = time_mono_ms();
        json_t *root = NULL;
        struct ca_error err = {0};
        if (resp->body_len &&
            order_json_load(resp->body, resp->body_len, "heartbeat answer", &root, &err) < 0)
                log_debug("%s", err.msg); /* only LatestVersion is read from it */
        const char *latest = json_string_value(json_object_get(root, "LatestVersion"));
        if (latest && strcmp(latest, CA_VERSION) != 0 &&
            strncmp(h->latest_version_seen, latest, sizeof(h->latest_version_seen) - 1) != 0) {
                log_notice("a newer agent version is available: %.60s (this is %s)", latest,
                           CA_VERSION);
                snprintf(h->latest_version_seen, sizeof(h->latest_version_seen), "%s", latest);
        }
        json_decref(root);
}

static void on_silence(evutil_socket_t fd, short what, void *arg)
{
        struct heartbeat *h = arg;
        (void)fd;
        (void)what;
        if (!h->call || h->server_silent)
                return;
        h->server_silent = 1;
        log_warning("the server at %s has not answered a heartbeat for %llu ms: it may hang; "
                    "not ready until it answers",
                    h->env->cfg->server.url, (unsigned long long)h->silence_ms);
        pipeline_status_changed(h->env);
}

static void watch_silence(struct heartbeat *h)
{
        uint64_t iv = h->env->cfg->agent.heartbeat_interval_ms;
        uint64_t ms = iv && iv < HEARTBEAT_SILENCE_MS ? iv : HEARTBEAT_SILENCE_MS;
        if (!h->call)
                return;
        /* Measured from the first unanswered heartbeat: the next ones replace it. */
        if (evtimer_pending(h->silence, NULL))
                return;
        h->silence_ms = ms;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
        evtimer_add(h->silence, &tv);
}

void heartbeat_server_answered(struct heartbeat *h)
{
        if (!h)
                return;
        evtimer_del(h->silence);
        if (h->server_silent) {
                h->server_silent = 0;
                log_notice("the server at %s answers again", h->env->cfg->server.url);
                pipeline_status_changed(h->env);
        }
}

static void send_heartbeat(struct heartbeat *h, const char *status)
{
        char path[HEARTBEAT_PATH_MAX];
        char *id = http_escape(h->env->cfg->agent.identifier);
        char *body = heartbeat_body(h, status);
        if (h->call)
                api_cancel(h->call);
        int rc = -ENOMEM;
        if (id && body) {
                snprintf(path, sizeof(path), "/api/Connectors/Agent/%s", id);
                rc = api_call(h->env->api, "PUT", path, body, on_heartbeat_done, h, &h->call);
        }
        if (rc == 0 && h->env->phase != AGENT_FAREWELL)
                watch_silence(h);
        free(id);
        free(body);
        if (rc < 0 && h->env->phase == AGENT_FAREWELL) {
                h->ops->farewell_done(h->ctx);
        }
}

static void on_heartbeat_timer(evutil_socket_t fd, short what, void *arg)
{
        struct heartbeat *h = arg;
        if (h->env->phase != AGENT_RUNNING && h->env->phase != AGENT_DRAINING)
                return;
        if (!h->ops->last_connected(h->ctx) && !h->first_waited) {
                /* LastConnected would say null although the first exchange is a moment
                 * away: wait for it (heartbeat_server_ok), an interval at most. */
                h->first_waited = 1;
                arm(h);
                return;
        }
        h->first_waited = 1;
        h->first_sent = 1;
        send_heartbeat(h, "CONNECTED");
        arm(h);
}

void heartbeat_start(struct heartbeat *h, int wait_first)
{
        if (!h)
                return;
        h->first_waited = !wait_first;
        struct timeval now = {0, 0};
        evtimer_add(h->timer, &now);
}

void heartbeat_server_ok(struct heartbeat *h)
{
        if (!h)
                return;
        /* The first heartbeat waited for this: send it now, with LastConnected. */
        if (h->first_waited && !h->first_sent &&
            (h->env->phase == AGENT_RUNNING || h->env->phase == AGENT_DRAINING)) {
                struct timeval now = {0, 0};
                evtimer_add(h->timer, &now);
        }
}

void heartbeat_send_farewell(struct heartbeat *h)
{
        if (!h)
                return;
        evtimer_del(h->timer);
        send_heartbeat(h, "DISCONNECTED");
}

void heartbeat_stop(struct heartbeat *h)
{
        if (!h)
                return;
        evtimer_del(h->silence);
        evtimer_del(h->timer);
        if (h->call)
                api_cancel(h->call);
        h->call = NULL;
}

int heartbeat_new(struct pipeline_env *env, const char *hostname, int64_t started_at,
                  const struct heartbeat_ops *ops, void *ctx, struct heartbeat **out,
                  struct ca_error *err)
{
        *out = NULL;
        struct heartbeat *h = calloc(1, sizeof(*h));
        if (!h)
                return ca_error_set(err, -ENOMEM, "heartbeat: out of memory");
        h->env = env;
        h->ops = ops;
        h->ctx = ctx;
        snprintf(h->hostname, sizeof(h->hostname), "%s", hostname ? hostname : "unknown");
        h->started_at = started_at;
        h->timer = evtimer_new(env->base, on_heartbeat_timer, h);
        h->silence = evtimer_new(env->base, on_silence, h);
        if (!h->timer || !h->silence) {
                heartbeat_free(h);
                return ca_error_set(err, -ENOMEM, "heartbeat: out of memory");
        }
        *out = h;
        return 0;
}

void heartbeat_free(struct heartbeat *h)
{
        if (!h)
                return;
        if (h->call)
                api_cancel(h->call);
        if (h->timer)
                event_free(h->timer);
        if (h->silence)
                event_free(h->silence);
        free(h);
}

int heartbeat_server_silent(const struct heartbeat *h)
{
        return h && h->server_silent;
}

uint64_t heartbeat_last_ok_ms(const struct heartbeat *h)
{
        return h ? h->last_ok_ms : 0;
}
