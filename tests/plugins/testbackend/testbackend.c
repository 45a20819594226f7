/* SPDX-License-Identifier: Apache-2.0 */
/* testbackend: a back-end whose "target" is a file, for the agent's tests.
 *
 * Built like an outside plug-in: connector-agent/backend.h and the host table only.
 * Every applied order appends "<order key> <change type>\n" to state_file and fsyncs it
 * before execute returns, so a crash test can count applications exactly; probe looks
 * the key up there. While down_file exists the target is down: session_open, check,
 * execute and probe answer CA_BACKEND_EUNAVAILABLE, so a test brings the target down
 * and up by creating and removing that file.
 *
 * Connector settings:
 *   state_file  path, required unless count_only = yes
 *   down_file   path, optional (see above)
 *   trace_file  path, optional: "start <assignment> <key>\n" and "end <assignment>
 *               <key>\n" around each execute, to check ordering and overlap
 *   delay       duration slept before each execute applies (default 0)
 *   probe_delay duration slept before each probe answers (default 0)
 *   count_only  yes: no file at all, applications are counted in memory (benchmarks;
 *               the count is logged when the instance is freed)
 *   order_timeout  duration, passed by the agent (default 60s); sleep:<ms> honours it
 * Per-order behaviour, from the order's Arguments.test_outcome:
 *   errored      Errored with a message (not applied)
 *   unavailable  CA_BACKEND_EUNAVAILABLE: while down_file exists, or always when no
 *                down_file is set
 *   indoubt      applied, then CA_BACKEND_EINDOUBT
 *   indoubt_once the first time (per state_file): CA_BACKEND_EINDOUBT without applying
 *                (a timeout before the target acted), remembered in
 *                "<state_file>.lost.<key>"; then applied as usual
 *   invalid      CA_BACKEND_EINVALID (not applied)
 *   sleep:<ms>   sleeps that long (at most order_timeout: past it, Errored "timed out")
 *   hang:<ms>    sleeps that long ignoring order_timeout (a wedged target)
 *   linger:<ms>  applied, then sleeps that long before answering (a slow answer: an
 *                agent paused there comes back with an outcome another settled)
 * Executed results carry ResourceIdentifier "test:<key>"; describe says
 * "would record <key>". */
#include <connector-agent/backend.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TB_LINE_MAX        1024 /* longest state_file line read back */
#define TB_DEFAULT_TIMEOUT 60000

static const struct ca_host *host;

struct tb_instance {
        char *state_file;
        char *down_file;
        char *trace_file;
        uint64_t delay_ms;
        uint64_t probe_delay_ms;
        uint64_t timeout_ms;
        int count_only;
        atomic_ulong applied;
};

struct tb_session {
        struct tb_instance *inst;
};

static char *dup_or_null(const char *s)
{
        return s ? strdup(s) : NULL;
}

static const char *errstr(int e, char *buf, size_t len)
{
        return strerror_r(e, buf, len);
}

static void sleep_ms(uint64_t ms)
{
        struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                              .tv_nsec = (long)(ms % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int is_down(const struct tb_instance *inst)
{
        return inst->down_file && access(inst->down_file, F_OK) == 0;
}

static int down_error(const struct tb_instance *inst, struct ca_backend_error *err)
{
        return host->error(err, CA_BACKEND_EUNAVAILABLE, NULL, "test target down (%s exists)",
                           inst->down_file);
}

static const char *change_name(enum ca_backend_change c)
{
        switch (c) {
        case CA_BACKEND_CHANGE_ADDED:
                return "Added";
        case CA_BACKEND_CHANGE_MODIFIED:
                return "Modified";
        case CA_BACKEND_CHANGE_DELETED:
                return "Deleted";
        default:
                return "Unknown";
        }
}

/* One write(2) per line with O_APPEND, so lines from parallel sessions never mix. A
 * SIGKILL can still cut a write short where it crosses a page of the file (the kernel
 * checks for a fatal signal between pages): the torn record of a killed process would
 * then run into the next one ("ge" + "gen-1 Added"), hiding that key from state_has.
 * So a write that follows a record without its newline starts with one. err may be
 * NULL (trace lines are best effort). */
static int append_line(const char *path, const char *text, int sync, struct ca_backend_error *err)
{
        char line[TB_LINE_MAX + 1];
        char buf[128];
        ssize_t n;
        int fd, rc = CA_BACKEND_OK;
        struct stat st;
        char last = '\n';

        fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 && !err)
                return CA_BACKEND_EINTERNAL;
        if (fd < 0)
                return host->error(err, CA_BACKEND_EINTERNAL, NULL, "test: opening %s: %s", path,
                                   errstr(errno, buf, sizeof(buf)));
        if (fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1)
                last = '\n';
        snprintf(line, sizeof(line), "%s%s", last == '\n' ? "" : "\n", text);
        size_t len = strlen(line);
        n = write(fd, line, len);
        if (n != (ssize_t)len && !err) {
                rc = CA_BACKEND_EINTERNAL;
        } else if (n != (ssize_t)len) {
                rc = host->error(err, CA_BACKEND_EINTERNAL, NULL, "test: writing %s: %s", path,
                                 n < 0 ? errstr(errno, buf, sizeof(buf)) : "short write");
                goto out;
        }
        if (sync && fsync(fd) < 0)
                rc = host->error(err, CA_BACKEND_EINTERNAL, NULL, "test: fsync %s: %s", path,
                                 errstr(errno, buf, sizeof(buf)));
out:
        close(fd);
        return rc;
}

static void trace(const struct tb_instance *inst, const char *what,
                  const struct ca_backend_order *o)
{
        char line[TB_LINE_MAX];
        const char *a = host->order_assignment_id(o);

        if (!inst->trace_file)
                return;
        snprintf(line, sizeof(line), "%s %s %s\n", what, a ? a : "-", host->order_key(o));
        append_line(inst->trace_file, line, 0, NULL);
}

/* 1 when key is recorded in the state file, 0 when not, negative on a read error. */
static int state_has(const struct tb_instance *inst, const char *key, struct ca_backend_error *err)
{
        char line[TB_LINE_MAX], buf[128];
        size_t klen = strlen(key);
        int found = 0;
        FILE *f;

        f = fopen(inst->state_file, "re");
        if (!f) {
                if (errno == ENOENT)
                        return 0;
                return host->error(err, CA_BACKEND_EINTERNAL, NULL, "test: reading %s: %s",
                                   inst->state_file, errstr(errno, buf, sizeof(buf)));
        }
        while (!found && fgets(line, sizeof(line), f))
                found = strncmp(line, key, klen) == 0 && line[klen] == ' ';
        fclose(f);
        return found;
}

static int tb_instance_new(const struct ca_host *h, const struct ca_backend_settings *s,
                           void **instance, struct ca_backend_error *err)
{
        struct tb_instance *inst;
        const char *count_only = h->setting(s, "count_only");
        int rc = CA_BACKEND_OK;

        *instance = NULL;
        inst = calloc(1, sizeof(*inst));
        if (!inst)
                return h->error(err, CA_BACKEND_EINTERNAL, NULL, "test: out of memory");
        inst->count_only = count_only && strcmp(count_only, "yes") == 0;
        if (count_only && !inst->count_only && strcmp(count_only, "no") != 0)
                rc = h->error(err, CA_BACKEND_EINVALID, "count_only",
                              "count_only: yes or no, not %s", count_only);
        inst->state_file = dup_or_null(h->setting(s, "state_file"));
        inst->down_file = dup_or_null(h->setting(s, "down_file"));
        inst->trace_file = dup_or_null(h->setting(s, "trace_file"));
        if (!inst->state_file && !inst->count_only)
                rc = h->error(err, CA_BACKEND_EINVALID, "state_file", "state_file is required");
        if (h->setting_ms(s, "probe_delay", 0, &inst->probe_delay_ms, err) != CA_BACKEND_OK)
                rc = CA_BACKEND_EINVALID;
        if (h->setting_ms(s, "delay", 0, &inst->delay_ms, err) != CA_BACKEND_OK)
                rc = CA_BACKEND_EINVALID;
        if (h->setting_ms(s, "order_timeout", TB_DEFAULT_TIMEOUT, &inst->timeout_ms, err) !=
            CA_BACKEND_OK)
                rc = CA_BACKEND_EINVALID;
        atomic_init(&inst->applied, 0);
        if (rc != CA_BACKEND_OK) {
                free(inst->state_file);
                free(inst->down_file);
                free(inst->trace_file);
                free(inst);
                return rc;
        }
        *instance = inst;
        return CA_BACKEND_OK;
}

static int tb_mapping_check(void *instance, const struct ca_backend_settings *mapping,
                            struct ca_backend_error *err)
{
        return CA_BACKEND_OK;
}

static void tb_instance_free(void *instance)
{
        struct tb_instance *inst = instance;

        if (!inst)
                return;
        if (inst->count_only)
                host->log(CA_BACKEND_LOG_INFO, "testbackend: %lu orders applied",
                          (unsigned long)atomic_load(&inst->applied));
        free(inst->state_file);
        free(inst->down_file);
        free(inst->trace_file);
        free(inst);
}

static int tb_session_open(void *instance, void **session, struct ca_backend_error *err)
{
        struct tb_instance *inst = instance;
        struct tb_session *sess;

        *session = NULL;
        if (is_down(inst))
                return down_error(inst, err);
        sess = calloc(1, sizeof(*sess));
        if (!sess)
                return host->error(err, CA_BACKEND_EINTERNAL, NULL, "test: out of memory");
        sess->inst = inst;
        *session = sess;
        return CA_BACKEND_OK;
}

static void tb_session_close(void *session)
{
        free(session);
}

/* Parses "<prefix><ms>"; 1 when outcome has that form. */
static int outcome_ms(const char *outcome, const char *prefix, uint64_t *ms)
{
        size_t plen = strlen(prefix);
        char *end;

        if (strncmp(outcome, prefix, plen) != 0)
                return 0;
        errno = 0;
        *ms = strtoull(outcome + plen, &end, 10);
        return errno == 0 && end != outcome + plen && *end == '\0';
}

/* Whether the order's test_outcome makes the target unreachable for it. */
static int order_unavailable(const struct tb_instance *inst, const char *outcome)
{
        if (is_down(inst))
                return 1;
        return outcome && strcmp(outcome, "unavailable") == 0 && !inst->down_file;
}

static int tb_execute(void *session, const struct ca_backend_order *o,
                      const struct ca_backend_settings *mapping, struct ca_backend_result *r,
                      struct ca_backend_error *err)
{
        struct tb_instance *inst = ((struct tb_session *)session)->inst;
        const char *key = host->order_key(o);
        const char *outcome = host->argument(o, "test_outcome");
        char line[TB_LINE_MAX], rid[TB_LINE_MAX];
        uint64_t ms = 0, linger_ms = 0;
        int indoubt = 0, rc = CA_BACKEND_OK;

        if (order_unavailable(inst, outcome))
                return inst->down_file ? down_error(inst, err)
                                       : host->error(err, CA_BACKEND_EUNAVAILABLE, NULL,
                                                     "test target unavailable for order %s", key);
        trace(inst, "start", o);
        if (inst->delay_ms)
                sleep_ms(inst->delay_ms);
        if (!outcome || strcmp(outcome, "unavailable") == 0) {
                /* applied as usual */
        } else if (strcmp(outcome, "errored") == 0) {
                host->result_set(r, CA_BACKEND_ERRORED, NULL, "test: order %s errored as asked",
                                 key);
                goto out;
        } else if (strcmp(outcome, "invalid") == 0) {
                rc = host->error(err, CA_BACKEND_EINVALID, NULL, "test: order %s invalid as asked",
                                 key);
                goto out;
        } else if (strcmp(outcome, "indoubt") == 0) {
                indoubt = 1;
        } else if (strcmp(outcome, "indoubt_once") == 0) {
                char marker[TB_LINE_MAX];
                snprintf(marker, sizeof(marker), "%s.lost.%s", inst->state_file, key);
                int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        close(fd);
                        rc = host->error(err, CA_BACKEND_EINDOUBT, NULL,
                                         "test: order %s timed out before the target acted", key);
                        goto out;
                }
        } else if (outcome_ms(outcome, "hang:", &ms)) {
                sleep_ms(ms);
        } else if (outcome_ms(outcome, "linger:", &linger_ms)) {
                /* applied as usual, answered late */
        } else if (outcome_ms(outcome, "sleep:", &ms)) {
                if (ms > inst->timeout_ms) {
                        sleep_ms(inst->timeout_ms);
                        host->result_set(r, CA_BACKEND_ERRORED, NULL,
                                         "test: order %s timed out after %llu ms", key,
                                         (unsigned long long)inst->timeout_ms);
                        goto out;
                }
                sleep_ms(ms);
        } else {
                rc = host->error(err, CA_BACKEND_EINVALID, NULL, "test: unknown test_outcome %s",
                                 outcome);
                goto out;
        }

        if (inst->count_only) {
                atomic_fetch_add(&inst->applied, 1);
        } else {
                snprintf(line, sizeof(line), "%s %s\n", key, change_name(host->order_change(o)));
                rc = append_line(inst->state_file, line, 1, err);
                if (rc != CA_BACKEND_OK)
                        goto out;
        }
        if (indoubt) {
                rc = host->error(err, CA_BACKEND_EINDOUBT, NULL,
                                 "test: order %s applied, then the connection dropped", key);
                goto out;
        }
        if (linger_ms)
                sleep_ms(linger_ms);
        snprintf(rid, sizeof(rid), "test:%s", key);
        host->result_set(r, CA_BACKEND_EXECUTED, rid, "recorded %s", key);
out:
        trace(inst, "end", o);
        return rc;
}

static int tb_probe(void *session, const struct ca_backend_order *o,
                    const struct ca_backend_settings *mapping, enum ca_backend_probe *answer,
                    struct ca_backend_result *r, struct ca_backend_error *err)
{
        struct tb_instance *inst = ((struct tb_session *)session)->inst;
        const char *key = host->order_key(o);
        char rid[TB_LINE_MAX];
        int found;

        if (order_unavailable(inst, host->argument(o, "test_outcome")))
                return inst->down_file ? down_error(inst, err)
                                       : host->error(err, CA_BACKEND_EUNAVAILABLE, NULL,
                                                     "test target unavailable for order %s", key);
        if (inst->probe_delay_ms)
                sleep_ms(inst->probe_delay_ms);
        if (inst->count_only) {
                *answer = CA_BACKEND_PROBE_UNKNOWN;
                return CA_BACKEND_OK;
        }
        found = state_has(inst, key, err);
        if (found < 0)
                return found;
        if (!found) {
                *answer = CA_BACKEND_PROBE_NOT_APPLIED;
                return CA_BACKEND_OK;
        }
        *answer = CA_BACKEND_PROBE_APPLIED;
        snprintf(rid, sizeof(rid), "test:%s", key);
        host->result_set(r, CA_BACKEND_EXECUTED, rid, "found %s", key);
        return CA_BACKEND_OK;
}

static int tb_check(void *session, struct ca_backend_error *err)
{
        struct tb_instance *inst = ((struct tb_session *)session)->inst;

        return is_down(inst) ? down_error(inst, err) : CA_BACKEND_OK;
}

static int tb_describe(void *session, const struct ca_backend_order *o,
                       const struct ca_backend_settings *mapping, struct ca_backend_result *r,
                       struct ca_backend_error *err)
{
        host->result_set(r, CA_BACKEND_EXECUTED, NULL, "would record %s", host->order_key(o));
        return CA_BACKEND_OK;
}

static const struct ca_backend_ops tb_ops = {
    .abi_version = CA_BACKEND_ABI_VERSION,
    .size = sizeof(struct ca_backend_ops),
    .signature = CA_BACKEND_SIGNATURE,
    .name = "testbackend",
    .description = "test back-end: records orders in a file",
    .instance_new = tb_instance_new,
    .mapping_check = tb_mapping_check,
    .instance_free = tb_instance_free,
    .session_open = tb_session_open,
    .session_close = tb_session_close,
    .execute = tb_execute,
    .probe = tb_probe,
    .check = tb_check,
    .describe = tb_describe,
};

CA_BACKEND_DEFINE_ENTRY(tb_ops, host, log)
