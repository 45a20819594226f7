/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for journal_seal: an order's Changes sealed with AES-256-GCM and opened again;
 * the password never in the sealed text; an altered value, another key and another
 * order's Id refused; the key file made 0600 at the first start and reused, one that
 * others may read refused, the systemd credential preferred. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_test_util.h"
#include "journal_seal.h"

#define PASSWORD "Tr0ub4dor&3-unique-7781"
#define ORDER                                                                                      \
        "{\"Id\":\"o-1\",\"ChangeType\":\"Added\",\"Changes\":{\"cn\":\"Ada\",\"password\":"       \
        "\"" PASSWORD "\"}}"

static struct journal_seal *load(const char *dir)
{
        struct journal_seal *s = NULL;
        struct ca_error err = {0};
        if (journal_seal_load(dir, &s, &err) < 0)
                fail_msg("journal_seal_load: %s", err.msg);
        return s;
}

/* Every form an order's text takes seals and opens to the same order, whether sealed in
 * place (the text as written) or through the tree (escapes in the names that matter). */
static void test_forms(void **state)
{
        (void)state;
        static const char *const forms[] = {
            ORDER,
            "{ \"Id\" : \"o-2\", \"Changes\" : { \"a\" : \"}\\\"{ s3cret2\", \"b\":[1,{\"c\":"
            "\"s3cret2\"}] } , \"Z\":1 }",
            "{\"Id\":\"o\\u002d3\",\"Changes\":{\"p\":\"s3cret3\"}}",
            "{\"Id\":\"o-4\",\"Ch\\u0061nges\":{\"p\":\"s3cret4\"}}",
            "{\"Changes\":{\"p\":\"s3cret5\"},\"ChangeType\":\"Added\"}",
            "{\"Id\":\"o-6\",\"Changes\":null}",
            "{\"Id\":\"o-7\"}",
            "{\"Id\":\"o-8\",\"Changes\":[\"s3cret8\"]}",
        };
        char *dir = tmpdir_make();
        unsetenv("CREDENTIALS_DIRECTORY");
        struct journal_seal *s = load(dir);
        for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
                struct ca_error err = {0};
                char *sealed = NULL, *opened = NULL;
                assert_int_equal(journal_seal_order(s, forms[i], &sealed, &err), 0);
                assert_null(strstr(sealed, "s3cret"));
                assert_null(strstr(sealed, PASSWORD));
                json_t *was = json_loads(forms[i], 0, NULL),
                       *sealed_tree = json_loads(sealed, 0, NULL);
                assert_non_null(was);
                assert_non_null(sealed_tree); /* valid JSON, whichever way it was made */
                if (i == 1)                   /* sealed in place: the rest of the text as written */
                        assert_non_null(
                            strstr(sealed, "{ \"Id\" : \"o-2\", \"Changes\" : {\"$sealed\""));
                assert_int_equal(journal_seal_open_order(s, sealed, &opened, &err), 0);
                json_t *now = json_loads(opened, 0, NULL);
                assert_non_null(now);
                assert_true(json_equal(was, now));
                json_decref(was);
                json_decref(sealed_tree);
                json_decref(now);
                journal_seal_text_free(opened);
                free(sealed);
        }
        journal_seal_free(s);
        tmpdir_remove(dir);
}

static void test_round_trip(void **state)
{
        (void)state;
        char *dir = tmpdir_make();
        unsetenv("CREDENTIALS_DIRECTORY");
        struct journal_seal *s = load(dir);
        struct ca_error err = {0};
        char *sealed = NULL, *opened = NULL;
        assert_int_equal(journal_seal_order(s, ORDER, &sealed, &err), 0);
        assert_null(strstr(sealed, PASSWORD));
        assert_null(strstr(sealed, "Ada"));
        assert_non_null(strstr(sealed, "\"$sealed\":\"v1:"));
        assert_non_null(strstr(sealed, "\"Id\":\"o-1\""));
        assert_int_equal(journal_seal_open_order(s, sealed, &opened, &err), 0);
        assert_non_null(strstr(opened, "\"password\":\"" PASSWORD "\""));
        assert_non_null(strstr(opened, "\"cn\":\"Ada\""));
        journal_seal_text_free(opened);
        /* Sealing twice gives two texts (a fresh nonce each time). */
        char *again = NULL;
        assert_int_equal(journal_seal_order(s, ORDER, &again, &err), 0);
        assert_string_not_equal(sealed, again);
        free(again);
        /* An order that was never sealed opens as it is. */
        assert_int_equal(journal_seal_open_order(s, ORDER, &opened, &err), 0);
        assert_non_null(strstr(opened, PASSWORD));
        journal_seal_text_free(opened);

        /* An altered byte, another order's Id, another key: refused. */
        char *bad = strdup(sealed);
        char *v = strstr(bad, "v1:") + 10;
        *v = *v == 'A' ? 'B' : 'A';
        assert_int_equal(journal_seal_open_order(s, bad, &opened, &err), -EBADMSG);
        assert_null(opened);
        assert_non_null(strstr(err.msg, "do not open"));
        free(bad);
        bad = strdup(sealed);
        memcpy(strstr(bad, "o-1"), "o-2", 3);
        assert_int_equal(journal_seal_open_order(s, bad, &opened, &err), -EBADMSG);
        free(bad);
        char *dir2 = tmpdir_make();
        struct journal_seal *other = load(dir2);
        assert_int_equal(journal_seal_open_order(other, sealed, &opened, &err), -EBADMSG);
        journal_seal_free(other);
        tmpdir_remove(dir2);
        free(sealed);
        journal_seal_free(s);
        tmpdir_remove(dir);
}

static void test_key_file(void **state)
{
        (void)state;
        char *dir = tmpdir_make();
        unsetenv("CREDENTIALS_DIRECTORY");
        char path[4200];
        snprintf(path, sizeof(path), "%s/" JOURNAL_SEAL_KEY_FILE, dir);
        struct journal_seal *s = load(dir);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(st.st_size, 32);
        struct ca_error err = {0};
        char *sealed = NULL, *opened = NULL;
        assert_int_equal(journal_seal_order(s, ORDER, &sealed, &err), 0);
        journal_seal_free(s);
        /* The next start reads the same key. */
        s = load(dir);
        assert_int_equal(journal_seal_open_order(s, sealed, &opened, &err), 0);
        journal_seal_text_free(opened);
        journal_seal_free(s);
        /* Readable by others: refused. */
        assert_int_equal(chmod(path, 0644), 0);
        s = NULL;
        assert_int_equal(journal_seal_load(dir, &s, &err), -EPERM);
        assert_null(s);
        assert_non_null(strstr(err.msg, "chmod 0600"));
        assert_int_equal(chmod(path, 0600), 0);

        /* A systemd credential wins over the file. */
        char *cred = tmpdir_make();
        char cpath[4200];
        snprintf(cpath, sizeof(cpath), "%s/" JOURNAL_SEAL_CREDENTIAL, cred);
        write_text(cpath, "0123456789abcdef0123456789abcdef", 0600);
        setenv("CREDENTIALS_DIRECTORY", cred, 1);
        s = load(dir);
        assert_int_equal(journal_seal_open_order(s, sealed, &opened, &err), -EBADMSG);
        journal_seal_free(s);
        write_text(cpath, "too short", 0600);
        assert_int_equal(journal_seal_load(dir, &s, &err), -EINVAL);
        unsetenv("CREDENTIALS_DIRECTORY");
        free(sealed);
        tmpdir_remove(cred);
        tmpdir_remove(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_round_trip),
            cmocka_unit_test(test_forms),
            cmocka_unit_test(test_key_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
