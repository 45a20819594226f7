#include "order.h"
#include "order_internal.h"
#include "timeutil.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The length of the valid UTF-8 sequence at p (1..4), or 0 when the bytes there are not
 * one. Refuses what jansson refuses: overlong forms, surrogates, code points above
 * U+10FFFF. p is NUL-terminated, and NUL is never a continuation byte, so reading stops
 * at the end. */
static size_t utf8_seq_len(const unsigned char *p)
{
        unsigned char c = p[0];
        if (c < 0x80)
                return 1;
#define CONT(b) ((b) >= 0x80 && (b) <= 0xbf)
        if (c >= 0xc2 && c <= 0xdf)
                return CONT(p[1]) ? 2 : 0;
        if (c >= 0xe0 && c <= 0xef) {
                unsigned char lo = c == 0xe0 ? 0xa0 : 0x80;
                unsigned char hi = c == 0xed ? 0x9f : 0xbf;
                return p[1] >= lo && p[1] <= hi && CONT(p[2]) ? 3 : 0;
        }
        if (c >= 0xf0 && c <= 0xf4) {
                unsigned char lo = c == 0xf0 ? 0x90 : 0x80;
                unsigned char hi = c == 0xf4 ? 0x8f : 0xbf;
                return p[1] >= lo && p[1] <= hi && CONT(p[2]) && CONT(p[3]) ? 4 : 0;
        }
#undef CONT
        return 0;
}

/* A copy of s that is valid UTF-8 (each byte that does not start a valid sequence
 * becomes U+FFFD) and at most cap bytes long (cap >= 3): when it would be longer it is
 * cut at a character boundary and ends with "...". Back-ends put targets' raw
 * diagnostics in messages, in whatever encoding the target uses. */
static char *utf8_dup_capped(const char *s, size_t cap)
{
        static const unsigned char replacement[3] = {0xef, 0xbf, 0xbd};
        char *out = malloc(cap + 1);
        if (!out)
                return NULL;
        const unsigned char *p = (const unsigned char *)s;
        size_t n = 0;
        size_t room_for_dots = (size_t)-1; /* where "..." goes if the text turns out too long */
        while (*p) {
                size_t adv = utf8_seq_len(p);
                const unsigned char *unit = adv ? p : replacement;
                size_t ul = adv ? adv : 3;
                if (room_for_dots == (size_t)-1 && n + ul > cap - 3)
                        room_for_dots = n;
                if (n + ul > cap) {
                        n = room_for_dots;
                        memcpy(out + n, "...", 3);
                        n += 3;
                        break;
                }
                memcpy(out + n, unit, ul);
                n += ul;
                p += adv ? adv : 1;
        }
        out[n] = '\0';
        return out;
}

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
        r->message = utf8_dup_capped(message ? message : "", CA_RESULT_MESSAGE_MAX);
        if (!r->message)
                goto fail;
        if (resource_identifier) {
                r->resource_identifier =
                    utf8_dup_capped(resource_identifier, CA_RESULT_MESSAGE_MAX);
                if (!r->resource_identifier)
                        goto fail;
        }
        return r;
fail:
        result_free(r);
        return NULL;
}

/* Sets obj[key] to s. A result may come from elsewhere than result_new (the journal
 * restores them), so text that is not valid UTF-8 is repaired rather than dropping the
 * whole body. Returns false on allocation failure. */
static bool set_text(json_t *obj, const char *key, const char *s)
{
        json_t *v = json_string(s);
        if (!v) {
                char *fixed = utf8_dup_capped(s, strlen(s) * 3 + 3);
                if (!fixed)
                        return false;
                v = json_string(fixed);
                free(fixed);
        }
        return v && json_object_set_new(obj, key, v) == 0;
}

static json_t *result_json(const struct ca_result *r)
{
        char when[32];
        json_t *e = json_object();
        if (!e)
                return NULL;
        time_iso8601(r->executed_at, when, sizeof(when));
        if ((r->id && !set_text(e, "Id", r->id)) ||
            !set_text(e, "AssignmentId", r->assignment_id ? r->assignment_id : "") ||
            !set_text(e, "ProvisioningState", result_state_name(r->state)) ||
            !set_text(e, "Message", r->message ? r->message : "") ||
            !set_text(e, "ChangeType", r->change_type ? r->change_type : "") ||
            (r->owner_id && !set_text(e, "OwnerId", r->owner_id)) ||
            (r->owner_type && !set_text(e, "OwnerType", r->owner_type)) ||
            (r->resource_identifier &&
             !set_text(e, "ResourceIdentifier", r->resource_identifier)) ||
            !set_text(e, "ExecutedAt", when)) {
                json_decref(e);
                return NULL;
        }
        return e;
}

char *results_body(const char *connector_id, const char *agent_identifier,
                   struct ca_result *const *results, size_t count)
{
        char *text = NULL;
        json_t *root = json_object();
        json_t *list = json_array();
        if (!root || !list)
                goto out;
        if (!set_text(root, "ConnectorId", connector_id ? connector_id : "") ||
            !set_text(root, "AgentIdentifier", agent_identifier ? agent_identifier : ""))
                goto out;
        for (size_t i = 0; i < count; i++) {
                json_t *e = result_json(results[i]);
                if (!e || json_array_append_new(list, e) < 0)
                        goto out;
        }
        if (json_object_set(root, "ProvisioningResults", list) < 0)
                goto out;
        text = json_dumps(root, JSON_COMPACT);
out:
        json_decref(list);
        json_decref(root);
        return text;
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
