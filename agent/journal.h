/* journal: the durable record of every order's life, in one SQLite file (WAL mode).
 *
 * States: an order is EXECUTING from the moment it is handed to a back-end, FINISHED
 * once its result is stored, REPORTED once the server acknowledged that result. An
 * order is identified by (connector, key). The journal is what makes the agent apply
 * nothing twice and lose no result:
 *   - journal_begin is durable (after journal_commit) before any back-end sees the order;
 *   - journal_finish is durable before the result is ever sent;
 *   - a result leaves the journal's unreported set only on journal_mark_reported.
 *
 * Group commit: writes go into one open transaction; journal_commit makes them all
 * durable with one flush. Callers batch (e.g. all orders of a page, all results
 * finished within a few ms) and act on them only after the commit returns. When a
 * write fails (-ENOSPC, -EIO ...), the whole batch since the last commit is rolled
 * back: that write, every later write and the next journal_commit fail with the same
 * error, so that nothing of the lost batch is acted on; after that commit the journal
 * works again as soon as the cause is gone. Refusals (-EEXIST, -ENOENT, -EINVAL) lose
 * nothing.
 *
 * Threads: one journal is used from one thread (the loop thread). Errors: 0 or a
 * negative errno, with err filled; -ENOSPC for a full disk, -EIO for other write
 * errors, -EPROTO for a corrupt file or a schema newer than this agent knows. */
#ifndef CA_JOURNAL_H
#define CA_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "order.h"

#define CA_JOURNAL_SCHEMA_VERSION 1

enum journal_state {
        JOURNAL_UNKNOWN = 0, /* never seen */
        JOURNAL_EXECUTING = 1,
        JOURNAL_FINISHED = 2,
        JOURNAL_REPORTED = 3,
};

struct journal;

/* Opens (creating, or migrating from an older schema) the journal at path. sync = 1
 * flushes to disk at every commit (synchronous=FULL); 0 relaxes it (benchmarks only).
 * Refuses a corrupt file or a newer schema with -EPROTO and a message that says what
 * to do. */
int journal_open(const char *path, int sync, struct journal **out, struct ca_error *err);
void journal_close(struct journal *j); /* commits what is open; accepts NULL */

/* The state of (connector, key); JOURNAL_UNKNOWN when never seen. */
int journal_state_of(struct journal *j, const char *connector, const char *key,
                     enum journal_state *state, struct ca_error *err);

/* Records that order is about to be executed (state EXECUTING), with its JSON so that it
 * can be settled after a crash. -EEXIST when the order is already known. */
int journal_begin(struct journal *j, const char *connector, struct ca_order *order,
                  struct ca_error *err);

/* Stores the result of an EXECUTING order (state FINISHED). An order not known yet is
 * inserted directly as FINISHED (e.g. an order Errored before execution). */
int journal_finish(struct journal *j, const char *connector, const struct ca_result *result,
                   struct ca_error *err);

/* Makes every write since the last commit durable. */
int journal_commit(struct journal *j, struct ca_error *err);

/* The stored result of a FINISHED or REPORTED order; *out is new (result_free), or NULL
 * when the order has none. */
int journal_result(struct journal *j, const char *connector, const char *key,
                   struct ca_result **out, struct ca_error *err);

/* Up to max FINISHED (unreported) results of connector, oldest first. *out is a new
 * array of new results (journal_results_free). */
int journal_unreported(struct journal *j, const char *connector, size_t max,
                       struct ca_result ***out, size_t *count, struct ca_error *err);
void journal_results_free(struct ca_result **results, size_t count);
/* Number of FINISHED results of connector (NULL: of all connectors). */
int journal_unreported_count(struct journal *j, const char *connector, size_t *count,
                             struct ca_error *err);

/* FINISHED -> REPORTED for these keys (others are left alone). Returns how many changed. */
int journal_mark_reported(struct journal *j, const char *connector, const char *const *keys,
                          size_t count, struct ca_error *err);

/* Orders left EXECUTING (in doubt after a crash), oldest first, rebuilt from their stored
 * JSON. *out is a new array of new orders (journal_orders_free). */
int journal_in_doubt(struct journal *j, const char *connector, struct ca_order ***out,
                     size_t *count, struct ca_error *err);
void journal_orders_free(struct ca_order **orders, size_t count);

/* Deletes REPORTED entries reported before now - retention. Returns the number deleted. */
int journal_prune(struct journal *j, int64_t now_s, int64_t retention_s, struct ca_error *err);

/* Deletes an EXECUTING entry whose order was abandoned before any back-end saw it.
 * -ENOENT when unknown, -EINVAL when it is not EXECUTING (a result is never deleted). */
/* REPORTED -> FINISHED: the server re-delivered an order it had acknowledged (it lost
 * our answer), so the stored result must be sent again. -EINVAL when not REPORTED. */
int journal_unreport(struct journal *j, const char *connector, const char *key,
                     struct ca_error *err);
int journal_forget(struct journal *j, const char *connector, const char *key, struct ca_error *err);

/* Operator support (connector-agent journal ...): prints pending, in-doubt and
 * unreported entries to stdout; resolves an in-doubt order by hand as Executed or
 * Errored with the operator's message. */
int journal_list(struct journal *j, const char *what, struct ca_error *err);
/* what: "pending" (EXECUTING), "unreported" (FINISHED) or "all"; -EINVAL otherwise. */
int journal_list_to(struct journal *j, const char *what, FILE *out, struct ca_error *err);
/* EXECUTING -> FINISHED with the operator's outcome, committed before it returns;
 * -ENOENT when unknown, -EINVAL when not EXECUTING. */
int journal_resolve(struct journal *j, const char *connector, const char *key,
                    enum ca_result_state state, const char *message, struct ca_error *err);

#endif
