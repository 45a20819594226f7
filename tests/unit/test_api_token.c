/* The OAuth 2.0 token answer parser (agent/api.c): what a token endpoint may send, and
 * everything it must not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"

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

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_good_answers),
            cmocka_unit_test(test_bad_answers),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
