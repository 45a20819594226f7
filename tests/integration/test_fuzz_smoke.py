#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Runs every libFuzzer target briefly (tests/fuzz/run.sh 5): each builds with clang,
replays its whole seed corpus (the regression inputs of past findings included), fuzzes
for five seconds and finds nothing. Needs clang and libclang-rt-14-dev (tests/deps.sh);
without them run.sh says what to install and this test fails."""
import os
import re
import subprocess
import sys

SECONDS = 5
TARGETS = ["fuzz_orders", "fuzz_answers", "fuzz_config", "fuzz_backend_sql",
           "fuzz_backend_file", "fuzz_backend_exec_input"]
LINE = re.compile(r"^(fuzz_\w+)\s+(\d+) executions\s+(\d+) exec/s\s+(.*)$")


def main():
    src = os.environ.get("CA_TEST_SOURCE_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..")
    build = os.environ.get("CA_TEST_BUILD_DIR") or os.path.join(src, "build")
    env = dict(os.environ, CA_FUZZ_BUILD_DIR=os.path.join(build, "fuzz-smoke"))
    try:
        r = subprocess.run([os.path.join(src, "tests", "fuzz", "run.sh"), str(SECONDS)],
                           capture_output=True, text=True, env=env, timeout=540)
    except subprocess.TimeoutExpired:
        print("FAIL: tests/fuzz/run.sh %d did not finish in 540 s" % SECONDS)
        return 1
    sys.stdout.write(r.stdout)
    sys.stdout.write(r.stderr)
    failed = r.returncode != 0
    if failed:
        print("FAIL: tests/fuzz/run.sh exited %d" % r.returncode)
    seen = {}
    for line in r.stdout.splitlines():
        m = LINE.match(line)
        if m:
            seen[m.group(1)] = (int(m.group(2)), m.group(4))
    for t in TARGETS:
        if t not in seen:
            print("FAIL: %s: no result line" % t)
            failed = True
        elif seen[t][0] == 0:
            print("FAIL: %s: ran no input" % t)
            failed = True
        elif seen[t][1] != "nothing found":
            print("FAIL: %s: %s" % (t, seen[t][1]))
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
