#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs a test in a PID namespace of its own, with its own /proc, as a container runs the
# agent: there a process's session leader (and often its group leader) lives outside the
# namespace, and /proc says 0 for it. Where no namespace can be made here (no
# CAP_SYS_ADMIN, no unshare), the test is skipped, and says so for tests/run.sh.
# Usage: in_pid_namespace.sh PROGRAM [ARG...]
if ! unshare --pid --fork --mount-proc true 2>/dev/null; then
        echo "ctest-skip: $(basename "$1"): all: cannot make a PID namespace here (unshare --pid --mount-proc failed)"
        exit 77
fi
exec unshare --pid --fork --mount-proc "$@"
