/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the server's answers that are not pages of orders, and for what
 * the agent builds from a page's ContinuationToken:
 *
 * - the ProvisioningResults acknowledgement (results_ack_parse, common/order.h), with the
 *   promises the reporter relies on: counts are non-negative on success, untouched on
 *   failure, and the error code is -EBADMSG or -ENOMEM;
 * - the OAuth 2.0 token answer (protocol.md §2). Today it is parsed inside a static
 *   callback of agent/net/api.c; once that parser is factored out as api_token_parse (the
 *   signature below), build with -DCA_HAVE_API_TOKEN_PARSE to fuzz it too. Until then
 *   the same input goes through jansson as api.c calls it and through the guarded
 *   loading every other answer shares (order_json_load);
 * - the next ProvisioningData request URL (api_data_path, api_url_build in agent/net/api.c),
 *   built from the ContinuationToken of the input read as a page, and from the raw input
 *   read as a token: the token comes back whole from the URL's query, or is refused
 *   whole (-E2BIG) only when longer than API_CONTINUATION_MAX.
 *
 * Seeds: tests/fuzz/corpus/answers/; dictionary: tests/fuzz/answers.dict. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "api.h"
#include "error.h"
#include "order.h"
#include "order_internal.h"

#ifdef CA_HAVE_API_TOKEN_PARSE
/* The contract this harness checks (to be declared in agent/net/api.h): parses the body of a
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

/* The one ContinuationToken value in url's query, unescaped, or NULL. */
static char *continuation_of(const char *url)
{
        static const char name[] = "ContinuationToken=";
        const char *q = strchr(url, '?');
        const char *at = q ? strstr(q, name) : NULL;
        if (!at || (at[-1] != '?' && at[-1] != '&'))
                return NULL;
        at += strlen(name);
        const char *end = strchr(at, '&');
        int n = 0;
        char *v = curl_easy_unescape(NULL, at, end ? (int)(end - at) : 0, &n);
        if (!v)
                return NULL;
        char *copy = strndup(v, (size_t)n);
        curl_free(v);
        return copy;
}

static void fuzz_url(const char *token, unsigned page_size)
{
        char *path = NULL, *url = NULL;
        struct ca_error err = {0};
        int r = api_data_path("c 1/&?", token, page_size, &path, &err);
        if (strlen(token) > API_CONTINUATION_MAX) {
                if (r != -E2BIG || path || !err.msg[0])
                        abort(); /* an over-long token is refused whole, with a reason */
                return;
        }
        if (r == -ENOMEM)
                return;
        if (r != 0 || !path)
                abort();
        r = api_url_build("https://idm.example.com/", path, "1.0", &url);
        if (r == -ENOMEM) {
                free(path);
                return;
        }
        if (r != 0 || !url || strlen(url) > API_URL_MAX)
                abort(); /* a token the agent carries always fits the URL */
        if (strchr(url, ' ') || strchr(url, '#') || strpbrk(url, "\r\n"))
                abort(); /* every value escaped */
        char *back = continuation_of(url);
        if (*token) {
                if (!back || strcmp(back, token) != 0)
                        abort(); /* sent whole, never cut short */
        } else if (back) {
                abort(); /* an empty token means the first page */
        }
        free(back);
        free(url);
        free(path);
}

static void fuzz_page_urls(const char *body, size_t size)
{
        struct ca_order_page page = {0};
        struct ca_error err = {0};
        if (order_page_parse(body, size, &page, &err) == 0 && page.continuation_token)
                fuzz_url(page.continuation_token, (unsigned)size);
        order_page_clear(&page);
        /* The raw input as a token too: the page parser bounds what reaches it above. */
        /* Not strndup: the input has no NUL, and strict string checks read it as a string. */
        char *raw = malloc(size + 1);
        if (raw) {
                memcpy(raw, body, size);
                raw[size] = '\0';
                fuzz_url(raw, 0);
                free(raw);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *body = (const char *)data;
        fuzz_ack(body, size);
        fuzz_token(body, size);
        fuzz_page_urls(body, size);
        return 0;
}
