/* SPDX-License-Identifier: Apache-2.0 */
/* tls: the connection side of the listener. Every accepted connection gets its
 * bufferevent here: plain, or OpenSSL with the server certificate and, with
 * --client-ca, a required and verified client certificate (mTLS). */
#include "simserver.h"

#include <errno.h>
#include <stdio.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

static const char *ssl_error(void)
{
        static char buf[256];
        unsigned long e = ERR_get_error();
        if (!e)
                return "unknown TLS error";
        ERR_error_string_n(e, buf, sizeof(buf));
        return buf;
}

int tls_setup(struct sim *s, struct ca_error *err)
{
        if (!s->cfg.tls_cert && !s->cfg.tls_key)
                return 0;
        if (!s->cfg.tls_cert || !s->cfg.tls_key)
                return ca_error_set(err, -EINVAL, "--tls-cert and --tls-key go together");
        s->ssl_ctx = SSL_CTX_new(TLS_server_method());
        if (!s->ssl_ctx)
                return ca_error_set(err, -ENOMEM, "SSL_CTX_new: %s", ssl_error());
        SSL_CTX_set_min_proto_version(s->ssl_ctx, TLS1_2_VERSION);
        if (SSL_CTX_use_certificate_chain_file(s->ssl_ctx, s->cfg.tls_cert) != 1)
                return ca_error_set(err, -EINVAL, "%s: %s", s->cfg.tls_cert, ssl_error());
        if (SSL_CTX_use_PrivateKey_file(s->ssl_ctx, s->cfg.tls_key, SSL_FILETYPE_PEM) != 1)
                return ca_error_set(err, -EINVAL, "%s: %s", s->cfg.tls_key, ssl_error());
        if (SSL_CTX_check_private_key(s->ssl_ctx) != 1)
                return ca_error_set(err, -EINVAL, "%s does not match %s", s->cfg.tls_key,
                                    s->cfg.tls_cert);
        if (s->cfg.client_ca) {
                if (SSL_CTX_load_verify_locations(s->ssl_ctx, s->cfg.client_ca, NULL) != 1)
                        return ca_error_set(err, -EINVAL, "%s: %s", s->cfg.client_ca, ssl_error());
                SSL_CTX_set_verify(s->ssl_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                                   NULL);
        }
        return 0;
}

void tls_free(struct sim *s)
{
        SSL_CTX_free(s->ssl_ctx);
        s->ssl_ctx = NULL;
}

struct bufferevent *tls_bevcb(struct event_base *base, void *arg)
{
        struct sim *s = arg;
        if (!s->ssl_ctx)
                return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        SSL *ssl = SSL_new(s->ssl_ctx);
        if (!ssl)
                return NULL;
        /* On failure evhttp falls back to a plain socket, which the client's TLS handshake
         * then fails on: no connection is served unencrypted by mistake. */
        return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                              BEV_OPT_CLOSE_ON_FREE);
}
