/* SPDX-License-Identifier: Apache-2.0 */
/* A throwaway PostgreSQL 15 cluster on loopback for one unit-test program, through
 * tests/pg/pg.sh (scram-sha-256 with a password, never a mock): started once per group,
 * paused and resumed to play a server that goes away, and stopped by a reaper process
 * however the test ends. Header-only, as backend_test_util.h is: each test is one file.
 *
 * pg_cluster_start fails (returns -1, says why) without postgresql-15 installed:
 * tests/run.sh installs it. */
#ifndef CA_TEST_PG_CLUSTER_H
#define CA_TEST_PG_CLUSTER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG_CLUSTER_BIN        "/usr/lib/postgresql/15/bin"
#define PG_CLUSTER_USER       "ca_test"
#define PG_CLUSTER_PASSWORD   "Tst-pw_4f9c2e" /* the superuser's, for this throwaway cluster */
#define PG_CLUSTER_TIMEOUT_MS 60000           /* one pg.sh call (pg_ctl waits at most 30 s) */
#define PG_CLUSTER_OUTPUT_MAX 8192

static struct {
        char data[1024]; /* the cluster's data dir, "" when not running */
        int port;
        char script[4096];
        pid_t reaper;
        int reaper_fd; /* closing it (even by dying) makes the reaper stop the cluster */
} pg_cluster;

static inline uint64_t pg_cluster_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs pg.sh VERB ARG with the password on its standard input; its output (standard
 * output and error, trailing newlines cut) in out. Returns its exit status, -1 when it
 * had to be killed. */
static inline int pg_cluster_script(const char *verb, const char *arg, char *out, size_t outlen)
{
        int in[2], outp[2];
        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0)
                return -1;
        pid_t pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                dup2(in[0], 0);
                dup2(outp[1], 1);
                dup2(outp[1], 2);
                execl("/bin/bash", "/bin/bash", pg_cluster.script, verb, arg, (char *)NULL);
                _exit(127);
        }
        close(in[0]);
        close(outp[1]);
        ssize_t w = write(in[1], PG_CLUSTER_PASSWORD "\n", strlen(PG_CLUSTER_PASSWORD) + 1);
        (void)w;
        close(in[1]);
        uint64_t deadline = pg_cluster_now_ms() + PG_CLUSTER_TIMEOUT_MS;
        size_t len = 0;
        out[0] = '\0';
        for (;;) {
                uint64_t t = pg_cluster_now_ms();
                if (t >= deadline)
                        break;
                struct pollfd p = {.fd = outp[0], .events = POLLIN};
                int n = poll(&p, 1, (int)(deadline - t));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                char buf[1024];
                ssize_t r = read(outp[0], buf, sizeof(buf));
                if (r <= 0)
                        break;
                size_t take = (size_t)r < outlen - 1 - len ? (size_t)r : outlen - 1 - len;
                memcpy(out + len, buf, take);
                len += take;
                out[len] = '\0';
        }
        close(outp[0]);
        while (len && out[len - 1] == '\n')
                out[--len] = '\0';
        int status = 0;
        for (;;) {
                if (waitpid(pid, &status, WNOHANG) == pid)
                        break;
                if (pg_cluster_now_ms() >= deadline) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        return -1;
                }
                struct timespec ts = {0, 10 * 1000000};
                nanosleep(&ts, NULL);
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A port nobody listens on right now. */
static inline int pg_cluster_free_port(void)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
            getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        close(fd);
        return ntohs(a.sin_port);
}

/* A process of its own that stops the cluster once this one ends, however it ends. */
static inline int pg_cluster_reaper(void)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -1;
        pid_t pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                close(p[1]);
                setsid();
                char c;
                while (read(p[0], &c, 1) < 0 && errno == EINTR)
                        ;
                if (access(pg_cluster.data, F_OK) == 0)
                        execl("/bin/bash", "/bin/bash", pg_cluster.script, "stop", pg_cluster.data,
                              (char *)NULL);
                _exit(0);
        }
        close(p[0]);
        pg_cluster.reaper = pid;
        pg_cluster.reaper_fd = p[1];
        return 0;
}

static inline int pg_cluster_start(void)
{
        const char *src = getenv("CA_TEST_SOURCE_DIR");
        if (access(PG_CLUSTER_BIN "/initdb", X_OK) != 0) {
                fprintf(stderr,
                        "PostgreSQL 15 is not installed (%s/initdb missing): run tests/run.sh, "
                        "which installs postgresql-15\n",
                        PG_CLUSTER_BIN);
                return -1;
        }
        if (!src) {
                fprintf(stderr, "CA_TEST_SOURCE_DIR is not set (run through ctest)\n");
                return -1;
        }
        snprintf(pg_cluster.script, sizeof(pg_cluster.script), "%s/tests/pg/pg.sh", src);
        pg_cluster.port = pg_cluster_free_port();
        char port[16], out[PG_CLUSTER_OUTPUT_MAX];
        snprintf(port, sizeof(port), "%d", pg_cluster.port);
        if (pg_cluster.port <= 0 || pg_cluster_script("start", port, out, sizeof(out)) != 0 ||
            out[0] != '/') {
                fprintf(stderr, "tests/pg/pg.sh start %s failed: %s\n", port, out);
                return -1;
        }
        snprintf(pg_cluster.data, sizeof(pg_cluster.data), "%s", out);
        return pg_cluster_reaper();
}

/* Stops the server at once (as a crash would) or starts it again on the same port. */
static inline int pg_cluster_pause(int pause)
{
        char out[PG_CLUSTER_OUTPUT_MAX];
        int rc = pg_cluster_script(pause ? "pause" : "resume", pg_cluster.data, out, sizeof(out));
        if (rc != 0)
                fprintf(stderr, "tests/pg/pg.sh %s: %s\n", pause ? "pause" : "resume", out);
        return rc;
}

static inline int pg_cluster_stop(void)
{
        int rc = 0;
        if (pg_cluster.data[0]) {
                char out[PG_CLUSTER_OUTPUT_MAX];
                if (pg_cluster_script("stop", pg_cluster.data, out, sizeof(out)) != 0) {
                        fprintf(stderr, "tests/pg/pg.sh stop: %s\n", out);
                        rc = -1;
                }
                pg_cluster.data[0] = '\0';
        }
        if (pg_cluster.reaper > 0) {
                close(pg_cluster.reaper_fd);
                waitpid(pg_cluster.reaper, NULL, 0);
                pg_cluster.reaper = 0;
        }
        return rc;
}

#endif
