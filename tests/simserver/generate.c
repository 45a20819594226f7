/* SPDX-License-Identifier: Apache-2.0 */
/* generate: realistic provisioning orders for load and demo runs. Users are numbered
 * per connector (uid user00001...), mostly Added, with a Modified (new mail, group
 * moved) and a Deleted of earlier users now and then. Deterministic: the same count
 * always gives the same orders, so tests can predict them. */
#include "simserver.h"

#include <errno.h>
#include <stdio.h>

static const char *const given_names[] = {"James",   "Ada",  "Grace",  "Alan",     "Linus",
                                          "Barbara", "Ken",  "Dennis", "Margaret", "Edsger",
                                          "Frances", "John", "Radia",  "Tim",      "Hedy"};
static const char *const surnames[] = {"Bond",   "Lovelace", "Hopper",  "Turing",      "Torvalds",
                                       "Liskov", "Thompson", "Ritchie", "Hamilton",    "Dijkstra",
                                       "Allen",  "McCarthy", "Perlman", "Berners-Lee", "Lamarr"};
static const char *const groups[] = {"staff", "engineering", "sales", "support", "finance"};
#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

static json_t *resource_type_json(const char *rt)
{
        return json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s}}", "Id", "-41", "Identifier", rt,
                         "SourceEntityType", "Id", "51", "Identifier", "Directory_User",
                         "TargetEntityType", "Id", "70", "Identifier", "LDAP_User");
}

static json_t *owner_json(unsigned long u)
{
        char id[32], ident[32], disp[128];
        snprintf(id, sizeof(id), "2%05lu", u);
        snprintf(ident, sizeof(ident), "user%05lu", u);
        snprintf(disp, sizeof(disp), "user%05lu - %s %s", u, surnames[u % NELEMS(surnames)],
                 given_names[u % NELEMS(given_names)]);
        return json_pack("{s:s, s:s, s:s}", "Id", id, "Identifier", ident, "InternalDisplayName",
                         disp);
}

static char *group_dn(unsigned long k, char *buf, size_t len)
{
        snprintf(buf, len, "cn=%s,ou=groups,dc=example,dc=com", groups[k % NELEMS(groups)]);
        return buf;
}

static json_t *make_order(unsigned long seq, unsigned long u, const char *change, const char *rt,
                          int with_id)
{
        char uid[32], mail[128], assign[32], wf[32], id[32], g1[96], g2[96];
        const char *given = given_names[u % NELEMS(given_names)];
        const char *sn = surnames[u % NELEMS(surnames)];
        snprintf(uid, sizeof(uid), "user%05lu", u);
        snprintf(assign, sizeof(assign), "39%05lu", u);
        snprintf(wf, sizeof(wf), "%lu", 1000 + seq);
        snprintf(id, sizeof(id), "gen-%06lu", seq);
        group_dn(u, g1, sizeof(g1));
        group_dn(u + 1, g2, sizeof(g2));
        json_t *changes, *resource = json_pack("{s:s}", "uid", uid);
        const char *workflow;
        if (change[0] == 'A') {
                snprintf(mail, sizeof(mail), "%s.%s.%05lu@example.com", given, sn, u);
                changes = json_pack("{s:s, s:s, s:s, s:s, s:s, s:[s], s:[]}", "uid", uid,
                                    "givenName", given, "sn", sn, "cn", uid, "mail", mail,
                                    "memberOf_add", g1, "memberOf_remove");
                workflow = "Directory_User_StartPersonnel";
        } else if (change[0] == 'M') {
                snprintf(mail, sizeof(mail), "%s.%s.%05lu@corp.example.com", given, sn, u);
                changes = json_pack("{s:s, s:s, s:[s], s:[s]}", "mail", mail, "title",
                                    "Senior Engineer", "memberOf_add", g2, "memberOf_remove", g1);
                workflow = "Directory_User_ChangePosition";
        } else {
                changes = json_object();
                workflow = "Directory_User_EndPersonnel";
        }
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:{s:s}}", "AssignedResourceTypeId",
                      assign, "ChangeType", change, "WorkflowInstanceId", wf, "Owner",
                      owner_json(u), "ResourceType", resource_type_json(rt), "Changes", changes,
                      "Resource", resource, "Arguments", "WorkflowIdentifier", workflow);
        if (o && with_id)
                json_object_set_new(o, "Id", json_string(id));
        return o;
}

int generate_orders(struct sim *s, const char *connector, long count, const char *resource_type,
                    int with_ids, struct ca_error *err)
{
        if (count < 0 || count > SIM_MAX_ORDERS)
                return ca_error_set(err, -EINVAL, "count must be 0..%d", SIM_MAX_ORDERS);
        struct sim_connector *c = store_connector(s, connector, 1);
        if (!c)
                return ca_error_set(err, -ENOSPC, "cannot add connector '%s'", connector);
        for (long i = 0; i < count; i++) {
                unsigned long seq = ++c->gen_seq;
                const char *change = "Added";
                unsigned long u;
                /* Every tenth order deletes the user added two before the latest, every tenth
                 * (offset 5) modifies the latest one: never the same user twice, never a
                 * user that was not added. */
                if (seq % 10 == 0 && c->gen_users > 2) {
                        change = "Deleted";
                        u = c->gen_users - 2;
                } else if (seq % 10 == 5 && c->gen_users > 1) {
                        change = "Modified";
                        u = c->gen_users - 1;
                } else {
                        u = ++c->gen_users;
                }
                json_t *o = make_order(seq, u, change, resource_type, with_ids);
                if (!o)
                        return ca_error_set(err, -ENOMEM, "out of memory");
                int rc = store_add_order(s, connector, o, 0, err);
                json_decref(o);
                if (rc < 0)
                        return rc;
        }
        return 0;
}
