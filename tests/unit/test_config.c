/* SPDX-License-Identifier: Apache-2.0 */
/* config_load: a full file, defaults, every class of error at its exact FILE:LINE, many
 * errors at once, the environment over the file and alone, secrets from each source and
 * never in a message, URL rules, lookups, and the shipped example file. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "config_keys.h"

#define SECRET "S3cr3t-Value-XYZ"
#define BIG    8192

static char dir[PATH_MAX];
static char conf[PATH_MAX];   /* DIR/agent.conf */
static char secret[PATH_MAX]; /* DIR/secret, 0600 */

static void write_file(const char *path, mode_t mode, const char *text)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

static int setup(void **state)
{
        snprintf(dir, sizeof(dir), "/tmp/ca-config-XXXXXX");
        if (!mkdtemp(dir))
                return -1;
        snprintf(conf, sizeof(conf), "%s/agent.conf", dir);
        snprintf(secret, sizeof(secret), "%s/secret", dir);
        write_file(secret, 0600, SECRET "\n");
        return 0;
}

static int teardown(void **state)
{
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

/* Replaces every "@DIR@" in text with the test's directory. */
static char *expand(const char *text)
{
        static char out[4 * BIG];
        size_t n = 0;
        for (const char *p = text; *p;) {
                if (!strncmp(p, "@DIR@", 5)) {
                        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s", dir);
                        p += 5;
                } else {
                        out[n++] = *p++;
                }
                assert_true(n < sizeof(out) - 1);
        }
        out[n] = '\0';
        return out;
}

static int load(const char *text, char *const *envp, struct ca_config **cfg,
                struct ca_config_diag *d)
{
        write_file(conf, 0644, expand(text));
        return config_load(conf, envp, cfg, d);
}

/* 1-based line of the first line of text that contains needle. */
static unsigned line_of(const char *text, const char *needle)
{
        const char *hit = strstr(text, needle);
        assert_non_null(hit);
        unsigned line = 1;
        for (const char *p = text; p < hit; p++)
                line += *p == '\n';
        return line;
}

static void dump(const struct ca_config_diag *d)
{
        for (size_t i = 0; i < d->count; i++)
                print_message("  diag: %s\n", d->lines[i]);
}

/* Some diagnostic starts with the formatted prefix. */
static void assert_diag(const struct ca_config_diag *d, const char *fmt, ...)
{
        char want[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(want, sizeof(want), fmt, ap);
        va_end(ap);
        for (size_t i = 0; i < d->count; i++) {
                if (!strncmp(d->lines[i], want, strlen(want)))
                        return;
        }
        dump(d);
        fail_msg("no diagnostic starts with '%s'", want);
}

static void assert_no_secret(const struct ca_config_diag *d)
{
        for (size_t i = 0; i < d->count; i++) {
                if (strstr(d->lines[i], SECRET) || strstr(d->lines[i], "S3cr3t")) {
                        dump(d);
                        fail_msg("a diagnostic shows the secret");
                }
        }
}

/* Loads text expecting failure; checks the FILE:LINE prefix of the line holding at. */
static void expect_error(const char *text, const char *at, const char *what)
{
        struct ca_config *cfg = (struct ca_config *)1;
        struct ca_config_diag d = {0};
        assert_int_equal(load(text, NULL, &cfg, &d), -EINVAL);
        assert_null(cfg);
        assert_diag(&d, "%s:%u: %s", conf, line_of(text, at), what);
        assert_no_secret(&d);
        config_diag_clear(&d);
}

#define SERVER_OK                                                                                  \
        "[server]\n"                                                                               \
        "url = https://idm.example.com\n"                                                          \
        "client_id = Job@idm.example.com\n"                                                        \
        "client_secret_file = @DIR@/secret\n"

static const char full_file[] = "; every key\n"
                                "[agent]\n"
                                "identifier = agent-paris-01\n"
                                "state_dir = /srv/ca/state\n"
                                "backend_dir = /srv/ca/backends\n"
                                "heartbeat_interval = 15s\n"
                                "shutdown_deadline = 2m\n"
                                "disconnect_grace = 250ms\n"
                                "log_level = debug\n"
                                "status_address = ::1\n"
                                "status_port = 9100\n"
                                "max_pending_results = 77\n"
                                "results_batch = 12\n"
                                "journal_retention = 2d\n"
                                "journal_sync = off\n"
                                "allow_root = yes\n"
                                "\n"
                                "[server]\n"
                                "url = https://idm.example.com/\n"
                                "token_url = https://login.example.com/oauth/token\n"
                                "client_id = Job@idm.example.com\n"
                                "client_secret_file = @DIR@/secret\n"
                                "scope = other_api\n"
                                "api_version = 2.0\n"
                                "ca_file = @DIR@/ca.pem\n"
                                "client_cert = @DIR@/cert.pem\n"
                                "client_key = @DIR@/key.pem\n"
                                "pinned_pubkey = sha256//AAAA;sha256//BBBB\n"
                                "connect_timeout = 5s\n"
                                "request_timeout = 1h\n"
                                "max_body = 2M\n"
                                "page_size = 250\n"
                                "\n"
                                "[connector ldap-main]\n"
                                "backend = ldap\n"
                                "poll_interval = 10s\n"
                                "max_parallel = 8\n"
                                "order_timeout = 90s\n"
                                "max_in_flight = 50\n"
                                "uri = ldaps://ldap.example.com\n"
                                "bind_dn = cn=agent,dc=example,dc=com\n"
                                "\n"
                                "[connector db]\n"
                                "backend = sql\n"
                                "driver = sqlite\n"
                                "database = /srv/ca/db.sqlite\n"
                                "\n"
                                "[resource-type AD_Entry_NominativeUser]\n"
                                "connector = ldap-main\n"
                                "base_dn = ou=people,dc=example,dc=com\n"
                                "rdn_attribute = uid\n"
                                "\n"
                                "[resource-type SQL_User]\n"
                                "connector = db\n"
                                "table = users\n"
                                "query = SELECT 1\n"
                                "   FROM users\n"
                                "\n"
                                "   WHERE 1 = 1\n"
                                "insert =\n"
                                "   INSERT INTO users\n"
                                "   VALUES (?)\n";

static void write_tls_files(void)
{
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/ca.pem", dir);
        write_file(p, 0644, "ca");
        snprintf(p, sizeof(p), "%s/cert.pem", dir);
        write_file(p, 0644, "cert");
        snprintf(p, sizeof(p), "%s/key.pem", dir);
        write_file(p, 0600, "key");
}

static void test_full_file(void **state)
{
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};
        char p[PATH_MAX];

        write_tls_files();
        int r = load(full_file, NULL, &cfg, &d);
        if (r)
                dump(&d);
        assert_int_equal(r, 0);
        assert_int_equal(d.count, 0);
        assert_string_equal(cfg->path, conf);

        const struct ca_config_agent *a = &cfg->agent;
        assert_string_equal(a->identifier, "agent-paris-01");
        assert_string_equal(a->state_dir, "/srv/ca/state");
        assert_string_equal(a->backend_dir, "/srv/ca/backends");
        assert_int_equal(a->heartbeat_interval_ms, 15000);
        assert_int_equal(a->shutdown_deadline_ms, 120000);
        assert_int_equal(a->disconnect_grace_ms, 250);
        assert_string_equal(a->log_level, "debug");
        assert_string_equal(a->status_address, "::1");
        assert_int_equal(a->status_port, 9100);
        assert_int_equal(a->max_pending_results, 77);
        assert_int_equal(a->results_batch, 12);
        assert_int_equal(a->journal_retention_ms, 2ULL * 24 * 3600 * 1000);
        assert_int_equal(a->journal_sync, 0);
        assert_int_equal(a->allow_root, 1);

        const struct ca_config_server *s = &cfg->server;
        assert_string_equal(s->url, "https://idm.example.com"); /* trailing '/' dropped */
        assert_string_equal(s->token_url, "https://login.example.com/oauth/token");
        assert_string_equal(s->client_id, "Job@idm.example.com");
        assert_string_equal(s->client_secret, SECRET);
        assert_string_equal(s->scope, "other_api");
        assert_string_equal(s->api_version, "2.0");
        snprintf(p, sizeof(p), "%s/ca.pem", dir);
        assert_string_equal(s->ca_file, p);
        snprintf(p, sizeof(p), "%s/cert.pem", dir);
        assert_string_equal(s->client_cert, p);
        snprintf(p, sizeof(p), "%s/key.pem", dir);
        assert_string_equal(s->client_key, p);
        assert_string_equal(s->pinned_pubkey, "sha256//AAAA;sha256//BBBB");
        assert_int_equal(s->connect_timeout_ms, 5000);
        assert_int_equal(s->request_timeout_ms, 3600000);
        assert_int_equal(s->max_body_bytes, 2 * 1024 * 1024);
        assert_int_equal(s->page_size, 250);

        assert_int_equal(cfg->connector_count, 2);
        const struct ca_config_connector *c = config_find_connector(cfg, "ldap-main");
        assert_non_null(c);
        assert_ptr_equal(c, &cfg->connectors[0]);
        assert_string_equal(c->backend, "ldap");
        assert_int_equal(c->poll_interval_ms, 10000);
        assert_int_equal(c->max_parallel, 8);
        assert_int_equal(c->order_timeout_ms, 90000);
        assert_int_equal(c->max_in_flight, 50);
        assert_int_equal(c->line, line_of(full_file, "[connector ldap-main]"));
        /* Every key stays in the settings, the agent's own ones too. */
        assert_int_equal(c->settings.count, 7);
        assert_string_equal(config_setting(&c->settings, "uri"), "ldaps://ldap.example.com");
        assert_string_equal(config_setting(&c->settings, "backend"), "ldap");
        assert_int_equal(config_setting_line(&c->settings, "bind_dn"),
                         line_of(full_file, "bind_dn"));
        assert_null(config_setting(&c->settings, "nope"));
        assert_int_equal(config_setting_line(&c->settings, "nope"), 0);

        c = config_find_connector(cfg, "db");
        assert_non_null(c);
        assert_string_equal(c->backend, "sql");
        assert_int_equal(c->poll_interval_ms, 30000);
        assert_int_equal(c->max_parallel, 4);
        assert_int_equal(c->order_timeout_ms, 60000);
        assert_int_equal(c->max_in_flight, 1000);
        assert_null(config_find_connector(cfg, "missing"));
        assert_null(config_find_connector(cfg, NULL));

        assert_int_equal(cfg->resource_type_count, 2);
        const struct ca_config_resource_type *rt =
            config_find_resource_type(cfg, "AD_Entry_NominativeUser");
        assert_non_null(rt);
        assert_string_equal(rt->connector, "ldap-main");
        assert_string_equal(config_setting(&rt->settings, "rdn_attribute"), "uid");
        assert_int_equal(rt->line, line_of(full_file, "[resource-type AD_"));
        rt = config_find_resource_type(cfg, "SQL_User");
        assert_non_null(rt);
        /* Indented lines continue a value, joined by newlines. */
        assert_string_equal(config_setting(&rt->settings, "query"),
                            "SELECT 1\nFROM users\nWHERE 1 = 1");
        assert_string_equal(config_setting(&rt->settings, "insert"),
                            "INSERT INTO users\nVALUES (?)");
        assert_null(config_find_resource_type(cfg, "other"));
        config_free(cfg);
}

static void test_defaults(void **state)
{
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};
        char host[256] = "";

        assert_int_equal(load(SERVER_OK, NULL, &cfg, &d), 0);
        gethostname(host, sizeof(host) - 1);
        const struct ca_config_agent *a = &cfg->agent;
        assert_string_equal(a->identifier, host);
        assert_string_equal(a->state_dir, "/var/lib/connector-agent");
        assert_string_equal(a->backend_dir, CA_BACKEND_DIR);
        assert_int_equal(a->heartbeat_interval_ms, 30000);
        assert_int_equal(a->shutdown_deadline_ms, 30000);
        assert_int_equal(a->disconnect_grace_ms, 90000);
        assert_string_equal(a->log_level, "info");
        assert_string_equal(a->log_format, "text");
        assert_string_equal(a->status_address, "127.0.0.1");
        assert_int_equal(a->status_port, 0);
        assert_int_equal(a->max_pending_results, 10000);
        assert_int_equal(a->results_batch, 500);
        assert_int_equal(a->journal_retention_ms, 7ULL * 24 * 3600 * 1000);
        assert_int_equal(a->journal_sync, 1);
        assert_int_equal(a->allow_root, 0);
        const struct ca_config_server *s = &cfg->server;
        assert_string_equal(s->token_url, "https://idm.example.com/connect/token");
        assert_string_equal(s->scope, "usercube_api");
        assert_string_equal(s->api_version, "1.0");
        assert_null(s->ca_file);
        assert_null(s->client_cert);
        assert_null(s->client_key);
        assert_null(s->pinned_pubkey);
        assert_int_equal(s->connect_timeout_ms, 10000);
        assert_int_equal(s->request_timeout_ms, 60000);
        assert_int_equal(s->max_body_bytes, 16 * 1024 * 1024);
        assert_int_equal(s->page_size, 0);
        assert_int_equal(cfg->connector_count, 0);
        assert_int_equal(cfg->resource_type_count, 0);
        config_free(cfg);
}

/* Each class of problem, alone, at its exact place. */
static void test_error_lines(void **state)
{
        expect_error("[agent]\nheartbeat_interval = 5x\n" SERVER_OK, "heartbeat_interval",
                     "[agent] heartbeat_interval: not a duration");
        expect_error("[agent]\nheartbeat_interval = 0\n" SERVER_OK, "heartbeat_interval",
                     "[agent] heartbeat_interval: out of range");
        expect_error("[agent]\nstatus_port = 65536\n" SERVER_OK, "status_port",
                     "[agent] status_port: out of range (0 to 65535)");
        expect_error("[agent]\nstatus_port = -1\n" SERVER_OK, "status_port",
                     "[agent] status_port: not a whole number");
        expect_error("[agent]\njournal_sync = maybe\n" SERVER_OK, "journal_sync",
                     "[agent] journal_sync: not a boolean");
        expect_error("[agent]\nlog_level = loud\n" SERVER_OK, "log_level",
                     "[agent] log_level: must be one of error, warning, notice, info, debug");
        expect_error("[agent]\nlog_format = xml\n" SERVER_OK, "log_format",
                     "[agent] log_format: must be text or json");
        expect_error("[agent]\nstate_dir = relative/dir\n" SERVER_OK, "state_dir",
                     "[agent] state_dir: must be an absolute path");
        expect_error("[agent]\nstatus_address = localhost\n" SERVER_OK, "status_address",
                     "[agent] status_address: not an IPv4 or IPv6 address");
        expect_error("[agent]\nidentifier = a/b\n" SERVER_OK, "identifier", "[agent] identifier: ");
        expect_error(SERVER_OK "max_body = 1T\n", "max_body", "[server] max_body: not a size");
        expect_error(SERVER_OK "page_size = 100001\n", "page_size",
                     "[server] page_size: out of range");
        expect_error(SERVER_OK "[connector c]\nbackend = sql\nmax_parallel = 65\n", "max_parallel",
                     "[connector c] max_parallel: out of range (1 to 64)");
        expect_error(SERVER_OK "[connector c]\nbackend = sql\nmax_parallel = 0\n", "max_parallel",
                     "[connector c] max_parallel: out of range (1 to 64)");
        expect_error(SERVER_OK "[connector c]\nbackend = ../evil\n", "backend = ../",
                     "[connector c] backend: a plug-in name");
        expect_error(SERVER_OK "[connector c]\nbackend = sql\npoll_interval = 1.5s\n",
                     "poll_interval", "[connector c] poll_interval: not a duration");
        /* Missing required keys are placed at their section. */
        expect_error(SERVER_OK "\n[connector c]\nuri = x\n", "[connector c]",
                     "[connector c] backend: required key missing (or set "
                     "CONNECTOR_AGENT_CONNECTOR_C_BACKEND)");
        expect_error(SERVER_OK "[connector c]\nbackend = sql\n[resource-type r]\ntable = t\n",
                     "[resource-type r]", "[resource-type r] connector: required key missing");
        expect_error("[agent]\n\n[server]\nurl = https://x.example.com\nclient_secret_file = "
                     "@DIR@/secret\n",
                     "[server]", "[server] client_id: required key missing");
        expect_error("[server]\nurl = https://x.example.com\nclient_id =\nclient_secret_file = "
                     "@DIR@/secret\n",
                     "client_id =", "[server] client_id: empty value");
        /* Structure. */
        expect_error(SERVER_OK "[agent]\nlog_level = info\nlog_level = debug\n",
                     "log_level = debug", "[agent] log_level: duplicate key (first at line 6)");
        expect_error("[agent]\n" SERVER_OK "[agent] ; again\n", "[agent] ;",
                     "[agent]: duplicate section (first at line 1)");
        expect_error(SERVER_OK "[backend x]\nfoo = bar\n", "[backend x]",
                     "[backend]: unknown section");
        expect_error(SERVER_OK "[agent x]\n", "[agent x]", "[agent]: this section takes no name");
        expect_error(SERVER_OK "[connector]\n", "[connector]", "[connector]: a name is required");
        expect_error(SERVER_OK "[connector a b]\n", "[connector a b]", "[connector]: invalid name");
        expect_error(SERVER_OK "[connector x\n", "[connector x", "section header without ']'");
        expect_error("orphan = 1\n" SERVER_OK, "orphan", "orphan: key outside any section");
        expect_error(SERVER_OK "just words\n", "just words",
                     "expected 'key = value' or '[section]'");
        expect_error(SERVER_OK "tls = yes\n", "tls = yes", "[server] tls: unknown key");
        expect_error(SERVER_OK "[connector c]\nbackend = sql\n[resource-type r]\nconnector = d\n",
                     "connector = d",
                     "[resource-type r] connector: unknown connector: no [connector NAME]");
}

static void test_unknown_key(void **state)
{
        expect_error("[agent]\nheartbeat = 30s\n" SERVER_OK,
                     "heartbeat =", "[agent] heartbeat: unknown key");
}

static void test_duplicate_section(void **state)
{
        static const char text[] = SERVER_OK "[connector c]\nbackend = sql\n"
                                             "\n[connector c]\nbackend = ldap\n";
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};
        assert_int_equal(load(text, NULL, &cfg, &d), -EINVAL);
        assert_diag(&d, "%s:8: [connector c]: duplicate section (first at line 5)", conf);
        assert_int_equal(d.count, 1);
        config_diag_clear(&d);
}

static void test_resource_type_unknown_connector(void **state)
{
        static const char text[] = SERVER_OK "[connector ldap-main]\nbackend = ldap\n"
                                             "[resource-type User]\nconnector = ldap-mian\n";
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};
        assert_int_equal(load(text, NULL, &cfg, &d), -EINVAL);
        assert_null(cfg);
        assert_diag(&d,
                    "%s:8: [resource-type User] connector: unknown connector: no [connector NAME] "
                    "section has this name",
                    conf);
        config_diag_clear(&d);
}

static void test_many_errors_together(void **state)
{
        static const char text[] = "[agent]\n"                      /* 1 */
                                   "heartbeat_interval = soon\n"    /* 2 */
                                   "colour = blue\n"                /* 3 */
                                   "[server]\n"                     /* 4 */
                                   "url = http://idm.example.com\n" /* 5 */
                                   "client_secret = " SECRET "\n"   /* 6 */
                                   "[connector c]\n"                /* 7 */
                                   "max_parallel = 100\n"           /* 8 */
                                   "[resource-type r]\n"            /* 9 */
                                   "connector = nowhere\n"          /* 10 */
                                   "[server]\n"                     /* 11 */
                                   "bad line\n";                    /* 12 */
        struct ca_config *cfg = (struct ca_config *)1;
        struct ca_config_diag d = {0};
        assert_int_equal(load(text, NULL, &cfg, &d), -EINVAL);
        assert_null(cfg);
        assert_diag(&d, "%s:2: [agent] heartbeat_interval: not a duration", conf);
        assert_diag(&d, "%s:3: [agent] colour: unknown key", conf);
        assert_diag(&d, "%s:5: [server] url: plain http:// is allowed only to a loopback", conf);
        assert_diag(&d, "%s:6: [server] client_secret: a secret is never written", conf);
        assert_diag(&d, "%s:4: [server] client_id: required key missing", conf);
        assert_diag(&d, "%s:7: [connector c] backend: required key missing", conf);
        assert_diag(&d, "%s:8: [connector c] max_parallel: out of range", conf);
        assert_diag(&d, "%s:10: [resource-type r] connector: unknown connector", conf);
        assert_diag(&d, "%s:11: [server]: duplicate section (first at line 4)", conf);
        assert_diag(&d, "%s:12: expected 'key = value'", conf);
        assert_int_equal(d.count, 10);
        assert_no_secret(&d);
        config_diag_clear(&d);
        assert_int_equal(d.count, 0);
        assert_null(d.lines);
}

static void test_env_overrides_file(void **state)
{
        static const char text[] = "[agent]\n"
                                   "heartbeat_interval = 10s\n"
                                   "log_level = info\n" SERVER_OK "[connector ldap-main]\n"
                                   "backend = ldap\n"
                                   "uri = ldap://old\n"
                                   "bind-dn = cn=old\n"
                                   "[resource-type User]\n"
                                   "connector = ldap-main\n";
        char *env[] = {
            "PATH=/usr/bin",
            "CONNECTOR_AGENT_AGENT_HEARTBEAT_INTERVAL=2m",
            "CONNECTOR_AGENT_AGENT_HEARTBEAT_INTERVAL=3m", /* the first one wins */
            "CONNECTOR_AGENT_SERVER_URL=https://other.example.com",
            "CONNECTOR_AGENT_SERVER_PAGE_SIZE=42",
            "CONNECTOR_AGENT_CONNECTOR_LDAP_MAIN_URI=ldaps://new",
            "CONNECTOR_AGENT_CONNECTOR_LDAP_MAIN_BIND_DN=cn=new",
            "CONNECTOR_AGENT_CONNECTOR_LDAP_MAIN_MAX_PARALLEL=2",
            "CONNECTOR_AGENT_CONNECTOR_LDAP_MAIN_BIND_PASSWORD_FILE=/run/pw",
            "CONNECTOR_AGENT_RESOURCE_TYPE_USER_BASE_DN=ou=people",
            "CONNECTOR_AGENT_SOMETHING_ELSE=ignored",
            NULL,
        };
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};
        int r = load(text, env, &cfg, &d);
        if (r)
                dump(&d);
        assert_int_equal(r, 0);
        assert_int_equal(cfg->agent.heartbeat_interval_ms, 120000);
        assert_string_equal(cfg->agent.log_level, "info");
        assert_string_equal(cfg->server.url, "https://other.example.com");
        assert_string_equal(cfg->server.token_url, "https://other.example.com/connect/token");
        assert_int_equal(cfg->server.page_size, 42);
        const struct ca_config_connector *c = config_find_connector(cfg, "ldap-main");
        assert_int_equal(c->max_parallel, 2);
        assert_string_equal(config_setting(&c->settings, "uri"), "ldaps://new");
        assert_int_equal(config_setting_line(&c->settings, "uri"), 0);
        /* The file's spelling of a key is kept when its variable overrides it. */
        assert_string_equal(config_setting(&c->settings, "bind-dn"), "cn=new");
        assert_null(config_setting(&c->settings, "bind_dn"));
        assert_string_equal(config_setting(&c->settings, "bind_password_file"), "/run/pw");
        assert_string_equal(config_setting(&c->settings, "max_parallel"), "2");
        assert_int_equal(config_setting_line(&c->settings, "backend"), line_of(text, "backend"));
        const struct ca_config_resource_type *rt = config_find_resource_type(cfg, "User");
        assert_string_equal(config_setting(&rt->settings, "base_dn"), "ou=people");
        config_free(cfg);
}

static void test_env_errors(void **state)
{
        char *env[] = {
            "CONNECTOR_AGENT_AGENT_HEARTBEAT_INTERVAL=often",
            "CONNECTOR_AGENT_AGENT_COLOUR=blue",
            "CONNECTOR_AGENT_SERVER_URL=http://idm.example.com",
            "CONNECTOR_AGENT_CONNECTOR_NOPE_URI=ldap://x",
            NULL,
        };
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};
        assert_int_equal(load(SERVER_OK, env, &cfg, &d), -EINVAL);
        assert_diag(&d, "environment CONNECTOR_AGENT_AGENT_HEARTBEAT_INTERVAL: not a duration");
        assert_diag(&d, "environment CONNECTOR_AGENT_AGENT_COLOUR: no such key in [agent]");
        assert_diag(&d, "environment CONNECTOR_AGENT_SERVER_URL: plain http:// is allowed only");
        assert_diag(&d, "environment CONNECTOR_AGENT_CONNECTOR_NOPE_URI: names no [connector");
        assert_int_equal(d.count, 4);
        config_diag_clear(&d);
}

static char *const env_only[] = {
    "CONNECTOR_AGENT_CONNECTORS=ldap-main, db",
    "CONNECTOR_AGENT_RESOURCE_TYPES=User",
    "CONNECTOR_AGENT_SERVER_URL=http://127.0.0.1:8080",
    "CONNECTOR_AGENT_SERVER_CLIENT_ID=Job@idm",
    "CONNECTOR_AGENT_SERVER_CLIENT_SECRET=" SECRET,
    "CONNECTOR_AGENT_AGENT_IDENTIFIER=container-1",
    "CONNECTOR_AGENT_CONNECTOR_LDAP_MAIN_BACKEND=ldap",
    "CONNECTOR_AGENT_CONNECTOR_LDAP_MAIN_URI=ldap://ldap:389",
    "CONNECTOR_AGENT_CONNECTOR_DB_BACKEND=sql",
    "CONNECTOR_AGENT_CONNECTOR_DB_DRIVER=sqlite",
    "CONNECTOR_AGENT_RESOURCE_TYPE_USER_CONNECTOR=db",
    "CONNECTOR_AGENT_RESOURCE_TYPE_USER_TABLE=users",
    NULL,
};

static void check_env_only(const struct ca_config *cfg)
{
        assert_null(cfg->path);
        assert_string_equal(cfg->agent.identifier, "container-1");
        assert_string_equal(cfg->server.url, "http://127.0.0.1:8080");
        assert_string_equal(cfg->server.client_id, "Job@idm");
        assert_string_equal(cfg->server.client_secret, SECRET);
        assert_int_equal(cfg->connector_count, 2);
        const struct ca_config_connector *c = config_find_connector(cfg, "ldap-main");
        assert_non_null(c);
        assert_string_equal(c->backend, "ldap");
        assert_int_equal(c->line, 0);
        assert_string_equal(config_setting(&c->settings, "uri"), "ldap://ldap:389");
        c = config_find_connector(cfg, "db");
        assert_non_null(c);
        assert_string_equal(config_setting(&c->settings, "driver"), "sqlite");
        assert_int_equal(c->settings.count, 2);
        const struct ca_config_resource_type *rt = config_find_resource_type(cfg, "User");
        assert_non_null(rt);
        assert_string_equal(rt->connector, "db");
        assert_string_equal(config_setting(&rt->settings, "table"), "users");
}

static void test_env_only(void **state)
{
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};
        int r = config_load(NULL, env_only, &cfg, &d);
        if (r)
                dump(&d);
        assert_int_equal(r, 0);
        check_env_only(cfg);
        config_free(cfg);

        /* A path to no file is fine when the environment declares the connectors. */
        assert_int_equal(config_load(conf, env_only, &cfg, &d), 0);
        check_env_only(cfg);
        config_free(cfg);
        assert_int_equal(d.count, 0);
}

static void test_env_only_errors(void **state)
{
        char *env[] = {"CONNECTOR_AGENT_CONNECTORS=a,b c", "CONNECTOR_AGENT_CONNECTOR_A_URI=x",
                       NULL};
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};
        assert_int_equal(config_load(NULL, env, &cfg, &d), -EINVAL);
        assert_diag(&d, "environment CONNECTOR_AGENT_CONNECTORS: 'b c' is not a valid connector");
        assert_diag(&d, "environment CONNECTOR_AGENT_CONNECTORS: [connector a] backend: required "
                        "key missing (or set CONNECTOR_AGENT_CONNECTOR_A_BACKEND)");
        assert_diag(&d, "environment: [server] url: required key missing (or set "
                        "CONNECTOR_AGENT_SERVER_URL)");
        assert_diag(&d, "environment: [server] client_id: required key missing");
        assert_diag(&d, "environment: [server] client_secret: no secret");
        config_diag_clear(&d);

        /* A missing file with nothing else is an I/O error. */
        assert_int_equal(config_load(conf, NULL, &cfg, &d), -ENOENT);
        assert_null(cfg);
        assert_diag(&d, "%s: cannot open: ", conf);
        config_diag_clear(&d);
        /* Nobody reading the diagnostics is allowed too. */
        assert_int_equal(config_load(NULL, env, &cfg, NULL), -EINVAL);
        assert_null(cfg);
}

/* The one integer reader (whole numbers, and the digits of durations and sizes). */
static void test_uints(void **state)
{
        static const struct {
                const char *text;
                int r;
                uint64_t v;
        } cases[] = {
            {"0", 0, 0},
            {"65535", 0, 65535},
            {"007", 0, 7},
            {"18446744073709551615", 0, UINT64_MAX},
            {"18446744073709551616", -EINVAL, 0},
            {"", -EINVAL, 0},
            {"+1", -EINVAL, 0},
            {"-1", -EINVAL, 0},
            {" 1", -EINVAL, 0},
            {"1 ", -EINVAL, 0},
            {"1s", -EINVAL, 0},
            {"0x10", -EINVAL, 0},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                uint64_t v = 42;
                int r = config_parse_uint(cases[i].text, &v);
                if (r != cases[i].r || (r == 0 && v != cases[i].v))
                        fail_msg("'%s': %d %" PRIu64, cases[i].text, r, v);
                if (r)
                        assert_int_equal(v, 42); /* untouched on failure */
        }
        uint64_t v;
        assert_int_equal(config_parse_uint(NULL, &v), -EINVAL);
}

static void test_durations(void **state)
{
        static const struct {
                const char *text;
                int r;
                uint64_t ms;
        } cases[] = {
            {"250ms", 0, 250},
            {"30s", 0, 30000},
            {"30", 0, 30000},
            {"0", 0, 0},
            {"5m", 0, 300000},
            {"2h", 0, 7200000},
            {"7d", 0, 604800000},
            {"18446744073709551615ms", 0, UINT64_MAX},
            {"18446744073709551616ms", -EINVAL, 0}, /* overflows while reading digits */
            {"18446744073709551615s", -ERANGE, 0},
            {"213503982335d", -ERANGE, 0},
            {"", -EINVAL, 0},
            {"s", -EINVAL, 0},
            {"-5s", -EINVAL, 0},
            {"+5s", -EINVAL, 0},
            {" 5s", -EINVAL, 0},
            {"5s ", -EINVAL, 0},
            {"5 s", -EINVAL, 0},
            {"1.5s", -EINVAL, 0},
            {"5S", -EINVAL, 0},
            {"5sec", -EINVAL, 0},
            {"5w", -EINVAL, 0},
            {"0x10", -EINVAL, 0},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                uint64_t ms = 12345;
                int r = config_parse_duration(cases[i].text, &ms);
                if (r != cases[i].r)
                        fail_msg("'%s': %d, expected %d", cases[i].text, r, cases[i].r);
                if (r == 0 && ms != cases[i].ms)
                        fail_msg("'%s': %llu ms", cases[i].text, (unsigned long long)ms);
        }
}

static void test_sizes(void **state)
{
        static const struct {
                const char *text;
                int r;
                size_t bytes;
        } cases[] = {
            {"512", 0, 512},
            {"64k", 0, 65536},
            {"64K", 0, 65536},
            {"16M", 0, 16777216},
            {"1G", 0, 1073741824},
            {"0", 0, 0},
            {"17179869183G", 0, (size_t)17179869183ULL << 30},
            {"17179869184G", -ERANGE, 0},
            {"99999999999999999999", -EINVAL, 0},
            {"", -EINVAL, 0},
            {"M", -EINVAL, 0},
            {"1T", -EINVAL, 0},
            {"1MB", -EINVAL, 0},
            {"1.5M", -EINVAL, 0},
            {"-1", -EINVAL, 0},
            {"1 M", -EINVAL, 0},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                size_t b = 12345;
                int r = config_parse_size(cases[i].text, &b);
                if (r != cases[i].r)
                        fail_msg("'%s': %d, expected %d", cases[i].text, r, cases[i].r);
                if (r == 0 && b != cases[i].bytes)
                        fail_msg("'%s': %zu bytes", cases[i].text, b);
        }
}

static void test_secret_modes(void **state)
{
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};

        assert_int_equal(load(SERVER_OK, NULL, &cfg, &d), 0);
        assert_string_equal(cfg->server.client_secret, SECRET);
        config_free(cfg);

        assert_int_equal(chmod(secret, 0644), 0);
        expect_error(SERVER_OK, "client_secret_file", "[server] client_secret_file: ");
        assert_int_equal(load(SERVER_OK, NULL, &cfg, &d), -EINVAL);
        assert_int_equal(d.count, 1);
        assert_non_null(strstr(d.lines[0], secret));
        assert_non_null(strstr(d.lines[0], "mode 0644"));
        config_diag_clear(&d);

        assert_int_equal(chmod(secret, 0620), 0);
        assert_int_equal(load(SERVER_OK, NULL, &cfg, &d), -EINVAL);
        assert_diag(&d, "%s:4: [server] client_secret_file: %s: mode 0620", conf, secret);
        assert_no_secret(&d);
        config_diag_clear(&d);
}

static void test_credentials_directory(void **state)
{
        static const char text[] = "[server]\n"
                                   "url = https://idm.example.com\n"
                                   "client_id = Job\n"
                                   "client_secret_credential = agent-secret\n";
        char creds[PATH_MAX], cred[PATH_MAX + 16], envvar[PATH_MAX + 32];
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};

        snprintf(creds, sizeof(creds), "%s/creds", dir);
        assert_int_equal(mkdir(creds, 0700), 0);
        snprintf(cred, sizeof(cred), "%s/agent-secret", creds);
        write_file(cred, 0400, SECRET);
        snprintf(envvar, sizeof(envvar), "CREDENTIALS_DIRECTORY=%s", creds);
        char *env[] = {envvar, NULL};

        assert_int_equal(load(text, env, &cfg, &d), 0);
        assert_string_equal(cfg->server.client_secret, SECRET);
        config_free(cfg);

        /* Without $CREDENTIALS_DIRECTORY (the unit lacks LoadCredential=). */
        assert_int_equal(load(text, NULL, &cfg, &d), -EINVAL);
        assert_diag(&d, "%s:4: [server] client_secret_credential: CREDENTIALS_DIRECTORY is not set",
                    conf);
        config_diag_clear(&d);

        /* A name, never a path. */
        expect_error("[server]\nurl = https://idm.example.com\nclient_id = Job\n"
                     "client_secret_credential = ../secret\n",
                     "client_secret_credential", "[server] client_secret_credential: must be a");

        /* Only one source in the file. */
        expect_error("[server]\nurl = https://idm.example.com\nclient_id = Job\n"
                     "client_secret_file = @DIR@/secret\nclient_secret_credential = x\n",
                     "client_secret_credential", "[server] client_secret_credential: set only one");

        /* The environment's secret wins over the file's source. */
        char *env2[] = {"CONNECTOR_AGENT_SERVER_CLIENT_SECRET=from-env", NULL};
        assert_int_equal(load(SERVER_OK, env2, &cfg, &d), 0);
        assert_string_equal(cfg->server.client_secret, "from-env");
        config_free(cfg);

        /* A secret file passed as a variable (podman secret, type=env) ends in a newline:
         * one is dropped, as from a file. */
        char *env3[] = {"CONNECTOR_AGENT_SERVER_CLIENT_SECRET=from-env\n", NULL};
        assert_int_equal(load(SERVER_OK, env3, &cfg, &d), 0);
        assert_string_equal(cfg->server.client_secret, "from-env");
        config_free(cfg);

        /* Only one: anything else is a value on two lines, and the message names the
         * variable and what to do. */
        char *env4[] = {"CONNECTOR_AGENT_SERVER_CLIENT_SECRET=from-env\n\n", NULL};
        assert_int_equal(load(SERVER_OK, env4, &cfg, &d), -EINVAL);
        assert_diag(&d, "environment CONNECTOR_AGENT_SERVER_CLIENT_SECRET: the value has a line "
                        "break inside: an environment value must be one line");
        config_diag_clear(&d);
        char *env5[] = {"CONNECTOR_AGENT_SERVER_CLIENT_ID=Job\n", NULL};
        assert_int_equal(load(SERVER_OK, env5, &cfg, &d), -EINVAL);
        assert_diag(&d, "environment CONNECTOR_AGENT_SERVER_CLIENT_ID: the value has a line break");
        config_diag_clear(&d);
}

static void test_plain_secret_refused(void **state)
{
        expect_error("[server]\nurl = https://idm.example.com\nclient_id = Job\n"
                     "client_secret = " SECRET "\n",
                     "client_secret =",
                     "[server] client_secret: a secret is never written in the configuration "
                     "file: use client_secret_file, client_secret_credential or "
                     "CONNECTOR_AGENT_SERVER_CLIENT_SECRET");
}

/* The secret, wrong in every way we can think of, never shows in a diagnostic. */
static void test_no_secret_in_diagnostics(void **state)
{
        static const char *const files[] = {
            "[server]\nurl = https://idm.example.com\nclient_id = J\nclient_secret = " SECRET "\n",
            "[server]\nurl = https://idm.example.com\nclient_id = J\nclient_secret = " SECRET
            "\nclient_secret = " SECRET "\n",
            "[server]\nurl = https://idm.example.com\nclient_id = J\nclientsecret = " SECRET "\n",
            "[server]\nurl = https://idm.example.com\nclient_id = J\npassword = " SECRET "\n",
            "[server]\nurl = https://J:" SECRET "@idm.example.com\nclient_id = J\n",
            "[server]\nurl = http://J:" SECRET "@idm.example.com\nclient_id = J\n",
            "[server]\nurl = " SECRET "\nclient_id = J\n",
            "[server]\nurl = https://idm.example.com\nclient_id = J\nclient_secret_file = "
            "@DIR@/secret\nconnect_timeout = " SECRET "\n",
            "[agent]\nheartbeat_interval = " SECRET "\nlog_level = " SECRET "\n",
            "[agent]\n" SECRET "\n",
            "[server]\nurl = https://idm.example.com\nclient_id = J\nclient_secret_file = "
            "@DIR@/secret\n  " SECRET "\n",
            "[server]\nurl = https://idm.example.com\n  " SECRET "\nclient_id = J\n",
            "[server]\nurl = https://idm.example.com\nclient_id = J\nclient_secret_file = "
            "@DIR@/secret\nca_file = " SECRET "\n",
            "[agent]\nstate_dir = " SECRET "\nstatus_address = " SECRET "\nidentifier = a/" SECRET
            "\n",
            "[server]\nurl = https://idm.example.com\nclient_id = J\nclient_secret_file = "
            "@DIR@/secret\nca_file = @DIR@/secret\nclient_key = @DIR@/secret\n"
            "pinned_pubkey = " SECRET "\n",
            "[connector c]\nbackend = " SECRET "\nmax_parallel = " SECRET "\n",
            "[resource-type r]\nconnector = " SECRET "\n",
        };
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};
        char bad[PATH_MAX];

        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                assert_int_equal(load(files[i], NULL, &cfg, &d), -EINVAL);
                assert_true(d.count > 0);
                assert_no_secret(&d);
                config_diag_clear(&d);
        }

        /* A secret file that is wrong: too open, empty after its newline, with a NUL. */
        assert_int_equal(chmod(secret, 0666), 0);
        assert_int_equal(load(SERVER_OK, NULL, &cfg, &d), -EINVAL);
        assert_no_secret(&d);
        config_diag_clear(&d);
        snprintf(bad, sizeof(bad), "%s/nul", dir);
        int fd = open(bad, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_int_equal(write(fd, SECRET "\0" SECRET, sizeof(SECRET) * 2), sizeof(SECRET) * 2);
        close(fd);
        assert_int_equal(load("[server]\nurl = https://idm.example.com\nclient_id = J\n"
                              "client_secret_file = @DIR@/nul\n",
                              NULL, &cfg, &d),
                         -EINVAL);
        assert_no_secret(&d);
        config_diag_clear(&d);

        /* From the environment, with other problems around it. */
        char *env[] = {"CONNECTOR_AGENT_SERVER_CLIENT_SECRET=" SECRET,
                       "CONNECTOR_AGENT_SERVER_CONNECT_TIMEOUT=" SECRET,
                       "CONNECTOR_AGENT_SERVER_URL=http://" SECRET ".example.com",
                       "CONNECTOR_AGENT_SERVER_TYPO=" SECRET,
                       "CONNECTOR_AGENT_CONNECTORS=c",
                       "CONNECTOR_AGENT_CONNECTOR_C_MAX_PARALLEL=" SECRET,
                       "CONNECTOR_AGENT_CONNECTOR_NOPE_X=" SECRET,
                       NULL};
        assert_int_equal(load(SERVER_OK "client_secret = " SECRET "\n", env, &cfg, &d), -EINVAL);
        assert_true(d.count >= 6);
        assert_no_secret(&d);
        config_diag_clear(&d);
        char *env2[] = {"CONNECTOR_AGENT_SERVER_CLIENT_SECRET=", NULL};
        assert_int_equal(load(SERVER_OK, env2, &cfg, &d), -EINVAL);
        assert_diag(&d, "environment CONNECTOR_AGENT_SERVER_CLIENT_SECRET: empty secret");
        assert_no_secret(&d);
        config_diag_clear(&d);
}

static void test_http_loopback(void **state)
{
        static const char *const ok[] = {
            "https://idm.example.com", "HTTPS://idm.example.com:8443/base",
            "http://127.0.0.1",        "http://127.1.2.3:8080",
            "http://localhost:9/x",    "http://LOCALHOST",
            "http://[::1]:8080",       "https://[2001:db8::1]",
        };
        static const char *const refused[] = {
            "http://idm.example.com",
            "http://127.example.com",
            "http://128.0.0.1",
            "https://[::1]x",
            "https://h:",
            "http://[::2]",
            "http://0.0.0.0",
            "ftp://idm.example.com",
            "idm.example.com",
            "https://",
            "https://:443",
            "https://h:0",
            "https://h:65536",
            "https://h:80x",
            "https://h/a b",
            "https://h/?q=1",
            "https://u:p@h",
            "http://localhost.evil.com",
            "http://[::1",
        };
        char text[1024];
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};

        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                snprintf(text, sizeof(text),
                         "[server]\nurl = %s\nclient_id = J\nclient_secret_file = @DIR@/secret\n",
                         ok[i]);
                int r = load(text, NULL, &cfg, &d);
                if (r) {
                        dump(&d);
                        fail_msg("%s refused", ok[i]);
                }
                config_free(cfg);
        }
        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                snprintf(text, sizeof(text),
                         "[server]\nurl = %s\nclient_id = J\nclient_secret_file = @DIR@/secret\n",
                         refused[i]);
                if (load(text, NULL, &cfg, &d) != -EINVAL)
                        fail_msg("%s accepted", refused[i]);
                assert_diag(&d, "%s:2: [server] url: ", conf);
                assert_int_equal(d.count, 1);
                config_diag_clear(&d);
        }
        expect_error(
            "[server]\nurl = https://idm.example.com\ntoken_url = http://idm.example.com/t\n"
            "client_id = J\nclient_secret_file = @DIR@/secret\n",
            "token_url", "[server] token_url: plain http:// is allowed only to a loopback");
}

/* URLs are read by libcurl's parser, as the transfers will read them: an IPv4 address in
 * another notation is the address curl connects to, a host name curl refuses is refused
 * here (it used to pass until the first request), and the shapes curl tolerates but a
 * base URL must not have stay refused. */
static void test_url_as_curl_reads_it(void **state)
{
        static const char *const ok[] = {"http://127.1", "http://2130706433:8080/x",
                                         "http://[::1%25lo]:8080", "https://h:00443"};
        static const struct {
                const char *url, *why;
        } refused[] = {
            {"https://h%20x", "is not a valid URL ("}, /* then libcurl's words */
            {"https:///h", "has no host"},
            {"http:/h", "must start with https://"},
            {"https://h/?", "must not have a query or a fragment"},
            {"https://h/#", "must not have a query or a fragment"},
            {"https://@h", "must not carry credentials"},
            {"https://[::1]:0", "has an invalid port"},
            {"https://[::1]:", "has an invalid port"},
            {"https://[::g]", "not a valid IPv6 address between [ ]"},
            {"http://0x7f000001.example", "plain http:// is allowed only to a loopback host"},
        };
        char text[1024];
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};

        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                snprintf(text, sizeof(text),
                         "[server]\nurl = %s\nclient_id = J\nclient_secret_file = @DIR@/secret\n",
                         ok[i]);
                int r = load(text, NULL, &cfg, &d);
                if (r) {
                        dump(&d);
                        fail_msg("%s refused", ok[i]);
                }
                config_free(cfg);
        }
        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                snprintf(text, sizeof(text),
                         "[server]\nurl = %s\nclient_id = J\nclient_secret_file = @DIR@/secret\n",
                         refused[i].url);
                if (load(text, NULL, &cfg, &d) != -EINVAL)
                        fail_msg("%s accepted", refused[i].url);
                assert_diag(&d, "%s:2: [server] url: %s", conf, refused[i].why);
                assert_int_equal(d.count, 1);
                config_diag_clear(&d);
        }
}

static void test_lines_and_limits(void **state)
{
        /* Comments, a BOM, inline comments, ':' as separator, blank lines. */
        static const char text[] = "\xEF\xBB\xBF# comment\n"
                                   "; another\n"
                                   "[agent]\n"
                                   "  log_level : debug   ; inline\n"
                                   "\n" SERVER_OK "pinned_pubkey = sha256//A;sha256//B\n";
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};
        int r = load(text, NULL, &cfg, &d);
        if (r)
                dump(&d);
        assert_int_equal(r, 0);
        assert_string_equal(cfg->agent.log_level, "debug");
        assert_string_equal(cfg->server.pinned_pubkey, "sha256//A;sha256//B");
        config_free(cfg);

        /* A long value (beyond libinih's default 200 characters) is kept whole. */
        char *buf = malloc(3 * BIG);
        assert_non_null(buf);
        int n = snprintf(buf, 3 * BIG, SERVER_OK "[connector c]\nbackend = sql\nquery = ");
        memset(buf + n, 'q', 4000);
        snprintf(buf + n + 4000, 3 * BIG - (size_t)n - 4000, "\n");
        assert_int_equal(load(buf, NULL, &cfg, &d), 0);
        assert_int_equal(strlen(config_setting(&cfg->connectors[0].settings, "query")), 4000);
        config_free(cfg);

        /* A line beyond the limit is an error at its line, and parsing goes on. */
        n = snprintf(buf, 3 * BIG, SERVER_OK "[connector c]\nbackend = sql\nquery = ");
        memset(buf + n, 'q', BIG + 10);
        snprintf(buf + n + BIG + 10, 3 * BIG - (size_t)n - BIG - 10, "\nmax_parallel = 0\n");
        assert_int_equal(load(buf, NULL, &cfg, &d), -EINVAL);
        assert_diag(&d, "%s:7: line longer than 8192 characters", conf);
        assert_diag(&d, "%s:8: [connector c] max_parallel: out of range", conf);
        assert_int_equal(d.count, 2);
        config_diag_clear(&d);
        free(buf);

        /* A long resource-type identifier is not truncated (inih's own limit is 50). */
        static const char longid[] =
            SERVER_OK "[connector c]\nbackend = sql\n"
                      "[resource-type A_Very_Long_Resource_Type_Identifier_That_Goes_On_And_On]\n"
                      "connector = c\n";
        assert_int_equal(load(longid, NULL, &cfg, &d), 0);
        assert_non_null(config_find_resource_type(
            cfg, "A_Very_Long_Resource_Type_Identifier_That_Goes_On_And_On"));
        config_free(cfg);
}

static void test_env_name(void **state)
{
        char buf[128];
        assert_int_equal(config_env_name("connector ldap-main", "uri", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "CONNECTOR_AGENT_CONNECTOR_LDAP_MAIN_URI");
        assert_int_equal(config_env_name("server", "client_secret", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "CONNECTOR_AGENT_SERVER_CLIENT_SECRET");
        assert_int_equal(config_env_name("resource-type AD.User", "base-dn", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "CONNECTOR_AGENT_RESOURCE_TYPE_AD_USER_BASE_DN");
        assert_int_equal(config_env_name("connector db", NULL, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "CONNECTOR_AGENT_CONNECTOR_DB_");
        assert_int_equal(config_env_name("agent", "state_dir", buf, 10), -ENAMETOOLONG);
        assert_int_equal(config_env_name("agent", "state_dir", buf, 31), -ENAMETOOLONG);
        assert_int_equal(config_env_name("agent", "state_dir", buf, 32), 0);
        assert_string_equal(buf, "CONNECTOR_AGENT_AGENT_STATE_DIR");
}

static void test_env_name_clash(void **state)
{
        expect_error(
            SERVER_OK "[connector a-b]\nbackend = sql\n[connector a_b]\nbackend = sql\n",
            "[connector a_b]",
            "[connector a_b]: its environment variables (CONNECTOR_AGENT_CONNECTOR_A_B_...) "
            "are those of [connector a-b]");
}

static void test_free_null(void **state)
{
        struct ca_config_diag d = {0};
        config_free(NULL);
        config_diag_clear(NULL);
        config_diag_clear(&d);
        secret_free(NULL);
        assert_null(config_setting(NULL, "x"));
        assert_null(config_find_connector(NULL, "x"));
        assert_null(config_find_resource_type(NULL, "x"));
}

/* The journal's keys: a driver name, a connection for postgresql, one password source,
 * and never a password in the connection string (config show prints it). */
static void test_journal_keys(void **state)
{
        expect_error("[agent]\njournal = mysql\n" SERVER_OK, "journal = mysql",
                     "[agent] journal: must be sqlite or postgresql");
        expect_error("[agent]\njournal = postgresql\n" SERVER_OK, "[agent]",
                     "[agent] journal_connection: journal = postgresql needs journal_connection");
        expect_error("[agent]\njournal = postgresql\njournal_connection = host=db "
                     "password=hunter2\n" SERVER_OK,
                     "journal_connection", "[agent] journal_connection: must not carry a password");
        expect_error("[agent]\njournal = postgresql\njournal_connection = "
                     "postgresql://agent:hunter2@db/ca\n" SERVER_OK,
                     "journal_connection", "[agent] journal_connection: must not carry a password");
        expect_error("[agent]\njournal = postgresql\njournal_connection = host=db\n"
                     "journal_password_file = /etc/p\njournal_password_credential = p\n" SERVER_OK,
                     "journal_password_credential",
                     "[agent] journal_password_credential: set only one");
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};
        assert_int_equal(load("[agent]\njournal = postgresql\njournal_connection = "
                              "postgresql://agent@db:5432/ca?sslmode=verify-full\n"
                              "journal_password_credential = journal-password\n" SERVER_OK,
                              NULL, &cfg, &d),
                         0);
        assert_string_equal(cfg->agent.journal, "postgresql");
        assert_string_equal(cfg->agent.journal_connection,
                            "postgresql://agent@db:5432/ca?sslmode=verify-full");
        assert_string_equal(cfg->agent.journal_password_credential, "journal-password");
        assert_null(cfg->agent.journal_password_file);
        config_free(cfg);
        config_diag_clear(&d);
        cfg = NULL;
        assert_int_equal(load(SERVER_OK, NULL, &cfg, &d), 0);
        assert_string_equal(cfg->agent.journal, "sqlite");
        config_free(cfg);
        config_diag_clear(&d);
}

/* packaging/agent.conf.example documents every key of every table and loads. */
static void test_example_file(void **state)
{
        const char *src = getenv("CA_TEST_SOURCE_DIR");
        char path[PATH_MAX], *text;
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};
        const struct ca_keyword_table *tables[] = {&ca_config_agent_keys, &ca_config_server_keys,
                                                   &ca_config_connector_keys,
                                                   &ca_config_resource_type_keys};

        assert_non_null(src);
        snprintf(path, sizeof(path), "%s/packaging/agent.conf.example", src);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        text = calloc(1, 256 * 1024);
        assert_non_null(text);
        assert_true(fread(text, 1, 256 * 1024 - 1, f) > 0);
        fclose(f);
        for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
                for (size_t i = 0; i < tables[t]->count; i++) {
                        char want[128];
                        const struct ca_keyword *kw = &tables[t]->keys[i];
                        snprintf(want, sizeof(want), "\n%s = ", kw->name);
                        char want2[128];
                        snprintf(want2, sizeof(want2), "\n#%s = ", kw->name);
                        if (!strstr(text, want) && !strstr(text, want2))
                                fail_msg("[%s] %s is not in the example", tables[t]->section,
                                         kw->name);
                        /* A documented default matches the table's. */
                        if (kw->def && kw->type != CA_KEY_STRING) {
                                char line[160];
                                snprintf(line, sizeof(line), "\n#%s = %s\n", kw->name, kw->def);
                                if (!strstr(text, line))
                                        fail_msg("[%s] %s: the example does not show default %s",
                                                 tables[t]->section, kw->name, kw->def);
                        }
                }
        }
        free(text);

        char *env[] = {"CONNECTOR_AGENT_SERVER_CLIENT_SECRET=" SECRET, NULL};
        int r = config_load(path, env, &cfg, &d);
        if (r)
                dump(&d);
        assert_int_equal(r, 0);
        const struct ca_config_connector *c = config_find_connector(cfg, "db");
        assert_non_null(c);
        assert_string_equal(c->backend, "sql");
        assert_string_equal(config_setting(&c->settings, "driver"), "sqlite");
        config_free(cfg);
}

/* A reload names each key that waits for a restart, from the keyword table, and none
 * of those that apply at once. */
static void test_restart_keys(void **state)
{
        static const char before[] = SERVER_OK "[agent]\nlog_level = info\nstatus_port = 0\n"
                                               "[connector c]\nbackend = file\nmax_parallel = 4\n"
                                               "poll_interval = 30s\n";
        static const char after[] = "[server]\nurl = https://other.example.com\n"
                                    "client_id = Job@idm.example.com\n"
                                    "client_secret_file = @DIR@/secret\n"
                                    "[agent]\nlog_level = debug\nstatus_port = 9187\n"
                                    "[connector c]\nbackend = file\nmax_parallel = 8\n"
                                    "poll_interval = 5s\n";
        struct ca_config *a = NULL, *b = NULL;
        struct ca_config_diag d = {0};
        char why[256] = "";
        assert_int_equal(load(before, NULL, &a, &d), 0);
        assert_int_equal(load(after, NULL, &b, &d), 0);
        /* token_url follows url when not set, so it changed too. */
        assert_int_equal(config_changed_keys(a, b, true, why, sizeof(why)), 4);
        assert_string_equal(why, "[server] url, [server] token_url, [agent] status_port, "
                                 "[connector c] max_parallel");
        why[0] = '\0';
        assert_int_equal(config_changed_keys(a, a, false, why, sizeof(why)), 0);
        assert_string_equal(why, "");
        /* Truncated, never overrun. */
        char small[12] = "";
        assert_int_equal(config_changed_keys(a, b, true, small, sizeof(small)), 4);
        assert_true(strlen(small) < sizeof(small));
        /* Everything that changed, for "nothing changed": the live keys too. */
        why[0] = '\0';
        assert_int_equal(config_changed_keys(a, b, false, why, sizeof(why)), 6);
        assert_string_equal(why, "[server] url, [server] token_url, [agent] log_level, "
                                 "[agent] status_port, [connector c] poll_interval, "
                                 "[connector c] max_parallel");
        config_free(b);

        /* A back-end setting waits; a mapping applies at once but is a change. */
        b = NULL;
        assert_int_equal(load(SERVER_OK "[agent]\nlog_level = info\nstatus_port = 0\n"
                                        "[connector c]\nbackend = file\nmax_parallel = 4\n"
                                        "poll_interval = 30s\ndirectory = /x\n"
                                        "[resource-type T]\nconnector = c\n",
                              NULL, &b, &d),
                         0);
        why[0] = '\0';
        assert_int_equal(config_changed_keys(a, b, true, why, sizeof(why)), 1);
        assert_string_equal(why, "[connector c] back-end settings");
        why[0] = '\0';
        assert_int_equal(config_changed_keys(a, b, false, why, sizeof(why)), 2);
        assert_string_equal(why, "[connector c] back-end settings, resource-type mappings");
        config_free(a);
        config_free(b);
}

/* The reader's dialect (libinih's): comments, inline " ;" comments, ':' as separator,
 * blanks (isspace) around names and values, continuation lines, and every error once,
 * at its own line. */
static void test_reader_dialect(void **state)
{
        static const char text[] = "\xEF\xBB\xBF; a BOM, then a comment\n" /* 1 */
                                   "# another\n"                           /* 2 */
            SERVER_OK                                                      /* 3-6 */
                                   "[connector c] ; trailing words\n"      /* 7 */
                                   "backend: sql\n"                        /* 8 */
                                   "query =\n"                             /* 9 */
                                   "  SELECT a;b ; not this\n"             /* 10 */
                                   "\t\n"                                  /* 11: blank */
                                   "\v FROM t\r\n"                         /* 12 */
                                   "  ; an indented comment\n"             /* 13 */
                                   "odd key \t=\t  v=w:x \f\n";            /* 14 */
        struct ca_config *cfg = NULL;
        struct ca_config_diag d = {0};
        int r = load(text, NULL, &cfg, &d);
        if (r)
                dump(&d);
        assert_int_equal(r, 0);
        const struct ca_settings *st = &cfg->connectors[0].settings;
        assert_string_equal(cfg->connectors[0].backend, "sql");
        assert_string_equal(config_setting(st, "query"), "SELECT a;b\nFROM t");
        assert_int_equal(config_setting_line(st, "query"), 9);
        assert_string_equal(config_setting(st, "odd key"), "v=w:x");
        config_free(cfg);

        /* "[agent ;x]" was one problem reported twice (the header's own, and libinih's
         * "syntax error" for the same line): now once. */
        assert_int_equal(load(SERVER_OK "[agent ;x]\n", NULL, &cfg, &d), -EINVAL);
        assert_diag(&d, "%s:5: [agent]: this section takes no name", conf);
        assert_int_equal(d.count, 1);
        config_diag_clear(&d);

        /* A line indented with a form feed after a key continues it, as libinih read it;
         * it used to be filed under the previous key's name ("duplicate key"). */
        assert_int_equal(load(SERVER_OK "[agent]\nlog_level = info\n\f k = v\n", NULL, &cfg, &d),
                         -EINVAL);
        assert_diag(&d, "%s:6: [agent] log_level: continues on an indented line", conf);
        assert_int_equal(d.count, 1);
        config_diag_clear(&d);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        const struct CMUnitTest tests[] = {
            T(test_full_file),
            T(test_defaults),
            T(test_error_lines),
            T(test_unknown_key),
            T(test_duplicate_section),
            T(test_resource_type_unknown_connector),
            T(test_many_errors_together),
            T(test_env_overrides_file),
            T(test_env_errors),
            T(test_env_only),
            T(test_env_only_errors),
            cmocka_unit_test(test_durations),
            cmocka_unit_test(test_sizes),
            cmocka_unit_test(test_uints),
            T(test_secret_modes),
            T(test_credentials_directory),
            T(test_plain_secret_refused),
            T(test_no_secret_in_diagnostics),
            T(test_http_loopback),
            T(test_url_as_curl_reads_it),
            T(test_lines_and_limits),
            T(test_reader_dialect),
            cmocka_unit_test(test_env_name),
            T(test_env_name_clash),
            cmocka_unit_test(test_free_null),
            T(test_example_file),
            T(test_restart_keys),
            T(test_journal_keys),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
