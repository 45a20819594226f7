/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the exec back-end, through the real loader and host table, with small shell
 * programs written into a temporary directory at test time: JSON answers, exit
 * statuses, a hang (timeout kill), one that ignores SIGTERM, garbage output, a flood of
 * output (cap), a crash (SIGSEGV), argument quoting, the scrubbed environment, the
 * order on standard input, probe and describe; and the records of running programs'
 * process groups in the state directory, with which a restart ends what a killed agent's
 * programs left running (each "agent run" there is a process of its own, as in life). */
#include "backend_test_util.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

static char *dir;
static struct backend *be;
static const struct ca_backend_ops *ops;
static pid_t stray; /* a process a failed test would leave paused forever */

static const char *ORDER =
    "{\"Id\":\"e1\",\"AssignedResourceTypeId\":\"9\",\"ChangeType\":"
    "\"Added\",\"Changes\":{\"uid\":\"jbond\",\"note\":\"it's; $(rm -rf /)\"}}";

static void script(const char *name, const char *body)
{
        char path[4200], text[8192];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        snprintf(text, sizeof(text), "#!/bin/sh\n%s\n", body);
        write_text(path, text, 0755);
}

static int setup(void **state)
{
        dir = tmpdir_make();
        be = load_backend("exec");
        ops = backend_ops(be);
        char body[4300];
        snprintf(body, sizeof(body),
                 "cat > %s/input.json\nenv > %s/env.txt\n"
                 "echo '{\"ProvisioningState\": \"Executed\", \"Message\": \"done\", "
                 "\"ResourceIdentifier\": \"rid-1\"}'",
                 dir, dir);
        script("answer.sh", body);
        script("fail.sh",
               "echo 'first line' >&2\necho 'LDAP error 49: invalid credentials' >&2\nexit 3");
        script("hang.sh", "sleep 30");
        script("stubborn.sh", "trap '' TERM\nsleep 30\nsleep 30");
        script("garbage.sh", "echo 'hello, I am not JSON'");
        script("flood.sh", "head -c 1048576 /dev/zero | tr '\\000' 'a'");
        script("segv.sh", "kill -SEGV $$");
        script("quiet.sh", "exit 0");
        script("errored.sh",
               "echo '{\"ProvisioningState\": \"Errored\", \"Message\": \"quota full\"}'\nexit 1");
        script("liar.sh", "echo '{\"ProvisioningState\": \"Executed\"}'\nexit 4");
        script("badstate.sh", "echo '{\"ProvisioningState\": \"Done\"}'");
        script("binary.sh", "printf 'bad\\001\\377bytes\\n\\n' >&2\nexit 2");
        snprintf(body, sizeof(body), "for a in \"$@\"; do echo \"[$a]\"; done > %s/args.txt", dir);
        script("args.sh", body);
        script("applied.sh",
               "cat >/dev/null\necho '{\"Applied\": true, \"ResourceIdentifier\": \"p-1\"}'");
        script("notapplied.sh", "echo '{\"Applied\": false}'");
        script("cannottell.sh", "echo '{\"Applied\": null}'");
        /* spawner.sh NAME: its background child would apply the order late; it writes its
         * pid to NAME.pid first. hold.sh NAME: writes its own pid, then waits. */
        snprintf(body, sizeof(body), "cat >/dev/null\n%s/late.sh \"$1\" &\nwait", dir);
        script("spawner.sh", body);
        snprintf(body, sizeof(body),
                 "echo $$ > %s/$1.tmp && mv %s/$1.tmp %s/$1.pid\nsleep 30\n"
                 "echo applied > %s/$1.applied",
                 dir, dir, dir, dir);
        script("late.sh", body);
        snprintf(body, sizeof(body),
                 "cat >/dev/null\necho $$ > %s/$1.tmp && mv %s/$1.tmp %s/$1.pid\nsleep 30", dir,
                 dir, dir);
        script("hold.sh", body);
        return 0;
}

static int teardown(void **state)
{
        if (stray > 0)
                kill(stray, SIGKILL);
        backend_unload(be);
        tmpdir_remove(dir);
        return 0;
}

struct inst {
        struct ca_settings s;
        void *inst;
        void *sess;
};

/* An instance whose command is <dir>/<prog> [args]; extra settings after. */
static void inst_open(struct inst *in, const char *prog, const char *const *extra)
{
        char cmd[4400];
        snprintf(cmd, sizeof(cmd), "%s/%s", dir, prog);
        const char *kv[32] = {"backend", "exec", "command", cmd, "order_timeout", "10s"};
        size_t n = 6;
        for (size_t i = 0; extra && extra[i]; i++)
                kv[n++] = extra[i];
        kv[n] = NULL;
        settings_make(&in->s, kv);
        struct ca_backend_error err = {0};
        if (ops->instance_new(backend_host(), backend_settings(&in->s), &in->inst, &err) !=
            CA_BACKEND_OK)
                fail_msg("instance_new: %s", err.message);
        assert_int_equal(ops->session_open(in->inst, &in->sess, &err), CA_BACKEND_OK);
}

static void inst_close(struct inst *in)
{
        ops->session_close(in->sess);
        ops->instance_free(in->inst);
        settings_clear(&in->s);
}

static struct ca_backend_result run_order(const char *prog, const char *const *extra,
                                          const char *order_json)
{
        struct inst in;
        inst_open(&in, prog, extra);
        struct ca_order *o = order_make(order_json ? order_json : ORDER);
        struct ca_settings map = {0};
        struct ca_backend_result r = {0};
        struct ca_backend_error err = {0};
        int rc = ops->execute(in.sess, backend_order(o), backend_settings(&map), &r, &err);
        if (rc != CA_BACKEND_OK)
                fail_msg("execute %s returned %d: %s", prog, rc, err.message);
        assert_true(r.set);
        order_free(o);
        inst_close(&in);
        return r;
}

static void expect(struct ca_backend_result r, enum ca_backend_state st, const char *needle)
{
        if (r.state != st)
                fail_msg("expected %s, got the other: %s",
                         st == CA_BACKEND_EXECUTED ? "Executed" : "Errored", r.message);
        if (needle && !strstr(r.message, needle))
                fail_msg("message \"%s\" lacks \"%s\"", r.message, needle);
}

static char *slurp(const char *name)
{
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        char *buf = calloc(1, 1 << 20);
        assert_non_null(buf);
        size_t n = fread(buf, 1, (1 << 20) - 1, f);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

static uint64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_json_answer_input_and_env(void **state)
{
        setenv("CA_TEST_PASSED", "yes", 1);
        setenv("CA_TEST_SCRUBBED", "secret-value", 1);
        const char *extra[] = {"env", "CA_TEST_PASSED, CA_TEST_UNSET", NULL};
        struct ca_backend_result r = run_order("answer.sh", extra, NULL);
        expect(r, CA_BACKEND_EXECUTED, "done");
        assert_string_equal(r.resource_identifier, "rid-1");

        /* The order arrives whole on standard input. */
        char *input = slurp("input.json");
        json_t *got = json_loads(input, 0, NULL);
        json_t *want = json_loads(ORDER, 0, NULL);
        assert_non_null(got);
        assert_true(json_equal(got, want));
        json_decref(got);
        json_decref(want);
        free(input);

        char *env = slurp("env.txt");
        assert_non_null(strstr(env, "PATH=/usr/bin:/bin\n"));
        assert_non_null(strstr(env, "CA_TEST_PASSED=yes\n"));
        assert_null(strstr(env, "CA_TEST_SCRUBBED"));
        assert_null(strstr(env, "secret-value"));
        assert_null(strstr(env, "CA_TEST_BUILD_DIR"));
        free(env);
        unsetenv("CA_TEST_SCRUBBED");
}

static void test_exit_status_and_stderr(void **state)
{
        struct ca_backend_result r = run_order("fail.sh", NULL, NULL);
        expect(r, CA_BACKEND_ERRORED, "exited with status 3");
        assert_non_null(strstr(r.message, "LDAP error 49: invalid credentials"));
        expect(run_order("quiet.sh", NULL, NULL), CA_BACKEND_EXECUTED, NULL);
        r = run_order("errored.sh", NULL, NULL);
        expect(r, CA_BACKEND_ERRORED, NULL);
        assert_string_equal(r.message, "quota full");
        expect(run_order("liar.sh", NULL, NULL), CA_BACKEND_ERRORED,
               "answered Executed but exited with status 4");
        expect(run_order("badstate.sh", NULL, NULL), CA_BACKEND_ERRORED, "not valid JSON");

        /* Control bytes and invalid UTF-8 never reach the message. */
        r = run_order("binary.sh", NULL, NULL);
        expect(r, CA_BACKEND_ERRORED, "exited with status 2: bad??bytes");
        for (const char *c = r.message; *c; c++)
                assert_true((unsigned char)*c >= 0x20 || *c == '\n');
}

static void test_timeout_kills(void **state)
{
        const char *extra[] = {"timeout", "300ms", NULL};
        uint64_t t0 = now_ms();
        struct ca_backend_result r = run_order("hang.sh", extra, NULL);
        uint64_t took = now_ms() - t0;
        expect(r, CA_BACKEND_ERRORED, "killed after 300ms");
        assert_true(took >= 300 && took < 3000);

        /* One that ignores SIGTERM gets SIGKILL after the grace period. */
        const char *extra2[] = {"timeout", "1s", NULL};
        t0 = now_ms();
        r = run_order("stubborn.sh", extra2, NULL);
        took = now_ms() - t0;
        expect(r, CA_BACKEND_ERRORED, "killed after 1s");
        assert_true(took >= 1000 && took < 6000);
}

static void test_garbage_flood_crash(void **state)
{
        expect(run_order("garbage.sh", NULL, NULL), CA_BACKEND_ERRORED,
               "printed an answer that is not valid JSON");
        uint64_t t0 = now_ms();
        expect(run_order("flood.sh", NULL, NULL), CA_BACKEND_ERRORED,
               "printed more than 65536 bytes");
        assert_true(now_ms() - t0 < 5000);
        const char *small[] = {"max_output", "2k", NULL};
        expect(run_order("flood.sh", small, NULL), CA_BACKEND_ERRORED, "more than 2048 bytes");
        expect(run_order("segv.sh", NULL, NULL), CA_BACKEND_ERRORED,
               "killed by signal 11 (SIGSEGV)");
}

static void test_program_ignoring_big_input(void **state)
{
        /* 1 MiB of order that the program never reads: no SIGPIPE for us, no hang. */
        size_t n = 1 << 20;
        char *big = malloc(n + 200);
        assert_non_null(big);
        int off = snprintf(big, 200,
                           "{\"Id\":\"big\",\"AssignedResourceTypeId\":\"9\","
                           "\"ChangeType\":\"Added\",\"Changes\":{\"blob\":\"");
        memset(big + off, 'x', n);
        strcpy(big + off + n, "\"}}");
        expect(run_order("quiet.sh", NULL, big), CA_BACKEND_EXECUTED, NULL);
        free(big);
}

static void test_argument_quoting(void **state)
{
        char cmd[4400];
        snprintf(cmd, sizeof(cmd), "%s/args.sh 'a b' \"c\\\"d\" e\\ f ';' '$(id)'", dir);
        struct ca_settings s;
        const char *kv[] = {"command", cmd, NULL};
        settings_make(&s, kv);
        void *inst = NULL;
        struct ca_backend_error err = {0};
        assert_int_equal(ops->instance_new(backend_host(), backend_settings(&s), &inst, &err),
                         CA_BACKEND_OK);
        struct ca_order *o = order_make(ORDER);
        struct ca_settings map = {0};
        struct ca_backend_result r = {0};
        assert_int_equal(ops->execute(inst, backend_order(o), backend_settings(&map), &r, &err),
                         CA_BACKEND_OK);
        expect(r, CA_BACKEND_EXECUTED, NULL);
        char *args = slurp("args.txt");
        assert_string_equal(args, "[a b]\n[c\"d]\n[e f]\n[;]\n[$(id)]\n");
        free(args);

        /* describe says what would run, and with which input. */
        assert_int_equal(ops->describe(inst, backend_order(o), backend_settings(&map), &r, &err),
                         CA_BACKEND_OK);
        assert_non_null(strstr(r.message, "args.sh' 'a b' 'c\"d' 'e f'"));
        assert_non_null(strstr(r.message, "\"Id\":\"e1\""));
        order_free(o);
        /* ... but never the order's values: one may be a password (protocol.md). */
        o = order_make("{\"Id\":\"e2\",\"AssignedResourceTypeId\":\"9\",\"ChangeType\":"
                       "\"Modified\",\"Changes\":{\"userPassword\":\"S3cret-pw\",\"enabled\":"
                       "true,\"memberOf_add\":[\"cn=admins\"],\"n\":{\"pin\":\"0000\"}}}");
        assert_int_equal(ops->describe(inst, backend_order(o), backend_settings(&map), &r, &err),
                         CA_BACKEND_OK);
        assert_null(strstr(r.message, "S3cret"));
        assert_null(strstr(r.message, "cn=admins"));
        assert_null(strstr(r.message, "0000"));
        assert_non_null(strstr(r.message, "\"userPassword\":\"<hidden>\""));
        assert_non_null(strstr(r.message, "\"enabled\":true"));
        assert_non_null(strstr(r.message, "\"Id\":\"e2\""));
        order_free(o);
        ops->instance_free(inst);
        settings_clear(&s);
}

static void expect_refused(const char *const *kv, const char *needle, const char *key)
{
        struct ca_settings s;
        settings_make(&s, kv);
        void *inst = NULL;
        struct ca_backend_error err = {0};
        assert_int_equal(ops->instance_new(backend_host(), backend_settings(&s), &inst, &err),
                         CA_BACKEND_EINVALID);
        if (!strstr(err.message, needle))
                fail_msg("refusal \"%s\" lacks \"%s\"", err.message, needle);
        assert_string_equal(err.key, key);
        settings_clear(&s);
}

static void test_settings_refused(void **state)
{
        char ok[4400], quote[4400];
        snprintf(ok, sizeof(ok), "%s/quiet.sh", dir);
        snprintf(quote, sizeof(quote), "%s/quiet.sh 'open", dir);
        const char *none[] = {"timeout", "5s", NULL};
        expect_refused(none, "command: required", "command");
        const char *rel[] = {"command", "quiet.sh", NULL};
        expect_refused(rel, "not an absolute path", "command");
        const char *missing[] = {"command", "/nonexistent/prog", NULL};
        expect_refused(missing, "cannot run /nonexistent/prog", "command");
        const char *q[] = {"command", quote, NULL};
        expect_refused(q, "unterminated ' quote", "command");
        const char *env[] = {"command", ok, "env", "GOOD,BAD-NAME", NULL};
        expect_refused(env, "'BAD-NAME' is not a variable name", "env");
        const char *path[] = {"command", ok, "env", "PATH", NULL};
        expect_refused(path, "PATH is always", "env");
        const char *mo[] = {"command", ok, "max_output", "lots", NULL};
        expect_refused(mo, "max_output = lots", "max_output");
        const char *to[] = {"command", ok, "timeout", "forever", NULL};
        expect_refused(to, "timeout = forever", "timeout");

        struct inst in;
        inst_open(&in, "quiet.sh", NULL);
        struct ca_settings map;
        const char *m[] = {"connector", "x", "table", "t", NULL};
        settings_make(&map, m);
        struct ca_backend_error err = {0};
        assert_int_equal(ops->mapping_check(in.inst, backend_settings(&map), &err),
                         CA_BACKEND_EINVALID);
        assert_string_equal(err.key, "table");
        assert_int_equal(ops->check(in.sess, &err), CA_BACKEND_OK);
        settings_clear(&map);
        inst_close(&in);
}

static enum ca_backend_probe run_probe(const char *probe_prog, struct ca_backend_result *r)
{
        char p[4400];
        snprintf(p, sizeof(p), "%s/%s", dir, probe_prog);
        const char *extra[] = {"probe_command", p, NULL};
        struct inst in;
        inst_open(&in, "quiet.sh", probe_prog ? extra : NULL);
        struct ca_order *o = order_make(ORDER);
        struct ca_settings map = {0};
        struct ca_backend_error err = {0};
        enum ca_backend_probe a = 0;
        assert_int_equal(ops->probe(in.sess, backend_order(o), backend_settings(&map), &a, r, &err),
                         CA_BACKEND_OK);
        order_free(o);
        inst_close(&in);
        return a;
}

static void test_probe(void **state)
{
        struct ca_backend_result r = {0};
        assert_int_equal(run_probe("applied.sh", &r), CA_BACKEND_PROBE_APPLIED);
        assert_int_equal(r.state, CA_BACKEND_EXECUTED);
        assert_string_equal(r.resource_identifier, "p-1");
        memset(&r, 0, sizeof(r));
        assert_int_equal(run_probe("notapplied.sh", &r), CA_BACKEND_PROBE_NOT_APPLIED);
        assert_int_equal(run_probe("cannottell.sh", &r), CA_BACKEND_PROBE_UNKNOWN);
        assert_non_null(strstr(r.message, "in doubt"));
        assert_int_equal(run_probe("garbage.sh", &r), CA_BACKEND_PROBE_UNKNOWN);
        assert_int_equal(run_probe("segv.sh", &r), CA_BACKEND_PROBE_UNKNOWN);
        assert_non_null(strstr(r.message, "SIGSEGV"));
        assert_int_equal(run_probe(NULL, &r), CA_BACKEND_PROBE_UNKNOWN);
        assert_non_null(strstr(r.message, "no probe_command"));
}

/* --- process groups left by a killed agent --- */

static const uint64_t WAIT_MS = 10000; /* bound on every wait for another process */

static unsigned long long proc_start(pid_t pid, char *state)
{
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f)
                return 0;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        assert_non_null(p);
        unsigned long long start = 0;
        char st = 0;
        /* state(3) ... starttime(22) */
        assert_int_equal(sscanf(p + 1,
                                " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
                                "%*d %*d %*d %llu",
                                &st, &start),
                         2);
        if (state)
                *state = st;
        return start;
}

/* A process that runs (a zombie has ended). */
static int running(pid_t pid)
{
        char st = 0;
        return proc_start(pid, &st) != 0 && st != 'Z' && st != 'X';
}

static pid_t pid_file_wait(const char *name)
{
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s.pid", dir, name);
        for (uint64_t until = now_ms() + WAIT_MS; now_ms() < until;) {
                FILE *f = fopen(path, "r");
                int pid = 0;
                if (f) {
                        int ok = fscanf(f, "%d", &pid) == 1;
                        fclose(f);
                        if (ok && pid > 0)
                                return pid;
                }
                struct timespec tick = {0, 20 * 1000000L};
                nanosleep(&tick, NULL);
        }
        fail_msg("%s never started", name);
        return -1;
}

static size_t records(const char *state_dir)
{
        char path[4200];
        snprintf(path, sizeof(path), "%s/exec-children", state_dir);
        DIR *d = opendir(path);
        size_t n = 0;
        if (!d)
                return 0;
        for (struct dirent *e; (e = readdir(d));)
                n += e->d_name[0] != '.';
        closedir(d);
        return n;
}

static char *state_dir_make(const char *name)
{
        char *p = malloc(4200);
        assert_non_null(p);
        snprintf(p, 4200, "%s/%s", dir, name);
        assert_int_equal(mkdir(p, 0700), 0);
        return p;
}

/* In a child process, an agent's run: the plug-in loaded fresh with state_dir (its
 * start-up ends what earlier runs left), then, when prog is given, one order run with
 * it. Exits 0 when all of it went well. */
static pid_t agent_run(const char *state_dir, const char *prog)
{
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid > 0)
                return pid;
        backend_unload(be); /* this process's own load, as the agent's would be */
        backend_host_set_state_dir(state_dir);
        struct backend *b = NULL;
        struct ca_error e = {0};
        if (backend_load(test_backend_dir(), "exec", &b, &e) < 0)
                _exit(2);
        ops = backend_ops(b);
        int rc = 0;
        if (prog) {
                struct ca_backend_result r = run_order(prog, NULL, NULL);
                rc = r.state == CA_BACKEND_EXECUTED ? 0 : 3;
        }
        backend_unload(b);
        _exit(rc);
}

static int agent_wait(pid_t pid)
{
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_killed_agents_groups_are_ended_at_the_next_start(void **state)
{
        char *sd = state_dir_make("state-killed");
        pid_t agent = agent_run(sd, "spawner.sh t1");
        pid_t late = pid_file_wait("t1");
        assert_int_equal(records(sd), 1); /* written before the program ran */
        kill(agent, SIGKILL);
        assert_int_equal(agent_wait(agent), 128 + SIGKILL);
        /* PR_SET_PDEATHSIG ended spawner.sh, not its child. */
        assert_true(running(late));

        uint64_t t0 = now_ms();
        assert_int_equal(agent_wait(agent_run(sd, NULL)), 0);
        /* By the time the next start-up returns, the child is gone (SIGTERM sufficed). */
        assert_false(running(late));
        assert_true(now_ms() - t0 < 2000);
        assert_int_equal(records(sd), 0);
        char path[4200];
        snprintf(path, sizeof(path), "%s/t1.applied", dir);
        assert_int_equal(access(path, F_OK), -1);

        /* A clean run leaves no record behind. */
        assert_int_equal(agent_wait(agent_run(sd, "quiet.sh")), 0);
        assert_int_equal(records(sd), 0);
        free(sd);
}

static void test_live_agents_groups_are_left_alone(void **state)
{
        char *sd = state_dir_make("state-live");
        pid_t agent = agent_run(sd, "hold.sh t2");
        pid_t hold = pid_file_wait("t2");
        /* Another process starting on the same state directory must not end it. */
        assert_int_equal(agent_wait(agent_run(sd, NULL)), 0);
        assert_true(running(hold));
        assert_int_equal(records(sd), 1);

        kill(agent, SIGKILL);
        assert_int_equal(agent_wait(agent), 128 + SIGKILL);
        for (uint64_t until = now_ms() + WAIT_MS; running(hold) && now_ms() < until;) {
                struct timespec tick = {0, 20 * 1000000L};
                nanosleep(&tick, NULL);
        }
        assert_false(running(hold)); /* the program itself: PR_SET_PDEATHSIG */
        /* Its record outlived it; the next start drops it, ending nothing. */
        assert_int_equal(records(sd), 1);
        assert_int_equal(agent_wait(agent_run(sd, NULL)), 0);
        assert_int_equal(records(sd), 0);
        free(sd);
}

static void record_write(const char *sd, const char *name, const char *text)
{
        char path[4400];
        snprintf(path, sizeof(path), "%s/exec-children", sd);
        mkdir(path, 0700);
        snprintf(path, sizeof(path), "%s/exec-children/%s", sd, name);
        write_text(path, text, 0600);
}

static void test_reused_numbers_are_not_ended(void **state)
{
        char *sd = state_dir_make("state-reused");
        char boot[64] = "", line[256];
        FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
        assert_non_null(f);
        assert_non_null(fgets(boot, sizeof(boot), f));
        fclose(f);
        boot[strcspn(boot, "\n")] = '\0';

        /* A writer that is gone, and a group that is not its: a process that got a number
         * the record names, but started later than the recorded leader did. */
        pid_t gone = fork();
        if (gone == 0)
                _exit(0);
        assert_int_equal(agent_wait(gone), 0);
        pid_t other = fork();
        if (other == 0) {
                setpgid(0, 0);
                freopen("/dev/null", "w", stdout); /* never hold the test's output open */
                freopen("/dev/null", "w", stderr);
                for (;;)
                        pause();
        }
        setpgid(other, other);
        stray = other;
        unsigned long long start = proc_start(other, NULL);
        assert_true(start > 0);
        snprintf(line, sizeof(line), "1 %s %d 1 %d %llu %d\n", boot, (int)gone, (int)other,
                 start + 1000000, (int)getsid(0));
        record_write(sd, "a", line);
        /* Another session, another boot, a torn record: none is ours to end. */
        snprintf(line, sizeof(line), "1 %s %d 1 %d %llu %d\n", boot, (int)gone, (int)other, start,
                 (int)getsid(0) + 1);
        record_write(sd, "b", line);
        snprintf(line, sizeof(line), "1 another-boot %d 1 %d %llu %d\n", (int)gone, (int)other,
                 start, (int)getsid(0));
        record_write(sd, "c", line);
        snprintf(line, sizeof(line), "1 %s %d 1 %d", boot, (int)gone, (int)other);
        record_write(sd, "d", line);
        assert_int_equal(agent_wait(agent_run(sd, NULL)), 0);
        assert_true(running(other));
        assert_int_equal(records(sd), 0);

        /* The same process, named rightly, is ended: the check above was not blind. */
        snprintf(line, sizeof(line), "1 %s %d 1 %d %llu %d\n", boot, (int)gone, (int)other, start,
                 (int)getsid(0));
        record_write(sd, "e", line);
        assert_int_equal(agent_wait(agent_run(sd, NULL)), 0);
        assert_false(running(other));
        assert_int_equal(agent_wait(other), 128 + SIGTERM);
        stray = 0;
        assert_int_equal(records(sd), 0);
        free(sd);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_json_answer_input_and_env),
            cmocka_unit_test(test_exit_status_and_stderr),
            cmocka_unit_test(test_timeout_kills),
            cmocka_unit_test(test_garbage_flood_crash),
            cmocka_unit_test(test_program_ignoring_big_input),
            cmocka_unit_test(test_argument_quoting),
            cmocka_unit_test(test_settings_refused),
            cmocka_unit_test(test_probe),
            cmocka_unit_test(test_killed_agents_groups_are_ended_at_the_next_start),
            cmocka_unit_test(test_live_agents_groups_are_left_alone),
            cmocka_unit_test(test_reused_numbers_are_not_ended),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
