/* SPDX-License-Identifier: Apache-2.0 */
/* server_log: the cause once, then a count (server_log.h). */
#include "server_log.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

#define SERVER_LOG_CAUSE_MAX 512

static char cause[SERVER_LOG_CAUSE_MAX]; /* "" while the server answers */
static unsigned long repeats;            /* failed tries since the cause was logged */

static const char *cause_of(const char *why)
{
        const char *c = why;
        for (const char *p = why; (p = strstr(p, "failed: ")); p += 8)
                c = p + 8;
        if (c == why) {
                const char *http = strstr(why, "answered HTTP ");
                if (http)
                        c = http;
        }
        return c;
}

/* Callers cut long lines at their own buffer's size: a cause that is the start of the
 * other (and long enough to mean something) is the same cause. */
#define SERVER_LOG_CAUSE_MIN 24

static int same_cause(const char *why)
{
        if (!cause[0])
                return 0;
        const char *c = cause_of(why);
        size_t a = strlen(cause), b = strlen(c);
        size_t n = a < b ? a : b;
        if (n < SERVER_LOG_CAUSE_MIN && a != b)
                return 0;
        if (strncmp(cause, c, n) != 0)
                return 0;
        if (b > a) /* the longer reading is kept, for the reminder and the last line */
                snprintf(cause, sizeof(cause), "%s", c);
        return 1;
}

int server_log_is_repeat(const char *why)
{
        return why && same_cause(why);
}

void server_log_failed(const char *why)
{
        if (!why)
                return;
        if (same_cause(why)) {
                repeats++;
                if (repeats >= SERVER_LOG_REMIND_FIRST && (repeats & (repeats - 1)) == 0)
                        log_warning("still no answer from the server after %lu more tries: %s",
                                    repeats, cause);
                return;
        }
        snprintf(cause, sizeof(cause), "%s", cause_of(why));
        repeats = 0;
        /* A warning: the error is the caller's to log where the cause is known (the
         * token request), or the agent's when it gives the server up as disconnected. */
        log_warning("cannot reach the server: %s; run `connector-agent doctor` for a diagnosis "
                    "(further tries are counted, not logged each)",
                    why);
}

void server_log_ok(void)
{
        if (!cause[0])
                return;
        log_notice("the server answers again, after %lu more failed tries of: %s", repeats, cause);
        cause[0] = '\0';
        repeats = 0;
}
