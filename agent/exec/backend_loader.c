/* SPDX-License-Identifier: Apache-2.0 */
/* backend_loader: dlopen of one plug-in and the checks that refuse a bad one at start.
 *
 * Every refusal names the file, so that an operator who dropped a wrong .so into the
 * back-end directory reads which one and why. */
#include "backend_loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* Plug-in names become file names: short and from a small alphabet, so that a name can
 * never climb out of the back-end directory. */
#define BACKEND_NAME_MAX 64
#define BACKEND_PATH_MAX 4096

/* The first table of major version 1 (backend.h's growth rule): every plug-in of this
 * major version has at least this much, whichever minor version built it. */
#define BACKEND_OPS_V1_SIZE CA_BACKEND_OPS_SIZE_1_0
_Static_assert(sizeof(struct ca_backend_ops) == CA_BACKEND_OPS_SIZE_1_0,
               "a 1.x member must take a spare's place until the spares run out");

struct backend {
        void *handle;
        const struct ca_backend_ops *ops;
        char name[BACKEND_NAME_MAX + 1];
        char path[BACKEND_PATH_MAX];
};

static int name_valid(const char *name)
{
        size_t len = strlen(name);
        if (len == 0 || len > BACKEND_NAME_MAX)
                return 0;
        for (size_t i = 0; i < len; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
                        return 0;
        }
        return 1;
}

/* The operations execute needs; describe alone may be NULL. */
static const char *missing_op(const struct ca_backend_ops *ops)
{
        if (!ops->instance_new)
                return "instance_new";
        if (!ops->mapping_check)
                return "mapping_check";
        if (!ops->instance_free)
                return "instance_free";
        if (!ops->session_open)
                return "session_open";
        if (!ops->session_close)
                return "session_close";
        if (!ops->execute)
                return "execute";
        if (!ops->probe)
                return "probe";
        if (!ops->check)
                return "check";
        return NULL;
}

int backend_load(const char *dir, const char *name, struct backend **out, struct ca_error *err)
{
        struct backend *b = NULL;
        int r;
        *out = NULL;

        if (!dir || !*dir)
                return ca_error_set(err, -EINVAL, "back-end %s: no back-end directory configured",
                                    name ? name : "(null)");
        if (!name || !name_valid(name))
                return ca_error_set(err, -EINVAL,
                                    "back-end name '%s' is invalid: use 1 to %d characters "
                                    "from a-z, 0-9, '_' and '-'",
                                    name ? name : "(null)", BACKEND_NAME_MAX);

        b = calloc(1, sizeof(*b));
        if (!b)
                return ca_error_set(err, -ENOMEM, "back-end %s: out of memory", name);
        snprintf(b->name, sizeof(b->name), "%s", name);
        /* dir is a search list, "A:B": the first directory that holds <name>.so wins, so
         * that a plug-in installed locally (/usr/local) stands beside the packaged ones. */
        struct stat st;
        int found = 0;
        for (const char *d = dir; !found;) {
                const char *colon = strchr(d, ':');
                int len = colon ? (int)(colon - d) : (int)strlen(d);
                if (len > 0) {
                        if (snprintf(b->path, sizeof(b->path), "%.*s/%s.so", len, d, name) >=
                            (int)sizeof(b->path)) {
                                r = ca_error_set(err, -ENAMETOOLONG,
                                                 "back-end %s: directory path too long", name);
                                goto fail;
                        }
                        if (stat(b->path, &st) == 0)
                                found = 1;
                        else if (errno != ENOENT) {
                                r = ca_error_set(err, -errno, "back-end %s: cannot use %s: %s",
                                                 name, b->path, strerror(errno));
                                goto fail;
                        }
                }
                if (!colon)
                        break;
                d = colon + 1;
        }
        if (!found) {
                r = ca_error_set(err, -ENOENT,
                                 "back-end %s: cannot use %s: no %s.so in the back-end "
                                 "director%s %s (backend_dir)",
                                 name, b->path, name, strchr(dir, ':') ? "ies" : "y", dir);
                goto fail;
        }
        if (!S_ISREG(st.st_mode)) {
                r = ca_error_set(err, -EINVAL, "back-end %s: %s is not a regular file", name,
                                 b->path);
                goto fail;
        }
        /* Code that someone else may rewrite would run inside the agent with its
         * credentials: only root or the agent's own user may own it and write it. */
        if (st.st_mode & S_IWOTH) {
                r = ca_error_set(err, -EPERM,
                                 "back-end %s: refusing %s: it is writable by every user", name,
                                 b->path);
                goto fail;
        }
        if (st.st_mode & S_IWGRP) {
                r = ca_error_set(err, -EPERM,
                                 "back-end %s: refusing %s: it is writable by its group (gid "
                                 "%u): chmod g-w it",
                                 name, b->path, (unsigned)st.st_gid);
                goto fail;
        }
        if (st.st_uid != 0 && st.st_uid != geteuid()) {
                r = ca_error_set(err, -EPERM,
                                 "back-end %s: refusing %s: it is owned by uid %u, neither root "
                                 "nor the agent's user (uid %u)",
                                 name, b->path, (unsigned)st.st_uid, (unsigned)geteuid());
                goto fail;
        }

        dlerror();
        b->handle = dlopen(b->path, RTLD_NOW | RTLD_LOCAL);
        if (!b->handle) {
                const char *why = dlerror();
                r = ca_error_set(err, -ENOEXEC, "back-end %s: cannot load %s: %s", name, b->path,
                                 why ? why : "unknown error");
                goto fail;
        }

        dlerror();
        void *sym = dlsym(b->handle, CA_BACKEND_ENTRY_SYMBOL);
        if (!sym) {
                r = ca_error_set(err, -ENOEXEC,
                                 "back-end %s: %s does not export %s: it is not a connector-agent "
                                 "back-end",
                                 name, b->path, CA_BACKEND_ENTRY_SYMBOL);
                goto fail;
        }
        ca_backend_entry_fn entry;
        /* POSIX guarantees that a data pointer from dlsym converts to a function pointer;
         * memcpy keeps -Wpedantic quiet about the conversion. */
        memcpy(&entry, &sym, sizeof(entry));

        const struct ca_backend_ops *ops = entry(CA_BACKEND_ABI_VERSION, backend_host());
        if (!ops) {
                r = ca_error_set(err, -ENOEXEC,
                                 "back-end %s: %s refused to load with interface version %u.%u "
                                 "(its entry point returned no table)",
                                 name, b->path, CA_BACKEND_ABI_MAJOR, CA_BACKEND_ABI_MINOR);
                goto fail;
        }
        if (CA_BACKEND_ABI_MAJOR_OF(ops->abi_version) != CA_BACKEND_ABI_MAJOR) {
                r = ca_error_set(err, -EPROTO,
                                 "back-end %s: %s was built for interface version %u.%u, this "
                                 "agent speaks %u.%u: rebuild the plug-in against this agent's "
                                 "connector-agent/backend.h",
                                 name, b->path, CA_BACKEND_ABI_MAJOR_OF(ops->abi_version),
                                 ops->abi_version & 0xffffu, CA_BACKEND_ABI_MAJOR,
                                 CA_BACKEND_ABI_MINOR);
                goto fail;
        }
        if (ops->size < BACKEND_OPS_V1_SIZE) {
                r = ca_error_set(err, -EPROTO,
                                 "back-end %s: %s has an operations table of %u bytes, smaller "
                                 "than the %zu bytes of interface version %u.0",
                                 name, b->path, ops->size, BACKEND_OPS_V1_SIZE,
                                 CA_BACKEND_ABI_MAJOR);
                goto fail;
        }
        /* A 1.0 plug-in predates the signature and the hooks: its spares are not read. */
        if (CA_BACKEND_ABI_MINOR_OF(ops->abi_version) >= 1 &&
            ops->signature != CA_BACKEND_SIGNATURE) {
                r = ca_error_set(err, -EPROTO,
                                 "back-end %s: %s is not binary compatible with this agent (build "
                                 "signature %#lx, the agent's is %#lx: another architecture or "
                                 "type sizes): rebuild it for this system",
                                 name, b->path, (unsigned long)ops->signature,
                                 (unsigned long)CA_BACKEND_SIGNATURE);
                goto fail;
        }
        if (!ops->name || strcmp(ops->name, name) != 0) {
                r = ca_error_set(err, -EINVAL,
                                 "back-end %s: %s calls itself '%s': the file name must match the "
                                 "back-end's name",
                                 name, b->path, ops->name ? ops->name : "(none)");
                goto fail;
        }
        const char *missing = missing_op(ops);
        if (missing) {
                r = ca_error_set(err, -EINVAL, "back-end %s: %s lacks the %s operation", name,
                                 b->path, missing);
                goto fail;
        }

        if (CA_BACKEND_ABI_MINOR_OF(ops->abi_version) >= 1 && ops->startup) {
                struct ca_backend_error berr = {0};
                if (ops->startup(backend_host(), &berr) < 0) {
                        r = ca_error_set(err, -EINVAL, "back-end %s: %s failed to start: %s", name,
                                         b->path,
                                         berr.message[0] ? berr.message : "no reason given");
                        goto fail;
                }
        }
        b->ops = ops;
        log_debug("loaded back-end %s (%s, interface %u.%u) from %s", name,
                  ops->description ? ops->description : "no description",
                  CA_BACKEND_ABI_MAJOR_OF(ops->abi_version), ops->abi_version & 0xffffu, b->path);
        *out = b;
        return 0;

fail:
        backend_unload(b);
        return r;
}

void backend_unload(struct backend *b)
{
        if (!b)
                return;
        const struct ca_backend_ops *ops = b->ops;
        if (ops && CA_BACKEND_ABI_MINOR_OF(ops->abi_version) >= 1 && ops->shutdown)
                ops->shutdown();
        if (b->handle)
                dlclose(b->handle);
        free(b);
}

const struct ca_backend_ops *backend_ops(const struct backend *b)
{
        return b ? b->ops : NULL;
}

const char *backend_name(const struct backend *b)
{
        return b ? b->name : NULL;
}
