/* SPDX-License-Identifier: Apache-2.0 */
/* backend_loader: loads back-end plug-ins and binds them to the agent's data.
 *
 * Owns struct backend (one dlopen'd plug-in, backend_unload) and provides the struct
 * ca_host that plug-ins read orders and settings through. A plug-in is loaded only from
 * the configured back-end directories (a ':'-separated search list, the first that has
 * the file wins), by name (<dir>/<name>.so), with RTLD_NOW |
 * RTLD_LOCAL so that a missing library fails at start, and is refused with a clear error
 * when its entry symbol is missing, its major interface version differs, or its table is
 * too small. Main thread only, except the ca_host accessors, which are thread-safe.
 *
 * Inside the agent, struct ca_backend_order is struct ca_order, struct
 * ca_backend_settings is struct ca_settings (config.h); the casts live here only. */
#ifndef CA_BACKEND_LOADER_H
#define CA_BACKEND_LOADER_H

#include <connector-agent/backend.h>

#include "config.h"
#include "error.h"
#include "order.h"

#define BACKEND_MESSAGE_MAX 1024

struct backend;

/* What one back-end call said: the outcome of execute / probe / describe. */
struct ca_backend_result {
        int set; /* result_set was called */
        enum ca_backend_state state;
        char message[BACKEND_MESSAGE_MAX];
        char resource_identifier[512];
};

/* Why a back-end call failed; several lines for validation (one per bad key). */
struct ca_backend_error {
        int code;
        char message[BACKEND_MESSAGE_MAX]; /* lines joined with "\n" */
        char key[128];                     /* the first setting at fault, "" when none */
};

int backend_load(const char *dir, const char *name, struct backend **out, struct ca_error *err);
void backend_unload(struct backend *b); /* accepts NULL */
const struct ca_backend_ops *backend_ops(const struct backend *b);
const char *backend_name(const struct backend *b);

/* The host table handed to plug-ins (static, lives forever). */
const struct ca_host *backend_host(void);
/* What host->state_dir answers (NULL: none, the default). Main thread, before the
 * plug-ins are loaded: they read it at start-up. */
void backend_host_set_state_dir(const char *dir);

static inline const struct ca_backend_order *backend_order(const struct ca_order *o)
{
        return (const struct ca_backend_order *)o;
}
static inline const struct ca_backend_settings *backend_settings(const struct ca_settings *s)
{
        return (const struct ca_backend_settings *)s;
}

/* Builds the result to report from an order and what the back-end said. */
struct ca_result *backend_result_to_result(const struct ca_order *order,
                                           const struct ca_backend_result *r, int64_t now_s);

#endif
