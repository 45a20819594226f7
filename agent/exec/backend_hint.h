/* SPDX-License-Identifier: Apache-2.0 */
/* backend_hint: which kind of failure a back-end reported, and what to do about it.
 *
 * A plug-in's message carries its library's words ("Connection refused", "Invalid
 * credentials", "unable to open database file"); an operator needs the next step, and a
 * different one for each kind. backend_failure_classify reads the words (plus the
 * plug-in's code); where the words do not tell (libldap says "Can't contact LDAP
 * server" for a closed port and a refused certificate alike), doctor probes the target
 * itself and picks the class. Pure functions, any thread. */
#ifndef CA_BACKEND_HINT_H
#define CA_BACKEND_HINT_H

#include <stddef.h>

enum backend_failure {
        BACKEND_FAILURE_OTHER = 0,
        BACKEND_FAILURE_CONTACT,     /* could not talk to the target; the words do not say why */
        BACKEND_FAILURE_REFUSED,     /* nothing listens at the address */
        BACKEND_FAILURE_UNREACHABLE, /* no route, no answer, unknown host */
        BACKEND_FAILURE_TLS_VERIFY,  /* the target's certificate is not trusted */
        BACKEND_FAILURE_AUTH,        /* the target refused the credentials */
        BACKEND_FAILURE_MISSING_FILE,
        BACKEND_FAILURE_PERMISSION,
        BACKEND_FAILURE_SETTINGS, /* the plug-in refused a setting (CA_BACKEND_EINVALID) */
};

enum backend_failure backend_failure_classify(int code, const char *message);

/* The class's name, for tests and logs: "refused", "tls-verify", ... */
const char *backend_failure_name(enum backend_failure f);

/* The next step for the operator, in buf. target is where (host:port, a file name) or
 * NULL; issuer names the certificate's issuer for BACKEND_FAILURE_TLS_VERIFY, or NULL;
 * ca_key is the setting that names the trusted CA (NULL: "ca_file"); over_tls says the
 * target is reached over TLS, so that a failure of unknown cause may be its CA. */
void backend_failure_hint(enum backend_failure f, const char *target, const char *issuer,
                          const char *ca_key, int over_tls, char *buf, size_t len);

#endif
