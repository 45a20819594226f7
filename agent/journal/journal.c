/* SPDX-License-Identifier: Apache-2.0 */
/* The journal: opening, the batch (group commit) and the order state machine, once for
 * every driver (journal_internal.h). The drivers are journal_sqlite.c and journal_pg.c;
 * operator commands are in journal_admin.c. */
#include "journal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_internal.h"
#include "journal_seal.h"
#include "log.h"
#include "timeutil.h"

const char *journal_errno_words(int code)
{
        switch (code) {
        case -ENOSPC:
                return "disk full";
        case -ENOMEM:
                return "out of memory";
        case -EPROTO:
                return "damaged file";
        case -EBUSY:
                return "locked by another process";
        case -EROFS:
                return "read-only";
        case -EACCES:
                return "permission denied";
        case -ENOENT:
                return "cannot open";
        case -EINVAL:
                return "refused";
        case -ECONNREFUSED:
                return "database unreachable";
        case -EKEYREJECTED:
                return "another seal key";
        case -ESTALE:
                return "role lost";
        default:
                return "I/O error";
        }
}

int journal_kind_parse(const char *name, enum journal_kind *out)
{
        if (!name || strcmp(name, "sqlite") == 0)
                *out = JOURNAL_SQLITE;
        else if (strcmp(name, "postgresql") == 0)
                *out = JOURNAL_POSTGRESQL;
        else
                return -EINVAL;
        return 0;
}

static void rollback(struct journal *j)
{
        if (j->in_tx)
                j->drv->rollback(j);
        j->in_tx = 0;
        j->pending = 0;
}

/* The batch is gone: remember why until journal_commit reports it. */
static int batch_failed(struct journal *j, int code, const char *what, const char *why,
                        struct ca_error *err)
{
        unsigned lost = j->pending;
        rollback(j);
        j->batch_err = code;
        snprintf(j->batch_msg, sizeof(j->batch_msg),
                 "journal %s: %s (%s while %s); the %u write(s) since the last commit are "
                 "discarded",
                 j->name, journal_errno_words(code), why, what, lost);
        log_error("%s", j->batch_msg);
        return ca_error_set(err, code, "%s", j->batch_msg);
}

int journal_write_start(struct journal *j, struct ca_error *err)
{
        int code = journal_batch_open(j, err);
        if (code == 0 && journal_role_fence(j, err) < 0) {
                rollback(j); /* nothing was pending: nothing lost */
                code = err ? err->code : -ESTALE;
        }
        return code;
}

int journal_batch_open(struct journal *j, struct ca_error *err)
{
        if (j->batch_err)
                return ca_error_set(err, j->batch_err,
                                    "%s; journal_commit must acknowledge it before new writes",
                                    j->batch_msg);
        if (j->in_tx)
                return 0;
        char why[JOURNAL_WHY_MAX] = "";
        int code = j->drv->begin(j, why, sizeof(why));
        if (code < 0) {
                /* Nothing was pending, so nothing is lost: no need to poison the batch. */
                j->drv->rollback(j);
                return ca_error_set(err, code, "journal %s: %s (%s while opening a transaction)",
                                    j->name, journal_errno_words(code), why);
        }
        j->in_tx = 1;
        j->pending = 0;
        journal_contact(j);
        return 0;
}

int journal_write(struct journal *j, enum journal_stmt_id id, const struct journal_arg *args,
                  size_t n, const char *what, struct ca_error *err)
{
        char why[JOURNAL_WHY_MAX] = "";
        int changes = j->drv->write(j, id, args, n, why, sizeof(why));
        if (changes < 0)
                return batch_failed(j, changes, what, why, err);
        j->pending++;
        journal_contact(j);
        return changes;
}

/* A failed read: when the engine ended the batch's transaction by itself, the batch is
 * marked failed as a write would be. */
static int read_failed(struct journal *j, int code, const char *what, const char *why,
                       struct ca_error *err)
{
        if (j->in_tx && j->drv->tx_lost(j))
                return batch_failed(j, code, what, why, err);
        return ca_error_set(err, code, "journal %s: %s (%s while %s)", j->name,
                            journal_errno_words(code), why, what);
}

int journal_query(struct journal *j, enum journal_stmt_id id, const struct journal_arg *args,
                  size_t n, struct journal_rows *rows, const char *what, struct ca_error *err)
{
        char why[JOURNAL_WHY_MAX] = "";
        *rows = (struct journal_rows){.j = j};
        int code = j->drv->query(j, id, args, n, rows, why, sizeof(why));
        if (code < 0) {
                j->drv->done(rows);
                return read_failed(j, code, what, why, err);
        }
        journal_contact(j);
        return 0;
}

int journal_next(struct journal_rows *rows, const char *what, struct ca_error *err)
{
        char why[JOURNAL_WHY_MAX] = "";
        int rc = rows->j->drv->next(rows, why, sizeof(why));
        if (rc < 0) {
                rows->j->drv->done(rows);
                return read_failed(rows->j, rc, what, why, err);
        }
        return rc;
}

void journal_rows_done(struct journal_rows *rows)
{
        if (rows->j)
                rows->j->drv->done(rows);
}

int journal_open_params(const struct journal_params *p, struct journal **out, struct ca_error *err)
{
        *out = NULL;
        struct journal *j = calloc(1, sizeof(*j));
        if (!j)
                return ca_error_set(err, -ENOMEM, "journal: out of memory");
        int code = p->kind == JOURNAL_POSTGRESQL ? journal_pg_open(j, p, err)
                                                 : journal_sqlite_open(j, p->path, p->sync, err);
        if (code < 0) {
                free(j->name);
                free(j);
                return code;
        }
        *out = j;
        return 0;
}

int journal_open(const char *path, int sync, struct journal **out, struct ca_error *err)
{
        struct journal_params p = {.kind = JOURNAL_SQLITE, .path = path, .sync = sync};
        return journal_open_params(&p, out, err);
}

void journal_close(struct journal *j)
{
        if (!j)
                return;
        struct ca_error err = {0};
        if (journal_commit(j, &err) < 0)
                log_error("%s", err.msg);
        j->drv->close(j);
        journal_roles_free(j);
        journal_seal_free(j->seal);
        free(j->name);
        free(j);
}

unsigned journal_pending(const struct journal *j)
{
        return j->in_tx ? j->pending : 0;
}

int journal_commit(struct journal *j, struct ca_error *err)
{
        if (j->batch_err) {
                int code = j->batch_err;
                rollback(j);
                j->batch_err = 0;
                return ca_error_set(err, code, "%s", j->batch_msg);
        }
        if (!j->in_tx)
                return 0;
        char why[JOURNAL_WHY_MAX] = "";
        int code = j->drv->commit(j, why, sizeof(why));
        if (code < 0) {
                unsigned lost = j->pending;
                ca_error_set(err, code,
                             "journal %s: %s (%s while committing); the %u write(s) since the last "
                             "commit are not recorded",
                             j->name, journal_errno_words(code), why, lost);
                log_error("%s", err ? err->msg : "journal commit failed");
                rollback(j);
                return code;
        }
        j->in_tx = 0;
        j->pending = 0;
        journal_contact(j);
        return 0;
}

static int check_ids(const char *connector, const char *key, struct ca_error *err)
{
        if (!connector || !*connector)
                return ca_error_set(err, -EINVAL, "journal: no connector");
        if (!key || !*key)
                return ca_error_set(err, -EINVAL, "journal: order without key");
        if (strlen(key) > CA_ORDER_KEY_MAX)
                return ca_error_set(err, -EINVAL, "journal: order key longer than %d",
                                    CA_ORDER_KEY_MAX);
        return 0;
}

int journal_state_of(struct journal *j, const char *connector, const char *key,
                     enum journal_state *state, struct ca_error *err)
{
        *state = JOURNAL_UNKNOWN;
        int code = check_ids(connector, key, err);
        if (code < 0)
                return code;
        struct journal_rows rows;
        const char *what = "reading an order's state";
        struct journal_arg args[] = {JA_TEXT(connector), JA_TEXT(key)};
        if ((code = journal_query(j, JS_STATE, args, 2, &rows, what, err)) < 0)
                return code;
        int rc = journal_next(&rows, what, err);
        if (rc == 1)
                *state = (enum journal_state)journal_col_int(&rows, 0);
        journal_rows_done(&rows);
        return rc < 0 ? rc : 0;
}

static int record(struct journal *j, const char *connector, struct ca_order *order,
                  enum journal_state state, const char *why, struct ca_error *err)
{
        int code = check_ids(connector, order ? order->key : NULL, err);
        if (code < 0)
                return code;
        if (!order->json)
                return ca_error_set(err, -EINVAL, "journal: order %s has no JSON to keep",
                                    order->key);
        /* Usually the page's own slice (order_page_parse), not a new serialisation. */
        const char *json = order_json_text(order);
        if (!json)
                return ca_error_set(err, -ENOMEM, "journal: cannot serialise order %s", order->key);
        char *sealed = NULL;
        code = journal_seal_order(j->seal, json, &sealed, err);
        if (code < 0)
                return code;
        code = journal_write_start(j, err);
        if (code < 0) {
                free(sealed);
                return code;
        }
        struct journal_arg args[] = {
            JA_TEXT(connector),
            JA_TEXT(order->key),
            JA_TEXT(sealed),
            JA_TEXT(order->id),
            JA_TEXT(order->assignment_id),
            JA_TEXT(order->change_text),
            JA_INT(time_wall_s()),
            state == JOURNAL_HELD ? JA_TEXT(why ? why : "") : JA_INT(state),
            JA_INT(order->guard_kinds),
        };
        code = journal_write(j, state == JOURNAL_HELD ? JS_HOLD : JS_BEGIN, args, 9,
                             "recording an order", err);
        free(sealed);
        if (code == 0)
                code = ca_error_set(err, -EEXIST, "journal: order %s of %s is already known",
                                    order->key, connector);
        else if (code > 0)
                code = 0;
        return code;
}
int journal_begin(struct journal *j, const char *connector, struct ca_order *order,
                  struct ca_error *err)
{
        return record(j, connector, order, JOURNAL_EXECUTING, NULL, err);
}

int journal_queue(struct journal *j, const char *connector, struct ca_order *order,
                  struct ca_error *err)
{
        return record(j, connector, order, JOURNAL_QUEUED, NULL, err);
}

int journal_hold(struct journal *j, const char *connector, struct ca_order *order, const char *why,
                 struct ca_error *err)
{
        return record(j, connector, order, JOURNAL_HELD, why, err);
}

static const char *state_words(enum journal_state s)
{
        switch (s) {
        case JOURNAL_EXECUTING:
                return "executing";
        case JOURNAL_QUEUED:
                return "queued";
        case JOURNAL_HELD:
                return "held";
        case JOURNAL_FINISHED:
                return "finished";
        case JOURNAL_REPORTED:
                return "reported";
        case JOURNAL_UNKNOWN:
                break;
        }
        return "known";
}

/* One transition between the two states without a result (QUEUED <-> EXECUTING). */
static int move(struct journal *j, const char *connector, const char *key, enum journal_state from,
                enum journal_state to, struct ca_error *err)
{
        int code = check_ids(connector, key, err);
        if (code < 0)
                return code;
        code = journal_write_start(j, err);
        if (code < 0)
                return code;
        struct journal_arg args[] = {JA_TEXT(connector), JA_TEXT(key), JA_INT(from), JA_INT(to)};
        code = journal_write(
            j, JS_MOVE, args, 4,
            to == JOURNAL_EXECUTING ? "starting an order" : "queueing an order again", err);
        if (code < 0)
                return code;
        return code == 0 ? ca_error_set(err, -EINVAL, "journal: order %s of %s is not %s", key,
                                        connector, state_words(from))
                         : 0;
}

int journal_start(struct journal *j, const char *connector, const char *key, struct ca_error *err)
{
        return move(j, connector, key, JOURNAL_QUEUED, JOURNAL_EXECUTING, err);
}

int journal_requeue(struct journal *j, const char *connector, const char *key, struct ca_error *err)
{
        return move(j, connector, key, JOURNAL_EXECUTING, JOURNAL_QUEUED, err);
}

static int finish_args(struct journal_arg *a, const char *connector, const struct ca_result *r,
                       int64_t now)
{
        a[0] = JA_TEXT(connector);
        a[1] = JA_TEXT(r->order_key);
        a[2] = JA_TEXT(r->id);
        a[3] = JA_TEXT(r->assignment_id);
        a[4] = JA_INT(r->state);
        a[5] = JA_TEXT(r->message ? r->message : "");
        a[6] = JA_TEXT(r->change_type);
        a[7] = JA_TEXT(r->owner_id);
        a[8] = JA_TEXT(r->owner_type);
        a[9] = JA_TEXT(r->resource_identifier);
        a[10] = JA_INT(r->executed_at);
        a[11] = JA_INT(now);
        return 12;
}

int journal_finish(struct journal *j, const char *connector, const struct ca_result *result,
                   struct ca_error *err)
{
        int code = check_ids(connector, result ? result->order_key : NULL, err);
        if (code < 0)
                return code;
        if (result->state != CA_RESULT_EXECUTED && result->state != CA_RESULT_ERRORED)
                return ca_error_set(err, -EINVAL, "journal: result of %s has no valid state",
                                    result->order_key);
        code = journal_write_start(j, err);
        if (code < 0)
                return code;
        struct journal_arg args[12];
        int n = finish_args(args, connector, result, time_wall_s());
        code = journal_write(j, JS_FINISH_UPDATE, args, (size_t)n, "storing a result", err);
        if (code != 0)
                return code < 0 ? code : 0;
        code = journal_write(j, JS_FINISH_INSERT, args, (size_t)n, "storing a result", err);
        if (code == 0)
                /* The first result stays: it may already be on its way to the server. */
                return ca_error_set(
                    err, -EEXIST, "journal: order %s of %s already has a result; keeping the first",
                    result->order_key, connector);
        return code < 0 ? code : 0;
}

static int dup_col(struct journal_rows *rows, int col, char **out)
{
        const char *s = journal_col_text(rows, col);
        *out = NULL;
        if (!s)
                return 0;
        *out = strdup(s);
        return *out ? 0 : -ENOMEM;
}

/* A result from a row of the result columns (enum journal_result_col). */
static int row_result(struct journal_rows *rows, struct ca_result **out)
{
        struct ca_result *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        int code = 0;
        if ((code = dup_col(rows, JRC_KEY, &r->order_key)) < 0 ||
            (code = dup_col(rows, JRC_ORDER_ID, &r->id)) < 0 ||
            (code = dup_col(rows, JRC_ASSIGNMENT, &r->assignment_id)) < 0 ||
            (code = dup_col(rows, JRC_MESSAGE, &r->message)) < 0 ||
            (code = dup_col(rows, JRC_CHANGE_TYPE, &r->change_type)) < 0 ||
            (code = dup_col(rows, JRC_OWNER_ID, &r->owner_id)) < 0 ||
            (code = dup_col(rows, JRC_OWNER_TYPE, &r->owner_type)) < 0 ||
            (code = dup_col(rows, JRC_RESOURCE, &r->resource_identifier)) < 0)
                goto fail;
        if (!r->message && !(r->message = strdup(""))) {
                code = -ENOMEM;
                goto fail;
        }
        r->state = (enum ca_result_state)journal_col_int(rows, JRC_RESULT_STATE);
        r->executed_at = journal_col_int(rows, JRC_EXECUTED_AT);
        *out = r;
        return 0;
fail:
        result_free(r);
        return code;
}

int journal_result(struct journal *j, const char *connector, const char *key,
                   struct ca_result **out, struct ca_error *err)
{
        *out = NULL;
        int code = check_ids(connector, key, err);
        if (code < 0)
                return code;
        const char *what = "reading a result";
        struct journal_rows rows;
        struct journal_arg args[] = {JA_TEXT(connector), JA_TEXT(key)};
        if ((code = journal_query(j, JS_RESULT, args, 2, &rows, what, err)) < 0)
                return code;
        int rc = journal_next(&rows, what, err);
        if (rc == 1 && (code = row_result(&rows, out)) < 0)
                ca_error_set(err, code, "journal: out of memory");
        journal_rows_done(&rows);
        return rc < 0 ? rc : code;
}

void journal_results_free(struct ca_result **results, size_t count)
{
        if (!results)
                return;
        for (size_t i = 0; i < count; i++)
                result_free(results[i]);
        free(results);
}

/* Appends item to a growing array of pointers. */
static int push(void ***arr, size_t *count, size_t *cap, void *item)
{
        if (*count == *cap) {
                size_t ncap = *cap ? *cap * 2 : 16;
                void **n = realloc(*arr, ncap * sizeof(**arr));
                if (!n)
                        return -ENOMEM;
                *arr = n;
                *cap = ncap;
        }
        (*arr)[(*count)++] = item;
        return 0;
}

int journal_unreported(struct journal *j, const char *connector, size_t max,
                       struct ca_result ***out, size_t *count, struct ca_error *err)
{
        *out = NULL;
        *count = 0;
        if (!connector || !*connector)
                return ca_error_set(err, -EINVAL, "journal: no connector");
        if (max == 0)
                return 0;
        const char *what = "reading unreported results";
        struct journal_rows rows;
        struct journal_arg args[] = {JA_TEXT(connector),
                                     JA_INT(max > INT64_MAX ? INT64_MAX : (int64_t)max)};
        int code = journal_query(j, JS_UNREPORTED, args, 2, &rows, what, err);
        if (code < 0)
                return code;
        void **arr = NULL;
        size_t n = 0, cap = 0;
        int rc;
        while ((rc = journal_next(&rows, what, err)) == 1) {
                struct ca_result *r = NULL;
                if ((code = row_result(&rows, &r)) < 0 || (code = push(&arr, &n, &cap, r)) < 0) {
                        result_free(r);
                        ca_error_set(err, code, "journal: out of memory");
                        break;
                }
        }
        if (code == 0 && rc < 0)
                code = rc;
        journal_rows_done(&rows);
        if (code < 0) {
                journal_results_free((struct ca_result **)arr, n);
                return code;
        }
        *out = (struct ca_result **)arr;
        *count = n;
        return 0;
}

int journal_unreported_count(struct journal *j, const char *connector, size_t *count,
                             struct ca_error *err)
{
        *count = 0;
        const char *what = "counting unreported results";
        struct journal_rows rows;
        struct journal_arg args[] = {JA_TEXT(connector)};
        int code = journal_query(j, connector ? JS_COUNT_ONE : JS_COUNT_ALL, args,
                                 connector ? 1 : 0, &rows, what, err);
        if (code < 0)
                return code;
        int rc = journal_next(&rows, what, err);
        if (rc == 1)
                *count = (size_t)journal_col_int(&rows, 0);
        else if (rc == 0)
                rc = ca_error_set(err, -EIO, "journal %s: no count while %s", j->name, what);
        journal_rows_done(&rows);
        return rc < 0 ? rc : 0;
}

int journal_mark_reported(struct journal *j, const char *connector, const char *const *keys,
                          size_t count, struct ca_error *err)
{
        if (!connector || !*connector)
                return ca_error_set(err, -EINVAL, "journal: no connector");
        if (count == 0)
                return 0;
        int code = journal_write_start(j, err);
        if (code < 0)
                return code;
        /* One statement for the whole acknowledgement, the keys as a JSON array: on
         * PostgreSQL each statement is a round trip. */
        json_t *list = json_array();
        int ok = list != NULL;
        for (size_t i = 0; ok && i < count; i++)
                ok = !keys[i] || json_array_append_new(list, json_string(keys[i])) == 0;
        char *text = ok ? json_dumps(list, JSON_COMPACT) : NULL;
        json_decref(list);
        if (!text)
                return ca_error_set(err, -ENOMEM,
                                    "journal: out of memory marking results reported");
        struct journal_arg args[] = {JA_TEXT(connector), JA_TEXT(text), JA_INT(time_wall_s())};
        code = journal_write(j, JS_MARK, args, 3, "marking results reported", err);
        free(text);
        return code;
}

void journal_orders_free(struct ca_order **orders, size_t count)
{
        if (!orders)
                return;
        for (size_t i = 0; i < count; i++)
                order_free(orders[i]);
        free(orders);
}

/* Rebuilds a stored order; its identity stays the stored key whatever the parser says. */
static int rebuild_order(struct journal *j, const char *key, const char *json,
                         struct ca_order **out, struct ca_error *err)
{
        *out = NULL;
        json_error_t jerr;
        char *opened = NULL;
        /* Not JSON at all (-EINVAL) is reported as unreadable below, with jansson's words. */
        int sc = json ? journal_seal_open_order(j->seal, json, &opened, err) : 0;
        if (sc < 0 && sc != -EINVAL)
                return ca_error_prefix(err, "journal %s: stored order %s", j->name, key);
        json_t *obj = json ? json_loads(opened ? opened : json, 0, &jerr) : NULL;
        journal_seal_text_free(opened);
        if (!obj)
                return ca_error_set(err, -EPROTO, "journal %s: stored order %s is unreadable%s%s",
                                    j->name, key, json ? ": " : " (no JSON)",
                                    json ? jerr.text : "");
        int code = order_from_json(obj, out, err);
        json_decref(obj);
        if (code < 0)
                return ca_error_prefix(err, "journal %s: stored order %s", j->name, key);
        snprintf((*out)->key, sizeof((*out)->key), "%s", key);
        return 0;
}

static int orders_in(struct journal *j, enum journal_stmt_id id, const char *connector,
                     struct ca_order ***out, char ***whys, size_t *count, struct ca_error *err)
{
        *out = NULL;
        *count = 0;
        if (whys)
                *whys = NULL;
        if (!connector || !*connector)
                return ca_error_set(err, -EINVAL, "journal: no connector");
        const char *what = id == JS_QUEUED ? "reading queued orders"
                           : id == JS_HELD ? "reading held orders"
                                           : "reading orders in doubt";
        struct journal_rows rows;
        struct journal_arg args[] = {JA_TEXT(connector)};
        int code = journal_query(j, id, args, 1, &rows, what, err);
        if (code < 0)
                return code;
        void **arr = NULL, **texts = NULL;
        size_t n = 0, cap = 0, nt = 0, capt = 0;
        int rc;
        while ((rc = journal_next(&rows, what, err)) == 1) {
                struct ca_order *o = NULL;
                code = rebuild_order(j, journal_col_text(&rows, 0), journal_col_text(&rows, 1), &o,
                                     err);
                if (code < 0)
                        break;
                if ((code = push(&arr, &n, &cap, o)) < 0) {
                        order_free(o);
                        ca_error_set(err, code, "journal: out of memory");
                        break;
                }
                if (!whys)
                        continue;
                char *why = NULL;
                if ((code = dup_col(&rows, 2, &why)) < 0 ||
                    (code = push(&texts, &nt, &capt, why)) < 0) {
                        free(why);
                        ca_error_set(err, code, "journal: out of memory");
                        break;
                }
        }
        if (code == 0 && rc < 0)
                code = rc;
        journal_rows_done(&rows);
        if (code < 0) {
                journal_orders_free((struct ca_order **)arr, n);
                journal_whys_free((char **)texts, nt);
                return code;
        }
        *out = (struct ca_order **)arr;
        if (whys)
                *whys = (char **)texts;
        *count = n;
        return 0;
}

void journal_whys_free(char **whys, size_t count)
{
        if (!whys)
                return;
        for (size_t i = 0; i < count; i++)
                free(whys[i]);
        free(whys);
}

int journal_held(struct journal *j, const char *connector, struct ca_order ***out, char ***whys,
                 size_t *count, struct ca_error *err)
{
        return orders_in(j, JS_HELD, connector, out, whys, count, err);
}

/* One connector's count by a count(*) statement taking the connector alone. */
static int count_of(struct journal *j, enum journal_stmt_id id, const char *connector,
                    const char *what, size_t *count, struct ca_error *err)
{
        *count = 0;
        if (!connector || !*connector)
                return ca_error_set(err, -EINVAL, "journal: no connector");
        struct journal_rows rows;
        struct journal_arg args[] = {JA_TEXT(connector)};
        int code = journal_query(j, id, args, 1, &rows, what, err);
        if (code < 0)
                return code;
        int rc = journal_next(&rows, what, err);
        if (rc == 1)
                *count = (size_t)journal_col_int(&rows, 0);
        else if (rc == 0)
                rc = ca_error_set(err, -EIO, "journal %s: no count while %s", j->name, what);
        journal_rows_done(&rows);
        return rc < 0 ? rc : 0;
}

int journal_held_count(struct journal *j, const char *connector, size_t *count,
                       struct ca_error *err)
{
        return count_of(j, JS_COUNT_HELD, connector, "counting held orders", count, err);
}

int journal_refused_count(struct journal *j, const char *connector, size_t *count,
                          struct ca_error *err)
{
        return count_of(j, JS_COUNT_REFUSED, connector, "counting refused results", count, err);
}

int journal_refuse_result(struct journal *j, const char *connector, const char *key,
                          const char *answer, struct ca_error *err)
{
        int code = check_ids(connector, key, err);
        if (code < 0)
                return code;
        if ((code = journal_write_start(j, err)) < 0)
                return code;
        struct journal_arg args[] = {JA_TEXT(connector), JA_TEXT(key),
                                     JA_TEXT(answer && *answer ? answer : "no details")};
        return journal_write(j, JS_REFUSE, args, 3, "keeping a refused result", err);
}

int journal_in_doubt(struct journal *j, const char *connector, struct ca_order ***out,
                     size_t *count, struct ca_error *err)
{
        return orders_in(j, JS_IN_DOUBT, connector, out, NULL, count, err);
}

int journal_queued(struct journal *j, const char *connector, struct ca_order ***out, size_t *count,
                   struct ca_error *err)
{
        return orders_in(j, JS_QUEUED, connector, out, NULL, count, err);
}

int journal_prune(struct journal *j, int64_t now_s, int64_t retention_s, struct ca_error *err)
{
        if (retention_s < 0)
                return ca_error_set(err, -EINVAL, "journal: negative retention");
        int code = journal_write_start(j, err);
        if (code < 0)
                return code;
        struct journal_arg args[] = {JA_INT(now_s - retention_s)};
        return journal_write(j, JS_PRUNE, args, 1, "pruning reported entries", err);
}

int journal_forget(struct journal *j, const char *connector, const char *key, struct ca_error *err)
{
        enum journal_state state;
        int code = journal_state_of(j, connector, key, &state, err);
        if (code < 0)
                return code;
        if (state == JOURNAL_UNKNOWN)
                return ca_error_set(err, -ENOENT, "journal: order %s of %s is not known", key,
                                    connector);
        if (state != JOURNAL_EXECUTING && state != JOURNAL_QUEUED)
                return ca_error_set(err, -EINVAL,
                                    "journal: order %s of %s is not executing; a stored result is "
                                    "never forgotten",
                                    key, connector);
        code = journal_write_start(j, err);
        if (code < 0)
                return code;
        struct journal_arg args[] = {JA_TEXT(connector), JA_TEXT(key)};
        code = journal_write(j, JS_FORGET, args, 2, "forgetting an order", err);
        return code < 0 ? code : 0;
}

int journal_unreport(struct journal *j, const char *connector, const char *key,
                     struct ca_error *err)
{
        int code = check_ids(connector, key, err);
        if (code < 0)
                return code;
        code = journal_write_start(j, err);
        if (code < 0)
                return code;
        struct journal_arg args[] = {JA_TEXT(connector), JA_TEXT(key)};
        code = journal_write(j, JS_UNREPORT, args, 2, "queueing a stored result again", err);
        if (code < 0)
                return code;
        return code == 0
                   ? ca_error_set(err, -EINVAL, "journal: order %s of %s has no reported result",
                                  key, connector)
                   : 0;
}

int journal_data_version(struct journal *j, int64_t *version, struct ca_error *err)
{
        *version = 0;
        if (!j->drv->data_version)
                return 0; /* the driver has none: callers compare journal_held_count */
        char why[JOURNAL_WHY_MAX] = "";
        int code = j->drv->data_version(j, version, why, sizeof(why));
        if (code < 0)
                return ca_error_set(err, code, "journal %s: %s (%s while reading the data version)",
                                    j->name, journal_errno_words(code), why);
        return 0;
}

int journal_recent_taken(struct journal *j, const char *connector, int64_t since_s,
                         void (*each)(void *ctx, const char *change_type, unsigned guard_kinds,
                                      int64_t received_at),
                         void *ctx, struct ca_error *err)
{
        const char *what = "reading recent orders";
        struct journal_rows rows;
        struct journal_arg args[] = {JA_TEXT(connector), JA_INT(since_s)};
        int code = journal_query(j, JS_RECENT_TAKEN, args, 2, &rows, what, err);
        if (code < 0)
                return code;
        int rc;
        while ((rc = journal_next(&rows, what, err)) == 1) {
                const char *ct = journal_col_text(&rows, 0);
                each(ctx, ct ? ct : "", (unsigned)journal_col_int(&rows, 2),
                     journal_col_int(&rows, 1));
        }
        journal_rows_done(&rows);
        return rc < 0 ? rc : 0;
}
