/* SPDX-License-Identifier: Apache-2.0 */
/* secret_read_file: modes, symlinks, size and newline rules, and that no message ever
 * carries the content. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define SECRET "S3cr3t-Value-XYZ"

static char dir[PATH_MAX];

static int setup(void **state)
{
        snprintf(dir, sizeof(dir), "/tmp/ca-secret-XXXXXX");
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static const char *write_secret(const char *name, mode_t mode, const char *content, size_t len)
{
        static char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, len), (ssize_t)len);
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
        return path;
}

static void expect_refused(const char *path, int code, const char *words)
{
        struct ca_error err = {0};
        char *s = (char *)1;
        assert_int_equal(secret_read_file(path, &s, &err), code);
        assert_null(s);
        assert_int_equal(err.code, code);
        assert_non_null(strstr(err.msg, path));
        if (words && !strstr(err.msg, words))
                fail_msg("'%s' not in '%s'", words, err.msg);
        assert_null(strstr(err.msg, SECRET));
}

static void test_modes(void **state)
{
        struct ca_error err = {0};
        char *s = NULL;
        const char *p = write_secret("ok", 0600, SECRET "\n", strlen(SECRET) + 1);
        assert_int_equal(secret_read_file(p, &s, &err), 0);
        assert_string_equal(s, SECRET);
        secret_free(s);

        p = write_secret("group-read", 0640, SECRET, strlen(SECRET));
        assert_int_equal(secret_read_file(p, &s, &err), 0);
        assert_string_equal(s, SECRET);
        secret_free(s);

        p = write_secret("world-read", 0644, SECRET, strlen(SECRET));
        expect_refused(p, -EPERM, "mode 0644");
        p = write_secret("group-write", 0620, SECRET, strlen(SECRET));
        expect_refused(p, -EPERM, "mode 0620");
        p = write_secret("world-write", 0602, SECRET, strlen(SECRET));
        expect_refused(p, -EPERM, "mode 0602");
}

static void test_symlink_target_checked(void **state)
{
        struct ca_error err = {0};
        char link[PATH_MAX], target[PATH_MAX];
        char *s = NULL;

        snprintf(target, sizeof(target), "%s", write_secret("target-ok", 0600, SECRET, 16));
        snprintf(link, sizeof(link), "%s/link-ok", dir);
        assert_int_equal(symlink(target, link), 0);
        assert_int_equal(secret_read_file(link, &s, &err), 0);
        assert_string_equal(s, SECRET);
        secret_free(s);

        /* The link itself is 0777; only the target's mode counts. */
        snprintf(target, sizeof(target), "%s", write_secret("target-open", 0644, SECRET, 16));
        snprintf(link, sizeof(link), "%s/link-open", dir);
        assert_int_equal(symlink(target, link), 0);
        expect_refused(link, -EPERM, "mode 0644");
}

static void test_content_rules(void **state)
{
        struct ca_error err = {0};
        char *s = NULL;

        /* Exactly one trailing newline goes. */
        const char *p = write_secret("two-nl", 0600, "abc\n\n", 5);
        assert_int_equal(secret_read_file(p, &s, &err), 0);
        assert_string_equal(s, "abc\n");
        secret_free(s);
        p = write_secret("crlf", 0600, "abc\r\n", 5);
        assert_int_equal(secret_read_file(p, &s, &err), 0);
        assert_string_equal(s, "abc");
        secret_free(s);
        p = write_secret("no-nl", 0600, "abc", 3);
        assert_int_equal(secret_read_file(p, &s, &err), 0);
        assert_string_equal(s, "abc");
        secret_free(s);

        p = write_secret("empty", 0600, "", 0);
        expect_refused(p, -EINVAL, "empty");
        p = write_secret("only-nl", 0600, "\n", 1);
        expect_refused(p, -EINVAL, "empty");
        p = write_secret("nul", 0600, SECRET "\0" SECRET, 2 * strlen(SECRET) + 1);
        expect_refused(p, -EINVAL, "NUL");

        /* 64 KiB is the cap: exactly the cap passes, one byte more is refused. */
        size_t cap = 64 * 1024;
        char *big = malloc(cap + 1);
        assert_non_null(big);
        memset(big, 'a', cap + 1);
        p = write_secret("cap", 0600, big, cap);
        assert_int_equal(secret_read_file(p, &s, &err), 0);
        assert_int_equal(strlen(s), cap);
        secret_free(s);
        p = write_secret("too-big", 0600, big, cap + 1);
        expect_refused(p, -EFBIG, "larger");
        free(big);

        char missing[PATH_MAX];
        snprintf(missing, sizeof(missing), "%s/missing", dir);
        expect_refused(missing, -ENOENT, "cannot open");
        expect_refused(dir, -EINVAL, "not a regular file");
}

static void test_free_null(void **state)
{
        secret_free(NULL);
        char *s = strdup("x");
        secret_free(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_modes, setup, teardown),
            cmocka_unit_test_setup_teardown(test_symlink_target_checked, setup, teardown),
            cmocka_unit_test_setup_teardown(test_content_rules, setup, teardown),
            cmocka_unit_test(test_free_null),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
