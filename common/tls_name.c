/* SPDX-License-Identifier: Apache-2.0 */
#include "tls_name.h"

#include <stdio.h>

#include <openssl/bio.h>
#include <openssl/objects.h>

void tls_name_text(const X509_NAME *n, char *buf, size_t len)
{
        static const int nids[] = {NID_commonName, NID_organizationName};
        if (!len)
                return;
        buf[0] = '\0';
        if (!n)
                return;
        for (size_t i = 0; i < sizeof(nids) / sizeof(nids[0]); i++) {
                int at = X509_NAME_get_index_by_NID(n, nids[i], -1);
                if (at < 0)
                        continue;
                const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, at));
                unsigned char *utf8 = NULL;
                int l = ASN1_STRING_to_UTF8(&utf8, s);
                if (l >= 0) {
                        snprintf(buf, len, "%.*s", l, (const char *)utf8);
                        OPENSSL_free(utf8);
                        return;
                }
        }
        BIO *bio = BIO_new(BIO_s_mem());
        if (!bio)
                return;
        X509_NAME_print_ex(bio, n, 0, XN_FLAG_RFC2253);
        int l = BIO_read(bio, buf, (int)len - 1);
        buf[l > 0 ? l : 0] = '\0';
        BIO_free(bio);
}
