/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_backend_util: what the back-end harnesses share. Header-only (static functions),
 * one harness per plug-in.
 *
 * Input of every back-end target: optionally mapping settings ("key=value" lines) and a
 * NUL byte, then one order as JSON (protocol.md §3). Without a NUL byte the whole input
 * is the order and the harness's default mapping applies. The order is built the way the
 * agent builds it (guarded JSON loading, then order_from_json); the plug-in, linked into
 * the harness, is entered through its real entry point with the agent's real host table
 * (backend_host), so the accessors that plug-ins read orders through are fuzzed too. */
#ifndef CA_FUZZ_BACKEND_UTIL_H
#define CA_FUZZ_BACKEND_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_loader.h"
#include "config.h"
#include "log.h"
#include "order.h"
#include "order_internal.h"

#define FUZZ_SETTINGS_MAX 32

const struct ca_backend_ops *connector_agent_backend_entry(uint32_t v, const struct ca_host *h);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Settings from "key", "value", ..., NULL. */
static inline void fuzz_settings_make(struct ca_settings *s, const char *const *kv)
{
        size_t n = 0;
        while (kv[2 * n])
                n++;
        s->items = calloc(n ? n : 1, sizeof(*s->items));
        if (!s->items)
                abort();
        s->count = n;
        for (size_t i = 0; i < n; i++) {
                s->items[i].key = strdup(kv[2 * i]);
                s->items[i].value = strdup(kv[2 * i + 1]);
                if (!s->items[i].key || !s->items[i].value)
                        abort();
                s->items[i].line = (unsigned)i + 1;
        }
}

/* Settings from "key=value" lines (len bytes); lines without '=' are ignored. */
static inline void fuzz_settings_parse(struct ca_settings *s, const char *text, size_t len)
{
        s->items = calloc(FUZZ_SETTINGS_MAX, sizeof(*s->items));
        s->count = 0;
        if (!s->items)
                abort();
        while (len > 0 && s->count < FUZZ_SETTINGS_MAX) {
                const char *nl = memchr(text, '\n', len);
                size_t line = nl ? (size_t)(nl - text) : len;
                const char *eq = memchr(text, '=', line);
                if (eq) {
                        struct ca_setting *it = &s->items[s->count++];
                        it->key = strndup(text, (size_t)(eq - text));
                        it->value = strndup(eq + 1, line - (size_t)(eq - text) - 1);
                        if (!it->key || !it->value)
                                abort();
                        it->line = (unsigned)s->count;
                }
                text += line + (nl ? 1 : 0);
                len -= line + (nl ? 1 : 0);
        }
}

static inline void fuzz_settings_clear(struct ca_settings *s)
{
        for (size_t i = 0; i < s->count; i++) {
                free(s->items[i].key);
                free(s->items[i].value);
        }
        free(s->items);
        s->items = NULL;
        s->count = 0;
}

/* Splits the input; *map_len is (size_t)-1 when there is no mapping part. */
static inline void fuzz_split(const uint8_t *data, size_t size, const char **map, size_t *map_len,
                              const char **json, size_t *json_len)
{
        const char *text = (const char *)data;
        const char *nul = memchr(text, '\0', size);
        if (!nul) {
                *map = NULL;
                *map_len = (size_t)-1;
                *json = text;
                *json_len = size;
                return;
        }
        *map = text;
        *map_len = (size_t)(nul - text);
        *json = nul + 1;
        *json_len = size - *map_len - 1;
}

/* The order as the agent would hand it to a plug-in, or NULL when no plug-in would see it. */
static inline struct ca_order *fuzz_order(const char *json, size_t len)
{
        json_t *obj = NULL;
        struct ca_order *o = NULL;
        struct ca_error err = {0};
        if (order_json_load(json, len, "order", &obj, &err) < 0)
                return NULL;
        if (order_from_json(obj, &o, &err) < 0)
                o = NULL;
        json_decref(obj);
        if (o && o->invalid) {
                /* The agent answers these Errored itself: no plug-in ever sees one. */
                order_free(o);
                o = NULL;
        }
        return o;
}

static inline const struct ca_backend_ops *fuzz_plugin(void)
{
        const struct ca_backend_ops *ops =
            connector_agent_backend_entry(CA_BACKEND_ABI_VERSION, backend_host());
        if (!ops || !ops->instance_new || !ops->describe || !ops->execute)
                abort();
        log_set_level(CA_LOG_ERR); /* plug-ins' warnings would drown the fuzzer's output */
        return ops;
}

static inline int fuzz_code_known(int rc)
{
        return rc == CA_BACKEND_OK || rc == CA_BACKEND_EINVALID || rc == CA_BACKEND_EUNAVAILABLE ||
               rc == CA_BACKEND_EINDOUBT || rc == CA_BACKEND_EINTERNAL;
}

/* What every operation promises: a known code; on success an outcome, on failure a
 * reason; both bounded; and a result that the reporter can always send. */
static inline void fuzz_check_outcome(const struct ca_order *o, int rc,
                                      const struct ca_backend_result *r,
                                      const struct ca_backend_error *err)
{
        if (!fuzz_code_known(rc))
                abort();
        if (strnlen(r->message, sizeof(r->message)) == sizeof(r->message) ||
            strnlen(r->resource_identifier, sizeof(r->resource_identifier)) ==
                sizeof(r->resource_identifier) ||
            strnlen(err->message, sizeof(err->message)) == sizeof(err->message))
                abort();
        if (rc != CA_BACKEND_OK) {
                if (!err->message[0] || err->code != rc)
                        abort();
                return;
        }
        if (!r->set || (r->state != CA_BACKEND_EXECUTED && r->state != CA_BACKEND_ERRORED))
                abort();
        struct ca_result *res = backend_result_to_result(o, r, 0);
        if (!res)
                abort();
        char *body = results_body("fuzz", "fuzz-agent", &res, 1);
        if (!body)
                abort();
        json_t *back = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
        if (!back)
                abort(); /* the reporter would send a body the server cannot read */
        json_decref(back);
        free(body);
        result_free(res);
}

#endif
