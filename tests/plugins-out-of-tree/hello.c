/* SPDX-License-Identifier: Apache-2.0 */
/* hello: a back-end written outside the project, built against the installed header alone:
 *   cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags connector-agent) hello.c -o hello.so
 * It answers every order Executed with the order's key as its ResourceIdentifier. */
#include <connector-agent/backend.h>

static const struct ca_host *host;

static int hello_instance_new(const struct ca_host *h, const struct ca_backend_settings *s,
                              void **instance, struct ca_backend_error *err)
{
        static int the_instance;
        *instance = &the_instance;
        return CA_BACKEND_OK;
}

static int hello_mapping_check(void *instance, const struct ca_backend_settings *mapping,
                               struct ca_backend_error *err)
{
        return CA_BACKEND_OK;
}

static void hello_instance_free(void *instance)
{
}

static int hello_session_open(void *instance, void **session, struct ca_backend_error *err)
{
        *session = instance;
        return CA_BACKEND_OK;
}

static void hello_session_close(void *session)
{
}

static int hello_execute(void *session, const struct ca_backend_order *order,
                         const struct ca_backend_settings *mapping, struct ca_backend_result *r,
                         struct ca_backend_error *err)
{
        host->result_set(r, CA_BACKEND_EXECUTED, host->order_key(order), "hello");
        return CA_BACKEND_OK;
}

static int hello_probe(void *session, const struct ca_backend_order *order,
                       const struct ca_backend_settings *mapping, enum ca_backend_probe *answer,
                       struct ca_backend_result *r, struct ca_backend_error *err)
{
        *answer = CA_BACKEND_PROBE_UNKNOWN;
        return CA_BACKEND_OK;
}

static int hello_check(void *session, struct ca_backend_error *err)
{
        return CA_BACKEND_OK;
}

static const struct ca_backend_ops ops = {
    .abi_version = CA_BACKEND_ABI_VERSION,
    .size = sizeof(struct ca_backend_ops),
    .signature = CA_BACKEND_SIGNATURE,
    .name = "hello",
    .description = "out-of-tree example",
    .instance_new = hello_instance_new,
    .mapping_check = hello_mapping_check,
    .instance_free = hello_instance_free,
    .session_open = hello_session_open,
    .session_close = hello_session_close,
    .execute = hello_execute,
    .probe = hello_probe,
    .check = hello_check,
};

CA_BACKEND_EXPORT const struct ca_backend_ops *
connector_agent_backend_entry(uint32_t v, const struct ca_host *h)
{
        if (CA_BACKEND_ABI_MAJOR_OF(v) != CA_BACKEND_ABI_MAJOR)
                return 0;
        host = h;
        return &ops;
}
