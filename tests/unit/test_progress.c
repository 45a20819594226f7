/* SPDX-License-Identifier: Apache-2.0 */
/* progress: its rules on a virtual clock (the agent drives it from a 10 s timer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "progress.h"

static void test_idle_says_nothing(void **state)
{
        (void)state;
        struct progress p = {0};
        struct progress_counts c = {0};
        char line[256];
        progress_start(&p, 1000, &c);
        for (uint64_t t = 1; t <= 100; t++)
                assert_int_equal(
                    progress_tick(&p, 1000 + t * PROGRESS_INTERVAL_MS, &c, line, sizeof(line)), 0);
        /* Orders settled before start are not progress either. */
        c.executed = 500;
        progress_start(&p, 2000, &c);
        assert_int_equal(progress_tick(&p, 12000, &c, line, sizeof(line)), 0);
}

static void test_backlog_rate_and_end(void **state)
{
        (void)state;
        struct progress p = {0};
        struct progress_counts c = {.pending = 1000};
        char line[256];
        uint64_t t = 5000;
        progress_start(&p, t, &c);
        /* 10 s later 120 executed and 3 errored: 12.3 orders/s. */
        t += PROGRESS_INTERVAL_MS;
        c.executed = 120;
        c.errored = 3;
        c.pending = 877;
        c.undelivered = 40;
        assert_int_equal(progress_tick(&p, t, &c, line, sizeof(line)), 1);
        assert_string_equal(line, "progress: 120 executed, 3 errored, 877 pending, 12.3 "
                                  "orders/s, 40 results to deliver");
        /* A tick that came late: the rate is over the time really elapsed. */
        t += 2 * PROGRESS_INTERVAL_MS;
        c.executed = 520;
        c.pending = 477;
        c.undelivered = 1;
        assert_int_equal(progress_tick(&p, t, &c, line, sizeof(line)), 1);
        assert_non_null(strstr(line, ", 20.0 orders/s, 1 result to deliver"));
        /* Stalled: orders wait and none finishes. */
        t += PROGRESS_INTERVAL_MS;
        assert_int_equal(progress_tick(&p, t, &c, line, sizeof(line)), 1);
        assert_non_null(strstr(line, "477 pending, 0.0 orders/s"));
        /* The last ones finish: one more line, then silence. */
        t += PROGRESS_INTERVAL_MS;
        c.executed = 997;
        c.pending = 0;
        assert_int_equal(progress_tick(&p, t, &c, line, sizeof(line)), 1);
        assert_non_null(strstr(line, "997 executed, 3 errored, 0 pending, 47.7 orders/s"));
        t += PROGRESS_INTERVAL_MS;
        assert_int_equal(progress_tick(&p, t, &c, line, sizeof(line)), 0);
}

static void test_tick_without_start_and_same_instant(void **state)
{
        (void)state;
        struct progress p = {0};
        struct progress_counts c = {.pending = 3};
        char line[256];
        /* No start: the first tick starts it; no time elapsed gives rate 0, not a
         * division by zero. */
        assert_int_equal(progress_tick(&p, 7000, &c, line, sizeof(line)), 1);
        assert_non_null(strstr(line, "0.0 orders/s"));
        c.executed = 3;
        c.pending = 0;
        assert_int_equal(progress_tick(&p, 7000, &c, line, sizeof(line)), 1);
        assert_non_null(strstr(line, "0.0 orders/s"));
}

static void test_summary(void **state)
{
        (void)state;
        char line[256];
        struct progress_counts c = {
            .executed = 120, .errored = 3, .delivered = 118, .pending = 0, .undelivered = 5};
        progress_summary(&c, line, sizeof(line));
        assert_string_equal(line, "summary: 120 orders executed, 3 errored, 118 results "
                                  "delivered; still pending: 0 orders, 5 results");
        struct progress_counts one = {
            .executed = 1, .delivered = 1, .pending = 1, .undelivered = 1};
        progress_summary(&one, line, sizeof(line));
        assert_string_equal(line, "summary: 1 order executed, 0 errored, 1 result delivered; "
                                  "still pending: 1 order, 1 result");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_idle_says_nothing),
            cmocka_unit_test(test_backlog_rate_and_end),
            cmocka_unit_test(test_tick_without_start_and_same_instant),
            cmocka_unit_test(test_summary),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
