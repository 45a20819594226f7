/* log: the agent's only way to say something to an operator.
 *
 * In the foreground it writes human-readable lines to stderr (coloured on a terminal);
 * under systemd (stderr connected to the journal, see $JOURNAL_STREAM) it writes native
 * journal entries with structured fields: CONNECTOR=, ORDER_KEY=. Thread-safe: each
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

void log_init(enum ca_log_target target, enum ca_log_level max_level);
void log_set_level(enum ca_log_level max_level);
int log_level_enabled(enum ca_log_level level);
/* Parses "error", "warning", "notice", "info", "debug"; -EINVAL otherwise. */
int log_level_parse(const char *name, enum ca_log_level *out);

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
