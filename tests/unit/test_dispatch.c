/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the dispatch between a journal and the real executor running the real
 * testbackend plug-in: thousands of orders of interleaved assignments, pages taken in
 * while others run, one group commit in five lost (the server then delivers the lost
 * page again); at the target every order is applied once and each assignment's in the
 * order it was taken. Then: probes of orders in doubt and orders queued before a restart
 * go first; an orderly stop lets go of what was not started and marks nothing more; and
 * what was marked when the executor stopped taking jobs is QUEUED again in its place.
 *
 * The journal is the dispatch's callbacks (struct dispatch_ops): here a table of each
 * order's state, so that a test sees every mark and requeue; the journal itself is
 * tested against SQLite and PostgreSQL in test_journal.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>

#include "backend_loader.h"
#include "backend_test_util.h"
#include "dispatch.h"
#include "executor.h"
#include "timeutil.h"

#define ASSIGNMENTS 100
#define PER         30 /* orders per assignment */
#define ORDERS      (ASSIGNMENTS * PER)
#define PAGE        50
#define HELD_MAX    (4 * PAGE) /* take a page only below this, as the poller does */
#define BUDGET_MS   60000

enum state { ST_NONE, ST_QUEUED, ST_EXECUTING, ST_DONE };

struct fixture {
        struct event_base *base;
        struct backend *backend;
        char dir[64], state_file[128];
        struct ca_config_connector conn;
        struct ca_config_resource_type mapping;
        void *instance;
        struct executor *e;
        struct dispatch *d;
        struct event *commit_ev;
        int commit_due;

        /* Each order's state as the journal's reads see it (the open batch included),
         * and as it is on disk (the last good commit): a lost commit puts the first back
         * to the second. */
        enum state state[ORDERS], disk[ORDERS];
        unsigned char finished[ORDERS];
        int order_of_key[ORDERS]; /* unused slots: -1 */
        size_t next;              /* the next order a page takes */
        size_t batch_first;       /* the first order taken since the last good commit */
        unsigned commits, lost, requeues, starts_after_stop;
        int stopped;
        unsigned lose_one_in; /* commits lost: one in this many; 0: none */
        int feed;             /* take pages while there is room */
        size_t done;
        enum executor_op ops_seen[ORDERS]; /* as submitted */
        size_t seen[ORDERS];               /* in completion order, for the probe test */
        uint64_t rng;
};

static struct event_base *test_base;
static struct backend *test_backend;

static unsigned rnd(struct fixture *f, unsigned n)
{
        f->rng = f->rng * 6364136223846793005ULL + 1442695040888963407ULL;
        return (unsigned)((f->rng >> 33) % n);
}

/* Order i: assignment i % ASSIGNMENTS, its (i / ASSIGNMENTS)th. */
static struct ca_order *order_new(size_t i)
{
        char key[32], assignment[32];
        snprintf(key, sizeof(key), "o%05zu", i);
        snprintf(assignment, sizeof(assignment), "a%03zu", i % ASSIGNMENTS);
        json_t *obj = json_pack("{s:s, s:s, s:s, s:{s:s}, s:{s:s}}", "Id", key,
                                "AssignedResourceTypeId", assignment, "ChangeType", "Added",
                                "ResourceType", "Identifier", "TestType", "Changes", "login", key);
        struct ca_order *o = NULL;
        struct ca_error err = {0};
        assert_non_null(obj);
        if (order_from_json(obj, &o, &err) < 0)
                fail_msg("order_from_json: %s", err.msg);
        json_decref(obj);
        return o;
}

static size_t index_of(const struct ca_order *o)
{
        size_t i = 0;
        assert_int_equal(sscanf(o->key, "o%zu", &i), 1);
        assert_true(i < ORDERS);
        return i;
}

static int op_start(void *ctx, const struct ca_order *o)
{
        struct fixture *f = ctx;
        size_t i = index_of(o);
        if (f->stopped)
                f->starts_after_stop++;
        assert_int_equal(f->state[i], ST_QUEUED); /* never marked twice, never unknown */
        f->state[i] = ST_EXECUTING;
        return 0;
}

static int op_requeue(void *ctx, const struct ca_order *o)
{
        struct fixture *f = ctx;
        size_t i = index_of(o);
        assert_int_equal(f->state[i], ST_EXECUTING);
        f->state[i] = ST_QUEUED;
        f->requeues++;
        return 0;
}

static void op_touched(void *ctx)
{
        struct fixture *f = ctx;
        if (!f->commit_due) {
                f->commit_due = 1;
                event_active(f->commit_ev, 0, 0);
        }
}

static const struct dispatch_ops ops = {
    .start = op_start, .requeue = op_requeue, .touched = op_touched};

static void check_windows(struct fixture *f)
{
        for (size_t w = 0; w < executor_workers(f->e); w++) {
                size_t win = dispatch_window(f->d, w);
                assert_true(win >= DISPATCH_WINDOW_MIN && win <= DISPATCH_WINDOW_MAX);
        }
}

/* The next page, as the poller would take it: QUEUED in the open batch. */
static void take_page(struct fixture *f)
{
        for (size_t n = 0; n < PAGE && f->next < ORDERS; n++, f->next++) {
                f->state[f->next] = ST_QUEUED;
                assert_int_equal(dispatch_add(f->d, order_new(f->next), &f->mapping, DISPATCH_NEW),
                                 0);
        }
        op_touched(f); /* the page's own QUEUED writes */
        dispatch_pump(f->d);
}

/* The group commit: one in lose_one_in is lost. The orders the lost batch took in are
 * forgotten by the dispatch; the server delivers them again (next page), and what the
 * lost batch marked EXECUTING is QUEUED again on disk. */
static void on_commit(evutil_socket_t fd, short what, void *arg)
{
        struct fixture *f = arg;
        f->commit_due = 0;
        if (!f->stopped && f->lose_one_in && rnd(f, f->lose_one_in) == 0) {
                size_t dropped = dispatch_commit_failed(f->d);
                assert_int_equal(dropped, f->next - f->batch_first);
                memcpy(f->state, f->disk, sizeof(f->state));
                /* Results are kept by the agent and written again (to_finish). */
                for (size_t i = 0; i < ORDERS; i++)
                        if (f->finished[i])
                                f->state[i] = ST_DONE;
                f->next = f->batch_first;
                f->lost++;
                dispatch_pump(f->d); /* the durable ones are marked again */
        } else {
                f->commits++;
                memcpy(f->disk, f->state, sizeof(f->disk));
                f->batch_first = f->next;
                dispatch_committed(f->d);
        }
        check_windows(f);
        if (f->feed && !f->stopped && dispatch_held(f->d) < HELD_MAX && f->next < ORDERS)
                take_page(f);
}

static void on_done(void *ctx, struct executor_outcome *o)
{
        struct fixture *f = ctx;
        size_t i = index_of(o->order);
        if (o->rc != EXECUTOR_ABANDONED) {
                assert_int_equal(o->rc, CA_BACKEND_OK);
                if (o->op == EXECUTOR_EXECUTE) {
                        assert_int_equal(f->disk[i], ST_EXECUTING);
                        f->state[i] = ST_DONE;
                        f->finished[i] = 1;
                        op_touched(f);
                }
                f->ops_seen[f->done] = o->submitted;
                f->seen[f->done++] = i;
        }
        order_free(o->order);
        dispatch_pump(f->d);
}

static void on_status(void *ctx, int connected, const char *why)
{
        (void)ctx;
        (void)connected;
        (void)why;
}

static struct fixture *fixture_new(unsigned workers, unsigned queue_max)
{
        struct fixture *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        f->base = test_base;
        f->backend = test_backend;
        f->rng = 42;
        snprintf(f->dir, sizeof(f->dir), "/tmp/test_dispatch.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->state_file, sizeof(f->state_file), "%s/state", f->dir);
        FILE *target = fopen(f->state_file, "w"); /* an empty target: probes read it */
        assert_non_null(target);
        fclose(target);
        f->conn.name = strdup("test");
        f->conn.backend = strdup("testbackend");
        f->conn.max_parallel = workers;
        f->conn.order_timeout_ms = 60000;
        f->conn.max_in_flight = queue_max;
        settings_add(&f->conn.settings, "state_file", f->state_file);
        f->mapping.identifier = strdup("TestType");
        f->mapping.connector = strdup("test");
        struct ca_backend_error berr = {0};
        struct ca_error err = {0};
        assert_int_equal(backend_ops(f->backend)
                             ->instance_new(backend_host(), backend_settings(&f->conn.settings),
                                            &f->instance, &berr),
                         CA_BACKEND_OK);
        if (executor_new(f->base, &f->conn, f->backend, f->instance, on_done, on_status, f, &f->e,
                         &err) < 0)
                fail_msg("executor_new: %s", err.msg);
        if (dispatch_new(f->e, &ops, f, &f->d, &err) < 0)
                fail_msg("dispatch_new: %s", err.msg);
        f->commit_ev = event_new(f->base, -1, 0, on_commit, f);
        assert_non_null(f->commit_ev);
        return f;
}

static void fixture_free(struct fixture *f)
{
        executor_drain(f->e);
        while (!executor_idle(f->e))
                event_base_loop(f->base, EVLOOP_ONCE);
        dispatch_free(f->d);
        executor_free(f->e);
        event_free(f->commit_ev);
        backend_ops(f->backend)->instance_free(f->instance);
        for (size_t i = 0; i < f->conn.settings.count; i++) {
                free(f->conn.settings.items[i].key);
                free(f->conn.settings.items[i].value);
        }
        free(f->conn.settings.items);
        free(f->conn.name);
        free(f->conn.backend);
        free(f->mapping.identifier);
        free(f->mapping.connector);
        unlink(f->state_file);
        rmdir(f->dir);
        free(f);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
        (void)fd;
        (void)what;
        (void)arg;
}

static void run_until_done(struct fixture *f, size_t n)
{
        struct timeval tv = {0, 5000};
        struct event *t = event_new(f->base, -1, EV_PERSIST, tick, NULL);
        uint64_t deadline = time_mono_ms() + BUDGET_MS;
        event_add(t, &tv);
        while (f->done < n && time_mono_ms() < deadline)
                event_base_loop(f->base, EVLOOP_ONCE);
        event_free(t);
        assert_int_equal(f->done, n);
}

/* The target's record: each order once, each assignment's in its order. */
static void check_target(struct fixture *f, size_t n)
{
        FILE *in = fopen(f->state_file, "r");
        char line[128];
        size_t lines = 0;
        int last[ASSIGNMENTS];
        unsigned char applied[ORDERS] = {0};
        for (size_t a = 0; a < ASSIGNMENTS; a++)
                last[a] = -1;
        assert_non_null(in);
        while (fgets(line, sizeof(line), in)) {
                size_t i = 0;
                if (line[0] == '\n')
                        continue; /* testbackend ends a record it finds torn: not one */
                if (sscanf(line, "o%zu", &i) != 1 || i >= ORDERS)
                        fail_msg("the target holds %s", line);
                if (applied[i]++)
                        fail_msg("o%05zu applied twice", i);
                int seq = (int)(i / ASSIGNMENTS);
                if (seq <= last[i % ASSIGNMENTS])
                        fail_msg("o%05zu applied after a later order of its assignment", i);
                last[i % ASSIGNMENTS] = seq;
                lines++;
        }
        fclose(in);
        assert_int_equal(lines, n);
}

static void test_thousands_with_lost_commits(void **state)
{
        (void)state;
        struct fixture *f = fixture_new(4, 1000);
        f->lose_one_in = 5;
        f->feed = 1;
        take_page(f);
        run_until_done(f, ORDERS);
        check_target(f, ORDERS);
        for (size_t i = 0; i < ORDERS; i++)
                assert_int_equal(f->state[i], ST_DONE);
        assert_int_equal(dispatch_held(f->d), 0);
        /* The fault happened, many times. */
        assert_true(f->lost >= 20);
        assert_true(f->commits >= 40);
        fixture_free(f);
}

/* Probes of orders in doubt, then orders queued before the restart, then new ones: an
 * assignment's probe and its queued order run before its new one, in that order. */
static void test_in_doubt_and_queued_first(void **state)
{
        (void)state;
        struct fixture *f = fixture_new(2, 64);
        for (size_t i = 0; i < 3 * ASSIGNMENTS; i++) {
                enum dispatch_origin origin = i < ASSIGNMENTS       ? DISPATCH_IN_DOUBT
                                              : i < 2 * ASSIGNMENTS ? DISPATCH_QUEUED
                                                                    : DISPATCH_NEW;
                f->state[i] = origin == DISPATCH_IN_DOUBT ? ST_EXECUTING : ST_QUEUED;
                if (origin != DISPATCH_NEW)
                        f->disk[i] = f->state[i];
                assert_int_equal(dispatch_add(f->d, order_new(i), &f->mapping, origin), 0);
        }
        f->next = f->batch_first = 3 * ASSIGNMENTS;
        op_touched(f); /* the new ones' QUEUED writes */
        dispatch_pump(f->d);
        run_until_done(f, 3 * ASSIGNMENTS);
        size_t at[3 * ASSIGNMENTS];
        for (size_t n = 0; n < f->done; n++) {
                at[f->seen[n]] = n;
                assert_int_equal(f->ops_seen[n],
                                 f->seen[n] < ASSIGNMENTS ? EXECUTOR_PROBE : EXECUTOR_EXECUTE);
        }
        for (size_t a = 0; a < ASSIGNMENTS; a++) {
                assert_true(at[a] < at[a + ASSIGNMENTS]);
                assert_true(at[a + ASSIGNMENTS] < at[a + 2 * ASSIGNMENTS]);
        }
        fixture_free(f);
}

/* An orderly stop: what is not marked is let go (QUEUED on disk for the next start), what
 * is marked follows its commit, and nothing is marked after. */
static void test_release_marks_nothing_more(void **state)
{
        (void)state;
        struct fixture *f = fixture_new(2, 64);
        for (size_t i = 0; i < 400; i++) {
                f->state[i] = f->disk[i] = ST_QUEUED;
                assert_int_equal(dispatch_add(f->d, order_new(i), &f->mapping, DISPATCH_QUEUED), 0);
        }
        dispatch_pump(f->d); /* marks a window per worker, for the next commit */
        size_t marked = 0;
        for (size_t i = 0; i < 400; i++)
                marked += f->state[i] == ST_EXECUTING;
        assert_true(marked >= 2 * DISPATCH_WINDOW_MIN && marked < 400);
        f->stopped = 1;
        size_t released = dispatch_release(f->d);
        assert_int_equal(released, 400 - marked);
        assert_int_equal(dispatch_held(f->d), marked);
        run_until_done(f, marked);
        assert_int_equal(f->starts_after_stop, 0);
        assert_int_equal(dispatch_held(f->d), 0);
        check_target(f, marked);
        fixture_free(f);
}

/* A stop while orders are marked for the next commit: the draining executor refuses
 * them, and each is QUEUED again, in its place, for the next start; none runs. */
static void test_stop_requeues_what_was_marked(void **state)
{
        (void)state;
        struct fixture *f = fixture_new(2, 64);
        for (size_t i = 0; i < 400; i++) {
                f->state[i] = f->disk[i] = ST_QUEUED;
                assert_int_equal(dispatch_add(f->d, order_new(i), &f->mapping, DISPATCH_QUEUED), 0);
        }
        dispatch_pump(f->d);
        size_t marked = 0;
        for (size_t i = 0; i < 400; i++)
                marked += f->state[i] == ST_EXECUTING;
        assert_true(marked > 0);
        f->stopped = 1;
        assert_int_equal(dispatch_release(f->d), 400 - marked);
        executor_drain(f->e);
        uint64_t deadline = time_mono_ms() + BUDGET_MS;
        while ((f->commit_due || dispatch_held(f->d)) && time_mono_ms() < deadline)
                event_base_loop(f->base, EVLOOP_ONCE);
        assert_int_equal(dispatch_held(f->d), 0);
        assert_int_equal(f->requeues, marked);
        for (size_t i = 0; i < 400; i++)
                assert_int_equal(f->state[i], ST_QUEUED);
        assert_int_equal(f->done, 0);
        check_target(f, 0);
        fixture_free(f);
}

static int group_setup(void **state)
{
        (void)state;
        if (evthread_use_pthreads() < 0 || !(test_base = event_base_new()))
                return -1;
        test_backend = load_backend("testbackend");
        return 0;
}

static int group_teardown(void **state)
{
        (void)state;
        backend_unload(test_backend);
        event_base_free(test_base);
        libevent_global_shutdown();
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_thousands_with_lost_commits),
            cmocka_unit_test(test_in_doubt_and_queued_first),
            cmocka_unit_test(test_release_marks_nothing_more),
            cmocka_unit_test(test_stop_requeues_what_was_marked),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
