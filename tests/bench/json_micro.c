/* SPDX-License-Identifier: Apache-2.0 */
/* json_micro: the pipeline's JSON work alone, on one thread, in CPU time (bench.py, part
 * "json"): parse a page of orders like the simulated server's, take each order's text
 * (what the journal stores), make a result per order and the results body of the page.
 * Linked against a build's libca_common.a, so two builds compare on the same input.
 *
 *   json_micro ORDERS_PER_PAGE PAGES   -> prints "<CPU ns per order>" */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "order.h"

static char *make_page(int n)
{
        size_t cap = (size_t)n * 600 + 64, len = 0;
        char *p = malloc(cap);
        if (!p)
                exit(1);
        len += (size_t)snprintf(p + len, cap - len, "{\"ProvisioningOrdersList\":[");
        for (int i = 0; i < n; i++)
                len += (size_t)snprintf(
                    p + len, cap - len,
                    "%s{\"Id\":\"c1-%06d-Added\",\"AssignedResourceTypeId\":\"a%06d\","
                    "\"ChangeType\":\"Added\",\"Owner\":{\"Id\":\"%d\"},\"ResourceType\":"
                    "{\"Identifier\":\"User\",\"SourceEntityType\":{\"Id\":\"51\"}},"
                    "\"Changes\":{\"uid\":\"bench%06d\",\"givenName\":\"Given%d\",\"sn\":"
                    "\"Surname%d\",\"cn\":\"User %d\",\"mail\":\"bench%06d@example.com\"},"
                    "\"Resource\":{\"uid\":\"bench%06d\"}}",
                    i ? "," : "", i, i, i, i, i, i, i, i, i);
        snprintf(p + len, cap - len, "],\"ContinuationToken\":\"next\"}");
        return p;
}

static double cpu_ns(void)
{
        struct timespec t;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
        return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
        int n = argc > 1 ? atoi(argv[1]) : 1000, pages = argc > 2 ? atoi(argv[2]) : 50;
        char *body = make_page(n);
        size_t len = strlen(body);
        struct ca_result **rs = calloc((size_t)n, sizeof(*rs));
        size_t text_bytes = 0, body_bytes = 0;
        double t0 = cpu_ns();
        for (int k = 0; k < pages; k++) {
                struct ca_order_page page;
                struct ca_error err;
                if (order_page_parse(body, len, &page, &err) != 0 || page.count != (size_t)n)
                        return 1;
                for (size_t i = 0; i < page.count; i++) {
                        text_bytes += strlen(order_json_text(page.orders[i]));
                        rs[i] = result_new(page.orders[i], CA_RESULT_EXECUTED, "counted", NULL,
                                           1795342502);
                }
                char *out = results_body("c1", "bench-agent", rs, page.count);
                if (!out)
                        return 1;
                body_bytes += strlen(out);
                free(out);
                for (size_t i = 0; i < page.count; i++)
                        result_free(rs[i]);
                order_page_clear(&page);
        }
        double dt = cpu_ns() - t0;
        printf("%.0f\n", dt / ((double)n * pages));
        fprintf(stderr, "json_micro: %d pages of %d, %zu text bytes, %zu body bytes\n", pages, n,
                text_bytes, body_bytes);
        free(rs);
        free(body);
        return 0;
}
