/* SPDX-License-Identifier: Apache-2.0 */
#include "healthcheck.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#define HEALTHCHECK_TIMEOUT_MS 5000L
#define HEALTHCHECK_BODY_MAX   512

struct body {
        char text[HEALTHCHECK_BODY_MAX];
        size_t len;
};

static size_t keep(char *data, size_t size, size_t n, void *arg)
{
        struct body *b = arg;
        size_t len = size * n;
        size_t room = sizeof(b->text) - 1 - b->len;
        memcpy(b->text + b->len, data, len < room ? len : room);
        b->len += len < room ? len : room;
        b->text[b->len] = '\0';
        return len;
}

int healthcheck_run(const struct ca_config *cfg, int ready)
{
        const struct ca_config_agent *a = &cfg->agent;
        if (!a->status_port) {
                fprintf(stderr, "healthcheck: the status endpoint is off (set status_port)\n");
                return 1;
        }
        char url[300];
        int v6 = strchr(a->status_address, ':') != NULL;
        snprintf(url, sizeof(url), "http://%s%s%s:%u/%s", v6 ? "[" : "", a->status_address,
                 v6 ? "]" : "", a->status_port, ready ? "readyz" : "healthz");
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return 1;
        CURL *e = curl_easy_init();
        struct body body = {{0}, 0};
        long status = 0;
        CURLcode rc = CURLE_FAILED_INIT;
        if (e) {
                curl_easy_setopt(e, CURLOPT_URL, url);
                curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
                curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
                curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
                curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, HEALTHCHECK_TIMEOUT_MS);
                curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep);
                curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
                rc = curl_easy_perform(e);
                if (rc == CURLE_OK)
                        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
                curl_easy_cleanup(e);
        }
        curl_global_cleanup();
        if (rc != CURLE_OK) {
                fprintf(stderr, "healthcheck: %s: %s\n", url, curl_easy_strerror(rc));
                return 1;
        }
        printf("%s: %ld %s", url, status, body.text);
        if (body.len == 0 || body.text[body.len - 1] != '\n')
                printf("\n");
        return status == 200 ? 0 : 1;
}
