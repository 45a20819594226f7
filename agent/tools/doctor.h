/* SPDX-License-Identifier: Apache-2.0 */
/* doctor: `connector-agent doctor`, the diagnostic an administrator runs when the agent
 * cannot reach its server or its targets.
 *
 * Runs, in order: DNS for the server's host, the TCP connection (through the proxy the
 * environment names, as libcurl chooses it), the TLS handshake (on failure it describes
 * the presented certificate: issuer, names, validity, public key), the clock against the
 * server's Date header, the token request, one ProvisioningData read per connector and
 * each back-end's connectivity check. Prints one line per check on stdout with a verdict
 * and, on a failure, a hint at the fix. A step that cannot run because an earlier one
 * failed is printed as skipped.
 *
 * Promises: blocking, one-shot (never run on the agent's loop); every network step is
 * bounded by connect_timeout / request_timeout; the client secret and the access token
 * are never printed; no order is executed, acknowledged or answered and no heartbeat is
 * sent (an order read with PageSize=1 is delivered again by the server after its lease).
 * Initialises and cleans up libcurl itself. */
#ifndef CA_DOCTOR_H
#define CA_DOCTOR_H

#include "config.h"

/* Runs every check against cfg; returns 0 when all passed (warnings allowed), 1 when a
 * check failed or could not run. */
int doctor_run(const struct ca_config *cfg);

#endif
