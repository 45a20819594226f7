/* Tests for the sql back-end, driven through the real loader and host table against
 * SQLite files in a temporary directory: each change type, idempotent repeats, link
 * rows, constraint violations, mapping checks, injection attempts, probe and describe,
 * and an unreachable or locked database. */
#include "backend_test_util.h"

#include <pthread.h>
#include <sqlite3.h>

struct fx {
        char *dir;
        char db[4200];
        struct backend *b;
        const struct ca_backend_ops *ops;
        struct ca_settings conn;
        struct ca_settings map;
        void *inst;
        void *sess;
};

static const char *schema = "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, mail TEXT UNIQUE,"
                            " age INTEGER CHECK (age IS NULL OR age >= 0));"
                            "CREATE TABLE memberships (user_id TEXT NOT NULL, grp TEXT NOT NULL,"
                            " PRIMARY KEY (user_id, grp));"
                            "CREATE TABLE loose_links (user_id TEXT, grp TEXT);";

static const char *const default_map[] = {"connector",
                                          "db",
                                          "table",
                                          "users",
                                          "key_column",
                                          "id",
                                          "key_change",
                                          "uid",
                                          "columns",
                                          "givenName:name, mail:mail,age:age",
                                          "membership_table",
                                          "memberships",
                                          "membership_key_column",
                                          "user_id",
                                          "membership_value_column",
                                          "grp",
                                          NULL};

static void db_exec(const char *db, const char *sql)
{
        sqlite3 *h = NULL;
        assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
        char *msg = NULL;
        if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK)
                fail_msg("%s: %s", sql, msg);
        sqlite3_close(h);
}

/* The first column of the first row as text ("" when NULL, "<none>" when no row). */
static char *db_text(const char *db, const char *sql)
{
        sqlite3 *h = NULL;
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
        if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
                fail_msg("%s: %s", sql, sqlite3_errmsg(h));
        char *out;
        if (sqlite3_step(st) == SQLITE_ROW) {
                const unsigned char *t = sqlite3_column_text(st, 0);
                out = strdup(t ? (const char *)t : "");
        } else {
                out = strdup("<none>");
        }
        sqlite3_finalize(st);
        sqlite3_close(h);
        return out;
}

static void expect_db(struct fx *f, const char *sql, const char *want)
{
        char *got = db_text(f->db, sql);
        if (strcmp(got, want) != 0)
                fail_msg("%s: got \"%s\", expected \"%s\"", sql, got, want);
        free(got);
}

static void fx_open(struct fx *f, const char *const *map, const char *extra_key,
                    const char *extra_value)
{
        memset(f, 0, sizeof(*f));
        f->dir = tmpdir_make();
        snprintf(f->db, sizeof(f->db), "%s/test.db", f->dir);
        db_exec(f->db, schema);
        f->b = load_backend("sql");
        f->ops = backend_ops(f->b);
        const char *kv[] = {"backend",       "sql", "driver",  "sqlite",    "database", f->db,
                            "order_timeout", "2s",  extra_key, extra_value, NULL};
        settings_make(&f->conn, kv);
        settings_make(&f->map, map ? map : default_map);
        struct ca_backend_error err = {0};
        if (f->ops->instance_new(backend_host(), backend_settings(&f->conn), &f->inst, &err) !=
            CA_BACKEND_OK)
                fail_msg("instance_new: %s", err.message);
        if (f->ops->mapping_check(f->inst, backend_settings(&f->map), &err) != CA_BACKEND_OK)
                fail_msg("mapping_check: %s", err.message);
        assert_int_equal(f->ops->session_open(f->inst, &f->sess, &err), CA_BACKEND_OK);
}

static void fx_close(struct fx *f)
{
        f->ops->session_close(f->sess);
        f->ops->instance_free(f->inst);
        settings_clear(&f->conn);
        settings_clear(&f->map);
        backend_unload(f->b);
        tmpdir_remove(f->dir);
}

/* Runs one order (JSON text) and returns the outcome; fails the test unless the call
 * returns want_rc. */
static struct ca_backend_result run_rc(struct fx *f, const char *json, int want_rc,
                                       struct ca_backend_error *err_out)
{
        struct ca_order *o = order_make(json);
        struct ca_backend_result r = {0};
        struct ca_backend_error err = {0};
        int rc = f->ops->execute(f->sess, backend_order(o), backend_settings(&f->map), &r, &err);
        if (rc != want_rc)
                fail_msg("execute returned %d (%s), expected %d; order %s", rc, err.message,
                         want_rc, json);
        if (err_out)
                *err_out = err;
        order_free(o);
        return r;
}

static struct ca_backend_result run(struct fx *f, const char *json)
{
        struct ca_backend_result r = run_rc(f, json, CA_BACKEND_OK, NULL);
        assert_true(r.set);
        return r;
}

static void expect_executed(struct ca_backend_result r, const char *ri)
{
        if (r.state != CA_BACKEND_EXECUTED)
                fail_msg("expected Executed, got Errored: %s", r.message);
        if (ri)
                assert_string_equal(r.resource_identifier, ri);
}

static void expect_errored(struct ca_backend_result r, const char *needle)
{
        if (r.state != CA_BACKEND_ERRORED)
                fail_msg("expected Errored (%s), got Executed: %s", needle, r.message);
        if (!strstr(r.message, needle))
                fail_msg("message \"%s\" lacks \"%s\"", r.message, needle);
}

static enum ca_backend_probe probe(struct fx *f, const char *json, struct ca_backend_result *r)
{
        struct ca_order *o = order_make(json);
        struct ca_backend_error err = {0};
        enum ca_backend_probe a = 0;
        struct ca_backend_result local = {0};
        int rc = f->ops->probe(f->sess, backend_order(o), backend_settings(&f->map), &a,
                               r ? r : &local, &err);
        if (rc != CA_BACKEND_OK)
                fail_msg("probe returned %d: %s", rc, err.message);
        order_free(o);
        return a;
}

#define ADD_JBOND                                                                                  \
        "{\"Id\":\"a1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"Added\","                \
        "\"Changes\":{\"uid\":\"jbond\",\"givenName\":\"James\",\"mail\":\"j@x.org\","             \
        "\"age\":\"40\",\"memberOf_add\":[\"g1\",\"g2\"]}}"

static void test_added_and_repeat(void **state)
{
        struct fx f;
        fx_open(&f, NULL, NULL, NULL);
        assert_int_equal(probe(&f, ADD_JBOND, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_executed(run(&f, ADD_JBOND), "jbond");
        expect_db(&f, "SELECT name || '|' || mail || '|' || age FROM users WHERE id = 'jbond'",
                  "James|j@x.org|40");
        expect_db(&f, "SELECT group_concat(grp) FROM (SELECT grp FROM memberships ORDER BY grp)",
                  "g1,g2");
        struct ca_backend_result pr = {0};
        assert_int_equal(probe(&f, ADD_JBOND, &pr), CA_BACKEND_PROBE_APPLIED);
        assert_string_equal(pr.resource_identifier, "jbond");

        /* The same order again: already in effect. */
        struct ca_backend_result r = run(&f, ADD_JBOND);
        expect_executed(r, "jbond");
        assert_non_null(strstr(r.message, "already there"));
        expect_db(&f, "SELECT COUNT(*) FROM users", "1");
        expect_db(&f, "SELECT COUNT(*) FROM memberships", "2");

        /* The same key with other values is not this order: Errored, row untouched. */
        expect_errored(run(&f, "{\"Id\":\"a2\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                               "\"Added\",\"Changes\":{\"uid\":\"jbond\",\"givenName\":\"Jim\"}}"),
                       "row exists with different values");
        expect_db(&f, "SELECT name FROM users WHERE id = 'jbond'", "James");
        fx_close(&f);
}

static void test_modified(void **state)
{
        struct fx f;
        fx_open(&f, NULL, NULL, NULL);
        expect_executed(run(&f, ADD_JBOND), "jbond");
        const char *mod =
            "{\"Id\":\"m1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
            "\"Modified\",\"Resource\":{\"uid\":\"jbond\"},\"Changes\":{\"givenName\":"
            "\"Jimmy\",\"mail\":null,\"memberOf_add\":[\"g3\"],\"memberOf_remove\":"
            "[\"g1\",\"g9\"]}}";
        assert_int_equal(probe(&f, mod, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_executed(run(&f, mod), "jbond");
        expect_db(&f, "SELECT name || '|' || (mail IS NULL) FROM users WHERE id = 'jbond'",
                  "Jimmy|1");
        expect_db(&f, "SELECT group_concat(grp) FROM (SELECT grp FROM memberships ORDER BY grp)",
                  "g2,g3");
        assert_int_equal(probe(&f, mod, NULL), CA_BACKEND_PROBE_APPLIED);
        /* Adding a member twice and removing a missing one change nothing. */
        expect_executed(run(&f, mod), "jbond");
        expect_db(&f, "SELECT COUNT(*) FROM memberships", "2");

        /* The whole list at once replaces the links. */
        expect_executed(run(&f, "{\"Id\":\"m2\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                                "\"Modified\",\"Resource\":{\"uid\":\"jbond\"},\"Changes\":{"
                                "\"memberOf\":[\"x\",\"y\",\"x\"]}}"),
                        "jbond");
        expect_db(&f, "SELECT group_concat(grp) FROM (SELECT grp FROM memberships ORDER BY grp)",
                  "x,y");

        /* A missing row is an error, not an insert. */
        expect_errored(run(&f, "{\"Id\":\"m3\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                               "\"Modified\",\"Resource\":{\"uid\":\"nobody\"},\"Changes\":{"
                               "\"givenName\":\"N\"}}"),
                       "no such row");
        expect_db(&f, "SELECT COUNT(*) FROM users", "1");

        /* A new key in Changes renames the row, links follow. */
        expect_executed(run(&f, "{\"Id\":\"m4\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                                "\"Modified\",\"Resource\":{\"uid\":\"jbond\"},\"Changes\":{"
                                "\"uid\":\"james.bond\"}}"),
                        "james.bond");
        expect_db(&f, "SELECT COUNT(*) FROM memberships WHERE user_id = 'james.bond'", "2");
        expect_db(&f, "SELECT COUNT(*) FROM users WHERE id = 'jbond'", "0");
        fx_close(&f);
}

static void test_deleted(void **state)
{
        struct fx f;
        fx_open(&f, NULL, NULL, NULL);
        expect_executed(run(&f, ADD_JBOND), "jbond");
        const char *del = "{\"Id\":\"d1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                          "\"Deleted\",\"Resource\":{\"uid\":\"jbond\"},\"Changes\":{}}";
        assert_int_equal(probe(&f, del, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_executed(run(&f, del), "jbond");
        expect_db(&f, "SELECT COUNT(*) FROM users", "0");
        expect_db(&f, "SELECT COUNT(*) FROM memberships", "0");
        assert_int_equal(probe(&f, del, NULL), CA_BACKEND_PROBE_APPLIED);
        struct ca_backend_result r = run(&f, del);
        expect_executed(r, "jbond");
        assert_non_null(strstr(r.message, "already gone"));
        fx_close(&f);
}

static void test_constraints_roll_back(void **state)
{
        struct fx f;
        fx_open(&f, NULL, NULL, NULL);
        /* The CHECK fails: Errored with SQLite's own words, and the links of the same order
         * are not left behind. */
        expect_errored(run(&f, "{\"Id\":\"c1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                               "\"Added\",\"Changes\":{\"uid\":\"neg\",\"age\":\"-1\","
                               "\"memberOf_add\":[\"g1\"]}}"),
                       "CHECK constraint failed");
        expect_db(&f, "SELECT COUNT(*) FROM users", "0");
        expect_db(&f, "SELECT COUNT(*) FROM memberships", "0");

        expect_executed(run(&f, ADD_JBOND), "jbond");
        struct ca_backend_result r =
            run(&f, "{\"Id\":\"c2\",\"AssignedResourceTypeId\":\"1\","
                    "\"ChangeType\":\"Added\",\"Changes\":{\"uid\":"
                    "\"other\",\"mail\":\"j@x.org\",\"memberOf_add\":\"g7\"}}");
        expect_errored(r, "UNIQUE constraint failed: users.mail");
        assert_non_null(strstr(r.message, "'other'"));
        expect_db(&f, "SELECT COUNT(*) FROM memberships WHERE grp = 'g7'", "0");
        fx_close(&f);
}

static void test_unmapped_and_bad_orders(void **state)
{
        struct fx f;
        fx_open(&f, NULL, NULL, NULL);
        expect_errored(run(&f, "{\"Id\":\"u1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                               "\"Added\",\"Changes\":{\"uid\":\"u\",\"phone\":\"1\",\"title\":"
                               "\"x\",\"proxy_add\":[\"p\"]}}"),
                       "phone, title, proxy_add");
        expect_errored(run(&f, "{\"Id\":\"u2\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                               "\"Added\",\"Changes\":{\"givenName\":\"nokey\"}}"),
                       "no key");
        expect_errored(run(&f, "{\"Id\":\"u3\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                               "\"Added\",\"Changes\":{\"uid\":\"l\",\"givenName\":[\"a\"]}}"),
                       "is a list");
        expect_db(&f, "SELECT COUNT(*) FROM users", "0");
        fx_close(&f);

        const char *ignore_map[] = {"table",           "users", "key_column", "id",
                                    "key_change",      "uid",   "columns",    "givenName:name",
                                    "ignore_unmapped", "yes",   NULL};
        fx_open(&f, ignore_map, NULL, NULL);
        expect_executed(run(&f, "{\"Id\":\"u4\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                                "\"Added\",\"Changes\":{\"uid\":\"u\",\"phone\":\"1\"}}"),
                        "u");
        /* Links without a membership table cannot be ignored silently. */
        expect_errored(run(&f, "{\"Id\":\"u5\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                               "\"Modified\",\"Resource\":{\"uid\":\"u\"},\"Changes\":{"
                               "\"memberOf_add\":[\"g\"]}}"),
                       "no membership_table");
        fx_close(&f);
}

static void expect_mapping_refused(struct fx *f, const char *const *map, const char *needle,
                                   const char *key)
{
        struct ca_settings m;
        struct ca_backend_error err = {0};
        settings_make(&m, map);
        assert_int_equal(f->ops->mapping_check(f->inst, backend_settings(&m), &err),
                         CA_BACKEND_EINVALID);
        if (!strstr(err.message, needle))
                fail_msg("mapping refusal \"%s\" lacks \"%s\"", err.message, needle);
        if (key)
                assert_string_equal(err.key, key);
        settings_clear(&m);
}

static void test_mapping_check(void **state)
{
        struct fx f;
        fx_open(&f, NULL, NULL, NULL);
        const char *none[] = {"connector", "db", NULL};
        expect_mapping_refused(&f, none, "table: required", "table");
        expect_mapping_refused(&f, none, "key_column: required", "table");
        const char *quote[] = {"table", "us\"ers", "key_column", "id", NULL};
        expect_mapping_refused(&f, quote, "table = us\"ers: not a plain SQL identifier", "table");
        const char *inject[] = {"table", "users; DROP TABLE users", "key_column", "id", NULL};
        expect_mapping_refused(&f, inject, "not a plain SQL identifier", "table");
        const char *col[] = {"table", "users", "key_column", "id", "columns", "a:b c", NULL};
        expect_mapping_refused(&f, col, "'b c' is not a plain SQL identifier", "columns");
        const char *pair[] = {"table", "users", "key_column", "id", "columns", "novalue", NULL};
        expect_mapping_refused(&f, pair, "is not change_key:column", "columns");
        const char *unknown[] = {"table", "users", "key_column", "id", "colums", "a:b", NULL};
        expect_mapping_refused(&f, unknown, "colums: unknown key", "colums");
        const char *half[] = {"table", "users", "key_column", "id", "membership_table", "m", NULL};
        expect_mapping_refused(&f, half, "membership_key_column: required",
                               "membership_key_column");
        const char *twice[] = {"table", "users", "key_column", "id", "columns", "a:x,a:y", NULL};
        expect_mapping_refused(&f, twice, "mapped twice", "columns");
        fx_close(&f);
}

static void test_injection_harmless(void **state)
{
        struct fx f;
        fx_open(&f, NULL, NULL, NULL);
        const char *evil = "{\"Id\":\"i1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                           "\"Added\",\"Changes\":{\"uid\":\"x'; DROP TABLE users; --\","
                           "\"givenName\":\"' OR 1=1 --\",\"mail\":\"a\\\"b;c\\nd\","
                           "\"memberOf_add\":[\"g'); DELETE FROM memberships; --\"]}}";
        expect_executed(run(&f, evil), "x'; DROP TABLE users; --");
        expect_db(&f, "SELECT name FROM users WHERE id = 'x''; DROP TABLE users; --'",
                  "' OR 1=1 --");
        expect_db(&f, "SELECT mail FROM users", "a\"b;c\nd");
        expect_db(&f, "SELECT grp FROM memberships", "g'); DELETE FROM memberships; --");
        expect_executed(run(&f, evil), NULL); /* and again: same values, Executed */
        /* A key that looks like a condition matches only itself. */
        expect_executed(run(&f, ADD_JBOND), "jbond");
        expect_executed(run(&f, "{\"Id\":\"i2\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                                "\"Deleted\",\"Resource\":{\"uid\":\"' OR 1=1 --\"}}"),
                        NULL);
        expect_db(&f, "SELECT COUNT(*) FROM users", "2");
        fx_close(&f);
}

static void test_links_without_unique_constraint(void **state)
{
        const char *map[] = {"table",
                             "users",
                             "key_column",
                             "id",
                             "key_change",
                             "uid",
                             "membership_table",
                             "loose_links",
                             "membership_key_column",
                             "user_id",
                             "membership_value_column",
                             "grp",
                             "membership_attribute",
                             "groups",
                             NULL};
        struct fx f;
        fx_open(&f, map, NULL, NULL);
        const char *add = "{\"Id\":\"l1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                          "\"Added\",\"Changes\":{\"uid\":\"u\",\"groups_add\":[\"a\",\"a\"]}}";
        expect_executed(run(&f, add), "u");
        expect_executed(run(&f, add), "u");
        expect_db(&f, "SELECT COUNT(*) FROM loose_links", "1");
        fx_close(&f);
}

static void test_describe_touches_nothing(void **state)
{
        struct fx f;
        fx_open(&f, NULL, NULL, NULL);
        struct ca_order *o = order_make(ADD_JBOND);
        struct ca_backend_result r = {0};
        struct ca_backend_error err = {0};
        assert_int_equal(
            f.ops->describe(f.sess, backend_order(o), backend_settings(&f.map), &r, &err),
            CA_BACKEND_OK);
        assert_non_null(strstr(r.message, "INSERT INTO \"users\" (\"id\", \"name\", \"mail\", "
                                          "\"age\") VALUES (?1, ?2, ?3, ?4);"));
        assert_non_null(strstr(r.message, "?1='jbond', ?2='James'"));
        assert_non_null(strstr(r.message, "INSERT INTO \"memberships\""));
        assert_non_null(strstr(r.message, "COMMIT;"));
        expect_db(&f, "SELECT COUNT(*) FROM users", "0");
        order_free(o);
        fx_close(&f);
}

static void test_unavailable(void **state)
{
        struct fx f;
        fx_open(&f, NULL, NULL, NULL);
        struct ca_backend_error err = {0};
        assert_int_equal(f.ops->check(f.sess, &err), CA_BACKEND_OK);

        /* Another writer holds the database past our busy timeout. */
        fx_close(&f);
        fx_open(&f, NULL, "order_timeout", "100ms");
        settings_clear(&f.conn);
        const char *kv[] = {"driver", "sqlite", "database", f.db, "order_timeout", "100ms", NULL};
        settings_make(&f.conn, kv);
        f.ops->session_close(f.sess);
        f.ops->instance_free(f.inst);
        assert_int_equal(
            f.ops->instance_new(backend_host(), backend_settings(&f.conn), &f.inst, &err),
            CA_BACKEND_OK);
        assert_int_equal(f.ops->session_open(f.inst, &f.sess, &err), CA_BACKEND_OK);
        sqlite3 *locker = NULL;
        assert_int_equal(sqlite3_open(f.db, &locker), SQLITE_OK);
        assert_int_equal(sqlite3_exec(locker, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
        run_rc(&f, ADD_JBOND, CA_BACKEND_EUNAVAILABLE, &err);
        assert_non_null(strstr(err.message, "locked"));
        sqlite3_exec(locker, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(locker);
        /* Once free again, the same session works. */
        expect_executed(run(&f, ADD_JBOND), "jbond");

        /* The file is gone: unavailable, for execute and check alike. */
        f.ops->session_close(f.sess);
        assert_int_equal(f.ops->session_open(f.inst, &f.sess, &err), CA_BACKEND_OK);
        assert_int_equal(unlink(f.db), 0);
        memset(&err, 0, sizeof(err));
        run_rc(&f, ADD_JBOND, CA_BACKEND_EUNAVAILABLE, &err);
        assert_non_null(strstr(err.message, "cannot open"));
        memset(&err, 0, sizeof(err));
        assert_int_equal(f.ops->check(f.sess, &err), CA_BACKEND_EUNAVAILABLE);
        fx_close(&f);
}

/* Sessions of one instance run on parallel worker threads; SQLite's write lock makes
 * them wait for each other (bounded by order_timeout), never fail. */
struct par {
        struct fx *f;
        int n;
        int failures;
};

static void *par_worker(void *arg)
{
        struct par *p = arg;
        void *sess = NULL;
        struct ca_backend_error err = {0};
        if (p->f->ops->session_open(p->f->inst, &sess, &err) != CA_BACKEND_OK) {
                p->failures++;
                return NULL;
        }
        for (int i = 0; i < 20; i++) {
                char json[512];
                snprintf(json, sizeof(json),
                         "{\"Id\":\"p%d-%d\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                         "\"Added\",\"Changes\":{\"uid\":\"u%d-%d\",\"memberOf_add\":[\"g\"]}}",
                         p->n, i, p->n, i);
                struct ca_order *o = order_make(json);
                struct ca_backend_result r = {0};
                memset(&err, 0, sizeof(err));
                int rc = p->f->ops->execute(sess, backend_order(o), backend_settings(&p->f->map),
                                            &r, &err);
                if (rc != CA_BACKEND_OK || r.state != CA_BACKEND_EXECUTED)
                        p->failures++;
                order_free(o);
        }
        p->f->ops->session_close(sess);
        return NULL;
}

static void test_parallel_sessions(void **state)
{
        struct fx f;
        fx_open(&f, NULL, NULL, NULL);
        pthread_t t[4];
        struct par p[4];
        for (int i = 0; i < 4; i++) {
                p[i] = (struct par){.f = &f, .n = i};
                assert_int_equal(pthread_create(&t[i], NULL, par_worker, &p[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
                pthread_join(t[i], NULL);
                assert_int_equal(p[i].failures, 0);
        }
        expect_db(&f, "SELECT COUNT(*) FROM users", "80");
        expect_db(&f, "SELECT COUNT(*) FROM memberships", "80");
        fx_close(&f);
}

static void test_instance_settings(void **state)
{
        struct backend *b = load_backend("sql");
        const struct ca_backend_ops *ops = backend_ops(b);
        struct ca_settings s;
        struct ca_backend_error err = {0};
        void *inst = NULL;
        const char *bad[] = {"driver", "oracle", "order_timeout", "soon", NULL};
        settings_make(&s, bad);
        assert_int_equal(ops->instance_new(backend_host(), backend_settings(&s), &inst, &err),
                         CA_BACKEND_EINVALID);
        assert_non_null(strstr(err.message, "driver = oracle: unknown SQL driver"));
        assert_non_null(strstr(err.message, "order_timeout = soon"));
        assert_string_equal(err.key, "driver");
        settings_clear(&s);
        memset(&err, 0, sizeof(err));
        const char *nodb[] = {"driver", "sqlite", NULL};
        settings_make(&s, nodb);
        assert_int_equal(ops->instance_new(backend_host(), backend_settings(&s), &inst, &err),
                         CA_BACKEND_EINVALID);
        assert_string_equal(err.key, "database");
        settings_clear(&s);
        backend_unload(b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_added_and_repeat),
            cmocka_unit_test(test_modified),
            cmocka_unit_test(test_deleted),
            cmocka_unit_test(test_constraints_roll_back),
            cmocka_unit_test(test_unmapped_and_bad_orders),
            cmocka_unit_test(test_mapping_check),
            cmocka_unit_test(test_injection_harmless),
            cmocka_unit_test(test_links_without_unique_constraint),
            cmocka_unit_test(test_describe_touches_nothing),
            cmocka_unit_test(test_unavailable),
            cmocka_unit_test(test_parallel_sessions),
            cmocka_unit_test(test_instance_settings),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
