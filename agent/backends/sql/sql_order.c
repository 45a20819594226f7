/* SPDX-License-Identifier: Apache-2.0 */
/* sql_order: the generic order->SQL logic (see sql_order.h). */
#include "sql_order.h"

#include "sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQL_MAX_LINKS  4096 /* link values one order may add, remove or set */
#define SQL_MAX_PARAMS (2 * SQL_MAX_COLUMNS + 4)
#define SQL_MAX_STMTS  (3 * SQL_MAX_LINKS + 8)

/* --- a growing text buffer for statements and messages --- */

/* --- the mapping --- */

static int ident_valid(const char *s)
{
        size_t len = strlen(s);
        if (len == 0 || len > SQL_IDENT_MAX)
                return 0;
        if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
                return 0;
        for (size_t i = 1; i < len; i++) {
                char c = s[i];
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '_'))
                        return 0;
        }
        return 1;
}

/* Reads an identifier setting; counts a problem when it is missing (if required) or
 * not an identifier. */
static char *ident_setting(const struct ca_host *host, const struct ca_backend_settings *s,
                           const char *key, int required, const char *def, int *bad,
                           struct ca_backend_error *err)
{
        const char *v = host->setting(s, key);
        if (!v || !*v) {
                if (required) {
                        host->error(err, CA_BACKEND_EINVALID, key, "%s: required", key);
                        (*bad)++;
                        return NULL;
                }
                v = def;
                if (!v)
                        return NULL;
        }
        if (!ident_valid(v)) {
                host->error(err, CA_BACKEND_EINVALID, key,
                            "%s = %s: not a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*, at "
                            "most %d characters)",
                            key, v, SQL_IDENT_MAX);
                (*bad)++;
                return NULL;
        }
        char *copy = strdup(v);
        if (!copy) {
                host->error(err, CA_BACKEND_EINTERNAL, key, "out of memory");
                (*bad)++;
        }
        return copy;
}

static char *trimmed_copy(const char *start, size_t len)
{
        while (len && (*start == ' ' || *start == '\t')) {
                start++;
                len--;
        }
        while (len && (start[len - 1] == ' ' || start[len - 1] == '\t'))
                len--;
        return strndup(start, len);
}

static void columns_parse(const struct ca_host *host, const char *text, struct sql_mapping *m,
                          int *bad, struct ca_backend_error *err)
{
        const char *p = text;
        while (*p) {
                const char *end = strchr(p, ',');
                size_t len = end ? (size_t)(end - p) : strlen(p);
                const char *colon = memchr(p, ':', len);
                if (len == 0 || (len == strspn(p, " \t"))) {
                        p += len + (end ? 1 : 0);
                        continue;
                }
                if (!colon) {
                        host->error(err, CA_BACKEND_EINVALID, "columns",
                                    "columns: '%.*s' is not change_key:column", (int)len, p);
                        (*bad)++;
                } else if (m->column_count == SQL_MAX_COLUMNS) {
                        host->error(err, CA_BACKEND_EINVALID, "columns",
                                    "columns: more than %d columns", SQL_MAX_COLUMNS);
                        (*bad)++;
                        return;
                } else {
                        char *ck = trimmed_copy(p, (size_t)(colon - p));
                        char *col = trimmed_copy(colon + 1, len - (size_t)(colon - p) - 1);
                        if (!ck || !col || !*ck) {
                                host->error(err, CA_BACKEND_EINVALID, "columns",
                                            "columns: '%.*s' has an empty change key", (int)len, p);
                                (*bad)++;
                                free(ck);
                                free(col);
                        } else if (!ident_valid(col)) {
                                host->error(err, CA_BACKEND_EINVALID, "columns",
                                            "columns: '%s' is not a plain SQL identifier "
                                            "([A-Za-z_][A-Za-z0-9_]*)",
                                            col);
                                (*bad)++;
                                free(ck);
                                free(col);
                        } else {
                                m->columns[m->column_count].change_key = ck;
                                m->columns[m->column_count].column = col;
                                m->column_count++;
                        }
                }
                p += len + (end ? 1 : 0);
        }
}

static const char *const mapping_keys[] = {
    "table",
    "key_column",
    "key_change",
    "columns",
    "ignore_unmapped",
    "membership_table",
    "membership_key_column",
    "membership_value_column",
    "membership_attribute",
    "password_change",
    "password_column",
    "password_hash",
    "enabled_change",
    "enabled_column",
    "enabled_values",
    "connector", /* the agent's own key in every [resource-type] section */
};

int sql_mapping_parse(const struct ca_host *host, const struct ca_backend_settings *s,
                      struct sql_mapping *m, struct ca_backend_error *err)
{
        int bad = 0;
        memset(m, 0, sizeof(*m));

        for (size_t i = 0; i < host->setting_count(s); i++) {
                const char *k = host->setting_key(s, i);
                int known = 0;
                for (size_t j = 0; j < sizeof(mapping_keys) / sizeof(mapping_keys[0]); j++)
                        known |= strcmp(k, mapping_keys[j]) == 0;
                if (!known) {
                        host->error(err, CA_BACKEND_EINVALID, k,
                                    "%s: unknown key for the sql back-end", k);
                        bad++;
                }
        }

        m->table = ident_setting(host, s, "table", 1, NULL, &bad, err);
        m->key_column = ident_setting(host, s, "key_column", 1, NULL, &bad, err);
        const char *kc = host->setting(s, "key_change");
        if (kc && *kc)
                m->key_change = strdup(kc);
        else if (m->key_column)
                m->key_change = strdup(m->key_column);

        const char *cols = host->setting(s, "columns");
        if (cols)
                columns_parse(host, cols, m, &bad, err);

        const char *iu = host->setting(s, "ignore_unmapped");
        if (iu) {
                if (strcmp(iu, "yes") == 0 || strcmp(iu, "true") == 0 || strcmp(iu, "1") == 0)
                        m->ignore_unmapped = 1;
                else if (strcmp(iu, "no") != 0 && strcmp(iu, "false") != 0 &&
                         strcmp(iu, "0") != 0) {
                        host->error(err, CA_BACKEND_EINVALID, "ignore_unmapped",
                                    "ignore_unmapped = %s: use yes or no", iu);
                        bad++;
                }
        }

        int links = host->setting(s, "membership_table") != NULL ||
                    host->setting(s, "membership_key_column") != NULL ||
                    host->setting(s, "membership_value_column") != NULL;
        if (links) {
                m->membership_table =
                    ident_setting(host, s, "membership_table", 1, NULL, &bad, err);
                m->membership_key_column =
                    ident_setting(host, s, "membership_key_column", 1, NULL, &bad, err);
                m->membership_value_column =
                    ident_setting(host, s, "membership_value_column", 1, NULL, &bad, err);
        }
        const char *ma = host->setting(s, "membership_attribute");
        m->membership_attribute = strdup(ma && *ma ? ma : "memberOf");

        const char *pc = host->setting(s, "password_change");
        if (pc && *pc) {
                m->password_change = strdup(pc);
                m->password_column = ident_setting(host, s, "password_column", 1, NULL, &bad, err);
                const char *ph = host->setting(s, "password_hash");
                m->password_hash = sql_password_method(ph);
                if (m->password_hash == SQL_PW_NONE) {
                        host->error(err, CA_BACKEND_EINVALID, "password_hash",
                                    "password_hash%s%s: required with password_change, yescrypt, "
                                    "bcrypt or argon2id (a password is never stored as given)",
                                    ph ? " = " : "", ph ? ph : "");
                        bad++;
                }
        } else if (host->setting(s, "password_column") || host->setting(s, "password_hash")) {
                host->error(err, CA_BACKEND_EINVALID, "password_change",
                            "password_change: required with password_column and password_hash");
                bad++;
        }
        const char *ec = host->setting(s, "enabled_change");
        if (ec && *ec) {
                m->enabled_change = strdup(ec);
                m->enabled_column = ident_setting(host, s, "enabled_column", 1, NULL, &bad, err);
                const char *ev = host->setting(s, "enabled_values");
                const char *comma = ev ? strchr(ev, ',') : NULL;
                if (ev && (!comma || comma == ev || !comma[1] || strchr(comma + 1, ','))) {
                        host->error(err, CA_BACKEND_EINVALID, "enabled_values",
                                    "enabled_values = %s: two values, enabled first (e.g. 1,0 or "
                                    "active,locked)",
                                    ev);
                        bad++;
                } else {
                        m->enabled_true = ev ? trimmed_copy(ev, (size_t)(comma - ev)) : strdup("1");
                        m->enabled_false =
                            ev ? trimmed_copy(comma + 1, strlen(comma + 1)) : strdup("0");
                }
        } else if (host->setting(s, "enabled_column") || host->setting(s, "enabled_values")) {
                host->error(err, CA_BACKEND_EINVALID, "enabled_change",
                            "enabled_change: required with enabled_column");
                bad++;
        }

        for (size_t i = 0; i < m->column_count; i++) {
                for (size_t j = 0; j < i; j++) {
                        if (strcmp(m->columns[i].change_key, m->columns[j].change_key) == 0) {
                                host->error(err, CA_BACKEND_EINVALID, "columns",
                                            "columns: change key '%s' is mapped twice",
                                            m->columns[i].change_key);
                                bad++;
                        }
                }
        }

        if (!bad && (!m->key_change || !m->membership_attribute)) {
                host->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory");
                bad++;
        }
        if (bad) {
                sql_mapping_clear(m);
                return CA_BACKEND_EINVALID;
        }
        return CA_BACKEND_OK;
}

void sql_mapping_clear(struct sql_mapping *m)
{
        if (!m)
                return;
        free(m->table);
        free(m->key_column);
        free(m->key_change);
        for (size_t i = 0; i < m->column_count; i++) {
                free(m->columns[i].change_key);
                free(m->columns[i].column);
        }
        free(m->membership_table);
        free(m->membership_key_column);
        free(m->membership_value_column);
        free(m->membership_attribute);
        free(m->password_change);
        free(m->password_column);
        free(m->enabled_change);
        free(m->enabled_column);
        free(m->enabled_true);
        free(m->enabled_false);
        memset(m, 0, sizeof(*m));
}

/* --- what one order asks for --- */

struct sql_work {
        enum ca_backend_change change;
        const char *key;     /* the row's key */
        const char *new_key; /* Modified: the key's new value, NULL when unchanged */
        const char *col[SQL_MAX_COLUMNS];
        const char *val[SQL_MAX_COLUMNS]; /* NULL: SQL NULL */
        size_t ncol;
        const char *adds[SQL_MAX_LINKS];
        size_t nadd;
        const char *removes[SQL_MAX_LINKS];
        size_t nremove;
        int replace; /* the link attribute came as a whole list: the links become it */
        const char *list[SQL_MAX_LINKS];
        size_t nlist;
        const char *password; /* the new password (borrowed from the order; never shown) */
        size_t secret;        /* its column's index in col (valid when password is set) */
        char hashed[SQL_PASSWORD_HASH_MAX]; /* the value that column gets */
};

static const char *change_word(enum ca_backend_change c)
{
        switch (c) {
        case CA_BACKEND_CHANGE_ADDED:
                return "Added";
        case CA_BACKEND_CHANGE_MODIFIED:
                return "Modified";
        case CA_BACKEND_CHANGE_DELETED:
                return "Deleted";
        default:
                return "unknown";
        }
}

static const struct sql_column *column_for(const struct sql_mapping *m, const char *change_key)
{
        for (size_t i = 0; i < m->column_count; i++)
                if (strcmp(m->columns[i].change_key, change_key) == 0)
                        return &m->columns[i];
        return NULL;
}

/* The values of a link key (a list, or one string). Returns 0, or -1 with why. */
static int link_values(const struct ca_host *host, const struct ca_backend_order *o,
                       const char *key, const char **out, size_t *n, char *why, size_t whylen)
{
        enum ca_backend_value kind = host->change_kind(o, key);
        *n = 0;
        if (kind == CA_BACKEND_VALUE_NULL || kind == CA_BACKEND_VALUE_ABSENT)
                return 0;
        if (kind == CA_BACKEND_VALUE_STRING) {
                out[(*n)++] = host->change_string(o, key);
                return 0;
        }
        size_t count = host->change_list_count(o, key);
        if (count > SQL_MAX_LINKS) {
                snprintf(why, whylen, "Changes key '%s' holds %zu values, more than %d", key, count,
                         SQL_MAX_LINKS);
                return -1;
        }
        for (size_t i = 0; i < count; i++) {
                const char *v = host->change_list_item(o, key, i);
                if (!v) {
                        snprintf(why, whylen, "Changes key '%s' holds a value that is not a string",
                                 key);
                        return -1;
                }
                out[(*n)++] = v;
        }
        return 0;
}

static int has_suffix(const char *s, const char *suffix, size_t *base_len)
{
        size_t ls = strlen(s), lx = strlen(suffix);
        if (ls <= lx || strcmp(s + ls - lx, suffix) != 0)
                return 0;
        *base_len = ls - lx;
        return 1;
}

/* Reads the order against the mapping. Returns 0, or -1 with why (the order cannot be
 * applied as it is: it will be answered Errored). */
static int work_build(const struct ca_host *host, const struct ca_backend_order *o,
                      const struct sql_mapping *m, struct sql_work *w, char *why, size_t whylen)
{
        struct sbuf unmapped = {0};
        int ret = -1;
        const char *ma = m->membership_attribute;
        size_t malen = strlen(ma);

        w->change = host->order_change(o);
        if (w->change == CA_BACKEND_CHANGE_UNKNOWN) {
                snprintf(why, whylen, "unknown ChangeType: expected Added, Modified or Deleted");
                return -1;
        }

        const char *in_changes = host->change_string(o, m->key_change);
        const char *in_resource = host->resource_string(o, m->key_change);
        if (host->change_kind(o, m->key_change) == CA_BACKEND_VALUE_LIST ||
            host->change_kind(o, m->key_change) == CA_BACKEND_VALUE_NULL) {
                snprintf(why, whylen,
                         "Changes key '%s' fills the key column %s and must be one string",
                         m->key_change, m->key_column);
                return -1;
        }
        /* Added names the new row by its Changes; Modified and Deleted find the existing row
         * by its current values (Resource), and a different key in Changes renames it. */
        if (w->change == CA_BACKEND_CHANGE_ADDED) {
                w->key = in_changes ? in_changes : in_resource;
        } else {
                w->key = in_resource ? in_resource : in_changes;
                if (w->change == CA_BACKEND_CHANGE_MODIFIED && in_resource && in_changes &&
                    strcmp(in_resource, in_changes) != 0)
                        w->new_key = in_changes;
        }
        if (!w->key || !*w->key) {
                snprintf(why, whylen,
                         "the order has no key: neither Changes nor Resource holds '%s'",
                         m->key_change);
                return -1;
        }

        size_t count = host->change_count(o);
        for (size_t i = 0; i < count; i++) {
                const char *k = host->change_key(o, i);
                size_t base;
                if (!k || strcmp(k, m->key_change) == 0)
                        continue;
                if (m->password_change && strcmp(k, m->password_change) == 0) {
                        if (host->change_kind(o, k) == CA_BACKEND_VALUE_NULL)
                                continue;
                        const char *pw = host->change_string(o, k);
                        if (!pw || !*pw) {
                                snprintf(why, whylen,
                                         "Changes key '%s': the password must be a non-empty "
                                         "string",
                                         k);
                                goto out;
                        }
                        if (sql_password_hash(m->password_hash, pw, w->hashed, sizeof(w->hashed)) <
                            0) {
                                snprintf(why, whylen,
                                         "Changes key '%s': hashing the password failed", k);
                                goto out;
                        }
                        w->password = pw;
                        w->secret = w->ncol;
                        w->col[w->ncol] = m->password_column;
                        w->val[w->ncol++] = w->hashed;
                        continue;
                }
                if (m->enabled_change && strcmp(k, m->enabled_change) == 0) {
                        const char *v = host->change_string(o, k);
                        int on = v && (!strcmp(v, "true") || !strcmp(v, "1"));
                        if (!on && !(v && (!strcmp(v, "false") || !strcmp(v, "0")))) {
                                snprintf(why, whylen,
                                         "Changes key '%s': expected \"true\" or "
                                         "\"false\"",
                                         k);
                                goto out;
                        }
                        w->col[w->ncol] = m->enabled_column;
                        w->val[w->ncol++] = on ? m->enabled_true : m->enabled_false;
                        continue;
                }
                const struct sql_column *c = column_for(m, k);
                if (c) {
                        if (strcmp(c->column, m->key_column) == 0)
                                continue;
                        enum ca_backend_value kind = host->change_kind(o, k);
                        if (kind == CA_BACKEND_VALUE_LIST) {
                                snprintf(
                                    why, whylen,
                                    "Changes key '%s' is a list, but column %s holds one value", k,
                                    c->column);
                                goto out;
                        }
                        if (kind != CA_BACKEND_VALUE_STRING && kind != CA_BACKEND_VALUE_NULL) {
                                snprintf(why, whylen, "Changes key '%s' is not a string or null",
                                         k);
                                goto out;
                        }
                        w->col[w->ncol] = c->column;
                        w->val[w->ncol] =
                            kind == CA_BACKEND_VALUE_NULL ? NULL : host->change_string(o, k);
                        w->ncol++;
                        continue;
                }
                int is_add = has_suffix(k, "_add", &base);
                int is_remove = !is_add && has_suffix(k, "_remove", &base);
                int is_link = (is_add || is_remove) ? (base == malen && strncmp(k, ma, malen) == 0)
                                                    : strcmp(k, ma) == 0;
                if (is_link && !m->membership_table) {
                        snprintf(
                            why, whylen,
                            "Changes key '%s' is a link, but the mapping has no membership_table",
                            k);
                        goto out;
                }
                if (is_link && is_add) {
                        if (link_values(host, o, k, w->adds, &w->nadd, why, whylen) < 0)
                                goto out;
                } else if (is_link && is_remove) {
                        if (link_values(host, o, k, w->removes, &w->nremove, why, whylen) < 0)
                                goto out;
                } else if (is_link) {
                        if (host->change_kind(o, k) == CA_BACKEND_VALUE_ABSENT) {
                                snprintf(why, whylen,
                                         "Changes key '%s' is not a list, a string or null", k);
                                goto out;
                        }
                        w->replace = 1;
                        if (link_values(host, o, k, w->list, &w->nlist, why, whylen) < 0)
                                goto out;
                } else if (!m->ignore_unmapped) {
                        sb_add(&unmapped, "%s%s", unmapped.len ? ", " : "", k);
                }
        }
        if (unmapped.failed) {
                snprintf(why, whylen, "out of memory");
                goto out;
        }
        if (unmapped.len) {
                snprintf(why, whylen,
                         "Changes keys not mapped to a column of %s: %s (map them in columns, or "
                         "set ignore_unmapped = yes)",
                         m->table, unmapped.p);
                goto out;
        }
        ret = 0;
out:
        free(unmapped.p);
        return ret;
}

/* --- statements --- */

struct sql_stmt {
        char *sql;
        const char *params[SQL_MAX_PARAMS];
        size_t n;
};

struct sql_plan {
        struct sql_stmt *s;
        size_t n;
        int failed;
};

static struct sql_stmt *plan_next(struct sql_plan *p)
{
        if (p->failed || p->n == SQL_MAX_STMTS) {
                p->failed = 1;
                return NULL;
        }
        struct sql_stmt *s = &p->s[p->n];
        memset(s, 0, sizeof(*s));
        return s;
}

static void plan_commit(struct sql_plan *p, struct sql_stmt *s, struct sbuf *b)
{
        if (b->failed || !b->p) {
                free(b->p);
                p->failed = 1;
                return;
        }
        s->sql = b->p;
        p->n++;
}

static void plan_clear(struct sql_plan *p)
{
        if (!p->s)
                return;
        for (size_t i = 0; i < p->n; i++)
                free(p->s[i].sql);
        free(p->s);
        p->s = NULL;
        p->n = 0;
}

/* The row's key, then for each mapped column '1' when it holds the order's value as the
 * database compares them (under the column's type: "007" and 7 in an INTEGER column are
 * the same value), else '0': comparing text would call a row that an order wrote
 * different from that order, and a repeated Added would be Errored. */
static void stmt_compare_row(struct sql_stmt *s, struct sbuf *b, const char *ph,
                             const struct sql_mapping *m, const struct sql_work *w)
{
        sb_add(b, "SELECT \"%s\"", m->key_column);
        for (size_t i = 0; i < w->ncol; i++) {
                /* A fresh salt makes a new hash unlike any stored one: the stored hash is
                 * read (NULLIF gives the parameter its type and never matches) and
                 * row_differs checks the password against it. */
                if (w->password && i == w->secret)
                        sb_add(b, ", NULLIF(\"%s\", %s%zu)", w->col[i], ph, i + 2);
                else
                        sb_add(
                            b,
                            ", CASE WHEN \"%s\" IS NOT DISTINCT FROM %s%zu THEN '1' ELSE '0' END",
                            w->col[i], ph, i + 2);
        }
        sb_add(b, " FROM \"%s\" WHERE \"%s\" = %s1", m->table, m->key_column, ph);
        s->params[s->n++] = w->key;
        for (size_t i = 0; i < w->ncol; i++)
                s->params[s->n++] = w->val[i];
}

/* optimistic: ON CONFLICT DO NOTHING, for a key known to be unique: no row inserted then
 * means the key is taken (or another unique column is, which the plain INSERT run after
 * the read reports in the database's own words). */
static void add_insert_row(struct sql_plan *p, const char *ph, const struct sql_mapping *m,
                           const struct sql_work *w, int optimistic)
{
        struct sql_stmt *s = plan_next(p);
        struct sbuf b = {0};
        if (!s)
                return;
        sb_add(&b, "INSERT INTO \"%s\" (\"%s\"", m->table, m->key_column);
        for (size_t i = 0; i < w->ncol; i++)
                sb_add(&b, ", \"%s\"", w->col[i]);
        sb_add(&b, ") VALUES (%s1", ph);
        s->params[s->n++] = w->key;
        for (size_t i = 0; i < w->ncol; i++) {
                sb_add(&b, ", %s%zu", ph, s->n + 1);
                s->params[s->n++] = w->val[i];
        }
        sb_add(&b, optimistic ? ") ON CONFLICT DO NOTHING" : ")");
        plan_commit(p, s, &b);
}

static void add_update_row(struct sql_plan *p, const char *ph, const struct sql_mapping *m,
                           const struct sql_work *w)
{
        if (w->ncol == 0 && !w->new_key)
                return;
        struct sql_stmt *s = plan_next(p);
        struct sbuf b = {0};
        if (!s)
                return;
        s->params[s->n++] = w->key;
        sb_add(&b, "UPDATE \"%s\" SET ", m->table);
        for (size_t i = 0; i < w->ncol; i++) {
                sb_add(&b, "%s\"%s\" = %s%zu", i ? ", " : "", w->col[i], ph, s->n + 1);
                s->params[s->n++] = w->val[i];
        }
        if (w->new_key) {
                sb_add(&b, "%s\"%s\" = %s%zu", w->ncol ? ", " : "", m->key_column, ph, s->n + 1);
                s->params[s->n++] = w->new_key;
        }
        sb_add(&b, " WHERE \"%s\" = %s1", m->key_column, ph);
        plan_commit(p, s, &b);

        if (w->new_key && m->membership_table) {
                s = plan_next(p);
                if (!s)
                        return;
                struct sbuf b2 = {0};
                sb_add(&b2, "UPDATE \"%s\" SET \"%s\" = %s2 WHERE \"%s\" = %s1",
                       m->membership_table, m->membership_key_column, ph, m->membership_key_column,
                       ph);
                s->params[s->n++] = w->key;
                s->params[s->n++] = w->new_key;
                plan_commit(p, s, &b2);
        }
}

static void add_link_insert(struct sql_plan *p, const char *ph, const struct sql_mapping *m,
                            const char *key, const char *value)
{
        struct sql_stmt *s = plan_next(p);
        struct sbuf b = {0};
        if (!s)
                return;
        /* NOT EXISTS keeps it idempotent on a table without a unique constraint; ON CONFLICT
         * covers the race with a concurrent writer on a table that has one. */
        sb_add(&b,
               "INSERT INTO \"%s\" (\"%s\", \"%s\") SELECT %s1, %s2 WHERE NOT EXISTS (SELECT 1 "
               "FROM \"%s\" WHERE \"%s\" = %s1 AND \"%s\" = %s2) ON CONFLICT DO NOTHING",
               m->membership_table, m->membership_key_column, m->membership_value_column, ph, ph,
               m->membership_table, m->membership_key_column, ph, m->membership_value_column, ph);
        s->params[s->n++] = key;
        s->params[s->n++] = value;
        plan_commit(p, s, &b);
}

static void add_link_delete(struct sql_plan *p, const char *ph, const struct sql_mapping *m,
                            const char *key, const char *value)
{
        struct sql_stmt *s = plan_next(p);
        struct sbuf b = {0};
        if (!s)
                return;
        sb_add(&b, "DELETE FROM \"%s\" WHERE \"%s\" = %s1", m->membership_table,
               m->membership_key_column, ph);
        s->params[s->n++] = key;
        if (value) {
                sb_add(&b, " AND \"%s\" = %s2", m->membership_value_column, ph);
                s->params[s->n++] = value;
        }
        plan_commit(p, s, &b);
}

static void add_links(struct sql_plan *p, const char *ph, const struct sql_mapping *m,
                      const struct sql_work *w, const char *key)
{
        if (!m->membership_table)
                return;
        if (w->replace) {
                add_link_delete(p, ph, m, key, NULL);
                for (size_t i = 0; i < w->nlist; i++)
                        add_link_insert(p, ph, m, key, w->list[i]);
        }
        for (size_t i = 0; i < w->nremove; i++)
                add_link_delete(p, ph, m, key, w->removes[i]);
        for (size_t i = 0; i < w->nadd; i++)
                add_link_insert(p, ph, m, key, w->adds[i]);
}

/* The writes of an order. insert_row: for Added, whether the row must still be
 * inserted (execute leaves it out when an identical row is already there), and
 * INSERT_OPTIMISTIC to insert it unless its key is taken. */
#define INSERT_OPTIMISTIC 2

static int plan_build(struct sql_plan *p, const char *ph, const struct sql_mapping *m,
                      const struct sql_work *w, int insert_row)
{
        memset(p, 0, sizeof(*p));
        size_t links = w->nadd + w->nremove + w->nlist + 1;
        p->s = calloc(links + 4 < SQL_MAX_STMTS ? links + 4 : SQL_MAX_STMTS, sizeof(*p->s));
        if (!p->s)
                return -1;
        switch (w->change) {
        case CA_BACKEND_CHANGE_ADDED:
                if (insert_row)
                        add_insert_row(p, ph, m, w, insert_row == INSERT_OPTIMISTIC);
                add_links(p, ph, m, w, w->key);
                break;
        case CA_BACKEND_CHANGE_MODIFIED:
                add_update_row(p, ph, m, w);
                add_links(p, ph, m, w, w->new_key ? w->new_key : w->key);
                break;
        case CA_BACKEND_CHANGE_DELETED: {
                if (m->membership_table)
                        add_link_delete(p, ph, m, w->key, NULL);
                struct sql_stmt *s = plan_next(p);
                struct sbuf b = {0};
                if (s) {
                        sb_add(&b, "DELETE FROM \"%s\" WHERE \"%s\" = %s1", m->table, m->key_column,
                               ph);
                        s->params[s->n++] = w->key;
                        plan_commit(p, s, &b);
                }
                break;
        }
        default:
                break;
        }
        return p->failed ? -1 : 0;
}

/* --- running --- */

static void free_cols(char **cols, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(cols[i]);
                cols[i] = NULL;
        }
}

/* Reads the row: its key, then for each mapped column '1' when it holds the order's
 * value (stmt_compare_row). Returns 1 found (cols filled), 0 absent, SQL_ERROR. */
static int row_read(const struct sql_driver *drv, struct sql_conn *conn,
                    const struct sql_mapping *m, const struct sql_work *w, char **cols)
{
        struct sql_stmt s = {0};
        struct sbuf b = {0};
        stmt_compare_row(&s, &b, drv->placeholder, m, w);
        if (b.failed) {
                free(b.p);
                return SQL_ERROR;
        }
        int rc = drv->query_row(conn, b.p, s.params, s.n, cols, w->ncol + 1);
        free(b.p);
        return rc;
}

/* Does the row hold the values of the order (cols as read by row_read)? Names the first
 * column that differs. */
static const char *row_differs(const struct sql_work *w, char **cols)
{
        for (size_t i = 0; i < w->ncol; i++) {
                if (w->password && i == w->secret) {
                        if (!sql_password_matches(w->password, cols[i + 1]))
                                return w->col[i];
                        continue;
                }
                if (!cols[i + 1] || strcmp(cols[i + 1], "1") != 0)
                        return w->col[i];
        }
        return NULL;
}

/* A failed statement: the database could not be reached (retry later: nothing was
 * applied, the transaction is rolled back) or refused it (final: Errored with its own
 * words). */
static int db_failure(const struct ca_host *host, const struct sql_driver *drv,
                      struct sql_conn *conn, const struct sql_mapping *m, const struct sql_work *w,
                      struct ca_backend_result *r, struct ca_backend_error *err)
{
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", drv->error(conn));
        int unavailable = drv->is_unavailable(conn);
        drv->rollback(conn);
        if (unavailable)
                return host->error(err, CA_BACKEND_EUNAVAILABLE, NULL,
                                   "%s %s = '%s': database unavailable: %s", m->table,
                                   m->key_column, w->key, msg);
        host->result_set(r, CA_BACKEND_ERRORED, NULL, "%s %s %s = '%s': %s", change_word(w->change),
                         m->table, m->key_column, w->key, msg);
        return CA_BACKEND_OK;
}

/* Reads the order; *out is NULL (and why says so) when the order cannot be applied. */
static int work_new(const struct ca_host *host, const struct ca_backend_order *order,
                    const struct sql_mapping *m, struct sql_work **out, char *why, size_t whylen,
                    struct ca_backend_error *err)
{
        *out = calloc(1, sizeof(**out));
        if (!*out)
                return host->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory");
        if (work_build(host, order, m, *out, why, whylen) < 0) {
                free(*out);
                *out = NULL;
        }
        return CA_BACKEND_OK;
}

int sql_order_execute(const struct ca_host *host, const struct sql_driver *drv,
                      struct sql_conn *conn, const struct ca_backend_order *order,
                      const struct sql_mapping *m, struct ca_backend_result *r,
                      struct ca_backend_error *err)
{
        struct sql_work *w = NULL;
        struct sql_plan plan = {0};
        char *cols[SQL_MAX_COLUMNS + 1] = {0};
        const char *done = "";
        char why[768];
        int rc = work_new(host, order, m, &w, why, sizeof(why), err);
        if (rc != CA_BACKEND_OK)
                return rc;
        if (!w) {
                host->result_set(r, CA_BACKEND_ERRORED, NULL, "%s", why);
                return CA_BACKEND_OK;
        }

        /* Write first where the write's own answer settles what a read would: an UPDATE
         * that touched no row means there is none, an INSERT ... ON CONFLICT DO NOTHING on
         * a unique key that inserted none means the row is there. Only then is the row
         * read, so the outcomes are those of reading first (backends.md, "sql"). */
        int optimistic = 0;
        if (w->change == CA_BACKEND_CHANGE_ADDED) {
                int u = drv->key_unique(conn, m->table, m->key_column);
                if (u < 0) {
                        rc = db_failure(host, drv, conn, m, w, r, err);
                        goto out;
                }
                optimistic = u;
        } else if (w->change == CA_BACKEND_CHANGE_MODIFIED) {
                optimistic = w->ncol > 0 || w->new_key; /* else no UPDATE to ask */
        }
        if (drv->begin(conn) != SQL_OK) {
                rc = db_failure(host, drv, conn, m, w, r, err);
                goto out;
        }

        int insert_row = optimistic ? INSERT_OPTIMISTIC : 1;
        int found = SQL_OK;
        size_t first = 0; /* plan statements already run */
        int wrote = 0;    /* the first write settled it: inserted, or updated a row */
        long changed = 0, total = 0;
        if (optimistic) {
                if (plan_build(&plan, drv->placeholder, m, w, insert_row) < 0) {
                        drv->rollback(conn);
                        rc = host->error(err, CA_BACKEND_EINTERNAL, NULL,
                                         "out of memory building SQL");
                        goto out;
                }
                if (drv->exec(conn, plan.s[0].sql, plan.s[0].params, plan.s[0].n, &changed) !=
                    SQL_OK) {
                        rc = db_failure(host, drv, conn, m, w, r, err);
                        goto out;
                }
                total += changed;
                first = 1;
                wrote = changed > 0;
                if (!wrote) {
                        found = row_read(drv, conn, m, w, cols);
                        if (found < 0) {
                                rc = db_failure(host, drv, conn, m, w, r, err);
                                goto out;
                        }
                }
        } else if (w->change != CA_BACKEND_CHANGE_DELETED) {
                found = row_read(drv, conn, m, w, cols);
                if (found < 0) {
                        rc = db_failure(host, drv, conn, m, w, r, err);
                        goto out;
                }
        }
        if (!wrote && w->change == CA_BACKEND_CHANGE_ADDED && found == 1) {
                /* Added means "create this row". An identical row is that order already in
                 * effect (Executed); a row with other values is not, and overwriting it would
                 * be a Modified the server never asked for: Errored, for a person to look at. */
                const char *col = row_differs(w, cols);
                if (col) {
                        drv->rollback(conn);
                        host->result_set(r, CA_BACKEND_ERRORED, NULL,
                                         "Added %s %s = '%s': row exists with different values "
                                         "(column %s differs)",
                                         m->table, m->key_column, w->key, col);
                        goto out;
                }
                insert_row = 0;
                done = " (row already there with these values)";
        }
        if (!wrote && w->change == CA_BACKEND_CHANGE_MODIFIED && found == 0) {
                drv->rollback(conn);
                host->result_set(r, CA_BACKEND_ERRORED, NULL, "Modified %s %s = '%s': no such row",
                                 m->table, m->key_column, w->key);
                goto out;
        }
        if (!wrote && optimistic && w->change == CA_BACKEND_CHANGE_ADDED && found == 0) {
                /* Nothing inserted, yet no row has the key: another unique column is taken.
                 * The plain INSERT fails with the database's own words (or, the other row
                 * gone meanwhile, succeeds). */
                plan_clear(&plan);
                insert_row = 1;
                first = 0;
        }
        if (!plan.s && plan_build(&plan, drv->placeholder, m, w, insert_row) < 0) {
                drv->rollback(conn);
                rc = host->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory building SQL");
                goto out;
        }
        for (size_t i = first; i < plan.n; i++) {
                if (drv->exec(conn, plan.s[i].sql, plan.s[i].params, plan.s[i].n, &changed) !=
                    SQL_OK) {
                        rc = db_failure(host, drv, conn, m, w, r, err);
                        goto out;
                }
                total += changed;
        }
        int c = drv->commit(conn);
        if (c == SQL_INDOUBT) {
                rc = host->error(err, CA_BACKEND_EINDOUBT, NULL,
                                 "%s %s = '%s': the commit's outcome is unknown: %s", m->table,
                                 m->key_column, w->key, drv->error(conn));
                goto out;
        }
        if (c != SQL_OK) {
                rc = db_failure(host, drv, conn, m, w, r, err);
                goto out;
        }
        const char *ident = w->new_key ? w->new_key : w->key;
        if (w->change == CA_BACKEND_CHANGE_DELETED && total == 0)
                done = " (already gone)";
        host->result_set(r, CA_BACKEND_EXECUTED, ident, "%s %s %s = '%s'%s", change_word(w->change),
                         m->table, m->key_column, ident, done);
out:
        free_cols(cols, SQL_MAX_COLUMNS + 1);
        plan_clear(&plan);
        free(w);
        return rc;
}

/* Is link (key, value) present? 1, 0 or SQL_ERROR. */
static int link_present(const struct sql_driver *drv, struct sql_conn *conn,
                        const struct sql_mapping *m, const char *key, const char *value)
{
        char q[512];
        const char *ph = drv->placeholder;
        snprintf(q, sizeof(q), "SELECT 1 FROM \"%s\" WHERE \"%s\" = %s1 AND \"%s\" = %s2",
                 m->membership_table, m->membership_key_column, ph, m->membership_value_column, ph);
        const char *params[2] = {key, value};
        char *col = NULL;
        int rc = drv->query_row(conn, q, params, 2, &col, 1);
        free(col);
        return rc;
}

static int links_match(const struct sql_driver *drv, struct sql_conn *conn,
                       const struct sql_mapping *m, const struct sql_work *w, const char *key)
{
        if (!m->membership_table)
                return 1;
        for (size_t i = 0; i < w->nadd; i++) {
                int rc = link_present(drv, conn, m, key, w->adds[i]);
                if (rc != 1)
                        return rc;
        }
        for (size_t i = 0; i < w->nremove; i++) {
                int rc = link_present(drv, conn, m, key, w->removes[i]);
                if (rc != 0)
                        return rc < 0 ? rc : 0;
        }
        if (w->replace) {
                for (size_t i = 0; i < w->nlist; i++) {
                        int rc = link_present(drv, conn, m, key, w->list[i]);
                        if (rc != 1)
                                return rc;
                }
                char q[512];
                const char *ph = drv->placeholder;
                snprintf(
                    q, sizeof(q), "SELECT COUNT(DISTINCT \"%s\") FROM \"%s\" WHERE \"%s\" = %s1",
                    m->membership_value_column, m->membership_table, m->membership_key_column, ph);
                char *count = NULL;
                const char *params[1] = {key};
                int rc = drv->query_row(conn, q, params, 1, &count, 1);
                if (rc < 0)
                        return rc;
                /* Duplicates in the list count once in the table. */
                size_t distinct = 0;
                for (size_t i = 0; i < w->nlist; i++) {
                        int dup = 0;
                        for (size_t j = 0; j < i && !dup; j++)
                                dup = strcmp(w->list[i], w->list[j]) == 0;
                        distinct += !dup;
                }
                int ok = count && strtoul(count, NULL, 10) == distinct;
                free(count);
                return ok;
        }
        return 1;
}

int sql_order_probe(const struct ca_host *host, const struct sql_driver *drv, struct sql_conn *conn,
                    const struct ca_backend_order *order, const struct sql_mapping *m,
                    enum ca_backend_probe *answer, struct ca_backend_result *r,
                    struct ca_backend_error *err)
{
        struct sql_work *w = NULL;
        char *cols[SQL_MAX_COLUMNS + 1] = {0};
        char why[768];
        int rc = work_new(host, order, m, &w, why, sizeof(why), err);
        if (rc != CA_BACKEND_OK)
                return rc;
        if (!w) {
                /* An order that cannot be applied was never applied. */
                *answer = CA_BACKEND_PROBE_NOT_APPLIED;
                return CA_BACKEND_OK;
        }
        const char *ident = w->key;
        if (w->change == CA_BACKEND_CHANGE_MODIFIED && w->new_key) {
                /* After a rename the row answers to its new key. */
                ident = w->new_key;
        }
        const char *saved_key = w->key;
        w->key = ident;
        int found = row_read(drv, conn, m, w, cols);
        w->key = saved_key;
        if (found < 0) {
                int code =
                    drv->is_unavailable(conn) ? CA_BACKEND_EUNAVAILABLE : CA_BACKEND_EINTERNAL;
                rc = host->error(err, code, NULL, "probe %s %s = '%s': %s", m->table, m->key_column,
                                 w->key, drv->error(conn));
                goto out;
        }
        int applied;
        if (w->change == CA_BACKEND_CHANGE_DELETED) {
                applied = found == 0;
        } else if (found == 0 || row_differs(w, cols)) {
                applied = 0;
        } else {
                int l = links_match(drv, conn, m, w, ident);
                if (l < 0) {
                        int code = drv->is_unavailable(conn) ? CA_BACKEND_EUNAVAILABLE
                                                             : CA_BACKEND_EINTERNAL;
                        rc = host->error(err, code, NULL, "probe %s links of '%s': %s",
                                         m->membership_table, ident, drv->error(conn));
                        goto out;
                }
                applied = l == 1;
        }
        *answer = applied ? CA_BACKEND_PROBE_APPLIED : CA_BACKEND_PROBE_NOT_APPLIED;
        if (applied)
                host->result_set(r, CA_BACKEND_EXECUTED, ident, "%s %s %s = '%s' (found in effect)",
                                 change_word(w->change), m->table, m->key_column, ident);
out:
        free_cols(cols, SQL_MAX_COLUMNS + 1);
        free(w);
        return rc;
}

static void describe_stmt(struct sbuf *b, const char *sql, const char *const *params, size_t n,
                          const char *ph, const char *secret)
{
        sb_add(b, "%s;", sql);
        for (size_t i = 0; i < n; i++) {
                sb_add(b, "%s%s%zu=", i ? ", " : " -- ", ph, i + 1);
                if (!params[i]) {
                        sb_add(b, "NULL");
                        continue;
                }
                if (params[i] == secret) {
                        sb_add(b, "<secret>");
                        continue;
                }
                sb_add(b, "'");
                for (const char *c = params[i]; *c; c++) {
                        if (*c == '\'')
                                sb_add(b, "''");
                        else if (*c == '\n')
                                sb_add(b, "\\n");
                        else
                                sb_add(b, "%c", *c);
                }
                sb_add(b, "'");
        }
        sb_add(b, "\n");
}

int sql_order_describe(const struct ca_host *host, const struct sql_driver *drv,
                       const struct ca_backend_order *order, const struct sql_mapping *m,
                       struct ca_backend_result *r, struct ca_backend_error *err)
{
        struct sql_work *w = NULL;
        struct sql_plan plan = {0};
        struct sbuf b = {0};
        const char *ph = drv->placeholder;
        char why[768];
        int rc = work_new(host, order, m, &w, why, sizeof(why), err);
        if (rc != CA_BACKEND_OK)
                return rc;
        if (!w) {
                host->result_set(r, CA_BACKEND_ERRORED, NULL, "would be Errored: %s", why);
                return CA_BACKEND_OK;
        }
        if (plan_build(&plan, ph, m, w, 1) < 0) {
                rc = host->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory building SQL");
                goto out;
        }
        sb_add(&b, "BEGIN;\n");
        if (w->change != CA_BACKEND_CHANGE_DELETED) {
                struct sql_stmt s = {0};
                struct sbuf q = {0};
                stmt_compare_row(&s, &q, ph, m, w);
                if (!q.failed) {
                        describe_stmt(&b, q.p, s.params, s.n, ph, w->password ? w->hashed : NULL);
                        sb_add(&b, "-- %s\n",
                               w->change == CA_BACKEND_CHANGE_ADDED
                                   ? "the same row already there: no INSERT; other values: Errored"
                                   : "no row: Errored");
                }
                free(q.p);
        }
        for (size_t i = 0; i < plan.n; i++)
                describe_stmt(&b, plan.s[i].sql, plan.s[i].params, plan.s[i].n, ph,
                              w->password ? w->hashed : NULL);
        sb_add(&b, "COMMIT;");
        if (b.failed) {
                rc = host->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory describing SQL");
                goto out;
        }
        host->result_set(r, CA_BACKEND_EXECUTED, w->new_key ? w->new_key : w->key, "%s", b.p);
out:
        free(b.p);
        plan_clear(&plan);
        free(w);
        return rc;
}
