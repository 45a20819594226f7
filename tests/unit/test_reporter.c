/* SPDX-License-Identifier: Apache-2.0 */
/* The reporter stage on a virtual clock, against the real journal and a scripted server
 * (in the spirit of unbound's replay tests): every timer the stage arms and every answer
 * the server gives happen at a virtual time the test controls, so backoff, Retry-After,
 * the wake-up after a commit and the wake-up when the server comes back are checked
 * exactly and without sleeping. */
#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "journal.h"
#include "reporter.h"

#define CONN       "hr-db"
#define AGENT_ID   "agent-1"
#define LATENCY_MS 20 /* the scripted server answers this long after a send */
#define MAX_SCRIPT 64
#define MAX_BODIES 4096
#define FOREVER_MS (24ull * 3600 * 1000)

struct answer {
        long status; /* 0: transport error */
        const char *retry_after;
        const char *body; /* NULL: a full acknowledgement of what was sent */
};

/* What libcurl reads from any HTTP-date Retry-After these scripts send (seconds ahead). */
#define DATE_AHEAD_S 5

struct harness {
        char dir[64], path[128];
        struct journal *j;
        struct reporter *r;
        uint64_t now;
        int armed;
        uint64_t due;
        int commit_pending; /* reads answer -EAGAIN, as while the agent's batch is open */
        /* the server */
        struct answer script[MAX_SCRIPT];
        size_t script_len, script_pos;
        const char *refuse_id; /* a body holding this Id is answered 400 */
        int sending;
        uint64_t answer_at;
        char *in_flight;
        reporter_answer_fn answer;
        char *bodies[MAX_BODIES]; /* every body sent, in order */
        uint64_t sent_at[MAX_BODIES];
        size_t sends;
        int repeated_after_400; /* a body was sent again after being answered 400 */
        char *refused_bodies[MAX_BODIES];
        size_t refused_count;
        int refuse_fails; /* ops->refuse cannot write the journal */
        /* what the stage told */
        size_t delivered, idles, server_oks, server_fails;
        char last_error[1024];
        uint64_t rnd;
};

static int op_read(void *ctx, size_t max, struct ca_result ***out, size_t *count,
                   struct ca_error *err)
{
        struct harness *h = ctx;
        if (h->commit_pending)
                return -EAGAIN;
        return journal_unreported(h->j, CONN, max, out, count, err);
}

static int op_mark(void *ctx, const char *const *keys, size_t count, struct ca_error *err)
{
        struct harness *h = ctx;
        int rc = journal_mark_reported(h->j, CONN, keys, count, err);
        return rc < 0 ? rc : journal_commit(h->j, err);
}

static int op_refuse(void *ctx, const char *key, const char *answer, struct ca_error *err)
{
        struct harness *h = ctx;
        if (h->refuse_fails)
                return ca_error_set(err, -EIO, "journal: disk I/O error (injected)");
        int rc = journal_refuse_result(h->j, CONN, key, answer, err);
        assert_int_equal(rc, 1);
        return journal_commit(h->j, err);
}

static int op_send(void *ctx, const char *body, struct reporter *r, reporter_answer_fn answer)
{
        struct harness *h = ctx;
        (void)r;
        assert_false(h->sending); /* one PUT in flight */
        assert_true(h->sends < MAX_BODIES);
        for (size_t i = 0; i < h->refused_count; i++)
                if (strcmp(h->refused_bodies[i], body) == 0)
                        h->repeated_after_400 = 1;
        h->bodies[h->sends] = strdup(body);
        h->sent_at[h->sends++] = h->now;
        h->in_flight = h->bodies[h->sends - 1];
        h->sending = 1;
        h->answer_at = h->now + LATENCY_MS;
        h->answer = answer;
        return 0;
}

static void op_cancel(void *ctx)
{
        struct harness *h = ctx;
        h->sending = 0;
        struct http_response resp = {.transport_error = CA_HTTP_CANCELLED};
        h->answer(h->r, &resp);
}

static void op_arm(void *ctx, uint64_t delay_ms)
{
        struct harness *h = ctx;
        h->armed = 1;
        h->due = h->now + delay_ms;
}

static void op_disarm(void *ctx)
{
        ((struct harness *)ctx)->armed = 0;
}

static uint64_t op_now(void *ctx)
{
        return ((struct harness *)ctx)->now;
}

static void op_delivered(void *ctx, size_t n)
{
        ((struct harness *)ctx)->delivered += n;
}

static void op_server_ok(void *ctx)
{
        ((struct harness *)ctx)->server_oks++;
}

static void op_server_failed(void *ctx, const char *why)
{
        (void)why;
        ((struct harness *)ctx)->server_fails++;
}

static void op_error(void *ctx, const char *why)
{
        struct harness *h = ctx;
        snprintf(h->last_error, sizeof(h->last_error), "%s", why);
}

static void op_idle(void *ctx)
{
        ((struct harness *)ctx)->idles++;
}

static uint64_t op_random(void *ctx)
{
        struct harness *h = ctx;
        h->rnd = h->rnd * 6364136223846793005ull + 1442695040888963407ull;
        return h->rnd >> 11;
}

static const struct reporter_ops ops = {
    .read = op_read,
    .mark = op_mark,
    .refuse = op_refuse,
    .send = op_send,
    .cancel = op_cancel,
    .arm = op_arm,
    .disarm = op_disarm,
    .now_ms = op_now,
    .delivered = op_delivered,
    .server_ok = op_server_ok,
    .server_failed = op_server_failed,
    .error = op_error,
    .idle = op_idle,
    .random = op_random,
};

static size_t body_results(const char *body)
{
        json_t *root = json_loads(body, 0, NULL);
        assert_non_null(root);
        size_t n = json_array_size(json_object_get(root, "ProvisioningResults"));
        json_decref(root);
        return n;
}

static int body_has_id(const char *body, const char *id)
{
        char needle[128];
        snprintf(needle, sizeof(needle), "\"Id\":\"%s\"", id);
        return strstr(body, needle) != NULL;
}

/* The server answers the PUT in flight. */
static void server_answer(struct harness *h)
{
        struct answer a = {200, NULL, NULL};
        if (h->script_pos < h->script_len)
                a = h->script[h->script_pos++];
        else if (h->refuse_id && body_has_id(h->in_flight, h->refuse_id))
                a = (struct answer){400, NULL,
                                    "{\"error\":\"invalid_request\","
                                    "\"error_description\":\"bad ExecutedAt\"}"};
        char ack[128];
        if (a.status == 200 && !a.body) {
                snprintf(ack, sizeof(ack), "{\"Received\":%zu,\"Duplicates\":0}",
                         body_results(h->in_flight));
                a.body = ack;
        }
        if (a.status == 400 && h->refused_count < MAX_BODIES)
                h->refused_bodies[h->refused_count++] = h->in_flight;
        struct http_response resp = {
            .status = a.status,
            .body = a.body ? a.body : "",
            .body_len = a.body ? strlen(a.body) : 0,
            .retry_after = a.retry_after,
            .retry_after_s =
                a.retry_after && isalpha((unsigned char)a.retry_after[0]) ? DATE_AHEAD_S : 0,
            .error = a.status ? NULL : "connection reset",
            .transport_error = a.status ? 0 : 56};
        h->sending = 0;
        h->answer(h->r, &resp);
}

/* Runs the virtual world until `until` (absolute ms): timers and answers in time order. */
static void run_until(struct harness *h, uint64_t until)
{
        for (;;) {
                uint64_t next = UINT64_MAX;
                if (h->armed)
                        next = h->due;
                if (h->sending && h->answer_at < next)
                        next = h->answer_at;
                if (next > until)
                        break;
                h->now = next;
                if (h->sending && h->answer_at == next) {
                        server_answer(h);
                } else {
                        h->armed = 0;
                        reporter_timer_fired(h->r);
                }
        }
        h->now = until;
}

static void run_for(struct harness *h, uint64_t ms)
{
        run_until(h, h->now + ms);
}

static void script(struct harness *h, struct answer a)
{
        assert_true(h->script_len < MAX_SCRIPT);
        h->script[h->script_len++] = a;
}

static struct ca_order *make_order(const char *id, const char *assignment)
{
        json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:{s:s}, s:{}}", "Id", id,
                                "AssignedResourceTypeId", assignment, "ChangeType", "Added",
                                "WorkflowInstanceId", "81", "Owner", "Id", "21511", "ResourceType",
                                "Identifier", "HR_Account", "Changes");
        assert_non_null(obj);
        struct ca_order *o = NULL;
        struct ca_error err = {0};
        assert_int_equal(order_from_json(obj, &o, &err), 0);
        json_decref(obj);
        return o;
}

/* n results FINISHED and durable, ids o1..on. */
static void add_results(struct harness *h, size_t n)
{
        struct ca_error err = {0};
        for (size_t i = 1; i <= n; i++) {
                char id[32], asg[32];
                snprintf(id, sizeof(id), "o%zu", i);
                snprintf(asg, sizeof(asg), "a%zu", i);
                struct ca_order *o = make_order(id, asg);
                assert_int_equal(journal_begin(h->j, CONN, o, &err), 0);
                struct ca_result *r = result_new(o, CA_RESULT_EXECUTED, "ok", NULL, 1800000000);
                assert_non_null(r);
                assert_int_equal(journal_finish(h->j, CONN, r, &err), 0);
                result_free(r);
                order_free(o);
        }
        assert_int_equal(journal_commit(h->j, &err), 0);
}

static size_t unreported(struct harness *h)
{
        size_t n = 0;
        struct ca_error err = {0};
        assert_int_equal(journal_unreported_count(h->j, CONN, &n, &err), 0);
        return n;
}

static size_t refused_count(struct harness *h)
{
        size_t n = 0;
        struct ca_error err = {0};
        assert_int_equal(journal_refused_count(h->j, CONN, &n, &err), 0);
        return n;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
        (void)sb;
        (void)flag;
        (void)ftw;
        return remove(p);
}

static int setup(void **state)
{
        struct harness *h = calloc(1, sizeof(*h));
        assert_non_null(h);
        snprintf(h->dir, sizeof(h->dir), "/tmp/ca-reporter-XXXXXX");
        assert_non_null(mkdtemp(h->dir));
        snprintf(h->path, sizeof(h->path), "%s/journal.db", h->dir);
        struct ca_error err = {0};
        assert_int_equal(journal_open(h->path, 0, &h->j, &err), 0);
        h->rnd = 42;
        h->now = 1000;
        assert_int_equal(reporter_new(&ops, h, CONN, AGENT_ID, 100, &h->r, &err), 0);
        *state = h;
        return 0;
}

static int teardown(void **state)
{
        struct harness *h = *state;
        reporter_free(h->r);
        journal_close(h->j);
        for (size_t i = 0; i < h->sends; i++)
                free(h->bodies[i]);
        nftw(h->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(h);
        return 0;
}

/* Issue 12 item 1: a failed PUT, then its retry falling while a commit is open, must not
 * stop delivery for good; the commit's kick sends. */
static void test_failure_then_commit_pending(void **state)
{
        struct harness *h = *state;
        add_results(h, 250);
        script(h, (struct answer){500, NULL, "{}"});
        reporter_kick(h->r);
        run_for(h, 100);
        assert_int_equal(h->sends, 1);
        assert_true(reporter_failing(h->r));
        assert_non_null(strstr(h->last_error, "HTTP 500"));
        /* Kicks during the backoff neither send early nor get lost. */
        for (int i = 0; i < 10; i++)
                reporter_kick(h->r);
        assert_int_equal(h->sends, 1);
        h->commit_pending = 1;
        run_for(h, 10 * 1000); /* the retry falls inside the open commit */
        assert_int_equal(h->sends, 1);
        h->commit_pending = 0;
        reporter_kick(h->r); /* what connector_after_commit does */
        run_for(h, 1000);
        assert_int_equal(unreported(h), 0);
        assert_int_equal(h->delivered, 250);
        assert_int_equal(h->sends, 4); /* the failed one, then 100 + 100 + 50 */
        assert_false(reporter_failing(h->r));
}

/* A 500 outage: the request rate follows the backoff, whatever the kicks say. */
static void test_outage_rate_bounded(void **state)
{
        struct harness *h = *state;
        add_results(h, 10);
        for (int i = 0; i < MAX_SCRIPT; i++)
                script(h, (struct answer){i % 2 ? 503 : 0, NULL, "{}"});
        reporter_kick(h->r);
        for (int t = 0; t < 120 * 100; t++) { /* kicked every 10 ms for 120 s */
                reporter_kick(h->r);
                run_for(h, 10);
        }
        /* Full jitter over 1, 2, 4 ... 64 s: about 8 tries in 120 s; never a storm. */
        assert_true(h->sends >= 4);
        assert_true(h->sends <= 16);
        for (size_t i = 1; i < h->sends; i++)
                assert_true(h->sent_at[i] >= h->sent_at[i - 1] + LATENCY_MS);
        assert_int_equal(h->delivered, 0);
        assert_int_equal(unreported(h), 10);
        assert_true(h->server_fails >= 4);
}

/* Retry-After is the server's word: neither kicks nor other successes cut it short. */
static void test_retry_after_honoured(void **state)
{
        struct harness *h = *state;
        add_results(h, 3);
        script(h, (struct answer){429, "7", "{}"});
        reporter_kick(h->r);
        run_for(h, 100);
        assert_int_equal(h->sends, 1);
        reporter_server_back(h->r);
        reporter_kick(h->r);
        run_for(h, 6800);
        assert_int_equal(h->sends, 1);
        run_for(h, 1200); /* 7 s plus at most 10 % + 100 ms jitter */
        assert_int_equal(h->sends, 2);
        assert_true(h->sent_at[1] - h->sent_at[0] >= 7000 + LATENCY_MS);
        assert_int_equal(h->delivered, 3);
}

/* A Retry-After given as an HTTP date waits what libcurl read from it: a reporter that
 * took the wall clock for that reading waited decades (a merge once did). */
static void test_retry_after_date_honoured(void **state)
{
        struct harness *h = *state;
        add_results(h, 2);
        script(h, (struct answer){503, "Wed, 02 Dec 2026 00:00:05 GMT", "{}"});
        reporter_kick(h->r);
        run_for(h, 100);
        assert_int_equal(h->sends, 1);
        run_for(h, 4800);
        assert_int_equal(h->sends, 1);
        run_for(h, 1000); /* 5 s plus at most 10 % + 100 ms jitter */
        assert_int_equal(h->sends, 2);
        assert_true(h->sent_at[1] - h->sent_at[0] >= 5000 + LATENCY_MS);
        assert_int_equal(h->delivered, 2);
}

/* Issue 12 item 7: results waiting out a long backoff go within a second of the server
 * answering something else again. */
static void test_server_back_wakes(void **state)
{
        struct harness *h = *state;
        add_results(h, 5);
        for (int i = 0; i < 7; i++)
                script(h, (struct answer){502, NULL, "{}"});
        reporter_kick(h->r);
        while (h->sends < 7)
                run_for(h, 1000);
        run_for(h, LATENCY_MS); /* the 7th answer: the backoff ceiling is now 128 s */
        assert_true(reporter_failing(h->r));
        uint64_t back = h->now;
        reporter_server_back(h->r);
        run_for(h, 1000 + LATENCY_MS);
        assert_int_equal(h->sends, 8);
        assert_true(h->sent_at[7] - back <= 1000);
        assert_int_equal(h->delivered, 5);
}

/* Issue 13 item 2: one refused result is found by halving, the others go at once, the
 * refused one stays unreported and said, and no body is ever sent again after a 400. */
static void test_400_bisects(void **state)
{
        struct harness *h = *state;
        add_results(h, 37);
        h->refuse_id = "o23";
        reporter_kick(h->r);
        run_for(h, 5000);
        assert_int_equal(h->delivered, 36);
        /* Kept in the journal with the server's answer, out of the queue. */
        assert_int_equal(unreported(h), 0);
        assert_int_equal(refused_count(h), 1);
        enum journal_state st;
        struct ca_error err = {0};
        assert_int_equal(journal_state_of(h->j, CONN, "o23", &st, &err), 0);
        assert_int_equal(st, JOURNAL_FINISHED);
        assert_false(reporter_is_refused(h->r, "o23")); /* the journal holds it back */
        struct reporter_stats stats;
        reporter_stats(h->r, &stats);
        assert_int_equal(stats.refused, 0);
        assert_non_null(strstr(h->last_error, "o23"));
        assert_non_null(strstr(h->last_error, "bad ExecutedAt"));
        assert_false(h->repeated_after_400);
        assert_true(h->sends <= 2 * 6 + 2); /* log2(37) halvings, each a pair at most */
        /* Settled: nothing more is sent, later results still flow, around the refused. */
        size_t sends = h->sends;
        run_for(h, FOREVER_MS / 24);
        assert_int_equal(h->sends, sends);
        assert_false(reporter_failing(h->r));
        struct ca_order *o = make_order("late", "a-late");
        assert_int_equal(journal_begin(h->j, CONN, o, &err), 0);
        struct ca_result *r = result_new(o, CA_RESULT_EXECUTED, "ok", NULL, 1800000000);
        assert_int_equal(journal_finish(h->j, CONN, r, &err), 0);
        assert_int_equal(journal_commit(h->j, &err), 0);
        result_free(r);
        order_free(o);
        reporter_kick(h->r);
        run_for(h, 1000);
        assert_int_equal(h->delivered, 37);
        assert_false(body_has_id(h->bodies[h->sends - 1], "o23"));
        assert_false(h->repeated_after_400);

        /* A restart does not send it again either: the refusal is durable. */
        reporter_free(h->r);
        assert_int_equal(reporter_new(&ops, h, CONN, AGENT_ID, 100, &h->r, &err), 0);
        sends = h->sends;
        reporter_kick(h->r);
        run_for(h, FOREVER_MS / 24);
        assert_int_equal(h->sends, sends);
        assert_false(h->repeated_after_400);

        /* The operator's resend, once the server accepts it: delivered, nothing refused. */
        h->refuse_id = NULL;
        h->refused_count = 0; /* the operator chose to send that body again */
        const char *key = "o23";
        size_t resent = 0;
        assert_int_equal(journal_resend(h->j, CONN, &key, 1, &resent, &err), 0);
        assert_int_equal(resent, 1);
        const char *none = "o1";
        assert_int_equal(journal_resend(h->j, CONN, &none, 1, &resent, &err), -ENOENT);
        reporter_kick(h->r);
        run_for(h, 1000);
        assert_int_equal(h->delivered, 38);
        assert_true(body_has_id(h->bodies[h->sends - 1], "o23"));
        assert_int_equal(refused_count(h), 0);
        assert_int_equal(unreported(h), 0);
}

/* When the journal cannot keep the refusal, this run holds the result back itself. */
static void test_400_refusal_not_kept(void **state)
{
        struct harness *h = *state;
        add_results(h, 9);
        h->refuse_id = "o4";
        h->refuse_fails = 1;
        reporter_kick(h->r);
        run_for(h, 5000);
        assert_int_equal(h->delivered, 8);
        assert_int_equal(unreported(h), 1);
        assert_true(reporter_is_refused(h->r, "o4"));
        struct reporter_stats stats;
        reporter_stats(h->r, &stats);
        assert_int_equal(stats.refused, 1);
        size_t sends = h->sends;
        run_for(h, FOREVER_MS / 24);
        assert_int_equal(h->sends, sends);
        assert_false(h->repeated_after_400);
}

/* Issue 13 item 3: an acknowledgement counting fewer than sent marks nothing. */
static void test_short_ack_resends(void **state)
{
        struct harness *h = *state;
        add_results(h, 3);
        script(h, (struct answer){200, NULL, "{\"Received\":1,\"Duplicates\":1}"});
        reporter_kick(h->r);
        run_for(h, 100);
        assert_int_equal(h->sends, 1);
        assert_int_equal(h->delivered, 0);
        assert_int_equal(unreported(h), 3);
        assert_non_null(strstr(h->last_error, "sending them again"));
        run_for(h, 5000);
        assert_int_equal(h->sends, 2);
        assert_string_equal(h->bodies[0], h->bodies[1]);
        assert_int_equal(h->delivered, 3);
        assert_int_equal(unreported(h), 0);
        struct reporter_stats stats;
        reporter_stats(h->r, &stats);
        assert_int_equal(stats.short_acks, 1);
}

/* A dropped connection and a bad acknowledgement are failures like a 5xx: retried. */
static void test_transport_and_bad_ack(void **state)
{
        struct harness *h = *state;
        add_results(h, 2);
        script(h, (struct answer){0, NULL, NULL});
        script(h, (struct answer){200, NULL, "not json"});
        reporter_kick(h->r);
        run_for(h, 10 * 1000);
        assert_int_equal(h->sends, 3);
        assert_int_equal(h->delivered, 2);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_failure_then_commit_pending, setup, teardown),
            cmocka_unit_test_setup_teardown(test_outage_rate_bounded, setup, teardown),
            cmocka_unit_test_setup_teardown(test_retry_after_honoured, setup, teardown),
            cmocka_unit_test_setup_teardown(test_retry_after_date_honoured, setup, teardown),
            cmocka_unit_test_setup_teardown(test_server_back_wakes, setup, teardown),
            cmocka_unit_test_setup_teardown(test_400_bisects, setup, teardown),
            cmocka_unit_test_setup_teardown(test_400_refusal_not_kept, setup, teardown),
            cmocka_unit_test_setup_teardown(test_short_ack_resends, setup, teardown),
            cmocka_unit_test_setup_teardown(test_transport_and_bad_ack, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
