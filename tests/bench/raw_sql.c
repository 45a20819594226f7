/* SPDX-License-Identifier: Apache-2.0 */
/* raw_sql: the raw client the sql back-end is measured against (tests/bench/bench.py,
 * part "sqlrounds"). A prepared-statement loop, the fastest a plain program does the same
 * writes: each statement prepared once, then per row BEGIN; the statement; COMMIT, as the
 * agent does one transaction per order. Not part of the product or of CI.
 *
 *   raw_sql sqlite DBFILE Added|Modified|Deleted FROM TO
 *   raw_sql postgresql CONNINFO Added|Modified|Deleted FROM TO   (PGPASSWORD in the env)
 *
 * Rows are bench%06d for FROM <= i < TO, with the values bench.py's order() gives. */
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPARAMS 5

static const char *sql_for(const char *change, int pg)
{
        if (strcmp(change, "Added") == 0)
                return pg ? "INSERT INTO accounts (uid, given_name, surname, cn, mail) VALUES "
                            "($1, $2, $3, $4, $5)"
                          : "INSERT INTO accounts (uid, given_name, surname, cn, mail) VALUES "
                            "(?1, ?2, ?3, ?4, ?5)";
        if (strcmp(change, "Modified") == 0)
                return pg ? "UPDATE accounts SET mail = $2, title = $3 WHERE uid = $1"
                          : "UPDATE accounts SET mail = ?2, title = ?3 WHERE uid = ?1";
        return pg ? "DELETE FROM accounts WHERE uid = $1" : "DELETE FROM accounts WHERE uid = ?1";
}

/* The parameters of row i; returns how many. */
static int params_for(const char *change, int i, char v[NPARAMS][64])
{
        snprintf(v[0], 64, "bench%06d", i);
        if (strcmp(change, "Added") == 0) {
                snprintf(v[1], 64, "Given%d", i);
                snprintf(v[2], 64, "Surname%d", i);
                snprintf(v[3], 64, "User %d", i);
                snprintf(v[4], 64, "bench%06d@example.com", i);
                return 5;
        }
        if (strcmp(change, "Modified") == 0) {
                snprintf(v[1], 64, "bench%06d@corp.example.com", i);
                snprintf(v[2], 64, "Engineer %d", i);
                return 3;
        }
        return 1;
}

static int run_sqlite(const char *db, const char *change, int from, int to)
{
        sqlite3 *h = NULL;
        sqlite3_stmt *begin = NULL, *commit = NULL, *st = NULL;
        if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
                goto fail;
        sqlite3_busy_timeout(h, 10000);
        if (sqlite3_prepare_v2(h, "BEGIN IMMEDIATE", -1, &begin, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(h, "COMMIT", -1, &commit, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(h, sql_for(change, 0), -1, &st, NULL) != SQLITE_OK)
                goto fail;
        for (int i = from; i < to; i++) {
                char v[NPARAMS][64];
                int n = params_for(change, i, v);
                for (int k = 0; k < n; k++)
                        sqlite3_bind_text(st, k + 1, v[k], -1, SQLITE_STATIC);
                if (sqlite3_step(begin) != SQLITE_DONE || sqlite3_step(st) != SQLITE_DONE ||
                    sqlite3_step(commit) != SQLITE_DONE)
                        goto fail;
                sqlite3_reset(begin);
                sqlite3_reset(st);
                sqlite3_reset(commit);
        }
        sqlite3_finalize(begin);
        sqlite3_finalize(commit);
        sqlite3_finalize(st);
        sqlite3_close(h);
        return 0;
fail:
        fprintf(stderr, "raw_sql: %s\n", h ? sqlite3_errmsg(h) : "cannot open");
        return 1;
}

static int ok(PGconn *pg, PGresult *r)
{
        int good = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!good)
                fprintf(stderr, "raw_sql: %s", PQerrorMessage(pg));
        PQclear(r);
        return good;
}

static int run_pg(const char *conninfo, const char *change, int from, int to)
{
        PGconn *pg = PQconnectdb(conninfo);
        if (PQstatus(pg) != CONNECTION_OK) {
                fprintf(stderr, "raw_sql: %s", PQerrorMessage(pg));
                return 1;
        }
        if (!ok(pg, PQprepare(pg, "b", "BEGIN", 0, NULL)) ||
            !ok(pg, PQprepare(pg, "c", "COMMIT", 0, NULL)) ||
            !ok(pg, PQprepare(pg, "s", sql_for(change, 1), 0, NULL)))
                return 1;
        for (int i = from; i < to; i++) {
                char v[NPARAMS][64];
                const char *p[NPARAMS];
                int n = params_for(change, i, v);
                for (int k = 0; k < n; k++)
                        p[k] = v[k];
                if (!ok(pg, PQexecPrepared(pg, "b", 0, NULL, NULL, NULL, 0)) ||
                    !ok(pg, PQexecPrepared(pg, "s", n, p, NULL, NULL, 0)) ||
                    !ok(pg, PQexecPrepared(pg, "c", 0, NULL, NULL, NULL, 0)))
                        return 1;
        }
        PQfinish(pg);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc != 6) {
                fprintf(stderr, "usage: raw_sql sqlite|postgresql TARGET CHANGE FROM TO\n");
                return 2;
        }
        int from = atoi(argv[4]), to = atoi(argv[5]);
        if (strcmp(argv[1], "sqlite") == 0)
                return run_sqlite(argv[2], argv[3], from, to);
        return run_pg(argv[2], argv[3], from, to);
}
