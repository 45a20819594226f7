/* SPDX-License-Identifier: Apache-2.0 */
/* The journal's PostgreSQL driver: one libpq connection, the batch as one transaction,
 * statements prepared once per session, and SQLSTATEs as negative errnos. A connection
 * that dropped is re-made at the next statement outside a batch (a batch in flight is
 * lost with it, which the batch rule already covers). Schema and migrations are in
 * journal_pg_schema.c.
 *
 * Blocking, on the loop thread, as SQLite's fsync is: bounded by connect_timeout and
 * tcp_user_timeout (defaults below, which the operator's conninfo may override) and by
 * lock_timeout on the server. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_internal.h"
#include "journal_seal.h"

#define PG_CONNECT_TIMEOUT_S   "5"
#define PG_TCP_USER_TIMEOUT_MS "10000"
#define PG_APPLICATION_NAME    "connector-agent journal"
#define PG_ARGS_MAX            12
#define PG_INT_TEXT            24
#define PG_STMT_NAME           "ca_journal_%d"

#define RESULT_COLUMNS                                                                             \
        "key, order_id, assignment_id, result_state, message, change_type, owner_id, "             \
        "owner_type, resource_identifier, executed_at"
#define LIST_COLUMNS                                                                               \
        "connector, key, state, change_type, assignment_id, received_at, finished_at, "            \
        "reported_at, result_state, message, refusal FROM ca_journal"

/* The twin of journal_sqlite.c's table: the same statements, arguments in the same order. */
static const char *const stmt_sql[JS_COUNT_STMTS] = {
    [JS_STATE] = "SELECT state FROM ca_journal WHERE connector = $1 AND key = $2",
    [JS_BEGIN] = "INSERT INTO ca_journal (connector, key, state, order_json, order_id, "
                 "assignment_id, change_type, received_at, guard_kinds) "
                 "VALUES ($1, $2, $8, $3, $4, $5, $6, $7, $9) "
                 "ON CONFLICT (connector, key) DO NOTHING",
    [JS_FINISH_UPDATE] = "UPDATE ca_journal SET state = 2, order_id = $3, assignment_id = $4, "
                         "result_state = $5, message = $6, change_type = $7, owner_id = $8, "
                         "owner_type = $9, resource_identifier = $10, executed_at = $11, "
                         "finished_at = $12, order_json = NULL "
                         "WHERE connector = $1 AND key = $2 AND state IN (1, 4, 5)",
    [JS_FINISH_INSERT] = "INSERT INTO ca_journal (connector, key, state, order_id, "
                         "assignment_id, result_state, message, change_type, owner_id, "
                         "owner_type, resource_identifier, executed_at, received_at, "
                         "finished_at) "
                         "VALUES ($1, $2, 2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) "
                         "ON CONFLICT (connector, key) DO NOTHING",
    [JS_RESULT] = "SELECT " RESULT_COLUMNS " FROM ca_journal "
                  "WHERE connector = $1 AND key = $2 AND state IN (2, 3)",
    [JS_UNREPORTED] = "SELECT " RESULT_COLUMNS " FROM ca_journal "
                      "WHERE state = 2 AND refusal IS NULL AND connector = $1 "
                      "ORDER BY seq LIMIT $2",
    [JS_COUNT_ONE] = "SELECT count(*) FROM ca_journal WHERE state = 2 AND refusal IS NULL AND "
                     "connector = $1",
    [JS_COUNT_ALL] = "SELECT count(*) FROM ca_journal WHERE state = 2 AND refusal IS NULL",
    [JS_MARK] = "UPDATE ca_journal SET state = 3, reported_at = $3 "
                "WHERE connector = $1 AND state = 2 "
                "AND key IN (SELECT jsonb_array_elements_text($2::jsonb))",
    [JS_IN_DOUBT] = "SELECT key, order_json FROM ca_journal "
                    "WHERE state = 1 AND connector = $1 ORDER BY seq",
    [JS_QUEUED] = "SELECT key, order_json FROM ca_journal "
                  "WHERE state = 4 AND connector = $1 ORDER BY seq",
    [JS_HELD] = "SELECT key, order_json, message FROM ca_journal WHERE state = 5 AND connector = "
                "$1 ORDER BY seq",
    [JS_HOLD] = "INSERT INTO ca_journal (connector, key, state, order_json, order_id, "
                "assignment_id, change_type, received_at, message, guard_kinds) VALUES ($1, $2, "
                "5, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (connector, key) DO NOTHING",
    [JS_COUNT_HELD] = "SELECT count(*) FROM ca_journal WHERE state = 5 AND connector = $1",
    [JS_HELD_KEYS] =
        "SELECT key, assignment_id FROM ca_journal WHERE state = 5 AND connector = $1 ORDER BY seq",
    [JS_RECENT_TAKEN] =
        "SELECT change_type, received_at, guard_kinds FROM ca_journal WHERE connector = $1 AND "
        "received_at >= $2 AND (state IN (1, 4) OR (state IN (2, 3) AND result_state = 1)) ORDER "
        "BY seq",
    [JS_LIST_HELD] = "SELECT " LIST_COLUMNS " WHERE state = 5 ORDER BY seq",
    [JS_MOVE] = "UPDATE ca_journal SET state = $4 "
                "WHERE connector = $1 AND key = $2 AND state = $3",
    [JS_PRUNE] = "DELETE FROM ca_journal WHERE state = 3 AND reported_at < $1",
    [JS_FORGET] = "DELETE FROM ca_journal WHERE connector = $1 AND key = $2 AND state IN (1, 4, 5)",
    [JS_UNREPORT] = "UPDATE ca_journal SET state = 2, reported_at = NULL "
                    "WHERE connector = $1 AND key = $2 AND state = 3",
    [JS_ORDER_OF] = "SELECT state, order_json FROM ca_journal WHERE connector = $1 AND key = $2",
    [JS_LIST_PENDING] = "SELECT " LIST_COLUMNS " WHERE state = 1 ORDER BY seq",
    [JS_LIST_QUEUED] = "SELECT " LIST_COLUMNS " WHERE state = 4 ORDER BY seq",
    [JS_LIST_UNREPORTED] = "SELECT " LIST_COLUMNS " WHERE state = 2 ORDER BY seq",
    [JS_LIST_ALL] = "SELECT " LIST_COLUMNS " ORDER BY seq",
    [JS_LIST_REFUSED] =
        "SELECT " LIST_COLUMNS " WHERE state = 2 AND refusal IS NOT NULL ORDER BY seq",
    [JS_REFUSE] =
        "UPDATE ca_journal SET refusal = $3 WHERE connector = $1 AND key = $2 AND state = 2",
    [JS_RESEND] = "UPDATE ca_journal SET refusal = NULL WHERE connector = $1 AND state = 2 AND "
                  "refusal IS NOT NULL AND ($2::text IS NULL OR key = $2::text)",
    [JS_COUNT_REFUSED] =
        "SELECT count(*) FROM ca_journal WHERE state = 2 AND refusal IS NOT NULL AND "
        "connector = $1",
    /* class "CAJ2": the schema's lock is "CAJ1" (journal_pg_schema.c) */
    [JS_ROLE_LOCK] = "SELECT pg_try_advisory_lock(1128352306, hashtext($1))",
    [JS_ROLE_TAKE] = "INSERT INTO ca_journal_roles (connector, holder, epoch, since) "
                     "VALUES ($1, $2, 1, $3) ON CONFLICT (connector) DO UPDATE SET "
                     "holder = EXCLUDED.holder, epoch = ca_journal_roles.epoch + 1, "
                     "since = EXCLUDED.since RETURNING epoch",
    [JS_ROLE_HOLDER] = "SELECT holder, epoch FROM ca_journal_roles WHERE connector = $1",
    [JS_PING] = "SELECT 1",
};

struct pg {
        PGconn *conn;
        int sync;
        uint64_t lease_ms; /* idle_session_timeout: 0 = none */
        unsigned session;  /* counts the sessions made: a reconnect drops the roles */
        unsigned char prepared[JS_COUNT_STMTS]; /* in this session */
};

static PGconn *conn_of(struct journal *j)
{
        return ((struct pg *)j->db)->conn;
}

PGconn *journal_pg_conn(struct journal *j)
{
        return j && j->drv && strcmp(j->drv->name, "postgresql") == 0 ? conn_of(j) : NULL;
}

int journal_pg_errno(PGconn *conn, const char *sqlstate)
{
        if (!conn || PQstatus(conn) == CONNECTION_BAD)
                return -ECONNREFUSED;
        if (!sqlstate || strlen(sqlstate) != 5)
                return -EIO;
        /* Connection exceptions, and a server shutting down or starting up. */
        if (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "57P0", 4) == 0)
                return -ECONNREFUSED;
        if (strcmp(sqlstate, "53100") == 0)
                return -ENOSPC;
        if (strcmp(sqlstate, "53200") == 0)
                return -ENOMEM;
        if (strcmp(sqlstate, "55P03") == 0 || strcmp(sqlstate, "40001") == 0 ||
            strcmp(sqlstate, "40P01") == 0 || strcmp(sqlstate, "57014") == 0)
                return -EBUSY;
        if (strcmp(sqlstate, "25006") == 0) /* a standby: read-only */
                return -EROFS;
        if (strcmp(sqlstate, "42501") == 0 || strncmp(sqlstate, "28", 2) == 0)
                return -EACCES;
        if (strncmp(sqlstate, "23", 2) == 0)
                return -EINVAL;
        /* A table gone or altered under us, or data the server itself finds damaged. */
        if (strncmp(sqlstate, "42", 2) == 0 || strncmp(sqlstate, "XX00", 4) == 0)
                return -EPROTO;
        return -EIO;
}

/* The server's words, on one line, without libpq's trailing newline. */
static void words(PGconn *conn, const PGresult *res, char *why, size_t len)
{
        const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        if (!m || !*m)
                m = conn ? PQerrorMessage(conn) : "no connection";
        if (!m || !*m)
                m = "no answer";
        /* libpq's messages run on several lines, indented with tabs. */
        size_t n = 0;
        for (; *m && n + 1 < len; m++) {
                int space = *m == '\n' || *m == '\r' || *m == '\t' || *m == ' ';
                if (!space)
                        why[n++] = *m;
                else if (n && why[n - 1] != ' ')
                        why[n++] = ' ';
        }
        while (n && why[n - 1] == ' ')
                n--;
        why[n] = '\0';
}

/* Consumes res; 0 when it is what was expected, else the errno with why filled. */
static int check(PGconn *conn, PGresult *res, ExecStatusType want, char *why, size_t len)
{
        if (res && PQresultStatus(res) == want)
                return 0;
        int code = journal_pg_errno(conn, res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL);
        words(conn, res, why, len);
        PQclear(res);
        return code;
}

static int simple(PGconn *conn, const char *sql, char *why, size_t len)
{
        PGresult *res = PQexec(conn, sql);
        int code = check(conn, res, PGRES_COMMAND_OK, why, len);
        if (code == 0)
                PQclear(res);
        return code;
}

static void no_notices(void *arg, const char *message)
{
        (void)arg;
        (void)message; /* "relation already exists, skipping" and the like */
}

/* What a new session needs before the first statement. */
static int session_setup(struct journal *j, char *why, size_t len)
{
        struct pg *p = j->db;
        memset(p->prepared, 0, sizeof(p->prepared));
        PQsetNoticeProcessor(p->conn, no_notices, NULL);
        char sql[320];
        int n = snprintf(sql, sizeof(sql), "SET lock_timeout = %d; SET synchronous_commit = %s",
                         JOURNAL_BUSY_TIMEOUT_MS, p->sync ? "on" : "off");
        /* The lease: a paused or cut-off instance's session, and with it its roles, ends
         * on the server's side once it has been silent this long (journal_keepalive keeps
         * a live one talking). */
        if (p->lease_ms)
                snprintf(sql + n, sizeof(sql) - (size_t)n,
                         "; SET idle_session_timeout = %llu"
                         "; SET idle_in_transaction_session_timeout = %llu",
                         (unsigned long long)p->lease_ms, (unsigned long long)p->lease_ms);
        return simple(p->conn, sql, why, len);
}

/* A dropped connection is re-made, never in the middle of a batch: that one is lost. */
static int ensure(struct journal *j, char *why, size_t len)
{
        struct pg *p = j->db;
        if (PQstatus(p->conn) == CONNECTION_OK)
                return 0;
        if (j->in_tx) {
                snprintf(why, len, "the connection to the server was lost");
                return -ECONNREFUSED;
        }
        PQreset(p->conn);
        if (PQstatus(p->conn) != CONNECTION_OK) {
                words(p->conn, NULL, why, len);
                return -ECONNREFUSED;
        }
        p->session++;
        return session_setup(j, why, len);
}

static int pg_begin(struct journal *j, char *why, size_t len)
{
        int code = ensure(j, why, len);
        return code < 0 ? code : simple(conn_of(j), "BEGIN", why, len);
}

static int pg_commit(struct journal *j, char *why, size_t len)
{
        PGconn *conn = conn_of(j);
        PGresult *res = PQexec(conn, "COMMIT");
        int code = check(conn, res, PGRES_COMMAND_OK, why, len);
        if (code < 0)
                return code;
        /* COMMIT of an aborted transaction "succeeds" as ROLLBACK. */
        if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
                snprintf(why, len, "the server rolled the transaction back");
                code = -EIO;
        }
        PQclear(res);
        return code;
}

static void pg_rollback(struct journal *j)
{
        PGconn *conn = conn_of(j);
        PGTransactionStatusType t = PQtransactionStatus(conn);
        if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR) {
                char why[JOURNAL_WHY_MAX];
                simple(conn, "ROLLBACK", why, sizeof(why));
        }
}

static int pg_tx_lost(struct journal *j)
{
        return PQtransactionStatus(conn_of(j)) != PQTRANS_INTRANS;
}

/* Runs statement id with args as text; *out is the result to PQclear. */
static int run(struct journal *j, enum journal_stmt_id id, const struct journal_arg *args, size_t n,
               ExecStatusType want, PGresult **out, char *why, size_t len)
{
        struct pg *p = j->db;
        *out = NULL;
        int code = ensure(j, why, len);
        if (code < 0)
                return code;
        char name[32];
        snprintf(name, sizeof(name), PG_STMT_NAME, (int)id);
        if (!p->prepared[id]) {
                PGresult *res = PQprepare(p->conn, name, stmt_sql[id], 0, NULL);
                if ((code = check(p->conn, res, PGRES_COMMAND_OK, why, len)) < 0)
                        return code;
                PQclear(res);
                p->prepared[id] = 1;
        }
        const char *values[PG_ARGS_MAX];
        char ints[PG_ARGS_MAX][PG_INT_TEXT];
        if (n > PG_ARGS_MAX) {
                snprintf(why, len, "statement %d has too many arguments", (int)id);
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
                if (args[i].is_int) {
                        snprintf(ints[i], sizeof(ints[i]), "%lld", (long long)args[i].num);
                        values[i] = ints[i];
                } else {
                        values[i] = args[i].text;
                }
        }
        PGresult *res = PQexecPrepared(p->conn, name, (int)n, values, NULL, NULL, 0);
        if ((code = check(p->conn, res, want, why, len)) < 0)
                return code;
        *out = res;
        return 0;
}

static int pg_write(struct journal *j, enum journal_stmt_id id, const struct journal_arg *args,
                    size_t n, char *why, size_t len)
{
        PGresult *res = NULL;
        int code = run(j, id, args, n, PGRES_COMMAND_OK, &res, why, len);
        if (code < 0)
                return code;
        long changes = strtol(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        return changes > 0 ? (int)(changes > 1 << 30 ? 1 << 30 : changes) : 0;
}

static int pg_query(struct journal *j, enum journal_stmt_id id, const struct journal_arg *args,
                    size_t n, struct journal_rows *rows, char *why, size_t len)
{
        PGresult *res = NULL;
        int code = run(j, id, args, n, PGRES_TUPLES_OK, &res, why, len);
        rows->cur = res;
        rows->row = -1;
        return code;
}

static int pg_next(struct journal_rows *rows, char *why, size_t len)
{
        if (!rows->cur)
                return 0;
        rows->row++;
        return rows->row < PQntuples(rows->cur) ? 1 : 0;
}

static const char *pg_text(struct journal_rows *rows, int col)
{
        if (PQgetisnull(rows->cur, rows->row, col))
                return NULL;
        return PQgetvalue(rows->cur, rows->row, col);
}

static int64_t pg_integer(struct journal_rows *rows, int col)
{
        const char *s = pg_text(rows, col);
        return s ? (int64_t)strtoll(s, NULL, 10) : 0;
}

static int pg_is_null(struct journal_rows *rows, int col)
{
        return PQgetisnull(rows->cur, rows->row, col);
}

static void pg_done(struct journal_rows *rows)
{
        PQclear(rows->cur);
        rows->cur = NULL;
}

static void pg_close(struct journal *j)
{
        struct pg *p = j->db;
        if (!p)
                return;
        PQfinish(p->conn);
        free(p);
        j->db = NULL;
}

static unsigned pg_session(const struct journal *j)
{
        return ((const struct pg *)j->db)->session;
}

static const struct journal_driver pg_driver = {
    .name = "postgresql",
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .write = pg_write,
    .query = pg_query,
    .next = pg_next,
    .text = pg_text,
    .integer = pg_integer,
    .is_null = pg_is_null,
    .done = pg_done,
    .tx_lost = pg_tx_lost,
    .session = pg_session,
};

/* "postgresql HOST:PORT/DB" for messages, from the conninfo (never its secrets); refuses
 * a conninfo that carries a password. */
static int describe(const char *conninfo, char **name, struct ca_error *err)
{
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
        if (!opts) {
                int code =
                    ca_error_set(err, -EINVAL, "journal: journal_connection is not valid: %s",
                                 perr ? perr : "out of memory");
                PQfreemem(perr);
                return code;
        }
        const char *host = NULL, *port = NULL, *db = NULL;
        int has_password = 0;
        for (PQconninfoOption *o = opts; o->keyword; o++) {
                if (!o->val || !*o->val)
                        continue;
                if (strcmp(o->keyword, "host") == 0 ||
                    (!host && strcmp(o->keyword, "hostaddr") == 0))
                        host = o->val;
                else if (strcmp(o->keyword, "port") == 0)
                        port = o->val;
                else if (strcmp(o->keyword, "dbname") == 0)
                        db = o->val;
                else if (strcmp(o->keyword, "password") == 0)
                        has_password = 1;
        }
        int code = 0;
        if (has_password) {
                code = ca_error_set(err, -EINVAL,
                                    "journal: journal_connection carries a password: remove it and "
                                    "set journal_password_file or journal_password_credential");
        } else {
                char buf[512];
                snprintf(buf, sizeof(buf), "postgresql %s%s%s/%s", host ? host : "(local)",
                         port ? ":" : "", port ? port : "", db ? db : "(default)");
                *name = strdup(buf);
                if (!*name)
                        code = ca_error_set(err, -ENOMEM, "journal: out of memory");
        }
        PQconninfoFree(opts);
        return code;
}

int journal_pg_open(struct journal *j, const struct journal_params *params, struct ca_error *err)
{
        if (!params->conninfo || !*params->conninfo)
                return ca_error_set(err, -EINVAL,
                                    "journal: journal = postgresql needs journal_connection (a "
                                    "libpq connection string)");
        if (!params->key_dir || !*params->key_dir)
                return ca_error_set(err, -EINVAL, "journal: no directory for the seal's key");
        int code = describe(params->conninfo, &j->name, err);
        if (code < 0)
                return code;
        struct pg *p = calloc(1, sizeof(*p));
        if (!p) {
                code = ca_error_set(err, -ENOMEM, "journal %s: out of memory", j->name);
                goto fail;
        }
        p->sync = params->sync;
        p->lease_ms = params->lease_ms;
        /* Later entries override earlier ones: our defaults first, then the operator's
         * conninfo (expanded from dbname), then the password from its own file. */
        const char *keys[] = {"connect_timeout",
                              "tcp_user_timeout",
                              "application_name",
                              "dbname",
                              params->password ? "password" : NULL,
                              NULL};
        const char *vals[] = {PG_CONNECT_TIMEOUT_S, PG_TCP_USER_TIMEOUT_MS, PG_APPLICATION_NAME,
                              params->conninfo,     params->password,       NULL};
        p->conn = PQconnectdbParams(keys, vals, 1);
        char why[JOURNAL_WHY_MAX];
        if (!p->conn || PQstatus(p->conn) != CONNECTION_OK) {
                words(p->conn, NULL, why, sizeof(why));
                int needs = p->conn && PQconnectionNeedsPassword(p->conn);
                code = ca_error_set(err, needs ? -EACCES : -ECONNREFUSED,
                                    "journal %s: cannot connect: %s%s", j->name, why,
                                    needs ? " (set journal_password_file or "
                                            "journal_password_credential)"
                                          : "");
                goto fail;
        }
        j->db = p;
        j->drv = &pg_driver;
        j->lease_ms = params->lease_ms;
        if ((code = session_setup(j, why, sizeof(why))) < 0) {
                ca_error_set(err, code, "journal %s: setting up the session: %s", j->name, why);
                goto fail;
        }
        if ((code = journal_seal_load(params->key_dir, &j->seal, err)) < 0)
                goto fail;
        char check_value[JOURNAL_SEAL_CHECK_LEN + 1];
        if (journal_seal_key_check(j->seal, check_value) < 0) {
                code = ca_error_set(err, -EIO, "journal %s: cannot derive the key check", j->name);
                goto fail;
        }
        code = journal_pg_schema_migrate(p->conn, j->name, journal_pg_migrations,
                                         journal_pg_migrations_count, CA_JOURNAL_PG_SCHEMA_VERSION,
                                         check_value, err);
        if (code < 0)
                goto fail;
        return 0;
fail:
        if (p)
                PQfinish(p->conn);
        free(p);
        j->db = NULL;
        j->drv = NULL;
        journal_seal_free(j->seal);
        j->seal = NULL;
        return code;
}
