/* SPDX-License-Identifier: Apache-2.0 */
/* sql: the SQL back-end plug-in: instances, sessions and the entry point. The order
 * logic is in sql_order.c, the database libraries behind sql_driver.h.
 *
 * [connector NAME]: driver = sqlite (default) or postgresql; order_timeout bounds lock
 * waits. sqlite: database = path of an existing file. postgresql: connection (libpq
 * conninfo, no password), password_file or password_credential, connect_timeout
 * (sql_postgresql.c). [resource-type ID]: table, key_column, key_change
 * (default: key_column), columns = "changeKey:column, ...", ignore_unmapped = yes|no,
 * membership_table, membership_key_column, membership_value_column,
 * membership_attribute (default memberOf: the Changes base name of link keys).
 * A session holds one connection, opened on first use and dropped when the database
 * becomes unavailable. The instance keeps a pointer to its settings, which the agent
 * keeps alive as long as the instance. */
#include <stdlib.h>
#include <string.h>

#include <connector-agent/backend.h>

#include "sql_driver.h"
#include "sql_order.h"
#include "sql_startup.h"

#define SQL_DEFAULT_TIMEOUT_MS 60000

static const struct ca_host *host;

static const struct sql_driver *const drivers[] = {
    &sql_driver_sqlite,
    &sql_driver_postgresql,
};

struct sql_instance {
        const struct sql_driver *drv;
        const struct ca_backend_settings *settings; /* borrowed: lives as long as the config */
        uint64_t timeout_ms;
};

struct sql_session {
        struct sql_instance *inst;
        struct sql_conn *conn;
};

static int sql_instance_new(const struct ca_host *h, const struct ca_backend_settings *s,
                            void **instance, struct ca_backend_error *err)
{
        const char *name = h->setting(s, "driver");
        const struct sql_driver *drv = NULL;
        uint64_t timeout_ms;
        int rc = CA_BACKEND_OK;

        if (!name || !*name)
                name = "sqlite";
        for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
                if (strcmp(drivers[i]->name, name) == 0)
                        drv = drivers[i];
        if (!drv)
                rc = h->error(
                    err, CA_BACKEND_EINVALID, "driver",
                    "driver = %s: unknown SQL driver (this build knows: sqlite, postgresql)", name);
        if (h->setting_ms(s, "order_timeout", SQL_DEFAULT_TIMEOUT_MS, &timeout_ms, err) !=
            CA_BACKEND_OK)
                rc = CA_BACKEND_EINVALID;
        if (drv && drv->settings_check(h, s, err) != CA_BACKEND_OK)
                rc = CA_BACKEND_EINVALID;
        if (rc != CA_BACKEND_OK)
                return rc;

        struct sql_instance *inst = calloc(1, sizeof(*inst));
        if (!inst)
                return h->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory");
        inst->drv = drv;
        inst->settings = s;
        inst->timeout_ms = timeout_ms;
        *instance = inst;
        return CA_BACKEND_OK;
}

static int sql_mapping_check(void *instance, const struct ca_backend_settings *mapping,
                             struct ca_backend_error *err)
{
        struct sql_mapping m;
        int rc = sql_mapping_parse(host, mapping, &m, err);
        if (rc == CA_BACKEND_OK)
                sql_mapping_clear(&m);
        return rc;
}

static void sql_instance_free(void *instance)
{
        free(instance);
}

static int sql_session_open(void *instance, void **session, struct ca_backend_error *err)
{
        struct sql_instance *inst = instance;
        struct sql_session *s = calloc(1, sizeof(*s));
        if (!s)
                return host->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory");
        s->inst = inst;
        *session = s;
        return CA_BACKEND_OK;
}

static void sql_session_close(void *session)
{
        struct sql_session *s = session;
        if (!s)
                return;
        if (s->conn)
                s->inst->drv->close(s->conn);
        free(s);
}

/* The connection opens on first use and is dropped after the database went away, so a
 * session outlives a database restart. */
static int session_conn(struct sql_session *s, struct ca_backend_error *err)
{
        if (s->conn)
                return CA_BACKEND_OK;
        return s->inst->drv->connect(host, s->inst->settings, s->inst->timeout_ms, &s->conn, err);
}

static void session_after(struct sql_session *s, int rc)
{
        if (rc == CA_BACKEND_EUNAVAILABLE || rc == CA_BACKEND_EINDOUBT) {
                s->inst->drv->close(s->conn);
                s->conn = NULL;
        }
}

static int sql_execute(void *session, const struct ca_backend_order *order,
                       const struct ca_backend_settings *mapping, struct ca_backend_result *r,
                       struct ca_backend_error *err)
{
        struct sql_session *s = session;
        struct sql_mapping m;
        int rc = sql_mapping_parse(host, mapping, &m, err);
        if (rc != CA_BACKEND_OK)
                return rc;
        rc = session_conn(s, err);
        if (rc == CA_BACKEND_OK)
                rc = sql_order_execute(host, s->inst->drv, s->conn, order, &m, r, err);
        session_after(s, rc);
        sql_mapping_clear(&m);
        return rc;
}

static int sql_probe(void *session, const struct ca_backend_order *order,
                     const struct ca_backend_settings *mapping, enum ca_backend_probe *answer,
                     struct ca_backend_result *r, struct ca_backend_error *err)
{
        struct sql_session *s = session;
        struct sql_mapping m;
        int rc = sql_mapping_parse(host, mapping, &m, err);
        if (rc != CA_BACKEND_OK)
                return rc;
        rc = session_conn(s, err);
        if (rc == CA_BACKEND_OK)
                rc = sql_order_probe(host, s->inst->drv, s->conn, order, &m, answer, r, err);
        session_after(s, rc);
        sql_mapping_clear(&m);
        return rc;
}

static int sql_check(void *session, struct ca_backend_error *err)
{
        struct sql_session *s = session;
        int rc = session_conn(s, err);
        if (rc != CA_BACKEND_OK)
                return rc;
        char *col = NULL;
        int q = s->inst->drv->query_row(s->conn, "SELECT 1", NULL, 0, &col, 1);
        free(col);
        if (q != 1) {
                rc = host->error(err, CA_BACKEND_EUNAVAILABLE, NULL, "SELECT 1 failed: %s",
                                 s->inst->drv->error(s->conn));
                session_after(s, rc);
        }
        return rc;
}

static int sql_describe(void *session, const struct ca_backend_order *order,
                        const struct ca_backend_settings *mapping, struct ca_backend_result *r,
                        struct ca_backend_error *err)
{
        struct sql_session *s = session;
        struct sql_mapping m;
        int rc = sql_mapping_parse(host, mapping, &m, err);
        if (rc != CA_BACKEND_OK)
                return rc;
        rc = sql_order_describe(host, s->inst->drv, order, &m, r, err);
        sql_mapping_clear(&m);
        return rc;
}

static const struct ca_backend_ops ops = {
    .abi_version = CA_BACKEND_ABI_VERSION,
    .size = sizeof(struct ca_backend_ops),
    .signature = CA_BACKEND_SIGNATURE,
    .name = "sql",
    .description = "SQL databases (PostgreSQL, SQLite) through bound statements",
    .instance_new = sql_instance_new,
    .mapping_check = sql_mapping_check,
    .instance_free = sql_instance_free,
    .session_open = sql_session_open,
    .session_close = sql_session_close,
    .execute = sql_execute,
    .probe = sql_probe,
    .check = sql_check,
    .describe = sql_describe,
    .startup = sql_startup,
    .shutdown = sql_shutdown,
};

CA_BACKEND_DEFINE_ENTRY(ops, host, log)
