/* SPDX-License-Identifier: Apache-2.0 */
/* tls_name: a certificate name as people say it (for messages that name an issuer). */
#ifndef CA_TLS_NAME_H
#define CA_TLS_NAME_H

#include <stddef.h>
#include <openssl/x509.h>

/* Its commonName, else its organizationName, else the whole name (RFC 2253), as UTF-8
 * in buf (always terminated; "" for NULL). */
void tls_name_text(const X509_NAME *n, char *buf, size_t len);

#endif
