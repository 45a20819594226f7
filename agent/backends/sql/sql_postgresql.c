/* SPDX-License-Identifier: Apache-2.0 */
/* sql_postgresql: the PostgreSQL driver (libpq).
 *
 * [connector NAME] with driver = postgresql: connection = a libpq conninfo string without
 * a password ("host=... port=... dbname=... user=... sslmode=verify-full
 * sslrootcert=..."; TLS options pass through it), password_file or password_credential
 * (the password, read on every connect and handed to libpq as its own parameter, so it
 * is in no string we build or print), connect_timeout (default 10s). order_timeout
 * becomes the session's statement_timeout, so a statement stuck on a lock fails in time.
 *
 * A connection found broken (server restarted) is reset once before a statement that
 * starts something new (BEGIN, or a query outside a transaction); a break in the middle
 * of a transaction is reported as unavailable (nothing committed), and a break during
 * COMMIT as in doubt. Errors are the server's own: SQLSTATE and primary message.
 *
 * Statements are prepared once per session and run again with new parameters (sql_cache).
 * Their names carry a random tag drawn per connection, so that a session some pooler
 * shares with other clients never runs another client's statement under our name. A
 * kept statement the server no longer knows or cannot run as prepared (a pooler that
 * does not keep sessions, a column whose type changed) fails the order as unavailable:
 * it is tried again on a new connection, and after a pooler's answer this process
 * prepares nothing any more. */
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql_cache.h"
#include "sql_driver.h"

#define PG_ERROR_MAX             512
#define PG_DEFAULT_CONNECT_MS    10000
#define PG_KEEPALIVE_IDLE_S      "30"
#define PG_KEEPALIVE_INTERVAL_S  "10"
#define PG_KEEPALIVE_COUNT       "3"
#define PG_APPLICATION_NAME      "connector-agent"
#define PG_MAX_STATEMENT_TIMEOUT 2147483647ULL /* statement_timeout is an int (ms) */
#define PG_MIN_CONNECT_TIMEOUT_S 2             /* libpq reads 1 as 2 anyway */
#define PG_MAX_CONNECT_TIMEOUT_S 3600

/* Set once a server answered as if our session's statements were not ours (a pooler that
 * hands each transaction another session): from then on this process prepares nothing.
 * Process-wide because the connection is dropped after the failure and a new one would
 * meet the same pooler. */
static atomic_int pg_unprepared;

struct sql_conn {
        PGconn *pg;
        const struct ca_host *host;
        uint64_t timeout_ms;
        int in_tx;       /* between a BEGIN that worked and its COMMIT or ROLLBACK */
        int unavailable; /* the last failure was the server being gone or busy */
        struct sql_cache cache;
        struct sql_key_memo keys;
        uint64_t tag; /* in the names of this connection's statements */
        char error[PG_ERROR_MAX];
};

/* The server-side name of a kept statement: ca_<tag>_<id>. */
static void stmt_name(const struct sql_conn *c, const struct sql_cache_entry *e, char out[48])
{
        snprintf(out, 48, "ca_%016llx_%u", (unsigned long long)c->tag, e->id);
}

/* Does the conninfo string carry a password? It must not: it is a plain setting that
 * shows up in configuration dumps. */
static int conninfo_has_password(PQconninfoOption *opts)
{
        for (PQconninfoOption *o = opts; o && o->keyword; o++)
                if (strcmp(o->keyword, "password") == 0 && o->val && *o->val)
                        return 1;
        return 0;
}

static int pg_settings_check(const struct ca_host *host, const struct ca_backend_settings *s,
                             struct ca_backend_error *err)
{
        int rc = CA_BACKEND_OK;
        const char *conninfo = host->setting(s, "connection");
        if (!conninfo || !*conninfo) {
                rc = host->error(err, CA_BACKEND_EINVALID, "connection",
                                 "connection: required: a libpq connection string, e.g. "
                                 "\"host=db.example.org dbname=idm user=agent "
                                 "sslmode=verify-full\"");
        } else {
                char *msg = NULL;
                PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
                if (!opts) {
                        /* libpq's words may quote the string: only when it cannot hold a
                         * password. */
                        const char *why =
                            msg && !strstr(conninfo, "password") && !strchr(conninfo, '@')
                                ? msg
                                : "cannot be parsed\n";
                        rc = host->error(err, CA_BACKEND_EINVALID, "connection",
                                         "connection: not a libpq connection string: %.*s",
                                         (int)strcspn(why, "\n"), why);
                } else if (conninfo_has_password(opts)) {
                        rc = host->error(err, CA_BACKEND_EINVALID, "connection",
                                         "connection: holds a password; give it through "
                                         "password_file or password_credential instead");
                }
                PQconninfoFree(opts);
                PQfreemem(msg);
        }
        uint64_t ms;
        if (host->setting_ms(s, "connect_timeout", PG_DEFAULT_CONNECT_MS, &ms, err) !=
            CA_BACKEND_OK)
                rc = CA_BACKEND_EINVALID;
        /* A password that cannot be read is a setting to fix now, not at the first order. */
        if (host->setting(s, "password_file") || host->setting(s, "password_credential")) {
                char *pw = host->secret(s, "password", err);
                if (!pw)
                        rc = CA_BACKEND_EINVALID;
                host->secret_free(pw);
        }
        return rc;
}

/* Text from libpq or the server as one line: its line breaks and indents (libpq writes
 * "...\n\tThis probably means...") become single spaces. */
static void note_text(struct sql_conn *c, const char *text)
{
        size_t n = 0;
        int space = 1; /* drops leading blanks too */
        if (!text || !*text)
                text = "unknown error";
        for (const char *p = text; *p && n < sizeof(c->error) - 1; p++) {
                int blank = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r';
                if (blank && space)
                        continue;
                c->error[n++] = blank ? ' ' : *p;
                space = blank;
        }
        while (n && c->error[n - 1] == ' ')
                n--;
        c->error[n] = '\0';
}

static int sqlstate_unavailable(const char *st)
{
        if (!st)
                return 1; /* no answer from the server at all */
        /* 08 connection exception, 53 insufficient resources, 57P01..57P03 shutdown or
         * starting up, 57014 a statement cancelled by statement_timeout (a lock held
         * elsewhere: busy, like SQLite's SQLITE_BUSY), 55P03 lock not available, 40001
         * serialization failure and 40P01 deadlock: try again later. */
        return strncmp(st, "08", 2) == 0 || strncmp(st, "53", 2) == 0 ||
               strncmp(st, "57P0", 4) == 0 || strcmp(st, "57014") == 0 ||
               strcmp(st, "55P03") == 0 || strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0;
}

/* Keeps why res (NULL when libpq had none) failed. */
static void note_result(struct sql_conn *c, const PGresult *res)
{
        const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        if (st && primary) {
                char line[PG_ERROR_MAX];
                snprintf(line, sizeof(line), "SQLSTATE %s: %s", st, primary);
                note_text(c, line);
        } else {
                note_text(c, res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res)
                                                               : PQerrorMessage(c->pg));
        }
        c->unavailable = PQstatus(c->pg) == CONNECTION_BAD || sqlstate_unavailable(st);
        /* 26000: no such prepared statement, 42P05: the name is taken (a pooler handing
         * us another session); 0A000 from a prepared statement: "cached plan must not
         * change result type". Prepared again (or not at all) the order would work. */
        if (st && c->cache.clock &&
            (strcmp(st, "26000") == 0 || strcmp(st, "42P05") == 0 ||
             (strcmp(st, "0A000") == 0 && primary && strstr(primary, "cached plan")))) {
                /* Unavailable: the session drops this connection, and with it the kept
                 * statements; the order is tried again on a new one. */
                c->unavailable = 1;
                if (strcmp(st, "0A000") != 0 && !atomic_exchange(&pg_unprepared, 1))
                        c->host->log(CA_BACKEND_LOG_WARNING,
                                     "postgresql: the server does not keep prepared statements "
                                     "between transactions (%s); statements are no longer "
                                     "prepared",
                                     st);
        }
}

/* Server notices (e.g. from triggers) go to the agent's log, never to stderr. */
static void pg_notice(void *arg, const char *message)
{
        struct sql_conn *c = arg;
        c->host->log(CA_BACKEND_LOG_DEBUG, "postgresql: %.*s", (int)strcspn(message, "\n"),
                     message);
}

/* What every new server session needs; after a PQreset too. */
static int session_setup(struct sql_conn *c)
{
        char sql[96];
        uint64_t ms =
            c->timeout_ms > PG_MAX_STATEMENT_TIMEOUT ? PG_MAX_STATEMENT_TIMEOUT : c->timeout_ms;
        snprintf(sql, sizeof(sql), "SET statement_timeout = %llu", (unsigned long long)ms);
        PGresult *res = PQexec(c->pg, sql);
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
                note_result(c, res);
        PQclear(res);
        return ok ? SQL_OK : SQL_ERROR;
}

/* The password must never reach a message, whatever libpq or the server put there. */
static void scrub(char *text, const char *secret)
{
        size_t n = secret ? strlen(secret) : 0;
        if (n == 0)
                return;
        for (char *p = strstr(text, secret); p; p = strstr(p, secret))
                memset(p, '*', n);
}

/* An evicted statement is let go on the server, or its session would keep it. */
static void drop_stmt(void *ctx, struct sql_cache_entry *e)
{
        struct sql_conn *c = ctx;
        char name[48], sql[64];
        stmt_name(c, e, name);
        snprintf(sql, sizeof(sql), "DEALLOCATE %s", name);
        PQclear(PQexec(c->pg, sql));
}

static int pg_connect(const struct ca_host *host, const struct ca_backend_settings *s,
                      uint64_t timeout_ms, struct sql_conn **out, struct ca_backend_error *err)
{
        const char *conninfo = host->setting(s, "connection");
        char *password = NULL;
        uint64_t connect_ms = PG_DEFAULT_CONNECT_MS;
        char connect_s[24], user_timeout[24];
        int rc = CA_BACKEND_OK;

        struct sql_conn *c = calloc(1, sizeof(*c));
        if (!c)
                return host->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory");
        c->host = host;
        c->timeout_ms = timeout_ms;
        if (host->setting_ms(s, "connect_timeout", PG_DEFAULT_CONNECT_MS, &connect_ms, err) !=
            CA_BACKEND_OK) {
                rc = CA_BACKEND_EINVALID;
                goto fail;
        }
        if (host->setting(s, "password_file") || host->setting(s, "password_credential")) {
                password = host->secret(s, "password", err);
                if (!password) {
                        /* Perhaps being rotated: the agent retries later. */
                        rc = host->error(err, CA_BACKEND_EUNAVAILABLE, NULL,
                                         "cannot read the PostgreSQL password");
                        goto fail;
                }
        }
        uint64_t secs = (connect_ms + 999) / 1000;
        if (secs < PG_MIN_CONNECT_TIMEOUT_S)
                secs = PG_MIN_CONNECT_TIMEOUT_S;
        if (secs > PG_MAX_CONNECT_TIMEOUT_S)
                secs = PG_MAX_CONNECT_TIMEOUT_S;
        snprintf(connect_s, sizeof(connect_s), "%llu", (unsigned long long)secs);
        /* Unacknowledged data for longer than an order may take means a dead peer. */
        snprintf(user_timeout, sizeof(user_timeout), "%llu",
                 (unsigned long long)(timeout_ms + connect_ms));

        /* Later keywords win: the conninfo may override the first ones, not the last. */
        const char *keys[] = {"application_name",
                              "keepalives",
                              "keepalives_idle",
                              "keepalives_interval",
                              "keepalives_count",
                              "tcp_user_timeout",
                              "dbname",
                              "connect_timeout",
                              "client_encoding",
                              password ? "password" : NULL,
                              NULL};
        const char *values[] = {PG_APPLICATION_NAME,
                                "1",
                                PG_KEEPALIVE_IDLE_S,
                                PG_KEEPALIVE_INTERVAL_S,
                                PG_KEEPALIVE_COUNT,
                                user_timeout,
                                conninfo,
                                connect_s,
                                "UTF8",
                                password,
                                NULL};
        c->pg = PQconnectdbParams(keys, values, 1);
        if (!c->pg) {
                rc = host->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory");
                goto fail;
        }
        if (PQstatus(c->pg) != CONNECTION_OK) {
                note_text(c, PQerrorMessage(c->pg));
                scrub(c->error, password);
                rc = host->error(err, CA_BACKEND_EUNAVAILABLE, "connection",
                                 "cannot connect to PostgreSQL: %s", c->error);
                goto fail;
        }
        PQsetNoticeProcessor(c->pg, pg_notice, c);
        c->cache.drop = drop_stmt;
        c->cache.ctx = c;
        if (getrandom(&c->tag, sizeof(c->tag), GRND_NONBLOCK) != (ssize_t)sizeof(c->tag))
                c->tag = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)c;
        if (session_setup(c) != SQL_OK) {
                rc = host->error(
                    err, c->unavailable ? CA_BACKEND_EUNAVAILABLE : CA_BACKEND_EINVALID,
                    "order_timeout", "PostgreSQL refused the session settings: %s", c->error);
                goto fail;
        }
        host->secret_free(password);
        *out = c;
        return CA_BACKEND_OK;
fail:
        host->secret_free(password);
        PQfinish(c->pg);
        free(c);
        return rc;
}

/* A connection found broken (the server restarted since) is reset once. */
static int reset(struct sql_conn *c)
{
        /* The new session knows none of the old one's statements, and the schema may
         * have changed while the server was away. */
        sql_cache_clear(&c->cache, 0);
        memset(&c->keys, 0, sizeof(c->keys));
        PQreset(c->pg);
        if (PQstatus(c->pg) != CONNECTION_OK) {
                note_text(c, PQerrorMessage(c->pg));
                c->unavailable = 1;
                return SQL_ERROR;
        }
        return session_setup(c);
}

/* Runs sql through its kept statement, preparing it first when new. The result of a
 * failed prepare stands for the statement's. */
static PGresult *exec_kept(struct sql_conn *c, const char *sql, const char *const *params, size_t n)
{
        if (atomic_load(&pg_unprepared))
                return PQexecParams(c->pg, sql, (int)n, NULL, params, NULL, NULL, 0);
        char name[48];
        struct sql_cache_entry *e = sql_cache_find(&c->cache, sql);
        if (!e) {
                e = sql_cache_add(&c->cache, sql);
                if (!e)
                        return PQexecParams(c->pg, sql, (int)n, NULL, params, NULL, NULL, 0);
                stmt_name(c, e, name);
                PGresult *p = PQprepare(c->pg, name, sql, (int)n, NULL);
                if (PQresultStatus(p) != PGRES_COMMAND_OK) {
                        sql_cache_forget(e);
                        return p;
                }
                PQclear(p);
        }
        stmt_name(c, e, name);
        return PQexecPrepared(c->pg, name, (int)n, params, NULL, NULL, 0);
}

/* Runs one statement; NULL (with the error noted) when there is no result at all.
 * Outside a transaction nothing is lost by running it again on a fresh server session,
 * so a connection that broke while idle (a server restart) is reset and the statement
 * retried once; inside one, the transaction went with the connection. */
static PGresult *run(struct sql_conn *c, const char *sql, const char *const *params, size_t n)
{
        int retry = !c->in_tx;
        if (PQstatus(c->pg) == CONNECTION_BAD) {
                if (!retry) {
                        note_text(c, PQerrorMessage(c->pg));
                        c->unavailable = 1;
                        return NULL;
                }
                if (reset(c) != SQL_OK)
                        return NULL;
                retry = 0;
        }
        PGresult *res = exec_kept(c, sql, params, n);
        if (retry && PQstatus(c->pg) == CONNECTION_BAD) {
                PQclear(res);
                if (reset(c) != SQL_OK)
                        return NULL;
                res = exec_kept(c, sql, params, n);
        }
        if (!res)
                note_result(c, NULL);
        return res;
}

static int run_command(struct sql_conn *c, const char *sql, const char *const *params, size_t n,
                       long *changed)
{
        PGresult *res = run(c, sql, params, n);
        if (!res)
                return SQL_ERROR;
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
                note_result(c, res);
                PQclear(res);
                return SQL_ERROR;
        }
        if (changed)
                *changed = strtol(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        return SQL_OK;
}

static int pg_begin(struct sql_conn *c)
{
        c->error[0] = '\0';
        c->unavailable = 0;
        c->in_tx = 0;
        if (run_command(c, "BEGIN", NULL, 0, NULL) != SQL_OK)
                return SQL_ERROR;
        c->in_tx = 1;
        return SQL_OK;
}

static int pg_commit(struct sql_conn *c)
{
        PGresult *res = PQexec(c->pg, "COMMIT");
        int ret = SQL_OK;
        c->in_tx = 0;
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                note_result(c, res);
                /* The request may have reached the server and committed before the line
                 * broke: only a probe can tell. An answer from a live server (a deferred
                 * constraint, a serialization failure) means it rolled back. */
                ret = PQstatus(c->pg) == CONNECTION_BAD ? SQL_INDOUBT : SQL_ERROR;
        } else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
                /* COMMIT of a failed transaction answers ROLLBACK. */
                note_text(c, "the transaction was rolled back by the server");
                ret = SQL_ERROR;
        }
        PQclear(res);
        return ret;
}

static int pg_rollback(struct sql_conn *c)
{
        c->in_tx = 0;
        if (PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) == PQTRANS_IDLE)
                return SQL_OK;
        /* Keep the error that caused the rollback: it is the one worth reporting. */
        char saved[PG_ERROR_MAX];
        int saved_unavailable = c->unavailable;
        memcpy(saved, c->error, sizeof(saved));
        PGresult *res = PQexec(c->pg, "ROLLBACK");
        int ret = PQresultStatus(res) == PGRES_COMMAND_OK ? SQL_OK : SQL_ERROR;
        PQclear(res);
        memcpy(c->error, saved, sizeof(saved));
        c->unavailable = saved_unavailable;
        return ret;
}

static int pg_exec(struct sql_conn *c, const char *sql, const char *const *params, size_t n,
                   long *changed)
{
        return run_command(c, sql, params, n, changed);
}

static int pg_query_row(struct sql_conn *c, const char *sql, const char *const *params, size_t n,
                        char **cols, size_t ncols)
{
        int ret = SQL_ERROR;
        for (size_t i = 0; i < ncols; i++)
                cols[i] = NULL;
        PGresult *res = run(c, sql, params, n);
        if (!res)
                return SQL_ERROR;
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                note_result(c, res);
                goto out;
        }
        if (PQntuples(res) == 0) {
                ret = 0;
                goto out;
        }
        for (size_t i = 0; i < ncols && (int)i < PQnfields(res); i++) {
                if (PQgetisnull(res, 0, (int)i))
                        continue;
                cols[i] = strdup(PQgetvalue(res, 0, (int)i));
                if (!cols[i]) {
                        note_text(c, "out of memory");
                        c->unavailable = 0;
                        for (size_t j = 0; j < i; j++) {
                                free(cols[j]);
                                cols[j] = NULL;
                        }
                        goto out;
                }
        }
        ret = 1;
out:
        PQclear(res);
        return ret;
}

/* A unique index on the column alone (a primary key has one), without WHERE, checked at
 * once: ON CONFLICT takes no deferrable constraint as its arbiter. The table is named as
 * the statements name it, quoted, through the same search_path. */
#define PG_KEY_UNIQUE                                                                              \
        "SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND "             \
        "a.attnum = i.indkey[0] WHERE i.indrelid = to_regclass($1) AND i.indisunique AND "         \
        "i.indimmediate AND i.indnatts = 1 AND i.indpred IS NULL AND a.attname = $2 LIMIT 1"

static int pg_key_unique(struct sql_conn *c, const char *table, const char *column)
{
        int known = sql_key_memo_get(&c->keys, table, column);
        if (known >= 0)
                return known;
        char quoted[SQL_KEY_IDENT_MAX + 2];
        snprintf(quoted, sizeof(quoted), "\"%s\"", table);
        const char *params[2] = {quoted, column};
        char *col = NULL;
        int rc = pg_query_row(c, PG_KEY_UNIQUE, params, 2, &col, 1);
        free(col);
        if (rc < 0)
                return SQL_ERROR;
        sql_key_memo_set(&c->keys, table, column, rc);
        return rc;
}

static void pg_close(struct sql_conn *c)
{
        if (!c)
                return;
        sql_cache_clear(&c->cache, 0); /* the session ends with PQfinish */
        PQfinish(c->pg);
        free(c);
}

static const char *pg_error(struct sql_conn *c)
{
        return c->error[0] ? c->error : "unknown PostgreSQL error";
}

static int pg_is_unavailable(struct sql_conn *c)
{
        return c->unavailable;
}

const struct sql_driver sql_driver_postgresql = {
    .name = "postgresql",
    .placeholder = "$",
    .settings_check = pg_settings_check,
    .connect = pg_connect,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .exec = pg_exec,
    .query_row = pg_query_row,
    .key_unique = pg_key_unique,
    .close = pg_close,
    .error = pg_error,
    .is_unavailable = pg_is_unavailable,
};
