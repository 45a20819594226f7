/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the configuration file and its environment overrides
 * (config_load, common/config.h).
 *
 * Input: the file's bytes, then optionally a NUL byte and the environment, one
 * NAME=value entry per line. The last NUL byte separates them (a variable cannot hold
 * one), so the file part may hold NUL bytes too, as a hostile file can. The file lives in a memfd
 * (read back through /proc/self/fd/N, so nothing touches the disk); an empty file part means "no
 * file at all" (a container configured by variables alone).
 *
 * Beyond "no crash, no leak" it checks what the agent relies on: a failure returns no
 * configuration and at least one bounded diagnostic; a success is complete (every
 * resource type names a connector that exists); and a secret given in the environment
 * never shows up in a diagnostic (the harness wraps every *SECRET* or *PASSWORD* value in
 * a marker and looks for it). Seeds: tests/fuzz/corpus/config/; dictionary:
 * tests/fuzz/config.dict. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

#define FUZZ_ENV_MAX      64   /* variables taken from one input */
#define FUZZ_DIAG_LEN_MAX 4096 /* longer than any diagnostic config.c writes */
#define FUZZ_DIAGS_MAX    1000
#define FUZZ_MARK         "Zq9SeCrEt9qZ"
#define FUZZ_NO_FILE      "/nonexistent/connector-agent-fuzz.conf"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char memfd_path[64];

static int is_secret_name(const char *name, size_t n)
{
        return memmem(name, n, "SECRET", 6) || memmem(name, n, "PASSWORD", 8);
}

/* envp from "NAME=value\n..." (at most FUZZ_ENV_MAX entries); secret values wrapped in
 * the marker. Every string is malloc'd so that ASan sees any overread. */
static char **env_build(const char *text, size_t len)
{
        char **envp = calloc(FUZZ_ENV_MAX + 1, sizeof(*envp));
        size_t n = 0;
        if (!envp)
                return NULL;
        while (len > 0 && n < FUZZ_ENV_MAX) {
                const char *nl = memchr(text, '\n', len);
                size_t line = nl ? (size_t)(nl - text) : len;
                const char *eq = memchr(text, '=', line);
                if (eq && !memchr(text, '\0', line)) {
                        size_t name = (size_t)(eq - text);
                        int secret = is_secret_name(text, name);
                        size_t extra = secret ? 2 * strlen(FUZZ_MARK) : 0;
                        char *e = malloc(line + extra + 1);
                        if (!e)
                                break;
                        if (secret)
                                snprintf(e, line + extra + 1, "%.*s=%s%.*s%s", (int)name, text,
                                         FUZZ_MARK, (int)(line - name - 1), eq + 1, FUZZ_MARK);
                        else
                                snprintf(e, line + 1, "%.*s", (int)line, text);
                        envp[n++] = e;
                }
                text += line + (nl ? 1 : 0);
                len -= line + (nl ? 1 : 0);
        }
        return envp;
}

static void env_free(char **envp)
{
        for (char **e = envp; e && *e; e++)
                free(*e);
        free(envp);
}

static void check_success(const struct ca_config *cfg)
{
        if (!cfg || !cfg->agent.identifier || !*cfg->agent.identifier || !cfg->server.url ||
            !cfg->server.token_url || !cfg->server.api_version)
                abort();
        for (size_t i = 0; i < cfg->connector_count; i++) {
                const struct ca_config_connector *c = &cfg->connectors[i];
                if (!c->name || !*c->name || !c->backend || !*c->backend)
                        abort();
                if (config_find_connector(cfg, c->name) != c)
                        abort(); /* two connectors of one name */
                for (size_t k = 0; k < c->settings.count; k++)
                        if (!c->settings.items[k].key || !c->settings.items[k].value)
                                abort();
        }
        for (size_t i = 0; i < cfg->resource_type_count; i++) {
                const struct ca_config_resource_type *t = &cfg->resource_types[i];
                if (!t->identifier || !t->connector || !config_find_connector(cfg, t->connector))
                        abort(); /* a mapping the executor could not route */
                if (config_find_resource_type(cfg, t->identifier) != t)
                        abort();
        }
}

static void check_failure(const struct ca_config *cfg, const struct ca_config_diag *diag)
{
        if (cfg)
                abort(); /* a partially valid configuration is never returned */
        if (diag->count == 0 || diag->count > FUZZ_DIAGS_MAX)
                abort();
}

static void check_diag(const struct ca_config_diag *diag, int marked)
{
        for (size_t i = 0; i < diag->count; i++) {
                const char *l = diag->lines[i];
                if (!l || !*l || strnlen(l, FUZZ_DIAG_LEN_MAX) == FUZZ_DIAG_LEN_MAX)
                        abort();
                if (marked && strstr(l, FUZZ_MARK))
                        abort(); /* a secret reached a message */
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *text = (const char *)data;
        const char *sep = memrchr(text, '\0', size);
        size_t file_len = sep ? (size_t)(sep - text) : size;
        struct ca_config *cfg = NULL;
        struct ca_config_diag diag = {0};

        if (memfd < 0) {
                memfd = memfd_create("fuzz_config", MFD_CLOEXEC);
                if (memfd < 0)
                        abort();
                snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
        }
        if (ftruncate(memfd, 0) < 0 ||
            (file_len && pwrite(memfd, text, file_len, 0) != (ssize_t)file_len))
                abort();

        char **envp = sep ? env_build(sep + 1, size - file_len - 1) : NULL;
        int r = config_load(file_len ? memfd_path : FUZZ_NO_FILE, envp, &cfg, &diag);
        if (r == 0)
                check_success(cfg);
        else if (r == -EINVAL || r == -EFBIG || r == -ENOENT)
                check_failure(cfg, &diag);
        else if (r != -ENOMEM && r != -EIO)
                abort();
        /* The marker found by comparison tracing and written elsewhere is no leak. */
        check_diag(&diag, !memmem(data, size, FUZZ_MARK, strlen(FUZZ_MARK)));
        config_diag_clear(&diag);
        config_free(cfg);
        env_free(envp);

        /* The value parsers the table uses, on the raw start of the input. */
        char word[32];
        snprintf(word, sizeof(word), "%.*s", (int)(file_len < 31 ? file_len : 31), text);
        uint64_t ms, u;
        size_t bytes;
        (void)config_parse_uint(word, &u);
        (void)config_parse_duration(word, &ms);
        (void)config_parse_size(word, &bytes);
        return 0;
}
