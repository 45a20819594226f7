/* SPDX-License-Identifier: Apache-2.0 */
/* checks: the strict request checks shared by the API routes: the query and headers
 * every API call must carry (protocol.md section 1), form and query decoding, and ISO
 * 8601 UTC times. A failed check answers the request itself (http_refuse) and records
 * the violation. */
#include "simserver.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/keyvalq_struct.h>

static int hexval(int c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        c = tolower(c);
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

/* Decodes one application/x-www-form-urlencoded component of length n. */
static char *form_decode(const char *p, size_t n)
{
        char *out = malloc(n + 1), *o = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '+') {
                        *o++ = ' ';
                } else if (p[i] == '%' && i + 2 < n && hexval((unsigned char)p[i + 1]) >= 0 &&
                           hexval((unsigned char)p[i + 2]) >= 0) {
                        *o++ = (char)(hexval((unsigned char)p[i + 1]) * 16 +
                                      hexval((unsigned char)p[i + 2]));
                        i += 2;
                } else {
                        *o++ = p[i];
                }
        }
        *o = '\0';
        return out;
}

char *checks_form_get(const char *form, const char *name, int *dup_out)
{
        char *found = NULL;
        size_t nlen = strlen(name);
        if (dup_out)
                *dup_out = 0;
        for (const char *p = form; p && *p;) {
                const char *amp = strchr(p, '&');
                size_t plen = amp ? (size_t)(amp - p) : strlen(p);
                const char *eq = memchr(p, '=', plen);
                size_t klen = eq ? (size_t)(eq - p) : plen;
                char *k = form_decode(p, klen);
                if (k && strlen(k) == nlen && memcmp(k, name, nlen) == 0) {
                        if (found) {
                                if (dup_out)
                                        *dup_out = 1;
                        } else {
                                found = eq ? form_decode(eq + 1, plen - klen - 1) : strdup("");
                        }
                }
                free(k);
                p = amp ? amp + 1 : NULL;
        }
        return found;
}

/* Checks that the query holds only the allowed names, each at most once. */
static int query_names_allowed(const char *query, const char *const *allowed, char *bad,
                               size_t badlen)
{
        for (const char *p = query; p && *p;) {
                const char *amp = strchr(p, '&');
                size_t plen = amp ? (size_t)(amp - p) : strlen(p);
                const char *eq = memchr(p, '=', plen);
                size_t klen = eq ? (size_t)(eq - p) : plen;
                char *k = form_decode(p, klen);
                int ok = 0;
                for (size_t i = 0; k && allowed[i]; i++)
                        if (strcmp(k, allowed[i]) == 0)
                                ok = 1;
                if (!ok) {
                        snprintf(bad, badlen, "%s", k ? k : "?");
                        free(k);
                        return 0;
                }
                int dup = 0;
                free(checks_form_get(query, k, &dup));
                free(k);
                if (dup) {
                        snprintf(bad, badlen, "%.*s (given twice)", (int)klen, p);
                        return 0;
                }
                p = amp ? amp + 1 : NULL;
        }
        return 1;
}

int checks_api_request(struct sim *s, struct evhttp_request *req, int has_body)
{
        static const char *const data_names[] = {"api-version", "ContinuationToken", "PageSize",
                                                 NULL};
        static const char *const other_names[] = {"api-version", NULL};
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
        const char *query = evhttp_uri_get_query(uri);
        const char *path = evhttp_uri_get_path(uri);
        struct evkeyvalq *h = evhttp_request_get_input_headers(req);
        char bad[256];
        int dup = 0;

        char *ver = query ? checks_form_get(query, "api-version", &dup) : NULL;
        if (!ver) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "missing api-version query parameter");
                return -1;
        }
        if (strcmp(ver, s->cfg.api_version) != 0) {
                http_refuse(s, req, 400, "unsupported_api_version", 1,
                            "api-version '%s' is not supported (expected '%s')", ver,
                            s->cfg.api_version);
                free(ver);
                return -1;
        }
        free(ver);
        int is_data = strstr(path, "/ProvisioningData/") != NULL;
        if (!query_names_allowed(query, is_data ? data_names : other_names, bad, sizeof(bad))) {
                http_refuse(s, req, 400, "invalid_request", 1, "query parameter '%s' not allowed",
                            bad);
                return -1;
        }

        const char *auth = evhttp_find_header(h, "Authorization");
        if (!auth) {
                http_refuse(s, req, 401, "invalid_token", 1, "missing Authorization header");
                return -1;
        }
        if (strncasecmp(auth, "Bearer ", 7) != 0 || !auth[7]) {
                http_refuse(s, req, 401, "invalid_token", 1,
                            "Authorization must be 'Bearer <token>'");
                return -1;
        }
        if (!store_token_valid(s, auth + 7)) {
                /* Not a violation: tokens expire and get revoked; the agent must renew. */
                evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                                  "Bearer error=\"invalid_token\"");
                http_refuse(s, req, 401, "invalid_token", 0, "token expired, revoked or unknown");
                return -1;
        }
        const char *accept = evhttp_find_header(h, "Accept");
        if (!accept || !strstr(accept, "application/json")) {
                http_refuse(s, req, 400, "invalid_request", 1,
                            "Accept must include application/json (got '%s')",
                            accept ? accept : "(none)");
                return -1;
        }
        const char *ua = evhttp_find_header(h, "User-Agent");
        if (!ua || !*ua) {
                http_refuse(s, req, 400, "invalid_request", 1, "missing User-Agent header");
                return -1;
        }
        if (has_body) {
                const char *ct = evhttp_find_header(h, "Content-Type");
                if (!ct || strncasecmp(ct, "application/json", 16) != 0 ||
                    (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
                        http_refuse(s, req, 415, "invalid_request", 1,
                                    "Content-Type must be application/json (got '%s')",
                                    ct ? ct : "(none)");
                        return -1;
                }
        }
        return 0;
}

int checks_iso8601_utc(const char *v)
{
        /* YYYY-MM-DDTHH:MM:SS[.fraction]Z */
        int y, mo, d, h, mi, sec, n = 0;
        if (!v || strlen(v) < 20)
                return 0;
        if (sscanf(v, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
                return 0;
        for (int i = 0; i < 19; i++) {
                if (i == 4 || i == 7) {
                        if (v[i] != '-')
                                return 0;
                } else if (i == 10) {
                        if (v[i] != 'T')
                                return 0;
                } else if (i == 13 || i == 16) {
                        if (v[i] != ':')
                                return 0;
                } else if (!isdigit((unsigned char)v[i])) {
                        return 0;
                }
        }
        if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
                return 0;
        const char *p = v + 19;
        if (*p == '.') {
                p++;
                if (!isdigit((unsigned char)*p))
                        return 0;
                while (isdigit((unsigned char)*p))
                        p++;
        }
        return p[0] == 'Z' && p[1] == '\0';
}
