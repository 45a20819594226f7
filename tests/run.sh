#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Installs what the tests need (Debian 12, as root; idempotent), builds the agent twice
# (a warnings-as-errors build and an ASan+UBSan build) and runs every test in both.
# Usage: ./tests/run.sh            all tests, both builds
#        CA_BUILDS=dev ./tests/run.sh   only the plain build
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/deps.sh
ca_install_deps test
ca_install_postgresql

jobs=$(nproc)
status=0
for preset in ${CA_BUILDS:-dev asan}; do
  echo "=== build: $preset ==="
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  echo "=== test: $preset ==="
  if [ "$preset" = asan ]; then
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  fi
  ctest --preset "$preset" -j "$jobs" || status=1
  log=build/$preset/Testing/Temporary/LastTest.log
  # The figures some tests must show in CI's output (ctest keeps them in its log).
  grep -h -o -E "(crash test: .*|fuzz_[a-z_]+ +[0-9]+ executions.*|Overall exposure level .*)" \
    "$log" 2>/dev/null | sed "s/^/[$preset] /" || true
  # Skipped cases, each with its reason (tests/tools/ctest_skip.py prints them).
  skips=$(grep -h "^ctest-skip: " "$log" 2>/dev/null | sed 's/^ctest-skip: //' || true)
  if [ -n "$skips" ]; then
    echo "[$preset] skipped: $(wc -l <<<"$skips") test case(s):"
    sed "s/^/[$preset]   /" <<<"$skips"
  else
    echo "[$preset] skipped: 0 test cases"
  fi
done
exit $status
