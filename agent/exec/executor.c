/* SPDX-License-Identifier: Apache-2.0 */
/* executor: worker threads, per-worker FIFO queues, completions back to the loop, and
 * the circuit breaker of one connector.
 *
 * One mutex (e->mu) guards the queues, the breaker and the completion list: a worker
 * decides "take my next job" from both its queue and the breaker in one step, and the
 * critical sections are a few pointer moves (the back-end calls run unlocked). Each
 * worker sleeps on its own condition variable, so a submit wakes only the worker it
 * feeds. Completions (and breaker changes, in the order they happened) go onto one list
 * that the loop thread empties when the worker's event_active() wakes it. */
#include "executor.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "backoff.h"
#include "log.h"
#include "timeutil.h"

/* Breaker retry delays: full jitter in [0, min(cap, base * 2^n)]. */
#define EXECUTOR_BREAKER_BASE_MS 1000
#define EXECUTOR_BREAKER_CAP_MS  60000
/* A job running longer than this many order timeouts means the worker is wedged. */
#define EXECUTOR_WEDGED_FACTOR 2
/* Per-worker queue bound when the connector sets no max_in_flight. The loop bounds the
 * orders in flight itself; this only stops a runaway caller. */
#define EXECUTOR_QUEUE_DEFAULT_MAX 1000
/* The loop checks max_in_flight before it polls, not within a page: a worker's queue must
 * also hold one whole page past the bound (page_size is at most 100000), or orders
 * already recorded in the journal would be refused and wait for the server's lease. */
#define EXECUTOR_PAGE_SLACK 100000
/* Pause after an allocation failure before trying the same job again. */
#define EXECUTOR_NOMEM_PAUSE_MS 100
/* Executions of one job whose outcome stays in doubt before it is handed back. */
#define EXECUTOR_SETTLE_EXECUTES 3

struct job {
        STAILQ_ENTRY(job) link;
        struct ca_order *order;
        const struct ca_config_resource_type *mapping;
        enum executor_op op;        /* what runs next: settling may change it */
        enum executor_op submitted; /* what the caller asked for */
};

/* One entry of the completion list: an outcome, or a breaker change. Behind a fast
 * back-end thousands of outcomes wait here for the loop, so an entry keeps only the text
 * it has (the result's message and resource identifier and the error, each NUL-ended, in
 * text), not struct executor_outcome's fixed buffers: the loop rebuilds the outcome on
 * its stack for the done callback. */
struct completion {
        STAILQ_ENTRY(completion) link;
        struct ca_order *order; /* owned; NULL for a status change */
        const struct ca_config_resource_type *mapping;
        enum executor_op op, submitted;
        int rc;
        enum ca_backend_probe probe;
        int result_set;
        enum ca_backend_state state;
        uint64_t duration_ms;
        int connected;
        char text[]; /* an outcome's three texts, or a status change's why */
};

/* The most text an outcome has. */
#define COMPLETION_TEXT_MAX                                                                        \
        (sizeof(((struct executor_outcome *)0)->result.message) +                                  \
         sizeof(((struct executor_outcome *)0)->result.resource_identifier) +                      \
         sizeof(((struct executor_outcome *)0)->error))

struct worker {
        struct executor *e;
        pthread_t thread;
        int thread_started;
        pthread_cond_t cv;
        STAILQ_HEAD(, job) jobs; /* queued, not started; guarded by e->mu */
        size_t queued;
        void *session;
        int have_session;
        int stop;                       /* guarded by e->mu */
        _Atomic uint64_t busy_since_ms; /* a back-end call started then; 0 when none */
        size_t load;                    /* loop thread: submitted, not handed back */
        uint64_t submitted, returned;   /* loop thread: totals, for fences */
};

struct executor {
        struct event_base *base;
        const struct ca_config_connector *conn;
        struct backend *backend;
        const struct ca_backend_ops *ops;
        void *instance;
        executor_done_fn done;
        executor_status_fn status;
        void *ctx;
        struct event *wake;
        size_t queue_max;

        pthread_mutex_t mu;
        struct worker *workers;
        size_t nworkers;
        int draining;                        /* no new jobs */
        int breaker_open;                    /* target unavailable: workers hold their queues */
        int retry_busy;                      /* one worker is re-checking the target now */
        const _Atomic uint64_t *lease_clock; /* executor_set_lease; NULL: none */
        uint64_t lease_ms;
        uint64_t retry_at_ms; /* when the next re-check may start */
        struct ca_backoff backoff;
        STAILQ_HEAD(completion_list, completion) done_list;

        /* Loop thread only. */
        size_t pending;     /* submitted and not yet handed back */
        int connected_seen; /* the last state told through status */
};

static uint64_t fnv1a(const char *s)
{
        uint64_t h = 14695981039346656037ULL;

        for (; s && *s; s++) {
                h ^= (unsigned char)*s;
                h *= 1099511628211ULL;
        }
        return h;
}

static void timespec_at(struct timespec *ts, uint64_t mono_ms)
{
        ts->tv_sec = (time_t)(mono_ms / 1000);
        ts->tv_nsec = (long)(mono_ms % 1000) * 1000000L;
}

static const char *op_name(enum executor_op op)
{
        switch (op) {
        case EXECUTOR_EXECUTE:
                return "execute";
        case EXECUTOR_PROBE:
                return "probe";
        case EXECUTOR_DESCRIBE:
                return "describe";
        }
        return "?";
}

/* Caller holds e->mu. Takes ownership of c; the loop is woken by the caller after
 * unlocking (see wake_loop). */
static void completion_push_locked(struct executor *e, struct completion *c)
{
        STAILQ_INSERT_TAIL(&e->done_list, c, link);
}

static void wake_loop(struct executor *e)
{
        event_active(e->wake, EV_READ, 0);
}

/* Appends the NUL-ended text of field (at most its size) at *at. */
static void pack_text(char *text, size_t *at, const char *field, size_t size)
{
        size_t n = strnlen(field, size - 1);
        memcpy(text + *at, field, n);
        text[*at + n] = '\0';
        *at += n + 1;
}

static const char *unpack_text(const char *text, size_t *at, char *field, size_t size)
{
        size_t n = strlen(text + *at);
        memcpy(field, text + *at, n < size ? n + 1 : size);
        field[size - 1] = '\0';
        *at += n + 1;
        return field;
}

/* The completion of out: into c (made with room for COMPLETION_TEXT_MAX before the job
 * ran, so that a finished job never lacks one), shrunk to what it holds; or, with c
 * NULL, a new one (NULL when out of memory). */
static struct completion *completion_of(const struct executor_outcome *out, struct completion *c)
{
        char text[COMPLETION_TEXT_MAX];
        size_t n = 0;
        pack_text(text, &n, out->result.message, sizeof(out->result.message));
        pack_text(text, &n, out->result.resource_identifier,
                  sizeof(out->result.resource_identifier));
        pack_text(text, &n, out->error, sizeof(out->error));
        if (!c && !(c = malloc(sizeof(*c) + n)))
                return NULL;
        c->order = out->order;
        c->mapping = out->mapping;
        c->op = out->op;
        c->submitted = out->submitted;
        c->rc = out->rc;
        c->probe = out->probe;
        c->result_set = out->result.set;
        c->state = out->result.state;
        c->duration_ms = out->duration_ms;
        c->connected = 0;
        memcpy(c->text, text, n);
        struct completion *small = realloc(c, sizeof(*c) + n);
        return small ? small : c;
}

static void completion_outcome(const struct completion *c, struct executor_outcome *out)
{
        size_t n = 0;
        out->order = c->order;
        out->mapping = c->mapping;
        out->op = c->op;
        out->submitted = c->submitted;
        out->rc = c->rc;
        out->probe = c->probe;
        out->result.set = c->result_set;
        out->result.state = c->state;
        out->duration_ms = c->duration_ms;
        unpack_text(c->text, &n, out->result.message, sizeof(out->result.message));
        unpack_text(c->text, &n, out->result.resource_identifier,
                    sizeof(out->result.resource_identifier));
        unpack_text(c->text, &n, out->error, sizeof(out->error));
}

/* Caller holds e->mu. Queues a breaker change for the status callback. A failed
 * allocation loses only the notification; the state itself (executor_connected) stays
 * right. */
static void breaker_notify_locked(struct executor *e, int connected, const char *why)
{
        size_t n = why ? strnlen(why, BACKEND_MESSAGE_MAX - 1) : 0;
        struct completion *c = calloc(1, sizeof(*c) + n + 1);

        if (!c) {
                log_ctx(CA_LOG_ERR, e->conn->name, NULL,
                        "out of memory reporting a breaker change");
                return;
        }
        c->connected = connected;
        memcpy(c->text, why ? why : "", n);
        completion_push_locked(e, c);
}

/* Caller holds e->mu. */
static void breaker_open_locked(struct executor *e, const char *why)
{
        uint64_t delay;

        if (e->breaker_open)
                return;
        e->breaker_open = 1;
        delay = backoff_next(&e->backoff);
        e->retry_at_ms = time_mono_ms() + delay;
        log_ctx(CA_LOG_WARNING, e->conn->name, NULL,
                "target unavailable (%s); holding orders, re-checking in %llu ms", why,
                (unsigned long long)delay);
        breaker_notify_locked(e, 0, why);
}

/* Caller holds e->mu. */
static void breaker_close_locked(struct executor *e)
{
        size_t i;

        if (!e->breaker_open)
                return;
        /* The backoff is reset only when an order gets through (worker_run): a target
         * that answers check but fails every order must not flap at the base rate. */
        e->breaker_open = 0;
        log_ctx(CA_LOG_NOTICE, e->conn->name, NULL, "target reachable again; resuming orders");
        breaker_notify_locked(e, 1, "");
        for (i = 0; i < e->nworkers; i++)
                pthread_cond_signal(&e->workers[i].cv);
}

/* Caller holds e->mu. A failed re-check: wait longer. */
static void breaker_retry_failed_locked(struct executor *e, const char *why)
{
        uint64_t delay = backoff_next(&e->backoff);

        e->retry_at_ms = time_mono_ms() + delay;
        log_ctx(CA_LOG_INFO, e->conn->name, NULL,
                "target still unavailable (%s); next check in %llu ms", why,
                (unsigned long long)delay);
}

/* Caller holds e->mu. Puts job back at the head of w's queue (it keeps its place). */
static void queue_push_front_locked(struct worker *w, struct job *job)
{
        STAILQ_INSERT_HEAD(&w->jobs, job, link);
        w->queued++;
}

static struct job *queue_pop_locked(struct worker *w)
{
        struct job *job = STAILQ_FIRST(&w->jobs);

        if (!job)
                return NULL;
        STAILQ_REMOVE_HEAD(&w->jobs, link);
        w->queued--;
        return job;
}

static void error_text(char *dst, size_t len, const struct ca_backend_error *berr, int rc,
                       const char *what)
{
        if (berr->message[0])
                snprintf(dst, len, "%s", berr->message);
        else
                snprintf(dst, len, "back-end %s failed (code %d)", what, rc);
}

/* Runs job on w's session, unlocked. Fills out (rc, result, error, duration). */
static void job_run(struct worker *w, struct job *job, struct executor_outcome *out)
{
        const struct ca_backend_ops *ops = w->e->ops;
        const struct ca_backend_settings *mapping = backend_settings(&job->mapping->settings);
        const struct ca_backend_order *order = backend_order(job->order);
        struct ca_backend_error berr;
        enum ca_backend_probe answer = 0;
        uint64_t start = time_mono_ms();
        int rc;

        memset(&berr, 0, sizeof(berr));
        memset(&out->result, 0, sizeof(out->result));
        out->error[0] = '\0';
        out->probe = 0;
        atomic_store(&w->busy_since_ms, start ? start : 1);
        switch (job->op) {
        case EXECUTOR_EXECUTE:
                rc = ops->execute(w->session, order, mapping, &out->result, &berr);
                if (rc == CA_BACKEND_OK && !out->result.set)
                        rc = backend_host()->error(&berr, CA_BACKEND_EINTERNAL, NULL,
                                                   "back-end %s gave no outcome for order %s",
                                                   backend_name(w->e->backend), job->order->key);
                break;
        case EXECUTOR_PROBE:
                rc = ops->probe(w->session, order, mapping, &answer, &out->result, &berr);
                if (rc == CA_BACKEND_OK && answer != CA_BACKEND_PROBE_APPLIED &&
                    answer != CA_BACKEND_PROBE_NOT_APPLIED && answer != CA_BACKEND_PROBE_UNKNOWN)
                        rc = backend_host()->error(&berr, CA_BACKEND_EINTERNAL, NULL,
                                                   "back-end %s gave no probe answer for order %s",
                                                   backend_name(w->e->backend), job->order->key);
                out->probe = answer;
                break;
        case EXECUTOR_DESCRIBE:
                if (!ops->describe)
                        rc = backend_host()->error(&berr, CA_BACKEND_EINVALID, NULL,
                                                   "back-end %s has no dry run",
                                                   backend_name(w->e->backend));
                else
                        rc = ops->describe(w->session, order, mapping, &out->result, &berr);
                break;
        default:
                rc = backend_host()->error(&berr, CA_BACKEND_EINTERNAL, NULL,
                                           "unknown operation %d", (int)job->op);
                break;
        }
        atomic_store(&w->busy_since_ms, 0);
        out->rc = rc;
        out->duration_ms = time_mono_ms() - start;
        if (rc != CA_BACKEND_OK)
                error_text(out->error, sizeof(out->error), &berr, rc, op_name(job->op));
}

/* What a worker does next, decided under e->mu. */
enum worker_action {
        ACT_STOP,
        ACT_OPEN,  /* open the session */
        ACT_CHECK, /* breaker re-check through ops->check */
        ACT_RUN,   /* run the head job */
};

/* Caller holds e->mu. Returns the next action, waiting as long as there is nothing to
 * do. *retry says whether the action is the breaker's one re-check. */
static int lease_holds(const struct executor *e)
{
        if (!e->lease_clock)
                return 1;
        uint64_t at = atomic_load_explicit(e->lease_clock, memory_order_relaxed);
        return time_mono_ms() < at + e->lease_ms / 2;
}

static enum worker_action worker_next_locked(struct worker *w, struct job **job, int *retry)
{
        struct executor *e = w->e;
        struct timespec ts;

        *job = NULL;
        *retry = 0;
        for (;;) {
                if (w->stop)
                        return ACT_STOP;
                if (!STAILQ_EMPTY(&w->jobs) && !lease_holds(e)) {
                        /* The journal has not answered lately: this instance may have
                         * lost the connector (paused, cut off) to another, which runs
                         * these orders itself. Wait for the loop to prove the lease, or
                         * to stop us. */
                        timespec_at(&ts, time_mono_ms() + EXECUTOR_LEASE_TICK_MS);
                        pthread_cond_timedwait(&w->cv, &e->mu, &ts);
                        continue;
                }
                if (e->breaker_open) {
                        /* One worker re-checks the target; the others hold their queues.
                         * Without a session its open is the test; with one, ops->check
                         * (required: the loader refuses a plug-in without it). */
                        if (!e->retry_busy && time_mono_ms() >= e->retry_at_ms) {
                                e->retry_busy = 1;
                                *retry = 1;
                                return w->have_session ? ACT_CHECK : ACT_OPEN;
                        }
                        if (!e->retry_busy) {
                                timespec_at(&ts, e->retry_at_ms);
                                pthread_cond_timedwait(&w->cv, &e->mu, &ts);
                        } else {
                                pthread_cond_wait(&w->cv, &e->mu);
                        }
                        continue;
                }
                if (!w->have_session)
                        return ACT_OPEN;
                if (!STAILQ_EMPTY(&w->jobs)) {
                        *job = queue_pop_locked(w);
                        return ACT_RUN;
                }
                pthread_cond_wait(&w->cv, &e->mu);
        }
}

/* Caller holds e->mu. After a failed re-check, let another worker (perhaps one with a
 * job) take the next one when it is due. */
static void retry_done_locked(struct executor *e)
{
        size_t i;

        e->retry_busy = 0;
        for (i = 0; i < e->nworkers; i++)
                pthread_cond_signal(&e->workers[i].cv);
}

static int draining(struct executor *e)
{
        pthread_mutex_lock(&e->mu);
        int d = e->draining;
        pthread_mutex_unlock(&e->mu);
        return d;
}

/* The one place that keeps an assignment's order through doubt: a job is settled on its
 * worker before the worker takes the next job of its queue. An execute that ends in
 * doubt (a timeout, a dropped connection) is probed at once; a probe that answers "not
 * applied" (after a crash, or after that timeout) is executed at once. Neither goes to
 * the back of a queue, behind later orders of its assignment. A probe is handed back
 * "not applied" only while draining (the order stays in doubt for the next start) or
 * after EXECUTOR_SETTLE_EXECUTES executions that all ended in doubt. Unlocked. */
static void settle_in_place(struct worker *w, struct job *job, struct executor_outcome *out)
{
        int executes = job->op == EXECUTOR_EXECUTE;

        for (;;) {
                if (job->op == EXECUTOR_EXECUTE && out->rc == CA_BACKEND_EINDOUBT) {
                        job->op = EXECUTOR_PROBE;
                } else if (job->op == EXECUTOR_PROBE && out->rc == CA_BACKEND_OK &&
                           out->probe == CA_BACKEND_PROBE_NOT_APPLIED &&
                           executes < EXECUTOR_SETTLE_EXECUTES && !draining(w->e)) {
                        job->op = EXECUTOR_EXECUTE;
                        executes++;
                } else {
                        return;
                }
                uint64_t before = out->duration_ms;
                job_run(w, job, out);
                out->duration_ms += before;
        }
}

/* Runs job unlocked, then files its outcome under e->mu, which is held on return.
 * Returns 1 when the loop must be woken. */
static int worker_run(struct worker *w, struct job *job)
{
        struct executor *e = w->e;
        struct executor_outcome outcome = {0}, *out = &outcome;
        struct completion *c = malloc(sizeof(*c) + COMPLETION_TEXT_MAX);
        int wake = 0;

        if (!c) {
                struct timespec ts;

                pthread_mutex_lock(&e->mu);
                /* No room for the outcome: keep the job in its place and give the
                 * allocator a moment rather than spinning. */
                queue_push_front_locked(w, job);
                timespec_at(&ts, time_mono_ms() + EXECUTOR_NOMEM_PAUSE_MS);
                pthread_cond_timedwait(&w->cv, &e->mu, &ts);
                return 0;
        }
        job_run(w, job, out);
        settle_in_place(w, job, out);
        pthread_mutex_lock(&e->mu);
        if (out->rc == CA_BACKEND_EUNAVAILABLE && !e->draining) {
                /* Never fail an order because the target is down: it keeps its place
                 * and waits for the breaker. */
                queue_push_front_locked(w, job);
                if (!e->breaker_open) {
                        breaker_open_locked(e, out->error);
                        wake = 1;
                }
                free(c);
                return wake;
        }
        if (out->rc == CA_BACKEND_EUNAVAILABLE) {
                /* Draining: nothing was done, and nobody will wait for the target. */
                out->rc = EXECUTOR_ABANDONED;
        } else {
                /* The target answered this order: a later outage starts from the
                 * shortest delay again. */
                backoff_reset(&e->backoff);
        }
        out->order = job->order;
        out->mapping = job->mapping;
        out->op = job->op;
        out->submitted = job->submitted;
        free(job);
        completion_push_locked(e, completion_of(out, c));
        return 1;
}

static void *worker_main(void *arg)
{
        struct worker *w = arg;
        struct executor *e = w->e;
        struct ca_backend_error berr;
        enum worker_action act;
        struct job *job;
        int retry, rc;

        pthread_mutex_lock(&e->mu);
        while ((act = worker_next_locked(w, &job, &retry)) != ACT_STOP) {
                int wake = 0;

                pthread_mutex_unlock(&e->mu);
                memset(&berr, 0, sizeof(berr));
                if (act == ACT_OPEN) {
                        atomic_store(&w->busy_since_ms, time_mono_ms());
                        rc = e->ops->session_open(e->instance, &w->session, &berr);
                        atomic_store(&w->busy_since_ms, 0);
                        pthread_mutex_lock(&e->mu);
                        if (rc == CA_BACKEND_OK) {
                                w->have_session = 1;
                                if (retry) {
                                        e->retry_busy = 0;
                                        breaker_close_locked(e);
                                        wake = 1;
                                }
                        } else {
                                char why[BACKEND_MESSAGE_MAX];

                                /* A session that cannot open means the target is out of
                                 * reach for this worker: hold everything and re-check. */
                                w->session = NULL;
                                error_text(why, sizeof(why), &berr, rc, "session open");
                                if (retry) {
                                        breaker_retry_failed_locked(e, why);
                                        retry_done_locked(e);
                                } else {
                                        wake = !e->breaker_open;
                                        breaker_open_locked(e, why);
                                }
                        }
                } else if (act == ACT_CHECK) {
                        atomic_store(&w->busy_since_ms, time_mono_ms());
                        rc = e->ops->check(w->session, &berr);
                        atomic_store(&w->busy_since_ms, 0);
                        pthread_mutex_lock(&e->mu);
                        if (rc == CA_BACKEND_EUNAVAILABLE) {
                                char why[BACKEND_MESSAGE_MAX];

                                error_text(why, sizeof(why), &berr, rc, "check");
                                breaker_retry_failed_locked(e, why);
                                retry_done_locked(e);
                        } else {
                                /* Any other answer means the target answered: resume, and let
                                 * each order report its own error if there is one. */
                                e->retry_busy = 0;
                                breaker_close_locked(e);
                                wake = 1;
                        }
                } else {
                        wake = worker_run(w, job);
                }
                /* Under e->mu is fine: the loop thread never holds libevent's base lock
                 * while it waits for e->mu (callbacks run with the base unlocked). */
                if (wake)
                        wake_loop(e);
        }
        pthread_mutex_unlock(&e->mu);
        if (w->have_session) {
                e->ops->session_close(w->session);
                w->session = NULL;
                w->have_session = 0;
        }
        return NULL;
}

/* Loop thread: hands every outcome and breaker change to the callbacks, in the order
 * they happened. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
        struct executor *e = arg;
        struct completion_list list = STAILQ_HEAD_INITIALIZER(list);
        struct completion *c;

        (void)fd;
        (void)what;
        pthread_mutex_lock(&e->mu);
        STAILQ_CONCAT(&list, &e->done_list);
        pthread_mutex_unlock(&e->mu);

        while ((c = STAILQ_FIRST(&list))) {
                STAILQ_REMOVE_HEAD(&list, link);
                if (c->order) {
                        struct worker *w = &e->workers[executor_worker_of(e, c->order)];
                        struct executor_outcome out;
                        w->load = w->load ? w->load - 1 : 0;
                        w->returned++;
                        e->pending--;
                        completion_outcome(c, &out);
                        e->done(e->ctx, &out); /* it takes the order */
                } else if (c->connected != e->connected_seen) {
                        e->connected_seen = c->connected;
                        if (e->status)
                                e->status(e->ctx, c->connected, c->text);
                }
                free(c);
        }
}

/* Joins every worker that stops before deadline (CLOCK_REALTIME, NULL: no deadline).
 * Returns -ETIMEDOUT when one is still inside a back-end call by then. */
static int executor_stop_workers(struct executor *e, const struct timespec *deadline)
{
        size_t i;
        int rc = 0;

        pthread_mutex_lock(&e->mu);
        for (i = 0; i < e->nworkers; i++) {
                e->workers[i].stop = 1;
                pthread_cond_signal(&e->workers[i].cv);
        }
        pthread_mutex_unlock(&e->mu);
        for (i = 0; i < e->nworkers; i++) {
                if (!e->workers[i].thread_started)
                        continue;
                if (deadline && pthread_timedjoin_np(e->workers[i].thread, NULL, deadline) != 0) {
                        rc = -ETIMEDOUT;
                        continue;
                }
                if (!deadline)
                        pthread_join(e->workers[i].thread, NULL);
                e->workers[i].thread_started = 0;
        }
        return rc;
}

int executor_stop(struct executor *e, uint64_t grace_ms)
{
        struct timespec deadline;

        if (!e || !e->workers)
                return 0;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += (time_t)(grace_ms / 1000);
        deadline.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000L;
        }
        return executor_stop_workers(e, &deadline);
}

int executor_new(struct event_base *base, const struct ca_config_connector *conn,
                 struct backend *backend, void *instance, executor_done_fn done,
                 executor_status_fn status, void *ctx, struct executor **out, struct ca_error *err)
{
        struct executor *e = NULL;
        pthread_condattr_t cattr;
        sigset_t all, old;
        size_t i, n;
        int rc = 0, masked = 0;

        *out = NULL;
        if (!base || !conn || !backend || !done)
                return ca_error_set(err, -EINVAL, "executor: missing argument");
        n = conn->max_parallel ? conn->max_parallel : 1;
        if (n > EXECUTOR_WORKERS_MAX)
                return ca_error_set(err, -EINVAL, "[connector %s] max_parallel %u: at most %d",
                                    conn->name, conn->max_parallel, EXECUTOR_WORKERS_MAX);
        e = calloc(1, sizeof(*e));
        if (!e)
                return ca_error_set(err, -ENOMEM, "executor: out of memory");
        e->base = base;
        e->conn = conn;
        e->backend = backend;
        e->ops = backend_ops(backend);
        e->instance = instance;
        e->done = done;
        e->status = status;
        e->ctx = ctx;
        e->connected_seen = 1;
        e->queue_max = (conn->max_in_flight ? conn->max_in_flight : EXECUTOR_QUEUE_DEFAULT_MAX) +
                       EXECUTOR_PAGE_SLACK;
        backoff_init(&e->backoff, EXECUTOR_BREAKER_BASE_MS, EXECUTOR_BREAKER_CAP_MS);
        pthread_mutex_init(&e->mu, NULL);
        STAILQ_INIT(&e->done_list);
        if (!e->ops || !e->ops->session_open || !e->ops->session_close || !e->ops->execute ||
            !e->ops->probe) {
                rc = ca_error_set(err, -EINVAL,
                                  "[connector %s] back-end %s lacks a required operation",
                                  conn->name, backend_name(backend));
                goto out;
        }
        e->wake = event_new(base, -1, 0, on_wake, e);
        e->workers = calloc(n, sizeof(*e->workers));
        if (!e->wake || !e->workers) {
                rc = ca_error_set(err, -ENOMEM, "executor: out of memory");
                goto out;
        }
        e->nworkers = n;
        /* Deadlines come from time_mono_ms(): the timed waits must use the same clock,
         * or a wall-clock step would stretch or skip the breaker's delays. */
        pthread_condattr_init(&cattr);
        pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
        for (i = 0; i < n; i++) {
                e->workers[i].e = e;
                STAILQ_INIT(&e->workers[i].jobs);
                pthread_cond_init(&e->workers[i].cv, &cattr);
        }
        pthread_condattr_destroy(&cattr);
        /* Workers inherit this mask: only the main thread takes signals. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        masked = 1;
        for (i = 0; i < n; i++) {
                int prc = pthread_create(&e->workers[i].thread, NULL, worker_main, &e->workers[i]);
                if (prc) {
                        rc = ca_error_set(err, -prc, "[connector %s] starting worker %zu: %s",
                                          conn->name, i, strerror(prc));
                        goto out;
                }
                e->workers[i].thread_started = 1;
        }
out:
        if (masked)
                pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc < 0) {
                executor_free(e);
                return rc;
        }
        *out = e;
        return 0;
}

int executor_submit(struct executor *e, struct ca_order *order,
                    const struct ca_config_resource_type *mapping, enum executor_op op)
{
        struct worker *w;
        struct job *job;
        int rc = 0;

        if (!e || !order || !mapping)
                return -EINVAL;
        if (op != EXECUTOR_EXECUTE && op != EXECUTOR_PROBE && op != EXECUTOR_DESCRIBE)
                return -EINVAL;
        job = calloc(1, sizeof(*job));
        if (!job)
                return -ENOMEM;
        job->order = order;
        job->mapping = mapping;
        job->op = op;
        job->submitted = op;
        w = &e->workers[executor_worker_of(e, order)];
        pthread_mutex_lock(&e->mu);
        if (e->draining) {
                rc = -ESHUTDOWN;
        } else if (w->queued >= e->queue_max) {
                rc = -ENOBUFS;
        } else {
                STAILQ_INSERT_TAIL(&w->jobs, job, link);
                w->queued++;
                w->load++;
                w->submitted++;
                e->pending++;
                pthread_cond_signal(&w->cv);
        }
        pthread_mutex_unlock(&e->mu);
        if (rc < 0)
                free(job);
        return rc;
}

size_t executor_workers(const struct executor *e)
{
        return e ? e->nworkers : 0;
}

size_t executor_worker_of(const struct executor *e, const struct ca_order *order)
{
        return e && e->nworkers && order ? fnv1a(order->assignment_id) % e->nworkers : 0;
}

size_t executor_worker_load(const struct executor *e, size_t worker)
{
        return e && worker < e->nworkers ? e->workers[worker].load : 0;
}

void executor_fence(const struct executor *e, uint64_t *marks)
{
        for (size_t i = 0; e && i < e->nworkers; i++)
                marks[i] = e->workers[i].submitted;
}

int executor_fence_passed(const struct executor *e, const uint64_t *marks)
{
        for (size_t i = 0; e && i < e->nworkers; i++)
                if (e->workers[i].returned < marks[i])
                        return 0;
        return 1;
}

size_t executor_pending(const struct executor *e)
{
        return e ? e->pending : 0;
}

int executor_connected(const struct executor *e)
{
        int open;

        if (!e)
                return 0;
        pthread_mutex_lock(&((struct executor *)e)->mu);
        open = e->breaker_open;
        pthread_mutex_unlock(&((struct executor *)e)->mu);
        return !open;
}

uint64_t executor_stalled_ms(const struct executor *e, uint64_t now_ms)
{
        uint64_t worst = 0;
        size_t i;

        if (!e)
                return 0;
        for (i = 0; i < e->nworkers; i++) {
                uint64_t since = atomic_load(&e->workers[i].busy_since_ms);

                if (since && now_ms > since && now_ms - since > worst)
                        worst = now_ms - since;
        }
        return worst;
}

int executor_wedged(const struct executor *e, uint64_t now_ms)
{
        if (!e)
                return 0;
        return executor_stalled_ms(e, now_ms) > EXECUTOR_WEDGED_FACTOR * e->conn->order_timeout_ms;
}

void executor_drain(struct executor *e)
{
        size_t i;
        int any = 0;

        if (!e)
                return;
        pthread_mutex_lock(&e->mu);
        e->draining = 1;
        for (i = 0; i < e->nworkers; i++) {
                struct worker *w = &e->workers[i];
                struct job *job;

                while ((job = STAILQ_FIRST(&w->jobs))) {
                        struct executor_outcome out = {
                            .order = job->order,
                            .mapping = job->mapping,
                            .op = job->op,
                            .submitted = job->submitted,
                            .rc = EXECUTOR_ABANDONED,
                            .error = "not started: the agent is stopping",
                        };
                        struct completion *c = completion_of(&out, NULL);

                        if (!c) {
                                /* Keep it queued: executor_free frees what is left. */
                                log_ctx(CA_LOG_ERR, e->conn->name, job->order->key,
                                        "out of memory abandoning a queued order");
                                break;
                        }
                        queue_pop_locked(w);
                        free(job);
                        completion_push_locked(e, c);
                        any = 1;
                }
        }
        pthread_mutex_unlock(&e->mu);
        if (any)
                wake_loop(e);
}

int executor_idle(const struct executor *e)
{
        return !e || e->pending == 0;
}

void executor_set_lease(struct executor *e, const _Atomic uint64_t *clock, uint64_t lease_ms)
{
        pthread_mutex_lock(&e->mu);
        e->lease_clock = clock;
        e->lease_ms = lease_ms;
        pthread_mutex_unlock(&e->mu);
}

void executor_set_breaker_backoff(struct executor *e, uint64_t base_ms, uint64_t cap_ms)
{
        if (!e)
                return;
        pthread_mutex_lock(&e->mu);
        backoff_init(&e->backoff, base_ms, cap_ms);
        pthread_mutex_unlock(&e->mu);
}

void executor_free(struct executor *e)
{
        struct completion *c;
        size_t i;

        if (!e)
                return;
        if (e->workers)
                executor_stop_workers(e, NULL);
        /* Nobody will call done any more: free what was never handed back. */
        while ((c = STAILQ_FIRST(&e->done_list))) {
                STAILQ_REMOVE_HEAD(&e->done_list, link);
                order_free(c->order);
                free(c);
        }
        for (i = 0; i < e->nworkers; i++) {
                struct job *job;

                while ((job = queue_pop_locked(&e->workers[i]))) {
                        order_free(job->order);
                        free(job);
                }
                pthread_cond_destroy(&e->workers[i].cv);
        }
        if (e->wake)
                event_free(e->wake);
        free(e->workers);
        pthread_mutex_destroy(&e->mu);
        free(e);
}
