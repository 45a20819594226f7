/* SPDX-License-Identifier: Apache-2.0 */
/* ldap: the LDAP back-end plug-in: connector settings, mapping settings, sessions and
 * the entry point. Connections are in ldap_conn.c, the order logic in ldap_order.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ldap_backend.h"

const struct ca_host *lb_host;

static const char *const connector_keys[] = {
    "uri",
    "starttls",
    "allow_plain",
    "bind_dn",
    "bind_password_file",
    "bind_password_credential",
    "ca_file",
    "order_timeout",
    "network_timeout",
    "permissive_modify",
    "directory",
    /* the agent's own keys in every [connector] section */
    "backend",
    "poll_interval",
    "max_parallel",
    "max_in_flight",
};

static const char *const mapping_keys[] = {
    "base_dn",
    "rdn_attribute",
    "rdn_change",
    "object_class",
    "group_attribute",
    "membership_attribute",
    "attributes",
    "ignore",
    "enabled_change",
    "enabled_attribute",
    "enabled_value",
    "disabled_value",
    "password_change",
    "move_change",
    "key_attribute",
    /* the agent's own key in every [resource-type] section */
    "connector",
};

static int key_known(const char *k, const char *const *keys, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(k, keys[i]) == 0)
                        return 1;
        return 0;
}

/* yes/no and the usual spellings; -1 when it is neither. */
static int parse_bool(const char *v)
{
        if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcasecmp(v, "on") ||
            !strcmp(v, "1"))
                return 1;
        if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcasecmp(v, "off") ||
            !strcmp(v, "0"))
                return 0;
        return -1;
}

static int bool_setting(const struct ca_backend_settings *s, const char *key, int def, int *out,
                        struct ca_backend_error *err)
{
        const char *v = lb_host->setting(s, key);
        *out = def;
        if (!v)
                return CA_BACKEND_OK;
        int b = parse_bool(v);
        if (b < 0)
                return lb_host->error(err, CA_BACKEND_EINVALID, key, "%s = %s: expected yes or no",
                                      key, v);
        *out = b;
        return CA_BACKEND_OK;
}

static void instance_free(struct lb_instance *in)
{
        if (!in)
                return;
        free(in->uri);
        free(in->bind_dn);
        free(in->ca_file);
        free(in);
}

static int check_uri(const char *uri, struct lb_instance *in, struct ca_backend_error *err)
{
        LDAPURLDesc *url = NULL;
        if (!uri || !*uri)
                return lb_host->error(err, CA_BACKEND_EINVALID, "uri",
                                      "uri: required (ldap://host[:port] or ldaps://host[:port])");
        if (ldap_url_parse(uri, &url) != LDAP_URL_SUCCESS)
                return lb_host->error(err, CA_BACKEND_EINVALID, "uri",
                                      "uri = %s: not an LDAP URL (ldap://host[:port] or "
                                      "ldaps://host[:port])",
                                      uri);
        int scheme_ok =
            !strcasecmp(url->lud_scheme, "ldap") || !strcasecmp(url->lud_scheme, "ldaps");
        in->ldaps = !strcasecmp(url->lud_scheme, "ldaps");
        int has_host = url->lud_host && *url->lud_host;
        ldap_free_urldesc(url);
        if (!scheme_ok || !has_host)
                return lb_host->error(err, CA_BACKEND_EINVALID, "uri",
                                      "uri = %s: use ldap://host[:port] (with StartTLS) or "
                                      "ldaps://host[:port]",
                                      uri);
        return CA_BACKEND_OK;
}

static int lb_instance_new(const struct ca_host *h, const struct ca_backend_settings *s,
                           void **instance, struct ca_backend_error *err)
{
        int rc = CA_BACKEND_OK;
        struct lb_instance *in = calloc(1, sizeof(*in));
        if (!in)
                return h->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory");
        in->settings = s;

        for (size_t i = 0; i < h->setting_count(s); i++) {
                const char *k = h->setting_key(s, i);
                if (!key_known(k, connector_keys,
                               sizeof(connector_keys) / sizeof(connector_keys[0])))
                        rc = h->error(err, CA_BACKEND_EINVALID, k,
                                      "%s: unknown key for the ldap back-end%s", k,
                                      strcmp(k, "bind_password") == 0
                                          ? " (put the password in a file named by "
                                            "bind_password_file, or a credential named by "
                                            "bind_password_credential)"
                                          : "");
        }

        const char *uri = h->setting(s, "uri");
        int uri_ok = check_uri(uri, in, err) == CA_BACKEND_OK;
        if (!uri_ok)
                rc = CA_BACKEND_EINVALID;
        int allow_plain = 0;
        if (bool_setting(s, "allow_plain", 0, &allow_plain, err) != CA_BACKEND_OK)
                rc = CA_BACKEND_EINVALID;
        if (bool_setting(s, "starttls", !in->ldaps, &in->starttls, err) != CA_BACKEND_OK)
                rc = CA_BACKEND_EINVALID;
        if (uri_ok && in->ldaps && in->starttls)
                rc = h->error(err, CA_BACKEND_EINVALID, "starttls",
                              "starttls = yes: not with ldaps:// (TLS is already on)");
        if (uri_ok && !in->ldaps && !in->starttls && !allow_plain)
                rc = h->error(err, CA_BACKEND_EINVALID, "starttls",
                              "uri = %s with starttls = no: refused, it would send the bind "
                              "password and every entry in clear (use ldaps://, starttls = yes, "
                              "or allow_plain = yes on a trusted network)",
                              uri);

        const char *perm = h->setting(s, "permissive_modify");
        if (!perm || !strcasecmp(perm, "auto")) {
                in->permissive = LB_PERMISSIVE_AUTO;
        } else if (parse_bool(perm) >= 0) {
                in->permissive = parse_bool(perm) ? LB_PERMISSIVE_YES : LB_PERMISSIVE_NO;
        } else {
                rc = h->error(err, CA_BACKEND_EINVALID, "permissive_modify",
                              "permissive_modify = %s: expected auto, yes or no", perm);
        }

        const char *dir = h->setting(s, "directory");
        if (!dir || !strcasecmp(dir, "auto"))
                in->directory = LB_DIR_AUTO;
        else if (!strcasecmp(dir, "active-directory"))
                in->directory = LB_DIR_AD;
        else if (!strcasecmp(dir, "openldap"))
                in->directory = LB_DIR_OPENLDAP;
        else if (!strcasecmp(dir, "generic"))
                in->directory = LB_DIR_GENERIC;
        else
                rc = h->error(err, CA_BACKEND_EINVALID, "directory",
                              "directory = %s: expected auto, active-directory, openldap or "
                              "generic",
                              dir);

        const char *bind_dn = h->setting(s, "bind_dn");
        if (bind_dn && *bind_dn) {
                if (!lb_dn_valid(bind_dn)) {
                        rc = h->error(err, CA_BACKEND_EINVALID, "bind_dn", "bind_dn = %s: not a DN",
                                      bind_dn);
                } else {
                        /* Read once now so that a missing or unreadable secret fails at
                         * start; it is read again for each bind and never kept. */
                        char *pw = h->secret(s, "bind_password", err);
                        if (!pw)
                                rc = CA_BACKEND_EINVALID;
                        h->secret_free(pw);
                }
        } else if (h->setting(s, "bind_password_file") ||
                   h->setting(s, "bind_password_credential")) {
                rc = h->error(err, CA_BACKEND_EINVALID, "bind_dn",
                              "bind_dn: required when a bind password is given");
        }

        const char *ca = h->setting(s, "ca_file");
        if (ca && access(ca, R_OK) != 0)
                rc = h->error(err, CA_BACKEND_EINVALID, "ca_file", "ca_file = %s: cannot be read",
                              ca);

        if (h->setting_ms(s, "order_timeout", LB_DEFAULT_ORDER_TIMEOUT_MS, &in->order_timeout_ms,
                          err) != CA_BACKEND_OK ||
            h->setting_ms(s, "network_timeout", LB_DEFAULT_NETWORK_TIMEOUT_MS,
                          &in->network_timeout_ms, err) != CA_BACKEND_OK)
                rc = CA_BACKEND_EINVALID;
        if (rc == CA_BACKEND_OK && (in->order_timeout_ms == 0 || in->network_timeout_ms == 0))
                rc = h->error(err, CA_BACKEND_EINVALID,
                              in->order_timeout_ms == 0 ? "order_timeout" : "network_timeout",
                              "%s: must be more than zero: every call to the directory is bounded",
                              in->order_timeout_ms == 0 ? "order_timeout" : "network_timeout");

        if (rc != CA_BACKEND_OK) {
                instance_free(in);
                return rc;
        }
        in->uri = strdup(uri);
        in->bind_dn = bind_dn && *bind_dn ? strdup(bind_dn) : NULL;
        in->ca_file = ca ? strdup(ca) : NULL;
        if (!in->uri || (bind_dn && *bind_dn && !in->bind_dn) || (ca && !in->ca_file)) {
                instance_free(in);
                return h->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory");
        }
        *instance = in;
        return CA_BACKEND_OK;
}

static void lb_instance_free(void *instance)
{
        instance_free(instance);
}

/* --- the mapping --- */

void lb_mapping_clear(struct lb_mapping *m)
{
        if (!m)
                return;
        free(m->base_dn);
        free(m->rdn_attribute);
        free(m->rdn_change);
        for (size_t i = 0; i < m->object_class_count; i++)
                free(m->object_classes[i]);
        free(m->group_attribute);
        free(m->membership_attribute);
        for (size_t i = 0; i < m->map_count; i++) {
                free(m->map[i].key);
                free(m->map[i].attr);
        }
        for (size_t i = 0; i < m->ignore_count; i++)
                free(m->ignore[i]);
        free(m->enabled_change);
        free(m->enabled_attribute);
        free(m->enabled_value);
        free(m->disabled_value);
        free(m->password_change);
        free(m->move_change);
        free(m->key_attribute);
        memset(m, 0, sizeof(*m));
}

/* Splits a comma list into trimmed, non-empty items (malloc'd); -1 when too many or out
 * of memory. */
static int split_list(const char *text, char **items, size_t max, size_t *count)
{
        *count = 0;
        const char *p = text;
        while (*p) {
                const char *end = strchr(p, ',');
                size_t len = end ? (size_t)(end - p) : strlen(p);
                const char *a = p, *b = p + len;
                while (a < b && (*a == ' ' || *a == '\t'))
                        a++;
                while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                        b--;
                if (b > a) {
                        if (*count == max)
                                return -1;
                        items[*count] = strndup(a, (size_t)(b - a));
                        if (!items[*count])
                                return -1;
                        (*count)++;
                }
                p = end ? end + 1 : p + len;
        }
        return 0;
}

static char *attr_setting(const struct ca_backend_settings *s, const char *key, const char *def,
                          int *bad, struct ca_backend_error *err)
{
        const char *v = lb_host->setting(s, key);
        if (!v || !*v)
                v = def;
        if (!v) {
                lb_host->error(err, CA_BACKEND_EINVALID, key, "%s: required", key);
                (*bad)++;
                return NULL;
        }
        if (!lb_attr_valid(v)) {
                lb_host->error(err, CA_BACKEND_EINVALID, key, "%s = %s: not an LDAP attribute name",
                               key, v);
                (*bad)++;
                return NULL;
        }
        char *out = strdup(v);
        if (!out)
                (*bad)++;
        return out;
}

/* enabled_attribute, enabled_value, disabled_value: only with enabled_change; a value
 * attribute other than userAccountControl and pwdAccountLockedTime needs disabled_value,
 * since nothing else says what "disabled" looks like. -1 when any is wrong. */
static int account_state_parse(const struct ca_backend_settings *s, struct lb_mapping *m,
                               struct ca_backend_error *err)
{
        const char *ea = lb_host->setting(s, "enabled_attribute");
        const char *ev = lb_host->setting(s, "enabled_value");
        const char *dv = lb_host->setting(s, "disabled_value");
        int bad = 0;
        if (ea && !*ea)
                ea = NULL;
        if (!m->enabled_change) {
                const char *k = ea ? "enabled_attribute" : ev ? "enabled_value" : "disabled_value";
                if (ea || ev || dv)
                        return lb_host->error(err, CA_BACKEND_EINVALID, k,
                                              "%s: only with enabled_change (the Changes key "
                                              "that says whether the account is enabled)",
                                              k),
                               -1;
                return 0;
        }
        if (!ea && (ev || dv))
                return lb_host->error(err, CA_BACKEND_EINVALID,
                                      ev ? "enabled_value" : "disabled_value",
                                      "%s: only with enabled_attribute",
                                      ev ? "enabled_value" : "disabled_value"),
                       -1;
        if (!ea)
                return 0;
        m->enabled_attribute = attr_setting(s, "enabled_attribute", NULL, &bad, err);
        if (bad)
                return -1;
        int uac = strcasecmp(ea, LB_UAC_ATTR) == 0;
        int ppolicy = strcasecmp(ea, LB_PPOLICY_LOCK_ATTR) == 0;
        if (uac && (ev || dv))
                return lb_host->error(err, CA_BACKEND_EINVALID,
                                      ev ? "enabled_value" : "disabled_value",
                                      "%s: not with enabled_attribute = userAccountControl (its "
                                      "ACCOUNTDISABLE bit is set or cleared)",
                                      ev ? "enabled_value" : "disabled_value"),
                       -1;
        if (uac)
                return 0;
        if (!dv || !*dv) {
                if (!ppolicy)
                        return lb_host->error(err, CA_BACKEND_EINVALID, "disabled_value",
                                              "disabled_value: required with enabled_attribute = "
                                              "%s (the value a disabled account holds)",
                                              ea),
                               -1;
                dv = LB_PPOLICY_LOCKED;
        }
        if (ev && *ev && strcmp(ev, dv) == 0)
                return lb_host->error(err, CA_BACKEND_EINVALID, "enabled_value",
                                      "enabled_value = %s: the same as disabled_value", ev),
                       -1;
        m->disabled_value = strdup(dv);
        if (ev && *ev)
                m->enabled_value = strdup(ev);
        if (!m->disabled_value || (ev && *ev && !m->enabled_value))
                return lb_host->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory"), -1;
        return 0;
}

int lb_mapping_parse(const struct ca_backend_settings *s, struct lb_mapping *m,
                     struct ca_backend_error *err)
{
        int bad = 0;
        memset(m, 0, sizeof(*m));

        for (size_t i = 0; i < lb_host->setting_count(s); i++) {
                const char *k = lb_host->setting_key(s, i);
                if (!key_known(k, mapping_keys, sizeof(mapping_keys) / sizeof(mapping_keys[0]))) {
                        lb_host->error(err, CA_BACKEND_EINVALID, k,
                                       "%s: unknown key for the ldap back-end", k);
                        bad++;
                }
        }

        const char *base = lb_host->setting(s, "base_dn");
        if (!base || !*base) {
                lb_host->error(err, CA_BACKEND_EINVALID, "base_dn",
                               "base_dn: required (e.g. ou=people,dc=example,dc=com)");
                bad++;
        } else if (!lb_dn_valid(base)) {
                lb_host->error(err, CA_BACKEND_EINVALID, "base_dn", "base_dn = %s: not a DN", base);
                bad++;
        } else if (!(m->base_dn = strdup(base))) {
                bad++;
        }
        m->rdn_attribute = attr_setting(s, "rdn_attribute", NULL, &bad, err);
        const char *rc_key = lb_host->setting(s, "rdn_change");
        m->rdn_change = strdup(rc_key && *rc_key  ? rc_key
                               : m->rdn_attribute ? m->rdn_attribute
                                                  : "");
        if (!m->rdn_change)
                bad++;
        m->group_attribute = attr_setting(s, "group_attribute", "member", &bad, err);
        if (m->group_attribute && strcasecmp(m->group_attribute, "memberOf") == 0) {
                /* A back-link the directory computes from the groups' member: AD refuses
                 * writes to it, slapd's memberof overlay overwrites them. */
                lb_host->error(err, CA_BACKEND_EINVALID, "group_attribute",
                               "group_attribute = memberOf: memberOf is computed by the "
                               "directory from each group's member; use member");
                bad++;
        }
        const char *ma = lb_host->setting(s, "membership_attribute");
        m->membership_attribute = strdup(ma && *ma ? ma : "memberOf");
        if (!m->membership_attribute)
                bad++;

        const char *oc = lb_host->setting(s, "object_class");
        if (!oc || !*oc) {
                lb_host->error(err, CA_BACKEND_EINVALID, "object_class",
                               "object_class: required (e.g. inetOrgPerson)");
                bad++;
        } else if (split_list(oc, m->object_classes, LB_MAX_LIST, &m->object_class_count) < 0 ||
                   m->object_class_count == 0) {
                lb_host->error(err, CA_BACKEND_EINVALID, "object_class",
                               "object_class: one to %d names, separated by commas", LB_MAX_LIST);
                bad++;
        } else {
                for (size_t i = 0; i < m->object_class_count; i++) {
                        if (!lb_attr_valid(m->object_classes[i]) ||
                            strchr(m->object_classes[i], ';')) {
                                lb_host->error(err, CA_BACKEND_EINVALID, "object_class",
                                               "object_class: '%s' is not an object class name",
                                               m->object_classes[i]);
                                bad++;
                        }
                }
        }

        const char *ign = lb_host->setting(s, "ignore");
        if (ign && split_list(ign, m->ignore, LB_MAX_LIST, &m->ignore_count) < 0) {
                lb_host->error(err, CA_BACKEND_EINVALID, "ignore",
                               "ignore: at most %d keys, separated by commas", LB_MAX_LIST);
                bad++;
        }

        const char *attrs = lb_host->setting(s, "attributes");
        char *pairs[LB_MAX_LIST];
        size_t npairs = 0;
        if (attrs && split_list(attrs, pairs, LB_MAX_LIST, &npairs) < 0) {
                lb_host->error(err, CA_BACKEND_EINVALID, "attributes",
                               "attributes: at most %d changeKey:ldapAttribute pairs", LB_MAX_LIST);
                bad++;
        }
        for (size_t i = 0; i < npairs; i++) {
                char *colon = strchr(pairs[i], ':');
                if (!colon || colon == pairs[i] || !lb_attr_valid(colon + 1)) {
                        lb_host->error(err, CA_BACKEND_EINVALID, "attributes",
                                       "attributes: '%s' is not changeKey:ldapAttribute", pairs[i]);
                        bad++;
                        free(pairs[i]);
                        continue;
                }
                *colon = '\0';
                m->map[m->map_count].key = pairs[i];
                m->map[m->map_count].attr = strdup(colon + 1);
                if (!m->map[m->map_count].attr)
                        bad++;
                m->map_count++;
        }

        /* Changes keys, not attributes: any key the server may send. */
        const char *ek = lb_host->setting(s, "enabled_change");
        if (ek && *ek && !(m->enabled_change = strdup(ek)))
                bad++;
        if (account_state_parse(s, m, err) < 0)
                bad++;
        const char *pk = lb_host->setting(s, "password_change");
        if (pk && *pk && !(m->password_change = strdup(pk)))
                bad++;
        if (lb_host->setting(s, "key_attribute"))
                m->key_attribute = attr_setting(s, "key_attribute", NULL, &bad, err);
        const char *mk = lb_host->setting(s, "move_change");
        if (mk && *mk && !(m->move_change = strdup(mk)))
                bad++;
        if (m->enabled_change && m->password_change &&
            strcmp(m->enabled_change, m->password_change) == 0) {
                lb_host->error(err, CA_BACKEND_EINVALID, "password_change",
                               "password_change = %s: the same key as enabled_change",
                               m->password_change);
                bad++;
        }

        if (bad) {
                lb_mapping_clear(m);
                return CA_BACKEND_EINVALID;
        }
        return CA_BACKEND_OK;
}

static int lb_mapping_check(void *instance, const struct ca_backend_settings *mapping,
                            struct ca_backend_error *err)
{
        struct lb_mapping m;
        int rc = lb_mapping_parse(mapping, &m, err);
        lb_mapping_clear(&m);
        return rc;
}

/* --- sessions --- */

static int lb_session_open(void *instance, void **session, struct ca_backend_error *err)
{
        struct lb_session *s = calloc(1, sizeof(*s));
        if (!s)
                return lb_host->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory");
        s->inst = instance;
        int rc = lb_conn_ensure(s, err);
        if (rc != CA_BACKEND_OK) {
                free(s);
                return rc;
        }
        *session = s;
        return CA_BACKEND_OK;
}

static void lb_session_close(void *session)
{
        struct lb_session *s = session;
        if (!s)
                return;
        lb_conn_close(s);
        free(s);
}

static int lb_execute(void *session, const struct ca_backend_order *order,
                      const struct ca_backend_settings *mapping, struct ca_backend_result *r,
                      struct ca_backend_error *err)
{
        struct lb_mapping m;
        int rc = lb_mapping_parse(mapping, &m, err);
        if (rc != CA_BACKEND_OK)
                return rc;
        rc = lb_order_execute(session, order, &m, r, err);
        lb_mapping_clear(&m);
        return rc;
}

static int lb_probe(void *session, const struct ca_backend_order *order,
                    const struct ca_backend_settings *mapping, enum ca_backend_probe *answer,
                    struct ca_backend_result *r, struct ca_backend_error *err)
{
        struct lb_mapping m;
        int rc = lb_mapping_parse(mapping, &m, err);
        if (rc != CA_BACKEND_OK)
                return rc;
        rc = lb_order_probe(session, order, &m, answer, r, err);
        lb_mapping_clear(&m);
        return rc;
}

/* A fresh connection: bind and root DSE read prove that the directory answers with these
 * credentials now, not when the session's connection was made. */
static int lb_check(void *session, struct ca_backend_error *err)
{
        struct lb_session *s = session;
        lb_conn_close(s);
        return lb_conn_ensure(s, err);
}

static int lb_describe(void *session, const struct ca_backend_order *order,
                       const struct ca_backend_settings *mapping, struct ca_backend_result *r,
                       struct ca_backend_error *err)
{
        struct lb_mapping m;
        int rc = lb_mapping_parse(mapping, &m, err);
        if (rc != CA_BACKEND_OK)
                return rc;
        rc = lb_order_describe(order, &m, r, err);
        lb_mapping_clear(&m);
        return rc;
}

static const struct ca_backend_ops ops = {
    .abi_version = CA_BACKEND_ABI_VERSION,
    .size = sizeof(struct ca_backend_ops),
    .signature = CA_BACKEND_SIGNATURE,
    .name = "ldap",
    .description = "LDAPv3 directories (OpenLDAP, Active Directory) through libldap",
    .instance_new = lb_instance_new,
    .mapping_check = lb_mapping_check,
    .instance_free = lb_instance_free,
    .session_open = lb_session_open,
    .session_close = lb_session_close,
    .execute = lb_execute,
    .probe = lb_probe,
    .check = lb_check,
    .describe = lb_describe,
    .startup = lb_startup,
    .shutdown = lb_shutdown,
};

CA_BACKEND_DEFINE_ENTRY(ops, lb_host, log)
