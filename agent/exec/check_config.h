/* SPDX-License-Identifier: Apache-2.0 */
/* check_config: the back-end side of a configuration, judged by the plug-ins. */
#ifndef CA_CHECK_CONFIG_H
#define CA_CHECK_CONFIG_H

#include "config.h"

/* Loads the plug-ins and validates every connector and mapping against them (what
 * --check-config does, and what start-up and a reload do); problems are added to diag. */
int agent_check_backends(const struct ca_config *cfg, struct ca_config_diag *diag);

#endif
