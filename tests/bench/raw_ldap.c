/* SPDX-License-Identifier: Apache-2.0 */
/* raw_ldap: the raw client the ldap back-end is measured against (tests/bench/bench.py,
 * part "ldaprounds"): one connection, bound once, then one synchronous libldap call per
 * entry, the same adds, modifies and deletes as the agent's orders. Not part of the
 * product or of CI.
 *
 *   raw_ldap URI BIND_DN PASSWORD_FILE BASE Added|Modified|Deleted FROM TO
 *
 * Entries are uid=bench%06d,BASE for FROM <= i < TO (LDAPTLS_CACERT for ldaps). */
#include <ldap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static LDAPMod *mod(int op, char *type, char *value, LDAPMod *m, char **vals)
{
        vals[0] = value;
        vals[1] = NULL;
        m->mod_op = op;
        m->mod_type = type;
        m->mod_values = vals;
        return m;
}

int main(int argc, char **argv)
{
        if (argc != 8) {
                fprintf(stderr, "usage: raw_ldap URI BIND_DN PASSWORD_FILE BASE CHANGE FROM TO\n");
                return 2;
        }
        const char *change = argv[5];
        int from = atoi(argv[6]), to = atoi(argv[7]);
        char pw[256] = "";
        FILE *f = fopen(argv[3], "r");
        if (!f || !fgets(pw, sizeof(pw), f)) {
                fprintf(stderr, "raw_ldap: cannot read %s\n", argv[3]);
                return 1;
        }
        fclose(f);
        pw[strcspn(pw, "\r\n")] = '\0';
        LDAP *ld = NULL;
        int v3 = LDAP_VERSION3;
        if (ldap_initialize(&ld, argv[1]) != LDAP_SUCCESS)
                return 1;
        ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
        struct berval cred = {strlen(pw), pw};
        int rc = ldap_sasl_bind_s(ld, argv[2], LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
        if (rc != LDAP_SUCCESS) {
                fprintf(stderr, "raw_ldap: bind: %s\n", ldap_err2string(rc));
                return 1;
        }
        for (int i = from; i < to; i++) {
                char dn[256], uid[32], given[32], sn[32], cn[32], mail[64], title[32];
                snprintf(uid, sizeof(uid), "bench%06d", i);
                snprintf(dn, sizeof(dn), "uid=%s,%s", uid, argv[4]);
                if (strcmp(change, "Added") == 0) {
                        snprintf(given, sizeof(given), "Given%d", i);
                        snprintf(sn, sizeof(sn), "Surname%d", i);
                        snprintf(cn, sizeof(cn), "User %d", i);
                        snprintf(mail, sizeof(mail), "%s@example.com", uid);
                        LDAPMod m[6];
                        char *v[6][2];
                        LDAPMod *mods[] = {
                            mod(LDAP_MOD_ADD, "objectClass", "inetOrgPerson", &m[0], v[0]),
                            mod(LDAP_MOD_ADD, "uid", uid, &m[1], v[1]),
                            mod(LDAP_MOD_ADD, "givenName", given, &m[2], v[2]),
                            mod(LDAP_MOD_ADD, "sn", sn, &m[3], v[3]),
                            mod(LDAP_MOD_ADD, "cn", cn, &m[4], v[4]),
                            mod(LDAP_MOD_ADD, "mail", mail, &m[5], v[5]),
                            NULL};
                        rc = ldap_add_ext_s(ld, dn, mods, NULL, NULL);
                } else if (strcmp(change, "Modified") == 0) {
                        snprintf(mail, sizeof(mail), "%s@corp.example.com", uid);
                        snprintf(title, sizeof(title), "Engineer %d", i);
                        LDAPMod m[2];
                        char *v[2][2];
                        LDAPMod *mods[] = {mod(LDAP_MOD_REPLACE, "mail", mail, &m[0], v[0]),
                                           mod(LDAP_MOD_REPLACE, "title", title, &m[1], v[1]),
                                           NULL};
                        rc = ldap_modify_ext_s(ld, dn, mods, NULL, NULL);
                } else {
                        rc = ldap_delete_ext_s(ld, dn, NULL, NULL);
                }
                if (rc != LDAP_SUCCESS) {
                        fprintf(stderr, "raw_ldap: %s %s: %s\n", change, dn, ldap_err2string(rc));
                        return 1;
                }
        }
        ldap_unbind_ext_s(ld, NULL, NULL);
        return 0;
}
