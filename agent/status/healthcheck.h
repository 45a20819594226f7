/* SPDX-License-Identifier: Apache-2.0 */
/* healthcheck: `connector-agent healthcheck`, a probe for container runtimes and
 * monitoring that have no HTTP client: asks the running agent's status endpoint
 * (/healthz, or /readyz with --ready) and exits 0 when it answers 200, 1 otherwise. */
#ifndef CA_HEALTHCHECK_H
#define CA_HEALTHCHECK_H

#include "config.h"

int healthcheck_run(const struct ca_config *cfg, int ready);

#endif
