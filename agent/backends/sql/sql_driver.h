/* SPDX-License-Identifier: Apache-2.0 */
/* sql_driver: what the generic order->SQL logic needs from one database library.
 *
 * A driver is a small table of functions over an opaque connection. It owns the
 * connection (close frees it) and keeps the text of its last error (error), which
 * is the database's own words, shown to operators. Statements come with bound text
 * parameters only (NULL is SQL NULL); placeholders are written by the caller as
 * <placeholder><n> with n from 1 (SQLite "?1", PostgreSQL "$1"). Identifiers are checked
 * and quoted by the caller. One connection belongs to one thread. */
#ifndef CA_SQL_DRIVER_H
#define CA_SQL_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include <connector-agent/backend.h>

/* Return codes of driver calls. */
enum {
        SQL_OK = 0,
        SQL_ERROR = -1,   /* the statement failed; nothing was applied; see error() */
        SQL_INDOUBT = -2, /* commit outcome unknown (connection lost during commit) */
};

struct sql_conn;

struct sql_driver {
        const char *name;        /* the value of the "driver" setting */
        const char *placeholder; /* "?" or "$" */
        /* Checks the connector settings the driver reads (err names the key). */
        int (*settings_check)(const struct ca_host *host, const struct ca_backend_settings *s,
                              struct ca_backend_error *err);
        /* Opens a connection. On failure returns a CA_BACKEND_E* code with err filled
         * (CA_BACKEND_EUNAVAILABLE when the database cannot be reached). */
        int (*connect)(const struct ca_host *host, const struct ca_backend_settings *s,
                       uint64_t timeout_ms, struct sql_conn **out, struct ca_backend_error *err);
        int (*begin)(struct sql_conn *c);
        int (*commit)(struct sql_conn *c);
        int (*rollback)(struct sql_conn *c);
        /* Runs a statement that returns no rows; *changed (may be NULL) gets the number of
         * rows it touched. */
        int (*exec)(struct sql_conn *c, const char *sql, const char *const *params, size_t n,
                    long *changed);
        /* Runs a query and reads its first row: returns 1 and fills cols[0..ncols) with
         * malloc'd text (NULL for SQL NULL; free each), 0 when there is no row, or SQL_ERROR. */
        int (*query_row)(struct sql_conn *c, const char *sql, const char *const *params, size_t n,
                         char **cols, size_t ncols);
        /* Is column alone a unique key of table, checked at once (its primary key, or a
         * unique, non-partial, not deferred index of that column only)? 1, 0 or SQL_ERROR.
         * Asked once per connection: then an INSERT that conflicts on it is the row
         * already being there, which lets Added write first and read only on conflict. */
        int (*key_unique)(struct sql_conn *c, const char *table, const char *column);
        void (*close)(struct sql_conn *c); /* accepts NULL */
        const char *(*error)(struct sql_conn *c);
        /* After a failure: was it the database being unreachable or busy (retry later) rather
         * than the statement being wrong? */
        int (*is_unavailable)(struct sql_conn *c);
};

extern const struct sql_driver sql_driver_sqlite;
extern const struct sql_driver sql_driver_postgresql;

#endif
