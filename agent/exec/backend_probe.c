/* SPDX-License-Identifier: Apache-2.0 */
/* backend_probe: a look at a back-end's target (backend_probe.h). */
#include "backend_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "connector-agent/backend.h"
#include "log.h"
#include "tls_name.h"

/* --- where the target is --- */

/* ldap://host[:port] or ldaps://host[:port], host possibly [IPv6]. */
static int ldap_uri_target(const char *uri, struct backend_target *t)
{
        const char *p;
        int ldaps;
        if (strncasecmp(uri, "ldaps://", 8) == 0) {
                ldaps = 1;
                p = uri + 8;
        } else if (strncasecmp(uri, "ldap://", 7) == 0) {
                ldaps = 0;
                p = uri + 7;
        } else
                return -EINVAL;
        size_t n = strcspn(p, "/ \t");
        const char *colon;
        if (*p == '[') {
                const char *close = memchr(p, ']', n);
                if (!close)
                        return -EINVAL;
                snprintf(t->host, sizeof(t->host), "%.*s", (int)(close - p - 1), p + 1);
                colon = close + 1 < p + n && close[1] == ':' ? close + 1 : NULL;
        } else {
                colon = memchr(p, ':', n);
                snprintf(t->host, sizeof(t->host), "%.*s", (int)(colon ? (size_t)(colon - p) : n),
                         p);
        }
        if (!t->host[0])
                snprintf(t->host, sizeof(t->host), "localhost");
        if (colon)
                snprintf(t->port, sizeof(t->port), "%.*s", (int)(p + n - colon - 1), colon + 1);
        else
                snprintf(t->port, sizeof(t->port), "%s", ldaps ? "636" : "389");
        t->tls = ldaps ? BACKEND_TLS_DIRECT : BACKEND_TLS_NONE;
        return 0;
}

/* One keyword's value in a libpq "key=value key='quoted value'" string, or "" when
 * absent. The URI form (postgresql://) is read for host and port only. */
static void conninfo_value(const char *ci, const char *key, char *out, size_t len)
{
        size_t klen = strlen(key);
        out[0] = '\0';
        for (const char *p = ci; *p;) {
                while (*p == ' ' || *p == '\t')
                        p++;
                const char *k = p;
                while (*p && *p != '=' && *p != ' ' && *p != '\t')
                        p++;
                size_t kn = (size_t)(p - k);
                while (*p == ' ' || *p == '\t')
                        p++;
                if (*p != '=')
                        return;
                p++;
                while (*p == ' ' || *p == '\t')
                        p++;
                size_t o = 0;
                if (*p == '\'') {
                        for (p++; *p && *p != '\''; p++) {
                                if (*p == '\\' && p[1])
                                        p++;
                                if (o + 1 < len)
                                        out[o++] = *p;
                        }
                        if (*p == '\'')
                                p++;
                } else {
                        for (; *p && *p != ' ' && *p != '\t'; p++) {
                                if (*p == '\\' && p[1])
                                        p++;
                                if (o + 1 < len)
                                        out[o++] = *p;
                        }
                }
                out[o] = '\0';
                if (kn == klen && strncmp(k, key, klen) == 0)
                        return;
                out[0] = '\0';
        }
}

static void pg_target(const char *ci, struct backend_target *t)
{
        char mode[32], host[256], port[16];
        if (strncmp(ci, "postgresql://", 13) == 0 || strncmp(ci, "postgres://", 11) == 0) {
                const char *p = strstr(ci, "://") + 3;
                const char *at = strchr(p, '@');
                size_t end = strcspn(p, "/?");
                if (at && (size_t)(at - p) < end) {
                        end -= (size_t)(at + 1 - p);
                        p = at + 1;
                }
                const char *colon = memchr(p, ':', end);
                snprintf(host, sizeof(host), "%.*s", (int)(colon ? (size_t)(colon - p) : end), p);
                snprintf(port, sizeof(port), "%.*s", colon ? (int)(p + end - colon - 1) : 0,
                         colon ? colon + 1 : "");
                mode[0] = '\0';
        } else {
                conninfo_value(ci, "host", host, sizeof(host));
                if (!host[0])
                        conninfo_value(ci, "hostaddr", host, sizeof(host));
                conninfo_value(ci, "port", port, sizeof(port));
                conninfo_value(ci, "sslmode", mode, sizeof(mode));
                conninfo_value(ci, "sslrootcert", t->ca_file, sizeof(t->ca_file));
        }
        t->ca_key = "sslrootcert (in connection)";
        /* No host, or a socket directory: nothing to reach over TCP. */
        if (!host[0] || host[0] == '/' || strchr(host, ','))
                return;
        snprintf(t->host, sizeof(t->host), "%s", host);
        snprintf(t->port, sizeof(t->port), "%s", port[0] ? port : "5432");
        if (strcmp(mode, "verify-ca") == 0 || strcmp(mode, "verify-full") == 0)
                t->tls = BACKEND_TLS_POSTGRES;
}

void backend_target_from_settings(const struct ca_settings *s, struct backend_target *t)
{
        memset(t, 0, sizeof(*t));
        t->ca_key = "ca_file";
        const char *uri = config_setting(s, "uri");
        const char *driver = config_setting(s, "driver");
        const char *db = config_setting(s, "database");
        const char *conn = config_setting(s, "connection");
        if (uri && ldap_uri_target(uri, t) == 0) {
                const char *st = config_setting(s, "starttls");
                /* The LDAP back-end's default: StartTLS on ldap://. */
                int starttls = t->tls == BACKEND_TLS_NONE &&
                               !(st && (strcasecmp(st, "no") == 0 || strcasecmp(st, "false") == 0 ||
                                        strcmp(st, "0") == 0 || strcasecmp(st, "off") == 0));
                if (starttls)
                        t->tls = BACKEND_TLS_STARTTLS;
                const char *ca = config_setting(s, "ca_file");
                snprintf(t->ca_file, sizeof(t->ca_file), "%s", ca ? ca : "");
        } else if (driver && strcmp(driver, "postgresql") == 0 && conn) {
                pg_target(conn, t);
        } else if (db && (!driver || strcmp(driver, "sqlite") == 0)) {
                snprintf(t->file, sizeof(t->file), "%s", db);
                snprintf(t->where, sizeof(t->where), "%s", db);
                return;
        }
        if (t->host[0])
                snprintf(t->where, sizeof(t->where), strchr(t->host, ':') ? "[%s]:%s" : "%s:%s",
                         t->host, t->port);
}

/* --- looking at it --- */

/* A TCP connect bounded by BACKEND_PROBE_TIMEOUT_MS: the connected socket in *fd, or
 * -errno (-ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -ENOENT for an unknown name ...). */
static int tcp_probe(const char *host, const char *port, int *fd)
{
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        if (getaddrinfo(host, port, &hints, &res) != 0)
                return -ENOENT;
        int code = -EHOSTUNREACH;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                int s = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                               ai->ai_protocol);
                if (s < 0)
                        continue;
                int rc = connect(s, ai->ai_addr, ai->ai_addrlen);
                if (rc < 0 && errno == EINPROGRESS) {
                        struct pollfd pf = {.fd = s, .events = POLLOUT};
                        int n = poll(&pf, 1, BACKEND_PROBE_TIMEOUT_MS);
                        int soerr = 0;
                        socklen_t sl = sizeof(soerr);
                        if (n == 0)
                                errno = ETIMEDOUT, rc = -1;
                        else if (n < 0 || getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                                rc = -1;
                        else if (soerr)
                                errno = soerr, rc = -1;
                        else
                                rc = 0;
                }
                if (rc == 0) {
                        fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
                        struct timeval tv = {BACKEND_PROBE_TIMEOUT_MS / 1000, 0};
                        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                        *fd = s;
                        freeaddrinfo(res);
                        return 0;
                }
                code = -errno;
                close(s);
                if (code == -ECONNREFUSED)
                        break; /* the clearest answer there is */
        }
        freeaddrinfo(res);
        return code;
}

static int send_all(int fd, const unsigned char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
                if (n <= 0)
                        return -1;
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

/* LDAP's StartTLS extended request (RFC 4511 4.14), message 1; 0 when the server
 * answers success. */
static int starttls_preamble(int fd)
{
        static const unsigned char req[] = {
            0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16, '1', '.', '3', '.', '6', '.', '1',
            '.',  '4',  '.',  '1',  '.',  '1',  '4',  '6',  '6',  '.', '2', '0', '0', '3', '7'};
        unsigned char buf[512];
        if (send_all(fd, req, sizeof(req)) < 0)
                return -1;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 2 || buf[0] != 0x30)
                return -1;
        /* The envelope's length, then messageID, then [APPLICATION 24] and resultCode. */
        size_t i = 2;
        if (buf[1] & 0x80)
                i += buf[1] & 0x7f;
        if ((size_t)n < i + 3 || buf[i] != 0x02)
                return -1;
        i += 2 + buf[i + 1];
        if ((size_t)n < i + 2 || buf[i] != 0x78)
                return -1;
        i += 2;
        if (buf[i - 1] & 0x80)
                i += buf[i - 1] & 0x7f;
        return (size_t)n >= i + 3 && buf[i] == 0x0a && buf[i + 1] == 0x01 && buf[i + 2] == 0 ? 0
                                                                                             : -1;
}

/* PostgreSQL's SSLRequest; 0 when the server is willing ('S'). */
static int postgres_preamble(int fd)
{
        static const unsigned char req[] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
        unsigned char answer;
        if (send_all(fd, req, sizeof(req)) < 0)
                return -1;
        return recv(fd, &answer, 1, 0) == 1 && answer == 'S' ? 0 : -1;
}

/* A TLS handshake on fd, verifying as the back-end would (its CA, else the system's, and
 * the host name). 1 verified, 0 not trusted (issuer names the certificate's issuer), -1
 * no handshake. */
static int tls_probe(int fd, const char *host, const char *ca_file, char *issuer, size_t len)
{
        int verdict = -1;
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        SSL *ssl = NULL;
        X509 *peer = NULL;
        if (!ctx)
                goto out;
        if (ca_file && *ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1
                                : SSL_CTX_set_default_verify_paths(ctx) != 1)
                goto out;
        /* Verification is read after the handshake, so that a refused certificate can
         * still be named. */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        ssl = SSL_new(ctx);
        if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_set1_host(ssl, host) != 1)
                goto out;
        SSL_set_tlsext_host_name(ssl, host);
        if (SSL_connect(ssl) != 1)
                goto out;
        peer = SSL_get1_peer_certificate(ssl);
        if (!peer)
                goto out;
        tls_name_text(X509_get_issuer_name(peer), issuer, len);
        verdict = SSL_get_verify_result(ssl) == X509_V_OK;
out:
        X509_free(peer);
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        return verdict;
}

enum backend_failure backend_probe_file(const struct backend_target *t, enum backend_failure f)
{
        struct stat st;
        if (!t->file[0])
                return f;
        if (stat(t->file, &st) < 0)
                return errno == ENOENT ? BACKEND_FAILURE_MISSING_FILE : BACKEND_FAILURE_PERMISSION;
        if (access(t->file, R_OK | W_OK) < 0 && errno == EACCES)
                return BACKEND_FAILURE_PERMISSION;
        return f;
}

enum backend_failure backend_probe_failure(const struct backend_target *t, enum backend_failure f,
                                           char *issuer, size_t ilen)
{
        if (t->file[0])
                return backend_probe_file(t, f);
        if (!t->host[0])
                return f;
        /* Words that say the class already (refused, credentials) need no look, but a
         * TLS refusal does: its words rarely name the issuer. */
        if (f != BACKEND_FAILURE_CONTACT && f != BACKEND_FAILURE_OTHER &&
            f != BACKEND_FAILURE_TLS_VERIFY)
                return f;
        int fd = -1;
        int rc = tcp_probe(t->host, t->port, &fd);
        if (rc == -ECONNREFUSED)
                return BACKEND_FAILURE_REFUSED;
        if (rc < 0)
                return BACKEND_FAILURE_UNREACHABLE;
        int ready = t->tls == BACKEND_TLS_DIRECT     ? 0
                    : t->tls == BACKEND_TLS_STARTTLS ? starttls_preamble(fd)
                    : t->tls == BACKEND_TLS_POSTGRES ? postgres_preamble(fd)
                                                     : -1;
        if (ready == 0 && tls_probe(fd, t->host, t->ca_file, issuer, ilen) == 0)
                f = BACKEND_FAILURE_TLS_VERIFY;
        close(fd);
        return f;
}

/* --- the daemon's look, off the loop --- */

#define BACKEND_PROBE_MAX_LOOKS 4 /* threads looking at once, whatever flaps */

struct later_look {
        struct backend_target t;
        enum backend_failure f;
        char connector[128];
};

static atomic_uint looks;

static void *look_later(void *arg)
{
        struct later_look *l = arg;
        char issuer[256] = "", hint[512];
        enum backend_failure f = backend_probe_failure(&l->t, l->f, issuer, sizeof(issuer));
        if (f != l->f || issuer[0]) {
                backend_failure_hint(f, l->t.where, issuer, l->t.ca_key,
                                     l->t.tls != BACKEND_TLS_NONE, hint, sizeof(hint));
                log_ctx(CA_LOG_ERR, l->connector, NULL, "target diagnosis: %s", hint);
        }
        free(l);
        atomic_fetch_sub(&looks, 1);
        return NULL;
}

static void look_later_start(const struct backend_target *t, enum backend_failure f,
                             const char *connector)
{
        if (atomic_fetch_add(&looks, 1) >= BACKEND_PROBE_MAX_LOOKS) {
                atomic_fetch_sub(&looks, 1);
                return;
        }
        struct later_look *l = calloc(1, sizeof(*l));
        pthread_attr_t attr;
        pthread_t tid;
        sigset_t all, old;
        int started = 0;
        if (l && pthread_attr_init(&attr) == 0) {
                l->t = *t;
                l->f = f;
                snprintf(l->connector, sizeof(l->connector), "%s", connector ? connector : "");
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                /* Signals are the main loop's: the thread is born with them blocked. */
                sigfillset(&all);
                pthread_sigmask(SIG_SETMASK, &all, &old);
                started = pthread_create(&tid, &attr, look_later, l) == 0;
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                pthread_attr_destroy(&attr);
        }
        if (!started) {
                free(l);
                atomic_fetch_sub(&looks, 1);
        }
}

void backend_probe_quick_hint(const struct ca_settings *s, const char *connector, const char *why,
                              char *buf, size_t len)
{
        struct backend_target t;
        backend_target_from_settings(s, &t);
        enum backend_failure f =
            backend_probe_file(&t, backend_failure_classify(CA_BACKEND_EUNAVAILABLE, why));
        backend_failure_hint(f, t.where, NULL, t.ca_key, t.tls != BACKEND_TLS_NONE, buf, len);
        if (t.host[0] && (f == BACKEND_FAILURE_CONTACT || f == BACKEND_FAILURE_OTHER ||
                          (f == BACKEND_FAILURE_TLS_VERIFY && t.tls != BACKEND_TLS_NONE)))
                look_later_start(&t, f, connector);
}
