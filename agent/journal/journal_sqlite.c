/* SPDX-License-Identifier: Apache-2.0 */
/* The journal's SQLite driver: one file in WAL mode, its cached statements, the batch as
 * one BEGIN IMMEDIATE transaction, and SQLite's result codes as negative errnos. Schema
 * and migrations are in journal_schema.c. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal_internal.h"
#include "journal_seal.h"
#include "log.h"

#define RESULT_COLUMNS                                                                             \
        "key, order_id, assignment_id, result_state, message, change_type, owner_id, "             \
        "owner_type, resource_identifier, executed_at"
#define LIST_COLUMNS                                                                               \
        "connector, key, state, change_type, assignment_id, received_at, finished_at, "            \
        "reported_at, result_state, message, refusal FROM entries"

/* The arguments of each statement are in journal.c's order; see the PostgreSQL twin in
 * journal_pg.c, which must say the same thing. */
static const char *const stmt_sql[JS_COUNT_STMTS] = {
    [JS_STATE] = "SELECT state FROM entries WHERE connector = ?1 AND key = ?2",
    [JS_BEGIN] = "INSERT INTO entries (connector, key, state, order_json, order_id, "
                 "assignment_id, change_type, received_at, guard_kinds) "
                 "VALUES (?1, ?2, ?8, ?3, ?4, ?5, ?6, ?7, ?9) "
                 "ON CONFLICT (connector, key) DO NOTHING",
    [JS_FINISH_UPDATE] = "UPDATE entries SET state = 2, order_id = ?3, assignment_id = ?4, "
                         "result_state = ?5, message = ?6, change_type = ?7, owner_id = ?8, "
                         "owner_type = ?9, resource_identifier = ?10, executed_at = ?11, "
                         "finished_at = ?12, order_json = NULL "
                         "WHERE connector = ?1 AND key = ?2 AND state IN (1, 4, 5)",
    [JS_FINISH_INSERT] = "INSERT INTO entries (connector, key, state, order_id, assignment_id, "
                         "result_state, message, change_type, owner_id, owner_type, "
                         "resource_identifier, executed_at, received_at, finished_at) "
                         "VALUES (?1, ?2, 2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12) "
                         "ON CONFLICT (connector, key) DO NOTHING",
    [JS_RESULT] = "SELECT " RESULT_COLUMNS " FROM entries "
                  "WHERE connector = ?1 AND key = ?2 AND state IN (2, 3)",
    [JS_UNREPORTED] = "SELECT " RESULT_COLUMNS " FROM entries "
                      "WHERE state = 2 AND refusal IS NULL AND connector = ?1 "
                      "ORDER BY seq LIMIT ?2",
    [JS_COUNT_ONE] = "SELECT count(*) FROM entries WHERE state = 2 AND refusal IS NULL AND "
                     "connector = ?1",
    [JS_COUNT_ALL] = "SELECT count(*) FROM entries WHERE state = 2 AND refusal IS NULL",
    [JS_MARK] = "UPDATE entries SET state = 3, reported_at = ?3 "
                "WHERE connector = ?1 AND key IN (SELECT value FROM json_each(?2)) AND +state = 2",
    [JS_IN_DOUBT] = "SELECT key, order_json FROM entries "
                    "WHERE state = 1 AND connector = ?1 ORDER BY seq",
    [JS_QUEUED] = "SELECT key, order_json FROM entries "
                  "WHERE state = 4 AND connector = ?1 ORDER BY seq",
    [JS_HELD] = "SELECT key, order_json, message FROM entries WHERE state = 5 AND connector = ?1 "
                "ORDER BY seq",
    [JS_HOLD] = "INSERT INTO entries (connector, key, state, order_json, order_id, assignment_id, "
                "change_type, received_at, message, guard_kinds) VALUES (?1, ?2, 5, ?3, ?4, ?5, "
                "?6, ?7, ?8, ?9) ON CONFLICT (connector, key) DO NOTHING",
    [JS_COUNT_HELD] = "SELECT count(*) FROM entries WHERE state = 5 AND connector = ?1",
    [JS_HELD_KEYS] =
        "SELECT key, assignment_id FROM entries WHERE state = 5 AND connector = ?1 ORDER BY seq",
    [JS_RECENT_TAKEN] =
        "SELECT change_type, received_at, guard_kinds FROM entries WHERE connector = ?1 AND "
        "received_at >= ?2 "
        "AND (state IN (1, 4) OR (state IN (2, 3) AND result_state = 1)) ORDER BY seq",
    [JS_LIST_HELD] = "SELECT " LIST_COLUMNS " WHERE state = 5 ORDER BY seq",
    [JS_MOVE] = "UPDATE entries SET state = ?4 WHERE connector = ?1 AND key = ?2 AND state = ?3",
    [JS_PRUNE] = "DELETE FROM entries WHERE state = 3 AND reported_at < ?1",
    [JS_FORGET] = "DELETE FROM entries WHERE connector = ?1 AND key = ?2 AND state IN (1, 4, 5)",
    [JS_UNREPORT] = "UPDATE entries SET state = 2, reported_at = NULL "
                    "WHERE connector = ?1 AND key = ?2 AND state = 3",
    [JS_ORDER_OF] = "SELECT state, order_json FROM entries WHERE connector = ?1 AND key = ?2",
    [JS_LIST_PENDING] = "SELECT " LIST_COLUMNS " WHERE state = 1 ORDER BY seq",
    [JS_LIST_QUEUED] = "SELECT " LIST_COLUMNS " WHERE state = 4 ORDER BY seq",
    [JS_LIST_UNREPORTED] = "SELECT " LIST_COLUMNS " WHERE state = 2 ORDER BY seq",
    [JS_LIST_ALL] = "SELECT " LIST_COLUMNS " ORDER BY seq",
    [JS_LIST_REFUSED] =
        "SELECT " LIST_COLUMNS " WHERE state = 2 AND refusal IS NOT NULL ORDER BY seq",
    [JS_REFUSE] = "UPDATE entries SET refusal = ?3 WHERE connector = ?1 AND key = ?2 AND state = 2",
    [JS_RESEND] = "UPDATE entries SET refusal = NULL WHERE connector = ?1 AND state = 2 AND "
                  "refusal IS NOT NULL AND (?2 IS NULL OR key = ?2)",
    [JS_COUNT_REFUSED] = "SELECT count(*) FROM entries WHERE state = 2 AND refusal IS NOT NULL AND "
                         "connector = ?1",
};

struct sq {
        sqlite3 *db;
        sqlite3_stmt *stmts[JS_COUNT_STMTS];
};

static sqlite3 *db_of(struct journal *j)
{
        return ((struct sq *)j->db)->db;
}

int journal_errno(sqlite3 *db, int rc)
{
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_IOERR:
                if (rc == SQLITE_IOERR_NOMEM)
                        return -ENOMEM;
                /* Some writes (the -shm file, a truncate) fail as I/O errors on a full disk. */
                if (db && sqlite3_system_errno(db) == ENOSPC)
                        return -ENOSPC;
                return -EIO;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EPROTO;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CANTOPEN:
                return -ENOENT;
        case SQLITE_CONSTRAINT:
        case SQLITE_MISUSE:
        case SQLITE_RANGE:
                return -EINVAL;
        default:
                return -EIO;
        }
}

sqlite3 *journal_db(struct journal *j)
{
        return j && j->drv && strcmp(j->drv->name, "sqlite") == 0 ? db_of(j) : NULL;
}

static int fail_with(sqlite3 *db, int rc, char *why, size_t len)
{
        int code = journal_errno(db, rc);
        snprintf(why, len, "%s", sqlite3_errmsg(db));
        return code ? code : -EIO;
}

/* The cached statement id, reset, with args bound. */
static int stmt(struct journal *j, enum journal_stmt_id id, const struct journal_arg *args,
                size_t n, sqlite3_stmt **out, char *why, size_t len)
{
        struct sq *s = j->db;
        sqlite3_stmt *st = s->stmts[id];
        if (!st) {
                int rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &st,
                                            NULL);
                if (rc != SQLITE_OK) {
                        sqlite3_finalize(st);
                        return fail_with(s->db, rc, why, len);
                }
                s->stmts[id] = st;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        for (size_t i = 0; i < n; i++) {
                int rc = args[i].is_int
                             ? sqlite3_bind_int64(st, (int)i + 1, args[i].num)
                             : sqlite3_bind_text(st, (int)i + 1, args[i].text, -1, SQLITE_STATIC);
                if (rc != SQLITE_OK)
                        return fail_with(s->db, rc, why, len);
        }
        *out = st;
        return 0;
}

static int sq_exec(struct journal *j, const char *sql, char *why, size_t len)
{
        int rc = sqlite3_exec(db_of(j), sql, NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : fail_with(db_of(j), rc, why, len);
}

static int sq_begin(struct journal *j, char *why, size_t len)
{
        return sq_exec(j, "BEGIN IMMEDIATE", why, len);
}

static int sq_commit(struct journal *j, char *why, size_t len)
{
        return sq_exec(j, "COMMIT", why, len);
}

static void sq_rollback(struct journal *j)
{
        if (!sqlite3_get_autocommit(db_of(j)))
                sqlite3_exec(db_of(j), "ROLLBACK", NULL, NULL, NULL);
}

static int sq_write(struct journal *j, enum journal_stmt_id id, const struct journal_arg *args,
                    size_t n, char *why, size_t len)
{
        sqlite3_stmt *st = NULL;
        int code = stmt(j, id, args, n, &st, why, len);
        if (code < 0)
                return code;
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
                code = fail_with(db_of(j), rc, why, len);
                sqlite3_reset(st);
                return code;
        }
        int changes = sqlite3_changes(db_of(j));
        sqlite3_reset(st);
        return changes;
}

static int sq_query(struct journal *j, enum journal_stmt_id id, const struct journal_arg *args,
                    size_t n, struct journal_rows *rows, char *why, size_t len)
{
        sqlite3_stmt *st = NULL;
        int code = stmt(j, id, args, n, &st, why, len);
        rows->cur = st;
        return code;
}

static int sq_next(struct journal_rows *rows, char *why, size_t len)
{
        int rc = sqlite3_step(rows->cur);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return fail_with(db_of(rows->j), rc, why, len);
}

static const char *sq_text(struct journal_rows *rows, int col)
{
        return (const char *)sqlite3_column_text(rows->cur, col);
}

static int64_t sq_integer(struct journal_rows *rows, int col)
{
        return sqlite3_column_int64(rows->cur, col);
}

static int sq_is_null(struct journal_rows *rows, int col)
{
        return sqlite3_column_type(rows->cur, col) == SQLITE_NULL;
}

static void sq_done(struct journal_rows *rows)
{
        if (rows->cur)
                sqlite3_reset(rows->cur);
        rows->cur = NULL;
}

static int sq_tx_lost(struct journal *j)
{
        return sqlite3_get_autocommit(db_of(j));
}

/* PRAGMA data_version: changes when another connection (the operator's journal release
 * or resolve, another process) committed to the file since this one last looked. */
static int sq_data_version(struct journal *j, int64_t *version, char *why, size_t len)
{
        sqlite3 *db = db_of(j);
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &st, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                *version = sqlite3_column_int64(st, 0);
                rc = SQLITE_OK;
        }
        int code = rc == SQLITE_OK ? 0 : fail_with(db, rc, why, len);
        sqlite3_finalize(st);
        return code;
}

static void sq_close(struct journal *j)
{
        struct sq *s = j->db;
        if (!s)
                return;
        for (size_t i = 0; i < JS_COUNT_STMTS; i++)
                sqlite3_finalize(s->stmts[i]);
        if (sqlite3_close(s->db) != SQLITE_OK)
                log_error("journal %s: close: %s", j->name, sqlite3_errmsg(s->db));
        free(s);
        j->db = NULL;
}

static const struct journal_driver sqlite_driver = {
    .name = "sqlite",
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .write = sq_write,
    .query = sq_query,
    .next = sq_next,
    .text = sq_text,
    .integer = sq_integer,
    .is_null = sq_is_null,
    .done = sq_done,
    .tx_lost = sq_tx_lost,
    .data_version = sq_data_version,
};

static int check_dir(const char *path, struct ca_error *err)
{
        const char *slash = strrchr(path, '/');
        if (!slash)
                return 0;
        char dir[PATH_MAX];
        size_t len = slash == path ? 1 : (size_t)(slash - path);
        if (len >= sizeof(dir))
                return ca_error_set(err, -ENAMETOOLONG, "journal %s: path too long", path);
        memcpy(dir, path, len);
        dir[len] = '\0';
        struct stat sb;
        if (stat(dir, &sb) < 0 && errno == ENOENT)
                return ca_error_set(
                    err, -ENOENT,
                    "journal %s: state directory %s does not exist; create it for the "
                    "user the agent runs as (uid %u): install -d -m 0700 -o %u -g %u %s "
                    "(the Debian package and systemd's StateDirectory= create "
                    "/var/lib/connector-agent)",
                    path, dir, (unsigned)geteuid(), (unsigned)geteuid(), (unsigned)getegid(), dir);
        if (stat(dir, &sb) < 0)
                return ca_error_set(err, -errno,
                                    "journal %s: state directory %s is not usable (%s)", path, dir,
                                    strerror(errno));
        if (!S_ISDIR(sb.st_mode))
                return ca_error_set(err, -ENOTDIR, "journal %s: %s is not a directory", path, dir);
        /* SQLite needs to create the journal, its -wal and -shm files next to it. */
        if (access(dir, W_OK | X_OK) < 0)
                return ca_error_set(
                    err, -errno,
                    "journal %s: state directory %s is not writable by uid %u gid %u "
                    "(owner %u:%u, mode %04o): give it to that user (chown), or, in a "
                    "container started with --user, run with group 0 (--user UID:0) on a "
                    "volume created by the image, or make the volume writable by that uid",
                    path, dir, (unsigned)geteuid(), (unsigned)getegid(), (unsigned)sb.st_uid,
                    (unsigned)sb.st_gid, (unsigned)(sb.st_mode & 07777));
        return 0;
}

static int pragma(sqlite3 *db, const char *path, const char *sql, const char *expect,
                  struct ca_error *err)
{
        sqlite3_stmt *st = NULL;
        int code = 0;
        int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
                code = journal_errno(db, rc);
                ca_error_set(err, code, "journal %s: %s failed: %s", path, sql, sqlite3_errmsg(db));
        } else if (expect) {
                const char *got =
                    rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
                if (!got || strcmp(got, expect) != 0)
                        code = ca_error_set(err, -EIO, "journal %s: %s answered %s, not %s", path,
                                            sql, got ? got : "nothing", expect);
        }
        sqlite3_finalize(st);
        return code;
}

int journal_sqlite_open(struct journal *j, const char *path, int sync, struct ca_error *err)
{
        if (!path || !*path)
                return ca_error_set(err, -EINVAL, "journal: no path");
        int code = check_dir(path, err);
        if (code < 0)
                return code;
        struct sq *s = calloc(1, sizeof(*s));
        if (!s)
                return ca_error_set(err, -ENOMEM, "journal %s: out of memory", path);
        int rc = sqlite3_open_v2(
            path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                code = s->db ? journal_errno(s->db, rc) : -ENOMEM;
                int sys = s->db ? sqlite3_system_errno(s->db) : 0;
                ca_error_set(err, code, "journal %s: cannot open: %s%s%s", path,
                             s->db ? sqlite3_errmsg(s->db) : "out of memory", sys ? ": " : "",
                             sys ? strerror(sys) : "");
                goto fail;
        }
        sqlite3_extended_result_codes(s->db, 1);
        sqlite3_busy_timeout(s->db, JOURNAL_BUSY_TIMEOUT_MS);
        if (sqlite3_db_readonly(s->db, "main") == 1) {
                code = ca_error_set(err, -EACCES,
                                    "journal %s: the file is read-only; the agent must be able to "
                                    "write it",
                                    path);
                goto fail;
        }
        int version = 0;
        if ((code = journal_schema_check(s->db, path, CA_JOURNAL_SCHEMA_VERSION, &version, err)) <
                0 ||
            (code = pragma(s->db, path, "PRAGMA journal_mode = WAL", "wal", err)) < 0 ||
            (code = pragma(s->db, path,
                           sync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL", NULL,
                           err)) < 0 ||
            (code = pragma(s->db, path, "PRAGMA foreign_keys = ON", NULL, err)) < 0 ||
            (code = journal_schema_migrate(s->db, path, journal_migrations,
                                           journal_migrations_count, err)) < 0 ||
            /* Freed pages are zeroed so that an order's erased text does not linger. */
            (code = pragma(s->db, path, "PRAGMA secure_delete = ON", NULL, err)) < 0)
                goto fail;
        /* The seal's key lives next to the journal file. */
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash)
                *(slash == dir ? slash + 1 : slash) = '\0';
        else
                snprintf(dir, sizeof(dir), ".");
        if ((code = journal_seal_load(dir, &j->seal, err)) < 0)
                goto fail;
        if (!(j->name = strdup(path))) {
                code = ca_error_set(err, -ENOMEM, "journal %s: out of memory", path);
                goto fail;
        }
        j->drv = &sqlite_driver;
        j->db = s;
        return 0;
fail:
        if (s->db)
                sqlite3_close(s->db);
        free(s);
        journal_seal_free(j->seal);
        j->seal = NULL;
        return code;
}
