/* libFuzzer harness for the server's answers that are not pages of orders:
 *
 * - the ProvisioningResults acknowledgement (results_ack_parse, common/order.h), with the
 *   promises the reporter relies on: counts are non-negative on success, untouched on
 *   failure, and the error code is -EBADMSG or -ENOMEM;
 * - the OAuth 2.0 token answer (protocol.md §2). Today it is parsed inside a static
 *   callback of agent/api.c; once that parser is factored out as api_token_parse (the
 *   signature below), build with -DCA_HAVE_API_TOKEN_PARSE to fuzz it too. Until then
 *   the same input goes through jansson as api.c calls it and through the guarded
 *   loading every other answer shares (order_json_load).
 *
 * Seeds: tests/fuzz/corpus/answers/; dictionary: tests/fuzz/answers.dict. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "order.h"
#include "order_internal.h"

#ifdef CA_HAVE_API_TOKEN_PARSE
/* The contract this harness checks (to be declared in agent/api.h): parses the body of a
 * token answer (len bytes, not NUL-terminated). On success returns 0, *token is a
 * malloc'd non-empty string of at most API_TOKEN_MAX bytes without CR, LF or NUL (it
 * goes into an HTTP header), and *expires_in is the lifetime in seconds, at least 1 and
 * small enough that the renewal time (ms, 80 %) cannot overflow. On failure returns
 * -EBADMSG (or -ENOMEM) with err filled, and *token is NULL. */
int api_token_parse(const char *body, size_t len, char **token, long *expires_in,
                    struct ca_error *err);
#define FUZZ_TOKEN_MAX     16384
#define FUZZ_EXPIRES_MAX_S ((long)(UINT64_MAX / 1000u / 100u))
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_ack(const char *body, size_t size)
{
        struct ca_error err = {0};
        long received = -1, duplicates = -1;
        int r = results_ack_parse(body, size, &received, &duplicates, &err);
        if (r == 0) {
                if (received < 0 || duplicates < 0)
                        abort();
        } else {
                if (r != -EBADMSG && r != -ENOMEM)
                        abort();
                if (received != -1 || duplicates != -1)
                        abort(); /* a failed parse leaves the counts alone */
                if (!err.msg[0] || strnlen(err.msg, sizeof(err.msg)) == sizeof(err.msg))
                        abort(); /* an operator gets a bounded, non-empty reason */
        }
}

static void fuzz_token(const char *body, size_t size)
{
#ifdef CA_HAVE_API_TOKEN_PARSE
        struct ca_error err = {0};
        char *token = NULL;
        long expires = -1;
        int r = api_token_parse(body, size, &token, &expires, &err);
        if (r == 0) {
                if (!token || !*token)
                        abort();
                size_t n = strlen(token);
                if (n > FUZZ_TOKEN_MAX || strpbrk(token, "\r\n"))
                        abort(); /* it goes into an Authorization header as it is */
                if (expires < 1 || expires > FUZZ_EXPIRES_MAX_S)
                        abort();
                explicit_bzero(token, n);
                free(token);
        } else {
                if (r != -EBADMSG && r != -ENOMEM)
                        abort();
                if (token || !err.msg[0])
                        abort();
        }
#else
        /* What api.c does today: jansson alone, duplicates rejected. */
        json_error_t jerr;
        json_t *direct = json_loadb(body, size, JSON_REJECT_DUPLICATES, &jerr);
        if (direct && !json_is_object(direct) && !json_is_array(direct))
                abort(); /* without JSON_DECODE_ANY only a container is accepted */
        json_decref(direct);

        json_t *root = NULL;
        struct ca_error err = {0};
        int r = order_json_load(body, size, "token answer", &root, &err);
        if (r == 0) {
                if (!root)
                        abort();
                json_t *tok = json_object_get(root, "access_token");
                json_t *exp = json_object_get(root, "expires_in");
                if (tok && json_is_string(tok) && strlen(json_string_value(tok)) > size)
                        abort();
                if (exp && json_is_integer(exp))
                        (void)json_integer_value(exp);
                json_decref(root);
        } else if (root || (r != -EBADMSG && r != -ENOMEM)) {
                abort();
        }
#endif
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *body = (const char *)data;
        fuzz_ack(body, size);
        fuzz_token(body, size);
        return 0;
}
