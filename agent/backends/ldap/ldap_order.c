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
#include <stdarg.h>

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
        char why[LB_WHY_MAX]; /* set when the order cannot be carried out as given */
};

struct lb_run {
        struct lb_session *s;
        const struct lb_mapping *m;
        const struct lb_plan *p;
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
        p->change = lb_host->order_change(o);
        if (p->change == CA_BACKEND_CHANGE_UNKNOWN)
                return plan_fail(p, "unknown ChangeType: expected Added, Modified or Deleted");
        int rc = plan_dn(p, o, m, &rdn_value);
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
                        return plan_fail(p, "%s: renaming an entry (a new %s) is not supported",
                                         p->dn, m->rdn_change);
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

static int exec_added(struct lb_run *x, char *note, size_t notelen)
{
        const struct lb_plan *p = x->p;
        const struct lb_mapping *m = x->m;
        LDAPMod **mods = calloc(p->item_count + 2, sizeof(*mods));
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
        if (ret != 0)
                goto out;
        int rc = ldap_add_ext_s(x->s->ld, p->dn, mods, NULL, NULL);
        if (rc == LDAP_SUCCESS) {
                snprintf(note, notelen, "added");
        } else if (lb_conn_lost(rc)) {
                ret = lost(x, rc, 1, "ldap_add", p->dn);
        } else if (rc != LDAP_ALREADY_EXISTS) {
                ret = errored(x, rc, "ldap_add", p->dn, NULL);
        } else {
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
                        char msg[LB_WHY_MAX];
                        lb_conn_message(x->s, rc, "ldap_add", p->dn, msg, sizeof(msg));
                        lb_host->result_set(x->r, CA_BACKEND_ERRORED, p->dn,
                                            "%s: entry exists with different values: %s", msg,
                                            diff.p);
                        ret = LB_ERRORED;
                }
                free(diff.p);
                if (ret == 0)
                        snprintf(note, notelen, "already there with the same values");
        }
        if (ret == 0)
                ret = apply_groups(x);
out:
        mods_free(mods);
        return ret;
}

static int exec_modified(struct lb_run *x, char *note, size_t notelen)
{
        const struct lb_plan *p = x->p;
        int found = 0, missing = 0;
        int rc = search_base(x, p->dn, "(objectClass=*)", NULL, &found, NULL, &missing);
        if (lb_conn_lost(rc))
                return lost(x, rc, 0, "ldap_search", p->dn);
        if (rc != LDAP_SUCCESS)
                return errored(x, rc, "ldap_search", p->dn, NULL);
        if (!found)
                return errored(x, LDAP_NO_SUCH_OBJECT, "ldap_modify", p->dn,
                               ": the entry to modify does not exist");

        LDAPMod **mods = calloc(p->item_count + 1, sizeof(*mods));
        size_t n = 0;
        int ret = 0;
        if (!mods)
                return CA_BACKEND_EINTERNAL;
        /* Replace with no values clears an attribute and is no error when it is absent. */
        for (size_t i = 0; i < p->item_count && ret == 0; i++) {
                const struct lb_item *it = &p->items[i];
                if ((it->op == LB_SET || it->op == LB_CLEAR) &&
                    mods_add(mods, &n, LDAP_MOD_REPLACE, it->attr, it->vals, it->n) < 0)
                        ret = CA_BACKEND_EINTERNAL;
        }
        if (ret == 0 && n > 0) {
                rc = w_modify(x, p->dn, mods, 0);
                if (lb_conn_lost(rc))
                        ret = lost(x, rc, 1, "ldap_modify", p->dn);
                else if (rc != LDAP_SUCCESS)
                        ret = errored(x, rc, "ldap_modify", p->dn, NULL);
        }
        mods_free(mods);
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
        if (ret == 0)
                ret = apply_groups(x);
        if (ret == 0)
                snprintf(note, notelen, "modified");
        return ret;
}

static int exec_deleted(struct lb_run *x, char *note, size_t notelen)
{
        int rc = ldap_delete_ext_s(x->s->ld, x->p->dn, NULL, NULL);
        if (rc == LDAP_SUCCESS) {
                snprintf(note, notelen, "deleted");
                return 0;
        }
        if (rc == LDAP_NO_SUCH_OBJECT) {
                snprintf(note, notelen, "already absent");
                return 0;
        }
        if (lb_conn_lost(rc))
                return lost(x, rc, 1, "ldap_delete", x->p->dn);
        return errored(x, rc, "ldap_delete", x->p->dn, NULL);
}

static int exec_once(struct lb_run *x)
{
        char note[128] = "";
        int rc;
        switch (x->p->change) {
        case CA_BACKEND_CHANGE_ADDED:
                rc = exec_added(x, note, sizeof(note));
                break;
        case CA_BACKEND_CHANGE_MODIFIED:
                rc = exec_modified(x, note, sizeof(note));
                break;
        default:
                rc = exec_deleted(x, note, sizeof(note));
                break;
        }
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
        int rc = search_base(x, p->dn, "(objectClass=*)", NULL, &found, NULL, &missing);
        if (lb_conn_lost(rc))
                return lost(x, rc, 0, "ldap_search", p->dn);
        if (rc != LDAP_SUCCESS) {
                *answer = CA_BACKEND_PROBE_UNKNOWN;
                return 0;
        }
        if (p->change == CA_BACKEND_CHANGE_DELETED) {
                *answer = found ? CA_BACKEND_PROBE_NOT_APPLIED : CA_BACKEND_PROBE_APPLIED;
                return 0;
        }
        *answer = CA_BACKEND_PROBE_NOT_APPLIED;
        if (!found)
                return 0;
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
        *answer = CA_BACKEND_PROBE_APPLIED;
        return 0;
}

/* Runs fn with the session's connection, replacing a dead connection once, as long as
 * nothing was written on it. */
static int with_connection(struct lb_session *s, const struct lb_mapping *m,
                           const struct lb_plan *p, struct ca_backend_result *r,
                           enum ca_backend_probe *answer, struct ca_backend_error *err)
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
