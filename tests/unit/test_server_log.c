/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for server_log: the cause of a server failure once, then a count, a reminder at
 * powers of two, one line when the server answers again; causes said in different
 * callers' words (and cut at different lengths) count as one. The log goes to a
 * temporary file in place of standard error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "server_log.h"

static char path[] = "/tmp/ca-server-log-XXXXXX";
static long read_from;

static int setup(void **state)
{
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        assert_non_null(freopen(path, "w", stderr));
        setvbuf(stderr, NULL, _IONBF, 0);
        log_init(CA_LOG_STDERR, CA_LOG_INFO);
        return 0;
}

static int teardown(void **state)
{
        unlink(path);
        return 0;
}

/* What was logged since the last call. */
static char *logged(void)
{
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        fseek(f, read_from, SEEK_SET);
        char *buf = calloc(1, 1 << 16);
        assert_non_null(buf);
        size_t n = fread(buf, 1, (1 << 16) - 1, f);
        read_from += (long)n;
        fclose(f);
        return buf;
}

static size_t count(const char *text, const char *needle)
{
        size_t n = 0;
        for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

#define TLS_CAUSE                                                                                  \
        "SSL certificate problem: unable to get local issuer certificate (the certificate's "      \
        "issuer, Test CA, is not in the system's CA store)"

static void test_cause_once_then_counted(void **state)
{
        const char *poll = "ProvisioningData for c1 failed: not sent, no access token: token "
                           "request to https://h/connect/token failed: " TLS_CAUSE;
        char heartbeat[120];
        /* The heartbeat says it in a shorter buffer: cut, the same cause. */
        snprintf(heartbeat, sizeof(heartbeat),
                 "heartbeat failed: not sent, no access token: token request to "
                 "https://h/connect/token failed: %s",
                 TLS_CAUSE);
        assert_false(server_log_is_repeat(poll));
        server_log_failed(poll);
        char *out = logged();
        assert_int_equal(count(out, "cannot reach the server"), 1);
        assert_non_null(strstr(out, "issuer, Test CA,"));
        assert_non_null(strstr(out, "connector-agent doctor"));
        free(out);
        assert_true(server_log_is_repeat(poll));
        assert_true(server_log_is_repeat(heartbeat));

        for (int i = 0; i < 7; i++)
                server_log_failed(i % 2 ? heartbeat : poll);
        out = logged();
        assert_string_equal(out, ""); /* counted, not logged */
        free(out);
        server_log_failed(poll); /* the 8th: a reminder with the count */
        out = logged();
        assert_int_equal(count(out, "after 8 more tries"), 1);
        free(out);
        for (int i = 0; i < 7; i++)
                server_log_failed(heartbeat);
        out = logged();
        assert_string_equal(out, "");
        free(out);

        server_log_ok();
        out = logged();
        assert_int_equal(count(out, "the server answers again, after 15 more failed tries"), 1);
        assert_non_null(strstr(out, "is not in the system's CA store"));
        free(out);
        server_log_ok(); /* nothing was failing */
        out = logged();
        assert_string_equal(out, "");
        free(out);
        assert_false(server_log_is_repeat(poll));
}

static void test_new_cause_is_logged(void **state)
{
        server_log_failed("heartbeat answered HTTP 503");
        server_log_failed("ProvisioningData for c1 answered HTTP 503");
        char *out = logged();
        assert_int_equal(count(out, "cannot reach the server"), 1);
        free(out);
        server_log_failed("heartbeat failed: Failed to connect to h port 1: Connection refused");
        out = logged();
        assert_int_equal(count(out, "cannot reach the server"), 1);
        assert_non_null(strstr(out, "Connection refused"));
        free(out);
        server_log_ok();
        free(logged());
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cause_once_then_counted),
            cmocka_unit_test(test_new_cause_is_logged),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
