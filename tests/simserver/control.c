/* SPDX-License-Identifier: Apache-2.0 */
/* control: the test-only interface under /_control/ (same listener, no auth, JSON).
 * Reads state, results, heartbeats and the request ring; adds or generates orders,
 * forces redelivery, queues faults, resets counters. A bad control request is the
 * test's mistake, answered 400 with its reason, never a protocol violation. */
#include "simserver.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static json_t *body_json(struct evhttp_request *req, struct ca_error *err)
{
        size_t len;
        json_error_t jerr;
        char *body = http_body_dup(req, &len);
        if (!body) {
                ca_error_set(err, -EINVAL, "expected a JSON object body");
                return NULL;
        }
        json_t *root = json_loadb(body, len, 0, &jerr);
        free(body);
        if (!json_is_object(root)) {
                json_decref(root);
                ca_error_set(err, -EINVAL, "expected a JSON object body%s%s", root ? "" : ": ",
                             root ? "" : jerr.text);
                return NULL;
        }
        return root;
}

static void reply_error(struct sim *s, struct evhttp_request *req, struct ca_error *err)
{
        int status = err->code == -ENOSPC ? 507 : err->code == -EEXIST ? 409 : 400;
        http_reply_json(s, req, status, json_pack("{s:s}", "error", err->msg));
}

static int post_orders(struct sim *s, json_t *b, struct ca_error *err)
{
        const char *conn = json_string_value(json_object_get(b, "connector"));
        if (!conn || !*conn)
                return ca_error_set(err, -EINVAL, "\"connector\" must be a non-empty string");
        return store_add_orders_json(s, conn, json_object_get(b, "orders"), err);
}

static int post_generate(struct sim *s, json_t *b, struct ca_error *err)
{
        const char *conn = json_string_value(json_object_get(b, "connector"));
        json_t *count = json_object_get(b, "count");
        json_t *rt = json_object_get(b, "resource_type");
        json_t *ids = json_object_get(b, "ids");
        if (!conn || !*conn)
                return ca_error_set(err, -EINVAL, "\"connector\" must be a non-empty string");
        if (!json_is_integer(count))
                return ca_error_set(err, -EINVAL, "\"count\" must be an integer");
        if (rt && !json_is_string(rt))
                return ca_error_set(err, -EINVAL, "\"resource_type\" must be a string");
        return generate_orders(s, conn, (long)json_integer_value(count),
                               rt ? json_string_value(rt) : "User", ids ? json_is_true(ids) : 1,
                               err);
}

static int post_redeliver(struct sim *s, json_t *b, struct ca_error *err)
{
        const char *conn = json_string_value(json_object_get(b, "connector"));
        struct sim_connector *c = conn ? store_connector(s, conn, 0) : NULL;
        if (!c)
                return ca_error_set(err, -EINVAL, "unknown connector");
        store_redeliver(s, c);
        return 0;
}

void control_handle(struct sim *s, struct evhttp_request *req, const char *path)
{
        struct ca_error err = {0};
        const char *what = path + strlen("/_control/");
        enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
        if (cmd == EVHTTP_REQ_GET) {
                if (strcmp(what, "state") == 0)
                        http_reply_json(s, req, 200, store_state_json(s));
                else if (strcmp(what, "counts") == 0)
                        http_reply_json(s, req, 200, store_counts_json(s));
                else if (strcmp(what, "timings") == 0)
                        http_reply_json(s, req, 200, store_timings_json(s));
                else if (strcmp(what, "results") == 0)
                        http_reply_json(s, req, 200, json_pack("{s:O}", "results", s->results));
                else if (strcmp(what, "heartbeats") == 0)
                        http_reply_json(s, req, 200,
                                        json_pack("{s:O}", "heartbeats", s->heartbeats));
                else if (strcmp(what, "requests") == 0)
                        http_reply_json(s, req, 200, store_requests_json(s));
                else
                        http_reply_json(s, req, 404,
                                        json_pack("{s:s}", "error", "no such control"));
                return;
        }
        if (cmd != EVHTTP_REQ_POST) {
                http_reply_json(s, req, 405, json_pack("{s:s}", "error", "GET or POST"));
                return;
        }
        if (strcmp(what, "reset") == 0) {
                faults_clear(s);
                store_reset_counters(s);
                http_reply_json(s, req, 200, json_pack("{s:b}", "ok", 1));
                return;
        }
        json_t *b = body_json(req, &err);
        int rc = b ? 0 : -EINVAL;
        if (rc == 0) {
                if (strcmp(what, "orders") == 0)
                        rc = post_orders(s, b, &err);
                else if (strcmp(what, "generate") == 0)
                        rc = post_generate(s, b, &err);
                else if (strcmp(what, "redeliver") == 0)
                        rc = post_redeliver(s, b, &err);
                else if (strcmp(what, "fault") == 0)
                        rc = faults_add(s, b, &err);
                else
                        rc = ca_error_set(&err, -EINVAL, "no such control: %s", what);
        }
        json_decref(b);
        if (rc < 0)
                reply_error(s, req, &err);
        else
                http_reply_json(s, req, 200, json_pack("{s:b}", "ok", 1));
}
