/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "utf8.h"

/* Written by the loop thread (start, reload) and read by every worker thread: atomic,
 * relaxed, as a record logged at the old level for a moment after a reload is fine. */
static atomic_int max_level = CA_LOG_INFO;
static atomic_int format = CA_LOG_TEXT;
/* Set once by log_init, before any thread exists. */
static int use_journal;
static int use_colour;

/* systemd sets JOURNAL_STREAM=dev:inode for the stream it connected to stderr; only
 * when it still matches is stderr the journal (a redirect in a script must win). */
static int stderr_is_journal(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return 0;
        if (fstat(STDERR_FILENO, &st) < 0)
                return 0;
        return st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
}

void log_init(enum ca_log_target target, enum ca_log_level level)
{
        atomic_store_explicit(&max_level, (int)level, memory_order_relaxed);
        use_journal = target == CA_LOG_JOURNAL || (target == CA_LOG_AUTO && stderr_is_journal());
        use_colour = !use_journal && isatty(STDERR_FILENO) && !getenv("NO_COLOR");
}

void log_set_level(enum ca_log_level level)
{
        atomic_store_explicit(&max_level, (int)level, memory_order_relaxed);
}

enum ca_log_level log_get_level(void)
{
        return (enum ca_log_level)atomic_load_explicit(&max_level, memory_order_relaxed);
}

int log_level_enabled(enum ca_log_level level)
{
        return (int)level <= atomic_load_explicit(&max_level, memory_order_relaxed);
}

void log_set_format(enum ca_log_format f)
{
        atomic_store_explicit(&format, (int)f, memory_order_relaxed);
}

int log_format_parse(const char *name, enum ca_log_format *out)
{
        if (strcasecmp(name, "text") == 0)
                *out = CA_LOG_TEXT;
        else if (strcasecmp(name, "json") == 0)
                *out = CA_LOG_JSON;
        else
                return -EINVAL;
        return 0;
}

int log_level_parse(const char *name, enum ca_log_level *out)
{
        static const struct {
                const char *name;
                enum ca_log_level level;
        } names[] = {
            {"error", CA_LOG_ERR}, {"warning", CA_LOG_WARNING}, {"notice", CA_LOG_NOTICE},
            {"info", CA_LOG_INFO}, {"debug", CA_LOG_DEBUG},
        };
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                if (strcasecmp(name, names[i].name) == 0) {
                        *out = names[i].level;
                        return 0;
                }
        }
        return -EINVAL;
}

static const char *level_word(enum ca_log_level level)
{
        switch (level) {
        case CA_LOG_ERR:
                return "error";
        case CA_LOG_WARNING:
                return "warning";
        case CA_LOG_NOTICE:
                return "notice";
        case CA_LOG_INFO:
                return "info";
        default:
                return "debug";
        }
}

static const char *level_colour(enum ca_log_level level)
{
        switch (level) {
        case CA_LOG_ERR:
                return "\033[1;31m";
        case CA_LOG_WARNING:
                return "\033[33m";
        case CA_LOG_NOTICE:
                return "\033[1m";
        case CA_LOG_DEBUG:
                return "\033[2m";
        default:
                return "";
        }
}

/* One JSON object per line with the journal entry's fields (and the time, which the
 * journal adds by itself). jansson escapes the message, whatever a target put in it. */
static void log_json(enum ca_log_level level, const char *connector, const char *order,
                     const char *msg, const char *stamp, long millis)
{
        char when[48];
        snprintf(when, sizeof(when), "%s.%03ldZ", stamp, millis);
        json_t *o = json_object();
        if (!o)
                return;
        json_object_set_new(o, "TIMESTAMP", json_string(when));
        json_object_set_new(o, "PRIORITY", json_integer((int)level));
        json_object_set_new(o, "SYSLOG_IDENTIFIER", json_string("connector-agent"));
        if (connector)
                json_object_set_new(o, "CONNECTOR", json_string(connector));
        if (order)
                json_object_set_new(o, "ORDER_KEY", json_string(order));
        /* A message cut inside a UTF-8 sequence, or a target's bytes, are not valid
         * UTF-8: json_string refuses them; keep the record, with the bytes replaced. */
        json_t *m = json_string(msg);
        if (!m) {
                char clean[2048];
                utf8_copy(clean, sizeof(clean), msg);
                m = json_string(clean);
        }
        json_object_set_new(o, "MESSAGE", m);
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!line)
                return;
        fprintf(stderr, "%s\n", line);
        free(line);
}

void log_ctx(enum ca_log_level level, const char *connector, const char *order, const char *fmt,
             ...)
{
        if (!log_level_enabled(level))
                return;
        int saved_errno = errno;
        char msg[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        if (use_journal) {
                sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", (int)level,
                                "SYSLOG_IDENTIFIER=connector-agent", "CONNECTOR=%s",
                                connector ? connector : "", "ORDER_KEY=%s", order ? order : "",
                                NULL);
                errno = saved_errno;
                return;
        }

        char stamp[32];
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

        if (atomic_load_explicit(&format, memory_order_relaxed) == CA_LOG_JSON) {
                log_json(level, connector, order, msg, stamp, ts.tv_nsec / 1000000);
                errno = saved_errno;
                return;
        }

        char ctx[512] = "";
        if (connector && order)
                snprintf(ctx, sizeof(ctx), "[%s %s] ", connector, order);
        else if (connector)
                snprintf(ctx, sizeof(ctx), "[%s] ", connector);

        /* One fprintf per record so that lines from worker threads never interleave. */
        if (use_colour)
                fprintf(stderr, "%s.%03ldZ %s%s\033[0m %s%s\n", stamp, ts.tv_nsec / 1000000,
                        level_colour(level), level_word(level), ctx, msg);
        else
                fprintf(stderr, "%s.%03ldZ %s %s%s\n", stamp, ts.tv_nsec / 1000000,
                        level_word(level), ctx, msg);
        errno = saved_errno;
}
