/* SPDX-License-Identifier: Apache-2.0 */
/* children: records of the exec programs' process groups (children.h).
 *
 * A record is one line, "1 BOOT_ID OWNER_PID OWNER_START PGID LEADER_START SID\n", in a
 * file named after the group. Start times are /proc/PID/stat's field 22 (clock ticks
 * since boot): with the pid they name one process for the whole boot. */
#include "children.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHILDREN_RECORD_MAX 256
#define CHILDREN_BOOT_ID    64
#define CHILDREN_TICK_MS    20   /* how often the clean-up looks whether a group is gone */
#define CHILDREN_KILL_WAIT  1000 /* after SIGKILL, how long it waits for the last ones */

struct children {
        char dir[4096];
        char boot_id[CHILDREN_BOOT_ID];
        pid_t self;
        unsigned long long self_start;
};

/* What /proc/PID/stat says of one process. */
struct proc_stat {
        char state;
        pid_t pgrp;
        pid_t sid;
        unsigned long long start;
};

static int proc_stat_read(pid_t pid, struct proc_stat *p)
{
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        int e = errno;
        close(fd);
        if (n <= 0)
                return n < 0 ? -e : -ESRCH;
        buf[n] = '\0';
        /* The command name may hold blanks and parentheses: fields start after the last
         * ')'. Then: state(3) ppid pgrp session ... starttime(22). */
        char *f = strrchr(buf, ')');
        if (!f)
                return -EPROTO;
        f++;
        char *save = NULL;
        unsigned field = 2;
        for (char *tok = strtok_r(f, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
                field++;
                if (field == 3)
                        p->state = tok[0];
                else if (field == 5)
                        p->pgrp = (pid_t)strtol(tok, NULL, 10);
                else if (field == 6)
                        p->sid = (pid_t)strtol(tok, NULL, 10);
                else if (field == 22) {
                        p->start = strtoull(tok, NULL, 10);
                        return 0;
                }
        }
        return -EPROTO;
}

static void boot_id_read(char *out, size_t len)
{
        FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
        out[0] = '\0';
        if (!f)
                return;
        if (fgets(out, (int)len, f))
                out[strcspn(out, "\n")] = '\0';
        fclose(f);
}

/* sid is 0 when the session's leader lives outside our PID namespace (a container's
 * processes see their session so): then the group, its leader's start and the boot are
 * what tell the group apart. */
struct record {
        pid_t owner;
        unsigned long long owner_start;
        pid_t pgid;
        unsigned long long leader_start;
        pid_t sid;
        char boot_id[CHILDREN_BOOT_ID];
};

static int record_read(const char *path, struct record *r)
{
        char buf[CHILDREN_RECORD_MAX];
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return -EPROTO;
        buf[n] = '\0';
        int owner, pgid, sid;
        char nl = 0;
        if (sscanf(buf, "1 %63s %d %llu %d %llu %d%c", r->boot_id, &owner, &r->owner_start, &pgid,
                   &r->leader_start, &sid, &nl) != 7 ||
            nl != '\n' || owner <= 0 || pgid <= 1 || sid < 0)
                return -EPROTO; /* torn by a kill before its child could run: nothing to end */
        r->owner = owner;
        r->pgid = pgid;
        r->sid = sid;
        return 0;
}

/* Sends sig (0: none) to every running process of the recorded group; returns how many
 * there were. A member has the group's number and session and started no earlier than
 * its leader; a process we may not signal is not ours. */
static unsigned group_signal(const struct record *r, int sig)
{
        unsigned n = 0;
        DIR *d = opendir("/proc");
        if (!d)
                return 0;
        for (struct dirent *e; (e = readdir(d));) {
                char *end;
                long pid = strtol(e->d_name, &end, 10);
                struct proc_stat p;
                if (*end || pid <= 1 || proc_stat_read((pid_t)pid, &p) < 0)
                        continue;
                if (p.state == 'Z' || p.state == 'X' || p.pgrp != r->pgid || p.sid != r->sid ||
                    p.start < r->leader_start)
                        continue;
                if (kill((pid_t)pid, sig) == 0)
                        n++;
        }
        closedir(d);
        return n;
}

static uint64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits up to ms for the group to have no running process; 1 when it has none. */
static int group_wait_gone(const struct record *r, uint64_t ms)
{
        uint64_t until = mono_ms() + ms;
        struct timespec tick = {0, CHILDREN_TICK_MS * 1000000L};
        for (;;) {
                if (group_signal(r, 0) == 0)
                        return 1;
                if (mono_ms() >= until)
                        return 0;
                nanosleep(&tick, NULL);
        }
}

/* Ends what is left of one record's group; the line says what was done, "" when the
 * group had nothing running. */
static void group_end(const struct record *r, uint64_t grace_ms, char *line, size_t len)
{
        line[0] = '\0';
        unsigned found = group_signal(r, SIGTERM);
        if (found == 0)
                return;
        if (group_wait_gone(r, grace_ms)) {
                snprintf(line, len,
                         "exec: ended process group %d (%u process(es)) that a program of an "
                         "earlier run of the agent (pid %d) left running: it could still have "
                         "been applying an order",
                         (int)r->pgid, found, (int)r->owner);
                return;
        }
        group_signal(r, SIGKILL);
        int gone = group_wait_gone(r, CHILDREN_KILL_WAIT);
        snprintf(line, len,
                 "exec: killed process group %d (%u process(es)) that a program of an earlier "
                 "run of the agent (pid %d) left running, after it ignored SIGTERM for %llu "
                 "ms%s",
                 (int)r->pgid, found, (int)r->owner, (unsigned long long)grace_ms,
                 gone ? "" : "; some of it still runs (in the kernel?)");
}

/* Whether the record's writer still runs: then its groups are its own business. */
static int owner_alive(const struct children *c, const struct record *r)
{
        struct proc_stat p;
        if (r->owner == c->self && r->owner_start == c->self_start)
                return 1;
        return proc_stat_read(r->owner, &p) == 0 && p.start == r->owner_start && p.state != 'Z' &&
               p.state != 'X';
}

static void sweep(struct children *c, uint64_t grace_ms, children_say_fn say, int *ended)
{
        DIR *d = opendir(c->dir);
        if (!d)
                return;
        for (struct dirent *e; (e = readdir(d));) {
                char path[4400], line[512];
                struct record r;
                if (e->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "%s/%s", c->dir, e->d_name);
                if (record_read(path, &r) < 0) {
                        unlink(path);
                        continue;
                }
                /* Another boot: its processes are gone, and its numbers mean nothing now. */
                if (strcmp(r.boot_id, c->boot_id) == 0) {
                        if (owner_alive(c, &r))
                                continue;
                        group_end(&r, grace_ms, line, sizeof(line));
                        if (line[0]) {
                                (*ended)++;
                                if (say)
                                        say(line);
                        }
                }
                unlink(path);
        }
        closedir(d);
}

int children_open(const char *state_dir, uint64_t grace_ms, children_say_fn say,
                  struct children **out, char *msg, size_t msglen)
{
        struct proc_stat self;
        int ended = 0;
        struct children *c = calloc(1, sizeof(*c));
        if (!c) {
                snprintf(msg, msglen, "out of memory");
                return -ENOMEM;
        }
        int n = snprintf(c->dir, sizeof(c->dir), "%s/%s", state_dir, CHILDREN_DIR);
        if (n < 0 || (size_t)n >= sizeof(c->dir)) {
                snprintf(msg, msglen, "state directory %s: path too long", state_dir);
                free(c);
                return -ENAMETOOLONG;
        }
        c->self = getpid();
        int rc = proc_stat_read(c->self, &self);
        if (rc < 0) {
                snprintf(msg, msglen, "cannot read /proc/%d/stat: %s (is /proc mounted?)",
                         (int)c->self, strerror(-rc));
                free(c);
                return rc;
        }
        c->self_start = self.start;
        boot_id_read(c->boot_id, sizeof(c->boot_id));
        if (!c->boot_id[0])
                snprintf(c->boot_id, sizeof(c->boot_id), "unknown");
        if (mkdir(c->dir, 0700) < 0 && errno != EEXIST) {
                rc = -errno;
                snprintf(msg, msglen,
                         "cannot create %s, where the programs' process groups are recorded: %s",
                         c->dir, strerror(errno));
                free(c);
                return rc;
        }
        sweep(c, grace_ms, say, &ended);
        *out = c;
        return ended;
}

void children_free(struct children *c)
{
        free(c);
}

int children_add(struct children *c, pid_t pid, char *msg, size_t msglen)
{
        char path[4400], line[CHILDREN_RECORD_MAX];
        struct proc_stat p;
        int rc = proc_stat_read(pid, &p);
        if (rc < 0) {
                snprintf(msg, msglen, "cannot read /proc/%d/stat: %s", (int)pid, strerror(-rc));
                return rc;
        }
        int len = snprintf(line, sizeof(line), "1 %s %d %llu %d %llu %d\n", c->boot_id,
                           (int)c->self, c->self_start, (int)pid, p.start, (int)p.sid);
        snprintf(path, sizeof(path), "%s/%d", c->dir, (int)pid);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                rc = -errno;
        } else {
                ssize_t w = write(fd, line, (size_t)len);
                rc = w == len ? 0 : w < 0 ? -errno : -ENOSPC;
                if (close(fd) < 0 && rc == 0)
                        rc = -errno;
                if (rc < 0)
                        unlink(path);
        }
        if (rc < 0)
                snprintf(msg, msglen, "cannot record the program's process group in %s: %s", c->dir,
                         strerror(-rc));
        return rc;
}

void children_remove(struct children *c, pid_t pid)
{
        char path[4400];
        snprintf(path, sizeof(path), "%s/%d", c->dir, (int)pid);
        unlink(path);
}
