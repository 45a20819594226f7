/* SPDX-License-Identifier: Apache-2.0 */
#include "backend_hint.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "connector-agent/backend.h"

static int has_any(const char *text, const char *const *words)
{
        for (size_t i = 0; words[i]; i++)
                if (strcasestr(text, words[i]))
                        return 1;
        return 0;
}

/* Words of libc (strerror), OpenSSL, libldap, libpq and SQLite, most specific first:
 * "certificate verify failed" says TLS even when it also says "connection". */
enum backend_failure backend_failure_classify(int code, const char *message)
{
        static const char *const tls[] = {"certificate verify failed", "unable to get local issuer",
                                          "self-signed certificate",   "self signed certificate",
                                          "certificate has expired",   "unknown ca",
                                          "certificate verification",  NULL};
        static const char *const auth[] = {"invalid credentials",
                                           "password authentication failed",
                                           "authentication failed",
                                           "no password supplied",
                                           "access denied for user",
                                           "inappropriate authentication",
                                           NULL};
        static const char *const refused[] = {"connection refused", NULL};
        static const char *const unreachable[] = {"no route to host",
                                                  "network is unreachable",
                                                  "host is unreachable",
                                                  "timed out",
                                                  "timeout expired",
                                                  "could not translate host name",
                                                  "name or service not known",
                                                  "temporary failure in name resolution",
                                                  NULL};
        static const char *const permission[] = {"permission denied", "readonly database",
                                                 "read-only database", "insufficient access", NULL};
        static const char *const missing[] = {"no such file or directory", NULL};
        static const char *const contact[] = {"can't contact", "cannot contact",
                                              "unable to open database file", NULL};
        const char *m = message ? message : "";
        if (has_any(m, tls))
                return BACKEND_FAILURE_TLS_VERIFY;
        if (has_any(m, auth))
                return BACKEND_FAILURE_AUTH;
        if (has_any(m, refused))
                return BACKEND_FAILURE_REFUSED;
        if (has_any(m, unreachable))
                return BACKEND_FAILURE_UNREACHABLE;
        if (has_any(m, permission))
                return BACKEND_FAILURE_PERMISSION;
        if (has_any(m, missing))
                return BACKEND_FAILURE_MISSING_FILE;
        if (has_any(m, contact))
                return BACKEND_FAILURE_CONTACT;
        if (code == CA_BACKEND_EINVALID)
                return BACKEND_FAILURE_SETTINGS;
        if (code == CA_BACKEND_EUNAVAILABLE)
                return BACKEND_FAILURE_CONTACT;
        return BACKEND_FAILURE_OTHER;
}

const char *backend_failure_name(enum backend_failure f)
{
        switch (f) {
        case BACKEND_FAILURE_CONTACT:
                return "contact";
        case BACKEND_FAILURE_REFUSED:
                return "refused";
        case BACKEND_FAILURE_UNREACHABLE:
                return "unreachable";
        case BACKEND_FAILURE_TLS_VERIFY:
                return "tls-verify";
        case BACKEND_FAILURE_AUTH:
                return "authentication";
        case BACKEND_FAILURE_MISSING_FILE:
                return "missing-file";
        case BACKEND_FAILURE_PERMISSION:
                return "permission";
        case BACKEND_FAILURE_SETTINGS:
                return "settings";
        default:
                return "other";
        }
}

void backend_failure_hint(enum backend_failure f, const char *target, const char *issuer,
                          const char *ca_key, int over_tls, char *buf, size_t len)
{
        const char *t = target && *target ? target : "the target";
        const char *key = ca_key && *ca_key ? ca_key : "ca_file";
        switch (f) {
        case BACKEND_FAILURE_REFUSED:
                snprintf(buf, len,
                         "Nothing listens at %s: start the service, or fix the port in the "
                         "connector's address",
                         t);
                break;
        case BACKEND_FAILURE_UNREACHABLE:
                snprintf(buf, len,
                         "%s does not answer from this host: check the address, the routing "
                         "and the firewalls between them",
                         t);
                break;
        case BACKEND_FAILURE_TLS_VERIFY:
                if (issuer && *issuer)
                        snprintf(buf, len,
                                 "TLS verification failed: the certificate of %s is issued by %s, "
                                 "which this agent does not trust: set %s to that CA's "
                                 "certificate",
                                 t, issuer, key);
                else
                        snprintf(buf, len,
                                 "TLS verification failed: this agent does not trust the CA that "
                                 "issued the certificate of %s: set %s to that CA's certificate "
                                 "(connector-agent doctor names it)",
                                 t, key);
                break;
        case BACKEND_FAILURE_AUTH:
                snprintf(buf, len,
                         "%s refused the credentials: check the user (bind_dn, user) and the "
                         "password file",
                         t);
                break;
        case BACKEND_FAILURE_MISSING_FILE:
                snprintf(buf, len, "%s does not exist: fix the path in the connector, or create it",
                         t);
                break;
        case BACKEND_FAILURE_PERMISSION:
                snprintf(buf, len,
                         "The agent's user may not use %s: check its owner and mode (the "
                         "service runs as connector-agent)",
                         t);
                break;
        case BACKEND_FAILURE_CONTACT:
                if (over_tls)
                        snprintf(buf, len,
                                 "The agent could not talk to %s: check that it runs, that this "
                                 "host reaches it, and that %s names the CA that issued its "
                                 "certificate (run connector-agent doctor to tell which)",
                                 t, key);
                else
                        snprintf(buf, len,
                                 "The agent could not talk to %s: check that it runs and that "
                                 "this host reaches it (the agent keeps its orders and retries)",
                                 t);
                break;
        case BACKEND_FAILURE_SETTINGS:
                snprintf(buf, len,
                         "Check the connector's settings (connector-agent --check-config "
                         "validates them)");
                break;
        default:
                snprintf(buf, len, "See the agent's log for details");
                break;
        }
}
