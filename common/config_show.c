/* SPDX-License-Identifier: Apache-2.0 */
/* config_show: the effective configuration as an INI file, for `connector-agent config
 * show`.
 *
 * Walks the same keyword tables as the parser, so every key is shown with the value the
 * agent uses (the file, the environment or the default), in a form the parser reads
 * back. A secret is never printed: its line says where it comes from instead. Back-end
 * settings are shown as written; one whose name says it holds a password or a secret
 * (and is not a _file or _credential reference) is replaced the same way. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "config_keys.h"

static const char *env_value(char *const *envp, const char *name)
{
        size_t n = strlen(name);
        for (size_t i = 0; envp && envp[i]; i++)
                if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
                        return envp[i] + n + 1;
        return NULL;
}

/* "# from CONNECTOR_AGENT_..." when the environment set key, else nothing. */
static void origin(FILE *out, char *const *envp, const char *section, const char *key)
{
        char env[256];
        if (config_env_name(section, key, env, sizeof(env)) == 0 && env_value(envp, env))
                fprintf(out, "  # from the environment, %s", env);
}

static void print_value(FILE *out, const char *value)
{
        /* A value on several lines is written as INI continuation lines. */
        for (const char *p = value; *p; p++) {
                if (*p == '\n')
                        fputs("\n    ", out);
                else
                        fputc(*p, out);
        }
}

static void print_duration(FILE *out, uint64_t ms)
{
        static const struct {
                uint64_t ms;
                const char *unit;
        } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                if (ms && ms % units[i].ms == 0) {
                        fprintf(out, "%llu%s", (unsigned long long)(ms / units[i].ms),
                                units[i].unit);
                        return;
                }
        }
        fprintf(out, "%llums", (unsigned long long)ms);
}

static void print_size(FILE *out, size_t bytes)
{
        if (bytes && bytes % (1u << 30) == 0)
                fprintf(out, "%zuG", bytes >> 30);
        else if (bytes && bytes % (1u << 20) == 0)
                fprintf(out, "%zuM", bytes >> 20);
        else if (bytes && bytes % (1u << 10) == 0)
                fprintf(out, "%zuk", bytes >> 10);
        else
                fprintf(out, "%zu", bytes);
}

static void print_table(FILE *out, char *const *envp, const char *section,
                        const struct ca_keyword_table *t, const void *base,
                        const char *secret_source)
{
        for (size_t i = 0; i < t->count; i++) {
                const struct ca_keyword *k = &t->keys[i];
                if (k->offset == CA_KEY_NO_FIELD)
                        continue; /* a secret's source: shown on the secret's line */
                const char *field = (const char *)base + k->offset;
                if (k->type == CA_KEY_STRING || k->type == CA_KEY_SECRET) {
                        const char *s = *(char *const *)field;
                        if (!s) {
                                fprintf(out, "# %s is not set\n", k->name);
                                continue;
                        }
                        fprintf(out, "%s = ", k->name);
                        if (k->type == CA_KEY_SECRET)
                                fprintf(out, "(secret from %s)",
                                        secret_source ? secret_source : "its source");
                        else
                                print_value(out, s);
                } else {
                        fprintf(out, "%s = ", k->name);
                        switch (k->type) {
                        case CA_KEY_DURATION:
                                print_duration(out, *(const uint64_t *)field);
                                break;
                        case CA_KEY_SIZE:
                                print_size(out, *(const size_t *)field);
                                break;
                        case CA_KEY_UINT:
                                fprintf(out, "%u", *(const unsigned *)field);
                                break;
                        case CA_KEY_BOOL:
                                fputs(*(const int *)field ? "yes" : "no", out);
                                break;
                        default:
                                break;
                        }
                }
                origin(out, envp, section, k->name);
                fputc('\n', out);
        }
}

static int ends_with(const char *s, const char *tail)
{
        size_t n = strlen(s), m = strlen(tail);
        return n >= m && strcmp(s + n - m, tail) == 0;
}

/* Back-ends take passwords from files; a setting named like a secret that holds the
 * value itself is hidden anyway, in case a plug-in accepts one. */
static int looks_secret(const char *key)
{
        if (ends_with(key, "_file") || ends_with(key, "_credential"))
                return 0;
        return strstr(key, "password") || strstr(key, "secret") || strstr(key, "token");
}

static void print_settings(FILE *out, const struct ca_settings *s, const struct ca_keyword_table *t,
                           const char *section)
{
        for (size_t i = 0; i < s->count; i++) {
                const struct ca_setting *e = &s->items[i];
                if (config_keyword_find(t, e->key))
                        continue; /* printed from the struct */
                fprintf(out, "%s = ", e->key);
                if (looks_secret(e->key))
                        fprintf(out, "(secret from %s)",
                                e->line ? "the configuration file" : "the environment");
                else
                        print_value(out, e->value);
                if (!e->line) {
                        char env[256];
                        if (config_env_name(section, e->key, env, sizeof(env)) == 0)
                                fprintf(out, "  # from the environment, %s", env);
                }
                fputc('\n', out);
        }
}

void config_show(const struct ca_config *cfg, char *const *envp, FILE *out)
{
        fprintf(out, "# effective configuration: %s plus the environment\n",
                cfg->path ? cfg->path : "(no file)");
        fprintf(out, "\n[agent]\n");
        print_table(out, envp, "agent", &ca_config_agent_keys, &cfg->agent, NULL);
        fprintf(out, "\n[server]\n");
        print_table(out, envp, "server", &ca_config_server_keys, &cfg->server,
                    cfg->server.client_secret_source);
        for (size_t i = 0; i < cfg->connector_count; i++) {
                const struct ca_config_connector *c = &cfg->connectors[i];
                char section[300];
                snprintf(section, sizeof(section), "connector %s", c->name);
                fprintf(out, "\n[%s]\n", section);
                print_table(out, envp, section, &ca_config_connector_keys, c, NULL);
                print_settings(out, &c->settings, &ca_config_connector_keys, section);
        }
        for (size_t i = 0; i < cfg->resource_type_count; i++) {
                const struct ca_config_resource_type *r = &cfg->resource_types[i];
                char section[300];
                snprintf(section, sizeof(section), "resource-type %s", r->identifier);
                fprintf(out, "\n[%s]\n", section);
                print_table(out, envp, section, &ca_config_resource_type_keys, r, NULL);
                print_settings(out, &r->settings, &ca_config_resource_type_keys, section);
        }
}
