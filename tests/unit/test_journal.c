/* Unit tests of the journal: the state machine, durability across restarts, refusals of
 * damaged or newer files, migrations, disk-full handling and the operator commands. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "journal.h"
#include "journal_internal.h"
#include "timeutil.h"

#define CONN      "ldap-main"
#define BIG_VALUE 2000 /* bytes of padding in orders meant to fill a disk */

struct fixture {
        char dir[64];
        char path[128];
};

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
        (void)sb;
        (void)flag;
        (void)ftw;
        return remove(p);
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/ca-journal-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/journal.db", f->dir);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char mnt[128];
        snprintf(mnt, sizeof(mnt), "%s/mnt", f->dir);
        umount2(mnt, MNT_DETACH); /* a failed tmpfs test must not leave its mount behind */
        nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(f);
        return 0;
}

/* An order as the server would send it; pad adds a value of that many bytes. */
static struct ca_order *make_order(const char *id, const char *change, size_t pad)
{
        char *big = calloc(1, pad + 1);
        assert_non_null(big);
        memset(big, 'x', pad);
        json_t *obj =
            json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:{s:s, s:{s:s}}, s:{s:s, s:s}}", "Id", id,
                      "AssignedResourceTypeId", "39300", "ChangeType", change, "WorkflowInstanceId",
                      "81", "Owner", "Id", "21511", "ResourceType", "Identifier", "LDAP_User",
                      "SourceEntityType", "Id", "51", "Changes", "uid", id, "pad", big);
        assert_non_null(obj);
        free(big);
        struct ca_order *o = NULL;
        struct ca_error err = {0};
        assert_int_equal(order_from_json(obj, &o, &err), 0);
        json_decref(obj);
        assert_null(o->invalid);
        return o;
}

static struct journal *open_ok(const char *path, int sync)
{
        struct journal *j = NULL;
        struct ca_error err = {0};
        int rc = journal_open(path, sync, &j, &err);
        if (rc != 0)
                print_error("journal_open: %d %s\n", rc, err.msg);
        assert_int_equal(rc, 0);
        assert_non_null(j);
        return j;
}

static enum journal_state state_of(struct journal *j, const char *conn, const char *key)
{
        enum journal_state s = JOURNAL_UNKNOWN;
        struct ca_error err = {0};
        assert_int_equal(journal_state_of(j, conn, key, &s, &err), 0);
        return s;
}

static void begin_ok(struct journal *j, const char *conn, const char *id)
{
        struct ca_order *o = make_order(id, "Added", 0);
        struct ca_error err = {0};
        int rc = journal_begin(j, conn, o, &err);
        if (rc != 0)
                print_error("journal_begin: %d %s\n", rc, err.msg);
        assert_int_equal(rc, 0);
        order_free(o);
}

/* Finishes id (begun or not) with message as the result's message. */
static int finish(struct journal *j, const char *conn, const char *id, const char *message)
{
        struct ca_order *o = make_order(id, "Added", 0);
        struct ca_result *r = result_new(o, CA_RESULT_EXECUTED, message, "cn=x", 1700000000);
        assert_non_null(r);
        struct ca_error err = {0};
        int rc = journal_finish(j, conn, r, &err);
        result_free(r);
        order_free(o);
        return rc;
}

static void commit_ok(struct journal *j)
{
        struct ca_error err = {0};
        int rc = journal_commit(j, &err);
        if (rc != 0)
                print_error("journal_commit: %d %s\n", rc, err.msg);
        assert_int_equal(rc, 0);
}

static int sql_int(sqlite3 *db, const char *sql)
{
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        int v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return v;
}

static void test_close_null(void **state)
{
        (void)state;
        journal_close(NULL);
}

static void test_open_missing_dir(void **state)
{
        struct fixture *f = *state;
        char path[256];
        snprintf(path, sizeof(path), "%s/no-such-dir/journal.db", f->dir);
        struct journal *j = (struct journal *)&j;
        struct ca_error err = {0};
        assert_int_equal(journal_open(path, 1, &j, &err), -ENOENT);
        assert_null(j);
        assert_non_null(strstr(err.msg, "no-such-dir"));
        assert_non_null(strstr(err.msg, "must exist"));
        struct stat sb;
        assert_int_equal(stat(path, &sb), -1); /* nothing created */
}

static void test_open_pragmas(void **state)
{
        struct fixture *f = *state;
        struct journal *j = open_ok(f->path, 1);
        sqlite3 *db = journal_db(j);
        assert_int_equal(sql_int(db, "PRAGMA synchronous"), 2); /* FULL */
        assert_int_equal(sql_int(db, "PRAGMA user_version"), CA_JOURNAL_SCHEMA_VERSION);
        assert_true(sql_int(db, "PRAGMA busy_timeout") > 0);
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), 0);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        journal_close(j);
        j = open_ok(f->path, 0);
        assert_int_equal(sql_int(journal_db(j), "PRAGMA synchronous"), 1); /* NORMAL */
        journal_close(j);
}

static void test_state_machine(void **state)
{
        struct fixture *f = *state;
        struct journal *j = open_ok(f->path, 1);
        struct ca_error err = {0};

        assert_int_equal(state_of(j, CONN, "o1"), JOURNAL_UNKNOWN);
        begin_ok(j, CONN, "o1");
        assert_int_equal(state_of(j, CONN, "o1"), JOURNAL_EXECUTING);
        assert_int_equal(state_of(j, "other", "o1"), JOURNAL_UNKNOWN);

        /* The same order twice is refused, and the refusal loses nothing. */
        struct ca_order *o = make_order("o1", "Added", 0);
        assert_int_equal(journal_begin(j, CONN, o, &err), -EEXIST);
        order_free(o);
        assert_int_equal(state_of(j, CONN, "o1"), JOURNAL_EXECUTING);

        struct ca_result *r = (struct ca_result *)&r;
        assert_int_equal(journal_result(j, CONN, "o1", &r, &err), 0);
        assert_null(r); /* EXECUTING: no result yet */

        /* EXECUTING -> FINISHED, and the first result is kept. */
        assert_int_equal(finish(j, CONN, "o1", "first"), 0);
        assert_int_equal(state_of(j, CONN, "o1"), JOURNAL_FINISHED);
        assert_int_equal(finish(j, CONN, "o1", "second"), -EEXIST);
        assert_int_equal(journal_result(j, CONN, "o1", &r, &err), 0);
        assert_non_null(r);
        assert_string_equal(r->order_key, "o1");
        assert_string_equal(r->id, "o1");
        assert_string_equal(r->assignment_id, "39300");
        assert_string_equal(r->message, "first");
        assert_string_equal(r->change_type, "Added");
        assert_string_equal(r->owner_id, "21511");
        assert_string_equal(r->resource_identifier, "cn=x");
        assert_int_equal(r->state, CA_RESULT_EXECUTED);
        assert_int_equal(r->executed_at, 1700000000);
        result_free(r);

        /* A finished order cannot begin again. */
        o = make_order("o1", "Added", 0);
        assert_int_equal(journal_begin(j, CONN, o, &err), -EEXIST);
        order_free(o);

        /* Only FINISHED -> REPORTED. */
        begin_ok(j, CONN, "o2");
        const char *keys[] = {"o1", "o2", "never-seen"};
        assert_int_equal(journal_mark_reported(j, CONN, keys, 3, &err), 1);
        assert_int_equal(state_of(j, CONN, "o1"), JOURNAL_REPORTED);
        assert_int_equal(state_of(j, CONN, "o2"), JOURNAL_EXECUTING);
        assert_int_equal(state_of(j, CONN, "never-seen"), JOURNAL_UNKNOWN);
        assert_int_equal(journal_mark_reported(j, CONN, keys, 1, &err), 0); /* again: no-op */
        assert_int_equal(finish(j, CONN, "o1", "late"), -EEXIST);
        assert_int_equal(journal_result(j, CONN, "o1", &r, &err), 0);
        assert_string_equal(r->message, "first"); /* REPORTED keeps its result */
        result_free(r);

        /* Unknown -> FINISHED directly (an order Errored before execution). */
        assert_int_equal(finish(j, CONN, "o3", "bad order"), 0);
        assert_int_equal(state_of(j, CONN, "o3"), JOURNAL_FINISHED);

        /* Refusals of bad arguments. */
        assert_int_equal(journal_state_of(j, NULL, "o1", &(enum journal_state){0}, &err), -EINVAL);
        o = make_order("o9", "Added", 0);
        assert_int_equal(journal_begin(j, "", o, &err), -EINVAL);
        order_free(o);
        commit_ok(j);
        journal_close(j);
}

static void test_reads_see_uncommitted(void **state)
{
        struct fixture *f = *state;
        struct journal *j = open_ok(f->path, 1);
        begin_ok(j, CONN, "o1");
        assert_int_equal(state_of(j, CONN, "o1"), JOURNAL_EXECUTING);
        sqlite3 *other = NULL;
        assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
        assert_int_equal(sql_int(other, "SELECT count(*) FROM entries"), 0);
        commit_ok(j);
        assert_int_equal(sql_int(other, "SELECT count(*) FROM entries"), 1);
        sqlite3_close(other);
        journal_close(j);
}

/* Another process (the operator's resolve) holding the file: the write fails with
 * -EBUSY, but nothing was pending, so nothing is lost and the journal goes on. */
static void test_busy_loses_nothing(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_ok(f->path, 1);
        sqlite3_busy_timeout(journal_db(j), 20);
        sqlite3 *other = NULL;
        assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
        assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        struct ca_order *o = make_order("o1", "Added", 0);
        assert_int_equal(journal_begin(j, CONN, o, &err), -EBUSY);
        assert_non_null(strstr(err.msg, "another process"));
        assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(other);
        assert_int_equal(journal_commit(j, &err), 0); /* no batch was lost */
        assert_int_equal(journal_begin(j, CONN, o, &err), 0);
        order_free(o);
        commit_ok(j);
        assert_int_equal(state_of(j, CONN, "o1"), JOURNAL_EXECUTING);
        journal_close(j);
}

static void test_restart_persistence(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_ok(f->path, 1);
        begin_ok(j, CONN, "a");
        begin_ok(j, CONN, "b");
        assert_int_equal(finish(j, CONN, "b", "done"), 0);
        commit_ok(j);
        begin_ok(j, CONN, "c"); /* not committed: journal_close commits it */
        journal_close(j);

        j = open_ok(f->path, 1);
        assert_int_equal(state_of(j, CONN, "a"), JOURNAL_EXECUTING);
        assert_int_equal(state_of(j, CONN, "b"), JOURNAL_FINISHED);
        assert_int_equal(state_of(j, CONN, "c"), JOURNAL_EXECUTING);
        struct ca_order **orders = NULL;
        size_t n = 0;
        assert_int_equal(journal_in_doubt(j, CONN, &orders, &n, &err), 0);
        assert_int_equal(n, 2);
        assert_string_equal(orders[0]->key, "a");
        assert_string_equal(orders[1]->key, "c");
        assert_string_equal(orders[0]->assignment_id, "39300");
        assert_int_equal(orders[0]->change, CA_CHANGE_ADDED);
        assert_string_equal(json_string_value(json_object_get(orders[0]->changes, "uid")), "a");
        journal_orders_free(orders, n);
        assert_int_equal(journal_in_doubt(j, "other", &orders, &n, &err), 0);
        assert_int_equal(n, 0);
        journal_orders_free(orders, n);

        struct ca_result **res = NULL;
        assert_int_equal(journal_unreported(j, CONN, 10, &res, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_string_equal(res[0]->order_key, "b");
        assert_string_equal(res[0]->message, "done");
        journal_results_free(res, n);
        journal_close(j);
}

/* A process that dies without committing leaves nothing of its open batch behind. */
static void test_crash_loses_only_uncommitted(void **state)
{
        struct fixture *f = *state;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct journal *j = NULL;
                if (journal_open(f->path, 1, &j, NULL) != 0)
                        _exit(2);
                struct ca_order *o = make_order("durable", "Added", 0);
                if (journal_begin(j, CONN, o, NULL) != 0 || journal_commit(j, NULL) != 0)
                        _exit(3);
                order_free(o);
                o = make_order("lost", "Added", 0);
                if (journal_begin(j, CONN, o, NULL) != 0)
                        _exit(4);
                _exit(0); /* no commit, no close: as a crash */
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        struct journal *j = open_ok(f->path, 1);
        assert_int_equal(state_of(j, CONN, "durable"), JOURNAL_EXECUTING);
        assert_int_equal(state_of(j, CONN, "lost"), JOURNAL_UNKNOWN);
        journal_close(j);
}

static void test_oldest_first(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_ok(f->path, 1);
        const char *ids[] = {"k1", "k2", "k3", "k4", "k5"};
        for (size_t i = 0; i < 5; i++) {
                if (i % 2 == 0)
                        begin_ok(j, CONN, ids[i]);
                assert_int_equal(finish(j, CONN, ids[i], ids[i]), 0);
        }
        assert_int_equal(finish(j, "other", "z1", "z"), 0);
        commit_ok(j);

        struct ca_result **res = NULL;
        size_t n = 0;
        assert_int_equal(journal_unreported(j, CONN, 3, &res, &n, &err), 0);
        assert_int_equal(n, 3);
        for (size_t i = 0; i < 3; i++)
                assert_string_equal(res[i]->order_key, ids[i]);
        journal_results_free(res, n);

        size_t count = 0;
        assert_int_equal(journal_unreported_count(j, CONN, &count, &err), 0);
        assert_int_equal(count, 5);
        assert_int_equal(journal_unreported_count(j, NULL, &count, &err), 0);
        assert_int_equal(count, 6);

        const char *done[] = {"k1", "k2"};
        assert_int_equal(journal_mark_reported(j, CONN, done, 2, &err), 2);
        assert_int_equal(journal_unreported(j, CONN, 100, &res, &n, &err), 0);
        assert_int_equal(n, 3);
        assert_string_equal(res[0]->order_key, "k3");
        assert_string_equal(res[2]->order_key, "k5");
        journal_results_free(res, n);
        assert_int_equal(journal_unreported(j, CONN, 0, &res, &n, &err), 0);
        assert_int_equal(n, 0);
        journal_close(j);
}

static void test_prune(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_ok(f->path, 1);
        const char *ids[] = {"r1", "r2", "r3"};
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(finish(j, CONN, ids[i], "ok"), 0);
        assert_int_equal(journal_mark_reported(j, CONN, ids, 3, &err), 3);
        assert_int_equal(finish(j, CONN, "unreported", "ok"), 0);
        begin_ok(j, CONN, "executing");
        commit_ok(j);

        int64_t now = time_wall_s();
        assert_int_equal(journal_prune(j, now, 3600, &err), 0); /* too recent */
        assert_int_equal(journal_prune(j, now + 7200, 3600, &err), 3);
        commit_ok(j);
        assert_int_equal(state_of(j, CONN, "r1"), JOURNAL_UNKNOWN);
        assert_int_equal(state_of(j, CONN, "unreported"), JOURNAL_FINISHED);
        assert_int_equal(state_of(j, CONN, "executing"), JOURNAL_EXECUTING);
        assert_int_equal(journal_prune(j, now + 1000000, 0, &err), 0);
        assert_int_equal(journal_prune(j, now, -1, &err), -EINVAL);
        journal_close(j);
}

static void test_newer_schema_refused(void **state)
{
        struct fixture *f = *state;
        journal_close(open_ok(f->path, 1));
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 2", NULL, NULL, NULL), 0);
        sqlite3_close(db);

        struct journal *j = NULL;
        struct ca_error err = {0};
        assert_int_equal(journal_open(f->path, 1, &j, &err), -EPROTO);
        assert_null(j);
        assert_non_null(strstr(err.msg, "newer connector-agent"));
        assert_non_null(strstr(err.msg, "Upgrade the agent"));
        assert_non_null(strstr(err.msg, f->path));
        assert_non_null(strstr(err.msg, "mv "));
        /* Refusing did not touch the file. */
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        assert_int_equal(sql_int(db, "PRAGMA user_version"), 2);
        sqlite3_close(db);
}

static void assert_damaged(const char *path)
{
        struct journal *j = NULL;
        struct ca_error err = {0};
        assert_int_equal(journal_open(path, 1, &j, &err), -EPROTO);
        assert_null(j);
        print_message("refusal: %s\n", err.msg);
        assert_non_null(strstr(err.msg, "damaged"));
        assert_null(strchr(err.msg, '\n')); /* one line for the log */
        assert_non_null(strstr(err.msg, "move the file aside"));
        assert_non_null(strstr(err.msg, "empty journal"));
        assert_non_null(strstr(err.msg, "re-delivers"));
        assert_non_null(strstr(err.msg, path));
}

static void test_corrupt_garbage_refused(void **state)
{
        struct fixture *f = *state;
        FILE *fp = fopen(f->path, "w");
        assert_non_null(fp);
        for (int i = 0; i < 400; i++)
                fputs("this is not a database, just garbage. ", fp);
        fclose(fp);
        assert_damaged(f->path);
}

static void test_corrupt_truncated_refused(void **state)
{
        struct fixture *f = *state;
        struct journal *j = open_ok(f->path, 0);
        char id[32];
        for (int i = 0; i < 400; i++) {
                snprintf(id, sizeof(id), "t%04d", i);
                struct ca_order *o = make_order(id, "Added", 1000);
                assert_int_equal(journal_begin(j, CONN, o, NULL), 0);
                order_free(o);
        }
        commit_ok(j);
        journal_close(j); /* the last close checkpoints the WAL into the file */
        struct stat sb;
        assert_int_equal(stat(f->path, &sb), 0);
        assert_true(sb.st_size > 200000);
        assert_int_equal(truncate(f->path, sb.st_size / 2), 0);
        assert_damaged(f->path);
}

/* A damaged page in the middle of the table: the header is fine, only a check finds it. */
static void test_corrupt_page_refused(void **state)
{
        struct fixture *f = *state;
        struct journal *j = open_ok(f->path, 0);
        char id[32];
        for (int i = 0; i < 400; i++) {
                snprintf(id, sizeof(id), "p%04d", i);
                struct ca_order *o = make_order(id, "Added", 1000);
                assert_int_equal(journal_begin(j, CONN, o, NULL), 0);
                order_free(o);
        }
        commit_ok(j);
        journal_close(j);
        struct stat sb;
        assert_int_equal(stat(f->path, &sb), 0);
        int fd = open(f->path, O_WRONLY);
        assert_true(fd >= 0);
        static unsigned char junk[4096];
        memset(junk, 0xab, sizeof(junk));
        off_t page = (sb.st_size / 2) & ~(off_t)4095;
        assert_int_equal(pwrite(fd, junk, sizeof(junk), page), (ssize_t)sizeof(junk));
        close(fd);
        assert_damaged(f->path);
}

static int table_exists(sqlite3 *db, const char *name)
{
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                                            -1, &st, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        int n = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return n;
}

static void test_migrate_from_zero(void **state)
{
        struct fixture *f = *state;
        /* An empty file is a database of version 0. */
        int fd = open(f->path, O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        close(fd);
        struct journal *j = open_ok(f->path, 1);
        assert_int_equal(sql_int(journal_db(j), "PRAGMA user_version"), CA_JOURNAL_SCHEMA_VERSION);
        assert_true(table_exists(journal_db(j), "entries"));
        begin_ok(j, CONN, "after-migration");
        journal_close(j);

        /* A version-0 database with something else in it is migrated too, keeping it. */
        char path2[160];
        snprintf(path2, sizeof(path2), "%s/v0.db", f->dir);
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(path2, &db), SQLITE_OK);
        assert_int_equal(
            sqlite3_exec(db, "CREATE TABLE keep(x); INSERT INTO keep VALUES (1)", NULL, NULL, NULL),
            0);
        sqlite3_close(db);
        j = open_ok(path2, 1);
        assert_int_equal(sql_int(journal_db(j), "PRAGMA user_version"), 1);
        assert_int_equal(sql_int(journal_db(j), "SELECT x FROM keep"), 1);
        journal_close(j);
}

/* The framework itself: steps apply in order, each atomically, and a failed step leaves
 * the file at the last good version, ready for a retry. */
static void test_migration_steps(void **state)
{
        struct fixture *f = *state;
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        struct ca_error err = {0};
        const struct journal_migration bad[] = {
            {1, "CREATE TABLE t1(x)"},
            {2, "CREATE TABLE t2(x)"},
            {3, "CREATE TABLE t3(x); THIS IS NOT SQL"},
        };
        assert_true(journal_schema_migrate(db, f->path, bad, 3, &err) < 0);
        assert_non_null(strstr(err.msg, "version 3"));
        assert_int_equal(sql_int(db, "PRAGMA user_version"), 2);
        assert_true(table_exists(db, "t1"));
        assert_true(table_exists(db, "t2"));
        assert_false(table_exists(db, "t3")); /* the failed step left nothing */
        const struct journal_migration good[] = {
            {1, "CREATE TABLE t1(x)"}, /* already applied: skipped */
            {2, "CREATE TABLE t2(x)"},
            {3, "CREATE TABLE t3(x)"},
        };
        assert_int_equal(journal_schema_migrate(db, f->path, good, 3, &err), 0);
        assert_int_equal(sql_int(db, "PRAGMA user_version"), 3);
        assert_true(table_exists(db, "t3"));
        sqlite3_close(db);
}

static void test_disk_full_max_page_count(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_ok(f->path, 1);
        begin_ok(j, CONN, "base");
        assert_int_equal(finish(j, CONN, "base", "kept"), 0);
        commit_ok(j);

        /* SQLite reports SQLITE_FULL when the file may not grow past max_page_count. */
        sqlite3 *db = journal_db(j);
        int pages = sql_int(db, "PRAGMA page_count");
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %d", pages + 2);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);

        int rc = 0, ok = 0;
        char id[32];
        for (int i = 0; i < 200 && rc == 0; i++) {
                snprintf(id, sizeof(id), "full%03d", i);
                struct ca_order *o = make_order(id, "Added", BIG_VALUE);
                rc = journal_begin(j, CONN, o, &err);
                order_free(o);
                if (rc == 0)
                        ok++;
        }
        assert_int_equal(rc, -ENOSPC);
        assert_true(ok >= 1); /* some writes of the batch succeeded before the disk was full */
        assert_non_null(strstr(err.msg, "disk full"));
        assert_non_null(strstr(err.msg, f->path));
        print_message("disk full after %d writes: %s\n", ok, err.msg);

        /* The whole batch is gone, and nothing may be acted on until commit says so. */
        assert_int_equal(state_of(j, CONN, "full000"), JOURNAL_UNKNOWN);
        assert_int_equal(finish(j, CONN, "base2", "x"), -ENOSPC);
        assert_int_equal(journal_commit(j, &err), -ENOSPC);
        assert_int_equal(state_of(j, CONN, "base"), JOURNAL_FINISHED);

        /* The cause is gone: the journal works again. */
        assert_int_equal(sqlite3_exec(db, "PRAGMA max_page_count = 1000000", NULL, NULL, NULL), 0);
        begin_ok(j, CONN, "after");
        commit_ok(j);
        journal_close(j);

        j = open_ok(f->path, 1);
        assert_int_equal(state_of(j, CONN, "base"), JOURNAL_FINISHED);
        assert_int_equal(state_of(j, CONN, "after"), JOURNAL_EXECUTING);
        for (int i = 0; i <= ok; i++) {
                snprintf(id, sizeof(id), "full%03d", i);
                assert_int_equal(state_of(j, CONN, id), JOURNAL_UNKNOWN);
        }
        assert_int_equal(state_of(j, CONN, "base2"), JOURNAL_UNKNOWN);
        journal_close(j);
}

/* A real full file system: a small tmpfs, where the failure may come at a write or at
 * the commit (the WAL append). */
static void test_disk_full_tmpfs(void **state)
{
        struct fixture *f = *state;
        char mnt[128], path[160], filler[160];
        snprintf(mnt, sizeof(mnt), "%s/mnt", f->dir);
        assert_int_equal(mkdir(mnt, 0700), 0);
        if (mount("tmpfs", mnt, "tmpfs", 0, "size=512k") != 0) {
                print_message(
                    "SKIP tmpfs part: mount(tmpfs) not permitted here (%s); the disk-full "
                    "case stays covered by max_page_count\n",
                    strerror(errno));
                skip();
        }
        snprintf(path, sizeof(path), "%s/journal.db", mnt);
        snprintf(filler, sizeof(filler), "%s/filler", mnt);
        /* Something else takes most of the space; removing it is "the cause is gone". */
        FILE *fp = fopen(filler, "w");
        assert_non_null(fp);
        static char block[4096];
        memset(block, 'f', sizeof(block));
        for (int i = 0; i < 64; i++)
                assert_int_equal(fwrite(block, 1, sizeof(block), fp), sizeof(block));
        assert_int_equal(fclose(fp), 0);

        struct ca_error err = {0};
        struct journal *j = open_ok(path, 1);
        int rc = 0, committed = 0, i = 0;
        char id[32];
        for (i = 0; i < 2000 && rc == 0; i++) {
                snprintf(id, sizeof(id), "t%04d", i);
                struct ca_order *o = make_order(id, "Added", BIG_VALUE);
                rc = journal_begin(j, CONN, o, &err);
                order_free(o);
                if (rc == 0 && i % 10 == 9) {
                        rc = journal_commit(j, &err);
                        if (rc == 0)
                                committed = i + 1;
                }
        }
        print_message("tmpfs full after %d orders (%d committed): %d %s\n", i, committed, rc,
                      err.msg);
        assert_int_equal(rc, -ENOSPC);
        assert_non_null(strstr(err.msg, "disk full"));
        /* Whether the write or the commit failed, the commit acknowledges the loss once. */
        struct ca_error err2 = {0};
        int crc = journal_commit(j, &err2);
        assert_true(crc == 0 || crc == -ENOSPC);
        for (int k = committed; k < i; k++) {
                snprintf(id, sizeof(id), "t%04d", k);
                assert_int_equal(state_of(j, CONN, id), JOURNAL_UNKNOWN);
        }

        assert_int_equal(unlink(filler), 0);
        begin_ok(j, CONN, "after");
        commit_ok(j);
        journal_close(j);

        j = open_ok(path, 1);
        for (int k = 0; k < i; k++) {
                snprintf(id, sizeof(id), "t%04d", k);
                assert_int_equal(state_of(j, CONN, id),
                                 k < committed ? JOURNAL_EXECUTING : JOURNAL_UNKNOWN);
        }
        assert_int_equal(state_of(j, CONN, "after"), JOURNAL_EXECUTING);
        journal_close(j);
}

static void test_resolve(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_ok(f->path, 1);
        begin_ok(j, CONN, "a");
        begin_ok(j, CONN, "b");
        begin_ok(j, CONN, "c");
        assert_int_equal(finish(j, CONN, "c", "done"), 0);
        commit_ok(j);

        assert_int_equal(journal_resolve(j, CONN, "a", CA_RESULT_EXECUTED, "checked by hand", &err),
                         0);
        assert_int_equal(journal_resolve(j, CONN, "b", CA_RESULT_ERRORED, "not applied", &err), 0);
        assert_int_equal(journal_resolve(j, CONN, "c", CA_RESULT_EXECUTED, "x", &err), -EINVAL);
        assert_non_null(strstr(err.msg, "FINISHED"));
        assert_int_equal(journal_resolve(j, CONN, "zz", CA_RESULT_EXECUTED, "x", &err), -ENOENT);
        assert_int_equal(journal_resolve(j, CONN, "a", CA_RESULT_EXECUTED, "again", &err), -EINVAL);
        journal_close(j);

        /* Resolved orders are durable and will be reported, with the operator's words. */
        j = open_ok(f->path, 1);
        struct ca_result *r = NULL;
        assert_int_equal(journal_result(j, CONN, "a", &r, &err), 0);
        assert_non_null(r);
        assert_int_equal(r->state, CA_RESULT_EXECUTED);
        assert_string_equal(r->message, "checked by hand");
        assert_string_equal(r->assignment_id, "39300");
        assert_string_equal(r->change_type, "Added");
        result_free(r);
        assert_int_equal(journal_result(j, CONN, "b", &r, &err), 0);
        assert_int_equal(r->state, CA_RESULT_ERRORED);
        assert_string_equal(r->message, "not applied");
        result_free(r);
        size_t n = 0;
        assert_int_equal(journal_unreported_count(j, CONN, &n, &err), 0);
        assert_int_equal(n, 3);
        struct ca_order **orders = NULL;
        assert_int_equal(journal_in_doubt(j, CONN, &orders, &n, &err), 0);
        assert_int_equal(n, 0);
        journal_orders_free(orders, n);
        journal_close(j);
}

static void test_forget(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_ok(f->path, 1);
        begin_ok(j, CONN, "a");
        assert_int_equal(journal_forget(j, CONN, "a", &err), 0);
        assert_int_equal(state_of(j, CONN, "a"), JOURNAL_UNKNOWN);
        begin_ok(j, CONN, "a"); /* forgotten: may begin again */
        assert_int_equal(finish(j, CONN, "a", "done"), 0);
        assert_int_equal(journal_forget(j, CONN, "a", &err), -EINVAL);
        assert_int_equal(state_of(j, CONN, "a"), JOURNAL_FINISHED);
        assert_int_equal(journal_forget(j, CONN, "nope", &err), -ENOENT);
        commit_ok(j);
        journal_close(j);
}

static char *list_text(struct journal *j, const char *what, int expect_rc)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&buf, &len);
        assert_non_null(mem);
        struct ca_error err = {0};
        assert_int_equal(journal_list_to(j, what, mem, &err), expect_rc);
        fclose(mem);
        return buf;
}

static void test_list(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_ok(f->path, 1);
        begin_ok(j, CONN, "in-doubt-1");
        assert_int_equal(finish(j, CONN, "finished-1", "line one\nline two"), 0);
        assert_int_equal(finish(j, CONN, "reported-1", "ok"), 0);
        const char *rep[] = {"reported-1"};
        assert_int_equal(journal_mark_reported(j, CONN, rep, 1, &err), 1);
        commit_ok(j);

        char *t = list_text(j, "pending", 0);
        assert_non_null(strstr(t, "in-doubt-1"));
        assert_non_null(strstr(t, "EXECUTING"));
        assert_non_null(strstr(t, "39300"));
        assert_non_null(strstr(t, "Added"));
        assert_null(strstr(t, "finished-1"));
        assert_non_null(strstr(t, "1 pending entry"));
        assert_non_null(strstr(t, "in doubt")); /* and what to do about it */
        free(t);
        t = list_text(j, "unreported", 0);
        assert_non_null(strstr(t, "finished-1"));
        assert_non_null(strstr(t, "line one line two")); /* one line per entry */
        assert_non_null(strstr(t, "Executed"));
        assert_null(strstr(t, "reported-1"));
        free(t);
        t = list_text(j, "all", 0);
        assert_non_null(strstr(t, "in-doubt-1"));
        assert_non_null(strstr(t, "finished-1"));
        assert_non_null(strstr(t, "reported-1"));
        assert_non_null(strstr(t, "REPORTED"));
        assert_non_null(strstr(t, "3 all entries"));
        free(t);
        t = list_text(j, "bogus", -EINVAL);
        free(t);
        assert_int_equal(journal_list(j, "all", &err), 0);
        journal_close(j);
}

static double cycles_per_s(const char *path, int n, int batch)
{
        struct journal *j = open_ok(path, 1);
        struct ca_order **orders = calloc((size_t)n, sizeof(*orders));
        struct ca_result **results = calloc((size_t)n, sizeof(*results));
        const char **keys = calloc((size_t)n, sizeof(*keys));
        assert_true(orders && results && keys);
        char id[32];
        for (int i = 0; i < n; i++) {
                snprintf(id, sizeof(id), "perf-%d-%06d", batch, i);
                orders[i] = make_order(id, "Added", 200);
                results[i] = result_new(orders[i], CA_RESULT_EXECUTED, "", NULL, 1700000000);
                keys[i] = orders[i]->key;
        }
        /* As the agent works: begin a batch, commit, run, finish, commit, report, commit. */
        uint64_t t0 = time_mono_ms();
        for (int i = 0; i < n; i += batch) {
                int end = i + batch < n ? i + batch : n;
                for (int k = i; k < end; k++)
                        assert_int_equal(journal_begin(j, CONN, orders[k], NULL), 0);
                commit_ok(j);
                for (int k = i; k < end; k++)
                        assert_int_equal(journal_finish(j, CONN, results[k], NULL), 0);
                commit_ok(j);
                assert_int_equal(journal_mark_reported(j, CONN, keys + i, (size_t)(end - i), NULL),
                                 end - i);
                commit_ok(j);
        }
        uint64_t ms = time_mono_ms() - t0;
        for (int i = 0; i < n; i++) {
                result_free(results[i]);
                order_free(orders[i]);
        }
        free(keys);
        free(results);
        free(orders);
        journal_close(j);
        return ms ? n * 1000.0 / (double)ms : 0.0;
}

static void test_performance(void **state)
{
        struct fixture *f = *state;
        double batched = cycles_per_s(f->path, 2000, 100);
        double single = cycles_per_s(f->path, 200, 1);
        print_message("journal performance (sync=1, %s): %.0f orders/s with a commit every 100 "
                      "orders, %.0f orders/s with a commit every order (begin+finish+"
                      "mark_reported, 3 commits per batch)\n",
                      f->dir, batched, single);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_close_null),
            cmocka_unit_test_setup_teardown(test_open_missing_dir, setup, teardown),
            cmocka_unit_test_setup_teardown(test_open_pragmas, setup, teardown),
            cmocka_unit_test_setup_teardown(test_state_machine, setup, teardown),
            cmocka_unit_test_setup_teardown(test_reads_see_uncommitted, setup, teardown),
            cmocka_unit_test_setup_teardown(test_busy_loses_nothing, setup, teardown),
            cmocka_unit_test_setup_teardown(test_restart_persistence, setup, teardown),
            cmocka_unit_test_setup_teardown(test_crash_loses_only_uncommitted, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oldest_first, setup, teardown),
            cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
            cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
            cmocka_unit_test_setup_teardown(test_corrupt_garbage_refused, setup, teardown),
            cmocka_unit_test_setup_teardown(test_corrupt_truncated_refused, setup, teardown),
            cmocka_unit_test_setup_teardown(test_corrupt_page_refused, setup, teardown),
            cmocka_unit_test_setup_teardown(test_migrate_from_zero, setup, teardown),
            cmocka_unit_test_setup_teardown(test_migration_steps, setup, teardown),
            cmocka_unit_test_setup_teardown(test_disk_full_max_page_count, setup, teardown),
            cmocka_unit_test_setup_teardown(test_disk_full_tmpfs, setup, teardown),
            cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
            cmocka_unit_test_setup_teardown(test_forget, setup, teardown),
            cmocka_unit_test_setup_teardown(test_list, setup, teardown),
            cmocka_unit_test_setup_teardown(test_performance, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
