/* SPDX-License-Identifier: Apache-2.0 */
/* The OAuth 2.0 token answer parser (agent/net/api.c): what a token endpoint may send, and
 * everything it must not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "order.h"

static int parse(const char *body, char **token, long *expires)
{
        struct ca_error err = {0};
        *token = NULL;
        *expires = 0;
        int rc = api_token_parse(body, strlen(body), token, expires, &err);
        if (rc < 0)
                assert_true(err.msg[0] != '\0');
        return rc;
}

static void test_good_answers(void **state)
{
        char *t;
        long e;
        assert_int_equal(parse("{\"access_token\":\"abc\",\"token_type\":\"Bearer\","
                               "\"expires_in\":3600}",
                               &t, &e),
                         0);
        assert_string_equal(t, "abc");
        assert_int_equal(e, 3600);
        free(t);
        /* token_type is case-insensitive (RFC 6749 7.1); expires_in is optional. */
        assert_int_equal(parse("{\"access_token\":\"x\",\"token_type\":\"bearer\"}", &t, &e), 0);
        assert_int_equal(e, 3600);
        free(t);
        /* Out-of-range lifetimes are bounded so that the renewal time cannot overflow. */
        assert_int_equal(
            parse("{\"access_token\":\"x\",\"expires_in\":9223372036854775807}", &t, &e), 0);
        assert_int_equal(e, 366L * 24 * 3600);
        free(t);
        assert_int_equal(parse("{\"access_token\":\"x\",\"expires_in\":-5}", &t, &e), 0);
        assert_int_equal(e, 1);
        free(t);
}

static void test_bad_answers(void **state)
{
        static const char *const bad[] = {
            "",
            "not json",
            "[]",
            "{}",
            "{\"access_token\":\"\"}",
            "{\"access_token\":42}",
            "{\"access_token\":\"a\\r\\nX-Injected: 1\"}",
            "{\"access_token\":\"a\",\"expires_in\":\"3600\"}",
            "{\"access_token\":\"a\",\"expires_in\":1.5}",
            "{\"access_token\":\"a\",\"token_type\":\"MAC\"}",
            "{\"access_token\":\"a\",\"token_type\":7}",
            "{\"access_token\":\"a\",\"access_token\":\"b\"}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char *t;
                long e;
                assert_int_equal(parse(bad[i], &t, &e), -EBADMSG);
                assert_null(t);
        }
        /* A token longer than any real one is refused rather than carried in headers. */
        size_t n = 20000;
        char *big = malloc(n + 64);
        assert_non_null(big);
        strcpy(big, "{\"access_token\":\"");
        memset(big + strlen(big), 'a', n);
        strcpy(big + 17 + n, "\"}");
        char *t;
        long e;
        assert_int_equal(parse(big, &t, &e), -EBADMSG);
        free(big);
}

/* The token answer goes through the guarded loader every answer shares: nesting past
 * CA_JSON_MAX_DEPTH is refused before jansson builds anything. */
static void test_deep_answer(void **state)
{
        size_t depth = CA_JSON_MAX_DEPTH + 1;
        char *body = malloc(64 + 2 * depth);
        assert_non_null(body);
        char *p = body + sprintf(body, "{\"access_token\":\"x\",\"deep\":");
        for (size_t i = 1; i < depth; i++)
                *p++ = '[';
        for (size_t i = 1; i < depth; i++)
                *p++ = ']';
        strcpy(p, "}");
        struct ca_error err = {0};
        char *t = NULL;
        long e = 0;
        assert_int_equal(api_token_parse(body, strlen(body), &t, &e, &err), -EBADMSG);
        assert_null(t);
        assert_non_null(strstr(err.msg, "nested deeper than"));
        /* One level less is an ordinary answer. */
        memmove(body + 29, body + 30, strlen(body + 30) + 1);
        p = strrchr(body, ']');
        memmove(p, p + 1, strlen(p + 1) + 1);
        assert_int_equal(api_token_parse(body, strlen(body), &t, &e, &err), 0);
        free(t);
        free(body);
}

static void check_form(const char *client_id, const char *secret, const char *expected)
{
        struct ca_config_server s = {.client_id = (char *)client_id,
                                     .client_secret = (char *)secret,
                                     .scope = "usercube_api"};
        char *body = NULL;
        size_t len = 0;
        assert_int_equal(api_token_form(&s, &body, &len), 0);
        assert_int_equal(len, strlen(body));
        assert_string_equal(body, expected);
        free(body);
}

/* protocol.md §2: the client id's '@' goes as is, every other reserved character and
 * every '@' elsewhere escaped. */
static void test_token_form(void **state)
{
        check_form("Job@idm.example.com", "s3cret",
                   "grant_type=client_credentials&client_id=Job@idm.example.com"
                   "&client_secret=s3cret&scope=usercube_api");
        check_form(
            "a b&c=d+e/f@g%40h:i?j#k", "p@ss&w=rd%",
            "grant_type=client_credentials&client_id=a%20b%26c%3Dd%2Be%2Ff@g%2540h%3Ai%3Fj%23k"
            "&client_secret=p%40ss%26w%3Drd%25&scope=usercube_api");
        check_form("@@", NULL,
                   "grant_type=client_credentials&client_id=@@&client_secret=&scope=usercube_api");
}

static void test_escape_keep(void **state)
{
        char *e = http_escape_keep("x@y%40z é", "@");
        assert_string_equal(e, "x@y%2540z%20%C3%A9");
        free(e);
        e = http_escape("x@y");
        assert_string_equal(e, "x%40y");
        free(e);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_good_answers), cmocka_unit_test(test_bad_answers),
            cmocka_unit_test(test_token_form),   cmocka_unit_test(test_deep_answer),
            cmocka_unit_test(test_escape_keep),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
