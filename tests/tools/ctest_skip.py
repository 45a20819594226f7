# SPDX-License-Identifier: Apache-2.0
"""Runs one test program for ctest and reports the cases it skipped.

cmocka's skip() and unittest's skipTest() both end their program with status 0, which
ctest would count as "Passed". This runner passes the program's output through, finds
the skipped cases in it (cmocka: "[  SKIPPED ] name"; unittest at verbosity 2:
"... skipped 'reason'" and the closing "OK (skipped=N)"), and then exits with
SKIP_CODE, which tests/CMakeLists.txt declares as the tests' SKIP_RETURN_CODE. A
program that failed keeps its failing status: a failure is never hidden by a skip.

It prints one line per skipped case, "ctest-skip: PROGRAM: CASE: REASON", which
tests/run.sh collects from ctest's log to say how many were skipped and why.

Usage: ctest_skip.py PROGRAM [ARG...]
"""
import os
import re
import subprocess
import sys

SKIP_CODE = 77

CMOCKA_RUN = re.compile(r"^\[ RUN      \] (\S+)")
CMOCKA_SKIPPED = re.compile(r"^\[  SKIPPED \] (\S+)$")
CMOCKA_BRACKET = re.compile(r"^\[[ A-Z=-]{10}\]")
UNITTEST_SKIPPED = re.compile(r" \.\.\. skipped '(.*)'$")
UNITTEST_NAME = re.compile(r"^(\S+) \(")
UNITTEST_SUMMARY = re.compile(r"^(?:OK|FAILED) \((?:.*, )?skipped=(\d+)")


def skipped_cases(lines):
    """[(case, reason)] found in a test program's output."""
    cases = []
    current, said = None, []
    previous = ""
    for line in lines:
        m = CMOCKA_RUN.match(line)
        if m:
            current, said = m.group(1), []
            continue
        m = CMOCKA_SKIPPED.match(line)
        if m and m.group(1) == current:
            reason = said[-1] if said else "no reason printed"
            cases.append((current, reason))
            current = None
            continue
        if current and line.strip() and not CMOCKA_BRACKET.match(line):
            said.append(line.strip())
        m = UNITTEST_SKIPPED.search(line)
        if m:
            # With a docstring, unittest puts "name (class)" on the line before.
            named = UNITTEST_NAME.match(line) or UNITTEST_NAME.match(previous)
            cases.append((named.group(1) if named else "?", m.group(1)))
        previous = line
    return cases


def main(argv):
    if len(argv) < 2:
        print("usage: ctest_skip.py PROGRAM [ARG...]", file=sys.stderr)
        return 2
    proc = subprocess.Popen(argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line.rstrip("\n"))
    rc = proc.wait()
    cases = skipped_cases(lines)
    announced = 0
    for line in lines:
        m = UNITTEST_SUMMARY.match(line)
        if m:
            announced = int(m.group(1))
    program = os.path.basename(argv[-1] if argv[1].endswith("python3") else argv[1])
    if announced > len(cases):
        cases += [("?", "reason not found in the output")] * (announced - len(cases))
    for case, reason in cases:
        print("ctest-skip: %s: %s: %s" % (program, case, reason))
    if rc != 0:
        # A failure stays a failure, even one that happens to exit with SKIP_CODE.
        return 1 if rc == SKIP_CODE else (rc if rc > 0 else 128 - rc)
    return SKIP_CODE if cases else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
