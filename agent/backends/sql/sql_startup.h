/* SPDX-License-Identifier: Apache-2.0 */
/* sql_startup: the sql plug-in's once-per-process hooks (backend.h, interface 1.1).
 *
 * libpq keeps state for the whole process that it never frees and offers no call to
 * free (the OpenSSL BIO method of its first TLS connection). sql_startup keeps libpq
 * itself (and so what it links, libldap among them) loaded from then on, so that the plug-in can be
 * unloaded and loaded again (the agent's reload) without stranding that state or making it anew;
 * the plug-in object is unloaded as usual. Main thread only, before any instance exists. */
#ifndef CA_SQL_STARTUP_H
#define CA_SQL_STARTUP_H

#include <connector-agent/backend.h>

int sql_startup(const struct ca_host *host, struct ca_backend_error *err);
void sql_shutdown(void);

#endif
