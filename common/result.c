/* SPDX-License-Identifier: Apache-2.0 */
#include "order.h"
#include "order_internal.h"
#include "timeutil.h"
#include "utf8.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

const char *result_state_name(enum ca_result_state s)
{
        /* Anything but a clear success reads as a failure to the server. */
        return s == CA_RESULT_EXECUTED ? "Executed" : "Errored";
}

void result_free(struct ca_result *r)
{
        if (!r)
                return;
        free(r->order_key);
        free(r->id);
        free(r->assignment_id);
        free(r->message);
        free(r->change_type);
        free(r->owner_id);
        free(r->owner_type);
        free(r->resource_identifier);
        free(r);
}

static bool dup_into(char **dst, const char *s)
{
        if (!s)
                return true;
        *dst = strdup(s);
        return *dst != NULL;
}

struct ca_result *result_new(const struct ca_order *order, enum ca_result_state state,
                             const char *message, const char *resource_identifier,
                             int64_t executed_at)
{
        if (!order)
                return NULL;
        struct ca_result *r = calloc(1, sizeof(*r));
        if (!r)
                return NULL;
        r->state = state;
        r->executed_at = executed_at;
        const char *change =
            order->change_text ? order->change_text : change_type_name(order->change);
        if (!dup_into(&r->order_key, order->key) || !dup_into(&r->id, order->id) ||
            !dup_into(&r->assignment_id, order->assignment_id ? order->assignment_id : "") ||
            !dup_into(&r->change_type, change) || !dup_into(&r->owner_id, order->owner_id) ||
            !dup_into(&r->owner_type, order->owner_type))
                goto fail;
        r->message = utf8_dup(message ? message : "", CA_RESULT_MESSAGE_MAX);
        if (!r->message)
                goto fail;
        if (resource_identifier) {
                r->resource_identifier = utf8_dup(resource_identifier, CA_RESULT_MESSAGE_MAX);
                if (!r->resource_identifier)
                        goto fail;
        }
        return r;
fail:
        result_free(r);
        return NULL;
}

/* --- the results body, written straight into one buffer ---
 *
 * The bytes are those json_dumps(JSON_COMPACT) gave for the same tree of objects (the
 * keys in insertion order, jansson's escapes), without building the tree: one buffer,
 * grown by doubling. */

struct body {
        char *p;
        size_t len, cap;
        bool failed;
};

static void body_grow(struct body *b, size_t more)
{
        if (b->failed || b->len + more < b->cap)
                return;
        size_t cap = b->cap ? b->cap : 1024;
        while (cap <= b->len + more)
                cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
                b->failed = true;
                return;
        }
        b->p = p;
        b->cap = cap;
}

static void body_add(struct body *b, const char *s, size_t n)
{
        body_grow(b, n);
        if (b->failed)
                return;
        memcpy(b->p + b->len, s, n);
        b->len += n;
}

#define BODY_LIT(b, lit) body_add((b), (lit), sizeof(lit) - 1)

/* A JSON string as jansson writes it without flags: '"' and '\\' escaped, control
 * characters as \b \f \n \r \t or \u00XX, everything else as is. */
static void body_escaped(struct body *b, const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        const char *run = s;
        BODY_LIT(b, "\"");
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (c >= 0x20 && c != '"' && c != '\\')
                        continue;
                body_add(b, run, (size_t)(s - run));
                run = s + 1;
                switch (c) {
                case '"':
                        BODY_LIT(b, "\\\"");
                        break;
                case '\\':
                        BODY_LIT(b, "\\\\");
                        break;
                case '\b':
                        BODY_LIT(b, "\\b");
                        break;
                case '\f':
                        BODY_LIT(b, "\\f");
                        break;
                case '\n':
                        BODY_LIT(b, "\\n");
                        break;
                case '\r':
                        BODY_LIT(b, "\\r");
                        break;
                case '\t':
                        BODY_LIT(b, "\\t");
                        break;
                default: {
                        char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
                        body_add(b, u, sizeof(u));
                }
                }
        }
        body_add(b, run, (size_t)(s - run));
        BODY_LIT(b, "\"");
}

/* Writes ,"key":"s" (no comma first when first). A result may come from elsewhere than
 * result_new (the journal restores them), so text that is not valid UTF-8 is repaired
 * rather than dropping the whole body. */
static void body_field(struct body *b, bool first, const char *key, const char *s)
{
        if (!first)
                BODY_LIT(b, ",");
        body_escaped(b, key);
        BODY_LIT(b, ":");
        if (utf8_valid(s)) {
                body_escaped(b, s);
                return;
        }
        char *fixed = utf8_dup(s, strlen(s) * 3 + 3);
        if (!fixed || !utf8_valid(fixed)) {
                b->failed = true;
                free(fixed);
                return;
        }
        body_escaped(b, fixed);
        free(fixed);
}

static void body_result(struct body *b, const struct ca_result *r)
{
        char when[32];
        time_iso8601(r->executed_at, when, sizeof(when));
        BODY_LIT(b, "{");
        bool first = true;
        if (r->id) {
                body_field(b, true, "Id", r->id);
                first = false;
        }
        body_field(b, first, "AssignmentId", r->assignment_id ? r->assignment_id : "");
        body_field(b, false, "ProvisioningState", result_state_name(r->state));
        body_field(b, false, "Message", r->message ? r->message : "");
        body_field(b, false, "ChangeType", r->change_type ? r->change_type : "");
        if (r->owner_id)
                body_field(b, false, "OwnerId", r->owner_id);
        if (r->owner_type)
                body_field(b, false, "OwnerType", r->owner_type);
        if (r->resource_identifier)
                body_field(b, false, "ResourceIdentifier", r->resource_identifier);
        body_field(b, false, "ExecutedAt", when);
        BODY_LIT(b, "}");
}

char *results_body(const char *connector_id, const char *agent_identifier,
                   struct ca_result *const *results, size_t count)
{
        struct body b = {0};
        /* About 250 bytes a result: one allocation for a typical batch. */
        body_grow(&b, 128 + count * 256);
        BODY_LIT(&b, "{");
        body_field(&b, true, "ConnectorId", connector_id ? connector_id : "");
        body_field(&b, false, "AgentIdentifier", agent_identifier ? agent_identifier : "");
        BODY_LIT(&b, ",\"ProvisioningResults\":[");
        for (size_t i = 0; i < count; i++) {
                if (i)
                        BODY_LIT(&b, ",");
                body_result(&b, results[i]);
        }
        BODY_LIT(&b, "]}");
        body_add(&b, "", 1);
        if (b.failed) {
                free(b.p);
                return NULL;
        }
        return b.p;
}

static int ack_count(json_t *root, const char *name, long *out, struct ca_error *err)
{
        json_t *v = json_object_get(root, name);
        if (!v)
                return ca_error_set(err, -EBADMSG, "ProvisioningResults answer: %s: missing", name);
        if (!json_is_integer(v))
                return ca_error_set(err, -EBADMSG,
                                    "ProvisioningResults answer: %s: expected an integer, got %s",
                                    name, order_json_kind(v));
        json_int_t n = json_integer_value(v);
        if (n < 0 || n > (json_int_t)LONG_MAX)
                return ca_error_set(err, -EBADMSG,
                                    "ProvisioningResults answer: %s: %" JSON_INTEGER_FORMAT
                                    " is out of range",
                                    name, n);
        *out = (long)n;
        return 0;
}

int results_ack_parse(const char *body, size_t len, long *received, long *duplicates,
                      struct ca_error *err)
{
        static const char what[] = "ProvisioningResults answer";
        json_t *root = NULL;
        long rec = 0, dup = 0;
        int ret = order_json_load(body, body ? len : 0, what, &root, err);
        if (ret < 0)
                goto out;
        if (!json_is_object(root)) {
                ret = ca_error_set(err, -EBADMSG, "%s: expected an object, got %s", what,
                                   order_json_kind(root));
                goto out;
        }
        ret = ack_count(root, "Received", &rec, err);
        if (ret < 0)
                goto out;
        ret = ack_count(root, "Duplicates", &dup, err);
        if (ret < 0)
                goto out;
        *received = rec;
        *duplicates = dup;
out:
        json_decref(root);
        return ret;
}
