/* SPDX-License-Identifier: Apache-2.0 */
/* redact: an order's JSON with the strings inside Changes hidden (redact.h). */
#include "redact.h"

#include <jansson.h>

/* Replaces every string under v, at any depth, in place. */
static int hide_strings(json_t *v)
{
        const char *key;
        json_t *item;
        size_t i;
        void *tmp;
        if (json_is_object(v)) {
                json_object_foreach_safe(v, tmp, key, item)
                {
                        if (json_is_string(item)) {
                                if (json_object_set_new(v, key, json_string(REDACT_HIDDEN)) < 0)
                                        return -1;
                        } else if (hide_strings(item) < 0) {
                                return -1;
                        }
                }
        } else if (json_is_array(v)) {
                json_array_foreach(v, i, item)
                {
                        if (json_is_string(item)) {
                                if (json_array_set_new(v, i, json_string(REDACT_HIDDEN)) < 0)
                                        return -1;
                        } else if (hide_strings(item) < 0) {
                                return -1;
                        }
                }
        }
        return 0;
}

char *redact_order_json(const char *json)
{
        json_t *order = json ? json_loads(json, JSON_REJECT_DUPLICATES, NULL) : NULL;
        if (!json_is_object(order)) {
                json_decref(order);
                return NULL;
        }
        json_t *changes = json_object_get(order, "Changes");
        char *out = NULL;
        if (json_is_string(changes)) {
                if (json_object_set_new(order, "Changes", json_string(REDACT_HIDDEN)) == 0)
                        out = json_dumps(order, JSON_COMPACT);
        } else if (hide_strings(changes) == 0) {
                out = json_dumps(order, JSON_COMPACT);
        }
        json_decref(order);
        return out;
}
