/* SPDX-License-Identifier: Apache-2.0 */
/* children: the exec back-end's record of the programs it has running, so that the next
 * run can end what a killed agent left behind.
 *
 * PR_SET_PDEATHSIG ends the program the agent started, not what that program started in
 * turn; such a child, still applying its order, would race the restarted agent's probe
 * ("not applied") and the order would run twice. Each program runs in a process group of
 * its own; its record, one small file per group in <state_dir>/exec-children, is written
 * before the program may run and removed once it is reaped. children_open, at the
 * plug-in's start-up, ends (SIGTERM, then SIGKILL after grace_ms) every recorded group
 * whose agent is gone, waits until none of its processes runs, and removes the record.
 *
 * A record names its writer (pid and start time), its group (the leader's pid and start
 * time, the session) and the boot, so that only processes of that very group are ended:
 * never those of a live agent (doctor beside the daemon, a second load), never a process
 * that got a reused number. Records are not fsync'd: they must outlive the agent's
 * process, not the machine, and a reboot ends their processes anyway. A program that
 * leaves its group (setsid, setpgid) is not followed: under systemd the unit's cgroup
 * ends it.
 *
 * Thread-safe after children_open: add and remove touch one group's file each. */
#ifndef CA_EXEC_CHILDREN_H
#define CA_EXEC_CHILDREN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The records' folder, under the state directory. */
#define CHILDREN_DIR "exec-children"

struct children;

/* Called once per group ended or record dropped, with a line for the operator. */
typedef void (*children_say_fn)(const char *line);

/* Creates <state_dir>/exec-children (0700) when missing and ends what earlier runs left
 * there. Returns the number of groups ended (0 or more) with *out set, or a negative
 * errno with msg filled. Blocks for at most about grace_ms + 1 s per group left over. */
int children_open(const char *state_dir, uint64_t grace_ms, children_say_fn say,
                  struct children **out, char *msg, size_t msglen);
void children_free(struct children *c); /* accepts NULL */

/* Records pid, a child that is the leader of its own group and has not run its program
 * yet. 0, or a negative errno with msg filled (the child must then not run). */
int children_add(struct children *c, pid_t pid, char *msg, size_t msglen);
/* Removes the record of pid's group, once pid is reaped. */
void children_remove(struct children *c, pid_t pid);

#endif
