/* SPDX-License-Identifier: Apache-2.0 */
/* utf8_copy / utf8_dup (common/utf8.h), the one UTF-8 repair routine: results
 * (test_result.c covers their messages), back-end messages and log records use it. Here:
 * the buffer sizes at the edges, where a cut leaves no room for "...". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

#define FFFD "\xef\xbf\xbd"
#define EURO "\xe2\x82\xac"

static void expect_copy(size_t size, const char *src, const char *want)
{
        char buf[64];
        memset(buf, 'Z', sizeof(buf));
        size_t n = utf8_copy(buf, size, src);
        assert_int_equal(n, strlen(want));
        assert_string_equal(buf, want);
        assert_true(n < size);
        assert_int_equal(buf[size], 'Z'); /* never past size */
}

static void test_sizes(void **state)
{
        char untouched = 'Z';
        assert_int_equal(utf8_copy(&untouched, 0, "abc"), 0);
        assert_int_equal(untouched, 'Z');
        expect_copy(1, "abc", "");
        expect_copy(2, "abc", "a"); /* no room for "...": cut alone */
        expect_copy(3, "abc", "ab");
        expect_copy(4, "abc", "abc");
        expect_copy(4, "abcd", "...");
        expect_copy(6, "abcdef", "ab...");
        expect_copy(6, "a" EURO "b", "a" EURO "b"); /* fits exactly */
        expect_copy(6, "a" EURO "bc", "a...");      /* a cut shows */
        expect_copy(3, EURO, "");                   /* a character never split */
        expect_copy(8, "x\xff", "x" FFFD);          /* repaired */
        expect_copy(5, "xy\xff", "x...");           /* the replacement counts at its 3 bytes */
        expect_copy(16, "", "");
}

static void test_dup(void **state)
{
        char *s = utf8_dup("caf\xe9", 16);
        assert_non_null(s);
        assert_string_equal(s, "caf" FFFD);
        free(s);
        s = utf8_dup("abcdef", 5);
        assert_string_equal(s, "ab...");
        free(s);
}

/* What jansson accepts, no more: the results body relies on it. */
static void test_valid(void **state)
{
        (void)state;
        assert_true(utf8_valid(""));
        assert_true(utf8_valid("plain ascii"));
        assert_true(utf8_valid("Zo\xc3\xab \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"));
        assert_false(utf8_valid("\xc0\xaf"));         /* overlong '/' */
        assert_false(utf8_valid("\xe0\x80\xaf"));     /* overlong, three bytes */
        assert_false(utf8_valid("\xf0\x80\x80\xaf")); /* overlong, four bytes */
        assert_false(utf8_valid("\xed\xa0\x80"));     /* a surrogate */
        assert_false(utf8_valid("\xf4\x90\x80\x80")); /* past U+10FFFF */
        assert_false(utf8_valid("\xe2\x82"));         /* cut short */
        assert_false(utf8_valid("\x80"));             /* a lone continuation byte */
        assert_false(utf8_valid("\xff"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sizes),
            cmocka_unit_test(test_dup),
            cmocka_unit_test(test_valid),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
