/* SPDX-License-Identifier: Apache-2.0 */
/* main: ca-simserver's command line, start-up and orderly shutdown. Parses options,
 * loads or generates orders, listens, writes the port file once listening (tests wait
 * for it), runs the loop until SIGTERM or SIGINT, then frees everything so that a run
 * under AddressSanitizer reports no leak. */
#include "simserver.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"

#define SECRET_MAX 4096

enum {
        OPT_LISTEN = 256,
        OPT_PORT_FILE,
        OPT_CLIENT_ID,
        OPT_CLIENT_SECRET_FILE,
        OPT_SCOPE,
        OPT_API_VERSION,
        OPT_TOKEN_TTL,
        OPT_CONNECTORS,
        OPT_ORDERS,
        OPT_GENERATE,
        OPT_GENERATE_CONNECTOR,
        OPT_RESOURCE_TYPE,
        OPT_NO_IDS,
        OPT_PAGE_SIZE,
        OPT_LEASE,
        OPT_LATEST_VERSION,
        OPT_HEARTBEAT_INTERVAL,
        OPT_TLS_CERT,
        OPT_TLS_KEY,
        OPT_CLIENT_CA,
        OPT_MAX_BODY,
        OPT_CONTINUATION_BYTES,
        OPT_ASSIGNMENT_ORDER,
        OPT_QUIET,
        OPT_HELP,
};

static const struct option options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"client-id", required_argument, NULL, OPT_CLIENT_ID},
    {"client-secret-file", required_argument, NULL, OPT_CLIENT_SECRET_FILE},
    {"scope", required_argument, NULL, OPT_SCOPE},
    {"api-version", required_argument, NULL, OPT_API_VERSION},
    {"token-ttl", required_argument, NULL, OPT_TOKEN_TTL},
    {"connectors", required_argument, NULL, OPT_CONNECTORS},
    {"orders", required_argument, NULL, OPT_ORDERS},
    {"generate", required_argument, NULL, OPT_GENERATE},
    {"generate-connector", required_argument, NULL, OPT_GENERATE_CONNECTOR},
    {"resource-type", required_argument, NULL, OPT_RESOURCE_TYPE},
    {"no-ids", no_argument, NULL, OPT_NO_IDS},
    {"page-size", required_argument, NULL, OPT_PAGE_SIZE},
    {"lease", required_argument, NULL, OPT_LEASE},
    {"latest-version", required_argument, NULL, OPT_LATEST_VERSION},
    {"heartbeat-interval", required_argument, NULL, OPT_HEARTBEAT_INTERVAL},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"client-ca", required_argument, NULL, OPT_CLIENT_CA},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"continuation-bytes", required_argument, NULL, OPT_CONTINUATION_BYTES},
    {"assignment-order", no_argument, NULL, OPT_ASSIGNMENT_ORDER},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
        fputs("usage: ca-simserver --listen 127.0.0.1:PORT [--port-file F]\n"
              "  [--client-id ID] [--client-secret-file F] [--scope S] [--api-version V]\n"
              "  [--token-ttl S] [--connectors a,b] [--orders FILE]\n"
              "  [--generate N --generate-connector C [--resource-type T] [--no-ids]]\n"
              "  [--page-size N] [--lease S] [--latest-version V] [--heartbeat-interval S]\n"
              "  [--tls-cert F --tls-key F [--client-ca F]] [--max-body BYTES]\n"
              "  [--continuation-bytes N] [--assignment-order] [--quiet]\n",
              f);
}

static int parse_num(const char *opt, const char *v, long lo, long hi, long *out)
{
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno || !*v || *end || n < lo || n > hi) {
                fprintf(stderr, "ca-simserver: --%s wants a number in %ld..%ld, not '%s'\n", opt,
                        lo, hi, v);
                return -EINVAL;
        }
        *out = n;
        return 0;
}

static int read_secret(const char *path, char **out)
{
        char buf[SECRET_MAX + 1];
        FILE *f = fopen(path, "r");
        if (!f) {
                fprintf(stderr, "ca-simserver: %s: %s\n", path, strerror(errno));
                return -errno;
        }
        size_t n = fread(buf, 1, SECRET_MAX, f);
        fclose(f);
        buf[n] = '\0';
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                buf[--n] = '\0';
        *out = strdup(buf);
        return *out ? 0 : -ENOMEM;
}

static int parse_listen(struct sim_config *cfg, char *v, char *host, size_t hlen)
{
        char *colon = strrchr(v, ':');
        long port;
        if (!colon || colon == v) {
                fprintf(stderr, "ca-simserver: --listen wants HOST:PORT\n");
                return -EINVAL;
        }
        *colon = '\0';
        snprintf(host, hlen, "%s", v);
        if (parse_num("listen", colon + 1, 0, 65535, &port) < 0)
                return -EINVAL;
        cfg->listen_host = host;
        cfg->listen_port = (int)port;
        return 0;
}

static int write_port_file(const char *path, int port)
{
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        FILE *f = fopen(tmp, "w");
        if (!f)
                return -errno;
        fprintf(f, "%d\n", port);
        /* Renamed into place so a test never reads a half-written number. */
        if (fclose(f) != 0 || rename(tmp, path) != 0)
                return -errno;
        return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
        struct sim *s = arg;
        log_notice("signal %d: stopping", (int)sig);
        event_base_loopexit(s->base, NULL);
}

void sim_free(struct sim *s)
{
        http_teardown(s);
        faults_clear(s);
        store_free(s);
        tls_free(s);
        /* event_free(NULL) is not safe in libevent 2.1. */
        if (s->sig_term)
                event_free(s->sig_term);
        if (s->sig_int)
                event_free(s->sig_int);
        if (s->base)
                event_base_free(s->base);
        free(s->cfg.client_secret);
}

int main(int argc, char **argv)
{
        static struct sim sim; /* large (request ring): not on the stack */
        struct sim *s = &sim;
        struct ca_error err = {0};
        char host[256] = "127.0.0.1";
        char *connectors = NULL, *orders_file = NULL, *gen_connector = NULL;
        const char *resource_type = "User";
        long generate = 0, n;
        int with_ids = 1, rc = 1, opt;

        s->cfg = (struct sim_config){
            .listen_host = host,
            .listen_port = 0,
            .client_id = "agent@test",
            .scope = "usercube_api",
            .api_version = "1.0",
            .token_ttl = 3600,
            .page_size = 100,
            .lease_s = 30,
            .latest_version = "1.0.0",
            .heartbeat_interval_s = 30,
            .max_body = SIM_MAX_BODY_DEFAULT,
        };
        while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
                switch (opt) {
                case OPT_LISTEN:
                        if (parse_listen(&s->cfg, optarg, host, sizeof(host)) < 0)
                                goto out;
                        break;
                case OPT_PORT_FILE:
                        s->cfg.port_file = optarg;
                        break;
                case OPT_CLIENT_ID:
                        s->cfg.client_id = optarg;
                        break;
                case OPT_CLIENT_SECRET_FILE:
                        free(s->cfg.client_secret);
                        s->cfg.client_secret = NULL;
                        if (read_secret(optarg, &s->cfg.client_secret) < 0)
                                goto out;
                        break;
                case OPT_SCOPE:
                        s->cfg.scope = optarg;
                        break;
                case OPT_API_VERSION:
                        s->cfg.api_version = optarg;
                        break;
                case OPT_TOKEN_TTL:
                        if (parse_num("token-ttl", optarg, 1, 86400 * 365, &s->cfg.token_ttl) < 0)
                                goto out;
                        break;
                case OPT_CONNECTORS:
                        connectors = optarg;
                        break;
                case OPT_ORDERS:
                        orders_file = optarg;
                        break;
                case OPT_GENERATE:
                        if (parse_num("generate", optarg, 0, SIM_MAX_ORDERS, &generate) < 0)
                                goto out;
                        break;
                case OPT_GENERATE_CONNECTOR:
                        gen_connector = optarg;
                        break;
                case OPT_RESOURCE_TYPE:
                        resource_type = optarg;
                        break;
                case OPT_NO_IDS:
                        with_ids = 0;
                        break;
                case OPT_PAGE_SIZE:
                        if (parse_num("page-size", optarg, 1, SIM_MAX_PAGE_SIZE,
                                      &s->cfg.page_size) < 0)
                                goto out;
                        break;
                case OPT_LEASE:
                        if (parse_num("lease", optarg, 1, 86400, &s->cfg.lease_s) < 0)
                                goto out;
                        break;
                case OPT_LATEST_VERSION:
                        s->cfg.latest_version = optarg;
                        break;
                case OPT_HEARTBEAT_INTERVAL:
                        if (parse_num("heartbeat-interval", optarg, 1, 86400,
                                      &s->cfg.heartbeat_interval_s) < 0)
                                goto out;
                        break;
                case OPT_TLS_CERT:
                        s->cfg.tls_cert = optarg;
                        break;
                case OPT_TLS_KEY:
                        s->cfg.tls_key = optarg;
                        break;
                case OPT_CLIENT_CA:
                        s->cfg.client_ca = optarg;
                        break;
                case OPT_CONTINUATION_BYTES:
                        if (parse_num("continuation-bytes", optarg, 0, SIM_MAX_CONTINUATION_BYTES,
                                      &s->cfg.continuation_bytes) < 0)
                                goto out;
                        break;
                case OPT_MAX_BODY:
                        if (parse_num("max-body", optarg, 1024, 1L << 30, &n) < 0)
                                goto out;
                        s->cfg.max_body = n;
                        break;
                case OPT_ASSIGNMENT_ORDER:
                        s->cfg.assignment_order = 1;
                        break;
                case OPT_QUIET:
                        s->cfg.quiet = 1;
                        break;
                case OPT_HELP:
                        usage(stdout);
                        rc = 0;
                        goto out;
                default:
                        usage(stderr);
                        rc = 2;
                        goto out;
                }
        }
        if (optind < argc) {
                usage(stderr);
                rc = 2;
                goto out;
        }
        log_init(CA_LOG_STDERR, s->cfg.quiet ? CA_LOG_WARNING : CA_LOG_INFO);
        if (!s->cfg.client_secret && !(s->cfg.client_secret = strdup("test-secret")))
                goto out;
        signal(SIGPIPE, SIG_IGN);

        s->results = json_array();
        s->heartbeats = json_array();
        s->agents = json_object();
        s->violations = json_array();
        s->tokens = calloc(SIM_MAX_TOKENS, sizeof(*s->tokens));
        if (!s->results || !s->heartbeats || !s->agents || !s->violations || !s->tokens) {
                fprintf(stderr, "ca-simserver: out of memory\n");
                goto out;
        }
        if (connectors) {
                char *list = strdup(connectors), *save = NULL;
                for (char *c = list ? strtok_r(list, ",", &save) : NULL; c;
                     c = strtok_r(NULL, ",", &save)) {
                        if (*c && !store_connector(s, c, 1)) {
                                fprintf(stderr, "ca-simserver: cannot add connector '%s'\n", c);
                                free(list);
                                goto out;
                        }
                }
                free(list);
        }
        if (orders_file && store_load_orders_file(s, orders_file, &err) < 0) {
                fprintf(stderr, "ca-simserver: %s\n", err.msg);
                goto out;
        }
        if (generate > 0) {
                if (!gen_connector) {
                        fprintf(stderr, "ca-simserver: --generate needs --generate-connector\n");
                        goto out;
                }
                if (generate_orders(s, gen_connector, generate, resource_type, with_ids, &err) <
                    0) {
                        fprintf(stderr, "ca-simserver: %s\n", err.msg);
                        goto out;
                }
        }

        s->base = event_base_new();
        if (!s->base)
                goto out;
        if (tls_setup(s, &err) < 0 || http_setup(s, &err) < 0) {
                fprintf(stderr, "ca-simserver: %s\n", err.msg);
                goto out;
        }
        s->sig_term = evsignal_new(s->base, SIGTERM, on_signal, s);
        s->sig_int = evsignal_new(s->base, SIGINT, on_signal, s);
        if (!s->sig_term || !s->sig_int || evsignal_add(s->sig_term, NULL) < 0 ||
            evsignal_add(s->sig_int, NULL) < 0)
                goto out;
        if (s->cfg.port_file && write_port_file(s->cfg.port_file, s->bound_port) < 0) {
                fprintf(stderr, "ca-simserver: cannot write %s: %s\n", s->cfg.port_file,
                        strerror(errno));
                goto out;
        }
        log_notice("listening on %s://%s:%d (%zu orders, %zu connectors)",
                   s->ssl_ctx ? "https" : "http", s->cfg.listen_host, s->bound_port, s->norders,
                   s->nconnectors);
        event_base_dispatch(s->base);
        rc = 0;
out:
        sim_free(s);
        libevent_global_shutdown();
        return rc;
}
