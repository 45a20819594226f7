/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the server-facing parsers of common/order.h: a ProvisioningData
 * page (order_page_parse) and the ProvisioningResults answer (results_ack_parse).
 *
 * Beyond "no crash, no leak", it checks the promises the agent relies on: every parsed
 * order has a non-empty, bounded, NUL-terminated key; a result built from it (with the
 * raw input as its message, to exercise the UTF-8 repair) always yields a body that
 * jansson reads back. Build (not wired into CMake yet):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon -Icommon/include \
 *     tests/fuzz/fuzz_orders.c common/order*.c common/result.c common/error.c \
 *     common/timeutil.c $(pkg-config --cflags --libs jansson openssl)
 * Seeds: tests/fuzz/corpus/orders/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "order.h"

#define FUZZ_MESSAGE_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_order(const struct ca_order *o, const char *message)
{
        size_t keylen = strnlen(o->key, sizeof(o->key));
        if (keylen == 0 || keylen > CA_ORDER_KEY_MAX)
                abort();
        if (!o->json || !o->change_text)
                abort();
        if (!o->assignment_id || (!o->id && !o->assignment_id[0]))
                abort(); /* identified by neither: it should have been skipped */
        if (o->invalid == NULL && (o->change == CA_CHANGE_UNKNOWN || !o->assignment_id[0]))
                abort(); /* an order the agent would execute must have both */

        /* Its text, a slice of the page, is the same JSON value as its tree. */
        json_t *same = o->json_text ? json_loads(o->json_text, JSON_REJECT_DUPLICATES, NULL) : NULL;
        if (o->json_text && (!same || !json_equal(same, o->json)))
                abort();
        json_decref(same);

        struct ca_result *r = result_new(o, o->invalid ? CA_RESULT_ERRORED : CA_RESULT_EXECUTED,
                                         o->invalid ? o->invalid : message, message, 0);
        if (!r)
                abort();
        if (strlen(r->message) > CA_RESULT_MESSAGE_MAX)
                abort();
        char *body = results_body("fuzz", "fuzz-agent", &r, 1);
        if (!body)
                abort();
        json_t *back = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
        if (!back)
                abort();
        json_decref(back);
        free(body);
        result_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct ca_order_page page;
        struct ca_error err;
        const char *body = (const char *)data;

        /* The raw input, NUL-terminated, doubles as a back-end's message. */
        size_t mlen = size < FUZZ_MESSAGE_MAX ? size : FUZZ_MESSAGE_MAX;
        char *message = malloc(mlen + 1);
        if (!message)
                return 0;
        memcpy(message, data, mlen);
        message[mlen] = '\0';

        int r = order_page_parse(body, size, &page, &err);
        if (r == 0) {
                for (size_t i = 0; i < page.count; i++)
                        check_order(page.orders[i], message);
                order_page_clear(&page);
        } else if (r != -EBADMSG && r != -ENOMEM) {
                abort();
        } else if (page.orders || page.count || page.continuation_token) {
                abort(); /* a failed parse leaves an empty page */
        }

        long received = -1, duplicates = -1;
        r = results_ack_parse(body, size, &received, &duplicates, &err);
        if (r == 0 && (received < 0 || duplicates < 0))
                abort();
        if (r != 0 && (received != -1 || duplicates != -1))
                abort();

        free(message);
        return 0;
}
