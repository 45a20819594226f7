/* SPDX-License-Identifier: Apache-2.0 */
/* doctor: one-shot diagnostics of the path from this host to the server and the targets.
 * Blocking libcurl easy calls on purpose (this never runs on the loop); TLS options are
 * the same as agent/http.c's so that what passes here passes there. */
#include "doctor.h"

#include "api.h"
#include "http.h"
#include "journal.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_hint.h"
#include "guard.h"
#include "backend_probe.h"
#include "backend_loader.h"
#include "order.h"
#include "tls_name.h"

#define DOCTOR_USER_AGENT     "connector-agent/" CA_VERSION " (doctor)"
#define DOCTOR_LINE_MAX       2048
#define DOCTOR_TEXT_MAX       512
#define DOCTOR_BODY_MAX       (64 * 1024) /* kept of an answer; the rest is read and dropped */
#define DOCTOR_CHAIN_MAX      10          /* certificates of a presented chain we look at */
#define DOCTOR_CA_FILE_MAX    1000        /* certificates read from ca_file to compare names */
#define DOCTOR_ADDRS_SHOWN    3           /* resolved addresses printed */
#define DOCTOR_SKEW_WARN_S    60
#define DOCTOR_SKEW_FAIL_S    300
#define DOCTOR_SECRET_MIN_LEN 4 /* shorter secrets would blank ordinary words */

enum verdict { V_OK, V_WARN, V_FAIL, V_SKIP };

struct doctor {
        const struct ca_config *cfg;
        const struct ca_config_server *srv;
        int failures; /* FAIL and SKIP lines */
        int warnings;
        char scheme[16];
        char host[256];
        long port;
        int https;
        const char *proxy_var;         /* the environment variable that names a proxy, or NULL */
        char proxy[300];               /* host:port of that proxy, credentials left out */
        char blocked[DOCTOR_TEXT_MAX]; /* why the server checks stop; "" while they run */
        char *token;                   /* the access token, wiped at the end */
        int cert_requested;            /* the server asked for a client certificate */
        char *secret_escaped; /* the secret as it travels in a form, scrubbed from output too */
};

/* One HTTP exchange (or one connect-only handshake). */
struct xfer {
        CURL *easy;
        struct curl_slist *headers;
        char errbuf[CURL_ERROR_SIZE];
        char *body;
        size_t len;
        time_t date; /* the answer's Date header, 0 when none */
        long status;
        CURLcode rc;
};

struct chain {
        X509 *certs[DOCTOR_CHAIN_MAX];
        int count;
};

/* --- output --- */

/* Replaces every copy of the secret by a marker: nothing the doctor prints may carry
 * it, whatever a server echoes back. */
static void scrub(char *line, size_t size, const char *secret)
{
        static const char marker[] = "(secret)";
        size_t n = secret ? strlen(secret) : 0;
        if (n < DOCTOR_SECRET_MIN_LEN)
                return;
        /* Search on after each replacement: the marker may itself contain the secret. */
        for (char *p = strstr(line, secret); p; p = strstr(p, secret)) {
                size_t tail = strlen(p + n);
                if ((size_t)(p - line) + sizeof(marker) + tail > size) {
                        memset(p, '*', n);
                        p += n;
                        continue;
                }
                memmove(p + sizeof(marker) - 1, p + n, tail + 1);
                memcpy(p, marker, sizeof(marker) - 1);
                p += sizeof(marker) - 1;
        }
}

static void report(struct doctor *d, enum verdict v, const char *name, const char *hint,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void report(struct doctor *d, enum verdict v, const char *name, const char *hint,
                   const char *fmt, ...)
{
        static const char *const tags[] = {"[ ok ]", "[WARN]", "[FAIL]", "[skip]"};
        char detail[DOCTOR_LINE_MAX], line[DOCTOR_LINE_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
        for (char *p = detail; *p; p++)
                if (*p == '\n' || *p == '\r')
                        *p = ' ';
        size_t dl = strlen(detail);
        int ends = dl > 0 && strchr(".?!", detail[dl - 1]) != NULL;
        if (hint && *hint)
                snprintf(line, sizeof(line), "%s %s: %s%s %s", tags[v], name, detail,
                         ends ? "" : ".", hint);
        else
                snprintf(line, sizeof(line), "%s %s: %s", tags[v], name, detail);
        scrub(line, sizeof(line), d->srv->client_secret);
        scrub(line, sizeof(line), d->secret_escaped);
        if (d->token)
                scrub(line, sizeof(line), d->token);
        printf("%s\n", line);
        fflush(stdout);
        if (v == V_FAIL || v == V_SKIP)
                d->failures++;
        else if (v == V_WARN)
                d->warnings++;
}

static void block(struct doctor *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void block(struct doctor *d, const char *fmt, ...)
{
        if (d->blocked[0])
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->blocked, sizeof(d->blocked), fmt, ap);
        va_end(ap);
}

/* --- URL and proxy --- */

static int parse_server_url(struct doctor *d)
{
        CURLU *u = curl_url();
        char *scheme = NULL, *host = NULL, *port = NULL;
        int rc = -EINVAL;
        if (!u)
                return -ENOMEM;
        if (curl_url_set(u, CURLUPART_URL, d->srv->url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
                goto out;
        snprintf(d->scheme, sizeof(d->scheme), "%s", scheme);
        /* An IPv6 literal comes back in brackets; the resolver wants it bare. */
        size_t hl = strlen(host);
        if (hl > 2 && host[0] == '[' && host[hl - 1] == ']')
                snprintf(d->host, sizeof(d->host), "%.*s", (int)(hl - 2), host + 1);
        else
                snprintf(d->host, sizeof(d->host), "%s", host);
        d->port = strtol(port, NULL, 10);
        d->https = strcasecmp(scheme, "https") == 0;
        rc = 0;
out:
        curl_free(scheme);
        curl_free(host);
        curl_free(port);
        curl_url_cleanup(u);
        return rc;
}

/* The variable libcurl takes a proxy from for this scheme (libcurl reads http_proxy in
 * lower case only), for the words of the report: libcurl itself makes the choice, and
 * NO_PROXY may still exclude the host. The proxy is shown as host:port only, because the
 * variable may carry a password. */
static void find_proxy(struct doctor *d)
{
        static const char *const https_vars[] = {"https_proxy", "HTTPS_PROXY", "all_proxy",
                                                 "ALL_PROXY", NULL};
        static const char *const http_vars[] = {"http_proxy", "all_proxy", "ALL_PROXY", NULL};
        const char *const *vars = d->https ? https_vars : http_vars;
        const char *value = NULL;
        for (size_t i = 0; vars[i]; i++) {
                value = getenv(vars[i]);
                if (value && *value) {
                        d->proxy_var = vars[i];
                        break;
                }
        }
        if (!d->proxy_var)
                return;
        CURLU *u = curl_url();
        char *host = NULL, *port = NULL;
        if (u && curl_url_set(u, CURLUPART_URL, value, CURLU_GUESS_SCHEME) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
                curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
        if (host)
                snprintf(d->proxy, sizeof(d->proxy), "%s:%s", host, port ? port : "1080");
        else
                snprintf(d->proxy, sizeof(d->proxy), "(unreadable value)");
        curl_free(host);
        curl_free(port);
        curl_url_cleanup(u);
}

static int is_ip_literal(const char *host)
{
        unsigned char buf[sizeof(struct in6_addr)];
        return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* --- 1. DNS --- */

static void check_dns(struct doctor *d)
{
        /* getaddrinfo_a may outlive a timed-out wait (a lookup cannot always be
         * cancelled): what it points to must too. The doctor runs once per process. */
        static struct gaicb req;
        static struct addrinfo hints;
        static char name[256];
        struct gaicb *list[1] = {&req};

        if (is_ip_literal(d->host)) {
                report(d, V_OK, "DNS", NULL, "%s is an IP address: nothing to resolve", d->host);
                return;
        }
        snprintf(name, sizeof(name), "%s", d->host);
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        memset(&req, 0, sizeof(req));
        req.ar_name = name;
        req.ar_request = &hints;

        int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
        uint64_t ms = d->srv->connect_timeout_ms;
        struct timespec deadline, now;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += (time_t)(ms / 1000);
        deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000L;
        }
        if (rc == 0)
                rc = EAI_INPROGRESS;
        while (rc == EAI_INPROGRESS && (rc = gai_error(&req)) == EAI_INPROGRESS) {
                clock_gettime(CLOCK_MONOTONIC, &now);
                struct timespec left = {deadline.tv_sec - now.tv_sec,
                                        deadline.tv_nsec - now.tv_nsec};
                if (left.tv_nsec < 0) {
                        left.tv_sec--;
                        left.tv_nsec += 1000000000L;
                }
                if (left.tv_sec < 0) {
                        gai_cancel(&req);
                        rc = EAI_INPROGRESS;
                        break;
                }
                int w = gai_suspend((const struct gaicb *const *)list, 1, &left);
                if (w != 0 && w != EAI_INTR && w != EAI_AGAIN && w != EAI_ALLDONE) {
                        rc = w;
                        break;
                }
        }

        if (rc == 0) {
                char addrs[DOCTOR_TEXT_MAX] = "";
                size_t shown = 0;
                for (struct addrinfo *ai = req.ar_result; ai; ai = ai->ai_next) {
                        char ip[INET6_ADDRSTRLEN];
                        const void *a =
                            ai->ai_family == AF_INET6
                                ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                                : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
                        if (!inet_ntop(ai->ai_family, a, ip, sizeof(ip)))
                                continue;
                        if (shown < DOCTOR_ADDRS_SHOWN && !strstr(addrs, ip)) {
                                size_t l = strlen(addrs);
                                snprintf(addrs + l, sizeof(addrs) - l, "%s%s", l ? ", " : "", ip);
                                shown++;
                        }
                }
                freeaddrinfo(req.ar_result);
                req.ar_result = NULL;
                report(d, V_OK, "DNS", NULL, "%s -> %s", d->host, addrs);
                return;
        }
        const char *why = rc == EAI_INPROGRESS ? "no answer within connect_timeout"
                          : rc == EAI_NONAME   ? "no such name"
                          : rc == EAI_AGAIN    ? "the DNS server did not answer"
                                               : gai_strerror(rc);
        if (d->proxy_var) {
                /* Behind a proxy, the proxy resolves the name: failing here is normal on
                 * networks that resolve only internal names. */
                report(d, V_WARN, "DNS", NULL,
                       "%s does not resolve on this host (%s); the proxy %s (%s) resolves it",
                       d->host, why, d->proxy, d->proxy_var);
                return;
        }
        report(d, V_FAIL, "DNS",
               "Check the host name in [server] url and this host's resolver (/etc/resolv.conf); "
               "if the server is reached only through a proxy, set HTTPS_PROXY",
               "cannot resolve %s: %s", d->host, why);
        block(d, "%s does not resolve", d->host);
}

/* --- curl plumbing --- */

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ctx)
{
        struct xfer *x = ctx;
        size_t n = size * nmemb;
        size_t room = DOCTOR_BODY_MAX - x->len;
        size_t take = n < room ? n : room;
        if (take) {
                if (!x->body) {
                        x->body = malloc(DOCTOR_BODY_MAX + 1);
                        if (!x->body)
                                return 0;
                }
                memcpy(x->body + x->len, data, take);
                x->len += take;
                x->body[x->len] = '\0';
        }
        return n;
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *ctx)
{
        struct xfer *x = ctx;
        size_t n = size * nmemb;
        /* A new status line (after a proxy's CONNECT answer): forget the earlier Date. */
        if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
                x->date = 0;
        if (n > 5 && n < 200 && strncasecmp(data, "Date:", 5) == 0) {
                char value[200];
                memcpy(value, data + 5, n - 5);
                value[n - 5] = '\0';
                time_t t = curl_getdate(value, NULL);
                if (t > 0)
                        x->date = t;
        }
        return n;
}

/* Spots the server's CertificateRequest among the handshake messages libcurl traces
 * (TLS 1.3 completes the handshake before the server refuses a missing certificate, so
 * the refusal only shows later, as a dropped connection). Prints nothing. */
static int trace_cb(CURL *e, curl_infotype type, char *data, size_t size, void *ctx)
{
        struct doctor *d = ctx;
        const unsigned char *p = (const unsigned char *)data;
        enum { TLS_CERTIFICATE_REQUEST = 13 };
        if (type == CURLINFO_SSL_DATA_IN && size >= 4 && p[0] == TLS_CERTIFICATE_REQUEST &&
            ((size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3]) == size - 4)
                d->cert_requested = 1;
        return 0;
}

static int xfer_init(struct doctor *d, struct xfer *x, const char *url)
{
        const struct ca_config_server *s = d->srv;
        memset(x, 0, sizeof(*x));
        x->easy = curl_easy_init();
        if (!x->easy)
                return -ENOMEM;
        CURL *e = x->easy;
        int ok = http_server_options(e, s, DOCTOR_USER_AGENT, x->errbuf) == 0;
        ok &= curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_WRITEDATA, x) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_HEADERDATA, x) == CURLE_OK;
        return ok ? 0 : -EINVAL;
}

static void xfer_perform(struct xfer *x)
{
        x->rc = curl_easy_perform(x->easy);
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
        if (!x->errbuf[0])
                snprintf(x->errbuf, sizeof(x->errbuf), "%s", curl_easy_strerror(x->rc));
}

static void xfer_free(struct xfer *x)
{
        if (x->easy)
                curl_easy_cleanup(x->easy);
        curl_slist_free_all(x->headers);
        if (x->body) {
                explicit_bzero(x->body, x->len);
                free(x->body);
        }
        memset(x, 0, sizeof(*x));
}

/* The URL of path on the server: "https://h/" and "https://h" are the same server. */
static char *server_url(const struct doctor *d, const char *path)
{
        const char *base = d->srv->url;
        int len = (int)strlen(base);
        while (len > 0 && base[len - 1] == '/')
                len--;
        char *url = NULL;
        if (asprintf(&url, "%.*s%s", len, base, path) < 0)
                return NULL;
        return url;
}

/* --- certificates --- */

static void chain_from_certinfo(CURL *e, struct chain *c)
{
        struct curl_certinfo *ci = NULL;
        c->count = 0;
        if (curl_easy_getinfo(e, CURLINFO_CERTINFO, &ci) != CURLE_OK || !ci)
                return;
        for (int i = 0; i < ci->num_of_certs && c->count < DOCTOR_CHAIN_MAX; i++) {
                for (struct curl_slist *f = ci->certinfo[i]; f; f = f->next) {
                        if (strncmp(f->data, "Cert:", 5) != 0)
                                continue;
                        BIO *bio = BIO_new_mem_buf(f->data + 5, -1);
                        X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
                        BIO_free(bio);
                        if (x)
                                c->certs[c->count++] = x;
                        break;
                }
        }
}

static void chain_clear(struct chain *c)
{
        for (int i = 0; i < c->count; i++)
                X509_free(c->certs[i]);
        c->count = 0;
}

static void time_text(const ASN1_TIME *t, char *buf, size_t len)
{
        struct tm tm;
        if (!t || ASN1_TIME_to_tm(t, &tm) != 1 ||
            strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm) == 0)
                snprintf(buf, len, "(unknown date)");
}

static void now_text(char *buf, size_t len)
{
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm);
}

/* The names a certificate is valid for (DNS and IP subjectAltNames, else its CN). */
static void cert_names(X509 *x, char *buf, size_t len)
{
        GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
        buf[0] = '\0';
        for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
                const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
                char one[INET6_ADDRSTRLEN + 8] = "";
                if (g->type == GEN_DNS) {
                        snprintf(one, sizeof(one), "%.*s", ASN1_STRING_length(g->d.dNSName),
                                 (const char *)ASN1_STRING_get0_data(g->d.dNSName));
                } else if (g->type == GEN_IPADD) {
                        int l = ASN1_STRING_length(g->d.iPAddress);
                        const unsigned char *p = ASN1_STRING_get0_data(g->d.iPAddress);
                        if (!inet_ntop(l == 16 ? AF_INET6 : AF_INET, p, one, sizeof(one)))
                                one[0] = '\0';
                } else {
                        continue;
                }
                size_t at = strlen(buf);
                snprintf(buf + at, len - at, "%s%s", at ? ", " : "", one);
        }
        GENERAL_NAMES_free(names);
        if (!buf[0])
                tls_name_text(X509_get_subject_name(x), buf, len);
}

/* "sha256//<base64>" of the certificate's public key, curl's pinned_pubkey syntax. */
static void pubkey_pin(X509 *x, char *buf, size_t len)
{
        unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
        int n = i2d_PUBKEY(X509_get0_pubkey(x), &der);
        if (n <= 0 || EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1) {
                snprintf(buf, len, "(unknown)");
        } else {
                EVP_EncodeBlock(b64, md, (int)mdlen);
                snprintf(buf, len, "sha256//%s", (const char *)b64);
        }
        OPENSSL_free(der);
}

/* Whether ca_file holds a certificate whose subject is name: then the presented
 * certificate names a CA we know, but was signed by another key. */
static int ca_file_has_subject(const char *ca_file, const X509_NAME *name)
{
        BIO *bio = BIO_new_file(ca_file, "r");
        int found = 0;
        if (!bio)
                return 0;
        for (int i = 0; i < DOCTOR_CA_FILE_MAX && !found; i++) {
                X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
                if (!x)
                        break;
                found = X509_NAME_cmp(X509_get_subject_name(x), name) == 0;
                X509_free(x);
        }
        BIO_free(bio);
        return found;
}

/* A second handshake with verification off, only to see what the server presents
 * (nothing is sent over it). */
static int fetch_chain(struct doctor *d, struct chain *c, char *why, size_t why_len)
{
        struct xfer x;
        int rc = xfer_init(d, &x, d->srv->url);
        if (rc == 0) {
                curl_easy_setopt(x.easy, CURLOPT_CONNECT_ONLY, 1L);
                curl_easy_setopt(x.easy, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(x.easy, CURLOPT_SSL_VERIFYHOST, 0L);
                curl_easy_setopt(x.easy, CURLOPT_PINNEDPUBLICKEY, NULL);
                curl_easy_setopt(x.easy, CURLOPT_CERTINFO, 1L);
                xfer_perform(&x);
                if (x.rc == CURLE_OK)
                        chain_from_certinfo(x.easy, c);
                else
                        snprintf(why, why_len, "%s", x.errbuf);
                if (x.rc == CURLE_OK && c->count == 0)
                        snprintf(why, why_len, "the server presented no certificate");
                rc = c->count > 0 ? 0 : -EPROTO;
        }
        xfer_free(&x);
        return rc;
}

static const char *trust_source(const struct doctor *d, char *buf, size_t len)
{
        if (d->srv->ca_file)
                snprintf(buf, len, "ca_file %s", d->srv->ca_file);
        else
                snprintf(buf, len, "the system's CA store");
        return buf;
}

/* --- 2. TCP and 3. TLS: one handshake, as the agent makes it --- */

static void report_tls_ok(struct doctor *d, CURL *e)
{
        struct chain c = {0};
        char subject[256] = "", issuer[256] = "", until[64] = "", trust[DOCTOR_TEXT_MAX];
        chain_from_certinfo(e, &c);
        if (c.count > 0) {
                tls_name_text(X509_get_subject_name(c.certs[0]), subject, sizeof(subject));
                tls_name_text(X509_get_issuer_name(c.certs[0]), issuer, sizeof(issuer));
                time_text(X509_get0_notAfter(c.certs[0]), until, sizeof(until));
        }
        int missing = d->cert_requested && !d->srv->client_cert;
        report(d, missing ? V_WARN : V_OK, "TLS",
               missing ? "If the server requires one, set client_cert and client_key" : NULL,
               "certificate '%s' issued by '%s', valid until %s, verified with %s%s%s%s", subject,
               issuer, until, trust_source(d, trust, sizeof(trust)),
               d->srv->pinned_pubkey ? "; public key matches pinned_pubkey" : "",
               d->srv->client_cert ? "; client certificate offered" : "",
               missing ? "; the server asks for a client certificate and none is configured" : "");
        chain_clear(&c);
}

static void report_tls_verify_failed(struct doctor *d, long verify, const char *errbuf)
{
        struct chain c = {0};
        char why[CURL_ERROR_SIZE] = "", trust[DOCTOR_TEXT_MAX];
        trust_source(d, trust, sizeof(trust));
        if (fetch_chain(d, &c, why, sizeof(why)) < 0) {
                report(d, V_FAIL, "TLS",
                       "A TLS-inspecting proxy? Add its CA with ca_file = /path/to/proxy-ca.pem",
                       "the certificate was refused (%s), and a second look at it failed: %s",
                       errbuf, why);
                return;
        }
        X509 *leaf = c.certs[0];
        char subject[256], issuer[256], date[64], now[64], names[DOCTOR_TEXT_MAX];
        tls_name_text(X509_get_subject_name(leaf), subject, sizeof(subject));
        tls_name_text(X509_get_issuer_name(leaf), issuer, sizeof(issuer));
        now_text(now, sizeof(now));

        switch (verify) {
        case X509_V_ERR_CERT_HAS_EXPIRED:
                time_text(X509_get0_notAfter(leaf), date, sizeof(date));
                report(d, V_FAIL, "TLS",
                       "The server's certificate must be renewed; if that date is still to "
                       "come, this host's clock is wrong (check NTP: timedatectl)",
                       "certificate '%s' expired on %s (this host's time: %s)", subject, date, now);
                break;
        case X509_V_ERR_CERT_NOT_YET_VALID:
                time_text(X509_get0_notBefore(leaf), date, sizeof(date));
                report(d, V_FAIL, "TLS",
                       "This host's clock is probably behind: check NTP (timedatectl)",
                       "certificate '%s' is valid only from %s (this host's time: %s)", subject,
                       date, now);
                break;
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_CERT_SIGNATURE_FAILURE: {
                int same_name = d->srv->ca_file &&
                                ca_file_has_subject(d->srv->ca_file, X509_get_issuer_name(leaf));
                const char *self = verify == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
                                       ? " (a self-signed certificate)"
                                       : "";
                report(d, V_FAIL, "TLS",
                       "A TLS-inspecting proxy? Add its CA with ca_file = /path/to/proxy-ca.pem "
                       "(if the server's own CA changed, put that CA in ca_file instead)",
                       "certificate '%s' issued by '%s'%s, not by a CA this host trusts "
                       "(%s%s)",
                       subject, issuer, self, trust,
                       same_name ? ", which holds a CA of that name but with another key" : "");
                break;
        }
        default: {
                /* libcurl checks the name itself, after the chain: the verify result then
                 * says nothing useful, so look at the names. */
                int match = is_ip_literal(d->host)
                                ? X509_check_ip_asc(leaf, d->host, 0) == 1
                                : X509_check_host(leaf, d->host, 0, 0, NULL) == 1;
                if (!match) {
                        cert_names(leaf, names, sizeof(names));
                        report(d, V_FAIL, "TLS",
                               "Use a name the certificate carries in [server] url, or have the "
                               "server's certificate include this one",
                               "hostname mismatch: certificate '%s' (issued by '%s') is valid for "
                               "%s, not for %s",
                               subject, issuer, names, d->host);
                } else {
                        report(d, V_FAIL, "TLS",
                               "A TLS-inspecting proxy? Add its CA with ca_file = "
                               "/path/to/proxy-ca.pem",
                               "certificate '%s' issued by '%s' refused: %s (checked with %s)",
                               subject, issuer,
                               verify == X509_V_OK ? errbuf : X509_verify_cert_error_string(verify),
                               trust);
                }
                break;
        }
        }
        chain_clear(&c);
}

static void report_pin_failed(struct doctor *d)
{
        struct chain c = {0};
        char why[CURL_ERROR_SIZE] = "", pin[128] = "(unknown)", subject[256] = "", issuer[256] = "";
        if (fetch_chain(d, &c, why, sizeof(why)) == 0) {
                pubkey_pin(c.certs[0], pin, sizeof(pin));
                tls_name_text(X509_get_subject_name(c.certs[0]), subject, sizeof(subject));
                tls_name_text(X509_get_issuer_name(c.certs[0]), issuer, sizeof(issuer));
        }
        report(d, V_FAIL, "TLS",
               "A TLS-inspecting proxy, or the server's key changed: if the change is expected, "
               "set pinned_pubkey to the new key",
               "certificate '%s' issued by '%s' has public key %s, which does not match "
               "pinned_pubkey",
               subject, issuer, pin);
        chain_clear(&c);
}

static void report_tls_failed(struct doctor *d, const struct xfer *x, long verify)
{
        switch (x->rc) {
        case CURLE_PEER_FAILED_VERIFICATION:
                report_tls_verify_failed(d, verify, x->errbuf);
                break;
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
                report_pin_failed(d);
                break;
        case CURLE_SSL_CERTPROBLEM:
                report(d, V_FAIL, "TLS",
                       "Check client_cert and client_key: PEM files, readable by this user, a "
                       "matching pair",
                       "the client certificate cannot be used: %s", x->errbuf);
                break;
        case CURLE_SSL_CACERT_BADFILE:
                report(d, V_FAIL, "TLS", "Check the ca_file path and that this user can read it",
                       "the CA bundle cannot be used: %s", x->errbuf);
                break;
        case CURLE_OPERATION_TIMEDOUT:
                report(d, V_FAIL, "TLS",
                       "Something accepts connections on this port but does not complete a TLS "
                       "handshake: check the port, or a firewall in between",
                       "no TLS handshake within request_timeout: %s", x->errbuf);
                break;
        default:
                report(d, V_FAIL, "TLS",
                       strstr(x->errbuf, "wrong version number") ||
                               strstr(x->errbuf, "packet length")
                           ? "The port does not speak TLS: check the port, or use http:// for a "
                             "plain loopback server"
                           : "The server or a device in between refused the handshake: it may "
                             "require a client certificate (client_cert, client_key) or a TLS "
                             "version this host does not offer",
                       "TLS handshake failed: %s", x->errbuf);
                break;
        }
}

static void check_connect(struct doctor *d)
{
        if (d->blocked[0]) {
                report(d, V_SKIP, "TCP", NULL, "not tried: %s", d->blocked);
                if (d->https)
                        report(d, V_SKIP, "TLS", NULL, "not tried: %s", d->blocked);
                return;
        }
        struct xfer x;
        if (xfer_init(d, &x, d->srv->url) < 0) {
                report(d, V_FAIL, "TCP", NULL, "cannot set up libcurl: out of memory?");
                block(d, "libcurl unusable");
                xfer_free(&x);
                return;
        }
        curl_easy_setopt(x.easy, CURLOPT_CONNECT_ONLY, 1L);
        if (d->https) {
                curl_easy_setopt(x.easy, CURLOPT_CERTINFO, 1L);
                curl_easy_setopt(x.easy, CURLOPT_DEBUGFUNCTION, trace_cb);
                curl_easy_setopt(x.easy, CURLOPT_DEBUGDATA, d);
                curl_easy_setopt(x.easy, CURLOPT_VERBOSE, 1L);
        }
        xfer_perform(&x);

        char *ip = NULL;
        long port = 0, tunnel = 0, verify = 0;
        curl_easy_getinfo(x.easy, CURLINFO_PRIMARY_IP, &ip);
        curl_easy_getinfo(x.easy, CURLINFO_PRIMARY_PORT, &port);
        curl_easy_getinfo(x.easy, CURLINFO_HTTP_CONNECTCODE, &tunnel);
        curl_easy_getinfo(x.easy, CURLINFO_SSL_VERIFYRESULT, &verify);
        char via[DOCTOR_TEXT_MAX] = "";
        if (tunnel)
                snprintf(via, sizeof(via), " through the proxy %s (%s), tunnel to %s:%ld open",
                         d->proxy, d->proxy_var ? d->proxy_var : "environment", d->host, d->port);
        else if (d->proxy_var && !d->https)
                snprintf(via, sizeof(via), " (the proxy %s from %s, unless NO_PROXY excludes %s)",
                         d->proxy, d->proxy_var, d->host);
        else if (d->proxy_var)
                snprintf(via, sizeof(via), " directly (NO_PROXY excludes %s from %s)", d->host,
                         d->proxy_var);

        /* libcurl names the peer once the TCP connection stands (the proxy's address when
         * it tunnels), and leaves it empty when the connection failed. */
        int tcp_ok = x.rc == CURLE_OK || (ip && *ip && (!tunnel || tunnel == 200));
        /* A proxy that drops the tunnel request without an answer (it could not reach the
         * server either) leaves no status behind, only libcurl's words. */
        if (d->proxy_var && !tunnel && x.rc != CURLE_OK && strstr(x.errbuf, "CONNECT"))
                tcp_ok = 0;
        if (x.rc == CURLE_COULDNT_RESOLVE_PROXY) {
                report(d, V_FAIL, "TCP", "Check the proxy's name in that variable",
                       "cannot resolve the proxy %s named by %s: %s", d->proxy, d->proxy_var,
                       x.errbuf);
        } else if (tunnel >= 300) {
                report(d, V_FAIL, "TCP",
                       tunnel == 407 ? "The proxy wants credentials: give them in the proxy "
                                       "variable (http://user:password@host:port)"
                                     : "The proxy refuses this destination: ask for the "
                                       "server's host and port to be allowed",
                       "the proxy %s (%s) refused the tunnel to %s:%ld with HTTP %ld", d->proxy,
                       d->proxy_var ? d->proxy_var : "environment", d->host, d->port, tunnel);
        } else if (!tcp_ok) {
                const char *hint =
                    d->proxy_var && strstr(x.errbuf, "CONNECT")
                        ? "The proxy did not open the tunnel: it may not resolve or reach the "
                          "server; check with its administrators, or NO_PROXY if the server is "
                          "reached directly"
                    : x.rc == CURLE_OPERATION_TIMEDOUT
                        ? "No answer at all: a firewall drops the packets, or the host is down; "
                          "check routes and firewall rules for this port"
                    : x.rc == CURLE_COULDNT_RESOLVE_HOST
                        ? "Check the host name in [server] url and this host's resolver"
                        : "Nothing accepts connections there: check the port in [server] url, "
                          "that the server runs, and firewall rules";
                if (d->proxy_var)
                        snprintf(via, sizeof(via),
                                 " through the proxy %s (%s), unless NO_PROXY excludes %s",
                                 d->proxy, d->proxy_var, d->host);
                report(d, V_FAIL, "TCP", hint, "cannot connect to %s:%ld%s: %s", d->host, d->port,
                       via, x.errbuf);
        }
        if (!tcp_ok || tunnel >= 300 || x.rc == CURLE_COULDNT_RESOLVE_PROXY) {
                block(d, "no connection to %s:%ld", d->host, d->port);
                if (d->https)
                        report(d, V_SKIP, "TLS", NULL, "not tried: %s", d->blocked);
                xfer_free(&x);
                return;
        }
        report(d, V_OK, "TCP", NULL, "connected to %s:%ld%s", ip && *ip ? ip : d->host,
               port ? port : d->port, via);
        if (!d->https) {
                /* The configuration allows plain http only to a loopback host. */
                report(d, V_OK, "TLS", NULL, "not used: plain http to a loopback host");
        } else if (x.rc == CURLE_OK) {
                report_tls_ok(d, x.easy);
        } else {
                report_tls_failed(d, &x, verify);
                block(d, "no trusted TLS connection");
        }
        xfer_free(&x);
}

/* --- 4. clock and 5. token --- */

static void report_clock(struct doctor *d, const struct xfer *x, time_t local)
{
        if (!x->date) {
                report(d, V_WARN, "Clock", NULL,
                       "the server sent no Date header: cannot compare clocks");
                return;
        }
        long skew = (long)(x->date - local);
        long abs_skew = skew < 0 ? -skew : skew;
        const char *dir = skew > 0 ? "behind" : "ahead of";
        if (abs_skew <= DOCTOR_SKEW_WARN_S)
                report(d, V_OK, "Clock", NULL, "within %ld s of the server's", abs_skew);
        else if (abs_skew <= DOCTOR_SKEW_FAIL_S)
                report(d, V_WARN, "Clock", "Synchronise this host's clock (NTP: timedatectl)",
                       "this host is %ld s %s the server", abs_skew, dir);
        else
                report(d, V_FAIL, "Clock",
                       "Tokens and TLS certificates break with such a skew: synchronise this "
                       "host's clock (NTP: timedatectl, chrony)",
                       "this host is %ld s %s the server", abs_skew, dir);
}

/* An answer loaded the agent's guarded way, or NULL: a verdict then says what is missing. */
static json_t *doctor_json(const char *body, size_t len, const char *what)
{
        json_t *root = NULL;
        struct ca_error err = {0};
        return order_json_load(body, len, what, &root, &err) == 0 ? root : NULL;
}

static const char *json_text(json_t *root, const char *key)
{
        json_t *v = json_object_get(root, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

static void check_token(struct doctor *d)
{
        const struct ca_config_server *s = d->srv;
        if (d->blocked[0]) {
                report(d, V_SKIP, "Clock", NULL, "not checked: %s", d->blocked);
                report(d, V_SKIP, "Token", NULL, "not requested: %s", d->blocked);
                return;
        }
        struct xfer x;
        char *body = NULL;
        size_t n = 0;
        json_t *root = NULL;
        int rc = xfer_init(d, &x, s->token_url);
        if (rc == 0)
                rc = api_token_form(s, &body, &n); /* exactly what the agent sends */
        if (rc < 0) {
                body = NULL;
                report(d, V_FAIL, "Token", NULL, "cannot build the token request: out of memory");
                block(d, "no token");
                goto out;
        }
        x.headers = curl_slist_append(x.headers, "Accept: application/json");
        x.headers = curl_slist_append(x.headers, "Content-Type: application/x-www-form-urlencoded");
        x.headers = curl_slist_append(x.headers, "Expect:");
        curl_easy_setopt(x.easy, CURLOPT_HTTPHEADER, x.headers);
        curl_easy_setopt(x.easy, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(x.easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
        xfer_perform(&x);
        time_t local = time(NULL);

        if (x.rc != CURLE_OK) {
                report(d, V_SKIP, "Clock", NULL, "not checked: the token request got no answer");
                report(d, V_FAIL, "Token",
                       (d->cert_requested && !s->client_cert) ||
                               strstr(x.errbuf, "certificate required")
                           ? "The server asks for a client certificate: set client_cert and "
                             "client_key"
                           : "Check token_url and that the server answers there",
                       "POST %s failed: %s", s->token_url, x.errbuf);
                block(d, "no token");
                goto out;
        }
        report_clock(d, &x, local);
        root = x.body ? doctor_json(x.body, x.len, "token answer") : NULL;
        const char *error = root ? json_text(root, "error") : NULL;
        const char *desc = root ? json_text(root, "error_description") : NULL;
        char said[DOCTOR_TEXT_MAX] = "";
        if (error)
                snprintf(said, sizeof(said), " (%s%s%s)", error, desc ? ": " : "",
                         desc ? desc : "");
        if (x.status == 200) {
                const char *token = root ? json_text(root, "access_token") : NULL;
                json_t *exp = root ? json_object_get(root, "expires_in") : NULL;
                if (!token || !*token) {
                        report(d, V_FAIL, "Token",
                               "Check that token_url is the OAuth token endpoint",
                               "POST %s answered 200 without an access_token", s->token_url);
                        block(d, "no token");
                        goto out;
                }
                d->token = strdup(token);
                if (!d->token) {
                        report(d, V_FAIL, "Token", NULL, "out of memory");
                        block(d, "no token");
                        goto out;
                }
                report(d, V_OK, "Token", NULL, "granted to %s by %s (expires in %lld s)",
                       s->client_id, s->token_url,
                       json_is_integer(exp) ? (long long)json_integer_value(exp) : -1LL);
        } else if (x.status == 400 || x.status == 401) {
                char hint[DOCTOR_TEXT_MAX];
                if (error && strcmp(error, "invalid_scope") == 0)
                        snprintf(hint, sizeof(hint), "Check scope (now '%s')", s->scope);
                else
                        snprintf(hint, sizeof(hint),
                                 "Check client_id ('%s') and the client secret "
                                 "(client_secret_file or its credential)",
                                 s->client_id);
                report(d, V_FAIL, "Token", hint, "refused with HTTP %ld%s", x.status, said);
                block(d, "no token");
        } else {
                const char *hint =
                    x.status == 404   ? "Check token_url: the server has no token endpoint there"
                    : x.status >= 500 ? "The server is failing: try later, or ask its operators"
                    : x.status >= 300 && x.status < 400
                        ? "token_url redirects: use the final address in token_url"
                        : "Check token_url";
                report(d, V_FAIL, "Token", hint, "POST %s answered HTTP %ld%s", s->token_url,
                       x.status, said);
                block(d, "no token");
        }
out:
        json_decref(root);
        if (body) {
                explicit_bzero(body, n);
                free(body);
        }
        xfer_free(&x);
}

/* --- 6. ProvisioningData, read only --- */

/* Prepares the read of one page of one order (PageSize=1) with the token; *auth is the
 * header line holding the token, for the caller to wipe. */
static int data_request(struct doctor *d, const char *connector, struct xfer *x, char **auth)
{
        char *id = NULL, *version = NULL, *path = NULL, *url = NULL;
        int rc = -ENOMEM;
        *auth = NULL;
        if (xfer_init(d, x, "") < 0)
                goto out;
        id = curl_easy_escape(x->easy, connector, 0);
        version = curl_easy_escape(x->easy, d->srv->api_version, 0);
        if (!id || !version ||
            asprintf(&path,
                     "/api/Connectors/Provisioning/ProvisioningData/%s?api-version=%s&PageSize=1",
                     id, version) < 0) {
                path = NULL;
                goto out;
        }
        url = server_url(d, path);
        if (!url || asprintf(auth, "Authorization: Bearer %s", d->token) < 0) {
                *auth = NULL;
                goto out;
        }
        x->headers = curl_slist_append(x->headers, "Accept: application/json");
        if (x->headers)
                x->headers = curl_slist_append(x->headers, *auth);
        if (!x->headers || curl_easy_setopt(x->easy, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers) != CURLE_OK)
                goto out;
        rc = 0;
out:
        curl_free(id);
        curl_free(version);
        free(path);
        free(url);
        return rc;
}

static void check_connector_api(struct doctor *d, const struct ca_config_connector *conn)
{
        char name[300];
        snprintf(name, sizeof(name), "Connector %s", conn->name);
        if (d->blocked[0]) {
                report(d, V_SKIP, name, NULL, "not asked: %s", d->blocked);
                return;
        }
        struct xfer x;
        char *auth = NULL;
        json_t *root = NULL;
        if (data_request(d, conn->name, &x, &auth) < 0) {
                report(d, V_FAIL, name, NULL, "cannot build the request: out of memory");
                goto out;
        }
        xfer_perform(&x);

        if (x.rc != CURLE_OK) {
                report(d, V_FAIL, name, "The server was reachable a moment ago: try again",
                       "GET ProvisioningData/%s failed: %s", conn->name, x.errbuf);
                goto out;
        }
        switch (x.status) {
        case 200: {
                root = x.body ? doctor_json(x.body, x.len, "ProvisioningData") : NULL;
                json_t *list = root ? json_object_get(root, "ProvisioningOrdersList") : NULL;
                json_t *more = root ? json_object_get(root, "ContinuationToken") : NULL;
                size_t count = json_is_array(list) ? json_array_size(list) : 0;
                int waiting = count > 0 || (json_is_string(more) && json_string_length(more) > 0);
                report(d, V_OK, name, NULL, "ProvisioningData answered HTTP 200: %s%s",
                       waiting ? "orders are waiting" : "no order waiting",
                       waiting ? " (read, not taken: the server delivers them again after its "
                                 "lease)"
                               : "");
                break;
        }
        case 204:
                report(d, V_OK, name, NULL, "ProvisioningData answered HTTP 204: no order waiting");
                break;
        case 401:
                report(d, V_FAIL, name,
                       "The token just granted was refused: the client may lack the right to "
                       "this API (scope), or the token and API servers disagree",
                       "ProvisioningData answered HTTP 401");
                break;
        case 403:
        case 404:
                report(d, V_FAIL, name,
                       "Check the connector's name (its [connector NAME] section must match the "
                       "server's connector id) and that this agent's client may serve it",
                       "HTTP %ld: the server does not know connector %s or refuses this agent",
                       x.status, conn->name);
                break;
        case 429:
        case 503:
                report(d, V_FAIL, name, "The server is busy or in maintenance: try again later",
                       "ProvisioningData answered HTTP %ld", x.status);
                break;
        default:
                report(d, V_FAIL, name,
                       x.status >= 500 ? "The server is failing: try later, or ask its operators"
                                       : "Check api_version and that [server] url is the "
                                         "server's base address",
                       "ProvisioningData answered HTTP %ld", x.status);
                break;
        }
out:
        json_decref(root);
        if (auth) {
                explicit_bzero(auth, strlen(auth));
                free(auth);
        }
        xfer_free(&x);
}

/* --- 7. back-ends --- */

static void check_backend(struct doctor *d, const struct ca_config_connector *conn)
{
        char name[300];
        snprintf(name, sizeof(name), "Back-end %s (%s)", conn->name, conn->backend);
        struct ca_error err = {0};
        struct ca_backend_error berr = {0};
        struct backend *b = NULL;
        void *instance = NULL, *session = NULL;
        const char *step = "instance_new";
        if (backend_load(d->cfg->agent.backend_dir, conn->backend, &b, &err) < 0) {
                report(d, V_FAIL, name, "Check backend and backend_dir", "%s", err.msg);
                return;
        }
        const struct ca_backend_ops *ops = backend_ops(b);
        int rc =
            ops->instance_new(backend_host(), backend_settings(&conn->settings), &instance, &berr);
        if (rc == CA_BACKEND_OK) {
                step = "session_open";
                rc = ops->session_open(instance, &session, &berr);
        }
        if (rc == CA_BACKEND_OK) {
                step = "check"; /* required: the loader refuses a plug-in without it */
                rc = ops->check(session, &berr);
        }
        if (rc == CA_BACKEND_OK)
                report(d, V_OK, name, NULL, "target reachable%s",
                       berr.message[0] ? berr.message : "");
        else {
                char issuer[256] = "", hint[DOCTOR_TEXT_MAX];
                struct backend_target t;
                backend_target_from_settings(&conn->settings, &t);
                enum backend_failure f = backend_probe_failure(
                    &t, backend_failure_classify(rc, berr.message), issuer, sizeof(issuer));
                backend_failure_hint(f, t.where, issuer, t.ca_key, t.tls != BACKEND_TLS_NONE, hint,
                                     sizeof(hint));
                report(d, V_FAIL, name, hint, "%s failed: %s", step,
                       berr.message[0] ? berr.message : "(the plug-in gave no reason)");
        }
        if (session)
                ops->session_close(session);
        if (instance)
                ops->instance_free(instance);
        backend_unload(b);
}

/* --- 8. guardrails --- */

static void guard_line(void *ctx, const char *text)
{
        (void)ctx;
        printf("       %s\n", text);
}

/* Lists each connector's guardrails, so that the people who own the targets see what the
 * agent will refuse or hold; a connector without any is a warning (the server's word is
 * then all that limits what happens to the target). */
static void check_guards(struct doctor *d, const struct ca_config_connector *conn)
{
        char name[300], why[2048];
        snprintf(name, sizeof(name), "Guardrails %s", conn->name);
        struct guard_rules *r = NULL;
        if (guard_rules_parse(conn, &r, why, sizeof(why)) < 0) {
                report(d, V_FAIL, name, "Fix the rule (connector-agent --check-config)", "%s", why);
                return;
        }
        if (guard_rules_empty(r))
                report(d, V_WARN, name,
                       "Consider protect, protect_subtree, allow_subtree and max_deleted "
                       "(agent.conf(5), GUARDRAILS)",
                       "none: the agent applies whatever the server sends");
        else {
                report(d, V_OK, name, NULL, "refused or held by the agent:");
                guard_rules_describe(r, guard_line, NULL);
        }
        guard_rules_free(r);
}

/* The PostgreSQL journal: reachable with the configured credentials, a schema this agent
 * knows, the same seal key, and who serves each connector. The embedded SQLite journal
 * is the agent's own file: opening it here could create it with the operator's owner. */
static void check_journal(struct doctor *d)
{
        enum journal_kind kind;
        if (journal_kind_parse(d->cfg->agent.journal, &kind) < 0 || kind != JOURNAL_POSTGRESQL)
                return;
        struct journal *j = NULL;
        struct ca_error err = {0};
        if (journal_open_config(&d->cfg->agent, &j, &err) < 0) {
                report(d, V_FAIL, "Journal",
                       "Check journal_connection, its password and the server (psql with the "
                       "same connection string tells more)",
                       "%s", err.msg);
                return;
        }
        report(d, V_OK, "Journal", NULL, "PostgreSQL journal reachable, schema version %d",
               CA_JOURNAL_PG_SCHEMA_VERSION);
        for (size_t i = 0; i < d->cfg->connector_count; i++) {
                const char *name = d->cfg->connectors[i].name;
                struct journal_role role;
                if (journal_role_of(j, name, &role, &err) < 0)
                        report(d, V_FAIL, "Journal role", NULL, "connector %s: %s", name, err.msg);
                else if (role.epoch == 0)
                        report(d, V_OK, "Journal role", NULL,
                               "connector %s: no instance has served it yet", name);
                else
                        report(d, V_OK, "Journal role", NULL,
                               "connector %s: served by instance %s (taken %lld time(s))", name,
                               role.holder, (long long)role.epoch);
        }
        journal_close(j);
}

int doctor_run(const struct ca_config *cfg)
{
        struct doctor d = {.cfg = cfg, .srv = &cfg->server};
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                fprintf(stderr, "connector-agent: cannot initialise libcurl\n");
                return 1;
        }
        if (cfg->server.client_secret)
                d.secret_escaped = curl_easy_escape(NULL, cfg->server.client_secret, 0);
        printf("connector-agent doctor: configuration %s, server %s, %zu connector(s)\n",
               cfg->path ? cfg->path : "(environment)", cfg->server.url, cfg->connector_count);
        if (parse_server_url(&d) < 0) {
                report(&d, V_FAIL, "Server URL", "Fix [server] url", "cannot parse %s",
                       cfg->server.url);
                block(&d, "no usable server URL");
        } else {
                find_proxy(&d);
                check_dns(&d);
        }
        check_connect(&d);
        check_token(&d);
        for (size_t i = 0; i < cfg->connector_count; i++)
                check_connector_api(&d, &cfg->connectors[i]);
        for (size_t i = 0; i < cfg->connector_count; i++)
                check_backend(&d, &cfg->connectors[i]);
        for (size_t i = 0; i < cfg->connector_count; i++)
                check_guards(&d, &cfg->connectors[i]);
        check_journal(&d);

        if (d.failures)
                printf("%d check(s) failed or could not run%s\n", d.failures,
                       d.warnings ? ", with warnings" : "");
        else
                printf("all checks passed%s\n", d.warnings ? " (with warnings)" : "");
        if (d.token) {
                explicit_bzero(d.token, strlen(d.token));
                free(d.token);
        }
        if (d.secret_escaped) {
                explicit_bzero(d.secret_escaped, strlen(d.secret_escaped));
                curl_free(d.secret_escaped);
        }
        curl_global_cleanup();
        return d.failures ? 1 : 0;
}
