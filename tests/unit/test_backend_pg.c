/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the sql back-end's postgresql driver, driven through the real loader and
 * host table against a REAL PostgreSQL 15 server on loopback (tests/pg/pg.sh starts a
 * throwaway cluster, scram-sha-256 with a password; never a mock): each change type,
 * idempotent repeats, link rows, constraint violations with the server's own words,
 * injection attempts, probe and describe, a wrong password, the server stopped and
 * restarted under a session, a row lock held past order_timeout, and a connection lost
 * during COMMIT (in doubt).
 *
 * Without postgresql-15 installed the tests fail (they never skip): tests/run.sh
 * installs it. */
#include "backend_test_util.h"
#include "pg_cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#define PG_BIN            PG_CLUSTER_BIN
#define PG_USER           PG_CLUSTER_USER
#define PG_PASSWORD       PG_CLUSTER_PASSWORD
#define PSQL_TIMEOUT_MS   20000
#define CMD_OUTPUT_MAX    8192
#define POLL_STEP_MS      50
#define POLL_STEPS        200 /* 10 s for a condition the test waits for */
#define ORDER_TIMEOUT     "5s"
#define LOCK_TIMEOUT_MS   700
#define LOCK_TIMEOUT_TEXT "700ms"

static uint64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Starts argv with PGPASSWORD in its environment only (the plug-in under test must not
 * find a password there); *in_fd (if given) is a pipe to its standard input, *out_fd (if
 * given) reads its standard output and error. */
static pid_t spawn(const char *const *argv, int *in_fd, int *out_fd)
{
        int in[2] = {-1, -1}, out[2] = {-1, -1};
        assert_int_equal(pipe2(in, O_CLOEXEC), 0);
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                dup2(in[0], 0);
                dup2(out[1], 1);
                dup2(out[1], 2);
                setenv("PGPASSWORD", PG_PASSWORD, 1);
                setenv("PGCONNECT_TIMEOUT", "5", 1);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        close(in[0]);
        close(out[1]);
        if (in_fd)
                *in_fd = in[1];
        else
                close(in[1]);
        if (out_fd)
                *out_fd = out[0];
        else
                close(out[0]);
        return pid;
}

/* Waits (bounded) for pid; kills it when the time is up. Returns its exit status, or -1
 * when it had to be killed or died of a signal. */
static int reap(pid_t pid, uint64_t deadline)
{
        int status = 0;
        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        break;
                if (now_ms() >= deadline) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        return -1;
                }
                sleep_ms(10);
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs argv with input on its standard input and collects its output (trailing newlines
 * cut), within timeout_ms. Returns its exit status (-1: killed or crashed). */
static int cmd_run(const char *const *argv, const char *input, char *out, size_t outlen,
                   uint64_t timeout_ms)
{
        int in_fd, out_fd;
        uint64_t deadline = now_ms() + timeout_ms;
        pid_t pid = spawn(argv, &in_fd, &out_fd);
        if (input && *input) {
                ssize_t w = write(in_fd, input, strlen(input));
                (void)w;
        }
        close(in_fd);
        size_t len = 0;
        out[0] = '\0';
        for (;;) {
                uint64_t t = now_ms();
                if (t >= deadline)
                        break;
                struct pollfd p = {.fd = out_fd, .events = POLLIN};
                int n = poll(&p, 1, (int)(deadline - t));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                char buf[1024];
                ssize_t r = read(out_fd, buf, sizeof(buf));
                if (r <= 0)
                        break;
                size_t take = (size_t)r < outlen - 1 - len ? (size_t)r : outlen - 1 - len;
                memcpy(out + len, buf, take);
                len += take;
                out[len] = '\0';
        }
        close(out_fd);
        while (len && out[len - 1] == '\n')
                out[--len] = '\0';
        return reap(pid, deadline);
}

/* psql as the superuser; the output of -A -t (NULL prints as ""). */
static int psql(const char *sql, char *out, size_t outlen)
{
        char port[16];
        snprintf(port, sizeof(port), "%d", pg_cluster.port);
        const char *argv[] = {PG_BIN "/psql",    "-X", "-q",        "-A", "-t", "-v",
                              "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", port, "-U",
                              PG_USER,           "-d", "postgres",  "-c", sql,  NULL};
        return cmd_run(argv, NULL, out, outlen, PSQL_TIMEOUT_MS);
}

static void db_exec(const char *sql)
{
        char out[CMD_OUTPUT_MAX];
        if (psql(sql, out, sizeof(out)) != 0)
                fail_msg("psql %s: %s", sql, out);
}

static void expect_db(const char *sql, const char *want)
{
        char out[CMD_OUTPUT_MAX];
        if (psql(sql, out, sizeof(out)) != 0)
                fail_msg("psql %s: %s", sql, out);
        if (strcmp(out, want) != 0)
                fail_msg("%s: got \"%s\", expected \"%s\"", sql, out, want);
}

static int pg_group_setup(void **state)
{
        (void)state;
        return pg_cluster_start();
}

static int pg_group_teardown(void **state)
{
        (void)state;
        return pg_cluster_stop();
}

/* --- the plug-in, as test_backend_sql.c drives it --- */

struct fx {
        char *dir;
        char pwfile[4200];
        char conninfo[256];
        struct backend *b;
        const struct ca_backend_ops *ops;
        struct ca_settings conn;
        struct ca_settings map;
        void *inst;
        void *sess;
};

static const char *schema =
    "DROP TABLE IF EXISTS users, memberships, loose_links, typed, accounts, pairs, partial,"
    " deferred CASCADE;"
    "DROP FUNCTION IF EXISTS slow_commit;"
    "CREATE TABLE users (id text PRIMARY KEY, name text, mail text UNIQUE,"
    " age integer CHECK (age IS NULL OR age >= 0));"
    "CREATE TABLE memberships (user_id text NOT NULL, grp text NOT NULL,"
    " PRIMARY KEY (user_id, grp));"
    "CREATE TABLE loose_links (user_id text, grp text);"
    "CREATE TABLE typed (id text PRIMARY KEY, active boolean, since date, score numeric(6,2));"
    "CREATE TABLE accounts (id text PRIMARY KEY, name text, pw text, active boolean NOT NULL"
    " DEFAULT false);"
    /* Keys that are not unique by themselves, or not as ON CONFLICT's arbiter. */
    "CREATE TABLE pairs (id text, name text, UNIQUE (id, name));"
    "CREATE TABLE partial (id text, name text);"
    "CREATE UNIQUE INDEX partial_id ON partial (id) WHERE name IS NOT NULL;"
    "CREATE TABLE deferred (id text UNIQUE DEFERRABLE INITIALLY DEFERRED, name text);"
    /* A commit that takes its time, for the in-doubt test. */
    "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " IF NEW.name = 'slow' THEN PERFORM pg_sleep(3); END IF; RETURN NULL; END $$;"
    "CREATE CONSTRAINT TRIGGER users_slow AFTER INSERT OR UPDATE ON users"
    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();";

static const char *const default_map[] = {"connector",
                                          "db",
                                          "table",
                                          "users",
                                          "key_column",
                                          "id",
                                          "key_change",
                                          "uid",
                                          "columns",
                                          "givenName:name, mail:mail,age:age",
                                          "membership_table",
                                          "memberships",
                                          "membership_key_column",
                                          "user_id",
                                          "membership_value_column",
                                          "grp",
                                          NULL};

/* Connector settings with the password file holding password; extra_* may be NULL. */
static void conn_settings(struct fx *f, const char *password, const char *order_timeout,
                          const char *extra_key, const char *extra_value)
{
        write_text(f->pwfile, password, 0600);
        const char *kv[] = {"backend",
                            "sql",
                            "driver",
                            "postgresql",
                            "connection",
                            f->conninfo,
                            "password_file",
                            f->pwfile,
                            "order_timeout",
                            order_timeout,
                            "connect_timeout",
                            "3s",
                            extra_key,
                            extra_value,
                            NULL};
        settings_make(&f->conn, kv);
}

static void fx_instance(struct fx *f)
{
        struct ca_backend_error err = {0};
        if (f->ops->instance_new(backend_host(), backend_settings(&f->conn), &f->inst, &err) !=
            CA_BACKEND_OK)
                fail_msg("instance_new: %s", err.message);
        if (f->ops->mapping_check(f->inst, backend_settings(&f->map), &err) != CA_BACKEND_OK)
                fail_msg("mapping_check: %s", err.message);
        assert_int_equal(f->ops->session_open(f->inst, &f->sess, &err), CA_BACKEND_OK);
}

static void fx_open_with(struct fx *f, const char *const *map, const char *password,
                         const char *order_timeout)
{
        memset(f, 0, sizeof(*f));
        f->dir = tmpdir_make();
        snprintf(f->pwfile, sizeof(f->pwfile), "%s/pgpass", f->dir);
        snprintf(f->conninfo, sizeof(f->conninfo),
                 "host=127.0.0.1 port=%d dbname=postgres user=" PG_USER " sslmode=disable",
                 pg_cluster.port);
        db_exec(schema);
        f->b = load_backend("sql");
        f->ops = backend_ops(f->b);
        conn_settings(f, password, order_timeout, NULL, NULL);
        settings_make(&f->map, map ? map : default_map);
        fx_instance(f);
}

static void fx_open(struct fx *f, const char *const *map)
{
        fx_open_with(f, map, PG_PASSWORD "\n", ORDER_TIMEOUT);
}

static void fx_close(struct fx *f)
{
        f->ops->session_close(f->sess);
        f->ops->instance_free(f->inst);
        settings_clear(&f->conn);
        settings_clear(&f->map);
        backend_unload(f->b);
        tmpdir_remove(f->dir);
}

static struct ca_backend_result run_rc(struct fx *f, const char *json, int want_rc,
                                       struct ca_backend_error *err_out)
{
        struct ca_order *o = order_make(json);
        struct ca_backend_result r = {0};
        struct ca_backend_error err = {0};
        int rc = f->ops->execute(f->sess, backend_order(o), backend_settings(&f->map), &r, &err);
        if (rc != want_rc)
                fail_msg("execute returned %d (%s), expected %d; order %s", rc, err.message,
                         want_rc, json);
        if (err_out)
                *err_out = err;
        order_free(o);
        return r;
}

static struct ca_backend_result run(struct fx *f, const char *json)
{
        struct ca_backend_result r = run_rc(f, json, CA_BACKEND_OK, NULL);
        assert_true(r.set);
        return r;
}

static void expect_executed(struct ca_backend_result r, const char *ri)
{
        if (r.state != CA_BACKEND_EXECUTED)
                fail_msg("expected Executed, got Errored: %s", r.message);
        if (ri)
                assert_string_equal(r.resource_identifier, ri);
}

static void expect_errored(struct ca_backend_result r, const char *needle)
{
        if (r.state != CA_BACKEND_ERRORED)
                fail_msg("expected Errored (%s), got Executed: %s", needle, r.message);
        if (!strstr(r.message, needle))
                fail_msg("message \"%s\" lacks \"%s\"", r.message, needle);
}

static int probe_rc(struct fx *f, const char *json, enum ca_backend_probe *a,
                    struct ca_backend_result *r, struct ca_backend_error *err)
{
        struct ca_order *o = order_make(json);
        struct ca_backend_result local = {0};
        int rc = f->ops->probe(f->sess, backend_order(o), backend_settings(&f->map), a,
                               r ? r : &local, err);
        order_free(o);
        return rc;
}

static enum ca_backend_probe probe(struct fx *f, const char *json, struct ca_backend_result *r)
{
        struct ca_backend_error err = {0};
        enum ca_backend_probe a = 0;
        int rc = probe_rc(f, json, &a, r, &err);
        if (rc != CA_BACKEND_OK)
                fail_msg("probe returned %d: %s", rc, err.message);
        return a;
}

static void expect_absent(const char *text, const char *secret)
{
        if (strstr(text, secret))
                fail_msg("the password appears in \"%s\"", text);
}

#define ADD_JBOND                                                                                  \
        "{\"Id\":\"a1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"Added\","                \
        "\"Changes\":{\"uid\":\"jbond\",\"givenName\":\"James\",\"mail\":\"j@x.org\","             \
        "\"age\":\"40\",\"memberOf_add\":[\"g1\",\"g2\"]}}"
#define MOD_JBOND_NAME(name)                                                                       \
        "{\"Id\":\"mn\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"Modified\","             \
        "\"Resource\":{\"uid\":\"jbond\"},\"Changes\":{\"givenName\":\"" name "\"}}"
#define GROUPS_OF_JBOND "SELECT string_agg(grp, ',' ORDER BY grp) FROM memberships"

static void test_added_and_repeat(void **state)
{
        struct fx f;
        fx_open(&f, NULL);
        assert_int_equal(probe(&f, ADD_JBOND, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_executed(run(&f, ADD_JBOND), "jbond");
        expect_db("SELECT name || '|' || mail || '|' || age FROM users WHERE id = 'jbond'",
                  "James|j@x.org|40");
        expect_db(GROUPS_OF_JBOND, "g1,g2");
        struct ca_backend_result pr = {0};
        assert_int_equal(probe(&f, ADD_JBOND, &pr), CA_BACKEND_PROBE_APPLIED);
        assert_string_equal(pr.resource_identifier, "jbond");

        /* The same order again: already in effect. */
        struct ca_backend_result r = run(&f, ADD_JBOND);
        expect_executed(r, "jbond");
        assert_non_null(strstr(r.message, "already there"));
        expect_db("SELECT COUNT(*) FROM users", "1");
        expect_db("SELECT COUNT(*) FROM memberships", "2");

        /* The same key with other values is not this order: Errored, row untouched. */
        expect_errored(run(&f, "{\"Id\":\"a2\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                               "\"Added\",\"Changes\":{\"uid\":\"jbond\",\"givenName\":\"Jim\"}}"),
                       "row exists with different values");
        expect_db("SELECT name FROM users WHERE id = 'jbond'", "James");
        fx_close(&f);
}

static void test_modified(void **state)
{
        struct fx f;
        fx_open(&f, NULL);
        expect_executed(run(&f, ADD_JBOND), "jbond");
        const char *mod =
            "{\"Id\":\"m1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
            "\"Modified\",\"Resource\":{\"uid\":\"jbond\"},\"Changes\":{\"givenName\":"
            "\"Jimmy\",\"mail\":null,\"age\":\"41\",\"memberOf_add\":[\"g3\"],"
            "\"memberOf_remove\":[\"g1\",\"g9\"]}}";
        assert_int_equal(probe(&f, mod, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_executed(run(&f, mod), "jbond");
        expect_db("SELECT name || '|' || (mail IS NULL) || '|' || age FROM users "
                  "WHERE id = 'jbond'",
                  "Jimmy|true|41");
        expect_db(GROUPS_OF_JBOND, "g2,g3");
        assert_int_equal(probe(&f, mod, NULL), CA_BACKEND_PROBE_APPLIED);
        /* Adding a member twice and removing a missing one change nothing. */
        expect_executed(run(&f, mod), "jbond");
        expect_db("SELECT COUNT(*) FROM memberships", "2");

        /* The whole list at once replaces the links. */
        const char *set = "{\"Id\":\"m2\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                          "\"Modified\",\"Resource\":{\"uid\":\"jbond\"},\"Changes\":{"
                          "\"memberOf\":[\"x\",\"y\",\"x\"]}}";
        expect_executed(run(&f, set), "jbond");
        expect_db(GROUPS_OF_JBOND, "x,y");
        assert_int_equal(probe(&f, set, NULL), CA_BACKEND_PROBE_APPLIED);

        /* A missing row is an error, not an insert. */
        expect_errored(run(&f, "{\"Id\":\"m3\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                               "\"Modified\",\"Resource\":{\"uid\":\"nobody\"},\"Changes\":{"
                               "\"givenName\":\"N\"}}"),
                       "no such row");
        expect_db("SELECT COUNT(*) FROM users", "1");

        /* A new key in Changes renames the row, links follow. */
        const char *ren = "{\"Id\":\"m4\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                          "\"Modified\",\"Resource\":{\"uid\":\"jbond\"},\"Changes\":{"
                          "\"uid\":\"james.bond\"}}";
        expect_executed(run(&f, ren), "james.bond");
        expect_db("SELECT COUNT(*) FROM memberships WHERE user_id = 'james.bond'", "2");
        expect_db("SELECT COUNT(*) FROM users WHERE id = 'jbond'", "0");
        struct ca_backend_result pr = {0};
        assert_int_equal(probe(&f, ren, &pr), CA_BACKEND_PROBE_APPLIED);
        assert_string_equal(pr.resource_identifier, "james.bond");
        fx_close(&f);
}

static void test_deleted(void **state)
{
        struct fx f;
        fx_open(&f, NULL);
        expect_executed(run(&f, ADD_JBOND), "jbond");
        const char *del = "{\"Id\":\"d1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                          "\"Deleted\",\"Resource\":{\"uid\":\"jbond\"},\"Changes\":{}}";
        assert_int_equal(probe(&f, del, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_executed(run(&f, del), "jbond");
        expect_db("SELECT COUNT(*) FROM users", "0");
        expect_db("SELECT COUNT(*) FROM memberships", "0");
        assert_int_equal(probe(&f, del, NULL), CA_BACKEND_PROBE_APPLIED);
        struct ca_backend_result r = run(&f, del);
        expect_executed(r, "jbond");
        assert_non_null(strstr(r.message, "already gone"));
        fx_close(&f);
}

static void test_constraints_roll_back(void **state)
{
        struct fx f;
        fx_open(&f, NULL);
        /* The CHECK fails: Errored with the server's SQLSTATE and words, naming table and
         * key, and the links of the same order are not left behind. */
        struct ca_backend_result r =
            run(&f, "{\"Id\":\"c1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                    "\"Added\",\"Changes\":{\"uid\":\"neg\",\"age\":\"-1\","
                    "\"memberOf_add\":[\"g1\"]}}");
        expect_errored(r, "SQLSTATE 23514: new row for relation \"users\" violates check "
                          "constraint \"users_age_check\"");
        assert_non_null(strstr(r.message, "Added users id = 'neg'"));
        expect_db("SELECT COUNT(*) FROM users", "0");
        expect_db("SELECT COUNT(*) FROM memberships", "0");

        expect_executed(run(&f, ADD_JBOND), "jbond");
        r = run(&f, "{\"Id\":\"c2\",\"AssignedResourceTypeId\":\"1\","
                    "\"ChangeType\":\"Added\",\"Changes\":{\"uid\":"
                    "\"other\",\"mail\":\"j@x.org\",\"memberOf_add\":\"g7\"}}");
        expect_errored(r, "SQLSTATE 23505: duplicate key value violates unique constraint "
                          "\"users_mail_key\"");
        assert_non_null(strstr(r.message, "users id = 'other'"));
        expect_db("SELECT COUNT(*) FROM memberships WHERE grp = 'g7'", "0");

        /* A value the column's type refuses: Errored too, nothing half-done. */
        r = run(&f, "{\"Id\":\"c3\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                    "\"Modified\",\"Resource\":{\"uid\":\"jbond\"},\"Changes\":{\"givenName\":"
                    "\"Bob\",\"age\":\"forty\"}}");
        expect_errored(r, "SQLSTATE 22P02: invalid input syntax for type integer");
        expect_db("SELECT name FROM users WHERE id = 'jbond'", "James");
        /* The session is still good after those. */
        expect_executed(run(&f, MOD_JBOND_NAME("Jim")), "jbond");
        fx_close(&f);
}

static void test_injection_harmless(void **state)
{
        struct fx f;
        fx_open(&f, NULL);
        const char *evil = "{\"Id\":\"i1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                           "\"Added\",\"Changes\":{\"uid\":\"x'; DROP TABLE users; --\","
                           "\"givenName\":\"' OR 1=1 --\",\"mail\":\"a\\\"b;c\\nd $1 \\\\\","
                           "\"memberOf_add\":[\"g'); DELETE FROM memberships; --\"]}}";
        expect_executed(run(&f, evil), "x'; DROP TABLE users; --");
        expect_db("SELECT name FROM users WHERE id = 'x''; DROP TABLE users; --'", "' OR 1=1 --");
        expect_db("SELECT mail = E'a\"b;c\\nd $1 \\\\' FROM users", "t");
        expect_db("SELECT grp FROM memberships", "g'); DELETE FROM memberships; --");
        expect_executed(run(&f, evil), NULL); /* and again: same values, Executed */
        /* A key that looks like a condition matches only itself. */
        expect_executed(run(&f, ADD_JBOND), "jbond");
        expect_executed(run(&f, "{\"Id\":\"i2\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                                "\"Deleted\",\"Resource\":{\"uid\":\"' OR 1=1 --\"}}"),
                        NULL);
        expect_db("SELECT COUNT(*) FROM users", "2");
        expect_db("SELECT COUNT(*) FROM memberships", "3");
        fx_close(&f);
}

static void test_links_without_unique_constraint(void **state)
{
        const char *map[] = {"table",
                             "users",
                             "key_column",
                             "id",
                             "key_change",
                             "uid",
                             "membership_table",
                             "loose_links",
                             "membership_key_column",
                             "user_id",
                             "membership_value_column",
                             "grp",
                             "membership_attribute",
                             "groups",
                             NULL};
        struct fx f;
        fx_open(&f, map);
        const char *add = "{\"Id\":\"l1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                          "\"Added\",\"Changes\":{\"uid\":\"u\",\"groups_add\":[\"a\",\"a\"]}}";
        expect_executed(run(&f, add), "u");
        expect_executed(run(&f, add), "u");
        expect_db("SELECT COUNT(*) FROM loose_links", "1");
        fx_close(&f);
}

/* Values are compared in the column's type, not as text: PostgreSQL prints true as "t"
 * and 1.5 as "1.50", and a repeat or a probe must still see the order in effect. */
static void test_typed_columns(void **state)
{
        const char *map[] = {
            "table",      "typed", "key_column", "id",
            "key_change", "uid",   "columns",    "active:active, since:since, score:score",
            NULL};
        struct fx f;
        fx_open(&f, map);
        const char *add = "{\"Id\":\"t1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                          "\"Added\",\"Changes\":{\"uid\":\"t\",\"active\":\"true\","
                          "\"since\":\"2024-01-02\",\"score\":\"1.5\"}}";
        const char *same = "{\"Id\":\"t2\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                           "\"Added\",\"Changes\":{\"uid\":\"t\",\"active\":\"yes\","
                           "\"since\":\"2024-01-02\",\"score\":\"1.50\"}}";
        const char *other = "{\"Id\":\"t3\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                            "\"Added\",\"Changes\":{\"uid\":\"t\",\"active\":\"false\","
                            "\"since\":\"2024-01-02\",\"score\":\"1.5\"}}";
        expect_executed(run(&f, add), "t");
        expect_db("SELECT active || '|' || since || '|' || score FROM typed",
                  "true|2024-01-02|1.50");
        assert_int_equal(probe(&f, add, NULL), CA_BACKEND_PROBE_APPLIED);
        assert_int_equal(probe(&f, same, NULL), CA_BACKEND_PROBE_APPLIED);
        struct ca_backend_result r = run(&f, same);
        expect_executed(r, "t");
        assert_non_null(strstr(r.message, "already there"));
        assert_int_equal(probe(&f, other, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_errored(run(&f, other), "column active differs");

        const char *mod = "{\"Id\":\"t4\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                          "\"Modified\",\"Resource\":{\"uid\":\"t\"},\"Changes\":{"
                          "\"score\":\"2\",\"active\":null}}";
        assert_int_equal(probe(&f, mod, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_executed(run(&f, mod), "t");
        assert_int_equal(probe(&f, mod, NULL), CA_BACKEND_PROBE_APPLIED);
        expect_db("SELECT (active IS NULL) || '|' || score FROM typed", "true|2.00");
        /* A value the type refuses: Errored with the server's words. */
        expect_errored(run(&f, "{\"Id\":\"t5\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                               "\"Modified\",\"Resource\":{\"uid\":\"t\"},\"Changes\":{"
                               "\"since\":\"yesterday-ish\"}}"),
                       "SQLSTATE 22007");
        fx_close(&f);
}

static void test_describe_shows_dollar_placeholders(void **state)
{
        struct fx f;
        fx_open(&f, NULL);
        struct ca_order *o = order_make(ADD_JBOND);
        struct ca_backend_result r = {0};
        struct ca_backend_error err = {0};
        assert_int_equal(
            f.ops->describe(f.sess, backend_order(o), backend_settings(&f.map), &r, &err),
            CA_BACKEND_OK);
        assert_non_null(strstr(r.message, "INSERT INTO \"users\" (\"id\", \"name\", \"mail\", "
                                          "\"age\") VALUES ($1, $2, $3, $4);"));
        assert_non_null(strstr(r.message, "$1='jbond', $2='James'"));
        assert_non_null(strstr(r.message, "INSERT INTO \"memberships\""));
        assert_null(strstr(r.message, "?1"));
        assert_non_null(strstr(r.message, "COMMIT;"));
        expect_db("SELECT COUNT(*) FROM users", "0");
        order_free(o);
        fx_close(&f);
}

/* The whole server log so far (malloc'd; "" when there is none). */
static char *server_log(void)
{
        char path[4200];
        snprintf(path, sizeof(path), "%s/../server.log", pg_cluster.data);
        FILE *f = fopen(path, "r");
        char *text = calloc(1, 1 << 22);
        assert_non_null(text);
        if (f) {
                size_t n = fread(text, 1, (1 << 22) - 1, f);
                text[n] = '\0';
                fclose(f);
        }
        return text;
}

static char *db_value(const char *sql)
{
        char out[CMD_OUTPUT_MAX];
        if (psql(sql, out, sizeof(out)) != 0)
                fail_msg("psql %s: %s", sql, out);
        char *v = strdup(out);
        assert_non_null(v);
        return v;
}

#define ACCOUNT_ORDER(id, change, changes, resource)                                               \
        "{\"Id\":\"" id "\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"" change             \
        "\",\"Changes\":" changes ",\"Resource\":" resource "}"

/* password_change, password_column and password_hash against PostgreSQL: the column gets
 * a yescrypt, bcrypt or argon2id hash, never the password; a repeated order is found in effect by
 * hashing again with the stored salt; the account state is a boolean column written
 * through enabled_values. With every statement logged, the server's log shows the hash
 * among the parameters and never the password: it does not leave the agent. */
static void test_password_column(void **state)
{
        (void)state;
        static const char *const pw_map[] = {"connector",
                                             "db",
                                             "table",
                                             "accounts",
                                             "key_column",
                                             "id",
                                             "key_change",
                                             "uid",
                                             "columns",
                                             "givenName:name",
                                             "password_change",
                                             "password",
                                             "password_column",
                                             "pw",
                                             "password_hash",
                                             "yescrypt",
                                             "enabled_change",
                                             "enabled",
                                             "enabled_column",
                                             "active",
                                             "enabled_values",
                                             "true, false",
                                             NULL};
        const char *pw = "Pg-Secret-Horse-4711";
        const char *pw2 = "Pg-Second-Secret-0815";
        db_exec("ALTER SYSTEM SET log_statement = 'all'");
        db_exec("SELECT pg_reload_conf()");
        struct fx f;
        fx_open(&f, pw_map);
        const char *add = ACCOUNT_ORDER("pw1", "Added",
                                        "{\"uid\":\"ada\",\"givenName\":\"Ada\",\"password\":"
                                        "\"Pg-Secret-Horse-4711\",\"enabled\":\"true\"}",
                                        "{}");
        assert_int_equal(probe(&f, add, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        struct ca_backend_result r = run(&f, add);
        expect_executed(r, "ada");
        expect_absent(r.message, pw);
        char *stored = db_value("SELECT pw FROM accounts WHERE id = 'ada'");
        if (strncmp(stored, "$y$", 3) != 0 || strstr(stored, pw))
                fail_msg("pw holds \"%s\", not a yescrypt hash", stored);
        expect_db("SELECT active FROM accounts WHERE id = 'ada'", "t");
        /* Again: in effect, the password checked against the stored hash; nothing written. */
        assert_int_equal(probe(&f, add, NULL), CA_BACKEND_PROBE_APPLIED);
        r = run(&f, add);
        expect_executed(r, "ada");
        assert_non_null(strstr(r.message, "already there"));
        expect_db("SELECT pw FROM accounts WHERE id = 'ada'", stored);
        /* Another password under the same key is not this order. */
        expect_errored(run(&f, ACCOUNT_ORDER("pw2", "Added",
                                             "{\"uid\":\"ada\",\"givenName\":\"Ada\",\"password\":"
                                             "\"not-this-one\",\"enabled\":\"true\"}",
                                             "{}")),
                       "column pw differs");
        expect_db("SELECT pw FROM accounts WHERE id = 'ada'", stored);
        /* A new password and a disable. */
        const char *mod = ACCOUNT_ORDER(
            "pw3", "Modified", "{\"password\":\"Pg-Second-Secret-0815\",\"enabled\":\"false\"}",
            "{\"uid\":\"ada\"}");
        assert_int_equal(probe(&f, mod, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        r = run(&f, mod);
        expect_executed(r, "ada");
        expect_absent(r.message, pw2);
        char *after = db_value("SELECT pw FROM accounts WHERE id = 'ada'");
        assert_true(strncmp(after, "$y$", 3) == 0 && strcmp(after, stored) != 0);
        expect_db("SELECT active FROM accounts WHERE id = 'ada'", "f");
        assert_int_equal(probe(&f, mod, NULL), CA_BACKEND_PROBE_APPLIED);
        assert_int_equal(probe(&f, add, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        /* Enabled again, the password untouched. */
        expect_executed(run(&f, ACCOUNT_ORDER("pw4", "Modified", "{\"enabled\":\"true\"}",
                                              "{\"uid\":\"ada\"}")),
                        "ada");
        expect_db("SELECT active FROM accounts WHERE id = 'ada'", "t");
        expect_db("SELECT pw FROM accounts WHERE id = 'ada'", after);
        fx_close(&f);

        /* bcrypt, the same way. */
        static const char *const bc_map[] = {"connector",
                                             "db",
                                             "table",
                                             "accounts",
                                             "key_column",
                                             "id",
                                             "key_change",
                                             "uid",
                                             "password_change",
                                             "password",
                                             "password_column",
                                             "pw",
                                             "password_hash",
                                             "bcrypt",
                                             "ignore_unmapped",
                                             "yes",
                                             NULL};
        fx_open(&f, bc_map);
        const char *bob = ACCOUNT_ORDER(
            "pw5", "Added", "{\"uid\":\"bob\",\"password\":\"Pg-Secret-Horse-4711\"}", "{}");
        expect_executed(run(&f, bob), "bob");
        char *bc = db_value("SELECT pw FROM accounts WHERE id = 'bob'");
        if (strncmp(bc, "$2b$", 4) != 0)
                fail_msg("pw holds \"%s\", not a bcrypt hash", bc);
        assert_int_equal(probe(&f, bob, NULL), CA_BACKEND_PROBE_APPLIED);
        fx_close(&f);

        /* argon2id, the same way (fx_open makes the tables again). */
        static const char *const a2_map[] = {"connector",
                                             "db",
                                             "table",
                                             "accounts",
                                             "key_column",
                                             "id",
                                             "key_change",
                                             "uid",
                                             "password_change",
                                             "password",
                                             "password_column",
                                             "pw",
                                             "password_hash",
                                             "argon2id",
                                             "ignore_unmapped",
                                             "yes",
                                             NULL};
        fx_open(&f, a2_map);
        const char *cy = ACCOUNT_ORDER(
            "pw6", "Added", "{\"uid\":\"cy\",\"password\":\"Pg-Secret-Horse-4711\"}", "{}");
        expect_executed(run(&f, cy), "cy");
        char *a2 = db_value("SELECT pw FROM accounts WHERE id = 'cy'");
        if (strncmp(a2, "$argon2id$", 10) != 0)
                fail_msg("pw holds \"%s\", not an argon2id hash", a2);
        assert_int_equal(probe(&f, cy, NULL), CA_BACKEND_PROBE_APPLIED);
        fx_close(&f);

        db_exec("ALTER SYSTEM RESET log_statement");
        db_exec("SELECT pg_reload_conf()");
        char *log = server_log();
        if (!strstr(log, after) || !strstr(log, bc) || !strstr(log, a2))
                fail_msg("the server log shows no statement parameters: the check below "
                         "would prove nothing");
        expect_absent(log, pw);
        expect_absent(log, pw2);
        free(log);
        free(a2);
        free(bc);
        free(stored);
        free(after);
}

static void test_check_and_settings(void **state)
{
        struct fx f;
        fx_open(&f, NULL);
        struct ca_backend_error err = {0};
        assert_int_equal(f.ops->check(f.sess, &err), CA_BACKEND_OK);
        fx_close(&f);

        struct backend *b = load_backend("sql");
        const struct ca_backend_ops *ops = backend_ops(b);
        struct ca_settings s;
        void *inst = NULL;
        const char *noconn[] = {"driver", "postgresql", NULL};
        settings_make(&s, noconn);
        assert_int_equal(ops->instance_new(backend_host(), backend_settings(&s), &inst, &err),
                         CA_BACKEND_EINVALID);
        assert_string_equal(err.key, "connection");
        assert_non_null(strstr(err.message, "connection: required"));
        settings_clear(&s);

        /* A password in the connection string is refused, and not repeated. */
        memset(&err, 0, sizeof(err));
        const char *inline_pw[] = {"driver", "postgresql", "connection",
                                   "host=127.0.0.1 user=x password=Inl1ne-Secret", NULL};
        settings_make(&s, inline_pw);
        assert_int_equal(ops->instance_new(backend_host(), backend_settings(&s), &inst, &err),
                         CA_BACKEND_EINVALID);
        assert_non_null(strstr(err.message, "holds a password"));
        expect_absent(err.message, "Inl1ne-Secret");
        settings_clear(&s);
        memset(&err, 0, sizeof(err));
        const char *uri_pw[] = {"driver", "postgresql", "connection",
                                "postgresql://x:Ur1-Secret@127.0.0.1/db", NULL};
        settings_make(&s, uri_pw);
        assert_int_equal(ops->instance_new(backend_host(), backend_settings(&s), &inst, &err),
                         CA_BACKEND_EINVALID);
        expect_absent(err.message, "Ur1-Secret");
        settings_clear(&s);
        memset(&err, 0, sizeof(err));
        const char *broken[] = {"driver", "postgresql", "connection",
                                "host=127.0.0.1 password='Br0ken-Secret", NULL};
        settings_make(&s, broken);
        assert_int_equal(ops->instance_new(backend_host(), backend_settings(&s), &inst, &err),
                         CA_BACKEND_EINVALID);
        assert_non_null(strstr(err.message, "not a libpq connection string"));
        expect_absent(err.message, "Br0ken-Secret");
        settings_clear(&s);

        /* An unreadable password file is a setting to fix, named. */
        memset(&err, 0, sizeof(err));
        const char *nofile[] = {"driver",          "postgresql",    "connection",
                                "host=127.0.0.1",  "password_file", "/nonexistent/pw",
                                "connect_timeout", "later",         NULL};
        settings_make(&s, nofile);
        assert_int_equal(ops->instance_new(backend_host(), backend_settings(&s), &inst, &err),
                         CA_BACKEND_EINVALID);
        assert_non_null(strstr(err.message, "password_file"));
        assert_non_null(strstr(err.message, "connect_timeout = later"));
        settings_clear(&s);
        backend_unload(b);
}

static void test_wrong_password(void **state)
{
        struct fx f;
        fx_open_with(&f, NULL, "Wr0ng-Pa55word\n", ORDER_TIMEOUT);
        struct ca_backend_error err = {0};
        run_rc(&f, ADD_JBOND, CA_BACKEND_EUNAVAILABLE, &err);
        assert_non_null(strstr(err.message, "password authentication failed for user"));
        expect_absent(err.message, "Wr0ng-Pa55word");
        expect_absent(err.message, PG_PASSWORD);
        memset(&err, 0, sizeof(err));
        assert_int_equal(f.ops->check(f.sess, &err), CA_BACKEND_EUNAVAILABLE);
        assert_non_null(strstr(err.message, "password authentication failed"));
        expect_absent(err.message, "Wr0ng-Pa55word");
        memset(&err, 0, sizeof(err));
        enum ca_backend_probe a = 0;
        assert_int_equal(probe_rc(&f, ADD_JBOND, &a, NULL, &err), CA_BACKEND_EUNAVAILABLE);
        expect_absent(err.message, "Wr0ng-Pa55word");

        /* The password is read at each connect: fixing the file is enough. */
        write_text(f.pwfile, PG_PASSWORD "\n", 0600);
        expect_executed(run(&f, ADD_JBOND), "jbond");
        fx_close(&f);
}

/* TLS settings pass through the connection string: verify-full against the test CA
 * works (and the server sees TLS); another CA, or a host name the certificate does not
 * name, is refused with libpq's words. */
static void test_tls(void **state)
{
        struct fx f;
        char tls[1100];
        fx_open(&f, NULL);
        snprintf(tls, sizeof(tls), "%s/../tls", pg_cluster.data);
        const char *variants[][2] = {
            {"127.0.0.1", "ca.crt"}, {"127.0.0.1", "other-ca.crt"}, {"localhost", "ca.crt"}};
        const char *refusal[] = {NULL, "certificate verify failed", "does not match host name"};
        for (size_t i = 0; i < 3; i++) {
                f.ops->session_close(f.sess);
                f.ops->instance_free(f.inst);
                settings_clear(&f.conn);
                snprintf(f.conninfo, sizeof(f.conninfo),
                         "host=%s port=%d dbname=postgres user=" PG_USER
                         " application_name=ca_tls sslmode=verify-full sslrootcert=%s/%s",
                         variants[i][0], pg_cluster.port, tls, variants[i][1]);
                conn_settings(&f, PG_PASSWORD "\n", ORDER_TIMEOUT, NULL, NULL);
                fx_instance(&f);
                struct ca_backend_error err = {0};
                int rc = f.ops->check(f.sess, &err);
                if (!refusal[i]) {
                        if (rc != CA_BACKEND_OK)
                                fail_msg("check over TLS: %s", err.message);
                        expect_executed(run(&f, ADD_JBOND), "jbond");
                        expect_db(
                            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a"
                            " USING (pid) WHERE a.application_name = 'ca_tls'",
                            "t");
                        continue;
                }
                assert_int_equal(rc, CA_BACKEND_EUNAVAILABLE);
                if (!strstr(err.message, refusal[i]))
                        fail_msg("\"%s\" lacks \"%s\"", err.message, refusal[i]);
                memset(&err, 0, sizeof(err));
                run_rc(&f, ADD_JBOND, CA_BACKEND_EUNAVAILABLE, &err);
                assert_non_null(strstr(err.message, refusal[i]));
        }
        fx_close(&f);
}

static void test_server_restart(void **state)
{
        struct fx f;
        fx_open(&f, NULL);
        struct ca_backend_error err = {0};
        expect_executed(run(&f, ADD_JBOND), "jbond");

        /* Restarted behind an idle session: the next order resets the connection. */
        assert_int_equal(pg_cluster_pause(1), 0);
        assert_int_equal(pg_cluster_pause(0), 0);
        expect_executed(run(&f, MOD_JBOND_NAME("Jim")), "jbond");
        expect_db("SELECT name FROM users WHERE id = 'jbond'", "Jim");
        assert_int_equal(pg_cluster_pause(1), 0);
        assert_int_equal(pg_cluster_pause(0), 0);
        assert_int_equal(f.ops->check(f.sess, &err), CA_BACKEND_OK);

        /* Stopped: unavailable, for execute, probe and check; nothing applied. */
        assert_int_equal(pg_cluster_pause(1), 0);
        run_rc(&f, MOD_JBOND_NAME("Jimmy"), CA_BACKEND_EUNAVAILABLE, &err);
        assert_non_null(strstr(err.message, "users id = 'jbond'"));
        memset(&err, 0, sizeof(err));
        run_rc(&f, MOD_JBOND_NAME("Jimmy"), CA_BACKEND_EUNAVAILABLE, &err);
        assert_non_null(strstr(err.message, "cannot connect to PostgreSQL"));
        memset(&err, 0, sizeof(err));
        enum ca_backend_probe a = 0;
        assert_int_equal(probe_rc(&f, ADD_JBOND, &a, NULL, &err), CA_BACKEND_EUNAVAILABLE);
        memset(&err, 0, sizeof(err));
        assert_int_equal(f.ops->check(f.sess, &err), CA_BACKEND_EUNAVAILABLE);
        expect_absent(err.message, PG_PASSWORD);
        /* describe needs no server. */
        struct ca_order *o = order_make(ADD_JBOND);
        struct ca_backend_result r = {0};
        assert_int_equal(
            f.ops->describe(f.sess, backend_order(o), backend_settings(&f.map), &r, &err),
            CA_BACKEND_OK);
        order_free(o);

        /* Back: the next call works on a new connection. */
        assert_int_equal(pg_cluster_pause(0), 0);
        expect_executed(run(&f, MOD_JBOND_NAME("Jimmy")), "jbond");
        expect_db("SELECT name FROM users WHERE id = 'jbond'", "Jimmy");
        memset(&err, 0, sizeof(err));
        assert_int_equal(f.ops->check(f.sess, &err), CA_BACKEND_OK);
        fx_close(&f);
}

/* Waits (bounded) until a psql query prints want. */
static void wait_for_db(const char *sql, const char *want)
{
        char out[CMD_OUTPUT_MAX] = "";
        for (int i = 0; i < POLL_STEPS; i++) {
                if (psql(sql, out, sizeof(out)) == 0 && strcmp(out, want) == 0)
                        return;
                sleep_ms(POLL_STEP_MS);
        }
        fail_msg("%s never gave \"%s\" (last: \"%s\")", sql, want, out);
}

static void test_statement_timeout(void **state)
{
        struct fx f;
        fx_open_with(&f, NULL, PG_PASSWORD "\n", LOCK_TIMEOUT_TEXT);
        expect_executed(run(&f, ADD_JBOND), "jbond");

        /* Another connection holds the row, and keeps holding it. */
        char port[16];
        snprintf(port, sizeof(port), "%d", pg_cluster.port);
        char conninfo[128];
        snprintf(conninfo, sizeof(conninfo),
                 "host=127.0.0.1 port=%s dbname=postgres user=" PG_USER
                 " application_name=ca_holder",
                 port);
        const char *argv[] = {PG_BIN "/psql",    "-X", "-q",     "-v",
                              "ON_ERROR_STOP=1", "-d", conninfo, NULL};
        int in_fd = -1;
        pid_t holder = spawn(argv, &in_fd, NULL);
        const char *lock = "BEGIN;\nUPDATE users SET name = name WHERE id = 'jbond';\n";
        assert_int_equal(write(in_fd, lock, strlen(lock)), (ssize_t)strlen(lock));
        wait_for_db("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'ca_holder' "
                    "AND state = 'idle in transaction'",
                    "1");

        struct ca_backend_error err = {0};
        uint64_t t0 = now_ms();
        run_rc(&f, MOD_JBOND_NAME("Locked"), CA_BACKEND_EUNAVAILABLE, &err);
        uint64_t took = now_ms() - t0;
        assert_non_null(strstr(err.message, "SQLSTATE 57014"));
        assert_non_null(strstr(err.message, "statement timeout"));
        if (took < LOCK_TIMEOUT_MS - 100 || took > LOCK_TIMEOUT_MS + 3000)
                fail_msg("the order gave up after %llu ms, order_timeout is %d ms",
                         (unsigned long long)took, LOCK_TIMEOUT_MS);

        /* The holder lets go (psql ends its session at end of input): the same order goes
         * through on the same session. */
        close(in_fd);
        assert_int_equal(reap(holder, now_ms() + PSQL_TIMEOUT_MS), 0);
        expect_executed(run(&f, MOD_JBOND_NAME("Locked")), "jbond");
        expect_db("SELECT name FROM users WHERE id = 'jbond'", "Locked");
        fx_close(&f);
}

static void test_commit_in_doubt(void **state)
{
        struct fx f;
        fx_open(&f, NULL);
        expect_executed(run(&f, ADD_JBOND), "jbond");

        /* The commit runs a deferred trigger that sleeps; meanwhile another connection
         * ends ours. The order's fate is not ours to know from the broken line. */
        char conninfo[128];
        snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d dbname=postgres user=" PG_USER,
                 pg_cluster.port);
        const char *killer_sql =
            "DO $$ BEGIN FOR i IN 1..100 LOOP"
            " IF (SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = "
            "'connector-agent' AND query = 'COMMIT' AND state = 'active') > 0 THEN"
            " PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
            "'connector-agent' AND query = 'COMMIT'; RETURN; END IF;"
            " PERFORM pg_sleep(0.05); END LOOP; END $$";
        const char *argv[] = {PG_BIN "/psql", "-X", "-q", "-d", conninfo, "-c", killer_sql, NULL};
        pid_t killer = spawn(argv, NULL, NULL);

        struct ca_backend_error err = {0};
        run_rc(&f, MOD_JBOND_NAME("slow"), CA_BACKEND_EINDOUBT, &err);
        assert_non_null(strstr(err.message, "the commit's outcome is unknown"));
        assert_int_equal(reap(killer, now_ms() + PSQL_TIMEOUT_MS), 0);

        /* The agent settles it with probe: not applied (the server rolled back). */
        assert_int_equal(probe(&f, MOD_JBOND_NAME("slow"), NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_db("SELECT name FROM users WHERE id = 'jbond'", "James");
        expect_executed(run(&f, MOD_JBOND_NAME("Jim")), "jbond");
        fx_close(&f);
}

/* Sessions of one instance run on parallel worker threads, one connection each. */
struct par {
        struct fx *f;
        int n;
        int failures;
};

static void *par_worker(void *arg)
{
        struct par *p = arg;
        void *sess = NULL;
        struct ca_backend_error err = {0};
        if (p->f->ops->session_open(p->f->inst, &sess, &err) != CA_BACKEND_OK) {
                p->failures++;
                return NULL;
        }
        for (int i = 0; i < 20; i++) {
                char json[512];
                snprintf(json, sizeof(json),
                         "{\"Id\":\"p%d-%d\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                         "\"Added\",\"Changes\":{\"uid\":\"u%d-%d\",\"memberOf_add\":[\"g\"]}}",
                         p->n, i, p->n, i);
                struct ca_order *o = order_make(json);
                struct ca_backend_result r = {0};
                memset(&err, 0, sizeof(err));
                int rc = p->f->ops->execute(sess, backend_order(o), backend_settings(&p->f->map),
                                            &r, &err);
                if (rc != CA_BACKEND_OK || r.state != CA_BACKEND_EXECUTED)
                        p->failures++;
                order_free(o);
        }
        p->f->ops->session_close(sess);
        return NULL;
}

static void test_parallel_sessions(void **state)
{
        struct fx f;
        fx_open(&f, NULL);
        pthread_t t[4];
        struct par p[4];
        for (int i = 0; i < 4; i++) {
                p[i] = (struct par){.f = &f, .n = i};
                assert_int_equal(pthread_create(&t[i], NULL, par_worker, &p[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
                pthread_join(t[i], NULL);
                assert_int_equal(p[i].failures, 0);
        }
        expect_db("SELECT COUNT(*) FROM users", "80");
        expect_db("SELECT COUNT(*) FROM memberships", "80");
        fx_close(&f);
}

/* Added writes first only where the key is unique by itself and checked at once; elsewhere
 * a repeat must still be found by reading, not inserted a second time. */
static void test_added_key_not_unique(void **state)
{
        (void)state;
        const char *tables[] = {"pairs", "partial", "deferred"};
        for (size_t t = 0; t < 3; t++) {
                const char *map[] = {"table", tables[t], "key_column",     "id", "key_change",
                                     "uid",   "columns", "givenName:name", NULL};
                struct fx f;
                fx_open(&f, map);
                const char *add = "{\"Id\":\"p1\",\"AssignedResourceTypeId\":\"1\","
                                  "\"ChangeType\":\"Added\",\"Changes\":{\"uid\":\"p\","
                                  "\"givenName\":null}}";
                expect_executed(run(&f, add), "p");
                struct ca_backend_result r = run(&f, add);
                expect_executed(r, "p");
                assert_non_null(strstr(r.message, "already there"));
                expect_errored(run(&f, "{\"Id\":\"p2\",\"AssignedResourceTypeId\":\"1\","
                                       "\"ChangeType\":\"Added\",\"Changes\":{\"uid\":\"p\","
                                       "\"givenName\":\"Other\"}}"),
                               "row exists with different values");
                char q[96];
                snprintf(q, sizeof(q), "SELECT COUNT(*) FROM %s", tables[t]);
                expect_db(q, "1");
                fx_close(&f);
        }
}

/* A kept statement whose result type changed under it (the key column's type altered from
 * outside) cannot run as prepared: the order is unavailable, to be tried again, and the
 * next try, on a new connection, works. */
static void test_kept_statement_type_change(void **state)
{
        (void)state;
        struct fx f;
        fx_open(&f, NULL);
        expect_executed(run(&f, ADD_JBOND), "jbond");
        assert_int_equal(probe(&f, ADD_JBOND, NULL), CA_BACKEND_PROBE_APPLIED);
        db_exec("ALTER TABLE users ALTER COLUMN id TYPE varchar(64)");
        struct ca_backend_error err = {0};
        enum ca_backend_probe a = 0;
        assert_int_equal(probe_rc(&f, ADD_JBOND, &a, NULL, &err), CA_BACKEND_EUNAVAILABLE);
        if (!strstr(err.message, "cached plan"))
                fail_msg("unexpected message: %s", err.message);
        assert_int_equal(probe(&f, ADD_JBOND, NULL), CA_BACKEND_PROBE_APPLIED);
        struct ca_backend_result r = run(&f, ADD_JBOND);
        expect_executed(r, "jbond");
        assert_non_null(strstr(r.message, "already there"));
        expect_executed(run(&f, MOD_JBOND_NAME("Jim")), "jbond");
        expect_db("SELECT name FROM users WHERE id = 'jbond'", "Jim");
        fx_close(&f);
}

/* Behind a pooler that hands each transaction another server session, our prepared
 * statements are gone between two orders; a trigger that deallocates every statement
 * plays that pooler. The order that meets it is unavailable (to be tried again), and
 * from then on the process prepares nothing: the retry and later orders work. Runs last:
 * preparing stays off for the rest of the process. */
static void test_statements_lost_between_orders(void **state)
{
        (void)state;
        struct fx f;
        fx_open(&f, NULL);
        db_exec("CREATE OR REPLACE FUNCTION forget_all() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN EXECUTE 'DEALLOCATE ALL'; RETURN NEW; END $$;"
                "CREATE TRIGGER users_forget AFTER INSERT ON users FOR EACH ROW WHEN "
                "(NEW.name = 'forget') EXECUTE FUNCTION forget_all();");
        expect_executed(run(&f, ADD_JBOND), "jbond");
        expect_executed(run(&f, "{\"Id\":\"f1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                                "\"Added\",\"Changes\":{\"uid\":\"f\",\"givenName\":\"forget\"}}"),
                        "f");
        struct ca_backend_error err = {0};
        run_rc(&f, MOD_JBOND_NAME("Jim"), CA_BACKEND_EUNAVAILABLE, &err);
        if (!strstr(err.message, "26000"))
                fail_msg("unexpected message: %s", err.message);
        expect_db("SELECT name FROM users WHERE id = 'jbond'", "James");
        expect_executed(run(&f, MOD_JBOND_NAME("Jim")), "jbond");
        expect_executed(run(&f, "{\"Id\":\"f2\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
                                "\"Added\",\"Changes\":{\"uid\":\"g\",\"givenName\":\"forget\"}}"),
                        "g");
        expect_executed(run(&f, MOD_JBOND_NAME("Jo")), "jbond");
        expect_db("SELECT name FROM users WHERE id = 'jbond'", "Jo");
        fx_close(&f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_added_and_repeat),
            cmocka_unit_test(test_modified),
            cmocka_unit_test(test_deleted),
            cmocka_unit_test(test_constraints_roll_back),
            cmocka_unit_test(test_injection_harmless),
            cmocka_unit_test(test_links_without_unique_constraint),
            cmocka_unit_test(test_typed_columns),
            cmocka_unit_test(test_password_column),
            cmocka_unit_test(test_describe_shows_dollar_placeholders),
            cmocka_unit_test(test_check_and_settings),
            cmocka_unit_test(test_wrong_password),
            cmocka_unit_test(test_tls),
            cmocka_unit_test(test_server_restart),
            cmocka_unit_test(test_statement_timeout),
            cmocka_unit_test(test_commit_in_doubt),
            cmocka_unit_test(test_parallel_sessions),
            cmocka_unit_test(test_added_key_not_unique),
            cmocka_unit_test(test_kept_statement_type_change),
            /* last: it switches preparing off for the process */
            cmocka_unit_test(test_statements_lost_between_orders),
        };
        return cmocka_run_group_tests(tests, pg_group_setup, pg_group_teardown);
}
