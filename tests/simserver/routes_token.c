/* SPDX-License-Identifier: Apache-2.0 */
/* routes_token: POST /connect/token, OAuth 2.0 client credentials (protocol.md §2).
 * Form-encoded only, the client id's '@' as is (an escaped "%40" is refused); a malformed
 * request is a violation (400), wrong credentials are a
 * configuration problem (401 invalid_client, not a violation). The secret is compared
 * but never logged. */
#include "simserver.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

static int secret_equal(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        if (la != lb)
                return 0;
        return CRYPTO_memcmp(a, b, la) == 0;
}

/* 1 when the raw (undecoded) client_id field of form carries the '@' escaped: protocol.md
 * §2 says it goes as is, and servers in the field compare it undecoded. */
static int client_id_at_escaped(const char *form)
{
        static const char name[] = "client_id=";
        for (const char *p = form; p && *p;) {
                const char *amp = strchr(p, '&');
                size_t plen = amp ? (size_t)(amp - p) : strlen(p);
                if (plen >= sizeof(name) - 1 && strncmp(p, name, sizeof(name) - 1) == 0) {
                        for (size_t i = sizeof(name) - 1; i + 2 < plen; i++)
                                if (p[i] == '%' && p[i + 1] == '4' && p[i + 2] == '0')
                                        return 1;
                }
                p = amp ? amp + 1 : NULL;
        }
        return 0;
}

void routes_token(struct sim *s, struct evhttp_request *req)
{
        static const char *const fields[] = {"grant_type", "client_id", "client_secret", "scope"};
        char *vals[4] = {NULL, NULL, NULL, NULL};
        char *body = NULL;
        s->token_requests++;
        struct evkeyvalq *h = evhttp_request_get_input_headers(req);
        const char *ct = evhttp_find_header(h, "Content-Type");
        if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "token request must be application/x-www-form-urlencoded (got '%s')",
                            ct ? ct : "(none)");
                goto out;
        }
        if (evhttp_find_header(h, "Authorization")) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "client credentials go in the form body, not in Authorization");
                goto out;
        }
        body = http_body_dup(req, NULL);
        for (size_t i = 0; i < 4; i++) {
                int dup = 0;
                vals[i] = body ? checks_form_get(body, fields[i], &dup) : NULL;
                if (dup) {
                        http_refuse(s, req, 400, "invalid_request", 1, "form field %s given twice",
                                    fields[i]);
                        goto out;
                }
        }
        if (!vals[0]) {
                http_refuse(s, req, 400, "invalid_request", 1, "missing grant_type");
                goto out;
        }
        if (strcmp(vals[0], "client_credentials") != 0) {
                http_refuse(s, req, 400, "unsupported_grant_type", 1,
                            "grant_type must be client_credentials");
                goto out;
        }
        if (!vals[1] || !vals[2]) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "missing client_id or client_secret");
                goto out;
        }
        if (!vals[3]) {
                http_refuse(s, req, 400, "invalid_request", 1, "missing scope");
                goto out;
        }
        if (client_id_at_escaped(body)) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "client_id carries '@' escaped as %%40: it goes as is");
                goto out;
        }
        if (strcmp(vals[1], s->cfg.client_id) != 0 ||
            !secret_equal(vals[2], s->cfg.client_secret)) {
                http_refuse(s, req, 401, "invalid_client", 0, "unknown client or wrong secret");
                goto out;
        }
        if (strcmp(vals[3], s->cfg.scope) != 0) {
                http_refuse(s, req, 400, "invalid_scope", 0, "scope '%s' is not granted", vals[3]);
                goto out;
        }
        char token[65];
        store_token_issue(s, token);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
        http_reply_json(s, req, 200,
                        json_pack("{s:s, s:s, s:I, s:s}", "access_token", token, "token_type",
                                  "Bearer", "expires_in", (json_int_t)s->cfg.token_ttl, "scope",
                                  s->cfg.scope));
out:
        for (size_t i = 0; i < 4; i++)
                free(vals[i]);
        free(body);
}
