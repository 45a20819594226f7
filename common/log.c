#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

static enum ca_log_level max_level = CA_LOG_INFO;
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
	max_level = level;
	use_journal = target == CA_LOG_JOURNAL || (target == CA_LOG_AUTO && stderr_is_journal());
	use_colour = !use_journal && isatty(STDERR_FILENO) && !getenv("NO_COLOR");
}

void log_set_level(enum ca_log_level level)
{
	max_level = level;
}

int log_level_enabled(enum ca_log_level level)
{
	return level <= max_level;
}

int log_level_parse(const char *name, enum ca_log_level *out)
{
	static const struct {
		const char *name;
		enum ca_log_level level;
	} names[] = {
		{"error", CA_LOG_ERR},   {"warning", CA_LOG_WARNING}, {"notice", CA_LOG_NOTICE},
		{"info", CA_LOG_INFO},   {"debug", CA_LOG_DEBUG},
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

void log_ctx(enum ca_log_level level, const char *connector, const char *order, const char *fmt,
	     ...)
{
	if (level > max_level)
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
