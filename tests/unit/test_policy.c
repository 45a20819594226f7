/* SPDX-License-Identifier: Apache-2.0 */
/* Guardrails: DN comparison, rule parsing and checks (common/guard.c), and the policy
 * step's verdicts, windows and hold index (agent/pipeline/policy.c), on a virtual clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "guard.h"
#include "journal.h"
#include "policy.h"

#define HOUR_MS (3600LL * 1000)

static void norm_eq(const char *dn, const char *want)
{
        char out[GUARD_TEXT_MAX];
        assert_int_equal(guard_dn_normalize(dn, out, sizeof(out)), 0);
        assert_string_equal(out, want);
}

static void test_dn_normalize(void **state)
{
        (void)state;
        norm_eq("CN=Domain Admins,CN=Users,DC=Example,DC=com",
                "cn=domain admins,cn=users,dc=example,dc=com");
        norm_eq("  cn = Domain Admins , cn=Users,dc=example,dc=com ",
                "cn=domain admins,cn=users,dc=example,dc=com");
        /* \, and \2C are the same comma, kept inside the value */
        norm_eq("cn=Bond\\, James,ou=people,dc=x", "cn=bond\\, james,ou=people,dc=x");
        norm_eq("cn=Bond\\2C James,ou=people,dc=x", "cn=bond\\, james,ou=people,dc=x");
        norm_eq("uid=a+cn=b,dc=x", "uid=a+cn=b,dc=x");
        char out[GUARD_TEXT_MAX];
        assert_int_equal(guard_dn_normalize("", out, sizeof(out)), -EINVAL);
        assert_int_equal(guard_dn_normalize("cn=x,,dc=y", out, sizeof(out)), -EINVAL);
        assert_int_equal(guard_dn_normalize("no equals", out, sizeof(out)), -EINVAL);
        assert_int_equal(guard_dn_normalize("cn=bad\\escape", out, sizeof(out)), -EINVAL);
        assert_int_equal(guard_dn_normalize("cn=x", out, 3), -ENAMETOOLONG);
        char dn[GUARD_TEXT_MAX];
        assert_int_equal(
            guard_dn_compose("uid", " Zoë, \"Ü\"+<x>;\\ ", "ou=People,dc=X", dn, sizeof(dn)), 0);
        norm_eq(dn, "uid=\\ zoë\\, \\\"Ü\\\"\\+\\<x\\>\\;\\\\\\ ,ou=people,dc=x");
}

static void test_subtree_and_glob(void **state)
{
        (void)state;
        assert_true(guard_dn_in_subtree("ou=a,dc=x", "ou=a,dc=x"));
        assert_true(guard_dn_in_subtree("cn=u,ou=a,dc=x", "ou=a,dc=x"));
        assert_false(guard_dn_in_subtree("cn=u,ou=ba,dc=x", "ou=a,dc=x"));
        assert_false(guard_dn_in_subtree("ou=a,dc=x", "cn=u,ou=a,dc=x"));
        /* an escaped comma is not an RDN boundary */
        assert_false(guard_dn_in_subtree("cn=u\\,ou=a,dc=x", "ou=a,dc=x"));
        assert_true(guard_dn_in_subtree("cn=u\\\\,ou=a,dc=x", "ou=a,dc=x"));
        assert_true(guard_glob_match("cn=adm-*,ou=a", "cn=adm-jo,ou=a"));
        assert_false(guard_glob_match("cn=adm-*,ou=a", "cn=jo,ou=a"));
        assert_true(guard_glob_match("*", ""));
        assert_true(guard_glob_match("a*b*c", "axxbyyc"));
        assert_false(guard_glob_match("a*b*c", "axxbyy"));
}

struct fixture {
        struct ca_config_connector conn;
        struct ca_config_resource_type rt;
        struct ca_setting items[8];
};

static void mapping(struct fixture *f, const char *const *kv)
{
        size_t n = 0;
        for (; kv[2 * n]; n++) {
                f->items[n].key = (char *)kv[2 * n];
                f->items[n].value = (char *)kv[2 * n + 1];
        }
        f->rt.settings.items = f->items;
        f->rt.settings.count = n;
        f->rt.identifier = "T";
        f->rt.connector = "c";
}

static struct ca_order *order(const char *json)
{
        json_error_t e;
        json_t *obj = json_loads(json, 0, &e);
        assert_non_null(obj);
        struct ca_order *o = NULL;
        struct ca_error err = {0};
        assert_int_equal(order_from_json(obj, &o, &err), 0);
        json_decref(obj);
        return o;
}

static struct ca_order *deleted(int i, const char *assignment)
{
        char json[512];
        snprintf(json, sizeof(json),
                 "{\"Id\":\"d%03d\",\"AssignedResourceTypeId\":\"%s\",\"ChangeType\":\"Deleted\","
                 "\"ResourceType\":{\"Identifier\":\"T\"},\"Resource\":{\"uid\":\"u%03d\"},"
                 "\"Changes\":{}}",
                 i, assignment, i);
        return order(json);
}

static const char *const ldap_map[] = {"base_dn",
                                       "ou=people,dc=example,dc=com",
                                       "rdn_attribute",
                                       "uid",
                                       "enabled_change",
                                       "enabled",
                                       "move_change",
                                       "parent",
                                       NULL};

static void ldap_fixture(struct fixture *f)
{
        memset(f, 0, sizeof(*f));
        f->conn.name = "c";
        f->conn.backend = "ldap";
        mapping(f, ldap_map);
}

static void test_parse_errors(void **state)
{
        (void)state;
        struct fixture f;
        ldap_fixture(&f);
        f.conn.protect = "cn=ok,dc=x; cn=x,,dc=y";
        f.conn.protect_subtree = "ou=*,dc=x";
        f.conn.max_deleted = "fifty/1h";
        f.conn.max_added = "10/0s";
        f.conn.max_disabled = "0/1h";
        f.conn.protect_table = "accounts"; /* not an sql connector */
        struct guard_rules *r = NULL;
        char why[4096];
        assert_int_equal(guard_rules_parse(&f.conn, &r, why, sizeof(why)), -EINVAL);
        assert_null(r);
        assert_non_null(strstr(why, "protect: item 2 (cn=x,,dc=y): not a DN"));
        assert_non_null(strstr(why, "protect_subtree: item 1 (ou=*,dc=x): a pattern"));
        assert_non_null(strstr(why, "max_deleted = fifty/1h"));
        assert_non_null(strstr(why, "max_added = 10/0s"));
        assert_non_null(strstr(why, "max_disabled = 0/1h"));
        assert_non_null(strstr(why, "protect_table: the agent reads tables and keys only from "
                                    "the sql back-end"));

        ldap_fixture(&f);
        assert_int_equal(guard_rules_parse(&f.conn, &r, why, sizeof(why)), 0);
        assert_true(guard_rules_empty(r));
        guard_rules_free(r);
        guard_rules_free(NULL);
}

static void test_window_virtual_clock(void **state)
{
        (void)state;
        struct guard_window w = {0};
        struct guard_rate rate = {3, 1000, "3/1s"};
        assert_int_equal(guard_window_set(&w, &rate), 0);
        for (int i = 0; i < 3; i++) {
                assert_true(guard_window_room(&w, 100 + i));
                guard_window_note(&w, 100 + i);
        }
        assert_false(guard_window_room(&w, 500));
        assert_false(guard_window_room(&w, 1099)); /* the first is 999 ms old */
        assert_true(guard_window_room(&w, 1100));  /* it slid out */
        assert_int_equal(guard_window_count(&w, 1100), 2);
        guard_window_note(&w, 1100);
        assert_false(guard_window_room(&w, 1100));
        /* shrink keeps the newest, grow keeps them all */
        struct guard_rate one = {1, 1000, "1/1s"};
        assert_int_equal(guard_window_set(&w, &one), 0);
        assert_int_equal(guard_window_count(&w, 1101), 1);
        struct guard_rate ten = {10, 1000, "10/1s"};
        assert_int_equal(guard_window_set(&w, &ten), 0);
        assert_int_equal(guard_window_count(&w, 1101), 1);
        assert_true(guard_window_room(&w, 1101));
        /* a release past the limit is recorded: the oldest gives way */
        struct guard_rate two = {2, 1000, "2/1s"};
        assert_int_equal(guard_window_set(&w, &two), 0);
        for (int i = 0; i < 5; i++)
                guard_window_note(&w, 1200);
        assert_int_equal(guard_window_count(&w, 1200), 2);
        guard_window_clear(&w);
        struct guard_window none = {0};
        assert_true(guard_window_room(&none, 0));
        guard_window_note(&none, 0);
}

static struct policy *policy_of(struct fixture *f)
{
        struct policy *p = NULL;
        struct ca_error err = {0};
        assert_int_equal(policy_new(&f->conn, &p, &err), 0);
        return p;
}

static enum policy_verdict judge(struct policy *p, struct fixture *f, const char *json, int64_t now,
                                 struct policy_decision *d)
{
        struct ca_order *o = order(json);
        enum policy_verdict v = policy_judge(p, o, &f->rt, now, d);
        order_free(o);
        return v;
}

static void test_protect_and_allow(void **state)
{
        (void)state;
        struct fixture f;
        ldap_fixture(&f);
        f.conn.protect = "CN=Domain Admins,OU=Groups,DC=example,DC=com; uid=adm-*,ou=people,"
                         "dc=example,dc=com";
        f.conn.protect_subtree = "OU=Service Accounts,DC=example,DC=com";
        f.conn.allow_subtree = "ou=people,dc=example,dc=com; ou=groups,dc=example,dc=com";
        struct policy *p = policy_of(&f);
        struct policy_decision d;

        /* a membership in the protected group */
        assert_int_equal(
            judge(p, &f,
                  "{\"Id\":\"m1\",\"AssignedResourceTypeId\":\"a\",\"ChangeType\":\"Modified\","
                  "\"Resource\":{\"uid\":\"jo\"},\"Changes\":{\"memberOf_add\":"
                  "[\"ou=x,ou=groups,dc=example,dc=com\",\"cn=domain admins,ou=groups,"
                  "dc=example,dc=com\"]}}",
                  0, &d),
            POLICY_REFUSE);
        assert_int_equal(d.rule, GUARD_RULE_PROTECT);
        assert_non_null(strstr(d.why, "protect = CN=Domain Admins,OU=Groups,DC=example,DC=com"));
        assert_non_null(strstr(d.why, "adds or removes a member of group"));
        assert_string_equal(d.target, "uid=jo,ou=people,dc=example,dc=com (and its groups)");

        /* a pattern */
        assert_int_equal(
            judge(p, &f,
                  "{\"Id\":\"m2\",\"AssignedResourceTypeId\":\"a\",\"ChangeType\":\"Deleted\","
                  "\"Resource\":{\"uid\":\"ADM-root\"},\"Changes\":{}}",
                  0, &d),
            POLICY_REFUSE);
        assert_int_equal(d.rule, GUARD_RULE_PROTECT);
        assert_non_null(strstr(d.why, "the order deletes uid=ADM-root,ou=people"));

        /* outside every allowed subtree, by an explicit dn */
        assert_int_equal(
            judge(p, &f,
                  "{\"Id\":\"m3\",\"AssignedResourceTypeId\":\"a\",\"ChangeType\":\"Added\","
                  "\"Changes\":{\"dn\":\"uid=x,ou=elsewhere,dc=example,dc=com\"}}",
                  0, &d),
            POLICY_REFUSE);
        assert_int_equal(d.rule, GUARD_RULE_ALLOW_SUBTREE);
        assert_non_null(strstr(d.why, "outside every allowed subtree"));

        /* the protected subtree, by a move */
        assert_int_equal(
            judge(p, &f,
                  "{\"Id\":\"m4\",\"AssignedResourceTypeId\":\"a\",\"ChangeType\":\"Modified\","
                  "\"Resource\":{\"uid\":\"jo\"},\"Changes\":{\"parent\":"
                  "\"ou=service accounts,dc=example,dc=com\"}}",
                  0, &d),
            POLICY_REFUSE);
        assert_int_equal(d.rule, GUARD_RULE_PROTECT_SUBTREE);

        /* an ordinary one passes */
        assert_int_equal(
            judge(p, &f,
                  "{\"Id\":\"m5\",\"AssignedResourceTypeId\":\"a\",\"ChangeType\":\"Modified\","
                  "\"Resource\":{\"uid\":\"jo\"},\"Changes\":{\"mail\":\"j@x\"}}",
                  0, &d),
            POLICY_ADMIT);
        assert_int_equal(policy_refused_by(p, GUARD_RULE_PROTECT), 2);
        assert_int_equal(policy_refused_by(p, GUARD_RULE_ALLOW_SUBTREE), 1);
        assert_int_equal(policy_refused_by(p, GUARD_RULE_PROTECT_SUBTREE), 1);
        policy_free(p);
        policy_free(NULL);
}

static void test_sql_rules(void **state)
{
        (void)state;
        struct fixture f;
        memset(&f, 0, sizeof(f));
        f.conn.name = "c";
        f.conn.backend = "sql";
        f.conn.protect_key = "accounts:root; svc-*";
        f.conn.allow_table = "accounts; links";
        static const char *const map[] = {
            "table", "accounts", "key_column", "login", "membership_table", "audit", NULL};
        mapping(&f, map);
        struct policy *p = policy_of(&f);
        struct policy_decision d;
        assert_int_equal(judge(p, &f,
                               "{\"Id\":\"s1\",\"AssignedResourceTypeId\":\"a\",\"ChangeType\":"
                               "\"Deleted\",\"Resource\":{\"login\":\"Root\"},\"Changes\":{}}",
                               0, &d),
                         POLICY_REFUSE);
        assert_int_equal(d.rule, GUARD_RULE_PROTECT_KEY);
        assert_string_equal(d.target, "accounts Root");
        assert_int_equal(judge(p, &f,
                               "{\"Id\":\"s2\",\"AssignedResourceTypeId\":\"a\",\"ChangeType\":"
                               "\"Added\",\"Changes\":{\"login\":\"svc-x\"}}",
                               0, &d),
                         POLICY_REFUSE);
        /* memberships write the link table, which is not allowed */
        assert_int_equal(judge(p, &f,
                               "{\"Id\":\"s3\",\"AssignedResourceTypeId\":\"a\",\"ChangeType\":"
                               "\"Modified\",\"Resource\":{\"login\":\"jo\"},\"Changes\":"
                               "{\"memberOf_add\":[\"g\"]}}",
                               0, &d),
                         POLICY_REFUSE);
        assert_int_equal(d.rule, GUARD_RULE_ALLOW_TABLE);
        assert_non_null(strstr(d.why, "table audit"));
        assert_int_equal(judge(p, &f,
                               "{\"Id\":\"s4\",\"AssignedResourceTypeId\":\"a\",\"ChangeType\":"
                               "\"Modified\",\"Resource\":{\"login\":\"jo\"},\"Changes\":"
                               "{\"mail\":\"x\"}}",
                               0, &d),
                         POLICY_ADMIT);
        policy_free(p);
}

/* 500 Deleted against 50/1h: the first 50 pass, 450 are held; an hour later the window
 * has room again, but an assignment with a held order stays behind it. */
static void test_burst_held(void **state)
{
        (void)state;
        struct fixture f;
        ldap_fixture(&f);
        f.conn.max_deleted = "50/1h";
        struct policy *p = policy_of(&f);
        struct policy_decision d;
        size_t admitted = 0, held = 0;
        for (int i = 0; i < 500; i++) {
                char assignment[16];
                snprintf(assignment, sizeof(assignment), "a%03d", i);
                struct ca_order *o = deleted(i, assignment);
                enum policy_verdict v = policy_judge(p, o, &f.rt, i, &d);
                if (v == POLICY_ADMIT) {
                        assert_true(i < 50); /* in order: the first ones */
                        admitted++;
                } else {
                        assert_int_equal(v, POLICY_HOLD);
                        assert_int_equal(d.rule, GUARD_RULE_MAX_DELETED);
                        assert_non_null(strstr(d.why, "max_deleted = 50/1h: 50 Deleted orders"));
                        assert_int_equal(policy_hold_add(p, o->key, o->assignment_id, d.rule), 0);
                        held++;
                }
                order_free(o);
        }
        assert_int_equal(admitted, 50);
        assert_int_equal(held, 450);
        assert_int_equal(policy_held(p), 450);
        assert_int_equal(policy_holds_by(p, GUARD_RULE_MAX_DELETED), 450);
        assert_string_equal(policy_held_key(p, 0), "d050");

        /* An hour later the window is free; a new order of held assignment a100 waits
         * behind d100, one of a fresh assignment runs. */
        struct ca_order *o = deleted(600, "a100");
        assert_int_equal(policy_judge(p, o, &f.rt, HOUR_MS + 500, &d), POLICY_HOLD);
        assert_true(d.behind);
        assert_non_null(strstr(d.why, "behind held order d100"));
        order_free(o);
        o = deleted(601, "fresh");
        assert_int_equal(policy_judge(p, o, &f.rt, HOUR_MS + 500, &d), POLICY_ADMIT);
        order_free(o);

        assert_true(policy_assignment_held(p, "a100", policy_held(p)));
        assert_false(policy_assignment_held(p, "a100", 10)); /* d100 is the 51st */
        assert_int_equal(policy_hold_remove(p, "d100"), 1);
        assert_int_equal(policy_hold_remove(p, "d100"), 0);
        assert_false(policy_assignment_held(p, "a100", policy_held(p)));
        policy_free(p);
}

static void test_disabled_and_groups_kinds(void **state)
{
        (void)state;
        struct fixture f;
        ldap_fixture(&f);
        f.conn.max_disabled = "1/1h";
        f.conn.max_group_changes = "1/1h";
        struct policy *p = policy_of(&f);
        struct policy_decision d;
#define DISABLE                                                                                    \
        "{\"Id\":\"x%d\",\"AssignedResourceTypeId\":\"a\",\"ChangeType\":"                         \
        "\"Modified\",\"Resource\":{\"uid\":\"jo\"},\"Changes\":"                                  \
        "{\"enabled\":\"false\"}}"
        char json[512];
        snprintf(json, sizeof(json), DISABLE, 1);
        assert_int_equal(judge(p, &f, json, 0, &d), POLICY_ADMIT);
        /* What it counts as, for the journal to keep. */
        assert_int_equal(d.kinds, (1u << GUARD_MODIFIED) | (1u << GUARD_DISABLED));
        snprintf(json, sizeof(json), DISABLE, 2);
        assert_int_equal(judge(p, &f, json, 1, &d), POLICY_HOLD);
        assert_int_equal(d.rule, GUARD_RULE_MAX_DISABLED);
        /* enabling is not disabling */
        assert_int_equal(
            judge(p, &f,
                  "{\"Id\":\"x3\",\"AssignedResourceTypeId\":\"b\",\"ChangeType\":\"Modified\","
                  "\"Resource\":{\"uid\":\"jo\"},\"Changes\":{\"enabled\":true}}",
                  2, &d),
            POLICY_ADMIT);
#define GROUP                                                                                      \
        "{\"Id\":\"g%d\",\"AssignedResourceTypeId\":\"c\",\"ChangeType\":"                         \
        "\"Modified\",\"Resource\":{\"uid\":\"jo\"},\"Changes\":"                                  \
        "{\"memberOf_remove\":\"cn=g,ou=groups,dc=x\"}}"
        snprintf(json, sizeof(json), GROUP, 1);
        assert_int_equal(judge(p, &f, json, 3, &d), POLICY_ADMIT);
        snprintf(json, sizeof(json), GROUP, 2);
        assert_int_equal(judge(p, &f, json, 4, &d), POLICY_HOLD);
        assert_int_equal(d.rule, GUARD_RULE_MAX_GROUP_CHANGES);
        policy_free(p);
}

/* After a restart, the disabling and group windows hold what the journal kept of the
 * orders' kinds, not only their change types. */
static void test_seed_kinds(void **state)
{
        (void)state;
        struct fixture f;
        ldap_fixture(&f);
        f.conn.max_disabled = "2/1h";
        f.conn.max_group_changes = "1/1h";
        struct policy *p = policy_of(&f);
        const int64_t now_s = 1800000000, now_ms = 5000;
        const unsigned disabling = (1u << GUARD_MODIFIED) | (1u << GUARD_DISABLED);
        policy_seed(p, "Modified", disabling, now_s - 60, now_s, now_ms);
        policy_seed(p, "Modified", disabling, now_s - 30, now_s, now_ms);
        policy_seed(p, "Modified", (1u << GUARD_MODIFIED) | (1u << GUARD_GROUP), now_s - 10, now_s,
                    now_ms);
        struct policy_decision d;
        char json[512];
        snprintf(json, sizeof(json), DISABLE, 9);
        assert_int_equal(judge(p, &f, json, now_ms, &d), POLICY_HOLD);
        assert_int_equal(d.rule, GUARD_RULE_MAX_DISABLED);
        snprintf(json, sizeof(json), GROUP, 9);
        assert_int_equal(judge(p, &f, json, now_ms, &d), POLICY_HOLD);
        assert_int_equal(d.rule, GUARD_RULE_MAX_GROUP_CHANGES);
        /* A plain modification is neither. */
        assert_int_equal(
            judge(p, &f,
                  "{\"Id\":\"m9\",\"AssignedResourceTypeId\":\"m\",\"ChangeType\":\"Modified\","
                  "\"Resource\":{\"uid\":\"jo\"},\"Changes\":{\"mail\":\"j@x\"}}",
                  now_ms, &d),
            POLICY_ADMIT);
        policy_free(p);
}

/* A recovery that runs again (the first failed half-way through a takeover, or a role was
 * lost and taken back) rebuilds the windows and the hold index from the journal alone:
 * nothing counts twice, and what the policy saw before is forgotten. */
static void test_recover_again(void **state)
{
        (void)state;
        char dir[] = "/tmp/ca-policy-XXXXXX", path[64];
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/journal.db", dir);
        struct journal *j = NULL;
        struct ca_error err = {0};
        assert_int_equal(journal_open(path, 1, &j, &err), 0);
        struct fixture f;
        ldap_fixture(&f);
        f.conn.max_deleted = "5/1h";
        struct policy *p = policy_of(&f);
        struct policy_decision d;
        /* Three Deleted orders taken, two held (in one assignment) past the limit. */
        for (int i = 0; i < 5; i++) {
                struct ca_order *o = deleted(i, i < 3 ? "a" : "h");
                assert_int_equal(policy_judge(p, o, &f.rt, 0, &d), POLICY_ADMIT);
                int rc = i < 3 ? journal_queue(j, f.conn.name, o, &err)
                               : journal_hold(j, f.conn.name, o, "max_deleted = 5/1h: test", &err);
                assert_int_equal(rc, 0);
                order_free(o);
        }
        assert_int_equal(journal_commit(j, &err), 0);
        /* What the policy saw before (5 admissions, and a stale hold) is not the record. */
        assert_int_equal(policy_hold_add(p, "stale", "s", GUARD_RULE_MAX_DELETED), 0);
        const int64_t now_s = time(NULL), now_ms = 1000;
        size_t nheld = 0;
        for (int round = 0; round < 3; round++) {
                assert_int_equal(policy_recover(p, j, f.conn.name, now_s, now_ms, &nheld, &err), 0);
                assert_int_equal(nheld, 2);
                assert_int_equal(policy_held(p), 2);
        }
        assert_string_equal(policy_held_key(p, 0), "d003");
        assert_string_equal(policy_held_key(p, 1), "d004");
        assert_int_equal(policy_held_rule(p), GUARD_RULE_MAX_DELETED);
        /* Three of five used: two more fit, the next is held. */
        for (int i = 10; i < 13; i++) {
                struct ca_order *o = deleted(i, "n");
                assert_int_equal(policy_judge(p, o, &f.rt, now_ms, &d),
                                 i < 12 ? POLICY_ADMIT : POLICY_HOLD);
                order_free(o);
        }
        policy_free(p);
        journal_close(j);
        const char *const ext[] = {"", "-wal", "-shm"};
        for (int i = 0; i < 3; i++) {
                char q[96];
                snprintf(q, sizeof(q), "%s%s", path, ext[i]);
                unlink(q);
        }
        snprintf(path, sizeof(path), "%s/journal.key", dir);
        unlink(path);
        assert_int_equal(rmdir(dir), 0);
}

static void test_reload_loosened(void **state)
{
        (void)state;
        struct fixture f;
        ldap_fixture(&f);
        f.conn.protect = "cn=a,dc=x; cn=b,dc=x";
        f.conn.allow_subtree = "ou=p,dc=x";
        f.conn.max_deleted = "50/1h";
        struct policy *p = policy_of(&f);
        struct policy_decision d;
        for (int i = 0; i < 50; i++) {
                struct ca_order *o = deleted(i, "a");
                policy_judge(p, o, &f.rt, i, &d);
                order_free(o);
        }
        char why[1024];
        struct ca_error err = {0};
        struct ca_config_connector same = f.conn;
        same.protect = "CN=B,DC=X;cn=a,dc=x"; /* the same rules, written otherwise */
        assert_int_equal(policy_reload(p, &same, why, sizeof(why), &err), 0);
        struct ca_config_connector loose = f.conn;
        loose.protect = "cn=a,dc=x";
        loose.allow_subtree = NULL;
        loose.max_deleted = "100/1h";
        assert_int_equal(policy_reload(p, &loose, why, sizeof(why), &err), 3);
        assert_non_null(strstr(why, "protect no longer has CN=B,DC=X"));
        assert_non_null(strstr(why, "allow_subtree removed"));
        assert_non_null(strstr(why, "max_deleted 50/1h -> 100/1h"));
        /* the window survived the reload: 50 used, 50 left */
        struct ca_order *o = deleted(99, "z");
        assert_int_equal(policy_judge(p, o, &f.rt, 100, &d), POLICY_ADMIT);
        order_free(o);
        struct ca_config_connector bad = f.conn;
        bad.max_deleted = "lots";
        assert_int_equal(policy_reload(p, &bad, why, sizeof(why), &err), -EINVAL);
        assert_non_null(strstr(err.msg, "max_deleted = lots"));
        /* tighter is not loosened */
        struct ca_config_connector tight = loose;
        tight.max_deleted = "10/1h";
        assert_int_equal(policy_reload(p, &tight, why, sizeof(why), &err), 0);
        policy_free(p);
}

/* After a restart the windows hold what the journal says was taken within them. */
static void test_seed_from_journal(void **state)
{
        (void)state;
        struct fixture f;
        ldap_fixture(&f);
        f.conn.max_deleted = "50/1h";
        f.conn.max_added = "1/1m";
        struct policy *p = policy_of(&f);
        assert_int_equal(policy_longest_window(p), (uint64_t)HOUR_MS);
        const int64_t now_s = 1800000000, now_ms = 5000;
        for (int i = 0; i < 50; i++)
                policy_seed(p, "Deleted", 0, now_s - 600, now_s, now_ms); /* 10 min ago */
        policy_seed(p, "Added", 0, now_s - 120, now_s, now_ms);           /* out of its 1m */
        policy_seed(p, "Unknown", 0, now_s, now_s, now_ms);               /* ignored */
        struct policy_decision d;
        struct ca_order *o = deleted(1, "a");
        assert_int_equal(policy_judge(p, o, &f.rt, now_ms, &d), POLICY_HOLD);
        assert_int_equal(d.rule, GUARD_RULE_MAX_DELETED);
        /* 50 min later the seeded ones slid out */
        assert_int_equal(policy_judge(p, o, &f.rt, now_ms + 50 * 60 * 1000 + 1, &d), POLICY_ADMIT);
        order_free(o);
        o = order("{\"Id\":\"n1\",\"AssignedResourceTypeId\":\"b\",\"ChangeType\":"
                  "\"Added\",\"Changes\":{\"uid\":\"n\"}}");
        assert_int_equal(policy_judge(p, o, &f.rt, now_ms, &d), POLICY_ADMIT);
        order_free(o);
        policy_free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_dn_normalize),
            cmocka_unit_test(test_subtree_and_glob),
            cmocka_unit_test(test_parse_errors),
            cmocka_unit_test(test_window_virtual_clock),
            cmocka_unit_test(test_protect_and_allow),
            cmocka_unit_test(test_sql_rules),
            cmocka_unit_test(test_burst_held),
            cmocka_unit_test(test_disabled_and_groups_kinds),
            cmocka_unit_test(test_reload_loosened),
            cmocka_unit_test(test_seed_from_journal),
            cmocka_unit_test(test_seed_kinds),
            cmocka_unit_test(test_recover_again),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
