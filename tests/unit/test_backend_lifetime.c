/* SPDX-License-Identifier: Apache-2.0 */
/* The ldap and sql plug-ins' lifetime in one process, as the agent lives it: loaded,
 * an instance built, a reload's new instance built beside it and the old one freed,
 * unloaded, and loaded again, several times, with TLS connections in between (that is
 * what makes libpq and libldap keep state for the whole process). Against a real
 * PostgreSQL (tests/pg/pg.sh) and a real slapd (tests/ldap/slapd.sh) on loopback. Under
 * ASan it shows what -z nodelete used to hide: a library's state stranded by an unload
 * is a leak at exit, and a pointer into unloaded code is a crash on the next load.
 * Nothing is skipped: without the servers the test fails and says how to install them. */
#include "backend_test_util.h"
#include "pg_cluster.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#define CMD_TIMEOUT "90" /* seconds one helper script may take */
#define OUT_MAX     65536
#define ROUNDS      3 /* load .. unload cycles per plug-in */
#define PG_USER     PG_CLUSTER_USER
#define PG_PASSWORD PG_CLUSTER_PASSWORD

static struct {
        char src[4096];
        char tmp[64];       /* password files */
        char ldap_dir[256]; /* "" when not made */
        char ldap_uri[128], ldaps_uri[128], ldap_ca[512], ldap_pw[512];
} T;

static int free_port(void)
{
        int port = pg_cluster_free_port();
        assert_true(port > 0);
        return port;
}

static void kv_get(const char *out, const char *key, char *dst, size_t len)
{
        char pat[64];
        snprintf(pat, sizeof(pat), "%s=", key);
        const char *p = strstr(out, pat);
        if (!p)
                fail_msg("slapd.sh printed no %s:\n%s", key, out);
        p += strlen(pat);
        snprintf(dst, len, "%.*s", (int)strcspn(p, "\n"), p);
}

static int pg_start(void)
{
        if (pg_cluster_start() < 0)
                return -1;
        /* The plug-in's own password file (the connection never carries one). */
        char pw[128];
        snprintf(pw, sizeof(pw), "%s/pg.pw", T.tmp);
        write_text(pw, PG_PASSWORD "\n", 0600);
        return 0;
}

static int ldap_start(void)
{
        char out[OUT_MAX], script[4200], p1[16], p2[16], owner[32];
        snprintf(script, sizeof(script), "%s/tests/ldap/slapd.sh", T.src);
        snprintf(T.ldap_dir, sizeof(T.ldap_dir), "%s/slapd", T.tmp);
        assert_int_equal(mkdir(T.ldap_dir, 0700), 0);
        snprintf(p1, sizeof(p1), "%d", free_port());
        do
                snprintf(p2, sizeof(p2), "%d", free_port());
        while (strcmp(p1, p2) == 0);
        snprintf(owner, sizeof(owner), "%d", (int)getpid());
        setenv("CA_SLAPD_OWNER_PID", owner, 1);
        char *argv[] = {script, "start", T.ldap_dir, p1, p2, NULL};
        int rc = test_run_bounded(CMD_TIMEOUT, argv, out, sizeof(out));
        if (rc != 0) {
                fprintf(stderr, "tests/ldap/slapd.sh start failed (%d):\n%s\n%s\n", rc, out,
                        rc == 3 ? "run tests/run.sh, which installs slapd and ldap-utils" : "");
                return -1;
        }
        kv_get(out, "LDAP_URI", T.ldap_uri, sizeof(T.ldap_uri));
        kv_get(out, "LDAPS_URI", T.ldaps_uri, sizeof(T.ldaps_uri));
        kv_get(out, "CA_FILE", T.ldap_ca, sizeof(T.ldap_ca));
        kv_get(out, "ADMIN_PW_FILE", T.ldap_pw, sizeof(T.ldap_pw));
        return 0;
}

static int group_setup(void **state)
{
        const char *src = getenv("CA_TEST_SOURCE_DIR");
        if (!src) {
                fprintf(stderr, "CA_TEST_SOURCE_DIR is not set (run through ctest)\n");
                return -1;
        }
        snprintf(T.src, sizeof(T.src), "%s", src);
        snprintf(T.tmp, sizeof(T.tmp), "/tmp/ca-lifetime-XXXXXX");
        assert_non_null(mkdtemp(T.tmp));
        assert_int_equal(chmod(T.tmp, 0755), 0);
        return pg_start() < 0 || ldap_start() < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
        char out[OUT_MAX], script[4200];
        int rc = 0;
        if (pg_cluster_stop() < 0)
                rc = -1;
        if (T.ldap_dir[0]) {
                snprintf(script, sizeof(script), "%s/tests/ldap/slapd.sh", T.src);
                char *argv[] = {script, "destroy", T.ldap_dir, NULL};
                if (test_run_bounded(CMD_TIMEOUT, argv, out, sizeof(out)) != 0) {
                        fprintf(stderr, "tests/ldap/slapd.sh destroy: %s\n", out);
                        rc = -1;
                }
        }
        tmpdir_remove(strdup(T.tmp));
        return rc;
}

/* One instance of ops from kv, with a session whose check reaches the server. */
struct live {
        struct ca_settings settings;
        void *inst;
        void *sess;
};

static void live_open(const struct ca_backend_ops *ops, struct live *l, const char *const *kv)
{
        struct ca_backend_error err = {0};
        memset(l, 0, sizeof(*l));
        settings_make(&l->settings, kv);
        if (ops->instance_new(backend_host(), backend_settings(&l->settings), &l->inst, &err) !=
            CA_BACKEND_OK)
                fail_msg("%s instance_new: %s", ops->name, err.message);
        if (ops->session_open(l->inst, &l->sess, &err) != CA_BACKEND_OK)
                fail_msg("%s session_open: %s", ops->name, err.message);
        if (ops->check(l->sess, &err) != CA_BACKEND_OK)
                fail_msg("%s check: %s", ops->name, err.message);
}

static void live_close(const struct ca_backend_ops *ops, struct live *l)
{
        ops->session_close(l->sess);
        ops->instance_free(l->inst);
        settings_clear(&l->settings);
}

/* Whether the object at path (or with that soname) is loaded in this process now. */
static int is_loaded(const char *path)
{
        void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
        if (h)
                dlclose(h);
        return h != NULL;
}

/* Load, instance, reload (the new instance is built while the old one still runs, as
 * the agent's reload does), unload; ROUNDS times, each round over TLS again. */
static void cycle(const char *name, const char *const *first, const char *const *second,
                  const char *library_symbol)
{
        char path[4200], library[4200] = "";
        snprintf(path, sizeof(path), "%s/%s.so", test_backend_dir(), name);
        for (int round = 0; round < ROUNDS; round++) {
                struct backend *b = load_backend(name);
                const struct ca_backend_ops *ops = backend_ops(b);
                /* The library as the plug-in's own dependencies found it. */
                void *self = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
                assert_non_null(self);
                void *sym = dlsym(self, library_symbol);
                Dl_info info;
                assert_non_null(sym);
                assert_true(dladdr(sym, &info) && info.dli_fname);
                snprintf(library, sizeof(library), "%s", info.dli_fname);
                dlclose(self);
                struct live old, fresh;
                live_open(ops, &old, first);
                live_open(ops, &fresh, second);
                live_close(ops, &old);
                struct ca_backend_error err = {0};
                if (ops->check(fresh.sess, &err) != CA_BACKEND_OK)
                        fail_msg("%s check after the old instance went (round %d): %s", name, round,
                                 err.message);
                live_close(ops, &fresh);
                backend_unload(b);
                /* The plug-in really goes (no -z nodelete), the library it pinned stays. */
                if (is_loaded(path))
                        fail_msg("%s is still loaded after backend_unload", path);
                if (!is_loaded(library))
                        fail_msg("%s was unloaded with %s: its process state went with it", library,
                                 name);
        }
}

static void test_sql_reload_and_unload(void **state)
{
        char conninfo[2][1400], pw[128];
        snprintf(pw, sizeof(pw), "%s/pg.pw", T.tmp);
        for (int i = 0; i < 2; i++)
                snprintf(conninfo[i], sizeof(conninfo[i]),
                         "host=127.0.0.1 port=%d dbname=postgres user=" PG_USER
                         " application_name=ca_lifetime%d sslmode=verify-full "
                         "sslrootcert=%s/../tls/ca.crt",
                         pg_cluster.port, i, pg_cluster.data);
        const char *a[] = {"backend",   "sql",           "driver", "postgresql", "connection",
                           conninfo[0], "password_file", pw,       NULL};
        const char *b[] = {"backend",   "sql",           "driver", "postgresql", "connection",
                           conninfo[1], "password_file", pw,       NULL};
        cycle("sql", a, b, "PQconnectdb");
}

static void test_ldap_reload_and_unload(void **state)
{
        /* ldaps:// for one instance, StartTLS for the other: both TLS paths of libldap. */
        const char *a[] = {"backend",
                           "ldap",
                           "uri",
                           T.ldaps_uri,
                           "ca_file",
                           T.ldap_ca,
                           "bind_dn",
                           "cn=admin,dc=example,dc=com",
                           "bind_password_file",
                           T.ldap_pw,
                           NULL};
        const char *b[] = {"backend",
                           "ldap",
                           "uri",
                           T.ldap_uri,
                           "ca_file",
                           T.ldap_ca,
                           "bind_dn",
                           "cn=admin,dc=example,dc=com",
                           "bind_password_file",
                           T.ldap_pw,
                           NULL};
        cycle("ldap", a, b, "ldap_initialize");
}

/* Both plug-ins loaded at once, unloaded in either order: neither's hooks may undo what
 * the other still uses (libpq links libldap too). */
static void test_both_loaded(void **state)
{
        for (int order = 0; order < 2; order++) {
                struct backend *sql = load_backend("sql");
                struct backend *ldap = load_backend("ldap");
                if (order == 0) {
                        backend_unload(sql);
                        backend_unload(ldap);
                } else {
                        backend_unload(ldap);
                        backend_unload(sql);
                }
        }
        test_sql_reload_and_unload(state);
        test_ldap_reload_and_unload(state);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            /* ldap first: sql's libpq links libldap, so after sql no unload of ldap.so
             * would take libldap with it. */
            cmocka_unit_test(test_ldap_reload_and_unload),
            cmocka_unit_test(test_sql_reload_and_unload),
            cmocka_unit_test(test_both_loaded),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
