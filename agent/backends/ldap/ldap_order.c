/* SPDX-License-Identifier: Apache-2.0 */
/* ldap_order: one order as LDAP operations (backends.md, "ldap").
 *
 * An order first becomes a plan (the entry's DN, what to set, clear, add and remove, the
 * groups to join and leave) without touching the network; execute, probe and describe
 * all read the same plan. Every operation is idempotent: an entry that exists with the
 * same values, a member already there or already gone, an entry already deleted are all
 * Executed. Values are compared by the server (a base search with an escaped filter), so
 * the attribute's own matching rule decides what "the same" means. A connection that
 * turns out dead is replaced once per order and the order runs again from the start
 * (idempotent steps make that safe); but when it drops while a write awaits its answer,
 * the order is in doubt (CA_BACKEND_EINDOUBT) for probe to settle. */
#include <iconv.h>
#include <stdarg.h>
#include <stdint.h>

#include "sbuf.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ldap_backend.h"

#define LB_LOST             1 /* the connection is gone (x->lost says where) */
#define LB_ERRORED          2 /* the order is final and Errored; the result is set */
#define LB_WHY_MAX          768
#define LB_SEARCH_SIZELIMIT 2

enum lb_op { LB_SET, LB_CLEAR, LB_ADD, LB_REMOVE };

struct lb_item {
        enum lb_op op;
        char attr[LB_ATTR_MAX + 1];
        const char **vals;
        size_t n;
};

struct lb_plan {
        enum ca_backend_change change;
        char *dn;
        struct lb_item *items;
        size_t item_count;
        size_t item_cap;
        const char **groups_add;
        size_t groups_add_count;
        const char **groups_remove;
        size_t groups_remove_count;
        const char *rdn_value;     /* the entry's RDN value as the order knows it (borrowed) */
        const char *new_rdn_value; /* Modified: a new RDN value, a rename (borrowed) */
        const char *new_parent;    /* Modified: the mapping's move_change (borrowed) */
        const char *anchor_attr;   /* "objectGUID" or "entryUUID" when Resource has it */
        const char *anchor_value;  /* borrowed */
        const char *key_value;     /* Resource's value of the mapping's key_attribute */
        int enable;                /* the mapping's enabled_change: 1, 0, or -1 when absent */
        const char *password;      /* the mapping's password_change (borrowed; never shown) */
        char why[LB_WHY_MAX];      /* set when the order cannot be carried out as given */
};

struct lb_run {
        struct lb_session *s;
        const struct lb_mapping *m;
        struct lb_plan *p; /* p->dn follows the entry: found by its anchor, renamed, moved */
        struct ca_backend_result *r;
        int in_doubt; /* the connection went while a write awaited its answer */
        int answered; /* the server itself said busy or unavailable: nothing was applied */
        char lost[LB_WHY_MAX];
};

/* --- the plan --- */

static void plan_clear(struct lb_plan *p)
{
        /* Every slot: a plan refused half-way leaves values in the slot it was filling. */
        for (size_t i = 0; p->items && i < p->item_cap; i++)
                free(p->items[i].vals);
        free(p->items);
        free(p->groups_add);
        free(p->groups_remove);
        free(p->dn);
        memset(p, 0, sizeof(*p));
}

static int plan_fail(struct lb_plan *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int plan_fail(struct lb_plan *p, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->why, sizeof(p->why), fmt, ap);
        va_end(ap);
        return CA_BACKEND_OK;
}

static int in_list(char *const *list, size_t n, const char *key)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(list[i], key) == 0)
                        return 1;
        return 0;
}

static const char *map_attr(const struct lb_mapping *m, const char *key)
{
        for (size_t i = 0; i < m->map_count; i++)
                if (strcmp(m->map[i].key, key) == 0)
                        return m->map[i].attr;
        return key;
}

/* The values of a Changes key: a string is one value, a list its items. *vals is
 * malloc'd (NULL when there are none). Returns -1 on a non-string item, -2 when out of
 * memory. */
static int change_values(const struct ca_backend_order *o, const char *key, const char ***vals,
                         size_t *n)
{
        *vals = NULL;
        *n = 0;
        enum ca_backend_value kind = lb_host->change_kind(o, key);
        size_t count = kind == CA_BACKEND_VALUE_STRING ? 1
                       : kind == CA_BACKEND_VALUE_LIST ? lb_host->change_list_count(o, key)
                                                       : 0;
        if (count == 0)
                return 0;
        const char **v = calloc(count, sizeof(*v));
        if (!v)
                return -2;
        for (size_t i = 0; i < count; i++) {
                v[i] = kind == CA_BACKEND_VALUE_STRING ? lb_host->change_string(o, key)
                                                       : lb_host->change_list_item(o, key, i);
                if (!v[i]) {
                        free(v);
                        return -1;
                }
        }
        *vals = v;
        *n = count;
        return 0;
}

static int ends_with(const char *s, const char *suffix, size_t *base_len)
{
        size_t ls = strlen(s), lx = strlen(suffix);
        if (ls <= lx || strcmp(s + ls - lx, suffix) != 0)
                return 0;
        *base_len = ls - lx;
        return 1;
}

static int plan_groups(struct lb_plan *p, const struct ca_backend_order *o, const char *key,
                       const char ***out, size_t *count)
{
        int rc = change_values(o, key, out, count);
        if (rc == -2)
                return CA_BACKEND_EINTERNAL;
        if (rc == -1)
                return plan_fail(p, "Changes %s: group DNs must be strings", key);
        for (size_t i = 0; i < *count; i++)
                if (!lb_dn_valid((*out)[i]))
                        return plan_fail(p, "Changes %s: '%s' is not a DN", key, (*out)[i]);
        return CA_BACKEND_OK;
}

/* AD's rules for the pre-Windows 2000 logon name: 1 to 20 characters, none of
 * " / \ [ ] : ; | = , + * ? < > or control characters, not only dots and spaces, not
 * ending in a dot. AD answers a bad one with an opaque constraint violation: say why
 * before anything is sent. */
static int sam_account_name_ok(struct lb_plan *p, const char *v)
{
        static const char forbidden[] = "\"/\\[]:;|=,+*?<>";
        size_t chars = 0;
        int only_dots_spaces = 1;
        for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
                if ((*c & 0xC0) != 0x80)
                        chars++; /* count UTF-8 characters, not bytes */
                if (*c < 0x20 || *c == 0x7F)
                        return plan_fail(p,
                                         "sAMAccountName '%s': control characters are not "
                                         "allowed",
                                         v),
                               0;
                if (strchr(forbidden, *c))
                        return plan_fail(p,
                                         "sAMAccountName '%s': '%c' is not allowed (Active "
                                         "Directory refuses any of \" / \\ [ ] : ; | = , + * ? "
                                         "< >)",
                                         v, *c),
                               0;
                if (*c != '.' && *c != ' ')
                        only_dots_spaces = 0;
        }
        if (chars == 0 || only_dots_spaces)
                return plan_fail(p,
                                 "sAMAccountName '%s': must hold a character other than "
                                 "dots and spaces",
                                 v),
                       0;
        if (chars > LB_SAM_ACCOUNT_NAME_MAX)
                return plan_fail(p,
                                 "sAMAccountName '%s': %zu characters, Active Directory "
                                 "allows at most %d",
                                 v, chars, LB_SAM_ACCOUNT_NAME_MAX),
                       0;
        if (v[strlen(v) - 1] == '.')
                return plan_fail(p, "sAMAccountName '%s': must not end with a dot", v), 0;
        return 1;
}

/* The DN: Resource (or Changes) "dn" when given, else <rdn_attribute>=<value>,<base_dn>
 * with the value from Resource, then Changes, under the mapping's rdn_change key. */
static int plan_dn(struct lb_plan *p, const struct ca_backend_order *o, const struct lb_mapping *m,
                   const char **rdn_value)
{
        const char *dn = lb_host->resource_string(o, "dn");
        if (!dn)
                dn = lb_host->change_string(o, "dn");
        const char *rv = lb_host->resource_string(o, m->rdn_change);
        if (!rv || p->change == CA_BACKEND_CHANGE_ADDED) {
                const char *cv = lb_host->change_string(o, m->rdn_change);
                if (cv)
                        rv = cv;
        }
        /* With an explicit DN on Modified, only Resource tells the entry's RDN value: a
         * value from Changes would compare equal to itself and hide a rename. */
        *rdn_value = dn && p->change != CA_BACKEND_CHANGE_ADDED
                         ? lb_host->resource_string(o, m->rdn_change)
                         : rv;
        if (dn) {
                if (!lb_dn_valid(dn))
                        return plan_fail(p, "dn '%s' is not a DN", dn);
                p->dn = strdup(dn);
        } else {
                if (!rv || !*rv)
                        return plan_fail(p,
                                         "no RDN value: neither Resource nor Changes has a "
                                         "string '%s' (nor a 'dn')",
                                         m->rdn_change);
                p->dn = lb_dn_build(m->rdn_attribute, rv, m->base_dn);
        }
        return p->dn ? CA_BACKEND_OK : CA_BACKEND_EINTERNAL;
}

static int plan_build(const struct ca_backend_order *o, const struct lb_mapping *m,
                      struct lb_plan *p)
{
        const char *rdn_value = NULL;
        size_t total = 0;
        memset(p, 0, sizeof(*p));
        p->enable = -1;
        p->change = lb_host->order_change(o);
        if (p->change == CA_BACKEND_CHANGE_UNKNOWN)
                return plan_fail(p, "unknown ChangeType: expected Added, Modified or Deleted");
        int rc = plan_dn(p, o, m, &rdn_value);
        p->rdn_value = rdn_value;
        /* The directory's own identifier finds the entry wherever it was renamed or
         * moved to since the server last saw it. */
        static const char *const anchors[] = {"objectGUID", "entryUUID"};
        for (size_t i = 0; i < 2 && !p->anchor_attr; i++) {
                const char *v = lb_host->resource_string(o, anchors[i]);
                if (v && *v) {
                        p->anchor_attr = anchors[i];
                        p->anchor_value = v;
                }
        }
        if (m->key_attribute)
                p->key_value = lb_host->resource_string(o, m->key_attribute);
        if (rc != CA_BACKEND_OK || p->why[0] || p->change == CA_BACKEND_CHANGE_DELETED)
                return rc;

        size_t nkeys = lb_host->change_count(o);
        p->items = calloc(nkeys + 1, sizeof(*p->items));
        if (!p->items)
                return CA_BACKEND_EINTERNAL;
        p->item_cap = nkeys + 1;
        size_t mlen = strlen(m->membership_attribute);
        for (size_t i = 0; i < nkeys; i++) {
                const char *k = lb_host->change_key(o, i);
                size_t base = 0;
                if (!k || strcmp(k, "dn") == 0 || in_list(m->ignore, m->ignore_count, k))
                        continue;
                if (m->move_change && strcmp(k, m->move_change) == 0) {
                        if (lb_host->change_kind(o, k) == CA_BACKEND_VALUE_NULL)
                                continue;
                        p->new_parent = lb_host->change_string(o, k);
                        if (!p->new_parent || !lb_dn_valid(p->new_parent))
                                return plan_fail(p, "Changes %s: the new parent must be a DN", k);
                        if (p->change != CA_BACKEND_CHANGE_MODIFIED)
                                p->new_parent = NULL; /* Added: the DN already says where */
                        continue;
                }
                if (m->enabled_change && strcmp(k, m->enabled_change) == 0) {
                        const char *v = lb_host->change_string(o, k);
                        if (v && (!strcasecmp(v, "true") || !strcmp(v, "1")))
                                p->enable = 1;
                        else if (v && (!strcasecmp(v, "false") || !strcmp(v, "0")))
                                p->enable = 0;
                        else
                                return plan_fail(p, "Changes %s: expected \"true\" or \"false\"",
                                                 k);
                        continue;
                }
                if (m->password_change && strcmp(k, m->password_change) == 0) {
                        enum ca_backend_value kind = lb_host->change_kind(o, k);
                        if (kind == CA_BACKEND_VALUE_NULL)
                                continue; /* no new password */
                        p->password = lb_host->change_string(o, k);
                        if (!p->password || !*p->password)
                                return plan_fail(p,
                                                 "Changes %s: the password must be a "
                                                 "non-empty string",
                                                 k);
                        continue;
                }
                if (strncmp(k, m->membership_attribute, mlen) == 0 && !strcmp(k + mlen, "_add")) {
                        rc = plan_groups(p, o, k, &p->groups_add, &p->groups_add_count);
                        if (rc != CA_BACKEND_OK || p->why[0])
                                return rc;
                        continue;
                }
                if (strncmp(k, m->membership_attribute, mlen) == 0 &&
                    !strcmp(k + mlen, "_remove")) {
                        rc = plan_groups(p, o, k, &p->groups_remove, &p->groups_remove_count);
                        if (rc != CA_BACKEND_OK || p->why[0])
                                return rc;
                        continue;
                }
                struct lb_item *it = &p->items[p->item_count];
                char basekey[LB_ATTR_MAX + 1];
                const char *attr_key = k;
                if (ends_with(k, "_add", &base) || ends_with(k, "_remove", &base)) {
                        it->op = k[base + 1] == 'a' ? LB_ADD : LB_REMOVE;
                        if (base > LB_ATTR_MAX)
                                return plan_fail(p, "Changes key '%s': name too long", k);
                        memcpy(basekey, k, base);
                        basekey[base] = '\0';
                        attr_key = basekey;
                } else {
                        enum ca_backend_value kind = lb_host->change_kind(o, k);
                        it->op =
                            kind == CA_BACKEND_VALUE_NULL || (kind == CA_BACKEND_VALUE_LIST &&
                                                              lb_host->change_list_count(o, k) == 0)
                                ? LB_CLEAR
                                : LB_SET;
                }
                const char *mapped = map_attr(m, attr_key);
                if (!lb_attr_valid(mapped))
                        return plan_fail(p,
                                         "Changes key '%s': '%s' is not an LDAP attribute name "
                                         "(map it with attributes = %s:<attribute>, or list it "
                                         "in ignore)",
                                         k, mapped, attr_key);
                snprintf(it->attr, sizeof(it->attr), "%s", mapped);
                int vr = change_values(o, k, &it->vals, &it->n);
                if (vr == -2)
                        return CA_BACKEND_EINTERNAL;
                if (vr == -1)
                        return plan_fail(p, "Changes %s: values must be strings", k);
                if (strcasecmp(it->attr, "sAMAccountName") == 0 && it->op == LB_SET) {
                        for (size_t j = 0; j < it->n; j++)
                                if (!sam_account_name_ok(p, it->vals[j]))
                                        return CA_BACKEND_OK;
                }
                total += it->n;
                if (total > LB_MAX_VALUES)
                        return plan_fail(p, "Changes hold more than %d values", LB_MAX_VALUES);
                if (strcmp(k, m->rdn_change) == 0 && p->change == CA_BACKEND_CHANGE_MODIFIED &&
                    it->op == LB_SET && rdn_value) {
                        if (it->n == 1 && strcmp(it->vals[0], rdn_value) == 0) {
                                free(it->vals);
                                it->vals = NULL;
                                continue; /* the RDN as it is: nothing to change */
                        }
                        /* A rename: modrdn, which keeps the entry (its objectGUID or
                         * entryUUID, its group links on AD). */
                        if (it->n != 1)
                                return plan_fail(p,
                                                 "Changes %s: a new RDN value must be one "
                                                 "string",
                                                 k);
                        p->new_rdn_value = it->vals[0];
                        free(it->vals);
                        it->vals = NULL;
                        continue;
                }
                /* On Added, nulls, empty lists and removals have nothing to act on. */
                if (p->change == CA_BACKEND_CHANGE_ADDED &&
                    (it->op == LB_CLEAR || it->op == LB_REMOVE || it->n == 0)) {
                        free(it->vals);
                        it->vals = NULL;
                        continue;
                }
                if ((it->op == LB_ADD || it->op == LB_REMOVE) && it->n == 0)
                        continue;
                p->item_count++;
        }
        if (p->change == CA_BACKEND_CHANGE_ADDED && rdn_value) {
                int has = 0;
                for (size_t i = 0; i < p->item_count; i++)
                        has |= p->items[i].op == LB_SET &&
                               strcasecmp(p->items[i].attr, m->rdn_attribute) == 0;
                if (!has) {
                        struct lb_item *it = &p->items[p->item_count];
                        it->op = LB_SET;
                        snprintf(it->attr, sizeof(it->attr), "%s", m->rdn_attribute);
                        it->vals = calloc(1, sizeof(*it->vals));
                        if (!it->vals)
                                return CA_BACKEND_EINTERNAL;
                        it->vals[0] = rdn_value;
                        it->n = 1;
                        p->item_count++;
                }
        }
        return CA_BACKEND_OK;
}

/* --- talking to the server --- */

static int is_secret_attr(const char *attr)
{
        return strcasestr(attr, "password") || strcasecmp(attr, "unicodePwd") == 0;
}

/* One allocation: n + 1 pointers, then the n bervals they point to (borrowing vals). */
static struct berval **bervals(const char **vals, size_t n)
{
        struct berval **bv = calloc(1, (n + 1) * sizeof(*bv) + n * sizeof(struct berval));
        if (!bv)
                return NULL;
        struct berval *store = (struct berval *)(bv + n + 1);
        for (size_t i = 0; i < n; i++) {
                store[i].bv_val = (char *)vals[i];
                store[i].bv_len = strlen(vals[i]);
                bv[i] = &store[i];
        }
        return bv;
}

static void bervals_free(struct berval **bv)
{
        free(bv);
}

static void mods_free(LDAPMod **mods)
{
        for (size_t i = 0; mods && mods[i]; i++) {
                bervals_free(mods[i]->mod_bvalues);
                free(mods[i]);
        }
        free(mods);
}

/* Frees the first n modifications of a fixed array. */
static void mods_free_n(LDAPMod **mods, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                bervals_free(mods[i]->mod_bvalues);
                free(mods[i]);
        }
}

/* Appends one modification; vals may be empty (a replace with no values clears). */
static int mods_add(LDAPMod **mods, size_t *n, int op, const char *attr, const char **vals,
                    size_t count)
{
        LDAPMod *mod = calloc(1, sizeof(*mod));
        if (!mod)
                return -1;
        mod->mod_op = op | LDAP_MOD_BVALUES;
        mod->mod_type = (char *)attr;
        mod->mod_bvalues = bervals(vals, count);
        if (!mod->mod_bvalues) {
                free(mod);
                return -1;
        }
        mods[(*n)++] = mod;
        return 0;
}

static int errored(struct lb_run *x, int rc, const char *op, const char *dn, const char *tail)
{
        char msg[LB_WHY_MAX];
        lb_conn_message(x->s, rc, op, dn, msg, sizeof(msg));
        lb_host->result_set(x->r, CA_BACKEND_ERRORED, x->p ? x->p->dn : dn, "%s%s", msg,
                            tail ? tail : "");
        return LB_ERRORED;
}

/* The connection failed under op; write says whether op was a write request. */
static int lost(struct lb_run *x, int rc, int write, const char *op, const char *dn)
{
        x->answered = rc == LDAP_BUSY || rc == LDAP_UNAVAILABLE;
        x->in_doubt = write && !x->answered;
        lb_conn_message(x->s, rc, op, dn, x->lost, sizeof(x->lost));
        return LB_LOST;
}

/* A base search on dn with filter; *found says whether the entry matched, *count (when
 * wanted) how many values of attr it holds. An absent entry is found = 0, rc success. */
static int search_base(struct lb_run *x, const char *dn, const char *filter, const char *attr,
                       int *found, int *count, int *missing)
{
        char *attrs[2] = {(char *)(attr ? attr : LDAP_NO_ATTRS), NULL};
        LDAPMessage *res = NULL;
        struct timeval tv = lb_conn_timeout(x->s);
        int rc = ldap_search_ext_s(x->s->ld, dn, LDAP_SCOPE_BASE, filter, attrs, 0, NULL, NULL, &tv,
                                   LB_SEARCH_SIZELIMIT, &res);
        *found = 0;
        if (count)
                *count = 0;
        if (missing)
                *missing = rc == LDAP_NO_SUCH_OBJECT;
        if (rc == LDAP_NO_SUCH_OBJECT) {
                ldap_msgfree(res);
                return LDAP_SUCCESS;
        }
        if (rc == LDAP_SUCCESS) {
                LDAPMessage *e = ldap_first_entry(x->s->ld, res);
                *found = e != NULL;
                if (e && count && attr) {
                        struct berval **v = ldap_get_values_len(x->s->ld, e, attr);
                        *count = v ? ldap_count_values_len(v) : 0;
                        ldap_value_free_len(v);
                }
        }
        ldap_msgfree(res);
        return rc;
}

enum lb_cmp { LB_CMP_EXACT, LB_CMP_PRESENT, LB_CMP_ABSENT };

/* (&(a=v1)(a=v2)) for EXACT and PRESENT, (!(|(a=v1)(a=v2))) for ABSENT, (!(a=*)) for
 * EXACT with no values; every value escaped (RFC 4515). */
static char *filter_build(const char *attr, const char **vals, size_t n, enum lb_cmp cmp)
{
        struct sbuf b = {0};
        if (n == 0) {
                sb_add(&b, cmp == LB_CMP_EXACT ? "(!(%s=*))" : "(objectClass=*)", attr);
                return b.failed ? (free(b.p), NULL) : b.p;
        }
        sb_add(&b, "%s", cmp == LB_CMP_ABSENT ? "(!(|" : "(&");
        for (size_t i = 0; i < n; i++) {
                char *v = lb_filter_value(vals[i]);
                if (!v) {
                        free(b.p);
                        return NULL;
                }
                sb_add(&b, "(%s=%s)", attr, v);
                free(v);
        }
        sb_add(&b, "%s", cmp == LB_CMP_ABSENT ? "))" : ")");
        if (b.failed) {
                free(b.p);
                return NULL;
        }
        return b.p;
}

/* Does the entry's attr hold the values as cmp asks? rc is LDAP's; *ok the answer. */
static int attr_check(struct lb_run *x, const char *dn, const char *attr, const char **vals,
                      size_t n, enum lb_cmp cmp, int *ok, int *missing)
{
        char *filter = filter_build(attr, vals, n, cmp);
        int found = 0, count = 0;
        *ok = 0;
        if (!filter)
                return LDAP_NO_MEMORY;
        int rc = search_base(x, dn, filter, cmp == LB_CMP_EXACT && n ? attr : NULL, &found, &count,
                             missing);
        free(filter);
        if (rc == LDAP_SUCCESS)
                *ok = found && (cmp != LB_CMP_EXACT || n == 0 || (size_t)count == n);
        return rc;
}

static int group_has(struct lb_run *x, const char *group, int *has, int *missing)
{
        const char *dn = x->p->dn;
        return attr_check(x, group, x->m->group_attribute, &dn, 1, LB_CMP_PRESENT, has, missing);
}

static int w_modify(struct lb_run *x, const char *dn, LDAPMod **mods, int permissive)
{
        LDAPControl ctrl = {
            .ldctl_oid = LB_PERMISSIVE_MODIFY_OID, .ldctl_value = {0, NULL}, .ldctl_iscritical = 0};
        LDAPControl *ctrls[2] = {&ctrl, NULL};
        return ldap_modify_ext_s(x->s->ld, dn, mods, permissive && x->s->permissive ? ctrls : NULL,
                                 NULL);
}

/* One value added to or removed from one attribute; "already there" and "already gone"
 * count as done, with or without the Permissive Modify control (slapd 2.5 still answers
 * noSuchAttribute to some permissive deletes). */
static int value_op(struct lb_run *x, const char *dn, int add, const char *attr, const char *value,
                    int *absent_target)
{
        LDAPMod *mods[2] = {NULL, NULL};
        size_t n = 0;
        if (mods_add(mods, &n, add ? LDAP_MOD_ADD : LDAP_MOD_DELETE, attr, &value, 1) < 0)
                return CA_BACKEND_EINTERNAL;
        int rc = w_modify(x, dn, mods, 1);
        bervals_free(mods[0]->mod_bvalues);
        free(mods[0]);
        if (absent_target)
                *absent_target = rc == LDAP_NO_SUCH_OBJECT;
        if (rc == LDAP_SUCCESS || (add && rc == LDAP_TYPE_OR_VALUE_EXISTS) ||
            (!add && rc == LDAP_NO_SUCH_ATTRIBUTE))
                return 0;
        if (lb_conn_lost(rc))
                return lost(x, rc, 1, "ldap_modify", dn);
        return rc;
}

static int apply_groups(struct lb_run *x)
{
        const struct lb_plan *p = x->p;
        char tail[LB_WHY_MAX];
        for (size_t i = 0; i < p->groups_add_count; i++) {
                const char *g = p->groups_add[i];
                int absent = 0;
                int rc = value_op(x, g, 1, x->m->group_attribute, p->dn, &absent);
                if (rc == LB_LOST || rc < 0)
                        return rc;
                if (rc) {
                        if (absent)
                                snprintf(tail, sizeof(tail), " (the group to add %s to is missing)",
                                         p->dn);
                        else
                                snprintf(tail, sizeof(tail), " (adding %s to the group's %s)",
                                         p->dn, x->m->group_attribute);
                        return errored(x, rc, "ldap_modify", g, tail);
                }
        }
        for (size_t i = 0; i < p->groups_remove_count; i++) {
                const char *g = p->groups_remove[i];
                int absent = 0;
                int rc = value_op(x, g, 0, x->m->group_attribute, p->dn, &absent);
                if (rc == LB_LOST || rc < 0)
                        return rc;
                if (rc && absent)
                        continue; /* no group, no membership to remove */
                if (rc) {
                        snprintf(tail, sizeof(tail), " (removing %s from the group's %s)", p->dn,
                                 x->m->group_attribute);
                        return errored(x, rc, "ldap_modify", g, tail);
                }
        }
        return 0;
}

#define LB_UAC_ACCOUNTDISABLE 0x2 /* userAccountControl: the account is disabled */

/* --- finding the entry: its anchor, then its DN, then where a rename put it --- */

/* objectGUID's string form (the first three groups little-endian, as AD prints it) as a
 * filter value of escaped bytes, into out (at least 49 bytes); -1 when not a GUID. */
static int guid_filter_value(const char *text, char *out, size_t len)
{
        static const int order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
        unsigned char b[16];
        size_t n = 0;
        if (strlen(text) != 36 || len < 49)
                return -1;
        for (size_t i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (text[i] != '-')
                                return -1;
                        continue;
                }
                char hex[3] = {text[i], text[i + 1], 0};
                char *end = NULL;
                unsigned long v = strtoul(hex, &end, 16);
                if (!end || *end || n == 16)
                        return -1;
                b[n++] = (unsigned char)v;
                i++;
        }
        if (n != 16)
                return -1;
        for (size_t i = 0; i < 16; i++)
                snprintf(out + 3 * i, len - 3 * i, "\\%02x", b[order[i]]);
        return 0;
}

/* The domain components at the end of base_dn ("dc=example,dc=com"): where an anchor is
 * looked for, since a moved entry may have left base_dn. base_dn itself when it has none. */
static char *anchor_base(const char *base_dn)
{
        LDAPDN dn = NULL;
        char *text = NULL, *out = NULL;
        if (ldap_str2dn(base_dn, &dn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS || !dn)
                return strdup(base_dn);
        size_t n = 0, first = 0;
        while (dn[n])
                n++;
        first = n;
        while (first > 0 && dn[first - 1][0] && !dn[first - 1][1] &&
               dn[first - 1][0]->la_attr.bv_len == 2 &&
               strncasecmp(dn[first - 1][0]->la_attr.bv_val, "dc", 2) == 0)
                first--;
        if (first < n && ldap_dn2str(dn + first, &text, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS)
                out = strdup(text);
        ldap_memfree(text);
        ldap_dnfree(dn);
        return out ? out : strdup(base_dn);
}

static int unique_find(struct lb_run *x, const char *filter, char **dn);

/* Looks for the entry whose anchor the order carries; *dn (malloc'd) when found. */
static int anchor_find(struct lb_run *x, char **dn)
{
        const struct lb_plan *p = x->p;
        char value[64], *esc = NULL;
        *dn = NULL;
        if (strcmp(p->anchor_attr, "objectGUID") == 0) {
                if (guid_filter_value(p->anchor_value, value, sizeof(value)) < 0)
                        return LDAP_SUCCESS; /* not a GUID: no entry has it */
        } else {
                esc = lb_filter_value(p->anchor_value);
                if (!esc)
                        return LDAP_NO_MEMORY;
        }
        char filter[160];
        snprintf(filter, sizeof(filter), "(%s=%s)", p->anchor_attr, esc ? esc : value);
        free(esc);
        return unique_find(x, filter, dn);
}

/* The one entry under base_dn's domain components that matches filter; *dn (malloc'd)
 * when exactly one does: two are ambiguous and find nothing. */
static int unique_find(struct lb_run *x, const char *filter, char **dn)
{
        *dn = NULL;
        char *base = anchor_base(x->m->base_dn);
        if (!base)
                return LDAP_NO_MEMORY;
        char *attrs[] = {LDAP_NO_ATTRS, NULL};
        LDAPMessage *res = NULL;
        struct timeval tv = lb_conn_timeout(x->s);
        int rc = ldap_search_ext_s(x->s->ld, base, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL,
                                   &tv, LB_SEARCH_SIZELIMIT, &res);
        free(base);
        if (rc == LDAP_NO_SUCH_OBJECT || rc == LDAP_SIZELIMIT_EXCEEDED)
                rc = LDAP_SUCCESS; /* none, or more than one */
        if (rc == LDAP_SUCCESS && ldap_count_entries(x->s->ld, res) == 1) {
                char *found = ldap_get_dn(x->s->ld, ldap_first_entry(x->s->ld, res));
                if (found && !(*dn = strdup(found)))
                        rc = LDAP_NO_MEMORY;
                ldap_memfree(found);
        }
        ldap_msgfree(res);
        return rc;
}

/* Where the order wants the entry: the new RDN value under the new parent, each
 * defaulting to the current one (malloc'd). */
static int rename_target(const struct lb_run *x, const char *dn, char **newrdn, char **parent,
                         char **target)
{
        char *rdn = NULL, *cur_parent = NULL;
        *newrdn = *parent = *target = NULL;
        if (lb_dn_split(dn, &rdn, &cur_parent) < 0)
                return -1;
        if (x->p->new_rdn_value) {
                free(rdn);
                rdn = lb_rdn_build(x->m->rdn_attribute, x->p->new_rdn_value);
        }
        if (x->p->new_parent) {
                free(cur_parent);
                cur_parent = strdup(x->p->new_parent);
        }
        if (rdn && cur_parent)
                *target = lb_dn_join(rdn, cur_parent, 0);
        if (!*target) {
                free(rdn);
                free(cur_parent);
                return -1;
        }
        *newrdn = rdn;
        *parent = cur_parent;
        return 0;
}

static void plan_move_dn(struct lb_plan *p, char *dn)
{
        free(p->dn);
        p->dn = dn;
}

/* Sets p->dn to the entry the order means: found by its anchor, else at its DN, else
 * (no anchor) at the DN a rename or move of this order already gave it. *found = 0 when
 * it is nowhere. */
static int resolve_entry(struct lb_run *x, int *found)
{
        struct lb_plan *p = x->p;
        *found = 0;
        if (p->anchor_attr) {
                char *dn = NULL;
                int rc = anchor_find(x, &dn);
                if (rc != LDAP_SUCCESS)
                        return rc;
                if (dn) {
                        plan_move_dn(p, dn);
                        *found = 1;
                        return LDAP_SUCCESS;
                }
        }
        int rc = search_base(x, p->dn, "(objectClass=*)", NULL, found, NULL, NULL);
        if (rc != LDAP_SUCCESS || *found)
                return rc;
        if (p->new_rdn_value || p->new_parent) {
                char *newrdn = NULL, *parent = NULL, *target = NULL;
                if (rename_target(x, p->dn, &newrdn, &parent, &target) < 0)
                        return LDAP_NO_MEMORY;
                free(newrdn);
                free(parent);
                rc = search_base(x, target, "(objectClass=*)", NULL, found, NULL, NULL);
                if (rc == LDAP_SUCCESS && *found) {
                        plan_move_dn(p, target);
                        return rc;
                }
                free(target);
                if (rc != LDAP_SUCCESS)
                        return rc;
        }
        /* Last, the key attribute (e.g. sAMAccountName), renamed or moved by someone else. */
        if (x->m->key_attribute && p->key_value && *p->key_value) {
                char *esc = lb_filter_value(p->key_value);
                struct sbuf filter = {0};
                if (esc)
                        sb_add(&filter, "(%s=%s)", x->m->key_attribute, esc);
                free(esc);
                char *dn = NULL;
                rc = filter.p && !filter.failed ? unique_find(x, filter.p, &dn) : LDAP_NO_MEMORY;
                free(filter.p);
                if (dn) {
                        plan_move_dn(p, dn);
                        *found = 1;
                }
        }
        return rc;
}

/* modrdn (with newSuperior for a move): the entry keeps its objectGUID or entryUUID. */
static int apply_rename(struct lb_run *x, int probe_only, int *pending)
{
        struct lb_plan *p = x->p;
        *pending = 0;
        if (!p->new_rdn_value && !p->new_parent)
                return 0;
        char *newrdn = NULL, *parent = NULL, *target = NULL;
        if (rename_target(x, p->dn, &newrdn, &parent, &target) < 0)
                return CA_BACKEND_EINTERNAL;
        int ret = 0;
        if (!lb_dn_equal(target, p->dn)) {
                *pending = 1;
                if (!probe_only) {
                        char *old_parent = NULL, *old_rdn = NULL;
                        int moving = 0;
                        if (lb_dn_split(p->dn, &old_rdn, &old_parent) == 0)
                                moving = !lb_dn_equal(old_parent, parent);
                        free(old_rdn);
                        free(old_parent);
                        int rc = ldap_rename_s(x->s->ld, p->dn, newrdn, moving ? parent : NULL, 1,
                                               NULL, NULL);
                        if (rc == LDAP_SUCCESS) {
                                plan_move_dn(p, target);
                                target = NULL;
                                *pending = 0;
                        } else if (lb_conn_lost(rc)) {
                                ret = lost(x, rc, 1, "ldap_rename", p->dn);
                        } else {
                                char tail[LB_WHY_MAX];
                                snprintf(tail, sizeof(tail), " (renaming to %s)", target);
                                ret = errored(x, rc, "ldap_rename", p->dn, tail);
                        }
                }
        }
        free(newrdn);
        free(parent);
        free(target);
        return ret;
}

/* --- where the account state lives --- */

enum lb_state_kind {
        LB_STATE_UAC,   /* userAccountControl's ACCOUNTDISABLE bit */
        LB_STATE_VALUE, /* an attribute holding off when disabled, on (or nothing) enabled */
        LB_STATE_NONE,  /* a generic directory and no enabled_attribute: nothing to write */
};

struct lb_state {
        enum lb_state_kind kind;
        const char *attr;
        const char *on; /* NULL: enabled means the attribute is absent */
        const char *off;
        int defaulted; /* ppolicy's attribute because the mapping named none */
};

/* The mapping's enabled_attribute wins; else AD's userAccountControl, OpenLDAP's ppolicy
 * lock (000001010000Z: locked until unlocked, which is what disabled means). */
static struct lb_state state_of(const struct lb_run *x)
{
        const struct lb_mapping *m = x->m;
        struct lb_state st = {.kind = LB_STATE_NONE};
        if (m->enabled_attribute) {
                st.attr = m->enabled_attribute;
                st.kind = strcasecmp(st.attr, LB_UAC_ATTR) == 0 ? LB_STATE_UAC : LB_STATE_VALUE;
                st.on = m->enabled_value;
                st.off = m->disabled_value;
        } else if (x->s->directory == LB_DIR_AD) {
                st.kind = LB_STATE_UAC;
                st.attr = LB_UAC_ATTR;
        } else if (x->s->directory == LB_DIR_OPENLDAP) {
                st.kind = LB_STATE_VALUE;
                st.attr = LB_PPOLICY_LOCK_ATTR;
                st.off = LB_PPOLICY_LOCKED;
                st.defaulted = 1;
        }
        return st;
}

static int exec_added(struct lb_run *x, int *created, char *note, size_t notelen)
{
        const struct lb_plan *p = x->p;
        const struct lb_mapping *m = x->m;
        /* On AD an account that is to get a password or a state is created disabled:
         * it is enabled only once its password is set, so that a crash or a refused
         * password never leaves an enabled account without one. */
        static const char *disabled_uac[] = {"514"}; /* NORMAL_ACCOUNT | ACCOUNTDISABLE */
        const struct lb_state st = state_of(x);
        int ad_state = x->s->directory == LB_DIR_AD && st.kind == LB_STATE_UAC &&
                       (p->password || p->enable >= 0);
        /* Elsewhere the state is part of the entry from the start: a disabled account is
         * never enabled, not even between the add and the next write. */
        const char *state_value = st.kind != LB_STATE_VALUE ? NULL
                                  : p->enable == 0          ? st.off
                                  : p->enable == 1          ? st.on
                                                            : NULL;
        LDAPMod **mods = calloc(p->item_count + 4, sizeof(*mods));
        size_t n = 0;
        int ret = 0;
        if (!mods)
                return CA_BACKEND_EINTERNAL;
        if (mods_add(mods, &n, LDAP_MOD_ADD, "objectClass", (const char **)m->object_classes,
                     m->object_class_count) < 0)
                ret = CA_BACKEND_EINTERNAL;
        for (size_t i = 0; i < p->item_count && ret == 0; i++)
                if (mods_add(mods, &n, LDAP_MOD_ADD, p->items[i].attr, p->items[i].vals,
                             p->items[i].n) < 0)
                        ret = CA_BACKEND_EINTERNAL;
        if (ret == 0 && ad_state &&
            mods_add(mods, &n, LDAP_MOD_ADD, LB_UAC_ATTR, disabled_uac, 1) < 0)
                ret = CA_BACKEND_EINTERNAL;
        if (ret == 0 && state_value &&
            mods_add(mods, &n, LDAP_MOD_ADD, st.attr, &state_value, 1) < 0)
                ret = CA_BACKEND_EINTERNAL;
        if (ret != 0)
                goto out;
        int rc = ldap_add_ext_s(x->s->ld, p->dn, mods, NULL, NULL);
        if (rc == LDAP_SUCCESS) {
                *created = 1;
                snprintf(note, notelen, "added");
        } else if (lb_conn_lost(rc)) {
                ret = lost(x, rc, 1, "ldap_add", p->dn);
        } else if (rc != LDAP_ALREADY_EXISTS) {
                ret = errored(x, rc, "ldap_add", p->dn, NULL);
        } else {
                /* The words now: the searches below replace the server's diagnostic. */
                char msg[LB_WHY_MAX];
                lb_conn_message(x->s, rc, "ldap_add", p->dn, msg, sizeof(msg));
                int found = 0;
                int sc = search_base(x, p->dn, "(objectClass=*)", NULL, &found, NULL, NULL);
                if (lb_conn_lost(sc)) {
                        ret = lost(x, sc, 0, "ldap_search", p->dn);
                } else if (sc == LDAP_SUCCESS && !found) {
                        /* AD: another object holds a value that must be unique. */
                        lb_host->result_set(x->r, CA_BACKEND_ERRORED, p->dn, "%s", msg);
                        ret = LB_ERRORED;
                }
                struct sbuf diff = {0};
                for (size_t i = 0; i < p->item_count && ret == 0; i++) {
                        int ok = 0;
                        const struct lb_item *it = &p->items[i];
                        int c =
                            attr_check(x, p->dn, it->attr, it->vals, it->n,
                                       it->op == LB_ADD ? LB_CMP_PRESENT : LB_CMP_EXACT, &ok, NULL);
                        if (lb_conn_lost(c))
                                ret = lost(x, c, 0, "ldap_search", p->dn);
                        else if (c != LDAP_SUCCESS)
                                ret = errored(x, c, "ldap_search", p->dn,
                                              " (comparing the existing entry)");
                        else if (!ok)
                                sb_add(&diff, "%s%s", diff.len ? ", " : "", it->attr);
                }
                if (ret == 0 && diff.failed)
                        ret = CA_BACKEND_EINTERNAL;
                if (ret == 0 && diff.len) {
                        lb_host->result_set(x->r, CA_BACKEND_ERRORED, p->dn,
                                            "%s: entry exists with different values: %s", msg,
                                            diff.p);
                        ret = LB_ERRORED;
                }
                free(diff.p);
                if (ret == 0)
                        snprintf(note, notelen, "already there with the same values");
        }
out:
        mods_free(mods);
        return ret;
}

/* Finds the entry the order means and applies its rename or move; *note says what moved. */
static int modified_locate(struct lb_run *x, char *note, size_t notelen)
{
        const struct lb_plan *p = x->p;
        int found = 0;
        int rc = resolve_entry(x, &found);
        if (lb_conn_lost(rc))
                return lost(x, rc, 0, "ldap_search", p->dn);
        if (rc != LDAP_SUCCESS)
                return errored(x, rc, "ldap_search", p->dn, NULL);
        if (!found)
                return errored(x, LDAP_NO_SUCH_OBJECT, "ldap_modify", p->dn,
                               ": the entry to modify does not exist");
        char *before = strdup(p->dn);
        int pending = 0;
        int ret = before ? apply_rename(x, 0, &pending) : CA_BACKEND_EINTERNAL;
        if (ret == 0 && !lb_dn_equal(before, p->dn))
                snprintf(note, notelen, "renamed from %s, ", before);
        free(before);
        return ret;
}

static int exec_modified(struct lb_run *x, char *note, size_t notelen)
{
        const struct lb_plan *p = x->p;
        int ret = 0, rc;
        LDAPMod **mods = calloc(p->item_count + 1, sizeof(*mods));
        size_t n = 0;
        if (!mods)
                return CA_BACKEND_EINTERNAL;
        /* Replace with no values clears an attribute and is no error when it is absent. */
        for (size_t i = 0; i < p->item_count && ret == 0; i++) {
                const struct lb_item *it = &p->items[i];
                if ((it->op == LB_SET || it->op == LB_CLEAR) &&
                    mods_add(mods, &n, LDAP_MOD_REPLACE, it->attr, it->vals, it->n) < 0)
                        ret = CA_BACKEND_EINTERNAL;
        }
        if (ret != 0)
                goto out;
        /* Write first where the entry can only be at its DN (no anchor to follow, nothing
         * to rename): the modify succeeding says it is there. Any other answer is left to
         * the search-first path, which gives the same outcome and words as before. */
        int done = 0;
        if (!p->anchor_attr && !p->new_rdn_value && !p->new_parent && n > 0) {
                rc = w_modify(x, p->dn, mods, 0);
                if (rc == LDAP_SUCCESS) {
                        done = 1;
                } else if (lb_conn_lost(rc)) {
                        ret = lost(x, rc, 1, "ldap_modify", p->dn);
                        goto out;
                }
        }
        if (!done) {
                ret = modified_locate(x, note, notelen);
                if (ret == 0 && n > 0) {
                        rc = w_modify(x, p->dn, mods, 0);
                        if (lb_conn_lost(rc))
                                ret = lost(x, rc, 1, "ldap_modify", p->dn);
                        else if (rc != LDAP_SUCCESS)
                                ret = errored(x, rc, "ldap_modify", p->dn, NULL);
                }
        }
        for (size_t i = 0; i < p->item_count && ret == 0; i++) {
                const struct lb_item *it = &p->items[i];
                if (it->op != LB_ADD && it->op != LB_REMOVE)
                        continue;
                for (size_t j = 0; j < it->n && ret == 0; j++) {
                        rc = value_op(x, p->dn, it->op == LB_ADD, it->attr, it->vals[j], NULL);
                        if (rc > 0 && rc != LB_LOST)
                                ret = errored(x, rc, "ldap_modify", p->dn, NULL);
                        else
                                ret = rc;
                }
        }
        if (ret == 0) {
                size_t used = strlen(note);
                snprintf(note + used, notelen - used, "modified");
        }
out:
        mods_free(mods);
        return ret;
}

/* --- group links of a deleted entry (directories that keep no back-links) --- */

#define LB_PAGE_SIZE       500    /* below AD's MaxPageSize (1,000) and slapd's sizelimit */
#define LB_MAX_GROUP_LINKS 100000 /* groups one deleted entry may be removed from */

struct lb_dns {
        char **v;
        size_t n, cap;
};

static void dns_clear(struct lb_dns *d)
{
        for (size_t i = 0; i < d->n; i++)
                free(d->v[i]);
        free(d->v);
        memset(d, 0, sizeof(*d));
}

static int dns_add(struct lb_dns *d, const char *dn)
{
        if (d->n == LB_MAX_GROUP_LINKS)
                return LDAP_SIZELIMIT_EXCEEDED;
        if (d->n == d->cap) {
                size_t cap = d->cap ? 2 * d->cap : 16;
                char **v = realloc(d->v, cap * sizeof(*v));
                if (!v)
                        return LDAP_NO_MEMORY;
                d->v = v;
                d->cap = cap;
        }
        if (!(d->v[d->n] = strdup(dn)))
                return LDAP_NO_MEMORY;
        d->n++;
        return LDAP_SUCCESS;
}

/* The groups whose group_attribute lists p->dn, read page by page (the paged-results
 * control, RFC 2696): a directory answers a plain search with at most its size limit. */
static int groups_listing(struct lb_run *x, struct lb_dns *out)
{
        char *esc = lb_filter_value(x->p->dn);
        char *base = anchor_base(x->m->base_dn);
        struct sbuf filter = {0};
        int rc = LDAP_NO_MEMORY;
        struct berval *cookie = NULL;
        if (!esc || !base)
                goto out;
        sb_add(&filter, "(%s=%s)", x->m->group_attribute, esc);
        if (filter.failed)
                goto out;
        for (;;) {
                LDAPControl *page = NULL;
                rc = ldap_create_page_control(x->s->ld, LB_PAGE_SIZE, cookie, 0, &page);
                if (rc != LDAP_SUCCESS)
                        break;
                LDAPControl *ctrls[2] = {page, NULL};
                char *attrs[] = {LDAP_NO_ATTRS, NULL};
                LDAPMessage *res = NULL;
                struct timeval tv = lb_conn_timeout(x->s);
                rc = ldap_search_ext_s(x->s->ld, base, LDAP_SCOPE_SUBTREE, filter.p, attrs, 0,
                                       ctrls, NULL, &tv, 0, &res);
                ldap_control_free(page);
                if (rc == LDAP_NO_SUCH_OBJECT)
                        rc = LDAP_SUCCESS;
                for (LDAPMessage *e = rc == LDAP_SUCCESS ? ldap_first_entry(x->s->ld, res) : NULL;
                     e && rc == LDAP_SUCCESS; e = ldap_next_entry(x->s->ld, e)) {
                        char *dn = ldap_get_dn(x->s->ld, e);
                        rc = dn ? dns_add(out, dn) : LDAP_NO_MEMORY;
                        ldap_memfree(dn);
                }
                LDAPControl **rctrls = NULL;
                if (rc == LDAP_SUCCESS && res)
                        ldap_parse_result(x->s->ld, res, NULL, NULL, NULL, NULL, &rctrls, 0);
                ldap_msgfree(res);
                ber_bvfree(cookie);
                cookie = NULL;
                LDAPControl *pr =
                    rctrls ? ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls, NULL) : NULL;
                struct berval next = {0, NULL};
                ber_int_t estimate = 0;
                if (pr &&
                    ldap_parse_pageresponse_control(x->s->ld, pr, &estimate, &next) != LDAP_SUCCESS)
                        next.bv_len = 0;
                ldap_controls_free(rctrls);
                if (rc != LDAP_SUCCESS || next.bv_len == 0) {
                        ber_memfree(next.bv_val);
                        break;
                }
                cookie = ber_bvdup(&next);
                ber_memfree(next.bv_val);
                if (!cookie) {
                        rc = LDAP_NO_MEMORY;
                        break;
                }
        }
out:
        ber_bvfree(cookie);
        free(filter.p);
        free(esc);
        free(base);
        return rc;
}

/* OpenLDAP keeps a deleted entry's DN in every group that lists it (unless the refint
 * overlay removes it): take it out. AD does that itself. */
static int unlink_groups(struct lb_run *x, size_t *removed)
{
        struct lb_dns groups = {0};
        *removed = 0;
        int rc = groups_listing(x, &groups);
        int ret = 0;
        if (lb_conn_lost(rc))
                ret = lost(x, rc, 0, "ldap_search", x->p->dn);
        else if (rc != LDAP_SUCCESS)
                ret = errored(x, rc, "ldap_search", x->p->dn,
                              " (looking for the groups that list the deleted entry)");
        for (size_t i = 0; ret == 0 && i < groups.n; i++) {
                rc = value_op(x, groups.v[i], 0, x->m->group_attribute, x->p->dn, NULL);
                if (rc == LB_LOST || rc < 0) {
                        ret = rc;
                } else if (rc) {
                        char tail[LB_WHY_MAX];
                        snprintf(tail, sizeof(tail), " (removing the deleted %s from the group)",
                                 x->p->dn);
                        ret = errored(x, rc, "ldap_modify", groups.v[i], tail);
                } else {
                        (*removed)++;
                }
        }
        dns_clear(&groups);
        return ret;
}

static int exec_deleted(struct lb_run *x, char *note, size_t notelen)
{
        int found = 0;
        int rc = x->p->anchor_attr ? resolve_entry(x, &found) : LDAP_SUCCESS;
        if (lb_conn_lost(rc))
                return lost(x, rc, 0, "ldap_search", x->p->dn);
        rc = ldap_delete_ext_s(x->s->ld, x->p->dn, NULL, NULL);
        if (rc != LDAP_SUCCESS && rc != LDAP_NO_SUCH_OBJECT) {
                if (lb_conn_lost(rc))
                        return lost(x, rc, 1, "ldap_delete", x->p->dn);
                return errored(x, rc, "ldap_delete", x->p->dn, NULL);
        }
        /* Also when it was already absent: a crash may have come between the two. */
        size_t removed = 0;
        if (x->s->directory != LB_DIR_AD) {
                int ret = unlink_groups(x, &removed);
                if (ret)
                        return ret;
        }
        int used = snprintf(note, notelen, "%s", rc == LDAP_SUCCESS ? "deleted" : "already absent");
        if (removed && used > 0 && (size_t)used < notelen)
                snprintf(note + used, notelen - (size_t)used, ", removed from %zu group%s", removed,
                         removed == 1 ? "" : "s");
        return 0;
}

/* --- account state and passwords --- */

#define LB_UAC_TRIES 3 /* read-modify-write rounds lost to concurrent writers */

/* The entry's userAccountControl; *found = 0 when the entry or the attribute is absent. */
static int uac_read(struct lb_run *x, unsigned long *uac, int *found)
{
        char *attrs[] = {"userAccountControl", NULL};
        LDAPMessage *res = NULL;
        struct timeval tv = lb_conn_timeout(x->s);
        int rc = ldap_search_ext_s(x->s->ld, x->p->dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0,
                                   NULL, NULL, &tv, LB_SEARCH_SIZELIMIT, &res);
        *found = 0;
        if (rc == LDAP_NO_SUCH_OBJECT) {
                ldap_msgfree(res);
                return LDAP_SUCCESS;
        }
        LDAPMessage *e = rc == LDAP_SUCCESS ? ldap_first_entry(x->s->ld, res) : NULL;
        struct berval **v = e ? ldap_get_values_len(x->s->ld, e, "userAccountControl") : NULL;
        if (v && v[0] && v[0]->bv_len < 16) {
                char num[16];
                memcpy(num, v[0]->bv_val, v[0]->bv_len);
                num[v[0]->bv_len] = '\0';
                char *end = NULL;
                /* AD writes it as a signed 32-bit integer. */
                long long n = strtoll(num, &end, 10);
                if (end && *end == '\0') {
                        *uac = (unsigned long)(uint32_t)n;
                        *found = 1;
                }
        }
        ldap_value_free_len(v);
        ldap_msgfree(res);
        return rc;
}

/* Sets or clears ACCOUNTDISABLE and nothing else. The write deletes the value it read and
 * adds the new one in one modify, so that a concurrent change to any other bit makes it
 * fail (noSuchAttribute) instead of being overwritten; it is then read again. */
static int uac_apply(struct lb_run *x, int enable, int *changed)
{
        *changed = 0;
        for (int round = 0; round < LB_UAC_TRIES; round++) {
                unsigned long uac = 0;
                int found = 0;
                int rc = uac_read(x, &uac, &found);
                if (lb_conn_lost(rc))
                        return lost(x, rc, 0, "ldap_search", x->p->dn);
                if (rc != LDAP_SUCCESS)
                        return errored(x, rc, "ldap_search", x->p->dn,
                                       " (reading userAccountControl)");
                if (!found)
                        return errored(x, LDAP_NO_SUCH_ATTRIBUTE, "ldap_search", x->p->dn,
                                       ": the entry has no userAccountControl (not an AD account)");
                unsigned long want = enable ? uac & ~(unsigned long)LB_UAC_ACCOUNTDISABLE
                                            : uac | LB_UAC_ACCOUNTDISABLE;
                if (want == uac)
                        return 0;
                char oldv[16], newv[16];
                snprintf(oldv, sizeof(oldv), "%ld", (long)(int32_t)(uint32_t)uac);
                snprintf(newv, sizeof(newv), "%ld", (long)(int32_t)(uint32_t)want);
                const char *ov = oldv, *nv = newv;
                LDAPMod *mods[3] = {NULL, NULL, NULL};
                size_t n = 0;
                if (mods_add(mods, &n, LDAP_MOD_DELETE, "userAccountControl", &ov, 1) < 0 ||
                    mods_add(mods, &n, LDAP_MOD_ADD, "userAccountControl", &nv, 1) < 0) {
                        mods_free_n(mods, n);
                        return CA_BACKEND_EINTERNAL;
                }
                rc = ldap_modify_ext_s(x->s->ld, x->p->dn, mods, NULL, NULL);
                mods_free_n(mods, n);
                if (rc == LDAP_SUCCESS) {
                        *changed = 1;
                        return 0;
                }
                if (rc == LDAP_NO_SUCH_ATTRIBUTE)
                        continue; /* changed under us: read again */
                if (lb_conn_lost(rc))
                        return lost(x, rc, 1, "ldap_modify", x->p->dn);
                return errored(x, rc, "ldap_modify", x->p->dn,
                               enable ? " (enabling the account)" : " (disabling the account)");
        }
        return errored(x, LDAP_BUSY, "ldap_modify", x->p->dn,
                       ": userAccountControl kept changing under the agent; try again");
}

/* AD: unicodePwd is the password in double quotes, encoded UTF-16LE. */
static int ad_password(struct lb_run *x, const char *password)
{
        size_t in_len = strlen(password) + 2;
        size_t cap = 2 * in_len + 2; /* UTF-16 never needs more than 2 bytes per UTF-8 byte */
        char *quoted = malloc(in_len + 1);
        char *wide = malloc(cap);
        int rc = LDAP_NO_MEMORY;
        if (quoted && wide) {
                snprintf(quoted, in_len + 1, "\"%s\"", password);
                iconv_t cd = iconv_open("UTF-16LE", "UTF-8");
                char *inp = quoted, *outp = wide;
                size_t inleft = in_len, outleft = cap;
                if (cd == (iconv_t)-1) {
                        rc = LDAP_LOCAL_ERROR;
                } else {
                        if (iconv(cd, &inp, &inleft, &outp, &outleft) == (size_t)-1 || inleft)
                                rc = LDAP_ENCODING_ERROR;
                        else
                                rc = LDAP_SUCCESS;
                        iconv_close(cd);
                }
                if (rc == LDAP_SUCCESS) {
                        struct berval bv = {.bv_len = cap - outleft, .bv_val = wide};
                        struct berval *bvs[2] = {&bv, NULL};
                        LDAPMod mod = {.mod_op = LDAP_MOD_REPLACE | LDAP_MOD_BVALUES,
                                       .mod_type = "unicodePwd",
                                       .mod_bvalues = bvs};
                        LDAPMod *mods[2] = {&mod, NULL};
                        rc = ldap_modify_ext_s(x->s->ld, x->p->dn, mods, NULL, NULL);
                }
        }
        if (quoted)
                explicit_bzero(quoted, in_len + 1);
        if (wide)
                explicit_bzero(wide, cap);
        free(quoted);
        free(wide);
        return rc;
}

/* Elsewhere: the Password Modify extended operation (RFC 3062), so that the directory
 * hashes the password by its own policy. */
static int passwd_exop(struct lb_run *x, const char *password)
{
        struct berval user = {.bv_len = strlen(x->p->dn), .bv_val = x->p->dn};
        struct berval pw = {.bv_len = strlen(password), .bv_val = (char *)password};
        struct berval gen = {0, NULL};
        int rc = ldap_passwd_s(x->s->ld, &user, NULL, &pw, &gen, NULL, NULL);
        ber_memfree(gen.bv_val);
        return rc;
}

/* The account state in an attribute of its own (ppolicy's pwdAccountLockedTime, or the
 * mapping's enabled_attribute): compared by the server first, so that a state already in
 * effect is not written again. */
static int value_state_apply(struct lb_run *x, const struct lb_state *st, int enable, int *changed)
{
        const char *want = enable ? st->on : st->off;
        size_t nwant = want ? 1 : 0;
        int ok = 0;
        *changed = 0;
        int rc = attr_check(x, x->p->dn, st->attr, &want, nwant, LB_CMP_EXACT, &ok, NULL);
        if (lb_conn_lost(rc))
                return lost(x, rc, 0, "ldap_search", x->p->dn);
        if (rc == LDAP_SUCCESS && ok)
                return 0;
        /* A search error (an attribute the schema lacks) is left to the write to explain. */
        LDAPMod *mods[2] = {NULL, NULL};
        size_t n = 0;
        if (mods_add(mods, &n, LDAP_MOD_REPLACE, st->attr, &want, nwant) < 0)
                return CA_BACKEND_EINTERNAL;
        rc = ldap_modify_ext_s(x->s->ld, x->p->dn, mods, NULL, NULL);
        mods_free_n(mods, n);
        if (rc == LDAP_SUCCESS) {
                *changed = 1;
                return 0;
        }
        if (lb_conn_lost(rc))
                return lost(x, rc, 1, "ldap_modify", x->p->dn);
        char tail[LB_WHY_MAX];
        int schema = rc == LDAP_UNDEFINED_TYPE || rc == LDAP_OBJECT_CLASS_VIOLATION ||
                     rc == LDAP_NO_SUCH_ATTRIBUTE;
        snprintf(tail, sizeof(tail), " (%s the account through %s%s)",
                 enable ? "enabling" : "disabling", st->attr,
                 schema && st->defaulted
                     ? ": load the ppolicy overlay on this database, or name the attribute "
                       "that holds the state with enabled_attribute"
                     : "");
        return errored(x, rc, "ldap_modify", x->p->dn, tail);
}

/* The account state, as state_of says where it lives. */
static int state_apply(struct lb_run *x, int enable, int *changed)
{
        const struct lb_state st = state_of(x);
        *changed = 0;
        if (st.kind == LB_STATE_UAC)
                return uac_apply(x, enable, changed);
        if (st.kind == LB_STATE_VALUE)
                return value_state_apply(x, &st, enable, changed);
        return errored(x, LDAP_UNWILLING_TO_PERFORM, "setting the state of", x->p->dn,
                       ": this directory is neither Active Directory nor OpenLDAP; name the "
                       "attribute that holds the account state with enabled_attribute "
                       "(and disabled_value)");
}

/* Is the account held disabled through ppolicy's lock right now? ppolicy removes the
 * lock whenever the password changes, so a password alone would enable the account. */
static int ppolicy_locked(struct lb_run *x, const struct lb_state *st, int *locked)
{
        *locked = 0;
        if (st->kind != LB_STATE_VALUE || strcasecmp(st->attr, LB_PPOLICY_LOCK_ATTR) != 0)
                return 0;
        const char *off = st->off;
        int rc = attr_check(x, x->p->dn, st->attr, &off, 1, LB_CMP_EXACT, locked, NULL);
        if (lb_conn_lost(rc))
                return lost(x, rc, 0, "ldap_search", x->p->dn);
        if (rc != LDAP_SUCCESS)
                *locked = 0; /* no ppolicy on this database: nothing to keep */
        return 0;
}

/* Sets the password, then the account state: AD enables an account only once it has its
 * password, and ppolicy clears its lock when the password changes, so the state must come
 * last (an account disabled through ppolicy stays disabled across a new password). created:
 * this run added the entry, which is deleted again when the password is refused, so that
 * nothing is left half-made. */
static int apply_account(struct lb_run *x, int created, char *note, size_t notelen)
{
        const struct lb_plan *p = x->p;
        size_t used = strlen(note);
        int enable = p->enable;
        const struct lb_state st = state_of(x);
        int uac_ad = x->s->directory == LB_DIR_AD && st.kind == LB_STATE_UAC;
        if (enable < 0 && p->password && created && uac_ad)
                enable = 1; /* created disabled only to receive its password first */
        int keep_disabled = 0;
        if (enable < 0 && p->password && !created && x->m->enabled_change) {
                int rc = ppolicy_locked(x, &st, &keep_disabled);
                if (rc)
                        return rc;
                if (keep_disabled)
                        enable = 0;
        }
        if (p->password) {
                int ad = x->s->directory == LB_DIR_AD;
                int rc = ad ? ad_password(x, p->password) : passwd_exop(x, p->password);
                if (rc != LDAP_SUCCESS && lb_conn_lost(rc))
                        return lost(x, rc, 1, ad ? "ldap_modify" : "ldap_passwd", p->dn);
                if (rc != LDAP_SUCCESS) {
                        char msg[LB_WHY_MAX];
                        lb_conn_message(x->s, rc, ad ? "setting the password of" : "ldap_passwd",
                                        p->dn, msg, sizeof(msg));
                        const char *undo = "";
                        if (created) {
                                int d = ldap_delete_ext_s(x->s->ld, p->dn, NULL, NULL);
                                undo = d == LDAP_SUCCESS || d == LDAP_NO_SUCH_OBJECT
                                           ? "; the account this order had just created was "
                                             "deleted again"
                                           : "; the account this order created is left "
                                             "disabled (deleting it failed)";
                        } else if (ad) {
                                undo = "; the account keeps its previous password and state";
                        }
                        lb_host->result_set(x->r, CA_BACKEND_ERRORED, p->dn, "%s%s", msg, undo);
                        return LB_ERRORED;
                }
                used += (size_t)snprintf(note + used, used < notelen ? notelen - used : 0,
                                         ", password set");
        }
        if (enable >= 0) {
                int changed = 0;
                int rc = state_apply(x, enable, &changed);
                if (rc)
                        return rc;
                snprintf(note + used, used < notelen ? notelen - used : 0, ", %s%s",
                         keep_disabled        ? "kept "
                         : changed || created ? ""
                                              : "already ",
                         enable ? "enabled" : "disabled");
        }
        return 0;
}

static int exec_once(struct lb_run *x)
{
        char note[128] = "";
        int rc, created = 0;
        switch (x->p->change) {
        case CA_BACKEND_CHANGE_ADDED:
                rc = exec_added(x, &created, note, sizeof(note));
                break;
        case CA_BACKEND_CHANGE_MODIFIED:
                rc = exec_modified(x, note, sizeof(note));
                break;
        default:
                rc = exec_deleted(x, note, sizeof(note));
                break;
        }
        if (rc == 0 && x->p->change != CA_BACKEND_CHANGE_DELETED)
                rc = apply_account(x, created, note, sizeof(note));
        if (rc == 0 && x->p->change != CA_BACKEND_CHANGE_DELETED)
                rc = apply_groups(x);
        if (rc != 0)
                return rc;
        size_t links = x->p->groups_add_count + x->p->groups_remove_count;
        char groups[64] = "";
        if (links)
                snprintf(groups, sizeof(groups), "; %zu group link%s in place", links,
                         links == 1 ? "" : "s");
        lb_host->result_set(x->r, CA_BACKEND_EXECUTED, x->p->dn, "%s: %s%s", x->p->dn, note,
                            groups);
        return 0;
}

static int probe_once(struct lb_run *x, enum ca_backend_probe *answer)
{
        const struct lb_plan *p = x->p;
        int found = 0, missing = 0;
        int rc = p->change == CA_BACKEND_CHANGE_ADDED
                     ? search_base(x, p->dn, "(objectClass=*)", NULL, &found, NULL, &missing)
                     : resolve_entry(x, &found);
        if (lb_conn_lost(rc))
                return lost(x, rc, 0, "ldap_search", p->dn);
        if (rc != LDAP_SUCCESS) {
                *answer = CA_BACKEND_PROBE_UNKNOWN;
                return 0;
        }
        if (p->change == CA_BACKEND_CHANGE_DELETED) {
                *answer = found ? CA_BACKEND_PROBE_NOT_APPLIED : CA_BACKEND_PROBE_APPLIED;
                if (found || x->s->directory == LB_DIR_AD)
                        return 0;
                struct lb_dns groups = {0};
                rc = groups_listing(x, &groups);
                size_t n = groups.n;
                dns_clear(&groups);
                if (lb_conn_lost(rc))
                        return lost(x, rc, 0, "ldap_search", p->dn);
                if (rc != LDAP_SUCCESS)
                        *answer = CA_BACKEND_PROBE_UNKNOWN;
                else if (n)
                        *answer = CA_BACKEND_PROBE_NOT_APPLIED; /* still listed in a group */
                return 0;
        }
        *answer = CA_BACKEND_PROBE_NOT_APPLIED;
        if (!found)
                return 0;
        int pending = 0;
        rc = apply_rename(x, 1, &pending);
        if (rc != 0 || pending)
                return rc;
        for (size_t i = 0; i < p->item_count; i++) {
                const struct lb_item *it = &p->items[i];
                enum lb_cmp cmp = it->op == LB_ADD      ? LB_CMP_PRESENT
                                  : it->op == LB_REMOVE ? LB_CMP_ABSENT
                                                        : LB_CMP_EXACT;
                int ok = 0;
                rc = attr_check(x, p->dn, it->attr, it->vals, it->op == LB_CLEAR ? 0 : it->n, cmp,
                                &ok, NULL);
                if (lb_conn_lost(rc))
                        return lost(x, rc, 0, "ldap_search", p->dn);
                if (rc != LDAP_SUCCESS) {
                        *answer = CA_BACKEND_PROBE_UNKNOWN;
                        return 0;
                }
                if (!ok)
                        return 0;
        }
        for (size_t g = 0; g < p->groups_add_count + p->groups_remove_count; g++) {
                int adding = g < p->groups_add_count;
                const char *grp =
                    adding ? p->groups_add[g] : p->groups_remove[g - p->groups_add_count];
                int has = 0, gone = 0;
                rc = group_has(x, grp, &has, &gone);
                if (lb_conn_lost(rc))
                        return lost(x, rc, 0, "ldap_search", grp);
                if (rc != LDAP_SUCCESS) {
                        *answer = CA_BACKEND_PROBE_UNKNOWN;
                        return 0;
                }
                if (adding ? !has : has)
                        return 0;
        }
        /* A password cannot be read back. On AD, an account that this order created
         * and was to enable is enabled only after its password was set, so being enabled
         * proves it; any other order with a password runs again (setting it twice is
         * harmless). */
        const struct lb_state st = state_of(x);
        int uac_ad = x->s->directory == LB_DIR_AD && st.kind == LB_STATE_UAC;
        int enable = p->enable;
        if (enable < 0 && p->password && p->change == CA_BACKEND_CHANGE_ADDED && uac_ad)
                enable = 1;
        if (p->password && !(enable == 1 && p->change == CA_BACKEND_CHANGE_ADDED && uac_ad))
                return 0;
        if (enable >= 0 && st.kind == LB_STATE_NONE)
                return 0; /* execute refuses it without writing */
        if (enable >= 0 && st.kind == LB_STATE_VALUE) {
                const char *want = enable ? st.on : st.off;
                int ok = 0;
                rc = attr_check(x, p->dn, st.attr, &want, want ? 1 : 0, LB_CMP_EXACT, &ok, NULL);
                if (lb_conn_lost(rc))
                        return lost(x, rc, 0, "ldap_search", p->dn);
                if (rc != LDAP_SUCCESS || !ok)
                        return 0; /* not in effect, or not readable: execute explains */
        } else if (enable >= 0) {
                unsigned long uac = 0;
                int has = 0;
                rc = uac_read(x, &uac, &has);
                if (lb_conn_lost(rc))
                        return lost(x, rc, 0, "ldap_search", p->dn);
                if (rc != LDAP_SUCCESS) {
                        *answer = CA_BACKEND_PROBE_UNKNOWN;
                        return 0;
                }
                if (!has || (enable ? (uac & LB_UAC_ACCOUNTDISABLE) != 0
                                    : (uac & LB_UAC_ACCOUNTDISABLE) == 0))
                        return 0;
        }
        *answer = CA_BACKEND_PROBE_APPLIED;
        return 0;
}

/* Runs fn with the session's connection, replacing a dead connection once, as long as
 * nothing was written on it. */
static int with_connection(struct lb_session *s, const struct lb_mapping *m, struct lb_plan *p,
                           struct ca_backend_result *r, enum ca_backend_probe *answer,
                           struct ca_backend_error *err)
{
        for (int attempt = 0;; attempt++) {
                int rc = lb_conn_ensure(s, err);
                if (rc != CA_BACKEND_OK)
                        return rc;
                struct lb_run x = {.s = s, .m = m, .p = p, .r = r};
                rc = answer ? probe_once(&x, answer) : exec_once(&x);
                if (rc == 0 || rc == LB_ERRORED)
                        return CA_BACKEND_OK;
                if (rc != LB_LOST)
                        return lb_host->error(err, rc < 0 ? rc : CA_BACKEND_EINTERNAL, NULL,
                                              "%s: out of memory or internal error", p->dn);
                lb_conn_close(s);
                /* Earlier writes of this order may have been applied: that is fine when the
                 * order runs again (every step is idempotent), but a write whose answer
                 * never came leaves the order in doubt. */
                if (x.in_doubt)
                        return lb_host->error(err, CA_BACKEND_EINDOUBT, NULL,
                                              "%s; the connection dropped after the request was "
                                              "sent: the change may or may not have been applied",
                                              x.lost);
                if (attempt > 0 || x.answered)
                        return lb_host->error(err, CA_BACKEND_EUNAVAILABLE, NULL, "%s", x.lost);
                lb_host->log(CA_BACKEND_LOG_INFO, "ldap: %s; reconnecting to %s", x.lost,
                             s->inst->uri);
        }
}

int lb_order_execute(struct lb_session *s, const struct ca_backend_order *order,
                     const struct lb_mapping *m, struct ca_backend_result *r,
                     struct ca_backend_error *err)
{
        struct lb_plan p;
        int rc = plan_build(order, m, &p);
        if (rc != CA_BACKEND_OK) {
                rc = lb_host->error(err, rc, NULL, "out of memory");
        } else if (p.why[0]) {
                lb_host->result_set(r, CA_BACKEND_ERRORED, p.dn, "%s", p.why);
        } else if (p.password && !s->inst->ldaps && !s->inst->starttls) {
                lb_host->result_set(r, CA_BACKEND_ERRORED, p.dn,
                                    "%s: refused to send a password over plain LDAP (%s): use "
                                    "ldaps:// or starttls = yes; nothing was sent",
                                    p.dn, s->inst->uri);
        } else {
                rc = with_connection(s, m, &p, r, NULL, err);
        }
        plan_clear(&p);
        return rc;
}

int lb_order_probe(struct lb_session *s, const struct ca_backend_order *order,
                   const struct lb_mapping *m, enum ca_backend_probe *answer,
                   struct ca_backend_result *r, struct ca_backend_error *err)
{
        struct lb_plan p;
        int rc = plan_build(order, m, &p);
        if (rc != CA_BACKEND_OK) {
                rc = lb_host->error(err, rc, NULL, "out of memory");
        } else if (p.why[0]) {
                /* Execute would refuse it without touching the directory. */
                *answer = CA_BACKEND_PROBE_NOT_APPLIED;
        } else {
                rc = with_connection(s, m, &p, r, answer, err);
                if (rc == CA_BACKEND_OK && *answer == CA_BACKEND_PROBE_APPLIED)
                        lb_host->result_set(r, CA_BACKEND_EXECUTED, p.dn,
                                            "%s: found in effect in the directory", p.dn);
        }
        plan_clear(&p);
        return rc;
}

/* --- describe --- */

static void describe_values(struct sbuf *b, const char *attr, const char **vals, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (is_secret_attr(attr))
                        sb_add(b, "%s: (value hidden)\n", attr);
                else
                        sb_add(b, "%s: %s\n", attr, vals[i]);
        }
}

static void describe_groups(struct sbuf *b, const struct lb_plan *p, const struct lb_mapping *m)
{
        for (size_t g = 0; g < p->groups_add_count + p->groups_remove_count; g++) {
                int adding = g < p->groups_add_count;
                const char *grp =
                    adding ? p->groups_add[g] : p->groups_remove[g - p->groups_add_count];
                sb_add(b, "\ndn: %s\nchangetype: modify\n%s: %s\n%s: %s\n-\n", grp,
                       adding ? "add" : "delete", m->group_attribute, m->group_attribute, p->dn);
        }
}

int lb_order_describe(const struct ca_backend_order *order, const struct lb_mapping *m,
                      struct ca_backend_result *r, struct ca_backend_error *err)
{
        struct lb_plan p;
        struct sbuf b = {0};
        int rc = plan_build(order, m, &p);
        if (rc != CA_BACKEND_OK) {
                rc = lb_host->error(err, rc, NULL, "out of memory");
                goto out;
        }
        if (p.why[0]) {
                lb_host->result_set(r, CA_BACKEND_ERRORED, p.dn, "%s", p.why);
                goto out;
        }
        sb_add(&b, "dn: %s\n", p.dn);
        switch (p.change) {
        case CA_BACKEND_CHANGE_ADDED:
                sb_add(&b, "changetype: add\n");
                describe_values(&b, "objectClass", (const char **)m->object_classes,
                                m->object_class_count);
                for (size_t i = 0; i < p.item_count; i++)
                        describe_values(&b, p.items[i].attr, p.items[i].vals, p.items[i].n);
                break;
        case CA_BACKEND_CHANGE_MODIFIED:
                sb_add(&b, "changetype: modify\n");
                for (size_t i = 0; i < p.item_count; i++) {
                        const struct lb_item *it = &p.items[i];
                        const char *verb = it->op == LB_ADD      ? "add"
                                           : it->op == LB_REMOVE ? "delete"
                                                                 : "replace";
                        sb_add(&b, "%s: %s\n", verb, it->attr);
                        describe_values(&b, it->attr, it->vals, it->n);
                        sb_add(&b, "-\n");
                }
                break;
        default:
                sb_add(&b, "changetype: delete\n");
                break;
        }
        if (p.change != CA_BACKEND_CHANGE_DELETED && p.password)
                sb_add(&b, "# password: <secret> (unicodePwd on Active Directory, the Password "
                           "Modify operation elsewhere)\n");
        if (p.change != CA_BACKEND_CHANGE_DELETED && p.enable >= 0)
                sb_add(&b, "# account: %s (%s)\n", p.enable ? "enabled" : "disabled",
                       m->enabled_attribute ? m->enabled_attribute
                                            : "userAccountControl on Active Directory, "
                                              "pwdAccountLockedTime on OpenLDAP");
        describe_groups(&b, &p, m);
        if (b.failed) {
                rc = lb_host->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory");
                goto out;
        }
        lb_host->result_set(r, CA_BACKEND_EXECUTED, p.dn, "%s", b.p);
out:
        free(b.p);
        plan_clear(&p);
        return rc;
}
