/* SPDX-License-Identifier: Apache-2.0 */
/* connector-agent/backend.h: the back-end plug-in interface (the only installed header).
 *
 * A back-end is a shared object in the agent's back-end directory
 * (/usr/lib/<triplet>/connector-agent/backends/<name>.so) that exports one symbol,
 * CA_BACKEND_ENTRY_SYMBOL, of type ca_backend_entry_fn. The agent calls it once with its
 * own interface version; the plug-in returns its table of operations, or NULL to refuse.
 * The agent refuses a table whose major version differs from its own or whose size is
 * smaller than the major version's first table, with a clear error, at start.
 *
 * Versioning. CA_BACKEND_ABI_VERSION is (major << 16) | minor. A major version change is
 * a break: old plug-ins are refused, never loaded half-way. Within a major version both
 * tables grow by one rule: a member added in minor version N is read only when the side
 * that filled the table says minor >= N (abi_version); older tables simply lack it.
 *   - struct ca_backend_ops: its 1.0 size is frozen (CA_BACKEND_OPS_SIZE_1_0) and the agent
 *     refuses a smaller one. A new member takes the place of the first named spare
 *     (spare_N, pointer-sized), so the table's size does not change; the member's comment
 *     says the minor version that added it. When the spares are used up, members are
 *     appended, still gated on the minor version (and size says they are there).
 *   - struct ca_host: the agent fills all of it; members are appended, and a plug-in
 *     checks for the last one it calls with CA_BACKEND_HOST_HAS (the entry macro does).
 * A plug-in built for a newer minor version than the agent's loads when it needs nothing
 * newer from the host (its entry point refuses otherwise); the agent ignores the members
 * it does not know. From 1.1 on, a plug-in also carries its build signature, and the
 * agent refuses one built for another ABI (pointer, long, size_t, time_t sizes, byte
 * order) as "not binary compatible" instead of crashing in it.
 *
 * Lifetime. The agent loads a plug-in once per process. startup (1.1) is called once
 * after loading, before any instance exists: initialise a library's global state there
 * (libpq, libldap), never in instance_new, which runs again on each reload. shutdown is
 * called once after the last instance is freed, before the object is closed. A plug-in
 * must not rely on staying mapped (-z nodelete) after shutdown. A library that keeps
 * state it cannot free (libpq's TLS BIO method, libldap's SASL set-up) is kept loaded
 * instead, from startup: dlopen it again with RTLD_NOLOAD | RTLD_NODELETE (the project's
 * sql and ldap plug-ins do, in sql_startup.c and ldap_startup.c).
 *
 * Threads. instance_new, mapping_check and instance_free run on the agent's main thread
 * at start (and on reload). session_open, execute, probe, describe, session_close run on
 * one worker thread per session: a session is never used by two threads at once, but
 * different sessions of one instance run in parallel, so the instance must be safe to
 * share read-only. check may run on any thread. Every call may block, but must be
 * bounded: honour the timeout the agent passes in the connector settings
 * ("order_timeout", in milliseconds, via host->setting_ms).
 *
 * Orders and settings are opaque and read through the host's accessors, so the agent can
 * change its representation without breaking built plug-ins. Strings returned by
 * accessors are borrowed and live as long as the order (or settings) passed in.
 *
 * Errors. Operations return CA_BACKEND_OK or a negative CA_BACKEND_E* code. Messages go
 * through host->error / host->result_set: they are shown to operators and sent to the
 * server, so they must name the object and the target's own diagnostic, and must never
 * contain a secret. */
#ifndef CONNECTOR_AGENT_BACKEND_H
#define CONNECTOR_AGENT_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CA_BACKEND_ABI_MAJOR       1
#define CA_BACKEND_ABI_MINOR       1
#define CA_BACKEND_ABI_VERSION     ((uint32_t)((CA_BACKEND_ABI_MAJOR << 16) | CA_BACKEND_ABI_MINOR))
#define CA_BACKEND_ABI_MAJOR_OF(v) ((uint32_t)(v) >> 16)
#define CA_BACKEND_ABI_MINOR_OF(v) ((uint32_t)(v)&0xffffu)

/* The size of the 1.0 operations table, frozen: two uint32_t and 19 pointer-sized members
 * (name, description, 9 operations, 8 spares). */
#define CA_BACKEND_OPS_SIZE_1_0 (2 * sizeof(uint32_t) + 19 * sizeof(void *))

/* The build signature (1.1): what the tables' layout depends on, plus a marker byte so
 * that a zero spare never passes for a signature. */
#define CA_BACKEND_SIGNATURE                                                                       \
        ((uintptr_t)0xca000000u | (uintptr_t)(sizeof(void *) << 18) |                              \
         (uintptr_t)(sizeof(long) << 12) | (uintptr_t)(sizeof(size_t) << 6) |                      \
         (uintptr_t)sizeof(time_t) | (uintptr_t)(__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__) << 23)

#define CA_BACKEND_ENTRY_SYMBOL "connector_agent_backend_entry"

/* Return codes. */
enum {
        CA_BACKEND_OK = 0,
        /* The settings or the order are wrong; nothing was done. */
        CA_BACKEND_EINVALID = -1,
        /* The target could not be reached; nothing was done. The agent retries the order
         * later and marks the connector DISCONNECTED while this lasts. */
        CA_BACKEND_EUNAVAILABLE = -2,
        /* The call failed in a way that leaves unknown whether the target applied the order
         * (e.g. the connection dropped after the request was sent). The agent settles it
         * with probe. */
        CA_BACKEND_EINDOUBT = -3,
        /* Out of memory or another internal failure; nothing was done. */
        CA_BACKEND_EINTERNAL = -4,
};

enum ca_backend_change {
        CA_BACKEND_CHANGE_UNKNOWN = 0,
        CA_BACKEND_CHANGE_ADDED = 1,
        CA_BACKEND_CHANGE_MODIFIED = 2,
        CA_BACKEND_CHANGE_DELETED = 3,
};

enum ca_backend_state {
        CA_BACKEND_EXECUTED = 1,
        CA_BACKEND_ERRORED = 2,
};

enum ca_backend_probe {
        CA_BACKEND_PROBE_APPLIED = 1,     /* the target shows the order in effect */
        CA_BACKEND_PROBE_NOT_APPLIED = 2, /* the target shows it was not applied */
        CA_BACKEND_PROBE_UNKNOWN = 3,     /* cannot tell: a person must check */
};

/* Kinds of a value in Changes (protocol.md §3). */
enum ca_backend_value {
        CA_BACKEND_VALUE_ABSENT = 0,
        CA_BACKEND_VALUE_NULL = 1, /* clear the attribute */
        CA_BACKEND_VALUE_STRING = 2,
        CA_BACKEND_VALUE_LIST = 3, /* array of strings */
};

enum ca_backend_log_level {
        CA_BACKEND_LOG_ERR = 3,
        CA_BACKEND_LOG_WARNING = 4,
        CA_BACKEND_LOG_INFO = 6,
        CA_BACKEND_LOG_DEBUG = 7,
};

struct ca_backend_order;    /* one provisioning order, read-only */
struct ca_backend_settings; /* a section of the configuration, read-only */
struct ca_backend_result;   /* where execute writes its outcome */
struct ca_backend_error;    /* where any operation writes why it failed */

/* What the agent offers a plug-in. All functions are thread-safe. */
struct ca_host {
        uint32_t abi_version;
        uint32_t size; /* sizeof(struct ca_host) of the agent that filled it */

        /* --- settings ([connector NAME] and [resource-type ID] sections) --- */
        /* The value of key, or NULL when absent. */
        const char *(*setting)(const struct ca_backend_settings *s, const char *key);
        /* Number of keys and the key at index i, to reject unknown keys. */
        size_t (*setting_count)(const struct ca_backend_settings *s);
        const char *(*setting_key)(const struct ca_backend_settings *s, size_t i);
        /* Parses key as a duration ("30s", "250ms") into *ms; def when absent. Returns
         * CA_BACKEND_EINVALID (and fills err, naming the key) when malformed. */
        int (*setting_ms)(const struct ca_backend_settings *s, const char *key, uint64_t def,
                          uint64_t *ms, struct ca_backend_error *err);
        /* Reads the secret named by key: "<key>_file" (a path, refused when others can read
         * it) or "<key>_credential" (a name in $CREDENTIALS_DIRECTORY). Returns a malloc'd
         * string to release with secret_free, or NULL with err filled. */
        char *(*secret)(const struct ca_backend_settings *s, const char *key,
                        struct ca_backend_error *err);
        void (*secret_free)(char *secret);

        /* --- the order (protocol.md §3) --- */
        const char *(*order_key)(const struct ca_backend_order *o); /* Id or its SHA-256 key */
        const char *(*order_id)(const struct ca_backend_order *o);  /* NULL when none */
        const char *(*order_assignment_id)(const struct ca_backend_order *o);
        enum ca_backend_change (*order_change)(const struct ca_backend_order *o);
        const char *(*order_resource_type)(const struct ca_backend_order *o);
        const char *(*order_owner_id)(const struct ca_backend_order *o);
        /* The whole order as compact JSON text (for programs and files). */
        const char *(*order_json)(const struct ca_backend_order *o);
        /* Changes: the number of keys, the key at i, and its value. */
        size_t (*change_count)(const struct ca_backend_order *o);
        const char *(*change_key)(const struct ca_backend_order *o, size_t i);
        enum ca_backend_value (*change_kind)(const struct ca_backend_order *o, const char *key);
        const char *(*change_string)(const struct ca_backend_order *o, const char *key);
        size_t (*change_list_count)(const struct ca_backend_order *o, const char *key);
        const char *(*change_list_item)(const struct ca_backend_order *o, const char *key,
                                        size_t i);
        /* Resource and Arguments: string values by key, NULL when absent or not a string. */
        const char *(*resource_string)(const struct ca_backend_order *o, const char *key);
        const char *(*argument)(const struct ca_backend_order *o, const char *key);

        /* --- outcomes --- */
        /* Sets the outcome of execute (or of a probe that settles an order).
         * resource_identifier may be NULL; the message is printf-formatted. */
        void (*result_set)(struct ca_backend_result *r, enum ca_backend_state state,
                           const char *resource_identifier, const char *fmt, ...)
            __attribute__((format(printf, 4, 5)));
        /* Says why an operation failed (any operation that takes err). key names the setting
         * at fault, or NULL. Returns code, for `return host->error(err, CODE, ...)`. */
        int (*error)(struct ca_backend_error *err, int code, const char *key, const char *fmt, ...)
            __attribute__((format(printf, 4, 5)));

        /* --- logging (never a secret) --- */
        void (*log)(enum ca_backend_log_level level, const char *fmt, ...)
            __attribute__((format(printf, 2, 3)));

        /* --- appended after log: check with CA_BACKEND_HOST_HAS(host, state_dir) --- */
        /* A directory the plug-in may keep files in across runs of the agent (the agent's
         * state_dir; use a subfolder named after the plug-in), or NULL when this process
         * executes no orders (doctor, --check-config, --dry-run). Borrowed, lives as long
         * as the process. */
        const char *(*state_dir)(void);
};

/* What a plug-in offers the agent. */
struct ca_backend_ops {
        uint32_t abi_version; /* CA_BACKEND_ABI_VERSION the plug-in was built with */
        uint32_t size;        /* sizeof(struct ca_backend_ops) of that build */
        const char *name;     /* e.g. "sql"; must match the file name */
        const char *description;

        /* Validates the [connector NAME] settings and builds an instance. Every bad key is
         * reported through err (err may be used several times: each call adds one line). */
        int (*instance_new)(const struct ca_host *host, const struct ca_backend_settings *s,
                            void **instance, struct ca_backend_error *err);
        /* Validates the settings of one [resource-type ID] mapping for this instance. */
        int (*mapping_check)(void *instance, const struct ca_backend_settings *mapping,
                             struct ca_backend_error *err);
        void (*instance_free)(void *instance);

        /* A session belongs to one worker thread (e.g. one connection). */
        int (*session_open)(void *instance, void **session, struct ca_backend_error *err);
        void (*session_close)(void *session);

        /* Applies order as mapping says. On CA_BACKEND_OK the outcome (Executed or Errored:
         * an Errored order is still final) is in r. Any other return leaves r unused. */
        int (*execute)(void *session, const struct ca_backend_order *order,
                       const struct ca_backend_settings *mapping, struct ca_backend_result *r,
                       struct ca_backend_error *err);
        /* Was order applied? On CA_BACKEND_OK *answer is set; when APPLIED, r holds the
         * result to report (ResourceIdentifier above all). */
        int (*probe)(void *session, const struct ca_backend_order *order,
                     const struct ca_backend_settings *mapping, enum ca_backend_probe *answer,
                     struct ca_backend_result *r, struct ca_backend_error *err);
        /* Required. Is the target reachable, with these credentials, and able to take
         * orders? Called on an open session by `connector-agent doctor`, and by the executor
         * to test whether a connector that became unreachable is back before it retries.
         * CA_BACKEND_EUNAVAILABLE when it is not reachable, CA_BACKEND_EINVALID when it
         * refuses the credentials or settings; err says why. Must not change the target. */
        int (*check)(void *session, struct ca_backend_error *err);

        /* Dry run: a human-readable account of what execute would do (the operations, the
         * statements and their parameters, the program and its input), through r's message,
         * without touching the target. May be NULL. */
        int (*describe)(void *session, const struct ca_backend_order *order,
                        const struct ca_backend_settings *mapping, struct ca_backend_result *r,
                        struct ca_backend_error *err);

        /* --- 1.1: read only when abi_version's minor is at least 1 --- */
        /* CA_BACKEND_SIGNATURE of the plug-in's build; required from 1.1 on. */
        uintptr_t signature;
        /* Once per process, after loading and before the first instance_new; may be NULL.
         * A failure refuses the plug-in, with err saying why. */
        int (*startup)(const struct ca_host *host, struct ca_backend_error *err);
        /* Once, after the last instance_free and before unloading; may be NULL. */
        void (*shutdown)(void);

        /* Spares, zero: each new member replaces the first one, in place. */
        void *spare_3;
        void *spare_4;
        void *spare_5;
        void *spare_6;
        void *spare_7;
};

typedef const struct ca_backend_ops *(*ca_backend_entry_fn)(uint32_t host_abi_version,
                                                            const struct ca_host *host);

/* Whether the host table h has member (and everything before it): the table only grows
 * by appending, so a plug-in checks for the last member it calls. */
#define CA_BACKEND_HOST_HAS(h, member)                                                             \
        ((h)->size >= offsetof(struct ca_host, member) + sizeof((h)->member))

/* Defines the one exported entry symbol. It refuses a host of another major version, or
 * one without the members up to last_member; else it keeps the host in host_var (a
 * `static const struct ca_host *`) and returns &ops_table. Most plug-ins need no other
 * entry code:
 *   static const struct ca_host *host;
 *   static const struct ca_backend_ops ops = { ... };
 *   CA_BACKEND_DEFINE_ENTRY(ops, host, log) */
#define CA_BACKEND_DEFINE_ENTRY(ops_table, host_var, last_member)                                  \
        CA_BACKEND_EXPORT const struct ca_backend_ops *connector_agent_backend_entry(              \
            uint32_t host_abi_version, const struct ca_host *h);                                   \
        CA_BACKEND_EXPORT const struct ca_backend_ops *connector_agent_backend_entry(              \
            uint32_t host_abi_version, const struct ca_host *h)                                    \
        {                                                                                          \
                if (CA_BACKEND_ABI_MAJOR_OF(host_abi_version) != CA_BACKEND_ABI_MAJOR || !h ||     \
                    !CA_BACKEND_HOST_HAS(h, last_member))                                          \
                        return NULL;                                                               \
                host_var = h;                                                                      \
                return &ops_table;                                                                 \
        }

/* Or put in front of your own definition:
 *   CA_BACKEND_EXPORT const struct ca_backend_ops *
 *   connector_agent_backend_entry(uint32_t v, const struct ca_host *h) { ... } */
#define CA_BACKEND_EXPORT __attribute__((visibility("default")))

#ifdef __cplusplus
}
#endif

#endif
