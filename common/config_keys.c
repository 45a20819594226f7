/* SPDX-License-Identifier: Apache-2.0 */
#include "config_keys.h"

#include <string.h>

#include "config.h"

#define A(f)     offsetof(struct ca_config_agent, f)
#define S(f)     offsetof(struct ca_config_server, f)
#define C(f)     offsetof(struct ca_config_connector, f)
#define R(f)     offsetof(struct ca_config_resource_type, f)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Bounds that keep a typo from starving or flooding the agent. */
#define MAX_PARALLEL      64
#define MAX_PENDING       10000000
#define MAX_RESULTS_BATCH 100000
#define MAX_PAGE_SIZE     100000
#define MAX_IN_FLIGHT     1000000
#define MIN_BODY          1024
#define MAX_BODY          ((uint64_t)1 << 30)

static const struct ca_keyword agent_keys[] = {
    {"identifier", CA_KEY_STRING, A(identifier), NULL, 0, 0, 0,
     "AgentIdentifier sent in heartbeats; default: the host name", 0},
    {"state_dir", CA_KEY_STRING, A(state_dir), "/var/lib/connector-agent", 0, 0, 0,
     "where the journal lives (absolute path)", 0},
    {"backend_dir", CA_KEY_STRING, A(backend_dir), CA_BACKEND_PATH, 0, 0, 0,
     "where back-end plug-ins are loaded from: absolute paths separated by ':', the first "
     "that holds the plug-in wins",
     0},
    {"heartbeat_interval", CA_KEY_DURATION, A(heartbeat_interval_ms), "30s", 0, 1, 0,
     "time between heartbeats", 1},
    {"shutdown_deadline", CA_KEY_DURATION, A(shutdown_deadline_ms), "30s", 0, 1, 0,
     "how long SIGTERM waits for running orders", 1},
    {"disconnect_grace", CA_KEY_DURATION, A(disconnect_grace_ms), "90s", 0, 1, 0,
     "failing this long marks the agent DISCONNECTED", 1},
    {"log_level", CA_KEY_STRING, A(log_level), "info", 0, 0, 0,
     "error, warning, notice, info or debug", 1},
    {"log_format", CA_KEY_STRING, A(log_format), "text", 0, 0, 0,
     "text or json (one object per line) when not logging to the journal", 1},
    {"status_address", CA_KEY_STRING, A(status_address), "127.0.0.1", 0, 0, 0,
     "IP address of the status endpoint", 0},
    {"status_port", CA_KEY_UINT, A(status_port), "0", 0, 0, 65535,
     "TCP port of the status endpoint; 0 = off", 0},
    {"max_pending_results", CA_KEY_UINT, A(max_pending_results), "10000", 0, 1, MAX_PENDING,
     "results not yet accepted by the server before polling pauses", 1},
    {"results_batch", CA_KEY_UINT, A(results_batch), "500", 0, 1, MAX_RESULTS_BATCH,
     "results sent per PUT", 1},
    {"journal_retention", CA_KEY_DURATION, A(journal_retention_ms), "7d", 0, 1, 0,
     "how long reported journal entries are kept", 1},
    {"journal_sync", CA_KEY_BOOL, A(journal_sync), "yes", 0, 0, 0,
     "yes: full durability; no: relaxed (benchmarks only)", 0},
    {"journal", CA_KEY_STRING, A(journal), "sqlite", 0, 0, 0,
     "where the journal lives: sqlite (a file in state_dir) or postgresql "
     "(journal_connection)",
     0},
    {"journal_connection", CA_KEY_STRING, A(journal_connection), NULL, 0, 0, 0,
     "libpq connection string of the postgresql journal, without a password", 0},
    {"journal_password_file", CA_KEY_STRING, A(journal_password_file), NULL, 0, 0, 0,
     "file holding the postgresql journal's password (mode 0600 or 0640)", 0},
    {"journal_password_credential", CA_KEY_STRING, A(journal_password_credential), NULL, 0, 0, 0,
     "systemd credential holding the postgresql journal's password", 0},
    {"journal_lease", CA_KEY_DURATION, A(journal_lease_ms), "30s", 0, 2000, 3600000,
     "postgresql journal: how long a silent instance keeps the connectors it serves", 0},
    {"allow_root", CA_KEY_BOOL, A(allow_root), "no", 0, 0, 0, "allow running as root", 0},
};

static const struct ca_keyword server_keys[] = {
    {"url", CA_KEY_STRING, S(url), NULL, 1, 0, 0,
     "server base URL: https://, or http:// to a loopback host", 0},
    {"token_url", CA_KEY_STRING, S(token_url), NULL, 0, 0, 0,
     "OAuth2 token endpoint; default <url>/connect/token", 0},
    {"client_id", CA_KEY_STRING, S(client_id), NULL, 1, 0, 0, "OAuth2 client id", 0},
    {"client_secret", CA_KEY_SECRET, S(client_secret), NULL, 0, 0, 0,
     "only as CONNECTOR_AGENT_SERVER_CLIENT_SECRET, never in the file", 0},
    {"client_secret_file", CA_KEY_STRING, CA_KEY_NO_FIELD, NULL, 0, 0, 0,
     "file holding the client secret (mode 0600 or 0640)", 0},
    {"client_secret_credential", CA_KEY_STRING, CA_KEY_NO_FIELD, NULL, 0, 0, 0,
     "systemd credential holding the client secret ($CREDENTIALS_DIRECTORY/NAME)", 0},
    {"scope", CA_KEY_STRING, S(scope), "usercube_api", 0, 0, 0, "OAuth2 scope", 0},
    {"api_version", CA_KEY_STRING, S(api_version), "1.0", 0, 0, 0, "api-version query parameter",
     0},
    {"ca_file", CA_KEY_STRING, S(ca_file), NULL, 0, 0, 0, "custom CA bundle (PEM)", 0},
    {"client_cert", CA_KEY_STRING, S(client_cert), NULL, 0, 0, 0,
     "client certificate for mutual TLS (PEM)", 0},
    {"client_key", CA_KEY_STRING, S(client_key), NULL, 0, 0, 0,
     "client private key for mutual TLS (PEM, mode 0600 or 0640)", 0},
    {"pinned_pubkey", CA_KEY_STRING, S(pinned_pubkey), NULL, 0, 0, 0,
     "public key pin, curl syntax sha256//BASE64[;sha256//...]", 0},
    {"connect_timeout", CA_KEY_DURATION, S(connect_timeout_ms), "10s", 0, 1, 0,
     "TCP+TLS connect timeout", 0},
    {"request_timeout", CA_KEY_DURATION, S(request_timeout_ms), "60s", 0, 1, 0,
     "whole-request timeout", 0},
    {"max_body", CA_KEY_SIZE, S(max_body_bytes), "16M", 0, MIN_BODY, MAX_BODY,
     "largest response body accepted", 0},
    {"page_size", CA_KEY_UINT, S(page_size), "0", 0, 0, MAX_PAGE_SIZE,
     "PageSize asked for; 0 = the server's default", 1},
};

static const struct ca_keyword connector_keys[] = {
    {"backend", CA_KEY_STRING, C(backend), NULL, 1, 0, 0,
     "back-end plug-in: sql, ldap, exec, file ...", 0},
    {"poll_interval", CA_KEY_DURATION, C(poll_interval_ms), "30s", 0, 1, 0,
     "time between polls when idle", 1},
    {"max_parallel", CA_KEY_UINT, C(max_parallel), "4", 0, 1, MAX_PARALLEL, "worker threads", 0},
    {"order_timeout", CA_KEY_DURATION, C(order_timeout_ms), "60s", 0, 1, 0,
     "time one order may take", 0},
    {"max_in_flight", CA_KEY_UINT, C(max_in_flight), "1000", 0, 1, MAX_IN_FLIGHT,
     "orders accepted but not finished", 1},
    /* Guardrails: the agent's own, checked before any back-end sees an order. */
    {"protect", CA_KEY_STRING, C(protect), NULL, 0, 0, 0,
     "DNs (or patterns with *) no order may create, change, delete or add members to; "
     "separated by ;",
     1},
    {"protect_subtree", CA_KEY_STRING, C(protect_subtree), NULL, 0, 0, 0,
     "DN subtrees no order may touch; separated by ;", 1},
    {"allow_subtree", CA_KEY_STRING, C(allow_subtree), NULL, 0, 0, 0,
     "when set, the only DN subtrees orders may touch; separated by ;", 1},
    {"protect_table", CA_KEY_STRING, C(protect_table), NULL, 0, 0, 0,
     "SQL tables (or patterns with *) no order may write; separated by ;", 1},
    {"allow_table", CA_KEY_STRING, C(allow_table), NULL, 0, 0, 0,
     "when set, the only SQL tables orders may write; separated by ;", 1},
    {"protect_key", CA_KEY_STRING, C(protect_key), NULL, 0, 0, 0,
     "SQL keys (or patterns with *, optionally TABLE:PATTERN) no order may touch; "
     "separated by ;",
     1},
    {"max_added", CA_KEY_STRING, C(max_added), NULL, 0, 0, 0,
     "most Added orders per sliding window, COUNT/DURATION (e.g. 500/1h); more are held", 1},
    {"max_modified", CA_KEY_STRING, C(max_modified), NULL, 0, 0, 0,
     "most Modified orders per sliding window, COUNT/DURATION; more are held", 1},
    {"max_deleted", CA_KEY_STRING, C(max_deleted), NULL, 0, 0, 0,
     "most Deleted orders per sliding window, COUNT/DURATION (e.g. 50/1h); more are held", 1},
    {"max_disabled", CA_KEY_STRING, C(max_disabled), NULL, 0, 0, 0,
     "most orders that disable an account per sliding window, COUNT/DURATION; more are held", 1},
    {"max_group_changes", CA_KEY_STRING, C(max_group_changes), NULL, 0, 0, 0,
     "most orders that add or remove group members per sliding window, COUNT/DURATION; more "
     "are held",
     1},
};

static const struct ca_keyword resource_type_keys[] = {
    {"connector", CA_KEY_STRING, R(connector), NULL, 1, 0, 0,
     "the [connector NAME] that executes this resource type", 1},
};

const struct ca_keyword_table ca_config_agent_keys = {"agent", agent_keys, COUNT(agent_keys), 1};
const struct ca_keyword_table ca_config_server_keys = {"server", server_keys, COUNT(server_keys),
                                                       1};
const struct ca_keyword_table ca_config_connector_keys = {"connector", connector_keys,
                                                          COUNT(connector_keys), 0};
const struct ca_keyword_table ca_config_resource_type_keys = {"resource-type", resource_type_keys,
                                                              COUNT(resource_type_keys), 0};

const struct ca_keyword *config_keyword_find(const struct ca_keyword_table *t, const char *name)
{
        for (size_t i = 0; i < t->count; i++) {
                if (strcmp(t->keys[i].name, name) == 0)
                        return &t->keys[i];
        }
        return NULL;
}

int config_keyword_agent_only(const char *name)
{
        static const char *const guards[] = {
            "protect",     "protect_subtree", "allow_subtree",     "protect_table",
            "allow_table", "protect_key",     "max_added",         "max_modified",
            "max_deleted", "max_disabled",    "max_group_changes",
        };
        for (size_t i = 0; i < COUNT(guards); i++)
                if (strcmp(name, guards[i]) == 0)
                        return 1;
        return 0;
}
