/* SPDX-License-Identifier: Apache-2.0 */
/* abinext: a plug-in built as if against interface 1.2, one minor version past the
 * agent's. CA_TEST_ABINEXT_MODE says what it does with the older host:
 *   "needs"  (default) it calls a host member that 1.2 would add, so its entry point must
 *            refuse a host of a lower minor version, as the header's rule says;
 *   "spares" it needs nothing new from the host but fills a spare (a 1.2 member the
 *            agent does not know), which the agent must ignore and load it;
 *   "badsig" a 1.1-or-later table with a build signature of another ABI. */
#include <stdlib.h>
#include <string.h>

#include <connector-agent/backend.h>

#undef CA_BACKEND_ABI_MINOR
#define CA_BACKEND_ABI_MINOR 2

static const struct ca_host *host;

static int nothing(void)
{
        return 0;
}

static struct ca_backend_ops ops;

CA_BACKEND_EXPORT const struct ca_backend_ops *
connector_agent_backend_entry(uint32_t v, const struct ca_host *h);

CA_BACKEND_EXPORT const struct ca_backend_ops *
connector_agent_backend_entry(uint32_t v, const struct ca_host *h)
{
        const char *mode = getenv("CA_TEST_ABINEXT_MODE");
        if (!mode)
                mode = "needs";
        if (CA_BACKEND_ABI_MAJOR_OF(v) != CA_BACKEND_ABI_MAJOR || !h)
                return NULL;
        if (strcmp(mode, "needs") == 0 && CA_BACKEND_ABI_MINOR_OF(v) < 2)
                return NULL;
        host = h;
        memset(&ops, 0, sizeof(ops));
        ops.abi_version = CA_BACKEND_ABI_VERSION;
        ops.size = sizeof(ops);
        ops.signature = CA_BACKEND_SIGNATURE;
        ops.name = "abinext";
        ops.description = "built for interface 1.2";
        void (*fn)(void) = (void (*)(void))nothing;
        memcpy(&ops.instance_new, &fn, sizeof(fn));
        memcpy(&ops.mapping_check, &fn, sizeof(fn));
        memcpy(&ops.instance_free, &fn, sizeof(fn));
        memcpy(&ops.session_open, &fn, sizeof(fn));
        memcpy(&ops.session_close, &fn, sizeof(fn));
        memcpy(&ops.execute, &fn, sizeof(fn));
        memcpy(&ops.probe, &fn, sizeof(fn));
        memcpy(&ops.check, &fn, sizeof(fn));
        /* A 1.2 member in the first spare: a pointer this agent must never follow. */
        ops.spare_3 = (void *)&ops;
        if (strcmp(mode, "badsig") == 0)
                ops.signature ^= (uintptr_t)1; /* time_t of another size */
        return &ops;
}
