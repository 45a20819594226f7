/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the ldap back-end plug-in against a real Active Directory domain controller
 * (Samba's AD DC, tests/ad/samba-ad.sh) on loopback, loaded through the real loader:
 * root DSE detection, creating a user (objectClass user, sAMAccountName checked,
 * userPrincipalName), enable and disable through userAccountControl preserving every
 * other bit, passwords through unicodePwd over LDAPS only (refused over plain LDAP before
 * anything is sent), a password refused by the domain's policy leaving nothing behind,
 * a crash between the disabled create and the password set settled by the probe, and
 * AD's error codes in words. Everything is read back with ldapsearch, not through the
 * plug-in. The DC's ports are fixed: ctest runs this under the resource lock
 * "samba-ad-dc". Nothing is skipped: without Samba the test fails and says how to
 * install it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend_loader.h"
#include "backend_test_util.h"
#include "config.h"
#include "order.h"

#define OUT_MAX     65536
#define CMD_TIMEOUT "120" /* seconds any helper command may take (provisioning ~10 s) */
#define USERS       "CN=Users,DC=example,DC=test"
#define ADMIN_DN    "CN=Administrator,CN=Users,DC=example,DC=test"
#define GOOD_PW     "Corr3ct-H0rse-Battery!"

static struct {
        char dir[256];
        char script[4096];
        char ldap_uri[128], ldaps_uri[128];
        char ca[512], pw_file[512];
        int started;
        struct backend *b;
        const struct ca_backend_ops *ops;
} T;

/* --- helpers --- */

static int run(char *const argv[], char *out, size_t outlen)
{
        return test_run_bounded(CMD_TIMEOUT, argv, out, outlen);
}

static void kv_get(const char *out, const char *key, char *dst, size_t len)
{
        char pat[64];
        snprintf(pat, sizeof(pat), "%s=", key);
        const char *p = strstr(out, pat);
        if (!p)
                fail_msg("samba-ad.sh printed no %s:\n%s", key, out);
        p += strlen(pat);
        size_t n = strcspn(p, "\n");
        snprintf(dst, len, "%.*s", (int)n, p);
}

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

static int group_setup(void **state)
{
        (void)state;
        char out[OUT_MAX];
        const char *src = getenv("CA_TEST_SOURCE_DIR");
        if (!src)
                fail_msg("CA_TEST_SOURCE_DIR is not set (run through ctest)");
        snprintf(T.script, sizeof(T.script), "%s/tests/ad/samba-ad.sh", src);
        snprintf(T.dir, sizeof(T.dir), "/tmp/ca-ad-test-XXXXXX");
        assert_non_null(mkdtemp(T.dir));
        char owner[32];
        snprintf(owner, sizeof(owner), "%d", (int)getpid());
        setenv("CA_SAMBA_OWNER_PID", owner, 1);
        char *argv[] = {T.script, "start", T.dir, NULL};
        int rc = run(argv, out, sizeof(out));
        T.started = 1;
        if (rc == 3)
                fail_msg("%s\nrun tests/run.sh, which installs Samba's AD DC", out);
        if (rc != 0)
                fail_msg("samba-ad.sh start failed (%d):\n%s", rc, out);
        kv_get(out, "LDAP_URI", T.ldap_uri, sizeof(T.ldap_uri));
        kv_get(out, "LDAPS_URI", T.ldaps_uri, sizeof(T.ldaps_uri));
        kv_get(out, "CA_FILE", T.ca, sizeof(T.ca));
        kv_get(out, "ADMIN_PW_FILE", T.pw_file, sizeof(T.pw_file));
        setenv("LDAPTLS_CACERT", T.ca, 1); /* for ldapsearch and ldapwhoami */
        T.b = load_backend("ldap");
        T.ops = backend_ops(T.b);
        return 0;
}

static int group_teardown(void **state)
{
        (void)state;
        backend_unload(T.b);
        if (T.started) {
                char out[OUT_MAX];
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

static int conn_new(struct conn *c, const char *const *kv, struct ca_backend_error *err)
{
        memset(c, 0, sizeof(*c));
        memset(err, 0, sizeof(*err));
        settings_make(&c->settings, kv);
        return T.ops->instance_new(backend_host(), backend_settings(&c->settings), &c->inst, err);
}

static void conn_free(struct conn *c)
{
        if (c->session)
                T.ops->session_close(c->session);
        if (c->inst)
                T.ops->instance_free(c->inst);
        settings_clear(&c->settings);
}

/* The administrator's connection to uri (ldaps:// or plain ldap:// when plain), opened. */
static void conn_admin(struct conn *c, const char *uri, int plain)
{
        struct ca_backend_error err;
        const char *kv[] = {"uri",
                            uri,
                            "ca_file",
                            T.ca,
                            "bind_dn",
                            ADMIN_DN,
                            "bind_password_file",
                            T.pw_file,
                            "order_timeout",
                            "20s",
                            plain ? "allow_plain" : NULL,
                            "yes",
                            "starttls",
                            "no",
                            NULL};
        int rc = conn_new(c, kv, &err);
        if (rc != 0)
                fail_msg("instance_new: %d %s", rc, err.message);
        memset(&err, 0, sizeof(err));
        rc = T.ops->session_open(c->inst, &c->session, &err);
        if (rc != 0)
                fail_msg("session_open: %d %s", rc, err.message);
}

static const char *const users_map[] = {"connector",
                                        "ad",
                                        "base_dn",
                                        USERS,
                                        "rdn_attribute",
                                        "cn",
                                        "object_class",
                                        "user",
                                        "move_change",
                                        "parent",
                                        "enabled_change",
                                        "enabled",
                                        "password_change",
                                        "password",
                                        "key_attribute",
                                        "sAMAccountName",
                                        NULL};

static struct ca_order *ad_order(const char *change, const char *changes, const char *resource)
{
        static int seq;
        char text[8192];
        snprintf(text, sizeof(text),
                 "{\"Id\":\"ad-%d\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"%s\","
                 "\"ResourceType\":{\"Identifier\":\"AD_User\"},\"Changes\":%s,\"Resource\":%s}",
                 ++seq, change, changes, resource ? resource : "{}");
        return order_make(text);
}

struct outcome {
        int rc;
        struct ca_backend_result r;
        struct ca_backend_error err;
        enum ca_backend_probe answer;
};

static struct outcome call(struct conn *c, int probe, const char *change, const char *changes,
                           const char *resource)
{
        struct outcome out;
        memset(&out, 0, sizeof(out));
        struct ca_settings m = {0};
        settings_make(&m, users_map);
        struct ca_order *o = ad_order(change, changes, resource);
        if (probe)
                out.rc = T.ops->probe(c->session, backend_order(o), backend_settings(&m),
                                      &out.answer, &out.r, &out.err);
        else
                out.rc = T.ops->execute(c->session, backend_order(o), backend_settings(&m), &out.r,
                                        &out.err);
        order_free(o);
        settings_clear(&m);
        return out;
}

static struct outcome exec_order(struct conn *c, const char *change, const char *changes,
                                 const char *resource)
{
        return call(c, 0, change, changes, resource);
}

static struct outcome probe_order(struct conn *c, const char *change, const char *changes,
                                  const char *resource)
{
        return call(c, 1, change, changes, resource);
}

static void expect_state(struct outcome o, int state, const char *needle)
{
        if (o.rc != 0)
                fail_msg("execute returned %d: %s", o.rc, o.err.message);
        if (!o.r.set || (int)o.r.state != state)
                fail_msg("expected state %d, got %d: %s", state, o.r.state, o.r.message);
        if (needle && !strstr(o.r.message, needle))
                fail_msg("message \"%s\" lacks \"%s\"", o.r.message, needle);
        if (strstr(o.r.message, GOOD_PW))
                fail_msg("the password reached the result message: %s", o.r.message);
}

static void expect_probe(struct outcome o, enum ca_backend_probe answer)
{
        if (o.rc != 0)
                fail_msg("probe returned %d: %s", o.rc, o.err.message);
        if (o.answer != answer)
                fail_msg("probe answered %d, expected %d", o.answer, answer);
}

/* --- reading back with ldapsearch, as the administrator, over LDAPS --- */

/* Every attribute of CN=cn (or of the DN cn, when it has a '=') (attrs names what the caller looks
 * at: all are read). */
/* Every attribute of CN=cn (or of the DN cn, when it has a '=') (attrs only says which the caller
 * looks at), one "attr: [value]" line each, base64 values decoded. Returns ldapsearch's exit code.
 */
static int ldif_read(const char *cn, const char *attrs, char *text, size_t len)
{
        char raw[OUT_MAX], base[512];
        if (strchr(cn, '='))
                snprintf(base, sizeof(base), "%s", cn); /* a whole DN */
        else
                snprintf(base, sizeof(base), "CN=%s," USERS, cn);
        char *argv[] = {"ldapsearch",
                        "-x",
                        "-LLL",
                        "-o",
                        "ldif-wrap=no",
                        "-o",
                        "nettimeout=5",
                        "-H",
                        T.ldaps_uri,
                        "-D",
                        ADMIN_DN,
                        "-y",
                        T.pw_file,
                        "-b",
                        base,
                        "-s",
                        "base",
                        "(objectClass=*)",
                        "*",
                        NULL};
        (void)attrs;
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

static int exists(const char *cn)
{
        char text[OUT_MAX];
        int rc = ldif_read(cn, "cn", text, sizeof(text));
        if (rc != 0 && rc != 32)
                fail_msg("ldapsearch for %s failed (%d): %s", cn, rc, text);
        return rc == 0;
}

static long uac(const char *cn)
{
        char text[OUT_MAX];
        if (ldif_read(cn, "userAccountControl", text, sizeof(text)) != 0)
                fail_msg("no entry CN=%s", cn);
        const char *p = strstr(text, "userAccountControl: [");
        if (!p)
                fail_msg("CN=%s has no userAccountControl:\n%s", cn, text);
        return strtol(p + strlen("userAccountControl: ["), NULL, 10);
}

static void expect_in(const char *text, const char *needle)
{
        if (!strstr(text, needle))
                fail_msg("expected \"%s\" in:\n%s", needle, text);
}

enum { BIND_REFUSED, BIND_OK, BIND_DISABLED /* the right password, a disabled account */ };

/* Can CN=cn bind with password? (a base search of the root DSE as that user, over LDAPS:
 * Samba has no Who am I? operation) */
static int can_bind(const char *cn, const char *password)
{
        char out[OUT_MAX], dn[512], pwf[512];
        snprintf(dn, sizeof(dn), "CN=%s," USERS, cn);
        snprintf(pwf, sizeof(pwf), "%s/user.pw", T.dir);
        write_text(pwf, password, 0600);
        char *argv[] = {"ldapsearch", "-x", "-o", "nettimeout=5", "-H", T.ldaps_uri, "-D",
                        dn,           "-y", pwf,  "-b",           "",   "-s",        "base",
                        "dn",         NULL};
        int rc = run(argv, out, sizeof(out));
        unlink(pwf);
        if (rc != 0 && rc != 49)
                fail_msg("bind as %s failed (%d): %s", dn, rc, out);
        if (rc == 49 && strstr(out, "data 533"))
                return BIND_DISABLED; /* AD checks the password before the state */
        return rc == 0 ? BIND_OK : BIND_REFUSED;
}

/* Changes the entry with ldapmodify (LDIF on stdin through a file). */
static void ldapmodify(const char *ldif)
{
        char out[OUT_MAX], path[512];
        snprintf(path, sizeof(path), "%s/change.ldif", T.dir);
        write_text(path, ldif, 0600);
        char *argv[] = {"ldapmodify", "-x", "-o",      "nettimeout=5", "-H", T.ldaps_uri, "-D",
                        ADMIN_DN,     "-y", T.pw_file, "-f",           path, NULL};
        int rc = run(argv, out, sizeof(out));
        if (rc != 0)
                fail_msg("ldapmodify failed (%d): %s\n%s", rc, out, ldif);
}

/* --- the tests --- */

static void test_directory_setting(void **state)
{
        (void)state;
        struct conn c;
        struct ca_backend_error err;
        const char *bad[] = {"uri", T.ldaps_uri, "ca_file", T.ca, "directory", "novell", NULL};
        assert_int_equal(conn_new(&c, bad, &err), CA_BACKEND_EINVALID);
        expect_in(err.message, "expected auto, active-directory, openldap or generic");
        conn_free(&c);
        const char *good[] = {"uri",       T.ldaps_uri,        "ca_file", T.ca,
                              "directory", "active-directory", NULL};
        assert_int_equal(conn_new(&c, good, &err), 0);
        conn_free(&c);
}

static void test_create_user(void **state)
{
        (void)state;
        struct conn c;
        conn_admin(&c, T.ldaps_uri, 0);
        const char *changes = "{\"cn\":\"Ada Lovelace\",\"sAMAccountName\":\"alovelace\","
                              "\"userPrincipalName\":\"alovelace@example.test\","
                              "\"givenName\":\"Ada\"}";
        expect_state(exec_order(&c, "Added", changes, NULL), CA_BACKEND_EXECUTED, "added");
        char text[OUT_MAX];
        assert_int_equal(ldif_read("Ada Lovelace",
                                   "objectClass sAMAccountName userPrincipalName givenName", text,
                                   sizeof(text)),
                         0);
        expect_in(text, "objectClass: [user]");
        expect_in(text, "sAMAccountName: [alovelace]");
        expect_in(text, "userPrincipalName: [alovelace@example.test]");
        expect_in(text, "givenName: [Ada]");
        /* Again: the same values are in place. */
        expect_state(exec_order(&c, "Added", changes, NULL), CA_BACKEND_EXECUTED,
                     "already there with the same values");
        expect_probe(probe_order(&c, "Added", changes, NULL), CA_BACKEND_PROBE_APPLIED);
        /* Another entry with the same sAMAccountName: AD's code in words. */
        expect_state(
            exec_order(&c, "Added", "{\"cn\":\"Ada Two\",\"sAMAccountName\":\"alovelace\"}", NULL),
            CA_BACKEND_ERRORED, "already used by another object");
        assert_false(exists("Ada Two"));
        conn_free(&c);
}

static void test_sam_account_name_checked(void **state)
{
        (void)state;
        struct conn c;
        conn_admin(&c, T.ldaps_uri, 0);
        expect_state(exec_order(&c, "Added",
                                "{\"cn\":\"Long\",\"sAMAccountName\":\"abcdefghijklmnopqrstu\"}",
                                NULL),
                     CA_BACKEND_ERRORED, "21 characters, Active Directory allows at most 20");
        assert_false(exists("Long"));
        /* 20 characters, two of them two bytes in UTF-8: accepted. */
        expect_state(
            exec_order(&c, "Added",
                       "{\"cn\":\"Twenty\",\"sAMAccountName\":\"\\u00e9abcdefghijklmnopq\\u00e8\"}",
                       NULL),
            CA_BACKEND_EXECUTED, "added");
        const char *bad[] = {"a/b", "a\\\\b", "a[b", "a]b", "a:b", "a;b", "a|b",   "a=b",
                             "a,b", "a+b",    "a*b", "a?b", "a<b", "a>b", "a\\\"b"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char changes[256];
                snprintf(changes, sizeof(changes), "{\"cn\":\"Bad\",\"sAMAccountName\":\"%s\"}",
                         bad[i]);
                expect_state(exec_order(&c, "Added", changes, NULL), CA_BACKEND_ERRORED,
                             "is not allowed (Active Directory refuses");
        }
        expect_state(exec_order(&c, "Added", "{\"cn\":\"Bad\",\"sAMAccountName\":\"dot.\"}", NULL),
                     CA_BACKEND_ERRORED, "must not end with a dot");
        assert_false(exists("Bad"));
        conn_free(&c);
}

static void test_enable_disable(void **state)
{
        (void)state;
        struct conn c;
        conn_admin(&c, T.ldaps_uri, 0);
        expect_state(exec_order(&c, "Added",
                                "{\"cn\":\"Grace\",\"sAMAccountName\":\"ghopper\",\"enabled\":"
                                "\"false\"}",
                                NULL),
                     CA_BACKEND_EXECUTED, "disabled");
        assert_int_equal(uac("Grace") & 0x2, 0x2);
        /* Another bit set by someone else: DONT_EXPIRE_PASSWORD (0x10000). */
        char ldif[512];
        snprintf(ldif, sizeof(ldif),
                 "dn: CN=Grace," USERS "\nchangetype: modify\nreplace: userAccountControl\n"
                 "userAccountControl: %ld\n",
                 uac("Grace") | 0x10000);
        ldapmodify(ldif);
        long before = uac("Grace");
        const char *res = "{\"cn\":\"Grace\"}";
        expect_probe(probe_order(&c, "Modified", "{\"enabled\":\"true\"}", res),
                     CA_BACKEND_PROBE_NOT_APPLIED);
        expect_state(exec_order(&c, "Modified", "{\"enabled\":\"true\"}", res), CA_BACKEND_EXECUTED,
                     ", enabled");
        assert_int_equal(uac("Grace"), before & ~0x2L);
        expect_probe(probe_order(&c, "Modified", "{\"enabled\":\"true\"}", res),
                     CA_BACKEND_PROBE_APPLIED);
        expect_state(exec_order(&c, "Modified", "{\"enabled\":\"true\"}", res), CA_BACKEND_EXECUTED,
                     "already enabled");
        assert_int_equal(uac("Grace"), before & ~0x2L);
        expect_state(exec_order(&c, "Modified", "{\"enabled\":\"false\"}", res),
                     CA_BACKEND_EXECUTED, ", disabled");
        assert_int_equal(uac("Grace"), before);
        expect_state(exec_order(&c, "Modified", "{\"enabled\":\"false\"}", res),
                     CA_BACKEND_EXECUTED, "already disabled");
        expect_state(exec_order(&c, "Modified", "{\"enabled\":\"maybe\"}", res), CA_BACKEND_ERRORED,
                     "expected \"true\" or \"false\"");
        assert_int_equal(uac("Grace"), before);
        conn_free(&c);
}

static void test_password(void **state)
{
        (void)state;
        struct conn c;
        conn_admin(&c, T.ldaps_uri, 0);
        const char *changes =
            "{\"cn\":\"Alan\",\"sAMAccountName\":\"aturing\",\"password\":\"" GOOD_PW "\"}";
        expect_probe(probe_order(&c, "Added", changes, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_state(exec_order(&c, "Added", changes, NULL), CA_BACKEND_EXECUTED,
                     "added, password set, enabled");
        assert_int_equal(uac("Alan") & 0x2, 0);
        assert_int_equal(BIND_OK, can_bind("Alan", GOOD_PW));
        assert_int_equal(BIND_REFUSED, can_bind("Alan", "Wr0ng-Passw0rd!"));
        expect_probe(probe_order(&c, "Added", changes, NULL), CA_BACKEND_PROBE_APPLIED);
        /* A new password on Modified. */
        const char *res = "{\"cn\":\"Alan\"}";
        expect_state(exec_order(&c, "Modified", "{\"password\":\"N3w-Passw0rd-Here\"}", res),
                     CA_BACKEND_EXECUTED, "password set");
        assert_int_equal(BIND_OK, can_bind("Alan", "N3w-Passw0rd-Here"));
        assert_int_equal(BIND_REFUSED, can_bind("Alan", GOOD_PW));
        /* Refused by the domain's policy (too short): in words, and nothing left. */
        struct outcome o =
            exec_order(&c, "Added",
                       "{\"cn\":\"Weak\",\"sAMAccountName\":\"weak\",\"password\":\"abc\"}", NULL);
        expect_state(o, CA_BACKEND_ERRORED, "does not meet the domain's password policy");
        expect_in(o.r.message, "cn=Weak," USERS);
        expect_in(o.r.message, "deleted again");
        if (strstr(o.r.message, "\"abc\""))
                fail_msg("the password reached the message: %s", o.r.message);
        assert_false(exists("Weak"));
        /* A refused new password on Modified leaves the old one. */
        expect_state(exec_order(&c, "Modified", "{\"password\":\"abc\"}", res), CA_BACKEND_ERRORED,
                     "password policy");
        assert_int_equal(BIND_OK, can_bind("Alan", "N3w-Passw0rd-Here"));
        assert_int_equal(uac("Alan") & 0x2, 0);
        conn_free(&c);
}

static void test_password_refused_over_plain_ldap(void **state)
{
        (void)state;
        struct conn c;
        conn_admin(&c, T.ldap_uri, 1);
        expect_state(
            exec_order(&c, "Added",
                       "{\"cn\":\"Plain\",\"sAMAccountName\":\"plain\",\"password\":\"" GOOD_PW
                       "\"}",
                       NULL),
            CA_BACKEND_ERRORED, "refused to send a password over plain LDAP");
        assert_false(exists("Plain"));
        /* Without a password the plain connection works (and finds AD by its root DSE:
         * the account is created disabled, then enabled). */
        expect_state(exec_order(&c, "Added",
                                "{\"cn\":\"Plain\",\"sAMAccountName\":\"plain\",\"enabled\":"
                                "\"false\"}",
                                NULL),
                     CA_BACKEND_EXECUTED, "added, disabled");
        assert_int_equal(uac("Plain") & 0x2, 0x2);
        conn_free(&c);
}

/* The agent died after creating the account disabled and before setting its password:
 * the probe says not applied, and running the order again completes it. */
static void test_crash_between_create_and_password(void **state)
{
        (void)state;
        struct conn c;
        conn_admin(&c, T.ldaps_uri, 0);
        ldapmodify("dn: CN=Edsger," USERS "\nchangetype: add\nobjectClass: user\n"
                   "sAMAccountName: edijkstra\nuserAccountControl: 514\n");
        const char *changes =
            "{\"cn\":\"Edsger\",\"sAMAccountName\":\"edijkstra\",\"password\":\"" GOOD_PW "\"}";
        expect_probe(probe_order(&c, "Added", changes, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_state(exec_order(&c, "Added", changes, NULL), CA_BACKEND_EXECUTED,
                     "already there with the same values, password set");
        assert_int_equal(can_bind("Edsger", GOOD_PW), BIND_DISABLED);
        /* An account that existed before is left disabled unless the order says. */
        assert_int_equal(uac("Edsger") & 0x2, 0x2);
        const char *enable =
            "{\"cn\":\"Edsger\",\"sAMAccountName\":\"edijkstra\",\"password\":\"" GOOD_PW
            "\",\"enabled\":\"true\"}";
        expect_probe(probe_order(&c, "Added", enable, NULL), CA_BACKEND_PROBE_NOT_APPLIED);
        expect_state(exec_order(&c, "Added", enable, NULL), CA_BACKEND_EXECUTED, ", enabled");
        assert_int_equal(uac("Edsger") & 0x2, 0);
        expect_probe(probe_order(&c, "Added", enable, NULL), CA_BACKEND_PROBE_APPLIED);
        conn_free(&c);
}

/* objectGUID of an entry in AD's string form (first three groups little-endian). */
static void guid_of(const char *cn, char *out, size_t len)
{
        char text[OUT_MAX];
        if (ldif_read(cn, "objectGUID", text, sizeof(text)) != 0)
                fail_msg("no entry %s", cn);
        /* ldif_read decoded the value: re-read it raw, as 16 bytes. */
        char raw[OUT_MAX], base[512];
        if (strchr(cn, '='))
                snprintf(base, sizeof(base), "%s", cn);
        else
                snprintf(base, sizeof(base), "CN=%s," USERS, cn);
        char *argv[] = {"ldapsearch",   "-x", "-LLL",      "-o",
                        "ldif-wrap=no", "-H", T.ldaps_uri, "-D",
                        ADMIN_DN,       "-y", T.pw_file,   "-b",
                        base,           "-s", "base",      "(objectClass=*)",
                        "objectGUID",   NULL};
        assert_int_equal(run(argv, raw, sizeof(raw)), 0);
        const char *p = strstr(raw, "objectGUID:: ");
        assert_non_null(p);
        p += strlen("objectGUID:: ");
        char bytes[32];
        b64_decode(p, strcspn(p, "\n"), bytes, sizeof(bytes));
        const unsigned char *b = (const unsigned char *)bytes;
        snprintf(out, len, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12],
                 b[13], b[14], b[15]);
}

/* A rename is modrdn (the entry keeps its objectGUID), found again by an order that
 * still names the old DN; a move is modrdn with newSuperior. */
static void test_rename_and_move(void **state)
{
        (void)state;
        struct conn c;
        conn_admin(&c, T.ldaps_uri, 0);
        expect_state(
            exec_order(&c, "Added", "{\"cn\":\"Rename Me\",\"sAMAccountName\":\"rnm\"}", NULL),
            CA_BACKEND_EXECUTED, "added");
        char guid[64], after[64];
        guid_of("Rename Me", guid, sizeof(guid));
        const char *old_res = "{\"cn\":\"Rename Me\"}";
        expect_probe(probe_order(&c, "Modified", "{\"cn\":\"Renamed\"}", old_res),
                     CA_BACKEND_PROBE_NOT_APPLIED);
        expect_state(exec_order(&c, "Modified", "{\"cn\":\"Renamed\"}", old_res),
                     CA_BACKEND_EXECUTED, "renamed from cn=Rename Me," USERS);
        assert_false(exists("Rename Me"));
        assert_true(exists("Renamed"));
        guid_of("Renamed", after, sizeof(after));
        assert_string_equal(guid, after);
        /* The same order again (it still names the old DN): already done. */
        expect_probe(probe_order(&c, "Modified", "{\"cn\":\"Renamed\"}", old_res),
                     CA_BACKEND_PROBE_APPLIED);
        expect_state(exec_order(&c, "Modified", "{\"cn\":\"Renamed\"}", old_res),
                     CA_BACKEND_EXECUTED, "modified");
        /* An order written before the rename, with the anchor: finds the renamed entry. */
        char res[256];
        snprintf(res, sizeof(res), "{\"cn\":\"Rename Me\",\"objectGUID\":\"%s\"}", guid);
        struct outcome o = exec_order(&c, "Modified", "{\"givenName\":\"Anchored\"}", res);
        expect_state(o, CA_BACKEND_EXECUTED, "modified");
        assert_string_equal(o.r.resource_identifier, "CN=Renamed," USERS);
        char text[OUT_MAX];
        assert_int_equal(ldif_read("Renamed", "givenName", text, sizeof(text)), 0);
        expect_in(text, "givenName: [Anchored]");

        /* A move to another OU. */
        ldapmodify("dn: OU=Moved,DC=example,DC=test\nchangetype: add\n"
                   "objectClass: organizationalUnit\n");
        const char *moved = "CN=Renamed,OU=Moved,DC=example,DC=test";
        const char *move = "{\"parent\":\"OU=Moved,DC=example,DC=test\"}";
        snprintf(res, sizeof(res), "{\"cn\":\"Renamed\",\"objectGUID\":\"%s\"}", guid);
        expect_probe(probe_order(&c, "Modified", move, res), CA_BACKEND_PROBE_NOT_APPLIED);
        o = exec_order(&c, "Modified", move, res);
        expect_state(o, CA_BACKEND_EXECUTED, "renamed from CN=Renamed," USERS);
        assert_false(exists("Renamed"));
        assert_true(exists(moved));
        guid_of(moved, after, sizeof(after));
        assert_string_equal(guid, after);
        expect_probe(probe_order(&c, "Modified", move, res), CA_BACKEND_PROBE_APPLIED);
        expect_state(exec_order(&c, "Modified", move, res), CA_BACKEND_EXECUTED, "modified");
        /* Deleted with the anchor and a stale DN: the moved entry goes. */
        expect_state(exec_order(&c, "Deleted", "{}", res), CA_BACKEND_EXECUTED, "deleted");
        assert_false(exists(moved));
        conn_free(&c);
}

/* Groups may contain groups: the inner group goes into the outer group's member (never
 * anyone's memberOf, which AD computes), and AD shows the user's nested membership. */
static void test_nested_groups(void **state)
{
        (void)state;
        static const char *const group_map[] = {
            "base_dn", USERS, "rdn_attribute", "cn", "object_class", "group", NULL};
        static const char *const bad_map[] = {
            "base_dn",  USERS, "rdn_attribute", "cn", "object_class", "group", "group_attribute",
            "memberOf", NULL};
        struct ca_settings m = {0};
        struct ca_backend_error err;
        memset(&err, 0, sizeof(err));
        settings_make(&m, bad_map);
        assert_int_equal(T.ops->mapping_check(NULL, backend_settings(&m), &err),
                         CA_BACKEND_EINVALID);
        expect_in(err.message, "memberOf is computed by the directory");
        settings_clear(&m);

        struct conn c;
        conn_admin(&c, T.ldaps_uri, 0);
        struct ca_order *o;
        struct ca_backend_result r;
        const char *orders[][2] = {
            {"Added", "{\"cn\":\"Outer\",\"sAMAccountName\":\"outer\"}"},
            {"Added",
             "{\"cn\":\"Inner\",\"sAMAccountName\":\"inner\",\"memberOf_add\":[\"CN=Outer," USERS
             "\"]}"},
        };
        for (size_t i = 0; i < 2; i++) {
                settings_make(&m, group_map);
                o = ad_order(orders[i][0], orders[i][1], NULL);
                memset(&r, 0, sizeof(r));
                memset(&err, 0, sizeof(err));
                assert_int_equal(
                    T.ops->execute(c.session, backend_order(o), backend_settings(&m), &r, &err), 0);
                if (r.state != CA_BACKEND_EXECUTED)
                        fail_msg("group order %zu: %s", i, r.message);
                order_free(o);
                settings_clear(&m);
        }
        expect_state(exec_order(&c, "Added",
                                "{\"cn\":\"Nested User\",\"sAMAccountName\":\"nested\","
                                "\"memberOf_add\":[\"CN=Inner," USERS "\"]}",
                                NULL),
                     CA_BACKEND_EXECUTED, "1 group link in place");
        char text[OUT_MAX];
        assert_int_equal(ldif_read("Outer", "member", text, sizeof(text)), 0);
        expect_in(text, "member: [CN=Inner," USERS "]");
        /* AD's transitive match (LDAP_MATCHING_RULE_IN_CHAIN) sees the user in Outer. */
        char raw[OUT_MAX];
        char *argv[] = {"ldapsearch",   "-x",
                        "-LLL",         "-o",
                        "ldif-wrap=no", "-H",
                        T.ldaps_uri,    "-D",
                        ADMIN_DN,       "-y",
                        T.pw_file,      "-b",
                        USERS,          "(memberOf:1.2.840.113556.1.4.1941:=CN=Outer," USERS ")",
                        "dn",           NULL};
        assert_int_equal(run(argv, raw, sizeof(raw)), 0);
        expect_in(raw, "CN=Nested User," USERS);
        conn_free(&c);
}

/* Renamed by someone else, with no anchor in the order: found by its key attribute. */
static void test_found_by_key_attribute(void **state)
{
        (void)state;
        struct conn c;
        conn_admin(&c, T.ldaps_uri, 0);
        expect_state(
            exec_order(&c, "Added", "{\"cn\":\"Keyed\",\"sAMAccountName\":\"keyed\"}", NULL),
            CA_BACKEND_EXECUTED, "added");
        ldapmodify("dn: CN=Keyed," USERS "\nchangetype: modrdn\nnewrdn: CN=Keyed Elsewhere\n"
                   "deleteoldrdn: 1\n");
        const char *res = "{\"cn\":\"Keyed\",\"sAMAccountName\":\"keyed\"}";
        struct outcome o = exec_order(&c, "Modified", "{\"givenName\":\"Found\"}", res);
        expect_state(o, CA_BACKEND_EXECUTED, "modified");
        assert_string_equal(o.r.resource_identifier, "CN=Keyed Elsewhere," USERS);
        char text[OUT_MAX];
        assert_int_equal(ldif_read("Keyed Elsewhere", "givenName", text, sizeof(text)), 0);
        expect_in(text, "givenName: [Found]");
        expect_probe(probe_order(&c, "Modified", "{\"givenName\":\"Found\"}", res),
                     CA_BACKEND_PROBE_APPLIED);
        /* Without the key in Resource there is nothing to find it by. */
        expect_state(exec_order(&c, "Modified", "{\"givenName\":\"X\"}", "{\"cn\":\"Keyed\"}"),
                     CA_BACKEND_ERRORED, "does not exist");
        conn_free(&c);
}

/* AD's extended codes in words, provoked on the DC: 0000202B (a referral: an add at the
 * head of the domain's naming context, which the DC refers to that context's master rather
 * than answer; libldap's referral chasing is off, so the referral is the answer) and
 * 00002030 (no such object: a container that does not exist). Nothing is created. */
static void test_errors_in_words(void **state)
{
        (void)state;
        struct conn c;
        conn_admin(&c, T.ldaps_uri, 0);
        struct outcome o = exec_order(
            &c, "Added", "{\"dn\":\"DC=example,DC=test\",\"sAMAccountName\":\"nchead\"}", NULL);
        expect_state(o, CA_BACKEND_ERRORED, "ldap_add DC=example,DC=test: Referral (10)");
        expect_in(o.r.message, "a referral: the entry is in another domain or naming context");
        expect_in(o.r.message, "0000202B");
        assert_string_equal(o.r.resource_identifier, "DC=example,DC=test");
        o = exec_order(&c, "Added",
                       "{\"dn\":\"CN=Lost,OU=Nowhere,DC=example,DC=test\",\"sAMAccountName\":"
                       "\"lost\"}",
                       NULL);
        expect_state(o, CA_BACKEND_ERRORED,
                     "ldap_add CN=Lost,OU=Nowhere,DC=example,DC=test: No such object (32)");
        expect_in(o.r.message, "the container it is to be created in, does not exist");
        expect_in(o.r.message, "00002030");
        assert_false(exists("CN=Lost,OU=Nowhere,DC=example,DC=test"));
        /* The same on Modified: the entry is nowhere, said before anything is written. */
        o = exec_order(&c, "Modified", "{\"description\":\"x\"}",
                       "{\"dn\":\"CN=Lost,OU=Nowhere,DC=example,DC=test\"}");
        expect_state(o, CA_BACKEND_ERRORED, "the entry to modify does not exist");
        conn_free(&c);
}

static void test_describe_hides_password(void **state)
{
        (void)state;
        struct ca_settings m = {0};
        settings_make(&m, users_map);
        struct ca_order *o = ad_order(
            "Added", "{\"cn\":\"D\",\"sAMAccountName\":\"d\",\"password\":\"" GOOD_PW "\"}", NULL);
        struct ca_backend_result r;
        struct ca_backend_error err;
        memset(&r, 0, sizeof(r));
        memset(&err, 0, sizeof(err));
        assert_int_equal(T.ops->describe(NULL, backend_order(o), backend_settings(&m), &r, &err),
                         0);
        expect_in(r.message, "password: <secret>");
        if (strstr(r.message, GOOD_PW))
                fail_msg("describe shows the password: %s", r.message);
        order_free(o);
        settings_clear(&m);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_directory_setting),
            cmocka_unit_test(test_create_user),
            cmocka_unit_test(test_sam_account_name_checked),
            cmocka_unit_test(test_enable_disable),
            cmocka_unit_test(test_password),
            cmocka_unit_test(test_password_refused_over_plain_ldap),
            cmocka_unit_test(test_crash_between_create_and_password),
            cmocka_unit_test(test_describe_hides_password),
            cmocka_unit_test(test_rename_and_move),
            cmocka_unit_test(test_nested_groups),
            cmocka_unit_test(test_found_by_key_attribute),
            cmocka_unit_test(test_errors_in_words),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
