/* SPDX-License-Identifier: Apache-2.0 */
/* The journal's schema: the migration steps and the checks made before a file is used. */
#include <stdio.h>
#include <string.h>

#include "journal_internal.h"

/* seq gives the oldest-first order of in-doubt and unreported entries; (connector, key)
 * is the identity. AUTOINCREMENT so that a pruned seq is never reused. The CHECK makes a
 * FINISHED or REPORTED entry without a result impossible to store. */
static const char schema_v1[] =
    "CREATE TABLE entries ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " connector TEXT NOT NULL,"
    " key TEXT NOT NULL,"
    " state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 3),"
    " order_json TEXT," /* NULL when finished without being executed */
    " order_id TEXT,"
    " assignment_id TEXT,"
    " change_type TEXT,"
    " result_state INTEGER CHECK (result_state IS NULL OR result_state IN (1, 2)),"
    " message TEXT,"
    " owner_id TEXT,"
    " owner_type TEXT,"
    " resource_identifier TEXT,"
    " executed_at INTEGER,"
    " received_at INTEGER NOT NULL,"
    " finished_at INTEGER,"
    " reported_at INTEGER,"
    " UNIQUE (connector, key),"
    " CHECK ((state = 1) = (result_state IS NULL))"
    ");"
    "CREATE INDEX entries_by_state ON entries (state, connector, seq);";

/* The entries table copied under a new name with new state checks (the only rules that
 * changed between versions): SQLite cannot change a CHECK in place, so each version
 * copies the table, seq values and all. */
#define ENTRIES_COPY(name, state_max, unfinished)                                                  \
        "CREATE TABLE " name " ("                                                                  \
        " seq INTEGER PRIMARY KEY AUTOINCREMENT,"                                                  \
        " connector TEXT NOT NULL,"                                                                \
        " key TEXT NOT NULL,"                                                                      \
        " state INTEGER NOT NULL CHECK (state BETWEEN 1 AND " state_max "),"                       \
        " order_json TEXT,"                                                                        \
        " order_id TEXT,"                                                                          \
        " assignment_id TEXT,"                                                                     \
        " change_type TEXT,"                                                                       \
        " result_state INTEGER CHECK (result_state IS NULL OR result_state IN (1, 2)),"            \
        " message TEXT,"                                                                           \
        " owner_id TEXT,"                                                                          \
        " owner_type TEXT,"                                                                        \
        " resource_identifier TEXT,"                                                               \
        " executed_at INTEGER,"                                                                    \
        " received_at INTEGER NOT NULL,"                                                           \
        " finished_at INTEGER,"                                                                    \
        " reported_at INTEGER,"                                                                    \
        " UNIQUE (connector, key),"                                                                \
        " CHECK ((state IN " unfinished ") = (result_state IS NULL))"                              \
        ");"                                                                                       \
        "INSERT INTO " name " SELECT * FROM entries;"                                              \
        "DROP TABLE entries;"                                                                      \
        "ALTER TABLE " name " RENAME TO entries;"                                                  \
        "CREATE INDEX entries_by_state ON entries (state, connector, seq);"

/* Version 2 adds QUEUED (4): taken, not yet started, so never in doubt. */
static const char schema_v2[] = ENTRIES_COPY("entries_v2", "4", "(1, 4)");

/* Version 3 adds HELD (5): taken, kept back by a guardrail until an operator releases
 * it (then QUEUED) or refuses it (then FINISHED). message holds why it is held. */
static const char schema_v3[] = ENTRIES_COPY("entries_v3", "5", "(1, 4, 5)");

/* Version 4 keeps what the guardrails counted an order as (guard.h's kinds, a bit each:
 * disabling an account, changing group members, besides the change type), so that a
 * restart rebuilds every window, not only the change types'. 0 for older entries. A
 * later ENTRIES_COPY must list it (SELECT * copies by position). */
static const char schema_v4[] =
    "ALTER TABLE entries ADD COLUMN guard_kinds INTEGER NOT NULL DEFAULT 0;";

/* Version 5: refusal, the server's answer when it refused a FINISHED entry's result
 * (HTTP 400); NULL otherwise. Such a result is not sent again until an operator says so
 * (journal resend). */
static const char schema_v5[] = "ALTER TABLE entries ADD COLUMN refusal TEXT;";

const struct journal_migration journal_migrations[] = {
    {1, schema_v1}, {2, schema_v2}, {3, schema_v3}, {4, schema_v4}, {5, schema_v5},
};
const size_t journal_migrations_count = sizeof(journal_migrations) / sizeof(journal_migrations[0]);

int journal_schema_version(sqlite3 *db, int *version)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                rc = sqlite3_step(st);
                if (rc == SQLITE_ROW) {
                        *version = sqlite3_column_int(st, 0);
                        rc = SQLITE_OK;
                }
        }
        sqlite3_finalize(st);
        return rc;
}

#define DAMAGE_WHY_MAX 120 /* leaves room in the message for the way out */

static int damaged(const char *path, const char *why_in, struct ca_error *err)
{
        /* quick_check answers in several lines with banners; the operator gets one line. */
        char why[DAMAGE_WHY_MAX + 1];
        size_t n = 0;
        for (size_t i = 0; why_in[i] && n < DAMAGE_WHY_MAX; i++) {
                char c = why_in[i] == '\n' ? ' ' : why_in[i];
                if (c != '*' && !(c == ' ' && (n == 0 || why[n - 1] == ' ')))
                        why[n++] = c;
        }
        while (n > 0 && why[n - 1] == ' ')
                n--;
        why[n] = '\0';
        return ca_error_set(
            err, -EPROTO,
            "journal %s is damaged (%s). Way out: stop the agent and move the file "
            "aside with its -wal and -shm files (mv %s %s.damaged); the agent then "
            "starts with an empty journal and the server re-delivers every order it "
            "has no answer for",
            path, why, path, path);
}

int journal_schema_check(sqlite3 *db, const char *path, int max_version, int *version,
                         struct ca_error *err)
{
        /* Reading the header is what tells a non-database apart: SQLite opens lazily. */
        int rc = journal_schema_version(db, version);
        if (rc != SQLITE_OK) {
                int code = journal_errno(db, rc);
                if (code == -EPROTO)
                        return damaged(path, sqlite3_errmsg(db), err);
                return ca_error_set(err, code, "journal %s: cannot read: %s", path,
                                    sqlite3_errmsg(db));
        }
        if (*version > max_version)
                return ca_error_set(
                    err, -EPROTO,
                    "journal %s has schema version %d but this agent knows only up "
                    "to %d: it was written by a newer connector-agent. Upgrade the "
                    "agent, or stop it and move the file aside (mv %s %s.newer); the "
                    "agent then starts with an empty journal and the server "
                    "re-delivers every order it has no answer for",
                    path, *version, max_version, path, path);

        sqlite3_stmt *st = NULL;
        int code = 0;
        rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                const char *res = (const char *)sqlite3_column_text(st, 0);
                if (!res || strcmp(res, "ok") != 0)
                        code = damaged(path, res ? res : "integrity check failed", err);
        } else {
                code = journal_errno(db, rc);
                if (code == -EPROTO)
                        damaged(path, sqlite3_errmsg(db), err);
                else
                        ca_error_set(err, code, "journal %s: cannot check: %s", path,
                                     sqlite3_errmsg(db));
        }
        sqlite3_finalize(st);
        return code;
}

static int migrate_step(sqlite3 *db, const char *path, const struct journal_migration *step,
                        struct ca_error *err)
{
        int code = 0;
        char *msg = NULL;
        int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
        if (rc != SQLITE_OK)
                goto fail;
        /* Read again under the write lock: another process may have migrated meanwhile. */
        int version = 0;
        rc = journal_schema_version(db, &version);
        if (rc != SQLITE_OK)
                goto fail;
        if (version >= step->to) {
                rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
                if (rc != SQLITE_OK)
                        goto fail;
                goto out;
        }
        rc = sqlite3_exec(db, step->sql, NULL, NULL, &msg);
        if (rc != SQLITE_OK)
                goto fail;
        char set[64];
        snprintf(set, sizeof(set), "PRAGMA user_version = %d", step->to);
        rc = sqlite3_exec(db, set, NULL, NULL, &msg);
        if (rc != SQLITE_OK)
                goto fail;
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
        if (rc != SQLITE_OK)
                goto fail;
        goto out;
fail:
        code = journal_errno(db, rc);
        ca_error_set(err, code, "journal %s: migrating the schema to version %d failed (%s): %s",
                     path, step->to, journal_errno_words(code), msg ? msg : sqlite3_errmsg(db));
        if (!sqlite3_get_autocommit(db))
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
        sqlite3_free(msg);
        return code;
}

int journal_schema_migrate(sqlite3 *db, const char *path, const struct journal_migration *steps,
                           size_t count, struct ca_error *err)
{
        int version = 0;
        int rc = journal_schema_version(db, &version);
        if (rc != SQLITE_OK)
                return ca_error_set(err, journal_errno(db, rc), "journal %s: cannot read: %s", path,
                                    sqlite3_errmsg(db));
        for (size_t i = 0; i < count; i++) {
                if (steps[i].to <= version)
                        continue;
                int code = migrate_step(db, path, &steps[i], err);
                if (code < 0)
                        return code;
                version = steps[i].to;
        }
        return 0;
}
