/* SPDX-License-Identifier: Apache-2.0 */
/* badabi: a test plug-in the loader must refuse. CA_TEST_BADABI_MODE picks how it is
 * wrong: "major" (default: built for interface 2.0), "null" (returns no table),
 * "small" (a table smaller than version 1's), "name" (calls itself something else),
 * "noop" (lacks execute), "signature" (built for another ABI), "startup" (its startup
 * hook fails). */
#include <stdlib.h>
#include <string.h>

#include <connector-agent/backend.h>

static int nothing(void)
{
        return 0;
}

static struct ca_backend_ops ops;

static int failing_startup(const struct ca_host *h, struct ca_backend_error *err)
{
        return h->error(err, CA_BACKEND_EINVALID, NULL, "libfoo: cannot initialise");
}

CA_BACKEND_EXPORT const struct ca_backend_ops *
connector_agent_backend_entry(uint32_t v, const struct ca_host *h);

CA_BACKEND_EXPORT const struct ca_backend_ops *
connector_agent_backend_entry(uint32_t v, const struct ca_host *h)
{
        const char *mode = getenv("CA_TEST_BADABI_MODE");
        if (!mode)
                mode = "major";
        memset(&ops, 0, sizeof(ops));
        ops.abi_version = CA_BACKEND_ABI_VERSION;
        ops.size = sizeof(ops);
        ops.signature = CA_BACKEND_SIGNATURE;
        ops.name = "badabi";
        ops.description = "refused on purpose";
        /* Any non-NULL function will do: the loader must refuse before calling one. */
        void (*fn)(void) = (void (*)(void))nothing;
        memcpy(&ops.instance_new, &fn, sizeof(fn));
        memcpy(&ops.mapping_check, &fn, sizeof(fn));
        memcpy(&ops.instance_free, &fn, sizeof(fn));
        memcpy(&ops.session_open, &fn, sizeof(fn));
        memcpy(&ops.session_close, &fn, sizeof(fn));
        memcpy(&ops.execute, &fn, sizeof(fn));
        memcpy(&ops.probe, &fn, sizeof(fn));
        memcpy(&ops.check, &fn, sizeof(fn));
        if (strcmp(mode, "null") == 0)
                return NULL;
        if (strcmp(mode, "small") == 0)
                ops.size = (uint32_t)offsetof(struct ca_backend_ops, describe);
        else if (strcmp(mode, "name") == 0)
                ops.name = "sql";
        else if (strcmp(mode, "noop") == 0)
                ops.execute = NULL;
        else if (strcmp(mode, "signature") == 0)
                ops.signature = 0xca000000u | (8u << 18) | (8u << 12) | (8u << 6) | 4u;
        else if (strcmp(mode, "startup") == 0)
                ops.startup = failing_startup;
        else if (strcmp(mode, "ok") != 0)
                ops.abi_version = (2u << 16) | 0u;
        return &ops;
}
