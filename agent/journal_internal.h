/* journal_internal: what the journal's own files (journal.c, journal_schema.c,
 * journal_admin.c) and its unit tests share. Not for other modules: they use journal.h.
 *
 * Owns nothing beyond struct journal's layout: one SQLite connection, its cached
 * prepared statements and the state of the open batch (group commit). */
#ifndef CA_JOURNAL_INTERNAL_H
#define CA_JOURNAL_INTERNAL_H

#include <sqlite3.h>
#include <stddef.h>

#include "error.h"
#include "journal.h"

/* How long a write waits for another process holding the file (the operator's
 * `connector-agent journal resolve` while the agent runs) before failing with -EBUSY. */
#define JOURNAL_BUSY_TIMEOUT_MS 5000

enum journal_stmt_id {
        JS_STATE,
        JS_BEGIN,
        JS_FINISH_UPDATE,
        JS_FINISH_INSERT,
        JS_RESULT,
        JS_UNREPORTED,
        JS_COUNT_ONE,
        JS_COUNT_ALL,
        JS_MARK,
        JS_IN_DOUBT,
        JS_PRUNE,
        JS_FORGET,
        JS_UNREPORT,
        JS_ORDER_OF,
        JS_LIST_PENDING,
        JS_LIST_UNREPORTED,
        JS_LIST_ALL,
        JS_COUNT_STMTS,
};

struct journal {
        sqlite3 *db;
        char *path;
        int in_tx;        /* a BEGIN IMMEDIATE is open (the batch) */
        unsigned pending; /* writes in the open batch */
        /* Set when a write failed and the batch was rolled back: every write and the next
         * journal_commit fail with it, so that no caller acts on a write that is gone. */
        int batch_err;
        char batch_msg[CA_ERROR_MAX];
        sqlite3_stmt *stmts[JS_COUNT_STMTS];
};

/* One schema step: the SQL that brings a file from version to - 1 to version to. */
struct journal_migration {
        int to;
        const char *sql;
};

extern const struct journal_migration journal_migrations[];
extern const size_t journal_migrations_count;

/* Refuses a file that is not a journal this agent can use: not a database, damaged
 * (quick_check), or of a schema newer than max_version. *version is the file's. */
int journal_schema_check(sqlite3 *db, const char *path, int max_version, int *version,
                         struct ca_error *err);
/* Applies, each in its own transaction, every step whose version is above the file's. */
int journal_schema_migrate(sqlite3 *db, const char *path, const struct journal_migration *steps,
                           size_t count, struct ca_error *err);
int journal_schema_version(sqlite3 *db, int *version);

/* A negative errno for an SQLite result code (extended codes on). */
int journal_errno(sqlite3 *db, int rc);
const char *journal_errno_words(int code); /* "disk full", "I/O error" ... */

/* The cached statement id, reset and unbound; NULL with err filled on failure. */
sqlite3_stmt *journal_stmt(struct journal *j, enum journal_stmt_id id, struct ca_error *err);
/* Opens the batch when none is open; refuses while a failed batch is not committed. */
int journal_write_start(struct journal *j, struct ca_error *err);
/* Steps a write statement to completion; on failure rolls the batch back. Returns the
 * number of rows changed or a negative errno. */
int journal_write_step(struct journal *j, sqlite3_stmt *stmt, const char *what,
                       struct ca_error *err);
/* Maps a failed read; when SQLite rolled the batch back by itself, the batch is marked
 * failed as a write would be. */
int journal_read_failed(struct journal *j, int rc, const char *what, struct ca_error *err);

sqlite3 *journal_db(struct journal *j); /* for tests: the connection, borrowed */

#endif
