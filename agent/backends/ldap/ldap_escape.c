/* SPDX-License-Identifier: Apache-2.0 */
/* ldap_escape: DNs and filter values built by libldap's own escaping, never by splicing
 * text. An RDN is an LDAPAVA handed to ldap_rdn2str (RFC 4514: ',', '+', '"', '\\', '<',
 * '>', ';', '=', a leading '#' or space and a trailing space come out as \XX; with
 * LDAP_DN_PRETTY, UTF-8 stays as it is); a filter value goes through
 * ldap_bv2escaped_filter_value (RFC 4515: '*', '(', ')', '\\', NUL, and every non-ASCII
 * byte as \XX). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ldap_backend.h"

static int oid_valid(const char *s)
{
        int digits = 0;
        for (; *s; s++) {
                if (*s >= '0' && *s <= '9') {
                        digits++;
                } else if (*s == '.' && digits) {
                        digits = 0;
                } else {
                        return 0;
                }
        }
        return digits > 0;
}

int lb_attr_valid(const char *name)
{
        if (!name || !*name || strlen(name) > LB_ATTR_MAX)
                return 0;
        char buf[LB_ATTR_MAX + 1];
        snprintf(buf, sizeof(buf), "%s", name);
        char *save = NULL;
        char *part = strtok_r(buf, ";", &save);
        /* strtok_r skips leading separators: ";cn" must not pass as "cn". */
        if (!part || name[0] == ';' || name[strlen(name) - 1] == ';' || strstr(name, ";;"))
                return 0;
        /* The attribute type: a descriptor (ALPHA *(ALPHA / DIGIT / "-")) or an OID. */
        if (part[0] >= '0' && part[0] <= '9') {
                if (!oid_valid(part))
                        return 0;
        } else {
                for (const char *p = part; *p; p++) {
                        int alpha = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z');
                        int ok = alpha || (p != part && ((*p >= '0' && *p <= '9') || *p == '-'));
                        if (!ok)
                                return 0;
                }
        }
        /* Options: 1*(ALPHA / DIGIT / "-"). */
        while ((part = strtok_r(NULL, ";", &save))) {
                for (const char *p = part; *p; p++) {
                        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                              (*p >= '0' && *p <= '9') || *p == '-'))
                                return 0;
                }
        }
        return 1;
}

int lb_dn_valid(const char *text)
{
        LDAPDN dn = NULL;
        if (!text || !*text)
                return 0;
        int rc = ldap_str2dn(text, &dn, LDAP_DN_FORMAT_LDAPV3);
        ldap_dnfree(dn);
        return rc == LDAP_SUCCESS;
}

char *lb_rdn_build(const char *attr, const char *value)
{
        char *rdn_text = NULL;
        if (!lb_attr_valid(attr) || !value)
                return NULL;
        LDAPAVA ava;
        memset(&ava, 0, sizeof(ava));
        ava.la_attr.bv_val = (char *)attr;
        ava.la_attr.bv_len = strlen(attr);
        ava.la_value.bv_val = (char *)value;
        ava.la_value.bv_len = strlen(value);
        ava.la_flags = LDAP_AVA_STRING;
        LDAPAVA *rdn[2] = {&ava, NULL};
        if (ldap_rdn2str(rdn, &rdn_text, LDAP_DN_FORMAT_LDAPV3 | LDAP_DN_PRETTY) != LDAP_SUCCESS)
                return NULL;
        char *out = strdup(rdn_text);
        ldap_memfree(rdn_text);
        return out;
}

char *lb_dn_build(const char *attr, const char *value, const char *base_dn)
{
        if (!lb_dn_valid(base_dn))
                return NULL;
        char *rdn = lb_rdn_build(attr, value);
        return rdn ? lb_dn_join(rdn, base_dn, 1) : NULL;
}

char *lb_dn_join(char *rdn, const char *parent, int free_rdn)
{
        size_t len = strlen(rdn) + 1 + strlen(parent) + 1;
        char *out = malloc(len);
        if (out)
                snprintf(out, len, "%s,%s", rdn, parent);
        if (free_rdn)
                free(rdn);
        return out;
}

int lb_dn_split(const char *dn, char **rdn, char **parent)
{
        LDAPDN parsed = NULL;
        char *r = NULL, *pa = NULL;
        *rdn = *parent = NULL;
        if (ldap_str2dn(dn, &parsed, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS || !parsed ||
            !parsed[0]) {
                ldap_dnfree(parsed);
                return -1;
        }
        int rc = ldap_rdn2str(parsed[0], &r, LDAP_DN_FORMAT_LDAPV3 | LDAP_DN_PRETTY);
        if (rc == LDAP_SUCCESS)
                rc = ldap_dn2str(parsed + 1, &pa, LDAP_DN_FORMAT_LDAPV3 | LDAP_DN_PRETTY);
        ldap_dnfree(parsed);
        if (rc == LDAP_SUCCESS) {
                *rdn = strdup(r);
                *parent = strdup(pa ? pa : "");
        }
        ldap_memfree(r);
        ldap_memfree(pa);
        if (!*rdn || !*parent) {
                free(*rdn);
                free(*parent);
                *rdn = *parent = NULL;
                return -1;
        }
        return 0;
}

int lb_dn_equal(const char *a, const char *b)
{
        struct berval in_a = {.bv_len = strlen(a), .bv_val = (char *)a};
        struct berval in_b = {.bv_len = strlen(b), .bv_val = (char *)b};
        struct berval na = {0, NULL}, nb = {0, NULL};
        int eq = 0;
        if (ldap_dn_normalize(in_a.bv_val, LDAP_DN_FORMAT_LDAPV3, &na.bv_val,
                              LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS &&
            ldap_dn_normalize(in_b.bv_val, LDAP_DN_FORMAT_LDAPV3, &nb.bv_val,
                              LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS)
                eq = strcasecmp(na.bv_val, nb.bv_val) == 0;
        else
                eq = strcasecmp(a, b) == 0;
        ldap_memfree(na.bv_val);
        ldap_memfree(nb.bv_val);
        return eq;
}

char *lb_filter_value(const char *value)
{
        struct berval in = {.bv_len = strlen(value), .bv_val = (char *)value};
        struct berval escaped = {0, NULL};
        if (ldap_bv2escaped_filter_value(&in, &escaped) != 0)
                return NULL;
        char *out = strdup(escaped.bv_val ? escaped.bv_val : "");
        ber_memfree(escaped.bv_val);
        return out;
}
