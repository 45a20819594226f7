/* SPDX-License-Identifier: Apache-2.0 */
/* check_config: validates the back-end side of a configuration by loading each plug-in
 * and letting it judge its own settings (instance_new) and each mapping (mapping_check),
 * exactly as start-up does, so that --check-config and a start never disagree. Problems
 * are reported with the file, the line and the key the plug-in named. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_config.h"
#include "backend_loader.h"
#include "guard.h"

static int diag_add(struct ca_config_diag *diag, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int diag_add(struct ca_config_diag *diag, const char *fmt, ...)
{
        char *line = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&line, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        char **lines = realloc(diag->lines, (diag->count + 1) * sizeof(*lines));
        if (!lines) {
                free(line);
                return -ENOMEM;
        }
        diag->lines = lines;
        diag->lines[diag->count++] = line;
        return 0;
}

/* Each line of a plug-in's error becomes one diagnostic, located at the key it names. */
static void add_backend_errors(struct ca_config_diag *diag, const char *file, const char *section,
                               unsigned section_line, const struct ca_settings *settings,
                               const struct ca_backend_error *e)
{
        unsigned line = e->key[0] ? config_setting_line(settings, e->key) : 0;
        if (!line)
                line = section_line;
        const char *text = e->message[0] ? e->message : "refused by the back-end";
        const char *p = text;
        while (*p) {
                const char *nl = strchr(p, '\n');
                int len = nl ? (int)(nl - p) : (int)strlen(p);
                diag_add(diag, "%s:%u: [%s] %.*s", file, line, section, len, p);
                p += len + (nl ? 1 : 0);
        }
}

int agent_check_backends(const struct ca_config *cfg, struct ca_config_diag *diag)
{
        const char *file = cfg->path ? cfg->path : "environment";
        int bad = 0;
        for (size_t i = 0; i < cfg->connector_count; i++) {
                const struct ca_config_connector *conn = &cfg->connectors[i];
                char section[300];
                snprintf(section, sizeof(section), "connector %s", conn->name);
                /* The guardrails are the agent's own (guard.h): checked here too, so that a
                 * start, a reload and --check-config refuse the same rules. */
                char gwhy[4096];
                struct guard_rules *rules = NULL;
                int grc = guard_rules_parse(conn, &rules, gwhy, sizeof(gwhy));
                guard_rules_free(rules);
                if (grc < 0) {
                        struct ca_backend_error gerr = {0};
                        snprintf(gerr.message, sizeof(gerr.message), "%s",
                                 grc == -ENOMEM ? "out of memory" : gwhy);
                        add_backend_errors(diag, file, section, conn->line, &conn->settings, &gerr);
                        bad = 1;
                }
                struct backend *b = NULL;
                struct ca_error err = {0};
                if (backend_load(cfg->agent.backend_dir, conn->backend, &b, &err) < 0) {
                        diag_add(diag, "%s:%u: [%s] backend: %s", file,
                                 config_setting_line(&conn->settings, "backend"), section, err.msg);
                        bad = 1;
                        continue;
                }
                const struct ca_backend_ops *ops = backend_ops(b);
                struct ca_backend_error berr = {0};
                void *instance = NULL;
                if (ops->instance_new(backend_host(), backend_settings(&conn->settings), &instance,
                                      &berr) != CA_BACKEND_OK) {
                        add_backend_errors(diag, file, section, conn->line, &conn->settings, &berr);
                        bad = 1;
                        backend_unload(b);
                        continue;
                }
                for (size_t k = 0; k < cfg->resource_type_count; k++) {
                        const struct ca_config_resource_type *rt = &cfg->resource_types[k];
                        if (strcmp(rt->connector, conn->name) != 0)
                                continue;
                        memset(&berr, 0, sizeof(berr));
                        if (ops->mapping_check(instance, backend_settings(&rt->settings), &berr) !=
                            CA_BACKEND_OK) {
                                char rsec[300];
                                snprintf(rsec, sizeof(rsec), "resource-type %s", rt->identifier);
                                add_backend_errors(diag, file, rsec, rt->line, &rt->settings,
                                                   &berr);
                                bad = 1;
                        }
                }
                ops->instance_free(instance);
                backend_unload(b);
        }
        return bad ? -EINVAL : 0;
}
