/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the executor against the real testbackend plug-in, with a real event loop:
 * per-resource ordering, parallelism, the circuit breaker, drain, probe, free with work
 * queued, session failures and the stall report. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>

#include "backend_loader.h"
#include "backend_test_util.h"
#include "executor.h"
#include "timeutil.h"

#define MAX_SEEN    512
#define MAX_STATUS  32
#define LOOP_BUDGET 20000 /* ms: any wait longer than this is a failure */

struct seen {
        char key[64];
        int rc;
        enum executor_op op;
        enum executor_op submitted;
        enum ca_backend_probe probe;
        int result_set;
        enum ca_backend_state state;
        char message[256];
        char rid[128];
        char error[256];
};

struct status_change {
        int connected;
        char why[256];
};

/* One connector under test: its settings, plug-in instance and executor. */
struct fixture {
        struct event_base *base;
        struct backend *backend;
        char dir[64];
        char state_file[128];
        char trace_file[128];
        char down_file[128];
        struct ca_config_connector conn;
        struct ca_config_resource_type mapping;
        void *instance;
        struct executor *e;
        struct seen seen[MAX_SEEN];
        size_t nseen;
        struct status_change status[MAX_STATUS];
        size_t nstatus;
};

static struct event_base *test_base;
static struct backend *test_backend;

static void on_done(void *ctx, struct executor_outcome *o)
{
        struct fixture *f = ctx;
        struct seen *s;

        assert_non_null(o->order);
        assert_true(f->nseen < MAX_SEEN);
        s = &f->seen[f->nseen++];
        snprintf(s->key, sizeof(s->key), "%s", o->order->key);
        s->rc = o->rc;
        s->op = o->op;
        s->submitted = o->submitted;
        s->probe = o->probe;
        s->result_set = o->result.set;
        s->state = o->result.state;
        snprintf(s->message, sizeof(s->message), "%s", o->result.message);
        snprintf(s->rid, sizeof(s->rid), "%s", o->result.resource_identifier);
        snprintf(s->error, sizeof(s->error), "%s", o->error);
        assert_ptr_equal(o->mapping, &f->mapping);
        order_free(o->order);
}

static void on_status(void *ctx, int connected, const char *why)
{
        struct fixture *f = ctx;

        assert_true(f->nstatus < MAX_STATUS);
        f->status[f->nstatus].connected = connected;
        snprintf(f->status[f->nstatus].why, sizeof(f->status[0].why), "%s", why ? why : "");
        f->nstatus++;
}

/* Builds the connector (extra: NULL-terminated key, value pairs) without starting it. */
static struct fixture *fixture_new(unsigned max_parallel, ...)
{
        struct fixture *f = calloc(1, sizeof(*f));
        const char *k;
        va_list ap;

        assert_non_null(f);
        f->base = test_base;
        f->backend = test_backend;
        snprintf(f->dir, sizeof(f->dir), "/tmp/test_executor.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->state_file, sizeof(f->state_file), "%s/state", f->dir);
        snprintf(f->trace_file, sizeof(f->trace_file), "%s/trace", f->dir);
        snprintf(f->down_file, sizeof(f->down_file), "%s/down", f->dir);
        f->conn.name = strdup("test");
        f->conn.backend = strdup("testbackend");
        f->conn.max_parallel = max_parallel;
        f->conn.order_timeout_ms = 60000;
        f->conn.max_in_flight = 1000;
        settings_add(&f->conn.settings, "state_file", f->state_file);
        settings_add(&f->conn.settings, "trace_file", f->trace_file);
        settings_add(&f->conn.settings, "down_file", f->down_file);
        va_start(ap, max_parallel);
        while ((k = va_arg(ap, const char *)))
                settings_add(&f->conn.settings, k, va_arg(ap, const char *));
        va_end(ap);
        f->mapping.identifier = strdup("TestType");
        f->mapping.connector = strdup("test");
        return f;
}

static void fixture_start(struct fixture *f, uint64_t breaker_base_ms)
{
        struct ca_backend_error berr;
        struct ca_error err = {0};
        int rc;

        memset(&berr, 0, sizeof(berr));
        rc = backend_ops(f->backend)
                 ->instance_new(backend_host(), backend_settings(&f->conn.settings), &f->instance,
                                &berr);
        assert_int_equal(rc, CA_BACKEND_OK);
        rc = executor_new(f->base, &f->conn, f->backend, f->instance, on_done, on_status, f, &f->e,
                          &err);
        if (rc < 0)
                fail_msg("executor_new: %s", err.msg);
        executor_set_breaker_backoff(f->e, breaker_base_ms, breaker_base_ms * 4);
}

static void rm_rf(const char *dir)
{
        const char *names[] = {"state", "trace", "down"};
        char path[256];

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                unlink(path);
        }
        rmdir(dir);
}

static void fixture_free(struct fixture *f)
{
        executor_free(f->e);
        backend_ops(f->backend)->instance_free(f->instance);
        settings_clear(&f->conn.settings);
        settings_clear(&f->mapping.settings);
        free(f->conn.name);
        free(f->conn.backend);
        free(f->mapping.identifier);
        free(f->mapping.connector);
        rm_rf(f->dir);
        free(f);
}

/* An order with Id key for assignment; outcome is Arguments.test_outcome or NULL. */
static struct ca_order *make_order(const char *key, const char *assignment, const char *outcome)
{
        struct ca_order *o = NULL;
        struct ca_error err = {0};
        json_t *obj;

        obj = json_pack("{s:s, s:s, s:s, s:{s:s}, s:{s:s}, s:o}", "Id", key,
                        "AssignedResourceTypeId", assignment, "ChangeType", "Added", "ResourceType",
                        "Identifier", "TestType", "Changes", "login", key, "Arguments",
                        outcome ? json_pack("{s:s}", "test_outcome", outcome) : json_object());
        assert_non_null(obj);
        if (order_from_json(obj, &o, &err) < 0)
                fail_msg("order_from_json: %s", err.msg);
        json_decref(obj);
        assert_null(o->invalid);
        return o;
}

static void submit(struct fixture *f, const char *key, const char *assignment, const char *outcome,
                   enum executor_op op)
{
        struct ca_order *o = make_order(key, assignment, outcome);

        assert_int_equal(executor_submit(f->e, o, &f->mapping, op), 0);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
}

typedef int (*cond_fn)(struct fixture *f);

/* Runs the loop until cond holds or budget_ms pass; returns cond. */
static int run_until(struct fixture *f, cond_fn cond, uint64_t budget_ms)
{
        struct timeval tv = {0, 5000};
        struct event *tick = event_new(f->base, -1, EV_PERSIST, on_tick, NULL);
        uint64_t deadline = time_mono_ms() + budget_ms;
        int ok;

        assert_non_null(tick);
        event_add(tick, &tv);
        while (!(ok = cond(f)) && time_mono_ms() < deadline)
                event_base_loop(f->base, EVLOOP_ONCE);
        event_free(tick);
        return ok;
}

static int never(struct fixture *f)
{
        return 0;
}

static void run_for(struct fixture *f, uint64_t ms)
{
        run_until(f, never, ms);
}

static int is_idle(struct fixture *f)
{
        return executor_idle(f->e);
}

static int status_seen(struct fixture *f)
{
        return f->nstatus > 0;
}

static char *read_file(const char *path)
{
        FILE *fp = fopen(path, "re");
        char *buf;
        long n;

        if (!fp)
                return strdup("");
        fseek(fp, 0, SEEK_END);
        n = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        buf = calloc(1, (size_t)n + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
        fclose(fp);
        return buf;
}

/* Number of state_file lines recording key. */
static int state_count(struct fixture *f, const char *key)
{
        char *text = read_file(f->state_file), *line, *save = NULL;
        size_t klen = strlen(key);
        int n = 0;

        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
                        n++;
        free(text);
        return n;
}

static int count_lines(const char *path)
{
        char *text = read_file(path);
        int n = 0;

        for (char *p = text; *p; p++)
                n += *p == '\n';
        free(text);
        return n;
}

/* The first job has started (the back-end traced it), not merely a session open. */
static int started(struct fixture *f)
{
        char *text = read_file(f->trace_file);
        int ok = strncmp(text, "start ", 6) == 0;

        free(text);
        return ok && executor_stalled_ms(f->e, time_mono_ms()) > 0;
}

static const struct seen *seen_find(struct fixture *f, const char *key)
{
        for (size_t i = 0; i < f->nseen; i++)
                if (strcmp(f->seen[i].key, key) == 0)
                        return &f->seen[i];
        return NULL;
}

static void seen_once_each(struct fixture *f, size_t n)
{
        assert_int_equal(f->nseen, n);
        for (size_t i = 0; i < f->nseen; i++)
                for (size_t j = i + 1; j < f->nseen; j++)
                        assert_string_not_equal(f->seen[i].key, f->seen[j].key);
}

/* ---------------------------------------------------------------------------------- */

#define ORD_RESOURCES 23
#define ORD_PER       8

static size_t target_count;
static int seen_target(struct fixture *f)
{
        return f->nseen >= target_count;
}

/* Same assignment: strictly in submission order, never two at once; all executed. */
static void test_ordering_per_resource(void **state)
{
        struct fixture *f = fixture_new(4, NULL);
        int last_seq[ORD_RESOURCES], open_run[ORD_RESOURCES];
        char key[64], a[32], *text, *line, *save = NULL;

        fixture_start(f, 20);
        /* Each resource's first order is slow: anything that spread one resource over
         * several workers would run the next ones before (and during) it. */
        for (int r = 0; r < ORD_RESOURCES; r++)
                for (int s = 0; s < ORD_PER; s++) {
                        snprintf(key, sizeof(key), "r%02d-%02d", r, s);
                        snprintf(a, sizeof(a), "r%02d", r);
                        submit(f, key, a,
                               s == 0        ? "sleep:20"
                               : (r + s) % 3 ? NULL
                                             : "sleep:2",
                               EXECUTOR_EXECUTE);
                }
        assert_int_equal(executor_pending(f->e), ORD_RESOURCES * ORD_PER);
        target_count = ORD_RESOURCES * ORD_PER;
        assert_true(run_until(f, seen_target, LOOP_BUDGET));
        assert_true(executor_idle(f->e));
        seen_once_each(f, ORD_RESOURCES * ORD_PER);

        /* Completions per resource arrive in submission order. */
        for (int r = 0; r < ORD_RESOURCES; r++)
                last_seq[r] = -1;
        for (size_t i = 0; i < f->nseen; i++) {
                int r, s;

                assert_int_equal(f->seen[i].rc, CA_BACKEND_OK);
                assert_int_equal(f->seen[i].state, CA_BACKEND_EXECUTED);
                snprintf(key, sizeof(key), "test:%s", f->seen[i].key);
                assert_string_equal(f->seen[i].rid, key);
                assert_int_equal(sscanf(f->seen[i].key, "r%d-%d", &r, &s), 2);
                assert_int_equal(s, last_seq[r] + 1);
                last_seq[r] = s;
        }

        /* The target saw them in order too, each exactly once. */
        assert_int_equal(count_lines(f->state_file), ORD_RESOURCES * ORD_PER);
        for (int r = 0; r < ORD_RESOURCES; r++)
                last_seq[r] = -1;
        text = read_file(f->state_file);
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                int r, s;
                char change[16];

                assert_int_equal(sscanf(line, "r%d-%d %15s", &r, &s, change), 3);
                assert_string_equal(change, "Added");
                assert_int_equal(s, last_seq[r] + 1);
                last_seq[r] = s;
        }
        free(text);

        /* Never two calls of one resource at once: start and end alternate. */
        for (int r = 0; r < ORD_RESOURCES; r++)
                open_run[r] = 0;
        save = NULL;
        text = read_file(f->trace_file);
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char what[8];
                int r, r2, s;

                assert_int_equal(sscanf(line, "%7s r%d r%d-%d", what, &r, &r2, &s), 4);
                assert_int_equal(r, r2);
                if (strcmp(what, "start") == 0) {
                        assert_int_equal(open_run[r], 0);
                        open_run[r] = 1;
                } else {
                        assert_int_equal(open_run[r], 1);
                        open_run[r] = 0;
                }
        }
        free(text);
        fixture_free(f);
}

#define PAR_ORDERS   16
#define PAR_DELAY_MS 100

/* Different resources run in parallel: well under the serial time, and seen overlapping. */
static void test_parallel_across_resources(void **state)
{
        struct fixture *f = fixture_new(4, "delay", "100ms", NULL);
        char key[32], *text, *line, *save = NULL;
        int running = 0, max_running = 0;
        uint64_t t0, elapsed;

        fixture_start(f, 20);
        t0 = time_mono_ms();
        for (int i = 0; i < PAR_ORDERS; i++) {
                snprintf(key, sizeof(key), "p%02d", i);
                submit(f, key, key, NULL, EXECUTOR_EXECUTE);
        }
        target_count = PAR_ORDERS;
        assert_true(run_until(f, seen_target, LOOP_BUDGET));
        elapsed = time_mono_ms() - t0;
        seen_once_each(f, PAR_ORDERS);
        print_message("parallel: %llu ms for %d x %d ms\n", (unsigned long long)elapsed, PAR_ORDERS,
                      PAR_DELAY_MS);
        /* Serial would take 1600 ms; four workers take ~400-700 depending on hashing. */
        assert_true(elapsed * 10 < (uint64_t)PAR_ORDERS * PAR_DELAY_MS * 7);

        text = read_file(f->trace_file);
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                running += strncmp(line, "start", 5) == 0 ? 1 : -1;
                if (running > max_running)
                        max_running = running;
        }
        free(text);
        assert_int_equal(running, 0);
        assert_true(max_running >= 2);
        assert_true(max_running <= 4);
        fixture_free(f);
}

static int all_breaker_done(struct fixture *f)
{
        return f->nseen >= target_count && f->nstatus >= 2;
}

/* The target goes down: the breaker opens (once), orders wait without failing, another
 * connector goes on; it comes back: the breaker closes and every order is done once. */
static void test_breaker(void **state)
{
        struct fixture *f = fixture_new(2, NULL);
        struct fixture *g = fixture_new(2, NULL);
        char key[32];
        FILE *down;

        fixture_start(f, 20);
        fixture_start(g, 20);
        assert_int_equal(executor_connected(f->e), 1);
        /* The workers may still be opening their sessions: either a session or the
         * first order then finds the target down. */
        down = fopen(f->down_file, "w");
        assert_non_null(down);
        fclose(down);

        for (int i = 0; i < 10; i++) {
                snprintf(key, sizeof(key), "b%02d", i);
                submit(f, key, i % 2 ? "x" : "y", NULL, EXECUTOR_EXECUTE);
        }
        assert_true(run_until(f, status_seen, LOOP_BUDGET));
        assert_int_equal(f->status[0].connected, 0);
        assert_non_null(strstr(f->status[0].why, "down"));
        assert_int_equal(executor_connected(f->e), 0);

        /* While down: several re-checks pass, nothing fails, nothing is applied. */
        for (int i = 0; i < 5; i++) {
                snprintf(key, sizeof(key), "g%02d", i);
                submit(g, key, key, NULL, EXECUTOR_EXECUTE);
        }
        run_for(f, 300);
        assert_int_equal(f->nseen, 0);
        assert_int_equal(f->nstatus, 1);
        assert_int_equal(executor_pending(f->e), 10);
        assert_int_equal(count_lines(f->state_file), 0);
        /* The other connector was not held back. */
        target_count = 5;
        assert_true(run_until(g, seen_target, LOOP_BUDGET));
        assert_int_equal(g->nstatus, 0);
        assert_int_equal(executor_connected(g->e), 1);

        assert_int_equal(unlink(f->down_file), 0);
        target_count = 10;
        assert_true(run_until(f, all_breaker_done, LOOP_BUDGET));
        assert_int_equal(f->nstatus, 2);
        assert_int_equal(f->status[1].connected, 1);
        assert_int_equal(executor_connected(f->e), 1);
        seen_once_each(f, 10);
        for (int i = 0; i < 10; i++) {
                snprintf(key, sizeof(key), "b%02d", i);
                assert_int_equal(seen_find(f, key)->rc, CA_BACKEND_OK);
                assert_int_equal(state_count(f, key), 1);
        }
        /* Per resource the order survived the outage. */
        int lx = -1, ly = -1;

        for (size_t i = 0; i < f->nseen; i++) {
                int n = atoi(f->seen[i].key + 1);
                int *last = n % 2 ? &lx : &ly;

                assert_true(n > *last);
                *last = n;
        }
        fixture_free(f);
        fixture_free(g);
}

/* Without ops->check the retry is the held job itself: test_outcome=unavailable without
 * down_file never succeeds, so that order waits and drain hands it back. */
static void test_unavailable_order_is_kept(void **state)
{
        struct fixture *f = fixture_new(1, NULL);
        struct ca_settings *s = &f->conn.settings;

        /* Without down_file, "unavailable" means unavailable for good, while check
         * answers that the target is up: the breaker may close and reopen, but the
         * order is never failed and the one behind it never overtakes it. */
        for (size_t i = 0; i < s->count; i++)
                if (strcmp(s->items[i].key, "down_file") == 0)
                        s->items[i].key[0] = '_';
        fixture_start(f, 10);
        submit(f, "u1", "u", "unavailable", EXECUTOR_EXECUTE);
        submit(f, "u2", "u", NULL, EXECUTOR_EXECUTE);
        assert_true(run_until(f, status_seen, LOOP_BUDGET));
        run_for(f, 100);
        assert_int_equal(f->nseen, 0);
        executor_drain(f->e);
        assert_true(run_until(f, is_idle, LOOP_BUDGET));
        seen_once_each(f, 2);
        /* u2 was never run before u1: per-resource order holds through the breaker. */
        assert_int_equal(state_count(f, "u2"), 0);
        fixture_free(f);
}

/* Drain: the running job finishes, queued ones come back abandoned, new ones refused. */
static void test_drain_abandons_queued(void **state)
{
        struct fixture *f = fixture_new(1, NULL);
        struct ca_order *late;
        char key[32];

        fixture_start(f, 20);
        submit(f, "d00", "d", "sleep:300", EXECUTOR_EXECUTE);
        for (int i = 1; i <= 5; i++) {
                snprintf(key, sizeof(key), "d%02d", i);
                submit(f, key, i % 2 ? "d" : "e", NULL, EXECUTOR_EXECUTE);
        }
        assert_true(run_until(f, started, LOOP_BUDGET));
        executor_drain(f->e);
        late = make_order("late", "d", NULL);
        assert_int_equal(executor_submit(f->e, late, &f->mapping, EXECUTOR_EXECUTE), -ESHUTDOWN);
        order_free(late);
        assert_true(run_until(f, is_idle, LOOP_BUDGET));
        seen_once_each(f, 6);
        assert_int_equal(seen_find(f, "d00")->rc, CA_BACKEND_OK);
        assert_int_equal(state_count(f, "d00"), 1);
        for (int i = 1; i <= 5; i++) {
                snprintf(key, sizeof(key), "d%02d", i);
                assert_int_equal(seen_find(f, key)->rc, EXECUTOR_ABANDONED);
                assert_int_equal(state_count(f, key), 0);
        }
        assert_int_equal(count_lines(f->state_file), 1);
        fixture_free(f);
}

/* probe answers from the state file; describe touches nothing. */
static void test_probe_and_describe(void **state)
{
        struct fixture *f = fixture_new(2, NULL);
        FILE *fp;

        fp = fopen(f->state_file, "w");
        assert_non_null(fp);
        fputs("k1 Added\n", fp);
        fclose(fp);
        fixture_start(f, 20);
        submit(f, "k1", "k1", NULL, EXECUTOR_PROBE);
        submit(f, "k2", "k2", NULL, EXECUTOR_PROBE);
        submit(f, "k3", "k3", NULL, EXECUTOR_DESCRIBE);
        target_count = 3;
        assert_true(run_until(f, seen_target, LOOP_BUDGET));
        seen_once_each(f, 3);

        assert_int_equal(seen_find(f, "k1")->rc, CA_BACKEND_OK);
        assert_int_equal(seen_find(f, "k1")->op, EXECUTOR_PROBE);
        assert_int_equal(seen_find(f, "k1")->probe, CA_BACKEND_PROBE_APPLIED);
        assert_string_equal(seen_find(f, "k1")->rid, "test:k1");
        /* Not applied: executed in its place, before anything queued after it. */
        assert_int_equal(seen_find(f, "k2")->rc, CA_BACKEND_OK);
        assert_int_equal(seen_find(f, "k2")->submitted, EXECUTOR_PROBE);
        assert_int_equal(seen_find(f, "k2")->op, EXECUTOR_EXECUTE);
        assert_int_equal(seen_find(f, "k2")->state, CA_BACKEND_EXECUTED);
        assert_int_equal(seen_find(f, "k3")->rc, CA_BACKEND_OK);
        assert_int_equal(seen_find(f, "k3")->op, EXECUTOR_DESCRIBE);
        assert_string_equal(seen_find(f, "k3")->message, "would record k3");
        assert_int_equal(count_lines(f->state_file), 2);
        fixture_free(f);
}

/* Errored and invalid outcomes pass through untouched; an in-doubt one is probed. */
static void test_outcomes_pass_through(void **state)
{
        struct fixture *f = fixture_new(2, NULL);

        fixture_start(f, 20);
        submit(f, "o1", "o", "errored", EXECUTOR_EXECUTE);
        submit(f, "o2", "o", "indoubt", EXECUTOR_EXECUTE);
        submit(f, "o3", "o", "invalid", EXECUTOR_EXECUTE);
        submit(f, "o4", "o", NULL, EXECUTOR_EXECUTE);
        target_count = 4;
        assert_true(run_until(f, seen_target, LOOP_BUDGET));
        seen_once_each(f, 4);
        assert_string_equal(f->seen[0].key, "o1");
        assert_int_equal(f->seen[0].rc, CA_BACKEND_OK);
        assert_int_equal(f->seen[0].state, CA_BACKEND_ERRORED);
        assert_non_null(strstr(f->seen[0].message, "o1"));
        /* Applied, then in doubt: the probe on the spot finds it applied. */
        assert_int_equal(f->seen[1].rc, CA_BACKEND_OK);
        assert_int_equal(f->seen[1].op, EXECUTOR_PROBE);
        assert_int_equal(f->seen[1].probe, CA_BACKEND_PROBE_APPLIED);
        assert_int_equal(f->seen[2].rc, CA_BACKEND_EINVALID);
        assert_int_equal(f->seen[3].rc, CA_BACKEND_OK);
        assert_int_equal(f->seen[3].state, CA_BACKEND_EXECUTED);
        assert_int_equal(f->nstatus, 0);
        assert_int_equal(state_count(f, "o1"), 0);
        assert_int_equal(state_count(f, "o2"), 1);
        assert_int_equal(state_count(f, "o3"), 0);
        assert_int_equal(state_count(f, "o4"), 1);
        fixture_free(f);
}

/* Lines of the state file, in order, joined by spaces (keys only). */
static void state_keys(struct fixture *f, char *buf, size_t len)
{
        char *text = read_file(f->state_file), *line, *save = NULL;

        buf[0] = '\0';
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                size_t n = strcspn(line, " ");
                snprintf(buf + strlen(buf), len - strlen(buf), "%s%.*s", buf[0] ? " " : "", (int)n,
                         line);
        }
        free(text);
}

/* An order whose execute ends in doubt without having been applied (a timeout before
 * the target acted) is probed and executed again before the later orders of its
 * assignment: never behind them, and answered by what really happened. */
static void test_in_doubt_execute_keeps_its_place(void **state)
{
        struct fixture *f = fixture_new(1, NULL);
        char keys[256];

        fixture_start(f, 20);
        submit(f, "a1", "a", "indoubt_once", EXECUTOR_EXECUTE);
        submit(f, "a2", "a", NULL, EXECUTOR_EXECUTE);
        submit(f, "a3", "a", NULL, EXECUTOR_EXECUTE);
        target_count = 3;
        assert_true(run_until(f, seen_target, LOOP_BUDGET));
        seen_once_each(f, 3);
        state_keys(f, keys, sizeof(keys));
        assert_string_equal(keys, "a1 a2 a3");
        assert_string_equal(f->seen[0].key, "a1");
        assert_int_equal(f->seen[0].rc, CA_BACKEND_OK);
        assert_int_equal(f->seen[0].op, EXECUTOR_EXECUTE);
        assert_int_equal(f->seen[0].state, CA_BACKEND_EXECUTED);
        fixture_free(f);
}

/* After a crash: an in-doubt order whose probe answers "not applied" runs before the
 * orders of its assignment that were fetched after it. */
static void test_probe_not_applied_keeps_its_place(void **state)
{
        struct fixture *f = fixture_new(1, NULL);
        char keys[256];

        fixture_start(f, 20);
        submit(f, "b1", "b", NULL, EXECUTOR_PROBE);
        submit(f, "b2", "b", NULL, EXECUTOR_EXECUTE);
        target_count = 2;
        assert_true(run_until(f, seen_target, LOOP_BUDGET));
        seen_once_each(f, 2);
        state_keys(f, keys, sizeof(keys));
        assert_string_equal(keys, "b1 b2");
        assert_string_equal(f->seen[0].key, "b1");
        assert_int_equal(f->seen[0].submitted, EXECUTOR_PROBE);
        assert_int_equal(f->seen[0].op, EXECUTOR_EXECUTE);
        assert_int_equal(f->seen[0].state, CA_BACKEND_EXECUTED);
        fixture_free(f);
}

/* Free with work queued and one job running: the running one finishes, the rest are
 * freed unstarted (ASan checks that nothing leaks), done is not called any more. */
static void test_free_with_work_queued(void **state)
{
        struct fixture *f = fixture_new(1, NULL);
        char key[32], *text;

        fixture_start(f, 20);
        submit(f, "q00", "q", "sleep:200", EXECUTOR_EXECUTE);
        for (int i = 1; i <= 10; i++) {
                snprintf(key, sizeof(key), "q%02d", i);
                submit(f, key, i % 3 ? "q" : "w", NULL, EXECUTOR_EXECUTE);
        }
        assert_true(run_until(f, started, LOOP_BUDGET));
        executor_free(f->e);
        f->e = NULL;
        assert_int_equal(f->nseen, 0);
        text = read_file(f->state_file);
        assert_string_equal(text, "q00 Added\n");
        free(text);
        fixture_free(f);
}

/* Sessions cannot open: the breaker opens, orders wait; the target comes up: sessions
 * open, the breaker closes, the orders run. */
static void test_session_open_failure(void **state)
{
        struct fixture *f = fixture_new(3, NULL);
        FILE *down;
        char key[32];

        down = fopen(f->down_file, "w");
        assert_non_null(down);
        fclose(down);
        fixture_start(f, 20);
        assert_true(run_until(f, status_seen, LOOP_BUDGET));
        assert_int_equal(f->status[0].connected, 0);
        assert_non_null(strstr(f->status[0].why, "down"));
        for (int i = 0; i < 6; i++) {
                snprintf(key, sizeof(key), "s%02d", i);
                submit(f, key, key, NULL, EXECUTOR_EXECUTE);
        }
        run_for(f, 200);
        assert_int_equal(f->nseen, 0);
        assert_int_equal(f->nstatus, 1);
        assert_int_equal(unlink(f->down_file), 0);
        target_count = 6;
        assert_true(run_until(f, all_breaker_done, LOOP_BUDGET));
        assert_int_equal(f->status[1].connected, 1);
        seen_once_each(f, 6);
        for (size_t i = 0; i < f->nseen; i++)
                assert_int_equal(f->seen[i].rc, CA_BACKEND_OK);
        assert_int_equal(count_lines(f->state_file), 6);
        fixture_free(f);
}

static int wedged(struct fixture *f)
{
        return executor_wedged(f->e, time_mono_ms());
}

/* A call running past twice the order timeout is reported to the watchdog. */
static void test_stall_report(void **state)
{
        struct fixture *f = fixture_new(1, NULL);

        f->conn.order_timeout_ms = 50;
        fixture_start(f, 20);
        assert_int_equal(executor_stalled_ms(f->e, time_mono_ms()), 0);
        submit(f, "h1", "h", "hang:400", EXECUTOR_EXECUTE);
        assert_true(run_until(f, wedged, LOOP_BUDGET));
        assert_true(executor_stalled_ms(f->e, time_mono_ms()) > 100);
        target_count = 1;
        assert_true(run_until(f, seen_target, LOOP_BUDGET));
        assert_int_equal(executor_stalled_ms(f->e, time_mono_ms()), 0);
        assert_false(executor_wedged(f->e, time_mono_ms()));
        fixture_free(f);
}

/* The shared journal's lease: while the journal has not answered for half of it, no
 * job starts (the instance may have lost its connector to another); once the loop
 * proves it again, the queued jobs run, in order. */
static void test_lease_holds_jobs_back(void **state)
{
        struct fixture *f = fixture_new(2, NULL);
        _Atomic uint64_t contact = 0;

        fixture_start(f, 20);
        executor_set_lease(f->e, &contact, 2000);
        for (int i = 0; i < 6; i++) {
                char key[32];
                snprintf(key, sizeof(key), "l-%d", i);
                submit(f, key, i % 2 ? "a" : "b", NULL, EXECUTOR_EXECUTE);
        }
        run_for(f, 300);
        assert_int_equal(f->nseen, 0); /* the journal never answered: nothing started */
        atomic_store(&contact, time_mono_ms());
        target_count = 6;
        assert_true(run_until(f, seen_target, LOOP_BUDGET));
        seen_once_each(f, 6);

        /* Stale again (the last answer 1.5 s ago, past half the lease): held again. */
        atomic_store(&contact, time_mono_ms() - 1500);
        submit(f, "l-late", "a", NULL, EXECUTOR_EXECUTE);
        run_for(f, 300);
        assert_int_equal(f->nseen, 6);
        /* A stop with a job held back hands it back unstarted. */
        executor_drain(f->e);
        assert_true(run_until(f, is_idle, LOOP_BUDGET));
        assert_int_equal(f->nseen, 7);
        assert_int_equal(f->seen[6].rc, EXECUTOR_ABANDONED);
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
        backend_unload(test_backend);
        event_base_free(test_base);
        libevent_global_shutdown();
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_ordering_per_resource),
            cmocka_unit_test(test_parallel_across_resources),
            cmocka_unit_test(test_breaker),
            cmocka_unit_test(test_unavailable_order_is_kept),
            cmocka_unit_test(test_drain_abandons_queued),
            cmocka_unit_test(test_probe_and_describe),
            cmocka_unit_test(test_outcomes_pass_through),
            cmocka_unit_test(test_in_doubt_execute_keeps_its_place),
            cmocka_unit_test(test_probe_not_applied_keeps_its_place),
            cmocka_unit_test(test_free_with_work_queued),
            cmocka_unit_test(test_session_open_failure),
            cmocka_unit_test(test_stall_report),
            cmocka_unit_test(test_lease_holds_jobs_back),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
