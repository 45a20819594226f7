/* SPDX-License-Identifier: Apache-2.0 */
/* sql_sqlite: the SQLite driver (the embedded default). The database file must exist:
 * creating an empty one would only turn a wrong path into "no such table" errors.
 * Statements, BEGIN and COMMIT included, are prepared once per connection and kept
 * (sql_cache); SQLite prepares a kept statement again by itself when the schema changed. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql_cache.h"
#include "sql_driver.h"

#define SQLITE_ERROR_MAX 512

struct sql_conn {
        sqlite3 *db;
        int last_code; /* extended result code of the last failure */
        struct sql_cache cache;
        struct sql_key_memo keys;
        char error[SQLITE_ERROR_MAX];
};

static void drop_stmt(void *ctx, struct sql_cache_entry *e)
{
        (void)ctx;
        sqlite3_finalize(e->stmt);
        e->stmt = NULL;
}

static int sqlite_settings_check(const struct ca_host *host, const struct ca_backend_settings *s,
                                 struct ca_backend_error *err)
{
        const char *path = host->setting(s, "database");
        if (!path || !*path)
                return host->error(err, CA_BACKEND_EINVALID, "database",
                                   "database: required: the path of the SQLite file");
        return CA_BACKEND_OK;
}

static int code_unavailable(int code)
{
        switch (code & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
        case SQLITE_CANTOPEN:
        case SQLITE_IOERR:
        case SQLITE_FULL:
        case SQLITE_NOTADB:
        case SQLITE_READONLY:
        case SQLITE_PROTOCOL:
                return 1;
        default:
                return 0;
        }
}

static void note_error(struct sql_conn *c, int code)
{
        c->last_code = code;
        snprintf(c->error, sizeof(c->error), "%s",
                 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(code));
}

static int sqlite_connect(const struct ca_host *host, const struct ca_backend_settings *s,
                          uint64_t timeout_ms, struct sql_conn **out, struct ca_backend_error *err)
{
        const char *path = host->setting(s, "database");
        struct sql_conn *c = calloc(1, sizeof(*c));
        int rc;
        if (!c)
                return host->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory");
        rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                rc = host->error(err, CA_BACKEND_EUNAVAILABLE, "database", "cannot open %s: %s",
                                 path, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
                goto fail;
        }
        c->cache.drop = drop_stmt;
        sqlite3_extended_result_codes(c->db, 1);
        /* A writer holding the lock makes us wait, bounded by the order timeout, rather
         * than fail at once. */
        sqlite3_busy_timeout(c->db, timeout_ms > INT32_MAX ? INT32_MAX : (int)timeout_ms);
        rc = sqlite3_exec(c->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                rc = host->error(
                    err, code_unavailable(rc) ? CA_BACKEND_EUNAVAILABLE : CA_BACKEND_EINVALID,
                    "database", "%s: %s", path, sqlite3_errmsg(c->db));
                goto fail;
        }
        *out = c;
        return CA_BACKEND_OK;
fail:
        sqlite3_close(c->db);
        free(c);
        return rc;
}

static int sqlite_exec(struct sql_conn *c, const char *sql, const char *const *params, size_t n,
                       long *changed);

static int run_simple(struct sql_conn *c, const char *sql)
{
        return sqlite_exec(c, sql, NULL, 0, NULL);
}

/* IMMEDIATE takes the write lock at once, so two writers never deadlock upgrading a
 * read lock half-way through an order. */
static int sqlite_begin(struct sql_conn *c)
{
        return run_simple(c, "BEGIN IMMEDIATE");
}

static int sqlite_commit(struct sql_conn *c)
{
        /* A failed COMMIT in SQLite leaves the transaction either open (busy) or rolled
         * back: either way not applied, so never in doubt. */
        return run_simple(c, "COMMIT");
}

static int sqlite_rollback(struct sql_conn *c)
{
        if (sqlite3_get_autocommit(c->db))
                return SQL_OK;
        char saved[SQLITE_ERROR_MAX];
        int saved_code = c->last_code;
        memcpy(saved, c->error, sizeof(saved));
        int rc = run_simple(c, "ROLLBACK");
        /* Keep the error that caused the rollback: it is the one worth reporting. */
        memcpy(c->error, saved, sizeof(saved));
        c->last_code = saved_code;
        return rc;
}

/* Puts a statement back for its next use: unbound (the parameters point into the order,
 * which is gone by then) and reset (a statement left on a row keeps its read lock). A
 * statement that could not be kept (no memory for its cache slot) is finalized. */
static void release(sqlite3_stmt *st, int kept)
{
        if (!kept) {
                sqlite3_finalize(st);
                return;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
}

/* The kept statement for sql (prepared now if new), with params bound. */
static int prepare(struct sql_conn *c, const char *sql, const char *const *params, size_t n,
                   sqlite3_stmt **st, int *kept)
{
        struct sql_cache_entry *e = sql_cache_find(&c->cache, sql);
        int rc;
        *kept = 1;
        if (e) {
                *st = e->stmt;
        } else {
                e = sql_cache_add(&c->cache, sql);
                rc =
                    sqlite3_prepare_v3(c->db, sql, -1, e ? SQLITE_PREPARE_PERSISTENT : 0, st, NULL);
                if (rc != SQLITE_OK) {
                        note_error(c, rc);
                        if (e)
                                sql_cache_forget(e);
                        return SQL_ERROR;
                }
                if (e)
                        e->stmt = *st;
                else
                        *kept = 0;
        }
        for (size_t i = 0; i < n; i++) {
                rc = params[i] ? sqlite3_bind_text(*st, (int)i + 1, params[i], -1, SQLITE_STATIC)
                               : sqlite3_bind_null(*st, (int)i + 1);
                if (rc != SQLITE_OK) {
                        note_error(c, rc);
                        release(*st, *kept);
                        *st = NULL;
                        return SQL_ERROR;
                }
        }
        return SQL_OK;
}

static int sqlite_exec(struct sql_conn *c, const char *sql, const char *const *params, size_t n,
                       long *changed)
{
        sqlite3_stmt *st = NULL;
        int kept;
        if (prepare(c, sql, params, n, &st, &kept) != SQL_OK)
                return SQL_ERROR;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                ;
        if (rc != SQLITE_DONE) {
                note_error(c, rc);
                release(st, kept);
                return SQL_ERROR;
        }
        if (changed)
                *changed = sqlite3_changes(c->db);
        release(st, kept);
        return SQL_OK;
}

static int sqlite_query_row(struct sql_conn *c, const char *sql, const char *const *params,
                            size_t n, char **cols, size_t ncols)
{
        sqlite3_stmt *st = NULL;
        int ret = SQL_ERROR, kept;
        for (size_t i = 0; i < ncols; i++)
                cols[i] = NULL;
        if (prepare(c, sql, params, n, &st, &kept) != SQL_OK)
                return SQL_ERROR;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
                ret = 0;
                goto out;
        }
        if (rc != SQLITE_ROW) {
                note_error(c, rc);
                goto out;
        }
        for (size_t i = 0; i < ncols && (int)i < sqlite3_column_count(st); i++) {
                const unsigned char *t = sqlite3_column_text(st, (int)i);
                if (!t)
                        continue;
                cols[i] = strdup((const char *)t);
                if (!cols[i]) {
                        snprintf(c->error, sizeof(c->error), "out of memory");
                        c->last_code = SQLITE_NOMEM;
                        for (size_t j = 0; j < i; j++) {
                                free(cols[j]);
                                cols[j] = NULL;
                        }
                        goto out;
                }
        }
        ret = 1;
out:
        release(st, kept);
        return ret;
}

/* A one-column primary key (an INTEGER PRIMARY KEY has no index of its own), or a unique
 * index on the column alone with no WHERE. SQLite checks both at once, always. */
#define SQLITE_KEY_UNIQUE                                                                          \
        "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2 COLLATE NOCASE AND pk = 1 AND "       \
        "(SELECT COUNT(*) FROM pragma_table_info(?1) WHERE pk > 0) = 1 "                           \
        "UNION ALL SELECT 1 FROM pragma_index_list(?1) AS il WHERE il.\"unique\" = 1 AND "         \
        "il.partial = 0 AND (SELECT COUNT(*) FROM pragma_index_info(il.name)) = 1 AND "            \
        "(SELECT name FROM pragma_index_info(il.name)) = ?2 COLLATE NOCASE"

static int sqlite_key_unique(struct sql_conn *c, const char *table, const char *column)
{
        int known = sql_key_memo_get(&c->keys, table, column);
        if (known >= 0)
                return known;
        const char *params[2] = {table, column};
        char *col = NULL;
        int rc = sqlite_query_row(c, SQLITE_KEY_UNIQUE, params, 2, &col, 1);
        free(col);
        if (rc < 0)
                return SQL_ERROR;
        sql_key_memo_set(&c->keys, table, column, rc);
        return rc;
}

static void sqlite_close(struct sql_conn *c)
{
        if (!c)
                return;
        /* sqlite3_close refuses a connection with statements left. */
        sql_cache_clear(&c->cache, 1);
        sqlite3_close(c->db);
        free(c);
}

static const char *sqlite_error(struct sql_conn *c)
{
        return c->error[0] ? c->error : "unknown SQLite error";
}

static int sqlite_is_unavailable(struct sql_conn *c)
{
        return code_unavailable(c->last_code);
}

const struct sql_driver sql_driver_sqlite = {
    .name = "sqlite",
    .placeholder = "?",
    .settings_check = sqlite_settings_check,
    .connect = sqlite_connect,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .exec = sqlite_exec,
    .query_row = sqlite_query_row,
    .key_unique = sqlite_key_unique,
    .close = sqlite_close,
    .error = sqlite_error,
    .is_unavailable = sqlite_is_unavailable,
};
