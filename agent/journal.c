/* The journal: opening, the batch (group commit) and the order state machine.
 * Schema and migrations are in journal_schema.c, operator commands in journal_admin.c. */
#include "journal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "journal_internal.h"
#include "log.h"
#include "timeutil.h"

#define RESULT_COLUMNS                                                                             \
        "key, order_id, assignment_id, result_state, message, change_type, owner_id, "             \
        "owner_type, resource_identifier, executed_at"
#define LIST_COLUMNS                                                                               \
        "connector, key, state, change_type, assignment_id, received_at, finished_at, "            \
        "reported_at, result_state, message FROM entries"

static const char *const stmt_sql[JS_COUNT_STMTS] = {
    [JS_STATE] = "SELECT state FROM entries WHERE connector = ?1 AND key = ?2",
    [JS_BEGIN] = "INSERT INTO entries (connector, key, state, order_json, order_id, "
                 "assignment_id, change_type, received_at) "
                 "VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7) "
                 "ON CONFLICT (connector, key) DO NOTHING",
    [JS_FINISH_UPDATE] = "UPDATE entries SET state = 2, order_id = ?3, assignment_id = ?4, "
                         "result_state = ?5, message = ?6, change_type = ?7, owner_id = ?8, "
                         "owner_type = ?9, resource_identifier = ?10, executed_at = ?11, "
                         "finished_at = ?12 "
                         "WHERE connector = ?1 AND key = ?2 AND state = 1",
    [JS_FINISH_INSERT] = "INSERT INTO entries (connector, key, state, order_id, assignment_id, "
                         "result_state, message, change_type, owner_id, owner_type, "
                         "resource_identifier, executed_at, received_at, finished_at) "
                         "VALUES (?1, ?2, 2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12) "
                         "ON CONFLICT (connector, key) DO NOTHING",
    [JS_RESULT] = "SELECT " RESULT_COLUMNS " FROM entries "
                  "WHERE connector = ?1 AND key = ?2 AND state IN (2, 3)",
    [JS_UNREPORTED] = "SELECT " RESULT_COLUMNS " FROM entries "
                      "WHERE state = 2 AND connector = ?1 ORDER BY seq LIMIT ?2",
    [JS_COUNT_ONE] = "SELECT count(*) FROM entries WHERE state = 2 AND connector = ?1",
    [JS_COUNT_ALL] = "SELECT count(*) FROM entries WHERE state = 2",
    [JS_MARK] = "UPDATE entries SET state = 3, reported_at = ?3 "
                "WHERE connector = ?1 AND key = ?2 AND state = 2",
    [JS_IN_DOUBT] = "SELECT key, order_json FROM entries "
                    "WHERE state = 1 AND connector = ?1 ORDER BY seq",
    [JS_PRUNE] = "DELETE FROM entries WHERE state = 3 AND reported_at < ?1",
    [JS_FORGET] = "DELETE FROM entries WHERE connector = ?1 AND key = ?2 AND state = 1",
    [JS_UNREPORT] = "UPDATE entries SET state = 2, reported_at = NULL "
                    "WHERE connector = ?1 AND key = ?2 AND state = 3",
    [JS_ORDER_OF] = "SELECT state, order_json FROM entries WHERE connector = ?1 AND key = ?2",
    [JS_LIST_PENDING] = "SELECT " LIST_COLUMNS " WHERE state = 1 ORDER BY seq",
    [JS_LIST_UNREPORTED] = "SELECT " LIST_COLUMNS " WHERE state = 2 ORDER BY seq",
    [JS_LIST_ALL] = "SELECT " LIST_COLUMNS " ORDER BY seq",
};

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

const char *journal_errno_words(int code)
{
        switch (code) {
        case -ENOSPC:
                return "disk full";
        case -ENOMEM:
                return "out of memory";
        case -EPROTO:
                return "damaged file";
        case -EBUSY:
                return "locked by another process";
        case -EROFS:
                return "read-only";
        case -EACCES:
                return "permission denied";
        case -ENOENT:
                return "cannot open";
        case -EINVAL:
                return "refused";
        default:
                return "I/O error";
        }
}

sqlite3 *journal_db(struct journal *j)
{
        return j ? j->db : NULL;
}

sqlite3_stmt *journal_stmt(struct journal *j, enum journal_stmt_id id, struct ca_error *err)
{
        sqlite3_stmt *st = j->stmts[id];
        if (!st) {
                int rc = sqlite3_prepare_v3(j->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &st,
                                            NULL);
                if (rc != SQLITE_OK) {
                        int code = journal_errno(j->db, rc);
                        ca_error_set(err, code, "journal %s: %s: %s", j->path,
                                     journal_errno_words(code), sqlite3_errmsg(j->db));
                        sqlite3_finalize(st);
                        return NULL;
                }
                j->stmts[id] = st;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return st;
}

static void rollback(struct journal *j)
{
        if (!sqlite3_get_autocommit(j->db))
                sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
        j->in_tx = 0;
        j->pending = 0;
}

/* The batch is gone: remember why until journal_commit reports it. */
static int batch_failed(struct journal *j, int code, const char *what, const char *why,
                        struct ca_error *err)
{
        unsigned lost = j->pending;
        rollback(j);
        j->batch_err = code;
        snprintf(j->batch_msg, sizeof(j->batch_msg),
                 "journal %s: %s (%s while %s); the %u write(s) since the last commit are "
                 "discarded",
                 j->path, journal_errno_words(code), why, what, lost);
        log_error("%s", j->batch_msg);
        return ca_error_set(err, code, "%s", j->batch_msg);
}

int journal_write_start(struct journal *j, struct ca_error *err)
{
        if (j->batch_err)
                return ca_error_set(err, j->batch_err,
                                    "%s; journal_commit must acknowledge it before new writes",
                                    j->batch_msg);
        if (j->in_tx)
                return 0;
        int rc = sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                /* Nothing was pending, so nothing is lost: no need to poison the batch. */
                int code = journal_errno(j->db, rc);
                rollback(j);
                return ca_error_set(err, code, "journal %s: %s (%s while opening a transaction)",
                                    j->path, journal_errno_words(code), sqlite3_errmsg(j->db));
        }
        j->in_tx = 1;
        j->pending = 0;
        return 0;
}

int journal_write_step(struct journal *j, sqlite3_stmt *st, const char *what, struct ca_error *err)
{
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
                int code = journal_errno(j->db, rc);
                char why[CA_ERROR_MAX / 2];
                snprintf(why, sizeof(why), "%s", sqlite3_errmsg(j->db));
                sqlite3_reset(st);
                return batch_failed(j, code ? code : -EIO, what, why, err);
        }
        int changes = sqlite3_changes(j->db);
        sqlite3_reset(st);
        j->pending++;
        return changes;
}

int journal_read_failed(struct journal *j, int rc, const char *what, struct ca_error *err)
{
        int code = journal_errno(j->db, rc);
        if (!code)
                code = -EIO;
        if (j->in_tx && sqlite3_get_autocommit(j->db))
                return batch_failed(j, code, what, sqlite3_errmsg(j->db), err);
        return ca_error_set(err, code, "journal %s: %s (%s while %s)", j->path,
                            journal_errno_words(code), sqlite3_errmsg(j->db), what);
}

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
        if (stat(dir, &sb) < 0)
                return ca_error_set(
                    err, -errno,
                    "journal %s: state directory %s is not usable (%s); it must "
                    "exist before the agent starts (systemd's StateDirectory= or the "
                    "package creates it)",
                    path, dir, strerror(errno));
        if (!S_ISDIR(sb.st_mode))
                return ca_error_set(err, -ENOTDIR, "journal %s: %s is not a directory", path, dir);
        return 0;
}

static int pragma(struct journal *j, const char *sql, const char *expect, struct ca_error *err)
{
        sqlite3_stmt *st = NULL;
        int code = 0;
        int rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
                code = journal_errno(j->db, rc);
                ca_error_set(err, code, "journal %s: %s failed: %s", j->path, sql,
                             sqlite3_errmsg(j->db));
        } else if (expect) {
                const char *got =
                    rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
                if (!got || strcmp(got, expect) != 0)
                        code = ca_error_set(err, -EIO, "journal %s: %s answered %s, not %s",
                                            j->path, sql, got ? got : "nothing", expect);
        }
        sqlite3_finalize(st);
        return code;
}

int journal_open(const char *path, int sync, struct journal **out, struct ca_error *err)
{
        *out = NULL;
        if (!path || !*path)
                return ca_error_set(err, -EINVAL, "journal: no path");
        int code = check_dir(path, err);
        if (code < 0)
                return code;
        struct journal *j = calloc(1, sizeof(*j));
        if (!j)
                return ca_error_set(err, -ENOMEM, "journal %s: out of memory", path);
        j->path = strdup(path);
        if (!j->path) {
                code = ca_error_set(err, -ENOMEM, "journal %s: out of memory", path);
                goto fail;
        }
        int rc = sqlite3_open_v2(
            path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                code = j->db ? journal_errno(j->db, rc) : -ENOMEM;
                int sys = j->db ? sqlite3_system_errno(j->db) : 0;
                ca_error_set(err, code, "journal %s: cannot open: %s%s%s", path,
                             j->db ? sqlite3_errmsg(j->db) : "out of memory", sys ? ": " : "",
                             sys ? strerror(sys) : "");
                goto fail;
        }
        sqlite3_extended_result_codes(j->db, 1);
        sqlite3_busy_timeout(j->db, JOURNAL_BUSY_TIMEOUT_MS);
        if (sqlite3_db_readonly(j->db, "main") == 1) {
                code = ca_error_set(err, -EACCES,
                                    "journal %s: the file is read-only; the agent must be able to "
                                    "write it",
                                    path);
                goto fail;
        }

        int version = 0;
        code = journal_schema_check(j->db, path, CA_JOURNAL_SCHEMA_VERSION, &version, err);
        if (code < 0)
                goto fail;
        code = pragma(j, "PRAGMA journal_mode = WAL", "wal", err);
        if (code < 0)
                goto fail;
        code = pragma(j, sync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL", NULL,
                      err);
        if (code < 0)
                goto fail;
        code = pragma(j, "PRAGMA foreign_keys = ON", NULL, err);
        if (code < 0)
                goto fail;
        code =
            journal_schema_migrate(j->db, path, journal_migrations, journal_migrations_count, err);
        if (code < 0)
                goto fail;
        *out = j;
        return 0;
fail:
        if (j->db)
                sqlite3_close(j->db);
        free(j->path);
        free(j);
        return code;
}

void journal_close(struct journal *j)
{
        if (!j)
                return;
        struct ca_error err = {0};
        if (journal_commit(j, &err) < 0)
                log_error("%s", err.msg);
        for (size_t i = 0; i < JS_COUNT_STMTS; i++)
                sqlite3_finalize(j->stmts[i]);
        if (sqlite3_close(j->db) != SQLITE_OK)
                log_error("journal %s: close: %s", j->path, sqlite3_errmsg(j->db));
        free(j->path);
        free(j);
}

int journal_commit(struct journal *j, struct ca_error *err)
{
        if (j->batch_err) {
                int code = j->batch_err;
                rollback(j);
                j->batch_err = 0;
                return ca_error_set(err, code, "%s", j->batch_msg);
        }
        if (!j->in_tx)
                return 0;
        int rc = sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                int code = journal_errno(j->db, rc);
                unsigned lost = j->pending;
                ca_error_set(err, code ? code : -EIO,
                             "journal %s: %s (%s while committing); the %u write(s) since the last "
                             "commit are not recorded",
                             j->path, journal_errno_words(code), sqlite3_errmsg(j->db), lost);
                log_error("%s", err ? err->msg : "journal commit failed");
                rollback(j);
                return code ? code : -EIO;
        }
        j->in_tx = 0;
        j->pending = 0;
        return 0;
}

static int check_ids(const char *connector, const char *key, struct ca_error *err)
{
        if (!connector || !*connector)
                return ca_error_set(err, -EINVAL, "journal: no connector");
        if (!key || !*key)
                return ca_error_set(err, -EINVAL, "journal: order without key");
        if (strlen(key) > CA_ORDER_KEY_MAX)
                return ca_error_set(err, -EINVAL, "journal: order key longer than %d",
                                    CA_ORDER_KEY_MAX);
        return 0;
}

int journal_state_of(struct journal *j, const char *connector, const char *key,
                     enum journal_state *state, struct ca_error *err)
{
        *state = JOURNAL_UNKNOWN;
        int code = check_ids(connector, key, err);
        if (code < 0)
                return code;
        sqlite3_stmt *st = journal_stmt(j, JS_STATE, err);
        if (!st)
                return err ? err->code : -EIO;
        sqlite3_bind_text(st, 1, connector, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *state = (enum journal_state)sqlite3_column_int(st, 0);
        else if (rc != SQLITE_DONE)
                code = journal_read_failed(j, rc, "reading an order's state", err);
        sqlite3_reset(st);
        return code;
}

int journal_begin(struct journal *j, const char *connector, struct ca_order *order,
                  struct ca_error *err)
{
        int code = check_ids(connector, order ? order->key : NULL, err);
        if (code < 0)
                return code;
        if (!order->json)
                return ca_error_set(err, -EINVAL, "journal: order %s has no JSON to keep",
                                    order->key);
        /* The order keeps the text: its back-end's order_json reuses it. */
        const char *json = order_json_text(order);
        if (!json)
                return ca_error_set(err, -ENOMEM, "journal: cannot serialise order %s", order->key);
        code = journal_write_start(j, err);
        if (code < 0)
                return code;
        sqlite3_stmt *st = journal_stmt(j, JS_BEGIN, err);
        if (!st)
                return err ? err->code : -EIO;
        sqlite3_bind_text(st, 1, connector, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, order->key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, json, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, order->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, order->assignment_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, order->change_text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, time_wall_s());
        code = journal_write_step(j, st, "recording an order", err);
        if (code == 0)
                code = ca_error_set(err, -EEXIST, "journal: order %s of %s is already known",
                                    order->key, connector);
        else if (code > 0)
                code = 0;
        return code;
}

static void bind_result(sqlite3_stmt *st, const char *connector, const struct ca_result *r,
                        int64_t now)
{
        sqlite3_bind_text(st, 1, connector, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, r->order_key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, r->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, r->assignment_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, (int)r->state);
        sqlite3_bind_text(st, 6, r->message ? r->message : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, r->change_type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, r->owner_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 9, r->owner_type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 10, r->resource_identifier, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 11, r->executed_at);
        sqlite3_bind_int64(st, 12, now);
}

int journal_finish(struct journal *j, const char *connector, const struct ca_result *result,
                   struct ca_error *err)
{
        int code = check_ids(connector, result ? result->order_key : NULL, err);
        if (code < 0)
                return code;
        if (result->state != CA_RESULT_EXECUTED && result->state != CA_RESULT_ERRORED)
                return ca_error_set(err, -EINVAL, "journal: result of %s has no valid state",
                                    result->order_key);
        code = journal_write_start(j, err);
        if (code < 0)
                return code;
        int64_t now = time_wall_s();
        sqlite3_stmt *st = journal_stmt(j, JS_FINISH_UPDATE, err);
        if (!st)
                return err ? err->code : -EIO;
        bind_result(st, connector, result, now);
        code = journal_write_step(j, st, "storing a result", err);
        if (code != 0)
                return code < 0 ? code : 0;
        st = journal_stmt(j, JS_FINISH_INSERT, err);
        if (!st)
                return err ? err->code : -EIO;
        bind_result(st, connector, result, now);
        code = journal_write_step(j, st, "storing a result", err);
        if (code == 0)
                /* The first result stays: it may already be on its way to the server. */
                return ca_error_set(
                    err, -EEXIST, "journal: order %s of %s already has a result; keeping the first",
                    result->order_key, connector);
        return code < 0 ? code : 0;
}

static int dup_col(sqlite3_stmt *st, int col, char **out)
{
        const unsigned char *s = sqlite3_column_text(st, col);
        *out = NULL;
        if (!s)
                return sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM ? -ENOMEM : 0;
        *out = strdup((const char *)s);
        return *out ? 0 : -ENOMEM;
}

/* A result from a row of RESULT_COLUMNS. */
static int row_result(sqlite3_stmt *st, struct ca_result **out)
{
        struct ca_result *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        int code = 0;
        if ((code = dup_col(st, 0, &r->order_key)) < 0 || (code = dup_col(st, 1, &r->id)) < 0 ||
            (code = dup_col(st, 2, &r->assignment_id)) < 0 ||
            (code = dup_col(st, 4, &r->message)) < 0 ||
            (code = dup_col(st, 5, &r->change_type)) < 0 ||
            (code = dup_col(st, 6, &r->owner_id)) < 0 ||
            (code = dup_col(st, 7, &r->owner_type)) < 0 ||
            (code = dup_col(st, 8, &r->resource_identifier)) < 0)
                goto fail;
        if (!r->message && !(r->message = strdup(""))) {
                code = -ENOMEM;
                goto fail;
        }
        r->state = (enum ca_result_state)sqlite3_column_int(st, 3);
        r->executed_at = sqlite3_column_int64(st, 9);
        *out = r;
        return 0;
fail:
        result_free(r);
        return code;
}

int journal_result(struct journal *j, const char *connector, const char *key,
                   struct ca_result **out, struct ca_error *err)
{
        *out = NULL;
        int code = check_ids(connector, key, err);
        if (code < 0)
                return code;
        sqlite3_stmt *st = journal_stmt(j, JS_RESULT, err);
        if (!st)
                return err ? err->code : -EIO;
        sqlite3_bind_text(st, 1, connector, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                code = row_result(st, out);
                if (code < 0)
                        ca_error_set(err, code, "journal: out of memory");
        } else if (rc != SQLITE_DONE) {
                code = journal_read_failed(j, rc, "reading a result", err);
        }
        sqlite3_reset(st);
        return code;
}

void journal_results_free(struct ca_result **results, size_t count)
{
        if (!results)
                return;
        for (size_t i = 0; i < count; i++)
                result_free(results[i]);
        free(results);
}

/* Appends item to a growing array of pointers. */
static int push(void ***arr, size_t *count, size_t *cap, void *item)
{
        if (*count == *cap) {
                size_t ncap = *cap ? *cap * 2 : 16;
                void **n = realloc(*arr, ncap * sizeof(**arr));
                if (!n)
                        return -ENOMEM;
                *arr = n;
                *cap = ncap;
        }
        (*arr)[(*count)++] = item;
        return 0;
}

int journal_unreported(struct journal *j, const char *connector, size_t max,
                       struct ca_result ***out, size_t *count, struct ca_error *err)
{
        *out = NULL;
        *count = 0;
        if (!connector || !*connector)
                return ca_error_set(err, -EINVAL, "journal: no connector");
        if (max == 0)
                return 0;
        sqlite3_stmt *st = journal_stmt(j, JS_UNREPORTED, err);
        if (!st)
                return err ? err->code : -EIO;
        sqlite3_bind_text(st, 1, connector, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, max > INT64_MAX ? INT64_MAX : (sqlite3_int64)max);
        void **arr = NULL;
        size_t n = 0, cap = 0;
        int code = 0, rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct ca_result *r = NULL;
                if ((code = row_result(st, &r)) < 0 || (code = push(&arr, &n, &cap, r)) < 0) {
                        result_free(r);
                        ca_error_set(err, code, "journal: out of memory");
                        break;
                }
        }
        if (code == 0 && rc != SQLITE_DONE)
                code = journal_read_failed(j, rc, "reading unreported results", err);
        sqlite3_reset(st);
        if (code < 0) {
                journal_results_free((struct ca_result **)arr, n);
                return code;
        }
        *out = (struct ca_result **)arr;
        *count = n;
        return 0;
}

int journal_unreported_count(struct journal *j, const char *connector, size_t *count,
                             struct ca_error *err)
{
        *count = 0;
        sqlite3_stmt *st = journal_stmt(j, connector ? JS_COUNT_ONE : JS_COUNT_ALL, err);
        if (!st)
                return err ? err->code : -EIO;
        if (connector)
                sqlite3_bind_text(st, 1, connector, -1, SQLITE_STATIC);
        int code = 0;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *count = (size_t)sqlite3_column_int64(st, 0);
        else
                code = journal_read_failed(j, rc, "counting unreported results", err);
        sqlite3_reset(st);
        return code;
}

int journal_mark_reported(struct journal *j, const char *connector, const char *const *keys,
                          size_t count, struct ca_error *err)
{
        if (!connector || !*connector)
                return ca_error_set(err, -EINVAL, "journal: no connector");
        if (count == 0)
                return 0;
        int code = journal_write_start(j, err);
        if (code < 0)
                return code;
        int64_t now = time_wall_s();
        int marked = 0;
        for (size_t i = 0; i < count; i++) {
                if (!keys[i])
                        continue;
                sqlite3_stmt *st = journal_stmt(j, JS_MARK, err);
                if (!st)
                        return err ? err->code : -EIO;
                sqlite3_bind_text(st, 1, connector, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, keys[i], -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, now);
                code = journal_write_step(j, st, "marking results reported", err);
                if (code < 0)
                        return code;
                if (marked < INT_MAX)
                        marked += code;
        }
        return marked;
}

void journal_orders_free(struct ca_order **orders, size_t count)
{
        if (!orders)
                return;
        for (size_t i = 0; i < count; i++)
                order_free(orders[i]);
        free(orders);
}

/* Rebuilds a stored order; its identity stays the stored key whatever the parser says. */
static int rebuild_order(struct journal *j, const char *key, const char *json,
                         struct ca_order **out, struct ca_error *err)
{
        *out = NULL;
        json_error_t jerr;
        json_t *obj = json ? json_loads(json, 0, &jerr) : NULL;
        if (!obj)
                return ca_error_set(err, -EPROTO, "journal %s: stored order %s is unreadable%s%s",
                                    j->path, key, json ? ": " : " (no JSON)",
                                    json ? jerr.text : "");
        int code = order_from_json(obj, out, err);
        json_decref(obj);
        if (code < 0)
                return ca_error_prefix(err, "journal %s: stored order %s", j->path, key);
        snprintf((*out)->key, sizeof((*out)->key), "%s", key);
        return 0;
}

int journal_in_doubt(struct journal *j, const char *connector, struct ca_order ***out,
                     size_t *count, struct ca_error *err)
{
        *out = NULL;
        *count = 0;
        if (!connector || !*connector)
                return ca_error_set(err, -EINVAL, "journal: no connector");
        sqlite3_stmt *st = journal_stmt(j, JS_IN_DOUBT, err);
        if (!st)
                return err ? err->code : -EIO;
        sqlite3_bind_text(st, 1, connector, -1, SQLITE_STATIC);
        void **arr = NULL;
        size_t n = 0, cap = 0;
        int code = 0, rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct ca_order *o = NULL;
                code = rebuild_order(j, (const char *)sqlite3_column_text(st, 0),
                                     (const char *)sqlite3_column_text(st, 1), &o, err);
                if (code < 0)
                        break;
                if ((code = push(&arr, &n, &cap, o)) < 0) {
                        order_free(o);
                        ca_error_set(err, code, "journal: out of memory");
                        break;
                }
        }
        if (code == 0 && rc != SQLITE_DONE)
                code = journal_read_failed(j, rc, "reading orders in doubt", err);
        sqlite3_reset(st);
        if (code < 0) {
                journal_orders_free((struct ca_order **)arr, n);
                return code;
        }
        *out = (struct ca_order **)arr;
        *count = n;
        return 0;
}

int journal_prune(struct journal *j, int64_t now_s, int64_t retention_s, struct ca_error *err)
{
        if (retention_s < 0)
                return ca_error_set(err, -EINVAL, "journal: negative retention");
        int code = journal_write_start(j, err);
        if (code < 0)
                return code;
        sqlite3_stmt *st = journal_stmt(j, JS_PRUNE, err);
        if (!st)
                return err ? err->code : -EIO;
        sqlite3_bind_int64(st, 1, now_s - retention_s);
        return journal_write_step(j, st, "pruning reported entries", err);
}

int journal_forget(struct journal *j, const char *connector, const char *key, struct ca_error *err)
{
        enum journal_state state;
        int code = journal_state_of(j, connector, key, &state, err);
        if (code < 0)
                return code;
        if (state == JOURNAL_UNKNOWN)
                return ca_error_set(err, -ENOENT, "journal: order %s of %s is not known", key,
                                    connector);
        if (state != JOURNAL_EXECUTING)
                return ca_error_set(err, -EINVAL,
                                    "journal: order %s of %s is not executing; a stored result is "
                                    "never forgotten",
                                    key, connector);
        code = journal_write_start(j, err);
        if (code < 0)
                return code;
        sqlite3_stmt *st = journal_stmt(j, JS_FORGET, err);
        if (!st)
                return err ? err->code : -EIO;
        sqlite3_bind_text(st, 1, connector, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
        code = journal_write_step(j, st, "forgetting an order", err);
        return code < 0 ? code : 0;
}

int journal_unreport(struct journal *j, const char *connector, const char *key,
                     struct ca_error *err)
{
        int code = check_ids(connector, key, err);
        if (code < 0)
                return code;
        code = journal_write_start(j, err);
        if (code < 0)
                return code;
        sqlite3_stmt *st = journal_stmt(j, JS_UNREPORT, err);
        if (!st)
                return err ? err->code : -EIO;
        sqlite3_bind_text(st, 1, connector, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
        code = journal_write_step(j, st, "queueing a stored result again", err);
        if (code < 0)
                return code;
        return code == 0
                   ? ca_error_set(err, -EINVAL, "journal: order %s of %s has no reported result",
                                  key, connector)
                   : 0;
}
