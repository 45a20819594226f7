/* SPDX-License-Identifier: Apache-2.0 */
#include "order.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* The construction is documented in order.h (order_compute_key) and pinned by a test
 * vector: changing any byte of it re-keys every stored order without an Id. */
int order_compute_key(const char *assignment_id, const char *change_type,
                      const char *workflow_instance_id, json_t *changes, char out[65])
{
        static const char hex[] = "0123456789abcdef";
        static const unsigned char sep = 0;
        int ret = -EIO;
        char *canon = NULL;
        EVP_MD_CTX *ctx = NULL;
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;

        out[0] = '\0';
        if (changes) {
                canon = json_dumps(changes, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
                if (!canon) {
                        ret = -ENOMEM;
                        goto out;
                }
        }
        const char *fields[4] = {
            assignment_id ? assignment_id : "",
            change_type ? change_type : "",
            workflow_instance_id ? workflow_instance_id : "",
            canon ? canon : "null",
        };
        ctx = EVP_MD_CTX_new();
        if (!ctx) {
                ret = -ENOMEM;
                goto out;
        }
        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
                goto out;
        for (size_t i = 0; i < 4; i++) {
                if (i > 0 && EVP_DigestUpdate(ctx, &sep, 1) != 1)
                        goto out;
                if (EVP_DigestUpdate(ctx, fields[i], strlen(fields[i])) != 1)
                        goto out;
        }
        if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
                goto out;
        for (unsigned int i = 0; i < mdlen; i++) {
                out[2 * i] = hex[md[i] >> 4];
                out[2 * i + 1] = hex[md[i] & 0xf];
        }
        out[64] = '\0';
        ret = 0;
out:
        EVP_MD_CTX_free(ctx);
        free(canon);
        return ret;
}
