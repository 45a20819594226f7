/* main: the command line. Parses options, loads and checks the configuration, and hands
 * over to the agent (or to an operator subcommand). Never forks: the service manager or
 * the container runtime supervises the process. Exit codes are in agent.h. */
#include <curl/curl.h>
#include <event2/thread.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "agent.h"
#include "doctor.h"
#include "healthcheck.h"
#include "log.h"

extern char **environ;

struct options {
        const char *config;
        enum agent_mode mode;
        int check_config;
        int allow_root;
        const char *log_level;
};

static void usage(FILE *out)
{
        fprintf(
            out,
            "Usage: connector-agent [OPTIONS]\n"
            "       connector-agent [OPTIONS] journal list [pending|unreported|all]\n"
            "       connector-agent [OPTIONS] journal resolve CONNECTOR KEY executed|errored "
            "MESSAGE\n"
            "       connector-agent [OPTIONS] doctor    diagnose the path to the server and "
            "targets\n"
            "       connector-agent [OPTIONS] healthcheck [--ready]   ask the running agent's "
            "status endpoint\n"
            "\n"
            "Polls an identity server for provisioning orders, applies them to the configured\n"
            "targets and reports the results.\n"
            "\n"
            "Options:\n"
            "  -c, --config PATH     configuration file (default " CA_CONFIG_DEFAULT_PATH ")\n"
            "  -f, --foreground      run in the foreground (the default; the agent never forks)\n"
            "      --once            one poll cycle per connector, execute, report, exit\n"
            "      --dry-run         fetch orders and show what would be done; change nothing\n"
            "      --check-config    validate the configuration (and the back-ends) and exit\n"
            "  -l, --log-level LVL   error, warning, notice, info or debug\n"
            "      --allow-root      run as root (refused by default)\n"
            "  -V, --version         print the version and exit\n"
            "  -h, --help            print this help and exit\n"
            "\n"
            "Every configuration key can also be set by an environment variable\n"
            "CONNECTOR_AGENT_<SECTION>_<KEY>, e.g. CONNECTOR_AGENT_SERVER_URL.\n"
            "\n"
            "Exit codes: 0 success; 1 --once left an order errored or a result undelivered;\n"
            "2 usage; 3 invalid configuration; 4 journal unusable; 5 other start-up failure.\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
        enum { OPT_ONCE = 256, OPT_DRY_RUN, OPT_CHECK, OPT_ALLOW_ROOT };
        static const struct option longopts[] = {
            {"config", required_argument, NULL, 'c'},
            {"foreground", no_argument, NULL, 'f'},
            {"once", no_argument, NULL, OPT_ONCE},
            {"dry-run", no_argument, NULL, OPT_DRY_RUN},
            {"check-config", no_argument, NULL, OPT_CHECK},
            {"log-level", required_argument, NULL, 'l'},
            {"allow-root", no_argument, NULL, OPT_ALLOW_ROOT},
            {"version", no_argument, NULL, 'V'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        int ch;
        /* '+': stop at the first non-option, the subcommand. */
        while ((ch = getopt_long(argc, argv, "+c:fl:Vh", longopts, NULL)) != -1) {
                switch (ch) {
                case 'c':
                        o->config = optarg;
                        break;
                case 'f':
                        break;
                case OPT_ONCE:
                        o->mode = AGENT_ONCE;
                        break;
                case OPT_DRY_RUN:
                        o->mode = AGENT_DRY_RUN;
                        break;
                case OPT_CHECK:
                        o->check_config = 1;
                        break;
                case OPT_ALLOW_ROOT:
                        o->allow_root = 1;
                        break;
                case 'l':
                        o->log_level = optarg;
                        break;
                case 'V':
                        printf("connector-agent %s (back-end interface %u.%u)\n", CA_VERSION,
                               CA_BACKEND_ABI_MAJOR, CA_BACKEND_ABI_MINOR);
                        exit(EXIT_OK);
                case 'h':
                        usage(stdout);
                        exit(EXIT_OK);
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        }
        return 0;
}

static int load_config(const struct options *o, struct ca_config **cfg)
{
        struct ca_config_diag diag = {0};
        const char *path = o->config ? o->config : CA_CONFIG_DEFAULT_PATH;
        /* A container may be configured by the environment alone. */
        if (!o->config && access(path, F_OK) != 0 && getenv("CONNECTOR_AGENT_SERVER_URL"))
                path = NULL;
        int rc = config_load(path, environ, cfg, &diag);
        if (rc == 0 && agent_check_backends(*cfg, &diag) < 0) {
                config_free(*cfg);
                *cfg = NULL;
                rc = -EINVAL;
        }
        if (rc < 0) {
                fprintf(stderr, "connector-agent: configuration %s is not valid:\n",
                        path ? path : "(environment)");
                for (size_t i = 0; i < diag.count; i++)
                        fprintf(stderr, "  %s\n", diag.lines[i]);
                if (diag.count == 0)
                        fprintf(stderr, "  %s\n", strerror(-rc));
        }
        config_diag_clear(&diag);
        return rc;
}

static int run_journal_command(struct ca_config *cfg, int argc, char **argv)
{
        struct ca_error err = {0};
        struct journal *j = NULL;
        char path[4096];
        snprintf(path, sizeof(path), "%s/journal.db", cfg->agent.state_dir);
        if (argc < 1) {
                usage(stderr);
                return EXIT_USAGE;
        }
        if (journal_open(path, 1, &j, &err) < 0) {
                fprintf(stderr, "connector-agent: %s\n", err.msg);
                return EXIT_JOURNAL;
        }
        int rc;
        if (strcmp(argv[0], "list") == 0 && argc <= 2) {
                rc = journal_list(j, argc == 2 ? argv[1] : "all", &err);
        } else if (strcmp(argv[0], "resolve") == 0 && argc == 5) {
                enum ca_result_state state;
                if (strcmp(argv[3], "executed") == 0)
                        state = CA_RESULT_EXECUTED;
                else if (strcmp(argv[3], "errored") == 0)
                        state = CA_RESULT_ERRORED;
                else {
                        journal_close(j);
                        usage(stderr);
                        return EXIT_USAGE;
                }
                rc = journal_resolve(j, argv[1], argv[2], state, argv[4], &err);
                if (rc == 0)
                        rc = journal_commit(j, &err);
                if (rc == 0)
                        printf(
                            "%s %s resolved as %s; the result is sent at the agent's next start\n",
                            argv[1], argv[2], argv[3]);
        } else {
                journal_close(j);
                usage(stderr);
                return EXIT_USAGE;
        }
        journal_close(j);
        if (rc < 0) {
                fprintf(stderr, "connector-agent: %s\n", err.msg);
                return EXIT_RUNTIME;
        }
        return EXIT_OK;
}

/* Secrets live in this process's memory: no core file of ours may carry them. */
static void protect_process(void)
{
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
        struct options o = {0};
        if (parse_options(argc, argv, &o) < 0)
                return EXIT_USAGE;
        protect_process();
        log_init(CA_LOG_AUTO, CA_LOG_INFO);

        struct ca_config *cfg = NULL;
        if (load_config(&o, &cfg) < 0)
                return EXIT_CONFIG;
        enum ca_log_level level;
        const char *lvl = o.log_level ? o.log_level : cfg->agent.log_level;
        if (log_level_parse(lvl, &level) < 0) {
                fprintf(stderr, "connector-agent: unknown log level %s\n", lvl);
                config_free(cfg);
                return EXIT_USAGE;
        }
        log_set_level(level);
        if (o.check_config) {
                printf("configuration %s is valid: %zu connector(s), %zu resource type(s)\n",
                       cfg->path ? cfg->path : "(environment)", cfg->connector_count,
                       cfg->resource_type_count);
                config_free(cfg);
                return EXIT_OK;
        }
        if (geteuid() == 0 && !o.allow_root && !cfg->agent.allow_root) {
                fprintf(stderr,
                        "connector-agent: refusing to run as root: run it as its own user "
                        "(the service does), or pass --allow-root / set allow_root = yes\n");
                config_free(cfg);
                return EXIT_USAGE;
        }
        if (optind < argc) {
                int rc = EXIT_USAGE;
                if (strcmp(argv[optind], "journal") == 0)
                        rc = run_journal_command(cfg, argc - optind - 1, argv + optind + 1);
                else if (strcmp(argv[optind], "doctor") == 0)
                        rc = doctor_run(cfg);
                else if (strcmp(argv[optind], "healthcheck") == 0)
                        rc = healthcheck_run(cfg, optind + 1 < argc &&
                                                      strcmp(argv[optind + 1], "--ready") == 0);
                else
                        usage(stderr);
                config_free(cfg);
                return rc;
        }

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || evthread_use_pthreads() < 0) {
                fprintf(stderr, "connector-agent: cannot initialise libcurl or libevent threads\n");
                config_free(cfg);
                return EXIT_RUNTIME;
        }
        struct agent *a = NULL;
        struct ca_error err = {0};
        int rc = agent_new(cfg, cfg->path, o.mode, &a, &err);
        if (rc < 0) {
                log_error("cannot start: %s", err.msg);
                config_free(cfg);
                curl_global_cleanup();
                return rc == -EPROTO ? EXIT_JOURNAL : EXIT_RUNTIME;
        }
        int code = agent_run(a);
        agent_free(a); /* and the configuration, which it owns */
        curl_global_cleanup();
        libevent_global_shutdown();
        return code;
}
