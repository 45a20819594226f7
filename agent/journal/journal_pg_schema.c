/* SPDX-License-Identifier: Apache-2.0 */
/* The PostgreSQL journal's schema: its migration steps, and the one transaction that
 * checks and migrates a database before it is used. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_internal.h"

/* Serialises agents that start at once on one database: (class, id) of the two-key
 * advisory lock, so that the connectors' role locks (class "CAJ2", journal_role.c) can
 * never collide with it. */
#define PG_LOCK_CLASS_SCHEMA 0x43414a31 /* "CAJ1" */
#define PG_LOCK_ID_SCHEMA    1

/* Version 1 is SQLite's version 2, in PostgreSQL's words: seq gives the oldest-first order,
 * (connector, key) the identity. owner_id/owner_type are the order's Owner, not an
 * instance: which instance serves a connector is ca_journal_roles' (version 3). */
static const char pg_schema_v1[] =
    "CREATE TABLE ca_journal ("
    " seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " connector text NOT NULL,"
    " key text NOT NULL,"
    " state smallint NOT NULL CHECK (state BETWEEN 1 AND 4),"
    " order_json text,"
    " order_id text,"
    " assignment_id text,"
    " change_type text,"
    " result_state smallint CHECK (result_state IS NULL OR result_state IN (1, 2)),"
    " message text,"
    " owner_id text,"
    " owner_type text,"
    " resource_identifier text,"
    " executed_at bigint,"
    " received_at bigint NOT NULL,"
    " finished_at bigint,"
    " reported_at bigint,"
    " UNIQUE (connector, key),"
    " CHECK ((state IN (1, 4)) = (result_state IS NULL))"
    ");"
    "CREATE INDEX ca_journal_by_state ON ca_journal (state, connector, seq);";

/* Version 2 is SQLite's version 3: HELD (5), taken and kept back by a guardrail until an
 * operator releases it (QUEUED) or refuses it (FINISHED); message holds why. Only the two
 * checks on state change: they carry PostgreSQL's own names for version 1's unnamed
 * checks, and are dropped without IF EXISTS so that a database whose checks are named
 * otherwise fails the step (rolled back) instead of keeping a check that refuses 5. */
static const char pg_schema_v2[] =
    "ALTER TABLE ca_journal"
    " DROP CONSTRAINT ca_journal_state_check,"
    " DROP CONSTRAINT ca_journal_check,"
    " ADD CONSTRAINT ca_journal_state_check CHECK (state BETWEEN 1 AND 5),"
    " ADD CONSTRAINT ca_journal_check CHECK ((state IN (1, 4, 5)) = (result_state IS NULL));";

/* Version 3: who serves each connector (journal_serve). epoch counts the takings of the
 * role, so that an instance cut off from its session can tell whether another served
 * the connector meanwhile; since is Unix seconds. PostgreSQL only: SQLite has one
 * instance. */
static const char pg_schema_v3[] = "CREATE TABLE IF NOT EXISTS ca_journal_roles ("
                                   " connector text PRIMARY KEY,"
                                   " holder text NOT NULL,"
                                   " epoch bigint NOT NULL,"
                                   " since bigint NOT NULL"
                                   ");";

/* Version 4 is SQLite's version 4: what the guardrails counted each order as. */
static const char pg_schema_v4[] =
    "ALTER TABLE ca_journal ADD COLUMN IF NOT EXISTS guard_kinds smallint NOT NULL DEFAULT 0;";

/* Version 5 is SQLite's version 5: the server's answer to a refused result. */
static const char pg_schema_v5[] = "ALTER TABLE ca_journal ADD COLUMN IF NOT EXISTS refusal text;";

const struct journal_migration journal_pg_migrations[] = {
    {1, pg_schema_v1}, {2, pg_schema_v2}, {3, pg_schema_v3}, {4, pg_schema_v4}, {5, pg_schema_v5},
};
const size_t journal_pg_migrations_count =
    sizeof(journal_pg_migrations) / sizeof(journal_pg_migrations[0]);

static int failed(PGconn *conn, PGresult *res, const char *name, const char *what,
                  struct ca_error *err)
{
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        int code = journal_pg_errno(conn, state);
        char why[JOURNAL_WHY_MAX];
        snprintf(why, sizeof(why), "%s", m && *m ? m : PQerrorMessage(conn));
        why[strcspn(why, "\r\n")] = '\0';
        PQclear(res);
        return ca_error_set(err, code, "journal %s: %s failed (%s): %s", name, what,
                            journal_errno_words(code), why);
}

static int exec_ok(PGconn *conn, const char *sql, const char *name, const char *what,
                   struct ca_error *err)
{
        PGresult *res = PQexec(conn, sql);
        ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
                return failed(conn, res, name, what, err);
        PQclear(res);
        return 0;
}

int journal_pg_schema_migrate(PGconn *conn, const char *name, const struct journal_migration *steps,
                              size_t count, int max_version, const char *key_check,
                              struct ca_error *err)
{
        char sql[256];
        int code = exec_ok(conn, "BEGIN", name, "opening the schema check", err);
        if (code < 0)
                return code;
        snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%d, %d)", PG_LOCK_CLASS_SCHEMA,
                 PG_LOCK_ID_SCHEMA);
        if ((code = exec_ok(conn, sql, name, "locking the schema", err)) < 0 ||
            (code = exec_ok(conn,
                            "CREATE TABLE IF NOT EXISTS ca_journal_schema ("
                            " id integer PRIMARY KEY CHECK (id = 1),"
                            " version integer NOT NULL,"
                            " key_check text);"
                            "INSERT INTO ca_journal_schema VALUES (1, 0, NULL) "
                            "ON CONFLICT (id) DO NOTHING",
                            name, "creating the schema table", err)) < 0)
                goto fail;
        PGresult *res = PQexec(conn, "SELECT version, key_check FROM ca_journal_schema");
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
                code = failed(conn, res, name, "reading the schema version", err);
                goto fail;
        }
        int version = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
        char stored[JOURNAL_WHY_MAX] = "";
        if (!PQgetisnull(res, 0, 1))
                snprintf(stored, sizeof(stored), "%s", PQgetvalue(res, 0, 1));
        PQclear(res);
        if (version > max_version) {
                code = ca_error_set(
                    err, -EPROTO,
                    "journal %s has schema version %d but this agent knows only up to %d: it "
                    "was written by a newer connector-agent. Upgrade the agent (every agent "
                    "sharing this database)",
                    name, version, max_version);
                goto fail;
        }
        if (stored[0] && strcmp(stored, key_check) != 0) {
                code = ca_error_set(
                    err, -EKEYREJECTED,
                    "journal %s was written with another seal key: this agent could not open "
                    "the orders it holds. Give every agent sharing the database the same key "
                    "(the systemd credential journal-key, or the same journal.key in each state "
                    "directory)",
                    name);
                goto fail;
        }
        for (size_t i = 0; i < count; i++) {
                if (steps[i].to <= version)
                        continue;
                char what[64];
                snprintf(what, sizeof(what), "migrating the schema to version %d", steps[i].to);
                if ((code = exec_ok(conn, steps[i].sql, name, what, err)) < 0)
                        goto fail;
                version = steps[i].to;
        }
        const char *vals[2];
        char vtext[16];
        snprintf(vtext, sizeof(vtext), "%d", version);
        vals[0] = vtext;
        vals[1] = key_check;
        res = PQexecParams(conn,
                           "UPDATE ca_journal_schema SET version = $1::integer, "
                           "key_check = COALESCE(key_check, $2)",
                           2, NULL, vals, NULL, NULL, 0);
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
                code = failed(conn, res, name, "recording the schema version", err);
                goto fail;
        }
        PQclear(res);
        res = PQexec(conn, "COMMIT");
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK ||
            strcmp(PQcmdStatus(res), "COMMIT") != 0)
                return failed(conn, res, name, "committing the schema", err);
        PQclear(res);
        return 0;
fail:
        if (PQtransactionStatus(conn) == PQTRANS_INTRANS ||
            PQtransactionStatus(conn) == PQTRANS_INERROR)
                PQclear(PQexec(conn, "ROLLBACK"));
        return code;
}
