/* SPDX-License-Identifier: Apache-2.0 */
/* ldap_backend: what the ldap plug-in's files share (internal to the plug-in).
 *
 * ldap_backend.c owns the instance (connector settings), the mapping ([resource-type]
 * settings) and the entry point; ldap_conn.c owns a session's one connection (connect,
 * StartTLS, bind, liveness, reconnect, error texts); ldap_order.c turns an order into
 * LDAP operations (execute, probe, describe); ldap_escape.c builds DNs (RFC 4514) and
 * filter values (RFC 4515) through libldap. A session belongs to one thread; an instance
 * and a mapping are read-only once built. No secret is ever kept outside ldap_conn.c's
 * bind call, logged or put in a message. libldap writes to sockets with write(): the host
 * must ignore SIGPIPE (the agent does, in main.c), or a server that closed the connection
 * kills the process. */
#ifndef CA_LDAP_BACKEND_H
#define CA_LDAP_BACKEND_H

#include <ldap.h>
#include <stddef.h>
#include <stdint.h>

#include <connector-agent/backend.h>

#define LB_DEFAULT_ORDER_TIMEOUT_MS   60000
#define LB_DEFAULT_NETWORK_TIMEOUT_MS 10000
#define LB_MAX_LIST                   64   /* object classes, attribute maps, ignored keys */
#define LB_MAX_VALUES                 4096 /* values one order may set, add or remove */
#define LB_ATTR_MAX                   128  /* longest attribute description accepted */
#define LB_PERMISSIVE_MODIFY_OID      "1.2.840.113556.1.4.1413"
#define LB_AD_CAPABILITY_OID          "1.2.840.113556.1.4.800" /* LDAP_CAP_ACTIVE_DIRECTORY */
#define LB_SAM_ACCOUNT_NAME_MAX       20 /* characters AD accepts in sAMAccountName */
#define LB_PPOLICY_LOCK_ATTR          "pwdAccountLockedTime"
#define LB_PPOLICY_LOCKED             "000001010000Z" /* locked until an administrator unlocks */
#define LB_UAC_ATTR                   "userAccountControl"

/* The host table (set once by the entry point, read-only afterwards). */
extern const struct ca_host *lb_host;

/* Once per process (ldap_startup.c). */
int lb_startup(const struct ca_host *host, struct ca_backend_error *err);
void lb_shutdown(void);

enum lb_permissive { LB_PERMISSIVE_AUTO, LB_PERMISSIVE_YES, LB_PERMISSIVE_NO };

/* Which directory it is: it decides how passwords and account state are written
 * (packaging/doc/active-directory.md). AUTO reads the root DSE on each connection. */
enum lb_directory { LB_DIR_AUTO, LB_DIR_AD, LB_DIR_OPENLDAP, LB_DIR_GENERIC };

struct lb_instance {
        const struct ca_backend_settings *settings; /* borrowed: lives as long as the config */
        char *uri;
        int ldaps;     /* uri is ldaps:// */
        int starttls;  /* run StartTLS on ldap:// */
        char *bind_dn; /* NULL: anonymous */
        char *ca_file; /* NULL: the system's trust store */
        uint64_t order_timeout_ms;
        uint64_t network_timeout_ms;
        enum lb_permissive permissive;
        enum lb_directory directory; /* as configured (AUTO: detected per connection) */
};

struct lb_session {
        struct lb_instance *inst;
        LDAP *ld;                    /* NULL while disconnected */
        int permissive;              /* attach the Permissive Modify control on this connection */
        enum lb_directory directory; /* never AUTO once connected */
};

struct lb_attr_map {
        char *key;  /* Changes key */
        char *attr; /* LDAP attribute it fills */
};

struct lb_mapping {
        char *base_dn;
        char *rdn_attribute;
        char *rdn_change; /* the Changes / Resource key holding the RDN value */
        char *object_classes[LB_MAX_LIST];
        size_t object_class_count;
        char *group_attribute;      /* default member */
        char *membership_attribute; /* default memberOf: <it>_add / <it>_remove */
        struct lb_attr_map map[LB_MAX_LIST];
        size_t map_count;
        char *ignore[LB_MAX_LIST];
        size_t ignore_count;
        char *enabled_change; /* Changes key with "true"/"false" (NULL: none) */
        /* Where the account state lives. NULL: userAccountControl on AD, ppolicy's
         * pwdAccountLockedTime on OpenLDAP. userAccountControl: its ACCOUNTDISABLE bit;
         * any other attribute holds disabled_value when disabled and enabled_value (none:
         * the attribute is removed) when enabled. */
        char *enabled_attribute;
        char *enabled_value;
        char *disabled_value;
        char *password_change; /* Changes key with a new password (NULL: none) */
        char *move_change;     /* Changes key with the new parent DN (NULL: none) */
        char *key_attribute;   /* finds an entry neither its anchor nor its DN finds */
};

/* --- ldap_backend.c --- */
/* Parses and checks a [resource-type] mapping, reporting every problem (one line each). */
int lb_mapping_parse(const struct ca_backend_settings *s, struct lb_mapping *m,
                     struct ca_backend_error *err);
void lb_mapping_clear(struct lb_mapping *m);

/* --- ldap_conn.c --- */
/* Connects, secures, binds and reads the root DSE unless the session's connection is
 * alive. Returns CA_BACKEND_OK, or CA_BACKEND_EUNAVAILABLE with err saying why (server
 * unreachable, TLS failure, bind refused). */
int lb_conn_ensure(struct lb_session *s, struct ca_backend_error *err);
/* Drops the connection (no-op when there is none). */
void lb_conn_close(struct lb_session *s);
/* Reads the root DSE: the check operation's proof that the server answers; says whether
 * the server offers Permissive Modify and which directory it is. */
int lb_conn_root_dse(struct lb_session *s, int *permissive, enum lb_directory *directory,
                     struct ca_backend_error *err);
/* "active-directory", "openldap", "generic" or "auto". */
const char *lb_directory_name(enum lb_directory d);
/* Result codes that mean the connection is gone or the server did not answer in time. */
int lb_conn_lost(int rc);
/* "<op> <dn>: <text> (<rc>)[: <server diagnostic>]" into buf. */
void lb_conn_message(struct lb_session *s, int rc, const char *op, const char *dn, char *buf,
                     size_t len);
/* The per-call timeout for synchronous calls. */
struct timeval lb_conn_timeout(const struct lb_session *s);

/* --- ldap_order.c --- */
int lb_order_execute(struct lb_session *s, const struct ca_backend_order *order,
                     const struct lb_mapping *m, struct ca_backend_result *r,
                     struct ca_backend_error *err);
int lb_order_probe(struct lb_session *s, const struct ca_backend_order *order,
                   const struct lb_mapping *m, enum ca_backend_probe *answer,
                   struct ca_backend_result *r, struct ca_backend_error *err);
/* LDIF-like text of what execute would send; never connects. */
int lb_order_describe(const struct ca_backend_order *order, const struct lb_mapping *m,
                      struct ca_backend_result *r, struct ca_backend_error *err);

/* --- ldap_escape.c --- */
/* "<attr>=<value escaped per RFC 4514>,<base_dn>" (malloc'd, NULL when out of memory or
 * when attr or base_dn is not valid). */
char *lb_dn_build(const char *attr, const char *value, const char *base_dn);
/* "<attr>=<value escaped per RFC 4514>" alone (malloc'd, NULL when invalid). */
char *lb_rdn_build(const char *attr, const char *value);
/* "<rdn>,<parent>" (malloc'd; NULL when out of memory); frees rdn when free_rdn. */
char *lb_dn_join(char *rdn, const char *parent, int free_rdn);
/* The first RDN and the rest of dn (both malloc'd); -1 when dn does not parse. */
int lb_dn_split(const char *dn, char **rdn, char **parent);
/* Do a and b name the same entry (compared after libldap's normalisation)? */
int lb_dn_equal(const char *a, const char *b);
/* Is text a DN libldap can parse (LDAPv3 string form)? */
int lb_dn_valid(const char *text);
/* value escaped per RFC 4515 for use inside a filter (malloc'd, NULL when out of memory). */
char *lb_filter_value(const char *value);
/* An attribute description: name or numeric OID, with ;options; at most LB_ATTR_MAX. */
int lb_attr_valid(const char *name);

#endif
