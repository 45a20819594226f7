/* SPDX-License-Identifier: Apache-2.0 */
/* journal_internal: what the journal's own files and its unit tests share. Not for other
 * modules: they use journal.h.
 *
 * The journal is one state machine (journal.c, journal_admin.c) over a storage driver
 * (struct journal_driver): SQLite (journal_sqlite.c, journal_schema.c) or PostgreSQL
 * (journal_pg.c, journal_pg_schema.c). A driver runs named statements (enum
 * journal_stmt_id, each driver has its own SQL for each) with typed arguments, holds one
 * transaction open as the batch, and maps its engine's failures to negative errnos. It
 * decides nothing about states: every transition, refusal and the batch rule live once,
 * above it, so both drivers behave alike by construction and one test suite checks both.
 *
 * Owns nothing beyond struct journal's layout: the driver and its private state, the
 * seal and the state of the open batch (group commit). */
#ifndef CA_JOURNAL_INTERNAL_H
#define CA_JOURNAL_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "journal.h"

/* How long a write waits for another process holding the file or the row (the operator's
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
        JS_QUEUED,
        JS_HELD,
        JS_HOLD,
        JS_COUNT_HELD,
        JS_HELD_KEYS,
        JS_RECENT_TAKEN,
        JS_MOVE,
        JS_PRUNE,
        JS_FORGET,
        JS_UNREPORT,
        JS_ORDER_OF,
        JS_LIST_PENDING,
        JS_LIST_QUEUED,
        JS_LIST_HELD,
        JS_LIST_UNREPORTED,
        JS_LIST_ALL,
        JS_LIST_REFUSED,
        JS_REFUSE, /* the server refused a result: its answer kept */
        JS_RESEND, /* an operator: send it again */
        JS_COUNT_REFUSED,
        JS_ROLE_LOCK,   /* PostgreSQL only: the poller's session lock (journal_serve) */
        JS_ROLE_TAKE,   /* ... the role's row, epoch counted up: RETURNING epoch */
        JS_ROLE_HOLDER, /* ... who holds it: holder, epoch */
        JS_PING,        /* ... keeps the session inside its lease */
        JS_COUNT_STMTS,
};

/* Columns of the statements that return results (JS_RESULT, JS_UNREPORTED). */
enum journal_result_col {
        JRC_KEY,
        JRC_ORDER_ID,
        JRC_ASSIGNMENT,
        JRC_RESULT_STATE,
        JRC_MESSAGE,
        JRC_CHANGE_TYPE,
        JRC_OWNER_ID,
        JRC_OWNER_TYPE,
        JRC_RESOURCE,
        JRC_EXECUTED_AT,
};

/* Columns of the JS_LIST_* statements. */
enum journal_list_col {
        JLC_CONNECTOR,
        JLC_KEY,
        JLC_STATE,
        JLC_CHANGE_TYPE,
        JLC_ASSIGNMENT,
        JLC_RECEIVED,
        JLC_FINISHED,
        JLC_REPORTED,
        JLC_RESULT_STATE,
        JLC_MESSAGE,
        JLC_REFUSAL, /* the server's answer to a refused result, or NULL */
};

/* One statement argument; a NULL text is SQL NULL. Arguments are numbered from 1 in the
 * drivers' SQL (?1 in SQLite, $1 in PostgreSQL) in the order of the array. */
struct journal_arg {
        int is_int;
        const char *text;
        int64_t num;
};
#define JA_TEXT(s) ((struct journal_arg){.is_int = 0, .text = (s)})
#define JA_INT(n)  ((struct journal_arg){.is_int = 1, .num = (int64_t)(n)})

/* The rows of one query, read in order; at most one open per journal at a time. */
struct journal_rows {
        struct journal *j;
        void *cur; /* the driver's cursor */
        int row;   /* PostgreSQL: the current row of the fetched result */
};

/* A driver's text for an engine failure: bounded, for the message after "(...)". */
#define JOURNAL_WHY_MAX (CA_ERROR_MAX / 2)

/* A storage driver. Every function that fails returns a negative errno and writes the
 * engine's words to why; the driver never logs and never decides what a failure loses
 * (journal.c does). */
struct journal_driver {
        const char *name; /* "sqlite", "postgresql": in messages */
        void (*close)(struct journal *j);
        /* Opens the batch's transaction. */
        int (*begin)(struct journal *j, char *why, size_t len);
        /* Ends it; on failure the transaction is gone (rolled back, or in doubt when a
         * PostgreSQL connection dropped during COMMIT). */
        int (*commit)(struct journal *j, char *why, size_t len);
        void (*rollback)(struct journal *j);
        /* Runs a write; returns the number of rows it changed. */
        int (*write)(struct journal *j, enum journal_stmt_id id, const struct journal_arg *args,
                     size_t n, char *why, size_t len);
        /* Starts a query; read it with next, end it with done (also after a failure). */
        int (*query)(struct journal *j, enum journal_stmt_id id, const struct journal_arg *args,
                     size_t n, struct journal_rows *rows, char *why, size_t len);
        int (*next)(struct journal_rows *rows, char *why, size_t len); /* 1 row, 0 end */
        const char *(*text)(struct journal_rows *rows, int col);       /* NULL for NULL */
        int64_t (*integer)(struct journal_rows *rows, int col);        /* 0 for NULL */
        int (*is_null)(struct journal_rows *rows, int col);
        void (*done)(struct journal_rows *rows);
        /* Whether the engine ended the open transaction by itself (a failed statement in
         * PostgreSQL, some I/O errors in SQLite): the batch is then lost. */
        int (*tx_lost)(struct journal *j);
        /* Optional: a number that changes when another process committed to the store
         * since the last call on this connection (SQLite's data_version). NULL when the
         * engine has none (PostgreSQL): journal_data_version is then always 0, and the
         * callers notice an operator's release or refusal by journal_held_count, which
         * only the agent itself can make grow. */
        int (*data_version)(struct journal *j, int64_t *version, char *why, size_t len);
        /* Optional, for a store several instances share (PostgreSQL): a number that
         * changes whenever the driver made a new session (a reconnect), which drops the
         * session's locks and so the roles taken in it. NULL: one instance only (SQLite),
         * every connector is served by it. */
        unsigned (*session)(const struct journal *j);
};

/* A connector this instance serves: taken in session `session` (journal_serve). */
struct journal_served {
        char *connector;
        int64_t epoch;
        unsigned session;
};

struct journal {
        const struct journal_driver *drv;
        void *db;         /* the driver's connection state */
        char *name;       /* the file's path, or "postgresql <host>/<db>": in messages */
        int in_tx;        /* the batch's transaction is open */
        unsigned pending; /* writes in the open batch */
        /* Set when a write failed and the batch was rolled back: every write and the next
         * journal_commit fail with it, so that no caller acts on a write that is gone. */
        int batch_err;
        char batch_msg[CA_ERROR_MAX];
        struct journal_seal *seal;     /* seals orders' Changes (journal_seal.h) */
        struct journal_served *served; /* the roles journal_serve took, when shared */
        size_t nserved;
        /* The lease (journal_contact_clock): when the session that holds the roles last
         * answered, written by the loop thread, read by the executor's workers. */
        _Atomic uint64_t contact_ms;
        uint64_t lease_ms;
};

/* journal_role.c: notes that the journal answered, when that proves the roles alive. */
void journal_contact(struct journal *j);

/* The drivers' constructors: fill j->drv, j->db and j->name (j is zeroed), or fail with
 * err filled and nothing to free. */
int journal_sqlite_open(struct journal *j, const char *path, int sync, struct ca_error *err);
int journal_pg_open(struct journal *j, const struct journal_params *p, struct ca_error *err);

const char *journal_errno_words(int code); /* "disk full", "I/O error" ... */

/* Opens the batch when none is open; refuses while a failed batch is not committed, and
 * with -ESTALE while a role this instance served was lost (journal_role_fence). */
int journal_write_start(struct journal *j, struct ca_error *err);
/* The same without the role check: for journal_serve, which takes roles back. */
int journal_batch_open(struct journal *j, struct ca_error *err);

/* journal_role.c: -ESTALE (err filled) when the driver's session changed since a role
 * served here was taken: a write then could land over another instance's work. 0 on a
 * store with one instance, or when every role is held in this session. */
int journal_role_fence(struct journal *j, struct ca_error *err);
void journal_roles_free(struct journal *j);
/* Runs a write statement in the batch; on failure rolls the batch back. Returns the
 * number of rows changed or a negative errno. */
int journal_write(struct journal *j, enum journal_stmt_id id, const struct journal_arg *args,
                  size_t n, const char *what, struct ca_error *err);
/* Starts a query; on failure the rows are done already and err says what failed. */
int journal_query(struct journal *j, enum journal_stmt_id id, const struct journal_arg *args,
                  size_t n, struct journal_rows *rows, const char *what, struct ca_error *err);
/* The next row: 1, 0 at the end, or a negative errno (err filled; the rows are done). */
int journal_next(struct journal_rows *rows, const char *what, struct ca_error *err);
void journal_rows_done(struct journal_rows *rows);
static inline const char *journal_col_text(struct journal_rows *r, int col)
{
        return r->j->drv->text(r, col);
}
static inline int64_t journal_col_int(struct journal_rows *r, int col)
{
        return r->j->drv->integer(r, col);
}
static inline int journal_col_null(struct journal_rows *r, int col)
{
        return r->j->drv->is_null(r, col);
}

/* --- SQLite's own (journal_sqlite.c, journal_schema.c) --- */
#include <sqlite3.h>

/* One schema step: the SQL that brings a store from version to - 1 to version to. */
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
sqlite3 *journal_db(struct journal *j); /* for tests: the SQLite connection, borrowed */

/* --- PostgreSQL's own (journal_pg.c, journal_pg_schema.c) --- */
struct pg_conn;
typedef struct pg_conn PGconn; /* libpq's, without its header for the callers */

extern const struct journal_migration journal_pg_migrations[];
extern const size_t journal_pg_migrations_count;

/* Brings the database to the newest of steps under an advisory lock (several agents may
 * start at once), refusing one newer than max_version with -EPROTO, and checks that the
 * seal's key is the one the journal was written with (-EKEYREJECTED otherwise). */
int journal_pg_schema_migrate(PGconn *conn, const char *name, const struct journal_migration *steps,
                              size_t count, int max_version, const char *key_check,
                              struct ca_error *err);
/* A negative errno for a failed libpq call: -ECONNREFUSED when the server is gone. */
int journal_pg_errno(PGconn *conn, const char *sqlstate);
PGconn *journal_pg_conn(struct journal *j); /* for tests: the connection, borrowed */

#endif
