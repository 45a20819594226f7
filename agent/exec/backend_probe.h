/* SPDX-License-Identifier: Apache-2.0 */
/* backend_probe: where a back-end's target is, read from its connector settings, and a
 * look at that target to tell apart the failure classes that the plug-in's words do not
 * (libldap says "Can't contact LDAP server" for a closed port and for a refused
 * certificate alike) and to name the issuer of a certificate the agent does not trust.
 *
 * backend_target_from_settings reads settings only (LDAP uri, starttls, ca_file; the
 * PostgreSQL connection string; the SQLite database): any thread. backend_probe_failure
 * connects (TCP, then TLS directly, after LDAP's StartTLS or PostgreSQL's SSLRequest),
 * each step bounded by BACKEND_PROBE_TIMEOUT_MS: it blocks, so doctor or a thread of its
 * own, never the event loop. backend_probe_file only looks at the file system. Nothing is sent
 * beyond the TLS handshake's preamble: no credentials, no query. */
#ifndef CA_BACKEND_PROBE_H
#define CA_BACKEND_PROBE_H

#include <stddef.h>

#include "backend_hint.h"
#include "config.h"

#define BACKEND_PROBE_TIMEOUT_MS 3000

enum backend_target_tls {
        BACKEND_TLS_NONE = 0,
        BACKEND_TLS_DIRECT,   /* ldaps:// */
        BACKEND_TLS_STARTTLS, /* ldap:// with StartTLS */
        BACKEND_TLS_POSTGRES, /* sslmode=verify-ca or verify-full */
};

struct backend_target {
        char where[300]; /* host:port, or the file; "" when the settings do not say */
        char host[256];  /* "" when not over TCP */
        char port[16];
        char file[1024]; /* the SQLite database, "" otherwise */
        enum backend_target_tls tls;
        char ca_file[1024]; /* the CA the back-end trusts, "" for the system's */
        const char *ca_key; /* the setting that names that CA */
};

void backend_target_from_settings(const struct ca_settings *s, struct backend_target *t);

/* Sharpens f, read from the plug-in's words, by looking at the target; issuer gets the
 * certificate's issuer when the class becomes (or is) BACKEND_FAILURE_TLS_VERIFY. */
enum backend_failure backend_probe_failure(const struct backend_target *t, enum backend_failure f,
                                           char *issuer, size_t ilen);

/* Only the file-system part: a missing or unreadable database file. */
enum backend_failure backend_probe_file(const struct backend_target *t, enum backend_failure f);

/* The hint for a failure the plug-in described with why, for the daemon's log: classed
 * from the words and the file system, without connecting (the event loop must not
 * block), naming the target from the settings. When the words leave the class open (a
 * network target that "cannot be contacted"), a thread of its own then looks at the
 * target as doctor does and logs the sharper hint under connector's name. */
void backend_probe_quick_hint(const struct ca_settings *s, const char *connector, const char *why,
                              char *buf, size_t len);

#endif
