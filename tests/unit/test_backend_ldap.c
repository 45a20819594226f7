/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the ldap back-end plug-in against a real slapd on loopback
 * (tests/ldap/slapd.sh), loaded through the real loader: every change type, idempotent
 * re-application, RDN and filter escaping read back with ldapsearch, TLS (ldaps:// and
 * StartTLS, right and wrong CA), plain LDAP refused unless allowed, a wrong password,
 * a hung and a stopped server, probe and describe; passwords through Password Modify, the
 * account state through ppolicy's pwdAccountLockedTime (proven by the account's bind) and
 * through a configured attribute; group unlinking as a size-limited service account, so
 * that only the paged-results control finds every group. Nothing is skipped: without
 * slapd the test fails and says how to install it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend_loader.h"
#include "backend_test_util.h"
#include "config.h"
#include "order.h"

#define OUT_MAX        65536
#define CMD_TIMEOUT    "60" /* seconds any helper command may take (slapd waits <= 10 s) */
#define PEOPLE         "ou=people,dc=example,dc=com"
#define AGENTS         "cn=agents,ou=groups,dc=example,dc=com"
#define WRONG_PASSWORD "not-the-Password-4711"

static struct {
        char dir[256];
        char script[4096];
        char uri[128], ldaps_uri[128];
        char ca[512], wrong_ca[512], pw_file[512], wrong_pw_file[512];
        char agent_dn[128], agent_pw_file[512];
        int agent_sizelimit;
        int pid;
        int started;
        struct backend *b;
        const struct ca_backend_ops *ops;
} T;

/* --- helpers --- */

static int run(char *const argv[], char *out, size_t outlen)
{
        return test_run_bounded(CMD_TIMEOUT, argv, out, outlen);
}

static int free_port(void)
{
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(a);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        close(fd);
        return ntohs(a.sin_port);
}

static void kv_get(const char *out, const char *key, char *dst, size_t len)
{
        char pat[64];
        snprintf(pat, sizeof(pat), "%s=", key);
        const char *p = strstr(out, pat);
        if (!p)
                fail_msg("slapd.sh printed no %s:\n%s", key, out);
        p += strlen(pat);
        size_t n = strcspn(p, "\n");
        snprintf(dst, len, "%.*s", (int)n, p);
}

static void write_file(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
}

static void slapd_cmd(const char *cmd)
{
        char out[OUT_MAX];
        char *argv[] = {T.script, (char *)cmd, T.dir, NULL};
        int rc = run(argv, out, sizeof(out));
        if (rc != 0)
                fail_msg("slapd.sh %s failed (%d):\n%s", cmd, rc, out);
        if (strcmp(cmd, "serve") == 0) {
                char path[512];
                snprintf(path, sizeof(path), "%s/slapd.pid", T.dir);
                FILE *f = fopen(path, "r");
                assert_non_null(f);
                assert_int_equal(fscanf(f, "%d", &T.pid), 1);
                fclose(f);
        }
}

static int group_setup(void **state)
{
        char out[OUT_MAX];
        const char *src = getenv("CA_TEST_SOURCE_DIR");
        if (!src)
                fail_msg("CA_TEST_SOURCE_DIR is not set (run through ctest)");
        if (access("/usr/sbin/slapd", X_OK) != 0 && system("command -v slapd >/dev/null") != 0)
                fail_msg("slapd is not installed: run tests/run.sh, which installs the Debian "
                         "packages slapd and ldap-utils");
        snprintf(T.script, sizeof(T.script), "%s/tests/ldap/slapd.sh", src);
        snprintf(T.dir, sizeof(T.dir), "/tmp/ca-ldap-test-XXXXXX");
        assert_non_null(mkdtemp(T.dir));
        char p1[16], p2[16], owner[32];
        snprintf(p1, sizeof(p1), "%d", free_port());
        do
                snprintf(p2, sizeof(p2), "%d", free_port());
        while (strcmp(p1, p2) == 0);
        snprintf(owner, sizeof(owner), "%d", (int)getpid());
        setenv("CA_SLAPD_OWNER_PID", owner, 1);
        char *argv[] = {T.script, "start", T.dir, p1, p2, NULL};
        int rc = run(argv, out, sizeof(out));
        T.started = 1;
        if (rc == 3)
                fail_msg("%s\nrun tests/run.sh, which installs slapd and ldap-utils", out);
        if (rc != 0)
                fail_msg("slapd.sh start failed (%d):\n%s", rc, out);
        kv_get(out, "LDAP_URI", T.uri, sizeof(T.uri));
        kv_get(out, "LDAPS_URI", T.ldaps_uri, sizeof(T.ldaps_uri));
        kv_get(out, "CA_FILE", T.ca, sizeof(T.ca));
        kv_get(out, "WRONG_CA_FILE", T.wrong_ca, sizeof(T.wrong_ca));
        kv_get(out, "ADMIN_PW_FILE", T.pw_file, sizeof(T.pw_file));
        kv_get(out, "AGENT_DN", T.agent_dn, sizeof(T.agent_dn));
        kv_get(out, "AGENT_PW_FILE", T.agent_pw_file, sizeof(T.agent_pw_file));
        char limit[32];
        kv_get(out, "AGENT_SIZELIMIT", limit, sizeof(limit));
        T.agent_sizelimit = atoi(limit);
        char pid[32];
        kv_get(out, "PID", pid, sizeof(pid));
        T.pid = atoi(pid);
        snprintf(T.wrong_pw_file, sizeof(T.wrong_pw_file), "%s/wrong.pw", T.dir);
        write_file(T.wrong_pw_file, WRONG_PASSWORD);

        struct ca_error err = {0};
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/backends", getenv("CA_TEST_BUILD_DIR"));
        if (backend_load(dir, "ldap", &T.b, &err) < 0)
                fail_msg("backend_load ldap: %s", err.msg);
        T.ops = backend_ops(T.b);
        return 0;
}

static int group_teardown(void **state)
{
        backend_unload(T.b);
        if (T.started) {
                char out[OUT_MAX];
                kill(T.pid, SIGCONT);
                char *argv[] = {T.script, "destroy", T.dir, NULL};
                run(argv, out, sizeof(out));
        }
        return 0;
}

struct conn {
        struct ca_settings settings;
        void *inst;
        void *session;
};

/* An instance from settings; returns its rc, err filled. */
static int conn_new(struct conn *c, const char *const *kv, struct ca_backend_error *err)
{
        memset(c, 0, sizeof(*c));
        memset(err, 0, sizeof(*err));
        settings_make(&c->settings, kv);
        return T.ops->instance_new(backend_host(), backend_settings(&c->settings), &c->inst, err);
}

static int conn_open(struct conn *c, struct ca_backend_error *err)
{
        memset(err, 0, sizeof(*err));
        return T.ops->session_open(c->inst, &c->session, err);
}

static void conn_free(struct conn *c)
{
        if (c->session)
                T.ops->session_close(c->session);
        if (c->inst)
                T.ops->instance_free(c->inst);
        settings_clear(&c->settings);
}

/* A connection over StartTLS with the test CA as dn, opened. */
static void conn_as(struct conn *c, const char *dn, const char *pw_file, const char *extra_key,
                    const char *extra_value)
{
        struct ca_backend_error err;
        const char *kv[] = {
            "uri",   T.uri,           "ca_file", T.ca,      "bind_dn",   dn,  "bind_password_file",
            pw_file, "order_timeout", "5s",      extra_key, extra_value, NULL};
        if (!extra_key)
                kv[10] = NULL;
        int rc = conn_new(c, kv, &err);
        if (rc != 0)
                fail_msg("instance_new: %d %s", rc, err.message);
        rc = conn_open(c, &err);
        if (rc != 0)
                fail_msg("session_open: %d %s", rc, err.message);
}

/* The usual admin connection (the rootdn: no limits apply to it). */
static void conn_admin(struct conn *c, const char *extra_key, const char *extra_value)
{
        conn_as(c, "cn=admin,dc=example,dc=com", T.pw_file, extra_key, extra_value);
}

/* The service account: writes everything, gets at most T.agent_sizelimit entries from a
 * search without the paged-results control (tests/ldap/slapd.sh). */
static void conn_agent(struct conn *c)
{
        conn_as(c, T.agent_dn, T.agent_pw_file, NULL, NULL);
}

static const char *const people_map[] = {"connector",    "ldap",          "base_dn",
                                         PEOPLE,         "rdn_attribute", "uid",
                                         "object_class", "inetOrgPerson", NULL};

/* An LDAP_User order with these Changes and Resource (JSON objects). */
static struct ca_order *ldap_order(const char *change, const char *changes, const char *resource)
{
        static int seq;
        char text[8192];
        snprintf(text, sizeof(text),
                 "{\"Id\":\"o-%d\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"%s\","
                 "\"ResourceType\":{\"Identifier\":\"LDAP_User\"},\"Changes\":%s,\"Resource\":%s}",
                 ++seq, change, changes, resource ? resource : "{}");
        return order_make(text);
}

struct outcome {
        int rc;
        struct ca_backend_result r;
        struct ca_backend_error err;
        enum ca_backend_probe answer;
};

static struct outcome exec_map(struct conn *c, const char *const *map, const char *change,
                               const char *changes, const char *resource)
{
        struct outcome out;
        memset(&out, 0, sizeof(out));
        struct ca_settings m = {0};
        settings_make(&m, map);
        struct ca_order *o = ldap_order(change, changes, resource);
        out.rc =
            T.ops->execute(c->session, backend_order(o), backend_settings(&m), &out.r, &out.err);
        order_free(o);
        settings_clear(&m);
        return out;
}

static struct outcome exec_order(struct conn *c, const char *change, const char *changes,
                                 const char *resource)
{
        return exec_map(c, people_map, change, changes, resource);
}

static struct outcome probe_order(struct conn *c, const char *change, const char *changes,
                                  const char *resource)
{
        struct outcome out;
        memset(&out, 0, sizeof(out));
        struct ca_settings m = {0};
        settings_make(&m, people_map);
        struct ca_order *o = ldap_order(change, changes, resource);
        out.rc = T.ops->probe(c->session, backend_order(o), backend_settings(&m), &out.answer,
                              &out.r, &out.err);
        order_free(o);
        settings_clear(&m);
        return out;
}

static void expect_executed(struct outcome o, const char *dn, const char *needle)
{
        if (o.rc != 0)
                fail_msg("execute returned %d: %s", o.rc, o.err.message);
        if (!o.r.set || o.r.state != CA_BACKEND_EXECUTED)
                fail_msg("expected Executed, got state %d: %s", o.r.state, o.r.message);
        if (dn)
                assert_string_equal(o.r.resource_identifier, dn);
        if (needle && !strstr(o.r.message, needle))
                fail_msg("message \"%s\" lacks \"%s\"", o.r.message, needle);
}

static void expect_errored(struct outcome o, const char *needle)
{
        if (o.rc != 0)
                fail_msg("execute returned %d: %s", o.rc, o.err.message);
        if (!o.r.set || o.r.state != CA_BACKEND_ERRORED)
                fail_msg("expected Errored, got state %d: %s", o.r.state, o.r.message);
        if (needle && !strstr(o.r.message, needle))
                fail_msg("message \"%s\" lacks \"%s\"", o.r.message, needle);
}

static void expect_probe(struct outcome o, enum ca_backend_probe answer)
{
        if (o.rc != 0)
                fail_msg("probe returned %d: %s", o.rc, o.err.message);
        if (o.answer != answer)
                fail_msg("probe answered %d, expected %d", o.answer, answer);
}

/* --- reading back with ldapsearch (not through the plug-in) --- */

static int b64val(int c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static void b64_decode(const char *in, size_t len, char *out, size_t outlen)
{
        size_t o = 0;
        unsigned acc = 0;
        int bits = 0;
        for (size_t i = 0; i < len && o + 1 < outlen; i++) {
                int v = b64val((unsigned char)in[i]);
                if (v < 0)
                        continue;
                acc = (acc << 6) | (unsigned)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (char)((acc >> bits) & 0xff);
                }
        }
        out[o] = '\0';
}

/* ldapsearch's LDIF with base64 values decoded: "attr: value\n" lines, brackets around
 * values so that leading and trailing spaces show: "uid: [ x ]". Returns the exit code. */
static int ldif_read(const char *base, const char *scope, const char *filter, const char *attrs,
                     char *text, size_t len)
{
        char raw[OUT_MAX];
        char *argv[] = {"ldapsearch",
                        "-x",
                        "-LLL",
                        "-o",
                        "ldif-wrap=no",
                        "-o",
                        "nettimeout=5",
                        "-H",
                        T.uri,
                        "-D",
                        "cn=admin,dc=example,dc=com",
                        "-y",
                        T.pw_file,
                        "-b",
                        (char *)base,
                        "-s",
                        (char *)scope,
                        (char *)filter,
                        (char *)attrs,
                        NULL};
        int rc = run(argv, raw, sizeof(raw));
        size_t o = 0;
        text[0] = '\0';
        for (char *line = strtok(raw, "\n"); line; line = strtok(NULL, "\n")) {
                char *colon = strchr(line, ':');
                if (!colon)
                        continue;
                char val[4096];
                if (colon[1] == ':')
                        b64_decode(colon + 2, strlen(colon + 2), val, sizeof(val));
                else
                        snprintf(val, sizeof(val), "%s", colon[1] == ' ' ? colon + 2 : colon + 1);
                int n = snprintf(text + o, len - o, "%.*s: [%s]\n", (int)(colon - line), line, val);
                if (n > 0 && (size_t)n < len - o)
                        o += (size_t)n;
        }
        return rc;
}

static void expect_in(const char *text, const char *needle)
{
        if (!strstr(text, needle))
                fail_msg("expected \"%s\" in:\n%s", needle, text);
}

static void expect_not_in(const char *text, const char *needle)
{
        if (strstr(text, needle))
                fail_msg("did not expect \"%s\" in:\n%s", needle, text);
}

static void agents_members(char *text, size_t len)
{
        assert_int_equal(ldif_read(AGENTS, "base", "(objectClass=*)", "member", text, len), 0);
}

/* --- the tests --- */

/* The mapping kv is refused, and the message says needle. */
static void mapping_refused(void *inst, const char *const *kv, const char *needle)
{
        struct ca_settings m;
        struct ca_backend_error err = {0};
        settings_make(&m, kv);
        assert_int_equal(T.ops->mapping_check(inst, backend_settings(&m), &err),
                         CA_BACKEND_EINVALID);
        expect_in(err.message, needle);
        settings_clear(&m);
}

static void test_settings_refused(void **state)
{
        struct conn c;
        struct ca_backend_error err;

        const char *plain[] = {"uri", T.uri, "starttls", "no", NULL};
        assert_int_equal(conn_new(&c, plain, &err), CA_BACKEND_EINVALID);
        expect_in(err.message, "allow_plain");
        conn_free(&c);

        const char *both[] = {"uri", T.ldaps_uri, "starttls", "yes", NULL};
        assert_int_equal(conn_new(&c, both, &err), CA_BACKEND_EINVALID);
        expect_in(err.message, "ldaps://");
        conn_free(&c);

        const char *bad[] = {
            "uri",  "http://x",          "bind_password", "secret",  "order_timeout",
            "soon", "permissive_modify", "maybe",         "bind_dn", "cn=admin,dc=example,dc=com",
            NULL};
        assert_int_equal(conn_new(&c, bad, &err), CA_BACKEND_EINVALID);
        expect_in(err.message, "uri = http://x");
        expect_in(err.message, "bind_password: unknown key");
        expect_in(err.message, "bind_password_file");
        expect_in(err.message, "order_timeout = soon");
        expect_in(err.message, "permissive_modify = maybe");
        expect_not_in(err.message, "= secret");
        conn_free(&c);

        /* Mapping checks name every bad key. */
        const char *ok[] = {"uri", T.uri, "ca_file", T.ca, NULL};
        assert_int_equal(conn_new(&c, ok, &err), 0);
        struct ca_settings m = {0};
        const char *badmap[] = {"base_dn", "not a dn", "rdn_attribute", "u id", "attributes",
                                "nocolon", "colour",   "blue",          NULL};
        settings_make(&m, badmap);
        memset(&err, 0, sizeof(err));
        assert_int_equal(T.ops->mapping_check(c.inst, backend_settings(&m), &err),
                         CA_BACKEND_EINVALID);
        expect_in(err.message, "base_dn = not a dn");
        expect_in(err.message, "rdn_attribute = u id");
        expect_in(err.message, "object_class: required");
        expect_in(err.message, "'nocolon' is not changeKey:ldapAttribute");
        expect_in(err.message, "colour: unknown key");
        settings_clear(&m);
        /* A leading ';' is no attribute description (found by fuzz_backend_ldap). */
        const char *semi[] = {"base_dn", PEOPLE, "rdn_attribute", ";cn", "object_class",
                              "person",  NULL};
        mapping_refused(c.inst, semi, "rdn_attribute = ;cn");
        settings_make(&m, people_map);
        memset(&err, 0, sizeof(err));
        assert_int_equal(T.ops->mapping_check(c.inst, backend_settings(&m), &err), 0);
        settings_clear(&m);
        conn_free(&c);
}

static void test_added_idempotent(void **state)
{
        struct conn c;
        char text[OUT_MAX];
        const char *dn = "uid=jbond," PEOPLE;
        const char *changes = "{\"uid\":\"jbond\",\"cn\":\"James Bond\",\"sn\":\"Bond\","
                              "\"mail\":\"james.bond@example.com\",\"title\":null,"
                              "\"telephoneNumber\":[\"+1 555 0100\",\"+1 555 0101\"],"
                              "\"description\":[],"
                              "\"memberOf_add\":[\"" AGENTS "\"],\"memberOf_remove\":[]}";
        conn_admin(&c, NULL, NULL);

        expect_probe(probe_order(&c, "Added", changes, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_executed(exec_order(&c, "Added", changes, NULL), dn, "added");
        assert_int_equal(ldif_read(dn, "base", "(objectClass=*)", "*", text, sizeof(text)), 0);
        expect_in(text, "objectClass: [inetOrgPerson]");
        expect_in(text, "cn: [James Bond]");
        expect_in(text, "telephoneNumber: [+1 555 0100]");
        expect_in(text, "telephoneNumber: [+1 555 0101]");
        expect_not_in(text, "title:");
        expect_not_in(text, "description:");
        agents_members(text, sizeof(text));
        expect_in(text, "member: [uid=jbond," PEOPLE "]");

        /* Again: the same values are already there, and so is the membership. */
        expect_executed(exec_order(&c, "Added", changes, NULL), dn, "already there");
        expect_probe(probe_order(&c, "Added", changes, NULL), CA_BACKEND_PROBE_APPLIED);

        /* The same entry with other values is not the same order. */
        struct outcome o = exec_order(&c, "Added",
                                      "{\"uid\":\"jbond\",\"cn\":\"James Bond\",\"sn\":\"Bond\","
                                      "\"telephoneNumber\":[\"+1 555 0100\"]}",
                                      NULL);
        expect_errored(o, "ldap_add uid=jbond," PEOPLE ": Already exists (68)");
        expect_in(o.r.message, "entry exists with different values: telephoneNumber");
        expect_not_in(o.r.message, "cn");
        expect_probe(probe_order(&c, "Added", "{\"uid\":\"jbond\",\"sn\":\"Bonde\"}", NULL),
                     CA_BACKEND_PROBE_NOT_APPLIED);

        /* An attribute the schema does not know: the server's own words, the DN. */
        o = exec_order(&c, "Added", "{\"uid\":\"q\",\"sn\":\"Q\",\"cn\":\"Q\",\"shoeSize\":\"9\"}",
                       NULL);
        expect_errored(o, "ldap_add uid=q," PEOPLE ": Undefined attribute type (17)");
        expect_in(o.r.message, "shoeSize");
        /* A Changes key that cannot be an attribute name is refused before any request. */
        expect_errored(exec_order(&c, "Added", "{\"uid\":\"q\",\"bad key\":\"x\"}", NULL),
                       "Changes key 'bad key'");
        conn_free(&c);
}

static void test_modified(void **state)
{
        struct conn c;
        char text[OUT_MAX];
        const char *dn = "uid=mod," PEOPLE;
        conn_admin(&c, NULL, NULL);
        expect_executed(exec_order(&c, "Added",
                                   "{\"uid\":\"mod\",\"cn\":\"M\",\"sn\":\"Old\","
                                   "\"description\":\"to be cleared\",\"mail\":\"a@x\"}",
                                   NULL),
                        dn, NULL);

        const char *changes = "{\"sn\":\"New\",\"description\":null,\"title\":null,"
                              "\"mail_add\":[\"b@x\",\"a@x\"],\"mail_remove\":[\"zz@x\"],"
                              "\"memberOf_add\":[\"" AGENTS "\"],"
                              "\"memberOf_remove\":[\"cn=nothere,ou=groups,dc=example,dc=com\"]}";
        const char *resource = "{\"uid\":\"mod\"}";
        expect_probe(probe_order(&c, "Modified", changes, resource), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_executed(exec_order(&c, "Modified", changes, resource), dn, "modified");
        expect_executed(exec_order(&c, "Modified", changes, resource), dn, "modified");
        expect_probe(probe_order(&c, "Modified", changes, resource), CA_BACKEND_PROBE_APPLIED);
        assert_int_equal(ldif_read(dn, "base", "(objectClass=*)", "*", text, sizeof(text)), 0);
        expect_in(text, "sn: [New]");
        expect_not_in(text, "description:");
        expect_in(text, "mail: [a@x]");
        expect_in(text, "mail: [b@x]");
        agents_members(text, sizeof(text));
        expect_in(text, "member: [uid=mod," PEOPLE "]");

        /* Leave the group twice, remove a value twice; a DN given in Resource. */
        const char *leave = "{\"mail_remove\":[\"a@x\"],\"memberOf_remove\":[\"" AGENTS "\"]}";
        const char *by_dn = "{\"dn\":\"uid=mod," PEOPLE "\"}";
        expect_executed(exec_order(&c, "Modified", leave, by_dn), dn, NULL);
        expect_executed(exec_order(&c, "Modified", leave, by_dn), dn, NULL);
        expect_probe(probe_order(&c, "Modified", leave, by_dn), CA_BACKEND_PROBE_APPLIED);
        expect_probe(probe_order(&c, "Modified", changes, resource), CA_BACKEND_PROBE_NOT_APPLIED);
        agents_members(text, sizeof(text));
        expect_not_in(text, "uid=mod,");
        assert_int_equal(ldif_read(dn, "base", "(objectClass=*)", "mail", text, sizeof(text)), 0);
        expect_not_in(text, "a@x");

        /* Missing entry, missing group. */
        expect_errored(exec_order(&c, "Modified", "{\"sn\":\"X\"}", "{\"uid\":\"ghost\"}"),
                       "uid=ghost," PEOPLE ": No such object (32)");
        expect_errored(exec_order(&c, "Modified",
                                  "{\"memberOf_add\":[\"cn=nogroup,ou=groups,dc=example,dc=com\"]}",
                                  resource),
                       "ldap_modify cn=nogroup,ou=groups,dc=example,dc=com: No such object (32)");
        /* A new RDN value is a rename (modrdn); and back. */
        expect_executed(exec_order(&c, "Modified", "{\"uid\":\"renamed\"}", resource),
                        "uid=renamed," PEOPLE, "renamed from uid=mod," PEOPLE);
        expect_executed(exec_order(&c, "Modified", "{\"uid\":\"mod\"}", "{\"uid\":\"renamed\"}"),
                        dn, "renamed from uid=renamed," PEOPLE);
        /* With the DN given, the RDN value in Changes goes to the server, which refuses a
         * new one and accepts the same one. */
        expect_errored(exec_order(&c, "Modified", "{\"uid\":\"renamed\"}", by_dn),
                       "ldap_modify uid=mod," PEOPLE ": Naming violation (64)");
        expect_executed(exec_order(&c, "Modified", "{\"uid\":\"mod\"}", by_dn), dn, "modified");
        /* The modify is tried first at the entry's DN: a refusal there is the server's,
         * in its words, with nothing of the order applied (the mail value stays out). */
        expect_errored(exec_order(&c, "Modified", "{\"sn\":null,\"mail_add\":[\"c@x\"]}", resource),
                       "ldap_modify uid=mod," PEOPLE ": Object class violation (65)");
        assert_int_equal(ldif_read(dn, "base", "(objectClass=*)", "*", text, sizeof(text)), 0);
        expect_in(text, "sn: [New]");
        expect_not_in(text, "c@x");
        conn_free(&c);
}

/* attributes renames Changes keys, rdn_change names the key holding the RDN value,
 * ignore drops keys that are not for the directory. */
static void test_mapping(void **state)
{
        struct conn c;
        char text[OUT_MAX];
        conn_admin(&c, NULL, NULL);
        const char *map[] = {"base_dn",
                             PEOPLE,
                             "rdn_attribute",
                             "uid",
                             "rdn_change",
                             "login",
                             "object_class",
                             "inetOrgPerson, organizationalPerson",
                             "attributes",
                             "login:uid, surname:sn, fullName:cn, emails:mail",
                             "ignore",
                             "internal Id, memberOf_remove",
                             "membership_attribute",
                             "groups",
                             NULL};
        const char *dn = "uid=mapped," PEOPLE;
        const char *changes = "{\"login\":\"mapped\",\"surname\":\"M\",\"fullName\":\"M M\","
                              "\"emails\":[\"m1@x\",\"m2@x\"],\"internal Id\":\"123\","
                              "\"memberOf_remove\":[\"not a dn\"],"
                              "\"groups_add\":[\"" AGENTS "\"]}";
        expect_executed(exec_map(&c, map, "Added", changes, NULL), dn, "1 group link");
        expect_executed(exec_map(&c, map, "Added", changes, NULL), dn, "already there");
        assert_int_equal(ldif_read(dn, "base", "(objectClass=*)", "*", text, sizeof(text)), 0);
        expect_in(text, "objectClass: [organizationalPerson]");
        expect_in(text, "sn: [M]");
        expect_in(text, "cn: [M M]");
        expect_in(text, "mail: [m2@x]");
        agents_members(text, sizeof(text));
        expect_in(text, "member: [uid=mapped," PEOPLE "]");
        expect_executed(exec_map(&c, map, "Modified", "{\"emails_remove\":[\"m1@x\"]}",
                                 "{\"login\":\"mapped\"}"),
                        dn, "modified");
        assert_int_equal(ldif_read(dn, "base", "(objectClass=*)", "mail", text, sizeof(text)), 0);
        expect_not_in(text, "m1@x");
        expect_executed(exec_map(&c, map, "Deleted", "{}", "{\"login\":\"mapped\"}"), dn,
                        "deleted");
        conn_free(&c);
}

static void test_deleted(void **state)
{
        struct conn c;
        char text[OUT_MAX];
        const char *dn = "uid=gone," PEOPLE;
        conn_admin(&c, NULL, NULL);
        expect_executed(
            exec_order(&c, "Added", "{\"uid\":\"gone\",\"cn\":\"G\",\"sn\":\"G\"}", NULL), dn,
            NULL);
        expect_probe(probe_order(&c, "Deleted", "{}", "{\"uid\":\"gone\"}"),
                     CA_BACKEND_PROBE_NOT_APPLIED);
        expect_executed(exec_order(&c, "Deleted", "{}", "{\"uid\":\"gone\"}"), dn, "deleted");
        assert_int_not_equal(ldif_read(dn, "base", "(objectClass=*)", "uid", text, sizeof(text)),
                             0);
        expect_executed(exec_order(&c, "Deleted", "{}", "{\"uid\":\"gone\"}"), dn,
                        "already absent");
        expect_probe(probe_order(&c, "Deleted", "{}", "{\"uid\":\"gone\"}"),
                     CA_BACKEND_PROBE_APPLIED);
        expect_probe(probe_order(&c, "Added", "{\"uid\":\"gone\",\"sn\":\"G\"}", NULL),
                     CA_BACKEND_PROBE_NOT_APPLIED);
        /* A non-leaf cannot go: the server says why. */
        const char *ou_map[] = {"base_dn", "dc=example,dc=com", "rdn_attribute",
                                "ou",      "object_class",      "organizationalUnit",
                                NULL};
        expect_errored(exec_map(&c, ou_map, "Deleted", "{}", "{\"ou\":\"people\"}"),
                       "ldap_delete ou=people,dc=example,dc=com: Operation not allowed on "
                       "non-leaf (66)");
        conn_free(&c);
}

static void test_rdn_escaping(void **state)
{
        struct conn c;
        char text[OUT_MAX];
        conn_admin(&c, NULL, NULL);
        /* Each value, the DN RFC 4514 gives for it written by hand, and a filter for it
         * escaped by hand (RFC 4515). */
        static const struct {
                const char *json, *raw, *dn, *filter;
        } cases[] = {
            {"#1,2+3\\\"4\\\\5<6>7;8=9", "#1,2+3\"4\\5<6>7;8=9",
             "uid=\\#1\\,2\\+3\\\"4\\\\5\\<6\\>7\\;8\\=9," PEOPLE, "(uid=#1,2+3\"4\\5c5<6>7;8=9)"},
            {" Zoë Ünal, trail ", " Zoë Ünal, trail ", "uid=\\ Zoë Ünal\\, trail\\ ," PEOPLE,
             "(uid=\\20Zo\\c3\\ab \\c3\\9cnal, trail\\20)"},
            {"star*(paren)", "star*(paren)", "uid=star*(paren)," PEOPLE,
             "(uid=star\\2a\\28paren\\29)"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char changes[1024];
                snprintf(changes, sizeof(changes),
                         "{\"uid\":\"%s\",\"cn\":\"%s\",\"sn\":\"S\",\"memberOf_add\":[\"" AGENTS
                         "\"]}",
                         cases[i].json, cases[i].json);
                struct outcome o = exec_order(&c, "Added", changes, NULL);
                expect_executed(o, NULL, "added");
                expect_executed(exec_order(&c, "Added", changes, NULL), o.r.resource_identifier,
                                "already there");
                expect_probe(probe_order(&c, "Added", changes, NULL), CA_BACKEND_PROBE_APPLIED);

                /* The server parses the hand-written DN to the same entry, whose uid is the
                 * value exactly, and finds it with the hand-escaped filter. */
                char want[1024];
                assert_int_equal(
                    ldif_read(cases[i].dn, "base", "(objectClass=*)", "uid", text, sizeof(text)),
                    0);
                snprintf(want, sizeof(want), "uid: [%s]\n", cases[i].raw);
                expect_in(text, want);
                assert_int_equal(
                    ldif_read(PEOPLE, "one", cases[i].filter, "cn", text, sizeof(text)), 0);
                snprintf(want, sizeof(want), "cn: [%s]\n", cases[i].raw);
                expect_in(text, want);
                snprintf(want, sizeof(want), "dn: [%s]\n", o.r.resource_identifier);
                expect_in(text, want);
                /* The membership names the same entry (the member value is the DN). */
                snprintf(want, sizeof(want), "(member=%s)", cases[i].dn);
                char esc[1024];
                size_t k = 0;
                for (const char *p = want; *p && k + 4 < sizeof(esc); p++) {
                        if (*p == '\\' ||
                            ((*p == '(' || *p == ')' || *p == '*') && p != want && p[1] != '\0')) {
                                k += (size_t)snprintf(esc + k, sizeof(esc) - k, "\\%02x",
                                                      (unsigned char)*p);
                        } else {
                                esc[k++] = *p;
                        }
                }
                esc[k] = '\0';
                assert_int_equal(
                    ldif_read("ou=groups,dc=example,dc=com", "one", esc, "cn", text, sizeof(text)),
                    0);
                expect_in(text, "cn: [agents]");

                snprintf(changes, sizeof(changes), "{}");
                char resource[1024];
                snprintf(resource, sizeof(resource), "{\"uid\":\"%s\"}", cases[i].json);
                expect_executed(exec_order(&c, "Deleted", changes, resource),
                                o.r.resource_identifier, "deleted");
        }
        conn_free(&c);
}

static void test_filter_escaping(void **state)
{
        struct conn c;
        conn_admin(&c, NULL, NULL);
        const char *dn = "uid=filt," PEOPLE;
        expect_executed(exec_order(&c, "Added",
                                   "{\"uid\":\"filt\",\"cn\":\"F\",\"sn\":\"F\","
                                   "\"description\":\"abc)(x=*\"}",
                                   NULL),
                        dn, NULL);
        /* A '*' must not match as a wildcard, a ')' must not end the filter. */
        expect_errored(exec_order(&c, "Added",
                                  "{\"uid\":\"filt\",\"cn\":\"F\",\"sn\":\"F\","
                                  "\"description\":\"a*\"}",
                                  NULL),
                       "different values: description");
        expect_probe(
            probe_order(&c, "Added",
                        "{\"uid\":\"filt\",\"cn\":\"F\",\"sn\":\"F\",\"description\":\"*\"}", NULL),
            CA_BACKEND_PROBE_NOT_APPLIED);
        expect_probe(
            probe_order(&c, "Modified", "{\"description\":\"abc)(x=*\"}", "{\"uid\":\"filt\"}"),
            CA_BACKEND_PROBE_APPLIED);
        expect_probe(
            probe_order(&c, "Modified", "{\"description_remove\":[\"*\"]}", "{\"uid\":\"filt\"}"),
            CA_BACKEND_PROBE_APPLIED);
        expect_executed(exec_order(&c, "Added",
                                   "{\"uid\":\"filt\",\"cn\":\"F\",\"sn\":\"F\","
                                   "\"description\":\"abc)(x=*\"}",
                                   NULL),
                        dn, "already there");
        conn_free(&c);
}

static void test_tls(void **state)
{
        struct conn c;
        struct ca_backend_error err;
        const char *ldaps[] = {"uri",
                               T.ldaps_uri,
                               "ca_file",
                               T.ca,
                               "bind_dn",
                               "cn=admin,dc=example,dc=com",
                               "bind_password_file",
                               T.pw_file,
                               NULL};
        assert_int_equal(conn_new(&c, ldaps, &err), 0);
        assert_int_equal(conn_open(&c, &err), 0);
        assert_int_equal(T.ops->check(c.session, &err), 0);
        expect_executed(exec_order(&c, "Deleted", "{}", "{\"uid\":\"nobody\"}"), NULL,
                        "already absent");
        conn_free(&c);

        const char *wrong[] = {"uri",
                               T.ldaps_uri,
                               "ca_file",
                               T.wrong_ca,
                               "bind_dn",
                               "cn=admin,dc=example,dc=com",
                               "bind_password_file",
                               T.pw_file,
                               NULL};
        assert_int_equal(conn_new(&c, wrong, &err), 0);
        assert_int_equal(conn_open(&c, &err), CA_BACKEND_EUNAVAILABLE);
        expect_in(err.message, T.ldaps_uri);
        expect_in(err.message, "TLS");
        expect_in(err.message, "certificate");
        print_message("ldaps with a wrong CA: %s\n", err.message);
        conn_free(&c);

        /* StartTLS: the default on ldap://. */
        const char *starttls_wrong[] = {"uri", T.uri, "ca_file", T.wrong_ca, NULL};
        assert_int_equal(conn_new(&c, starttls_wrong, &err), 0);
        assert_int_equal(conn_open(&c, &err), CA_BACKEND_EUNAVAILABLE);
        expect_in(err.message, "StartTLS on");
        expect_in(err.message, "certificate");
        conn_free(&c);
        const char *starttls[] = {"uri", T.uri, "ca_file", T.ca, NULL};
        assert_int_equal(conn_new(&c, starttls, &err), 0);
        assert_int_equal(conn_open(&c, &err), 0);
        assert_int_equal(T.ops->check(c.session, &err), 0);
        conn_free(&c);

        /* The right CA, but a host name the certificate does not carry (it names
         * 127.0.0.1 only): refused, so the name is checked, not only the signature. */
        char byname[160];
        snprintf(byname, sizeof(byname), "ldaps://localhost:%s", strrchr(T.ldaps_uri, ':') + 1);
        const char *mismatch[] = {"uri", byname, "ca_file", T.ca, NULL};
        assert_int_equal(conn_new(&c, mismatch, &err), 0);
        assert_int_equal(conn_open(&c, &err), CA_BACKEND_EUNAVAILABLE);
        expect_in(err.message, byname);
        expect_in(err.message, "names the host in uri");
        conn_free(&c);

        /* Plain LDAP only when asked for. */
        const char *plain[] = {"uri", T.uri, "starttls", "no", "allow_plain", "yes", NULL};
        assert_int_equal(conn_new(&c, plain, &err), 0);
        assert_int_equal(conn_open(&c, &err), 0);
        assert_int_equal(T.ops->check(c.session, &err), 0);
        conn_free(&c);
}

static void test_wrong_password(void **state)
{
        struct conn c;
        struct ca_backend_error err;
        const char *kv[] = {"uri",
                            T.uri,
                            "ca_file",
                            T.ca,
                            "bind_dn",
                            "cn=admin,dc=example,dc=com",
                            "bind_password_file",
                            T.wrong_pw_file,
                            NULL};
        assert_int_equal(conn_new(&c, kv, &err), 0);
        assert_int_equal(conn_open(&c, &err), CA_BACKEND_EUNAVAILABLE);
        expect_in(err.message, "bind as cn=admin,dc=example,dc=com");
        expect_in(err.message, "Invalid credentials (49)");
        expect_not_in(err.message, WRONG_PASSWORD);
        conn_free(&c);

        /* A password file others can read is refused at start, naming the key. */
        char loose[600];
        snprintf(loose, sizeof(loose), "%s/loose.pw", T.dir);
        write_file(loose, WRONG_PASSWORD);
        assert_int_equal(chmod(loose, 0644), 0);
        const char *kv2[] = {
            "uri", T.uri, "bind_dn", "cn=admin,dc=example,dc=com", "bind_password_file",
            loose, NULL};
        assert_int_equal(conn_new(&c, kv2, &err), CA_BACKEND_EINVALID);
        expect_in(err.message, "bind_password_file");
        expect_not_in(err.message, WRONG_PASSWORD);
        conn_free(&c);
}

static void test_permissive_modify(void **state)
{
        struct conn c;
        char text[OUT_MAX];
        conn_admin(&c, "permissive_modify", "yes");
        const char *dn = "uid=perm," PEOPLE;
        const char *add =
            "{\"uid\":\"perm\",\"cn\":\"P\",\"sn\":\"P\",\"memberOf_add\":[\"" AGENTS "\"]}";
        expect_executed(exec_order(&c, "Added", add, NULL), dn, NULL);
        const char *again = "{\"memberOf_add\":[\"" AGENTS "\"],\"mail_add\":[\"p@x\"]}";
        expect_executed(exec_order(&c, "Modified", again, "{\"uid\":\"perm\"}"), dn, NULL);
        expect_executed(exec_order(&c, "Modified", again, "{\"uid\":\"perm\"}"), dn, NULL);
        const char *leave = "{\"memberOf_remove\":[\"" AGENTS "\"],\"mail_remove\":[\"p@x\"]}";
        expect_executed(exec_order(&c, "Modified", leave, "{\"uid\":\"perm\"}"), dn, NULL);
        expect_executed(exec_order(&c, "Modified", leave, "{\"uid\":\"perm\"}"), dn, NULL);
        agents_members(text, sizeof(text));
        expect_not_in(text, "uid=perm,");
        expect_in(text, "member: [cn=admin,dc=example,dc=com]");
        conn_free(&c);
}

static void test_describe(void **state)
{
        struct conn c;
        conn_admin(&c, NULL, NULL);
        struct ca_settings m = {0};
        settings_make(&m, people_map);
        struct ca_order *o =
            ldap_order("Added",
                       "{\"uid\":\"desc\",\"sn\":\"D\",\"userPassword\":\"hunter2-secret\","
                       "\"memberOf_add\":[\"" AGENTS "\"]}",
                       NULL);
        struct ca_backend_result r;
        struct ca_backend_error err;
        memset(&r, 0, sizeof(r));
        memset(&err, 0, sizeof(err));
        assert_int_equal(
            T.ops->describe(c.session, backend_order(o), backend_settings(&m), &r, &err), 0);
        expect_in(r.message, "dn: uid=desc," PEOPLE "\nchangetype: add\n");
        expect_in(r.message, "objectClass: inetOrgPerson\n");
        expect_in(r.message, "sn: D\n");
        expect_in(r.message, "userPassword: (value hidden)");
        expect_not_in(r.message, "hunter2");
        expect_in(r.message, "dn: " AGENTS "\nchangetype: modify\nadd: member\nmember: uid=desc,");
        order_free(o);

        o = ldap_order("Modified", "{\"sn\":\"E\",\"title\":null,\"mail_remove\":[\"m@x\"]}",
                       "{\"uid\":\"desc\"}");
        memset(&r, 0, sizeof(r));
        assert_int_equal(
            T.ops->describe(c.session, backend_order(o), backend_settings(&m), &r, &err), 0);
        expect_in(r.message, "changetype: modify\nreplace: sn\nsn: E\n-\nreplace: title\n-\n"
                             "delete: mail\nmail: m@x\n-\n");
        order_free(o);
        o = ldap_order("Deleted", "{}", "{\"uid\":\"desc\"}");
        memset(&r, 0, sizeof(r));
        assert_int_equal(
            T.ops->describe(c.session, backend_order(o), backend_settings(&m), &r, &err), 0);
        assert_string_equal(r.message, "dn: uid=desc," PEOPLE "\nchangetype: delete\n");
        order_free(o);
        settings_clear(&m);

        /* Nothing was written. */
        char text[OUT_MAX];
        assert_int_not_equal(
            ldif_read("uid=desc," PEOPLE, "base", "(objectClass=*)", "uid", text, sizeof(text)), 0);
        conn_free(&c);
}

/* A server that stops answering (SIGSTOP) fails the order within the timeouts; one that
 * is stopped makes execute say EUNAVAILABLE; once it is back, the same session works. */
/* Can dn bind with password? (a base search of the root DSE over LDAPS as that entry) */
static int can_bind(const char *dn, const char *password)
{
        char out[OUT_MAX], pwf[600], cacert[600];
        snprintf(pwf, sizeof(pwf), "%s/user.pw", T.dir);
        write_file(pwf, password);
        snprintf(cacert, sizeof(cacert), "LDAPTLS_CACERT=%s", T.ca);
        char *argv[] = {"env", cacert,      "ldapsearch", "-x",       "-o", "nettimeout=5",
                        "-H",  T.ldaps_uri, "-D",         (char *)dn, "-y", pwf,
                        "-b",  "",          "-s",         "base",     "dn", NULL};
        int rc = run(argv, out, sizeof(out));
        unlink(pwf);
        if (rc != 0 && rc != 49)
                fail_msg("bind as %s failed (%d): %s", dn, rc, out);
        return rc == 0;
}

/* password_change: the Password Modify extended operation (RFC 3062), so that slapd
 * hashes the password itself; never over plain LDAP. */
static void test_password_modify(void **state)
{
        (void)state;
        static const char *const pw_map[] = {"connector",
                                             "ldap",
                                             "base_dn",
                                             PEOPLE,
                                             "rdn_attribute",
                                             "uid",
                                             "object_class",
                                             "inetOrgPerson",
                                             "password_change",
                                             "password",
                                             "enabled_change",
                                             "enabled",
                                             NULL};
        const char *pw = "Ol-Pass-4711";
        const char *dn = "uid=pwuser," PEOPLE;
        char text[OUT_MAX];
        struct conn c;
        conn_admin(&c, NULL, NULL);
        struct outcome o = exec_map(
            &c, pw_map, "Added",
            "{\"uid\":\"pwuser\",\"cn\":\"P\",\"sn\":\"P\",\"password\":\"Ol-Pass-4711\"}", NULL);
        expect_executed(o, dn, "added, password set");
        expect_not_in(o.r.message, pw);
        assert_true(can_bind(dn, pw));
        assert_false(can_bind(dn, "not-it"));
        assert_int_equal(
            ldif_read(dn, "base", "(objectClass=*)", "userPassword", text, sizeof(text)), 0);
        expect_in(text, "userPassword: [{SSHA}");
        expect_not_in(text, pw);
        /* Again (idempotent), then a new one. */
        expect_executed(
            exec_map(&c, pw_map, "Added",
                     "{\"uid\":\"pwuser\",\"cn\":\"P\",\"sn\":\"P\",\"password\":\"Ol-Pass-4711\"}",
                     NULL),
            dn, "already there with the same values, password set");
        expect_executed(exec_map(&c, pw_map, "Modified", "{\"password\":\"Second-0815\"}",
                                 "{\"uid\":\"pwuser\"}"),
                        dn, "password set");
        assert_true(can_bind(dn, "Second-0815"));
        assert_false(can_bind(dn, pw));
        conn_free(&c);

        /* Over plain LDAP: refused before anything is sent. */
        struct ca_backend_error err;
        const char *kv[] = {"uri",
                            T.uri,
                            "starttls",
                            "no",
                            "allow_plain",
                            "yes",
                            "bind_dn",
                            "cn=admin,dc=example,dc=com",
                            "bind_password_file",
                            T.pw_file,
                            NULL};
        assert_int_equal(conn_new(&c, kv, &err), 0);
        assert_int_equal(conn_open(&c, &err), 0);
        expect_errored(
            exec_map(
                &c, pw_map, "Added",
                "{\"uid\":\"plainpw\",\"cn\":\"P\",\"sn\":\"P\",\"password\":\"Ol-Pass-4711\"}",
                NULL),
            "refused to send a password over plain LDAP");
        assert_int_not_equal(
            ldif_read("uid=plainpw," PEOPLE, "base", "(objectClass=*)", "uid", text, sizeof(text)),
            0);
        conn_free(&c);
}

/* The account state on OpenLDAP by default: ppolicy's pwdAccountLockedTime, 000001010000Z
 * (locked until unlocked) for disabled, absent for enabled; the bind itself proves it. A
 * disabled account is created locked and locked again after its password is set (ppolicy
 * unlocks an account whose password changes). */
static void test_account_state_ppolicy(void **state)
{
        (void)state;
        static const char *const st_map[] = {"connector",
                                             "ldap",
                                             "base_dn",
                                             PEOPLE,
                                             "rdn_attribute",
                                             "uid",
                                             "object_class",
                                             "inetOrgPerson",
                                             "password_change",
                                             "password",
                                             "enabled_change",
                                             "enabled",
                                             NULL};
        const char *dn = "uid=locked," PEOPLE;
        const char *res = "{\"uid\":\"locked\"}";
        const char *pw = "Lock-Pass-4711";
        const char *added = "{\"uid\":\"locked\",\"cn\":\"L\",\"sn\":\"L\",\"enabled\":\"false\","
                            "\"password\":\"Lock-Pass-4711\"}";
        char text[OUT_MAX];
        struct conn c;
        conn_agent(&c);
        struct outcome o = exec_map(&c, st_map, "Added", added, NULL);
        expect_executed(o, dn, "added, password set, disabled");
        expect_not_in(o.r.message, pw);
        assert_int_equal(
            ldif_read(dn, "base", "(objectClass=*)", "pwdAccountLockedTime", text, sizeof(text)),
            0);
        expect_in(text, "pwdAccountLockedTime: [000001010000Z]");
        assert_false(can_bind(dn, pw)); /* the right password, refused: locked */
        expect_executed(exec_map(&c, st_map, "Added", added, NULL), dn,
                        "already there with the same values, password set, disabled");

        struct ca_settings m = {0};
        settings_make(&m, st_map);
        struct ca_order *po = ldap_order("Modified", "{\"enabled\":\"false\"}", res);
        struct outcome pr = {0};
        pr.rc = T.ops->probe(c.session, backend_order(po), backend_settings(&m), &pr.answer, &pr.r,
                             &pr.err);
        expect_probe(pr, CA_BACKEND_PROBE_APPLIED);
        order_free(po);

        expect_executed(exec_map(&c, st_map, "Modified", "{\"enabled\":\"true\"}", res), dn,
                        "modified, enabled");
        assert_int_equal(
            ldif_read(dn, "base", "(objectClass=*)", "pwdAccountLockedTime", text, sizeof(text)),
            0);
        expect_not_in(text, "pwdAccountLockedTime");
        assert_true(can_bind(dn, pw));
        expect_executed(exec_map(&c, st_map, "Modified", "{\"enabled\":\"true\"}", res), dn,
                        "modified, already enabled");
        po = ldap_order("Modified", "{\"enabled\":\"false\"}", res);
        memset(&pr, 0, sizeof(pr));
        pr.rc = T.ops->probe(c.session, backend_order(po), backend_settings(&m), &pr.answer, &pr.r,
                             &pr.err);
        expect_probe(pr, CA_BACKEND_PROBE_NOT_APPLIED);
        order_free(po);

        /* A new password with a disable; then one alone, which ppolicy would take as an
         * unlock: the account stays disabled. */
        expect_executed(exec_map(&c, st_map, "Modified",
                                 "{\"enabled\":\"false\",\"password\":\"Next-Pass-0815\"}", res),
                        dn, "modified, password set, disabled");
        assert_false(can_bind(dn, "Next-Pass-0815"));
        expect_executed(exec_map(&c, st_map, "Modified", "{\"password\":\"Third-Pass-42\"}", res),
                        dn, "modified, password set, kept disabled");
        assert_false(can_bind(dn, "Third-Pass-42"));
        expect_executed(exec_map(&c, st_map, "Modified", "{\"enabled\":\"true\"}", res), dn,
                        "modified, enabled");
        assert_true(can_bind(dn, "Third-Pass-42"));
        assert_false(can_bind(dn, pw));
        expect_executed(exec_map(&c, st_map, "Modified", "{\"password\":\"Next-Pass-0815\"}", res),
                        dn, "modified, password set");
        assert_true(can_bind(dn, "Next-Pass-0815"));

        /* describe names where the state goes, and never the password. */
        po = ldap_order("Modified", "{\"enabled\":\"false\",\"password\":\"Next-Pass-0815\"}", res);
        struct ca_backend_result dr = {0};
        struct ca_backend_error derr = {0};
        assert_int_equal(
            T.ops->describe(c.session, backend_order(po), backend_settings(&m), &dr, &derr), 0);
        expect_in(dr.message, "# account: disabled (userAccountControl on Active Directory, "
                              "pwdAccountLockedTime on OpenLDAP)");
        expect_not_in(dr.message, "Next-Pass-0815");
        order_free(po);
        settings_clear(&m);
        conn_free(&c);

        /* A directory that is neither: nothing to write unless the mapping names it. */
        conn_admin(&c, "directory", "generic");
        expect_errored(exec_map(&c, st_map, "Modified", "{\"enabled\":\"false\"}", res),
                       "neither Active Directory nor OpenLDAP; name the attribute");
        assert_true(can_bind(dn, "Next-Pass-0815"));
        conn_free(&c);
}

/* A configured attribute and values (enabled_attribute, enabled_value, disabled_value),
 * and one whose enabled state is its absence; the mapping's mistakes said at check. */
static void test_account_state_attribute(void **state)
{
        (void)state;
        static const char *const et_map[] = {"connector",
                                             "ldap",
                                             "base_dn",
                                             PEOPLE,
                                             "rdn_attribute",
                                             "uid",
                                             "object_class",
                                             "inetOrgPerson",
                                             "enabled_change",
                                             "active",
                                             "enabled_attribute",
                                             "employeeType",
                                             "enabled_value",
                                             "active",
                                             "disabled_value",
                                             "inactive",
                                             NULL};
        static const char *const desc_map[] = {"connector",
                                               "ldap",
                                               "base_dn",
                                               PEOPLE,
                                               "rdn_attribute",
                                               "uid",
                                               "object_class",
                                               "inetOrgPerson",
                                               "enabled_change",
                                               "active",
                                               "enabled_attribute",
                                               "description",
                                               "disabled_value",
                                               "DISABLED",
                                               NULL};
        const char *dn = "uid=stateful," PEOPLE;
        const char *res = "{\"uid\":\"stateful\"}";
        char text[OUT_MAX];
        struct conn c;
        conn_agent(&c);
        expect_executed(exec_map(&c, et_map, "Added",
                                 "{\"uid\":\"stateful\",\"cn\":\"S\",\"sn\":\"S\",\"active\":"
                                 "\"false\"}",
                                 NULL),
                        dn, "added, disabled");
        assert_int_equal(
            ldif_read(dn, "base", "(objectClass=*)", "employeeType", text, sizeof(text)), 0);
        expect_in(text, "employeeType: [inactive]");
        assert_int_equal(
            ldif_read(dn, "base", "(objectClass=*)", "pwdAccountLockedTime", text, sizeof(text)),
            0);
        expect_not_in(text, "pwdAccountLockedTime");
        expect_executed(exec_map(&c, et_map, "Modified", "{\"active\":\"false\"}", res), dn,
                        "modified, already disabled");
        expect_executed(exec_map(&c, et_map, "Modified", "{\"active\":\"true\"}", res), dn,
                        "modified, enabled");
        assert_int_equal(
            ldif_read(dn, "base", "(objectClass=*)", "employeeType", text, sizeof(text)), 0);
        expect_in(text, "employeeType: [active]");
        expect_not_in(text, "inactive");
        expect_executed(exec_map(&c, et_map, "Modified", "{\"active\":\"1\"}", res), dn,
                        "modified, already enabled");
        expect_errored(exec_map(&c, et_map, "Modified", "{\"active\":\"maybe\"}", res),
                       "expected \"true\" or \"false\"");

        /* Enabled is the value's absence. */
        expect_executed(exec_map(&c, desc_map, "Modified", "{\"active\":\"false\"}", res), dn,
                        "modified, disabled");
        assert_int_equal(
            ldif_read(dn, "base", "(objectClass=*)", "description", text, sizeof(text)), 0);
        expect_in(text, "description: [DISABLED]");
        expect_executed(exec_map(&c, desc_map, "Modified", "{\"active\":\"true\"}", res), dn,
                        "modified, enabled");
        assert_int_equal(
            ldif_read(dn, "base", "(objectClass=*)", "description", text, sizeof(text)), 0);
        expect_not_in(text, "description");
        expect_executed(exec_map(&c, desc_map, "Modified", "{\"active\":\"true\"}", res), dn,
                        "modified, already enabled");

        /* A value the schema refuses: Errored, in words, nothing else changed. */
        static const char *const bad_map[] = {"connector",
                                              "ldap",
                                              "base_dn",
                                              PEOPLE,
                                              "rdn_attribute",
                                              "uid",
                                              "object_class",
                                              "inetOrgPerson",
                                              "enabled_change",
                                              "active",
                                              "enabled_attribute",
                                              "noSuchStateAttribute",
                                              "disabled_value",
                                              "x",
                                              NULL};
        expect_errored(exec_map(&c, bad_map, "Modified", "{\"active\":\"false\"}", res),
                       "(disabling the account through noSuchStateAttribute)");

        /* The mapping's mistakes, at check. */
        struct ca_backend_error err;
        struct ca_settings m = {0};
        const char *no_dv[] = {"base_dn",
                               PEOPLE,
                               "rdn_attribute",
                               "uid",
                               "object_class",
                               "inetOrgPerson",
                               "enabled_change",
                               "active",
                               "enabled_attribute",
                               "employeeType",
                               NULL};
        mapping_refused(c.inst, no_dv,
                        "disabled_value: required with enabled_attribute = employeeType");
        const char *no_ec[] = {"base_dn",
                               PEOPLE,
                               "rdn_attribute",
                               "uid",
                               "object_class",
                               "inetOrgPerson",
                               "enabled_attribute",
                               "employeeType",
                               "disabled_value",
                               "x",
                               NULL};
        mapping_refused(c.inst, no_ec, "enabled_attribute: only with enabled_change");
        const char *no_ea[] = {"base_dn",
                               PEOPLE,
                               "rdn_attribute",
                               "uid",
                               "object_class",
                               "inetOrgPerson",
                               "enabled_change",
                               "active",
                               "enabled_value",
                               "on",
                               NULL};
        mapping_refused(c.inst, no_ea, "enabled_value: only with enabled_attribute");
        const char *uac_vals[] = {"base_dn",
                                  PEOPLE,
                                  "rdn_attribute",
                                  "uid",
                                  "object_class",
                                  "inetOrgPerson",
                                  "enabled_change",
                                  "active",
                                  "enabled_attribute",
                                  "userAccountControl",
                                  "disabled_value",
                                  "514",
                                  NULL};
        mapping_refused(c.inst, uac_vals, "not with enabled_attribute = userAccountControl");
        const char *same[] = {"base_dn",
                              PEOPLE,
                              "rdn_attribute",
                              "uid",
                              "object_class",
                              "inetOrgPerson",
                              "enabled_change",
                              "active",
                              "enabled_attribute",
                              "employeeType",
                              "enabled_value",
                              "x",
                              "disabled_value",
                              "x",
                              NULL};
        mapping_refused(c.inst, same, "enabled_value = x: the same as disabled_value");
        settings_make(&m, et_map);
        memset(&err, 0, sizeof(err));
        assert_int_equal(T.ops->mapping_check(c.inst, backend_settings(&m), &err), 0);
        settings_clear(&m);
        conn_free(&c);
}

/* Rename and move keep the entry (its entryUUID); an order written before them, with the
 * entryUUID in Resource, still finds it; one without finds it where the order puts it. */
static void test_rename_move_entry_uuid(void **state)
{
        (void)state;
        static const char *const mv_map[] = {
            "connector", "ldap",         "base_dn",       PEOPLE,        "rdn_attribute",
            "uid",       "object_class", "inetOrgPerson", "move_change", "parent",
            NULL};
        char text[OUT_MAX], uuid[128], after[128];
        struct conn c;
        conn_admin(&c, NULL, NULL);
        expect_executed(
            exec_map(&c, mv_map, "Added", "{\"uid\":\"ren1\",\"cn\":\"R\",\"sn\":\"R\"}", NULL),
            "uid=ren1," PEOPLE, "added");
        assert_int_equal(ldif_read("uid=ren1," PEOPLE, "base", "(objectClass=*)", "entryUUID", text,
                                   sizeof(text)),
                         0);
        const char *u = strstr(text, "entryUUID: [");
        assert_non_null(u);
        snprintf(uuid, sizeof(uuid), "%.36s", u + strlen("entryUUID: ["));
        expect_executed(
            exec_map(&c, mv_map, "Modified", "{\"uid\":\"ren2\"}", "{\"uid\":\"ren1\"}"),
            "uid=ren2," PEOPLE, "renamed from uid=ren1," PEOPLE);
        /* Again, still naming ren1: already done. */
        expect_executed(
            exec_map(&c, mv_map, "Modified", "{\"uid\":\"ren2\"}", "{\"uid\":\"ren1\"}"),
            "uid=ren2," PEOPLE, "modified");
        char res[256];
        snprintf(res, sizeof(res), "{\"uid\":\"ren1\",\"entryUUID\":\"%s\"}", uuid);
        expect_executed(exec_map(&c, mv_map, "Modified", "{\"sn\":\"Anchored\"}", res),
                        "uid=ren2," PEOPLE, "modified");
        assert_int_equal(
            ldif_read("uid=ren2," PEOPLE, "base", "(objectClass=*)", "sn", text, sizeof(text)), 0);
        expect_in(text, "sn: [Anchored]");
        snprintf(after, sizeof(after), "entryUUID: [%s]", uuid);
        assert_int_equal(ldif_read("uid=ren2," PEOPLE, "base", "(objectClass=*)", "entryUUID", text,
                                   sizeof(text)),
                         0);
        expect_in(text, after);
        /* A move under ou=groups, by the anchor. */
        const char *moved = "uid=ren2,ou=groups,dc=example,dc=com";
        expect_executed(
            exec_map(&c, mv_map, "Modified", "{\"parent\":\"ou=groups,dc=example,dc=com\"}", res),
            moved, "renamed from uid=ren2," PEOPLE);
        assert_int_equal(
            ldif_read(moved, "base", "(objectClass=*)", "entryUUID", text, sizeof(text)), 0);
        expect_in(text, after);
        expect_executed(
            exec_map(&c, mv_map, "Modified", "{\"parent\":\"ou=groups,dc=example,dc=com\"}", res),
            moved, "modified");
        expect_executed(exec_map(&c, mv_map, "Deleted", "{}", res), moved, "deleted");
        assert_int_not_equal(ldif_read(moved, "base", "(objectClass=*)", "uid", text, sizeof(text)),
                             0);
        conn_free(&c);
}

/* Applies LDIF with ldapmodify as the admin (entries with "changetype: add" are added). */
static void ldif_apply(const char *ldif)
{
        char out[OUT_MAX], path[600];
        snprintf(path, sizeof(path), "%s/change.ldif", T.dir);
        write_file(path, ldif);
        char *argv[] = {"ldapmodify", "-x",      "-o", "nettimeout=5",
                        "-H",         T.uri,     "-D", "cn=admin,dc=example,dc=com",
                        "-y",         T.pw_file, "-f", path,
                        NULL};
        int rc = run(argv, out, sizeof(out));
        unlink(path);
        if (rc != 0)
                fail_msg("ldapmodify failed (%d): %s", rc, out);
}

/* Does any group list dn? (ldapsearch: more than slapd's size limit of 500 shows too) */
static int listed_in_groups(const char *dn)
{
        char filter[512], text[OUT_MAX];
        snprintf(filter, sizeof(filter), "(member=%s)", dn);
        ldif_read("ou=groups,dc=example,dc=com", "one", filter, "dn", text, sizeof(text));
        return strstr(text, "dn: [") != NULL;
}

/* How many entries the service account gets from one search of ou=groups for filter
 * without the paged-results control; *rc is ldapsearch's exit code (4: size limit). */
static int agent_plain_search(const char *filter, int *rc)
{
        char out[OUT_MAX];
        char *argv[] = {"ldapsearch",
                        "-x",
                        "-LLL",
                        "-o",
                        "nettimeout=5",
                        "-H",
                        T.uri,
                        "-D",
                        T.agent_dn,
                        "-y",
                        T.agent_pw_file,
                        "-b",
                        "ou=groups,dc=example,dc=com",
                        "-s",
                        "one",
                        (char *)filter,
                        "1.1",
                        NULL};
        *rc = run(argv, out, sizeof(out));
        int n = 0;
        for (const char *p = out; (p = strstr(p, "dn: ")); p += 4)
                n++;
        return n;
}

/* Deleted takes the entry out of every group that lists it, read page by page: the
 * service account gets at most AGENT_SIZELIMIT (600) entries from one search, so only the
 * paged-results control finds all 1,201 groups (three pages of 500; the count in the
 * message proves every page was read). Again after a crash between the delete and the
 * unlinking: the probe sees the groups still listing it. */
static void test_deleted_unlinks_groups(void **state)
{
        (void)state;
        enum { GROUPS = 1200 };
        const char *dn = "uid=leaver," PEOPLE;
        size_t cap = (size_t)GROUPS * 200;
        char *ldif = malloc(cap);
        assert_non_null(ldif);
        size_t len = 0;
        for (int i = 0; i < GROUPS; i++)
                len += (size_t)snprintf(ldif + len, cap - len,
                                        "dn: cn=g%04d,ou=groups,dc=example,dc=com\n"
                                        "changetype: add\nobjectClass: groupOfNames\n"
                                        "member: cn=admin,dc=example,dc=com\nmember: %s\n\n",
                                        i, dn);
        ldif_apply(ldif);
        free(ldif);
        /* The limit holds: a search without paging stops at it. */
        int src = 0;
        assert_true(GROUPS > T.agent_sizelimit);
        assert_int_equal(agent_plain_search("(member="
                                            "uid=leaver," PEOPLE ")",
                                            &src),
                         T.agent_sizelimit);
        assert_int_equal(src, 4); /* sizeLimitExceeded */
        struct conn c;
        conn_agent(&c);
        expect_executed(exec_order(&c, "Added",
                                   "{\"uid\":\"leaver\",\"cn\":\"L\",\"sn\":\"L\",\"memberOf_add\":"
                                   "[\"" AGENTS "\"]}",
                                   NULL),
                        dn, "added");
        const char *res = "{\"uid\":\"leaver\"}";
        assert_true(listed_in_groups(dn));
        expect_probe(probe_order(&c, "Deleted", "{}", res), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_executed(exec_order(&c, "Deleted", "{}", res), dn,
                        "deleted, removed from 1201 groups");
        assert_false(listed_in_groups(dn));
        expect_probe(probe_order(&c, "Deleted", "{}", res), CA_BACKEND_PROBE_APPLIED);

        /* A crash after the delete, before the unlinking: a group still lists it. */
        ldif_apply("dn: " AGENTS "\nchangetype: modify\nadd: member\nmember: uid=leaver," PEOPLE
                   "\n");
        assert_true(listed_in_groups(dn));
        expect_probe(probe_order(&c, "Deleted", "{}", res), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_executed(exec_order(&c, "Deleted", "{}", res), dn,
                        "already absent, removed from 1 group");
        assert_false(listed_in_groups(dn));
        expect_probe(probe_order(&c, "Deleted", "{}", res), CA_BACKEND_PROBE_APPLIED);
        conn_free(&c);
}

static void test_server_down_and_back(void **state)
{
        struct conn c;
        struct ca_backend_error err;
        const char *kv[] = {"uri",
                            T.uri,
                            "ca_file",
                            T.ca,
                            "bind_dn",
                            "cn=admin,dc=example,dc=com",
                            "bind_password_file",
                            T.pw_file,
                            "order_timeout",
                            "1s",
                            "network_timeout",
                            "1s",
                            NULL};
        assert_int_equal(conn_new(&c, kv, &err), 0);
        assert_int_equal(conn_open(&c, &err), 0);
        expect_executed(
            exec_order(&c, "Added", "{\"uid\":\"hang\",\"cn\":\"H\",\"sn\":\"H\"}", NULL), NULL,
            NULL);

        /* Hung: a write was sent, so the order is in doubt; bounded by the timeouts. */
        assert_int_equal(kill(T.pid, SIGSTOP), 0);
        time_t t0 = time(NULL);
        struct outcome o = exec_order(&c, "Deleted", "{}", "{\"uid\":\"hang\"}");
        time_t took = time(NULL) - t0;
        assert_int_equal(kill(T.pid, SIGCONT), 0);
        if (o.rc != CA_BACKEND_EINDOUBT)
                fail_msg("hung server: expected EINDOUBT, got %d: %s", o.rc, o.err.message);
        expect_in(o.err.message, "ldap_delete uid=hang," PEOPLE);
        expect_in(o.err.message, "may or may not");
        assert_true(took <= 5);
        /* A new connection to a hung server fails within the timeouts too. */
        assert_int_equal(kill(T.pid, SIGSTOP), 0);
        t0 = time(NULL);
        memset(&err, 0, sizeof(err));
        int crc = T.ops->check(c.session, &err);
        took = time(NULL) - t0;
        assert_int_equal(kill(T.pid, SIGCONT), 0);
        if (crc != CA_BACKEND_EUNAVAILABLE)
                fail_msg("check on a hung server: expected EUNAVAILABLE, got %d: %s", crc,
                         err.message);
        assert_true(took <= 5);
        /* Settled by probe (the server got the delete before it froze, or not). */
        o = probe_order(&c, "Deleted", "{}", "{\"uid\":\"hang\"}");
        assert_int_equal(o.rc, 0);

        slapd_cmd("stop");
        o = exec_order(&c, "Deleted", "{}", "{\"uid\":\"hang\"}");
        if (o.rc != CA_BACKEND_EUNAVAILABLE)
                fail_msg("stopped server: expected EUNAVAILABLE, got %d: %s", o.rc, o.err.message);
        expect_in(o.err.message, "Can't contact LDAP server");
        memset(&err, 0, sizeof(err));
        assert_int_equal(T.ops->check(c.session, &err), CA_BACKEND_EUNAVAILABLE);
        o = probe_order(&c, "Deleted", "{}", "{\"uid\":\"hang\"}");
        assert_int_equal(o.rc, CA_BACKEND_EUNAVAILABLE);
        /* describe never needs the server. */
        struct ca_settings m = {0};
        settings_make(&m, people_map);
        struct ca_order *ord = ldap_order("Deleted", "{}", "{\"uid\":\"hang\"}");
        memset(&o, 0, sizeof(o));
        assert_int_equal(
            T.ops->describe(c.session, backend_order(ord), backend_settings(&m), &o.r, &o.err), 0);
        assert_string_equal(o.r.message, "dn: uid=hang," PEOPLE "\nchangetype: delete\n");
        order_free(ord);
        settings_clear(&m);

        slapd_cmd("serve");
        expect_executed(exec_order(&c, "Deleted", "{}", "{\"uid\":\"hang\"}"), NULL, NULL);
        memset(&err, 0, sizeof(err));
        assert_int_equal(T.ops->check(c.session, &err), 0);
        /* And after a restart with the session's connection still open. */
        slapd_cmd("stop");
        slapd_cmd("serve");
        expect_executed(exec_order(&c, "Deleted", "{}", "{\"uid\":\"hang\"}"), NULL,
                        "already absent");
        conn_free(&c);
}

int main(void)
{
        /* As the agent does (main.c): libldap writes to sockets the server may have closed. */
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_settings_refused),
            cmocka_unit_test(test_added_idempotent),
            cmocka_unit_test(test_modified),
            cmocka_unit_test(test_mapping),
            cmocka_unit_test(test_deleted),
            cmocka_unit_test(test_rdn_escaping),
            cmocka_unit_test(test_filter_escaping),
            cmocka_unit_test(test_tls),
            cmocka_unit_test(test_wrong_password),
            cmocka_unit_test(test_permissive_modify),
            cmocka_unit_test(test_describe),
            cmocka_unit_test(test_server_down_and_back),
            cmocka_unit_test(test_password_modify),
            cmocka_unit_test(test_account_state_ppolicy),
            cmocka_unit_test(test_account_state_attribute),
            cmocka_unit_test(test_rename_move_entry_uuid),
            cmocka_unit_test(test_deleted_unlinks_groups),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
