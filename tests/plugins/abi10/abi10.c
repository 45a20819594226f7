/* SPDX-License-Identifier: Apache-2.0 */
/* abi10: a minimal back-end as a 1.0 author wrote it, against include/'s frozen copy of
 * the 1.0 header. Its execute answers Executed, so a test sees the agent call into a
 * 1.0 table through its current definition of the layout. */
#include <connector-agent/backend.h>

static const struct ca_host *host;

static int abi10_instance_new(const struct ca_host *h, const struct ca_backend_settings *s,
                              void **instance, struct ca_backend_error *err)
{
        static int the_instance;
        *instance = &the_instance;
        return CA_BACKEND_OK;
}

static int abi10_mapping_check(void *instance, const struct ca_backend_settings *mapping,
                               struct ca_backend_error *err)
{
        return CA_BACKEND_OK;
}

static void abi10_instance_free(void *instance)
{
}

static int abi10_session_open(void *instance, void **session, struct ca_backend_error *err)
{
        *session = instance;
        return CA_BACKEND_OK;
}

static void abi10_session_close(void *session)
{
}

static int abi10_execute(void *session, const struct ca_backend_order *order,
                         const struct ca_backend_settings *mapping, struct ca_backend_result *r,
                         struct ca_backend_error *err)
{
        host->result_set(r, CA_BACKEND_EXECUTED, "abi10", "done by a 1.0 plug-in");
        return CA_BACKEND_OK;
}

static int abi10_probe(void *session, const struct ca_backend_order *order,
                       const struct ca_backend_settings *mapping, enum ca_backend_probe *answer,
                       struct ca_backend_result *r, struct ca_backend_error *err)
{
        *answer = CA_BACKEND_PROBE_UNKNOWN;
        return CA_BACKEND_OK;
}

static int abi10_check(void *session, struct ca_backend_error *err)
{
        return CA_BACKEND_OK;
}

static const struct ca_backend_ops ops = {
    .abi_version = CA_BACKEND_ABI_VERSION,
    .size = sizeof(struct ca_backend_ops),
    .name = "abi10",
    .description = "built against the 1.0 header",
    .instance_new = abi10_instance_new,
    .mapping_check = abi10_mapping_check,
    .instance_free = abi10_instance_free,
    .session_open = abi10_session_open,
    .session_close = abi10_session_close,
    .execute = abi10_execute,
    .probe = abi10_probe,
    .check = abi10_check,
};

CA_BACKEND_DEFINE_ENTRY(ops, host, log)
