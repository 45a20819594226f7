/* SPDX-License-Identifier: Apache-2.0 */
/* ldap_conn: one session's connection: open (TLS options, StartTLS, simple bind, root
 * DSE), liveness before reuse, and the error text operators see.
 *
 * TLS always demands a valid certificate whose name matches the URI's host
 * (LDAP_OPT_X_TLS_REQUIRE_CERT = DEMAND); the options are set on the handle and a new
 * TLS context is made from them (LDAP_OPT_X_TLS_NEWCTX), so one connector's CA never
 * leaks into another's. The bind password is read through the host for each bind and
 * released at once: it is never kept, logged or put in a message. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ldap_backend.h"

#define LB_ROOT_DSE_SIZELIMIT 1

struct timeval lb_conn_timeout(const struct lb_session *s)
{
        uint64_t ms = s->inst->order_timeout_ms;
        struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                             .tv_usec = (suseconds_t)(ms % 1000) * 1000};
        return tv;
}

int lb_conn_lost(int rc)
{
        return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT ||
               rc == LDAP_UNAVAILABLE || rc == LDAP_BUSY;
}

/* Active Directory puts a Windows error code in front of its diagnostic text
 * ("0000052D: Constraint violation - ..."): the ones an agent meets, in words. */
static const struct {
        const char *code;
        const char *words;
} ad_codes[] = {
    {"0000052D", "the password does not meet the domain's password policy (length, complexity, "
                 "history or minimum age)"},
    {"00000524", "the account already exists"},
    {"00002071", "a value that must be unique in the domain is already used by another object "
                 "(sAMAccountName or userPrincipalName)"},
    {"0000202B", "a referral: the entry is in another domain or naming context than the one "
                 "this connection serves (check base_dn and the DC in uri)"},
    {"00000005", "access denied: the bind account lacks the right for this change"},
    {"00002098", "insufficient access rights: the bind account may not change this object"},
    {"0000052E", "invalid credentials"},
    {"00000525", "no such user"},
    {"00000532", "the password has expired"},
    {"00000533", "the account is disabled"},
    {"00000701", "the account has expired"},
    {"00000773", "the user must reset the password"},
    {"00000775", "the account is locked out"},
    {"0000208D", "the parent container does not exist (check base_dn)"},
    {"00002030", "no such object: the entry, or the container it is to be created in, does not "
                 "exist (check base_dn and the order's DN)"},
    {"00002035", "the DC is unwilling to perform this change (e.g. an attribute the system "
                 "sets itself)"},
    {"00002077", "the change is not allowed on this object (e.g. an illegal modification of a "
                 "system attribute)"},
    {"0000001F", "the DC refused the change (unwilling to perform)"},
    {"00000057", "a value was refused as invalid"},
};

void lb_conn_message(struct lb_session *s, int rc, const char *op, const char *dn, char *buf,
                     size_t len)
{
        char *diag = NULL;
        if (s && s->ld)
                ldap_get_option(s->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
        int n = snprintf(buf, len, "%s%s%s: %s (%d)", op, dn ? " " : "", dn ? dn : "",
                         ldap_err2string(rc), rc);
        const char *words = NULL;
        for (size_t i = 0; diag && i < sizeof(ad_codes) / sizeof(ad_codes[0]); i++)
                if (strncasecmp(diag, ad_codes[i].code, 8) == 0 && diag[8] == ':')
                        words = ad_codes[i].words;
        if (words && n >= 0 && (size_t)n < len)
                n += snprintf(buf + n, len - (size_t)n, ": %s", words);
        if (diag && *diag && n >= 0 && (size_t)n < len)
                snprintf(buf + n, len - (size_t)n, ": %s", diag);
        ldap_memfree(diag);
}

void lb_conn_close(struct lb_session *s)
{
        if (s && s->ld) {
                /* Sends an unbind when the connection is still up; frees it either way. */
                ldap_unbind_ext_s(s->ld, NULL, NULL);
                s->ld = NULL;
        }
}

/* A connection the server has closed (shutdown, idle timeout, restart) shows as a
 * half-closed socket, or, on plain LDAP, as unsolicited data (a Notice of Disconnection):
 * with no request outstanding, nothing else can arrive. Over TLS, a readable socket may
 * just hold a session ticket, so only a hang-up counts there. */
static int conn_alive(struct lb_session *s)
{
        int fd = -1;
        if (ldap_get_option(s->ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS || fd < 0)
                return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
        int n = poll(&p, 1, 0);
        if (n < 0)
                return 0;
        if (n == 0)
                return 1;
        if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
                return 0;
        return s->inst->ldaps || s->inst->starttls;
}

static int tls_hint(const char *diag)
{
        return diag && (strcasestr(diag, "tls") || strcasestr(diag, "ssl") ||
                        strcasestr(diag, "certificate"));
}

/* The failure of a connection step, for operators: what, where, libldap's words and the
 * TLS library's detail when there is one. */
static int conn_fail(struct lb_session *s, int rc, const char *step, struct ca_backend_error *err)
{
        char msg[768];
        char *diag = NULL;
        if (s->ld)
                ldap_get_option(s->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
        /* libldap reports a failed handshake as a connect error, often without the TLS
         * library's reason ("(unknown error code)"): say what to check instead. */
        if (diag && strcmp(diag, "(unknown error code)") == 0) {
                ldap_memfree(diag);
                diag = NULL;
        }
        int handshake = rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR;
        const char *tls = "";
        if (tls_hint(diag) || (handshake && (s->inst->ldaps || strncmp(step, "StartTLS", 8) == 0)))
                tls = s->inst->ca_file ? " (TLS: check that ca_file signs the server's certificate "
                                         "and that the certificate names the host in uri)"
                                       : " (TLS: check that the system's CAs sign the server's "
                                         "certificate, or set ca_file, and that the certificate "
                                         "names the host in uri)";
        snprintf(msg, sizeof(msg), "%s %s: %s (%d)%s%s%s", step, s->inst->uri, ldap_err2string(rc),
                 rc, diag && *diag ? ": " : "", diag && *diag ? diag : "", tls);
        ldap_memfree(diag);
        lb_conn_close(s);
        return lb_host->error(err, CA_BACKEND_EUNAVAILABLE, NULL, "%s", msg);
}

static int set_options(struct lb_session *s, struct ca_backend_error *err)
{
        const struct lb_instance *in = s->inst;
        int version = LDAP_VERSION3;
        int demand = LDAP_OPT_X_TLS_DEMAND;
        int zero = 0;
        struct timeval net = {.tv_sec = (time_t)(in->network_timeout_ms / 1000),
                              .tv_usec = (suseconds_t)(in->network_timeout_ms % 1000) * 1000};
        struct timeval call = lb_conn_timeout(s);
        int rc = ldap_set_option(s->ld, LDAP_OPT_PROTOCOL_VERSION, &version);
        if (rc == LDAP_OPT_SUCCESS)
                rc = ldap_set_option(s->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
        if (rc == LDAP_OPT_SUCCESS)
                rc = ldap_set_option(s->ld, LDAP_OPT_NETWORK_TIMEOUT, &net);
        if (rc == LDAP_OPT_SUCCESS)
                rc = ldap_set_option(s->ld, LDAP_OPT_TIMEOUT, &call);
        if (rc == LDAP_OPT_SUCCESS)
                rc = ldap_set_option(s->ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
        if (rc == LDAP_OPT_SUCCESS && in->ca_file)
                rc = ldap_set_option(s->ld, LDAP_OPT_X_TLS_CACERTFILE, in->ca_file);
        /* The TLS context is built from the options above only now. */
        if (rc == LDAP_OPT_SUCCESS && (in->ldaps || in->starttls))
                rc = ldap_set_option(s->ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
        if (rc != LDAP_OPT_SUCCESS)
                return conn_fail(s, rc, "setting TLS and timeout options for", err);
        return CA_BACKEND_OK;
}

static int conn_bind(struct lb_session *s, struct ca_backend_error *err)
{
        const struct lb_instance *in = s->inst;
        char *password = NULL;
        struct berval cred = {0, NULL};
        int rc;

        if (in->bind_dn) {
                password = lb_host->secret(in->settings, "bind_password", err);
                if (!password) {
                        lb_conn_close(s);
                        return CA_BACKEND_EUNAVAILABLE;
                }
                cred.bv_val = password;
                cred.bv_len = strlen(password);
        }
        rc = ldap_sasl_bind_s(s->ld, in->bind_dn ? in->bind_dn : "", LDAP_SASL_SIMPLE, &cred, NULL,
                              NULL, NULL);
        if (password)
                lb_host->secret_free(password);
        if (rc == LDAP_SUCCESS)
                return CA_BACKEND_OK;
        char step[512];
        snprintf(step, sizeof(step), "bind as %s to", in->bind_dn ? in->bind_dn : "(anonymous)");
        return conn_fail(s, rc, step, err);
}

const char *lb_directory_name(enum lb_directory d)
{
        switch (d) {
        case LB_DIR_AD:
                return "active-directory";
        case LB_DIR_OPENLDAP:
                return "openldap";
        case LB_DIR_GENERIC:
                return "generic";
        default:
                return "auto";
        }
}

static int has_value(struct berval **vals, const char *text)
{
        size_t len = strlen(text);
        for (size_t i = 0; vals && vals[i]; i++)
                if (vals[i]->bv_len == len && strncasecmp(vals[i]->bv_val, text, len) == 0)
                        return 1;
        return 0;
}

int lb_conn_root_dse(struct lb_session *s, int *permissive, enum lb_directory *directory,
                     struct ca_backend_error *err)
{
        char *attrs[] = {"supportedControl", "supportedCapabilities", "objectClass", NULL};
        LDAPMessage *res = NULL;
        struct timeval tv = lb_conn_timeout(s);
        int rc = ldap_search_ext_s(s->ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL,
                                   NULL, &tv, LB_ROOT_DSE_SIZELIMIT, &res);
        if (rc != LDAP_SUCCESS) {
                ldap_msgfree(res);
                return conn_fail(s, rc, "reading the root DSE of", err);
        }
        LDAPMessage *e = ldap_first_entry(s->ld, res);
        struct berval **ctl = e ? ldap_get_values_len(s->ld, e, "supportedControl") : NULL;
        struct berval **cap = e ? ldap_get_values_len(s->ld, e, "supportedCapabilities") : NULL;
        struct berval **oc = e ? ldap_get_values_len(s->ld, e, "objectClass") : NULL;
        *permissive = has_value(ctl, LB_PERMISSIVE_MODIFY_OID);
        /* AD (and Samba's DC) announce the Active Directory capability; slapd names its
         * root DSE's object class. */
        *directory = has_value(cap, LB_AD_CAPABILITY_OID) ? LB_DIR_AD
                     : has_value(oc, "OpenLDAProotDSE")   ? LB_DIR_OPENLDAP
                                                          : LB_DIR_GENERIC;
        ldap_value_free_len(ctl);
        ldap_value_free_len(cap);
        ldap_value_free_len(oc);
        ldap_msgfree(res);
        return CA_BACKEND_OK;
}

static int conn_open(struct lb_session *s, struct ca_backend_error *err)
{
        int rc = ldap_initialize(&s->ld, s->inst->uri);
        if (rc != LDAP_SUCCESS) {
                s->ld = NULL;
                return conn_fail(s, rc, "initialising", err);
        }
        int ret = set_options(s, err);
        if (ret != CA_BACKEND_OK)
                return ret;
        if (s->inst->starttls) {
                rc = ldap_start_tls_s(s->ld, NULL, NULL);
                if (rc != LDAP_SUCCESS)
                        return conn_fail(s, rc, "StartTLS on", err);
        }
        ret = conn_bind(s, err);
        if (ret != CA_BACKEND_OK)
                return ret;
        int advertised = 0;
        enum lb_directory detected = LB_DIR_GENERIC;
        ret = lb_conn_root_dse(s, &advertised, &detected, err);
        if (ret != CA_BACKEND_OK)
                return ret;
        s->permissive = s->inst->permissive == LB_PERMISSIVE_YES ||
                        (s->inst->permissive == LB_PERMISSIVE_AUTO && advertised);
        s->directory = s->inst->directory == LB_DIR_AUTO ? detected : s->inst->directory;
        if (s->inst->directory != LB_DIR_AUTO && s->inst->directory != detected)
                lb_host->log(CA_BACKEND_LOG_WARNING,
                             "ldap: %s is configured as directory = %s but its root DSE looks "
                             "like %s; using %s",
                             s->inst->uri, lb_directory_name(s->inst->directory),
                             lb_directory_name(detected), lb_directory_name(s->inst->directory));
        lb_host->log(CA_BACKEND_LOG_DEBUG, "ldap: connected to %s (%s%s)", s->inst->uri,
                     lb_directory_name(s->directory), s->permissive ? ", Permissive Modify" : "");
        return CA_BACKEND_OK;
}

int lb_conn_ensure(struct lb_session *s, struct ca_backend_error *err)
{
        if (s->ld && conn_alive(s))
                return CA_BACKEND_OK;
        lb_conn_close(s);
        return conn_open(s, err);
}
