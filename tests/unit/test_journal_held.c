/* SPDX-License-Identifier: Apache-2.0 */
/* The journal's HELD state (schema 3): orders a guardrail keeps back, across a reopen,
 * released by an operator in their assignment's order or refused; the migration from
 * schema 2 keeps every entry. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "journal.h"
#include "journal_internal.h"

#define CONN "ldap-main"

struct fixture {
        char dir[64];
        char path[128];
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/ca-held-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/journal.db", f->dir);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char p[192];
        const char *const ext[] = {"", "-wal", "-shm"};
        for (int i = 0; i < 3; i++) {
                snprintf(p, sizeof(p), "%s%s", f->path, ext[i]);
                unlink(p);
        }
        snprintf(p, sizeof(p), "%s/journal.key", f->dir);
        unlink(p);
        rmdir(f->dir);
        free(f);
        return 0;
}

static struct ca_order *make_order(const char *id, const char *assignment)
{
        json_t *obj = json_pack("{s:s, s:s, s:s, s:{s:s}, s:{s:s}}", "Id", id,
                                "AssignedResourceTypeId", assignment, "ChangeType", "Deleted",
                                "ResourceType", "Identifier", "LDAP_User", "Resource", "uid", id);
        assert_non_null(obj);
        struct ca_order *o = NULL;
        struct ca_error err = {0};
        assert_int_equal(order_from_json(obj, &o, &err), 0);
        json_decref(obj);
        return o;
}

static struct journal *open_ok(const char *path)
{
        struct journal *j = NULL;
        struct ca_error err = {0};
        assert_int_equal(journal_open(path, 1, &j, &err), 0);
        return j;
}

static void hold_ok(struct journal *j, const char *id, const char *assignment, const char *why)
{
        struct ca_error err = {0};
        struct ca_order *o = make_order(id, assignment);
        assert_int_equal(journal_hold(j, CONN, o, why, &err), 0);
        order_free(o);
}

static enum journal_state state_of(struct journal *j, const char *key)
{
        enum journal_state st;
        struct ca_error err = {0};
        assert_int_equal(journal_state_of(j, CONN, key, &st, &err), 0);
        return st;
}

static size_t held_count(struct journal *j)
{
        size_t n = 0;
        struct ca_error err = {0};
        assert_int_equal(journal_held_count(j, CONN, &n, &err), 0);
        return n;
}

static void test_hold_survives_reopen(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_ok(f->path);
        hold_ok(j, "h1", "a1", "max_deleted = 50/1h: 50 Deleted orders in the window already");
        hold_ok(j, "h2", "a1", "behind held order h1 of the same assignment (max_deleted)");
        struct ca_order *dup = make_order("h1", "a1");
        assert_int_equal(journal_hold(j, CONN, dup, "again", &err), -EEXIST);
        assert_int_equal(journal_queue(j, CONN, dup, &err), -EEXIST);
        order_free(dup);
        assert_int_equal(journal_commit(j, &err), 0);
        journal_close(j);

        j = open_ok(f->path);
        assert_int_equal(state_of(j, "h1"), JOURNAL_HELD);
        assert_int_equal(held_count(j), 2);
        struct ca_order **orders = NULL;
        char **whys = NULL;
        size_t n = 0;
        assert_int_equal(journal_held(j, CONN, &orders, &whys, &n, &err), 0);
        assert_int_equal(n, 2);
        assert_string_equal(orders[0]->key, "h1");
        assert_string_equal(orders[1]->key, "h2");
        assert_string_equal(orders[1]->assignment_id, "a1");
        assert_non_null(strstr(whys[0], "max_deleted = 50/1h"));
        journal_orders_free(orders, n);
        journal_whys_free(whys, n);
        /* not in doubt, not queued: a restart neither probes nor runs them */
        assert_int_equal(journal_in_doubt(j, CONN, &orders, &n, &err), 0);
        assert_int_equal(n, 0);
        journal_orders_free(orders, n);
        assert_int_equal(journal_queued(j, CONN, &orders, &n, &err), 0);
        assert_int_equal(n, 0);
        journal_orders_free(orders, n);
        /* no result to report */
        size_t unreported = 9;
        assert_int_equal(journal_unreported_count(j, CONN, &unreported, &err), 0);
        assert_int_equal(unreported, 0);
        /* listed, with the rule */
        char *text = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        assert_int_equal(journal_list_to(j, "held", out, &err), 0);
        fclose(out);
        assert_non_null(strstr(text, "HELD"));
        assert_non_null(strstr(text, "max_deleted = 50/1h"));
        assert_non_null(strstr(text, "2 held entries"));
        free(text);
        journal_close(j);
}

static void test_release_keeps_assignment_order(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_ok(f->path);
        hold_ok(j, "a-1", "A", "max_deleted");
        hold_ok(j, "b-1", "B", "max_deleted");
        hold_ok(j, "a-2", "A", "behind a-1");
        assert_int_equal(journal_commit(j, &err), 0);
        size_t released = 7;
        const char *behind[] = {"a-2"};
        assert_int_equal(journal_release(j, CONN, behind, 1, &released, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "comes after HELD order a-1"));
        assert_int_equal(released, 0);
        assert_int_equal(state_of(j, "a-2"), JOURNAL_HELD); /* nothing changed */
        const char *unknown[] = {"nope"};
        assert_int_equal(journal_release(j, CONN, unknown, 1, &released, &err), -ENOENT);
        /* another assignment is free to go alone */
        const char *b[] = {"b-1"};
        assert_int_equal(journal_release(j, CONN, b, 1, &released, &err), 0);
        assert_int_equal(released, 1);
        assert_int_equal(state_of(j, "b-1"), JOURNAL_QUEUED);
        const char *again[] = {"b-1"};
        assert_int_equal(journal_release(j, CONN, again, 1, &released, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "QUEUED, not HELD"));
        const char *both[] = {"a-2", "a-1"};
        assert_int_equal(journal_release(j, CONN, both, 2, &released, &err), 0);
        assert_int_equal(released, 2);
        /* queued in their order: a-1 before a-2 */
        struct ca_order **orders = NULL;
        size_t n = 0;
        assert_int_equal(journal_queued(j, CONN, &orders, &n, &err), 0);
        assert_int_equal(n, 3);
        assert_string_equal(orders[0]->key, "a-1");
        assert_string_equal(orders[1]->key, "b-1");
        assert_string_equal(orders[2]->key, "a-2");
        journal_orders_free(orders, n);
        assert_int_equal(held_count(j), 0);
        journal_close(j);

        /* --all, from another connection (the operator's process) */
        j = open_ok(f->path);
        hold_ok(j, "c-1", "C", "max_added");
        hold_ok(j, "c-2", "C", "behind c-1");
        assert_int_equal(journal_commit(j, &err), 0);
        struct journal *op = open_ok(f->path);
        int64_t v1 = 0, v2 = 0;
        assert_int_equal(journal_data_version(j, &v1, &err), 0);
        assert_int_equal(journal_release(op, CONN, NULL, 0, &released, &err), 0);
        assert_int_equal(released, 2);
        journal_close(op);
        assert_int_equal(journal_data_version(j, &v2, &err), 0);
        assert_true(v1 != v2); /* the agent can tell another process changed the file */
        assert_int_equal(state_of(j, "c-2"), JOURNAL_QUEUED);
        journal_close(j);
}

static void test_resolve_held(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_ok(f->path);
        hold_ok(j, "r-1", "R", "max_deleted");
        assert_int_equal(journal_commit(j, &err), 0);
        assert_int_equal(journal_resolve(j, CONN, "r-1", CA_RESULT_EXECUTED, "x", &err), -EINVAL);
        assert_non_null(strstr(err.msg, "never applied"));
        assert_int_equal(journal_resolve(j, CONN, "r-1", CA_RESULT_ERRORED, "not approved", &err),
                         0);
        assert_int_equal(state_of(j, "r-1"), JOURNAL_FINISHED);
        struct ca_result *r = NULL;
        assert_int_equal(journal_result(j, CONN, "r-1", &r, &err), 0);
        assert_non_null(r);
        assert_int_equal(r->state, CA_RESULT_ERRORED);
        assert_string_equal(r->message, "not approved");
        result_free(r);
        size_t released = 0;
        const char *k[] = {"r-1"};
        assert_int_equal(journal_release(j, CONN, k, 1, &released, &err), -EINVAL);
        journal_close(j);
}

/* A schema 2 file (QUEUED known, HELD not) migrates to 3 with every entry and seq. */
static void test_migrate_v2(void **state)
{
        struct fixture *f = *state;
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        for (size_t i = 0; i < 2; i++)
                assert_int_equal(sqlite3_exec(db, journal_migrations[i].sql, NULL, NULL, NULL),
                                 SQLITE_OK);
        assert_int_equal(sqlite3_exec(db,
                                      "PRAGMA user_version = 2;"
                                      "INSERT INTO entries (seq, connector, key, state, "
                                      "order_json, received_at) VALUES "
                                      "(5, 'ldap-main', 'q', 4, '{}', 1)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        assert_int_not_equal(sqlite3_exec(db,
                                          "INSERT INTO entries (connector, key, state, "
                                          "order_json, received_at) VALUES "
                                          "('ldap-main', 'h', 5, '{}', 1)",
                                          NULL, NULL, NULL),
                             SQLITE_OK); /* version 2 refuses HELD */
        sqlite3_close(db);
        struct journal *j = open_ok(f->path);
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(journal_db(j),
                                            "SELECT seq FROM entries WHERE key = 'q'", -1, &st,
                                            NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 5);
        sqlite3_finalize(st);
        assert_int_equal(state_of(j, "q"), JOURNAL_QUEUED);
        hold_ok(j, "h", "H", "max_deleted");
        struct ca_error err = {0};
        assert_int_equal(journal_commit(j, &err), 0);
        assert_int_equal(state_of(j, "h"), JOURNAL_HELD);
        journal_close(j);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_hold_survives_reopen, setup, teardown),
            cmocka_unit_test_setup_teardown(test_release_keeps_assignment_order, setup, teardown),
            cmocka_unit_test_setup_teardown(test_resolve_held, setup, teardown),
            cmocka_unit_test_setup_teardown(test_migrate_v2, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
