/* SPDX-License-Identifier: Apache-2.0 */
/* backend_host: the struct ca_host that plug-ins read orders and settings through.
 *
 * The casts between the opaque plug-in types and the agent's structs live here only.
 * Nothing here keeps shared mutable state, so every accessor is safe to call from any
 * thread (on an order, from the one thread that holds it). */
#include "backend_loader.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "utf8.h"

static const struct ca_order *order_of(const struct ca_backend_order *o)
{
        return (const struct ca_order *)o;
}

static const struct ca_settings *settings_of(const struct ca_backend_settings *s)
{
        return (const struct ca_settings *)s;
}

/* --- settings --- */

static const char *host_setting(const struct ca_backend_settings *s, const char *key)
{
        if (!s || !key)
                return NULL;
        return config_setting(settings_of(s), key);
}

static size_t host_setting_count(const struct ca_backend_settings *s)
{
        return s ? settings_of(s)->count : 0;
}

static const char *host_setting_key(const struct ca_backend_settings *s, size_t i)
{
        if (!s || i >= settings_of(s)->count)
                return NULL;
        return settings_of(s)->items[i].key;
}

static int host_error(struct ca_backend_error *err, int code, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int host_setting_ms(const struct ca_backend_settings *s, const char *key, uint64_t def,
                           uint64_t *ms, struct ca_backend_error *err)
{
        const char *text = host_setting(s, key);
        if (!text) {
                *ms = def;
                return CA_BACKEND_OK;
        }
        if (config_parse_duration(text, ms) < 0)
                return host_error(err, CA_BACKEND_EINVALID, key,
                                  "%s = %s: not a duration (e.g. 30s, 250ms, 5m)", key, text);
        return CA_BACKEND_OK;
}

static char *host_secret(const struct ca_backend_settings *s, const char *key,
                         struct ca_backend_error *err)
{
        char file_key[256], cred_key[256], which;
        struct ca_error e = {0};
        char *out = NULL;

        snprintf(file_key, sizeof(file_key), "%s_file", key);
        snprintf(cred_key, sizeof(cred_key), "%s_credential", key);
        int rc = secret_read_named(host_setting(s, file_key), host_setting(s, cred_key),
                                   getenv("CREDENTIALS_DIRECTORY"), &out, &which, &e);
        if (rc == -ENOENT ||
            (rc == -EINVAL && host_setting(s, file_key) && host_setting(s, cred_key))) {
                host_error(err, CA_BACKEND_EINVALID, key, "%s: set %s%s %s %s", key,
                           rc == -ENOENT ? "" : "only one of ", file_key,
                           rc == -ENOENT ? "or" : "and", cred_key);
                return NULL;
        }
        if (rc < 0) {
                const char *name = which == 'f' ? file_key : cred_key;
                host_error(err, CA_BACKEND_EINVALID, name, "%s: %s", name, e.msg);
                return NULL;
        }
        return out;
}

static void host_secret_free(char *secret)
{
        secret_free(secret);
}

/* --- the order --- */

static const char *host_order_key(const struct ca_backend_order *o)
{
        return order_of(o)->key;
}

static const char *host_order_id(const struct ca_backend_order *o)
{
        return order_of(o)->id;
}

static const char *host_order_assignment_id(const struct ca_backend_order *o)
{
        return order_of(o)->assignment_id;
}

static enum ca_backend_change host_order_change(const struct ca_backend_order *o)
{
        switch (order_of(o)->change) {
        case CA_CHANGE_ADDED:
                return CA_BACKEND_CHANGE_ADDED;
        case CA_CHANGE_MODIFIED:
                return CA_BACKEND_CHANGE_MODIFIED;
        case CA_CHANGE_DELETED:
                return CA_BACKEND_CHANGE_DELETED;
        default:
                return CA_BACKEND_CHANGE_UNKNOWN;
        }
}

static const char *host_order_resource_type(const struct ca_backend_order *o)
{
        return order_of(o)->resource_type;
}

static const char *host_order_owner_id(const struct ca_backend_order *o)
{
        return order_of(o)->owner_id;
}

static const char *host_order_json(const struct ca_backend_order *o)
{
        /* The order is the worker's alone while the plug-in holds it (executor.h). */
        return order_json_text((struct ca_order *)order_of(o));
}

static json_t *changes_of(const struct ca_backend_order *o)
{
        json_t *c = order_of(o)->changes;
        return json_is_object(c) ? c : NULL;
}

static size_t host_change_count(const struct ca_backend_order *o)
{
        json_t *c = changes_of(o);
        return c ? json_object_size(c) : 0;
}

/* jansson keeps an object's keys in insertion order; index i walks that order. The
 * walk is linear, and Changes are small. */
static const char *host_change_key(const struct ca_backend_order *o, size_t i)
{
        json_t *c = changes_of(o);
        if (!c)
                return NULL;
        size_t n = 0;
        for (void *it = json_object_iter(c); it; it = json_object_iter_next(c, it), n++) {
                if (n == i)
                        return json_object_iter_key(it);
        }
        return NULL;
}

static json_t *change_value(const struct ca_backend_order *o, const char *key)
{
        json_t *c = changes_of(o);
        return c && key ? json_object_get(c, key) : NULL;
}

/* Values other than string, null and arrays (numbers, booleans, objects) are not part of
 * the protocol; the order parser refuses them, and here they read as absent. */
static enum ca_backend_value host_change_kind(const struct ca_backend_order *o, const char *key)
{
        json_t *v = change_value(o, key);
        if (!v)
                return CA_BACKEND_VALUE_ABSENT;
        if (json_is_null(v))
                return CA_BACKEND_VALUE_NULL;
        if (json_is_string(v))
                return CA_BACKEND_VALUE_STRING;
        if (json_is_array(v))
                return CA_BACKEND_VALUE_LIST;
        return CA_BACKEND_VALUE_ABSENT;
}

static const char *host_change_string(const struct ca_backend_order *o, const char *key)
{
        json_t *v = change_value(o, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

static size_t host_change_list_count(const struct ca_backend_order *o, const char *key)
{
        json_t *v = change_value(o, key);
        return json_is_array(v) ? json_array_size(v) : 0;
}

static const char *host_change_list_item(const struct ca_backend_order *o, const char *key,
                                         size_t i)
{
        json_t *v = change_value(o, key);
        json_t *item = json_is_array(v) ? json_array_get(v, i) : NULL;
        return json_is_string(item) ? json_string_value(item) : NULL;
}

static const char *object_string(json_t *obj, const char *key)
{
        if (!json_is_object(obj) || !key)
                return NULL;
        json_t *v = json_object_get(obj, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *host_resource_string(const struct ca_backend_order *o, const char *key)
{
        return object_string(order_of(o)->resource, key);
}

static const char *host_argument(const struct ca_backend_order *o, const char *key)
{
        return object_string(order_of(o)->arguments, key);
}

/* --- outcomes --- */

static void host_result_set(struct ca_backend_result *r, enum ca_backend_state state,
                            const char *resource_identifier, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void host_result_set(struct ca_backend_result *r, enum ca_backend_state state,
                            const char *resource_identifier, const char *fmt, ...)
{
        if (!r)
                return;
        r->set = 1;
        r->state = state == CA_BACKEND_EXECUTED ? CA_BACKEND_EXECUTED : CA_BACKEND_ERRORED;
        /* Both go into JSON for the server: valid UTF-8. A message may be cut on a
         * character boundary; an identifier cut short would name another object (or a
         * DN nobody can parse), so one that does not fit is not sent at all. */
        const char *id = resource_identifier ? resource_identifier : "";
        if (strlen(id) >= sizeof(r->resource_identifier)) {
                log_warning("a back-end named a resource identifier of %zu bytes, more than "
                            "the %zu a result carries: it is left out of the result",
                            strlen(id), sizeof(r->resource_identifier) - 1);
                id = "";
        }
        utf8_copy(r->resource_identifier, sizeof(r->resource_identifier), id);
        r->message[0] = '\0';
        if (fmt) {
                char line[BACKEND_MESSAGE_MAX];
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(line, sizeof(line), fmt, ap);
                va_end(ap);
                utf8_copy(r->message, sizeof(r->message), line);
        }
}

static int host_error(struct ca_backend_error *err, int code, const char *key, const char *fmt, ...)
{
        if (!err)
                return code;
        char line[BACKEND_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);

        err->code = code;
        size_t used = strnlen(err->message, sizeof(err->message));
        if (used > 0 && used < sizeof(err->message) - 1)
                err->message[used++] = '\n';
        if (used < sizeof(err->message) - 1)
                utf8_copy(err->message + used, sizeof(err->message) - used, line);
        if (key && !err->key[0])
                snprintf(err->key, sizeof(err->key), "%s", key);
        return code;
}

/* --- logging --- */

static void host_log(enum ca_backend_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void host_log(enum ca_backend_log_level level, const char *fmt, ...)
{
        enum ca_log_level l;
        switch (level) {
        case CA_BACKEND_LOG_ERR:
                l = CA_LOG_ERR;
                break;
        case CA_BACKEND_LOG_WARNING:
                l = CA_LOG_WARNING;
                break;
        case CA_BACKEND_LOG_INFO:
                l = CA_LOG_INFO;
                break;
        default:
                l = CA_LOG_DEBUG;
                break;
        }
        if (!log_level_enabled(l))
                return;
        char msg[BACKEND_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_ctx(l, NULL, NULL, "%s", msg);
}

/* --- files across runs --- */

/* Set once on the main thread before the plug-ins are loaded, read-only afterwards. */
static char state_dir[4096];

void backend_host_set_state_dir(const char *dir)
{
        snprintf(state_dir, sizeof(state_dir), "%s", dir ? dir : "");
}

static const char *host_state_dir(void)
{
        return state_dir[0] ? state_dir : NULL;
}

static const struct ca_host host = {
    .abi_version = CA_BACKEND_ABI_VERSION,
    .size = sizeof(struct ca_host),
    .setting = host_setting,
    .setting_count = host_setting_count,
    .setting_key = host_setting_key,
    .setting_ms = host_setting_ms,
    .secret = host_secret,
    .secret_free = host_secret_free,
    .order_key = host_order_key,
    .order_id = host_order_id,
    .order_assignment_id = host_order_assignment_id,
    .order_change = host_order_change,
    .order_resource_type = host_order_resource_type,
    .order_owner_id = host_order_owner_id,
    .order_json = host_order_json,
    .change_count = host_change_count,
    .change_key = host_change_key,
    .change_kind = host_change_kind,
    .change_string = host_change_string,
    .change_list_count = host_change_list_count,
    .change_list_item = host_change_list_item,
    .resource_string = host_resource_string,
    .argument = host_argument,
    .result_set = host_result_set,
    .error = host_error,
    .log = host_log,
    .state_dir = host_state_dir,
};

const struct ca_host *backend_host(void)
{
        return &host;
}

struct ca_result *backend_result_to_result(const struct ca_order *order,
                                           const struct ca_backend_result *r, int64_t now_s)
{
        if (!r || !r->set)
                return result_new(order, CA_RESULT_ERRORED,
                                  "the back-end finished without saying what happened", NULL,
                                  now_s);
        return result_new(
            order, r->state == CA_BACKEND_EXECUTED ? CA_RESULT_EXECUTED : CA_RESULT_ERRORED,
            r->message, r->resource_identifier[0] ? r->resource_identifier : NULL, now_s);
}
