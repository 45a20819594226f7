/* SPDX-License-Identifier: Apache-2.0 */
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

enum command {
        CMD_RUN = 0, /* no command: the daemon (or --once, --dry-run, --check-config) */
        CMD_JOURNAL_LIST,
        CMD_JOURNAL_RESOLVE,
        CMD_JOURNAL_RELEASE,
        CMD_JOURNAL_RESEND,
        CMD_DOCTOR,
        CMD_HEALTHCHECK,
        CMD_CONFIG_SHOW,
};

struct options {
        const char *config;
        enum agent_mode mode;
        int check_config;
        int allow_root;
        const char *log_level;

        enum command command;
        const char *selection; /* journal list */
        int json;              /* journal list --json */
        int ready;             /* healthcheck --ready */
        char **resolve;        /* journal resolve: CONNECTOR KEY OUTCOME MESSAGE */
        char **release;        /* journal release: CONNECTOR [KEY...] */
        int release_count;     /* keys after CONNECTOR; 0 with --all */
};

static void usage(FILE *out)
{
        fprintf(
            out,
            "Usage: connector-agent [OPTIONS]\n"
            "       connector-agent [OPTIONS] journal list [--json] "
            "[pending|queued|held|unreported|refused|all]\n"
            "       connector-agent [OPTIONS] journal resolve CONNECTOR KEY executed|errored "
            "MESSAGE\n"
            "       connector-agent [OPTIONS] journal release CONNECTOR KEY...|--all   run "
            "held orders\n"
            "       connector-agent [OPTIONS] journal resend CONNECTOR KEY...|--all   send "
            "refused results again\n"
            "       connector-agent [OPTIONS] doctor    diagnose the path to the server and "
            "targets\n"
            "       connector-agent [OPTIONS] healthcheck [--ready]   ask the running agent's "
            "status endpoint\n"
            "       connector-agent [OPTIONS] config show   print the effective configuration "
            "(file and\n"
            "                                               environment), secrets replaced by "
            "their source\n"
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

static int usage_error(void)
{
        fprintf(stderr, "Try 'connector-agent --help' for the commands and options.\n");
        return -EINVAL;
}

static int unexpected(const char *command, const char *word)
{
        fprintf(stderr, "connector-agent: %s: unexpected %s '%s'\n", command,
                word[0] == '-' ? "option" : "argument", word);
        return usage_error();
}

/* The command and its arguments, checked before anything is loaded so that a usage
 * error is always exit 2 and names the word it could not use. */
static int parse_command(int argc, char **argv, struct options *o)
{
        if (argc == 0)
                return 0;
        const char *cmd = argv[0];
        if (strcmp(cmd, "doctor") == 0) {
                o->command = CMD_DOCTOR;
                return argc > 1 ? unexpected("doctor", argv[1]) : 0;
        }
        if (strcmp(cmd, "healthcheck") == 0) {
                o->command = CMD_HEALTHCHECK;
                for (int i = 1; i < argc; i++) {
                        if (strcmp(argv[i], "--ready") == 0 && !o->ready)
                                o->ready = 1;
                        else
                                return unexpected("healthcheck", argv[i]);
                }
                return 0;
        }
        if (strcmp(cmd, "config") == 0) {
                if (argc < 2) {
                        fprintf(stderr, "connector-agent: config: which? (config show)\n");
                        return usage_error();
                }
                if (strcmp(argv[1], "show") != 0) {
                        fprintf(stderr, "connector-agent: config: unknown command '%s'\n", argv[1]);
                        return usage_error();
                }
                o->command = CMD_CONFIG_SHOW;
                return argc > 2 ? unexpected("config show", argv[2]) : 0;
        }
        if (strcmp(cmd, "journal") == 0) {
                if (argc < 2) {
                        fprintf(stderr, "connector-agent: journal: which? (journal list, "
                                        "resolve, release or resend)\n");
                        return usage_error();
                }
                if (strcmp(argv[1], "list") == 0) {
                        o->command = CMD_JOURNAL_LIST;
                        o->selection = "all";
                        int have_selection = 0;
                        for (int i = 2; i < argc; i++) {
                                const char *w = argv[i];
                                if (strcmp(w, "--json") == 0 && !o->json)
                                        o->json = 1;
                                else if (!have_selection &&
                                         (strcmp(w, "pending") == 0 || strcmp(w, "queued") == 0 ||
                                          strcmp(w, "held") == 0 || strcmp(w, "unreported") == 0 ||
                                          strcmp(w, "refused") == 0 || strcmp(w, "all") == 0)) {
                                        o->selection = w;
                                        have_selection = 1;
                                } else
                                        return unexpected("journal list", w);
                        }
                        return 0;
                }
                if (strcmp(argv[1], "resolve") == 0) {
                        o->command = CMD_JOURNAL_RESOLVE;
                        if (argc != 6) {
                                fprintf(stderr, "connector-agent: journal resolve needs CONNECTOR "
                                                "KEY executed|errored MESSAGE\n");
                                return usage_error();
                        }
                        if (strcmp(argv[4], "executed") != 0 && strcmp(argv[4], "errored") != 0) {
                                fprintf(stderr,
                                        "connector-agent: journal resolve: unknown outcome '%s' "
                                        "(executed or errored)\n",
                                        argv[4]);
                                return usage_error();
                        }
                        o->resolve = argv + 2;
                        return 0;
                }
                if (strcmp(argv[1], "release") == 0 || strcmp(argv[1], "resend") == 0) {
                        int release = strcmp(argv[1], "release") == 0;
                        o->command = release ? CMD_JOURNAL_RELEASE : CMD_JOURNAL_RESEND;
                        int all = argc == 4 && strcmp(argv[3], "--all") == 0;
                        if (argc < 4 || argv[2][0] == '-') {
                                fprintf(stderr,
                                        "connector-agent: journal %s needs CONNECTOR "
                                        "and KEY... or --all\n",
                                        argv[1]);
                                return usage_error();
                        }
                        for (int i = 3; !all && i < argc; i++)
                                if (argv[i][0] == '-')
                                        return unexpected(release ? "journal release"
                                                                  : "journal resend",
                                                          argv[i]);
                        o->release = argv + 2;
                        o->release_count = all ? 0 : argc - 3;
                        return 0;
                }
                fprintf(stderr, "connector-agent: journal: unknown command '%s'\n", argv[1]);
                return usage_error();
        }
        fprintf(stderr, "connector-agent: unknown command '%s'\n", cmd);
        return usage_error();
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
        opterr = 0; /* our own messages, naming the word, and exit 2 */
        /* '+': stop at the first non-option, the subcommand; ':': a missing value is ':'. */
        while ((ch = getopt_long(argc, argv, "+:c:fl:Vh", longopts, NULL)) != -1) {
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
                case 'l': {
                        enum ca_log_level level;
                        if (log_level_parse(optarg, &level) < 0) {
                                fprintf(stderr,
                                        "connector-agent: unknown log level '%s' (error, "
                                        "warning, notice, info or debug)\n",
                                        optarg);
                                return usage_error();
                        }
                        o->log_level = optarg;
                        break;
                }
                case 'V':
                        printf("connector-agent %s (back-end interface %u.%u)\n", CA_VERSION,
                               CA_BACKEND_ABI_MAJOR, CA_BACKEND_ABI_MINOR);
                        exit(EXIT_OK);
                case 'h':
                        usage(stdout);
                        exit(EXIT_OK);
                case ':':
                        fprintf(stderr, "connector-agent: option %s needs a value\n",
                                argv[optind - 1]);
                        return usage_error();
                default:
                        if (optopt)
                                fprintf(stderr, "connector-agent: unknown option -%c\n", optopt);
                        else
                                fprintf(stderr, "connector-agent: unknown option %s\n",
                                        argv[optind - 1]);
                        return usage_error();
                }
        }
        return parse_command(argc - optind, argv + optind, o);
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

static int run_journal_command(struct ca_config *cfg, const struct options *o)
{
        struct ca_error err = {0};
        struct journal *j = NULL;
        struct ca_config_agent agent = cfg->agent; /* borrowed strings */
        agent.journal_sync = 1;                    /* an operator's decision is final */
        if (journal_open_config(&agent, &j, &err) < 0) {
                fprintf(stderr, "connector-agent: %s\n", err.msg);
                return EXIT_JOURNAL;
        }
        int rc;
        if (o->command == CMD_JOURNAL_LIST) {
                rc = journal_list(j, o->selection, o->json, &err);
        } else if (o->command == CMD_JOURNAL_RELEASE) {
                size_t released = 0;
                rc = journal_release(j, o->release[0],
                                     o->release_count ? (const char *const *)o->release + 1 : NULL,
                                     (size_t)o->release_count, &released, &err);
                if (rc == 0)
                        printf("%s: %zu held order(s) released; a running agent starts them "
                               "within one poll interval, in their order (else at its next "
                               "start)\n",
                               o->release[0], released);
        } else if (o->command == CMD_JOURNAL_RESEND) {
                size_t resent = 0;
                rc = journal_resend(j, o->release[0],
                                    o->release_count ? (const char *const *)o->release + 1 : NULL,
                                    (size_t)o->release_count, &resent, &err);
                if (rc == 0)
                        printf("%s: %zu refused result(s) go to the server again, with a running "
                               "agent's next results (else at its next start)\n",
                               o->release[0], resent);
        } else {
                char *const *r = o->resolve; /* CONNECTOR KEY OUTCOME MESSAGE, checked */
                enum ca_result_state state =
                    strcmp(r[2], "executed") == 0 ? CA_RESULT_EXECUTED : CA_RESULT_ERRORED;
                rc = journal_resolve(j, r[0], r[1], state, r[3], &err);
                if (rc == 0)
                        rc = journal_commit(j, &err);
                if (rc == 0)
                        printf(
                            "%s %s resolved as %s; the result is sent at the agent's next start\n",
                            r[0], r[1], r[2]);
        }
        journal_close(j);
        if (rc < 0) {
                fprintf(stderr, "connector-agent: %s\n", err.msg);
                return EXIT_RUNTIME;
        }
        return EXIT_OK;
}

/* Until the loop has its handlers (agent_run), a stop or reload signal must wait, not
 * end the process with the default action: hold them blocked from the first line on.
 * The loop's handlers take the pending ones once agent_run unblocks them. */
static void hold_signals(int how)
{
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        sigprocmask(how, &set, NULL);
}

/* Secrets live in this process's memory: no core file of ours may carry them. */
static void protect_process(void)
{
        hold_signals(SIG_BLOCK);
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
        enum ca_log_format format;
        if (log_format_parse(cfg->agent.log_format, &format) == 0)
                log_set_format(format);
        if (o.check_config) {
                printf("configuration %s is valid: %zu connector(s), %zu resource type(s)\n",
                       cfg->path ? cfg->path : "(environment)", cfg->connector_count,
                       cfg->resource_type_count);
                config_free(cfg);
                return EXIT_OK;
        }
        if (o.command == CMD_CONFIG_SHOW) {
                /* Reads and prints only, secrets replaced: allowed as root, like
                 * --check-config. */
                config_show(cfg, environ, stdout);
                config_free(cfg);
                return fflush(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
        }
        if (geteuid() == 0 && !o.allow_root && !cfg->agent.allow_root) {
                fprintf(stderr,
                        "connector-agent: refusing to run as root: run it as its own user "
                        "(the service does), or pass --allow-root / set allow_root = yes\n");
                config_free(cfg);
                return EXIT_USAGE;
        }
        if (o.command != CMD_RUN) {
                int rc = EXIT_USAGE;
                hold_signals(SIG_UNBLOCK); /* the commands keep the default actions */
                switch (o.command) {
                case CMD_JOURNAL_LIST:
                case CMD_JOURNAL_RESOLVE:
                case CMD_JOURNAL_RELEASE:
                case CMD_JOURNAL_RESEND:
                        rc = run_journal_command(cfg, &o);
                        break;
                case CMD_DOCTOR:
                        rc = doctor_run(cfg);
                        break;
                case CMD_HEALTHCHECK:
                        rc = healthcheck_run(cfg, o.ready);
                        break;
                default:
                        break;
                }
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
