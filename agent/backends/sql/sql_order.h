/* SPDX-License-Identifier: Apache-2.0 */
/* sql_order: turns one order into SQL statements over any sql_driver.
 *
 * Owns the mapping model (struct sql_mapping, sql_mapping_clear) and the meaning of
 * each change type (backends.md, "sql"). Identifiers are checked ([A-Za-z_][A-Za-z0-9_]*)
 * and quoted; values are always bound parameters. One transaction per order. */
#ifndef CA_SQL_ORDER_H
#define CA_SQL_ORDER_H

#include <connector-agent/backend.h>

#include "sql_driver.h"
#include "sql_password.h"

#define SQL_MAX_COLUMNS 64
#define SQL_IDENT_MAX   63

struct sql_column {
        char *change_key; /* the Changes key */
        char *column;     /* the column it fills */
};

struct sql_mapping {
        char *table;
        char *key_column;
        char *key_change; /* the Changes (or Resource) key that holds the row's key */
        struct sql_column columns[SQL_MAX_COLUMNS];
        size_t column_count;
        int ignore_unmapped;
        char *membership_table; /* NULL when the mapping has no links */
        char *membership_key_column;
        char *membership_value_column;
        char *membership_attribute; /* the Changes base name of links, default memberOf */
        char *password_change;      /* Changes key with a new password (NULL: none) */
        char *password_column;      /* where its hash goes */
        enum sql_password_method password_hash; /* yescrypt, bcrypt or argon2id */
        char *enabled_change;                   /* Changes key with "true"/"false" (NULL: none) */
        char *enabled_column;
        char *enabled_true, *enabled_false; /* the column's values, default 1 and 0 */
};

/* Parses and checks a [resource-type] mapping; reports every problem through err (one
 * line each, naming the key) and returns CA_BACKEND_EINVALID when there is any. */
int sql_mapping_parse(const struct ca_host *host, const struct ca_backend_settings *s,
                      struct sql_mapping *m, struct ca_backend_error *err);
void sql_mapping_clear(struct sql_mapping *m);

int sql_order_execute(const struct ca_host *host, const struct sql_driver *drv,
                      struct sql_conn *conn, const struct ca_backend_order *order,
                      const struct sql_mapping *m, struct ca_backend_result *r,
                      struct ca_backend_error *err);
int sql_order_probe(const struct ca_host *host, const struct sql_driver *drv, struct sql_conn *conn,
                    const struct ca_backend_order *order, const struct sql_mapping *m,
                    enum ca_backend_probe *answer, struct ca_backend_result *r,
                    struct ca_backend_error *err);
/* Writes the statements execute would run, with their parameters, into r's message;
 * touches nothing. */
int sql_order_describe(const struct ca_host *host, const struct sql_driver *drv,
                       const struct ca_backend_order *order, const struct sql_mapping *m,
                       struct ca_backend_result *r, struct ca_backend_error *err);

#endif
