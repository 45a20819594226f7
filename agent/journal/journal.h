/* SPDX-License-Identifier: Apache-2.0 */
/* journal: the durable record of every order's life, in one SQLite file (WAL mode, the
 * default) or in a PostgreSQL database ([agent] journal = postgresql). Both are drivers
 * behind this one API and one state machine (journal_internal.h): what follows holds for
 * both, and tests/unit/test_journal.c runs every case against each.
 *
 * States: an order is QUEUED once taken from the server and not yet handed to a
 * back-end (it survives a restart and runs first after it, in its place), EXECUTING from
 * the moment it is handed to a back-end, FINISHED once its result is stored, REPORTED
 * once the server acknowledged that result. An order is identified by (connector, key).
 * Only an EXECUTING order can be in doubt after a crash, so the pipeline marks orders
 * EXECUTING only as a worker is about to take them. The journal is what makes the agent
 * apply nothing twice and lose no result:
 *   - EXECUTING (journal_begin or journal_start) is durable (after journal_commit) before
 *     any back-end sees the order;
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
 * errors, -EPROTO for a corrupt file or a schema newer than this agent knows,
 * -ECONNREFUSED for a PostgreSQL that cannot be reached (down, restarting, the network):
 * the agent treats it as a full disk, stops taking orders and resumes once a commit
 * lands; the driver reconnects by itself at the next write. A PostgreSQL connection lost
 * during COMMIT leaves that commit in doubt: it is reported failed, yet may have landed.
 * Nothing is then applied twice or lost: a result written again is refused as known
 * (-EEXIST, kept first), and an order the agent dropped is found QUEUED or EXECUTING
 * (skipped on re-delivery, run or probed by the next start's recovery, or by the
 * instance that takes the connector over).
 *
 * PostgreSQL: one connection (libpq, blocking, as SQLite's fsync is), table ca_journal
 * keyed by (connector, key) with inserts ON CONFLICT DO NOTHING, as SQLite's; schema
 * version and the seal's key check in ca_journal_schema, migrated under an advisory
 * lock (two-key form, class "CAJ1": other classes are free for other locks). Any failed
 * statement aborts a PostgreSQL transaction, so there a failure at any write, or at a
 * read inside the batch, loses the batch exactly as a failed write does above.
 * Several agents may open the same database (schema, key check and keys are made for
 * it) and serve the same connectors: one instance at a time serves each, holding its
 * role (journal_serve, "Serving a connector" below, journal_role.c), and the others
 * stand by. Every write of an instance goes through the session that holds its roles,
 * so a lost session (a reconnect) fences it until it takes them back. */
#ifndef CA_JOURNAL_H
#define CA_JOURNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "order.h"

#define CA_JOURNAL_SCHEMA_VERSION    5 /* SQLite: PRAGMA user_version */
#define CA_JOURNAL_PG_SCHEMA_VERSION 5 /* PostgreSQL: ca_journal_schema.version */

enum journal_state {
        JOURNAL_UNKNOWN = 0, /* never seen */
        JOURNAL_EXECUTING = 1,
        JOURNAL_FINISHED = 2,
        JOURNAL_REPORTED = 3,
        JOURNAL_QUEUED = 4, /* schema 2 */
        JOURNAL_HELD = 5,   /* schema 3: kept back by a guardrail (policy.h) */
};
#define JOURNAL_STATE_COUNT 6

struct journal;

enum journal_kind {
        JOURNAL_SQLITE = 0, /* the default */
        JOURNAL_POSTGRESQL = 1,
};

/* Where and how to open a journal. Strings are borrowed for the call only. */
struct journal_params {
        enum journal_kind kind;
        const char *path;     /* SQLite: the file */
        const char *conninfo; /* PostgreSQL: a libpq connection string, without password */
        const char *password; /* PostgreSQL: NULL for none (peer, certificate, .pgpass) */
        /* PostgreSQL: where the seal's key file lives (the state directory) when there is
         * no credential (journal_seal.h); SQLite keeps it next to its file. */
        const char *key_dir;
        int sync; /* 1: every commit durable; 0: relaxed (benchmarks only) */
        /* PostgreSQL: how long a silent session keeps its roles (journal_serve); 0 for
         * as long as the connection lives. */
        uint64_t lease_ms;
};

/* Opens the journal p describes. PostgreSQL: refuses a conninfo carrying a password
 * (-EINVAL: it belongs in journal_password_file), a database of a newer schema
 * (-EPROTO), one written with another seal key (-EKEYREJECTED); a server that cannot be
 * reached at start is -ECONNREFUSED (the agent does not start without its journal). */
int journal_open_params(const struct journal_params *p, struct journal **out, struct ca_error *err);
/* The SQLite journal's file name in the state directory. */
#define JOURNAL_FILE "journal.db"

struct ca_config_agent;
/* Opens the journal [agent] configures (journal, journal_connection, the password from
 * journal_password_file or journal_password_credential, state_dir, journal_sync). The
 * password is wiped once the connection holds it. */
int journal_open_config(const struct ca_config_agent *a, struct journal **out,
                        struct ca_error *err);

/* "sqlite" or "postgresql"; -EINVAL for another name. */
int journal_kind_parse(const char *name, enum journal_kind *out);

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

/* Records a taken order that waits for a worker (state QUEUED), with its JSON. -EEXIST
 * when the order is already known. */
int journal_queue(struct journal *j, const char *connector, struct ca_order *order,
                  struct ca_error *err);
/* Records a taken order that a guardrail keeps back (state HELD), with its JSON and why
 * (stored as its message until it has a result). -EEXIST when already known. */
int journal_hold(struct journal *j, const char *connector, struct ca_order *order, const char *why,
                 struct ca_error *err);
/* Orders HELD, oldest first, as journal_in_doubt; whys (may be NULL) gets a new array of
 * new strings, one per order (journal_whys_free). */
int journal_held(struct journal *j, const char *connector, struct ca_order ***out, char ***whys,
                 size_t *count, struct ca_error *err);
void journal_whys_free(char **whys, size_t count);
/* Number of HELD orders of connector. */
int journal_held_count(struct journal *j, const char *connector, size_t *count,
                       struct ca_error *err);
/* Calls each(ctx, change_type, guard_kinds, received_at) for every order of connector
 * taken for execution at or after since_s (Unix seconds) and not held: EXECUTING,
 * QUEUED, or answered Executed, oldest first. guard_kinds is what the order's
 * guard_kinds was when it was recorded (0 for an entry older than schema 4). The
 * guardrails' windows are rebuilt from it at a start. */
int journal_recent_taken(struct journal *j, const char *connector, int64_t since_s,
                         void (*each)(void *ctx, const char *change_type, unsigned guard_kinds,
                                      int64_t received_at),
                         void *ctx, struct ca_error *err);
/* SQLite's data_version: changes when another process (the operator's journal release
 * or resolve) committed to the file since the last call on this connection. Always 0 on
 * PostgreSQL, which has no such counter: there a release or refusal shows as a smaller
 * journal_held_count (only the agent itself adds HELD orders), so callers compare both. */
int journal_data_version(struct journal *j, int64_t *version, struct ca_error *err);
/* The server refused a FINISHED entry's result (HTTP 400: this body is wrong): answer,
 * its body, is kept with it (journal list refused), and the result is neither read by
 * journal_unreported nor counted by journal_unreported_count until journal_resend. In
 * the open batch. 1 when kept, 0 when key is not FINISHED. */
int journal_refuse_result(struct journal *j, const char *connector, const char *key,
                          const char *answer, struct ca_error *err);
int journal_refused_count(struct journal *j, const char *connector, size_t *count,
                          struct ca_error *err);
/* The operator's resend: the refused results of keys (count of them), or all of
 * connector's when keys is NULL, go to the server again; committed before it returns. A
 * key that is not a refused result is -ENOENT and nothing changes. *resent says how many. */
int journal_resend(struct journal *j, const char *connector, const char *const *keys, size_t count,
                   size_t *resent, struct ca_error *err);
/* The operator's release: HELD -> QUEUED for keys (count of them), or every HELD order of
 * connector when keys is NULL; committed before it returns. A key that is not HELD is
 * -ENOENT / -EINVAL, and a key behind a HELD order of its assignment that is not
 * released with it is -EINVAL (the assignment's order is kept): nothing is changed
 * then. *released says how many. */
int journal_release(struct journal *j, const char *connector, const char *const *keys, size_t count,
                    size_t *released, struct ca_error *err);

/* QUEUED -> EXECUTING, as a worker is about to take the order; -EINVAL when not QUEUED. */
int journal_start(struct journal *j, const char *connector, const char *key, struct ca_error *err);
/* EXECUTING -> QUEUED for an order handed to the executor that never started (the agent
 * stops): it runs first, in its place, after the restart. -EINVAL when not EXECUTING. */
int journal_requeue(struct journal *j, const char *connector, const char *key,
                    struct ca_error *err);

/* Stores the result of an EXECUTING (or QUEUED) order (state FINISHED). An order not known yet is
 * inserted directly as FINISHED (e.g. an order Errored before execution). */
int journal_finish(struct journal *j, const char *connector, const struct ca_result *result,
                   struct ca_error *err);

/* Makes every write since the last commit durable. */
int journal_commit(struct journal *j, struct ca_error *err);
/* Writes in the open batch, that the next journal_commit makes durable. */
unsigned journal_pending(const struct journal *j);

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
/* Orders left QUEUED (taken, never started), oldest first, as journal_in_doubt. */
int journal_queued(struct journal *j, const char *connector, struct ca_order ***out, size_t *count,
                   struct ca_error *err);
void journal_orders_free(struct ca_order **orders, size_t count);

/* Deletes REPORTED entries reported before now - retention. Returns the number deleted. */
int journal_prune(struct journal *j, int64_t now_s, int64_t retention_s, struct ca_error *err);

/* Deletes an EXECUTING or QUEUED entry whose order was abandoned before any back-end saw
 * it. -ENOENT when unknown, -EINVAL when it has a result (a result is never deleted). */
int journal_forget(struct journal *j, const char *connector, const char *key, struct ca_error *err);
/* REPORTED -> FINISHED: the server re-delivered an order it had acknowledged (it lost
 * our answer), so the stored result must be sent again. -EINVAL when not REPORTED. */
int journal_unreport(struct journal *j, const char *connector, const char *key,
                     struct ca_error *err);

/* Operator support (connector-agent journal ...): prints pending, in-doubt and
 * unreported entries to stdout; resolves an in-doubt order by hand as Executed or
 * Errored with the operator's message. */
int journal_list(struct journal *j, const char *what, int json, struct ca_error *err);
/* what: "pending" (EXECUTING), "queued" (QUEUED), "held" (HELD), "unreported" (FINISHED)
 * or "all";
 * -EINVAL otherwise.
 * A table ending with the counts by state. */
int journal_list_to(struct journal *j, const char *what, FILE *out, struct ca_error *err);
/* The same as one JSON document: {"selection", "entries": [...], "counts": {"total",
 * "executing", "finished", "reported", "queued", "held"}}, messages whole. */
int journal_list_json_to(struct journal *j, const char *what, FILE *out, struct ca_error *err);
/* EXECUTING or HELD -> FINISHED with the operator's outcome, committed before it returns;
 * -ENOENT when unknown, -EINVAL when neither (a HELD order can only be refused: Errored). */
int journal_resolve(struct journal *j, const char *connector, const char *key,
                    enum ca_result_state state, const char *message, struct ca_error *err);

/* --- Serving a connector: several agents on one PostgreSQL journal ---
 * Per connector, one instance at a time serves it: polls ProvisioningData, executes its
 * orders and reports their results; the others stand by and try again (journal_role.c
 * says how the role is held). On SQLite, the only instance serves every connector. */
#define JOURNAL_HOLDER_MAX 256
struct journal_role {
        int serving;   /* 1: this instance took the role (or holds it already) */
        int64_t epoch; /* how many times the role was taken, all instances together */
        char holder[JOURNAL_HOLDER_MAX]; /* the identifier of the instance that serves it */
};
/* Takes the role for connector when it is free (or held in this session already) and
 * records identifier as its holder, epoch counted up; otherwise reads who holds it. Needs
 * no batch open (-EAGAIN: call it again after the commit); commits before it returns. An
 * instance whose session was lost (journal_roles_lost) takes each of its roles back
 * with this before any write is allowed again: an epoch other than its own + 1 means
 * that another instance served the connector meanwhile. */
int journal_serve(struct journal *j, const char *connector, const char *identifier,
                  struct journal_role *role, struct ca_error *err);
/* Who last took the connector's role (role->serving is 0: this reads, it takes nothing);
 * role->epoch 0 when no instance has yet, and always on SQLite. */
int journal_role_of(struct journal *j, const char *connector, struct journal_role *role,
                    struct ca_error *err);
/* 1 once a reconnect dropped the session that held a role taken with journal_serve:
 * every write then fails with -ESTALE until each is taken again. */
int journal_roles_lost(const struct journal *j);
/* Keeps a shared journal's session from its lease's end (journal_params.lease_ms) while
 * the agent has nothing to write; a no-op on SQLite. */
int journal_keepalive(struct journal *j, struct ca_error *err);
/* The lease as the executor's workers see it: *clock is when the session holding this
 * instance's roles last answered (time_mono_ms; written by the loop thread, read by any
 * thread). A back-end call may start only before *clock + *lease_ms / 2: until then the
 * session, and so every role, is sure to live, whatever pause the process took. NULL
 * (no lease: always) on SQLite and without journal_lease. */
const _Atomic uint64_t *journal_contact_clock(const struct journal *j, uint64_t *lease_ms);

#endif
