/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the journal: the state machine, durability across restarts, refusals of
 * damaged or newer files, migrations, disk-full handling and the operator commands.
 * The cases that make the journal's promise run against both drivers: SQLite and a REAL
 * PostgreSQL 15 on loopback (tests/pg/pg.sh, pg_cluster.h), which also has its own cases
 * (schema, key check, the server going away and coming back). */
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
#include <jansson.h>

#include "journal.h"
#include "journal_internal.h"
#include "journal_seal.h"
#include "pg_cluster.h"
#include <libpq-fe.h>
#include "timeutil.h"

#define CONN      "ldap-main"
#define BIG_VALUE 2000 /* bytes of padding in orders meant to fill a disk */

struct fixture {
        enum journal_kind kind;
        char dir[64];
        char path[128];     /* SQLite */
        char conninfo[256]; /* PostgreSQL */
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

/* The journal the fixture's driver opens. */
static int open_params(const struct fixture *f, int sync, struct journal **out,
                       struct ca_error *err)
{
        struct journal_params p = {.kind = f->kind,
                                   .path = f->path,
                                   .conninfo = f->conninfo,
                                   .password = PG_CLUSTER_PASSWORD,
                                   .key_dir = f->dir,
                                   .sync = sync};
        return journal_open_params(&p, out, err);
}

static struct journal *open_fx(const struct fixture *f, int sync)
{
        struct journal *j = NULL;
        struct ca_error err = {0};
        int rc = open_params(f, sync, &j, &err);
        if (rc != 0)
                print_error("journal_open_params(%s): %d %s\n",
                            f->kind == JOURNAL_POSTGRESQL ? "postgresql" : "sqlite", rc, err.msg);
        assert_int_equal(rc, 0);
        assert_non_null(j);
        return j;
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
        /* The way out, for the user the agent runs as. */
        char how[512];
        snprintf(how, sizeof(how), "install -d -m 0700 -o %u -g %u %s/no-such-dir",
                 (unsigned)geteuid(), (unsigned)getegid(), f->dir);
        assert_non_null(strstr(err.msg, how));
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
        struct journal *j = open_fx(f, 1);
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
        /* Keys are the server's: whatever their characters, marked in one statement; a
         * NULL entry is skipped and a repeated one counts once. */
        const char *odd = "q\"'\\%_,)[]{}";
        begin_ok(j, CONN, odd);
        assert_int_equal(finish(j, CONN, odd, "odd"), 0);
        const char *odd_keys[] = {odd, NULL, odd, "o2"};
        assert_int_equal(journal_mark_reported(j, CONN, odd_keys, 4, &err), 1);
        assert_int_equal(state_of(j, CONN, odd), JOURNAL_REPORTED);
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

/* A second connection (the operator's command while the agent runs) sees the batch only
 * once it is committed. */
static void test_reads_see_uncommitted(void **state)
{
        struct fixture *f = *state;
        struct journal *j = open_fx(f, 1);
        struct journal *other = open_fx(f, 1);
        begin_ok(j, CONN, "o1");
        assert_int_equal(state_of(j, CONN, "o1"), JOURNAL_EXECUTING);
        assert_int_equal(state_of(other, CONN, "o1"), JOURNAL_UNKNOWN);
        commit_ok(j);
        assert_int_equal(state_of(other, CONN, "o1"), JOURNAL_EXECUTING);
        journal_close(other);
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
        struct journal *j = open_fx(f, 1);
        begin_ok(j, CONN, "a");
        begin_ok(j, CONN, "b");
        assert_int_equal(finish(j, CONN, "b", "done"), 0);
        commit_ok(j);
        begin_ok(j, CONN, "c"); /* not committed: journal_close commits it */
        journal_close(j);

        j = open_fx(f, 1);
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
                if (open_params(f, 1, &j, NULL) != 0)
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
        struct journal *j = open_fx(f, 1);
        assert_int_equal(state_of(j, CONN, "durable"), JOURNAL_EXECUTING);
        assert_int_equal(state_of(j, CONN, "lost"), JOURNAL_UNKNOWN);
        journal_close(j);
}

static void test_oldest_first(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_fx(f, 1);
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
        struct journal *j = open_fx(f, 1);
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
        char newer[64];
        snprintf(newer, sizeof(newer), "PRAGMA user_version = %d", CA_JOURNAL_SCHEMA_VERSION + 1);
        assert_int_equal(sqlite3_exec(db, newer, NULL, NULL, NULL), 0);
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
        assert_int_equal(sql_int(db, "PRAGMA user_version"), CA_JOURNAL_SCHEMA_VERSION + 1);
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
        assert_int_equal(sql_int(journal_db(j), "PRAGMA user_version"), CA_JOURNAL_SCHEMA_VERSION);
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
        struct journal *j = open_fx(f, 1);
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
        j = open_fx(f, 1);
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
        struct journal *j = open_fx(f, 1);
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

static void queue_ok(struct journal *j, const char *conn, const char *id)
{
        struct ca_order *o = make_order(id, "Added", 0);
        struct ca_error err = {0};
        int rc = journal_queue(j, conn, o, &err);
        if (rc != 0)
                print_error("journal_queue: %d %s\n", rc, err.msg);
        assert_int_equal(rc, 0);
        order_free(o);
}

static void assert_keys(struct ca_order **orders, size_t count, const char *const *keys,
                        size_t want)
{
        assert_int_equal(count, want);
        for (size_t i = 0; i < want; i++)
                assert_string_equal(orders[i]->key, keys[i]);
}

/* QUEUED: taken and kept, never in doubt; started, requeued and finished in place. */
static void test_queued(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_fx(f, 1);
        queue_ok(j, CONN, "q1");
        begin_ok(j, CONN, "x1");
        queue_ok(j, CONN, "q2");
        queue_ok(j, CONN, "q3");
        struct ca_order *dup = make_order("q2", "Added", 0);
        assert_int_equal(journal_queue(j, CONN, dup, &err), -EEXIST);
        assert_int_equal(journal_begin(j, CONN, dup, &err), -EEXIST);
        order_free(dup);
        assert_int_equal(state_of(j, CONN, "q1"), JOURNAL_QUEUED);
        commit_ok(j);

        struct ca_order **orders = NULL;
        size_t n = 0;
        assert_int_equal(journal_in_doubt(j, CONN, &orders, &n, &err), 0);
        assert_keys(orders, n, (const char *const[]){"x1"}, 1);
        journal_orders_free(orders, n);
        assert_int_equal(journal_queued(j, CONN, &orders, &n, &err), 0);
        assert_keys(orders, n, (const char *const[]){"q1", "q2", "q3"}, 3);
        /* The stored text is the whole order (sealed on disk, rebuilt here). */
        assert_string_equal(orders[1]->assignment_id, "39300");
        journal_orders_free(orders, n);

        /* start and requeue move only from the state they name. */
        assert_int_equal(journal_start(j, CONN, "q1", &err), 0);
        assert_int_equal(state_of(j, CONN, "q1"), JOURNAL_EXECUTING);
        assert_int_equal(journal_start(j, CONN, "q1", &err), -EINVAL);
        assert_non_null(strstr(err.msg, "not queued"));
        assert_int_equal(journal_requeue(j, CONN, "q2", &err), -EINVAL);
        assert_int_equal(journal_start(j, CONN, "nope", &err), -EINVAL);
        assert_int_equal(journal_requeue(j, CONN, "x1", &err), 0);
        assert_int_equal(state_of(j, CONN, "x1"), JOURNAL_QUEUED);
        /* A queued order can be finished without running (errored before it started). */
        assert_int_equal(finish(j, CONN, "q3", "refused"), 0);
        assert_int_equal(state_of(j, CONN, "q3"), JOURNAL_FINISHED);
        commit_ok(j);
        journal_close(j);

        /* Across a restart, in the order they were taken: x1 keeps its place before q2. */
        j = open_fx(f, 1);
        assert_int_equal(journal_queued(j, CONN, &orders, &n, &err), 0);
        assert_keys(orders, n, (const char *const[]){"x1", "q2"}, 2);
        journal_orders_free(orders, n);
        assert_int_equal(journal_in_doubt(j, CONN, &orders, &n, &err), 0);
        assert_keys(orders, n, (const char *const[]){"q1"}, 1);
        journal_orders_free(orders, n);

        char *out = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&out, &len);
        assert_non_null(mem);
        assert_int_equal(journal_list_to(j, "queued", mem, &err), 0);
        fclose(mem);
        assert_non_null(strstr(out, "QUEUED"));
        assert_non_null(strstr(out, "2 queued entries: 0 executing, 0 finished, 0 reported, 2 "
                                    "queued"));
        free(out);
        journal_close(j);
}

/* A version-1 journal (no QUEUED) is migrated in place, keeping every entry and seq. */
static void test_migrate_v1(void **state)
{
        struct fixture *f = *state;
        sqlite3 *db = NULL;
        struct ca_error err = {0};
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        assert_int_equal(journal_schema_migrate(db, f->path, journal_migrations, 1, &err), 0);
        assert_int_equal(sql_int(db, "PRAGMA user_version"), 1);
        assert_int_equal(
            sqlite3_exec(db,
                         "INSERT INTO entries (seq, connector, key, state, order_json, "
                         "received_at) VALUES (7, 'c1', 'old', 1, '{}', 1);"
                         "INSERT INTO entries (seq, connector, key, state, "
                         "result_state, message, received_at) VALUES "
                         "(9, 'c1', 'done', 2, 1, 'ok', 1)",
                         NULL, NULL, NULL),
            SQLITE_OK);
        assert_int_not_equal(sqlite3_exec(db,
                                          "INSERT INTO entries (connector, key, state, order_json, "
                                          "received_at) VALUES ('c1', 'q', 4, '{}', 1)",
                                          NULL, NULL, NULL),
                             SQLITE_OK); /* version 1 refuses QUEUED */
        sqlite3_close(db);

        struct journal *j = open_ok(f->path, 1);
        assert_int_equal(sql_int(journal_db(j), "PRAGMA user_version"), CA_JOURNAL_SCHEMA_VERSION);
        assert_int_equal(sql_int(journal_db(j), "SELECT seq FROM entries WHERE key = 'old'"), 7);
        assert_int_equal(sql_int(journal_db(j), "SELECT seq FROM entries WHERE key = 'done'"), 9);
        assert_int_equal(state_of(j, "c1", "old"), JOURNAL_EXECUTING);
        assert_int_equal(state_of(j, "c1", "done"), JOURNAL_FINISHED);
        queue_ok(j, "c1", "new");
        commit_ok(j);
        /* AUTOINCREMENT carried over: a new entry comes after every old one. */
        assert_true(sql_int(journal_db(j), "SELECT seq FROM entries WHERE key = 'new'") > 9);
        assert_int_equal(sql_int(journal_db(j), "SELECT count(*) FROM entries"), 3);
        journal_close(j);
}

/* A result the server refused (HTTP 400) is kept with its answer, out of the queue and
 * its count, across a reopen, listed as REFUSED, until journal_resend. */
static void test_refused_results(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_fx(f, 1);
        assert_int_equal(finish(j, CONN, "r1", "fine"), 0);
        assert_int_equal(finish(j, CONN, "r2", "fine"), 0);
        begin_ok(j, CONN, "r3");
        assert_int_equal(
            journal_refuse_result(j, CONN, "r1", "{\"error\":\"bad ExecutedAt\"}", &err), 1);
        assert_int_equal(journal_refuse_result(j, CONN, "r3", "x", &err), 0); /* not FINISHED */
        commit_ok(j);
        journal_close(j);

        j = open_fx(f, 1);
        size_t n = 9;
        assert_int_equal(journal_unreported_count(j, CONN, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_int_equal(journal_refused_count(j, CONN, &n, &err), 0);
        assert_int_equal(n, 1);
        struct ca_result **res = NULL;
        assert_int_equal(journal_unreported(j, CONN, 10, &res, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_string_equal(res[0]->order_key, "r2");
        for (size_t i = 0; i < n; i++)
                result_free(res[i]);
        free(res);
        char *t = list_text(j, "refused", 0);
        assert_non_null(strstr(t, "REFUSED"));
        assert_non_null(strstr(t, "the server refused it: {\"error\":\"bad ExecutedAt\"}"));
        assert_non_null(strstr(t, "1 refused entry: 0 executing, 0 finished, 0 reported, 0 queued, "
                                  "0 held, 1 refused"));
        assert_non_null(strstr(t, "journal resend"));
        free(t);

        size_t resent = 9;
        const char *wrong[] = {"r1", "r2"};
        assert_int_equal(journal_resend(j, CONN, wrong, 2, &resent, &err), -ENOENT);
        assert_int_equal(resent, 0);
        assert_int_equal(journal_refused_count(j, CONN, &n, &err), 0);
        assert_int_equal(n, 1); /* nothing changed */
        assert_int_equal(journal_resend(j, CONN, NULL, 0, &resent, &err), 0);
        assert_int_equal(resent, 1);
        assert_int_equal(journal_unreported_count(j, CONN, &n, &err), 0);
        assert_int_equal(n, 2);
        assert_int_equal(journal_refused_count(j, CONN, &n, &err), 0);
        assert_int_equal(n, 0);
        journal_close(j);
}

static void test_list(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_fx(f, 1);
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
        assert_non_null(strstr(t, "1 pending entry: 1 executing, 0 finished, 0 reported"));
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
        assert_non_null(strstr(t, "3 all entries: 1 executing, 1 finished, 1 reported"));
        free(t);
        t = list_text(j, "bogus", -EINVAL);
        free(t);
        assert_int_equal(journal_list(j, "all", 0, &err), 0);
        assert_int_equal(journal_list_json_to(j, "bogus", stdout, &err), -EINVAL);

        char *buf = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&buf, &len);
        assert_non_null(mem);
        assert_int_equal(journal_list_json_to(j, "all", mem, &err), 0);
        fclose(mem);
        json_error_t jerr;
        json_t *doc = json_loads(buf, 0, &jerr);
        assert_non_null(doc);
        assert_string_equal(json_string_value(json_object_get(doc, "selection")), "all");
        json_t *counts = json_object_get(doc, "counts");
        assert_int_equal(json_integer_value(json_object_get(counts, "total")), 3);
        assert_int_equal(json_integer_value(json_object_get(counts, "executing")), 1);
        assert_int_equal(json_integer_value(json_object_get(counts, "finished")), 1);
        assert_int_equal(json_integer_value(json_object_get(counts, "reported")), 1);
        json_t *entries = json_object_get(doc, "entries");
        assert_int_equal(json_array_size(entries), 3);
        int seen = 0;
        for (size_t i = 0; i < json_array_size(entries); i++) {
                json_t *e = json_array_get(entries, i);
                const char *key = json_string_value(json_object_get(e, "key"));
                assert_string_equal(json_string_value(json_object_get(e, "connector")), CONN);
                if (strcmp(key, "finished-1") == 0) {
                        seen |= 1;
                        /* Whole, with its newline: JSON needs no cutting. */
                        assert_string_equal(json_string_value(json_object_get(e, "message")),
                                            "line one\nline two");
                        assert_string_equal(json_string_value(json_object_get(e, "state")),
                                            "FINISHED");
                        assert_string_equal(json_string_value(json_object_get(e, "result")),
                                            "Executed");
                        assert_true(json_is_null(json_object_get(e, "reported")));
                } else if (strcmp(key, "in-doubt-1") == 0) {
                        seen |= 2;
                        assert_true(json_is_null(json_object_get(e, "result")));
                        assert_string_equal(json_string_value(json_object_get(e, "change_type")),
                                            "Added");
                }
        }
        assert_int_equal(seen, 3);
        json_decref(doc);
        free(buf);
        journal_close(j);
}

/* Whether a journal listing's last line is its count line and says "0 WHAT entries". */
static int lists_none(const char *text, const char *what)
{
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "0 %s entries", what);
        size_t tl = strlen(text);
        if (tl == 0 || text[tl - 1] != '\n')
                return 0;
        const char *last = text + tl - 1;
        while (last > text && last[-1] != '\n')
                last--;
        return strncmp(last, prefix, strlen(prefix)) == 0;
}

static int count_commit(void *ctx)
{
        (*(long *)ctx)++;
        return 0; /* let it commit */
}

/* commits (SQLite only, may be NULL): the transactions the cycle committed. */
static double cycles_per_s(const struct fixture *f, int n, int batch, long *commits)
{
        struct journal *j = open_fx(f, 1);
        if (commits && f->kind == JOURNAL_SQLITE)
                sqlite3_commit_hook(journal_db(j), count_commit, commits);
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
        /* Every order went through the whole cycle: nothing is left pending or unreported. */
        char *t = list_text(j, "pending", 0);
        assert_true(lists_none(t, "pending"));
        free(t);
        t = list_text(j, "unreported", 0);
        assert_true(lists_none(t, "unreported"));
        free(t);
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

/* The agent commits the journal once per batch of orders, not once per order, so that a
 * durable commit (an fsync) is shared by the batch. What is asserted is that promise, by
 * count, not a timing (a loaded machine, or a sanitizer, makes any ratio flaky): three
 * transactions per batch of 100 (begin, finish, mark), none per statement. The rates
 * are printed for the record; tests/bench measures speed. */

static long pg_long(const struct fixture *f, const char *sql);

/* PostgreSQL: the transactions that wrote, counted by the transaction ids they took. */
static long pg_xid(const struct fixture *f)
{
        return pg_long(f, "SELECT txid_current()");
}

static void test_performance(void **state)
{
        struct fixture *f = *state;
        long xid0 = f->kind == JOURNAL_POSTGRESQL ? pg_xid(f) : 0;
        long commits = 0;
        double batched = cycles_per_s(f, 2000, 100, &commits);
        long xids = f->kind == JOURNAL_POSTGRESQL ? pg_xid(f) - xid0 - 1 : 0;
        double single = cycles_per_s(f, 200, 1, NULL);
        print_message("journal performance (%s, sync=1, %s): %.0f orders/s with a commit every 100 "
                      "orders, %.0f orders/s with a commit every order (begin+finish+"
                      "mark_reported, 3 commits per batch)\n",
                      f->kind == JOURNAL_POSTGRESQL ? "postgresql" : "sqlite", f->dir, batched,
                      single);
        assert_true(single > 0.0);
        if (f->kind == JOURNAL_SQLITE) {
                print_message("sqlite: %ld transactions committed for 2000 orders in batches "
                              "of 100\n",
                              commits);
                assert_int_equal(commits, 3 * 2000 / 100);
                return;
        }
        /* The test cluster runs with fsync=off, so timing shows only round trips; what
         * group commit promises is checked instead: one transaction per batch, 3 batches
         * of writes per 100 orders, one for the open's schema check (and a few more ids
         * for autovacuum's own work at most). */
        print_message("postgresql: %ld write transactions for 2000 orders in batches of 100\n",
                      xids);
        assert_true(xids >= 60);
        assert_true(xids <= 60 + 5);
}

/* --- PostgreSQL: the same cases above, and what only a server can do ------------------ */

static void quiet(void *arg, const char *message)
{
        (void)arg;
        (void)message; /* "table does not exist, skipping" */
}

/* The superuser's connection to the test cluster, for what the tests set up and check. */
static PGconn *admin(const struct fixture *f)
{
        const char *keys[] = {"dbname", "password", NULL};
        const char *vals[] = {f->conninfo, PG_CLUSTER_PASSWORD, NULL};
        PGconn *c = PQconnectdbParams(keys, vals, 1);
        if (PQstatus(c) != CONNECTION_OK)
                fail_msg("admin connection: %s", PQerrorMessage(c));
        PQsetNoticeProcessor(c, quiet, NULL);
        return c;
}

static void pg_exec(PGconn *c, const char *sql)
{
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
                fail_msg("%s: %s", sql, PQerrorMessage(c));
        PQclear(r);
}

/* The first column of the first row as text ("" for NULL); the caller frees it. */
static char *pg_text(const struct fixture *f, const char *sql)
{
        PGconn *c = admin(f);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
                fail_msg("%s: %s", sql, PQerrorMessage(c));
        char *v = strdup(PQgetvalue(r, 0, 0));
        PQclear(r);
        PQfinish(c);
        assert_non_null(v);
        return v;
}

static long pg_long(const struct fixture *f, const char *sql)
{
        char *t = pg_text(f, sql);
        long v = strtol(t, NULL, 10);
        free(t);
        return v;
}

static int pg_group_setup(void **state)
{
        return pg_cluster_start();
}

static int pg_group_teardown(void **state)
{
        return pg_cluster_stop();
}

/* Each case starts from an empty database and its own key directory. */
static int pg_setup(void **state)
{
        setup(state);
        struct fixture *f = *state;
        f->kind = JOURNAL_POSTGRESQL;
        snprintf(f->conninfo, sizeof(f->conninfo),
                 "host=127.0.0.1 port=%d dbname=postgres user=" PG_CLUSTER_USER " sslmode=disable",
                 pg_cluster.port);
        PGconn *c = admin(f);
        pg_exec(c,
                "DROP TABLE IF EXISTS ca_journal, ca_journal_schema, ca_journal_roles, extra_t2");
        PQfinish(c);
        return 0;
}

static void test_pg_schema(void **state)
{
        struct fixture *f = *state;
        struct journal *j = open_fx(f, 1);
        assert_null(journal_db(j));
        assert_non_null(journal_pg_conn(j));
        assert_int_equal(pg_long(f, "SELECT version FROM ca_journal_schema"),
                         CA_JOURNAL_PG_SCHEMA_VERSION);
        char *check = pg_text(f, "SELECT key_check FROM ca_journal_schema");
        assert_int_equal(strlen(check), JOURNAL_SEAL_CHECK_LEN);
        free(check);
        /* Keyed as SQLite is: one row per (connector, key), whoever inserts it. */
        assert_int_equal(pg_long(f, "SELECT count(*) FROM pg_indexes WHERE tablename = "
                                    "'ca_journal' AND indexdef LIKE '%UNIQUE%(connector, key)%'"),
                         1);
        journal_close(j);
        /* Opening again migrates nothing and keeps what is there. */
        j = open_fx(f, 0);
        begin_ok(j, CONN, "o1");
        commit_ok(j);
        journal_close(j);
        j = open_fx(f, 1);
        assert_int_equal(state_of(j, CONN, "o1"), JOURNAL_EXECUTING);
        journal_close(j);
}

/* The order's Changes (a password, say) never reach the database in the clear. */
static void test_pg_sealed_at_rest(void **state)
{
        struct fixture *f = *state;
        struct journal *j = open_fx(f, 1);
        begin_ok(j, CONN, "secret-value-42");
        commit_ok(j);
        char *stored = pg_text(f, "SELECT order_json FROM ca_journal");
        assert_non_null(strstr(stored, "$sealed"));
        /* The key stays readable in its own column; inside Changes it is sealed. */
        assert_null(strstr(stored, "\"uid\""));
        free(stored);
        struct ca_order **orders = NULL;
        size_t n = 0;
        struct ca_error err = {0};
        assert_int_equal(journal_in_doubt(j, CONN, &orders, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_string_equal(json_string_value(json_object_get(orders[0]->changes, "uid")),
                            "secret-value-42");
        journal_orders_free(orders, n);
        journal_close(j);
}

/* Another agent with another key would fail on the first sealed order it reads: it is
 * refused at open, and the message says what to do. */
static void test_pg_other_key_refused(void **state)
{
        struct fixture *f = *state;
        journal_close(open_fx(f, 1));
        struct fixture other = *f;
        snprintf(other.dir, sizeof(other.dir), "/tmp/ca-journal-XXXXXX");
        assert_non_null(mkdtemp(other.dir));
        struct journal *j = (struct journal *)&j;
        struct ca_error err = {0};
        assert_int_equal(open_params(&other, 1, &j, &err), -EKEYREJECTED);
        assert_null(j);
        assert_non_null(strstr(err.msg, "another seal key"));
        assert_non_null(strstr(err.msg, "journal-key"));
        char key[160];
        snprintf(key, sizeof(key), "%s/journal.key", other.dir);
        unlink(key);
        rmdir(other.dir);
}

static void test_pg_newer_schema_refused(void **state)
{
        struct fixture *f = *state;
        journal_close(open_fx(f, 1));
        PGconn *c = admin(f);
        char sql[96];
        snprintf(sql, sizeof(sql), "UPDATE ca_journal_schema SET version = %d",
                 CA_JOURNAL_PG_SCHEMA_VERSION + 1);
        pg_exec(c, sql);
        PQfinish(c);
        struct journal *j = NULL;
        struct ca_error err = {0};
        assert_int_equal(open_params(f, 1, &j, &err), -EPROTO);
        assert_null(j);
        assert_non_null(strstr(err.msg, "newer connector-agent"));
        assert_non_null(strstr(err.msg, "127.0.0.1"));
        assert_int_equal(pg_long(f, "SELECT version FROM ca_journal_schema"),
                         CA_JOURNAL_PG_SCHEMA_VERSION + 1);
}

/* The framework: steps above the stored version apply, all in one transaction; a failed
 * step leaves the database as it was, ready for a retry. */
static void test_pg_migration_steps(void **state)
{
        struct fixture *f = *state;
        journal_close(open_fx(f, 1));
        PGconn *c = admin(f);
        char *check = pg_text(f, "SELECT key_check FROM ca_journal_schema");
        struct ca_error err = {0};
        const int v = CA_JOURNAL_PG_SCHEMA_VERSION;
        const struct journal_migration bad[] = {
            {v, "SELECT 1"}, /* applied already: skipped */
            {v + 1, "CREATE TABLE extra_t2 (x int)"},
            {v + 2, "THIS IS NOT SQL"},
        };
        char want[32];
        snprintf(want, sizeof(want), "version %d", v + 2);
        assert_true(journal_pg_schema_migrate(c, "test", bad, 3, v + 2, check, &err) < 0);
        assert_non_null(strstr(err.msg, want));
        assert_int_equal(pg_long(f, "SELECT version FROM ca_journal_schema"), v);
        assert_int_equal(pg_long(f, "SELECT count(*) FROM pg_tables WHERE tablename = 'extra_t2'"),
                         0);
        const struct journal_migration good[] = {
            {v, "SELECT 1"},
            {v + 1, "CREATE TABLE extra_t2 (x int)"},
            {v + 2, "ALTER TABLE ca_journal ADD COLUMN epoch bigint"},
        };
        assert_int_equal(journal_pg_schema_migrate(c, "test", good, 3, v + 2, check, &err), 0);
        assert_int_equal(pg_long(f, "SELECT version FROM ca_journal_schema"), v + 2);
        assert_int_equal(pg_long(f, "SELECT count(*) FROM information_schema.columns WHERE "
                                    "table_name = 'ca_journal' AND column_name = 'epoch'"),
                         1);
        /* And this agent, which knows only up to version v, now refuses the database. */
        struct journal *j = NULL;
        assert_int_equal(open_params(f, 1, &j, &err), -EPROTO);
        free(check);
        PQfinish(c);
}

/* Agents starting at once on an empty database: one creates the schema, the others
 * wait on the advisory lock and find it made. */
static void test_pg_concurrent_first_open(void **state)
{
        struct fixture *f = *state;
        journal_close(open_fx(f, 1)); /* the key file, shared by the children */
        PGconn *c = admin(f);
        pg_exec(c, "DROP TABLE ca_journal, ca_journal_schema, ca_journal_roles");
        PQfinish(c);
        pid_t kids[4];
        for (int i = 0; i < 4; i++) {
                kids[i] = fork();
                assert_true(kids[i] >= 0);
                if (kids[i] == 0) {
                        struct journal *j = NULL;
                        char id[16];
                        snprintf(id, sizeof(id), "kid-%d", i);
                        struct ca_order *o = make_order(id, "Added", 0);
                        int ok = open_params(f, 1, &j, NULL) == 0 &&
                                 journal_begin(j, CONN, o, NULL) == 0 &&
                                 journal_commit(j, NULL) == 0;
                        _exit(ok ? 0 : 1);
                }
        }
        for (int i = 0; i < 4; i++) {
                int status = 0;
                assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
                assert_true(WIFEXITED(status));
                assert_int_equal(WEXITSTATUS(status), 0);
        }
        assert_int_equal(pg_long(f, "SELECT count(*) FROM ca_journal"), 4);
}

/* A password belongs in its own file, never in journal_connection (which config show
 * prints); libpq's words for a bad string are passed on. */
static void test_pg_conninfo_refused(void **state)
{
        struct fixture *f = *state;
        struct fixture bad = *f;
        struct journal *j = NULL;
        struct ca_error err = {0};
        snprintf(bad.conninfo, sizeof(bad.conninfo), "%s password=" PG_CLUSTER_PASSWORD,
                 f->conninfo);
        assert_int_equal(open_params(&bad, 1, &j, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "journal_password_file"));
        assert_null(strstr(err.msg, PG_CLUSTER_PASSWORD));
        snprintf(bad.conninfo, sizeof(bad.conninfo), "host=127.0.0.1 port='unterminated");
        assert_int_equal(open_params(&bad, 1, &j, &err), -EINVAL);
        bad.conninfo[0] = '\0';
        assert_int_equal(open_params(&bad, 1, &j, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "journal_connection"));
        assert_null(j);
}

/* A server nobody answers at start: the agent does not start (-ECONNREFUSED), and a
 * wrong password is said as such. */
static void test_pg_unreachable_at_open(void **state)
{
        struct fixture *f = *state;
        struct fixture bad = *f;
        struct journal *j = NULL;
        struct ca_error err = {0};
        snprintf(bad.conninfo, sizeof(bad.conninfo),
                 "host=127.0.0.1 port=%d dbname=postgres user=" PG_CLUSTER_USER " sslmode=disable",
                 pg_cluster_free_port());
        assert_int_equal(open_params(&bad, 1, &j, &err), -ECONNREFUSED);
        assert_non_null(strstr(err.msg, "cannot connect"));
        assert_null(j);
        struct journal_params p = {.kind = JOURNAL_POSTGRESQL,
                                   .conninfo = f->conninfo,
                                   .password = "wrong",
                                   .key_dir = f->dir,
                                   .sync = 1};
        assert_true(journal_open_params(&p, &j, &err) < 0);
        assert_non_null(strstr(err.msg, "password authentication failed"));
        assert_null(strstr(err.msg, PG_CLUSTER_PASSWORD));
}

/* A lock held by another session past lock_timeout fails the write with -EBUSY; the
 * batch rule holds (that batch is reported lost at the commit) and the journal goes on. */
static void test_pg_busy(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_fx(f, 1);
        PGresult *r = PQexec(journal_pg_conn(j), "SET lock_timeout = '200ms'");
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        PGconn *c = admin(f);
        pg_exec(c, "BEGIN; LOCK TABLE ca_journal IN EXCLUSIVE MODE");
        struct ca_order *o = make_order("o1", "Added", 0);
        assert_int_equal(journal_begin(j, CONN, o, &err), -EBUSY);
        assert_non_null(strstr(err.msg, "lock"));
        assert_int_equal(journal_commit(j, &err), -EBUSY);
        pg_exec(c, "COMMIT");
        PQfinish(c);
        assert_int_equal(journal_begin(j, CONN, o, &err), 0);
        order_free(o);
        commit_ok(j);
        assert_int_equal(state_of(j, CONN, "o1"), JOURNAL_EXECUTING);
        journal_close(j);
}

/* The server goes away with a batch open, and comes back: the batch is lost and said to
 * be (-ECONNREFUSED, as -ENOSPC for a full disk), every later write and the next commit
 * fail with it; the journal reconnects by itself, writes again, and what was committed
 * before is all there. */
static void test_pg_server_down(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_fx(f, 1);
        begin_ok(j, CONN, "before");
        assert_int_equal(finish(j, CONN, "before", "kept"), 0);
        commit_ok(j);
        begin_ok(j, CONN, "in-batch");

        assert_int_equal(pg_cluster_pause(1), 0);
        struct ca_order *o = make_order("while-down", "Added", 0);
        int rc = journal_begin(j, CONN, o, &err);
        assert_true(rc == -ECONNREFUSED || rc == -EIO);
        assert_non_null(strstr(err.msg, "discarded"));
        assert_int_equal(journal_begin(j, CONN, o, &err), rc); /* the batch stays failed */
        assert_int_equal(journal_commit(j, &err), rc);
        /* Down: nothing can be written, nothing is lost; reads fail too. */
        rc = journal_begin(j, CONN, o, &err);
        assert_int_equal(rc, -ECONNREFUSED);
        assert_non_null(strstr(err.msg, "database unreachable"));
        assert_int_equal(journal_commit(j, &err), 0); /* nothing was pending */
        enum journal_state st;
        assert_int_equal(journal_state_of(j, CONN, "before", &st, &err), -ECONNREFUSED);

        assert_int_equal(pg_cluster_pause(0), 0);
        begin_ok(j, CONN, "after");
        commit_ok(j);
        assert_int_equal(state_of(j, CONN, "before"), JOURNAL_FINISHED);
        assert_int_equal(state_of(j, CONN, "in-batch"), JOURNAL_UNKNOWN);
        assert_int_equal(state_of(j, CONN, "while-down"), JOURNAL_UNKNOWN);
        assert_int_equal(state_of(j, CONN, "after"), JOURNAL_EXECUTING);
        /* The batch that was lost can be written again as it was. */
        assert_int_equal(journal_begin(j, CONN, o, &err), 0);
        order_free(o);
        commit_ok(j);
        /* And down between the writes and the commit: the commit says the batch is lost. */
        begin_ok(j, CONN, "at-commit");
        assert_int_equal(pg_cluster_pause(1), 0);
        rc = journal_commit(j, &err);
        assert_true(rc == -ECONNREFUSED || rc == -EIO);
        assert_non_null(strstr(err.msg, "not recorded"));
        assert_int_equal(pg_cluster_pause(0), 0);
        assert_int_equal(state_of(j, CONN, "at-commit"), JOURNAL_UNKNOWN);
        assert_int_equal(state_of(j, CONN, "while-down"), JOURNAL_EXECUTING);
        journal_close(j);
}

static void hold_ok(struct journal *j, const char *id, const char *why)
{
        struct ca_order *o = make_order(id, "Deleted", 0);
        struct ca_error err = {0};
        int rc = journal_hold(j, CONN, o, why, &err);
        if (rc != 0)
                print_error("journal_hold: %d %s\n", rc, err.msg);
        assert_int_equal(rc, 0);
        order_free(o);
}

static void count_taken(void *ctx, const char *change_type, unsigned guard_kinds,
                        int64_t received_at)
{
        (void)received_at;
        int *n = ctx;
        assert_string_equal(change_type, "Added");
        assert_int_equal(guard_kinds, 0x11); /* as recorded below */
        (*n)++;
}

static size_t held_count(struct journal *j)
{
        size_t n = 99;
        struct ca_error err = {0};
        assert_int_equal(journal_held_count(j, CONN, &n, &err), 0);
        return n;
}

/* HELD: kept with why, across a reopen, out of the taken windows, released by another
 * connection (the operator's command) in its assignment's order, or refused. */
static void test_held(void **state)
{
        struct fixture *f = *state;
        struct ca_error err = {0};
        struct journal *j = open_fx(f, 1);
        hold_ok(j, "h1", "limit Deleted 50/1h");
        /* What the guardrails counted it as is kept (recent_taken gives it back). */
        struct ca_order *x1 = make_order("x1", "Added", 0);
        x1->guard_kinds = 0x11;
        assert_int_equal(journal_begin(j, CONN, x1, &err), 0);
        order_free(x1);
        hold_ok(j, "h2", "protected");
        struct ca_order *dup = make_order("h1", "Deleted", 0);
        assert_int_equal(journal_hold(j, CONN, dup, "again", &err), -EEXIST);
        order_free(dup);
        assert_int_equal(state_of(j, CONN, "h1"), JOURNAL_HELD);
        assert_int_equal(held_count(j), 2);
        commit_ok(j);
        journal_close(j);

        j = open_fx(f, 1);
        struct ca_order **orders = NULL;
        char **whys = NULL;
        size_t n = 0;
        assert_int_equal(journal_held(j, CONN, &orders, &whys, &n, &err), 0);
        assert_keys(orders, n, (const char *const[]){"h1", "h2"}, 2);
        assert_string_equal(whys[0], "limit Deleted 50/1h");
        assert_string_equal(whys[1], "protected");
        assert_string_equal(orders[0]->assignment_id, "39300");
        journal_orders_free(orders, n);
        journal_whys_free(whys, n);
        /* Neither in doubt nor queued, and not counted as taken by the windows. */
        assert_int_equal(journal_in_doubt(j, CONN, &orders, &n, &err), 0);
        assert_keys(orders, n, (const char *const[]){"x1"}, 1);
        journal_orders_free(orders, n);
        int taken = 0;
        assert_int_equal(journal_recent_taken(j, CONN, 0, count_taken, &taken, &err), 0);
        assert_int_equal(taken, 1);
        taken = 0;
        assert_int_equal(
            journal_recent_taken(j, CONN, time_wall_s() + 10, count_taken, &taken, &err), 0);
        assert_int_equal(taken, 0);

        char *out = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&out, &len);
        assert_non_null(mem);
        assert_int_equal(journal_list_to(j, "held", mem, &err), 0);
        fclose(mem);
        assert_non_null(strstr(out, "HELD"));
        assert_non_null(strstr(out, "2 held entries: 0 executing, 0 finished, 0 reported, 0 "
                                    "queued, 2 held"));
        free(out);

        /* The operator's release, from another connection: h2 alone would jump h1 of the
         * same assignment and is refused with nothing changed. */
        int64_t v1 = -1, v2 = -1;
        assert_int_equal(journal_data_version(j, &v1, &err), 0);
        struct journal *op = open_fx(f, 1);
        size_t released = 99;
        const char *const h2[] = {"h2"};
        assert_int_equal(journal_release(op, CONN, h2, 1, &released, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "h1"));
        assert_int_equal(released, 0);
        const char *const nope[] = {"nope"};
        assert_int_equal(journal_release(op, CONN, nope, 1, &released, &err), -ENOENT);
        assert_int_equal(held_count(j), 2);
        assert_int_equal(journal_release(op, CONN, NULL, 0, &released, &err), 0);
        assert_int_equal(released, 2);
        journal_close(op);
        /* The agent's connection sees it: SQLite by data_version, any driver by the count
         * (only the agent itself adds held orders). */
        assert_int_equal(journal_data_version(j, &v2, &err), 0);
        if (f->kind == JOURNAL_SQLITE)
                assert_true(v2 != v1);
        else
                assert_true(v1 == 0 && v2 == 0);
        assert_int_equal(held_count(j), 0);
        assert_int_equal(state_of(j, CONN, "h1"), JOURNAL_QUEUED);
        assert_int_equal(journal_queued(j, CONN, &orders, &n, &err), 0);
        assert_keys(orders, n, (const char *const[]){"h1", "h2"}, 2);
        journal_orders_free(orders, n);

        /* Refused: a held order was never applied, so only Errored resolves it. */
        hold_ok(j, "h3", "limit");
        commit_ok(j);
        assert_int_equal(journal_resolve(j, CONN, "h3", CA_RESULT_EXECUTED, "done", &err), -EINVAL);
        assert_non_null(strstr(err.msg, "HELD"));
        assert_int_equal(journal_resolve(j, CONN, "h3", CA_RESULT_ERRORED, "refused", &err), 0);
        assert_int_equal(state_of(j, CONN, "h3"), JOURNAL_FINISHED);
        const char *const h3[] = {"h3"};
        assert_int_equal(journal_release(j, CONN, h3, 1, &released, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "not HELD"));
        journal_close(j);
}

/* A PostgreSQL journal of schema version 1 (before HELD) migrates to 2 keeping its rows;
 * the new checks take HELD and still refuse what version 1 refused. */
static void test_pg_migrate_v1(void **state)
{
        struct fixture *f = *state;
        journal_close(open_fx(f, 1));
        PGconn *c = admin(f);
        pg_exec(c, "DROP TABLE ca_journal");
        pg_exec(c, journal_pg_migrations[0].sql);
        pg_exec(c, "UPDATE ca_journal_schema SET version = 1");
        pg_exec(c, "INSERT INTO ca_journal (connector, key, state, received_at) "
                   "VALUES ('" CONN "', 'old', 4, 1)");
        PGresult *r = PQexec(c, "INSERT INTO ca_journal (connector, key, state, received_at) "
                                "VALUES ('" CONN "', 'early', 5, 1)");
        assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR); /* version 1 refuses HELD */
        PQclear(r);

        struct journal *j = open_fx(f, 1);
        assert_int_equal(pg_long(f, "SELECT version FROM ca_journal_schema"),
                         CA_JOURNAL_PG_SCHEMA_VERSION);
        assert_int_equal(state_of(j, CONN, "old"), JOURNAL_QUEUED);
        hold_ok(j, "h1", "limit");
        commit_ok(j);
        assert_int_equal(held_count(j), 1);
        journal_close(j);
        const char *const refused[] = {
            "INSERT INTO ca_journal (connector, key, state, received_at) "
            "VALUES ('" CONN "', 's6', 6, 1)",
            "INSERT INTO ca_journal (connector, key, state, result_state, received_at) "
            "VALUES ('" CONN "', 's5', 5, 1, 1)",
        };
        for (size_t i = 0; i < 2; i++) {
                r = PQexec(c, refused[i]);
                assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
                PQclear(r);
        }
        PQfinish(c);
}

static int sqlite_setup(void **state)
{
        setup(state);
        ((struct fixture *)*state)->kind = JOURNAL_SQLITE;
        return 0;
}

/* Takes CONN's role for identifier as soon as its holder's session is gone: the server
 * ends a closed or terminated backend, and frees its locks, a moment later. */
static void serve_once_free(struct journal *j, const char *identifier, struct journal_role *role)
{
        struct ca_error err = {0};
        for (int i = 0; i < 250; i++) {
                assert_int_equal(journal_serve(j, CONN, identifier, role, &err), 0);
                if (role->serving)
                        return;
                struct timespec tick = {0, 20 * 1000000L};
                nanosleep(&tick, NULL);
        }
        fail_msg("%s never got the role (held by %s)", identifier, role->holder);
}

/* Serving a connector: on SQLite the only instance serves all; on PostgreSQL one
 * session at a time holds a connector's role, the others read who does, the role moves
 * when its holder's session ends, and a session made again by a reconnect writes
 * nothing until it has taken its roles back, the epoch telling whether another instance
 * served the connector meanwhile. */
static void test_roles(void **state)
{
        struct fixture *f = *state;
        struct journal *a = open_fx(f, 1);
        struct journal_role role;
        struct ca_error err = {0};
        assert_int_equal(journal_serve(a, CONN, "inst-a", &role, &err), 0);
        assert_true(role.serving);
        assert_string_equal(role.holder, "inst-a");
        assert_false(journal_roles_lost(a));
        assert_int_equal(journal_keepalive(a, &err), 0);
        if (f->kind == JOURNAL_SQLITE) {
                assert_int_equal(role.epoch, 0);
                begin_ok(a, CONN, "r1");
                commit_ok(a);
                journal_close(a);
                return;
        }
        assert_int_equal(role.epoch, 1);
        /* Taken again in the same session: still this one's, counted up. */
        assert_int_equal(journal_serve(a, CONN, "inst-a", &role, &err), 0);
        assert_true(role.serving);
        assert_int_equal(role.epoch, 2);

        struct journal *b = open_fx(f, 1);
        assert_int_equal(journal_serve(b, CONN, "inst-b", &role, &err), 0);
        assert_false(role.serving);
        assert_string_equal(role.holder, "inst-a");
        assert_int_equal(role.epoch, 2);
        /* Another connector is free for b. */
        assert_int_equal(journal_serve(b, "other", "inst-b", &role, &err), 0);
        assert_true(role.serving);
        /* A batch open: serve waits for its commit. */
        begin_ok(a, CONN, "r1");
        assert_int_equal(journal_serve(a, CONN, "inst-a", &role, &err), -EAGAIN);
        commit_ok(a);

        /* a's session ends on the server's side (its lease ran out, say): the lock goes
         * with it and b takes the role over. */
        PGconn *c = admin(f);
        char sql[96];
        snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)",
                 PQbackendPID(journal_pg_conn(a)));
        pg_exec(c, sql);
        PQfinish(c);
        serve_once_free(b, "inst-b", &role);
        assert_string_equal(role.holder, "inst-b");
        assert_int_equal(role.epoch, 3);

        /* a, back: its first write finds the session gone and loses the batch; the next
         * one would run in a new session, without the lock: refused. */
        struct ca_order *o = make_order("late", "Added", 0);
        assert_true(journal_begin(a, CONN, o, &err) < 0);
        journal_commit(a, NULL);
        int rc = journal_begin(a, CONN, o, &err);
        assert_int_equal(rc, -ESTALE);
        assert_non_null(strstr(err.msg, "role"));
        assert_true(journal_roles_lost(a));
        assert_int_equal(journal_commit(a, &err), 0);
        /* Taking the role back fails while b holds it: a reads b, and still writes
         * nothing. */
        assert_int_equal(journal_serve(a, CONN, "inst-a", &role, &err), 0);
        assert_false(role.serving);
        assert_string_equal(role.holder, "inst-b");
        assert_int_equal(journal_begin(a, CONN, o, &err), -ESTALE);
        assert_int_equal(state_of(b, CONN, "late"), JOURNAL_UNKNOWN);

        /* b goes (closed: its session ends): a takes the role back, with an epoch that
         * says another served it meanwhile (4, not 3), and may write again. */
        journal_close(b);
        serve_once_free(a, "inst-a", &role);
        assert_int_equal(role.epoch, 4);
        assert_false(journal_roles_lost(a));
        assert_int_equal(journal_begin(a, CONN, o, &err), 0);
        commit_ok(a);
        order_free(o);
        journal_close(a);
}

/* The cases both drivers must pass, each in its own group. */
#define BOTH(setup_fn)                                                                             \
        cmocka_unit_test_setup_teardown(test_state_machine, setup_fn, teardown),                   \
            cmocka_unit_test_setup_teardown(test_reads_see_uncommitted, setup_fn, teardown),       \
            cmocka_unit_test_setup_teardown(test_restart_persistence, setup_fn, teardown),         \
            cmocka_unit_test_setup_teardown(test_crash_loses_only_uncommitted, setup_fn,           \
                                            teardown),                                             \
            cmocka_unit_test_setup_teardown(test_oldest_first, setup_fn, teardown),                \
            cmocka_unit_test_setup_teardown(test_prune, setup_fn, teardown),                       \
            cmocka_unit_test_setup_teardown(test_resolve, setup_fn, teardown),                     \
            cmocka_unit_test_setup_teardown(test_forget, setup_fn, teardown),                      \
            cmocka_unit_test_setup_teardown(test_list, setup_fn, teardown),                        \
            cmocka_unit_test_setup_teardown(test_refused_results, setup_fn, teardown),             \
            cmocka_unit_test_setup_teardown(test_queued, setup_fn, teardown),                      \
            cmocka_unit_test_setup_teardown(test_held, setup_fn, teardown),                        \
            cmocka_unit_test_setup_teardown(test_roles, setup_fn, teardown),                       \
            cmocka_unit_test_setup_teardown(test_performance, setup_fn, teardown)

int main(void)
{
        const struct CMUnitTest sqlite_tests[] = {
            BOTH(sqlite_setup),
            cmocka_unit_test(test_close_null),
            cmocka_unit_test_setup_teardown(test_open_missing_dir, sqlite_setup, teardown),
            cmocka_unit_test_setup_teardown(test_open_pragmas, sqlite_setup, teardown),
            cmocka_unit_test_setup_teardown(test_busy_loses_nothing, sqlite_setup, teardown),
            cmocka_unit_test_setup_teardown(test_newer_schema_refused, sqlite_setup, teardown),
            cmocka_unit_test_setup_teardown(test_corrupt_garbage_refused, sqlite_setup, teardown),
            cmocka_unit_test_setup_teardown(test_corrupt_truncated_refused, sqlite_setup, teardown),
            cmocka_unit_test_setup_teardown(test_corrupt_page_refused, sqlite_setup, teardown),
            cmocka_unit_test_setup_teardown(test_migrate_from_zero, sqlite_setup, teardown),
            cmocka_unit_test_setup_teardown(test_migration_steps, sqlite_setup, teardown),
            cmocka_unit_test_setup_teardown(test_disk_full_max_page_count, sqlite_setup, teardown),
            cmocka_unit_test_setup_teardown(test_disk_full_tmpfs, sqlite_setup, teardown),
            cmocka_unit_test_setup_teardown(test_migrate_v1, sqlite_setup, teardown),
        };
        const struct CMUnitTest pg_tests[] = {
            BOTH(pg_setup),
            cmocka_unit_test_setup_teardown(test_pg_schema, pg_setup, teardown),
            cmocka_unit_test_setup_teardown(test_pg_sealed_at_rest, pg_setup, teardown),
            cmocka_unit_test_setup_teardown(test_pg_other_key_refused, pg_setup, teardown),
            cmocka_unit_test_setup_teardown(test_pg_newer_schema_refused, pg_setup, teardown),
            cmocka_unit_test_setup_teardown(test_pg_migration_steps, pg_setup, teardown),
            cmocka_unit_test_setup_teardown(test_pg_migrate_v1, pg_setup, teardown),
            cmocka_unit_test_setup_teardown(test_pg_concurrent_first_open, pg_setup, teardown),
            cmocka_unit_test_setup_teardown(test_pg_conninfo_refused, pg_setup, teardown),
            cmocka_unit_test_setup_teardown(test_pg_unreachable_at_open, pg_setup, teardown),
            cmocka_unit_test_setup_teardown(test_pg_busy, pg_setup, teardown),
            cmocka_unit_test_setup_teardown(test_pg_server_down, pg_setup, teardown),
        };
        int failed = cmocka_run_group_tests_name("journal-sqlite", sqlite_tests, NULL, NULL);
        failed += cmocka_run_group_tests_name("journal-postgresql", pg_tests, pg_group_setup,
                                              pg_group_teardown);
        return failed;
}
