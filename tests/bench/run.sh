#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Benchmarks for connector-agent (not part of CI's pass/fail): builds a Release build in
# build/bench and runs tests/bench/bench.py, which prints one table (see RESULTS.md).
#
#   tests/bench/run.sh                      full: 10,000 and 100,000 orders, 10,000 per raw target
#   BENCH_SCALE=small tests/bench/run.sh    quick: 1,000 and 10,000 orders, 1,000 per raw target
#   BENCH_ONLY=e2e,footprint tests/bench/run.sh   only some parts
#                                           (e2e, openloop, server, footprint, ldap, sqlite, pg, ha)
#   BENCH_JSON=out.json                     also write every raw figure as JSON
#   BENCH_ONLY=json,e2erounds,sqlrounds,pgrounds,ldaprounds BENCH_COMPARE=before=DIR BENCH_ROUNDS=5
#                                           interleaved rounds against raw_sql.c / raw_ldap.c, with another
#                                           build (DIR: its build tree) side by side
#
# Needs what tests/run.sh installs (slapd, ldap-utils, postgresql-15, sqlite3) plus
# strace (idle wake-ups). Loopback only; every wait is bounded.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
build="$src/build/bench"

for tool in cmake python3 strace sqlite3 ldapmodify psql; do
  command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: '$tool' is not installed" >&2; exit 3; }
done

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCA_TESTS=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target connector-agent ca-simserver testbackend sql ldap >/dev/null

args=(--build "$build" --scale "${BENCH_SCALE:-full}")
[ -n "${BENCH_ONLY:-}" ] && args+=(--only "$BENCH_ONLY")
[ -n "${BENCH_JSON:-}" ] && args+=(--json "$BENCH_JSON")
exec python3 "$here/bench.py" "${args[@]}"
