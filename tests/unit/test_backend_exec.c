/* Tests for the exec back-end, through the real loader and host table, with small shell
 * programs written into a temporary directory at test time: JSON answers, exit
 * statuses, a hang (timeout kill), one that ignores SIGTERM, garbage output, a flood of
 * output (cap), a crash (SIGSEGV), argument quoting, the scrubbed environment, the
 * order on standard input, probe and describe. */
#include "backend_test_util.h"

#include <time.h>

static char *dir;
static struct backend *be;
static const struct ca_backend_ops *ops;

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
        return 0;
}

static int teardown(void **state)
{
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
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
