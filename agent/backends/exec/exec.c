/* SPDX-License-Identifier: Apache-2.0 */
/* exec: the back-end that runs a program per order (backends.md, "exec").
 *
 * [connector NAME]: command = "/abs/path arg 'quoted arg'" (no shell), probe_command
 * (optional, answers {"Applied": true|false|null}), timeout (default order_timeout),
 * env = comma list of variables passed through (PATH is always /usr/bin:/bin),
 * max_output (default 64k). No mapping settings.
 *
 * The program runs without a shell, in its own process group, with a scrubbed
 * environment, the order's JSON on its standard input and its output read through
 * pipes with caps. A program that outlives its timeout gets SIGTERM, then SIGKILL, and
 * is always reaped before execute returns: an order never leaves a process behind. It
 * is killed with the agent too (PR_SET_PDEATHSIG), so that after a crash no program of
 * the earlier run is still applying an order while the new one probes it; and because
 * that does not reach what the program started in turn, its process group is recorded
 * in the state directory while it runs (children.h), and the plug-in's start-up ends the
 * groups a killed agent left before any order is probed or run. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <connector-agent/backend.h>

#include "children.h"
#include "redact.h"

#define EXEC_MAX_ARGS         64
#define EXEC_MAX_ENV          32
#define EXEC_DEFAULT_TIMEOUT  60000
#define EXEC_DEFAULT_OUTPUT   (64 * 1024)
#define EXEC_MIN_OUTPUT       1024
#define EXEC_MAX_OUTPUT_LIMIT (64 * 1024 * 1024)
#define EXEC_STDERR_TAIL      2048 /* bytes of standard error kept (the end) */
#define EXEC_MESSAGE_TAIL     600  /* of which a message quotes at most this much */
#define EXEC_KILL_GRACE_MS    2000 /* SIGTERM to SIGKILL */
#define EXEC_DRAIN_MS         1000 /* reading output after exit (children may hold it) */
#define EXEC_FALLBACK_TICK_MS 50   /* only without pidfd: how often to check the child */
#define EXEC_SAFE_PATH        "PATH=/usr/bin:/bin"

static const struct ca_host *host;
/* The records of running programs; NULL when the host offers no state directory (doctor,
 * --check-config, --dry-run: they run no orders). Set at start-up, before any instance. */
static struct children *children;

struct exec_command {
        char *argv[EXEC_MAX_ARGS + 1];
        size_t argc;
        char *text; /* as configured, for messages */
};

struct exec_instance {
        struct exec_command command;
        struct exec_command probe; /* argc 0 when none */
        uint64_t timeout_ms;
        size_t max_output;
        char *env[EXEC_MAX_ENV]; /* names passed through */
        size_t env_count;
};

/* --- settings --- */

static void command_clear(struct exec_command *c)
{
        for (size_t i = 0; i < c->argc; i++)
                free(c->argv[i]);
        free(c->text);
        memset(c, 0, sizeof(*c));
}

/* Splits on blanks; '...' is literal, "..." allows \" and \\, a backslash outside quotes
 * escapes the next character. No variables, no globs: there is no shell. */
static int command_split(const char *key, const char *text, struct exec_command *c,
                         struct ca_backend_error *err)
{
        size_t len = strlen(text);
        char *word = malloc(len + 1);
        size_t w = 0;
        int in_word = 0;
        int rc = CA_BACKEND_OK;
        if (!word)
                return host->error(err, CA_BACKEND_EINTERNAL, key, "out of memory");
        for (size_t i = 0; i <= len; i++) {
                char ch = text[i];
                if (ch == '\0' || ch == ' ' || ch == '\t') {
                        if (in_word) {
                                if (c->argc == EXEC_MAX_ARGS) {
                                        rc = host->error(err, CA_BACKEND_EINVALID, key,
                                                         "%s: more than %d arguments", key,
                                                         EXEC_MAX_ARGS);
                                        goto out;
                                }
                                word[w] = '\0';
                                c->argv[c->argc] = strdup(word);
                                if (!c->argv[c->argc]) {
                                        rc = host->error(err, CA_BACKEND_EINTERNAL, key,
                                                         "out of memory");
                                        goto out;
                                }
                                c->argc++;
                                w = 0;
                                in_word = 0;
                        }
                        continue;
                }
                in_word = 1;
                if (ch == '\'') {
                        const char *end = strchr(text + i + 1, '\'');
                        if (!end) {
                                rc = host->error(err, CA_BACKEND_EINVALID, key,
                                                 "%s: unterminated ' quote", key);
                                goto out;
                        }
                        size_t n = (size_t)(end - (text + i + 1));
                        memcpy(word + w, text + i + 1, n);
                        w += n;
                        i += n + 1;
                } else if (ch == '"') {
                        for (i++; text[i] && text[i] != '"'; i++) {
                                if (text[i] == '\\' && (text[i + 1] == '"' || text[i + 1] == '\\'))
                                        i++;
                                word[w++] = text[i];
                        }
                        if (text[i] != '"') {
                                rc = host->error(err, CA_BACKEND_EINVALID, key,
                                                 "%s: unterminated \" quote", key);
                                goto out;
                        }
                } else if (ch == '\\' && text[i + 1]) {
                        word[w++] = text[++i];
                } else {
                        word[w++] = ch;
                }
        }
        if (c->argc == 0) {
                rc = host->error(err, CA_BACKEND_EINVALID, key, "%s: empty", key);
                goto out;
        }
        /* No search through PATH: the operator names the exact program. */
        if (c->argv[0][0] != '/') {
                rc = host->error(err, CA_BACKEND_EINVALID, key, "%s: %s is not an absolute path",
                                 key, c->argv[0]);
                goto out;
        }
        if (access(c->argv[0], X_OK) != 0) {
                rc = host->error(err, CA_BACKEND_EINVALID, key, "%s: cannot run %s: %s", key,
                                 c->argv[0], strerror(errno));
                goto out;
        }
        c->text = strdup(text);
        if (!c->text)
                rc = host->error(err, CA_BACKEND_EINTERNAL, key, "out of memory");
out:
        free(word);
        if (rc != CA_BACKEND_OK)
                command_clear(c);
        return rc;
}

static int env_name_valid(const char *s, size_t len)
{
        if (len == 0 ||
            !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
                return 0;
        for (size_t i = 1; i < len; i++) {
                char c = s[i];
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '_'))
                        return 0;
        }
        return 1;
}

static int env_parse(struct exec_instance *inst, const char *text, struct ca_backend_error *err)
{
        const char *p = text;
        while (*p) {
                while (*p == ' ' || *p == ',')
                        p++;
                if (!*p)
                        break;
                size_t len = strcspn(p, ", ");
                if (!env_name_valid(p, len) || (len == 4 && strncmp(p, "PATH", 4) == 0))
                        return host->error(err, CA_BACKEND_EINVALID, "env",
                                           "env: '%.*s' is not a variable name that can be passed "
                                           "(PATH is always %s)",
                                           (int)len, p, &EXEC_SAFE_PATH[5]);
                if (inst->env_count == EXEC_MAX_ENV)
                        return host->error(err, CA_BACKEND_EINVALID, "env",
                                           "env: more than %d names", EXEC_MAX_ENV);
                inst->env[inst->env_count] = strndup(p, len);
                if (!inst->env[inst->env_count])
                        return host->error(err, CA_BACKEND_EINTERNAL, "env", "out of memory");
                inst->env_count++;
                p += len;
        }
        return CA_BACKEND_OK;
}

static int size_parse(const char *text, size_t *out)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(text, &end, 10);
        if (errno || end == text || text[0] == '-')
                return -1;
        unsigned long long mult = 1;
        if (*end == 'k' || *end == 'K')
                mult = 1024;
        else if (*end == 'm' || *end == 'M')
                mult = 1024 * 1024;
        if (mult != 1)
                end++;
        if (*end == 'B' || *end == 'b')
                end++;
        if (*end || v > EXEC_MAX_OUTPUT_LIMIT / mult)
                return -1;
        *out = (size_t)(v * mult);
        return 0;
}

static void instance_free(struct exec_instance *inst)
{
        if (!inst)
                return;
        command_clear(&inst->command);
        command_clear(&inst->probe);
        for (size_t i = 0; i < inst->env_count; i++)
                free(inst->env[i]);
        free(inst);
}

static int exec_instance_new(const struct ca_host *h, const struct ca_backend_settings *s,
                             void **instance, struct ca_backend_error *err)
{
        int rc = CA_BACKEND_OK;
        uint64_t def_timeout;
        struct exec_instance *inst = calloc(1, sizeof(*inst));
        if (!inst)
                return h->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory");

        const char *cmd = h->setting(s, "command");
        if (!cmd || !*cmd)
                rc = h->error(err, CA_BACKEND_EINVALID, "command",
                              "command: required: the program to run and its arguments");
        else if (command_split("command", cmd, &inst->command, err) != CA_BACKEND_OK)
                rc = CA_BACKEND_EINVALID;

        const char *probe = h->setting(s, "probe_command");
        if (probe && *probe &&
            command_split("probe_command", probe, &inst->probe, err) != CA_BACKEND_OK)
                rc = CA_BACKEND_EINVALID;

        if (h->setting_ms(s, "order_timeout", EXEC_DEFAULT_TIMEOUT, &def_timeout, err) !=
                CA_BACKEND_OK ||
            h->setting_ms(s, "timeout", def_timeout, &inst->timeout_ms, err) != CA_BACKEND_OK)
                rc = CA_BACKEND_EINVALID;
        else if (inst->timeout_ms == 0)
                rc = h->error(err, CA_BACKEND_EINVALID, "timeout", "timeout: must be more than 0");

        const char *env = h->setting(s, "env");
        if (env && env_parse(inst, env, err) != CA_BACKEND_OK)
                rc = CA_BACKEND_EINVALID;

        inst->max_output = EXEC_DEFAULT_OUTPUT;
        const char *mo = h->setting(s, "max_output");
        if (mo && (size_parse(mo, &inst->max_output) < 0 || inst->max_output < EXEC_MIN_OUTPUT))
                rc = h->error(err, CA_BACKEND_EINVALID, "max_output",
                              "max_output = %s: a size from 1k to 64M (e.g. 64k)", mo);

        if (rc != CA_BACKEND_OK) {
                instance_free(inst);
                return rc;
        }
        *instance = inst;
        return CA_BACKEND_OK;
}

static int exec_mapping_check(void *instance, const struct ca_backend_settings *mapping,
                              struct ca_backend_error *err)
{
        int rc = CA_BACKEND_OK;
        for (size_t i = 0; i < host->setting_count(mapping); i++) {
                const char *k = host->setting_key(mapping, i);
                if (strcmp(k, "connector") != 0)
                        rc = host->error(err, CA_BACKEND_EINVALID, k,
                                         "%s: the exec back-end takes no mapping settings", k);
        }
        return rc;
}

static void exec_instance_free(void *instance)
{
        instance_free(instance);
}

/* A session holds nothing: each order runs its own process. */
static int exec_session_open(void *instance, void **session, struct ca_backend_error *err)
{
        *session = instance;
        return CA_BACKEND_OK;
}

static void exec_session_close(void *session)
{
}

/* --- running a program --- */

struct run {
        int spawn_error; /* errno from posix_spawn, 0 when it ran */
        int reaped;
        int status; /* from waitpid */
        int timed_out;
        char *out; /* standard output, up to max_output bytes, NUL-terminated */
        size_t out_len;
        int out_truncated; /* it printed more */
        char err_tail[EXEC_STDERR_TAIL];
        size_t err_len;
};

static uint64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void tail_append(struct run *r, const char *buf, size_t n)
{
        if (n >= sizeof(r->err_tail)) {
                memcpy(r->err_tail, buf + n - sizeof(r->err_tail), sizeof(r->err_tail));
                r->err_len = sizeof(r->err_tail);
                return;
        }
        if (r->err_len + n > sizeof(r->err_tail)) {
                size_t drop = r->err_len + n - sizeof(r->err_tail);
                memmove(r->err_tail, r->err_tail + drop, r->err_len - drop);
                r->err_len -= drop;
        }
        memcpy(r->err_tail + r->err_len, buf, n);
        r->err_len += n;
}

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

/* Reads what is there; returns 1 at end of file or on error (the fd is then closed). */
static int drain(int *fd, struct run *r, size_t cap, int is_out)
{
        char buf[16384];
        for (;;) {
                ssize_t n = read(*fd, buf, sizeof(buf));
                if (n > 0) {
                        if (!is_out) {
                                tail_append(r, buf, (size_t)n);
                                continue;
                        }
                        size_t room = cap - r->out_len;
                        size_t take = (size_t)n < room ? (size_t)n : room;
                        memcpy(r->out + r->out_len, buf, take);
                        r->out_len += take;
                        if (take < (size_t)n)
                                r->out_truncated = 1; /* keep reading so the program never blocks */
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return 0;
                close_fd(fd);
                return 1;
        }
}

static char **env_build(const struct exec_instance *inst)
{
        char **envp = calloc(inst->env_count + 2, sizeof(*envp));
        size_t n = 0;
        if (!envp)
                return NULL;
        envp[n] = strdup(EXEC_SAFE_PATH);
        if (!envp[n])
                goto fail;
        n++;
        for (size_t i = 0; i < inst->env_count; i++) {
                const char *v = getenv(inst->env[i]);
                if (!v)
                        continue;
                size_t len = strlen(inst->env[i]) + strlen(v) + 2;
                envp[n] = malloc(len);
                if (!envp[n])
                        goto fail;
                snprintf(envp[n], len, "%s=%s", inst->env[i], v);
                n++;
        }
        return envp;
fail:
        for (size_t i = 0; i < n; i++)
                free(envp[i]);
        free(envp);
        return NULL;
}

static void env_free(char **envp)
{
        if (!envp)
                return;
        for (size_t i = 0; envp[i]; i++)
                free(envp[i]);
        free(envp);
}

/* Closes every descriptor from 3 up except keep (the child's exec-error pipe). */
static void close_inherited(int keep)
{
        if (keep > 3 && close_range(3, (unsigned)keep - 1, 0) < 0 && errno == ENOSYS) {
                for (int fd = 3; fd < keep; fd++)
                        close(fd);
        }
        if (close_range((unsigned)keep + 1, ~0U, 0) < 0 && errno == ENOSYS) {
                for (int fd = keep + 1; fd < 65536; fd++)
                        close(fd);
        }
}

/* dup2 that also keeps a descriptor already in place across exec. */
static int move_fd(int fd, int target)
{
        if (fd != target)
                return dup2(fd, target);
        int fl = fcntl(fd, F_GETFD);
        return fl < 0 ? -1 : fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
}

/* The child between fork and exec: async-signal-safe calls only. Waits for one byte on
 * go (the parent has recorded its group), then reports a failure's errno on report
 * (close-on-exec, so a successful exec closes it with nothing sent). */
static _Noreturn void child_exec(const struct exec_command *cmd, char **envp, int in, int out,
                                 int errfd, int report, int go, pid_t parent)
{
        static const int sigs[] = {SIGPIPE, SIGINT,  SIGTERM, SIGHUP, SIGQUIT,
                                   SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM};
        struct sigaction dfl;
        sigset_t none;
        int e;

        /* A group of its own, so that a timeout reaches its children; and it dies with
         * the agent: a program that outlived a killed agent would still be applying its
         * order while the restarted agent probes it ("not applied") and runs it again. */
        setpgid(0, 0);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(127); /* the agent is already gone */
        /* Nothing runs before the group is on record: end of file without the byte means
         * the parent could not record it. */
        char byte;
        ssize_t got;
        do
                got = read(go, &byte, 1);
        while (got < 0 && errno == EINTR);
        if (got != 1)
                _exit(127);
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
                sigaction(sigs[i], &dfl, NULL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (move_fd(in, STDIN_FILENO) < 0 || move_fd(out, STDOUT_FILENO) < 0 ||
            move_fd(errfd, STDERR_FILENO) < 0)
                goto fail;
        /* Descriptors the agent opened without O_CLOEXEC stay with the agent. */
        close_inherited(report);
        execve(cmd->argv[0], cmd->argv, envp);
fail:
        e = errno;
        while (write(report, &e, sizeof(e)) < 0 && errno == EINTR)
                ;
        _exit(127);
}

/* Starts cmd; 0 with *pid set, or the errno that kept it from running. A failure to
 * record its group is also the errno, with *record_failed set and why in msg. */
static int spawn(const struct exec_command *cmd, char **envp, int in, int out, int errfd,
                 pid_t *pid, int *record_failed, char *msg, size_t msglen)
{
        int report[2], go[2], e = 0;
        pid_t parent = getpid();
        ssize_t n;

        if (pipe2(report, O_CLOEXEC) < 0)
                return errno;
        if (pipe2(go, O_CLOEXEC) < 0) {
                e = errno;
                close(report[0]);
                close(report[1]);
                return e;
        }
        *pid = fork();
        if (*pid < 0) {
                e = errno;
                close(report[0]);
                close(report[1]);
                close(go[0]);
                close(go[1]);
                return e;
        }
        if (*pid == 0)
                child_exec(cmd, envp, in, out, errfd, report[1], go[0], parent);
        close(report[1]);
        close(go[0]);
        /* Both sides set the group, so that it exists before it is recorded. */
        setpgid(*pid, *pid);
        int rc = children ? children_add(children, *pid, msg, msglen) : 0;
        if (rc == 0) {
                while (write(go[1], "g", 1) < 0 && errno == EINTR)
                        ;
        }
        close(go[1]);
        do
                n = read(report[0], &e, sizeof(e));
        while (n < 0 && errno == EINTR);
        close(report[0]);
        if (rc < 0 || n == (ssize_t)sizeof(e)) {
                while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                if (rc == 0 && children)
                        children_remove(children, *pid);
                *record_failed = rc < 0;
                return rc < 0 ? -rc : e ? e : EIO;
        }
        return 0;
}

static int set_nonblock(int fd)
{
        int fl = fcntl(fd, F_GETFL);
        return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Runs cmd with input on its standard input; fills r. Returns CA_BACKEND_OK when the
 * program ran (whatever it did), else a code with err filled. */
static int run_program(const struct exec_instance *inst, const struct exec_command *cmd,
                       const char *input, struct run *r, struct ca_backend_error *err)
{
        int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
        int pidfd = -1;
        char **envp = NULL;
        pid_t pid = -1;
        int rc = CA_BACKEND_OK;
        sigset_t pipe_set, old_mask;
        size_t in_len = strlen(input), in_off = 0;

        memset(r, 0, sizeof(*r));
        r->out = malloc(inst->max_output + 1);
        envp = env_build(inst);
        if (!r->out || !envp) {
                rc = host->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory");
                goto out;
        }
        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
                rc = host->error(err, CA_BACKEND_EINTERNAL, NULL, "cannot create pipes: %s",
                                 strerror(errno));
                goto out;
        }
        /* A program that exits without reading its input must not kill the agent with
         * SIGPIPE: block it on this thread while we write, and swallow it afterwards. */
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);

        int record_failed = 0;
        char why[512] = "";
        r->spawn_error =
            spawn(cmd, envp, in[0], out[1], errp[1], &pid, &record_failed, why, sizeof(why));
        close_fd(&in[0]);
        close_fd(&out[1]);
        close_fd(&errp[1]);
        if (r->spawn_error) {
                pid = -1;
                /* Not the program's fault, and nothing ran: the order waits. */
                if (record_failed)
                        rc = host->error(err, CA_BACKEND_EUNAVAILABLE, NULL, "%s", why);
                goto unmask;
        }
        set_nonblock(in[1]);
        set_nonblock(out[0]);
        set_nonblock(errp[0]);
#ifdef SYS_pidfd_open
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
        if (in_len == 0)
                close_fd(&in[1]);

        uint64_t deadline = mono_ms() + inst->timeout_ms;
        uint64_t kill_at = 0, drain_until = 0;
        for (;;) {
                if (r->reaped && out[0] < 0 && errp[0] < 0)
                        break;
                uint64_t now = mono_ms();
                if (r->reaped && now >= drain_until)
                        break;
                if (!r->reaped && !r->timed_out && now >= deadline) {
                        r->timed_out = 1;
                        kill(-pid, SIGTERM);
                        kill_at = now + EXEC_KILL_GRACE_MS;
                        close_fd(&in[1]);
                }
                if (!r->reaped && r->timed_out && now >= kill_at) {
                        kill(-pid, SIGKILL);
                        while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
                                ;
                        r->reaped = 1;
                        break;
                }
                uint64_t until = r->reaped ? drain_until : r->timed_out ? kill_at : deadline;
                int wait_ms = until > now ? (int)(until - now) : 0;
                if (pidfd < 0 && !r->reaped && wait_ms > EXEC_FALLBACK_TICK_MS)
                        wait_ms = EXEC_FALLBACK_TICK_MS;

                struct pollfd p[4];
                nfds_t n = 0;
                int i_in = -1, i_out = -1, i_err = -1, i_pid = -1;
                if (in[1] >= 0) {
                        i_in = (int)n;
                        p[n++] = (struct pollfd){.fd = in[1], .events = POLLOUT};
                }
                if (out[0] >= 0) {
                        i_out = (int)n;
                        p[n++] = (struct pollfd){.fd = out[0], .events = POLLIN};
                }
                if (errp[0] >= 0) {
                        i_err = (int)n;
                        p[n++] = (struct pollfd){.fd = errp[0], .events = POLLIN};
                }
                if (pidfd >= 0 && !r->reaped) {
                        i_pid = (int)n;
                        p[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
                }
                int pr = poll(p, n, wait_ms);
                if (pr < 0 && errno != EINTR) {
                        rc = host->error(err, CA_BACKEND_EINTERNAL, NULL, "poll: %s",
                                         strerror(errno));
                        kill(-pid, SIGKILL);
                        while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
                                ;
                        r->reaped = 1;
                        break;
                }
                if (pr > 0 && i_in >= 0 && p[i_in].revents) {
                        if (p[i_in].revents & (POLLERR | POLLHUP)) {
                                close_fd(&in[1]);
                        } else {
                                ssize_t w = write(in[1], input + in_off, in_len - in_off);
                                if (w > 0)
                                        in_off += (size_t)w;
                                else if (w < 0 && errno != EAGAIN && errno != EINTR)
                                        close_fd(&in[1]); /* EPIPE: it does not want the rest */
                                if (in_off == in_len)
                                        close_fd(&in[1]);
                        }
                }
                if (pr > 0 && i_out >= 0 && p[i_out].revents)
                        drain(&out[0], r, inst->max_output, 1);
                if (pr > 0 && i_err >= 0 && p[i_err].revents)
                        drain(&errp[0], r, 0, 0);
                int exited = pr > 0 && i_pid >= 0 && p[i_pid].revents;
                if (exited || (pidfd < 0 && !r->reaped)) {
                        pid_t w = waitpid(pid, &r->status, WNOHANG);
                        if (w == pid) {
                                r->reaped = 1;
                                drain_until = mono_ms() + EXEC_DRAIN_MS;
                                close_fd(&in[1]);
                        }
                }
        }
        if (r->timed_out)
                kill(-pid, SIGKILL); /* whatever it started in its group goes too */
        if (children)
                children_remove(children, pid); /* reaped: its number may be reused now */
        r->out[r->out_len] = '\0';

unmask:
        close_fd(&in[1]);
        {
                /* Swallow a SIGPIPE our writes raised before unblocking it. */
                sigset_t pending;
                struct timespec zero = {0, 0};
                sigpending(&pending);
                if (sigismember(&pending, SIGPIPE))
                        sigtimedwait(&pipe_set, NULL, &zero);
                pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
        }
out:
        close_fd(&in[0]);
        close_fd(&in[1]);
        close_fd(&out[0]);
        close_fd(&out[1]);
        close_fd(&errp[0]);
        close_fd(&errp[1]);
        if (pidfd >= 0)
                close(pidfd);
        env_free(envp);
        return rc;
}

static void run_clear(struct run *r)
{
        free(r->out);
        r->out = NULL;
}

/* --- turning what it did into words --- */

/* Copies the end of text into out as valid, printable UTF-8: control characters but
 * newline and tab become '?', invalid bytes too; the start is moved to a character
 * boundary; trailing blank lines go. */
static void printable_tail(const char *text, size_t len, char *out, size_t outlen)
{
        size_t start = len > EXEC_MESSAGE_TAIL ? len - EXEC_MESSAGE_TAIL : 0;
        while (start < len && ((unsigned char)text[start] & 0xc0) == 0x80)
                start++;
        size_t o = 0;
        for (size_t i = start; i < len && o + 5 < outlen;) {
                unsigned char c = (unsigned char)text[i];
                size_t n = c < 0x80             ? 1
                           : (c & 0xe0) == 0xc0 ? 2
                           : (c & 0xf0) == 0xe0 ? 3
                           : (c & 0xf8) == 0xf0 ? 4
                                                : 0;
                int ok = n > 0 && i + n <= len;
                for (size_t k = 1; ok && k < n; k++)
                        ok = ((unsigned char)text[i + k] & 0xc0) == 0x80;
                if (n == 2 && c < 0xc2)
                        ok = 0;
                if (!ok) {
                        out[o++] = '?';
                        i++;
                        continue;
                }
                if (n == 1 && ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)) {
                        out[o++] = '?';
                        i++;
                        continue;
                }
                memcpy(out + o, text + i, n);
                o += n;
                i += n;
        }
        while (o > 0 && (out[o - 1] == '\n' || out[o - 1] == ' ' || out[o - 1] == '\t'))
                o--;
        out[o] = '\0';
}

static void duration_text(uint64_t ms, char *buf, size_t len)
{
        if (ms % 1000 == 0)
                snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
        else
                snprintf(buf, len, "%llums", (unsigned long long)ms);
}

static int only_blanks(const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (s[i] != ' ' && s[i] != '\n' && s[i] != '\r' && s[i] != '\t')
                        return 0;
        return 1;
}

/* What went wrong with a run that is not a clean exit, or NULL. Writes into buf. */
static const char *run_failure(const struct exec_instance *inst, const struct exec_command *cmd,
                               const struct run *r, char *buf, size_t len)
{
        char tail[EXEC_MESSAGE_TAIL * 4 + 8];
        char dur[32];
        printable_tail(r->err_tail, r->err_len, tail, sizeof(tail));
        const char *sep = tail[0] ? ": " : "";
        if (r->spawn_error) {
                snprintf(buf, len, "cannot run %s: %s", cmd->argv[0], strerror(r->spawn_error));
                return buf;
        }
        if (r->timed_out) {
                duration_text(inst->timeout_ms, dur, sizeof(dur));
                snprintf(buf, len, "%s killed after %s (timeout)%s%s", cmd->argv[0], dur, sep,
                         tail);
                return buf;
        }
        if (WIFSIGNALED(r->status)) {
                int sig = WTERMSIG(r->status);
                const char *abbrev = sigabbrev_np(sig);
                snprintf(buf, len, "%s was killed by signal %d (SIG%s)%s%s", cmd->argv[0], sig,
                         abbrev ? abbrev : "?", sep, tail);
                return buf;
        }
        if (r->out_truncated) {
                snprintf(buf, len, "%s printed more than %zu bytes on standard output (max_output)",
                         cmd->argv[0], inst->max_output);
                return buf;
        }
        return NULL;
}

static int exec_execute(void *session, const struct ca_backend_order *order,
                        const struct ca_backend_settings *mapping, struct ca_backend_result *r,
                        struct ca_backend_error *err)
{
        struct exec_instance *inst = session;
        struct run run;
        char why[1024];
        const char *input = host->order_json(order);
        if (!input)
                return host->error(err, CA_BACKEND_EINTERNAL, NULL, "cannot serialise the order");
        int rc = run_program(inst, &inst->command, input, &run, err);
        if (rc != CA_BACKEND_OK)
                goto out;

        const char *prog = inst->command.argv[0];
        if (run_failure(inst, &inst->command, &run, why, sizeof(why))) {
                host->result_set(r, CA_BACKEND_ERRORED, NULL, "%s", why);
                goto out;
        }
        int code = WEXITSTATUS(run.status);
        char tail[EXEC_MESSAGE_TAIL * 4 + 8];
        printable_tail(run.err_tail, run.err_len, tail, sizeof(tail));

        if (only_blanks(run.out, run.out_len)) {
                if (code == 0)
                        host->result_set(r, CA_BACKEND_EXECUTED, NULL, "%s", "");
                else
                        host->result_set(r, CA_BACKEND_ERRORED, NULL,
                                         "%s exited with status %d%s%s", prog, code,
                                         tail[0] ? ": " : "", tail);
                goto out;
        }

        json_error_t jerr;
        json_t *answer = json_loadb(run.out, run.out_len, 0, &jerr);
        const char *state =
            answer ? json_string_value(json_object_get(answer, "ProvisioningState")) : NULL;
        json_t *jmsg = answer ? json_object_get(answer, "Message") : NULL;
        json_t *jri = answer ? json_object_get(answer, "ResourceIdentifier") : NULL;
        int valid = json_is_object(answer) && state &&
                    (strcmp(state, "Executed") == 0 || strcmp(state, "Errored") == 0) &&
                    (!jmsg || json_is_string(jmsg) || json_is_null(jmsg)) &&
                    (!jri || json_is_string(jri) || json_is_null(jri));
        if (!valid) {
                host->result_set(
                    r, CA_BACKEND_ERRORED, NULL,
                    "%s printed an answer that is not valid JSON (expected "
                    "{\"ProvisioningState\": \"Executed\"|\"Errored\", ...}; exit status %d)",
                    prog, code);
        } else {
                const char *msg = json_string_value(jmsg);
                const char *ri = json_string_value(jri);
                if (strcmp(state, "Executed") == 0 && code != 0)
                        host->result_set(r, CA_BACKEND_ERRORED, ri,
                                         "%s answered Executed but exited with status %d%s%s", prog,
                                         code, msg && *msg ? ": " : "", msg ? msg : "");
                else
                        host->result_set(r,
                                         strcmp(state, "Executed") == 0 ? CA_BACKEND_EXECUTED
                                                                        : CA_BACKEND_ERRORED,
                                         ri, "%s", msg ? msg : "");
        }
        json_decref(answer);
out:
        run_clear(&run);
        return rc;
}

static int exec_probe(void *session, const struct ca_backend_order *order,
                      const struct ca_backend_settings *mapping, enum ca_backend_probe *answer,
                      struct ca_backend_result *r, struct ca_backend_error *err)
{
        struct exec_instance *inst = session;
        struct run run = {0};
        char why[1024];
        *answer = CA_BACKEND_PROBE_UNKNOWN;
        if (inst->probe.argc == 0) {
                host->result_set(r, CA_BACKEND_ERRORED, NULL,
                                 "in doubt: no probe_command is configured to tell whether %s ran "
                                 "for this order",
                                 inst->command.argv[0]);
                return CA_BACKEND_OK;
        }
        const char *input = host->order_json(order);
        if (!input)
                return host->error(err, CA_BACKEND_EINTERNAL, NULL, "cannot serialise the order");
        int rc = run_program(inst, &inst->probe, input, &run, err);
        if (rc != CA_BACKEND_OK)
                goto out;
        const char *prog = inst->probe.argv[0];
        if (run_failure(inst, &inst->probe, &run, why, sizeof(why))) {
                host->result_set(r, CA_BACKEND_ERRORED, NULL, "in doubt: probe %s", why);
                goto out;
        }
        json_t *a = json_loadb(run.out, run.out_len, 0, NULL);
        json_t *applied = a ? json_object_get(a, "Applied") : NULL;
        if (WEXITSTATUS(run.status) != 0 || !json_is_object(a) || !applied ||
            !(json_is_boolean(applied) || json_is_null(applied))) {
                host->result_set(r, CA_BACKEND_ERRORED, NULL,
                                 "in doubt: probe %s did not answer {\"Applied\": true|false|null} "
                                 "(exit status %d)",
                                 prog, WEXITSTATUS(run.status));
        } else if (json_is_true(applied)) {
                *answer = CA_BACKEND_PROBE_APPLIED;
                const char *msg = json_string_value(json_object_get(a, "Message"));
                host->result_set(r, CA_BACKEND_EXECUTED,
                                 json_string_value(json_object_get(a, "ResourceIdentifier")), "%s",
                                 msg ? msg : "");
        } else if (json_is_false(applied)) {
                *answer = CA_BACKEND_PROBE_NOT_APPLIED;
        } else {
                host->result_set(r, CA_BACKEND_ERRORED, NULL,
                                 "in doubt: probe %s cannot tell whether the order was applied",
                                 prog);
        }
        json_decref(a);
out:
        run_clear(&run);
        return rc;
}

/* The program is there and may be run: all that can be known without running it. */
static int exec_check(void *session, struct ca_backend_error *err)
{
        struct exec_instance *inst = session;
        if (access(inst->command.argv[0], X_OK) != 0)
                return host->error(err, CA_BACKEND_EUNAVAILABLE, "command", "cannot run %s: %s",
                                   inst->command.argv[0], strerror(errno));
        return CA_BACKEND_OK;
}

static int exec_describe(void *session, const struct ca_backend_order *order,
                         const struct ca_backend_settings *mapping, struct ca_backend_result *r,
                         struct ca_backend_error *err)
{
        struct exec_instance *inst = session;
        char argv_text[1024] = "";
        char envs[512] = "PATH";
        char dur[32];
        size_t o = 0;
        for (size_t i = 0; i < inst->command.argc && o < sizeof(argv_text); i++)
                o += (size_t)snprintf(argv_text + o, sizeof(argv_text) - o, "%s'%s'", i ? " " : "",
                                      inst->command.argv[i]);
        o = strlen(envs);
        for (size_t i = 0; i < inst->env_count && o < sizeof(envs); i++)
                o += (size_t)snprintf(envs + o, sizeof(envs) - o, ", %s", inst->env[i]);
        duration_text(inst->timeout_ms, dur, sizeof(dur));
        /* The program gets the order whole; what is shown hides its values (redact.h). */
        char *input = redact_order_json(host->order_json(order));
        if (!input)
                return host->error(err, CA_BACKEND_EINTERNAL, NULL, "cannot serialise the order");
        host->result_set(r, CA_BACKEND_EXECUTED, NULL,
                         "would run %s (no shell, timeout %s, environment: %s) with standard "
                         "input: %s",
                         argv_text, dur, envs, input);
        free(input);
        return CA_BACKEND_OK;
}

static void say_ended(const char *line)
{
        host->log(CA_BACKEND_LOG_WARNING, "%s", line);
}

/* Before any order is probed or run, end what the programs of a killed agent left
 * running. The agent loads a plug-in once per process; a second load (tests) shares the
 * first one's records, which running programs may be using. Main thread. */
static unsigned startups;

static int exec_startup(const struct ca_host *h, struct ca_backend_error *err)
{
        char msg[512];
        if (startups > 0) {
                startups++;
                return CA_BACKEND_OK;
        }
        const char *dir = CA_BACKEND_HOST_HAS(h, state_dir) ? h->state_dir() : NULL;
        if (dir &&
            children_open(dir, EXEC_KILL_GRACE_MS, say_ended, &children, msg, sizeof(msg)) < 0)
                return h->error(err, CA_BACKEND_EINTERNAL, NULL, "%s", msg);
        startups = 1;
        return CA_BACKEND_OK;
}

static void exec_shutdown(void)
{
        if (startups > 0 && --startups == 0) {
                children_free(children);
                children = NULL;
        }
}

static const struct ca_backend_ops ops = {
    .abi_version = CA_BACKEND_ABI_VERSION,
    .size = sizeof(struct ca_backend_ops),
    .signature = CA_BACKEND_SIGNATURE,
    .name = "exec",
    .description = "runs a program per order, the order as JSON on its standard input",
    .instance_new = exec_instance_new,
    .mapping_check = exec_mapping_check,
    .instance_free = exec_instance_free,
    .session_open = exec_session_open,
    .session_close = exec_session_close,
    .execute = exec_execute,
    .probe = exec_probe,
    .check = exec_check,
    .describe = exec_describe,
    .startup = exec_startup,
    .shutdown = exec_shutdown,
};

CA_BACKEND_DEFINE_ENTRY(ops, host, log)
