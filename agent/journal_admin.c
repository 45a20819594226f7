/* Operator commands on the journal: listing entries and settling in-doubt orders. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "journal_internal.h"
#include "timeutil.h"

#define LIST_MESSAGE_MAX 80 /* longer messages are cut in the table, never in the file */

static const char *state_label(int state)
{
        switch (state) {
        case JOURNAL_EXECUTING:
                return "EXECUTING";
        case JOURNAL_FINISHED:
                return "FINISHED";
        case JOURNAL_REPORTED:
                return "REPORTED";
        default:
                return "?";
        }
}

static const char *text_or_dash(sqlite3_stmt *st, int col)
{
        const char *s = (const char *)sqlite3_column_text(st, col);
        return s && *s ? s : "-";
}

static const char *time_or_dash(sqlite3_stmt *st, int col, char *buf, size_t len)
{
        if (sqlite3_column_type(st, col) == SQLITE_NULL)
                return "-";
        return time_iso8601(sqlite3_column_int64(st, col), buf, len);
}

/* One line, printable, bounded: a message may hold anything a target said. */
static void clean_message(const char *in, char *out, size_t len)
{
        size_t o = 0;
        for (size_t i = 0; in[i] && o + 1 < len; i++)
                out[o++] = isprint((unsigned char)in[i]) ? in[i] : ' ';
        out[o] = '\0';
        if (in[0] && strlen(in) >= len - 1 && len > 4)
                memcpy(out + len - 4, "...", 4);
}

int journal_list_to(struct journal *j, const char *what, FILE *f, struct ca_error *err)
{
        enum journal_stmt_id id;
        if (what && strcmp(what, "pending") == 0)
                id = JS_LIST_PENDING;
        else if (what && strcmp(what, "unreported") == 0)
                id = JS_LIST_UNREPORTED;
        else if (what && strcmp(what, "all") == 0)
                id = JS_LIST_ALL;
        else
                return ca_error_set(err, -EINVAL,
                                    "journal list: unknown selection '%s' (pending, unreported or "
                                    "all)",
                                    what ? what : "");
        sqlite3_stmt *st = journal_stmt(j, id, err);
        if (!st)
                return err ? err->code : -EIO;
        fprintf(f, "%-16s %-36s %-9s %-8s %-10s %-12s %-20s %-20s %-20s %s\n", "CONNECTOR", "KEY",
                "STATE", "RESULT", "CHANGE", "ASSIGNMENT", "RECEIVED", "FINISHED", "REPORTED",
                "MESSAGE");
        size_t n = 0;
        int code = 0, rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                char received[32], finished[32], reported[32], msg[LIST_MESSAGE_MAX + 1];
                int rs = sqlite3_column_int(st, 8);
                clean_message(sqlite3_column_type(st, 9) == SQLITE_NULL
                                  ? ""
                                  : (const char *)sqlite3_column_text(st, 9),
                              msg, sizeof(msg));
                fprintf(f, "%-16s %-36s %-9s %-8s %-10s %-12s %-20s %-20s %-20s %s\n",
                        text_or_dash(st, 0), text_or_dash(st, 1),
                        state_label(sqlite3_column_int(st, 2)),
                        rs ? result_state_name((enum ca_result_state)rs) : "-", text_or_dash(st, 3),
                        text_or_dash(st, 4), time_or_dash(st, 5, received, sizeof(received)),
                        time_or_dash(st, 6, finished, sizeof(finished)),
                        time_or_dash(st, 7, reported, sizeof(reported)), msg[0] ? msg : "-");
                n++;
        }
        if (rc != SQLITE_DONE)
                code = journal_read_failed(j, rc, "listing entries", err);
        sqlite3_reset(st);
        if (code == 0)
                fprintf(f, "%zu %s entr%s\n", n, what, n == 1 ? "y" : "ies");
        if (code == 0 && id == JS_LIST_PENDING && n > 0)
                fprintf(f, "While the agent is stopped, EXECUTING orders are in doubt: check "
                           "each on its target, then resolve it as Executed or Errored (journal "
                           "resolve) so that its result is reported.\n");
        return code;
}

int journal_list(struct journal *j, const char *what, struct ca_error *err)
{
        int code = journal_list_to(j, what, stdout, err);
        fflush(stdout);
        return code;
}

int journal_resolve(struct journal *j, const char *connector, const char *key,
                    enum ca_result_state state, const char *message, struct ca_error *err)
{
        if (!connector || !*connector || !key || !*key)
                return ca_error_set(err, -EINVAL, "journal resolve: connector and key are needed");
        if (state != CA_RESULT_EXECUTED && state != CA_RESULT_ERRORED)
                return ca_error_set(err, -EINVAL,
                                    "journal resolve: the outcome must be Executed "
                                    "or Errored");
        sqlite3_stmt *st = journal_stmt(j, JS_ORDER_OF, err);
        if (!st)
                return err ? err->code : -EIO;
        sqlite3_bind_text(st, 1, connector, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
        int code = 0;
        char *json = NULL;
        struct ca_order *order = NULL;
        struct ca_result *result = NULL;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
                code = ca_error_set(err, -ENOENT, "journal: order %s of %s is not in the journal",
                                    key, connector);
                goto out;
        }
        if (rc != SQLITE_ROW) {
                code = journal_read_failed(j, rc, "reading an order", err);
                goto out;
        }
        int current = sqlite3_column_int(st, 0);
        if (current != JOURNAL_EXECUTING) {
                code =
                    ca_error_set(err, -EINVAL,
                                 "journal: order %s of %s is %s, not in doubt; only an EXECUTING "
                                 "order can be resolved",
                                 key, connector, state_label(current));
                goto out;
        }
        const char *stored = (const char *)sqlite3_column_text(st, 1);
        if (stored && !(json = strdup(stored))) {
                code = ca_error_set(err, -ENOMEM, "journal: out of memory");
                goto out;
        }
        sqlite3_reset(st);

        json_error_t jerr;
        json_t *obj = json ? json_loads(json, 0, &jerr) : NULL;
        if (!obj) {
                code = ca_error_set(err, -EPROTO, "journal %s: stored order %s is unreadable",
                                    j->path, key);
                goto out;
        }
        code = order_from_json(obj, &order, err);
        json_decref(obj);
        if (code < 0)
                goto out;
        snprintf(order->key, sizeof(order->key), "%s", key);
        result = result_new(order, state, message, NULL, time_wall_s());
        if (!result) {
                code = ca_error_set(err, -ENOMEM, "journal: out of memory");
                goto out;
        }
        /* An operator's decision is acted on at once: make it durable before returning. */
        code = journal_finish(j, connector, result, err);
        if (code == 0)
                code = journal_commit(j, err);
out:
        sqlite3_reset(st);
        result_free(result);
        order_free(order);
        free(json);
        return code;
}
