/* SPDX-License-Identifier: Apache-2.0 */
/* journal_role: which instance serves each connector when several agents share one
 * PostgreSQL journal (journal.h, "Serving a connector"), and the fence that keeps an
 * instance that lost a role from writing.
 *
 * The role is a session-level advisory lock, (class "CAJ2", hashtext(connector)), taken
 * on the journal's own connection: PostgreSQL releases it when that session ends (the
 * process died, its host was cut off, or, with a lease, the session sat idle past
 * idle_session_timeout because its process was paused). Since the same session carries
 * every write, a write that lands was made while the lock was held; the one way to
 * write without it is a new session after a reconnect, and the fence refuses every write
 * from then until journal_serve has taken each role again. Two connectors whose names
 * hash alike share one lock: then one instance serves both, which is safe. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "journal_internal.h"
#include "log.h"
#include "timeutil.h"

static unsigned session_of(const struct journal *j)
{
        return j->drv->session(j);
}

int journal_role_fence(struct journal *j, struct ca_error *err)
{
        if (!j->drv->session || !j->nserved)
                return 0;
        unsigned now = session_of(j);
        for (size_t i = 0; i < j->nserved; i++)
                if (j->served[i].session != now)
                        return ca_error_set(err, -ESTALE,
                                            "journal %s: the session that held this instance's "
                                            "role for connector %s was lost: nothing is written "
                                            "until the role is taken again",
                                            j->name, j->served[i].connector);
        return 0;
}

int journal_roles_lost(const struct journal *j)
{
        if (!j->drv->session)
                return 0;
        unsigned now = session_of(j);
        for (size_t i = 0; i < j->nserved; i++)
                if (j->served[i].session != now)
                        return 1;
        return 0;
}

void journal_roles_free(struct journal *j)
{
        for (size_t i = 0; i < j->nserved; i++)
                free(j->served[i].connector);
        free(j->served);
        j->served = NULL;
        j->nserved = 0;
}

static struct journal_served *served_find(struct journal *j, const char *connector)
{
        for (size_t i = 0; i < j->nserved; i++)
                if (strcmp(j->served[i].connector, connector) == 0)
                        return &j->served[i];
        return NULL;
}

static int served_set(struct journal *j, const char *connector, int64_t epoch, struct ca_error *err)
{
        struct journal_served *s = served_find(j, connector);
        if (!s) {
                char *name = strdup(connector);
                struct journal_served *grown =
                    name ? realloc(j->served, (j->nserved + 1) * sizeof(*grown)) : NULL;
                if (!grown) {
                        free(name);
                        return ca_error_set(err, -ENOMEM, "out of memory");
                }
                j->served = grown;
                s = &j->served[j->nserved++];
                s->connector = name;
        }
        s->epoch = epoch;
        s->session = session_of(j);
        return 0;
}

static void holder_copy(struct journal_role *role, const char *text)
{
        snprintf(role->holder, sizeof(role->holder), "%s", text ? text : "");
}

/* Runs a query expected to return at most one row: 1 with the row to read (the caller
 * ends it with journal_rows_done), 0 when there is none, or a negative errno. */
static int one_row(struct journal *j, enum journal_stmt_id id, const struct journal_arg *args,
                   size_t n, struct journal_rows *rows, const char *what, struct ca_error *err)
{
        int code = journal_query(j, id, args, n, rows, what, err);
        if (code < 0)
                return code;
        code = journal_next(rows, what, err);
        if (code == 0)
                journal_rows_done(rows);
        return code;
}

/* The role's row: its holder and epoch ("" and 0 when none was ever taken). */
static int read_holder(struct journal *j, const char *connector, struct journal_role *role,
                       struct ca_error *err)
{
        struct journal_rows rows;
        int code = one_row(j, JS_ROLE_HOLDER, (struct journal_arg[]){JA_TEXT(connector)}, 1, &rows,
                           "reading a connector's role", err);
        if (code > 0) {
                holder_copy(role, journal_col_text(&rows, 0));
                role->epoch = journal_col_int(&rows, 1);
                journal_rows_done(&rows);
        }
        return code < 0 ? code : 0;
}

/* In the open batch: the lock, then the role's row, counted up when the lock is ours. */
static int take(struct journal *j, const char *connector, const char *identifier,
                struct journal_role *role, struct ca_error *err)
{
        struct journal_rows rows;
        int code = one_row(j, JS_ROLE_LOCK, (struct journal_arg[]){JA_TEXT(connector)}, 1, &rows,
                           "taking a connector's role", err);
        if (code < 0)
                return code;
        if (code > 0) {
                const char *got = journal_col_text(&rows, 0);
                role->serving = got && (strcmp(got, "t") == 0 || strcmp(got, "1") == 0);
                journal_rows_done(&rows);
        }
        if (!role->serving)
                return read_holder(j, connector, role, err);
        struct journal_arg args[] = {JA_TEXT(connector), JA_TEXT(identifier),
                                     JA_INT(time_wall_s())};
        code = one_row(j, JS_ROLE_TAKE, args, 3, &rows, "recording a role", err);
        if (code > 0) {
                role->epoch = journal_col_int(&rows, 0);
                holder_copy(role, identifier);
                journal_rows_done(&rows);
        }
        return code < 0 ? code : 0;
}

int journal_role_of(struct journal *j, const char *connector, struct journal_role *role,
                    struct ca_error *err)
{
        memset(role, 0, sizeof(*role));
        return j->drv->session ? read_holder(j, connector, role, err) : 0;
}

int journal_serve(struct journal *j, const char *connector, const char *identifier,
                  struct journal_role *role, struct ca_error *err)
{
        memset(role, 0, sizeof(*role));
        if (!j->drv->session) {
                role->serving = 1;
                holder_copy(role, identifier);
                return 0;
        }
        if (journal_pending(j) || j->batch_err)
                return ca_error_set(err, -EAGAIN, "journal %s: a batch is open", j->name);
        int code = journal_batch_open(j, err);
        if (code == 0)
                code = take(j, connector, identifier, role, err);
        if (code == 0)
                code = journal_commit(j, err);
        else
                journal_commit(j, NULL); /* acknowledges the lost batch: it held nothing */
        if (code == 0 && role->serving)
                code = served_set(j, connector, role->epoch, err);
        if (code < 0)
                role->serving = 0;
        return code;
}

void journal_contact(struct journal *j)
{
        /* A new session without the roles proves nothing about them. */
        if (j->drv->session && !journal_roles_lost(j))
                atomic_store_explicit(&j->contact_ms, time_mono_ms(), memory_order_relaxed);
}

const _Atomic uint64_t *journal_contact_clock(const struct journal *j, uint64_t *lease_ms)
{
        *lease_ms = j->lease_ms;
        return j->drv->session && j->lease_ms ? &j->contact_ms : NULL;
}

int journal_keepalive(struct journal *j, struct ca_error *err)
{
        if (!j->drv->session || j->in_tx)
                return 0; /* an open batch is committed within milliseconds */
        struct journal_rows rows;
        int code = one_row(j, JS_PING, NULL, 0, &rows, "keeping the session", err);
        if (code > 0)
                journal_rows_done(&rows);
        return code < 0 ? code : 0;
}
