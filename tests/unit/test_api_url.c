/* SPDX-License-Identifier: Apache-2.0 */
/* Request URLs (agent/net/api.c): a ContinuationToken of any length the server may send goes
 * out whole and escaped, or is refused whole; never cut short, never past a buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "api.h"

#define DATA_PATH "/api/Connectors/Provisioning/ProvisioningData/"

/* A token as servers make them (base64 with its '+', '/' and '='), n bytes long. */
static char *make_token(size_t n)
{
        static const char alphabet[] = "ABCxyz019+/=";
        char *t = malloc(n + 1);
        assert_non_null(t);
        for (size_t i = 0; i < n; i++)
                t[i] = alphabet[i % (sizeof(alphabet) - 1)];
        t[n] = '\0';
        return t;
}

/* The value of name in the query of url, unescaped (malloc'd), or NULL. */
static char *query_value(const char *url, const char *name)
{
        const char *q = strchr(url, '?');
        size_t nlen = strlen(name);
        for (const char *p = q ? q + 1 : NULL; p && *p;) {
                const char *amp = strchr(p, '&');
                size_t plen = amp ? (size_t)(amp - p) : strlen(p);
                if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
                        int out_len = 0;
                        char *v = curl_easy_unescape(NULL, p + nlen + 1, (int)(plen - nlen - 1),
                                                     &out_len);
                        assert_non_null(v);
                        char *copy = strndup(v, (size_t)out_len);
                        curl_free(v);
                        return copy;
                }
                p = amp ? amp + 1 : NULL;
        }
        return NULL;
}

static void check_token_goes_whole(size_t n, unsigned page_size)
{
        char *token = make_token(n);
        char *path = NULL, *url = NULL;
        struct ca_error err = {0};
        assert_int_equal(api_data_path("hr db", token, page_size, &path, &err), 0);
        assert_non_null(path);
        assert_true(strncmp(path, DATA_PATH "hr%20db?ContinuationToken=", 55) == 0);
        assert_int_equal(api_url_build("https://idm.example.com/", path, "1.0", &url), 0);
        assert_true(strncmp(url, "https://idm.example.com" DATA_PATH, 23 + strlen(DATA_PATH)) == 0);
        char *got = query_value(url, "ContinuationToken");
        assert_non_null(got);
        if (strcmp(got, token) != 0)
                fail_msg("a %zu-byte token came out as %zu bytes", n, strlen(got));
        free(got);
        got = query_value(url, "PageSize");
        if (page_size) {
                assert_non_null(got);
                assert_int_equal(strtoul(got, NULL, 10), page_size);
        } else {
                assert_null(got);
        }
        free(got);
        got = query_value(url, "api-version");
        assert_string_equal(got, "1.0");
        free(got);
        /* Nothing but the three parameters, each once. */
        size_t params = 1;
        for (const char *p = strchr(url, '?'); (p = strchr(p + 1, '&'));)
                params++;
        assert_int_equal(params, page_size ? 3 : 2);
        free(url);
        free(path);
        free(token);
}

static void test_token_lengths(void **state)
{
        static const size_t lengths[] = {1, 2047, 2048, 4096, API_CONTINUATION_MAX};
        for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
                check_token_goes_whole(lengths[i], 0);
                check_token_goes_whole(lengths[i], 1);
                check_token_goes_whole(lengths[i], 4294967295u);
        }
}

static void test_token_too_long(void **state)
{
        char *token = make_token(API_CONTINUATION_MAX + 1);
        char *path = (char *)"untouched";
        struct ca_error err = {0};
        assert_int_equal(api_data_path("c1", token, 100, &path, &err), -E2BIG);
        assert_null(path);
        assert_non_null(strstr(err.msg, "ContinuationToken of 65537 bytes"));
        free(token);
}

static void test_first_page(void **state)
{
        char *path = NULL;
        struct ca_error err = {0};
        assert_int_equal(api_data_path("c1", NULL, 0, &path, &err), 0);
        assert_string_equal(path, DATA_PATH "c1");
        free(path);
        assert_int_equal(api_data_path("c1", "", 50, &path, &err), 0);
        assert_string_equal(path, DATA_PATH "c1?PageSize=50");
        free(path);
}

static void test_url_build(void **state)
{
        char *url = NULL;
        assert_int_equal(api_url_build("https://idm.example.com//", "/api/x", "1.0", &url), 0);
        assert_string_equal(url, "https://idm.example.com/api/x?api-version=1.0");
        free(url);
        assert_int_equal(api_url_build("https://h/idm", "/api/x?a=b", "2.0", &url), 0);
        assert_string_equal(url, "https://h/idm/api/x?a=b&api-version=2.0");
        free(url);
        char *long_path = malloc(API_URL_MAX + 2);
        assert_non_null(long_path);
        memset(long_path, 'p', API_URL_MAX + 1);
        long_path[API_URL_MAX + 1] = '\0';
        url = (char *)"untouched";
        assert_int_equal(api_url_build("https://h", long_path, "1.0", &url), -E2BIG);
        assert_null(url);
        free(long_path);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_token_lengths),
            cmocka_unit_test(test_token_too_long),
            cmocka_unit_test(test_first_page),
            cmocka_unit_test(test_url_build),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
