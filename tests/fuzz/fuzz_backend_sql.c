/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the sql back-end: an order (and optionally its mapping, see
 * fuzz_backend_util.h) turned into statements by describe (dry run), then executed twice
 * on a real SQLite database in a temporary file (tmpfs when there is one).
 *
 * Checks, beyond "no crash, no leak": every outcome is well formed and reportable; the
 * schema is never changed by an order, whatever its keys and values (no injection
 * through identifiers or values); and applying the same order twice gives the same
 * final answer (backends.md: idempotent by design), so an Executed order is Executed again
 * and probe then says it was applied.
 * Seeds: tests/fuzz/corpus/backend_sql/; dictionary: tests/fuzz/backend.dict. */
#include <sqlite3.h>
#include <unistd.h>

#include "fuzz_backend_util.h"

#define FUZZ_SCHEMA_MAX 4096

static const char *const schema =
    "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, mail TEXT UNIQUE,"
    " age INTEGER CHECK (age IS NULL OR age >= 0));"
    "CREATE TABLE memberships (user_id TEXT NOT NULL, grp TEXT NOT NULL,"
    " PRIMARY KEY (user_id, grp));"
    "CREATE TABLE loose_links (user_id TEXT, grp TEXT);";

static const char *const reset = "DELETE FROM memberships; DELETE FROM loose_links;"
                                 "DELETE FROM users;";

static const char *const default_map[] = {"connector",
                                          "db",
                                          "table",
                                          "users",
                                          "key_column",
                                          "id",
                                          "key_change",
                                          "uid",
                                          "columns",
                                          "givenName:name, mail:mail,age:age",
                                          "membership_table",
                                          "memberships",
                                          "membership_key_column",
                                          "user_id",
                                          "membership_value_column",
                                          "grp",
                                          NULL};

static struct {
        const struct ca_backend_ops *ops;
        struct ca_settings conn;
        struct ca_settings map;
        void *inst;
        void *sess;
        sqlite3 *db; /* the harness's own connection, to reset and inspect */
        char path[256];
        char schema[FUZZ_SCHEMA_MAX];
} fx;

static void schema_text(char *out, size_t len)
{
        sqlite3_stmt *st = NULL;
        out[0] = '\0';
        if (sqlite3_prepare_v2(fx.db,
                               "SELECT group_concat(type || ':' || name || ':' || "
                               "coalesce(sql, ''), '|') FROM "
                               "(SELECT * FROM sqlite_master ORDER BY name)",
                               -1, &st, NULL) != SQLITE_OK)
                abort();
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
                snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
}

static void cleanup(void)
{
        if (fx.ops) {
                fx.ops->session_close(fx.sess);
                fx.ops->instance_free(fx.inst);
        }
        sqlite3_close(fx.db);
        unlink(fx.path);
        fuzz_settings_clear(&fx.conn);
        fuzz_settings_clear(&fx.map);
}

static void setup(void)
{
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fx.path, sizeof(fx.path), "%s/ca-fuzz-sql-%ld.db", dir, (long)getpid());
        unlink(fx.path);
        if (sqlite3_open(fx.path, &fx.db) != SQLITE_OK ||
            sqlite3_exec(fx.db, schema, NULL, NULL, NULL) != SQLITE_OK)
                abort();
        schema_text(fx.schema, sizeof(fx.schema));
        fuzz_settings_make(&fx.conn,
                           (const char *const[]){"backend", "sql", "driver", "sqlite", "database",
                                                 fx.path, "order_timeout", "2s", NULL});
        fuzz_settings_make(&fx.map, default_map);
        fx.ops = fuzz_plugin();
        struct ca_backend_error err = {0};
        if (fx.ops->instance_new(backend_host(), backend_settings(&fx.conn), &fx.inst, &err) !=
                CA_BACKEND_OK ||
            fx.ops->mapping_check(fx.inst, backend_settings(&fx.map), &err) != CA_BACKEND_OK ||
            fx.ops->session_open(fx.inst, &fx.sess, &err) != CA_BACKEND_OK) {
                fprintf(stderr, "fuzz_backend_sql: setup failed: %s\n", err.message);
                abort();
        }
        atexit(cleanup);
}

static int run(int execute, const struct ca_order *o, const struct ca_settings *map,
               struct ca_backend_result *r)
{
        struct ca_backend_error err = {0};
        memset(r, 0, sizeof(*r));
        int rc = execute
                     ? fx.ops->execute(fx.sess, backend_order(o), backend_settings(map), r, &err)
                     : fx.ops->describe(fx.sess, backend_order(o), backend_settings(map), r, &err);
        fuzz_check_outcome(o, rc, r, &err);
        return rc;
}

/* After an order was Executed, the crash-recovery question "was it applied?" must be
 * answered yes, or the agent would run it again or call it in doubt. */
static void probe_applied(const struct ca_order *o, const struct ca_settings *map)
{
        struct ca_backend_result r = {0};
        struct ca_backend_error err = {0};
        enum ca_backend_probe answer = 0;
        int rc = fx.ops->probe(fx.sess, backend_order(o), backend_settings(map), &answer, &r, &err);
        if (rc != CA_BACKEND_OK || answer != CA_BACKEND_PROBE_APPLIED) {
                fprintf(stderr, "probe after Executed: rc %d, answer %d: %s%s\n", rc, (int)answer,
                        err.message, r.message);
                abort();
        }
        fuzz_check_outcome(o, rc, &r, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *map_text, *json;
        size_t map_len, json_len;
        struct ca_settings custom = {0};
        const struct ca_settings *map = &fx.map;
        char now[FUZZ_SCHEMA_MAX];

        if (!fx.ops)
                setup();
        fuzz_split(data, size, &map_text, &map_len, &json, &json_len);
        struct ca_order *o = fuzz_order(json, json_len);
        if (!o)
                return 0;
        if (map_text) {
                fuzz_settings_parse(&custom, map_text, map_len);
                map = &custom;
        }
        struct ca_backend_error err = {0};
        int checked = fx.ops->mapping_check(fx.inst, backend_settings(map), &err);
        if (!fuzz_code_known(checked) || (checked != CA_BACKEND_OK && !err.message[0]))
                abort();

        struct ca_backend_result first, second;
        run(0, o, map, &first);
        if (checked == CA_BACKEND_OK) {
                if (sqlite3_exec(fx.db, reset, NULL, NULL, NULL) != SQLITE_OK)
                        abort();
                int rc1 = run(1, o, map, &first);
                int rc2 = run(1, o, map, &second);
                if (rc1 == CA_BACKEND_OK && first.state == CA_BACKEND_EXECUTED &&
                    (rc2 != CA_BACKEND_OK || second.state != CA_BACKEND_EXECUTED)) {
                        fprintf(stderr, "not idempotent: first: %s\nagain: %s\n", first.message,
                                second.message);
                        abort();
                }
                if (rc1 == CA_BACKEND_OK && first.state == CA_BACKEND_EXECUTED)
                        probe_applied(o, map);
                schema_text(now, sizeof(now));
                if (strcmp(now, fx.schema) != 0) {
                        fprintf(stderr, "the order changed the schema: %s\n", now);
                        abort();
                }
        }
        fuzz_settings_clear(&custom);
        order_free(o);
        return 0;
}
