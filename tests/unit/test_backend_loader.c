/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for backend_loader and backend_host: the plug-ins built by the project load, bad
 * ones are refused with the file named, and every host accessor reads the agent's order
 * and settings as the plug-in interface promises. */
#include "backend_test_util.h"

#include <errno.h>

static void test_loads_project_plugins(void **state)
{
        const char *names[] = {"sql", "exec", "file"};
        for (size_t i = 0; i < 3; i++) {
                struct backend *b = load_backend(names[i]);
                const struct ca_backend_ops *ops = backend_ops(b);
                assert_non_null(ops);
                assert_string_equal(backend_name(b), names[i]);
                assert_string_equal(ops->name, names[i]);
                assert_int_equal(CA_BACKEND_ABI_MAJOR_OF(ops->abi_version), CA_BACKEND_ABI_MAJOR);
                assert_true(ops->size >= sizeof(struct ca_backend_ops));
                assert_int_equal(ops->signature, CA_BACKEND_SIGNATURE);
                assert_non_null(ops->describe);
                backend_unload(b);
        }
        backend_unload(NULL);
        assert_null(backend_ops(NULL));
        assert_null(backend_name(NULL));
}

static void expect_refusal(const char *dir, const char *name, const char *mode, int code,
                           const char *needle)
{
        struct backend *b = (struct backend *)0x1;
        struct ca_error err = {0};
        if (mode)
                setenv("CA_TEST_BADABI_MODE", mode, 1);
        else
                unsetenv("CA_TEST_BADABI_MODE");
        int r = backend_load(dir, name, &b, &err);
        unsetenv("CA_TEST_BADABI_MODE");
        assert_int_equal(r, code);
        assert_null(b);
        if (!strstr(err.msg, needle))
                fail_msg("refusal of %s (%s) says \"%s\", expected to find \"%s\"", name,
                         mode ? mode : "-", err.msg, needle);
}

static void test_refuses_bad_plugins(void **state)
{
        const char *dir = test_backend_dir();
        char path[4200];
        snprintf(path, sizeof(path), "%s/badabi.so", dir);
        expect_refusal(dir, "badabi", "major", -EPROTO, "interface version 2.0");
        expect_refusal(dir, "badabi", "major", -EPROTO, path);
        expect_refusal(dir, "badabi", "null", -ENOEXEC, "returned no table");
        expect_refusal(dir, "badabi", "small", -EPROTO, "smaller than");
        expect_refusal(dir, "badabi", "name", -EINVAL, "calls itself 'sql'");
        expect_refusal(dir, "badabi", "noop", -EINVAL, "lacks the execute operation");
        expect_refusal(dir, "badabi", "signature", -EPROTO,
                       "is not binary compatible with this agent");
        expect_refusal(dir, "badabi", "startup", -EINVAL,
                       "failed to start: libfoo: cannot initialise");
        snprintf(path, sizeof(path), "%s/nosym.so", dir);
        expect_refusal(dir, "nosym", NULL, -ENOEXEC,
                       "does not export connector_agent_backend_entry");
        expect_refusal(dir, "nosym", NULL, -ENOEXEC, path);
        expect_refusal(dir, "nonexistent", NULL, -ENOENT, "nonexistent.so");

        /* The control: the same plug-in with nothing wrong loads. */
        setenv("CA_TEST_BADABI_MODE", "ok", 1);
        struct backend *b = NULL;
        struct ca_error err = {0};
        assert_int_equal(backend_load(dir, "badabi", &b, &err), 0);
        unsetenv("CA_TEST_BADABI_MODE");
        backend_unload(b);
}

static void test_refuses_bad_names(void **state)
{
        const char *bad[] = {
            "../backends/sql",
            "SQL",
            "",
            "a/b",
            "sql.so",
            "sq l",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct backend *b = NULL;
                struct ca_error err = {0};
                assert_int_equal(backend_load(test_backend_dir(), bad[i], &b, &err), -EINVAL);
                assert_null(b);
                assert_non_null(strstr(err.msg, "invalid"));
        }
}

static void copy_file(const char *from, const char *to, mode_t mode)
{
        FILE *in = fopen(from, "rb");
        FILE *out = fopen(to, "wb");
        assert_non_null(in);
        assert_non_null(out);
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
                assert_int_equal(fwrite(buf, 1, n, out), n);
        fclose(in);
        assert_int_equal(fclose(out), 0);
        assert_int_equal(chmod(to, mode), 0);
}

/* backend_dir is a search list: a plug-in installed by hand in the first directory
 * stands before the packaged one, the others are still found in the second, and a name
 * in neither is refused with the whole list named. */
static void test_search_list(void **state)
{
        char *local = tmpdir_make();
        char from[4200], to[4200], list[8600];
        snprintf(from, sizeof(from), "%s/file.so", test_backend_dir());
        snprintf(to, sizeof(to), "%s/file.so", local);
        copy_file(from, to, 0755);
        snprintf(list, sizeof(list), "%s:%s", local, test_backend_dir());

        struct backend *b = NULL;
        struct ca_error err = {0};
        assert_int_equal(backend_load(list, "file", &b, &err), 0);
        assert_string_equal(backend_ops(b)->name, "file");
        backend_unload(b);
        /* The local copy is the one loaded: made unusable, it is refused, not skipped. */
        assert_int_equal(chmod(to, 0757), 0);
        assert_int_equal(backend_load(list, "file", &b, &err), -EPERM);
        assert_non_null(strstr(err.msg, to));

        assert_int_equal(backend_load(list, "sql", &b, &err), 0);
        assert_string_equal(backend_ops(b)->name, "sql");
        backend_unload(b);

        assert_int_equal(backend_load(list, "nosuch", &b, &err), -ENOENT);
        assert_null(b);
        assert_non_null(strstr(err.msg, "no nosuch.so in the back-end directories"));
        assert_non_null(strstr(err.msg, list));
        unlink(to);
        rmdir(local);
        free(local);
}

static void test_refuses_renamed_and_writable(void **state)
{
        char *dir = tmpdir_make();
        char from[4200], to[4200];
        snprintf(from, sizeof(from), "%s/file.so", test_backend_dir());
        snprintf(to, sizeof(to), "%s/other.so", dir);
        copy_file(from, to, 0755);
        struct backend *b = NULL;
        struct ca_error err = {0};
        assert_int_equal(backend_load(dir, "other", &b, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "calls itself 'file'"));

        snprintf(to, sizeof(to), "%s/file.so", dir);
        copy_file(from, to, 0757);
        assert_int_equal(backend_load(dir, "file", &b, &err), -EPERM);
        assert_non_null(strstr(err.msg, "writable by every user"));
        assert_int_equal(chmod(to, 0775), 0);
        assert_int_equal(backend_load(dir, "file", &b, &err), -EPERM);
        assert_non_null(strstr(err.msg, "writable by its group"));
        assert_int_equal(chmod(to, 0755), 0);
        assert_int_equal(backend_load(dir, "file", &b, &err), 0);
        backend_unload(b);

        /* Owned by someone else: only root may hand a file to another user, so the test
         * can set this up only as root. */
        if (geteuid() == 0) {
                assert_int_equal(chown(to, 65534, (gid_t)-1), 0);
                assert_int_equal(backend_load(dir, "file", &b, &err), -EPERM);
                assert_non_null(
                    strstr(err.msg, "owned by uid 65534, neither root nor the agent's"));
        }
        tmpdir_remove(dir);
}

/* backend.h's growth rule, from both sides. */
static void test_interface_versions(void **state)
{
        const char *dir = test_backend_dir();
        struct backend *b = NULL;
        struct ca_error err = {0};

        /* Built against the frozen 1.0 header: loads, and the agent calls into it. */
        assert_int_equal(backend_load(dir, "abi10", &b, &err), 0);
        const struct ca_backend_ops *ops = backend_ops(b);
        assert_int_equal(ops->abi_version, 1u << 16);
        assert_int_equal(ops->size, CA_BACKEND_OPS_SIZE_1_0);
        void *instance = NULL, *session = NULL;
        struct ca_backend_error berr = {0};
        struct ca_backend_result res = {0};
        assert_int_equal(ops->instance_new(backend_host(), NULL, &instance, &berr), 0);
        assert_int_equal(ops->session_open(instance, &session, &berr), 0);
        assert_int_equal(ops->execute(session, NULL, NULL, &res, &berr), 0);
        assert_string_equal(res.message, "done by a 1.0 plug-in");
        ops->session_close(session);
        ops->instance_free(instance);
        backend_unload(b);

        /* Built for 1.2 and calling a 1.2 host member: it must refuse this agent. */
        expect_refusal(dir, "abinext", NULL, -ENOEXEC,
                       "refused to load with interface version 1.1");
        /* Built for 1.2 but needing nothing newer: loads, its unknown member unread. */
        setenv("CA_TEST_ABINEXT_MODE", "spares", 1);
        assert_int_equal(backend_load(dir, "abinext", &b, &err), 0);
        assert_int_equal(CA_BACKEND_ABI_MINOR_OF(backend_ops(b)->abi_version), 2);
        backend_unload(b);
        /* Another ABI's signature is refused whatever the minor version. */
        setenv("CA_TEST_ABINEXT_MODE", "badsig", 1);
        assert_int_equal(backend_load(dir, "abinext", &b, &err), -EPROTO);
        assert_non_null(strstr(err.msg, "not binary compatible"));
        unsetenv("CA_TEST_ABINEXT_MODE");
}

static const char *full_order =
    "{\"Id\":\"ord-1\",\"AssignedResourceTypeId\":\"3930001\",\"ChangeType\":\"Added\","
    "\"WorkflowInstanceId\":\"81\",\"Owner\":{\"Id\":\"21511\"},"
    "\"ResourceType\":{\"Id\":\"-41\",\"Identifier\":\"LDAP_User\","
    "\"SourceEntityType\":{\"Id\":\"51\"}},"
    "\"Changes\":{\"uid\":\"jbond\",\"sn\":null,\"memberOf_add\":[\"g1\",\"g2\"],"
    "\"mail\":\"j@example.com\"},"
    "\"Resource\":{\"uid\":\"jbond-old\",\"n\":1},\"Arguments\":{\"Flow\":\"Start\"}}";

static void test_host_order_accessors(void **state)
{
        const struct ca_host *h = backend_host();
        assert_int_equal(h->abi_version, CA_BACKEND_ABI_VERSION);
        assert_int_equal(h->size, sizeof(struct ca_host));
        struct ca_order *o = order_make(full_order);
        const struct ca_backend_order *bo = backend_order(o);

        assert_string_equal(h->order_key(bo), "ord-1");
        assert_string_equal(h->order_id(bo), "ord-1");
        assert_string_equal(h->order_assignment_id(bo), "3930001");
        assert_int_equal(h->order_change(bo), CA_BACKEND_CHANGE_ADDED);
        assert_string_equal(h->order_resource_type(bo), "LDAP_User");
        assert_string_equal(h->order_owner_id(bo), "21511");

        assert_int_equal(h->change_count(bo), 4);
        assert_string_equal(h->change_key(bo, 0), "uid");
        assert_string_equal(h->change_key(bo, 1), "sn");
        assert_string_equal(h->change_key(bo, 2), "memberOf_add");
        assert_string_equal(h->change_key(bo, 3), "mail");
        assert_null(h->change_key(bo, 4));
        assert_int_equal(h->change_kind(bo, "uid"), CA_BACKEND_VALUE_STRING);
        assert_int_equal(h->change_kind(bo, "sn"), CA_BACKEND_VALUE_NULL);
        assert_int_equal(h->change_kind(bo, "memberOf_add"), CA_BACKEND_VALUE_LIST);
        assert_int_equal(h->change_kind(bo, "nope"), CA_BACKEND_VALUE_ABSENT);
        assert_string_equal(h->change_string(bo, "uid"), "jbond");
        assert_null(h->change_string(bo, "sn"));
        assert_int_equal(h->change_list_count(bo, "memberOf_add"), 2);
        assert_string_equal(h->change_list_item(bo, "memberOf_add", 1), "g2");
        assert_null(h->change_list_item(bo, "memberOf_add", 2));
        assert_int_equal(h->change_list_count(bo, "uid"), 0);
        assert_string_equal(h->resource_string(bo, "uid"), "jbond-old");
        assert_null(h->resource_string(bo, "n")); /* not a string */
        assert_string_equal(h->argument(bo, "Flow"), "Start");
        assert_null(h->argument(bo, "Other"));

        const char *j1 = h->order_json(bo);
        assert_non_null(j1);
        json_t *back = json_loads(j1, 0, NULL);
        assert_true(json_equal(back, o->json));
        json_decref(back);
        assert_ptr_equal(h->order_json(bo), j1); /* same order, same text */
        assert_null(strchr(j1, '\n'));           /* compact */

        /* A Modified order without Id: key is the computed SHA-256, id is NULL. */
        struct ca_order *o2 =
            order_make("{\"AssignedResourceTypeId\":\"7\",\"ChangeType\":\"Deleted\","
                       "\"Changes\":{}}");
        const struct ca_backend_order *bo2 = backend_order(o2);
        assert_null(h->order_id(bo2));
        assert_int_equal(strlen(h->order_key(bo2)), 64);
        assert_int_equal(h->order_change(bo2), CA_BACKEND_CHANGE_DELETED);
        assert_int_equal(h->change_count(bo2), 0);
        assert_null(h->order_owner_id(bo2));
        /* The first order's text stays valid while another order is read. */
        assert_non_null(h->order_json(bo2));
        assert_non_null(strstr(j1, "\"ord-1\""));
        order_free(o2);
        order_free(o);
}

static void test_host_settings_and_secrets(void **state)
{
        const struct ca_host *h = backend_host();
        char *dir = tmpdir_make();
        char secret_path[4200], cred_dir[4200], cred_path[4300], open_path[4200];
        snprintf(secret_path, sizeof(secret_path), "%s/pw", dir);
        write_text(secret_path, "s3cret\n", 0600);
        snprintf(open_path, sizeof(open_path), "%s/open", dir);
        write_text(open_path, "visible\n", 0644);
        snprintf(cred_dir, sizeof(cred_dir), "%s/creds", dir);
        assert_int_equal(mkdir(cred_dir, 0700), 0);
        snprintf(cred_path, sizeof(cred_path), "%s/dbpw", cred_dir);
        write_text(cred_path, "from-cred", 0400);

        const char *kv[] = {"timeout",
                            "250ms",
                            "bad_timeout",
                            "soon",
                            "password_file",
                            secret_path,
                            "other_credential",
                            "dbpw",
                            "evil_credential",
                            "../pw",
                            "open_file",
                            open_path,
                            NULL};
        struct ca_settings s;
        settings_make(&s, kv);
        const struct ca_backend_settings *bs = backend_settings(&s);

        assert_int_equal(h->setting_count(bs), 6);
        assert_string_equal(h->setting_key(bs, 0), "timeout");
        assert_null(h->setting_key(bs, 6));
        assert_string_equal(h->setting(bs, "timeout"), "250ms");
        assert_null(h->setting(bs, "absent"));

        uint64_t ms = 0;
        struct ca_backend_error err = {0};
        assert_int_equal(h->setting_ms(bs, "timeout", 5, &ms, &err), CA_BACKEND_OK);
        assert_int_equal(ms, 250);
        assert_int_equal(h->setting_ms(bs, "absent", 7000, &ms, &err), CA_BACKEND_OK);
        assert_int_equal(ms, 7000);
        assert_int_equal(h->setting_ms(bs, "bad_timeout", 5, &ms, &err), CA_BACKEND_EINVALID);
        assert_string_equal(err.key, "bad_timeout");
        assert_non_null(strstr(err.message, "bad_timeout = soon"));

        memset(&err, 0, sizeof(err));
        char *pw = h->secret(bs, "password", &err);
        assert_non_null(pw);
        assert_string_equal(pw, "s3cret");
        h->secret_free(pw);

        setenv("CREDENTIALS_DIRECTORY", cred_dir, 1);
        pw = h->secret(bs, "other", &err);
        assert_non_null(pw);
        assert_string_equal(pw, "from-cred");
        h->secret_free(pw);

        assert_null(h->secret(bs, "evil", &err)); /* a path, not a credential name */
        assert_string_equal(err.key, "evil_credential");
        unsetenv("CREDENTIALS_DIRECTORY");
        memset(&err, 0, sizeof(err));
        assert_null(h->secret(bs, "other", &err));
        assert_non_null(strstr(err.message, "CREDENTIALS_DIRECTORY"));

        memset(&err, 0, sizeof(err));
        assert_null(h->secret(bs, "open", &err)); /* others may read it */
        assert_string_equal(err.key, "open_file");
        assert_null(strstr(err.message, "visible"));

        memset(&err, 0, sizeof(err));
        assert_null(h->secret(bs, "missing", &err));
        assert_non_null(strstr(err.message, "missing_file"));
        assert_int_equal(err.code, CA_BACKEND_EINVALID);

        settings_clear(&s);
        tmpdir_remove(dir);
}

static void test_host_outcomes(void **state)
{
        const struct ca_host *h = backend_host();
        struct ca_backend_error err = {0};
        assert_int_equal(h->error(&err, CA_BACKEND_EINVALID, "table", "table: %s", "required"),
                         CA_BACKEND_EINVALID);
        assert_int_equal(h->error(&err, CA_BACKEND_EINVALID, "columns", "columns: bad"),
                         CA_BACKEND_EINVALID);
        assert_string_equal(err.message, "table: required\ncolumns: bad");
        assert_string_equal(err.key, "table"); /* the first key at fault */
        assert_int_equal(err.code, CA_BACKEND_EINVALID);
        assert_int_equal(h->error(NULL, CA_BACKEND_EINTERNAL, NULL, "x"), CA_BACKEND_EINTERNAL);

        /* Lines never overflow, and a cut never splits a UTF-8 character. */
        char big[700];
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        for (int i = 0; i < 5; i++)
                h->error(&err, CA_BACKEND_EINVALID, NULL, "%s", big);
        assert_true(strlen(err.message) < sizeof(err.message));

        struct ca_backend_result r = {0};
        h->result_set(&r, CA_BACKEND_EXECUTED, "uid=x", "done %d", 3);
        assert_true(r.set);
        assert_int_equal(r.state, CA_BACKEND_EXECUTED);
        assert_string_equal(r.message, "done 3");
        assert_string_equal(r.resource_identifier, "uid=x");
        h->result_set(&r, CA_BACKEND_ERRORED, NULL, "no");
        assert_int_equal(r.state, CA_BACKEND_ERRORED);
        assert_string_equal(r.resource_identifier, "");

        char euro[1100] = "";
        for (int i = 0; i < 340; i++)
                strcat(euro, "\xe2\x82\xac"); /* 1020 bytes of 3-byte characters */
        strcat(euro, "\xe2\x82\xac");
        h->result_set(&r, CA_BACKEND_ERRORED, NULL, "x%s", euro);
        size_t len = strlen(r.message);
        assert_true(len < sizeof(r.message));
        assert_int_equal((len - 1) % 3, 0); /* "x" then whole characters only */

        struct ca_order *o = order_make(full_order);
        h->result_set(&r, CA_BACKEND_EXECUTED, "uid=jbond", "ok");
        struct ca_result *res = backend_result_to_result(o, &r, 1700000000);
        assert_non_null(res);
        assert_int_equal(res->state, CA_RESULT_EXECUTED);
        assert_string_equal(res->message, "ok");
        assert_string_equal(res->resource_identifier, "uid=jbond");
        assert_string_equal(res->id, "ord-1");
        assert_int_equal(res->executed_at, 1700000000);
        result_free(res);

        struct ca_backend_result unset = {0};
        res = backend_result_to_result(o, &unset, 1);
        assert_int_equal(res->state, CA_RESULT_ERRORED);
        assert_non_null(strstr(res->message, "without saying"));
        result_free(res);
        order_free(o);
}

/* order_json's text lives as long as its order, however many other orders are read. */
static void test_host_order_json_lifetime(void **state)
{
        const struct ca_host *h = backend_host();
        struct ca_order *o = order_make(full_order);
        const char *j1 = h->order_json(backend_order(o));
        assert_non_null(j1);
        for (int i = 0; i < 32; i++) {
                struct ca_order *other =
                    order_make("{\"AssignedResourceTypeId\":\"7\",\"ChangeType\":\"Deleted\"}");
                assert_non_null(h->order_json(backend_order(other)));
                order_free(other);
        }
        assert_non_null(strstr(j1, "\"ord-1\""));
        assert_ptr_equal(h->order_json(backend_order(o)), j1);
        order_free(o);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_loads_project_plugins),
            cmocka_unit_test(test_refuses_bad_plugins),
            cmocka_unit_test(test_refuses_bad_names),
            cmocka_unit_test(test_refuses_renamed_and_writable),
            cmocka_unit_test(test_search_list),
            cmocka_unit_test(test_interface_versions),
            cmocka_unit_test(test_host_order_accessors),
            cmocka_unit_test(test_host_settings_and_secrets),
            cmocka_unit_test(test_host_outcomes),
            cmocka_unit_test(test_host_order_json_lifetime),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
