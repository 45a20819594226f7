/* SPDX-License-Identifier: Apache-2.0 */
/* server_log: what the daemon's log says while the server cannot be reached: the cause
 * once, with a pointer to `connector-agent doctor`, then a count of the failed tries
 * instead of the same line on every retry, and one line when the server answers again.
 *
 * A cause is the transport's own words (after the last "failed: ", e.g. "SSL
 * certificate problem: ... (the server's certificate is issued by X ...)"), or the HTTP
 * status answered, so that the poller, the reporter and the heartbeat, which say the
 * same failure in their own words, count as one. Loop thread only. */
#ifndef CA_SERVER_LOG_H
#define CA_SERVER_LOG_H

/* After this many failed tries of one cause, and at each power of two beyond, a reminder
 * with the count is logged. */
#define SERVER_LOG_REMIND_FIRST 8

/* Notes a failed call; logs the cause when it is new (or the reminder when due). */
void server_log_failed(const char *why);
/* Whether why has the cause already logged: its caller's own line may then go to debug. */
int server_log_is_repeat(const char *why);
/* The server answered: one line if a failure had been logged, and the count starts over. */
void server_log_ok(void);

#endif
