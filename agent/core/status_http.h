/* SPDX-License-Identifier: Apache-2.0 */
/* status_http: the local status endpoint (libevent's HTTP server on the agent's loop).
 *
 * Serves / (the list of endpoints), /healthz (the loop answers and no worker is wedged), /readyz (a
 * token is held and the last exchange with the server succeeded) and /metrics (Prometheus text
 * format 0.0.4). Bound to [agent] status_address:status_port (127.0.0.1 by default; off when the
 * port is 0). Reads the agent's state on the loop thread; changes nothing. */
#ifndef CA_STATUS_HTTP_H
#define CA_STATUS_HTTP_H

#include "error.h"

struct agent;
struct status_http;

int status_http_start(struct agent *a, struct status_http **out, struct ca_error *err);
void status_http_free(struct status_http *s); /* accepts NULL */

#endif
