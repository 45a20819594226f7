/* SPDX-License-Identifier: Apache-2.0 */
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
                            "CREATE TABLE loose_links (user_id TEXT, grp TEXT);"
                            /* Keys that are not unique by themselves: Added must read first. */
                            "CREATE TABLE pairs (id TEXT, name TEXT);"
                            "CREATE UNIQUE INDEX pairs_both ON pairs (id, name);"
                            "CREATE TABLE partial (id TEXT, name TEXT);"
                            "CREATE UNIQUE INDEX partial_id ON partial (id) WHERE name IS "
                            "NOT NULL;"
                            "CREATE TABLE wide (id TEXT PRIMARY KEY, c1 TEXT, c2 TEXT, c3 TEXT,"
                            " c4 TEXT, c5 TEXT, c6 TEXT);";

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

#define ORDER(id, change, changes, resource)                                                       \
        "{\"Id\":\"" id "\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"" change             \
        "\",\"Changes\":" changes ",\"Resource\":" resource "}"

/* A password is stored only as a libxcrypt hash (yescrypt or bcrypt), compared by
 * hashing it again with the stored salt (so a repeated order is in effect), and never
 * shown by describe; the account state is a configured column. */
static void test_password_hash_and_enabled(void **state)
{
        (void)state;
        static const char *const pw_map[] = {"connector",
                                             "db",
                                             "table",
                                             "users",
                                             "key_column",
                                             "id",
                                             "key_change",
                                             "uid",
                                             "columns",
                                             "givenName:name",
                                             "password_change",
                                             "password",
                                             "password_column",
                                             "pw",
                                             "password_hash",
                                             "yescrypt",
                                             "enabled_change",
                                             "enabled",
                                             "enabled_column",
                                             "active",
                                             NULL};
        const char *pw = "S3cret-Horse-Battery";
        struct fx f;
        fx_open(&f, pw_map, NULL, NULL);
        db_exec(f.db, "ALTER TABLE users ADD COLUMN pw TEXT; ALTER TABLE users ADD COLUMN active "
                      "INTEGER");
        const char *add = ORDER("p1", "Added",
                                "{\"uid\":\"ada\",\"givenName\":\"Ada\",\"password\":"
                                "\"S3cret-Horse-Battery\",\"enabled\":\"true\"}",
                                "{}");
        assert_int_equal(probe(&f, add, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        struct ca_backend_result r = run(&f, add);
        expect_executed(r, "ada");
        assert_null(strstr(r.message, pw));
        char *stored = db_text(f.db, "SELECT pw FROM users WHERE id = 'ada'");
        if (strncmp(stored, "$y$", 3) != 0 || strstr(stored, pw))
                fail_msg("pw column holds \"%s\", not a yescrypt hash", stored);
        expect_db(&f, "SELECT active FROM users WHERE id = 'ada'", "1");
        /* The same order again: in effect (the password checked against the stored hash). */
        assert_int_equal(probe(&f, add, NULL), CA_BACKEND_PROBE_APPLIED);
        r = run(&f, add);
        expect_executed(r, "ada");
        assert_non_null(strstr(r.message, "already there"));
        expect_db(&f, "SELECT pw FROM users WHERE id = 'ada'", stored);
        /* Another password under the same key is not this order. */
        expect_errored(run(&f, ORDER("p2", "Added",
                                     "{\"uid\":\"ada\",\"givenName\":\"Ada\","
                                     "\"password\":\"other-one\",\"enabled\":\"true\"}",
                                     "{}")),
                       "column pw differs");
        /* A new password and a disable on Modified. */
        const char *mod =
            ORDER("p3", "Modified", "{\"password\":\"N3w-One\",\"enabled\":\"false\"}",
                  "{\"uid\":\"ada\"}");
        assert_int_equal(probe(&f, mod, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_executed(run(&f, mod), "ada");
        char *after = db_text(f.db, "SELECT pw FROM users WHERE id = 'ada'");
        assert_true(strncmp(after, "$y$", 3) == 0 && strcmp(after, stored) != 0);
        expect_db(&f, "SELECT active FROM users WHERE id = 'ada'", "0");
        assert_int_equal(probe(&f, mod, NULL), CA_BACKEND_PROBE_APPLIED);
        assert_int_equal(probe(&f, add, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        /* Rename: the key column updated. */
        expect_executed(run(&f, ORDER("p4", "Modified", "{\"uid\":\"ada2\"}", "{\"uid\":\"ada\"}")),
                        "ada2");
        expect_db(&f, "SELECT COUNT(*) FROM users WHERE id = 'ada2'", "1");
        /* describe shows <secret>, neither the password nor its hash. */
        struct ca_order *o = order_make(add);
        struct ca_backend_result d = {0};
        struct ca_backend_error err = {0};
        assert_int_equal(
            f.ops->describe(f.sess, backend_order(o), backend_settings(&f.map), &d, &err), 0);
        assert_non_null(strstr(d.message, "<secret>"));
        assert_null(strstr(d.message, pw));
        assert_null(strstr(d.message, "$y$"));
        order_free(o);
        free(stored);
        free(after);
        fx_close(&f);

        /* bcrypt; and no hash configured is refused. */
        static const char *const bc_map[] = {"connector",
                                             "db",
                                             "table",
                                             "users",
                                             "key_column",
                                             "id",
                                             "key_change",
                                             "uid",
                                             "password_change",
                                             "password",
                                             "password_column",
                                             "pw",
                                             "password_hash",
                                             "bcrypt",
                                             "ignore_unmapped",
                                             "yes",
                                             NULL};
        fx_open(&f, bc_map, NULL, NULL);
        db_exec(f.db, "ALTER TABLE users ADD COLUMN pw TEXT");
        expect_executed(
            run(&f, ORDER("b1", "Added", "{\"uid\":\"bob\",\"password\":\"pw-4711\"}", "{}")),
            "bob");
        stored = db_text(f.db, "SELECT pw FROM users WHERE id = 'bob'");
        assert_true(strncmp(stored, "$2b$", 4) == 0);
        free(stored);
        static const char *const plain_map[] = {
            "connector",       "db",       "table",           "users", "key_column", "id",
            "password_change", "password", "password_column", "pw",    NULL};
        expect_mapping_refused(&f, plain_map, "a password is never stored as given",
                               "password_hash");
        fx_close(&f);
}

/* argon2id through libargon2: the stored hash carries its cost (19 MiB, two passes, one
 * lane); a repeated order is found in effect through libargon2's verify; a stored hash of
 * another method still matches after password_hash changed, since each hash is checked by
 * its own method; a stored hash that asks for more work than the bounds is not computed,
 * just taken as different. */
/* "Argon-Second-0815" with 16 passes over 8 KiB, salt "somesaltsomesalt" (libargon2). */
#define A2_SECOND_T16                                                                              \
        "$argon2id$v=19$m=8,t=16,p=1$c29tZXNhbHRzb21lc2FsdA$"                                      \
        "KpGW+sXuS4qDZXIxMPRGV7X1AdjnWf+21TpL07DIxOg"

static void test_password_argon2id(void **state)
{
        (void)state;
        static const char *const a2_map[] = {"connector",
                                             "db",
                                             "table",
                                             "users",
                                             "key_column",
                                             "id",
                                             "key_change",
                                             "uid",
                                             "password_change",
                                             "password",
                                             "password_column",
                                             "pw",
                                             "password_hash",
                                             "argon2id",
                                             "ignore_unmapped",
                                             "yes",
                                             NULL};
        static const char *const bc_map[] = {"connector",
                                             "db",
                                             "table",
                                             "users",
                                             "key_column",
                                             "id",
                                             "key_change",
                                             "uid",
                                             "password_change",
                                             "password",
                                             "password_column",
                                             "pw",
                                             "password_hash",
                                             "bcrypt",
                                             "ignore_unmapped",
                                             "yes",
                                             NULL};
        const char *pw = "Argon-Horse-4711";
        struct fx f;
        fx_open(&f, a2_map, NULL, NULL);
        db_exec(f.db, "ALTER TABLE users ADD COLUMN pw TEXT");
        const char *add =
            ORDER("g1", "Added", "{\"uid\":\"ada\",\"password\":\"Argon-Horse-4711\"}", "{}");
        assert_int_equal(probe(&f, add, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        struct ca_backend_result r = run(&f, add);
        expect_executed(r, "ada");
        assert_null(strstr(r.message, pw));
        char *stored = db_text(f.db, "SELECT pw FROM users WHERE id = 'ada'");
        if (strncmp(stored, "$argon2id$v=19$m=19456,t=2,p=1$", 31) != 0 || strstr(stored, pw))
                fail_msg("pw holds \"%s\", not an argon2id hash", stored);
        assert_int_equal(probe(&f, add, NULL), CA_BACKEND_PROBE_APPLIED);
        r = run(&f, add);
        expect_executed(r, "ada");
        assert_non_null(strstr(r.message, "already there"));
        expect_db(&f, "SELECT pw FROM users WHERE id = 'ada'", stored);
        expect_errored(
            run(&f, ORDER("g2", "Added", "{\"uid\":\"ada\",\"password\":\"another\"}", "{}")),
            "column pw differs");
        /* A new password on Modified: a new salt, a new hash. */
        const char *mod =
            ORDER("g3", "Modified", "{\"password\":\"Argon-Second-0815\"}", "{\"uid\":\"ada\"}");
        expect_executed(run(&f, mod), "ada");
        char *after = db_text(f.db, "SELECT pw FROM users WHERE id = 'ada'");
        assert_true(strncmp(after, "$argon2id$", 10) == 0 && strcmp(after, stored) != 0);
        assert_int_equal(probe(&f, mod, NULL), CA_BACKEND_PROBE_APPLIED);

        /* A stored hash of this very password with 17 passes, one more than the bound
         * (a cheap one, 8 KiB; made with libargon2 for this test): not computed, so
         * different. Without the bound it would match. */
        db_exec(f.db, "UPDATE users SET pw = '$argon2id$v=19$m=8,t=17,p=1$c29tZXNhbHRzb21lc2FsdA$"
                      "WlXbo4VVZ7GHKejr1v1mbxOEIdHHY8HeO+RLhQZsv8o' WHERE id = 'ada'");
        assert_int_equal(probe(&f, mod, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        /* The same within the bounds matches: 16 passes is what the bound allows. */
        db_exec(f.db, "UPDATE users SET pw = '" A2_SECOND_T16 "' WHERE id = 'ada'");
        assert_int_equal(probe(&f, mod, NULL), CA_BACKEND_PROBE_APPLIED);
        /* No hash at all (a value written as given by someone else): different. */
        db_exec(f.db, "UPDATE users SET pw = 'Argon-Second-0815' WHERE id = 'ada'");
        assert_int_equal(probe(&f, mod, NULL), CA_BACKEND_PROBE_NOT_APPLIED);

        /* bcrypt stored, then the mapping changed to argon2id: still the same password. */
        settings_clear(&f.map);
        settings_make(&f.map, bc_map);
        const char *bob =
            ORDER("g4", "Added", "{\"uid\":\"bob\",\"password\":\"Argon-Horse-4711\"}", "{}");
        expect_executed(run(&f, bob), "bob");
        char *bc = db_text(f.db, "SELECT pw FROM users WHERE id = 'bob'");
        assert_true(strncmp(bc, "$2b$", 4) == 0);
        settings_clear(&f.map);
        settings_make(&f.map, a2_map);
        assert_int_equal(probe(&f, bob, NULL), CA_BACKEND_PROBE_APPLIED);
        r = run(&f, bob);
        expect_executed(r, "bob");
        assert_non_null(strstr(r.message, "already there"));
        expect_db(&f, "SELECT pw FROM users WHERE id = 'bob'", bc);
        free(bc);
        free(stored);
        free(after);

        /* An unknown method is refused at check, naming the ones there are. */
        static const char *const md5_map[] = {"connector",
                                              "db",
                                              "table",
                                              "users",
                                              "key_column",
                                              "id",
                                              "password_change",
                                              "password",
                                              "password_column",
                                              "pw",
                                              "password_hash",
                                              "md5",
                                              NULL};
        expect_mapping_refused(&f, md5_map, "yescrypt, bcrypt or argon2id", "password_hash");
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

/* Added writes first only where the key is unique by itself; elsewhere (a unique index of
 * two columns, a partial one) a repeat must still be found by reading, not inserted. */
static void test_added_key_not_unique(void **state)
{
        (void)state;
        const char *tables[] = {"pairs", "partial"};
        for (size_t t = 0; t < 2; t++) {
                const char *map[] = {"table", tables[t], "key_column",     "id", "key_change",
                                     "uid",   "columns", "givenName:name", NULL};
                struct fx f;
                fx_open(&f, map, NULL, NULL);
                const char *add = "{\"Id\":\"p1\",\"AssignedResourceTypeId\":\"1\","
                                  "\"ChangeType\":\"Added\",\"Changes\":{\"uid\":\"p\","
                                  "\"givenName\":null}}";
                expect_executed(run(&f, add), "p");
                struct ca_backend_result r = run(&f, add);
                expect_executed(r, "p");
                assert_non_null(strstr(r.message, "already there"));
                expect_errored(run(&f, "{\"Id\":\"p2\",\"AssignedResourceTypeId\":\"1\","
                                       "\"ChangeType\":\"Added\",\"Changes\":{\"uid\":\"p\","
                                       "\"givenName\":\"Other\"}}"),
                               "row exists with different values");
                char q[96];
                snprintf(q, sizeof(q), "SELECT COUNT(*) FROM %s", tables[t]);
                expect_db(&f, q, "1");
                fx_close(&f);
        }
}

/* More statement shapes than a connection keeps (sql_cache): evicted statements are let
 * go and prepared again, and every order still writes what it says. */
static void test_many_statement_shapes(void **state)
{
        (void)state;
        const char *map[] = {
            "table",      "wide", "key_column", "id",
            "key_change", "uid",  "columns",    "c1:c1, c2:c2, c3:c3, c4:c4, c5:c5, c6:c6",
            NULL};
        struct fx f;
        fx_open(&f, map, NULL, NULL);
        expect_executed(run(&f, "{\"Id\":\"w0\",\"AssignedResourceTypeId\":\"1\","
                                "\"ChangeType\":\"Added\",\"Changes\":{\"uid\":\"w\"}}"),
                        "w");
        for (int round = 0; round < 2; round++) {
                for (unsigned subset = 1; subset < 64; subset++) {
                        char json[512], want[64];
                        int n = snprintf(json, sizeof(json),
                                         "{\"Id\":\"m%u\",\"AssignedResourceTypeId\":\"1\","
                                         "\"ChangeType\":\"Modified\",\"Resource\":{\"uid\":"
                                         "\"w\"},\"Changes\":{",
                                         subset);
                        for (int c = 0; c < 6; c++)
                                if (subset & (1u << c))
                                        n += snprintf(json + n, sizeof(json) - (size_t)n,
                                                      "%s\"c%d\":\"v%u.%d\"",
                                                      json[n - 1] == '{' ? "" : ",", c + 1,
                                                      subset + 100u * (unsigned)round, c + 1);
                        snprintf(json + n, sizeof(json) - (size_t)n, "}}");
                        expect_executed(run(&f, json), "w");
                        assert_int_equal(probe(&f, json, NULL), CA_BACKEND_PROBE_APPLIED);
                        int c = __builtin_ctz(subset);
                        snprintf(want, sizeof(want), "v%u.%d", subset + 100u * (unsigned)round,
                                 c + 1);
                        char q[64];
                        snprintf(q, sizeof(q), "SELECT c%d FROM wide", c + 1);
                        expect_db(&f, q, want);
                }
        }
        fx_close(&f);
}

#define MOD_JBOND_NAME(name)                                                                       \
        "{\"Id\":\"mn\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"Modified\","             \
        "\"Resource\":{\"uid\":\"jbond\"},\"Changes\":{\"givenName\":\"" name "\"}}"

/* Kept statements survive the table changing under them (SQLite prepares them again),
 * and a Modified of a row deleted from outside is still "no such row". */
static void test_schema_change_between_orders(void **state)
{
        (void)state;
        struct fx f;
        fx_open(&f, NULL, NULL, NULL);
        expect_executed(run(&f, ADD_JBOND), "jbond");
        expect_executed(run(&f, MOD_JBOND_NAME("Jim")), "jbond");
        db_exec(f.db, "ALTER TABLE users ADD COLUMN extra TEXT;"
                      "DELETE FROM users; DELETE FROM memberships;");
        expect_errored(run(&f, MOD_JBOND_NAME("Jo")), "no such row");
        expect_executed(run(&f, ADD_JBOND), "jbond");
        expect_executed(run(&f, MOD_JBOND_NAME("Jo")), "jbond");
        expect_db(&f, "SELECT name FROM users WHERE id = 'jbond'", "Jo");
        db_exec(f.db, "DROP TABLE users; CREATE TABLE users (age INTEGER, mail TEXT UNIQUE, "
                      "name TEXT, id TEXT PRIMARY KEY);");
        expect_executed(run(&f, ADD_JBOND), "jbond");
        expect_db(&f, "SELECT name || '|' || age FROM users WHERE id = 'jbond'", "James|40");
        fx_close(&f);
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
            cmocka_unit_test(test_password_hash_and_enabled),
            cmocka_unit_test(test_password_argon2id),
            cmocka_unit_test(test_added_key_not_unique),
            cmocka_unit_test(test_many_statement_shapes),
            cmocka_unit_test(test_schema_change_between_orders),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
