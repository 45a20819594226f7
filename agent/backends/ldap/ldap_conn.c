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

void lb_conn_message(struct lb_session *s, int rc, const char *op, const char *dn, char *buf,
                     size_t len)
{
        char *diag = NULL;
        if (s && s->ld)
                ldap_get_option(s->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
        int n = snprintf(buf, len, "%s%s%s: %s (%d)", op, dn ? " " : "", dn ? dn : "",
                         ldap_err2string(rc), rc);
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

int lb_conn_root_dse(struct lb_session *s, int *permissive, struct ca_backend_error *err)
{
        char *attrs[] = {"supportedControl", NULL};
        LDAPMessage *res = NULL;
        struct timeval tv = lb_conn_timeout(s);
        int rc = ldap_search_ext_s(s->ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL,
                                   NULL, &tv, LB_ROOT_DSE_SIZELIMIT, &res);
        if (rc != LDAP_SUCCESS) {
                ldap_msgfree(res);
                return conn_fail(s, rc, "reading the root DSE of", err);
        }
        *permissive = 0;
        LDAPMessage *e = ldap_first_entry(s->ld, res);
        struct berval **vals = e ? ldap_get_values_len(s->ld, e, "supportedControl") : NULL;
        for (size_t i = 0; vals && vals[i]; i++) {
                if (vals[i]->bv_len == strlen(LB_PERMISSIVE_MODIFY_OID) &&
                    memcmp(vals[i]->bv_val, LB_PERMISSIVE_MODIFY_OID, vals[i]->bv_len) == 0)
                        *permissive = 1;
        }
        ldap_value_free_len(vals);
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
        ret = lb_conn_root_dse(s, &advertised, err);
        if (ret != CA_BACKEND_OK)
                return ret;
        s->permissive = s->inst->permissive == LB_PERMISSIVE_YES ||
                        (s->inst->permissive == LB_PERMISSIVE_AUTO && advertised);
        lb_host->log(CA_BACKEND_LOG_DEBUG, "ldap: connected to %s%s", s->inst->uri,
                     s->permissive ? " (Permissive Modify)" : "");
        return CA_BACKEND_OK;
}

int lb_conn_ensure(struct lb_session *s, struct ca_backend_error *err)
{
        if (s->ld && conn_alive(s))
                return CA_BACKEND_OK;
        lb_conn_close(s);
        return conn_open(s, err);
}
