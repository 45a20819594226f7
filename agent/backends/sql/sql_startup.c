/* SPDX-License-Identifier: Apache-2.0 */
#include "sql_startup.h"

#include <dlfcn.h>
#include <libpq-fe.h>

int sql_startup(const struct ca_host *host, struct ca_backend_error *err)
{
        /* The library that holds PQconnectdb, as the dynamic linker found it for this
         * plug-in: RTLD_NOLOAD only raises the flags of that already loaded object. */
        Dl_info info;
        void *pq = (void *)(uintptr_t)&PQconnectdb;
        if (!dladdr(pq, &info) || !info.dli_fname)
                return host->error(err, CA_BACKEND_EINTERNAL, NULL,
                                   "sql: cannot find the loaded libpq: %s", dlerror());
        void *h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
        if (!h)
                return host->error(err, CA_BACKEND_EINTERNAL, NULL,
                                   "sql: cannot keep libpq (%s) loaded: %s", info.dli_fname,
                                   dlerror());
        /* The flag stays with the object; the extra reference is not needed. */
        dlclose(h);
        return CA_BACKEND_OK;
}

void sql_shutdown(void)
{
        /* Nothing: what libpq made stays with libpq, which stays loaded (see the header). */
}
