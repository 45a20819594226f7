/* SPDX-License-Identifier: Apache-2.0 */
/* ldap_startup: the ldap plug-in's once-per-process hooks (backend.h, interface 1.1).
 *
 * libldap sets itself up once per process, on its first use: its global options (from
 * ldap.conf and the LDAP* variables) and Cyrus SASL (sasl_client_init, given mutex
 * callbacks into libldap, never undone). lb_startup does that first use on the main
 * thread, before any worker opens a connection, and keeps libldap loaded from then on:
 * it has no call that undoes its set-up, and others in the process (libcurl, libpq) may
 * share it. The plug-in itself unloads as usual, so a reload loads fresh code. */
#include <dlfcn.h>

#include "ldap_backend.h"

int lb_startup(const struct ca_host *host, struct ca_backend_error *err)
{
        int version = 0;
        /* Any global option read runs libldap's one-time initialisation. */
        if (ldap_get_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &version) != LDAP_OPT_SUCCESS)
                return host->error(err, CA_BACKEND_EINTERNAL, NULL,
                                   "ldap: libldap failed to initialise");
        Dl_info info;
        if (!dladdr((void *)(uintptr_t)&ldap_initialize, &info) || !info.dli_fname)
                return host->error(err, CA_BACKEND_EINTERNAL, NULL,
                                   "ldap: cannot find the loaded libldap: %s", dlerror());
        /* RTLD_NOLOAD only raises the flags of the object already loaded for us. */
        void *h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
        if (!h)
                return host->error(err, CA_BACKEND_EINTERNAL, NULL,
                                   "ldap: cannot keep libldap (%s) loaded: %s", info.dli_fname,
                                   dlerror());
        dlclose(h); /* the flag stays with the object */
        return CA_BACKEND_OK;
}

void lb_shutdown(void)
{
        /* Nothing: libldap's state stays with libldap, which stays loaded (above), and its
         * own destructor frees it at exit. */
}
