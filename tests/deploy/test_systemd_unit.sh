#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Checks the systemd unit without a running systemd (PID 1 need not be systemd):
# stages an install of the build into a scratch root, then
#  - systemd-analyze verify: no output at all (unknown keys are only warnings there),
#  - systemd-analyze security --offline: exposure at most 2.0 (prints the score line),
#  - systemd-sysusers --dry-run on the staged sysusers.d entry: it creates the user,
#  - the unit agrees with the agent's defaults: TimeoutStopSec covers shutdown_deadline
#    plus the 5 s farewell, StateDirectory is state_dir's default.
# Usage: tests/deploy/test_systemd_unit.sh [BUILD_DIR] (default $CA_TEST_BUILD_DIR).
# Needs: systemd (systemd-analyze, systemd-sysusers), cmake. Exits non-zero on failure.
set -euo pipefail

src=${CA_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${1:-${CA_TEST_BUILD_DIR:?give the build directory or set CA_TEST_BUILD_DIR}}
unit_name=connector-agent.service
max_exposure=20 # systemd-analyze's 0-100 scale: 20 is 2.0
farewell_s=5    # AGENT_FAREWELL_TIMEOUT_MS in agent/core/agent.c

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

for tool in systemd-analyze systemd-sysusers cmake; do
  command -v "$tool" >/dev/null || fail "$tool not installed (Debian: systemd, cmake)"
done

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

# The unit names absolute paths: install as the package does, under /usr.
DESTDIR=$root cmake --install "$build" --prefix /usr >"$root.install.log" 2>&1 ||
  { cat "$root.install.log" >&2; rm -f "$root.install.log"; fail "cmake --install"; }
rm -f "$root.install.log"
unit=$root/usr/lib/systemd/system/$unit_name
[ -f "$unit" ] || fail "the install did not stage $unit_name in usr/lib/systemd/system"
[ -x "$root/usr/sbin/connector-agent" ] || fail "the install did not stage usr/sbin/connector-agent"
# ExecReload runs /bin/kill (procps, a dependency of the package): stage it too.
mkdir -p "$root/bin"
kill_bin=$(type -P kill) || fail "no kill(1) executable (Debian: procps)"
cp "$kill_bin" "$root/bin/kill"

echo "== systemd-analyze verify"
out=$(systemd-analyze verify --man=no --root="$root" --recursive-errors=no "$unit" 2>&1) ||
  fail "verify exited non-zero: $out"
[ -z "$out" ] || fail "verify printed: $out"
echo "no findings"

echo "== systemd-analyze security"
sec_rc=0
sec=$(systemd-analyze security --offline=yes --no-pager --root="$root" \
  --threshold="$max_exposure" "$unit" 2>&1) || sec_rc=$?
score_line=$(grep "Overall exposure level" <<<"$sec" || true)
[ -n "$score_line" ] || fail "no score from systemd-analyze security: $sec"
echo "$score_line"
[ "$sec_rc" -eq 0 ] || { grep '✗' <<<"$sec" >&2 || true; fail "exposure above $max_exposure/100"; }
score=$(sed -n 's/.*: \([0-9][0-9]*\.[0-9]\) .*/\1/p' <<<"$score_line")
[ -n "$score" ] || fail "cannot read the score in: $score_line"
awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s * 10 <= m) }' ||
  fail "exposure $score above $((max_exposure / 10)).$((max_exposure % 10))"

echo "== systemd-sysusers --dry-run"
sysusers=$root/usr/lib/sysusers.d/connector-agent.conf
[ -f "$sysusers" ] || fail "sysusers.d entry not staged as usr/lib/sysusers.d/connector-agent.conf"
users=$(systemd-sysusers --root="$root" --dry-run "$sysusers" 2>&1) || fail "sysusers: $users"
grep -q "Creating user 'connector-agent'" <<<"$users" || fail "sysusers creates no user: $users"
grep -q "Creating group 'connector-agent'" <<<"$users" || fail "sysusers creates no group: $users"
echo "creates user and group connector-agent"

echo "== the unit against the agent's defaults"
key() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
seconds() { # "45s", "2min", "45" -> seconds
  case $1 in
  *min) echo $((${1%min} * 60)) ;;
  *s) echo "${1%s}" ;;
  *) echo "$1" ;;
  esac
}
deadline=$(sed -n 's/.*{"shutdown_deadline", CA_KEY_DURATION, A(shutdown_deadline_ms), "\([0-9]*\)s".*/\1/p' \
  "$src/common/config_keys.c")
[ -n "$deadline" ] || fail "cannot read shutdown_deadline's default in common/config_keys.c"
stop=$(seconds "$(key TimeoutStopSec)")
[ "$stop" -gt $((deadline + farewell_s)) ] ||
  fail "TimeoutStopSec=${stop}s does not exceed shutdown_deadline ${deadline}s + ${farewell_s}s"
echo "TimeoutStopSec=${stop}s > shutdown_deadline ${deadline}s + farewell ${farewell_s}s"
grep -q '"state_dir", CA_KEY_STRING, A(state_dir), "/var/lib/connector-agent"' \
  "$src/common/config_keys.c" || fail "state_dir's default is no longer /var/lib/connector-agent"
[ "$(key StateDirectory)" = connector-agent ] || fail "StateDirectory is not connector-agent"
[ "$(key Type)" = notify ] || fail "Type is not notify"
[ "$(key ExecStart)" = "/usr/sbin/connector-agent --config /etc/connector-agent/agent.conf" ] ||
  fail "unexpected ExecStart: $(key ExecStart)"
echo "PASS"
