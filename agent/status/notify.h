/* SPDX-License-Identifier: Apache-2.0 */
/* notify: what the agent tells its service manager (sd_notify), and nothing else.
 *
 * Without $NOTIFY_SOCKET every call is a no-op. Loop thread only. */
#ifndef CA_NOTIFY_H
#define CA_NOTIFY_H

#include <stdint.h>

void notify_ready(void);
void notify_reloading(void); /* RELOADING=1 with MONOTONIC_USEC, as systemd 253+ wants */
void notify_stopping(void);
void notify_status(const char *status);
void notify_watchdog(void);
void notify_extend_timeout(uint64_t ms);
/* The watchdog interval systemd expects (WATCHDOG_USEC), 0 when none. */
uint64_t notify_watchdog_ms(void);

#endif
