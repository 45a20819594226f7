#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets (clang, -DCA_FUZZ=ON) into build/fuzz and runs each one
# for SECONDS (default 10) on a copy of its seed corpus (tests/fuzz/corpus/<name>/, the
# regression seeds included: a seed that still crashes is found in the first second).
# Prints, per target, the executions, executions per second and whether it found
# anything; keeps what it found in build/fuzz/findings/; exits non-zero on any finding.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# Environment: CA_FUZZ_BUILD_DIR (default <source>/build/fuzz); CA_FUZZ_NEW_CORPUS=DIR
# keeps the inputs that found new coverage in DIR/<name>/ instead of throwing them away
# (run-long.sh sets it); CA_FUZZ_JOBS (default 2) targets run side by side.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
seconds=${1:-10}
shift || true
build=${CA_FUZZ_BUILD_DIR:-$src/build/fuzz}
jobs=${CA_FUZZ_JOBS:-2}
all=(fuzz_orders fuzz_answers fuzz_config fuzz_backend_sql fuzz_backend_file
     fuzz_backend_exec_input fuzz_backend_ldap)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

case $seconds in
''|*[!0-9]*) echo "run.sh: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;;
esac
if ! command -v clang >/dev/null 2>&1; then
        echo "run.sh: clang is not installed; the fuzz targets need clang and its libFuzzer" \
             "runtime: apt-get install -y --no-install-recommends clang libclang-rt-14-dev" >&2
        exit 2
fi
if [ -f "$build/CMakeCache.txt" ] && ! grep -q '^CMAKE_C_COMPILER_ID:.*Clang\|^CMAKE_C_COMPILER:.*clang' \
        "$build/CMakeCache.txt"; then
        echo "run.sh: $build was configured with another compiler; remove it or set" \
             "CA_FUZZ_BUILD_DIR" >&2
        exit 2
fi

echo "== building the fuzz targets in $build"
CC=clang cmake -S "$src" -B "$build" -DCA_FUZZ=ON -DCA_TESTS=OFF -DCA_HARDEN=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.configure.log" 2>&1 || {
        cat "$build.configure.log" >&2
        echo "run.sh: configuring the fuzz build failed (see above)" >&2
        exit 2
}
cmake --build "$build" -j2 --target "${targets[@]}" >"$build.build.log" 2>&1 || {
        tail -n 60 "$build.build.log" >&2
        echo "run.sh: building the fuzz targets failed (see above)" >&2
        exit 2
}

findings=$build/findings
work=$(mktemp -d "${TMPDIR:-/tmp}/ca-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$findings"

dict_of() {
        case $1 in
        fuzz_backend_*) echo "$here/backend.dict" ;;
        *) echo "$here/${1#fuzz_}.dict" ;;
        esac
}

# Runs one target; writes "<executions> <exec/s> <exit code>" to $work/<name>.result.
run_one() {
        local t=$1 name=${1#fuzz_} dir=$work/$1
        mkdir -p "$dir/seeds" "$dir/artifacts"
        cp -R "$here/corpus/$name/." "$dir/seeds/"
        local corpora=("$dir/new" "$dir/seeds")
        if [ -n "${CA_FUZZ_NEW_CORPUS:-}" ]; then
                mkdir -p "$CA_FUZZ_NEW_CORPUS/$name"
                corpora=("$CA_FUZZ_NEW_CORPUS/$name" "$dir/seeds")
        fi
        mkdir -p "$dir/new"
        local dict=() d
        d=$(dict_of "$t")
        [ -f "$d" ] && dict=(-dict="$d")
        local rc=0
        # -timeout: one input running this long is a finding (a hang); the exec target
        # runs a real program for some inputs, which takes milliseconds, never seconds.
        (cd "$dir" && "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=25 \
                -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 "${dict[@]}" \
                -artifact_prefix="$dir/artifacts/" "${corpora[@]}") >"$dir/log" 2>&1 || rc=$?
        local execs rate
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -n 1)
        echo "${execs:-0} ${rate:-0} $rc" >"$dir/result"
}

echo "== running ${#targets[@]} target(s) for ${seconds}s each, $jobs at a time"
running=0
for t in "${targets[@]}"; do
        if [ ! -d "$here/corpus/${t#fuzz_}" ]; then
                echo "run.sh: no seed corpus $here/corpus/${t#fuzz_}" >&2
                exit 2
        fi
        run_one "$t" &
        running=$((running + 1))
        if [ "$running" -ge "$jobs" ]; then
                wait -n || true
                running=$((running - 1))
        fi
done
wait

status=0
total=0
for t in "${targets[@]}"; do
        read -r execs rate rc <"$work/$t/result"
        total=$((total + execs))
        if [ "$rc" -eq 0 ]; then
                printf '%-26s %12s executions %8s exec/s   nothing found\n' "$t" "$execs" "$rate"
                continue
        fi
        status=1
        mkdir -p "$findings/$t"
        cp "$work/$t/log" "$findings/$t/log"
        cp "$work/$t"/artifacts/* "$findings/$t/" 2>/dev/null || true
        printf '%-26s %12s executions %8s exec/s   FOUND SOMETHING (exit %s): %s\n' "$t" \
                "$execs" "$rate" "$rc" "$findings/$t/"
        { grep -E 'ERROR:|SUMMARY:|^    #[0-9] |Test unit written' "$work/$t/log" || true; } |
                head -n 24 | sed 's/^/    /'
done
echo "== $total executions in all; $([ $status -eq 0 ] && echo 'no finding' || echo 'FINDINGS above')"
exit $status
