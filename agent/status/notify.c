/* SPDX-License-Identifier: Apache-2.0 */
#include "notify.h"

#include <stdio.h>
#include <time.h>

#include <systemd/sd-daemon.h>

void notify_ready(void)
{
        sd_notify(0, "READY=1");
}

void notify_reloading(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
                   (unsigned long long)ts.tv_sec * 1000000ULL +
                       (unsigned long long)ts.tv_nsec / 1000);
}

void notify_stopping(void)
{
        sd_notify(0, "STOPPING=1");
}

void notify_status(const char *status)
{
        sd_notifyf(0, "STATUS=%s", status);
}

void notify_watchdog(void)
{
        sd_notify(0, "WATCHDOG=1");
}

void notify_extend_timeout(uint64_t ms)
{
        sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)ms * 1000ULL);
}

uint64_t notify_watchdog_ms(void)
{
        uint64_t usec = 0;
        if (sd_watchdog_enabled(0, &usec) <= 0)
                return 0;
        return usec / 1000;
}
