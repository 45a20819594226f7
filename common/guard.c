/* SPDX-License-Identifier: Apache-2.0 */
/* guard: parsing and pure checks of a connector's guardrail rules (guard.h). */
#include "guard.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const rule_keys[GUARD_RULES] = {
    [GUARD_RULE_PROTECT] = "protect",
    [GUARD_RULE_PROTECT_SUBTREE] = "protect_subtree",
    [GUARD_RULE_ALLOW_SUBTREE] = "allow_subtree",
    [GUARD_RULE_PROTECT_TABLE] = "protect_table",
    [GUARD_RULE_ALLOW_TABLE] = "allow_table",
    [GUARD_RULE_PROTECT_KEY] = "protect_key",
    [GUARD_RULE_MAX_ADDED] = "max_added",
    [GUARD_RULE_MAX_MODIFIED] = "max_modified",
    [GUARD_RULE_MAX_DELETED] = "max_deleted",
    [GUARD_RULE_MAX_DISABLED] = "max_disabled",
    [GUARD_RULE_MAX_GROUP_CHANGES] = "max_group_changes",
};

const char *guard_rule_key(enum guard_rule r)
{
        return r >= 0 && r < GUARD_RULES ? rule_keys[r] : "?";
}

/* The configured text of each rule's key. */
static const char *rule_text(const struct ca_config_connector *c, enum guard_rule r)
{
        switch (r) {
        case GUARD_RULE_PROTECT:
                return c->protect;
        case GUARD_RULE_PROTECT_SUBTREE:
                return c->protect_subtree;
        case GUARD_RULE_ALLOW_SUBTREE:
                return c->allow_subtree;
        case GUARD_RULE_PROTECT_TABLE:
                return c->protect_table;
        case GUARD_RULE_ALLOW_TABLE:
                return c->allow_table;
        case GUARD_RULE_PROTECT_KEY:
                return c->protect_key;
        case GUARD_RULE_MAX_ADDED:
                return c->max_added;
        case GUARD_RULE_MAX_MODIFIED:
                return c->max_modified;
        case GUARD_RULE_MAX_DELETED:
                return c->max_deleted;
        case GUARD_RULE_MAX_DISABLED:
                return c->max_disabled;
        case GUARD_RULE_MAX_GROUP_CHANGES:
                return c->max_group_changes;
        case GUARD_RULES:
                break;
        }
        return NULL;
}

/* ---- DNs ---- */

static int hexval(int c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        c = tolower(c);
        return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int put(char *out, size_t len, size_t *o, char c)
{
        if (*o + 1 >= len)
                return -ENAMETOOLONG;
        out[(*o)++] = c;
        return 0;
}

static int special(char c)
{
        return c == ',' || c == '+' || c == '"' || c == '\\' || c == '<' || c == '>' || c == ';' ||
               c == '=';
}

/* One attribute value, decoded and lower-cased, written escaped so that the canonical
 * form splits only at real separators. *p ends at the separator or the end. */
static int norm_value(const char **p, char *out, size_t len, size_t *o)
{
        char val[GUARD_TEXT_MAX];
        size_t n = 0, keep = 0; /* keep: length up to the last escaped or non-space char */
        const char *s = *p;
        while (*s == ' ')
                s++;
        while (*s && *s != ',' && *s != '+') {
                char c = *s++;
                int escaped = 0;
                if (c == '\\') {
                        if (!*s)
                                return -EINVAL;
                        int h = hexval((unsigned char)s[0]),
                            l = s[1] ? hexval((unsigned char)s[1]) : -1;
                        if (h >= 0 && l >= 0) {
                                c = (char)(h * 16 + l);
                                s += 2;
                        } else if (special(*s) || *s == ' ' || *s == '#') {
                                c = *s++;
                        } else {
                                return -EINVAL;
                        }
                        escaped = 1;
                }
                if (n + 1 >= sizeof(val))
                        return -ENAMETOOLONG;
                val[n++] = (char)tolower((unsigned char)c);
                if (escaped || c != ' ')
                        keep = n;
        }
        *p = s;
        n = keep;
        for (size_t i = 0; i < n; i++) {
                char c = val[i];
                int rc = 0;
                if (special(c) || (c == ' ' && (i == 0 || i + 1 == n)) || (c == '#' && i == 0))
                        rc = put(out, len, o, '\\');
                if (rc < 0 || (rc = put(out, len, o, c)) < 0)
                        return rc;
        }
        return 0;
}

int guard_dn_normalize(const char *dn, char *out, size_t len)
{
        size_t o = 0;
        const char *p = dn;
        if (!dn || !len)
                return -EINVAL;
        while (*p == ' ')
                p++;
        if (!*p)
                return -EINVAL; /* the root DSE is no target */
        for (;;) {
                while (*p == ' ')
                        p++;
                const char *t = p;
                while (*p && *p != '=' && *p != ',' && *p != '+')
                        p++;
                const char *te = p;
                while (te > t && te[-1] == ' ')
                        te--;
                if (*p != '=' || te == t)
                        return -EINVAL;
                for (const char *q = t; q < te; q++) {
                        if (!isalnum((unsigned char)*q) && *q != '-' && *q != '.')
                                return -EINVAL;
                        int rc = put(out, len, &o, (char)tolower((unsigned char)*q));
                        if (rc < 0)
                                return rc;
                }
                int rc = put(out, len, &o, '=');
                p++;
                if (rc < 0 || (rc = norm_value(&p, out, len, &o)) < 0)
                        return rc;
                if (!*p)
                        break;
                if ((rc = put(out, len, &o, *p)) < 0) /* ',' or '+' */
                        return rc;
                p++;
        }
        out[o] = '\0';
        return 0;
}

int guard_dn_compose(const char *attr, const char *value, const char *base_dn, char *out,
                     size_t len)
{
        size_t o = 0, n = strlen(value);
        int rc = 0;
        if (!*attr || !n)
                return -EINVAL;
        for (const char *a = attr; *a && rc == 0; a++)
                rc = put(out, len, &o, *a);
        if (rc == 0)
                rc = put(out, len, &o, '=');
        for (size_t i = 0; i < n && rc == 0; i++) {
                char c = value[i];
                if (special(c) || (c == ' ' && (i == 0 || i + 1 == n)) || (c == '#' && i == 0))
                        rc = put(out, len, &o, '\\');
                if (rc == 0)
                        rc = put(out, len, &o, c);
        }
        if (rc == 0 && base_dn && *base_dn) {
                rc = put(out, len, &o, ',');
                for (const char *b = base_dn; *b && rc == 0; b++)
                        rc = put(out, len, &o, *b);
        }
        if (rc < 0)
                return rc;
        out[o] = '\0';
        return 0;
}

int guard_dn_in_subtree(const char *norm, const char *base)
{
        size_t n = strlen(norm), b = strlen(base);
        if (n == b)
                return strcmp(norm, base) == 0;
        if (n < b + 2 || strcmp(norm + n - b, base) != 0 || norm[n - b - 1] != ',')
                return 0;
        /* The ',' must be a separator: not escaped by an odd run of backslashes. */
        size_t bs = 0;
        for (size_t i = n - b - 1; i > 0 && norm[i - 1] == '\\'; i--)
                bs++;
        return bs % 2 == 0;
}

int guard_glob_match(const char *pat, const char *text)
{
        const char *star = NULL, *resume = NULL;
        while (*text) {
                if (*pat == '*') {
                        star = pat++;
                        resume = text;
                } else if (*pat == *text) {
                        pat++;
                        text++;
                } else if (star) {
                        pat = star + 1;
                        text = ++resume;
                } else {
                        return 0;
                }
        }
        while (*pat == '*')
                pat++;
        return *pat == '\0';
}

/* ---- parsing ---- */

struct diag {
        char *buf;
        size_t len, used;
        int count;
};

static void diag_add(struct diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void diag_add(struct diag *d, const char *fmt, ...)
{
        d->count++;
        if (!d->buf || d->used + 1 >= d->len)
                return;
        if (d->used)
                d->buf[d->used++] = '\n';
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(d->buf + d->used, d->len - d->used, fmt, ap);
        va_end(ap);
        if (n > 0)
                d->used += (size_t)n < d->len - d->used ? (size_t)n : d->len - d->used - 1;
}

static void lower(char *s)
{
        for (; *s; s++)
                *s = (char)tolower((unsigned char)*s);
}

static int item_add(struct guard_list *l, const char *text, size_t n)
{
        struct guard_item *items = realloc(l->items, (l->count + 1) * sizeof(*items));
        if (!items)
                return -ENOMEM;
        l->items = items;
        struct guard_item *it = &items[l->count];
        memset(it, 0, sizeof(*it));
        it->text = strndup(text, n);
        if (!it->text)
                return -ENOMEM;
        l->count++;
        return 0;
}

/* Splits at each ';' not escaped by a backslash; spaces around items are dropped. */
static int split(const char *text, struct guard_list *l)
{
        const char *p = text;
        while (*p) {
                while (*p == ' ' || *p == '\t')
                        p++;
                const char *s = p;
                while (*p && *p != ';') {
                        if (*p == '\\' && p[1])
                                p++;
                        p++;
                }
                const char *e = p;
                while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                        e--;
                if (e > s && item_add(l, s, (size_t)(e - s)) < 0)
                        return -ENOMEM;
                if (*p == ';')
                        p++;
        }
        return 0;
}

static int parse_list(const char *key, enum guard_rule r, const char *text, struct guard_list *l,
                      struct diag *d)
{
        if (split(text, l) < 0)
                return -ENOMEM;
        if (l->count > GUARD_ITEMS_MAX)
                diag_add(d, "%s: %zu items, at most %d", key, l->count, GUARD_ITEMS_MAX);
        int dn = r == GUARD_RULE_PROTECT || r == GUARD_RULE_PROTECT_SUBTREE ||
                 r == GUARD_RULE_ALLOW_SUBTREE;
        int glob_ok =
            r == GUARD_RULE_PROTECT || r == GUARD_RULE_PROTECT_TABLE || r == GUARD_RULE_PROTECT_KEY;
        for (size_t i = 0; i < l->count; i++) {
                struct guard_item *it = &l->items[i];
                if (strlen(it->text) >= GUARD_TEXT_MAX) {
                        diag_add(d, "%s: item %zu is longer than %d characters", key, i + 1,
                                 GUARD_TEXT_MAX - 1);
                        continue;
                }
                it->glob = strchr(it->text, '*') != NULL;
                if (it->glob && !glob_ok) {
                        diag_add(d,
                                 "%s: item %zu (%s): a pattern ('*') is not allowed here, name "
                                 "the subtree or table itself",
                                 key, i + 1, it->text);
                        continue;
                }
                if (dn) {
                        char norm[GUARD_TEXT_MAX];
                        if (guard_dn_normalize(it->text, norm, sizeof(norm)) < 0) {
                                diag_add(d,
                                         "%s: item %zu (%s): not a DN (e.g. "
                                         "CN=Domain Admins,CN=Users,DC=example,DC=com)",
                                         key, i + 1, it->text);
                                continue;
                        }
                        it->norm = strdup(norm);
                } else if (r == GUARD_RULE_PROTECT_KEY && strchr(it->text, ':')) {
                        const char *colon = strchr(it->text, ':');
                        it->table = strndup(it->text, (size_t)(colon - it->text));
                        it->norm = strdup(colon + 1);
                        if (it->table && it->norm && (!*it->table || !*it->norm)) {
                                diag_add(d, "%s: item %zu (%s): expected TABLE:PATTERN or PATTERN",
                                         key, i + 1, it->text);
                                continue;
                        }
                } else {
                        it->norm = strdup(it->text);
                }
                if (!it->norm ||
                    (r == GUARD_RULE_PROTECT_KEY && strchr(it->text, ':') && !it->table))
                        return -ENOMEM;
                lower(it->norm);
                if (it->table)
                        lower(it->table);
        }
        return 0;
}

static void parse_rate(const char *key, const char *text, struct guard_rate *rate, struct diag *d)
{
        const char *slash = strchr(text, '/');
        char count[32];
        uint64_t n = 0, ms = 0;
        size_t cl = slash ? (size_t)(slash - text) : 0;
        if (!slash || cl == 0 || cl >= sizeof(count)) {
                diag_add(d, "%s = %s: expected COUNT/DURATION, e.g. 50/1h", key, text);
                return;
        }
        memcpy(count, text, cl);
        count[cl] = '\0';
        if (config_parse_uint(count, &n) < 0 || n == 0 || n > GUARD_RATE_MAX) {
                diag_add(d, "%s = %s: the count must be a whole number from 1 to %d", key, text,
                         GUARD_RATE_MAX);
                return;
        }
        if (config_parse_duration(slash + 1, &ms) < 0 || ms == 0 || ms > GUARD_WINDOW_MAX) {
                diag_add(d, "%s = %s: the window must be a duration from 1ms to 30d (e.g. 1h)", key,
                         text);
                return;
        }
        rate->count = n;
        rate->window_ms = ms;
        snprintf(rate->text, sizeof(rate->text), "%s", text);
}

int guard_rules_parse(const struct ca_config_connector *cfg, struct guard_rules **out, char *why,
                      size_t len)
{
        *out = NULL;
        if (why && len)
                why[0] = '\0';
        struct guard_rules *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        struct diag d = {why, len, 0, 0};
        for (int i = 0; i < GUARD_RULES; i++) {
                const char *text = rule_text(cfg, (enum guard_rule)i);
                if (!text || !*text)
                        continue;
                if (i <= GUARD_RULE_PROTECT_KEY) {
                        if (parse_list(rule_keys[i], (enum guard_rule)i, text, &r->lists[i], &d) <
                            0) {
                                guard_rules_free(r);
                                return -ENOMEM;
                        }
                } else {
                        parse_rate(rule_keys[i], text, &r->rates[i - GUARD_RULE_MAX_ADDED], &d);
                }
        }
        /* The agent reads DNs from ldap orders and tables from sql ones: a rule that can
         * never match would give a false sense of safety. */
        const char *be = cfg->backend ? cfg->backend : "";
        for (int i = 0; i <= GUARD_RULE_PROTECT_KEY; i++) {
                int dn = i <= GUARD_RULE_ALLOW_SUBTREE;
                if (r->lists[i].count && strcmp(be, dn ? "ldap" : "sql") != 0)
                        diag_add(&d,
                                 "%s: the agent reads %s only from the %s back-end's orders, "
                                 "and this connector's back-end is %s",
                                 rule_keys[i], dn ? "DNs" : "tables and keys", dn ? "ldap" : "sql",
                                 be);
        }
        if (d.count) {
                guard_rules_free(r);
                return -EINVAL;
        }
        *out = r;
        return 0;
}

void guard_rules_free(struct guard_rules *r)
{
        if (!r)
                return;
        for (int i = 0; i <= GUARD_RULE_PROTECT_KEY; i++) {
                for (size_t k = 0; k < r->lists[i].count; k++) {
                        free(r->lists[i].items[k].text);
                        free(r->lists[i].items[k].norm);
                        free(r->lists[i].items[k].table);
                }
                free(r->lists[i].items);
        }
        free(r);
}

int guard_rules_empty(const struct guard_rules *r)
{
        if (!r)
                return 1;
        for (int i = 0; i <= GUARD_RULE_PROTECT_KEY; i++)
                if (r->lists[i].count)
                        return 0;
        for (int k = 0; k < GUARD_KINDS; k++)
                if (r->rates[k].count)
                        return 0;
        return 1;
}

void guard_rules_describe(const struct guard_rules *r, void (*line)(void *ctx, const char *text),
                          void *ctx)
{
        char buf[4096];
        for (int i = 0; r && i <= GUARD_RULE_PROTECT_KEY; i++) {
                const struct guard_list *l = &r->lists[i];
                for (size_t k = 0; k < l->count; k++) {
                        snprintf(buf, sizeof(buf), "%s = %s", rule_keys[i], l->items[k].text);
                        line(ctx, buf);
                }
        }
        for (int k = 0; r && k < GUARD_KINDS; k++) {
                if (!r->rates[k].count)
                        continue;
                snprintf(buf, sizeof(buf), "%s = %s (held beyond it)",
                         rule_keys[GUARD_RULE_MAX_ADDED + k], r->rates[k].text);
                line(ctx, buf);
        }
}

static int list_has(const struct guard_list *l, const struct guard_item *it)
{
        for (size_t i = 0; i < l->count; i++)
                if (l->items[i].norm && it->norm && strcmp(l->items[i].norm, it->norm) == 0 &&
                    (!l->items[i].table) == (!it->table) &&
                    (!it->table || strcmp(l->items[i].table, it->table) == 0))
                        return 1;
        return 0;
}

static void append(char *out, size_t len, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void append(char *out, size_t len, size_t *n, const char *fmt, ...)
{
        size_t used = strlen(out);
        if (used + 3 >= len)
                return;
        if (*n)
                used += (size_t)snprintf(out + used, len - used, ", ");
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(out + used, len - used, fmt, ap);
        va_end(ap);
        (*n)++;
}

size_t guard_rules_loosened(const struct guard_rules *old, const struct guard_rules *fresh,
                            char *out, size_t len)
{
        static const struct guard_rules none;
        size_t n = 0;
        if (len)
                out[0] = '\0';
        if (!old)
                return 0;
        if (!fresh)
                fresh = &none;
        for (int i = 0; i <= GUARD_RULE_PROTECT_KEY; i++) {
                const struct guard_list *o = &old->lists[i], *f = &fresh->lists[i];
                int allow = i == GUARD_RULE_ALLOW_SUBTREE || i == GUARD_RULE_ALLOW_TABLE;
                if (allow && o->count && !f->count) {
                        append(out, len, &n, "%s removed (any %s allowed now)", rule_keys[i],
                               i == GUARD_RULE_ALLOW_TABLE ? "table" : "subtree");
                        continue;
                }
                const struct guard_list *from = allow ? f : o, *in = allow ? o : f;
                for (size_t k = 0; (!allow || o->count) && k < from->count; k++)
                        if (!list_has(in, &from->items[k]))
                                append(out, len, &n, "%s %s %s", rule_keys[i],
                                       allow ? "adds" : "no longer has", from->items[k].text);
        }
        for (int k = 0; k < GUARD_KINDS; k++) {
                const struct guard_rate *o = &old->rates[k], *f = &fresh->rates[k];
                if (!o->count)
                        continue;
                if (!f->count)
                        append(out, len, &n, "%s removed (was %s)",
                               rule_keys[GUARD_RULE_MAX_ADDED + k], o->text);
                else if (f->count > o->count || f->window_ms < o->window_ms)
                        append(out, len, &n, "%s %s -> %s", rule_keys[GUARD_RULE_MAX_ADDED + k],
                               o->text, f->text);
        }
        return n;
}

/* ---- checks ---- */

static const char *verb(const struct guard_target *t)
{
        if (t->kinds & (1u << GUARD_ADDED))
                return "creates";
        if (t->kinds & (1u << GUARD_DELETED))
                return "deletes";
        return "changes";
}

/* One DN the order writes: role says how ("the entry", "a group", "the new parent"). */
static int dn_refused(const struct guard_rules *r, const struct guard_target *t, const char *dn,
                      int role, char *why, size_t len)
{
        static const char *const roles[] = {"", "a member of group ", "the entry into "};
        char norm[GUARD_TEXT_MAX];
        const struct guard_list *protect = &r->lists[GUARD_RULE_PROTECT];
        const struct guard_list *sub = &r->lists[GUARD_RULE_PROTECT_SUBTREE];
        const struct guard_list *allow = &r->lists[GUARD_RULE_ALLOW_SUBTREE];
        char what[GUARD_TEXT_MAX + 64];
        if (role == 0)
                snprintf(what, sizeof(what), "the order %s %s", verb(t), dn);
        else if (role == 1)
                snprintf(what, sizeof(what), "the order adds or removes %s%s", roles[1], dn);
        else
                snprintf(what, sizeof(what), "the order moves %s%s", roles[2], dn);
        if (guard_dn_normalize(dn, norm, sizeof(norm)) < 0) {
                int rule = allow->count     ? GUARD_RULE_ALLOW_SUBTREE
                           : protect->count ? GUARD_RULE_PROTECT
                           : sub->count     ? GUARD_RULE_PROTECT_SUBTREE
                                            : -1;
                if (rule >= 0)
                        snprintf(why, len, "%s: %s, and '%s' cannot be read as a DN",
                                 rule_keys[rule], what, dn);
                return rule;
        }
        for (size_t i = 0; role != 2 && i < protect->count; i++) {
                const struct guard_item *it = &protect->items[i];
                if (it->glob ? guard_glob_match(it->norm, norm) : strcmp(it->norm, norm) == 0) {
                        snprintf(why, len, "protect = %s: %s", it->text, what);
                        return GUARD_RULE_PROTECT;
                }
        }
        for (size_t i = 0; i < sub->count; i++) {
                if (guard_dn_in_subtree(norm, sub->items[i].norm)) {
                        snprintf(why, len, "protect_subtree = %s: %s", sub->items[i].text, what);
                        return GUARD_RULE_PROTECT_SUBTREE;
                }
        }
        if (!allow->count)
                return -1;
        for (size_t i = 0; i < allow->count; i++)
                if (guard_dn_in_subtree(norm, allow->items[i].norm))
                        return -1;
        snprintf(why, len, "allow_subtree: %s, outside every allowed subtree", what);
        return GUARD_RULE_ALLOW_SUBTREE;
}

static int sql_refused(const struct guard_rules *r, const struct guard_target *t, const char *tname,
                       const char *tkey, char *why, size_t len)
{
        char table[GUARD_TEXT_MAX], key[GUARD_TEXT_MAX];
        snprintf(table, sizeof(table), "%s", tname);
        lower(table);
        const struct guard_list *pt = &r->lists[GUARD_RULE_PROTECT_TABLE];
        const struct guard_list *at = &r->lists[GUARD_RULE_ALLOW_TABLE];
        const struct guard_list *pk = &r->lists[GUARD_RULE_PROTECT_KEY];
        for (size_t i = 0; i < pt->count; i++)
                if (guard_glob_match(pt->items[i].norm, table)) {
                        snprintf(why, len, "protect_table = %s: the order %s a row of table %s",
                                 pt->items[i].text, verb(t), tname);
                        return GUARD_RULE_PROTECT_TABLE;
                }
        if (at->count) {
                size_t i = 0;
                while (i < at->count && strcmp(at->items[i].norm, table) != 0)
                        i++;
                if (i == at->count) {
                        snprintf(why, len,
                                 "allow_table: the order %s a row of table %s, which is not "
                                 "allowed",
                                 verb(t), tname);
                        return GUARD_RULE_ALLOW_TABLE;
                }
        }
        if (!tkey)
                return -1;
        snprintf(key, sizeof(key), "%s", tkey);
        lower(key);
        for (size_t i = 0; i < pk->count; i++) {
                const struct guard_item *it = &pk->items[i];
                if ((!it->table || guard_glob_match(it->table, table)) &&
                    guard_glob_match(it->norm, key)) {
                        snprintf(why, len, "protect_key = %s: the order %s %s %s", it->text,
                                 verb(t), tname, tkey);
                        return GUARD_RULE_PROTECT_KEY;
                }
        }
        return -1;
}

int guard_refuses(const struct guard_rules *r, const struct guard_target *t, char *why, size_t len)
{
        if (!r)
                return -1;
        int rule = -1;
        if (t->dn && (rule = dn_refused(r, t, t->dn, 0, why, len)) >= 0)
                return rule;
        for (size_t i = 0; i < t->group_count; i++)
                if (t->groups[i] && (rule = dn_refused(r, t, t->groups[i], 1, why, len)) >= 0)
                        return rule;
        if (t->new_parent && (rule = dn_refused(r, t, t->new_parent, 2, why, len)) >= 0)
                return rule;
        if (t->table && (rule = sql_refused(r, t, t->table, t->key, why, len)) >= 0)
                return rule;
        if (t->membership_table)
                return sql_refused(r, t, t->membership_table, NULL, why, len);
        return -1;
}

/* ---- sliding windows ---- */

static size_t oldest(const struct guard_window *w)
{
        return (w->head + w->cap - w->n) % w->cap;
}

int guard_window_set(struct guard_window *w, const struct guard_rate *rate)
{
        size_t cap = rate ? (size_t)rate->count : 0;
        if (cap == w->cap) {
                w->window_ms = rate ? rate->window_ms : 0;
                return 0;
        }
        int64_t *stamps = cap ? calloc(cap, sizeof(*stamps)) : NULL;
        if (cap && !stamps)
                return -ENOMEM;
        size_t keep = w->n < cap ? w->n : cap, n = 0;
        for (size_t i = w->n - keep; i < w->n; i++)
                stamps[n++] = w->stamps[(oldest(w) + i) % w->cap];
        free(w->stamps);
        w->stamps = stamps;
        w->cap = cap;
        w->n = n;
        w->head = cap ? n % cap : 0;
        w->window_ms = rate ? rate->window_ms : 0;
        return 0;
}

void guard_window_clear(struct guard_window *w)
{
        free(w->stamps);
        memset(w, 0, sizeof(*w));
}

void guard_window_empty(struct guard_window *w)
{
        w->head = 0;
        w->n = 0;
}

size_t guard_window_count(struct guard_window *w, int64_t now_ms)
{
        while (w->n && w->stamps[oldest(w)] <= now_ms - (int64_t)w->window_ms)
                w->n--;
        return w->n;
}

int guard_window_room(struct guard_window *w, int64_t now_ms)
{
        return w->cap == 0 || guard_window_count(w, now_ms) < w->cap;
}

void guard_window_note(struct guard_window *w, int64_t now_ms)
{
        if (!w->cap)
                return;
        guard_window_count(w, now_ms);
        if (w->n == w->cap)
                w->n--; /* the oldest gives way */
        w->stamps[w->head] = now_ms;
        w->head = (w->head + 1) % w->cap;
        w->n++;
}
