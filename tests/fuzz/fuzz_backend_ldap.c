/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the ldap back-end's translation of an order: DN building and
 * escaping (RFC 4514), filter escaping (RFC 4515) and the whole plan of operations
 * (describe, which never connects). No directory is needed.
 *
 * Checks, on bytes the fuzzer picks:
 *   - a DN built from any value parses back with libldap to exactly one RDN holding
 *     that value under the rdn attribute, followed by the base DN: no value can add an
 *     RDN, an attribute or a level;
 *   - an escaped filter value holds none of * ( ) \ NUL unescaped, and unescapes to the
 *     value;
 *   - describing an order answers a known code, and a DN it names is one libldap parses.
 * Input: optional mapping settings ("key=value" lines) and a NUL byte, then one order as
 * JSON. Seeds: tests/fuzz/corpus/backend_ldap/. */
#include <ldap.h>

#include "../../agent/backends/ldap/ldap_backend.h"
#include "fuzz_backend_util.h"

#define BASE_DN "ou=people,dc=example,dc=com"

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static void check_filter_value(const char *value)
{
        char *f = lb_filter_value(value);
        if (!f)
                return;
        size_t n = 0, vlen = strlen(value);
        for (const char *p = f; *p; p++, n++) {
                if (*p == '*' || *p == '(' || *p == ')')
                        abort(); /* a filter metacharacter left as is */
                if (*p == '\\') {
                        int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
                        if (hi < 0 || lo < 0)
                                abort(); /* a backslash that is not an escape */
                        if (n >= vlen || (unsigned char)value[n] != (unsigned)(hi * 16 + lo))
                                abort(); /* does not unescape to the value */
                        p += 2;
                } else if (n >= vlen || value[n] != *p) {
                        abort();
                }
        }
        if (n != vlen)
                abort();
        free(f);
}

static void check_dn(const char *value)
{
        char *dn = lb_dn_build("uid", value, BASE_DN);
        if (!dn)
                return; /* refused (e.g. not UTF-8): fine, as long as nothing else happens */
        LDAPDN parsed = NULL, base = NULL;
        if (ldap_str2dn(dn, &parsed, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS ||
            ldap_str2dn(BASE_DN, &base, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS) {
                fprintf(stderr, "built DN does not parse: %s\n", dn);
                abort();
        }
        size_t n = 0, nb = 0;
        while (parsed[n])
                n++;
        while (base[nb])
                nb++;
        LDAPAVA *ava = parsed[0] ? parsed[0][0] : NULL;
        if (n != nb + 1 || !ava || parsed[0][1] || ava->la_attr.bv_len != 3 ||
            memcmp(ava->la_attr.bv_val, "uid", 3) != 0 || ava->la_value.bv_len != strlen(value) ||
            memcmp(ava->la_value.bv_val, value, ava->la_value.bv_len) != 0) {
                fprintf(stderr, "value %s became DN %s\n", value, dn);
                abort();
        }
        ldap_dnfree(parsed);
        ldap_dnfree(base);
        free(dn);
}

static struct lb_mapping mapping;
static int mapped;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *map_text, *json;
        size_t map_len, json_len;
        if (!mapped) {
                struct ca_settings s;
                struct ca_backend_error err = {0};
                fuzz_plugin(); /* sets the plug-in's host */
                fuzz_settings_make(&s,
                                   (const char *const[]){"connector", "directory", "base_dn",
                                                         BASE_DN, "rdn_attribute", "uid",
                                                         "object_class", "inetOrgPerson", NULL});
                if (lb_mapping_parse(backend_settings(&s), &mapping, &err) != CA_BACKEND_OK)
                        abort();
                fuzz_settings_clear(&s);
                mapped = 1;
        }
        /* The raw bytes as one value, up to the first NUL (values are C strings). */
        char *value = malloc(size + 1);
        if (!value)
                return 0;
        memcpy(value, data, size);
        value[size] = '\0'; /* not strndup: the input is not a string */
        check_dn(value);
        check_filter_value(value);
        free(value);

        fuzz_split(data, size, &map_text, &map_len, &json, &json_len);
        struct ca_order *o = fuzz_order(json, json_len);
        if (!o)
                return 0;
        struct lb_mapping custom, *m = &mapping;
        int own = 0;
        if (map_len != (size_t)-1) {
                struct ca_settings s;
                struct ca_backend_error err = {0};
                fuzz_settings_parse(&s, map_text, map_len);
                own = lb_mapping_parse(backend_settings(&s), &custom, &err) == CA_BACKEND_OK;
                if (own)
                        m = &custom;
                fuzz_settings_clear(&s);
        }
        struct ca_backend_result r = {0};
        struct ca_backend_error err = {0};
        int rc = lb_order_describe(backend_order(o), m, &r, &err);
        fuzz_check_outcome(o, rc, &r, &err);
        if (rc == CA_BACKEND_OK && r.resource_identifier[0] &&
            !lb_dn_valid(r.resource_identifier)) {
                fprintf(stderr, "describe named a DN libldap cannot parse: %s\n",
                        r.resource_identifier);
                abort();
        }
        if (own)
                lb_mapping_clear(&custom);
        order_free(o);
        return 0;
}
