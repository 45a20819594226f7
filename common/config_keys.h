/* SPDX-License-Identifier: Apache-2.0 */
/* config_keys: the keyword tables of the configuration file, one per section.
 *
 * Internal to common/ (config.c) and its tests. Each row names a key, its type, where
 * it lands in the section's struct, its default (as text, parsed by the same code as a
 * value from the file, so a default can never disagree with the parser), its bounds and
 * what it means. Tables are constant and shared by every thread. */
#ifndef CA_CONFIG_KEYS_H
#define CA_CONFIG_KEYS_H

#include <stddef.h>
#include <stdint.h>

enum ca_key_type {
        CA_KEY_STRING,   /* char *, strdup'd; an empty value means "not set" */
        CA_KEY_DURATION, /* uint64_t milliseconds (config_parse_duration) */
        CA_KEY_SIZE,     /* size_t bytes (config_parse_size) */
        CA_KEY_UINT,     /* unsigned, decimal */
        CA_KEY_BOOL,     /* int 0/1: yes/no, true/false, on/off, 1/0 */
        CA_KEY_SECRET,   /* char *, only from the environment, never from the file */
};

/* The key is read by config.c itself (secret sources), not stored in the struct. */
#define CA_KEY_NO_FIELD SIZE_MAX

struct ca_keyword {
        const char *name;
        enum ca_key_type type;
        size_t offset;   /* in the section's struct, or CA_KEY_NO_FIELD */
        const char *def; /* default as text; NULL: none (or computed in config.c) */
        int required;
        uint64_t min, max; /* inclusive bounds for uint/duration(ms)/size; max 0 = none */
        const char *description;
        /* 1: a reload applies a new value at once; 0: running connections, threads or
         * files are bound to it, and a change waits for a restart (config_changed_keys).
         * String and secret fields are freed through the table too (config_free). */
        int reload;
};

struct ca_keyword_table {
        const char *section; /* "agent", "server", "connector", "resource-type" */
        const struct ca_keyword *keys;
        size_t count;
        int strict; /* 1: a key not in the table is an error */
};

extern const struct ca_keyword_table ca_config_agent_keys;
extern const struct ca_keyword_table ca_config_server_keys;
extern const struct ca_keyword_table ca_config_connector_keys;
extern const struct ca_keyword_table ca_config_resource_type_keys;

const struct ca_keyword *config_keyword_find(const struct ca_keyword_table *t, const char *name);
/* 1 when a [connector] key is the agent's alone (the guardrails), never handed to the
 * back-end with the section's settings: a plug-in never sees or reinterprets it. */
int config_keyword_agent_only(const char *name);

#endif
