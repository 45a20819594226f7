/* SPDX-License-Identifier: Apache-2.0 */
/* policy: what an order touches, judged against its connector's guardrails (policy.h). */
#include "policy.h"

#include "journal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hold {
        char *key;
        char *assignment;
        enum guard_rule rule;
};

struct policy {
        const struct ca_config_connector *cfg; /* borrowed: the current configuration's */
        struct guard_rules *rules;
        struct guard_window windows[GUARD_KINDS];
        struct hold *holds;
        size_t nholds, capholds;
        unsigned long refused[GUARD_RULES], held[GUARD_RULES];
};

/* What an order touches, with the storage its texts need. */
struct target {
        struct guard_target t;
        char dn[GUARD_TEXT_MAX];
        char key[64]; /* an integer key, as text */
        const char **groups;
        size_t ngroups, capgroups;
};

static const char *setting_or(const struct ca_settings *s, const char *key, const char *def)
{
        const char *v = config_setting(s, key);
        return v && *v ? v : def;
}

/* A string (or an integer, written into buf) of obj[key]; NULL when neither. */
static const char *json_text(json_t *obj, const char *key, char *buf, size_t len)
{
        json_t *v = obj && key ? json_object_get(obj, key) : NULL;
        if (json_is_string(v))
                return json_string_value(v);
        if (json_is_integer(v) && buf) {
                snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                return buf;
        }
        return NULL;
}

static int push_group(struct target *tg, const char *dn)
{
        if (tg->ngroups == tg->capgroups) {
                size_t cap = tg->capgroups ? tg->capgroups * 2 : 8;
                const char **g = realloc(tg->groups, cap * sizeof(*g));
                if (!g)
                        return -ENOMEM;
                tg->groups = g;
                tg->capgroups = cap;
        }
        tg->groups[tg->ngroups++] = dn;
        return 0;
}

/* Changes "<attr>_add" and "<attr>_remove": the groups an order joins or leaves. A value
 * that is not a string still marks the order as a group change. */
static int membership(const struct ca_order *o, const char *attr, struct target *tg, int keep)
{
        static const char *const ends[] = {"_add", "_remove"};
        for (int e = 0; e < 2; e++) {
                char key[256];
                snprintf(key, sizeof(key), "%s%s", attr, ends[e]);
                json_t *v = o->changes ? json_object_get(o->changes, key) : NULL;
                if (!v || json_is_null(v))
                        continue;
                if (json_is_array(v) && json_array_size(v) == 0)
                        continue;
                tg->t.kinds |= 1u << GUARD_GROUP;
                if (!keep)
                        continue;
                if (json_is_string(v) && push_group(tg, json_string_value(v)) < 0)
                        return -ENOMEM;
                size_t i;
                json_t *x;
                json_array_foreach(v, i, x)
                {
                        if (json_is_string(x) && push_group(tg, json_string_value(x)) < 0)
                                return -ENOMEM;
                }
        }
        return 0;
}

static int disables(const struct ca_order *o, const char *enabled_change)
{
        json_t *v =
            enabled_change && o->changes ? json_object_get(o->changes, enabled_change) : NULL;
        if (json_is_false(v))
                return 1;
        if (json_is_integer(v))
                return json_integer_value(v) == 0;
        const char *s = json_string_value(v);
        return s && (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0);
}

/* The ldap back-end's DN rule (ldap_order.c plan_dn): Resource (or Changes) "dn", else
 * <rdn_attribute>=<value>,<base_dn> with the value from Resource, then Changes (Added
 * reads Changes first). */
static void ldap_target(const struct ca_order *o, const struct ca_settings *m, struct target *tg)
{
        const char *dn = json_text(o->resource, "dn", NULL, 0);
        if (!dn)
                dn = json_text(o->changes, "dn", NULL, 0);
        if (dn) {
                snprintf(tg->dn, sizeof(tg->dn), "%s", dn);
                tg->t.dn = tg->dn;
        } else {
                const char *attr = setting_or(m, "rdn_attribute", NULL);
                const char *rdn_change = setting_or(m, "rdn_change", attr);
                char b1[64], b2[64];
                const char *rv = json_text(o->resource, rdn_change, b1, sizeof(b1));
                if (!rv || o->change == CA_CHANGE_ADDED) {
                        const char *cv = json_text(o->changes, rdn_change, b2, sizeof(b2));
                        if (cv)
                                rv = cv;
                }
                if (attr && rv && *rv &&
                    guard_dn_compose(attr, rv, config_setting(m, "base_dn"), tg->dn,
                                     sizeof(tg->dn)) == 0)
                        tg->t.dn = tg->dn;
        }
        const char *move = config_setting(m, "move_change");
        if (move && o->change == CA_CHANGE_MODIFIED)
                tg->t.new_parent = json_text(o->changes, move, NULL, 0);
}

/* The sql back-end's key rule (sql_order.c): Added names the row by Changes, Modified
 * and Deleted find it by Resource first. */
static void sql_target(const struct ca_order *o, const struct ca_settings *m, struct target *tg)
{
        tg->t.table = config_setting(m, "table");
        const char *kc = setting_or(m, "key_change", config_setting(m, "key_column"));
        const char *in_changes = json_text(o->changes, kc, tg->key, sizeof(tg->key));
        const char *in_resource = NULL;
        char rbuf[64];
        if (!in_changes || o->change != CA_CHANGE_ADDED)
                in_resource = json_text(o->resource, kc, rbuf, sizeof(rbuf));
        if (in_resource && in_resource == rbuf) {
                snprintf(tg->key, sizeof(tg->key), "%s", rbuf);
                in_resource = tg->key;
        }
        if (o->change == CA_CHANGE_ADDED)
                tg->t.key = in_changes ? in_changes : in_resource;
        else
                tg->t.key = in_resource ? in_resource : in_changes;
        if (tg->t.kinds & (1u << GUARD_GROUP))
                tg->t.membership_table = config_setting(m, "membership_table");
}

static int target_of(const struct policy *p, const struct ca_order *o,
                     const struct ca_config_resource_type *rt, struct target *tg)
{
        memset(tg, 0, sizeof(*tg));
        const struct ca_settings *m = &rt->settings;
        const char *be = p->cfg->backend ? p->cfg->backend : "";
        int ldap = strcmp(be, "ldap") == 0, sql = strcmp(be, "sql") == 0;
        switch (o->change) {
        case CA_CHANGE_ADDED:
                tg->t.kinds |= 1u << GUARD_ADDED;
                break;
        case CA_CHANGE_DELETED:
                tg->t.kinds |= 1u << GUARD_DELETED;
                break;
        default:
                tg->t.kinds |= 1u << GUARD_MODIFIED;
                break;
        }
        if (o->change != CA_CHANGE_DELETED && disables(o, config_setting(m, "enabled_change")))
                tg->t.kinds |= 1u << GUARD_DISABLED;
        if (o->change != CA_CHANGE_DELETED &&
            membership(o, setting_or(m, "membership_attribute", "memberOf"), tg, ldap) < 0)
                return -ENOMEM;
        if (ldap)
                ldap_target(o, m, tg);
        else if (sql)
                sql_target(o, m, tg);
        tg->t.groups = tg->groups;
        tg->t.group_count = tg->ngroups;
        return 0;
}

static void target_clear(struct target *tg)
{
        free(tg->groups);
}

static void describe_target(const struct target *tg, char *out, size_t len)
{
        if (tg->t.dn)
                snprintf(out, len, "%s%s%s", tg->t.dn, tg->ngroups ? " (and its groups)" : "",
                         tg->t.new_parent ? " (moved)" : "");
        else if (tg->t.table)
                snprintf(out, len, "%s %s", tg->t.table, tg->t.key ? tg->t.key : "(no key)");
        else
                snprintf(out, len, "-");
}

void policy_target_text(const struct policy *p, const struct ca_order *o,
                        const struct ca_config_resource_type *rt, char *out, size_t len)
{
        struct target tg;
        if (target_of(p, o, rt, &tg) == 0)
                describe_target(&tg, out, len);
        else
                snprintf(out, len, "-");
        target_clear(&tg);
}

static int windows_set(struct policy *p, const struct guard_rules *r)
{
        for (int k = 0; k < GUARD_KINDS; k++)
                if (guard_window_set(&p->windows[k], &r->rates[k]) < 0)
                        return -ENOMEM;
        return 0;
}

int policy_new(const struct ca_config_connector *cfg, struct policy **out, struct ca_error *err)
{
        char why[2048];
        *out = NULL;
        struct policy *p = calloc(1, sizeof(*p));
        if (!p)
                return ca_error_set(err, -ENOMEM, "out of memory");
        p->cfg = cfg;
        int rc = guard_rules_parse(cfg, &p->rules, why, sizeof(why));
        if (rc == 0)
                rc = windows_set(p, p->rules);
        if (rc < 0) {
                ca_error_set(err, rc, "connector %s: %s", cfg->name,
                             rc == -ENOMEM ? "out of memory" : why);
                policy_free(p);
                return rc;
        }
        *out = p;
        return 0;
}

static void holds_clear(struct policy *p)
{
        for (size_t i = 0; i < p->nholds; i++) {
                free(p->holds[i].key);
                free(p->holds[i].assignment);
        }
        p->nholds = 0;
}

void policy_free(struct policy *p)
{
        if (!p)
                return;
        guard_rules_free(p->rules);
        for (int k = 0; k < GUARD_KINDS; k++)
                guard_window_clear(&p->windows[k]);
        holds_clear(p);
        free(p->holds);
        free(p);
}

int policy_reload(struct policy *p, const struct ca_config_connector *cfg, char *loosened,
                  size_t len, struct ca_error *err)
{
        char why[2048];
        struct guard_rules *fresh = NULL;
        p->cfg = cfg; /* the old configuration is freed after the reload, whatever happens */
        int rc = guard_rules_parse(cfg, &fresh, why, sizeof(why));
        if (rc < 0)
                return ca_error_set(err, rc, "connector %s: %s", cfg->name,
                                    rc == -ENOMEM ? "out of memory" : why);
        if (windows_set(p, fresh) < 0) {
                windows_set(p, p->rules);
                guard_rules_free(fresh);
                return ca_error_set(err, -ENOMEM, "connector %s: out of memory", cfg->name);
        }
        size_t n = guard_rules_loosened(p->rules, fresh, loosened, len);
        guard_rules_free(p->rules);
        p->rules = fresh;
        p->cfg = cfg;
        return (int)n;
}

const struct guard_rules *policy_rules(const struct policy *p)
{
        return p ? p->rules : NULL;
}

static const char *kind_words(int k)
{
        static const char *const words[GUARD_KINDS] = {
            "Added orders", "Modified orders", "Deleted orders", "orders disabling an account",
            "orders changing group members"};
        return words[k];
}

enum policy_verdict policy_judge(struct policy *p, const struct ca_order *o,
                                 const struct ca_config_resource_type *rt, int64_t now_ms,
                                 struct policy_decision *d)
{
        struct target tg;
        memset(d, 0, sizeof(*d));
        d->verdict = POLICY_ADMIT;
        d->rule = GUARD_RULES;
        if (target_of(p, o, rt, &tg) < 0) {
                /* Unjudged is never admitted: refused (Errored), as nothing was applied. */
                d->verdict = POLICY_REFUSE;
                snprintf(d->why, sizeof(d->why), "out of memory judging the order");
                snprintf(d->target, sizeof(d->target), "-");
                target_clear(&tg);
                return d->verdict;
        }
        describe_target(&tg, d->target, sizeof(d->target));
        d->kinds = tg.t.kinds;
        int rule = guard_refuses(p->rules, &tg.t, d->why, sizeof(d->why));
        if (rule >= 0) {
                d->verdict = POLICY_REFUSE;
                d->rule = (enum guard_rule)rule;
                p->refused[rule]++;
                goto out;
        }
        for (size_t i = 0; i < p->nholds; i++) {
                if (o->assignment_id && strcmp(p->holds[i].assignment, o->assignment_id) == 0) {
                        d->verdict = POLICY_HOLD;
                        d->behind = 1;
                        d->rule = p->holds[i].rule;
                        snprintf(d->why, sizeof(d->why),
                                 "behind held order %s of the same assignment (%s)",
                                 p->holds[i].key, guard_rule_key(d->rule));
                        p->held[d->rule]++;
                        goto out;
                }
        }
        for (int k = 0; k < GUARD_KINDS; k++) {
                if (!(tg.t.kinds & (1u << k)) || guard_window_room(&p->windows[k], now_ms))
                        continue;
                d->verdict = POLICY_HOLD;
                d->rule = (enum guard_rule)(GUARD_RULE_MAX_ADDED + k);
                snprintf(d->why, sizeof(d->why), "%s = %s: %zu %s in the window already",
                         guard_rule_key(d->rule), p->rules->rates[k].text,
                         guard_window_count(&p->windows[k], now_ms), kind_words(k));
                p->held[d->rule]++;
                goto out;
        }
        for (int k = 0; k < GUARD_KINDS; k++)
                if (tg.t.kinds & (1u << k))
                        guard_window_note(&p->windows[k], now_ms);
out:
        target_clear(&tg);
        return d->verdict;
}

void policy_note_released(struct policy *p, const struct ca_order *o,
                          const struct ca_config_resource_type *rt, int64_t now_ms)
{
        struct target tg;
        if (target_of(p, o, rt, &tg) == 0)
                for (int k = 0; k < GUARD_KINDS; k++)
                        if (tg.t.kinds & (1u << k))
                                guard_window_note(&p->windows[k], now_ms);
        target_clear(&tg);
}

void policy_seed(struct policy *p, const char *change_type, unsigned kinds, int64_t received_s,
                 int64_t now_s, int64_t now_ms)
{
        if (!kinds) {
                int k = strcmp(change_type, "Added") == 0      ? GUARD_ADDED
                        : strcmp(change_type, "Modified") == 0 ? GUARD_MODIFIED
                        : strcmp(change_type, "Deleted") == 0  ? GUARD_DELETED
                                                               : -1;
                if (k < 0)
                        return;
                kinds = 1u << k;
        }
        int64_t age_ms = (now_s - received_s) * 1000;
        if (age_ms < 0)
                age_ms = 0; /* the wall clock stepped back: count it as now */
        for (int k = 0; k < GUARD_KINDS; k++)
                if (kinds & (1u << k))
                        guard_window_note(&p->windows[k], now_ms - age_ms);
}

uint64_t policy_longest_window(const struct policy *p)
{
        uint64_t longest = 0;
        for (int k = 0; k < GUARD_KINDS; k++)
                if (p->rules->rates[k].count && p->rules->rates[k].window_ms > longest)
                        longest = p->rules->rates[k].window_ms;
        return longest;
}

/* The rule a stored why names (journal_hold's text starts with the rule's key or says
 * which one it is behind). */
static enum guard_rule rule_of(const char *why)
{
        for (int r = GUARD_RULE_MAX_ADDED; why && r < GUARD_RULES; r++)
                if (strstr(why, guard_rule_key((enum guard_rule)r)))
                        return (enum guard_rule)r;
        return GUARD_RULE_MAX_DELETED;
}

struct seed {
        struct policy *p;
        int64_t now_s, now_ms;
};

static void seed_one(void *ctx, const char *change_type, unsigned guard_kinds, int64_t received_at)
{
        struct seed *s = ctx;
        policy_seed(s->p, change_type, guard_kinds, received_at, s->now_s, s->now_ms);
}

int policy_recover(struct policy *p, struct journal *j, const char *connector, int64_t now_s,
                   int64_t now_ms, size_t *nheld, struct ca_error *err)
{
        /* From empty, whatever this policy saw before: the journal is the record, and a
         * recovery may run again after one that failed half-way, or after a role lost and
         * taken back. */
        for (int k = 0; k < GUARD_KINDS; k++)
                guard_window_empty(&p->windows[k]);
        holds_clear(p);
        *nheld = 0;
        /* A restart must not give the server a fresh window: what was taken within the
         * longest one counts again. */
        uint64_t longest = policy_longest_window(p);
        struct seed seed = {p, now_s, now_ms};
        int rc = longest ? journal_recent_taken(j, connector, now_s - (int64_t)(longest / 1000) - 1,
                                                seed_one, &seed, err)
                         : 0;
        struct ca_order **held = NULL;
        char **whys = NULL;
        size_t n = 0;
        if (rc == 0)
                rc = journal_held(j, connector, &held, &whys, &n, err);
        for (size_t i = 0; rc == 0 && i < n; i++)
                if (policy_hold_add(p, held[i]->key, held[i]->assignment_id, rule_of(whys[i])) < 0)
                        rc = ca_error_set(err, -ENOMEM, "out of memory");
        if (rc == 0)
                *nheld = n;
        journal_orders_free(held, n);
        journal_whys_free(whys, n);
        return rc;
}

int policy_hold_add(struct policy *p, const char *key, const char *assignment, enum guard_rule rule)
{
        if (p->nholds == p->capholds) {
                size_t cap = p->capholds ? p->capholds * 2 : 16;
                struct hold *h = realloc(p->holds, cap * sizeof(*h));
                if (!h)
                        return -ENOMEM;
                p->holds = h;
                p->capholds = cap;
        }
        struct hold *h = &p->holds[p->nholds];
        h->key = strdup(key);
        h->assignment = strdup(assignment ? assignment : "");
        h->rule = rule;
        if (!h->key || !h->assignment) {
                free(h->key);
                free(h->assignment);
                return -ENOMEM;
        }
        p->nholds++;
        return 0;
}

int policy_hold_remove(struct policy *p, const char *key)
{
        for (size_t i = 0; i < p->nholds; i++) {
                if (strcmp(p->holds[i].key, key) != 0)
                        continue;
                free(p->holds[i].key);
                free(p->holds[i].assignment);
                memmove(&p->holds[i], &p->holds[i + 1], (p->nholds - i - 1) * sizeof(*p->holds));
                p->nholds--;
                return 1;
        }
        return 0;
}

size_t policy_held(const struct policy *p)
{
        return p ? p->nholds : 0;
}

const char *policy_held_key(const struct policy *p, size_t i)
{
        return i < p->nholds ? p->holds[i].key : NULL;
}

const char *policy_held_assignment(const struct policy *p, size_t i)
{
        return i < p->nholds ? p->holds[i].assignment : NULL;
}

int policy_assignment_held(const struct policy *p, const char *assignment, size_t before)
{
        for (size_t i = 0; i < before && i < p->nholds; i++)
                if (strcmp(p->holds[i].assignment, assignment ? assignment : "") == 0)
                        return 1;
        return 0;
}

enum guard_rule policy_held_rule(const struct policy *p)
{
        return p && p->nholds ? p->holds[0].rule : GUARD_RULES;
}

unsigned long policy_refused_by(const struct policy *p, enum guard_rule r)
{
        return p && r < GUARD_RULES ? p->refused[r] : 0;
}

unsigned long policy_holds_by(const struct policy *p, enum guard_rule r)
{
        return p && r < GUARD_RULES ? p->held[r] : 0;
}
