/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the file back-end, through the real loader and host table, in a temporary
 * directory: the written document, repeats, a conflicting file, file names that cannot
 * leave the directory, long names, probe, describe, settings, and a directory that went
 * away. */
#include "backend_test_util.h"

#include <dirent.h>

static char *top; /* holds out/ (the back-end's directory) and anything that escapes it */
static char out_dir[4200];
static struct backend *be;
static const struct ca_backend_ops *ops;
static struct ca_settings conn;
static void *inst;

static int setup(void **state)
{
        umask(077); /* the file mode must not depend on it */
        top = tmpdir_make();
        snprintf(out_dir, sizeof(out_dir), "%s/out", top);
        assert_int_equal(mkdir(out_dir, 0750), 0);
        be = load_backend("file");
        ops = backend_ops(be);
        const char *kv[] = {"backend", "file", "directory", out_dir, NULL};
        settings_make(&conn, kv);
        struct ca_backend_error err = {0};
        if (ops->instance_new(backend_host(), backend_settings(&conn), &inst, &err) !=
            CA_BACKEND_OK)
                fail_msg("instance_new: %s", err.message);
        return 0;
}

static int teardown(void **state)
{
        ops->instance_free(inst);
        settings_clear(&conn);
        backend_unload(be);
        tmpdir_remove(top);
        return 0;
}

static size_t count_entries(const char *d)
{
        DIR *dp = opendir(d);
        assert_non_null(dp);
        size_t n = 0;
        struct dirent *e;
        while ((e = readdir(dp)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                        n++;
        closedir(dp);
        return n;
}

static struct ca_backend_result exec_json(const char *json, int want_rc)
{
        struct ca_order *o = order_make(json);
        struct ca_settings map = {0};
        struct ca_backend_result r = {0};
        struct ca_backend_error err = {0};
        void *sess = NULL;
        assert_int_equal(ops->session_open(inst, &sess, &err), CA_BACKEND_OK);
        int rc = ops->execute(sess, backend_order(o), backend_settings(&map), &r, &err);
        if (rc != want_rc)
                fail_msg("execute returned %d (%s), expected %d", rc, err.message, want_rc);
        ops->session_close(sess);
        order_free(o);
        return r;
}

static char *order_with_id(const char *id, const char *uid)
{
        json_t *o = json_pack("{s:s, s:s, s:s, s:{s:s}}", "Id", id, "AssignedResourceTypeId", "5",
                              "ChangeType", "Added", "Changes", "uid", uid);
        char *text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        return text;
}

static json_t *load_json(const char *path)
{
        json_error_t e;
        json_t *j = json_load_file(path, 0, &e);
        if (!j)
                fail_msg("%s: %s", path, e.text);
        return j;
}

static void test_writes_and_repeats(void **state)
{
        char *json = order_with_id("ord-7", "jbond");
        char path[4400];
        snprintf(path, sizeof(path), "%s/ord-7.json", out_dir);

        struct ca_backend_result r = exec_json(json, CA_BACKEND_OK);
        assert_int_equal(r.state, CA_BACKEND_EXECUTED);
        assert_string_equal(r.resource_identifier, path);

        json_t *doc = load_json(path);
        const char *at = json_string_value(json_object_get(doc, "ReceivedAt"));
        assert_non_null(at);
        assert_int_equal(strlen(at), 20); /* 2026-11-22T10:15:02Z */
        assert_int_equal(at[19], 'Z');
        char *at_copy = strdup(at);
        json_object_del(doc, "ReceivedAt");
        json_t *want = json_loads(json, 0, NULL);
        assert_true(json_equal(doc, want));
        json_decref(doc);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0640);
        assert_int_equal(count_entries(out_dir), 1); /* no temporary file left */

        /* Again: already there with the same order, left as it was. */
        r = exec_json(json, CA_BACKEND_OK);
        assert_int_equal(r.state, CA_BACKEND_EXECUTED);
        assert_non_null(strstr(r.message, "already written"));
        doc = load_json(path);
        assert_string_equal(json_string_value(json_object_get(doc, "ReceivedAt")), at_copy);
        json_decref(doc);

        /* Same key, another order: Errored, the file is not replaced. */
        char *other = order_with_id("ord-7", "someone-else");
        r = exec_json(other, CA_BACKEND_OK);
        assert_int_equal(r.state, CA_BACKEND_ERRORED);
        assert_non_null(strstr(r.message, "different order"));
        doc = load_json(path);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(doc, "Changes"), "uid")), "jbond");
        json_decref(doc);
        json_decref(want);

        /* A symbolic link planted under an order's name is never followed. */
        char link_path[4400];
        snprintf(link_path, sizeof(link_path), "%s/planted.json", out_dir);
        assert_int_equal(symlink("/etc/hostname", link_path), 0);
        char *planted = order_with_id("planted", "x");
        r = exec_json(planted, CA_BACKEND_OK);
        assert_int_equal(r.state, CA_BACKEND_ERRORED);
        assert_non_null(strstr(r.message, "symbolic link"));
        assert_int_equal(unlink(link_path), 0);
        free(planted);
        free(other);
        free(at_copy);
        free(json);
}

static void expect_name(const char *id, const char *want_name)
{
        char *json = order_with_id(id, "x");
        struct ca_backend_result r = exec_json(json, CA_BACKEND_OK);
        assert_int_equal(r.state, CA_BACKEND_EXECUTED);
        char want[4400];
        snprintf(want, sizeof(want), "%s/%s", out_dir, want_name);
        assert_string_equal(r.resource_identifier, want);
        struct stat st;
        assert_int_equal(lstat(want, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        free(json);
}

static void test_names_stay_inside(void **state)
{
        size_t before_top = count_entries(top);
        expect_name("../escape", "%2E.%2Fescape.json");
        expect_name("../../etc/passwd", "%2E.%2F..%2Fetc%2Fpasswd.json");
        expect_name("a/b", "a%2Fb.json");
        expect_name("a%2Fb", "a%252Fb.json"); /* never the same name as "a/b" */
        expect_name("..", "%2E..json");
        expect_name(".", "%2E.json");
        expect_name(".hidden", "%2Ehidden.json");
        expect_name("we ird*?:<>|\\\"'$~", "we%20ird%2A%3F%3A%3C%3E%7C%5C%22%27%24%7E.json");
        expect_name("ok.name_1-2", "ok.name_1-2.json");
        /* Nothing appeared next to the directory. */
        assert_int_equal(count_entries(top), before_top);

        /* A long Id still fits in a file name, and two that share a long prefix differ. */
        char id1[257], id2[257];
        memset(id1, '/', 256);
        id1[256] = '\0';
        memcpy(id2, id1, sizeof(id1));
        id2[255] = 'x';
        char *j1 = order_with_id(id1, "x"), *j2 = order_with_id(id2, "x");
        struct ca_backend_result r1 = exec_json(j1, CA_BACKEND_OK);
        struct ca_backend_result r2 = exec_json(j2, CA_BACKEND_OK);
        assert_int_equal(r1.state, CA_BACKEND_EXECUTED);
        assert_int_equal(r2.state, CA_BACKEND_EXECUTED);
        assert_string_not_equal(r1.resource_identifier, r2.resource_identifier);
        const char *base = strrchr(r1.resource_identifier, '/') + 1;
        assert_true(strlen(base) <= 255);
        assert_null(strchr(base, '/'));
        free(j1);
        free(j2);
}

static void test_probe_and_describe(void **state)
{
        char *json = order_with_id("probe-1", "p");
        struct ca_order *o = order_make(json);
        struct ca_settings map = {0};
        struct ca_backend_result r = {0};
        struct ca_backend_error err = {0};
        enum ca_backend_probe a = 0;
        char path[4400];
        snprintf(path, sizeof(path), "%s/probe-1.json", out_dir);

        assert_int_equal(ops->probe(inst, backend_order(o), backend_settings(&map), &a, &r, &err),
                         CA_BACKEND_OK);
        assert_int_equal(a, CA_BACKEND_PROBE_NOT_APPLIED);
        assert_int_equal(ops->describe(inst, backend_order(o), backend_settings(&map), &r, &err),
                         CA_BACKEND_OK);
        assert_non_null(strstr(r.message, path));
        assert_non_null(strstr(r.message, "\"Id\":\"probe-1\""));
        /* The order's values are not shown: one may be a password (protocol.md). */
        assert_null(strstr(r.message, "\"uid\":\"p\""));
        assert_non_null(strstr(r.message, "\"uid\":\"<hidden>\""));
        struct stat st;
        assert_int_equal(stat(path, &st), -1); /* describe wrote nothing */

        exec_json(json, CA_BACKEND_OK);
        memset(&r, 0, sizeof(r));
        assert_int_equal(ops->probe(inst, backend_order(o), backend_settings(&map), &a, &r, &err),
                         CA_BACKEND_OK);
        assert_int_equal(a, CA_BACKEND_PROBE_APPLIED);
        assert_int_equal(r.state, CA_BACKEND_EXECUTED);
        assert_string_equal(r.resource_identifier, path);
        assert_int_equal(ops->check(inst, &err), CA_BACKEND_OK);
        order_free(o);
        free(json);
}

static void test_settings(void **state)
{
        struct ca_settings s;
        void *other = NULL;
        struct ca_backend_error err = {0};
        const char *none[] = {"backend", "file", NULL};
        settings_make(&s, none);
        assert_int_equal(ops->instance_new(backend_host(), backend_settings(&s), &other, &err),
                         CA_BACKEND_EINVALID);
        assert_string_equal(err.key, "directory");
        settings_clear(&s);

        memset(&err, 0, sizeof(err));
        const char *missing[] = {"directory", "/nonexistent/orders", NULL};
        settings_make(&s, missing);
        assert_int_equal(ops->instance_new(backend_host(), backend_settings(&s), &other, &err),
                         CA_BACKEND_EINVALID);
        assert_non_null(strstr(err.message, "/nonexistent/orders"));
        settings_clear(&s);

        memset(&err, 0, sizeof(err));
        const char *map[] = {"connector", "f", "table", "x", NULL};
        settings_make(&s, map);
        assert_int_equal(ops->mapping_check(inst, backend_settings(&s), &err), CA_BACKEND_EINVALID);
        assert_string_equal(err.key, "table");
        settings_clear(&s);
}

static void test_directory_gone(void **state)
{
        char d[4300];
        snprintf(d, sizeof(d), "%s/gone", top);
        assert_int_equal(mkdir(d, 0700), 0);
        struct ca_settings s;
        const char *kv[] = {"directory", d, NULL};
        settings_make(&s, kv);
        void *gone = NULL;
        struct ca_backend_error err = {0};
        assert_int_equal(ops->instance_new(backend_host(), backend_settings(&s), &gone, &err),
                         CA_BACKEND_OK);
        assert_int_equal(rmdir(d), 0);
        assert_int_equal(ops->check(gone, &err), CA_BACKEND_EUNAVAILABLE);
        assert_non_null(strstr(err.message, "removed or replaced"));

        char *json = order_with_id("lost", "x");
        struct ca_order *o = order_make(json);
        struct ca_settings map = {0};
        struct ca_backend_result r = {0};
        memset(&err, 0, sizeof(err));
        assert_int_equal(ops->execute(gone, backend_order(o), backend_settings(&map), &r, &err),
                         CA_BACKEND_EUNAVAILABLE);
        assert_non_null(strstr(err.message, "cannot write"));
        order_free(o);
        free(json);
        ops->instance_free(gone);
        settings_clear(&s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_writes_and_repeats), cmocka_unit_test(test_names_stay_inside),
            cmocka_unit_test(test_probe_and_describe), cmocka_unit_test(test_settings),
            cmocka_unit_test(test_directory_gone),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
