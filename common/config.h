/* SPDX-License-Identifier: Apache-2.0 */
/* config: the agent's configuration, from one INI file plus the environment.
 *
 * Owns struct ca_config and everything it points to (config_free). Parsing is
 * table-driven (one keyword table per section, see config.c) and every problem is
 * reported with file, line, section and key, all of them at once, never only the first.
 * Environment variables CONNECTOR_AGENT_<SECTION>_<KEY> override the file (see
 * config_env_name); secrets come from a file, a systemd credential or an environment
 * variable and are never printed. Knows nothing of the event loop. */
#ifndef CA_CONFIG_H
#define CA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

#define CA_CONFIG_DEFAULT_PATH "/etc/connector-agent/agent.conf"

/* One key = value line kept as written (after overrides), for back-end settings that
 * the agent itself does not interpret. line is 0 when the value came from the
 * environment. */
struct ca_setting {
        char *key;
        char *value;
        unsigned line;
};

struct ca_settings {
        struct ca_setting *items;
        size_t count;
};

struct ca_config_agent {
        char *identifier;               /* AgentIdentifier; default: the host name */
        char *state_dir;                /* default /var/lib/connector-agent */
        char *backend_dir;              /* default CA_BACKEND_DIR */
        uint64_t heartbeat_interval_ms; /* default 30s */
        uint64_t shutdown_deadline_ms;  /* default 30s: drain time on SIGTERM */
        uint64_t disconnect_grace_ms;   /* default 90s: failing this long -> DISCONNECTED */
        char *log_level;                /* default "info" */
        char *log_format;               /* "text" (default) or "json", off the journal */
        char *status_address;           /* default 127.0.0.1 */
        unsigned status_port;           /* default 0 = off */
        unsigned max_pending_results;   /* back-pressure bound, default 10000 */
        unsigned results_batch;         /* results per PUT, default 500 */
        uint64_t journal_retention_ms;  /* reported entries kept, default 7d */
        int journal_sync;            /* 1 = full durability (default), 0 = relaxed (benchmarks) */
        char *journal;               /* "sqlite" (default) or "postgresql" */
        char *journal_connection;    /* libpq conninfo, no password (postgresql) */
        char *journal_password_file; /* the postgresql journal's password, from a file */
        char *journal_password_credential; /* ... or from a systemd credential */
        uint64_t journal_lease_ms;         /* default 30s: roles of a silent instance end */
        int allow_root;                    /* default 0 */
};

struct ca_config_server {
        char *url;       /* base URL, e.g. https://idm.example.com */
        char *token_url; /* default <url>/connect/token */
        char *client_id;
        char *client_secret;        /* the secret itself, loaded from its source; never printed */
        char *client_secret_source; /* where it came from, e.g. "file /etc/...": printable */
        char *scope;                /* default usercube_api */
        char *api_version;          /* default 1.0 */
        char *ca_file;              /* optional custom CA bundle */
        char *client_cert;          /* optional mTLS */
        char *client_key;
        char *pinned_pubkey;         /* optional, curl's "sha256//..." syntax */
        uint64_t connect_timeout_ms; /* default 10s */
        uint64_t request_timeout_ms; /* default 60s */
        size_t max_body_bytes;       /* default 16 MiB */
        unsigned page_size;          /* PageSize sent, 0 = server default */
};

struct ca_config_connector {
        char *name;                  /* the section's NAME; also the connector id at the server */
        char *backend;               /* plug-in name: sql, exec, file, ldap ... */
        uint64_t poll_interval_ms;   /* default 30s */
        unsigned max_parallel;       /* worker threads, default 4 */
        uint64_t order_timeout_ms;   /* default 60s */
        unsigned max_in_flight;      /* orders accepted but not finished, default 1000 */
        struct ca_settings settings; /* the section's keys for the back-end (not the guards) */
        unsigned line;               /* where the section starts */
        /* Guardrails (agent/pipeline/policy.h, guard.h), as written; NULL: none. Lists
         * are separated by ';' (a DN's own ';' is escaped, RFC 4514), rates are
         * "COUNT/DURATION". Never handed to the back-end. */
        char *protect, *protect_subtree, *allow_subtree;
        char *protect_table, *allow_table, *protect_key;
        char *max_added, *max_modified, *max_deleted, *max_disabled, *max_group_changes;
};

struct ca_config_resource_type {
        char *identifier;            /* the section's IDENTIFIER (ResourceType.Identifier) */
        char *connector;             /* the connector that executes it (required) */
        struct ca_settings settings; /* every key of the section, for the back-end mapping */
        unsigned line;
};

struct ca_config {
        char *path; /* the file it came from */
        struct ca_config_agent agent;
        struct ca_config_server server;
        struct ca_config_connector *connectors;
        size_t connector_count;
        struct ca_config_resource_type *resource_types;
        size_t resource_type_count;
};

/* One problem found while loading, e.g. "agent.conf:12: [server] url: not a URL". */
struct ca_config_diag {
        char **lines;
        size_t count;
};

/* Loads path (must exist unless env alone configures the agent: path may be NULL),
 * applies the environment envp (NULL-terminated, e.g. environ), loads secrets, and
 * validates everything. On success *out is a new config (config_free). On failure
 * returns -EINVAL (or -errno for I/O) and fills diag with every problem found; a
 * partially valid configuration is never returned. */
int config_load(const char *path, char *const *envp, struct ca_config **out,
                struct ca_config_diag *diag);
void config_free(struct ca_config *cfg);

/* What differs between old and fresh, for a reload: appends to out (NUL-terminated, len
 * bytes, truncated) "[section] key" for each changed key, "[connector NAME] back-end
 * settings", "connectors added or removed" and "resource-type mappings", comma-separated,
 * never a value. restart_only: only what a reload cannot apply (keys whose keyword says
 * they wait for a restart, back-end settings, the set of connectors). Returns how many
 * items differ. */
size_t config_changed_keys(const struct ca_config *old, const struct ca_config *fresh,
                           bool restart_only, char *out, size_t len);
void config_diag_clear(struct ca_config_diag *diag);

/* Decimal digits only (no sign, no space); -EINVAL otherwise or on overflow. */
int config_parse_uint(const char *text, uint64_t *out);
/* "30s", "5m", "250ms", "2h", "7d", a bare number is seconds. */
int config_parse_duration(const char *text, uint64_t *ms_out);
/* "16M", "512k", "1G", a bare number is bytes. */
int config_parse_size(const char *text, size_t *bytes_out);

/* Lookup in a settings list; NULL when absent. Borrowed. */
const char *config_setting(const struct ca_settings *s, const char *key);
unsigned config_setting_line(const struct ca_settings *s, const char *key);

/* The environment variable that overrides key in section (e.g. section "connector
 * ldap-main", key "uri" -> CONNECTOR_AGENT_CONNECTOR_LDAP_MAIN_URI). Writes into buf.
 * key NULL or "" gives the section's prefix (CONNECTOR_AGENT_CONNECTOR_LDAP_MAIN_).
 * -ENAMETOOLONG when buf is too small. */
int config_env_name(const char *section, const char *key, char *buf, size_t len);

const struct ca_config_connector *config_find_connector(const struct ca_config *cfg,
                                                        const char *name);
const struct ca_config_resource_type *config_find_resource_type(const struct ca_config *cfg,
                                                                const char *identifier);

/* Prints the effective configuration (file, environment envp and defaults) as INI text
 * the parser reads back, with each secret replaced by where it comes from
 * (config_show.c). */
void config_show(const struct ca_config *cfg, char *const *envp, FILE *out);

/* Reads a secret from path, refusing a file that others can read; strips one trailing
 * newline. *out is malloc'd; wipe it with secret_free. */
int secret_read_file(const char *path, char **out, struct ca_error *err);
/* Reads the systemd credential name from dir (the value of $CREDENTIALS_DIRECTORY, NULL
 * when unset), as secret_read_file does. The one rule for a credential, used by the
 * agent's own settings and by the plug-ins' host->secret; err says what to fix, without
 * the key (the caller names it). */
int secret_read_credential(const char *dir, const char *name, char **out, struct ca_error *err);
/* The one way a secret is named, KEY_file or KEY_credential, for the agent's own keys
 * and the plug-ins' host->secret alike: reads whichever of file and credential is set
 * (dir as for secret_read_credential). -EINVAL when both are set, -ENOENT when neither
 * (err then says nothing: the caller knows the key's names), else as the reader; *which
 * (may be NULL) says which one was read or failed: 'f' or 'c'. */
int secret_read_named(const char *file, const char *credential, const char *dir, char **out,
                      char *which, struct ca_error *err);
/* Zeroes then frees; accepts NULL. */
void secret_free(char *secret);

#endif
