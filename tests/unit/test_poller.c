/* SPDX-License-Identifier: Apache-2.0 */
/* The poller stage on a virtual clock with scripted server answers: backoff and
 * Retry-After hold on follow-up page fetches too (at 3aee884 a finished order re-armed
 * the poll at 0: "next try in 2094 ms" was followed by a request 53 ms later, and an
 * outage answering 500 drew 20 requests per second), back-pressure pauses and a kick
 * resumes at once, paging follows the ContinuationToken, 403 is refused slowly, and
 * --once gives up after its tries. No sleeps: time is what the test says it is. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline.h"
#include "poller.h"

#define MAX_SENDS 4096

struct world {
        uint64_t now;
        int armed;
        uint64_t fire_at;
        int in_flight;
        poller_answer_fn answer;
        char path[70000];
        size_t sends;
        uint64_t send_at[MAX_SENDS];
        int room;
        size_t pages, orders;
        char said[512];
        int server_ok, server_failed, check_done;
        struct poller *p;
        struct pipeline_env env;
        struct ca_config cfg;
        struct ca_config_connector conn;
};

static struct world *W;

static int op_has_room(void *ctx)
{
        return ((struct world *)ctx)->room;
}

static void op_take(void *ctx, struct ca_order_page *page)
{
        struct world *w = ctx;
        w->pages++;
        w->orders += page->count;
}

static void op_said(void *ctx, const char *error)
{
        struct world *w = ctx;
        snprintf(w->said, sizeof(w->said), "%s", error ? error : "");
}

static int op_send(void *ctx, const char *path, struct poller *p, poller_answer_fn answer)
{
        struct world *w = ctx;
        (void)p;
        assert_false(w->in_flight); /* one GET at a time */
        w->in_flight = 1;
        w->answer = answer;
        snprintf(w->path, sizeof(w->path), "%s", path);
        if (w->sends < MAX_SENDS)
                w->send_at[w->sends] = w->now;
        w->sends++;
        return 0;
}

static void op_cancel(void *ctx)
{
        struct world *w = ctx;
        w->in_flight = 0;
}

static void op_arm(void *ctx, uint64_t delay_ms)
{
        struct world *w = ctx;
        w->armed = 1;
        w->fire_at = w->now + delay_ms;
}

static void op_disarm(void *ctx)
{
        ((struct world *)ctx)->armed = 0;
}

static uint64_t op_now_ms(void *ctx)
{
        return ((struct world *)ctx)->now;
}

static const struct poller_ops ops = {
    .has_room = op_has_room,
    .take = op_take,
    .said = op_said,
    .send = op_send,
    .cancel = op_cancel,
    .arm = op_arm,
    .disarm = op_disarm,
    .now_ms = op_now_ms,
};

static void env_journal_touched(void *ctx)
{
        (void)ctx;
}
static void env_journal_error(void *ctx, const struct ca_error *err)
{
        (void)ctx;
        (void)err;
}
static int env_journal_failing(void *ctx)
{
        (void)ctx;
        return 0;
}
static void env_server_ok(void *ctx)
{
        ((struct world *)ctx)->server_ok++;
}
static void env_server_failed(void *ctx, const char *why)
{
        (void)why;
        ((struct world *)ctx)->server_failed++;
}
static void env_status_changed(void *ctx)
{
        (void)ctx;
}
static void env_check_done(void *ctx)
{
        ((struct world *)ctx)->check_done++;
}

static const struct pipeline_ops env_ops = {
    .journal_touched = env_journal_touched,
    .journal_error = env_journal_error,
    .journal_failing = env_journal_failing,
    .server_ok = env_server_ok,
    .server_failed = env_server_failed,
    .status_changed = env_status_changed,
    .check_done = env_check_done,
};

static int setup_mode(void **state, enum agent_mode mode)
{
        struct world *w = calloc(1, sizeof(*w));
        assert_non_null(w);
        w->room = 1;
        w->cfg.server.page_size = 100;
        w->conn.name = "c1";
        w->conn.poll_interval_ms = 30000;
        w->env.cfg = &w->cfg;
        w->env.mode = mode;
        w->env.phase = AGENT_RUNNING;
        w->env.ops = &env_ops;
        w->env.ctx = w;
        struct ca_error err = {0};
        assert_int_equal(poller_new(&w->env, "c1", &w->conn, &ops, w, &w->p, &err), 0);
        W = w;
        *state = w;
        return 0;
}

static int setup(void **state)
{
        return setup_mode(state, AGENT_DAEMON);
}

static int setup_once(void **state)
{
        return setup_mode(state, AGENT_ONCE);
}

static int teardown(void **state)
{
        struct world *w = *state;
        poller_free(w->p);
        free(w);
        return 0;
}

/* Lets virtual time pass, firing the timer when it is due. */
static void advance(struct world *w, uint64_t ms)
{
        uint64_t until = w->now + ms;
        while (w->armed && w->fire_at <= until) {
                w->now = w->fire_at;
                w->armed = 0;
                poller_timer_fired(w->p);
        }
        w->now = until;
}

static void answer(struct world *w, long status, const char *body, const char *retry_after)
{
        assert_true(w->in_flight);
        struct http_response r = {0};
        r.status = status;
        r.body = body ? body : "";
        r.body_len = body ? strlen(body) : 0;
        r.retry_after = retry_after;
        r.retry_after_s = retry_after ? atoll(retry_after) : -1;
        r.error = status ? NULL : "Connection reset by peer";
        r.transport_error = status ? 0 : 56;
        w->in_flight = 0;
        w->answer(w->p, &r);
}

static char *page(size_t orders, const char *token)
{
        char *s = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&s, &len);
        assert_non_null(f);
        fprintf(f, "{\"ProvisioningOrdersList\": [");
        for (size_t i = 0; i < orders; i++)
                fprintf(f,
                        "%s{\"Id\": \"o%zu\", \"AssignedResourceTypeId\": \"a%zu\", "
                        "\"ChangeType\": \"Added\", \"ResourceType\": {\"Identifier\": "
                        "\"User\"}, \"Changes\": {}}",
                        i ? ", " : "", i, i);
        fprintf(f, "]");
        if (token)
                fprintf(f, ", \"ContinuationToken\": \"%s\"", token);
        fprintf(f, "}");
        fclose(f);
        return s;
}

static void start(struct world *w)
{
        poller_start(w->p, 0);
        advance(w, 0);
        assert_int_equal(w->sends, 1);
}

static void test_pages_follow_the_token_at_once(void **state)
{
        struct world *w = *state;
        start(w);
        char *body = page(3, "next-1");
        answer(w, 200, body, NULL);
        free(body);
        assert_int_equal(w->orders, 3);
        advance(w, 0); /* a full page with a token: the next one now */
        assert_int_equal(w->sends, 2);
        assert_non_null(strstr(w->path, "ContinuationToken=next-1"));
        body = page(1, NULL);
        answer(w, 200, body, NULL);
        free(body);
        /* The last page: the next poll waits half to all of the interval. */
        advance(w, 14999);
        assert_int_equal(w->sends, 2);
        advance(w, 15001);
        assert_int_equal(w->sends, 3);
        assert_null(strstr(w->path, "ContinuationToken"));
}

/* At 3aee884: "next try in 2094 ms", then the next page 53 ms later. */
static void test_retry_after_holds_on_a_follow_up_page(void **state)
{
        struct world *w = *state;
        start(w);
        char *body = page(2, "next-1");
        answer(w, 200, body, NULL);
        free(body);
        advance(w, 0);
        assert_int_equal(w->sends, 2);
        answer(w, 429, "", "2");
        uint64_t answered = w->now;
        /* Orders finish, room comes back: none of it cuts the server's wait short. */
        for (int i = 0; i < 40; i++) {
                advance(w, 50);
                poller_kick(w->p);
        }
        assert_int_equal(w->sends, 2);
        advance(w, 400); /* 2 s, plus at most 10 % + 100 ms of jitter */
        assert_int_equal(w->sends, 3);
        assert_true(w->send_at[2] - answered >= 2000);
        assert_true(w->send_at[2] - answered <= 2300);
        /* Paging resumes where it stopped. */
        assert_non_null(strstr(w->path, "ContinuationToken=next-1"));
        assert_int_equal(w->server_failed, 1);
}

/* At 3aee884: 20 requests per second through a 40 s outage answering 500. */
static void test_outage_backs_off_whatever_kicks(void **state)
{
        struct world *w = *state;
        start(w);
        char *body = page(2, "next-1");
        answer(w, 200, body, NULL);
        free(body);
        advance(w, 0);
        uint64_t outage_end = w->now + 40000;
        while (w->now < outage_end) {
                if (w->in_flight)
                        answer(w, w->sends % 3 ? 500 : 0, "", NULL); /* 500s and resets */
                advance(w, 50);
                poller_kick(w->p); /* a finished order, every 50 ms */
        }
        /* 1 s doubling with full jitter: the first three waits are at most 1, 2 and 4 s,
         * and fifteen tries would need the waits up to 2^14 s to stay under 40 s. */
        size_t during = w->sends - 1;
        assert_true(during >= 3);
        assert_true(during <= 15);
        assert_string_not_equal(w->said, "");
        /* The server is back: the next answer resets the backoff and clears the error. */
        if (!w->in_flight)
                advance(w, 5 * 60 * 1000);
        body = page(1, NULL);
        answer(w, 200, body, NULL);
        free(body);
        struct poller_stats st;
        poller_stats(w->p, &st);
        assert_int_equal(st.backoff_attempts, 0);
}

/* After an outage the poller may sit in a backoff of minutes; another exchange that
 * succeeds (a heartbeat, a results PUT) cuts it to a few seconds, but never the
 * server's own Retry-After, and never to a flood while only ProvisioningData fails. */
static void test_server_back_cuts_a_long_backoff(void **state)
{
        struct world *w = *state;
        start(w);
        for (int i = 0; i < 9; i++) { /* 9 failures: the next wait may reach 5 min */
                answer(w, 500, "", NULL);
                while (!w->in_flight)
                        advance(w, 1000);
        }
        answer(w, 500, "", NULL);
        size_t sends = w->sends;
        uint64_t back = w->now;
        poller_server_back(w->p);
        advance(w, 5000);
        if (w->sends == sends) /* the drawn wait was already short: it stands */
                assert_true(w->fire_at - back <= 5000);
        assert_int_equal(w->sends, sends + 1);
        /* Still failing, a heartbeat every second says the server answers: at most one
         * ProvisioningData every 2.5 s. */
        uint64_t t0 = w->now;
        size_t s0 = w->sends;
        for (int i = 0; i < 60; i++) {
                if (w->in_flight)
                        answer(w, 500, "", NULL);
                poller_server_back(w->p);
                advance(w, 1000);
        }
        assert_true(w->sends - s0 <= (w->now - t0) / 2500 + 1);
        /* The server's own wait is never cut. */
        if (!w->in_flight)
                advance(w, 10 * 60 * 1000);
        answer(w, 429, "", "120");
        sends = w->sends;
        poller_server_back(w->p);
        advance(w, 119000);
        assert_int_equal(w->sends, sends);
        advance(w, 30000);
        assert_int_equal(w->sends, sends + 1);
}

static void test_back_pressure_pauses_and_a_kick_resumes(void **state)
{
        struct world *w = *state;
        w->room = 0;
        poller_start(w->p, 0);
        advance(w, 10000);
        assert_int_equal(w->sends, 0); /* rechecked every second, never sent */
        w->room = 1;
        poller_kick(w->p);
        advance(w, 0);
        assert_int_equal(w->sends, 1);
        /* A kick while a GET is in flight or the interval runs does nothing. */
        answer(w, 204, NULL, NULL);
        poller_kick(w->p);
        advance(w, 1000);
        assert_int_equal(w->sends, 1);
}

static void test_refused_connector_waits_minutes(void **state)
{
        struct world *w = *state;
        start(w);
        answer(w, 403, "", NULL);
        assert_true(poller_refused(w->p));
        assert_non_null(strstr(w->said, "refuses connector c1"));
        assert_int_equal(w->server_ok, 1); /* the server answered: it is this connector */
        advance(w, 149999);
        assert_int_equal(w->sends, 1);
        advance(w, 150001);
        assert_int_equal(w->sends, 2);
        answer(w, 204, NULL, NULL);
        assert_false(poller_refused(w->p));
        assert_string_equal(w->said, "");
}

static void test_garbage_page_is_refused_and_retried(void **state)
{
        struct world *w = *state;
        start(w);
        answer(w, 200, "{\"ProvisioningOrdersList\": [", NULL);
        assert_int_equal(w->orders, 0);
        assert_non_null(strstr(w->said, "bad ProvisioningData answer"));
        advance(w, 999);
        assert_true(w->sends <= 2);
        advance(w, 1);
        assert_int_equal(w->sends, 2);
}

static void test_once_gives_up_after_three_tries(void **state)
{
        struct world *w = *state;
        start(w);
        for (int i = 0; i < 3 && w->in_flight; i++) {
                answer(w, 503, "", NULL);
                advance(w, 5 * 60 * 1000);
        }
        assert_int_equal(w->sends, 3);
        assert_true(poller_cycle_done(w->p));
        assert_int_equal(w->env.exit_code, EXIT_INCOMPLETE);
        assert_int_equal(w->check_done, 1);
}

static void test_once_cycle_ends_after_the_last_page(void **state)
{
        struct world *w = *state;
        start(w);
        char *body = page(2, "t");
        answer(w, 200, body, NULL);
        free(body);
        assert_false(poller_cycle_done(w->p));
        advance(w, 0);
        body = page(1, NULL);
        answer(w, 200, body, NULL);
        free(body);
        assert_true(poller_cycle_done(w->p));
        assert_int_equal(w->check_done, 1);
        advance(w, 60000);
        assert_int_equal(w->sends, 2); /* nothing after the cycle */
}

/* A long token goes whole, or is refused with paging starting over: never cut short. */
static void test_long_token_never_cut(void **state)
{
        struct world *w = *state;
        start(w);
        char token[8200];
        memset(token, 'k', sizeof(token) - 1);
        token[sizeof(token) - 1] = '\0';
        char *body = page(1, token);
        answer(w, 200, body, NULL);
        free(body);
        advance(w, 0);
        assert_int_equal(w->sends, 2);
        /* Far below the longest token accepted (API_CONTINUATION_MAX): it goes back whole. */
        char *at = strstr(w->path, "ContinuationToken=");
        assert_non_null(at);
        assert_int_equal(strspn(at + strlen("ContinuationToken="), "k"), sizeof(token) - 1);
        assert_null(strstr(w->said, "paging starts over"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_pages_follow_the_token_at_once, setup, teardown),
            cmocka_unit_test_setup_teardown(test_retry_after_holds_on_a_follow_up_page, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_outage_backs_off_whatever_kicks, setup, teardown),
            cmocka_unit_test_setup_teardown(test_server_back_cuts_a_long_backoff, setup, teardown),
            cmocka_unit_test_setup_teardown(test_back_pressure_pauses_and_a_kick_resumes, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_refused_connector_waits_minutes, setup, teardown),
            cmocka_unit_test_setup_teardown(test_garbage_page_is_refused_and_retried, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_once_gives_up_after_three_tries, setup_once,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_once_cycle_ends_after_the_last_page, setup_once,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_long_token_never_cut, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
