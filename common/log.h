/* SPDX-License-Identifier: Apache-2.0 */
/* log: the agent's only way to say something to an operator.
 *
 * In the foreground it writes human-readable lines to stderr (coloured on a terminal);
 * under systemd (stderr connected to the journal, see $JOURNAL_STREAM) it writes native
 * journal entries with structured fields: CONNECTOR=, ORDER_KEY=; with log_format json,
 * one JSON object per line with the same fields. Thread-safe: each
 * record is written with one call. Levels are syslog priorities. Never pass a secret. */
#ifndef CA_LOG_H
#define CA_LOG_H

enum ca_log_level {
        CA_LOG_ERR = 3,
        CA_LOG_WARNING = 4,
        CA_LOG_NOTICE = 5,
        CA_LOG_INFO = 6,
        CA_LOG_DEBUG = 7,
};

enum ca_log_target {
        CA_LOG_AUTO, /* journald when stderr is the journal, else stderr */
        CA_LOG_STDERR,
        CA_LOG_JOURNAL,
};

/* How a record is written when it does not go to the journal ([agent] log_format). */
enum ca_log_format {
        CA_LOG_TEXT, /* "2026-01-01T00:00:00.000Z info [connector key] message" */
        CA_LOG_JSON, /* one object per line: the journal entry's fields plus TIMESTAMP */
};

/* Call before any thread exists. */
void log_init(enum ca_log_target target, enum ca_log_level max_level);
/* The level and the format may change at any time (a reload) while workers log. */
void log_set_level(enum ca_log_level max_level);
enum ca_log_level log_get_level(void);
int log_level_enabled(enum ca_log_level level);
/* Parses "error", "warning", "notice", "info", "debug"; -EINVAL otherwise. */
int log_level_parse(const char *name, enum ca_log_level *out);
void log_set_format(enum ca_log_format format);
/* Parses "text" or "json"; -EINVAL otherwise. */
int log_format_parse(const char *name, enum ca_log_format *out);

/* connector and order may be NULL; they become journal fields and a "[connector]"
 * prefix on stderr. */
void log_ctx(enum ca_log_level level, const char *connector, const char *order, const char *fmt,
             ...) __attribute__((format(printf, 4, 5)));

#define log_error(...)   log_ctx(CA_LOG_ERR, NULL, NULL, __VA_ARGS__)
#define log_warning(...) log_ctx(CA_LOG_WARNING, NULL, NULL, __VA_ARGS__)
#define log_notice(...)  log_ctx(CA_LOG_NOTICE, NULL, NULL, __VA_ARGS__)
#define log_info(...)    log_ctx(CA_LOG_INFO, NULL, NULL, __VA_ARGS__)
#define log_debug(...)   log_ctx(CA_LOG_DEBUG, NULL, NULL, __VA_ARGS__)

#endif
