/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for common/backoff.c: full-jitter backoff, jitter, Retry-After. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "backoff.h"

static uint64_t fixed_random(void *ctx)
{
        return *(const uint64_t *)ctx;
}

/* The delay drawn at b's current attempt when the random source returns r; the attempt
 * is put back so that the same ceiling can be probed again. */
static uint64_t draw_at(struct ca_backoff *b, uint64_t r)
{
        uint64_t v = r;
        unsigned attempt = b->attempt;
        b->random = fixed_random;
        b->random_ctx = &v;
        uint64_t d = backoff_next(b);
        b->attempt = attempt;
        return d;
}

/* Checks that every draw at the current attempt is within [0, ceiling] and that both
 * ends are reachable. */
static void check_ceiling(struct ca_backoff *b, uint64_t ceiling)
{
        static const uint64_t probes[] = {0, 1, 2, 12345, UINT32_MAX, UINT64_MAX, UINT64_MAX - 1};
        for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
                uint64_t d = draw_at(b, probes[i]);
                if (d > ceiling)
                        fail_msg("attempt %u: delay %llu above %llu", b->attempt,
                                 (unsigned long long)d, (unsigned long long)ceiling);
        }
        assert_int_equal(draw_at(b, 0), 0);
        assert_int_equal(draw_at(b, ceiling), ceiling);
        if (ceiling < UINT64_MAX)
                assert_int_equal(draw_at(b, ceiling + 1), 0);
}

static void test_backoff_grows_to_cap(void **state)
{
        struct ca_backoff b;
        backoff_init(&b, 100, 10000);
        assert_int_equal(b.attempt, 0);
        assert_null(b.random);
        const uint64_t ceilings[] = {100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000};
        for (size_t i = 0; i < sizeof(ceilings) / sizeof(ceilings[0]); i++) {
                assert_int_equal(b.attempt, i);
                check_ceiling(&b, ceilings[i]);
                uint64_t v = ceilings[i];
                b.random = fixed_random;
                b.random_ctx = &v;
                assert_int_equal(backoff_next(&b), ceilings[i]); /* counts the failure */
        }
        assert_int_equal(b.attempt, 10);
}

/* Equal jitter: every draw in [ceiling / 2, ceiling], both ends reachable, and the same
 * ceilings as backoff_next, so a refused token request is never retried sooner than half
 * its window. */
static void test_backoff_spaced(void **state)
{
        struct ca_backoff b;
        backoff_init(&b, 1000, 300000);
        const uint64_t ceilings[] = {1000,  2000,   4000,   8000,   16000, 32000,
                                     64000, 128000, 256000, 300000, 300000};
        static const uint64_t probes[] = {0, 1, 499, 500, 501, 12345, UINT32_MAX, UINT64_MAX};
        for (size_t i = 0; i < sizeof(ceilings) / sizeof(ceilings[0]); i++) {
                uint64_t lo = ceilings[i] / 2, hi = ceilings[i], seen_lo = 0, seen_hi = 0;
                for (size_t k = 0; k < sizeof(probes) / sizeof(probes[0]); k++) {
                        uint64_t v = probes[k];
                        b.random = fixed_random;
                        b.random_ctx = &v;
                        uint64_t d = backoff_next_spaced(&b);
                        b.attempt = (unsigned)i;
                        if (d < lo || d > hi)
                                fail_msg("attempt %zu: %llu outside [%llu, %llu]", i,
                                         (unsigned long long)d, (unsigned long long)lo,
                                         (unsigned long long)hi);
                        seen_lo |= d == lo;
                        seen_hi |= d == hi;
                }
                /* r = 0 gives the floor; r = ceiling - half gives the ceiling. */
                uint64_t v = hi - lo;
                b.random_ctx = &v;
                seen_hi |= backoff_next_spaced(&b) == hi;
                assert_int_equal(b.attempt, i + 1); /* counts the failure */
                assert_true(seen_lo && seen_hi);
        }
        b.random = NULL;
        backoff_reset(&b);
        for (int i = 0; i < 1000; i++) {
                uint64_t d = backoff_next_spaced(&b);
                b.attempt = 0;
                assert_true(d >= 500 && d <= 1000);
        }
}

static void test_backoff_reset(void **state)
{
        struct ca_backoff b;
        backoff_init(&b, 250, 60000);
        uint64_t v = UINT64_MAX;
        b.random = fixed_random;
        b.random_ctx = &v;
        for (int i = 0; i < 20; i++)
                backoff_next(&b);
        assert_int_equal(b.attempt, 20);
        check_ceiling(&b, 60000);
        backoff_reset(&b);
        assert_int_equal(b.attempt, 0);
        assert_ptr_equal(b.random, fixed_random); /* reset keeps the source */
        check_ceiling(&b, 250);
}

static void test_backoff_no_overflow(void **state)
{
        struct ca_backoff b;
        backoff_init(&b, 1000, 300000);
        b.attempt = 1000;
        check_ceiling(&b, 300000);
        for (unsigned a = 50; a < 80; a++) {
                b.attempt = a;
                check_ceiling(&b, 300000);
        }

        /* base * 2 already overflows 64 bits. */
        backoff_init(&b, UINT64_MAX / 2 + 1, UINT64_MAX);
        check_ceiling(&b, UINT64_MAX / 2 + 1);
        b.attempt = 1;
        check_ceiling(&b, UINT64_MAX);
        b.attempt = 1000;
        check_ceiling(&b, UINT64_MAX);

        /* A base above the cap is held to the cap from the first try. */
        backoff_init(&b, 5000, 1000);
        check_ceiling(&b, 1000);

        /* base 0: no wait at all, at any attempt. */
        backoff_init(&b, 0, 1000);
        check_ceiling(&b, 0);
        b.attempt = 1000;
        check_ceiling(&b, 0);

        /* The attempt counter saturates instead of wrapping to a short delay. */
        backoff_init(&b, 1, 1u << 20);
        b.attempt = UINT_MAX;
        uint64_t v = 1u << 20;
        b.random = fixed_random;
        b.random_ctx = &v;
        assert_int_equal(backoff_next(&b), 1u << 20);
        assert_int_equal(b.attempt, UINT_MAX);
}

static void test_default_source(void **state)
{
        struct ca_backoff b;
        backoff_init(&b, 1000, 1000000);
        b.attempt = 10; /* ceiling 1000000 */
        uint64_t first = 0;
        int all_same = 1;
        for (int i = 0; i < 1000; i++) {
                unsigned a = b.attempt;
                uint64_t d = backoff_next(&b);
                b.attempt = a;
                assert_true(d <= 1000000);
                if (i == 0)
                        first = d;
                else if (d != first)
                        all_same = 0;
        }
        assert_false(all_same);

        assert_int_equal(jitter_ms(0), 0);
        int seen_low = 0, seen_high = 0;
        for (int i = 0; i < 10000; i++) {
                uint64_t j = jitter_ms(10);
                assert_true(j <= 10);
                seen_low |= j == 0;
                seen_high |= j == 10;
        }
        /* Missing an end in 10000 draws has probability about 2 * (10/11)^10000. */
        assert_true(seen_low);
        assert_true(seen_high);
        (void)jitter_ms(UINT64_MAX);
}

/* Retry-After: delay seconds are read by retry_after_parse, strictly; an HTTP date is
 * read by libcurl (CURLINFO_RETRY_AFTER, seconds from now), whose answer is the second
 * argument. The deltas below are what libcurl 7.88 answers for each value. */
static void expect_delay(const char *value, int64_t curl_delta_s, uint64_t expected_ms)
{
        uint64_t d = 12345;
        int r = retry_after_parse(value, curl_delta_s, &d);
        if (r != 0)
                fail_msg("\"%s\" refused: %d", value, r);
        if (d != expected_ms)
                fail_msg("\"%s\": %llu ms, expected %llu", value, (unsigned long long)d,
                         (unsigned long long)expected_ms);
}

static void test_retry_after_seconds(void **state)
{
        expect_delay("120", 120, 120000);
        expect_delay("0", 0, 0);
        expect_delay(" 5\t", 5, 5000);
        expect_delay("5\r\n", 5, 5000);
        expect_delay("007", 7, 7000);
        expect_delay("86400", 86400, 86400000);
        expect_delay("86401", 86401, 86400000);
        /* libcurl reads a number past its range as 0; the server meant a long wait. */
        expect_delay("99999999999999999999999999999999", 0, 86400000);
}

static void test_retry_after_dates(void **state)
{
        expect_delay("Sun, 06 Nov 1994 08:49:37 GMT", 30, 30000);
        expect_delay("Sun, 06 Nov 1994 08:49:37 GMT", -3600, 0); /* past */
        expect_delay("Sunday, 06-Nov-94 08:49:37 GMT", 10, 10000);
        expect_delay("Sun Nov  6 08:49:37 1994", 10, 10000);
        expect_delay("Sun Nov 16 08:49:37 1994", 864000, 86400000); /* 10 days: capped */
        expect_delay("Tue, 29 Feb 2000 00:00:00 GMT", 1, 1000);
        /* Far future: capped at one day. */
        expect_delay("Fri, 31 Dec 9999 23:59:59 GMT", 251606132868, 86400000);
        /* Forms libcurl reads although RFC 9110 does not write them: still dates. */
        expect_delay("Sun, 06 Nov 1994 08:49:37 UTC", -1012056234, 0);
        expect_delay("sun, 6 Nov 1994 08:49:37", -1012056234, 0);
}

static void test_retry_after_garbage(void **state)
{
        static const struct {
                const char *value;
                int64_t curl_delta_s; /* what libcurl made of it */
        } bad[] = {
            {"", 0},
            {"   ", 0},
            {"abc", 0},
            {"-5", 0},
            {"+5", 5},
            {"5s", 5},
            {"1.5", 1},
            {"5 5", 5},
            {"0x10", 0},
            {"2026-11-22T10:15:02Z", 2026},
            /* dates libcurl cannot read */
            {"Sun, 00 Nov 1994 08:49:37 GMT", 0},
            {"Sun, 06 Nov 1994 24:00:00 GMT", 0},
            {"Sun, 06 Nov 1994 08:60:00 GMT", 0},
            {"Sun, 06 Nov 1994 08:49:61 GMT", 0},
            {"Sun, 06 Xyz 1994 08:49:37 GMT", 0},
            {"Sun, 06 Nov 2094 24:00:00 GMT", 0},
            {"Funday, 06-Nov-94 08:49:37 GMT", 0},
            /* longer than any date form, though it starts as one */
            {"Sun, 06 Nov 1994 08:49:37 GMT                                        x", 3600},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                uint64_t d = 777;
                if (retry_after_parse(bad[i].value, bad[i].curl_delta_s, &d) != -EINVAL)
                        fail_msg("\"%s\" accepted", bad[i].value);
                assert_int_equal(d, 777);
        }
        uint64_t d = 777;
        assert_int_equal(retry_after_parse(NULL, 0, &d), -EINVAL);
        char longv[200];
        memset(longv, '1', sizeof(longv) - 1);
        longv[sizeof(longv) - 1] = '\0';
        assert_int_equal(retry_after_parse(longv, 0, &d), -EINVAL);
        assert_int_equal(d, 777);
}

/* The server's delay for 429 and 503 only, jittered upwards; the failure is counted
 * either way, so the backoff goes on growing behind a Retry-After. */
static void test_backoff_after(void **state)
{
        (void)state;
        struct ca_backoff b;
        int asked = -1;
        backoff_init(&b, 1000, 60000);
        for (int i = 0; i < 50; i++) {
                uint64_t d = backoff_after(&b, 429, "2", 2, &asked);
                assert_int_equal(asked, 1);
                assert_true(d >= 2000 && d <= 2300);
        }
        assert_int_equal(b.attempt, 50);
        backoff_init(&b, 1000, 60000);
        assert_true(backoff_after(&b, 503, "7", 7, &asked) >= 7000);
        assert_int_equal(asked, 1);
        /* Not 429/503, no header, or a header that is not a delay: the own backoff. */
        assert_true(backoff_after(&b, 500, "2", 2, &asked) <= 2000);
        assert_int_equal(asked, 0);
        assert_true(backoff_after(&b, 429, NULL, 0, &asked) <= 4000);
        assert_int_equal(asked, 0);
        assert_true(backoff_after(&b, 503, "soon", 0, NULL) <= 8000);
        assert_true(backoff_after(&b, 0, NULL, 0, NULL) <= 16000);
        assert_int_equal(b.attempt, 5);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_backoff_grows_to_cap), cmocka_unit_test(test_backoff_reset),
            cmocka_unit_test(test_backoff_spaced),       cmocka_unit_test(test_backoff_no_overflow),
            cmocka_unit_test(test_default_source),       cmocka_unit_test(test_retry_after_seconds),
            cmocka_unit_test(test_retry_after_dates),    cmocka_unit_test(test_retry_after_garbage),
            cmocka_unit_test(test_backoff_after),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
