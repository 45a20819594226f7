/* SPDX-License-Identifier: Apache-2.0 */
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
        case JOURNAL_QUEUED:
                return "QUEUED";
        case JOURNAL_HELD:
                return "HELD";
        case JOURNAL_FINISHED:
                return "FINISHED";
        case JOURNAL_REPORTED:
                return "REPORTED";
        default:
                return "?";
        }
}

static const char *text_or_dash(struct journal_rows *st, int col)
{
        const char *s = journal_col_text(st, col);
        return s && *s ? s : "-";
}

static const char *time_or_dash(struct journal_rows *st, int col, char *buf, size_t len)
{
        if (journal_col_null(st, col))
                return "-";
        return time_iso8601(journal_col_int(st, col), buf, len);
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

static int list_selection(const char *what, enum journal_stmt_id *id, struct ca_error *err)
{
        if (what && strcmp(what, "pending") == 0)
                *id = JS_LIST_PENDING;
        else if (what && strcmp(what, "queued") == 0)
                *id = JS_LIST_QUEUED;
        else if (what && strcmp(what, "held") == 0)
                *id = JS_LIST_HELD;
        else if (what && strcmp(what, "unreported") == 0)
                *id = JS_LIST_UNREPORTED;
        else if (what && strcmp(what, "refused") == 0)
                *id = JS_LIST_REFUSED;
        else if (what && strcmp(what, "all") == 0)
                *id = JS_LIST_ALL;
        else
                return ca_error_set(err, -EINVAL,
                                    "journal list: unknown selection '%s' (pending, queued, "
                                    "held, unreported, refused or all)",
                                    what ? what : "");
        return 0;
}

struct list_counts {
        size_t total, by_state[JOURNAL_STATE_COUNT], refused;
};

/* A FINISHED entry whose result the server refused (journal_refuse_result). */
static int refused(struct journal_rows *st)
{
        return (int)journal_col_int(st, JLC_STATE) == JOURNAL_FINISHED &&
               !journal_col_null(st, JLC_REFUSAL);
}

static void count_row(struct list_counts *n, struct journal_rows *st)
{
        int state = (int)journal_col_int(st, JLC_STATE);
        n->total++;
        if (refused(st))
                n->refused++;
        else if (state >= 0 && state < JOURNAL_STATE_COUNT)
                n->by_state[state]++;
}

static void print_row(FILE *f, struct journal_rows *st)
{
        char received[32], finished[32], reported[32], msg[LIST_MESSAGE_MAX + 1];
        char both[2 * LIST_MESSAGE_MAX + 64];
        int rs = (int)journal_col_int(st, JLC_RESULT_STATE);
        const char *m = journal_col_text(st, JLC_MESSAGE);
        if (refused(st)) {
                const char *a = journal_col_text(st, JLC_REFUSAL);
                snprintf(both, sizeof(both), "the server refused it: %s (result: %s)",
                         a && *a ? a : "no details", m && *m ? m : "-");
                m = both;
        }
        clean_message(m ? m : "", msg, sizeof(msg));
        fprintf(f, "%-16s %-36s %-9s %-8s %-10s %-12s %-20s %-20s %-20s %s\n",
                text_or_dash(st, JLC_CONNECTOR), text_or_dash(st, JLC_KEY),
                refused(st) ? "REFUSED" : state_label((int)journal_col_int(st, JLC_STATE)),
                rs ? result_state_name((enum ca_result_state)rs) : "-",
                text_or_dash(st, JLC_CHANGE_TYPE), text_or_dash(st, JLC_ASSIGNMENT),
                time_or_dash(st, JLC_RECEIVED, received, sizeof(received)),
                time_or_dash(st, JLC_FINISHED, finished, sizeof(finished)),
                time_or_dash(st, JLC_REPORTED, reported, sizeof(reported)), msg[0] ? msg : "-");
}

int journal_list_to(struct journal *j, const char *what, FILE *f, struct ca_error *err)
{
        enum journal_stmt_id id;
        int code = list_selection(what, &id, err);
        if (code < 0)
                return code;
        struct journal_rows rows, *st = &rows;
        if ((code = journal_query(j, id, NULL, 0, st, "listing entries", err)) < 0)
                return code;
        fprintf(f, "%-16s %-36s %-9s %-8s %-10s %-12s %-20s %-20s %-20s %s\n", "CONNECTOR", "KEY",
                "STATE", "RESULT", "CHANGE", "ASSIGNMENT", "RECEIVED", "FINISHED", "REPORTED",
                "MESSAGE");
        struct list_counts n = {0};
        int rc;
        while ((rc = journal_next(st, "listing entries", err)) == 1) {
                print_row(f, st);
                count_row(&n, st);
        }
        if (rc < 0)
                code = rc;
        journal_rows_done(st);
        if (code == 0)
                /* "N <selection> entries" is what scripts match: counts come after it. */
                fprintf(f,
                        "%zu %s entr%s: %zu executing, %zu finished, %zu reported, %zu queued, "
                        "%zu held, %zu refused\n",
                        n.total, what, n.total == 1 ? "y" : "ies", n.by_state[JOURNAL_EXECUTING],
                        n.by_state[JOURNAL_FINISHED], n.by_state[JOURNAL_REPORTED],
                        n.by_state[JOURNAL_QUEUED], n.by_state[JOURNAL_HELD], n.refused);
        if (code == 0 && id == JS_LIST_PENDING && n.total > 0)
                fprintf(f, "While the agent is stopped, EXECUTING orders are in doubt: check "
                           "each on its target, then resolve it as Executed or Errored (journal "
                           "resolve) so that its result is reported.\n");
        if (code == 0 && id == JS_LIST_HELD && n.total > 0)
                fprintf(f, "HELD orders wait for an operator: release them (journal release "
                           "CONNECTOR KEY... or --all) to run them in their order, or refuse one "
                           "(journal resolve CONNECTOR KEY errored MESSAGE).\n");
        if (code == 0 && n.refused > 0)
                fprintf(f, "REFUSED results were answered HTTP 400 by the server and are not sent "
                           "again on their own: once the server accepts them, send them again "
                           "(journal resend CONNECTOR KEY... or --all).\n");
        return code;
}

static json_t *json_text_or_null(struct journal_rows *st, int col)
{
        const char *s = journal_col_text(st, col);
        return s && *s ? json_string(s) : json_null();
}

static json_t *json_time_or_null(struct journal_rows *st, int col)
{
        char buf[32];
        if (journal_col_null(st, col))
                return json_null();
        return json_string(time_iso8601(journal_col_int(st, col), buf, sizeof(buf)));
}

static json_t *json_row(struct journal_rows *st)
{
        int rs = (int)journal_col_int(st, JLC_RESULT_STATE);
        json_t *msg = json_text_or_null(st, JLC_MESSAGE);
        if (!msg) /* not UTF-8: keep the entry, and say so */
                msg = json_string("(message not valid UTF-8; see the table output)");
        return json_pack(
            "{s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "connector",
            json_text_or_null(st, JLC_CONNECTOR), "key", json_text_or_null(st, JLC_KEY), "state",
            state_label((int)journal_col_int(st, JLC_STATE)), "result",
            rs ? json_string(result_state_name((enum ca_result_state)rs)) : json_null(),
            "change_type", json_text_or_null(st, JLC_CHANGE_TYPE), "assignment",
            json_text_or_null(st, JLC_ASSIGNMENT), "received", json_time_or_null(st, JLC_RECEIVED),
            "finished", json_time_or_null(st, JLC_FINISHED), "reported",
            json_time_or_null(st, JLC_REPORTED), "message", msg, "refused_by_server",
            refused(st) ? json_text_or_null(st, JLC_REFUSAL) : json_null());
}

int journal_list_json_to(struct journal *j, const char *what, FILE *f, struct ca_error *err)
{
        enum journal_stmt_id id;
        int code = list_selection(what, &id, err);
        if (code < 0)
                return code;
        struct journal_rows rows, *st = &rows;
        if ((code = journal_query(j, id, NULL, 0, st, "listing entries", err)) < 0)
                return code;
        json_t *entries = json_array();
        struct list_counts n = {0};
        int rc = 0;
        while (entries && (rc = journal_next(st, "listing entries", err)) == 1) {
                json_t *row = json_row(st);
                if (!row || json_array_append_new(entries, row) < 0) {
                        code = ca_error_set(err, -ENOMEM, "journal list: out of memory");
                        break;
                }
                count_row(&n, st);
        }
        if (!entries)
                code = ca_error_set(err, -ENOMEM, "journal list: out of memory");
        else if (code == 0 && rc < 0)
                code = rc;
        journal_rows_done(st);
        json_t *doc = NULL;
        if (code == 0) {
                doc = json_pack("{s:s, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "selection",
                                what, "entries", entries, "counts", "total", (json_int_t)n.total,
                                "executing", (json_int_t)n.by_state[JOURNAL_EXECUTING], "finished",
                                (json_int_t)n.by_state[JOURNAL_FINISHED], "reported",
                                (json_int_t)n.by_state[JOURNAL_REPORTED], "queued",
                                (json_int_t)n.by_state[JOURNAL_QUEUED], "held",
                                (json_int_t)n.by_state[JOURNAL_HELD], "refused",
                                (json_int_t)n.refused);
                entries = NULL; /* "o" took it, even on failure */
                if (!doc || json_dumpf(doc, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
                        code = ca_error_set(err, -ENOMEM, "journal list: cannot write the JSON");
                else
                        fputc('\n', f);
        }
        json_decref(doc);
        json_decref(entries);
        return code;
}

int journal_list(struct journal *j, const char *what, int json, struct ca_error *err)
{
        int code = json ? journal_list_json_to(j, what, stdout, err)
                        : journal_list_to(j, what, stdout, err);
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
        const char *what = "reading an order";
        struct journal_rows rows;
        struct journal_arg args[] = {JA_TEXT(connector), JA_TEXT(key)};
        int code = journal_query(j, JS_ORDER_OF, args, 2, &rows, what, err);
        if (code < 0)
                return code;
        char *json = NULL;
        struct ca_order *order = NULL;
        struct ca_result *result = NULL;
        int rc = journal_next(&rows, what, err);
        if (rc == 0) {
                code = ca_error_set(err, -ENOENT, "journal: order %s of %s is not in the journal",
                                    key, connector);
                goto out;
        }
        if (rc < 0) {
                code = rc;
                goto out;
        }
        int current = (int)journal_col_int(&rows, 0);
        if (current == JOURNAL_HELD && state != CA_RESULT_ERRORED) {
                code = ca_error_set(err, -EINVAL,
                                    "journal: order %s of %s is HELD and was never applied: "
                                    "refuse it (errored) or release it (journal release)",
                                    key, connector);
                goto out;
        }
        if (current != JOURNAL_EXECUTING && current != JOURNAL_HELD) {
                code =
                    ca_error_set(err, -EINVAL,
                                 "journal: order %s of %s is %s, not in doubt; only an EXECUTING "
                                 "(or a HELD) order can be resolved",
                                 key, connector, state_label(current));
                goto out;
        }
        const char *stored = journal_col_text(&rows, 1);
        if (stored && !(json = strdup(stored))) {
                code = ca_error_set(err, -ENOMEM, "journal: out of memory");
                goto out;
        }
        journal_rows_done(&rows);

        json_error_t jerr;
        json_t *obj = json ? json_loads(json, 0, &jerr) : NULL;
        if (!obj) {
                code = ca_error_set(err, -EPROTO, "journal %s: stored order %s is unreadable",
                                    j->name, key);
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
        journal_rows_done(&rows);
        result_free(result);
        order_free(order);
        free(json);
        return code;
}

struct held_row {
        char *key, *assignment;
        int chosen;
};

static void held_rows_free(struct held_row *rows, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(rows[i].key);
                free(rows[i].assignment);
        }
        free(rows);
}

/* Every HELD order of connector, oldest first. */
static int held_rows(struct journal *j, const char *connector, struct held_row **out, size_t *count,
                     struct ca_error *err)
{
        const char *what = "reading held orders";
        struct held_row *rows = NULL;
        size_t n = 0, cap = 0;
        struct journal_rows jr;
        struct journal_arg args[] = {JA_TEXT(connector)};
        int code = journal_query(j, JS_HELD_KEYS, args, 1, &jr, what, err);
        if (code < 0)
                return code;
        int rc;
        while ((rc = journal_next(&jr, what, err)) == 1) {
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 64;
                        struct held_row *r = realloc(rows, ncap * sizeof(*r));
                        if (!r) {
                                code = ca_error_set(err, -ENOMEM, "journal: out of memory");
                                break;
                        }
                        rows = r;
                        cap = ncap;
                }
                const char *k = journal_col_text(&jr, 0);
                const char *a = journal_col_text(&jr, 1);
                rows[n].key = strdup(k ? k : "");
                rows[n].assignment = strdup(a ? a : "");
                rows[n].chosen = 0;
                n++;
                if (!rows[n - 1].key || !rows[n - 1].assignment) {
                        code = ca_error_set(err, -ENOMEM, "journal: out of memory");
                        break;
                }
        }
        if (code == 0 && rc < 0)
                code = rc;
        journal_rows_done(&jr);
        if (code < 0) {
                held_rows_free(rows, n);
                return code;
        }
        *out = rows;
        *count = n;
        return 0;
}

/* Picks the rows keys name; every key must be HELD, and nothing picked may stay behind
 * an unpicked HELD order of its assignment. */
static int choose(struct journal *j, const char *connector, struct held_row *rows, size_t n,
                  const char *const *keys, size_t count, struct ca_error *err)
{
        for (size_t k = 0; k < count; k++) {
                size_t i = 0;
                while (i < n && strcmp(rows[i].key, keys[k]) != 0)
                        i++;
                if (i < n) {
                        rows[i].chosen = 1;
                        continue;
                }
                enum journal_state state;
                int code = journal_state_of(j, connector, keys[k], &state, err);
                if (code < 0)
                        return code;
                if (state == JOURNAL_UNKNOWN)
                        return ca_error_set(err, -ENOENT,
                                            "journal release: order %s of %s is not in the journal",
                                            keys[k], connector);
                return ca_error_set(err, -EINVAL, "journal release: order %s of %s is %s, not HELD",
                                    keys[k], connector, state_label(state));
        }
        for (size_t i = 0; i < n; i++) {
                if (!rows[i].chosen)
                        continue;
                for (size_t e = 0; e < i; e++)
                        if (!rows[e].chosen && rows[e].assignment[0] &&
                            strcmp(rows[e].assignment, rows[i].assignment) == 0)
                                return ca_error_set(
                                    err, -EINVAL,
                                    "journal release: order %s of %s comes after HELD order %s "
                                    "of the same assignment %s: release that one too (or first), "
                                    "or refuse it with journal resolve; the assignment's order is "
                                    "kept",
                                    rows[i].key, connector, rows[e].key, rows[i].assignment);
        }
        return 0;
}

/* An operator's decision is acted on at once: durable before returning. After a
 * failure (code < 0) the batch is given up and *count says nothing was done. */
static int operator_commit(struct journal *j, int code, size_t *count, struct ca_error *err)
{
        if (code == 0)
                code = journal_commit(j, err);
        else
                journal_commit(j, NULL);
        if (code < 0)
                *count = 0;
        return code;
}

int journal_release(struct journal *j, const char *connector, const char *const *keys, size_t count,
                    size_t *released, struct ca_error *err)
{
        *released = 0;
        if (!connector || !*connector)
                return ca_error_set(err, -EINVAL, "journal release: no connector");
        struct held_row *rows = NULL;
        size_t n = 0;
        int code = held_rows(j, connector, &rows, &n, err);
        if (code < 0)
                return code;
        if (keys)
                code = choose(j, connector, rows, n, keys, count, err);
        else
                for (size_t i = 0; i < n; i++)
                        rows[i].chosen = 1;
        if (code == 0)
                code = journal_write_start(j, err);
        for (size_t i = 0; code == 0 && i < n; i++) {
                if (!rows[i].chosen)
                        continue;
                struct journal_arg args[] = {JA_TEXT(connector), JA_TEXT(rows[i].key),
                                             JA_INT(JOURNAL_HELD), JA_INT(JOURNAL_QUEUED)};
                int rc = journal_write(j, JS_MOVE, args, 4, "releasing a held order", err);
                if (rc < 0)
                        code = rc;
                else
                        *released += (size_t)rc;
        }
        code = operator_commit(j, code, released, err);
        held_rows_free(rows, n);
        return code;
}

/* Whether key of connector is a result the server refused. */
static int is_refused(struct journal *j, const char *connector, const char *key,
                      struct ca_error *err)
{
        const char *what = "reading refused results";
        struct journal_rows rows;
        int code = journal_query(j, JS_LIST_REFUSED, NULL, 0, &rows, what, err);
        if (code < 0)
                return code;
        int rc, found = 0;
        while (!found && (rc = journal_next(&rows, what, err)) == 1)
                found = strcmp(text_or_dash(&rows, JLC_CONNECTOR), connector) == 0 &&
                        strcmp(text_or_dash(&rows, JLC_KEY), key) == 0;
        journal_rows_done(&rows);
        return found ? 1 : rc < 0 ? rc : 0;
}

int journal_resend(struct journal *j, const char *connector, const char *const *keys, size_t count,
                   size_t *resent, struct ca_error *err)
{
        *resent = 0;
        if (!connector || !*connector)
                return ca_error_set(err, -EINVAL, "journal resend: no connector");
        /* Every key first: a wrong one changes nothing. */
        for (size_t i = 0; keys && i < count; i++) {
                int rc = is_refused(j, connector, keys[i], err);
                if (rc < 0)
                        return rc;
                if (rc == 0)
                        return ca_error_set(err, -ENOENT,
                                            "journal resend: %s of %s is not a result the server "
                                            "refused (journal list refused shows them)",
                                            keys[i], connector);
        }
        int code = journal_write_start(j, err);
        /* keys NULL: one statement for all of them (a NULL key matches every one). */
        for (size_t i = 0; code == 0 && i < (keys ? count : 1); i++) {
                struct journal_arg args[] = {JA_TEXT(connector), JA_TEXT(keys ? keys[i] : NULL)};
                int rc =
                    journal_write(j, JS_RESEND, args, 2, "sending a refused result again", err);
                if (rc < 0)
                        code = rc;
                else
                        *resent += (size_t)rc;
        }
        return operator_commit(j, code, resent, err);
}
