/* SPDX-License-Identifier: Apache-2.0 */
#include "order.h"
#include "order_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first problem found in an order: the one an operator reads in the Errored result.
 * Later problems are not collected, since fixing the first usually shows the rest. */
struct order_check {
        bool set;
        char msg[CA_ERROR_MAX];
};

static void problem(struct order_check *chk, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void problem(struct order_check *chk, const char *fmt, ...)
{
        if (chk->set)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(chk->msg, sizeof(chk->msg), fmt, ap);
        va_end(ap);
        chk->set = true;
}

/* A JSON string usable as a C string: jansson refuses "\u0000" when parsing, but an
 * order handed in by other code could still carry one. */
static bool string_ok(const json_t *v)
{
        return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

static bool absent(const json_t *v)
{
        return !v || json_is_null(v);
}

/* Reads obj[name] as an optional text field. Absent or null leaves *out NULL. With
 * allow_int an integer is accepted and written in decimal into num (servers send some
 * ids as numbers). Anything else is recorded as a problem named by path. */
static void field_text(json_t *obj, const char *path, const char *name, bool allow_int,
                       char num[32], const char **out, struct order_check *chk)
{
        json_t *v = json_object_get(obj, name);
        *out = NULL;
        if (absent(v))
                return;
        if (string_ok(v)) {
                *out = json_string_value(v);
                return;
        }
        if (allow_int && json_is_integer(v)) {
                snprintf(num, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                *out = num;
                return;
        }
        if (json_is_string(v))
                problem(chk, "%s: contains a NUL character", path);
        else
                problem(chk, "%s: expected a string%s, got %s", path,
                        allow_int ? " or an integer" : "", order_json_kind(v));
}

/* Reads obj[name] as an optional object; anything else is a problem. */
static json_t *field_object(json_t *obj, const char *path, const char *name,
                            struct order_check *chk)
{
        json_t *v = json_object_get(obj, name);
        if (absent(v))
                return NULL;
        if (!json_is_object(v)) {
                problem(chk, "%s: expected an object, got %s", path, order_json_kind(v));
                return NULL;
        }
        return v;
}

static void quote_key(char *dst, size_t size, const char *key)
{
        order_text_quote(dst, size, key, strlen(key));
}

static void check_changes(json_t *changes, struct order_check *chk)
{
        const char *key;
        json_t *v;
        json_object_foreach(changes, key, v)
        {
                char q[CA_QUOTE_BUF];
                if (json_is_null(v) || string_ok(v))
                        continue;
                quote_key(q, sizeof(q), key);
                if (!json_is_array(v)) {
                        problem(
                            chk,
                            "Changes.%s: expected a string, null or an array of strings, got %s", q,
                            order_json_kind(v));
                        return;
                }
                size_t i;
                json_t *item;
                json_array_foreach(v, i, item)
                {
                        if (!string_ok(item)) {
                                problem(chk, "Changes.%s[%zu]: expected a string, got %s", q, i,
                                        json_is_string(item) ? "a string with a NUL character"
                                                             : order_json_kind(item));
                                return;
                        }
                }
        }
}

static void check_arguments(json_t *arguments, struct order_check *chk)
{
        const char *key;
        json_t *v;
        json_object_foreach(arguments, key, v)
        {
                if (string_ok(v))
                        continue;
                char q[CA_QUOTE_BUF];
                quote_key(q, sizeof(q), key);
                problem(chk, "Arguments.%s: expected a string, got %s", q,
                        json_is_string(v) ? "a string with a NUL character" : order_json_kind(v));
                return;
        }
}

static bool printable_ascii(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
                        return false;
        return true;
}

const char *change_type_name(enum ca_change_type t)
{
        switch (t) {
        case CA_CHANGE_ADDED:
                return "Added";
        case CA_CHANGE_MODIFIED:
                return "Modified";
        case CA_CHANGE_DELETED:
                return "Deleted";
        case CA_CHANGE_UNKNOWN:
        default:
                return "Unknown";
        }
}

static enum ca_change_type change_type_parse(const char *s)
{
        for (int t = CA_CHANGE_ADDED; t <= CA_CHANGE_DELETED; t++)
                if (strcmp(s, change_type_name((enum ca_change_type)t)) == 0)
                        return (enum ca_change_type)t;
        return CA_CHANGE_UNKNOWN;
}

static int dup_opt(const char *s, char **out)
{
        *out = NULL;
        if (!s)
                return 0;
        *out = strdup(s);
        return *out ? 0 : -ENOMEM;
}

void order_free(struct ca_order *order)
{
        if (!order)
                return;
        free(order->id);
        free(order->assignment_id);
        free(order->change_text);
        free(order->workflow_instance_id);
        free(order->owner_id);
        free(order->owner_type);
        free(order->resource_type);
        free(order->invalid);
        free(order->json_text);
        json_decref(order->json);
        free(order);
}

const char *order_json_text(struct ca_order *order)
{
        if (!order->json_text && order->json)
                order->json_text = json_dumps(order->json, JSON_COMPACT | JSON_ENCODE_ANY);
        return order->json_text;
}

void order_drop_json_text(struct ca_order *order)
{
        free(order->json_text);
        order->json_text = NULL;
}

int order_from_json(json_t *obj, struct ca_order **out, struct ca_error *err)
{
        int ret = -ENOMEM;
        struct ca_order *o = NULL;
        struct order_check chk = {0};
        char q[CA_QUOTE_BUF];

        *out = NULL;
        if (!json_is_object(obj))
                return ca_error_set(err, -EBADMSG, "order: expected an object, got %s",
                                    order_json_kind(obj));
        o = calloc(1, sizeof(*o));
        if (!o)
                goto fail;
        o->json = json_incref(obj);

        /* Identity first: an order that cannot be identified cannot be answered. */
        const char *id = NULL;
        json_t *v = json_object_get(obj, "Id");
        if (!absent(v)) {
                size_t n = json_is_string(v) ? json_string_length(v) : 0;
                const char *s = json_is_string(v) ? json_string_value(v) : NULL;
                if (!s)
                        problem(&chk, "Id: expected a string, got %s", order_json_kind(v));
                else if (n > CA_ORDER_KEY_MAX)
                        problem(&chk, "Id: longer than %d characters", CA_ORDER_KEY_MAX);
                else if (!printable_ascii(s, n)) {
                        order_text_quote(q, sizeof(q), s, n);
                        problem(&chk, "Id: \"%s\" has characters other than printable ASCII", q);
                } else if (n > 0) /* "" is taken as no Id: there is nothing to echo */
                        id = s;
        }

        /* An integer AssignedResourceTypeId still identifies the order well enough to answer
         * it (Errored), so it is kept in decimal for the key and the AssignmentId. */
        char assign_num[32];
        const char *assign = NULL;
        v = json_object_get(obj, "AssignedResourceTypeId");
        if (absent(v)) {
                problem(&chk, "AssignedResourceTypeId: required");
        } else if (json_is_integer(v)) {
                snprintf(assign_num, sizeof(assign_num), "%" JSON_INTEGER_FORMAT,
                         json_integer_value(v));
                assign = assign_num;
                problem(&chk, "AssignedResourceTypeId: expected a string, got an integer");
        } else if (!string_ok(v)) {
                problem(&chk, "AssignedResourceTypeId: expected a string, got %s",
                        json_is_string(v) ? "a string with a NUL character" : order_json_kind(v));
        } else if (json_string_length(v) == 0) {
                problem(&chk, "AssignedResourceTypeId: empty");
        } else {
                assign = json_string_value(v);
        }
        if (!id && !assign) {
                ret = ca_error_set(err, -EBADMSG, "order cannot be identified: %s", chk.msg);
                goto fail;
        }

        const char *change_text = "";
        v = json_object_get(obj, "ChangeType");
        if (absent(v)) {
                problem(&chk, "ChangeType: required");
        } else if (!string_ok(v)) {
                problem(&chk, "ChangeType: expected a string, got %s",
                        json_is_string(v) ? "a string with a NUL character" : order_json_kind(v));
        } else {
                change_text = json_string_value(v);
                o->change = change_type_parse(change_text);
                if (o->change == CA_CHANGE_UNKNOWN) {
                        order_text_quote(q, sizeof(q), change_text, json_string_length(v));
                        problem(&chk, "unknown ChangeType \"%s\"", q);
                }
        }

        char unused[32];
        const char *workflow = NULL;
        field_text(obj, "WorkflowInstanceId", "WorkflowInstanceId", false, unused, &workflow, &chk);

        char owner_num[32];
        const char *owner_id = NULL;
        json_t *owner = field_object(obj, "Owner", "Owner", &chk);
        if (owner)
                field_text(owner, "Owner.Id", "Id", true, owner_num, &owner_id, &chk);

        char type_num[32];
        const char *owner_type = NULL, *resource_type = NULL, *type_id = NULL;
        json_t *rtype = field_object(obj, "ResourceType", "ResourceType", &chk);
        if (rtype) {
                field_text(rtype, "ResourceType.Id", "Id", true, unused, &type_id, &chk);
                field_text(rtype, "ResourceType.Identifier", "Identifier", false, unused,
                           &resource_type, &chk);
                json_t *source =
                    field_object(rtype, "ResourceType.SourceEntityType", "SourceEntityType", &chk);
                if (source)
                        field_text(source, "ResourceType.SourceEntityType.Id", "Id", true, type_num,
                                   &owner_type, &chk);
        }

        o->changes = field_object(obj, "Changes", "Changes", &chk);
        if (o->changes)
                check_changes(o->changes, &chk);
        o->resource = field_object(obj, "Resource", "Resource", &chk);
        o->arguments = field_object(obj, "Arguments", "Arguments", &chk);
        if (o->arguments)
                check_arguments(o->arguments, &chk);

        if (id) {
                snprintf(o->key, sizeof(o->key), "%s", id);
        } else {
                /* The raw Changes value, whatever its type, so that two different invalid
                 * orders do not share a key for want of a valid Changes. */
                json_t *changes = json_object_get(obj, "Changes");
                char key[65];
                ret = order_compute_key(assign, change_text, workflow,
                                        json_is_null(changes) ? NULL : changes, key);
                if (ret < 0) {
                        ca_error_set(err, ret, "order: cannot compute its key");
                        goto fail;
                }
                memcpy(o->key, key, sizeof(key));
        }

        ret = -ENOMEM;
        if (dup_opt(id, &o->id) < 0 || dup_opt(assign ? assign : "", &o->assignment_id) < 0 ||
            dup_opt(change_text, &o->change_text) < 0 ||
            dup_opt(workflow, &o->workflow_instance_id) < 0 ||
            dup_opt(owner_id, &o->owner_id) < 0 || dup_opt(owner_type, &o->owner_type) < 0 ||
            dup_opt(resource_type, &o->resource_type) < 0 ||
            dup_opt(chk.set ? chk.msg : NULL, &o->invalid) < 0)
                goto fail;
        *out = o;
        return 0;
fail:
        if (ret == -ENOMEM)
                ca_error_set(err, ret, "order: out of memory");
        order_free(o);
        return ret;
}

void order_page_clear(struct ca_order_page *page)
{
        if (!page)
                return;
        for (size_t i = 0; i < page->count; i++)
                order_free(page->orders[i]);
        free(page->orders);
        free(page->continuation_token);
        memset(page, 0, sizeof(*page));
}

/* --- each order's text as a slice of the page ---
 *
 * The journal and the programs want each order as JSON text. Dumping the tree of every
 * order again cost more than a tenth of the pipeline's CPU; the page's own bytes already
 * hold that text. The page is valid JSON by the time these run (jansson accepted it,
 * duplicate keys refused), so a scan that honours strings and counts brackets finds each
 * element of ProvisioningOrdersList. The text kept is the slice without the whitespace
 * between tokens: the same JSON value as the dump (escapes and numbers as the server
 * wrote them). Anything unexpected (a NUL byte, which jansson skips; a list the scan does
 * not find as written) leaves the orders without a slice, and order_json_text dumps the
 * tree as before. */

static size_t skip_ws(const char *p, size_t n, size_t i)
{
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
                i++;
        return i;
}

/* p[i] is '"': the index after the closing quote. */
static size_t skip_string(const char *p, size_t n, size_t i)
{
        for (i++; i < n; i++) {
                if (p[i] == '\\')
                        i++;
                else if (p[i] == '"')
                        return i + 1;
        }
        return n;
}

/* The index after the value starting at p[i]. */
static size_t skip_value(const char *p, size_t n, size_t i)
{
        if (i >= n)
                return n;
        if (p[i] == '"')
                return skip_string(p, n, i);
        if (p[i] != '{' && p[i] != '[') {
                while (i < n && p[i] != ',' && p[i] != ']' && p[i] != '}' && p[i] != ' ' &&
                       p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
                        i++;
                return i;
        }
        size_t depth = 0;
        while (i < n) {
                char c = p[i];
                if (c == '"') {
                        i = skip_string(p, n, i);
                        continue;
                }
                if (c == '{' || c == '[')
                        depth++;
                else if ((c == '}' || c == ']') && --depth == 0)
                        return i + 1;
                i++;
        }
        return n;
}

/* Where the value of top-level key (klen bytes, matched as written: no escapes) of the
 * object in p starts; n when absent. */
static size_t find_member(const char *p, size_t n, const char *key, size_t klen)
{
        size_t i = skip_ws(p, n, 0);
        if (i >= n || p[i] != '{')
                return n;
        i = skip_ws(p, n, i + 1);
        while (i < n && p[i] == '"') {
                size_t k = i;
                i = skip_string(p, n, i);
                int match = i - k == klen + 2 && memcmp(p + k + 1, key, klen) == 0;
                i = skip_ws(p, n, i);
                if (i >= n || p[i] != ':')
                        return n;
                i = skip_ws(p, n, i + 1);
                if (match)
                        return i;
                i = skip_ws(p, n, skip_value(p, n, i));
                if (i < n && p[i] == ',')
                        i = skip_ws(p, n, i + 1);
        }
        return n;
}

/* The slice without whitespace between tokens, as a string. */
static char *compact_copy(const char *p, size_t len)
{
        char *out = malloc(len + 1);
        size_t o = 0;
        if (!out)
                return NULL;
        for (size_t i = 0; i < len;) {
                char c = p[i];
                if (c == '"') {
                        size_t end = skip_string(p, len, i);
                        memcpy(out + o, p + i, end - i);
                        o += end - i;
                        i = end;
                        continue;
                }
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
                        out[o++] = c;
                i++;
        }
        out[o] = '\0';
        return out;
}

/* Fills starts/ends with the elements of the list; returns how many (up to max), or
 * (size_t)-1 when the text is not as expected. */
static size_t list_slices(const char *p, size_t n, size_t *starts, size_t *ends, size_t max)
{
        static const char list[] = "ProvisioningOrdersList";
        size_t i = find_member(p, n, list, sizeof(list) - 1);
        size_t count = 0;
        if (i >= n || p[i] != '[')
                return (size_t)-1;
        i = skip_ws(p, n, i + 1);
        if (i < n && p[i] == ']')
                return 0;
        while (i < n && count < max) {
                starts[count] = i;
                i = skip_value(p, n, i);
                ends[count++] = i;
                i = skip_ws(p, n, i);
                if (i < n && p[i] == ']')
                        return count;
                if (i >= n || p[i] != ',')
                        return (size_t)-1;
                i = skip_ws(p, n, i + 1);
        }
        return (size_t)-1;
}

int order_page_parse(const char *body, size_t len, struct ca_order_page *page, struct ca_error *err)
{
        static const char what[] = "ProvisioningData";
        int ret;
        json_t *root = NULL;

        memset(page, 0, sizeof(*page));
        if (!body || order_json_blank(body, len))
                return 0;
        ret = order_json_load(body, len, what, &root, err);
        if (ret < 0)
                goto out;
        ret = -EBADMSG;
        if (!json_is_object(root)) {
                ca_error_set(err, ret, "%s: expected an object, got %s", what,
                             order_json_kind(root));
                goto out;
        }
        json_t *list = json_object_get(root, "ProvisioningOrdersList");
        if (!absent(list) && !json_is_array(list)) {
                ca_error_set(err, ret, "%s: ProvisioningOrdersList: expected an array, got %s",
                             what, order_json_kind(list));
                goto out;
        }
        json_t *token = json_object_get(root, "ContinuationToken");
        if (!absent(token) && !string_ok(token)) {
                ca_error_set(err, ret, "%s: ContinuationToken: expected a string or null, got %s",
                             what,
                             json_is_string(token) ? "a string with a NUL character"
                                                   : order_json_kind(token));
                goto out;
        }
        ret = -ENOMEM;
        if (string_ok(token)) {
                page->continuation_token = strdup(json_string_value(token));
                if (!page->continuation_token) {
                        ca_error_set(err, ret, "%s: out of memory", what);
                        goto out;
                }
        }
        size_t n = json_array_size(list);
        if (n > 0) {
                page->orders = calloc(n, sizeof(*page->orders));
                if (!page->orders) {
                        ca_error_set(err, ret, "%s: out of memory", what);
                        goto out;
                }
        }
        size_t *starts = n ? malloc(2 * n * sizeof(*starts)) : NULL;
        size_t *ends = starts ? starts + n : NULL;
        /* jansson's reader skips NUL bytes (its buffer's end mark) where the scan would
         * not: such a page keeps the dumps. */
        int sliced =
            starts && !memchr(body, '\0', len) && list_slices(body, len, starts, ends, n) == n;
        for (size_t i = 0; i < n; i++) {
                struct ca_order *o;
                int r = order_from_json(json_array_get(list, i), &o, NULL);
                if (r == 0 && sliced) {
                        /* No slice (out of memory) only means a dump later. */
                        o->json_text = compact_copy(body + starts[i], ends[i] - starts[i]);
                }
                if (r == -ENOMEM) {
                        free(starts);
                        ca_error_set(err, r, "%s: out of memory", what);
                        goto out;
                }
                if (r < 0)
                        page->skipped++;
                else
                        page->orders[page->count++] = o;
        }
        free(starts);
        ret = 0;
out:
        json_decref(root);
        if (ret < 0)
                order_page_clear(page);
        return ret;
}

int order_text_member(const char *text, size_t len, const char *key, size_t *start, size_t *end)
{
        size_t i = find_member(text, len, key, strlen(key));
        if (i >= len)
                return 0;
        *start = i;
        *end = skip_value(text, len, i);
        return *end > i && *end <= len;
}
