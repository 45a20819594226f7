/* ldap_escape: DNs and filter values built by libldap's own escaping, never by splicing
 * text. An RDN is an LDAPAVA handed to ldap_rdn2str (RFC 4514: ',', '+', '"', '\\', '<',
 * '>', ';', '=', a leading '#' or space and a trailing space come out as \XX; with
 * LDAP_DN_PRETTY, UTF-8 stays as it is); a filter value goes through
 * ldap_bv2escaped_filter_value (RFC 4515: '*', '(', ')', '\\', NUL, and every non-ASCII
 * byte as \XX). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

char *lb_dn_build(const char *attr, const char *value, const char *base_dn)
{
        char *rdn_text = NULL;
        char *out = NULL;

        if (!lb_attr_valid(attr) || !value || !lb_dn_valid(base_dn))
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
                goto out;
        size_t len = strlen(rdn_text) + 1 + strlen(base_dn) + 1;
        out = malloc(len);
        if (out)
                snprintf(out, len, "%s,%s", rdn_text, base_dn);
out:
        ldap_memfree(rdn_text);
        return out;
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
